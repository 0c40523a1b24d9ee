/*
 * store.c - the SQLite store behind store.h: opening (with the checks that turn a foreign or
 * damaged file into a CORRUPT error naming it), migrations, transactions, the change counter and
 * a thin statement wrapper so ctl never sees sqlite3 types. SQL text is in sql.c.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Writers wait this long for the write lock. Nothing slow runs inside a write transaction: ctl
 * generates private keys (RSA-4096: seconds) before BEGIN IMMEDIATE (ctl/keys.c), so a writer
 * holds the lock for milliseconds and 10 s covers a long queue of CLI processes, admin API
 * requests and the scheduler.
 */
#define BUSY_TIMEOUT_MS 10000

struct dbt_stmt {
    struct dbt_store *st;
    sqlite3_stmt *s;
    enum dbt_sql id;
    int bind_rc; /* first failing sqlite3_bind_* code, or SQLITE_OK */
};

struct dbt_store {
    sqlite3 *db;
    char *path;
    bool read_only;
    bool in_txn;
    struct dbt_stmt stmts[DBT_SQL__COUNT];
};

/* Turns an SQLite result into a dbt_res with a message naming the store file. */
static dbt_res store_err(struct dbt_store *st, int rc, const char *what)
{
    int prim = rc & 0xff;
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    switch (prim) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return dbt_fail(DBT_E_CORRUPT, "store file \"%s\" is damaged or not a dbtls store: %s",
                        st->path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return dbt_fail(DBT_E_STORE,
                        "store file \"%s\" is locked by another process (%s); try again", st->path,
                        msg);
    case SQLITE_CONSTRAINT:
        return dbt_fail(DBT_E_EXISTS, "store file \"%s\": %s: %s", st->path, what, msg);
    case SQLITE_NOMEM:
        return dbt_fail(DBT_E_NOMEM, "store: out of memory");
    case SQLITE_READONLY:
        return dbt_fail(DBT_E_PERM, "store file \"%s\" is read-only: %s", st->path, msg);
    case SQLITE_CANTOPEN:
        return dbt_fail(DBT_E_IO, "cannot open store file \"%s\": %s", st->path, msg);
    default:
        return dbt_fail(DBT_E_STORE, "store file \"%s\": %s: %s", st->path, what, msg);
    }
}

static dbt_res exec_sql(struct dbt_store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        return store_err(st, rc, what);
    }
    return DBT_OK;
}

static dbt_res pragma_int(struct dbt_store *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) {
        return store_err(st, rc, sql);
    }
    return DBT_OK;
}

/* Creates the file with mode 0600 so that the database (which holds sealed keys and
   certificates) is never readable by others, whatever the umask. */
static dbt_res create_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return dbt_fail(DBT_E_EXISTS, "store file \"%s\" already exists", path);
        }
        return dbt_fail(DBT_E_IO, "cannot create store file \"%s\": %s", path, strerror(errno));
    }
    close(fd);
    return DBT_OK;
}

static dbt_res migrate(struct dbt_store *st, int64_t from)
{
    dbt_res res = DBT_OK;
    int target = dbt_store_schema_version();
    if (from >= target) {
        return DBT_OK;
    }
    DBT_TRY(exec_sql(st, "BEGIN IMMEDIATE", "begin migration"));
    /* Re-read under the write lock: another process may have migrated meanwhile. */
    int64_t v = 0;
    DBT_TRY(pragma_int(st, "PRAGMA user_version", &v));
    for (int i = (int)v + 1; i <= target; i++) {
        DBT_TRY(exec_sql(st, dbt_sql_migration(i), "schema migration"));
    }
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", target);
    DBT_TRY(exec_sql(st, sql, "schema version"));
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", DBT_STORE_APPLICATION_ID);
    DBT_TRY(exec_sql(st, sql, "application id"));
    DBT_TRY(exec_sql(st, "COMMIT", "commit migration"));
out:
    if (!dbt_ok(res)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return res;
}

dbt_res dbt_store_open(const char *path, enum dbt_store_mode mode, struct dbt_store **out)
{
    dbt_res res = DBT_OK;
    struct dbt_store *st = NULL;
    *out = NULL;

    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        if (!dbt_sql_text((enum dbt_sql)i)) {
            return dbt_fail(DBT_E_INTERNAL, "store: statement %d has no SQL text", i);
        }
    }
    struct stat sb;
    if (mode == DBT_STORE_CREATE) {
        DBT_TRY(create_file(path));
    } else if (stat(path, &sb) != 0) {
        if (errno == ENOENT) {
            return dbt_fail(DBT_E_NOT_FOUND,
                            "store file \"%s\" does not exist; run `dbtls init` first", path);
        }
        return dbt_fail(DBT_E_IO, "cannot open store file \"%s\": %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        return dbt_fail(DBT_E_CORRUPT, "store file \"%s\" is not a regular file", path);
    }

    st = calloc(1, sizeof *st);
    DBT_ENSURE(st, NOMEM, "store: out of memory");
    st->path = strdup(path);
    DBT_ENSURE(st->path, NOMEM, "store: out of memory");
    st->read_only = mode == DBT_STORE_RO;
    int flags =
        SQLITE_OPEN_NOMUTEX | (st->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        res = store_err(st, rc, "open");
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);

    /* The first read of the header is where a foreign file shows itself (SQLITE_NOTADB). */
    int64_t app_id = 0, version = 0;
    DBT_TRY(pragma_int(st, "PRAGMA application_id", &app_id));
    DBT_TRY(pragma_int(st, "PRAGMA user_version", &version));
    if (mode != DBT_STORE_CREATE) {
        DBT_ENSURE(app_id == DBT_STORE_APPLICATION_ID && version > 0, CORRUPT,
                   "store file \"%s\" is an SQLite database but was not written by dbtls "
                   "(application_id %lld, user_version %lld)",
                   path, (long long)app_id, (long long)version);
    }
    DBT_ENSURE(version <= dbt_store_schema_version(), CORRUPT,
               "store file \"%s\" has schema version %lld, newer than this dbtls (%d); "
               "upgrade dbtls",
               path, (long long)version, dbt_store_schema_version());
    if (!st->read_only) {
        int64_t ignored = 0;
        DBT_TRY(pragma_int(st, "PRAGMA journal_mode = WAL", &ignored));
        DBT_TRY(exec_sql(st, "PRAGMA synchronous = FULL", "synchronous"));
    }
    DBT_TRY(exec_sql(st, "PRAGMA foreign_keys = ON", "foreign keys"));
    if (version < dbt_store_schema_version()) {
        DBT_ENSURE(!st->read_only, STATE,
                   "store file \"%s\" has schema version %lld; run a dbtls command that writes "
                   "(e.g. `dbtls instances list`) to migrate it to %d",
                   path, (long long)version, dbt_store_schema_version());
        DBT_TRY(migrate(st, version));
    }
    *out = st;
    st = NULL;
out:
    if (st) {
        dbt_store_close(st);
        if (mode == DBT_STORE_CREATE) {
            unlink(path);
        }
    }
    return res;
}

void dbt_store_close(struct dbt_store *st)
{
    if (!st) {
        return;
    }
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        sqlite3_finalize(st->stmts[i].s);
    }
    if (st->in_txn) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

const char *dbt_store_path(const struct dbt_store *st)
{
    return st->path;
}

void dbt_store_set_busy_timeout(struct dbt_store *st, int ms)
{
    sqlite3_busy_timeout(st->db, ms);
}

dbt_res dbt_store_begin(struct dbt_store *st, bool write)
{
    if (st->in_txn) {
        return dbt_fail(DBT_E_INTERNAL, "store: transaction already open");
    }
    if (write && st->read_only) {
        return dbt_fail(DBT_E_PERM, "store file \"%s\" is opened read-only", st->path);
    }
    dbt_res r = exec_sql(st, write ? "BEGIN IMMEDIATE" : "BEGIN", "begin");
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
    /*
     * A cached statement that was not stepped to the end keeps its read snapshot open after
     * COMMIT (WAL): a long-lived reader such as dbtlsd would then never see new changes.
     */
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        if (st->stmts[i].s) {
            sqlite3_reset(st->stmts[i].s);
        }
    }
    dbt_res r = exec_sql(st, "COMMIT", "commit");
    if (dbt_ok(r)) {
        st->in_txn = false;
    }
    return r;
}

void dbt_store_rollback(struct dbt_store *st)
{
    if (st && st->in_txn) {
        for (int i = 0; i < DBT_SQL__COUNT; i++) {
            if (st->stmts[i].s) {
                sqlite3_reset(st->stmts[i].s);
            }
        }
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
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
    struct dbt_stmt *s = &st->stmts[id];
    if (!s->s) {
        int rc = sqlite3_prepare_v3(st->db, dbt_sql_text(id), -1, SQLITE_PREPARE_PERSISTENT, &s->s,
                                    NULL);
        if (rc != SQLITE_OK) {
            return store_err(st, rc, "prepare");
        }
        s->st = st;
        s->id = id;
    } else {
        sqlite3_reset(s->s);
        sqlite3_clear_bindings(s->s);
    }
    s->bind_rc = SQLITE_OK;
    *out = s;
    return DBT_OK;
}

static void note_bind(struct dbt_stmt *s, int rc)
{
    if (rc != SQLITE_OK && s->bind_rc == SQLITE_OK) {
        s->bind_rc = rc;
    }
}

void dbt_stmt_bind_text(struct dbt_stmt *s, int idx, const char *v)
{
    note_bind(s, v ? sqlite3_bind_text(s->s, idx, v, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(s->s, idx));
}

void dbt_stmt_bind_int(struct dbt_stmt *s, int idx, int64_t v)
{
    note_bind(s, sqlite3_bind_int64(s->s, idx, v));
}

void dbt_stmt_bind_blob(struct dbt_stmt *s, int idx, const void *p, size_t n)
{
    note_bind(s, sqlite3_bind_blob64(s->s, idx, p, n, SQLITE_TRANSIENT));
}

dbt_res dbt_stmt_step(struct dbt_stmt *s, bool *row)
{
    if (s->bind_rc != SQLITE_OK) {
        return store_err(s->st, s->bind_rc, "bind");
    }
    int rc = sqlite3_step(s->s);
    if (rc == SQLITE_ROW) {
        if (row) {
            *row = true;
        }
        return DBT_OK;
    }
    if (rc == SQLITE_DONE) {
        if (row) {
            *row = false;
        }
        return DBT_OK;
    }
    dbt_res r = store_err(s->st, rc, "statement");
    sqlite3_reset(s->s);
    return r;
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
    sqlite3_reset(s->s);
    return DBT_OK;
}

int64_t dbt_store_changes(struct dbt_store *st)
{
    return sqlite3_changes64(st->db);
}

const char *dbt_stmt_text(struct dbt_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s->s, col);
}

int64_t dbt_stmt_int(struct dbt_stmt *s, int col)
{
    return sqlite3_column_int64(s->s, col);
}

const void *dbt_stmt_blob(struct dbt_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(s->s, col);
    *len = (size_t)sqlite3_column_bytes(s->s, col);
    return p;
}

bool dbt_stmt_is_null(struct dbt_stmt *s, int col)
{
    return sqlite3_column_type(s->s, col) == SQLITE_NULL;
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

dbt_res dbt_store_counter(struct dbt_store *st, uint64_t *out)
{
    struct dbt_stmt *s = NULL;
    bool row = false;
    dbt_res r = dbt_store_stmt(st, DBT_SQL_COUNTER_GET, &s);
    if (dbt_ok(r)) {
        r = dbt_stmt_step(s, &row);
    }
    if (dbt_ok(r) && !row) {
        r = dbt_fail(DBT_E_CORRUPT, "store file \"%s\" has no change counter row", st->path);
    }
    if (dbt_ok(r)) {
        *out = (uint64_t)dbt_stmt_int(s, 0);
    }
    sqlite3_reset(s ? s->s : NULL);
    return r;
}
