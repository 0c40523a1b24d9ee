/*
 * loader.c - the front's store side, on a thread of its own (front_int.h): it reads the change
 * counter (polled, or notified through the store's watch), rebuilds the generation when the
 * store changed, on SIGHUP and when client CRLs need re-signing, and opens the listener sockets
 * a new generation needs (so a port in use fails that reload, not a worker).
 *
 * Its own thread so that a store that does not answer (each call waits up to 20 s on a PostgreSQL
 * store) delays reloads only: the main thread keeps obeying SIGTERM and the workers serve on.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/sdnotify.h"
#include "front/dns.h"
#include "front/front_int.h"
#include "front/stats.h"

/* ---- listeners ---- */

static struct lset *lset_find(struct dbt_front *f, const char *key)
{
    for (size_t i = 0; i < f->n_lsets; i++) {
        if (strcmp(f->lsets[i].key, key) == 0) {
            return &f->lsets[i];
        }
    }
    return NULL;
}

/*
 * Makes the listener sockets a generation needs that are not open yet (one per worker). On
 * failure closes what it made. New sets are appended after *n_old.
 */
static dbt_res lsets_open(struct dbt_front *f, const struct dbt_gen *g, size_t *n_old)
{
    dbt_res res = DBT_OK;
    *n_old = f->n_lsets;
    for (size_t i = 0; i < g->n; i++) {
        const char *key = g->insts[i].rt->listen;
        if (lset_find(f, key) != NULL) {
            continue;
        }
        struct lset *nl = realloc(f->lsets, (f->n_lsets + 1) * sizeof(*nl));
        DBT_ENSURE(nl != NULL, NOMEM, "listeners: out of memory");
        f->lsets = nl;
        struct lset *ls = &f->lsets[f->n_lsets];
        memset(ls, 0, sizeof(*ls));
        snprintf(ls->key, sizeof(ls->key), "%s", key);
        ls->fds = malloc((size_t)f->nworkers * sizeof(int));
        DBT_ENSURE(ls->fds != NULL, NOMEM, "listeners: out of memory");
        f->n_lsets++;
        for (int w = 0; w < f->nworkers; w++) {
            ls->fds[w] = -1;
        }
        for (int w = 0; w < f->nworkers; w++) {
            res = dbt_net_listen(&g->listen[i], 1024, &f->o.tcp, &ls->fds[w]);
            if (!dbt_ok(res)) {
                res = dbt_fail_ctx(res, "instance \"%s\": ", g->insts[i].rt->name);
                goto out;
            }
        }
    }
out:
    if (!dbt_ok(res)) {
        for (size_t i = *n_old; i < f->n_lsets; i++) {
            for (int w = 0; w < f->nworkers; w++) {
                if (f->lsets[i].fds[w] >= 0) {
                    close(f->lsets[i].fds[w]);
                }
            }
            free(f->lsets[i].fds);
        }
        f->n_lsets = *n_old;
    }
    return res;
}

/* Hands new listener sockets to the workers and closes those no instance uses any more. */
static void lsets_commit(struct dbt_front *f, const struct dbt_gen *g, size_t n_old)
{
    for (size_t i = n_old; i < f->n_lsets; i++) {
        for (int w = 0; w < f->nworkers; w++) {
            dbt_worker_send(&f->workers[w], DBT_WORKER_CMD_ADD, f->lsets[i].fds[w],
                            f->lsets[i].key);
            f->lsets[i].fds[w] = -1;
        }
        dbt_info("listening on %s", f->lsets[i].key);
    }
    for (size_t i = 0; i < f->n_lsets;) {
        if (dbt_gen_find_listen(g, f->lsets[i].key) != NULL) {
            i++;
            continue;
        }
        for (int w = 0; w < f->nworkers; w++) {
            dbt_worker_send(&f->workers[w], DBT_WORKER_CMD_CLOSE_KEY, -1, f->lsets[i].key);
        }
        dbt_info("stopped listening on %s", f->lsets[i].key);
        free(f->lsets[i].fds);
        f->lsets[i] = f->lsets[f->n_lsets - 1];
        f->n_lsets--;
    }
}

/* ---- generations ---- */

/* full: read and build every instance afresh (start, SIGHUP); else unchanged instances keep
   their decrypted key, CRL and TLS context from the generation in use. */
static dbt_res load_gen(struct dbt_front *f, bool full, struct dbt_gen **out)
{
    struct dbt_rt_config *cfg = NULL;
    const struct dbt_gen *prev = full ? NULL : f->gen; /* only this thread swaps f->gen */
    dbt_res r = f->o.load(f->o.arg, prev != NULL ? prev->cfg : NULL, &cfg);
    if (!dbt_ok(r)) {
        return r;
    }
    uint64_t counter = cfg->change_counter;
    struct dbt_files files;
    if (dbt_ok(dbt_files_collect(cfg, &files))) { /* before the build reads them */
        dbt_files_free(&f->files);
        f->files = files;
    }
    r = dbt_gen_build(cfg, f->o.free_config, f->next_gen_id + 1, prev, out); /* takes cfg */
    if (dbt_ok(r)) {
        f->last_counter = counter;
    }
    return r;
}

/* Says which instances share an address, and which one takes connections without a server
   name: where a connection lands is then in the log. */
static void log_shared(const struct dbt_gen *g)
{
    for (size_t i = 0; i < g->n; i++) {
        const struct dbt_gen_inst *first = &g->insts[i];
        if (first->listen_first != first || !first->listen_shared) {
            continue;
        }
        char names[512];
        size_t used = 0, n = 0;
        names[0] = '\0';
        for (const struct dbt_gen_inst *m = first->listen_next; m != NULL; m = m->listen_next) {
            n++;
            if (used < sizeof(names)) {
                int k = snprintf(names + used, sizeof(names) - used, "%s\"%s\"", used ? ", " : "",
                                 m->rt->name);
                used += k > 0 ? (size_t)k : 0;
            }
        }
        dbt_info("%s: instance \"%s\" and %zu more (%s%s) chosen by TLS server name; "
                 "\"%s\" also takes connections without one",
                 first->rt->listen, first->rt->name, n, names, used >= sizeof(names) ? "..." : "",
                 first->rt->name);
    }
}

/* A reload that failed: counted, and shown by `systemctl status` until the next one works. */
static dbt_res reload_failed(struct dbt_front *f, dbt_res r)
{
    dbt_stats_reload(false, 0, 0);
    pthread_mutex_lock(&f->gen_lock);
    snprintf(f->reload_error, sizeof(f->reload_error), "%s", dbt_errmsg());
    pthread_mutex_unlock(&f->gen_lock);
    if (f->gen != NULL) {
        dbt_sd_notify("STATUS=configuration generation %llu active; the last reload failed: %s",
                      (unsigned long long)f->gen->id, dbt_errmsg());
    }
    return r;
}

dbt_res dbt_loader_reload(struct dbt_front *f, bool full)
{
    struct dbt_gen *g = NULL;
    uint64_t t0 = dbt_now_ms();
    dbt_res r = load_gen(f, full, &g);
    if (!dbt_ok(r)) {
        return reload_failed(f, r);
    }
    size_t n_old;
    r = lsets_open(f, g, &n_old);
    if (!dbt_ok(r)) {
        dbt_gen_unref(g);
        return reload_failed(f, r);
    }
    dbt_stats_reload(true, dbt_now_ms() - t0, g->n - g->n_reused);
    pthread_mutex_lock(&f->gen_lock);
    struct dbt_gen *old = f->gen;
    f->gen = g;
    f->reload_error[0] = '\0';
    f->next_gen_id = g->id; /* numbers count the generations used, not the attempts */
    pthread_mutex_unlock(&f->gen_lock);
    if (f->workers_started) {
        lsets_commit(f, g, n_old);
    }
    dbt_gen_unref(old);
    f->refresh_at = dbt_gen_refresh_at(g, dbt_now_unix());
    dbt_info("configuration generation %llu active (%zu instance%s, %zu rebuilt in %llu ms, "
             "change counter %llu)",
             (unsigned long long)g->id, g->n, g->n == 1 ? "" : "s", g->n - g->n_reused,
             (unsigned long long)(dbt_now_ms() - t0), (unsigned long long)f->last_counter);
    dbt_sd_notify("STATUS=configuration generation %llu active (%zu instance%s)",
                  (unsigned long long)g->id, g->n, g->n == 1 ? "" : "s");
    log_shared(g);
    return DBT_OK;
}

/* Reloads from the loader thread; a failure is logged with the generation kept. */
static bool reload_logged(struct dbt_front *f, bool full)
{
    if (dbt_ok(dbt_loader_reload(f, full))) {
        return true;
    }
    dbt_error("reload failed, keeping configuration generation %llu: %s",
              (unsigned long long)f->gen->id, dbt_errmsg());
    return false;
}

/* ---- the store's changes ---- */

/* Reloads when the change counter moved (how: "polled" or "notified"), or when the client CRLs
   are halfway to their nextUpdate. */
static void check_counter(struct dbt_front *f, const char *how)
{
    uint64_t c = 0;
    if (!dbt_ok(f->o.counter(f->o.arg, &c))) {
        dbt_warn("cannot read the change counter: %s", dbt_errmsg());
    } else if (c != f->last_counter) {
        dbt_info("configuration changed (change counter %llu, %s): reloading",
                 (unsigned long long)c, how);
        if (!reload_logged(f, false)) {
            f->last_counter = c; /* log once per change, not every poll */
        }
    } else if (dbt_now_unix() >= f->refresh_at) {
        dbt_info("client CRLs are halfway to their nextUpdate: reloading to re-sign them");
        if (!reload_logged(f, false)) {
            f->refresh_at = dbt_now_unix() + 60;
        }
    }
}

/* ---- store change notifications (the poll stays as the safety net) ---- */

#define WATCH_RETRY_MS 5000

static void watch_stop(struct dbt_front *f)
{
    if (f->watching) {
        dbt_ev_io_del(f->lloop, &f->watch_io);
        f->watching = false;
    }
    if (f->o.watch_close != NULL) {
        f->o.watch_close(f->o.arg);
    }
}

static void watch_lost(struct dbt_front *f)
{
    dbt_warn("%s; polling the change counter every %llu ms until they are back", dbt_errmsg(),
             (unsigned long long)f->o.poll_ms);
    watch_stop(f);
    f->watch_warned = true;
    f->watch_retry_ms = dbt_now_ms() + WATCH_RETRY_MS;
}

static void watch_cb(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents)
{
    (void)io;
    (void)revents;
    struct dbt_front *f = dbt_ev_data(l);
    bool changed = false;
    if (!dbt_ok(f->o.watch_read(f->o.arg, &changed))) {
        watch_lost(f);
        check_counter(f, "polled");
    } else if (changed && !atomic_load(&f->lstop)) {
        check_counter(f, "notified");
    }
}

static void watch_start(struct dbt_front *f)
{
    int fd = -1;
    if (f->o.watch_open == NULL || f->watch_none || f->watching) {
        return;
    }
    dbt_res r = f->o.watch_open(f->o.arg, &fd);
    if (dbt_ok(r) && fd < 0) {
        f->watch_none = true;
        return;
    }
    if (dbt_ok(r)) {
        r = dbt_ev_io_add(f->lloop, &f->watch_io, fd, EPOLLIN, watch_cb);
    }
    if (!dbt_ok(r)) {
        if (!f->watch_warned) {
            watch_lost(f);
        } else {
            watch_stop(f);
            f->watch_retry_ms = dbt_now_ms() + WATCH_RETRY_MS;
        }
        return;
    }
    f->watching = true;
    f->watch_warned = false;
    dbt_info("store change notifications on: reloading as soon as the store changes");
}

static void poll_cb(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct dbt_front *f = dbt_ev_data(l);
    if (!f->watching && f->o.watch_open != NULL && !f->watch_none &&
        dbt_now_ms() >= f->watch_retry_ms) {
        watch_start(f); /* then the poll below catches what changed while it was down */
    }
    if (f->o.counter != NULL) {
        check_counter(f, "polled");
    }
    uint64_t every = f->watching ? f->o.watch_poll_ms : f->o.poll_ms;
    if (!dbt_ok(dbt_ev_timer_set(l, t, dbt_now_ms() + every))) {
        dbt_error("poll timer: %s", dbt_errmsg());
    }
}

/* ---- files the configuration names (backend TLS CA, certificate, key) ---- */

#define FILES_CHECK_MS 1000

static void files_cb(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct dbt_front *f = dbt_ev_data(l);
    const struct dbt_file_sig *c = dbt_files_changed(&f->files);
    if (c != NULL && !atomic_load(&f->lstop)) {
        dbt_info("instance \"%s\": file \"%s\" %s: reloading", c->instance, c->path,
                 c->exists ? "changed" : "is gone");
        (void)reload_logged(f, false);
    }
    if (!dbt_ok(dbt_ev_timer_set(l, t, dbt_now_ms() + FILES_CHECK_MS))) {
        dbt_error("file check timer: %s", dbt_errmsg());
    }
}

/* ---- backend host names (dns.h) ---- */

static void dns_cb(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct dbt_front *f = dbt_ev_data(l);
    const struct dbt_gen *g = f->gen; /* only this thread replaces it */
    if (f->dns_gen_id != g->id || f->dns_warned == NULL) {
        free(f->dns_warned);
        f->dns_warned = calloc(g->n ? g->n : 1, sizeof(bool));
        f->dns_gen_id = g->id;
    }
    char why[600];
    if (f->dns_warned != NULL && !atomic_load(&f->lstop) &&
        dbt_dns_backend_moved(g, f->dns_warned, why, sizeof(why))) {
        dbt_info("%s: reloading", why);
        (void)reload_logged(f, false);
    }
    uint64_t next = (uint64_t)f->o.backend_dns_interval_s * 1000;
    if (!dbt_ok(dbt_ev_timer_set(l, t, dbt_now_ms() + next))) {
        dbt_error("backend DNS check timer: %s", dbt_errmsg());
    }
}

/* ---- the thread ---- */

static void kick_cb(struct dbt_ev_loop *l, struct dbt_ev_async *a)
{
    (void)a;
    struct dbt_front *f = dbt_ev_data(l);
    if (atomic_load(&f->lstop)) {
        dbt_ev_stop(l);
        return;
    }
    if (atomic_exchange(&f->lhup, false)) {
        (void)reload_logged(f, true); /* SIGHUP: everything read and built afresh */
    }
}

static void *loader_main(void *arg)
{
    struct dbt_front *f = arg;
    watch_start(f);
    dbt_res r = dbt_ev_timer_set(f->lloop, &f->poll, dbt_now_ms() + f->o.poll_ms);
    if (dbt_ok(r)) {
        r = dbt_ev_timer_set(f->lloop, &f->files_timer, dbt_now_ms() + FILES_CHECK_MS);
    }
    if (dbt_ok(r) && f->o.backend_dns_interval_s > 0) {
        r = dbt_ev_timer_set(f->lloop, &f->dns_timer,
                             dbt_now_ms() + (uint64_t)f->o.backend_dns_interval_s * 1000);
    }
    if (dbt_ok(r)) {
        r = dbt_ev_run(f->lloop);
    }
    if (!dbt_ok(r)) {
        dbt_error("configuration loader stopped: %s", dbt_errmsg());
    }
    watch_stop(f);
    return NULL;
}

void dbt_loader_commit_listeners(struct dbt_front *f)
{
    lsets_commit(f, f->gen, 0);
}

dbt_res dbt_loader_start(struct dbt_front *f)
{
    dbt_res r = dbt_ev_loop_new(&f->lloop);
    if (!dbt_ok(r)) {
        return r;
    }
    dbt_ev_set_data(f->lloop, f);
    dbt_ev_timer_init(&f->poll, poll_cb);
    dbt_ev_timer_init(&f->files_timer, files_cb);
    dbt_ev_timer_init(&f->dns_timer, dns_cb);
    r = dbt_ev_async_init(f->lloop, &f->lkick, kick_cb);
    if (!dbt_ok(r)) {
        return r;
    }
    int rc = pthread_create(&f->lthread, NULL, loader_main, f);
    if (rc != 0) {
        return dbt_fail(DBT_E_IO, "configuration loader: pthread_create: %s", strerror(rc));
    }
    f->lstarted = true;
    return DBT_OK;
}

void dbt_loader_request_reload(struct dbt_front *f)
{
    if (f->lstarted) {
        atomic_store(&f->lhup, true);
        dbt_ev_async_send(&f->lkick);
    }
}

void dbt_loader_request_stop(struct dbt_front *f)
{
    if (f->lstarted) {
        atomic_store(&f->lstop, true);
        dbt_ev_async_send(&f->lkick);
    }
}

void dbt_loader_free(struct dbt_front *f)
{
    if (f->lstarted) {
        dbt_loader_request_stop(f);
        pthread_join(f->lthread, NULL);
        f->lstarted = false;
    } else {
        watch_stop(f);
    }
    if (f->lloop != NULL) {
        dbt_ev_timer_cancel(f->lloop, &f->poll);
        dbt_ev_timer_cancel(f->lloop, &f->files_timer);
        dbt_ev_timer_cancel(f->lloop, &f->dns_timer);
        dbt_ev_async_cleanup(f->lloop, &f->lkick);
        dbt_ev_loop_free(f->lloop);
        f->lloop = NULL;
    }
    free(f->dns_warned);
    f->dns_warned = NULL;
    for (size_t i = 0; i < f->n_lsets; i++) {
        for (int w = 0; w < f->nworkers; w++) {
            if (f->lsets[i].fds[w] >= 0) {
                close(f->lsets[i].fds[w]);
            }
        }
        free(f->lsets[i].fds);
    }
    free(f->lsets);
    f->lsets = NULL;
    f->n_lsets = 0;
    dbt_files_free(&f->files);
}
