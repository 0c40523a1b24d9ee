/*
 * wr.c - sticky-error writer (see wr.h).
 */
#include "base/wr.h"

#include <string.h>

void dbt_wr_bytes(struct dbt_wr *w, const void *p, size_t n)
{
    if (w->failed) {
        return;
    }
    if (!dbt_ok(dbt_buf_append(w->buf, p, n))) {
        w->failed = true;
    }
}

void dbt_wr_u8(struct dbt_wr *w, uint8_t v)
{
    dbt_wr_bytes(w, &v, 1);
}

void dbt_wr_be16(struct dbt_wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    dbt_wr_bytes(w, b, 2);
}

void dbt_wr_be32(struct dbt_wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    dbt_wr_bytes(w, b, 4);
}

static void wr_le(struct dbt_wr *w, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    dbt_wr_bytes(w, b, n);
}

void dbt_wr_le16(struct dbt_wr *w, uint16_t v)
{
    wr_le(w, v, 2);
}

void dbt_wr_le24(struct dbt_wr *w, uint32_t v)
{
    wr_le(w, v, 3);
}

void dbt_wr_le32(struct dbt_wr *w, uint32_t v)
{
    wr_le(w, v, 4);
}

void dbt_wr_lenenc(struct dbt_wr *w, uint64_t v)
{
    if (v < 0xfb) {
        dbt_wr_u8(w, (uint8_t)v);
    } else if (v <= 0xffff) {
        dbt_wr_u8(w, 0xfc);
        wr_le(w, v, 2);
    } else if (v <= 0xffffff) {
        dbt_wr_u8(w, 0xfd);
        wr_le(w, v, 3);
    } else {
        dbt_wr_u8(w, 0xfe);
        wr_le(w, v, 8);
    }
}

void dbt_wr_cstr(struct dbt_wr *w, const char *s)
{
    dbt_wr_bytes(w, s, strlen(s) + 1);
}

void dbt_wr_zeros(struct dbt_wr *w, size_t n)
{
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        dbt_wr_bytes(w, zeros, k);
        n -= k;
    }
}

size_t dbt_wr_reserve(struct dbt_wr *w, size_t n)
{
    size_t pos = w->buf->len;
    dbt_wr_zeros(w, n);
    return pos;
}

void dbt_wr_patch_be32(struct dbt_wr *w, size_t pos, uint32_t v)
{
    if (w->failed || pos > w->buf->len || w->buf->len - pos < 4) {
        w->failed = true;
        return;
    }
    uint8_t *b = w->buf->data + pos;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

void dbt_wr_patch_le24(struct dbt_wr *w, size_t pos, uint32_t v)
{
    if (w->failed || pos > w->buf->len || w->buf->len - pos < 3) {
        w->failed = true;
        return;
    }
    uint8_t *b = w->buf->data + pos;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
}

dbt_res dbt_wr_finish(const struct dbt_wr *w)
{
    if (w->failed) {
        return dbt_fail(DBT_E_LIMIT, "message does not fit its buffer limit");
    }
    return DBT_OK;
}
