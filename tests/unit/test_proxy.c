/*
 * test_proxy.c - the PROXY protocol header decoder (proto/proxy): versions 1 and 2 as HAProxy's
 * specification writes them, what keeps the peer's own address (LOCAL, UNKNOWN, UNSPEC), partial
 * headers asking for more, and what is refused with why.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "proto/proxy/proxy.h"

static const char v2sig[] = "\r\n\r\n\0\r\nQUIT\n";

static dbt_res parse(const void *p, size_t n, struct dbt_proxy_hdr *h)
{
    return dbt_proxy_parse(p, n, h);
}

static void addr_is(const struct dbt_proxy_hdr *h, const char *ip, int port)
{
    char got[INET6_ADDRSTRLEN] = "";
    int gp = -1;
    CHECK(h->has_src);
    if (h->src.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&h->src;
        inet_ntop(AF_INET, &in->sin_addr, got, sizeof(got));
        gp = ntohs(in->sin_port);
        CHECK(h->src_len == sizeof(*in));
    } else if (h->src.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&h->src;
        inet_ntop(AF_INET6, &in6->sin6_addr, got, sizeof(got));
        gp = ntohs(in6->sin6_port);
        CHECK(h->src_len == sizeof(*in6));
    }
    CHECK(strcmp(got, ip) == 0);
    CHECK(gp == port);
    if (strcmp(got, ip) != 0 || gp != port) {
        fprintf(stderr, "  got %s port %d, want %s port %d\n", got, gp, ip, port);
    }
}

/* Every strict prefix of a valid header asks for more bytes. */
static void prefixes_wait(const void *p, size_t len)
{
    struct dbt_proxy_hdr h;
    for (size_t n = 0; n < len; n++) {
        CHECK(parse(p, n, &h).code == DBT_E_AGAIN);
    }
}

static void test_v1(void)
{
    struct dbt_proxy_hdr h;
    static const char tcp4[] = "PROXY TCP4 192.0.2.7 127.0.0.1 51234 5432\r\n\0\0\0\x08";
    size_t hl = strlen(tcp4);
    CHECK_OK(parse(tcp4, sizeof(tcp4) - 1, &h));
    CHECK(h.len == hl);
    addr_is(&h, "192.0.2.7", 51234);
    prefixes_wait(tcp4, hl);

    static const char tcp6[] = "PROXY TCP6 2001:db8::7 ::1 65535 5432\r\n";
    CHECK_OK(parse(tcp6, strlen(tcp6), &h));
    addr_is(&h, "2001:db8::7", 65535);

    static const char unknown[] = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    CHECK_OK(parse(unknown, strlen(unknown), &h));
    CHECK(!h.has_src && h.len == strlen(unknown));

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"PROXY TCP4 192.0.2.7 127.0.0.1 51234 5432\n", "does not end in CRLF"},
        {"PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n", "unknown protocol"},
        {"PROXY TCP4 2001:db8::7 127.0.0.1 1 2\r\n", "invalid IPv4 address"},
        {"PROXY TCP6 192.0.2.7 ::1 1 2\r\n", "invalid IPv6 address"},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 65536 2\r\n", "invalid port"},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 0123 2\r\n", "invalid port"},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 1\r\n", "missing fields"},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 1 2 3\r\n", "extra fields"},
        {"PROXY TCP4  192.0.2.7 127.0.0.1 1 2\r\n", "extra fields"}, /* two spaces */
        {"GET / HTTP/1.1\r\n", "no PROXY protocol header"},
        {"PROXY UNKNOWNISH\r\n", "unknown protocol"},
        {"PROXY \r\n", "unknown protocol"},
        {"PROXY TCP4 192.0.2.7 127.0.0.1 0000000000000000000000000000000000000000000000001 2\r\n",
         "field too long"},
        {"\0\0\0\x08\x04\xd2\x16\x2f", "no PROXY protocol header"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = bad[i].text[0] == '\0' ? 8 : strlen(bad[i].text);
        CHECK_ERR(parse(bad[i].text, n, &h), DBT_E_INVALID);
        CHECK(strstr(dbt_errmsg(), bad[i].why) != NULL);
        if (strstr(dbt_errmsg(), bad[i].why) == NULL) {
            fprintf(stderr, "  case %zu: %s\n", i, dbt_errmsg());
        }
    }
    /* no CRLF within the 107 bytes the specification allows */
    char longer[200];
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, "PROXY UNKNOWN ", 14);
    CHECK(parse(longer, 106, &h).code == DBT_E_AGAIN);
    CHECK_ERR(parse(longer, sizeof(longer), &h), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "longer than 107 bytes") != NULL);
}

/* A version 2 header: signature, version/command, family/transport, then body. */
static size_t v2(uint8_t *out, uint8_t vc, uint8_t fam, const void *body, size_t blen)
{
    memcpy(out, v2sig, 12);
    out[12] = vc;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen > 0) {
        memcpy(out + 16, body, blen);
    }
    return 16 + blen;
}

static void test_v2(void)
{
    struct dbt_proxy_hdr h;
    uint8_t buf[2048];
    static const uint8_t a4[] = {198, 51, 100, 9, 127, 0, 0, 1, 0xc8, 0x22, 0x15, 0x38};
    size_t n = v2(buf, 0x21, 0x11, a4, sizeof(a4));
    memcpy(buf + n, "\0\0\0\x08\x04\xd2\x16\x2f", 8); /* the client's SSLRequest follows */
    CHECK_OK(parse(buf, n + 8, &h));
    CHECK(h.len == n);
    addr_is(&h, "198.51.100.9", 0xc822);
    prefixes_wait(buf, n);

    uint8_t a6[36 + 7] = {0x20, 0x01, 0x0d, 0xb8};
    a6[15] = 0x09;
    a6[31] = 0x01;
    a6[32] = 0x12;
    a6[33] = 0x34;
    a6[36] = 0x01; /* a TLV (ALPN), skipped */
    a6[38] = 0x04;
    n = v2(buf, 0x21, 0x21, a6, sizeof(a6));
    CHECK_OK(parse(buf, n, &h));
    CHECK(h.len == n);
    addr_is(&h, "2001:db8::9", 0x1234);

    /* LOCAL (the balancer's own health check), UNSPEC, a unix socket, UDP: the peer stays */
    n = v2(buf, 0x20, 0x00, NULL, 0);
    CHECK_OK(parse(buf, n, &h));
    CHECK(!h.has_src && h.len == 16);
    n = v2(buf, 0x20, 0x11, a4, sizeof(a4));
    CHECK_OK(parse(buf, n, &h));
    CHECK(!h.has_src && h.len == n);
    uint8_t unix_body[216] = {0};
    n = v2(buf, 0x21, 0x31, unix_body, sizeof(unix_body));
    CHECK_OK(parse(buf, n, &h));
    CHECK(!h.has_src);
    n = v2(buf, 0x21, 0x12, a4, sizeof(a4));
    CHECK_OK(parse(buf, n, &h));
    CHECK(!h.has_src);

    n = v2(buf, 0x11, 0x11, a4, sizeof(a4));
    CHECK_ERR(parse(buf, n, &h), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "version 1 (expected 2)") != NULL);
    n = v2(buf, 0x22, 0x11, a4, sizeof(a4));
    CHECK_ERR(parse(buf, n, &h), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "unknown command 2") != NULL);
    n = v2(buf, 0x21, 0x11, a4, 8);
    CHECK_ERR(parse(buf, n, &h), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "IPv4 addresses truncated") != NULL);
    n = v2(buf, 0x21, 0x21, a6, 20);
    CHECK_ERR(parse(buf, n, &h), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "IPv6 addresses truncated") != NULL);
    n = v2(buf, 0x21, 0x51, a4, sizeof(a4));
    CHECK_ERR(parse(buf, n, &h), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "unknown address family 5") != NULL);
    static uint8_t big[DBT_PROXY_V2_MAX];
    n = v2(buf, 0x21, 0x11, big, DBT_PROXY_V2_MAX - 15);
    CHECK_ERR(parse(buf, 16, &h), DBT_E_INVALID); /* refused on the length word alone */
    CHECK(strstr(dbt_errmsg(), "at most 1024") != NULL);
    /* a signature that goes wrong after its first bytes */
    CHECK_ERR(parse("\r\n\r\nX", 5, &h), DBT_E_INVALID);
}

int main(void)
{
    test_v1();
    test_v2();
    return check_exit();
}
