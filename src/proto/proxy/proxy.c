/*
 * proxy.c - PROXY protocol header decoding (proxy.h).
 */
#include "proto/proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

static bool is_prefix(const uint8_t *p, size_t n, const void *sig, size_t siglen)
{
    return memcmp(p, sig, n < siglen ? n : siglen) == 0;
}

/* A decimal port, 0..65535, without sign or leading zeros. */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) {
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535) {
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

static void set_src(struct dbt_proxy_hdr *out, int family, const void *addr, uint16_t port_be)
{
    memset(&out->src, 0, sizeof(out->src));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->src;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, addr, 4);
        in->sin_port = port_be;
        out->src_len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->src;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, addr, 16);
        in6->sin6_port = port_be;
        out->src_len = sizeof(*in6);
    }
    out->has_src = true;
}

static dbt_res parse_v1(const uint8_t *p, size_t n, struct dbt_proxy_hdr *out)
{
    const uint8_t *nl = memchr(p, '\n', n < DBT_PROXY_V1_MAX ? n : DBT_PROXY_V1_MAX);
    if (nl == NULL) {
        if (n >= DBT_PROXY_V1_MAX) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 1) longer than %d bytes",
                            DBT_PROXY_V1_MAX);
        }
        return (dbt_res){DBT_E_AGAIN};
    }
    size_t len = (size_t)(nl - p) + 1;
    if (len < 2 || nl[-1] != '\r') {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1) does not end in CRLF");
    }
    char line[DBT_PROXY_V1_MAX + 1];
    memcpy(line, p, len - 2);
    line[len - 2] = '\0';
    if (memchr(line, '\0', len - 2) != NULL) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1) holds a NUL byte");
    }
    memset(out, 0, sizeof(*out));
    out->len = len;
    const char *f = line + sizeof(v1_sig) - 1;
    if (strncmp(f, "UNKNOWN", 7) == 0 && (f[7] == '\0' || f[7] == ' ')) {
        return DBT_OK; /* the balancer could not tell: keep the peer */
    }
    int family;
    if (strncmp(f, "TCP4 ", 5) == 0) {
        family = AF_INET;
    } else if (strncmp(f, "TCP6 ", 5) == 0) {
        family = AF_INET6;
    } else {
        return dbt_fail(DBT_E_INVALID,
                        "PROXY header (version 1): unknown protocol (TCP4, TCP6 or UNKNOWN)");
    }
    /* four fields, one space apart: source, destination, source port, destination port */
    const char *fields[4];
    size_t lens[4];
    const char *c = f + 5;
    for (int i = 0; i < 4; i++) {
        const char *end = strchr(c, ' ');
        if (i < 3 && end == NULL) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): missing fields");
        }
        if (i == 3) {
            if (end != NULL) {
                return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): extra fields");
            }
            end = c + strlen(c);
        }
        fields[i] = c;
        lens[i] = (size_t)(end - c);
        c = end + 1;
    }
    char src[INET6_ADDRSTRLEN + 1], dst[INET6_ADDRSTRLEN + 1];
    uint8_t src_addr[16], dst_addr[16];
    uint16_t sport, dport;
    if (lens[0] >= sizeof(src) || lens[1] >= sizeof(dst)) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): address too long");
    }
    memcpy(src, fields[0], lens[0]);
    src[lens[0]] = '\0';
    memcpy(dst, fields[1], lens[1]);
    dst[lens[1]] = '\0';
    if (inet_pton(family, src, src_addr) != 1 || inet_pton(family, dst, dst_addr) != 1) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): invalid %s address",
                        family == AF_INET ? "IPv4" : "IPv6");
    }
    if (!parse_port(fields[2], lens[2], &sport) || !parse_port(fields[3], lens[3], &dport)) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): invalid port");
    }
    set_src(out, family, src_addr, htons(sport));
    return DBT_OK;
}

static dbt_res parse_v2(const uint8_t *p, size_t n, struct dbt_proxy_hdr *out)
{
    if (n < 16) {
        return (dbt_res){DBT_E_AGAIN};
    }
    uint8_t ver = p[12] >> 4, cmd = p[12] & 0x0f, fam = p[13] >> 4, proto = p[13] & 0x0f;
    size_t len = 16 + (((size_t)p[14] << 8) | p[15]);
    if (ver != 2) {
        return dbt_fail(DBT_E_INVALID, "PROXY header: version %u (expected 2)", ver);
    }
    if (cmd > 1) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 2): unknown command %u", cmd);
    }
    if (len > DBT_PROXY_V2_MAX) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 2) of %zu bytes (at most %d)", len,
                        DBT_PROXY_V2_MAX);
    }
    if (n < len) {
        return (dbt_res){DBT_E_AGAIN};
    }
    memset(out, 0, sizeof(*out));
    out->len = len;
    if (cmd == 0 || proto != 1) {
        return DBT_OK; /* LOCAL (the balancer's own connection), or not a stream: keep the peer */
    }
    const uint8_t *a = p + 16;
    if (fam == 1) {
        if (len < 16 + 12) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 2): IPv4 addresses truncated");
        }
        uint16_t port_be;
        memcpy(&port_be, a + 8, 2);
        set_src(out, AF_INET, a, port_be);
    } else if (fam == 2) {
        if (len < 16 + 36) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 2): IPv6 addresses truncated");
        }
        uint16_t port_be;
        memcpy(&port_be, a + 32, 2);
        set_src(out, AF_INET6, a, port_be);
    } else if (fam > 3) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 2): unknown address family %u",
                        fam);
    }
    return DBT_OK; /* UNSPEC or a unix socket: keep the peer */
}

dbt_res dbt_proxy_parse(const uint8_t *p, size_t n, struct dbt_proxy_hdr *out)
{
    if (n == 0) {
        return (dbt_res){DBT_E_AGAIN};
    }
    if (is_prefix(p, n, v2_sig, sizeof(v2_sig))) {
        return n < sizeof(v2_sig) ? (dbt_res){DBT_E_AGAIN} : parse_v2(p, n, out);
    }
    if (is_prefix(p, n, v1_sig, sizeof(v1_sig) - 1)) {
        return n < sizeof(v1_sig) - 1 ? (dbt_res){DBT_E_AGAIN} : parse_v1(p, n, out);
    }
    return dbt_fail(DBT_E_INVALID, "no PROXY protocol header (version 1 or 2) where one must be");
}
