/*
 * tls_int.h - internal to src/tls: the structures behind tls.h's handles, shared by tls.c
 * (contexts, connections, I/O) and sni.c (choosing a context by the client's server name).
 */
#ifndef DBT_TLS_INT_H
#define DBT_TLS_INT_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tls/tls.h"

struct dbt_tls_ctx {
    SSL_CTX *ctx;
    _Atomic int refs;
    char cert_sha1[41]; /* server contexts: SHA-1 of the certificate, hex */
    /* server contexts: the cipher lists as set, which SSL_new copies into each SSL (so a
       context chosen by server name must set them again, sni.c) */
    char *ciphers;
    char *ciphersuites;
};

struct dbt_tls_conn {
    SSL *ssl;
    char *failed_subject;  /* subject of a peer certificate that failed verification */
    dbt_tls_sni_fn sni_fn; /* NULL: the server name does not choose the context */
    void *sni_arg;
    const struct dbt_tls_ctx *origin; /* the context the SSL was made with */
    char *sni_refusal; /* why the server-name callback failed the handshake (for the log) */
};

#define DBT_TLS_DEFAULT_CIPHERS "HIGH:!aNULL:!3DES"

/* "TLSv1.2" -> TLS1_2_VERSION; NULL or "" -> dflt. 0 when the name is unknown. */
int dbt_tls_parse_version(const char *v, int dflt, int *out);

/* ClientHello callback of every server context (sni.c). */
int dbt_tls_client_hello_cb(SSL *ssl, int *alert, void *arg);

#endif
