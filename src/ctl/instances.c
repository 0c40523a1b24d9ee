/*
 * instances.c - instances create / list / describe / patch / delete / reset-ssl-config / export:
 * validation of every attribute with errors that name the attribute and the bad value, then one
 * store transaction per operation.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "base/clock.h"
#include "ctl/internal.h"
#include "front/rules/hba.h"
#include "proto/my/myreq.h"

#define MAX_TEXT (1024 * 1024)
#define MAX_ENDPOINTS 100

void dbt_ctl_instance_cleanup(struct dbt_ctl_instance *p)
{
    if (!p) {
        return;
    }
    free(p->name);
    free(p->engine);
    free(p->engine_version);
    free(p->listen);
    free(p->backend);
    free(p->backend_tls_ca);
    ctl_strv_free(p->endpoints, p->n_endpoints);
    free(p->region);
    free(p->ca_mode);
    free(p->ca_id);
    free(p->tls_min);
    free(p->tls_max);
    free(p->ciphers);
    free(p->ciphersuites);
    free(p->groups);
    free(p->hba_text);
    free(p->ident_text);
    free(p->user_require_text);
    dbt_ctl_cert_cleanup(&p->server_cert);
    dbt_ctl_cert_cleanup(&p->server_ca_cert);
    memset(p, 0, sizeof *p);
}

void dbt_ctl_instance_list_cleanup(struct dbt_ctl_instance_list *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        dbt_ctl_instance_cleanup(&l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* ---- validation --------------------------------------------------------------------------- */

static dbt_res check_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n >= 1 && n <= 63 && isalpha((unsigned char)name[0]) && name[n - 1] != '-';
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)name[i]) || name[i] == '-';
    }
    if (!ok) {
        return dbt_fail(DBT_E_INVALID,
                        "invalid instance name \"%s\": use 1 to 63 letters, digits and hyphens, "
                        "starting with a letter and not ending with a hyphen",
                        name ? name : "");
    }
    return DBT_OK;
}

/* "host:port" or "[v6]:port" -> host (caller frees) and port. */
static bool split_hostport(const char *s, char **host, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || e[1] != ':') {
            return false;
        }
        h = s + 1;
        hl = (size_t)(e - h);
        colon = e + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon) {
            return false;
        }
        hl = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) {
        return false;
    }
    long v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            return false;
        }
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535 || hl == 0) {
        return false;
    }
    *host = strndup(h, hl);
    *port = (int)v;
    return *host != NULL;
}

static dbt_res check_listen(const char *s)
{
    char *host = NULL;
    int port = 0;
    bool ok = s && split_hostport(s, &host, &port);
    if (ok) {
        enum dbt_pki_endpoint_kind k = dbt_pki_endpoint_kind(host);
        ok = k == DBT_PKI_ENDPOINT_IPV4 || strcmp(host, "localhost") == 0 ||
             (k == DBT_PKI_ENDPOINT_IPV6 && s[0] == '[');
    }
    free(host);
    if (!ok) {
        return dbt_fail(DBT_E_INVALID,
                        "bad listen address \"%s\": expected IPV4:PORT, [IPV6]:PORT or "
                        "localhost:PORT with a port from 1 to 65535",
                        s ? s : "");
    }
    return DBT_OK;
}

static dbt_res check_backend(const char *s)
{
    if (s && s[0] == '/') {
        if (strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            return dbt_fail(DBT_E_INVALID,
                            "bad backend address \"%s\": unix socket path longer "
                            "than 107 bytes",
                            s);
        }
        return DBT_OK;
    }
    char *host = NULL;
    int port = 0;
    bool ok = s && split_hostport(s, &host, &port);
    if (ok) {
        enum dbt_pki_endpoint_kind k = dbt_pki_endpoint_kind(host);
        ok = k != DBT_PKI_ENDPOINT_INVALID && (k != DBT_PKI_ENDPOINT_IPV6 || s[0] == '[');
    }
    free(host);
    if (!ok) {
        return dbt_fail(DBT_E_INVALID,
                        "bad backend address \"%s\": expected HOST:PORT, [IPV6]:PORT or an "
                        "absolute unix socket path",
                        s ? s : "");
    }
    return DBT_OK;
}

static dbt_res check_endpoints(const char *s, char ***v, size_t *n)
{
    dbt_res res = DBT_OK;
    DBT_ENSURE(s && *s, INVALID, "at least one endpoint (DNS name or IP) is required");
    res = ctl_split(s, v, n);
    if (!dbt_ok(res)) {
        return dbt_fail(DBT_E_INVALID, "bad endpoint list \"%s\": empty item", s);
    }
    DBT_ENSURE(*n <= MAX_ENDPOINTS, INVALID, "too many endpoints (%zu, at most %d)", *n,
               MAX_ENDPOINTS);
    for (size_t i = 0; i < *n; i++) {
        DBT_TRY(dbt_pki_check_endpoint((*v)[i]));
        for (size_t j = 0; j < i; j++) {
            DBT_ENSURE(strcasecmp((*v)[i], (*v)[j]) != 0, INVALID, "endpoint \"%s\" is given twice",
                       (*v)[i]);
        }
    }
out:
    if (!dbt_ok(res)) {
        ctl_strv_free(*v, *n);
        *v = NULL;
        *n = 0;
    }
    return res;
}

static dbt_res check_region(const char *s)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 32;
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_';
    }
    return ok ? DBT_OK
              : dbt_fail(DBT_E_INVALID,
                         "invalid region \"%s\": use 1 to 32 letters, digits, '-' or '_'", s);
}

static int tls_rank(const char *v)
{
    static const char *const names[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
    for (size_t i = 0; v && i < DBT_ARRAY_LEN(names); i++) {
        if (strcmp(names[i], v) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static dbt_res check_tls(const struct dbt_engine_info *eng, const char *min, const char *max)
{
    const char *which[2] = {min, max};
    for (int i = 0; i < 2; i++) {
        if (tls_rank(which[i]) < 0) {
            return dbt_fail(DBT_E_INVALID,
                            "unknown TLS version \"%s\"; use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3",
                            which[i]);
        }
        bool supported = false;
        for (const char *const *t = eng->tls_versions; *t; t++) {
            supported = supported || strcmp(*t, which[i]) == 0;
        }
        if (!supported) {
            return dbt_fail(DBT_E_INVALID, "%s %s does not support %s", eng->engine, eng->version,
                            which[i]);
        }
    }
    if (tls_rank(min) > tls_rank(max)) {
        return dbt_fail(DBT_E_INVALID, "TLS minimum version %s is above the maximum %s", min, max);
    }
    return DBT_OK;
}

static dbt_res check_cipher_text(const char *what, const char *s)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 4096;
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)s[i]) || strchr(":+-!@=_.,", s[i]) != NULL;
    }
    return ok ? DBT_OK : dbt_fail(DBT_E_INVALID, "invalid %s \"%s\"", what, s);
}

static dbt_res check_text(const char *what, const char *s)
{
    if (s && strlen(s) > MAX_TEXT) {
        return dbt_fail(DBT_E_INVALID, "%s is larger than %d bytes", what, MAX_TEXT);
    }
    return DBT_OK;
}

/*
 * Access rules, ident map and REQUIRE rules are parsed here with the same parsers dbtlsd uses,
 * so a command (or API call) that stores them fails at once with the parser's line-numbered
 * message instead of the daemon refusing the next reload.
 */
static dbt_res check_rules(const char *hba_text, const char *ident_text, const char *require_text)
{
    dbt_res r = DBT_OK;
    if (hba_text) {
        struct dbt_hba *hba = NULL;
        r = dbt_hba_parse(hba_text, strlen(hba_text), "pg_hba.conf", &hba);
        dbt_hba_free(hba);
        if (!dbt_ok(r)) {
            return dbt_fail_ctx(r, "access rules: ");
        }
    }
    if (ident_text) {
        struct dbt_ident *ident = NULL;
        r = dbt_ident_parse(ident_text, strlen(ident_text), "pg_ident.conf", &ident);
        dbt_ident_free(ident);
        if (!dbt_ok(r)) {
            return dbt_fail_ctx(r, "ident map: ");
        }
    }
    if (require_text) {
        struct dbt_my_reqs reqs = {0};
        r = dbt_my_reqs_parse(require_text, &reqs);
        dbt_my_reqs_free(&reqs);
        if (!dbt_ok(r)) {
            return dbt_fail_ctx(r, "user requirements: ");
        }
    }
    return r;
}

/* Replaces *dst with a copy of src; "" clears to NULL when clearable. */
static void set_str(char **dst, const char *src, bool clearable)
{
    if (!src) {
        return;
    }
    free(*dst);
    *dst = clearable && !*src ? NULL : ctl_strdup(src);
}

/*
 * Applies spec onto p (a fully defaulted instance) and validates the result; the endpoints
 * list is replaced when given. Used by create (on a blank instance with defaults) and patch.
 */
static dbt_res apply_spec(struct dbt_ctl_instance *p, const struct dbt_ctl_instance_spec *spec)
{
    dbt_res res = DBT_OK;
    if (spec->engine_version) {
        set_str(&p->engine_version, spec->engine_version, false);
    }
    const struct dbt_engine_info *eng = dbt_ctl_engine_find(p->engine, p->engine_version);
    DBT_ENSURE(eng, INVALID, "unknown engine version %s %s; see `dbtls engines list`", p->engine,
               p->engine_version ? p->engine_version : "");
    set_str(&p->listen, spec->listen, false);
    set_str(&p->backend, spec->backend, false);
    set_str(&p->backend_tls_ca, spec->backend_tls_ca, true);
    if (spec->endpoints) {
        char **v = NULL;
        size_t n = 0;
        DBT_TRY(check_endpoints(spec->endpoints, &v, &n));
        ctl_strv_free(p->endpoints, p->n_endpoints);
        p->endpoints = v;
        p->n_endpoints = n;
    }
    set_str(&p->ca_mode, spec->ca_mode, false);
    set_str(&p->ca_id, spec->ca_id, false);
    if (spec->ssl_mode) {
        DBT_TRY(dbt_ctl_ssl_mode_parse(spec->ssl_mode, &p->ssl_mode));
    }
    set_str(&p->tls_min, spec->tls_min, false);
    set_str(&p->tls_max, spec->tls_max, false);
    set_str(&p->ciphers, spec->ciphers, false);
    set_str(&p->ciphersuites, spec->ciphersuites, true);
    set_str(&p->groups, spec->groups, true);
    set_str(&p->hba_text, spec->hba_text, true);
    set_str(&p->ident_text, spec->ident_text, true);
    set_str(&p->user_require_text, spec->user_require_text, true);
    if (spec->max_client_certs) {
        DBT_ENSURE(spec->max_client_certs >= 1 && spec->max_client_certs <= 1000, INVALID,
                   "max client certificates must be from 1 to 1000 (got %d)",
                   spec->max_client_certs);
        p->max_client_certs = spec->max_client_certs;
    }

    DBT_TRY(check_listen(p->listen));
    DBT_TRY(check_backend(p->backend));
    DBT_ENSURE(p->n_endpoints > 0, INVALID, "at least one endpoint (DNS name or IP) is required");
    DBT_ENSURE(strcmp(p->ca_mode, "shared") == 0 || strcmp(p->ca_mode, "per-instance") == 0,
               INVALID, "unknown CA mode \"%s\"; use shared or per-instance", p->ca_mode);
    DBT_TRY(ctl_ca_family_check(p->ca_id, NULL));
    bool ca_ok = false;
    for (const char *const *c = eng->ca_ids; *c; c++) {
        ca_ok = ca_ok || strcmp(*c, p->ca_id) == 0;
    }
    DBT_ENSURE(ca_ok, INVALID, "%s %s does not support CA %s", eng->engine, eng->version, p->ca_id);
    DBT_TRY(check_tls(eng, p->tls_min, p->tls_max));
    DBT_TRY(check_cipher_text("cipher list", p->ciphers));
    if (p->ciphersuites) {
        DBT_TRY(check_cipher_text("TLS 1.3 cipher suites", p->ciphersuites));
    }
    if (p->groups) {
        DBT_TRY(check_cipher_text("groups", p->groups));
    }
    DBT_ENSURE(!p->backend_tls_ca || p->backend_tls_ca[0] == '/', INVALID,
               "backend TLS CA file \"%s\" must be an absolute path", p->backend_tls_ca);
    DBT_TRY(check_text("access rules", p->hba_text));
    DBT_TRY(check_text("ident map", p->ident_text));
    DBT_TRY(check_text("user requirements", p->user_require_text));
    DBT_TRY(check_rules(p->hba_text, p->ident_text, p->user_require_text));
out:
    return res;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char *join_endpoints(const struct dbt_ctl_instance *p)
{
    char *acc = ctl_strdup("");
    for (size_t i = 0; i < p->n_endpoints; i++) {
        char *n = ctl_printf("%s%s%s", acc, i ? "," : "", p->endpoints[i]);
        free(acc);
        acc = n;
    }
    return acc;
}

static dbt_res check_listen_free(struct dbt_ctl *ctl, const char *listen, int64_t self_id)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_BY_LISTEN, &s));
    dbt_stmt_bind_text(s, 1, listen);
    dbt_stmt_bind_int(s, 2, self_id);
    DBT_TRY(dbt_stmt_step(s, &row));
    if (row) {
        DBT_BAIL(EXISTS, "listen address %s is already used by instance \"%s\"", listen,
                 dbt_stmt_text(s, 0));
    }
out:
    return res;
}

dbt_res ctl_instance_names(struct dbt_ctl *ctl, char ***names, size_t *n)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    *names = NULL;
    *n = 0;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_NAMES, &s));
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        DBT_TRY(ctl_strv_push(names, n, dbt_stmt_text(s, 0)));
    }
out:
    if (!dbt_ok(res)) {
        ctl_strv_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return res;
}

static dbt_res update_row(struct dbt_ctl *ctl, int64_t id, const struct dbt_ctl_instance *p)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_UPDATE, &s);
    if (!dbt_ok(r)) {
        return r;
    }
    char *eps = join_endpoints(p);
    dbt_stmt_bind_int(s, 1, id);
    dbt_stmt_bind_text(s, 2, p->engine_version);
    dbt_stmt_bind_text(s, 3, p->listen);
    dbt_stmt_bind_text(s, 4, p->backend);
    dbt_stmt_bind_text(s, 5, p->backend_tls_ca);
    dbt_stmt_bind_text(s, 6, eps);
    dbt_stmt_bind_text(s, 7, p->ca_mode);
    dbt_stmt_bind_text(s, 8, p->ca_id);
    dbt_stmt_bind_text(s, 9, dbt_ctl_ssl_mode_name(p->ssl_mode));
    dbt_stmt_bind_text(s, 10, p->tls_min);
    dbt_stmt_bind_text(s, 11, p->tls_max);
    dbt_stmt_bind_text(s, 12, p->ciphers);
    dbt_stmt_bind_text(s, 13, p->ciphersuites);
    dbt_stmt_bind_text(s, 14, p->groups);
    dbt_stmt_bind_text(s, 15, p->hba_text);
    dbt_stmt_bind_text(s, 16, p->ident_text);
    dbt_stmt_bind_text(s, 17, p->user_require_text);
    dbt_stmt_bind_int(s, 18, p->max_client_certs);
    dbt_stmt_bind_int(s, 19, dbt_now_unix());
    r = dbt_stmt_exec(s);
    free(eps);
    return r;
}

/* Fills out (a copy of in->pub plus the active server cert and its CA) for callers. */
static dbt_res describe_loaded(struct dbt_ctl *ctl, struct ctl_inst *in,
                               struct dbt_ctl_instance *out)
{
    dbt_res res = DBT_OK;
    struct ctl_slots slots = {0};
    char *ca_pem = NULL;
    DBT_TRY(ctl_slots_load(ctl, in->id, &slots));
    struct ctl_slot *a = ctl_slots_find(&slots, "active");
    DBT_ENSURE(a, CORRUPT, "instance \"%s\" has no active server certificate", in->pub.name);
    DBT_TRY(ctl_cert_fill(a->cert_pem, "active", NULL, in->pub.name, a->created_at,
                          &in->pub.server_cert));
    if (a->ca_pem) {
        ca_pem = ctl_strdup(a->ca_pem);
    } else {
        DBT_TRY(ctl_shared_ca(ctl, a->shared_ca_id, a->shared_region, NULL, NULL, NULL, &ca_pem));
    }
    DBT_TRY(ctl_cert_fill(ca_pem, "active", NULL, a->ca_pem ? in->pub.name : NULL, 0,
                          &in->pub.server_ca_cert));
    *out = in->pub;
    memset(&in->pub, 0, sizeof in->pub);
out:
    free(ca_pem);
    ctl_slots_cleanup(&slots);
    return res;
}

static dbt_res describe_in_txn(struct dbt_ctl *ctl, const char *name, struct dbt_ctl_instance *out)
{
    struct ctl_inst in = {0};
    dbt_res r = ctl_inst_load(ctl, name, &in);
    if (dbt_ok(r)) {
        r = describe_loaded(ctl, &in, out);
    }
    ctl_inst_cleanup(&in);
    return r;
}

/* ---- operations ----------------------------------------------------------------------------- */

/*
 * The instance create makes, in p: defaults, the store's default CA, spec applied and
 * validated; EXISTS when the name or the listen address is taken. Inside a transaction: create
 * runs it once to plan the keys and again under the write lock, where it re-checks everything.
 */
static dbt_res create_prepare(struct dbt_ctl *ctl, const char *name,
                              const struct dbt_engine_info *eng,
                              const struct dbt_ctl_instance_spec *spec, struct dbt_ctl_instance *p)
{
    dbt_res res = DBT_OK;
    dbt_ctl_instance_cleanup(p);
    p->name = ctl_strdup(name);
    p->engine = ctl_strdup(eng->engine);
    p->engine_version = ctl_strdup(eng->version);
    p->region = ctl_strdup(spec->region && *spec->region ? spec->region : DBT_CTL_DEFAULT_REGION);
    DBT_TRY(check_region(p->region));
    p->ca_mode = ctl_strdup("shared");
    p->ssl_mode = DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED;
    p->max_client_certs = DBT_CTL_DEFAULT_MAX_CLIENT_CERTS;
    p->ciphers = ctl_strdup(eng->default_ciphers);
    DBT_TRY(ctl_default_ca_id(ctl, &p->ca_id));
    /* TLS defaults follow the engine version chosen. */
    const struct dbt_engine_info *ver = dbt_ctl_engine_find(
        p->engine, spec->engine_version ? spec->engine_version : p->engine_version);
    p->tls_min = ctl_strdup(ver ? ver->default_tls_min : DBT_CTL_DEFAULT_TLS_MIN);
    p->tls_max = ctl_strdup(ver ? ver->default_tls_max : DBT_CTL_DEFAULT_TLS_MAX);
    DBT_TRY(apply_spec(p, spec));

    struct ctl_inst dup = {0};
    res = ctl_inst_load(ctl, name, &dup);
    ctl_inst_cleanup(&dup);
    if (dbt_ok(res)) {
        DBT_BAIL(EXISTS, "instance \"%s\" already exists", name);
    }
    DBT_ENSURE(res.code == DBT_E_NOT_FOUND, STORE, "%s", dbt_errmsg());
    res = DBT_OK;
    DBT_TRY(check_listen_free(ctl, p->listen, -1));
out:
    return res;
}

/* One attempt of create: plan the keys (read transaction), generate them (no lock), then the
   write transaction. keys->stale on return: the store changed in between; try again. */
static dbt_res create_once(struct dbt_ctl *ctl, const char *name, const struct dbt_engine_info *eng,
                           const struct dbt_ctl_instance_spec *spec,
                           const struct dbt_ctl_validity *validity, struct ctl_keys *keys,
                           struct dbt_ctl_instance *out)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl_instance p = {0};
    struct ctl_slot slot = {0};
    char *eps = NULL, *ca_pem = NULL, *sha1 = NULL, *crl = NULL;
    uint8_t *ca_key = NULL;
    size_t ca_key_len = 0;
    struct dbt_stmt *s = NULL;

    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(create_prepare(ctl, name, eng, spec, &p));
    DBT_TRY(ctl_build_slot_keys(ctl, &p, keys));
    ctl_keys_want(keys, CTL_CLIENT_CA_KEY);
    dbt_store_rollback(ctl->st);
    DBT_TRY(ctl_keys_generate(keys));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(create_prepare(ctl, name, eng, spec, &p));
    DBT_TRY(ctl_build_slot(ctl, &p, validity, keys, &slot));
    /* The CRL needs the instance id only to look up revocations; a new one has none. */
    DBT_TRY(ctl_new_client_ca(ctl, -1, name, validity, keys, &ca_pem, &ca_key, &ca_key_len, &sha1,
                              &crl));
    eps = join_endpoints(&p);
    int64_t now = dbt_now_unix();
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_ADD, &s));
    dbt_stmt_bind_text(s, 1, p.name);
    dbt_stmt_bind_text(s, 2, p.engine);
    dbt_stmt_bind_text(s, 3, p.engine_version);
    dbt_stmt_bind_text(s, 4, p.listen);
    dbt_stmt_bind_text(s, 5, p.backend);
    dbt_stmt_bind_text(s, 6, p.backend_tls_ca);
    dbt_stmt_bind_text(s, 7, eps);
    dbt_stmt_bind_text(s, 8, p.region);
    dbt_stmt_bind_text(s, 9, p.ca_mode);
    dbt_stmt_bind_text(s, 10, p.ca_id);
    dbt_stmt_bind_text(s, 11, dbt_ctl_ssl_mode_name(p.ssl_mode));
    dbt_stmt_bind_text(s, 12, p.tls_min);
    dbt_stmt_bind_text(s, 13, p.tls_max);
    dbt_stmt_bind_text(s, 14, p.ciphers);
    dbt_stmt_bind_text(s, 15, p.ciphersuites);
    dbt_stmt_bind_text(s, 16, p.groups);
    dbt_stmt_bind_text(s, 17, p.hba_text);
    dbt_stmt_bind_text(s, 18, p.ident_text);
    dbt_stmt_bind_text(s, 19, p.user_require_text);
    dbt_stmt_bind_int(s, 20, p.max_client_certs);
    dbt_stmt_bind_int(s, 21, now);
    dbt_stmt_bind_int(s, 22, now);
    dbt_stmt_bind_text(s, 23, ca_pem);
    dbt_stmt_bind_blob(s, 24, ca_key, ca_key_len);
    dbt_stmt_bind_text(s, 25, sha1);
    dbt_stmt_bind_text(s, 26, crl);
    dbt_stmt_bind_int(s, 27, 1);
    bool row = false;
    DBT_TRY(dbt_stmt_step(s, &row));
    DBT_ENSURE(row, INTERNAL, "instance insert returned no id");
    int64_t id = dbt_stmt_int(s, 0);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("create-mid");
    DBT_TRY(ctl_slot_put(ctl, id, "active", &slot));
    char *obj = ctl_printf("instance/%s", name);
    res = ctl_event(ctl, "instance.create", obj,
                    "engine=%s version=%s listen=%s backend=%s endpoints=%s region=%s "
                    "ca_mode=%s ca=%s ssl_mode=%s",
                    p.engine, p.engine_version, p.listen, p.backend, eps, p.region, p.ca_mode,
                    p.ca_id, dbt_ctl_ssl_mode_name(p.ssl_mode));
    free(obj);
    DBT_TRY(res);
    if (out) {
        DBT_TRY(describe_in_txn(ctl, name, out));
    }
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res) && out) {
        dbt_ctl_instance_cleanup(out);
    }
    dbt_ctl_instance_cleanup(&p);
    ctl_slot_cleanup(&slot);
    free(eps);
    free(ca_pem);
    free(ca_key);
    free(sha1);
    free(crl);
    return res;
}

dbt_res dbt_ctl_instance_create(struct dbt_ctl *ctl, const char *name,
                                const struct dbt_ctl_instance_spec *spec,
                                const struct dbt_ctl_validity *validity,
                                struct dbt_ctl_instance *out)
{
    if (out) {
        memset(out, 0, sizeof *out);
    }
    dbt_res res = DBT_OK;
    struct ctl_keys keys = {0};
    DBT_TRY(check_name(name));
    DBT_ENSURE(spec, INVALID, "no instance attributes given");
    DBT_ENSURE(spec->engine && *spec->engine, INVALID,
               "an engine is required (postgres, mysql or mariadb)");
    const struct dbt_engine_info *eng = dbt_ctl_engine_find(spec->engine, NULL);
    DBT_ENSURE(eng, INVALID, "unknown engine \"%s\"; use postgres, mysql or mariadb", spec->engine);
    DBT_ENSURE(spec->listen, INVALID, "a listen address (HOST:PORT) is required");
    DBT_ENSURE(spec->backend, INVALID, "a backend address (HOST:PORT or socket path) is required");
    DBT_ENSURE(spec->endpoints, INVALID, "at least one endpoint (DNS name or IP) is required");
    for (int i = 0; i < CTL_KEYS_TRIES; i++) {
        ctl_keys_cleanup(&keys);
        res = create_once(ctl, name, eng, spec, validity, &keys, out);
        if (!keys.stale) {
            break;
        }
    }
out:
    ctl_keys_cleanup(&keys);
    return res;
}

dbt_res dbt_ctl_instance_list(struct dbt_ctl *ctl, struct dbt_ctl_instance_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct dbt_ctl_instance_list l = {0};
    char **names = NULL;
    size_t n = 0;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_instance_names(ctl, &names, &n));
    l.items = calloc(n ? n : 1, sizeof *l.items);
    DBT_ENSURE(l.items, NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        DBT_TRY(describe_in_txn(ctl, names[i], &l.items[i]));
        l.n++;
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = l;
    memset(&l, 0, sizeof l);
out:
    dbt_store_rollback(ctl->st);
    ctl_strv_free(names, n);
    dbt_ctl_instance_list_cleanup(&l);
    return res;
}

dbt_res dbt_ctl_instance_describe(struct dbt_ctl *ctl, const char *name,
                                  struct dbt_ctl_instance *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(describe_in_txn(ctl, name, out));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        dbt_ctl_instance_cleanup(out);
    }
    return res;
}

/* What a patch changes, beside the row. */
struct patch_change {
    char *new_eps;
    bool to_shared; /* per-instance -> shared: a new active server cert under the shared CA */
    bool new_ca;    /* shared mode under another CA: the same */
    bool new_sans;  /* new endpoints: the served certs are re-issued */
};

static void patch_change_cleanup(struct patch_change *ch)
{
    free(ch->new_eps);
    memset(ch, 0, sizeof *ch);
}

/*
 * Loads the instance into in and applies spec onto in->pub (validated, listen address free);
 * fills ch. Inside a transaction: patch runs it once to plan the keys and again under the write
 * lock, where it re-checks everything against the current row.
 */
static dbt_res patch_prepare(struct dbt_ctl *ctl, const char *name,
                             const struct dbt_ctl_instance_spec *spec, struct ctl_inst *in,
                             struct patch_change *ch)
{
    dbt_res res = DBT_OK;
    char *old_mode = NULL, *old_ca = NULL, *old_eps = NULL;
    ctl_inst_cleanup(in);
    patch_change_cleanup(ch);
    DBT_TRY(ctl_inst_load(ctl, name, in));
    struct dbt_ctl_instance *p = &in->pub;
    DBT_ENSURE(!spec->engine || strcmp(spec->engine, p->engine) == 0, INVALID,
               "instance \"%s\": the engine cannot change (%s); create a new instance", name,
               p->engine);
    DBT_ENSURE(!spec->region || strcmp(spec->region, p->region) == 0, INVALID,
               "instance \"%s\": the region cannot change (%s)", name, p->region);
    old_mode = ctl_strdup(p->ca_mode);
    old_ca = ctl_strdup(p->ca_id);
    old_eps = join_endpoints(p);
    DBT_TRY(apply_spec(p, spec));
    ch->new_eps = join_endpoints(p);
    ch->to_shared = strcmp(old_mode, "per-instance") == 0 && strcmp(p->ca_mode, "shared") == 0;
    DBT_ENSURE(!(strcmp(old_mode, "shared") == 0 && strcmp(p->ca_mode, "per-instance") == 0), STATE,
               "instance \"%s\" cannot move from the shared CA mode to per-instance; only "
               "per-instance -> shared is allowed",
               name);
    DBT_TRY(check_listen_free(ctl, p->listen, in->id));
    ch->new_ca = strcmp(p->ca_mode, "shared") == 0 && strcmp(old_ca, p->ca_id) != 0;
    ch->new_sans = strcmp(old_eps, ch->new_eps) != 0;
out:
    free(old_mode);
    free(old_ca);
    free(old_eps);
    return res;
}

/* Plans the keys of a patch (inside the read transaction after patch_prepare). */
static dbt_res patch_keys(struct dbt_ctl *ctl, const struct ctl_inst *in,
                          const struct patch_change *ch, struct ctl_keys *keys)
{
    dbt_res res = DBT_OK;
    struct ctl_slots slots = {0};
    bool fresh = ch->to_shared || ch->new_ca;
    if (fresh) {
        DBT_TRY(ctl_build_slot_keys(ctl, &in->pub, keys));
    }
    if (ch->new_sans) {
        /* Re-issued: every slot but previous; after a new active only that one is left. */
        DBT_TRY(ctl_slots_load(ctl, in->id, &slots));
        for (size_t i = 0; i < slots.n; i++) {
            if (strcmp(slots.v[i].slot, "previous") != 0 &&
                (!fresh || strcmp(slots.v[i].slot, "active") == 0)) {
                ctl_keys_want(keys, CTL_LEAF_KEY);
            }
        }
    }
out:
    ctl_slots_cleanup(&slots);
    return res;
}

/* One attempt of patch (see create_once). */
static dbt_res patch_once(struct dbt_ctl *ctl, const char *name,
                          const struct dbt_ctl_instance_spec *spec,
                          const struct dbt_ctl_validity *validity, struct ctl_keys *keys,
                          struct dbt_ctl_instance *out)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    struct ctl_slot fresh = {0};
    struct patch_change ch = {0};
    char *obj = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(patch_prepare(ctl, name, spec, &in, &ch));
    DBT_TRY(patch_keys(ctl, &in, &ch, keys));
    dbt_store_rollback(ctl->st);
    DBT_TRY(ctl_keys_generate(keys));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(patch_prepare(ctl, name, spec, &in, &ch));
    struct dbt_ctl_instance *p = &in.pub;
    DBT_TRY(update_row(ctl, in.id, p));

    if (ch.to_shared || ch.new_ca) {
        /* A new active certificate under the (new) shared CA; the old active stays as previous
           so that a rollback returns to it; an unused upcoming is dropped. */
        DBT_TRY(ctl_build_slot(ctl, p, validity, keys, &fresh));
        struct dbt_stmt *s = NULL;
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SLOT_DELETE, &s));
        dbt_stmt_bind_int(s, 1, in.id);
        dbt_stmt_bind_text(s, 2, "previous");
        DBT_TRY(dbt_stmt_exec(s));
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SLOT_DELETE, &s));
        dbt_stmt_bind_int(s, 1, in.id);
        dbt_stmt_bind_text(s, 2, "upcoming");
        DBT_TRY(dbt_stmt_exec(s));
        DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SLOT_RENAME, &s));
        dbt_stmt_bind_int(s, 1, in.id);
        dbt_stmt_bind_text(s, 2, "active");
        dbt_stmt_bind_text(s, 3, "previous");
        DBT_TRY(dbt_stmt_exec(s));
        ctl_fault("patch-mid");
        DBT_TRY(ctl_slot_put(ctl, in.id, "active", &fresh));
    } else if (ch.new_sans) {
        ctl_fault("patch-mid");
    }
    if (ch.new_sans) {
        /* Certificates that will still be served get the new SAN; previous stays as it was. */
        DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
        for (size_t i = 0; i < slots.n; i++) {
            if (strcmp(slots.v[i].slot, "previous") == 0) {
                continue;
            }
            DBT_TRY(ctl_reissue_leaf(ctl, p, validity, keys, &slots.v[i]));
            DBT_TRY(ctl_slot_put(ctl, in.id, slots.v[i].slot, &slots.v[i]));
        }
    }
    obj = ctl_printf("instance/%s", name);
    DBT_TRY(ctl_event(ctl, "instance.patch", obj,
                      "listen=%s backend=%s endpoints=%s ca_mode=%s ca=%s ssl_mode=%s tls=%s-%s "
                      "max_client_certs=%d%s%s",
                      p->listen, p->backend, ch.new_eps, p->ca_mode, p->ca_id,
                      dbt_ctl_ssl_mode_name(p->ssl_mode), p->tls_min, p->tls_max,
                      p->max_client_certs,
                      (ch.to_shared || ch.new_ca) ? " reissued=server-cert" : "",
                      ch.new_sans ? " reissued=san" : ""));
    if (out) {
        DBT_TRY(describe_in_txn(ctl, name, out));
    }
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res) && out) {
        dbt_ctl_instance_cleanup(out);
    }
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    ctl_slot_cleanup(&fresh);
    patch_change_cleanup(&ch);
    free(obj);
    return res;
}

dbt_res dbt_ctl_instance_patch(struct dbt_ctl *ctl, const char *name,
                               const struct dbt_ctl_instance_spec *spec,
                               const struct dbt_ctl_validity *validity,
                               struct dbt_ctl_instance *out)
{
    if (out) {
        memset(out, 0, sizeof *out);
    }
    dbt_res res = DBT_OK;
    struct ctl_keys keys = {0};
    DBT_ENSURE(spec, INVALID, "no instance attributes given");
    for (int i = 0; i < CTL_KEYS_TRIES; i++) {
        ctl_keys_cleanup(&keys);
        res = patch_once(ctl, name, spec, validity, &keys, out);
        if (!keys.stale) {
            break;
        }
    }
out:
    ctl_keys_cleanup(&keys);
    return res;
}

dbt_res dbt_ctl_instance_delete(struct dbt_ctl *ctl, const char *name)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct dbt_stmt *s = NULL;
    char *obj = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_DELETE, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    DBT_TRY(dbt_stmt_exec(s));
    obj = ctl_printf("instance/%s", name);
    DBT_TRY(ctl_event(ctl, "instance.delete", obj, "client_certs=%d", in.pub.n_client_certs));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    free(obj);
    return res;
}

/* One attempt of reset-ssl-config (see create_once). */
static dbt_res reset_once(struct dbt_ctl *ctl, const char *name,
                          const struct dbt_ctl_validity *validity, struct ctl_keys *keys)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slot slot = {0};
    struct dbt_stmt *s = NULL;
    char *ca_pem = NULL, *sha1 = NULL, *crl = NULL, *obj = NULL;
    uint8_t *ca_key = NULL;
    size_t ca_key_len = 0;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    DBT_TRY(ctl_build_slot_keys(ctl, &in.pub, keys));
    ctl_keys_want(keys, CTL_CLIENT_CA_KEY);
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    DBT_TRY(ctl_keys_generate(keys));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    /* Revoke every client certificate under the old client CA (kept in the audit trail). */
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_LIST, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    size_t revoked = 0;
    int64_t now = dbt_now_unix();
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_stmt *r = NULL;
        char *cname = ctl_strdup(dbt_stmt_text(s, 0));
        char *serial = ctl_strdup(dbt_stmt_text(s, 1));
        char *csha1 = ctl_strdup(dbt_stmt_text(s, 2));
        res = dbt_store_stmt(ctl->st, DBT_SQL_REVOKE_ADD, &r);
        if (dbt_ok(res)) {
            dbt_stmt_bind_int(r, 1, in.id);
            dbt_stmt_bind_text(r, 2, in.client_ca_sha1);
            dbt_stmt_bind_text(r, 3, serial);
            dbt_stmt_bind_text(r, 4, cname);
            dbt_stmt_bind_text(r, 5, csha1);
            dbt_stmt_bind_int(r, 6, now);
            res = dbt_stmt_exec(r);
        }
        free(cname);
        free(serial);
        free(csha1);
        DBT_TRY(res);
        revoked++;
    }
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_DELETE_ALL, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    DBT_TRY(dbt_stmt_exec(s));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_SLOT_DELETE_ALL, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    DBT_TRY(dbt_stmt_exec(s));
    ctl_fault("reset-mid");
    DBT_TRY(ctl_build_slot(ctl, &in.pub, validity, keys, &slot));
    DBT_TRY(ctl_slot_put(ctl, in.id, "active", &slot));
    DBT_TRY(ctl_new_client_ca(ctl, in.id, name, validity, keys, &ca_pem, &ca_key, &ca_key_len,
                              &sha1, &crl));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_SET_CLIENT_CA, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, ca_pem);
    dbt_stmt_bind_blob(s, 3, ca_key, ca_key_len);
    dbt_stmt_bind_text(s, 4, sha1);
    dbt_stmt_bind_text(s, 5, crl);
    dbt_stmt_bind_int(s, 6, 1);
    dbt_stmt_bind_int(s, 7, now);
    DBT_TRY(dbt_stmt_exec(s));
    obj = ctl_printf("instance/%s", name);
    DBT_TRY(ctl_event(ctl, "instance.reset-ssl-config", obj, "client_certs_revoked=%zu ca_mode=%s",
                      revoked, in.pub.ca_mode));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    ctl_slot_cleanup(&slot);
    free(ca_pem);
    free(ca_key);
    free(sha1);
    free(crl);
    free(obj);
    return res;
}

dbt_res dbt_ctl_instance_reset_ssl(struct dbt_ctl *ctl, const char *name,
                                   const struct dbt_ctl_validity *validity)
{
    dbt_res res = DBT_OK;
    struct ctl_keys keys = {0};
    for (int i = 0; i < CTL_KEYS_TRIES; i++) {
        ctl_keys_cleanup(&keys);
        res = reset_once(ctl, name, validity, &keys);
        if (!keys.stale) {
            break;
        }
    }
    ctl_keys_cleanup(&keys);
    return res;
}
