/*
 * clients.c - client certificates of an instance (Cloud SQL sslCerts): create (the private key
 * is returned once and never stored), list, describe by name or SHA-1, delete (= revoke: the
 * serial goes into the client CA's CRL, regenerated in the same transaction, and the name and
 * its place under the per-instance limit are freed); and ephemeral certificates (Cloud SQL's
 * generateEphemeralCert): the client's own public key certified for minutes or hours, not
 * recorded, not counted, so no private key ever leaves the client.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/internal.h"

#define CLIENT_DIGEST DBT_PKI_SHA384

void dbt_ctl_client_cert_new_cleanup(struct dbt_ctl_client_cert_new *c)
{
    if (!c) {
        return;
    }
    dbt_ctl_cert_cleanup(&c->cert);
    dbt_pki_wipe_free(c->key_pem);
    free(c->server_ca_pem);
    free(c->client_ca_pem);
    dbt_pki_wipe_free_bytes(c->p12, c->p12_len);
    memset(c, 0, sizeof *c);
}

/* A SHA-1 fingerprint as users paste it (any case, optional colons) -> 40 lower-case hex
   characters, or "" if it is not one. */
static void normalize_sha1(const char *s, char out[41])
{
    size_t n = 0;
    out[0] = 0;
    for (; *s; s++) {
        if (*s == ':') {
            continue;
        }
        if (!isxdigit((unsigned char)*s) || n == 40) {
            out[0] = 0;
            return;
        }
        out[n++] = (char)tolower((unsigned char)*s);
    }
    out[n] = 0;
    if (n != 40) {
        out[0] = 0;
    }
}

/* Finds a live client cert by name or SHA-1 inside the open transaction. */
static dbt_res find_client(struct dbt_ctl *ctl, const struct ctl_inst *in, const char *key,
                           struct dbt_ctl_cert *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    char sha1[41];
    bool row = false;
    DBT_ENSURE(key && *key, INVALID, "a client certificate name or SHA-1 fingerprint is required");
    normalize_sha1(key, sha1);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_FIND, &s));
    dbt_stmt_bind_int(s, 1, in->id);
    dbt_stmt_bind_text(s, 2, key);
    dbt_stmt_bind_text(s, 3, sha1[0] ? sha1 : NULL);
    DBT_TRY(dbt_stmt_step(s, &row));
    DBT_ENSURE(row, NOT_FOUND, "instance \"%s\" has no client certificate \"%s\"", in->pub.name,
               key);
    char *name = ctl_strdup(dbt_stmt_text(s, 0));
    char *pem = ctl_strdup(dbt_stmt_text(s, 3));
    int64_t created = dbt_stmt_int(s, 4);
    res = dbt_stmt_exec(s);
    if (dbt_ok(res)) {
        res = ctl_cert_fill(pem, NULL, name, in->pub.name, created, out);
    }
    free(name);
    free(pem);
out:
    return res;
}

/* Certifies key's public half for cn under the instance's client CA (a write transaction is
   open); *pem and *info describe the new certificate. */
static dbt_res issue_client(struct dbt_ctl *ctl, const struct ctl_inst *in, const char *cn,
                            const struct dbt_pki_key *key, int64_t secs, struct dbt_pki_cert **cert,
                            char **pem, struct dbt_pki_cert_info *info)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *ca = NULL;
    struct dbt_pki_key *ca_key = NULL;
    DBT_TRY(dbt_pki_cert_from_pem(in->client_ca_pem, &ca));
    DBT_TRY(ctl_unseal(ctl, in->client_ca_pem, in->client_ca_key, in->client_ca_key_len, &ca_key));
    struct dbt_pki_cert_spec spec = {
        .profile = DBT_PKI_PROFILE_CLIENT,
        .cn = cn,
        .o = "dbtls",
        .validity_secs = secs,
        .pathlen = -1,
        .digest = CLIENT_DIGEST,
        .key = key,
        .issuer = ca,
        .issuer_key = ca_key,
    };
    DBT_TRY(dbt_pki_cert_issue(&spec, cert));
    DBT_TRY(dbt_pki_cert_to_pem(*cert, pem));
    DBT_TRY(dbt_pki_cert_info(*cert, info));
out:
    dbt_pki_cert_free(ca);
    dbt_pki_key_free(ca_key);
    return res;
}

dbt_res dbt_ctl_client_cert_create(struct dbt_ctl *ctl, const char *instance, const char *name,
                                   const struct dbt_ctl_client_cert_opts *opts,
                                   struct dbt_ctl_client_cert_new *out)
{
    if (out) {
        memset(out, 0, sizeof *out);
    }
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct dbt_pki_cert *ca = NULL, *cert = NULL;
    struct dbt_pki_key *key = NULL;
    struct dbt_pki_certs chain = {0};
    struct dbt_ctl_client_cert_new n = {0};
    struct dbt_pki_cert_info info = {0};
    struct dbt_stmt *s = NULL;
    char *pem = NULL, *obj = NULL;
    bool row = false;
    DBT_TRY(dbt_pki_check_client_name(name));
    /* The key first, holding no lock (keys.c); the checks below run under the write lock. */
    DBT_TRY(ctl_key_generate(CTL_LEAF_KEY, &key));
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));

    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_FIND, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, name);
    dbt_stmt_bind_text(s, 3, NULL);
    DBT_TRY(dbt_stmt_step(s, &row));
    DBT_ENSURE(!row, EXISTS, "instance \"%s\" already has a client certificate named \"%s\"",
               instance, name);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_ENSURE(in.pub.n_client_certs < in.pub.max_client_certs, LIMIT,
               "instance \"%s\" already has %d client certificates (the limit); delete one or "
               "raise --max-client-certs",
               instance, in.pub.n_client_certs);

    int64_t secs = opts && opts->validity_secs > 0 ? opts->validity_secs : CTL_CLIENT_SECS;
    DBT_TRY(issue_client(ctl, &in, name, key, secs, &cert, &pem, &info));
    int64_t now = dbt_now_unix();
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_ADD, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, name);
    dbt_stmt_bind_text(s, 3, info.serial);
    dbt_stmt_bind_text(s, 4, info.sha1);
    dbt_stmt_bind_text(s, 5, pem);
    dbt_stmt_bind_int(s, 6, now);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("client-create-mid");

    DBT_TRY(ctl_cert_fill(pem, NULL, name, instance, now, &n.cert));
    DBT_TRY(dbt_pki_key_to_pem(key, &n.key_pem));
    DBT_TRY(ctl_server_ca_pem(ctl, &in, &n.server_ca_pem));
    n.client_ca_pem = ctl_strdup(in.client_ca_pem);
    if (opts && opts->pkcs12) {
        DBT_TRY(dbt_pki_cert_from_pem(in.client_ca_pem, &ca));
        DBT_TRY(dbt_pki_certs_push(&chain, ca));
        DBT_TRY(dbt_pki_p12_build(cert, key, &chain, opts->p12_password ? opts->p12_password : "",
                                  DBT_CTL_P12_ALIAS, &n.p12, &n.p12_len));
    }
    obj = ctl_printf("instance/%s/client-cert/%s", instance, name);
    char expires[32];
    dbt_time_rfc3339(info.not_after, expires, sizeof expires);
    DBT_TRY(ctl_event(ctl, "client-cert.create", obj, "serial=%s sha1=%s expires=%s", info.serial,
                      info.sha1, expires));
    DBT_TRY(ctl_commit(ctl));
    if (out) {
        *out = n;
        memset(&n, 0, sizeof n);
    }
out:
    dbt_store_rollback(ctl->st);
    dbt_ctl_client_cert_new_cleanup(&n);
    ctl_inst_cleanup(&in);
    dbt_pki_cert_free(ca);
    dbt_pki_cert_free(cert);
    dbt_pki_key_free(key);
    dbt_pki_certs_free(&chain);
    dbt_pki_cert_info_cleanup(&info);
    free(pem);
    free(obj);
    return res;
}

dbt_res dbt_ctl_client_cert_ephemeral(struct dbt_ctl *ctl, const char *instance, const char *cn,
                                      const char *public_key_pem, int64_t validity_secs,
                                      struct dbt_ctl_client_cert_new *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct dbt_pki_cert *cert = NULL;
    struct dbt_pki_key *key = NULL;
    struct dbt_pki_cert_info info = {0};
    struct dbt_ctl_client_cert_new n = {0};
    char *pem = NULL, *obj = NULL;
    int64_t secs = validity_secs > 0 ? validity_secs : DBT_CTL_EPHEMERAL_SECS;
    DBT_TRY(dbt_pki_check_client_name(cn));
    DBT_ENSURE(secs >= 60 && secs <= DBT_CTL_EPHEMERAL_MAX_SECS, INVALID,
               "an ephemeral certificate is valid for 60 s to 24 h, not %lld s", (long long)secs);
    DBT_TRY(dbt_pki_pubkey_from_pem(public_key_pem, &key));
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(issue_client(ctl, &in, cn, key, secs, &cert, &pem, &info));
    int64_t now = dbt_now_unix();
    DBT_TRY(ctl_cert_fill(pem, NULL, cn, instance, now, &n.cert));
    DBT_TRY(ctl_server_ca_pem(ctl, &in, &n.server_ca_pem));
    n.client_ca_pem = ctl_strdup(in.client_ca_pem);
    /* not recorded as a client certificate (no name to keep unique, no place under the limit,
       nothing to revoke but by resetting the client CA): the event is its audit trail */
    obj = ctl_printf("instance/%s/client-cert/%s", instance, cn);
    char expires[32];
    dbt_time_rfc3339(info.not_after, expires, sizeof expires);
    DBT_TRY(ctl_event(ctl, "client-cert.ephemeral", obj, "serial=%s sha1=%s expires=%s",
                      info.serial, info.sha1, expires));
    DBT_TRY(ctl_commit(ctl));
    *out = n;
    memset(&n, 0, sizeof n);
out:
    dbt_store_rollback(ctl->st);
    dbt_ctl_client_cert_new_cleanup(&n);
    ctl_inst_cleanup(&in);
    dbt_pki_cert_free(cert);
    dbt_pki_key_free(key);
    dbt_pki_cert_info_cleanup(&info);
    free(pem);
    free(obj);
    return res;
}

dbt_res dbt_ctl_client_cert_list(struct dbt_ctl *ctl, const char *instance,
                                 struct dbt_ctl_cert_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct dbt_ctl_cert_list l = {0};
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_LIST, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_ctl_cert *nv = realloc(l.items, (l.n + 1) * sizeof *nv);
        DBT_ENSURE(nv, NOMEM, "out of memory");
        l.items = nv;
        DBT_TRY(ctl_cert_fill(dbt_stmt_text(s, 3), NULL, dbt_stmt_text(s, 0), instance,
                              dbt_stmt_int(s, 4), &l.items[l.n]));
        l.n++;
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = l;
    memset(&l, 0, sizeof l);
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    dbt_ctl_cert_list_cleanup(&l);
    return res;
}

dbt_res dbt_ctl_client_cert_describe(struct dbt_ctl *ctl, const char *instance,
                                     const char *name_or_sha1, struct dbt_ctl_cert *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(find_client(ctl, &in, name_or_sha1, out));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        dbt_ctl_cert_cleanup(out);
    }
    ctl_inst_cleanup(&in);
    return res;
}

dbt_res dbt_ctl_client_cert_delete(struct dbt_ctl *ctl, const char *instance,
                                   const char *name_or_sha1)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct dbt_ctl_cert c = {0};
    struct dbt_stmt *s = NULL;
    char *obj = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(find_client(ctl, &in, name_or_sha1, &c));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_REVOKE_ADD, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, in.client_ca_sha1);
    dbt_stmt_bind_text(s, 3, c.cert_serial_number);
    dbt_stmt_bind_text(s, 4, c.name);
    dbt_stmt_bind_text(s, 5, c.sha1_fingerprint);
    dbt_stmt_bind_int(s, 6, dbt_now_unix());
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_DELETE, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, c.name);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("client-delete-mid");
    DBT_TRY(ctl_crl_regen(ctl, &in));
    obj = ctl_printf("instance/%s/client-cert/%s", instance, c.name);
    DBT_TRY(ctl_event(ctl, "client-cert.delete", obj, "revoked serial=%s sha1=%s crl_number=%lld",
                      c.cert_serial_number, c.sha1_fingerprint, (long long)in.crl_number));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    dbt_ctl_cert_cleanup(&c);
    free(obj);
    return res;
}

dbt_res dbt_ctl_client_ca(struct dbt_ctl *ctl, const char *instance, char **ca_pem_out,
                          char **crl_pem_out)
{
    if (ca_pem_out) {
        *ca_pem_out = NULL;
    }
    if (crl_pem_out) {
        *crl_pem_out = NULL;
    }
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(dbt_store_commit(ctl->st));
    if (ca_pem_out) {
        *ca_pem_out = in.client_ca_pem;
        in.client_ca_pem = NULL;
    }
    if (crl_pem_out) {
        *crl_pem_out = in.crl_pem;
        in.crl_pem = NULL;
    }
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    return res;
}
