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
    char raw[2048], msg[4 * sizeof(raw)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    /* Messages quote what peers sent (user and database names, certificate subjects): a control
     * character is written as \xNN, so that no peer can end a line and forge the next one. */
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(msg + o, sizeof(msg) - o, "\\x%02x", *p);
        } else {
            msg[o++] = (char)*p;
        }
    }
    msg[o] = '\0';

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000L, names[lvl], msg);
}
