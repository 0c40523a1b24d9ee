/*
 * statedir.h - the default state directory shared by dbtls and dbtlsd.
 */
#ifndef DBT_CTL_STATEDIR_H
#define DBT_CTL_STATEDIR_H

#include "base/err.h"

/*
 * DBTLS_STATE_DIR, else $XDG_DATA_HOME/dbtls (absolute values only), else
 * ~/.local/share/dbtls. *out is malloc'd (caller frees). USAGE when none can be found.
 */
dbt_res dbt_ctl_default_state_dir(char **out) DBT_WUR;

#endif
