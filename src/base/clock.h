/*
 * clock.h - clocks: monotonic milliseconds for deadlines, wall-clock seconds for certificates,
 * and RFC 3339 formatting for people and JSON.
 */
#ifndef DBT_BASE_CLOCK_H
#define DBT_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t dbt_now_ms(void);
/* Wall-clock seconds since the epoch. */
int64_t dbt_now_unix(void);
/* "2026-11-23T17:52:20Z" into out (at least 21 bytes). */
void dbt_time_rfc3339(int64_t unix_secs, char *out, size_t outlen);

#endif
