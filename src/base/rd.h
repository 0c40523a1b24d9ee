/*
 * rd.h - the bounds-checked reader for untrusted bytes (wire messages, files).
 *
 * Every read is all-or-nothing: on failure it returns false and leaves the offset where it was,
 * so a decoder can report "need more" or "malformed" without having consumed anything. Nothing
 * outside rd.c, wr.c and buf.c does pointer arithmetic, strlen or memcpy on wire data.
 */
#ifndef DBT_BASE_RD_H
#define DBT_BASE_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
};

/* The value of a hexadecimal digit (either case), -1 for any other character. */
static inline int dbt_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static inline struct dbt_rd dbt_rd_make(const void *p, size_t len)
{
    return (struct dbt_rd){(const uint8_t *)p, len, 0};
}

static inline size_t dbt_rd_left(const struct dbt_rd *rd)
{
    return rd->len - rd->off;
}

/* Pointer to the unread bytes (valid for dbt_rd_left bytes). */
static inline const uint8_t *dbt_rd_cur(const struct dbt_rd *rd)
{
    return rd->p + rd->off;
}

bool dbt_rd_u8(struct dbt_rd *rd, uint8_t *v) DBT_WUR;
bool dbt_rd_peek_u8(const struct dbt_rd *rd, uint8_t *v) DBT_WUR;
/* Big-endian (PostgreSQL, TLS). */
bool dbt_rd_be16(struct dbt_rd *rd, uint16_t *v) DBT_WUR;
bool dbt_rd_be32(struct dbt_rd *rd, uint32_t *v) DBT_WUR;
bool dbt_rd_peek_be32(const struct dbt_rd *rd, size_t at, uint32_t *v) DBT_WUR;
/* Little-endian (MySQL). */
bool dbt_rd_le16(struct dbt_rd *rd, uint16_t *v) DBT_WUR;
bool dbt_rd_le24(struct dbt_rd *rd, uint32_t *v) DBT_WUR;
bool dbt_rd_le32(struct dbt_rd *rd, uint32_t *v) DBT_WUR;
bool dbt_rd_le64(struct dbt_rd *rd, uint64_t *v) DBT_WUR;
/*
 * MySQL length-encoded integer (0xfb is NULL and is refused here; 0xff is an error marker and is
 * refused): https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_dt_integers.html
 */
bool dbt_rd_lenenc(struct dbt_rd *rd, uint64_t *v) DBT_WUR;
/* Zero-copy slice of n bytes. */
bool dbt_rd_bytes(struct dbt_rd *rd, size_t n, const uint8_t **out) DBT_WUR;
bool dbt_rd_skip(struct dbt_rd *rd, size_t n) DBT_WUR;
/*
 * A NUL-terminated string found within bounds: *s points into the buffer, *n excludes the NUL,
 * the NUL is consumed. Fails when no NUL is present.
 */
bool dbt_rd_cstr(struct dbt_rd *rd, const char **s, size_t *n) DBT_WUR;
/* The next n bytes copied into out. */
bool dbt_rd_copy(struct dbt_rd *rd, void *out, size_t n) DBT_WUR;
/* The next n bytes are lit[0..n): consumed. */
bool dbt_rd_expect(struct dbt_rd *rd, const void *lit, size_t n) DBT_WUR;
/*
 * The unread bytes, however few, agree with the start of lit[0..n) (all of it when as many are
 * there): tells "not yet all of it" from "something else" when a fixed prefix is expected.
 */
bool dbt_rd_starts_like(const struct dbt_rd *rd, const void *lit, size_t n) DBT_WUR;
/* Where the first byte b is among the next max unread bytes (*at from the offset). */
bool dbt_rd_find(const struct dbt_rd *rd, uint8_t b, size_t max, size_t *at) DBT_WUR;
/*
 * The bytes up to the next sep (not consumed) or to the end, copied NUL-terminated into
 * out[cap]; fails when they do not fit or hold a NUL.
 */
bool dbt_rd_token(struct dbt_rd *rd, uint8_t sep, char *out, size_t cap) DBT_WUR;
/* A sub-reader over the next n bytes (consumed from rd). */
bool dbt_rd_sub(struct dbt_rd *rd, size_t n, struct dbt_rd *sub) DBT_WUR;
/* True when every byte was consumed: rejects trailing bytes. */
bool dbt_rd_expect_end(const struct dbt_rd *rd) DBT_WUR;

#endif
