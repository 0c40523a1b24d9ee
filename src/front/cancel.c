/*
 * cancel.c - the cancel-key table shared by all workers (front.h). A PostgreSQL client cancels a
 * query by opening a new connection and sending CancelRequest with the (pid, secret key) the
 * backend gave it in BackendKeyData; the front relays BackendKeyData unchanged, so it records
 * which backend address issued each key and forwards a CancelRequest there. Keys may be up to
 * 256 bytes from protocol 3.2. The table is a hash on pid with a mutex; the secret is compared
 * in constant time.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/front.h"

#define CANCEL_BUCKETS 1024
#define CANCEL_KEY_MAX 256

struct cancel_entry {
    uint64_t token;
    uint32_t pid;
    size_t key_len;
    uint8_t key[CANCEL_KEY_MAX];
    struct dbt_cancel_target target;
    struct cancel_entry *next;
};

static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cancel_entry *buckets[CANCEL_BUCKETS];
static uint64_t next_token = 1;

static size_t bucket_of(uint32_t pid)
{
    return (pid * 2654435761u) % CANCEL_BUCKETS;
}

static bool key_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

dbt_res dbt_cancel_register(uint32_t pid, const uint8_t *key, size_t key_len,
                            const struct sockaddr *addr, socklen_t addrlen, const char *instance,
                            uint64_t *token)
{
    if (key_len == 0 || key_len > CANCEL_KEY_MAX || addrlen > sizeof(struct sockaddr_storage)) {
        return dbt_fail(DBT_E_INVALID, "cancel key of %zu bytes", key_len);
    }
    struct cancel_entry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return dbt_fail(DBT_E_NOMEM, "cancel table: out of memory");
    }
    e->pid = pid;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    memcpy(&e->target.addr, addr, addrlen);
    e->target.addrlen = addrlen;
    snprintf(e->target.instance, sizeof(e->target.instance), "%s", instance);
    pthread_mutex_lock(&cancel_lock);
    e->token = next_token++;
    size_t b = bucket_of(pid);
    e->next = buckets[b];
    buckets[b] = e;
    pthread_mutex_unlock(&cancel_lock);
    *token = e->token;
    return DBT_OK;
}

void dbt_cancel_unregister(uint32_t pid, uint64_t token)
{
    if (token == 0) {
        return;
    }
    pthread_mutex_lock(&cancel_lock);
    for (struct cancel_entry **pp = &buckets[bucket_of(pid)]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->token == token) {
            struct cancel_entry *e = *pp;
            *pp = e->next;
            pthread_mutex_unlock(&cancel_lock);
            free(e);
            return;
        }
    }
    pthread_mutex_unlock(&cancel_lock);
}

bool dbt_cancel_lookup(uint32_t pid, const uint8_t *key, size_t key_len,
                       struct dbt_cancel_target *out)
{
    bool found = false;
    pthread_mutex_lock(&cancel_lock);
    for (struct cancel_entry *e = buckets[bucket_of(pid)]; e != NULL; e = e->next) {
        if (e->pid == pid && e->key_len == key_len && key_equal(e->key, key, key_len)) {
            *out = e->target;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&cancel_lock);
    return found;
}
