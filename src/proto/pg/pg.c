/*
 * pg.c - PostgreSQL wire decoders and encoders for the TLS front (see pg.h). The first-packet
 * decoder mirrors ProcessStartupPacket of PostgreSQL 18 (src/backend/tcop/backend_startup.c)
 * rule by rule, including the order in which its errors fire, so a client of the front sees
 * exactly what PostgreSQL would have said. Every byte is read through base/rd.h.
 */
#include "proto/pg/pg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/wr.h"

const char *dbt_pg_first_kind_name(enum dbt_pg_first_kind k)
{
    switch (k) {
    case DBT_PG_FIRST_NEED_MORE:
        return "need-more";
    case DBT_PG_FIRST_SSL_REQUEST:
        return "SSLRequest";
    case DBT_PG_FIRST_GSSENC_REQUEST:
        return "GSSENCRequest";
    case DBT_PG_FIRST_CANCEL:
        return "CancelRequest";
    case DBT_PG_FIRST_STARTUP:
        return "StartupMessage";
    case DBT_PG_FIRST_DIRECT_TLS:
        return "direct-TLS";
    case DBT_PG_FIRST_REJECT:
        return "reject";
    }
    return "?";
}

/* Equality of a NUL-terminated wire string with a literal. */
static bool str_is(const char *s, const char *lit)
{
    return strcmp(s, lit) == 0;
}

/*
 * Copies a wire string of n bytes into dst, truncated to dst_size-1 bytes as PostgreSQL truncates
 * names to NAMEDATALEN-1. When clean is set, bytes outside printable ASCII become '?'
 * (pg_clean_ascii, as PostgreSQL does for application_name).
 */
static void copy_name(char *dst, size_t dst_size, const char *src, size_t n, bool clean)
{
    size_t k = n < dst_size - 1 ? n : dst_size - 1;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (clean && (c < 32 || c > 126)) ? '?' : (char)c;
    }
    dst[k] = '\0';
}

static dbt_res reject(struct dbt_pg_first *out, bool send, const char *sqlstate, const char *hint,
                      const char *fmt, ...) DBT_PRINTF(5, 6);

static dbt_res reject(struct dbt_pg_first *out, bool send, const char *sqlstate, const char *hint,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reject.message, sizeof(out->reject.message), fmt, ap);
    va_end(ap);
    out->kind = DBT_PG_FIRST_REJECT;
    out->consumed = 0;
    out->reject.send = send;
    out->reject.sqlstate = sqlstate;
    snprintf(out->reject.hint, sizeof(out->reject.hint), "%s", hint ? hint : "");
    return dbt_fail(DBT_E_PROTO, "%s", out->reject.message);
}

/* Case-insensitive "s[0..n) is a prefix of word of at least min bytes" (parse_bool rules). */
static bool prefix_ci(const char *s, size_t n, const char *word, size_t min)
{
    size_t wl = strlen(word);
    if (n < min || n > wl) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != word[i]) {
            return false;
        }
    }
    return true;
}

/*
 * PostgreSQL's parse_bool_with_len: unambiguous prefixes of true/false/yes/no, "on", "off"
 * (at least two letters), 1 and 0, case-insensitive.
 */
static bool parse_bool(const char *s, size_t n, bool *v)
{
    if (n == 0) {
        return false;
    }
    switch (s[0]) {
    case 't':
    case 'T':
        if (prefix_ci(s, n, "true", 1)) {
            *v = true;
            return true;
        }
        break;
    case 'f':
    case 'F':
        if (prefix_ci(s, n, "false", 1)) {
            *v = false;
            return true;
        }
        break;
    case 'y':
    case 'Y':
        if (prefix_ci(s, n, "yes", 1)) {
            *v = true;
            return true;
        }
        break;
    case 'n':
    case 'N':
        if (prefix_ci(s, n, "no", 1)) {
            *v = false;
            return true;
        }
        break;
    case 'o':
    case 'O':
        if (prefix_ci(s, n, "on", 2)) {
            *v = true;
            return true;
        }
        if (prefix_ci(s, n, "off", 2)) {
            *v = false;
            return true;
        }
        break;
    case '1':
        if (n == 1) {
            *v = true;
            return true;
        }
        break;
    case '0':
        if (n == 1) {
            *v = false;
            return true;
        }
        break;
    default:
        break;
    }
    return false;
}

/*
 * The "replication" startup parameter: a boolean or "database". PostgreSQL keeps two flags,
 * am_walsender (set by every value) and am_db_walsender (set by "database", never cleared), so
 * a later boolean turns a logical walsender off or back on but never into a physical one.
 */
static dbt_res startup_replication(struct dbt_pg_first *out, const char *v, size_t n)
{
    bool walsender = false;
    if (n == 8 && strncmp(v, "database", 8) == 0) {
        out->startup.replication = DBT_PG_REPLICATION_DATABASE;
        out->db_walsender_ = true;
        return DBT_OK;
    }
    if (!parse_bool(v, n, &walsender)) {
        return reject(out, true, DBT_PG_SQLSTATE_INVALID_PARAMETER_VALUE,
                      "Valid values are: \"false\", 0, \"true\", 1, \"database\".",
                      "invalid value for parameter \"%s\": \"%.*s\"", "replication",
                      (int)(n > 64 ? 64 : n), v);
    }
    if (!walsender) {
        out->startup.replication = DBT_PG_REPLICATION_NONE;
    } else {
        out->startup.replication =
            out->db_walsender_ ? DBT_PG_REPLICATION_DATABASE : DBT_PG_REPLICATION_PHYSICAL;
    }
    return DBT_OK;
}

static dbt_res layout_error(struct dbt_pg_first *out)
{
    return reject(out, true, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION, NULL,
                  "invalid startup packet layout: expected terminator as last byte");
}

/* The name/value pairs of a protocol-3 StartupMessage, after the version word. */
static dbt_res startup_decode(struct dbt_rd *body, struct dbt_pg_first *out)
{
    struct dbt_pg_startup *st = &out->startup;
    struct dbt_rd all = *body;
    bool have_user = false, have_db = false;
    size_t start = body->off;

    for (;;) {
        uint8_t c;
        if (!dbt_rd_peek_u8(body, &c)) {
            /* Ran out without a terminator. */
            return layout_error(out);
        }
        if (c == 0) {
            break; /* the packet terminator */
        }
        const char *name, *value;
        size_t nlen, vlen;
        if (!dbt_rd_cstr(body, &name, &nlen) || dbt_rd_left(body) == 0) {
            /* A name without a value: "missing value, will complain below". */
            return layout_error(out);
        }
        if (!dbt_rd_cstr(body, &value, &vlen)) {
            /*
             * PostgreSQL still acts on a last value that runs to the end of the packet (its
             * buffer has an extra NUL) before it complains about the layout.
             */
            if (str_is(name, "replication")) {
                vlen = dbt_rd_left(body);
                const uint8_t *vp = NULL;
                if (dbt_rd_bytes(body, vlen, &vp)) {
                    dbt_res r = startup_replication(out, (const char *)vp, vlen);
                    if (!dbt_ok(r)) {
                        return r;
                    }
                }
            }
            return layout_error(out);
        }
        st->n_params++;
        if (str_is(name, "database")) {
            copy_name(st->database, sizeof(st->database), value, vlen, false);
            have_db = vlen > 0;
        } else if (str_is(name, "user")) {
            copy_name(st->user, sizeof(st->user), value, vlen, false);
            have_user = vlen > 0;
        } else if (str_is(name, "options")) {
            st->options = value;
        } else if (str_is(name, "replication")) {
            dbt_res r = startup_replication(out, value, vlen);
            if (!dbt_ok(r)) {
                return r;
            }
        } else if (strncmp(name, "_pq_.", 5) == 0) {
            st->n_protocol_options++;
        } else if (str_is(name, "application_name")) {
            copy_name(st->application_name, sizeof(st->application_name), value, vlen, true);
            st->has_application_name = true;
        }
    }
    /* "If we didn't find a packet terminator exactly at the end of the given packet length". */
    if (dbt_rd_left(body) != 1) {
        return layout_error(out);
    }
    size_t params_len = body->off - start;
    if (!dbt_rd_sub(&all, params_len, &st->params)) {
        return dbt_fail(DBT_E_INTERNAL, "startup parameter slice out of bounds");
    }
    st->needs_negotiate = DBT_PG_PROTO_MINOR(st->proto) > DBT_PG_PROTO_MINOR(DBT_PG_PROTO_LATEST) ||
                          st->n_protocol_options > 0;

    if (!have_user) {
        return reject(out, true, DBT_PG_SQLSTATE_INVALID_AUTHORIZATION, NULL,
                      "no PostgreSQL user name specified in startup packet");
    }
    if (!have_db) {
        copy_name(st->database, sizeof(st->database), st->user, strlen(st->user), false);
    }
    /* A physical walsender is not connected to a database (ProcessStartupPacket). */
    if (st->replication == DBT_PG_REPLICATION_PHYSICAL) {
        st->database[0] = '\0';
    }
    return DBT_OK;
}

dbt_res dbt_pg_first_decode(const uint8_t *p, size_t n, unsigned flags, struct dbt_pg_first *out)
{
    memset(out, 0, sizeof(*out));
    struct dbt_rd rd = dbt_rd_make(p, n);
    uint8_t b0;
    uint32_t len;

    if (!dbt_rd_peek_u8(&rd, &b0)) {
        out->kind = DBT_PG_FIRST_NEED_MORE;
        out->need = 4;
        return DBT_OK;
    }
    /*
     * ProcessSSLStartup: a first byte of 0x16 starts a TLS handshake record. It cannot be a
     * startup length (that would be hundreds of megabytes). Only the very first packet of a
     * connection may be direct TLS.
     */
    if (b0 == DBT_PG_TLS_HANDSHAKE_BYTE && flags == 0) {
        out->kind = DBT_PG_FIRST_DIRECT_TLS;
        return DBT_OK;
    }
    if (!dbt_rd_peek_be32(&rd, 0, &len)) {
        out->kind = DBT_PG_FIRST_NEED_MORE;
        out->need = 4;
        return DBT_OK;
    }
    /* The length word counts itself; the rest must hold a version and fit the limit. */
    if (len < 8 || len - 4 > DBT_PG_MAX_STARTUP_PACKET_LENGTH) {
        return reject(out, false, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION, NULL,
                      "invalid length of startup packet");
    }
    if (n < len) {
        out->kind = DBT_PG_FIRST_NEED_MORE;
        out->need = len;
        return DBT_OK;
    }
    struct dbt_rd body;
    uint32_t proto;
    if (!dbt_rd_skip(&rd, 4) || !dbt_rd_sub(&rd, len - 4, &body) || !dbt_rd_be32(&body, &proto)) {
        return dbt_fail(DBT_E_INTERNAL, "startup packet framing out of bounds");
    }

    if (proto == DBT_PG_CANCEL_REQUEST_CODE) {
        /* ProcessCancelRequestPacket: pid, then a key of 1..256 bytes; never answered. */
        size_t key_len = dbt_rd_left(&body) >= 4 ? dbt_rd_left(&body) - 4 : 0;
        if (key_len == 0 || key_len > DBT_PG_MAX_CANCEL_KEY_LENGTH) {
            return reject(out, false, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION, NULL,
                          "invalid length of cancel key in cancel request packet");
        }
        const uint8_t *key = NULL;
        if (!dbt_rd_be32(&body, &out->cancel.pid) || !dbt_rd_bytes(&body, key_len, &key)) {
            return dbt_fail(DBT_E_INTERNAL, "cancel packet out of bounds");
        }
        for (size_t i = 0; i < key_len; i++) {
            out->cancel.key[i] = key[i];
        }
        out->cancel.key_len = key_len;
        out->kind = DBT_PG_FIRST_CANCEL;
        out->consumed = len;
        return DBT_OK;
    }
    /*
     * SSLRequest and GSSENCRequest are special codes only the first time; a repeat falls
     * through to the version check, as in PostgreSQL, and is refused there. "A successful
     * negotiation of either encryption layer sets both flags": inside TLS neither is special.
     */
    if (flags & DBT_PG_FIRST_IN_TLS) {
        flags |= DBT_PG_FIRST_SSL_DONE | DBT_PG_FIRST_GSS_DONE;
    }
    if (proto == DBT_PG_SSL_REQUEST_CODE && !(flags & DBT_PG_FIRST_SSL_DONE)) {
        out->kind = DBT_PG_FIRST_SSL_REQUEST;
        out->consumed = len;
        return DBT_OK;
    }
    if (proto == DBT_PG_GSSENC_REQUEST_CODE && !(flags & DBT_PG_FIRST_GSS_DONE)) {
        out->kind = DBT_PG_FIRST_GSSENC_REQUEST;
        out->consumed = len;
        return DBT_OK;
    }
    if (DBT_PG_PROTO_MAJOR(proto) != DBT_PG_PROTO_MAJOR(DBT_PG_PROTO_LATEST)) {
        return reject(out, true, DBT_PG_SQLSTATE_FEATURE_NOT_SUPPORTED, NULL,
                      "unsupported frontend protocol %u.%u: server supports %u.0 to %u.%u",
                      (unsigned)DBT_PG_PROTO_MAJOR(proto), (unsigned)DBT_PG_PROTO_MINOR(proto),
                      (unsigned)DBT_PG_PROTO_MAJOR(DBT_PG_PROTO_EARLIEST),
                      (unsigned)DBT_PG_PROTO_MAJOR(DBT_PG_PROTO_LATEST),
                      (unsigned)DBT_PG_PROTO_MINOR(DBT_PG_PROTO_LATEST));
    }
    out->startup.proto = proto;
    dbt_res r = startup_decode(&body, out);
    if (!dbt_ok(r)) {
        return r;
    }
    out->kind = DBT_PG_FIRST_STARTUP;
    out->consumed = len;
    return DBT_OK;
}

bool dbt_pg_startup_param_next(struct dbt_rd *it, struct dbt_pg_param *out)
{
    size_t nl, vl;
    struct dbt_rd save = *it;
    if (!dbt_rd_cstr(it, &out->name, &nl) || !dbt_rd_cstr(it, &out->value, &vl)) {
        *it = save;
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- encoders ----------------- */

/* Ends an encoding: on failure the buffer is rolled back to where the message started. */
static dbt_res wr_end(struct dbt_wr *w, size_t start)
{
    dbt_res r = dbt_wr_finish(w);
    if (!dbt_ok(r)) {
        w->buf->len = start;
    }
    return r;
}

dbt_res dbt_pg_error_encode(struct dbt_buf *out, const struct dbt_pg_error *e)
{
    if (e->severity == NULL || e->sqlstate == NULL || strlen(e->sqlstate) != 5 ||
        e->message == NULL) {
        return dbt_fail(DBT_E_INVALID, "ErrorResponse needs a severity, a 5-character SQLSTATE "
                                       "and a message");
    }
    size_t start = out->len;
    struct dbt_wr w = dbt_wr_make(out);
    dbt_wr_u8(&w, 'E');
    size_t lenpos = dbt_wr_reserve(&w, 4);
    dbt_wr_u8(&w, 'S');
    dbt_wr_cstr(&w, e->severity);
    dbt_wr_u8(&w, 'V');
    dbt_wr_cstr(&w, e->severity);
    dbt_wr_u8(&w, 'C');
    dbt_wr_cstr(&w, e->sqlstate);
    dbt_wr_u8(&w, 'M');
    dbt_wr_cstr(&w, e->message);
    if (e->detail) {
        dbt_wr_u8(&w, 'D');
        dbt_wr_cstr(&w, e->detail);
    }
    if (e->hint) {
        dbt_wr_u8(&w, 'H');
        dbt_wr_cstr(&w, e->hint);
    }
    dbt_wr_u8(&w, 0);
    dbt_wr_patch_be32(&w, lenpos, (uint32_t)(dbt_wr_pos(&w) - lenpos));
    return wr_end(&w, start);
}

dbt_res dbt_pg_reject_encode(struct dbt_buf *out, const struct dbt_pg_reject *r)
{
    if (!r->send || r->sqlstate == NULL) {
        return dbt_fail(DBT_E_INVALID, "this rejection is not sent to the client");
    }
    struct dbt_pg_error e = {
        .severity = "FATAL",
        .sqlstate = r->sqlstate,
        .message = r->message,
        .hint = r->hint[0] ? r->hint : NULL,
    };
    return dbt_pg_error_encode(out, &e);
}

dbt_res dbt_pg_answer_encode(struct dbt_buf *out, char answer)
{
    if (answer != 'S' && answer != 'N') {
        return dbt_fail(DBT_E_INVALID, "an SSL/GSS negotiation answer is 'S' or 'N', not 0x%02x",
                        (unsigned char)answer);
    }
    return dbt_buf_append(out, &answer, 1);
}

dbt_res dbt_pg_negotiate_encode(struct dbt_buf *out, uint32_t newest,
                                const struct dbt_pg_startup *startup)
{
    size_t start = out->len;
    struct dbt_wr w = dbt_wr_make(out);
    struct dbt_rd it = startup->params;
    struct dbt_pg_param prm;
    uint32_t count = 0;

    dbt_wr_u8(&w, DBT_PG_MSG_NEGOTIATE_PROTOCOL);
    size_t lenpos = dbt_wr_reserve(&w, 4);
    dbt_wr_be32(&w, newest);
    size_t countpos = dbt_wr_reserve(&w, 4);
    while (dbt_pg_startup_param_next(&it, &prm)) {
        if (strncmp(prm.name, "_pq_.", 5) == 0) {
            dbt_wr_cstr(&w, prm.name);
            count++;
        }
    }
    dbt_wr_patch_be32(&w, countpos, count);
    dbt_wr_patch_be32(&w, lenpos, (uint32_t)(dbt_wr_pos(&w) - lenpos));
    return wr_end(&w, start);
}

dbt_res dbt_pg_startup_encode(struct dbt_buf *out, uint32_t proto,
                              const struct dbt_pg_param *params, size_t n_params)
{
    size_t start = out->len;
    struct dbt_wr w = dbt_wr_make(out);
    for (size_t i = 0; i < n_params; i++) {
        if (params[i].name == NULL || params[i].name[0] == '\0' || params[i].value == NULL) {
            return dbt_fail(DBT_E_INVALID, "startup parameter %zu has no name or no value", i);
        }
    }
    size_t lenpos = dbt_wr_reserve(&w, 4);
    dbt_wr_be32(&w, proto);
    for (size_t i = 0; i < n_params; i++) {
        dbt_wr_cstr(&w, params[i].name);
        dbt_wr_cstr(&w, params[i].value);
    }
    dbt_wr_u8(&w, 0);
    size_t len = dbt_wr_pos(&w) - lenpos;
    dbt_wr_patch_be32(&w, lenpos, (uint32_t)len);
    dbt_res r = wr_end(&w, start);
    if (dbt_ok(r) && len - 4 > DBT_PG_MAX_STARTUP_PACKET_LENGTH) {
        out->len = start;
        return dbt_fail(DBT_E_INVALID, "startup packet of %zu bytes exceeds the limit of %d", len,
                        DBT_PG_MAX_STARTUP_PACKET_LENGTH);
    }
    return r;
}

dbt_res dbt_pg_cancel_encode(struct dbt_buf *out, const struct dbt_pg_cancel_key *key)
{
    if (key->key_len == 0 || key->key_len > DBT_PG_MAX_CANCEL_KEY_LENGTH) {
        return dbt_fail(DBT_E_INVALID, "cancel key length %zu is not within 1..%d", key->key_len,
                        DBT_PG_MAX_CANCEL_KEY_LENGTH);
    }
    size_t start = out->len;
    struct dbt_wr w = dbt_wr_make(out);
    dbt_wr_be32(&w, (uint32_t)(12 + key->key_len));
    dbt_wr_be32(&w, DBT_PG_CANCEL_REQUEST_CODE);
    dbt_wr_be32(&w, key->pid);
    dbt_wr_bytes(&w, key->key, key->key_len);
    return wr_end(&w, start);
}

/* ---------------------------------------------------------------- backend messages --------- */

dbt_res dbt_pg_msg_frame(const uint8_t *p, size_t n, size_t max_len, struct dbt_pg_msg *out)
{
    memset(out, 0, sizeof(*out));
    struct dbt_rd rd = dbt_rd_make(p, n);
    uint8_t type;
    uint32_t len;
    if (!dbt_rd_u8(&rd, &type) || !dbt_rd_be32(&rd, &len)) {
        out->total = 5;
        return (dbt_res){DBT_E_AGAIN};
    }
    if (len < 4) {
        return dbt_fail(DBT_E_PROTO, "invalid length %u of backend message type 0x%02x", len, type);
    }
    if (len - 4 > max_len) {
        return dbt_fail(DBT_E_PROTO,
                        "backend message type 0x%02x of %u bytes exceeds the limit of %zu bytes",
                        type, len - 4, max_len);
    }
    out->type = type;
    out->len = len;
    out->body_len = len - 4;
    out->total = (size_t)len + 1;
    const uint8_t *body = NULL;
    if (!dbt_rd_bytes(&rd, out->body_len, &body)) {
        return (dbt_res){DBT_E_AGAIN};
    }
    out->body = body;
    return DBT_OK;
}

const char *dbt_pg_auth_code_name(uint32_t code)
{
    switch (code) {
    case DBT_PG_AUTH_OK:
        return "AuthenticationOk";
    case DBT_PG_AUTH_KERBEROS_V5:
        return "AuthenticationKerberosV5";
    case DBT_PG_AUTH_CLEARTEXT:
        return "AuthenticationCleartextPassword";
    case DBT_PG_AUTH_MD5:
        return "AuthenticationMD5Password";
    case DBT_PG_AUTH_GSS:
        return "AuthenticationGSS";
    case DBT_PG_AUTH_GSS_CONTINUE:
        return "AuthenticationGSSContinue";
    case DBT_PG_AUTH_SSPI:
        return "AuthenticationSSPI";
    case DBT_PG_AUTH_SASL:
        return "AuthenticationSASL";
    case DBT_PG_AUTH_SASL_CONTINUE:
        return "AuthenticationSASLContinue";
    case DBT_PG_AUTH_SASL_FINAL:
        return "AuthenticationSASLFinal";
    default:
        return "unknown";
    }
}

/* Walks a SASL mechanism list (names, then an empty string, then the end). */
static dbt_res sasl_list_check(struct dbt_rd rd, size_t *count)
{
    *count = 0;
    for (;;) {
        const char *name;
        size_t nl;
        if (!dbt_rd_cstr(&rd, &name, &nl)) {
            return dbt_fail(DBT_E_PROTO, "AuthenticationSASL mechanism list is not terminated");
        }
        if (nl == 0) {
            break;
        }
        (*count)++;
    }
    if (!dbt_rd_expect_end(&rd)) {
        return dbt_fail(DBT_E_PROTO, "AuthenticationSASL has %zu bytes after its mechanism list",
                        dbt_rd_left(&rd));
    }
    if (*count == 0) {
        return dbt_fail(DBT_E_PROTO, "AuthenticationSASL offers no mechanism");
    }
    return DBT_OK;
}

dbt_res dbt_pg_auth_decode(const struct dbt_pg_msg *m, struct dbt_pg_auth *out)
{
    memset(out, 0, sizeof(*out));
    if (m->type != DBT_PG_MSG_AUTHENTICATION) {
        return dbt_fail(DBT_E_PROTO, "expected an Authentication message, got type 0x%02x",
                        m->type);
    }
    struct dbt_rd rd = dbt_rd_make(m->body, m->body_len);
    if (!dbt_rd_be32(&rd, &out->code)) {
        return dbt_fail(DBT_E_PROTO, "Authentication message of %zu bytes has no request code",
                        m->body_len);
    }
    out->data = dbt_rd_make(dbt_rd_cur(&rd), dbt_rd_left(&rd));
    size_t left = dbt_rd_left(&rd);
    size_t count;
    switch (out->code) {
    case DBT_PG_AUTH_OK:
    case DBT_PG_AUTH_KERBEROS_V5:
    case DBT_PG_AUTH_CLEARTEXT:
    case DBT_PG_AUTH_GSS:
    case DBT_PG_AUTH_SSPI:
        if (left != 0) {
            return dbt_fail(DBT_E_PROTO, "%s carries %zu unexpected bytes",
                            dbt_pg_auth_code_name(out->code), left);
        }
        return DBT_OK;
    case DBT_PG_AUTH_MD5:
        if (left != 4) {
            return dbt_fail(DBT_E_PROTO, "AuthenticationMD5Password salt is %zu bytes, not 4",
                            left);
        }
        return DBT_OK;
    case DBT_PG_AUTH_SASL:
        return sasl_list_check(out->data, &count);
    case DBT_PG_AUTH_GSS_CONTINUE:
    case DBT_PG_AUTH_SASL_CONTINUE:
    case DBT_PG_AUTH_SASL_FINAL:
        return DBT_OK;
    default:
        return dbt_fail(DBT_E_PROTO, "unsupported authentication request code %u", out->code);
    }
}

dbt_res dbt_pg_sasl_filter(const struct dbt_pg_msg *m, struct dbt_buf *out, size_t *n_left)
{
    struct dbt_pg_auth auth;
    *n_left = 0;
    dbt_res r = dbt_pg_auth_decode(m, &auth);
    if (!dbt_ok(r)) {
        return r;
    }
    if (auth.code != DBT_PG_AUTH_SASL) {
        return dbt_fail(DBT_E_PROTO, "expected AuthenticationSASL, got %s",
                        dbt_pg_auth_code_name(auth.code));
    }
    /* Count first, so nothing is appended when no mechanism remains. */
    struct dbt_rd rd = auth.data;
    const char *name;
    size_t nl, keep = 0;
    while (dbt_rd_cstr(&rd, &name, &nl) && nl > 0) {
        if (!str_is(name, DBT_PG_SCRAM_PLUS)) {
            keep++;
        }
    }
    *n_left = keep;
    if (keep == 0) {
        return DBT_OK;
    }
    size_t start = out->len;
    struct dbt_wr w = dbt_wr_make(out);
    dbt_wr_u8(&w, DBT_PG_MSG_AUTHENTICATION);
    size_t lenpos = dbt_wr_reserve(&w, 4);
    dbt_wr_be32(&w, DBT_PG_AUTH_SASL);
    rd = auth.data;
    while (dbt_rd_cstr(&rd, &name, &nl) && nl > 0) {
        if (!str_is(name, DBT_PG_SCRAM_PLUS)) {
            dbt_wr_cstr(&w, name);
        }
    }
    dbt_wr_u8(&w, 0);
    dbt_wr_patch_be32(&w, lenpos, (uint32_t)(dbt_wr_pos(&w) - lenpos));
    return wr_end(&w, start);
}

dbt_res dbt_pg_sasl_initial_decode(const struct dbt_pg_msg *m, struct dbt_pg_sasl_initial *out)
{
    memset(out, 0, sizeof(*out));
    if (m->type != DBT_PG_MSG_SASL_INITIAL) {
        return dbt_fail(DBT_E_PROTO, "expected SASLInitialResponse, got type 0x%02x", m->type);
    }
    struct dbt_rd rd = dbt_rd_make(m->body, m->body_len);
    size_t nl;
    uint32_t len;
    if (!dbt_rd_cstr(&rd, &out->mechanism, &nl) || !dbt_rd_be32(&rd, &len)) {
        return dbt_fail(DBT_E_PROTO, "SASLInitialResponse of %zu bytes is truncated", m->body_len);
    }
    size_t left = dbt_rd_left(&rd);
    if (len == UINT32_MAX ? left != 0 : len != left) {
        return dbt_fail(DBT_E_PROTO,
                        "SASLInitialResponse data length %d does not match its %zu "
                        "bytes",
                        (int32_t)len, left);
    }
    const uint8_t *d = dbt_rd_cur(&rd);
    if (left >= 2 &&
        (((d[0] == 'n' || d[0] == 'y') && d[1] == ',') || (d[0] == 'p' && d[1] == '='))) {
        out->gs2_flag = (char)d[0];
    }
    return DBT_OK;
}

dbt_res dbt_pg_backend_key_decode(const struct dbt_pg_msg *m, struct dbt_pg_cancel_key *out)
{
    memset(out, 0, sizeof(*out));
    if (m->type != DBT_PG_MSG_BACKEND_KEY_DATA) {
        return dbt_fail(DBT_E_PROTO, "expected BackendKeyData, got type 0x%02x", m->type);
    }
    struct dbt_rd rd = dbt_rd_make(m->body, m->body_len);
    if (!dbt_rd_be32(&rd, &out->pid)) {
        return dbt_fail(DBT_E_PROTO, "BackendKeyData of %zu bytes has no process id", m->body_len);
    }
    size_t kl = dbt_rd_left(&rd);
    /* Protocol 3.2: "The cancel key ... length is at most 256 bytes"; 3.0 sends exactly 4. */
    if (kl < 4 || kl > DBT_PG_MAX_CANCEL_KEY_LENGTH) {
        return dbt_fail(DBT_E_PROTO, "BackendKeyData cancel key is %zu bytes, not 4..%d", kl,
                        DBT_PG_MAX_CANCEL_KEY_LENGTH);
    }
    const uint8_t *key = NULL;
    if (!dbt_rd_bytes(&rd, kl, &key)) {
        return dbt_fail(DBT_E_INTERNAL, "BackendKeyData out of bounds");
    }
    for (size_t i = 0; i < kl; i++) {
        out->key[i] = key[i];
    }
    out->key_len = kl;
    return DBT_OK;
}

dbt_res dbt_pg_error_decode(const struct dbt_pg_msg *m, struct dbt_pg_error_fields *out)
{
    memset(out, 0, sizeof(*out));
    if (m->type != DBT_PG_MSG_ERROR_RESPONSE && m->type != DBT_PG_MSG_NOTICE_RESPONSE) {
        return dbt_fail(DBT_E_PROTO, "expected ErrorResponse or NoticeResponse, got type 0x%02x",
                        m->type);
    }
    struct dbt_rd rd = dbt_rd_make(m->body, m->body_len);
    for (;;) {
        uint8_t ft;
        const char *v;
        size_t vl;
        if (!dbt_rd_u8(&rd, &ft)) {
            return dbt_fail(DBT_E_PROTO, "ErrorResponse field list is not terminated");
        }
        if (ft == 0) {
            break;
        }
        if (!dbt_rd_cstr(&rd, &v, &vl)) {
            return dbt_fail(DBT_E_PROTO, "ErrorResponse field '%c' is not terminated",
                            ft >= 32 && ft < 127 ? ft : '?');
        }
        switch (ft) {
        case 'S':
            out->severity = v;
            break;
        case 'V':
            out->severity_nl = v;
            break;
        case 'C':
            out->sqlstate = v;
            break;
        case 'M':
            out->message = v;
            break;
        case 'D':
            out->detail = v;
            break;
        case 'H':
            out->hint = v;
            break;
        default:
            break; /* "frontends should silently ignore fields of unrecognized type" */
        }
    }
    if (!dbt_rd_expect_end(&rd)) {
        return dbt_fail(DBT_E_PROTO, "ErrorResponse has %zu bytes after its terminator",
                        dbt_rd_left(&rd));
    }
    return DBT_OK;
}

dbt_res dbt_pg_param_status_decode(const struct dbt_pg_msg *m, struct dbt_pg_param *out)
{
    size_t nl, vl;
    memset(out, 0, sizeof(*out));
    if (m->type != DBT_PG_MSG_PARAMETER_STATUS) {
        return dbt_fail(DBT_E_PROTO, "expected ParameterStatus, got type 0x%02x", m->type);
    }
    struct dbt_rd rd = dbt_rd_make(m->body, m->body_len);
    if (!dbt_rd_cstr(&rd, &out->name, &nl) || !dbt_rd_cstr(&rd, &out->value, &vl)) {
        memset(out, 0, sizeof(*out));
        return dbt_fail(DBT_E_PROTO, "ParameterStatus name or value is not terminated");
    }
    if (!dbt_rd_expect_end(&rd)) {
        memset(out, 0, sizeof(*out));
        return dbt_fail(DBT_E_PROTO, "ParameterStatus has %zu trailing bytes", dbt_rd_left(&rd));
    }
    return DBT_OK;
}
