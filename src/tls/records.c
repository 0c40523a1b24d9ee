/*
 * records.c - a peer's TLS record stream read as it passes, for what the TLS library does not
 * say: an alert the client sent unencrypted during the handshake. An OpenSSL-based client
 * (libpq) that refuses the server certificate in TLS 1.3 sends it before switching to the
 * handshake keys; BoringSSL reports only a record it could not decrypt. Plain byte scanning,
 * without the TLS library, so it is fuzzed on its own (tests/fuzz/fuzz_alert_scan.c).
 */
#include <stdint.h>

#include "tls/tls.h"

enum { REC_ALERT = 21 };

int dbt_tls_alert_scan(struct dbt_tls_rec_scan *sc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && sc->alert == 0;) {
        if (sc->body_left > 0) {
            size_t k = n - i < sc->body_left ? n - i : sc->body_left;
            sc->body_left -= k;
            i += k;
            continue;
        }
        sc->hdr[sc->hdr_have++] = p[i++];
        if (sc->hdr_have < 5) {
            continue;
        }
        /* type 21, a two-byte body: level, description (an encrypted alert is type 23 and
           longer) */
        bool alert = sc->hdr[0] == REC_ALERT && sc->hdr[3] == 0 && sc->hdr[4] == 2;
        if (!alert) {
            sc->body_left = (size_t)sc->hdr[3] << 8 | sc->hdr[4];
            sc->hdr_have = 0;
        } else if (sc->hdr_have == 7) {
            sc->alert = sc->hdr[6] + 1;
        }
    }
    return sc->alert;
}
