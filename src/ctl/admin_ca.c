/*
 * admin_ca.c - the admin CA and the certificates it issues (admin_ca.h). The CA is kept in the
 * settings table; created lazily, in one write transaction, the first time a read-write handle
 * asks for it. The admin client certificates it issues are recorded in admin_certs, revoked
 * there, and listed in a CRL built on demand for dbtlsd's admin TCP listener.
 */
#include "ctl/admin_ca.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/rd.h"
#include "ctl/auto.h"
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
        int hi = dbt_hex_digit(s[2 * i]), lo = dbt_hex_digit(s[2 * i + 1]);
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

dbt_res ctl_admin_ca_reseal(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                            size_t *n)
{
    dbt_res res = DBT_OK;
    char *pem = NULL, *hex = NULL, *new_hex = NULL;
    uint8_t *blob = NULL, *sealed = NULL;
    size_t blob_len = 0, sealed_len = 0;
    DBT_TRY(setting_get(ctl, ADMIN_CA_CERT_KEY, &pem));
    DBT_TRY(setting_get(ctl, ADMIN_CA_KEY_KEY, &hex));
    if (pem == NULL || hex == NULL) {
        goto out; /* no admin certificate was ever issued: no admin CA */
    }
    DBT_TRY(from_hex(hex, &blob, &blob_len));
    DBT_TRY(ctl_reseal(ctl, new_master, "the admin CA", pem, blob, blob_len, &sealed, &sealed_len));
    new_hex = to_hex(sealed, sealed_len);
    DBT_ENSURE(new_hex != NULL, NOMEM, "out of memory");
    DBT_TRY(setting_put(ctl, ADMIN_CA_KEY_KEY, new_hex));
    (*n)++;
out:
    free(pem);
    free(hex);
    free(new_hex);
    free(blob);
    free(sealed);
    return res;
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
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_pki_check_client_name(name));
    /* The key is generated and the certificate signed before BEGIN IMMEDIATE (ctl/keys.c). */
    DBT_TRY(issue(ctl, DBT_PKI_PROFILE_CLIENT, name, NULL, 0, validity_secs, out));
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_ADD, &s));
    dbt_stmt_bind_text(s, 1, name);
    dbt_stmt_bind_text(s, 2, out->serial);
    dbt_stmt_bind_text(s, 3, out->sha1_fingerprint);
    dbt_stmt_bind_int(s, 4, dbt_now_unix());
    dbt_stmt_bind_int(s, 5, out->expiration_time);
    dbt_stmt_bind_text(s, 6, NULL);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("admin-cert-create-mid");
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

void dbt_ctl_admin_cert_list_cleanup(struct dbt_ctl_admin_cert_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].serial);
        free(l->items[i].sha1_fingerprint);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

/* Appends every row of an ADMIN_CERT_COLS query to *out (the caller cleans up on failure). */
static dbt_res cert_rows(struct dbt_stmt *s, struct dbt_ctl_admin_cert_list *out)
{
    dbt_res res = DBT_OK;
    bool row = true;
    while (true) {
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_ctl_admin_cert_info *v = realloc(out->items, (out->n + 1) * sizeof(*out->items));
        DBT_ENSURE(v != NULL, NOMEM, "out of memory");
        out->items = v;
        struct dbt_ctl_admin_cert_info *it = &out->items[out->n++];
        memset(it, 0, sizeof(*it));
        it->name = ctl_strdup(dbt_stmt_text(s, 0));
        it->serial = ctl_strdup(dbt_stmt_text(s, 1));
        it->sha1_fingerprint = ctl_strdup(dbt_stmt_text(s, 2));
        it->create_time = dbt_stmt_int(s, 3);
        it->expiration_time = dbt_stmt_is_null(s, 4) ? 0 : dbt_stmt_int(s, 4);
        it->revoke_time = dbt_stmt_is_null(s, 5) ? 0 : dbt_stmt_int(s, 5);
    }
out:
    return res;
}

dbt_res dbt_ctl_admin_cert_list(struct dbt_ctl *ctl, struct dbt_ctl_admin_cert_list *out)
{
    memset(out, 0, sizeof(*out));
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_LIST, &s));
    DBT_TRY(cert_rows(s, out));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        dbt_ctl_admin_cert_list_cleanup(out);
    }
    return res;
}

dbt_res ctl_admin_expiry(struct dbt_ctl *ctl, struct dbt_ctl_expiry_list *l)
{
    dbt_res res = DBT_OK;
    char *pem = NULL;
    struct dbt_stmt *s = NULL;
    struct dbt_ctl_admin_cert_list certs = {0};
    DBT_TRY(setting_get(ctl, ADMIN_CA_CERT_KEY, &pem));
    if (pem != NULL) {
        DBT_TRY(ctl_expiry_add(l, "", "admin-ca", "", "", pem));
    }
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_LIST, &s));
    DBT_TRY(cert_rows(s, &certs));
    for (size_t i = 0; i < certs.n; i++) {
        const struct dbt_ctl_admin_cert_info *c = &certs.items[i];
        if (c->revoke_time == 0 && c->expiration_time != 0) {
            DBT_TRY(ctl_expiry_add_known(l, "", "admin-cert", "", c->name, c->serial,
                                         c->sha1_fingerprint, c->expiration_time));
        }
    }
out:
    free(pem);
    dbt_ctl_admin_cert_list_cleanup(&certs);
    return res;
}

struct expiring {
    char *name, *serial;
    int64_t not_after;
};

/* The live admin certificates past their renewal point and not yet noticed. */
static dbt_res expiring_collect(struct dbt_ctl *ctl, int64_t now, int64_t lead_secs,
                                struct expiring **out, size_t *n)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_UNNOTICED, &s));
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        int64_t not_after = dbt_stmt_int(s, 3);
        if (now < dbt_ctl_rotation_due(dbt_stmt_int(s, 2), not_after, lead_secs)) {
            continue;
        }
        struct expiring *v = realloc(*out, (*n + 1) * sizeof(**out));
        DBT_ENSURE(v != NULL, NOMEM, "out of memory");
        *out = v;
        v[(*n)++] = (struct expiring){ctl_strdup(dbt_stmt_text(s, 0)),
                                      ctl_strdup(dbt_stmt_text(s, 1)), not_after};
    }
out:
    return res;
}

static void expiring_free(struct expiring *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].serial);
    }
    free(v);
}

dbt_res ctl_admin_expiring(struct dbt_ctl *ctl, int64_t now, int64_t lead_secs, int *notices)
{
    dbt_res res = DBT_OK;
    struct expiring *due = NULL;
    size_t n = 0;
    struct dbt_stmt *s = NULL;
    /* a read first: the write lock only when there is something to say */
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(expiring_collect(ctl, now, lead_secs, &due, &n));
    dbt_store_rollback(ctl->st);
    if (n == 0) {
        goto out;
    }
    expiring_free(due, n);
    due = NULL;
    n = 0;
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(expiring_collect(ctl, now, lead_secs, &due, &n));
    for (size_t i = 0; i < n; i++) {
        char when[32];
        dbt_time_rfc3339(due[i].not_after, when, sizeof when);
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_NOTICED, &s));
        dbt_stmt_bind_text(s, 1, due[i].serial);
        dbt_stmt_bind_int(s, 2, now);
        DBT_TRY(dbt_stmt_exec(s));
        DBT_TRY(ctl_event(ctl, "admin-cert.expiring", "admin-cert",
                          "admin certificate \"%s\" (serial %s) expires at %s; issue a new one "
                          "(dbtls admin-certs create %s --out-dir DIR), then revoke this one",
                          due[i].name, due[i].serial, when, due[i].name));
    }
    DBT_TRY(dbt_store_commit(ctl->st)); /* no configuration changed: no reloads */
    *notices += (int)n;
out:
    dbt_store_rollback(ctl->st);
    expiring_free(due, n);
    return res;
}

/* A SHA-1 fingerprint as users paste it (any case, optional colons) -> 40 lower-case hex
   characters, or "" if it is not one (as clients.c reads client certificate fingerprints). */
static void normalize_sha1(const char *s, char out[41])
{
    size_t n = 0;
    out[0] = '\0';
    for (; *s; s++) {
        if (*s == ':') {
            continue;
        }
        if (!isxdigit((unsigned char)*s) || n == 40) {
            out[0] = '\0';
            return;
        }
        out[n++] = (char)tolower((unsigned char)*s);
    }
    out[n] = '\0';
    if (n != 40) {
        out[0] = '\0';
    }
}

dbt_res dbt_ctl_admin_cert_revoke(struct dbt_ctl *ctl, const char *key,
                                  struct dbt_ctl_admin_cert_list *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    struct dbt_ctl_admin_cert_list found = {0}, done = {0};
    char sha1[41];
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    DBT_ENSURE(key != NULL && key[0] != '\0', INVALID,
               "an admin certificate name or SHA-1 fingerprint is required");
    normalize_sha1(key, sha1);
    int64_t now = dbt_now_unix();
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_FIND, &s));
    dbt_stmt_bind_text(s, 1, key);
    dbt_stmt_bind_text(s, 2, sha1[0] ? sha1 : NULL);
    DBT_TRY(cert_rows(s, &found));
    DBT_ENSURE(found.n > 0, NOT_FOUND,
               "admin certificate \"%s\" does not exist (see `dbtls admin-certs list`)", key);
    for (size_t i = 0; i < found.n; i++) {
        struct dbt_ctl_admin_cert_info *it = &found.items[i];
        if (it->revoke_time != 0) {
            continue;
        }
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_REVOKE, &s));
        dbt_stmt_bind_text(s, 1, it->serial);
        dbt_stmt_bind_int(s, 2, now);
        DBT_TRY(dbt_stmt_exec(s));
        DBT_ENSURE(dbt_store_changes(ctl->st) == 1, INTERNAL,
                   "admin certificate \"%s\" (serial %s) was not marked revoked", it->name,
                   it->serial);
        ctl_fault("admin-cert-revoke-mid");
        DBT_TRY(ctl_event(ctl, "admin-cert.revoke", "admin-cert", "name=%s serial=%s sha1=%s",
                          it->name, it->serial,
                          it->sha1_fingerprint ? it->sha1_fingerprint : "unknown"));
        it->revoke_time = now;
        /* move it to the result */
        struct dbt_ctl_admin_cert_info *v = realloc(done.items, (done.n + 1) * sizeof(*v));
        DBT_ENSURE(v != NULL, NOMEM, "out of memory");
        done.items = v;
        done.items[done.n++] = *it;
        memset(it, 0, sizeof(*it));
    }
    if (done.n == 0) {
        char when[32];
        dbt_time_rfc3339(found.items[0].revoke_time, when, sizeof(when));
        DBT_BAIL(STATE, "admin certificate \"%s\" is already revoked (since %s)", key, when);
    }
    DBT_TRY(ctl_commit(ctl));
    if (out != NULL) {
        *out = done;
        memset(&done, 0, sizeof(done));
    }
out:
    dbt_store_rollback(ctl->st);
    dbt_ctl_admin_cert_list_cleanup(&found);
    dbt_ctl_admin_cert_list_cleanup(&done);
    return res;
}

dbt_res dbt_ctl_admin_trust(struct dbt_ctl *ctl, char **ca_pem, char **crl_pem, size_t *n_revoked)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    struct dbt_pki_cert *ca = NULL;
    struct dbt_pki_key *ca_key = NULL;
    struct dbt_pki_crl *crl = NULL;
    struct dbt_pki_revoked *rv = NULL;
    char **serials = NULL;
    size_t n = 0;
    char *pem = NULL;
    bool row = true;
    *ca_pem = NULL;
    *crl_pem = NULL;

    DBT_TRY(load_ca(ctl, &pem, &ca_key));
    DBT_TRY(dbt_pki_cert_from_pem(pem, &ca));
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_REVOKED, &s));
    while (true) {
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_pki_revoked *v = realloc(rv, (n + 1) * sizeof(*rv));
        DBT_ENSURE(v != NULL, NOMEM, "out of memory");
        rv = v;
        char **sv = realloc(serials, (n + 1) * sizeof(*serials));
        DBT_ENSURE(sv != NULL, NOMEM, "out of memory");
        serials = sv;
        serials[n] = ctl_strdup(dbt_stmt_text(s, 0));
        rv[n].serial = serials[n];
        rv[n].revoked_at = dbt_stmt_int(s, 1);
        n++;
    }
    dbt_store_rollback(ctl->st);
    struct dbt_pki_crl_spec spec = {
        .issuer = ca,
        .issuer_key = ca_key,
        .revoked = rv,
        .n_revoked = n,
        .digest = DBT_PKI_SHA384,
    };
    DBT_TRY(dbt_pki_crl_build(&spec, &crl));
    DBT_TRY(dbt_pki_crl_to_pem(crl, crl_pem));
    *ca_pem = pem;
    pem = NULL;
    if (n_revoked != NULL) {
        *n_revoked = n;
    }
out:
    dbt_store_rollback(ctl->st);
    for (size_t i = 0; i < n; i++) {
        free(serials[i]);
    }
    free(serials);
    free(rv);
    free(pem);
    dbt_pki_crl_free(crl);
    dbt_pki_cert_free(ca);
    dbt_pki_key_free(ca_key);
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
