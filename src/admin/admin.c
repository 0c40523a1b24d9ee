/*
 * admin.c - the listeners of the admin API (admin.h): the 0600 unix socket and the optional TCP
 * listener with mutual TLS (libmicrohttpd over GnuTLS; the client certificate is verified here
 * against the admin CA and its CRL (trust.c), with the clientAuth purpose: a revoked one during
 * the TLS handshake, anything else before any handler runs), request bodies collected up to a
 * limit, and the reply. Routing and resources are in api.c.
 */
#include "admin/admin.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>

#include "admin/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "ctl/admin_ca.h"
#include "ctl/ctl.h"

/*
 * Control handles for the request threads. A handle is used by one thread at a time (ctl.h), and
 * each connection has its own thread (so a slow operation, e.g. an RSA-4096 CA, never holds up
 * another request): handles are taken from this pool per request and given back after it,
 * opened lazily (opening may run --master-key-command, so they are kept, not reopened).
 *
 * Writes run concurrently too, each on its own handle, as they would from separate dbtls
 * processes: they serialize on the store's write lock, which every ctl operation takes only
 * after generating its keys (ctl/keys.c) and holds for milliseconds, and for which a blocked
 * writer waits (SQLite busy timeout, PostgreSQL lock_timeout: 10 s) instead of failing. No write
 * path upgrades a read transaction (that would fail with SQLITE_BUSY at once, without waiting):
 * each begins its write transaction with BEGIN IMMEDIATE. So one admin's RSA-4096 key never
 * holds up another admin's change.
 */
#define POOL_MAX 64

struct ctl_pool {
    pthread_mutex_t mu;
    bool enabled; /* false: no control plane (only /v1/connections) */
    char *state_dir;
    char *master_key_command;
    struct dbt_ctl *free[POOL_MAX];
    size_t n_free;
};

/* One HTTP listener: its MHD daemon (a thread per connection) and the shared handle pool. */
struct listener {
    struct dbt_admin_ctx ctx; /* front; ctl stays NULL (handles come from the pool) */
    struct ctl_pool *pool;
    struct MHD_Daemon *mhd;
    bool tls;
    bool health; /* plain HTTP, read-only routes only (health.c) */
    size_t max_body;
    struct dbt_admin_trust *trust; /* tls: the admin CA + CRL clients are verified against */
};

struct dbt_admin {
    struct ctl_pool pool;
    struct listener unix_l;
    struct listener tcp_l;
    struct listener health_l;
    int tcp_port;
    int health_port;
    char *path;
    char *admin_ca_pem; /* what the TCP listener's clients must be issued by */
    bool tcp_cert;      /* tcp_cert.c holds the listener's certificate */
    struct dbt_admin_trust *trust;
};

static json_t *str_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

char *dbt_admin_connections_json(const struct dbt_conn_row *rows, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct dbt_session_status *st = &rows[i].st;
        char start[32];
        dbt_time_rfc3339(st->backend_start, start, sizeof(start));
        json_t *o = json_object();
        json_object_set_new(o, "instance", json_string(st->instance));
        json_object_set_new(o, "client_addr", json_string(st->client_addr));
        json_object_set_new(o, "client_port", json_integer(st->client_port));
        json_object_set_new(o, "user", str_or_null(st->user));
        json_object_set_new(o, "database", str_or_null(st->database));
        json_object_set_new(o, "application_name", json_string(st->application_name));
        json_object_set_new(o, "ssl", json_boolean(st->ssl));
        json_object_set_new(o, "version", str_or_null(st->version));
        json_object_set_new(o, "cipher", str_or_null(st->cipher));
        json_object_set_new(o, "bits", st->ssl ? json_integer(st->bits) : json_null());
        json_object_set_new(o, "client_dn", str_or_null(rows[i].cert.client_dn));
        json_object_set_new(o, "client_serial", str_or_null(rows[i].cert.client_serial));
        json_object_set_new(o, "issuer_dn", str_or_null(rows[i].cert.issuer_dn));
        json_object_set_new(o, "server_cert_sha1", str_or_null(st->server_cert_sha1));
        json_object_set_new(o, "server_name", str_or_null(st->server_name));
        json_object_set_new(o, "backend_start", json_string(start));
        json_object_set_new(o, "state", json_string(st->state));
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)rows[i].bytes_in));
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)rows[i].bytes_out));
        json_object_set_new(o, "buffer_bytes", json_integer((json_int_t)rows[i].buffered));
        json_array_append_new(list, o);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "connections", list);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static dbt_res pool_get(struct ctl_pool *p, struct dbt_ctl **out)
{
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->n_free > 0) {
        *out = p->free[--p->n_free];
    }
    pthread_mutex_unlock(&p->mu);
    if (*out != NULL) {
        return DBT_OK;
    }
    struct dbt_ctl_opts co = {.state_dir = p->state_dir,
                              .master_key_command = p->master_key_command,
                              .read_only = 0,
                              .actor = "admin-api"};
    dbt_res r = dbt_ctl_open(&co, out);
    return dbt_ok(r) ? r : dbt_fail_ctx(r, "admin API: ");
}

static void pool_put(struct ctl_pool *p, struct dbt_ctl *ctl)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_free < POOL_MAX) {
        p->free[p->n_free++] = ctl;
        ctl = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (ctl != NULL) {
        dbt_ctl_close(ctl);
    }
}

/* The state of one request across libmicrohttpd's calls: the body so far and who sent it. */
struct req {
    char *body;
    size_t len;
    bool too_big;
    char actor[160];
};

/* The unix socket's peer as "admin-api:<user>" (SO_PEERCRED), for the events. */
static void unix_actor(struct MHD_Connection *c, char *out, size_t size)
{
    snprintf(out, size, "admin-api");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (ci == NULL || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
        return;
    }
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
        snprintf(out, size, "admin-api:%s", res->pw_name);
    } else {
        snprintf(out, size, "admin-api:uid=%u", (unsigned)cred.uid);
    }
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct dbt_admin_reply *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL;
    MHD_add_response_header(resp, "Content-Type",
                            r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->allow != NULL) {
        MHD_add_response_header(resp, "Allow", r->allow);
    }
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    struct dbt_admin_reply r = {0};
    dbt_admin_error(&r, status, "%s", msg);
    return send_reply(c, &r);
}

/* Logs a refused TCP client naming its certificate (subject, serial) and why. */
static void log_refused(const char *when, const gnutls_datum_t *leaf, unsigned status,
                        const char *why)
{
    char subject[256], serial[80];
    gnutls_datum_t text = {0};
    dbt_admin_peer_describe(leaf, subject, sizeof(subject), serial, sizeof(serial));
    if (status != 0 &&
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
        int len = (int)text.size;
        while (len > 0 && (text.data[len - 1] == ' ' || text.data[len - 1] == '\0')) {
            len--; /* GnuTLS ends each sentence with a blank */
        }
        dbt_warn("admin API: refused a TCP client %s: certificate \"%s\" (serial %s): %s (%.*s)",
                 when, subject, serial, why, len, (const char *)text.data);
        gnutls_free(text.data);
    } else {
        dbt_warn("admin API: refused a TCP client %s: certificate \"%s\" (serial %s): %s", when,
                 subject, serial, why);
    }
}

/*
 * After the alert, before libmicrohttpd closes the socket: a TLS 1.3 client sends its request
 * right after its Finished, and closing with those bytes unread makes the kernel answer with a
 * RST that can overtake the alert (the client then sees a bare reset instead of "certificate
 * revoked"). So, as HTTP servers do for a lingering close, send FIN and drop what arrives until
 * the client closes, for at most LINGER_MS (on this connection's own thread).
 */
#define LINGER_MS 250

static void linger(gnutls_session_t s)
{
    int rfd = -1, wfd = -1;
    gnutls_transport_get_int2(s, &rfd, &wfd);
    if (rfd < 0 || wfd < 0) {
        return;
    }
    shutdown(wfd, SHUT_WR);
    uint64_t end = dbt_now_ms() + LINGER_MS;
    char buf[4096];
    for (uint64_t now = dbt_now_ms(); now < end; now = dbt_now_ms()) {
        struct pollfd p = {.fd = rfd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0) {
            return;
        }
        ssize_t n = recv(rfd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            return;
        }
    }
}

/*
 * GnuTLS calls this during the handshake, once the client's Certificate message is in. A
 * certificate the admin CA revoked (`dbtls admin-certs revoke`) ends the handshake with a
 * certificate_revoked alert, so a leaked admin key never gets as far as HTTP. Anything else is
 * left to check_client_cert, which answers with an HTTP error that says what to do (no
 * certificate, another CA, expired). MHD keeps the connection as the session's pointer and the
 * listener as its socket context (notify_connection).
 */
static int verify_handshake(gnutls_session_t s)
{
    struct MHD_Connection *c = gnutls_session_get_ptr(s);
    const union MHD_ConnectionInfo *ci =
        c != NULL ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    struct listener *l = ci != NULL ? ci->socket_context : NULL;
    unsigned n = 0, status = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (l == NULL || l->trust == NULL || peers == NULL || n == 0) {
        return 0;
    }
    dbt_res r = dbt_admin_trust_verify(l->trust, peers, n, &status);
    if (dbt_ok(r) && (status & GNUTLS_CERT_REVOKED) != 0) {
        log_refused("during the TLS handshake", &peers[0], status,
                    "revoked by the admin CA (dbtls admin-certs revoke)");
        if (gnutls_alert_send(s, GNUTLS_AL_FATAL, GNUTLS_A_CERTIFICATE_REVOKED) == 0) {
            linger(s);
        }
        return -1;
    }
    return 0;
}

/* Installs verify_handshake on each new TLS connection of the TCP listener. */
/* libmicrohttpd's own messages ("Error: received handshake message out of context." after each
 * refused TLS handshake, which this file logs itself with the reason) go to the daemon's log at
 * debug level instead of raw lines on stderr. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    dbt_debug("admin API (libmicrohttpd): %s", msg);
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    static bool warned;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) {
        return;
    }
    *socket_context = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s = ci != NULL ? (gnutls_session_t)ci->tls_session : NULL;
    if (s != NULL && gnutls_session_get_ptr(s) == c) {
        gnutls_session_set_verify_function(s, verify_handshake);
    } else if (!warned) {
        /* Another libmicrohttpd layout: revoked certificates are then refused with 403 by
           check_client_cert instead of during the handshake. */
        warned = true;
        dbt_warn("admin API: cannot check client certificates during the TLS handshake with "
                 "this libmicrohttpd; a revoked one is refused at its first request");
    }
}

/*
 * The TCP listener admits only clients whose certificate chains to the admin CA, is not revoked
 * (its CRL, trust.c) and carries the clientAuth purpose. GnuTLS only *requests* a client
 * certificate during the handshake, so the check is made here, before any handler runs, for
 * every request (a kept-alive connection is cut off by a revocation too).
 * Returns 0 when the client is admitted, else the HTTP status to refuse with (*why says why).
 */
static unsigned check_client_cert(const struct listener *l, struct MHD_Connection *c,
                                  const char **why, char *cn, size_t cn_size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL) {
        *why = "this listener requires TLS";
        return 401;
    }
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (peers == NULL || n == 0) {
        *why = "a client certificate issued by the dbtls admin CA is required "
               "(dbtls admin-certs create NAME --out-dir DIR)";
        dbt_warn("admin API: refused a TCP client: %s", *why);
        return 401;
    }
    unsigned status = 0;
    dbt_res r = dbt_admin_trust_verify(l->trust, peers, n, &status);
    if (!dbt_ok(r) || status != 0) {
        *why = (status & GNUTLS_CERT_REVOKED) != 0
                   ? "the client certificate was revoked (dbtls admin-certs list)"
                   : "the client certificate was not issued by the dbtls admin CA for client "
                     "authentication, or it has expired";
        log_refused("at its request", &peers[0], status, *why);
        return 403;
    }
    /* Who acts, for the events: the verified certificate's CN. */
    gnutls_x509_crt_t crt = NULL;
    size_t len = cn_size;
    cn[0] = '\0';
    if (gnutls_x509_crt_init(&crt) == 0) {
        if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) != 0 ||
            gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) != 0) {
            cn[0] = '\0';
        }
        gnutls_x509_crt_deinit(crt);
    }
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct listener *l = cls;
    struct req *rq = *con_cls;

    if (rq == NULL && l->health) {
        /* read-only: answered from the headers, a body is never read */
        struct dbt_admin_reply r = {0};
        struct dbt_admin_ctx ctx = {.front = l->ctx.front};
        dbt_errclear();
        bool metrics = strcmp(url, "/metrics") == 0 && l->pool->enabled;
        if (metrics && !dbt_ok(pool_get(l->pool, &ctx.ctl))) {
            dbt_error("%s", dbt_errmsg());
            return send_error(c, 500, dbt_errmsg());
        }
        dbt_admin_health(&ctx, method, url, &r);
        if (ctx.ctl != NULL) {
            pool_put(l->pool, ctx.ctl);
        }
        return send_reply(c, &r);
    }
    if (rq == NULL) {
        /* First call: headers only. Refuse early what will be refused anyway. */
        char cn[128] = "";
        if (l->tls) {
            const char *why = NULL;
            unsigned st = check_client_cert(l, c, &why, cn, sizeof(cn));
            if (st != 0) {
                return send_error(c, st, why);
            }
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > l->max_body) {
            char msg[128];
            snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes", l->max_body);
            return send_error(c, 413, msg);
        }
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        if (l->tls) {
            snprintf(rq->actor, sizeof(rq->actor), "admin:%s", cn[0] ? cn : "?");
        } else {
            unix_actor(c, rq->actor, sizeof(rq->actor));
        }
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Enforced while receiving: nothing past the limit is kept. */
        if (!rq->too_big && rq->len + *upload_size <= l->max_body) {
            char *nb = realloc(rq->body, rq->len + *upload_size + 1);
            if (nb == NULL) {
                return MHD_NO;
            }
            memcpy(nb + rq->len, upload, *upload_size);
            rq->body = nb;
            rq->len += *upload_size;
        } else {
            rq->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_big) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes", l->max_body);
        return send_error(c, 413, msg);
    }
    struct dbt_admin_reply r = {0};
    struct dbt_admin_ctx ctx = {.front = l->ctx.front};
    dbt_errclear();
    if (l->pool->enabled) {
        if (!dbt_ok(pool_get(l->pool, &ctx.ctl))) {
            dbt_error("%s", dbt_errmsg());
            return send_error(c, 500, dbt_errmsg());
        }
        dbt_ctl_set_actor(ctx.ctl, rq->actor);
    }
    dbt_admin_api_handle(&ctx, c, method, url, rq->body ? rq->body : "", rq->len, &r);
    if (ctx.ctl != NULL) {
        pool_put(l->pool, ctx.ctl);
    }
    if (r.body == NULL) {
        dbt_admin_error(&r, 500, "the handler gave no reply");
    }
    if (strcmp(method, "GET") != 0) {
        dbt_info("admin API: %s %s -> %u (%s)", method, url, r.status, rq->actor);
    }
    return send_reply(c, &r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct req *rq = *con_cls;
    if (rq != NULL) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static dbt_res unix_socket(const char *path, int *out)
{
    dbt_res res = DBT_OK;
    int fd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    DBT_ENSURE(strlen(path) < sizeof(sa.sun_path), INVALID,
               "admin socket path \"%s\" is too long (max %zu bytes)", path,
               sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat stbuf;
    if (lstat(path, &stbuf) == 0) {
        DBT_ENSURE(S_ISSOCK(stbuf.st_mode), EXISTS,
                   "admin socket path \"%s\" exists and is not a socket", path);
        /* a live daemon answers a connect: refuse to steal its socket */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0) {
            close(probe);
        }
        DBT_ENSURE(!live, EXISTS, "admin socket \"%s\" is in use by another dbtlsd", path);
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    DBT_ENSURE(fd >= 0, IO, "admin socket: %s", strerror(errno));
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    DBT_ENSURE(rc == 0, IO, "admin socket \"%s\": bind: %s", path, strerror(e));
    DBT_ENSURE(chmod(path, 0600) == 0, IO, "admin socket \"%s\": chmod: %s", path, strerror(errno));
    DBT_ENSURE(listen(fd, 64) == 0, IO, "admin socket \"%s\": listen: %s", path, strerror(errno));
    *out = fd;
    fd = -1;
out:
    if (fd >= 0) {
        close(fd);
    }
    return res;
}

/* "host:port" / "[v6]:port" -> host (without brackets) and port. */
static dbt_res split_listen(const char *opt, const char *s, char *host, size_t hostsz, char *port,
                            size_t portsz)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':') {
            return dbt_fail(DBT_E_INVALID, "%s \"%s\": expected [IPv6]:PORT", opt, s);
        }
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || strchr(s, ':') != colon) {
            return dbt_fail(DBT_E_INVALID, "%s \"%s\": expected HOST:PORT", opt, s);
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostsz || strlen(colon + 1) == 0 || strlen(colon + 1) >= portsz ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535) {
        return dbt_fail(DBT_E_INVALID, "%s \"%s\": expected HOST:PORT", opt, s);
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return DBT_OK;
}

static dbt_res tcp_socket(const char *opt, const char *listen_addr, char *host, size_t hostsz,
                          int *out, int *port_out)
{
    dbt_res res = DBT_OK;
    char port[8];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int fd = -1;
    DBT_TRY(split_listen(opt, listen_addr, host, hostsz, port, sizeof(port)));
    int gai = getaddrinfo(host, port, &hints, &ai);
    DBT_ENSURE(gai == 0, INVALID, "%s \"%s\": %s", opt, listen_addr, gai_strerror(gai));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    DBT_ENSURE(fd >= 0, IO, "%s \"%s\": socket: %s", opt, listen_addr, strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    DBT_ENSURE(bind(fd, ai->ai_addr, ai->ai_addrlen) == 0, IO, "%s \"%s\": bind: %s", opt,
               listen_addr, strerror(errno));
    DBT_ENSURE(listen(fd, 64) == 0, IO, "%s \"%s\": listen: %s", opt, listen_addr, strerror(errno));
    struct sockaddr_storage ss = {0};
    socklen_t sl = sizeof(ss);
    DBT_ENSURE(getsockname(fd, (struct sockaddr *)&ss, &sl) == 0, IO, "%s \"%s\": getsockname: %s",
               opt, listen_addr, strerror(errno));
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *out = fd;
    fd = -1;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    return res;
}

static bool is_wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || host[0] == '\0';
}

dbt_res dbt_admin_start_opts(const struct dbt_admin_opts *o, struct dbt_admin **out)
{
    dbt_res res = DBT_OK;
    int fd = -1, tfd = -1, hfd = -1;
    char host[256];
    struct dbt_admin *a = calloc(1, sizeof(*a));
    DBT_ENSURE(a != NULL, NOMEM, "admin: out of memory");
    pthread_mutex_init(&a->pool.mu, NULL);
    size_t max_body = o->max_body ? o->max_body : DBT_ADMIN_MAX_BODY;
    a->path = strdup(o->socket_path);
    DBT_ENSURE(a->path != NULL, NOMEM, "admin: out of memory");
    a->unix_l.ctx.front = o->front;
    a->unix_l.pool = &a->pool;
    a->unix_l.max_body = max_body;
    a->tcp_l.ctx.front = o->front;
    a->tcp_l.pool = &a->pool;
    a->tcp_l.max_body = max_body;
    a->tcp_l.tls = true;
    if (o->ctl != NULL) {
        a->pool.enabled = true;
        a->pool.state_dir = strdup(o->ctl->state_dir);
        DBT_ENSURE(a->pool.state_dir != NULL, NOMEM, "admin: out of memory");
        if (o->ctl->master_key_command != NULL) {
            a->pool.master_key_command = strdup(o->ctl->master_key_command);
            DBT_ENSURE(a->pool.master_key_command != NULL, NOMEM, "admin: out of memory");
        }
        /* Open one handle now: a store that cannot be opened refuses the start. */
        struct dbt_ctl *first = NULL;
        DBT_TRY(pool_get(&a->pool, &first));
        pool_put(&a->pool, first);
    }
    const unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                           MHD_USE_POLL | MHD_USE_ERROR_LOG;

    if (o->tcp_listen != NULL) {
        DBT_ENSURE(o->ctl != NULL, INVALID, "--admin-listen needs the control plane");
        DBT_TRY(
            tcp_socket("--admin-listen", o->tcp_listen, host, sizeof(host), &tfd, &a->tcp_port));
        const char *hosts[4];
        size_t nh = 0;
        if (!is_wildcard(host) && strcmp(host, "localhost") != 0 &&
            strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0) {
            hosts[nh++] = host;
        }
        hosts[nh++] = "localhost";
        hosts[nh++] = "127.0.0.1";
        hosts[nh++] = "::1";
        struct dbt_ctl *ctl = NULL;
        DBT_TRY(pool_get(&a->pool, &ctl));
        res = dbt_admin_tcp_cert_init(ctl, hosts, nh, o->tcp_cert_validity_secs, &a->admin_ca_pem);
        a->tcp_cert = true; /* cleanup also undoes a half-done init */
        pool_put(&a->pool, ctl);
        DBT_TRY(res);
        DBT_TRY(dbt_admin_trust_start(o->ctl, &a->trust));
        a->tcp_l.trust = a->trust;
        a->tcp_l.mhd = MHD_start_daemon(
            flags | MHD_USE_TLS, 0, NULL, NULL, handle, &a->tcp_l, MHD_OPTION_LISTEN_SOCKET, tfd,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned int)64, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
            /* asked for in every handshake: renewed at half-life without a restart */
            MHD_OPTION_HTTPS_CERT_CALLBACK, dbt_admin_tcp_cert_retrieve, MHD_OPTION_HTTPS_MEM_TRUST,
            a->admin_ca_pem, MHD_OPTION_HTTPS_PRIORITIES,
            "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_NOTIFY_CONNECTION,
            notify_connection, &a->tcp_l, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_END);
        DBT_ENSURE(a->tcp_l.mhd != NULL, IO, "--admin-listen \"%s\": cannot start the HTTPS server",
                   o->tcp_listen);
        tfd = -1; /* owned by MHD */
    }

    if (o->health_listen != NULL) {
        a->health_l.ctx.front = o->front;
        a->health_l.pool = &a->pool;
        a->health_l.health = true;
        DBT_TRY(tcp_socket("--health-listen", o->health_listen, host, sizeof(host), &hfd,
                           &a->health_port));
        a->health_l.mhd = MHD_start_daemon(
            flags, 0, NULL, NULL, handle, &a->health_l, MHD_OPTION_LISTEN_SOCKET, hfd,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned int)64, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
        DBT_ENSURE(a->health_l.mhd != NULL, IO,
                   "--health-listen \"%s\": cannot start the HTTP server", o->health_listen);
        hfd = -1; /* owned by MHD */
    }

    DBT_TRY(unix_socket(o->socket_path, &fd));
    a->unix_l.mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, &a->unix_l,
                                     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
                                     (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
                                     (unsigned int)64, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    DBT_ENSURE(a->unix_l.mhd != NULL, IO, "admin socket \"%s\": cannot start the HTTP server",
               o->socket_path);
    fd = -1; /* owned by MHD */
    *out = a;
    a = NULL;
out:
    if (fd >= 0) {
        close(fd);
        unlink(o->socket_path);
    }
    if (tfd >= 0) {
        close(tfd);
    }
    if (hfd >= 0) {
        close(hfd);
    }
    if (a != NULL) {
        free(a->path);
        a->path = NULL;
        dbt_admin_stop(a);
    }
    return res;
}

dbt_res dbt_admin_start(struct dbt_front *front, const char *path, struct dbt_admin **out)
{
    struct dbt_admin_opts o = {.front = front, .socket_path = path};
    return dbt_admin_start_opts(&o, out);
}

int dbt_admin_tcp_port(const struct dbt_admin *a)
{
    return a != NULL ? a->tcp_port : 0;
}

int dbt_admin_health_port(const struct dbt_admin *a)
{
    return a != NULL ? a->health_port : 0;
}

void dbt_admin_stop(struct dbt_admin *a)
{
    if (a == NULL) {
        return;
    }
    if (a->tcp_l.mhd != NULL) {
        MHD_stop_daemon(a->tcp_l.mhd);
    }
    if (a->unix_l.mhd != NULL) {
        MHD_stop_daemon(a->unix_l.mhd);
    }
    if (a->health_l.mhd != NULL) {
        MHD_stop_daemon(a->health_l.mhd);
    }
    dbt_admin_trust_stop(a->trust); /* after the TCP listener: its threads verify with it */
    if (a->path != NULL) {
        unlink(a->path);
    }
    for (size_t i = 0; i < a->pool.n_free; i++) {
        dbt_ctl_close(a->pool.free[i]);
    }
    free(a->pool.state_dir);
    free(a->pool.master_key_command);
    pthread_mutex_destroy(&a->pool.mu);
    if (a->tcp_cert) {
        dbt_admin_tcp_cert_cleanup();
    }
    free(a->admin_ca_pem);
    free(a->path);
    free(a);
}
