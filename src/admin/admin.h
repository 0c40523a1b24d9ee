/*
 * admin.h - the admin API of dbtlsd: HTTP/1.1 + JSON (libmicrohttpd, jansson) on a unix socket
 * that only the daemon's user may open (mode 0600) and, optionally, on TCP with mutual TLS
 * (client certificates from the admin CA, ctl/admin_ca.h; never plaintext TCP). Resources mirror
 * the CLI and Cloud SQL's Admin API (docs/admin-api.md); the handlers call the control library
 * (ctl.h) on their own handles and run on libmicrohttpd's threads, never on a front worker. The
 * front learns of changes through the store's change counter as after any CLI command.
 * GET /v1/connections gives the rows of pg_stat_ssl joined with pg_stat_activity for every
 * connection through the front (DESIGN.md §5).
 */
#ifndef DBT_ADMIN_ADMIN_H
#define DBT_ADMIN_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "ctl/runtime.h"
#include "front/front.h"

struct dbt_admin;

/* Request bodies larger than this are refused with 413 while they are being received. */
#define DBT_ADMIN_MAX_BODY (64u * 1024u)

struct dbt_admin_opts {
    struct dbt_front *front;        /* required: for /v1/connections */
    const char *socket_path;        /* required: the unix socket (0600) */
    const struct dbt_ctl_opts *ctl; /* control handles are opened read-write from these;
                                       NULL = serve only /v1/connections */
    const char *tcp_listen;         /* "HOST:PORT" / "[v6]:PORT": also serve HTTPS with client
                                       certificates from the admin CA; NULL = unix socket only */
    const char *health_listen;      /* "HOST:PORT": also serve /healthz, /healthz/INSTANCE and
                                       /metrics over plain HTTP, read-only (admin/health.c) */
    size_t max_body;                /* 0 = DBT_ADMIN_MAX_BODY */
    int64_t tcp_cert_validity_secs; /* the TCP listener's server certificate (0 = 1 year), renewed
                                       at half its lifetime without a restart */
};

/*
 * Starts the listeners: creates the socket at socket_path (an existing stale socket file is
 * replaced; a live one or anything else there is an error), chmod 0600; with tcp_listen, binds
 * it and issues the listener's server certificate from the admin CA (SAN: the host, localhost,
 * 127.0.0.1, ::1; creating the admin CA on first use). Errors name the address and why.
 */
dbt_res dbt_admin_start_opts(const struct dbt_admin_opts *o, struct dbt_admin **out) DBT_WUR;
/* dbt_admin_start_opts with only front and socket_path: serves GET /v1/connections. */
dbt_res dbt_admin_start(struct dbt_front *front, const char *path, struct dbt_admin **out) DBT_WUR;
/* Stops serving, closes the control handles and removes the socket file. NULL is a no-op. */
void dbt_admin_stop(struct dbt_admin *a);
/* The port the TCP listener is bound to (useful with port 0), or 0 without one. */
int dbt_admin_tcp_port(const struct dbt_admin *a);
/* The same for the health listener. */
int dbt_admin_health_port(const struct dbt_admin *a);

/* The JSON document of GET /v1/connections (caller frees). */
char *dbt_admin_connections_json(const struct dbt_conn_row *rows, size_t n);

#endif
