/*
 * pg.h - the PostgreSQL wire format as the TLS front needs it: pure decoders and encoders, no
 * I/O, no globals. The daemon (src/front/pg_session.c) feeds buffered bytes in and gets either
 * "need more", a decoded message, or a rejection carrying PostgreSQL's own SQLSTATE and text.
 *
 * Client side: the first packet of a connection (SSLRequest, GSSENCRequest, CancelRequest,
 * StartupMessage, or a TLS ClientHello for direct TLS), decoded the way PostgreSQL's
 * ProcessStartupPacket does it (src/backend/tcop/backend_startup.c), plus the encoders the front
 * answers with (ErrorResponse, the 'S'/'N' byte, NegotiateProtocolVersion, StartupMessage).
 * Backend side: message framing, Authentication sub-codes, AuthenticationSASL rewriting (drop
 * SCRAM-SHA-256-PLUS: channel binding cannot cross a terminated TLS leg), BackendKeyData,
 * ErrorResponse and ParameterStatus.
 *
 * Protocol reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
 * All bytes are read through base/rd.h and written through base/wr.h.
 */
#ifndef DBT_PROTO_PG_H
#define DBT_PROTO_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/rd.h"

/* Protocol version numbers as sent on the wire: major << 16 | minor. */
#define DBT_PG_PROTO(major, minor) (((uint32_t)(major) << 16) | (uint32_t)(minor))
#define DBT_PG_PROTO_MAJOR(v) ((v) >> 16)
#define DBT_PG_PROTO_MINOR(v) ((v)&0xffff)
#define DBT_PG_PROTO_EARLIEST DBT_PG_PROTO(3, 0)
#define DBT_PG_PROTO_LATEST DBT_PG_PROTO(3, 2)

/* Special "protocol versions" of the first packet (pqcomm.h). */
#define DBT_PG_CANCEL_REQUEST_CODE DBT_PG_PROTO(1234, 5678) /* 80877102 */
#define DBT_PG_SSL_REQUEST_CODE DBT_PG_PROTO(1234, 5679)    /* 80877103 */
#define DBT_PG_GSSENC_REQUEST_CODE DBT_PG_PROTO(1234, 5680) /* 80877104 */

/*
 * PostgreSQL's MAX_STARTUP_PACKET_LENGTH applies to what FOLLOWS the length word
 * (ProcessStartupPacket subtracts the 4 bytes first), so a whole first packet may be up to
 * DBT_PG_MAX_STARTUP_PACKET_TOTAL = 10004 bytes: size buffers that hold one with the latter.
 */
#define DBT_PG_MAX_STARTUP_PACKET_LENGTH 10000
#define DBT_PG_MAX_STARTUP_PACKET_TOTAL (DBT_PG_MAX_STARTUP_PACKET_LENGTH + 4)
/* Cancel keys: 4 bytes in protocol 3.0, up to 256 bytes from 3.2 (MAX_CANCEL_KEY_LENGTH). */
#define DBT_PG_MAX_CANCEL_KEY_LENGTH 256
/* NAMEDATALEN: user and database names are truncated to NAMEDATALEN-1 bytes, as PostgreSQL does. */
#define DBT_PG_NAMEDATALEN 64
/* First byte of a TLS handshake record: direct TLS (PostgreSQL 17, sslnegotiation=direct). */
#define DBT_PG_TLS_HANDSHAKE_BYTE 0x16

/* SQLSTATEs the front uses (errcodes.txt). */
#define DBT_PG_SQLSTATE_PROTOCOL_VIOLATION "08P01"
#define DBT_PG_SQLSTATE_CONNECTION_FAILURE "08006"
#define DBT_PG_SQLSTATE_INVALID_AUTHORIZATION "28000"
#define DBT_PG_SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"
#define DBT_PG_SQLSTATE_INVALID_PARAMETER_VALUE "22023"
#define DBT_PG_SQLSTATE_ADMIN_SHUTDOWN "57P01"
#define DBT_PG_SQLSTATE_CANNOT_CONNECT_NOW "57P03"

/*
 * PostgreSQL's texts for the cases the session state machine detects itself (buffer state,
 * TLS), so every rejection of the front reads as PostgreSQL's.
 */
/* FATAL 08P01, detail DBT_PG_MSG_UNENCRYPTED_AFTER_SSL_DETAIL (CVE-2021-3935). */
#define DBT_PG_MSG_UNENCRYPTED_AFTER_SSL "received unencrypted data after SSL request"
#define DBT_PG_MSG_UNENCRYPTED_AFTER_SSL_DETAIL                                                    \
    "This could be either a client-software bug or evidence of an attempted man-in-the-middle "    \
    "attack."
#define DBT_PG_MSG_UNENCRYPTED_AFTER_GSS "received unencrypted data after GSSAPI encryption request"
/* Logged (COMMERROR), connection closed without a reply: EOF inside the first packet. */
#define DBT_PG_MSG_INCOMPLETE_STARTUP "incomplete startup packet"
/*
 * Direct TLS handshake completed without ALPN "postgresql": PostgreSQL 17+ logs this
 * (COMMERROR, 08P01) and closes the connection without a reply. A client that offers ALPN but
 * not "postgresql" gets a TLS no_application_protocol alert instead.
 */
#define DBT_PG_MSG_DIRECT_TLS_NO_ALPN                                                              \
    "received direct SSL connection request without ALPN protocol negotiation extension"
/* The ALPN protocol id of PostgreSQL (PostgreSQL 17 libpq sends it with sslnegotiation=direct). */
#define DBT_PG_ALPN "postgresql"

/* ---------------------------------------------------------------- client: first packet ---- */

enum dbt_pg_first_kind {
    DBT_PG_FIRST_NEED_MORE = 0,  /* buffer holds less than a whole packet; read more */
    DBT_PG_FIRST_SSL_REQUEST,    /* answer 'S' (then TLS) or 'N' */
    DBT_PG_FIRST_GSSENC_REQUEST, /* answer 'N' (no GSSAPI encryption) */
    DBT_PG_FIRST_CANCEL,         /* out->cancel is set; nothing is ever sent back */
    DBT_PG_FIRST_STARTUP,        /* out->startup is set */
    DBT_PG_FIRST_DIRECT_TLS,     /* first byte 0x16: a TLS ClientHello; nothing consumed */
    DBT_PG_FIRST_REJECT,         /* out->reject is set */
};

const char *dbt_pg_first_kind_name(enum dbt_pg_first_kind k);

/* Flags for dbt_pg_first_decode: which negotiations already happened on this connection. */
#define DBT_PG_FIRST_SSL_DONE 0x1u /* an SSLRequest was answered (either 'S' or 'N') */
#define DBT_PG_FIRST_GSS_DONE 0x2u /* a GSSENCRequest was answered */
#define DBT_PG_FIRST_IN_TLS                                                                        \
    0x4u /* the bytes came through TLS (direct or after 'S'):                                      \
            implies both flags above, as in PostgreSQL */

struct dbt_pg_cancel_key {
    uint32_t pid;
    uint8_t key[DBT_PG_MAX_CANCEL_KEY_LENGTH];
    size_t key_len; /* 1..256 in a CancelRequest; 4..256 in BackendKeyData */
};

enum dbt_pg_replication {
    DBT_PG_REPLICATION_NONE = 0, /* absent or false */
    DBT_PG_REPLICATION_PHYSICAL, /* replication=true */
    DBT_PG_REPLICATION_DATABASE, /* replication=database (logical) */
};

/*
 * A decoded StartupMessage. user, database and application_name are copies (truncated to
 * NAMEDATALEN-1 bytes as PostgreSQL does), so they outlive the packet buffer. options and the
 * params reader point INTO the packet buffer and are valid only while it is.
 */
struct dbt_pg_startup {
    uint32_t proto;                            /* as requested, e.g. DBT_PG_PROTO(3, 0) */
    char user[DBT_PG_NAMEDATALEN];             /* never empty after a successful decode */
    char database[DBT_PG_NAMEDATALEN];         /* defaults to user when absent or empty */
    char application_name[DBT_PG_NAMEDATALEN]; /* "" when absent */
    bool has_application_name;
    const char *options; /* NULL when absent; into the packet */
    enum dbt_pg_replication replication;
    size_t n_params;           /* name/value pairs, all of them */
    size_t n_protocol_options; /* names starting with "_pq_." */
    /*
     * True when PostgreSQL would answer NegotiateProtocolVersion: minor version above 3.2 or any
     * "_pq_." option (none are supported). The front then may send dbt_pg_negotiate_encode().
     */
    bool needs_negotiate;
    struct dbt_rd params; /* the name/value pairs, without the final terminator */
};

struct dbt_pg_param {
    const char *name;  /* NUL-terminated, into the packet */
    const char *value; /* NUL-terminated, into the packet */
};

/* Iterates the pairs of startup->params: copy the reader first. False at the end. */
bool dbt_pg_startup_param_next(struct dbt_rd *it, struct dbt_pg_param *out) DBT_WUR;

/*
 * A refusal of the first packet, as PostgreSQL gives it. send=false means PostgreSQL only logs
 * it (COMMERROR, e.g. "invalid length of startup packet") and closes without a reply;
 * send=true means it sends a FATAL ErrorResponse with this sqlstate and message.
 */
struct dbt_pg_reject {
    bool send;
    const char *sqlstate; /* static string, one of DBT_PG_SQLSTATE_* */
    char message[192];
    char hint[128]; /* "" when none */
};

struct dbt_pg_first {
    enum dbt_pg_first_kind kind;
    size_t consumed; /* bytes of the buffer this packet took (0 for NEED_MORE, DIRECT_TLS) */
    size_t need;     /* NEED_MORE: total bytes the packet needs when known (else 4), 0 otherwise */
    struct dbt_pg_cancel_key cancel;
    struct dbt_pg_startup startup;
    struct dbt_pg_reject reject;
    bool db_walsender_; /* private to the decoder: "replication=database" was seen */
};

/*
 * Classifies and decodes the first packet of a connection at the head of p[0..n), following
 * ProcessStartupPacket:
 *   - n == 0 or an incomplete packet: NEED_MORE (need = full length once the length word is in);
 *   - first byte 0x16 (unless DBT_PG_FIRST_IN_TLS): DIRECT_TLS, nothing consumed;
 *   - length word < 8 or > 10004 (more than 10000 bytes after it): REJECT, send=false,
 *     "invalid length of startup packet";
 *   - CancelRequest (1234.5678): CANCEL; key of 1..256 bytes else REJECT send=false
 *     ("invalid length of cancel key in cancel request packet");
 *   - SSLRequest / GSSENCRequest the first time (flags): SSL_REQUEST / GSSENC_REQUEST. A repeat
 *     is treated as PostgreSQL does: as a protocol version, hence REJECT 0A000 "unsupported
 *     frontend protocol 1234.5679: server supports 3.0 to 3.2";
 *   - major version other than 3: REJECT 0A000 with the same text;
 *   - StartupMessage 3.x: pairs parsed; last byte not the terminator: REJECT 08P01 "invalid
 *     startup packet layout: expected terminator as last byte"; no user: REJECT 28000 "no
 *     PostgreSQL user name specified in startup packet"; a bad replication value: REJECT 22023
 *     'invalid value for parameter "replication": "x"' with PostgreSQL's hint.
 * Returns DBT_OK for every kind but REJECT, for which it returns DBT_E_PROTO with
 * dbt_errmsg() = reject.message. Never reads outside p[0..n). out is fully overwritten.
 */
dbt_res dbt_pg_first_decode(const uint8_t *p, size_t n, unsigned flags, struct dbt_pg_first *out);

/* ---------------------------------------------------------------- client: encoders --------- */

/*
 * All encoders append one whole message to out (which may already hold bytes). They fail with
 * DBT_E_LIMIT/NOMEM when out's limit is hit, leaving out->len as it was before the call.
 */

/* The fields of an ErrorResponse / NoticeResponse the front sends. */
struct dbt_pg_error {
    const char *severity; /* "FATAL", "ERROR", ...: sent as both S and V */
    const char *sqlstate; /* 5 characters */
    const char *message;  /* M */
    const char *detail;   /* D, NULL = none */
    const char *hint;     /* H, NULL = none */
};

/* ErrorResponse ('E'). */
dbt_res dbt_pg_error_encode(struct dbt_buf *out, const struct dbt_pg_error *e) DBT_WUR;

/* Shortcut: FATAL ErrorResponse from a first-packet rejection (reject->send must be true). */
dbt_res dbt_pg_reject_encode(struct dbt_buf *out, const struct dbt_pg_reject *r) DBT_WUR;

/* The single byte answering SSLRequest / GSSENCRequest: 'S' or 'N' (anything else: INVALID). */
dbt_res dbt_pg_answer_encode(struct dbt_buf *out, char answer) DBT_WUR;

/*
 * NegotiateProtocolVersion ('v'): the newest version supported (full number, e.g.
 * DBT_PG_PROTO(3, 2), as PostgreSQL sends it) and the "_pq_." options of startup that are not
 * supported (all of them).
 */
dbt_res dbt_pg_negotiate_encode(struct dbt_buf *out, uint32_t newest,
                                const struct dbt_pg_startup *startup) DBT_WUR;

/*
 * StartupMessage with protocol proto and the given pairs (none may be NULL or have an empty
 * name). Fails with INVALID past DBT_PG_MAX_STARTUP_PACKET_TOTAL bytes.
 */
dbt_res dbt_pg_startup_encode(struct dbt_buf *out, uint32_t proto,
                              const struct dbt_pg_param *params, size_t n_params) DBT_WUR;

/* CancelRequest (to forward a client's cancel to the backend that owns the key). */
dbt_res dbt_pg_cancel_encode(struct dbt_buf *out, const struct dbt_pg_cancel_key *key) DBT_WUR;

/* ---------------------------------------------------------------- backend messages --------- */

/* Backend message types the front looks at. */
#define DBT_PG_MSG_AUTHENTICATION 'R'
#define DBT_PG_MSG_BACKEND_KEY_DATA 'K'
#define DBT_PG_MSG_ERROR_RESPONSE 'E'
#define DBT_PG_MSG_NOTICE_RESPONSE 'N'
#define DBT_PG_MSG_PARAMETER_STATUS 'S'
#define DBT_PG_MSG_READY_FOR_QUERY 'Z'
#define DBT_PG_MSG_NEGOTIATE_PROTOCOL 'v'

/*
 * A sane cap on one backend message before authentication completes (libpq's own limit for
 * messages other than data rows is 30000 bytes; ErrorResponse is allowed more).
 */
#define DBT_PG_PREAUTH_MSG_MAX 30000

/* One framed message: type byte + int32 length (counting itself) + body. */
struct dbt_pg_msg {
    uint8_t type;
    uint32_t len;        /* the length word: 4 + body_len */
    const uint8_t *body; /* into the caller's buffer */
    size_t body_len;
    size_t total; /* 1 + len: bytes the whole message occupies */
};

/*
 * Frames the message at the head of p[0..n).
 *   DBT_OK: *out describes it (out->total bytes to consume);
 *   DBT_E_AGAIN: incomplete; out->total is the full size when the header is in (else 5);
 *   DBT_E_PROTO: length word < 4 or body longer than max_len ("invalid message length").
 */
dbt_res dbt_pg_msg_frame(const uint8_t *p, size_t n, size_t max_len,
                         struct dbt_pg_msg *out) DBT_WUR;

/* Authentication request codes (the int32 after 'R'). */
enum dbt_pg_auth_code {
    DBT_PG_AUTH_OK = 0,
    DBT_PG_AUTH_KERBEROS_V5 = 2,
    DBT_PG_AUTH_CLEARTEXT = 3,
    DBT_PG_AUTH_MD5 = 5,
    DBT_PG_AUTH_GSS = 7,
    DBT_PG_AUTH_GSS_CONTINUE = 8,
    DBT_PG_AUTH_SSPI = 9,
    DBT_PG_AUTH_SASL = 10,
    DBT_PG_AUTH_SASL_CONTINUE = 11,
    DBT_PG_AUTH_SASL_FINAL = 12,
};

const char *dbt_pg_auth_code_name(uint32_t code);

struct dbt_pg_auth {
    uint32_t code;      /* enum dbt_pg_auth_code, or an unknown value (PROTO) */
    struct dbt_rd data; /* what follows the code (MD5 salt, SASL mechanisms or data) */
};

/*
 * Decodes an Authentication message (type 'R'). Checks the fixed sizes: OK/cleartext/GSS/SSPI
 * carry nothing, MD5 exactly a 4-byte salt, SASL a non-empty NUL-terminated mechanism list
 * ending in an empty string. Unknown codes and bad sizes: DBT_E_PROTO.
 */
dbt_res dbt_pg_auth_decode(const struct dbt_pg_msg *m, struct dbt_pg_auth *out) DBT_WUR;

/* The mechanism the front removes from AuthenticationSASL. */
#define DBT_PG_SCRAM_PLUS "SCRAM-SHA-256-PLUS"

/*
 * Re-encodes an AuthenticationSASL message (R, 10) into out without "SCRAM-SHA-256-PLUS",
 * keeping the other mechanisms in order. *n_left = mechanisms that remain; when it is 0 nothing
 * is appended and the caller fails the connection clearly (the backend offers only channel
 * binding, which cannot cross the front). m must be an 'R' message with code 10 (else PROTO).
 */
dbt_res dbt_pg_sasl_filter(const struct dbt_pg_msg *m, struct dbt_buf *out, size_t *n_left) DBT_WUR;

/* SASLInitialResponse: the client's first SASL message ('p' while authenticating). */
#define DBT_PG_MSG_SASL_INITIAL 'p'
struct dbt_pg_sasl_initial {
    const char *mechanism; /* points into the message, NUL-terminated */
    char gs2_flag; /* a SCRAM client-first-message's channel-binding flag: 'n', 'y', 'p'; else 0 */
};
/*
 * Decodes a SASLInitialResponse: mechanism name, int32 length of the data (-1: none), the data.
 * Wrong type, unterminated name, a length that does not match the rest: DBT_E_PROTO. The gs2
 * flag is the data's first byte when the data starts "n,", "y," or "p=" (RFC 5802 gs2 header).
 */
dbt_res dbt_pg_sasl_initial_decode(const struct dbt_pg_msg *m,
                                   struct dbt_pg_sasl_initial *out) DBT_WUR;

/* BackendKeyData ('K'): pid + key of 4..256 bytes (4 in protocol 3.0). */
dbt_res dbt_pg_backend_key_decode(const struct dbt_pg_msg *m,
                                  struct dbt_pg_cancel_key *out) DBT_WUR;

/*
 * An ErrorResponse or NoticeResponse ('E'/'N'), decoded for logging. Pointers go into the
 * message (NUL-terminated); absent fields are NULL. Unknown field types are skipped, as the
 * protocol requires. PROTO when the field list is not properly terminated.
 */
struct dbt_pg_error_fields {
    const char *severity;    /* S (localized) */
    const char *severity_nl; /* V (never localized), NULL from servers before 9.6 */
    const char *sqlstate;    /* C */
    const char *message;     /* M */
    const char *detail;      /* D */
    const char *hint;        /* H */
};
dbt_res dbt_pg_error_decode(const struct dbt_pg_msg *m, struct dbt_pg_error_fields *out) DBT_WUR;

/* ParameterStatus ('S'): name and value, into the message. */
dbt_res dbt_pg_param_status_decode(const struct dbt_pg_msg *m, struct dbt_pg_param *out) DBT_WUR;

#endif
