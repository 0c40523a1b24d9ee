/*
 * par.h - independent jobs spread over the machine's cores, for the CPU-bound part of building a
 * configuration (decrypting keys, signing CRLs, building TLS contexts: ≈ 2-4 ms an instance with
 * OpenSSL 3.0, so seconds for a fleet). Plain threads made per call: the jobs are few and long
 * next to a thread start, and nothing stays running between reloads.
 */
#ifndef DBT_BASE_PAR_H
#define DBT_BASE_PAR_H

#include <stddef.h>

#include "base/err.h"

/*
 * Runs job(arg, i) for i in [0, n) on up to max_threads threads (0 = the number of online
 * cores; the calling thread is one of them; small n runs on the caller alone). Jobs must be
 * independent: each touches only its own i's outputs and what is read-only during the run.
 * After a failure no further job starts; the result is that of the lowest failing i with its
 * message (as a sequential loop that stops at its first failure would report), re-raised on
 * the calling thread. Threads that cannot be created just leave their share to the others.
 */
dbt_res dbt_par_run(size_t n, size_t max_threads, dbt_res (*job)(void *arg, size_t i),
                    void *arg) DBT_WUR;

#endif
