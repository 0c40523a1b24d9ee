/*
 * front.h - the daemon side of the TLS front: configuration generations, worker threads with
 * their listeners, reload, graceful shutdown, the cancel-key table and the connection list the
 * admin API shows. src/bin/dbtlsd.c wires it to the control plane (ctl/runtime.h) through the
 * load/counter callbacks, so this layer never links the store.
 */
#ifndef DBT_FRONT_FRONT_H
#define DBT_FRONT_FRONT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "ctl/runtime.h"
#include "front/session.h"
#include "net/net.h"

/*
 * An immutable configuration generation: the snapshot it was built from and, per instance, the
 * SSL_CTXs, the resolved addresses and the protocol's compiled rules. Refcounted: the daemon
 * holds the current one, every session holds the one it started with.
 */
struct dbt_gen {
    _Atomic int refs;
    uint64_t id;
    struct dbt_rt_config *cfg; /* owned, released with free_config */
    void (*free_config)(struct dbt_rt_config *cfg);
    struct dbt_gen_inst *insts;
    struct dbt_addr *listen; /* per instance, parallel to insts */
    size_t n;
    size_t n_reused; /* instances whose server TLS context came from the previous generation */
};

/*
 * Builds and validates a whole generation from cfg (ownership of cfg passes to the generation,
 * also on failure, when it is freed). Any invalid instance fails the build with a message naming
 * the instance and why. With prev (the generation in use, or NULL) an instance whose certificate
 * chain, key, client CA, CRL and TLS policy are those of prev's instance of the same name shares
 * prev's server TLS context (immutable, reference-counted) instead of building its own.
 */
dbt_res dbt_gen_build(struct dbt_rt_config *cfg, void (*free_config)(struct dbt_rt_config *),
                      uint64_t id, const struct dbt_gen *prev, struct dbt_gen **out) DBT_WUR;
struct dbt_gen *dbt_gen_ref(struct dbt_gen *g);
void dbt_gen_unref(struct dbt_gen *g);
/*
 * When g must be rebuilt even if nothing changed: each load signs the client CAs' CRLs afresh
 * (ctl/runtime.h, crl_next_update), and a CRL past its nextUpdate makes OpenSSL refuse every
 * client certificate ("CRL has expired"). Returns halfway from now to the earliest nextUpdate,
 * but not sooner than 60 s from now; INT64_MAX when no instance has a CRL.
 */
int64_t dbt_gen_refresh_at(const struct dbt_gen *g, int64_t now);
/*
 * On an address several instances share (inst is any of them): the instance whose endpoint is
 * server_name, compared without regard to case, else the one with the wildcard endpoint
 * "*.<server_name minus its first label>"; NULL when none.
 */
const struct dbt_gen_inst *dbt_gen_sni_find(const struct dbt_gen_inst *inst,
                                            const char *server_name);
/* The instance of g listening on listen_key (the instance's listen text), or NULL. */
const struct dbt_gen_inst *dbt_gen_find_listen(const struct dbt_gen *g, const char *listen_key);

/* --- cancel routing: BackendKeyData key -> the backend that issued it (all workers) --- */

struct dbt_cancel_target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char instance[64]; /* the instance of the session the key belongs to */
};
/* Registers key (pid + secret bytes) for a session of instance; the token identifies it for
   removal. */
dbt_res dbt_cancel_register(uint32_t pid, const uint8_t *key, size_t key_len,
                            const struct sockaddr *addr, socklen_t addrlen, const char *instance,
                            uint64_t *token) DBT_WUR;
void dbt_cancel_unregister(uint32_t pid, uint64_t token);
/* Looks a key up (constant-time comparison of the secret). */
bool dbt_cancel_lookup(uint32_t pid, const uint8_t *key, size_t key_len,
                       struct dbt_cancel_target *out);

/* --- the daemon --- */

struct dbt_front_opts {
    int workers;                  /* 0 = number of cores */
    uint64_t auth_timeout_ms;     /* pre-authentication deadline (default 60 s) */
    uint64_t shutdown_timeout_ms; /* SIGTERM: wait for sessions this long (default 30 s) */
    uint64_t drain_delay_ms;      /* SIGTERM: fail health checks but keep accepting this long
                                     first (default 0) */
    uint64_t poll_ms;             /* change counter poll (default 500 ms) */
    /* load balancers: their connections start with a PROXY header naming the client (copied) */
    const struct dbt_net_cidr *proxy_from;
    size_t n_proxy_from;
    /* look backend host names up again this often (0: only when a generation is built) */
    unsigned backend_dns_interval_s;
    bool log_connections;        /* log each authenticated session (PostgreSQL's setting) */
    bool log_disconnections;     /* log each such session's end with its duration */
    struct dbt_net_tcp_opts tcp; /* client (inherited from the listeners) and TCP backend
                                    connections: SO_KEEPALIVE always, these timings */
    const char *health_user;     /* MySQL/MariaDB health probes log in as this passwordless
                                    account (probe.c); NULL: greeting only. Kept by reference */
    /* Reads a fresh snapshot; prev is the snapshot in use (NULL: read everything afresh), whose
       unchanged material the reader may copy (dbt_ctl_runtime_load). */
    dbt_res (*load)(void *arg, const struct dbt_rt_config *prev, struct dbt_rt_config **out);
    /* Frees a snapshot from load (dbt_rt_config_free for the control plane's). */
    void (*free_config)(struct dbt_rt_config *cfg);
    /* Reads the change counter (cheap). */
    dbt_res (*counter)(void *arg, uint64_t *out);
    /* Optional change notifications (dbt_ctl_watch_*): watch_open gives a descriptor to wait on
       for readability (-1: the store has none, the poll is all); watch_read says whether the
       store changed (an error: the watch is lost; the front closes it, polls every poll_ms and
       opens another every few seconds). While a watch is open the counter poll is only a
       safety net, every watch_poll_ms (default 10 s). */
    dbt_res (*watch_open)(void *arg, int *fd);
    dbt_res (*watch_read)(void *arg, bool *changed);
    void (*watch_close)(void *arg);
    uint64_t watch_poll_ms;
    void *arg;
};

struct dbt_front;

/*
 * Loads and builds the first generation, binds every listener in every worker and starts the
 * workers. Any failure (invalid configuration, a port in use) refuses to start with the reason.
 * Blocks SIGTERM/SIGINT/SIGHUP in the calling thread (call it before other threads start).
 */
dbt_res dbt_front_start(const struct dbt_front_opts *o, struct dbt_front **out) DBT_WUR;

/*
 * Runs the main loop on the calling thread (signals; reloads on SIGHUP and on change-counter
 * changes, polled or notified through the watch, run on a loader thread of the front's own);
 * returns after SIGTERM/SIGINT once sessions have finished or the shutdown timeout passed.
 */
dbt_res dbt_front_run(struct dbt_front *f) DBT_WUR;
void dbt_front_free(struct dbt_front *f);

/* The current generation, referenced (dbt_gen_unref it; never NULL once started). */
struct dbt_gen *dbt_front_current_gen(struct dbt_front *f);
/* Whether the last reload failed (the generation before it still serves), and why in buf. */
bool dbt_front_reload_error(struct dbt_front *f, char *buf, size_t n);
/* Whether SIGTERM has started the graceful stop: health checks fail from then on. Any thread. */
bool dbt_front_draining(struct dbt_front *f);
/*
 * Whether the backend of instance (in the current generation) answers, without logging in
 * (probe.c says how, and when what sessions saw answers instead): OK with *detail like
 * "PostgreSQL answered at 127.0.0.1:5432 in 1 ms" or "backend 127.0.0.1:5432 reached 4 s ago";
 * NOT_FOUND for an instance the generation does not have; IO with the reason. Blocks up to
 * timeout_ms: call it from a thread of its own (the health listener's), never a worker.
 */
dbt_res dbt_front_probe(struct dbt_front *f, const char *instance, uint64_t timeout_ms,
                        char *detail, size_t n) DBT_WUR;
/* A session reached (ok) or failed to reach the backend of instance: dbt_front_probe's evidence,
   the backend connection counters, and the log's outage lines (one when the backend stops
   answering, one when it answers again, with how long and how many failed). Any thread. */
void dbt_front_backend_seen(const char *instance, bool ok);
/* Whether a failed connection to instance's backend belongs to an outage already logged: the
   session then logs its own failure at debug level. Any thread. */
bool dbt_front_backend_quiet(const char *instance);

/* One row of GET /v1/connections (a copy, consistent per row). */
struct dbt_conn_row {
    struct dbt_session_status st;
    struct dbt_session_cert cert; /* the client certificate's fields ("" without one) */
    uint64_t bytes_in, bytes_out;
    uint64_t buffered; /* bytes of buffers the session holds (0 when idle) */
};
/* Snapshot of every session on every worker; *rows is malloc'd (free it). */
dbt_res dbt_front_connections(struct dbt_front *f, struct dbt_conn_row **rows, size_t *n) DBT_WUR;

#endif
