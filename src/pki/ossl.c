/*
 * ossl.c - the boundary between OpenSSL's conventions (1/0/NULL returns and a per-thread error
 * queue) and dbtls's (dbt_res and a one-line message), plus the handle wrappers and conversions
 * shared by the other files of src/pki.
 */
#include "pki/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>

dbt_res pki_ossl_fail(enum dbt_err code, const char *fmt, ...)
{
    char msg[768];
    size_t len;
    unsigned long e;
    int shown = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    len = strlen(msg);

    /* The earliest error is usually the root cause; show up to three distinct reasons. */
    while ((e = ERR_get_error()) != 0) {
        const char *reason = ERR_reason_error_string(e);
        char fallback[32];
        if (reason == NULL) {
            snprintf(fallback, sizeof(fallback), "error %lx", e);
            reason = fallback;
        }
        if (shown >= 3 || strstr(msg, reason) != NULL) {
            continue;
        }
        snprintf(msg + len, sizeof(msg) - len, "%s%s", shown == 0 ? ": " : ", ", reason);
        len = strlen(msg);
        shown++;
    }
    return dbt_fail(code, "%s", msg);
}

dbt_res pki_key_wrap(EVP_PKEY *pk, struct dbt_pki_key **out)
{
    struct dbt_pki_key *k = malloc(sizeof(*k));
    if (k == NULL) {
        EVP_PKEY_free(pk);
        return dbt_fail(DBT_E_NOMEM, "out of memory for a key");
    }
    k->pk = pk;
    *out = k;
    return DBT_OK;
}

dbt_res pki_cert_wrap(X509 *x, struct dbt_pki_cert **out)
{
    struct dbt_pki_cert *c = malloc(sizeof(*c));
    if (c == NULL) {
        X509_free(x);
        return dbt_fail(DBT_E_NOMEM, "out of memory for a certificate");
    }
    c->x = x;
    *out = c;
    return DBT_OK;
}

dbt_res pki_crl_wrap(X509_CRL *crl, struct dbt_pki_crl **out)
{
    struct dbt_pki_crl *c = malloc(sizeof(*c));
    if (c == NULL) {
        X509_CRL_free(crl);
        return dbt_fail(DBT_E_NOMEM, "out of memory for a CRL");
    }
    c->c = crl;
    *out = c;
    return DBT_OK;
}

const EVP_MD *pki_md(enum dbt_pki_digest d)
{
    switch (d) {
    case DBT_PKI_SHA256:
        return EVP_sha256();
    case DBT_PKI_SHA384:
        return EVP_sha384();
    }
    return NULL;
}

dbt_res pki_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return pki_ossl_fail(DBT_E_INVALID, "malformed ASN.1 time");
    }
    *out = (int64_t)timegm(&tm);
    return DBT_OK;
}

dbt_res pki_bio_to_str(BIO *bio, char **out)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0) {
        return dbt_fail(DBT_E_INTERNAL, "memory BIO has no data");
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    if (n > 0) {
        memcpy(s, data, (size_t)n);
    }
    s[n] = '\0';
    *out = s;
    return DBT_OK;
}

dbt_res pki_bio_to_bytes(BIO *bio, uint8_t **out, size_t *out_len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0) {
        return dbt_fail(DBT_E_INTERNAL, "memory BIO has no data");
    }
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    if (n > 0) {
        memcpy(p, data, (size_t)n);
    }
    *out = p;
    *out_len = (size_t)n;
    return DBT_OK;
}

BIO *pki_bio_str(const char *s)
{
    return BIO_new_mem_buf(s, -1);
}

int pki_no_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

dbt_res pki_name_rfc2253(const X509_NAME *name, char **out)
{
    dbt_res res = DBT_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    /* XN_FLAG_RFC2253 escapes per RFC 2253 and prints the RDNs most-specific first;
     * without ASN1_STRFLGS_ESC_MSB so UTF-8 names stay readable. */
    unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
    if (X509_NAME_print_ex(bio, name, 0, flags) < 0) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot print a distinguished name");
        goto out;
    }
    res = pki_bio_to_str(bio, out);
out:
    BIO_free(bio);
    return res;
}
