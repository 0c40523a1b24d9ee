/*
 * auto.c - rotation policy and the scheduler's automatic actions (auto.h): which server
 * certificates are due and the rotation that follows. The scheduler thread of dbtlsd calls
 * dbt_ctl_auto_run on its own read-write handle; everything here goes through the store's
 * statement ids like the rest of ctl. The expiry list and notification markers are in expiry.c.
 */
#include "ctl/auto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/internal.h"

/* ---- rotation policy ----------------------------------------------------------------------- */

dbt_res dbt_ctl_rotation_check(const char *mode, int64_t lead_days)
{
    if (mode != NULL && strcmp(mode, "auto") != 0 && strcmp(mode, "manual") != 0) {
        return dbt_fail(DBT_E_INVALID,
                        "server certificate rotation \"%s\" is not valid; use auto or manual",
                        mode);
    }
    if (lead_days != -1 && (lead_days < 0 || lead_days > DBT_CTL_MAX_ROTATION_LEAD_DAYS)) {
        return dbt_fail(DBT_E_INVALID, "rotation lead %lld days is not valid; use 0 to %d days",
                        (long long)lead_days, DBT_CTL_MAX_ROTATION_LEAD_DAYS);
    }
    return DBT_OK;
}

/* The policy of a loaded instance (inside the caller's transaction). */
static dbt_res policy_load(struct dbt_ctl *ctl, const struct ctl_inst *in,
                           struct dbt_ctl_rotation *out)
{
    struct dbt_stmt *s = NULL;
    bool row = false;
    bool shared = strcmp(in->pub.ca_mode, "shared") == 0;
    *out = (struct dbt_ctl_rotation){.auto_rotate = shared,
                                     .lead_days = DBT_CTL_DEFAULT_ROTATION_LEAD_DAYS,
                                     .mode_default = true,
                                     .lead_default = true};
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_ROTATION_GET, &s);
    if (!dbt_ok(r)) {
        return r;
    }
    dbt_stmt_bind_int(s, 1, in->id);
    r = dbt_stmt_step(s, &row);
    if (!dbt_ok(r) || !row) {
        return r;
    }
    if (!dbt_stmt_is_null(s, 0)) {
        out->auto_rotate = strcmp(dbt_stmt_text(s, 0), "auto") == 0;
        out->mode_default = false;
    }
    if (!dbt_stmt_is_null(s, 1)) {
        out->lead_days = (int)dbt_stmt_int(s, 1);
        out->lead_default = false;
    }
    return DBT_OK;
}

dbt_res dbt_ctl_rotation_get(struct dbt_ctl *ctl, const char *instance,
                             struct dbt_ctl_rotation *out)
{
    memset(out, 0, sizeof *out);
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(policy_load(ctl, &in, out));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    return res;
}

dbt_res dbt_ctl_rotation_set(struct dbt_ctl *ctl, const char *instance, const char *mode,
                             int64_t lead_days)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct dbt_ctl_rotation cur = {0};
    struct dbt_stmt *s = NULL;
    char *obj = NULL;
    DBT_TRY(dbt_ctl_rotation_check(mode, lead_days));
    DBT_ENSURE(!ctl->read_only, STATE, "the store is open read-only");
    DBT_TRY(dbt_store_begin(ctl->st, true));
    DBT_TRY(ctl_inst_load(ctl, instance, &in));
    DBT_TRY(policy_load(ctl, &in, &cur));
    const char *new_mode = mode               ? mode
                           : cur.mode_default ? NULL
                           : cur.auto_rotate  ? "auto"
                                              : "manual";
    int64_t new_lead = lead_days >= 0 ? lead_days : cur.lead_default ? -1 : cur.lead_days;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_ROTATION_PUT, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    dbt_stmt_bind_text(s, 2, new_mode);
    if (new_lead >= 0) {
        dbt_stmt_bind_int(s, 3, new_lead);
    } else {
        dbt_stmt_bind_text(s, 3, NULL);
    }
    DBT_TRY(dbt_stmt_exec(s));
    obj = ctl_printf("instance/%s", instance);
    DBT_TRY(ctl_event(ctl, "instance.rotation-policy", obj,
                      "server_cert_rotation=%s rotation_lead_days=%lld",
                      new_mode ? new_mode : "default",
                      (long long)(new_lead >= 0 ? new_lead : DBT_CTL_DEFAULT_ROTATION_LEAD_DAYS)));
    DBT_TRY(ctl_commit(ctl));
out:
    dbt_store_rollback(ctl->st);
    ctl_inst_cleanup(&in);
    free(obj);
    return res;
}

int64_t dbt_ctl_rotation_due(int64_t created, int64_t not_after, int64_t lead_secs)
{
    int64_t life = not_after - created;
    if (life < 0) {
        life = 0;
    }
    int64_t half = created + life / 2;
    int64_t lead_at = not_after - lead_secs;
    if (lead_at <= created) {
        return half; /* the lead covers the whole lifetime: half-life alone */
    }
    return lead_at < half ? lead_at : half;
}

/* ---- the scheduler's check ----------------------------------------------------------------- */

static dbt_res notice_has(struct dbt_ctl *ctl, int64_t id, const char *kind, const char *serial,
                          bool *has)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_NOTICE_HAS, &s);
    if (dbt_ok(r)) {
        dbt_stmt_bind_int(s, 1, id);
        dbt_stmt_bind_text(s, 2, kind);
        dbt_stmt_bind_text(s, 3, serial);
        r = dbt_stmt_step(s, has);
    }
    return r;
}

static dbt_res notice_add(struct dbt_ctl *ctl, int64_t id, const char *kind, const char *serial,
                          int64_t now)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, DBT_SQL_NOTICE_ADD, &s);
    if (dbt_ok(r)) {
        dbt_stmt_bind_int(s, 1, id);
        dbt_stmt_bind_text(s, 2, kind);
        dbt_stmt_bind_text(s, 3, serial);
        dbt_stmt_bind_int(s, 4, now);
        r = dbt_stmt_exec(s);
    }
    return r;
}

static dbt_res slot_sql(struct dbt_ctl *ctl, enum dbt_sql id, int64_t inst, const char *a,
                        const char *b)
{
    struct dbt_stmt *s = NULL;
    dbt_res r = dbt_store_stmt(ctl->st, id, &s);
    if (dbt_ok(r)) {
        dbt_stmt_bind_int(s, 1, inst);
        dbt_stmt_bind_text(s, 2, a);
        if (b) {
            dbt_stmt_bind_text(s, 3, b);
        }
        r = dbt_stmt_exec(s);
    }
    return r;
}

struct due {
    bool any;     /* something to do */
    bool changed; /* apply: a change the front serves (bump the counter) */
};

/*
 * The client certificate dbtlsd shows a TLS backend (--backend-tls-cert) is the operator's file,
 * not dbtls's to renew: past its renewal point it gets one "backend-client-cert.expiring" event
 * per serial, as dbtls's own certificates do, before the backend starts refusing the front.
 */
static dbt_res backend_cert_check(struct dbt_ctl *ctl, const struct ctl_inst *in, const char *name,
                                  int64_t now, int64_t lead, bool apply,
                                  struct dbt_ctl_auto_report *rep, struct due *due)
{
    struct dbt_pki_cert_info ci = {0};
    if (!ctl_file_cert_info(in->pub.backend_tls_cert, &ci)) {
        return DBT_OK;
    }
    bool has = true;
    dbt_res res = DBT_OK;
    if (now >= dbt_ctl_rotation_due(ci.not_before, ci.not_after, lead)) {
        res = notice_has(ctl, in->id, "backend-client-cert-expiring", ci.serial, &has);
    }
    if (dbt_ok(res) && !has) {
        due->any = true;
    }
    if (dbt_ok(res) && !has && apply) {
        char when[32];
        dbt_time_rfc3339(ci.not_after, when, sizeof when);
        char *obj = ctl_printf("instance/%s/backend-client-cert", name);
        res = notice_add(ctl, in->id, "backend-client-cert-expiring", ci.serial, now);
        if (dbt_ok(res)) {
            res = ctl_event(ctl, "backend-client-cert.expiring", obj,
                            "the client certificate dbtlsd shows the database server (\"%s\", "
                            "serial %s) expires at %s; replace the file (dbtlsd takes the new "
                            "one up by itself)",
                            in->pub.backend_tls_cert, ci.serial, when);
        }
        free(obj);
        rep->notices++;
    }
    dbt_pki_cert_info_cleanup(&ci);
    return res;
}

/*
 * Shared mode: the CA that issues the instance's server certificates, and for an imported CA
 * each certificate of its chain, ending within the lead. dbtls cannot renew an imported CA or
 * its chain (the operator's PKI signs them), and clients that verify with that chain fail once
 * one of them has expired: one "ca.expiring" event per instance and certificate says what to
 * do. *ending tells whether the issuing CA itself ends within the lead: a new server
 * certificate would end with it (leaves are clamped to their issuer's notAfter), due again at
 * once, so automatic rotation does not rotate one in. dbtls's own intermediates last 10 years.
 */
static dbt_res issuer_ending(struct dbt_ctl *ctl, const struct ctl_inst *in,
                             const struct ctl_slot *active, int64_t now, int64_t lead, bool apply,
                             struct dbt_ctl_auto_report *rep, bool *ending, struct due *due)
{
    dbt_res res = DBT_OK;
    char *pem = NULL, *obj = NULL;
    struct dbt_pki_certs certs = {0};
    struct dbt_pki_cert_info ci = {0};
    *ending = false;
    if (active->shared_ca_id == NULL) {
        return DBT_OK;
    }
    DBT_TRY(
        ctl_shared_ca(ctl, active->shared_ca_id, active->shared_region, NULL, NULL, NULL, &pem));
    DBT_TRY(dbt_pki_certs_from_pem(pem, &certs));
    for (size_t i = 0; i < certs.n; i++) {
        dbt_pki_cert_info_cleanup(&ci);
        DBT_TRY(dbt_pki_cert_info(certs.v[i], &ci));
        if (ci.not_after - now >= lead) {
            continue;
        }
        *ending = *ending || i == 0;
        bool has = false;
        const char *kind = i == 0 ? "issuer-ca-expiring" : "ca-chain-expiring";
        DBT_TRY(notice_has(ctl, in->id, kind, ci.serial, &has));
        if (has) {
            continue;
        }
        due->any = true;
        if (!apply) {
            continue;
        }
        char when[32];
        dbt_time_rfc3339(ci.not_after, when, sizeof when);
        free(obj);
        obj = ctl_printf("instance/%s", in->pub.name);
        DBT_TRY(notice_add(ctl, in->id, kind, ci.serial, now));
        if (i == 0) {
            DBT_TRY(ctl_event(ctl, "ca.expiring", obj,
                              "CA %s (serial %s), which issues this instance's server "
                              "certificates, expires at %s: a new certificate would end then too "
                              "(automatic rotation rotates none in); import its successor (dbtls "
                              "cas import) and move the instance to it (dbtls instances patch %s "
                              "--ca NEW_ID)",
                              active->shared_ca_id, ci.serial, when, in->pub.name));
        } else {
            DBT_TRY(ctl_event(ctl, "ca.expiring", obj,
                              "certificate %s (serial %s) of CA %s's chain, which clients of this "
                              "instance verify, expires at %s: have the CA's chain renewed by its "
                              "issuer, import it as a new CA (dbtls cas import) and move the "
                              "instance to it (dbtls instances patch %s --ca NEW_ID)",
                              ci.subject, ci.serial, active->shared_ca_id, when, in->pub.name));
        }
        rep->notices++;
    }
out:
    free(pem);
    free(obj);
    dbt_pki_certs_free(&certs);
    dbt_pki_cert_info_cleanup(&ci);
    return res;
}

/*
 * Evaluates (apply false, in a read transaction: plans into keys the keys a new server CA or
 * certificate will need) or performs (apply true, in a write transaction: takes them) the due
 * actions of one instance.
 */
static dbt_res instance_check(struct dbt_ctl *ctl, const char *name, int64_t now, bool apply,
                              struct ctl_keys *keys, struct dbt_ctl_auto_report *rep,
                              struct due *due)
{
    dbt_res res = DBT_OK;
    struct ctl_inst in = {0};
    struct ctl_slots slots = {0};
    struct ctl_slot row = {0};
    struct dbt_ctl_rotation pol = {0};
    struct dbt_pki_cert_info act = {0}, up = {0};
    struct dbt_stmt *s = NULL;
    char *obj = NULL;
    char when[32];
    DBT_TRY(ctl_inst_load(ctl, name, &in));
    DBT_TRY(policy_load(ctl, &in, &pol));
    DBT_TRY(ctl_slots_load(ctl, in.id, &slots));
    int64_t lead = (int64_t)pol.lead_days * 86400;
    bool per_instance = strcmp(in.pub.ca_mode, "per-instance") == 0;
    struct ctl_slot *active = ctl_slots_find(&slots, "active");
    obj = ctl_printf("instance/%s", name);
    if (active != NULL) {
        /* per-instance mode: what expires is the server CA; shared mode: the server cert */
        const char *pem = per_instance && active->ca_pem ? active->ca_pem : active->cert_pem;
        DBT_TRY(dbt_pki_cert_info_pem(pem, &act));
        int64_t due_at = dbt_ctl_rotation_due(active->created_at, act.not_after, lead);
        const char *kind = per_instance ? "server-ca-expiring" : "server-cert-expiring";
        bool has = false;
        if (now >= due_at && !(pol.auto_rotate && !per_instance)) {
            DBT_TRY(notice_has(ctl, in.id, kind, act.serial, &has));
        }
        dbt_time_rfc3339(act.not_after, when, sizeof when);
        bool ca_ending = false;
        if (!per_instance) {
            DBT_TRY(issuer_ending(ctl, &in, active, now, lead, apply, rep, &ca_ending, due));
        }
        if (now >= due_at && !per_instance && pol.auto_rotate && !ca_ending) {
            /* issue + rotate in this one transaction; same lifetime as the active one */
            due->any = true;
            if (!apply) {
                DBT_TRY(ctl_build_slot_keys(ctl, &in.pub, keys));
            } else {
                int64_t life = act.not_after - active->created_at;
                struct dbt_ctl_validity v = {.leaf_secs = life > 60 ? life : 60};
                DBT_TRY(ctl_build_slot(ctl, &in.pub, &v, keys, &row));
                DBT_TRY(dbt_pki_cert_info_pem(row.cert_pem, &up));
                DBT_TRY(slot_sql(ctl, DBT_SQL_SLOT_DELETE, in.id, "upcoming", NULL));
                DBT_TRY(slot_sql(ctl, DBT_SQL_SLOT_DELETE, in.id, "previous", NULL));
                DBT_TRY(slot_sql(ctl, DBT_SQL_SLOT_RENAME, in.id, "active", "previous"));
                ctl_fault("auto-rotate-mid");
                DBT_TRY(ctl_slot_put(ctl, in.id, "active", &row));
                DBT_TRY(ctl_event(ctl, "server-cert.auto-rotate", obj,
                                  "server cert auto-rotated: active=%s previous=%s "
                                  "previous_expires=%s",
                                  up.serial, act.serial, when));
                due->changed = true;
                rep->rotated++;
            }
        } else if (now >= due_at && !has && !ca_ending) {
            due->any = true;
            if (!apply && per_instance && ctl_slots_find(&slots, "upcoming") == NULL) {
                DBT_TRY(ctl_build_slot_keys(ctl, &in.pub, keys));
            }
            if (apply && per_instance) {
                const char *up_serial = NULL;
                struct ctl_slot *upc = ctl_slots_find(&slots, "upcoming");
                if (upc == NULL) {
                    int64_t life = act.not_after - active->created_at;
                    struct dbt_ctl_validity v = {.ca_secs = life > 60 ? life : 60,
                                                 .leaf_secs = life > 60 ? life : 60};
                    DBT_TRY(ctl_build_slot(ctl, &in.pub, &v, keys, &row));
                    DBT_TRY(ctl_slot_put(ctl, in.id, "upcoming", &row));
                    DBT_TRY(dbt_pki_cert_info_pem(row.ca_pem, &up));
                    due->changed = true;
                    rep->ca_added++;
                } else {
                    DBT_TRY(dbt_pki_cert_info_pem(upc->ca_pem ? upc->ca_pem : upc->cert_pem, &up));
                }
                up_serial = up.serial;
                DBT_TRY(notice_add(ctl, in.id, kind, act.serial, now));
                DBT_TRY(ctl_event(ctl, "server-ca.expiring", obj,
                                  "server CA %s expires at %s; upcoming server CA %s%s: "
                                  "distribute server-ca.pem (dbtls ssl server-ca-certs download) "
                                  "to clients, then rotate (dbtls ssl server-ca-certs rotate)",
                                  act.serial, when, up_serial, upc == NULL ? " added" : ""));
                rep->notices++;
            } else if (apply) {
                DBT_TRY(notice_add(ctl, in.id, kind, act.serial, now));
                DBT_TRY(ctl_event(ctl, "server-cert.expiring", obj,
                                  "server certificate %s expires at %s; rotation is manual: "
                                  "dbtls ssl server-certs create, then rotate",
                                  act.serial, when));
                rep->notices++;
            }
        }
    }
    /* client certificates nearing expiry: one event each */
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CLIENT_LIST, &s));
    dbt_stmt_bind_int(s, 1, in.id);
    struct pending {
        char *name, *serial;
        int64_t not_after;
    } *pend = NULL;
    size_t n_pend = 0;
    for (;;) {
        bool r = false;
        res = dbt_stmt_step(s, &r);
        if (!dbt_ok(res) || !r) {
            break;
        }
        struct dbt_pki_cert_info ci = {0};
        res = dbt_pki_cert_info_pem(dbt_stmt_text(s, 3), &ci);
        if (!dbt_ok(res)) {
            break;
        }
        if (now >= dbt_ctl_rotation_due(dbt_stmt_int(s, 4), ci.not_after, lead)) {
            struct pending *np = realloc(pend, (n_pend + 1) * sizeof *np);
            if (np == NULL) {
                dbt_pki_cert_info_cleanup(&ci);
                res = dbt_fail(DBT_E_NOMEM, "out of memory");
                break;
            }
            pend = np;
            pend[n_pend++] = (struct pending){ctl_strdup(dbt_stmt_text(s, 0)),
                                              ctl_strdup(ci.serial), ci.not_after};
        }
        dbt_pki_cert_info_cleanup(&ci);
    }
    for (size_t i = 0; dbt_ok(res) && i < n_pend; i++) {
        bool has = false;
        res = notice_has(ctl, in.id, "client-cert-expiring", pend[i].serial, &has);
        if (!dbt_ok(res) || has) {
            continue;
        }
        due->any = true;
        if (apply) {
            char *cobj = ctl_printf("instance/%s/client-cert/%s", name, pend[i].name);
            dbt_time_rfc3339(pend[i].not_after, when, sizeof when);
            res = notice_add(ctl, in.id, "client-cert-expiring", pend[i].serial, now);
            if (dbt_ok(res)) {
                res = ctl_event(ctl, "client-cert.expiring", cobj,
                                "client certificate \"%s\" (serial %s) expires at %s; issue a "
                                "new one and replace it",
                                pend[i].name, pend[i].serial, when);
            }
            free(cobj);
            rep->notices++;
        }
    }
    for (size_t i = 0; i < n_pend; i++) {
        free(pend[i].name);
        free(pend[i].serial);
    }
    free(pend);
    if (dbt_ok(res)) {
        res = backend_cert_check(ctl, &in, name, now, lead, apply, rep, due);
    }
out:
    ctl_inst_cleanup(&in);
    ctl_slots_cleanup(&slots);
    ctl_slot_cleanup(&row);
    dbt_pki_cert_info_cleanup(&act);
    dbt_pki_cert_info_cleanup(&up);
    free(obj);
    return res;
}

static dbt_res instance_names(struct dbt_ctl *ctl, char ***names, size_t *n)
{
    dbt_res res = DBT_OK;
    *names = NULL;
    *n = 0;
    DBT_TRY(dbt_store_begin(ctl->st, false));
    DBT_TRY(ctl_instance_names(ctl, false, names, n));
    DBT_TRY(dbt_store_commit(ctl->st));
out:
    dbt_store_rollback(ctl->st);
    if (!dbt_ok(res)) {
        ctl_strv_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return res;
}

/*
 * The due actions of one instance: found in a read transaction, the keys they need generated
 * holding no lock, then done in a write transaction that checks again (and plans again when the
 * instance changed in between so that other keys are needed).
 */
static dbt_res instance_run(struct dbt_ctl *ctl, const char *name, int64_t now,
                            struct dbt_ctl_auto_report *rep)
{
    dbt_res r = DBT_OK;
    struct ctl_keys keys = {0};
    for (int t = 0; t < CTL_KEYS_TRIES; t++) {
        struct due d = {0};
        ctl_keys_cleanup(&keys);
        r = dbt_store_begin(ctl->st, false);
        if (dbt_ok(r)) {
            r = instance_check(ctl, name, now, false, &keys, rep, &d);
        }
        dbt_store_rollback(ctl->st);
        if (!dbt_ok(r) || !d.any) {
            break;
        }
        r = ctl_keys_generate(&keys);
        if (!dbt_ok(r)) {
            break;
        }
        d = (struct due){0};
        r = dbt_store_begin(ctl->st, true);
        if (dbt_ok(r)) {
            r = instance_check(ctl, name, now, true, &keys, rep, &d);
        }
        if (dbt_ok(r)) {
            r = d.changed ? ctl_commit(ctl) : dbt_store_commit(ctl->st);
        }
        dbt_store_rollback(ctl->st);
        if (!keys.stale) {
            break;
        }
    }
    ctl_keys_cleanup(&keys);
    return r;
}

dbt_res dbt_ctl_auto_run(struct dbt_ctl *ctl, int64_t now, struct dbt_ctl_auto_report *rep)
{
    memset(rep, 0, sizeof *rep);
    dbt_res first = DBT_OK;
    char **names = NULL;
    size_t n = 0;
    if (ctl->read_only) {
        return dbt_fail(DBT_E_STATE, "automatic actions need a read-write store handle");
    }
    dbt_res r = instance_names(ctl, &names, &n);
    if (!dbt_ok(r)) {
        return r;
    }
    char firstmsg[512] = "";
    for (size_t i = 0; i < n; i++) {
        r = instance_run(ctl, names[i], now, rep);
        if (!dbt_ok(r) && r.code != DBT_E_NOT_FOUND) { /* deleted meanwhile: nothing to do */
            rep->failed++;
            if (dbt_ok(first)) {
                first = r;
                snprintf(firstmsg, sizeof firstmsg, "instance \"%s\": %s", names[i], dbt_errmsg());
            }
        }
    }
    ctl_strv_free(names, n);
    r = ctl_admin_expiring(ctl, now, (int64_t)DBT_CTL_DEFAULT_ROTATION_LEAD_DAYS * 86400,
                           &rep->notices);
    if (!dbt_ok(r)) {
        rep->failed++;
        if (dbt_ok(first)) {
            first = r;
            snprintf(firstmsg, sizeof firstmsg, "admin certificates: %s", dbt_errmsg());
        }
    }
    if (!dbt_ok(first)) {
        return dbt_fail(first.code, "%s", firstmsg);
    }
    return DBT_OK;
}
