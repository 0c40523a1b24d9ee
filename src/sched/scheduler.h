/*
 * scheduler.h - the scheduler thread of dbtlsd (issue 5): every tick it runs the control plane's
 * automatic actions (dbt_ctl_auto_run: auto-rotation of shared-mode server certificates, upcoming
 * per-instance server CAs, "nearing expiry" notices) and delivers new events to the notification
 * sinks (--notify-command, --notify-webhook), in order, at least once, retried with exponential
 * backoff, with a per-sink delivered marker in the store so a restart neither loses nor endlessly
 * repeats events. It owns its own read-write control handle; no front worker ever waits on it.
 * With a refusals source it also turns client TLS handshakes that failed because the client
 * refused the server certificate into events, so the sinks report clients that do not trust a
 * rotated certificate (the signal to distribute server-ca.pem or roll back).
 */
#ifndef DBT_SCHED_SCHED_H
#define DBT_SCHED_SCHED_H

#include <stdint.h>

#include "base/err.h"
#include "ctl/auto.h"

/* How many client TLS handshakes of an instance failed because the client refused the server
   certificate (a TLS alert such as unknown_ca), since the daemon started. */
struct dbt_sched_refusal {
    char instance[64];
    uint64_t n;
};

struct dbt_sched_opts {
    const struct dbt_ctl_opts *ctl; /* how to open the scheduler's own handle (read_only ignored) */
    uint64_t interval_ms;           /* tick (default 60 s) */
    const char *notify_command;     /* run with /bin/sh -c, the event as JSON on stdin; or NULL */
    const char *notify_webhook;     /* POST the event as JSON (libcurl); or NULL */
    uint64_t notify_timeout_ms;     /* per delivery attempt (default 30 s) */
    uint64_t retry_min_ms; /* first retry delay (default 1 s), doubled up to retry_max_ms */
    uint64_t retry_max_ms; /* default 5 minutes */
    /* Optional: fills out[0..max) with the current counts (the front's handshake statistics)
       and returns how many. Each tick, an instance whose count grew gets one event
       "tls.server-cert-refused" (object instance/NAME) saying how many since the last one. */
    size_t (*refusals)(void *arg, struct dbt_sched_refusal *out, size_t max);
    void *refusals_arg;
};

struct dbt_sched;

/* Opens the handle (migrating the store if needed), initializes the sinks' markers (a sink seen
   for the first time starts after the newest event) and starts the thread. */
dbt_res dbt_sched_start(const struct dbt_sched_opts *o, struct dbt_sched **out) DBT_WUR;
/* Stops the thread (an attempt in progress finishes or times out) and closes the handle. */
void dbt_sched_stop(struct dbt_sched *s);

/* The JSON document of one event as delivered (caller frees): id, time (RFC 3339), actor,
   action, object, instance (from the object, or null), detail. */
char *dbt_sched_event_json(const struct dbt_ctl_event *e);

/* One delivery attempt (exposed for tests): 0 = delivered; else a message in dbt_errmsg(). */
dbt_res dbt_sched_run_command(const char *cmd, const char *json, uint64_t timeout_ms) DBT_WUR;
dbt_res dbt_sched_post_webhook(const char *url, const char *json, uint64_t timeout_ms) DBT_WUR;

#endif
