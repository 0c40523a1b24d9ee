/*
 * master_key.c - the master key that seals every stored private key (DESIGN.md §2): loading it
 * (state-dir/master.key with PostgreSQL's permission check, or --master-key-command), and
 * `dbtls master-key rotate`, which re-seals every stored key under a new master key in one
 * write transaction: the store holds all its keys under the old key or all under the new one.
 *
 * A rotation to a file writes master.key.new (0600, synced), commits the re-sealed store, then
 * renames master.key.new over master.key. A crash between the commit and the rename leaves both
 * files: the next open (ctl_master_recover) tries which of the two opens a stored key and
 * completes the rename or removes the unused file. The rotation and that recovery hold an
 * exclusive flock on the state directory, so a recovery never races a rotation in progress.
 *
 * A process that loaded the old key (a running dbtlsd, its admin API) reads the key again from
 * its source when a stored key does not open (ctl_master_refresh, from ctl_unseal): the
 * daemon's next reload after a rotation succeeds without a restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"
#include "base/rd.h"
#include "ctl/internal.h"

#define NEW_SUFFIX ".new"

/* ---- loading ------------------------------------------------------------------------------ */

/* Whether two keys differ, in time that does not depend on where. */
static bool keys_differ(const uint8_t a[DBT_PKI_MASTER_KEY_LEN],
                        const uint8_t b[DBT_PKI_MASTER_KEY_LEN])
{
    uint8_t d = 0;
    for (size_t i = 0; i < DBT_PKI_MASTER_KEY_LEN; i++) {
        d |= (uint8_t)(a[i] ^ b[i]);
    }
    return d != 0;
}

/* 64 hex characters (optionally followed by one newline / CRLF) or exactly 32 raw bytes. */
static bool parse_key_bytes(const uint8_t *p, size_t n, uint8_t out[DBT_PKI_MASTER_KEY_LEN])
{
    size_t hn = n;
    if (hn && p[hn - 1] == '\n') {
        hn--;
        if (hn && p[hn - 1] == '\r') {
            hn--;
        }
    }
    if (hn == 2 * DBT_PKI_MASTER_KEY_LEN) {
        bool ok = true;
        for (size_t i = 0; i < DBT_PKI_MASTER_KEY_LEN && ok; i++) {
            int hi = dbt_hex_digit(p[2 * i]), lo = dbt_hex_digit(p[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            if (ok) {
                out[i] = (uint8_t)(hi << 4 | lo);
            }
        }
        if (ok) {
            return true;
        }
    }
    if (n == DBT_PKI_MASTER_KEY_LEN) {
        memcpy(out, p, n);
        return true;
    }
    return false;
}

static dbt_res key_from_command(const char *cmd, uint8_t out[DBT_PKI_MASTER_KEY_LEN])
{
    dbt_res res = DBT_OK;
    uint8_t buf[256];
    size_t n = 0;
    FILE *f = popen(cmd, "r"); /* popen runs /bin/sh -c cmd */
    DBT_ENSURE(f, IO, "cannot run master key command \"%s\": %s", cmd, strerror(errno));
    for (;;) {
        size_t got = fread(buf + n, 1, sizeof buf - n, f);
        n += got;
        if (got == 0 || n == sizeof buf) {
            break;
        }
    }
    if (n == sizeof buf) { /* drain so the command does not die of SIGPIPE mid-way */
        uint8_t sink[256];
        while (fread(sink, 1, sizeof sink, f) > 0) {
        }
    }
    int st = pclose(f);
    DBT_ENSURE(st != -1, IO, "master key command \"%s\": %s", cmd, strerror(errno));
    DBT_ENSURE(WIFEXITED(st) && WEXITSTATUS(st) == 0, INVALID,
               "master key command \"%s\" failed (%s %d)", cmd,
               WIFEXITED(st) ? "exit status" : "signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    DBT_ENSURE(parse_key_bytes(buf, n, out), INVALID,
               "master key command \"%s\" must print 64 hex characters or exactly 32 bytes "
               "(it printed %zu bytes)",
               cmd, n);
out:
    dbt_pki_wipe(buf, sizeof buf);
    return res;
}

dbt_res ctl_master_read_file(const char *path, uint8_t out[DBT_PKI_MASTER_KEY_LEN])
{
    dbt_res res = DBT_OK;
    uint8_t buf[DBT_PKI_MASTER_KEY_LEN + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            return dbt_fail(DBT_E_NOT_FOUND,
                            "master key file \"%s\" does not exist; run `dbtls init` or give "
                            "--master-key-command",
                            path);
        }
        return dbt_fail(DBT_E_IO, "could not open master key file \"%s\": %s", path,
                        strerror(errno));
    }
    struct stat sb;
    DBT_ENSURE(fstat(fd, &sb) == 0, IO, "could not stat master key file \"%s\": %s", path,
               strerror(errno));
    DBT_ENSURE(S_ISREG(sb.st_mode), PERM, "master key file \"%s\" is not a regular file", path);
    /* Like PostgreSQL's check of ssl_key_file (be-secure-common.c): refuse group/world access. */
    DBT_ENSURE((sb.st_mode & (S_IRWXG | S_IRWXO)) == 0, PERM,
               "master key file \"%s\" has group or world access; permissions should be u=rw "
               "(0600) or less (fix with: chmod 0600 %s)",
               path, path);
    ssize_t n = read(fd, buf, sizeof buf);
    DBT_ENSURE(n >= 0, IO, "could not read master key file \"%s\": %s", path, strerror(errno));
    DBT_ENSURE(n == DBT_PKI_MASTER_KEY_LEN, CORRUPT,
               "master key file \"%s\" must hold exactly %d bytes (it has %s%zd)", path,
               DBT_PKI_MASTER_KEY_LEN, n > DBT_PKI_MASTER_KEY_LEN ? "more than " : "",
               n > DBT_PKI_MASTER_KEY_LEN ? (ssize_t)DBT_PKI_MASTER_KEY_LEN : n);
    memcpy(out, buf, DBT_PKI_MASTER_KEY_LEN);
out:
    dbt_pki_wipe(buf, sizeof buf);
    close(fd);
    return res;
}

dbt_res ctl_master_load(const char *state_dir, const char *command,
                        uint8_t out[DBT_PKI_MASTER_KEY_LEN])
{
    if (command && *command) {
        return key_from_command(command, out);
    }
    char *path = ctl_printf("%s/%s", state_dir, CTL_MASTER_FILE);
    dbt_res r = ctl_master_read_file(path, out);
    free(path);
    return r;
}
dbt_res ctl_master_write(const char *path, const uint8_t key[DBT_PKI_MASTER_KEY_LEN])
{
    return dbt_file_create_private(path, key, DBT_PKI_MASTER_KEY_LEN, "master key file");
}

/* ---- the state directory's lock, and the files ---------------------------------------------- */

/* An exclusive flock on the state directory (rotation and recovery); *fd = -1 when another
   process holds it. */
dbt_res ctl_lock_dir(const char *dir, int *fd)
{
    *fd = -1;
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) {
        return dbt_fail(DBT_E_IO, "cannot open state directory \"%s\": %s", dir, strerror(errno));
    }
    if (flock(d, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(d);
        if (e == EWOULDBLOCK) {
            return DBT_OK;
        }
        return dbt_fail(DBT_E_IO, "cannot lock state directory \"%s\": %s", dir, strerror(e));
    }
    *fd = d;
    return DBT_OK;
}

/* Makes a rename or unlink in the state directory durable. */
static void sync_dir(const char *dir)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        (void)fsync(d);
        close(d);
    }
}

/* Whether master opens the first stored CA key (there is always one: init makes the shared
   CAs). */
static dbt_res opens_store(struct dbt_ctl *ctl, const uint8_t master[DBT_PKI_MASTER_KEY_LEN],
                           bool *opens)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    *opens = false;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SEALED_CAS, &s));
    DBT_TRY(dbt_stmt_step(s, &row));
    if (row) {
        size_t len = 0;
        const uint8_t *blob = dbt_stmt_blob(s, 3, &len);
        *opens = ctl_key_opens(master, dbt_stmt_text(s, 2), blob, len);
    }
    DBT_TRY(dbt_stmt_exec(s));
out:
    dbt_store_rollback(ctl->st);
    return res;
}

/* With the directory locked: a master.key.new is what a rotation killed before its rename left.
   If its key opens the store, the rotation committed: finish the rename; if the current key
   does, it never committed: remove the file. Neither: leave both to the operator. */
static dbt_res recover_locked(struct dbt_ctl *ctl, const char *path, const char *new_path)
{
    dbt_res res = DBT_OK;
    uint8_t key[DBT_PKI_MASTER_KEY_LEN];
    bool opens = false;
    if (access(new_path, F_OK) != 0) {
        return DBT_OK;
    }
    if (!dbt_ok(ctl_master_read_file(new_path, key))) {
        /* written and synced before the store commits: a bad one never sealed anything */
        DBT_ENSURE(unlink(new_path) == 0, IO, "cannot remove \"%s\": %s", new_path,
                   strerror(errno));
        goto out;
    }
    DBT_TRY(opens_store(ctl, ctl->master, &opens));
    if (opens) {
        DBT_ENSURE(unlink(new_path) == 0, IO, "cannot remove \"%s\": %s", new_path,
                   strerror(errno));
        goto out;
    }
    DBT_TRY(opens_store(ctl, key, &opens));
    if (opens) {
        DBT_ENSURE(rename(new_path, path) == 0, IO,
                   "the store's keys are sealed under the key in \"%s\", which cannot be renamed "
                   "to \"%s\": %s",
                   new_path, path, strerror(errno));
        memcpy(ctl->master, key, sizeof key);
    }
out:
    sync_dir(ctl->state_dir);
    dbt_pki_wipe(key, sizeof key);
    return res;
}

dbt_res ctl_master_recover(struct dbt_ctl *ctl)
{
    dbt_res res = DBT_OK;
    int lock = -1;
    char *path = NULL, *new_path = NULL;
    if (ctl->master_key_command != NULL) {
        return DBT_OK; /* the key comes from a command: master.key is not this store's */
    }
    path = ctl_printf("%s/%s", ctl->state_dir, CTL_MASTER_FILE);
    new_path = ctl_printf("%s%s", path, NEW_SUFFIX);
    if (access(new_path, F_OK) == 0) {
        DBT_TRY(ctl_lock_dir(ctl->state_dir, &lock));
        if (lock >= 0) { /* else a rotation is running: it renames its file itself */
            DBT_TRY(recover_locked(ctl, path, new_path));
        }
    }
out:
    if (lock >= 0) {
        close(lock);
    }
    free(path);
    free(new_path);
    return res;
}

bool ctl_master_refresh(struct dbt_ctl *ctl)
{
    uint8_t key[DBT_PKI_MASTER_KEY_LEN];
    bool changed = false;
    if (dbt_ok(ctl_master_load(ctl->state_dir, ctl->master_key_command, key))) {
        changed = keys_differ(key, ctl->master);
    }
    if (!changed && ctl->master_key_command == NULL) {
        /* a rotation that committed a moment ago and has not renamed its file yet */
        char *new_path = ctl_printf("%s/%s%s", ctl->state_dir, CTL_MASTER_FILE, NEW_SUFFIX);
        if (dbt_ok(ctl_master_read_file(new_path, key))) {
            changed = keys_differ(key, ctl->master);
        }
        free(new_path);
    }
    if (changed) {
        memcpy(ctl->master, key, sizeof key);
    }
    dbt_pki_wipe(key, sizeof key);
    return changed;
}

/* ---- rotation ------------------------------------------------------------------------------ */

/* One stored key: the UPDATE that replaces it and its row, what it is, and its sealed bytes. */
struct sealed {
    enum dbt_sql set;
    int64_t id;    /* instances.id or server_slots.instance_id */
    char *k1, *k2; /* cas: ca_id, region; server_slots: slot */
    char *what;    /* for errors */
    char *cert_pem;
    uint8_t *blob;
    size_t len;
};

struct sealed_list {
    struct sealed *v;
    size_t n;
};

static void sealed_list_cleanup(struct sealed_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].k1);
        free(l->v[i].k2);
        free(l->v[i].what);
        free(l->v[i].cert_pem);
        free(l->v[i].blob);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Adds the key in column blob_col of s's row, for the certificate in column pem_col; what is
   taken. */
static dbt_res sealed_add(struct sealed_list *l, struct sealed it, struct dbt_stmt *s, int pem_col,
                          int blob_col)
{
    struct sealed *v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (v == NULL) {
        free(it.k1);
        free(it.k2);
        free(it.what);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    l->v = v;
    const uint8_t *blob = dbt_stmt_blob(s, blob_col, &it.len);
    it.cert_pem = ctl_strdup(dbt_stmt_text(s, pem_col));
    it.blob = malloc(it.len ? it.len : 1);
    if (it.blob == NULL || it.cert_pem == NULL) {
        l->v[l->n++] = it; /* freed by the cleanup */
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    if (it.len > 0) {
        memcpy(it.blob, blob, it.len);
    }
    l->v[l->n++] = it;
    return DBT_OK;
}

/* Every sealed key of the store but the admin CA's (admin_ca.c re-seals that one). */
static dbt_res collect(struct dbt_ctl *ctl, struct sealed_list *l)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SEALED_CAS, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        const char *id = dbt_stmt_text(s, 0), *region = dbt_stmt_text(s, 1);
        struct sealed it = {.set = DBT_SQL_SEALED_CA_SET,
                            .k1 = ctl_strdup(id),
                            .k2 = ctl_strdup(region),
                            .what = *region ? ctl_printf("CA %s/%s", id, region)
                                            : ctl_printf("CA %s", id)};
        DBT_TRY(sealed_add(l, it, s, 2, 3));
    }
    DBT_TRY(res);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SEALED_CLIENT_CAS, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        struct sealed it = {.set = DBT_SQL_SEALED_CLIENT_CA_SET,
                            .id = dbt_stmt_int(s, 0),
                            .what =
                                ctl_printf("the client CA of instance %s", dbt_stmt_text(s, 1))};
        DBT_TRY(sealed_add(l, it, s, 2, 3));
    }
    DBT_TRY(res);
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SEALED_SLOTS, &s));
    while (dbt_ok(res = dbt_stmt_step(s, &row)) && row) {
        int64_t id = dbt_stmt_int(s, 0);
        const char *name = dbt_stmt_text(s, 1), *slot = dbt_stmt_text(s, 2);
        if (!dbt_stmt_is_null(s, 3)) { /* per-instance mode: the slot's own server CA */
            struct sealed it = {.set = DBT_SQL_SEALED_SLOT_CA_SET,
                                .id = id,
                                .k1 = ctl_strdup(slot),
                                .what = ctl_printf("the %s server CA of instance %s", slot, name)};
            DBT_TRY(sealed_add(l, it, s, 3, 4));
        }
        struct sealed it = {.set = DBT_SQL_SEALED_SLOT_KEY_SET,
                            .id = id,
                            .k1 = ctl_strdup(slot),
                            .what =
                                ctl_printf("the %s server certificate of instance %s", slot, name)};
        DBT_TRY(sealed_add(l, it, s, 5, 6));
    }
    DBT_TRY(res);
out:
    return res;
}

/* Seals its key under new_master and writes it back in the open transaction. */
static dbt_res reseal_one(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                          const struct sealed *it)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    DBT_TRY(ctl_reseal(ctl, new_master, it->what, it->cert_pem, it->blob, it->len, &blob, &len));
    DBT_TRY(dbt_store_stmt(ctl->st, it->set, &s));
    if (it->set == DBT_SQL_SEALED_CA_SET) {
        dbt_stmt_bind_text(s, 1, it->k1);
        dbt_stmt_bind_text(s, 2, it->k2);
        dbt_stmt_bind_blob(s, 3, blob, len);
    } else if (it->set == DBT_SQL_SEALED_CLIENT_CA_SET) {
        dbt_stmt_bind_int(s, 1, it->id);
        dbt_stmt_bind_blob(s, 2, blob, len);
    } else {
        dbt_stmt_bind_int(s, 1, it->id);
        dbt_stmt_bind_text(s, 2, it->k1);
        dbt_stmt_bind_blob(s, 3, blob, len);
    }
    DBT_TRY(dbt_stmt_exec(s));
    DBT_ENSURE(dbt_store_changes(ctl->st) == 1, INTERNAL, "%s: its row changed during the rotation",
               it->what);
out:
    free(blob);
    return res;
}

dbt_res ctl_reseal_all(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                       size_t *n)
{
    dbt_res res = DBT_OK;
    struct sealed_list l = {0};
    *n = 0;
    DBT_TRY(collect(ctl, &l));
    for (size_t i = 0; i < l.n; i++) {
        DBT_TRY(reseal_one(ctl, new_master, &l.v[i]));
    }
    *n = l.n;
    DBT_TRY(ctl_admin_ca_reseal(ctl, new_master, n));
out:
    sealed_list_cleanup(&l);
    return res;
}

dbt_res dbt_ctl_master_key_rotate(struct dbt_ctl *ctl, const char *new_command,
                                  struct dbt_ctl_rekey *out)
{
    dbt_res res = DBT_OK;
    bool to_file = new_command == NULL || *new_command == '\0';
    char *path = ctl_printf("%s/%s", ctl->state_dir, CTL_MASTER_FILE);
    char *new_path = ctl_printf("%s%s", path, NEW_SUFFIX);
    uint8_t key[DBT_PKI_MASTER_KEY_LEN];
    int lock = -1;
    bool made_new = false, committed = false;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    memset(key, 0, sizeof key);

    DBT_ENSURE(!ctl->read_only, STATE, "the store is open read-only");
    DBT_ENSURE(!to_file || ctl->master_key_command == NULL, INVALID,
               "the master key comes from --master-key-command: give --new-master-key-command "
               "CMD, a command that prints the new key (dbtls does not write to your key store)");
    DBT_TRY(ctl_lock_dir(ctl->state_dir, &lock));
    DBT_ENSURE(lock >= 0, STATE, "another master key rotation or restore is running on \"%s\"",
               ctl->state_dir);
    if (to_file) {
        DBT_TRY(recover_locked(ctl, path, new_path)); /* what a killed rotation left */
        DBT_TRY(dbt_pki_random(key, sizeof key));
        DBT_TRY(ctl_master_write(new_path, key));
        made_new = true;
    } else {
        dbt_res r = ctl_master_load(ctl->state_dir, new_command, key);
        if (!dbt_ok(r)) {
            res = dbt_fail_ctx(r, "--new-master-key-command: ");
            goto out;
        }
        DBT_ENSURE(keys_differ(key, ctl->master), INVALID,
                   "--new-master-key-command printed the current master key; a rotation needs "
                   "a new one");
    }
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_reseal_all(ctl, key, &n));
    ctl_fault("rekey-mid");
    DBT_TRY(ctl_event(ctl, "master-key.rotate", "master-key", "keys=%zu source=%s", n,
                      to_file ? "file" : "command"));
    DBT_TRY(ctl_commit(ctl));
    committed = true;
    memcpy(ctl->master, key, sizeof key);
    ctl_fault("rekey-committed");
    if (to_file) {
        DBT_ENSURE(rename(new_path, path) == 0, IO,
                   "the store's keys are now sealed under the key in \"%s\", which cannot be "
                   "renamed to \"%s\": %s (rename it by hand)",
                   new_path, path, strerror(errno));
        made_new = false;
    } else {
        free(ctl->master_key_command);
        ctl->master_key_command = ctl_strdup(new_command);
        /* a key file from before (the store moved from the file to a command) opens nothing now */
        DBT_ENSURE(unlink(path) == 0 || errno == ENOENT, IO,
                   "the store's keys are now sealed under the new command's key, but the old "
                   "master key file \"%s\" cannot be removed: %s",
                   path, strerror(errno));
    }
    sync_dir(ctl->state_dir);
    out->keys = n;
    out->to_file = to_file;
out:
    if (!committed) {
        dbt_store_rollback(ctl->st);
        if (made_new) {
            unlink(new_path);
        }
    }
    if (lock >= 0) {
        close(lock);
    }
    dbt_pki_wipe(key, sizeof key);
    free(path);
    free(new_path);
    return res;
}
