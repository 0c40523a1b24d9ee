/*
 * internal.h - what the ctl source files share: the handle, the shared-CA table, row structs
 * read from the store, and small helpers (events, fault injection, sealing keys under the
 * master key, string utilities). Not installed; nothing outside src/ctl includes it.
 */
#ifndef DBT_CTL_INTERNAL_H
#define DBT_CTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "ctl/ctl.h"
#include "pki/pki.h"
#include "store/store.h"

struct dbt_ctl {
    struct dbt_store *st;
    struct dbt_store_watch *watch; /* dbt_ctl_watch_open's, or NULL */
    uint8_t master[DBT_PKI_MASTER_KEY_LEN];
    char *master_key_command; /* where master came from: this command, else the file */
    bool master_fixed;        /* threads share this handle: ctl_unseal must not refresh */
    char *state_dir;
    char *actor;
    bool read_only;
};

#define CTL_YEAR_SECS (365LL * 86400)
#define CTL_ROOT_SECS (40 * CTL_YEAR_SECS)
#define CTL_CA_SECS (10 * CTL_YEAR_SECS)
#define CTL_SERVER_SECS CTL_YEAR_SECS
#define CTL_CLIENT_SECS (10 * CTL_YEAR_SECS)

/* The shared CA families (DESIGN.md §1). */
struct ctl_ca_family {
    const char *id;
    enum dbt_pki_key_type key_type;
    enum dbt_pki_digest digest;
    /* imported (`dbtls cas import`): the CA itself issues server certificates in every region
       (one cas row, region ""), and instances use it in shared mode only */
    bool imported;
};
extern const struct ctl_ca_family ctl_ca_families[3];
const struct ctl_ca_family *ctl_ca_family_find(const char *id);
/* INVALID/NOT_FOUND naming the id and listing the valid ones. */
dbt_res ctl_ca_family_check(const char *id, const struct ctl_ca_family **out) DBT_WUR;
/* A built-in family or an imported CA (cas_import.c); out->id is id itself. NOT_FOUND naming the
   valid ids otherwise. */
dbt_res ctl_ca_lookup(struct dbt_ctl *ctl, const char *id, struct ctl_ca_family *out) DBT_WUR;
/* The region whose cas row issues for (ca, region): region, or "" for an imported CA. */
const char *ctl_ca_region(const struct ctl_ca_family *fam, const char *region);
/* The ids of the imported CAs, in id order. */
dbt_res ctl_imported_ids(struct dbt_ctl *ctl, char ***ids, size_t *n) DBT_WUR;

/* One instance row (public view + private columns). */
struct ctl_inst {
    int64_t id;
    struct dbt_ctl_instance pub; /* server_cert / server_ca_cert not filled by ctl_inst_load */
    char *client_ca_pem;
    uint8_t *client_ca_key;
    size_t client_ca_key_len;
    char *client_ca_sha1;
    char *crl_pem;
    int64_t crl_number;
};
void ctl_inst_cleanup(struct ctl_inst *in);
/* NOT_FOUND: `instance "x" does not exist`. */
dbt_res ctl_inst_load(struct dbt_ctl *ctl, const char *name, struct ctl_inst *out) DBT_WUR;

/* One server slot row. */
struct ctl_slot {
    char *slot;
    char *ca_pem; /* per-instance server CA, or NULL */
    uint8_t *ca_key;
    size_t ca_key_len;
    char *shared_ca_id; /* shared mode: issuing intermediate (ca_id, region) */
    char *shared_region;
    char *cert_pem;
    uint8_t *key;
    size_t key_len;
    int64_t created_at;
};
struct ctl_slots {
    struct ctl_slot v[3]; /* ordered active, upcoming, previous (those present) */
    size_t n;
};
void ctl_slots_cleanup(struct ctl_slots *s);
dbt_res ctl_slots_load(struct dbt_ctl *ctl, int64_t inst_id, struct ctl_slots *out) DBT_WUR;
struct ctl_slot *ctl_slots_find(struct ctl_slots *s, const char *slot);
dbt_res ctl_slot_put(struct dbt_ctl *ctl, int64_t inst_id, const char *slot,
                     const struct ctl_slot *row) DBT_WUR;

/* ---- the state directory (open.c) ---- */
#define CTL_STORE_FILE "dbtls.db"
/* Present when the store is a PostgreSQL database (store.h, docs/store.md). */
#define CTL_STORE_CONF "store.conf"
/* A handle with opts's state directory, actor and master key source; no store, no key yet. */
dbt_res ctl_new(const struct dbt_ctl_opts *opts, struct dbt_ctl **out) DBT_WUR;
/* mkdir -p, each new directory mode 0700. */
dbt_res ctl_mkdir_p(const char *dir) DBT_WUR;
/* Removes dir/<prefix><pid>[...] files whose process is gone (what a killed init or restore
   left). */
void ctl_remove_stale(const char *dir, const char *prefix);

/* ---- the master key (master_key.c) ---- */
#define CTL_MASTER_FILE "master.key"
/* The master key from command when it is non-empty, else from state_dir/master.key. */
dbt_res ctl_master_load(const char *state_dir, const char *command,
                        uint8_t out[DBT_PKI_MASTER_KEY_LEN]) DBT_WUR;
/* A master key file: exactly 32 bytes, refused (PERM) when the group or others may access it. */
dbt_res ctl_master_read_file(const char *path, uint8_t out[DBT_PKI_MASTER_KEY_LEN]) DBT_WUR;
/* Creates path (O_EXCL, mode 0600, synced) holding key; EXISTS when it is there. */
dbt_res ctl_master_write(const char *path, const uint8_t key[DBT_PKI_MASTER_KEY_LEN]) DBT_WUR;
/* At open: completes or discards the master.key.new of a rotation that was interrupted. */
dbt_res ctl_master_recover(struct dbt_ctl *ctl) DBT_WUR;
/* Reads the master key again from its source: true when it changed, i.e. a rotation happened
   since it was loaded. Called once per key that does not open (and once per daemon reload). */
bool ctl_master_refresh(struct dbt_ctl *ctl);
/* An exclusive flock on the state directory (master key rotation and its recovery, restore):
 *fd = -1 when another process holds it; close *fd to release it. */
dbt_res ctl_lock_dir(const char *dir, int *fd) DBT_WUR;
/* Re-seals every stored private key (shared and imported CAs, client CAs, the server CAs and
   certificates of every slot, the admin CA) under new_master in the open write transaction.
   Each must open with ctl->master, else the error names the first that does not. *n counts
   them. */
dbt_res ctl_reseal_all(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                       size_t *n) DBT_WUR;
/* Whether master opens blob, sealed for cert_pem's key (the recovery's probe). */
bool ctl_key_opens(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *cert_pem,
                   const uint8_t *blob, size_t len);
/* Re-seals a blob sealed for cert_pem's key under new_master (the rotation); what names the key
   in errors ("CA dbtls-ca-ecc384-g1/default"). */
dbt_res ctl_reseal(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                   const char *what, const char *cert_pem, const uint8_t *blob, size_t len,
                   uint8_t **out, size_t *out_len) DBT_WUR;
/* admin_ca.c: re-seals the admin CA's key (if there is an admin CA) in the open write
   transaction; *n counts the keys re-sealed. */
dbt_res ctl_admin_ca_reseal(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                            size_t *n) DBT_WUR;

/* Key sealing: the label (AAD) is "key:" + the SHA-1 of the certificate the key belongs to,
   so a blob moved to another row does not open. */
dbt_res ctl_seal(struct dbt_ctl *ctl, const struct dbt_pki_cert *cert,
                 const struct dbt_pki_key *key, uint8_t **blob, size_t *len) DBT_WUR;
dbt_res ctl_unseal(struct dbt_ctl *ctl, const char *cert_pem, const uint8_t *blob, size_t len,
                   struct dbt_pki_key **key) DBT_WUR;
dbt_res ctl_unseal_pem(struct dbt_ctl *ctl, const char *cert_pem, const uint8_t *blob, size_t len,
                       char **key_pem) DBT_WUR;

/*
 * Keys generated before an operation's write transaction (keys.c): plan them with ctl_keys_want
 * (in a read transaction when the plan needs store data), ctl_keys_generate with no write
 * transaction open, then BEGIN IMMEDIATE and let the issuing helpers below ctl_keys_take them.
 * A take that finds no key of its type sets stale (the store changed since the plan): the
 * operation then rolls back and runs again from the plan, at most CTL_KEYS_TRIES times.
 */
#define CTL_KEYS_MAX 8
#define CTL_KEYS_TRIES 3
#define CTL_LEAF_KEY DBT_PKI_KEY_EC256      /* server and client certificates */
#define CTL_CLIENT_CA_KEY DBT_PKI_KEY_EC384 /* client CAs and the admin CA */
struct ctl_keys {
    struct {
        enum dbt_pki_key_type type;
        struct dbt_pki_key *key; /* NULL before ctl_keys_generate and once taken */
    } v[CTL_KEYS_MAX];
    size_t n;
    bool stale;
};
/* Adds one key of type t to the plan (aborts past CTL_KEYS_MAX: a bug in the plan). */
void ctl_keys_want(struct ctl_keys *k, enum dbt_pki_key_type t);
/* Generates every planned key not generated yet. Call with no write transaction open. */
dbt_res ctl_keys_generate(struct ctl_keys *k) DBT_WUR;
/* Moves a generated key of type t to *out (the caller frees it). None left: STATE, stale set. */
dbt_res ctl_keys_take(struct ctl_keys *k, enum dbt_pki_key_type t,
                      struct dbt_pki_key **out) DBT_WUR;
/* Frees (and so wipes) the keys not taken; the struct is empty again, stale cleared. */
void ctl_keys_cleanup(struct ctl_keys *k);
/* The one place ctl generates a private key (runs the test hook of ctl.h first). */
dbt_res ctl_key_generate(enum dbt_pki_key_type t, struct dbt_pki_key **out) DBT_WUR;

/* Shared CA certificate + key for (ca_id, region); region "" = the root. With create (not
   NULL), a missing intermediate is made (first use of a region) inside the caller's write
   transaction with a key taken from create. */
dbt_res ctl_shared_ca(struct dbt_ctl *ctl, const char *ca_id, const char *region,
                      struct ctl_keys *create, struct dbt_pki_cert **cert, struct dbt_pki_key **key,
                      char **cert_pem) DBT_WUR;
/* Plans the keys of ctl_shared_family_create: the root's and the intermediate's. */
void ctl_shared_family_keys(const struct ctl_ca_family *fam, struct ctl_keys *keys);
/* Creates the root of a family and its intermediate for region (init). */
dbt_res ctl_shared_family_create(struct dbt_ctl *ctl, const struct ctl_ca_family *fam,
                                 const char *region, struct ctl_keys *keys) DBT_WUR;

/* Issue helpers. The keys they take must have been planned by the matching _keys function. */
dbt_res ctl_issue_ca(struct ctl_keys *keys, enum dbt_pki_key_type kt, enum dbt_pki_digest dg,
                     const char *cn, int64_t secs, int pathlen, const struct dbt_pki_cert *issuer,
                     const struct dbt_pki_key *issuer_key, struct dbt_pki_cert **cert,
                     struct dbt_pki_key **key) DBT_WUR;
/* Plans the keys ctl_build_slot takes for inst, inside a transaction: per-instance mode the new
   server CA's (the instance's CA family) and the leaf's; shared mode the leaf's, and the
   intermediate's when (ca_id, region) has none yet. */
dbt_res ctl_build_slot_keys(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                            struct ctl_keys *keys) DBT_WUR;
/* Builds a slot for the instance: per-instance mode a new server CA + leaf, shared mode a leaf
   under (ca_id, region). Fills row (caller frees with ctl_slot_cleanup). */
dbt_res ctl_build_slot(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                       const struct dbt_ctl_validity *v, struct ctl_keys *keys,
                       struct ctl_slot *row) DBT_WUR;
/* Re-issues the leaf of an existing slot for new endpoints under the same issuer (takes one
   CTL_LEAF_KEY). */
dbt_res ctl_reissue_leaf(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                         const struct dbt_ctl_validity *v, struct ctl_keys *keys,
                         struct ctl_slot *row) DBT_WUR;
void ctl_slot_cleanup(struct ctl_slot *s);
/* A new client CA for the instance with an empty CRL (takes one CTL_CLIENT_CA_KEY); the caller
   stores the client CA columns. */
dbt_res ctl_new_client_ca(struct dbt_ctl *ctl, int64_t inst_id, const char *inst_name,
                          const struct dbt_ctl_validity *v, struct ctl_keys *keys, char **ca_pem,
                          uint8_t **key_blob, size_t *key_len, char **sha1, char **crl_pem) DBT_WUR;
/* The certificates revoked under an instance's client CA (store reads only). */
struct ctl_revoked {
    struct dbt_pki_revoked *list;
    char **serials; /* owned; list[i].serial points here */
    size_t n;
};
dbt_res ctl_revoked_load(struct dbt_ctl *ctl, int64_t inst_id, const char *ca_sha1,
                         struct ctl_revoked *out) DBT_WUR;
void ctl_revoked_cleanup(struct ctl_revoked *rv);
/* Signs a CRL of rv under the client CA (ca_pem + sealed key). Reads only ctl's master key, so
   several threads may sign at once (runtime.c). number 0 = the issue time. */
dbt_res ctl_crl_sign(struct dbt_ctl *ctl, const char *ca_pem, const uint8_t *key_blob,
                     size_t key_len, const struct ctl_revoked *rv, int64_t number,
                     char **crl_pem) DBT_WUR;
/* Rebuilds and stores the CRL of the instance's current client CA. */
dbt_res ctl_crl_regen(struct dbt_ctl *ctl, struct ctl_inst *in) DBT_WUR;
/* All slots' CA certificates, active first (shared: root + intermediate of each). */
dbt_res ctl_server_ca_pem(struct dbt_ctl *ctl, const struct ctl_inst *in, char **out) DBT_WUR;
/* The slot's chain for the TLS front: leaf then intermediate (shared mode). */
dbt_res ctl_slot_chain(struct dbt_ctl *ctl, const struct ctl_slot *s, char **out) DBT_WUR;

/* The default shared CA id for new instances (setting default_ca_id, else
   DBT_CTL_DEFAULT_CA_ID), inside the caller's transaction. */
dbt_res ctl_default_ca_id(struct dbt_ctl *ctl, char **out) DBT_WUR;
/* Every instance name, in the store's order, inside the caller's transaction. On failure *names
   is NULL and *n 0. */
/* Every instance name, by name, or by age (creation order) when by_age. */
dbt_res ctl_instance_names(struct dbt_ctl *ctl, bool by_age, char ***names, size_t *n) DBT_WUR;

/* The expiry list (expiry.c): one certificate from its PEM, or from what the store recorded. */
struct dbt_ctl_expiry_list;
dbt_res ctl_expiry_add(struct dbt_ctl_expiry_list *l, const char *instance, const char *kind,
                       const char *slot, const char *name, const char *pem) DBT_WUR;
dbt_res ctl_expiry_add_known(struct dbt_ctl_expiry_list *l, const char *instance, const char *kind,
                             const char *slot, const char *name, const char *serial,
                             const char *sha1, int64_t not_after) DBT_WUR;
/* The certificate in an operator's file (--backend-tls-cert: dbtlsd reads it, so does the process
   that reports on it). False, *out untouched, when path is NULL/"" or the file cannot be read or
   parsed (the daemon's reload says why). */
bool ctl_file_cert_info(const char *path, struct dbt_pki_cert_info *out);
/* Adds the admin CA (kind "admin-ca") and the unrevoked admin client certificates ("admin-cert",
   by name) to l, inside the caller's read transaction (admin_ca.c). */
dbt_res ctl_admin_expiry(struct dbt_ctl *ctl, struct dbt_ctl_expiry_list *l) DBT_WUR;
/* The scheduler's notice for admin client certificates (admin_ca.c): each live one past its
   renewal point (dbt_ctl_rotation_due with lead_secs) gets one "admin-cert.expiring" event,
   once (recorded in the store). *notices counts the events raised. */
dbt_res ctl_admin_expiring(struct dbt_ctl *ctl, int64_t now, int64_t lead_secs,
                           int *notices) DBT_WUR;

/* Fills a public cert view from a PEM. */
dbt_res ctl_cert_fill(const char *pem, const char *slot, const char *name, const char *instance,
                      int64_t create_time, struct dbt_ctl_cert *out) DBT_WUR;

/* Events and transactions. */
dbt_res ctl_event(struct dbt_ctl *ctl, const char *action, const char *object, const char *fmt,
                  ...) DBT_WUR DBT_PRINTF(4, 5);
/* The events of query id (DBT_SQL_EVENT_LIST: ?1 = instance or NULL for all;
 * DBT_SQL_EVENT_AFTER: ?1 = after, the last id seen), at most limit (0 = all), in a read
 * transaction. */
dbt_res ctl_events_read(struct dbt_ctl *ctl, enum dbt_sql id, const char *instance, int64_t after,
                        size_t limit, struct dbt_ctl_event_list *out) DBT_WUR;
/* Commits a change: bumps the counter then COMMIT. */
dbt_res ctl_commit(struct dbt_ctl *ctl) DBT_WUR;
/* Aborts the process if env DBTLS_FAULT names this point (atomicity tests). */
void ctl_fault(const char *point);

/* Strings. */
char *ctl_strdup(const char *s); /* NULL -> NULL; aborts on OOM (tiny strings) */
char *ctl_printf(const char *fmt, ...) DBT_PRINTF(1, 2);
/* Appends s to *acc (realloc). NOMEM. */
dbt_res ctl_append(char **acc, const char *s) DBT_WUR;
/* Splits a comma-separated list, trimming blanks; empty items INVALID. */
dbt_res ctl_split(const char *s, char ***out, size_t *n) DBT_WUR;
/* Appends a copy of s to the vector (*v, *n). NOMEM. */
dbt_res ctl_strv_push(char ***v, size_t *n, const char *s) DBT_WUR;
void ctl_strv_free(char **v, size_t n);

#endif
