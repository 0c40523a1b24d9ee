/*
 * stats.h - process-wide counters of the TLS front for GET /metrics (admin/metrics.c): TLS
 * handshakes with the client by instance, result and reason; bytes of closed sessions by
 * instance and direction (open sessions are added from the connection list at scrape time);
 * connections to each instance's backend that worked and failed;
 * configuration reloads and failed reloads. Updated by the workers and the main thread (a short
 * mutex per handshake / session end / reload; nothing per byte), read by the admin thread.
 */
#ifndef DBT_FRONT_STATS_H
#define DBT_FRONT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A client TLS handshake finished: ok, or failed with errmsg (reduced to a short reason). */
void dbt_stats_handshake(const char *instance, bool ok, const char *errmsg);
/* A session ended having moved these bytes (from the client / to the client); tls_hangup: the
   client closed it right after the TLS handshake without sending anything more. */
void dbt_stats_session_end(const char *instance, uint64_t bytes_in, uint64_t bytes_out,
                           bool tls_hangup);
/* A connection to the backend of instance (a session's, or a health probe's) was made (ok) or
   failed (refused, unreachable, timed out). */
void dbt_stats_backend(const char *instance, bool ok);
/* A reload (SIGHUP, change counter, admin call) succeeded or failed; a success took ms and built
   the TLS contexts of rebuilt instances (the others were kept). */
void dbt_stats_reload(bool ok, uint64_t ms, size_t rebuilt);

/* The short reason label of a failed handshake's message ("server_cert_refused": the client
   refused our certificate; "certificate": the client's certificate failed; "protocol_version",
   "no_shared_cipher", "alpn", "other"). */
const char *dbt_stats_reason(const char *errmsg);

struct dbt_stats_handshakes {
    char instance[64];
    const char *result; /* "success" | "failure" */
    const char *reason; /* "" for success */
    uint64_t n;
};
struct dbt_stats_bytes { /* per instance: bytes, hang-ups, backend connections */
    char instance[64];
    uint64_t in, out;
    uint64_t tls_hangups;
    uint64_t backend_ok, backend_failed;
};
struct dbt_stats_snapshot {
    struct dbt_stats_handshakes *hs;
    size_t n_hs;
    struct dbt_stats_bytes *bytes;
    size_t n_bytes;
    uint64_t reloads, reload_failures;
    bool last_reload_ok;         /* false from a failed reload until one works */
    int64_t last_success_unix;   /* when the generation in service was built (0: never) */
    uint64_t last_success_ms;    /* how long that took */
    size_t last_success_rebuilt; /* instances whose TLS context it built */
};
/* A consistent copy (malloc'd arrays; free with dbt_stats_snapshot_cleanup). false on OOM. */
bool dbt_stats_snapshot(struct dbt_stats_snapshot *out);
void dbt_stats_snapshot_cleanup(struct dbt_stats_snapshot *s);

#endif
