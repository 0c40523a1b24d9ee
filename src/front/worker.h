/*
 * worker.h - internal to the front: a worker thread (its loop, listeners, sessions) and the
 * session entry points the worker calls. Not for protocols (they use session.h).
 */
#ifndef DBT_FRONT_WORKER_H
#define DBT_FRONT_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>

#include "ev/ev.h"
#include "front/front.h"
#include "front/session.h"

struct dbt_listener {
    struct dbt_ev_io io;
    struct dbt_ev_timer pause; /* re-enables accepting after running out of descriptors */
    struct dbt_worker *w;
    char key[300]; /* the instance listen text */
    struct dbt_listener *next;
};

/* A command from the main thread to a worker (guarded by the worker lock). */
struct dbt_worker_cmd {
    int kind; /* 1 = add listener fd, 2 = close listener key, 3 = close all listeners, 4 = stop */
    int fd;
    char key[300];
};

struct dbt_worker {
    int idx;
    struct dbt_front *front;
    pthread_t thread;
    struct dbt_ev_loop *loop;
    struct dbt_ev_async wake;
    pthread_mutex_t lock; /* sessions list + status fields + cmds */
    struct dbt_session *sessions;
    _Atomic size_t n_sessions;
    struct dbt_listener *listeners; /* worker thread only */
    bool stopped; /* worker thread only: a listener handed over after the stop is closed, not
                     watched (a reload racing SIGTERM; it would outlive the final clean-up) */
    struct dbt_worker_cmd *cmds;
    size_t n_cmds, cap_cmds;
};

/* Creates a session for an accepted fd (takes fd). */
void dbt_session_accept(struct dbt_worker *w, struct dbt_gen *gen, const struct dbt_gen_inst *inst,
                        int fd, const struct sockaddr_storage *peer, socklen_t peerlen);
/* Closes every session of the worker now (shutdown timeout). */
void dbt_session_close_all(struct dbt_worker *w);

/*
 * The daemon-wide settings sessions read (settings.c), set by the front from dbtlsd's options
 * before the workers start. --auth-timeout:
 */
void dbt_session_set_auth_timeout_ms(uint64_t ms);
/* --tcp-keepalives-*, --tcp-user-timeout: for TCP backend legs. */
void dbt_session_set_tcp_opts(const struct dbt_net_tcp_opts *tcp);
const struct dbt_net_tcp_opts *dbt_session_tcp_opts(void);
/* --log-connections, --log-disconnections: PostgreSQL's log lines of the same names, at info
 * level, for sessions that authenticated (each call logs only when its option is on). */
void dbt_session_set_logging(bool connections, bool disconnections);
void dbt_session_log_authorized(const struct dbt_session *s);
void dbt_session_log_disconnection(const struct dbt_session *s);
/* --proxy-protocol-from: peers in these ranges send a PROXY header first (list copied). */
dbt_res dbt_session_set_proxy_from(const struct dbt_net_cidr *list, size_t n) DBT_WUR;
bool dbt_session_proxy_trusted(const struct sockaddr *peer);

#endif
