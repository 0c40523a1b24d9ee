/*
 * ev.h - a small epoll event loop with timers, one loop per worker thread (as in Redis' ae, h2o
 * and HAProxy). File descriptors are watched level-triggered through a struct dbt_ev_io embedded
 * in the owner's object; timers are a binary min-heap of struct dbt_ev_timer, also embedded.
 * A loop may be woken from another thread with an async handle (eventfd).
 *
 * Threading: everything except dbt_ev_async_send and dbt_ev_stop runs on the loop's thread.
 * Removing an io while events are being dispatched is safe: pending events for it are skipped,
 * provided its memory stays valid until the current dispatch round ends (see
 * dbt_ev_defer_free).
 */
#ifndef DBT_EV_EV_H
#define DBT_EV_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "base/err.h"

struct dbt_ev_loop;
struct dbt_ev_io;
struct dbt_ev_timer;

typedef void (*dbt_ev_io_cb)(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents);
typedef void (*dbt_ev_timer_cb)(struct dbt_ev_loop *l, struct dbt_ev_timer *t);

struct dbt_ev_io {
    int fd;          /* -1 when not registered */
    uint32_t events; /* EPOLLIN | EPOLLOUT currently registered */
    dbt_ev_io_cb cb;
};

struct dbt_ev_timer {
    uint64_t when_ms; /* monotonic deadline */
    size_t idx;       /* heap slot + 1; 0 when not armed */
    dbt_ev_timer_cb cb;
};

struct dbt_ev_async {
    struct dbt_ev_io io;
    void (*cb)(struct dbt_ev_loop *l, struct dbt_ev_async *a);
};

dbt_res dbt_ev_loop_new(struct dbt_ev_loop **out) DBT_WUR;
void dbt_ev_loop_free(struct dbt_ev_loop *l);

/* Starts watching fd for events (EPOLLIN/EPOLLOUT; 0 = registered but idle). */
dbt_res dbt_ev_io_add(struct dbt_ev_loop *l, struct dbt_ev_io *io, int fd, uint32_t events,
                      dbt_ev_io_cb cb) DBT_WUR;
/* Changes the watched events (no system call when unchanged). */
dbt_res dbt_ev_io_mod(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t events) DBT_WUR;
/* Stops watching (does not close the fd); io->fd becomes -1. No-op when not registered. */
void dbt_ev_io_del(struct dbt_ev_loop *l, struct dbt_ev_io *io);

static inline void dbt_ev_timer_init(struct dbt_ev_timer *t, dbt_ev_timer_cb cb)
{
    t->when_ms = 0;
    t->idx = 0;
    t->cb = cb;
}
/* Arms (or re-arms) t at absolute monotonic time when_ms. */
dbt_res dbt_ev_timer_set(struct dbt_ev_loop *l, struct dbt_ev_timer *t, uint64_t when_ms) DBT_WUR;
void dbt_ev_timer_cancel(struct dbt_ev_loop *l, struct dbt_ev_timer *t);
static inline bool dbt_ev_timer_armed(const struct dbt_ev_timer *t)
{
    return t->idx != 0;
}

/* An eventfd-based wakeup: dbt_ev_async_send from any thread makes cb run on the loop. */
dbt_res dbt_ev_async_init(struct dbt_ev_loop *l, struct dbt_ev_async *a,
                          void (*cb)(struct dbt_ev_loop *l, struct dbt_ev_async *a)) DBT_WUR;
void dbt_ev_async_send(struct dbt_ev_async *a);
void dbt_ev_async_cleanup(struct dbt_ev_loop *l, struct dbt_ev_async *a);

/*
 * Registers fn(arg) to run after the current dispatch round (to free objects whose io may still
 * have events pending in this round).
 */
dbt_res dbt_ev_defer(struct dbt_ev_loop *l, void (*fn)(void *arg), void *arg) DBT_WUR;

/* Runs until dbt_ev_stop. IO errors of epoll_wait other than EINTR end it with IO. */
dbt_res dbt_ev_run(struct dbt_ev_loop *l) DBT_WUR;
/* Runs one round: waits at most timeout_ms (-1 = until an event or timer), dispatches. */
dbt_res dbt_ev_run_once(struct dbt_ev_loop *l, int timeout_ms) DBT_WUR;
/* Makes dbt_ev_run return after the current round (loop thread; use an async from others). */
void dbt_ev_stop(struct dbt_ev_loop *l);

/* User data attached to the loop (e.g. the worker that owns it). */
void dbt_ev_set_data(struct dbt_ev_loop *l, void *data);
void *dbt_ev_data(const struct dbt_ev_loop *l);

#endif
