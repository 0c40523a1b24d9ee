/*
 * crl.c - certificate revocation lists for the client CAs: a v2 CRL signed by the CA with
 * cRLNumber and authorityKeyIdentifier (RFC 5280 section 5.2), regenerated whole on each
 * revocation, so the TLS front and `openssl verify -crl_check` see every revoked serial.
 */
#include "pki/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/clock.h"

/* Hex serial -> ASN1_INTEGER (1..40 hex digits: RFC 5280 allows 20 octets). */
static dbt_res parse_serial(const char *hex, ASN1_INTEGER **out)
{
    size_t n = hex ? strlen(hex) : 0;
    if (n == 0 || n > 40 || strspn(hex, "0123456789abcdefABCDEF") != n) {
        return dbt_fail(DBT_E_INVALID, "serial \"%.60s\" is not 1 to 40 hex digits",
                        hex ? hex : "");
    }
    BIGNUM *bn = NULL;
    if (!BN_hex2bn(&bn, hex)) {
        return pki_ossl_fail(DBT_E_INVALID, "cannot parse serial \"%s\"", hex);
    }
    *out = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (*out == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot encode serial \"%s\"", hex);
    }
    return DBT_OK;
}

static dbt_res add_revoked(X509_CRL *crl, const struct dbt_pki_revoked *r)
{
    dbt_res res = DBT_OK;
    ASN1_INTEGER *serial = NULL;
    ASN1_TIME *t = NULL;
    X509_REVOKED *rev = NULL;

    DBT_TRY(parse_serial(r->serial, &serial));
    t = ASN1_TIME_set(NULL, (time_t)r->revoked_at);
    rev = X509_REVOKED_new();
    if (t == NULL || rev == NULL || !X509_REVOKED_set_serialNumber(rev, serial) ||
        !X509_REVOKED_set_revocationDate(rev, t)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot build the CRL entry for serial %s", r->serial);
        goto out;
    }
    if (!X509_CRL_add0_revoked(crl, rev)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot add the CRL entry for serial %s", r->serial);
        goto out;
    }
    rev = NULL;
out:
    X509_REVOKED_free(rev);
    ASN1_TIME_free(t);
    ASN1_INTEGER_free(serial);
    return res;
}

dbt_res dbt_pki_crl_build(const struct dbt_pki_crl_spec *spec, struct dbt_pki_crl **out)
{
    dbt_res res = DBT_OK;
    X509_CRL *crl = NULL;
    ASN1_TIME *t = NULL;
    ASN1_INTEGER *number = NULL;
    X509_EXTENSION *aki = NULL;

    DBT_ENSURE(spec->issuer != NULL && spec->issuer_key != NULL, INVALID,
               "a CRL needs its issuer certificate and key");
    DBT_ENSURE(pki_md(spec->digest) != NULL, INVALID, "unknown digest %d", (int)spec->digest);
    X509 *ix = spec->issuer->x;
    DBT_ENSURE((X509_get_extension_flags(ix) & EXFLAG_CA) && (X509_get_key_usage(ix) & KU_CRL_SIGN),
               INVALID, "the CRL issuer is not a CA allowed to sign CRLs");
    if (X509_check_private_key(ix, spec->issuer_key->pk) != 1) {
        ERR_clear_error();
        DBT_BAIL(INVALID, "the key does not match the CRL issuer certificate");
    }
    DBT_ENSURE(spec->next_update_secs >= 0, INVALID, "CRL next update must not be negative");
    int64_t now = spec->now != 0 ? spec->now : dbt_now_unix();
    int64_t next =
        spec->next_update_secs != 0 ? spec->next_update_secs : DBT_PKI_CRL_DEFAULT_NEXT_UPDATE_SECS;
    uint64_t num = spec->number != 0 ? spec->number : (uint64_t)now;

    crl = X509_CRL_new();
    DBT_ENSURE(crl != NULL, NOMEM, "out of memory for a CRL");
    if (!X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ix))) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set the CRL issuer"));
    }
    t = ASN1_TIME_set(NULL, (time_t)now);
    if (t == NULL || !X509_CRL_set1_lastUpdate(crl, t) ||
        ASN1_TIME_set(t, (time_t)(now + next)) == NULL || !X509_CRL_set1_nextUpdate(crl, t)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set the CRL update times"));
    }
    for (size_t i = 0; i < spec->n_revoked; i++) {
        DBT_TRY(add_revoked(crl, &spec->revoked[i]));
    }
    /* Entries in serial order, as X509_CRL_sort requires for lookups by serial. */
    if (!X509_CRL_sort(crl)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot sort the CRL"));
    }

    number = ASN1_INTEGER_new();
    if (number == NULL || !ASN1_INTEGER_set_uint64(number, num) ||
        !X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot add the CRL number"));
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ix, NULL, NULL, crl, 0);
    aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    if (aki == NULL || !X509_CRL_add_ext(crl, aki, -1)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot add the CRL authority key identifier"));
    }
    if (X509_CRL_sign(crl, spec->issuer_key->pk, pki_md(spec->digest)) <= 0) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot sign the CRL"));
    }
    res = pki_crl_wrap(crl, out);
    crl = NULL;
out:
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(number);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    return res;
}

void dbt_pki_crl_free(struct dbt_pki_crl *crl)
{
    if (crl != NULL) {
        X509_CRL_free(crl->c);
        free(crl);
    }
}

dbt_res dbt_pki_crl_to_pem(const struct dbt_pki_crl *crl, char **out_pem)
{
    dbt_res res = DBT_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    if (!PEM_write_bio_X509_CRL(bio, crl->c)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot encode CRL as PEM");
        goto out;
    }
    res = pki_bio_to_str(bio, out_pem);
out:
    BIO_free(bio);
    return res;
}

dbt_res dbt_pki_crl_from_pem(const char *pem, struct dbt_pki_crl **out)
{
    if (pem == NULL) {
        return dbt_fail(DBT_E_INVALID, "no CRL PEM given");
    }
    BIO *bio = pki_bio_str(pem);
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    X509_CRL *c = PEM_read_bio_X509_CRL(bio, NULL, pki_no_password_cb, NULL);
    BIO_free(bio);
    if (c == NULL) {
        return pki_ossl_fail(DBT_E_INVALID, "cannot parse CRL PEM");
    }
    return pki_crl_wrap(c, out);
}

dbt_res dbt_pki_crl_info(const struct dbt_pki_crl *crl, struct dbt_pki_crl_info *out)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_crl_info info;
    char *issuer = NULL;
    ASN1_INTEGER *num = NULL;
    memset(&info, 0, sizeof(info));

    DBT_TRY(pki_time_to_unix(X509_CRL_get0_lastUpdate(crl->c), &info.last_update));
    if (X509_CRL_get0_nextUpdate(crl->c) != NULL) {
        DBT_TRY(pki_time_to_unix(X509_CRL_get0_nextUpdate(crl->c), &info.next_update));
    }
    num = X509_CRL_get_ext_d2i(crl->c, NID_crl_number, NULL, NULL);
    if (num != NULL && !ASN1_INTEGER_get_uint64(&info.number, num)) {
        info.number = 0;
    }
    ERR_clear_error();
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl->c);
    info.n_revoked = revs ? (size_t)sk_X509_REVOKED_num(revs) : 0;
    DBT_TRY(pki_name_rfc2253(X509_CRL_get_issuer(crl->c), &issuer));
    snprintf(info.issuer, sizeof(info.issuer), "%s", issuer);
    *out = info;
out:
    ASN1_INTEGER_free(num);
    free(issuer);
    return res;
}

bool dbt_pki_crl_has_serial(const struct dbt_pki_crl *crl, const char *serial_hex)
{
    ASN1_INTEGER *serial = NULL;
    X509_REVOKED *rev = NULL;
    if (!dbt_ok(parse_serial(serial_hex, &serial))) {
        return false;
    }
    int found = X509_CRL_get0_by_serial(crl->c, &rev, serial);
    ASN1_INTEGER_free(serial);
    ERR_clear_error();
    return found == 1;
}
