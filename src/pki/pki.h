/*
 * pki.h - the certificate authority of dbtls: keys, X.509 certificates, CRLs, PKCS#7 and PKCS#12
 * bundles, sealed (encrypted) private keys, and a verification helper. This is the only layer
 * that builds X.509 objects; it sits on base and OpenSSL 3 and is used by ctl (store of CAs,
 * slots, client certificates) and cli. OpenSSL types never leave this header: keys, certificates
 * and CRLs are opaque handles, everything else is strings, bytes and integers.
 *
 * Conventions for every function below:
 * - Results are dbt_res; on failure dbt_errmsg() holds one line naming what failed and why, with
 *   OpenSSL's reason appended where OpenSSL failed. Output pointers are written only on success.
 * - Handles returned through an out pointer belong to the caller and are released with the
 *   matching _free (which accepts NULL). Input handles are borrowed for the call only.
 * - Strings/bytes returned through char ** / uint8_t ** are malloc'd and belong to the caller:
 *   free() for public data (certificates, CRLs, bundles), dbt_pki_wipe_free() /
 *   dbt_pki_wipe_free_bytes() for anything that holds private key material.
 * - Error codes: INVALID for bad arguments or input (bad PEM, bad name, bad endpoint, a
 *   certificate that does not verify), CRYPTO for a cryptographic operation that failed or a
 *   sealed blob that does not authenticate (wrong master key, tampered blob, wrong label),
 *   NOMEM for allocation failures.
 * - All functions are thread-safe (no global state beyond OpenSSL's).
 */
#ifndef DBT_PKI_PKI_H
#define DBT_PKI_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_pki_key;  /* a key pair (private + public) */
struct dbt_pki_cert; /* one X.509 certificate */
struct dbt_pki_crl;  /* one X.509 CRL */

/* ---------------------------------------------------------------------------------------------
 * Keys (key.c)
 */

enum dbt_pki_key_type {
    DBT_PKI_KEY_RSA2048,
    DBT_PKI_KEY_RSA4096,
    DBT_PKI_KEY_EC256, /* ECDSA P-256 (prime256v1) */
    DBT_PKI_KEY_EC384, /* ECDSA P-384 (secp384r1) */
};

/* "rsa2048" | "rsa4096" | "ec256" | "ec384" -> type. INVALID (listing the accepted names) else. */
dbt_res dbt_pki_key_type_parse(const char *s, enum dbt_pki_key_type *out) DBT_WUR;
/* The name dbt_pki_key_type_parse accepts ("ec256"); never NULL. */
const char *dbt_pki_key_type_name(enum dbt_pki_key_type t);
/* Human algorithm name as shown in listings: "RSA-2048", "RSA-4096", "EC P-256", "EC P-384". */
const char *dbt_pki_key_type_label(enum dbt_pki_key_type t);

/* Generates a fresh key pair. CRYPTO on failure. RSA-4096 takes ~0.5-2 s. */
dbt_res dbt_pki_key_generate(enum dbt_pki_key_type t, struct dbt_pki_key **out) DBT_WUR;
void dbt_pki_key_free(struct dbt_pki_key *key);
/* The type of a key (INVALID for a key of a kind dbtls does not issue, e.g. RSA-3072). */
dbt_res dbt_pki_key_type_of(const struct dbt_pki_key *key, enum dbt_pki_key_type *out) DBT_WUR;

/*
 * Unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), what the daemon and psql's sslkey
 * take. *out_pem holds key material: release it with dbt_pki_wipe_free().
 */
dbt_res dbt_pki_key_to_pem(const struct dbt_pki_key *key, char **out_pem) DBT_WUR;
/*
 * Parses an unencrypted private key PEM (PKCS#8, or traditional "RSA/EC PRIVATE KEY"). INVALID
 * for anything else, including encrypted PEM and a public key alone.
 */
dbt_res dbt_pki_key_from_pem(const char *pem, struct dbt_pki_key **out) DBT_WUR;
/*
 * The public key a client wants certified, from a PEM public key ("-----BEGIN PUBLIC KEY-----",
 * what `openssl pkey -pubout` writes) or a certificate request ("CERTIFICATE REQUEST", whose
 * signature must verify: the requester holds the private key). Only the public half is set:
 * usable as dbt_pki_cert_spec.key, never for signing. Accepted: EC on P-256/P-384/P-521, RSA of
 * 2048 to 8192 bits, Ed25519; anything else INVALID with the reason.
 */
dbt_res dbt_pki_pubkey_from_pem(const char *pem, struct dbt_pki_key **out) DBT_WUR;

/* ---------------------------------------------------------------------------------------------
 * Sealed private keys for the store (seal.c)
 *
 * AES-256-GCM under a 32-byte master key with a random 12-byte nonce. The caller's label (e.g.
 * "ca:dbtls-ca-ecc384-g1:root" or an object id) is bound as additional authenticated data, so a
 * blob copied onto another row does not decrypt. Blob layout, version 1:
 *   "DBS" 0x01 | nonce (12) | ciphertext (= plaintext length) | GCM tag (16)
 * The plaintext of a sealed key is its PKCS#8 DER.
 */

#define DBT_PKI_MASTER_KEY_LEN 32
#define DBT_PKI_SEAL_OVERHEAD (4 + 12 + 16)

/* Seals n bytes. *out (n + DBT_PKI_SEAL_OVERHEAD bytes) is ciphertext: release with free(). */
dbt_res dbt_pki_seal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                     const void *plain, size_t n, uint8_t **out, size_t *out_len) DBT_WUR;
/*
 * Opens a blob made by dbt_pki_seal. CORRUPT when the blob is not a dbtls blob (too short,
 * unknown magic or version); CRYPTO when it does not authenticate (wrong master key, wrong label,
 * any modified byte). *out holds secrets: release with dbt_pki_wipe_free_bytes(*out, *out_len).
 */
dbt_res dbt_pki_unseal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                       const uint8_t *blob, size_t blob_len, uint8_t **out,
                       size_t *out_len) DBT_WUR;
/* dbt_pki_seal of the key's PKCS#8 DER; *out is released with free(). */
dbt_res dbt_pki_key_seal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                         const struct dbt_pki_key *key, uint8_t **out, size_t *out_len) DBT_WUR;
/* dbt_pki_unseal + parse; errors as dbt_pki_unseal (CORRUPT if the plaintext is not a key). */
dbt_res dbt_pki_key_unseal(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                           const uint8_t *blob, size_t blob_len, struct dbt_pki_key **out) DBT_WUR;
/* Unseals straight to unencrypted PKCS#8 PEM (for the runtime snapshot); dbt_pki_wipe_free it. */
dbt_res dbt_pki_key_unseal_pem(const uint8_t master[DBT_PKI_MASTER_KEY_LEN], const char *label,
                               const uint8_t *blob, size_t blob_len, char **out_pem) DBT_WUR;

/* One piece of input to dbt_pki_sha256; p may be NULL when len is 0. */
struct dbt_pki_span {
    const void *p;
    size_t len;
};
/* SHA-256 of the pieces in order, each preceded by its length, so that ("ab", "c") and ("a",
   "bc") differ. CRYPTO on failure. */
dbt_res dbt_pki_sha256(const struct dbt_pki_span *parts, size_t n, uint8_t out[32]) DBT_WUR;

/* Cryptographically secure random bytes (e.g. a new master key). CRYPTO on failure. */
dbt_res dbt_pki_random(void *buf, size_t n) DBT_WUR;
/* Overwrites n bytes in a way the compiler cannot drop. NULL is fine. */
void dbt_pki_wipe(void *p, size_t n);
/* Wipes a NUL-terminated string (e.g. a key PEM) then frees it. NULL is fine. */
void dbt_pki_wipe_free(char *s);
/* Wipes n bytes then frees them. NULL is fine. */
void dbt_pki_wipe_free_bytes(void *p, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Names (names.c)
 */

enum dbt_pki_endpoint_kind {
    DBT_PKI_ENDPOINT_INVALID,
    DBT_PKI_ENDPOINT_DNS,  /* RFC 1123 host name, optionally "*." + name */
    DBT_PKI_ENDPOINT_IPV4, /* dotted quad, as inet_pton(AF_INET) takes it */
    DBT_PKI_ENDPOINT_IPV6, /* as inet_pton(AF_INET6) takes it, no brackets, no zone */
};

/*
 * Classifies an endpoint. A DNS name: 1..253 characters, labels of 1..63 characters of
 * [A-Za-z0-9-] not starting or ending with '-'; an optional leading "*." followed by at least
 * two labels; no trailing dot (certificates carry names without it); the last label not all
 * digits (that would be a malformed IPv4 address). An IP is detected first.
 */
enum dbt_pki_endpoint_kind dbt_pki_endpoint_kind(const char *s);
bool dbt_pki_valid_dns_name(const char *s);
bool dbt_pki_valid_ip(const char *s);
/* OK or INVALID: `endpoint "x" is not a valid DNS name or IP address` (with the reason). */
dbt_res dbt_pki_check_endpoint(const char *s) DBT_WUR;

/* Client certificate names: 1..64 characters of [A-Za-z0-9._ -]. */
bool dbt_pki_valid_client_name(const char *s);
/* OK or INVALID: `client certificate name "x" is invalid: ...` (why). */
dbt_res dbt_pki_check_client_name(const char *s) DBT_WUR;

/* ---------------------------------------------------------------------------------------------
 * Certificates (cert.c issue, certio.c PEM/DER, info.c inspection)
 */

enum dbt_pki_digest {
    DBT_PKI_SHA256,
    DBT_PKI_SHA384,
};
/* "sha256" | "sha384" (also "SHA-256", "SHA-384"). */
dbt_res dbt_pki_digest_parse(const char *s, enum dbt_pki_digest *out) DBT_WUR;
const char *dbt_pki_digest_name(enum dbt_pki_digest d); /* "sha256" */

/*
 * What a certificate is for; decides basicConstraints, keyUsage and extKeyUsage:
 *   CA:     basicConstraints critical CA:TRUE(,pathlen:N); keyUsage critical keyCertSign, cRLSign;
 *           no EKU.
 *   SERVER: basicConstraints critical CA:FALSE; keyUsage critical digitalSignature
 *           (+keyEncipherment for an RSA key); EKU serverAuth; SAN from spec->san (required).
 *   CLIENT: basicConstraints critical CA:FALSE; keyUsage critical digitalSignature; EKU
 *           clientAuth; SAN only if spec->san is given.
 * Every certificate: v3, 128-bit random positive serial, subjectKeyIdentifier and
 * authorityKeyIdentifier (keyid; on a self-signed CA it equals its own SKI, as `openssl req
 * -x509` does).
 */
enum dbt_pki_profile {
    DBT_PKI_PROFILE_CA,
    DBT_PKI_PROFILE_SERVER,
    DBT_PKI_PROFILE_CLIENT,
};

#define DBT_PKI_BACKDATE_SECS 300 /* notBefore = now - 5 minutes, for clock skew */

struct dbt_pki_cert_spec {
    enum dbt_pki_profile profile;
    /* Subject CN, at most 64 characters. SERVER: NULL means san[0] (the first endpoint), or no
     * CN when san[0] is longer than 64 (the SAN is then marked critical if the subject is
     * empty, RFC 5280 4.2.1.6). CA/CLIENT: required. */
    const char *cn;
    const char *o;  /* optional organization */
    const char *ou; /* optional organizational unit */
    const char *c;  /* optional 2-letter country code */
    /* Validity from `now` in seconds (> 0). notAfter = now + validity_secs, clamped to the
     * issuer's notAfter; notBefore = now - DBT_PKI_BACKDATE_SECS, never before the issuer's. */
    int64_t validity_secs;
    /* CA only: pathLenConstraint (>= 0), or -1 for none. Ignored for leaves. */
    int pathlen;
    /* Endpoints for subjectAltName: each a DNS name (dNSName) or IPv4/IPv6 (iPAddress),
     * detected with dbt_pki_endpoint_kind; an invalid one fails with INVALID. */
    const char *const *san;
    size_t n_san;
    enum dbt_pki_digest digest;    /* signature digest (ECDSA or RSA PKCS#1 v1.5) */
    const struct dbt_pki_key *key; /* subject key pair (its public half is certified) */
    /* Issuer certificate and its key; both NULL = self-signed with `key` (CA profile only). */
    const struct dbt_pki_cert *issuer;
    const struct dbt_pki_key *issuer_key;
    /* Issue time (unix seconds); 0 = now. Lets tests make already-expired or future certs. */
    int64_t now;
};

/*
 * Issues (builds and signs) a certificate. INVALID for a bad spec: missing CN/key, validity <= 0,
 * SERVER without SAN, invalid endpoint, issuer without issuer_key (or the reverse), an issuer
 * that is not a CA, an issuer_key that does not match the issuer, a self-signed leaf, an issuer
 * already expired at `now`. CRYPTO if OpenSSL fails to sign.
 */
dbt_res dbt_pki_cert_issue(const struct dbt_pki_cert_spec *spec, struct dbt_pki_cert **out) DBT_WUR;
void dbt_pki_cert_free(struct dbt_pki_cert *cert);
/* A new reference to the same certificate (cheap); free it with dbt_pki_cert_free. */
struct dbt_pki_cert *dbt_pki_cert_ref(const struct dbt_pki_cert *cert);

/* PEM ("-----BEGIN CERTIFICATE-----\n...\n"); free() the result. */
dbt_res dbt_pki_cert_to_pem(const struct dbt_pki_cert *cert, char **out_pem) DBT_WUR;
/* DER bytes; free() the result. */
dbt_res dbt_pki_cert_to_der(const struct dbt_pki_cert *cert, uint8_t **out,
                            size_t *out_len) DBT_WUR;
/* The first certificate of a PEM text. INVALID if there is none or it does not parse. */
dbt_res dbt_pki_cert_from_pem(const char *pem, struct dbt_pki_cert **out) DBT_WUR;
dbt_res dbt_pki_cert_from_der(const uint8_t *der, size_t len, struct dbt_pki_cert **out) DBT_WUR;
/* The SHA-1 fingerprint (sha1Fingerprint form) of the first certificate of a PEM text, from
   its DER without decoding the X.509: for labels on hot paths. INVALID if there is none. */
dbt_res dbt_pki_cert_pem_sha1(const char *pem, char out[41]) DBT_WUR;

/* A list of certificates (bundles, chains). Free with dbt_pki_certs_free. */
struct dbt_pki_certs {
    struct dbt_pki_cert **v;
    size_t n;
};
/* Every certificate in a PEM text (other PEM blocks are skipped). INVALID if none or a
 * CERTIFICATE block does not parse. */
dbt_res dbt_pki_certs_from_pem(const char *pem, struct dbt_pki_certs *out) DBT_WUR;
/* Appends a new reference to cert. */
dbt_res dbt_pki_certs_push(struct dbt_pki_certs *list, const struct dbt_pki_cert *cert) DBT_WUR;
void dbt_pki_certs_free(struct dbt_pki_certs *list); /* frees each and the array; zeroes list */

/* OK if key is the private half of cert's public key; INVALID otherwise. */
dbt_res dbt_pki_cert_key_match(const struct dbt_pki_cert *cert,
                               const struct dbt_pki_key *key) DBT_WUR;

/* What listings and JSON show about a certificate. Strings belong to the struct. */
struct dbt_pki_cert_info {
    char serial[65];    /* hex uppercase, whole bytes, as `openssl x509 -serial` prints it */
    char sha1[41];      /* SHA-1 of the DER, hex lowercase, no colons (sha1Fingerprint) */
    char sha256[65];    /* SHA-256 of the DER, hex lowercase, no colons */
    char *cn;           /* subject CN ("" if none) */
    char *subject;      /* subject DN, RFC 2253 one line ("CN=x,O=y") */
    char *issuer;       /* issuer DN, RFC 2253 one line */
    int64_t not_before; /* unix seconds */
    int64_t not_after;  /* unix seconds */
    char key_alg[16];   /* "RSA-2048", "RSA-4096", "EC P-256", "EC P-384" (else e.g. "RSA-3072") */
    char sig_alg[48];   /* "sha256WithRSAEncryption", "ecdsa-with-SHA384", ... */
    bool is_ca;         /* basicConstraints CA:TRUE */
    int pathlen;        /* CA pathLenConstraint, -1 if none or not a CA */
    bool self_signed;   /* subject == issuer and the signature verifies with its own key */
    char **san;         /* dNSName and iPAddress entries as text (IPv6 compressed) */
    size_t n_san;
};
/* Fills *out (zeroed first); release with dbt_pki_cert_info_cleanup. */
dbt_res dbt_pki_cert_info(const struct dbt_pki_cert *cert, struct dbt_pki_cert_info *out) DBT_WUR;
/* Convenience: parse the first certificate of pem, then dbt_pki_cert_info. */
dbt_res dbt_pki_cert_info_pem(const char *pem, struct dbt_pki_cert_info *out) DBT_WUR;
void dbt_pki_cert_info_cleanup(struct dbt_pki_cert_info *info);

/* ---------------------------------------------------------------------------------------------
 * CRL (crl.c)
 */

struct dbt_pki_revoked {
    const char *serial; /* hex, as dbt_pki_cert_info.serial (case-insensitive, no separators) */
    int64_t revoked_at; /* unix seconds */
};

#define DBT_PKI_CRL_DEFAULT_NEXT_UPDATE_SECS (30 * 86400)

struct dbt_pki_crl_spec {
    const struct dbt_pki_cert *issuer; /* the CA (client CA) that signs the CRL */
    const struct dbt_pki_key *issuer_key;
    const struct dbt_pki_revoked *revoked;
    size_t n_revoked;
    /* cRLNumber, must grow with each CRL of this issuer; 0 = the issue time in unix seconds
     * (monotonic enough for CRLs regenerated at most once a second, and needs no storage). */
    uint64_t number;
    /* nextUpdate = now + next_update_secs; 0 = DBT_PKI_CRL_DEFAULT_NEXT_UPDATE_SECS (30 days).
     * OpenSSL rejects client certificates with "CRL has expired" after nextUpdate, so whoever
     * serves the CRL must regenerate it well before (see dbt_pki_crl_info.next_update). */
    int64_t next_update_secs;
    enum dbt_pki_digest digest;
    int64_t now; /* lastUpdate (unix seconds); 0 = now */
};

/* Builds and signs a v2 CRL with cRLNumber and authorityKeyIdentifier. INVALID for a bad
 * serial, an issuer that is not a CA or a key that does not match it. */
dbt_res dbt_pki_crl_build(const struct dbt_pki_crl_spec *spec, struct dbt_pki_crl **out) DBT_WUR;
void dbt_pki_crl_free(struct dbt_pki_crl *crl);
dbt_res dbt_pki_crl_to_pem(const struct dbt_pki_crl *crl, char **out_pem) DBT_WUR; /* free() */
dbt_res dbt_pki_crl_from_pem(const char *pem, struct dbt_pki_crl **out) DBT_WUR;

struct dbt_pki_crl_info {
    int64_t last_update;
    int64_t next_update; /* 0 if absent */
    uint64_t number;     /* cRLNumber, 0 if absent */
    size_t n_revoked;
    char issuer[256]; /* issuer DN, RFC 2253 (truncated if longer) */
};
dbt_res dbt_pki_crl_info(const struct dbt_pki_crl *crl, struct dbt_pki_crl_info *out) DBT_WUR;
/* True when the CRL lists the serial (hex, case-insensitive). */
bool dbt_pki_crl_has_serial(const struct dbt_pki_crl *crl, const char *serial_hex);

/* ---------------------------------------------------------------------------------------------
 * Bundles (bundle.c)
 */

/* PKCS#7 SignedData, certificates only (RFC 2315 "degenerate"), as RDS serves .p7b bundles.
 * DER: free() *out. PEM ("-----BEGIN PKCS7-----"): free() *out_pem. INVALID for an empty list. */
dbt_res dbt_pki_p7b_der(const struct dbt_pki_certs *certs, uint8_t **out, size_t *out_len) DBT_WUR;
dbt_res dbt_pki_p7b_pem(const struct dbt_pki_certs *certs, char **out_pem) DBT_WUR;
/* Reads the certificates back out of a .p7b (DER or PEM, detected). INVALID if not one. */
dbt_res dbt_pki_p7b_parse(const uint8_t *data, size_t len, struct dbt_pki_certs *out) DBT_WUR;

/*
 * PKCS#12 for a client: cert + key + CA chain (may be empty), protected by password ("" or NULL
 * = empty password). PBES2 AES-256-CBC with PBKDF2-HMAC-SHA256 for key and certificates,
 * HMAC-SHA256 MAC, 2048 iterations: readable by `openssl pkcs12` 3.x and Java keytool (8u301+).
 * friendly_name (optional) becomes the alias. *out holds the key (encrypted); free() it.
 */
dbt_res dbt_pki_p12_build(const struct dbt_pki_cert *cert, const struct dbt_pki_key *key,
                          const struct dbt_pki_certs *chain, const char *password,
                          const char *friendly_name, uint8_t **out, size_t *out_len) DBT_WUR;
/* Opens a PKCS#12: CRYPTO for a wrong password (MAC check), INVALID if not a PKCS#12. Any out
 * pointer may be NULL when not wanted; *chain_out is filled with the other certificates. */
dbt_res dbt_pki_p12_parse(const uint8_t *data, size_t len, const char *password,
                          struct dbt_pki_cert **cert_out, struct dbt_pki_key **key_out,
                          struct dbt_pki_certs *chain_out) DBT_WUR;

/* ---------------------------------------------------------------------------------------------
 * Verification (verify.c)
 */

enum dbt_pki_purpose {
    DBT_PKI_PURPOSE_ANY,
    DBT_PKI_PURPOSE_SERVER, /* leaf must allow TLS server auth */
    DBT_PKI_PURPOSE_CLIENT, /* leaf must allow TLS client auth */
};

struct dbt_pki_verify_opts {
    const struct dbt_pki_certs *trusted;   /* trust anchors (required, at least one) */
    const struct dbt_pki_certs *untrusted; /* optional intermediates */
    const struct dbt_pki_crl *crl;         /* optional: checks the leaf's revocation */
    enum dbt_pki_purpose purpose;
    const char *host; /* optional: DNS name or IP the leaf must match (like verify-full) */
    int64_t at;       /* verification time (unix seconds); 0 = now */
};

/*
 * Verifies leaf up to a trusted certificate as OpenSSL's verifier does (what `openssl verify`
 * and the TLS front do). INVALID when it does not verify, with OpenSSL's reason and the depth in
 * the message ("certificate verify failed at depth 0: certificate revoked"); *verify_error (if
 * non-NULL) gets OpenSSL's X509_V_ERR_* number (0 on success). CRYPTO for internal failures.
 */
dbt_res dbt_pki_verify(const struct dbt_pki_cert *leaf, const struct dbt_pki_verify_opts *opts,
                       int *verify_error) DBT_WUR;

#endif
