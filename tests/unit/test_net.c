/*
 * test_net.c - addresses ("host:port", "[v6]:port", unix paths) with their errors, REUSEPORT
 * listeners (two on one port), non-blocking connect/accept (TCP and unix), refused connects,
 * printable peer addresses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "net/net.h"

static void test_parse(void)
{
    struct dbt_addr a;
    CHECK_OK(dbt_addr_parse("127.0.0.1:5432", &a));
    CHECK(a.ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&a.ss)->sin_port) == 5432);
    CHECK(strcmp(a.host, "127.0.0.1") == 0);
    CHECK_OK(dbt_addr_parse("[::1]:6432", &a));
    CHECK(a.ss.ss_family == AF_INET6 && strcmp(a.host, "::1") == 0);
    CHECK_OK(dbt_addr_parse("localhost:1", &a));
    CHECK(strcmp(a.host, "localhost") == 0);
    CHECK_OK(dbt_addr_parse("/run/postgresql/.s.PGSQL.5432", &a));
    CHECK(a.ss.ss_family == AF_UNIX && a.host[0] == '\0');
    char out[300];
    dbt_net_addr_fmt((struct sockaddr *)&a.ss, a.len, out, sizeof(out));
    CHECK(strcmp(out, "/run/postgresql/.s.PGSQL.5432") == 0);

    const char *bad[] = {"",
                         "5432",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "127.0.0.1:-1",
                         "127.0.0.1:54x",
                         ":5432",
                         "::1:5432",
                         "[::1]5432",
                         "[]:5432",
                         "no-such-host.invalid:5432"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad); i++) {
        dbt_res r = dbt_addr_parse(bad[i], &a);
        CHECK(r.code == DBT_E_INVALID);
        if (bad[i][0] != '\0') {
            CHECK(strstr(dbt_errmsg(), bad[i]) != NULL);
        }
    }
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    CHECK_ERR(dbt_addr_parse(longpath, &a), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "too long") != NULL);
}

static int wait_fd(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev};
    return poll(&p, 1, 2000);
}

/* The socket's keepalive state is what tcp asked for (SO_KEEPALIVE on, each timing). */
static void check_tcp_opts(int fd, const struct dbt_net_tcp_opts *tcp)
{
    int v = 0;
    socklen_t l = sizeof(v);
    CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &l) == 0 && v == 1);
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &l) == 0 && v == tcp->keepalives_idle);
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &l) == 0 && v == tcp->keepalives_interval);
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &l) == 0 && v == tcp->keepalives_count);
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &l) == 0 && v == tcp->user_timeout_ms);
}

static void roundtrip(const struct dbt_addr *a)
{
    const struct dbt_net_tcp_opts tcp = {.keepalives_idle = 7,
                                         .keepalives_interval = 3,
                                         .keepalives_count = 4,
                                         .user_timeout_ms = 9000};
    int l1 = -1, c = -1, s = -1;
    CHECK_OK(dbt_net_listen(a, 16, &tcp, &l1));
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(l1, (struct sockaddr *)&bound, &bl);
    struct sockaddr_storage peer;
    socklen_t pl;
    CHECK_ERR(dbt_net_accept(l1, &peer, &pl, &s), DBT_E_AGAIN);
    bool inprog = false;
    CHECK_OK(dbt_net_connect((struct sockaddr *)&bound, bl, &tcp, &c, &inprog));
    if (inprog) {
        CHECK(wait_fd(c, POLLOUT) == 1);
        CHECK_OK(dbt_net_connect_result(c));
    }
    CHECK(wait_fd(l1, POLLIN) == 1);
    CHECK_OK(dbt_net_accept(l1, &peer, &pl, &s));
    CHECK(write(c, "hi", 2) == 2);
    CHECK(wait_fd(s, POLLIN) == 1);
    char buf[4];
    CHECK(read(s, buf, sizeof(buf)) == 2);
    char host[64];
    int port = -1;
    dbt_net_addr_str((struct sockaddr *)&peer, pl, host, sizeof(host), &port);
    if (a->ss.ss_family == AF_INET) {
        CHECK(strcmp(host, "127.0.0.1") == 0 && port > 0);
        /* Nagle off on accepted connections (inherited from the listener) */
        int nodelay = 0;
        socklen_t nl = sizeof(nodelay);
        CHECK(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &nodelay, &nl) == 0 && nodelay == 1);
        /* keepalive and its timings: inherited by accepted connections, set on connecting ones */
        check_tcp_opts(s, &tcp);
        check_tcp_opts(c, &tcp);
        /* SO_REUSEPORT: a second listener on the same port (one per worker) */
        struct dbt_addr same = *a;
        memcpy(&same.ss, &bound, bl);
        same.len = bl;
        int l2 = -1;
        CHECK_OK(dbt_net_listen(&same, 16, &tcp, &l2));
        close(l2);
    } else if (a->ss.ss_family == AF_UNIX) {
        CHECK(strcmp(host, "[local]") == 0 && port == 0);
    }
    close(c);
    close(s);
    close(l1);
}

static void test_sockets(void)
{
    struct dbt_addr a;
    CHECK_OK(dbt_addr_parse("127.0.0.1:0", &a));
    roundtrip(&a);
    CHECK_OK(dbt_addr_parse("[::1]:0", &a));
    int fd = -1;
    if (dbt_ok(dbt_net_listen(&a, 1, NULL, &fd))) { /* IPv6 may be off in a container */
        close(fd);
        roundtrip(&a);
    }
    char path[64];
    snprintf(path, sizeof(path), "/tmp/dbtls-test-net-%d.sock", (int)getpid());
    unlink(path);
    CHECK_OK(dbt_addr_parse(path, &a));
    roundtrip(&a);
    unlink(path);
    /* a port nobody listens on: refused now or after the connect completes */
    CHECK_OK(dbt_addr_parse("127.0.0.1:0", &a));
    int l = -1;
    CHECK_OK(dbt_net_listen(&a, 1, NULL, &l));
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(l, (struct sockaddr *)&bound, &bl);
    close(l);
    int c = -1;
    bool inprog = false;
    dbt_res r = dbt_net_connect((struct sockaddr *)&bound, bl, NULL, &c, &inprog);
    if (dbt_ok(r)) {
        CHECK(wait_fd(c, POLLOUT) == 1);
        r = dbt_net_connect_result(c);
        close(c);
    }
    CHECK(r.code == DBT_E_IO);
    CHECK(strstr(dbt_errmsg(), "refused") != NULL);
    /* a listener on a port in use without REUSEPORT partner */
    CHECK_OK(dbt_addr_parse("/nonexistent-dir/x.sock", &a));
    CHECK_ERR(dbt_net_listen(&a, 1, NULL, &l), DBT_E_IO);
    CHECK(strstr(dbt_errmsg(), "/nonexistent-dir/x.sock") != NULL);
}

static void test_cidr(void)
{
    struct dbt_net_cidr c;
    struct dbt_addr a;
    CHECK_OK(dbt_net_cidr_parse("10.1.2.3/8", &c));
    CHECK(c.bits == 8);
    CHECK_OK(dbt_addr_parse("10.200.0.1:5", &a));
    CHECK(dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss));
    CHECK_OK(dbt_addr_parse("11.0.0.1:5", &a));
    CHECK(!dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss));
    CHECK_OK(dbt_addr_parse("[::ffff:10.9.9.9]:5", &a)); /* IPv4-mapped: matched as IPv4 */
    CHECK(dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss));
    CHECK_OK(dbt_net_cidr_parse("127.0.0.1", &c));
    CHECK(c.bits == 32);
    CHECK_OK(dbt_addr_parse("127.0.0.1:9", &a));
    CHECK(dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss));
    CHECK_OK(dbt_addr_parse("[::1]:9", &a));
    CHECK(!dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss)); /* other family */
    CHECK_OK(dbt_net_cidr_parse("fd00::/8", &c));
    CHECK_OK(dbt_addr_parse("[fdab::1]:9", &a));
    CHECK(dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss));
    CHECK_OK(dbt_net_cidr_parse("0.0.0.0/0", &c));
    CHECK_OK(dbt_addr_parse("203.0.113.5:1", &a));
    CHECK(dbt_net_cidr_match(&c, (struct sockaddr *)&a.ss));
    static const struct {
        const char *text, *why;
    } bad[] = {{"", "not an IP address"},        {"lb.example.com", "not an IP address"},
               {"10.0.0.0/33", "0 to 32"},       {"::/129", "0 to 128"},
               {"10.0.0.0/", "prefix length"},   {"10.0.0.0/-1", "prefix length"},
               {"10.0.0.0/8x", "prefix length"}, {"::ffff:10.0.0.0/104", "IPv4 form"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_ERR(dbt_net_cidr_parse(bad[i].text, &c), DBT_E_INVALID);
        CHECK(strstr(dbt_errmsg(), bad[i].why) != NULL);
    }
}

int main(void)
{
    test_cidr();
    test_parse();
    test_sockets();
    return check_exit();
}
