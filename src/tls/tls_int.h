/*
 * tls_int.h - internal to src/tls: the structures behind tls.h's handles and the implementation's
 * entry points (dbt_tlsi_*, one per tls.h call, gathered into a table by ops.c), shared by tls.c
 * (contexts, connections, I/O) and sni.c (choosing a context by the client's server name).
 *
 * The same sources build against OpenSSL 3 and BoringSSL (tls_ops.h); the few calls that differ
 * are the shims at the end, chosen by OPENSSL_IS_BORINGSSL.
 */
#ifndef DBT_TLS_INT_H
#define DBT_TLS_INT_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

struct prefix_bio;

struct dbt_tls_conn {
    SSL *ssl;
    char *failed_subject;  /* subject of a peer certificate that failed verification */
    dbt_tls_sni_fn sni_fn; /* NULL: the server name does not choose the context */
    void *sni_arg;
    const struct dbt_tls_ctx *origin; /* the context the SSL was made with */
    char *sni_refusal; /* why the server-name callback failed the handshake (for the log) */
    int plain_alert;   /* BoringSSL: 1 + an alert the peer sent unencrypted in the handshake */
    struct prefix_bio *ahead; /* the read filter's state, if the SSL reads through one */
};

#define DBT_TLS_DEFAULT_CIPHERS "HIGH:!aNULL:!3DES"

/* "TLSv1.2" -> TLS1_2_VERSION; NULL or "" -> dflt. 0 when the name is unknown. */
int dbt_tls_parse_version(const char *v, int dflt, int *out);

/* Makes the server connection's SSL use the context its ClientHello's server name chooses
   (sni.c); installed on every server context as the library's early ClientHello callback. */
void dbt_tls_install_sni(SSL_CTX *ctx);

/* The implementation of each tls.h call (tls.c, sni.c), same arguments and meaning. */
dbt_res dbt_tlsi_server_ctx_new(const char *chain_pem, const char *key_pem,
                                const char *client_ca_pem, const char *crl_pem,
                                const struct dbt_tls_policy *pol, bool alpn_postgresql,
                                struct dbt_tls_ctx **out);
dbt_res dbt_tlsi_client_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
                                struct dbt_tls_ctx **out);
struct dbt_tls_ctx *dbt_tlsi_ctx_ref(struct dbt_tls_ctx *c);
const char *dbt_tlsi_ctx_cert_sha1(const struct dbt_tls_ctx *c);
void dbt_tlsi_ctx_unref(struct dbt_tls_ctx *c);
dbt_res dbt_tlsi_conn_new_server(struct dbt_tls_ctx *ctx, int fd, struct dbt_tls_conn **out);
dbt_res dbt_tlsi_conn_new_server_prefixed(struct dbt_tls_ctx *ctx, int fd, const void *prefix,
                                          size_t prefix_len, struct dbt_tls_conn **out);
dbt_res dbt_tlsi_conn_new_client(struct dbt_tls_ctx *ctx, int fd, const char *host,
                                 struct dbt_tls_conn **out);
void dbt_tlsi_conn_free(struct dbt_tls_conn *c);
dbt_res dbt_tlsi_conn_set_sni(struct dbt_tls_conn *c, dbt_tls_sni_fn fn, void *arg);
enum dbt_tls_io dbt_tlsi_handshake(struct dbt_tls_conn *c);
enum dbt_tls_io dbt_tlsi_read(struct dbt_tls_conn *c, void *p, size_t n, size_t *got);
enum dbt_tls_io dbt_tlsi_write(struct dbt_tls_conn *c, const void *p, size_t n, size_t *done);
size_t dbt_tlsi_pending(struct dbt_tls_conn *c);
void dbt_tlsi_shutdown(struct dbt_tls_conn *c);
void dbt_tlsi_get_info(struct dbt_tls_conn *c, struct dbt_tls_info *out);
void dbt_tlsi_peer_subject(struct dbt_tls_conn *c, char *out, size_t outlen);
bool dbt_tlsi_peer_dn(struct dbt_tls_conn *c, char *out, size_t outlen);
bool dbt_tlsi_same_server_cert(struct dbt_tls_conn *served, struct dbt_tls_conn *peer);
const char *dbt_tlsi_version(void);

/* strdup through this file's own malloc. In the BoringSSL module, loaded with RTLD_DEEPBIND,
   libc's strdup would allocate with the process's malloc (a sanitizer's) while the module's
   free is libc's own. */
static inline char *dbt_tls_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d != NULL ? memcpy(d, s, n) : NULL;
}

/* ---- where BoringSSL differs from OpenSSL 3 ---- */
#ifdef OPENSSL_IS_BORINGSSL
/* BoringSSL reports an unexpected EOF as SSL_ERROR_SYSCALL with an empty queue already. */
#define SSL_OP_IGNORE_UNEXPECTED_EOF 0
/* BoringSSL's TLS 1.3 suites are fixed (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, the first
   first when AES is in hardware); it has no way to set them. */
#define DBT_TLS_DEFAULT_SUITES ""
#define SSL_CTX_set1_groups_list SSL_CTX_set1_curves_list
/* SSL_read/SSL_write's own result (> 0 done), which SSL_get_error needs: BoringSSL reads 0 as
   the peer's EOF */
static inline int dbt_tls_read_ex(SSL *s, void *p, size_t n, size_t *got)
{
    int rc = SSL_read(s, p, n > 0x7fffffff ? 0x7fffffff : (int)n);
    *got = rc > 0 ? (size_t)rc : 0;
    return rc;
}
static inline int dbt_tls_write_ex(SSL *s, const void *p, size_t n, size_t *done)
{
    int rc = SSL_write(s, p, n > 0x7fffffff ? 0x7fffffff : (int)n);
    *done = rc > 0 ? (size_t)rc : 0;
    return rc;
}
#else
#define DBT_TLS_DEFAULT_SUITES OSSL_default_ciphersuites()
#define dbt_tls_read_ex SSL_read_ex
#define dbt_tls_write_ex SSL_write_ex
#endif

#endif
