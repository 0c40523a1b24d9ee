/*
 * out.h - internal to src/cli: how results reach the user. Every handler builds its result as
 * jansson values with the documented field names (docs/cli.md); these functions print them
 * either as JSON (--format json) or as an aligned table / "key: value" lines for people, so
 * both views always carry the same data.
 */
#ifndef DBT_CLI_OUT_H
#define DBT_CLI_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "cli/cmd.h"

struct dbt_cli_col {
    const char *header; /* column title in table mode */
    const char *key;    /* field of each object */
};

/* The columns of each listing (cols.c), shared by the local and remote handlers. */
extern const struct dbt_cli_col dbt_cli_cols_instance[];
extern const struct dbt_cli_col dbt_cli_cols_cert[];
extern const struct dbt_cli_col dbt_cli_cols_client[];
extern const struct dbt_cli_col dbt_cli_cols_ca[];
extern const struct dbt_cli_col dbt_cli_cols_engine[];
extern const struct dbt_cli_col dbt_cli_cols_event[];
extern const struct dbt_cli_col dbt_cli_cols_check[];

/* The exit code of a handler that ends with res: 0 when it succeeded, the usage error (2) for
 * DBT_E_USAGE (a combination of options the operation refused), else dbt_cli_fail. */
int dbt_cli_finish(const struct dbt_cli *c, dbt_res res);

/* Prints an array of objects: JSON array, or a table of the given columns (NULL-terminated by a
 * column with header == NULL). "Listed 0 items." goes to stderr for an empty table. Borrows arr. */
void dbt_cli_print_list(const struct dbt_cli *c, json_t *arr, const struct dbt_cli_col *cols);

/* Prints one object: JSON, or one "key: value" line per field (multi-line values such as PEM
 * indented under "key: |"). Borrows obj. */
void dbt_cli_print_object(const struct dbt_cli *c, json_t *obj);

/* In table mode prints `msg` (a sentence for people, e.g. "Created instance [db1].") to stderr,
 * in JSON mode prints obj (may be NULL: then nothing). Borrows obj. */
void dbt_cli_print_done(const struct dbt_cli *c, json_t *obj, const char *fmt, ...)
    DBT_PRINTF(3, 4);

/* JSON helpers that never return NULL for a NULL C string: they give json null instead. */
json_t *dbt_cli_jstr(const char *s);
/* An RFC 3339 UTC time string for unix seconds (null for 0 = unset). */
json_t *dbt_cli_jtime(int64_t unix_secs);

/* Sets obj[key] = value, stealing value; a NULL value (allocation failure) is ignored and
 * detected by the final dump. */
void dbt_cli_jset(json_t *obj, const char *key, json_t *value);

/* Reads the whole text file named by option --opt (at most 1 MiB, no NUL byte) into *out
   (free()); "" gives "" (patch: clears the field). One line naming the option and why. */
dbt_res dbt_cli_read_text_file(const char *opt, const char *path, char **out) DBT_WUR;
/* The same with what naming the file in errors verbatim (`field "hbaFile"`). */
dbt_res dbt_cli_read_text(const char *what, const char *path, char **out) DBT_WUR;
/* Builds dir/<names[i]> into paths (n of them) and checks that none exists: an existing file
   refuses the command (EXISTS, naming it) before the store changes and before anything is
   written. A missing dir is fine (dbt_cli_out_dir_make makes it). */
dbt_res dbt_cli_out_files_check(const char *dir, const char *const *names, size_t n,
                                char paths[][4096]) DBT_WUR;
/* Makes --out-dir (0700) unless it exists; *made says whether this call made it. */
dbt_res dbt_cli_out_dir_make(const char *dir, bool *made) DBT_WUR;
/* Writes `len` bytes to `path` creating it with `mode` (O_EXCL when exclusive), or to stdout
 * when path is NULL or "-". Errors name the file. */
dbt_res dbt_cli_write_file(const char *path, const void *data, size_t len, int mode,
                           bool exclusive) DBT_WUR;

#endif
