/*
 * log.c - stderr logging (see log.h). One fprintf per record so lines from workers do not mix.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int level = -1;

void dbt_log_set_level(enum dbt_log_level lvl)
{
    atomic_store(&level, (int)lvl);
}

static int current_level(void)
{
    int l = atomic_load(&level);
    if (l >= 0) {
        return l;
    }
    const char *e = getenv("DBTLS_LOG");
    l = DBT_LOG_INFO;
    if (e != NULL) {
        if (strcasecmp(e, "debug") == 0) {
            l = DBT_LOG_DEBUG;
        } else if (strcasecmp(e, "warn") == 0) {
            l = DBT_LOG_WARN;
        } else if (strcasecmp(e, "error") == 0) {
            l = DBT_LOG_ERROR;
        }
    }
    atomic_store(&level, l);
    return l;
}

void dbt_log(enum dbt_log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)lvl < current_level()) {
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000L, names[lvl], msg);
}
