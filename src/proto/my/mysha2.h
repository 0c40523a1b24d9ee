/*
 * mysha2.h - the RSA step of caching_sha2_password / sha256_password full authentication, for a
 * front that holds the client's password (it arrived over the client's TLS) but talks to the
 * server over a plain TCP leg, where MySQL refuses a cleartext password: what a MySQL client
 * does itself when it has no TLS (MySQL's mysql_sha2 client plugin, 8.0.5+).
 */
#ifndef DBT_PROTO_MY_MYSHA2_H
#define DBT_PROTO_MY_MYSHA2_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The request for the server's RSA public key (AuthMoreData answer of the client). */
#define DBT_MY_SHA2_REQUEST_PUBLIC_KEY 0x02

/* An encrypted password is at most the RSA modulus: 4096-bit keys and below. */
#define DBT_MY_SHA2_RSA_MAX 512u

/*
 * Encrypts password[0..pw_len) (the client's password with its terminating NUL, as the client
 * sent it) for the server: XORed with the 20-byte scramble repeated, then RSA-OAEP (SHA-1) with
 * the server's public key pem[0..pem_len) (a PEM "PUBLIC KEY", as the server sends it). Writes
 * the ciphertext to out (cap >= DBT_MY_SHA2_RSA_MAX) and its length to *out_len. PROTO when the
 * key is not an RSA public key, INVALID when the password is too long for the key.
 */
dbt_res dbt_my_sha2_rsa_encrypt(const char *pem, size_t pem_len, const uint8_t *password,
                                size_t pw_len, const uint8_t *scramble, size_t scramble_len,
                                uint8_t *out, size_t cap, size_t *out_len) DBT_WUR;

#endif
