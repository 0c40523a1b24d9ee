/*
 * internal.h - what admin.c (sockets, libmicrohttpd, TLS client check) and api.c (routing and the
 * resource handlers) share. Not used outside src/admin.
 */
#ifndef DBT_ADMIN_INTERNAL_H
#define DBT_ADMIN_INTERNAL_H

#include <microhttpd.h>
#include <stddef.h>

#include "front/front.h"

struct dbt_ctl;

/* One listener's view of the world: handlers of one listener run on its MHD thread only, so
   each listener owns its own control handle (ctl.h: one handle per thread). */
struct dbt_admin_ctx {
    struct dbt_front *front;
    struct dbt_ctl *ctl; /* NULL: only /v1/connections is served */
};

/* A reply being built by a handler. body is heap memory (free()). */
struct dbt_admin_reply {
    unsigned status;
    char *body;
    size_t len;
    const char *content_type; /* static string */
    const char *allow;        /* for 405: the Allow header value (static string) */
};

/* Routes one complete request. conn gives the query arguments. */
void dbt_admin_api_handle(struct dbt_admin_ctx *ctx, struct MHD_Connection *conn,
                          const char *method, const char *url, const char *body, size_t body_len,
                          struct dbt_admin_reply *out);

/* An error reply {"error":{"code":status,"status":"...","message":"..."}}. */
void dbt_admin_error(struct dbt_admin_reply *out, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
