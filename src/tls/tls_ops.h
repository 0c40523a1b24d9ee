/*
 * tls_ops.h - internal to src/tls: one TLS library's implementation of tls.h as a table.
 *
 * tls.c and sni.c are written once against the OpenSSL API and built twice: into the static
 * library with OpenSSL 3 (dbt_tls_openssl_ops, the default), and, where Debian's
 * android-libboringssl-dev is installed, into a module linked with BoringSSL
 * (dbtls-tls-boringssl.so, dbt_tls_module_ops), which dbt_tls_use_library() loads with
 * RTLD_DEEPBIND | RTLD_LOCAL, so its OpenSSL-named symbols never meet OpenSSL 3's, which the rest
 * of the process (pki, libpq) uses. api.c forwards tls.h's calls to the table in use.
 *
 * Objects cross the table only as opaque pointers, PEM text and caller-owned buffers: memory is
 * freed by the side that allocated it. A module keeps its own copy of base/err's per-thread
 * message; errmsg (NULL when the message is the caller's own) reads it after a failure.
 */
#ifndef DBT_TLS_OPS_H
#define DBT_TLS_OPS_H

#include "tls/tls.h"

/* Bumped whenever the table or the structures in tls.h change shape. */
#define DBT_TLS_OPS_ABI 1

struct dbt_tls_ops {
    int abi;
    const char *name;             /* "openssl", "boringssl" */
    const char *(*version)(void); /* the library's own version text */
    const char *(*errmsg)(void);  /* NULL: failures are recorded in the caller's message */
    dbt_res (*server_ctx_new)(const char *chain_pem, const char *key_pem, const char *client_ca_pem,
                              const char *crl_pem, const struct dbt_tls_policy *pol,
                              bool alpn_postgresql, struct dbt_tls_ctx **out);
    dbt_res (*client_ctx_new)(const char *ca_file, const char *cert_file, const char *key_file,
                              struct dbt_tls_ctx **out);
    struct dbt_tls_ctx *(*ctx_ref)(struct dbt_tls_ctx *c);
    const char *(*ctx_cert_sha1)(const struct dbt_tls_ctx *c);
    void (*ctx_unref)(struct dbt_tls_ctx *c);
    dbt_res (*conn_new_server)(struct dbt_tls_ctx *ctx, int fd, struct dbt_tls_conn **out);
    dbt_res (*conn_new_server_prefixed)(struct dbt_tls_ctx *ctx, int fd, const void *prefix,
                                        size_t prefix_len, struct dbt_tls_conn **out);
    dbt_res (*conn_new_client)(struct dbt_tls_ctx *ctx, int fd, const char *host,
                               struct dbt_tls_conn **out);
    void (*conn_free)(struct dbt_tls_conn *c);
    dbt_res (*conn_set_sni)(struct dbt_tls_conn *c, dbt_tls_sni_fn fn, void *arg);
    enum dbt_tls_io (*handshake)(struct dbt_tls_conn *c);
    enum dbt_tls_io (*read)(struct dbt_tls_conn *c, void *p, size_t n, size_t *got);
    enum dbt_tls_io (*write)(struct dbt_tls_conn *c, const void *p, size_t n, size_t *done);
    size_t (*pending)(struct dbt_tls_conn *c);
    void (*shutdown)(struct dbt_tls_conn *c);
    void (*get_info)(struct dbt_tls_conn *c, struct dbt_tls_info *out);
    void (*peer_subject)(struct dbt_tls_conn *c, char *out, size_t outlen);
    bool (*peer_dn)(struct dbt_tls_conn *c, char *out, size_t outlen);
    bool (*same_server_cert)(struct dbt_tls_conn *served, struct dbt_tls_conn *peer);
};

/* The OpenSSL 3 table, linked in (ops.c built with OpenSSL). */
extern const struct dbt_tls_ops dbt_tls_openssl_ops;
/* What a module exports (ops.c built with BoringSSL): the symbol dbt_tls_use_library looks up. */
extern const struct dbt_tls_ops dbt_tls_module_ops;

#endif
