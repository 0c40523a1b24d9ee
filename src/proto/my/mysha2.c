/*
 * mysha2.c - see mysha2.h. OpenSSL does the RSA; this file only shapes the input as the server
 * expects it and turns OpenSSL's failures into one line.
 */
#include "proto/my/mysha2.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>

/* OAEP with SHA-1 takes 2 * 20 + 2 bytes of the modulus. */
#define OAEP_SHA1_OVERHEAD 42

dbt_res dbt_my_sha2_rsa_encrypt(const char *pem, size_t pem_len, const uint8_t *password,
                                size_t pw_len, const uint8_t *scramble, size_t scramble_len,
                                uint8_t *out, size_t cap, size_t *out_len)
{
    dbt_res res = DBT_OK;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t *mixed = NULL;
    DBT_ENSURE(scramble_len > 0, INVALID, "no scramble to mix the password with");
    DBT_ENSURE(pem_len > 0 && pem_len <= 16384, PROTO, "the server's public key is %s",
               pem_len == 0 ? "empty" : "too long");
    BIO *b = BIO_new_mem_buf(pem, (int)pem_len);
    DBT_ENSURE(b != NULL, NOMEM, "out of memory");
    key = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    ERR_clear_error();
    DBT_ENSURE(key != NULL, PROTO, "the server's public key is not a PEM public key");
    DBT_ENSURE(EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA, PROTO,
               "the server's public key is not an RSA key");
    size_t mod = (size_t)EVP_PKEY_get_size(key);
    DBT_ENSURE(mod <= cap && mod <= DBT_MY_SHA2_RSA_MAX, PROTO,
               "the server's RSA key is larger than 4096 bits");
    DBT_ENSURE(pw_len + OAEP_SHA1_OVERHEAD <= mod, INVALID,
               "the password is too long for the server's %zu-bit RSA key", mod * 8);
    mixed = malloc(pw_len);
    DBT_ENSURE(mixed != NULL, NOMEM, "out of memory");
    for (size_t i = 0; i < pw_len; i++) {
        mixed[i] = password[i] ^ scramble[i % scramble_len];
    }
    ctx = EVP_PKEY_CTX_new(key, NULL);
    size_t n = cap;
    if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_encrypt(ctx, out, &n, mixed, pw_len) <= 0) {
        ERR_clear_error();
        DBT_BAIL(CRYPTO, "RSA encryption with the server's public key failed");
    }
    *out_len = n;
out:
    if (mixed != NULL) {
        OPENSSL_cleanse(mixed, pw_len);
        free(mixed);
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return res;
}
