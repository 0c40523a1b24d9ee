/*
 * remote.c - `dbtls --server https://host:port --admin-cert F --admin-key F --admin-ca F <cmd>`:
 * runs a command through the admin API of a remote dbtlsd (libcurl, mutual TLS) instead of on
 * the local store. The API answers with the same JSON views the local commands print
 * (src/admin/view.c), so each remote handler only maps its options onto a request and prints
 * the reply with the same columns and sentences as the local handler. Commands without a remote
 * form (init, instances export, PKCS#12 output, ...) are refused as usage errors.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cmd.h"
#include "cli/out.h"
#include "ctl/ctl.h"
#include "pki/pki.h"

#define REMOTE_REPLY_MAX (64u << 20)

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct dbt_buf *b = userdata;
    size_t n = size * nmemb;
    return dbt_ok(dbt_buf_append(b, ptr, n)) ? n : 0;
}

/*
 * One request. body (may be NULL) is sent as JSON. A 2xx reply leaves its bytes in *reply; any
 * other status is turned into the API's own error message (the control library's, as the local
 * command would print it) with a code that follows the HTTP status.
 */
static dbt_res request(const struct dbt_cli *c, const char *method, const char *path, json_t *body,
                       struct dbt_buf *reply)
{
    dbt_res res = DBT_OK;
    char errbuf[CURL_ERROR_SIZE] = "";
    char *url = NULL, *text = NULL;
    struct curl_slist *hdrs = NULL;
    long status = 0;
    CURL *h = NULL;

    DBT_ENSURE(strncmp(c->server, "https://", 8) == 0, USAGE,
               "--server must be an https:// URL (the admin API has no plaintext TCP): \"%s\"",
               c->server);
    DBT_ENSURE(c->admin_cert && c->admin_key && c->admin_ca, USAGE,
               "--server needs --admin-cert, --admin-key and --admin-ca (dbtls admin-certs "
               "create NAME --out-dir DIR writes them)");
    DBT_ENSURE(curl_global_init(CURL_GLOBAL_DEFAULT) == 0, INTERNAL, "cannot initialise libcurl");
    h = curl_easy_init();
    DBT_ENSURE(h, NOMEM, "cannot initialise libcurl");
    size_t n = strlen(c->server) + strlen(path) + 1;
    url = malloc(n);
    DBT_ENSURE(url, NOMEM, "out of memory");
    snprintf(url, n, "%s%s", c->server, path);
    /* "https://h:p/" + "/v1/..." would give "//v1": drop a trailing slash of --server. */
    size_t sl = strlen(c->server);
    if (sl > 8 && c->server[sl - 1] == '/') {
        memmove(url + sl - 1, url + sl, strlen(url + sl) + 1);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_SSLCERT, c->admin_cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, c->admin_key);
    curl_easy_setopt(h, CURLOPT_CAINFO, c->admin_ca);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        DBT_ENSURE(text, NOMEM, "out of memory");
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    }
    CURLcode cc = curl_easy_perform(h);
    DBT_ENSURE(cc == CURLE_OK, IO, "cannot reach dbtlsd at %s: %s", c->server,
               errbuf[0] ? errbuf : curl_easy_strerror(cc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        json_error_t jerr;
        json_t *e = json_loadb((const char *)reply->data, reply->len, 0, &jerr);
        const char *msg =
            json_string_value(json_object_get(json_object_get(e, "error"), "message"));
        enum dbt_err code = status == 404                    ? DBT_E_NOT_FOUND
                            : status == 400                  ? DBT_E_INVALID
                            : status == 409                  ? DBT_E_STATE
                            : status == 429                  ? DBT_E_LIMIT
                            : status == 401 || status == 403 ? DBT_E_PERM
                                                             : DBT_E_IO;
        if (msg) {
            res = dbt_fail(code, "%s", msg);
        } else {
            res = dbt_fail(DBT_E_PROTO, "dbtlsd at %s answered HTTP %ld to %s %s", c->server,
                           status, method, path);
        }
        json_decref(e);
    }
out:
    curl_slist_free_all(hdrs);
    if (h) {
        curl_easy_cleanup(h);
    }
    free(url);
    free(text);
    return res;
}

static dbt_res request_json(const struct dbt_cli *c, const char *method, const char *path,
                            json_t *body, json_t **out)
{
    dbt_res res = DBT_OK;
    struct dbt_buf b;
    json_error_t jerr;
    dbt_buf_init(&b, REMOTE_REPLY_MAX);
    DBT_TRY(request(c, method, path, body, &b));
    *out = json_loadb((const char *)b.data, b.len, 0, &jerr);
    DBT_ENSURE(*out, PROTO, "dbtlsd at %s sent a reply that is not JSON: %s", c->server, jerr.text);
out:
    dbt_buf_cleanup(&b);
    return res;
}

dbt_res dbt_cli_remote_get_json(const struct dbt_cli *c, const char *path, json_t **out)
{
    return request_json(c, "GET", path, NULL, out);
}

dbt_res dbt_cli_remote_json(const struct dbt_cli *c, const char *method, const char *path,
                            json_t *body, json_t **out)
{
    return request_json(c, method, path, body, out);
}

/* A path segment, percent-encoded (client certificate names may hold spaces). */
static char *seg(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = e ? strdup(e) : NULL;
    curl_free(e);
    return r;
}

static char *instance_path(const char *name, const char *suffix)
{
    char *n = seg(name);
    char *p = NULL;
    if (n) {
        size_t len = strlen("/v1/instances/") + strlen(n) + strlen(suffix) + 1;
        p = malloc(len);
        if (p) {
            snprintf(p, len, "/v1/instances/%s%s", n, suffix);
        }
    }
    free(n);
    return p;
}

/* ---- columns and sentences, as the local handlers print them ---- */

/* GET path and print its "items" with cols. */
static int list(struct dbt_cli *c, const char *path, const struct dbt_cli_col *cols)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL;
    DBT_TRY(request_json(c, "GET", path, NULL, &r));
    json_t *items = json_object_get(r, "items");
    DBT_ENSURE(json_is_array(items), PROTO, "dbtlsd at %s sent a list without \"items\"",
               c->server);
    dbt_cli_print_list(c, items, cols);
out:
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static void print_instance(struct dbt_cli *c, json_t *o)
{
    if (c->format == DBT_CLI_FMT_TABLE) {
        json_object_del(json_object_get(o, "serverCaCert"), "cert");
        json_object_del(json_object_get(o, "serverCert"), "cert");
    }
    dbt_cli_print_object(c, o);
}

/* ---- instances ---- */

static dbt_res read_text_file(const char *opt, const char *path, json_t **out)
{
    char *text = NULL;
    dbt_res res = dbt_cli_read_text_file(opt, path, &text);
    if (dbt_ok(res)) {
        *out = json_string(text);
        if (*out == NULL) {
            res = dbt_fail(DBT_E_INVALID, "--%s \"%s\" is not UTF-8 text", opt, path);
        }
    }
    free(text);
    return res;
}

/* Integer option as a JSON integer (validated like the local command). */
static dbt_res put_int(struct dbt_cli *c, json_t *o, const char *opt, const char *field, int64_t lo,
                       int64_t hi)
{
    int64_t v = 0;
    dbt_res r = dbt_cli_get_int(c, opt, lo, hi, &v);
    if (dbt_ok(r) && dbt_cli_has(c, opt)) {
        json_object_set_new(o, field, json_integer(v));
    }
    return r;
}

/* The instance options as the API's body (field names of the instance view). */
static dbt_res instance_body(struct dbt_cli *c, bool create, json_t **out)
{
    static const char *const map[][2] = {
        {"engine", "engine"},
        {"engine-version", "engineVersion"},
        {"listen", "listen"},
        {"backend", "backend"},
        {"backend-tls-ca", "backendTlsCa"},
        {"backend-tls-cert", "backendTlsCert"},
        {"backend-tls-key", "backendTlsKey"},
        {"client-info", "clientInfo"},
        {"region", "region"},
        {"ca-mode", "caMode"},
        {"ca", "caId"},
        {"ssl-mode", "sslMode"},
        {"tls-min", "tlsMinVersion"},
        {"tls-max", "tlsMaxVersion"},
        {"ciphers", "ciphers"},
        {"ciphersuites", "ciphersuites"},
        {"groups", "groups"},
    };
    static const char *const files[][2] = {
        {"hba-file", "hbaRules"},
        {"ident-file", "identMap"},
        {"user-require-file", "userRequire"},
    };
    dbt_res res = DBT_OK;
    json_t *o = json_object(), *eps = NULL;
    DBT_ENSURE(o, NOMEM, "out of memory");
    if (create) {
        json_object_set_new(o, "name", json_string(c->positional));
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        const char *v = dbt_cli_get(c, map[i][0]);
        if (v) {
            json_object_set_new(o, map[i][1], json_string(v));
        }
    }
    for (size_t i = 0; i < c->n_values; i++) {
        if (strcmp(c->values[i].name, "endpoint") == 0) {
            if (!eps) {
                eps = json_array();
                DBT_ENSURE(eps, NOMEM, "out of memory");
            }
            /* --endpoint a,b is two endpoints, as locally */
            const char *p = c->values[i].value;
            while (1) {
                size_t n = strcspn(p, ",");
                json_array_append_new(eps, json_stringn(p, n));
                if (p[n] == '\0') {
                    break;
                }
                p += n + 1;
            }
        }
    }
    if (eps) {
        json_object_set(o, "endpoints", eps);
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *p = dbt_cli_get(c, files[i][0]);
        if (p) {
            json_t *t = NULL;
            DBT_TRY(read_text_file(files[i][0], p, &t));
            json_object_set_new(o, files[i][1], t);
        }
    }
    DBT_TRY(put_int(c, o, "max-client-certs", "maxClientCerts", 1, 1000));
    DBT_TRY(put_int(c, o, "validity", "validitySeconds", 1, INT64_C(100) * 366 * 86400));
    DBT_TRY(put_int(c, o, "ca-validity", "caValiditySeconds", 1, INT64_C(100) * 366 * 86400));
    *out = o;
    o = NULL;
out:
    json_decref(eps);
    json_decref(o);
    return res;
}

static int instances_create_or_patch(struct dbt_cli *c, bool create)
{
    dbt_res res = DBT_OK;
    json_t *body = NULL, *r = NULL;
    char *path = NULL;
    if (!create && c->n_values == 0) {
        return dbt_cli_usage_error(c->cmd, "nothing to change: give at least one option");
    }
    DBT_TRY(instance_body(c, create, &body));
    path = create ? strdup("/v1/instances") : instance_path(c->positional, "");
    DBT_ENSURE(path, NOMEM, "out of memory");
    DBT_TRY(request_json(c, create ? "POST" : "PATCH", path, body, &r));
    if (c->format == DBT_CLI_FMT_TABLE) {
        fprintf(stderr, "%s instance [%s].\n", create ? "Created" : "Patched", c->positional);
    }
    print_instance(c, r);
out:
    free(path);
    json_decref(body);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static int r_instances_create(struct dbt_cli *c)
{
    return instances_create_or_patch(c, true);
}

static int r_instances_patch(struct dbt_cli *c)
{
    return instances_create_or_patch(c, false);
}

static int r_instances_list(struct dbt_cli *c)
{
    return list(c, "/v1/instances", dbt_cli_cols_instance);
}

static int r_instances_describe(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL;
    char *path = instance_path(c->positional, "");
    DBT_ENSURE(path, NOMEM, "out of memory");
    DBT_TRY(request_json(c, "GET", path, NULL, &r));
    print_instance(c, r);
out:
    free(path);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static int r_instances_delete(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL;
    char *path = instance_path(c->positional, "");
    DBT_ENSURE(path, NOMEM, "out of memory");
    DBT_TRY(request_json(c, "DELETE", path, NULL, &r));
    dbt_cli_print_done(c, r, "Deleted instance [%s].", c->positional);
out:
    free(path);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static int r_instances_reset(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL, *body = json_object();
    char *path = instance_path(c->positional, ":resetSslConfig");
    DBT_ENSURE(path && body, NOMEM, "out of memory");
    DBT_TRY(put_int(c, body, "validity", "validitySeconds", 1, INT64_C(100) * 366 * 86400));
    DBT_TRY(put_int(c, body, "ca-validity", "caValiditySeconds", 1, INT64_C(100) * 366 * 86400));
    DBT_TRY(request_json(c, "POST", path, body, &r));
    dbt_cli_print_done(c, r,
                       "Reset the SSL configuration of [%s]: new server certificate and client "
                       "CA; every client certificate was revoked. Clients need the new "
                       "server-ca.pem (dbtls ssl server-ca-certs download --instance %s).",
                       c->positional, c->positional);
out:
    free(path);
    json_decref(body);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

/* ---- slots ---- */

static bool is_ca_kind(const struct dbt_cli *c)
{
    return strncmp(c->cmd->path, "ssl server-ca-certs", 19) == 0;
}

static int r_slots_list(struct dbt_cli *c)
{
    char *path =
        instance_path(dbt_cli_get(c, "instance"), is_ca_kind(c) ? "/serverCas" : "/serverCerts");
    int rc = path ? list(c, path, dbt_cli_cols_cert)
                  : dbt_cli_finish(c, dbt_fail(DBT_E_NOMEM, "out of memory"));
    free(path);
    return rc;
}

static int r_slots_create(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    const char *inst = dbt_cli_get(c, "instance");
    bool ca = is_ca_kind(c);
    json_t *r = NULL, *body = json_object();
    char *path = instance_path(inst, ca ? ":addServerCa" : ":addServerCert");
    DBT_ENSURE(path && body, NOMEM, "out of memory");
    DBT_TRY(put_int(c, body, "validity", "validitySeconds", 1, INT64_C(100) * 366 * 86400));
    DBT_TRY(put_int(c, body, "ca-validity", "caValiditySeconds", 1, INT64_C(100) * 366 * 86400));
    DBT_TRY(request_json(c, "POST", path, body, &r));
    if (c->format == DBT_CLI_FMT_TABLE && ca) {
        fprintf(stderr,
                "Created the upcoming server CA of [%s]. Give clients the new server-ca.pem "
                "(dbtls ssl server-ca-certs download --instance %s), then rotate.\n",
                inst, inst);
    } else if (c->format == DBT_CLI_FMT_TABLE) {
        fprintf(stderr,
                "Created the upcoming server certificate of [%s]. Rotate when ready (dbtls ssl "
                "server-certs rotate --instance %s).\n",
                inst, inst);
    }
    /* same key order as the local command: the PEM last, and only in JSON */
    json_t *pem = json_incref(json_object_get(r, "cert"));
    json_object_del(r, "cert");
    if (c->format == DBT_CLI_FMT_JSON && pem) {
        json_object_set(r, "cert", pem);
    }
    json_decref(pem);
    dbt_cli_print_object(c, r);
out:
    free(path);
    json_decref(body);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static int r_slots_move(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    const char *inst = dbt_cli_get(c, "instance");
    bool ca = is_ca_kind(c);
    bool rotate = strstr(c->cmd->path, " rotate") != NULL;
    json_t *r = NULL;
    char *path = instance_path(inst, rotate ? (ca ? ":rotateServerCa" : ":rotateServerCert")
                                            : (ca ? ":rollbackServerCa" : ":rollbackServerCert"));
    DBT_ENSURE(path, NOMEM, "out of memory");
    DBT_TRY(request_json(c, "POST", path, NULL, &r));
    if (c->format == DBT_CLI_FMT_TABLE) {
        fprintf(stderr, "%s the %s of [%s]; new connections use it now, no restart needed.\n",
                rotate ? "Rotated" : "Rolled back", ca ? "server CA" : "server certificate", inst);
    }
    json_t *items = json_object_get(r, "items");
    DBT_ENSURE(json_is_array(items), PROTO, "dbtlsd at %s sent a list without \"items\"",
               c->server);
    dbt_cli_print_list(c, items, dbt_cli_cols_cert);
out:
    free(path);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

/* ---- client certificates ---- */

static int r_client_list(struct dbt_cli *c)
{
    char *path = instance_path(dbt_cli_get(c, "instance"), "/sslCerts");
    int rc = path ? list(c, path, dbt_cli_cols_client)
                  : dbt_cli_finish(c, dbt_fail(DBT_E_NOMEM, "out of memory"));
    free(path);
    return rc;
}

static char *client_path(struct dbt_cli *c)
{
    char *name = seg(c->positional);
    char *p = NULL;
    if (name) {
        size_t n = strlen("/sslCerts/") + strlen(name) + 1;
        char *suffix = malloc(n);
        if (suffix) {
            snprintf(suffix, n, "/sslCerts/%s", name);
            p = instance_path(dbt_cli_get(c, "instance"), suffix);
        }
        free(suffix);
    }
    free(name);
    return p;
}

static int r_client_describe(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL;
    char *path = client_path(c);
    DBT_ENSURE(path, NOMEM, "out of memory");
    DBT_TRY(request_json(c, "GET", path, NULL, &r));
    dbt_cli_print_object(c, r);
out:
    free(path);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static int r_client_delete(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    json_t *r = NULL;
    const char *inst = dbt_cli_get(c, "instance");
    char *path = client_path(c);
    DBT_ENSURE(path, NOMEM, "out of memory");
    DBT_TRY(request_json(c, "DELETE", path, NULL, &r));
    dbt_cli_print_done(c, r, "Deleted client certificate [%s] of [%s]; it is revoked (CRL).",
                       c->positional, inst);
out:
    free(path);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

/* The PKCS#12 of --pkcs12, made here from what the daemon sent (certificate, key, the client CA
   as its chain), with the same builder as the local command: the password never leaves this
   machine. */
static dbt_res p12_from_pem(const char *cert_pem, const char *key_pem, const char *ca_pem,
                            const char *password, uint8_t **out, size_t *len)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *cert = NULL, *ca = NULL;
    struct dbt_pki_key *key = NULL;
    struct dbt_pki_certs chain = {0};
    DBT_TRY(dbt_pki_cert_from_pem(cert_pem, &cert));
    DBT_TRY(dbt_pki_key_from_pem(key_pem, &key));
    DBT_TRY(dbt_pki_cert_from_pem(ca_pem, &ca));
    DBT_TRY(dbt_pki_certs_push(&chain, ca));
    DBT_TRY(dbt_pki_p12_build(cert, key, &chain, password ? password : "", DBT_CTL_P12_ALIAS, out,
                              len));
out:
    dbt_pki_certs_free(&chain);
    dbt_pki_cert_free(ca);
    dbt_pki_cert_free(cert);
    dbt_pki_key_free(key);
    return res;
}

/* Writes client-cert.pem, client-key.pem (0600) and server-ca.pem (and client.p12, 0600, with
   --pkcs12), never over existing files; the key first (as the local command does). */
/* POST NAME:generateEphemeralCert with the public key; writes client-cert.pem, server-ca.pem. */
static int r_client_ephemeral(struct dbt_cli *c)
{
    static const char *const names[2] = {"client-cert.pem", "server-ca.pem"};
    static const char *const fields[2] = {"cert", "serverCaCert"};
    dbt_res res = DBT_OK;
    const char *inst = dbt_cli_get(c, "instance");
    const char *dir = dbt_cli_get(c, "out-dir") ? dbt_cli_get(c, "out-dir") : ".";
    char paths[2][4096];
    bool made_dir = false, written[2] = {false, false};
    json_t *r = NULL, *body = json_object(), *files = NULL, *pub = NULL;
    char *path = instance_path(inst, ":generateEphemeralCert");

    DBT_ENSURE(path && body, NOMEM, "out of memory");
    DBT_TRY(read_text_file("public-key", dbt_cli_get(c, "public-key"), &pub));
    DBT_TRY(dbt_cli_out_files_check(dir, names, 2, paths));
    json_object_set_new(body, "commonName", json_string(c->positional));
    json_object_set_new(body, "publicKey", pub);
    pub = NULL;
    DBT_TRY(put_int(c, body, "validity", "validitySeconds", 60, DBT_CTL_EPHEMERAL_MAX_SECS));
    DBT_TRY(dbt_cli_out_dir_make(dir, &made_dir));
    DBT_TRY(request_json(c, "POST", path, body, &r));
    for (int i = 0; i < 2; i++) {
        const char *data = json_string_value(json_object_get(r, fields[i]));
        DBT_ENSURE(data, PROTO, "dbtlsd at %s sent an ephemeral certificate without \"%s\"",
                   c->server, fields[i]);
        DBT_TRY(dbt_cli_write_file(paths[i], data, strlen(data), 0644, true));
        written[i] = true;
    }
    json_object_del(r, "serverCaCert");
    json_object_del(r, "clientCaCert");
    files = json_pack("{ssss}", "cert", paths[0], "serverCa", paths[1]);
    DBT_ENSURE(files, NOMEM, "out of memory");
    json_object_set(r, "files", files);
    if (c->format == DBT_CLI_FMT_JSON) {
        dbt_cli_print_object(c, r);
    } else {
        const char *exp = json_string_value(json_object_get(r, "expirationTime"));
        printf("Issued an ephemeral client certificate for [%s] on instance [%s], valid until %s "
               "(not listed, not counted against the limit).\n  %s\n  %s\n",
               c->positional, inst, exp ? exp : "-", paths[0], paths[1]);
    }
out:
    for (int i = 0; !dbt_ok(res) && i < 2; i++) {
        if (written[i]) {
            (void)unlink(paths[i]);
        }
    }
    if (!dbt_ok(res) && made_dir) {
        (void)rmdir(dir);
    }
    json_decref(pub);
    free(path);
    json_decref(files);
    json_decref(body);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

static int r_client_create(struct dbt_cli *c)
{
    enum { KEY, CERT, CA, P12, N };
    static const char *const names[N] = {"client-key.pem", "client-cert.pem", "server-ca.pem",
                                         "client.p12"};
    static const char *const fields[P12] = {"privateKey", "cert", "serverCaCert"};
    static const int modes[N] = {0600, 0644, 0644, 0600};
    dbt_res res = DBT_OK;
    const char *inst = dbt_cli_get(c, "instance");
    const char *dir = dbt_cli_get(c, "out-dir");
    bool p12 = dbt_cli_has(c, "pkcs12");
    int nfiles = p12 ? N : P12;
    char paths[N][4096];
    const char *data[N] = {NULL};
    size_t len[N] = {0};
    uint8_t *p12_der = NULL;
    json_t *r = NULL, *body = json_object(), *files = NULL;
    char *path = instance_path(inst, "/sslCerts");
    bool written[N] = {false, false, false, false};

    DBT_ENSURE(path && body, NOMEM, "out of memory");
    if (!dir) {
        dir = ".";
    }
    bool made_dir;
    DBT_TRY(dbt_cli_out_files_check(dir, names, (size_t)nfiles, paths));
    DBT_TRY(dbt_cli_out_dir_make(dir, &made_dir));
    json_object_set_new(body, "name", json_string(c->positional));
    DBT_TRY(put_int(c, body, "validity", "validitySeconds", 1, INT64_C(100) * 366 * 86400));
    DBT_TRY(request_json(c, "POST", path, body, &r));
    for (int i = 0; i < P12; i++) {
        data[i] = json_string_value(json_object_get(r, fields[i]));
        DBT_ENSURE(data[i], PROTO, "dbtlsd at %s sent a client certificate without \"%s\"",
                   c->server, fields[i]);
        len[i] = strlen(data[i]);
    }
    if (p12) {
        const char *client_ca = json_string_value(json_object_get(r, "clientCaCert"));
        DBT_ENSURE(client_ca, PROTO,
                   "dbtlsd at %s sent no \"clientCaCert\" for --pkcs12 (an older dbtlsd?)",
                   c->server);
        DBT_TRY(p12_from_pem(data[CERT], data[KEY], client_ca, dbt_cli_get(c, "pkcs12-password"),
                             &p12_der, &len[P12]));
        data[P12] = (const char *)p12_der;
    }
    for (int i = 0; i < nfiles; i++) {
        DBT_TRY(dbt_cli_write_file(paths[i], data[i], len[i], modes[i], true));
        written[i] = true;
    }
    json_object_del(r, "privateKey");
    json_object_del(r, "serverCaCert");
    json_object_del(r, "clientCaCert");
    files = json_pack("{ssssss}", "cert", paths[CERT], "key", paths[KEY], "serverCa", paths[CA]);
    DBT_ENSURE(files, NOMEM, "out of memory");
    if (p12) {
        json_object_set_new(files, "pkcs12", json_string(paths[P12]));
    }
    json_object_set(r, "files", files);
    if (c->format == DBT_CLI_FMT_JSON) {
        dbt_cli_print_object(c, r);
    } else {
        const char *sha1 = json_string_value(json_object_get(r, "sha1Fingerprint"));
        const char *exp = json_string_value(json_object_get(r, "expirationTime"));
        printf("Created client certificate [%s] for instance [%s].\n", c->positional, inst);
        printf("  sha1Fingerprint: %s\n  expirationTime:  %s\n", sha1 ? sha1 : "-",
               exp ? exp : "-");
        printf("  %s\n  %s (mode 0600; the only copy of the private key)\n  %s\n", paths[CERT],
               paths[KEY], paths[CA]);
        if (p12) {
            printf("  %s (mode 0600, for Java)\n", paths[P12]);
        }
        printf("Connect with: sslcert=%s sslkey=%s sslrootcert=%s sslmode=verify-full\n",
               paths[CERT], paths[KEY], paths[CA]);
    }
out:
    if (!dbt_ok(res) && r != NULL) {
        /* The key never reached the user: remove what was written and revoke the certificate
           (as the local command does), so it does not count against the limit. */
        dbt_res saved = res;
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", dbt_errmsg());
        for (int i = 0; i < nfiles; i++) {
            if (written[i]) {
                (void)unlink(paths[i]);
            }
        }
        char *cpath = client_path(c);
        struct dbt_buf ignored;
        dbt_buf_init(&ignored, REMOTE_REPLY_MAX);
        if (cpath == NULL || !dbt_ok(request(c, "DELETE", cpath, NULL, &ignored))) {
            fprintf(stderr,
                    "dbtls: warning: could not revoke client certificate \"%s\" after the "
                    "failure\n",
                    c->positional);
        }
        dbt_buf_cleanup(&ignored);
        free(cpath);
        res = dbt_fail(saved.code, "%s (the certificate was revoked again)", msg);
    }
    if (p12_der != NULL) {
        dbt_pki_wipe_free_bytes(p12_der, len[P12]);
    }
    free(path);
    json_decref(files);
    json_decref(body);
    json_decref(r);
    return dbt_cli_finish(c, res);
}

/* ---- bundles, CA download ---- */

static dbt_res add_query(char *q, size_t qsz, const char *key, const char *value)
{
    if (!value) {
        return DBT_OK;
    }
    char *e = seg(value);
    if (!e) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    size_t l = strlen(q);
    snprintf(q + l, qsz - l, "%s%s=%s", strchr(q, '?') ? "&" : "?", key, e);
    free(e);
    return DBT_OK;
}

static int r_bundle(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    const char *fmt = c->format_raw ? c->format_raw : "pem";
    const char *out_path = dbt_cli_get(c, "out");
    char q[2048] = "/v1/bundles";
    struct dbt_buf b;
    json_t *o = NULL;
    dbt_buf_init(&b, REMOTE_REPLY_MAX);
    bool json = strcmp(fmt, "json") == 0;
    if (strcmp(fmt, "table") == 0 || json) {
        fmt = "pem";
    }
    if (strcmp(fmt, "pem") != 0 && strcmp(fmt, "p7b") != 0) {
        dbt_buf_cleanup(&b);
        return dbt_cli_usage_error(
            c->cmd, "unknown bundle format '%s': expected pem or p7b (or json)", fmt);
    }
    DBT_TRY(add_query(q, sizeof(q), "ca", dbt_cli_get(c, "ca")));
    DBT_TRY(add_query(q, sizeof(q), "region", dbt_cli_get(c, "region")));
    DBT_TRY(add_query(q, sizeof(q), "instance", dbt_cli_get(c, "instance")));
    DBT_TRY(add_query(q, sizeof(q), "format", fmt));
    DBT_TRY(request(c, "GET", q, NULL, &b));
    if (json) {
        o = json_pack("{s:s?,s:s?,s:s?,s:s%}", "ca", dbt_cli_get(c, "ca"), "region",
                      dbt_cli_get(c, "region"), "instance", dbt_cli_get(c, "instance"), "pem",
                      (const char *)b.data, b.len);
        DBT_ENSURE(o, NOMEM, "out of memory");
        c->format = DBT_CLI_FMT_JSON;
        dbt_cli_print_object(c, o);
        goto out;
    }
    DBT_TRY(dbt_cli_write_file(out_path, b.data, b.len, 0644, false));
    if (out_path && strcmp(out_path, "-") != 0) {
        fprintf(stderr, "Wrote %s bundle to %s.\n", strcmp(fmt, "p7b") == 0 ? "PKCS#7" : "PEM",
                out_path);
    }
out:
    json_decref(o);
    dbt_buf_cleanup(&b);
    return dbt_cli_finish(c, res);
}

static int r_ca_download(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    const char *inst = dbt_cli_get(c, "instance");
    const char *out_path = dbt_cli_get(c, "out");
    char q[1024] = "/v1/bundles";
    struct dbt_buf b;
    json_t *o = NULL;
    dbt_buf_init(&b, REMOTE_REPLY_MAX);
    DBT_TRY(add_query(q, sizeof(q), "instance", inst));
    DBT_TRY(request(c, "GET", q, NULL, &b));
    if (out_path) {
        DBT_TRY(dbt_cli_write_file(out_path, b.data, b.len, 0644, false));
        o = json_pack("{ssss}", "instance", inst, "file", out_path);
        dbt_cli_print_done(c, o, "Wrote the server CA certificates of [%s] to %s.", inst, out_path);
    } else if (c->format == DBT_CLI_FMT_JSON) {
        o = json_pack("{sss%}", "instance", inst, "pem", (const char *)b.data, b.len);
        dbt_cli_print_object(c, o);
    } else {
        DBT_TRY(dbt_cli_write_file(NULL, b.data, b.len, 0, false));
    }
out:
    json_decref(o);
    dbt_buf_cleanup(&b);
    return dbt_cli_finish(c, res);
}

/* ---- general ---- */

static int r_cas_list(struct dbt_cli *c)
{
    return list(c, "/v1/cas", dbt_cli_cols_ca);
}

static int r_engines_list(struct dbt_cli *c)
{
    return list(c, "/v1/engines", dbt_cli_cols_engine);
}

static int r_events_list(struct dbt_cli *c)
{
    char q[1024] = "/v1/events";
    int64_t limit = 0;
    dbt_res res = dbt_cli_get_int(c, "limit", 1, 1000000, &limit);
    if (!dbt_ok(res)) {
        return dbt_cli_finish(c, res);
    }
    if (!dbt_ok(res = add_query(q, sizeof(q), "instance", dbt_cli_get(c, "instance")))) {
        return dbt_cli_finish(c, res);
    }
    if (limit > 0) {
        size_t l = strlen(q);
        snprintf(q + l, sizeof(q) - l, "%slimit=%lld", strchr(q, '?') ? "&" : "?",
                 (long long)limit);
    }
    return list(c, q, dbt_cli_cols_event);
}

struct remote_cmd {
    const char *path;
    int (*run)(struct dbt_cli *c);
};

static const struct remote_cmd remote_cmds[] = {
    {"cas list", r_cas_list},
    {"engines list", r_engines_list},
    {"events list", r_events_list},
    {"bundle", r_bundle},
    {"instances create", r_instances_create},
    {"instances list", r_instances_list},
    {"instances describe", r_instances_describe},
    {"instances patch", r_instances_patch},
    {"instances delete", r_instances_delete},
    {"instances reset-ssl-config", r_instances_reset},
    {"ssl server-ca-certs list", r_slots_list},
    {"ssl server-ca-certs create", r_slots_create},
    {"ssl server-ca-certs rotate", r_slots_move},
    {"ssl server-ca-certs rollback", r_slots_move},
    {"ssl server-ca-certs download", r_ca_download},
    {"ssl server-certs list", r_slots_list},
    {"ssl server-certs create", r_slots_create},
    {"ssl server-certs rotate", r_slots_move},
    {"ssl server-certs rollback", r_slots_move},
    {"ssl client-certs create", r_client_create},
    {"ssl client-certs create-ephemeral", r_client_ephemeral},
    {"ssl client-certs list", r_client_list},
    {"ssl client-certs describe", r_client_describe},
    {"ssl client-certs delete", r_client_delete},
};

int dbt_cli_remote_run(struct dbt_cli *c)
{
    /* Handlers that ask the daemon themselves when c->server is set (dbt_cli_remote_json). */
    static const char *const own_remote[] = {"connections", "admin-certs list",
                                             "admin-certs revoke"};
    for (size_t i = 0; i < sizeof(own_remote) / sizeof(own_remote[0]); i++) {
        if (strcmp(c->cmd->path, own_remote[i]) == 0) {
            return c->cmd->run(c);
        }
    }
    for (size_t i = 0; i < sizeof(remote_cmds) / sizeof(remote_cmds[0]); i++) {
        if (strcmp(remote_cmds[i].path, c->cmd->path) == 0) {
            return remote_cmds[i].run(c);
        }
    }
    return dbt_cli_usage_error(c->cmd,
                               "`dbtls %s` is not available with --server; run it on "
                               "the daemon's host",
                               c->cmd->path);
}
