/*
 * seal.c - private keys at rest: AES-256-GCM under the store's 32-byte master key, with the
 * caller's label bound as additional authenticated data so a blob only opens where it was
 * written. Also the random-bytes and wipe helpers every holder of key material uses.
 *
 * Blob v1: "DBS" 0x01 | nonce (12) | ciphertext | tag (16). The 4-byte header is authenticated
 * too (AAD = header || label), so a future version cannot be confused with this one.
 */
#include "pki/internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define SEAL_HDR_LEN 4
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16

static const uint8_t seal_hdr[SEAL_HDR_LEN] = {'D', 'B', 'S', 0x01};

dbt_res dbt_pki_random(void *buf, size_t n)
{
    if (n > (size_t)INT32_MAX || RAND_bytes(buf, (int)n) != 1) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot get %zu random bytes", n);
    }
    return DBT_OK;
}

dbt_res dbt_pki_sha256(const struct dbt_pki_span *parts, size_t n, uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int olen = 0;
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        uint64_t len = parts[i].len;
        ok = EVP_DigestUpdate(md, &len, sizeof(len)) == 1 &&
             (len == 0 || EVP_DigestUpdate(md, parts[i].p, parts[i].len) == 1);
    }
    ok = ok && EVP_DigestFinal_ex(md, out, &olen) == 1 && olen == 32;
    EVP_MD_CTX_free(md);
    return ok ? DBT_OK : pki_ossl_fail(DBT_E_CRYPTO, "cannot compute a SHA-256 digest");
}

void dbt_pki_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        OPENSSL_cleanse(p, n);
    }
}

void dbt_pki_wipe_free(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void dbt_pki_wipe_free_bytes(void *p, size_t n)
{
    if (p != NULL) {
        dbt_pki_wipe(p, n);
        free(p);
    }
}

/* Runs AES-256-GCM in either direction over in[0..n) into out; tag is written or checked. */
static dbt_res gcm(bool enc, const uint8_t key[DBT_PKI_MASTER_KEY_LEN], const uint8_t *nonce,
                   const char *label, const uint8_t *in, size_t n, uint8_t *out, uint8_t *tag)
{
    dbt_res res = DBT_OK;
    int len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    DBT_ENSURE(ctx != NULL, NOMEM, "cannot allocate a cipher context");
    DBT_ENSURE(n <= (size_t)INT32_MAX, LIMIT, "data too large to seal (%zu bytes)", n);
    size_t label_len = strlen(label);
    DBT_ENSURE(label_len <= (size_t)INT32_MAX, LIMIT, "label too long");

    if (!EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc ? 1 : 0) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) ||
        !EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc ? 1 : 0) ||
        !EVP_CipherUpdate(ctx, NULL, &len, seal_hdr, SEAL_HDR_LEN) ||
        (label_len > 0 &&
         !EVP_CipherUpdate(ctx, NULL, &len, (const uint8_t *)label, (int)label_len))) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "AES-256-GCM setup failed");
        goto out;
    }
    if (n > 0 && !EVP_CipherUpdate(ctx, out, &len, in, (int)n)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "AES-256-GCM failed");
        goto out;
    }
    if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "AES-256-GCM tag setup failed");
        goto out;
    }
    if (EVP_CipherFinal_ex(ctx, out + n, &len) != 1) {
        ERR_clear_error();
        res = dbt_fail(DBT_E_CRYPTO,
                       "sealed data does not authenticate for \"%s\" (wrong master key, data "
                       "moved from another object, or modified)",
                       label);
        goto out;
    }
    if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "AES-256-GCM tag failed");
        goto out;
    }
out:
    EVP_CIPHER_CTX_free(ctx);
    return res;
}

dbt_res dbt_pki_seal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                     const void *plain, size_t n, uint8_t **out, size_t *out_len)
{
    dbt_res res = DBT_OK;
    uint8_t *blob = NULL;
    if (label == NULL) {
        label = "";
    }
    DBT_ENSURE(n <= SIZE_MAX - DBT_PKI_SEAL_OVERHEAD, LIMIT, "data too large to seal");
    size_t total = n + DBT_PKI_SEAL_OVERHEAD;
    blob = malloc(total);
    DBT_ENSURE(blob != NULL, NOMEM, "out of memory sealing %zu bytes", n);
    memcpy(blob, seal_hdr, SEAL_HDR_LEN);
    uint8_t *nonce = blob + SEAL_HDR_LEN;
    uint8_t *ct = nonce + SEAL_NONCE_LEN;
    DBT_TRY(dbt_pki_random(nonce, SEAL_NONCE_LEN));
    DBT_TRY(gcm(true, master, nonce, label, plain, n, ct, ct + n));
    *out = blob;
    *out_len = total;
    blob = NULL;
out:
    free(blob);
    return res;
}

dbt_res dbt_pki_unseal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                       const uint8_t *blob, size_t blob_len, uint8_t **out, size_t *out_len)
{
    dbt_res res = DBT_OK;
    uint8_t *plain = NULL;
    size_t n = 0;
    if (label == NULL) {
        label = "";
    }
    DBT_ENSURE(blob != NULL && blob_len >= DBT_PKI_SEAL_OVERHEAD, CORRUPT,
               "sealed data for \"%s\" is truncated (%zu bytes)", label, blob_len);
    DBT_ENSURE(memcmp(blob, seal_hdr, 3) == 0, CORRUPT,
               "sealed data for \"%s\" was not written by dbtls (bad magic)", label);
    DBT_ENSURE(blob[3] == seal_hdr[3], CORRUPT, "sealed data for \"%s\" has unsupported version %u",
               label, (unsigned)blob[3]);
    n = blob_len - DBT_PKI_SEAL_OVERHEAD;
    plain = malloc(n > 0 ? n : 1);
    DBT_ENSURE(plain != NULL, NOMEM, "out of memory unsealing %zu bytes", n);
    const uint8_t *nonce = blob + SEAL_HDR_LEN;
    const uint8_t *ct = nonce + SEAL_NONCE_LEN;
    uint8_t tag[SEAL_TAG_LEN];
    memcpy(tag, ct + n, SEAL_TAG_LEN);
    DBT_TRY(gcm(false, master, nonce, label, ct, n, plain, tag));
    *out = plain;
    *out_len = n;
    plain = NULL;
out:
    dbt_pki_wipe_free_bytes(plain, n);
    return res;
}

dbt_res dbt_pki_key_seal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                         const struct dbt_pki_key *key, uint8_t **out, size_t *out_len)
{
    dbt_res res = DBT_OK;
    unsigned char *der = NULL;
    int len = 0;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key->pk);
    if (p8 == NULL) {
        return pki_ossl_fail(DBT_E_CRYPTO, "cannot encode private key as PKCS#8");
    }
    len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    if (len <= 0) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot encode private key as PKCS#8 DER");
        goto out;
    }
    DBT_TRY(dbt_pki_seal(master, label, der, (size_t)len, out, out_len));
out:
    if (der != NULL) {
        OPENSSL_clear_free(der, (size_t)len);
    }
    PKCS8_PRIV_KEY_INFO_free(p8);
    return res;
}

/* Opens a blob and checks that it holds a PKCS#8 PrivateKeyInfo (ASN.1 only: no key decoding). */
static dbt_res unseal_p8(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                         const uint8_t *blob, size_t blob_len, PKCS8_PRIV_KEY_INFO **out)
{
    uint8_t *der = NULL;
    size_t n = 0;
    dbt_res res = dbt_pki_unseal(master, label, blob, blob_len, &der, &n);
    if (!dbt_ok(res)) {
        return res;
    }
    const unsigned char *p = der;
    *out = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)n);
    if (*out == NULL || p != der + n) {
        PKCS8_PRIV_KEY_INFO_free(*out);
        *out = NULL;
        res = pki_ossl_fail(DBT_E_CORRUPT, "sealed data for \"%s\" is not a private key",
                            label ? label : "");
    }
    dbt_pki_wipe_free_bytes(der, n);
    return res;
}

dbt_res dbt_pki_key_unseal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                           const uint8_t *blob, size_t blob_len, struct dbt_pki_key **out)
{
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    dbt_res res = unseal_p8(master, label, blob, blob_len, &p8);
    if (!dbt_ok(res)) {
        return res;
    }
    EVP_PKEY *pk = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (pk == NULL) {
        return pki_ossl_fail(DBT_E_CORRUPT, "sealed key for \"%s\" cannot be decoded",
                             label ? label : "");
    }
    return pki_key_wrap(pk, out);
}

/*
 * The PEM of a sealed key without decoding the key itself: PKCS#8 DER in base64 is what
 * PEM_write_bio_PrivateKey would write ("BEGIN PRIVATE KEY"). OpenSSL 3.0's key decoders cost
 * ≈ 1 ms a key, paid again when the TLS context loads the PEM (which checks the key against its
 * certificate): a dbtlsd with a fleet of instances reloads faster without the first decode.
 */
dbt_res dbt_pki_key_unseal_pem(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                               const uint8_t *blob, size_t blob_len, char **out_pem)
{
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    dbt_res res = unseal_p8(master, label, blob, blob_len, &p8);
    if (!dbt_ok(res)) {
        return res;
    }
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL) {
        res = pki_ossl_fail(DBT_E_NOMEM, "cannot allocate a BIO");
    } else if (!PEM_write_bio_PKCS8_PRIV_KEY_INFO(bio, p8)) {
        res = pki_ossl_fail(DBT_E_CRYPTO, "cannot encode private key as PEM");
    } else {
        res = pki_bio_to_secret_str(bio, out_pem);
    }
    BIO_free(bio);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return res;
}
