/*
 * my.c - MySQL / MariaDB wire messages for the TLS front (see my.h). Pure functions over byte
 * ranges: every read of peer bytes goes through base/rd.h, every write through base/wr.h.
 */
#include "proto/my/my.h"

#include <stdio.h>
#include <string.h>

#include "base/rd.h"

/* AGAIN is the common case while bytes trickle in: no message formatting for it. */
static dbt_res need_more(void)
{
    return (dbt_res){DBT_E_AGAIN};
}

/* ---- framing ---- */

dbt_res dbt_my_frame_peek(const uint8_t *p, size_t n, size_t max, struct dbt_my_frame *f)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    struct dbt_my_frame fr = {0};

    for (;;) {
        uint32_t len;
        uint8_t seq;
        if (dbt_rd_left(&rd) < DBT_MY_HDR_LEN) {
            return need_more();
        }
        if (!dbt_rd_le24(&rd, &len) || !dbt_rd_u8(&rd, &seq)) {
            return need_more();
        }
        /*
         * "If the payload is larger than or equal to 2^24-1 bytes the length is set to 2^24-1
         * and additional packets are sent with the rest of the payload until the payload of a
         * packet is less than 2^24-1 bytes" (page_protocol_basic_packets); every part takes the
         * next sequence id.
         */
        if (fr.nparts > 0 && seq != (uint8_t)(fr.last_seq + 1)) {
            return dbt_fail(DBT_E_PROTO,
                            "MySQL packet continuation has sequence id %u, expected %u", seq,
                            (unsigned)(uint8_t)(fr.last_seq + 1));
        }
        if (len > max || fr.payload_len > max - len) {
            return dbt_fail(DBT_E_LIMIT, "MySQL packet of %zu bytes exceeds the limit of %zu",
                            fr.payload_len + len, max);
        }
        const uint8_t *payload;
        if (!dbt_rd_bytes(&rd, len, &payload)) {
            return need_more();
        }
        if (fr.nparts == 0) {
            fr.seq = seq;
            fr.payload = payload;
        } else {
            fr.payload = NULL;
        }
        fr.nparts++;
        fr.last_seq = seq;
        fr.payload_len += len;
        if (len < DBT_MY_MAX_PART) {
            break;
        }
    }
    fr.wire_len = rd.off;
    *f = fr;
    return DBT_OK;
}

dbt_res dbt_my_frame_payload(const uint8_t *p, const struct dbt_my_frame *f, struct dbt_buf *out)
{
    struct dbt_rd rd = dbt_rd_make(p, f->wire_len);
    for (unsigned i = 0; i < f->nparts; i++) {
        uint32_t len;
        const uint8_t *part;
        if (!dbt_rd_le24(&rd, &len) || !dbt_rd_skip(&rd, 1) || !dbt_rd_bytes(&rd, len, &part)) {
            return dbt_fail(DBT_E_INTERNAL, "MySQL frame does not match its bytes");
        }
        dbt_res r = dbt_buf_append(out, part, len);
        if (!dbt_ok(r)) {
            return r;
        }
    }
    return DBT_OK;
}

void dbt_my_frame_renumber(uint8_t *p, const struct dbt_my_frame *f, int delta)
{
    struct dbt_rd rd = dbt_rd_make(p, f->wire_len);
    for (unsigned i = 0; i < f->nparts; i++) {
        uint32_t len;
        size_t seq_at = rd.off + 3;
        if (!dbt_rd_le24(&rd, &len) || !dbt_rd_skip(&rd, 1) || !dbt_rd_skip(&rd, len)) {
            return;
        }
        p[seq_at] = (uint8_t)(p[seq_at] + delta);
    }
}

size_t dbt_my_pkt_begin(struct dbt_wr *w, uint8_t seq)
{
    size_t pos = dbt_wr_reserve(w, 3);
    dbt_wr_u8(w, seq);
    return pos;
}

void dbt_my_pkt_end(struct dbt_wr *w, size_t pos)
{
    if (w->failed) {
        return;
    }
    size_t len = dbt_wr_pos(w) - pos - DBT_MY_HDR_LEN;
    if (len >= DBT_MY_MAX_PART) {
        w->failed = true;
        return;
    }
    dbt_wr_patch_le24(w, pos, (uint32_t)len);
}

/* ---- greeting ---- */

static uint32_t le32_at(const uint8_t *p)
{
    struct dbt_rd rd = dbt_rd_make(p, 4);
    uint32_t v = 0;
    if (!dbt_rd_le32(&rd, &v)) {
        return 0;
    }
    return v;
}

dbt_res dbt_my_greeting_decode(const uint8_t *p, size_t n, struct dbt_my_greeting *g)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    uint16_t lo, hi;

    memset(g, 0, sizeof(*g));
    if (!dbt_rd_u8(&rd, &g->protocol)) {
        return dbt_fail(DBT_E_PROTO, "MySQL server greeting is empty");
    }
    if (g->protocol == 0xff) {
        return dbt_fail(DBT_E_PROTO, "MySQL server sent an error instead of its greeting");
    }
    if (g->protocol != 10) {
        return dbt_fail(DBT_E_PROTO, "MySQL server greeting has protocol version %u, not 10",
                        g->protocol);
    }
    if (!dbt_rd_cstr(&rd, &g->server_version, &g->server_version_len)) {
        return dbt_fail(DBT_E_PROTO, "MySQL server greeting: server version is not terminated");
    }
    if (!dbt_rd_le32(&rd, &g->thread_id) || !dbt_rd_bytes(&rd, 8, &g->scramble1) ||
        !dbt_rd_u8(&rd, &g->filler) || !dbt_rd_le16(&rd, &lo)) {
        return dbt_fail(DBT_E_PROTO, "MySQL server greeting truncated before its capabilities");
    }
    g->caps = lo;
    if (dbt_rd_left(&rd) == 0) {
        /* "if more data in the packet": a 4.1 server may stop after the lower capabilities. */
        return DBT_OK;
    }
    g->has_more = true;
    if (!dbt_rd_u8(&rd, &g->charset) || !dbt_rd_le16(&rd, &g->status) || !dbt_rd_le16(&rd, &hi) ||
        !dbt_rd_u8(&rd, &g->auth_data_len) || !dbt_rd_bytes(&rd, 10, &g->reserved)) {
        return dbt_fail(DBT_E_PROTO, "MySQL server greeting truncated in its extended header");
    }
    g->caps |= (uint32_t)hi << 16;
    if (!(g->caps & DBT_MY_CLIENT_LONG_PASSWORD)) {
        /* MariaDB: CLIENT_MYSQL clear means the last 4 reserved bytes carry extended caps. */
        g->mariadb_caps = le32_at(g->reserved + 6);
    }
    if (g->caps & DBT_MY_CLIENT_SECURE_CONNECTION) {
        /* "$len=MAX(13, length of auth-plugin-data - 8)" */
        size_t n2 = g->auth_data_len > 21 ? (size_t)g->auth_data_len - 8 : 13;
        if (!dbt_rd_bytes(&rd, n2, &g->scramble2)) {
            return dbt_fail(DBT_E_PROTO, "MySQL server greeting truncated in its scramble");
        }
        g->scramble2_len = n2;
    }
    if (g->caps & DBT_MY_CLIENT_PLUGIN_AUTH) {
        if (dbt_rd_cstr(&rd, &g->auth_plugin, &g->auth_plugin_len)) {
            g->auth_plugin_nul = true;
        } else {
            /* MySQL 5.5.7-5.5.9 sent the name without its NUL: the rest of the packet. */
            const uint8_t *name;
            g->auth_plugin_len = dbt_rd_left(&rd);
            if (!dbt_rd_bytes(&rd, g->auth_plugin_len, &name)) {
                return dbt_fail(DBT_E_INTERNAL, "reader disagrees with itself");
            }
            g->auth_plugin = (const char *)name;
        }
    }
    if (!dbt_rd_expect_end(&rd)) {
        return dbt_fail(DBT_E_PROTO, "MySQL server greeting has %zu unexpected trailing bytes",
                        dbt_rd_left(&rd));
    }
    return DBT_OK;
}

void dbt_my_greeting_encode(const struct dbt_my_greeting *g, uint32_t caps, uint8_t seq,
                            struct dbt_wr *w)
{
    size_t pos = dbt_my_pkt_begin(w, seq);
    dbt_wr_u8(w, g->protocol);
    dbt_wr_bytes(w, g->server_version, g->server_version_len);
    dbt_wr_u8(w, 0);
    dbt_wr_le32(w, g->thread_id);
    dbt_wr_bytes(w, g->scramble1, 8);
    dbt_wr_u8(w, g->filler);
    dbt_wr_le16(w, (uint16_t)caps);
    if (g->has_more) {
        dbt_wr_u8(w, g->charset);
        dbt_wr_le16(w, g->status);
        dbt_wr_le16(w, (uint16_t)(caps >> 16));
        dbt_wr_u8(w, g->auth_data_len);
        dbt_wr_bytes(w, g->reserved, 10);
        if (g->scramble2 != NULL) {
            dbt_wr_bytes(w, g->scramble2, g->scramble2_len);
        }
        if (g->auth_plugin != NULL) {
            dbt_wr_bytes(w, g->auth_plugin, g->auth_plugin_len);
            if (g->auth_plugin_nul) {
                dbt_wr_u8(w, 0);
            }
        }
    }
    dbt_my_pkt_end(w, pos);
}

uint32_t dbt_my_greeting_front_caps(uint32_t backend_caps, bool tls)
{
    uint32_t caps = backend_caps & ~(DBT_MY_CAPS_MASKED | DBT_MY_CLIENT_SSL);
    return tls ? caps | DBT_MY_CLIENT_SSL : caps;
}

/* ---- HandshakeResponse41 / SSLRequest ---- */

static dbt_res decode_fixed(struct dbt_rd *rd, struct dbt_my_response *r)
{
    if (!dbt_rd_le32(rd, &r->caps) || !dbt_rd_le32(rd, &r->max_packet) ||
        !dbt_rd_u8(rd, &r->charset) || !dbt_rd_bytes(rd, 23, &r->filler)) {
        return dbt_fail(DBT_E_PROTO,
                        "MySQL client handshake packet is shorter than the 32-byte minimum");
    }
    if (!(r->caps & DBT_MY_CLIENT_PROTOCOL_41)) {
        return dbt_fail(DBT_E_PROTO, "MySQL client uses the pre-4.1 handshake "
                                     "(HandshakeResponse320), which is not supported");
    }
    if (!(r->caps & DBT_MY_CLIENT_LONG_PASSWORD)) {
        r->mariadb_caps = le32_at(r->filler + 19);
    }
    return DBT_OK;
}

dbt_res dbt_my_hs_classify(const uint8_t *p, size_t n, enum dbt_my_hs_kind *kind)
{
    struct dbt_my_response r = {0};
    struct dbt_rd rd = dbt_rd_make(p, n);
    dbt_res res = decode_fixed(&rd, &r);
    if (!dbt_ok(res)) {
        return res;
    }
    if (n == DBT_MY_SSL_REQUEST_LEN) {
        if (!(r.caps & DBT_MY_CLIENT_SSL)) {
            return dbt_fail(DBT_E_PROTO, "MySQL client handshake response is truncated at 32 "
                                         "bytes (no user name) and is not an SSLRequest");
        }
        *kind = DBT_MY_HS_SSL_REQUEST;
        return DBT_OK;
    }
    if (r.caps & DBT_MY_CLIENT_SSL) {
        /* An SSLRequest is exactly 32 bytes; one carrying credentials would send them in clear. */
        return dbt_fail(DBT_E_PROTO,
                        "MySQL client set CLIENT_SSL in a %zu-byte handshake "
                        "response instead of sending a 32-byte SSLRequest",
                        n);
    }
    *kind = DBT_MY_HS_RESPONSE;
    return DBT_OK;
}

dbt_res dbt_my_ssl_request_decode(const uint8_t *p, size_t n, struct dbt_my_response *r)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    memset(r, 0, sizeof(*r));
    dbt_res res = decode_fixed(&rd, r);
    if (!dbt_ok(res)) {
        return res;
    }
    if (!(r->caps & DBT_MY_CLIENT_SSL) || !dbt_rd_expect_end(&rd)) {
        return dbt_fail(DBT_E_PROTO, "MySQL SSLRequest must be 32 bytes with CLIENT_SSL set");
    }
    return DBT_OK;
}

static bool rd_lenenc_str(struct dbt_rd *rd, const uint8_t **s, size_t *n)
{
    struct dbt_rd save = *rd;
    uint64_t len;
    if (!dbt_rd_lenenc(rd, &len) || len > dbt_rd_left(rd) || !dbt_rd_bytes(rd, (size_t)len, s)) {
        *rd = save;
        return false;
    }
    *n = (size_t)len;
    return true;
}

static dbt_res decode_attrs(struct dbt_rd *rd, struct dbt_my_response *r)
{
    uint64_t total;
    struct dbt_rd sub;
    if (!dbt_rd_lenenc(rd, &total) || total > dbt_rd_left(rd) ||
        !dbt_rd_sub(rd, (size_t)total, &sub)) {
        return dbt_fail(DBT_E_PROTO, "MySQL handshake response: connection attributes length "
                                     "exceeds the packet");
    }
    r->has_attrs = true;
    r->attrs = sub.p;
    r->attrs_len = sub.len;
    while (dbt_rd_left(&sub) > 0) {
        const uint8_t *k, *v;
        size_t kn, vn;
        if (!rd_lenenc_str(&sub, &k, &kn) || !rd_lenenc_str(&sub, &v, &vn)) {
            return dbt_fail(DBT_E_PROTO,
                            "MySQL handshake response: malformed connection attribute");
        }
    }
    return DBT_OK;
}

dbt_res dbt_my_response_decode(const uint8_t *p, size_t n, struct dbt_my_response *r)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    memset(r, 0, sizeof(*r));
    dbt_res res = decode_fixed(&rd, r);
    if (!dbt_ok(res)) {
        return res;
    }
    if (!dbt_rd_cstr(&rd, &r->user, &r->user_len)) {
        return dbt_fail(DBT_E_PROTO, "MySQL handshake response: user name is not terminated");
    }
    if (r->caps & DBT_MY_CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        r->auth_enc = DBT_MY_AUTH_ENC_LENENC;
        if (!rd_lenenc_str(&rd, &r->auth, &r->auth_len)) {
            return dbt_fail(DBT_E_PROTO, "MySQL handshake response: length-encoded auth "
                                         "response exceeds the packet");
        }
    } else if (r->caps & DBT_MY_CLIENT_SECURE_CONNECTION) {
        uint8_t len;
        r->auth_enc = DBT_MY_AUTH_ENC_1BYTE;
        if (!dbt_rd_u8(&rd, &len) || !dbt_rd_bytes(&rd, len, &r->auth)) {
            return dbt_fail(DBT_E_PROTO,
                            "MySQL handshake response: auth response exceeds the packet");
        }
        r->auth_len = len;
    } else {
        const char *s;
        r->auth_enc = DBT_MY_AUTH_ENC_NUL;
        if (!dbt_rd_cstr(&rd, &s, &r->auth_len)) {
            return dbt_fail(DBT_E_PROTO,
                            "MySQL handshake response: auth response is not terminated");
        }
        r->auth = (const uint8_t *)s;
    }
    /* The optional parts may be missing when the packet ends before them. */
    if ((r->caps & DBT_MY_CLIENT_CONNECT_WITH_DB) && dbt_rd_left(&rd) > 0) {
        if (!dbt_rd_cstr(&rd, &r->db, &r->db_len)) {
            return dbt_fail(DBT_E_PROTO,
                            "MySQL handshake response: database name is not terminated");
        }
        r->has_db = true;
    }
    if ((r->caps & DBT_MY_CLIENT_PLUGIN_AUTH) && dbt_rd_left(&rd) > 0) {
        if (!dbt_rd_cstr(&rd, &r->plugin, &r->plugin_len)) {
            return dbt_fail(DBT_E_PROTO,
                            "MySQL handshake response: auth plugin name is not terminated");
        }
        r->has_plugin = true;
    }
    if ((r->caps & DBT_MY_CLIENT_CONNECT_ATTRS) && dbt_rd_left(&rd) > 0) {
        res = decode_attrs(&rd, r);
        if (!dbt_ok(res)) {
            return res;
        }
    }
    if ((r->caps & DBT_MY_CLIENT_ZSTD_COMPRESSION_ALGORITHM) && dbt_rd_left(&rd) > 0) {
        if (!dbt_rd_u8(&rd, &r->zstd_level)) {
            return dbt_fail(DBT_E_INTERNAL, "reader disagrees with itself");
        }
        r->has_zstd_level = true;
    }
    if (!dbt_rd_expect_end(&rd)) {
        return dbt_fail(DBT_E_PROTO, "MySQL handshake response has %zu unexpected trailing bytes",
                        dbt_rd_left(&rd));
    }
    return DBT_OK;
}

static void encode_fixed(const struct dbt_my_response *r, uint32_t caps, struct dbt_wr *w)
{
    dbt_wr_le32(w, caps);
    dbt_wr_le32(w, r->max_packet);
    dbt_wr_u8(w, r->charset);
    if (r->filler != NULL) {
        dbt_wr_bytes(w, r->filler, 23);
    } else {
        dbt_wr_zeros(w, 23);
    }
}

void dbt_my_response_encode(const struct dbt_my_response *r, uint32_t caps, uint8_t seq,
                            struct dbt_wr *w)
{
    size_t pos = dbt_my_pkt_begin(w, seq);
    encode_fixed(r, caps, w);
    dbt_wr_bytes(w, r->user, r->user_len);
    dbt_wr_u8(w, 0);
    if (caps & DBT_MY_CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        dbt_wr_lenenc(w, r->auth_len);
        dbt_wr_bytes(w, r->auth, r->auth_len);
    } else if (caps & DBT_MY_CLIENT_SECURE_CONNECTION) {
        if (r->auth_len > 255) {
            w->failed = true;
            return;
        }
        dbt_wr_u8(w, (uint8_t)r->auth_len);
        dbt_wr_bytes(w, r->auth, r->auth_len);
    } else {
        if (r->auth_len > 0 && memchr(r->auth, 0, r->auth_len) != NULL) {
            w->failed = true;
            return;
        }
        dbt_wr_bytes(w, r->auth, r->auth_len);
        dbt_wr_u8(w, 0);
    }
    bool more = true;
    if ((caps & DBT_MY_CLIENT_CONNECT_WITH_DB) && more) {
        if (r->has_db) {
            dbt_wr_bytes(w, r->db, r->db_len);
            dbt_wr_u8(w, 0);
        } else {
            more = false;
        }
    }
    if ((caps & DBT_MY_CLIENT_PLUGIN_AUTH) && more) {
        if (r->has_plugin) {
            dbt_wr_bytes(w, r->plugin, r->plugin_len);
            dbt_wr_u8(w, 0);
        } else {
            more = false;
        }
    }
    if ((caps & DBT_MY_CLIENT_CONNECT_ATTRS) && more) {
        if (r->has_attrs) {
            dbt_wr_lenenc(w, r->attrs_len);
            dbt_wr_bytes(w, r->attrs, r->attrs_len);
        } else {
            more = false;
        }
    }
    if ((caps & DBT_MY_CLIENT_ZSTD_COMPRESSION_ALGORITHM) && more && r->has_zstd_level) {
        dbt_wr_u8(w, r->zstd_level);
    }
    dbt_my_pkt_end(w, pos);
}

void dbt_my_ssl_request_encode(const struct dbt_my_response *r, uint32_t caps, uint8_t seq,
                               struct dbt_wr *w)
{
    size_t pos = dbt_my_pkt_begin(w, seq);
    encode_fixed(r, caps | DBT_MY_CLIENT_SSL, w);
    dbt_my_pkt_end(w, pos);
}

bool dbt_my_attrs_next(const struct dbt_my_response *r, size_t *off, const char **key,
                       size_t *key_len, const char **val, size_t *val_len)
{
    if (!r->has_attrs || *off >= r->attrs_len) {
        return false;
    }
    struct dbt_rd rd = dbt_rd_make(r->attrs, r->attrs_len);
    const uint8_t *k, *v;
    rd.off = *off;
    if (!rd_lenenc_str(&rd, &k, key_len) || !rd_lenenc_str(&rd, &v, val_len)) {
        return false;
    }
    *key = (const char *)k;
    *val = (const char *)v;
    *off = rd.off;
    return true;
}

static void wr_lenenc_str(struct dbt_wr *w, const void *p, size_t n)
{
    dbt_wr_lenenc(w, n);
    dbt_wr_bytes(w, p, n);
}

dbt_res dbt_my_attrs_build(const struct dbt_my_response *r, const char *drop_prefix,
                           const char *const (*pairs)[2], size_t n, struct dbt_buf *out)
{
    struct dbt_wr w = dbt_wr_make(out);
    size_t start = out->len;
    for (size_t i = 0; i < n; i++) {
        wr_lenenc_str(&w, pairs[i][0], strlen(pairs[i][0]));
        wr_lenenc_str(&w, pairs[i][1], strlen(pairs[i][1]));
    }
    size_t off = 0, kl, vl;
    const char *k, *v;
    size_t dl = strlen(drop_prefix);
    while (dbt_my_attrs_next(r, &off, &k, &kl, &v, &vl)) {
        if (kl >= dl && memcmp(k, drop_prefix, dl) == 0) {
            continue;
        }
        wr_lenenc_str(&w, k, kl);
        wr_lenenc_str(&w, v, vl);
    }
    dbt_res res = dbt_wr_finish(&w);
    if (dbt_ok(res) && out->len - start > 65535) {
        res = dbt_fail(DBT_E_INVALID, "connection attributes of %zu bytes", out->len - start);
    }
    return res;
}

bool dbt_my_attrs_fit(const struct dbt_my_response *r, uint32_t caps)
{
    return (!(caps & DBT_MY_CLIENT_CONNECT_WITH_DB) || r->has_db) &&
           (!(caps & DBT_MY_CLIENT_PLUGIN_AUTH) || r->has_plugin);
}

/* ---- authentication phase ---- */

bool dbt_my_is_err(const uint8_t *p, size_t n)
{
    return n >= 3 && p[0] == 0xff;
}

bool dbt_my_is_ok(const uint8_t *p, size_t n)
{
    return n >= 7 && p[0] == 0x00;
}

enum dbt_my_auth_kind dbt_my_auth_classify(const uint8_t *p, size_t n)
{
    if (n == 0) {
        return DBT_MY_AUTH_OTHER;
    }
    switch (p[0]) {
    case 0x00:
        return dbt_my_is_ok(p, n) ? DBT_MY_AUTH_OK : DBT_MY_AUTH_OTHER;
    case 0xff:
        return dbt_my_is_err(p, n) ? DBT_MY_AUTH_ERR : DBT_MY_AUTH_OTHER;
    case 0xfe:
        return DBT_MY_AUTH_SWITCH;
    case 0x01:
        return DBT_MY_AUTH_MORE_DATA;
    default:
        return DBT_MY_AUTH_OTHER;
    }
}

dbt_res dbt_my_switch_decode(const uint8_t *p, size_t n, struct dbt_my_switch *s)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    uint8_t tag;
    memset(s, 0, sizeof(*s));
    if (!dbt_rd_u8(&rd, &tag) || tag != 0xfe) {
        return dbt_fail(DBT_E_PROTO, "not a MySQL AuthSwitchRequest");
    }
    if (dbt_rd_left(&rd) == 0) {
        /* Old Authentication Method Switch Request: switch to mysql_old_password. */
        s->plugin = "";
        return DBT_OK;
    }
    if (!dbt_rd_cstr(&rd, &s->plugin, &s->plugin_len)) {
        return dbt_fail(DBT_E_PROTO, "MySQL AuthSwitchRequest: plugin name is not terminated");
    }
    s->data_len = dbt_rd_left(&rd);
    if (!dbt_rd_bytes(&rd, s->data_len, &s->data)) {
        return dbt_fail(DBT_E_INTERNAL, "reader disagrees with itself");
    }
    return DBT_OK;
}

dbt_res dbt_my_more_data_decode(const uint8_t *p, size_t n, const uint8_t **data, size_t *len)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    uint8_t tag;
    if (!dbt_rd_u8(&rd, &tag) || tag != 0x01) {
        return dbt_fail(DBT_E_PROTO, "not a MySQL AuthMoreData packet");
    }
    *len = dbt_rd_left(&rd);
    if (!dbt_rd_bytes(&rd, *len, data)) {
        return dbt_fail(DBT_E_INTERNAL, "reader disagrees with itself");
    }
    return DBT_OK;
}

/* ---- command stream ---- */

bool dbt_my_cmd_scan_next(struct dbt_my_cmd_scan *sc, const uint8_t *p, size_t n, size_t *off,
                          struct dbt_my_change_user *cu)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    if (*off > n || !dbt_rd_skip(&rd, *off)) {
        return false;
    }
    while (dbt_rd_left(&rd) > 0) {
        if (!sc->in_payload) {
            while (sc->hdr_have < 4 && dbt_rd_u8(&rd, &sc->hdr[sc->hdr_have])) {
                sc->hdr_have++;
            }
            if (sc->hdr_have < 4) {
                break;
            }
            uint32_t len =
                (uint32_t)sc->hdr[0] | (uint32_t)sc->hdr[1] << 8 | (uint32_t)sc->hdr[2] << 16;
            sc->is_cmd = sc->hdr[3] == 0 && !sc->cont;
            sc->cont = len == DBT_MY_MAX_PART;
            sc->left = len;
            sc->seen = 0;
            sc->hdr_have = 0;
            sc->in_payload = len > 0;
            continue;
        }
        size_t k = dbt_rd_left(&rd) < sc->left ? dbt_rd_left(&rd) : sc->left;
        bool hit = false;
        if (sc->seen == 0 && sc->is_cmd) {
            uint8_t cmd;
            if (dbt_rd_peek_u8(&rd, &cmd) && cmd == DBT_MY_COM_CHANGE_USER) {
                struct dbt_rd look = rd, sub;
                const char *u;
                size_t ulen;
                hit = true;
                memset(cu, 0, sizeof(*cu));
                if (dbt_rd_sub(&look, k, &sub) && dbt_rd_skip(&sub, 1) &&
                    dbt_rd_cstr(&sub, &u, &ulen)) {
                    cu->user = u;
                    cu->user_len = ulen;
                    cu->complete = true;
                }
            }
        }
        if (!dbt_rd_skip(&rd, k)) {
            break;
        }
        sc->left -= (uint32_t)k;
        sc->seen += k;
        if (sc->left == 0) {
            sc->in_payload = false;
        }
        if (hit) {
            *off = rd.off;
            return true;
        }
    }
    *off = rd.off;
    return false;
}

/* ---- ERR ---- */

dbt_res dbt_my_err_decode(const uint8_t *p, size_t n, bool protocol41, struct dbt_my_err *e)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    uint8_t tag, mark;
    memset(e, 0, sizeof(*e));
    if (!dbt_rd_u8(&rd, &tag) || tag != 0xff) {
        return dbt_fail(DBT_E_PROTO, "not a MySQL ERR packet");
    }
    if (!dbt_rd_le16(&rd, &e->code)) {
        return dbt_fail(DBT_E_PROTO, "MySQL ERR packet truncated before its error code");
    }
    if (protocol41 && dbt_rd_left(&rd) >= 6 && dbt_rd_peek_u8(&rd, &mark) && mark == '#') {
        const uint8_t *st;
        if (!dbt_rd_skip(&rd, 1) || !dbt_rd_bytes(&rd, 5, &st)) {
            return dbt_fail(DBT_E_INTERNAL, "reader disagrees with itself");
        }
        for (int i = 0; i < 5; i++) {
            e->state[i] = (char)st[i];
        }
        e->state[5] = '\0';
        e->has_state = true;
    }
    const uint8_t *msg;
    e->msg_len = dbt_rd_left(&rd);
    if (!dbt_rd_bytes(&rd, e->msg_len, &msg)) {
        return dbt_fail(DBT_E_INTERNAL, "reader disagrees with itself");
    }
    e->msg = (const char *)msg;
    return DBT_OK;
}

void dbt_my_err_encode(struct dbt_wr *w, uint8_t seq, bool protocol41, uint16_t code,
                       const char *state, const char *msg)
{
    size_t pos = dbt_my_pkt_begin(w, seq);
    dbt_wr_u8(w, 0xff);
    dbt_wr_le16(w, code);
    if (protocol41) {
        if (state == NULL || strlen(state) != 5) {
            w->failed = true;
            return;
        }
        dbt_wr_u8(w, '#');
        dbt_wr_bytes(w, state, 5);
    }
    dbt_wr_bytes(w, msg, strlen(msg));
    dbt_my_pkt_end(w, pos);
}

void dbt_my_err_secure_transport(struct dbt_wr *w, uint8_t seq, bool protocol41)
{
    dbt_my_err_encode(w, seq, protocol41, DBT_MY_ER_SECURE_TRANSPORT_REQUIRED,
                      DBT_MY_ER_SECURE_TRANSPORT_REQUIRED_STATE,
                      DBT_MY_ER_SECURE_TRANSPORT_REQUIRED_MSG);
}

void dbt_my_err_access_denied(struct dbt_wr *w, uint8_t seq, bool protocol41, const char *user,
                              size_t user_len, const char *host, bool using_password)
{
    char msg[512];
    /* MySQL user names are at most 32 characters (80 bytes in MariaDB); bound what we echo. */
    int shown = user_len > 128 ? 128 : (int)user_len;
    snprintf(msg, sizeof(msg), "Access denied for user '%.*s'@'%.200s' (using password: %s)", shown,
             user, host, using_password ? "YES" : "NO");
    dbt_my_err_encode(w, seq, protocol41, DBT_MY_ER_ACCESS_DENIED, DBT_MY_ER_ACCESS_DENIED_STATE,
                      msg);
}
