/*
 * proxy.c - PROXY protocol header decoding (proxy.h), through the bounds-checked reader.
 */
#include "proto/proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "base/rd.h"

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

#define AGAIN ((dbt_res){DBT_E_AGAIN})

/* A decimal port, 0..65535, without sign or leading zeros. */
static bool parse_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
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

/* The source address: 4 or 16 bytes (network order) read from rd, and the port. */
static bool take_src(struct dbt_rd *rd, int family, struct dbt_proxy_hdr *out)
{
    memset(&out->src, 0, sizeof(out->src));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->src;
        in->sin_family = AF_INET;
        out->src_len = sizeof(*in);
        return dbt_rd_copy(rd, &in->sin_addr, 4);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->src;
    in6->sin6_family = AF_INET6;
    out->src_len = sizeof(*in6);
    return dbt_rd_copy(rd, &in6->sin6_addr, 16);
}

static void set_port(struct dbt_proxy_hdr *out, uint16_t port)
{
    if (out->src.ss_family == AF_INET) {
        ((struct sockaddr_in *)&out->src)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)&out->src)->sin6_port = htons(port);
    }
    out->has_src = true;
}

/* "PROXY " already matched; the line ends within DBT_PROXY_V1_MAX bytes of the start. */
static dbt_res parse_v1(struct dbt_rd *rd, struct dbt_proxy_hdr *out)
{
    size_t at;
    if (!dbt_rd_find(rd, '\n', DBT_PROXY_V1_MAX - V1_SIG_LEN, &at)) {
        if (dbt_rd_left(rd) >= DBT_PROXY_V1_MAX - V1_SIG_LEN) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 1) longer than %d bytes",
                            DBT_PROXY_V1_MAX);
        }
        return AGAIN;
    }
    struct dbt_rd line;
    if (at == 0 || !dbt_rd_sub(rd, at - 1, &line) || !dbt_rd_expect(rd, "\r\n", 2)) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1) does not end in CRLF");
    }
    memset(out, 0, sizeof(*out));
    out->len = rd->off;
    char proto[8] = "";
    if (!dbt_rd_token(&line, ' ', proto, sizeof(proto))) {
        proto[0] = '\0'; /* longer than any protocol name */
    }
    if (strcmp(proto, "UNKNOWN") == 0) {
        return DBT_OK; /* the balancer could not tell: keep the peer (the rest is ignored) */
    }
    int family = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : 0;
    if (family == 0) {
        return dbt_fail(DBT_E_INVALID,
                        "PROXY header (version 1): unknown protocol (TCP4, TCP6 or UNKNOWN)");
    }
    /* four fields, one space apart: source, destination, source port, destination port */
    char f[4][INET6_ADDRSTRLEN + 1];
    for (int i = 0; i < 4; i++) {
        if (!dbt_rd_expect(&line, " ", 1)) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): missing fields");
        }
        if (!dbt_rd_token(&line, ' ', f[i], sizeof(f[i]))) {
            return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): field too long");
        }
    }
    if (!dbt_rd_expect_end(&line)) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): extra fields");
    }
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    if (inet_pton(family, f[0], src) != 1 || inet_pton(family, f[1], dst) != 1) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): invalid %s address",
                        family == AF_INET ? "IPv4" : "IPv6");
    }
    if (!parse_port(f[2], &sport) || !parse_port(f[3], &dport)) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): invalid port");
    }
    struct dbt_rd a = dbt_rd_make(src, family == AF_INET ? 4 : 16);
    if (!take_src(&a, family, out)) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 1): invalid address");
    }
    set_port(out, sport);
    return DBT_OK;
}

/* The signature already matched. */
static dbt_res parse_v2(struct dbt_rd *rd, struct dbt_proxy_hdr *out)
{
    uint8_t vc, ft;
    uint16_t blen;
    if (!dbt_rd_u8(rd, &vc) || !dbt_rd_u8(rd, &ft) || !dbt_rd_be16(rd, &blen)) {
        return AGAIN;
    }
    unsigned ver = vc >> 4, cmd = vc & 0x0f, fam = ft >> 4, transport = ft & 0x0f;
    size_t len = 16 + (size_t)blen;
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
    struct dbt_rd body;
    if (!dbt_rd_sub(rd, blen, &body)) {
        return AGAIN;
    }
    memset(out, 0, sizeof(*out));
    out->len = len;
    if (cmd == 0 || transport != 1 || fam == 0 || fam == 3) {
        return DBT_OK; /* LOCAL (the balancer's own connection), not a stream, UNSPEC or a unix
                          socket: keep the peer */
    }
    if (fam > 3) {
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 2): unknown address family %u", fam);
    }
    int family = fam == 1 ? AF_INET : AF_INET6;
    size_t alen = family == AF_INET ? 4 : 16;
    uint16_t sport;
    if (!take_src(&body, family, out) || !dbt_rd_skip(&body, alen) || !dbt_rd_be16(&body, &sport) ||
        !dbt_rd_skip(&body, 2)) {
        out->has_src = false;
        return dbt_fail(DBT_E_INVALID, "PROXY header (version 2): %s addresses truncated",
                        family == AF_INET ? "IPv4" : "IPv6");
    }
    set_port(out, sport); /* TLVs, if any, follow: ignored */
    return DBT_OK;
}

dbt_res dbt_proxy_parse(const uint8_t *p, size_t n, struct dbt_proxy_hdr *out)
{
    struct dbt_rd rd = dbt_rd_make(p, n);
    if (n == 0) {
        return AGAIN;
    }
    if (dbt_rd_starts_like(&rd, v2_sig, sizeof(v2_sig))) {
        return dbt_rd_expect(&rd, v2_sig, sizeof(v2_sig)) ? parse_v2(&rd, out) : AGAIN;
    }
    if (dbt_rd_starts_like(&rd, v1_sig, V1_SIG_LEN)) {
        return dbt_rd_expect(&rd, v1_sig, V1_SIG_LEN) ? parse_v1(&rd, out) : AGAIN;
    }
    return dbt_fail(DBT_E_INVALID, "no PROXY protocol header (version 1 or 2) where one must be");
}
