/*
 * api_admin_certs.c - the admin client certificates as resources of the admin API
 * (docs/admin-api.md), the remote form of `dbtls admin-certs list|revoke` (ctl/admin_ca.h):
 *
 *   GET  /v1/adminCerts                         {"items": [admin certificate]}
 *   POST /v1/adminCerts/{NAME_OR_SHA1}:revoke   {"items": [the certificates it revoked]}
 *
 * Both answer with the JSON view the local commands print with --format json (view.c), and
 * are served on both listeners. An admin may revoke its own certificate: this request is
 * answered, and the TCP listener refuses the certificate from its next trust reload (about a
 * second: trust.c watches the store's change counter).
 */
#include <jansson.h>
#include <string.h>

#include "admin/internal.h"
#include "admin/view.h"
#include "ctl/admin_ca.h"

/* The reply of a call that gave l: {"items": [...]}, or r's error; frees l. */
static void reply_items(struct dbt_admin_reply *out, dbt_res r, struct dbt_ctl_admin_cert_list *l)
{
    if (!dbt_ok(r)) {
        dbt_admin_fail(out, r);
    } else {
        json_t *a = dbt_view_admin_cert_list(l);
        dbt_admin_json(out, 200, a ? json_pack("{s:o}", "items", a) : NULL);
    }
    dbt_ctl_admin_cert_list_cleanup(l);
}

static void list_admin_certs(struct dbt_admin_ctx *x, struct dbt_admin_reply *out)
{
    struct dbt_ctl_admin_cert_list l = {0};
    reply_items(out, dbt_ctl_admin_cert_list(x->ctl, &l), &l);
}

static void revoke_admin_cert(struct dbt_admin_ctx *x, const char *key, const char *body,
                              size_t len, struct dbt_admin_reply *out)
{
    static const char *const no_fields[] = {NULL};
    struct dbt_ctl_admin_cert_list l = {0};
    json_t *doc = dbt_admin_parse_body(body, len, no_fields, true, out);
    if (doc == NULL) {
        return;
    }
    json_decref(doc);
    reply_items(out, dbt_ctl_admin_cert_revoke(x->ctl, key, &l), &l);
}

void dbt_admin_api_admin_certs(struct dbt_admin_ctx *x, const char *method, const char *url,
                               const char *body, size_t len, struct dbt_admin_reply *out)
{
    const char *rest = url + strlen("/v1/adminCerts");
    if (rest[0] == '\0') {
        if (strcmp(method, "GET") == 0) {
            list_admin_certs(x, out);
        } else {
            dbt_admin_method_not_allowed(out, method, url, "GET");
        }
        return;
    }
    /* rest = "/KEY:verb". A SHA-1 may be written with colons (AB:CD:...), a name never holds
       one ([A-Za-z0-9._ -]), so the verb is what follows the last colon. */
    const char *key = rest + 1;
    const char *colon = strrchr(key, ':');
    if (colon == NULL || colon == key || strchr(key, '/') != NULL) {
        dbt_admin_error(
            out, 404, "no such resource: %s (revoke with POST /v1/adminCerts/NAME_OR_SHA1:revoke)",
            url);
        return;
    }
    if (strcmp(colon + 1, "revoke") != 0) {
        dbt_admin_error(out, 404, "unknown admin certificate action \"%s\"; known: revoke",
                        colon + 1);
        return;
    }
    if (strcmp(method, "POST") != 0) {
        dbt_admin_method_not_allowed(out, method, url, "POST");
        return;
    }
    char which[256];
    size_t n = (size_t)(colon - key);
    if (n >= sizeof(which)) {
        dbt_admin_error(out, 404, "admin certificate \"%.64s...\" does not exist", key);
        return;
    }
    memcpy(which, key, n);
    which[n] = '\0';
    revoke_admin_cert(x, which, body, len, out);
}
