/*
 * internal.h - what admin.c (sockets, libmicrohttpd, TLS client check), api.c (routing and the
 * resource handlers) and the resource files beside it (api_admin_certs.c) share. Not used outside
 * src/admin.
 */
#ifndef DBT_ADMIN_INTERNAL_H
#define DBT_ADMIN_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#include "front/front.h"

struct dbt_ctl;
struct dbt_ctl_opts;

/* One listener's view of the world: handlers of one listener run on its MHD thread only, so
   each listener owns its own control handle (ctl.h: one handle per thread). */
struct dbt_admin_ctx {
    struct dbt_front *front;
    struct dbt_ctl *ctl; /* NULL: only /v1/connections is served */
};

/* A reply being built by a handler. body is heap memory (free()). */
struct dbt_admin_reply {
    unsigned status;
    char *body;
    size_t len;
    const char *content_type; /* static string */
    const char *allow;        /* for 405: the Allow header value (static string) */
};

/* Routes one complete request. conn gives the query arguments. */
void dbt_admin_api_handle(struct dbt_admin_ctx *ctx, struct MHD_Connection *conn,
                          const char *method, const char *url, const char *body, size_t body_len,
                          struct dbt_admin_reply *out);

/* An error reply {"error":{"code":status,"status":"...","message":"..."}}. */
void dbt_admin_error(struct dbt_admin_reply *out, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What api.c's handlers use, for the resources kept in their own files (api_admin_certs.c). */
struct json_t;
/* Sets a JSON reply (takes doc; NULL doc = 500 out of memory). */
void dbt_admin_json(struct dbt_admin_reply *out, unsigned status, struct json_t *doc);
/* A failed control-library call: the HTTP status of its code and the library's message. */
void dbt_admin_fail(struct dbt_admin_reply *out, dbt_res r);
/* 405 naming the allowed methods (allow: static string, also sent as the Allow header). */
void dbt_admin_method_not_allowed(struct dbt_admin_reply *out, const char *method, const char *url,
                                  const char *allow);
/* The body as a JSON object with only the fields in allowed (NULL-terminated); an empty body
   is {} when empty_ok. NULL with the reply set on anything else. */
struct json_t *dbt_admin_parse_body(const char *body, size_t len, const char *const *allowed,
                                    bool empty_ok, struct dbt_admin_reply *out);

/* The health listener's routes (health.c): /healthz, /healthz/INSTANCE, /metrics. */
void dbt_admin_health(struct dbt_admin_ctx *x, const char *method, const char *url,
                      struct dbt_admin_reply *out);

/* /v1/adminCerts and /v1/adminCerts/{NAME_OR_SHA1}:revoke (api_admin_certs.c). */
void dbt_admin_api_admin_certs(struct dbt_admin_ctx *x, const char *method, const char *url,
                               const char *body, size_t len, struct dbt_admin_reply *out);

/*
 * The TCP listener's trust (trust.c): the admin CA and its CRL, reloaded by a watcher thread
 * within about a second of a store change (e.g. `dbtls admin-certs revoke`). start opens its
 * own control handle from co and fails when the admin CA cannot be read.
 */
struct dbt_admin_trust;
dbt_res dbt_admin_trust_start(const struct dbt_ctl_opts *co, struct dbt_admin_trust **out) DBT_WUR;
/* Stops the watcher and frees everything; NULL is a no-op. */
void dbt_admin_trust_stop(struct dbt_admin_trust *t);
/* Verifies a client chain (DER, leaf first, as gnutls_certificate_get_peers gives it) against
   the admin CA and its current CRL for client authentication: *status is GnuTLS's
   verification status (0 = trusted; GNUTLS_CERT_REVOKED for a revoked one). Any thread. */
dbt_res dbt_admin_trust_verify(struct dbt_admin_trust *t, const gnutls_datum_t *peers, unsigned n,
                               unsigned *status) DBT_WUR;
/*
 * The TCP listener's server certificate (tcp_cert.c): init issues the first one from the admin
 * CA for hosts (SAN; the first is the CN) with validity_secs (0 = 1 year) and gives the admin CA
 * PEM (free()); tick, called by the trust watcher on each poll, renews it at half its lifetime
 * (a failure is logged once and retried every minute); retrieve is the GnuTLS certificate
 * retrieve function libmicrohttpd installs (MHD_OPTION_HTTPS_CERT_CALLBACK); cleanup frees
 * every pair issued. One TCP listener per process.
 */
dbt_res dbt_admin_tcp_cert_init(struct dbt_ctl *ctl, const char *const *hosts, size_t n_hosts,
                                int64_t validity_secs, char **ca_pem) DBT_WUR;
void dbt_admin_tcp_cert_tick(struct dbt_ctl *ctl);
int dbt_admin_tcp_cert_retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                                const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                                gnutls_pcert_st **pcert, unsigned int *pcert_length,
                                gnutls_privkey_t *pkey);
void dbt_admin_tcp_cert_cleanup(void);

/* The subject DN (RFC 4514) and serial (hex) of a DER certificate, "?" when unreadable. */
void dbt_admin_peer_describe(const gnutls_datum_t *leaf, char *subject, size_t subject_size,
                             char *serial, size_t serial_size);

#endif
