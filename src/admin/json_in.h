/*
 * json_in.h - reading what users send as JSON into control-library arguments: the admin API's
 * request bodies and `dbtls apply`'s fleet file take the same instance fields (the names of
 * view.h), the same types and the same error messages. Part of the view library (ctl + jansson,
 * no event loop), so the CLI links it too. Every function leaves its outputs untouched for an
 * absent or null field and fails with INVALID naming the field.
 */
#ifndef DBT_ADMIN_JSON_IN_H
#define DBT_ADMIN_JSON_IN_H

#include <jansson.h>
#include <stdint.h>

#include "base/err.h"
#include "ctl/ctl.h"

/* Validity fields accept at most a century. */
#define DBT_JSON_MAX_VALIDITY_SECS (INT64_C(100) * 366 * 86400)

/* The instance fields a PATCH takes; a create also takes "name" and "region" (the region is
   fixed once created). NULL-terminated. */
extern const char *const dbt_json_instance_fields_create[];
extern const char *const dbt_json_instance_fields_patch[];

/* Every key of the object doc is in allowed or extra (NULL-terminated; extra may be NULL): else
   INVALID `unknown field "x"; known fields: a, b`. */
dbt_res dbt_json_fields_check(json_t *doc, const char *const *allowed,
                              const char *const *extra) DBT_WUR;
/* A string without NUL characters; *v points into doc. */
dbt_res dbt_json_str(json_t *doc, const char *key, const char **v) DBT_WUR;
/* An integer from lo to hi. */
dbt_res dbt_json_int(json_t *doc, const char *key, int64_t lo, int64_t hi, int64_t *v) DBT_WUR;
/* A switch: true/false or the CLI's words "on"/"off", as "on"/"off". */
dbt_res dbt_json_on_off(json_t *doc, const char *key, const char **v) DBT_WUR;
/* The instance fields of doc (fields_create's) into s and v; s's strings point into doc, except
   the endpoints, joined with commas into *endpoints_owned (free it). */
dbt_res dbt_json_instance_spec(json_t *doc, struct dbt_ctl_instance_spec *s,
                               struct dbt_ctl_validity *v, char **endpoints_owned) DBT_WUR;

#endif
