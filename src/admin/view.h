/*
 * view.h - control-library results as JSON objects: the one definition of the field names that
 * `dbtls --format json` prints (docs/cli.md) and the admin API serves (docs/admin-api.md).
 * Cloud SQL's SslCert fields for certificates (certSerialNumber, cert, commonName, createTime,
 * expirationTime, sha1Fingerprint, plus slot), RDS-like names for CAs and engine versions,
 * Cloud SQL-like names for instances. Built as its own small library (ctl + jansson only) so
 * the CLI can link it without the daemon's event loop. Each function returns a new reference,
 * or NULL when out of memory.
 */
#ifndef DBT_ADMIN_VIEW_H
#define DBT_ADMIN_VIEW_H

#include <jansson.h>
#include <stdint.h>

#include "ctl/admin_ca.h"
#include "ctl/ctl.h"

json_t *dbt_view_cert(const struct dbt_ctl_cert *cert);
json_t *dbt_view_cert_list(const struct dbt_ctl_cert_list *l);
json_t *dbt_view_ca(const struct dbt_ctl_ca_info *ca);
json_t *dbt_view_engine(const struct dbt_engine_info *e);
json_t *dbt_view_instance(const struct dbt_ctl_instance *inst);
json_t *dbt_view_event(const struct dbt_ctl_event *ev);
/* An admin client certificate: name, certSerialNumber, sha1Fingerprint, createTime,
   expirationTime, revoked (bool), revokeTime (null while not revoked). */
json_t *dbt_view_admin_cert(const struct dbt_ctl_admin_cert_info *c);
json_t *dbt_view_admin_cert_list(const struct dbt_ctl_admin_cert_list *l);

/* json null for NULL, else a string. */
json_t *dbt_view_str(const char *s);
/* RFC 3339 UTC time for unix seconds; null for 0 (unset). */
json_t *dbt_view_time(int64_t unix_secs);
/* obj[key] = value (stolen); a NULL value (allocation failure) is ignored. */
void dbt_view_set(json_t *obj, const char *key, json_t *value);

#endif
