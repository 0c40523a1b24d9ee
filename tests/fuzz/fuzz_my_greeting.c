/*
 * fuzz_my_greeting.c - libFuzzer target for what a (possibly hostile or broken) MySQL backend
 * sends before authentication: the framing of its first packet, the HandshakeV10 greeting (decode,
 * re-encode with the front's capabilities, decode again) and the authentication-phase packets
 * (OK / ERR / AuthSwitchRequest / AuthMoreData).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/wr.h"
#include "proto/my/my.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void greeting(const uint8_t *p, size_t n)
{
    struct dbt_my_greeting g, g2;
    if (!dbt_ok(dbt_my_greeting_decode(p, n, &g))) {
        return;
    }
    struct dbt_buf b;
    dbt_buf_init(&b, 1u << 20);
    struct dbt_wr w = dbt_wr_make(&b);
    uint32_t caps = dbt_my_greeting_front_caps(g.caps, true);
    dbt_my_greeting_encode(&g, caps, 0, &w);
    if (dbt_ok(dbt_wr_finish(&w))) {
        /* What the front sends must decode, with the same scramble and the new caps. */
        if (!dbt_ok(dbt_my_greeting_decode(b.data + 4, b.len - 4, &g2))) {
            abort();
        }
        if (g.has_more && g2.caps != caps) {
            abort();
        }
        if (memcmp(g2.scramble1, g.scramble1, 8) != 0 || g2.scramble2_len != g.scramble2_len) {
            abort();
        }
    }
    dbt_buf_cleanup(&b);
}

static void auth_packet(const uint8_t *p, size_t n)
{
    struct dbt_my_switch s;
    struct dbt_my_err e;
    const uint8_t *d;
    size_t dn;
    switch (dbt_my_auth_classify(p, n)) {
    case DBT_MY_AUTH_SWITCH:
        (void)dbt_ok(dbt_my_switch_decode(p, n, &s));
        break;
    case DBT_MY_AUTH_ERR:
        if (!dbt_ok(dbt_my_err_decode(p, n, true, &e)) ||
            !dbt_ok(dbt_my_err_decode(p, n, false, &e))) {
            abort();
        }
        break;
    case DBT_MY_AUTH_MORE_DATA:
        if (!dbt_ok(dbt_my_more_data_decode(p, n, &d, &dn)) || dn != n - 1) {
            abort();
        }
        break;
    case DBT_MY_AUTH_OK:
    case DBT_MY_AUTH_OTHER:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As framed bytes from the socket... */
    struct dbt_my_frame f;
    if (dbt_ok(dbt_my_frame_peek(data, size, DBT_MY_PREAUTH_MAX, &f))) {
        if (f.wire_len > size || f.payload_len > DBT_MY_PREAUTH_MAX) {
            abort();
        }
        struct dbt_buf pl;
        dbt_buf_init(&pl, DBT_MY_PREAUTH_MAX);
        if (!dbt_ok(dbt_my_frame_payload(data, &f, &pl)) || pl.len != f.payload_len) {
            abort();
        }
        greeting(pl.data, pl.len);
        auth_packet(pl.data, pl.len);
        dbt_buf_cleanup(&pl);
    }
    /* ...and as a bare payload. */
    greeting(data, size);
    auth_packet(data, size);
    return 0;
}
