/*
 * admin_ca.c - the admin CA and the certificates it issues (admin_ca.h). Kept in the settings
 * table so that no schema migration is needed; created lazily, in one write transaction, the
 * first time a read-write handle asks for it.
 */
#include "ctl/admin_ca.h"

#include <stdlib.h>
#include <string.h>

#include "ctl/internal.h"

#define ADMIN_CA_CERT_KEY "admin_ca_cert"
#define ADMIN_CA_KEY_KEY "admin_ca_key"
#define ADMIN_LEAF_SECS CTL_YEAR_SECS

void dbt_ctl_admin_cert_cleanup(struct dbt_ctl_admin_cert *c)
{
    free(c->cert_pem);
    dbt_pki_wipe_free(c->key_pem);
    free(c->ca_pem);
    free(c->serial);
    free(c->sha1_fingerprint);
    memset(c, 0, sizeof(*c));
}

static dbt_res setting_get(struct dbt_ctl *ctl, const char *key, char **out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SETTING_GET, &s));
    dbt_stmt_bind_text(s, 1, key);
    DBT_TRY(dbt_stmt_step(s, &row));
    *out = row ? ctl_strdup(dbt_stmt_text(s, 0)) : NULL;
    DBT_TRY(dbt_stmt_exec(s));
out:
    return res;
}

static dbt_res setting_put(struct dbt_ctl *ctl, const char *key, const char *value)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SETTING_PUT, &s));
    dbt_stmt_bind_text(s, 1, key);
    dbt_stmt_bind_text(s, 2, value);
    DBT_TRY(dbt_stmt_exec(s));
out:
    return res;
}

static char *to_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    if (s == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static dbt_res from_hex(const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 != 0) {
        return dbt_fail(DBT_E_CORRUPT, "the stored admin CA key is damaged (odd hex length)");
    }
    uint8_t *b = malloc(n / 2 + 1);
    if (b == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return dbt_fail(DBT_E_CORRUPT, "the stored admin CA key is damaged (not hex)");
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *len = n / 2;
    return DBT_OK;
}

/* Makes the admin CA inside the caller's write transaction (its key generated before). */
static dbt_res create_ca(struct dbt_ctl *ctl, struct ctl_keys *keys, char **pem_out)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *cert = NULL;
    struct dbt_pki_key *key = NULL;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    char *hex = NULL, *pem = NULL;
    struct dbt_pki_cert_info info = {0};

    DBT_TRY(ctl_issue_ca(keys, CTL_CLIENT_CA_KEY, DBT_PKI_SHA384, "dbtls admin CA", CTL_CA_SECS, 0,
                         NULL, NULL, &cert, &key));
    DBT_TRY(ctl_seal(ctl, cert, key, &blob, &blob_len));
    hex = to_hex(blob, blob_len);
    DBT_ENSURE(hex != NULL, NOMEM, "out of memory");
    DBT_TRY(dbt_pki_cert_to_pem(cert, &pem));
    DBT_TRY(dbt_pki_cert_info(cert, &info));
    DBT_TRY(setting_put(ctl, ADMIN_CA_CERT_KEY, pem));
    DBT_TRY(setting_put(ctl, ADMIN_CA_KEY_KEY, hex));
    DBT_TRY(
        ctl_event(ctl, "admin-ca.create", "admin-ca", "serial=%s sha1=%s", info.serial, info.sha1));
    *pem_out = pem;
    pem = NULL;
out:
    dbt_pki_cert_info_cleanup(&info);
    dbt_pki_cert_free(cert);
    dbt_pki_key_free(key);
    free(blob);
    free(hex);
    free(pem);
    return res;
}

/*
 * Loads the admin CA (creating it when missing and the handle may write). When key is not NULL,
 * *key receives its private key. Runs its own transactions.
 */
static dbt_res load_ca(struct dbt_ctl *ctl, char **pem_out, struct dbt_pki_key **key)
{
    dbt_res res = DBT_OK;
    char *pem = NULL, *hex = NULL;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    struct ctl_keys keys = {0};

    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(setting_get(ctl, ADMIN_CA_CERT_KEY, &pem));
    DBT_TRY(setting_get(ctl, ADMIN_CA_KEY_KEY, &hex));
    dbt_store_rollback(ctl->st);
    if (pem == NULL || hex == NULL) {
        DBT_ENSURE(!ctl->read_only, STATE,
                   "no admin CA yet; `dbtls admin-certs create NAME --out-dir DIR` creates it");
        free(pem);
        free(hex);
        pem = hex = NULL;
        ctl_keys_want(&keys, CTL_CLIENT_CA_KEY);
        DBT_TRY(ctl_keys_generate(&keys));
        DBT_TRY(dbt_store_begin(ctl->st, true));
        /* Re-read under the write lock: another process may have created it meanwhile. */
        DBT_TRY(setting_get(ctl, ADMIN_CA_CERT_KEY, &pem));
        DBT_TRY(setting_get(ctl, ADMIN_CA_KEY_KEY, &hex));
        if (pem == NULL || hex == NULL) {
            free(pem);
            free(hex);
            pem = hex = NULL;
            DBT_TRY(create_ca(ctl, &keys, &pem));
            DBT_TRY(ctl_commit(ctl));
            DBT_TRY(dbt_store_begin(ctl->st, false));
            DBT_TRY(setting_get(ctl, ADMIN_CA_KEY_KEY, &hex));
            dbt_store_rollback(ctl->st);
        } else {
            dbt_store_rollback(ctl->st);
        }
        DBT_ENSURE(hex != NULL, CORRUPT, "the admin CA has no stored key");
    }
    if (key != NULL) {
        DBT_TRY(from_hex(hex, &blob, &blob_len));
        DBT_TRY(ctl_unseal(ctl, pem, blob, blob_len, key));
    }
    *pem_out = pem;
    pem = NULL;
out:
    dbt_store_rollback(ctl->st);
    ctl_keys_cleanup(&keys);
    free(pem);
    free(hex);
    free(blob);
    return res;
}

dbt_res dbt_ctl_admin_ca(struct dbt_ctl *ctl, char **ca_pem_out)
{
    *ca_pem_out = NULL;
    return load_ca(ctl, ca_pem_out, NULL);
}

static dbt_res issue(struct dbt_ctl *ctl, enum dbt_pki_profile profile, const char *cn,
                     const char *const *san, size_t n_san, int64_t validity_secs,
                     struct dbt_ctl_admin_cert *out)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *ca = NULL, *cert = NULL;
    struct dbt_pki_key *ca_key = NULL, *key = NULL;
    struct dbt_pki_cert_info info = {0};
    struct dbt_ctl_admin_cert n = {0};

    DBT_TRY(load_ca(ctl, &n.ca_pem, &ca_key));
    DBT_TRY(dbt_pki_cert_from_pem(n.ca_pem, &ca));
    DBT_TRY(ctl_key_generate(CTL_LEAF_KEY, &key));
    struct dbt_pki_cert_spec spec = {
        .profile = profile,
        .cn = cn,
        .o = "dbtls",
        .ou = "admin",
        .validity_secs = validity_secs > 0 ? validity_secs : ADMIN_LEAF_SECS,
        .pathlen = -1,
        .san = san,
        .n_san = n_san,
        .digest = DBT_PKI_SHA256,
        .key = key,
        .issuer = ca,
        .issuer_key = ca_key,
    };
    DBT_TRY(dbt_pki_cert_issue(&spec, &cert));
    DBT_TRY(dbt_pki_cert_to_pem(cert, &n.cert_pem));
    DBT_TRY(dbt_pki_key_to_pem(key, &n.key_pem));
    DBT_TRY(dbt_pki_cert_info(cert, &info));
    n.serial = ctl_strdup(info.serial);
    n.sha1_fingerprint = ctl_strdup(info.sha1);
    n.expiration_time = info.not_after;
    *out = n;
    memset(&n, 0, sizeof(n));
out:
    dbt_ctl_admin_cert_cleanup(&n);
    dbt_pki_cert_info_cleanup(&info);
    dbt_pki_cert_free(ca);
    dbt_pki_cert_free(cert);
    dbt_pki_key_free(ca_key);
    dbt_pki_key_free(key);
    return res;
}

dbt_res dbt_ctl_admin_cert_create(struct dbt_ctl *ctl, const char *name, int64_t validity_secs,
                                  struct dbt_ctl_admin_cert *out)
{
    memset(out, 0, sizeof(*out));
    dbt_res res = DBT_OK;
    DBT_TRY(dbt_pki_check_client_name(name));
    DBT_TRY(issue(ctl, DBT_PKI_PROFILE_CLIENT, name, NULL, 0, validity_secs, out));
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(
        ctl_event(ctl, "admin-cert.create", "admin-cert", "name=%s serial=%s", name, out->serial));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        dbt_ctl_admin_cert_cleanup(out);
    }
    return res;
}

dbt_res dbt_ctl_admin_server_cert(struct dbt_ctl *ctl, const char *const *hosts, size_t n_hosts,
                                  int64_t validity_secs, struct dbt_ctl_admin_cert *out)
{
    memset(out, 0, sizeof(*out));
    if (n_hosts == 0) {
        return dbt_fail(DBT_E_INVALID, "admin server certificate: no host names");
    }
    return issue(ctl, DBT_PKI_PROFILE_SERVER, NULL, hosts, n_hosts, validity_secs, out);
}

void dbt_ctl_set_actor(struct dbt_ctl *ctl, const char *actor)
{
    if (actor == NULL || actor[0] == '\0') {
        return;
    }
    free(ctl->actor);
    ctl->actor = ctl_strdup(actor);
}
