/*
 * auto.h - the automatic side of the control plane (issue 5): the per-instance rotation policy
 * (--server-cert-rotation auto|manual, --rotation-lead DAYS), the check the daemon's scheduler
 * runs every tick (auto-rotate shared-mode server certificates, add an upcoming per-instance
 * server CA, raise "nearing expiry" notices once) and what notification delivery needs (events
 * after an id, per-sink delivered markers). Same conventions as ctl.h: one transaction per change,
 * errors name the object, out structs zeroed on entry and released with their _cleanup.
 */
#ifndef DBT_CTL_AUTO_H
#define DBT_CTL_AUTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl/ctl.h"

/* Cloud SQL adds the upcoming server CA three months before expiry. */
#define DBT_CTL_DEFAULT_ROTATION_LEAD_DAYS 90
#define DBT_CTL_MAX_ROTATION_LEAD_DAYS 3650

/* ------------------------------------------------------------------------------------------ */
/* Rotation policy                                                                             */

struct dbt_ctl_rotation {
    bool auto_rotate;  /* shared mode: issue + rotate the server certificate automatically */
    int lead_days;     /* act this many days before expiry (or at half-life, if earlier) */
    bool mode_default; /* no explicit mode: auto in shared mode, manual in per-instance mode */
    bool lead_default; /* no explicit lead: DBT_CTL_DEFAULT_ROTATION_LEAD_DAYS */
};

/* Validates CLI/API input without a store: mode NULL or "auto"/"manual"; lead_days -1 (unset)
   or 0..DBT_CTL_MAX_ROTATION_LEAD_DAYS. INVALID naming the bad value. */
dbt_res dbt_ctl_rotation_check(const char *mode, int64_t lead_days) DBT_WUR;
/* The effective policy of an instance. NOT_FOUND for an unknown instance. */
dbt_res dbt_ctl_rotation_get(struct dbt_ctl *ctl, const char *instance,
                             struct dbt_ctl_rotation *out) DBT_WUR;
/* Sets mode (NULL = unchanged) and/or lead_days (-1 = unchanged) in one transaction with an
   "instance.rotation-policy" event. */
dbt_res dbt_ctl_rotation_set(struct dbt_ctl *ctl, const char *instance, const char *mode,
                             int64_t lead_days) DBT_WUR;

/*
 * When a certificate created at `created` that expires at `not_after` is due for its automatic
 * action with a lead of lead_secs: at not_after - lead_secs or at half its lifetime, whichever
 * comes first. A certificate whose whole lifetime is shorter than the lead (short test
 * validities) uses the half-life alone, so its replacement is not due at once as well.
 */
int64_t dbt_ctl_rotation_due(int64_t created, int64_t not_after, int64_t lead_secs);

/* ------------------------------------------------------------------------------------------ */
/* The scheduler's check                                                                       */

struct dbt_ctl_auto_report {
    int rotated;  /* shared-mode server certificates issued and made active */
    int ca_added; /* per-instance upcoming server CAs added */
    int notices;  /* "nearing expiry" events raised */
    int failed;   /* instances whose action failed (logged by the caller through errmsg) */
};

/*
 * Runs every due automatic action at time now (unix seconds) for every instance, one write
 * transaction per instance and only when something is due (a read transaction decides first):
 * - shared mode, auto: a new server certificate with the active one's lifetime is issued and
 *   made active in one transaction (old active -> previous); event "server-cert.auto-rotate"
 *   (bumps the change counter: a running front picks it up).
 * - shared mode, manual: event "server-cert.expiring" once per certificate.
 * - shared mode, either: event "ca.expiring" once per certificate when the issuing CA or a
 *   certificate of an imported CA's chain ends within the lead (dbtls cannot renew those).
 * - per-instance mode: an upcoming server CA is added (if none) and event
 *   "server-ca.expiring" tells the owner to distribute server-ca.pem and then rotate; once per
 *   active CA.
 * - client certificates: event "client-cert.expiring" once per certificate.
 * The first failure's message is kept in dbt_errmsg(); other instances still run. Returns
 * the first error (after trying all).
 */
dbt_res dbt_ctl_auto_run(struct dbt_ctl *ctl, int64_t now, struct dbt_ctl_auto_report *rep) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Expiry of every certificate (Prometheus gauges)                                             */

struct dbt_ctl_expiry {
    char *instance; /* "" for shared CAs */
    char *kind;     /* "root-ca" | "intermediate-ca" | "imported-ca" | "imported-chain" |
                       "server-ca" | "server-cert" | "client-ca" | "client-cert" | ... */
    char *slot;     /* "previous" | "active" | "upcoming" for server-ca/server-cert, else "" */
    char *name;     /* shared CA id (intermediates: "ID/REGION", imported chain: "ID/N"),
                       client cert name, or "" */
    char *serial;   /* hex upper case */
    char *sha1;     /* fingerprint, hex lower case (as the listings and connections show it) */
    int64_t not_after;
};
struct dbt_ctl_expiry_list {
    struct dbt_ctl_expiry *items;
    size_t n;
};
void dbt_ctl_expiry_list_cleanup(struct dbt_ctl_expiry_list *l);
/* Every CA and certificate in one read transaction: shared roots and intermediates (by id),
   then per instance (by name) its per-instance server CAs, server certificates, client CA and
   client certificates. */
dbt_res dbt_ctl_expiry_list(struct dbt_ctl *ctl, struct dbt_ctl_expiry_list *out) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Notification delivery                                                                       */

/* Events with id > after, oldest first, at most limit (0 = all). */
dbt_res dbt_ctl_events_after(struct dbt_ctl *ctl, int64_t after, size_t limit,
                             struct dbt_ctl_event_list *out) DBT_WUR;
/* The newest event id (0 when there is none). */
dbt_res dbt_ctl_events_max_id(struct dbt_ctl *ctl, int64_t *out) DBT_WUR;
/* The delivered marker of a sink (e.g. "command:CMD"): *found false when never set. */
dbt_res dbt_ctl_notify_mark_get(struct dbt_ctl *ctl, const char *sink, int64_t *last_id,
                                bool *found) DBT_WUR;
/* Records that every event up to last_id reached the sink (no change counter bump: nothing the
   front serves changes). */
dbt_res dbt_ctl_notify_mark_put(struct dbt_ctl *ctl, const char *sink, int64_t last_id) DBT_WUR;

#endif
