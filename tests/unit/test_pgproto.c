/*
 * test_pgproto.c - unit tests of the PostgreSQL wire decoders/encoders (src/proto/pg): every
 * decoder with truncation at every byte, zero, maximum, maximum+1, missing terminators and
 * trailing bytes; encoders checked byte for byte and round-tripped through the decoders.
 */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/wr.h"
#include "check.h"
#include "proto/pg/pg.h"

/* ---------------------------------------------------------------- helpers ------------------ */

/* A startup-style packet: length word, version, then raw body bytes (caller-provided). */
static size_t packet(uint8_t *out, size_t cap, uint32_t proto, const void *body, size_t body_len)
{
    size_t len = 8 + body_len;
    if (len > cap) {
        abort();
    }
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    out[4] = (uint8_t)(proto >> 24);
    out[5] = (uint8_t)(proto >> 16);
    out[6] = (uint8_t)(proto >> 8);
    out[7] = (uint8_t)proto;
    if (body_len) {
        memcpy(out + 8, body, body_len);
    }
    return len;
}

static struct dbt_pg_first first;

static enum dbt_pg_first_kind decode(const uint8_t *p, size_t n, unsigned flags)
{
    dbt_res r = dbt_pg_first_decode(p, n, flags, &first);
    /* The result code and the kind must agree. */
    if (first.kind == DBT_PG_FIRST_REJECT) {
        CHECK(r.code == DBT_E_PROTO);
        CHECK(strcmp(dbt_errmsg(), first.reject.message) == 0);
    } else {
        CHECK(dbt_ok(r));
    }
    return first.kind;
}

/* Every strict prefix of a complete packet asks for more (never reads past n: ASan checks). */
static void check_prefixes_need_more(const uint8_t *p, size_t n, unsigned flags)
{
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, p, k);
        enum dbt_pg_first_kind kind = decode(copy, k, flags);
        CHECK(kind == DBT_PG_FIRST_NEED_MORE);
        CHECK(first.need == (k < 4 ? 4 : n));
        CHECK(first.consumed == 0);
        free(copy);
    }
}

/* ---------------------------------------------------------------- first packet ------------- */

static void test_ssl_gss_requests(void)
{
    static const uint8_t ssl[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    static const uint8_t gss[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30};
    CHECK(DBT_PG_SSL_REQUEST_CODE == 80877103u);
    CHECK(DBT_PG_GSSENC_REQUEST_CODE == 80877104u);
    CHECK(DBT_PG_CANCEL_REQUEST_CODE == 80877102u);

    CHECK(decode(ssl, sizeof(ssl), 0) == DBT_PG_FIRST_SSL_REQUEST);
    CHECK(first.consumed == 8);
    check_prefixes_need_more(ssl, sizeof(ssl), 0);
    CHECK(decode(gss, sizeof(gss), 0) == DBT_PG_FIRST_GSSENC_REQUEST);
    CHECK(first.consumed == 8);
    /* Either order: GSS after SSL was answered 'N', SSL after GSS was answered 'N'. */
    CHECK(decode(gss, sizeof(gss), DBT_PG_FIRST_SSL_DONE) == DBT_PG_FIRST_GSSENC_REQUEST);
    CHECK(decode(ssl, sizeof(ssl), DBT_PG_FIRST_GSS_DONE) == DBT_PG_FIRST_SSL_REQUEST);

    /* A second SSLRequest is a protocol version for PostgreSQL, and refused as such. */
    CHECK(decode(ssl, sizeof(ssl), DBT_PG_FIRST_SSL_DONE) == DBT_PG_FIRST_REJECT);
    CHECK(first.reject.send);
    CHECK(strcmp(first.reject.sqlstate, "0A000") == 0);
    CHECK(strcmp(first.reject.message,
                 "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2") == 0);
    CHECK(decode(gss, sizeof(gss), DBT_PG_FIRST_GSS_DONE | DBT_PG_FIRST_SSL_DONE) ==
          DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.message,
                 "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.2") == 0);

    /* Inside TLS neither request is special any more (both negotiations count as done). */
    CHECK(decode(gss, sizeof(gss), DBT_PG_FIRST_IN_TLS) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.message,
                 "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.2") == 0);
    CHECK(decode(ssl, sizeof(ssl), DBT_PG_FIRST_IN_TLS) == DBT_PG_FIRST_REJECT);

    /* Pipelined bytes after the request are not consumed: the session sees them (CVE-2021-3935). */
    uint8_t piped[16];
    memcpy(piped, ssl, 8);
    memcpy(piped + 8, "\0\0\0\x08\0\x03\0\0", 8);
    CHECK(decode(piped, sizeof(piped), 0) == DBT_PG_FIRST_SSL_REQUEST);
    CHECK(first.consumed == 8);

    /* A longer SSLRequest is still one (PostgreSQL reads the whole length, then the code). */
    uint8_t longer[12];
    size_t n = packet(longer, sizeof(longer), DBT_PG_SSL_REQUEST_CODE, "abcd", 4);
    CHECK(decode(longer, n, 0) == DBT_PG_FIRST_SSL_REQUEST);
    CHECK(first.consumed == 12);
}

static void test_direct_tls_and_lengths(void)
{
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    CHECK(decode(hello, 1, 0) == DBT_PG_FIRST_DIRECT_TLS);
    CHECK(first.consumed == 0);
    CHECK(decode(hello, sizeof(hello), 0) == DBT_PG_FIRST_DIRECT_TLS);
    /* After a negotiation, 0x16 is read as a length word: hundreds of megabytes. */
    CHECK(decode(hello, sizeof(hello), DBT_PG_FIRST_SSL_DONE) == DBT_PG_FIRST_REJECT);
    CHECK(!first.reject.send);
    CHECK(strcmp(first.reject.message, "invalid length of startup packet") == 0);
    CHECK(decode(hello, sizeof(hello), DBT_PG_FIRST_IN_TLS) == DBT_PG_FIRST_REJECT);

    /* Zero, below minimum, maximum, maximum + 1. */
    uint8_t b[4];
    for (uint32_t len = 0; len < 8; len++) {
        b[0] = 0, b[1] = 0, b[2] = 0, b[3] = (uint8_t)len;
        CHECK(decode(b, 4, 0) == DBT_PG_FIRST_REJECT);
        CHECK(!first.reject.send);
        CHECK(strcmp(first.reject.sqlstate, "08P01") == 0);
    }
    uint32_t max = DBT_PG_MAX_STARTUP_PACKET_LENGTH + 4;
    b[0] = 0, b[1] = 0, b[2] = (uint8_t)(max >> 8), b[3] = (uint8_t)max;
    CHECK(decode(b, 4, 0) == DBT_PG_FIRST_NEED_MORE);
    CHECK(first.need == max);
    max++;
    b[2] = (uint8_t)(max >> 8), b[3] = (uint8_t)max;
    CHECK(decode(b, 4, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.message, "invalid length of startup packet") == 0);
    b[0] = 0xff, b[1] = 0xff, b[2] = 0xff, b[3] = 0xff;
    CHECK(decode(b, 4, 0) == DBT_PG_FIRST_REJECT);
    b[0] = 0x7f;
    CHECK(decode(b, 4, 0) == DBT_PG_FIRST_REJECT);

    /* A packet of exactly the maximum: one huge option value, well formed. */
    size_t total = DBT_PG_MAX_STARTUP_PACKET_LENGTH + 4;
    uint8_t *big = calloc(1, total);
    size_t body = total - 8;
    uint8_t *bb = calloc(1, body);
    memcpy(bb, "user\0u\0options\0", 15);
    memset(bb + 15, 'x', body - 15 - 2);
    bb[body - 2] = 0; /* value terminator */
    bb[body - 1] = 0; /* packet terminator */
    packet(big, total, DBT_PG_PROTO(3, 0), bb, body);
    CHECK(decode(big, total, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.consumed == total);
    CHECK(strcmp(first.startup.user, "u") == 0);
    CHECK(first.startup.options != NULL && strlen(first.startup.options) == body - 17);
    free(big);
    free(bb);
}

static void test_cancel(void)
{
    uint8_t p[300];
    uint8_t body[270];
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)i;
    }
    body[0] = 0, body[1] = 0, body[2] = 0x30, body[3] = 0x39; /* pid 12345 */

    size_t n = packet(p, sizeof(p), DBT_PG_CANCEL_REQUEST_CODE, body, 8);
    CHECK(n == 16);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_CANCEL);
    CHECK(first.consumed == 16);
    CHECK(first.cancel.pid == 12345);
    CHECK(first.cancel.key_len == 4);
    CHECK(memcmp(first.cancel.key, body + 4, 4) == 0);
    check_prefixes_need_more(p, n, 0);
    /* Through TLS too. */
    CHECK(decode(p, n, DBT_PG_FIRST_SSL_DONE | DBT_PG_FIRST_IN_TLS) == DBT_PG_FIRST_CANCEL);

    /* Protocol 3.2: 1..256 key bytes. */
    n = packet(p, sizeof(p), DBT_PG_CANCEL_REQUEST_CODE, body, 4 + 256);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_CANCEL);
    CHECK(first.cancel.key_len == 256);
    CHECK(memcmp(first.cancel.key, body + 4, 256) == 0);
    n = packet(p, sizeof(p), DBT_PG_CANCEL_REQUEST_CODE, body, 4 + 1);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_CANCEL);
    CHECK(first.cancel.key_len == 1);

    /* No key, a pid cut short, 257 bytes: logged, never answered. */
    static const size_t bad[] = {0, 2, 4, 4 + 257};
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad); i++) {
        n = packet(p, sizeof(p), DBT_PG_CANCEL_REQUEST_CODE, body, bad[i]);
        CHECK(decode(p, n, 0) == DBT_PG_FIRST_REJECT);
        CHECK(!first.reject.send);
        CHECK(strcmp(first.reject.message,
                     "invalid length of cancel key in cancel request packet") == 0);
    }

    /* Encoder round trip. */
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_pg_cancel_key k = {.pid = 77, .key_len = 32};
    for (int i = 0; i < 32; i++) {
        k.key[i] = (uint8_t)(0xa0 + i);
    }
    CHECK_OK(dbt_pg_cancel_encode(&b, &k));
    CHECK(b.len == 12 + 32);
    CHECK(decode(b.data, b.len, 0) == DBT_PG_FIRST_CANCEL);
    CHECK(first.cancel.pid == 77 && first.cancel.key_len == 32);
    CHECK(memcmp(first.cancel.key, k.key, 32) == 0);
    k.key_len = 0;
    CHECK_ERR(dbt_pg_cancel_encode(&b, &k), DBT_E_INVALID);
    k.key_len = 257;
    CHECK_ERR(dbt_pg_cancel_encode(&b, &k), DBT_E_INVALID);
    dbt_buf_cleanup(&b);
}

static size_t startup_of(uint8_t *p, size_t cap, uint32_t proto, const char *const *kv)
{
    uint8_t body[4096];
    size_t n = 0;
    for (size_t i = 0; kv[i]; i++) {
        size_t l = strlen(kv[i]) + 1;
        memcpy(body + n, kv[i], l);
        n += l;
    }
    body[n++] = 0;
    return packet(p, cap, proto, body, n);
}

static void test_startup(void)
{
    uint8_t p[8192];
    static const char *const kv[] = {
        "user",        "alice",           "database", "shop", "application_name", "psql", "options",
        "-c geqo=off", "client_encoding", "UTF8",     NULL};
    size_t n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), kv);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.consumed == n);
    CHECK(first.startup.proto == DBT_PG_PROTO(3, 0));
    CHECK(strcmp(first.startup.user, "alice") == 0);
    CHECK(strcmp(first.startup.database, "shop") == 0);
    CHECK(first.startup.has_application_name);
    CHECK(strcmp(first.startup.application_name, "psql") == 0);
    CHECK(first.startup.options && strcmp(first.startup.options, "-c geqo=off") == 0);
    CHECK(first.startup.replication == DBT_PG_REPLICATION_NONE);
    CHECK(first.startup.n_params == 5);
    CHECK(!first.startup.needs_negotiate);
    /* The iterator yields every pair in order. */
    struct dbt_rd it = first.startup.params;
    struct dbt_pg_param prm;
    size_t i = 0;
    while (dbt_pg_startup_param_next(&it, &prm)) {
        CHECK(strcmp(prm.name, kv[2 * i]) == 0);
        CHECK(strcmp(prm.value, kv[2 * i + 1]) == 0);
        i++;
    }
    CHECK(i == 5);
    check_prefixes_need_more(p, n, 0);
    check_prefixes_need_more(p, n, DBT_PG_FIRST_SSL_DONE | DBT_PG_FIRST_IN_TLS);

    /* Trailing bytes after the terminator (length covers them): layout error. */
    uint8_t q[8192];
    memcpy(q, p, n);
    q[n] = 'x';
    q[3] = (uint8_t)(n + 1);
    CHECK(n + 1 < 256);
    CHECK(decode(q, n + 1, 0) == DBT_PG_FIRST_REJECT);
    CHECK(first.reject.send);
    CHECK(strcmp(first.reject.sqlstate, "08P01") == 0);
    CHECK(strcmp(first.reject.message,
                 "invalid startup packet layout: expected terminator as last byte") == 0);
    /* Missing packet terminator (length shortened by one). */
    q[3] = (uint8_t)(n - 1);
    CHECK(decode(q, n - 1, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.message,
                 "invalid startup packet layout: expected terminator as last byte") == 0);
    /* Missing value terminator too. */
    q[3] = (uint8_t)(n - 2);
    CHECK(decode(q, n - 2, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.sqlstate, "08P01") == 0);
    /* Every shortened length word over the same bytes is refused, never read past. */
    for (size_t k = 8; k < n; k++) {
        memcpy(q, p, n);
        q[3] = (uint8_t)k;
        CHECK(decode(q, k, 0) == DBT_PG_FIRST_REJECT);
    }
    /* Version only, no terminator at all. */
    n = packet(q, sizeof(q), DBT_PG_PROTO(3, 0), NULL, 0);
    CHECK(decode(q, n, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.sqlstate, "08P01") == 0);
    /* Name without value. */
    n = packet(q, sizeof(q), DBT_PG_PROTO(3, 0), "user\0", 5);
    CHECK(decode(q, n, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.sqlstate, "08P01") == 0);
}

static void test_startup_users_and_versions(void)
{
    uint8_t p[4096];
    size_t n;

    /* Only the terminator: no user. */
    n = packet(p, sizeof(p), DBT_PG_PROTO(3, 0), "", 1);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_REJECT);
    CHECK(first.reject.send);
    CHECK(strcmp(first.reject.sqlstate, "28000") == 0);
    CHECK(strcmp(first.reject.message, "no PostgreSQL user name specified in startup packet") == 0);
    static const char *const empty_user[] = {"user", "", "database", "d", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), empty_user);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.sqlstate, "28000") == 0);

    /* Database defaults to the user; names are cut to NAMEDATALEN-1 bytes. */
    char longname[200];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    const char *kv[] = {"user", longname, NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), kv);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(strlen(first.startup.user) == 63);
    CHECK(strcmp(first.startup.user, first.startup.database) == 0);
    CHECK(!first.startup.has_application_name);

    /* application_name is cleaned to printable ASCII, as PostgreSQL does. */
    static const char *const app[] = {"user", "u", "application_name", "a\tb\xc3\xa9", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), app);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(strcmp(first.startup.application_name, "a?b??") == 0);

    /* Versions: 3.2 fine; 3.9 asks for negotiation; 2.0 and 4.0 refused. */
    static const char *const u[] = {"user", "u", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 2), u);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(!first.startup.needs_negotiate);
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 9), u);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.needs_negotiate);
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(2, 0), u);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.sqlstate, "0A000") == 0);
    CHECK(strcmp(first.reject.message,
                 "unsupported frontend protocol 2.0: server supports 3.0 to 3.2") == 0);
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(4, 1), u);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_REJECT);
    CHECK(strcmp(first.reject.message,
                 "unsupported frontend protocol 4.1: server supports 3.0 to 3.2") == 0);

    /* "_pq_." protocol options: counted, negotiation needed, listed by the encoder. */
    static const char *const pq[] = {"user", "u", "_pq_.foo", "1", "_pq_.bar", "x", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), pq);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.n_protocol_options == 2);
    CHECK(first.startup.needs_negotiate);
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    CHECK_OK(dbt_pg_negotiate_encode(&b, DBT_PG_PROTO(3, 2), &first.startup));
    static const uint8_t want_v[] = {'v', 0,   0,   0,   30,  0,   3,   0,   2,   0,   0,
                                     0,   2,   '_', 'p', 'q', '_', '.', 'f', 'o', 'o', 0,
                                     '_', 'p', 'q', '_', '.', 'b', 'a', 'r', 0};
    CHECK(b.len == sizeof(want_v) && memcmp(b.data, want_v, sizeof(want_v)) == 0);
    dbt_buf_cleanup(&b);
}

static void test_replication(void)
{
    uint8_t p[512];
    size_t n;
    static const char *const t[] = {"user", "r", "database", "d", "replication", "true", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), t);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.replication == DBT_PG_REPLICATION_PHYSICAL);
    CHECK(first.startup.database[0] == '\0');
    static const char *const d[] = {"user", "r", "replication", "database", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), d);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.replication == DBT_PG_REPLICATION_DATABASE);
    CHECK(strcmp(first.startup.database, "r") == 0);

    /* Repeats: "database" is sticky, a later false turns replication off, true back on. */
    static const char *const dt[] = {"user",        "r",    "replication", "database",
                                     "replication", "true", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), dt);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.replication == DBT_PG_REPLICATION_DATABASE);
    CHECK(strcmp(first.startup.database, "r") == 0);
    static const char *const df[] = {"user",        "r",   "replication", "database",
                                     "replication", "off", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), df);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.replication == DBT_PG_REPLICATION_NONE);
    static const char *const tf[] = {"user", "r", "replication", "yes", "replication", "0", NULL};
    n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), tf);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(first.startup.replication == DBT_PG_REPLICATION_NONE);
    CHECK(strcmp(first.startup.database, "r") == 0);

    static const struct {
        const char *v;
        int want; /* -1 invalid, 0 none, 1 physical */
    } cases[] = {{"on", 1}, {"ON", 1},  {"of", 0}, {"off", 0},      {"o", -1},     {"1", 1},
                 {"0", 0},  {"10", -1}, {"t", 1},  {"TRU", 1},      {"truex", -1}, {"y", 1},
                 {"no", 0}, {"f", 0},   {"", -1},  {"Database", -1}};
    for (size_t i = 0; i < DBT_ARRAY_LEN(cases); i++) {
        const char *kv[] = {"user", "r", "replication", cases[i].v, NULL};
        n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), kv);
        enum dbt_pg_first_kind k = decode(p, n, 0);
        if (cases[i].want < 0) {
            CHECK(k == DBT_PG_FIRST_REJECT);
            CHECK(strcmp(first.reject.sqlstate, "22023") == 0);
            CHECK(strncmp(first.reject.message,
                          "invalid value for parameter \"replication\": ", 43) == 0);
            CHECK(strcmp(first.reject.hint,
                         "Valid values are: \"false\", 0, \"true\", 1, \"database\".") == 0);
        } else {
            CHECK(k == DBT_PG_FIRST_STARTUP);
            CHECK(first.startup.replication ==
                  (cases[i].want ? DBT_PG_REPLICATION_PHYSICAL : DBT_PG_REPLICATION_NONE));
        }
    }
}

/* ---------------------------------------------------------------- encoders ----------------- */

static void test_encoders(void)
{
    struct dbt_buf b;
    dbt_buf_init(&b, 0);

    struct dbt_pg_error e = {"FATAL", "28000", "no entry", NULL, NULL};
    CHECK_OK(dbt_pg_error_encode(&b, &e));
    static const uint8_t want[] = {'E', 0,   0,   0,   36,  'S', 'F', 'A', 'T', 'A', 'L', 0,   'V',
                                   'F', 'A', 'T', 'A', 'L', 0,   'C', '2', '8', '0', '0', '0', 0,
                                   'M', 'n', 'o', ' ', 'e', 'n', 't', 'r', 'y', 0,   0};
    CHECK(b.len == sizeof(want));
    CHECK(memcmp(b.data, want, sizeof(want)) == 0);
    /* Decoded back through the backend-side parser. */
    struct dbt_pg_msg m;
    CHECK_OK(dbt_pg_msg_frame(b.data, b.len, 1000, &m));
    struct dbt_pg_error_fields f;
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    CHECK(strcmp(f.severity, "FATAL") == 0 && strcmp(f.severity_nl, "FATAL") == 0);
    CHECK(strcmp(f.sqlstate, "28000") == 0 && strcmp(f.message, "no entry") == 0);
    CHECK(f.detail == NULL && f.hint == NULL);

    dbt_buf_reset(&b);
    struct dbt_pg_error e2 = {"FATAL", "08P01", DBT_PG_MSG_UNENCRYPTED_AFTER_SSL,
                              DBT_PG_MSG_UNENCRYPTED_AFTER_SSL_DETAIL, "a hint"};
    CHECK_OK(dbt_pg_error_encode(&b, &e2));
    CHECK_OK(dbt_pg_msg_frame(b.data, b.len, 1000, &m));
    CHECK(m.total == b.len);
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    CHECK(strcmp(f.detail, DBT_PG_MSG_UNENCRYPTED_AFTER_SSL_DETAIL) == 0);
    CHECK(strcmp(f.hint, "a hint") == 0);

    struct dbt_pg_error bad = {"FATAL", "280", "x", NULL, NULL};
    size_t before = b.len;
    CHECK_ERR(dbt_pg_error_encode(&b, &bad), DBT_E_INVALID);
    CHECK(b.len == before);

    /* A buffer limit: refused and rolled back. */
    struct dbt_buf small;
    dbt_buf_init(&small, 16);
    CHECK_ERR(dbt_pg_error_encode(&small, &e), DBT_E_LIMIT);
    CHECK(small.len == 0);
    dbt_buf_cleanup(&small);

    dbt_buf_reset(&b);
    CHECK_OK(dbt_pg_answer_encode(&b, 'S'));
    CHECK_OK(dbt_pg_answer_encode(&b, 'N'));
    CHECK_ERR(dbt_pg_answer_encode(&b, 'G'), DBT_E_INVALID);
    CHECK(b.len == 2 && b.data[0] == 'S' && b.data[1] == 'N');

    /* Rejections from the decoder encode as FATAL with the hint. */
    uint8_t p[128];
    static const char *const kv[] = {"user", "u", "replication", "maybe", NULL};
    size_t n = startup_of(p, sizeof(p), DBT_PG_PROTO(3, 0), kv);
    CHECK(decode(p, n, 0) == DBT_PG_FIRST_REJECT);
    dbt_buf_reset(&b);
    CHECK_OK(dbt_pg_reject_encode(&b, &first.reject));
    CHECK_OK(dbt_pg_msg_frame(b.data, b.len, 1000, &m));
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    CHECK(strcmp(f.message, "invalid value for parameter \"replication\": \"maybe\"") == 0);
    CHECK(f.hint != NULL);
    uint8_t len7[] = {0, 0, 0, 7};
    CHECK(decode(len7, 4, 0) == DBT_PG_FIRST_REJECT);
    CHECK_ERR(dbt_pg_reject_encode(&b, &first.reject), DBT_E_INVALID);

    /* StartupMessage encoder round trip, and its limit. */
    dbt_buf_reset(&b);
    struct dbt_pg_param ps[] = {{"user", "bob"}, {"database", "x"}};
    CHECK_OK(dbt_pg_startup_encode(&b, DBT_PG_PROTO(3, 0), ps, 2));
    CHECK(decode(b.data, b.len, 0) == DBT_PG_FIRST_STARTUP);
    CHECK(strcmp(first.startup.user, "bob") == 0 && strcmp(first.startup.database, "x") == 0);
    CHECK(first.consumed == b.len);
    struct dbt_pg_param empty_name[] = {{"", "v"}};
    CHECK_ERR(dbt_pg_startup_encode(&b, DBT_PG_PROTO(3, 0), empty_name, 1), DBT_E_INVALID);
    char *huge = malloc(DBT_PG_MAX_STARTUP_PACKET_LENGTH);
    memset(huge, 'h', DBT_PG_MAX_STARTUP_PACKET_LENGTH - 1);
    huge[DBT_PG_MAX_STARTUP_PACKET_LENGTH - 1] = 0;
    struct dbt_pg_param hp[] = {{"user", "u"}, {"options", huge}};
    before = b.len;
    CHECK_ERR(dbt_pg_startup_encode(&b, DBT_PG_PROTO(3, 0), hp, 2), DBT_E_INVALID);
    CHECK(b.len == before);
    free(huge);
    dbt_buf_cleanup(&b);
}

/* ---------------------------------------------------------------- backend messages --------- */

static size_t msg(uint8_t *out, uint8_t type, const void *body, size_t n)
{
    out[0] = type;
    uint32_t len = (uint32_t)(n + 4);
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    if (n) {
        memcpy(out + 5, body, n);
    }
    return n + 5;
}

static void test_frame(void)
{
    uint8_t p[64];
    struct dbt_pg_msg m;
    size_t n = msg(p, 'Z', "I", 1);
    CHECK_OK(dbt_pg_msg_frame(p, n, 100, &m));
    CHECK(m.type == 'Z' && m.len == 5 && m.body_len == 1 && m.total == 6 && m.body[0] == 'I');
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, p, k);
        CHECK_ERR(dbt_pg_msg_frame(c, k, 100, &m), DBT_E_AGAIN);
        CHECK(m.total == (k < 5 ? 5 : 6));
        free(c);
    }
    /* Length word below 4. */
    for (uint8_t l = 0; l < 4; l++) {
        uint8_t q[5] = {'R', 0, 0, 0, l};
        CHECK_ERR(dbt_pg_msg_frame(q, 5, 100, &m), DBT_E_PROTO);
    }
    /* Maximum and maximum + 1 (the limit is on the body). */
    uint8_t q[5] = {'E', 0, 0, 0, 104};
    CHECK_ERR(dbt_pg_msg_frame(q, 5, 100, &m), DBT_E_AGAIN);
    CHECK(m.total == 105);
    q[4] = 105;
    CHECK_ERR(dbt_pg_msg_frame(q, 5, 100, &m), DBT_E_PROTO);
    uint8_t huge[5] = {'D', 0xff, 0xff, 0xff, 0xff};
    CHECK_ERR(dbt_pg_msg_frame(huge, 5, SIZE_MAX, &m), DBT_E_AGAIN);
    CHECK(m.total == 0x100000000ull);
    /* Empty body. */
    n = msg(p, '1', NULL, 0);
    CHECK_OK(dbt_pg_msg_frame(p, n, 0, &m));
    CHECK(m.body_len == 0 && m.total == 5);
}

/* Frames body as a message of the given type in p (checked) and decodes it as an
   authentication request; a.data points into p. */
static dbt_res auth_decode(uint8_t *p, uint8_t type, const char *body, size_t len,
                           struct dbt_pg_msg *m, struct dbt_pg_auth *a)
{
    size_t n = msg(p, type, body, len);
    CHECK_OK(dbt_pg_msg_frame(p, n, 100, m));
    return dbt_pg_auth_decode(m, a);
}

static void test_auth(void)
{
    uint8_t p[512];
    struct dbt_pg_msg m;
    struct dbt_pg_auth a;

    CHECK_OK(auth_decode(p, 'R', "\0\0\0\0", 4, &m, &a));
    CHECK(a.code == DBT_PG_AUTH_OK);
    CHECK_ERR(auth_decode(p, 'R', "\0\0\0\0x", 5, &m, &a), DBT_E_PROTO);
    CHECK_ERR(auth_decode(p, 'R', "\0\0\0", 3, &m, &a), DBT_E_PROTO);
    CHECK_OK(auth_decode(p, 'R', "\0\0\0\x05salt", 8, &m, &a));
    CHECK(a.code == DBT_PG_AUTH_MD5 && dbt_rd_left(&a.data) == 4);
    CHECK_ERR(auth_decode(p, 'R', "\0\0\0\x05sal", 7, &m, &a), DBT_E_PROTO);
    CHECK_ERR(auth_decode(p, 'R', "\0\0\0\x63", 4, &m, &a), DBT_E_PROTO);
    CHECK_OK(auth_decode(p, 'R', "\0\0\0\x0bxyz", 7, &m, &a));
    CHECK(a.code == DBT_PG_AUTH_SASL_CONTINUE && dbt_rd_left(&a.data) == 3);
    CHECK_ERR(auth_decode(p, 'K', "\0\0\0\0", 4, &m, &a), DBT_E_PROTO);
}

static void test_sasl_initial(void)
{
    uint8_t p[512];
    struct dbt_pg_msg m;
    struct dbt_pg_sasl_initial si;
    static const struct {
        const char *body;
        size_t n;
        int ok;
        char flag;
    } cases[] = {
        /* libpq with channel_binding=prefer against a server it thinks cannot bind */
        {"SCRAM-SHA-256\0\0\0\0\x0by,,n=,r=abc", 29, 1, 'y'},
        {"SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc", 29, 1, 'n'},
        {"SCRAM-SHA-256-PLUS\0\0\0\0\x1dp=tls-server-end-point,,n=,r=a", 52, 1, 'p'},
        {"SCRAM-SHA-256\0\xff\xff\xff\xff", 18, 1, 0},      /* -1: no data */
        {"SCRAM-SHA-256\0\0\0\0\x01y", 19, 1, 0},           /* "y" without ',' */
        {"SCRAM-SHA-256\0\0\0\0\x0cy,,n=,r=abc", 29, 0, 0}, /* length too long */
        {"SCRAM-SHA-256\0\0\0\0\x0ay,,n=,r=abc", 29, 0, 0}, /* too short */
        {"SCRAM-SHA-256\0\xff\xff\xff\xffx", 19, 0, 0},     /* -1 with data */
        {"SCRAM-SHA-256\0\0\0", 17, 0, 0},                  /* truncated length */
        {"SCRAM-SHA-256", 13, 0, 0},                        /* unterminated name */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = msg(p, 'p', cases[i].body, cases[i].n);
        CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
        dbt_res r = dbt_pg_sasl_initial_decode(&m, &si);
        if (cases[i].ok) {
            CHECK_OK(r);
            CHECK(si.gs2_flag == cases[i].flag);
            CHECK(strncmp(si.mechanism, "SCRAM-SHA-256", 13) == 0);
        } else {
            CHECK_ERR(r, DBT_E_PROTO);
        }
    }
    size_t n = msg(p, 'R', "\0\0\0\0", 4);
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_ERR(dbt_pg_sasl_initial_decode(&m, &si), DBT_E_PROTO);
}

static void test_sasl_filter(void)
{
    uint8_t p[512];
    struct dbt_pg_msg m;
    struct dbt_buf b;
    size_t left;
    dbt_buf_init(&b, 0);

    static const char both[] = "\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
    size_t n = msg(p, 'R', both, sizeof(both));
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_sasl_filter(&m, &b, &left));
    CHECK(left == 1);
    static const char want_body[] = "\0\0\0\x0aSCRAM-SHA-256\0";
    uint8_t want[64];
    size_t wn = msg(want, 'R', want_body, sizeof(want_body));
    CHECK(b.len == wn && memcmp(b.data, want, wn) == 0);
    /* Order kept, unknown mechanisms kept, PLUS anywhere removed. */
    dbt_buf_reset(&b);
    static const char three[] = "\0\0\0\x0a"
                                "A\0SCRAM-SHA-256-PLUS\0B\0";
    n = msg(p, 'R', three, sizeof(three));
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_sasl_filter(&m, &b, &left));
    CHECK(left == 2);
    static const char three_want[] = "\0\0\0\x0a"
                                     "A\0B\0";
    wn = msg(want, 'R', three_want, sizeof(three_want));
    CHECK(b.len == wn && memcmp(b.data, want, wn) == 0);

    /* Only channel binding: nothing appended, the caller fails the connection. */
    dbt_buf_reset(&b);
    static const char plus[] = "\0\0\0\x0aSCRAM-SHA-256-PLUS\0";
    n = msg(p, 'R', plus, sizeof(plus));
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_sasl_filter(&m, &b, &left));
    CHECK(left == 0 && b.len == 0);

    /* Missing list terminator, missing name terminator, trailing bytes, empty list. */
    static const struct {
        const char *body;
        size_t n;
    } bad[] = {
        {"\0\0\0\x0aSCRAM-SHA-256\0", 18},
        {"\0\0\0\x0aSCRAM-SHA-256", 17},
        {"\0\0\0\x0aSCRAM-SHA-256\0\0x", 20},
        {"\0\0\0\x0a\0", 5},
        {"\0\0\0\x0a", 4},
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad); i++) {
        n = msg(p, 'R', bad[i].body, bad[i].n);
        CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
        CHECK_ERR(dbt_pg_sasl_filter(&m, &b, &left), DBT_E_PROTO);
        CHECK(b.len == 0);
    }
    /* Not SASL at all. */
    n = msg(p, 'R', "\0\0\0\0", 4);
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_ERR(dbt_pg_sasl_filter(&m, &b, &left), DBT_E_PROTO);
    dbt_buf_cleanup(&b);
}

static void test_backend_key(void)
{
    uint8_t body[300], p[320];
    struct dbt_pg_msg m;
    struct dbt_pg_cancel_key k;
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)(i * 7);
    }
    body[0] = 0, body[1] = 0, body[2] = 1, body[3] = 0; /* pid 256 */
    static const size_t ok[] = {4, 5, 32, 256};
    for (size_t i = 0; i < DBT_ARRAY_LEN(ok); i++) {
        size_t n = msg(p, 'K', body, 4 + ok[i]);
        CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
        CHECK_OK(dbt_pg_backend_key_decode(&m, &k));
        CHECK(k.pid == 256 && k.key_len == ok[i]);
        CHECK(memcmp(k.key, body + 4, ok[i]) == 0);
    }
    static const size_t badn[] = {0, 2, 4, 5, 6, 7, 4 + 257};
    for (size_t i = 0; i < DBT_ARRAY_LEN(badn); i++) {
        size_t n = msg(p, 'K', body, badn[i]);
        CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
        CHECK_ERR(dbt_pg_backend_key_decode(&m, &k), DBT_E_PROTO);
    }
    size_t n = msg(p, 'R', body, 8);
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_ERR(dbt_pg_backend_key_decode(&m, &k), DBT_E_PROTO);
}

static void test_error_and_status(void)
{
    uint8_t p[256];
    struct dbt_pg_msg m;
    struct dbt_pg_error_fields f;
    struct dbt_pg_param ps;

    static const char err[] = "SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for "
                              "user \"u\"\0Fauth.c\0L335\0Rauth_failed\0";
    size_t n = msg(p, 'E', err, sizeof(err));
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    CHECK(strcmp(f.sqlstate, "28P01") == 0);
    CHECK(strcmp(f.message, "password authentication failed for user \"u\"") == 0);
    /* Notice too. */
    p[0] = 'N';
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    /* Every cut of the body is refused: missing terminator, field cut short. */
    for (size_t k = 0; k < sizeof(err) - 1; k++) {
        n = msg(p, 'E', err, k);
        CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
        CHECK_ERR(dbt_pg_error_decode(&m, &f), DBT_E_PROTO);
    }
    /* Trailing bytes after the terminator. */
    uint8_t body[sizeof(err) + 1];
    memcpy(body, err, sizeof(err));
    body[sizeof(err)] = 'x';
    n = msg(p, 'E', body, sizeof(body));
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_ERR(dbt_pg_error_decode(&m, &f), DBT_E_PROTO);
    /* Only the terminator: valid, no fields. */
    n = msg(p, 'E', "", 1);
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    CHECK(f.message == NULL);

    static const char st[] = "server_version\0"
                             "15.8\0";
    n = msg(p, 'S', st, sizeof(st) - 1);
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_OK(dbt_pg_param_status_decode(&m, &ps));
    CHECK(strcmp(ps.name, "server_version") == 0 && strcmp(ps.value, "15.8") == 0);
    for (size_t k = 0; k < sizeof(st) - 1; k++) {
        n = msg(p, 'S', st, k);
        CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
        CHECK_ERR(dbt_pg_param_status_decode(&m, &ps), DBT_E_PROTO);
    }
    n = msg(p, 'S', st, sizeof(st)); /* one trailing NUL */
    CHECK_OK(dbt_pg_msg_frame(p, n, 1000, &m));
    CHECK_ERR(dbt_pg_param_status_decode(&m, &ps), DBT_E_PROTO);
}

/* ---------------------------------------------------------------- real server bytes -------- */

/*
 * Bytes captured from a real PostgreSQL 15.18 (Debian 15.18-0+deb12u1): the answer to a
 * StartupMessage for a SCRAM role over TLS (offers SCRAM-SHA-256-PLUS) and over plain TCP, a
 * trust login up to ReadyForQuery, and a FATAL for a database that does not exist.
 */
/* pg15_sasl_tls: 43 bytes */
static const uint8_t pg15_sasl_tls[] = {
    0x52, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x0a, 0x53, 0x43, 0x52, 0x41, 0x4d, 0x2d,
    0x53, 0x48, 0x41, 0x2d, 0x32, 0x35, 0x36, 0x2d, 0x50, 0x4c, 0x55, 0x53, 0x00, 0x53, 0x43,
    0x52, 0x41, 0x4d, 0x2d, 0x53, 0x48, 0x41, 0x2d, 0x32, 0x35, 0x36, 0x00, 0x00,
};
/* pg15_sasl_plain: 24 bytes */
static const uint8_t pg15_sasl_plain[] = {
    0x52, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0a, 0x53, 0x43, 0x52,
    0x41, 0x4d, 0x2d, 0x53, 0x48, 0x41, 0x2d, 0x32, 0x35, 0x36, 0x00, 0x00,
};
/* pg15_trust_login: 412 bytes */
static const uint8_t pg15_trust_login[] = {
    0x52, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x53, 0x00, 0x00, 0x00, 0x16, 0x61, 0x70,
    0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x00, 0x00,
    0x53, 0x00, 0x00, 0x00, 0x19, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x5f, 0x65, 0x6e, 0x63, 0x6f,
    0x64, 0x69, 0x6e, 0x67, 0x00, 0x55, 0x54, 0x46, 0x38, 0x00, 0x53, 0x00, 0x00, 0x00, 0x17, 0x44,
    0x61, 0x74, 0x65, 0x53, 0x74, 0x79, 0x6c, 0x65, 0x00, 0x49, 0x53, 0x4f, 0x2c, 0x20, 0x4d, 0x44,
    0x59, 0x00, 0x53, 0x00, 0x00, 0x00, 0x26, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x5f, 0x74,
    0x72, 0x61, 0x6e, 0x73, 0x61, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x72, 0x65, 0x61, 0x64, 0x5f,
    0x6f, 0x6e, 0x6c, 0x79, 0x00, 0x6f, 0x66, 0x66, 0x00, 0x53, 0x00, 0x00, 0x00, 0x17, 0x69, 0x6e,
    0x5f, 0x68, 0x6f, 0x74, 0x5f, 0x73, 0x74, 0x61, 0x6e, 0x64, 0x62, 0x79, 0x00, 0x6f, 0x66, 0x66,
    0x00, 0x53, 0x00, 0x00, 0x00, 0x19, 0x69, 0x6e, 0x74, 0x65, 0x67, 0x65, 0x72, 0x5f, 0x64, 0x61,
    0x74, 0x65, 0x74, 0x69, 0x6d, 0x65, 0x73, 0x00, 0x6f, 0x6e, 0x00, 0x53, 0x00, 0x00, 0x00, 0x1b,
    0x49, 0x6e, 0x74, 0x65, 0x72, 0x76, 0x61, 0x6c, 0x53, 0x74, 0x79, 0x6c, 0x65, 0x00, 0x70, 0x6f,
    0x73, 0x74, 0x67, 0x72, 0x65, 0x73, 0x00, 0x53, 0x00, 0x00, 0x00, 0x15, 0x69, 0x73, 0x5f, 0x73,
    0x75, 0x70, 0x65, 0x72, 0x75, 0x73, 0x65, 0x72, 0x00, 0x6f, 0x66, 0x66, 0x00, 0x53, 0x00, 0x00,
    0x00, 0x19, 0x73, 0x65, 0x72, 0x76, 0x65, 0x72, 0x5f, 0x65, 0x6e, 0x63, 0x6f, 0x64, 0x69, 0x6e,
    0x67, 0x00, 0x55, 0x54, 0x46, 0x38, 0x00, 0x53, 0x00, 0x00, 0x00, 0x32, 0x73, 0x65, 0x72, 0x76,
    0x65, 0x72, 0x5f, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x00, 0x31, 0x35, 0x2e, 0x31, 0x38,
    0x20, 0x28, 0x44, 0x65, 0x62, 0x69, 0x61, 0x6e, 0x20, 0x31, 0x35, 0x2e, 0x31, 0x38, 0x2d, 0x30,
    0x2b, 0x64, 0x65, 0x62, 0x31, 0x32, 0x75, 0x31, 0x29, 0x00, 0x53, 0x00, 0x00, 0x00, 0x24, 0x73,
    0x65, 0x73, 0x73, 0x69, 0x6f, 0x6e, 0x5f, 0x61, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x7a, 0x61,
    0x74, 0x69, 0x6f, 0x6e, 0x00, 0x74, 0x72, 0x75, 0x73, 0x74, 0x75, 0x73, 0x65, 0x72, 0x00, 0x53,
    0x00, 0x00, 0x00, 0x23, 0x73, 0x74, 0x61, 0x6e, 0x64, 0x61, 0x72, 0x64, 0x5f, 0x63, 0x6f, 0x6e,
    0x66, 0x6f, 0x72, 0x6d, 0x69, 0x6e, 0x67, 0x5f, 0x73, 0x74, 0x72, 0x69, 0x6e, 0x67, 0x73, 0x00,
    0x6f, 0x6e, 0x00, 0x53, 0x00, 0x00, 0x00, 0x15, 0x54, 0x69, 0x6d, 0x65, 0x5a, 0x6f, 0x6e, 0x65,
    0x00, 0x45, 0x74, 0x63, 0x2f, 0x55, 0x54, 0x43, 0x00, 0x4b, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00,
    0x5b, 0x26, 0x45, 0xa5, 0x8e, 0xda, 0x5a, 0x00, 0x00, 0x00, 0x05, 0x49,
};
/* pg15_err_nodb: 103 bytes */
static const uint8_t pg15_err_nodb[] = {
    0x52, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x00, 0x5d, 0x53,
    0x46, 0x41, 0x54, 0x41, 0x4c, 0x00, 0x56, 0x46, 0x41, 0x54, 0x41, 0x4c, 0x00, 0x43, 0x33,
    0x44, 0x30, 0x30, 0x30, 0x00, 0x4d, 0x64, 0x61, 0x74, 0x61, 0x62, 0x61, 0x73, 0x65, 0x20,
    0x22, 0x6e, 0x6f, 0x73, 0x75, 0x63, 0x68, 0x64, 0x62, 0x22, 0x20, 0x64, 0x6f, 0x65, 0x73,
    0x20, 0x6e, 0x6f, 0x74, 0x20, 0x65, 0x78, 0x69, 0x73, 0x74, 0x00, 0x46, 0x70, 0x6f, 0x73,
    0x74, 0x69, 0x6e, 0x69, 0x74, 0x2e, 0x63, 0x00, 0x4c, 0x39, 0x34, 0x38, 0x00, 0x52, 0x49,
    0x6e, 0x69, 0x74, 0x50, 0x6f, 0x73, 0x74, 0x67, 0x72, 0x65, 0x73, 0x00, 0x00,
};

static void test_real_server_bytes(void)
{
    struct dbt_pg_msg m;
    struct dbt_buf b;
    size_t left;
    dbt_buf_init(&b, 0);

    /* Filtering what the server offers over TLS gives exactly what it offers without TLS. */
    CHECK_OK(dbt_pg_msg_frame(pg15_sasl_tls, sizeof(pg15_sasl_tls), 1000, &m));
    CHECK(m.total == sizeof(pg15_sasl_tls));
    CHECK_OK(dbt_pg_sasl_filter(&m, &b, &left));
    CHECK(left == 1);
    CHECK(b.len == sizeof(pg15_sasl_plain) && memcmp(b.data, pg15_sasl_plain, b.len) == 0);
    /* and the plain one passes through unchanged */
    dbt_buf_reset(&b);
    CHECK_OK(dbt_pg_msg_frame(pg15_sasl_plain, sizeof(pg15_sasl_plain), 1000, &m));
    CHECK_OK(dbt_pg_sasl_filter(&m, &b, &left));
    CHECK(left == 1);
    CHECK(b.len == sizeof(pg15_sasl_plain) && memcmp(b.data, pg15_sasl_plain, b.len) == 0);

    /* A whole trust login: AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery. */
    size_t off = 0, n_status = 0;
    bool saw_key = false, saw_version = false;
    while (off < sizeof(pg15_trust_login)) {
        CHECK_OK(dbt_pg_msg_frame(pg15_trust_login + off, sizeof(pg15_trust_login) - off,
                                  DBT_PG_PREAUTH_MSG_MAX, &m));
        if (m.total == 0) {
            break;
        }
        if (off == 0) {
            struct dbt_pg_auth a;
            CHECK(m.type == 'R');
            CHECK_OK(dbt_pg_auth_decode(&m, &a));
            CHECK(a.code == DBT_PG_AUTH_OK);
        } else if (m.type == 'S') {
            struct dbt_pg_param ps;
            CHECK_OK(dbt_pg_param_status_decode(&m, &ps));
            n_status++;
            if (strcmp(ps.name, "server_version") == 0) {
                saw_version = strncmp(ps.value, "15.", 3) == 0;
            }
        } else if (m.type == 'K') {
            struct dbt_pg_cancel_key k;
            CHECK_OK(dbt_pg_backend_key_decode(&m, &k));
            CHECK(k.pid == 0x5b26 && k.key_len == 4);
            CHECK(k.key[0] == 0x45 && k.key[3] == 0xda);
            saw_key = true;
        } else {
            CHECK(m.type == 'Z' && m.body_len == 1 && m.body[0] == 'I');
            CHECK(off + m.total == sizeof(pg15_trust_login));
        }
        off += m.total;
    }
    CHECK(off == sizeof(pg15_trust_login));
    CHECK(n_status == 13 && saw_key && saw_version);

    /* A FATAL with PostgreSQL's F/L/R fields, which the decoder skips. */
    CHECK_OK(dbt_pg_msg_frame(pg15_err_nodb, sizeof(pg15_err_nodb), 1000, &m));
    CHECK(m.type == 'R' && m.total == 9);
    off = m.total;
    CHECK_OK(dbt_pg_msg_frame(pg15_err_nodb + off, sizeof(pg15_err_nodb) - off, 1000, &m));
    CHECK(off + m.total == sizeof(pg15_err_nodb));
    struct dbt_pg_error_fields f;
    CHECK_OK(dbt_pg_error_decode(&m, &f));
    CHECK(strcmp(f.severity, "FATAL") == 0 && strcmp(f.severity_nl, "FATAL") == 0);
    CHECK(strcmp(f.sqlstate, "3D000") == 0);
    CHECK(strcmp(f.message, "database \"nosuchdb\" does not exist") == 0);
    CHECK(f.detail == NULL && f.hint == NULL);
    dbt_buf_cleanup(&b);
}

int main(void)
{
    test_ssl_gss_requests();
    test_direct_tls_and_lengths();
    test_cancel();
    test_startup();
    test_startup_users_and_versions();
    test_replication();
    test_encoders();
    test_frame();
    test_auth();
    test_sasl_filter();
    test_sasl_initial();
    test_backend_key();
    test_error_and_status();
    test_real_server_bytes();
    return check_exit();
}
