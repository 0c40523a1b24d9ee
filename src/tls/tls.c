/*
 * tls.c - the OpenSSL boundary of the front (tls.h), built against OpenSSL 3 and against BoringSSL
 * (tls_ops.h). Keeps to the API subset both (and AWS-LC) offer; tls_int.h shims the rest.
 */
#include "tls/tls.h"
#include "tls/tls_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TLS_MAX_RECORD 16384

static void name_str(const X509_NAME *nm, char *out, size_t outlen);

/*
 * Verification keeps OpenSSL's verdict; it only remembers the subject of a certificate that
 * failed, so the log can name it (OpenSSL drops the peer certificate of a failed handshake).
 */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
        struct dbt_tls_conn *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
        X509 *leaf = X509_STORE_CTX_get0_cert(x);
        if (c != NULL && leaf != NULL && c->failed_subject == NULL) {
            char subject[256];
            name_str(X509_get_subject_name(leaf), subject, sizeof(subject));
            c->failed_subject = dbt_tls_strdup(subject);
        }
    }
    return ok;
}

/* The OpenSSL error queue as one line (emptied). */
static void err_queue_str(char *out, size_t outlen)
{
    out[0] = '\0';
    size_t used = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        const char *reason = ERR_reason_error_string(e);
        size_t at = used;
        int n = snprintf(out + used, outlen - used, "%s%s", used ? "; " : "",
                         reason != NULL ? reason : one);
        if (n < 0 || (size_t)n >= outlen - used) {
            break;
        }
        used += (size_t)n;
#ifdef OPENSSL_IS_BORINGSSL
        /* BoringSSL names reasons as constants ("TLSV1_ALERT_UNKNOWN_CA"): written as OpenSSL
           words ("tlsv1 alert unknown ca"), the log and the failure counters read the same */
        for (size_t i = at; reason != NULL && i < used; i++) {
            out[i] = out[i] == '_' ? ' ' : (char)tolower((unsigned char)out[i]);
        }
#else
        (void)at;
#endif
    }
    if (used == 0) {
        snprintf(out, outlen, "unknown TLS error");
    }
}

static dbt_res ssl_fail(const char *what)
{
    char why[512];
    err_queue_str(why, sizeof(why));
    return dbt_fail(DBT_E_TLS, "%s: %s", what, why);
}

int dbt_tls_parse_version(const char *v, int dflt, int *out)
{
    if (v == NULL || v[0] == '\0') {
        *out = dflt;
        return 1;
    }
    static const struct {
        const char *name;
        int ver;
    } tab[] = {{"TLSv1", TLS1_VERSION},
               {"TLSv1.0", TLS1_VERSION},
               {"TLSv1.1", TLS1_1_VERSION},
               {"TLSv1.2", TLS1_2_VERSION},
               {"TLSv1.3", TLS1_3_VERSION}};
    for (size_t i = 0; i < DBT_ARRAY_LEN(tab); i++) {
        if (strcmp(v, tab[i].name) == 0) {
            *out = tab[i].ver;
            return 1;
        }
    }
    return 0;
}

static const unsigned char alpn_pg[] = "\x0apostgresql";

/*
 * PostgreSQL 17 (be-secure-openssl.c, alpn_cb): a client that offers ALPN must offer
 * "postgresql", otherwise the handshake fails with no_application_protocol. A client that offers
 * none is accepted here; direct TLS additionally requires it (checked by the protocol).
 */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    if (SSL_select_next_proto(&sel, &sellen, alpn_pg, sizeof(alpn_pg) - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        *outlen = sellen;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static dbt_res load_chain(SSL_CTX *ctx, const char *pem)
{
    dbt_res res = DBT_OK;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = NULL;
    DBT_ENSURE(bio != NULL, NOMEM, "certificate chain: out of memory");
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL) {
        DBT_TRY(ssl_fail("server certificate: cannot parse PEM"));
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        DBT_TRY(ssl_fail("server certificate: not usable"));
    }
    X509_free(x);
    x = NULL;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            DBT_TRY(ssl_fail("server certificate chain: intermediate not usable"));
        }
        x = NULL; /* owned by ctx */
    }
    ERR_clear_error(); /* end of PEM data */
out:
    X509_free(x);
    BIO_free(bio);
    return res;
}

#ifndef OPENSSL_IS_BORINGSSL
/* The key type a PKCS#8 PrivateKeyInfo names, or EVP_PKEY_NONE. */
static int p8_type(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len);
    const ASN1_OBJECT *alg = NULL;
    int type = EVP_PKEY_NONE;
    if (p8 != NULL && PKCS8_pkey_get0(&alg, NULL, NULL, NULL, p8) == 1) {
        switch (OBJ_obj2nid(alg)) {
        case NID_X9_62_id_ecPublicKey:
            type = EVP_PKEY_EC;
            break;
        case NID_rsaEncryption:
            type = EVP_PKEY_RSA;
            break;
        case NID_ED25519:
            type = EVP_PKEY_ED25519;
            break;
        default:
            break;
        }
    }
    PKCS8_PRIV_KEY_INFO_free(p8); /* clears the key octets */
    return type;
}

/*
 * A private key from PEM. PKCS#8 ("BEGIN PRIVATE KEY", what dbtls stores) is decoded with its
 * key type named: OpenSSL 3.0's generic decoder tries every format and type, ≈ 0.36 ms a key
 * against 0.1 ms, a third of building a fleet's TLS contexts. Other forms (a backend client key
 * file in the traditional format) take the generic path.
 */
static EVP_PKEY *read_key(const char *pem)
{
    EVP_PKEY *k = NULL;
    unsigned char *der = NULL;
    long len = 0;
    char *name = NULL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (bio != NULL &&
        PEM_bytes_read_bio_secmem(&der, &len, &name, PEM_STRING_PKCS8INF, bio, NULL, NULL) == 1) {
        int type = p8_type(der, len);
        const unsigned char *p = der;
        k = type != EVP_PKEY_NONE ? d2i_PrivateKey(type, NULL, &p, len) : NULL;
    }
    OPENSSL_secure_clear_free(der, der != NULL ? (size_t)len : 0);
    OPENSSL_free(name);
    BIO_free(bio);
    if (k == NULL) {
        ERR_clear_error();
        bio = BIO_new_mem_buf(pem, -1);
        k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
    }
    return k;
}
#else
/* BoringSSL decodes the PEM's named form directly (no generic decoder to avoid). */
static EVP_PKEY *read_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return k;
}
#endif

static dbt_res load_key(SSL_CTX *ctx, const char *pem)
{
    dbt_res res = DBT_OK;
    EVP_PKEY *k = read_key(pem);
    if (k == NULL) {
        DBT_TRY(ssl_fail("server private key: cannot parse PEM"));
    }
    if (SSL_CTX_use_PrivateKey(ctx, k) != 1) {
        DBT_TRY(ssl_fail("server private key is not usable or does not match the certificate"));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        DBT_TRY(ssl_fail("server private key does not match the certificate"));
    }
out:
    EVP_PKEY_free(k);
    return res;
}

static dbt_res load_trust(SSL_CTX *ctx, const char *ca_pem, const char *crl_pem)
{
    dbt_res res = DBT_OK;
    BIO *bio = NULL;
    X509 *x = NULL;
    X509_CRL *crl = NULL;
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    DBT_ENSURE(names != NULL, NOMEM, "client CA: out of memory");
    bio = BIO_new_mem_buf(ca_pem, -1);
    DBT_ENSURE(bio != NULL, NOMEM, "client CA: out of memory");
    int n = 0;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) != 1) {
            DBT_TRY(ssl_fail("client CA: cannot add to the trust store"));
        }
        X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));
        if (nm == NULL || !sk_X509_NAME_push(names, nm)) {
            X509_NAME_free(nm);
            DBT_BAIL(NOMEM, "client CA: out of memory");
        }
        X509_free(x);
        x = NULL;
        n++;
    }
    ERR_clear_error();
    DBT_ENSURE(n > 0, TLS, "client CA: no certificate in PEM");
    SSL_CTX_set_client_CA_list(ctx, names);
    names = NULL;
    if (crl_pem != NULL && crl_pem[0] != '\0') {
        BIO_free(bio);
        bio = BIO_new_mem_buf(crl_pem, -1);
        DBT_ENSURE(bio != NULL, NOMEM, "CRL: out of memory");
        int nc = 0;
        while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
            if (X509_STORE_add_crl(store, crl) != 1) {
                DBT_TRY(ssl_fail("CRL: cannot add to the trust store"));
            }
            X509_CRL_free(crl);
            crl = NULL;
            nc++;
        }
        ERR_clear_error();
        DBT_ENSURE(nc > 0, TLS, "CRL: no CRL in PEM");
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    /* Request a certificate; do not require one: the access rules decide (like PostgreSQL). */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_cb);
out:
    X509_free(x);
    X509_CRL_free(crl);
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    BIO_free(bio);
    return res;
}

static dbt_res apply_policy(SSL_CTX *ctx, const struct dbt_tls_policy *pol)
{
    dbt_res res = DBT_OK;
    int minv, maxv;
    DBT_ENSURE(dbt_tls_parse_version(pol ? pol->min_version : NULL, TLS1_2_VERSION, &minv), INVALID,
               "TLS minimum version \"%s\" is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3",
               pol->min_version);
    DBT_ENSURE(dbt_tls_parse_version(pol ? pol->max_version : NULL, TLS1_3_VERSION, &maxv), INVALID,
               "TLS maximum version \"%s\" is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3",
               pol->max_version);
    DBT_ENSURE(minv <= maxv, INVALID, "TLS minimum version is above the maximum version");
#ifndef OPENSSL_IS_BORINGSSL
    if (minv < TLS1_2_VERSION) {
        /* OpenSSL 3's default security level refuses TLS 1.0/1.1 (SHA-1 signatures). */
        SSL_CTX_set_security_level(ctx, 0);
    }
#endif
    if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, maxv) != 1) {
        DBT_TRY(ssl_fail("TLS protocol versions"));
    }
    const char *ciphers = pol && pol->ciphers ? pol->ciphers : DBT_TLS_DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        char why[256];
        err_queue_str(why, sizeof(why));
        DBT_BAIL(INVALID, "TLS cipher list \"%s\" is invalid: %s", ciphers, why);
    }
#ifdef OPENSSL_IS_BORINGSSL
    DBT_ENSURE(!(pol && pol->ciphersuites && pol->ciphersuites[0] != '\0'), INVALID,
               "TLS 1.3 cipher suites \"%s\" cannot be chosen with BoringSSL (its suites are "
               "fixed); run dbtlsd with --tls-library openssl",
               pol->ciphersuites);
#else
    if (pol && pol->ciphersuites && SSL_CTX_set_ciphersuites(ctx, pol->ciphersuites) != 1) {
        char why[256];
        err_queue_str(why, sizeof(why));
        DBT_BAIL(INVALID, "TLS 1.3 cipher suites \"%s\" are invalid: %s", pol->ciphersuites, why);
    }
#endif
    if (pol && pol->groups && SSL_CTX_set1_groups_list(ctx, pol->groups) != 1) {
        char why[256];
        err_queue_str(why, sizeof(why));
        DBT_BAIL(INVALID, "TLS groups \"%s\" are invalid: %s", pol->groups, why);
    }
    if (!(pol && pol->session_tickets)) {
        /* as PostgreSQL: no TLS 1.2 tickets, and no TLS 1.3 NewSessionTicket messages either
         * (OpenSSL sends two after every handshake otherwise: CPU and bytes for nothing, since
         * the session cache is off) */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
out:
    return res;
}

static SSL_CTX *ctx_base(const SSL_METHOD *m)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (ctx == NULL) {
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* one read(2) per record (or several) instead of a 5-byte header read then the body: half
     * the system calls per received message; callers drain with dbt_tlsi_pending, which counts
     * the bytes read ahead too */
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
}

dbt_res dbt_tlsi_server_ctx_new(const char *chain_pem, const char *key_pem,
                                const char *client_ca_pem, const char *crl_pem,
                                const struct dbt_tls_policy *pol, bool alpn_postgresql,
                                struct dbt_tls_ctx **out)
{
    dbt_res res = DBT_OK;
    struct dbt_tls_ctx *c = NULL;
    SSL_CTX *ctx = NULL;
    DBT_ENSURE(chain_pem != NULL && chain_pem[0] != '\0', INVALID, "no server certificate");
    DBT_ENSURE(key_pem != NULL && key_pem[0] != '\0', INVALID, "no server private key");
    ctx = ctx_base(TLS_server_method());
    if (ctx == NULL) {
        DBT_TRY(ssl_fail("SSL_CTX_new"));
    }
    /* No session cache: as PostgreSQL, every connection does a full handshake. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static const unsigned char sid_ctx[] = "dbtlsd";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    /* The chain served is the one given (leaf, then its intermediates), never one OpenSSL builds
     * per handshake from the client-CA trust store when no intermediate is given (a per-instance
     * CA's leaf): that verification cost ~70k instructions a handshake and sent the issuer
     * whenever it was also a client CA. (BoringSSL's default.) */
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    DBT_TRY(apply_policy(ctx, pol));
    dbt_tls_install_sni(ctx);
    DBT_TRY(load_chain(ctx, chain_pem));
    DBT_TRY(load_key(ctx, key_pem));
    if (client_ca_pem != NULL && client_ca_pem[0] != '\0') {
        DBT_TRY(load_trust(ctx, client_ca_pem, crl_pem));
    }
    if (alpn_postgresql) {
        SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    }
    c = calloc(1, sizeof(*c));
    DBT_ENSURE(c != NULL, NOMEM, "TLS context: out of memory");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(SSL_CTX_get0_certificate(ctx), EVP_sha1(), md, &mdlen) == 1 &&
        mdlen * 2 < sizeof(c->cert_sha1)) {
        for (unsigned int i = 0; i < mdlen; i++) {
            snprintf(c->cert_sha1 + 2 * i, 3, "%02x", md[i]);
        }
    }
    c->ctx = ctx;
    atomic_init(&c->refs, 1);
    ctx = NULL;
    c->ciphers = dbt_tls_strdup(pol && pol->ciphers ? pol->ciphers : DBT_TLS_DEFAULT_CIPHERS);
    c->ciphersuites =
        dbt_tls_strdup(pol && pol->ciphersuites ? pol->ciphersuites : DBT_TLS_DEFAULT_SUITES);
    DBT_ENSURE(c->ciphers != NULL && c->ciphersuites != NULL, NOMEM, "TLS context: out of memory");
    *out = c;
    c = NULL;
out:
    dbt_tlsi_ctx_unref(c);
    SSL_CTX_free(ctx);
    return res;
}

/* An encrypted key file would make OpenSSL prompt on the terminal: refuse it instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static dbt_res load_client_identity(SSL_CTX *ctx, const char *cert_file, const char *key_file)
{
    dbt_res res = DBT_OK;
    EVP_PKEY *pkey = NULL;
    struct stat st;
    DBT_ENSURE(stat(key_file, &st) == 0, TLS, "backend TLS key file \"%s\": %s", key_file,
               strerror(errno));
    DBT_ENSURE(S_ISREG(st.st_mode), TLS, "backend TLS key file \"%s\" is not a regular file",
               key_file);
    mode_t allowed = st.st_uid == 0 ? S_IRGRP : 0;
    DBT_ENSURE((st.st_mode & (S_IRWXG | S_IRWXO) & ~allowed) == 0, TLS,
               "backend TLS key file \"%s\" has group or world access; permissions should be "
               "u=rw (0600) or less",
               key_file);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        char why[256];
        err_queue_str(why, sizeof(why));
        DBT_BAIL(TLS, "backend TLS certificate file \"%s\": %s", cert_file, why);
    }
    BIO *bio = BIO_new_file(key_file, "r");
    pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        char why[256];
        err_queue_str(why, sizeof(why));
        DBT_BAIL(TLS, "backend TLS key file \"%s\": %s (a PEM private key, not encrypted)",
                 key_file, why);
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        DBT_BAIL(TLS, "backend TLS key file \"%s\" does not match the certificate in \"%s\"",
                 key_file, cert_file);
    }
out:
    EVP_PKEY_free(pkey);
    return res;
}

dbt_res dbt_tlsi_client_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
                                struct dbt_tls_ctx **out)
{
    dbt_res res = DBT_OK;
    struct dbt_tls_ctx *c = NULL;
    SSL_CTX *ctx = ctx_base(TLS_client_method());
    if (ctx == NULL) {
        DBT_TRY(ssl_fail("SSL_CTX_new"));
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        char why[256];
        err_queue_str(why, sizeof(why));
        DBT_BAIL(TLS, "backend CA file \"%s\": %s", ca_file, why);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cert_file != NULL || key_file != NULL) {
        DBT_ENSURE(cert_file != NULL && key_file != NULL, INVALID,
                   "a backend TLS client certificate needs both a certificate and a key file");
        DBT_TRY(load_client_identity(ctx, cert_file, key_file));
    }
    c = calloc(1, sizeof(*c));
    DBT_ENSURE(c != NULL, NOMEM, "TLS context: out of memory");
    c->ctx = ctx;
    atomic_init(&c->refs, 1);
    ctx = NULL;
    *out = c;
out:
    SSL_CTX_free(ctx);
    return res;
}

const char *dbt_tlsi_ctx_cert_sha1(const struct dbt_tls_ctx *c)
{
    return c->cert_sha1;
}

struct dbt_tls_ctx *dbt_tlsi_ctx_ref(struct dbt_tls_ctx *c)
{
    if (c != NULL) {
        atomic_fetch_add(&c->refs, 1);
    }
    return c;
}

void dbt_tlsi_ctx_unref(struct dbt_tls_ctx *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
        SSL_CTX_free(c->ctx);
        free(c->ciphers);
        free(c->ciphersuites);
        free(c);
    }
}

static dbt_res conn_new(struct dbt_tls_ctx *ctx, int fd, struct dbt_tls_conn **out)
{
    struct dbt_tls_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return dbt_fail(DBT_E_NOMEM, "TLS connection: out of memory");
    }
    c->ssl = SSL_new(ctx->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        return ssl_fail("SSL_new");
    }
    SSL_set_app_data(c->ssl, c);
    c->origin = ctx;
    *out = c;
    return DBT_OK;
}

dbt_res dbt_tlsi_conn_new_server(struct dbt_tls_ctx *ctx, int fd, struct dbt_tls_conn **out)
{
#ifdef OPENSSL_IS_BORINGSSL
    return dbt_tlsi_conn_new_server_prefixed(ctx, fd, NULL, 0, out); /* watches alerts */
#else
    dbt_res r = conn_new(ctx, fd, out);
    if (dbt_ok(r)) {
        SSL_set_accept_state((*out)->ssl);
    }
    return r;
#endif
}

/*
 * A read filter BIO that returns a saved prefix before reading from the next BIO (the socket).
 * Used for direct TLS, where the ClientHello's first bytes were read before TLS started. With
 * BoringSSL it is on every server connection, and reads ahead: BoringSSL asks for a record's
 * 5-byte header, then its body (two read(2) calls a record, where OpenSSL with read-ahead makes
 * one), so this reads what the socket has, up to a whole record, and serves both from it; the
 * buffer is freed when drained (an idle connection holds none). It also sees unencrypted alerts.
 */
struct prefix_bio {
    uint8_t *p; /* the prefix, or what was read ahead (BoringSSL) */
    size_t n, off;
    struct dbt_tls_conn *conn;    /* BoringSSL: where an unencrypted alert is noted */
    struct dbt_tls_rec_scan scan; /* BoringSSL, during the handshake: the client's records */
};

#ifdef OPENSSL_IS_BORINGSSL
/* BoringSSL does not read an alert the client sent unencrypted (records.c): it is kept for the
   handshake's failure message, as OpenSSL words it. */
static void watch_alert(struct prefix_bio *pb, const unsigned char *p, int n)
{
    struct dbt_tls_conn *c = pb->conn;
    if (n > 0 && c->plain_alert == 0 && !SSL_is_init_finished(c->ssl)) {
        c->plain_alert = dbt_tls_alert_scan(&pb->scan, p, (size_t)n);
    }
}
#endif

/* Serves up to n bytes of the saved prefix (or read-ahead), freeing it once drained. */
static int prefix_serve(struct prefix_bio *pb, char *out, int n)
{
    size_t k = pb->n - pb->off;
    if (k > (size_t)n) {
        k = (size_t)n;
    }
    memcpy(out, pb->p + pb->off, k);
    pb->off += k;
    if (pb->off == pb->n) {
        free(pb->p);
        pb->p = NULL;
        pb->n = pb->off = 0;
    }
#ifdef OPENSSL_IS_BORINGSSL
    if (pb->conn != NULL) {
        watch_alert(pb, (const unsigned char *)out, (int)k);
    }
#endif
    return (int)k;
}

/* a TLS record: header, 16 KB of plaintext and the most a cipher may add */
#define READ_AHEAD (5 + 16384 + 2048)

static int prefix_read(BIO *b, char *out, int n)
{
    struct prefix_bio *pb = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (pb != NULL && pb->off < pb->n && n > 0) {
        return prefix_serve(pb, out, n);
    }
    BIO *next = BIO_next(b);
    if (next == NULL) {
        return 0;
    }
#ifdef OPENSSL_IS_BORINGSSL
    if (pb != NULL && pb->conn != NULL && n > 0 && n < READ_AHEAD) {
        pb->p = malloc(READ_AHEAD);
        if (pb->p == NULL) {
            return -1;
        }
        int rc = BIO_read(next, pb->p, READ_AHEAD);
        BIO_copy_next_retry(b);
        if (rc <= 0) {
            free(pb->p);
            pb->p = NULL;
            return rc;
        }
        pb->n = (size_t)rc;
        pb->off = 0;
        return prefix_serve(pb, out, n);
    }
#endif
    int rc = BIO_read(next, out, n);
    BIO_copy_next_retry(b);
#ifdef OPENSSL_IS_BORINGSSL
    if (pb != NULL && pb->conn != NULL) {
        watch_alert(pb, (const unsigned char *)out, rc);
    }
#endif
    return rc;
}

static int prefix_write(BIO *b, const char *in, int n)
{
    BIO *next = BIO_next(b);
    if (next == NULL) {
        return 0;
    }
    BIO_clear_retry_flags(b);
    int rc = BIO_write(next, in, n);
    BIO_copy_next_retry(b);
    return rc;
}

static long prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct prefix_bio *pb = BIO_get_data(b);
    BIO *next = BIO_next(b);
    if (cmd == BIO_CTRL_PENDING) {
        long rest = pb != NULL ? (long)(pb->n - pb->off) : 0;
        return rest + (next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0);
    }
    return next != NULL ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static int prefix_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int prefix_destroy(BIO *b)
{
    struct prefix_bio *pb = BIO_get_data(b);
    if (pb != NULL) {
        free(pb->p);
        free(pb);
        BIO_set_data(b, NULL);
    }
    return 1;
}

static BIO_METHOD *prefix_method;
static pthread_once_t prefix_once = PTHREAD_ONCE_INIT;

static void prefix_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "dbtls prefix");
    if (m == NULL) {
        return;
    }
    BIO_meth_set_read(m, prefix_read);
    BIO_meth_set_write(m, prefix_write);
    BIO_meth_set_ctrl(m, prefix_ctrl);
    BIO_meth_set_create(m, prefix_create);
    BIO_meth_set_destroy(m, prefix_destroy);
    prefix_method = m;
}

dbt_res dbt_tlsi_conn_new_server_prefixed(struct dbt_tls_ctx *ctx, int fd, const void *prefix,
                                          size_t prefix_len, struct dbt_tls_conn **out)
{
    dbt_res res = DBT_OK;
    struct dbt_tls_conn *c = NULL;
    BIO *filter = NULL, *rsock = NULL, *wsock = NULL;
    struct prefix_bio *pb = NULL;
    pthread_once(&prefix_once, prefix_method_init);
    DBT_ENSURE(prefix_method != NULL, NOMEM, "TLS prefix BIO: out of memory");
    DBT_TRY(conn_new(ctx, fd, &c));
    pb = calloc(1, sizeof(*pb));
    DBT_ENSURE(pb != NULL, NOMEM, "TLS prefix: out of memory");
    if (prefix_len > 0) {
        pb->p = malloc(prefix_len);
        DBT_ENSURE(pb->p != NULL, NOMEM, "TLS prefix: out of memory");
        memcpy(pb->p, prefix, prefix_len);
        pb->n = prefix_len;
    }
    filter = BIO_new(prefix_method);
    rsock = BIO_new_socket(fd, BIO_NOCLOSE);
    wsock = BIO_new_socket(fd, BIO_NOCLOSE);
    DBT_ENSURE(filter != NULL && rsock != NULL && wsock != NULL, NOMEM, "TLS BIO: out of memory");
    pb->conn = c;
    c->ahead = pb;
    BIO_set_data(filter, pb);
    pb = NULL;
    BIO_push(filter, rsock);
    rsock = NULL;
    SSL_set_bio(c->ssl, filter, wsock); /* the SSL owns both now */
    filter = NULL;
    wsock = NULL;
    SSL_set_accept_state(c->ssl);
    *out = c;
    c = NULL;
out:
    if (pb != NULL) {
        free(pb->p);
        free(pb);
    }
    BIO_free_all(filter);
    BIO_free(rsock);
    BIO_free(wsock);
    dbt_tlsi_conn_free(c);
    return res;
}

dbt_res dbt_tlsi_conn_new_client(struct dbt_tls_ctx *ctx, int fd, const char *host,
                                 struct dbt_tls_conn **out)
{
    dbt_res r = conn_new(ctx, fd, out);
    if (!dbt_ok(r)) {
        return r;
    }
    SSL *ssl = (*out)->ssl;
    SSL_set_connect_state(ssl);
    if (host != NULL && host[0] != '\0') {
        /* verify-full: the name must match the certificate (DNS SAN, or IP SAN for an address:
           set as an address, which BoringSSL's SSL_set1_host would compare as a DNS name) */
        unsigned char tmp[16];
        bool ip = inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                : SSL_set1_host(ssl, host)) != 1) {
            dbt_tlsi_conn_free(*out);
            *out = NULL;
            return ssl_fail("backend TLS host name");
        }
        if (!ip) {
            SSL_set_tlsext_host_name(ssl, host);
        }
    }
    return DBT_OK;
}

void dbt_tlsi_conn_free(struct dbt_tls_conn *c)
{
    if (c != NULL) {
        SSL_free(c->ssl);
        free(c->failed_subject);
        free(c->sni_refusal);
        free(c);
    }
}

static enum dbt_tls_io io_result(struct dbt_tls_conn *c, int rc, const char *what)
{
    int e = SSL_get_error(c->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return DBT_TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return DBT_TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return DBT_TLS_IO_EOF;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            ERR_clear_error();
            return DBT_TLS_IO_EOF;
        }
        break;
    default:
        break;
    }
    char why[512];
    err_queue_str(why, sizeof(why));
    long vr = SSL_get_verify_result(c->ssl);
#ifdef X509_V_ERR_INVALID_CALL
    if (vr == X509_V_ERR_INVALID_CALL) {
        vr = X509_V_OK; /* BoringSSL's answer before any certificate was verified */
    }
#endif
    if (vr != X509_V_OK) {
        (void)dbt_fail(DBT_E_TLS, "%s: %s (certificate verify: %s)", what, why,
                       X509_verify_cert_error_string(vr));
    } else {
        (void)dbt_fail(DBT_E_TLS, "%s: %s", what, why);
    }
    return DBT_TLS_IO_ERR;
}

enum dbt_tls_io dbt_tlsi_handshake(struct dbt_tls_conn *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        return DBT_TLS_IO_OK;
    }
    enum dbt_tls_io r = io_result(c, rc, "TLS handshake failed");
#ifdef OPENSSL_IS_BORINGSSL
    if (r != DBT_TLS_IO_WANT_READ && r != DBT_TLS_IO_WANT_WRITE && c->plain_alert > 0) {
        /* the words OpenSSL logs for a received alert ("tlsv1 alert unknown ca") */
        char desc[64];
        snprintf(desc, sizeof(desc), "%s", SSL_alert_desc_string_long(c->plain_alert - 1));
        for (char *q = desc; *q != '\0'; q++) {
            *q = (char)tolower((unsigned char)*q);
        }
        (void)dbt_fail(DBT_E_TLS, "TLS handshake failed: tlsv1 alert %s (sent unencrypted)", desc);
        return DBT_TLS_IO_ERR;
    }
#endif
    if (r == DBT_TLS_IO_ERR && c->sni_refusal != NULL) {
        (void)dbt_fail(DBT_E_TLS, "TLS handshake failed: %s", c->sni_refusal);
    } else if (r == DBT_TLS_IO_EOF) {
        (void)dbt_fail(DBT_E_TLS, "TLS handshake failed: connection closed by peer");
        return DBT_TLS_IO_ERR;
    }
    return r;
}

enum dbt_tls_io dbt_tlsi_read(struct dbt_tls_conn *c, void *p, size_t n, size_t *got)
{
    *got = 0;
    ERR_clear_error();
    int rc = dbt_tls_read_ex(c->ssl, p, n, got);
    if (rc > 0) {
        return DBT_TLS_IO_OK;
    }
    *got = 0;
    return io_result(c, rc, "TLS read failed");
}

enum dbt_tls_io dbt_tlsi_write(struct dbt_tls_conn *c, const void *p, size_t n, size_t *done)
{
    *done = 0;
    if (n > TLS_MAX_RECORD) {
        n = TLS_MAX_RECORD;
    }
    ERR_clear_error();
    int rc = dbt_tls_write_ex(c->ssl, p, n, done);
    if (rc > 0) {
        return DBT_TLS_IO_OK;
    }
    *done = 0;
    return io_result(c, rc, "TLS write failed");
}

size_t dbt_tlsi_pending(struct dbt_tls_conn *c)
{
    int n = SSL_pending(c->ssl);
    if (n > 0) {
        return (size_t)n;
    }
    if (c->ahead != NULL && c->ahead->off < c->ahead->n) {
        return 1; /* read ahead by the filter BIO (BoringSSL), not decrypted yet */
    }
    /* read ahead: whole records may wait undecrypted in OpenSSL's buffer, out of epoll's sight */
    return SSL_has_pending(c->ssl) ? 1 : 0;
}

void dbt_tlsi_shutdown(struct dbt_tls_conn *c)
{
    ERR_clear_error();
    if (SSL_is_init_finished(c->ssl)) {
        (void)SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
}

static void name_str(const X509_NAME *nm, char *out, size_t outlen)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        return;
    }
    if (X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        int n = BIO_read(b, out, (int)outlen - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

/* The DN as pg_stat_ssl shows it (client_dn, issuer_dn): the entries in certificate order, each
 * "/" short name "=" value, values escaped as RFC 2253 asks but UTF-8 kept ("/O=dbtls/CN=alice").
 */
static void name_slash(const X509_NAME *nm, char *out, size_t outlen)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        return;
    }
    unsigned long flags =
        (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | ASN1_STRFLGS_UTF8_CONVERT;
    bool ok = true;
    for (int i = 0; ok && i < X509_NAME_entry_count(nm); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(nm, i);
        const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
        int nid = OBJ_obj2nid(obj);
        const char *field = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
        char oid[80];
        if (field == NULL) {
            /* an attribute OpenSSL has no name for: its dotted OID, not a made-up name */
            if (OBJ_obj2txt(oid, sizeof(oid), obj, 1) <= 0) {
                snprintf(oid, sizeof(oid), "?");
            }
            field = oid;
        }
        ok = BIO_printf(b, "/%s=", field) > 0 &&
             ASN1_STRING_print_ex(b, X509_NAME_ENTRY_get_data(e), flags) >= 0;
    }
    if (ok) {
        int n = BIO_read(b, out, (int)outlen - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

void dbt_tlsi_peer_subject(struct dbt_tls_conn *c, char *out, size_t outlen)
{
    out[0] = '\0';
    X509 *x = SSL_get_peer_certificate(c->ssl);
    if (x != NULL) {
        name_str(X509_get_subject_name(x), out, outlen);
        X509_free(x);
    } else {
        snprintf(out, outlen, "%s", c->failed_subject ? c->failed_subject : "");
    }
}

bool dbt_tlsi_peer_dn(struct dbt_tls_conn *c, char *out, size_t outlen)
{
    out[0] = '\0';
    X509 *x = SSL_get_peer_certificate(c->ssl);
    if (x == NULL) {
        return false;
    }
    bool ok = false;
    BIO *b = NULL;
    BUF_MEM *mem = NULL;
    if (SSL_get_verify_result(c->ssl) != X509_V_OK || (b = BIO_new(BIO_s_mem())) == NULL) {
        goto out;
    }
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0 ||
        BIO_get_mem_ptr(b, &mem) <= 0 || mem->length >= outlen ||
        memchr(mem->data, '\0', mem->length) != NULL) {
        goto out;
    }
    memcpy(out, mem->data, mem->length);
    out[mem->length] = '\0';
    ok = true;
out:
    BIO_free(b);
    X509_free(x);
    return ok;
}

bool dbt_tlsi_same_server_cert(struct dbt_tls_conn *served, struct dbt_tls_conn *peer)
{
    X509 *mine = SSL_get_certificate(served->ssl); /* not a new reference */
    X509 *theirs = SSL_get_peer_certificate(peer->ssl);
    bool same = mine != NULL && theirs != NULL && X509_cmp(mine, theirs) == 0;
    X509_free(theirs);
    return same;
}

const char *dbt_tlsi_version(void)
{
#ifdef OPENSSL_IS_BORINGSSL
#define DBT_STR2(x) #x
#define DBT_STR(x) DBT_STR2(x)
    return "BoringSSL (API version " DBT_STR(BORINGSSL_API_VERSION) ")";
#else
    return OpenSSL_version(OPENSSL_VERSION);
#endif
}

void dbt_tlsi_get_info(struct dbt_tls_conn *c, struct dbt_tls_info *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(c->ssl));
    const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
    if (ci != NULL) {
        snprintf(out->cipher, sizeof(out->cipher), "%s", SSL_CIPHER_get_name(ci));
        out->bits = SSL_CIPHER_get_bits(ci, NULL);
    }
    const unsigned char *alpn = NULL;
    unsigned int alpnlen = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpnlen);
    if (alpn != NULL && alpnlen < sizeof(out->alpn)) {
        memcpy(out->alpn, alpn, alpnlen);
        out->alpn[alpnlen] = '\0';
    }
    const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(out->server_name, sizeof(out->server_name), "%s", sni != NULL ? sni : "");
    X509 *x = SSL_get_peer_certificate(c->ssl);
    if (x == NULL) {
        return;
    }
    out->peer_cert = SSL_get_verify_result(c->ssl) == X509_V_OK;
    name_str(X509_get_subject_name(x), out->subject, sizeof(out->subject));
    name_str(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
    name_slash(X509_get_subject_name(x), out->client_dn, sizeof(out->client_dn));
    name_slash(X509_get_issuer_name(x), out->issuer_dn, sizeof(out->issuer_dn));
    int cnl = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out->cn,
                                        (int)sizeof(out->cn));
    if (cnl < 0 || (size_t)cnl != strlen(out->cn)) {
        out->cn[0] = '\0'; /* absent, or an embedded NUL: never treat as a user name */
    }
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn != NULL) {
        char *dec = BN_bn2dec(bn);
        if (dec != NULL) {
            snprintf(out->serial, sizeof(out->serial), "%s", dec);
            OPENSSL_free(dec);
        }
        BN_free(bn);
    }
    X509_free(x);
}
