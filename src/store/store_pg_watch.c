/*
 * store_pg_watch.c - change notifications from a PostgreSQL store (store.h, "Change
 * notifications"): a connection of its own that runs LISTEN on DBT_STORE_CHANNEL and is then
 * only read, never queried, so that a daemon can wait for its descriptor in an event loop. Every
 * write transaction's counter bump NOTIFYs the channel at commit (sql_pg.c). A lost connection
 * (server restart, network) is reported once by read; the caller falls back to polling the
 * counter and opens a new watch later. TCP keepalives make a dead peer show within a minute.
 */
#include "store/store_impl.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

struct dbt_store_watch {
    PGconn *conn;
    char *label;
};

static dbt_res lost(struct dbt_store_watch *w, const char *what)
{
    char buf[512];
    return dbt_fail(DBT_E_STORE, "%s: %s: %s", w->label, what,
                    dbt_pg_one_line(PQerrorMessage(w->conn), buf, sizeof buf));
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

dbt_res dbt_pg_watch_open(const char *conninfo, const char *label, struct dbt_store_watch **out)
{
    dbt_res res = DBT_OK;
    PGresult *r = NULL;
    *out = NULL;
    struct dbt_store_watch *w = calloc(1, sizeof *w);
    DBT_ENSURE(w && (w->label = strdup(label)), NOMEM, "store: out of memory");
    /* Keywords before dbname are defaults that the conninfo (expanded at dbname) overrides. */
    const char *const keys[] = {"connect_timeout",  "application_name", "tcp_user_timeout",
                                "keepalives",       "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "dbname",           NULL};
    const char *const vals[] = {"10", "dbtls watch", "10000", "1", "30", "10", "3", conninfo, NULL};
    w->conn = PQconnectdbParams(keys, vals, 1);
    DBT_ENSURE(w->conn, NOMEM, "store: out of memory");
    if (PQstatus(w->conn) != CONNECTION_OK) {
        res = lost(w, "cannot connect to listen for changes");
        goto out;
    }
    PQsetNoticeProcessor(w->conn, quiet, NULL);
    r = PQexec(w->conn, "LISTEN " DBT_STORE_CHANNEL);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        res = lost(w, "LISTEN " DBT_STORE_CHANNEL);
        goto out;
    }
    /* From here on only read when the descriptor is readable: never block the caller's loop. */
    DBT_ENSURE(PQsetnonblocking(w->conn, 1) == 0, STORE, "%s: cannot make the watch non-blocking",
               label);
    *out = w;
    w = NULL;
out:
    PQclear(r);
    dbt_store_watch_close(w);
    return res;
}

int dbt_store_watch_fd(const struct dbt_store_watch *w)
{
    return PQsocket(w->conn);
}

dbt_res dbt_store_watch_read(struct dbt_store_watch *w, bool *changed)
{
    *changed = false;
    if (!PQconsumeInput(w->conn) || PQstatus(w->conn) != CONNECTION_OK) {
        return lost(w, "change notifications lost");
    }
    PGnotify *n;
    while ((n = PQnotifies(w->conn)) != NULL) {
        if (strcmp(n->relname, DBT_STORE_CHANNEL) == 0) {
            *changed = true;
        }
        PQfreemem(n);
    }
    return DBT_OK;
}

void dbt_store_watch_close(struct dbt_store_watch *w)
{
    if (w) {
        PQfinish(w->conn);
        free(w->label);
        free(w);
    }
}
