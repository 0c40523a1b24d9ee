/*
 * trust.c - what the admin API's TCP listener trusts (internal.h): the admin CA and its CRL
 * (ctl/admin_ca.h, dbt_ctl_admin_trust) in a GnuTLS trust list, swapped under a read-write lock
 * when the store changes. A watcher thread polls the store's change counter every
 * TRUST_POLL_MS, as the front does for instances, so `dbtls admin-certs revoke` takes effect in
 * about a second without a restart (with a PostgreSQL store it is notified of each change at
 * once, LISTEN/NOTIFY, and polls only every TRUST_WATCHED_POLL_MS); it also rebuilds the CRL once a
 * day, well before its 30-day nextUpdate. A failed rebuild keeps the previous list and says why
 * (once per change). The same thread renews the listener's own server certificate when it is due
 * (tcp_cert.c).
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "admin/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "ctl/admin_ca.h"
#include "ctl/ctl.h"
#include "ctl/runtime.h"

#define TRUST_POLL_MS 500
#define TRUST_WATCHED_POLL_MS 10000 /* the safety net while store notifications arrive */
#define TRUST_WATCH_RETRY_MS 5000
#define TRUST_REBUILD_MS (86400u * 1000u)
#define TRUST_MAX_CHAIN 8

struct dbt_admin_trust {
    pthread_rwlock_t lock; /* guards tl: verifications read, a rebuild swaps */
    gnutls_x509_trust_list_t tl;
    struct dbt_ctl *ctl; /* the watcher's own handle (one thread at a time, ctl.h) */
    uint64_t counter;    /* change counter tl was built at */
    uint64_t built_ms;
    size_t n_revoked;
    uint64_t failed_counter; /* counter of the last failed rebuild (logged once) */
    int wake_fd;             /* eventfd: stop */
    atomic_bool stop;
    bool running;
    pthread_t thread;
};

static dbt_res gnutls_fail(int rc, const char *what)
{
    return dbt_fail(DBT_E_TLS, "admin API: %s: %s", what, gnutls_strerror(rc));
}

/* Builds a trust list of the admin CA and its current CRL. */
static dbt_res build(struct dbt_ctl *ctl, gnutls_x509_trust_list_t *out, size_t *n_revoked)
{
    dbt_res res = DBT_OK;
    char *ca = NULL, *crl = NULL;
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_x509_crl_t *crls = NULL;
    unsigned n_crls = 0;
    int rc;

    DBT_TRY(dbt_ctl_admin_trust(ctl, &ca, &crl, n_revoked));
    rc = gnutls_x509_trust_list_init(&tl, 0);
    if (rc < 0) {
        DBT_TRY(gnutls_fail(rc, "trust list"));
    }
    gnutls_datum_t d = {.data = (unsigned char *)ca, .size = (unsigned)strlen(ca)};
    rc = gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    DBT_ENSURE(rc == 1, TLS, "admin API: the admin CA certificate does not load (%s)",
               rc < 0 ? gnutls_strerror(rc) : "no certificate");
    d = (gnutls_datum_t){.data = (unsigned char *)crl, .size = (unsigned)strlen(crl)};
    rc = gnutls_x509_crl_list_import2(&crls, &n_crls, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        DBT_TRY(gnutls_fail(rc, "admin CRL"));
    }
    /* The list owns the CRLs from here on (one skipped by GNUTLS_TL_VERIFY_CRL is freed). A CRL
       that does not verify against the CA would leave revoked certificates admitted: fail. */
    rc = gnutls_x509_trust_list_add_crls(tl, crls, n_crls, GNUTLS_TL_VERIFY_CRL, 0);
    DBT_ENSURE(rc == 1, TLS, "admin API: the admin CRL does not verify against the admin CA (%s)",
               rc < 0 ? gnutls_strerror(rc) : "skipped");
    *out = tl;
    tl = NULL;
out:
    gnutls_free(crls);
    if (tl != NULL) {
        gnutls_x509_trust_list_deinit(tl, 1);
    }
    free(ca);
    free(crl);
    return res;
}

/* Rebuilds when the store changed (or the CRL is a day old); keeps the old list on failure.
   how ("polled", "notified") goes into the log line. */
static void refresh(struct dbt_admin_trust *t, const char *how)
{
    uint64_t c = 0;
    if (!dbt_ok(dbt_ctl_change_counter(t->ctl, &c))) {
        dbt_warn("admin API: cannot read the change counter: %s", dbt_errmsg());
        return;
    }
    if (c == t->counter && dbt_now_ms() - t->built_ms < TRUST_REBUILD_MS) {
        return;
    }
    gnutls_x509_trust_list_t tl = NULL;
    size_t n = 0;
    if (!dbt_ok(build(t->ctl, &tl, &n))) {
        if (c != t->failed_counter) {
            dbt_warn("admin API: keeping the previous admin CRL: %s", dbt_errmsg());
            t->failed_counter = c;
        }
        return;
    }
    pthread_rwlock_wrlock(&t->lock);
    gnutls_x509_trust_list_t old = t->tl;
    t->tl = tl;
    pthread_rwlock_unlock(&t->lock);
    gnutls_x509_trust_list_deinit(old, 1);
    if (n != t->n_revoked) {
        dbt_info("admin API: admin CRL reloaded (%zu revoked admin certificate%s, %s)", n,
                 n == 1 ? "" : "s", how);
    }
    t->counter = c;
    t->n_revoked = n;
    t->built_ms = dbt_now_ms();
}

static void *watch(void *arg)
{
    struct dbt_admin_trust *t = arg;
    int wfd = -1; /* the store's change notifications (PostgreSQL), or -1: poll */
    uint64_t retry_ms = 0;
    bool warned = false;
    while (!atomic_load(&t->stop)) {
        if (wfd < 0 && dbt_now_ms() >= retry_ms) {
            if (!dbt_ok(dbt_ctl_watch_open(t->ctl, &wfd))) {
                if (!warned) {
                    dbt_warn("admin API: %s; polling the change counter", dbt_errmsg());
                    warned = true;
                }
                wfd = -1;
                retry_ms = dbt_now_ms() + TRUST_WATCH_RETRY_MS;
            } else if (wfd < 0) {
                retry_ms = UINT64_MAX; /* the store has no notifications */
            } else {
                warned = false;
                refresh(t, "polled"); /* what changed while nobody listened */
            }
        }
        struct pollfd p[2] = {{.fd = t->wake_fd, .events = POLLIN}, {.fd = wfd, .events = POLLIN}};
        (void)poll(p, wfd >= 0 ? 2 : 1, wfd >= 0 ? TRUST_WATCHED_POLL_MS : TRUST_POLL_MS);
        if (atomic_load(&t->stop)) {
            break;
        }
        bool changed = false;
        if (wfd >= 0 && p[1].revents != 0 && !dbt_ok(dbt_ctl_watch_read(t->ctl, &changed))) {
            dbt_warn("admin API: %s; polling the change counter", dbt_errmsg());
            warned = true;
            dbt_ctl_watch_close(t->ctl);
            wfd = -1;
            retry_ms = dbt_now_ms() + TRUST_WATCH_RETRY_MS;
        }
        refresh(t, changed ? "notified" : "polled");
        dbt_admin_tcp_cert_tick(t->ctl);
    }
    dbt_ctl_watch_close(t->ctl);
    return NULL;
}

dbt_res dbt_admin_trust_start(const struct dbt_ctl_opts *co, struct dbt_admin_trust **out)
{
    dbt_res res = DBT_OK;
    *out = NULL;
    struct dbt_admin_trust *t = calloc(1, sizeof(*t));
    DBT_ENSURE(t != NULL, NOMEM, "admin: out of memory");
    pthread_rwlock_init(&t->lock, NULL);
    t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    DBT_ENSURE(t->wake_fd >= 0, IO, "admin API: eventfd: %s", strerror(errno));
    res = dbt_ctl_open(co, &t->ctl);
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "admin API: ");
        goto out;
    }
    DBT_TRY(dbt_ctl_change_counter(t->ctl, &t->counter));
    DBT_TRY(build(t->ctl, &t->tl, &t->n_revoked));
    t->built_ms = dbt_now_ms();
    int rc = pthread_create(&t->thread, NULL, watch, t);
    DBT_ENSURE(rc == 0, IO, "admin API: cannot start the admin CRL watcher: %s", strerror(rc));
    t->running = true;
    *out = t;
    t = NULL;
out:
    dbt_admin_trust_stop(t);
    return res;
}

void dbt_admin_trust_stop(struct dbt_admin_trust *t)
{
    if (t == NULL) {
        return;
    }
    if (t->running) {
        atomic_store(&t->stop, true);
        uint64_t one = 1;
        (void)!write(t->wake_fd, &one, sizeof one);
        pthread_join(t->thread, NULL);
    }
    if (t->tl != NULL) {
        gnutls_x509_trust_list_deinit(t->tl, 1);
    }
    dbt_ctl_close(t->ctl);
    if (t->wake_fd >= 0) {
        close(t->wake_fd);
    }
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

dbt_res dbt_admin_trust_verify(struct dbt_admin_trust *t, const gnutls_datum_t *peers, unsigned n,
                               unsigned *status)
{
    dbt_res res = DBT_OK;
    gnutls_x509_crt_t crts[TRUST_MAX_CHAIN] = {0};
    unsigned nc = 0;
    *status = GNUTLS_CERT_INVALID;
    DBT_ENSURE(n > 0 && n <= TRUST_MAX_CHAIN, TLS, "admin API: a client chain of %u certificates",
               n);
    for (; nc < n; nc++) {
        int rc = gnutls_x509_crt_init(&crts[nc]);
        if (rc == 0) {
            rc = gnutls_x509_crt_import(crts[nc], &peers[nc], GNUTLS_X509_FMT_DER);
            if (rc < 0) {
                gnutls_x509_crt_deinit(crts[nc]);
            }
        }
        if (rc < 0) {
            DBT_TRY(gnutls_fail(rc, "client certificate"));
        }
    }
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
        .size = 0,
    };
    pthread_rwlock_rdlock(&t->lock);
    int rc = gnutls_x509_trust_list_verify_crt2(t->tl, crts, nc, &purpose, 1, 0, status, NULL);
    pthread_rwlock_unlock(&t->lock);
    if (rc < 0) {
        *status = GNUTLS_CERT_INVALID;
        DBT_TRY(gnutls_fail(rc, "client certificate verification"));
    }
out:
    for (unsigned i = 0; i < nc; i++) {
        gnutls_x509_crt_deinit(crts[i]);
    }
    return res;
}

void dbt_admin_peer_describe(const gnutls_datum_t *leaf, char *subject, size_t subject_size,
                             char *serial, size_t serial_size)
{
    gnutls_x509_crt_t crt = NULL;
    snprintf(subject, subject_size, "?");
    snprintf(serial, serial_size, "?");
    if (gnutls_x509_crt_init(&crt) != 0) {
        return;
    }
    if (gnutls_x509_crt_import(crt, leaf, GNUTLS_X509_FMT_DER) == 0) {
        gnutls_datum_t dn = {0};
        if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
            snprintf(subject, subject_size, "%.*s", (int)dn.size, (const char *)dn.data);
            gnutls_free(dn.data);
        }
        unsigned char raw[64];
        size_t len = sizeof(raw);
        if (gnutls_x509_crt_get_serial(crt, raw, &len) == 0) {
            /* as `dbtls admin-certs list` prints it: no DER sign byte */
            const unsigned char *p = raw;
            while (len > 1 && p[0] == 0) {
                p++;
                len--;
            }
            static const char hex[] = "0123456789ABCDEF";
            for (size_t i = 0; i < len && 2 * i + 2 < serial_size; i++) {
                serial[2 * i] = hex[p[i] >> 4];
                serial[2 * i + 1] = hex[p[i] & 15];
                serial[2 * i + 2] = '\0';
            }
        }
    }
    gnutls_x509_crt_deinit(crt);
}
