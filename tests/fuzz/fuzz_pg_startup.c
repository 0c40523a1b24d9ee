/*
 * fuzz_pg_startup.c - libFuzzer target for the first packet a client sends (SSLRequest,
 * GSSENCRequest, CancelRequest, StartupMessage, direct TLS). The first input byte picks the
 * negotiation flags; the rest is the packet buffer. Every outcome is re-encoded where the front
 * would answer, and the decoder's invariants are asserted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "proto/pg/pg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results the target does not care about (refusals are expected on fuzzed input). */
#define IGNORE(expr)                                                                               \
    do {                                                                                           \
        dbt_res ignored_ = (expr);                                                                 \
        (void)ignored_;                                                                            \
    } while (0)

static void one(const uint8_t *p, size_t n, unsigned flags)
{
    struct dbt_pg_first f;
    dbt_res r = dbt_pg_first_decode(p, n, flags, &f);
    if (f.consumed > n || (f.kind == DBT_PG_FIRST_REJECT) == dbt_ok(r)) {
        abort();
    }
    struct dbt_buf b;
    dbt_buf_init(&b, 1 << 16);
    switch (f.kind) {
    case DBT_PG_FIRST_STARTUP: {
        if (f.startup.user[0] == '\0' || f.consumed < 9) {
            abort();
        }
        struct dbt_rd it = f.startup.params;
        struct dbt_pg_param prm;
        size_t count = 0;
        while (dbt_pg_startup_param_next(&it, &prm)) {
            count++;
        }
        if (count != f.startup.n_params) {
            abort();
        }
        IGNORE(dbt_pg_negotiate_encode(&b, DBT_PG_PROTO_LATEST, &f.startup));
        break;
    }
    case DBT_PG_FIRST_CANCEL:
        if (f.cancel.key_len == 0 || f.cancel.key_len > DBT_PG_MAX_CANCEL_KEY_LENGTH) {
            abort();
        }
        if (!dbt_ok(dbt_pg_cancel_encode(&b, &f.cancel)) || b.len != f.consumed) {
            abort();
        }
        break;
    case DBT_PG_FIRST_REJECT:
        if (f.reject.send && !dbt_ok(dbt_pg_reject_encode(&b, &f.reject))) {
            abort();
        }
        break;
    case DBT_PG_FIRST_NEED_MORE:
        if (f.need <= n && f.need != 4) {
            abort();
        }
        break;
    default:
        break;
    }
    dbt_buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        one(data, 0, 0);
        return 0;
    }
    /* Copy so that ASan sees reads past the exact end of the packet. */
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, size - 1);
    one(copy, size - 1, data[0] & 7u);
    one(copy, size - 1, 0);
    free(copy);
    return 0;
}
