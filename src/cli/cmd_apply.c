/*
 * cmd_apply.c - `dbtls apply --file FLEET.json`: the instances of a fleet as one file kept in
 * version control, made true idempotently (as Terraform or kubectl apply would): an instance the
 * store lacks is created, one whose fields differ is patched with exactly those fields, one that
 * matches is left alone (no re-issued certificate, no change counter bump), and with --prune an
 * instance the file does not name is deleted. --dry-run prints the plan only. The file holds
 * the admin API's instance fields (docs/admin-api.md, read by admin/json_in.h, so a field means
 * and refuses the same), plus hbaFile / identFile / userRequireFile naming rule files beside it
 * and the rotation policy (serverCertRotation "auto"|"manual", rotationLeadDays), as `instances
 * patch --server-cert-rotation/--rotation-lead` set it.
 * The whole file is checked before anything changes; each change is one ctl operation (one
 * transaction): if one fails, the ones before it stay, the error names it, and apply converges
 * when run again.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/json_in.h"
#include "admin/view.h"
#include "cli/cmd.h"
#include "cli/out.h"
#include "ctl/auto.h"
#include "ctl/ctl.h"

/* What an instance object of the file may hold beside the admin API's instance fields
   (json_in.h): the rule files and the rotation policy. */
static const char *const file_only_fields[] = {
    "hbaFile", "identFile", "userRequireFile", "serverCertRotation", "rotationLeadDays", NULL};

/* Whether a field of the API's PATCH is compared with the instance as `instances describe
   --format json` shows it: all but the validity fields, which only matter when a certificate
   is issued and so never make a change. */
static bool compared(const char *key)
{
    return strcmp(key, "validitySeconds") != 0 && strcmp(key, "caValiditySeconds") != 0;
}

/* The rotation policy fields of an item: mode NULL and lead -1 when absent. */
static dbt_res rotation_of(json_t *item, const char **mode, int64_t *lead)
{
    dbt_res res = DBT_OK;
    *mode = NULL;
    *lead = -1;
    DBT_TRY(dbt_json_str(item, "serverCertRotation", mode));
    DBT_TRY(dbt_json_int(item, "rotationLeadDays", 0, DBT_CTL_MAX_ROTATION_LEAD_DAYS, lead));
    DBT_TRY(dbt_ctl_rotation_check(*mode, *lead));
out:
    return res;
}

/* Rule files named beside the fleet file, read into the text field they stand for. */
static const struct {
    const char *file_key, *text_key;
} rule_files[] = {
    {"hbaFile", "hbaRules"},
    {"identFile", "identMap"},
    {"userRequireFile", "userRequire"},
};

enum action { KEEP, CREATE, PATCH, DELETE };
static const char *const action_names[] = {"unchanged", "create", "patch", "delete"};

struct change {
    const char *name; /* points into the file's JSON or the instance list */
    json_t *item;     /* the file's object (borrowed); NULL for a delete */
    enum action action;
    json_t *fields; /* PATCH: the changed fields, an object (owned) */
};

struct plan {
    json_t *doc; /* the parsed file */
    struct change *v;
    size_t n;
    struct dbt_ctl_instance_list current;
};

static void plan_cleanup(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        json_decref(p->v[i].fields);
    }
    free(p->v);
    dbt_ctl_instance_list_cleanup(&p->current);
    json_decref(p->doc);
    memset(p, 0, sizeof *p);
}

static dbt_res plan_add(struct plan *p, struct change c)
{
    struct change *v = realloc(p->v, (p->n + 1) * sizeof *v);
    if (v == NULL) {
        json_decref(c.fields);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    p->v = v;
    v[p->n++] = c;
    return DBT_OK;
}

/* A desired value in the form the view has it: endpoints as an array, clientInfo as a boolean,
   "" as null (a cleared text field). New reference. */
static json_t *normalized(const char *key, json_t *v)
{
    if (v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        return json_null();
    }
    if (strcmp(key, "clientInfo") == 0 && json_is_string(v)) {
        return json_boolean(strcmp(json_string_value(v), "on") == 0);
    }
    if (strcmp(key, "endpoints") == 0 && json_is_string(v)) {
        json_t *a = json_array();
        char *s = strdup(json_string_value(v)), *save = NULL;
        for (char *t = s ? strtok_r(s, ",", &save) : NULL; t && a; t = strtok_r(NULL, ",", &save)) {
            json_array_append_new(a, json_string(t));
        }
        free(s);
        return a;
    }
    return json_incref(v);
}

/* Reads the rule files an item names (relative to dir) into their text fields. */
static dbt_res read_rule_files(json_t *item, const char *dir, const char *where)
{
    dbt_res res = DBT_OK;
    char *text = NULL, *path = NULL;
    for (size_t i = 0; i < DBT_ARRAY_LEN(rule_files); i++) {
        json_t *f = json_object_get(item, rule_files[i].file_key);
        if (f == NULL) {
            continue;
        }
        DBT_ENSURE(json_is_string(f) && json_string_length(f) > 0, INVALID,
                   "%s: field \"%s\" must be a file name", where, rule_files[i].file_key);
        DBT_ENSURE(json_object_get(item, rule_files[i].text_key) == NULL, INVALID,
                   "%s: give \"%s\" or \"%s\", not both", where, rule_files[i].file_key,
                   rule_files[i].text_key);
        const char *name = json_string_value(f);
        DBT_ENSURE(asprintf(&path, "%s%s%s", name[0] == '/' ? "" : dir, name[0] == '/' ? "" : "/",
                            name) >= 0,
                   NOMEM, "out of memory");
        char what[48];
        snprintf(what, sizeof what, "field \"%s\":", rule_files[i].file_key);
        res = dbt_cli_read_text(what, path, &text);
        if (!dbt_ok(res)) {
            res = dbt_fail_ctx(res, "%s: ", where);
            goto out;
        }
        json_object_set_new(item, rule_files[i].text_key, json_string(text));
        json_object_del(item, rule_files[i].file_key);
        free(text);
        text = NULL;
        free(path);
        path = NULL;
    }
out:
    free(text);
    free(path);
    return res;
}

/* Checks one instance object of the file whole: known fields, types, required ones. */
static dbt_res check_item(json_t *item, size_t idx, const char *dir, const char **name)
{
    dbt_res res = DBT_OK;
    char where[128];
    struct dbt_ctl_instance_spec spec = {0};
    struct dbt_ctl_validity v = {0};
    char *endpoints = NULL;
    snprintf(where, sizeof where, "instances[%zu]", idx);
    DBT_ENSURE(json_is_object(item), INVALID, "%s must be an object", where);
    *name = NULL;
    res = dbt_json_str(item, "name", name);
    if (dbt_ok(res) && *name == NULL) {
        res = dbt_fail(DBT_E_INVALID, "field \"name\" is required");
    }
    if (dbt_ok(res)) {
        snprintf(where, sizeof where, "instances[%zu] (\"%.60s\")", idx, *name);
        res = dbt_json_fields_check(item, dbt_json_instance_fields_create, file_only_fields);
        if (dbt_ok(res)) {
            res = read_rule_files(item, dir, where);
            if (!dbt_ok(res)) {
                goto out; /* it names the item */
            }
        }
    }
    if (dbt_ok(res)) {
        res = dbt_json_instance_spec(item, &spec, &v, &endpoints);
    }
    if (dbt_ok(res)) {
        const char *mode = NULL;
        int64_t lead = -1;
        res = rotation_of(item, &mode, &lead);
    }
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "%s: ", where);
    }
out:
    free(endpoints);
    return res;
}

/* Loads and checks the file into p->doc; *items is its "instances" array (borrowed). */
static dbt_res load_file(const char *path, struct plan *p, json_t **items)
{
    dbt_res res = DBT_OK;
    json_error_t jerr;
    char *copy = strdup(path);
    DBT_ENSURE(copy, NOMEM, "out of memory");
    const char *dir = dirname(copy);
    p->doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (p->doc == NULL) {
        res =
            errno == ENOENT && jerr.line < 0
                ? dbt_fail(DBT_E_NOT_FOUND, "cannot read --file \"%s\": %s", path, strerror(errno))
                : dbt_fail(DBT_E_INVALID, "--file \"%s\": %s (line %d, column %d)", path, jerr.text,
                           jerr.line, jerr.column);
        goto out;
    }
    static const char *const top[] = {"instances", NULL};
    DBT_ENSURE(json_is_object(p->doc), INVALID,
               "--file \"%s\" must hold a JSON object {\"instances\": [...]}", path);
    res = dbt_json_fields_check(p->doc, top, NULL);
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "--file \"%s\": ", path);
        goto out;
    }
    *items = json_object_get(p->doc, "instances");
    DBT_ENSURE(json_is_array(*items), INVALID,
               "--file \"%s\": \"instances\" must be an array of instance objects", path);
    size_t i;
    json_t *item;
    json_array_foreach(*items, i, item)
    {
        const char *name = NULL;
        res = check_item(item, i, dir, &name);
        if (!dbt_ok(res)) {
            res = dbt_fail_ctx(res, "--file \"%s\": ", path);
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            const char *other =
                json_string_value(json_object_get(json_array_get(*items, j), "name"));
            DBT_ENSURE(strcmp(other, name) != 0, INVALID,
                       "--file \"%s\": instances[%zu] and instances[%zu] are both named \"%s\"",
                       path, j, i, name);
        }
    }
out:
    free(copy);
    return res;
}

/* The change for one item of the file against the store. */
static dbt_res plan_item(struct dbt_ctl *ctl, json_t *item, struct plan *p)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl_instance inst = {0};
    json_t *view = NULL, *fields = NULL;
    const char *name = json_string_value(json_object_get(item, "name"));
    dbt_res r = dbt_ctl_instance_describe(ctl, name, &inst);
    if (r.code == DBT_E_NOT_FOUND) {
        static const char *const required[] = {"engine", "listen", "backend", "endpoints"};
        for (size_t i = 0; i < DBT_ARRAY_LEN(required); i++) {
            DBT_ENSURE(json_object_get(item, required[i]) != NULL, INVALID,
                       "instance \"%s\" does not exist yet: its field \"%s\" is required to "
                       "create it",
                       name, required[i]);
        }
        DBT_TRY(plan_add(p, (struct change){.name = name, .item = item, .action = CREATE}));
        goto out;
    }
    DBT_TRY(r);
    view = dbt_view_instance(&inst);
    fields = json_object();
    DBT_ENSURE(view && fields, NOMEM, "out of memory");
    json_t *region = json_object_get(item, "region");
    DBT_ENSURE(region == NULL || json_is_null(region) ||
                   json_equal(region, json_object_get(view, "region")),
               INVALID,
               "instance \"%s\" is in region \"%s\": the region is fixed at creation (delete and "
               "create it, or remove \"region\" from the file)",
               name, json_string_value(json_object_get(view, "region")));
    const char *const *keys = dbt_json_instance_fields_patch;
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (!compared(keys[i])) {
            continue;
        }
        json_t *want = json_object_get(item, keys[i]);
        if (want == NULL) {
            continue; /* not in the file: left as it is */
        }
        json_t *a = normalized(keys[i], want);
        json_t *b = normalized(keys[i], json_object_get(view, keys[i]));
        bool same = a && b && json_equal(a, b);
        json_decref(a);
        json_decref(b);
        if (!same) {
            json_object_set(fields, keys[i], want);
        }
    }
    const char *mode = NULL;
    int64_t lead = -1;
    struct dbt_ctl_rotation rot = {0};
    DBT_TRY(rotation_of(item, &mode, &lead));
    if (mode != NULL || lead >= 0) {
        DBT_TRY(dbt_ctl_rotation_get(ctl, name, &rot));
        if (mode != NULL && (strcmp(mode, "auto") == 0) != rot.auto_rotate) {
            json_object_set(fields, "serverCertRotation",
                            json_object_get(item, "serverCertRotation"));
        }
        if (lead >= 0 && lead != rot.lead_days) {
            json_object_set(fields, "rotationLeadDays", json_object_get(item, "rotationLeadDays"));
        }
    }
    for (const char *k = "validitySeconds"; k; k = k[0] == 'v' ? "caValiditySeconds" : NULL) {
        if (json_object_size(fields) > 0 && json_object_get(item, k)) {
            json_object_set(fields, k, json_object_get(item, k)); /* for re-issued certs */
        }
    }
    DBT_TRY(plan_add(p, (struct change){.name = name,
                                        .item = item,
                                        .action = json_object_size(fields) ? PATCH : KEEP,
                                        .fields = json_object_size(fields) ? fields : NULL}));
    if (json_object_size(fields)) {
        fields = NULL;
    }
out:
    json_decref(view);
    json_decref(fields);
    dbt_ctl_instance_cleanup(&inst);
    return res;
}

static dbt_res make_plan(struct dbt_ctl *ctl, const char *path, bool prune, struct plan *p)
{
    dbt_res res = DBT_OK;
    json_t *items = NULL, *item;
    size_t i;
    DBT_TRY(load_file(path, p, &items));
    json_array_foreach(items, i, item)
    {
        DBT_TRY(plan_item(ctl, item, p));
    }
    DBT_TRY(dbt_ctl_instance_list(ctl, &p->current));
    for (size_t k = 0; prune && k < p->current.n; k++) {
        const char *name = p->current.items[k].name;
        bool named = false;
        json_array_foreach(items, i, item)
        {
            named = named || strcmp(json_string_value(json_object_get(item, "name")), name) == 0;
        }
        if (!named) {
            DBT_TRY(plan_add(p, (struct change){.name = name, .action = DELETE}));
        }
    }
out:
    return res;
}

/* Whether a patch's fields hold one of the instance's own (not only the rotation policy). */
static bool spec_fields(json_t *fields)
{
    const char *const *keys = dbt_json_instance_fields_patch;
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (compared(keys[i]) && json_object_get(fields, keys[i]) != NULL) {
            return true;
        }
    }
    return false;
}

/* The rotation policy fields of obj, if any, set in their own transaction. */
static dbt_res set_rotation(struct dbt_ctl *ctl, const char *name, json_t *obj)
{
    dbt_res res = DBT_OK;
    const char *mode = NULL;
    int64_t lead = -1;
    DBT_TRY(rotation_of(obj, &mode, &lead));
    if (mode != NULL || lead >= 0) {
        DBT_TRY(dbt_ctl_rotation_set(ctl, name, mode, lead));
    }
out:
    return res;
}

/* Carries out one change. */
static dbt_res apply_one(struct dbt_ctl *ctl, const struct change *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl_instance_spec spec = {0};
    struct dbt_ctl_validity v = {0};
    char *endpoints = NULL;
    switch (c->action) {
    case CREATE:
        DBT_TRY(dbt_json_instance_spec(c->item, &spec, &v, &endpoints));
        DBT_TRY(dbt_ctl_instance_create(ctl, c->name, &spec, &v, NULL));
        DBT_TRY(set_rotation(ctl, c->name, c->item));
        break;
    case PATCH:
        if (spec_fields(c->fields)) {
            DBT_TRY(dbt_json_instance_spec(c->fields, &spec, &v, &endpoints));
            DBT_TRY(dbt_ctl_instance_patch(ctl, c->name, &spec, &v, NULL));
        }
        DBT_TRY(set_rotation(ctl, c->name, c->fields));
        break;
    case DELETE:
        DBT_TRY(dbt_ctl_instance_delete(ctl, c->name));
        break;
    case KEEP:
        break;
    }
out:
    free(endpoints);
    return res;
}

/* The plan as rows {name, action, fields: [...]}. */
static json_t *plan_json(const struct plan *p)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < p->n; i++) {
        const struct change *c = &p->v[i];
        json_t *names = json_array();
        const char *k;
        json_t *val;
        if (c->action == CREATE) {
            json_object_foreach(c->item, k, val)
            {
                if (strcmp(k, "name") != 0) {
                    json_array_append_new(names, json_string(k));
                }
            }
        } else if (c->action == PATCH) {
            json_object_foreach(c->fields, k, val)
            {
                json_array_append_new(names, json_string(k));
            }
        }
        json_array_append_new(a, json_pack("{ss,ss,so}", "name", c->name, "action",
                                           action_names[c->action], "fields", names));
    }
    return a;
}

static const struct dbt_cli_col plan_cols[] = {
    {"NAME", "name"},
    {"ACTION", "action"},
    {"FIELDS", "fields"},
    {NULL, NULL},
};

static int run_apply(struct dbt_cli *c)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl *ctl;
    struct plan p = {0};
    json_t *rows = NULL;
    const char *path = dbt_cli_get(c, "file");
    bool dry = dbt_cli_has(c, "dry-run");
    size_t done = 0, changes = 0;

    DBT_TRY(dbt_cli_ctl(c, &ctl));
    DBT_TRY(make_plan(ctl, path, dbt_cli_has(c, "prune"), &p));
    for (size_t i = 0; i < p.n; i++) {
        changes += p.v[i].action != KEEP;
    }
    /* creates and patches in the file's order, then deletes: a listen address or an endpoint
       moves to a new instance only after the old one is gone would need two runs; deleting
       first would lose instances when a later create fails */
    for (size_t i = 0; !dry && i < p.n; i++) {
        const struct change *ch = &p.v[i];
        if (ch->action == KEEP) {
            continue;
        }
        dbt_res r = apply_one(ctl, ch);
        if (!dbt_ok(r)) {
            res = dbt_fail_ctx(r,
                               "apply stopped at instance \"%s\" (%s) after %zu of %zu changes; "
                               "run it again once fixed: ",
                               ch->name, action_names[ch->action], done, changes);
            goto out;
        }
        done++;
    }
    rows = plan_json(&p);
    DBT_ENSURE(rows, NOMEM, "out of memory");
    dbt_cli_print_list(c, rows, plan_cols);
    if (c->format != DBT_CLI_FMT_JSON) {
        if (dry) {
            fprintf(stderr, "Dry run: %zu change%s planned, nothing changed.\n", changes,
                    changes == 1 ? "" : "s");
        } else {
            fprintf(stderr, "Applied %zu change%s; %zu instance%s unchanged.\n", done,
                    done == 1 ? "" : "s", p.n - changes, p.n - changes == 1 ? "" : "s");
        }
    }
out:
    json_decref(rows);
    plan_cleanup(&p);
    return dbt_ok(res) ? 0 : dbt_cli_fail(res);
}

static const struct dbt_cli_opt apply_opts[] = {
    {"file", "FILE",
     "the fleet: {\"instances\": [{\"name\": ..., fields of the admin API}]} (JSON)", true, false},
    {"prune", NULL, "delete the instances the file does not name", false, false},
    {"dry-run", NULL, "print the plan, change nothing", false, false},
    {NULL, NULL, NULL, false, false},
};

const struct dbt_cli_cmd dbt_cli_cmds_apply[] = {
    {"apply", NULL, false,
     "make the instances what a fleet file says: create, patch what differs, --prune the rest",
     apply_opts, run_apply, false},
    {0},
};
