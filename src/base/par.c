/*
 * par.c - dbt_par_run (par.h): a shared counter hands out indices in increasing order, so every
 * index below a failing one was already taken and runs to its end: the lowest failure is
 * always among those that ran, whatever the interleaving.
 */
#include "base/par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 16
#define MIN_JOBS_PER_THREAD 4

struct par {
    size_t n;
    dbt_res (*job)(void *arg, size_t i);
    void *arg;
    _Atomic size_t next;
    _Atomic bool stop;
    pthread_mutex_t lock;
    size_t fail_i; /* SIZE_MAX: none */
    dbt_res fail;
    char msg[1024];
};

static void *worker(void *p)
{
    struct par *par = p;
    while (!atomic_load(&par->stop)) {
        size_t i = atomic_fetch_add(&par->next, 1);
        if (i >= par->n) {
            break;
        }
        dbt_res r = par->job(par->arg, i);
        if (!dbt_ok(r)) {
            pthread_mutex_lock(&par->lock);
            if (i < par->fail_i) {
                par->fail_i = i;
                par->fail = r;
                strncpy(par->msg, dbt_errmsg(), sizeof(par->msg) - 1);
            }
            pthread_mutex_unlock(&par->lock);
            atomic_store(&par->stop, true);
        }
    }
    return NULL;
}

dbt_res dbt_par_run(size_t n, size_t max_threads, dbt_res (*job)(void *arg, size_t i), void *arg)
{
    struct par par = {.n = n, .job = job, .arg = arg, .fail_i = SIZE_MAX, .fail = DBT_OK};
    atomic_init(&par.next, 0);
    atomic_init(&par.stop, false);
    pthread_mutex_init(&par.lock, NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t t = max_threads != 0 ? max_threads : cores > 0 ? (size_t)cores : 1;
    if (t > MAX_THREADS) {
        t = MAX_THREADS;
    }
    if (t > n / MIN_JOBS_PER_THREAD) {
        t = n / MIN_JOBS_PER_THREAD;
    }
    pthread_t tids[MAX_THREADS];
    size_t started = 0;
    for (size_t k = 1; k < t; k++) {
        if (pthread_create(&tids[started], NULL, worker, &par) == 0) {
            started++;
        }
    }
    worker(&par);
    for (size_t k = 0; k < started; k++) {
        pthread_join(tids[k], NULL);
    }
    pthread_mutex_destroy(&par.lock);
    if (par.fail_i != SIZE_MAX) {
        return dbt_fail(par.fail.code, "%s", par.msg);
    }
    return DBT_OK;
}
