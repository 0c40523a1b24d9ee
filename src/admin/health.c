/*
 * health.c - the health listener (dbtlsd --health-listen): plain HTTP, read-only, no
 * authentication, for load balancers and orchestrators. Nothing it says is secret:
 *   GET /healthz       200 "ok: configuration generation N active (M instances)" (and "; the
 *                      last reload failed: why" while a broken change waits to be fixed); 503
 *                      "draining: dbtlsd is shutting down" from SIGTERM on (see --drain-delay).
 *   GET /healthz/NAME  200 when instance NAME is in the active configuration and its backend
 *                      answers (front/probe.c: no login, no line in the server's log), 503 with
 *                      why not, 404 for an instance dbtlsd does not serve.
 *   GET /metrics       the Prometheus text of the admin listeners (admin/metrics.c).
 * HEAD as GET without the body; other methods 405; other paths 404. Replies are text/plain.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"
#include "admin/metrics.h"

#define PROBE_TIMEOUT_MS 3000

static void text(struct dbt_admin_reply *out, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void text(struct dbt_admin_reply *out, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    out->status = n < 0 ? 500 : status;
    out->body = n < 0 ? NULL : s;
    out->len = n < 0 ? 0 : (size_t)n;
    out->content_type = "text/plain; charset=utf-8";
}

static void instance_health(struct dbt_front *front, const char *name, struct dbt_admin_reply *out)
{
    char detail[512] = "";
    if (dbt_front_draining(front)) {
        text(out, 503, "draining: dbtlsd is shutting down\n");
        return;
    }
    dbt_res r = dbt_front_probe(front, name, PROBE_TIMEOUT_MS, detail, sizeof(detail));
    if (dbt_ok(r)) {
        text(out, 200, "ok: instance \"%s\": %s\n", name, detail);
    } else if (r.code == DBT_E_NOT_FOUND) {
        text(out, 404, "%s\n", dbt_errmsg());
    } else {
        text(out, 503, "failing: instance \"%s\": %s\n", name, dbt_errmsg());
    }
}

void dbt_admin_health(struct dbt_admin_ctx *x, const char *method, const char *url,
                      struct dbt_admin_reply *out)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool known = strcmp(url, "/healthz") == 0 || strncmp(url, "/healthz/", 9) == 0 ||
                 strcmp(url, "/metrics") == 0;
    if (!known) {
        text(out, 404,
             "not found: this listener serves /healthz, /healthz/INSTANCE and "
             "/metrics\n");
    } else if (!get) {
        text(out, 405, "method %s not allowed: GET or HEAD\n", method);
        out->allow = "GET, HEAD";
    } else if (strcmp(url, "/metrics") == 0) {
        dbt_admin_metrics(x, "GET", out);
    } else if (url[8] == '/' && url[9] != '\0') {
        instance_health(x->front, url + 9, out);
    } else if (dbt_front_draining(x->front)) {
        text(out, 503, "draining: dbtlsd is shutting down\n");
    } else {
        struct dbt_gen *g = dbt_front_current_gen(x->front);
        char why[512];
        bool failed = dbt_front_reload_error(x->front, why, sizeof(why));
        text(out, 200, "ok: configuration generation %llu active (%zu instance%s)%s%s\n",
             (unsigned long long)g->id, g->n, g->n == 1 ? "" : "s",
             failed ? "; the last reload failed: " : "", failed ? why : "");
        dbt_gen_unref(g);
    }
}
