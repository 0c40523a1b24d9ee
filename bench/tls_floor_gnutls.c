/*
 * tls_floor_gnutls.c - would GnuTLS be a cheaper TLS server than OpenSSL on this machine? The
 * handshake figure of tls_floor.c measured with GnuTLS (nettle underneath), plus the bulk
 * encryption rate of both libraries, so the two can be compared before anyone ports src/tls/.
 *
 *   handshake  server-side CPU of one full TLS 1.3 handshake in memory (no sockets): a GnuTLS
 *              server (its transport push/pull callbacks on one half of an OpenSSL BIO pair)
 *              and tls_floor's own OpenSSL client on the other half, so the ClientHello is the
 *              one tls_floor's server gets (X25519 key share). The same chain (ECDSA P-256 leaf
 *              under a P-384 CA, made here with OpenSSL and handed to GnuTLS as PEM), no session
 *              tickets (GNUTLS_NO_TICKETS), a CertificateRequest naming the CA. Only the server's
 *              calls are timed (CLOCK_THREAD_CPUTIME_ID around gnutls_init ... gnutls_deinit), as
 *              in tls_floor. With the client in libssl/libcrypto, a profile of this program by
 *              DSO shows the server alone in libgnutls, libnettle, libhogweed and libgmp.
 *   bulk       server CPU to encrypt MB MiB of application data in 16 KiB records with
 *              TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384, for GnuTLS and for OpenSSL
 *              (OpenSSL with dbtlsd's context settings, tls_floor's); the records go to a sink.
 *
 * Usage: tls_floor_gnutls [N [MB]]   (default 2000 handshakes, 64 MiB per bulk run; MB = 0
 * skips the bulk runs, for profiling the handshake alone)
 */
#include "floor_common.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD 16384

/*
 * Server priorities mirror tls_floor's OpenSSL server: TLS 1.2 or 1.3, the server's order, and
 * OpenSSL's group order. GnuTLS's own order starts with SECP256R1: with %SERVER_PRECEDENCE it
 * answers OpenSSL's ClientHello (one key share, X25519) with a HelloRetryRequest: a second
 * round trip every OpenSSL-based client (libpq, Connector/C) would pay.
 */
#define SERVER_PRIO                                                                                \
    "NORMAL:%SERVER_PRECEDENCE:-VERS-TLS1.1:-VERS-TLS1.0:-GROUP-ALL:+GROUP-X25519:"                \
    "+GROUP-SECP256R1:+GROUP-X448:+GROUP-SECP521R1:+GROUP-SECP384R1"

static void gt_check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "tls_floor_gnutls: %s failed: %s\n", what, gnutls_strerror(rc));
        exit(1);
    }
}

/* ---- the certificates: tls_floor's shape, made with OpenSSL ---- */

/* PEM text of what the callers write into a memory BIO, as a gnutls_datum_t (free with free). */
static gnutls_datum_t bio_datum(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    gnutls_datum_t d = {.data = malloc((size_t)n + 1), .size = (unsigned)n};
    if (n <= 0 || d.data == NULL) {
        floor_die("PEM export");
    }
    memcpy(d.data, p, (size_t)n);
    d.data[n] = 0;
    BIO_free(b);
    return d;
}

/* GnuTLS server credentials holding the chain (leaf then CA) and the CA as the client-CA list. */
static gnutls_certificate_credentials_t gnutls_server_cred(const struct floor_chain *c)
{
    BIO *certs = BIO_new(BIO_s_mem()), *key = BIO_new(BIO_s_mem()), *ca = BIO_new(BIO_s_mem());
    if (certs == NULL || key == NULL || ca == NULL || PEM_write_bio_X509(certs, c->leaf) != 1 ||
        PEM_write_bio_X509(certs, c->ca) != 1 ||
        PEM_write_bio_PrivateKey(key, c->k, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(ca, c->ca) != 1) {
        floor_die("PEM_write_bio");
    }
    gnutls_datum_t certs_pem = bio_datum(certs), key_pem = bio_datum(key), ca_pem = bio_datum(ca);
    gnutls_certificate_credentials_t cred;
    gt_check(gnutls_certificate_allocate_credentials(&cred), "allocate credentials");
    gt_check(gnutls_certificate_set_x509_key_mem2(cred, &certs_pem, &key_pem, GNUTLS_X509_FMT_PEM,
                                                  NULL, 0),
             "set_x509_key_mem2");
    gt_check(gnutls_certificate_set_x509_trust_mem(cred, &ca_pem, GNUTLS_X509_FMT_PEM),
             "set_x509_trust_mem");
    free(certs_pem.data);
    free(key_pem.data);
    free(ca_pem.data);
    return cred;
}

/* ---- GnuTLS server, OpenSSL client, in memory ---- */

/* The server's transport: its half of a BIO pair, or (sink) nowhere, counting bytes. */
struct end {
    gnutls_session_t s;
    BIO *net;
    bool sink;
    size_t sunk;
};

static ssize_t end_push(gnutls_transport_ptr_t p, const void *data, size_t size)
{
    struct end *e = p;
    if (e->sink) {
        e->sunk += size;
        return (ssize_t)size;
    }
    int n = BIO_write(e->net, data, size > INT_MAX ? INT_MAX : (int)size);
    if (n <= 0) {
        gnutls_transport_set_errno(e->s, EAGAIN);
        return -1;
    }
    return n;
}

static ssize_t end_pull(gnutls_transport_ptr_t p, void *data, size_t size)
{
    struct end *e = p;
    int n = BIO_read(e->net, data, size > INT_MAX ? INT_MAX : (int)size);
    if (n <= 0) {
        gnutls_transport_set_errno(e->s, EAGAIN);
        return -1;
    }
    return n;
}

static int hello_retries; /* HelloRetryRequests sent: a second round trip would skew the figure */

static int hrr_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                    const gnutls_datum_t *msg)
{
    hello_retries++;
    return 0;
}

struct gt_ctx {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    SSL_CTX *client;
};

static void gt_ctx_init(struct gt_ctx *g, const struct floor_chain *c, const char *prio)
{
    g->cred = gnutls_server_cred(c);
    gt_check(gnutls_priority_init(&g->prio, prio, NULL), "gnutls_priority_init");
    g->client = SSL_CTX_new(TLS_client_method());
    if (g->client == NULL) {
        floor_die("client context");
    }
    SSL_CTX_set_verify(g->client, SSL_VERIFY_NONE, NULL);
}

static void gt_ctx_cleanup(struct gt_ctx *g)
{
    SSL_CTX_free(g->client);
    gnutls_priority_deinit(g->prio);
    gnutls_certificate_free_credentials(g->cred);
}

/*
 * One handshake between a fresh OpenSSL client (*cl, not timed, verifies nothing as tls_floor's)
 * and a fresh GnuTLS server (*sv) whose calls add their thread CPU to *server. The caller frees
 * both (SSL_free(*cl), BIO_free(sv->net), gnutls_deinit(sv->s)).
 */
static void gt_handshake(const struct gt_ctx *g, struct end *sv, SSL **cl, double *server)
{
    BIO *sb = NULL, *cb = NULL;
    if (BIO_new_bio_pair(&sb, 0, &cb, 0) != 1 || (*cl = SSL_new(g->client)) == NULL) {
        floor_die("client setup");
    }
    SSL_set_bio(*cl, cb, cb);
    SSL_set_connect_state(*cl);
    double t0 = floor_thread_cpu_s();
    *sv = (struct end){.net = sb};
    gt_check(gnutls_init(&sv->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS),
             "gnutls_init");
    gt_check(gnutls_priority_set(sv->s, g->prio), "gnutls_priority_set");
    gt_check(gnutls_credentials_set(sv->s, GNUTLS_CRD_CERTIFICATE, g->cred),
             "gnutls_credentials_set");
    /* as an instance with a client CA: ask for a certificate, do not require one */
    gnutls_certificate_server_set_request(sv->s, GNUTLS_CERT_REQUEST);
    gnutls_transport_set_ptr(sv->s, sv);
    gnutls_transport_set_push_function(sv->s, end_push);
    gnutls_transport_set_pull_function(sv->s, end_pull);
    gnutls_handshake_set_hook_function(sv->s, GNUTLS_HANDSHAKE_HELLO_RETRY_REQUEST,
                                       GNUTLS_HOOK_POST, hrr_hook);
    *server += floor_thread_cpu_s() - t0;
    bool cdone = false, sdone = false;
    for (int round = 0; !(cdone && sdone); round++) {
        if (round > 20) {
            floor_die("handshake (no progress)");
        }
        if (!cdone) {
            int rc = SSL_do_handshake(*cl);
            if (rc <= 0 && !floor_want_io(*cl, rc)) {
                floor_die("client handshake");
            }
            cdone = rc == 1;
        }
        if (!sdone) {
            t0 = floor_thread_cpu_s();
            int rs = gnutls_handshake(sv->s);
            *server += floor_thread_cpu_s() - t0;
            if (rs < 0 && gnutls_error_is_fatal(rs)) {
                gt_check(rs, "server handshake");
            }
            sdone = rs == 0;
        }
    }
}

/* Server CPU seconds for n GnuTLS handshakes; *desc gets the last session's description. */
static double gt_handshakes(const struct gt_ctx *g, int n, char *desc, size_t desc_size)
{
    double server = 0;
    for (int i = 0; i < n; i++) {
        struct end sv;
        SSL *cl;
        gt_handshake(g, &sv, &cl, &server);
        if (i == n - 1 && desc != NULL) {
            /* the client got what tls_floor's server sends: both certificates, a request
             * naming the CA, TLS 1.3, and no HelloRetryRequest in any of the n handshakes */
            STACK_OF(X509) *peer = SSL_get_peer_cert_chain(cl);
            const STACK_OF(X509_NAME) *cas = SSL_get0_peer_CA_list(cl);
            if (peer == NULL || sk_X509_num(peer) != 2 || cas == NULL ||
                sk_X509_NAME_num(cas) != 1 || SSL_version(cl) != TLS1_3_VERSION ||
                hello_retries != 0) {
                floor_die("handshake shape (chain of 2, CertificateRequest with the CA, no HRR)");
            }
            char *d = gnutls_session_get_desc(sv.s);
            snprintf(desc, desc_size, "%s, group %s", d,
                     gnutls_group_get_name(gnutls_group_get(sv.s)));
            gnutls_free(d);
        }
        double t0 = floor_thread_cpu_s();
        gnutls_deinit(sv.s);
        server += floor_thread_cpu_s() - t0;
        SSL_free(cl);
        BIO_free(sv.net);
    }
    return server;
}

/* Server CPU seconds to send `bytes` of application data in 16 KiB records to a sink. */
static double gt_bulk(const struct gt_ctx *g, size_t bytes, char *cipher, size_t cipher_size)
{
    static unsigned char buf[RECORD], got[RECORD];
    struct end sv;
    SSL *cl;
    double ignored = 0;
    gt_handshake(g, &sv, &cl, &ignored);
    snprintf(cipher, cipher_size, "%s", gnutls_cipher_get_name(gnutls_cipher_get(sv.s)));

    /* one record through to the client first: the keys agree and the data arrives intact */
    memset(buf, 'x', sizeof(buf));
    gt_check((int)gnutls_record_send(sv.s, buf, sizeof(buf)), "gnutls_record_send");
    for (int have = 0; have < (int)sizeof(got);) {
        int r = SSL_read(cl, got + have, (int)sizeof(got) - have);
        if (r <= 0) {
            floor_die("SSL_read");
        }
        have += r;
    }
    if (memcmp(got, buf, sizeof(buf)) != 0) {
        floor_die("GnuTLS record check");
    }

    sv.sink = true;
    double t0 = floor_thread_cpu_s();
    for (size_t sent = 0; sent < bytes;) {
        ssize_t w = gnutls_record_send(sv.s, buf, sizeof(buf));
        if (w <= 0) {
            gt_check((int)w, "gnutls_record_send");
        }
        sent += (size_t)w;
    }
    double used = floor_thread_cpu_s() - t0;
    if (sv.sunk < bytes) {
        floor_die("GnuTLS bulk (records missing)");
    }
    gnutls_deinit(sv.s);
    SSL_free(cl);
    BIO_free(sv.net);
    return used;
}

/* ---- OpenSSL bulk, for comparison (tls_floor.c measures its handshake) ---- */

static SSL_CTX *ossl_server_ctx(const struct floor_chain *c, const char *suite)
{
    SSL_CTX *s = floor_server_ctx(c);
    if (SSL_CTX_set_ciphersuites(s, suite) != 1) {
        floor_die("server cipher suites");
    }
    return s;
}

/*
 * A BIO that takes every write and drops it, like the GnuTLS sink (a memory BIO would not do:
 * BIO_reset clears its whole buffer with memset, a cost per record GnuTLS's sink does not pay).
 */
static int sink_write(BIO *b, const char *data, int len)
{
    return len;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sink_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO *sink_new(void)
{
    static BIO_METHOD *m;
    if (m == NULL) {
        m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sink");
        if (m == NULL || BIO_meth_set_write(m, sink_write) != 1 ||
            BIO_meth_set_ctrl(m, sink_ctrl) != 1 || BIO_meth_set_create(m, sink_create) != 1) {
            floor_die("BIO_meth_new");
        }
    }
    return BIO_new(m);
}

/* Server CPU seconds for OpenSSL to write `bytes` in 16 KiB records into a sink. */
static double ossl_bulk(const struct floor_chain *c, const char *suite, size_t bytes)
{
    static unsigned char buf[RECORD];
    SSL_CTX *s = ossl_server_ctx(c, suite), *cctx = SSL_CTX_new(TLS_client_method());
    BIO *sb = NULL, *cb = NULL, *sink = sink_new();
    if (cctx == NULL || sink == NULL || BIO_new_bio_pair(&sb, 0, &cb, 0) != 1) {
        floor_die("OpenSSL client setup");
    }
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL *sv = SSL_new(s), *cl = SSL_new(cctx);
    if (sv == NULL || cl == NULL) {
        floor_die("SSL_new");
    }
    SSL_set_bio(sv, sb, sb);
    SSL_set_bio(cl, cb, cb);
    SSL_set_accept_state(sv);
    SSL_set_connect_state(cl);
    for (int done = 0; !done;) {
        int rc = SSL_do_handshake(cl), rs = SSL_do_handshake(sv);
        if ((rc <= 0 && !floor_want_io(cl, rc)) || (rs <= 0 && !floor_want_io(sv, rs))) {
            floor_die("OpenSSL handshake");
        }
        done = rc == 1 && rs == 1;
    }
    if (strcmp(SSL_get_cipher_name(sv), suite) != 0) {
        floor_die("OpenSSL cipher suite choice");
    }
    memset(buf, 'x', sizeof(buf));
    SSL_set0_wbio(sv, sink); /* records now go nowhere */
    size_t sent = 0;
    double t0 = floor_thread_cpu_s();
    while (sent < bytes) {
        int w = SSL_write(sv, buf, (int)sizeof(buf));
        if (w <= 0) {
            floor_die("SSL_write");
        }
        sent += (size_t)w;
    }
    double used = floor_thread_cpu_s() - t0;
    SSL_free(sv);
    SSL_free(cl);
    SSL_CTX_free(s);
    SSL_CTX_free(cctx);
    return used;
}

int main(int argc, char **argv)
{
    floor_prog = "tls_floor_gnutls";
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    int mb = argc > 2 ? atoi(argv[2]) : 64;
    if (n <= 0 || mb < 0) {
        fprintf(stderr, "usage: tls_floor_gnutls [N [MB]]   (N > 0 handshakes, MB >= 0 MiB of "
                        "bulk per cipher, 0: none)\n");
        return 2;
    }
    gt_check(gnutls_global_init(), "gnutls_global_init");
    struct floor_chain c;
    floor_chain_init(&c);

    struct gt_ctx g;
    gt_ctx_init(&g, &c, SERVER_PRIO);
    char desc[256];
    (void)gt_handshakes(&g, n / 10 + 1, NULL, 0); /* warm up */
    double hs = gt_handshakes(&g, n, desc, sizeof(desc)) * 1e3 / n;
    gt_ctx_cleanup(&g);
    printf("GnuTLS %s, %s, %d runs\n", gnutls_check_version(NULL), OpenSSL_version(OPENSSL_VERSION),
           n);
    printf("handshake  %.3f ms server CPU per TLS 1.3 handshake in memory (%s)\n", hs, desc);

    static const struct {
        const char *gnutls_prio, *openssl_suite;
    } bulk[] = {
        {SERVER_PRIO ":-CIPHER-ALL:+AES-128-GCM", "TLS_AES_128_GCM_SHA256"},
        {SERVER_PRIO ":-CIPHER-ALL:+AES-256-GCM", "TLS_AES_256_GCM_SHA384"},
    };
    size_t bytes = (size_t)mb << 20;
    /* the libraries take turns, 3 rounds each, and the least CPU of each counts: on a shared
     * machine a neighbour's burst lands on one round, not on one library */
    for (size_t i = 0; mb > 0 && i < sizeof(bulk) / sizeof(bulk[0]); i++) {
        char cipher[64];
        double gt = 1e9, os = 1e9;
        for (int round = 0; round < 3; round++) {
            gt_ctx_init(&g, &c, bulk[i].gnutls_prio);
            double t = gt_bulk(&g, bytes, cipher, sizeof(cipher));
            gt_ctx_cleanup(&g);
            gt = t < gt ? t : gt;
            t = ossl_bulk(&c, bulk[i].openssl_suite, bytes);
            os = t < os ? t : os;
        }
        printf("bulk       %-11s GnuTLS %5.0f MiB/s  OpenSSL %5.0f MiB/s  (server CPU, %d MiB in "
               "16 KiB records, best of 3)\n",
               cipher, mb / gt, mb / os, mb);
    }
    floor_chain_cleanup(&c);
    gnutls_global_deinit();
    return 0;
}
