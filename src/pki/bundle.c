/*
 * bundle.c - PKCS#7 certificate bundles (.p7b), the "degenerate" certs-only SignedData of
 * RFC 2315 section 9.1 with no signers and no content, as RDS publishes its CA bundles and as
 * Windows and Java import them.
 */
#include "pki/internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

static dbt_res build(const struct dbt_pki_certs *certs, PKCS7 **out)
{
    dbt_res res = DBT_OK;
    PKCS7 *p7 = NULL;
    DBT_ENSURE(certs != NULL && certs->n > 0, INVALID, "a PKCS#7 bundle needs certificates");
    p7 = PKCS7_new();
    DBT_ENSURE(p7 != NULL, NOMEM, "out of memory for PKCS#7");
    /* SignedData version 1, contentInfo of type data with the content absent. */
    if (!PKCS7_set_type(p7, NID_pkcs7_signed)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot build PKCS#7 SignedData"));
    }
    p7->d.sign->contents->type = OBJ_nid2obj(NID_pkcs7_data);
    for (size_t i = 0; i < certs->n; i++) {
        if (!PKCS7_add_certificate(p7, certs->v[i]->x)) {
            DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot add certificate %zu to PKCS#7", i));
        }
    }
    *out = p7;
    p7 = NULL;
out:
    PKCS7_free(p7);
    return res;
}

dbt_res dbt_pki_p7b_der(const struct dbt_pki_certs *certs, uint8_t **out, size_t *out_len)
{
    dbt_res res = DBT_OK;
    PKCS7 *p7 = NULL;
    unsigned char *der = NULL;
    DBT_TRY(build(certs, &p7));
    int len = i2d_PKCS7(p7, &der);
    if (len <= 0) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot encode PKCS#7 as DER"));
    }
    uint8_t *p = malloc((size_t)len);
    DBT_ENSURE(p != NULL, NOMEM, "out of memory");
    memcpy(p, der, (size_t)len);
    *out = p;
    *out_len = (size_t)len;
out:
    OPENSSL_free(der);
    PKCS7_free(p7);
    return res;
}

dbt_res dbt_pki_p7b_pem(const struct dbt_pki_certs *certs, char **out_pem)
{
    dbt_res res = DBT_OK;
    PKCS7 *p7 = NULL;
    BIO *bio = NULL;
    DBT_TRY(build(certs, &p7));
    bio = BIO_new(BIO_s_mem());
    DBT_ENSURE(bio != NULL, NOMEM, "cannot allocate a BIO");
    if (!PEM_write_bio_PKCS7(bio, p7)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot encode PKCS#7 as PEM"));
    }
    res = pki_bio_to_str(bio, out_pem);
out:
    BIO_free(bio);
    PKCS7_free(p7);
    return res;
}

dbt_res dbt_pki_p7b_parse(const uint8_t *data, size_t len, struct dbt_pki_certs *out)
{
    dbt_res res = DBT_OK;
    PKCS7 *p7 = NULL;
    struct dbt_pki_certs list = {NULL, 0};
    DBT_ENSURE(data != NULL && len > 0 && len <= (size_t)INT32_MAX, INVALID,
               "no PKCS#7 data given");
    if (len > 10 && memcmp(data, "-----BEGIN", 10) == 0) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        DBT_ENSURE(bio != NULL, NOMEM, "cannot allocate a BIO");
        p7 = PEM_read_bio_PKCS7(bio, NULL, pki_no_password_cb, NULL);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;
        p7 = d2i_PKCS7(NULL, &p, (long)len);
        if (p7 != NULL && p != data + len) {
            DBT_BAIL(INVALID, "trailing bytes after PKCS#7 DER");
        }
    }
    if (p7 == NULL) {
        DBT_TRY(pki_ossl_fail(DBT_E_INVALID, "cannot parse PKCS#7"));
    }
    DBT_ENSURE(PKCS7_type_is_signed(p7) && p7->d.sign != NULL, INVALID, "PKCS#7 is not SignedData");
    STACK_OF(X509) *sk = p7->d.sign->cert;
    for (int i = 0; sk != NULL && i < sk_X509_num(sk); i++) {
        struct dbt_pki_cert tmp = {sk_X509_value(sk, i)};
        DBT_TRY(dbt_pki_certs_push(&list, &tmp));
    }
    DBT_ENSURE(list.n > 0, INVALID, "PKCS#7 holds no certificates");
    *out = list;
    list = (struct dbt_pki_certs){NULL, 0};
out:
    dbt_pki_certs_free(&list);
    PKCS7_free(p7);
    return res;
}
