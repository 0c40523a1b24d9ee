/*
 * store_pg.c - the PostgreSQL backend of store.h, for several dbtlsd nodes sharing one store.
 * The semantics are SQLite's: write transactions serialize on one transaction-scoped advisory
 * lock taken right after BEGIN (READ COMMITTED, so every statement after it sees all that
 * committed before), read transactions see one snapshot (REPEATABLE READ READ ONLY), a lock
 * wait is bounded by lock_timeout (the busy timeout), and a failed operation is rolled back
 * whole. Statements are prepared once per connection from sql_pg.c; parameters go as text,
 * blobs as binary, and results come back binary (blobs as they are, integers decoded here).
 */
#include "store/store_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

/* Writers wait this long for the write lock, as the SQLite store's busy timeout (see there). */
#define LOCK_TIMEOUT_MS 10000
/* A statement whose answer has not come after this long (lock waits end at LOCK_TIMEOUT_MS on the
   server, so only a server or network that stopped answering gets here) fails, and the
   connection is dropped: a daemon's reload or poll never hangs on a stuck store. */
#define ANSWER_TIMEOUT_MS (LOCK_TIMEOUT_MS + 10000)
#define MAX_PARAMS 32
/* Type OIDs of the results decoded here (pg_type.dat). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23

struct pg_stmt {
    struct dbt_stmt base;
    bool prepared;
    int nparams; /* the highest $n in the statement's text */
    char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS];
    int fmts[MAX_PARAMS];
    bool bind_failed;
    PGresult *res;
    int row;
    char num[4][24]; /* integer columns read as text (a few may be held at once) */
    int num_next;
};

struct pg_store {
    struct dbt_store base;
    PGconn *conn;
    char *conninfo; /* as given (may hold a password): for reopen only, never printed */
    int64_t changes;
    bool timed_out; /* the last statement got no answer in ANSWER_TIMEOUT_MS (connection dropped) */
    /* CREATE left its transaction (schema made, write lock held) open for the first write
       transaction to adopt, so that an init that fails leaves no half-made schema behind. */
    bool create_pending;
    struct pg_stmt stmts[DBT_SQL__COUNT];
};

static const struct store_ops pg_ops;

static struct pg_store *pg(struct dbt_store *st)
{
    return (struct pg_store *)st;
}

static struct pg_stmt *pstmt(struct dbt_stmt *s)
{
    return (struct pg_stmt *)s;
}

/* libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
   errors here are one line. */
const char *dbt_pg_one_line(const char *msg, char *buf, size_t n)
{
    size_t o = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && o + 1 < n; p++) {
        bool ws = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
        if (ws) {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < n) {
            buf[o++] = ' ';
        }
        space = false;
        buf[o++] = *p;
    }
    buf[o] = 0;
    return buf;
}

static bool sqlstate_is(const char *state, const char *prefix)
{
    return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* Turns a failed result (or NULL: out of memory / connection gone) into a dbt_res. */
static dbt_res pg_err(struct pg_store *st, const PGresult *r, const char *what)
{
    char buf[512];
    const char *label = st->base.label;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *msg =
        dbt_pg_one_line(primary ? primary : PQerrorMessage(st->conn), buf, sizeof buf);
    if (st->timed_out) {
        return dbt_fail(DBT_E_STORE, "%s: %s: no answer within %d s (connection closed)", label,
                        what, ANSWER_TIMEOUT_MS / 1000);
    }
    if (PQstatus(st->conn) == CONNECTION_BAD) {
        return dbt_fail(DBT_E_STORE, "%s: connection lost: %s", label, msg);
    }
    if (sqlstate_is(state, "23")) {
        return dbt_fail(DBT_E_EXISTS, "%s: %s: %s", label, what, msg);
    }
    if (sqlstate_is(state, "55P03") || sqlstate_is(state, "40")) {
        return dbt_fail(DBT_E_STORE, "%s is locked by another process (%s); try again", label, msg);
    }
    if (sqlstate_is(state, "25006")) {
        return dbt_fail(DBT_E_PERM, "%s is read-only: %s", label, msg);
    }
    return dbt_fail(DBT_E_STORE, "%s: %s: %s", label, what, msg);
}

/*
 * The result of the command just sent (PQsend*), as PQexec gives it (the last one), waiting at
 * most ANSWER_TIMEOUT_MS. NULL when sending failed, the connection broke, or no answer came in
 * time: then the connection is shut down (status BAD, made again by the next operation) and
 * timed_out says why.
 */
static PGresult *await_result(struct pg_store *st, int sent)
{
    st->timed_out = false;
    if (!sent) {
        return NULL;
    }
    PGresult *last = NULL;
    uint64_t deadline = dbt_now_ms() + ANSWER_TIMEOUT_MS;
    for (;;) {
        while (!PQisBusy(st->conn)) {
            PGresult *r = PQgetResult(st->conn);
            if (r == NULL) {
                return last;
            }
            PQclear(last);
            last = r;
        }
        uint64_t now = dbt_now_ms();
        struct pollfd p = {.fd = PQsocket(st->conn), .events = POLLIN};
        int n = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
        if (n == 0) {
            st->timed_out = true;
            shutdown(PQsocket(st->conn), SHUT_RDWR);
            (void)PQconsumeInput(st->conn); /* sees the shutdown: the connection is BAD now */
            PQclear(last);
            return NULL;
        }
        if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(st->conn))) {
            PQclear(last);
            return NULL;
        }
    }
}

/* PQexec, bounded by ANSWER_TIMEOUT_MS. */
static PGresult *run(struct pg_store *st, const char *sql)
{
    return await_result(st, PQsendQuery(st->conn, sql));
}

static dbt_res exec_sql(struct pg_store *st, const char *sql, const char *what)
{
    PGresult *r = run(st, sql);
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    dbt_res res = DBT_OK;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
        res = pg_err(st, r, what);
    }
    PQclear(r);
    return res;
}

/* One integer from a one-row query (text results: simple protocol). */
static dbt_res query_int(struct pg_store *st, const char *sql, int64_t *out)
{
    PGresult *r = run(st, sql);
    dbt_res res = DBT_OK;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        res = pg_err(st, r, sql);
    } else if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        res = dbt_fail(DBT_E_CORRUPT, "%s: \"%s\" returned no value", st->base.label, sql);
    } else {
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return res;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs (e.g. "there is no transaction in progress") are not news */
}

/* "host=H port=P dbname=D user=U": what names the store in messages, never the password. */
static dbt_res describe(const char *conninfo, char **out)
{
    char *err = NULL;
    char buf[512];
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        dbt_res r = dbt_fail(err ? DBT_E_INVALID : DBT_E_NOMEM,
                             "invalid PostgreSQL store connection string: %s",
                             err ? dbt_pg_one_line(err, buf, sizeof buf) : "out of memory");
        PQfreemem(err);
        return r;
    }
    static const char *const shown[] = {"service", "host", "hostaddr", "port", "dbname", "user"};
    char *acc = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&acc, &n);
    if (!f) {
        PQconninfoFree(opts);
        return dbt_fail(DBT_E_NOMEM, "store: out of memory");
    }
    for (size_t i = 0; i < DBT_ARRAY_LEN(shown); i++) {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (strcmp(o->keyword, shown[i]) == 0 && o->val && *o->val) {
                fprintf(f, "%s%s=%s", ftell(f) ? " " : "", o->keyword, o->val);
            }
        }
    }
    fclose(f);
    PQconninfoFree(opts);
    *out = acc;
    return DBT_OK;
}

static void forget_prepared(struct pg_store *st)
{
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        PQclear(st->stmts[i].res);
        st->stmts[i].res = NULL;
        st->stmts[i].prepared = false;
    }
}

static dbt_res pg_connect(struct pg_store *st)
{
    char buf[512];
    /* Keywords before dbname are defaults that the conninfo (expanded at dbname) overrides.
       tcp_user_timeout and keepalives: a store host that vanishes from the network (no RST)
       fails the statement in about 10 s instead of TCP's retransmission limit (~15 min), during
       which a daemon's reload or poll would hang. */
    const char *const keys[] = {"connect_timeout",  "application_name", "tcp_user_timeout",
                                "keepalives",       "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "dbname",           NULL};
    const char *const vals[] = {"10", "dbtls", "10000", "1", "30", "10", "3", st->conninfo, NULL};
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (!st->conn) {
        return dbt_fail(DBT_E_NOMEM, "store: out of memory");
    }
    if (PQstatus(st->conn) != CONNECTION_OK) {
        return dbt_fail(DBT_E_STORE, "cannot connect to %s: %s", st->base.label,
                        dbt_pg_one_line(PQerrorMessage(st->conn), buf, sizeof buf));
    }
    PQsetNoticeProcessor(st->conn, quiet, NULL);
    char sql[128];
    snprintf(sql, sizeof sql, "SET lock_timeout = %d; SET client_min_messages = warning",
             LOCK_TIMEOUT_MS);
    return exec_sql(st, sql, "session settings");
}

/* A connection lost between operations (server restart, idle timeout) is made again, so a
   long-lived daemon keeps working; inside a transaction the error is reported instead. */
static dbt_res pg_ensure_conn(struct pg_store *st)
{
    if (PQstatus(st->conn) == CONNECTION_OK) {
        return DBT_OK;
    }
    forget_prepared(st);
    PQreset(st->conn);
    if (PQstatus(st->conn) != CONNECTION_OK) {
        char buf[512];
        return dbt_fail(DBT_E_STORE, "cannot connect to %s: %s", st->base.label,
                        dbt_pg_one_line(PQerrorMessage(st->conn), buf, sizeof buf));
    }
    char sql[64];
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", LOCK_TIMEOUT_MS);
    return exec_sql(st, sql, "session settings");
}

#define LOCK_SQL "SELECT pg_advisory_xact_lock(%d)"

/*
 * Creates the schema (create) or brings it to the current version, under the write lock so
 * that two nodes starting at once do not both migrate. A creation is not committed here: the
 * first write transaction on the handle continues it (create_pending).
 */
static dbt_res migrate(struct pg_store *st, bool create)
{
    dbt_res res = DBT_OK;
    char sql[128];
    int target = dbt_pg_schema_version();
    snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL READ COMMITTED; " LOCK_SQL,
             DBT_STORE_APPLICATION_ID);
    DBT_TRY(exec_sql(st, sql, "begin migration"));
    int64_t exists = 0, v = 0;
    DBT_TRY(query_int(st,
                      "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = "
                      "'dbtls_schema' AND schemaname = ANY (current_schemas(false))",
                      &exists));
    if (create) {
        if (exists) {
            DBT_TRY(query_int(st, "SELECT version FROM dbtls_schema", &v));
            DBT_BAIL(EXISTS, "%s already holds a dbtls store (schema version %lld)", st->base.label,
                     (long long)v);
        }
        DBT_TRY(exec_sql(st,
                         "CREATE TABLE dbtls_schema (id INTEGER PRIMARY KEY CHECK (id = 1),"
                         " version INTEGER NOT NULL); INSERT INTO dbtls_schema VALUES (1, 0)",
                         "schema version table"));
    } else {
        DBT_ENSURE(exists, NOT_FOUND, "%s has no dbtls store; run `dbtls init --store` first",
                   st->base.label);
        DBT_TRY(query_int(st, "SELECT version FROM dbtls_schema", &v));
    }
    for (int i = (int)v + 1; i <= target; i++) {
        DBT_TRY(exec_sql(st, dbt_pg_sql_migration(i), "schema migration"));
    }
    snprintf(sql, sizeof sql, "UPDATE dbtls_schema SET version = %d", target);
    DBT_TRY(exec_sql(st, sql, "schema version"));
    if (create) {
        st->create_pending = true;
    } else {
        DBT_TRY(exec_sql(st, "COMMIT", "commit migration"));
    }
out:
    if (!dbt_ok(res)) {
        PQclear(run(st, "ROLLBACK"));
    }
    return res;
}

static dbt_res check_version(struct pg_store *st, enum dbt_store_mode mode)
{
    dbt_res res = DBT_OK;
    int64_t exists = 0, v = 0;
    int target = dbt_pg_schema_version();
    DBT_TRY(query_int(st,
                      "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = "
                      "'dbtls_schema' AND schemaname = ANY (current_schemas(false))",
                      &exists));
    DBT_ENSURE(exists, NOT_FOUND, "%s has no dbtls store; run `dbtls init --store` first",
               st->base.label);
    DBT_TRY(query_int(st, "SELECT version FROM dbtls_schema", &v));
    DBT_ENSURE(v <= target, CORRUPT,
               "%s has schema version %lld, newer than this dbtls (%d); upgrade dbtls",
               st->base.label, (long long)v, target);
    if (v < target) {
        DBT_ENSURE(mode != DBT_STORE_RO, STATE,
                   "%s has schema version %lld; run a dbtls command that writes (e.g. `dbtls "
                   "instances list`) to migrate it to %d",
                   st->base.label, (long long)v, target);
        DBT_TRY(migrate(st, false));
    }
out:
    return res;
}

static void pg_close(struct dbt_store *base)
{
    struct pg_store *st = pg(base);
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        PQclear(st->stmts[i].res);
        for (int j = 0; j < MAX_PARAMS; j++) {
            free(st->stmts[i].vals[j]);
        }
    }
    PQfinish(st->conn); /* an open transaction dies with the session: rolled back */
    if (st->conninfo) {
        memset(st->conninfo, 0, strlen(st->conninfo));
    }
    free(st->conninfo);
    free(base->path);
    free(base->label);
    free(st);
}

dbt_res dbt_store_open_pg(const char *conninfo, enum dbt_store_mode mode, struct dbt_store **out)
{
    dbt_res res = DBT_OK;
    struct pg_store *st = NULL;
    *out = NULL;
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        if (!dbt_pg_sql_text((enum dbt_sql)i)) {
            return dbt_fail(DBT_E_INTERNAL, "store: statement %d has no PostgreSQL text", i);
        }
    }
    st = calloc(1, sizeof *st);
    DBT_ENSURE(st, NOMEM, "store: out of memory");
    st->base.ops = &pg_ops;
    st->base.read_only = mode == DBT_STORE_RO;
    DBT_TRY(describe(conninfo, &st->base.path));
    DBT_ENSURE(asprintf(&st->base.label, "PostgreSQL store \"%s\"", st->base.path) >= 0, NOMEM,
               "store: out of memory");
    st->conninfo = strdup(conninfo);
    DBT_ENSURE(st->conninfo, NOMEM, "store: out of memory");
    DBT_TRY(pg_connect(st));
    if (mode == DBT_STORE_CREATE) {
        DBT_TRY(migrate(st, true));
    } else {
        DBT_TRY(check_version(st, mode));
    }
    if (st->base.read_only) {
        DBT_TRY(exec_sql(st, "SET default_transaction_read_only = on", "read-only session"));
    }
    *out = &st->base;
    st = NULL;
out:
    if (st) {
        pg_close(&st->base);
    }
    return res;
}

static dbt_res pg_reopen(const struct dbt_store *st, enum dbt_store_mode mode,
                         struct dbt_store **out)
{
    return dbt_store_open_pg(((const struct pg_store *)st)->conninfo, mode, out);
}

static dbt_res pg_watch(const struct dbt_store *st, struct dbt_store_watch **out)
{
    return dbt_pg_watch_open(((const struct pg_store *)st)->conninfo, st->label, out);
}

static void pg_set_busy_timeout(struct dbt_store *st, int ms)
{
    char sql[64];
    /* lock_timeout = 0 would mean "wait forever"; the API's 0 means "fail at once". */
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", ms > 0 ? ms : 1);
    PQclear(run(pg(st), sql));
}

static void reset_all(struct pg_store *st)
{
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        PQclear(st->stmts[i].res);
        st->stmts[i].res = NULL;
    }
}

static dbt_res pg_begin(struct dbt_store *base, bool write)
{
    struct pg_store *st = pg(base);
    if (st->create_pending) {
        st->create_pending = false; /* already in the creating write transaction */
        return DBT_OK;
    }
    dbt_res res = pg_ensure_conn(st);
    if (!dbt_ok(res)) {
        return res;
    }
    char sql[128];
    if (write) {
        snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL READ COMMITTED; " LOCK_SQL,
                 DBT_STORE_APPLICATION_ID);
    } else {
        snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    }
    res = exec_sql(st, sql, "begin");
    if (!dbt_ok(res)) {
        PQclear(run(st, "ROLLBACK"));
    }
    return res;
}

static dbt_res pg_commit(struct dbt_store *base)
{
    struct pg_store *st = pg(base);
    reset_all(st);
    PGresult *r = run(st, "COMMIT");
    dbt_res res = DBT_OK;
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        res = pg_err(st, r, "commit");
    } else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
        res = dbt_fail(DBT_E_STORE, "%s: commit: the transaction was rolled back", base->label);
    }
    PQclear(r);
    return res;
}

static void pg_rollback(struct dbt_store *base)
{
    reset_all(pg(base));
    PQclear(run(pg(base), "ROLLBACK"));
}

static void clear_params(struct pg_stmt *s)
{
    for (int j = 0; j < MAX_PARAMS; j++) {
        free(s->vals[j]);
        s->vals[j] = NULL;
        s->lens[j] = 0;
        s->fmts[j] = 0;
    }
    s->bind_failed = false;
}

/* The highest $n in sql: how many parameters the statement takes. */
static int count_params(const char *sql)
{
    int max = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
            int n = (int)strtol(p + 1, NULL, 10);
            max = n > max ? n : max;
        }
    }
    return max;
}

static dbt_res pg_stmt_get(struct dbt_store *base, enum dbt_sql id, struct dbt_stmt **out)
{
    struct pg_store *st = pg(base);
    struct pg_stmt *s = &st->stmts[id];
    if (!base->in_txn) {
        dbt_res r = pg_ensure_conn(st);
        if (!dbt_ok(r)) {
            return r;
        }
    }
    PQclear(s->res);
    s->res = NULL;
    clear_params(s);
    if (!s->prepared) {
        char name[32];
        snprintf(name, sizeof name, "dbt_%d", (int)id);
        PGresult *r = await_result(st, PQsendPrepare(st->conn, name, dbt_pg_sql_text(id), 0, NULL));
        dbt_res res = DBT_OK;
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            res = pg_err(st, r, "prepare");
        }
        PQclear(r);
        if (!dbt_ok(res)) {
            return res;
        }
        s->prepared = true;
        s->nparams = count_params(dbt_pg_sql_text(id));
        s->base.st = base;
        s->base.id = id;
    }
    *out = &s->base;
    return DBT_OK;
}

static void set_param(struct dbt_stmt *base, int idx, const void *p, size_t n, int fmt)
{
    struct pg_stmt *s = pstmt(base);
    if (idx < 1 || idx > MAX_PARAMS || n > (size_t)INT32_MAX) {
        s->bind_failed = true;
        return;
    }
    free(s->vals[idx - 1]);
    s->vals[idx - 1] = NULL;
    if (p) {
        s->vals[idx - 1] = malloc(n + 1);
        if (!s->vals[idx - 1]) {
            s->bind_failed = true;
            return;
        }
        memcpy(s->vals[idx - 1], p, n);
        s->vals[idx - 1][n] = 0;
    }
    s->lens[idx - 1] = (int)n;
    s->fmts[idx - 1] = fmt;
}

static void pg_bind_text(struct dbt_stmt *s, int idx, const char *v)
{
    set_param(s, idx, v, v ? strlen(v) : 0, 0);
}

static void pg_bind_int(struct dbt_stmt *s, int idx, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    set_param(s, idx, buf, (size_t)n, 0);
}

static void pg_bind_blob(struct dbt_stmt *s, int idx, const void *p, size_t n)
{
    set_param(s, idx, p ? p : "", n, 1); /* a zero-length blob is not NULL, as in SQLite */
}

static dbt_res pg_step(struct dbt_stmt *base, bool *row)
{
    struct pg_stmt *s = pstmt(base);
    struct pg_store *st = pg(base->st);
    if (s->bind_failed) {
        return dbt_fail(DBT_E_STORE, "%s: bind: a parameter could not be stored", st->base.label);
    }
    if (!s->res) {
        char name[32];
        snprintf(name, sizeof name, "dbt_%d", (int)base->id);
        PGresult *r = await_result(st, PQsendQueryPrepared(st->conn, name, s->nparams,
                                                           (const char *const *)s->vals, s->lens,
                                                           s->fmts, 1));
        ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (t != PGRES_TUPLES_OK && t != PGRES_COMMAND_OK) {
            dbt_res res = pg_err(st, r, "statement");
            PQclear(r);
            return res;
        }
        const char *tuples = PQcmdTuples(r);
        st->changes = *tuples ? strtoll(tuples, NULL, 10) : 0;
        s->res = r;
        s->row = -1;
    }
    s->row++;
    bool have = s->row < PQntuples(s->res);
    if (row) {
        *row = have;
    }
    return DBT_OK;
}

static void pg_reset(struct dbt_stmt *s)
{
    PQclear(pstmt(s)->res);
    pstmt(s)->res = NULL;
}

static int64_t pg_changes(struct dbt_store *st)
{
    return pg(st)->changes;
}

static bool pg_is_null(struct dbt_stmt *base, int col)
{
    struct pg_stmt *s = pstmt(base);
    if (!s->res || s->row < 0 || s->row >= PQntuples(s->res) || col >= PQnfields(s->res)) {
        return true;
    }
    return PQgetisnull(s->res, s->row, col);
}

static int64_t pg_int(struct dbt_stmt *base, int col)
{
    struct pg_stmt *s = pstmt(base);
    if (pg_is_null(base, col)) {
        return 0;
    }
    const unsigned char *v = (const unsigned char *)PQgetvalue(s->res, s->row, col);
    int len = PQgetlength(s->res, s->row, col);
    switch (PQftype(s->res, col)) {
    case OID_INT8:
        if (len == 8) {
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) {
                u = u << 8 | v[i];
            }
            return (int64_t)u;
        }
        return 0;
    case OID_INT4:
        return len == 4 ? (int32_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
                                    (uint32_t)v[2] << 8 | v[3])
                        : 0;
    case OID_INT2:
        return len == 2 ? (int16_t)((uint16_t)(v[0] << 8 | v[1])) : 0;
    case OID_BOOL:
        return len == 1 ? v[0] != 0 : 0;
    default:
        return strtoll((const char *)v, NULL, 10); /* text holding a number, as SQLite */
    }
}

static const char *pg_text(struct dbt_stmt *base, int col)
{
    struct pg_stmt *s = pstmt(base);
    if (pg_is_null(base, col)) {
        return NULL;
    }
    switch (PQftype(s->res, col)) {
    case OID_INT8:
    case OID_INT4:
    case OID_INT2:
    case OID_BOOL: {
        char *buf = s->num[s->num_next++ % 4];
        snprintf(buf, sizeof s->num[0], "%lld", (long long)pg_int(base, col));
        return buf;
    }
    default:
        return PQgetvalue(s->res, s->row, col); /* binary text = its bytes, NUL-terminated */
    }
}

static const void *pg_blob(struct dbt_stmt *base, int col, size_t *len)
{
    struct pg_stmt *s = pstmt(base);
    *len = 0;
    if (pg_is_null(base, col)) {
        return NULL;
    }
    *len = (size_t)PQgetlength(s->res, s->row, col);
    return PQgetvalue(s->res, s->row, col);
}

static const struct store_ops pg_ops = {
    .close = pg_close,
    .set_busy_timeout = pg_set_busy_timeout,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .stmt = pg_stmt_get,
    .bind_text = pg_bind_text,
    .bind_int = pg_bind_int,
    .bind_blob = pg_bind_blob,
    .step = pg_step,
    .reset = pg_reset,
    .changes = pg_changes,
    .text = pg_text,
    .int64 = pg_int,
    .blob = pg_blob,
    .is_null = pg_is_null,
    .reopen = pg_reopen,
    .watch_open = pg_watch,
};
