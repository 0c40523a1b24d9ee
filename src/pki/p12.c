/*
 * p12.c - PKCS#12 files for client certificates (client.p12 for Java and Windows): certificate,
 * key and CA chain under a password, with OpenSSL 3's modern choices spelled out so they do not
 * drift: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for key and certificates, HMAC-SHA256 MAC.
 */
#include "pki/internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pkcs12.h>

#define P12_ITER 2048 /* PKCS12_DEFAULT_ITER; what keytool and openssl both read quickly */

dbt_res dbt_pki_p12_build(const struct dbt_pki_cert *cert, const struct dbt_pki_key *key,
                          const struct dbt_pki_certs *chain, const char *password,
                          const char *friendly_name, uint8_t **out, size_t *out_len)
{
    dbt_res res = DBT_OK;
    STACK_OF(X509) *ca = NULL;
    PKCS12 *p12 = NULL;
    unsigned char *der = NULL;
    int len = 0;
    const char *pass = password ? password : "";

    DBT_ENSURE(cert != NULL && key != NULL, INVALID, "a PKCS#12 needs a certificate and its key");
    DBT_TRY(dbt_pki_cert_key_match(cert, key));
    ca = sk_X509_new_null();
    DBT_ENSURE(ca != NULL, NOMEM, "out of memory");
    for (size_t i = 0; chain != NULL && i < chain->n; i++) {
        if (!sk_X509_push(ca, chain->v[i]->x)) {
            DBT_BAIL(NOMEM, "out of memory");
        }
    }
    /* mac_iter -1: no MAC here, set below with an explicit SHA-256. */
    p12 = PKCS12_create(pass, friendly_name, key->pk, cert->x, ca, NID_aes_256_cbc, NID_aes_256_cbc,
                        P12_ITER, -1, 0);
    if (p12 == NULL) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot build PKCS#12"));
    }
    if (!PKCS12_set_mac(p12, pass, -1, NULL, 0, P12_ITER, EVP_sha256())) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot add the PKCS#12 MAC"));
    }
    len = i2d_PKCS12(p12, &der);
    if (len <= 0) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot encode PKCS#12"));
    }
    uint8_t *p = malloc((size_t)len);
    DBT_ENSURE(p != NULL, NOMEM, "out of memory");
    memcpy(p, der, (size_t)len);
    *out = p;
    *out_len = (size_t)len;
out:
    if (der != NULL) {
        OPENSSL_clear_free(der, (size_t)len);
    }
    PKCS12_free(p12);
    sk_X509_free(ca); /* the certificates belong to the caller's list */
    return res;
}

dbt_res dbt_pki_p12_parse(const uint8_t *data, size_t len, const char *password,
                          struct dbt_pki_cert **cert_out, struct dbt_pki_key **key_out,
                          struct dbt_pki_certs *chain_out)
{
    dbt_res res = DBT_OK;
    PKCS12 *p12 = NULL;
    EVP_PKEY *pk = NULL;
    X509 *x = NULL;
    STACK_OF(X509) *ca = NULL;
    struct dbt_pki_certs chain = {NULL, 0};
    struct dbt_pki_cert *cert = NULL;
    struct dbt_pki_key *key = NULL;
    const char *pass = password ? password : "";

    DBT_ENSURE(data != NULL && len > 0 && len <= (size_t)INT32_MAX, INVALID,
               "no PKCS#12 data given");
    const unsigned char *p = data;
    p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (p12 == NULL) {
        DBT_TRY(pki_ossl_fail(DBT_E_INVALID, "cannot parse PKCS#12"));
    }
    if (PKCS12_mac_present(p12) && !PKCS12_verify_mac(p12, pass, -1)) {
        ERR_clear_error();
        DBT_BAIL(CRYPTO, "PKCS#12 MAC verification failed: wrong password or damaged file");
    }
    if (!PKCS12_parse(p12, pass, &pk, &x, &ca)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot decrypt PKCS#12"));
    }
    for (int i = 0; ca != NULL && i < sk_X509_num(ca); i++) {
        struct dbt_pki_cert tmp = {sk_X509_value(ca, i)};
        DBT_TRY(dbt_pki_certs_push(&chain, &tmp));
    }
    if (cert_out != NULL) {
        DBT_ENSURE(x != NULL, INVALID, "PKCS#12 holds no certificate");
        DBT_TRY(pki_cert_wrap(x, &cert));
        x = NULL;
    }
    if (key_out != NULL) {
        DBT_ENSURE(pk != NULL, INVALID, "PKCS#12 holds no private key");
        DBT_TRY(pki_key_wrap(pk, &key));
        pk = NULL;
    }
    if (cert_out != NULL) {
        *cert_out = cert;
        cert = NULL;
    }
    if (key_out != NULL) {
        *key_out = key;
        key = NULL;
    }
    if (chain_out != NULL) {
        *chain_out = chain;
        chain = (struct dbt_pki_certs){NULL, 0};
    }
out:
    dbt_pki_cert_free(cert);
    dbt_pki_key_free(key);
    dbt_pki_certs_free(&chain);
    sk_X509_pop_free(ca, X509_free);
    X509_free(x);
    EVP_PKEY_free(pk);
    PKCS12_free(p12);
    return res;
}
