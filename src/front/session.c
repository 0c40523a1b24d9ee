/*
 * session.c - the connection driver of session.h: two legs (client, backend), each a socket with
 * optional TLS, driven level-triggered from one function (session_drive) that makes all the
 * progress it can: handshakes, writes (partial writes kept), reads (SSL_pending drained, since
 * epoll cannot see bytes OpenSSL already decrypted), protocol callbacks before the relay and
 * byte moving after it, then recomputes the events each socket waits for.
 *
 * In relay mode bytes are not copied per message: what is read from one leg into its input
 * buffer is written from that same buffer to the other leg, and a leg is read again only once its
 * buffer has been drained (backpressure). Drained buffers are released so an idle connection
 * holds little memory besides OpenSSL's own session state.
 */
#include "front/session.h"
#include "front/stats.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "front/worker.h"
#include "net/net.h"
#include "proto/proxy/proxy.h"
#include "tls/tls.h"

#define CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))
#define FINISH_TIMEOUT_MS 5000
#define OUT_MAX (1u << 20)
#define RELAY_READ_MAX (4 * DBT_SESSION_RELAY_CHUNK)

const struct dbt_proto *dbt_proto_for_engine(const char *engine)
{
    if (engine == NULL) {
        return NULL;
    }
    if (strcmp(engine, "postgres") == 0 || strcmp(engine, "postgresql") == 0) {
        return &dbt_pg_proto;
    }
    if (strcmp(engine, "mysql") == 0 || strcmp(engine, "mariadb") == 0) {
        return &dbt_my_proto != NULL ? &dbt_my_proto : NULL;
    }
    return NULL;
}

static void session_drive(struct dbt_session *s);
static void session_close(struct dbt_session *s);

static void leg_init(struct dbt_leg *l, size_t in_max)
{
    memset(l, 0, sizeof(*l));
    l->io.fd = -1;
    l->fd = -1;
    l->state = DBT_LEG_NONE;
    l->in_max = in_max;
    dbt_buf_init(&l->in, 0);
    dbt_buf_init(&l->out, OUT_MAX);
}

static void leg_close(struct dbt_session *s, struct dbt_leg *l, bool notify)
{
    int fd = l->fd;
    l->fd = -1;
    dbt_ev_io_del(s->worker->loop, &l->io);
    if (l->tls != NULL) {
        if (notify) {
            dbt_tls_shutdown(l->tls);
        }
        dbt_tls_conn_free(l->tls);
        l->tls = NULL;
    }
    if (fd >= 0) {
        close(fd);
    }
    l->state = DBT_LEG_CLOSED;
    dbt_buf_cleanup(&l->in);
    dbt_buf_cleanup(&l->out);
}

static void session_free_deferred(void *arg)
{
    struct dbt_session *s = arg;
    dbt_gen_unref(s->gen);
    free(s->cert);
    free(s);
}

static void session_close(struct dbt_session *s)
{
    if (s->closed) {
        return;
    }
    s->closed = true;
    struct dbt_worker *w = s->worker;
    dbt_session_log_disconnection(s);
    dbt_ev_timer_cancel(w->loop, &s->deadline);
    if (s->inst->proto->on_close != NULL) {
        s->inst->proto->on_close(s);
    }
    leg_close(s, &s->client, true);
    leg_close(s, &s->backend, false);
    pthread_mutex_lock(&w->lock);
    /* metrics: fold the bytes into the instance's total as the session leaves the list */
    /* the client hung up right after the TLS handshake, having sent nothing more: a TLS probe,
       or a client that did not accept our certificate after all (libpq checks the host name
       against it after the handshake and, with verify-full, closes when it does not match) */
    bool tls_hangup = s->st.ssl && s->client.eof && atomic_load(&s->bytes_in) == s->bytes_in_at_tls;
    dbt_stats_session_end(s->st.instance, atomic_load(&s->bytes_in), atomic_load(&s->bytes_out),
                          tls_hangup);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        w->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    atomic_fetch_sub(&w->n_sessions, 1);
    pthread_mutex_unlock(&w->lock);
    if (!dbt_ok(dbt_ev_defer(w->loop, session_free_deferred, s))) {
        /* cannot defer: the loop may still hold events for s in this round; leak rather than
         * risk a use after free */
        dbt_error("session: %s", dbt_errmsg());
    }
}

/* ---- helpers for protocols ---- */

dbt_res dbt_session_send_client(struct dbt_session *s, const void *p, size_t n)
{
    return dbt_buf_append(&s->client.out, p, n);
}

dbt_res dbt_session_send_backend(struct dbt_session *s, const void *p, size_t n)
{
    return dbt_buf_append(&s->backend.out, p, n);
}

dbt_res dbt_session_start_client_tls(struct dbt_session *s)
{
    /*
     * CVE-2021-3935 / CVE-2021-23214: bytes that arrived before the TLS handshake were sent in
     * clear text by whoever sits on the path; they must never be read as if they came over TLS.
     */
    if (dbt_buf_avail(&s->client.in) > 0) {
        return dbt_fail(DBT_E_PROTO, "received unencrypted data after SSL request");
    }
    if (s->inst->server_tls == NULL) {
        return dbt_fail(DBT_E_STATE, "instance has no TLS context");
    }
    s->client.state = DBT_LEG_HANDSHAKING; /* the TLS object is made once client.out is sent */
    return DBT_OK;
}

dbt_res dbt_session_start_client_tls_direct(struct dbt_session *s)
{
    if (s->inst->server_tls == NULL) {
        return dbt_fail(DBT_E_STATE, "instance has no TLS context");
    }
    s->client_tls_direct = true;
    s->client.state = DBT_LEG_HANDSHAKING;
    return DBT_OK;
}

dbt_res dbt_session_start_backend_tls(struct dbt_session *s)
{
    if (s->inst->backend_tls == NULL) {
        return dbt_fail(DBT_E_STATE, "instance has no backend TLS configuration");
    }
    if (dbt_buf_avail(&s->backend.in) > 0) {
        return dbt_fail(DBT_E_PROTO, "backend sent unencrypted data before TLS");
    }
    s->backend.state = DBT_LEG_HANDSHAKING;
    return DBT_OK;
}

static void backend_io_cb(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents);

dbt_res dbt_session_connect_backend(struct dbt_session *s, const struct sockaddr *addr,
                                    socklen_t addrlen)
{
    if (addr == NULL) {
        addr = (const struct sockaddr *)&s->inst->backend_addr;
        addrlen = s->inst->backend_addrlen;
    }
    if (addrlen <= sizeof(s->backend_peer)) {
        memcpy(&s->backend_peer, addr, addrlen);
        s->backend_peerlen = addrlen;
    }
    int fd = -1;
    bool in_progress = false;
    dbt_res r = dbt_net_connect(addr, addrlen, dbt_session_tcp_opts(), &fd, &in_progress);
    if (!dbt_ok(r)) {
        dbt_front_backend_seen(s->inst->rt->name, false);
        s->backend.state = DBT_LEG_CLOSED;
        if (s->inst->proto->on_backend_connected != NULL) {
            return s->inst->proto->on_backend_connected(s, r);
        }
        return r;
    }
    /*
     * Nothing can be read yet from a socket just connected, and level-triggered epoll reports
     * what arrives (a MySQL greeting): no read until then. A unix socket connects at once.
     */
    s->backend.rd_idle = true;
    r = dbt_ev_io_add(s->worker->loop, &s->backend.io, fd, in_progress ? EPOLLOUT : EPOLLIN,
                      backend_io_cb);
    if (!dbt_ok(r)) {
        close(fd);
        return r;
    }
    s->backend.fd = fd;
    s->backend.state = DBT_LEG_CONNECTING;
    if (!in_progress) {
        s->backend.state = DBT_LEG_OPEN;
        dbt_front_backend_seen(s->inst->rt->name, true);
        if (s->inst->proto->on_backend_connected != NULL) {
            return s->inst->proto->on_backend_connected(s, DBT_OK);
        }
    }
    return DBT_OK;
}

void dbt_session_relay(struct dbt_session *s)
{
    dbt_session_log_authorized(s);
    s->relay = true;
    dbt_ev_timer_cancel(s->worker->loop, &s->deadline);
    pthread_mutex_lock(&s->worker->lock);
    snprintf(s->st.state, sizeof(s->st.state), "relay");
    pthread_mutex_unlock(&s->worker->lock);
}

void dbt_session_finish(struct dbt_session *s)
{
    if (s->finishing) {
        return;
    }
    s->finishing = true;
    if (!dbt_ok(
            dbt_ev_timer_set(s->worker->loop, &s->deadline, dbt_now_ms() + FINISH_TIMEOUT_MS))) {
        session_close(s);
    }
}

void dbt_session_set_state(struct dbt_session *s, const char *name, uint64_t timeout_ms)
{
    pthread_mutex_lock(&s->worker->lock);
    snprintf(s->st.state, sizeof(s->st.state), "%s", name);
    pthread_mutex_unlock(&s->worker->lock);
    dbt_debug("session %s:%d state %s", s->st.client_addr, s->st.client_port, name);
    if (s->finishing) {
        return;
    }
    if (timeout_ms == 0) {
        dbt_ev_timer_cancel(s->worker->loop, &s->deadline);
    } else if (!dbt_ok(
                   dbt_ev_timer_set(s->worker->loop, &s->deadline, dbt_now_ms() + timeout_ms))) {
        session_close(s);
    }
}

static void set_str(struct dbt_session *s, char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
    }
    pthread_mutex_lock(&s->worker->lock);
    memcpy(dst, v, n);
    dst[n] = '\0';
    pthread_mutex_unlock(&s->worker->lock);
}

void dbt_session_set_user(struct dbt_session *s, const char *user, size_t n)
{
    set_str(s, s->st.user, sizeof(s->st.user), user, n);
}

void dbt_session_set_database(struct dbt_session *s, const char *db, size_t n)
{
    set_str(s, s->st.database, sizeof(s->st.database), db, n);
}

void dbt_session_set_application_name(struct dbt_session *s, const char *app, size_t n)
{
    set_str(s, s->st.application_name, sizeof(s->st.application_name), app, n);
}

const char *dbt_session_client_host(const struct dbt_session *s)
{
    return s->st.client_addr;
}

bool dbt_session_client_tls(const struct dbt_session *s)
{
    return s->client.tls != NULL && s->client.state == DBT_LEG_OPEN;
}

/* The client leg's TLS facts when it presented a certificate that verified. */
static bool verified_client_cert(const struct dbt_session *s, struct dbt_tls_info *info)
{
    if (!dbt_session_client_tls(s)) {
        return false;
    }
    dbt_tls_get_info(s->client.tls, info);
    return info->peer_cert;
}

bool dbt_session_client_cert_cn(const struct dbt_session *s, char *out, size_t outlen)
{
    struct dbt_tls_info info;
    bool ok = verified_client_cert(s, &info);
    snprintf(out, outlen, "%s", ok ? info.cn : "");
    return ok;
}

bool dbt_session_client_cert_dn(const struct dbt_session *s, char *out, size_t outlen)
{
    out[0] = '\0';
    return s->client.tls != NULL && dbt_tls_peer_dn(s->client.tls, out, outlen);
}

bool dbt_session_client_cert_dns(const struct dbt_session *s, char *subject, char *issuer,
                                 size_t cap)
{
    struct dbt_tls_info info;
    bool ok = verified_client_cert(s, &info);
    snprintf(subject, cap, "%s", ok ? info.subject : "");
    snprintf(issuer, cap, "%s", ok ? info.issuer : "");
    return ok;
}

const char *dbt_session_client_alpn(const struct dbt_session *s)
{
    static _Thread_local char alpn[32];
    alpn[0] = '\0';
    if (s->client.tls != NULL) {
        struct dbt_tls_info info;
        dbt_tls_get_info(s->client.tls, &info);
        snprintf(alpn, sizeof(alpn), "%s", info.alpn);
    }
    return alpn;
}

/* ---- the driver ---- */

enum io_res { IO_NONE, IO_PROGRESS, IO_EOF, IO_ERR };

/* Raw or TLS write of p[0..n) on leg; *done bytes written. */
static enum io_res leg_write_some(struct dbt_leg *l, const uint8_t *p, size_t n, size_t *done)
{
    *done = 0;
    l->wr_wants_read = false;
    if (l->tls == NULL) {
        ssize_t w = write(l->fd, p, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return IO_NONE;
            }
            (void)dbt_fail(DBT_E_IO, "write: %s", strerror(errno));
            return IO_ERR;
        }
        *done = (size_t)w;
        return w > 0 ? IO_PROGRESS : IO_NONE;
    }
    switch (dbt_tls_write(l->tls, p, n, done)) {
    case DBT_TLS_IO_OK:
        return IO_PROGRESS;
    case DBT_TLS_IO_WANT_READ:
        l->wr_wants_read = true;
        return IO_NONE;
    case DBT_TLS_IO_WANT_WRITE:
        return IO_NONE;
    case DBT_TLS_IO_EOF:
        return IO_EOF;
    default:
        return IO_ERR;
    }
}

/* Writes what is queued for leg l (its out buffer, then in relay the other leg's input). */
static enum io_res leg_flush(struct dbt_session *s, struct dbt_leg *l, struct dbt_leg *other)
{
    enum io_res ret = IO_NONE;
    bool plain_ok = l->state == DBT_LEG_HANDSHAKING && l->tls == NULL;
    if (l->state != DBT_LEG_OPEN && !plain_ok) {
        return IO_NONE;
    }
    for (int i = 0; i < 16; i++) {
        struct dbt_buf *src = NULL;
        if (dbt_buf_avail(&l->out) > 0) {
            src = &l->out;
        } else if (s->relay && !plain_ok && dbt_buf_avail(&other->in) > 0) {
            src = &other->in;
        } else {
            break;
        }
        size_t done = 0;
        enum io_res r = leg_write_some(l, dbt_buf_head(src), dbt_buf_avail(src), &done);
        if (r == IO_ERR || r == IO_EOF) {
            return r;
        }
        if (done == 0) {
            break;
        }
        dbt_buf_consume(src, done);
        if (l == &s->client) {
            atomic_fetch_add_explicit(&s->bytes_out, done, memory_order_relaxed);
        }
        if (dbt_buf_avail(src) == 0) {
            dbt_buf_cleanup(src); /* release drained buffers: idle sessions stay small */
        }
        ret = IO_PROGRESS;
    }
    return ret;
}

/* Reads into l->in as far as allowed. */
static enum io_res leg_read(struct dbt_session *s, struct dbt_leg *l)
{
    if (l->state != DBT_LEG_OPEN || l->eof) {
        return IO_NONE;
    }
    if (l->rd_idle && (l->tls == NULL || dbt_tls_pending(l->tls) == 0)) {
        return IO_NONE; /* the socket had no more: epoll says when it has (no EAGAIN read) */
    }
    size_t room;
    if (s->relay) {
        if (dbt_buf_avail(&l->in) > 0) {
            return IO_NONE; /* backpressure: drain to the other leg first */
        }
        /* several TLS records per read: fewer system calls per byte on bulk transfers; the
         * buffer is released once drained, so idle sessions do not keep it */
        room = RELAY_READ_MAX;
    } else {
        size_t have = dbt_buf_avail(&l->in);
        if (have >= l->in_max) {
            return IO_NONE;
        }
        room = l->in_max - have;
        if (room > DBT_SESSION_RELAY_CHUNK) {
            room = DBT_SESSION_RELAY_CHUNK;
        }
    }
    l->in.max = SIZE_MAX;
    if (!dbt_ok(dbt_buf_reserve(&l->in, room))) {
        return IO_ERR;
    }
    enum io_res ret = IO_NONE;
    l->rd_wants_write = false;
    for (;;) {
        size_t got = 0;
        if (l->tls == NULL) {
            ssize_t n = read(l->fd, dbt_buf_tail(&l->in), room);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    l->rd_idle = true;
                    break;
                }
                if (errno == EINTR) {
                    break;
                }
                (void)dbt_fail(DBT_E_IO, "read: %s", strerror(errno));
                return IO_ERR;
            }
            if (n == 0) {
                l->eof = true;
                return ret == IO_PROGRESS ? IO_PROGRESS : IO_EOF;
            }
            got = (size_t)n;
        } else {
            enum dbt_tls_io r = dbt_tls_read(l->tls, dbt_buf_tail(&l->in), room, &got);
            if (r == DBT_TLS_IO_WANT_READ) {
                l->rd_idle = dbt_tls_pending(l->tls) == 0;
                break;
            }
            if (r == DBT_TLS_IO_WANT_WRITE) {
                l->rd_wants_write = true;
                break;
            }
            if (r == DBT_TLS_IO_EOF) {
                l->eof = true;
                return ret == IO_PROGRESS ? IO_PROGRESS : IO_EOF;
            }
            if (r == DBT_TLS_IO_ERR) {
                return IO_ERR;
            }
        }
        dbt_buf_commit(&l->in, got);
        if (l == &s->client) {
            atomic_fetch_add_explicit(&s->bytes_in, got, memory_order_relaxed);
        }
        ret = IO_PROGRESS;
        room -= got;
        if (room == 0) {
            break; /* full: more may wait; read again once drained */
        }
        /* TLS: bytes may remain inside OpenSSL where epoll cannot see them */
        if (l->tls != NULL && dbt_tls_pending(l->tls) > 0) {
            continue;
        }
        if (got >= DBT_SESSION_RELAY_CHUNK) {
            /* a full record's worth: likely a bulk transfer, more is probably there (TLS: read
             * on; plain: again after the next flush, without waiting for epoll) */
            if (s->relay && l->tls != NULL) {
                continue;
            }
            break;
        }
        /*
         * Level-triggered epoll reports whatever is left in the socket, so a short read ends
         * reading until EPOLLIN: one read(2) per message instead of a second one that returns
         * EAGAIN, for each leg at each pass of session_drive (before the relay too: a protocol
         * waiting for more of a message is woken by the same EPOLLIN).
         */
        l->rd_idle = true;
        break;
    }
    return ret; /* a drained l->in is released at the end of session_drive */
}

static void log_tls_failure(struct dbt_session *s, struct dbt_leg *l)
{
    char subject[256] = "";
    if (l->tls != NULL) {
        dbt_tls_peer_subject(l->tls, subject, sizeof(subject));
    }
    if (l == &s->client) {
        dbt_warn("instance \"%s\": TLS handshake with client %s port %d failed: %s; certificate "
                 "subject: %s",
                 s->st.instance, s->st.client_addr, s->st.client_port, dbt_errmsg(),
                 subject[0] ? subject : "(none)");
    } else {
        dbt_warn("instance \"%s\": TLS handshake with backend %s failed: %s", s->st.instance,
                 s->inst->rt->backend, dbt_errmsg());
    }
}

/* Records the client leg's TLS parameters for `dbtls connections`; false when out of memory
 * for the client certificate's fields (the session cannot say who its client is). */
static bool client_tls_established(struct dbt_session *s)
{
    struct dbt_tls_info info;
    dbt_tls_get_info(s->client.tls, &info);
    struct dbt_session_cert *cert = NULL;
    if (info.peer_cert) {
        cert = malloc(sizeof(*cert));
        if (cert == NULL) {
            dbt_error("instance \"%s\": client %s port %d: out of memory", s->st.instance,
                      s->st.client_addr, s->st.client_port);
            return false;
        }
        snprintf(cert->client_dn, sizeof(cert->client_dn), "%s", info.client_dn);
        snprintf(cert->client_serial, sizeof(cert->client_serial), "%s", info.serial);
        snprintf(cert->issuer_dn, sizeof(cert->issuer_dn), "%s", info.issuer_dn);
    }
    pthread_mutex_lock(&s->worker->lock);
    s->st.ssl = true;
    snprintf(s->st.version, sizeof(s->st.version), "%s", info.version);
    snprintf(s->st.cipher, sizeof(s->st.cipher), "%s", info.cipher);
    s->st.bits = info.bits;
    s->cert = cert;
    snprintf(s->st.server_cert_sha1, sizeof(s->st.server_cert_sha1), "%s",
             dbt_tls_ctx_cert_sha1(s->inst->server_tls));
    snprintf(s->st.server_name, sizeof(s->st.server_name), "%.127s", info.server_name);
    pthread_mutex_unlock(&s->worker->lock);
    s->bytes_in_at_tls = atomic_load(&s->bytes_in);
    return true;
}

void dbt_session_client_info(const struct dbt_session *s, char port[16],
                             const char *out[DBT_CLIENT_INFO_N][2])
{
    snprintf(port, 16, "%d", s->st.client_port);
    const char *const v[DBT_CLIENT_INFO_N][2] = {
        {"dbtls.client_addr", s->st.client_addr},
        {"dbtls.client_port", port},
        {"dbtls.ssl", s->st.ssl ? "on" : "off"},
        {"dbtls.ssl_version", s->st.version},
        {"dbtls.ssl_cipher", s->st.cipher},
        {"dbtls.client_dn", s->cert ? s->cert->client_dn : ""},
        {"dbtls.client_serial", s->cert ? s->cert->client_serial : ""},
        {"dbtls.issuer_dn", s->cert ? s->cert->issuer_dn : ""},
        {"dbtls.instance", s->inst->rt->name},
    };
    memcpy(out, v, sizeof(v));
}

void dbt_session_set_instance_name(struct dbt_session *s, const char *name)
{
    pthread_mutex_lock(&s->worker->lock);
    snprintf(s->st.instance, sizeof(s->st.instance), "%s", name);
    pthread_mutex_unlock(&s->worker->lock);
}

/*
 * The client's TLS server name on an address several instances share (tls.h, dbt_tls_sni_fn):
 * the instance one of whose endpoints it is (exactly, else by a wildcard endpoint) becomes this
 * session's; any other name keeps the first instance of the address.
 */
static struct dbt_tls_ctx *session_sni(void *arg, const char *name)
{
    struct dbt_session *s = arg;
    const struct dbt_gen_inst *gi = dbt_gen_sni_find(s->inst, name);
    if (gi == NULL) {
        return NULL;
    }
    if (gi != s->inst) {
        s->inst = gi;
        dbt_session_set_instance_name(s, gi->rt->name);
    }
    return gi->server_tls;
}

/* Advances a TLS handshake on l. Returns IO_PROGRESS when it completed. */
static enum io_res leg_handshake(struct dbt_session *s, struct dbt_leg *l)
{
    if (l->state != DBT_LEG_HANDSHAKING || dbt_buf_avail(&l->out) > 0) {
        return IO_NONE; /* plain bytes (e.g. 'S') go first */
    }
    /* the first step of a TLS client (the backend leg) writes its ClientHello; with direct TLS
     * the start of the client's ClientHello is already in hand */
    bool first_step_writes = false;
    if (l->tls == NULL) {
        first_step_writes = l != &s->client || s->client_tls_direct;
        dbt_res r;
        if (l == &s->client && s->client_tls_direct) {
            r = dbt_tls_conn_new_server_prefixed(s->inst->server_tls, l->fd, dbt_buf_head(&l->in),
                                                 dbt_buf_avail(&l->in), &l->tls);
            dbt_buf_cleanup(&l->in);
        } else if (l == &s->client) {
            r = dbt_tls_conn_new_server(s->inst->server_tls, l->fd, &l->tls);
        } else {
            r = dbt_tls_conn_new_client(s->inst->backend_tls, l->fd, s->inst->backend_host,
                                        &l->tls);
        }
        if (dbt_ok(r) && l == &s->client && s->inst->listen_shared) {
            r = dbt_tls_conn_set_sni(l->tls, session_sni, s);
        }
        if (!dbt_ok(r)) {
            return IO_ERR;
        }
    }
    if (l->rd_idle && !l->hs_wants_write && !first_step_writes && dbt_tls_pending(l->tls) == 0) {
        /* the peer has not answered yet (after 'S': the ClientHello): wait for EPOLLIN rather
         * than a read that ends in EAGAIN */
        return IO_NONE;
    }
    l->hs_wants_write = false;
    switch (dbt_tls_handshake(l->tls)) {
    case DBT_TLS_IO_OK:
        l->state = DBT_LEG_OPEN;
        return IO_PROGRESS;
    case DBT_TLS_IO_WANT_READ:
        l->rd_idle = dbt_tls_pending(l->tls) == 0; /* it read until EAGAIN */
        return IO_NONE;
    case DBT_TLS_IO_WANT_WRITE:
        l->hs_wants_write = true;
        return IO_NONE;
    default:
        return IO_ERR;
    }
}

static uint32_t leg_interest(struct dbt_session *s, struct dbt_leg *l, struct dbt_leg *other)
{
    uint32_t ev = 0;
    switch (l->state) {
    case DBT_LEG_CONNECTING:
        return EPOLLOUT;
    case DBT_LEG_HANDSHAKING:
        if (l->tls == NULL) {
            return dbt_buf_avail(&l->out) > 0 ? EPOLLOUT : 0;
        }
        return l->hs_wants_write ? EPOLLOUT : EPOLLIN;
    case DBT_LEG_OPEN:
        break;
    default:
        return 0;
    }
    bool pending_out = dbt_buf_avail(&l->out) > 0 || (s->relay && dbt_buf_avail(&other->in) > 0);
    bool want_in =
        !l->eof && (s->relay ? dbt_buf_avail(&l->in) == 0 : dbt_buf_avail(&l->in) < l->in_max);
    if (s->finishing && l == &s->client) {
        want_in = false;
    }
    if ((want_in && !l->rd_wants_write) || (pending_out && l->wr_wants_read)) {
        ev |= EPOLLIN;
    }
    if ((pending_out && !l->wr_wants_read) || (want_in && l->rd_wants_write)) {
        ev |= EPOLLOUT;
    }
    if (s->finishing && l == &s->client) {
        ev |= EPOLLIN; /* notice the client going away (EOF) while we flush */
    }
    return ev;
}

static bool call(struct dbt_session *s, dbt_res (*cb)(struct dbt_session *));

/*
 * A peer named by --proxy-protocol-from (a load balancer) starts with a PROXY header: take the
 * client's address from it for everything that follows (access rules, logs, `dbtls
 * connections`, --client-info), then start the protocol on the bytes after it. False when the
 * session was closed (a header that is not one: logged, nothing sent, since the peer is a
 * balancer, not a database client). *deliver: bytes remain for the protocol.
 */
static bool take_proxy_header(struct dbt_session *s, bool *deliver)
{
    *deliver = false;
    struct dbt_proxy_hdr h;
    dbt_res r = dbt_proxy_parse((const uint8_t *)dbt_buf_head(&s->client.in),
                                dbt_buf_avail(&s->client.in), &h);
    if (r.code == DBT_E_AGAIN) {
        return true;
    }
    if (!dbt_ok(r)) {
        dbt_warn("instance \"%s\": connection from load balancer %s port %d closed: %s",
                 s->st.instance, s->st.client_addr, s->st.client_port, dbt_errmsg());
        session_close(s);
        return false;
    }
    dbt_buf_consume(&s->client.in, h.len);
    s->proxy_pending = false;
    if (h.has_src && h.src_len <= sizeof(s->peer)) {
        char host[64];
        int port = 0;
        dbt_net_addr_str((const struct sockaddr *)&h.src, h.src_len, host, sizeof(host), &port);
        dbt_debug("instance \"%s\": load balancer %s port %d: client %s port %d", s->st.instance,
                  s->st.client_addr, s->st.client_port, host, port);
        pthread_mutex_lock(&s->worker->lock);
        memcpy(&s->peer, &h.src, h.src_len);
        s->peerlen = h.src_len;
        snprintf(s->st.client_addr, sizeof(s->st.client_addr), "%s", host);
        s->st.client_port = port;
        pthread_mutex_unlock(&s->worker->lock);
    }
    if (!call(s, s->inst->proto->on_accept)) {
        return false;
    }
    *deliver = dbt_buf_avail(&s->client.in) > 0;
    return true;
}

static bool call(struct dbt_session *s, dbt_res (*cb)(struct dbt_session *))
{
    if (cb == NULL || s->closed) {
        return !s->closed;
    }
    dbt_res r = cb(s);
    if (!dbt_ok(r) && !s->closed) {
        dbt_debug("session %s:%d closed by protocol: %s", s->st.client_addr, s->st.client_port,
                  dbt_errmsg());
        if (dbt_buf_avail(&s->client.out) > 0 && s->client.state == DBT_LEG_OPEN) {
            dbt_session_finish(s);
        } else {
            session_close(s);
        }
    }
    return !s->closed;
}

static void session_drive(struct dbt_session *s)
{
    const struct dbt_proto *p = s->inst->proto;
    for (int iter = 0; iter < 64 && !s->closed; iter++) {
        bool progress = false;
        enum io_res r;

        /* handshakes */
        r = leg_handshake(s, &s->client);
        if (r == IO_ERR) {
            dbt_stats_handshake(s->st.instance, false, dbt_errmsg());
            log_tls_failure(s, &s->client);
            session_close(s);
            return;
        }
        if (r == IO_PROGRESS) {
            dbt_stats_handshake(s->st.instance, true, NULL);
            if (!client_tls_established(s)) {
                session_close(s);
                return;
            }
            progress = true;
            if (!call(s, p->on_client_tls_done)) {
                return;
            }
        }
        r = leg_handshake(s, &s->backend);
        if (r == IO_ERR) {
            log_tls_failure(s, &s->backend);
            dbt_res fail = dbt_fail(DBT_E_TLS, "TLS to backend %s failed: %s", s->inst->rt->backend,
                                    dbt_errmsg());
            s->backend.state = DBT_LEG_CLOSED;
            if (p->on_backend_tls_done == NULL) {
                session_close(s);
                return;
            }
            dbt_res cr = p->on_backend_tls_done(s, fail);
            if (!dbt_ok(cr) && !s->closed) {
                session_close(s);
            }
            if (s->closed) {
                return;
            }
            progress = true;
        } else if (r == IO_PROGRESS) {
            progress = true;
            if (p->on_backend_tls_done != NULL) {
                dbt_res cr = p->on_backend_tls_done(s, DBT_OK);
                if (!dbt_ok(cr) && !s->closed) {
                    session_close(s);
                }
                if (s->closed) {
                    return;
                }
            }
        }

        /* writes */
        r = leg_flush(s, &s->client, &s->backend);
        if (r == IO_ERR || r == IO_EOF) {
            session_close(s);
            return;
        }
        progress |= r == IO_PROGRESS;
        r = leg_flush(s, &s->backend, &s->client);
        if (r == IO_ERR || r == IO_EOF) {
            if (s->relay) {
                /* send what the backend already said (e.g. its FATAL) before closing */
                s->backend.eof = true;
            } else {
                session_close(s);
                return;
            }
        }
        progress |= r == IO_PROGRESS;

        /* reads */
        if (!s->finishing) {
            r = leg_read(s, &s->client);
            if (r == IO_ERR) {
                dbt_debug("session %s:%d: client: %s", s->st.client_addr, s->st.client_port,
                          dbt_errmsg());
                session_close(s);
                return;
            }
            if (r == IO_PROGRESS) {
                progress = true;
                bool deliver = true;
                if (s->proxy_pending && !take_proxy_header(s, &deliver)) {
                    return;
                }
                if (deliver && !s->relay && !call(s, p->on_client_data)) {
                    return;
                }
                /* relay: the new bytes are all of client.in and not yet forwarded */
                if (s->relay && !call(s, p->on_relay_client_data)) {
                    return;
                }
            }
        } else if (s->client.state == DBT_LEG_OPEN) {
            /* discard what a finishing client still sends; notice its EOF */
            r = leg_read(s, &s->client);
            dbt_buf_reset(&s->client.in);
            if (r == IO_ERR || s->client.eof) {
                session_close(s);
                return;
            }
        }
        r = leg_read(s, &s->backend);
        if (r == IO_ERR) {
            s->backend.eof = true;
        }
        if (r == IO_PROGRESS) {
            progress = true;
            if (!s->relay && !s->finishing && !call(s, p->on_backend_data)) {
                return;
            }
        }

        /* endings */
        if (s->client.eof &&
            (!s->relay || dbt_buf_avail(&s->client.in) == 0 || s->backend.state != DBT_LEG_OPEN)) {
            session_close(s);
            return;
        }
        if (s->backend.eof && !s->relay && !s->finishing && !s->backend_eof_told) {
            /* before the relay the protocol may owe the client an error (MySQL: the server went
             * away before or during its greeting) */
            s->backend_eof_told = true;
            if (!call(s, p->on_backend_eof)) {
                return;
            }
        }
        if (s->backend.eof && (!s->relay || dbt_buf_avail(&s->backend.in) == 0) &&
            dbt_buf_avail(&s->client.out) == 0) {
            if (!s->relay && !s->finishing && dbt_buf_avail(&s->backend.in) > 0) {
                /* the protocol saw the data; it did not finish: nothing more will come */
            }
            session_close(s);
            return;
        }
        if (s->finishing && dbt_buf_avail(&s->client.out) == 0 &&
            s->client.state != DBT_LEG_HANDSHAKING) {
            session_close(s);
            return;
        }
        if (!progress) {
            break;
        }
    }
    if (s->closed) {
        return;
    }
    /* what the protocol consumed after the last read leaves a drained input buffer: released,
     * so an idle session holds no buffer at all (leg_flush releases drained output buffers) */
    uint64_t held = 0;
    struct dbt_leg *legs[] = {&s->client, &s->backend};
    for (size_t i = 0; i < 2; i++) {
        if (dbt_buf_avail(&legs[i]->in) == 0) {
            dbt_buf_cleanup(&legs[i]->in);
        }
        held += legs[i]->in.cap + legs[i]->out.cap;
    }
    atomic_store_explicit(&s->buffered, held, memory_order_relaxed);
    struct dbt_ev_loop *loop = s->worker->loop;
    if (s->client.io.fd >= 0 &&
        !dbt_ok(dbt_ev_io_mod(loop, &s->client.io, leg_interest(s, &s->client, &s->backend)))) {
        session_close(s);
        return;
    }
    if (s->backend.io.fd >= 0 &&
        !dbt_ok(dbt_ev_io_mod(loop, &s->backend.io, leg_interest(s, &s->backend, &s->client)))) {
        session_close(s);
        return;
    }
}

/*
 * EPOLLERR/EPOLLHUP are reported even for a socket nobody waits on, so a leg that hung up
 * would wake the loop forever while the other leg drains: after one last attempt to make
 * progress, a hung-up client ends the session and a hung-up backend is unregistered (what it
 * already sent still goes to the client).
 */
static void after_hangup(struct dbt_session *s, struct dbt_leg *l)
{
    if (s->closed) {
        return;
    }
    if (l == &s->client) {
        session_close(s);
        return;
    }
    l->eof = true;
    dbt_ev_io_del(s->worker->loop, &l->io);
    session_drive(s);
}

static void client_io_cb(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents)
{
    struct dbt_session *s = CONTAINER_OF(io, struct dbt_session, client.io);
    if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        s->client.rd_idle = false;
    }
    session_drive(s);
    if (revents & (EPOLLERR | EPOLLHUP)) {
        after_hangup(s, &s->client);
    }
}

static void backend_io_cb(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents)
{
    struct dbt_session *s = CONTAINER_OF(io, struct dbt_session, backend.io);
    if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        s->backend.rd_idle = false;
    }
    if (s->backend.state == DBT_LEG_CONNECTING) {
        dbt_res r = dbt_net_connect_result(io->fd);
        dbt_front_backend_seen(s->inst->rt->name, dbt_ok(r));
        if (dbt_ok(r)) {
            s->backend.state = DBT_LEG_OPEN;
        } else {
            r = dbt_fail(DBT_E_IO, "connection to backend %s failed: %s", s->inst->rt->backend,
                         dbt_errmsg());
            leg_close(s, &s->backend, false);
        }
        if (s->inst->proto->on_backend_connected != NULL) {
            dbt_res cr = s->inst->proto->on_backend_connected(s, r);
            if (!dbt_ok(cr) && !s->closed) {
                if (dbt_buf_avail(&s->client.out) > 0) {
                    dbt_session_finish(s);
                } else {
                    session_close(s);
                }
            }
        } else if (!dbt_ok(r)) {
            session_close(s);
        }
        if (s->closed) {
            return;
        }
    }
    session_drive(s);
    if ((revents & (EPOLLERR | EPOLLHUP)) && s->backend.state == DBT_LEG_OPEN) {
        after_hangup(s, &s->backend);
    }
}

static void deadline_cb(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct dbt_session *s = CONTAINER_OF(t, struct dbt_session, deadline);
    if (s->closed) {
        return;
    }
    if (s->backend.state == DBT_LEG_CONNECTING) { /* the backend never answered the connect */
        dbt_front_backend_seen(s->inst->rt->name, false);
    }
    if (s->proxy_pending) { /* the protocol has not started: it has no state to time out */
        dbt_info("instance \"%s\": load balancer %s port %d: no whole PROXY header in time",
                 s->st.instance, s->st.client_addr, s->st.client_port);
        session_close(s);
        return;
    }
    if (s->finishing || s->inst->proto->on_timeout == NULL) {
        dbt_info("instance \"%s\": client %s port %d: timeout in state %s", s->st.instance,
                 s->st.client_addr, s->st.client_port, s->st.state);
        session_close(s);
        return;
    }
    s->inst->proto->on_timeout(s);
    if (!s->closed) {
        session_drive(s);
    }
}

void dbt_session_accept(struct dbt_worker *w, struct dbt_gen *gen, const struct dbt_gen_inst *inst,
                        int fd, const struct sockaddr_storage *peer, socklen_t peerlen)
{
    struct dbt_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        dbt_error("accept: out of memory");
        close(fd);
        dbt_gen_unref(gen);
        return;
    }
    s->worker = w;
    s->gen = gen; /* reference passed in */
    s->inst = inst;
    s->peer = *peer;
    s->peerlen = peerlen;
    leg_init(&s->client, DBT_SESSION_PREAUTH_MAX);
    leg_init(&s->backend, DBT_SESSION_PREAUTH_MAX);
    dbt_ev_timer_init(&s->deadline, deadline_cb);
    snprintf(s->st.instance, sizeof(s->st.instance), "%s", inst->rt->name);
    dbt_net_addr_str((const struct sockaddr *)peer, peerlen, s->st.client_addr,
                     sizeof(s->st.client_addr), &s->st.client_port);
    s->st.backend_start = dbt_now_unix();
    s->started_ms = dbt_now_ms();
    snprintf(s->st.state, sizeof(s->st.state), "accepted");
    if (!dbt_ok(dbt_ev_io_add(w->loop, &s->client.io, fd, EPOLLIN, client_io_cb))) {
        dbt_error("accept: %s", dbt_errmsg());
        close(fd);
        dbt_gen_unref(gen);
        free(s);
        return;
    }
    s->client.fd = fd;
    s->client.state = DBT_LEG_OPEN;
    s->client.rd_idle = inst->proto->server_speaks_first;
    pthread_mutex_lock(&w->lock);
    s->next = w->sessions;
    if (w->sessions != NULL) {
        w->sessions->prev = s;
    }
    w->sessions = s;
    atomic_fetch_add(&w->n_sessions, 1);
    pthread_mutex_unlock(&w->lock);
    dbt_session_set_state(s, "startup", dbt_session_auth_timeout_ms());
    /* behind a load balancer the protocol starts once its PROXY header is read */
    s->proxy_pending = dbt_session_proxy_trusted((const struct sockaddr *)peer);
    if (!s->proxy_pending && !call(s, inst->proto->on_accept)) {
        return;
    }
    session_drive(s);
}

void dbt_session_close_all(struct dbt_worker *w)
{
    while (w->sessions != NULL) {
        session_close(w->sessions);
    }
}
