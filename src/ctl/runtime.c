/*
 * runtime.c - the snapshot dbtlsd serves from (runtime.h): per instance its attributes, the
 * active server certificate chain and decrypted key, the client CA and its CRL, and the access
 * rules, all read in one read transaction so the daemon never sees half an operation.
 */
#include <stdlib.h>
#include <string.h>

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

static dbt_res load_one(struct dbt_ctl *ctl, const char *name, struct dbt_rt_instance *r)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    struct dbt_pki_crl *crl = NULL;
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
    struct ctl_slot *a = ctl_slots_find(&slots, "active");
    DBT_ENSURE(a, CORRUPT, "instance \"%s\" has no active server certificate", name);
    struct dbt_ctl_instance *p = &in.pub;
    DBT_TRY(ctl_slot_chain(ctl, a, &r->cert_chain_pem));
    DBT_TRY(ctl_unseal_pem(ctl, a->cert_pem, a->key, a->key_len, &r->key_pem));
    /* A fresh CRL per load: the stored one would expire (nextUpdate) in a daemon that runs for
       weeks without a change; cRLNumber 0 = the issue time, above every stored number. */
    DBT_TRY(ctl_crl_build(ctl, &in, 0, &r->crl_pem));
    DBT_TRY(dbt_pki_crl_from_pem(r->crl_pem, &crl));
    struct dbt_pki_crl_info ci;
    DBT_TRY(dbt_pki_crl_info(crl, &ci));
    r->crl_next_update = ci.next_update;
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
    r->client_ca_pem = in.client_ca_pem;
    /* Ownership moved to r: forget it in the row so cleanup does not free it. */
    p->name = p->engine = p->engine_version = p->listen = p->backend = p->backend_tls_ca = NULL;
    p->backend_tls_cert = p->backend_tls_key = NULL;
    p->endpoints = NULL;
    p->n_endpoints = 0;
    p->tls_min = p->tls_max = p->ciphers = p->ciphersuites = p->groups = NULL;
    p->hba_text = p->ident_text = p->user_require_text = NULL;
    in.client_ca_pem = NULL;
out:
    dbt_pki_crl_free(crl);
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    return res;
}

static dbt_res load(struct dbt_ctl *ctl, const char *only, struct dbt_rt_config **out)
{
    *out = NULL;
    dbt_res res = DBT_OK;
    struct dbt_rt_config *cfg = calloc(1, sizeof *cfg);
    char **names = NULL;
    size_t n = 0;
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
    DBT_ENSURE(cfg->instances, NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        cfg->n_instances++;
        DBT_TRY(load_one(ctl, names[i], &cfg->instances[i]));
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = cfg;
    cfg = NULL;
out:
    dbt_store_rollback(ctl->st);
    ctl_strv_free(names, n);
    dbt_rt_config_free(cfg);
    return res;
}

dbt_res dbt_ctl_runtime_load(struct dbt_ctl *ctl, struct dbt_rt_config **out)
{
    return load(ctl, NULL, out);
}

dbt_res dbt_ctl_instance_export(struct dbt_ctl *ctl, const char *name, struct dbt_rt_config **out)
{
    return load(ctl, name, out);
}
