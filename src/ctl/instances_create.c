/*
 * instances_create.c - `instances create`: defaults (engine, region, the store's default CA,
 * TLS versions of the engine version), the spec applied and validated, then the instance row,
 * its first server slot and its client CA in one write transaction, with keys generated before
 * it (internal.h, ctl_keys).
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/instances.h"
#include "ctl/internal.h"

/*
 * The instance create makes, in p: defaults, the store's default CA, spec applied and
 * validated; EXISTS when the name or the listen address is taken. Inside a transaction: create
 * runs it once to plan the keys and again under the write lock, where it re-checks everything.
 */
static dbt_res create_prepare(struct dbt_ctl *ctl, const char *name,
                              const struct dbt_engine_info *eng,
                              const struct dbt_ctl_instance_spec *spec, struct dbt_ctl_instance *p)
{
    dbt_res res = DBT_OK;
    dbt_ctl_instance_cleanup(p);
    p->name = ctl_strdup(name);
    p->engine = ctl_strdup(eng->engine);
    p->engine_version = ctl_strdup(eng->version);
    p->region = ctl_strdup(spec->region && *spec->region ? spec->region : DBT_CTL_DEFAULT_REGION);
    DBT_TRY(ctl_instance_check_region(p->region));
    p->ca_mode = ctl_strdup("shared");
    p->ssl_mode = DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED;
    p->max_client_certs = DBT_CTL_DEFAULT_MAX_CLIENT_CERTS;
    p->ciphers = ctl_strdup(eng->default_ciphers);
    DBT_TRY(ctl_default_ca_id(ctl, &p->ca_id));
    /* TLS defaults follow the engine version chosen. */
    const struct dbt_engine_info *ver = dbt_ctl_engine_find(
        p->engine, spec->engine_version ? spec->engine_version : p->engine_version);
    p->tls_min = ctl_strdup(ver ? ver->default_tls_min : DBT_CTL_DEFAULT_TLS_MIN);
    p->tls_max = ctl_strdup(ver ? ver->default_tls_max : DBT_CTL_DEFAULT_TLS_MAX);
    DBT_TRY(ctl_instance_apply_spec(ctl, p, spec));

    struct ctl_inst dup = {0};
    res = ctl_inst_load(ctl, name, &dup);
    ctl_inst_cleanup(&dup);
    if (dbt_ok(res)) {
        DBT_BAIL(EXISTS, "instance \"%s\" already exists", name);
    }
    DBT_ENSURE(res.code == DBT_E_NOT_FOUND, STORE, "%s", dbt_errmsg());
    res = DBT_OK;
    DBT_TRY(ctl_instance_check_listen(ctl, p, -1));
out:
    return res;
}

/* One attempt of create: plan the keys (read transaction), generate them (no lock), then the
   write transaction. keys->stale on return: the store changed in between; try again. */
static dbt_res create_once(struct dbt_ctl *ctl, const char *name, const struct dbt_engine_info *eng,
                           const struct dbt_ctl_instance_spec *spec,
                           const struct dbt_ctl_validity *validity, struct ctl_keys *keys,
                           struct dbt_ctl_instance *out)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl_instance p = {0};
    struct ctl_slot slot = {0};
    char *eps = NULL, *ca_pem = NULL, *sha1 = NULL, *crl = NULL;
    uint8_t *ca_key = NULL;
    size_t ca_key_len = 0;
    struct dbt_stmt *s = NULL;

    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(create_prepare(ctl, name, eng, spec, &p));
    DBT_TRY(ctl_build_slot_keys(ctl, &p, keys));
    ctl_keys_want(keys, CTL_CLIENT_CA_KEY);
    dbt_store_rollback(ctl->st);
    DBT_TRY(ctl_keys_generate(keys));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(create_prepare(ctl, name, eng, spec, &p));
    DBT_TRY(ctl_build_slot(ctl, &p, validity, keys, &slot));
    /* The CRL needs the instance id only to look up revocations; a new one has none. */
    DBT_TRY(ctl_new_client_ca(ctl, -1, name, validity, keys, &ca_pem, &ca_key, &ca_key_len, &sha1,
                              &crl));
    eps = ctl_instance_join_endpoints(&p);
    int64_t now = dbt_now_unix();
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_ADD, &s));
    dbt_stmt_bind_text(s, 1, p.name);
    dbt_stmt_bind_text(s, 2, p.engine);
    dbt_stmt_bind_text(s, 3, p.engine_version);
    dbt_stmt_bind_text(s, 4, p.listen);
    dbt_stmt_bind_text(s, 5, p.backend);
    dbt_stmt_bind_text(s, 6, p.backend_tls_ca);
    dbt_stmt_bind_text(s, 7, eps);
    dbt_stmt_bind_text(s, 8, p.region);
    dbt_stmt_bind_text(s, 9, p.ca_mode);
    dbt_stmt_bind_text(s, 10, p.ca_id);
    dbt_stmt_bind_text(s, 11, dbt_ctl_ssl_mode_name(p.ssl_mode));
    dbt_stmt_bind_text(s, 12, p.tls_min);
    dbt_stmt_bind_text(s, 13, p.tls_max);
    dbt_stmt_bind_text(s, 14, p.ciphers);
    dbt_stmt_bind_text(s, 15, p.ciphersuites);
    dbt_stmt_bind_text(s, 16, p.groups);
    dbt_stmt_bind_text(s, 17, p.hba_text);
    dbt_stmt_bind_text(s, 18, p.ident_text);
    dbt_stmt_bind_text(s, 19, p.user_require_text);
    dbt_stmt_bind_int(s, 20, p.max_client_certs);
    dbt_stmt_bind_int(s, 21, now);
    dbt_stmt_bind_int(s, 22, now);
    dbt_stmt_bind_text(s, 23, ca_pem);
    dbt_stmt_bind_blob(s, 24, ca_key, ca_key_len);
    dbt_stmt_bind_text(s, 25, sha1);
    dbt_stmt_bind_text(s, 26, crl);
    dbt_stmt_bind_int(s, 27, 1);
    dbt_stmt_bind_text(s, 28, p.backend_tls_cert);
    dbt_stmt_bind_text(s, 29, p.backend_tls_key);
    dbt_stmt_bind_int(s, 30, p.client_info);
    bool row = false;
    DBT_TRY(dbt_stmt_step(s, &row));
    DBT_ENSURE(row, INTERNAL, "instance insert returned no id");
    int64_t id = dbt_stmt_int(s, 0);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("create-mid");
    DBT_TRY(ctl_slot_put(ctl, id, "active", &slot));
    char *obj = ctl_printf("instance/%s", name);
    res = ctl_event(ctl, "instance.create", obj,
                    "engine=%s version=%s listen=%s backend=%s endpoints=%s region=%s "
                    "ca_mode=%s ca=%s ssl_mode=%s",
                    p.engine, p.engine_version, p.listen, p.backend, eps, p.region, p.ca_mode,
                    p.ca_id, dbt_ctl_ssl_mode_name(p.ssl_mode));
    free(obj);
    DBT_TRY(res);
    if (out) {
        DBT_TRY(ctl_instance_describe_in_txn(ctl, name, out));
    }
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res) && out) {
        dbt_ctl_instance_cleanup(out);
    }
    dbt_ctl_instance_cleanup(&p);
    ctl_slot_cleanup(&slot);
    free(eps);
    free(ca_pem);
    free(ca_key);
    free(sha1);
    free(crl);
    return res;
}

dbt_res dbt_ctl_instance_create(struct dbt_ctl *ctl, const char *name,
                                const struct dbt_ctl_instance_spec *spec,
                                const struct dbt_ctl_validity *validity,
                                struct dbt_ctl_instance *out)
{
    if (out) {
        memset(out, 0, sizeof *out);
    }
    dbt_res res = DBT_OK;
    struct ctl_keys keys = {0};
    DBT_TRY(ctl_instance_check_name(name));
    DBT_ENSURE(spec, INVALID, "no instance attributes given");
    DBT_ENSURE(spec->engine && *spec->engine, INVALID,
               "an engine is required (postgres, mysql or mariadb)");
    const struct dbt_engine_info *eng = dbt_ctl_engine_find(spec->engine, NULL);
    DBT_ENSURE(eng, INVALID, "unknown engine \"%s\"; use postgres, mysql or mariadb", spec->engine);
    DBT_ENSURE(spec->listen, INVALID, "a listen address (HOST:PORT) is required");
    DBT_ENSURE(spec->backend, INVALID, "a backend address (HOST:PORT or socket path) is required");
    DBT_ENSURE(spec->endpoints, INVALID, "at least one endpoint (DNS name or IP) is required");
    for (int i = 0; i < CTL_KEYS_TRIES; i++) {
        ctl_keys_cleanup(&keys);
        res = create_once(ctl, name, eng, spec, validity, &keys, out);
        if (!keys.stale) {
            break;
        }
    }
out:
    ctl_keys_cleanup(&keys);
    return res;
}
