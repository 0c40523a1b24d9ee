/*
 * cas_import.c - CAs of the operator's own PKI (`dbtls cas import`, like Cloud SQL's
 * customer-managed CA; deleting one is in cas.c): a CA certificate and its key, with the chain
 * up to the operator's root, become a shared CA that instances name with --ca in shared mode.
 * The imported CA issues the server certificates itself, in every region (one cas row, region
 * ""); the front serves leaf, CA and chain, and bundles carry CA and chain, so clients that
 * trust the operator's root verify dbtls instances with nothing new to install. Its key is
 * sealed like every CA key.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/internal.h"

/* Leaves are issued for a year in shared mode (clamped to the CA's notAfter): a CA that ends
   sooner than this is refused at import rather than issuing certificates of a few days. */
#define MIN_REMAINING_SECS (30LL * 86400)

const char *ctl_ca_region(const struct ctl_ca_family *fam, const char *region)
{
    return fam->imported ? "" : region;
}

dbt_res ctl_ca_lookup(struct dbt_ctl *ctl, const char *id, struct ctl_ca_family *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    const struct ctl_ca_family *f = ctl_ca_family_find(id);
    if (f != NULL) {
        *out = *f;
        return DBT_OK;
    }
    bool row = false;
    if (id != NULL) {
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_GET, &s));
        dbt_stmt_bind_text(s, 1, id);
        dbt_stmt_bind_text(s, 2, "");
        DBT_TRY(dbt_stmt_step(s, &row));
    }
    if (!row) {
        return ctl_ca_family_check(id, NULL); /* NOT_FOUND naming the valid ids */
    }
    *out = (struct ctl_ca_family){.id = id, .imported = true};
    DBT_TRY(dbt_pki_key_type_parse(dbt_stmt_text(s, 2), &out->key_type));
    DBT_TRY(dbt_pki_digest_parse(dbt_stmt_text(s, 3), &out->digest));
    DBT_TRY(dbt_stmt_exec(s));
out:
    return dbt_ok(res) ? res : dbt_fail_ctx(res, "CA %s: ", id);
}

dbt_res ctl_imported_ids(struct dbt_ctl *ctl, char ***ids, size_t *n)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    *ids = NULL;
    *n = 0;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_ROOTS, &s));
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        if (ctl_ca_family_find(dbt_stmt_text(s, 0)) == NULL) {
            DBT_TRY(ctl_strv_push(ids, n, dbt_stmt_text(s, 0)));
        }
    }
out:
    return res;
}

static dbt_res check_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    bool ok = n >= 3 && n <= 63 && islower((unsigned char)id[0]);
    for (size_t i = 0; ok && i < n; i++) {
        ok = islower((unsigned char)id[i]) || isdigit((unsigned char)id[i]) || id[i] == '-';
    }
    if (!ok) {
        return dbt_fail(DBT_E_INVALID,
                        "CA id \"%s\" is not 3 to 63 lowercase letters, digits and '-', starting "
                        "with a letter",
                        id ? id : "");
    }
    if (strncmp(id, "dbtls-", 6) == 0) {
        return dbt_fail(DBT_E_INVALID, "CA id \"%s\": ids starting with \"dbtls-\" are dbtls's own",
                        id);
    }
    return DBT_OK;
}

/* The CA certificate (alone in cert_pem) then its chain, parsed into *all. */
static dbt_res parse_ca(const char *cert_pem, const char *chain_pem, struct dbt_pki_certs *all)
{
    dbt_res res = dbt_pki_certs_from_pem(cert_pem, all);
    DBT_ENSURE(dbt_ok(res) && all->n > 0, INVALID, "the CA certificate: %s",
               dbt_ok(res) ? "no certificate found in PEM text" : dbt_errmsg());
    DBT_ENSURE(all->n == 1, INVALID,
               "the certificate file holds %zu certificates: give the CA alone, its chain with "
               "--chain",
               all->n);
    if (chain_pem != NULL) {
        struct dbt_pki_certs chain = {0};
        res = dbt_pki_certs_from_pem(chain_pem, &chain);
        for (size_t i = 0; dbt_ok(res) && i < chain.n; i++) {
            res = dbt_pki_certs_push(all, chain.v[i]);
        }
        bool empty = chain.n == 0;
        dbt_pki_certs_free(&chain);
        DBT_ENSURE(dbt_ok(res) && !empty, INVALID, "the chain: %s",
                   dbt_ok(res) ? "no certificate found in PEM text" : dbt_errmsg());
    }
out:
    return res;
}

/* What the cas row holds: the CA first (its key's seal label), then its chain. */
static dbt_res row_pem(const struct dbt_pki_certs *all, char **pem)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < all->n; i++) {
        char *one = NULL;
        DBT_TRY(dbt_pki_cert_to_pem(all->v[i], &one));
        res = ctl_append(pem, one);
        free(one);
        DBT_TRY(res);
    }
out:
    return res;
}

/* The self-signed certificates of all (trust anchors) and the others (intermediates). */
static dbt_res split_chain(const struct dbt_pki_certs *all, struct dbt_pki_certs *roots,
                           struct dbt_pki_certs *mids)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < all->n; i++) {
        struct dbt_pki_cert_info ii = {0};
        DBT_TRY(dbt_pki_cert_info(all->v[i], &ii));
        bool self = ii.self_signed;
        dbt_pki_cert_info_cleanup(&ii);
        DBT_TRY(dbt_pki_certs_push(self ? roots : mids, all->v[i]));
    }
out:
    return res;
}

/*
 * The imported CA must be able to do what dbtls asks of it: be a CA (basicConstraints CA:TRUE;
 * OpenSSL's verifier refuses leaves under anything else), be valid now and for a while, hold a
 * key type dbtls signs with, match the key, and chain to a root the operator's clients trust:
 * itself (self-signed) or the last certificate of the chain.
 */
static dbt_res check_ca(const struct dbt_pki_certs *all, const struct dbt_pki_key *key,
                        enum dbt_pki_key_type *kt)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert_info ci = {0};
    struct dbt_pki_certs roots = {0}, mids = {0};
    const struct dbt_pki_cert *ca = all->v[0];
    DBT_TRY(dbt_pki_cert_info(ca, &ci));
    DBT_ENSURE(ci.is_ca, INVALID,
               "the certificate (%s) is not a CA: it has no basicConstraints CA:TRUE", ci.subject);
    int64_t now = dbt_now_unix();
    DBT_ENSURE(ci.not_before <= now + 300, INVALID, "the CA certificate (%s) is not valid yet",
               ci.subject);
    DBT_ENSURE(ci.not_after > now + MIN_REMAINING_SECS, INVALID,
               "the CA certificate (%s) expires in less than 30 days%s", ci.subject,
               ci.not_after <= now ? " (it has expired)" : "");
    res = dbt_pki_key_type_of(key, kt);
    DBT_ENSURE(dbt_ok(res), INVALID,
               "the CA key is %s; dbtls signs with RSA-2048, RSA-4096, EC P-256 and EC P-384 keys",
               ci.key_alg);
    res = dbt_pki_cert_key_match(ca, key);
    DBT_ENSURE(dbt_ok(res), INVALID, "the key does not belong to the CA certificate (%s)",
               ci.subject);
    /* the chain: the CA up to a self-signed root, verified as a client would */
    for (size_t i = 0; i < all->n; i++) {
        struct dbt_pki_cert_info ii = {0};
        DBT_TRY(dbt_pki_cert_info(all->v[i], &ii));
        if (!ii.is_ca) {
            res = dbt_fail(DBT_E_INVALID, "the chain holds a certificate that is not a CA (%s)",
                           ii.subject);
        } else if (i > 0 && ii.not_after <= now + MIN_REMAINING_SECS) {
            /* clients verify the whole chain: a root or intermediate about to end ends every
               server certificate's trust with it, however long the CA itself lasts */
            res = dbt_fail(DBT_E_INVALID,
                           "the chain's certificate (%s) expires in less than 30 "
                           "days%s",
                           ii.subject, ii.not_after <= now ? " (it has expired)" : "");
        }
        dbt_pki_cert_info_cleanup(&ii);
        DBT_TRY(res);
    }
    DBT_TRY(split_chain(all, &roots, &mids));
    DBT_ENSURE(roots.n > 0, INVALID,
               "the CA certificate (%s) is not self-signed and --chain does not reach its root: "
               "give the intermediates and the root clients trust",
               ci.subject);
    struct dbt_pki_verify_opts vo = {
        .trusted = &roots, .untrusted = &mids, .purpose = DBT_PKI_PURPOSE_ANY};
    res = dbt_pki_verify(ca, &vo, NULL);
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "the CA certificate does not chain to the root given: ");
    }
out:
    dbt_pki_cert_info_cleanup(&ci);
    dbt_pki_certs_free(&roots);
    dbt_pki_certs_free(&mids);
    return res;
}

dbt_res dbt_ctl_cas_import(struct dbt_ctl *ctl, const char *ca_id, const char *cert_pem,
                           const char *chain_pem, const char *key_pem)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_certs all = {0};
    struct dbt_pki_key *key = NULL;
    struct dbt_stmt *s = NULL;
    char *pem = NULL;
    uint8_t *blob = NULL;
    size_t blen = 0;
    enum dbt_pki_key_type kt;
    DBT_TRY(check_id(ca_id));
    DBT_TRY(parse_ca(cert_pem, chain_pem, &all));
    res = dbt_pki_key_from_pem(key_pem, &key);
    if (!dbt_ok(res)) {
        DBT_BAIL(INVALID, "the CA key: %s", dbt_errmsg());
    }
    DBT_TRY(check_ca(&all, key, &kt));
    DBT_TRY(row_pem(&all, &pem));
    DBT_TRY(ctl_seal(ctl, all.v[0], key, &blob, &blen));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    struct ctl_ca_family existing;
    dbt_res found = ctl_ca_lookup(ctl, ca_id, &existing);
    DBT_ENSURE(!dbt_ok(found), EXISTS, "CA %s already exists", ca_id);
    DBT_ENSURE(found.code == DBT_E_NOT_FOUND, STORE, "%s", dbt_errmsg());
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_ADD, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    dbt_stmt_bind_text(s, 2, "");
    dbt_stmt_bind_text(s, 3, dbt_pki_key_type_name(kt));
    dbt_stmt_bind_text(s, 4,
                       dbt_pki_digest_name(kt == DBT_PKI_KEY_RSA2048 || kt == DBT_PKI_KEY_EC256
                                               ? DBT_PKI_SHA256
                                               : DBT_PKI_SHA384));
    dbt_stmt_bind_text(s, 5, pem);
    dbt_stmt_bind_blob(s, 6, blob, blen);
    dbt_stmt_bind_int(s, 7, dbt_now_unix());
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(ctl_event(ctl, "ca.import", "ca", "ca=%s certificates=%zu key=%s", ca_id, all.n,
                      dbt_pki_key_type_name(kt)));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    dbt_pki_certs_free(&all);
    dbt_pki_key_free(key);
    free(pem);
    free(blob);
    return res;
}

/* Every server certificate the imported CA issued that is valid now must verify under the
   renewed certificate and chain, as clients will check them once the front serves those. */
static dbt_res check_issued(struct dbt_ctl *ctl, const char *ca_id, const struct dbt_pki_certs *all)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    struct dbt_pki_certs roots = {0}, mids = {0};
    struct dbt_pki_cert *leaf = NULL;
    bool row = false;
    int64_t now = dbt_now_unix();
    DBT_TRY(split_chain(all, &roots, &mids));
    struct dbt_pki_verify_opts vo = {
        .trusted = &roots, .untrusted = &mids, .purpose = DBT_PKI_PURPOSE_ANY};
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_ISSUED, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        struct dbt_pki_cert_info li = {0};
        dbt_pki_cert_free(leaf);
        leaf = NULL;
        DBT_TRY(dbt_pki_cert_from_pem(dbt_stmt_text(s, 2), &leaf));
        DBT_TRY(dbt_pki_cert_info(leaf, &li));
        bool current = li.not_before <= now && now < li.not_after;
        dbt_pki_cert_info_cleanup(&li);
        if (current && !dbt_ok(res = dbt_pki_verify(leaf, &vo, NULL))) {
            res = dbt_fail_ctx(res,
                               "the %s server certificate of instance %s does not verify under "
                               "the renewed CA: ",
                               dbt_stmt_text(s, 1), dbt_stmt_text(s, 0));
            goto out;
        }
    }
    DBT_TRY(res);
out:
    dbt_pki_cert_free(leaf);
    dbt_pki_certs_free(&roots);
    dbt_pki_certs_free(&mids);
    return res;
}

dbt_res dbt_ctl_cas_renew(struct dbt_ctl *ctl, const char *ca_id, const char *cert_pem,
                          const char *chain_pem, int64_t *not_after)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_certs all = {0};
    struct dbt_pki_key *key = NULL;
    struct dbt_pki_cert_info old = {0}, ci = {0};
    struct dbt_stmt *s = NULL;
    char *pem = NULL, *old_pem = NULL;
    uint8_t *blob = NULL;
    size_t blen = 0;
    bool row = false;
    enum dbt_pki_key_type kt;
    struct ctl_ca_family fam = {0};
    DBT_TRY(parse_ca(cert_pem, chain_pem, &all));
    DBT_TRY(dbt_pki_cert_info(all.v[0], &ci));
    /* no key to make: the write lock is taken at once, and the row read under it */
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_ca_lookup(ctl, ca_id, &fam));
    DBT_ENSURE(fam.imported, STATE,
               "CA %s is one of dbtls's own; only imported CAs are renewed (their certificate "
               "comes from your PKI)",
               ca_id);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_GET, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    dbt_stmt_bind_text(s, 2, "");
    DBT_TRY(dbt_stmt_step(s, &row));
    DBT_ENSURE(row, NOT_FOUND, "CA %s has no certificate row", ca_id);
    old_pem = ctl_strdup(dbt_stmt_text(s, 4));
    size_t old_len = 0;
    const void *old_blob = dbt_stmt_blob(s, 5, &old_len);
    DBT_TRY(ctl_unseal(ctl, old_pem, old_blob, old_len, &key));
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(dbt_pki_cert_info_pem(old_pem, &old));
    DBT_ENSURE(strcmp(ci.sha1, old.sha1) != 0, INVALID,
               "the certificate is CA %s's current one (SHA-1 %s)", ca_id, ci.sha1);
    DBT_ENSURE(strcmp(ci.subject, old.subject) == 0, INVALID,
               "the certificate's subject (%s) is not CA %s's (%s): the certificates it issued "
               "name that one as their issuer",
               ci.subject, ca_id, old.subject);
    res = dbt_pki_cert_key_match(all.v[0], key);
    DBT_ENSURE(dbt_ok(res), INVALID,
               "the certificate holds another key than CA %s: a renewal keeps the CA's key (a "
               "new key is a new CA: `dbtls cas import` it and move the instances)",
               ca_id);
    DBT_ENSURE(ci.not_after > old.not_after, INVALID,
               "the certificate ends no later than CA %s's current one: a renewal extends it",
               ca_id);
    DBT_TRY(check_ca(&all, key, &kt));
    DBT_TRY(check_issued(ctl, ca_id, &all));
    DBT_TRY(row_pem(&all, &pem));
    DBT_TRY(ctl_seal(ctl, all.v[0], key, &blob, &blen)); /* the label follows the certificate */
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_RENEW, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    dbt_stmt_bind_text(s, 2, "");
    dbt_stmt_bind_text(s, 3, pem);
    dbt_stmt_bind_blob(s, 4, blob, blen);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(ctl_event(ctl, "ca.renew", "ca", "ca=%s sha1=%s previous_sha1=%s certificates=%zu",
                      ca_id, ci.sha1, old.sha1, all.n));
    DBT_TRY(ctl_commit(ctl));
    *not_after = ci.not_after;
out:
    dbt_store_rollback(ctl->st);
    dbt_pki_certs_free(&all);
    dbt_pki_key_free(key);
    dbt_pki_cert_info_cleanup(&old);
    dbt_pki_cert_info_cleanup(&ci);
    free(pem);
    free(old_pem);
    free(blob);
    return res;
}
