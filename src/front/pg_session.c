/*
 * pg_session.c - the PostgreSQL state machine of the TLS front, on the session layer
 * (session.h). It follows PostgreSQL's ProcessStartupPacket (src/backend/tcop/backend_startup.c):
 * SSLRequest -> 'S' + TLS; GSSENCRequest -> 'N'; each at most once, in either order; plaintext
 * pipelined after SSLRequest is refused (CVE-2021-3935); a first byte 0x16 is direct TLS
 * (PostgreSQL 17) that must negotiate ALPN "postgresql"; CancelRequest is routed to the backend
 * that issued the key; StartupMessage -> access rules (front/rules/hba.h) -> backend connect
 * (optionally TLS, verify-full) -> startup forwarded -> authentication relayed with
 * SCRAM-SHA-256-PLUS removed and BackendKeyData recorded -> ReadyForQuery -> relay.
 *
 * Every state before the relay runs under the pre-authentication deadline (--auth-timeout,
 * PostgreSQL's authentication_timeout, 60 s by default), counted from the accept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/wr.h"
#include "front/front.h"
#include "front/rules/hba.h"
#include "front/session.h"
#include "proto/pg/pg.h"
#include "tls/tls.h"

enum pg_state {
    PG_STARTUP,     /* waiting for the first packet (or the next one after 'N'/TLS) */
    PG_CLIENT_TLS,  /* TLS handshake with the client */
    PG_CONNECTING,  /* backend connect in progress */
    PG_BACKEND_SSL, /* SSLRequest sent to the backend, waiting for 'S'/'N' */
    PG_BACKEND_TLS, /* TLS handshake with the backend */
    PG_AUTH,        /* startup forwarded, authentication exchange relayed */
    PG_CANCEL,      /* forwarding a CancelRequest */
    PG_DONE,        /* error sent or relay started */
};

static const char *const state_names[] = {
    "startup",     "client-tls",     "connecting", "backend-ssl",
    "backend-tls", "authentication", "cancel",     "done",
};

struct pg_conf {
    struct dbt_hba *hba;
    struct dbt_ident *ident;
    int engine_major;
};

struct pg_sess {
    enum pg_state state;
    unsigned flags; /* DBT_PG_FIRST_* */
    bool direct_tls;
    bool authenticated;
    uint64_t deadline_ms;             /* absolute, monotonic */
    struct dbt_buf startup;           /* the client's StartupMessage, forwarded as received */
    struct dbt_pg_cancel_key *cancel; /* a CancelRequest being forwarded (rare: allocated) */
    uint32_t key_pid;
    uint64_t cancel_token;
    bool plus_hidden; /* the backend offered SCRAM-SHA-256-PLUS: its SASLInitialResponse is due */
};

/* ---- per-instance configuration ---- */

static dbt_res pg_inst_prepare(const struct dbt_rt_instance *rt, void **out)
{
    dbt_res res = DBT_OK;
    struct pg_conf *c = calloc(1, sizeof(*c));
    DBT_ENSURE(c != NULL, NOMEM, "out of memory");
    c->engine_major = rt->engine_version != NULL ? atoi(rt->engine_version) : 15;
    if (c->engine_major <= 0) {
        c->engine_major = 15;
    }
    if (rt->hba_text != NULL) {
        DBT_TRY(dbt_hba_parse(rt->hba_text, strlen(rt->hba_text), "pg_hba.conf", &c->hba));
    } else {
        enum dbt_hba_default d = DBT_HBA_DEFAULT_ALLOW;
        if (rt->ssl_mode == DBT_SSL_MODE_ENCRYPTED_ONLY) {
            d = DBT_HBA_DEFAULT_ENCRYPTED_ONLY;
        } else if (rt->ssl_mode == DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED) {
            d = DBT_HBA_DEFAULT_CERT_REQUIRED;
        }
        DBT_TRY(dbt_hba_default_rules(d, &c->hba));
    }
    if (rt->ident_text != NULL) {
        DBT_TRY(
            dbt_ident_parse(rt->ident_text, strlen(rt->ident_text), "pg_ident.conf", &c->ident));
    }
    *out = c;
    c = NULL;
out:
    if (c != NULL) {
        dbt_hba_free(c->hba);
        dbt_ident_free(c->ident);
        free(c);
    }
    return res;
}

static void pg_inst_free(void *conf)
{
    struct pg_conf *c = conf;
    dbt_hba_free(c->hba);
    dbt_ident_free(c->ident);
    free(c);
}

/* ---- helpers ---- */

static void set_state(struct dbt_session *s, struct pg_sess *ps, enum pg_state st)
{
    ps->state = st;
    uint64_t now = dbt_now_ms();
    uint64_t left = ps->deadline_ms > now ? ps->deadline_ms - now : 1;
    dbt_session_set_state(s, state_names[st], st == PG_DONE ? 0 : left);
}

/* Queues a FATAL ErrorResponse for the client and finishes the session. */
static dbt_res send_fatal(struct dbt_session *s, const char *sqlstate, const char *msg,
                          const char *detail)
{
    struct pg_sess *ps = s->pstate;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    struct dbt_pg_error e = {
        .severity = "FATAL", .sqlstate = sqlstate, .message = msg, .detail = detail};
    dbt_res r = dbt_pg_error_encode(&b, &e);
    if (dbt_ok(r)) {
        r = dbt_session_send_client(s, dbt_buf_head(&b), dbt_buf_avail(&b));
    }
    dbt_buf_cleanup(&b);
    ps->state = PG_DONE;
    dbt_session_set_state(s, "closing", 0);
    dbt_session_finish(s);
    return r;
}

/*
 * --client-info on: the startup packet the backend gets carries, as run-time parameters the
 * backend keeps as placeholder settings (current_setting('dbtls.client_addr') ...), the client's
 * address and port, whether it used TLS and with what, its verified certificate (subject, serial,
 * issuer, as pg_stat_ssl shows them) and the instance. Parameters named "dbtls.*" the client sent
 * itself are dropped, so it cannot pose as another address at startup (a session may still SET
 * them later: information, not a control). with_info false: only the dropping (for a packet the
 * additions would take past PostgreSQL's size limit).
 */
static dbt_res startup_with_client_info(struct dbt_session *s, const struct pg_sess *ps,
                                        bool with_info, struct dbt_buf *out)
{
    dbt_res res = DBT_OK;
    const uint8_t *raw = dbt_buf_head(&ps->startup);
    size_t len = dbt_buf_avail(&ps->startup);
    DBT_ENSURE(len >= 9, PROTO, "startup packet too short");
    uint32_t proto =
        (uint32_t)raw[4] << 24 | (uint32_t)raw[5] << 16 | (uint32_t)raw[6] << 8 | raw[7];
    char port[16];
    const char *info[DBT_CLIENT_INFO_N][2];
    dbt_session_client_info(s, port, info);
    /* a pair takes at least 3 bytes of the packet: len / 3 bounds the client's */
    struct dbt_pg_param *v = calloc(len / 3 + DBT_CLIENT_INFO_N, sizeof(*v));
    DBT_ENSURE(v != NULL, NOMEM, "out of memory");
    size_t n = 0;
    struct dbt_rd it = dbt_rd_make(raw + 8, len - 9);
    struct dbt_pg_param p;
    while (dbt_pg_startup_param_next(&it, &p)) {
        if (strncmp(p.name, DBT_CLIENT_INFO_PREFIX, strlen(DBT_CLIENT_INFO_PREFIX)) != 0) {
            v[n++] = p;
        }
    }
    for (size_t i = 0; with_info && i < DBT_CLIENT_INFO_N; i++) {
        v[n++] = (struct dbt_pg_param){info[i][0], info[i][1]};
    }
    res = dbt_pg_startup_encode(out, proto, v, n);
    free(v);
out:
    return res;
}

static dbt_res forward_startup(struct dbt_session *s, struct pg_sess *ps)
{
    if (s->inst->rt->client_info) {
        struct dbt_buf b;
        dbt_buf_init(&b, DBT_PG_MAX_STARTUP_PACKET_TOTAL);
        dbt_res r = startup_with_client_info(s, ps, true, &b);
        if (!dbt_ok(r)) {
            dbt_buf_cleanup(&b);
            dbt_buf_init(&b, DBT_PG_MAX_STARTUP_PACKET_TOTAL);
            r = startup_with_client_info(s, ps, false, &b);
        }
        if (!dbt_ok(r)) {
            dbt_buf_cleanup(&b);
            return r;
        }
        dbt_buf_cleanup(&ps->startup);
        ps->startup = b;
    }
    dbt_res r =
        dbt_session_send_backend(s, dbt_buf_head(&ps->startup), dbt_buf_avail(&ps->startup));
    dbt_buf_cleanup(&ps->startup);
    if (!dbt_ok(r)) {
        return r;
    }
    set_state(s, ps, PG_AUTH);
    /* the client may already have pipelined its password etc.: it goes to the backend now */
    if (dbt_buf_avail(&s->client.in) > 0) {
        r = dbt_session_send_backend(s, dbt_buf_head(&s->client.in), dbt_buf_avail(&s->client.in));
        dbt_buf_consume(&s->client.in, dbt_buf_avail(&s->client.in));
    }
    return r;
}

/* ---- first packet ---- */

static dbt_res handle_startup(struct dbt_session *s, struct pg_sess *ps,
                              const struct dbt_pg_startup *su)
{
    const struct pg_conf *conf = s->inst->proto_conf;
    dbt_session_set_user(s, su->user, strlen(su->user));
    dbt_session_set_database(s, su->database, strlen(su->database));
    if (su->has_application_name) {
        dbt_session_set_application_name(s, su->application_name, strlen(su->application_name));
    }
    struct dbt_hba_conn c = {
        .addr = (const struct sockaddr *)&s->peer,
        .addr_len = s->peerlen,
        .ssl = dbt_session_client_tls(s),
        /* PostgreSQL (hba.c check_db): only physical replication (am_walsender &&
         * !am_db_walsender) is a "replication connection"; replication=database matches and
         * is worded like any connection to that database */
        .replication = su->replication == DBT_PG_REPLICATION_PHYSICAL,
        .user = su->user,
        .database = su->database,
        .engine_major = conf->engine_major,
    };
    char cn[256] = "", dn[1024] = "";
    struct dbt_hba_tls tls = {.cert_valid = false, .cn = NULL, .dn = NULL};
    const struct dbt_hba_rule *rule = dbt_hba_match(conf->hba, &c);
    if (c.ssl) {
        tls.cert_valid = dbt_session_client_cert_cn(s, cn, sizeof(cn));
        tls.cn = cn;
        if (tls.cert_valid && rule != NULL && rule->clientname == DBT_HBA_CLIENTNAME_DN) {
            (void)dbt_session_client_cert_dn(s, dn, sizeof(dn)); /* "" if it does not fit */
            tls.dn = dn;
        }
    }
    struct dbt_hba_verdict v;
    dbt_hba_decide(rule, conf->ident, &c, &tls, &v);
    if (!v.accept) {
        if (v.log[0] != '\0') {
            dbt_info("instance \"%s\": %s", s->st.instance, v.log);
        }
        dbt_info("instance \"%s\": client %s port %d refused: %s", s->st.instance,
                 s->st.client_addr, s->st.client_port, v.message);
        return send_fatal(s, v.sqlstate ? v.sqlstate : DBT_PG_SQLSTATE_INVALID_AUTHORIZATION,
                          v.message, NULL);
    }
    set_state(s, ps, PG_CONNECTING);
    return dbt_session_connect_backend(s, NULL, 0);
}

static dbt_res handle_first(struct dbt_session *s, struct pg_sess *ps)
{
    while (ps->state == PG_STARTUP && dbt_buf_avail(&s->client.in) > 0) {
        struct dbt_pg_first f;
        dbt_res r = dbt_pg_first_decode(dbt_buf_head(&s->client.in), dbt_buf_avail(&s->client.in),
                                        ps->flags, &f);
        switch (f.kind) {
        case DBT_PG_FIRST_NEED_MORE:
            return DBT_OK;
        case DBT_PG_FIRST_DIRECT_TLS:
            if (ps->flags != 0) {
                /* only the very first bytes of a connection may start direct TLS */
                return dbt_fail(DBT_E_PROTO, "TLS handshake after a negotiation request");
            }
            ps->direct_tls = true;
            set_state(s, ps, PG_CLIENT_TLS);
            return dbt_session_start_client_tls_direct(s);
        case DBT_PG_FIRST_REJECT:
            dbt_info("instance \"%s\": client %s port %d: %s", s->st.instance, s->st.client_addr,
                     s->st.client_port, f.reject.message);
            if (!f.reject.send) {
                return r; /* PostgreSQL only logs it and closes */
            }
            {
                struct dbt_buf b;
                dbt_buf_init(&b, 0);
                dbt_res er = dbt_pg_reject_encode(&b, &f.reject);
                if (dbt_ok(er)) {
                    er = dbt_session_send_client(s, dbt_buf_head(&b), dbt_buf_avail(&b));
                }
                dbt_buf_cleanup(&b);
                ps->state = PG_DONE;
                dbt_session_finish(s);
                return er;
            }
        case DBT_PG_FIRST_SSL_REQUEST: {
            dbt_buf_consume(&s->client.in, f.consumed);
            ps->flags |= DBT_PG_FIRST_SSL_DONE;
            char answer = s->inst->server_tls != NULL ? 'S' : 'N';
            dbt_res ar = dbt_session_send_client(s, &answer, 1);
            if (!dbt_ok(ar)) {
                return ar;
            }
            if (answer == 'N') {
                continue;
            }
            /*
             * CVE-2021-3935: "received unencrypted data after SSL request". PostgreSQL sends the
             * 'S', then refuses bytes that were already buffered, as they were not encrypted.
             */
            if (dbt_buf_avail(&s->client.in) > 0) {
                dbt_buf_reset(&s->client.in);
                dbt_warn("instance \"%s\": client %s port %d: %s", s->st.instance,
                         s->st.client_addr, s->st.client_port, DBT_PG_MSG_UNENCRYPTED_AFTER_SSL);
                return send_fatal(s, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION,
                                  DBT_PG_MSG_UNENCRYPTED_AFTER_SSL,
                                  DBT_PG_MSG_UNENCRYPTED_AFTER_SSL_DETAIL);
            }
            set_state(s, ps, PG_CLIENT_TLS);
            return dbt_session_start_client_tls(s);
        }
        case DBT_PG_FIRST_GSSENC_REQUEST: {
            dbt_buf_consume(&s->client.in, f.consumed);
            ps->flags |= DBT_PG_FIRST_GSS_DONE;
            char answer = 'N';
            dbt_res ar = dbt_session_send_client(s, &answer, 1);
            if (!dbt_ok(ar)) {
                return ar;
            }
            continue;
        }
        case DBT_PG_FIRST_CANCEL: {
            dbt_buf_consume(&s->client.in, f.consumed);
            struct dbt_cancel_target t;
            if (!dbt_cancel_lookup(f.cancel.pid, f.cancel.key, f.cancel.key_len, &t)) {
                dbt_info("instance \"%s\": cancel request for an unknown key (pid %u)",
                         s->st.instance, f.cancel.pid);
                return dbt_fail(DBT_E_NOT_FOUND, "unknown cancel key");
            }
            ps->cancel = malloc(sizeof(*ps->cancel));
            if (ps->cancel == NULL) {
                return dbt_fail(DBT_E_NOMEM, "out of memory");
            }
            *ps->cancel = f.cancel;
            /* on a shared address the request comes without a server name: it belongs to the
               instance whose session it cancels */
            dbt_session_set_instance_name(s, t.instance);
            set_state(s, ps, PG_CANCEL);
            return dbt_session_connect_backend(s, (const struct sockaddr *)&t.addr, t.addrlen);
        }
        case DBT_PG_FIRST_STARTUP: {
            dbt_res sr = dbt_buf_append(&ps->startup, dbt_buf_head(&s->client.in), f.consumed);
            if (!dbt_ok(sr)) {
                return sr;
            }
            /*
             * f.startup points into client.in; consuming only moves the offset (nothing is
             * read into the buffer until this callback returns), so it stays valid.
             */
            dbt_buf_consume(&s->client.in, f.consumed);
            return handle_startup(s, ps, &f.startup);
        }
        }
    }
    return DBT_OK;
}

/*
 * The backend offered SCRAM-SHA-256-PLUS, which the front hid, so a client able to bind answers
 * with the gs2 flag "y" ("I could bind, you did not offer it"), and a backend on TLS rightly
 * takes that for a downgrade ("SCRAM channel binding negotiation error"). The client binds to the
 * front's certificate, the server checks against its own: unless they are the same certificate
 * (binding_crosses), binding cannot cross the front. Say so, and what to do.
 */
static bool binding_refused(struct dbt_session *s, const struct dbt_pg_msg *m)
{
    struct dbt_pg_sasl_initial si;
    if (m->type != DBT_PG_MSG_SASL_INITIAL || !dbt_ok(dbt_pg_sasl_initial_decode(m, &si)) ||
        si.gs2_flag != 'y') {
        return false;
    }
    dbt_info("instance \"%s\": client %s: SCRAM channel binding refused: the database server "
             "uses TLS with another certificate than the front's",
             s->st.instance, s->st.client_addr);
    (void)send_fatal(s, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION,
                     "SCRAM channel binding cannot pass through dbtlsd to a database server "
                     "that uses TLS",
                     "The client binds to dbtlsd's certificate, and the server shows another. "
                     "Give the server the certificate dbtlsd serves (dbtls instances export), "
                     "connect with channel_binding=disable, or let dbtlsd reach the server "
                     "without TLS (for example over its unix socket).");
    return true;
}

/*
 * Channel binding can cross the front after all when both legs are TLS and the database server
 * shows the very certificate the front showed the client (it serves the instance's certificate,
 * `dbtls instances export`): tls-server-end-point binds to a hash of that certificate alone, so
 * the client's binding checks out at the server, and a man in the middle of the client's leg,
 * whose certificate differs, still fails it there.
 */
static bool binding_crosses(struct dbt_session *s)
{
    return s->client.tls != NULL && s->backend.tls != NULL &&
           dbt_tls_same_server_cert(s->client.tls, s->backend.tls);
}

/* ---- callbacks ---- */

static dbt_res pg_on_accept(struct dbt_session *s)
{
    struct pg_sess *ps = calloc(1, sizeof(*ps));
    if (ps == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    /* the length word counts itself: a packet may take 4 + 10000 bytes */
    dbt_buf_init(&ps->startup, DBT_PG_MAX_STARTUP_PACKET_LENGTH + 4);
    ps->deadline_ms = dbt_now_ms() + dbt_session_auth_timeout_ms();
    s->pstate = ps;
    /* the first packet is at most 10000 bytes; a little more lets pipelining be detected */
    s->client.in_max = DBT_PG_MAX_STARTUP_PACKET_LENGTH + 1024;
    set_state(s, ps, PG_STARTUP);
    return DBT_OK;
}

static dbt_res pg_on_client_data(struct dbt_session *s)
{
    struct pg_sess *ps = s->pstate;
    switch (ps->state) {
    case PG_STARTUP:
        return handle_first(s, ps);
    case PG_AUTH: {
        if (ps->plus_hidden) {
            struct dbt_pg_msg m;
            dbt_res r = dbt_pg_msg_frame(dbt_buf_head(&s->client.in), dbt_buf_avail(&s->client.in),
                                         DBT_PG_PREAUTH_MSG_MAX, &m);
            if (r.code == DBT_E_AGAIN) {
                return DBT_OK; /* the rest of it comes */
            }
            ps->plus_hidden = false;
            if (dbt_ok(r) && binding_refused(s, &m)) {
                return DBT_OK;
            }
        }
        /* authentication messages (password, SASL) go to the backend as they are */
        dbt_res r =
            dbt_session_send_backend(s, dbt_buf_head(&s->client.in), dbt_buf_avail(&s->client.in));
        dbt_buf_consume(&s->client.in, dbt_buf_avail(&s->client.in));
        return r;
    }
    case PG_CONNECTING:
    case PG_BACKEND_SSL:
    case PG_BACKEND_TLS:
        return DBT_OK; /* kept until the startup is forwarded */
    case PG_CANCEL:
    case PG_DONE:
        dbt_buf_reset(&s->client.in);
        return DBT_OK;
    case PG_CLIENT_TLS:
        return DBT_OK;
    }
    return DBT_OK;
}

static dbt_res pg_on_client_tls_done(struct dbt_session *s)
{
    struct pg_sess *ps = s->pstate;
    if (ps->direct_tls) {
        /* PostgreSQL 17: direct TLS without ALPN is refused (logged, no reply). */
        const char *alpn = dbt_session_client_alpn(s);
        if (strcmp(alpn, DBT_PG_ALPN) != 0) {
            dbt_warn("instance \"%s\": client %s port %d: %s", s->st.instance, s->st.client_addr,
                     s->st.client_port, DBT_PG_MSG_DIRECT_TLS_NO_ALPN);
            return dbt_fail(DBT_E_PROTO, DBT_PG_MSG_DIRECT_TLS_NO_ALPN);
        }
        ps->flags |= DBT_PG_FIRST_SSL_DONE;
    }
    ps->flags |= DBT_PG_FIRST_IN_TLS;
    set_state(s, ps, PG_STARTUP);
    return handle_first(s, ps);
}

static dbt_res pg_on_backend_connected(struct dbt_session *s, dbt_res r)
{
    struct pg_sess *ps = s->pstate;
    if (ps->state == PG_CANCEL) {
        if (!dbt_ok(r)) {
            dbt_warn("instance \"%s\": cancel request not forwarded: %s", s->st.instance,
                     dbt_errmsg());
            return r;
        }
        struct dbt_buf b;
        dbt_buf_init(&b, 0);
        dbt_res er = dbt_pg_cancel_encode(&b, ps->cancel);
        if (dbt_ok(er)) {
            er = dbt_session_send_backend(s, dbt_buf_head(&b), dbt_buf_avail(&b));
        }
        dbt_buf_cleanup(&b);
        dbt_info("instance \"%s\": cancel request for backend pid %u forwarded", s->st.instance,
                 ps->cancel->pid);
        /* the backend closes the connection once it has read the request */
        return er;
    }
    if (!dbt_ok(r)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "could not connect to the database server: %s", dbt_errmsg());
        dbt_log(dbt_front_backend_quiet(s->st.instance) ? DBT_LOG_DEBUG : DBT_LOG_WARN,
                "instance \"%s\": client %s port %d: %s", s->st.instance, s->st.client_addr,
                s->st.client_port, msg);
        return send_fatal(s, DBT_PG_SQLSTATE_CONNECTION_FAILURE, msg, NULL);
    }
    if (s->inst->backend_tls != NULL) {
        struct dbt_buf b;
        dbt_buf_init(&b, 0);
        struct dbt_wr w = dbt_wr_make(&b);
        dbt_wr_be32(&w, 8);
        dbt_wr_be32(&w, DBT_PG_SSL_REQUEST_CODE);
        dbt_res er = dbt_wr_finish(&w);
        if (dbt_ok(er)) {
            er = dbt_session_send_backend(s, dbt_buf_head(&b), dbt_buf_avail(&b));
        }
        dbt_buf_cleanup(&b);
        set_state(s, ps, PG_BACKEND_SSL);
        return er;
    }
    return forward_startup(s, ps);
}

static dbt_res pg_on_backend_tls_done(struct dbt_session *s, dbt_res r)
{
    struct pg_sess *ps = s->pstate;
    if (!dbt_ok(r)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "could not connect to the database server: %s", dbt_errmsg());
        return send_fatal(s, DBT_PG_SQLSTATE_CONNECTION_FAILURE, msg, NULL);
    }
    return forward_startup(s, ps);
}

/* Relays the backend's authentication phase message by message until ReadyForQuery. */
static dbt_res relay_auth(struct dbt_session *s, struct pg_sess *ps)
{
    struct dbt_buf *in = &s->backend.in;
    while (dbt_buf_avail(in) > 0) {
        struct dbt_pg_msg m;
        dbt_res r =
            dbt_pg_msg_frame(dbt_buf_head(in), dbt_buf_avail(in), DBT_PG_PREAUTH_MSG_MAX, &m);
        if (r.code == DBT_E_AGAIN) {
            return DBT_OK;
        }
        if (!dbt_ok(r)) {
            dbt_warn("instance \"%s\": invalid message from backend: %s", s->st.instance,
                     dbt_errmsg());
            return send_fatal(s, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION,
                              "invalid message from the database server", NULL);
        }
        bool forwarded = false;
        if (m.type == DBT_PG_MSG_AUTHENTICATION) {
            struct dbt_pg_auth a;
            r = dbt_pg_auth_decode(&m, &a);
            if (!dbt_ok(r)) {
                return send_fatal(s, DBT_PG_SQLSTATE_PROTOCOL_VIOLATION,
                                  "invalid authentication request from the database server", NULL);
            }
            if (a.code == DBT_PG_AUTH_SASL && binding_crosses(s)) {
                /* forwarded as it is: SCRAM-SHA-256-PLUS stays on offer */
            } else if (a.code == DBT_PG_AUTH_SASL) {
                size_t left = 0, before = s->client.out.len;
                r = dbt_pg_sasl_filter(&m, &s->client.out, &left);
                if (!dbt_ok(r)) {
                    return r;
                }
                ps->plus_hidden = s->client.out.len - before < m.total;
                if (left == 0) {
                    return send_fatal(
                        s, DBT_PG_SQLSTATE_FEATURE_NOT_SUPPORTED,
                        "the database server offers only SCRAM-SHA-256-PLUS (channel binding), "
                        "which cannot work through a TLS-terminating front",
                        NULL);
                }
                forwarded = true;
            } else if (a.code == DBT_PG_AUTH_OK) {
                ps->authenticated = true;
            }
        } else if (m.type == DBT_PG_MSG_BACKEND_KEY_DATA) {
            struct dbt_pg_cancel_key k;
            if (dbt_ok(dbt_pg_backend_key_decode(&m, &k)) && ps->cancel_token == 0) {
                if (dbt_ok(dbt_cancel_register(
                        k.pid, k.key, k.key_len, (const struct sockaddr *)&s->backend_peer,
                        s->backend_peerlen, s->st.instance, &ps->cancel_token))) {
                    ps->key_pid = k.pid;
                }
            }
        }
        if (!forwarded) {
            r = dbt_session_send_client(s, dbt_buf_head(in), m.total);
            if (!dbt_ok(r)) {
                return r;
            }
        }
        dbt_buf_consume(in, m.total);
        if (m.type == DBT_PG_MSG_READY_FOR_QUERY) {
            ps->state = PG_DONE;
            dbt_session_relay(s);
            return DBT_OK;
        }
    }
    return DBT_OK;
}

static dbt_res pg_on_backend_data(struct dbt_session *s)
{
    struct pg_sess *ps = s->pstate;
    struct dbt_buf *in = &s->backend.in;
    switch (ps->state) {
    case PG_BACKEND_SSL: {
        uint8_t c = dbt_buf_head(in)[0];
        dbt_buf_consume(in, 1);
        if (c == 'S') {
            set_state(s, ps, PG_BACKEND_TLS);
            return dbt_session_start_backend_tls(s);
        }
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "could not connect to the database server: backend %s refused TLS",
                 s->inst->rt->backend);
        return send_fatal(s, DBT_PG_SQLSTATE_CONNECTION_FAILURE, msg, NULL);
    }
    case PG_AUTH:
        return relay_auth(s, ps);
    case PG_CANCEL: /* the cancel is sent: whatever else the peer says is dropped */
    default:
        dbt_buf_reset(in);
        return DBT_OK;
    }
}

static void pg_on_timeout(struct dbt_session *s)
{
    struct pg_sess *ps = s->pstate;
    dbt_info("instance \"%s\": client %s port %d: authentication timeout in state %s",
             s->st.instance, s->st.client_addr, s->st.client_port, state_names[ps->state]);
    if (ps->state == PG_STARTUP || ps->state == PG_CLIENT_TLS || ps->state == PG_CANCEL ||
        s->client.state != DBT_LEG_OPEN) {
        /* PostgreSQL exits silently when the startup packet does not arrive in time */
        ps->state = PG_DONE;
        dbt_session_finish(s);
        dbt_buf_reset(&s->client.out);
        return;
    }
    (void)send_fatal(s, "57014", "canceling authentication due to timeout", NULL);
}

static void pg_on_close(struct dbt_session *s)
{
    struct pg_sess *ps = s->pstate;
    if (ps == NULL) {
        return;
    }
    dbt_cancel_unregister(ps->key_pid, ps->cancel_token);
    dbt_buf_cleanup(&ps->startup);
    free(ps->cancel);
    free(ps);
    s->pstate = NULL;
}

const struct dbt_proto dbt_pg_proto = {
    .name = "postgres",
    .inst_prepare = pg_inst_prepare,
    .inst_free = pg_inst_free,
    .on_accept = pg_on_accept,
    .on_client_data = pg_on_client_data,
    .on_client_tls_done = pg_on_client_tls_done,
    .on_backend_connected = pg_on_backend_connected,
    .on_backend_data = pg_on_backend_data,
    .on_backend_tls_done = pg_on_backend_tls_done,
    .on_timeout = pg_on_timeout,
    .on_close = pg_on_close,
};
