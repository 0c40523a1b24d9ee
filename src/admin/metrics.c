/*
 * metrics.c - the Prometheus text exposition of dbtlsd (metrics.h): certificate expiry from the
 * control plane, handshake / byte / reload counters from the front (front/stats.h) and the open
 * connections from the front's connection list. Written with open_memstream; label values are
 * escaped as the format requires (backslash, double quote, newline).
 */
#include "admin/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "ctl/auto.h"
#include "dbtls_config.h"
#include "front/stats.h"

static void label(FILE *f, const char *name, const char *v, bool first)
{
    fprintf(f, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\') {
            fputs("\\\\", f);
        } else if (*p == '"') {
            fputs("\\\"", f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct open_key {
    const char *instance, *version, *cipher, *cert;
    uint64_t n;
};

static void expiry(FILE *f, const struct dbt_ctl_expiry_list *l, int64_t now, bool ts)
{
    const char *name =
        ts ? "dbtls_certificate_expiry_timestamp_seconds" : "dbtls_certificate_expiry_seconds";
    family(f, name, "gauge",
           ts ? "notAfter of every CA and certificate dbtls issued (unix seconds)."
              : "Seconds until notAfter of every CA and certificate dbtls issued (negative once "
                "expired).");
    for (size_t i = 0; i < l->n; i++) {
        const struct dbt_ctl_expiry *e = &l->items[i];
        fprintf(f, "%s{", name);
        label(f, "instance", e->instance, true);
        label(f, "kind", e->kind, false);
        label(f, "slot", e->slot, false);
        label(f, "name", e->name, false);
        label(f, "serial", e->serial, false);
        label(f, "sha1", e->sha1, false);
        fprintf(f, "} %lld\n", (long long)(ts ? e->not_after : e->not_after - now));
    }
}

dbt_res dbt_metrics_render(struct dbt_front *front, struct dbt_ctl *ctl, int64_t now, char **out)
{
    *out = NULL;
    dbt_res res = DBT_OK;
    char *text = NULL;
    size_t len = 0;
    struct dbt_ctl_expiry_list exp = {0};
    struct dbt_stats_snapshot st = {0};
    struct dbt_conn_row *rows = NULL;
    size_t n_rows = 0;
    struct open_key *keys = NULL;
    size_t n_keys = 0;
    dbt_res ctl_res = DBT_OK;
    char ctl_msg[512] = "";
    FILE *f = open_memstream(&text, &len);
    DBT_ENSURE(f != NULL, NOMEM, "metrics: out of memory");

    family(f, "dbtls_build_info", "gauge", "Build information of dbtlsd; always 1.");
    fputs("dbtls_build_info{", f);
    label(f, "version", DBTLS_VERSION, true);
    fputs("} 1\n", f);

    if (ctl != NULL) {
        ctl_res = dbt_ctl_expiry_list(ctl, &exp);
        if (dbt_ok(ctl_res)) {
            expiry(f, &exp, now, false);
            expiry(f, &exp, now, true);
        } else {
            snprintf(ctl_msg, sizeof ctl_msg, "%s", dbt_errmsg());
            dbt_warn("metrics: certificate expiry unavailable: %s", ctl_msg);
        }
    }

    /* the counters first, then the live sessions: a session that ends in between is counted
       in neither for this scrape rather than twice */
    DBT_ENSURE(dbt_stats_snapshot(&st), NOMEM, "metrics: out of memory");
    if (front != NULL) {
        DBT_TRY(dbt_front_connections(front, &rows, &n_rows));
    }

    family(f, "dbtls_handshakes_total", "counter",
           "TLS handshakes with clients by instance, result and reason.");
    for (size_t i = 0; i < st.n_hs; i++) {
        fputs("dbtls_handshakes_total{", f);
        label(f, "instance", st.hs[i].instance, true);
        label(f, "result", st.hs[i].result, false);
        label(f, "reason", st.hs[i].reason, false);
        fprintf(f, "} %llu\n", (unsigned long long)st.hs[i].n);
    }

    for (size_t i = 0; i < n_rows; i++) {
        const struct dbt_session_status *s = &rows[i].st;
        size_t k = 0;
        for (; k < n_keys; k++) {
            if (strcmp(keys[k].instance, s->instance) == 0 &&
                strcmp(keys[k].version, s->version) == 0 &&
                strcmp(keys[k].cipher, s->cipher) == 0 &&
                strcmp(keys[k].cert, s->server_cert_sha1) == 0) {
                break;
            }
        }
        if (k == n_keys) {
            struct open_key *nv = realloc(keys, (n_keys + 1) * sizeof *nv);
            DBT_ENSURE(nv != NULL, NOMEM, "metrics: out of memory");
            keys = nv;
            keys[n_keys++] =
                (struct open_key){s->instance, s->version, s->cipher, s->server_cert_sha1, 0};
        }
        keys[k].n++;
    }
    family(f, "dbtls_connections_open", "gauge",
           "Client connections open through the front by instance, TLS version, cipher and the "
           "SHA-1 of the server certificate they were served (empty for plain connections).");
    for (size_t k = 0; k < n_keys; k++) {
        fputs("dbtls_connections_open{", f);
        label(f, "instance", keys[k].instance, true);
        label(f, "tls_version", keys[k].version, false);
        label(f, "cipher", keys[k].cipher, false);
        label(f, "server_cert_sha1", keys[k].cert, false);
        fprintf(f, "} %llu\n", (unsigned long long)keys[k].n);
    }

    family(f, "dbtls_bytes_total", "counter",
           "Bytes relayed for clients by instance: direction in = from clients, out = to clients.");
    /* closed sessions' totals plus the open sessions' current counts, per instance */
    struct dbt_stats_bytes *tot = st.bytes;
    size_t n_tot = st.n_bytes;
    for (size_t i = 0; i < n_rows; i++) {
        size_t k = 0;
        for (; k < n_tot; k++) {
            if (strcmp(tot[k].instance, rows[i].st.instance) == 0) {
                break;
            }
        }
        if (k == n_tot) {
            struct dbt_stats_bytes *nv = realloc(tot, (n_tot + 1) * sizeof *nv);
            DBT_ENSURE(nv != NULL, NOMEM, "metrics: out of memory");
            tot = st.bytes = nv;
            memset(&tot[n_tot], 0, sizeof tot[n_tot]);
            snprintf(tot[n_tot].instance, sizeof tot[n_tot].instance, "%s", rows[i].st.instance);
            st.n_bytes = ++n_tot;
        }
        tot[k].in += rows[i].bytes_in;
        tot[k].out += rows[i].bytes_out;
    }
    for (size_t k = 0; k < n_tot; k++) {
        fputs("dbtls_bytes_total{", f);
        label(f, "instance", tot[k].instance, true);
        label(f, "direction", "in", false);
        fprintf(f, "} %llu\n", (unsigned long long)tot[k].in);
        fputs("dbtls_bytes_total{", f);
        label(f, "instance", tot[k].instance, true);
        label(f, "direction", "out", false);
        fprintf(f, "} %llu\n", (unsigned long long)tot[k].out);
    }

    family(f, "dbtls_tls_hangups_total", "counter",
           "Client connections closed by the client right after a successful TLS handshake, "
           "before sending anything: TLS probes, or clients that refused the server certificate "
           "after the handshake (libpq with sslmode=verify-full when its host name is not in the "
           "certificate).");
    for (size_t k = 0; k < n_tot; k++) {
        fputs("dbtls_tls_hangups_total{", f);
        label(f, "instance", tot[k].instance, true);
        fprintf(f, "} %llu\n", (unsigned long long)tot[k].tls_hangups);
    }

    family(f, "dbtls_backend_connections_total", "counter",
           "Connections the front opened to each instance's backend (for sessions and health "
           "probes) by result: failure = refused, unreachable or timed out.");
    for (size_t k = 0; k < n_tot; k++) {
        for (int ok = 1; ok >= 0; ok--) {
            fputs("dbtls_backend_connections_total{", f);
            label(f, "instance", tot[k].instance, true);
            label(f, "result", ok ? "success" : "failure", false);
            fprintf(f, "} %llu\n",
                    (unsigned long long)(ok ? tot[k].backend_ok : tot[k].backend_failed));
        }
    }

    family(f, "dbtls_reloads_total", "counter",
           "Configuration generations built (start, SIGHUP, change counter, admin call).");
    fprintf(f, "dbtls_reloads_total %llu\n", (unsigned long long)st.reloads);
    family(f, "dbtls_reload_failures_total", "counter",
           "Reloads that failed (the previous generation stayed in service).");
    fprintf(f, "dbtls_reload_failures_total %llu\n", (unsigned long long)st.reload_failures);
    family(f, "dbtls_config_last_reload_successful", "gauge",
           "1 when the last reload worked, 0 while a change dbtlsd cannot load waits.");
    fprintf(f, "dbtls_config_last_reload_successful %d\n", st.last_reload_ok ? 1 : 0);
    family(f, "dbtls_config_last_reload_success_timestamp_seconds", "gauge",
           "When the configuration generation in service was built (unix seconds).");
    fprintf(f, "dbtls_config_last_reload_success_timestamp_seconds %lld\n",
            (long long)st.last_success_unix);
    family(f, "dbtls_config_last_reload_duration_seconds", "gauge",
           "How long building the generation in service took.");
    fprintf(f, "dbtls_config_last_reload_duration_seconds %.3f\n",
            (double)st.last_success_ms / 1000.0);
    family(f, "dbtls_config_last_reload_rebuilt_instances", "gauge",
           "Instances whose TLS context the generation in service built (the others were kept).");
    fprintf(f, "dbtls_config_last_reload_rebuilt_instances %zu\n", st.last_success_rebuilt);
out:
    if (f != NULL) {
        fclose(f);
    }
    if (dbt_ok(res)) {
        *out = text;
        text = NULL;
        if (!dbt_ok(ctl_res)) {
            res = dbt_fail(ctl_res.code, "%s", ctl_msg);
        }
    }
    free(text);
    free(rows);
    free(keys);
    dbt_stats_snapshot_cleanup(&st);
    dbt_ctl_expiry_list_cleanup(&exp);
    return res;
}

void dbt_admin_metrics(struct dbt_admin_ctx *x, const char *method, struct dbt_admin_reply *out)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        out->allow = "GET, HEAD";
        dbt_admin_error(out, 405, "method %s is not allowed on /metrics; use GET", method);
        return;
    }
    char *text = NULL;
    dbt_res r = dbt_metrics_render(x->front, x->ctl, dbt_now_unix(), &text);
    if (text == NULL) {
        dbt_admin_error(out, 500, "%s", dbt_errmsg());
        return;
    }
    (void)r; /* a control-plane error only leaves the certificate gauges out (logged) */
    out->status = 200;
    out->body = text;
    out->len = strlen(text);
    out->content_type = DBT_METRICS_CONTENT_TYPE;
}
