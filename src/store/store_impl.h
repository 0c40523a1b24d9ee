/*
 * store_impl.h - what the two store backends (store_sqlite.c, store_pg.c) share with the
 * dispatching layer (store.c): a small table of operations per backend and the common head of
 * the store and statement handles. Internal to src/store; ctl sees only store.h.
 */
#ifndef DBT_STORE_STORE_IMPL_H
#define DBT_STORE_STORE_IMPL_H

#include "store/store.h"

struct store_ops {
    void (*close)(struct dbt_store *st);
    void (*set_busy_timeout)(struct dbt_store *st, int ms);
    /* Called only with no transaction open (and write only on a writable handle). */
    dbt_res (*begin)(struct dbt_store *st, bool write);
    dbt_res (*commit)(struct dbt_store *st);
    void (*rollback)(struct dbt_store *st);
    dbt_res (*stmt)(struct dbt_store *st, enum dbt_sql id, struct dbt_stmt **out);
    void (*bind_text)(struct dbt_stmt *s, int idx, const char *v);
    void (*bind_int)(struct dbt_stmt *s, int idx, int64_t v);
    void (*bind_blob)(struct dbt_stmt *s, int idx, const void *p, size_t n);
    dbt_res (*step)(struct dbt_stmt *s, bool *row);
    /* Ends the statement's current execution (releases its result / read snapshot). */
    void (*reset)(struct dbt_stmt *s);
    int64_t (*changes)(struct dbt_store *st);
    const char *(*text)(struct dbt_stmt *s, int col);
    int64_t (*int64)(struct dbt_stmt *s, int col);
    const void *(*blob)(struct dbt_stmt *s, int col, size_t *len);
    bool (*is_null)(struct dbt_stmt *s, int col);
    /* Opens another handle on the same store (same location). */
    dbt_res (*reopen)(const struct dbt_store *st, enum dbt_store_mode mode, struct dbt_store **out);
    /* A consistent copy into a new file (NULL: the backend has none: pg_dump's job). */
    dbt_res (*backup)(struct dbt_store *st, const char *path);
    /* The whole content replaced by a restored copy's (NULL: pg_restore's job). */
    dbt_res (*replace)(struct dbt_store *st, const char *from, uint64_t expect);
    /* A change watch (NULL: the backend has none). */
    dbt_res (*watch_open)(const struct dbt_store *st, struct dbt_store_watch **out);
};

/* The head of every backend's store handle (backends embed it as their first member). */
struct dbt_store {
    const struct store_ops *ops;
    char *path;  /* what dbt_store_path returns: the file, or the conninfo without password */
    char *label; /* how errors name the store: `store file "/x/dbtls.db"` */
    bool read_only;
    bool in_txn;
};

/* The head of every backend's statement handle. */
struct dbt_stmt {
    struct dbt_store *st;
    enum dbt_sql id;
};

/* store_pg.c's helpers shared with store_pg_watch.c. */
/* libpq's message (several lines, tabs) as one line in buf. */
const char *dbt_pg_one_line(const char *msg, char *buf, size_t n);
/* A watch connection to conninfo; label names the store in errors. */
dbt_res dbt_pg_watch_open(const char *conninfo, const char *label,
                          struct dbt_store_watch **out) DBT_WUR;

#endif
