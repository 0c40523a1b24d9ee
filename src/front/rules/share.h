/*
 * share.h - several PostgreSQL instances on one listen address, chosen by the client's TLS
 * server name (docs/dbtlsd.md): which instances may share an address. Pure code, asked by ctl
 * when an instance is created or patched and by the daemon when it builds a configuration
 * generation (which indexes the names, front/gen.c dbt_gen_sni_find).
 */
#ifndef DBT_FRONT_RULES_SHARE_H
#define DBT_FRONT_RULES_SHARE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

/* What the rules look at of an instance. */
struct dbt_share_inst {
    const char *name;
    const char *engine; /* "postgres", "mysql", "mariadb" */
    const char *listen;
    const char *groups; /* NULL or "" = the default groups */
    const char *const *endpoints;
    size_t n_endpoints;
};

/*
 * Whether b may listen where a does: both PostgreSQL (EXISTS otherwise: MySQL's handshake has
 * the server speak first, before any name), the same groups (INVALID: the key share is chosen
 * before the name is read), and no DNS endpoint in common, compared without regard to case
 * (EXISTS; IP endpoints may repeat, no client sends one as a server name). Messages name a.
 */
dbt_res dbt_share_check(const struct dbt_share_inst *a, const struct dbt_share_inst *b) DBT_WUR;

/* An endpoint a client can send as server name: a DNS name, not an IP address. */
bool dbt_share_endpoint_is_name(const char *endpoint);

#endif
