/*
 * instances.h - what the instance operation files share (instances.c, instances_spec.c,
 * instances_create.c, instances_patch.c): validating and applying attributes, the stored form
 * of the endpoint list, the listen-address check and the full description of one instance.
 * Not installed; only src/ctl/instances*.c include it.
 */
#ifndef DBT_CTL_INSTANCES_H
#define DBT_CTL_INSTANCES_H

#include <stdint.h>

#include "base/err.h"
#include "ctl/ctl.h"

/* instances_spec.c */

/* INVALID naming the bad name: 1 to 63 letters, digits and hyphens, starting with a letter and
   not ending with a hyphen. */
dbt_res ctl_instance_check_name(const char *name) DBT_WUR;
/* INVALID naming the bad region: 1 to 32 letters, digits, '-' or '_'. */
dbt_res ctl_instance_check_region(const char *s) DBT_WUR;
/* Applies spec onto p (a fully defaulted instance) and validates the result; the endpoints list
   is replaced when given. INVALID (or the rule parsers' error) naming the attribute. */
dbt_res ctl_instance_apply_spec(struct dbt_ctl *ctl, struct dbt_ctl_instance *p,
                                const struct dbt_ctl_instance_spec *spec) DBT_WUR;

/* instances.c */

/* The endpoints joined with commas, as the store keeps them (caller frees; aborts on OOM). */
char *ctl_instance_join_endpoints(const struct dbt_ctl_instance *p);
/*
 * Whether p (self_id: its row, -1 when new) may listen on p->listen: alone, or beside other
 * PostgreSQL instances (the client's TLS server name chooses among them, DESIGN.md §3), when p is
 * PostgreSQL too, has their TLS groups (chosen before the server name is known) and none of its
 * DNS endpoints is one of theirs. EXISTS / INVALID naming the other instance otherwise. Inside
 * the caller's transaction.
 */
dbt_res ctl_instance_check_listen(struct dbt_ctl *ctl, const struct dbt_ctl_instance *p,
                                  int64_t self_id) DBT_WUR;
/* Fills out with the instance and its active server certificate and CA, inside the caller's
   transaction. NOT_FOUND for an unknown instance. */
dbt_res ctl_instance_describe_in_txn(struct dbt_ctl *ctl, const char *name,
                                     struct dbt_ctl_instance *out) DBT_WUR;

#endif
