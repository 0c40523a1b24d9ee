/*
 * store.h - the persistent store of dbtls: by default one SQLite database (state-dir/dbtls.db)
 * in WAL mode with foreign keys, a busy timeout, schema migrations tracked in PRAGMA
 * user_version, and a change counter that a running daemon polls; or a PostgreSQL database
 * shared by several nodes (store_pg.c; schema version in a table, the same statement ids).
 * This is the only layer that includes <sqlite3.h> and <libpq-fe.h>; all SQL text lives in
 * sql.c (SQLite) and sql_pg.c (PostgreSQL), addressed here by statement ids (enum dbt_sql), so
 * ctl holds no SQL and works unchanged on either backend.
 *
 * Use: open, then for each operation begin (write = BEGIN IMMEDIATE, so two writers serialize
 * instead of failing mid-way), run statements, bump the counter if something changed, commit;
 * on any error rollback. A crash before COMMIT leaves the previous state (SQLite's journal).
 * A store handle is used by one thread at a time.
 */
#ifndef DBT_STORE_STORE_H
#define DBT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_store;
struct dbt_stmt;

enum dbt_store_mode {
    DBT_STORE_CREATE, /* the file must not exist; creates it with the current schema */
    DBT_STORE_RW,     /* the file must exist; migrates an older schema */
    DBT_STORE_RO,     /* the file must exist and be current; never writes */
};

/* Statement ids; the SQL text of each is in sql.c (documented there). */
enum dbt_sql {
    DBT_SQL_COUNTER_GET,
    DBT_SQL_COUNTER_BUMP,
    DBT_SQL_SETTING_GET,
    DBT_SQL_SETTING_PUT,
    DBT_SQL_EVENT_ADD,
    DBT_SQL_EVENT_LIST,
    DBT_SQL_EVENT_COUNT,
    DBT_SQL_CA_ADD,
    DBT_SQL_CA_GET,
    DBT_SQL_CA_ROOTS,
    DBT_SQL_CA_REGIONS,
    DBT_SQL_CA_INTERMEDIATES,
    DBT_SQL_CA_COUNT,
    DBT_SQL_CA_USERS,
    DBT_SQL_CA_DELETE,
    DBT_SQL_INSTANCE_ADD,
    DBT_SQL_INSTANCE_GET,
    DBT_SQL_INSTANCE_NAMES,
    DBT_SQL_INSTANCE_NAMES_BY_AGE,
    DBT_SQL_INSTANCE_BY_LISTEN,
    DBT_SQL_INSTANCE_UPDATE,
    DBT_SQL_INSTANCE_SET_CLIENT_CA,
    DBT_SQL_INSTANCE_SET_CRL,
    DBT_SQL_INSTANCE_DELETE,
    DBT_SQL_INSTANCE_COUNT,
    DBT_SQL_SLOT_PUT,
    DBT_SQL_SLOT_GET,
    DBT_SQL_SLOT_DELETE,
    DBT_SQL_SLOT_DELETE_ALL,
    DBT_SQL_SLOT_RENAME,
    DBT_SQL_SLOT_COUNT,
    DBT_SQL_CLIENT_ADD,
    DBT_SQL_CLIENT_LIST,
    DBT_SQL_CLIENT_FIND,
    DBT_SQL_CLIENT_COUNT,
    DBT_SQL_CLIENT_DELETE,
    DBT_SQL_CLIENT_DELETE_ALL,
    DBT_SQL_REVOKE_ADD,
    DBT_SQL_REVOKE_LIST,
    DBT_SQL_REVOKE_COUNT,
    /* automatic rotation and notification delivery (ctl/auto.c, migration 2) */
    DBT_SQL_ROTATION_GET,
    DBT_SQL_ROTATION_PUT,
    DBT_SQL_NOTICE_ADD,
    DBT_SQL_NOTICE_HAS,
    DBT_SQL_NOTIFY_MARK_GET,
    DBT_SQL_NOTIFY_MARK_PUT,
    DBT_SQL_EVENT_AFTER,
    DBT_SQL_EVENT_MAX_ID,
    /* admin client certificates (ctl/admin_ca.c, migration 3) */
    DBT_SQL_ADMIN_CERT_ADD,
    DBT_SQL_ADMIN_CERT_LIST,
    DBT_SQL_ADMIN_CERT_FIND,
    DBT_SQL_ADMIN_CERT_REVOKE,
    DBT_SQL_ADMIN_CERT_REVOKED,
    DBT_SQL_ADMIN_CERT_UNNOTICED,
    DBT_SQL_ADMIN_CERT_NOTICED,
    /* master key rotation (ctl/master_key.c): every sealed key with the certificate it is for */
    DBT_SQL_SEALED_CAS,
    DBT_SQL_SEALED_CA_SET,
    DBT_SQL_SEALED_CLIENT_CAS,
    DBT_SQL_SEALED_CLIENT_CA_SET,
    DBT_SQL_SEALED_SLOTS,
    DBT_SQL_SEALED_SLOT_CA_SET,
    DBT_SQL_SEALED_SLOT_KEY_SET,
    /* renewal of an imported CA's certificate (ctl/cas_import.c) */
    DBT_SQL_CA_ISSUED,
    DBT_SQL_CA_RENEW,
    /* restoring a copy of the store (ctl/restore.c) */
    DBT_SQL_COUNTER_SET,
    DBT_SQL_RESTORE_INSTANCES,
    DBT_SQL_RESTORE_CLIENTS,
    DBT_SQL_RESTORE_REVOKED,
    DBT_SQL_RESTORE_SERIAL,
    DBT_SQL_CLIENT_DELETE_SERIAL,
    DBT_SQL_ADMIN_CERT_BY_SERIAL,
    DBT_SQL_EVENT_LAST_TIME,
    DBT_SQL_EVENT_PUT,
    DBT_SQL_NOTIFY_MARKS,
    DBT_SQL__COUNT
};

/*
 * Opens path. Errors name the file: NOT_FOUND (RW/RO and missing: "run dbtls init"), EXISTS
 * (CREATE and present), CORRUPT (not an SQLite database, or not one written by dbtls, or a
 * schema newer than this program), STORE (locked, I/O). The file is created mode 0600.
 */
dbt_res dbt_store_open(const char *path, enum dbt_store_mode mode, struct dbt_store **out) DBT_WUR;
/*
 * Opens a PostgreSQL store: conninfo is a libpq URI (postgresql://...) or key=value string.
 * CREATE makes the schema (EXISTS if a dbtls schema is already in that database) in a
 * transaction that the handle's first dbt_store_begin continues, so the schema commits with
 * the caller's first writes or not at all; RW migrates an older schema; RO never writes. Errors
 * name the store without its password and carry libpq's reason: STORE (cannot connect, lock wait
 * over), NOT_FOUND (no dbtls schema there), CORRUPT (schema newer than this program), INVALID
 * (conninfo does not parse).
 */
dbt_res dbt_store_open_pg(const char *conninfo, enum dbt_store_mode mode,
                          struct dbt_store **out) DBT_WUR;
/* Another handle on the store st is on (same file or database), opened with mode. */
dbt_res dbt_store_reopen(const struct dbt_store *st, enum dbt_store_mode mode,
                         struct dbt_store **out) DBT_WUR;
void dbt_store_close(struct dbt_store *st);
/*
 * Writes a consistent copy of the SQLite store to path, a new file (EXISTS if it is there; mode
 * 0600), while others read and write (SQLite's online backup, one read snapshot): written under
 * a temporary name, checked (integrity_check) and synced, then linked into place, so a failed
 * backup leaves nothing. STATE for a PostgreSQL store (pg_dump backs that up). Outside a
 * transaction.
 */
dbt_res dbt_store_backup(struct dbt_store *st, const char *path) DBT_WUR;
/*
 * Copies the dbtls store in the SQLite file from (a `dbtls backup` copy, or a store file itself)
 * to to, a new file (mode 0600), with SQLite's online backup. from must be a dbtls store no
 * newer than this program that passes integrity_check: NOT_FOUND when it is missing, CORRUPT
 * naming it otherwise. Open to with dbt_store_open(RW) to migrate it. A failure leaves no to.
 */
dbt_res dbt_store_copy_file(const char *from, const char *to) DBT_WUR;
/*
 * Replaces the whole content of st by the SQLite store in the file from (same schema: open it
 * RW once first) in one write transaction, if st's change counter is still expect (STATE
 * otherwise: a change committed since the caller read it). Readers see the old content or the
 * new. Outside a transaction. STATE for a PostgreSQL store (pg_restore's job).
 */
dbt_res dbt_store_replace(struct dbt_store *st, const char *from, uint64_t expect) DBT_WUR;
/* The SQLite file, or for PostgreSQL the connection parameters without the password. */
const char *dbt_store_path(const struct dbt_store *st);
/* How long a blocked statement (BEGIN IMMEDIATE while another writer holds the lock) waits
   before it fails with STORE; open sets 10 s. 0 = fail at once (tests probing the lock). */
void dbt_store_set_busy_timeout(struct dbt_store *st, int ms);

/* Starts a transaction: write = BEGIN IMMEDIATE (takes the write lock now, waits up to the busy
   timeout), else a deferred read transaction (a consistent snapshot in WAL mode). */
dbt_res dbt_store_begin(struct dbt_store *st, bool write) DBT_WUR;
dbt_res dbt_store_commit(struct dbt_store *st) DBT_WUR;
/* Rolls back the open transaction, if any (safe to call always, e.g. at `out:`). */
void dbt_store_rollback(struct dbt_store *st);
bool dbt_store_in_txn(const struct dbt_store *st);

/* Adds one to the change counter (inside the caller's write transaction). */
dbt_res dbt_store_bump(struct dbt_store *st) DBT_WUR;
/* Reads the change counter (in or outside a transaction). */
dbt_res dbt_store_counter(struct dbt_store *st, uint64_t *out) DBT_WUR;

/*
 * Change notifications (DESIGN.md §2): on a PostgreSQL store every counter bump notifies the
 * channel DBT_STORE_CHANNEL at commit, and a watch is a connection of its own that LISTENs on it,
 * so that several dbtlsd nodes learn of a change at once instead of at their next poll.
 */
#define DBT_STORE_CHANNEL "dbtls_change"
struct dbt_store_watch;
/* A watch on st's store: *out = NULL (and OK) when the store has no notifications (SQLite:
   poll the counter); STORE when the listening connection cannot be made. */
dbt_res dbt_store_watch_open(const struct dbt_store *st, struct dbt_store_watch **out) DBT_WUR;
/* The descriptor that turns readable when something arrived. */
int dbt_store_watch_fd(const struct dbt_store_watch *w);
/* Consumes what arrived without blocking: *changed = true when a change was notified. STORE
   when the connection is lost (close the watch, poll, and open another later). */
dbt_res dbt_store_watch_read(struct dbt_store_watch *w, bool *changed) DBT_WUR;
void dbt_store_watch_close(struct dbt_store_watch *w);

/*
 * The prepared statement for id, reset with bindings cleared (statements are cached per
 * handle; the pointer stays valid until the next dbt_store_stmt for the same id or close).
 * Bind with the dbt_stmt_bind_* functions (1-based ?N parameters; a failure is remembered and
 * reported by the next step), then step.
 */
dbt_res dbt_store_stmt(struct dbt_store *st, enum dbt_sql id, struct dbt_stmt **out) DBT_WUR;
void dbt_stmt_bind_text(struct dbt_stmt *s, int idx, const char *v); /* NULL binds NULL */
void dbt_stmt_bind_int(struct dbt_stmt *s, int idx, int64_t v);
void dbt_stmt_bind_blob(struct dbt_stmt *s, int idx, const void *p, size_t n);
/* One step: *row = true when a row is available. Errors as for open (STORE/CORRUPT/EXISTS for a
   uniqueness violation). */
dbt_res dbt_stmt_step(struct dbt_stmt *s, bool *row) DBT_WUR;
/* Steps to the end (for statements that return no rows). */
dbt_res dbt_stmt_exec(struct dbt_stmt *s) DBT_WUR;
/* Rows changed by the last INSERT/UPDATE/DELETE on this handle. */
int64_t dbt_store_changes(struct dbt_store *st);
/* Column accessors for the current row (0-based). Text is NULL for SQL NULL; the pointers are
   valid until the next step/reset of the statement. */
const char *dbt_stmt_text(struct dbt_stmt *s, int col);
int64_t dbt_stmt_int(struct dbt_stmt *s, int col);
const void *dbt_stmt_blob(struct dbt_stmt *s, int col, size_t *len);
bool dbt_stmt_is_null(struct dbt_stmt *s, int col);
/* A malloc'd copy of a text column into *out (NULL for SQL NULL). NOMEM on failure. */
dbt_res dbt_stmt_dup(struct dbt_stmt *s, int col, char **out) DBT_WUR;

/* The schema version this program writes (PRAGMA user_version). */
int dbt_store_schema_version(void);
/* Internal (sql.c): the SQL text of a statement and the migration steps. */
const char *dbt_sql_text(enum dbt_sql id);
struct dbt_sql_replace {
    const char *attach, *detach, *counter, *tables_main, *tables_src, *columns;
    const char *fk_off, *fk_on, *fk_check;
    const char *empty, *fill; /* sqlite3_mprintf formats: %w the table's name */
};
extern const struct dbt_sql_replace dbt_sql_replace;
/* Migration i (1-based) brings user_version i-1 to i; NULL past the last. */
const char *dbt_sql_migration(int i);
/* The same for the PostgreSQL store (sql_pg.c): its schema version (kept in the table
   dbtls_schema), statement text ($n parameters) and migrations. */
int dbt_pg_schema_version(void);
const char *dbt_pg_sql_text(enum dbt_sql id);
const char *dbt_pg_sql_migration(int i);

/*
 * store.conf: how a state directory names a PostgreSQL store (one line, the conninfo; mode 0600
 * since it may hold a password). Write creates the file (EXISTS if present; INVALID if libpq
 * cannot parse conninfo); read gives a malloc'd conninfo, NOT_FOUND when there is no file (the
 * state directory uses SQLite), PERM if group or world may read it.
 */
dbt_res dbt_store_conf_write(const char *path, const char *conninfo) DBT_WUR;
dbt_res dbt_store_conf_read(const char *path, char **out) DBT_WUR;

/* PRAGMA application_id that marks a dbtls store ("DBTS"). */
#define DBT_STORE_APPLICATION_ID 0x44425453

#endif
