/*
 * ctl.h - the control library: every operation of the certificate control plane (init, CAs,
 * engines, instances, server-CA / server-certificate slots, client certificates, bundles, events).
 * The CLI calls these functions directly against the store; the admin API calls the same ones.
 * Nothing is implemented twice. Sits on store (SQLite) and pki (OpenSSL); see DESIGN.md §1.
 *
 * Conventions for the whole file:
 * - Every operation that changes something is ONE store transaction (BEGIN IMMEDIATE .. COMMIT)
 *   and bumps the change counter and appends an event in that same transaction. A failed
 *   operation changes nothing. Reads run in one read transaction (consistent snapshot).
 * - Errors: dbt_res + one-line message (dbt_errmsg()) that names the object and says why, e.g.
 *   `instance "db1": no upcoming server CA to rotate to; create one first`. Codes used:
 *   INVALID (bad argument), NOT_FOUND, EXISTS, LIMIT, STATE (refused in current state), PERM
 *   (master key permissions), CORRUPT (store file not a dbtls store), STORE, CRYPTO, IO.
 * - Output structs are filled by the callee and owned by the caller, who releases them with the
 *   matching _cleanup/_free function (safe on zeroed structs, and after a failed call).
 *   Strings are NUL-terminated and heap-allocated; optional ones are NULL when unset.
 * - A handle (struct dbt_ctl) is used by one thread at a time; threads that run operations
 *   concurrently (the admin API) open one handle each: writers then serialize on the store's
 *   write lock (BEGIN IMMEDIATE, 10 s busy timeout) and readers see consistent snapshots.
 *   Private keys are generated before the write lock is taken, never while it is held, so a
 *   writer holds it for milliseconds even when it makes an RSA-4096 CA.
 * - Times are unix seconds (int64_t); format them with dbt_time_rfc3339 (base/clock.h).
 * - Fault injection for atomicity tests: if env DBTLS_FAULT names a fault point that an
 *   operation passes (listed per function below, e.g. "rotate-mid"), the process abort()s there,
 *   inside the open transaction. SQLite then leaves the old state.
 */
#ifndef DBT_CTL_CTL_H
#define DBT_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "ctl/runtime.h" /* struct dbt_ctl, struct dbt_ctl_opts, dbt_ctl_open/close, ssl mode */

/* The region used when none is given: `dbtls init` creates the shared intermediates for it. */
#define DBT_CTL_DEFAULT_REGION "default"
/* The shared CA of new instances until `dbtls cas set-default` changes it. */
#define DBT_CTL_DEFAULT_CA_ID "dbtls-ca-ecc384-g1"
/* Live client certificates per instance unless --max-client-certs says otherwise. */
#define DBT_CTL_DEFAULT_MAX_CLIENT_CERTS 10
/* Default TLS policy of a new instance (DESIGN.md §1). */
#define DBT_CTL_DEFAULT_TLS_MIN "TLSv1.2"
#define DBT_CTL_DEFAULT_TLS_MAX "TLSv1.3"
#define DBT_CTL_DEFAULT_CIPHERS "HIGH:!aNULL:!3DES"

/* ------------------------------------------------------------------------------------------ */
/* Init                                                                                        */

/*
 * Creates the state directory (mode 0700, parents as needed), master.key (32 random bytes, mode
 * 0600; not created when opts->master_key_command is set: the command's key is used instead),
 * the store dbtls.db, and the shared CAs dbtls-ca-rsa2048-g1 (RSA-2048, SHA-256),
 * dbtls-ca-rsa4096-g1 (RSA-4096, SHA-384), dbtls-ca-ecc384-g1 (P-384, SHA-384): self-signed roots
 * (40 years) and the DBT_CTL_DEFAULT_REGION intermediates (10 years). Default CA =
 * DBT_CTL_DEFAULT_CA_ID. Errors: EXISTS if the state dir already holds a store ("already
 * initialized"), IO/PERM naming the path. On failure nothing usable is left half-made: the store
 * is written in one transaction. Fault point: "init-mid".
 */
dbt_res dbt_ctl_init(const struct dbt_ctl_opts *opts) DBT_WUR;

/*
 * `dbtls master-key rotate`: re-seals every stored private key (shared and imported CAs, client
 * CAs, server CAs and certificates of every slot, the admin CA) under a new master key, in one
 * write transaction. new_command NULL or "": a random key that replaces state-dir/master.key
 * (written as master.key.new first, renamed after the commit; a crash in between is completed
 * by the next open); refused (INVALID) when the key comes from --master-key-command. Else the
 * key new_command prints (as --master-key-command), which must differ from the current one;
 * a master.key of before is removed. STATE while another rotation runs on the directory. A key
 * that does not open fails the whole rotation naming it, nothing changed. Processes holding the
 * old key read it again when a stored key does not open. Event "master-key.rotate". Fault points
 * "rekey-mid" (in the transaction) and "rekey-committed" (after the commit, before the rename).
 */
/*
 * `dbtls backup`: writes a consistent copy of the SQLite store to path, a new file (mode 0600;
 * EXISTS if it is there), while dbtlsd and other commands go on; STATE for a PostgreSQL store
 * (pg_dump backs it up). The master key is not in the copy. Event "store.backup" (no change:
 * the counter stays).
 */
dbt_res dbt_ctl_backup(struct dbt_ctl *ctl, const char *path) DBT_WUR;

/* What `dbtls restore` did (dbt_ctl_restore). */
struct dbt_ctl_restore {
    size_t instances;         /* in the restored store */
    size_t keys;              /* private keys checked (and re-sealed under the current key) */
    bool rekeyed;             /* the copy's keys were sealed under another master key */
    bool replaced;            /* a readable store was there: its content was replaced (or,
                                 in a dry run, would be) */
    char *damaged_aside;      /* a damaged store was moved to this name, or NULL */
    int64_t copy_last_change; /* the time of the copy's newest event */
    /* carried over from the store that was replaced, so the PKI forgets nothing it did after
       the copy was taken (client CAs the copy has) */
    size_t client_certs_carried; /* issued since: listed and revocable again */
    size_t revocations_carried;  /* revoked since: stay revoked (in the CRL) */
    size_t admin_certs_carried;  /* admin certificates issued or revoked since */
    size_t events_carried;       /* audit events recorded since (the trail stays whole) */
    size_t client_certs_lost;    /* issued under a client CA the copy does not have */
    char **removed;              /* instances of the replaced store the copy does not have */
    size_t n_removed;
    char **returned; /* instances of the copy the replaced store did not have */
    size_t n_returned;
    /* instances of both whose client CA differs (reset, or deleted and created again, since the
       copy): the copy's client CA is trusted again, with the revocations it knew and those the
       store recorded under it */
    char **ca_changed;
    size_t n_ca_changed;
};
void dbt_ctl_restore_cleanup(struct dbt_ctl_restore *r);
/*
 * `dbtls restore`: makes the SQLite store of opts's state directory the copy in the file from
 * (`dbtls backup`'s, or a store file), while dbtlsd runs or with the store missing or damaged.
 * The copy must be a dbtls store that passes integrity_check (CORRUPT naming it), not newer
 * than this program (an older one is migrated), and every private key in it must open with
 * from_master (when non-NULL: the master key of when the copy was taken; its keys are re-sealed
 * under the current one) or else the current master key (CRYPTO naming the key). When a
 * readable store is there, what its PKI did after the copy was taken is carried into the copy
 * (client certificates issued and revoked under client CAs the copy has, with the CRLs signed
 * again; admin certificates issued and revoked; the events recorded since, with their ids,
 * and the notification marks), the change counter goes above its own, and
 * its content is replaced in one transaction (STATE if it changed meanwhile: nothing
 * restored); instances it has and the copy has not would be deleted: refused (STATE) naming
 * them unless DBT_CTL_RESTORE_FORCE. DBT_CTL_RESTORE_DRY_RUN does all of it on the staged copy
 * only (no refusal for the instances: the report names them) and leaves the store as it is. A
 * damaged store is moved aside (dbtls.db.damaged-TIME) and the copy put in its place. STATE for a
 * PostgreSQL store or while a master key rotation runs. Event "store.restore" in the restored
 * store. Nothing changes on any failure.
 */
enum {
    DBT_CTL_RESTORE_FORCE = 1,   /* delete the instances the copy lacks */
    DBT_CTL_RESTORE_DRY_RUN = 2, /* every check and the report; the store is not touched */
};
dbt_res dbt_ctl_restore(const struct dbt_ctl_opts *opts, const char *from,
                        const uint8_t *from_master, unsigned flags,
                        struct dbt_ctl_restore *out) DBT_WUR;
/* The master key a key file holds (as master.key: 32 bytes or 64 hex, not group/world
   readable) or, when command is non-NULL, what command prints: for dbt_ctl_restore's
   from_master. */
dbt_res dbt_ctl_master_key_read(const char *path, const char *command, uint8_t out[32]) DBT_WUR;

struct dbt_ctl_rekey {
    size_t keys;  /* re-sealed */
    bool to_file; /* the new key is in master.key (else: new_command's) */
};
dbt_res dbt_ctl_master_key_rotate(struct dbt_ctl *ctl, const char *new_command,
                                  struct dbt_ctl_rekey *out) DBT_WUR;

/*
 * Master key handling (also used by dbt_ctl_open):
 * - file: state_dir/master.key, exactly 32 raw bytes; refused with PERM if group/world has any
 *   access: `master key file "/x/master.key" has group or world access; permissions should be
 *   u=rw (0600) or less` (message ends with a hint to chmod 0600).
 * - command: run with /bin/sh -c; stdout must be 64 hex characters (optionally followed by a
 *   newline) or exactly 32 raw bytes; non-zero exit or anything else is INVALID naming the
 *   command's exit status.
 */

/* ------------------------------------------------------------------------------------------ */
/* Certificates as listed (Cloud SQL SslCert fields + slot)                                    */

struct dbt_ctl_cert {
    char *slot;               /* "previous" | "active" | "upcoming"; NULL for client certs */
    char *name;               /* client certs: the cert name; server slots: NULL */
    char *instance;           /* owning instance name (NULL for shared CAs) */
    char *cert_serial_number; /* certSerialNumber: hex, upper case */
    char *cert;               /* cert: PEM */
    char *common_name;        /* commonName */
    char *sha1_fingerprint;   /* sha1Fingerprint: hex, lower case, no colons */
    char *subject;            /* subject DN, RFC 2253 one line */
    char *issuer;             /* issuer DN, RFC 2253 one line */
    char *key_algorithm;      /* e.g. "EC P-256", "RSA-2048" */
    int64_t create_time;      /* createTime: when dbtls created it */
    int64_t not_before;       /* notBefore (backdated a few minutes for clock skew) */
    int64_t expiration_time;  /* expirationTime: notAfter */
    bool revoked;             /* client certs: revoked (only ever seen in events; deleted
                                 certs are not listed) */
};

struct dbt_ctl_cert_list {
    struct dbt_ctl_cert *items;
    size_t n;
};

void dbt_ctl_cert_cleanup(struct dbt_ctl_cert *c);
void dbt_ctl_cert_list_cleanup(struct dbt_ctl_cert_list *l);

/* Validity overrides for issuing operations (issue 5 uses short validities). 0 = default. */
struct dbt_ctl_validity {
    int64_t ca_secs;   /* per-instance server CA / client CA: default 10 years */
    int64_t leaf_secs; /* server cert: default 1 year; client cert: default 10 years */
};

/* ------------------------------------------------------------------------------------------ */
/* Shared CAs                                                                                  */

struct dbt_ctl_ca_info {
    char *id;                  /* CertificateIdentifier: "dbtls-ca-ecc384-g1" */
    char *type;                /* CertificateType: "CA" */
    char *key_algorithm;       /* "RSA-2048" | "RSA-4096" | "EC P-384" */
    char *signature_algorithm; /* "sha256WithRSAEncryption" | "sha384WithRSAEncryption" |
                                  "ecdsa-with-SHA384" */
    char *sha1_fingerprint;    /* Thumbprint of the root, hex lower case */
    char *cert;                /* root PEM */
    int64_t valid_from;        /* root notBefore */
    int64_t valid_till;        /* root notAfter */
    bool is_default;           /* default for new instances */
    char **regions;            /* regions that have an intermediate, sorted */
    size_t n_regions;
};

struct dbt_ctl_ca_list {
    struct dbt_ctl_ca_info *items;
    size_t n;
};

/* All shared CAs, ordered by id. */
dbt_res dbt_ctl_cas_list(struct dbt_ctl *ctl, struct dbt_ctl_ca_list *out) DBT_WUR;
void dbt_ctl_ca_list_cleanup(struct dbt_ctl_ca_list *l);

/* Sets the CA for new instances. NOT_FOUND for an unknown id (message lists the valid ones). */
dbt_res dbt_ctl_cas_set_default(struct dbt_ctl *ctl, const char *ca_id) DBT_WUR;
/*
 * Imports a CA of the operator's own PKI as shared CA ca_id (like Cloud SQL's customer-managed
 * CA): cert_pem the CA certificate, chain_pem (may be NULL) its issuers up to a self-signed root
 * clients trust, key_pem its private key (unencrypted PEM; stored sealed under the master key).
 * The CA then issues server certificates of the instances that name it (--ca, shared mode) in
 * every region. INVALID naming what is wrong (not a CA, expired or within 30 days of it, key
 * type, key mismatch, a chain that does not reach a root); EXISTS for a taken id.
 */
dbt_res dbt_ctl_cas_import(struct dbt_ctl *ctl, const char *ca_id, const char *cert_pem,
                           const char *chain_pem, const char *key_pem) DBT_WUR;
/*
 * Takes the renewed certificate of an imported CA (`dbtls cas renew`): the operator's PKI
 * re-issued the CA with the same subject and key and a later end, so the server certificates it
 * issued stay valid and are served with the new one. cert_pem the CA alone, chain_pem (may be
 * NULL) its issuers up to the root, checked as at import; INVALID naming the reason when the
 * subject or key differs, it does not end later, it is the current certificate, or a server
 * certificate the CA issued (valid now) does not verify under it; STATE for dbtls's own CAs. The
 * key is re-sealed (its label follows the certificate). Event "ca.renew"; *not_after = its end.
 */
dbt_res dbt_ctl_cas_renew(struct dbt_ctl *ctl, const char *ca_id, const char *cert_pem,
                          const char *chain_pem, int64_t *not_after) DBT_WUR;
/* Deletes an imported CA: STATE while it is the default or any instance's slot uses it, or for
   dbtls's own CAs; NOT_FOUND for an unknown id. */
dbt_res dbt_ctl_cas_delete(struct dbt_ctl *ctl, const char *ca_id) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Engines (static table; no store needed)                                                     */

struct dbt_engine_info {
    const char *engine;              /* "postgres" | "mysql" | "mariadb" */
    const char *version;             /* "13".."17", "5.7", "8.0", "10.11" */
    bool is_default_version;         /* used when --engine-version is omitted */
    const char *const *ca_ids;       /* supported CA ids, NULL-terminated */
    const char *const *tls_versions; /* e.g. {"TLSv1.2","TLSv1.3",NULL} */
    const char *default_tls_min;     /* clamped into tls_versions */
    const char *default_tls_max;
    const char *default_ciphers;    /* TLS 1.2 list, OpenSSL syntax */
    bool rotation_requires_restart; /* always false for dbtls */
    int default_port;               /* 5432 / 3306 */
    /* PostgreSQL: suffix of the pg_hba rejection ("no encryption" for >= 14, "SSL off"
       before); NULL for MySQL-family engines. */
    const char *hba_reject_suffix;
    /* MySQL family: ER_SECURE_TRANSPORT_REQUIRED (3159, HY000) text; NULL for postgres. */
    const char *insecure_transport_error;
    int insecure_transport_errno; /* 3159 or 0 */
};

/* The whole table; *n receives its length. Static storage, never freed. */
const struct dbt_engine_info *dbt_ctl_engines(size_t *n);
/* One entry; version NULL = the engine's default version. NULL if unknown. */
const struct dbt_engine_info *dbt_ctl_engine_find(const char *engine, const char *version);

/* ssl mode names <-> enum (names as Cloud SQL spells them, upper case; parsing is
   case-insensitive). */
dbt_res dbt_ctl_ssl_mode_parse(const char *s, enum dbt_ssl_mode *out) DBT_WUR;
const char *dbt_ctl_ssl_mode_name(enum dbt_ssl_mode m);

/* ------------------------------------------------------------------------------------------ */
/* Instances                                                                                   */

/*
 * Attributes for create and patch. For create, NULL/0 fields take defaults; for patch, NULL/0
 * fields are left unchanged and "" clears an optional text field (hba/ident/user_require/
 * backend_tls_ca/backend_tls_cert/backend_tls_key/ciphersuites/groups).
 */
struct dbt_ctl_instance_spec {
    const char *engine;           /* create: required; patch: must not change (INVALID) */
    const char *engine_version;   /* default: the engine's default version */
    const char *listen;           /* "host:port", "[v6]:port"; create: required */
    const char *backend;          /* "host:port" or absolute unix socket path; create: req. */
    const char *backend_tls_ca;   /* CA file path for TLS to the backend (verify-full) */
    const char *backend_tls_cert; /* with backend_tls_ca: certificate (chain) file dbtlsd shows
                                     a backend that asks for a client certificate ... */
    const char *backend_tls_key;  /* ... and its private key file (both or neither) */
    const char *client_info;      /* "on" | "off": the backend gets dbtls.client_addr & co.
                                     (PostgreSQL: startup parameters; MySQL: connection
                                     attributes) */
    const char *endpoints;        /* comma-separated DNS names / IPs; create: required.
                                     Patch re-issues the active and upcoming server certs with
                                     the new SAN under their same issuers. */
    const char *region;           /* create only; default DBT_CTL_DEFAULT_REGION. The shared
                                     intermediates of a new region are created on first use. */
    const char *ca_mode;          /* "shared" | "per-instance"; patch: only per-instance ->
                                     shared (STATE otherwise) */
    const char *ca_id;            /* shared CA id; default = settings default. Patch (shared
                                     mode): re-issues the server cert under the new CA; the old
                                     active becomes previous (rollback possible), an upcoming is
                                     dropped. Per-instance mode: the key/signature type of the
                                     instance's own server CAs (rsa2048/rsa4096/ecc384). */
    const char *ssl_mode;         /* see dbt_ctl_ssl_mode_parse */
    const char *tls_min;          /* "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" (engine-allowed) */
    const char *tls_max;
    const char *ciphers;           /* TLS 1.2 cipher list (validated syntax: non-empty) */
    const char *ciphersuites;      /* TLS 1.3 suites */
    const char *groups;            /* e.g. "X25519:P-256" */
    const char *hba_text;          /* access rules text (pg_hba.conf syntax), the file content */
    const char *ident_text;        /* ident map text (pg_ident.conf syntax) */
    const char *user_require_text; /* MySQL per-user REQUIRE rules, "user=REQ" lines */
    int max_client_certs;          /* 1..1000; 0 = default / unchanged */
};

struct dbt_ctl_instance {
    char *name;
    char *engine;
    char *engine_version;
    char *listen;
    char *backend;
    char *backend_tls_ca;   /* or NULL */
    char *backend_tls_cert; /* or NULL */
    char *backend_tls_key;  /* or NULL */
    bool client_info;       /* see the spec */
    char **endpoints;
    size_t n_endpoints;
    char *region;
    char *ca_mode; /* "shared" | "per-instance" */
    char *ca_id;
    enum dbt_ssl_mode ssl_mode;
    char *tls_min;
    char *tls_max;
    char *ciphers;
    char *ciphersuites;      /* or NULL */
    char *groups;            /* or NULL */
    char *hba_text;          /* or NULL */
    char *ident_text;        /* or NULL */
    char *user_require_text; /* or NULL */
    int max_client_certs;
    int n_client_certs; /* live client certificates */
    int64_t create_time;
    int64_t update_time;
    struct dbt_ctl_cert server_cert;    /* active server certificate (slot "active") */
    struct dbt_ctl_cert server_ca_cert; /* the CA that signed it (per-instance CA or shared
                                           intermediate) */
};

struct dbt_ctl_instance_list {
    struct dbt_ctl_instance *items;
    size_t n;
};

void dbt_ctl_instance_cleanup(struct dbt_ctl_instance *inst);
void dbt_ctl_instance_list_cleanup(struct dbt_ctl_instance_list *l);

/*
 * Creates an instance: validates every attribute (name `[A-Za-z][A-Za-z0-9-]{0,62}`, unknown
 * engine/version, bad listen/backend address, duplicate name or listen address, endpoint not a
 * DNS name or IP, unknown CA id, TLS min above max or not supported by the engine version,
 * unknown ssl mode), then issues the server certificate (ECDSA P-256, 1 year; shared mode:
 * under the region's intermediate of the CA; per-instance mode: a self-signed server CA (10
 * years, key type of ca_id) + leaf), the client CA (10 years) and its empty CRL.
 * validity may be NULL. out may be NULL. Fault point: "create-mid".
 */
dbt_res dbt_ctl_instance_create(struct dbt_ctl *ctl, const char *name,
                                const struct dbt_ctl_instance_spec *spec,
                                const struct dbt_ctl_validity *validity,
                                struct dbt_ctl_instance *out) DBT_WUR;
/* All instances ordered by name. */
dbt_res dbt_ctl_instance_list(struct dbt_ctl *ctl, struct dbt_ctl_instance_list *out) DBT_WUR;
dbt_res dbt_ctl_instance_describe(struct dbt_ctl *ctl, const char *name,
                                  struct dbt_ctl_instance *out) DBT_WUR;
/* Changes attributes (see the spec). validity applies to re-issued certs. out may be NULL.
   Fault point: "patch-mid". */
dbt_res dbt_ctl_instance_patch(struct dbt_ctl *ctl, const char *name,
                               const struct dbt_ctl_instance_spec *spec,
                               const struct dbt_ctl_validity *validity,
                               struct dbt_ctl_instance *out) DBT_WUR;
/* Deletes the instance with its slots, client CA, client certs and revocations. */
dbt_res dbt_ctl_instance_delete(struct dbt_ctl *ctl, const char *name) DBT_WUR;

/*
 * Like Cloud SQL resetSslConfig: a new server CA + server cert (per-instance mode) or a new
 * server cert (shared mode) replaces every slot (no previous), every client cert is revoked and
 * deleted, and a new client CA (with an empty CRL) replaces the old one. Fault point:
 * "reset-mid".
 */
dbt_res dbt_ctl_instance_reset_ssl(struct dbt_ctl *ctl, const char *name,
                                   const struct dbt_ctl_validity *validity) DBT_WUR;

/*
 * Everything needed to run native TLS on the database server itself (`instances export`):
 * fills a one-instance config exactly like dbt_ctl_runtime_load (chain, decrypted key, client CA,
 * CRL). Free with dbt_rt_config_free.
 */
dbt_res dbt_ctl_instance_export(struct dbt_ctl *ctl, const char *name,
                                struct dbt_rt_config **out) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Server CA / server certificate slots (DESIGN.md §1)                                         */

/*
 * Each instance has slots previous / active / upcoming. In per-instance mode a slot is a server
 * CA (with the server cert it signs); in shared mode a slot is a server certificate. Semantics:
 * - create: issues a new upcoming (replacing an unused upcoming). Fault point "create-slot-mid".
 * - rotate: active -> previous (an older previous is dropped), upcoming -> active. STATE without
 *   an upcoming: `instance "x": no upcoming server CA to rotate to; create one first` (or
 *   "server certificate" in shared mode). Fault point "rotate-mid".
 * - rollback: active -> upcoming, previous -> active. STATE without a previous ("no previous
 *   server CA to roll back to") or when the previous has expired ("the previous server CA
 *   expired at <time>; rollback is no longer possible"). Fault point "rollback-mid".
 * The SERVER_CA kind is refused (STATE) for instances in shared mode and SERVER_CERT for
 * instances in per-instance mode, with a message naming the right command. Listing works for
 * both kinds in both modes: SERVER_CA lists, per slot, the CA certificate (per-instance CA, or
 * the shared root the slot's cert chains to); SERVER_CERT lists the server certificates.
 * Lists are ordered active, upcoming, previous.
 */
enum dbt_ctl_slot_kind {
    DBT_CTL_SLOT_SERVER_CA,
    DBT_CTL_SLOT_SERVER_CERT,
};

dbt_res dbt_ctl_slots_list(struct dbt_ctl *ctl, const char *instance, enum dbt_ctl_slot_kind kind,
                           struct dbt_ctl_cert_list *out) DBT_WUR;
/* out (may be NULL) receives the new upcoming (the CA cert for SERVER_CA, else the server
   cert). */
dbt_res dbt_ctl_slots_create(struct dbt_ctl *ctl, const char *instance, enum dbt_ctl_slot_kind kind,
                             const struct dbt_ctl_validity *validity,
                             struct dbt_ctl_cert *out) DBT_WUR;
dbt_res dbt_ctl_slots_rotate(struct dbt_ctl *ctl, const char *instance,
                             enum dbt_ctl_slot_kind kind) DBT_WUR;
dbt_res dbt_ctl_slots_rollback(struct dbt_ctl *ctl, const char *instance,
                               enum dbt_ctl_slot_kind kind) DBT_WUR;

/*
 * The server-ca.pem a client installs: the CA certificates of all slots in one PEM, the active
 * slot's first, then upcoming, then previous (duplicates removed). Shared mode: root and
 * intermediate of each slot's CA. *pem_out is heap-allocated (free()).
 */
dbt_res dbt_ctl_server_ca_download(struct dbt_ctl *ctl, const char *instance,
                                   char **pem_out) DBT_WUR;

/* An instance address "host:port" or "[v6]:port" -> host (caller frees) and port 1..65535;
   false when it is not one (a unix socket path is not). */
bool dbt_ctl_split_hostport(const char *s, char **host, int *port);

/* ------------------------------------------------------------------------------------------ */
/* Client certificates                                                                         */

/* The alias of the key entry in client.p12: PgJDBC's PKCS12KeyManager looks the key up under
   "user" and sends no certificate otherwise; other Java clients (MariaDB Connector/J, keytool)
   take any alias. The certificate's name stays its CN. */
#define DBT_CTL_P12_ALIAS "user"

struct dbt_ctl_client_cert_opts {
    int64_t validity_secs;    /* 0 = 10 years */
    bool pkcs12;              /* also build client.p12 (cert + key + client CA), its key entry
                                 under the alias DBT_CTL_P12_ALIAS */
    const char *p12_password; /* NULL = "" */
};

struct dbt_ctl_client_cert_new {
    struct dbt_ctl_cert cert; /* the new certificate (cert.name = its name) */
    char *key_pem;            /* its private key, PKCS#8 PEM; returned once, never stored;
                                 wiped by _cleanup */
    char *server_ca_pem;      /* = dbt_ctl_server_ca_download (the sslrootcert) */
    char *client_ca_pem;      /* the instance client CA that issued it (the PKCS#12 chain) */
    uint8_t *p12;             /* DER PKCS#12 when opts->pkcs12, else NULL */
    size_t p12_len;
};
void dbt_ctl_client_cert_new_cleanup(struct dbt_ctl_client_cert_new *c);

/*
 * Issues a client cert (EC P-256, CN = name, EKU clientAuth) under the instance's client CA.
 * Name `[A-Za-z0-9._ -]+` (1..64), unique among the instance's live certs (EXISTS). LIMIT when
 * the instance already has max_client_certs live certs:
 * `instance "x" already has 10 client certificates (the limit); delete one or raise
 * --max-client-certs`. opts may be NULL. Fault point: "client-create-mid".
 */
dbt_res dbt_ctl_client_cert_create(struct dbt_ctl *ctl, const char *instance, const char *name,
                                   const struct dbt_ctl_client_cert_opts *opts,
                                   struct dbt_ctl_client_cert_new *out) DBT_WUR;
/*
 * An ephemeral client certificate (Cloud SQL's generateEphemeralCert): certifies the client's
 * own public key (dbt_pki_pubkey_from_pem: PEM public key or certificate request) for cn, under
 * the instance's client CA, for validity_secs (0 = 1 hour; 60 s to 24 h). Not recorded as a
 * client certificate: no name to keep unique, no place under the limit, not listed, not
 * revocable but by `instances reset-ssl-config`; the event "client-cert.ephemeral" records it.
 * out->key_pem stays NULL (dbtls never sees the private key).
 */
#define DBT_CTL_EPHEMERAL_SECS 3600
#define DBT_CTL_EPHEMERAL_MAX_SECS 86400
dbt_res dbt_ctl_client_cert_ephemeral(struct dbt_ctl *ctl, const char *instance, const char *cn,
                                      const char *public_key_pem, int64_t validity_secs,
                                      struct dbt_ctl_client_cert_new *out) DBT_WUR;
/* Live client certs of the instance, ordered by name. */
dbt_res dbt_ctl_client_cert_list(struct dbt_ctl *ctl, const char *instance,
                                 struct dbt_ctl_cert_list *out) DBT_WUR;
/* By name, or by SHA-1 fingerprint (40 hex chars, any case, colons allowed). NOT_FOUND. */
dbt_res dbt_ctl_client_cert_describe(struct dbt_ctl *ctl, const char *instance,
                                     const char *name_or_sha1, struct dbt_ctl_cert *out) DBT_WUR;
/* Revokes (adds to the client CA's CRL, regenerated now) and deletes it, freeing its place under
   the limit. Fault point: "client-delete-mid". */
dbt_res dbt_ctl_client_cert_delete(struct dbt_ctl *ctl, const char *instance,
                                   const char *name_or_sha1) DBT_WUR;
/* The instance's client CA certificate (PEM) and current CRL (PEM). Either out may be NULL. */
dbt_res dbt_ctl_client_ca(struct dbt_ctl *ctl, const char *instance, char **ca_pem_out,
                          char **crl_pem_out) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Bundles                                                                                     */

enum dbt_ctl_bundle_format {
    DBT_CTL_BUNDLE_PEM, /* concatenated PEM certificates */
    DBT_CTL_BUNDLE_P7B, /* DER PKCS#7 certs-only (openssl pkcs7 -inform DER -print_certs) */
};

/*
 * instance set: that instance's server CA download (all slots). Otherwise shared CAs: every
 * root (restricted to ca_id if set) followed by its intermediates (restricted to region if set;
 * NOT_FOUND for a region no CA has). Order: CA id, root before its intermediates.
 * *out is heap-allocated (free()); for PEM it is also NUL-terminated (not counted in *len).
 */
dbt_res dbt_ctl_bundle(struct dbt_ctl *ctl, const char *ca_id, const char *region,
                       const char *instance, enum dbt_ctl_bundle_format fmt, uint8_t **out,
                       size_t *len) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Events (audit trail)                                                                        */

struct dbt_ctl_event {
    int64_t id;
    int64_t time;
    char *actor;  /* opts->actor, else $USER, else "dbtls" */
    char *action; /* "init", "instance.create", "server-ca.rotate", "client-cert.delete", ... */
    char *object; /* e.g. "instance/db1", "instance/db1/client-cert/app" */
    char *detail; /* short "key=value ..." text */
};

struct dbt_ctl_event_list {
    struct dbt_ctl_event *items;
    size_t n;
};
void dbt_ctl_event_list_cleanup(struct dbt_ctl_event_list *l);

/* Events oldest first; instance (NULL = all) filters on object; limit 0 = all (the newest
   `limit` ones, still oldest first). */
dbt_res dbt_ctl_events_list(struct dbt_ctl *ctl, const char *instance, size_t limit,
                            struct dbt_ctl_event_list *out) DBT_WUR;
/* Records an automatic action (e.g. the daemon: "cert.expiring"). Does not bump the change
   counter. Allowed on a read-only handle. */
dbt_res dbt_ctl_event_add(struct dbt_ctl *ctl, const char *action, const char *object,
                          const char *detail) DBT_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Testing                                                                                     */

/*
 * TEST ONLY (tests/unit/test_ctl.c): fn(arg) runs just before each private key ctl generates,
 * in the thread that generates it, so a test can check that the store's write lock is free
 * then. NULL removes it. Process-wide and unsynchronized: never set outside tests.
 */
void dbt_ctl_test_keygen_hook(void (*fn)(void *arg), void *arg);

#endif
