/*
 * key.c - key pairs: the four key types dbtls issues (RSA-2048/4096, ECDSA P-256/P-384), their
 * generation, and unencrypted PKCS#8 PEM in and out (what the daemon and psql's sslkey read).
 * Key PEM leaves through a secure-memory BIO so no stray copy of the key is left on the heap.
 */
#include "pki/internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

static const struct {
    const char *name;
    const char *label;
} key_types[] = {
    [DBT_PKI_KEY_RSA2048] = {"rsa2048", "RSA-2048"},
    [DBT_PKI_KEY_RSA4096] = {"rsa4096", "RSA-4096"},
    [DBT_PKI_KEY_EC256] = {"ec256", "EC P-256"},
    [DBT_PKI_KEY_EC384] = {"ec384", "EC P-384"},
};

dbt_res dbt_pki_key_type_parse(const char *s, enum dbt_pki_key_type *out)
{
    for (size_t i = 0; s != NULL && i < DBT_ARRAY_LEN(key_types); i++) {
        if (strcmp(s, key_types[i].name) == 0) {
            *out = (enum dbt_pki_key_type)i;
            return DBT_OK;
        }
    }
    return dbt_fail(DBT_E_INVALID,
                    "unknown key type \"%s\" (expected rsa2048, rsa4096, ec256 or ec384)",
                    s ? s : "");
}

const char *dbt_pki_key_type_name(enum dbt_pki_key_type t)
{
    return (size_t)t < DBT_ARRAY_LEN(key_types) ? key_types[t].name : "unknown";
}

const char *dbt_pki_key_type_label(enum dbt_pki_key_type t)
{
    return (size_t)t < DBT_ARRAY_LEN(key_types) ? key_types[t].label : "unknown";
}

dbt_res dbt_pki_key_generate(enum dbt_pki_key_type t, struct dbt_pki_key **out)
{
    EVP_PKEY *pk = NULL;
    switch (t) {
    case DBT_PKI_KEY_RSA2048:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        break;
    case DBT_PKI_KEY_RSA4096:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
        break;
    case DBT_PKI_KEY_EC256:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case DBT_PKI_KEY_EC384:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    default:
        return dbt_fail(DBT_E_INVALID, "unknown key type %d", (int)t);
    }
    if (pk == NULL) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot generate a %s key", key_types[t].label);
    }
    return pki_key_wrap(pk, out);
}

void dbt_pki_key_free(struct dbt_pki_key *key)
{
    if (key != NULL) {
        EVP_PKEY_free(key->pk);
        free(key);
    }
}

/* "prime256v1" / "P-256" style group name of an EC key -> key type. */
static bool ec_type(EVP_PKEY *pk, enum dbt_pki_key_type *out)
{
    char group[64];
    size_t len = 0;
    if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &len)) {
        ERR_clear_error();
        return false;
    }
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef) {
        nid = EC_curve_nist2nid(group);
    }
    if (nid == NID_X9_62_prime256v1) {
        *out = DBT_PKI_KEY_EC256;
        return true;
    }
    if (nid == NID_secp384r1) {
        *out = DBT_PKI_KEY_EC384;
        return true;
    }
    return false;
}

dbt_res dbt_pki_key_type_of(const struct dbt_pki_key *key, enum dbt_pki_key_type *out)
{
    EVP_PKEY *pk = key->pk;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits == 2048) {
            *out = DBT_PKI_KEY_RSA2048;
            return DBT_OK;
        }
        if (bits == 4096) {
            *out = DBT_PKI_KEY_RSA4096;
            return DBT_OK;
        }
        return dbt_fail(DBT_E_INVALID, "RSA-%d keys are not supported (use 2048 or 4096 bits)",
                        bits);
    }
    if (EVP_PKEY_is_a(pk, "EC") && ec_type(pk, out)) {
        return DBT_OK;
    }
    return dbt_fail(DBT_E_INVALID, "%s keys are not supported (use RSA-2048/4096, EC P-256/P-384)",
                    EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
}

dbt_res pki_bio_to_secret_str(BIO *bio, char **out)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    dbt_res res = pki_bio_to_bytes(bio, &bytes, &n);
    if (!dbt_ok(res)) {
        return res;
    }
    char *s = realloc(bytes, n + 1);
    if (s == NULL) {
        dbt_pki_wipe_free_bytes(bytes, n);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    s[n] = '\0';
    *out = s;
    return DBT_OK;
}

dbt_res dbt_pki_key_to_pem(const struct dbt_pki_key *key, char **out_pem)
{
    dbt_res res = DBT_OK;
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    /* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in OpenSSL 3. */
    if (!PEM_write_bio_PrivateKey(bio, key->pk, NULL, NULL, 0, NULL, NULL)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot encode private key as PEM");
    } else {
        res = pki_bio_to_secret_str(bio, out_pem);
    }
    BIO_free(bio);
    return res;
}

/* Key types a client certificate may certify (what libpq and the MySQL clients can use). */
static dbt_res pubkey_check(EVP_PKEY *pk)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < 2048 || bits > 8192) {
            return dbt_fail(DBT_E_INVALID, "an RSA key of %d bits is not accepted (2048 to 8192)",
                            bits);
        }
        return DBT_OK;
    }
    if (EVP_PKEY_is_a(pk, "ED25519")) {
        return DBT_OK;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char curve[64] = "";
        size_t n = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                           &n) &&
            (strcmp(curve, "prime256v1") == 0 || strcmp(curve, "secp384r1") == 0 ||
             strcmp(curve, "secp521r1") == 0)) {
            return DBT_OK;
        }
        return dbt_fail(DBT_E_INVALID,
                        "an EC key on curve \"%s\" is not accepted (P-256, P-384 or P-521)",
                        curve[0] ? curve : "unnamed");
    }
    return dbt_fail(DBT_E_INVALID, "a %s key is not accepted (EC P-256/P-384/P-521, RSA, Ed25519)",
                    EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
}

dbt_res dbt_pki_pubkey_from_pem(const char *pem, struct dbt_pki_key **out)
{
    *out = NULL;
    bool csr = pem != NULL && strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----") != NULL;
    if (pem == NULL || (!csr && strstr(pem, "-----BEGIN PUBLIC KEY-----") == NULL)) {
        return dbt_fail(DBT_E_INVALID, "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\") "
                                       "or certificate request");
    }
    BIO *bio = pki_bio_str(pem);
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    EVP_PKEY *pk = NULL;
    if (csr) {
        X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (req == NULL) {
            return pki_ossl_fail(DBT_E_INVALID, "cannot parse the certificate request");
        }
        pk = X509_REQ_get_pubkey(req);
        if (pk == NULL || X509_REQ_verify(req, pk) != 1) {
            EVP_PKEY_free(pk);
            X509_REQ_free(req);
            return pki_ossl_fail(DBT_E_INVALID,
                                 "the certificate request's signature does not verify");
        }
        X509_REQ_free(req);
    } else {
        pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (pk == NULL) {
            return pki_ossl_fail(DBT_E_INVALID, "cannot parse the public key PEM");
        }
    }
    ERR_clear_error();
    dbt_res r = pubkey_check(pk);
    if (!dbt_ok(r)) {
        EVP_PKEY_free(pk);
        return r;
    }
    return pki_key_wrap(pk, out);
}

dbt_res dbt_pki_key_from_pem(const char *pem, struct dbt_pki_key **out)
{
    if (pem == NULL || strstr(pem, "-----BEGIN") == NULL) {
        return dbt_fail(DBT_E_INVALID, "not a PEM private key (no \"-----BEGIN\" line)");
    }
    if (strstr(pem, "ENCRYPTED") != NULL) {
        return dbt_fail(DBT_E_INVALID, "encrypted private keys are not accepted here");
    }
    BIO *bio = pki_bio_str(pem);
    if (bio == NULL) {
        return pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    }
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, pki_no_password_cb, NULL);
    BIO_free(bio);
    if (pk == NULL) {
        return pki_ossl_fail(DBT_E_INVALID, "cannot parse private key PEM");
    }
    ERR_clear_error();
    return pki_key_wrap(pk, out);
}
