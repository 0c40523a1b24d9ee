/*
 * wr.h - a writer that appends encoded values to a dbt_buf with a sticky error: encode a whole
 * message, then check dbt_wr_finish() once. Length prefixes are reserved and patched later.
 */
#ifndef DBT_BASE_WR_H
#define DBT_BASE_WR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

struct dbt_wr {
    struct dbt_buf *buf;
    bool failed;
};

static inline struct dbt_wr dbt_wr_make(struct dbt_buf *buf)
{
    return (struct dbt_wr){buf, false};
}

void dbt_wr_u8(struct dbt_wr *w, uint8_t v);
void dbt_wr_be16(struct dbt_wr *w, uint16_t v);
void dbt_wr_be32(struct dbt_wr *w, uint32_t v);
void dbt_wr_le16(struct dbt_wr *w, uint16_t v);
void dbt_wr_le24(struct dbt_wr *w, uint32_t v);
void dbt_wr_le32(struct dbt_wr *w, uint32_t v);
void dbt_wr_lenenc(struct dbt_wr *w, uint64_t v);
void dbt_wr_bytes(struct dbt_wr *w, const void *p, size_t n);
/* Writes s and its terminating NUL. */
void dbt_wr_cstr(struct dbt_wr *w, const char *s);
void dbt_wr_zeros(struct dbt_wr *w, size_t n);
/* Reserves n bytes and returns their absolute position in buf (for dbt_wr_patch_*). */
size_t dbt_wr_reserve(struct dbt_wr *w, size_t n);
void dbt_wr_patch_be32(struct dbt_wr *w, size_t pos, uint32_t v);
void dbt_wr_patch_le24(struct dbt_wr *w, size_t pos, uint32_t v);
/* Absolute write position (buf->len). */
static inline size_t dbt_wr_pos(const struct dbt_wr *w)
{
    return w->buf->len;
}
/* OK unless any write failed (then LIMIT/NOMEM with a message). */
dbt_res dbt_wr_finish(const struct dbt_wr *w) DBT_WUR;

#endif
