/*
 * check.h - the unit test harness: CHECK(cond) records a failure with file:line and carries on;
 * each test program's main() returns check_exit().
 */
#ifndef DBT_TEST_CHECK_H
#define DBT_TEST_CHECK_H

#include <stdio.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        dbt_res check_r_ = (expr);                                                                 \
        check_count++;                                                                             \
        if (!dbt_ok(check_r_)) {                                                                   \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: expected OK from %s, got %s: %s\n", __FILE__, __LINE__,        \
                    #expr, dbt_err_name(check_r_.code), dbt_errmsg());                             \
        }                                                                                          \
    } while (0)

#define CHECK_ERR(expr, want_)                                                                      \
    do {                                                                                           \
        dbt_res check_r_ = (expr);                                                                 \
        check_count++;                                                                             \
        if (check_r_.code != (want_)) {                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: expected %s from %s, got %s: %s\n", __FILE__, __LINE__,        \
                    dbt_err_name(want_), #expr, dbt_err_name(check_r_.code), dbt_errmsg());         \
        }                                                                                          \
    } while (0)

static inline int check_exit(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
