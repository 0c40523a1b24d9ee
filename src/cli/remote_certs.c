/*
 * remote_certs.c - the admin client certificates of remote mode (ctl/admin_ca.h):
 * `dbtls admin-certs create NAME --out-dir DIR` issues one from the admin CA (created on first
 * use) and writes the three files remote mode takes: admin-cert.pem, admin-key.pem (0600, the
 * only copy of the key) and admin-ca.pem (to verify the daemon's admin listener);
 * `admin-certs list` shows every one issued, revoked ones too; `admin-certs revoke NAME` cuts
 * one off (dbtlsd's admin TCP listener refuses it within about a second, no restart).
 * With --server, list and revoke go through the admin API (GET /v1/adminCerts, POST
 * /v1/adminCerts/KEY:revoke), which answers with the same JSON view, and print the same.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "admin/view.h"
#include "cli/out.h"
#include "ctl/admin_ca.h"

static int run_admin_cert_create(struct dbt_cli *c)
{
    static const char *const names[3] = {"admin-key.pem", "admin-cert.pem", "admin-ca.pem"};
    static const int modes[3] = {0600, 0644, 0644};
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    struct dbt_ctl_admin_cert ac = {0};
    const char *dir = dbt_cli_get(c, "out-dir");
    char paths[3][4096];
    int64_t validity = 0;
    struct stat st;
    json_t *o = NULL;
    bool made_dir = false;

    DBT_TRY(dbt_cli_get_int(c, "validity", 1, INT64_C(100) * 366 * 86400, &validity));
    for (int i = 0; i < 3; i++) {
        int n = snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, names[i]);
        DBT_ENSURE(n > 0 && (size_t)n < sizeof(paths[i]), INVALID, "--out-dir \"%s\" is too long",
                   dir);
        if (lstat(paths[i], &st) == 0) {
            DBT_BAIL(EXISTS,
                     "\"%s\" already exists; refusing to overwrite it (choose another "
                     "--out-dir or remove it)",
                     paths[i]);
        }
    }
    if (mkdir(dir, 0700) != 0) {
        DBT_ENSURE(errno == EEXIST, IO, "cannot create directory \"%s\": %s", dir, strerror(errno));
    } else {
        made_dir = true;
    }
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_admin_cert_create(ctl, c->positional, validity, &ac));
    const char *data[3] = {ac.key_pem, ac.cert_pem, ac.ca_pem};
    for (int i = 0; i < 3; i++) {
        DBT_TRY(dbt_cli_write_file(paths[i], data[i], strlen(data[i]), modes[i], true));
    }
    o = json_pack("{s:s,s:s,s:s,s:o,s:{s:s,s:s,s:s}}", "name", c->positional, "certSerialNumber",
                  ac.serial, "sha1Fingerprint", ac.sha1_fingerprint, "expirationTime",
                  dbt_cli_jtime(ac.expiration_time), "files", "cert", paths[1], "key", paths[0],
                  "adminCa", paths[2]);
    DBT_ENSURE(o, NOMEM, "out of memory");
    if (c->format == DBT_CLI_FMT_JSON) {
        dbt_cli_print_object(c, o);
    } else {
        printf("Created admin certificate [%s].\n  %s\n  %s (mode 0600; the only copy of the "
               "private key)\n  %s\n",
               c->positional, paths[1], paths[0], paths[2]);
        printf("Use with: dbtls --server https://HOST:PORT --admin-cert %s --admin-key %s "
               "--admin-ca %s ...\n",
               paths[1], paths[0], paths[2]);
    }
out:
    if (!dbt_ok(res) && made_dir) {
        rmdir(dir); /* nothing was written in it: leave no trace of a refused create */
    }
    json_decref(o);
    dbt_ctl_admin_cert_cleanup(&ac);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static const struct dbt_cli_col admin_cert_cols[] = {
    {"NAME", "name"},
    {"SERIAL", "certSerialNumber"},
    {"SHA1_FINGERPRINT", "sha1Fingerprint"},
    {"CREATED", "createTime"},
    {"EXPIRATION", "expirationTime"},
    {"REVOKED", "revokeTime"},
    {NULL, NULL},
};

/* The "items" of the daemon's reply to method path, taken out of it (*out: a new reference). */
static dbt_res remote_items(struct dbt_cli *c, const char *method, const char *path, json_t **out)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL;
    DBT_TRY(dbt_cli_remote_json(c, method, path, NULL, &r));
    json_t *a = json_object_get(r, "items");
    DBT_ENSURE(json_is_array(a), PROTO, "dbtlsd at %s sent a list without \"items\"", c->server);
    *out = json_incref(a);
out:
    json_decref(r);
    return res;
}

static int run_admin_cert_list(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    struct dbt_ctl_admin_cert_list l = {0};
    json_t *a = NULL;

    if (c->server) {
        DBT_TRY(remote_items(c, "GET", "/v1/adminCerts", &a));
    } else {
        DBT_TRY(dbt_cli_ctl(c, &ctl));
        DBT_TRY(dbt_ctl_admin_cert_list(ctl, &l));
        a = dbt_view_admin_cert_list(&l);
        DBT_ENSURE(a, NOMEM, "out of memory");
    }
    dbt_cli_print_list(c, a, admin_cert_cols);
out:
    json_decref(a);
    dbt_ctl_admin_cert_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

/* POST /v1/adminCerts/KEY:revoke: the certificates revoked, as the local view prints them. */
static dbt_res remote_revoke(struct dbt_cli *c, json_t **out)
{
    dbt_res res = DBT_OK;
    char *key = curl_easy_escape(NULL, c->positional, 0);
    char *path = NULL;
    DBT_ENSURE(key, NOMEM, "out of memory");
    size_t n = strlen("/v1/adminCerts/:revoke") + strlen(key) + 1;
    path = malloc(n);
    DBT_ENSURE(path, NOMEM, "out of memory");
    snprintf(path, n, "/v1/adminCerts/%s:revoke", key);
    DBT_TRY(remote_items(c, "POST", path, out));
    DBT_ENSURE(json_array_size(*out) > 0, PROTO,
               "dbtlsd at %s answered the revoke without a certificate", c->server);
out:
    curl_free(key);
    free(path);
    return res;
}

static int run_admin_cert_revoke(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    struct dbt_ctl_admin_cert_list l = {0};
    json_t *a = NULL;

    if (c->server) {
        DBT_TRY(remote_revoke(c, &a));
    } else {
        DBT_TRY(dbt_cli_ctl(c, &ctl));
        DBT_TRY(dbt_ctl_admin_cert_revoke(ctl, c->positional, &l));
        a = dbt_view_admin_cert_list(&l);
        DBT_ENSURE(a, NOMEM, "out of memory");
    }
    json_t *first = json_array_get(a, 0);
    const char *name = json_string_value(json_object_get(first, "name"));
    const char *serial = json_string_value(json_object_get(first, "certSerialNumber"));
    if (json_array_size(a) == 1) {
        dbt_cli_print_done(c, a,
                           "Revoked admin certificate [%s] (serial %s); dbtlsd refuses it from "
                           "its next reload (about a second).",
                           name ? name : "?", serial ? serial : "?");
    } else {
        dbt_cli_print_done(c, a,
                           "Revoked %zu admin certificates named [%s]; dbtlsd refuses them from "
                           "its next reload (about a second).",
                           json_array_size(a), name ? name : "?");
    }
out:
    json_decref(a);
    dbt_ctl_admin_cert_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

static const struct dbt_cli_opt admin_create_opts[] = {
    {"out-dir", "DIR", "write admin-cert.pem, admin-key.pem and admin-ca.pem here", true, false},
    {"validity", "SECONDS", "validity of the certificate (default 1 year)", false, true},
    {NULL, NULL, NULL, false, false},
};

const struct dbt_cli_cmd dbt_cli_cmds_admin[] = {
    {"admin-certs create", "NAME", false,
     "issue an admin client certificate for the daemon's admin API over TCP (--server)",
     admin_create_opts, run_admin_cert_create, false},
    {"admin-certs list", NULL, false, "list the admin client certificates, revoked ones too", NULL,
     run_admin_cert_list, false},
    {"admin-certs revoke", "NAME_OR_SHA1", false,
     "revoke an admin client certificate (the admin API over TCP refuses it)", NULL,
     run_admin_cert_revoke, false},
    {0},
};
