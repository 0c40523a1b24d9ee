/*
 * fuzz_pg_backend.c - libFuzzer target for what a backend sends the front before the relay:
 * a stream of messages framed one by one (30000-byte limit, as before authentication), each
 * handed to its decoder; AuthenticationSASL is filtered and the result decoded again. The
 * client's SASLInitialResponse ('p'), which the front decodes during authentication, is fuzzed
 * here too: it arrives framed the same way.
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

static void check_sasl(const struct dbt_pg_msg *m)
{
    struct dbt_buf b;
    size_t left = 0;
    dbt_buf_init(&b, 1 << 16);
    if (dbt_ok(dbt_pg_sasl_filter(m, &b, &left)) && left > 0) {
        struct dbt_pg_msg m2;
        struct dbt_pg_auth a;
        if (!dbt_ok(dbt_pg_msg_frame(b.data, b.len, 1 << 16, &m2)) || m2.total != b.len ||
            !dbt_ok(dbt_pg_auth_decode(&m2, &a)) || a.code != DBT_PG_AUTH_SASL) {
            abort();
        }
        const char *name;
        size_t nl, n = 0;
        while (dbt_rd_cstr(&a.data, &name, &nl) && nl > 0) {
            if (strcmp(name, DBT_PG_SCRAM_PLUS) == 0) {
                abort();
            }
            n++;
        }
        if (n != left) {
            abort();
        }
    }
    dbt_buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    size_t off = 0;
    while (off < size) {
        struct dbt_pg_msg m;
        dbt_res r = dbt_pg_msg_frame(copy + off, size - off, DBT_PG_PREAUTH_MSG_MAX, &m);
        if (!dbt_ok(r)) {
            break;
        }
        if (m.total > size - off || m.total != (size_t)m.len + 1) {
            abort();
        }
        struct dbt_pg_auth a;
        struct dbt_pg_cancel_key k;
        struct dbt_pg_error_fields ef;
        struct dbt_pg_param ps;
        struct dbt_pg_sasl_initial si;
        switch (m.type) {
        case 'R':
            if (dbt_ok(dbt_pg_auth_decode(&m, &a)) && a.code == DBT_PG_AUTH_SASL) {
                check_sasl(&m);
            }
            break;
        case 'K':
            if (dbt_ok(dbt_pg_backend_key_decode(&m, &k)) && (k.key_len < 4 || k.key_len > 256)) {
                abort();
            }
            break;
        case 'E':
        case 'N':
            IGNORE(dbt_pg_error_decode(&m, &ef));
            break;
        case 'S':
            IGNORE(dbt_pg_param_status_decode(&m, &ps));
            break;
        case 'p':
            if (dbt_ok(dbt_pg_sasl_initial_decode(&m, &si)) && strlen(si.mechanism) >= m.body_len) {
                abort();
            }
            break;
        default:
            break;
        }
        off += m.total;
    }
    free(copy);
    return 0;
}
