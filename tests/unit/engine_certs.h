/*
 * engine_certs.h - a tiny test PKI for the network-side unit tests (test_tls, test_front): a CA,
 * leaves signed by it and a CRL, made with OpenSSL in memory and returned as PEM text (the form
 * the daemon receives from the control plane). Test code only.
 */
#ifndef DBT_TEST_ENGINE_CERTS_H
#define DBT_TEST_ENGINE_CERTS_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

struct tcert {
    EVP_PKEY *key;
    X509 *cert;
    char *cert_pem;
    char *key_pem;
};

static char *tc_bio_str(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void tc_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/*
 * Makes a certificate for cn signed by ca (NULL = self-signed CA). kind: 0 CA, 1 server (san =
 * "DNS:localhost"), 2 client. days_from/days_to relative to now (negative = past).
 */
static void tc_make(struct tcert *out, const struct tcert *ca, const char *cn, int kind,
                    long serial, int days_from, int days_to)
{
    memset(out, 0, sizeof(*out));
    out->key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), (long)days_from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days_to * 86400);
    X509_set_pubkey(x, out->key);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509 *issuer = ca ? ca->cert : x;
    X509_set_issuer_name(x, X509_get_subject_name(issuer));
    if (kind == 0) {
        tc_ext(issuer, x, NID_basic_constraints, "critical,CA:TRUE");
        tc_ext(issuer, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        tc_ext(issuer, x, NID_basic_constraints, "critical,CA:FALSE");
        tc_ext(issuer, x, NID_ext_key_usage, kind == 1 ? "serverAuth" : "clientAuth");
        if (kind == 1) {
            tc_ext(issuer, x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        }
    }
    X509_sign(x, ca ? ca->key : out->key, EVP_sha256());
    out->cert = x;
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    out->cert_pem = tc_bio_str(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, out->key, NULL, NULL, 0, NULL, NULL);
    out->key_pem = tc_bio_str(b);
}

/* A CRL of ca revoking the given serials (n may be 0). */
__attribute__((unused)) static char *tc_crl(const struct tcert *ca, const long *serials, size_t n)
{
    X509_CRL *crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert));
    ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), -1, 0);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_free(t);
    t = ASN1_TIME_adj(NULL, time(NULL), 30, 0);
    X509_CRL_set1_nextUpdate(crl, t);
    ASN1_TIME_free(t);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *sn = ASN1_INTEGER_new();
        ASN1_INTEGER_set(sn, serials[i]);
        X509_REVOKED_set_serialNumber(r, sn);
        ASN1_INTEGER_free(sn);
        ASN1_TIME *rt = ASN1_TIME_adj(NULL, time(NULL), -1, 0);
        X509_REVOKED_set_revocationDate(r, rt);
        ASN1_TIME_free(rt);
        X509_CRL_add0_revoked(crl, r);
    }
    X509_CRL_sort(crl);
    X509_CRL_sign(crl, ca->key, EVP_sha256());
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_CRL(b, crl);
    X509_CRL_free(crl);
    return tc_bio_str(b);
}

static void tc_free(struct tcert *c)
{
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
    free(c->cert_pem);
    free(c->key_pem);
}

#endif
