/*
 * rows.c - instance and server slot rows as ctl reads and writes them (struct ctl_inst,
 * struct ctl_slot in internal.h), and the public views built from them: certificate views,
 * an instance's server CA bundle, a slot's chain for the TLS front. The certificate material
 * itself (CAs, slots, client CA, CRL, sealing) is made in material.c.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/internal.h"

/* ---- rows ----------------------------------------------------------------------------------- */

void ctl_inst_cleanup(struct ctl_inst *in)
{
    if (!in) {
        return;
    }
    dbt_ctl_instance_cleanup(&in->pub);
    free(in->client_ca_pem);
    free(in->client_ca_key);
    free(in->client_ca_sha1);
    free(in->crl_pem);
    memset(in, 0, sizeof *in);
}

dbt_res ctl_inst_load(struct dbt_ctl *ctl, const char *name, struct ctl_inst *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    struct ctl_inst in = {0};
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_GET, &s));
    dbt_stmt_bind_text(s, 1, name);
    DBT_TRY(dbt_stmt_step(s, &row));
    DBT_ENSURE(row, NOT_FOUND, "instance \"%s\" does not exist", name ? name : "");
    struct dbt_ctl_instance *p = &in.pub;
    in.id = dbt_stmt_int(s, 0);
    p->name = ctl_strdup(dbt_stmt_text(s, 1));
    p->engine = ctl_strdup(dbt_stmt_text(s, 2));
    p->engine_version = ctl_strdup(dbt_stmt_text(s, 3));
    p->listen = ctl_strdup(dbt_stmt_text(s, 4));
    p->backend = ctl_strdup(dbt_stmt_text(s, 5));
    p->backend_tls_ca = ctl_strdup(dbt_stmt_text(s, 6));
    DBT_TRY(
        ctl_split(dbt_stmt_text(s, 7) ? dbt_stmt_text(s, 7) : "", &p->endpoints, &p->n_endpoints));
    p->region = ctl_strdup(dbt_stmt_text(s, 8));
    p->ca_mode = ctl_strdup(dbt_stmt_text(s, 9));
    p->ca_id = ctl_strdup(dbt_stmt_text(s, 10));
    DBT_TRY(dbt_ctl_ssl_mode_parse(dbt_stmt_text(s, 11), &p->ssl_mode));
    p->tls_min = ctl_strdup(dbt_stmt_text(s, 12));
    p->tls_max = ctl_strdup(dbt_stmt_text(s, 13));
    p->ciphers = ctl_strdup(dbt_stmt_text(s, 14));
    p->ciphersuites = ctl_strdup(dbt_stmt_text(s, 15));
    p->groups = ctl_strdup(dbt_stmt_text(s, 16));
    p->hba_text = ctl_strdup(dbt_stmt_text(s, 17));
    p->ident_text = ctl_strdup(dbt_stmt_text(s, 18));
    p->user_require_text = ctl_strdup(dbt_stmt_text(s, 19));
    p->max_client_certs = (int)dbt_stmt_int(s, 20);
    p->create_time = dbt_stmt_int(s, 21);
    p->update_time = dbt_stmt_int(s, 22);
    in.client_ca_pem = ctl_strdup(dbt_stmt_text(s, 23));
    size_t blen = 0;
    const void *b = dbt_stmt_blob(s, 24, &blen);
    in.client_ca_key = malloc(blen ? blen : 1);
    DBT_ENSURE(in.client_ca_key, NOMEM, "out of memory");
    if (blen) {
        memcpy(in.client_ca_key, b, blen);
    }
    in.client_ca_key_len = blen;
    in.client_ca_sha1 = ctl_strdup(dbt_stmt_text(s, 25));
    in.crl_pem = ctl_strdup(dbt_stmt_text(s, 26));
    in.crl_number = dbt_stmt_int(s, 27);
    p->backend_tls_cert = ctl_strdup(dbt_stmt_text(s, 28));
    p->backend_tls_key = ctl_strdup(dbt_stmt_text(s, 29));
    p->client_info = dbt_stmt_int(s, 30) != 0;
    DBT_TRY(dbt_stmt_exec(s));

    struct dbt_stmt *c = NULL;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_COUNT, &c));
    dbt_stmt_bind_int(c, 1, in.id);
    DBT_TRY(dbt_stmt_step(c, &row));
    p->n_client_certs = row ? (int)dbt_stmt_int(c, 0) : 0;
    DBT_TRY(dbt_stmt_exec(c));
    *out = in;
    memset(&in, 0, sizeof in);
out:
    ctl_inst_cleanup(&in);
    return res;
}

static uint8_t *dup_blob(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d) {
        abort();
    }
    if (n) {
        memcpy(d, p, n);
    }
    return d;
}

void ctl_slot_cleanup(struct ctl_slot *s)
{
    free(s->slot);
    free(s->ca_pem);
    free(s->ca_key);
    free(s->shared_ca_id);
    free(s->shared_region);
    free(s->cert_pem);
    free(s->key);
    memset(s, 0, sizeof *s);
}

void ctl_slots_cleanup(struct ctl_slots *s)
{
    for (size_t i = 0; i < s->n; i++) {
        ctl_slot_cleanup(&s->v[i]);
    }
    s->n = 0;
}

dbt_res ctl_slots_load(struct dbt_ctl *ctl, int64_t inst_id, struct ctl_slots *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    memset(out, 0, sizeof *out);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SLOT_GET, &s));
    dbt_stmt_bind_int(s, 1, inst_id);
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        DBT_ENSURE(out->n < 3, CORRUPT, "instance has more than three server slots");
        struct ctl_slot *r = &out->v[out->n++];
        size_t n = 0;
        const void *b;
        r->slot = ctl_strdup(dbt_stmt_text(s, 0));
        r->ca_pem = ctl_strdup(dbt_stmt_text(s, 1));
        if (!dbt_stmt_is_null(s, 2)) {
            b = dbt_stmt_blob(s, 2, &n);
            r->ca_key = dup_blob(b, n);
            r->ca_key_len = n;
        }
        r->shared_ca_id = ctl_strdup(dbt_stmt_text(s, 3));
        r->shared_region = ctl_strdup(dbt_stmt_text(s, 4));
        r->cert_pem = ctl_strdup(dbt_stmt_text(s, 5));
        b = dbt_stmt_blob(s, 6, &n);
        r->key = dup_blob(b, n);
        r->key_len = n;
        r->created_at = dbt_stmt_int(s, 7);
    }
out:
    if (!dbt_ok(res)) {
        ctl_slots_cleanup(out);
    }
    return res;
}

struct ctl_slot *ctl_slots_find(struct ctl_slots *s, const char *slot)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].slot, slot) == 0) {
            return &s->v[i];
        }
    }
    return NULL;
}

dbt_res ctl_slot_put(struct dbt_ctl *ctl, int64_t inst_id, const char *slot,
                     const struct ctl_slot *row)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_SLOT_PUT, &s);
    if (!dbt_ok(r)) {
        return r;
    }
    dbt_stmt_bind_int(s, 1, inst_id);
    dbt_stmt_bind_text(s, 2, slot);
    dbt_stmt_bind_text(s, 3, row->ca_pem);
    if (row->ca_key) {
        dbt_stmt_bind_blob(s, 4, row->ca_key, row->ca_key_len);
    }
    dbt_stmt_bind_text(s, 5, row->shared_ca_id);
    dbt_stmt_bind_text(s, 6, row->shared_region);
    dbt_stmt_bind_text(s, 7, row->cert_pem);
    dbt_stmt_bind_blob(s, 8, row->key, row->key_len);
    dbt_stmt_bind_int(s, 9, row->created_at);
    return dbt_stmt_exec(s);
}

/* ---- views ---------------------------------------------------------------------------------- */

dbt_res ctl_cert_fill(const char *pem, const char *slot, const char *name, const char *instance,
                      int64_t create_time, struct dbt_ctl_cert *out)
{
    struct dbt_pki_cert_info info;
    memset(out, 0, sizeof *out);
    dbt_res r = dbt_pki_cert_info_pem(pem, &info);
    if (!dbt_ok(r)) {
        return r;
    }
    out->slot = ctl_strdup(slot);
    out->name = ctl_strdup(name);
    out->instance = ctl_strdup(instance);
    out->cert_serial_number = ctl_strdup(info.serial);
    out->cert = ctl_strdup(pem);
    out->common_name = ctl_strdup(info.cn);
    out->sha1_fingerprint = ctl_strdup(info.sha1);
    out->subject = ctl_strdup(info.subject);
    out->issuer = ctl_strdup(info.issuer);
    out->key_algorithm = ctl_strdup(info.key_alg);
    out->create_time = create_time ? create_time : info.not_before;
    out->not_before = info.not_before;
    out->expiration_time = info.not_after;
    dbt_pki_cert_info_cleanup(&info);
    return DBT_OK;
}

void dbt_ctl_cert_cleanup(struct dbt_ctl_cert *c)
{
    if (!c) {
        return;
    }
    free(c->slot);
    free(c->name);
    free(c->instance);
    free(c->cert_serial_number);
    free(c->cert);
    free(c->common_name);
    free(c->sha1_fingerprint);
    free(c->subject);
    free(c->issuer);
    free(c->key_algorithm);
    memset(c, 0, sizeof *c);
}

void dbt_ctl_cert_list_cleanup(struct dbt_ctl_cert_list *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        dbt_ctl_cert_cleanup(&l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Appends pem to *acc unless an identical certificate is already there. */
static dbt_res append_unique(char **acc, const char *pem)
{
    if (*acc && strstr(*acc, pem)) {
        return DBT_OK;
    }
    dbt_res r = ctl_append(acc, pem);
    if (dbt_ok(r) && pem[0] && pem[strlen(pem) - 1] != '\n') {
        r = ctl_append(acc, "\n");
    }
    return r;
}

dbt_res ctl_server_ca_pem(struct dbt_ctl *ctl, const struct ctl_inst *in, char **out)
{
    dbt_res res = DBT_OK;
    struct ctl_slots slots = {0};
    char *acc = NULL, *pem = NULL;
    DBT_TRY(ctl_slots_load(ctl, in->id, &slots));
    for (size_t i = 0; i < slots.n; i++) {
        const struct ctl_slot *sl = &slots.v[i];
        if (sl->ca_pem) {
            DBT_TRY(append_unique(&acc, sl->ca_pem));
            continue;
        }
        DBT_TRY(ctl_shared_ca(ctl, sl->shared_ca_id, "", NULL, NULL, NULL, &pem));
        DBT_TRY(append_unique(&acc, pem));
        free(pem);
        pem = NULL;
        DBT_TRY(ctl_shared_ca(ctl, sl->shared_ca_id, sl->shared_region, NULL, NULL, NULL, &pem));
        DBT_TRY(append_unique(&acc, pem));
        free(pem);
        pem = NULL;
    }
    DBT_ENSURE(acc, CORRUPT, "instance \"%s\" has no server certificate slots", in->pub.name);
    *out = acc;
    acc = NULL;
out:
    free(acc);
    free(pem);
    ctl_slots_cleanup(&slots);
    return res;
}

dbt_res ctl_slot_chain(struct dbt_ctl *ctl, const struct ctl_slot *s, char **out)
{
    dbt_res res = DBT_OK;
    char *acc = NULL, *pem = NULL;
    DBT_TRY(append_unique(&acc, s->cert_pem));
    if (s->shared_ca_id) {
        DBT_TRY(ctl_shared_ca(ctl, s->shared_ca_id, s->shared_region, NULL, NULL, NULL, &pem));
        DBT_TRY(append_unique(&acc, pem));
    }
    *out = acc;
    acc = NULL;
out:
    free(acc);
    free(pem);
    return res;
}
