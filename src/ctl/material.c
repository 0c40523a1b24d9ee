/*
 * material.c - the certificate material of the control plane on top of pki and store: the
 * shared CA families, issuing CAs and server slots, sealing keys under the master key, the
 * client CA and its CRL. Reading and writing instance and slot rows is in rows.c. Operations
 * (instances*.c, slots.c, clients.c, cas.c) are built from these.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "ctl/internal.h"

const struct ctl_ca_family ctl_ca_families[3] = {
    {"dbtls-ca-ecc384-g1", DBT_PKI_KEY_EC384, DBT_PKI_SHA384, false},
    {"dbtls-ca-rsa2048-g1", DBT_PKI_KEY_RSA2048, DBT_PKI_SHA256, false},
    {"dbtls-ca-rsa4096-g1", DBT_PKI_KEY_RSA4096, DBT_PKI_SHA384, false},
};

const struct ctl_ca_family *ctl_ca_family_find(const char *id)
{
    for (size_t i = 0; id && i < DBT_ARRAY_LEN(ctl_ca_families); i++) {
        if (strcmp(ctl_ca_families[i].id, id) == 0) {
            return &ctl_ca_families[i];
        }
    }
    return NULL;
}

dbt_res ctl_ca_family_check(const char *id, const struct ctl_ca_family **out)
{
    const struct ctl_ca_family *f = ctl_ca_family_find(id);
    if (!f) {
        return dbt_fail(DBT_E_NOT_FOUND,
                        "unknown CA id \"%s\"; valid ids: dbtls-ca-ecc384-g1, "
                        "dbtls-ca-rsa2048-g1, dbtls-ca-rsa4096-g1 and those imported with "
                        "`dbtls cas import`",
                        id ? id : "");
    }
    if (out) {
        *out = f;
    }
    return DBT_OK;
}

/* ---- sealing -------------------------------------------------------------------------------- */

static dbt_res label_of(const struct dbt_pki_cert *cert, char label[48])
{
    struct dbt_pki_cert_info info;
    dbt_res r = dbt_pki_cert_info(cert, &info);
    if (dbt_ok(r)) {
        snprintf(label, 48, "key:%s", info.sha1);
        dbt_pki_cert_info_cleanup(&info);
    }
    return r;
}

dbt_res ctl_seal(struct dbt_ctl *ctl, const struct dbt_pki_cert *cert,
                 const struct dbt_pki_key *key, uint8_t **blob, size_t *len)
{
    char label[48];
    dbt_res r = label_of(cert, label);
    if (dbt_ok(r)) {
        r = dbt_pki_key_seal(ctl->master, label, key, blob, len);
    }
    return r;
}

/* The same label from the certificate's PEM, without decoding the X.509 (hot on reloads). */
static dbt_res label_of_pem(const char *pem, char label[48])
{
    char sha1[41];
    dbt_res r = dbt_pki_cert_pem_sha1(pem, sha1);
    if (dbt_ok(r)) {
        snprintf(label, 48, "key:%s", sha1);
    }
    return r;
}

static dbt_res unseal_fail(dbt_res r)
{
    if (r.code == DBT_E_CRYPTO || r.code == DBT_E_CORRUPT) {
        return dbt_fail_ctx(r, "cannot decrypt a stored private key (wrong master key?): ");
    }
    return r;
}

/* A blob that does not authenticate may be sealed under a master key rotated since this handle
   loaded its own (master_key.c): read the key again, and if it changed, try once more. */
static bool retry_after_rotation(struct dbt_ctl *ctl, dbt_res r)
{
    return r.code == DBT_E_CRYPTO && !ctl->master_fixed && ctl_master_refresh(ctl);
}

dbt_res ctl_unseal(struct dbt_ctl *ctl, const char *cert_pem, const uint8_t *blob, size_t len,
                   struct dbt_pki_key **key)
{
    char label[48];
    dbt_res r = label_of_pem(cert_pem, label);
    if (dbt_ok(r)) {
        r = dbt_pki_key_unseal(ctl->master, label, blob, len, key);
        if (retry_after_rotation(ctl, r)) {
            r = dbt_pki_key_unseal(ctl->master, label, blob, len, key);
        }
    }
    return dbt_ok(r) ? r : unseal_fail(r);
}

dbt_res ctl_unseal_pem(struct dbt_ctl *ctl, const char *cert_pem, const uint8_t *blob, size_t len,
                       char **key_pem)
{
    char label[48];
    dbt_res r = label_of_pem(cert_pem, label);
    if (dbt_ok(r)) {
        r = dbt_pki_key_unseal_pem(ctl->master, label, blob, len, key_pem);
        if (retry_after_rotation(ctl, r)) {
            r = dbt_pki_key_unseal_pem(ctl->master, label, blob, len, key_pem);
        }
    }
    return dbt_ok(r) ? r : unseal_fail(r);
}

bool ctl_key_opens(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *cert_pem,
                   const uint8_t *blob, size_t len)
{
    char label[48];
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    if (!dbt_ok(label_of_pem(cert_pem, label)) ||
        !dbt_ok(dbt_pki_unseal(master, label, blob, len, &plain, &plain_len))) {
        return false;
    }
    dbt_pki_wipe_free_bytes(plain, plain_len);
    return true;
}

dbt_res ctl_reseal(struct dbt_ctl *ctl, const uint8_t new_master[DBT_PKI_MASTER_KEY_LEN],
                   const char *what, const char *cert_pem, const uint8_t *blob, size_t len,
                   uint8_t **out, size_t *out_len)
{
    char label[48];
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    dbt_res r = label_of_pem(cert_pem, label);
    if (dbt_ok(r)) {
        r = dbt_pki_unseal(ctl->master, label, blob, len, &plain, &plain_len);
    }
    if (dbt_ok(r)) {
        r = dbt_pki_seal(new_master, label, plain, plain_len, out, out_len);
        dbt_pki_wipe_free_bytes(plain, plain_len);
    }
    return dbt_ok(r) ? r : dbt_fail_ctx(unseal_fail(r), "the private key of %s: ", what);
}

/* ---- issuing ------------------------------------------------------------------------------- */

dbt_res ctl_issue_ca(struct ctl_keys *keys, enum dbt_pki_key_type kt, enum dbt_pki_digest dg,
                     const char *cn, int64_t secs, int pathlen, const struct dbt_pki_cert *issuer,
                     const struct dbt_pki_key *issuer_key, struct dbt_pki_cert **cert,
                     struct dbt_pki_key **key)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_key *k = NULL;
    DBT_TRY(ctl_keys_take(keys, kt, &k));
    struct dbt_pki_cert_spec spec = {
        .profile = DBT_PKI_PROFILE_CA,
        .cn = cn,
        .o = "dbtls",
        .validity_secs = secs,
        .pathlen = pathlen,
        .digest = dg,
        .key = k,
        .issuer = issuer,
        .issuer_key = issuer_key,
    };
    DBT_TRY(dbt_pki_cert_issue(&spec, cert));
    *key = k;
    k = NULL;
out:
    dbt_pki_key_free(k);
    return res;
}

static dbt_res put_ca_row(struct dbt_ctl *ctl, const struct ctl_ca_family *fam, const char *region,
                          const struct dbt_pki_cert *cert, const struct dbt_pki_key *key)
{
    dbt_res res = DBT_OK;
    char *pem = NULL;
    uint8_t *blob = NULL;
    size_t blen = 0;
    struct dbt_stmt *s = NULL;
    DBT_TRY(dbt_pki_cert_to_pem(cert, &pem));
    DBT_TRY(ctl_seal(ctl, cert, key, &blob, &blen));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_ADD, &s));
    dbt_stmt_bind_text(s, 1, fam->id);
    dbt_stmt_bind_text(s, 2, region);
    dbt_stmt_bind_text(s, 3, dbt_pki_key_type_name(fam->key_type));
    dbt_stmt_bind_text(s, 4, dbt_pki_digest_name(fam->digest));
    dbt_stmt_bind_text(s, 5, pem);
    dbt_stmt_bind_blob(s, 6, blob, blen);
    dbt_stmt_bind_int(s, 7, dbt_now_unix());
    DBT_TRY(dbt_stmt_exec(s));
out:
    free(pem);
    free(blob);
    return res;
}

static dbt_res make_intermediate(struct dbt_ctl *ctl, const struct ctl_ca_family *fam,
                                 const char *region, const struct dbt_pki_cert *root,
                                 const struct dbt_pki_key *root_key, struct ctl_keys *keys,
                                 struct dbt_pki_cert **cert, struct dbt_pki_key **key)
{
    char *cn = ctl_printf("%s %s", fam->id, region);
    dbt_res r = ctl_issue_ca(keys, fam->key_type, fam->digest, cn, CTL_CA_SECS, 0, root, root_key,
                             cert, key);
    free(cn);
    if (dbt_ok(r)) {
        r = put_ca_row(ctl, fam, region, *cert, *key);
    }
    return r;
}

void ctl_shared_family_keys(const struct ctl_ca_family *fam, struct ctl_keys *keys)
{
    ctl_keys_want(keys, fam->key_type);
    ctl_keys_want(keys, fam->key_type);
}

dbt_res ctl_shared_family_create(struct dbt_ctl *ctl, const struct ctl_ca_family *fam,
                                 const char *region, struct ctl_keys *keys)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *root = NULL, *inter = NULL;
    struct dbt_pki_key *root_key = NULL, *inter_key = NULL;
    char *cn = ctl_printf("%s root", fam->id);
    DBT_TRY(ctl_issue_ca(keys, fam->key_type, fam->digest, cn, CTL_ROOT_SECS, 1, NULL, NULL, &root,
                         &root_key));
    DBT_TRY(put_ca_row(ctl, fam, "", root, root_key));
    DBT_TRY(make_intermediate(ctl, fam, region, root, root_key, keys, &inter, &inter_key));
out:
    free(cn);
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(inter);
    dbt_pki_key_free(root_key);
    dbt_pki_key_free(inter_key);
    return res;
}

/* Loads (ca_id, region) into cert/key/pem; *found=false if there is no such row. */
static dbt_res load_ca_row(struct dbt_ctl *ctl, const char *ca_id, const char *region, bool *found,
                           struct dbt_pki_cert **cert, struct dbt_pki_key **key, char **pem)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    bool row = false;
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_CA_GET, &s));
    dbt_stmt_bind_text(s, 1, ca_id);
    dbt_stmt_bind_text(s, 2, region);
    DBT_TRY(dbt_stmt_step(s, &row));
    *found = row;
    if (!row) {
        goto out;
    }
    const char *p = dbt_stmt_text(s, 4);
    DBT_ENSURE(p, CORRUPT, "CA %s region \"%s\" has no certificate", ca_id, region);
    if (cert) {
        DBT_TRY(dbt_pki_cert_from_pem(p, cert));
    }
    if (key) {
        size_t blen = 0;
        const void *b = dbt_stmt_blob(s, 5, &blen);
        DBT_TRY(ctl_unseal(ctl, p, b, blen, key));
    }
    if (pem) {
        *pem = ctl_strdup(p);
    }
out:
    return res;
}

dbt_res ctl_shared_ca(struct dbt_ctl *ctl, const char *ca_id, const char *region,
                      struct ctl_keys *create, struct dbt_pki_cert **cert, struct dbt_pki_key **key,
                      char **cert_pem)
{
    dbt_res res = DBT_OK;
    struct ctl_ca_family f;
    const struct ctl_ca_family *fam = &f;
    struct dbt_pki_cert *root = NULL, *c = NULL;
    struct dbt_pki_key *root_key = NULL, *k = NULL;
    bool found = false;
    DBT_TRY(ctl_ca_lookup(ctl, ca_id, &f));
    region = ctl_ca_region(fam, region);
    DBT_TRY(load_ca_row(ctl, ca_id, region, &found, cert, key, cert_pem));
    if (found) {
        goto out;
    }
    DBT_ENSURE(create && *region, NOT_FOUND, "CA %s has no intermediate for region \"%s\"", ca_id,
               region);
    DBT_TRY(load_ca_row(ctl, ca_id, "", &found, &root, &root_key, NULL));
    DBT_ENSURE(found, CORRUPT, "the store has no root for CA %s; was `dbtls init` completed?",
               ca_id);
    DBT_TRY(make_intermediate(ctl, fam, region, root, root_key, create, &c, &k));
    DBT_TRY(ctl_event(ctl, "ca.region-create", "ca", "ca=%s region=%s", ca_id, region));
    if (cert_pem) {
        DBT_TRY(dbt_pki_cert_to_pem(c, cert_pem));
    }
    if (cert) {
        *cert = c;
        c = NULL;
    }
    if (key) {
        *key = k;
        k = NULL;
    }
out:
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(c);
    dbt_pki_key_free(root_key);
    dbt_pki_key_free(k);
    return res;
}

static dbt_res leaf_issue(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                          const struct dbt_pki_cert *issuer, const struct dbt_pki_key *issuer_key,
                          enum dbt_pki_digest dg, int64_t secs, struct ctl_keys *keys,
                          struct ctl_slot *row)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_key *k = NULL;
    struct dbt_pki_cert *c = NULL;
    DBT_TRY(ctl_keys_take(keys, CTL_LEAF_KEY, &k));
    struct dbt_pki_cert_spec spec = {
        .profile = DBT_PKI_PROFILE_SERVER,
        .o = "dbtls",
        .validity_secs = secs,
        .pathlen = -1,
        .san = (const char *const *)inst->endpoints,
        .n_san = inst->n_endpoints,
        .digest = dg,
        .key = k,
        .issuer = issuer,
        .issuer_key = issuer_key,
    };
    DBT_TRY(dbt_pki_cert_issue(&spec, &c));
    char *pem = NULL;
    uint8_t *blob = NULL;
    size_t blen = 0;
    DBT_TRY(dbt_pki_cert_to_pem(c, &pem));
    res = ctl_seal(ctl, c, k, &blob, &blen);
    if (!dbt_ok(res)) {
        free(pem);
        goto out;
    }
    free(row->cert_pem);
    free(row->key);
    row->cert_pem = pem;
    row->key = blob;
    row->key_len = blen;
    row->created_at = dbt_now_unix();
out:
    dbt_pki_key_free(k);
    dbt_pki_cert_free(c);
    return res;
}

static int64_t or_default(const struct dbt_ctl_validity *v, bool ca, int64_t def)
{
    if (!v) {
        return def;
    }
    int64_t x = ca ? v->ca_secs : v->leaf_secs;
    return x > 0 ? x : def;
}

dbt_res ctl_build_slot_keys(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                            struct ctl_keys *keys)
{
    dbt_res res = DBT_OK;
    struct ctl_ca_family f;
    const struct ctl_ca_family *fam = &f;
    bool found = true;
    DBT_TRY(ctl_ca_lookup(ctl, inst->ca_id, &f));
    if (strcmp(inst->ca_mode, "per-instance") == 0) {
        ctl_keys_want(keys, fam->key_type);
    } else {
        DBT_TRY(load_ca_row(ctl, inst->ca_id, ctl_ca_region(fam, inst->region), &found, NULL, NULL,
                            NULL));
        if (!found) {
            ctl_keys_want(keys, fam->key_type);
        }
    }
    ctl_keys_want(keys, CTL_LEAF_KEY);
out:
    return res;
}

dbt_res ctl_build_slot(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                       const struct dbt_ctl_validity *v, struct ctl_keys *keys,
                       struct ctl_slot *row)
{
    dbt_res res = DBT_OK;
    struct ctl_ca_family f;
    const struct ctl_ca_family *fam = &f;
    struct dbt_pki_cert *ca = NULL;
    struct dbt_pki_key *ca_key = NULL;
    memset(row, 0, sizeof *row);
    DBT_TRY(ctl_ca_lookup(ctl, inst->ca_id, &f));
    if (strcmp(inst->ca_mode, "per-instance") == 0) {
        char *cn = ctl_printf("dbtls server CA %s", inst->name);
        res = ctl_issue_ca(keys, fam->key_type, fam->digest, cn, or_default(v, true, CTL_CA_SECS),
                           0, NULL, NULL, &ca, &ca_key);
        free(cn);
        DBT_TRY(res);
        DBT_TRY(dbt_pki_cert_to_pem(ca, &row->ca_pem));
        DBT_TRY(ctl_seal(ctl, ca, ca_key, &row->ca_key, &row->ca_key_len));
        /* Like Cloud SQL's per-instance CA, the server cert lives as long as its CA. */
        DBT_TRY(leaf_issue(ctl, inst, ca, ca_key, fam->digest, or_default(v, false, CTL_CA_SECS),
                           keys, row));
    } else {
        DBT_TRY(ctl_shared_ca(ctl, inst->ca_id, inst->region, keys, &ca, &ca_key, NULL));
        row->shared_ca_id = ctl_strdup(inst->ca_id);
        row->shared_region = ctl_strdup(ctl_ca_region(fam, inst->region));
        DBT_TRY(leaf_issue(ctl, inst, ca, ca_key, fam->digest,
                           or_default(v, false, CTL_SERVER_SECS), keys, row));
    }
out:
    if (!dbt_ok(res)) {
        ctl_slot_cleanup(row);
    }
    dbt_pki_cert_free(ca);
    dbt_pki_key_free(ca_key);
    return res;
}

dbt_res ctl_reissue_leaf(struct dbt_ctl *ctl, const struct dbt_ctl_instance *inst,
                         const struct dbt_ctl_validity *v, struct ctl_keys *keys,
                         struct ctl_slot *row)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *ca = NULL;
    struct dbt_pki_key *ca_key = NULL;
    struct ctl_ca_family fam;
    int64_t secs;
    if (row->ca_pem) {
        DBT_TRY(dbt_pki_cert_from_pem(row->ca_pem, &ca));
        DBT_TRY(ctl_unseal(ctl, row->ca_pem, row->ca_key, row->ca_key_len, &ca_key));
        secs = or_default(v, false, CTL_CA_SECS);
    } else {
        DBT_TRY(
            ctl_shared_ca(ctl, row->shared_ca_id, row->shared_region, NULL, &ca, &ca_key, NULL));
        secs = or_default(v, false, CTL_SERVER_SECS);
    }
    /* The digest follows the issuer's family; a per-instance CA keeps the instance's family. */
    DBT_TRY(ctl_ca_lookup(ctl, row->shared_ca_id ? row->shared_ca_id : inst->ca_id, &fam));
    DBT_TRY(leaf_issue(ctl, inst, ca, ca_key, fam.digest, secs, keys, row));
out:
    dbt_pki_cert_free(ca);
    dbt_pki_key_free(ca_key);
    return res;
}

/* ---- client CA and CRL ----------------------------------------------------------------------- */

void ctl_revoked_cleanup(struct ctl_revoked *rv)
{
    for (size_t i = 0; i < rv->n; i++) {
        free(rv->serials[i]);
    }
    free(rv->serials);
    free(rv->list);
    *rv = (struct ctl_revoked){0};
}

dbt_res ctl_revoked_load(struct dbt_ctl *ctl, int64_t inst_id, const char *ca_sha1,
                         struct ctl_revoked *out)
{
    dbt_res res = DBT_OK;
    struct dbt_stmt *s = NULL;
    struct ctl_revoked rv = {0};
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_REVOKE_LIST, &s));
    dbt_stmt_bind_int(s, 1, inst_id);
    dbt_stmt_bind_text(s, 2, ca_sha1);
    for (;;) {
        bool row = false;
        DBT_TRY(dbt_stmt_step(s, &row));
        if (!row) {
            break;
        }
        struct dbt_pki_revoked *nl = realloc(rv.list, (rv.n + 1) * sizeof *nl);
        char **ns = realloc(rv.serials, (rv.n + 1) * sizeof *ns);
        if (nl) {
            rv.list = nl;
        }
        if (ns) {
            rv.serials = ns;
        }
        DBT_ENSURE(nl && ns, NOMEM, "out of memory");
        rv.serials[rv.n] = ctl_strdup(dbt_stmt_text(s, 0));
        rv.list[rv.n].serial = rv.serials[rv.n];
        rv.list[rv.n].revoked_at = dbt_stmt_int(s, 1);
        rv.n++;
    }
    *out = rv;
    rv = (struct ctl_revoked){0};
out:
    ctl_revoked_cleanup(&rv);
    return res;
}

dbt_res ctl_crl_sign(struct dbt_ctl *ctl, const char *ca_pem, const uint8_t *key_blob,
                     size_t key_len, const struct ctl_revoked *rv, int64_t number, char **crl_pem)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *ca = NULL;
    struct dbt_pki_key *key = NULL;
    struct dbt_pki_crl *crl = NULL;
    DBT_TRY(dbt_pki_cert_from_pem(ca_pem, &ca));
    DBT_TRY(ctl_unseal(ctl, ca_pem, key_blob, key_len, &key));
    struct dbt_pki_crl_spec spec = {
        .issuer = ca,
        .issuer_key = key,
        .revoked = rv->list,
        .n_revoked = rv->n,
        .number = (uint64_t)number,
        .digest = DBT_PKI_SHA384,
    };
    DBT_TRY(dbt_pki_crl_build(&spec, &crl));
    DBT_TRY(dbt_pki_crl_to_pem(crl, crl_pem));
out:
    dbt_pki_crl_free(crl);
    dbt_pki_cert_free(ca);
    dbt_pki_key_free(key);
    return res;
}

static dbt_res build_crl(struct dbt_ctl *ctl, int64_t inst_id, const char *ca_pem,
                         const uint8_t *key_blob, size_t key_len, const char *ca_sha1,
                         int64_t number, char **crl_pem)
{
    struct ctl_revoked rv = {0};
    dbt_res res = ctl_revoked_load(ctl, inst_id, ca_sha1, &rv);
    if (dbt_ok(res)) {
        res = ctl_crl_sign(ctl, ca_pem, key_blob, key_len, &rv, number, crl_pem);
    }
    ctl_revoked_cleanup(&rv);
    return res;
}

dbt_res ctl_new_client_ca(struct dbt_ctl *ctl, int64_t inst_id, const char *inst_name,
                          const struct dbt_ctl_validity *v, struct ctl_keys *keys, char **ca_pem,
                          uint8_t **key_blob, size_t *key_len, char **sha1, char **crl_pem)
{
    dbt_res res = DBT_OK;
    struct dbt_pki_cert *ca = NULL;
    struct dbt_pki_key *key = NULL;
    struct dbt_pki_cert_info info = {0};
    char *cn = ctl_printf("dbtls client CA %s", inst_name);
    *ca_pem = NULL;
    *key_blob = NULL;
    *sha1 = NULL;
    *crl_pem = NULL;
    DBT_TRY(ctl_issue_ca(keys, CTL_CLIENT_CA_KEY, DBT_PKI_SHA384, cn,
                         or_default(v, true, CTL_CA_SECS), 0, NULL, NULL, &ca, &key));
    DBT_TRY(dbt_pki_cert_to_pem(ca, ca_pem));
    DBT_TRY(ctl_seal(ctl, ca, key, key_blob, key_len));
    DBT_TRY(dbt_pki_cert_info(ca, &info));
    *sha1 = ctl_strdup(info.sha1);
    DBT_TRY(build_crl(ctl, inst_id, *ca_pem, *key_blob, *key_len, *sha1, 1, crl_pem));
out:
    if (!dbt_ok(res)) {
        free(*ca_pem);
        free(*key_blob);
        free(*sha1);
        free(*crl_pem);
        *ca_pem = NULL;
        *key_blob = NULL;
        *sha1 = NULL;
        *crl_pem = NULL;
    }
    free(cn);
    dbt_pki_cert_info_cleanup(&info);
    dbt_pki_cert_free(ca);
    dbt_pki_key_free(key);
    return res;
}

dbt_res ctl_crl_regen(struct dbt_ctl *ctl, struct ctl_inst *in)
{
    dbt_res res = DBT_OK;
    char *pem = NULL;
    struct dbt_stmt *s = NULL;
    int64_t number = in->crl_number + 1;
    DBT_TRY(build_crl(ctl, in->id, in->client_ca_pem, in->client_ca_key, in->client_ca_key_len,
                      in->client_ca_sha1, number, &pem));
    DBT_TRY(dbt_store_stmt(ctl->st, DBT_SQL_INSTANCE_SET_CRL, &s));
    dbt_stmt_bind_int(s, 1, in->id);
    dbt_stmt_bind_text(s, 2, pem);
    dbt_stmt_bind_int(s, 3, number);
    DBT_TRY(dbt_stmt_exec(s));
    free(in->crl_pem);
    in->crl_pem = pem;
    pem = NULL;
    in->crl_number = number;
out:
    free(pem);
    return res;
}
