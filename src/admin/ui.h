/*
 * ui.h - GET /ui on the admin listeners: one self-contained HTML page (no external assets, no
 * build step for its users) that shows the instances with their CA mode and ssl mode, each
 * server slot's certificate (previous / active / upcoming) with a timeline bar to its expiry
 * coloured by time left, the client certificates, the live connections through the front (the
 * rows of GET /v1/connections) and the recent events. Everything is rendered by the server, so
 * the page reads the same with JavaScript off; with JavaScript on a small script re-fetches /ui
 * and swaps the content every few seconds (a <noscript> meta refresh otherwise). The data comes
 * from the same control-library calls as the JSON API (ctl.h, ctl/auto.h) and the front's
 * connection list; every value is HTML-escaped (names come from users). The static frame (CSS,
 * script) is src/admin/ui.html, embedded at build time by scripts/embed_ui.py.
 */
#ifndef DBT_ADMIN_UI_H
#define DBT_ADMIN_UI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "front/front.h"

struct dbt_ctl;
struct dbt_admin_ctx;
struct dbt_admin_reply;

/* The Content-Type of the page. */
#define DBT_UI_CONTENT_TYPE "text/html; charset=utf-8"

/* Time-left classes of the timeline bars (also the CSS classes): more than 90 days, more than
   30 days, 30 days or less, expired (notAfter at or before now). */
#define DBT_UI_OK_SECS (INT64_C(90) * 86400)
#define DBT_UI_WARN_SECS (INT64_C(30) * 86400)

/* "tl-ok" | "tl-warn" | "tl-crit" | "tl-expired" for a certificate with secs_left until
   notAfter (static strings). */
const char *dbt_ui_expiry_class(int64_t secs_left);

/* Writes s to f with & < > " ' replaced by character references (text and attribute values
   alike). NULL writes nothing. */
void dbt_ui_escape(FILE *f, const char *s);

/*
 * The whole page at time now (unix seconds): instances, slots, client certificates and events
 * from ctl (NULL: those sections say the listener has no control plane), connections from
 * rows[0..n_rows) (dbt_front_connections). A control-plane error does not fail the page: the
 * section shows the error message instead. *out (malloc'd, NUL-terminated; *len without the NUL)
 * is the caller's. Fails only on NOMEM.
 */
dbt_res dbt_ui_render(struct dbt_ctl *ctl, const struct dbt_conn_row *rows, size_t n_rows,
                      int64_t now, char **out, size_t *len) DBT_WUR;

/* The GET /ui handler for api.c's router (admin/internal.h types): 200 with the page, 405 with
   Allow: GET, HEAD for other methods, 500 if the front's connection list cannot be read. */
void dbt_admin_ui(struct dbt_admin_ctx *x, const char *method, struct dbt_admin_reply *out);

#endif
