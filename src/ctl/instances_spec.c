/*
 * instances_spec.c - validating instance attributes: the name, region, listen and backend
 * addresses, endpoints, TLS versions and cipher text, and the access rules (parsed with the
 * daemon's own parsers), each error naming the attribute and the bad value; and applying a
 * spec onto an instance for create and patch (instances.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "ctl/instances.h"
#include "ctl/internal.h"
#include "front/rules/hba.h"
#include "proto/my/myreq.h"

#define MAX_TEXT (1024 * 1024)
#define MAX_ENDPOINTS 100

dbt_res ctl_instance_check_name(const char *name)
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

bool dbt_ctl_split_hostport(const char *s, char **host, int *port)
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
    bool ok = s && dbt_ctl_split_hostport(s, &host, &port);
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
    bool ok = s && dbt_ctl_split_hostport(s, &host, &port);
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

dbt_res ctl_instance_check_region(const char *s)
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
static dbt_res check_rules(const char *hba_text, const char *ident_text, const char *require_text,
                           int pg_major)
{
    dbt_res r = DBT_OK;
    if (hba_text) {
        struct dbt_hba *hba = NULL;
        r = dbt_hba_parse(hba_text, strlen(hba_text), "pg_hba.conf", &hba);
        /* the rules are also what `instances export` writes for the server itself: an option
           its version does not know would stop it, with the same words */
        for (size_t i = 0; dbt_ok(r) && pg_major > 0 && pg_major < 14 && i < dbt_hba_count(hba);
             i++) {
            const struct dbt_hba_rule *rule = dbt_hba_rule_at(hba, i);
            if (rule->clientname_given) {
                r = dbt_fail(DBT_E_INVALID,
                             "unrecognized authentication option name: \"clientname\" (line %d "
                             "of configuration file \"pg_hba.conf\"): PostgreSQL %d does not "
                             "know it (it came with 14)",
                             rule->line, pg_major);
            }
        }
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
dbt_res ctl_instance_apply_spec(struct dbt_ctl *ctl, struct dbt_ctl_instance *p,
                                const struct dbt_ctl_instance_spec *spec)
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
    set_str(&p->backend_tls_cert, spec->backend_tls_cert, true);
    set_str(&p->backend_tls_key, spec->backend_tls_key, true);
    if (spec->client_info) {
        DBT_ENSURE(strcmp(spec->client_info, "on") == 0 || strcmp(spec->client_info, "off") == 0,
                   INVALID, "client info must be on or off (got \"%s\")", spec->client_info);
        p->client_info = strcmp(spec->client_info, "on") == 0;
    }
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
    struct ctl_ca_family fam;
    DBT_TRY(ctl_ca_lookup(ctl, p->ca_id, &fam));
    DBT_ENSURE(!fam.imported || strcmp(p->ca_mode, "shared") == 0, INVALID,
               "CA %s is imported: it issues server certificates in shared mode only "
               "(per-instance mode makes a CA of a dbtls family for the instance)",
               p->ca_id);
    bool ca_ok = fam.imported; /* any engine: the engines table lists the built-in families */
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
    DBT_ENSURE(!p->backend_tls_cert || p->backend_tls_cert[0] == '/', INVALID,
               "backend TLS certificate file \"%s\" must be an absolute path", p->backend_tls_cert);
    DBT_ENSURE(!p->backend_tls_key || p->backend_tls_key[0] == '/', INVALID,
               "backend TLS key file \"%s\" must be an absolute path", p->backend_tls_key);
    DBT_ENSURE(!p->backend_tls_cert == !p->backend_tls_key, INVALID,
               "a backend TLS client certificate needs both --backend-tls-cert and "
               "--backend-tls-key");
    DBT_ENSURE(!p->backend_tls_cert || p->backend_tls_ca, INVALID,
               "--backend-tls-cert needs --backend-tls-ca (the client certificate is shown on a "
               "TLS connection to the backend)");
    DBT_TRY(check_text("access rules", p->hba_text));
    DBT_TRY(check_text("ident map", p->ident_text));
    DBT_TRY(check_text("user requirements", p->user_require_text));
    int pg_major = strcmp(p->engine, "postgres") == 0 ? atoi(p->engine_version) : 0;
    DBT_TRY(check_rules(p->hba_text, p->ident_text, p->user_require_text, pg_major));
out:
    return res;
}
