/*
 * probe.c - is an instance's backend answering? (front.h, dbt_front_probe) For the health
 * listener (admin/health.c), on its request thread: connects to the backend of the instance in
 * the current generation as a session would (TCP or unix socket, the address resolved when the
 * generation was built) and waits for the database server itself to answer, without logging in
 * and without a line in the server's log:
 *   PostgreSQL: a CancelRequest for no backend (pid 0). The postmaster forks, finds no such
 *     process and closes the connection, silently (only DEBUG2 says so); EOF is the answer.
 *   MySQL/MariaDB: the server's first packet, its greeting (the version is reported), or an ERR
 *     such as 1040 "Too many connections" or 1129 "Host ... is blocked", which is the failure.
 *     MariaDB logs the probe as an "Aborted connection" warning (log_warnings >= 2, its default)
 *     and MySQL counts it in Aborted_connects: there is no silent way in without credentials.
 *     With --health-user the probe logs in instead (login_my), over TLS when the instance has
 *     TLS on its backend leg, as its sessions' backend legs are.
 * So what sessions see counts first: a backend reached by a session (or a probe) within the last
 * FRESH_MS, with no failure since, is healthy without a probe; a failure makes every check probe
 * until one succeeds (so a backend back up is seen at the next check). An idle instance is
 * probed at most once per FRESH_MS per dbtlsd; a busy one never.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "front/front_int.h"
#include "front/stats.h"
#include "net/net.h"
#include "proto/my/my.h"
#include "proto/pg/pg.h"
#include "tls/tls.h"

#define FRESH_MS 30000

/* ---- what sessions and probes saw of each instance's backend ---- */

struct seen {
    char instance[64];
    uint64_t ok_ms, fail_ms; /* monotonic; 0 = never */
    /* an outage: from the first failed connection after a working one (or none) to the next
       working one; failed connections in it after the first are logged at debug level only */
    bool down;
    uint64_t down_ms, down_failed;
};
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen *seen;
static size_t n_seen;

void dbt_front_backend_seen(const char *instance, bool ok)
{
    dbt_stats_backend(instance, ok);
    uint64_t now = dbt_now_ms();
    bool went_down = false, came_back = false;
    uint64_t down_s = 0, failed = 0;
    pthread_mutex_lock(&seen_lock);
    struct seen *e = NULL;
    for (size_t i = 0; i < n_seen && e == NULL; i++) {
        if (strcmp(seen[i].instance, instance) == 0) {
            e = &seen[i];
        }
    }
    if (e == NULL) {
        struct seen *nv = realloc(seen, (n_seen + 1) * sizeof(*nv));
        if (nv != NULL) {
            seen = nv;
            e = &seen[n_seen++];
            memset(e, 0, sizeof(*e));
            snprintf(e->instance, sizeof(e->instance), "%s", instance);
        }
    }
    if (e != NULL) {
        *(ok ? &e->ok_ms : &e->fail_ms) = now;
        if (!ok) {
            went_down = !e->down;
            if (went_down) {
                e->down = true;
                e->down_ms = now;
                e->down_failed = 0;
            }
            e->down_failed++;
        } else if (e->down) {
            came_back = true;
            e->down = false;
            down_s = (now - e->down_ms) / 1000;
            failed = e->down_failed;
        }
    }
    pthread_mutex_unlock(&seen_lock);
    /* once per outage, not once per client: a busy instance's clients retry by the thousand */
    if (went_down) {
        dbt_warn("instance \"%s\": the backend does not answer; until it does, further failed "
                 "connections are logged at debug level",
                 instance);
    } else if (came_back) {
        dbt_info("instance \"%s\": the backend answers again after %llu s (%llu connection%s "
                 "failed meanwhile)",
                 instance, (unsigned long long)down_s, (unsigned long long)failed,
                 failed == 1 ? "" : "s");
    }
}

bool dbt_front_backend_quiet(const char *instance)
{
    bool quiet = false;
    pthread_mutex_lock(&seen_lock);
    for (size_t i = 0; i < n_seen; i++) {
        if (strcmp(seen[i].instance, instance) == 0) {
            quiet = seen[i].down && seen[i].down_failed > 1;
        }
    }
    pthread_mutex_unlock(&seen_lock);
    return quiet;
}

/* How long ago (ms) the backend was last reached with no failure since; false if not so. */
static bool seen_fresh(const char *instance, uint64_t *ago)
{
    uint64_t now = dbt_now_ms();
    bool fresh = false;
    pthread_mutex_lock(&seen_lock);
    for (size_t i = 0; i < n_seen; i++) {
        const struct seen *e = &seen[i];
        if (strcmp(e->instance, instance) == 0 && e->ok_ms != 0 && e->ok_ms >= e->fail_ms &&
            now - e->ok_ms < FRESH_MS) {
            *ago = now - e->ok_ms;
            fresh = true;
        }
    }
    pthread_mutex_unlock(&seen_lock);
    return fresh;
}

/* ---- the probe ---- */

/* The probe's connection to the backend: plain, or TLS after the front's own SSLRequest. */
struct pconn {
    int fd;
    struct dbt_tls_conn *tls; /* NULL: plain */
    uint64_t deadline;        /* ms, monotonic */
};

/* Waits for events on fd until deadline (ms, monotonic). false: timed out or failed. */
static bool wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = dbt_now_ms();
        if (now >= deadline) {
            return false;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0) {
            return true;
        }
        if (n < 0 && errno != EINTR) {
            return false;
        }
    }
}

/* Waits for what a TLS call asked for. false: the call failed or the deadline passed. */
static bool tls_wait(const struct pconn *c, enum dbt_tls_io io)
{
    return (io == DBT_TLS_IO_WANT_READ && wait_fd(c->fd, POLLIN, c->deadline)) ||
           (io == DBT_TLS_IO_WANT_WRITE && wait_fd(c->fd, POLLOUT, c->deadline));
}

/* One read: > 0 bytes, 0 at EOF, -1 on an error or at the deadline. */
static ssize_t pc_read(const struct pconn *c, uint8_t *buf, size_t cap)
{
    for (;;) {
        if (c->tls != NULL) {
            size_t got = 0;
            enum dbt_tls_io io = dbt_tls_read(c->tls, buf, cap, &got);
            if (io == DBT_TLS_IO_OK) {
                return (ssize_t)got;
            }
            if (io == DBT_TLS_IO_EOF) {
                return 0;
            }
            if (!tls_wait(c, io)) {
                return -1;
            }
            continue;
        }
        if (!wait_fd(c->fd, POLLIN, c->deadline)) {
            return -1;
        }
        ssize_t n = read(c->fd, buf, cap);
        if (n >= 0) {
            return n;
        }
        if (errno != EINTR && errno != EAGAIN) {
            return -1;
        }
    }
}

/* Reads what the server says until EOF, want bytes, or the deadline. -1: error or timeout. */
static ssize_t read_some(const struct pconn *c, uint8_t *buf, size_t cap, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = pc_read(c, buf + got, cap - got);
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Writes all of p (one or a few small packets). */
static dbt_res pc_write(const struct pconn *c, const uint8_t *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        if (c->tls != NULL) {
            size_t n = 0;
            enum dbt_tls_io io = dbt_tls_write(c->tls, p + done, len - done, &n);
            if (io == DBT_TLS_IO_OK) {
                done += n;
            } else if (io == DBT_TLS_IO_ERR) {
                return dbt_fail(DBT_E_IO, "the backend's TLS connection failed: %s", dbt_errmsg());
            } else if (!tls_wait(c, io)) {
                return dbt_fail(DBT_E_IO, "the backend closed the TLS connection");
            }
            continue;
        }
        ssize_t n = write(c->fd, p + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            if (!wait_fd(c->fd, POLLOUT, c->deadline)) {
                return dbt_fail(DBT_E_IO, "the backend does not read what the probe sends");
            }
        } else if (n < 0 && errno != EINTR) {
            return dbt_fail(DBT_E_IO, "the backend closed the connection: %s", strerror(errno));
        }
    }
    return DBT_OK;
}

static dbt_res probe_pg(const struct pconn *c, char *detail, size_t n)
{
    dbt_res res = DBT_OK;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_pg_cancel_key key = {.pid = 0, .key_len = 4};
    DBT_TRY(dbt_pg_cancel_encode(&b, &key));
    DBT_TRY(pc_write(c, b.data, b.len));
    uint8_t buf[256];
    ssize_t got = read_some(c, buf, sizeof(buf), sizeof(buf));
    DBT_ENSURE(got >= 0, IO, "the backend accepted the connection but did not answer");
    snprintf(detail, n, "PostgreSQL answered");
out:
    dbt_buf_cleanup(&b);
    return res;
}

/* Reads one packet: *len payload bytes at buf + 4, its sequence id in *seq. */
static dbt_res read_packet(const struct pconn *c, uint8_t *buf, size_t cap, const char *what,
                           size_t *len, uint8_t *seq)
{
    ssize_t got = read_some(c, buf, cap, DBT_MY_HDR_LEN);
    if (got < (ssize_t)DBT_MY_HDR_LEN) {
        return dbt_fail(DBT_E_IO, "the backend sent no %s", what);
    }
    *len = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16;
    *seq = buf[3];
    if (*len > cap - DBT_MY_HDR_LEN) {
        return dbt_fail(DBT_E_IO, "the backend's %s is too long (%zu bytes)", what, *len);
    }
    size_t need = DBT_MY_HDR_LEN + *len;
    if ((size_t)got < need) {
        ssize_t more = read_some(c, buf + got, cap - (size_t)got, need - (size_t)got);
        if (more < 0 || (size_t)got + (size_t)more < need) {
            return dbt_fail(DBT_E_IO, "the backend's %s was cut short", what);
        }
    }
    return DBT_OK;
}

/* Writes what w encoded into b, then empties b for the next packet. */
static dbt_res write_all(const struct pconn *c, struct dbt_wr *w, struct dbt_buf *b)
{
    dbt_res res = dbt_wr_finish(w);
    if (dbt_ok(res)) {
        res = pc_write(c, b->data, b->len);
    }
    b->len = 0;
    return res;
}

/*
 * The backend leg of a MySQL instance with --backend-tls-ca: the front's SSLRequest (seq 1),
 * then a TLS handshake verifying the server as sessions do, so that a server with
 * require_secure_transport=ON (or a health account REQUIRE SSL) lets the health user in.
 */
static dbt_res start_tls_my(struct pconn *c, const struct dbt_gen_inst *gi,
                            const struct dbt_my_response *r, uint32_t caps)
{
    dbt_res res = DBT_OK;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_ssl_request_encode(r, caps | DBT_MY_CLIENT_SSL, 1, &w);
    DBT_TRY(write_all(c, &w, &b));
    DBT_TRY(dbt_tls_conn_new_client(gi->backend_tls, c->fd, gi->backend_host, &c->tls));
    for (;;) {
        enum dbt_tls_io io = dbt_tls_handshake(c->tls);
        if (io == DBT_TLS_IO_OK) {
            break;
        }
        DBT_ENSURE(io != DBT_TLS_IO_ERR, IO, "TLS handshake with the backend failed: %s",
                   dbt_errmsg());
        DBT_ENSURE(io != DBT_TLS_IO_EOF, IO,
                   "the backend closed the connection during the TLS handshake");
        DBT_ENSURE(tls_wait(c, io), IO, "no TLS handshake with the backend before the deadline");
    }
out:
    dbt_buf_cleanup(&b);
    return res;
}

/*
 * Logs in as user with an empty password and says goodbye (COM_QUIT), as HAProxy's mysql-check
 * does: a completed login is no "Aborted connection" and resets the server's count of
 * interrupted connects from the front's address (max_connect_errors), which a bare greeting
 * probe adds to on a backend across the network. The account needs no password and no
 * privileges (CREATE USER 'dbtls_health'@'<front's address>'). Empty password: the
 * HandshakeResponse's auth data is empty whatever the plugin (mysql_native_password,
 * caching_sha2_password, ed25519 compare it with an empty password's). Over TLS when the
 * instance has TLS on its backend leg.
 */
static dbt_res login_my(struct pconn *c, const struct dbt_gen_inst *gi,
                        const struct dbt_my_greeting *g, const char *user)
{
    dbt_res res = DBT_OK;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    DBT_ENSURE(g->caps & DBT_MY_CLIENT_PROTOCOL_41, PROTO,
               "the backend does not speak protocol 4.1; no health login");
    uint32_t caps = g->caps & (DBT_MY_CLIENT_LONG_PASSWORD | DBT_MY_CLIENT_PROTOCOL_41 |
                               DBT_MY_CLIENT_SECURE_CONNECTION | DBT_MY_CLIENT_PLUGIN_AUTH |
                               DBT_MY_CLIENT_TRANSACTIONS);
    struct dbt_my_response r = {
        .caps = caps,
        .max_packet = 1u << 24,
        .charset = g->has_more && g->charset != 0 ? g->charset : 33, /* utf8_general_ci */
        .user = user,
        .user_len = strlen(user),
        .auth = (const uint8_t *)"",
        .auth_len = 0,
        .has_plugin = g->auth_plugin != NULL,
        .plugin = g->auth_plugin,
        .plugin_len = g->auth_plugin_len,
    };
    uint8_t seq = 1;
    if (gi->backend_tls != NULL) {
        DBT_ENSURE(g->caps & DBT_MY_CLIENT_SSL, IO,
                   "the server does not offer TLS, which this instance requires on the backend "
                   "leg");
        caps |= DBT_MY_CLIENT_SSL;
        DBT_TRY(start_tls_my(c, gi, &r, caps));
        seq = 2;
    }
    dbt_my_response_encode(&r, caps, seq, &w);
    DBT_TRY(write_all(c, &w, &b));
    for (int round = 0; round < 4; round++) {
        uint8_t buf[1024];
        size_t len = 0;
        DBT_TRY(read_packet(c, buf, sizeof(buf), "answer to the health login", &len, &seq));
        const uint8_t *p = buf + DBT_MY_HDR_LEN;
        const uint8_t *data = NULL;
        size_t data_len = 0;
        struct dbt_my_err e;
        switch (dbt_my_auth_classify(p, len)) {
        case DBT_MY_AUTH_OK: {
            size_t pos = dbt_my_pkt_begin(&w, 0);
            dbt_wr_u8(&w, 0x01); /* COM_QUIT: a clean goodbye, nothing in the server's log */
            dbt_my_pkt_end(&w, pos);
            (void)write_all(c, &w, &b);
            if (c->tls != NULL) {
                dbt_tls_shutdown(c->tls);
            }
            goto out;
        }
        case DBT_MY_AUTH_ERR:
            DBT_ENSURE(dbt_ok(dbt_my_err_decode(p, len, true, &e)), IO,
                       "the backend refused the health user \"%s\" with a malformed ERR", user);
            DBT_BAIL(IO, "the backend refused the health user \"%s\": ERROR %u (%s): %.*s", user,
                     e.code, e.has_state ? e.state : "HY000", (int)e.msg_len, e.msg);
        case DBT_MY_AUTH_SWITCH: { /* another plugin: its empty-password answer is empty too */
            size_t pos = dbt_my_pkt_begin(&w, (uint8_t)(seq + 1));
            dbt_my_pkt_end(&w, pos);
            DBT_TRY(write_all(c, &w, &b));
            break;
        }
        case DBT_MY_AUTH_MORE_DATA:
            DBT_ENSURE(dbt_ok(dbt_my_more_data_decode(p, len, &data, &data_len)) && data_len == 1 &&
                           data[0] == DBT_MY_SHA2_FAST_AUTH_OK,
                       IO,
                       "the health user \"%s\" needs more than an empty password: create it "
                       "without one",
                       user);
            break;
        default:
            DBT_BAIL(IO, "the backend's answer to the health login is not OK, ERR or an "
                         "authentication step");
        }
    }
    DBT_BAIL(IO, "the backend's login of the health user \"%s\" did not end", user);
out:
    dbt_buf_cleanup(&b);
    return res;
}

static dbt_res probe_my(struct pconn *c, const struct dbt_gen_inst *gi, const char *user,
                        char *detail, size_t n)
{
    uint8_t buf[1024];
    size_t len = 0;
    uint8_t seq = 0;
    dbt_res res = read_packet(c, buf, sizeof(buf), "greeting", &len, &seq);
    if (!dbt_ok(res)) {
        return res;
    }
    const uint8_t *p = buf + DBT_MY_HDR_LEN;
    struct dbt_my_err e;
    if (dbt_my_is_err(p, len) && dbt_ok(dbt_my_err_decode(p, len, false, &e))) {
        return dbt_fail(DBT_E_IO, "the backend refused the connection: ERROR %u: %.*s", e.code,
                        (int)e.msg_len, e.msg);
    }
    struct dbt_my_greeting g;
    if (!dbt_ok(dbt_my_greeting_decode(p, len, &g))) {
        return dbt_fail(DBT_E_IO, "the backend's first packet is not a MySQL greeting: %s",
                        dbt_errmsg());
    }
    const char *v = g.server_version;
    size_t vl = g.server_version_len;
    if (vl > 6 && memcmp(v, "5.5.5-", 6) == 0) { /* MariaDB's prefix for old replicas */
        v += 6;
        vl -= 6;
    }
    if (user != NULL) {
        res = login_my(c, gi, &g, user);
        if (!dbt_ok(res)) {
            return res;
        }
        snprintf(detail, n, "server %.*s answered, user \"%s\" logged in%s", (int)vl, v, user,
                 c->tls != NULL ? " over TLS" : "");
    } else {
        snprintf(detail, n, "server %.*s answered", (int)vl, v);
    }
    return DBT_OK;
}

dbt_res dbt_front_probe(struct dbt_front *f, const char *instance, uint64_t timeout_ms,
                        char *detail, size_t n)
{
    dbt_res res = DBT_OK;
    int fd = -1;
    struct dbt_gen *g = dbt_front_current_gen(f);
    const struct dbt_gen_inst *gi = NULL;
    for (size_t i = 0; i < g->n && gi == NULL; i++) {
        if (strcmp(g->insts[i].rt->name, instance) == 0) {
            gi = &g->insts[i];
        }
    }
    DBT_ENSURE(gi != NULL, NOT_FOUND, "no instance \"%s\" in the active configuration", instance);
    char where[300];
    dbt_net_addr_fmt((const struct sockaddr *)&gi->backend_addr, gi->backend_addrlen, where,
                     sizeof(where));
    uint64_t ago = 0;
    if (seen_fresh(instance, &ago)) {
        snprintf(detail, n, "backend %s reached %llu s ago", where,
                 (unsigned long long)(ago / 1000));
        goto out;
    }
    uint64_t t0 = dbt_now_ms(), deadline = t0 + timeout_ms;
    bool in_progress = false;
    res = dbt_net_connect((const struct sockaddr *)&gi->backend_addr, gi->backend_addrlen, NULL,
                          &fd, &in_progress);
    if (dbt_ok(res) && in_progress) {
        res = wait_fd(fd, POLLOUT, deadline) ? dbt_net_connect_result(fd)
                                             : dbt_fail(DBT_E_IO, "no connection within %llu ms",
                                                        (unsigned long long)timeout_ms);
    }
    struct pconn c = {.fd = fd, .deadline = deadline};
    if (dbt_ok(res)) {
        res = gi->proto == &dbt_pg_proto ? probe_pg(&c, detail, n)
                                         : probe_my(&c, gi, f->o.health_user, detail, n);
    }
    if (c.tls != NULL) {
        dbt_tls_conn_free(c.tls);
    }
    dbt_front_backend_seen(instance, dbt_ok(res));
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "backend %s: ", where);
        /* the first failure of an outage says why, as a session's does */
        dbt_log(dbt_front_backend_quiet(instance) ? DBT_LOG_DEBUG : DBT_LOG_WARN,
                "instance \"%s\": health check: %s", instance, dbt_errmsg());
        goto out;
    }
    size_t used = strlen(detail);
    snprintf(detail + used, n - used, " at %s in %llu ms", where,
             (unsigned long long)(dbt_now_ms() - t0));
out:
    if (fd >= 0) {
        close(fd);
    }
    dbt_gen_unref(g);
    return res;
}

bool dbt_front_draining(struct dbt_front *f)
{
    return atomic_load(&f->draining);
}
