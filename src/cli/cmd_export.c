/*
 * cmd_export.c - `dbtls instances export NAME --dir DIR [--force]`: everything a database server
 * needs to terminate TLS itself with the instance's certificates, for users who do not run
 * dbtlsd in front of it. Writes server.crt (leaf + intermediates), server.key (0600), root.crt
 * (the client CA), root.crl, and the configuration lines for the engine, derived from the
 * instance's TLS policy, ssl mode and access rules:
 *   postgres: postgresql.conf.dbtls (ssl_* settings), pg_hba.conf.dbtls (the access rules with
 *             `backend` turned into scram-sha-256), pg_ident.conf.dbtls (when it has a map);
 *   mysql/mariadb: my.cnf.dbtls ([mysqld] ssl_ca/ssl_cert/ssl_key/ssl_crl, tls_version,
 *             ssl_cipher, require_secure_transport).
 * The snippets are also printed (stdout, or in the JSON of --format json).
 *
 * All or nothing: the instance is read and every target checked before anything is written;
 * files are written under temporary names, then linked into place (link() refuses an existing
 * name, so a file that appeared meanwhile is not overwritten) or, with --force, renamed over the
 * old ones. On failure only this command's own files (and the directory, when it made it) are
 * removed. docs/native-export.md describes the result for users.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "cli/cmd.h"
#include "cli/out.h"
#include "ctl/ctl.h"
#include "front/rules/hba.h"
#include "front/rules/tok.h"
#include "proto/my/myreq.h"

#define EXPORT_MAX_FILES 7

struct export_file {
    const char *name; /* in DIR */
    const char *key;  /* field of the JSON result, or NULL */
    char *text;       /* contents (owned) */
    int mode;
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    bool tmp_written; /* tmp exists and is ours */
    bool placed;      /* path is ours (linked or renamed into place) */
};

struct export
{
    const struct dbt_rt_instance *in;
    char dir[PATH_MAX]; /* absolute */
    bool force;
    struct export_file files[EXPORT_MAX_FILES];
    size_t n_files;
};

static void export_cleanup(struct export *e)
{
    for (size_t i = 0; i < e->n_files; i++) {
        if (e->files[i].text != NULL) {
            /* server.key's copy: wiped like the snapshot's (dbt_rt_config_free). */
            explicit_bzero(e->files[i].text, strlen(e->files[i].text));
            free(e->files[i].text);
        }
    }
}

/* ---- text helpers ---- */

/* A growable string on open_memstream. */
struct text {
    char *s;
    size_t len;
    FILE *f;
};

static dbt_res text_open(struct text *t)
{
    t->s = NULL;
    t->len = 0;
    t->f = open_memstream(&t->s, &t->len);
    return t->f ? DBT_OK : dbt_fail(DBT_E_NOMEM, "out of memory");
}

/* Closes the stream and hands its string to *out (free()); frees it on a write error. */
static dbt_res text_close(struct text *t, char **out)
{
    bool bad = ferror(t->f) != 0;
    if (fclose(t->f) != 0) {
        bad = true;
    }
    t->f = NULL;
    if (bad) {
        free(t->s);
        t->s = NULL;
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    *out = t->s;
    t->s = NULL;
    return DBT_OK;
}

static void text_abandon(struct text *t)
{
    if (t->f) {
        fclose(t->f);
        t->f = NULL;
    }
    free(t->s);
    t->s = NULL;
}

/* A string in single quotes with ' doubled and \ escaped: a postgresql.conf string value
   (GUC_scanstr) and a MySQL string literal are both written this way. */
static void sq_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') {
            fputs("''", f);
        } else if (*s == '\\') {
            fputs("\\\\", f);
        } else {
            fputc(*s, f);
        }
    }
    fputc('\'', f);
}

/* A my.cnf value: bare when it has no blank, quote, '#' or backslash, else double-quoted with
   \" and \\ escaped (MySQL "Using Option Files": quotes and escape sequences). */
static void my_quote(FILE *f, const char *s)
{
    if (strpbrk(s, " \t\"'#\\;") == NULL && s[0] != '\0') {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
}

/* One `name = value` line of a server option file, the value quoted the file's way. */
static void setting(FILE *f, const char *name, void (*quote)(FILE *, const char *),
                    const char *value)
{
    fprintf(f, "%s = ", name);
    quote(f, value);
    fputc('\n', f);
}

static const char *ssl_mode_name(enum dbt_ssl_mode m)
{
    switch (m) {
    case DBT_SSL_MODE_ENCRYPTED_ONLY:
        return "ENCRYPTED_ONLY";
    case DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED:
        return "TRUSTED_CLIENT_CERTIFICATE_REQUIRED";
    case DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED:
    default:
        return "ALLOW_UNENCRYPTED_AND_ENCRYPTED";
    }
}

static const struct export_file *file_named(const struct export *e, const char *name)
{
    for (size_t i = 0; i < e->n_files; i++) {
        if (strcmp(e->files[i].name, name) == 0) {
            return &e->files[i];
        }
    }
    return NULL;
}

/* The reminder that root.crl expires: past its nextUpdate OpenSSL fails every client
   certificate with "CRL has expired", in PostgreSQL and MySQL alike. */
static void crl_note(FILE *f, const struct dbt_rt_instance *in, const char *reload)
{
    char t[32];
    if (in->crl_next_update <= 0) {
        return;
    }
    dbt_time_rfc3339(in->crl_next_update, t, sizeof(t));
    fprintf(f,
            "# root.crl is valid until %s: export again with --force and %s before then\n"
            "# (and after deleting a client certificate).\n",
            t, reload);
}

/* ---- PostgreSQL ---- */

static dbt_res pg_conf(const struct export *e, char **out)
{
    const struct dbt_rt_instance *in = e->in;
    static const char *const keys[][2] = {{"ssl_cert_file", "server.crt"},
                                          {"ssl_key_file", "server.key"},
                                          {"ssl_ca_file", "root.crt"},
                                          {"ssl_crl_file", "root.crl"}};
    struct text t;
    dbt_res res = text_open(&t);
    if (!dbt_ok(res)) {
        return res;
    }
    fprintf(t.f,
            "# dbtls: native TLS for instance \"%s\" (PostgreSQL %s), from `dbtls instances "
            "export`.\n"
            "# Append to postgresql.conf (later lines win), then reload: SELECT "
            "pg_reload_conf();\n",
            in->name, in->engine_version ? in->engine_version : "");
    crl_note(t.f, in, "reload");
    fputs("ssl = on\n", t.f);
    for (size_t i = 0; i < DBT_ARRAY_LEN(keys); i++) {
        setting(t.f, keys[i][0], sq_quote, file_named(e, keys[i][1])->path);
    }
    if (in->tls_min) {
        setting(t.f, "ssl_min_protocol_version", sq_quote, in->tls_min);
    }
    if (in->tls_max) {
        setting(t.f, "ssl_max_protocol_version", sq_quote, in->tls_max);
    }
    if (in->ciphers) {
        setting(t.f, "ssl_ciphers", sq_quote, in->ciphers);
    }
    if (in->ciphersuites) {
        fprintf(t.f,
                "# TLS 1.3 suites \"%s\": PostgreSQL has no setting for them (OpenSSL's "
                "defaults apply).\n",
                in->ciphersuites);
    }
    if (in->groups) {
        fprintf(t.f,
                "# groups \"%s\": PostgreSQL before 18 takes one curve in ssl_ecdh_curve "
                "(default prime256v1), not a list.\n",
                in->groups);
    }
    return text_close(&t, out);
}

static const char *hba_method_word(enum dbt_hba_method m)
{
    switch (m) {
    case DBT_HBA_METHOD_BACKEND:
        return "backend";
    case DBT_HBA_METHOD_TRUST:
        return "trust";
    case DBT_HBA_METHOD_CERT:
        return "cert";
    case DBT_HBA_METHOD_REJECT:
    default:
        return "reject";
    }
}

/* Writes one field (comma-separated tokens, quoted as written) to f. */
static dbt_res put_field(FILE *f, const struct dbt_tok_field *fl)
{
    dbt_res res = DBT_OK;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    for (size_t i = 0; i < fl->n; i++) {
        if (i > 0) {
            DBT_TRY(dbt_rules_printf(&b, ","));
        }
        DBT_TRY(dbt_tok_dump(&b, &fl->toks[i]));
    }
    fwrite(dbt_buf_head(&b), 1, dbt_buf_avail(&b), f);
out:
    dbt_buf_cleanup(&b);
    return res;
}

/*
 * The instance's own access rules as real pg_hba.conf records: parsed with the front's parser
 * (so they are exactly the rules dbtlsd applies; a bad text fails with PostgreSQL's message),
 * tokenized again to copy every field as written, with the method `backend` (the database
 * server authenticates) replaced by scram-sha-256.
 */
static dbt_res pg_hba_custom(FILE *f, const char *text)
{
    dbt_res res = DBT_OK;
    struct dbt_hba *hba = NULL;
    struct dbt_tok_file tf = {0};
    size_t len = strlen(text);

    DBT_TRY(dbt_hba_parse(text, len, "access rules", &hba));
    DBT_TRY(dbt_tok_file(text, len, &tf));
    DBT_ENSURE(tf.n == dbt_hba_count(hba), INTERNAL,
               "access rules: %zu records tokenized but %zu parsed", tf.n, dbt_hba_count(hba));
    fputs("# The instance's access rules (--hba-file), translated: `backend` -> scram-sha-256.\n",
          f);
    for (size_t i = 0; i < tf.n; i++) {
        const struct dbt_tok_line *l = &tf.lines[i];
        const struct dbt_hba_rule *r = dbt_hba_rule_at(hba, i);
        const char *mw = hba_method_word(r->method);
        size_t mi = 0;
        /* TYPE DATABASE USER ADDRESS [MASK] METHOD: the method is the first field from the
           fifth on that is the rule's method keyword (an address or mask never is). */
        for (size_t k = 4; k < l->n; k++) {
            if (l->fields[k].n == 1 && dbt_tok_is_keyword(&l->fields[k].toks[0], mw)) {
                mi = k;
                break;
            }
        }
        DBT_ENSURE(mi != 0, INTERNAL, "access rules line %d: method \"%s\" not found", l->line, mw);
        for (size_t k = 0; k < l->n; k++) {
            if (k > 0) {
                fputc('\t', f);
            }
            if (k == mi && r->method == DBT_HBA_METHOD_BACKEND) {
                fputs("scram-sha-256", f);
            } else {
                DBT_TRY(put_field(f, &l->fields[k]));
            }
        }
        fputc('\n', f);
    }
out:
    dbt_tok_file_free(&tf);
    dbt_hba_free(hba);
    return res;
}

static dbt_res pg_hba(const struct export *e, char **out)
{
    const struct dbt_rt_instance *in = e->in;
    struct text t;
    dbt_res res = text_open(&t);
    if (!dbt_ok(res)) {
        return res;
    }
    fprintf(t.f,
            "# dbtls: access rules for instance \"%s\" (ssl mode %s), from `dbtls instances "
            "export`.\n"
            "# Put these records in pg_hba.conf in place of its host* records (keep your "
            "`local` ones;\n"
            "# the first matching record wins), then reload: SELECT pg_reload_conf();\n",
            in->name, ssl_mode_name(in->ssl_mode));
    if (in->hba_text != NULL) {
        res = pg_hba_custom(t.f, in->hba_text);
        if (!dbt_ok(res)) {
            text_abandon(&t);
            return dbt_fail_ctx(res, "instance \"%s\": ", in->name);
        }
    } else {
        switch (in->ssl_mode) {
        /* `all` never matches physical replication: a `replication` record beside each, as
         * dbtlsd's own rules for the mode have */
        case DBT_SSL_MODE_ENCRYPTED_ONLY:
            fputs("hostssl\tall\tall\tall\tscram-sha-256\n"
                  "hostssl\treplication\tall\tall\tscram-sha-256\n"
                  "hostnossl\tall\tall\tall\treject\n"
                  "hostnossl\treplication\tall\tall\treject\n",
                  t.f);
            break;
        case DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED:
            fputs("# A client certificate signed by root.crt (and not in root.crl), plus the "
                  "password.\n"
                  "hostssl\tall\tall\tall\tscram-sha-256\tclientcert=verify-ca\n"
                  "hostssl\treplication\tall\tall\tscram-sha-256\tclientcert=verify-ca\n"
                  "hostnossl\tall\tall\tall\treject\n"
                  "hostnossl\treplication\tall\tall\treject\n",
                  t.f);
            break;
        case DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED:
        default:
            fputs("host\tall\tall\tall\tscram-sha-256\n"
                  "host\treplication\tall\tall\tscram-sha-256\n",
                  t.f);
            break;
        }
    }
    return text_close(&t, out);
}

static dbt_res pg_ident(const struct export *e, char **out)
{
    struct text t;
    dbt_res res = text_open(&t);
    if (!dbt_ok(res)) {
        return res;
    }
    fprintf(t.f,
            "# dbtls: user name map of instance \"%s\" (--ident-file), for the map= options "
            "in pg_hba.conf.dbtls.\n"
            "# Add to pg_ident.conf, then reload.\n",
            e->in->name);
    fputs(e->in->ident_text, t.f);
    if (e->in->ident_text[0] && e->in->ident_text[strlen(e->in->ident_text) - 1] != '\n') {
        fputc('\n', t.f);
    }
    return text_close(&t, out);
}

/* ---- MySQL / MariaDB ---- */

/* "TLSv1.2,TLSv1.3": every version from tls_min to tls_max (MySQL's tls_version list). */
static void my_tls_versions(FILE *f, const char *min, const char *max)
{
    static const char *const v[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
    size_t lo = 2, hi = 3;
    for (size_t i = 0; i < DBT_ARRAY_LEN(v); i++) {
        if (min && strcmp(min, v[i]) == 0) {
            lo = i;
        }
        if (max && strcmp(max, v[i]) == 0) {
            hi = i;
        }
    }
    for (size_t i = lo; i <= hi; i++) {
        fprintf(f, "%s%s", i > lo ? "," : "", v[i]);
    }
}

/*
 * The per-user REQUIRE rules as the ALTER USER statements that give the server the same rules
 * (parsed with the front's parser, so a bad text fails as dbtlsd would). The front applies the
 * first rule whose account matches; the server matches its accounts by its own order, which
 * is the same when the accounts do not overlap.
 */
static dbt_res my_user_requires(FILE *f, const char *text)
{
    static const char *const kind[] = {"NONE", "SSL", "X509"};
    struct dbt_my_reqs reqs = {0};
    dbt_res res = dbt_my_reqs_parse(text, &reqs);
    if (!dbt_ok(res)) {
        return dbt_fail_ctx(res, "per-user REQUIRE rules: ");
    }
    fputs("# Per-user REQUIRE rules of the instance; run these statements on the server:\n", f);
    for (size_t i = 0; i < reqs.n; i++) {
        const struct dbt_my_req *r = &reqs.v[i];
        fputs("#   ALTER USER ", f);
        sq_quote(f, r->user);
        fputc('@', f);
        sq_quote(f, r->host);
        fputs(" REQUIRE", f);
        if (r->type != DBT_MY_REQ_SPECIFIED) {
            fprintf(f, " %s", kind[r->type]);
        } else {
            const char *sep = " ";
            if (r->subject) {
                fprintf(f, "%sSUBJECT ", sep);
                sq_quote(f, r->subject);
                sep = " AND ";
            }
            if (r->issuer) {
                fprintf(f, "%sISSUER ", sep);
                sq_quote(f, r->issuer);
                sep = " AND ";
            }
            if (r->cipher) {
                fprintf(f, "%sCIPHER ", sep);
                sq_quote(f, r->cipher);
            }
        }
        fputs(";\n", f);
    }
    dbt_my_reqs_free(&reqs);
    return DBT_OK;
}

static dbt_res my_cnf(const struct export *e, char **out)
{
    const struct dbt_rt_instance *in = e->in;
    bool mariadb = strcmp(in->engine, "mariadb") == 0;
    static const char *const keys[][2] = {{"ssl_ca", "root.crt"},
                                          {"ssl_cert", "server.crt"},
                                          {"ssl_key", "server.key"},
                                          {"ssl_crl", "root.crl"}};
    struct text t;
    dbt_res res = text_open(&t);
    if (!dbt_ok(res)) {
        return res;
    }
    fprintf(t.f,
            "# dbtls: native TLS for instance \"%s\" (%s %s, ssl mode %s), from `dbtls "
            "instances export`.\n"
            "# Add to the server's option file (e.g. /etc/mysql/conf.d/dbtls.cnf), then "
            "restart the server.\n",
            in->name, mariadb ? "MariaDB" : "MySQL", in->engine_version ? in->engine_version : "",
            ssl_mode_name(in->ssl_mode));
    crl_note(t.f, in, "restart the server");
    fputs("[mysqld]\n", t.f);
    for (size_t i = 0; i < DBT_ARRAY_LEN(keys); i++) {
        setting(t.f, keys[i][0], my_quote, file_named(e, keys[i][1])->path);
    }
    fputs("tls_version = ", t.f);
    my_tls_versions(t.f, in->tls_min, in->tls_max);
    fputc('\n', t.f);
    if (in->ciphers || (mariadb && in->ciphersuites)) {
        /* MariaDB has one setting for both: it hands ssl_cipher to OpenSSL as the TLS 1.2
           cipher list and as the TLS 1.3 suites, each taking the names it knows. */
        char list[4096];
        snprintf(list, sizeof(list), "%s%s%s", in->ciphers ? in->ciphers : "",
                 mariadb && in->ciphersuites && in->ciphers ? ":" : "",
                 mariadb && in->ciphersuites ? in->ciphersuites : "");
        setting(t.f, "ssl_cipher", my_quote, list);
    }
    if (!mariadb && in->ciphersuites) {
        setting(t.f, "tls_ciphersuites", my_quote, in->ciphersuites);
    }
    if (in->groups) {
        fprintf(t.f,
                "# groups \"%s\": %s has no setting for the key exchange groups (OpenSSL's "
                "defaults apply).\n",
                in->groups, mariadb ? "MariaDB" : "MySQL");
    }
    fprintf(t.f, "require_secure_transport = %s\n",
            in->ssl_mode == DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED ? "OFF" : "ON");
    if (in->ssl_mode == DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED) {
        fputs("# TRUSTED_CLIENT_CERTIFICATE_REQUIRED has no server-wide setting: give every "
              "account\n"
              "#   ALTER USER 'name'@'host' REQUIRE X509;\n"
              "# (a certificate signed by ssl_ca and not revoked in ssl_crl).\n",
              t.f);
    }
    if (in->user_require_text != NULL) {
        res = my_user_requires(t.f, in->user_require_text);
        if (!dbt_ok(res)) {
            text_abandon(&t);
            return dbt_fail_ctx(res, "instance \"%s\": ", in->name);
        }
    }
    return text_close(&t, out);
}

/* ---- files ---- */

static void add_file(struct export *e, const char *name, const char *key, char *text, int mode)
{
    struct export_file *f = &e->files[e->n_files++];
    f->name = name;
    f->key = key;
    f->text = text;
    f->mode = mode;
}

static dbt_res dup_text(const char *s, const char *what, const char *inst, char **out)
{
    if (s == NULL) {
        return dbt_fail(DBT_E_INTERNAL, "export of \"%s\" lacks %s", inst, what);
    }
    *out = strdup(s);
    return *out ? DBT_OK : dbt_fail(DBT_E_NOMEM, "out of memory");
}

/* The absolute form of dir, which may not exist yet (then only its parent must). */
static dbt_res absolute_dir(const char *dir, char out[PATH_MAX], bool *exists)
{
    struct stat st;
    char cwd[PATH_MAX];

    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            return dbt_fail(DBT_E_INVALID, "--dir \"%s\" is not a directory", dir);
        }
        *exists = true;
        if (realpath(dir, out) == NULL) {
            return dbt_fail(DBT_E_IO, "cannot resolve --dir \"%s\": %s", dir, strerror(errno));
        }
        return DBT_OK;
    }
    if (errno != ENOENT) {
        return dbt_fail(DBT_E_IO, "cannot check --dir \"%s\": %s", dir, strerror(errno));
    }
    *exists = false;
    int n;
    if (dir[0] == '/') {
        n = snprintf(out, PATH_MAX, "%s", dir);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            return dbt_fail(DBT_E_IO, "cannot get the current directory: %s", strerror(errno));
        }
        n = snprintf(out, PATH_MAX, "%s/%s", cwd, dir);
    }
    if (n < 0 || n >= PATH_MAX) {
        return dbt_fail(DBT_E_INVALID, "--dir \"%s\" is too long", dir);
    }
    /* Without a trailing slash: the paths in the snippets read DIR/server.crt. */
    while (n > 1 && out[n - 1] == '/') {
        out[--n] = '\0';
    }
    return DBT_OK;
}

static dbt_res set_paths(struct export *e)
{
    for (size_t i = 0; i < e->n_files; i++) {
        struct export_file *f = &e->files[i];
        int n = snprintf(f->path, sizeof(f->path), "%s/%s", e->dir, f->name);
        int m = snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.dbtls-tmp-%ld", e->dir, f->name,
                         (long)getpid());
        if (n < 0 || n >= (int)sizeof(f->path) || m < 0 || m >= (int)sizeof(f->tmp)) {
            return dbt_fail(DBT_E_INVALID, "--dir \"%s\" is too long", e->dir);
        }
    }
    return DBT_OK;
}

/* Fails with EXISTS when a target exists and --force is not given (before anything is written). */
static dbt_res check_targets(const struct export *e)
{
    struct stat st;
    for (size_t i = 0; i < e->n_files; i++) {
        const char *p = e->files[i].path;
        if (lstat(p, &st) == 0) {
            if (!e->force) {
                return dbt_fail(DBT_E_EXISTS,
                                "\"%s\" already exists; refusing to overwrite it (--force "
                                "replaces it)",
                                p);
            }
            if (S_ISDIR(st.st_mode)) {
                return dbt_fail(DBT_E_EXISTS, "\"%s\" is a directory; cannot replace it", p);
            }
        } else if (errno != ENOENT) {
            return dbt_fail(DBT_E_IO, "cannot check \"%s\": %s", p, strerror(errno));
        }
    }
    return DBT_OK;
}

/* Writes every file under its temporary name, then puts them all in place. */
static dbt_res write_files(struct export *e)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < e->n_files; i++) {
        struct export_file *f = &e->files[i];
        (void)unlink(f->tmp); /* a leftover of a crashed run with our pid */
        DBT_TRY(dbt_cli_write_file(f->tmp, f->text, strlen(f->text), f->mode, true));
        f->tmp_written = true;
    }
    for (size_t i = 0; i < e->n_files; i++) {
        struct export_file *f = &e->files[i];
        if (e->force) {
            DBT_ENSURE(rename(f->tmp, f->path) == 0, IO, "cannot write \"%s\": %s", f->path,
                       strerror(errno));
            f->tmp_written = false;
        } else {
            if (link(f->tmp, f->path) != 0) {
                DBT_ENSURE(errno != EEXIST, EXISTS,
                           "\"%s\" already exists; refusing to overwrite it (--force replaces "
                           "it)",
                           f->path);
                DBT_BAIL(IO, "cannot write \"%s\": %s", f->path, strerror(errno));
            }
            (void)unlink(f->tmp);
            f->tmp_written = false;
        }
        f->placed = true;
    }
out:
    return res;
}

static void remove_ours(struct export *e)
{
    for (size_t i = 0; i < e->n_files; i++) {
        struct export_file *f = &e->files[i];
        if (f->tmp_written) {
            (void)unlink(f->tmp);
        }
        /* A replaced file (--force) cannot be brought back; a new one is removed. */
        if (f->placed && !e->force) {
            (void)unlink(f->path);
        }
    }
}

static json_t *result_json(const struct export *e)
{
    json_t *o = json_object();
    json_t *files = json_array();
    json_t *snippets = json_object();
    if (!o || !files || !snippets) {
        json_decref(o);
        json_decref(files);
        json_decref(snippets);
        return NULL;
    }
    dbt_cli_jset(o, "instance", dbt_cli_jstr(e->in->name));
    dbt_cli_jset(o, "engine", dbt_cli_jstr(e->in->engine));
    dbt_cli_jset(o, "sslMode", dbt_cli_jstr(ssl_mode_name(e->in->ssl_mode)));
    dbt_cli_jset(o, "dir", dbt_cli_jstr(e->dir));
    dbt_cli_jset(o, "crlNextUpdate", dbt_cli_jtime(e->in->crl_next_update));
    for (size_t i = 0; i < e->n_files; i++) {
        const struct export_file *f = &e->files[i];
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)f->mode);
        json_array_append_new(
            files, json_pack("{ss ss ss}", "name", f->name, "path", f->path, "mode", mode));
        if (f->key != NULL) {
            dbt_cli_jset(o, f->key, dbt_cli_jstr(f->path));
        }
        if (strstr(f->name, ".dbtls") != NULL) {
            /* "postgresql.conf.dbtls" -> snippet for "postgresql.conf" */
            char target[64];
            snprintf(target, sizeof(target), "%.*s", (int)(strlen(f->name) - strlen(".dbtls")),
                     f->name);
            dbt_cli_jset(snippets, target, dbt_cli_jstr(f->text));
        }
    }
    dbt_cli_jset(o, "files", files);
    dbt_cli_jset(o, "snippets", snippets);
    return o;
}

int dbt_cli_run_export(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct dbt_rt_config *cfg = NULL;
    struct export e = {0};
    const char *dir = dbt_cli_get(c, "dir");
    bool exists = false, made_dir = false;
    json_t *o = NULL;

    e.force = dbt_cli_has(c, "force");
    DBT_ENSURE(dir[0] != '\0', USAGE, "--dir must not be empty");
    for (const char *p = dir; *p; p++) {
        DBT_ENSURE((unsigned char)*p >= 0x20 && *p != 0x7f, INVALID,
                   "--dir contains a control character, which the configuration files cannot "
                   "name");
    }
    /* 1. Read: an unknown instance fails here, before anything exists on disk. */
    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(dbt_ctl_instance_export(ctl, c->positional, &cfg));
    DBT_ENSURE(cfg->n_instances == 1, INTERNAL, "export of \"%s\" returned %zu instances",
               c->positional, cfg->n_instances);
    e.in = &cfg->instances[0];

    /* 2. The files, their paths, and the check that none exists (unless --force). */
    DBT_TRY(absolute_dir(dir, e.dir, &exists));
    {
        const struct dbt_rt_instance *in = e.in;
        char *t = NULL;
        DBT_TRY(dup_text(in->cert_chain_pem, "server.crt", in->name, &t));
        add_file(&e, "server.crt", "serverCert", t, 0644);
        DBT_TRY(dup_text(in->key_pem, "server.key", in->name, &t));
        add_file(&e, "server.key", "serverKey", t, 0600);
        DBT_TRY(dup_text(in->client_ca_pem, "root.crt", in->name, &t));
        add_file(&e, "root.crt", "rootCert", t, 0644);
        DBT_TRY(dup_text(in->crl_pem, "root.crl", in->name, &t));
        add_file(&e, "root.crl", "rootCrl", t, 0644);
        bool pg = strcmp(in->engine, "postgres") == 0;
        if (pg) {
            add_file(&e, "postgresql.conf.dbtls", NULL, NULL, 0644);
            add_file(&e, "pg_hba.conf.dbtls", NULL, NULL, 0644);
            if (in->ident_text != NULL) {
                add_file(&e, "pg_ident.conf.dbtls", NULL, NULL, 0644);
            }
        } else {
            add_file(&e, "my.cnf.dbtls", NULL, NULL, 0644);
        }
        DBT_TRY(set_paths(&e));
        if (pg) {
            DBT_TRY(pg_conf(&e, &e.files[4].text));
            DBT_TRY(pg_hba(&e, &e.files[5].text));
            if (in->ident_text != NULL) {
                DBT_TRY(pg_ident(&e, &e.files[6].text));
            }
        } else {
            DBT_TRY(my_cnf(&e, &e.files[4].text));
        }
    }
    if (exists) {
        DBT_TRY(check_targets(&e));
    }

    /* 3. Write. */
    if (!exists) {
        DBT_ENSURE(mkdir(e.dir, 0700) == 0, IO, "cannot create directory \"%s\": %s", e.dir,
                   strerror(errno));
        made_dir = true;
    }
    DBT_TRY(write_files(&e));

    o = result_json(&e);
    DBT_ENSURE(o != NULL, NOMEM, "out of memory");
    if (c->format != DBT_CLI_FMT_JSON) {
        for (size_t i = 4; i < e.n_files; i++) {
            printf("%s# ---- %s\n%s", i > 4 ? "\n" : "", e.files[i].path, e.files[i].text);
        }
        fflush(stdout);
    }
    dbt_cli_print_done(c, o, "Wrote %s: server.crt, server.key (0600), root.crt, root.crl and %s.",
                       e.dir,
                       e.n_files > 5 ? "the postgresql.conf / pg_hba.conf lines printed above"
                                     : "the my.cnf lines printed above");
out:
    if (!dbt_ok(res)) {
        remove_ours(&e);
        if (made_dir) {
            (void)rmdir(e.dir);
        }
    }
    json_decref(o);
    export_cleanup(&e);
    dbt_rt_config_free(cfg);
    return dbt_cli_finish(c, res);
}

const struct dbt_cli_opt dbt_cli_export_opts[] = {
    {"dir", "DIR", "directory for the files (created 0700 when missing)", true, false},
    {"force", NULL, "replace files that already exist", false, false},
    {NULL, NULL, NULL, false, false},
};
