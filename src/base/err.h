/*
 * err.h - the one result type of dbtls and its error list.
 *
 * Every fallible function returns a dbt_res. The error codes come from one X-macro list that also
 * generates their names and docs/errors.md (scripts/gen-errors.sh). A failing function records a
 * one-line, human message naming what failed and why (dbt_fail); the caller that reports to a user
 * reads it with dbt_errmsg(). The message is per thread, so workers never see each other's.
 *
 * The macros keep the happy path straight. A function using them declares `dbt_res res = DBT_OK;`
 * and ends with an `out:` label that frees what it owns and returns res.
 */
#ifndef DBT_BASE_ERR_H
#define DBT_BASE_ERR_H

#include <stdbool.h>

/* X(NAME, exit_code, description) */
#define DBT_ERRORS(X)                                                                              \
    X(OK, 0, "success")                                                                            \
    X(NOMEM, 1, "out of memory")                                                                   \
    X(IO, 1, "a system call or file operation failed")                                             \
    X(INVALID, 1, "an argument or input value is invalid")                                         \
    X(USAGE, 2, "the command line is malformed")                                                   \
    X(NOT_FOUND, 1, "the named object does not exist")                                             \
    X(EXISTS, 1, "an object with that name already exists")                                        \
    X(LIMIT, 1, "a configured limit would be exceeded")                                            \
    X(STATE, 1, "the operation is not allowed in the object's current state")                      \
    X(PERM, 1, "a file has unsafe permissions or access was denied")                               \
    X(CRYPTO, 1, "a cryptographic operation failed")                                               \
    X(STORE, 1, "the store could not be read or written")                                          \
    X(CORRUPT, 1, "stored data is damaged or was not written by dbtls")                            \
    X(PROTO, 1, "a network peer violated the wire protocol")                                       \
    X(TLS, 1, "a TLS handshake or record operation failed")                                        \
    X(AGAIN, 1, "more input is needed")                                                            \
    X(CLOSED, 1, "the peer closed the connection")                                                 \
    X(TIMEOUT, 1, "a deadline passed")                                                             \
    X(DENIED, 1, "access rules refused the connection")                                            \
    X(INTERNAL, 1, "an internal invariant was violated")

enum dbt_err {
#define DBT_ERR_ENUM(name, exit_code, desc) DBT_E_##name,
    DBT_ERRORS(DBT_ERR_ENUM)
#undef DBT_ERR_ENUM
        DBT_E__COUNT
};

/* Wrapped in a struct so that a result cannot be silently used as an int. */
typedef struct dbt_res {
    enum dbt_err code;
} dbt_res;

#define DBT_WUR __attribute__((warn_unused_result))
#define DBT_PRINTF(a, b) __attribute__((format(printf, a, b)))

#define DBT_OK ((dbt_res){DBT_E_OK})

static inline bool dbt_ok(dbt_res r)
{
    return r.code == DBT_E_OK;
}

/* Records a one-line message for this thread and returns a result with the code. */
dbt_res dbt_fail(enum dbt_err code, const char *fmt, ...) DBT_PRINTF(2, 3);

/* Prefixes the thread's current message with context ("instance \"x\": " + old message). */
dbt_res dbt_fail_ctx(dbt_res r, const char *fmt, ...) DBT_PRINTF(2, 3);

/* The message recorded by the last dbt_fail on this thread ("" if none). */
const char *dbt_errmsg(void);

/* Clears the thread's message. */
void dbt_errclear(void);

const char *dbt_err_name(enum dbt_err code);
const char *dbt_err_desc(enum dbt_err code);
/* Process exit code for a result: 0 ok, 2 usage, 1 otherwise. */
int dbt_err_exit_code(dbt_res r);

#define DBT_TRY(expr)                                                                              \
    do {                                                                                           \
        dbt_res try_res_ = (expr);                                                                 \
        if (!dbt_ok(try_res_)) {                                                                   \
            res = try_res_;                                                                        \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#define DBT_BAIL(code, ...)                                                                        \
    do {                                                                                           \
        res = dbt_fail(DBT_E_##code, __VA_ARGS__);                                                 \
        goto out;                                                                                  \
    } while (0)

#define DBT_ENSURE(cond, code, ...)                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            DBT_BAIL(code, __VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

#define DBT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
