/*
 * cas.c - the shared CAs as users see them (`dbtls cas list`, like `aws rds
 * describe-certificates`), the default CA for new instances, deleting an imported CA (imported
 * by cas_import.c), and CA bundles (global, per CA, per region, per instance) as PEM or PKCS#7,
 * as RDS serves them.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/internal.h"

void dbt_ctl_ca_list_cleanup(struct dbt_ctl_ca_list *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        struct dbt_ctl_ca_info *c = &l->items[i];
        free(c->id);
        free(c->type);
        free(c->key_algorithm);
        free(c->signature_algorithm);
        free(c->sha1_fingerprint);
        free(c->cert);
        ctl_strv_free(c->regions, c->n_regions);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

dbt_res ctl_default_ca_id(struct dbt_ctl *ctl, char **out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SETTING_GET, &s));
    dbt_stmt_bind_text(s, 1, "default_ca_id");
    DBT_TRY(dbt_stmt_step(s, &row));
    *out = ctl_strdup(row ? dbt_stmt_text(s, 0) : DBT_CTL_DEFAULT_CA_ID);
    DBT_TRY(dbt_stmt_exec(s));
out:
    return res;
}

dbt_res dbt_ctl_cas_list(struct dbt_ctl *ctl, struct dbt_ctl_ca_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct dbt_ctl_ca_list l = {0};
    struct dbt_pki_cert_info info = {0};
    char *def = NULL;
    char **ids = NULL, **pems = NULL;
    size_t n = 0;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_default_ca_id(ctl, &def));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_ROOTS, &s));
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        char **ni = realloc(ids, (n + 1) * sizeof *ni);
        if (ni) {
            ids = ni;
        }
        char **np = realloc(pems, (n + 1) * sizeof *np);
        if (np) {
            pems = np;
        }
        DBT_ENSURE(ni && np, NOMEM, "out of memory");
        ids[n] = ctl_strdup(dbt_stmt_text(s, 0));
        pems[n] = ctl_strdup(dbt_stmt_text(s, 4));
        n++;
    }
    l.items = calloc(n ? n : 1, sizeof *l.items);
    DBT_ENSURE(l.items, NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct dbt_ctl_ca_info *c = &l.items[i];
        l.n++;
        DBT_TRY(dbt_pki_cert_info_pem(pems[i], &info));
        c->id = ctl_strdup(ids[i]);
        c->type = ctl_strdup(ctl_ca_family_find(ids[i]) ? "CA" : "imported CA");
        c->key_algorithm = ctl_strdup(info.key_alg);
        c->signature_algorithm = ctl_strdup(info.sig_alg);
        c->sha1_fingerprint = ctl_strdup(info.sha1);
        c->cert = ctl_strdup(pems[i]);
        c->valid_from = info.not_before;
        c->valid_till = info.not_after;
        c->is_default = strcmp(ids[i], def) == 0;
        dbt_pki_cert_info_cleanup(&info);
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_REGIONS, &s));
        dbt_stmt_bind_text(s, 1, ids[i]);
        for (;;) {
            bool row = false;
            DBT_TRY(dbt_stmt_step(s, &row));
            if (!row) {
                break;
            }
            DBT_TRY(ctl_strv_push(&c->regions, &c->n_regions, dbt_stmt_text(s, 0)));
        }
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = l;
    memset(&l, 0, sizeof l);
out:
    dbt_store_rollback(ctl->st);
    dbt_ctl_ca_list_cleanup(&l);
    dbt_pki_cert_info_cleanup(&info);
    ctl_strv_free(ids, n);
    ctl_strv_free(pems, n);
    free(def);
    return res;
}

/* A write transaction on CA ca_id: begun, the CA looked up into *fam and the default CA id in
 *def (free it); the caller commits, or rolls back on failure. */
static dbt_res ca_write_begin(struct dbt_ctl *ctl, const char *ca_id, struct ctl_ca_family *fam,
                              char **def)
{
    dbt_res res = dbt_store_begin(ctl->st, true);
    if (dbt_ok(res)) {
        res = ctl_ca_lookup(ctl, ca_id, fam);
    }
    if (dbt_ok(res)) {
        res = ctl_default_ca_id(ctl, def);
    }
    return res;
}

dbt_res dbt_ctl_cas_set_default(struct dbt_ctl *ctl, const char *ca_id)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    char *old = NULL;
    struct ctl_ca_family fam;
    DBT_TRY(ca_write_begin(ctl, ca_id, &fam, &old));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SETTING_PUT, &s));
    dbt_stmt_bind_text(s, 1, "default_ca_id");
    dbt_stmt_bind_text(s, 2, ca_id);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(ctl_event(ctl, "ca.set-default", "settings", "default_ca=%s previous=%s", ca_id, old));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    free(old);
    return res;
}

dbt_res dbt_ctl_cas_delete(struct dbt_ctl *ctl, const char *ca_id)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    char *def = NULL;
    struct ctl_ca_family fam;
    bool row = false;
    DBT_TRY(ca_write_begin(ctl, ca_id, &fam, &def));
    DBT_ENSURE(fam.imported, STATE, "CA %s is one of dbtls's own; only imported CAs are deleted",
               ca_id);
    DBT_ENSURE(strcmp(def, ca_id) != 0, STATE,
               "CA %s is the default for new instances; `dbtls cas set-default` another first",
               ca_id);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_USERS, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    DBT_TRY(dbt_stmt_step(s, &row));
    int64_t users = row ? dbt_stmt_int(s, 0) : 0;
    DBT_TRY(dbt_stmt_exec(s));
    DBT_ENSURE(users == 0, STATE,
               "CA %s still issues certificates of instances (%lld instances and certificate "
               "slots); move them to another CA first (`dbtls instances patch NAME --ca ID`)",
               ca_id, (long long)users);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_DELETE, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(ctl_event(ctl, "ca.delete", "ca", "ca=%s", ca_id));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    free(def);
    return res;
}

/* Appends the shared root of ca_id and its intermediates (region filter) to *acc. */
static dbt_res shared_bundle(struct dbt_ctl *ctl, const char *ca_id, const char *region, char **acc,
                             size_t *n_inter)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    char *root = NULL;
    DBT_TRY(ctl_shared_ca(ctl, ca_id, "", NULL, NULL, NULL, &root));
    DBT_TRY(ctl_append(acc, root));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_INTERMEDIATES, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    dbt_stmt_bind_text(s, 2, region);
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        DBT_TRY(ctl_append(acc, dbt_stmt_text(s, 4)));
        (*n_inter)++;
    }
out:
    free(root);
    return res;
}

dbt_res dbt_ctl_bundle(struct dbt_ctl *ctl, const char *ca_id, const char *region,
                       const char *instance, enum dbt_ctl_bundle_format fmt, uint8_t **out,
                       size_t *len)
{
    *out = NULL;
    *len = 0;
    dbt_res res = DBT_OK;
    char *acc = NULL;
    struct ctl_inst in = {0};
    struct dbt_pki_certs certs = {0};
    char **imported = NULL;
    size_t n_imported = 0;
    struct ctl_ca_family fam;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    if (ca_id) {
        DBT_TRY(ctl_ca_lookup(ctl, ca_id, &fam));
    }
    if (instance) {
        DBT_ENSURE(!ca_id && !region, USAGE,
                   "an instance bundle cannot be combined with a CA id or region");
        DBT_TRY(ctl_inst_load(ctl, instance, &in));
        DBT_TRY(ctl_server_ca_pem(ctl, &in, &acc));
    } else {
        size_t n_inter = 0;
        for (size_t i = 0; i < DBT_ARRAY_LEN(ctl_ca_families); i++) {
            if (ca_id && strcmp(ca_id, ctl_ca_families[i].id) != 0) {
                continue;
            }
            DBT_TRY(shared_bundle(ctl, ctl_ca_families[i].id, region, &acc, &n_inter));
        }
        /* imported CAs after the built-in ones; they issue in every region */
        DBT_TRY(ctl_imported_ids(ctl, &imported, &n_imported));
        for (size_t i = 0; i < n_imported; i++) {
            if (!ca_id || strcmp(ca_id, imported[i]) == 0) {
                DBT_TRY(shared_bundle(ctl, imported[i], "", &acc, &n_inter));
                n_inter++;
            }
        }
        DBT_ENSURE(!region || n_inter > 0, NOT_FOUND,
                   "no shared CA has an intermediate for region \"%s\" (regions are created when "
                   "an instance first uses them)",
                   region);
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    DBT_ENSURE(acc, NOT_FOUND, "the bundle is empty");
    if (fmt == DBT_CTL_BUNDLE_PEM) {
        *len = strlen(acc);
        *out = (uint8_t *)acc;
        acc = NULL;
    } else {
        DBT_TRY(dbt_pki_certs_from_pem(acc, &certs));
        DBT_TRY(dbt_pki_p7b_der(&certs, out, len));
    }
out:
    dbt_store_rollback(ctl->st);
    ctl_strv_free(imported, n_imported);
    ctl_inst_cleanup(&in);
    dbt_pki_certs_free(&certs);
    free(acc);
    return res;
}
