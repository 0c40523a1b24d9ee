/*
 * fuzz_my_response.c - libFuzzer target for what a (possibly hostile) MySQL client sends: before
 * authentication, its first packet classified as SSLRequest or HandshakeResponse41, the full
 * response decode, attribute iteration, and the re-encode the front forwards (CLIENT_SSL and
 * compression cleared), which must decode again to the same fields; after it, the command stream
 * scanner (COM_CHANGE_USER), fed whole and in uneven pieces, which must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/wr.h"
#include "proto/my/my.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void response(const uint8_t *p, size_t n)
{
    enum dbt_my_hs_kind kind;
    struct dbt_my_response r, r2;
    if (dbt_ok(dbt_my_hs_classify(p, n, &kind)) && kind == DBT_MY_HS_SSL_REQUEST) {
        if (!dbt_ok(dbt_my_ssl_request_decode(p, n, &r))) {
            abort();
        }
    }
    if (!dbt_ok(dbt_my_response_decode(p, n, &r))) {
        return;
    }
    size_t off = 0, kn, vn;
    const char *k, *v;
    while (dbt_my_attrs_next(&r, &off, &k, &kn, &v, &vn)) {
        if (kn > r.attrs_len || vn > r.attrs_len) {
            abort();
        }
    }
    if (off != r.attrs_len) {
        abort();
    }
    /* --client-info: the front's pairs first, the client's kept but "dbtls.*"; the result
       iterates cleanly to its end */
    static const char *const pairs[][2] = {{"dbtls.client_addr", "127.0.0.1"}, {"dbtls.ssl", ""}};
    struct dbt_buf ab;
    dbt_buf_init(&ab, 0);
    if (dbt_ok(dbt_my_attrs_build(&r, "dbtls.", pairs, 2, &ab))) {
        struct dbt_my_response ar = {.has_attrs = true, .attrs = ab.data, .attrs_len = ab.len};
        size_t aoff = 0, seen = 0;
        while (dbt_my_attrs_next(&ar, &aoff, &k, &kn, &v, &vn)) {
            if (seen++ >= 2 && kn >= 6 && memcmp(k, "dbtls.", 6) == 0) {
                abort();
            }
        }
        if (aoff != ab.len || seen < 2) {
            abort();
        }
    }
    dbt_buf_cleanup(&ab);
    struct dbt_buf b;
    dbt_buf_init(&b, 1u << 20);
    struct dbt_wr w = dbt_wr_make(&b);
    uint32_t caps = r.caps & ~(DBT_MY_CLIENT_SSL | DBT_MY_CAPS_MASKED);
    dbt_my_response_encode(&r, caps, 1, &w);
    if (dbt_ok(dbt_wr_finish(&w))) {
        if (!dbt_ok(dbt_my_response_decode(b.data + 4, b.len - 4, &r2))) {
            abort();
        }
        if (r2.caps != caps || r2.user_len != r.user_len || r2.auth_len != r.auth_len ||
            memcmp(r2.auth, r.auth, r.auth_len) != 0 || r2.has_db != r.has_db ||
            r2.attrs_len != r.attrs_len) {
            abort();
        }
    }
    dbt_buf_cleanup(&b);
}

static unsigned scan_all(const uint8_t *p, size_t n, size_t piece)
{
    struct dbt_my_cmd_scan sc = {0};
    struct dbt_my_change_user cu;
    unsigned hits = 0;
    for (size_t at = 0; at < n; at += piece) {
        size_t len = n - at < piece ? n - at : piece;
        size_t off = 0;
        while (dbt_my_cmd_scan_next(&sc, p + at, len, &off, &cu)) {
            if (off > len || (cu.complete && cu.user + cu.user_len > (const char *)p + at + len)) {
                abort();
            }
            hits++;
        }
        if (off != len) {
            abort();
        }
    }
    return hits;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned whole = scan_all(data, size, size ? size : 1);
    if (scan_all(data, size, 1) != whole || scan_all(data, size, 7) != whole) {
        abort();
    }
    struct dbt_my_frame f;
    if (dbt_ok(dbt_my_frame_peek(data, size, DBT_MY_PREAUTH_MAX, &f)) && f.nparts == 1) {
        response(f.payload, f.payload_len);
    }
    response(data, size);
    return 0;
}
