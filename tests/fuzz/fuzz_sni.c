/*
 * fuzz_sni.c - libFuzzer target for the server_name extension body the front reads from a
 * client's ClientHello to choose the instance on a shared address (tls/sni.c): a name, when
 * one is returned, lies inside the input, is NUL-free, non-empty and fits the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256];
    for (size_t cap = 1; cap <= sizeof(name); cap += 127) {
        memset(name, 'x', sizeof(name));
        if (dbt_tls_sni_parse(data, size, name, cap)) {
            size_t n = strlen(name);
            if (n == 0 || n >= cap || size < n + 5 || memmem(data, size, name, n) == NULL) {
                abort();
            }
        }
    }
    return 0;
}
