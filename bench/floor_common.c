/*
 * floor_common.c - the shared half of the handshake-floor programs (floor_common.h).
 */
#include "floor_common.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#ifdef OPENSSL_IS_BORINGSSL
#include <openssl/ec_key.h>
#include <openssl/nid.h>
static EVP_PKEY *EVP_EC_gen(const char *curve)
{
    EC_KEY *e = EC_KEY_new_by_curve_name(strcmp(curve, "P-384") == 0 ? NID_secp384r1
                                                                     : NID_X9_62_prime256v1);
    EVP_PKEY *k = EVP_PKEY_new();
    if (e == NULL || k == NULL || EC_KEY_generate_key(e) != 1 ||
        EVP_PKEY_assign_EC_KEY(k, e) != 1) {
        floor_die("EC key");
    }
    return k;
}
#endif

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

SSL_CTX *floor_server_ctx(const struct floor_chain *c)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (s == NULL || SSL_CTX_use_certificate(s, c->leaf) != 1 ||
        SSL_CTX_add1_chain_cert(s, c->ca) != 1 || SSL_CTX_use_PrivateKey(s, c->k) != 1) {
        floor_die("server context");
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_num_tickets(s, 0);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    return s;
}
