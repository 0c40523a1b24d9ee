/*
 * split.h - for fuzz targets whose input is two texts: the bytes before the first NUL and the
 * bytes after it (none when there is no NUL), each copied into its own NUL-terminated buffer so
 * the parsers see no bytes past their text. Header-only: each target is its own program.
 */
#ifndef DBT_FUZZ_SPLIT_H
#define DBT_FUZZ_SPLIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* *first / *second: malloc'd, NUL-terminated, free both. false (nothing allocated) without
   memory. */
static inline bool fuzz_split(const uint8_t *data, size_t size, char **first, size_t *first_len,
                              char **second, size_t *second_len)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t a = nul ? (size_t)(nul - data) : size;
    size_t b = nul ? size - a - 1 : 0;
    char *x = malloc(a + 1), *y = malloc(b + 1);
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        return false;
    }
    memcpy(x, data, a);
    x[a] = '\0';
    if (b > 0) {
        memcpy(y, nul + 1, b);
    }
    y[b] = '\0';
    *first = x;
    *first_len = a;
    *second = y;
    *second_len = b;
    return true;
}

#endif
