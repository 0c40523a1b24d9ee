/*
 * store.c - the store API of store.h over its two backends: SQLite (store_sqlite.c, one file in
 * the state directory) and PostgreSQL (store_pg.c, shared by several dbtlsd nodes). Opening
 * picks the backend; everything after goes through the handle's operation table, with the
 * checks and helpers that do not depend on the backend (transaction state, exec, the counter).
 */
#include "store/store_impl.h"

#include <stdlib.h>
#include <string.h>

void dbt_store_close(struct dbt_store *st)
{
    if (st) {
        st->ops->close(st);
    }
}

dbt_res dbt_store_reopen(const struct dbt_store *st, enum dbt_store_mode mode,
                         struct dbt_store **out)
{
    return st->ops->reopen(st, mode, out);
}

dbt_res dbt_store_backup(struct dbt_store *st, const char *path)
{
    if (st->in_txn) {
        return dbt_fail(DBT_E_INTERNAL, "store: backup inside a transaction");
    }
    if (st->ops->backup == NULL) {
        return dbt_fail(DBT_E_STATE,
                        "the store is the PostgreSQL database %s: back it up with pg_dump "
                        "(docs/store.md)",
                        st->path);
    }
    return st->ops->backup(st, path);
}

dbt_res dbt_store_replace(struct dbt_store *st, const char *from, uint64_t expect)
{
    if (st->in_txn) {
        return dbt_fail(DBT_E_INTERNAL, "store: replace inside a transaction");
    }
    if (st->ops->replace == NULL) {
        return dbt_fail(DBT_E_STATE,
                        "the store is the PostgreSQL database %s: restore it with pg_restore "
                        "(docs/store.md)",
                        st->path);
    }
    return st->ops->replace(st, from, expect);
}

const char *dbt_store_path(const struct dbt_store *st)
{
    return st->path;
}

void dbt_store_set_busy_timeout(struct dbt_store *st, int ms)
{
    st->ops->set_busy_timeout(st, ms);
}

dbt_res dbt_store_begin(struct dbt_store *st, bool write)
{
    if (st->in_txn) {
        return dbt_fail(DBT_E_INTERNAL, "store: transaction already open");
    }
    if (write && st->read_only) {
        return dbt_fail(DBT_E_PERM, "%s is opened read-only", st->label);
    }
    dbt_res r = st->ops->begin(st, write);
    if (dbt_ok(r)) {
        st->in_txn = true;
    }
    return r;
}

dbt_res dbt_store_commit(struct dbt_store *st)
{
    if (!st->in_txn) {
        return dbt_fail(DBT_E_INTERNAL, "store: commit without a transaction");
    }
    dbt_res r = st->ops->commit(st);
    if (dbt_ok(r)) {
        st->in_txn = false;
    }
    return r;
}

void dbt_store_rollback(struct dbt_store *st)
{
    if (st && st->in_txn) {
        st->ops->rollback(st);
        st->in_txn = false;
    }
}

bool dbt_store_in_txn(const struct dbt_store *st)
{
    return st->in_txn;
}

dbt_res dbt_store_stmt(struct dbt_store *st, enum dbt_sql id, struct dbt_stmt **out)
{
    if ((int)id < 0 || id >= DBT_SQL__COUNT) {
        return dbt_fail(DBT_E_INTERNAL, "store: bad statement id %d", (int)id);
    }
    return st->ops->stmt(st, id, out);
}

void dbt_stmt_bind_text(struct dbt_stmt *s, int idx, const char *v)
{
    s->st->ops->bind_text(s, idx, v);
}

void dbt_stmt_bind_int(struct dbt_stmt *s, int idx, int64_t v)
{
    s->st->ops->bind_int(s, idx, v);
}

void dbt_stmt_bind_blob(struct dbt_stmt *s, int idx, const void *p, size_t n)
{
    s->st->ops->bind_blob(s, idx, p, n);
}

dbt_res dbt_stmt_step(struct dbt_stmt *s, bool *row)
{
    return s->st->ops->step(s, row);
}

dbt_res dbt_stmt_exec(struct dbt_stmt *s)
{
    bool row = true;
    while (row) {
        dbt_res r = dbt_stmt_step(s, &row);
        if (!dbt_ok(r)) {
            return r;
        }
    }
    s->st->ops->reset(s);
    return DBT_OK;
}

int64_t dbt_store_changes(struct dbt_store *st)
{
    return st->ops->changes(st);
}

const char *dbt_stmt_text(struct dbt_stmt *s, int col)
{
    return s->st->ops->text(s, col);
}

int64_t dbt_stmt_int(struct dbt_stmt *s, int col)
{
    return s->st->ops->int64(s, col);
}

const void *dbt_stmt_blob(struct dbt_stmt *s, int col, size_t *len)
{
    return s->st->ops->blob(s, col, len);
}

bool dbt_stmt_is_null(struct dbt_stmt *s, int col)
{
    return s->st->ops->is_null(s, col);
}

dbt_res dbt_stmt_dup(struct dbt_stmt *s, int col, char **out)
{
    const char *t = dbt_stmt_text(s, col);
    *out = NULL;
    if (!t) {
        return DBT_OK;
    }
    *out = strdup(t);
    return *out ? DBT_OK : dbt_fail(DBT_E_NOMEM, "store: out of memory");
}

dbt_res dbt_store_bump(struct dbt_store *st)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(st, DBT_SQL_COUNTER_BUMP, &s);
    if (dbt_ok(r)) {
        r = dbt_stmt_exec(s);
    }
    return r;
}

dbt_res dbt_store_watch_open(const struct dbt_store *st, struct dbt_store_watch **out)
{
    *out = NULL;
    return st->ops->watch_open ? st->ops->watch_open(st, out) : DBT_OK;
}

dbt_res dbt_store_counter(struct dbt_store *st, uint64_t *out)
{
    struct dbt_stmt *s = NULL;
    bool row = false;
    dbt_res r = dbt_store_stmt(st, DBT_SQL_COUNTER_GET, &s);
    if (dbt_ok(r)) {
        r = dbt_stmt_step(s, &row);
    }
    if (dbt_ok(r) && !row) {
        r = dbt_fail(DBT_E_CORRUPT, "%s has no change counter row", st->label);
    }
    if (dbt_ok(r)) {
        *out = (uint64_t)dbt_stmt_int(s, 0);
    }
    if (s) {
        st->ops->reset(s);
    }
    return r;
}
