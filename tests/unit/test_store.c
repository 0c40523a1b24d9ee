/*
 * test_store.c - the SQLite store: create/open modes, the CORRUPT errors for foreign or damaged
 * files, schema version and application id, transactions (rollback leaves nothing), the change
 * counter, statement binding and uniqueness errors, read-only handles; and what of the
 * PostgreSQL store needs no server: its SQL text against SQLite's, store.conf, its errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "store/store.h"
#include "check.h"

static char dir[] = "/tmp/dbtls-test-store-XXXXXX";

static char *path_in(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int64_t count(struct dbt_store *st, enum dbt_sql id)
{
    struct dbt_stmt *s = NULL;
    bool row = false;
    if (!dbt_ok(dbt_store_stmt(st, id, &s))) {
        return -1;
    }
    if (!dbt_ok(dbt_stmt_step(s, &row)) || !row) {
        return -1;
    }
    int64_t n = dbt_stmt_int(s, 0);
    if (!dbt_ok(dbt_stmt_exec(s))) {
        return -1;
    }
    return n;
}

static void test_create_and_open(void)
{
    struct dbt_store *st = NULL;
    const char *p = path_in("a.db");
    CHECK_ERR(dbt_store_open(p, DBT_STORE_RW, &st), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "dbtls init") != NULL);
    CHECK_OK(dbt_store_open(p, DBT_STORE_CREATE, &st));
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 077) == 0);
    uint64_t c = 99;
    CHECK_OK(dbt_store_counter(st, &c));
    CHECK(c == 0);
    CHECK(count(st, DBT_SQL_INSTANCE_COUNT) == 0);
    dbt_store_close(st);

    struct dbt_store *again = NULL;
    CHECK_ERR(dbt_store_open(p, DBT_STORE_CREATE, &again), DBT_E_EXISTS);
    CHECK_OK(dbt_store_open(p, DBT_STORE_RW, &st));
    dbt_store_close(st);
    CHECK_OK(dbt_store_open(p, DBT_STORE_RO, &st));
    CHECK_ERR(dbt_store_begin(st, true), DBT_E_PERM);
    CHECK_OK(dbt_store_counter(st, &c));
    dbt_store_close(st);
}

static void test_transactions_and_counter(void)
{
    struct dbt_store *st = NULL;
    struct dbt_stmt *s = NULL;
    CHECK_OK(dbt_store_open(path_in("a.db"), DBT_STORE_RW, &st));
    uint64_t before = 0, after = 0;
    CHECK_OK(dbt_store_counter(st, &before));

    /* A rolled-back change leaves neither the row nor a counter bump. */
    CHECK_OK(dbt_store_begin(st, true));
    CHECK_ERR(dbt_store_begin(st, true), DBT_E_INTERNAL);
    CHECK_OK(dbt_store_stmt(st, DBT_SQL_EVENT_ADD, &s));
    dbt_stmt_bind_int(s, 1, 1);
    dbt_stmt_bind_text(s, 2, "t");
    dbt_stmt_bind_text(s, 3, "x");
    dbt_stmt_bind_text(s, 4, "o");
    dbt_stmt_bind_text(s, 5, "");
    CHECK_OK(dbt_stmt_exec(s));
    CHECK_OK(dbt_store_bump(st));
    CHECK(count(st, DBT_SQL_EVENT_COUNT) == 1);
    dbt_store_rollback(st);
    CHECK(!dbt_store_in_txn(st));
    CHECK(count(st, DBT_SQL_EVENT_COUNT) == 0);
    CHECK_OK(dbt_store_counter(st, &after));
    CHECK(after == before);

    /* A committed change bumps it. */
    CHECK_OK(dbt_store_begin(st, true));
    CHECK_OK(dbt_store_stmt(st, DBT_SQL_SETTING_PUT, &s));
    dbt_stmt_bind_text(s, 1, "k");
    dbt_stmt_bind_text(s, 2, "v1");
    CHECK_OK(dbt_stmt_exec(s));
    CHECK_OK(dbt_store_bump(st));
    CHECK_OK(dbt_store_commit(st));
    CHECK_OK(dbt_store_counter(st, &after));
    CHECK(after == before + 1);
    CHECK_ERR(dbt_store_commit(st), DBT_E_INTERNAL);

    /* Upsert, then read back. */
    CHECK_OK(dbt_store_begin(st, true));
    CHECK_OK(dbt_store_stmt(st, DBT_SQL_SETTING_PUT, &s));
    dbt_stmt_bind_text(s, 1, "k");
    dbt_stmt_bind_text(s, 2, "v2");
    CHECK_OK(dbt_stmt_exec(s));
    CHECK_OK(dbt_store_commit(st));
    bool row = false;
    CHECK_OK(dbt_store_stmt(st, DBT_SQL_SETTING_GET, &s));
    dbt_stmt_bind_text(s, 1, "k");
    CHECK_OK(dbt_stmt_step(s, &row));
    CHECK(row && strcmp(dbt_stmt_text(s, 0), "v2") == 0);
    char *dup = NULL;
    CHECK_OK(dbt_stmt_dup(s, 0, &dup));
    CHECK(dup && strcmp(dup, "v2") == 0);
    free(dup);
    CHECK_OK(dbt_stmt_exec(s));

    /* A uniqueness violation is EXISTS, and the failed statement changes nothing. */
    CHECK_OK(dbt_store_begin(st, true));
    for (int i = 0; i < 2; i++) {
        CHECK_OK(dbt_store_stmt(st, DBT_SQL_CA_ADD, &s));
        dbt_stmt_bind_text(s, 1, "dbtls-ca-x");
        dbt_stmt_bind_text(s, 2, "");
        dbt_stmt_bind_text(s, 3, "ec384");
        dbt_stmt_bind_text(s, 4, "sha384");
        dbt_stmt_bind_text(s, 5, "pem");
        dbt_stmt_bind_blob(s, 6, "k", 1);
        dbt_stmt_bind_int(s, 7, 0);
        if (i == 0) {
            CHECK_OK(dbt_stmt_exec(s));
        } else {
            CHECK_ERR(dbt_stmt_exec(s), DBT_E_EXISTS);
        }
    }
    CHECK(count(st, DBT_SQL_CA_COUNT) == 1);
    dbt_store_rollback(st);
    CHECK(count(st, DBT_SQL_CA_COUNT) == 0);

    /* Foreign keys are enforced: a slot for a missing instance is refused. */
    CHECK_OK(dbt_store_begin(st, true));
    CHECK_OK(dbt_store_stmt(st, DBT_SQL_SLOT_PUT, &s));
    dbt_stmt_bind_int(s, 1, 12345);
    dbt_stmt_bind_text(s, 2, "active");
    dbt_stmt_bind_text(s, 3, "ca");
    dbt_stmt_bind_blob(s, 4, "k", 1);
    dbt_stmt_bind_text(s, 5, NULL);
    dbt_stmt_bind_text(s, 6, NULL);
    dbt_stmt_bind_text(s, 7, "cert");
    dbt_stmt_bind_blob(s, 8, "k", 1);
    dbt_stmt_bind_int(s, 9, 0);
    CHECK(!dbt_ok(dbt_stmt_exec(s)));
    dbt_store_rollback(st);
    CHECK(count(st, DBT_SQL_SLOT_COUNT) == 0);
    dbt_store_close(st);
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_corrupt_files(void)
{
    struct dbt_store *st = NULL;
    /* Not an SQLite file at all. */
    const char *junk = path_in("junk.db");
    char text[4096];
    memset(text, 'x', sizeof text);
    write_file(junk, text, sizeof text);
    CHECK_ERR(dbt_store_open(junk, DBT_STORE_RW, &st), DBT_E_CORRUPT);
    CHECK(strstr(dbt_errmsg(), junk) != NULL);
    CHECK(st == NULL);

    /* An empty file is a valid empty SQLite database, but not a dbtls store. */
    const char *empty = path_in("empty.db");
    write_file(empty, "", 0);
    CHECK_ERR(dbt_store_open(empty, DBT_STORE_RW, &st), DBT_E_CORRUPT);
    CHECK(strstr(dbt_errmsg(), "not written by dbtls") != NULL);

    /* A directory. */
    CHECK_ERR(dbt_store_open(dir, DBT_STORE_RW, &st), DBT_E_CORRUPT);

    /* A real store whose header is then overwritten. */
    const char *p = path_in("b.db");
    CHECK_OK(dbt_store_open(p, DBT_STORE_CREATE, &st));
    dbt_store_close(st);
    st = NULL;
    FILE *f = fopen(p, "r+b");
    CHECK(f != NULL);
    if (f) {
        fwrite("garbage garbage!", 1, 16, f);
        fclose(f);
    }
    CHECK_ERR(dbt_store_open(p, DBT_STORE_RW, &st), DBT_E_CORRUPT);
    CHECK(strstr(dbt_errmsg(), p) != NULL);
}

static void test_schema(void)
{
    CHECK(dbt_store_schema_version() >= 1);
    CHECK(dbt_sql_migration(0) == NULL);
    CHECK(dbt_sql_migration(1) != NULL);
    CHECK(dbt_sql_migration(dbt_store_schema_version() + 1) == NULL);
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        CHECK(dbt_sql_text((enum dbt_sql)i) != NULL);
    }
    CHECK(dbt_sql_text(DBT_SQL__COUNT) == NULL);
}

/* The highest ?N (SQLite) or $N (PostgreSQL) in sql. */
static int max_param(const char *sql, char mark)
{
    int max = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == mark && p[1] >= '0' && p[1] <= '9') {
            int n = atoi(p + 1);
            max = n > max ? n : max;
        }
    }
    return max;
}

/* The PostgreSQL text of every statement takes the same parameters as the SQLite text (ctl
   binds the same indexes on either store) and no SQLite-only syntax slipped in. */
static void test_pg_schema(void)
{
    CHECK(dbt_pg_schema_version() >= 1);
    CHECK(dbt_pg_sql_migration(0) == NULL);
    CHECK(dbt_pg_sql_migration(1) != NULL);
    CHECK(dbt_pg_sql_migration(dbt_pg_schema_version() + 1) == NULL);
    CHECK(dbt_pg_sql_text(DBT_SQL__COUNT) == NULL);
    for (int i = 0; i < DBT_SQL__COUNT; i++) {
        const char *lite = dbt_sql_text((enum dbt_sql)i), *pg = dbt_pg_sql_text((enum dbt_sql)i);
        CHECK(pg != NULL);
        if (!pg) {
            continue;
        }
        if (max_param(lite, '?') != max_param(pg, '$')) {
            fprintf(stderr, "statement %d: %d parameters in SQLite, %d in PostgreSQL\n", i,
                    max_param(lite, '?'), max_param(pg, '$'));
            CHECK(false);
        }
        CHECK(strchr(pg, '?') == NULL);
        CHECK(strstr(pg, "OR REPLACE") == NULL && strstr(pg, "OR IGNORE") == NULL);
    }
    for (int i = 1; i <= dbt_pg_schema_version(); i++) {
        CHECK(strstr(dbt_pg_sql_migration(i), "BLOB") == NULL);
        CHECK(strstr(dbt_pg_sql_migration(i), "AUTOINCREMENT") == NULL);
    }
}

/* store.conf: written 0600, read back, refused when others may read it or when it does not
   parse; the PostgreSQL store's errors never show the password. */
static void test_store_conf_and_pg_errors(void)
{
    const char *conf = path_in("store.conf");
    const char *ci = "host=127.0.0.1 port=1 dbname=d user=u password=pw-XYZZY connect_timeout=5";
    char *got = NULL;
    CHECK_ERR(dbt_store_conf_read(conf, &got), DBT_E_NOT_FOUND);
    CHECK_ERR(dbt_store_conf_write(conf, "host=x port"), DBT_E_INVALID);
    CHECK_ERR(dbt_store_conf_write(conf, "host=x\nport=1"), DBT_E_INVALID);
    CHECK(access(conf, F_OK) != 0);
    CHECK_OK(dbt_store_conf_write(conf, ci));
    CHECK_ERR(dbt_store_conf_write(conf, ci), DBT_E_EXISTS);
    struct stat sb;
    CHECK(stat(conf, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_OK(dbt_store_conf_read(conf, &got));
    CHECK(got && strcmp(got, ci) == 0);
    free(got);
    got = NULL;
    CHECK(chmod(conf, 0640) == 0);
    CHECK_ERR(dbt_store_conf_read(conf, &got), DBT_E_PERM);
    CHECK(got == NULL);

    struct dbt_store *st = NULL;
    CHECK_ERR(dbt_store_open_pg("host=127.0.0.1 port", DBT_STORE_RW, &st), DBT_E_INVALID);
    CHECK_ERR(dbt_store_open_pg(ci, DBT_STORE_RW, &st), DBT_E_STORE);
    CHECK(st == NULL);
    CHECK(strstr(dbt_errmsg(), "PostgreSQL store \"host=127.0.0.1 port=1 dbname=d user=u\"") !=
          NULL);
    CHECK(strstr(dbt_errmsg(), "XYZZY") == NULL);
    CHECK(strchr(dbt_errmsg(), '\n') == NULL);
    CHECK_ERR(dbt_store_open_pg("postgresql://u:pw-XYZZY@127.0.0.1:1/d", DBT_STORE_CREATE, &st),
              DBT_E_STORE);
    CHECK(strstr(dbt_errmsg(), "XYZZY") == NULL);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_schema();
    test_create_and_open();
    test_transactions_and_counter();
    test_corrupt_files();
    test_pg_schema();
    test_store_conf_and_pg_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_exit();
}
