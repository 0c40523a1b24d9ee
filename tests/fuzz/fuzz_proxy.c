/*
 * fuzz_proxy.c - libFuzzer target for the PROXY protocol header decoder (proto/proxy): a header
 * that decodes lies within the input, and every prefix of it asks for more bytes (AGAIN) rather
 * than deciding early; a source address is IPv4 or IPv6 with its length.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/proxy/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dbt_proxy_hdr h;
    dbt_res r = dbt_proxy_parse(data, size, &h);
    if (r.code == DBT_E_OK) {
        if (h.len == 0 || h.len > size) {
            abort();
        }
        if (h.has_src &&
            !((h.src.ss_family == AF_INET && h.src_len == sizeof(struct sockaddr_in)) ||
              (h.src.ss_family == AF_INET6 && h.src_len == sizeof(struct sockaddr_in6)))) {
            abort();
        }
        struct dbt_proxy_hdr again;
        for (size_t n = 0; n < h.len; n++) {
            if (dbt_proxy_parse(data, n, &again).code != DBT_E_AGAIN) {
                abort();
            }
        }
    } else if (r.code != DBT_E_AGAIN && r.code != DBT_E_INVALID) {
        abort();
    }
    return 0;
}
