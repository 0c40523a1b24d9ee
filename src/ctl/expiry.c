/*
 * expiry.c - what the scheduler reports rather than changes (auto.h): the expiry list of every
 * certificate dbtls manages (the Prometheus expiry gauges, admin/metrics.c) and the events after a
 * sink's marker, with the markers themselves, so each notification sink gets every event once.
 */
#include "ctl/auto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/internal.h"

/* ---- expiry list --------------------------------------------------------------------------- */

void dbt_ctl_expiry_list_cleanup(struct dbt_ctl_expiry_list *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].instance);
        free(l->items[i].kind);
        free(l->items[i].slot);
        free(l->items[i].name);
        free(l->items[i].serial);
        free(l->items[i].sha1);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

dbt_res ctl_expiry_add_known(struct dbt_ctl_expiry_list *l, const char *instance, const char *kind,
                             const char *slot, const char *name, const char *serial,
                             const char *sha1, int64_t not_after)
{
    struct dbt_ctl_expiry *nv = realloc(l->items, (l->n + 1) * sizeof *nv);
    if (nv == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    l->items = nv;
    l->items[l->n++] = (struct dbt_ctl_expiry){
        .instance = ctl_strdup(instance ? instance : ""),
        .kind = ctl_strdup(kind),
        .slot = ctl_strdup(slot ? slot : ""),
        .name = ctl_strdup(name ? name : ""),
        .serial = ctl_strdup(serial ? serial : ""),
        .sha1 = ctl_strdup(sha1 ? sha1 : ""),
        .not_after = not_after,
    };
    return DBT_OK;
}

dbt_res ctl_expiry_add(struct dbt_ctl_expiry_list *l, const char *instance, const char *kind,
                       const char *slot, const char *name, const char *pem)
{
    struct dbt_pki_cert_info info = {0};
    dbt_res r = dbt_pki_cert_info_pem(pem, &info);
    if (dbt_ok(r)) {
        r = ctl_expiry_add_known(l, instance, kind, slot, name, info.serial, info.sha1,
                                 info.not_after);
    }
    dbt_pki_cert_info_cleanup(&info);
    return r;
}

bool ctl_file_cert_info(const char *path, struct dbt_pki_cert_info *out)
{
    if (path == NULL || path[0] == '\0') {
        return false;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    struct dbt_pki_cert_info info = {0};
    if (!dbt_ok(dbt_pki_cert_info_pem(buf, &info))) {
        dbt_pki_cert_info_cleanup(&info);
        return false;
    }
    *out = info;
    return true;
}

/* The certificate file dbtlsd shows a TLS backend (--backend-tls-cert), named by its path. */
static dbt_res add_backend_client_cert(struct dbt_ctl_expiry_list *l, const char *instance,
                                       const char *path)
{
    struct dbt_pki_cert_info info = {0};
    if (!ctl_file_cert_info(path, &info)) {
        return DBT_OK;
    }
    dbt_res r = ctl_expiry_add_known(l, instance, "backend-client-cert", "", path, info.serial,
                                     info.sha1, info.not_after);
    dbt_pki_cert_info_cleanup(&info);
    return r;
}

/*
 * An imported CA (cas import): the CA itself (kind imported-ca, name = its id) and each
 * certificate of its chain (imported-chain, name = ID/N from 1 up to the root): when any of them
 * ends, clients stop verifying the instances it serves, and dbtls cannot renew them.
 */
static dbt_res add_imported(struct dbt_ctl_expiry_list *l, const char *id, const char *pem)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_certs certs = {0};
    struct dbt_pki_cert_info info = {0};
    DBT_TRY(dbt_pki_certs_from_pem(pem, &certs));
    for (size_t i = 0; i < certs.n; i++) {
        DBT_TRY(dbt_pki_cert_info(certs.v[i], &info));
        char name[96];
        if (i == 0) {
            snprintf(name, sizeof(name), "%s", id);
        } else {
            snprintf(name, sizeof(name), "%s/%zu", id, i);
        }
        DBT_TRY(ctl_expiry_add_known(l, "", i == 0 ? "imported-ca" : "imported-chain", "", name,
                                     info.serial, info.sha1, info.not_after));
        dbt_pki_cert_info_cleanup(&info);
    }
out:
    dbt_pki_cert_info_cleanup(&info);
    dbt_pki_certs_free(&certs);
    return res;
}

dbt_res dbt_ctl_expiry_list(struct dbt_ctl *ctl, struct dbt_ctl_expiry_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct dbt_ctl_expiry_list l = {0};
    struct dbt_stmt *s = NULL;
    char **ids = NULL, **names = NULL;
    size_t n_ids = 0, n_names = 0;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_ROOTS, &s));
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        if (ctl_ca_family_find(dbt_stmt_text(s, 0)) == NULL) {
            DBT_TRY(add_imported(&l, dbt_stmt_text(s, 0), dbt_stmt_text(s, 4)));
            continue;
        }
        DBT_TRY(ctl_expiry_add(&l, "", "root-ca", "", dbt_stmt_text(s, 0), dbt_stmt_text(s, 4)));
        DBT_TRY(ctl_strv_push(&ids, &n_ids, dbt_stmt_text(s, 0)));
    }
    for (size_t i = 0; i < n_ids; i++) {
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_INTERMEDIATES, &s));
        dbt_stmt_bind_text(s, 1, ids[i]);
        dbt_stmt_bind_text(s, 2, NULL);
        for (;;) {
            bool row = false;
            DBT_TRY(dbt_stmt_step(s, &row));
            if (!row) {
                break;
            }
            char *nm = ctl_printf("%s/%s", ids[i], dbt_stmt_text(s, 1));
            res = ctl_expiry_add(&l, "", "intermediate-ca", "", nm, dbt_stmt_text(s, 4));
            free(nm);
            DBT_TRY(res);
        }
    }
    DBT_TRY(ctl_instance_names(ctl, false, &names, &n_names));
    for (size_t i = 0; i < n_names; i++) {
        ctl_inst_cleanup(&in);
        ctl_slots_cleanup(&slots);
        DBT_TRY(ctl_inst_load(ctl, names[i], &in));
        DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
        for (size_t k = 0; k < slots.n; k++) {
            if (slots.v[k].ca_pem) {
                DBT_TRY(ctl_expiry_add(&l, names[i], "server-ca", slots.v[k].slot, "",
                                       slots.v[k].ca_pem));
            }
        }
        for (size_t k = 0; k < slots.n; k++) {
            DBT_TRY(ctl_expiry_add(&l, names[i], "server-cert", slots.v[k].slot, "",
                                   slots.v[k].cert_pem));
        }
        DBT_TRY(ctl_expiry_add(&l, names[i], "client-ca", "", "", in.client_ca_pem));
        DBT_TRY(add_backend_client_cert(&l, names[i], in.pub.backend_tls_cert));
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_LIST, &s));
        dbt_stmt_bind_int(s, 1, in.id);
        for (;;) {
            bool row = false;
            DBT_TRY(dbt_stmt_step(s, &row));
            if (!row) {
                break;
            }
            DBT_TRY(ctl_expiry_add(&l, names[i], "client-cert", "", dbt_stmt_text(s, 0),
                                   dbt_stmt_text(s, 3)));
        }
    }
    DBT_TRY(ctl_admin_expiry(ctl, &l));
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = l;
    l = (struct dbt_ctl_expiry_list){0};
out:
    dbt_store_rollback(ctl->st);
    ctl_strv_free(ids, n_ids);
    ctl_strv_free(names, n_names);
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    dbt_ctl_expiry_list_cleanup(&l);
    return res;
}

/* ---- notification delivery ----------------------------------------------------------------- */

dbt_res dbt_ctl_events_after(struct dbt_ctl *ctl, int64_t after, size_t limit,
                             struct dbt_ctl_event_list *out)
{
    return ctl_events_read(ctl, DBT_SQL_EVENT_AFTER, NULL, after, limit, out);
}

dbt_res dbt_ctl_events_max_id(struct dbt_ctl *ctl, int64_t *out)
{
    *out = 0;
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_EVENT_MAX_ID, &s));
    DBT_TRY(dbt_stmt_step(s, &row));
    if (row) {
        *out = dbt_stmt_int(s, 0);
    }
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    return res;
}

dbt_res dbt_ctl_notify_mark_get(struct dbt_ctl *ctl, const char *sink, int64_t *last_id,
                                bool *found)
{
    *last_id = 0;
    *found = false;
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_NOTIFY_MARK_GET, &s));
    dbt_stmt_bind_text(s, 1, sink);
    DBT_TRY(dbt_stmt_step(s, found));
    if (*found) {
        *last_id = dbt_stmt_int(s, 0);
    }
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    return res;
}

dbt_res dbt_ctl_notify_mark_put(struct dbt_ctl *ctl, const char *sink, int64_t last_id)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    DBT_ENSURE(!ctl->read_only, STATE, "the store is open read-only");
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_NOTIFY_MARK_PUT, &s));
    dbt_stmt_bind_text(s, 1, sink);
    dbt_stmt_bind_int(s, 2, last_id);
    dbt_stmt_bind_int(s, 3, dbt_now_unix());
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    return res;
}
