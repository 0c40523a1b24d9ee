/*
 * test_pki.c - unit tests of src/pki: keys, sealing, names, issuing (every key type and digest,
 * root -> intermediate -> leaf), info, CRL, PKCS#7/#12 and verification, with their failure
 * paths. Bundles are also checked with the openssl command (an independent reader).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/clock.h"
#include "base/err.h"
#include "pki/pki.h"

#include "check.h"

#define DAY (86400)
#define YEAR (365 * DAY)

static struct dbt_pki_key *keys[4];  /* one per key type, generated once */
static struct dbt_pki_key *keys2[4]; /* a second key per type (issuers) */
static char tmpdir[] = "/tmp/test_pki.XXXXXX";

static struct dbt_pki_key *key_of(enum dbt_pki_key_type t)
{
    if (keys[t] == NULL) {
        CHECK_OK(dbt_pki_key_generate(t, &keys[t]));
    }
    return keys[t];
}

static struct dbt_pki_key *key2_of(enum dbt_pki_key_type t)
{
    if (keys2[t] == NULL) {
        CHECK_OK(dbt_pki_key_generate(t, &keys2[t]));
    }
    return keys2[t];
}

static struct dbt_pki_cert *make_ca(const char *cn, const struct dbt_pki_key *key,
                                    const struct dbt_pki_cert *issuer,
                                    const struct dbt_pki_key *issuer_key, int pathlen,
                                    enum dbt_pki_digest d, int64_t validity, int64_t now)
{
    struct dbt_pki_cert *c = NULL;
    struct dbt_pki_cert_spec spec = {
        .profile = DBT_PKI_PROFILE_CA,
        .cn = cn,
        .o = "dbtls",
        .c = "US",
        .validity_secs = validity,
        .pathlen = pathlen,
        .digest = d,
        .key = key,
        .issuer = issuer,
        .issuer_key = issuer_key,
        .now = now,
    };
    CHECK_OK(dbt_pki_cert_issue(&spec, &c));
    return c;
}

static struct dbt_pki_cert *make_leaf(enum dbt_pki_profile profile, const char *cn,
                                      const char *const *san, size_t n_san,
                                      const struct dbt_pki_key *key,
                                      const struct dbt_pki_cert *issuer,
                                      const struct dbt_pki_key *issuer_key, enum dbt_pki_digest d,
                                      int64_t validity, int64_t now)
{
    struct dbt_pki_cert *c = NULL;
    struct dbt_pki_cert_spec spec = {
        .profile = profile,
        .cn = cn,
        .validity_secs = validity,
        .san = san,
        .n_san = n_san,
        .digest = d,
        .key = key,
        .issuer = issuer,
        .issuer_key = issuer_key,
        .now = now,
    };
    CHECK_OK(dbt_pki_cert_issue(&spec, &c));
    return c;
}

static struct dbt_pki_certs list_of(struct dbt_pki_cert *a, struct dbt_pki_cert *b)
{
    struct dbt_pki_certs l = {NULL, 0};
    if (a != NULL) {
        CHECK_OK(dbt_pki_certs_push(&l, a));
    }
    if (b != NULL) {
        CHECK_OK(dbt_pki_certs_push(&l, b));
    }
    return l;
}

static dbt_res verify(const struct dbt_pki_cert *leaf, struct dbt_pki_cert *root,
                      struct dbt_pki_cert *inter, const struct dbt_pki_crl *crl,
                      enum dbt_pki_purpose purpose, const char *host, int64_t at)
{
    struct dbt_pki_certs trusted = list_of(root, NULL);
    struct dbt_pki_certs untrusted = list_of(inter, NULL);
    struct dbt_pki_verify_opts o = {
        .trusted = &trusted,
        .untrusted = &untrusted,
        .crl = crl,
        .purpose = purpose,
        .host = host,
        .at = at,
    };
    dbt_res r = dbt_pki_verify(leaf, &o, NULL);
    dbt_pki_certs_free(&trusted);
    dbt_pki_certs_free(&untrusted);
    return r;
}

static bool msg_has(const char *needle)
{
    if (strstr(dbt_errmsg(), needle) != NULL) {
        return true;
    }
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", dbt_errmsg(), needle);
    return false;
}

static bool is_hex(const char *s, size_t len, bool upper)
{
    if (strlen(s) != len && len != 0) {
        return false;
    }
    for (; *s; s++) {
        bool digit = *s >= '0' && *s <= '9';
        bool letter = upper ? (*s >= 'A' && *s <= 'F') : (*s >= 'a' && *s <= 'f');
        if (!digit && !letter) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */

static void test_key_types(void)
{
    enum dbt_pki_key_type t;
    CHECK_OK(dbt_pki_key_type_parse("rsa2048", &t));
    CHECK(t == DBT_PKI_KEY_RSA2048);
    CHECK_OK(dbt_pki_key_type_parse("rsa4096", &t));
    CHECK(t == DBT_PKI_KEY_RSA4096);
    CHECK_OK(dbt_pki_key_type_parse("ec256", &t));
    CHECK(t == DBT_PKI_KEY_EC256);
    CHECK_OK(dbt_pki_key_type_parse("ec384", &t));
    CHECK(t == DBT_PKI_KEY_EC384);
    CHECK_ERR(dbt_pki_key_type_parse("rsa1024", &t), DBT_E_INVALID);
    CHECK(msg_has("rsa1024"));
    CHECK_ERR(dbt_pki_key_type_parse("", &t), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_key_type_parse(NULL, &t), DBT_E_INVALID);
    CHECK(strcmp(dbt_pki_key_type_name(DBT_PKI_KEY_EC384), "ec384") == 0);
    CHECK(strcmp(dbt_pki_key_type_label(DBT_PKI_KEY_EC256), "EC P-256") == 0);
    CHECK(strcmp(dbt_pki_key_type_label(DBT_PKI_KEY_RSA4096), "RSA-4096") == 0);

    enum dbt_pki_digest d;
    CHECK_OK(dbt_pki_digest_parse("sha384", &d));
    CHECK(d == DBT_PKI_SHA384);
    CHECK_OK(dbt_pki_digest_parse("SHA-256", &d));
    CHECK(d == DBT_PKI_SHA256);
    CHECK_ERR(dbt_pki_digest_parse("md5", &d), DBT_E_INVALID);
    CHECK(strcmp(dbt_pki_digest_name(DBT_PKI_SHA384), "sha384") == 0);
}

static void test_keys(void)
{
    for (int t = 0; t < 4; t++) {
        struct dbt_pki_key *k = key_of((enum dbt_pki_key_type)t);
        enum dbt_pki_key_type got;
        CHECK_OK(dbt_pki_key_type_of(k, &got));
        CHECK(got == (enum dbt_pki_key_type)t);

        char *pem = NULL, *pem2 = NULL;
        struct dbt_pki_key *k2 = NULL;
        CHECK_OK(dbt_pki_key_to_pem(k, &pem));
        CHECK(pem != NULL && strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
        CHECK_OK(dbt_pki_key_from_pem(pem, &k2));
        if (k2 != NULL) {
            CHECK_OK(dbt_pki_key_to_pem(k2, &pem2));
            CHECK(pem2 != NULL && strcmp(pem, pem2) == 0);
            CHECK_OK(dbt_pki_key_type_of(k2, &got));
            CHECK(got == (enum dbt_pki_key_type)t);
        }
        /* Truncated PEM: the body is cut in half. */
        if (pem != NULL) {
            size_t n = strlen(pem);
            char *cut = strndup(pem, n / 2);
            struct dbt_pki_key *bad = NULL;
            CHECK_ERR(dbt_pki_key_from_pem(cut, &bad), DBT_E_INVALID);
            CHECK(bad == NULL);
            free(cut);
        }
        dbt_pki_wipe_free(pem);
        dbt_pki_wipe_free(pem2);
        dbt_pki_key_free(k2);
    }
    /* Two generated keys differ. */
    char *a = NULL, *b = NULL;
    CHECK_OK(dbt_pki_key_to_pem(key_of(DBT_PKI_KEY_EC256), &a));
    CHECK_OK(dbt_pki_key_to_pem(key2_of(DBT_PKI_KEY_EC256), &b));
    CHECK(a && b && strcmp(a, b) != 0);
    dbt_pki_wipe_free(a);
    dbt_pki_wipe_free(b);

    struct dbt_pki_key *k = NULL;
    CHECK_ERR(dbt_pki_key_from_pem("hello", &k), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_key_from_pem(NULL, &k), DBT_E_INVALID);
    CHECK_ERR(
        dbt_pki_key_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &k),
        DBT_E_INVALID);
    CHECK_ERR(dbt_pki_key_from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END "
                                   "ENCRYPTED PRIVATE KEY-----\n",
                                   &k),
              DBT_E_INVALID);
    CHECK(msg_has("encrypted"));
    CHECK(k == NULL);

    /* A traditional "EC PRIVATE KEY" PEM is accepted too; an encrypted one is refused without a
     * prompt (the test would hang on a terminal prompt otherwise). */
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey_traditional(bio, pk, NULL, NULL, 0, NULL, NULL);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *trad = strndup(data, (size_t)n);
    CHECK(strstr(trad, "BEGIN EC PRIVATE KEY") != NULL);
    CHECK_OK(dbt_pki_key_from_pem(trad, &k));
    dbt_pki_key_free(k);
    k = NULL;
    free(trad);
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS8PrivateKey(bio, pk, EVP_aes_256_cbc(), "pw", 2, NULL, NULL);
    n = BIO_get_mem_data(bio, &data);
    char *enc = strndup(data, (size_t)n);
    CHECK_ERR(dbt_pki_key_from_pem(enc, &k), DBT_E_INVALID);
    free(enc);
    BIO_free(bio);
    EVP_PKEY_free(pk);

    /* A key type dbtls does not issue. */
    pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(bio, &data);
    char *ed = strndup(data, (size_t)n);
    CHECK_OK(dbt_pki_key_from_pem(ed, &k));
    enum dbt_pki_key_type got;
    if (k != NULL) {
        CHECK_ERR(dbt_pki_key_type_of(k, &got), DBT_E_INVALID);
        CHECK(msg_has("not supported"));
    }
    dbt_pki_key_free(k);
    free(ed);
    BIO_free(bio);
    EVP_PKEY_free(pk);
}

static void test_seal(void)
{
    uint8_t master[DBT_PKI_MASTER_KEY_LEN], other[DBT_PKI_MASTER_KEY_LEN];
    CHECK_OK(dbt_pki_random(master, sizeof(master)));
    CHECK_OK(dbt_pki_random(other, sizeof(other)));
    CHECK(memcmp(master, other, sizeof(master)) != 0);

    const char secret[] = "the quick brown fox";
    uint8_t *blob = NULL, *blob2 = NULL, *plain = NULL;
    size_t blob_len = 0, blob2_len = 0, plain_len = 0;
    CHECK_OK(dbt_pki_seal(master, "obj:1", secret, sizeof(secret), &blob, &blob_len));
    CHECK(blob_len == sizeof(secret) + DBT_PKI_SEAL_OVERHEAD);
    CHECK(blob != NULL && memcmp(blob, "DBS\x01", 4) == 0);
    CHECK(blob != NULL && memmem(blob, blob_len, "quick", 5) == NULL); /* not in clear */
    /* Random nonce: sealing twice gives different blobs. */
    CHECK_OK(dbt_pki_seal(master, "obj:1", secret, sizeof(secret), &blob2, &blob2_len));
    CHECK(blob2_len == blob_len && memcmp(blob, blob2, blob_len) != 0);

    CHECK_OK(dbt_pki_unseal(master, "obj:1", blob, blob_len, &plain, &plain_len));
    CHECK(plain_len == sizeof(secret) && memcmp(plain, secret, plain_len) == 0);
    dbt_pki_wipe_free_bytes(plain, plain_len);
    plain = NULL;

    CHECK_ERR(dbt_pki_unseal(other, "obj:1", blob, blob_len, &plain, &plain_len), DBT_E_CRYPTO);
    CHECK(msg_has("does not authenticate"));
    CHECK_ERR(dbt_pki_unseal(master, "obj:2", blob, blob_len, &plain, &plain_len), DBT_E_CRYPTO);
    CHECK_ERR(dbt_pki_unseal(master, "", blob, blob_len, &plain, &plain_len), DBT_E_CRYPTO);
    CHECK(plain == NULL);

    /* Every single modified byte is detected: header -> CORRUPT, the rest -> CRYPTO. */
    int undetected = 0;
    for (size_t i = 0; i < blob_len; i++) {
        blob[i] ^= 0x01;
        dbt_res r = dbt_pki_unseal(master, "obj:1", blob, blob_len, &plain, &plain_len);
        enum dbt_err want = i < 4 ? DBT_E_CORRUPT : DBT_E_CRYPTO;
        if (r.code != want) {
            undetected++;
            fprintf(stderr, "  byte %zu flipped: got %s\n", i, dbt_err_name(r.code));
        }
        blob[i] ^= 0x01;
    }
    CHECK(undetected == 0);
    blob[3] = 2;
    CHECK_ERR(dbt_pki_unseal(master, "obj:1", blob, blob_len, &plain, &plain_len), DBT_E_CORRUPT);
    CHECK(msg_has("version 2"));
    blob[3] = 1;
    /* Truncation at every length. */
    int accepted = 0;
    for (size_t n = 0; n < blob_len; n++) {
        dbt_res r = dbt_pki_unseal(master, "obj:1", blob, n, &plain, &plain_len);
        if (dbt_ok(r)) {
            accepted++;
        }
    }
    CHECK(accepted == 0);
    CHECK_ERR(dbt_pki_unseal(master, "obj:1", blob, 10, &plain, &plain_len), DBT_E_CORRUPT);
    CHECK_ERR(dbt_pki_unseal(master, "obj:1", NULL, 0, &plain, &plain_len), DBT_E_CORRUPT);

    /* Empty plaintext round-trips. */
    free(blob2);
    CHECK_OK(dbt_pki_seal(master, NULL, "", 0, &blob2, &blob2_len));
    CHECK(blob2_len == DBT_PKI_SEAL_OVERHEAD);
    CHECK_OK(dbt_pki_unseal(master, NULL, blob2, blob2_len, &plain, &plain_len));
    CHECK(plain_len == 0);
    dbt_pki_wipe_free_bytes(plain, plain_len);
    plain = NULL;
    free(blob);
    free(blob2);

    /* Keys: seal/unseal every type; the PEM matches. */
    for (int t = 0; t < 4; t++) {
        struct dbt_pki_key *k = key_of((enum dbt_pki_key_type)t), *k2 = NULL;
        char *pem = NULL, *pem2 = NULL;
        CHECK_OK(dbt_pki_key_seal(master, "key:x", k, &blob, &blob_len));
        CHECK_OK(dbt_pki_key_unseal(master, "key:x", blob, blob_len, &k2));
        CHECK_OK(dbt_pki_key_to_pem(k, &pem));
        CHECK_OK(dbt_pki_key_unseal_pem(master, "key:x", blob, blob_len, &pem2));
        CHECK(pem && pem2 && strcmp(pem, pem2) == 0);
        if (k2 != NULL) {
            enum dbt_pki_key_type got;
            CHECK_OK(dbt_pki_key_type_of(k2, &got));
            CHECK(got == (enum dbt_pki_key_type)t);
        }
        dbt_pki_key_free(k2);
        k2 = NULL;
        CHECK_ERR(dbt_pki_key_unseal(master, "key:y", blob, blob_len, &k2), DBT_E_CRYPTO);
        CHECK_ERR(dbt_pki_key_unseal(other, "key:x", blob, blob_len, &k2), DBT_E_CRYPTO);
        CHECK(k2 == NULL);
        dbt_pki_wipe_free(pem);
        dbt_pki_wipe_free(pem2);
        free(blob);
    }
    /* A valid seal of something that is not a key. */
    struct dbt_pki_key *k2 = NULL;
    CHECK_OK(dbt_pki_seal(master, "key:z", "not a key", 9, &blob, &blob_len));
    CHECK_ERR(dbt_pki_key_unseal(master, "key:z", blob, blob_len, &k2), DBT_E_CORRUPT);
    free(blob);

    /* Wipe helpers. */
    char buf[16];
    memset(buf, 'x', sizeof(buf));
    dbt_pki_wipe(buf, sizeof(buf));
    int nonzero = 0;
    for (size_t i = 0; i < sizeof(buf); i++) {
        nonzero += buf[i] != 0;
    }
    CHECK(nonzero == 0);
    dbt_pki_wipe(NULL, 5);
    dbt_pki_wipe_free(NULL);
    dbt_pki_wipe_free_bytes(NULL, 3);
    dbt_pki_wipe_free(strdup("secret"));
}

static void test_names(void)
{
    static const struct {
        const char *s;
        enum dbt_pki_endpoint_kind kind;
    } cases[] = {
        {"db.example.com", DBT_PKI_ENDPOINT_DNS},
        {"localhost", DBT_PKI_ENDPOINT_DNS},
        {"DB-1.Example.COM", DBT_PKI_ENDPOINT_DNS},
        {"1db.example.com", DBT_PKI_ENDPOINT_DNS},
        {"*.db.example.com", DBT_PKI_ENDPOINT_DNS},
        {"xn--bcher-kva.example", DBT_PKI_ENDPOINT_DNS},
        {"127.0.0.1", DBT_PKI_ENDPOINT_IPV4},
        {"10.1.2.3", DBT_PKI_ENDPOINT_IPV4},
        {"::1", DBT_PKI_ENDPOINT_IPV6},
        {"2001:db8::42", DBT_PKI_ENDPOINT_IPV6},
        {"::ffff:10.0.0.1", DBT_PKI_ENDPOINT_IPV6},
        {"", DBT_PKI_ENDPOINT_INVALID},
        {"db..example.com", DBT_PKI_ENDPOINT_INVALID},
        {"db.example.com.", DBT_PKI_ENDPOINT_INVALID},
        {".db.example.com", DBT_PKI_ENDPOINT_INVALID},
        {"-db.example.com", DBT_PKI_ENDPOINT_INVALID},
        {"db-.example.com", DBT_PKI_ENDPOINT_INVALID},
        {"db_1.example.com", DBT_PKI_ENDPOINT_INVALID},
        {"db example.com", DBT_PKI_ENDPOINT_INVALID},
        {"db.example.com:5432", DBT_PKI_ENDPOINT_INVALID},
        {"*.com", DBT_PKI_ENDPOINT_INVALID},
        {"*db.example.com", DBT_PKI_ENDPOINT_INVALID},
        {"db.*.example.com", DBT_PKI_ENDPOINT_INVALID},
        {"*", DBT_PKI_ENDPOINT_INVALID},
        {"256.1.1.1", DBT_PKI_ENDPOINT_INVALID},
        {"1.2.3", DBT_PKI_ENDPOINT_INVALID},
        {"1.2.3.4.5", DBT_PKI_ENDPOINT_INVALID},
        {"[::1]", DBT_PKI_ENDPOINT_INVALID},
        {"fe80::1%eth0", DBT_PKI_ENDPOINT_INVALID},
        {"2001:db8:::1", DBT_PKI_ENDPOINT_INVALID},
        {"db\xc3\xa9.example.com", DBT_PKI_ENDPOINT_INVALID},
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(cases); i++) {
        enum dbt_pki_endpoint_kind k = dbt_pki_endpoint_kind(cases[i].s);
        if (k != cases[i].kind) {
            fprintf(stderr, "  endpoint \"%s\": kind %d, want %d\n", cases[i].s, k, cases[i].kind);
        }
        CHECK(k == cases[i].kind);
        dbt_res r = dbt_pki_check_endpoint(cases[i].s);
        CHECK(dbt_ok(r) == (cases[i].kind != DBT_PKI_ENDPOINT_INVALID));
        CHECK(dbt_pki_valid_dns_name(cases[i].s) == (cases[i].kind == DBT_PKI_ENDPOINT_DNS));
        CHECK(dbt_pki_valid_ip(cases[i].s) ==
              (cases[i].kind == DBT_PKI_ENDPOINT_IPV4 || cases[i].kind == DBT_PKI_ENDPOINT_IPV6));
    }
    CHECK_ERR(dbt_pki_check_endpoint("db..example.com"), DBT_E_INVALID);
    CHECK(msg_has("endpoint \"db..example.com\" is not a valid DNS name or IP address"));
    CHECK_ERR(dbt_pki_check_endpoint(NULL), DBT_E_INVALID);
    CHECK(dbt_pki_endpoint_kind(NULL) == DBT_PKI_ENDPOINT_INVALID);

    /* Length limits: 63-octet label ok, 64 not; 253-character name ok, 254 not. */
    char name[300];
    memset(name, 'a', 63);
    strcpy(name + 63, ".example.com");
    CHECK(dbt_pki_valid_dns_name(name));
    memset(name, 'a', 64);
    strcpy(name + 64, ".example.com");
    CHECK(!dbt_pki_valid_dns_name(name));
    /* 4 labels of 63 + 3 dots = 255; build 253 = 63+1+63+1+63+1+61 */
    size_t pos = 0;
    const size_t lens[] = {63, 63, 63, 61};
    for (size_t i = 0; i < 4; i++) {
        memset(name + pos, 'b', lens[i]);
        pos += lens[i];
        name[pos++] = '.';
    }
    name[pos - 1] = '\0';
    CHECK(strlen(name) == 253 && dbt_pki_valid_dns_name(name));
    name[pos - 1] = 'c';
    name[pos] = '\0';
    CHECK(strlen(name) == 254 && !dbt_pki_valid_dns_name(name));

    CHECK(dbt_pki_valid_client_name("alice"));
    CHECK(dbt_pki_valid_client_name("app server_1.prod-x"));
    CHECK(!dbt_pki_valid_client_name(""));
    CHECK(!dbt_pki_valid_client_name(NULL));
    CHECK(!dbt_pki_valid_client_name("bob/evil"));
    CHECK(!dbt_pki_valid_client_name("a,CN=admin"));
    CHECK(!dbt_pki_valid_client_name("tab\tname"));
    CHECK(!dbt_pki_valid_client_name("caf\xc3\xa9"));
    memset(name, 'n', 64);
    name[64] = '\0';
    CHECK(dbt_pki_valid_client_name(name));
    CHECK_OK(dbt_pki_check_client_name(name));
    name[64] = 'n';
    name[65] = '\0';
    CHECK(!dbt_pki_valid_client_name(name));
    CHECK_ERR(dbt_pki_check_client_name(name), DBT_E_INVALID);
    CHECK(msg_has("longer than 64"));
    CHECK_ERR(dbt_pki_check_client_name("x;y"), DBT_E_INVALID);
    CHECK(msg_has("client certificate name \"x;y\" is invalid"));
    CHECK_ERR(dbt_pki_check_client_name(NULL), DBT_E_INVALID);
}

/* Root -> intermediate -> server and client leaf for one CA key type and digest. */
static void test_chain(enum dbt_pki_key_type ca_type, enum dbt_pki_digest d)
{
    int64_t now = dbt_now_unix();
    const char *san[] = {"db.example.com", "10.0.0.5", "2001:db8::5", "*.ro.example.com"};
    struct dbt_pki_cert *root =
        make_ca("Test Root", key_of(ca_type), NULL, NULL, -1, d, 40LL * YEAR, 0);
    struct dbt_pki_cert *inter =
        make_ca("Test Intermediate", key2_of(ca_type), root, key_of(ca_type), 0, d, 10LL * YEAR, 0);
    struct dbt_pki_cert *server =
        make_leaf(DBT_PKI_PROFILE_SERVER, NULL, san, DBT_ARRAY_LEN(san), key_of(DBT_PKI_KEY_EC256),
                  inter, key2_of(ca_type), d, YEAR, 0);
    struct dbt_pki_cert *client =
        make_leaf(DBT_PKI_PROFILE_CLIENT, "alice", NULL, 0, key2_of(DBT_PKI_KEY_EC256), inter,
                  key2_of(ca_type), d, 10LL * YEAR, 0);
    if (!root || !inter || !server || !client) {
        goto out;
    }
    fprintf(stderr, "chain %s/%s\n", dbt_pki_key_type_name(ca_type), dbt_pki_digest_name(d));

    CHECK_OK(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, NULL, 0));
    CHECK_OK(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, "db.example.com", 0));
    CHECK_OK(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, "10.0.0.5", 0));
    CHECK_OK(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, "2001:db8:0::5", 0));
    CHECK_OK(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, "r1.ro.example.com", 0));
    CHECK_ERR(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, "other.example.com", 0),
              DBT_E_INVALID);
    CHECK(msg_has("hostname mismatch"));
    CHECK_ERR(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, "10.0.0.6", 0),
              DBT_E_INVALID);
    CHECK(msg_has("IP address mismatch"));
    CHECK_ERR(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_CLIENT, NULL, 0), DBT_E_INVALID);
    CHECK(msg_has("unsuitable certificate purpose"));
    CHECK_OK(verify(client, root, inter, NULL, DBT_PKI_PURPOSE_CLIENT, NULL, 0));
    CHECK_ERR(verify(client, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, NULL, 0), DBT_E_INVALID);
    /* Without the intermediate, or trusting the wrong root, it fails. */
    CHECK_ERR(verify(server, root, NULL, NULL, DBT_PKI_PURPOSE_SERVER, NULL, 0), DBT_E_INVALID);
    CHECK(msg_has("unable to get local issuer certificate"));
    /* Expired and not-yet-valid. */
    CHECK_ERR(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, NULL, now + 2 * YEAR),
              DBT_E_INVALID);
    CHECK(msg_has("certificate has expired"));
    CHECK_ERR(verify(server, root, inter, NULL, DBT_PKI_PURPOSE_SERVER, NULL, now - 3600),
              DBT_E_INVALID);
    CHECK(msg_has("not yet valid"));

    struct dbt_pki_cert_info ri, ii, si, ci;
    memset(&ri, 0, sizeof(ri));
    memset(&ii, 0, sizeof(ii));
    memset(&si, 0, sizeof(si));
    memset(&ci, 0, sizeof(ci));
    CHECK_OK(dbt_pki_cert_info(root, &ri));
    CHECK_OK(dbt_pki_cert_info(inter, &ii));
    CHECK_OK(dbt_pki_cert_info(server, &si));
    CHECK_OK(dbt_pki_cert_info(client, &ci));

    const char *want_key = dbt_pki_key_type_label(ca_type);
    bool rsa = ca_type == DBT_PKI_KEY_RSA2048 || ca_type == DBT_PKI_KEY_RSA4096;
    const char *want_sig =
        rsa ? (d == DBT_PKI_SHA256 ? "sha256WithRSAEncryption" : "sha384WithRSAEncryption")
            : (d == DBT_PKI_SHA256 ? "ecdsa-with-SHA256" : "ecdsa-with-SHA384");
    CHECK(strcmp(ri.key_alg, want_key) == 0);
    CHECK(strcmp(ri.sig_alg, want_sig) == 0);
    CHECK(strcmp(si.sig_alg, want_sig) == 0);
    CHECK(strcmp(si.key_alg, "EC P-256") == 0);
    CHECK(ri.is_ca && ri.pathlen == -1 && ri.self_signed);
    CHECK(ii.is_ca && ii.pathlen == 0 && !ii.self_signed);
    CHECK(!si.is_ca && si.pathlen == -1 && !si.self_signed);
    CHECK(!ci.is_ca);
    CHECK(strcmp(ri.subject, "CN=Test Root,O=dbtls,C=US") == 0);
    CHECK(strcmp(ri.issuer, ri.subject) == 0);
    CHECK(strcmp(ii.issuer, ri.subject) == 0);
    CHECK(strcmp(si.issuer, ii.subject) == 0);
    CHECK(strcmp(si.cn, "db.example.com") == 0); /* CN = first endpoint */
    CHECK(strcmp(si.subject, "CN=db.example.com") == 0);
    CHECK(strcmp(ci.cn, "alice") == 0);
    CHECK(ci.n_san == 0);
    CHECK(si.n_san == 4);
    if (si.n_san == 4) {
        CHECK(strcmp(si.san[0], "db.example.com") == 0);
        CHECK(strcmp(si.san[1], "10.0.0.5") == 0);
        CHECK(strcmp(si.san[2], "2001:db8::5") == 0);
        CHECK(strcmp(si.san[3], "*.ro.example.com") == 0);
    }
    /* Backdating and validity. */
    CHECK(ri.not_before >= now - DBT_PKI_BACKDATE_SECS - 5 &&
          ri.not_before <= now - DBT_PKI_BACKDATE_SECS + 5);
    CHECK(ri.not_after - ri.not_before == 40LL * YEAR + DBT_PKI_BACKDATE_SECS);
    CHECK(si.not_after - si.not_before == YEAR + DBT_PKI_BACKDATE_SECS);
    /* Serials: 128-bit random, positive, distinct. */
    CHECK(is_hex(si.serial, 0, true) && strlen(si.serial) >= 16 && strlen(si.serial) <= 32);
    CHECK(strcmp(si.serial, ci.serial) != 0 && strcmp(ri.serial, ii.serial) != 0);
    CHECK(si.serial[0] != '-');
    CHECK(is_hex(si.sha1, 40, false));
    CHECK(is_hex(si.sha256, 64, false));
    CHECK(strcmp(si.sha1, ci.sha1) != 0);

    /* Fingerprints agree with a digest of the DER computed here. */
    uint8_t *der = NULL;
    size_t der_len = 0;
    CHECK_OK(dbt_pki_cert_to_der(server, &der, &der_len));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    EVP_Digest(der, der_len, md, &md_len, EVP_sha1(), NULL);
    for (unsigned i = 0; i < md_len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    CHECK(strcmp(hex, si.sha1) == 0);
    EVP_Digest(der, der_len, md, &md_len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < md_len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    CHECK(strcmp(hex, si.sha256) == 0);
    /* ... and the one read from the PEM without decoding the X.509 (key labels on reloads):
       the first certificate of a chain, after any other block; none → INVALID. */
    {
        char *spem = NULL, *rpem = NULL, sha1[41];
        CHECK_OK(dbt_pki_cert_to_pem(server, &spem));
        CHECK_OK(dbt_pki_cert_to_pem(root, &rpem));
        char *chain = NULL;
        CHECK(asprintf(&chain, "-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n%s%s", spem,
                       rpem) > 0);
        CHECK_OK(dbt_pki_cert_pem_sha1(chain, sha1));
        CHECK(strcmp(sha1, si.sha1) == 0);
        CHECK_OK(dbt_pki_cert_pem_sha1(rpem, sha1));
        CHECK(strcmp(sha1, ri.sha1) == 0);
        CHECK_ERR(dbt_pki_cert_pem_sha1("no pem here", sha1), DBT_E_INVALID);
        CHECK_ERR(dbt_pki_cert_pem_sha1(NULL, sha1), DBT_E_INVALID);
        free(chain);
        free(spem);
        free(rpem);
    }
    free(der);

    dbt_pki_cert_info_cleanup(&ri);
    dbt_pki_cert_info_cleanup(&ii);
    dbt_pki_cert_info_cleanup(&si);
    dbt_pki_cert_info_cleanup(&ci);
    CHECK(ri.cn == NULL && ri.n_san == 0);
out:
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(inter);
    dbt_pki_cert_free(server);
    dbt_pki_cert_free(client);
}

/* Reads a whole file into a NUL-terminated string. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) {
        *len = n;
    }
    return buf;
}

static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return false;
    }
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Runs a shell command; returns its exit status and its stdout+stderr in *out (malloc'd). */
static int run(const char *cmd, char **out)
{
    char full[2048], path[512];
    snprintf(path, sizeof(path), "%s/cmd.out", tmpdir);
    snprintf(full, sizeof(full), "%s >%s 2>&1", cmd, path);
    int rc = system(full);
    *out = slurp(path, NULL);
    if (*out == NULL) {
        *out = strdup("");
    }
    return rc;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    return n;
}

static void test_issue_rules(void)
{
    int64_t now = dbt_now_unix();
    struct dbt_pki_key *ek = key_of(DBT_PKI_KEY_EC256);
    struct dbt_pki_key *ek2 = key2_of(DBT_PKI_KEY_EC256);
    struct dbt_pki_key *rk = key_of(DBT_PKI_KEY_RSA2048);
    const char *san[] = {"db.example.com"};
    struct dbt_pki_cert *c = NULL;

    /* An issuer valid for one more hour: leaves are clamped to it. */
    struct dbt_pki_cert *root =
        make_ca("Short Root", ek2, NULL, NULL, 1, DBT_PKI_SHA256, 3600, now);
    struct dbt_pki_cert *leaf = make_leaf(DBT_PKI_PROFILE_SERVER, "explicit-cn", san, 1, ek, root,
                                          ek2, DBT_PKI_SHA256, YEAR, now);
    struct dbt_pki_cert_info ri, li;
    memset(&ri, 0, sizeof(ri));
    memset(&li, 0, sizeof(li));
    CHECK_OK(dbt_pki_cert_info(root, &ri));
    CHECK_OK(dbt_pki_cert_info(leaf, &li));
    CHECK(li.not_after == ri.not_after);
    CHECK(li.not_after == now + 3600);
    CHECK(li.not_before >= ri.not_before);
    CHECK(strcmp(li.cn, "explicit-cn") == 0); /* an explicit CN wins over the first endpoint */
    dbt_pki_cert_info_cleanup(&li);

    /* Backdating a leaf never takes its notBefore before the issuer's (issued "100 s before"
     * the root here, so now - 100 - 300 would precede the root's now - 300). */
    struct dbt_pki_cert *late = make_leaf(DBT_PKI_PROFILE_CLIENT, "late", NULL, 0, ek, root, ek2,
                                          DBT_PKI_SHA256, DAY, now - 100);
    CHECK_OK(dbt_pki_cert_info(late, &li));
    CHECK(li.not_before == ri.not_before);
    dbt_pki_cert_info_cleanup(&li);
    dbt_pki_cert_free(late);

    /* Key usage per profile, checked by the openssl command (independent decoder). */
    struct dbt_pki_cert *rsa_server =
        make_leaf(DBT_PKI_PROFILE_SERVER, NULL, san, 1, rk, root, ek2, DBT_PKI_SHA256, DAY, now);
    struct {
        struct dbt_pki_cert *cert;
        const char *want[4];
    } ku[] = {
        {root,
         {"CA:TRUE, pathlen:1", "Certificate Sign, CRL Sign", "X509v3 Subject Key Identifier",
          "X509v3 Authority Key Identifier"}},
        {leaf,
         {"CA:FALSE", "Digital Signature\n", "TLS Web Server Authentication",
          "DNS:db.example.com"}},
        {rsa_server,
         {"CA:FALSE", "Digital Signature, Key Encipherment", "TLS Web Server Authentication",
          "X509v3 Authority Key Identifier"}},
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(ku); i++) {
        char *pem = NULL, *out = NULL, path[512], cmd[1024];
        CHECK_OK(dbt_pki_cert_to_pem(ku[i].cert, &pem));
        snprintf(path, sizeof(path), "%s/ku.pem", tmpdir);
        CHECK(pem && write_file(path, pem, strlen(pem)));
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -text -in %s", path);
        CHECK(run(cmd, &out) == 0);
        for (size_t j = 0; j < 4; j++) {
            if (strstr(out, ku[i].want[j]) == NULL) {
                fprintf(stderr, "  cert %zu lacks \"%s\"\n", i, ku[i].want[j]);
                CHECK(false);
            }
        }
        CHECK(count(out, "critical") == 2); /* basicConstraints and keyUsage only */
        CHECK(strstr(out, "Version: 3") != NULL);
        free(out);
        free(pem);
    }
    dbt_pki_cert_free(rsa_server);

    /* Failure paths. */
    struct dbt_pki_cert_spec spec = {
        .profile = DBT_PKI_PROFILE_SERVER,
        .validity_secs = DAY,
        .san = san,
        .n_san = 1,
        .digest = DBT_PKI_SHA256,
        .key = ek,
        .issuer = root,
        .issuer_key = ek2,
    };
    struct dbt_pki_cert_spec s;

    s = spec;
    s.key = NULL;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    s = spec;
    s.validity_secs = 0;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("validity"));
    s = spec;
    s.n_san = 0;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("at least one endpoint"));
    const char *bad_san[] = {"db.example.com", "bad_name!"};
    s = spec;
    s.san = bad_san;
    s.n_san = 2;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("bad_name!"));
    s = spec;
    s.issuer = NULL;
    s.issuer_key = NULL;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("self-signed"));
    s = spec;
    s.issuer_key = NULL;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    s = spec;
    s.issuer_key = ek; /* not the root's key */
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("does not match"));
    s = spec;
    s.issuer = leaf; /* not a CA */
    s.issuer_key = ek;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("not a CA"));
    s = spec;
    s.now = now + 7200; /* issuer expired by then */
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("expired"));
    s = spec;
    s.cn = "a-common-name-that-is-much-longer-than-sixty-four-characters-allowed-by-x520";
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    s = spec;
    s.profile = DBT_PKI_PROFILE_CLIENT;
    s.cn = NULL;
    s.n_san = 0;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("common name"));
    s = spec;
    s.profile = DBT_PKI_PROFILE_CA;
    s.cn = "ca";
    s.c = "usa";
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("country"));
    s = spec;
    s.profile = DBT_PKI_PROFILE_CA;
    s.cn = "ca";
    s.pathlen = -2;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    s = spec;
    s.profile = (enum dbt_pki_profile)42;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    s = spec;
    s.digest = (enum dbt_pki_digest)42;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(c == NULL);

    /* A pathlen:0 intermediate cannot sign another CA. */
    struct dbt_pki_cert *inter0 = make_ca("Inter0", ek, root, ek2, 0, DBT_PKI_SHA256, 600, now);
    s = spec;
    s.profile = DBT_PKI_PROFILE_CA;
    s.cn = "sub";
    s.pathlen = -1;
    s.issuer = inter0;
    s.issuer_key = ek;
    s.key = rk;
    CHECK_ERR(dbt_pki_cert_issue(&s, &c), DBT_E_INVALID);
    CHECK(msg_has("pathlen 0"));
    dbt_pki_cert_free(inter0);

    /* A first endpoint longer than the CN limit: no CN, critical SAN, still verifies. */
    const char *long_san[] = {
        "a-very-long-database-endpoint-name-for-tests.region-1.db.example.com", "10.9.8.7"};
    CHECK(strlen(long_san[0]) > 64);
    struct dbt_pki_cert *lc = make_leaf(DBT_PKI_PROFILE_SERVER, NULL, long_san, 2, ek, root, ek2,
                                        DBT_PKI_SHA256, DAY, now);
    if (lc != NULL) {
        CHECK_OK(dbt_pki_cert_info(lc, &li));
        CHECK(strcmp(li.cn, "") == 0 && strcmp(li.subject, "") == 0);
        CHECK(li.n_san == 2);
        dbt_pki_cert_info_cleanup(&li);
        CHECK_OK(verify(lc, root, NULL, NULL, DBT_PKI_PURPOSE_SERVER, long_san[0], 0));
        char *pem = NULL, *out = NULL, path[512], cmd[1024];
        CHECK_OK(dbt_pki_cert_to_pem(lc, &pem));
        snprintf(path, sizeof(path), "%s/long.pem", tmpdir);
        CHECK(pem && write_file(path, pem, strlen(pem)));
        snprintf(cmd, sizeof(cmd), "openssl x509 -noout -ext subjectAltName -in %s", path);
        CHECK(run(cmd, &out) == 0);
        CHECK(strstr(out, "X509v3 Subject Alternative Name: critical") != NULL);
        free(out);
        free(pem);
    }
    dbt_pki_cert_free(lc);

    /* Key match. */
    CHECK_OK(dbt_pki_cert_key_match(leaf, ek));
    CHECK_ERR(dbt_pki_cert_key_match(leaf, ek2), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_cert_key_match(leaf, rk), DBT_E_INVALID);

    dbt_pki_cert_info_cleanup(&ri);
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(leaf);
}

static void test_cert_io(void)
{
    struct dbt_pki_key *ek = key_of(DBT_PKI_KEY_EC256);
    struct dbt_pki_key *xk = key_of(DBT_PKI_KEY_EC384);
    struct dbt_pki_cert *root = make_ca("IO Root", xk, NULL, NULL, -1, DBT_PKI_SHA384, YEAR, 0);
    const char *san[] = {"io.example.com"};
    struct dbt_pki_cert *leaf =
        make_leaf(DBT_PKI_PROFILE_SERVER, NULL, san, 1, ek, root, xk, DBT_PKI_SHA384, DAY, 0);
    char *pem = NULL, *pem2 = NULL, *leaf_pem = NULL, *key_pem = NULL;
    struct dbt_pki_cert *c = NULL;
    struct dbt_pki_cert_info a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    CHECK_OK(dbt_pki_cert_to_pem(root, &pem));
    CHECK(pem && strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
    CHECK_OK(dbt_pki_cert_from_pem(pem, &c));
    CHECK_OK(dbt_pki_cert_to_pem(c, &pem2));
    CHECK(pem && pem2 && strcmp(pem, pem2) == 0);
    dbt_pki_cert_free(c);
    c = NULL;
    CHECK_OK(dbt_pki_cert_info_pem(pem, &a));
    CHECK_OK(dbt_pki_cert_info(root, &b));
    CHECK(strcmp(a.sha256, b.sha256) == 0 && strcmp(a.serial, b.serial) == 0);
    dbt_pki_cert_info_cleanup(&a);
    dbt_pki_cert_info_cleanup(&b);

    /* DER round trip and trailing bytes. */
    uint8_t *der = NULL;
    size_t der_len = 0;
    CHECK_OK(dbt_pki_cert_to_der(leaf, &der, &der_len));
    CHECK_OK(dbt_pki_cert_from_der(der, der_len, &c));
    CHECK_OK(dbt_pki_cert_key_match(c, ek));
    dbt_pki_cert_free(c);
    c = NULL;
    uint8_t *longer = malloc(der_len + 1);
    memcpy(longer, der, der_len);
    longer[der_len] = 0;
    CHECK_ERR(dbt_pki_cert_from_der(longer, der_len + 1, &c), DBT_E_INVALID);
    int parsed = 0;
    for (size_t n = 0; n < der_len; n++) { /* truncation at every byte */
        if (dbt_ok(dbt_pki_cert_from_der(der, n, &c))) {
            parsed++;
            dbt_pki_cert_free(c);
            c = NULL;
        }
    }
    CHECK(parsed == 0);
    CHECK_ERR(dbt_pki_cert_from_der(der, der_len - 1, &c), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_cert_from_der(der, 0, &c), DBT_E_INVALID);
    free(longer);
    free(der);

    /* Bad PEM. */
    CHECK_ERR(dbt_pki_cert_from_pem("", &c), DBT_E_INVALID);
    CHECK(msg_has("no certificate"));
    CHECK_ERR(dbt_pki_cert_from_pem(NULL, &c), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_cert_from_pem("-----BEGIN CERTIFICATE-----\nMIIB!!!\n-----END "
                                    "CERTIFICATE-----\n",
                                    &c),
              DBT_E_INVALID);
    CHECK(msg_has("cannot parse certificate PEM"));
    if (pem != NULL) {
        char *cut = strdup(pem);
        cut[strlen(cut) / 2] = '\0';
        CHECK_ERR(dbt_pki_cert_from_pem(cut, &c), DBT_E_INVALID);
        /* A modified base64 character inside the body changes the DER: parse or signature
         * check must fail. */
        strcpy(cut, pem);
        cut[100] = cut[100] == 'A' ? 'B' : 'A';
        dbt_res r = dbt_pki_cert_from_pem(cut, &c);
        if (dbt_ok(r)) {
            struct dbt_pki_certs trusted = list_of(root, NULL);
            struct dbt_pki_verify_opts o = {.trusted = &trusted};
            CHECK(!dbt_ok(dbt_pki_verify(c, &o, NULL)));
            dbt_pki_certs_free(&trusted);
            dbt_pki_cert_free(c);
            c = NULL;
        }
        free(cut);
    }
    CHECK(c == NULL);

    /* A chain file with a key block in between: certificates only, in order. */
    CHECK_OK(dbt_pki_cert_to_pem(leaf, &leaf_pem));
    CHECK_OK(dbt_pki_key_to_pem(ek, &key_pem));
    size_t total = strlen(leaf_pem) + strlen(key_pem) + strlen(pem) + 32;
    char *bundle = malloc(total);
    snprintf(bundle, total, "junk\n%s%s\n%s", leaf_pem, key_pem, pem);
    struct dbt_pki_certs list = {NULL, 0};
    CHECK_OK(dbt_pki_certs_from_pem(bundle, &list));
    CHECK(list.n == 2);
    if (list.n == 2) {
        CHECK_OK(dbt_pki_cert_key_match(list.v[0], ek));
        CHECK_OK(dbt_pki_cert_key_match(list.v[1], xk));
    }
    dbt_pki_certs_free(&list);
    CHECK(list.v == NULL && list.n == 0);
    CHECK_ERR(dbt_pki_certs_from_pem(key_pem, &list), DBT_E_INVALID);
    /* A combined "cert then key" file yields its key. */
    struct dbt_pki_key *bk = NULL;
    CHECK_OK(dbt_pki_key_from_pem(bundle, &bk));
    if (bk != NULL) {
        CHECK_OK(dbt_pki_cert_key_match(leaf, bk));
    }
    dbt_pki_key_free(bk);
    CHECK_ERR(dbt_pki_certs_from_pem(NULL, &list), DBT_E_INVALID);
    free(bundle);

    struct dbt_pki_cert *ref = dbt_pki_cert_ref(leaf);
    CHECK(ref != NULL);
    dbt_pki_cert_free(ref);

    dbt_pki_wipe_free(key_pem);
    free(leaf_pem);
    free(pem);
    free(pem2);
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(leaf);
}

static void test_crl(void)
{
    int64_t now = dbt_now_unix();
    struct dbt_pki_key *ck = key_of(DBT_PKI_KEY_EC384);
    struct dbt_pki_key *ek = key_of(DBT_PKI_KEY_EC256);
    struct dbt_pki_cert *ca = make_ca("Client CA", ck, NULL, NULL, 0, DBT_PKI_SHA384, YEAR, 0);
    struct dbt_pki_cert *alice =
        make_leaf(DBT_PKI_PROFILE_CLIENT, "alice", NULL, 0, ek, ca, ck, DBT_PKI_SHA384, DAY, 0);
    struct dbt_pki_cert *bob =
        make_leaf(DBT_PKI_PROFILE_CLIENT, "bob", NULL, 0, ek, ca, ck, DBT_PKI_SHA384, DAY, 0);
    struct dbt_pki_cert_info ai;
    memset(&ai, 0, sizeof(ai));
    CHECK_OK(dbt_pki_cert_info(alice, &ai));

    struct dbt_pki_crl *empty = NULL, *crl = NULL, *crl2 = NULL;
    struct dbt_pki_crl_spec spec = {
        .issuer = ca,
        .issuer_key = ck,
        .digest = DBT_PKI_SHA384,
        .number = 1,
    };
    CHECK_OK(dbt_pki_crl_build(&spec, &empty));
    CHECK_OK(verify(alice, ca, NULL, empty, DBT_PKI_PURPOSE_CLIENT, NULL, 0));

    /* Lower-case serial, plus one unknown serial. */
    char lower[65];
    snprintf(lower, sizeof(lower), "%s", ai.serial);
    for (char *p = lower; *p; p++) {
        if (*p >= 'A' && *p <= 'F') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    struct dbt_pki_revoked rev[] = {{"0DEADBEEF", now - 60}, {lower, now - 10}};
    spec.revoked = rev;
    spec.n_revoked = 2;
    spec.number = 2;
    CHECK_OK(dbt_pki_crl_build(&spec, &crl));
    CHECK_ERR(verify(alice, ca, NULL, crl, DBT_PKI_PURPOSE_CLIENT, NULL, 0), DBT_E_INVALID);
    CHECK(msg_has("certificate revoked"));
    CHECK_OK(verify(bob, ca, NULL, crl, DBT_PKI_PURPOSE_CLIENT, NULL, 0));
    CHECK(dbt_pki_crl_has_serial(crl, ai.serial));
    CHECK(dbt_pki_crl_has_serial(crl, "deadbeef"));
    CHECK(!dbt_pki_crl_has_serial(crl, "1234"));
    CHECK(!dbt_pki_crl_has_serial(crl, "zz"));
    CHECK(!dbt_pki_crl_has_serial(empty, ai.serial));

    struct dbt_pki_crl_info info;
    CHECK_OK(dbt_pki_crl_info(crl, &info));
    CHECK(info.number == 2);
    CHECK(info.n_revoked == 2);
    CHECK(info.last_update >= now - 5 && info.last_update <= now + 5);
    CHECK(info.next_update - info.last_update == DBT_PKI_CRL_DEFAULT_NEXT_UPDATE_SECS);
    CHECK(strcmp(info.issuer, "CN=Client CA,O=dbtls,C=US") == 0);

    /* PEM round trip; the openssl command reads it and finds the revoked serial. */
    char *pem = NULL, *ca_pem = NULL, *out = NULL, path[512], ca_path[512], cmd[2048];
    CHECK_OK(dbt_pki_crl_to_pem(crl, &pem));
    CHECK(pem && strncmp(pem, "-----BEGIN X509 CRL-----\n", 25) == 0);
    CHECK_OK(dbt_pki_crl_from_pem(pem, &crl2));
    if (crl2 != NULL) {
        CHECK(dbt_pki_crl_has_serial(crl2, ai.serial));
        CHECK_ERR(verify(alice, ca, NULL, crl2, DBT_PKI_PURPOSE_CLIENT, NULL, 0), DBT_E_INVALID);
    }
    CHECK_OK(dbt_pki_cert_to_pem(ca, &ca_pem));
    snprintf(path, sizeof(path), "%s/crl.pem", tmpdir);
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
    CHECK(pem && write_file(path, pem, strlen(pem)));
    CHECK(ca_pem && write_file(ca_path, ca_pem, strlen(ca_pem)));
    snprintf(cmd, sizeof(cmd), "openssl crl -noout -text -in %s -CAfile %s", path, ca_path);
    CHECK(run(cmd, &out) == 0);
    CHECK(strstr(out, ai.serial) != NULL);
    CHECK(strstr(out, "X509v3 CRL Number") != NULL);
    CHECK(strstr(out, "X509v3 Authority Key Identifier") != NULL);
    CHECK(strstr(out, "verify OK") != NULL);
    CHECK(strstr(out, "Version 2") != NULL);
    free(out);
    /* openssl verify with the CRL agrees: alice revoked, bob fine. */
    char *leaf_pem = NULL, leaf_path[512];
    struct dbt_pki_cert *leaves[2] = {alice, bob};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(dbt_pki_cert_to_pem(leaves[i], &leaf_pem));
        snprintf(leaf_path, sizeof(leaf_path), "%s/leaf%d.pem", tmpdir, i);
        CHECK(leaf_pem && write_file(leaf_path, leaf_pem, strlen(leaf_pem)));
        free(leaf_pem);
        leaf_pem = NULL;
        snprintf(cmd, sizeof(cmd),
                 "openssl verify -x509_strict -crl_check -purpose sslclient -CRLfile %s "
                 "-CAfile %s %s",
                 path, ca_path, leaf_path);
        int rc = run(cmd, &out);
        CHECK(i == 0 ? rc != 0 && strstr(out, "certificate revoked") != NULL
                     : rc == 0 && strstr(out, ": OK") != NULL);
        free(out);
    }

    /* The default CRL number is the issue time; nextUpdate configurable. */
    struct dbt_pki_crl *c3 = NULL;
    spec.number = 0;
    spec.next_update_secs = 3600;
    spec.now = now - 100;
    CHECK_OK(dbt_pki_crl_build(&spec, &c3));
    if (c3 != NULL) {
        CHECK_OK(dbt_pki_crl_info(c3, &info));
        CHECK(info.number == (uint64_t)(now - 100));
        CHECK(info.last_update == now - 100);
        CHECK(info.next_update == now - 100 + 3600);
        /* An expired CRL fails verification, as it would in the TLS front. */
        CHECK_ERR(verify(bob, ca, NULL, c3, DBT_PKI_PURPOSE_CLIENT, NULL, now + 7200),
                  DBT_E_INVALID);
        CHECK(msg_has("CRL has expired"));
    }
    dbt_pki_crl_free(c3);
    c3 = NULL;

    /* Failure paths. */
    struct dbt_pki_crl_spec bad = spec;
    struct dbt_pki_revoked badrev[] = {{"not-hex", now}};
    bad.revoked = badrev;
    bad.n_revoked = 1;
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    CHECK(msg_has("not-hex"));
    badrev[0].serial = "";
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    badrev[0].serial = "123456789012345678901234567890123456789012"; /* 42 digits */
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    bad = spec;
    bad.issuer = alice; /* not a CA */
    bad.issuer_key = ek;
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    bad = spec;
    bad.issuer_key = ek; /* wrong key */
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    bad = spec;
    bad.issuer = NULL;
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    bad = spec;
    bad.next_update_secs = -1;
    CHECK_ERR(dbt_pki_crl_build(&bad, &c3), DBT_E_INVALID);
    CHECK(c3 == NULL);
    CHECK_ERR(dbt_pki_crl_from_pem("garbage", &c3), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_crl_from_pem(ca_pem, &c3), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_crl_from_pem(NULL, &c3), DBT_E_INVALID);

    free(pem);
    free(ca_pem);
    dbt_pki_cert_info_cleanup(&ai);
    dbt_pki_crl_free(empty);
    dbt_pki_crl_free(crl);
    dbt_pki_crl_free(crl2);
    dbt_pki_cert_free(ca);
    dbt_pki_cert_free(alice);
    dbt_pki_cert_free(bob);
}

static void test_bundles(void)
{
    struct dbt_pki_key *rk = key_of(DBT_PKI_KEY_RSA2048);
    struct dbt_pki_key *xk = key_of(DBT_PKI_KEY_EC384);
    struct dbt_pki_key *ek = key_of(DBT_PKI_KEY_EC256);
    struct dbt_pki_cert *root = make_ca("Bundle Root", rk, NULL, NULL, 1, DBT_PKI_SHA256, YEAR, 0);
    struct dbt_pki_cert *inter =
        make_ca("Bundle Intermediate", xk, root, rk, 0, DBT_PKI_SHA384, YEAR, 0);
    struct dbt_pki_cert *client =
        make_leaf(DBT_PKI_PROFILE_CLIENT, "carol", NULL, 0, ek, inter, xk, DBT_PKI_SHA384, DAY, 0);
    struct dbt_pki_certs cas = list_of(root, inter);
    struct dbt_pki_certs back = {NULL, 0}, empty = {NULL, 0};
    struct dbt_pki_cert_info a, b;
    char path[512], cmd[1400], *out = NULL;

    /* PKCS#7, DER and PEM, read back by us and by openssl. */
    uint8_t *der = NULL;
    size_t der_len = 0;
    char *pem = NULL;
    CHECK_OK(dbt_pki_p7b_der(&cas, &der, &der_len));
    CHECK_OK(dbt_pki_p7b_pem(&cas, &pem));
    CHECK(pem && strncmp(pem, "-----BEGIN PKCS7-----\n", 22) == 0);
    CHECK_OK(dbt_pki_p7b_parse(der, der_len, &back));
    CHECK(back.n == 2);
    for (size_t i = 0; i < back.n && i < 2; i++) {
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        CHECK_OK(dbt_pki_cert_info(back.v[i], &a));
        CHECK_OK(dbt_pki_cert_info(cas.v[i], &b));
        CHECK(strcmp(a.sha256, b.sha256) == 0);
        dbt_pki_cert_info_cleanup(&a);
        dbt_pki_cert_info_cleanup(&b);
    }
    dbt_pki_certs_free(&back);
    CHECK_OK(dbt_pki_p7b_parse((const uint8_t *)pem, strlen(pem), &back));
    CHECK(back.n == 2);
    dbt_pki_certs_free(&back);

    snprintf(path, sizeof(path), "%s/bundle.p7b", tmpdir);
    CHECK(write_file(path, der, der_len));
    snprintf(cmd, sizeof(cmd), "openssl pkcs7 -inform DER -print_certs -in %s", path);
    CHECK(run(cmd, &out) == 0);
    CHECK(count(out, "-----BEGIN CERTIFICATE-----") == 2);
    CHECK(strstr(out, "subject=C = US, O = dbtls, CN = Bundle Root") != NULL);
    CHECK(strstr(out, "CN = Bundle Intermediate") != NULL);
    free(out);
    snprintf(path, sizeof(path), "%s/bundle.p7b.pem", tmpdir);
    CHECK(write_file(path, pem, strlen(pem)));
    snprintf(cmd, sizeof(cmd), "openssl pkcs7 -print_certs -noout -in %s", path);
    CHECK(run(cmd, &out) == 0);
    CHECK(count(out, "subject=") == 2);
    free(out);

    CHECK_ERR(dbt_pki_p7b_der(&empty, &der, &der_len), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_p7b_pem(&empty, &pem), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_p7b_parse((const uint8_t *)"garbage", 7, &back), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_p7b_parse(der, der_len - 1, &back), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_p7b_parse(NULL, 0, &back), DBT_E_INVALID);
    free(der);
    free(pem);
    der = NULL;

    /* PKCS#12 with a password and a chain; read back by us and by openssl. */
    CHECK_OK(dbt_pki_p12_build(client, ek, &cas, "s3cret", "carol", &der, &der_len));
    struct dbt_pki_cert *c2 = NULL;
    struct dbt_pki_key *k2 = NULL;
    CHECK_OK(dbt_pki_p12_parse(der, der_len, "s3cret", &c2, &k2, &back));
    CHECK(back.n == 2);
    if (c2 != NULL && k2 != NULL) {
        CHECK_OK(dbt_pki_cert_key_match(c2, k2));
        CHECK_OK(dbt_pki_cert_key_match(client, k2));
        CHECK_OK(verify(c2, root, inter, NULL, DBT_PKI_PURPOSE_CLIENT, NULL, 0));
    }
    dbt_pki_cert_free(c2);
    dbt_pki_key_free(k2);
    dbt_pki_certs_free(&back);
    c2 = NULL;
    k2 = NULL;
    CHECK_ERR(dbt_pki_p12_parse(der, der_len, "wrong", &c2, &k2, &back), DBT_E_CRYPTO);
    CHECK(msg_has("wrong password"));
    CHECK(c2 == NULL && k2 == NULL && back.n == 0);
    CHECK_ERR(dbt_pki_p12_parse(der, der_len / 2, "s3cret", &c2, &k2, NULL), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_p12_parse((const uint8_t *)"xx", 2, "s3cret", &c2, NULL, NULL),
              DBT_E_INVALID);

    snprintf(path, sizeof(path), "%s/client.p12", tmpdir);
    CHECK(write_file(path, der, der_len));
    snprintf(cmd, sizeof(cmd), "openssl pkcs12 -info -nokeys -passin pass:s3cret -in %s", path);
    CHECK(run(cmd, &out) == 0);
    CHECK(strstr(out, "MAC: sha256") != NULL);
    CHECK(strstr(out, "PBES2, PBKDF2, AES-256-CBC") != NULL);
    CHECK(strstr(out, "friendlyName: carol") != NULL);
    CHECK(count(out, "-----BEGIN CERTIFICATE-----") == 3);
    free(out);
    snprintf(cmd, sizeof(cmd), "openssl pkcs12 -info -nokeys -passin pass:nope -in %s", path);
    CHECK(run(cmd, &out) != 0);
    free(out);
    /* Java's keytool, when a JRE is installed (the p12 exists for Java clients). */
    if (system("command -v keytool >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof(cmd),
                 "timeout 60 keytool -list -v -storetype PKCS12 -storepass s3cret -keystore %s",
                 path);
        CHECK(run(cmd, &out) == 0);
        CHECK(strstr(out, "Alias name: carol") != NULL);
        CHECK(strstr(out, "PrivateKeyEntry") != NULL);
        CHECK(strstr(out, "Certificate chain length: 3") != NULL);
        free(out);
        snprintf(cmd, sizeof(cmd),
                 "timeout 60 keytool -list -storetype PKCS12 -storepass wrongpw -keystore %s",
                 path);
        CHECK(run(cmd, &out) != 0);
        free(out);
    } else {
        fprintf(stderr, "keytool not installed: PKCS#12 not checked with Java\n");
    }
    free(der);
    der = NULL;

    /* Empty password (NULL), no chain. */
    CHECK_OK(dbt_pki_p12_build(client, ek, NULL, NULL, NULL, &der, &der_len));
    CHECK_OK(dbt_pki_p12_parse(der, der_len, "", &c2, NULL, NULL));
    dbt_pki_cert_free(c2);
    c2 = NULL;
    CHECK(write_file(path, der, der_len));
    snprintf(cmd, sizeof(cmd), "openssl pkcs12 -info -nokeys -passin pass: -in %s", path);
    CHECK(run(cmd, &out) == 0);
    free(out);
    free(der);
    der = NULL;
    /* A key that does not belong to the certificate. */
    CHECK_ERR(dbt_pki_p12_build(client, xk, NULL, "x", NULL, &der, &der_len), DBT_E_INVALID);
    CHECK(der == NULL);

    dbt_pki_certs_free(&cas);
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(inter);
    dbt_pki_cert_free(client);
}

/* The openssl command agrees with dbt_pki_verify on a whole chain and with the CRL. */
static void test_openssl_verify(void)
{
    struct dbt_pki_key *rk = key_of(DBT_PKI_KEY_RSA4096);
    struct dbt_pki_key *rk2 = key2_of(DBT_PKI_KEY_RSA4096);
    struct dbt_pki_key *ek = key_of(DBT_PKI_KEY_EC256);
    struct dbt_pki_cert *root = make_ca("V Root", rk, NULL, NULL, -1, DBT_PKI_SHA384, YEAR, 0);
    struct dbt_pki_cert *inter = make_ca("V Inter", rk2, root, rk, 0, DBT_PKI_SHA384, YEAR, 0);
    const char *san[] = {"v.example.com", "127.0.0.1"};
    struct dbt_pki_cert *server =
        make_leaf(DBT_PKI_PROFILE_SERVER, NULL, san, 2, ek, inter, rk2, DBT_PKI_SHA384, DAY, 0);
    char *p[3] = {NULL, NULL, NULL}, path[3][512], cmd[2048], *out = NULL;
    struct dbt_pki_cert *certs[3] = {root, inter, server};
    const char *names[3] = {"root.pem", "inter.pem", "server.pem"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(dbt_pki_cert_to_pem(certs[i], &p[i]));
        snprintf(path[i], sizeof(path[i]), "%s/%s", tmpdir, names[i]);
        CHECK(p[i] && write_file(path[i], p[i], strlen(p[i])));
    }
    snprintf(cmd, sizeof(cmd),
             "openssl verify -x509_strict -purpose sslserver -verify_hostname v.example.com "
             "-verify_ip 127.0.0.1 -CAfile %s -untrusted %s %s",
             path[0], path[1], path[2]);
    CHECK(run(cmd, &out) == 0);
    CHECK(strstr(out, ": OK") != NULL);
    free(out);
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s %s", path[0], path[2]);
    CHECK(run(cmd, &out) != 0);
    free(out);
    for (int i = 0; i < 3; i++) {
        free(p[i]);
    }
    dbt_pki_cert_free(root);
    dbt_pki_cert_free(inter);
    dbt_pki_cert_free(server);

    /* dbt_pki_verify argument errors. */
    struct dbt_pki_certs none = {NULL, 0};
    struct dbt_pki_verify_opts o = {.trusted = &none};
    int verr = -1;
    CHECK_ERR(dbt_pki_verify(NULL, &o, &verr), DBT_E_INVALID);
    CHECK(verr == 0);
}

/* dbt_pki_pubkey_from_pem: public PEM and certificate requests in, the private half never
   needed; what a client certificate may certify is checked. */
static char *pub_pem_of(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b != NULL && PEM_write_bio_PUBKEY(b, pk)) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static void test_pubkeys(void)
{
    struct dbt_pki_key *k = NULL;
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    EVP_PKEY *k1 = EVP_EC_gen("secp256k1");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    CHECK(ec && k1 && ed && rsa);
    char *ec_pem = pub_pem_of(ec), *k1_pem = pub_pem_of(k1), *ed_pem = pub_pem_of(ed);
    char *rsa_pem = pub_pem_of(rsa);
    CHECK_OK(dbt_pki_pubkey_from_pem(ec_pem, &k));
    dbt_pki_key_free(k);
    k = NULL;
    CHECK_OK(dbt_pki_pubkey_from_pem(ed_pem, &k));
    dbt_pki_key_free(k);
    k = NULL;
    CHECK_ERR(dbt_pki_pubkey_from_pem(k1_pem, &k), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "secp256k1") != NULL);
    CHECK_ERR(dbt_pki_pubkey_from_pem(rsa_pem, &k), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "1024 bits") != NULL);
    /* a private key, nothing, a truncated body */
    char *priv = NULL;
    CHECK_OK(dbt_pki_key_to_pem(key_of(DBT_PKI_KEY_EC256), &priv));
    CHECK_ERR(dbt_pki_pubkey_from_pem(priv, &k), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_pubkey_from_pem("", &k), DBT_E_INVALID);
    CHECK_ERR(dbt_pki_pubkey_from_pem(NULL, &k), DBT_E_INVALID);
    char *cut = strndup(ec_pem, strlen(ec_pem) / 2);
    CHECK_ERR(dbt_pki_pubkey_from_pem(cut, &k), DBT_E_INVALID);
    CHECK(k == NULL);
    free(cut);
    dbt_pki_wipe_free(priv);
    free(ec_pem);
    free(k1_pem);
    free(ed_pem);
    free(rsa_pem);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_key_types();
    test_keys();
    test_pubkeys();
    test_seal();
    test_names();
    for (int t = 0; t < 4; t++) {
        test_chain((enum dbt_pki_key_type)t, DBT_PKI_SHA256);
        test_chain((enum dbt_pki_key_type)t, DBT_PKI_SHA384);
    }
    test_issue_rules();
    test_cert_io();
    test_crl();
    test_bundles();
    test_openssl_verify();

    for (int t = 0; t < 4; t++) {
        dbt_pki_key_free(keys[t]);
        dbt_pki_key_free(keys2[t]);
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_exit();
}
