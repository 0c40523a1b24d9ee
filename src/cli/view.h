/*
 * view.h - internal to src/cli: the JSON shape of each control-library result. The views live in
 * src/admin/view.c (a small library on ctl + jansson only, no event loop) so that `--format json`
 * and the admin API share one definition of the field names (docs/cli.md, docs/admin-api.md).
 */
#ifndef DBT_CLI_VIEW_H
#define DBT_CLI_VIEW_H

#include "admin/view.h"

#define dbt_cli_view_cert dbt_view_cert
#define dbt_cli_view_cert_list dbt_view_cert_list
#define dbt_cli_view_ca dbt_view_ca
#define dbt_cli_view_engine dbt_view_engine
#define dbt_cli_view_instance dbt_view_instance
#define dbt_cli_view_event dbt_view_event

#endif
