/*
 * net.c - the socket helpers of net.h.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

dbt_res dbt_addr_parse(const char *text, struct dbt_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0') {
        return dbt_fail(DBT_E_INVALID, "empty address");
    }
    if (text[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
        size_t n = strlen(text);
        if (n >= sizeof(un->sun_path)) {
            return dbt_fail(DBT_E_INVALID, "unix socket path \"%s\" is too long (max %zu bytes)",
                            text, sizeof(un->sun_path) - 1);
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, text, n + 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return DBT_OK;
    }
    char host[256];
    const char *port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            return dbt_fail(DBT_E_INVALID, "address \"%s\": expected [v6addr]:port", text);
        }
        size_t hl = (size_t)(close - text - 1);
        if (hl == 0 || hl >= sizeof(host)) {
            return dbt_fail(DBT_E_INVALID, "address \"%s\": bad IPv6 host", text);
        }
        memcpy(host, text + 1, hl);
        host[hl] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            return dbt_fail(DBT_E_INVALID,
                            "address \"%s\": expected host:port or a unix socket path", text);
        }
        size_t hl = (size_t)(colon - text);
        if (hl == 0 || hl >= sizeof(host)) {
            return dbt_fail(DBT_E_INVALID, "address \"%s\": bad host", text);
        }
        memcpy(host, text, hl);
        host[hl] = '\0';
        if (strchr(host, ':') != NULL) {
            return dbt_fail(DBT_E_INVALID, "address \"%s\": write IPv6 addresses as [addr]:port",
                            text);
        }
        port = colon + 1;
    }
    char *end = NULL;
    errno = 0;
    long pn = strtol(port, &end, 10);
    if (port[0] == '\0' || *end != '\0' || errno != 0 || pn < 0 || pn > 65535) {
        return dbt_fail(DBT_E_INVALID, "address \"%s\": bad port \"%s\"", text, port);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        return dbt_fail(DBT_E_INVALID, "address \"%s\": cannot resolve \"%s\": %s", text, host,
                        gai_strerror(rc));
    }
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(out->host, sizeof(out->host), "%s", host);
    return DBT_OK;
}

/* SO_KEEPALIVE and the timings tcp sets; the first setsockopt that fails, as an errno. */
static int set_tcp_opts(int fd, const struct dbt_net_tcp_opts *tcp)
{
    if (tcp == NULL) {
        return 0;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0) {
        return errno;
    }
    static const int names[] = {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT};
    const int values[] = {tcp->keepalives_idle, tcp->keepalives_interval, tcp->keepalives_count,
                          tcp->user_timeout_ms};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (values[i] > 0 &&
            setsockopt(fd, IPPROTO_TCP, names[i], &values[i], sizeof(values[i])) < 0) {
            return errno;
        }
    }
    return 0;
}

dbt_res dbt_net_listen(const struct dbt_addr *a, int backlog, const struct dbt_net_tcp_opts *tcp,
                       int *fd_out)
{
    char where[300];
    dbt_net_addr_fmt((const struct sockaddr *)&a->ss, a->len, where, sizeof(where));
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return dbt_fail(DBT_E_IO, "listen %s: socket: %s", where, strerror(errno));
    }
    int one = 1;
    if (a->ss.ss_family != AF_UNIX) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
            int e = errno;
            close(fd);
            return dbt_fail(DBT_E_IO, "listen %s: SO_REUSEPORT: %s", where, strerror(e));
        }
        if (a->ss.ss_family == AF_INET6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        /* accepted sockets inherit these: no setsockopt per connection */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        int e = set_tcp_opts(fd, tcp);
        if (e != 0) {
            close(fd);
            return dbt_fail(DBT_E_IO, "listen %s: TCP keepalive settings: %s", where, strerror(e));
        }
    }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
        int e = errno;
        close(fd);
        return dbt_fail(DBT_E_IO, "could not bind %s: %s", where, strerror(e));
    }
    if (listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return dbt_fail(DBT_E_IO, "could not listen on %s: %s", where, strerror(e));
    }
    *fd_out = fd;
    return DBT_OK;
}

dbt_res dbt_net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *peerlen, int *fd_out)
{
    *peerlen = sizeof(*peer);
    int fd = accept4(lfd, (struct sockaddr *)peer, peerlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) {
            return (dbt_res){DBT_E_AGAIN};
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            return dbt_fail(DBT_E_LIMIT, "accept: %s", strerror(errno));
        }
        return dbt_fail(DBT_E_IO, "accept: %s", strerror(errno));
    }
    *fd_out = fd;
    return DBT_OK;
}

dbt_res dbt_net_connect(const struct sockaddr *sa, socklen_t len,
                        const struct dbt_net_tcp_opts *tcp, int *fd_out, bool *in_progress)
{
    char where[300];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        dbt_net_addr_fmt(sa, len, where, sizeof(where));
        return dbt_fail(DBT_E_IO, "connect %s: socket: %s", where, strerror(errno));
    }
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)set_tcp_opts(fd, tcp); /* checked when the listeners took the same values */
    }
    *in_progress = false;
    if (connect(fd, sa, len) < 0) {
        if (errno == EINPROGRESS || errno == EAGAIN) {
            *in_progress = true;
        } else {
            int e = errno;
            close(fd);
            dbt_net_addr_fmt(sa, len, where, sizeof(where));
            return dbt_fail(DBT_E_IO, "connection to %s failed: %s", where, strerror(e));
        }
    }
    *fd_out = fd;
    return DBT_OK;
}

dbt_res dbt_net_connect_result(int fd)
{
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) {
        err = errno;
    }
    if (err != 0) {
        return dbt_fail(DBT_E_IO, "%s", strerror(err));
    }
    return DBT_OK;
}

/* The address bytes of an IPv4 or IPv6 sockaddr (IPv4-mapped IPv6 as IPv4), NULL otherwise. */
static const uint8_t *addr_bytes(const struct sockaddr *a, int *family)
{
    if (a->sa_family == AF_INET) {
        *family = AF_INET;
        return (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            *family = AF_INET;
            return in6->s6_addr + 12;
        }
        *family = AF_INET6;
        return in6->s6_addr;
    }
    return NULL;
}

dbt_res dbt_net_cidr_parse(const char *text, struct dbt_net_cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof(*out));
    if (hl == 0 || hl >= sizeof(host)) {
        return dbt_fail(DBT_E_INVALID, "\"%s\" is not an IP address or range", text);
    }
    memcpy(host, text, hl);
    host[hl] = '\0';
    uint8_t *bytes;
    int max;
    struct sockaddr_in *in = (struct sockaddr_in *)&out->net;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->net;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        bytes = (uint8_t *)&in->sin_addr;
        max = 32;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            return dbt_fail(DBT_E_INVALID, "\"%s\": write an IPv4 range in its IPv4 form", text);
        }
        in6->sin6_family = AF_INET6;
        bytes = in6->sin6_addr.s6_addr;
        max = 128;
    } else {
        return dbt_fail(DBT_E_INVALID, "\"%s\" is not an IP address or range", text);
    }
    out->bits = max;
    if (slash != NULL) {
        char *end = NULL;
        long b = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || b > max) {
            return dbt_fail(DBT_E_INVALID, "\"%s\": invalid prefix length (0 to %d)", text, max);
        }
        out->bits = (int)b;
    }
    for (int i = out->bits; i < max; i++) {
        bytes[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    }
    return DBT_OK;
}

bool dbt_net_cidr_match(const struct dbt_net_cidr *c, const struct sockaddr *a)
{
    int fa = 0, fc = 0;
    const uint8_t *pa = addr_bytes(a, &fa);
    const uint8_t *pc = addr_bytes((const struct sockaddr *)&c->net, &fc);
    if (pa == NULL || pc == NULL || fa != fc) {
        return false;
    }
    for (int i = 0; i < c->bits; i++) {
        uint8_t m = (uint8_t)(0x80u >> (i % 8));
        if ((pa[i / 8] & m) != (pc[i / 8] & m)) {
            return false;
        }
    }
    return true;
}

void dbt_net_addr_str(const struct sockaddr *sa, socklen_t len, char *host, size_t hostlen,
                      int *port)
{
    *port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)hostlen);
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, (socklen_t)hostlen);
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)hostlen);
        }
        *port = ntohs(in6->sin6_port);
    } else {
        snprintf(host, hostlen, "[local]");
    }
}

void dbt_net_addr_fmt(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        snprintf(out, outlen, "%.*s", (int)sizeof(un->sun_path), un->sun_path);
        return;
    }
    char host[INET6_ADDRSTRLEN];
    int port;
    dbt_net_addr_str(sa, len, host, sizeof(host), &port);
    if (sa->sa_family == AF_INET6 && strchr(host, ':') != NULL) {
        snprintf(out, outlen, "[%s]:%d", host, port);
    } else {
        snprintf(out, outlen, "%s:%d", host, port);
    }
}
