/*
 * front.c - the daemon (front.h): N worker threads each with its own epoll loop and its own
 * SO_REUSEPORT listener per instance address, and a main thread that owns signals and graceful
 * shutdown (SIGTERM). Reloads (SIGHUP, change counter) run on the loader thread (loader.c), which
 * never blocks the main thread: a store that does not answer cannot delay a SIGTERM.
 *
 * Listener sockets are made by the loader while it builds a generation (so a port in use fails
 * that reload, not a worker) and handed to the workers through a small command inbox with an
 * eventfd wakeup; workers own them from then on.
 */
#include "front/front.h"
#include "front/stats.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/sdnotify.h"
#include "front/front_int.h"

struct dbt_gen *dbt_front_current_gen(struct dbt_front *f)
{
    pthread_mutex_lock(&f->gen_lock);
    struct dbt_gen *g = dbt_gen_ref(f->gen);
    pthread_mutex_unlock(&f->gen_lock);
    return g;
}

bool dbt_front_reload_error(struct dbt_front *f, char *buf, size_t n)
{
    pthread_mutex_lock(&f->gen_lock);
    bool failed = f->reload_error[0] != '\0';
    snprintf(buf, n, "%s", f->reload_error);
    pthread_mutex_unlock(&f->gen_lock);
    return failed;
}

/* ---- workers ---- */

void dbt_worker_send(struct dbt_worker *w, int kind, int fd, const char *key)
{
    pthread_mutex_lock(&w->lock);
    if (w->n_cmds == w->cap_cmds) {
        size_t ncap = w->cap_cmds ? w->cap_cmds * 2 : 16;
        struct dbt_worker_cmd *nc = realloc(w->cmds, ncap * sizeof(*nc));
        if (nc == NULL) {
            pthread_mutex_unlock(&w->lock);
            dbt_error("worker %d: command lost: out of memory", w->idx);
            if (fd >= 0) {
                close(fd);
            }
            return;
        }
        w->cmds = nc;
        w->cap_cmds = ncap;
    }
    struct dbt_worker_cmd *c = &w->cmds[w->n_cmds++];
    c->kind = kind;
    c->fd = fd;
    snprintf(c->key, sizeof(c->key), "%s", key ? key : "");
    pthread_mutex_unlock(&w->lock);
    dbt_ev_async_send(&w->wake);
}

/*
 * One connection per wake-up (nginx's default): level-triggered epoll reports the listener again
 * at once while more are queued, and no accept4 per connection ends in EAGAIN.
 */
static void accept_cb(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents)
{
    struct dbt_listener *ls = (struct dbt_listener *)io;
    struct dbt_worker *w = ls->w;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    int fd;
    dbt_res r = dbt_net_accept(io->fd, &peer, &peerlen, &fd);
    if (r.code == DBT_E_AGAIN) {
        return;
    }
    if (r.code == DBT_E_LIMIT) {
        /*
         * Out of descriptors: the connection stays in the backlog and a level-triggered
         * listener would wake us in a loop. Stop watching it for 100 ms.
         */
        dbt_warn("%s: %s; pausing accepts for 100 ms", ls->key, dbt_errmsg());
        if (!dbt_ok(dbt_ev_io_mod(l, io, 0)) ||
            !dbt_ok(dbt_ev_timer_set(l, &ls->pause, dbt_now_ms() + 100))) {
            dbt_error("%s: %s", ls->key, dbt_errmsg());
        }
        return;
    }
    if (!dbt_ok(r)) {
        dbt_warn("%s: %s", ls->key, dbt_errmsg());
        return;
    }
    struct dbt_gen *g = dbt_front_current_gen(w->front);
    const struct dbt_gen_inst *inst = dbt_gen_find_listen(g, ls->key);
    if (inst == NULL) {
        close(fd); /* the instance went away in a reload; its listener is closing */
        dbt_gen_unref(g);
        return;
    }
    dbt_session_accept(w, g, inst, fd, &peer, peerlen);
}

static void listener_resume(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct dbt_listener *ls =
        (struct dbt_listener *)((char *)t - offsetof(struct dbt_listener, pause));
    if (ls->io.fd >= 0 && !dbt_ok(dbt_ev_io_mod(l, &ls->io, EPOLLIN))) {
        dbt_error("%s: %s", ls->key, dbt_errmsg());
    }
}

static void listener_free(void *arg)
{
    free(arg);
}

static void listener_close(struct dbt_worker *w, struct dbt_listener *ls)
{
    int fd = ls->io.fd;
    dbt_ev_timer_cancel(w->loop, &ls->pause);
    dbt_ev_io_del(w->loop, &ls->io);
    if (fd >= 0) {
        close(fd);
    }
    if (!dbt_ok(dbt_ev_defer(w->loop, listener_free, ls))) {
        dbt_error("worker %d: %s", w->idx, dbt_errmsg());
    }
}

static void worker_wake(struct dbt_ev_loop *l, struct dbt_ev_async *a)
{
    struct dbt_worker *w = dbt_ev_data(l);
    pthread_mutex_lock(&w->lock);
    struct dbt_worker_cmd *cmds = w->cmds;
    size_t n = w->n_cmds;
    w->cmds = NULL;
    w->n_cmds = w->cap_cmds = 0;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        struct dbt_worker_cmd *c = &cmds[i];
        if (c->kind == DBT_WORKER_CMD_ADD && w->stopped) {
            close(c->fd);
        } else if (c->kind == DBT_WORKER_CMD_ADD) {
            struct dbt_listener *ls = calloc(1, sizeof(*ls));
            if (ls == NULL || !dbt_ok(dbt_ev_io_add(l, &ls->io, c->fd, EPOLLIN, accept_cb))) {
                dbt_error("worker %d: cannot watch listener %s", w->idx, c->key);
                free(ls);
                close(c->fd);
                continue;
            }
            ls->w = w;
            dbt_ev_timer_init(&ls->pause, listener_resume);
            snprintf(ls->key, sizeof(ls->key), "%s", c->key);
            ls->next = w->listeners;
            w->listeners = ls;
        } else if (c->kind == DBT_WORKER_CMD_CLOSE_KEY || c->kind == DBT_WORKER_CMD_CLOSE_ALL) {
            for (struct dbt_listener **pp = &w->listeners; *pp != NULL;) {
                struct dbt_listener *ls = *pp;
                if (c->kind == DBT_WORKER_CMD_CLOSE_ALL || strcmp(ls->key, c->key) == 0) {
                    *pp = ls->next;
                    listener_close(w, ls);
                } else {
                    pp = &ls->next;
                }
            }
        } else if (c->kind == DBT_WORKER_CMD_STOP) {
            w->stopped = true;
            dbt_session_close_all(w);
            dbt_ev_stop(l);
        }
    }
    free(cmds);
}

static void *worker_main(void *arg)
{
    struct dbt_worker *w = arg;
    dbt_res r = dbt_ev_run(w->loop);
    if (!dbt_ok(r)) {
        dbt_error("worker %d: %s", w->idx, dbt_errmsg());
    }
    w->stopped = true; /* the final run below may still take queued commands */
    dbt_session_close_all(w);
    while (w->listeners != NULL) {
        struct dbt_listener *ls = w->listeners;
        w->listeners = ls->next;
        listener_close(w, ls);
    }
    /* run deferred frees */
    if (!dbt_ok(dbt_ev_run_once(w->loop, 0))) {
        dbt_warn("worker %d: %s", w->idx, dbt_errmsg());
    }
    return NULL;
}

static dbt_res worker_init(struct dbt_front *f, struct dbt_worker *w, int idx)
{
    w->idx = idx;
    w->front = f;
    pthread_mutex_init(&w->lock, NULL);
    dbt_res r = dbt_ev_loop_new(&w->loop);
    if (!dbt_ok(r)) {
        return r;
    }
    dbt_ev_set_data(w->loop, w);
    return dbt_ev_async_init(w->loop, &w->wake, worker_wake);
}

/* ---- main thread ---- */

/* Stops accepting and waits for the sessions (tick_cb) up to the shutdown timeout. */
static void stop_accepting(struct dbt_front *f)
{
    if (f->shutting_down) {
        return;
    }
    f->shutting_down = true;
    dbt_ev_timer_cancel(f->loop, &f->drain);
    f->shutdown_deadline = dbt_now_ms() + f->o.shutdown_timeout_ms;
    dbt_info("shutting down: no new connections; waiting up to %llu ms for sessions to end",
             (unsigned long long)f->o.shutdown_timeout_ms);
    dbt_sd_notify("STOPPING=1\nSTATUS=shutting down: waiting up to %llu ms for sessions to end",
                  (unsigned long long)f->o.shutdown_timeout_ms);
    for (int w = 0; w < f->nworkers; w++) {
        dbt_worker_send(&f->workers[w], DBT_WORKER_CMD_CLOSE_ALL, -1, NULL);
    }
    dbt_loader_request_stop(f);
    if (!dbt_ok(dbt_ev_timer_set(f->loop, &f->tick, dbt_now_ms()))) {
        dbt_ev_stop(f->loop);
    }
}

static void drain_cb(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    (void)t;
    stop_accepting(dbt_ev_data(l));
}

/*
 * SIGTERM: health checks fail from now on (dbt_front_draining); with a drain delay the listeners
 * keep accepting that long, so that a load balancer sees the failing check and sends clients
 * elsewhere before this node refuses them; then stop_accepting.
 */
static void begin_shutdown(struct dbt_front *f)
{
    if (atomic_exchange(&f->draining, true)) {
        return;
    }
    if (f->o.drain_delay_ms == 0) {
        stop_accepting(f);
        return;
    }
    dbt_info("draining: health checks fail; still accepting connections for %llu ms",
             (unsigned long long)f->o.drain_delay_ms);
    dbt_sd_notify("STOPPING=1\nSTATUS=draining: health checks fail, accepting for %llu ms more",
                  (unsigned long long)f->o.drain_delay_ms);
    if (!dbt_ok(dbt_ev_timer_set(f->loop, &f->drain, dbt_now_ms() + f->o.drain_delay_ms))) {
        stop_accepting(f);
    }
}

static void tick_cb(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct dbt_front *f = dbt_ev_data(l);
    size_t n = 0;
    for (int w = 0; w < f->nworkers; w++) {
        n += atomic_load(&f->workers[w].n_sessions);
    }
    if (n == 0 || dbt_now_ms() >= f->shutdown_deadline) {
        if (n > 0) {
            dbt_warn("shutdown timeout: closing %zu remaining session%s", n, n == 1 ? "" : "s");
        }
        dbt_ev_stop(l);
        return;
    }
    if (!dbt_ok(dbt_ev_timer_set(l, t, dbt_now_ms() + 100))) {
        dbt_ev_stop(l);
    }
}

static void signal_cb(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents)
{
    struct dbt_front *f = dbt_ev_data(l);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            if (!f->shutting_down) {
                dbt_info("SIGHUP: reloading configuration");
                dbt_loader_request_reload(f);
            }
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            if (atomic_load(&f->draining)) {
                dbt_info("second termination signal: closing now");
                stop_accepting(f);
                f->shutdown_deadline = 0;
            }
            begin_shutdown(f);
        }
    }
}

dbt_res dbt_front_start(const struct dbt_front_opts *o, struct dbt_front **out)
{
    dbt_res res = DBT_OK;
    struct dbt_front *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    f->o = *o;
    if (f->o.auth_timeout_ms == 0) {
        f->o.auth_timeout_ms = 60000;
    }
    if (f->o.shutdown_timeout_ms == 0) {
        f->o.shutdown_timeout_ms = 30000;
    }
    if (f->o.poll_ms == 0) {
        f->o.poll_ms = 500;
    }
    if (f->o.watch_poll_ms == 0) {
        f->o.watch_poll_ms = 10000;
    }
    dbt_session_set_auth_timeout_ms(f->o.auth_timeout_ms);
    dbt_session_set_tcp_opts(&f->o.tcp);
    dbt_session_set_logging(f->o.log_connections, f->o.log_disconnections);
    f->o.proxy_from = NULL; /* copied by the session layer, not kept */
    if (!dbt_ok(dbt_session_set_proxy_from(o->proxy_from, o->n_proxy_from))) {
        free(f);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    f->nworkers = o->workers > 0 ? o->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (f->nworkers < 1) {
        f->nworkers = 1;
    }
    pthread_mutex_init(&f->gen_lock, NULL);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    DBT_TRY(dbt_ev_loop_new(&f->loop));
    dbt_ev_set_data(f->loop, f);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    DBT_ENSURE(sfd >= 0, IO, "signalfd: %s", strerror(errno));
    DBT_TRY(dbt_ev_io_add(f->loop, &f->sigio, sfd, EPOLLIN, signal_cb));
    dbt_ev_timer_init(&f->tick, tick_cb);
    dbt_ev_timer_init(&f->drain, drain_cb);

    f->workers = calloc((size_t)f->nworkers, sizeof(*f->workers));
    DBT_ENSURE(f->workers != NULL, NOMEM, "out of memory");
    for (int i = 0; i < f->nworkers; i++) {
        DBT_TRY(worker_init(f, &f->workers[i], i));
    }
    /* first generation: any error refuses to start */
    DBT_TRY(dbt_loader_reload(f, true));
    dbt_loader_commit_listeners(f);
    for (int i = 0; i < f->nworkers; i++) {
        int rc = pthread_create(&f->workers[i].thread, NULL, worker_main, &f->workers[i]);
        DBT_ENSURE(rc == 0, IO, "pthread_create: %s", strerror(rc));
        f->workers_started = true;
    }
    f->workers_started = true;
    DBT_TRY(dbt_loader_start(f));
    dbt_info("%d worker%s started", f->nworkers, f->nworkers == 1 ? "" : "s");
    *out = f;
    f = NULL;
out:
    if (f != NULL) {
        dbt_front_free(f);
    }
    return res;
}

dbt_res dbt_front_run(struct dbt_front *f)
{
    dbt_res r = dbt_ev_run(f->loop);
    for (int w = 0; w < f->nworkers; w++) {
        dbt_worker_send(&f->workers[w], DBT_WORKER_CMD_STOP, -1, NULL);
    }
    return r;
}

void dbt_front_free(struct dbt_front *f)
{
    if (f == NULL) {
        return;
    }
    /* the workers first: the loader may be in a store call that takes a while (dbtlsd does not
       wait for it), and what it still hands the workers stays in their inboxes, closed below */
    for (int w = 0; f->workers != NULL && w < f->nworkers; w++) {
        struct dbt_worker *wk = &f->workers[w];
        if (wk->thread != 0) {
            dbt_worker_send(wk, DBT_WORKER_CMD_STOP, -1, NULL);
            pthread_join(wk->thread, NULL);
            wk->thread = 0;
        }
    }
    dbt_loader_free(f);
    if (f->workers != NULL) {
        for (int w = 0; w < f->nworkers; w++) {
            struct dbt_worker *wk = &f->workers[w];
            if (wk->loop != NULL) {
                pthread_mutex_lock(&wk->lock);
                for (size_t i = 0; i < wk->n_cmds; i++) {
                    if (wk->cmds[i].fd >= 0) {
                        close(wk->cmds[i].fd);
                    }
                }
                free(wk->cmds);
                pthread_mutex_unlock(&wk->lock);
                dbt_ev_async_cleanup(wk->loop, &wk->wake);
                dbt_ev_loop_free(wk->loop);
            }
            pthread_mutex_destroy(&wk->lock);
        }
        free(f->workers);
    }
    if (f->loop != NULL) {
        int sfd = f->sigio.fd;
        dbt_ev_io_del(f->loop, &f->sigio);
        if (sfd >= 0) {
            close(sfd);
        }
        dbt_ev_loop_free(f->loop);
    }
    dbt_gen_unref(f->gen);
    pthread_mutex_destroy(&f->gen_lock);
    free(f);
    /* the workers are gone: nobody reads the ranges (a release cannot fail) */
    dbt_res released = dbt_session_set_proxy_from(NULL, 0);
    (void)released;
}

dbt_res dbt_front_connections(struct dbt_front *f, struct dbt_conn_row **rows, size_t *n)
{
    size_t cap = 0, len = 0;
    struct dbt_conn_row *out = NULL;
    for (int w = 0; w < f->nworkers; w++) {
        struct dbt_worker *wk = &f->workers[w];
        pthread_mutex_lock(&wk->lock);
        for (struct dbt_session *s = wk->sessions; s != NULL; s = s->next) {
            if (len == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct dbt_conn_row *nr = realloc(out, ncap * sizeof(*nr));
                if (nr == NULL) {
                    pthread_mutex_unlock(&wk->lock);
                    free(out);
                    return dbt_fail(DBT_E_NOMEM, "connections: out of memory");
                }
                out = nr;
                cap = ncap;
            }
            out[len].st = s->st;
            if (s->cert != NULL) {
                out[len].cert = *s->cert;
            } else {
                memset(&out[len].cert, 0, sizeof(out[len].cert));
            }
            out[len].bytes_in = atomic_load_explicit(&s->bytes_in, memory_order_relaxed);
            out[len].bytes_out = atomic_load_explicit(&s->bytes_out, memory_order_relaxed);
            out[len].buffered = atomic_load_explicit(&s->buffered, memory_order_relaxed);
            len++;
        }
        pthread_mutex_unlock(&wk->lock);
    }
    *rows = out;
    *n = len;
    return DBT_OK;
}
