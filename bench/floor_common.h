/*
 * floor_common.h - what the two handshake-floor programs (tls_floor.c: OpenSSL; tls_floor_gnutls.c:
 * GnuTLS) share, so that both measure the same certificate chain the same way: thread CPU time,
 * fatal errors, and the chain of an instance served by dbtlsd (ECDSA P-256 leaf "localhost"
 * under a P-384 CA, SHA-256/SHA-384 signatures) made with OpenSSL.
 */
#ifndef DBT_BENCH_FLOOR_COMMON_H
#define DBT_BENCH_FLOOR_COMMON_H

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>

/* The program's name in error messages (set by main). */
extern const char *floor_prog;

/* CPU seconds of the calling thread. */
double floor_thread_cpu_s(void);
/* "<prog>: <what> failed" and OpenSSL's error queue on stderr, then exit(1). */
void floor_die(const char *what) __attribute__((noreturn));
/* SSL_get_error says the call only waits for I/O (read or write). */
bool floor_want_io(SSL *ssl, int rc);

struct floor_chain {
    EVP_PKEY *cak, *k; /* CA key (P-384), leaf key (P-256) */
    X509 *ca, *leaf;
};
void floor_chain_init(struct floor_chain *c);
void floor_chain_cleanup(struct floor_chain *c);
/* An OpenSSL server context for the chain with dbtlsd's settings (TLS 1.2+, no tickets, no
   session cache, server preference, SSL_MODE_RELEASE_BUFFERS). */
SSL_CTX *floor_server_ctx(const struct floor_chain *c);

#endif
