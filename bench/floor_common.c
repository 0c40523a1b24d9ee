/*
 * floor_common.c - the shared half of the handshake-floor programs (floor_common.h).
 */
#include "floor_common.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *floor_prog = "tls_floor";

double floor_thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void floor_die(const char *what)
{
    fprintf(stderr, "%s: %s failed\n", floor_prog, what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

bool floor_want_io(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* A certificate for key k with subject CN=cn, signed by (issuer, ikey), or self-signed. */
static X509 *make_cert(EVP_PKEY *k, const char *cn, X509 *issuer, EVP_PKEY *ikey, bool ca)
{
    X509 *x = X509_new();
    if (x == NULL || X509_set_version(x, 2) != 1) {
        floor_die("X509_new");
    }
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"dbtls", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    if (X509_sign(x, ikey ? ikey : k, ca ? EVP_sha384() : EVP_sha256()) <= 0) {
        floor_die("X509_sign");
    }
    return x;
}

void floor_chain_init(struct floor_chain *c)
{
    c->cak = EVP_EC_gen("P-384");
    c->k = EVP_EC_gen("P-256");
    if (c->cak == NULL || c->k == NULL) {
        floor_die("EVP_EC_gen");
    }
    c->ca = make_cert(c->cak, "floor CA", NULL, NULL, true);
    c->leaf = make_cert(c->k, "localhost", c->ca, c->cak, false);
}

void floor_chain_cleanup(struct floor_chain *c)
{
    X509_free(c->leaf);
    X509_free(c->ca);
    EVP_PKEY_free(c->k);
    EVP_PKEY_free(c->cak);
}
