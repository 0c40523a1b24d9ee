/*
 * internal.h - what the files of src/pki share and nobody else sees: the opaque handles of pki.h
 * as thin wrappers over OpenSSL objects, the helper that turns OpenSSL's error queue into a
 * dbt_res with a message, and small conversions (digests, ASN.1 times, memory BIOs).
 */
#ifndef DBT_PKI_INTERNAL_H
#define DBT_PKI_INTERNAL_H

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"

struct dbt_pki_key {
    EVP_PKEY *pk;
};

struct dbt_pki_cert {
    X509 *x;
};

struct dbt_pki_crl {
    X509_CRL *c;
};

/*
 * Like dbt_fail, then appends ": " and the reasons left in OpenSSL's error queue (which it
 * drains), so the user sees e.g. `cannot parse certificate PEM: no start line`. With an empty
 * queue the message is the formatted text alone.
 */
dbt_res pki_ossl_fail(enum dbt_err code, const char *fmt, ...) DBT_PRINTF(2, 3);

/* Takes ownership of pk (freed on failure). */
dbt_res pki_key_wrap(EVP_PKEY *pk, struct dbt_pki_key **out) DBT_WUR;
/* Takes ownership of x (freed on failure). */
dbt_res pki_cert_wrap(X509 *x, struct dbt_pki_cert **out) DBT_WUR;
/* Takes ownership of c (freed on failure). */
dbt_res pki_crl_wrap(X509_CRL *c, struct dbt_pki_crl **out) DBT_WUR;

const EVP_MD *pki_md(enum dbt_pki_digest d);

/* ASN.1 time -> unix seconds. INVALID if the time is malformed. */
dbt_res pki_time_to_unix(const ASN1_TIME *t, int64_t *out) DBT_WUR;

/* The bytes written to a memory BIO as a malloc'd NUL-terminated string (free()). */
dbt_res pki_bio_to_str(BIO *bio, char **out) DBT_WUR;
/* Same, for secrets: the copy is made with the same care and the caller wipes it. */
dbt_res pki_bio_to_bytes(BIO *bio, uint8_t **out, size_t *out_len) DBT_WUR;
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void pki_hex_lower(const unsigned char *p, size_t n, char *out);
/* The BIO's bytes as a NUL-terminated string, for key material: wiped if it cannot be made. */
dbt_res pki_bio_to_secret_str(BIO *bio, char **out) DBT_WUR;

/* A read-only memory BIO over a NUL-terminated string. */
BIO *pki_bio_str(const char *s);

/* Password callback that refuses (never prompts on a terminal). */
int pki_no_password_cb(char *buf, int size, int rwflag, void *u);

/* X509_NAME in RFC 2253 one-line form, malloc'd. */
dbt_res pki_name_rfc2253(const X509_NAME *name, char **out) DBT_WUR;

#endif
