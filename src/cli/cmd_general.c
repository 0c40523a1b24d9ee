/*
 * cmd_general.c - the commands that are not about one instance: init, backup, restore,
 * master-key rotate,
 * cas list|set-default|import|renew|delete, engines list, bundle, events list.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cmd.h"
#include "cli/out.h"
#include "cli/view.h"
#include "ctl/admin_ca.h"
#include "ctl/ctl.h"
#include "store/store.h" /* dbt_store_conf_write: init --store */

static dbt_res cas_json(struct dbt_cli *c, json_t **out)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_ca_list l = {0};
    json_t *a = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_cas_list(ctl, &l));
    a = json_array();
    DBT_ENSURE(a, NOMEM, "out of memory");
    for (size_t i = 0; i < l.n; i++) {
        json_t *o = dbt_cli_view_ca(&l.items[i]);
        DBT_ENSURE(o, NOMEM, "out of memory");
        json_array_append_new(a, o);
    }
    *out = a;
    a = NULL;
out:
    json_decref(a);
    dbt_ctl_ca_list_cleanup(&l);
    return res;
}

/* mkdir -p with mode 0700, as dbt_ctl_init makes the state directory. */
static dbt_res make_dirs(const char *dir)
{
    char *p = strdup(dir);
    dbt_res res = DBT_OK;
    DBT_ENSURE(p, NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            DBT_ENSURE(mkdir(p, 0700) == 0 || errno == EEXIST, IO,
                       "cannot create directory \"%s\": %s", p, strerror(errno));
            *s = c;
            if (!c) {
                break;
            }
        }
    }
out:
    free(p);
    return res;
}

/*
 * --store CONNINFO: the state directory's store.conf names the PostgreSQL database, which
 * dbt_ctl_init then initializes; removed again if init fails, so the command can be re-run.
 */
static dbt_res init_store_conf(struct dbt_cli *c, char **made)
{
    dbt_res res = DBT_OK;
    const char *conninfo = dbt_cli_get(c, "store");
    char *path = NULL;
    *made = NULL;
    if (!conninfo) {
        return DBT_OK;
    }
    DBT_TRY(make_dirs(c->state_dir));
    DBT_ENSURE(asprintf(&path, "%s/store.conf", c->state_dir) >= 0, NOMEM, "out of memory");
    DBT_ENSURE(access(path, F_OK) != 0, EXISTS,
               "state directory \"%s\" already names a store (%s exists)", c->state_dir, path);
    DBT_TRY(dbt_store_conf_write(path, conninfo));
    *made = path;
    path = NULL;
out:
    free(path);
    return res;
}

static int run_init(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    json_t *cas = NULL, *o = NULL;
    struct dbt_ctl_opts opts = {
        .state_dir = c->state_dir,
        .master_key_command = c->master_key_command,
    };
    int rc;
    char *made_conf = NULL;

    DBT_TRY(init_store_conf(c, &made_conf));
    res = dbt_ctl_init(&opts);
    if (!dbt_ok(res)) {
        if (made_conf) {
            unlink(made_conf);
        }
        goto out;
    }
    DBT_TRY(cas_json(c, &cas));
    {
        /* The admin CA of the admin API's TCP listener (docs/admin-api.md). Stores made before
           it existed get it on first use, so a failure here is only a warning. */
        char *admin_ca = NULL;
        if (!dbt_ok(dbt_ctl_admin_ca(c->ctl, &admin_ca))) {
            fprintf(stderr,
                    "dbtls: warning: the admin CA was not created (it will be on first "
                    "use): %s\n",
                    dbt_errmsg());
        }
        free(admin_ca);
    }
    if (c->format == DBT_CLI_FMT_JSON) {
        o = json_pack("{sssO}", "stateDir", c->state_dir, "cas", cas);
        DBT_ENSURE(o, NOMEM, "out of memory");
        dbt_cli_print_object(c, o);
    } else {
        fprintf(stderr, "Initialized dbtls in %s (master key: %s).\n", c->state_dir,
                c->master_key_command ? "from --master-key-command" : "master.key, mode 0600");
        dbt_cli_print_list(c, cas, dbt_cli_cols_ca);
    }
out:
    rc = dbt_ok(res) ? 0 : dbt_cli_fail(res);
    free(made_conf);
    json_decref(o);
    json_decref(cas);
    return rc;
}

static int run_cas_list(struct dbt_cli *c)
{
    json_t *cas = NULL;
    dbt_res res = cas_json(c, &cas);

    if (!dbt_ok(res)) {
        return dbt_cli_fail(res);
    }
    dbt_cli_print_list(c, cas, dbt_cli_cols_ca);
    json_decref(cas);
    return 0;
}

/* A change to one CA named by the positional argument: op, then key = the id in JSON and
   "<done> <id>." for people. */
static int cas_change(struct dbt_cli *c, dbt_res (*op)(struct dbt_ctl *, const char *),
                      const char *key, const char *done)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    json_t *o = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(op(ctl, c->positional));
    o = json_pack("{ss}", key, c->positional);
    dbt_cli_print_done(c, o, "%s %s.", done, c->positional);
out:
    json_decref(o);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static int run_cas_set_default(struct dbt_cli *c)
{
    return cas_change(c, dbt_ctl_cas_set_default, "defaultCertificateForNewInstances",
                      "New instances now use");
}

/* A CA key file, refused when group or others may read it, as PostgreSQL refuses server.key. */
static dbt_res read_key_file(const char *path, char **out)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return dbt_fail(DBT_E_IO, "cannot read --key \"%s\": %s", path, strerror(errno));
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        return dbt_fail(DBT_E_PERM,
                        "--key \"%s\" has group or world access (mode %04o): a CA private key "
                        "must be readable by its owner only (chmod 600)",
                        path, (unsigned)(st.st_mode & 07777));
    }
    return dbt_cli_read_text_file("key", path, out);
}

static int run_cas_import(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    char *cert = NULL, *chain = NULL, *key = NULL;
    json_t *o = NULL;
    const char *chain_path = dbt_cli_get(c, "chain");

    DBT_TRY(dbt_cli_read_text_file("cert", dbt_cli_get(c, "cert"), &cert));
    if (chain_path) {
        DBT_TRY(dbt_cli_read_text_file("chain", chain_path, &chain));
    }
    DBT_TRY(read_key_file(dbt_cli_get(c, "key"), &key));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_cas_import(ctl, c->positional, cert, chain, key));
    o = json_pack("{ss}", "certificateIdentifier", c->positional);
    dbt_cli_print_done(c, o,
                       "Imported CA %s. Instances use it with --ca %s (shared mode); clients "
                       "trust it through your root.",
                       c->positional, c->positional);
out:
    free(cert);
    free(chain);
    if (key) {
        memset(key, 0, strlen(key)); /* the CA key is in the store now, sealed */
        free(key);
    }
    json_decref(o);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static int run_cas_renew(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    char *cert = NULL, *chain = NULL;
    json_t *o = NULL;
    const char *chain_path = dbt_cli_get(c, "chain");
    int64_t not_after = 0;
    char until[32];

    DBT_TRY(dbt_cli_read_text_file("cert", dbt_cli_get(c, "cert"), &cert));
    if (chain_path) {
        DBT_TRY(dbt_cli_read_text_file("chain", chain_path, &chain));
    }
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_cas_renew(ctl, c->positional, cert, chain, &not_after));
    dbt_time_rfc3339(not_after, until, sizeof until);
    o = json_pack("{ss,ss}", "certificateIdentifier", c->positional, "validTill", until);
    DBT_ENSURE(o, NOMEM, "out of memory");
    dbt_cli_print_done(c, o,
                       "Renewed CA %s until %s. The server certificates it issued stay valid and "
                       "are served with it; new ones may last until then.",
                       c->positional, until);
out:
    free(cert);
    free(chain);
    json_decref(o);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static int run_backup(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    const char *path = dbt_cli_get(c, "out");
    json_t *o = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_backup(ctl, path));
    o = json_pack("{ss}", "file", path);
    DBT_ENSURE(o, NOMEM, "out of memory");
    dbt_cli_print_done(c, o,
                       "Wrote a consistent copy of the store to %s (mode 0600). It holds the "
                       "sealed keys, not the master key: keep the two apart.",
                       path);
out:
    json_decref(o);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

/* A JSON array of names (NULL when out of memory). */
static json_t *names_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

static void print_names(FILE *f, const char *what, char **v, size_t n)
{
    if (n == 0) {
        return;
    }
    fprintf(f, "\n%s:", what);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s %s", i ? "," : "", v[i]);
    }
}

static int run_restore(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl_restore r = {0};
    struct dbt_ctl_opts opts = {
        .state_dir = c->state_dir,
        .master_key_command = c->master_key_command,
    };
    const char *from = dbt_cli_get(c, "from");
    const char *key_file = dbt_cli_get(c, "from-master-key");
    const char *key_cmd = dbt_cli_get(c, "from-master-key-command");
    uint8_t key[32];
    bool have_key = false;
    json_t *o = NULL;
    char when[32];

    if (key_file && key_cmd) {
        return dbt_cli_usage_error(c->cmd,
                                   "give --from-master-key or --from-master-key-command, not both");
    }
    if ((key_file && !*key_file) || (key_cmd && !*key_cmd)) {
        return dbt_cli_usage_error(c->cmd, "the copy's master key source must not be empty");
    }
    if (key_file || key_cmd) {
        res = dbt_ctl_master_key_read(key_file, key_cmd, key);
        if (!dbt_ok(res)) {
            res = dbt_fail_ctx(res,
                               "%s: ", key_cmd ? "--from-master-key-command" : "--from-master-key");
            goto out;
        }
        have_key = true;
    }
    bool dry = dbt_cli_has(c, "dry-run");
    unsigned flags =
        (dbt_cli_has(c, "force") ? DBT_CTL_RESTORE_FORCE : 0) | (dry ? DBT_CTL_RESTORE_DRY_RUN : 0);
    DBT_TRY(dbt_ctl_restore(&opts, from, have_key ? key : NULL, flags, &r));
    dbt_time_rfc3339(r.copy_last_change, when, sizeof when);
    o = json_object();
    DBT_ENSURE(o, NOMEM, "out of memory");
    dbt_cli_jset(o, "file", json_string(from));
    dbt_cli_jset(o, "copyLastChange", json_string(when));
    dbt_cli_jset(o, "instances", json_integer((json_int_t)r.instances));
    dbt_cli_jset(o, "keys", json_integer((json_int_t)r.keys));
    dbt_cli_jset(o, "clientCertsCarried", json_integer((json_int_t)r.client_certs_carried));
    dbt_cli_jset(o, "revocationsCarried", json_integer((json_int_t)r.revocations_carried));
    dbt_cli_jset(o, "adminCertsCarried", json_integer((json_int_t)r.admin_certs_carried));
    dbt_cli_jset(o, "eventsCarried", json_integer((json_int_t)r.events_carried));
    dbt_cli_jset(o, "clientCertsLost", json_integer((json_int_t)r.client_certs_lost));
    dbt_cli_jset(o, "rekeyed", json_boolean(r.rekeyed));
    dbt_cli_jset(o, "replaced", json_boolean(r.replaced));
    dbt_cli_jset(o, "instancesRemoved", names_json(r.removed, r.n_removed));
    dbt_cli_jset(o, "instancesReturned", names_json(r.returned, r.n_returned));
    dbt_cli_jset(o, "clientCaChanged", names_json(r.ca_changed, r.n_ca_changed));
    dbt_cli_jset(o, "damagedStoreMovedTo", dbt_cli_jstr(r.damaged_aside));
    dbt_cli_jset(o, "dryRun", json_boolean(dry));
    char *msg = NULL;
    size_t msg_len = 0;
    FILE *f = open_memstream(&msg, &msg_len);
    DBT_ENSURE(f, NOMEM, "out of memory");
    fprintf(f, "%s the store from %s (last change in it %s): %zu instances, %zu private keys %s.",
            dry ? "Checked a restore of" : "Restored", from, when, r.instances, r.keys,
            r.rekeyed ? "re-sealed under the current master key" : "checked");
    if (r.replaced) {
        fprintf(f,
                "\nKept from the store it replaced: %zu client certificates issued and %zu "
                "revoked since the copy, %zu admin certificate changes, %zu events of the audit "
                "trail.",
                r.client_certs_carried, r.revocations_carried, r.admin_certs_carried,
                r.events_carried);
    }
    if (r.client_certs_lost > 0) {
        fprintf(f,
                "\n%zu client certificates issued under client CAs the copy does not have "
                "(instances created or reset since) no longer work.",
                r.client_certs_lost);
    }
    print_names(f, "Instances deleted (not in the copy)", r.removed, r.n_removed);
    print_names(f, "Instances back (deleted since the copy was taken)", r.returned, r.n_returned);
    print_names(f,
                "Instances whose client CA is the copy's again (reset, or deleted and created "
                "again, since the copy)",
                r.ca_changed, r.n_ca_changed);
    if (r.damaged_aside) {
        fprintf(f, "\nThe damaged store was moved to %s.", r.damaged_aside);
    }
    if (dry) {
        fprintf(f, "\nDry run: the above is what restoring would do; nothing changed%s.",
                r.n_removed > 0 && !(flags & DBT_CTL_RESTORE_FORCE)
                    ? " (deleting those instances needs --force)"
                    : "");
    } else {
        fprintf(f, "\nA running dbtlsd serves the restored configuration within a second.");
    }
    fclose(f);
    dbt_cli_print_done(c, o, "%s", msg);
    free(msg);
out:
    memset(key, 0, sizeof key);
    json_decref(o);
    dbt_ctl_restore_cleanup(&r);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static int run_master_key_rotate(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_rekey rk;
    const char *cmd = dbt_cli_get(c, "new-master-key-command");
    json_t *o = NULL;

    if (cmd != NULL && *cmd == '\0') {
        return dbt_cli_usage_error(c->cmd, "--new-master-key-command must not be empty");
    }
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_master_key_rotate(ctl, cmd, &rk));
    o = json_pack("{sI,ss}", "keys", (json_int_t)rk.keys, "masterKey",
                  rk.to_file ? "file" : "command");
    DBT_ENSURE(o, NOMEM, "out of memory");
    if (rk.to_file) {
        dbt_cli_print_done(c, o,
                           "Re-sealed %zu private keys under a new master key in %s/master.key. "
                           "Other nodes sharing the store need this file.",
                           rk.keys, c->state_dir);
    } else {
        dbt_cli_print_done(c, o,
                           "Re-sealed %zu private keys under the key of the new command. Give "
                           "it as --master-key-command from now on (dbtls and dbtlsd).",
                           rk.keys);
    }
out:
    json_decref(o);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static int run_cas_delete(struct dbt_cli *c)
{
    return cas_change(c, dbt_ctl_cas_delete, "certificateIdentifier", "Deleted CA");
}

static int run_engines_list(struct dbt_cli *c)
{
    const char *engine = dbt_cli_get(c, "engine");
    size_t n;
    const struct dbt_engine_info *e = dbt_ctl_engines(&n);
    json_t *a = json_array();

    if (!a) {
        return dbt_cli_fail(dbt_fail(DBT_E_NOMEM, "out of memory"));
    }
    for (size_t i = 0; i < n; i++) {
        if (engine && strcmp(engine, e[i].engine) != 0) {
            continue;
        }
        json_array_append_new(a, dbt_cli_view_engine(&e[i]));
    }
    if (engine && json_array_size(a) == 0) {
        json_decref(a);
        return dbt_cli_fail(dbt_fail(
            DBT_E_NOT_FOUND, "unknown engine \"%s\": expected postgres, mysql or mariadb", engine));
    }
    dbt_cli_print_list(c, a, dbt_cli_cols_engine);
    json_decref(a);
    return 0;
}

static int run_bundle(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    const char *fmt = c->format_raw ? c->format_raw : "pem";
    const char *out_path = dbt_cli_get(c, "out");
    enum dbt_ctl_bundle_format bf = DBT_CTL_BUNDLE_PEM;
    bool json = false;
    uint8_t *data = NULL;
    size_t len = 0;
    json_t *o = NULL;

    if (strcmp(fmt, "p7b") == 0) {
        bf = DBT_CTL_BUNDLE_P7B;
    } else if (strcmp(fmt, "json") == 0) {
        json = true;
    } else if (strcmp(fmt, "pem") != 0 && strcmp(fmt, "table") != 0) {
        return dbt_cli_usage_error(c->cmd,
                                   "unknown bundle format '%s': expected pem or p7b "
                                   "(or json)",
                                   fmt);
    }
    if (json && out_path) {
        return dbt_cli_usage_error(c->cmd, "--out writes a pem or p7b file; it cannot be used "
                                           "with --format json");
    }
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_bundle(ctl, dbt_cli_get(c, "ca"), dbt_cli_get(c, "region"),
                           dbt_cli_get(c, "instance"), bf, &data, &len));
    if (json) {
        o = json_pack("{s:s?,s:s?,s:s?,s:s%}", "ca", dbt_cli_get(c, "ca"), "region",
                      dbt_cli_get(c, "region"), "instance", dbt_cli_get(c, "instance"), "pem",
                      (const char *)data, len);
        DBT_ENSURE(o, NOMEM, "out of memory");
        c->format = DBT_CLI_FMT_JSON;
        dbt_cli_print_object(c, o);
        goto out;
    }
    DBT_TRY(dbt_cli_write_file(out_path, data, len, 0644, false));
    if (out_path && strcmp(out_path, "-") != 0) {
        fprintf(stderr, "Wrote %s bundle to %s.\n", bf == DBT_CTL_BUNDLE_P7B ? "PKCS#7" : "PEM",
                out_path);
    }
out:
    json_decref(o);
    free(data);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static int run_events_list(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_event_list l = {0};
    int64_t limit = 0;
    json_t *a = NULL;

    DBT_TRY(dbt_cli_get_int(c, "limit", 1, 1000000, &limit));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_events_list(ctl, dbt_cli_get(c, "instance"), (size_t)limit, &l));
    a = json_array();
    DBT_ENSURE(a, NOMEM, "out of memory");
    for (size_t i = 0; i < l.n; i++) {
        json_array_append_new(a, dbt_cli_view_event(&l.items[i]));
    }
    dbt_cli_print_list(c, a, dbt_cli_cols_event);
out:
    json_decref(a);
    dbt_ctl_event_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

static const struct dbt_cli_opt engines_opts[] = {
    {"engine", "ENGINE", "only this engine (postgres, mysql, mariadb)", false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt bundle_opts[] = {
    {"ca", "CA_ID", "only this shared CA (e.g. dbtls-ca-ecc384-g1)", false, false},
    {"region", "REGION", "only the intermediates of this region", false, false},
    {"instance", "NAME", "the server CA certificates of one instance (all slots)", false, false},
    {"format", "FORMAT", "pem (default) or p7b (DER PKCS#7); json wraps the PEM", false, false},
    {"out", "FILE", "write to FILE instead of standard output", false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt events_opts[] = {
    {"instance", "NAME", "only events of this instance", false, false},
    {"limit", "N", "only the newest N events", false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt init_opts[] = {
    {"store", "CONNINFO",
     "keep the store in this PostgreSQL database (libpq URI or key=value; saved in "
     "store.conf) so several dbtlsd nodes can share it",
     false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt cas_renew_opts[] = {
    {"cert", "FILE", "the CA's renewed certificate (PEM): same subject and key, a later end", true,
     false},
    {"chain", "FILE", "its issuers up to the root your clients trust (PEM)", false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt backup_opts[] = {
    {"out", "FILE", "the new file to write the copy to", true, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt restore_opts[] = {
    {"from", "FILE", "the copy to restore (dbtls backup's)", true, false},
    {"from-master-key", "FILE",
     "the master key file of when the copy was taken (before a master-key rotate); its keys are "
     "re-sealed under the current one",
     false, false},
    {"from-master-key-command", "CMD", "the same, printed by CMD", false, false},
    {"force", NULL, "restore even if instances created after the copy would be deleted", false,
     false},
    {"dry-run", NULL, "check the copy and report what restoring would do; change nothing", false,
     false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt master_key_opts[] = {
    {"new-master-key-command", "CMD",
     "take the new key from CMD (as --master-key-command) instead of a new master.key; required "
     "when the current key comes from a command",
     false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_opt cas_import_opts[] = {
    {"cert", "FILE", "the CA certificate (PEM), from your own PKI", true, false},
    {"key", "FILE", "its private key (unencrypted PEM, mode 0600); stored sealed", true, false},
    {"chain", "FILE", "the CA's issuers up to the root your clients trust (PEM)", false, false},
    {NULL, NULL, NULL, false, false},
};

const struct dbt_cli_cmd dbt_cli_cmds_general[] = {
    {"init", NULL, false, "create the state directory, master key, store and the shared CAs",
     init_opts, run_init, false},
    {"backup", NULL, false,
     "write a consistent copy of the store while dbtlsd runs (SQLite; the master key stays out)",
     backup_opts, run_backup, false},
    {"restore", NULL, false,
     "put a backup copy back as the store, keeping the certificates issued and revoked since",
     restore_opts, run_restore, false},
    {"master-key rotate", NULL, false,
     "re-seal every stored private key under a new master key (one transaction)", master_key_opts,
     run_master_key_rotate, false},
    {"cas list", NULL, false, "list the shared CAs (like aws rds describe-certificates)", NULL,
     run_cas_list, false},
    {"cas set-default", "CA_ID", false, "set the shared CA of new instances", NULL,
     run_cas_set_default, false},
    {"cas import", "CA_ID", false,
     "make a CA of your own PKI a shared CA that issues server certificates", cas_import_opts,
     run_cas_import, false},
    {"cas renew", "CA_ID", false,
     "take an imported CA's renewed certificate (same key) from your PKI, no new CA",
     cas_renew_opts, run_cas_renew, false},
    {"cas delete", "CA_ID", false, "delete an imported CA no instance uses", NULL, run_cas_delete,
     false},
    {"engines list", NULL, false,
     "list supported engine versions with their TLS versions, ciphers and CAs", engines_opts,
     run_engines_list, false},
    {"bundle", NULL, false, "write the CA bundle clients trust (global, per region or instance)",
     bundle_opts, run_bundle, true},
    {"events list", NULL, false, "show the audit trail of every change", events_opts,
     run_events_list, false},
    {0},
};
