/*
 * my.h - the MySQL / MariaDB client/server wire messages the TLS front needs, as pure functions
 * (no I/O, no globals): packet framing, the HandshakeV10 greeting, the SSLRequest, the
 * HandshakeResponse41, the authentication-phase packets (OK, ERR, AuthSwitchRequest,
 * AuthMoreData) and the exact error texts MySQL sends. Per-user REQUIRE rules live in myreq.h.
 *
 * Decoders read untrusted bytes only through base/rd.h and return slices that point into the
 * caller's buffer (valid while that buffer is); encoders write through base/wr.h.
 * Protocol reference: https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html and
 * https://mariadb.com/kb/en/connection/ (MariaDB's extended capabilities).
 */
#ifndef DBT_PROTO_MY_MY_H
#define DBT_PROTO_MY_MY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/wr.h"

/* Capability flags (page_protocol_basic_capabilities / mysql_com.h). */
#define DBT_MY_CLIENT_LONG_PASSWORD 0x00000001u /* MariaDB calls it CLIENT_MYSQL */
#define DBT_MY_CLIENT_FOUND_ROWS 0x00000002u
#define DBT_MY_CLIENT_LONG_FLAG 0x00000004u
#define DBT_MY_CLIENT_CONNECT_WITH_DB 0x00000008u
#define DBT_MY_CLIENT_NO_SCHEMA 0x00000010u
#define DBT_MY_CLIENT_COMPRESS 0x00000020u
#define DBT_MY_CLIENT_ODBC 0x00000040u
#define DBT_MY_CLIENT_LOCAL_FILES 0x00000080u
#define DBT_MY_CLIENT_IGNORE_SPACE 0x00000100u
#define DBT_MY_CLIENT_PROTOCOL_41 0x00000200u
#define DBT_MY_CLIENT_INTERACTIVE 0x00000400u
#define DBT_MY_CLIENT_SSL 0x00000800u
#define DBT_MY_CLIENT_IGNORE_SIGPIPE 0x00001000u
#define DBT_MY_CLIENT_TRANSACTIONS 0x00002000u
#define DBT_MY_CLIENT_RESERVED 0x00004000u
#define DBT_MY_CLIENT_SECURE_CONNECTION 0x00008000u
#define DBT_MY_CLIENT_MULTI_STATEMENTS 0x00010000u
#define DBT_MY_CLIENT_MULTI_RESULTS 0x00020000u
#define DBT_MY_CLIENT_PS_MULTI_RESULTS 0x00040000u
#define DBT_MY_CLIENT_PLUGIN_AUTH 0x00080000u
#define DBT_MY_CLIENT_CONNECT_ATTRS 0x00100000u
#define DBT_MY_CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA 0x00200000u
#define DBT_MY_CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS 0x00400000u
#define DBT_MY_CLIENT_SESSION_TRACK 0x00800000u
#define DBT_MY_CLIENT_DEPRECATE_EOF 0x01000000u
#define DBT_MY_CLIENT_OPTIONAL_RESULTSET_METADATA 0x02000000u
#define DBT_MY_CLIENT_ZSTD_COMPRESSION_ALGORITHM 0x04000000u
#define DBT_MY_CLIENT_QUERY_ATTRIBUTES 0x08000000u
#define DBT_MY_CLIENT_SSL_VERIFY_SERVER_CERT 0x40000000u

/*
 * Capabilities the front never lets through: it relays packets, and compressed framing would hide
 * them (and compression under TLS invites CRIME-style attacks).
 */
#define DBT_MY_CAPS_MASKED (DBT_MY_CLIENT_COMPRESS | DBT_MY_CLIENT_ZSTD_COMPRESSION_ALGORITHM)

/* Packet header: 3-byte little-endian payload length, 1-byte sequence id. */
#define DBT_MY_HDR_LEN 4u
/* A physical packet of this payload length is continued by the next one (payload >= 16 MiB). */
#define DBT_MY_MAX_PART 0xffffffu
/*
 * Bound on any packet before authentication completes (greeting, SSLRequest, HandshakeResponse,
 * auth exchange). MySQL caps connection attributes at 64 KiB; RSA public keys and auth data are
 * far smaller. Applied to the header before a byte of payload is buffered.
 */
#define DBT_MY_PREAUTH_MAX (64u * 1024u + 1024u)

/* The SSLRequest is the first 32 bytes of a HandshakeResponse41. */
#define DBT_MY_SSL_REQUEST_LEN 32u

/*
 * One logical packet at the start of a byte range: one physical packet, or several chained by
 * parts of exactly 0xffffff bytes and ended by a shorter one (possibly empty).
 */
struct dbt_my_frame {
    size_t wire_len;        /* bytes of the whole frame, headers included */
    size_t payload_len;     /* sum of the parts' payloads */
    uint8_t seq;            /* sequence id of the first part */
    uint8_t last_seq;       /* sequence id of the last part */
    unsigned nparts;        /* physical packets */
    const uint8_t *payload; /* contiguous payload when nparts == 1, else NULL */
};

/*
 * Finds the logical packet at the start of p[0..n). Every header is checked against max (the
 * largest logical payload accepted) as soon as it is seen, so a caller can refuse an oversize
 * packet before buffering it. Continuation parts must carry consecutive sequence ids.
 * Returns OK (f filled), AGAIN (incomplete; nothing is wrong so far), LIMIT (payload over max) or
 * PROTO (bad continuation sequence id).
 */
dbt_res dbt_my_frame_peek(const uint8_t *p, size_t n, size_t max, struct dbt_my_frame *f) DBT_WUR;

/* Appends the payload of frame f found at p (as returned by dbt_my_frame_peek) to out. */
dbt_res dbt_my_frame_payload(const uint8_t *p, const struct dbt_my_frame *f,
                             struct dbt_buf *out) DBT_WUR;

/*
 * Rewrites, in place, the sequence ids of every part of frame f at p: seq := seq + delta (mod 256).
 * Used to renumber the authentication exchange when the front consumed the SSLRequest.
 */
void dbt_my_frame_renumber(uint8_t *p, const struct dbt_my_frame *f, int delta);

/*
 * Starts a packet with sequence id seq in w; returns the header position for dbt_my_pkt_end,
 * which patches the length (a payload over 0xfffffe bytes fails the writer: the front never
 * builds one).
 */
size_t dbt_my_pkt_begin(struct dbt_wr *w, uint8_t seq);
void dbt_my_pkt_end(struct dbt_wr *w, size_t pos);

/* ---- HandshakeV10 (protocol::HandshakeV10, server -> client, seq 0) ---- */

struct dbt_my_greeting {
    uint8_t protocol; /* always 10 */
    const char *server_version;
    size_t server_version_len;
    uint32_t thread_id;
    const uint8_t *scramble1; /* auth-plugin-data-part-1, 8 bytes */
    uint8_t filler;           /* 0x00 */
    uint32_t caps;            /* lower 16 bits | upper 16 bits << 16 */
    bool has_more;            /* charset and everything after it present */
    uint8_t charset;
    uint16_t status;
    uint8_t auth_data_len;    /* length of the whole scramble incl. its NUL, or 0 */
    const uint8_t *reserved;  /* 10 bytes; MariaDB: 6 zero + 4 extended caps */
    uint32_t mariadb_caps;    /* MariaDB extended capabilities (0 when CLIENT_MYSQL is set) */
    const uint8_t *scramble2; /* auth-plugin-data-part-2 (with CLIENT_SECURE_CONNECTION) */
    size_t scramble2_len;
    const char *auth_plugin; /* with CLIENT_PLUGIN_AUTH, else NULL */
    size_t auth_plugin_len;
    bool auth_plugin_nul; /* the name was NUL-terminated (servers 5.5.7-5.5.9 omitted it) */
};

/*
 * Decodes a greeting payload (the packet's payload, no header). PROTO with a message when it is
 * not a protocol-10 greeting or is malformed (an ERR packet first byte 0xff is reported as PROTO
 * too: check dbt_my_is_err first to relay a server's refusal).
 */
dbt_res dbt_my_greeting_decode(const uint8_t *p, size_t n, struct dbt_my_greeting *g) DBT_WUR;

/* Encodes g as a whole packet (header, seq) with capabilities caps instead of g->caps. */
void dbt_my_greeting_encode(const struct dbt_my_greeting *g, uint32_t caps, uint8_t seq,
                            struct dbt_wr *w);

/* The capabilities the front shows the client: masked, with CLIENT_SSL set iff tls. */
uint32_t dbt_my_greeting_front_caps(uint32_t backend_caps, bool tls);

/* ---- HandshakeResponse41 and SSLRequest (client -> server, seq 1; 2 after TLS) ---- */

enum dbt_my_auth_enc {
    DBT_MY_AUTH_ENC_LENENC, /* CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA */
    DBT_MY_AUTH_ENC_1BYTE,  /* CLIENT_SECURE_CONNECTION */
    DBT_MY_AUTH_ENC_NUL,    /* neither: NUL-terminated */
};

struct dbt_my_response {
    uint32_t caps;
    uint32_t max_packet;
    uint8_t charset;
    const uint8_t *filler; /* 23 bytes; MariaDB: 19 zero + 4 extended caps */
    uint32_t mariadb_caps; /* when CLIENT_MYSQL is clear */
    const char *user;      /* not NUL-terminated in the struct's view: use user_len */
    size_t user_len;
    enum dbt_my_auth_enc auth_enc;
    const uint8_t *auth;
    size_t auth_len;
    bool has_db;
    const char *db;
    size_t db_len;
    bool has_plugin;
    const char *plugin;
    size_t plugin_len;
    bool has_attrs;
    const uint8_t *attrs; /* key/value pairs of lenenc strings, validated */
    size_t attrs_len;
    bool has_zstd_level;
    uint8_t zstd_level;
};

enum dbt_my_hs_kind {
    DBT_MY_HS_SSL_REQUEST, /* 32 bytes with CLIENT_SSL */
    DBT_MY_HS_RESPONSE,    /* a HandshakeResponse41 */
};

/*
 * Classifies the client's first packet payload: an SSLRequest (exactly 32 bytes, CLIENT_SSL set)
 * or a HandshakeResponse41 (longer, CLIENT_SSL clear). PROTO otherwise: shorter than 32 bytes,
 * 32 bytes without CLIENT_SSL, a response that asks for TLS while carrying credentials in
 * plaintext, or a pre-4.1 HandshakeResponse320 (no CLIENT_PROTOCOL_41), which the front refuses.
 */
dbt_res dbt_my_hs_classify(const uint8_t *p, size_t n, enum dbt_my_hs_kind *kind) DBT_WUR;

/* Decodes an SSLRequest payload: capabilities, max packet, charset and filler. */
dbt_res dbt_my_ssl_request_decode(const uint8_t *p, size_t n, struct dbt_my_response *r) DBT_WUR;

/*
 * Decodes a whole HandshakeResponse41 payload. Trailing optional parts (database, plugin name,
 * attributes) may be absent when the payload ends before them, as servers accept; anything left
 * after the last field is refused. PROTO with a message naming the field on malformed input.
 */
dbt_res dbt_my_response_decode(const uint8_t *p, size_t n, struct dbt_my_response *r) DBT_WUR;

/*
 * Encodes r as a whole packet with capabilities caps (fields that depend on a capability follow
 * caps, not r->caps: clearing CLIENT_ZSTD_COMPRESSION_ALGORITHM drops the level byte). The auth
 * response keeps r's encoding when caps allow it, else the one caps select.
 */
void dbt_my_response_encode(const struct dbt_my_response *r, uint32_t caps, uint8_t seq,
                            struct dbt_wr *w);

/* Encodes an SSLRequest (32-byte payload) with r's max packet, charset and filler, and caps. */
void dbt_my_ssl_request_encode(const struct dbt_my_response *r, uint32_t caps, uint8_t seq,
                               struct dbt_wr *w);

/*
 * Iterates connection attributes: *off starts at 0; returns true with key/value slices while
 * pairs remain. r->attrs was validated by dbt_my_response_decode.
 */
bool dbt_my_attrs_next(const struct dbt_my_response *r, size_t *off, const char **key,
                       size_t *key_len, const char **val, size_t *val_len);

/*
 * Connection attributes for the backend: pairs[0..n) first (a server keeps only the first
 * bytes of them: MariaDB's performance_schema 512 by default), then r's own except those whose
 * key starts with drop_prefix. Into out (appended); INVALID past 65535 bytes.
 */
dbt_res dbt_my_attrs_build(const struct dbt_my_response *r, const char *drop_prefix,
                           const char *const (*pairs)[2], size_t n, struct dbt_buf *out) DBT_WUR;

/*
 * Whether a response re-encoded with caps would carry attributes put into r: the fields before
 * them that caps announce (database, plugin name) are present.
 */
bool dbt_my_attrs_fit(const struct dbt_my_response *r, uint32_t caps);

/* ---- Authentication-phase packets (server -> client) ---- */

enum dbt_my_auth_kind {
    DBT_MY_AUTH_OK,        /* 0x00: authenticated */
    DBT_MY_AUTH_ERR,       /* 0xff: refused */
    DBT_MY_AUTH_SWITCH,    /* 0xfe: AuthSwitchRequest (or the old 1-byte switch) */
    DBT_MY_AUTH_MORE_DATA, /* 0x01: AuthMoreData */
    DBT_MY_AUTH_OTHER,     /* anything else: a protocol error during authentication */
};

enum dbt_my_auth_kind dbt_my_auth_classify(const uint8_t *p, size_t n);

/* True when the payload is an ERR packet (first byte 0xff and at least the code). */
bool dbt_my_is_err(const uint8_t *p, size_t n);
/* True when the payload is an OK packet (0x00 header and at least the 7-byte minimum). */
bool dbt_my_is_ok(const uint8_t *p, size_t n);

struct dbt_my_switch {
    const char *plugin; /* empty for the old 1-byte switch (mysql_old_password) */
    size_t plugin_len;
    const uint8_t *data; /* plugin data (includes its trailing NUL when the server sends one) */
    size_t data_len;
};

dbt_res dbt_my_switch_decode(const uint8_t *p, size_t n, struct dbt_my_switch *s) DBT_WUR;

/* AuthMoreData: 0x01 then data. caching_sha2_password sends 0x03 (fast auth ok) or 0x04 (full). */
dbt_res dbt_my_more_data_decode(const uint8_t *p, size_t n, const uint8_t **data,
                                size_t *len) DBT_WUR;
#define DBT_MY_SHA2_FAST_AUTH_OK 0x03
#define DBT_MY_SHA2_PERFORM_FULL_AUTH 0x04

/* ---- Command stream after authentication ---- */

/*
 * Follows the client's command stream in relay mode, without copying or buffering, to spot
 * COM_CHANGE_USER: MySQL re-checks an account's REQUIRE rules when a connection changes user, so
 * the front must too. A command is a packet with sequence id 0 that does not continue a
 * 0xffffff-byte packet (LOCAL INFILE data and auth-switch replies carry higher ids).
 * Zero-initialise; feed every byte the client sends after authentication, in order.
 */
struct dbt_my_cmd_scan {
    uint8_t hdr[4];
    uint8_t hdr_have; /* header bytes of the next packet seen so far */
    uint32_t left;    /* payload bytes of the current packet not yet seen */
    bool in_payload;
    bool is_cmd; /* the current packet starts a command */
    bool cont;   /* the current packet is 0xffffff bytes long: the next one continues it */
    size_t seen; /* payload bytes of the current packet seen so far */
};

#define DBT_MY_COM_CHANGE_USER 0x11

struct dbt_my_change_user {
    const char *user; /* points into the fed bytes */
    size_t user_len;
    bool complete; /* the user name's NUL was within the fed bytes */
};

/*
 * Scans p[*off..n) and returns true at the first byte of a COM_CHANGE_USER payload, with *off
 * just after what was examined (call again to continue); false when the rest was consumed
 * without one. The user name is complete only when it arrived in the same bytes.
 */
bool dbt_my_cmd_scan_next(struct dbt_my_cmd_scan *sc, const uint8_t *p, size_t n, size_t *off,
                          struct dbt_my_change_user *cu);

/* ---- ERR packets ---- */

struct dbt_my_err {
    uint16_t code;
    bool has_state;
    char state[6]; /* 5 chars + NUL when has_state */
    const char *msg;
    size_t msg_len;
};

/*
 * Decodes an ERR payload. With protocol41, a '#' after the code introduces the 5-char SQLSTATE
 * (servers answering before they know the client's capabilities omit it).
 */
dbt_res dbt_my_err_decode(const uint8_t *p, size_t n, bool protocol41,
                          struct dbt_my_err *e) DBT_WUR;

/*
 * Encodes an ERR packet: 0xff, code, then '#' + SQLSTATE when protocol41 (the client set
 * CLIENT_PROTOCOL_41), then the message (not NUL-terminated). state must be 5 characters.
 */
void dbt_my_err_encode(struct dbt_wr *w, uint8_t seq, bool protocol41, uint16_t code,
                       const char *state, const char *msg);

/* ER_SECURE_TRANSPORT_REQUIRED, as MySQL 5.7+ sends it (SQLSTATE HY000). */
#define DBT_MY_ER_SECURE_TRANSPORT_REQUIRED 3159
#define DBT_MY_ER_SECURE_TRANSPORT_REQUIRED_STATE "HY000"
#define DBT_MY_ER_SECURE_TRANSPORT_REQUIRED_MSG                                                    \
    "Connections using insecure transport are prohibited while --require_secure_transport=ON."
/* ER_ACCESS_DENIED_ERROR. */
#define DBT_MY_ER_ACCESS_DENIED 1045
#define DBT_MY_ER_ACCESS_DENIED_STATE "28000"
/* ER_HANDSHAKE_ERROR: "Bad handshake" (08S01), MySQL's answer to a malformed response. */
#define DBT_MY_ER_HANDSHAKE_ERROR 1043
#define DBT_MY_ER_HANDSHAKE_ERROR_STATE "08S01"
/* ER_NET_PACKETS_OUT_OF_ORDER (08S01). */
#define DBT_MY_ER_NET_PACKETS_OUT_OF_ORDER 1156
/* ER_NET_PACKET_TOO_LARGE (08S01). */
#define DBT_MY_ER_NET_PACKET_TOO_LARGE 1153
/*
 * The front's error when the backend cannot be reached or fails during the handshake. MySQL
 * Router sends 2003, but 2000-2999 are client error numbers and libmariadb rejects them from a
 * server as "Received malformed packet"; the front uses the server error
 * ER_CONNECT_TO_FOREIGN_DATA_SOURCE (1429, HY000) with its own text naming the backend.
 */
#define DBT_MY_ER_BACKEND_UNREACHABLE 1429
#define DBT_MY_STATE_GENERAL "HY000"
#define DBT_MY_STATE_COMM "08S01"

/* Encodes ERR 3159 as MySQL sends it. */
void dbt_my_err_secure_transport(struct dbt_wr *w, uint8_t seq, bool protocol41);

/*
 * Encodes ERR 1045 "Access denied for user 'USER'@'HOST' (using password: YES|NO)". user is not
 * NUL-terminated (user_len bytes from the wire); it is copied as MySQL does, bounded.
 */
void dbt_my_err_access_denied(struct dbt_wr *w, uint8_t seq, bool protocol41, const char *user,
                              size_t user_len, const char *host, bool using_password);

#endif
