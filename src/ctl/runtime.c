/*
 * runtime.c - the snapshot dbtlsd serves from (runtime.h): per instance its attributes, the
 * active server certificate chain and decrypted key, the client CA and its CRL, and the access
 * rules, all read in one read transaction so the daemon never sees half an operation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/par.h"
#include "ctl/internal.h"

static void rt_instance_cleanup(struct dbt_rt_instance *r)
{
    free(r->name);
    free(r->engine);
    free(r->engine_version);
    free(r->listen);
    free(r->backend);
    free(r->backend_tls_ca);
    free(r->backend_tls_cert);
    free(r->backend_tls_key);
    ctl_strv_free(r->endpoints, r->n_endpoints);
    free(r->tls_min);
    free(r->tls_max);
    free(r->ciphers);
    free(r->ciphersuites);
    free(r->groups);
    free(r->cert_chain_pem);
    dbt_pki_wipe_free(r->key_pem);
    free(r->client_ca_pem);
    free(r->crl_pem);
    free(r->hba_text);
    free(r->ident_text);
    free(r->user_require_text);
    memset(r, 0, sizeof *r);
}

void dbt_rt_config_free(struct dbt_rt_config *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < cfg->n_instances; i++) {
        rt_instance_cleanup(&cfg->instances[i]);
    }
    free(cfg->instances);
    free(cfg);
}

/* The digest of what key_pem and crl_pem are made from (runtime.h, material). */
static dbt_res material_digest(const struct ctl_inst *in, const struct ctl_slot *a, uint8_t out[32])
{
    char num[48];
    snprintf(num, sizeof num, "%lld %lld", (long long)in->id, (long long)in->crl_number);
    const char *ca_sha1 = in->client_ca_sha1 ? in->client_ca_sha1 : "";
    const char *crl = in->crl_pem ? in->crl_pem : "";
    const char *ca = in->client_ca_pem ? in->client_ca_pem : "";
    const struct dbt_pki_span parts[] = {
        {num, strlen(num)}, {a->cert_pem, strlen(a->cert_pem)},         {a->key, a->key_len},
        {ca, strlen(ca)},   {in->client_ca_key, in->client_ca_key_len}, {ca_sha1, strlen(ca_sha1)},
        {crl, strlen(crl)},
    };
    return dbt_pki_sha256(parts, sizeof parts / sizeof parts[0], out);
}

/* A CRL in the first half of its validity: served as is. Past it, a load signs a fresh one, and
   the loader's timer (dbt_gen_refresh_at) reloads at the half-life of the earliest. */
static bool crl_young(int64_t last_update, int64_t next_update)
{
    return last_update > 0 && next_update > last_update &&
           dbt_now_unix() < last_update + (next_update - last_update) / 2;
}

/* The instance of prev named name with the same material and a CRL in the first half of its
   validity, or NULL. *hint: where to look first (instances come in name order). */
static const struct dbt_rt_instance *reusable(const struct dbt_rt_config *prev, size_t *hint,
                                              const char *name, const uint8_t material[32])
{
    if (prev == NULL) {
        return NULL;
    }
    const struct dbt_rt_instance *o = NULL;
    if (*hint < prev->n_instances && strcmp(prev->instances[*hint].name, name) == 0) {
        o = &prev->instances[*hint];
    }
    for (size_t i = 0; o == NULL && i < prev->n_instances; i++) {
        if (strcmp(prev->instances[i].name, name) == 0) {
            o = &prev->instances[i];
        }
    }
    if (o == NULL) {
        return NULL;
    }
    *hint = (size_t)(o - prev->instances) + 1;
    if (memcmp(o->material, material, 32) != 0 || o->key_pem == NULL || o->crl_pem == NULL ||
        !crl_young(o->crl_last_update, o->crl_next_update)) {
        return NULL;
    }
    return o;
}

/*
 * The stored CRL (signed by the last revocation or client CA change) when it is young, as a
 * CRL kept from the previous snapshot would be: a start or SIGHUP then signs only the CRLs past
 * half-life, sparing most instances of a fleet the client CA key's decoding and a P-384
 * signature (≈ 1.5 ms each with OpenSSL 3.0). The stored CRL lists every revocation: the
 * operation that revokes signs and stores it in the same transaction (ctl_crl_regen).
 */
static bool stored_crl(const struct ctl_inst *in, struct dbt_rt_instance *r)
{
    struct dbt_pki_crl *crl = NULL;
    struct dbt_pki_crl_info ci;
    bool ok = in->crl_pem != NULL && dbt_ok(dbt_pki_crl_from_pem(in->crl_pem, &crl)) &&
              dbt_ok(dbt_pki_crl_info(crl, &ci)) && crl_young(ci.last_update, ci.next_update);
    dbt_pki_crl_free(crl);
    dbt_errclear();
    if (ok) {
        r->crl_pem = ctl_strdup(in->crl_pem);
        r->crl_last_update = ci.last_update;
        r->crl_next_update = ci.next_update;
    }
    return ok;
}

/*
 * A load reads the store on one thread (one read transaction), then does the cryptography of
 * each instance whose material changed on every core (base/par.h): decrypting the key and
 * signing a fresh CRL cost ≈ 2 ms an instance with OpenSSL 3.0, seconds for a fleet. What the
 * second phase needs from the rows stays here until it is done.
 */
struct load_job {
    struct dbt_ctl *ctl;
    struct ctl_inst in;
    struct ctl_slots slots;
    struct ctl_slot *active;
    struct ctl_revoked revoked;
    bool make; /* material to make: not reused from the previous snapshot */
    bool sign; /* ... including a fresh CRL (the stored one is past half-life) */
    struct dbt_rt_instance *r;
};

static void job_cleanup(struct load_job *j)
{
    ctl_inst_cleanup(&j->in);
    ctl_slots_cleanup(&j->slots);
    ctl_revoked_cleanup(&j->revoked);
}

/* Decrypts the key and signs a fresh CRL: the cryptography of a load. Any thread. */
static dbt_res material_make(void *arg, size_t i)
{
    struct load_job *j = &((struct load_job *)arg)[i];
    struct dbt_rt_instance *r = j->r;
    dbt_res res = DBT_OK;
    struct dbt_pki_crl *crl = NULL;
    if (!j->make) {
        return DBT_OK;
    }
    const struct ctl_slot *a = j->active;
    DBT_TRY(ctl_unseal_pem(j->ctl, a->cert_pem, a->key, a->key_len, &r->key_pem));
    if (!j->sign) {
        goto out;
    }
    /* A fresh CRL: the stored one would expire (nextUpdate) in a daemon that runs for weeks
       without a change; cRLNumber 0 = the issue time, above every stored number. */
    DBT_TRY(ctl_crl_sign(j->ctl, r->client_ca_pem, j->in.client_ca_key, j->in.client_ca_key_len,
                         &j->revoked, 0, &r->crl_pem));
    DBT_TRY(dbt_pki_crl_from_pem(r->crl_pem, &crl));
    struct dbt_pki_crl_info ci;
    DBT_TRY(dbt_pki_crl_info(crl, &ci));
    r->crl_next_update = ci.next_update;
    r->crl_last_update = ci.last_update;
out:
    dbt_pki_crl_free(crl);
    return dbt_ok(res) ? res : dbt_fail_ctx(res, "instance \"%s\": ", r->name);
}

/* The store's part of one instance: its rows, and the reused material or what making it needs. */
static dbt_res load_one(struct dbt_ctl *ctl, const char *name, const struct dbt_rt_config *prev,
                        size_t *hint, struct load_job *j)
{
    dbt_res res = DBT_OK;
    struct dbt_rt_instance *r = j->r;
    j->ctl = ctl;
    struct ctl_inst *in = &j->in;
    DBT_TRY(ctl_inst_load(ctl, name, in));
    DBT_TRY(ctl_slots_load(ctl, in->id, &j->slots));
    struct ctl_slot *a = ctl_slots_find(&j->slots, "active");
    DBT_ENSURE(a, CORRUPT, "instance \"%s\" has no active server certificate", name);
    j->active = a;
    struct dbt_ctl_instance *p = &in->pub;
    DBT_TRY(ctl_slot_chain(ctl, a, &r->cert_chain_pem));
    DBT_TRY(material_digest(in, a, r->material));
    const struct dbt_rt_instance *o = reusable(prev, hint, name, r->material);
    if (o != NULL) {
        r->key_pem = strdup(o->key_pem);
        r->crl_pem = strdup(o->crl_pem);
        DBT_ENSURE(r->key_pem != NULL && r->crl_pem != NULL, NOMEM, "out of memory");
        r->crl_next_update = o->crl_next_update;
        r->crl_last_update = o->crl_last_update;
    } else {
        j->make = true;
        j->sign = !stored_crl(in, r);
        if (j->sign) {
            DBT_TRY(ctl_revoked_load(ctl, in->id, in->client_ca_sha1, &j->revoked));
        }
    }
    r->name = p->name;
    r->engine = p->engine;
    r->engine_version = p->engine_version;
    r->listen = p->listen;
    r->backend = p->backend;
    r->backend_tls_ca = p->backend_tls_ca;
    r->backend_tls_cert = p->backend_tls_cert;
    r->backend_tls_key = p->backend_tls_key;
    r->client_info = p->client_info;
    r->endpoints = p->endpoints;
    r->n_endpoints = p->n_endpoints;
    r->ssl_mode = p->ssl_mode;
    r->tls_min = p->tls_min;
    r->tls_max = p->tls_max;
    r->ciphers = p->ciphers;
    r->ciphersuites = p->ciphersuites;
    r->groups = p->groups;
    r->hba_text = p->hba_text;
    r->ident_text = p->ident_text;
    r->user_require_text = p->user_require_text;
    r->client_ca_pem = in->client_ca_pem;
    /* Ownership moved to r: forget it in the row so cleanup does not free it. */
    p->name = p->engine = p->engine_version = p->listen = p->backend = p->backend_tls_ca = NULL;
    p->backend_tls_cert = p->backend_tls_key = NULL;
    p->endpoints = NULL;
    p->n_endpoints = 0;
    p->tls_min = p->tls_max = p->ciphers = p->ciphersuites = p->groups = NULL;
    p->hba_text = p->ident_text = p->user_require_text = NULL;
    in->client_ca_pem = NULL;
out:
    return res;
}

static dbt_res load(struct dbt_ctl *ctl, const char *only, const struct dbt_rt_config *prev,
                    struct dbt_rt_config **out)
{
    *out = NULL;
    dbt_res res = DBT_OK;
    struct dbt_rt_config *cfg = calloc(1, sizeof *cfg);
    char **names = NULL;
    size_t n = 0;
    struct load_job *jobs = NULL;
    DBT_ENSURE(cfg, NOMEM, "out of memory");
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_counter(ctl->st, &cfg->change_counter));
    if (only) {
        names = calloc(1, sizeof *names);
        DBT_ENSURE(names, NOMEM, "out of memory");
        names[n++] = ctl_strdup(only);
    } else {
        DBT_TRY(ctl_instance_names(ctl, true, &names, &n));
    }
    cfg->instances = calloc(n ? n : 1, sizeof *cfg->instances);
    jobs = calloc(n ? n : 1, sizeof *jobs);
    DBT_ENSURE(cfg->instances && jobs, NOMEM, "out of memory");
    size_t hint = 0;
    for (size_t i = 0; i < n; i++) {
        cfg->n_instances++;
        jobs[i].r = &cfg->instances[i];
        DBT_TRY(load_one(ctl, names[i], prev, &hint, &jobs[i]));
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    /* A master key rotated since this handle loaded its own is read again here, on this thread:
       the jobs share ctl, so they may not (ctl_unseal's retry is off while they run). */
    for (size_t i = 0; i < n; i++) {
        const struct ctl_slot *a = jobs[i].active;
        if (jobs[i].make) {
            if (!ctl_key_opens(ctl->master, a->cert_pem, a->key, a->key_len)) {
                (void)ctl_master_refresh(ctl);
            }
            break;
        }
    }
    ctl->master_fixed = true;
    dbt_res made = dbt_par_run(n, 0, material_make, jobs);
    ctl->master_fixed = false;
    DBT_TRY(made);
    *out = cfg;
    cfg = NULL;
out:
    dbt_store_rollback(ctl->st);
    for (size_t i = 0; jobs != NULL && i < n; i++) {
        job_cleanup(&jobs[i]);
    }
    free(jobs);
    ctl_strv_free(names, n);
    dbt_rt_config_free(cfg);
    return res;
}

dbt_res dbt_ctl_runtime_load(struct dbt_ctl *ctl, const struct dbt_rt_config *prev,
                             struct dbt_rt_config **out)
{
    return load(ctl, NULL, prev, out);
}

dbt_res dbt_ctl_instance_export(struct dbt_ctl *ctl, const char *name, struct dbt_rt_config **out)
{
    return load(ctl, name, NULL, out);
}
