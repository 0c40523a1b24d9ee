/*
 * tls.h - TLS for the front, the only place that includes <openssl/ssl.h>. A dbt_tls_ctx wraps one
 * SSL_CTX built once per configuration generation from PEM text (never from files on accept) and
 * shared by reference across worker threads; a dbt_tls_conn wraps one SSL on a non-blocking
 * socket. OpenSSL's 1/0/-1 results and error queue become dbt_res + messages or dbt_tls_io here.
 * The library is OpenSSL 3 unless dbt_tls_use_library chose BoringSSL at start (tls_ops.h).
 */
#ifndef DBT_TLS_TLS_H
#define DBT_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_tls_ctx;
struct dbt_tls_conn;

struct dbt_tls_policy {
    const char *min_version;  /* "TLSv1.2" (NULL = TLSv1.2) */
    const char *max_version;  /* "TLSv1.3" (NULL = TLSv1.3) */
    const char *ciphers;      /* TLS <= 1.2 list (NULL = "HIGH:!aNULL:!3DES") */
    const char *ciphersuites; /* TLS 1.3 (NULL = OpenSSL default) */
    const char *groups;       /* NULL = OpenSSL default */
    bool session_tickets;     /* off by default, as PostgreSQL */
};

/*
 * Chooses the TLS library of the front before any context is made: "openssl" (linked in, the
 * default) or "boringssl" (the module dbtls-tls-boringssl.so from the build tree or the install
 * directory, or a module path). Not thread safe: call it at start. STATE once contexts exist,
 * NOT_FOUND when the module cannot be loaded.
 */
dbt_res dbt_tls_use_library(const char *name) DBT_WUR;
/* "openssl" or "boringssl", and that library's own version text. */
const char *dbt_tls_library(void);
const char *dbt_tls_library_version(void);

/*
 * Builds a server SSL_CTX: certificate chain (leaf first, then intermediates) + private key (both
 * PEM text; the key must match the leaf), trust store for client certificates = client_ca_pem
 * with crl_pem (X509_V_FLAG_CRL_CHECK when a CRL is given), client certificates requested but
 * not required (the access rules decide), the policy, SSL_MODE_RELEASE_BUFFERS, no tickets unless
 * asked, and an ALPN callback that accepts only "postgresql" when alpn_postgresql (a client that
 * offers ALPN without it gets a no_application_protocol alert, as PostgreSQL 17). Errors name the
 * part that is wrong.
 */
dbt_res dbt_tls_server_ctx_new(const char *chain_pem, const char *key_pem,
                               const char *client_ca_pem, const char *crl_pem,
                               const struct dbt_tls_policy *pol, bool alpn_postgresql,
                               struct dbt_tls_ctx **out) DBT_WUR;

/*
 * A client SSL_CTX for backend legs: verify-full against the CA file (PEM); with cert_file and
 * key_file (PEM, both or neither) it shows that certificate (chain) to a backend that asks for
 * one. The key file must not be readable by group or others (as libpq's sslkey; group-readable
 * is allowed when root owns it, as PostgreSQL's server key) and must not be encrypted. Errors
 * name the file and what is wrong.
 */
dbt_res dbt_tls_client_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
                               struct dbt_tls_ctx **out) DBT_WUR;

/* Reference counting (thread safe). unref frees on the last reference. */
struct dbt_tls_ctx *dbt_tls_ctx_ref(struct dbt_tls_ctx *c);
/* SHA-1 of a server context's certificate, lower-case hex as `dbtls ssl server-certs list` shows
   it ("" for a client context): which server certificate a connection was served with. */
const char *dbt_tls_ctx_cert_sha1(const struct dbt_tls_ctx *c);
void dbt_tls_ctx_unref(struct dbt_tls_ctx *c);

enum dbt_tls_io {
    DBT_TLS_IO_OK,
    DBT_TLS_IO_WANT_READ,
    DBT_TLS_IO_WANT_WRITE,
    DBT_TLS_IO_EOF, /* close_notify or TCP EOF */
    DBT_TLS_IO_ERR, /* dbt_errmsg() says why */
};

/* A server-side connection on fd (not owned: the caller closes fd after dbt_tls_conn_free). */
dbt_res dbt_tls_conn_new_server(struct dbt_tls_ctx *ctx, int fd, struct dbt_tls_conn **out) DBT_WUR;
/*
 * A server-side connection whose first prefix_len bytes were already read from fd (direct TLS:
 * the ClientHello was read to recognise it). The prefix is copied and fed to OpenSSL first.
 */
dbt_res dbt_tls_conn_new_server_prefixed(struct dbt_tls_ctx *ctx, int fd, const void *prefix,
                                         size_t prefix_len, struct dbt_tls_conn **out) DBT_WUR;
/* A client-side connection verifying host (DNS name or IP) against the server certificate. */
dbt_res dbt_tls_conn_new_client(struct dbt_tls_ctx *ctx, int fd, const char *host,
                                struct dbt_tls_conn **out) DBT_WUR;
void dbt_tls_conn_free(struct dbt_tls_conn *c);

/*
 * Several instances on one listen address (chosen by the TLS server name, SNI): called when the
 * ClientHello arrives, on the thread driving the handshake, with the server name the client
 * sent; returns the server context to use instead of the one the connection was made with (its
 * certificate, client CA + CRL, TLS versions and cipher lists), or NULL to keep that one. The
 * contexts must have the same groups.
 */
typedef struct dbt_tls_ctx *(*dbt_tls_sni_fn)(void *arg, const char *server_name);
/* Before the handshake of a server connection: lets fn choose the context by server name. */
dbt_res dbt_tls_conn_set_sni(struct dbt_tls_conn *c, dbt_tls_sni_fn fn, void *arg) DBT_WUR;
/* The host_name of a server_name extension's body (RFC 6066) into out; false when malformed,
   absent or too long for out (OpenSSL then refuses a malformed one itself). */
bool dbt_tls_sni_parse(const unsigned char *p, size_t len, char *out, size_t outlen);

/* A peer's TLS records as they pass (records.c), zero-initialised before the first byte. */
struct dbt_tls_rec_scan {
    unsigned char hdr[7]; /* the current record's header (+ an alert's two bytes) */
    size_t hdr_have;      /* bytes of hdr filled */
    size_t body_left;     /* bytes of the current record's body still to pass */
    int alert;            /* 1 + the description of an unencrypted alert seen, else 0 */
};
/* Feeds the next n bytes of the stream, in any pieces; returns sc->alert (it stays once set). */
int dbt_tls_alert_scan(struct dbt_tls_rec_scan *sc, const unsigned char *p, size_t n);

/* Advances the handshake. ERR carries the reason (and the peer certificate subject if any). */
enum dbt_tls_io dbt_tls_handshake(struct dbt_tls_conn *c);
/* Reads up to n decrypted bytes; *got > 0 only with OK. */
enum dbt_tls_io dbt_tls_read(struct dbt_tls_conn *c, void *p, size_t n, size_t *got);
/* Writes up to n bytes (at most one 16 KB record per call); *done > 0 only with OK. */
enum dbt_tls_io dbt_tls_write(struct dbt_tls_conn *c, const void *p, size_t n, size_t *done);
/* Bytes buffered inside OpenSSL, decrypted or read ahead (> 0: read again, epoll cannot see
 * them; 1 when only undecrypted bytes wait). */
size_t dbt_tls_pending(struct dbt_tls_conn *c);
/* Sends close_notify (best effort, non-blocking). */
void dbt_tls_shutdown(struct dbt_tls_conn *c);

struct dbt_tls_info {
    char version[16];      /* "TLSv1.3" */
    char cipher[64];       /* "TLS_AES_256_GCM_SHA384" */
    int bits;              /* 256 */
    bool peer_cert;        /* the peer presented a certificate that verified */
    char subject[256];     /* RFC 2253 DN, most specific first ("CN=alice,O=dbtls"): logs */
    char issuer[256];      /* the same for the issuer */
    char client_dn[256];   /* the subject as pg_stat_ssl.client_dn shows it ("/O=dbtls/CN=alice") */
    char issuer_dn[256];   /* the issuer as pg_stat_ssl.issuer_dn shows it */
    char serial[80];       /* decimal, as pg_stat_ssl */
    char cn[256];          /* the subject CN ("" if none) */
    char alpn[32];         /* negotiated ALPN ("" if none) */
    char server_name[256]; /* the TLS server name (SNI) the client sent ("" if none) */
};
void dbt_tls_get_info(struct dbt_tls_conn *c, struct dbt_tls_info *out);

/* Subject DN of the peer certificate even if it failed verification ("" if none), for logs. */
void dbt_tls_peer_subject(struct dbt_tls_conn *c, char *out, size_t outlen);

/*
 * The verified peer certificate's subject exactly as PostgreSQL's `clientname=DN` matches it
 * (be-secure-openssl.c: X509_NAME_print_ex with XN_FLAG_RFC2253: most specific first, RFC 2253
 * escapes, bytes above 0x7f as \XX), e.g. "CN=alice,O=dbtls". False, with out "", when there is
 * no verified certificate, or the name has an embedded NUL or does not fit in outlen (never
 * match a truncated name).
 */
bool dbt_tls_peer_dn(struct dbt_tls_conn *c, char *out, size_t outlen);

/*
 * True when `served` (a server-side connection) showed its peer the very certificate that
 * `peer` (a client-side connection) received: same DER. Then SCRAM channel binding of type
 * tls-server-end-point, which hashes only that certificate, means the same on both legs.
 */
bool dbt_tls_same_server_cert(struct dbt_tls_conn *served, struct dbt_tls_conn *peer);

#endif
