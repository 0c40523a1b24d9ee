/*
 * fuzz_hba.c - libFuzzer target for the access rules: the input is pg_hba.conf text, then
 * optionally a NUL byte and pg_ident.conf text. Both are parsed; a parsed set is dumped and
 * asked about a few fixed connections (IPv4/IPv6, with and without TLS and certificates). The
 * pg_hba.conf text doubles as a system user name (a certificate CN) matched against ident map
 * "m", so the regular expressions are run, not only compiled.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "front/rules/hba.h"
#include "split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results the target does not care about (refusals are expected on fuzzed input). */
#define IGNORE(expr)                                                                               \
    do {                                                                                           \
        dbt_res ignored_ = (expr);                                                                 \
        (void)ignored_;                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *hba_text = NULL, *id_text = NULL;
    size_t hba_len = 0, id_len = 0;
    if (!fuzz_split(data, size, &hba_text, &hba_len, &id_text, &id_len)) {
        return 0;
    }

    struct dbt_hba *hba = NULL;
    struct dbt_ident *id = NULL;
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    if (id_len && dbt_ok(dbt_ident_parse(id_text, id_len, "pg_ident.conf", &id))) {
        IGNORE(dbt_ident_dump(id, &b));
        char log[256];
        (void)dbt_ident_check(id, "m", "alice", hba_text, log, sizeof(log));
    }
    if (dbt_ok(dbt_hba_parse(hba_text, hba_len, "pg_hba.conf", &hba))) {
        IGNORE(dbt_hba_dump(hba, &b));
        struct sockaddr_in a4 = {.sin_family = AF_INET};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
        inet_pton(AF_INET, "10.1.2.3", &a4.sin_addr);
        inet_pton(AF_INET6, "::1", &a6.sin6_addr);
        const struct sockaddr *addrs[] = {(const struct sockaddr *)&a4,
                                          (const struct sockaddr *)&a6};
        const char *names[] = {"all", "alice", "replication", "db"};
        for (size_t i = 0; i < 2 * 2 * 4 * 2; i++) {
            struct dbt_hba_conn c = {
                .addr = addrs[i & 1],
                .addr_len = (i & 1) ? sizeof(a6) : sizeof(a4),
                .ssl = (i >> 1) & 1,
                .replication = (i >> 5) & 1,
                .user = names[(i >> 2) & 3],
                .database = names[((i >> 2) + 1) & 3],
                .engine_major = (i & 2) ? 15 : 13,
            };
            struct dbt_hba_tls t = {
                .cert_valid = (i >> 1) & 1, .cn = names[(i >> 3) & 3], .dn = names[(i >> 4) & 3]};
            struct dbt_hba_verdict v;
            dbt_hba_check(hba, id, &c, &t, &v);
            if (v.accept == (v.sqlstate != NULL)) {
                abort();
            }
        }
        dbt_hba_free(hba);
    }
    dbt_ident_free(id);
    dbt_buf_cleanup(&b);
    free(hba_text);
    free(id_text);
    return 0;
}
