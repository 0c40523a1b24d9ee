/*
 * store_sqlite.c - the SQLite backend of store.h (the default: one file, state-dir/dbtls.db):
 * opening (with the checks that turn a foreign or damaged file into a CORRUPT error naming it),
 * migrations, transactions, the change counter and a thin statement wrapper so ctl never sees
 * sqlite3 types. SQL text is in sql.c.
 */
#include "store/store_impl.h"

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

struct lite_stmt {
    struct dbt_stmt base;
    sqlite3_stmt *s;
    int bind_rc; /* first failing sqlite3_bind_* code, or SQLITE_OK */
};

struct lite_store {
    struct dbt_store base;
    sqlite3 *db;
    struct lite_stmt stmts[DBT_SQL__COUNT];
};

static const struct store_ops lite_ops;

static struct lite_store *lite(struct dbt_store *st)
{
    return (struct lite_store *)st;
}

static struct lite_stmt *lstmt(struct dbt_stmt *s)
{
    return (struct lite_stmt *)s;
}

/* Turns an SQLite result into a dbt_res with a message naming the store file. */
/* Turns an SQLite result into a dbt_res with a message naming the store file. */
static dbt_res store_err(struct lite_store *st, int rc, const char *what)
{
    int prim = rc & 0xff;
    const char *path = st->base.path;
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    switch (prim) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return dbt_fail(DBT_E_CORRUPT, "store file \"%s\" is damaged or not a dbtls store: %s",
                        path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return dbt_fail(DBT_E_STORE,
                        "store file \"%s\" is locked by another process (%s); try again", path,
                        msg);
    case SQLITE_CONSTRAINT:
        return dbt_fail(DBT_E_EXISTS, "store file \"%s\": %s: %s", path, what, msg);
    case SQLITE_NOMEM:
        return dbt_fail(DBT_E_NOMEM, "store: out of memory");
    case SQLITE_READONLY:
        return dbt_fail(DBT_E_PERM, "store file \"%s\" is read-only: %s", path, msg);
    case SQLITE_CANTOPEN:
        return dbt_fail(DBT_E_IO, "cannot open store file \"%s\": %s", path, msg);
    default:
        return dbt_fail(DBT_E_STORE, "store file \"%s\": %s: %s", path, what, msg);
    }
}

static dbt_res exec_sql(struct lite_store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        return store_err(st, rc, what);
    }
    return DBT_OK;
}

static dbt_res pragma_int(struct lite_store *st, const char *sql, int64_t *out)
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

static dbt_res migrate(struct lite_store *st, int64_t from)
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

static void lite_close(struct dbt_store *base)
{
    struct lite_store *st = lite(base);
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        sqlite3_finalize(st->stmts[i].s);
    }
    if (base->in_txn) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(st->db);
    free(base->path);
    free(base->label);
    free(st);
}

dbt_res dbt_store_open(const char *path, enum dbt_store_mode mode, struct dbt_store **out)
{
    dbt_res res = DBT_OK;
    struct lite_store *st = NULL;
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
    st->base.ops = &lite_ops;
    st->base.path = strdup(path);
    DBT_ENSURE(st->base.path, NOMEM, "store: out of memory");
    DBT_ENSURE(asprintf(&st->base.label, "store file \"%s\"", path) >= 0, NOMEM,
               "store: out of memory");
    st->base.read_only = mode == DBT_STORE_RO;
    int flags =
        SQLITE_OPEN_NOMUTEX | (st->base.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
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
    if (!st->base.read_only) {
        int64_t ignored = 0;
        DBT_TRY(pragma_int(st, "PRAGMA journal_mode = WAL", &ignored));
        DBT_TRY(exec_sql(st, "PRAGMA synchronous = FULL", "synchronous"));
    }
    if (version < dbt_store_schema_version()) {
        DBT_ENSURE(!st->base.read_only, STATE,
                   "store file \"%s\" has schema version %lld; run a dbtls command that writes "
                   "(e.g. `dbtls instances list`) to migrate it to %d",
                   path, (long long)version, dbt_store_schema_version());
        /* with foreign keys still off (SQLite's default): a migration that rebuilds a table
           (5) must not cascade its DROP into the rows that reference it */
        DBT_TRY(migrate(st, version));
    }
    DBT_TRY(exec_sql(st, "PRAGMA foreign_keys = ON", "foreign keys"));
    *out = &st->base;
    st = NULL;
out:
    if (st) {
        lite_close(&st->base);
        if (mode == DBT_STORE_CREATE) {
            unlink(path);
        }
    }
    return res;
}

static dbt_res lite_reopen(const struct dbt_store *st, enum dbt_store_mode mode,
                           struct dbt_store **out)
{
    return dbt_store_open(st->path, mode, out);
}

static void lite_set_busy_timeout(struct dbt_store *st, int ms)
{
    sqlite3_busy_timeout(lite(st)->db, ms);
}

static dbt_res lite_begin(struct dbt_store *st, bool write)
{
    return exec_sql(lite(st), write ? "BEGIN IMMEDIATE" : "BEGIN", "begin");
}

static void reset_all(struct lite_store *st)
{
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        if (st->stmts[i].s) {
            sqlite3_reset(st->stmts[i].s);
        }
    }
}

static dbt_res lite_commit(struct dbt_store *st)
{
    /*
     * A cached statement that was not stepped to the end keeps its read snapshot open after
     * COMMIT (WAL): a long-lived reader such as dbtlsd would then never see new changes.
     */
    reset_all(lite(st));
    return exec_sql(lite(st), "COMMIT", "commit");
}

static void lite_rollback(struct dbt_store *st)
{
    reset_all(lite(st));
    sqlite3_exec(lite(st)->db, "ROLLBACK", NULL, NULL, NULL);
}

static dbt_res lite_stmt(struct dbt_store *base, enum dbt_sql id, struct dbt_stmt **out)
{
    struct lite_store *st = lite(base);
    struct lite_stmt *s = &st->stmts[id];
    if (!s->s) {
        int rc = sqlite3_prepare_v3(st->db, dbt_sql_text(id), -1, SQLITE_PREPARE_PERSISTENT, &s->s,
                                    NULL);
        if (rc != SQLITE_OK) {
            return store_err(st, rc, "prepare");
        }
        s->base.st = base;
        s->base.id = id;
    } else {
        sqlite3_reset(s->s);
        sqlite3_clear_bindings(s->s);
    }
    s->bind_rc = SQLITE_OK;
    *out = &s->base;
    return DBT_OK;
}

static void note_bind(struct lite_stmt *s, int rc)
{
    if (rc != SQLITE_OK && s->bind_rc == SQLITE_OK) {
        s->bind_rc = rc;
    }
}

static void lite_bind_text(struct dbt_stmt *s, int idx, const char *v)
{
    struct lite_stmt *l = lstmt(s);
    note_bind(l, v ? sqlite3_bind_text(l->s, idx, v, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(l->s, idx));
}

static void lite_bind_int(struct dbt_stmt *s, int idx, int64_t v)
{
    note_bind(lstmt(s), sqlite3_bind_int64(lstmt(s)->s, idx, v));
}

static void lite_bind_blob(struct dbt_stmt *s, int idx, const void *p, size_t n)
{
    note_bind(lstmt(s), sqlite3_bind_blob64(lstmt(s)->s, idx, p, n, SQLITE_TRANSIENT));
}

static dbt_res lite_step(struct dbt_stmt *s, bool *row)
{
    struct lite_stmt *l = lstmt(s);
    struct lite_store *st = lite(s->st);
    if (l->bind_rc != SQLITE_OK) {
        return store_err(st, l->bind_rc, "bind");
    }
    int rc = sqlite3_step(l->s);
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
    dbt_res r = store_err(st, rc, "statement");
    sqlite3_reset(l->s);
    return r;
}

static void lite_reset(struct dbt_stmt *s)
{
    sqlite3_reset(lstmt(s)->s);
}

static int64_t lite_changes(struct dbt_store *st)
{
    return sqlite3_changes64(lite(st)->db);
}

static const char *lite_text(struct dbt_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(lstmt(s)->s, col);
}

static int64_t lite_int(struct dbt_stmt *s, int col)
{
    return sqlite3_column_int64(lstmt(s)->s, col);
}

static const void *lite_blob(struct dbt_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(lstmt(s)->s, col);
    *len = (size_t)sqlite3_column_bytes(lstmt(s)->s, col);
    return p;
}

static bool lite_is_null(struct dbt_stmt *s, int col)
{
    return sqlite3_column_type(lstmt(s)->s, col) == SQLITE_NULL;
}

/* Whether db passes PRAGMA integrity_check. */
static bool integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL);
    bool ok = rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
    sqlite3_finalize(q);
    return ok;
}

/*
 * Writes src's main database into tmp, a file this function creates (mode 0600), with SQLite's
 * online backup: one step over all pages is one read snapshot, so the copy is consistent while
 * other handles commit (WAL readers do not block writers). The copy is switched to a rollback
 * journal (a file of its own: no -wal beside it), checked and synced. what names the copy in
 * errors ("backup file \"x\""), src_label the source. The caller removes tmp on failure.
 */
static dbt_res copy_db(sqlite3 *src, const char *src_label, const char *tmp, const char *what)
{
    dbt_res res = DBT_OK;
    sqlite3 *dst = NULL;
    unlink(tmp);
    res = create_file(tmp);
    if (!dbt_ok(res)) {
        return dbt_fail(DBT_E_IO, "cannot create %s: %s", what, strerror(errno));
    }
    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    DBT_ENSURE(rc == SQLITE_OK, IO, "cannot open %s: %s", what,
               dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    DBT_ENSURE(b != NULL, STORE, "%s: copy: %s", src_label, sqlite3_errmsg(dst));
    rc = sqlite3_backup_step(b, -1);
    int fin = sqlite3_backup_finish(b);
    DBT_ENSURE(rc == SQLITE_DONE && fin == SQLITE_OK, STORE, "%s: copy to %s: %s", src_label, what,
               sqlite3_errstr(rc == SQLITE_DONE ? fin : rc));
    rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    DBT_ENSURE(rc == SQLITE_OK, IO, "%s: %s", what, sqlite3_errmsg(dst));
    DBT_ENSURE(integrity_ok(dst), CORRUPT, "%s does not pass SQLite's integrity check", what);
    rc = sqlite3_close(dst);
    dst = NULL;
    DBT_ENSURE(rc == SQLITE_OK, IO, "%s: close failed", what);
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    bool synced = fd >= 0 && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0) {
        close(fd);
    }
    DBT_ENSURE(synced, IO, "cannot sync %s: %s", what, strerror(err));
out:
    if (dst != NULL) {
        sqlite3_close(dst);
    }
    return res;
}

static dbt_res lite_backup(struct dbt_store *base, const char *path)
{
    dbt_res res = DBT_OK;
    char *tmp = NULL, *what = NULL;
    DBT_ENSURE(access(path, F_OK) != 0, EXISTS, "backup file \"%s\" already exists", path);
    DBT_ENSURE(asprintf(&tmp, "%s.tmp-%ld", path, (long)getpid()) >= 0 &&
                   asprintf(&what, "backup file \"%s\"", path) >= 0,
               NOMEM, "store: out of memory");
    res = copy_db(lite(base)->db, base->label, tmp, what);
    /* link: never replaces a file that appeared meanwhile (rename would) */
    if (dbt_ok(res) && link(tmp, path) != 0) {
        res = dbt_fail(DBT_E_IO, "cannot create %s: %s", what,
                       errno == EEXIST ? "it already exists" : strerror(errno));
    }
    unlink(tmp);
out:
    free(tmp);
    free(what);
    return res;
}

dbt_res dbt_store_copy_file(const char *from, const char *to)
{
    dbt_res res = DBT_OK;
    sqlite3 *db = NULL;
    char *label = NULL;
    struct stat sb;
    if (stat(from, &sb) != 0) {
        return dbt_fail(errno == ENOENT ? DBT_E_NOT_FOUND : DBT_E_IO, "cannot read \"%s\": %s",
                        from, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) {
        return dbt_fail(DBT_E_INVALID, "\"%s\" is not a regular file", from);
    }
    DBT_ENSURE(asprintf(&label, "\"%s\"", from) >= 0, NOMEM, "store: out of memory");
    int rc = sqlite3_open_v2(from, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    DBT_ENSURE(rc == SQLITE_OK, IO, "cannot open \"%s\": %s", from,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    struct lite_store probe = {.base = {.path = (char *)from, .label = label}, .db = db};
    int64_t app_id = 0, version = 0;
    res = pragma_int(&probe, "PRAGMA application_id", &app_id);
    if (dbt_ok(res)) {
        res = pragma_int(&probe, "PRAGMA user_version", &version);
    }
    if (!dbt_ok(res)) {
        res = dbt_fail(DBT_E_CORRUPT, "\"%s\" is not a dbtls store (%s)", from, sqlite3_errmsg(db));
        goto out;
    }
    DBT_ENSURE(app_id == DBT_STORE_APPLICATION_ID && version > 0, CORRUPT,
               "\"%s\" is not a dbtls store (an SQLite database with application_id %lld)", from,
               (long long)app_id);
    DBT_ENSURE(version <= dbt_store_schema_version(), CORRUPT,
               "\"%s\" has schema version %lld, newer than this dbtls (%d); upgrade dbtls", from,
               (long long)version, dbt_store_schema_version());
    DBT_ENSURE(integrity_ok(db), CORRUPT, "\"%s\" does not pass SQLite's integrity check", from);
    res = copy_db(db, label, to, label);
    if (!dbt_ok(res)) {
        unlink(to);
    }
out:
    sqlite3_close(db);
    free(label);
    return res;
}

/* The text of column 0 of the first row of sql (bound to the texts a1, a2 when non-NULL), into
 *out (malloc'd, NULL for no row or NULL). */
static dbt_res query_text(struct lite_store *st, const char *sql, const char *a1, const char *a2,
                          char **out)
{
    sqlite3_stmt *q = NULL;
    *out = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK && a1) {
        rc = sqlite3_bind_text(q, 1, a1, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && a2) {
        rc = sqlite3_bind_text(q, 2, a2, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(q, 0);
            *out = t ? strdup(t) : NULL;
            rc = t && !*out ? SQLITE_NOMEM : SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? DBT_OK : store_err(st, rc, sql);
}

/* Checks that main's table name has the same columns, in the same order, as restore_src's. */
static dbt_res same_columns(struct lite_store *st, const char *name)
{
    dbt_res res = DBT_OK;
    char *cols_main = NULL, *cols_src = NULL;
    DBT_TRY(query_text(st, dbt_sql_replace.columns, name, "main", &cols_main));
    DBT_TRY(query_text(st, dbt_sql_replace.columns, name, "restore_src", &cols_src));
    DBT_ENSURE(cols_main && cols_src && strcmp(cols_main, cols_src) == 0, CORRUPT,
               "%s: the restored copy's table %s has other columns (%s) than the store's (%s)",
               st->base.label, name, cols_src ? cols_src : "none", cols_main ? cols_main : "none");
out:
    free(cols_main);
    free(cols_src);
    return res;
}

/* Runs fmt (dbt_sql_replace.empty or .fill: %w the table, twice for fill) on every table. */
static dbt_res each_table(struct lite_store *st, char **names, size_t n, const char *fmt,
                          const char *what)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < n && dbt_ok(res); i++) {
        char *sql = sqlite3_mprintf(fmt, names[i], names[i]);
        res = sql ? exec_sql(st, sql, what) : dbt_fail(DBT_E_NOMEM, "store: out of memory");
        sqlite3_free(sql);
    }
    return res;
}

/* The names of restore_src's tables into names (sorted) and their comma list into *list. */
static dbt_res src_tables(struct lite_store *st, char ***names, size_t *n, char **list)
{
    sqlite3_stmt *q = NULL;
    size_t len = 0;
    int rc = sqlite3_prepare_v2(st->db, dbt_sql_replace.tables_src, -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        size_t l = strlen(name);
        char **nv = realloc(*names, (*n + 1) * sizeof *nv);
        char *nl = realloc(*list, len + l + 2);
        if (nv) {
            *names = nv;
        }
        if (nl) {
            *list = nl;
        }
        if (!nv || !nl || !(nv[*n] = strdup(name))) {
            rc = SQLITE_NOMEM;
            break;
        }
        (*n)++;
        if (len) {
            nl[len++] = ',';
        }
        memcpy(nl + len, name, l + 1);
        len += l;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? DBT_OK : store_err(st, rc, "restore: list the copy's tables");
}

static dbt_res lite_replace(struct dbt_store *base, const char *from, uint64_t expect)
{
    dbt_res res = DBT_OK;
    struct lite_store *st = lite(base);
    sqlite3_stmt *q = NULL;
    char *tables_main = NULL, *tables_src = NULL, **names = NULL;
    size_t n_names = 0;
    bool attached = false, began = false;
    int rc = sqlite3_prepare_v2(st->db, dbt_sql_replace.attach, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(q, 1, from, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(st->db);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK) {
        res = store_err(st, rc, "restore: attach the copy");
        goto out;
    }
    attached = true;
    DBT_TRY(exec_sql(st, dbt_sql_replace.fk_off, "restore: foreign keys off"));
    DBT_TRY(exec_sql(st, "BEGIN IMMEDIATE", "begin"));
    began = true;
    int64_t counter = 0;
    DBT_TRY(pragma_int(st, dbt_sql_replace.counter, &counter));
    DBT_ENSURE((uint64_t)counter == expect, STATE,
               "%s changed while the copy was prepared (change counter %lld, was %llu); nothing "
               "was restored: run the restore again",
               base->label, (long long)counter, (unsigned long long)expect);
    DBT_TRY(query_text(st, dbt_sql_replace.tables_main, NULL, NULL, &tables_main));
    DBT_TRY(src_tables(st, &names, &n_names, &tables_src));
    DBT_ENSURE(tables_main && tables_src && strcmp(tables_main, tables_src) == 0, CORRUPT,
               "%s: the restored copy has other tables (%s) than the store (%s)", base->label,
               tables_src ? tables_src : "none", tables_main ? tables_main : "none");
    for (size_t i = 0; i < n_names; i++) {
        DBT_TRY(same_columns(st, names[i]));
    }
    /* every table emptied before any is filled, with foreign keys off: no delete cascades into
       rows just copied; the references are checked once all are back */
    DBT_TRY(each_table(st, names, n_names, dbt_sql_replace.empty, "restore: empty a table"));
    DBT_TRY(each_table(st, names, n_names, dbt_sql_replace.fill, "restore: fill a table"));
    rc = sqlite3_prepare_v2(st->db, dbt_sql_replace.fk_check, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q);
    }
    sqlite3_finalize(q);
    q = NULL;
    DBT_ENSURE(rc != SQLITE_ROW, CORRUPT,
               "%s: the restored copy has rows whose references do not resolve; nothing was "
               "restored",
               base->label);
    if (rc != SQLITE_DONE) {
        res = store_err(st, rc, "restore: check references");
        goto out;
    }
    DBT_TRY(exec_sql(st, "COMMIT", "restore: commit"));
    began = false;
out:
    if (began) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (attached) {
        sqlite3_exec(st->db, dbt_sql_replace.detach, NULL, NULL, NULL);
        sqlite3_exec(st->db, dbt_sql_replace.fk_on, NULL, NULL, NULL);
    }
    for (size_t i = 0; i < n_names; i++) {
        free(names[i]);
    }
    free(names);
    free(tables_main);
    free(tables_src);
    return res;
}

static const struct store_ops lite_ops = {
    .close = lite_close,
    .set_busy_timeout = lite_set_busy_timeout,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .stmt = lite_stmt,
    .bind_text = lite_bind_text,
    .bind_int = lite_bind_int,
    .bind_blob = lite_bind_blob,
    .step = lite_step,
    .reset = lite_reset,
    .changes = lite_changes,
    .text = lite_text,
    .int64 = lite_int,
    .blob = lite_blob,
    .is_null = lite_is_null,
    .reopen = lite_reopen,
    .backup = lite_backup,
    .replace = lite_replace,
};
