/*
 * metrics.h - GET /metrics on the admin listeners: Prometheus text exposition format 0.0.4.
 * Families (names per Prometheus conventions: base units, _total for counters):
 *   dbtls_build_info{version}                                          gauge, always 1
 *   dbtls_certificate_expiry_seconds{instance,kind,slot,name,serial}   gauge: notAfter - now
 *   dbtls_certificate_expiry_timestamp_seconds{...same labels...}      gauge: notAfter
 *   dbtls_handshakes_total{instance,result,reason}                     counter
 *   dbtls_connections_open{instance,tls_version,cipher}                gauge ("" when plain)
 *   dbtls_bytes_total{instance,direction="in"|"out"}                   counter (from/to clients)
 *   dbtls_reloads_total, dbtls_reload_failures_total                   counters
 *   dbtls_config_last_reload_successful (0/1), ..._success_timestamp_seconds,
 *   ..._duration_seconds, ..._rebuilt_instances                        gauges
 * The certificate gauges come from the control plane (ctl/auto.h dbt_ctl_expiry_list): every
 * shared CA (kind root-ca / intermediate-ca, imported-ca / imported-chain, instance ""),
 * per-instance server CA and server certificate slot, client CA and client certificate. The rest
 * comes from the front.
 */
#ifndef DBT_ADMIN_METRICS_H
#define DBT_ADMIN_METRICS_H

#include <stdint.h>

#include "base/err.h"
#include "front/front.h"

struct dbt_ctl;
struct dbt_admin_ctx;
struct dbt_admin_reply;

/* The exposition text at time now (unix seconds). ctl NULL: no certificate gauges. On a
   control-plane error the certificate families are left out and the error is returned in
   dbt_errmsg() with the rest of the text still produced. *out is malloc'd (free()). */
dbt_res dbt_metrics_render(struct dbt_front *front, struct dbt_ctl *ctl, int64_t now,
                           char **out) DBT_WUR;

/* The GET /metrics handler for api.c's router (admin/internal.h types): 200 with the text
   (certificate gauges left out and logged if the control plane fails), 405 for other methods. */
void dbt_admin_metrics(struct dbt_admin_ctx *x, const char *method, struct dbt_admin_reply *out);

/* The Content-Type of the text format. */
#define DBT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
