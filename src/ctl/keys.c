/*
 * keys.c - private keys made before a write transaction. Generating a key is the slow part of
 * every issuing operation (RSA-4096: seconds) and needs nothing from the store, so an operation
 * plans the keys it will need (in a read transaction, or from its arguments alone), generates
 * them holding no lock, and only then takes the write lock (BEGIN IMMEDIATE) to re-check its
 * preconditions, sign (fast) and store. Other writers (dbtls commands, the admin API, the
 * daemon's scheduler) never wait for a key generation.
 *
 * If the store changed between the plan and the write transaction so that a key of another type
 * is needed (e.g. the instance moved to another CA meanwhile), ctl_keys_take finds none: the
 * operation rolls back, discards its keys and runs again from the plan (CTL_KEYS_TRIES).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl/internal.h"

static void (*keygen_hook)(void *arg);
static void *keygen_hook_arg;

void dbt_ctl_test_keygen_hook(void (*fn)(void *arg), void *arg)
{
    keygen_hook = fn;
    keygen_hook_arg = arg;
}

dbt_res ctl_key_generate(enum dbt_pki_key_type t, struct dbt_pki_key **out)
{
    if (keygen_hook) { /* tests only: see dbt_ctl_test_keygen_hook */
        keygen_hook(keygen_hook_arg);
    }
    return dbt_pki_key_generate(t, out);
}

void ctl_keys_want(struct ctl_keys *k, enum dbt_pki_key_type t)
{
    /* Plans are a handful of keys; a longer one is a bug in the caller. */
    if (k->n == CTL_KEYS_MAX) {
        abort();
    }
    k->v[k->n].type = t;
    k->v[k->n].key = NULL;
    k->n++;
}

dbt_res ctl_keys_generate(struct ctl_keys *k)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->v[i].key == NULL) {
            dbt_res r = ctl_key_generate(k->v[i].type, &k->v[i].key);
            if (!dbt_ok(r)) {
                return r;
            }
        }
    }
    return DBT_OK;
}

dbt_res ctl_keys_take(struct ctl_keys *k, enum dbt_pki_key_type t, struct dbt_pki_key **out)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->v[i].type == t && k->v[i].key) {
            *out = k->v[i].key;
            k->v[i].key = NULL;
            return DBT_OK;
        }
    }
    k->stale = true;
    return dbt_fail(DBT_E_STATE,
                    "the store changed while the new keys were generated (a %s key is now "
                    "needed); run the command again",
                    dbt_pki_key_type_label(t));
}

void ctl_keys_cleanup(struct ctl_keys *k)
{
    for (size_t i = 0; i < k->n; i++) {
        dbt_pki_key_free(k->v[i].key);
    }
    memset(k, 0, sizeof *k);
}
