/*
 * cmd_instances.c - `dbtls instances create|list|describe|patch|delete|reset-ssl-config`
 * (`instances export` is in cmd_export.c; its table entry is here).
 * Options map one to one onto struct dbt_ctl_instance_spec; files named by --hba-file,
 * --ident-file and --user-require-file are read here and their text goes to the store, so the
 * daemon never depends on files outside the state directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/out.h"
#include "cli/view.h"
#include "ctl/auto.h"
#include "ctl/ctl.h"

struct spec_files {
    char *hba, *ident, *user_require, *endpoints;
};

static void spec_files_cleanup(struct spec_files *f)
{
    free(f->endpoints);
    free(f->hba);
    free(f->ident);
    free(f->user_require);
}

/* All values of a repeatable option joined with ',' (--endpoint a --endpoint b,c = "a,b,c");
 *out stays NULL when the option is absent. */
static dbt_res join_values(const struct dbt_cli *c, const char *name, char **out)
{
    size_t n = 0;
    char *s;

    for (size_t i = 0; i < c->n_values; i++) {
        if (strcmp(c->values[i].name, name) == 0) {
            n += strlen(c->values[i].value) + 1;
        }
    }
    if (n == 0) {
        return DBT_OK;
    }
    s = calloc(1, n);
    if (!s) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->n_values; i++) {
        if (strcmp(c->values[i].name, name) == 0) {
            if (s[0]) {
                strcat(s, ",");
            }
            strcat(s, c->values[i].value);
        }
    }
    *out = s;
    return DBT_OK;
}

/* Fills spec and validity from the command line (shared by create and patch). */
static dbt_res spec_from_args(struct dbt_cli *c, struct dbt_ctl_instance_spec *s,
                              struct dbt_ctl_validity *v, struct spec_files *files)
{
    dbt_res res = DBT_OK;
    int64_t max_certs = 0, validity = 0, ca_validity = 0;
    const char *p;

    s->engine = dbt_cli_get(c, "engine");
    s->engine_version = dbt_cli_get(c, "engine-version");
    s->listen = dbt_cli_get(c, "listen");
    s->backend = dbt_cli_get(c, "backend");
    s->backend_tls_ca = dbt_cli_get(c, "backend-tls-ca");
    s->backend_tls_cert = dbt_cli_get(c, "backend-tls-cert");
    s->backend_tls_key = dbt_cli_get(c, "backend-tls-key");
    s->client_info = dbt_cli_get(c, "client-info");
    DBT_TRY(join_values(c, "endpoint", &files->endpoints));
    s->endpoints = files->endpoints;
    s->region = dbt_cli_get(c, "region");
    s->ca_mode = dbt_cli_get(c, "ca-mode");
    s->ca_id = dbt_cli_get(c, "ca");
    s->ssl_mode = dbt_cli_get(c, "ssl-mode");
    s->tls_min = dbt_cli_get(c, "tls-min");
    s->tls_max = dbt_cli_get(c, "tls-max");
    s->ciphers = dbt_cli_get(c, "ciphers");
    s->ciphersuites = dbt_cli_get(c, "ciphersuites");
    s->groups = dbt_cli_get(c, "groups");
    if ((p = dbt_cli_get(c, "hba-file"))) {
        DBT_TRY(dbt_cli_read_text_file("hba-file", p, &files->hba));
        s->hba_text = files->hba;
    }
    if ((p = dbt_cli_get(c, "ident-file"))) {
        DBT_TRY(dbt_cli_read_text_file("ident-file", p, &files->ident));
        s->ident_text = files->ident;
    }
    if ((p = dbt_cli_get(c, "user-require-file"))) {
        DBT_TRY(dbt_cli_read_text_file("user-require-file", p, &files->user_require));
        s->user_require_text = files->user_require;
    }
    DBT_TRY(dbt_cli_get_int(c, "max-client-certs", 1, 1000, &max_certs));
    s->max_client_certs = (int)max_certs;
    DBT_TRY(dbt_cli_get_int(c, "validity", 1, INT64_C(100) * 366 * 86400, &validity));
    DBT_TRY(dbt_cli_get_int(c, "ca-validity", 1, INT64_C(100) * 366 * 86400, &ca_validity));
    v->leaf_secs = validity;
    v->ca_secs = ca_validity;
out:
    return res;
}

/* Prints one instance (describe view) after create/patch/describe. For people the nested
   certificates are shown without their PEM (`ssl server-ca-certs download` gives it); JSON keeps
   everything. */
static dbt_res print_instance(struct dbt_cli *c, const struct dbt_ctl_instance *inst)
{
    json_t *o = dbt_cli_view_instance(inst);

    if (!o) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    if (c->format == DBT_CLI_FMT_TABLE) {
        json_object_del(json_object_get(o, "serverCaCert"), "cert");
        json_object_del(json_object_get(o, "serverCert"), "cert");
    }
    dbt_cli_print_object(c, o);
    json_decref(o);
    return DBT_OK;
}

/* --server-cert-rotation / --rotation-lead (ctl/auto.h): *given counts the flags present. */
static dbt_res rotation_from_args(struct dbt_cli *c, const char **mode, int64_t *lead, int *given)
{
    dbt_res res = DBT_OK;
    *mode = dbt_cli_get(c, "server-cert-rotation");
    *lead = -1;
    *given = *mode != NULL;
    if (dbt_cli_get(c, "rotation-lead") != NULL) {
        DBT_TRY(dbt_cli_get_int(c, "rotation-lead", 0, DBT_CTL_MAX_ROTATION_LEAD_DAYS, lead));
        (*given)++;
    }
    DBT_TRY(dbt_ctl_rotation_check(*mode, *lead));
out:
    return res;
}

/* What create and patch read from the command line: the instance's attributes, its rule files
   and its rotation policy. */
struct instance_args {
    struct dbt_ctl_instance_spec spec;
    struct dbt_ctl_validity v;
    struct spec_files files;
    const char *rot_mode;
    int64_t rot_lead;
    int rot_given; /* rotation flags present */
};

static dbt_res instance_args_read(struct dbt_cli *c, struct instance_args *a)
{
    dbt_res res = DBT_OK;
    DBT_TRY(spec_from_args(c, &a->spec, &a->v, &a->files));
    DBT_TRY(rotation_from_args(c, &a->rot_mode, &a->rot_lead, &a->rot_given));
out:
    return res;
}

/* The sentence for people, then the instance; releases what a and inst hold. */
static int instance_done(struct dbt_cli *c, dbt_res res, const char *verb, struct instance_args *a,
                         struct dbt_ctl_instance *inst)
{
    if (dbt_ok(res)) {
        if (c->format == DBT_CLI_FMT_TABLE) {
            fprintf(stderr, "%s instance [%s].\n", verb, c->positional);
        }
        res = print_instance(c, inst);
    }
    dbt_ctl_instance_cleanup(inst);
    spec_files_cleanup(&a->files);
    return dbt_cli_finish(c, res);
}

static int run_create(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct instance_args a = {0};
    struct dbt_ctl_instance inst = {0};

    DBT_TRY(instance_args_read(c, &a));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_create(ctl, c->positional, &a.spec, &a.v, &inst));
    if (a.rot_given) {
        DBT_TRY(dbt_ctl_rotation_set(ctl, c->positional, a.rot_mode, a.rot_lead));
    }
out:
    return instance_done(c, res, "Created", &a, &inst);
}

static int run_list(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_instance_list l = {0};
    json_t *a = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_list(ctl, &l));
    a = json_array();
    DBT_ENSURE(a, NOMEM, "out of memory");
    for (size_t i = 0; i < l.n; i++) {
        json_t *o = dbt_cli_view_instance(&l.items[i]);
        DBT_ENSURE(o, NOMEM, "out of memory");
        json_array_append_new(a, o);
    }
    dbt_cli_print_list(c, a, dbt_cli_cols_instance);
out:
    json_decref(a);
    dbt_ctl_instance_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

static int run_describe(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_instance inst = {0};

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_describe(ctl, c->positional, &inst));
    DBT_TRY(print_instance(c, &inst));
out:
    dbt_ctl_instance_cleanup(&inst);
    return dbt_cli_finish(c, res);
}

static int run_patch(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct instance_args a = {0};
    struct dbt_ctl_instance inst = {0};

    if (c->n_values == 0) {
        return dbt_cli_usage_error(c->cmd, "nothing to change: give at least one option");
    }
    DBT_TRY(instance_args_read(c, &a));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    if (a.rot_given) {
        DBT_TRY(dbt_ctl_rotation_set(ctl, c->positional, a.rot_mode, a.rot_lead));
    }
    if (c->n_values > (size_t)a.rot_given) {
        DBT_TRY(dbt_ctl_instance_patch(ctl, c->positional, &a.spec, &a.v, &inst));
    } else {
        DBT_TRY(dbt_ctl_instance_describe(ctl, c->positional, &inst));
    }
out:
    return instance_done(c, res, "Patched", &a, &inst);
}

static int run_delete(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    json_t *o = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_delete(ctl, c->positional));
    o = json_pack("{sssb}", "name", c->positional, "deleted", 1);
    dbt_cli_print_done(c, o, "Deleted instance [%s].", c->positional);
out:
    json_decref(o);
    return dbt_cli_finish(c, res);
}

static int run_reset(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_validity v = {0};
    int64_t validity = 0, ca_validity = 0;
    json_t *o = NULL;

    DBT_TRY(dbt_cli_get_int(c, "validity", 1, INT64_C(100) * 366 * 86400, &validity));
    DBT_TRY(dbt_cli_get_int(c, "ca-validity", 1, INT64_C(100) * 366 * 86400, &ca_validity));
    v.leaf_secs = validity;
    v.ca_secs = ca_validity;
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_reset_ssl(ctl, c->positional, &v));
    o = json_pack("{sssb}", "name", c->positional, "sslConfigReset", 1);
    dbt_cli_print_done(c, o,
                       "Reset the SSL configuration of [%s]: new server certificate and client "
                       "CA; every client certificate was revoked. Clients need the new "
                       "server-ca.pem (dbtls ssl server-ca-certs download --instance %s).",
                       c->positional, c->positional);
out:
    json_decref(o);
    return dbt_cli_finish(c, res);
}

#define OPT_END                                                                                    \
    {                                                                                              \
        NULL, NULL, NULL, false, false                                                             \
    }
#define HIDDEN_VALIDITY                                                                            \
    {"validity", "SECONDS", "validity of issued server certificates (tests)", false, true},        \
    {                                                                                              \
        "ca-validity", "SECONDS", "validity of issued CAs (tests)", false, true                    \
    }

/* The attributes of DESIGN.md §1; create requires some, patch takes any. */
#define INSTANCE_OPTS(req)                                                                         \
    {"engine", "ENGINE", "postgres, mysql or mariadb", req, false},                                \
        {"engine-version", "V", "engine version (dbtls engines list)", false, false},              \
        {"listen", "HOST:PORT", "where dbtlsd accepts clients", req, false},                       \
        {"backend", "ADDR", "the database server: HOST:PORT or a unix socket path", req, false},   \
        {"backend-tls-ca", "FILE", "use TLS to the backend, verified against FILE", false, false}, \
        {"backend-tls-cert", "FILE", "with --backend-tls-ca: client certificate for the backend",  \
         false, false},                                                                            \
        {"backend-tls-key", "FILE", "its private key (mode 0600)", false, false},                  \
        {"client-info", "on|off",                                                                  \
         "tell the database server the client's address and TLS (dbtls.client_addr...)", false,    \
         false},                                                                                   \
        {"endpoint", "DNS[,DNS...]", "names/IPs in the server certificate (first = CN)", req,      \
         false},                                                                                   \
        {"ca-mode", "MODE", "shared (default) or per-instance", false, false},                     \
        {"ca", "CA_ID", "shared CA (dbtls cas list)", false, false},                               \
        {"ssl-mode", "MODE",                                                                       \
         "ALLOW_UNENCRYPTED_AND_ENCRYPTED, ENCRYPTED_ONLY or TRUSTED_CLIENT_CERTIFICATE_REQUIRED", \
         false, false},                                                                            \
        {"tls-min", "V", "minimum TLS version (TLSv1.2)", false, false},                           \
        {"tls-max", "V", "maximum TLS version (TLSv1.3)", false, false},                           \
        {"ciphers", "LIST", "TLS 1.2 ciphers, OpenSSL syntax", false, false},                      \
        {"ciphersuites", "LIST", "TLS 1.3 cipher suites", false, false},                           \
        {"groups", "LIST", "key exchange groups, e.g. X25519:P-256", false, false},                \
        {"hba-file", "FILE", "access rules, pg_hba.conf syntax", false, false},                    \
        {"ident-file", "FILE", "user name map, pg_ident.conf syntax", false, false},               \
        {"user-require-file", "FILE", "MySQL per-user REQUIRE rules (user=REQ lines)", false,      \
         false},                                                                                   \
        {"max-client-certs", "N", "live client certificates allowed (10)", false, false},          \
        {"server-cert-rotation", "MODE",                                                           \
         "auto (default in shared mode) or manual (default in per-instance mode)", false, false},  \
        {"rotation-lead", "DAYS", "act this long before expiry, or at half-life if earlier (90)",  \
         false, false},                                                                            \
        HIDDEN_VALIDITY

static const struct dbt_cli_opt create_opts[] = {
    INSTANCE_OPTS(true),
    {"region", "REGION", "region (selects the shared intermediate)", false, false},
    OPT_END,
};

static const struct dbt_cli_opt patch_opts[] = {
    INSTANCE_OPTS(false),
    OPT_END,
};

static const struct dbt_cli_opt reset_opts[] = {
    HIDDEN_VALIDITY,
    OPT_END,
};

const struct dbt_cli_cmd dbt_cli_cmds_instances[] = {
    {"instances create", "NAME", false, "create an instance and issue its certificates",
     create_opts, run_create, false},
    {"instances list", NULL, false, "list instances", NULL, run_list, false},
    {"instances describe", "NAME", false, "show an instance and its active certificates", NULL,
     run_describe, false},
    {"instances patch", "NAME", false, "change attributes of an instance", patch_opts, run_patch,
     false},
    {"instances delete", "NAME", false, "delete an instance with its certificates", NULL,
     run_delete, false},
    {"instances reset-ssl-config", "NAME", false,
     "new server certificate and client CA; revoke every client certificate", reset_opts, run_reset,
     false},
    {"instances export", "NAME", false,
     "write server.crt, server.key, root.crt, root.crl and the TLS lines of the server's own "
     "configuration",
     dbt_cli_export_opts, dbt_cli_run_export, false},
    {0},
};
