/*
 * instances_reset.c - `instances reset-ssl-config`: every client certificate of the instance
 * revoked and dropped, every server slot replaced by one new active slot, and a new client CA,
 * in one write transaction (the Cloud SQL operation of the same name).
 */
#include <stdbool.h>
#include <stdlib.h>

#include "base/clock.h"
#include "ctl/internal.h"

/* One attempt of reset-ssl-config (see create_once in instances_create.c). */
static dbt_res reset_once(struct dbt_ctl *ctl, const char *name,
                          const struct dbt_ctl_validity *validity, struct ctl_keys *keys)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slot slot = {0};
    struct dbt_stmt *s = NULL;
    char *ca_pem = NULL, *sha1 = NULL, *crl = NULL, *obj = NULL;
    uint8_t *ca_key = NULL;
    size_t ca_key_len = 0;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    DBT_TRY(ctl_build_slot_keys(ctl, &in.pub, keys));
    ctl_keys_want(keys, CTL_CLIENT_CA_KEY);
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    DBT_TRY(ctl_keys_generate(keys));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    /* Revoke every client certificate under the old client CA (kept in the audit trail). */
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_LIST, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    size_t revoked = 0;
    int64_t now = dbt_now_unix();
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_stmt *r = NULL;
        char *cname = ctl_strdup(dbt_stmt_text(s, 0));
        char *serial = ctl_strdup(dbt_stmt_text(s, 1));
        char *csha1 = ctl_strdup(dbt_stmt_text(s, 2));
        res = dbt_store_stmt(ctl->st, DBT_SQL_REVOKE_ADD, &r);
        if (dbt_ok(res)) {
            dbt_stmt_bind_int(r, 1, in.id);
            dbt_stmt_bind_text(r, 2, in.client_ca_sha1);
            dbt_stmt_bind_text(r, 3, serial);
            dbt_stmt_bind_text(r, 4, cname);
            dbt_stmt_bind_text(r, 5, csha1);
            dbt_stmt_bind_int(r, 6, now);
            res = dbt_stmt_exec(r);
        }
        free(cname);
        free(serial);
        free(csha1);
        DBT_TRY(res);
        revoked++;
    }
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_DELETE_ALL, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SLOT_DELETE_ALL, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("reset-mid");
    DBT_TRY(ctl_build_slot(ctl, &in.pub, validity, keys, &slot));
    DBT_TRY(ctl_slot_put(ctl, in.id, "active", &slot));
    DBT_TRY(ctl_new_client_ca(ctl, in.id, name, validity, keys, &ca_pem, &ca_key, &ca_key_len,
                              &sha1, &crl));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_SET_CLIENT_CA, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, ca_pem);
    dbt_stmt_bind_blob(s, 3, ca_key, ca_key_len);
    dbt_stmt_bind_text(s, 4, sha1);
    dbt_stmt_bind_text(s, 5, crl);
    dbt_stmt_bind_int(s, 6, 1);
    dbt_stmt_bind_int(s, 7, now);
    DBT_TRY(dbt_stmt_exec(s));
    obj = ctl_printf("instance/%s", name);
    DBT_TRY(ctl_event(ctl, "instance.reset-ssl-config", obj, "client_certs_revoked=%zu ca_mode=%s",
                      revoked, in.pub.ca_mode));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    ctl_slot_cleanup(&slot);
    free(ca_pem);
    free(ca_key);
    free(sha1);
    free(crl);
    free(obj);
    return res;
}

dbt_res dbt_ctl_instance_reset_ssl(struct dbt_ctl *ctl, const char *name,
                                   const struct dbt_ctl_validity *validity)
{
    dbt_res res = DBT_OK;
    struct ctl_keys keys = {0};
    for (int i = 0; i < CTL_KEYS_TRIES; i++) {
        ctl_keys_cleanup(&keys);
        res = reset_once(ctl, name, validity, &keys);
        if (!keys.stale) {
            break;
        }
    }
    ctl_keys_cleanup(&keys);
    return res;
}
