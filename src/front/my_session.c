/*
 * my_session.c - the MySQL / MariaDB state machine of the TLS front, on the session layer
 * (session.h); the wire messages are src/proto/my. The flow (docs/mysql.md):
 *
 *   accept -> connect the backend -> read its HandshakeV10 greeting -> relay it with CLIENT_SSL
 *   set when the instance has TLS (cleared otherwise) and compression masked; the scramble stays
 *   the backend's so password authentication passes through.
 *   Client SSLRequest (seq 1, 32 bytes) -> consumed, TLS on the client leg; HandshakeResponse41
 *   (seq 2 over TLS, seq 1 in clear) -> policy: ssl mode (ERR 3159 for clear text when TLS is
 *   required), client certificate (TRUSTED_CLIENT_CERTIFICATE_REQUIRED), per-user REQUIRE rules
 *   (ERR 1045 as MySQL) -> forwarded with CLIENT_SSL cleared and seq renumbered to 1 when the
 *   backend leg is plain, or after the front's own SSLRequest + TLS on the backend leg with seq 2.
 *   The authentication exchange (AuthSwitchRequest, AuthMoreData, client replies) is relayed packet
 *   by packet with the sequence offset applied until OK or ERR; then bytes are relayed both ways
 *   by the session layer without per-packet work.
 *
 * Every state before the relay runs under the pre-authentication deadline (--auth-timeout),
 * counted from the accept, like MySQL's connect_timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/wr.h"
#include "front/front.h"
#include "front/my_session.h"
#include "front/session.h"
#include "proto/my/my.h"
#include "proto/my/myreq.h"
#include "proto/my/mysha2.h"

enum my_state {
    MY_CONNECTING,   /* backend connect in progress */
    MY_GREETING,     /* waiting for the backend's greeting */
    MY_HANDSHAKE,    /* greeting relayed; waiting for SSLRequest or a plaintext response */
    MY_CLIENT_TLS,   /* TLS handshake with the client */
    MY_RESPONSE_TLS, /* waiting for the HandshakeResponse over TLS */
    MY_BACKEND_TLS,  /* the front's SSLRequest sent to the backend; TLS handshake there */
    MY_AUTH,         /* response forwarded; authentication exchange relayed */
    MY_DONE,         /* error queued or relay started */
};

static const char *const state_names[] = {
    "connecting", "greeting",    "handshake",      "client-tls",
    "response",   "backend-tls", "authentication", "done",
};

/* Per-instance configuration, built with each generation. */
struct my_conf {
    struct dbt_my_reqs reqs;
};

struct my_sess {
    enum my_state state;
    uint64_t deadline_ms;        /* absolute, monotonic */
    uint32_t backend_caps;       /* from the greeting */
    bool client_tls;             /* the client sent an SSLRequest */
    uint8_t reply_seq;           /* sequence id of the front's next reply to the client */
    int offset;                  /* client seq - backend seq during authentication */
    struct dbt_buf fwd;          /* the response for the backend, held while its TLS starts */
    struct dbt_my_cmd_scan scan; /* the command stream after authentication */
    /* caching_sha2_password full authentication mediated for a plain TCP backend leg (sha2.c
     * of MySQL's client, done by the front: see sha2_*) */
    uint8_t scramble[20]; /* the server's current scramble (greeting, then any auth switch) */
    uint8_t scramble_len;
    enum { SHA2_NONE, SHA2_WAIT_PASSWORD, SHA2_WAIT_KEY } sha2;
    uint8_t sha2_client_seq; /* sequence id of the client's password packet */
    uint8_t *sha2_pw;        /* the password with its NUL, until the server's key is here */
    size_t sha2_pw_len;
};

/* ---- per-instance configuration ---- */

static dbt_res my_inst_prepare(const struct dbt_rt_instance *rt, void **out)
{
    dbt_res res = DBT_OK;
    struct my_conf *c = calloc(1, sizeof(*c));
    DBT_ENSURE(c != NULL, NOMEM, "out of memory");
    res = dbt_my_reqs_parse(rt->user_require_text, &c->reqs);
    if (!dbt_ok(res)) {
        res = dbt_fail_ctx(res, "per-user REQUIRE rules: ");
        goto out;
    }
    *out = c;
    c = NULL;
out:
    free(c);
    return res;
}

static void my_inst_free(void *conf)
{
    struct my_conf *c = conf;
    dbt_my_reqs_free(&c->reqs);
    free(c);
}

/* ---- helpers ---- */

static void set_state(struct dbt_session *s, struct my_sess *ms, enum my_state st)
{
    ms->state = st;
    uint64_t now = dbt_now_ms();
    uint64_t left = ms->deadline_ms > now ? ms->deadline_ms - now : 1;
    dbt_session_set_state(s, state_names[st], st == MY_DONE ? 0 : left);
}

/* Queues the ERR packet written with w on b (cleaned up here) as the last thing the client gets
   and finishes the session. */
static dbt_res send_last(struct dbt_session *s, struct dbt_wr *w, struct dbt_buf *b)
{
    struct my_sess *ms = s->pstate;
    dbt_res r = dbt_wr_finish(w);
    if (dbt_ok(r)) {
        r = dbt_session_send_client(s, b->data, b->len);
    }
    dbt_buf_cleanup(b);
    ms->state = MY_DONE;
    dbt_session_set_state(s, "closing", 0);
    dbt_session_finish(s);
    return r;
}

/*
 * Queues an ERR packet for the client and finishes the session. protocol41 is false only before
 * the client said anything (errors in place of the greeting carry no SQLSTATE, as MySQL's).
 */
static dbt_res send_err(struct dbt_session *s, uint8_t seq, bool protocol41, uint16_t code,
                        const char *state, const char *msg)
{
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_err_encode(&w, seq, protocol41, code, state, msg);
    return send_last(s, &w, &b);
}

static void log_refusal(struct dbt_session *s, const char *why)
{
    dbt_info("instance \"%s\": client %s port %d user \"%s\" refused: %s", s->st.instance,
             s->st.client_addr, s->st.client_port, s->st.user, why);
}

/* The client broke the handshake: MySQL answers ER_HANDSHAKE_ERROR "Bad handshake" (08S01). */
static dbt_res bad_handshake(struct dbt_session *s, uint8_t seq, const char *why)
{
    log_refusal(s, why);
    return send_err(s, seq, true, DBT_MY_ER_HANDSHAKE_ERROR, DBT_MY_STATE_COMM, "Bad handshake");
}

/* A framing error from the client, reported with MySQL's own error for it. */
static dbt_res client_frame_error(struct dbt_session *s, dbt_res r, uint8_t seq)
{
    char why[256];
    snprintf(why, sizeof(why), "%s", dbt_errmsg());
    log_refusal(s, why);
    if (r.code == DBT_E_LIMIT) {
        return send_err(s, seq, true, DBT_MY_ER_NET_PACKET_TOO_LARGE, DBT_MY_STATE_COMM,
                        "Got a packet bigger than 'max_allowed_packet' bytes");
    }
    return send_err(s, seq, true, DBT_MY_ER_NET_PACKETS_OUT_OF_ORDER, DBT_MY_STATE_COMM,
                    "Got packets out of order");
}

/* The backend is unreachable or broken before the client got a greeting. */
static dbt_res backend_error_early(struct dbt_session *s, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "Can't connect to MySQL server on '%s' (%s)", s->inst->rt->backend,
             why);
    dbt_log(dbt_front_backend_quiet(s->st.instance) ? DBT_LOG_DEBUG : DBT_LOG_WARN,
            "instance \"%s\": client %s port %d: %s", s->st.instance, s->st.client_addr,
            s->st.client_port, msg);
    return send_err(s, 0, false, DBT_MY_ER_BACKEND_UNREACHABLE, NULL, msg);
}

/* The backend failed after the client's response: a 4.1 error with the next sequence id. */
static dbt_res backend_error_late(struct dbt_session *s, uint8_t seq, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "Lost connection to MySQL server '%s' during authentication (%s)",
             s->inst->rt->backend, why);
    dbt_warn("instance \"%s\": client %s port %d: %s", s->st.instance, s->st.client_addr,
             s->st.client_port, msg);
    return send_err(s, seq, true, DBT_MY_ER_BACKEND_UNREACHABLE, DBT_MY_STATE_GENERAL, msg);
}

static bool frame_of(struct dbt_buf *in, size_t max, struct dbt_my_frame *f, dbt_res *r)
{
    *r = dbt_my_frame_peek(dbt_buf_head(in), dbt_buf_avail(in), max, f);
    return dbt_ok(*r);
}

/*
 * The next packet from the client before authentication ends, when it is complete, well framed
 * and carries sequence id `want`. Otherwise false with *res what the caller returns: OK to wait
 * for more bytes, or the MySQL error already sent (a framing error with sequence id
 * frame_err_seq; "Got packets out of order" for another sequence id, logged as `what` having it).
 */
static bool client_packet(struct dbt_session *s, const char *what, uint8_t want,
                          uint8_t frame_err_seq, struct dbt_my_frame *f, dbt_res *res)
{
    dbt_res r;
    if (!frame_of(&s->client.in, DBT_MY_PREAUTH_MAX, f, &r)) {
        *res = r.code == DBT_E_AGAIN ? DBT_OK : client_frame_error(s, r, frame_err_seq);
        return false;
    }
    if (f->seq != want) {
        char why[128];
        snprintf(why, sizeof(why), "%s has sequence id %u, expected %u", what, f->seq, want);
        log_refusal(s, why);
        *res = send_err(s, (uint8_t)(f->seq + 1), true, DBT_MY_ER_NET_PACKETS_OUT_OF_ORDER,
                        DBT_MY_STATE_COMM, "Got packets out of order");
        return false;
    }
    return true;
}

/* ---- backend greeting ---- */

/* Keeps the server's scramble (a[0..an) then b[0..bn), at most 20 bytes, up to a NUL in b). */
static void keep_scramble(struct my_sess *ms, const uint8_t *a, size_t an, const uint8_t *b,
                          size_t bn)
{
    size_t n = 0;
    for (size_t i = 0; i < an && n < sizeof(ms->scramble); i++) {
        ms->scramble[n++] = a[i];
    }
    for (size_t i = 0; i < bn && b[i] != 0 && n < sizeof(ms->scramble); i++) {
        ms->scramble[n++] = b[i];
    }
    ms->scramble_len = (uint8_t)n;
}

static dbt_res handle_greeting(struct dbt_session *s, struct my_sess *ms)
{
    struct dbt_buf *in = &s->backend.in;
    struct dbt_my_frame f;
    dbt_res r;
    if (!frame_of(in, DBT_MY_PREAUTH_MAX, &f, &r)) {
        if (r.code == DBT_E_AGAIN) {
            if (s->backend.eof) {
                return backend_error_early(s, "the server closed the connection before its "
                                              "greeting was complete");
            }
            return DBT_OK;
        }
        char why[300];
        snprintf(why, sizeof(why), "invalid greeting: %s", dbt_errmsg());
        return backend_error_early(s, why);
    }
    if (f.nparts != 1 || f.seq != 0) {
        return backend_error_early(s, "invalid greeting: sequence id is not 0");
    }
    if (dbt_my_is_err(f.payload, f.payload_len)) {
        /* "Too many connections", "Host ... is blocked": the server's own refusal, as is. */
        struct dbt_my_err e;
        if (dbt_ok(dbt_my_err_decode(f.payload, f.payload_len, false, &e))) {
            dbt_info("instance \"%s\": client %s port %d: backend refused the connection: %u %.*s",
                     s->st.instance, s->st.client_addr, s->st.client_port, e.code,
                     (int)(e.msg_len > 200 ? 200 : e.msg_len), e.msg);
        }
        dbt_res sr = dbt_session_send_client(s, dbt_buf_head(in), f.wire_len);
        dbt_buf_consume(in, f.wire_len);
        ms->state = MY_DONE;
        dbt_session_set_state(s, "closing", 0);
        dbt_session_finish(s);
        return sr;
    }
    struct dbt_my_greeting g;
    r = dbt_my_greeting_decode(f.payload, f.payload_len, &g);
    if (!dbt_ok(r)) {
        char why[300];
        snprintf(why, sizeof(why), "invalid greeting: %s", dbt_errmsg());
        return backend_error_early(s, why);
    }
    if (!(g.caps & DBT_MY_CLIENT_PROTOCOL_41) || !g.has_more) {
        return backend_error_early(s, "the server does not speak protocol 4.1");
    }
    if (s->inst->backend_tls != NULL && !(g.caps & DBT_MY_CLIENT_SSL)) {
        return backend_error_early(s, "the server does not offer TLS, which this instance "
                                      "requires on the backend leg");
    }
    ms->backend_caps = g.caps;
    keep_scramble(ms, g.scramble1, 8, g.scramble2, g.scramble2_len);
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_greeting_encode(&g, dbt_my_greeting_front_caps(g.caps, s->inst->server_tls != NULL), 0,
                           &w);
    r = dbt_wr_finish(&w);
    if (dbt_ok(r)) {
        r = dbt_session_send_client(s, b.data, b.len);
    }
    dbt_buf_cleanup(&b);
    dbt_buf_consume(in, f.wire_len);
    if (!dbt_ok(r)) {
        return r;
    }
    ms->reply_seq = 2;
    set_state(s, ms, MY_HANDSHAKE);
    return DBT_OK;
}

/* ---- client response ---- */

static bool attr_value(const struct dbt_my_response *r, const char *key, const char **v, size_t *vn)
{
    size_t off = 0, kn, klen = strlen(key);
    const char *k;
    while (dbt_my_attrs_next(r, &off, &k, &kn, v, vn)) {
        if (kn == klen && memcmp(k, key, kn) == 0) {
            return true;
        }
    }
    return false;
}

/* Builds what MySQL's acl_check_ssl looks at from the client leg's TLS session. */
static void tls_facts(struct dbt_session *s, struct dbt_my_tls_facts *f, char *subject,
                      char *issuer, size_t cap)
{
    char cn[256];
    memset(f, 0, sizeof(*f));
    f->tls = dbt_session_client_tls(s);
    if (!f->tls) {
        return;
    }
    f->cipher = s->st.cipher;
    /* The TLS layer refuses a certificate that does not verify, so present == verified. */
    f->cert_verified = dbt_session_client_cert_cn(s, cn, sizeof(cn));
    f->cert_present = f->cert_verified;
    char subj2253[256], iss2253[256];
    if (f->cert_verified && dbt_session_client_cert_dns(s, subj2253, iss2253, sizeof(subj2253))) {
        if (dbt_ok(dbt_my_dn_oneline(subj2253, subject, cap))) {
            f->subject = subject;
        }
        if (dbt_ok(dbt_my_dn_oneline(iss2253, issuer, cap))) {
            f->issuer = issuer;
        }
    }
}

static dbt_res access_denied(struct dbt_session *s, uint8_t seq, const struct dbt_my_response *r,
                             const char *why)
{
    log_refusal(s, why);
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    dbt_my_err_access_denied(&w, seq, true, r->user, r->user_len, dbt_session_client_host(s),
                             r->auth_len > 0);
    return send_last(s, &w, &b);
}

/* Policy for a decoded response; OK = forward it. Refusals queue the error themselves. */
static dbt_res check_policy(struct dbt_session *s, const struct dbt_my_response *r, uint8_t seq,
                            bool *refused)
{
    const struct my_conf *conf = s->inst->proto_conf;
    const struct dbt_rt_instance *rt = s->inst->rt;
    bool tls = dbt_session_client_tls(s);
    *refused = true;

    if (!tls && rt->ssl_mode != DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED) {
        /*
         * require_secure_transport=ON: "Connections using insecure transport are prohibited
         * while --require_secure_transport=ON." (ER_SECURE_TRANSPORT_REQUIRED, 3159, HY000),
         * https://dev.mysql.com/doc/refman/8.0/en/server-system-variables.html
         * #sysvar_require_secure_transport. MariaDB before 11.4 answers a bare 1045; the front
         * gives both engines MySQL's informative error (MDEV-30178). Unlike MySQL, the
         * credentials in this response are not forwarded anywhere.
         */
        log_refusal(s, "plaintext connection while the instance requires TLS");
        struct dbt_buf b;
        dbt_buf_init(&b, 0);
        struct dbt_wr w = dbt_wr_make(&b);
        dbt_my_err_secure_transport(&w, seq, true);
        return send_last(s, &w, &b);
    }
    struct dbt_my_tls_facts facts;
    char subject[512], issuer[512];
    tls_facts(s, &facts, subject, issuer, sizeof(subject));
    if (rt->ssl_mode == DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED && !facts.cert_verified) {
        /* As an account with REQUIRE X509: access denied. */
        return access_denied(s, seq, r,
                             "the instance requires a trusted client certificate and none was "
                             "presented");
    }
    char user[256];
    snprintf(user, sizeof(user), "%.*s", (int)(r->user_len < 255 ? r->user_len : 255), r->user);
    const struct dbt_my_req *req =
        dbt_my_reqs_find(&conf->reqs, r->user, r->user_len, dbt_session_client_host(s));
    dbt_res cr = dbt_my_req_check(req, &facts);
    if (!dbt_ok(cr)) {
        char why[600];
        snprintf(why, sizeof(why), "REQUIRE rule on line %u: %s", req ? req->line : 0,
                 dbt_errmsg());
        return access_denied(s, seq, r, why);
    }
    *refused = false;
    return DBT_OK;
}

static dbt_res relay_auth_client(struct dbt_session *s, struct my_sess *ms);

/*
 * --client-info on: the client's address, TLS facts and instance as connection attributes the
 * server keeps (MariaDB/MySQL performance_schema.session_connect_attrs), under the same names as
 * the PostgreSQL front's settings; the client's own "dbtls.*" attributes are dropped.
 */
static dbt_res client_info_attrs(struct dbt_session *s, const struct dbt_my_response *r,
                                 struct dbt_buf *out)
{
    char port[16];
    const char *pairs[DBT_CLIENT_INFO_N][2];
    dbt_session_client_info(s, port, pairs);
    return dbt_my_attrs_build(r, DBT_CLIENT_INFO_PREFIX, (const char *const(*)[2])pairs,
                              DBT_CLIENT_INFO_N, out);
}

static dbt_res process_response(struct dbt_session *s, struct my_sess *ms,
                                const struct dbt_my_frame *f)
{
    struct dbt_my_response r;
    uint8_t seq = f->seq;
    dbt_res res = dbt_my_response_decode(f->payload, f->payload_len, &r);
    if (!dbt_ok(res)) {
        return bad_handshake(s, (uint8_t)(seq + 1), dbt_errmsg());
    }
    dbt_session_set_user(s, r.user, r.user_len);
    if (r.has_db) {
        dbt_session_set_database(s, r.db, r.db_len);
    }
    const char *app;
    size_t app_len;
    if (attr_value(&r, "program_name", &app, &app_len)) {
        dbt_session_set_application_name(s, app, app_len);
    }
    bool refused;
    res = check_policy(s, &r, (uint8_t)(seq + 1), &refused);
    if (refused || !dbt_ok(res)) {
        return res;
    }

    bool backend_tls = s->inst->backend_tls != NULL;
    uint32_t caps = r.caps & ~DBT_MY_CAPS_MASKED;
    caps = backend_tls ? caps | DBT_MY_CLIENT_SSL : caps & ~DBT_MY_CLIENT_SSL;
    /* The backend expects seq 1 on a plain leg, 2 after the front's own SSLRequest. */
    uint8_t backend_seq = backend_tls ? 2 : 1;
    ms->offset = (int)seq - (int)backend_seq;

    struct dbt_buf attrs;
    dbt_buf_init(&attrs, 0);
    if (s->inst->rt->client_info && (ms->backend_caps & DBT_MY_CLIENT_CONNECT_ATTRS) &&
        dbt_my_attrs_fit(&r, caps | DBT_MY_CLIENT_CONNECT_ATTRS) &&
        dbt_ok(client_info_attrs(s, &r, &attrs))) {
        caps |= DBT_MY_CLIENT_CONNECT_ATTRS;
        r.has_attrs = true;
        r.attrs = attrs.data;
        r.attrs_len = attrs.len;
    }
    struct dbt_wr w = dbt_wr_make(&ms->fwd);
    if (backend_tls) {
        struct dbt_buf req;
        dbt_buf_init(&req, 0);
        struct dbt_wr rw = dbt_wr_make(&req);
        dbt_my_ssl_request_encode(&r, caps, 1, &rw);
        res = dbt_wr_finish(&rw);
        if (dbt_ok(res)) {
            res = dbt_session_send_backend(s, req.data, req.len);
        }
        dbt_buf_cleanup(&req);
        if (!dbt_ok(res)) {
            return res;
        }
    }
    dbt_my_response_encode(&r, caps, backend_seq, &w);
    res = dbt_wr_finish(&w);
    dbt_buf_cleanup(&attrs);
    /* r points into client.in: consume only now. */
    dbt_buf_consume(&s->client.in, f->wire_len);
    if (!dbt_ok(res)) {
        return bad_handshake(s, (uint8_t)(seq + 1), "the response cannot be re-encoded");
    }
    dbt_debug("instance \"%s\": client %s port %d user \"%s\" %s, forwarding to %s", s->st.instance,
              s->st.client_addr, s->st.client_port, s->st.user,
              ms->client_tls ? "over TLS" : "in clear", s->inst->rt->backend);
    if (backend_tls) {
        set_state(s, ms, MY_BACKEND_TLS);
        return dbt_session_start_backend_tls(s);
    }
    res = dbt_session_send_backend(s, ms->fwd.data, ms->fwd.len);
    dbt_buf_cleanup(&ms->fwd);
    set_state(s, ms, MY_AUTH);
    if (dbt_ok(res) && dbt_buf_avail(&s->client.in) > 0) {
        return relay_auth_client(s, ms); /* pipelined before the server answered */
    }
    return res;
}

/* The client's first packet, in clear: an SSLRequest or a HandshakeResponse41. */
static dbt_res handle_first(struct dbt_session *s, struct my_sess *ms)
{
    struct dbt_buf *in = &s->client.in;
    struct dbt_my_frame f;
    dbt_res r;
    if (!client_packet(s, "handshake packet", 1, 2, &f, &r)) {
        return r;
    }
    enum dbt_my_hs_kind kind;
    r = dbt_my_hs_classify(f.payload, f.payload_len, &kind);
    if (!dbt_ok(r)) {
        return bad_handshake(s, 2, dbt_errmsg());
    }
    if (kind == DBT_MY_HS_RESPONSE) {
        return process_response(s, ms, &f);
    }
    if (s->inst->server_tls == NULL) {
        /* CLIENT_SSL was not offered. */
        return bad_handshake(s, 2, "SSLRequest but the instance has no TLS");
    }
    dbt_buf_consume(in, f.wire_len);
    ms->client_tls = true;
    ms->reply_seq = 3;
    set_state(s, ms, MY_CLIENT_TLS);
    if (dbt_buf_avail(in) == 0) {
        return dbt_session_start_client_tls(s);
    }
    /*
     * The server does not answer an SSLRequest: the client starts its TLS handshake at once, so
     * the ClientHello may already be here. Those bytes go to OpenSSL, whose handshake transcript
     * covers them; anything that is not a TLS handshake record is plaintext injected after the
     * request (the CVE-2021-23214 pattern) and ends the connection.
     */
    uint8_t first = dbt_buf_head(in)[0];
    if (first != 0x16) {
        dbt_buf_reset(in);
        ms->client_tls = false;
        return bad_handshake(s, 2, "received unencrypted data after SSLRequest");
    }
    return dbt_session_start_client_tls_direct(s);
}

static dbt_res handle_response_tls(struct dbt_session *s, struct my_sess *ms)
{
    struct dbt_my_frame f;
    dbt_res r;
    if (!client_packet(s, "handshake response", 2, 3, &f, &r)) {
        return r;
    }
    if (f.payload_len <= DBT_MY_SSL_REQUEST_LEN) {
        return bad_handshake(s, 3, "second SSLRequest or truncated response over TLS");
    }
    return process_response(s, ms, &f);
}

/* ---- authentication exchange ---- */

static void sha2_forget(struct my_sess *ms)
{
    if (ms->sha2_pw != NULL) {
        explicit_bzero(ms->sha2_pw, ms->sha2_pw_len);
        free(ms->sha2_pw);
    }
    ms->sha2_pw = NULL;
    ms->sha2_pw_len = 0;
    ms->sha2 = SHA2_NONE;
}

/*
 * The client's answer to "perform full authentication" while the front mediates: its password
 * in clear (it is on TLS, so MySQL's client sends it so), which must not cross the plain backend
 * leg. Kept, wiped from the input buffer, and the server is asked for its RSA public key in its
 * place. False when the answer is something else (a client asking for the key itself, or a
 * split packet): then it goes on as it is.
 */
static bool sha2_take_password(struct dbt_session *s, struct my_sess *ms,
                               const struct dbt_my_frame *f, dbt_res *res)
{
    ms->sha2 = SHA2_NONE;
    if (f->nparts != 1 ||
        (f->payload_len == 1 && f->payload[0] == DBT_MY_SHA2_REQUEST_PUBLIC_KEY)) {
        return false;
    }
    ms->sha2_pw = malloc(f->payload_len ? f->payload_len : 1);
    if (ms->sha2_pw == NULL) {
        *res = dbt_fail(DBT_E_NOMEM, "out of memory");
        return true;
    }
    memcpy(ms->sha2_pw, f->payload, f->payload_len);
    ms->sha2_pw_len = f->payload_len;
    explicit_bzero((uint8_t *)f->payload, f->payload_len);
    dbt_buf_consume(&s->client.in, f->wire_len);
    ms->sha2_client_seq = f->seq;
    ms->reply_seq = (uint8_t)(f->seq + 1);
    ms->sha2 = SHA2_WAIT_KEY;
    uint8_t req[5] = {1, 0, 0, (uint8_t)(f->seq - ms->offset), DBT_MY_SHA2_REQUEST_PUBLIC_KEY};
    *res = dbt_session_send_backend(s, req, sizeof(req));
    return true;
}

/*
 * The server's RSA public key (AuthMoreData) arrived: the kept password goes to it encrypted, as
 * a MySQL client without TLS sends it. The server's verdict then answers the client's password
 * packet, so the sequence offset moves by the two packets the client never saw.
 */
static dbt_res sha2_send_password(struct dbt_session *s, struct my_sess *ms,
                                  const struct dbt_my_frame *f)
{
    const uint8_t *pem = NULL;
    size_t pem_len = 0;
    uint8_t ct[DBT_MY_SHA2_RSA_MAX];
    size_t ct_len = 0;
    dbt_res r = dbt_my_more_data_decode(f->payload, f->payload_len, &pem, &pem_len);
    if (dbt_ok(r)) {
        r = dbt_my_sha2_rsa_encrypt((const char *)pem, pem_len, ms->sha2_pw, ms->sha2_pw_len,
                                    ms->scramble, ms->scramble_len, ct, sizeof(ct), &ct_len);
    }
    uint8_t client_seq = (uint8_t)(ms->sha2_client_seq + 1);
    sha2_forget(ms);
    if (!dbt_ok(r)) {
        char why[400];
        snprintf(why, sizeof(why), "caching_sha2_password: %s", dbt_errmsg());
        return backend_error_late(s, client_seq, why);
    }
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_wr w = dbt_wr_make(&b);
    size_t pos = dbt_my_pkt_begin(&w, (uint8_t)(f->seq + 1));
    dbt_wr_bytes(&w, ct, ct_len);
    dbt_my_pkt_end(&w, pos);
    r = dbt_wr_finish(&w);
    if (dbt_ok(r)) {
        r = dbt_session_send_backend(s, b.data, b.len);
    }
    dbt_buf_cleanup(&b);
    ms->offset = (int)client_seq - (int)(uint8_t)(f->seq + 2);
    dbt_debug("instance \"%s\": client %s port %d user \"%s\": caching_sha2_password full "
              "authentication, password sent RSA-encrypted to the server",
              s->st.instance, s->st.client_addr, s->st.client_port, s->st.user);
    return r;
}

static dbt_res relay_auth_backend(struct dbt_session *s, struct my_sess *ms)
{
    struct dbt_buf *in = &s->backend.in;
    while (dbt_buf_avail(in) > 0 && ms->state == MY_AUTH) {
        struct dbt_my_frame f;
        dbt_res r;
        if (!frame_of(in, DBT_MY_PREAUTH_MAX, &f, &r)) {
            if (r.code == DBT_E_AGAIN) {
                break;
            }
            char why[300];
            snprintf(why, sizeof(why), "invalid packet from the server: %s", dbt_errmsg());
            return backend_error_late(s, ms->reply_seq, why);
        }
        enum dbt_my_auth_kind kind =
            f.nparts == 1 ? dbt_my_auth_classify(f.payload, f.payload_len) : DBT_MY_AUTH_OTHER;
        if (ms->sha2 == SHA2_WAIT_KEY) {
            if (kind == DBT_MY_AUTH_MORE_DATA) {
                r = sha2_send_password(s, ms, &f);
                dbt_buf_consume(in, f.wire_len);
                if (!dbt_ok(r) || ms->state != MY_AUTH) {
                    return r;
                }
                continue;
            }
            /* no key (an ERR, say): that is the answer the client gets to its password */
            ms->offset = (int)(uint8_t)(ms->sha2_client_seq + 1) - (int)f.seq;
            sha2_forget(ms);
        }
        uint8_t client_seq = (uint8_t)(f.seq + ms->offset);
        if (kind == DBT_MY_AUTH_OTHER) {
            return backend_error_late(s, client_seq, "unexpected packet during authentication");
        }
        struct dbt_my_switch sw;
        if (kind == DBT_MY_AUTH_SWITCH &&
            dbt_ok(dbt_my_switch_decode(f.payload, f.payload_len, &sw))) {
            keep_scramble(ms, sw.data, 0, sw.data, sw.data_len); /* the new plugin's salt */
        }
        if (kind == DBT_MY_AUTH_MORE_DATA && f.payload_len == 2 &&
            f.payload[1] == DBT_MY_SHA2_PERFORM_FULL_AUTH && ms->client_tls &&
            s->inst->backend_tls == NULL && s->inst->backend_addr.ss_family != AF_UNIX) {
            /*
             * caching_sha2_password full authentication: a client on TLS answers with its
             * password in clear, which MySQL refuses on a plain TCP connection (it accepts it
             * on TLS and on its unix socket). The front takes the password and sends it
             * RSA-encrypted with the server's public key instead (sha2_take_password).
             */
            ms->sha2 = SHA2_WAIT_PASSWORD;
        }
        /* Renumber in place (the bytes are ours until consumed), then forward as they are. */
        dbt_my_frame_renumber((uint8_t *)dbt_buf_head(in), &f, ms->offset);
        r = dbt_session_send_client(s, dbt_buf_head(in), f.wire_len);
        dbt_buf_consume(in, f.wire_len);
        if (!dbt_ok(r)) {
            return r;
        }
        ms->reply_seq = (uint8_t)(client_seq + 1);
        if (kind == DBT_MY_AUTH_OK) {
            /* like log_connections=off: a login is not logged unless asked (DBTLS_LOG=debug) */
            dbt_debug("instance \"%s\": client %s port %d user \"%s\" authenticated",
                      s->st.instance, s->st.client_addr, s->st.client_port, s->st.user);
            ms->state = MY_DONE;
            dbt_session_relay(s);
            return DBT_OK;
        }
        if (kind == DBT_MY_AUTH_ERR) {
            dbt_info("instance \"%s\": client %s port %d user \"%s\": the server refused the "
                     "login",
                     s->st.instance, s->st.client_addr, s->st.client_port, s->st.user);
            ms->state = MY_DONE;
            dbt_session_set_state(s, "closing", 0);
            dbt_session_finish(s);
            return DBT_OK;
        }
    }
    if (ms->state == MY_AUTH && s->backend.eof) {
        return backend_error_late(s, ms->reply_seq, "the server closed the connection");
    }
    return DBT_OK;
}

static dbt_res relay_auth_client(struct dbt_session *s, struct my_sess *ms)
{
    struct dbt_buf *in = &s->client.in;
    while (dbt_buf_avail(in) > 0) {
        struct dbt_my_frame f;
        dbt_res r;
        if (!client_packet(s, "authentication packet", ms->reply_seq, ms->reply_seq, &f, &r)) {
            return r;
        }
        if (ms->sha2 == SHA2_WAIT_PASSWORD && sha2_take_password(s, ms, &f, &r)) {
            if (!dbt_ok(r)) {
                return r;
            }
            continue;
        }
        dbt_my_frame_renumber((uint8_t *)dbt_buf_head(in), &f, -ms->offset);
        r = dbt_session_send_backend(s, dbt_buf_head(in), f.wire_len);
        dbt_buf_consume(in, f.wire_len);
        if (!dbt_ok(r)) {
            return r;
        }
        ms->reply_seq = (uint8_t)(f.last_seq + 1);
    }
    return DBT_OK;
}

/* ---- after authentication ---- */

dbt_res dbt_my_relay_client_check(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    const struct my_conf *conf = s->inst->proto_conf;
    struct dbt_buf *in = &s->client.in;
    if (ms == NULL || conf == NULL || conf->reqs.n == 0) {
        return DBT_OK;
    }
    size_t off = 0;
    struct dbt_my_change_user cu;
    while (dbt_my_cmd_scan_next(&ms->scan, dbt_buf_head(in), dbt_buf_avail(in), &off, &cu)) {
        char why[600];
        bool refuse = false;
        if (!cu.complete) {
            /* The name did not come with the command byte: it cannot be judged before the bytes
             * go on, so the change is refused rather than let through unchecked. */
            snprintf(why, sizeof(why), "COM_CHANGE_USER split before the end of its user name");
            refuse = true;
        } else {
            struct dbt_my_tls_facts facts;
            char subject[512], issuer[512];
            tls_facts(s, &facts, subject, issuer, sizeof(subject));
            const struct dbt_my_req *req =
                dbt_my_reqs_find(&conf->reqs, cu.user, cu.user_len, dbt_session_client_host(s));
            if (!dbt_ok(dbt_my_req_check(req, &facts))) {
                snprintf(why, sizeof(why),
                         "COM_CHANGE_USER to \"%.*s\": REQUIRE rule on line %u: %s",
                         (int)(cu.user_len > 64 ? 64 : cu.user_len), cu.user, req ? req->line : 0,
                         dbt_errmsg());
                refuse = true;
            }
        }
        if (refuse) {
            log_refusal(s, why);
            struct dbt_buf b;
            dbt_buf_init(&b, 0);
            struct dbt_wr w = dbt_wr_make(&b);
            dbt_my_err_access_denied(&w, 1, true, cu.user ? cu.user : "", cu.user_len,
                                     dbt_session_client_host(s), true);
            dbt_res r = dbt_wr_finish(&w);
            dbt_buf_reset(in); /* never reaches the backend */
            if (dbt_ok(r)) {
                r = dbt_session_send_client(s, b.data, b.len);
            }
            dbt_buf_cleanup(&b);
            ms->state = MY_DONE;
            dbt_session_finish(s);
            return dbt_ok(r) ? dbt_fail(DBT_E_DENIED, "%s", why) : r;
        }
        dbt_session_set_user(s, cu.user, cu.user_len);
    }
    return DBT_OK;
}

/* ---- callbacks ---- */

static dbt_res my_on_accept(struct dbt_session *s)
{
    struct my_sess *ms = calloc(1, sizeof(*ms));
    if (ms == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    dbt_buf_init(&ms->fwd, DBT_MY_PREAUTH_MAX + 64);
    ms->deadline_ms = dbt_now_ms() + dbt_session_auth_timeout_ms();
    s->pstate = ms;
    /* One handshake packet at most, header included, before anything is parsed. */
    s->client.in_max = DBT_MY_PREAUTH_MAX + DBT_MY_HDR_LEN;
    s->backend.in_max = DBT_MY_PREAUTH_MAX + DBT_MY_HDR_LEN;
    set_state(s, ms, MY_CONNECTING);
    return dbt_session_connect_backend(s, NULL, 0);
}

static dbt_res my_on_backend_connected(struct dbt_session *s, dbt_res r)
{
    struct my_sess *ms = s->pstate;
    if (!dbt_ok(r)) {
        char why[400];
        snprintf(why, sizeof(why), "%s", dbt_errmsg());
        return backend_error_early(s, why);
    }
    set_state(s, ms, MY_GREETING);
    return DBT_OK;
}

static dbt_res my_on_backend_data(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    switch (ms->state) {
    case MY_GREETING: {
        dbt_res r = handle_greeting(s, ms);
        if (dbt_ok(r) && ms->state == MY_HANDSHAKE && dbt_buf_avail(&s->client.in) > 0) {
            /* the client spoke before the greeting: judged now, in order */
            return handle_first(s, ms);
        }
        return r;
    }
    case MY_AUTH:
        return relay_auth_backend(s, ms);
    case MY_BACKEND_TLS:
        return DBT_OK; /* the session layer refuses plaintext before the backend TLS */
    default:
        /* the server has nothing to say while the client handshakes */
        if (ms->state != MY_DONE && dbt_buf_avail(&s->backend.in) > 0) {
            return backend_error_late(s, ms->reply_seq, "unexpected data from the server");
        }
        dbt_buf_reset(&s->backend.in);
        return DBT_OK;
    }
}

static dbt_res my_on_backend_eof(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    switch (ms->state) {
    case MY_CONNECTING:
    case MY_GREETING:
        return backend_error_early(s, "the server closed the connection before its greeting was "
                                      "complete");
    case MY_HANDSHAKE:
    case MY_RESPONSE_TLS:
    case MY_BACKEND_TLS:
    case MY_AUTH:
        return backend_error_late(s, ms->reply_seq, "the server closed the connection");
    case MY_CLIENT_TLS:
    case MY_DONE:
        break;
    }
    return DBT_OK;
}

static dbt_res my_on_client_data(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    switch (ms->state) {
    case MY_HANDSHAKE:
        return handle_first(s, ms);
    case MY_RESPONSE_TLS:
        return handle_response_tls(s, ms);
    case MY_AUTH:
        return relay_auth_client(s, ms);
    case MY_CONNECTING:
    case MY_GREETING:
    case MY_BACKEND_TLS:
    case MY_CLIENT_TLS:
        return DBT_OK; /* kept (bounded by in_max) until the state that reads it */
    case MY_DONE:
        dbt_buf_reset(&s->client.in);
        return DBT_OK;
    }
    return DBT_OK;
}

static dbt_res my_on_client_tls_done(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    set_state(s, ms, MY_RESPONSE_TLS);
    if (dbt_buf_avail(&s->client.in) > 0) {
        return handle_response_tls(s, ms);
    }
    return DBT_OK;
}

static dbt_res my_on_backend_tls_done(struct dbt_session *s, dbt_res r)
{
    struct my_sess *ms = s->pstate;
    if (!dbt_ok(r)) {
        char why[400];
        snprintf(why, sizeof(why), "%s", dbt_errmsg());
        return backend_error_late(s, ms->reply_seq, why);
    }
    dbt_res sr = dbt_session_send_backend(s, ms->fwd.data, ms->fwd.len);
    dbt_buf_cleanup(&ms->fwd);
    set_state(s, ms, MY_AUTH);
    if (dbt_ok(sr) && dbt_buf_avail(&s->client.in) > 0) {
        return relay_auth_client(s, ms);
    }
    return sr;
}

static void my_on_timeout(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    dbt_info("instance \"%s\": client %s port %d: authentication timeout in state %s",
             s->st.instance, s->st.client_addr, s->st.client_port, state_names[ms->state]);
    switch (ms->state) {
    case MY_CONNECTING:
    case MY_GREETING:
        (void)backend_error_early(s, "timed out waiting for the server");
        return;
    case MY_HANDSHAKE:
    case MY_RESPONSE_TLS:
        (void)send_err(s, ms->reply_seq, true, DBT_MY_ER_HANDSHAKE_ERROR, DBT_MY_STATE_COMM,
                       "Bad handshake");
        return;
    case MY_BACKEND_TLS:
    case MY_AUTH:
        (void)backend_error_late(s, ms->reply_seq, "timed out during authentication");
        return;
    case MY_CLIENT_TLS:
    case MY_DONE:
        break;
    }
    /* nothing can be said in the middle of a TLS handshake */
    ms->state = MY_DONE;
    dbt_buf_reset(&s->client.out);
    dbt_session_finish(s);
}

static void my_on_close(struct dbt_session *s)
{
    struct my_sess *ms = s->pstate;
    if (ms == NULL) {
        return;
    }
    dbt_buf_cleanup(&ms->fwd);
    sha2_forget(ms);
    free(ms);
    s->pstate = NULL;
}

const struct dbt_proto dbt_my_proto = {
    .name = "mysql",
    .server_speaks_first = true,
    .inst_prepare = my_inst_prepare,
    .inst_free = my_inst_free,
    .on_accept = my_on_accept,
    .on_client_data = my_on_client_data,
    .on_client_tls_done = my_on_client_tls_done,
    .on_backend_connected = my_on_backend_connected,
    .on_backend_data = my_on_backend_data,
    .on_backend_tls_done = my_on_backend_tls_done,
    .on_timeout = my_on_timeout,
    .on_close = my_on_close,
    .on_relay_client_data = dbt_my_relay_client_check,
    .on_backend_eof = my_on_backend_eof,
};
