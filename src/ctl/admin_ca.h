/*
 * admin_ca.h - the admin CA: a dedicated CA (EC P-384, SHA-384, 10 years) whose certificates
 * authenticate the admin API's TCP listener in both directions (mutual TLS). It signs the
 * operators' admin client certificates (`dbtls admin-certs create NAME --out-dir DIR`) and the
 * daemon's own server certificate for that listener. It is separate from the shared CAs and the
 * instances' client CAs on purpose: a database client certificate never opens the admin API.
 *
 * Stored in the settings table (keys admin_ca_cert: PEM, admin_ca_key: hex of the key sealed
 * under the master key), so stores made before it existed need no schema migration: a store
 * without an admin CA gets one on first use (the first call below on a read-write handle),
 * inside one transaction with an "admin-ca.create" event.
 *
 * Every admin client certificate issued is recorded (table admin_certs: name, serial, SHA-1,
 * created, expires, revoked; never the key) so that it can be listed and revoked. A revoked
 * certificate goes into the admin CA's CRL (dbt_ctl_admin_trust), which dbtlsd's TCP listener
 * checks during the TLS handshake; the row stays, marked revoked. Names need not be unique (as
 * before certificates were recorded: one operator may hold several "ops" certificates, e.g.
 * one per machine): revoking by name revokes every live certificate of that name, revoking by
 * SHA-1 fingerprint exactly one.
 */
#ifndef DBT_CTL_ADMIN_CA_H
#define DBT_CTL_ADMIN_CA_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_ctl;

/* A certificate issued by the admin CA, with its private key (returned once, never stored). */
struct dbt_ctl_admin_cert {
    char *cert_pem;
    char *key_pem; /* PKCS#8 PEM; wiped by _cleanup */
    char *ca_pem;  /* the admin CA certificate */
    char *serial;  /* hex, upper case */
    char *sha1_fingerprint;
    int64_t expiration_time;
};
void dbt_ctl_admin_cert_cleanup(struct dbt_ctl_admin_cert *c);

/*
 * The admin CA certificate (PEM, free()). Creates it on first use when the handle is read-write;
 * on a read-only handle a store without one is STATE ("no admin CA yet; ...").
 */
dbt_res dbt_ctl_admin_ca(struct dbt_ctl *ctl, char **ca_pem_out) DBT_WUR;

/*
 * Issues an admin client certificate: CN = name (`[A-Za-z0-9._ -]+`, 1..64), EKU clientAuth,
 * EC P-256, validity_secs (0 = 1 year). Records it (admin_certs) with an "admin-cert.create"
 * event in one transaction. INVALID for a bad name.
 */
dbt_res dbt_ctl_admin_cert_create(struct dbt_ctl *ctl, const char *name, int64_t validity_secs,
                                  struct dbt_ctl_admin_cert *out) DBT_WUR;

/* One recorded admin client certificate. */
struct dbt_ctl_admin_cert_info {
    char *name;
    char *serial;           /* hex, upper case */
    char *sha1_fingerprint; /* NULL for certificates recovered from events at the upgrade */
    int64_t create_time;
    int64_t expiration_time; /* 0: unknown (recovered from events) */
    int64_t revoke_time;     /* 0: not revoked */
};
struct dbt_ctl_admin_cert_list {
    struct dbt_ctl_admin_cert_info *items;
    size_t n;
};
void dbt_ctl_admin_cert_list_cleanup(struct dbt_ctl_admin_cert_list *l);

/* Every recorded admin client certificate (revoked ones too), by name then creation. */
dbt_res dbt_ctl_admin_cert_list(struct dbt_ctl *ctl, struct dbt_ctl_admin_cert_list *out) DBT_WUR;

/*
 * Revokes the admin client certificate named key (or whose SHA-1 fingerprint is key, any case,
 * colons allowed): every unrevoked certificate that matches (several may share a name) is
 * marked revoked now, with one "admin-cert.revoke" event
 * each, in one transaction that bumps the change counter (dbtlsd then reloads the admin CRL).
 * out (may be NULL) receives the certificates revoked. NOT_FOUND when nothing matches, STATE
 * when everything that matches is revoked already.
 */
dbt_res dbt_ctl_admin_cert_revoke(struct dbt_ctl *ctl, const char *key,
                                  struct dbt_ctl_admin_cert_list *out) DBT_WUR;

/*
 * What the admin TCP listener trusts: the admin CA certificate and a CRL it signs (built now,
 * not stored: cRLNumber = the issue time, nextUpdate in 30 days) listing every revoked admin
 * certificate. Both PEM, free(). *n_revoked (may be NULL) = the CRL's entries. Needs the admin
 * CA (created on first use on a read-write handle, as dbt_ctl_admin_ca).
 */
dbt_res dbt_ctl_admin_trust(struct dbt_ctl *ctl, char **ca_pem, char **crl_pem,
                            size_t *n_revoked) DBT_WUR;

/*
 * Issues (does not store) a server certificate for the admin TCP listener: SAN = hosts (DNS
 * names or IPs; the first is the CN), EKU serverAuth, EC P-256, validity_secs (0 = 1 year).
 * The daemon calls it at start, so the listener's certificate is always fresh.
 */
dbt_res dbt_ctl_admin_server_cert(struct dbt_ctl *ctl, const char *const *hosts, size_t n_hosts,
                                  int64_t validity_secs, struct dbt_ctl_admin_cert *out) DBT_WUR;

/*
 * Sets who the handle's next operations are recorded as in events (the admin API: the CN of the
 * admin client certificate over TCP, the peer's user name on the unix socket). NULL or "" keeps
 * the current actor.
 */
void dbt_ctl_set_actor(struct dbt_ctl *ctl, const char *actor);

#endif
