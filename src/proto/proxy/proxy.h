/*
 * proxy.h - the PROXY protocol header (HAProxy's specification, versions 1 and 2) that a load
 * balancer in TCP mode (HAProxy send-proxy / send-proxy-v2, AWS NLB, nginx stream
 * proxy_protocol) puts before the client's first byte, so that the server behind it learns the
 * client's address instead of the balancer's. Pure decoding: no I/O, no globals.
 *
 * Version 1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN...\r\n", at most 107
 * bytes. Version 2: the 12-byte signature "\r\n\r\n\0\r\nQUIT\n", a version/command byte (0x20
 * LOCAL, 0x21 PROXY), an address family/transport byte, a 16-bit length, then the addresses and
 * TLVs (ignored).
 */
#ifndef DBT_PROTO_PROXY_H
#define DBT_PROTO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"

/* Version 2 headers longer than this (TLVs) are refused: a balancer sends a few dozen bytes. */
#define DBT_PROXY_V2_MAX 1024
/* Version 1's limit from the specification, CRLF included. */
#define DBT_PROXY_V1_MAX 107

struct dbt_proxy_hdr {
    size_t len;                  /* bytes of the header: the client's own bytes follow */
    bool has_src;                /* false: LOCAL (v2, the balancer's own health check), UNKNOWN
                                    or a family other than TCP over IPv4/IPv6: keep the peer */
    struct sockaddr_storage src; /* the client's address and port when has_src */
    socklen_t src_len;
};

/*
 * Decodes the header at the start of p[0..n). OK with *out filled; AGAIN when the bytes so far
 * are the start of a header but not all of it; INVALID with a message saying what is wrong
 * (not a PROXY header, a malformed address, a header over the limits...).
 */
dbt_res dbt_proxy_parse(const uint8_t *p, size_t n, struct dbt_proxy_hdr *out) DBT_WUR;

#endif
