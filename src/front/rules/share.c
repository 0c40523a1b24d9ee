/*
 * share.c - listen addresses shared by instances (share.h).
 */
#include "front/rules/share.h"

#include <string.h>
#include <strings.h>

bool dbt_share_endpoint_is_name(const char *ep)
{
    return strchr(ep, ':') == NULL && strspn(ep, "0123456789.") != strlen(ep);
}

static bool same_opt(const char *a, const char *b)
{
    bool a_none = a == NULL || a[0] == '\0', b_none = b == NULL || b[0] == '\0';
    return a_none ? b_none : !b_none && strcmp(a, b) == 0;
}

dbt_res dbt_share_check(const struct dbt_share_inst *a, const struct dbt_share_inst *b)
{
    dbt_res res = DBT_OK;
    DBT_ENSURE(strcmp(a->engine, "postgres") == 0 && strcmp(b->engine, "postgres") == 0, EXISTS,
               "listen address %s is already used by instance \"%s\" (only PostgreSQL instances "
               "can share a listen address: the client's TLS server name chooses)",
               b->listen, a->name);
    DBT_ENSURE(same_opt(a->groups, b->groups), INVALID,
               "listen address %s is shared with instance \"%s\", whose TLS groups (%s) differ: "
               "instances on one address need the same --groups",
               b->listen, a->name, a->groups && a->groups[0] ? a->groups : "default");
    for (size_t j = 0; j < b->n_endpoints; j++) {
        for (size_t i = 0; i < a->n_endpoints; i++) {
            DBT_ENSURE(!dbt_share_endpoint_is_name(b->endpoints[j]) ||
                           strcasecmp(a->endpoints[i], b->endpoints[j]) != 0,
                       EXISTS,
                       "endpoint %s is already an endpoint of instance \"%s\" on listen address "
                       "%s: the TLS server name must choose one instance",
                       b->endpoints[j], a->name, b->listen);
        }
    }
out:
    return res;
}
