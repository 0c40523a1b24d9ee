/*
 * runtime.h - what the daemon (dbtlsd) reads from the control plane: a plain snapshot of every
 * instance with the material its TLS front needs, decrypted keys included. This is the one
 * contract between the control side (store, pki, ctl) and the network side (front): the daemon
 * links ctl only for dbt_ctl_open, the change counter and watch, and dbt_ctl_runtime_load.
 *
 * Ownership: the snapshot and every string in it belong to the snapshot; dbt_rt_config_free
 * wipes key material (OPENSSL_cleanse) before freeing. Strings are NUL-terminated; optional ones
 * are NULL when unset.
 */
#ifndef DBT_CTL_RUNTIME_H
#define DBT_CTL_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_ctl;

struct dbt_ctl_opts {
    const char *state_dir;          /* required */
    const char *master_key_command; /* optional: run to obtain the master key (like
                                       ssl_passphrase_command); else state_dir/master.key */
    int read_only;                  /* daemon: never migrates or writes (except
                                       dbt_ctl_event_add, the audit of automatic actions) */
    const char *actor;              /* who acts, for events; NULL = $USER, else "dbtls" */
};

/* Opens the store in opts->state_dir and loads the master key. Errors name the file and why. */
dbt_res dbt_ctl_open(const struct dbt_ctl_opts *opts, struct dbt_ctl **out) DBT_WUR;
void dbt_ctl_close(struct dbt_ctl *ctl);

/* The store's change counter: bumped by every committed change (cheap; the daemon polls it). */
dbt_res dbt_ctl_change_counter(struct dbt_ctl *ctl, uint64_t *out) DBT_WUR;
/*
 * Change notifications, where the store has them (a PostgreSQL store's LISTEN/NOTIFY; SQLite:
 * none, *fd = -1 and OK). open gives the descriptor to wait on for readability (STORE when the
 * listening connection fails); read consumes what arrived, *changed = true when the store
 * changed (STORE when the watch is lost: close it and poll). One watch per handle.
 */
dbt_res dbt_ctl_watch_open(struct dbt_ctl *ctl, int *fd) DBT_WUR;
dbt_res dbt_ctl_watch_read(struct dbt_ctl *ctl, bool *changed) DBT_WUR;
void dbt_ctl_watch_close(struct dbt_ctl *ctl);

enum dbt_ssl_mode {
    DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED,
    DBT_SSL_MODE_ENCRYPTED_ONLY,
    DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED,
};

struct dbt_rt_instance {
    char *name;
    char *engine;           /* "postgres" | "mysql" | "mariadb" */
    char *engine_version;   /* e.g. "15", "8.0", "10.11" */
    char *listen;           /* "host:port" ("[::1]:port" for IPv6) */
    char *backend;          /* "host:port" or an absolute unix socket path */
    char *backend_tls_ca;   /* CA file: TLS to the backend with verify-full; NULL = plain */
    char *backend_tls_cert; /* client certificate file for the backend leg, or NULL */
    char *backend_tls_key;  /* its private key file */
    bool client_info;       /* tell the PostgreSQL backend dbtls.client_addr & co. */
    char **endpoints;       /* DNS names / IPs in the server certificate SAN; [0] is the CN */
    size_t n_endpoints;
    enum dbt_ssl_mode ssl_mode;
    char *tls_min;           /* "TLSv1.2" */
    char *tls_max;           /* "TLSv1.3" */
    char *ciphers;           /* TLS 1.2 cipher list, OpenSSL syntax */
    char *ciphersuites;      /* TLS 1.3 suites, NULL = OpenSSL default */
    char *groups;            /* NULL = OpenSSL default */
    char *cert_chain_pem;    /* active server certificate, then its intermediates (no root) */
    char *key_pem;           /* its private key, decrypted, PKCS#8 PEM (wiped on free) */
    char *client_ca_pem;     /* the instance's client CA certificate(s) */
    char *crl_pem;           /* the client CA's current CRL */
    char *hba_text;          /* access rules (pg_hba.conf syntax); NULL = derived from ssl_mode */
    char *ident_text;        /* ident map (pg_ident.conf syntax); NULL = none */
    char *user_require_text; /* MySQL per-user REQUIRE rules, one "user=REQ" per line; or NULL */
    /* crl_pem is signed afresh by every load (same revocations as the stored CRL), so a daemon
       that reloads before this time (unix seconds: the CRL's nextUpdate) never serves an
       expired CRL, which OpenSSL would answer with "CRL has expired" for every client cert. */
    int64_t crl_next_update;
    int64_t crl_last_update; /* its thisUpdate (unix seconds) */
    /* SHA-256 of the stored rows key_pem and crl_pem are made from: the active slot's
       certificate and sealed key, the client CA with its sealed key, the stored CRL. */
    uint8_t material[32];
};

struct dbt_rt_config {
    uint64_t change_counter; /* counter value the snapshot was read at */
    struct dbt_rt_instance *instances;
    size_t n_instances;
};

/*
 * Reads every instance in one read transaction (a consistent snapshot). With prev (the snapshot
 * in use, or NULL) an instance whose material digest is unchanged takes its decrypted key and
 * CRL from prev instead of decrypting and signing again, as long as that CRL is in the first
 * half of its validity (dbtlsd re-signs at half-life): a change to one instance of a fleet costs
 * one instance's cryptography, not the fleet's.
 */
dbt_res dbt_ctl_runtime_load(struct dbt_ctl *ctl, const struct dbt_rt_config *prev,
                             struct dbt_rt_config **out) DBT_WUR;
void dbt_rt_config_free(struct dbt_rt_config *cfg);

#endif
