/*
 * cert.c - issuing X.509 v3 certificates from a dbt_pki_cert_spec: CA, server and client
 * profiles with the extensions RFC 5280 and the CA/Browser Forum baseline expect (critical
 * basicConstraints and keyUsage, EKU, SAN, SKI/AKI), 128-bit random serials, a notBefore
 * backdated for clock skew and a notAfter that never passes the issuer's.
 */
#include "pki/internal.h"

#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/clock.h"

dbt_res dbt_pki_digest_parse(const char *s, enum dbt_pki_digest *out)
{
    if (s != NULL && (strcasecmp(s, "sha256") == 0 || strcasecmp(s, "sha-256") == 0)) {
        *out = DBT_PKI_SHA256;
        return DBT_OK;
    }
    if (s != NULL && (strcasecmp(s, "sha384") == 0 || strcasecmp(s, "sha-384") == 0)) {
        *out = DBT_PKI_SHA384;
        return DBT_OK;
    }
    return dbt_fail(DBT_E_INVALID, "unknown digest \"%s\" (expected sha256 or sha384)", s ? s : "");
}

const char *dbt_pki_digest_name(enum dbt_pki_digest d)
{
    return d == DBT_PKI_SHA384 ? "sha384" : "sha256";
}

/* 16 random bytes read as an unsigned big-endian number: positive, 128 bits of entropy,
 * at most 17 DER content octets (RFC 5280 section 4.1.2.2 allows 20). */
static dbt_res set_random_serial(X509 *x)
{
    dbt_res res = DBT_OK;
    unsigned char rnd[16];
    BIGNUM *bn = NULL;
    do {
        DBT_TRY(dbt_pki_random(rnd, sizeof(rnd)));
        BN_free(bn);
        bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
        DBT_ENSURE(bn != NULL, NOMEM, "out of memory for a serial number");
    } while (BN_is_zero(bn));
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot set the serial number");
    }
out:
    BN_free(bn);
    return res;
}

static dbt_res add_name_entry(X509_NAME *name, int nid, const char *what, const char *value,
                              size_t max)
{
    size_t len = strlen(value);
    if (len == 0 || len > max) {
        return dbt_fail(DBT_E_INVALID, "subject %s \"%.100s\" must be 1 to %zu characters", what,
                        value, max);
    }
    if (!X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)value, -1, -1,
                                    0)) {
        return pki_ossl_fail(DBT_E_INVALID, "invalid subject %s \"%.100s\"", what, value);
    }
    return DBT_OK;
}

/* Subject DN, most general first: C, O, OU, CN (upper bounds from RFC 5280 appendix A). */
static dbt_res set_subject(X509 *x, const struct dbt_pki_cert_spec *spec, const char *cn)
{
    dbt_res res = DBT_OK;
    X509_NAME *name = X509_NAME_new();
    DBT_ENSURE(name != NULL, NOMEM, "out of memory for a name");
    if (spec->c != NULL) {
        DBT_ENSURE(strlen(spec->c) == 2 && spec->c[0] >= 'A' && spec->c[0] <= 'Z' &&
                       spec->c[1] >= 'A' && spec->c[1] <= 'Z',
                   INVALID, "subject country \"%.20s\" must be a two-letter ISO 3166 code",
                   spec->c);
        DBT_TRY(add_name_entry(name, NID_countryName, "country", spec->c, 2));
    }
    if (spec->o != NULL) {
        DBT_TRY(add_name_entry(name, NID_organizationName, "organization", spec->o, 64));
    }
    if (spec->ou != NULL) {
        DBT_TRY(
            add_name_entry(name, NID_organizationalUnitName, "organizational unit", spec->ou, 64));
    }
    if (cn != NULL) {
        DBT_TRY(add_name_entry(name, NID_commonName, "common name", cn, 64));
    }
    if (!X509_set_subject_name(x, name)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot set the subject name");
    }
out:
    X509_NAME_free(name);
    return res;
}

/* subjectAltName built entry by entry (no config-string parsing of user input). */
static dbt_res add_san(X509 *x, const char *const *san, size_t n, bool critical)
{
    dbt_res res = DBT_OK;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    DBT_ENSURE(gens != NULL, NOMEM, "out of memory for subjectAltName");
    for (size_t i = 0; i < n; i++) {
        enum dbt_pki_endpoint_kind kind = dbt_pki_endpoint_kind(san[i]);
        GENERAL_NAME *gen = NULL;
        if (kind == DBT_PKI_ENDPOINT_INVALID) {
            DBT_TRY(dbt_pki_check_endpoint(san[i]));
        }
        if (kind == DBT_PKI_ENDPOINT_DNS) {
            ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
            if (ia5 == NULL || !ASN1_STRING_set(ia5, san[i], -1)) {
                ASN1_IA5STRING_free(ia5);
                DBT_BAIL(NOMEM, "out of memory for subjectAltName");
            }
            gen = GENERAL_NAME_new();
            if (gen == NULL) {
                ASN1_IA5STRING_free(ia5);
                DBT_BAIL(NOMEM, "out of memory for subjectAltName");
            }
            GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
        } else {
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(san[i]);
            if (ip == NULL) {
                res = pki_ossl_fail(DBT_E_INVALID, "cannot encode IP address \"%s\"", san[i]);
                goto out;
            }
            gen = GENERAL_NAME_new();
            if (gen == NULL) {
                ASN1_OCTET_STRING_free(ip);
                DBT_BAIL(NOMEM, "out of memory for subjectAltName");
            }
            GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
        }
        if (!sk_GENERAL_NAME_push(gens, gen)) {
            GENERAL_NAME_free(gen);
            DBT_BAIL(NOMEM, "out of memory for subjectAltName");
        }
    }
    if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical ? 1 : 0, X509V3_ADD_DEFAULT)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot add subjectAltName");
    }
out:
    GENERAL_NAMES_free(gens);
    return res;
}

/* One extension from OpenSSL's config syntax; only fixed strings from this file are passed. */
static dbt_res add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot build extension %s = %s", OBJ_nid2sn(nid),
                             value);
    }
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot add extension %s", OBJ_nid2sn(nid));
    }
    return DBT_OK;
}

static dbt_res check_spec(const struct dbt_pki_cert_spec *spec)
{
    if (spec->key == NULL) {
        return dbt_fail(DBT_E_INVALID, "certificate spec has no subject key");
    }
    if (spec->validity_secs <= 0) {
        return dbt_fail(DBT_E_INVALID, "certificate validity must be positive (got %lld s)",
                        (long long)spec->validity_secs);
    }
    if ((spec->issuer == NULL) != (spec->issuer_key == NULL)) {
        return dbt_fail(DBT_E_INVALID, "an issuer certificate needs its key and vice versa");
    }
    switch (spec->profile) {
    case DBT_PKI_PROFILE_CA:
        if (spec->pathlen < -1) {
            return dbt_fail(DBT_E_INVALID, "CA path length must be >= 0 or -1 (none)");
        }
        break;
    case DBT_PKI_PROFILE_SERVER:
        if (spec->n_san == 0 || spec->san == NULL) {
            return dbt_fail(DBT_E_INVALID, "a server certificate needs at least one endpoint");
        }
        __attribute__((fallthrough));
    case DBT_PKI_PROFILE_CLIENT:
        if (spec->issuer == NULL) {
            return dbt_fail(DBT_E_INVALID, "a leaf certificate cannot be self-signed");
        }
        break;
    default:
        return dbt_fail(DBT_E_INVALID, "unknown certificate profile %d", (int)spec->profile);
    }
    if (spec->profile != DBT_PKI_PROFILE_SERVER && (spec->cn == NULL || spec->cn[0] == '\0')) {
        return dbt_fail(DBT_E_INVALID, "certificate spec has no common name");
    }
    if (pki_md(spec->digest) == NULL) {
        return dbt_fail(DBT_E_INVALID, "unknown digest %d", (int)spec->digest);
    }
    for (size_t i = 0; i < spec->n_san; i++) {
        dbt_res r = dbt_pki_check_endpoint(spec->san[i]);
        if (!dbt_ok(r)) {
            return r;
        }
    }
    return DBT_OK;
}

/* The issuer must be a CA whose key we hold, valid at `now`, allowing one more level if a CA
 * is being issued. Its validity bounds the new certificate's. */
static dbt_res check_issuer(const struct dbt_pki_cert_spec *spec, int64_t now, int64_t *nb_min,
                            int64_t *na_max)
{
    X509 *ix = spec->issuer->x;
    char cn[128] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(ix), NID_commonName, cn, sizeof(cn));
    ERR_clear_error();
    if (!(X509_get_extension_flags(ix) & EXFLAG_CA) ||
        !(X509_get_key_usage(ix) & KU_KEY_CERT_SIGN)) {
        return dbt_fail(DBT_E_INVALID, "issuer \"%s\" is not a CA certificate", cn);
    }
    if (X509_check_private_key(ix, spec->issuer_key->pk) != 1) {
        ERR_clear_error();
        return dbt_fail(DBT_E_INVALID, "issuer key does not match issuer certificate \"%s\"", cn);
    }
    if (spec->profile == DBT_PKI_PROFILE_CA && X509_get_pathlen(ix) == 0) {
        return dbt_fail(DBT_E_INVALID, "issuer \"%s\" has pathlen 0 and cannot sign a CA", cn);
    }
    dbt_res r = pki_time_to_unix(X509_get0_notBefore(ix), nb_min);
    if (dbt_ok(r)) {
        r = pki_time_to_unix(X509_get0_notAfter(ix), na_max);
    }
    if (!dbt_ok(r)) {
        return r;
    }
    if (*na_max <= now) {
        return dbt_fail(DBT_E_INVALID, "issuer \"%s\" has expired", cn);
    }
    return DBT_OK;
}

dbt_res dbt_pki_cert_issue(const struct dbt_pki_cert_spec *spec, struct dbt_pki_cert **out)
{
    dbt_res res = DBT_OK;
    X509 *x = NULL;
    int64_t now = spec->now != 0 ? spec->now : dbt_now_unix();
    int64_t nb_min = INT64_MIN, na_max = INT64_MAX;

    DBT_TRY(check_spec(spec));
    if (spec->issuer != NULL) {
        DBT_TRY(check_issuer(spec, now, &nb_min, &na_max));
    }
    const char *cn = spec->cn;
    if (spec->profile == DBT_PKI_PROFILE_SERVER && (cn == NULL || cn[0] == '\0')) {
        /* CN = first endpoint, unless it exceeds X.520's 64-character ub-common-name: clients
         * match server names against the SAN (RFC 6125), so the CN is then left out. */
        cn = strlen(spec->san[0]) <= 64 ? spec->san[0] : NULL;
    }

    x = X509_new();
    DBT_ENSURE(x != NULL, NOMEM, "out of memory for a certificate");
    if (!X509_set_version(x, X509_VERSION_3)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set certificate version"));
    }
    DBT_TRY(set_random_serial(x));
    DBT_TRY(set_subject(x, spec, cn));
    X509_NAME *issuer_name =
        spec->issuer ? X509_get_subject_name(spec->issuer->x) : X509_get_subject_name(x);
    if (!X509_set_issuer_name(x, issuer_name)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set the issuer name"));
    }

    /* Validity: backdated for clocks running behind ours, nested in the issuer's. */
    int64_t nb = now - DBT_PKI_BACKDATE_SECS;
    int64_t na = now + spec->validity_secs;
    if (nb < nb_min) {
        nb = nb_min;
    }
    if (na > na_max) {
        na = na_max;
    }
    DBT_ENSURE(na > nb, INVALID, "certificate would not be valid at any time");
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set the validity period"));
    }
    if (!X509_set_pubkey(x, spec->key->pk)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set the public key"));
    }

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, spec->issuer ? spec->issuer->x : x, x, NULL, NULL, 0);
    if (spec->issuer == NULL) {
        /* Self-signed: the authority key identifier is our own public key's. */
        X509V3_set_issuer_pkey(&ctx, spec->key->pk);
    }
    switch (spec->profile) {
    case DBT_PKI_PROFILE_CA: {
        char bc[48];
        if (spec->pathlen >= 0) {
            snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", spec->pathlen);
        } else {
            snprintf(bc, sizeof(bc), "critical,CA:TRUE");
        }
        DBT_TRY(add_ext(x, &ctx, NID_basic_constraints, bc));
        DBT_TRY(add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
        break;
    }
    case DBT_PKI_PROFILE_SERVER:
        DBT_TRY(add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
        /* keyEncipherment only where RSA key transport is possible (TLS 1.2 RSA kx). */
        DBT_TRY(add_ext(x, &ctx, NID_key_usage,
                        EVP_PKEY_is_a(spec->key->pk, "RSA")
                            ? "critical,digitalSignature,keyEncipherment"
                            : "critical,digitalSignature"));
        DBT_TRY(add_ext(x, &ctx, NID_ext_key_usage, "serverAuth"));
        break;
    case DBT_PKI_PROFILE_CLIENT:
        DBT_TRY(add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
        DBT_TRY(add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature"));
        DBT_TRY(add_ext(x, &ctx, NID_ext_key_usage, "clientAuth"));
        break;
    }
    if (spec->n_san > 0) {
        /* RFC 5280 section 4.2.1.6: with an empty subject the SAN must be critical. */
        bool empty_subject = X509_NAME_entry_count(X509_get_subject_name(x)) == 0;
        DBT_TRY(add_san(x, spec->san, spec->n_san, empty_subject));
    }
    DBT_TRY(add_ext(x, &ctx, NID_subject_key_identifier, "hash"));
    DBT_TRY(add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));

    const struct dbt_pki_key *signer = spec->issuer ? spec->issuer_key : spec->key;
    if (X509_sign(x, signer->pk, pki_md(spec->digest)) <= 0) {
        DBT_TRY(
            pki_ossl_fail(DBT_E_CRYPTO, "cannot sign certificate \"%s\"", cn ? cn : spec->san[0]));
    }
    res = pki_cert_wrap(x, out);
    x = NULL;
out:
    X509_free(x);
    return res;
}
