/*
 * test_ev.c - the epoll loop: timers fire in deadline order and not before, cancel and re-arm,
 * level-triggered fd events with interest changes, removal while events are pending, eventfd
 * wakeups from another thread, deferred work after a round.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "check.h"
#include "ev/ev.h"

struct tt {
    struct dbt_ev_timer t;
    int id;
};

static int fired[16];
static int n_fired;

static void on_timer(struct dbt_ev_loop *l, struct dbt_ev_timer *t)
{
    struct tt *x = (struct tt *)t;
    fired[n_fired++] = x->id;
    if (n_fired == 3) {
        dbt_ev_stop(l);
    }
}

static void test_timers(void)
{
    struct dbt_ev_loop *l = NULL;
    CHECK_OK(dbt_ev_loop_new(&l));
    struct tt a = {.id = 1}, b = {.id = 2}, c = {.id = 3}, d = {.id = 4};
    dbt_ev_timer_init(&a.t, on_timer);
    dbt_ev_timer_init(&b.t, on_timer);
    dbt_ev_timer_init(&c.t, on_timer);
    dbt_ev_timer_init(&d.t, on_timer);
    uint64_t now = dbt_now_ms();
    CHECK_OK(dbt_ev_timer_set(l, &a.t, now + 60));
    CHECK_OK(dbt_ev_timer_set(l, &b.t, now + 20));
    CHECK_OK(dbt_ev_timer_set(l, &c.t, now + 40));
    CHECK_OK(dbt_ev_timer_set(l, &d.t, now + 30));
    CHECK(dbt_ev_timer_armed(&d.t));
    dbt_ev_timer_cancel(l, &d.t);
    CHECK(!dbt_ev_timer_armed(&d.t));
    dbt_ev_timer_cancel(l, &d.t); /* twice is harmless */
    /* re-arming moves it */
    CHECK_OK(dbt_ev_timer_set(l, &c.t, now + 10));
    CHECK_OK(dbt_ev_run(l));
    CHECK(n_fired == 3);
    CHECK(fired[0] == 3 && fired[1] == 2 && fired[2] == 1);
    CHECK(dbt_now_ms() >= now + 60);
    dbt_ev_loop_free(l);
}

struct pipe_io {
    struct dbt_ev_io io;
    int reads;
    struct dbt_ev_io *victim;
};

static void on_readable(struct dbt_ev_loop *l, struct dbt_ev_io *io, uint32_t ev)
{
    struct pipe_io *p = (struct pipe_io *)io;
    p->reads++;
    if (p->victim != NULL) {
        dbt_ev_io_del(l, p->victim); /* its pending event this round must be skipped */
    }
}

static void test_io(void)
{
    struct dbt_ev_loop *l = NULL;
    CHECK_OK(dbt_ev_loop_new(&l));
    int p1[2], p2[2];
    CHECK(pipe(p1) == 0 && pipe(p2) == 0);
    struct pipe_io a = {0}, b = {0};
    CHECK_OK(dbt_ev_io_add(l, &a.io, p1[0], EPOLLIN, on_readable));
    CHECK_OK(dbt_ev_io_add(l, &b.io, p2[0], EPOLLIN, on_readable));
    CHECK_OK(dbt_ev_run_once(l, 0));
    CHECK(a.reads == 0 && b.reads == 0);
    CHECK(write(p1[1], "x", 1) == 1);
    CHECK_OK(dbt_ev_run_once(l, 100));
    CHECK(a.reads == 1);
    /* level-triggered: still readable, fires again */
    CHECK_OK(dbt_ev_run_once(l, 100));
    CHECK(a.reads == 2);
    /* interest off: no events */
    CHECK_OK(dbt_ev_io_mod(l, &a.io, 0));
    CHECK_OK(dbt_ev_run_once(l, 0));
    CHECK(a.reads == 2);
    CHECK_OK(dbt_ev_io_mod(l, &a.io, EPOLLIN));
    /* both ready; whichever runs first removes the other: exactly one callback */
    CHECK(write(p2[1], "y", 1) == 1);
    a.victim = &b.io;
    b.victim = &a.io;
    int before = a.reads + b.reads;
    CHECK_OK(dbt_ev_run_once(l, 100));
    CHECK(a.reads + b.reads == before + 1);
    CHECK(a.io.fd == -1 || b.io.fd == -1);
    dbt_ev_io_del(l, &a.io);
    dbt_ev_io_del(l, &b.io);
    CHECK_ERR(dbt_ev_io_mod(l, &a.io, EPOLLIN), DBT_E_INTERNAL);
    CHECK_ERR(dbt_ev_io_add(l, &a.io, 9999, EPOLLIN, on_readable), DBT_E_IO);
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
    dbt_ev_loop_free(l);
}

static int woke;
static int deferred;

static void on_defer(void *arg)
{
    deferred += *(int *)arg;
}

static void on_wake(struct dbt_ev_loop *l, struct dbt_ev_async *a)
{
    woke++;
    static int three = 3;
    if (!dbt_ok(dbt_ev_defer(l, on_defer, &three))) {
        return;
    }
    CHECK(deferred == 0); /* runs after the round, not now */
    dbt_ev_stop(l);
}

static void *sender(void *arg)
{
    usleep(20000);
    dbt_ev_async_send(arg);
    dbt_ev_async_send(arg); /* coalesced */
    return NULL;
}

static void test_async(void)
{
    struct dbt_ev_loop *l = NULL;
    CHECK_OK(dbt_ev_loop_new(&l));
    struct dbt_ev_async a;
    CHECK_OK(dbt_ev_async_init(l, &a, on_wake));
    pthread_t th;
    pthread_create(&th, NULL, sender, &a);
    CHECK_OK(dbt_ev_run(l));
    pthread_join(th, NULL);
    CHECK(woke == 1);
    CHECK(deferred == 3);
    dbt_ev_async_cleanup(l, &a);
    dbt_ev_loop_free(l);
}

int main(void)
{
    test_timers();
    test_io();
    test_async();
    return check_exit();
}
