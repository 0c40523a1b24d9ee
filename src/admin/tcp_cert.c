/*
 * tcp_cert.c - the server certificate of the admin API's TCP listener (internal.h): issued by
 * the admin CA when dbtlsd starts and renewed at half its lifetime without a restart, as the
 * front's instance certificates are rotated. GnuTLS asks for the certificate in every
 * handshake (libmicrohttpd's MHD_OPTION_HTTPS_CERT_CALLBACK, i.e. GnuTLS's certificate
 * retrieve function), so a renewal only swaps the current pair under a lock; the trust
 * watcher thread (trust.c) calls the renewal check on its poll. The retrieve function has no
 * user pointer (libmicrohttpd keeps the session pointer for itself), so the state is this
 * file's own: one admin TCP listener per process. A pair handed to GnuTLS is kept until
 * cleanup (a handshake in progress may still sign with it): one per renewal.
 */
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "ctl/admin_ca.h"

#define RETRY_SECS 60
#define MAX_HOSTS 8

struct pair {
    gnutls_pcert_st pcert;
    gnutls_privkey_t key;
    struct pair *older;
};

static struct {
    pthread_mutex_t mu;
    struct pair *cur; /* the newest; older ones hang off it until cleanup */
    char *hosts[MAX_HOSTS];
    size_t n_hosts;
    int64_t validity_secs;
    int64_t renew_at; /* unix seconds */
    bool warned;
} tc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static dbt_res gnutls_fail(int rc, const char *what)
{
    return dbt_fail(DBT_E_TLS, "admin API: %s: %s", what, gnutls_strerror(rc));
}

/* A new certificate from the admin CA as a GnuTLS pair; the key PEM is wiped by cleanup. */
static dbt_res issue(struct dbt_ctl *ctl, struct pair **out, struct dbt_ctl_admin_cert *c)
{
    dbt_res res = DBT_OK;
    struct pair *p = calloc(1, sizeof(*p));
    DBT_ENSURE(p != NULL, NOMEM, "admin: out of memory");
    DBT_TRY(dbt_ctl_admin_server_cert(ctl, (const char *const *)tc.hosts, tc.n_hosts,
                                      tc.validity_secs, c));
    gnutls_datum_t d = {.data = (unsigned char *)c->cert_pem, .size = strlen(c->cert_pem)};
    int rc = gnutls_pcert_import_x509_raw(&p->pcert, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        free(p);
        p = NULL;
        DBT_TRY(gnutls_fail(rc, "admin server certificate"));
    }
    d = (gnutls_datum_t){.data = (unsigned char *)c->key_pem, .size = strlen(c->key_pem)};
    rc = gnutls_privkey_init(&p->key);
    if (rc == 0) {
        rc = gnutls_privkey_import_x509_raw(p->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    }
    if (rc < 0) {
        gnutls_privkey_deinit(p->key);
        gnutls_pcert_deinit(&p->pcert);
        free(p);
        p = NULL;
        DBT_TRY(gnutls_fail(rc, "admin server key"));
    }
    *out = p;
    p = NULL;
out:
    free(p);
    return res;
}

static void install(struct pair *p, const struct dbt_ctl_admin_cert *c, int64_t now)
{
    pthread_mutex_lock(&tc.mu);
    p->older = tc.cur;
    tc.cur = p;
    tc.renew_at = now + (c->expiration_time - now) / 2;
    tc.warned = false;
    pthread_mutex_unlock(&tc.mu);
}

dbt_res dbt_admin_tcp_cert_init(struct dbt_ctl *ctl, const char *const *hosts, size_t n_hosts,
                                int64_t validity_secs, char **ca_pem)
{
    dbt_res res = DBT_OK;
    struct dbt_ctl_admin_cert c = {0};
    struct pair *p = NULL;
    *ca_pem = NULL;
    DBT_ENSURE(tc.cur == NULL, STATE, "admin API: one TCP listener per process");
    DBT_ENSURE(n_hosts > 0 && n_hosts <= MAX_HOSTS, INVALID, "admin API: %zu host names", n_hosts);
    for (size_t i = 0; i < n_hosts; i++) {
        tc.hosts[i] = strdup(hosts[i]);
        DBT_ENSURE(tc.hosts[i] != NULL, NOMEM, "admin: out of memory");
        tc.n_hosts = i + 1;
    }
    tc.validity_secs = validity_secs;
    DBT_TRY(issue(ctl, &p, &c));
    *ca_pem = c.ca_pem;
    c.ca_pem = NULL;
    install(p, &c, dbt_now_unix());
out:
    dbt_ctl_admin_cert_cleanup(&c);
    return res;
}

void dbt_admin_tcp_cert_tick(struct dbt_ctl *ctl)
{
    int64_t now = dbt_now_unix();
    pthread_mutex_lock(&tc.mu);
    bool due = tc.cur != NULL && now >= tc.renew_at;
    pthread_mutex_unlock(&tc.mu);
    if (!due) {
        return;
    }
    struct dbt_ctl_admin_cert c = {0};
    struct pair *p = NULL;
    dbt_res r = issue(ctl, &p, &c);
    if (dbt_ok(r)) {
        install(p, &c, now);
        char exp[32];
        dbt_time_rfc3339(c.expiration_time, exp, sizeof(exp));
        dbt_info("admin API: TCP listener's server certificate renewed (serial %s, expires %s)",
                 c.serial, exp);
    } else {
        pthread_mutex_lock(&tc.mu);
        tc.renew_at = now + RETRY_SECS;
        bool warn = !tc.warned;
        tc.warned = true;
        pthread_mutex_unlock(&tc.mu);
        if (warn) {
            dbt_warn("cannot renew the admin TCP listener's server certificate (retrying every "
                     "%d s): %s",
                     RETRY_SECS, dbt_errmsg());
        }
    }
    dbt_ctl_admin_cert_cleanup(&c);
}

int dbt_admin_tcp_cert_retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                                const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                                gnutls_pcert_st **pcert, unsigned int *pcert_length,
                                gnutls_privkey_t *pkey)
{
    (void)s;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    pthread_mutex_lock(&tc.mu);
    struct pair *p = tc.cur;
    pthread_mutex_unlock(&tc.mu);
    if (p == NULL) {
        return -1;
    }
    *pcert = &p->pcert;
    *pcert_length = 1;
    *pkey = p->key;
    return 0;
}

void dbt_admin_tcp_cert_cleanup(void)
{
    pthread_mutex_lock(&tc.mu);
    struct pair *p = tc.cur;
    tc.cur = NULL;
    for (size_t i = 0; i < tc.n_hosts; i++) {
        free(tc.hosts[i]);
        tc.hosts[i] = NULL;
    }
    tc.n_hosts = 0;
    pthread_mutex_unlock(&tc.mu);
    while (p != NULL) {
        struct pair *older = p->older;
        gnutls_privkey_deinit(p->key);
        gnutls_pcert_deinit(&p->pcert);
        free(p);
        p = older;
    }
}
