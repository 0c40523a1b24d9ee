/*
 * view.h - internal to src/cli: the JSON shape of each control-library result. Field names are
 * the stable interface of `--format json` (docs/cli.md): Cloud SQL's SslCert fields for
 * certificates (certSerialNumber, cert, commonName, createTime, expirationTime,
 * sha1Fingerprint, plus slot), RDS-like names for CAs and engine versions, Cloud SQL-like names
 * for instances. Each function returns a new reference, or NULL when out of memory.
 */
#ifndef DBT_CLI_VIEW_H
#define DBT_CLI_VIEW_H

#include <jansson.h>

#include "ctl/ctl.h"

json_t *dbt_cli_view_cert(const struct dbt_ctl_cert *cert);
json_t *dbt_cli_view_cert_list(const struct dbt_ctl_cert_list *l);
json_t *dbt_cli_view_ca(const struct dbt_ctl_ca_info *ca);
json_t *dbt_cli_view_engine(const struct dbt_engine_info *e);
json_t *dbt_cli_view_instance(const struct dbt_ctl_instance *inst);
json_t *dbt_cli_view_event(const struct dbt_ctl_event *ev);

#endif
