/*
 * test_tls.c - the OpenSSL boundary of the front: SSL_CTX building and its errors, handshakes on
 * non-blocking socket pairs against a plain OpenSSL client (versions, ALPN, client certificates
 * verified, revoked, foreign), the connection info shown by `dbtls connections`, direct TLS with
 * an already-read prefix, and the 16 KB record cap.
 */
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "engine_certs.h"
#include "tls/tls.h"

static struct tcert ca, server, client_ca, client, revoked, foreign_ca, foreign, expired, odd;
static char *crl_pem;

static void setup(void)
{
    tc_make(&ca, NULL, "test server CA", 0, 1, -1, 365);
    tc_make(&server, &ca, "localhost", 1, 2, -1, 365);
    tc_make(&client_ca, NULL, "test client CA", 0, 3, -1, 365);
    tc_make(&client, &client_ca, "alice", 2, 4242, -1, 365);
    tc_make(&revoked, &client_ca, "mallory", 2, 666, -1, 365);
    tc_make(&foreign_ca, NULL, "foreign CA", 0, 5, -1, 365);
    tc_make(&foreign, &foreign_ca, "alice", 2, 6, -1, 365);
    tc_make(&expired, &client_ca, "oldtimer", 2, 7, -30, -1);
    tc_make(&odd, &client_ca, "o'neil, \"db\"+x", 2, 8, -1, 365);
    long serials[] = {666};
    crl_pem = tc_crl(&client_ca, serials, 1);
}

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A plain OpenSSL client on fd: optional certificate, ALPN list and maximum version. */
static SSL *raw_client(int fd, const struct tcert *cert, const unsigned char *alpn,
                       unsigned alpn_len, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    if (max_version) {
        SSL_CTX_set_max_proto_version(ctx, max_version);
        SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    }
    if (cert != NULL) {
        SSL_CTX_use_certificate(ctx, cert->cert);
        SSL_CTX_use_PrivateKey(ctx, cert->key);
    }
    if (alpn != NULL) {
        SSL_CTX_set_alpn_protos(ctx, alpn, alpn_len);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Pumps both handshakes; returns the server's final result. */
static enum dbt_tls_io pump(struct dbt_tls_conn *srv, SSL *cli, bool *cli_ok)
{
    enum dbt_tls_io sr = DBT_TLS_IO_WANT_READ;
    *cli_ok = false;
    for (int i = 0; i < 200; i++) {
        if (!*cli_ok) {
            int rc = SSL_do_handshake(cli);
            if (rc == 1) {
                *cli_ok = true;
            } else {
                int e = SSL_get_error(cli, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    ERR_clear_error();
                    if (sr == DBT_TLS_IO_OK || sr == DBT_TLS_IO_ERR) {
                        break;
                    }
                }
            }
        }
        if (sr != DBT_TLS_IO_OK && sr != DBT_TLS_IO_ERR) {
            sr = dbt_tls_handshake(srv);
        }
        if ((sr == DBT_TLS_IO_OK && *cli_ok) || sr == DBT_TLS_IO_ERR) {
            break;
        }
    }
    /* TLS 1.3: the server verifies the client certificate after the client is "done" */
    return sr;
}

static struct dbt_tls_ctx *server_ctx(const struct dbt_tls_policy *pol)
{
    struct dbt_tls_ctx *c = NULL;
    CHECK_OK(dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, client_ca.cert_pem, crl_pem,
                                    pol, true, &c));
    return c;
}

/* Private key forms the server context takes: PKCS#8 EC and RSA (what dbtls stores, decoded
   with the key type the PKCS#8 names), the traditional "EC PRIVATE KEY" (the generic path), and
   a PKCS#8 block that is not a key (refused, not mistaken for one). */
static void test_key_forms(void)
{
    struct dbt_tls_ctx *c = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey_traditional(b, server.key, NULL, NULL, 0, NULL, NULL);
    char *trad = tc_bio_str(b);
    CHECK(strstr(trad, "BEGIN EC PRIVATE KEY") != NULL);
    CHECK_OK(dbt_tls_server_ctx_new(server.cert_pem, trad, NULL, NULL, NULL, false, &c));
    dbt_tls_ctx_unref(c);
    c = NULL;
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, rsa);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"rsa.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, rsa, EVP_sha256());
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *rsa_cert = tc_bio_str(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, rsa, NULL, NULL, 0, NULL, NULL);
    char *rsa_key = tc_bio_str(b);
    CHECK(strstr(rsa_key, "BEGIN PRIVATE KEY") != NULL);
    CHECK_OK(dbt_tls_server_ctx_new(rsa_cert, rsa_key, NULL, NULL, NULL, false, &c));
    dbt_tls_ctx_unref(c);
    c = NULL;
    CHECK_ERR(dbt_tls_server_ctx_new(rsa_cert, server.key_pem, NULL, NULL, NULL, false, &c),
              DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "does not match") != NULL);
    const char *not_a_key = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
    CHECK_ERR(dbt_tls_server_ctx_new(server.cert_pem, not_a_key, NULL, NULL, NULL, false, &c),
              DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "cannot parse") != NULL);
    CHECK(c == NULL);
    free(rsa_key);
    free(rsa_cert);
    X509_free(x);
    EVP_PKEY_free(rsa);
    free(trad);
}

static void test_ctx_errors(void)
{
    struct dbt_tls_ctx *c = NULL;
    CHECK_ERR(dbt_tls_server_ctx_new("garbage", server.key_pem, NULL, NULL, NULL, false, &c),
              DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "server certificate") != NULL);
    CHECK_ERR(dbt_tls_server_ctx_new(server.cert_pem, client.key_pem, NULL, NULL, NULL, false, &c),
              DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "does not match") != NULL);
    CHECK_ERR(dbt_tls_server_ctx_new(server.cert_pem, "", NULL, NULL, NULL, false, &c),
              DBT_E_INVALID);
    struct dbt_tls_policy bad_cipher = {.ciphers = "NO-SUCH-CIPHER"};
    CHECK_ERR(
        dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, NULL, NULL, &bad_cipher, false, &c),
        DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "NO-SUCH-CIPHER") != NULL);
    struct dbt_tls_policy bad_ver = {.min_version = "TLSv9"};
    CHECK_ERR(
        dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, NULL, NULL, &bad_ver, false, &c),
        DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "TLSv9") != NULL);
    struct dbt_tls_policy inverted = {.min_version = "TLSv1.3", .max_version = "TLSv1.2"};
    CHECK_ERR(
        dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, NULL, NULL, &inverted, false, &c),
        DBT_E_INVALID);
    CHECK_ERR(
        dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, "nope", NULL, NULL, false, &c),
        DBT_E_TLS);
    CHECK_ERR(dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, client_ca.cert_pem, "nope",
                                     NULL, false, &c),
              DBT_E_TLS);
    CHECK_ERR(dbt_tls_client_ctx_new("/nonexistent/ca.pem", NULL, NULL, &c), DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "/nonexistent/ca.pem") != NULL);
    /* a chain with an intermediate is accepted */
    char chain[8192];
    snprintf(chain, sizeof(chain), "%s%s", server.cert_pem, ca.cert_pem);
    CHECK_OK(dbt_tls_server_ctx_new(chain, server.key_pem, NULL, NULL, NULL, false, &c));
    dbt_tls_ctx_unref(c);
}

struct hs_result {
    enum dbt_tls_io server;
    bool client_ok;
    struct dbt_tls_info info;
    char subject[256];
    char errmsg[512];
};

/* A non-blocking socket pair, sv[0] under a server connection of ctx (returned). */
static struct dbt_tls_conn *server_on_pair(struct dbt_tls_ctx *ctx, int sv[2])
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    nonblock(sv[0]);
    nonblock(sv[1]);
    struct dbt_tls_conn *srv = NULL;
    CHECK_OK(dbt_tls_conn_new_server(ctx, sv[0], &srv));
    return srv;
}

static void handshake(struct dbt_tls_ctx *ctx, const struct tcert *cert, const unsigned char *alpn,
                      unsigned alpn_len, int max_version, struct hs_result *r)
{
    int sv[2];
    struct dbt_tls_conn *srv = server_on_pair(ctx, sv);
    SSL *cli = raw_client(sv[1], cert, alpn, alpn_len, max_version);
    memset(r, 0, sizeof(*r));
    r->server = pump(srv, cli, &r->client_ok);
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", dbt_errmsg());
    if (r->server == DBT_TLS_IO_OK) {
        /* TLS 1.3: a client-certificate failure is only seen when the server reads */
        uint8_t buf[16];
        size_t got = 0;
        SSL_write(cli, "ping", 4);
        enum dbt_tls_io rr = DBT_TLS_IO_WANT_READ;
        for (int i = 0; i < 50 && rr == DBT_TLS_IO_WANT_READ; i++) {
            rr = dbt_tls_read(srv, buf, sizeof(buf), &got);
        }
        CHECK(rr == DBT_TLS_IO_OK && got == 4 && memcmp(buf, "ping", 4) == 0);
        dbt_tls_get_info(srv, &r->info);
    }
    dbt_tls_peer_subject(srv, r->subject, sizeof(r->subject));
    SSL_free(cli);
    dbt_tls_conn_free(srv);
    close(sv[0]);
    close(sv[1]);
}

static void test_handshakes(void)
{
    struct dbt_tls_ctx *ctx = server_ctx(NULL);
    struct hs_result r;

    handshake(ctx, NULL, NULL, 0, 0, &r);
    CHECK(r.server == DBT_TLS_IO_OK && r.client_ok);
    CHECK(strcmp(r.info.version, "TLSv1.3") == 0);
    CHECK(r.info.cipher[0] != '\0' && r.info.bits >= 128);
    CHECK(!r.info.peer_cert && r.info.cn[0] == '\0');
    CHECK(r.info.alpn[0] == '\0');

    handshake(ctx, &client, (const unsigned char *)"\x0apostgresql", 11, 0, &r);
    CHECK(r.server == DBT_TLS_IO_OK);
    CHECK(r.info.peer_cert);
    CHECK(strcmp(r.info.cn, "alice") == 0);
    CHECK(strcmp(r.info.serial, "4242") == 0);
    CHECK(strstr(r.info.subject, "CN=alice") != NULL);
    CHECK(strstr(r.info.issuer, "CN=test client CA") != NULL);
    CHECK(strcmp(r.info.alpn, "postgresql") == 0);
    /* pg_stat_ssl's form of the same names */
    CHECK(strcmp(r.info.client_dn, "/CN=alice") == 0);
    CHECK(strcmp(r.info.issuer_dn, "/CN=test client CA") == 0);

    /* RFC 2253 specials are escaped in pg_stat_ssl's form as PostgreSQL escapes them */
    handshake(ctx, &odd, NULL, 0, 0, &r);
    CHECK(r.server == DBT_TLS_IO_OK && r.info.peer_cert);
    CHECK(strcmp(r.info.client_dn, "/CN=o'neil\\, \\\"db\\\"\\+x") == 0);

    /* ALPN offered without "postgresql": refused (no_application_protocol) */
    handshake(ctx, NULL, (const unsigned char *)"\x08http/1.1", 9, 0, &r);
    CHECK(r.server == DBT_TLS_IO_ERR);

    /* TLS 1.1 and 1.2 max: 1.1 refused by default, 1.2 accepted */
    handshake(ctx, NULL, NULL, 0, TLS1_1_VERSION, &r);
    CHECK(r.server == DBT_TLS_IO_ERR);
    CHECK(strstr(r.errmsg, "protocol") != NULL);
    handshake(ctx, NULL, NULL, 0, TLS1_2_VERSION, &r);
    CHECK(r.server == DBT_TLS_IO_OK && strcmp(r.info.version, "TLSv1.2") == 0);

    /* revoked and foreign client certificates fail, and the subject is known for the log */
    handshake(ctx, &revoked, NULL, 0, 0, &r);
    CHECK(r.server == DBT_TLS_IO_ERR || !r.info.peer_cert);
    CHECK(strstr(r.subject, "CN=mallory") != NULL);
    handshake(ctx, &expired, NULL, 0, 0, &r);
    CHECK(r.server == DBT_TLS_IO_ERR || !r.info.peer_cert);
    CHECK(strstr(r.subject, "CN=oldtimer") != NULL);
    CHECK(r.server != DBT_TLS_IO_ERR || strstr(r.errmsg, "expired") != NULL);
    handshake(ctx, &foreign, NULL, 0, 0, &r);
    CHECK(r.server == DBT_TLS_IO_ERR || !r.info.peer_cert);
    CHECK(strstr(r.subject, "CN=alice") != NULL);
    dbt_tls_ctx_unref(ctx);

    /* policy: minimum TLS 1.3 refuses a TLS 1.2 client */
    struct dbt_tls_policy p13 = {.min_version = "TLSv1.3"};
    ctx = server_ctx(&p13);
    handshake(ctx, NULL, NULL, 0, TLS1_2_VERSION, &r);
    CHECK(r.server == DBT_TLS_IO_ERR);
    dbt_tls_ctx_unref(ctx);
}

/* Number of certificates the server sent (the client's view of the chain). */
static int served_chain_len(struct dbt_tls_ctx *ctx)
{
    int sv[2];
    struct dbt_tls_conn *srv = server_on_pair(ctx, sv);
    SSL *cli = raw_client(sv[1], NULL, NULL, 0, 0);
    bool cli_ok = false;
    CHECK(pump(srv, cli, &cli_ok) == DBT_TLS_IO_OK && cli_ok);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(cli);
    int n = chain != NULL ? sk_X509_num(chain) : -1;
    SSL_free(cli);
    dbt_tls_conn_free(srv);
    close(sv[0]);
    close(sv[1]);
    return n;
}

/* The server sends the chain it was given, leaf then intermediates, and nothing it could build
   from its client-CA trust store: a leaf-only chain stays leaf-only even when its issuer is also
   the client CA (OpenSSL would otherwise verify and append it on every handshake). */
static void test_served_chain(void)
{
    struct dbt_tls_ctx *c = NULL;
    CHECK_OK(dbt_tls_server_ctx_new(server.cert_pem, server.key_pem, ca.cert_pem, NULL, NULL, false,
                                    &c));
    CHECK(served_chain_len(c) == 1);
    dbt_tls_ctx_unref(c);
    char chain[8192];
    snprintf(chain, sizeof(chain), "%s%s", server.cert_pem, ca.cert_pem);
    CHECK_OK(dbt_tls_server_ctx_new(chain, server.key_pem, ca.cert_pem, NULL, NULL, false, &c));
    CHECK(served_chain_len(c) == 2);
    dbt_tls_ctx_unref(c);
}

static void test_prefixed_and_record_cap(void)
{
    struct dbt_tls_ctx *ctx = server_ctx(NULL);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    nonblock(sv[0]);
    nonblock(sv[1]);
    SSL *cli = raw_client(sv[1], NULL, (const unsigned char *)"\x0apostgresql", 11, 0);
    CHECK(SSL_do_handshake(cli) != 1); /* sends the ClientHello, waits */
    uint8_t prefix[5];
    CHECK(read(sv[0], prefix, sizeof(prefix)) == 5);
    CHECK(prefix[0] == 0x16); /* what the PostgreSQL front sees as "direct TLS" */
    struct dbt_tls_conn *srv = NULL;
    CHECK_OK(dbt_tls_conn_new_server_prefixed(ctx, sv[0], prefix, sizeof(prefix), &srv));
    bool cli_ok = false;
    CHECK(pump(srv, cli, &cli_ok) == DBT_TLS_IO_OK && cli_ok);
    struct dbt_tls_info info;
    dbt_tls_get_info(srv, &info);
    CHECK(strcmp(info.alpn, "postgresql") == 0);

    static uint8_t big[100000];
    size_t done = 0;
    CHECK(dbt_tls_write(srv, big, sizeof(big), &done) == DBT_TLS_IO_OK);
    CHECK(done > 0 && done <= 16384);
    /* the client reads it; the server's pending counter drains */
    uint8_t buf[20000];
    size_t total = 0;
    for (int i = 0; i < 100 && total < done; i++) {
        int n = SSL_read(cli, buf, sizeof(buf));
        if (n > 0) {
            total += (size_t)n;
        }
    }
    CHECK(total == done);
    CHECK(dbt_tls_pending(srv) == 0);
    SSL_free(cli);
    dbt_tls_conn_free(srv);
    close(sv[0]);
    close(sv[1]);
    dbt_tls_ctx_unref(ctx);
}

/* A server connection of server_ctx(NULL) and a plain OpenSSL client on a non-blocking socket
   pair, before the handshake. */
struct tls_pair {
    struct dbt_tls_ctx *ctx;
    int sv[2];
    SSL *cli;
    struct dbt_tls_conn *srv;
};

static void pair_open(struct tls_pair *p)
{
    p->ctx = server_ctx(NULL);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv) == 0);
    nonblock(p->sv[0]);
    nonblock(p->sv[1]);
    p->cli = raw_client(p->sv[1], NULL, NULL, 0, 0);
    p->srv = NULL;
    CHECK_OK(dbt_tls_conn_new_server(p->ctx, p->sv[0], &p->srv));
}

static void pair_close(struct tls_pair *p)
{
    SSL_free(p->cli);
    dbt_tls_conn_free(p->srv);
    close(p->sv[0]);
    close(p->sv[1]);
    dbt_tls_ctx_unref(p->ctx);
}

/* A client that refuses the server certificate (verifies against another CA) sends an
 * unknown_ca alert mid-handshake (OpenSSL 3 before its handshake keys: in plaintext). The
 * server's failure names it in OpenSSL's words with either library, which is what the
 * server_cert_refused counter reads. */
static void test_client_refuses_server_cert(void)
{
    struct tls_pair p;
    pair_open(&p);
    X509_STORE *trust = X509_STORE_new();
    X509_STORE_add_cert(trust, foreign_ca.cert);
    SSL_set_verify(p.cli, SSL_VERIFY_PEER, NULL);
    SSL_set1_verify_cert_store(p.cli, trust);
    X509_STORE_free(trust);
    bool cli_ok = false;
    CHECK(pump(p.srv, p.cli, &cli_ok) == DBT_TLS_IO_ERR && !cli_ok);
    CHECK(strstr(dbt_errmsg(), "alert unknown ca") != NULL);
    pair_close(&p);
}

/* Records that arrived together: with read-ahead the second one waits inside OpenSSL, out of
 * epoll's sight; dbt_tls_pending must say so, or the relay would stall on it. A read after the
 * last one waits (WANT_READ), not EOF. */
static void test_read_ahead_pending(void)
{
    struct tls_pair p;
    pair_open(&p);
    SSL *cli = p.cli;
    struct dbt_tls_conn *srv = p.srv;
    bool cli_ok = false;
    CHECK(pump(srv, cli, &cli_ok) == DBT_TLS_IO_OK && cli_ok);
    CHECK(SSL_write(cli, "first", 5) == 5);
    CHECK(SSL_write(cli, "second", 6) == 6);
    char buf[64];
    size_t got = 0;
    enum dbt_tls_io r = DBT_TLS_IO_WANT_READ;
    for (int i = 0; i < 10 && r == DBT_TLS_IO_WANT_READ; i++) {
        r = dbt_tls_read(srv, buf, sizeof(buf), &got); /* TLS 1.3 tickets come first */
    }
    CHECK(r == DBT_TLS_IO_OK && got == 5 && memcmp(buf, "first", 5) == 0);
    /* read ahead (OpenSSL's own; with BoringSSL, the filter BIO's) */
    CHECK(dbt_tls_pending(srv) > 0);
    CHECK(dbt_tls_read(srv, buf, sizeof(buf), &got) == DBT_TLS_IO_OK);
    CHECK(got == 6 && memcmp(buf, "second", 6) == 0);
    CHECK(dbt_tls_pending(srv) == 0);
    CHECK(dbt_tls_read(srv, buf, sizeof(buf), &got) == DBT_TLS_IO_WANT_READ);
    pair_close(&p);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
    chmod(path, mode);
}

/* The client certificate dbtlsd shows a backend (--backend-tls-cert/--backend-tls-key). */
static void test_backend_client_identity(void)
{
    char dir[] = "/tmp/dbt-tls-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char ca_f[64], crt_f[64], key_f[64], other_f[64], enc_f[64];
    snprintf(ca_f, sizeof(ca_f), "%s/ca.pem", dir);
    snprintf(crt_f, sizeof(crt_f), "%s/client.crt", dir);
    snprintf(key_f, sizeof(key_f), "%s/client.key", dir);
    snprintf(other_f, sizeof(other_f), "%s/other.key", dir);
    snprintf(enc_f, sizeof(enc_f), "%s/enc.key", dir);
    write_file(ca_f, ca.cert_pem, 0644);
    write_file(crt_f, client.cert_pem, 0644);
    write_file(key_f, client.key_pem, 0600);
    write_file(other_f, foreign.key_pem, 0600);
    /* an encrypted key: refused, never a passphrase prompt */
    BIO *b = BIO_new_file(enc_f, "w");
    PEM_write_bio_PrivateKey(b, client.key, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"pw");
    BIO_free(b);
    chmod(enc_f, 0600);

    struct dbt_tls_ctx *c = NULL;
    CHECK_OK(dbt_tls_client_ctx_new(ca_f, crt_f, key_f, &c));
    dbt_tls_ctx_unref(c);
    CHECK_ERR(dbt_tls_client_ctx_new(ca_f, crt_f, NULL, &c), DBT_E_INVALID);
    CHECK_ERR(dbt_tls_client_ctx_new(ca_f, crt_f, other_f, &c), DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "does not match the certificate") != NULL);
    CHECK_ERR(dbt_tls_client_ctx_new(ca_f, crt_f, enc_f, &c), DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "enc.key") != NULL && strstr(dbt_errmsg(), "not encrypted"));
    CHECK_ERR(dbt_tls_client_ctx_new(ca_f, key_f, key_f, &c), DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "backend TLS certificate file") != NULL);
    char missing[80];
    snprintf(missing, sizeof(missing), "%s/missing.key", dir);
    CHECK_ERR(dbt_tls_client_ctx_new(ca_f, crt_f, missing, &c), DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "No such file") != NULL);
    chmod(key_f, 0644);
    CHECK_ERR(dbt_tls_client_ctx_new(ca_f, crt_f, key_f, &c), DBT_E_TLS);
    CHECK(strstr(dbt_errmsg(), "has group or world access") != NULL);
    const char *files[] = {ca_f, crt_f, key_f, other_f, enc_f};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        unlink(files[i]);
    }
    rmdir(dir);
}

/* The server_name extension body (RFC 6066) the front reads for shared listen addresses. */
static void test_sni_parse(void)
{
    char name[16];
    static const unsigned char one[] = {0, 9, 0, 0, 6, 'a', '.', 't', 'e', 's', 't'};
    CHECK(dbt_tls_sni_parse(one, sizeof(one), name, sizeof(name)));
    CHECK(strcmp(name, "a.test") == 0);
    /* an unknown name type first is skipped */
    static const unsigned char two[] = {0, 12, 7, 0, 1, 'z', 0, 0, 5, 'b', '.', 't', 'e', 's'};
    CHECK(dbt_tls_sni_parse(two, sizeof(two), name, sizeof(name)) && strcmp(name, "b.tes") == 0);
    /* malformed: list length off, entry past the end, empty name, NUL inside, too long */
    static const unsigned char badlen[] = {0, 8, 0, 0, 6, 'a', '.', 't', 'e', 's', 't'};
    static const unsigned char past[] = {0, 4, 0, 0, 6, 'a'};
    static const unsigned char empty[] = {0, 3, 0, 0, 0};
    static const unsigned char nul[] = {0, 5, 0, 0, 2, 'a', 0};
    CHECK(!dbt_tls_sni_parse(badlen, sizeof(badlen), name, sizeof(name)));
    CHECK(!dbt_tls_sni_parse(past, sizeof(past), name, sizeof(name)));
    CHECK(!dbt_tls_sni_parse(empty, sizeof(empty), name, sizeof(name)));
    CHECK(!dbt_tls_sni_parse(nul, sizeof(nul), name, sizeof(name)));
    CHECK(!dbt_tls_sni_parse(one, sizeof(one), name, 6)); /* "a.test" needs 7 bytes */
    CHECK(!dbt_tls_sni_parse(one, 1, name, sizeof(name)));
}

/* The library is chosen before any context: an unknown module is refused with why, and once
   contexts exist the library can no longer change. */
static void test_library_choice(const char *lib)
{
    CHECK(!dbt_ok(dbt_tls_use_library("/nonexistent/dbtls-tls-x.so")));
    CHECK(strstr(dbt_errmsg(), "cannot be loaded") != NULL);
    if (lib != NULL) {
        CHECK(dbt_ok(dbt_tls_use_library(lib)));
        CHECK(strcmp(dbt_tls_library(), lib) == 0);
    }
    printf("# TLS library: %s\n", dbt_tls_library_version());
}

static void test_library_fixed(void)
{
    const char *other = strcmp(dbt_tls_library(), "openssl") == 0 ? "boringssl" : "openssl";
    dbt_res r = dbt_tls_use_library(other);
    CHECK(!dbt_ok(r) && r.code == DBT_E_STATE);
    CHECK(dbt_ok(dbt_tls_use_library(dbt_tls_library()))); /* the same one: a no-op */
}

int main(void)
{
    /* DBTLS_TLS_LIBRARY=boringssl: the same tests against the BoringSSL module */
    test_library_choice(getenv("DBTLS_TLS_LIBRARY"));
    setup();
    test_ctx_errors();
    test_key_forms();
    test_handshakes();
    test_served_chain();
    test_prefixed_and_record_cap();
    test_read_ahead_pending();
    test_client_refuses_server_cert();
    test_sni_parse();
    test_backend_client_identity();
    test_library_fixed();
    tc_free(&ca);
    tc_free(&server);
    tc_free(&client_ca);
    tc_free(&client);
    tc_free(&revoked);
    tc_free(&odd);
    tc_free(&foreign_ca);
    tc_free(&foreign);
    tc_free(&expired);
    free(crl_pem);
    return check_exit();
}
