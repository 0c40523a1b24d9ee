/*
 * buf.h - a growable byte buffer with a read offset, used for connection I/O and for building
 * messages. Growth is bounded by a per-buffer maximum so a peer cannot make us allocate without
 * limit.
 */
#ifndef DBT_BASE_BUF_H
#define DBT_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_buf {
    uint8_t *data;
    size_t len;  /* bytes written */
    size_t off;  /* bytes consumed from the front */
    size_t cap;  /* allocated */
    size_t max;  /* growth limit (0 = SIZE_MAX) */
};

void dbt_buf_init(struct dbt_buf *b, size_t max);
/* Frees memory; the buffer is empty and reusable afterwards. */
void dbt_buf_cleanup(struct dbt_buf *b);
/* Ensures room for n more bytes at the end. Fails (LIMIT/NOMEM) past max. */
dbt_res dbt_buf_reserve(struct dbt_buf *b, size_t n) DBT_WUR;
dbt_res dbt_buf_append(struct dbt_buf *b, const void *p, size_t n) DBT_WUR;
/* Unread bytes. */
static inline size_t dbt_buf_avail(const struct dbt_buf *b)
{
    return b->len - b->off;
}
static inline const uint8_t *dbt_buf_head(const struct dbt_buf *b)
{
    return b->data + b->off;
}
/* Free space at the end (after dbt_buf_reserve) and its commit after a read(2) into it. */
static inline uint8_t *dbt_buf_tail(struct dbt_buf *b)
{
    return b->data + b->len;
}
void dbt_buf_commit(struct dbt_buf *b, size_t n);
/* Marks n unread bytes as consumed; resets to empty when everything was read. */
void dbt_buf_consume(struct dbt_buf *b, size_t n);
/* Drops all content (keeps memory). */
void dbt_buf_reset(struct dbt_buf *b);

#endif
