/*
 * fuzz_alert_scan.c - libFuzzer target for the scan of a client's TLS records (tls/records.c)
 * that finds an alert sent unencrypted during the handshake: fed whole or in pieces of any sizes,
 * it gives the answer a plain walk over the records gives, and never reads past what it is fed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The records one after another: 1 + the description of the first unencrypted alert, else 0. */
static int reference(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (n - i >= 5) {
        size_t len = (size_t)p[i + 3] << 8 | p[i + 4];
        if (p[i] == 21 && len == 2) {
            return n - i >= 7 ? p[i + 6] + 1 : 0;
        }
        if (n - i - 5 < len) {
            return 0;
        }
        i += 5 + len;
    }
    return 0;
}

/* Feeds each piece from its own heap copy, so ASan sees any read past it. */
static int feed(struct dbt_tls_rec_scan *sc, const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, p, n);
    int r = dbt_tls_alert_scan(sc, copy, n);
    free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int want = reference(data, size);
    struct dbt_tls_rec_scan whole = {0};
    if (feed(&whole, data, size) != want) {
        abort();
    }
    /* the same bytes in pieces whose sizes the bytes themselves choose (1..16, and 0) */
    struct dbt_tls_rec_scan parts = {0};
    int got = 0;
    for (size_t i = 0, k = 0; i < size; i += k) {
        k = data[i] % 17;
        if (k > size - i) {
            k = size - i;
        }
        got = feed(&parts, data + i, k);
        if (k == 0) {
            k = 1;
            got = feed(&parts, data + i, 1);
        }
    }
    if (got != want || parts.alert != want) {
        abort();
    }
    return 0;
}
