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
#include "front/front_int.h"
#include "net/net.h"
#include "proto/my/my.h"
#include "proto/pg/pg.h"

#define FRESH_MS 30000

/* ---- what sessions and probes saw of each instance's backend ---- */

struct seen {
    char instance[64];
    uint64_t ok_ms, fail_ms; /* monotonic; 0 = never */
};
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen *seen;
static size_t n_seen;

void dbt_front_backend_seen(const char *instance, bool ok)
{
    uint64_t now = dbt_now_ms();
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
    }
    pthread_mutex_unlock(&seen_lock);
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

/* Reads what the server says until EOF, want bytes, or the deadline. -1: error or timeout. */
static ssize_t read_some(int fd, uint8_t *buf, size_t cap, size_t want, uint64_t deadline)
{
    size_t got = 0;
    while (got < want) {
        if (!wait_fd(fd, POLLIN, deadline)) {
            return -1;
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return -1;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static dbt_res probe_pg(int fd, uint64_t deadline, char *detail, size_t n)
{
    dbt_res res = DBT_OK;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_pg_cancel_key key = {.pid = 0, .key_len = 4};
    DBT_TRY(dbt_pg_cancel_encode(&b, &key));
    DBT_ENSURE(write(fd, b.data, b.len) == (ssize_t)b.len, IO,
               "the backend closed the connection: %s", strerror(errno));
    uint8_t buf[256];
    ssize_t got = read_some(fd, buf, sizeof(buf), sizeof(buf), deadline);
    DBT_ENSURE(got >= 0, IO, "the backend accepted the connection but did not answer");
    snprintf(detail, n, "PostgreSQL answered");
out:
    dbt_buf_cleanup(&b);
    return res;
}

static dbt_res probe_my(int fd, uint64_t deadline, char *detail, size_t n)
{
    uint8_t buf[1024];
    ssize_t got = read_some(fd, buf, sizeof(buf), 4, deadline);
    if (got < 4) {
        return dbt_fail(DBT_E_IO, "the backend accepted the connection but sent no greeting");
    }
    size_t len = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16;
    if (len > sizeof(buf) - 4) {
        return dbt_fail(DBT_E_IO, "the backend's greeting is too long (%zu bytes)", len);
    }
    if ((size_t)got < 4 + len) {
        ssize_t more =
            read_some(fd, buf + got, sizeof(buf) - (size_t)got, 4 + len - (size_t)got, deadline);
        if (more < 0 || (size_t)got + (size_t)more < 4 + len) {
            return dbt_fail(DBT_E_IO, "the backend's greeting was cut short");
        }
    }
    struct dbt_my_err e;
    if (dbt_my_is_err(buf + 4, len) && dbt_ok(dbt_my_err_decode(buf + 4, len, false, &e))) {
        return dbt_fail(DBT_E_IO, "the backend refused the connection: ERROR %u: %.*s", e.code,
                        (int)e.msg_len, e.msg);
    }
    struct dbt_my_greeting g;
    if (!dbt_ok(dbt_my_greeting_decode(buf + 4, len, &g))) {
        return dbt_fail(DBT_E_IO, "the backend's first packet is not a MySQL greeting: %s",
                        dbt_errmsg());
    }
    const char *v = g.server_version;
    size_t vl = g.server_version_len;
    if (vl > 6 && memcmp(v, "5.5.5-", 6) == 0) { /* MariaDB's prefix for old replicas */
        v += 6;
        vl -= 6;
    }
    snprintf(detail, n, "server %.*s answered", (int)vl, v);
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
    res = dbt_net_connect((const struct sockaddr *)&gi->backend_addr, gi->backend_addrlen, &fd,
                          &in_progress);
    if (dbt_ok(res) && in_progress) {
        res = wait_fd(fd, POLLOUT, deadline) ? dbt_net_connect_result(fd)
                                             : dbt_fail(DBT_E_IO, "no connection within %llu ms",
                                                        (unsigned long long)timeout_ms);
    }
    if (dbt_ok(res)) {
        res = gi->proto == &dbt_pg_proto ? probe_pg(fd, deadline, detail, n)
                                         : probe_my(fd, deadline, detail, n);
    }
    dbt_front_backend_seen(instance, dbt_ok(res));
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "backend %s: ", where);
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
