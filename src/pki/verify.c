/*
 * verify.c - chain verification with OpenSSL's own verifier, the same code path `openssl verify`
 * and the TLS front use: trust anchors, optional intermediates, optional CRL for the leaf,
 * purpose (serverAuth/clientAuth) and host/IP checks. X509_V_FLAG_X509_STRICT is on, so the
 * tests that call this also check that what we issue conforms to RFC 5280.
 */
#include "pki/internal.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

static dbt_res fill_stack(const struct dbt_pki_certs *certs, STACK_OF(X509) * sk)
{
    for (size_t i = 0; certs != NULL && i < certs->n; i++) {
        if (!sk_X509_push(sk, certs->v[i]->x)) {
            return dbt_fail(DBT_E_NOMEM, "out of memory");
        }
    }
    return DBT_OK;
}

dbt_res dbt_pki_verify(const struct dbt_pki_cert *leaf, const struct dbt_pki_verify_opts *opts,
                       int *verify_error)
{
    dbt_res res = DBT_OK;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    unsigned long flags = X509_V_FLAG_X509_STRICT;

    if (verify_error != NULL) {
        *verify_error = 0;
    }
    DBT_ENSURE(leaf != NULL && opts != NULL && opts->trusted != NULL && opts->trusted->n > 0,
               INVALID, "verification needs a certificate and at least one trusted certificate");
    store = X509_STORE_new();
    untrusted = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    DBT_ENSURE(store != NULL && untrusted != NULL && ctx != NULL, NOMEM,
               "out of memory for verification");
    for (size_t i = 0; i < opts->trusted->n; i++) {
        if (!X509_STORE_add_cert(store, opts->trusted->v[i]->x)) {
            DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot add trusted certificate %zu", i));
        }
    }
    DBT_TRY(fill_stack(opts->untrusted, untrusted));
    if (opts->crl != NULL) {
        if (!X509_STORE_add_crl(store, opts->crl->c)) {
            DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot add the CRL"));
        }
        flags |= X509_V_FLAG_CRL_CHECK; /* leaf only: the CRL is its issuer's */
    }
    if (!X509_STORE_CTX_init(ctx, store, leaf->x, untrusted)) {
        DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set up verification"));
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(param, flags);
    if (opts->at != 0) {
        X509_VERIFY_PARAM_set_time(param, (time_t)opts->at);
    }
    if (opts->purpose != DBT_PKI_PURPOSE_ANY) {
        int purpose = opts->purpose == DBT_PKI_PURPOSE_SERVER ? X509_PURPOSE_SSL_SERVER
                                                              : X509_PURPOSE_SSL_CLIENT;
        if (!X509_STORE_CTX_set_purpose(ctx, purpose)) {
            DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "cannot set the verification purpose"));
        }
    }
    if (opts->host != NULL) {
        enum dbt_pki_endpoint_kind kind = dbt_pki_endpoint_kind(opts->host);
        int ok = kind == DBT_PKI_ENDPOINT_IPV4 || kind == DBT_PKI_ENDPOINT_IPV6
                     ? X509_VERIFY_PARAM_set1_ip_asc(param, opts->host)
                     : X509_VERIFY_PARAM_set1_host(param, opts->host, 0);
        if (!ok) {
            DBT_TRY(pki_ossl_fail(DBT_E_INVALID, "cannot check host \"%s\"", opts->host));
        }
    }
    int rc = X509_verify_cert(ctx);
    if (rc != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        if (verify_error != NULL) {
            *verify_error = err;
        }
        ERR_clear_error();
        if (err == X509_V_OK) {
            DBT_TRY(pki_ossl_fail(DBT_E_CRYPTO, "certificate verification failed internally"));
        }
        DBT_BAIL(INVALID, "certificate verify failed at depth %d: %s", depth,
                 X509_verify_cert_error_string(err));
    }
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return res;
}
