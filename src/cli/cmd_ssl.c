/*
 * cmd_ssl.c - `dbtls ssl server-ca-certs ...`, `dbtls ssl server-certs ...` and
 * `dbtls ssl client-certs ...`, shaped like `gcloud sql ssl`. Slot semantics live in ctl; this
 * file maps commands onto them, prints SslCert views, and writes the client's files
 * (client-cert.pem, client-key.pem 0600, server-ca.pem, client.p12) without ever overwriting one.
 * `client-certs create-ephemeral` certifies a public key the client keeps the private half of.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "cli/cmd.h"
#include "cli/out.h"
#include "cli/view.h"
#include "ctl/ctl.h"

static enum dbt_ctl_slot_kind kind_of(const struct dbt_cli *c)
{
    return strncmp(c->cmd->path, "ssl server-ca-certs", 19) == 0 ? DBT_CTL_SLOT_SERVER_CA
                                                                 : DBT_CTL_SLOT_SERVER_CERT;
}

static const char *kind_label(enum dbt_ctl_slot_kind k)
{
    return k == DBT_CTL_SLOT_SERVER_CA ? "server CA certificate" : "server certificate";
}

static dbt_res print_cert_list(struct dbt_cli *c, const struct dbt_ctl_cert_list *l,
                               const struct dbt_cli_col *cols)
{
    json_t *a = dbt_cli_view_cert_list(l);

    if (!a) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    dbt_cli_print_list(c, a, cols);
    json_decref(a);
    return DBT_OK;
}

static dbt_res validity_from_args(struct dbt_cli *c, struct dbt_ctl_validity *v)
{
    dbt_res res = DBT_OK;
    int64_t validity = 0, ca_validity = 0;

    DBT_TRY(dbt_cli_get_int(c, "validity", 1, INT64_C(100) * 366 * 86400, &validity));
    DBT_TRY(dbt_cli_get_int(c, "ca-validity", 1, INT64_C(100) * 366 * 86400, &ca_validity));
    if (kind_of(c) == DBT_CTL_SLOT_SERVER_CA) {
        /* server-ca-certs create makes a CA: --validity is the CA's. */
        v->ca_secs = validity ? validity : ca_validity;
    } else {
        v->leaf_secs = validity;
        v->ca_secs = ca_validity;
    }
out:
    return res;
}

static int run_slots_list(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_cert_list l = {0};

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_slots_list(ctl, dbt_cli_get(c, "instance"), kind_of(c), &l));
    DBT_TRY(print_cert_list(c, &l, dbt_cli_cols_cert));
out:
    dbt_ctl_cert_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

static int run_slots_create(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_validity v = {0};
    struct dbt_ctl_cert cert = {0};
    const char *inst = dbt_cli_get(c, "instance");
    json_t *o = NULL;

    DBT_TRY(validity_from_args(c, &v));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_slots_create(ctl, inst, kind_of(c), &v, &cert));
    if (c->format == DBT_CLI_FMT_TABLE && kind_of(c) == DBT_CTL_SLOT_SERVER_CA) {
        /* A new CA: clients must trust it before the rotation (Cloud SQL's advice). */
        fprintf(stderr,
                "Created the upcoming server CA of [%s]. Give clients the new server-ca.pem "
                "(dbtls ssl server-ca-certs download --instance %s), then rotate.\n",
                inst, inst);
    } else if (c->format == DBT_CLI_FMT_TABLE) {
        /* Same issuing CA as the active certificate: clients need nothing new. */
        fprintf(stderr,
                "Created the upcoming server certificate of [%s]. Rotate when ready (dbtls ssl "
                "server-certs rotate --instance %s).\n",
                inst, inst);
    }
    o = dbt_cli_view_cert(&cert);
    DBT_ENSURE(o, NOMEM, "out of memory");
    json_object_del(o, "cert");
    if (c->format == DBT_CLI_FMT_JSON) {
        json_object_set_new(o, "cert", json_string(cert.cert));
    }
    dbt_cli_print_object(c, o);
out:
    json_decref(o);
    dbt_ctl_cert_cleanup(&cert);
    return dbt_cli_finish(c, res);
}

/* rotate / rollback, then the resulting slots. */
static int run_slots_move(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_cert_list l = {0};
    const char *inst = dbt_cli_get(c, "instance");
    bool rotate = strstr(c->cmd->path, " rotate") != NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    if (rotate) {
        DBT_TRY(dbt_ctl_slots_rotate(ctl, inst, kind_of(c)));
    } else {
        DBT_TRY(dbt_ctl_slots_rollback(ctl, inst, kind_of(c)));
    }
    if (c->format == DBT_CLI_FMT_TABLE) {
        fprintf(stderr, "%s the %s of [%s]; new connections use it now, no restart needed.\n",
                rotate ? "Rotated" : "Rolled back", kind_label(kind_of(c)), inst);
    }
    DBT_TRY(dbt_ctl_slots_list(ctl, inst, kind_of(c), &l));
    DBT_TRY(print_cert_list(c, &l, dbt_cli_cols_cert));
out:
    dbt_ctl_cert_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

static int run_ca_download(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    const char *inst = dbt_cli_get(c, "instance");
    const char *out_path = dbt_cli_get(c, "out");
    char *pem = NULL;
    json_t *o = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_server_ca_download(ctl, inst, &pem));
    if (out_path) {
        DBT_TRY(dbt_cli_write_file(out_path, pem, strlen(pem), 0644, false));
        o = json_pack("{ssss}", "instance", inst, "file", out_path);
        dbt_cli_print_done(c, o, "Wrote the server CA certificates of [%s] to %s.", inst, out_path);
    } else if (c->format == DBT_CLI_FMT_JSON) {
        o = json_pack("{ssss}", "instance", inst, "pem", pem);
        DBT_ENSURE(o, NOMEM, "out of memory");
        dbt_cli_print_object(c, o);
    } else {
        DBT_TRY(dbt_cli_write_file(NULL, pem, strlen(pem), 0, false));
    }
out:
    json_decref(o);
    free(pem);
    return dbt_cli_finish(c, res);
}

/* ---- client certificates ---- */

enum { F_CERT, F_KEY, F_CA, F_P12, F_COUNT };
static const char *const client_files[F_COUNT] = {"client-cert.pem", "client-key.pem",
                                                  "server-ca.pem", "client.p12"};

static int run_client_create(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    const char *inst = dbt_cli_get(c, "instance");
    const char *dir = dbt_cli_get(c, "out-dir");
    bool p12 = dbt_cli_has(c, "pkcs12");
    int64_t validity = 0;
    struct dbt_ctl_client_cert_opts opts = {0};
    struct dbt_ctl_client_cert_new nc = {0};
    char paths[F_COUNT][4096];
    size_t nfiles = p12 ? F_COUNT : F_P12;
    bool created = false, made_dir = false, written[F_COUNT] = {false};
    const void *data[F_COUNT];
    size_t len[F_COUNT];
    static const int modes[F_COUNT] = {0644, 0600, 0644, 0600};
    json_t *o = NULL, *files = NULL;

    if (!dir) {
        dir = ".";
    }
    DBT_TRY(dbt_cli_get_int(c, "validity", 1, INT64_C(100) * 366 * 86400, &validity));
    /* a refused command leaves neither a certificate without its key nor a half-written set of
       files */
    DBT_TRY(dbt_cli_out_files_check(dir, client_files, nfiles, paths));
    opts.validity_secs = validity;
    opts.pkcs12 = p12;
    opts.p12_password = dbt_cli_get(c, "pkcs12-password");
    /* The directory first: a directory we cannot make must not cost a certificate. */
    DBT_TRY(dbt_cli_out_dir_make(dir, &made_dir));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_client_cert_create(ctl, inst, c->positional, &opts, &nc));
    created = true;
    DBT_ENSURE(!p12 || nc.p12, INTERNAL, "the PKCS#12 file of \"%s\" was not built", c->positional);
    data[F_CERT] = nc.cert.cert;
    data[F_KEY] = nc.key_pem;
    data[F_CA] = nc.server_ca_pem;
    data[F_P12] = nc.p12;
    for (size_t i = 0; i < F_P12; i++) {
        len[i] = strlen(data[i]);
    }
    len[F_P12] = nc.p12_len;
    /* The key first: if anything fails, the user has not yet been handed a certificate. */
    static const int order[F_COUNT] = {F_KEY, F_CERT, F_CA, F_P12};
    for (size_t k = 0; k < nfiles; k++) {
        int i = order[k];
        DBT_TRY(dbt_cli_write_file(paths[i], data[i], len[i], modes[i], true));
        written[i] = true;
    }
    created = false; /* delivered */

    o = dbt_cli_view_cert(&nc.cert);
    files = json_object();
    DBT_ENSURE(o && files, NOMEM, "out of memory");
    json_object_set_new(files, "cert", json_string(paths[F_CERT]));
    json_object_set_new(files, "key", json_string(paths[F_KEY]));
    json_object_set_new(files, "serverCa", json_string(paths[F_CA]));
    if (p12) {
        json_object_set_new(files, "pkcs12", json_string(paths[F_P12]));
    }
    json_object_set(o, "files", files);
    if (c->format == DBT_CLI_FMT_JSON) {
        dbt_cli_print_object(c, o);
    } else {
        printf("Created client certificate [%s] for instance [%s].\n", c->positional, inst);
        printf("  sha1Fingerprint: %s\n  expirationTime:  %s\n",
               nc.cert.sha1_fingerprint ? nc.cert.sha1_fingerprint : "-",
               json_string_value(json_object_get(o, "expirationTime")));
        printf("  %s\n  %s (mode 0600; the only copy of the private key)\n  %s\n", paths[F_CERT],
               paths[F_KEY], paths[F_CA]);
        if (p12) {
            printf("  %s (mode 0600, for Java)\n", paths[F_P12]);
        }
        printf("Connect with: sslcert=%s sslkey=%s sslrootcert=%s sslmode=verify-full\n",
               paths[F_CERT], paths[F_KEY], paths[F_CA]);
    }
out:
    if (created) {
        /* The key never reached the user: remove what was written and revoke the certificate,
           so it does not count against the limit. */
        dbt_res saved = res;
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", dbt_errmsg());
        for (size_t i = 0; i < nfiles; i++) {
            if (written[i]) { /* created by us with O_EXCL: nobody else's file */
                (void)unlink(paths[i]);
            }
        }
        if (!dbt_ok(dbt_ctl_client_cert_delete(ctl, inst, c->positional))) {
            dbt_warn("could not revoke client certificate \"%s\" after the failure: %s",
                     c->positional, dbt_errmsg());
        }
        res = dbt_fail(saved.code, "%s (the certificate was revoked again)", msg);
    }
    if (!dbt_ok(res) && made_dir) {
        (void)rmdir(dir);
    }
    json_decref(files);
    json_decref(o);
    dbt_ctl_client_cert_new_cleanup(&nc);
    return dbt_cli_finish(c, res);
}

static int run_client_ephemeral(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl = NULL;
    const char *inst = dbt_cli_get(c, "instance");
    const char *dir = dbt_cli_get(c, "out-dir") ? dbt_cli_get(c, "out-dir") : ".";
    static const char *const names[2] = {"client-cert.pem", "server-ca.pem"};
    char paths[2][4096];
    bool made_dir = false, written[2] = {false, false};
    int64_t validity = 0;
    char *pub = NULL;
    struct dbt_ctl_client_cert_new nc = {0};
    json_t *o = NULL, *files = NULL;

    DBT_TRY(dbt_cli_get_int(c, "validity", 60, DBT_CTL_EPHEMERAL_MAX_SECS, &validity));
    DBT_TRY(dbt_cli_read_text_file("public-key", dbt_cli_get(c, "public-key"), &pub));
    DBT_TRY(dbt_cli_out_files_check(dir, names, 2, paths));
    DBT_TRY(dbt_cli_out_dir_make(dir, &made_dir));
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_client_cert_ephemeral(ctl, inst, c->positional, pub, validity, &nc));
    const char *data[2] = {nc.cert.cert, nc.server_ca_pem};
    for (size_t i = 0; i < 2; i++) {
        DBT_TRY(dbt_cli_write_file(paths[i], data[i], strlen(data[i]), 0644, true));
        written[i] = true;
    }
    o = dbt_cli_view_cert(&nc.cert);
    files = json_object();
    DBT_ENSURE(o && files, NOMEM, "out of memory");
    json_object_set_new(files, "cert", json_string(paths[0]));
    json_object_set_new(files, "serverCa", json_string(paths[1]));
    json_object_set(o, "files", files);
    if (c->format == DBT_CLI_FMT_JSON) {
        dbt_cli_print_object(c, o);
    } else {
        printf("Issued an ephemeral client certificate for [%s] on instance [%s], valid until %s "
               "(not listed, not counted against the limit).\n  %s\n  %s\n",
               c->positional, inst, json_string_value(json_object_get(o, "expirationTime")),
               paths[0], paths[1]);
        printf("Connect with: sslcert=%s sslkey=<your private key> sslrootcert=%s "
               "sslmode=verify-full\n",
               paths[0], paths[1]);
    }
out:
    if (!dbt_ok(res)) {
        for (size_t i = 0; i < 2; i++) {
            if (written[i]) { /* created by us with O_EXCL */
                (void)unlink(paths[i]);
            }
        }
        if (made_dir) {
            (void)rmdir(dir);
        }
    }
    free(pub);
    json_decref(files);
    json_decref(o);
    dbt_ctl_client_cert_new_cleanup(&nc);
    return dbt_cli_finish(c, res);
}

static int run_client_list(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_cert_list l = {0};

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_client_cert_list(ctl, dbt_cli_get(c, "instance"), &l));
    DBT_TRY(print_cert_list(c, &l, dbt_cli_cols_client));
out:
    dbt_ctl_cert_list_cleanup(&l);
    return dbt_cli_finish(c, res);
}

static int run_client_describe(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_ctl_cert cert = {0};
    json_t *o = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_client_cert_describe(ctl, dbt_cli_get(c, "instance"), c->positional, &cert));
    o = dbt_cli_view_cert(&cert);
    DBT_ENSURE(o, NOMEM, "out of memory");
    dbt_cli_print_object(c, o);
out:
    json_decref(o);
    dbt_ctl_cert_cleanup(&cert);
    return dbt_cli_finish(c, res);
}

static int run_client_delete(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    const char *inst = dbt_cli_get(c, "instance");
    json_t *o = NULL;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_client_cert_delete(ctl, inst, c->positional));
    o = json_pack("{sssssb}", "instance", inst, "name", c->positional, "revoked", 1);
    dbt_cli_print_done(c, o, "Deleted client certificate [%s] of [%s]; it is revoked (CRL).",
                       c->positional, inst);
out:
    json_decref(o);
    return dbt_cli_finish(c, res);
}

#define OPT_END                                                                                    \
    {                                                                                              \
        NULL, NULL, NULL, false, false                                                             \
    }
#define OPT_INSTANCE                                                                               \
    {                                                                                              \
        "instance", "NAME", "the instance", true, false                                            \
    }
#define OPT_VALIDITY                                                                               \
    {"validity", "SECONDS", "validity of the issued certificate (tests)", false, true},            \
    {                                                                                              \
        "ca-validity", "SECONDS", "validity of an issued CA (tests)", false, true                  \
    }

static const struct dbt_cli_opt inst_opts[] = {OPT_INSTANCE, OPT_END};
static const struct dbt_cli_opt create_opts[] = {OPT_INSTANCE, OPT_VALIDITY, OPT_END};
static const struct dbt_cli_opt download_opts[] = {
    OPT_INSTANCE,
    {"out", "FILE", "write to FILE (e.g. server-ca.pem) instead of standard output", false, false},
    OPT_END,
};
static const struct dbt_cli_opt client_create_opts[] = {
    OPT_INSTANCE,
    {"out-dir", "DIR", "where to write the files (default: current directory)", false, false},
    {"pkcs12", NULL, "also write client.p12 (certificate, key and CA) for Java", false, false},
    {"pkcs12-password", "PASS", "password of client.p12 (default: empty)", false, false},
    {"validity", "SECONDS", "validity of the certificate (default 10 years)", false, true},
    OPT_END,
};
static const struct dbt_cli_opt client_ephemeral_opts[] = {
    OPT_INSTANCE,
    {"public-key", "FILE",
     "the client's public key (PEM, `openssl pkey -pubout`) or certificate request", true, false},
    {"validity", "SECONDS", "validity, 60 to 86400 (default 3600)", false, false},
    {"out-dir", "DIR", "where to write client-cert.pem and server-ca.pem (default: .)", false,
     false},
    OPT_END,
};

const struct dbt_cli_cmd dbt_cli_cmds_ssl[] = {
    {"ssl server-ca-certs list", NULL, false,
     "list the server CA certificates (previous, active, upcoming)", inst_opts, run_slots_list,
     false},
    {"ssl server-ca-certs create", NULL, false, "create an upcoming server CA (per-instance mode)",
     create_opts, run_slots_create, false},
    {"ssl server-ca-certs rotate", NULL, false, "make the upcoming server CA active", inst_opts,
     run_slots_move, false},
    {"ssl server-ca-certs rollback", NULL, false, "make the previous server CA active again",
     inst_opts, run_slots_move, false},
    {"ssl server-ca-certs download", NULL, false,
     "the CA certificates of all slots in one PEM (server-ca.pem)", download_opts, run_ca_download,
     false},
    {"ssl server-certs list", NULL, false,
     "list the server certificates (previous, active, upcoming)", inst_opts, run_slots_list, false},
    {"ssl server-certs create", NULL, false, "create an upcoming server certificate (shared mode)",
     create_opts, run_slots_create, false},
    {"ssl server-certs rotate", NULL, false, "make the upcoming server certificate active",
     inst_opts, run_slots_move, false},
    {"ssl server-certs rollback", NULL, false, "make the previous server certificate active again",
     inst_opts, run_slots_move, false},
    {"ssl client-certs create", "CERT_NAME", false,
     "issue a client certificate and write its files", client_create_opts, run_client_create,
     false},
    {"ssl client-certs create-ephemeral", "COMMON_NAME", false,
     "certify the client's own public key for a short time (the private key never leaves it)",
     client_ephemeral_opts, run_client_ephemeral, false},
    {"ssl client-certs list", NULL, false, "list the client certificates of an instance", inst_opts,
     run_client_list, false},
    {"ssl client-certs describe", "NAME_OR_SHA1", false,
     "show a client certificate (never its key)", inst_opts, run_client_describe, false},
    {"ssl client-certs delete", "NAME_OR_SHA1", false, "revoke and delete a client certificate",
     inst_opts, run_client_delete, false},
    {0},
};
