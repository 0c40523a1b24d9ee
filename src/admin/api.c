/*
 * api.c - the resources of the admin API (docs/admin-api.md): routing by method and path, request
 * bodies validated against a list of known fields, and handlers that call the same control-
 * library functions as the CLI (ctl.h) and answer with the same JSON views (view.h). Runs on a
 * libmicrohttpd thread, never on a front worker.
 *
 * Lists are {"items": [...]}, except GET /v1/connections which keeps its {"connections": [...]}
 * shape. Errors are {"error": {"code": <HTTP status>, "status": "NOT_FOUND", "message": "..."}}
 * with the status names of Google's APIs (Cloud SQL's Admin API uses them).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/metrics.h"
#include "admin/ui.h"
#include "admin/internal.h"
#include "admin/json_in.h"
#include "admin/view.h"
#include "ctl/ctl.h"

#define MAX_VALIDITY_SECS DBT_JSON_MAX_VALIDITY_SECS

static const char *status_name(unsigned status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 405:
        return "METHOD_NOT_ALLOWED";
    case 409:
        return "ALREADY_EXISTS";
    case 413:
        return "PAYLOAD_TOO_LARGE";
    case 429:
        return "RESOURCE_EXHAUSTED";
    default:
        return "INTERNAL";
    }
}

static void set_json(struct dbt_admin_reply *out, unsigned status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        out->status = 500;
        out->body = strdup("{\"error\":{\"code\":500,\"status\":\"INTERNAL\",\"message\":"
                           "\"out of memory\"}}");
        out->len = out->body ? strlen(out->body) : 0;
        out->content_type = "application/json";
        return;
    }
    out->status = status;
    out->body = text;
    out->len = strlen(text);
    out->content_type = "application/json";
}

static void error_with(struct dbt_admin_reply *out, unsigned status, const char *sname,
                       const char *msg)
{
    json_t *doc = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", (int)status, "status", sname,
                            "message", msg);
    set_json(out, status, doc);
}

void dbt_admin_error(struct dbt_admin_reply *out, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(out->body);
    out->body = NULL;
    error_with(out, status, status_name(status), msg);
}

/* A failed control-library call as an HTTP error, with the library's own message. */
static void fail_res(struct dbt_admin_reply *out, dbt_res r)
{
    unsigned status = 500;
    const char *sname = "INTERNAL";
    switch (r.code) {
    case DBT_E_INVALID:
    case DBT_E_USAGE:
        status = 400;
        sname = "INVALID_ARGUMENT";
        break;
    case DBT_E_NOT_FOUND:
        status = 404;
        sname = "NOT_FOUND";
        break;
    case DBT_E_EXISTS:
        status = 409;
        sname = "ALREADY_EXISTS";
        break;
    case DBT_E_STATE:
        status = 409;
        sname = "FAILED_PRECONDITION";
        break;
    case DBT_E_LIMIT:
        status = 429;
        sname = "RESOURCE_EXHAUSTED";
        break;
    default:
        break;
    }
    free(out->body);
    out->body = NULL;
    error_with(out, status, sname, dbt_errmsg()[0] ? dbt_errmsg() : dbt_err_desc(r.code));
}

static void method_not_allowed(struct dbt_admin_reply *out, const char *method, const char *path,
                               const char *allow)
{
    dbt_admin_error(out, 405, "%s is not allowed on %s; allowed: %s", method, path, allow);
    out->allow = allow;
}

static json_t *items(json_t *arr)
{
    return arr ? json_pack("{s:o}", "items", arr) : NULL;
}

/* For the resources in their own files (internal.h). */
void dbt_admin_json(struct dbt_admin_reply *out, unsigned status, json_t *doc)
{
    set_json(out, status, doc);
}

void dbt_admin_fail(struct dbt_admin_reply *out, dbt_res r)
{
    fail_res(out, r);
}

void dbt_admin_method_not_allowed(struct dbt_admin_reply *out, const char *method, const char *url,
                                  const char *allow)
{
    method_not_allowed(out, method, url, allow);
}

/* ---- request bodies ---------------------------------------------------------------------- */

/*
 * Parses the body as a JSON object whose every field is in `allowed` (NULL-terminated). An
 * empty body is an empty object when empty_ok. On failure the reply is set and NULL returned.
 */
static json_t *parse_body(const char *body, size_t len, const char *const *allowed, bool empty_ok,
                          struct dbt_admin_reply *out)
{
    json_error_t jerr;
    if (len == 0) {
        if (empty_ok) {
            return json_object();
        }
        dbt_admin_error(out, 400, "the request needs a JSON object body");
        return NULL;
    }
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        dbt_admin_error(out, 400, "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        dbt_admin_error(out, 400, "the body must be a JSON object");
        return NULL;
    }
    dbt_res r = dbt_json_fields_check(doc, allowed, NULL);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

json_t *dbt_admin_parse_body(const char *body, size_t len, const char *const *allowed,
                             bool empty_ok, struct dbt_admin_reply *out)
{
    return parse_body(body, len, allowed, empty_ok, out);
}

/* The json_in.h readers, answering 400 with their message on a wrong field. */
static bool replied(dbt_res r, struct dbt_admin_reply *out)
{
    if (!dbt_ok(r)) {
        fail_res(out, r);
    }
    return dbt_ok(r);
}

static bool get_str(json_t *doc, const char *key, const char **v, struct dbt_admin_reply *out)
{
    return replied(dbt_json_str(doc, key, v), out);
}

static bool get_int(json_t *doc, const char *key, int64_t lo, int64_t hi, int64_t *v,
                    struct dbt_admin_reply *out)
{
    return replied(dbt_json_int(doc, key, lo, hi, v), out);
}

static bool get_validity(json_t *doc, struct dbt_ctl_validity *v, struct dbt_admin_reply *out)
{
    int64_t leaf = 0, ca = 0;
    if (!get_int(doc, "validitySeconds", 1, MAX_VALIDITY_SECS, &leaf, out) ||
        !get_int(doc, "caValiditySeconds", 1, MAX_VALIDITY_SECS, &ca, out)) {
        return false;
    }
    v->leaf_secs = leaf;
    v->ca_secs = ca;
    return true;
}

static bool spec_from_json(json_t *doc, struct dbt_ctl_instance_spec *s, struct dbt_ctl_validity *v,
                           char **endpoints_owned, struct dbt_admin_reply *out)
{
    return replied(dbt_json_instance_spec(doc, s, v, endpoints_owned), out);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void get_cas(struct dbt_admin_ctx *x, struct dbt_admin_reply *out)
{
    struct dbt_ctl_ca_list l = {0};
    dbt_res r = dbt_ctl_cas_list(x->ctl, &l);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < l.n; i++) {
        json_array_append_new(a, dbt_view_ca(&l.items[i]));
    }
    set_json(out, 200, items(a));
    dbt_ctl_ca_list_cleanup(&l);
}

static void get_engines(struct dbt_admin_reply *out)
{
    size_t n = 0;
    const struct dbt_engine_info *e = dbt_ctl_engines(&n);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_array_append_new(a, dbt_view_engine(&e[i]));
    }
    set_json(out, 200, items(a));
}

static void list_instances(struct dbt_admin_ctx *x, struct dbt_admin_reply *out)
{
    struct dbt_ctl_instance_list l = {0};
    dbt_res r = dbt_ctl_instance_list(x->ctl, &l);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < l.n; i++) {
        json_array_append_new(a, dbt_view_instance(&l.items[i]));
    }
    set_json(out, 200, items(a));
    dbt_ctl_instance_list_cleanup(&l);
}

static void create_instance(struct dbt_admin_ctx *x, const char *body, size_t len,
                            struct dbt_admin_reply *out)
{
    struct dbt_ctl_instance_spec spec = {0};
    struct dbt_ctl_validity v = {0};
    struct dbt_ctl_instance inst = {0};
    char *endpoints = NULL;
    const char *name = NULL;
    json_t *doc = parse_body(body, len, dbt_json_instance_fields_create, false, out);
    if (doc == NULL || !get_str(doc, "name", &name, out) ||
        !spec_from_json(doc, &spec, &v, &endpoints, out)) {
        goto out;
    }
    if (name == NULL) {
        dbt_admin_error(out, 400, "field \"name\" is required");
        goto out;
    }
    const char *missing = spec.engine == NULL      ? "engine"
                          : spec.listen == NULL    ? "listen"
                          : spec.backend == NULL   ? "backend"
                          : spec.endpoints == NULL ? "endpoints"
                                                   : NULL;
    if (missing != NULL) {
        dbt_admin_error(out, 400, "field \"%s\" is required", missing);
        goto out;
    }
    dbt_res r = dbt_ctl_instance_create(x->ctl, name, &spec, &v, &inst);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        goto out;
    }
    set_json(out, 201, dbt_view_instance(&inst));
out:
    dbt_ctl_instance_cleanup(&inst);
    free(endpoints);
    json_decref(doc);
}

static void get_instance(struct dbt_admin_ctx *x, const char *name, struct dbt_admin_reply *out)
{
    struct dbt_ctl_instance inst = {0};
    dbt_res r = dbt_ctl_instance_describe(x->ctl, name, &inst);
    if (!dbt_ok(r)) {
        fail_res(out, r);
    } else {
        set_json(out, 200, dbt_view_instance(&inst));
    }
    dbt_ctl_instance_cleanup(&inst);
}

static void patch_instance(struct dbt_admin_ctx *x, const char *name, const char *body, size_t len,
                           struct dbt_admin_reply *out)
{
    struct dbt_ctl_instance_spec spec = {0};
    struct dbt_ctl_validity v = {0};
    struct dbt_ctl_instance inst = {0};
    char *endpoints = NULL;
    json_t *doc = parse_body(body, len, dbt_json_instance_fields_patch, false, out);
    if (doc == NULL || !spec_from_json(doc, &spec, &v, &endpoints, out)) {
        goto out;
    }
    if (json_object_size(doc) == 0) {
        dbt_admin_error(out, 400, "nothing to change: give at least one field");
        goto out;
    }
    dbt_res r = dbt_ctl_instance_patch(x->ctl, name, &spec, &v, &inst);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        goto out;
    }
    set_json(out, 200, dbt_view_instance(&inst));
out:
    dbt_ctl_instance_cleanup(&inst);
    free(endpoints);
    json_decref(doc);
}

static void delete_instance(struct dbt_admin_ctx *x, const char *name, struct dbt_admin_reply *out)
{
    dbt_res r = dbt_ctl_instance_delete(x->ctl, name);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    set_json(out, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
}

static void list_slots(struct dbt_admin_ctx *x, const char *name, enum dbt_ctl_slot_kind kind,
                       struct dbt_admin_reply *out)
{
    struct dbt_ctl_cert_list l = {0};
    dbt_res r = dbt_ctl_slots_list(x->ctl, name, kind, &l);
    if (!dbt_ok(r)) {
        fail_res(out, r);
    } else {
        set_json(out, 200, items(dbt_view_cert_list(&l)));
    }
    dbt_ctl_cert_list_cleanup(&l);
}

static const char *const validity_fields[] = {"validitySeconds", "caValiditySeconds", NULL};
static const char *const no_fields[] = {NULL};

/* :addServerCa / :addServerCert */
static void add_slot(struct dbt_admin_ctx *x, const char *name, enum dbt_ctl_slot_kind kind,
                     const char *body, size_t len, struct dbt_admin_reply *out)
{
    struct dbt_ctl_validity v = {0};
    struct dbt_ctl_cert cert = {0};
    json_t *doc = parse_body(body, len, validity_fields, true, out);
    if (doc == NULL || !get_validity(doc, &v, out)) {
        goto out;
    }
    if (kind == DBT_CTL_SLOT_SERVER_CA && v.ca_secs == 0) {
        /* as `ssl server-ca-certs create --validity`: the new slot is a CA */
        v.ca_secs = v.leaf_secs;
    }
    dbt_res r = dbt_ctl_slots_create(x->ctl, name, kind, &v, &cert);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        goto out;
    }
    set_json(out, 200, dbt_view_cert(&cert));
out:
    dbt_ctl_cert_cleanup(&cert);
    json_decref(doc);
}

/* :rotateServerCa / :rollbackServerCa / ...Cert: answers the slots after the move. */
static void move_slot(struct dbt_admin_ctx *x, const char *name, enum dbt_ctl_slot_kind kind,
                      bool rotate, const char *body, size_t len, struct dbt_admin_reply *out)
{
    json_t *doc = parse_body(body, len, no_fields, true, out);
    if (doc == NULL) {
        return;
    }
    json_decref(doc);
    dbt_res r = rotate ? dbt_ctl_slots_rotate(x->ctl, name, kind)
                       : dbt_ctl_slots_rollback(x->ctl, name, kind);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    list_slots(x, name, kind, out);
}

static void reset_ssl(struct dbt_admin_ctx *x, const char *name, const char *body, size_t len,
                      struct dbt_admin_reply *out)
{
    struct dbt_ctl_validity v = {0};
    json_t *doc = parse_body(body, len, validity_fields, true, out);
    if (doc == NULL || !get_validity(doc, &v, out)) {
        json_decref(doc);
        return;
    }
    json_decref(doc);
    dbt_res r = dbt_ctl_instance_reset_ssl(x->ctl, name, &v);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    set_json(out, 200, json_pack("{s:s,s:b}", "name", name, "sslConfigReset", 1));
}

static void list_ssl_certs(struct dbt_admin_ctx *x, const char *name, struct dbt_admin_reply *out)
{
    struct dbt_ctl_cert_list l = {0};
    dbt_res r = dbt_ctl_client_cert_list(x->ctl, name, &l);
    if (!dbt_ok(r)) {
        fail_res(out, r);
    } else {
        set_json(out, 200, items(dbt_view_cert_list(&l)));
    }
    dbt_ctl_cert_list_cleanup(&l);
}

static const char *const ssl_cert_fields[] = {"name", "validitySeconds", NULL};

/* 201 with a new client certificate, its server-ca.pem and client CA, and its private key when
   dbtls made it (r: the issuing call's result). */
static void reply_new_cert(dbt_res r, const struct dbt_ctl_client_cert_new *nc,
                           struct dbt_admin_reply *out)
{
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    json_t *o = dbt_view_cert(&nc->cert);
    if (o != NULL) {
        if (nc->key_pem != NULL) {
            dbt_view_set(o, "privateKey", json_string(nc->key_pem));
        }
        dbt_view_set(o, "serverCaCert", json_string(nc->server_ca_pem));
        dbt_view_set(o, "clientCaCert", json_string(nc->client_ca_pem));
    }
    set_json(out, 201, o);
}

/* POST sslCerts: the one time the private key is handed out (Cloud SQL's sslCerts.insert). */
static void create_ssl_cert(struct dbt_admin_ctx *x, const char *name, const char *body, size_t len,
                            struct dbt_admin_reply *out)
{
    struct dbt_ctl_client_cert_new nc = {0};
    struct dbt_ctl_client_cert_opts opts = {0};
    const char *cname = NULL;
    int64_t validity = 0;
    json_t *doc = parse_body(body, len, ssl_cert_fields, false, out);
    if (doc == NULL || !get_str(doc, "name", &cname, out) ||
        !get_int(doc, "validitySeconds", 1, MAX_VALIDITY_SECS, &validity, out)) {
        goto out;
    }
    if (cname == NULL) {
        dbt_admin_error(out, 400, "field \"name\" is required");
        goto out;
    }
    opts.validity_secs = validity;
    reply_new_cert(dbt_ctl_client_cert_create(x->ctl, name, cname, &opts, &nc), &nc, out);
out:
    dbt_ctl_client_cert_new_cleanup(&nc);
    json_decref(doc);
}

static const char *const ephemeral_fields[] = {"commonName", "publicKey", "validitySeconds", NULL};

/* POST NAME:generateEphemeralCert (Cloud SQL's connect.generateEphemeralCert): certifies the
   caller's public key for a short time; nothing secret travels, nothing is listed. */
static void ephemeral_cert(struct dbt_admin_ctx *x, const char *name, const char *body, size_t len,
                           struct dbt_admin_reply *out)
{
    struct dbt_ctl_client_cert_new nc = {0};
    const char *cn = NULL, *pub = NULL;
    int64_t validity = 0;
    json_t *doc = parse_body(body, len, ephemeral_fields, false, out);
    if (doc == NULL || !get_str(doc, "commonName", &cn, out) ||
        !get_str(doc, "publicKey", &pub, out) ||
        !get_int(doc, "validitySeconds", 60, DBT_CTL_EPHEMERAL_MAX_SECS, &validity, out)) {
        goto out;
    }
    if (cn == NULL || pub == NULL) {
        dbt_admin_error(out, 400, "fields \"commonName\" and \"publicKey\" are required");
        goto out;
    }
    reply_new_cert(dbt_ctl_client_cert_ephemeral(x->ctl, name, cn, pub, validity, &nc), &nc, out);
out:
    dbt_ctl_client_cert_new_cleanup(&nc);
    json_decref(doc);
}

static void get_ssl_cert(struct dbt_admin_ctx *x, const char *name, const char *which,
                         struct dbt_admin_reply *out)
{
    struct dbt_ctl_cert cert = {0};
    dbt_res r = dbt_ctl_client_cert_describe(x->ctl, name, which, &cert);
    if (!dbt_ok(r)) {
        fail_res(out, r);
    } else {
        set_json(out, 200, dbt_view_cert(&cert));
    }
    dbt_ctl_cert_cleanup(&cert);
}

static void delete_ssl_cert(struct dbt_admin_ctx *x, const char *name, const char *which,
                            struct dbt_admin_reply *out)
{
    dbt_res r = dbt_ctl_client_cert_delete(x->ctl, name, which);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    set_json(out, 200, json_pack("{s:s,s:s,s:b}", "instance", name, "name", which, "revoked", 1));
}

static const char *query(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Refuses query parameters other than the allowed ones (a typo must not widen a result). */
static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    const char *const *allowed = ((const char *const **)cls)[0];
    const char **bad = (const char **)((const char *const **)cls)[1];
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(allowed[i], key) == 0) {
            return MHD_YES;
        }
    }
    *bad = key;
    return MHD_NO;
}

static bool check_query(struct MHD_Connection *c, const char *const *allowed,
                        struct dbt_admin_reply *out)
{
    const char *bad = NULL;
    const void *cls[2] = {allowed, &bad};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_arg, cls);
    if (bad != NULL) {
        dbt_admin_error(out, 400, "unknown query parameter \"%s\"", bad);
        return false;
    }
    return true;
}

static void get_bundle(struct dbt_admin_ctx *x, struct MHD_Connection *c,
                       struct dbt_admin_reply *out)
{
    static const char *const args[] = {"ca", "region", "instance", "format", NULL};
    if (!check_query(c, args, out)) {
        return;
    }
    const char *fmt = query(c, "format");
    enum dbt_ctl_bundle_format bf = DBT_CTL_BUNDLE_PEM;
    if (fmt != NULL && strcmp(fmt, "p7b") == 0) {
        bf = DBT_CTL_BUNDLE_P7B;
    } else if (fmt != NULL && strcmp(fmt, "pem") != 0) {
        dbt_admin_error(out, 400, "unknown bundle format \"%s\": expected pem or p7b", fmt);
        return;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    dbt_res r = dbt_ctl_bundle(x->ctl, query(c, "ca"), query(c, "region"), query(c, "instance"), bf,
                               &data, &len);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    out->status = 200;
    out->body = (char *)data;
    out->len = len;
    out->content_type =
        bf == DBT_CTL_BUNDLE_P7B ? "application/pkcs7-mime" : "application/x-pem-file";
}

static void get_events(struct dbt_admin_ctx *x, struct MHD_Connection *c,
                       struct dbt_admin_reply *out)
{
    static const char *const args[] = {"instance", "limit", NULL};
    if (!check_query(c, args, out)) {
        return;
    }
    size_t limit = 0;
    const char *ls = query(c, "limit");
    if (ls != NULL) {
        char *end = NULL;
        long long v = strtoll(ls, &end, 10);
        if (*end != '\0' || v < 1 || v > 1000000) {
            dbt_admin_error(out, 400, "limit \"%s\" is not a number from 1 to 1000000", ls);
            return;
        }
        limit = (size_t)v;
    }
    struct dbt_ctl_event_list l = {0};
    dbt_res r = dbt_ctl_events_list(x->ctl, query(c, "instance"), limit, &l);
    if (!dbt_ok(r)) {
        fail_res(out, r);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; a && i < l.n; i++) {
        json_array_append_new(a, dbt_view_event(&l.items[i]));
    }
    set_json(out, 200, items(a));
    dbt_ctl_event_list_cleanup(&l);
}

static void get_connections(struct dbt_admin_ctx *x, struct dbt_admin_reply *out)
{
    struct dbt_conn_row *rows = NULL;
    size_t n = 0;
    if (!dbt_ok(dbt_front_connections(x->front, &rows, &n))) {
        dbt_admin_error(out, 500, "%s", dbt_errmsg());
        return;
    }
    char *body = dbt_admin_connections_json(rows, n);
    free(rows);
    if (body == NULL) {
        dbt_admin_error(out, 500, "out of memory");
        return;
    }
    out->status = 200;
    out->body = body;
    out->len = strlen(body);
    out->content_type = "application/json";
}

/* ---- routing ----------------------------------------------------------------------------- */

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

struct verb {
    const char *name;
    enum dbt_ctl_slot_kind kind;
    int op; /* 0 add, 1 rotate, 2 rollback, 3 reset */
};

static const struct verb verbs[] = {
    {"addServerCa", DBT_CTL_SLOT_SERVER_CA, 0},
    {"rotateServerCa", DBT_CTL_SLOT_SERVER_CA, 1},
    {"rollbackServerCa", DBT_CTL_SLOT_SERVER_CA, 2},
    {"addServerCert", DBT_CTL_SLOT_SERVER_CERT, 0},
    {"rotateServerCert", DBT_CTL_SLOT_SERVER_CERT, 1},
    {"rollbackServerCert", DBT_CTL_SLOT_SERVER_CERT, 2},
    {"resetSslConfig", DBT_CTL_SLOT_SERVER_CERT, 3},
};

/* /v1/instances/{rest}: rest = NAME | NAME:verb | NAME/serverCas | NAME/serverCerts |
   NAME/sslCerts | NAME/sslCerts/WHICH */
static void route_instance(struct dbt_admin_ctx *x, const char *method, const char *url,
                           const char *rest, const char *body, size_t len,
                           struct dbt_admin_reply *out)
{
    char name[256];
    size_t n = strcspn(rest, "/:");
    if (n == 0 || n >= sizeof(name)) {
        dbt_admin_error(out, 404, "no such resource: %s", url);
        return;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    const char *tail = rest + n;

    if (tail[0] == '\0') {
        if (is(method, "GET")) {
            get_instance(x, name, out);
        } else if (is(method, "PATCH")) {
            patch_instance(x, name, body, len, out);
        } else if (is(method, "DELETE")) {
            delete_instance(x, name, out);
        } else {
            method_not_allowed(out, method, url, "GET, PATCH, DELETE");
        }
        return;
    }
    if (tail[0] == ':') {
        if (is(tail + 1, "generateEphemeralCert")) {
            if (!is(method, "POST")) {
                method_not_allowed(out, method, url, "POST");
            } else {
                ephemeral_cert(x, name, body, len, out);
            }
            return;
        }
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
            if (!is(tail + 1, verbs[i].name)) {
                continue;
            }
            if (!is(method, "POST")) {
                method_not_allowed(out, method, url, "POST");
            } else if (verbs[i].op == 0) {
                add_slot(x, name, verbs[i].kind, body, len, out);
            } else if (verbs[i].op == 3) {
                reset_ssl(x, name, body, len, out);
            } else {
                move_slot(x, name, verbs[i].kind, verbs[i].op == 1, body, len, out);
            }
            return;
        }
        dbt_admin_error(out, 404,
                        "unknown instance action \"%s\"; known: addServerCa, rotateServerCa, "
                        "rollbackServerCa, addServerCert, rotateServerCert, rollbackServerCert, "
                        "resetSslConfig, generateEphemeralCert",
                        tail + 1);
        return;
    }
    /* tail[0] == '/' */
    const char *sub = tail + 1;
    if (is(sub, "serverCas") || is(sub, "serverCerts")) {
        if (!is(method, "GET")) {
            method_not_allowed(out, method, url, "GET");
            return;
        }
        list_slots(x, name,
                   is(sub, "serverCas") ? DBT_CTL_SLOT_SERVER_CA : DBT_CTL_SLOT_SERVER_CERT, out);
        return;
    }
    if (is(sub, "sslCerts")) {
        if (is(method, "GET")) {
            list_ssl_certs(x, name, out);
        } else if (is(method, "POST")) {
            create_ssl_cert(x, name, body, len, out);
        } else {
            method_not_allowed(out, method, url, "GET, POST");
        }
        return;
    }
    if (strncmp(sub, "sslCerts/", 9) == 0 && sub[9] != '\0' && strchr(sub + 9, '/') == NULL) {
        if (is(method, "GET")) {
            get_ssl_cert(x, name, sub + 9, out);
        } else if (is(method, "DELETE")) {
            delete_ssl_cert(x, name, sub + 9, out);
        } else {
            method_not_allowed(out, method, url, "GET, DELETE");
        }
        return;
    }
    dbt_admin_error(out, 404, "no such resource: %s", url);
}

void dbt_admin_api_handle(struct dbt_admin_ctx *x, struct MHD_Connection *c, const char *method,
                          const char *url, const char *body, size_t len,
                          struct dbt_admin_reply *out)
{
    /* Every /v1 resource refuses query parameters it does not document (bundles and events
     * check their own lists), so a typo never silently widens or changes a result. */
    static const char *const no_args[] = {NULL};
    bool own_args = is(url, "/v1/bundles") || is(url, "/v1/events");
    if (c != NULL && strncmp(url, "/v1/", 4) == 0 && !own_args && !check_query(c, no_args, out)) {
        return;
    }
    if (is(url, "/v1/connections")) {
        if (!is(method, "GET")) {
            method_not_allowed(out, method, url, "GET");
        } else {
            get_connections(x, out);
        }
        return;
    }
    if (is(url, "/metrics")) { /* Prometheus (admin/metrics.c, owner: ops) */
        dbt_admin_metrics(x, method, out);
        return;
    }
    if (is(url, "/ui")) { /* the web page (admin/ui.c, owner: ui) */
        dbt_admin_ui(x, method, out);
        return;
    }
    if (x->ctl == NULL) {
        dbt_admin_error(out, 404, "no such resource: %s", url);
        return;
    }
    /* Fixed collections, each GET only (instances also POST). */
    static const char *const get_only[] = {"/v1/cas", "/v1/engines", "/v1/bundles", "/v1/events"};
    for (size_t i = 0; i < sizeof(get_only) / sizeof(get_only[0]); i++) {
        if (!is(url, get_only[i])) {
            continue;
        }
        if (!is(method, "GET")) {
            method_not_allowed(out, method, url, "GET");
        } else if (i == 0) {
            get_cas(x, out);
        } else if (i == 1) {
            get_engines(out);
        } else if (i == 2) {
            get_bundle(x, c, out);
        } else {
            get_events(x, c, out);
        }
        return;
    }
    if (is(url, "/v1/instances")) {
        if (is(method, "GET")) {
            list_instances(x, out);
        } else if (is(method, "POST")) {
            create_instance(x, body, len, out);
        } else {
            method_not_allowed(out, method, url, "GET, POST");
        }
        return;
    }
    if (strncmp(url, "/v1/instances/", 14) == 0) {
        route_instance(x, method, url, url + 14, body, len, out);
        return;
    }
    if (strncmp(url, "/v1/adminCerts", 14) == 0 && (url[14] == '\0' || url[14] == '/')) {
        dbt_admin_api_admin_certs(x, method, url, body, len, out);
        return;
    }
    dbt_admin_error(out, 404, "no such resource: %s", url);
}
