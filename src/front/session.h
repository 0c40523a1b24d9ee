/*
 * session.h - one client connection through the TLS front: the engine/protocol split.
 *
 * A session has two halves, the client leg and the backend leg. Each leg is a transport (a socket,
 * plain or TLS) with an input buffer (bytes received, already decrypted) and an output buffer
 * (bytes queued by the protocol). The engine (session.c) owns sockets, TLS, buffers, the epoll
 * registration, partial writes, SSL_pending draining, deadlines and teardown. A protocol
 * (pg_session.c for PostgreSQL, my_*.c for MySQL/MariaDB) is a table of callbacks that looks at
 * the input buffers, consumes what it parses, queues bytes with the send helpers, and finally
 * calls dbt_session_relay(): from then on the engine moves bytes between the legs itself, the
 * input buffer of one leg being written straight to the other leg's socket (no per-message copy),
 * and no protocol callback runs again except on_close.
 *
 * Threading: a session lives on one worker thread and every callback runs there. Callbacks must
 * not block. The generation (configuration) a session started with stays referenced until it
 * closes, so s->inst and everything it points to are valid for the session's whole life.
 *
 * Errors: a callback that returns an error closes the session at once (bytes already queued to the
 * client are flushed first, bounded by a short deadline). To send a final message and close, queue
 * it with dbt_session_send_client and call dbt_session_finish.
 */
#ifndef DBT_FRONT_SESSION_H
#define DBT_FRONT_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/err.h"
#include "ctl/runtime.h"
#include "ev/ev.h"

struct dbt_session;
struct dbt_tls_conn;
struct dbt_tls_ctx;
struct dbt_worker;
struct dbt_gen;

/* Largest chunk read or written at a time in relay mode (one TLS record at most). */
#define DBT_SESSION_RELAY_CHUNK 16384
/* Default maximum of a leg's input buffer before the relay (the protocol may lower/raise it). */
#define DBT_SESSION_PREAUTH_MAX 65536

/*
 * One instance inside a generation: the snapshot of its configuration and what was built from it
 * (SSL_CTX, resolved backend address, the protocol's compiled rules). Immutable.
 */
struct dbt_gen_inst {
    const struct dbt_rt_instance *rt;     /* owned by the generation's dbt_rt_config */
    const struct dbt_proto *proto;        /* chosen by rt->engine */
    struct dbt_tls_ctx *server_tls;       /* client-facing SSL_CTX (chain, key, client CA + CRL) */
    bool reused;                          /* server_tls is the previous generation's */
    struct dbt_tls_ctx *backend_tls;      /* backend-facing SSL_CTX (verify-full) or NULL = plain */
    struct sockaddr_storage backend_addr; /* resolved when the generation was built */
    socklen_t backend_addrlen;
    char backend_host[256]; /* host name for backend TLS verify-full ("" for unix sockets) */
    void *proto_conf;       /* built by proto->inst_prepare (e.g. parsed hba + ident) */
    /*
     * Instances sharing this one's listen address (PostgreSQL only): the client's TLS server name
     * chooses among them; connections without one (plaintext, no SNI, a name no instance has) go
     * to the first, the one created first. NULL next = the last of the group.
     */
    const struct dbt_gen_inst *listen_first;
    const struct dbt_gen_inst *listen_next;
    bool listen_shared; /* the group has more than one instance */
    /* on listen_first of a shared address: its DNS endpoints, sorted without regard to case,
       for dbt_gen_sni_find (a fleet behind one port: O(log n) per handshake) */
    const struct dbt_gen_name *names;
    size_t n_names;
};

struct dbt_gen_name {
    const char *name; /* an endpoint, e.g. "orders.example.com" or "*.example.com" */
    const struct dbt_gen_inst *inst;
};

/* Callbacks of a wire protocol. Any may be NULL when it has nothing to do. */
struct dbt_proto {
    const char *name; /* "postgres", "mysql" */
    /* the server speaks first (MySQL's greeting): nothing is read from the client until epoll
       reports bytes, rather than a read at accept that ends in EAGAIN */
    bool server_speaks_first;
    /*
     * Builds the protocol's per-instance configuration (access rules...) when a generation is
     * built; an error (with a message naming what is wrong) makes the whole generation invalid.
     */
    dbt_res (*inst_prepare)(const struct dbt_rt_instance *rt, void **out);
    void (*inst_free)(void *conf);
    /* Session accepted: s->client is connected (plain). MySQL connects the backend here. */
    dbt_res (*on_accept)(struct dbt_session *s);
    /* New bytes in s->client.in (decrypted if TLS is on). Consume what is parsed. */
    dbt_res (*on_client_data)(struct dbt_session *s);
    /* The client TLS handshake finished (see dbt_session_start_client_tls). */
    dbt_res (*on_client_tls_done)(struct dbt_session *s);
    /*
     * The backend connect finished: r is OK, or the failure (dbt_errmsg() says why, naming the
     * backend address). On failure the protocol sends its error to the client and finishes.
     */
    dbt_res (*on_backend_connected)(struct dbt_session *s, dbt_res r);
    /* New bytes in s->backend.in. */
    dbt_res (*on_backend_data)(struct dbt_session *s);
    /* The backend TLS handshake finished (see dbt_session_start_backend_tls). */
    dbt_res (*on_backend_tls_done)(struct dbt_session *s, dbt_res r);
    /* The state deadline passed. Default (NULL): close. The protocol may send an error+finish. */
    void (*on_timeout)(struct dbt_session *s);
    /* The session is being freed: release pstate (and anything else the protocol holds). */
    void (*on_close)(struct dbt_session *s);
    /*
     * Relay mode, after each client read: client.in holds exactly the bytes just read, not yet
     * forwarded. For checks that must see every command without copying (MySQL's
     * COM_CHANGE_USER re-checks REQUIRE rules). An error closes the session as for the others.
     */
    dbt_res (*on_relay_client_data)(struct dbt_session *s);
    /*
     * Before the relay, the backend closed (or its socket failed): whatever it sent was already
     * given to on_backend_data. The protocol may queue an error for the client and finish.
     */
    dbt_res (*on_backend_eof)(struct dbt_session *s);
};

enum dbt_leg_state {
    DBT_LEG_NONE,        /* no socket (backend before connect) */
    DBT_LEG_CONNECTING,  /* non-blocking connect in progress */
    DBT_LEG_HANDSHAKING, /* TLS handshake in progress */
    DBT_LEG_OPEN,        /* plain or TLS, established */
    DBT_LEG_CLOSED,
};

/* One half of a session. Protocols read `in` and use the helpers; the rest is the engine's. */
struct dbt_leg {
    struct dbt_ev_io io;
    int fd; /* the socket (kept when io is unregistered after a hangup) */
    enum dbt_leg_state state;
    struct dbt_tls_conn *tls; /* NULL while plain */
    struct dbt_buf in;        /* received bytes not yet consumed */
    struct dbt_buf out;       /* bytes queued for this leg by the protocol */
    size_t in_max;            /* input buffer limit before relay */
    bool eof;                 /* peer closed (read returned 0) */
    bool rd_wants_write;      /* TLS renegotiation-style cross waits */
    bool wr_wants_read;
    bool hs_wants_write;
    bool rd_idle;      /* all read, nothing buffered in user space: read again on EPOLLIN */
    uint32_t interest; /* events currently registered */
};

/*
 * The client certificate of a session as pg_stat_ssl shows it. A session holds one only when
 * the client presented a certificate (most do not): 600 bytes less per connection otherwise.
 */
struct dbt_session_cert {
    char client_dn[256];
    char client_serial[80];
    char issuer_dn[256];
};

/* Status fields shown by `dbtls connections` (GET /v1/connections). Guarded by worker lock. */
struct dbt_session_status {
    char instance[64];
    char client_addr[64];
    int client_port;
    char user[64];
    char database[64];
    char application_name[64];
    bool ssl;
    char version[16];
    char cipher[64];
    int bits;
    char server_cert_sha1[41]; /* the server certificate the client was served (hex SHA-1) */
    char server_name[128];     /* the TLS server name (SNI) the client asked for, "" if none */
    int64_t backend_start;     /* unix seconds the session started */
    char state[24];            /* name of the protocol state */
};

struct dbt_session {
    struct dbt_leg client;
    struct dbt_leg backend;
    struct dbt_worker *worker;
    struct dbt_gen *gen;             /* referenced for the session's life */
    const struct dbt_gen_inst *inst; /* this session's instance in gen */
    struct sockaddr_storage peer;    /* client address */
    socklen_t peerlen;
    struct sockaddr_storage backend_peer; /* address the backend leg connected to */
    socklen_t backend_peerlen;
    void *pstate; /* the protocol's per-session state */
    struct dbt_ev_timer deadline;
    bool relay;                 /* bytes flow without protocol callbacks */
    bool client_tls_direct;     /* client.in holds the start of the ClientHello */
    bool finishing;             /* flush client.out, then close */
    bool closed;                /* freed at the end of the loop iteration */
    bool backend_eof_told;      /* on_backend_eof ran */
    bool proxy_pending;         /* a load balancer's PROXY header comes first (not read yet) */
    _Atomic uint64_t bytes_in;  /* from client */
    _Atomic uint64_t bytes_out; /* to client */
    uint64_t bytes_in_at_tls;   /* bytes_in when the client TLS handshake completed */
    uint64_t started_ms;        /* dbt_now_ms() at accept: the session time logged */
    _Atomic uint64_t buffered;  /* bytes the legs' buffers hold allocated, after the last drive */
    struct dbt_session_status st;
    struct dbt_session_cert *cert;   /* the client's certificate; NULL when it showed none */
    struct dbt_session *prev, *next; /* worker's list */
};

/* --- helpers a protocol calls (worker thread only) --- */

/* Queues bytes for the client / the backend (copied). LIMIT when the queue would grow too big. */
dbt_res dbt_session_send_client(struct dbt_session *s, const void *p, size_t n) DBT_WUR;
dbt_res dbt_session_send_backend(struct dbt_session *s, const void *p, size_t n) DBT_WUR;

/*
 * Starts TLS on the client leg with the instance's SSL_CTX of this session's generation. Refuses
 * (PROTO) when the client already sent bytes that were not consumed: plaintext pipelined after
 * a TLS request would otherwise be treated as if it came over TLS (CVE-2021-3935, CVE-2021-23214).
 * Bytes already queued in client.out (e.g. PostgreSQL's 'S') are sent before the handshake.
 * on_client_tls_done runs when the handshake completes; a handshake failure is logged (client
 * address, reason, certificate subject) and closes the session.
 */
dbt_res dbt_session_start_client_tls(struct dbt_session *s) DBT_WUR;

/*
 * Direct TLS (PostgreSQL 17 sslnegotiation=direct): the bytes in client.in are the start of the
 * client's TLS ClientHello; they are handed to OpenSSL first, then the handshake continues on
 * the socket. on_client_tls_done runs as for dbt_session_start_client_tls.
 */
dbt_res dbt_session_start_client_tls_direct(struct dbt_session *s) DBT_WUR;

/*
 * Connects the backend (non-blocking) to the instance's backend address, or to addr when not
 * NULL (cancel routing). on_backend_connected reports the outcome.
 */
dbt_res dbt_session_connect_backend(struct dbt_session *s, const struct sockaddr *addr,
                                    socklen_t addrlen) DBT_WUR;

/* Starts TLS (client side, verify-full against inst->backend_tls) on the backend leg. */
dbt_res dbt_session_start_backend_tls(struct dbt_session *s) DBT_WUR;

/*
 * Switches to relay: unconsumed client.in goes to the backend, unconsumed backend.in to the
 * client, then bytes are moved both ways by the engine. Clears the deadline.
 */
void dbt_session_relay(struct dbt_session *s);

/* Sends what is queued for the client, then closes (bounded by a short deadline). */
void dbt_session_finish(struct dbt_session *s);

/* Names the protocol state (logs, status) and sets its deadline; timeout_ms 0 = none. */
void dbt_session_set_state(struct dbt_session *s, const char *name, uint64_t timeout_ms);

/* Status fields (copied, truncated to fit). */
void dbt_session_set_user(struct dbt_session *s, const char *user, size_t n);
void dbt_session_set_database(struct dbt_session *s, const char *db, size_t n);
void dbt_session_set_application_name(struct dbt_session *s, const char *app, size_t n);

/* Names the instance the session is shown and logged under (a CancelRequest takes the name of
   the session it cancels). */
void dbt_session_set_instance_name(struct dbt_session *s, const char *name);

/*
 * --client-info: what the backend is told of the client, as (name, value) pairs: dbtls.client_addr,
 * client_port, ssl, ssl_version, ssl_cipher, client_dn, client_serial, issuer_dn, instance. The
 * values point into s (and port, which the caller provides); PostgreSQL sends them as startup
 * parameters, MySQL as connection attributes.
 */
#define DBT_CLIENT_INFO_PREFIX "dbtls."
#define DBT_CLIENT_INFO_N 9
void dbt_session_client_info(const struct dbt_session *s, char port[16],
                             const char *out[DBT_CLIENT_INFO_N][2]);

/* The client's address as text ("127.0.0.1", "::1", "[local]") and port. */
const char *dbt_session_client_host(const struct dbt_session *s);

/* The client certificate after the TLS handshake (see tls/tls.h). */
bool dbt_session_client_tls(const struct dbt_session *s);
/* The client certificate's CN into out ("" when none); false when no verified certificate. */
bool dbt_session_client_cert_cn(const struct dbt_session *s, char *out, size_t outlen);
/* Its subject as pg_hba.conf's clientname=DN matches it (dbt_tls_peer_dn); false ("") when no
 * verified certificate or it does not fit in outlen. */
bool dbt_session_client_cert_dn(const struct dbt_session *s, char *out, size_t outlen);
/* The verified client certificate's subject and issuer as RFC 2253 DNs ("CN=alice,O=dbtls"),
 * each into cap bytes; false (both "") when there is no verified certificate. */
bool dbt_session_client_cert_dns(const struct dbt_session *s, char *subject, char *issuer,
                                 size_t cap);
/* The ALPN protocol the client selected ("" when none). */
const char *dbt_session_client_alpn(const struct dbt_session *s);

/* Pre-authentication deadline (ms) configured with --auth-timeout. */
uint64_t dbt_session_auth_timeout_ms(void);

/* The protocol table of an engine name ("postgres", "mysql", "mariadb"), or NULL. */
const struct dbt_proto *dbt_proto_for_engine(const char *engine);

extern const struct dbt_proto dbt_pg_proto;
/* Defined by the MySQL front (src/front/my_*.c) when linked; weak so the daemon builds without. */
extern const struct dbt_proto dbt_my_proto __attribute__((weak));

#endif
