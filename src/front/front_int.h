/*
 * front_int.h - internal to front.c and loader.c: the daemon's state, shared by the main thread
 * (signals, graceful shutdown) and the loader thread (the store: change counter, notifications,
 * reloads, listener sockets).
 *
 * Ownership: after dbt_front_start, everything under "loader" is touched by the loader thread
 * only; gen is swapped by the loader under gen_lock and read by workers under it; the main
 * thread talks to the loader through loader_kick with the atomic flags.
 */
#ifndef DBT_FRONT_INT_H
#define DBT_FRONT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ev/ev.h"
#include "front/files.h"
#include "front/front.h"
#include "front/worker.h"

struct lset {
    char key[300];
    int *fds; /* one per worker; -1 once handed over */
};

struct dbt_front {
    struct dbt_front_opts o;
    int nworkers;
    struct dbt_worker *workers;
    pthread_mutex_t gen_lock;
    struct dbt_gen *gen;
    char reload_error[512]; /* why the last reload failed, "" after one that worked; gen_lock */
    bool workers_started;

    /* main thread */
    struct dbt_ev_loop *loop;
    struct dbt_ev_io sigio;
    struct dbt_ev_timer tick;
    bool shutting_down;        /* no longer accepting */
    _Atomic bool draining;     /* SIGTERM seen: health checks fail (any thread reads it) */
    struct dbt_ev_timer drain; /* --drain-delay: when to stop accepting */
    uint64_t shutdown_deadline;

    /* loader */
    struct dbt_ev_loop *lloop;
    pthread_t lthread;
    bool lstarted;
    struct dbt_ev_async lkick;
    _Atomic bool lhup;    /* SIGHUP: reload now */
    _Atomic bool lstop;   /* shutting down: no more reloads, leave the loop */
    uint64_t next_gen_id; /* the id of the last generation put in use */
    uint64_t last_counter;
    int64_t refresh_at;     /* unix time: rebuild to re-sign CRLs (dbt_gen_refresh_at) */
    struct dbt_files files; /* what the last load read from disk, checked every second */
    struct dbt_ev_timer files_timer;
    struct dbt_ev_timer dns_timer; /* backend host names moved? (dns.h) */
    bool *dns_warned;              /* per instance of dns_gen_id: a lookup failure was logged */
    uint64_t dns_gen_id;
    struct lset *lsets;
    size_t n_lsets;
    struct dbt_ev_timer poll;
    struct dbt_ev_io watch_io;
    bool watching;           /* watch_io is registered on an open watch */
    bool watch_none;         /* the store has no notifications: poll only */
    bool watch_warned;       /* an outage is logged once */
    uint64_t watch_retry_ms; /* when to try opening a lost watch again */
};

#define DBT_WORKER_CMD_ADD 1
#define DBT_WORKER_CMD_CLOSE_KEY 2
#define DBT_WORKER_CMD_CLOSE_ALL 3
#define DBT_WORKER_CMD_STOP 4

/* Queues a command for a worker (any thread). */
void dbt_worker_send(struct dbt_worker *w, int kind, int fd, const char *key);

/* loader.c */

/* Rebuilds the generation now (the caller's thread: dbt_front_start before the loader runs,
   then the loader). Failure keeps the old one and returns the reason. */
dbt_res dbt_loader_reload(struct dbt_front *f, bool full) DBT_WUR;
/* Hands the listener sockets of the current generation to the workers (after they exist). */
void dbt_loader_commit_listeners(struct dbt_front *f);
/* Starts the loader thread: change notifications, the counter poll, SIGHUP reloads. */
dbt_res dbt_loader_start(struct dbt_front *f) DBT_WUR;
/* Main thread: asks for a reload (SIGHUP) / for the loader to stop. Neither waits. */
void dbt_loader_request_reload(struct dbt_front *f);
void dbt_loader_request_stop(struct dbt_front *f);
/* Stops and joins the loader (waits for a store call in progress), frees its state. */
void dbt_loader_free(struct dbt_front *f);

#endif
