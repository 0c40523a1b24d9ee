/*
 * test_store.c - the SQLite store: create/open modes, the CORRUPT errors for foreign or damaged
 * files, schema version and application id, transactions (rollback leaves nothing), the change
 * counter, statement binding and uniqueness errors, read-only handles.
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
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return check_exit();
}
