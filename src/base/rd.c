/*
 * rd.c - bounds-checked reader (see rd.h). The only place besides wr.c and buf.c that does
 * pointer arithmetic on untrusted bytes.
 */
#include "base/rd.h"

#include <string.h>

bool dbt_rd_u8(struct dbt_rd *rd, uint8_t *v)
{
    if (dbt_rd_left(rd) < 1) {
        return false;
    }
    *v = rd->p[rd->off++];
    return true;
}

bool dbt_rd_peek_u8(const struct dbt_rd *rd, uint8_t *v)
{
    if (dbt_rd_left(rd) < 1) {
        return false;
    }
    *v = rd->p[rd->off];
    return true;
}

bool dbt_rd_be16(struct dbt_rd *rd, uint16_t *v)
{
    if (dbt_rd_left(rd) < 2) {
        return false;
    }
    const uint8_t *b = rd->p + rd->off;
    *v = (uint16_t)((b[0] << 8) | b[1]);
    rd->off += 2;
    return true;
}

bool dbt_rd_peek_be32(const struct dbt_rd *rd, size_t at, uint32_t *v)
{
    if (dbt_rd_left(rd) < 4 || dbt_rd_left(rd) - 4 < at) {
        return false;
    }
    const uint8_t *b = rd->p + rd->off + at;
    *v = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
    return true;
}

bool dbt_rd_be32(struct dbt_rd *rd, uint32_t *v)
{
    if (!dbt_rd_peek_be32(rd, 0, v)) {
        return false;
    }
    rd->off += 4;
    return true;
}

static bool rd_le(struct dbt_rd *rd, size_t n, uint64_t *v)
{
    if (dbt_rd_left(rd) < n) {
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x |= (uint64_t)rd->p[rd->off + i] << (8 * i);
    }
    rd->off += n;
    *v = x;
    return true;
}

bool dbt_rd_le16(struct dbt_rd *rd, uint16_t *v)
{
    uint64_t x;
    if (!rd_le(rd, 2, &x)) {
        return false;
    }
    *v = (uint16_t)x;
    return true;
}

bool dbt_rd_le24(struct dbt_rd *rd, uint32_t *v)
{
    uint64_t x;
    if (!rd_le(rd, 3, &x)) {
        return false;
    }
    *v = (uint32_t)x;
    return true;
}

bool dbt_rd_le32(struct dbt_rd *rd, uint32_t *v)
{
    uint64_t x;
    if (!rd_le(rd, 4, &x)) {
        return false;
    }
    *v = (uint32_t)x;
    return true;
}

bool dbt_rd_le64(struct dbt_rd *rd, uint64_t *v)
{
    return rd_le(rd, 8, v);
}

bool dbt_rd_lenenc(struct dbt_rd *rd, uint64_t *v)
{
    struct dbt_rd save = *rd;
    uint8_t first;
    uint64_t x;

    if (!dbt_rd_u8(rd, &first)) {
        return false;
    }
    if (first < 0xfb) {
        *v = first;
        return true;
    }
    size_t n = first == 0xfc ? 2 : first == 0xfd ? 3 : first == 0xfe ? 8 : 0;
    if (n == 0 || !rd_le(rd, n, &x)) {
        *rd = save;
        return false;
    }
    *v = x;
    return true;
}

bool dbt_rd_bytes(struct dbt_rd *rd, size_t n, const uint8_t **out)
{
    if (dbt_rd_left(rd) < n) {
        return false;
    }
    *out = rd->p + rd->off;
    rd->off += n;
    return true;
}

bool dbt_rd_skip(struct dbt_rd *rd, size_t n)
{
    const uint8_t *unused;
    return dbt_rd_bytes(rd, n, &unused);
}

bool dbt_rd_cstr(struct dbt_rd *rd, const char **s, size_t *n)
{
    size_t left = dbt_rd_left(rd);
    const uint8_t *start = rd->p + rd->off;
    const uint8_t *nul = left ? memchr(start, 0, left) : NULL;
    if (nul == NULL) {
        return false;
    }
    *s = (const char *)start;
    *n = (size_t)(nul - start);
    rd->off += *n + 1;
    return true;
}

bool dbt_rd_copy(struct dbt_rd *rd, void *out, size_t n)
{
    const uint8_t *p;
    if (!dbt_rd_bytes(rd, n, &p)) {
        return false;
    }
    if (n > 0) {
        memcpy(out, p, n);
    }
    return true;
}

bool dbt_rd_expect(struct dbt_rd *rd, const void *lit, size_t n)
{
    if (dbt_rd_left(rd) < n || (n > 0 && memcmp(rd->p + rd->off, lit, n) != 0)) {
        return false;
    }
    rd->off += n;
    return true;
}

bool dbt_rd_starts_like(const struct dbt_rd *rd, const void *lit, size_t n)
{
    size_t left = dbt_rd_left(rd), k = left < n ? left : n;
    return k == 0 || memcmp(rd->p + rd->off, lit, k) == 0;
}

bool dbt_rd_find(const struct dbt_rd *rd, uint8_t b, size_t max, size_t *at)
{
    size_t left = dbt_rd_left(rd), k = left < max ? left : max;
    if (k == 0) {
        return false;
    }
    const uint8_t *start = rd->p + rd->off;
    const uint8_t *hit = memchr(start, b, k);
    if (hit == NULL) {
        return false;
    }
    *at = (size_t)(hit - start);
    return true;
}

bool dbt_rd_token(struct dbt_rd *rd, uint8_t sep, char *out, size_t cap)
{
    size_t n = dbt_rd_left(rd), at;
    if (dbt_rd_find(rd, sep, n, &at)) {
        n = at; /* up to sep when there is one */
    }
    const uint8_t *start = rd->p + rd->off;
    if (n >= cap || (n > 0 && memchr(start, 0, n) != NULL)) {
        return false;
    }
    if (n > 0) {
        memcpy(out, start, n);
    }
    out[n] = '\0';
    rd->off += n;
    return true;
}

bool dbt_rd_sub(struct dbt_rd *rd, size_t n, struct dbt_rd *sub)
{
    const uint8_t *p;
    if (!dbt_rd_bytes(rd, n, &p)) {
        return false;
    }
    *sub = dbt_rd_make(p, n);
    return true;
}

bool dbt_rd_expect_end(const struct dbt_rd *rd)
{
    return dbt_rd_left(rd) == 0;
}
