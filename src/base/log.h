/*
 * log.h - one-line log records to stderr: "2026-11-23T17:52:20.123Z LEVEL [thread] message".
 * Never log key material: pass names, fingerprints and subjects, not PEM or key bytes.
 */
#ifndef DBT_BASE_LOG_H
#define DBT_BASE_LOG_H

#include "base/err.h"

enum dbt_log_level { DBT_LOG_DEBUG, DBT_LOG_INFO, DBT_LOG_WARN, DBT_LOG_ERROR };

/* Default INFO; DBTLS_LOG=debug|info|warn|error overrides at first use. */
void dbt_log_set_level(enum dbt_log_level lvl);
void dbt_log(enum dbt_log_level lvl, const char *fmt, ...) DBT_PRINTF(2, 3);

#define dbt_debug(...) dbt_log(DBT_LOG_DEBUG, __VA_ARGS__)
#define dbt_info(...) dbt_log(DBT_LOG_INFO, __VA_ARGS__)
#define dbt_warn(...) dbt_log(DBT_LOG_WARN, __VA_ARGS__)
#define dbt_error(...) dbt_log(DBT_LOG_ERROR, __VA_ARGS__)

#endif
