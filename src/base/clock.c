/*
 * time.c - clocks (see time.h).
 */
#include "base/clock.h"

#include <stdio.h>

uint64_t dbt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t dbt_now_unix(void)
{
    return (int64_t)time(NULL);
}

void dbt_time_rfc3339(int64_t unix_secs, char *out, size_t outlen)
{
    time_t t = (time_t)unix_secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outlen, "invalid-time");
    }
}
