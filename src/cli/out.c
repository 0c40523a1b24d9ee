/*
 * out.c - prints handler results as JSON or as tables for people (see out.h), and writes
 * artifact files with the right mode.
 */
#include "cli/out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"

int dbt_cli_finish(const struct dbt_cli *c, dbt_res res)
{
    if (dbt_ok(res)) {
        return 0;
    }
    if (res.code == DBT_E_USAGE) {
        return dbt_cli_usage_error(c->cmd, "%s", dbt_errmsg());
    }
    return dbt_cli_fail(res);
}

json_t *dbt_cli_jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *dbt_cli_jtime(int64_t unix_secs)
{
    char buf[40];

    if (unix_secs == 0) {
        return json_null();
    }
    dbt_time_rfc3339(unix_secs, buf, sizeof(buf));
    return json_string(buf);
}

void dbt_cli_jset(json_t *obj, const char *key, json_t *value)
{
    if (value) {
        json_object_set_new(obj, key, value);
    }
}

static void print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);

    if (!s) {
        fprintf(stderr, "dbtls: out of memory while formatting JSON\n");
        return;
    }
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
}

/* The table cell for a JSON value: strings as is, arrays joined with ",", null as "-". Returns
 * a malloc'd string. */
static char *cell_text(json_t *v)
{
    char tmp[64];

    if (!v || json_is_null(v)) {
        return strdup("-");
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strdup(json_string_value(v));
    case JSON_INTEGER:
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(tmp);
    case JSON_REAL:
        snprintf(tmp, sizeof(tmp), "%g", json_real_value(v));
        return strdup(tmp);
    case JSON_TRUE:
        return strdup("true");
    case JSON_FALSE:
        return strdup("false");
    case JSON_ARRAY: {
        size_t i, total = 2; /* the terminator, or "-" and it for an empty array */
        json_t *e;
        char *out;
        char **parts = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!parts) {
            return NULL;
        }
        json_array_foreach(v, i, e)
        {
            parts[i] = cell_text(e);
            total += (parts[i] ? strlen(parts[i]) : 0) + 1;
        }
        out = calloc(1, total);
        if (out) {
            json_array_foreach(v, i, e)
            {
                if (i > 0) {
                    strcat(out, ",");
                }
                if (parts[i]) {
                    strcat(out, parts[i]);
                }
            }
            if (json_array_size(v) == 0) {
                strcpy(out, "-");
            }
        }
        for (i = 0; i < json_array_size(v); i++) {
            free(parts[i]);
        }
        free(parts);
        return out;
    }
    case JSON_OBJECT:
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        return s ? s : strdup("?");
    }
    }
}

/* A padded cell and its separator, or (width < 0) the last cell of a row. */
static void print_cell(const char *text, int width)
{
    if (width < 0) {
        printf("%s\n", text);
    } else {
        printf("%-*s  ", width, text);
    }
}

void dbt_cli_print_list(const struct dbt_cli *c, json_t *arr, const struct dbt_cli_col *cols)
{
    size_t ncols = 0, nrows, i, j;
    size_t *width;
    char **cells;
    json_t *row;

    if (c->format == DBT_CLI_FMT_JSON) {
        print_json(arr);
        return;
    }
    nrows = json_array_size(arr);
    if (nrows == 0) {
        fprintf(stderr, "Listed 0 items.\n");
        return;
    }
    while (cols[ncols].header) {
        ncols++;
    }
    width = calloc(ncols, sizeof(*width));
    cells = calloc(ncols * nrows, sizeof(*cells));
    if (!width || !cells) {
        fprintf(stderr, "dbtls: out of memory while formatting a table\n");
        free(width);
        free(cells);
        return;
    }
    for (j = 0; j < ncols; j++) {
        width[j] = strlen(cols[j].header);
    }
    json_array_foreach(arr, i, row)
    {
        for (j = 0; j < ncols; j++) {
            char *t = cell_text(json_object_get(row, cols[j].key));
            cells[i * ncols + j] = t;
            if (t && strlen(t) > width[j]) {
                width[j] = strlen(t);
            }
        }
    }
    for (j = 0; j < ncols; j++) {
        print_cell(cols[j].header, j + 1 < ncols ? (int)width[j] : -1);
    }
    for (i = 0; i < nrows; i++) {
        for (j = 0; j < ncols; j++) {
            const char *t = cells[i * ncols + j] ? cells[i * ncols + j] : "?";
            print_cell(t, j + 1 < ncols ? (int)width[j] : -1);
        }
    }
    for (i = 0; i < ncols * nrows; i++) {
        free(cells[i]);
    }
    free(cells);
    free(width);
}

static void print_field(const char *indent, const char *key, json_t *v)
{
    if (json_is_string(v) && strchr(json_string_value(v), '\n')) {
        const char *p = json_string_value(v);
        printf("%s%s: |\n", indent, key);
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            printf("%s  %.*s\n", indent, (int)n, p);
            p += n + (nl ? 1 : 0);
        }
        return;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *sub;
        char deeper[32];
        snprintf(deeper, sizeof(deeper), "%s  ", indent);
        printf("%s%s:\n", indent, key);
        json_object_foreach(v, k, sub)
        {
            print_field(deeper, k, sub);
        }
        return;
    }
    char *t = cell_text(v);
    printf("%s%s: %s\n", indent, key, t ? t : "?");
    free(t);
}

void dbt_cli_print_object(const struct dbt_cli *c, json_t *obj)
{
    const char *key;
    json_t *v;

    if (c->format == DBT_CLI_FMT_JSON) {
        print_json(obj);
        return;
    }
    json_object_foreach(obj, key, v)
    {
        print_field("", key, v);
    }
}

void dbt_cli_print_done(const struct dbt_cli *c, json_t *obj, const char *fmt, ...)
{
    va_list ap;

    if (c->format == DBT_CLI_FMT_JSON) {
        if (obj) {
            print_json(obj);
        }
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

dbt_res dbt_cli_write_file(const char *path, const void *data, size_t len, int mode, bool exclusive)
{
    dbt_res res = DBT_OK;
    const unsigned char *p = data;
    int fd = -1;
    bool to_stdout = !path || strcmp(path, "-") == 0;

    if (to_stdout) {
        fflush(stdout);
        fd = STDOUT_FILENO;
    } else {
        int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
        fd = open(path, flags, mode);
        DBT_ENSURE(fd >= 0, IO, "cannot create \"%s\": %s", path, strerror(errno));
        /* O_CREAT honours the umask and an existing file keeps its mode: set it exactly. */
        DBT_ENSURE(fchmod(fd, (mode_t)mode) == 0, IO, "cannot set mode of \"%s\": %s", path,
                   strerror(errno));
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        DBT_ENSURE(n > 0, IO, "cannot write \"%s\": %s", to_stdout ? "standard output" : path,
                   strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    if (!to_stdout) {
        DBT_ENSURE(fsync(fd) == 0, IO, "cannot write \"%s\": %s", path, strerror(errno));
    }
out:
    if (!to_stdout && fd >= 0) {
        if (close(fd) != 0 && dbt_ok(res)) {
            res = dbt_fail(DBT_E_IO, "cannot write \"%s\": %s", path, strerror(errno));
        }
    }
    return res;
}

#define TEXT_FILE_MAX (1u << 20) /* access rules or keys larger than 1 MiB are a mistake */

dbt_res dbt_cli_read_text(const char *what, const char *path, char **out)
{
    dbt_res res = DBT_OK;
    FILE *f = NULL;
    char *buf = NULL;
    size_t n;

    if (path[0] == '\0') {
        *out = strdup("");
        return *out ? DBT_OK : dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    f = fopen(path, "rb");
    DBT_ENSURE(f, IO, "cannot read %s \"%s\": %s", what, path, strerror(errno));
    buf = malloc(TEXT_FILE_MAX + 1);
    DBT_ENSURE(buf, NOMEM, "out of memory");
    n = fread(buf, 1, TEXT_FILE_MAX + 1, f);
    DBT_ENSURE(!ferror(f), IO, "cannot read %s \"%s\": %s", what, path, strerror(errno));
    DBT_ENSURE(n <= TEXT_FILE_MAX, INVALID, "%s \"%s\" is larger than %u bytes", what, path,
               TEXT_FILE_MAX);
    DBT_ENSURE(memchr(buf, '\0', n) == NULL, INVALID, "%s \"%s\" is not a text file", what, path);
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    free(buf);
    if (f) {
        fclose(f);
    }
    return res;
}

dbt_res dbt_cli_read_text_file(const char *opt, const char *path, char **out)
{
    char what[64];
    snprintf(what, sizeof what, "--%s", opt);
    return dbt_cli_read_text(what, path, out);
}

dbt_res dbt_cli_out_files_check(const char *dir, const char *const *names, size_t n,
                                char paths[][4096])
{
    dbt_res res = DBT_OK;
    struct stat st;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(paths[i], 4096, "%s/%s", dir, names[i]);
        DBT_ENSURE(len > 0 && len < 4096, INVALID, "--out-dir \"%s\" is too long", dir);
    }
    if (stat(dir, &st) != 0) {
        DBT_ENSURE(errno == ENOENT, IO, "cannot use --out-dir \"%s\": %s", dir, strerror(errno));
        return DBT_OK;
    }
    DBT_ENSURE(S_ISDIR(st.st_mode), INVALID, "--out-dir \"%s\" is not a directory", dir);
    for (size_t i = 0; i < n; i++) {
        if (lstat(paths[i], &st) == 0) {
            DBT_BAIL(EXISTS,
                     "\"%s\" already exists; refusing to overwrite it (choose another --out-dir "
                     "or remove it)",
                     paths[i]);
        }
        DBT_ENSURE(errno == ENOENT, IO, "cannot check \"%s\": %s", paths[i], strerror(errno));
    }
out:
    return res;
}

dbt_res dbt_cli_out_dir_make(const char *dir, bool *made)
{
    *made = mkdir(dir, 0700) == 0;
    if (!*made && errno != EEXIST) {
        return dbt_fail(DBT_E_IO, "cannot create directory \"%s\": %s", dir, strerror(errno));
    }
    return DBT_OK;
}
