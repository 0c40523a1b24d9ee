/*
 * open.c - opening the control plane: state directory, master key (file with PostgreSQL-like
 * permission check, or --master-key-command), the store (state-dir/dbtls.db, or the PostgreSQL
 * database state-dir/store.conf names); `dbtls init`; and the helpers every operation shares
 * (events, commit with the change counter, fault injection, strings).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "ctl/internal.h"

#define STORE_FILE CTL_STORE_FILE
#define STORE_CONF CTL_STORE_CONF

/* ---- strings ---------------------------------------------------------------------------- */

char *ctl_strdup(const char *s)
{
    if (!s) {
        return NULL;
    }
    char *d = strdup(s);
    if (!d) {
        abort(); /* tiny strings: running out of memory here is not recoverable */
    }
    return d;
}

char *ctl_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        abort();
    }
    return s;
}

dbt_res ctl_append(char **acc, const char *s)
{
    size_t a = *acc ? strlen(*acc) : 0, b = strlen(s);
    char *p = realloc(*acc, a + b + 1);
    if (!p) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    memcpy(p + a, s, b + 1);
    *acc = p;
    return DBT_OK;
}

dbt_res ctl_strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    *v = nv;
    (*v)[(*n)++] = ctl_strdup(s);
    return DBT_OK;
}

void ctl_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

dbt_res ctl_split(const char *s, char ***out, size_t *n)
{
    dbt_res res = DBT_OK;
    char **v = NULL;
    size_t cnt = 0;
    const char *p = s;
    *out = NULL;
    *n = 0;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++, len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        DBT_ENSURE(len > 0, INVALID, "empty item in list \"%s\"", s);
        char **nv = realloc(v, (cnt + 1) * sizeof *v);
        DBT_ENSURE(nv, NOMEM, "out of memory");
        v = nv;
        v[cnt] = strndup(p, len);
        DBT_ENSURE(v[cnt], NOMEM, "out of memory");
        cnt++;
        if (!e) {
            break;
        }
        p = e + 1;
    }
    *out = v;
    *n = cnt;
    v = NULL;
out:
    if (v) {
        ctl_strv_free(v, cnt);
    }
    return res;
}

/* ---- events, commit, faults ------------------------------------------------------------- */

dbt_res ctl_event(struct dbt_ctl *ctl, const char *action, const char *object, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_EVENT_ADD, &s);
    if (!dbt_ok(r)) {
        return r;
    }
    dbt_stmt_bind_int(s, 1, dbt_now_unix());
    dbt_stmt_bind_text(s, 2, ctl->actor);
    dbt_stmt_bind_text(s, 3, action);
    dbt_stmt_bind_text(s, 4, object);
    dbt_stmt_bind_text(s, 5, detail);
    return dbt_stmt_exec(s);
}

dbt_res ctl_commit(struct dbt_ctl *ctl)
{
    dbt_res r = dbt_store_bump(ctl->st);
    if (!dbt_ok(r)) {
        return r;
    }
    return dbt_store_commit(ctl->st);
}

void ctl_fault(const char *point)
{
    const char *f = getenv("DBTLS_FAULT");
    if (f && strcmp(f, point) == 0) {
        fprintf(stderr, "dbtls: DBTLS_FAULT=%s: aborting inside the transaction\n", point);
        abort();
    }
}

/* ---- open / close ------------------------------------------------------------------------ */

dbt_res ctl_new(const struct dbt_ctl_opts *opts, struct dbt_ctl **out)
{
    if (!opts || !opts->state_dir || !*opts->state_dir) {
        return dbt_fail(DBT_E_INVALID, "no state directory given");
    }
    struct dbt_ctl *ctl = calloc(1, sizeof *ctl);
    if (!ctl) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    ctl->state_dir = ctl_strdup(opts->state_dir);
    const char *actor = opts->actor;
    if (!actor || !*actor) {
        actor = getenv("USER");
    }
    ctl->actor = ctl_strdup(actor && *actor ? actor : "dbtls");
    ctl->read_only = opts->read_only != 0;
    if (opts->master_key_command && *opts->master_key_command) {
        ctl->master_key_command = ctl_strdup(opts->master_key_command);
    }
    *out = ctl;
    return DBT_OK;
}

/* The PostgreSQL conninfo in state-dir/store.conf into *conninfo, or NULL when the state
   directory has no store.conf (its store is dbtls.db). */
static dbt_res store_conninfo(const char *state_dir, char **conninfo)
{
    char *conf = ctl_printf("%s/%s", state_dir, STORE_CONF);
    dbt_res r = dbt_store_conf_read(conf, conninfo);
    if (r.code == DBT_E_NOT_FOUND) {
        r = DBT_OK;
    }
    free(conf);
    return r;
}

static void free_conninfo(char *conninfo)
{
    if (conninfo) {
        memset(conninfo, 0, strlen(conninfo)); /* it may hold a password */
        free(conninfo);
    }
}

dbt_res dbt_ctl_open(const struct dbt_ctl_opts *opts, struct dbt_ctl **out)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    char *path = NULL, *conninfo = NULL;
    *out = NULL;
    DBT_TRY(ctl_new(opts, &ctl));
    path = ctl_printf("%s/%s", opts->state_dir, STORE_FILE);
    struct stat sb;
    if (stat(opts->state_dir, &sb) != 0) {
        DBT_BAIL(NOT_FOUND, "state directory \"%s\" does not exist; run `dbtls init` first",
                 opts->state_dir);
    }
    enum dbt_store_mode mode = ctl->read_only ? DBT_STORE_RO : DBT_STORE_RW;
    DBT_TRY(store_conninfo(opts->state_dir, &conninfo));
    if (conninfo) {
        DBT_TRY(dbt_store_open_pg(conninfo, mode, &ctl->st));
    } else {
        DBT_TRY(dbt_store_open(path, mode, &ctl->st));
    }
    DBT_TRY(ctl_master_load(opts->state_dir, opts->master_key_command, ctl->master));
    DBT_TRY(ctl_master_recover(ctl));
    *out = ctl;
    ctl = NULL;
out:
    free(path);
    free_conninfo(conninfo);
    dbt_ctl_close(ctl);
    return res;
}

void dbt_ctl_close(struct dbt_ctl *ctl)
{
    if (!ctl) {
        return;
    }
    dbt_store_watch_close(ctl->watch);
    dbt_store_close(ctl->st);
    dbt_pki_wipe(ctl->master, sizeof ctl->master);
    free(ctl->state_dir);
    free(ctl->actor);
    free(ctl->master_key_command);
    free(ctl);
}

dbt_res dbt_ctl_change_counter(struct dbt_ctl *ctl, uint64_t *out)
{
    return dbt_store_counter(ctl->st, out);
}

dbt_res dbt_ctl_watch_open(struct dbt_ctl *ctl, int *fd)
{
    dbt_ctl_watch_close(ctl);
    *fd = -1;
    dbt_res r = dbt_store_watch_open(ctl->st, &ctl->watch);
    if (dbt_ok(r) && ctl->watch) {
        *fd = dbt_store_watch_fd(ctl->watch);
    }
    return r;
}

dbt_res dbt_ctl_watch_read(struct dbt_ctl *ctl, bool *changed)
{
    *changed = false;
    return ctl->watch ? dbt_store_watch_read(ctl->watch, changed) : DBT_OK;
}

void dbt_ctl_watch_close(struct dbt_ctl *ctl)
{
    dbt_store_watch_close(ctl->watch);
    ctl->watch = NULL;
}

/* ---- init ------------------------------------------------------------------------------- */

dbt_res ctl_mkdir_p(const char *dir)
{
    char *p = ctl_strdup(dir);
    dbt_res res = DBT_OK;
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                res = dbt_fail(DBT_E_IO, "cannot create directory \"%s\": %s", p, strerror(errno));
                break;
            }
            *s = '/';
        }
    }
    if (dbt_ok(res) && mkdir(p, 0700) != 0 && errno != EEXIST) {
        res = dbt_fail(DBT_E_IO, "cannot create state directory \"%s\": %s", p, strerror(errno));
    }
    free(p);
    return res;
}

void ctl_remove_stale(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) {
            continue;
        }
        long pid = strtol(e->d_name + strlen(prefix), NULL, 10);
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) {
            continue; /* an init still running */
        }
        char *p = ctl_printf("%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
}

/*
 * The store is built under a temporary name and renamed into place only when complete, so an
 * init that is killed half-way leaves no dbtls.db behind and can simply be run again. With a
 * store.conf in the state directory (`dbtls init --store` writes it first) the store is that
 * PostgreSQL database instead: its schema commits with the shared CAs in one transaction, and
 * a database that already holds a dbtls store is refused (EXISTS).
 */
dbt_res dbt_ctl_init(const struct dbt_ctl_opts *opts)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    char *db = NULL, *tmp = NULL, *mk = NULL, *conninfo = NULL;
    bool made_key = false, made_tmp = false;
    struct ctl_keys keys = {0};
    DBT_TRY(ctl_new(opts, &ctl));
    DBT_TRY(ctl_mkdir_p(opts->state_dir));
    /* An existing directory keeps its mode, but it must not be open to others. */
    struct stat sb;
    DBT_ENSURE(stat(opts->state_dir, &sb) == 0 && S_ISDIR(sb.st_mode), IO,
               "state directory \"%s\" is not a directory", opts->state_dir);
    db = ctl_printf("%s/%s", opts->state_dir, STORE_FILE);
    tmp = ctl_printf("%s/%s.init-%ld", opts->state_dir, STORE_FILE, (long)getpid());
    mk = ctl_printf("%s/%s", opts->state_dir, CTL_MASTER_FILE);
    DBT_ENSURE(access(db, F_OK) != 0, EXISTS,
               "state directory \"%s\" is already initialized (%s exists)", opts->state_dir, db);
    DBT_TRY(store_conninfo(opts->state_dir, &conninfo));
    if (opts->master_key_command && *opts->master_key_command) {
        DBT_TRY(ctl_master_load(opts->state_dir, opts->master_key_command, ctl->master));
    } else if (access(mk, F_OK) == 0) {
        /* A master key left by an interrupted init (or placed by the operator) is reused. */
        DBT_TRY(ctl_master_read_file(mk, ctl->master));
    } else {
        DBT_TRY(dbt_pki_random(ctl->master, sizeof ctl->master));
        DBT_TRY(ctl_master_write(mk, ctl->master));
        made_key = true;
    }
    ctl_remove_stale(opts->state_dir, STORE_FILE ".init-"); /* what a killed init left */
    /* The store being built is this process's own file, so nobody would wait on its write lock;
       the keys are still made first, as everywhere in ctl (keys.c). */
    for (size_t i = 0; i < DBT_ARRAY_LEN(ctl_ca_families); i++) {
        ctl_shared_family_keys(&ctl_ca_families[i], &keys);
    }
    DBT_TRY(ctl_keys_generate(&keys));
    if (conninfo) {
        DBT_TRY(dbt_store_open_pg(conninfo, DBT_STORE_CREATE, &ctl->st));
    } else {
        unlink(tmp);
        DBT_TRY(dbt_store_open(tmp, DBT_STORE_CREATE, &ctl->st));
        made_tmp = true;
    }
    DBT_TRY(dbt_store_begin(ctl->st, true));
    for (size_t i = 0; i < DBT_ARRAY_LEN(ctl_ca_families); i++) {
        DBT_TRY(ctl_shared_family_create(ctl, &ctl_ca_families[i], DBT_CTL_DEFAULT_REGION, &keys));
    }
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SETTING_PUT, &s));
    dbt_stmt_bind_text(s, 1, "default_ca_id");
    dbt_stmt_bind_text(s, 2, DBT_CTL_DEFAULT_CA_ID);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("init-mid");
    DBT_TRY(ctl_event(ctl, "init", "store", "cas=%zu region=%s default_ca=%s",
                      DBT_ARRAY_LEN(ctl_ca_families), DBT_CTL_DEFAULT_REGION,
                      DBT_CTL_DEFAULT_CA_ID));
    DBT_TRY(ctl_commit(ctl));
    dbt_store_close(ctl->st); /* checkpoints the WAL into the file before the rename */
    ctl->st = NULL;
    if (made_tmp) { /* SQLite: the finished file goes into place (PostgreSQL: committed) */
        DBT_ENSURE(access(db, F_OK) != 0, EXISTS,
                   "state directory \"%s\" is already initialized (%s exists)", opts->state_dir,
                   db);
        DBT_ENSURE(rename(tmp, db) == 0, IO, "cannot rename \"%s\" to \"%s\": %s", tmp, db,
                   strerror(errno));
        made_tmp = false;
    }
out:
    if (ctl && ctl->st) {
        dbt_store_rollback(ctl->st);
        dbt_store_close(ctl->st);
        ctl->st = NULL;
    }
    if (made_tmp) {
        unlink(tmp);
        char *aux = ctl_printf("%s-wal", tmp);
        unlink(aux);
        free(aux);
        aux = ctl_printf("%s-shm", tmp);
        unlink(aux);
        free(aux);
    }
    if (!dbt_ok(res) && made_key) {
        unlink(mk);
    }
    ctl_keys_cleanup(&keys);
    free_conninfo(conninfo);
    free(db);
    free(tmp);
    free(mk);
    dbt_ctl_close(ctl);
    return res;
}

/* ---- events API -------------------------------------------------------------------------- */

void dbt_ctl_event_list_cleanup(struct dbt_ctl_event_list *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].actor);
        free(l->items[i].action);
        free(l->items[i].object);
        free(l->items[i].detail);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Appends every row of an event query (id, time, actor, action, object, detail) to *out;
   the caller frees *out on failure too. */
static dbt_res event_rows(struct dbt_stmt *s, struct dbt_ctl_event_list *out)
{
    dbt_res res = DBT_OK;
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_ctl_event *nv = realloc(out->items, (out->n + 1) * sizeof *nv);
        DBT_ENSURE(nv, NOMEM, "out of memory");
        out->items = nv;
        struct dbt_ctl_event *e = &out->items[out->n++];
        memset(e, 0, sizeof *e);
        e->id = dbt_stmt_int(s, 0);
        e->time = dbt_stmt_int(s, 1);
        e->actor = ctl_strdup(dbt_stmt_text(s, 2));
        e->action = ctl_strdup(dbt_stmt_text(s, 3));
        e->object = ctl_strdup(dbt_stmt_text(s, 4));
        e->detail = ctl_strdup(dbt_stmt_text(s, 5));
    }
out:
    return res;
}

dbt_res ctl_events_read(struct dbt_ctl *ctl, enum dbt_sql id, const char *instance, int64_t after,
                        size_t limit, struct dbt_ctl_event_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    struct dbt_ctl_event_list l = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, id, &s));
    if (id == DBT_SQL_EVENT_AFTER) {
        dbt_stmt_bind_int(s, 1, after);
    } else {
        dbt_stmt_bind_text(s, 1, instance);
    }
    dbt_stmt_bind_int(s, 2, limit ? (int64_t)limit : -1);
    DBT_TRY(event_rows(s, &l));
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = l;
    l = (struct dbt_ctl_event_list){0};
out:
    dbt_store_rollback(ctl->st);
    dbt_ctl_event_list_cleanup(&l);
    return res;
}

dbt_res dbt_ctl_events_list(struct dbt_ctl *ctl, const char *instance, size_t limit,
                            struct dbt_ctl_event_list *out)
{
    return ctl_events_read(ctl, DBT_SQL_EVENT_LIST, instance, 0, limit, out);
}

dbt_res dbt_ctl_event_add(struct dbt_ctl *ctl, const char *action, const char *object,
                          const char *detail)
{
    dbt_res res = DBT_OK;
    DBT_ENSURE(action && *action && object && *object, INVALID,
               "an event needs an action and an object");
    /* The daemon's handle is read-only for everything but the audit trail. */
    struct dbt_store *w = ctl->st;
    struct dbt_store *own = NULL;
    if (ctl->read_only) {
        DBT_TRY(dbt_store_reopen(ctl->st, DBT_STORE_RW, &own));
        w = own;
    }
    struct dbt_store *saved = ctl->st;
    ctl->st = w;
    res = dbt_store_begin(w, true);
    if (dbt_ok(res)) {
        res = ctl_event(ctl, action, object, "%s", detail ? detail : "");
    }
    if (dbt_ok(res)) {
        res = dbt_store_commit(w);
    }
    dbt_store_rollback(w);
    ctl->st = saved;
    dbt_store_close(own);
out:
    return res;
}
