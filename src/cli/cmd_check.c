/*
 * cmd_check.c - `dbtls instances check NAME [--timeout SECONDS]`: what a client and dbtlsd will
 * meet, tried from this host, so "the client cannot connect" gets a cause before anyone reads
 * logs. One row per check, each ok, warning or failed with what was seen and what to do:
 *
 *   server-certificate   the active certificate's dates (warning within 30 days of expiry)
 *   dns NAME             each DNS endpoint resolves (clients verify-full against these names)
 *   front                the listen address, reached as a client would: the engine's own TLS
 *                        request (PostgreSQL SSLRequest; MySQL greeting + SSLRequest), then a
 *                        handshake verified like psql's sslmode=verify-full with the instance's
 *                        server-ca.pem against the first endpoint; and whether the certificate
 *                        served is the active one (a stale one: dbtlsd has not loaded the change)
 *   trust-chain          the CA certificates that handshake was verified through (the issuer up
 *                        to the root): warning when one ends within 90 days (clients stop
 *                        trusting the server then, however new its certificate), with the way
 *                        to a successor for the instance's CA mode
 *   backend              the database server is reachable; with --backend-tls-ca its TLS
 *                        verifies as dbtlsd's will (and shows --backend-tls-cert when asked);
 *                        a MySQL/MariaDB server's greeting names its version
 *
 * Exit 1 when a check failed (warnings alone exit 0). Blocking sockets bounded by --timeout:
 * the CLI never runs an event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/wr.h"
#include "cli/cmd.h"
#include "cli/out.h"
#include "ctl/ctl.h"
#include "pki/pki.h"
#include "proto/my/my.h"

#define WARN_DAYS 30
/* CA certificates: a successor has to reach every client first (Cloud SQL adds the upcoming
   server CA three months ahead) */
#define CA_WARN_DAYS 90

struct report {
    json_t *rows;
    int failed, warned;
};

static void row(struct report *r, const char *check, const char *result, const char *fmt, ...)
    DBT_PRINTF(4, 5);
static void row(struct report *r, const char *check, const char *result, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    dbt_cli_jset(o, "check", dbt_cli_jstr(check));
    dbt_cli_jset(o, "result", dbt_cli_jstr(result));
    dbt_cli_jset(o, "detail", dbt_cli_jstr(detail));
    json_array_append_new(r->rows, o);
    r->failed += strcmp(result, "failed") == 0;
    r->warned += strcmp(result, "warning") == 0;
}

/* ---- sockets ---- */

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool connect_within(int fd, const struct sockaddr *sa, socklen_t len, int ms)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, sa, len);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rc = poll(&p, 1, ms);
        if (rc == 0) {
            errno = ETIMEDOUT;
            rc = -1;
        } else if (rc > 0) {
            int e = 0;
            socklen_t el = sizeof(e);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
            errno = e;
            rc = e == 0 ? 0 : -1;
        }
    }
    fcntl(fd, F_SETFL, fl);
    return rc == 0;
}

/*
 * Connects to addr ("host:port", "[v6]:port" or a unix socket path), trying each address the
 * host resolves to; a wildcard host (0.0.0.0, ::) means this host's loopback. On failure err
 * says where and why.
 */
static bool dial(const char *addr, int ms, int *out, char *err, size_t errlen)
{
    *out = -1;
    if (addr[0] == '/') {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect_within(fd, (struct sockaddr *)&sa, sizeof(sa), ms)) {
            set_timeouts(fd, ms);
            *out = fd;
            return true;
        }
        snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    char *host = NULL;
    int port = 0;
    if (!dbt_ctl_split_hostport(addr, &host, &port)) {
        snprintf(err, errlen, "\"%s\" is not HOST:PORT", addr);
        return false;
    }
    const char *h = strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1"
                    : strcmp(host, "::") == 0    ? "::1"
                                                 : host;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(h, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", h, gai_strerror(gai));
        free(host);
        return false;
    }
    snprintf(err, errlen, "cannot connect to %s", addr);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (connect_within(fd, ai->ai_addr, ai->ai_addrlen, ms)) {
            set_timeouts(fd, ms);
            *out = fd;
            break;
        }
        char num[INET6_ADDRSTRLEN] = "?";
        getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof(num), NULL, 0, NI_NUMERICHOST);
        snprintf(err, errlen, "cannot connect to %s (%s port %d): %s", addr, num, port,
                 strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    free(host);
    return *out >= 0;
}

static bool read_full(int fd, void *p, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t k = recv(fd, (char *)p + got, n - got, 0);
        if (k <= 0) {
            if (k == 0) {
                errno = ECONNRESET;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                errno = ETIMEDOUT;
            }
            return false;
        }
        got += (size_t)k;
    }
    return true;
}

static bool write_full(int fd, const void *p, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t k = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
        if (k <= 0) {
            return false;
        }
        done += (size_t)k;
    }
    return true;
}

/* ---- the engines' TLS requests ---- */

/* PostgreSQL: SSLRequest, one byte back ('S' or 'N', or the start of an ErrorResponse). */
static bool pg_request_tls(int fd, char *err, size_t errlen)
{
    static const uint8_t req[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    uint8_t c = 0;
    if (!write_full(fd, req, sizeof(req)) || !read_full(fd, &c, 1)) {
        snprintf(err, errlen, "no answer to SSLRequest: %s", strerror(errno));
        return false;
    }
    if (c != 'S') {
        snprintf(err, errlen,
                 "answered SSLRequest with '%c' (0x%02x), not 'S': it does not "
                 "offer TLS",
                 c >= 0x20 && c < 0x7f ? c : '?', c);
        return false;
    }
    return true;
}

/* MySQL/MariaDB: the greeting (its version into version), then SSLRequest when tls. */
static bool my_greeting(int fd, bool tls, char *version, size_t vlen, char *err, size_t errlen)
{
    uint8_t h[4], p[DBT_MY_PREAUTH_MAX];
    if (!read_full(fd, h, 4)) {
        snprintf(err, errlen, "no greeting: %s", strerror(errno));
        return false;
    }
    size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
    if (n > sizeof(p) || !read_full(fd, p, n)) {
        snprintf(err, errlen, "no whole greeting (%zu bytes announced)", n);
        return false;
    }
    struct dbt_my_err e;
    if (dbt_my_is_err(p, n) && dbt_ok(dbt_my_err_decode(p, n, true, &e))) {
        snprintf(err, errlen, "refused with error %u: %.*s", e.code, (int)e.msg_len, e.msg);
        return false;
    }
    struct dbt_my_greeting g;
    if (!dbt_ok(dbt_my_greeting_decode(p, n, &g))) {
        snprintf(err, errlen, "not a MySQL greeting: %s", dbt_errmsg());
        return false;
    }
    snprintf(version, vlen, "%.*s", (int)g.server_version_len, g.server_version);
    if (!tls) {
        return true;
    }
    if (!(g.caps & DBT_MY_CLIENT_SSL)) {
        snprintf(err, errlen, "%s does not offer TLS (no CLIENT_SSL in its greeting)", version);
        return false;
    }
    static const uint8_t filler[23];
    struct dbt_my_response r = {.max_packet = 1u << 24, .charset = 33, .filler = filler};
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_ssl_request_encode(&r,
                              DBT_MY_CLIENT_SSL | DBT_MY_CLIENT_PROTOCOL_41 |
                                  DBT_MY_CLIENT_SECURE_CONNECTION | DBT_MY_CLIENT_LONG_PASSWORD,
                              1, &w);
    bool ok = dbt_ok(dbt_wr_finish(&w)) && write_full(fd, dbt_buf_head(&b), dbt_buf_avail(&b));
    dbt_buf_cleanup(&b);
    if (!ok) {
        snprintf(err, errlen, "cannot send SSLRequest: %s", strerror(errno));
    }
    return ok;
}

static bool is_mysql(const char *engine)
{
    return strcmp(engine, "mysql") == 0 || strcmp(engine, "mariadb") == 0;
}

/* ---- TLS ---- */

struct tls_seen {
    char version[32], cipher[64], sha1[41];
    int n_cas;            /* CA certificates in the verified chain (the leaf excluded) */
    int64_t ca_ends;      /* the first of them to end: notAfter, unix seconds */
    char ca_subject[256]; /* and its subject */
};

/* The verified chain's CA certificates: how many, and which ends first. */
static void chain_seen(SSL *ssl, struct tls_seen *seen)
{
    STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
    seen->n_cas = 0;
    for (int i = 1; chain != NULL && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
            continue;
        }
        int64_t end = (int64_t)timegm(&tm);
        if (seen->n_cas++ == 0 || end < seen->ca_ends) {
            seen->ca_ends = end;
            X509_NAME_oneline(X509_get_subject_name(x), seen->ca_subject,
                              (int)sizeof(seen->ca_subject));
        }
    }
}

/* The last OpenSSL error, with the verification result when that failed. */
static void tls_error(SSL *ssl, char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    } else if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err, errlen, "TLS handshake failed: %s", buf);
    } else {
        snprintf(err, errlen, "TLS handshake failed: %s",
                 errno ? strerror(errno) : "the peer closed the connection");
    }
    ERR_clear_error();
}

/* The peer certificate's sha1Fingerprint, as pki writes it for the store ("" if none). */
static void peer_sha1(X509 *peer, char out[41])
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n = 0;
    if (peer != NULL && b != NULL && PEM_write_bio_X509(b, peer) == 1 && BIO_write(b, "", 1) == 1 &&
        (n = BIO_get_mem_data(b, &pem)) > 0) {
        struct dbt_pki_cert_info info = {0};
        if (dbt_ok(dbt_pki_cert_info_pem(pem, &info))) {
            snprintf(out, 41, "%s", info.sha1);
        }
        dbt_pki_cert_info_cleanup(&info);
    }
    BIO_free(b);
}

/*
 * A client handshake on fd verifying the peer against trust (a CA store) and name (DNS name or
 * IP address) as verify-full does; cert/key (files, optional) shown when the peer asks.
 */
static bool tls_probe(int fd, X509_STORE *trust, const char *name, const char *cert_file,
                      const char *key_file, struct tls_seen *seen, char *err, size_t errlen)
{
    bool ok = false;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    X509_STORE_up_ref(trust);
    SSL_CTX_set_cert_store(ctx, trust);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cert_file != NULL && (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
                              SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)) {
        char buf[256];
        ERR_error_string_n(ERR_peek_last_error(), buf, sizeof(buf));
        snprintf(err, errlen, "cannot load --backend-tls-cert/--backend-tls-key: %s", buf);
        ERR_clear_error();
        goto out;
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    enum dbt_pki_endpoint_kind k = dbt_pki_endpoint_kind(name);
    if (k == DBT_PKI_ENDPOINT_IPV4 || k == DBT_PKI_ENDPOINT_IPV6) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    } else {
        SSL_set1_host(ssl, name);
        SSL_set_tlsext_host_name(ssl, name);
    }
    SSL_set_fd(ssl, fd);
    errno = 0;
    if (SSL_connect(ssl) != 1) {
        tls_error(ssl, err, errlen);
        goto out;
    }
    snprintf(seen->version, sizeof(seen->version), "%s", SSL_get_version(ssl));
    snprintf(seen->cipher, sizeof(seen->cipher), "%s", SSL_get_cipher_name(ssl));
    peer_sha1(SSL_get0_peer_certificate(ssl), seen->sha1);
    chain_seen(ssl, seen);
    SSL_shutdown(ssl);
    ok = true;
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return ok;
}

/* A store with every certificate of a PEM text (the instance's server-ca.pem). */
static X509_STORE *store_from_pem(const char *pem)
{
    X509_STORE *st = X509_STORE_new();
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x;
    while (st != NULL && b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(st, x);
        X509_free(x);
    }
    ERR_clear_error(); /* the end of the text */
    BIO_free(b);
    return st;
}

/* ---- the checks ---- */

static void check_certificate(struct report *r, const struct dbt_ctl_instance *in)
{
    int64_t now = (int64_t)time(NULL);
    const struct dbt_ctl_cert *c = &in->server_cert;
    char till[32];
    dbt_time_rfc3339(c->expiration_time, till, sizeof(till));
    int64_t left = c->expiration_time - now;
    if (left <= 0) {
        row(r, "server-certificate", "failed",
            "serial %s expired at %s: clients refuse it; dbtls ssl server-certs create, then "
            "rotate",
            c->cert_serial_number, till);
    } else if (c->not_before > now) {
        row(r, "server-certificate", "failed", "serial %s is not valid before %s",
            c->cert_serial_number, till);
    } else if (left < (int64_t)WARN_DAYS * 86400) {
        row(r, "server-certificate", "warning",
            "serial %s expires at %s (in %lld h): create and rotate to a new one",
            c->cert_serial_number, till, (long long)(left / 3600));
    } else {
        row(r, "server-certificate", "ok", "serial %s valid until %s (%lld days)",
            c->cert_serial_number, till, (long long)(left / 86400));
    }
}

static void check_dns(struct report *r, const struct dbt_ctl_instance *in)
{
    for (size_t i = 0; i < in->n_endpoints; i++) {
        const char *name = in->endpoints[i];
        if (dbt_pki_endpoint_kind(name) != DBT_PKI_ENDPOINT_DNS) {
            continue;
        }
        char check[300];
        snprintf(check, sizeof(check), "dns %s", name);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(name, NULL, &hints, &res);
        if (gai != 0) {
            row(r, check, "warning",
                "does not resolve here (%s): clients that verify-full against this name need it "
                "in their DNS or hosts file",
                gai_strerror(gai));
            continue;
        }
        char list[256] = "";
        size_t used = 0;
        for (struct addrinfo *ai = res; ai != NULL && used < sizeof(list) - 50; ai = ai->ai_next) {
            char num[INET6_ADDRSTRLEN];
            if (getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof(num), NULL, 0,
                            NI_NUMERICHOST) == 0 &&
                strstr(list, num) == NULL) {
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                                         num);
            }
        }
        freeaddrinfo(res);
        row(r, check, "ok", "resolves to %s", list);
    }
}

/* The CA certificates clients verify the front's certificate through (check_front's handshake). */
static void check_chain(struct report *r, const struct dbt_ctl_instance *in,
                        const struct tls_seen *seen)
{
    if (seen->n_cas == 0) {
        return;
    }
    int64_t left = seen->ca_ends - (int64_t)time(NULL);
    char till[32];
    dbt_time_rfc3339(seen->ca_ends, till, sizeof(till));
    if (left < (int64_t)CA_WARN_DAYS * 86400) {
        bool per_instance = in->ca_mode != NULL && strcmp(in->ca_mode, "per-instance") == 0;
        row(r, "trust-chain", "warning",
            "CA certificate %s ends at %s (in %lld days): clients stop trusting this instance's "
            "certificates then; %s",
            seen->ca_subject, till, (long long)(left / 86400),
            per_instance ? "add the next server CA (dbtls ssl server-ca-certs create), give "
                           "clients server-ca.pem, then rotate"
                         : "move the instance to a CA that lasts (dbtls instances patch NAME "
                           "--ca ID), or take your own CA's renewal (dbtls cas renew)");
    } else {
        row(r, "trust-chain", "ok", "%d CA certificate%s verified; the first to end: %s at %s",
            seen->n_cas, seen->n_cas == 1 ? "" : "s", seen->ca_subject, till);
    }
}

static void check_front(struct report *r, const struct dbt_ctl_instance *in, const char *ca_pem,
                        int ms)
{
    char err[512], version[128] = "";
    int fd = -1;
    if (!dial(in->listen, ms, &fd, err, sizeof(err))) {
        row(r, "front", "failed", "%s: is dbtlsd running with this state directory?", err);
        return;
    }
    bool ok = is_mysql(in->engine)
                  ? my_greeting(fd, true, version, sizeof(version), err, sizeof(err))
                  : pg_request_tls(fd, err, sizeof(err));
    if (!ok) {
        row(r, "front", "failed", "%s: %s", in->listen, err);
        close(fd);
        return;
    }
    X509_STORE *trust = store_from_pem(ca_pem);
    struct tls_seen seen = {0};
    const char *name = in->n_endpoints > 0 ? in->endpoints[0] : "";
    ok = trust != NULL && tls_probe(fd, trust, name, NULL, NULL, &seen, err, sizeof(err));
    X509_STORE_free(trust);
    close(fd);
    if (!ok) {
        row(r, "front", "failed",
            "%s: %s (verified as sslmode=verify-full does: server-ca.pem, host %s)", in->listen,
            err, name);
    } else if (in->server_cert.sha1_fingerprint != NULL &&
               strcmp(seen.sha1, in->server_cert.sha1_fingerprint) != 0) {
        row(r, "front", "warning",
            "%s serves certificate sha1 %s, not the active one (%s): dbtlsd has not loaded the "
            "latest change yet (its log says why), or another server listens there",
            in->listen, seen.sha1, in->server_cert.sha1_fingerprint);
    } else {
        row(r, "front", "ok", "%s: %s %s, the active certificate, verified for %s", in->listen,
            seen.version, seen.cipher, name);
    }
    if (ok) {
        check_chain(r, in, &seen);
    }
}

/* The backend's host name for verify-full (dbtlsd checks the same one): "" for a socket. */
static void backend_host(const char *backend, char *out, size_t outlen)
{
    char *host = NULL;
    int port = 0;
    out[0] = '\0';
    if (backend[0] != '/' && dbt_ctl_split_hostport(backend, &host, &port)) {
        snprintf(out, outlen, "%s", host);
    }
    free(host);
}

static void check_backend(struct report *r, const struct dbt_ctl_instance *in, int ms)
{
    char err[512], version[128] = "", what[192] = "";
    int fd = -1;
    bool tls = in->backend_tls_ca != NULL && in->backend_tls_ca[0] != '\0';
    X509_STORE *trust = NULL;
    if (tls) {
        trust = X509_STORE_new();
        if (trust == NULL || X509_STORE_load_file(trust, in->backend_tls_ca) != 1) {
            ERR_clear_error();
            row(r, "backend", "failed",
                "cannot read --backend-tls-ca \"%s\": dbtlsd cannot load this instance either "
                "(its log says why)",
                in->backend_tls_ca);
            X509_STORE_free(trust);
            return;
        }
    }
    bool ok = dial(in->backend, ms, &fd, err, sizeof(err));
    if (!ok) {
        row(r, "backend", "failed",
            "%s: new connections get \"could not connect to the database server\"", err);
        X509_STORE_free(trust);
        return;
    }
    if (is_mysql(in->engine)) {
        ok = my_greeting(fd, tls, version, sizeof(version), err, sizeof(err));
        snprintf(what, sizeof(what), ", server %s", version);
    } else if (tls) {
        ok = pg_request_tls(fd, err, sizeof(err));
    }
    if (ok && tls) {
        char host[256];
        backend_host(in->backend, host, sizeof(host));
        const char *cert =
            in->backend_tls_cert && *in->backend_tls_cert ? in->backend_tls_cert : NULL;
        struct tls_seen seen = {0};
        ok = tls_probe(fd, trust, host, cert, in->backend_tls_key, &seen, err, sizeof(err));
        if (ok) {
            size_t u = strlen(what);
            snprintf(what + u, sizeof(what) - u, ", %s %s verified against %s", seen.version,
                     seen.cipher, in->backend_tls_ca);
        }
    }
    X509_STORE_free(trust);
    close(fd);
    if (!ok) {
        row(r, "backend", "failed", "%s: %s", in->backend, err);
    } else {
        row(r, "backend", "ok", "%s accepts connections%s", in->backend, what);
    }
}

static int run_check(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_instance in = {0};
    char *ca_pem = NULL;
    struct report rep = {.rows = json_array()};
    int ms = 5000;
    const char *t = dbt_cli_get(c, "timeout");
    if (t != NULL) {
        char *end = NULL;
        long v = strtol(t, &end, 10);
        if (end == t || *end != '\0' || v < 1 || v > 300) {
            json_decref(rep.rows);
            return dbt_cli_usage_error(c->cmd,
                                       "--timeout: expected whole seconds from 1 to 300, "
                                       "got \"%s\"",
                                       t);
        }
        ms = (int)v * 1000;
    }
    DBT_ENSURE(rep.rows != NULL, NOMEM, "out of memory");
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_describe(ctl, c->positional, &in));
    DBT_TRY(dbt_ctl_server_ca_download(ctl, c->positional, &ca_pem));
    check_certificate(&rep, &in);
    check_dns(&rep, &in);
    check_front(&rep, &in, ca_pem, ms);
    check_backend(&rep, &in, ms);
    dbt_cli_print_list(c, rep.rows, dbt_cli_cols_check);
    if (rep.failed > 0) {
        res = dbt_fail(DBT_E_INVALID, "instance \"%s\": %d check%s failed", c->positional,
                       rep.failed, rep.failed == 1 ? "" : "s");
    }
out:
    json_decref(rep.rows);
    free(ca_pem);
    dbt_ctl_instance_cleanup(&in);
    return dbt_cli_finish(c, res);
}

static const struct dbt_cli_opt check_opts[] = {
    {"timeout", "SECONDS", "bound on each connection and answer (default 5)", false, false},
    {0},
};

const struct dbt_cli_cmd dbt_cli_cmds_check[] = {
    {"instances check", "NAME", false,
     "try the instance as a client would: certificate, DNS, the front's TLS, the backend",
     check_opts, run_check, false},
    {0},
};
