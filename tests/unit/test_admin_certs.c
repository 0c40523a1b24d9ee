/*
 * test_admin_certs.c - the admin client certificates of ctl/admin_ca.h against a real store:
 * create records each one, list shows them, revoke by name (every live certificate of that
 * name) or SHA-1 (exactly one) marks them revoked with an event and puts them in the admin
 * CA's CRL (checked with pki's verifier), refusals (unknown, already revoked, empty) change
 * nothing, a process killed inside the revoke transaction leaves the certificate live, and a
 * store of schema 2 is upgraded in place with its earlier admin certificates recovered from
 * their events, so they can be revoked too.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "ctl/admin_ca.h"
#include "ctl/ctl.h"
#include "pki/pki.h"
#include "check.h"

static char root_dir[] = "/tmp/dbtls-test-admin-certs-XXXXXX";
static char state_dir[300];
static struct dbt_ctl_opts opts;
static struct dbt_ctl *ctl;

#include "ctl_refused.h"

/* The one certificate named name in the listing (NULL if there are none or several). */
static const struct dbt_ctl_admin_cert_info *find(const struct dbt_ctl_admin_cert_list *l,
                                                  const char *name, bool revoked)
{
    const struct dbt_ctl_admin_cert_info *r = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i].name, name) == 0 && (l->items[i].revoke_time != 0) == revoked) {
            if (r != NULL) {
                return NULL;
            }
            r = &l->items[i];
        }
    }
    return r;
}

/* Verifies cert_pem as a client certificate against the admin CA and its current CRL. */
static dbt_res verify_admin(const char *cert_pem, size_t *n_revoked)
{
    char *ca_pem = NULL, *crl_pem = NULL;
    struct dbt_pki_certs ca = {0};
    struct dbt_pki_crl *crl = NULL;
    struct dbt_pki_cert *leaf = NULL;
    dbt_res r = dbt_ctl_admin_trust(ctl, &ca_pem, &crl_pem, n_revoked);
    if (dbt_ok(r)) {
        r = dbt_pki_certs_from_pem(ca_pem, &ca);
    }
    if (dbt_ok(r)) {
        r = dbt_pki_crl_from_pem(crl_pem, &crl);
    }
    if (dbt_ok(r)) {
        r = dbt_pki_cert_from_pem(cert_pem, &leaf);
    }
    if (dbt_ok(r)) {
        struct dbt_pki_verify_opts vo = {
            .trusted = &ca, .crl = crl, .purpose = DBT_PKI_PURPOSE_CLIENT};
        r = dbt_pki_verify(leaf, &vo, NULL);
    }
    dbt_pki_cert_free(leaf);
    dbt_pki_crl_free(crl);
    dbt_pki_certs_free(&ca);
    free(ca_pem);
    free(crl_pem);
    return r;
}

static size_t count_events(const char *action)
{
    struct dbt_ctl_event_list ev = {0};
    size_t n = 0;
    CHECK_OK(dbt_ctl_events_list(ctl, NULL, 0, &ev));
    for (size_t i = 0; i < ev.n; i++) {
        n += strcmp(ev.items[i].action, action) == 0;
    }
    dbt_ctl_event_list_cleanup(&ev);
    return n;
}

static void test_create_list_revoke(void)
{
    struct dbt_ctl_admin_cert ops = {0}, dev = {0}, again = {0};
    struct dbt_ctl_admin_cert_list l = {0}, rv = {0};
    size_t n = 99;

    CHECK_OK(dbt_ctl_admin_cert_create(ctl, "ops", 0, &ops));
    CHECK_OK(dbt_ctl_admin_cert_create(ctl, "dev team", 86400, &dev));
    CHECK_REFUSED(dbt_ctl_admin_cert_create(ctl, "a/b", 0, &again), DBT_E_INVALID);

    CHECK_OK(dbt_ctl_admin_cert_list(ctl, &l));
    CHECK(l.n == 2);
    const struct dbt_ctl_admin_cert_info *o = find(&l, "ops", false);
    const struct dbt_ctl_admin_cert_info *d = find(&l, "dev team", false);
    CHECK(o != NULL && d != NULL);
    if (o != NULL && d != NULL) {
        CHECK(strcmp(o->serial, ops.serial) == 0);
        CHECK(o->sha1_fingerprint && strcmp(o->sha1_fingerprint, ops.sha1_fingerprint) == 0);
        CHECK(o->expiration_time == ops.expiration_time && o->create_time > 0);
        CHECK(d->expiration_time - d->create_time <= 86400 + 5);
    }
    dbt_ctl_admin_cert_list_cleanup(&l);

    /* both pass the admin CA and its (empty) CRL */
    CHECK_OK(verify_admin(ops.cert_pem, &n));
    CHECK(n == 0);
    CHECK_OK(verify_admin(dev.cert_pem, NULL));

    /* revoke by name: one event, the counter moves, the CRL lists it */
    struct snap before = snap();
    CHECK_OK(dbt_ctl_admin_cert_revoke(ctl, "ops", &rv));
    CHECK(rv.n == 1 && strcmp(rv.items[0].serial, ops.serial) == 0 && rv.items[0].revoke_time);
    dbt_ctl_admin_cert_list_cleanup(&rv);
    struct snap after = snap();
    CHECK(after.counter > before.counter && after.events == before.events + 1);
    CHECK(count_events("admin-cert.revoke") == 1);
    CHECK_ERR(verify_admin(ops.cert_pem, &n), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "revoked") != NULL);
    CHECK(n == 1);
    CHECK_OK(verify_admin(dev.cert_pem, NULL));

    /* refusals change nothing */
    CHECK_REFUSED(dbt_ctl_admin_cert_revoke(ctl, "ops", NULL), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "already revoked") != NULL);
    CHECK_REFUSED(dbt_ctl_admin_cert_revoke(ctl, "nobody", NULL), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "\"nobody\" does not exist") != NULL);
    CHECK_REFUSED(dbt_ctl_admin_cert_revoke(ctl, "", NULL), DBT_E_INVALID);

    /* a revoked name can be issued again; the old one stays listed, revoked */
    CHECK_OK(dbt_ctl_admin_cert_create(ctl, "ops", 0, &again));
    CHECK_OK(verify_admin(again.cert_pem, NULL));
    CHECK_OK(dbt_ctl_admin_cert_list(ctl, &l));
    CHECK(l.n == 3 && find(&l, "ops", true) != NULL && find(&l, "ops", false) != NULL);
    dbt_ctl_admin_cert_list_cleanup(&l);

    /* two live certificates of one name: revoking the name revokes both */
    struct dbt_ctl_admin_cert twin1 = {0}, twin2 = {0};
    CHECK_OK(dbt_ctl_admin_cert_create(ctl, "twin", 0, &twin1));
    CHECK_OK(dbt_ctl_admin_cert_create(ctl, "twin", 0, &twin2));
    before = snap();
    CHECK_OK(dbt_ctl_admin_cert_revoke(ctl, "twin", &rv));
    CHECK(rv.n == 2);
    dbt_ctl_admin_cert_list_cleanup(&rv);
    after = snap();
    CHECK(after.events == before.events + 2);
    CHECK_ERR(verify_admin(twin1.cert_pem, &n), DBT_E_INVALID);
    CHECK_ERR(verify_admin(twin2.cert_pem, &n), DBT_E_INVALID);
    CHECK(n == 3);
    CHECK_OK(verify_admin(again.cert_pem, NULL));
    dbt_ctl_admin_cert_cleanup(&twin1);
    dbt_ctl_admin_cert_cleanup(&twin2);

    /* revoke by SHA-1 as openssl prints it (upper case, colons) */
    char colons[64];
    size_t k = 0;
    for (size_t i = 0; i < 40; i++) {
        if (i > 0 && i % 2 == 0) {
            colons[k++] = ':';
        }
        colons[k++] = (char)toupper((unsigned char)dev.sha1_fingerprint[i]);
    }
    colons[k] = '\0';
    CHECK_OK(dbt_ctl_admin_cert_revoke(ctl, colons, &rv));
    CHECK(rv.n == 1 && strcmp(rv.items[0].name, "dev team") == 0);
    dbt_ctl_admin_cert_list_cleanup(&rv);
    CHECK_ERR(verify_admin(dev.cert_pem, &n), DBT_E_INVALID);
    CHECK(n == 4);
    CHECK_OK(verify_admin(again.cert_pem, NULL));

    dbt_ctl_admin_cert_cleanup(&ops);
    dbt_ctl_admin_cert_cleanup(&dev);
    dbt_ctl_admin_cert_cleanup(&again);
}

/* A process killed between the UPDATE and the event leaves the certificate live. */
static void test_revoke_is_atomic(void)
{
    struct dbt_ctl_admin_cert c = {0};
    CHECK_OK(dbt_ctl_admin_cert_create(ctl, "crash", 0, &c));
    struct snap before = snap();
    pid_t pid = fork();
    if (pid == 0) {
        setenv("DBTLS_FAULT", "admin-cert-revoke-mid", 1);
        struct dbt_ctl *child = NULL;
        if (!dbt_ok(dbt_ctl_open(&opts, &child))) {
            _exit(3);
        }
        _exit(dbt_ok(dbt_ctl_admin_cert_revoke(child, "crash", NULL)) ? 0 : 4);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    struct snap after = snap();
    CHECK(before.counter == after.counter && before.events == after.events);
    CHECK_OK(verify_admin(c.cert_pem, NULL));
    CHECK_OK(dbt_ctl_admin_cert_revoke(ctl, "crash", NULL));
    CHECK_ERR(verify_admin(c.cert_pem, NULL), DBT_E_INVALID);
    dbt_ctl_admin_cert_cleanup(&c);
}

/* A store of schema 2 (no admin_certs table): opening it migrates and recovers the admin
   certificates its events name, so one issued before the upgrade can be revoked. */
static void test_upgrade_recovers_earlier_certs(void)
{
    char d[400], cmd[1200];
    snprintf(d, sizeof d, "%s/old", root_dir);
    struct dbt_ctl_opts o = {.state_dir = d, .actor = "unit-test"};
    struct dbt_ctl *c = NULL;
    struct dbt_ctl_admin_cert early = {0}, other = {0};
    CHECK_OK(dbt_ctl_init(&o));
    CHECK_OK(dbt_ctl_open(&o, &c));
    if (c == NULL) {
        return;
    }
    CHECK_OK(dbt_ctl_admin_cert_create(c, "early bird", 0, &early));
    CHECK_OK(dbt_ctl_admin_cert_create(c, "other", 0, &other));
    dbt_ctl_close(c);
    c = NULL;
    /* back to what dbtls wrote before migration 3 */
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/dbtls.db 'DROP TABLE admin_certs; PRAGMA user_version = 2;' "
             ">/dev/null",
             d);
    CHECK(system(cmd) == 0);

    CHECK_OK(dbt_ctl_open(&o, &c));
    if (c == NULL) {
        return;
    }
    struct dbt_ctl_admin_cert_list l = {0};
    CHECK_OK(dbt_ctl_admin_cert_list(c, &l));
    CHECK(l.n == 2);
    const struct dbt_ctl_admin_cert_info *e = find(&l, "early bird", false);
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK(strcmp(e->serial, early.serial) == 0);
        CHECK(e->sha1_fingerprint == NULL && e->expiration_time == 0 && e->create_time > 0);
    }
    dbt_ctl_admin_cert_list_cleanup(&l);
    /* revoking one recovered by name puts it in the CRL */
    CHECK_OK(dbt_ctl_admin_cert_revoke(c, "early bird", NULL));
    char *ca_pem = NULL, *crl_pem = NULL;
    size_t n = 0;
    CHECK_OK(dbt_ctl_admin_trust(c, &ca_pem, &crl_pem, &n));
    CHECK(n == 1);
    struct dbt_pki_crl *crl = NULL;
    CHECK_OK(dbt_pki_crl_from_pem(crl_pem, &crl));
    CHECK(crl != NULL && dbt_pki_crl_has_serial(crl, early.serial));
    CHECK(crl != NULL && !dbt_pki_crl_has_serial(crl, other.serial));
    dbt_pki_crl_free(crl);
    free(ca_pem);
    free(crl_pem);
    dbt_ctl_close(c);
    dbt_ctl_admin_cert_cleanup(&early);
    dbt_ctl_admin_cert_cleanup(&other);
}

int main(void)
{
    if (!mkdtemp(root_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(state_dir, sizeof state_dir, "%s/state", root_dir);
    opts.state_dir = state_dir;
    opts.actor = "unit-test";
    CHECK_OK(dbt_ctl_init(&opts));
    CHECK_OK(dbt_ctl_open(&opts, &ctl));
    if (ctl != NULL) {
        test_create_list_revoke();
        test_revoke_is_atomic();
        dbt_ctl_close(ctl);
    }
    test_upgrade_recovers_earlier_certs();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", root_dir);
    }
    return check_exit();
}
