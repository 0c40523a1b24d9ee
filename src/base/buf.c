/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

void dbt_buf_init(struct dbt_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max ? max : SIZE_MAX;
}

void dbt_buf_cleanup(struct dbt_buf *b)
{
    size_t max = b->max;
    free(b->data);
    memset(b, 0, sizeof(*b));
    b->max = max;
}

dbt_res dbt_buf_reserve(struct dbt_buf *b, size_t n)
{
    if (b->off > 0 && b->cap - b->len < n) {
        /* Reclaim consumed space first. */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->cap - b->len >= n) {
        return DBT_OK;
    }
    if (n > b->max || b->len > b->max - n) {
        return dbt_fail(DBT_E_LIMIT, "buffer limit of %zu bytes exceeded", b->max);
    }
    size_t want = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    }
    if (cap > b->max) {
        cap = b->max;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
    }
    b->data = p;
    b->cap = cap;
    return DBT_OK;
}

dbt_res dbt_buf_append(struct dbt_buf *b, const void *p, size_t n)
{
    dbt_res r = dbt_buf_reserve(b, n);
    if (!dbt_ok(r)) {
        return r;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    return DBT_OK;
}

void dbt_buf_commit(struct dbt_buf *b, size_t n)
{
    b->len += n;
}

void dbt_buf_consume(struct dbt_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        b->off = 0;
        b->len = 0;
    }
}

void dbt_buf_reset(struct dbt_buf *b)
{
    b->off = 0;
    b->len = 0;
}
