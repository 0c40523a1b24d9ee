/*
 * test_sched.c - the automatic side of the control plane (ctl/auto.h) and the scheduler's
 * delivery helpers (sched/scheduler.h): when a certificate is due, the rotation policy, the
 * scheduler's check against a real store with fake clocks (shared mode rotates in one
 * transaction, per-instance mode adds an upcoming CA, client certificates warn once), the
 * expiry list, the delivered markers, the event JSON, and the notify command / webhook
 * attempts (success, failure, timeout, refused connection).
 */
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../unit/check.h"
#include "base/clock.h"
#include "ctl/auto.h"
#include "ctl/ctl.h"
#include "pki/pki.h"
#include "sched/scheduler.h"

#define DAY 86400

static char root_dir[] = "/tmp/dbt-sched-XXXXXX";

static void test_due(void)
{
    /* 1 year, lead 90 days: half-life (day 182) comes before the lead (day 275) */
    CHECK(dbt_ctl_rotation_due(0, 365 * DAY, 90 * DAY) == 365 * DAY / 2);
    /* 100 days, lead 90 days: the lead (day 10) comes first */
    CHECK(dbt_ctl_rotation_due(0, 100 * DAY, 90 * DAY) == 10 * DAY);
    /* 120 s with a 90-day lead: the lead covers the whole life, half-life alone (not at once) */
    CHECK(dbt_ctl_rotation_due(1000, 1120, 90 * DAY) == 1060);
    /* lead 0: half-life */
    CHECK(dbt_ctl_rotation_due(1000, 1120, 0) == 1060);
    /* lead exactly the lifetime: half-life */
    CHECK(dbt_ctl_rotation_due(0, 100, 100) == 50);
    /* already expired at creation: due at once */
    CHECK(dbt_ctl_rotation_due(100, 50, 0) == 100);
}

static void test_policy_check(void)
{
    CHECK_OK(dbt_ctl_rotation_check(NULL, -1));
    CHECK_OK(dbt_ctl_rotation_check("auto", 0));
    CHECK_OK(dbt_ctl_rotation_check("manual", DBT_CTL_MAX_ROTATION_LEAD_DAYS));
    CHECK_ERR(dbt_ctl_rotation_check("Auto", -1), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "\"Auto\" is not valid; use auto or manual") != NULL);
    CHECK_ERR(dbt_ctl_rotation_check("", -1), DBT_E_INVALID);
    CHECK_ERR(dbt_ctl_rotation_check(NULL, -2), DBT_E_INVALID);
    CHECK_ERR(dbt_ctl_rotation_check(NULL, DBT_CTL_MAX_ROTATION_LEAD_DAYS + 1), DBT_E_INVALID);
}

static const char *serial_of(struct dbt_ctl *ctl, const char *inst, enum dbt_ctl_slot_kind kind,
                             const char *slot, char *buf, size_t n)
{
    struct dbt_ctl_cert_list l = {0};
    buf[0] = '\0';
    if (dbt_ok(dbt_ctl_slots_list(ctl, inst, kind, &l))) {
        for (size_t i = 0; i < l.n; i++) {
            if (strcmp(l.items[i].slot, slot) == 0) {
                snprintf(buf, n, "%s", l.items[i].cert_serial_number);
            }
        }
    }
    dbt_ctl_cert_list_cleanup(&l);
    return buf;
}

static int count_events(struct dbt_ctl *ctl, const char *action)
{
    struct dbt_ctl_event_list l = {0};
    int n = 0;
    if (dbt_ok(dbt_ctl_events_list(ctl, NULL, 0, &l))) {
        for (size_t i = 0; i < l.n; i++) {
            n += strcmp(l.items[i].action, action) == 0;
        }
    }
    dbt_ctl_event_list_cleanup(&l);
    return n;
}

/* A new store in root_dir/sub, opened (NULL when that failed, which CHECK recorded). */
static struct dbt_ctl *new_store(const char *sub)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root_dir, sub);
    struct dbt_ctl_opts o = {.state_dir = dir, .actor = "test"};
    struct dbt_ctl *ctl = NULL;
    CHECK_OK(dbt_ctl_init(&o));
    CHECK_OK(dbt_ctl_open(&o, &ctl));
    return ctl;
}

static void test_store_flow(void)
{
    struct dbt_ctl *ctl = new_store("state");
    if (ctl == NULL) {
        return;
    }
    struct dbt_ctl_instance_spec sp = {.engine = "postgres",
                                       .listen = "127.0.0.1:15432",
                                       .backend = "127.0.0.1:5432",
                                       .endpoints = "a.local"};
    struct dbt_ctl_validity v = {.leaf_secs = 100};
    CHECK_OK(dbt_ctl_instance_create(ctl, "a", &sp, &v, NULL));
    struct dbt_ctl_instance_spec pi = sp;
    pi.listen = "127.0.0.1:15433";
    pi.endpoints = "b.local";
    pi.ca_mode = "per-instance";
    struct dbt_ctl_validity vc = {.ca_secs = 100, .leaf_secs = 100};
    CHECK_OK(dbt_ctl_instance_create(ctl, "b", &pi, &vc, NULL));
    struct dbt_ctl_client_cert_opts co = {.validity_secs = 100};
    struct dbt_ctl_client_cert_new cc = {0};
    CHECK_OK(dbt_ctl_client_cert_create(ctl, "a", "app", &co, &cc));
    dbt_ctl_client_cert_new_cleanup(&cc);

    /* default policies */
    struct dbt_ctl_rotation r;
    CHECK_OK(dbt_ctl_rotation_get(ctl, "a", &r));
    CHECK(r.auto_rotate && r.mode_default && r.lead_days == 90 && r.lead_default);
    CHECK_OK(dbt_ctl_rotation_get(ctl, "b", &r));
    CHECK(!r.auto_rotate && r.mode_default);
    CHECK_ERR(dbt_ctl_rotation_get(ctl, "nosuch", &r), DBT_E_NOT_FOUND);
    CHECK_ERR(dbt_ctl_rotation_set(ctl, "nosuch", "auto", -1), DBT_E_NOT_FOUND);
    CHECK_ERR(dbt_ctl_rotation_set(ctl, "a", "never", -1), DBT_E_INVALID);

    char s0[80], s1[80], s2[80];
    serial_of(ctl, "a", DBT_CTL_SLOT_SERVER_CERT, "active", s0, sizeof s0);
    CHECK(s0[0] != '\0');
    uint64_t c0 = 0, c1 = 0;
    CHECK_OK(dbt_ctl_change_counter(ctl, &c0));

    /* not due yet (the lead covers the 100 s life: half-life = +50 s) */
    int64_t t = dbt_now_unix();
    struct dbt_ctl_auto_report rep;
    CHECK_OK(dbt_ctl_auto_run(ctl, t + 10, &rep));
    CHECK(rep.rotated == 0 && rep.ca_added == 0 && rep.notices == 0 && rep.failed == 0);
    CHECK_OK(dbt_ctl_change_counter(ctl, &c1));
    CHECK(c1 == c0); /* a check with nothing due writes nothing */

    /* at half-life: a rotates, b gets an upcoming CA, app warns */
    CHECK_OK(dbt_ctl_auto_run(ctl, t + 60, &rep));
    CHECK(rep.rotated == 1 && rep.ca_added == 1 && rep.notices == 2 && rep.failed == 0);
    serial_of(ctl, "a", DBT_CTL_SLOT_SERVER_CERT, "active", s1, sizeof s1);
    serial_of(ctl, "a", DBT_CTL_SLOT_SERVER_CERT, "previous", s2, sizeof s2);
    CHECK(s1[0] != '\0' && strcmp(s1, s0) != 0);
    CHECK(strcmp(s2, s0) == 0);
    CHECK_OK(dbt_ctl_change_counter(ctl, &c1));
    CHECK(c1 > c0); /* the front must reload */
    CHECK(count_events(ctl, "server-cert.auto-rotate") == 1);
    CHECK(count_events(ctl, "server-ca.expiring") == 1);
    CHECK(count_events(ctl, "client-cert.expiring") == 1);
    serial_of(ctl, "b", DBT_CTL_SLOT_SERVER_CA, "upcoming", s2, sizeof s2);
    CHECK(s2[0] != '\0');

    /* the new cert (issued now, 100 s like the old one) is due at its own half-life, not
       before; notices are not repeated */
    CHECK_OK(dbt_ctl_auto_run(ctl, t + 40, &rep));
    CHECK(rep.rotated == 0 && rep.ca_added == 0 && rep.notices == 0);
    CHECK(count_events(ctl, "client-cert.expiring") == 1);

    /* manual: only a warning, once */
    CHECK_OK(dbt_ctl_rotation_set(ctl, "a", "manual", 0));
    CHECK_OK(dbt_ctl_rotation_get(ctl, "a", &r));
    CHECK(!r.auto_rotate && !r.mode_default && r.lead_days == 0 && !r.lead_default);
    CHECK_OK(dbt_ctl_auto_run(ctl, t + 100000, &rep));
    CHECK(rep.rotated == 0 && rep.notices == 1);
    CHECK_OK(dbt_ctl_auto_run(ctl, t + 100000, &rep));
    CHECK(rep.notices == 0);
    CHECK(count_events(ctl, "server-cert.expiring") == 1);
    char s3[80];
    serial_of(ctl, "a", DBT_CTL_SLOT_SERVER_CERT, "active", s3, sizeof s3);
    CHECK(strcmp(s3, s1) == 0);

    /* the expiry list: 3 roots + 3 intermediates, a: 2 server slots + client CA + app,
       b: 2 server CAs + 2 server certs + client CA */
    struct dbt_ctl_expiry_list el = {0};
    CHECK_OK(dbt_ctl_expiry_list(ctl, &el));
    CHECK(el.n == 6 + 4 + 5);
    int found = 0;
    for (size_t i = 0; i < el.n; i++) {
        const struct dbt_ctl_expiry *e = &el.items[i];
        if (strcmp(e->kind, "client-cert") == 0) {
            found += strcmp(e->instance, "a") == 0 && strcmp(e->name, "app") == 0 &&
                     e->not_after > t && e->not_after <= t + 101;
        }
        if (strcmp(e->kind, "server-cert") == 0 && strcmp(e->slot, "active") == 0 &&
            strcmp(e->instance, "a") == 0) {
            found += strcmp(e->serial, s1) == 0;
        }
        if (strcmp(e->kind, "root-ca") == 0) {
            found += e->instance[0] == '\0' && e->not_after > t + 39LL * 365 * DAY;
        }
    }
    CHECK(found == 1 + 1 + 3);
    dbt_ctl_expiry_list_cleanup(&el);

    /* markers and events after an id */
    int64_t max = 0, last = -1;
    bool have = true;
    CHECK_OK(dbt_ctl_events_max_id(ctl, &max));
    CHECK(max > 5);
    CHECK_OK(dbt_ctl_notify_mark_get(ctl, "command:x", &last, &have));
    CHECK(!have && last == 0);
    CHECK_OK(dbt_ctl_notify_mark_put(ctl, "command:x", max - 2));
    CHECK_OK(dbt_ctl_notify_mark_get(ctl, "command:x", &last, &have));
    CHECK(have && last == max - 2);
    struct dbt_ctl_event_list l = {0};
    CHECK_OK(dbt_ctl_events_after(ctl, max - 2, 0, &l));
    CHECK(l.n == 2 && l.n > 0 && l.items[0].id == max - 1 && l.items[1].id == max);
    dbt_ctl_event_list_cleanup(&l);
    CHECK_OK(dbt_ctl_events_after(ctl, 0, 3, &l));
    CHECK(l.n == 3 && l.items[0].id == 1);
    dbt_ctl_event_list_cleanup(&l);
    dbt_ctl_close(ctl);

    /* a read-only handle cannot run automatic actions or move markers */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/state", root_dir);
    struct dbt_ctl_opts ro = {.state_dir = dir, .actor = "test", .read_only = 1};
    CHECK_OK(dbt_ctl_open(&ro, &ctl));
    if (ctl != NULL) {
        CHECK_ERR(dbt_ctl_auto_run(ctl, t, &rep), DBT_E_STATE);
        CHECK_ERR(dbt_ctl_notify_mark_put(ctl, "command:x", 1), DBT_E_STATE);
        dbt_ctl_close(ctl);
    }
}

/* Imports CA "corp" (chain may be NULL) and creates instance "c" under it. */
static void import_corp_for_c(struct dbt_ctl *ctl, const char *cert, const char *chain,
                              const char *key)
{
    CHECK_OK(dbt_ctl_cas_import(ctl, "corp", cert, chain, key));
    struct dbt_ctl_instance_spec sp = {.engine = "postgres",
                                       .listen = "127.0.0.1:15442",
                                       .backend = "127.0.0.1:5432",
                                       .endpoints = "c.local",
                                       .ca_id = "corp"};
    CHECK_OK(dbt_ctl_instance_create(ctl, "c", &sp, NULL, NULL));
}

/* An imported CA that ends within the lead: once the certificate is due (its half-life, 20 of
   its 40 days: clamped to the CA), a new one would end with it, so the scheduler rotates
   nothing (not every tick) and says once what to do. */
static void test_imported_ca_ending(void)
{
    struct dbt_ctl *ctl = new_store("imported");
    if (ctl == NULL) {
        return;
    }
    struct dbt_pki_key *k = NULL;
    struct dbt_pki_cert *c = NULL;
    char *cert = NULL, *key = NULL;
    CHECK_OK(dbt_pki_key_generate(DBT_PKI_KEY_EC256, &k));
    struct dbt_pki_cert_spec cs = {.profile = DBT_PKI_PROFILE_CA,
                                   .cn = "corp CA",
                                   .validity_secs = 40 * DAY,
                                   .pathlen = -1,
                                   .digest = DBT_PKI_SHA256,
                                   .key = k};
    CHECK_OK(dbt_pki_cert_issue(&cs, &c));
    CHECK_OK(dbt_pki_cert_to_pem(c, &cert));
    CHECK_OK(dbt_pki_key_to_pem(k, &key));
    import_corp_for_c(ctl, cert, NULL, key);
    char s0[80], s1[80];
    serial_of(ctl, "c", DBT_CTL_SLOT_SERVER_CERT, "active", s0, sizeof s0);
    struct dbt_ctl_auto_report rep;
    int64_t t = dbt_now_unix();
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dbt_ctl_auto_run(ctl, t + 25 * DAY + 60 * i, &rep));
        CHECK(rep.rotated == 0 && rep.failed == 0 && rep.notices == (i == 0 ? 1 : 0));
    }
    serial_of(ctl, "c", DBT_CTL_SLOT_SERVER_CERT, "active", s1, sizeof s1);
    CHECK(s0[0] != '\0' && strcmp(s0, s1) == 0);
    CHECK(count_events(ctl, "ca.expiring") == 1);
    CHECK(count_events(ctl, "server-cert.expiring") == 0);
    CHECK(count_events(ctl, "server-cert.auto-rotate") == 0);
    dbt_ctl_close(ctl);
    free(cert);
    dbt_pki_wipe_free(key);
    dbt_pki_cert_free(c);
    dbt_pki_key_free(k);
}

/* An imported CA whose chain ends within the lead: with manual rotation too (nothing is due
   on the server certificate yet), one "ca.expiring" per instance and certificate (the CA and
   its chain's root), not again on later ticks; a long-lived chain raises nothing. */
static bool event_says(struct dbt_ctl *ctl, const char *action, const char *text)
{
    struct dbt_ctl_event_list l = {0};
    bool found = false;
    if (dbt_ok(dbt_ctl_events_list(ctl, NULL, 0, &l))) {
        for (size_t i = 0; i < l.n; i++) {
            found |= strcmp(l.items[i].action, action) == 0 && strstr(l.items[i].detail, text);
        }
    }
    dbt_ctl_event_list_cleanup(&l);
    return found;
}

static void imported_chain_case(const char *sub, int64_t root_secs, int64_t ca_secs, int notices)
{
    struct dbt_ctl *ctl = new_store(sub);
    if (ctl == NULL) {
        return;
    }
    struct dbt_pki_key *rk = NULL, *k = NULL;
    struct dbt_pki_cert *root = NULL, *c = NULL;
    char *root_pem = NULL, *cert = NULL, *key = NULL;
    CHECK_OK(dbt_pki_key_generate(DBT_PKI_KEY_EC256, &rk));
    CHECK_OK(dbt_pki_key_generate(DBT_PKI_KEY_EC256, &k));
    struct dbt_pki_cert_spec rs = {.profile = DBT_PKI_PROFILE_CA,
                                   .cn = "corp root",
                                   .validity_secs = root_secs,
                                   .pathlen = -1,
                                   .digest = DBT_PKI_SHA256,
                                   .key = rk};
    CHECK_OK(dbt_pki_cert_issue(&rs, &root));
    struct dbt_pki_cert_spec cs = {.profile = DBT_PKI_PROFILE_CA,
                                   .cn = "corp issuing CA",
                                   .validity_secs = ca_secs,
                                   .pathlen = 0,
                                   .digest = DBT_PKI_SHA256,
                                   .key = k,
                                   .issuer = root,
                                   .issuer_key = rk};
    CHECK_OK(dbt_pki_cert_issue(&cs, &c));
    CHECK_OK(dbt_pki_cert_to_pem(root, &root_pem));
    CHECK_OK(dbt_pki_cert_to_pem(c, &cert));
    CHECK_OK(dbt_pki_key_to_pem(k, &key));
    import_corp_for_c(ctl, cert, root_pem, key);
    CHECK_OK(dbt_ctl_rotation_set(ctl, "c", "manual", -1));
    struct dbt_ctl_auto_report rep;
    int64_t t = dbt_now_unix();
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dbt_ctl_auto_run(ctl, t + 60 * i, &rep));
        CHECK(rep.rotated == 0 && rep.failed == 0 && rep.notices == (i == 0 ? notices : 0));
    }
    CHECK(count_events(ctl, "ca.expiring") == notices);
    if (notices > 0) {
        CHECK(event_says(ctl, "ca.expiring", "CA corp (serial "));
        CHECK(event_says(ctl, "ca.expiring", "(serial ") &&
              event_says(ctl, "ca.expiring",
                         "of CA corp's chain, which clients of this instance "
                         "verify"));
    }
    dbt_ctl_close(ctl);
    free(root_pem);
    free(cert);
    dbt_pki_wipe_free(key);
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(c);
    dbt_pki_key_free(rk);
    dbt_pki_key_free(k);
}

static void test_imported_chain_ending(void)
{
    imported_chain_case("chain-ending", 60 * DAY, 3650 * DAY, 2); /* the CA is clamped: both */
    imported_chain_case("chain-fine", 3650 * DAY, 1000 * DAY, 0);
}

static void test_event_json(void)
{
    struct dbt_ctl_event e = {.id = 42,
                              .time = 0,
                              .actor = "dbtlsd",
                              .action = "client-cert.expiring",
                              .object = "instance/db1/client-cert/app",
                              .detail = "say \"hi\""};
    char *j = dbt_sched_event_json(&e);
    CHECK(j != NULL);
    json_error_t err;
    json_t *o = j ? json_loads(j, 0, &err) : NULL;
    CHECK(o != NULL);
    if (o) {
        CHECK(json_integer_value(json_object_get(o, "id")) == 42);
        CHECK(strcmp(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:00Z") == 0);
        CHECK(strcmp(json_string_value(json_object_get(o, "instance")), "db1") == 0);
        CHECK(strcmp(json_string_value(json_object_get(o, "detail")), "say \"hi\"") == 0);
        json_decref(o);
    }
    free(j);
    e.object = "store";
    j = dbt_sched_event_json(&e);
    o = j ? json_loads(j, 0, &err) : NULL;
    CHECK(o != NULL && json_is_null(json_object_get(o, "instance")));
    json_decref(o);
    free(j);
    e.object = "instance/solo";
    j = dbt_sched_event_json(&e);
    o = j ? json_loads(j, 0, &err) : NULL;
    CHECK(o != NULL && strcmp(json_string_value(json_object_get(o, "instance")), "solo") == 0);
    json_decref(o);
    free(j);
}

static void test_delivery(void)
{
    char out[512], cmd[1100];
    snprintf(out, sizeof out, "%s/got.json", root_dir);
    snprintf(cmd, sizeof cmd, "cat > '%s'", out);
    CHECK_OK(dbt_sched_run_command(cmd, "{\"id\":1}", 10000));
    FILE *f = fopen(out, "r");
    char buf[64] = "";
    CHECK(f != NULL);
    if (f) {
        CHECK(fgets(buf, sizeof buf, f) != NULL);
        fclose(f);
    }
    CHECK(strcmp(buf, "{\"id\":1}\n") == 0);
    CHECK_ERR(dbt_sched_run_command("exit 7", "{}", 10000), DBT_E_IO);
    CHECK(strstr(dbt_errmsg(), "exited with status 7") != NULL);
    /* a command that ignores stdin and succeeds still counts as delivered */
    CHECK_OK(dbt_sched_run_command("true", "{}", 10000));
    int64_t t0 = (int64_t)dbt_now_ms();
    CHECK_ERR(dbt_sched_run_command("sleep 20", "{}", 300), DBT_E_TIMEOUT);
    CHECK((int64_t)dbt_now_ms() - t0 < 5000);
    CHECK(strstr(dbt_errmsg(), "did not finish within 300 ms") != NULL);
    /* nothing listens on port 1 */
    CHECK_ERR(dbt_sched_post_webhook("http://127.0.0.1:1/x", "{}", 2000), DBT_E_IO);
    CHECK(strstr(dbt_errmsg(), "notify webhook http://127.0.0.1:1/x") != NULL);
}

int main(void)
{
    /* as dbtlsd (front.c): a notify command that exits without reading its stdin must not kill
       the process writing the event to it */
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(root_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_due();
    test_policy_check();
    test_event_json();
    test_delivery();
    test_store_flow();
    test_imported_ca_ending();
    test_imported_chain_ending();
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", root_dir);
    if (system(rm) != 0) {
        fprintf(stderr, "could not remove %s\n", root_dir);
    }
    return check_exit();
}
