/*
 * api.c - tls.h's calls, forwarded to the TLS implementation in use (tls_ops.h): OpenSSL 3,
 * linked in, unless dbt_tls_use_library loaded another one at start.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dbtls_config.h"
#include "tls/tls.h"
#include "tls/tls_ops.h"

static const struct dbt_tls_ops *ops = &dbt_tls_openssl_ops;
static atomic_bool used; /* a context was made: the library can no longer change */

/* The module's failure message as this thread's own. */
static dbt_res carry(dbt_res r)
{
    if (!dbt_ok(r) && ops->errmsg != NULL) {
        return dbt_fail(r.code, "%s", ops->errmsg());
    }
    return r;
}

static enum dbt_tls_io carry_io(enum dbt_tls_io io)
{
    if (io == DBT_TLS_IO_ERR && ops->errmsg != NULL) {
        (void)dbt_fail(DBT_E_TLS, "%s", ops->errmsg());
    }
    return io;
}

/* The module file for a library name: a path as given, else the build tree's (tests, bench)
   and then the installed one. */
static void module_path(const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/') != NULL) {
        snprintf(out, outlen, "%s", name);
        return;
    }
    static const char *const dirs[] = {DBTLS_TLS_MODULE_BUILD_DIR, DBTLS_TLS_MODULE_DIR};
    for (size_t i = 0; i < DBT_ARRAY_LEN(dirs); i++) {
        snprintf(out, outlen, "%s/dbtls-tls-%s.so", dirs[i], name);
        if (access(out, R_OK) == 0) {
            return;
        }
    }
}

dbt_res dbt_tls_use_library(const char *name)
{
    if (strcmp(name, ops->name) == 0) {
        return DBT_OK;
    }
    if (atomic_load(&used)) {
        return dbt_fail(DBT_E_STATE, "the TLS library cannot change once TLS contexts exist");
    }
    if (strcmp(name, "openssl") == 0) {
        ops = &dbt_tls_openssl_ops;
        return DBT_OK;
    }
    char path[4096];
    module_path(name, path, sizeof(path));
    /*
     * BoringSSL's libssl/libcrypto define the names OpenSSL 3's do, which the rest of the process
     * (pki, libpq) uses: RTLD_DEEPBIND makes the module and BoringSSL resolve them in their own
     * objects first, and RTLD_LOCAL keeps them out of everyone else's sight. Through dlmopen on
     * the base namespace, because the sanitizers' dlopen refuses RTLD_DEEPBIND (the module
     * would not use their malloc; it never hands memory across, so that is safe here). Not a
     * namespace of its own (LM_ID_NEWLM): a second libc there hands out pthread keys the first
     * one already gave to OpenSSL 3, and each library then reads the other's thread state.
     */
    void *h = dlmopen(LM_ID_BASE, path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (h == NULL) {
        const char *why = dlerror();
        return dbt_fail(DBT_E_NOT_FOUND,
                        "TLS library \"%s\" cannot be loaded: %s (dbtls-tls-boringssl.so is built "
                        "where Debian's android-libboringssl-dev is installed)",
                        name, why != NULL ? why : "unknown error");
    }
    const struct dbt_tls_ops *m = dlsym(h, "dbt_tls_module_ops");
    if (m == NULL || m->abi != DBT_TLS_OPS_ABI) {
        dlclose(h);
        return dbt_fail(DBT_E_INVALID, "TLS library module \"%s\" %s", path,
                        m == NULL ? "is not a dbtls TLS module"
                                  : "was built for another dbtls version");
    }
    ops = m; /* never unloaded: contexts and connections point into it */
    return DBT_OK;
}

const char *dbt_tls_library(void)
{
    return ops->name;
}

const char *dbt_tls_library_version(void)
{
    return ops->version();
}

dbt_res dbt_tls_server_ctx_new(const char *chain_pem, const char *key_pem,
                               const char *client_ca_pem, const char *crl_pem,
                               const struct dbt_tls_policy *pol, bool alpn_postgresql,
                               struct dbt_tls_ctx **out)
{
    atomic_store(&used, true);
    return carry(
        ops->server_ctx_new(chain_pem, key_pem, client_ca_pem, crl_pem, pol, alpn_postgresql, out));
}

dbt_res dbt_tls_client_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
                               struct dbt_tls_ctx **out)
{
    atomic_store(&used, true);
    return carry(ops->client_ctx_new(ca_file, cert_file, key_file, out));
}

struct dbt_tls_ctx *dbt_tls_ctx_ref(struct dbt_tls_ctx *c)
{
    return ops->ctx_ref(c);
}

const char *dbt_tls_ctx_cert_sha1(const struct dbt_tls_ctx *c)
{
    return ops->ctx_cert_sha1(c);
}

void dbt_tls_ctx_unref(struct dbt_tls_ctx *c)
{
    ops->ctx_unref(c);
}

dbt_res dbt_tls_conn_new_server(struct dbt_tls_ctx *ctx, int fd, struct dbt_tls_conn **out)
{
    return carry(ops->conn_new_server(ctx, fd, out));
}

dbt_res dbt_tls_conn_new_server_prefixed(struct dbt_tls_ctx *ctx, int fd, const void *prefix,
                                         size_t prefix_len, struct dbt_tls_conn **out)
{
    return carry(ops->conn_new_server_prefixed(ctx, fd, prefix, prefix_len, out));
}

dbt_res dbt_tls_conn_new_client(struct dbt_tls_ctx *ctx, int fd, const char *host,
                                struct dbt_tls_conn **out)
{
    return carry(ops->conn_new_client(ctx, fd, host, out));
}

void dbt_tls_conn_free(struct dbt_tls_conn *c)
{
    ops->conn_free(c);
}

dbt_res dbt_tls_conn_set_sni(struct dbt_tls_conn *c, dbt_tls_sni_fn fn, void *arg)
{
    return carry(ops->conn_set_sni(c, fn, arg));
}

enum dbt_tls_io dbt_tls_handshake(struct dbt_tls_conn *c)
{
    return carry_io(ops->handshake(c));
}

enum dbt_tls_io dbt_tls_read(struct dbt_tls_conn *c, void *p, size_t n, size_t *got)
{
    return carry_io(ops->read(c, p, n, got));
}

enum dbt_tls_io dbt_tls_write(struct dbt_tls_conn *c, const void *p, size_t n, size_t *done)
{
    return carry_io(ops->write(c, p, n, done));
}

size_t dbt_tls_pending(struct dbt_tls_conn *c)
{
    return ops->pending(c);
}

void dbt_tls_shutdown(struct dbt_tls_conn *c)
{
    ops->shutdown(c);
}

void dbt_tls_get_info(struct dbt_tls_conn *c, struct dbt_tls_info *out)
{
    ops->get_info(c, out);
}

bool dbt_tls_peer_dn(struct dbt_tls_conn *c, char *out, size_t outlen)
{
    return ops->peer_dn(c, out, outlen);
}

void dbt_tls_peer_subject(struct dbt_tls_conn *c, char *out, size_t outlen)
{
    ops->peer_subject(c, out, outlen);
}

bool dbt_tls_same_server_cert(struct dbt_tls_conn *served, struct dbt_tls_conn *peer)
{
    return ops->same_server_cert(served, peer);
}
