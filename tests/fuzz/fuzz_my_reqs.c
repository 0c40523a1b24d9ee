/*
 * fuzz_my_reqs.c - libFuzzer target for the per-user REQUIRE rules of MySQL/MariaDB instances
 * (proto/my/myreq.h, the text of `--user-require-file`): the input is the rules text, then
 * optionally a NUL byte and a DN in RFC 2253 form. The text is parsed; a parsed set is asked
 * for a few fixed accounts and its rules checked against a few TLS sessions; the DN is
 * converted to X509_NAME_oneline's form and used as a LIKE pattern.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/my/myreq.h"
#include "split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = NULL, *dn = NULL;
    size_t text_len = 0, dn_len = 0;
    if (!fuzz_split(data, size, &text, &text_len, &dn, &dn_len)) {
        return 0;
    }

    char oneline[512];
    bool dn_ok = dbt_ok(dbt_my_dn_oneline(dn, oneline, sizeof(oneline)));
    (void)dbt_my_host_like(dn, "10.1.2.3");
    struct dbt_my_reqs reqs = {0};
    if (dbt_ok(dbt_my_reqs_parse(text, &reqs))) {
        const char *users[] = {"alice", "bob", "", "root"};
        const char *hosts[] = {"10.1.2.3", "::1", "127.0.0.1", "localhost"};
        for (size_t i = 0; i < 4 * 4 * 3; i++) {
            const char *u = users[i & 3];
            const struct dbt_my_req *r = dbt_my_reqs_find(&reqs, u, strlen(u), hosts[(i >> 2) & 3]);
            if (r != NULL && (r->user == NULL || r->host == NULL)) {
                abort();
            }
            struct dbt_my_tls_facts f = {
                .tls = (i >> 4) != 0,
                .cert_present = (i >> 4) == 2,
                .cert_verified = (i >> 4) == 2,
                .subject = dn_ok ? oneline : "/CN=alice",
                .issuer = "/CN=dbtls client CA",
                .cipher = "TLS_AES_256_GCM_SHA384",
            };
            dbt_res ignored = dbt_my_req_check(r, &f);
            (void)ignored;
            if (r != NULL) {
                (void)dbt_my_req_type_name(r->type);
            }
        }
        dbt_my_reqs_free(&reqs);
    }
    free(text);
    free(dn);
    return 0;
}
