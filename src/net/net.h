/*
 * net.h - sockets for the TLS front: address parsing ("host:port", "[v6]:port", unix socket
 * path), non-blocking listeners with SO_REUSEPORT (one per worker), non-blocking accept and
 * connect, and printable peer addresses. No protocol knowledge here.
 */
#ifndef DBT_NET_NET_H
#define DBT_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "base/err.h"

struct dbt_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char host[256]; /* the host part as written ("" for unix sockets), for TLS verify-full */
};

/*
 * Parses "host:port", "[v6addr]:port" or an absolute unix socket path ("/run/pg/.s.PGSQL.5432").
 * Host names are resolved with getaddrinfo (blocking: call it off the workers, e.g. while building
 * a generation). INVALID with a message naming the text and why.
 */
dbt_res dbt_addr_parse(const char *text, struct dbt_addr *out) DBT_WUR;

/*
 * What TCP connections of the front carry besides TCP_NODELAY, as PostgreSQL sets them on its
 * own: SO_KEEPALIVE, so that a peer that vanished without a FIN or RST (a host powered off, a
 * NAT or firewall that forgot the flow) is found out and its session closed, and the settings
 * of PostgreSQL's tcp_keepalives_idle / _interval / _count and tcp_user_timeout. 0 in a field
 * keeps the system's default (Linux: probes after 2 hours idle, every 75 s, 9 of them).
 */
struct dbt_net_tcp_opts {
    int keepalives_idle;     /* seconds idle before the first probe (TCP_KEEPIDLE) */
    int keepalives_interval; /* seconds between probes (TCP_KEEPINTVL) */
    int keepalives_count;    /* unanswered probes before the connection is dropped */
    int user_timeout_ms;     /* sent data unacknowledged this long drops it (TCP_USER_TIMEOUT) */
};

/* Bounds of the fields (Linux's): 0 (system default) to these. */
#define DBT_NET_KEEPALIVE_MAX_S 32767
#define DBT_NET_KEEPALIVE_MAX_COUNT 127

/*
 * A non-blocking, close-on-exec listening socket with SO_REUSEADDR + SO_REUSEPORT (and, for TCP,
 * TCP_NODELAY and tcp (NULL: none of it), which accepted connections inherit).
 */
dbt_res dbt_net_listen(const struct dbt_addr *a, int backlog, const struct dbt_net_tcp_opts *tcp,
                       int *fd_out) DBT_WUR;

/*
 * Accepts one connection (non-blocking, close-on-exec; TCP_NODELAY for TCP, set on the listener
 * and inherited). AGAIN when nothing is pending; LIMIT when out of file descriptors or memory (the
 * pending connection stays queued: stop watching the listener for a moment); IO otherwise (the
 * listener stays usable).
 */
dbt_res dbt_net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *peerlen,
                       int *fd_out) DBT_WUR;

/*
 * Starts a non-blocking connect (TCP: TCP_NODELAY and tcp, NULL for none). *in_progress is true
 * when the caller must wait for writability and then call dbt_net_connect_result.
 */
dbt_res dbt_net_connect(const struct sockaddr *sa, socklen_t len,
                        const struct dbt_net_tcp_opts *tcp, int *fd_out, bool *in_progress) DBT_WUR;
/* The outcome of a connect that was in progress (SO_ERROR). */
dbt_res dbt_net_connect_result(int fd) DBT_WUR;

/* An address range: "10.0.0.0/8", "fd00::/8", or one address ("192.0.2.7" = /32). */
struct dbt_net_cidr {
    struct sockaddr_storage net; /* the address, host bits cleared */
    int bits;
};
/* Parses one range; INVALID naming the text and why. */
dbt_res dbt_net_cidr_parse(const char *text, struct dbt_net_cidr *out) DBT_WUR;
/* Whether a (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4) lies in c. */
bool dbt_net_cidr_match(const struct dbt_net_cidr *c, const struct sockaddr *a);

/* "127.0.0.1" / "::1" (IPv4-mapped shown as IPv4) / "[local]" and the port (0 for unix). */
void dbt_net_addr_str(const struct sockaddr *sa, socklen_t len, char *host, size_t hostlen,
                      int *port);

/* "host:port", "[v6]:port" or the socket path, for messages. */
void dbt_net_addr_fmt(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);

#endif
