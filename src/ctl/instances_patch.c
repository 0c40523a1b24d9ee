/*
 * instances_patch.c - `instances patch`: the spec applied onto the stored instance and
 * validated, then the row updated in one write transaction, with the server certificates
 * re-issued where the change needs it (per-instance -> shared, another shared CA, new
 * endpoints).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/instances.h"
#include "ctl/internal.h"

static dbt_res update_row(struct dbt_ctl *ctl, int64_t id, const struct dbt_ctl_instance *p)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_UPDATE, &s);
    if (!dbt_ok(r)) {
        return r;
    }
    char *eps = ctl_instance_join_endpoints(p);
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
    dbt_stmt_bind_text(s, 20, p->backend_tls_cert);
    dbt_stmt_bind_text(s, 21, p->backend_tls_key);
    dbt_stmt_bind_int(s, 22, p->client_info);
    r = dbt_stmt_exec(s);
    free(eps);
    return r;
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
    old_eps = ctl_instance_join_endpoints(p);
    DBT_TRY(ctl_instance_apply_spec(ctl, p, spec));
    ch->new_eps = ctl_instance_join_endpoints(p);
    ch->to_shared = strcmp(old_mode, "per-instance") == 0 && strcmp(p->ca_mode, "shared") == 0;
    DBT_ENSURE(!(strcmp(old_mode, "shared") == 0 && strcmp(p->ca_mode, "per-instance") == 0), STATE,
               "instance \"%s\" cannot move from the shared CA mode to per-instance; only "
               "per-instance -> shared is allowed",
               name);
    DBT_TRY(ctl_instance_check_listen(ctl, p, in->id));
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

/* One attempt of patch (see create_once in instances_create.c). */
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
        DBT_TRY(ctl_instance_describe_in_txn(ctl, name, out));
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
