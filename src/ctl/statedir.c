/*
 * statedir.c - where the state directory is when nobody says: one rule for dbtls and dbtlsd,
 * so the daemon serves exactly the store the command line changes.
 */
#include "ctl/statedir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dbt_res dbt_ctl_default_state_dir(char **out)
{
    const char *env = getenv("DBTLS_STATE_DIR");
    const char *base;
    const char *suffix;

    *out = NULL;
    if (env != NULL && env[0] != '\0') {
        base = env;
        suffix = "";
    } else if ((env = getenv("XDG_DATA_HOME")) != NULL && env[0] == '/') {
        /* the XDG base directory spec says relative values are to be ignored */
        base = env;
        suffix = "/dbtls";
    } else if ((env = getenv("HOME")) != NULL && env[0] != '\0') {
        base = env;
        suffix = "/.local/share/dbtls";
    } else {
        return dbt_fail(DBT_E_USAGE, "no state directory: neither --state-dir, DBTLS_STATE_DIR, "
                                     "XDG_DATA_HOME nor HOME is set");
    }
    size_t n = strlen(base) + strlen(suffix) + 1;
    *out = malloc(n);
    if (*out == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    snprintf(*out, n, "%s%s", base, suffix);
    return DBT_OK;
}
