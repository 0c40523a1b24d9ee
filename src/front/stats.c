/*
 * stats.c - the front's counters for Prometheus (stats.h). Small tables under one mutex: the
 * number of distinct (instance, result, reason) keys is tiny, and the lock is taken once per
 * handshake or session end, never per byte.
 */
#include "front/stats.h"

#include "base/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct dbt_stats_handshakes *hs;
static size_t n_hs;
static struct dbt_stats_bytes *bytes;
static size_t n_bytes;
static uint64_t reloads, reload_failures;
static bool last_reload_ok = true;
static int64_t last_success_unix;
static uint64_t last_success_ms;
static size_t last_success_rebuilt;

const char *dbt_stats_reason(const char *m)
{
    if (m == NULL) {
        return "other";
    }
    /* an alert the client sent about our certificate (OpenSSL: "tlsv1 alert unknown ca", "sslv3
       alert bad certificate", "... certificate unknown/expired/revoked/unsupported"): a client
       that does not trust the server certificate, e.g. one without the new CA after a rotation */
    if (strstr(m, "alert unknown ca") != NULL ||
        (strstr(m, "alert") != NULL && strstr(m, "certificate") != NULL)) {
        return "server_cert_refused";
    }
    if (strstr(m, "certificate") != NULL) {
        return "certificate";
    }
    if (strstr(m, "version") != NULL || strstr(m, "unsupported protocol") != NULL) {
        return "protocol_version";
    }
    if (strstr(m, "cipher") != NULL) {
        return "no_shared_cipher";
    }
    if (strstr(m, "ALPN") != NULL || strstr(m, "alpn") != NULL ||
        strstr(m, "application protocol") != NULL) {
        return "alpn";
    }
    return "other";
}

void dbt_stats_handshake(const char *instance, bool ok, const char *errmsg)
{
    const char *result = ok ? "success" : "failure";
    const char *reason = ok ? "" : dbt_stats_reason(errmsg);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_hs; i++) {
        if (hs[i].result == result && hs[i].reason == reason &&
            strcmp(hs[i].instance, instance) == 0) {
            hs[i].n++;
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    struct dbt_stats_handshakes *nv = realloc(hs, (n_hs + 1) * sizeof *nv);
    if (nv != NULL) {
        hs = nv;
        memset(&hs[n_hs], 0, sizeof hs[n_hs]);
        snprintf(hs[n_hs].instance, sizeof hs[n_hs].instance, "%s", instance);
        hs[n_hs].result = result;
        hs[n_hs].reason = reason;
        hs[n_hs].n = 1;
        n_hs++;
    }
    pthread_mutex_unlock(&lock);
}

/* The counters of instance, made on first use; NULL on OOM. Under lock. */
static struct dbt_stats_bytes *inst_entry(const char *instance)
{
    for (size_t i = 0; i < n_bytes; i++) {
        if (strcmp(bytes[i].instance, instance) == 0) {
            return &bytes[i];
        }
    }
    struct dbt_stats_bytes *nv = realloc(bytes, (n_bytes + 1) * sizeof *nv);
    if (nv == NULL) {
        return NULL;
    }
    bytes = nv;
    struct dbt_stats_bytes *e = &bytes[n_bytes++];
    memset(e, 0, sizeof *e);
    snprintf(e->instance, sizeof e->instance, "%s", instance);
    return e;
}

void dbt_stats_session_end(const char *instance, uint64_t in, uint64_t out, bool tls_hangup)
{
    pthread_mutex_lock(&lock);
    struct dbt_stats_bytes *e = inst_entry(instance);
    if (e != NULL) {
        e->in += in;
        e->out += out;
        e->tls_hangups += tls_hangup;
    }
    pthread_mutex_unlock(&lock);
}

void dbt_stats_backend(const char *instance, bool ok)
{
    pthread_mutex_lock(&lock);
    struct dbt_stats_bytes *e = inst_entry(instance);
    if (e != NULL) {
        *(ok ? &e->backend_ok : &e->backend_failed) += 1;
    }
    pthread_mutex_unlock(&lock);
}

void dbt_stats_reload(bool ok, uint64_t ms, size_t rebuilt)
{
    pthread_mutex_lock(&lock);
    reloads++;
    last_reload_ok = ok;
    if (!ok) {
        reload_failures++;
    } else {
        last_success_unix = dbt_now_unix();
        last_success_ms = ms;
        last_success_rebuilt = rebuilt;
    }
    pthread_mutex_unlock(&lock);
}

bool dbt_stats_snapshot(struct dbt_stats_snapshot *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&lock);
    out->hs = malloc((n_hs ? n_hs : 1) * sizeof *out->hs);
    out->bytes = malloc((n_bytes ? n_bytes : 1) * sizeof *out->bytes);
    bool ok = out->hs != NULL && out->bytes != NULL;
    if (ok) {
        /* hs/bytes are NULL until the first record: memcpy must not see NULL even for 0. */
        if (n_hs > 0) {
            memcpy(out->hs, hs, n_hs * sizeof *hs);
        }
        out->n_hs = n_hs;
        if (n_bytes > 0) {
            memcpy(out->bytes, bytes, n_bytes * sizeof *bytes);
        }
        out->n_bytes = n_bytes;
        out->reloads = reloads;
        out->reload_failures = reload_failures;
        out->last_reload_ok = last_reload_ok;
        out->last_success_unix = last_success_unix;
        out->last_success_ms = last_success_ms;
        out->last_success_rebuilt = last_success_rebuilt;
    }
    pthread_mutex_unlock(&lock);
    if (!ok) {
        dbt_stats_snapshot_cleanup(out);
    }
    return ok;
}

void dbt_stats_snapshot_cleanup(struct dbt_stats_snapshot *s)
{
    free(s->hs);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}
