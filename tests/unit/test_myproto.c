/*
 * test_myproto.c - unit tests of src/proto/my: golden packets captured from MariaDB 10.11 and
 * real clients (tests/golden/my, see capture.py there), hand-built packets for the encodings real
 * clients did not produce, negative cases (truncation at every byte, limits, bad sequence ids,
 * trailing bytes), the exact error texts, and per-user REQUIRE rules.
 */
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/wr.h"
#include "check.h"
#include "proto/my/my.h"
#include "proto/my/myreq.h"
#include "proto/my/mysha2.h"

/* ---- helpers ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            uint8_t *p = realloc(buf, cap + 1);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) {
            break;
        }
        n += k;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A heap copy of exactly n bytes so ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c != NULL && n) {
        memcpy(c, p, n);
    }
    return c;
}

struct text {
    char s[8192];
    size_t n;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, ap);
    va_end(ap);
    if (k > 0) {
        t->n += (size_t)k;
        if (t->n >= sizeof(t->s)) {
            t->n = sizeof(t->s) - 1;
        }
    }
}

static void add_hex(struct text *t, const char *key, const uint8_t *p, size_t n)
{
    add(t, "%s: ", key);
    for (size_t i = 0; i < n; i++) {
        add(t, "%02x", p[i]);
    }
    add(t, "\n");
}

static bool same_bytes(const struct dbt_buf *b, const uint8_t *p, size_t n)
{
    return b->len == n && memcmp(b->data, p, n) == 0;
}

/* ---- golden packets ---- */

static void describe_greeting(const struct dbt_my_greeting *g, struct text *t)
{
    add(t, "protocol: %u\n", g->protocol);
    add(t, "server_version: %.*s\n", (int)g->server_version_len, g->server_version);
    add(t, "thread_id: %u\n", g->thread_id);
    add(t, "caps: %08x\n", g->caps);
    add(t, "charset: %u\n", g->charset);
    add(t, "status: %u\n", g->status);
    add(t, "auth_data_len: %u\n", g->auth_data_len);
    add(t, "mariadb_caps: %08x\n", g->mariadb_caps);
    uint8_t scr[64];
    memcpy(scr, g->scramble1, 8);
    memcpy(scr + 8, g->scramble2, g->scramble2_len);
    add_hex(t, "scramble", scr, 8 + g->scramble2_len);
    add(t, "auth_plugin: %.*s\n", (int)g->auth_plugin_len, g->auth_plugin);
}

static void describe_response(const struct dbt_my_response *r, bool ssl_request, struct text *t)
{
    add(t, "kind: %s\n", ssl_request ? "ssl_request" : "response");
    add(t, "caps: %08x\n", r->caps);
    add(t, "max_packet: %u\n", r->max_packet);
    add(t, "charset: %u\n", r->charset);
    add(t, "mariadb_caps: %08x\n", r->mariadb_caps);
    if (ssl_request) {
        return;
    }
    static const char *const enc[] = {"lenenc", "1byte", "nul"};
    add(t, "user: %.*s\n", (int)r->user_len, r->user);
    add(t, "auth_enc: %s\n", enc[r->auth_enc]);
    add_hex(t, "auth", r->auth, r->auth_len);
    if (r->has_db) {
        add(t, "db: %.*s\n", (int)r->db_len, r->db);
    }
    if (r->has_plugin) {
        add(t, "plugin: %.*s\n", (int)r->plugin_len, r->plugin);
    }
    size_t off = 0;
    const char *k, *v;
    size_t kn, vn;
    while (dbt_my_attrs_next(r, &off, &k, &kn, &v, &vn)) {
        add(t, "attr: %.*s=%.*s\n", (int)kn, k, (int)vn, v);
    }
}

static void describe_server_auth(const uint8_t *p, size_t n, struct text *t)
{
    switch (dbt_my_auth_classify(p, n)) {
    case DBT_MY_AUTH_OK:
        add(t, "kind: ok\n");
        break;
    case DBT_MY_AUTH_ERR: {
        struct dbt_my_err e;
        CHECK_OK(dbt_my_err_decode(p, n, true, &e));
        add(t, "kind: err\ncode: %u\nstate: %s\nmessage: %.*s\n", e.code, e.state, (int)e.msg_len,
            e.msg);
        break;
    }
    case DBT_MY_AUTH_SWITCH: {
        struct dbt_my_switch s;
        CHECK_OK(dbt_my_switch_decode(p, n, &s));
        add(t, "kind: switch\nplugin: %.*s\n", (int)s.plugin_len, s.plugin);
        add_hex(t, "data", s.data, s.data_len);
        break;
    }
    case DBT_MY_AUTH_MORE_DATA: {
        const uint8_t *d;
        size_t dn;
        CHECK_OK(dbt_my_more_data_decode(p, n, &d, &dn));
        add(t, "kind: more_data\n");
        add_hex(t, "data", d, dn);
        break;
    }
    case DBT_MY_AUTH_OTHER:
        add(t, "kind: other\n");
        break;
    }
}

/*
 * Every strict prefix of a greeting/response either fails with PROTO or decodes to something that
 * re-encodes to exactly that prefix (optional trailing parts may be absent); never a crash or a
 * read past the end (exact-size heap copies under ASan).
 */
static void truncations_greeting(const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = exact_copy(p, k);
        struct dbt_my_greeting g;
        dbt_res r = dbt_my_greeting_decode(c, k, &g);
        if (dbt_ok(r)) {
            struct dbt_buf b;
            dbt_buf_init(&b, 0);
            struct dbt_wr w = dbt_wr_make(&b);
            dbt_my_greeting_encode(&g, g.caps, 0, &w);
            CHECK_OK(dbt_wr_finish(&w));
            CHECK(b.len == k + 4 && memcmp(b.data + 4, c, k) == 0);
            dbt_buf_cleanup(&b);
        } else {
            CHECK(r.code == DBT_E_PROTO);
        }
        free(c);
    }
}

static void truncations_response(const uint8_t *p, size_t n)
{
    size_t ok_prefixes = 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = exact_copy(p, k);
        struct dbt_my_response resp;
        dbt_res r = dbt_my_response_decode(c, k, &resp);
        if (dbt_ok(r)) {
            ok_prefixes++;
            struct dbt_buf b;
            dbt_buf_init(&b, 0);
            struct dbt_wr w = dbt_wr_make(&b);
            dbt_my_response_encode(&resp, resp.caps, 1, &w);
            CHECK_OK(dbt_wr_finish(&w));
            CHECK(b.len == k + 4 && memcmp(b.data + 4, c, k) == 0);
            dbt_buf_cleanup(&b);
        } else {
            CHECK(r.code == DBT_E_PROTO);
        }
        free(c);
    }
    /* At most: after auth, after db, after plugin (the optional parts). */
    CHECK(ok_prefixes <= 3);
}

static void golden_one(const char *dir, const char *name)
{
    char path[1024];
    size_t plen, elen;
    snprintf(path, sizeof(path), "%s/%s.pkt", dir, name);
    uint8_t *pkt = read_file(path, &plen);
    snprintf(path, sizeof(path), "%s/%s.expect", dir, name);
    uint8_t *expect = read_file(path, &elen);
    CHECK(pkt != NULL && expect != NULL);
    if (pkt == NULL || expect == NULL) {
        fprintf(stderr, "missing golden file for %s\n", name);
        free(pkt);
        free(expect);
        return;
    }

    struct dbt_my_frame f;
    CHECK_OK(dbt_my_frame_peek(pkt, plen, DBT_MY_PREAUTH_MAX, &f));
    CHECK(f.wire_len == plen && f.nparts == 1 && f.payload_len == plen - 4);
    /* Every strict prefix of the frame is "need more". */
    for (size_t k = 0; k < plen; k++) {
        struct dbt_my_frame f2;
        uint8_t *c = exact_copy(pkt, k);
        CHECK_ERR(dbt_my_frame_peek(c, k, DBT_MY_PREAUTH_MAX, &f2), DBT_E_AGAIN);
        free(c);
    }
    /* A limit one below the payload refuses it from the header alone. */
    if (f.payload_len > 0) {
        struct dbt_my_frame f3;
        CHECK_ERR(dbt_my_frame_peek(pkt, 4, f.payload_len - 1, &f3), DBT_E_LIMIT);
    }

    const uint8_t *p = f.payload;
    size_t n = f.payload_len;
    struct text t = {.n = 0};
    add(&t, "seq: %u\n", f.seq);
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);

    if (strncmp(name, "greeting", 8) == 0) {
        struct dbt_my_greeting g;
        CHECK_OK(dbt_my_greeting_decode(p, n, &g));
        describe_greeting(&g, &t);
        dbt_my_greeting_encode(&g, g.caps, f.seq, &w);
        CHECK_OK(dbt_wr_finish(&w));
        CHECK(same_bytes(&b, pkt, plen));
        truncations_greeting(p, n);
    } else if (strncmp(name, "response", 8) == 0 || strncmp(name, "ssl_request", 11) == 0) {
        enum dbt_my_hs_kind kind;
        struct dbt_my_response r;
        CHECK_OK(dbt_my_hs_classify(p, n, &kind));
        bool ssl = kind == DBT_MY_HS_SSL_REQUEST;
        CHECK(ssl == (name[0] == 's'));
        if (ssl) {
            CHECK_OK(dbt_my_ssl_request_decode(p, n, &r));
            dbt_my_ssl_request_encode(&r, r.caps, f.seq, &w);
        } else {
            CHECK_OK(dbt_my_response_decode(p, n, &r));
            dbt_my_response_encode(&r, r.caps, f.seq, &w);
            truncations_response(p, n);
        }
        describe_response(&r, ssl, &t);
        CHECK_OK(dbt_wr_finish(&w));
        CHECK(same_bytes(&b, pkt, plen));
    } else if (strncmp(name, "auth_switch_reply", 17) == 0) {
        add(&t, "kind: raw\nlength: %zu\n", n);
    } else {
        describe_server_auth(p, n, &t);
    }
    if (t.n != elen || memcmp(t.s, expect, elen) != 0) {
        CHECK(!"golden mismatch");
        fprintf(stderr, "golden %s: got\n%s--- expected\n%s", name, t.s, (const char *)expect);
    }
    dbt_buf_cleanup(&b);
    free(pkt);
    free(expect);
}

static void test_golden(void)
{
    const char *root = getenv("DBTLS_SOURCE_ROOT");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/tests/golden/my", root ? root : ".");
    static const char *const names[] = {
        "greeting_mariadb1011",       "response_mariadb_client", "response_pymysql",
        "ssl_request_mariadb_client", "ssl_request_pymysql",     "ok_after_auth",
        "err_access_denied",          "auth_switch_ed25519",     "auth_switch_reply_ed25519",
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(names); i++) {
        golden_one(dir, names[i]);
    }
}

/* ---- greeting rewrite ---- */

static uint8_t *golden_payload(const char *name, size_t *n, uint8_t **whole)
{
    const char *root = getenv("DBTLS_SOURCE_ROOT");
    char path[1024];
    size_t len;
    snprintf(path, sizeof(path), "%s/tests/golden/my/%s.pkt", root ? root : ".", name);
    *whole = read_file(path, &len);
    if (*whole == NULL || len < 4) {
        return NULL;
    }
    *n = len - 4;
    return *whole + 4;
}

static void test_greeting_rewrite(void)
{
    size_t n;
    uint8_t *whole;
    uint8_t *p = golden_payload("greeting_mariadb1011", &n, &whole);
    CHECK(p != NULL);
    if (p == NULL) {
        return;
    }
    struct dbt_my_greeting g, g2;
    CHECK_OK(dbt_my_greeting_decode(p, n, &g));
    /* The backend (--skip-ssl) does not offer TLS but does offer compression. */
    CHECK(!(g.caps & DBT_MY_CLIENT_SSL));
    CHECK(g.caps & DBT_MY_CLIENT_COMPRESS);

    uint32_t caps = dbt_my_greeting_front_caps(g.caps, true);
    CHECK(caps & DBT_MY_CLIENT_SSL);
    CHECK(!(caps & DBT_MY_CLIENT_COMPRESS));
    CHECK(!(caps & DBT_MY_CLIENT_ZSTD_COMPRESSION_ALGORITHM));
    CHECK((caps | DBT_MY_CAPS_MASKED) == (g.caps | DBT_MY_CAPS_MASKED | DBT_MY_CLIENT_SSL));
    CHECK(!(dbt_my_greeting_front_caps(g.caps | DBT_MY_CLIENT_SSL, false) & DBT_MY_CLIENT_SSL));

    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_greeting_encode(&g, caps, 0, &w);
    CHECK_OK(dbt_wr_finish(&w));
    CHECK(b.len == n + 4);
    CHECK_OK(dbt_my_greeting_decode(b.data + 4, b.len - 4, &g2));
    CHECK(g2.caps == caps);
    /* Scramble, version and plugin name are the backend's, byte for byte. */
    CHECK(memcmp(g2.scramble1, g.scramble1, 8) == 0);
    CHECK(g2.scramble2_len == g.scramble2_len &&
          memcmp(g2.scramble2, g.scramble2, g.scramble2_len) == 0);
    CHECK(g2.server_version_len == g.server_version_len &&
          memcmp(g2.server_version, g.server_version, g.server_version_len) == 0);
    CHECK(g2.auth_plugin_len == 21 && memcmp(g2.auth_plugin, "mysql_native_password", 21) == 0);
    CHECK(g2.mariadb_caps == g.mariadb_caps);
    /* Only the capability bytes differ. */
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff += b.data[4 + i] != p[i];
    }
    CHECK(diff >= 1 && diff <= 4);
    dbt_buf_cleanup(&b);

    /* Trailing byte after the plugin name's NUL. */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, p, n);
    longer[n] = 'x';
    CHECK_ERR(dbt_my_greeting_decode(longer, n + 1, &g2), DBT_E_PROTO);
    /* Without the NUL the name is the rest of the packet (MySQL 5.5.7-5.5.9). */
    CHECK_OK(dbt_my_greeting_decode(p, n - 1, &g2));
    CHECK(!g2.auth_plugin_nul && g2.auth_plugin_len == 21);
    /* Protocol version 9 and an ERR packet. */
    longer[0] = 9;
    CHECK_ERR(dbt_my_greeting_decode(longer, n, &g2), DBT_E_PROTO);
    CHECK(strstr(dbt_errmsg(), "protocol version 9") != NULL);
    longer[0] = 0xff;
    CHECK_ERR(dbt_my_greeting_decode(longer, n, &g2), DBT_E_PROTO);
    CHECK(strstr(dbt_errmsg(), "error") != NULL);
    CHECK_ERR(dbt_my_greeting_decode(longer, 0, &g2), DBT_E_PROTO);
    /* Server version without its NUL anywhere. */
    memset(longer + 1, 'a', n - 1);
    CHECK_ERR(dbt_my_greeting_decode(longer, n, &g2), DBT_E_PROTO);
    free(longer);
    free(whole);
}

/* ---- responses in every auth encoding ---- */

static void build_response(struct dbt_buf *b, uint32_t caps, const char *user, const uint8_t *auth,
                           size_t auth_len, int enc, const char *db, const char *plugin, bool attrs,
                           int zstd)
{
    struct dbt_wr w = dbt_wr_make(b);
    dbt_wr_le32(&w, caps);
    dbt_wr_le32(&w, 1u << 24);
    dbt_wr_u8(&w, 45);
    dbt_wr_zeros(&w, 23);
    dbt_wr_cstr(&w, user);
    if (enc == 0) {
        dbt_wr_lenenc(&w, auth_len);
        dbt_wr_bytes(&w, auth, auth_len);
    } else if (enc == 1) {
        dbt_wr_u8(&w, (uint8_t)auth_len);
        dbt_wr_bytes(&w, auth, auth_len);
    } else {
        dbt_wr_bytes(&w, auth, auth_len);
        dbt_wr_u8(&w, 0);
    }
    if (db) {
        dbt_wr_cstr(&w, db);
    }
    if (plugin) {
        dbt_wr_cstr(&w, plugin);
    }
    if (attrs) {
        /* two pairs: "_client_name"="t", "k"="" */
        dbt_wr_lenenc(&w, 1 + 12 + 1 + 1 + 1 + 1 + 1);
        dbt_wr_lenenc(&w, 12);
        dbt_wr_bytes(&w, "_client_name", 12);
        dbt_wr_lenenc(&w, 1);
        dbt_wr_bytes(&w, "t", 1);
        dbt_wr_lenenc(&w, 1);
        dbt_wr_bytes(&w, "k", 1);
        dbt_wr_lenenc(&w, 0);
    }
    if (zstd >= 0) {
        dbt_wr_u8(&w, (uint8_t)zstd);
    }
    CHECK_OK(dbt_wr_finish(&w));
}

static void test_response_encodings(void)
{
    const uint8_t auth[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                              11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    const uint32_t base = DBT_MY_CLIENT_PROTOCOL_41 | DBT_MY_CLIENT_LONG_PASSWORD;
    struct {
        uint32_t caps;
        int enc;
        enum dbt_my_auth_enc want;
    } cases[] = {
        {base | DBT_MY_CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | DBT_MY_CLIENT_SECURE_CONNECTION, 0,
         DBT_MY_AUTH_ENC_LENENC},
        {base | DBT_MY_CLIENT_SECURE_CONNECTION, 1, DBT_MY_AUTH_ENC_1BYTE},
        {base, 2, DBT_MY_AUTH_ENC_NUL},
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(cases); i++) {
        uint32_t caps = cases[i].caps | DBT_MY_CLIENT_CONNECT_WITH_DB | DBT_MY_CLIENT_PLUGIN_AUTH |
                        DBT_MY_CLIENT_CONNECT_ATTRS;
        struct dbt_buf b;
        dbt_buf_init(&b, 0);
        build_response(&b, caps, "bob", auth, sizeof(auth), cases[i].enc, "shop",
                       "mysql_native_password", true, -1);
        struct dbt_my_response r;
        enum dbt_my_hs_kind kind;
        CHECK_OK(dbt_my_hs_classify(b.data, b.len, &kind));
        CHECK(kind == DBT_MY_HS_RESPONSE);
        CHECK_OK(dbt_my_response_decode(b.data, b.len, &r));
        CHECK(r.auth_enc == cases[i].want);
        CHECK(r.user_len == 3 && memcmp(r.user, "bob", 3) == 0);
        CHECK(r.auth_len == 20 && memcmp(r.auth, auth, 20) == 0);
        CHECK(r.has_db && r.db_len == 4 && memcmp(r.db, "shop", 4) == 0);
        CHECK(r.has_plugin && r.plugin_len == 21);
        CHECK(r.has_attrs);
        size_t off = 0, kn, vn;
        const char *k, *v;
        CHECK(dbt_my_attrs_next(&r, &off, &k, &kn, &v, &vn));
        CHECK(kn == 12 && memcmp(k, "_client_name", 12) == 0 && vn == 1 && v[0] == 't');
        CHECK(dbt_my_attrs_next(&r, &off, &k, &kn, &v, &vn));
        CHECK(kn == 1 && vn == 0);
        CHECK(!dbt_my_attrs_next(&r, &off, &k, &kn, &v, &vn));
        truncations_response(b.data, b.len);

        /* Re-encode for the backend with CLIENT_SSL cleared: identical bytes but the flag. */
        struct dbt_buf o;
        dbt_buf_init(&o, 0);
        struct dbt_wr w = dbt_wr_make(&o);
        dbt_my_response_encode(&r, r.caps & ~DBT_MY_CLIENT_SSL, 1, &w);
        CHECK_OK(dbt_wr_finish(&w));
        CHECK(o.len == b.len + 4 && memcmp(o.data + 4, b.data, b.len) == 0);
        CHECK(o.data[3] == 1);

        /* Trailing garbage is refused. */
        CHECK_OK(dbt_buf_append(&b, "z", 1));
        CHECK_ERR(dbt_my_response_decode(b.data, b.len, &r), DBT_E_PROTO);
        CHECK(strstr(dbt_errmsg(), "trailing") != NULL);
        dbt_buf_cleanup(&o);
        dbt_buf_cleanup(&b);
    }

    /* An auth response longer than 250 bytes needs the 0xfc lenenc form. */
    uint8_t big[300];
    memset(big, 0x41, sizeof(big));
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    build_response(&b, base | DBT_MY_CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", big, sizeof(big),
                   0, NULL, NULL, false, -1);
    struct dbt_my_response r;
    CHECK_OK(dbt_my_response_decode(b.data, b.len, &r));
    CHECK(r.auth_len == 300);
    /* A lenenc length pointing past the end of the packet. */
    CHECK_ERR(dbt_my_response_decode(b.data, b.len - 1, &r), DBT_E_PROTO);
    /* ...which cannot be re-encoded with a 1-byte length. */
    CHECK_OK(dbt_my_response_decode(b.data, b.len, &r));
    struct dbt_buf o;
    dbt_buf_init(&o, 0);
    struct dbt_wr w = dbt_wr_make(&o);
    dbt_my_response_encode(&r, base | DBT_MY_CLIENT_SECURE_CONNECTION, 1, &w);
    CHECK_ERR(dbt_wr_finish(&w), DBT_E_LIMIT);
    dbt_buf_cleanup(&o);
    dbt_buf_cleanup(&b);

    /* A 0xff / 0xfb lenenc auth length is malformed. */
    dbt_buf_init(&b, 0);
    build_response(&b, base | DBT_MY_CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", auth, 5, 0, NULL,
                   NULL, false, -1);
    b.data[34] = 0xff;
    CHECK_ERR(dbt_my_response_decode(b.data, b.len, &r), DBT_E_PROTO);
    b.data[34] = 0xfb;
    CHECK_ERR(dbt_my_response_decode(b.data, b.len, &r), DBT_E_PROTO);
    dbt_buf_cleanup(&b);

    /* Empty user, empty auth, no optional parts. */
    dbt_buf_init(&b, 0);
    build_response(&b, base | DBT_MY_CLIENT_SECURE_CONNECTION, "", auth, 0, 1, NULL, NULL, false,
                   -1);
    CHECK_OK(dbt_my_response_decode(b.data, b.len, &r));
    CHECK(r.user_len == 0 && r.auth_len == 0 && !r.has_db && !r.has_plugin && !r.has_attrs);
    CHECK(b.len == 34);
    dbt_buf_cleanup(&b);

    /* ZSTD level byte: kept with the flag, dropped when the front clears it. */
    dbt_buf_init(&b, 0);
    uint32_t zc = base | DBT_MY_CLIENT_SECURE_CONNECTION | DBT_MY_CLIENT_PLUGIN_AUTH |
                  DBT_MY_CLIENT_ZSTD_COMPRESSION_ALGORITHM | DBT_MY_CLIENT_COMPRESS;
    build_response(&b, zc, "z", auth, 20, 1, NULL, "caching_sha2_password", false, 3);
    CHECK_OK(dbt_my_response_decode(b.data, b.len, &r));
    CHECK(r.has_zstd_level && r.zstd_level == 3);
    dbt_buf_init(&o, 0);
    w = dbt_wr_make(&o);
    dbt_my_response_encode(&r, r.caps & ~DBT_MY_CAPS_MASKED, 1, &w);
    CHECK_OK(dbt_wr_finish(&w));
    CHECK(o.len == b.len + 4 - 1);
    struct dbt_my_response r2;
    CHECK_OK(dbt_my_response_decode(o.data + 4, o.len - 4, &r2));
    CHECK(!r2.has_zstd_level && !(r2.caps & DBT_MY_CAPS_MASKED));
    CHECK(r2.plugin_len == 21 && memcmp(r2.plugin, "caching_sha2_password", 21) == 0);
    dbt_buf_cleanup(&o);
    dbt_buf_cleanup(&b);

    /* Attributes whose inner lengths do not add up to the total. */
    dbt_buf_init(&b, 0);
    build_response(&b, base | DBT_MY_CLIENT_SECURE_CONNECTION | DBT_MY_CLIENT_CONNECT_ATTRS, "a",
                   auth, 0, 1, NULL, NULL, true, -1);
    CHECK_OK(dbt_my_response_decode(b.data, b.len, &r));
    b.data[35] = (uint8_t)(b.data[35] + 1); /* total length now exceeds the packet */
    CHECK_ERR(dbt_my_response_decode(b.data, b.len, &r), DBT_E_PROTO);
    b.data[35] = (uint8_t)(b.data[35] - 2); /* total one short: last value cut */
    CHECK_ERR(dbt_my_response_decode(b.data, b.len, &r), DBT_E_PROTO);
    dbt_buf_cleanup(&b);
}

static void test_classify(void)
{
    uint8_t p[40];
    enum dbt_my_hs_kind kind;
    struct dbt_my_response r;
    memset(p, 0, sizeof(p));
    uint32_t caps = DBT_MY_CLIENT_PROTOCOL_41 | DBT_MY_CLIENT_SSL | DBT_MY_CLIENT_SECURE_CONNECTION;
    p[0] = (uint8_t)caps;
    p[1] = (uint8_t)(caps >> 8);
    CHECK_OK(dbt_my_hs_classify(p, 32, &kind));
    CHECK(kind == DBT_MY_HS_SSL_REQUEST);
    CHECK_OK(dbt_my_ssl_request_decode(p, 32, &r));
    CHECK(r.caps == caps);
    for (size_t k = 0; k < 32; k++) {
        uint8_t *c = exact_copy(p, k);
        CHECK_ERR(dbt_my_hs_classify(c, k, &kind), DBT_E_PROTO);
        CHECK_ERR(dbt_my_ssl_request_decode(c, k, &r), DBT_E_PROTO);
        free(c);
    }
    /* SSLRequest with trailing bytes (credentials in clear next to a TLS request). */
    CHECK_ERR(dbt_my_hs_classify(p, 40, &kind), DBT_E_PROTO);
    CHECK(strstr(dbt_errmsg(), "CLIENT_SSL") != NULL);
    CHECK_ERR(dbt_my_ssl_request_decode(p, 33, &r), DBT_E_PROTO);
    /* 32 bytes without CLIENT_SSL: a response with no user name. */
    p[1] = (uint8_t)((caps & ~DBT_MY_CLIENT_SSL) >> 8);
    CHECK_ERR(dbt_my_hs_classify(p, 32, &kind), DBT_E_PROTO);
    /* Pre-4.1 HandshakeResponse320. */
    p[1] = (uint8_t)(DBT_MY_CLIENT_SSL >> 8);
    CHECK_ERR(dbt_my_hs_classify(p, 32, &kind), DBT_E_PROTO);
    CHECK(strstr(dbt_errmsg(), "pre-4.1") != NULL);

    /* SSLRequest encode round trip keeps MariaDB's extended caps in the filler. */
    uint8_t whole_p[32] = {0};
    whole_p[0] = (uint8_t)caps;
    whole_p[1] = (uint8_t)(caps >> 8);
    whole_p[9 + 19] = 0x1d;
    CHECK_OK(dbt_my_ssl_request_decode(whole_p, 32, &r));
    CHECK(r.mariadb_caps == 0x1d);
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_ssl_request_encode(&r, caps & ~DBT_MY_CLIENT_SSL, 1, &w);
    CHECK_OK(dbt_wr_finish(&w));
    CHECK(b.len == 36 && b.data[0] == 32 && b.data[3] == 1 && memcmp(b.data + 4, whole_p, 32) == 0);
    dbt_buf_cleanup(&b);
}

/* ---- framing ---- */

static void test_framing(void)
{
    struct dbt_my_frame f;
    uint8_t small[] = {3, 0, 0, 7, 'a', 'b', 'c', 9, 9};
    CHECK_OK(dbt_my_frame_peek(small, sizeof(small), 100, &f));
    CHECK(f.wire_len == 7 && f.payload_len == 3 && f.seq == 7 && f.nparts == 1);
    CHECK(f.payload == small + 4);
    /* Zero-length packet, maximum = exact, maximum+1. */
    uint8_t empty[] = {0, 0, 0, 1};
    CHECK_OK(dbt_my_frame_peek(empty, 4, 0, &f));
    CHECK(f.payload_len == 0 && f.wire_len == 4);
    CHECK_OK(dbt_my_frame_peek(small, 7, 3, &f));
    CHECK_ERR(dbt_my_frame_peek(small, 7, 2, &f), DBT_E_LIMIT);
    /* An oversize header is refused before its payload arrives. */
    uint8_t huge[] = {0xff, 0xff, 0x7f, 0};
    CHECK_ERR(dbt_my_frame_peek(huge, 4, DBT_MY_PREAUTH_MAX, &f), DBT_E_LIMIT);
    CHECK(strstr(dbt_errmsg(), "exceeds") != NULL);

    /* A 0xffffff part continued by a 2-byte part: consecutive ids required. */
    size_t total = 4 + DBT_MY_MAX_PART + 4 + 2;
    uint8_t *big = calloc(1, total);
    big[0] = big[1] = big[2] = 0xff;
    big[3] = 5;
    size_t at = 4 + DBT_MY_MAX_PART;
    big[at] = 2;
    big[at + 3] = 6;
    big[at + 4] = 'x';
    big[at + 5] = 'y';
    CHECK_OK(dbt_my_frame_peek(big, total, 32u << 20, &f));
    CHECK(f.nparts == 2 && f.payload_len == DBT_MY_MAX_PART + 2 && f.wire_len == total);
    CHECK(f.seq == 5 && f.last_seq == 6 && f.payload == NULL);
    CHECK_ERR(dbt_my_frame_peek(big, total - 1, 32u << 20, &f), DBT_E_AGAIN);
    CHECK_ERR(dbt_my_frame_peek(big, at + 3, 32u << 20, &f), DBT_E_AGAIN);
    /* The limit counts the whole logical payload, checked at the second header. */
    CHECK_ERR(dbt_my_frame_peek(big, at + 4, DBT_MY_MAX_PART + 1, &f), DBT_E_LIMIT);
    CHECK_OK(dbt_my_frame_peek(big, total, 32u << 20, &f));
    struct dbt_buf pl;
    dbt_buf_init(&pl, 0);
    CHECK_OK(dbt_my_frame_payload(big, &f, &pl));
    CHECK(pl.len == DBT_MY_MAX_PART + 2 && pl.data[pl.len - 1] == 'y');
    dbt_buf_cleanup(&pl);
    dbt_my_frame_renumber(big, &f, -4);
    CHECK(big[3] == 1 && big[at + 3] == 2);
    dbt_my_frame_renumber(big, &f, 4);
    big[at + 3] = 9;
    CHECK_ERR(dbt_my_frame_peek(big, total, 32u << 20, &f), DBT_E_PROTO);
    CHECK(strstr(dbt_errmsg(), "sequence id 9, expected 6") != NULL);
    /* An exactly-16MiB payload ends with an empty part. */
    big[at] = 0;
    big[at + 3] = 6;
    CHECK_OK(dbt_my_frame_peek(big, at + 4, 32u << 20, &f));
    CHECK(f.payload_len == DBT_MY_MAX_PART && f.nparts == 2);
    free(big);

    /* Renumbering wraps mod 256. */
    uint8_t wrap[] = {1, 0, 0, 0, 'q'};
    CHECK_OK(dbt_my_frame_peek(wrap, sizeof(wrap), 10, &f));
    dbt_my_frame_renumber(wrap, &f, -1);
    CHECK(wrap[3] == 255);

    /* Writer: packets with patched lengths. */
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    size_t pos = dbt_my_pkt_begin(&w, 3);
    dbt_wr_bytes(&w, "hello", 5);
    dbt_my_pkt_end(&w, pos);
    CHECK_OK(dbt_wr_finish(&w));
    CHECK(b.len == 9 && b.data[0] == 5 && b.data[1] == 0 && b.data[2] == 0 && b.data[3] == 3);
    dbt_buf_cleanup(&b);
}

/* ---- server auth packets and errors ---- */

static void test_auth_packets(void)
{
    const uint8_t ok[] = {0, 0, 0, 2, 0, 0, 0};
    const uint8_t short_ok[] = {0, 0, 0};
    const uint8_t err[] = {0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0', 'n', 'o'};
    const uint8_t more[] = {0x01, 0x04};
    const uint8_t sw[] = {0xfe, 'c', 'a', 'c', 'h', 'i', 'n', 'g', '_', 's', 'h', 'a', '2',
                          '_',  'p', 'a', 's', 's', 'w', 'o', 'r', 'd', 0,   'A', 'B', 0};
    const uint8_t old_sw[] = {0xfe};
    const uint8_t junk[] = {0x42, 1};
    CHECK(dbt_my_auth_classify(ok, sizeof(ok)) == DBT_MY_AUTH_OK);
    CHECK(dbt_my_auth_classify(short_ok, sizeof(short_ok)) == DBT_MY_AUTH_OTHER);
    CHECK(dbt_my_auth_classify(err, sizeof(err)) == DBT_MY_AUTH_ERR);
    CHECK(dbt_my_auth_classify(err, 2) == DBT_MY_AUTH_OTHER);
    CHECK(dbt_my_auth_classify(more, sizeof(more)) == DBT_MY_AUTH_MORE_DATA);
    CHECK(dbt_my_auth_classify(sw, sizeof(sw)) == DBT_MY_AUTH_SWITCH);
    CHECK(dbt_my_auth_classify(junk, sizeof(junk)) == DBT_MY_AUTH_OTHER);
    CHECK(dbt_my_auth_classify(junk, 0) == DBT_MY_AUTH_OTHER);

    const uint8_t *d;
    size_t dn;
    CHECK_OK(dbt_my_more_data_decode(more, sizeof(more), &d, &dn));
    CHECK(dn == 1 && d[0] == DBT_MY_SHA2_PERFORM_FULL_AUTH);
    CHECK_ERR(dbt_my_more_data_decode(ok, sizeof(ok), &d, &dn), DBT_E_PROTO);

    struct dbt_my_switch s;
    CHECK_OK(dbt_my_switch_decode(sw, sizeof(sw), &s));
    CHECK(s.plugin_len == 21 && memcmp(s.plugin, "caching_sha2_password", 21) == 0);
    CHECK(s.data_len == 3 && s.data[0] == 'A');
    CHECK_OK(dbt_my_switch_decode(old_sw, 1, &s));
    CHECK(s.plugin_len == 0 && s.data_len == 0);
    CHECK_ERR(dbt_my_switch_decode(sw, 10, &s), DBT_E_PROTO);
    CHECK_ERR(dbt_my_switch_decode(ok, sizeof(ok), &s), DBT_E_PROTO);

    struct dbt_my_err e;
    CHECK_OK(dbt_my_err_decode(err, sizeof(err), true, &e));
    CHECK(e.code == 1045 && e.has_state && strcmp(e.state, "28000") == 0 && e.msg_len == 2);
    /* Without CLIENT_PROTOCOL_41 the '#' is message text. */
    CHECK_OK(dbt_my_err_decode(err, sizeof(err), false, &e));
    CHECK(!e.has_state && e.msg_len == 8 && e.msg[0] == '#');
    /* A pre-greeting error ("Too many connections") has no SQLSTATE even for 4.1 clients. */
    const uint8_t early[] = {0xff, 0x10, 0x04, 'T', 'o', 'o'};
    CHECK_OK(dbt_my_err_decode(early, sizeof(early), true, &e));
    CHECK(e.code == 1040 && !e.has_state && e.msg_len == 3);
    CHECK_ERR(dbt_my_err_decode(err, 2, true, &e), DBT_E_PROTO);
    CHECK_ERR(dbt_my_err_decode(ok, sizeof(ok), true, &e), DBT_E_PROTO);
    for (size_t k = 3; k < sizeof(err); k++) {
        uint8_t *c = exact_copy(err, k);
        CHECK_OK(dbt_my_err_decode(c, k, true, &e));
        free(c);
    }
}

static void test_error_texts(void)
{
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_err_secure_transport(&w, 2, true);
    CHECK_OK(dbt_wr_finish(&w));
    /* What MySQL 8.0 sends for require_secure_transport=ON, byte for byte. */
    static const char want[] =
        "\x61\x00\x00\x02\xff\x57\x0c#HY000Connections using insecure transport are prohibited "
        "while --require_secure_transport=ON.";
    CHECK(b.len == sizeof(want) - 1 && memcmp(b.data, want, b.len) == 0);
    struct dbt_my_err e;
    CHECK_OK(dbt_my_err_decode(b.data + 4, b.len - 4, true, &e));
    CHECK(e.code == 3159 && strcmp(e.state, "HY000") == 0);
    dbt_buf_reset(&b);

    /* Without PROTOCOL_41 no SQLSTATE marker. */
    w = dbt_wr_make(&b);
    dbt_my_err_secure_transport(&w, 2, false);
    CHECK_OK(dbt_wr_finish(&w));
    CHECK(b.len == sizeof(want) - 1 - 6 && b.data[4] == 0xff && b.data[7] == 'C');
    dbt_buf_reset(&b);

    w = dbt_wr_make(&b);
    dbt_my_err_access_denied(&w, 3, true, "alice", 5, "127.0.0.1", true);
    CHECK_OK(dbt_wr_finish(&w));
    /* Compare with what MariaDB itself sent (golden err_access_denied.pkt), seq aside. */
    size_t n;
    uint8_t *whole;
    uint8_t *p = golden_payload("err_access_denied", &n, &whole);
    CHECK(p != NULL && b.len == n + 4 && memcmp(b.data + 4, p, n) == 0);
    CHECK(b.data[3] == 3);
    free(whole);
    dbt_buf_reset(&b);

    w = dbt_wr_make(&b);
    dbt_my_err_access_denied(&w, 2, true, "bob", 3, "::1", false);
    CHECK_OK(dbt_wr_finish(&w));
    CHECK_OK(dbt_my_err_decode(b.data + 4, b.len - 4, true, &e));
    const char *m = "Access denied for user 'bob'@'::1' (using password: NO)";
    CHECK(e.msg_len == strlen(m) && memcmp(e.msg, m, e.msg_len) == 0);
    dbt_buf_reset(&b);

    /* A bad SQLSTATE is a programming error: the writer fails. */
    w = dbt_wr_make(&b);
    dbt_my_err_encode(&w, 1, true, 1, "HY00", "x");
    CHECK_ERR(dbt_wr_finish(&w), DBT_E_LIMIT);
    dbt_buf_cleanup(&b);
}

/* ---- REQUIRE rules ---- */

static void test_reqs_parse(void)
{
    struct dbt_my_reqs reqs;
    const char *text = "# per-user requirements\n"
                       "alice=SSL\n"
                       "\n"
                       "  'bob'@'10.%' = x509   # comment\n"
                       "carol=SUBJECT '/CN=carol' AND ISSUER '/CN=dbtls client CA'\n"
                       "dave = REQUIRE CIPHER \"ECDHE-RSA-AES256-GCM-SHA384\" subject '/CN=it''s'\n"
                       "erin=NONE\n"
                       "frank@localhost=issuer '/O=a\\'b'\r\n";
    CHECK_OK(dbt_my_reqs_parse(text, &reqs));
    CHECK(reqs.n == 6);
    if (reqs.n == 6) {
        CHECK(strcmp(reqs.v[0].user, "alice") == 0 && strcmp(reqs.v[0].host, "%") == 0);
        CHECK(reqs.v[0].type == DBT_MY_REQ_SSL && reqs.v[0].line == 2);
        CHECK(strcmp(reqs.v[1].user, "bob") == 0 && strcmp(reqs.v[1].host, "10.%") == 0);
        CHECK(reqs.v[1].type == DBT_MY_REQ_X509);
        CHECK(reqs.v[2].type == DBT_MY_REQ_SPECIFIED);
        CHECK(strcmp(reqs.v[2].subject, "/CN=carol") == 0);
        CHECK(strcmp(reqs.v[2].issuer, "/CN=dbtls client CA") == 0 && reqs.v[2].cipher == NULL);
        CHECK(strcmp(reqs.v[3].cipher, "ECDHE-RSA-AES256-GCM-SHA384") == 0);
        CHECK(strcmp(reqs.v[3].subject, "/CN=it's") == 0);
        CHECK(reqs.v[4].type == DBT_MY_REQ_NONE);
        CHECK(strcmp(reqs.v[5].host, "localhost") == 0);
        CHECK(strcmp(reqs.v[5].issuer, "/O=a'b") == 0);
    }
    CHECK(dbt_my_reqs_find(&reqs, "alice", 5, "1.2.3.4") == &reqs.v[0]);
    CHECK(dbt_my_reqs_find(&reqs, "alic", 4, "1.2.3.4") == NULL);
    CHECK(dbt_my_reqs_find(&reqs, "alicex", 5, "1.2.3.4") == &reqs.v[0]);
    CHECK(dbt_my_reqs_find(&reqs, "bob", 3, "10.0.0.1") == &reqs.v[1]);
    CHECK(dbt_my_reqs_find(&reqs, "bob", 3, "11.0.0.1") == NULL);
    CHECK(dbt_my_reqs_find(&reqs, "Alice", 5, "1.2.3.4") == NULL);
    dbt_my_reqs_free(&reqs);

    CHECK_OK(dbt_my_reqs_parse(NULL, &reqs));
    CHECK(reqs.n == 0);
    CHECK_OK(dbt_my_reqs_parse("", &reqs));
    CHECK_OK(dbt_my_reqs_parse("\n# only\n   \n", &reqs));
    CHECK(reqs.n == 0);

    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"alice", "line 1: expected user=REQUIREMENT"},
        {"alice=", "line 1: missing requirement"},
        {"alice=TLS", "line 1: expected NONE, SSL"},
        {"alice=SSL X509", "line 1: unexpected text"},
        {"alice=SSLX", "line 1: expected NONE"},
        {"alice=SUBJECT", "line 1: SUBJECT needs a quoted string"},
        {"alice=SUBJECT /CN=a", "line 1: SUBJECT needs a quoted string"},
        {"alice=SUBJECT '/CN=a", "line 1: unterminated string"},
        {"alice=SUBJECT 'a' SUBJECT 'b'", "line 1: SUBJECT given twice"},
        {"\nalice=SSL\nalice=X509", "line 3: account 'alice'@'%' already has a rule on line 2"},
        {"=SSL", "line 1: expected a name"},
        {"alice@=SSL", "line 1: expected a name"},
        {"alice=SUBJECT 'a' AND", "line 1: expected NONE"},
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad); i++) {
        CHECK_ERR(dbt_my_reqs_parse(bad[i].text, &reqs), DBT_E_INVALID);
        if (strstr(dbt_errmsg(), bad[i].msg) == NULL) {
            CHECK(!"wrong message");
            fprintf(stderr, "  rules %s: got \"%s\", want \"%s\"\n", bad[i].text, dbt_errmsg(),
                    bad[i].msg);
        }
        CHECK(reqs.n == 0 && reqs.v == NULL);
    }
    /* Same user, different hosts: two accounts. */
    CHECK_OK(dbt_my_reqs_parse("a@'10.%'=SSL\na=X509\n", &reqs));
    CHECK(reqs.n == 2);
    CHECK(dbt_my_reqs_find(&reqs, "a", 1, "10.1.1.1")->type == DBT_MY_REQ_SSL);
    CHECK(dbt_my_reqs_find(&reqs, "a", 1, "127.0.0.1")->type == DBT_MY_REQ_X509);
    dbt_my_reqs_free(&reqs);
}

static void test_host_like(void)
{
    CHECK(dbt_my_host_like("%", ""));
    CHECK(dbt_my_host_like("%", "anything"));
    CHECK(dbt_my_host_like("10.%", "10.1.2.3"));
    CHECK(!dbt_my_host_like("10.%", "110.1.2.3"));
    CHECK(dbt_my_host_like("192.168.1._", "192.168.1.7"));
    CHECK(!dbt_my_host_like("192.168.1._", "192.168.1.17"));
    CHECK(dbt_my_host_like("LocalHost", "localhost"));
    CHECK(dbt_my_host_like("%.example.com", "db.example.com"));
    CHECK(!dbt_my_host_like("%.example.com", "example.com"));
    CHECK(dbt_my_host_like("a\\_b", "a_b"));
    CHECK(!dbt_my_host_like("a\\_b", "axb"));
    CHECK(dbt_my_host_like("%%%", "x"));
    CHECK(!dbt_my_host_like("", "x"));
}

static void test_reqs_check(void)
{
    struct dbt_my_reqs reqs;
    CHECK_OK(dbt_my_reqs_parse("ssl=SSL\nx=X509\n"
                               "subj=SUBJECT '/CN=subj'\n"
                               "both=SUBJECT '/CN=both' ISSUER '/CN=Client CA'\n"
                               "ciph=CIPHER 'TLS_AES_256_GCM_SHA384'\n"
                               "none=NONE\n",
                               &reqs));
    const struct dbt_my_tls_facts plain = {0};
    const struct dbt_my_tls_facts tls = {.tls = true, .cipher = "TLS_AES_256_GCM_SHA384"};
    const struct dbt_my_tls_facts unverified = {.tls = true,
                                                .cert_present = true,
                                                .subject = "/CN=subj",
                                                .issuer = "/CN=Client CA",
                                                .cipher = "TLS_AES_256_GCM_SHA384"};
    struct dbt_my_tls_facts good = unverified;
    good.cert_verified = true;
    struct dbt_my_tls_facts both = good;
    both.subject = "/CN=both";
    struct dbt_my_tls_facts wrong_issuer = both;
    wrong_issuer.issuer = "/CN=Other CA";
    struct dbt_my_tls_facts other_cipher = tls;
    other_cipher.cipher = "TLS_AES_128_GCM_SHA256";

#define REQ(u) dbt_my_reqs_find(&reqs, u, strlen(u), "127.0.0.1")
    /* No rule and NONE: anything goes. */
    CHECK_OK(dbt_my_req_check(REQ("nobody"), &plain));
    CHECK_OK(dbt_my_req_check(REQ("none"), &plain));
    /* SSL */
    CHECK_ERR(dbt_my_req_check(REQ("ssl"), &plain), DBT_E_DENIED);
    CHECK(strstr(dbt_errmsg(), "REQUIRE SSL") != NULL);
    CHECK_OK(dbt_my_req_check(REQ("ssl"), &tls));
    /* X509 */
    CHECK_ERR(dbt_my_req_check(REQ("x"), &plain), DBT_E_DENIED);
    CHECK_ERR(dbt_my_req_check(REQ("x"), &tls), DBT_E_DENIED);
    CHECK(strstr(dbt_errmsg(), "none was presented") != NULL);
    CHECK_ERR(dbt_my_req_check(REQ("x"), &unverified), DBT_E_DENIED);
    CHECK(strstr(dbt_errmsg(), "did not verify") != NULL);
    CHECK_OK(dbt_my_req_check(REQ("x"), &good));
    /* SUBJECT */
    CHECK_ERR(dbt_my_req_check(REQ("subj"), &tls), DBT_E_DENIED);
    CHECK_ERR(dbt_my_req_check(REQ("subj"), &unverified), DBT_E_DENIED);
    CHECK_OK(dbt_my_req_check(REQ("subj"), &good));
    CHECK_ERR(dbt_my_req_check(REQ("subj"), &both), DBT_E_DENIED);
    CHECK(strstr(dbt_errmsg(), "SUBJECT '/CN=subj'") != NULL);
    /* SUBJECT AND ISSUER */
    CHECK_OK(dbt_my_req_check(REQ("both"), &both));
    CHECK_ERR(dbt_my_req_check(REQ("both"), &wrong_issuer), DBT_E_DENIED);
    CHECK(strstr(dbt_errmsg(), "ISSUER") != NULL);
    CHECK_ERR(dbt_my_req_check(REQ("both"), &good), DBT_E_DENIED);
    /* CIPHER alone: MySQL still wants a verified certificate for SPECIFIED. */
    CHECK_ERR(dbt_my_req_check(REQ("ciph"), &other_cipher), DBT_E_DENIED);
    CHECK(strstr(dbt_errmsg(), "CIPHER") != NULL);
    CHECK_ERR(dbt_my_req_check(REQ("ciph"), &tls), DBT_E_DENIED);
    CHECK_OK(dbt_my_req_check(REQ("ciph"), &good));
    CHECK_ERR(dbt_my_req_check(REQ("ciph"), &plain), DBT_E_DENIED);
#undef REQ
    dbt_my_reqs_free(&reqs);
}

static void test_dn_oneline(void)
{
    char out[256];
    CHECK_OK(dbt_my_dn_oneline("CN=alice,O=Acme,C=US", out, sizeof(out)));
    CHECK(strcmp(out, "/C=US/O=Acme/CN=alice") == 0);
    CHECK_OK(dbt_my_dn_oneline("CN=dbtls client CA inst1", out, sizeof(out)));
    CHECK(strcmp(out, "/CN=dbtls client CA inst1") == 0);
    CHECK_OK(dbt_my_dn_oneline("", out, sizeof(out)));
    CHECK(strcmp(out, "") == 0);
    /* RFC 2253 escapes: a comma inside a value, hex pairs, multi-valued RDNs. */
    CHECK_OK(dbt_my_dn_oneline("CN=Smith\\, John,O=A\\2bB", out, sizeof(out)));
    CHECK(strcmp(out, "/O=A+B/CN=Smith, John") == 0);
    CHECK_OK(dbt_my_dn_oneline("CN=x+UID=7,DC=org", out, sizeof(out)));
    CHECK(strcmp(out, "/DC=org/UID=7/CN=x") == 0);
    CHECK_ERR(dbt_my_dn_oneline("CN=x\\", out, sizeof(out)), DBT_E_INVALID);
    CHECK_ERR(dbt_my_dn_oneline("CN=alice,O=Acme", out, 10), DBT_E_LIMIT);
    CHECK_OK(dbt_my_dn_oneline("CN=alice,O=Acme", out, 17));
    CHECK_ERR(dbt_my_dn_oneline("CN=alice,O=Acme", out, 16), DBT_E_LIMIT);
}

static size_t put_pkt(uint8_t *b, uint8_t seq, const char *payload, size_t n)
{
    b[0] = (uint8_t)n;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)(n >> 16);
    b[3] = seq;
    memcpy(b + 4, payload, n);
    return n + 4;
}

static void test_cmd_scan(void)
{
    uint8_t buf[512];
    size_t n = 0;
    n += put_pkt(buf + n, 0, "\x03SELECT 1", 9);
    n += put_pkt(buf + n, 0,
                 "\x11"
                 "bob\0\x14"
                 "xxxxxxxxxxxxxxxxxxxx",
                 26);
    n += put_pkt(buf + n, 3, "\x11not-a-command\0", 16); /* auth reply, seq 3 */
    n += put_pkt(buf + n, 2, "\x11infile data\0", 14);   /* LOCAL INFILE data, seq 2 */
    n += put_pkt(buf + n, 0, "", 0);                     /* empty packet */
    n += put_pkt(buf + n, 0,
                 "\x11"
                 "carol\0",
                 7);

    struct dbt_my_cmd_scan sc = {0};
    struct dbt_my_change_user cu;
    size_t off = 0;
    CHECK(dbt_my_cmd_scan_next(&sc, buf, n, &off, &cu));
    CHECK(cu.complete && cu.user_len == 3 && memcmp(cu.user, "bob", 3) == 0);
    CHECK(dbt_my_cmd_scan_next(&sc, buf, n, &off, &cu));
    CHECK(cu.complete && cu.user_len == 5 && memcmp(cu.user, "carol", 5) == 0);
    CHECK(!dbt_my_cmd_scan_next(&sc, buf, n, &off, &cu));
    CHECK(off == n);

    /* Byte by byte: the same two hits, the user incomplete at the command byte. */
    struct dbt_my_cmd_scan sc2 = {0};
    int hits = 0;
    for (size_t i = 0; i < n; i++) {
        size_t o = 0;
        uint8_t *one = exact_copy(buf + i, 1);
        while (dbt_my_cmd_scan_next(&sc2, one, 1, &o, &cu)) {
            hits++;
            CHECK(!cu.complete);
        }
        CHECK(o == 1);
        free(one);
    }
    CHECK(hits == 2);

    /* Split after the user name: complete in the first part. */
    struct dbt_my_cmd_scan sc3 = {0};
    off = 0;
    CHECK(dbt_my_cmd_scan_next(&sc3, buf, 13 + 4 + 5, &off, &cu));
    CHECK(cu.complete && cu.user_len == 3);
    CHECK(!dbt_my_cmd_scan_next(&sc3, buf, 13 + 4 + 5, &off, &cu));
    off = 0;
    CHECK(dbt_my_cmd_scan_next(&sc3, buf + 22, n - 22, &off, &cu));
    CHECK(cu.complete && cu.user_len == 5 && memcmp(cu.user, "carol", 5) == 0);

    /* A 0xffffff-byte command continued by a part with seq 0 starting with 0x11: not a command. */
    size_t big = 4 + DBT_MY_MAX_PART + 4 + 5;
    uint8_t *b = calloc(1, big);
    b[0] = b[1] = b[2] = 0xff;
    b[4] = 0x03;
    put_pkt(b + 4 + DBT_MY_MAX_PART, 0, "\x11x\0yz", 5);
    struct dbt_my_cmd_scan sc4 = {0};
    off = 0;
    CHECK(!dbt_my_cmd_scan_next(&sc4, b, big, &off, &cu));
    CHECK(off == big);
    /* ...and the packet after that is a command again. */
    uint8_t after[16];
    size_t an = put_pkt(after, 0,
                        "\x11"
                        "eve\0",
                        5);
    off = 0;
    CHECK(dbt_my_cmd_scan_next(&sc4, after, an, &off, &cu));
    CHECK(cu.complete && cu.user_len == 3);
    free(b);
}

static size_t pubkey_pem(EVP_PKEY *k, char *out, size_t cap)
{
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(b != NULL && PEM_write_bio_PUBKEY(b, k) == 1);
    int n = BIO_read(b, out, (int)cap - 1);
    BIO_free(b);
    CHECK(n > 0);
    out[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* The RSA step of caching_sha2_password: what the server decrypts is password XOR scramble. */
static void test_sha2_rsa(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
    CHECK(key != NULL && ec != NULL);
    char pem[4096], ecpem[1024];
    size_t pem_len = pubkey_pem(key, pem, sizeof(pem)),
           ec_len = pubkey_pem(ec, ecpem, sizeof(ecpem));
    const uint8_t scramble[20] = "abcdefghijklmnopqrst";
    const uint8_t pw[] = "secret-password"; /* with its NUL, as the client sends it */
    uint8_t ct[DBT_MY_SHA2_RSA_MAX], back[DBT_MY_SHA2_RSA_MAX];
    size_t ct_len = 0, back_len = sizeof(back);
    CHECK(dbt_ok(dbt_my_sha2_rsa_encrypt(pem, pem_len, pw, sizeof(pw), scramble, 20, ct, sizeof(ct),
                                         &ct_len)));
    CHECK(ct_len == 256);
    EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(key, NULL);
    CHECK(dc != NULL && EVP_PKEY_decrypt_init(dc) == 1 &&
          EVP_PKEY_CTX_set_rsa_padding(dc, RSA_PKCS1_OAEP_PADDING) == 1 &&
          EVP_PKEY_decrypt(dc, back, &back_len, ct, ct_len) == 1);
    CHECK(back_len == sizeof(pw));
    for (size_t i = 0; i < back_len; i++) {
        back[i] ^= scramble[i % 20];
    }
    CHECK(memcmp(back, pw, sizeof(pw)) == 0);
    EVP_PKEY_CTX_free(dc);

    /* refusals, each one line */
    dbt_res r = dbt_my_sha2_rsa_encrypt("not a key", 9, pw, sizeof(pw), scramble, 20, ct,
                                        sizeof(ct), &ct_len);
    CHECK(r.code == DBT_E_PROTO && strstr(dbt_errmsg(), "not a PEM public key") != NULL);
    r = dbt_my_sha2_rsa_encrypt(ecpem, ec_len, pw, sizeof(pw), scramble, 20, ct, sizeof(ct),
                                &ct_len);
    CHECK(r.code == DBT_E_PROTO && strstr(dbt_errmsg(), "not an RSA key") != NULL);
    uint8_t longpw[256];
    memset(longpw, 'x', sizeof(longpw));
    r = dbt_my_sha2_rsa_encrypt(pem, pem_len, longpw, 256 - 41, scramble, 20, ct, sizeof(ct),
                                &ct_len);
    CHECK(r.code == DBT_E_INVALID && strstr(dbt_errmsg(), "too long") != NULL);
    r = dbt_my_sha2_rsa_encrypt(pem, 0, pw, sizeof(pw), scramble, 20, ct, sizeof(ct), &ct_len);
    CHECK(r.code == DBT_E_PROTO);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ec);
}

/* --client-info: the front's attributes first, the client's own kept except "dbtls.*". */
static void test_attrs_build(void)
{
    static const uint8_t client[] = {4,   '_', 'o', 's', 'x', 1,   'L', 3,   'd', 'b', 't', 1,
                                     'n', 17,  'd', 'b', 't', 'l', 's', '.', 'c', 'l', 'i', 'e',
                                     'n', 't', '_', 'a', 'd', 'd', 'r', 3,   '6', '.', '6'};
    struct dbt_my_response r = {.has_attrs = true, .attrs = client, .attrs_len = sizeof(client)};
    const char *const pairs[][2] = {{"dbtls.client_addr", "127.0.0.1"}, {"dbtls.ssl", ""}};
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    CHECK_OK(dbt_my_attrs_build(&r, "dbtls.", pairs, 2, &b));
    struct dbt_my_response out = {.has_attrs = true, .attrs = b.data, .attrs_len = b.len};
    const char *want[][2] = {
        {"dbtls.client_addr", "127.0.0.1"}, {"dbtls.ssl", ""}, {"_osx", "L"}, {"dbt", "n"}};
    size_t off = 0, kl, vl, i = 0;
    const char *k, *v;
    while (dbt_my_attrs_next(&out, &off, &k, &kl, &v, &vl)) {
        CHECK(i < 4 && kl == strlen(want[i][0]) && memcmp(k, want[i][0], kl) == 0);
        CHECK(i < 4 && vl == strlen(want[i][1]) && memcmp(v, want[i][1], vl) == 0);
        i++;
    }
    CHECK(i == 4 && off == b.len);
    dbt_buf_cleanup(&b);
    /* too many bytes for the attribute block */
    static char big[70000];
    memset(big, 'x', sizeof(big) - 1);
    const char *const huge[][2] = {{"k", big}};
    dbt_buf_init(&b, 0);
    CHECK_ERR(dbt_my_attrs_build(&r, "dbtls.", huge, 1, &b), DBT_E_INVALID);
    dbt_buf_cleanup(&b);
    /* attributes fit only after the fields caps announce */
    struct dbt_my_response nodb = {.has_plugin = true};
    CHECK(!dbt_my_attrs_fit(&nodb, DBT_MY_CLIENT_CONNECT_WITH_DB | DBT_MY_CLIENT_PLUGIN_AUTH));
    CHECK(dbt_my_attrs_fit(&nodb, DBT_MY_CLIENT_PLUGIN_AUTH));
}

int main(void)
{
    test_attrs_build();
    test_sha2_rsa();
    test_cmd_scan();
    test_dn_oneline();
    test_golden();
    test_greeting_rewrite();
    test_response_encodings();
    test_classify();
    test_framing();
    test_auth_packets();
    test_error_texts();
    test_reqs_parse();
    test_host_like();
    test_reqs_check();
    return check_exit();
}
