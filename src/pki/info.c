/*
 * info.c - what people and JSON see of a certificate: serial, fingerprints (Cloud SQL's
 * sha1Fingerprint form), names, validity, key and signature algorithms, CA flags and SANs.
 */
#include "pki/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

void pki_hex_lower(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static dbt_res fingerprint(X509 *x, const EVP_MD *md, char *out)
{
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(x, md, buf, &n)) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot compute certificate fingerprint");
    }
    pki_hex_lower(buf, n, out);
    return DBT_OK;
}

static dbt_res serial_hex(X509 *x, char *out, size_t outlen)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn == NULL) {
        return pki_ossl_fail(DBT_E_INVALID, "cannot read the serial number");
    }
    char *hex = BN_bn2hex(bn);
    BN_free(bn);
    if (hex == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot format the serial number");
    }
    /* BN_bn2hex prints a leading '-' for negative serials (seen in the wild, not from us). */
    snprintf(out, outlen, "%s", hex);
    OPENSSL_free(hex);
    return DBT_OK;
}

static dbt_res subject_cn(X509 *x, char **out)
{
    X509_NAME *name = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    int n = 0;
    if (i >= 0) {
        n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
        if (n < 0) {
            return pki_ossl_fail(DBT_E_INVALID, "cannot decode the subject common name");
        }
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        OPENSSL_free(utf8);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    if (n > 0) {
        memcpy(s, utf8, (size_t)n);
    }
    s[n] = '\0';
    OPENSSL_free(utf8);
    *out = s;
    return DBT_OK;
}

static void key_alg(X509 *x, char *out, size_t outlen)
{
    EVP_PKEY *pk = X509_get0_pubkey(x);
    if (pk == NULL) {
        ERR_clear_error();
        snprintf(out, outlen, "unknown");
        return;
    }
    if (EVP_PKEY_is_a(pk, "RSA")) {
        snprintf(out, outlen, "RSA-%d", EVP_PKEY_get_bits(pk));
        return;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &len)) {
            int nid = OBJ_sn2nid(group);
            const char *nist = nid != NID_undef ? EC_curve_nid2nist(nid) : NULL;
            snprintf(out, outlen, "EC %.12s", nist ? nist : group);
            return;
        }
        ERR_clear_error();
    }
    const char *t = EVP_PKEY_get0_type_name(pk);
    snprintf(out, outlen, "%s", t ? t : "unknown");
}

static dbt_res add_san_text(struct dbt_pki_cert_info *info, const char *text)
{
    char **v = realloc(info->san, (info->n_san + 1) * sizeof(*v));
    if (v == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    info->san = v;
    v[info->n_san] = strdup(text);
    if (v[info->n_san] == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    info->n_san++;
    return DBT_OK;
}

static dbt_res read_san(X509 *x, struct dbt_pki_cert_info *info)
{
    dbt_res res = DBT_OK;
    int crit = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        ERR_clear_error();
        return DBT_OK;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type = 0;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
        char text[INET6_ADDRSTRLEN + 1];
        if (type == GEN_DNS) {
            int n = ASN1_STRING_length(s);
            char *dns = malloc((size_t)n + 1);
            DBT_ENSURE(dns != NULL, NOMEM, "out of memory");
            memcpy(dns, ASN1_STRING_get0_data(s), (size_t)n);
            dns[n] = '\0';
            res = add_san_text(info, dns);
            free(dns);
            DBT_TRY(res);
        } else if (type == GEN_IPADD) {
            int n = ASN1_STRING_length(s);
            int af = n == 4 ? AF_INET : n == 16 ? AF_INET6 : 0;
            if (af == 0 || inet_ntop(af, ASN1_STRING_get0_data(s), text, sizeof(text)) == NULL) {
                continue;
            }
            DBT_TRY(add_san_text(info, text));
        }
    }
out:
    GENERAL_NAMES_free(gens);
    return res;
}

dbt_res dbt_pki_cert_info(const struct dbt_pki_cert *cert, struct dbt_pki_cert_info *out)
{
    dbt_res res = DBT_OK;
    X509 *x = cert->x;
    struct dbt_pki_cert_info info;
    memset(&info, 0, sizeof(info));

    DBT_TRY(serial_hex(x, info.serial, sizeof(info.serial)));
    DBT_TRY(fingerprint(x, EVP_sha1(), info.sha1));
    DBT_TRY(fingerprint(x, EVP_sha256(), info.sha256));
    DBT_TRY(subject_cn(x, &info.cn));
    DBT_TRY(pki_name_rfc2253(X509_get_subject_name(x), &info.subject));
    DBT_TRY(pki_name_rfc2253(X509_get_issuer_name(x), &info.issuer));
    DBT_TRY(pki_time_to_unix(X509_get0_notBefore(x), &info.not_before));
    DBT_TRY(pki_time_to_unix(X509_get0_notAfter(x), &info.not_after));
    key_alg(x, info.key_alg, sizeof(info.key_alg));
    int sig_nid = X509_get_signature_nid(x);
    snprintf(info.sig_alg, sizeof(info.sig_alg), "%s",
             sig_nid != NID_undef ? OBJ_nid2ln(sig_nid) : "unknown");
    /* X509_get_extension_flags caches the decoded extensions (EXFLAG_INVALID on bad ones). */
    uint32_t flags = X509_get_extension_flags(x);
    info.is_ca = (flags & EXFLAG_CA) != 0;
    info.pathlen = info.is_ca ? (int)X509_get_pathlen(x) : -1;
    info.self_signed = X509_self_signed(x, 1) == 1;
    ERR_clear_error();
    DBT_TRY(read_san(x, &info));
    *out = info;
    memset(&info, 0, sizeof(info));
out:
    dbt_pki_cert_info_cleanup(&info);
    return res;
}

dbt_res dbt_pki_cert_info_pem(const char *pem, struct dbt_pki_cert_info *out)
{
    struct dbt_pki_cert *cert = NULL;
    dbt_res res = dbt_pki_cert_from_pem(pem, &cert);
    if (dbt_ok(res)) {
        res = dbt_pki_cert_info(cert, out);
    }
    dbt_pki_cert_free(cert);
    return res;
}

void dbt_pki_cert_info_cleanup(struct dbt_pki_cert_info *info)
{
    if (info == NULL) {
        return;
    }
    free(info->cn);
    free(info->subject);
    free(info->issuer);
    for (size_t i = 0; i < info->n_san; i++) {
        free(info->san[i]);
    }
    free(info->san);
    memset(info, 0, sizeof(*info));
}
