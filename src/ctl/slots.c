/*
 * slots.c - previous / active / upcoming slots of an instance's server CA (per-instance mode)
 * or server certificate (shared mode), with Cloud SQL's add / rotate / rollback semantics
 * (DESIGN.md §1), and the server-ca.pem download. A slot row carries both the CA (if the
 * instance owns it) and the server certificate it signs, so rotate and rollback are renames of
 * whole rows inside one transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/internal.h"

static const char *noun(enum dbt_ctl_slot_kind kind)
{
    return kind == DBT_CTL_SLOT_SERVER_CA ? "server CA" : "server certificate";
}

/* Refuses a slot kind that does not rotate in the instance's CA mode. */
static dbt_res check_kind(const struct ctl_inst *in, enum dbt_ctl_slot_kind kind)
{
    bool per_instance = strcmp(in->pub.ca_mode, "per-instance") == 0;
    if (kind == DBT_CTL_SLOT_SERVER_CA && !per_instance) {
        return dbt_fail(DBT_E_STATE,
                        "instance \"%s\" uses the shared CA mode: its server CA is shared and "
                        "does not rotate per instance; use `dbtls ssl server-certs` to rotate "
                        "its server certificate",
                        in->pub.name);
    }
    if (kind == DBT_CTL_SLOT_SERVER_CERT && per_instance) {
        return dbt_fail(DBT_E_STATE,
                        "instance \"%s\" uses the per-instance CA mode: its server certificate "
                        "rotates with its server CA; use `dbtls ssl server-ca-certs`",
                        in->pub.name);
    }
    return DBT_OK;
}

/* The serial of what a slot rotates (its CA in per-instance mode, else its server cert), for
   the audit trail. */
static char *slot_serial(const struct ctl_slot *sl, enum dbt_ctl_slot_kind kind)
{
    struct dbt_pki_cert_info info;
    if (!sl) {
        return ctl_strdup("?");
    }
    const char *pem = kind == DBT_CTL_SLOT_SERVER_CA && sl->ca_pem ? sl->ca_pem : sl->cert_pem;
    if (!dbt_ok(dbt_pki_cert_info_pem(pem, &info))) {
        return ctl_strdup("?");
    }
    char *r = ctl_strdup(info.serial);
    dbt_pki_cert_info_cleanup(&info);
    return r;
}

static dbt_res rename_slot(struct dbt_ctl *ctl, int64_t id, const char *from, const char *to)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_SLOT_RENAME, &s);
    if (dbt_ok(r)) {
        dbt_stmt_bind_int(s, 1, id);
        dbt_stmt_bind_text(s, 2, from);
        dbt_stmt_bind_text(s, 3, to);
        r = dbt_stmt_exec(s);
    }
    return r;
}

static dbt_res delete_slot(struct dbt_ctl *ctl, int64_t id, const char *slot)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_SLOT_DELETE, &s);
    if (dbt_ok(r)) {
        dbt_stmt_bind_int(s, 1, id);
        dbt_stmt_bind_text(s, 2, slot);
        r = dbt_stmt_exec(s);
    }
    return r;
}

static dbt_res slot_view(struct dbt_ctl *ctl, const struct ctl_inst *in, const struct ctl_slot *sl,
                         enum dbt_ctl_slot_kind kind, struct dbt_ctl_cert *out)
{
    if (kind == DBT_CTL_SLOT_SERVER_CERT) {
        return ctl_cert_fill(sl->cert_pem, sl->slot, NULL, in->pub.name, sl->created_at, out);
    }
    if (sl->ca_pem) {
        return ctl_cert_fill(sl->ca_pem, sl->slot, NULL, in->pub.name, sl->created_at, out);
    }
    char *root = NULL;
    dbt_res r = ctl_shared_ca(ctl, sl->shared_ca_id, "", NULL, NULL, NULL, &root);
    if (dbt_ok(r)) {
        r = ctl_cert_fill(root, sl->slot, NULL, in->pub.name, 0, out);
    }
    free(root);
    return r;
}

dbt_res dbt_ctl_slots_list(struct dbt_ctl *ctl, const char *instance, enum dbt_ctl_slot_kind kind,
                           struct dbt_ctl_cert_list *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    struct dbt_ctl_cert_list l = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
    l.items = calloc(slots.n ? slots.n : 1, sizeof *l.items);
    DBT_ENSURE(l.items, NOMEM, "out of memory");
    for (size_t i = 0; i < slots.n; i++) {
        DBT_TRY(slot_view(ctl, &in, &slots.v[i], kind, &l.items[i]));
        l.n++;
    }
    DBT_TRY(dbt_store_commit(ctl->st));
    *out = l;
    memset(&l, 0, sizeof l);
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    dbt_ctl_cert_list_cleanup(&l);
    return res;
}

/* One attempt of create: plan the keys in a read transaction, generate them holding no lock,
   then the write transaction re-checks the instance and stores (keys->stale: try again). */
static dbt_res create_once(struct dbt_ctl *ctl, const char *instance, enum dbt_ctl_slot_kind kind,
                           const struct dbt_ctl_validity *validity, struct ctl_keys *keys,
                           struct dbt_ctl_cert *out)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    struct ctl_slot row = {0};
    char *obj = NULL;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(check_kind(&in, kind));
    DBT_TRY(ctl_build_slot_keys(ctl, &in.pub, keys));
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    DBT_TRY(ctl_keys_generate(keys));

    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(check_kind(&in, kind));
    DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
    bool replaced = ctl_slots_find(&slots, "upcoming") != NULL;
    DBT_TRY(ctl_build_slot(ctl, &in.pub, validity, keys, &row));
    DBT_TRY(delete_slot(ctl, in.id, "upcoming"));
    ctl_fault("create-slot-mid");
    DBT_TRY(ctl_slot_put(ctl, in.id, "upcoming", &row));
    row.slot = ctl_strdup("upcoming");
    struct dbt_ctl_cert view = {0};
    DBT_TRY(slot_view(ctl, &in, &row, kind, &view));
    obj = ctl_printf("instance/%s", instance);
    res = ctl_event(ctl, kind == DBT_CTL_SLOT_SERVER_CA ? "server-ca.create" : "server-cert.create",
                    obj, "slot=upcoming serial=%s sha1=%s%s", view.cert_serial_number,
                    view.sha1_fingerprint, replaced ? " replaced_upcoming=true" : "");
    if (dbt_ok(res)) {
        res = ctl_commit(ctl);
    }
    if (dbt_ok(res) && out) {
        *out = view;
    } else {
        dbt_ctl_cert_cleanup(&view);
    }
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    ctl_slot_cleanup(&row);
    free(obj);
    return res;
}

dbt_res dbt_ctl_slots_create(struct dbt_ctl *ctl, const char *instance, enum dbt_ctl_slot_kind kind,
                             const struct dbt_ctl_validity *validity, struct dbt_ctl_cert *out)
{
    if (out) {
        memset(out, 0, sizeof *out);
    }
    dbt_res res = DBT_OK;
    struct ctl_keys keys = {0};
    for (int i = 0; i < CTL_KEYS_TRIES; i++) {
        ctl_keys_cleanup(&keys);
        res = create_once(ctl, instance, kind, validity, &keys, out);
        if (!keys.stale) {
            break;
        }
    }
    ctl_keys_cleanup(&keys);
    return res;
}

/* Rotate and rollback inside the caller's write transaction: the slot `incoming` becomes
   active, the active one moves to `outgoing` (replacing what was there), one event
   "server-ca.<verb>" / "server-cert.<verb>" naming both serials, then commit. The fault point
   "<verb>-mid" sits between the two renames (atomicity tests). */
static dbt_res shift_slots(struct dbt_ctl *ctl, const char *instance, const struct ctl_inst *in,
                           struct ctl_slots *slots, enum dbt_ctl_slot_kind kind,
                           const char *incoming, const char *outgoing, const char *verb)
{
    dbt_res res = DBT_OK;
    char *obj = NULL, *action = NULL, *fault = NULL, *new_serial = NULL, *old_serial = NULL;
    struct ctl_slot *cur = ctl_slots_find(slots, "active");
    DBT_ENSURE(cur, CORRUPT, "instance \"%s\" has no active %s", instance, noun(kind));
    new_serial = slot_serial(ctl_slots_find(slots, incoming), kind);
    old_serial = slot_serial(cur, kind);
    DBT_TRY(delete_slot(ctl, in->id, outgoing));
    DBT_TRY(rename_slot(ctl, in->id, "active", outgoing));
    fault = ctl_printf("%s-mid", verb);
    ctl_fault(fault);
    DBT_TRY(rename_slot(ctl, in->id, incoming, "active"));
    obj = ctl_printf("instance/%s", instance);
    action =
        ctl_printf("%s.%s", kind == DBT_CTL_SLOT_SERVER_CA ? "server-ca" : "server-cert", verb);
    DBT_TRY(ctl_event(ctl, action, obj, "active=%s %s=%s", new_serial, outgoing, old_serial));
    DBT_TRY(ctl_commit(ctl));
out:
    free(obj);
    free(action);
    free(fault);
    free(new_serial);
    free(old_serial);
    return res;
}

dbt_res dbt_ctl_slots_rotate(struct dbt_ctl *ctl, const char *instance, enum dbt_ctl_slot_kind kind)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(check_kind(&in, kind));
    DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
    DBT_ENSURE(ctl_slots_find(&slots, "upcoming"), STATE,
               "instance \"%s\": no upcoming %s to rotate to; create one first", instance,
               noun(kind));
    DBT_TRY(shift_slots(ctl, instance, &in, &slots, kind, "upcoming", "previous", "rotate"));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    return res;
}

dbt_res dbt_ctl_slots_rollback(struct dbt_ctl *ctl, const char *instance,
                               enum dbt_ctl_slot_kind kind)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    struct dbt_pki_cert_info info = {0};
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(check_kind(&in, kind));
    DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
    struct ctl_slot *prev = ctl_slots_find(&slots, "previous");
    DBT_ENSURE(prev, STATE, "instance \"%s\": no previous %s to roll back to", instance,
               noun(kind));
    /* What would be served again is the previous server certificate (and, per-instance, its CA;
       the certificate never outlives its CA), so its expiry decides. */
    DBT_TRY(dbt_pki_cert_info_pem(prev->cert_pem, &info));
    if (info.not_after <= dbt_now_unix()) {
        char when[32];
        dbt_time_rfc3339(info.not_after, when, sizeof when);
        DBT_BAIL(STATE,
                 "instance \"%s\": the previous %s expired at %s; rollback is no longer "
                 "possible",
                 instance, noun(kind), when);
    }
    DBT_TRY(shift_slots(ctl, instance, &in, &slots, kind, "previous", "upcoming", "rollback"));
out:
    dbt_store_rollback(ctl->st);
    dbt_pki_cert_info_cleanup(&info);
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    return res;
}

dbt_res dbt_ctl_server_ca_download(struct dbt_ctl *ctl, const char *instance, char **pem_out)
{
    *pem_out = NULL;
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(ctl_server_ca_pem(ctl, &in, pem_out));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        free(*pem_out);
        *pem_out = NULL;
    }
    ctl_inst_cleanup(&in);
    return res;
}
