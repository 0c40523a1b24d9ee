/*
 * certio.c - certificates in and out: PEM and DER, lists of certificates (chains, bundles), and
 * the key/certificate match check.
 */
#include "pki/internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

void dbt_pki_cert_free(struct dbt_pki_cert *cert)
{
    if (cert != NULL) {
        X509_free(cert->x);
        free(cert);
    }
}

struct dbt_pki_cert *dbt_pki_cert_ref(const struct dbt_pki_cert *cert)
{
    struct dbt_pki_cert *c = malloc(sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (!X509_up_ref(cert->x)) {
        free(c);
        return NULL;
    }
    c->x = cert->x;
    return c;
}

dbt_res dbt_pki_cert_to_pem(const struct dbt_pki_cert *cert, char **out_pem)
{
    dbt_res res = DBT_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    if (!PEM_write_bio_X509(bio, cert->x)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot encode certificate as PEM");
        goto out;
    }
    res = pki_bio_to_str(bio, out_pem);
out:
    BIO_free(bio);
    return res;
}

dbt_res dbt_pki_cert_to_der(const struct dbt_pki_cert *cert, uint8_t **out, size_t *out_len)
{
    unsigned char *der = NULL;
    int len = i2d_X509(cert->x, &der);
    if (len <= 0) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot encode certificate as DER");
    }
    uint8_t *p = malloc((size_t)len);
    if (p == NULL) {
        OPENSSL_free(der);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    memcpy(p, der, (size_t)len);
    OPENSSL_free(der);
    *out = p;
    *out_len = (size_t)len;
    return DBT_OK;
}

/* Reads the next CERTIFICATE block; *x = NULL at a clean end of input. */
static dbt_res read_next(BIO *bio, X509 **x)
{
    ERR_clear_error();
    *x = PEM_read_bio_X509(bio, NULL, pki_no_password_cb, NULL);
    if (*x != NULL) {
        return DBT_OK;
    }
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return DBT_OK;
    }
    return pki_ossl_fail(DBT_E_INVALID, "cannot parse certificate PEM");
}

dbt_res dbt_pki_cert_from_pem(const char *pem, struct dbt_pki_cert **out)
{
    if (pem == NULL) {
        return dbt_fail(DBT_E_INVALID, "no certificate PEM given");
    }
    BIO *bio = pki_bio_str(pem);
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    X509 *x = NULL;
    dbt_res res = read_next(bio, &x);
    BIO_free(bio);
    if (!dbt_ok(res)) {
        return res;
    }
    if (x == NULL) {
        return dbt_fail(DBT_E_INVALID, "no certificate found in PEM text");
    }
    return pki_cert_wrap(x, out);
}

dbt_res dbt_pki_cert_pem_sha1(const char *pem, char out[41])
{
    if (pem == NULL) {
        return dbt_fail(DBT_E_INVALID, "no certificate PEM given");
    }
    BIO *bio = pki_bio_str(pem);
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    unsigned char *der = NULL, md[SHA_DIGEST_LENGTH];
    long len = 0;
    char *name = NULL;
    bool ok = PEM_bytes_read_bio(&der, &len, &name, PEM_STRING_X509, bio, NULL, NULL) == 1;
    BIO_free(bio);
    OPENSSL_free(name);
    if (!ok) {
        return pki_ossl_fail(DBT_E_INVALID, "no certificate found in PEM text");
    }
    ok = EVP_Digest(der, (size_t)len, md, NULL, EVP_sha1(), NULL) == 1;
    OPENSSL_free(der);
    if (!ok) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot compute certificate fingerprint");
    }
    pki_hex_lower(md, SHA_DIGEST_LENGTH, out);
    return DBT_OK;
}

dbt_res dbt_pki_cert_from_der(const uint8_t *der, size_t len, struct dbt_pki_cert **out)
{
    const unsigned char *p = der;
    if (der == NULL || len == 0 || len > (size_t)INT32_MAX) {
        return dbt_fail(DBT_E_INVALID, "no certificate DER given");
    }
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        return pki_ossl_fail(DBT_E_INVALID, "cannot parse certificate DER");
    }
    if (p != der + len) {
        X509_free(x);
        return dbt_fail(DBT_E_INVALID, "trailing bytes after certificate DER");
    }
    return pki_cert_wrap(x, out);
}

dbt_res dbt_pki_certs_push(struct dbt_pki_certs *list, const struct dbt_pki_cert *cert)
{
    struct dbt_pki_cert **v = realloc(list->v, (list->n + 1) * sizeof(*v));
    if (v == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory for a certificate list");
    }
    list->v = v;
    struct dbt_pki_cert *ref = dbt_pki_cert_ref(cert);
    if (ref == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory for a certificate reference");
    }
    list->v[list->n++] = ref;
    return DBT_OK;
}

void dbt_pki_certs_free(struct dbt_pki_certs *list)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        dbt_pki_cert_free(list->v[i]);
    }
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

dbt_res dbt_pki_certs_from_pem(const char *pem, struct dbt_pki_certs *out)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_certs list = {NULL, 0};
    struct dbt_pki_cert *c = NULL;
    if (pem == NULL) {
        return dbt_fail(DBT_E_INVALID, "no certificate PEM given");
    }
    BIO *bio = pki_bio_str(pem);
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    for (;;) {
        X509 *x = NULL;
        DBT_TRY(read_next(bio, &x));
        if (x == NULL) {
            break;
        }
        DBT_TRY(pki_cert_wrap(x, &c));
        res = dbt_pki_certs_push(&list, c);
        dbt_pki_cert_free(c);
        c = NULL;
        DBT_TRY(res);
    }
    DBT_ENSURE(list.n > 0, INVALID, "no certificate found in PEM text");
    *out = list;
    list = (struct dbt_pki_certs){NULL, 0};
out:
    BIO_free(bio);
    dbt_pki_certs_free(&list);
    return res;
}

dbt_res dbt_pki_cert_key_match(const struct dbt_pki_cert *cert, const struct dbt_pki_key *key)
{
    if (X509_check_private_key(cert->x, key->pk) != 1) {
        ERR_clear_error();
        return dbt_fail(DBT_E_INVALID, "private key does not match the certificate");
    }
    return DBT_OK;
}
