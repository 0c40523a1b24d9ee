/*
 * admin.h - the admin API of dbtlsd: HTTP + JSON (libmicrohttpd, jansson) on a unix socket that
 * only the daemon's user may open (mode 0600). Serves GET /v1/connections, the rows of
 * pg_stat_ssl joined with pg_stat_activity for every connection through the front (DESIGN.md §5).
 */
#ifndef DBT_ADMIN_ADMIN_H
#define DBT_ADMIN_ADMIN_H

#include "base/err.h"
#include "front/front.h"

struct dbt_admin;

/*
 * Creates the socket at path (an existing stale socket file is replaced; anything else there is
 * an error), chmod 0600, and serves it on libmicrohttpd's own thread.
 */
dbt_res dbt_admin_start(struct dbt_front *front, const char *path, struct dbt_admin **out) DBT_WUR;
/* Stops serving and removes the socket file. */
void dbt_admin_stop(struct dbt_admin *a);

/* The JSON document of GET /v1/connections (caller frees). */
char *dbt_admin_connections_json(const struct dbt_conn_row *rows, size_t n);

#endif
