/*
 * instances.c - instances list / describe / delete, and what the other instance operations
 * share (instances.h): the endpoint list as stored, the listen-address check against other
 * instances, the full description of one instance. Create, patch and reset-ssl-config have a
 * file each (instances_create.c, instances_patch.c, instances_reset.c); attribute validation is
 * in instances_spec.c.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/instances.h"
#include "ctl/internal.h"
#include "front/rules/share.h"

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
    free(p->backend_tls_cert);
    free(p->backend_tls_key);
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

/* ---- helpers -------------------------------------------------------------------------------- */

char *ctl_instance_join_endpoints(const struct dbt_ctl_instance *p)
{
    char *acc = ctl_strdup("");
    for (size_t i = 0; i < p->n_endpoints; i++) {
        char *n = ctl_printf("%s%s%s", acc, i ? "," : "", p->endpoints[i]);
        free(acc);
        acc = n;
    }
    return acc;
}

static struct dbt_share_inst share_of(const struct dbt_ctl_instance *p)
{
    return (struct dbt_share_inst){.name = p->name,
                                   .engine = p->engine,
                                   .listen = p->listen,
                                   .groups = p->groups,
                                   .endpoints = (const char *const *)p->endpoints,
                                   .n_endpoints = p->n_endpoints};
}

dbt_res ctl_instance_check_listen(struct dbt_ctl *ctl, const struct dbt_ctl_instance *p,
                                  int64_t self_id)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    char **names = NULL;
    size_t n = 0;
    struct ctl_inst o = {0};
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_BY_LISTEN, &s));
    dbt_stmt_bind_text(s, 1, p->listen);
    dbt_stmt_bind_int(s, 2, self_id);
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        DBT_TRY(ctl_strv_push(&names, &n, dbt_stmt_text(s, 0)));
    }
    for (size_t i = 0; i < n; i++) {
        DBT_TRY(ctl_inst_load(ctl, names[i], &o));
        struct dbt_share_inst a = share_of(&o.pub), b = share_of(p);
        DBT_TRY(dbt_share_check(&a, &b));
        ctl_inst_cleanup(&o);
    }
out:
    ctl_inst_cleanup(&o);
    ctl_strv_free(names, n);
    return res;
}

dbt_res ctl_instance_names(struct dbt_ctl *ctl, bool by_age, char ***names, size_t *n)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    *names = NULL;
    *n = 0;
    DBT_TRY(dbt_store_stmt(ctl->st, by_age ? DBT_SQL_INSTANCE_NAMES_BY_AGE : DBT_SQL_INSTANCE_NAMES,
                           &s));
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

dbt_res ctl_instance_describe_in_txn(struct dbt_ctl *ctl, const char *name,
                                     struct dbt_ctl_instance *out)
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

dbt_res dbt_ctl_instance_list(struct dbt_ctl *ctl, struct dbt_ctl_instance_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct dbt_ctl_instance_list l = {0};
    char **names = NULL;
    size_t n = 0;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_instance_names(ctl, false, &names, &n));
    l.items = calloc(n ? n : 1, sizeof *l.items);
    DBT_ENSURE(l.items, NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        DBT_TRY(ctl_instance_describe_in_txn(ctl, names[i], &l.items[i]));
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
    DBT_TRY(ctl_instance_describe_in_txn(ctl, name, out));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        dbt_ctl_instance_cleanup(out);
    }
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
