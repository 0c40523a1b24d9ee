/*
 * backup.c - `dbtls backup`: a consistent copy of the SQLite store taken while dbtlsd and other
 * commands run (store.h's dbt_store_backup), recorded in the audit trail: the copy holds every
 * sealed key. The master key is not in it (docs/store.md: keep the two apart).
 */
#include "ctl/internal.h"

dbt_res dbt_ctl_backup(struct dbt_ctl *ctl, const char *path)
{
    dbt_res res = DBT_OK;
    DBT_ENSURE(path != NULL && *path != '\0', INVALID, "no backup file given");
    DBT_TRY(dbt_store_backup(ctl->st, path));
    if (!ctl->read_only) {
        /* an event, not a change: the counter stays, no daemon reloads for it */
        DBT_TRY(dbt_store_begin(ctl->st, true));
        DBT_TRY(ctl_event(ctl, "store.backup", "store", "file=%s", path));
        DBT_TRY(dbt_store_commit(ctl->st));
    }
out:
    dbt_store_rollback(ctl->st);
    return res;
}
