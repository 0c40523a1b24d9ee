/*
 * ev.c - the epoll loop of ev.h: level-triggered fd watches, a binary min-heap of timers, eventfd
 * wakeups and deferred frees run after each dispatch round.
 */
#include "ev/ev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"

#define EV_BATCH 128

struct ev_deferred {
    void (*fn)(void *arg);
    void *arg;
};

struct dbt_ev_loop {
    int epfd;
    bool stop;
    void *data;
    struct dbt_ev_timer **heap;
    size_t n_heap, cap_heap;
    struct ev_deferred *defer;
    size_t n_defer, cap_defer;
};

dbt_res dbt_ev_loop_new(struct dbt_ev_loop **out)
{
    struct dbt_ev_loop *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return dbt_fail(DBT_E_NOMEM, "event loop: out of memory");
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = errno;
        free(l);
        return dbt_fail(DBT_E_IO, "epoll_create1: %s", strerror(e));
    }
    *out = l;
    return DBT_OK;
}

void dbt_ev_loop_free(struct dbt_ev_loop *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n_defer; i++) {
        l->defer[i].fn(l->defer[i].arg);
    }
    close(l->epfd);
    free(l->heap);
    free(l->defer);
    free(l);
}

dbt_res dbt_ev_io_add(struct dbt_ev_loop *l, struct dbt_ev_io *io, int fd, uint32_t events,
                      dbt_ev_io_cb cb)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        return dbt_fail(DBT_E_IO, "epoll_ctl(ADD, fd %d): %s", fd, strerror(errno));
    }
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    return DBT_OK;
}

dbt_res dbt_ev_io_mod(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t events)
{
    if (io->fd < 0) {
        return dbt_fail(DBT_E_INTERNAL, "epoll: modify of an unregistered io");
    }
    if (io->events == events) {
        return DBT_OK;
    }
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) {
        return dbt_fail(DBT_E_IO, "epoll_ctl(MOD, fd %d): %s", io->fd, strerror(errno));
    }
    io->events = events;
    return DBT_OK;
}

void dbt_ev_io_del(struct dbt_ev_loop *l, struct dbt_ev_io *io)
{
    if (io->fd < 0) {
        return;
    }
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->fd = -1;
    io->events = 0;
}

/* --- timers: min-heap on when_ms; t->idx is slot+1 so 0 means "not armed" --- */

static void heap_swap(struct dbt_ev_loop *l, size_t a, size_t b)
{
    struct dbt_ev_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->idx = a + 1;
    l->heap[b]->idx = b + 1;
}

static void heap_up(struct dbt_ev_loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->when_ms <= l->heap[i]->when_ms) {
            break;
        }
        heap_swap(l, p, i);
        i = p;
    }
}

static void heap_down(struct dbt_ev_loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap) {
            break;
        }
        if (c + 1 < l->n_heap && l->heap[c + 1]->when_ms < l->heap[c]->when_ms) {
            c++;
        }
        if (l->heap[i]->when_ms <= l->heap[c]->when_ms) {
            break;
        }
        heap_swap(l, i, c);
        i = c;
    }
}

void dbt_ev_timer_cancel(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    if (t->idx == 0) {
        return;
    }
    size_t i = t->idx - 1;
    size_t last = l->n_heap - 1;
    if (i != last) {
        heap_swap(l, i, last);
    }
    l->n_heap--;
    t->idx = 0;
    if (i < l->n_heap) {
        heap_up(l, i);
        heap_down(l, i);
    }
}

dbt_res dbt_ev_timer_set(struct dbt_ev_loop *l, struct dbt_ev_timer *t, uint64_t when_ms)
{
    dbt_ev_timer_cancel(l, t);
    if (l->n_heap == l->cap_heap) {
        size_t ncap = l->cap_heap ? l->cap_heap * 2 : 64;
        struct dbt_ev_timer **nh = realloc(l->heap, ncap * sizeof(*nh));
        if (nh == NULL) {
            return dbt_fail(DBT_E_NOMEM, "timer heap: out of memory");
        }
        l->heap = nh;
        l->cap_heap = ncap;
    }
    t->when_ms = when_ms;
    l->heap[l->n_heap] = t;
    t->idx = ++l->n_heap;
    heap_up(l, t->idx - 1);
    return DBT_OK;
}

/* --- async wakeups --- */

static void async_ready(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t revents)
{
    struct dbt_ev_async *a = (struct dbt_ev_async *)io;
    uint64_t v;
    while (read(io->fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
    a->cb(l, a);
}

dbt_res dbt_ev_async_init(struct dbt_ev_loop *l, struct dbt_ev_async *a,
                          void (*cb)(struct dbt_ev_loop *l, struct dbt_ev_async *a))
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        return dbt_fail(DBT_E_IO, "eventfd: %s", strerror(errno));
    }
    a->cb = cb;
    dbt_res r = dbt_ev_io_add(l, &a->io, fd, EPOLLIN, async_ready);
    if (!dbt_ok(r)) {
        close(fd);
    }
    return r;
}

void dbt_ev_async_send(struct dbt_ev_async *a)
{
    uint64_t one = 1;
    ssize_t n = write(a->io.fd, &one, sizeof(one));
    (void)n; /* EAGAIN means the counter is already non-zero: the wakeup is pending anyway */
}

void dbt_ev_async_cleanup(struct dbt_ev_loop *l, struct dbt_ev_async *a)
{
    int fd = a->io.fd;
    dbt_ev_io_del(l, &a->io);
    if (fd >= 0) {
        close(fd);
    }
}

dbt_res dbt_ev_defer(struct dbt_ev_loop *l, void (*fn)(void *arg), void *arg)
{
    if (l->n_defer == l->cap_defer) {
        size_t ncap = l->cap_defer ? l->cap_defer * 2 : 32;
        struct ev_deferred *nd = realloc(l->defer, ncap * sizeof(*nd));
        if (nd == NULL) {
            return dbt_fail(DBT_E_NOMEM, "deferred list: out of memory");
        }
        l->defer = nd;
        l->cap_defer = ncap;
    }
    l->defer[l->n_defer++] = (struct ev_deferred){fn, arg};
    return DBT_OK;
}

static void run_deferred(struct dbt_ev_loop *l)
{
    /* fn may defer more: loop until empty */
    while (l->n_defer > 0) {
        struct ev_deferred d = l->defer[--l->n_defer];
        d.fn(d.arg);
    }
}

static void run_timers(struct dbt_ev_loop *l)
{
    uint64_t now = dbt_now_ms();
    while (l->n_heap > 0 && l->heap[0]->when_ms <= now) {
        struct dbt_ev_timer *t = l->heap[0];
        dbt_ev_timer_cancel(l, t);
        t->cb(l, t);
    }
}

dbt_res dbt_ev_run_once(struct dbt_ev_loop *l, int timeout_ms)
{
    if (l->n_heap > 0) {
        uint64_t now = dbt_now_ms();
        uint64_t when = l->heap[0]->when_ms;
        int until = when <= now ? 0 : (when - now > 3600000 ? 3600000 : (int)(when - now));
        if (timeout_ms < 0 || until < timeout_ms) {
            timeout_ms = until;
        }
    }
    struct epoll_event evs[EV_BATCH];
    int n = epoll_wait(l->epfd, evs, EV_BATCH, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) {
            return DBT_OK;
        }
        return dbt_fail(DBT_E_IO, "epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        struct dbt_ev_io *io = evs[i].data.ptr;
        if (io->fd < 0) {
            continue; /* removed earlier in this round */
        }
        io->cb(l, io, evs[i].events);
    }
    run_deferred(l);
    run_timers(l);
    run_deferred(l);
    return DBT_OK;
}

dbt_res dbt_ev_run(struct dbt_ev_loop *l)
{
    l->stop = false;
    while (!l->stop) {
        dbt_res r = dbt_ev_run_once(l, -1);
        if (!dbt_ok(r)) {
            return r;
        }
    }
    return DBT_OK;
}

void dbt_ev_stop(struct dbt_ev_loop *l)
{
    l->stop = true;
}

void dbt_ev_set_data(struct dbt_ev_loop *l, void *data)
{
    l->data = data;
}

void *dbt_ev_data(const struct dbt_ev_loop *l)
{
    return l->data;
}
