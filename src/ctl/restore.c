/*
 * restore.c - `dbtls restore`: puts a copy of the SQLite store (`dbtls backup`'s) back in place,
 * checked first and with nothing of the PKI forgotten. A certificate authority must not forget
 * what it issued or revoked: a plain file copy would trust again every client certificate revoked
 * after the copy was taken and lose track of every one issued since (still trusted, no longer
 * listed, no longer revocable by name). So when a readable store is there, its issuances and
 * revocations under the client CAs the copy has are carried into the copy (the CRLs signed again
 * above the replaced store's numbers), and so are the admin certificates'. The copy is staged as
 * dbtls.db.restore-PID beside the store: copied with SQLite's backup, migrated, every key
 * re-sealed under the current master key (which proves it opens), then it replaces the store's
 * content in one transaction (store.h's dbt_store_replace) or, with no readable store, is
 * renamed into place. A running dbtlsd sees the change counter move and reloads. The audit
 * trail keeps the events recorded after the copy (with their ids), then the restore's own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "ctl/internal.h"

_Static_assert(DBT_PKI_MASTER_KEY_LEN == 32, "ctl.h's restore takes a 32-byte master key");

#define STAGE_PREFIX CTL_STORE_FILE ".restore-"

/* One instance row as the comparison needs it. */
struct rinst {
    int64_t id;
    char *name, *ca_sha1;
    int64_t crl_number;
    bool dirty; /* revocations were carried into it: its CRL is signed again */
};

struct rinsts {
    struct rinst *v;
    size_t n;
};

static void rinsts_cleanup(struct rinsts *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].ca_sha1);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static dbt_res rinsts_load(struct dbt_store *st, struct rinsts *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(st, DBT_SQL_RESTORE_INSTANCES, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        struct rinst *v = realloc(out->v, (out->n + 1) * sizeof *v);
        DBT_ENSURE(v != NULL, NOMEM, "out of memory");
        out->v = v;
        v[out->n++] = (struct rinst){.id = dbt_stmt_int(s, 0),
                                     .name = ctl_strdup(dbt_stmt_text(s, 1)),
                                     .ca_sha1 = ctl_strdup(dbt_stmt_text(s, 2)),
                                     .crl_number = dbt_stmt_int(s, 3)};
    }
out:
    return res;
}

static struct rinst *by_ca(struct rinsts *l, const char *sha1)
{
    for (size_t i = 0; i < l->n; i++) {
        if (sha1 && strcmp(l->v[i].ca_sha1, sha1) == 0) {
            return &l->v[i];
        }
    }
    return NULL;
}

static bool has_name(const struct rinsts *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* What the copy knows of a serial under a client CA: *live (a client cert row), *revoked. */
static dbt_res serial_known(struct dbt_store *st, const char *ca_sha1, const char *serial,
                            bool *live, bool *revoked)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    *live = *revoked = false;
    DBT_TRY(dbt_store_stmt(st, DBT_SQL_RESTORE_SERIAL, &s));
    dbt_stmt_bind_text(s, 1, ca_sha1);
    dbt_stmt_bind_text(s, 2, serial);
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        *(dbt_stmt_int(s, 0) == 1 ? live : revoked) = true;
    }
out:
    return res;
}

/* Runs the INSERT id with ?1 inst_id, ?2..?5 texts, ?6 time (REVOKE_ADD and CLIENT_ADD). */
static dbt_res insert_row(struct dbt_store *st, enum dbt_sql id, int64_t inst_id,
                          const char *const texts[4], int64_t time)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *w = NULL;
    DBT_TRY(dbt_store_stmt(st, id, &w));
    dbt_stmt_bind_int(w, 1, inst_id);
    for (int i = 0; i < 4; i++) {
        dbt_stmt_bind_text(w, i + 2, texts[i]);
    }
    dbt_stmt_bind_int(w, 6, time);
    DBT_TRY(dbt_stmt_exec(w));
out:
    return res;
}

/* Revocations the replaced store made that the copy lacks: added to the copy (and the client
   certificate row, if the copy still lists it, removed). */
static dbt_res carry_revocations(struct dbt_ctl *ctl, struct dbt_store *live, struct rinsts *ci,
                                 struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL, *w = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(live, DBT_SQL_RESTORE_REVOKED, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        const char *ca = dbt_stmt_text(s, 0), *serial = dbt_stmt_text(s, 1);
        struct rinst *in = by_ca(ci, ca);
        bool listed = false, revoked = false;
        if (in == NULL) {
            continue; /* a client CA the copy does not have: nothing of it is trusted */
        }
        DBT_TRY(serial_known(ctl->st, ca, serial, &listed, &revoked));
        if (revoked) {
            continue;
        }
        if (listed) {
            DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_DELETE_SERIAL, &w));
            dbt_stmt_bind_int(w, 1, in->id);
            dbt_stmt_bind_text(w, 2, serial);
            DBT_TRY(dbt_stmt_exec(w));
        }
        const char *texts[4] = {ca, serial, dbt_stmt_text(s, 2), dbt_stmt_text(s, 3)};
        DBT_TRY(insert_row(ctl->st, DBT_SQL_REVOKE_ADD, in->id, texts, dbt_stmt_int(s, 4)));
        in->dirty = true;
        out->revocations_carried++;
    }
out:
    return res;
}

/* Whether the copy's instance already has a client certificate called name. */
static dbt_res name_taken(struct dbt_ctl *ctl, int64_t inst_id, const char *name, bool *taken)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_FIND, &s));
    dbt_stmt_bind_int(s, 1, inst_id);
    dbt_stmt_bind_text(s, 2, name);
    dbt_stmt_bind_text(s, 3, "");
    DBT_TRY(dbt_stmt_step(s, taken));
    DBT_TRY(dbt_stmt_exec(s));
out:
    return res;
}

/* Client certificates the replaced store issued that the copy does not know: listed in the
   copy, so they can be described and revoked. A name the copy gives another certificate gets
   the suffix ".restored-" and the serial's first eight digits. */
static dbt_res carry_client_certs(struct dbt_ctl *ctl, struct dbt_store *live, struct rinsts *ci,
                                  struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    char *name = NULL;
    DBT_TRY(dbt_store_stmt(live, DBT_SQL_RESTORE_CLIENTS, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        const char *ca = dbt_stmt_text(s, 0), *serial = dbt_stmt_text(s, 2);
        struct rinst *in = by_ca(ci, ca);
        bool listed = false, revoked = false, taken = false;
        if (in == NULL) {
            out->client_certs_lost++;
            continue;
        }
        DBT_TRY(serial_known(ctl->st, ca, serial, &listed, &revoked));
        if (listed || revoked) {
            continue;
        }
        free(name);
        name = ctl_strdup(dbt_stmt_text(s, 1));
        DBT_TRY(name_taken(ctl, in->id, name, &taken));
        if (taken) {
            free(name);
            name = ctl_printf("%s.restored-%.8s", dbt_stmt_text(s, 1), serial);
        }
        const char *texts[4] = {name, serial, dbt_stmt_text(s, 3), dbt_stmt_text(s, 4)};
        DBT_TRY(insert_row(ctl->st, DBT_SQL_CLIENT_ADD, in->id, texts, dbt_stmt_int(s, 5)));
        out->client_certs_carried++;
    }
out:
    free(name);
    return res;
}

/* Admin certificates issued or revoked after the copy was taken. */
static dbt_res carry_admin_certs(struct dbt_ctl *ctl, struct dbt_store *live,
                                 struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL, *w = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(live, DBT_SQL_ADMIN_CERT_LIST, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        const char *serial = dbt_stmt_text(s, 1);
        bool known = false, live_revoked = !dbt_stmt_is_null(s, 5);
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_BY_SERIAL, &w));
        dbt_stmt_bind_text(w, 1, serial);
        DBT_TRY(dbt_stmt_step(w, &known));
        bool copy_revoked = known && !dbt_stmt_is_null(w, 0);
        DBT_TRY(dbt_stmt_exec(w));
        if (!known) {
            DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_ADD, &w));
            for (int c = 0; c < 6; c++) {
                if (dbt_stmt_is_null(s, c)) {
                    dbt_stmt_bind_text(w, c + 1, NULL);
                } else if (c == 0 || c == 1 || c == 2) {
                    dbt_stmt_bind_text(w, c + 1, dbt_stmt_text(s, c));
                } else {
                    dbt_stmt_bind_int(w, c + 1, dbt_stmt_int(s, c));
                }
            }
            DBT_TRY(dbt_stmt_exec(w));
            out->admin_certs_carried++;
        } else if (live_revoked && !copy_revoked) {
            DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ADMIN_CERT_REVOKE, &w));
            dbt_stmt_bind_text(w, 1, serial);
            dbt_stmt_bind_int(w, 2, dbt_stmt_int(s, 5));
            DBT_TRY(dbt_stmt_exec(w));
            out->admin_certs_carried++;
        }
    }
out:
    return res;
}

/* The audit trail: the replaced store's events after the copy's newest, with their ids (so
   notification marks stay true), and each sink's mark where the replaced store's is further
   (no event is delivered twice). */
static dbt_res carry_events(struct dbt_ctl *ctl, struct dbt_store *live,
                            struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL, *w = NULL;
    bool row = false;
    int64_t last = 0;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_EVENT_MAX_ID, &s));
    DBT_TRY(dbt_stmt_step(s, &row));
    last = row ? dbt_stmt_int(s, 0) : 0;
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(dbt_store_stmt(live, DBT_SQL_EVENT_AFTER, &s));
    dbt_stmt_bind_int(s, 1, last);
    dbt_stmt_bind_int(s, 2, -1);
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_EVENT_PUT, &w));
        dbt_stmt_bind_int(w, 1, dbt_stmt_int(s, 0));
        dbt_stmt_bind_int(w, 2, dbt_stmt_int(s, 1));
        for (int c = 2; c < 6; c++) {
            dbt_stmt_bind_text(w, c + 1, dbt_stmt_text(s, c));
        }
        DBT_TRY(dbt_stmt_exec(w));
        out->events_carried++;
    }
    DBT_TRY(res);
    DBT_TRY(dbt_store_stmt(live, DBT_SQL_NOTIFY_MARKS, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        const char *sink = dbt_stmt_text(s, 0);
        bool known = false;
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_NOTIFY_MARK_GET, &w));
        dbt_stmt_bind_text(w, 1, sink);
        DBT_TRY(dbt_stmt_step(w, &known));
        bool behind = !known || dbt_stmt_int(w, 0) < dbt_stmt_int(s, 1);
        DBT_TRY(dbt_stmt_exec(w));
        if (behind) {
            DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_NOTIFY_MARK_PUT, &w));
            dbt_stmt_bind_text(w, 1, sink);
            dbt_stmt_bind_int(w, 2, dbt_stmt_int(s, 1));
            dbt_stmt_bind_int(w, 3, dbt_stmt_int(s, 2));
            DBT_TRY(dbt_stmt_exec(w));
        }
    }
out:
    return res;
}

/* Signs again the CRL of every copy instance that took revocations, or whose client CA signed a
   later CRL in the replaced store, with a number above both: CRL numbers never go back. */
static dbt_res resign_crls(struct dbt_ctl *ctl, struct rinsts *ci, struct rinsts *li)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    for (size_t i = 0; i < ci->n; i++) {
        struct rinst *c = &ci->v[i], *l = by_ca(li, c->ca_sha1);
        if (!c->dirty && (l == NULL || l->crl_number <= c->crl_number)) {
            continue;
        }
        ctl_inst_cleanup(&in);
        DBT_TRY(ctl_inst_load(ctl, c->name, &in));
        if (l != NULL && l->crl_number > in.crl_number) {
            in.crl_number = l->crl_number;
        }
        DBT_TRY(ctl_crl_regen(ctl, &in));
    }
out:
    ctl_inst_cleanup(&in);
    return res;
}

/* The names of a's instances that b does not have, into *out. */
static dbt_res missing_names(const struct rinsts *a, const struct rinsts *b, char ***out, size_t *n)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < a->n; i++) {
        if (!has_name(b, a->v[i].name)) {
            DBT_TRY(ctl_strv_push(out, n, a->v[i].name));
        }
    }
out:
    return res;
}

static dbt_res store_counter(struct dbt_store *st, int64_t *out)
{
    uint64_t n = 0;
    dbt_res r = dbt_store_counter(st, &n);
    *out = (int64_t)n;
    return r;
}

/*
 * In the staged copy (ctl->st), one write transaction: every key re-sealed under the current
 * master key, what the replaced store (live, may be NULL) did since carried over, the counter
 * above the replaced store's, the event. *live_counter is the counter of live it compared.
 */
static dbt_res prepare_copy(struct dbt_ctl *ctl, struct dbt_store *live, const char *from,
                            const uint8_t *from_master, unsigned flags, uint64_t *live_counter,
                            struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    uint8_t current[DBT_PKI_MASTER_KEY_LEN];
    struct rinsts ci = {0}, li = {0};
    struct dbt_stmt *s = NULL;
    int64_t copy_n = 0, live_n = 0;
    memcpy(current, ctl->master, sizeof current);
    DBT_TRY(dbt_store_begin(ctl->st, true));
    if (from_master != NULL) {
        memcpy(ctl->master, from_master, sizeof ctl->master);
        out->rekeyed = memcmp(from_master, current, sizeof current) != 0;
    }
    res = ctl_reseal_all(ctl, current, &out->keys);
    memcpy(ctl->master, current, sizeof current);
    if (!dbt_ok(res)) {
        char *why = ctl_strdup(dbt_errmsg());
        res = dbt_fail(res.code, "\"%s\": %s%s", from, why,
                       from_master != NULL ? ""
                                           : "; a copy taken before `dbtls master-key rotate` "
                                             "needs the key of then: give it with "
                                             "--from-master-key FILE or "
                                             "--from-master-key-command CMD");
        free(why);
        goto out;
    }
    DBT_TRY(rinsts_load(ctl->st, &ci));
    out->instances = ci.n;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_EVENT_LAST_TIME, &s));
    bool row = false;
    DBT_TRY(dbt_stmt_step(s, &row));
    out->copy_last_change = row ? dbt_stmt_int(s, 0) : 0;
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(store_counter(ctl->st, &copy_n));
    if (live != NULL) {
        DBT_TRY(dbt_store_begin(live, false)); /* one snapshot of it, its counter included */
        DBT_TRY(store_counter(live, &live_n));
        *live_counter = (uint64_t)live_n;
        DBT_TRY(rinsts_load(live, &li));
        DBT_TRY(missing_names(&li, &ci, &out->removed, &out->n_removed));
        DBT_TRY(missing_names(&ci, &li, &out->returned, &out->n_returned));
        for (size_t i = 0; i < ci.n; i++) {
            if (by_ca(&li, ci.v[i].ca_sha1) == NULL && has_name(&li, ci.v[i].name)) {
                DBT_TRY(ctl_strv_push(&out->ca_changed, &out->n_ca_changed, ci.v[i].name));
            }
        }
        if (out->n_removed > 0 && !(flags & (DBT_CTL_RESTORE_FORCE | DBT_CTL_RESTORE_DRY_RUN))) {
            char *names = NULL;
            for (size_t i = 0; i < out->n_removed; i++) {
                DBT_TRY(ctl_append(&names, i ? ", " : ""));
                DBT_TRY(ctl_append(&names, out->removed[i]));
            }
            res = dbt_fail(DBT_E_STATE,
                           "restoring \"%s\" would delete instance%s %s, which the copy does not "
                           "have (created after it was taken?); nothing was restored: give "
                           "--force to restore anyway",
                           from, out->n_removed > 1 ? "s" : "", names);
            free(names);
            goto out;
        }
        DBT_TRY(carry_revocations(ctl, live, &ci, out));
        DBT_TRY(carry_client_certs(ctl, live, &ci, out));
        DBT_TRY(carry_admin_certs(ctl, live, out));
        DBT_TRY(carry_events(ctl, live, out));
        dbt_store_rollback(live);
        DBT_TRY(resign_crls(ctl, &ci, &li));
    }
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_COUNTER_SET, &s));
    dbt_stmt_bind_int(s, 1, copy_n > live_n ? copy_n : live_n);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(ctl_event(ctl, "store.restore", "store",
                      "file=%s keys=%zu rekeyed=%s client_certs_carried=%zu "
                      "revocations_carried=%zu admin_certs_carried=%zu events_carried=%zu "
                      "instances_removed=%zu",
                      from, out->keys, out->rekeyed ? "yes" : "no", out->client_certs_carried,
                      out->revocations_carried, out->admin_certs_carried, out->events_carried,
                      out->n_removed));
    ctl_fault("restore-mid");
    DBT_TRY(ctl_commit(ctl));
out:
    if (live != NULL) {
        dbt_store_rollback(live);
    }
    dbt_store_rollback(ctl->st);
    dbt_pki_wipe(current, sizeof current);
    rinsts_cleanup(&ci);
    rinsts_cleanup(&li);
    return res;
}

static void unlink_with_journal(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(suffixes); i++) {
        char *p = ctl_printf("%s%s", path, suffixes[i]);
        unlink(p);
        free(p);
    }
}

/* With no readable store at db: a damaged one (and its -wal/-shm, which would otherwise be
   applied to the copy) is moved aside, and the staged copy renamed into place. */
static dbt_res put_in_place(const char *stage, const char *db, bool damaged,
                            struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
    if (damaged) {
        char stamp[32];
        dbt_time_rfc3339(dbt_now_unix(), stamp, sizeof stamp);
        out->damaged_aside = ctl_printf("%s.damaged-%s", db, stamp);
        DBT_ENSURE(rename(db, out->damaged_aside) == 0, IO, "cannot move \"%s\" aside: %s", db,
                   strerror(errno));
    }
    for (size_t i = 0; i < DBT_ARRAY_LEN(suffixes); i++) {
        char *p = ctl_printf("%s%s", db, suffixes[i]);
        char *q = out->damaged_aside ? ctl_printf("%s%s", out->damaged_aside, suffixes[i]) : NULL;
        int rc = q ? rename(p, q) : unlink(p);
        int err = errno;
        free(p);
        free(q);
        DBT_ENSURE(rc == 0 || err == ENOENT, IO, "cannot remove the old store's journal: %s",
                   strerror(err));
    }
    /* link, not rename: a store that appeared meanwhile (an init) is not replaced */
    DBT_ENSURE(link(stage, db) == 0, IO, "cannot put the copy in place as \"%s\": %s", db,
               errno == EEXIST ? "a store appeared there meanwhile" : strerror(errno));
out:
    return res;
}

dbt_res dbt_ctl_restore(const struct dbt_ctl_opts *opts, const char *from,
                        const uint8_t *from_master, unsigned flags, struct dbt_ctl_restore *out)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    struct dbt_store *live = NULL;
    char *db = NULL, *stage = NULL, *conf = NULL;
    int lock = -1;
    bool staged = false, damaged = false;
    uint64_t live_counter = 0;
    struct stat a, b;
    memset(out, 0, sizeof *out);
    DBT_ENSURE(from != NULL && *from != '\0', INVALID, "no copy to restore given");
    DBT_TRY(ctl_new(opts, &ctl));
    db = ctl_printf("%s/%s", opts->state_dir, CTL_STORE_FILE);
    conf = ctl_printf("%s/%s", opts->state_dir, CTL_STORE_CONF);
    DBT_ENSURE(access(conf, F_OK) != 0, STATE,
               "the store of \"%s\" is the PostgreSQL database its store.conf names: restore it "
               "with pg_restore (docs/store.md)",
               opts->state_dir);
    DBT_ENSURE(stat(from, &a) != 0 || stat(db, &b) != 0 || a.st_dev != b.st_dev ||
                   a.st_ino != b.st_ino,
               INVALID, "\"%s\" is the store itself", from);
    /* the key first: a refused restore leaves no new directory behind (with a key file, the
       directory is there already) */
    DBT_TRY(ctl_master_load(opts->state_dir, opts->master_key_command, ctl->master));
    ctl->master_fixed = true; /* the key of this restore; no refresh from the directory */
    DBT_TRY(ctl_mkdir_p(opts->state_dir));
    DBT_TRY(ctl_lock_dir(opts->state_dir, &lock));
    DBT_ENSURE(lock >= 0, STATE, "another master key rotation or restore is running on \"%s\"",
               opts->state_dir);
    ctl_remove_stale(opts->state_dir, STAGE_PREFIX);
    stage = ctl_printf("%s/%s%ld", opts->state_dir, STAGE_PREFIX, (long)getpid());
    unlink_with_journal(stage);
    DBT_TRY(dbt_store_copy_file(from, stage));
    staged = true;
    DBT_TRY(dbt_store_open(stage, DBT_STORE_RW, &ctl->st)); /* migrates an older copy */
    if (access(db, F_OK) == 0) {
        dbt_res r = dbt_store_open(db, DBT_STORE_RW, &live);
        if (r.code == DBT_E_CORRUPT) {
            damaged = true; /* what the restore is for: the copy takes its place */
        } else if (!dbt_ok(r)) {
            res = r;
            goto out;
        }
    }
    DBT_TRY(prepare_copy(ctl, live, from, from_master, flags, &live_counter, out));
    dbt_store_close(ctl->st); /* checkpoints the copy's WAL into its file */
    ctl->st = NULL;
    ctl_fault("restore-prepared"); /* staged, the store untouched */
    if (flags & DBT_CTL_RESTORE_DRY_RUN) {
        out->replaced = live != NULL;
        if (damaged) {
            out->damaged_aside = ctl_printf("%s.damaged-TIME", db);
        }
    } else if (live != NULL) {
        DBT_TRY(dbt_store_replace(live, stage, live_counter));
        out->replaced = true;
    } else {
        DBT_TRY(put_in_place(stage, db, damaged, out));
    }
out:
    if (ctl != NULL && ctl->st != NULL) {
        dbt_store_close(ctl->st);
        ctl->st = NULL;
    }
    dbt_store_close(live);
    if (staged) {
        unlink_with_journal(stage);
    }
    if (lock >= 0) {
        close(lock);
    }
    free(db);
    free(stage);
    free(conf);
    dbt_ctl_close(ctl);
    return res;
}

void dbt_ctl_restore_cleanup(struct dbt_ctl_restore *r)
{
    if (r == NULL) {
        return;
    }
    ctl_strv_free(r->removed, r->n_removed);
    ctl_strv_free(r->returned, r->n_returned);
    ctl_strv_free(r->ca_changed, r->n_ca_changed);
    free(r->damaged_aside);
    memset(r, 0, sizeof *r);
}

dbt_res dbt_ctl_master_key_read(const char *path, const char *command, uint8_t out[32])
{
    if (command != NULL) {
        return ctl_master_load("", command, out);
    }
    return ctl_master_read_file(path, out);
}
