/*
 * err.c - per-thread error messages behind dbt_res (see err.h).
 */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg[1024];

dbt_res dbt_fail(enum dbt_err code, const char *fmt, ...)
{
    /* Formatted aside first: callers may pass dbt_errmsg() itself as an argument. */
    char msg[sizeof(errmsg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(errmsg, msg, sizeof(errmsg));
    return (dbt_res){code};
}

dbt_res dbt_fail_ctx(dbt_res r, const char *fmt, ...)
{
    char prefix[256];
    char old[sizeof(errmsg) - sizeof(prefix)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(old, sizeof(old), "%.*s", (int)sizeof(old) - 1, errmsg);
    snprintf(errmsg, sizeof(errmsg), "%.255s%.767s", prefix, old);
    return r;
}

const char *dbt_errmsg(void)
{
    return errmsg;
}

void dbt_errclear(void)
{
    errmsg[0] = '\0';
}

static const char *const names[] = {
#define DBT_ERR_NAME(name, exit_code, desc) #name,
    DBT_ERRORS(DBT_ERR_NAME)
#undef DBT_ERR_NAME
};

static const char *const descs[] = {
#define DBT_ERR_DESC(name, exit_code, desc) desc,
    DBT_ERRORS(DBT_ERR_DESC)
#undef DBT_ERR_DESC
};

static const int exits[] = {
#define DBT_ERR_EXIT(name, exit_code, desc) exit_code,
    DBT_ERRORS(DBT_ERR_EXIT)
#undef DBT_ERR_EXIT
};

const char *dbt_err_name(enum dbt_err code)
{
    return (unsigned)code < DBT_E__COUNT ? names[code] : "UNKNOWN";
}

const char *dbt_err_desc(enum dbt_err code)
{
    return (unsigned)code < DBT_E__COUNT ? descs[code] : "unknown error";
}

int dbt_err_exit_code(dbt_res r)
{
    return (unsigned)r.code < DBT_E__COUNT ? exits[r.code] : 1;
}
