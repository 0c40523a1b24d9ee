/*
 * json_in.c - JSON fields into control-library arguments (json_in.h): the admin API's request
 * bodies and `dbtls apply`'s fleet file share these readers, so a field means and refuses the
 * same in both.
 */
#include "admin/json_in.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The instance fields create and PATCH both take. */
#define INSTANCE_FIELDS                                                                            \
    "engine", "engineVersion", "listen", "backend", "backendTlsCa", "backendTlsCert",              \
        "backendTlsKey", "clientInfo", "endpoints", "caMode", "caId", "sslMode", "tlsMinVersion",  \
        "tlsMaxVersion", "ciphers", "ciphersuites", "groups", "hbaRules", "identMap",              \
        "userRequire", "maxClientCerts", "validitySeconds", "caValiditySeconds"

const char *const dbt_json_instance_fields_create[] = {"name", "region", INSTANCE_FIELDS, NULL};
const char *const dbt_json_instance_fields_patch[] = {INSTANCE_FIELDS, NULL};

/* Whether key is in the NULL-terminated list (NULL: an empty one). */
static bool listed(const char *const *list, const char *key)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        if (strcmp(list[i], key) == 0) {
            return true;
        }
    }
    return false;
}

dbt_res dbt_json_fields_check(json_t *doc, const char *const *allowed, const char *const *extra)
{
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (listed(allowed, key) || listed(extra, key)) {
            continue;
        }
        char list[768] = "";
        const char *const *lists[] = {allowed, extra};
        for (size_t k = 0; k < 2; k++) {
            for (size_t i = 0; lists[k] != NULL && lists[k][i] != NULL; i++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof(list) - l, "%s%s", l ? ", " : "", lists[k][i]);
            }
        }
        return dbt_fail(DBT_E_INVALID, "unknown field \"%s\"; known fields: %s", key,
                        list[0] ? list : "none");
    }
    return DBT_OK;
}

dbt_res dbt_json_str(json_t *doc, const char *key, const char **v)
{
    json_t *j = json_object_get(doc, key);
    if (j == NULL || json_is_null(j)) {
        return DBT_OK;
    }
    if (!json_is_string(j)) {
        return dbt_fail(DBT_E_INVALID, "field \"%s\" must be a string", key);
    }
    if (strlen(json_string_value(j)) != json_string_length(j)) {
        return dbt_fail(DBT_E_INVALID, "field \"%s\" must not contain NUL characters", key);
    }
    *v = json_string_value(j);
    return DBT_OK;
}

dbt_res dbt_json_on_off(json_t *doc, const char *key, const char **v)
{
    json_t *j = json_object_get(doc, key);
    if (j == NULL || json_is_null(j)) {
        return DBT_OK;
    }
    if (json_is_boolean(j)) {
        *v = json_is_true(j) ? "on" : "off";
        return DBT_OK;
    }
    if (!json_is_string(j)) {
        return dbt_fail(DBT_E_INVALID, "field \"%s\" must be true or false", key);
    }
    return dbt_json_str(doc, key, v);
}

dbt_res dbt_json_int(json_t *doc, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
    json_t *j = json_object_get(doc, key);
    if (j == NULL || json_is_null(j)) {
        return DBT_OK;
    }
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        return dbt_fail(DBT_E_INVALID, "field \"%s\" must be an integer from %lld to %lld", key,
                        (long long)lo, (long long)hi);
    }
    *v = json_integer_value(j);
    return DBT_OK;
}

/* "endpoints": an array of strings or one comma-separated string -> "a,b,c" (*owned frees). */
static dbt_res endpoints(json_t *doc, const char **v, char **owned)
{
    json_t *j = json_object_get(doc, "endpoints");
    if (j == NULL || json_is_null(j) || json_is_string(j)) {
        return dbt_json_str(doc, "endpoints", v);
    }
    if (!json_is_array(j) || json_array_size(j) == 0) {
        return dbt_fail(DBT_E_INVALID,
                        "field \"endpoints\" must be a non-empty array of strings or a string");
    }
    size_t total = 1, i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) == 0 ||
            strchr(json_string_value(e), ',') != NULL) {
            return dbt_fail(DBT_E_INVALID,
                            "field \"endpoints\": item %zu must be a non-empty string without "
                            "commas",
                            i);
        }
        total += json_string_length(e) + 1;
    }
    char *s = calloc(1, total);
    if (s == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    json_array_foreach(j, i, e)
    {
        if (i > 0) {
            strcat(s, ",");
        }
        strcat(s, json_string_value(e));
    }
    *owned = s;
    *v = s;
    return DBT_OK;
}

dbt_res dbt_json_instance_spec(json_t *doc, struct dbt_ctl_instance_spec *s,
                               struct dbt_ctl_validity *v, char **endpoints_owned)
{
    dbt_res res = DBT_OK;
    int64_t max_certs = 0, leaf = 0, ca = 0;
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"engine", offsetof(struct dbt_ctl_instance_spec, engine)},
        {"engineVersion", offsetof(struct dbt_ctl_instance_spec, engine_version)},
        {"listen", offsetof(struct dbt_ctl_instance_spec, listen)},
        {"backend", offsetof(struct dbt_ctl_instance_spec, backend)},
        {"backendTlsCa", offsetof(struct dbt_ctl_instance_spec, backend_tls_ca)},
        {"backendTlsCert", offsetof(struct dbt_ctl_instance_spec, backend_tls_cert)},
        {"backendTlsKey", offsetof(struct dbt_ctl_instance_spec, backend_tls_key)},
        {"region", offsetof(struct dbt_ctl_instance_spec, region)},
        {"caMode", offsetof(struct dbt_ctl_instance_spec, ca_mode)},
        {"caId", offsetof(struct dbt_ctl_instance_spec, ca_id)},
        {"sslMode", offsetof(struct dbt_ctl_instance_spec, ssl_mode)},
        {"tlsMinVersion", offsetof(struct dbt_ctl_instance_spec, tls_min)},
        {"tlsMaxVersion", offsetof(struct dbt_ctl_instance_spec, tls_max)},
        {"ciphers", offsetof(struct dbt_ctl_instance_spec, ciphers)},
        {"ciphersuites", offsetof(struct dbt_ctl_instance_spec, ciphersuites)},
        {"groups", offsetof(struct dbt_ctl_instance_spec, groups)},
        {"hbaRules", offsetof(struct dbt_ctl_instance_spec, hba_text)},
        {"identMap", offsetof(struct dbt_ctl_instance_spec, ident_text)},
        {"userRequire", offsetof(struct dbt_ctl_instance_spec, user_require_text)},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        DBT_TRY(dbt_json_str(doc, strs[i].key, (const char **)((char *)s + strs[i].off)));
    }
    DBT_TRY(dbt_json_on_off(doc, "clientInfo", &s->client_info));
    DBT_TRY(endpoints(doc, &s->endpoints, endpoints_owned));
    DBT_TRY(dbt_json_int(doc, "maxClientCerts", 1, 1000, &max_certs));
    s->max_client_certs = (int)max_certs;
    DBT_TRY(dbt_json_int(doc, "validitySeconds", 1, DBT_JSON_MAX_VALIDITY_SECS, &leaf));
    DBT_TRY(dbt_json_int(doc, "caValiditySeconds", 1, DBT_JSON_MAX_VALIDITY_SECS, &ca));
    v->leaf_secs = leaf;
    v->ca_secs = ca;
out:
    return res;
}
