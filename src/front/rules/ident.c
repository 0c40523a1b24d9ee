/*
 * ident.c - pg_ident.conf user name maps (PostgreSQL 15 "User Name Maps"): parsing after
 * parse_ident_line and lookup after check_usermap / check_ident_usermap (src/backend/libpq/
 * hba.c). A system user name starting with '/' is a POSIX extended regular expression (not
 * anchored unless written with ^ and $); the first \1 in the PostgreSQL user name is replaced
 * by the first parenthesized capture.
 */
#include "front/rules/hba.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/rules/tok.h"

struct ident_line {
    int line;
    const char *map;     /* borrowed from the tokenized file */
    const char *sysuser; /* as written, '/' included for a regex */
    const char *pguser;
    bool is_regex;
    regex_t re;
};

struct dbt_ident {
    struct dbt_tok_file tf;
    struct ident_line *lines;
    size_t n;
};

void dbt_ident_free(struct dbt_ident *ident)
{
    if (ident == NULL) {
        return;
    }
    for (size_t i = 0; i < ident->n; i++) {
        if (ident->lines[i].is_regex) {
            regfree(&ident->lines[i].re);
        }
    }
    free(ident->lines);
    dbt_tok_file_free(&ident->tf);
    free(ident);
}

/*
 * glibc's regcomp copies the operand of every repetition ('+' twice, '{n,m}' m times, nested
 * ones multiply), so "e++++..." or "((a+)+)+..." asks it for 2^n nodes: a 100-character line in
 * an ident file made it allocate gigabytes (found by fuzz_hba). Before compiling, the size of
 * that expansion is estimated, as nodes, from the pattern's structure; past IDENT_RE_MAX_NODES
 * the expression is refused with the reason. Returns NULL when it is fine.
 */
#define IDENT_RE_MAX_LEN 1000
#define IDENT_RE_MAX_NODES 100000.0
#define IDENT_RE_MAX_DEPTH 64

static const char *regex_too_costly(const char *re)
{
    if (strlen(re) > IDENT_RE_MAX_LEN) {
        return "longer than 1000 characters";
    }
    double saved[IDENT_RE_MAX_DEPTH];
    int depth = 0;
    double sum = 0, last = 0; /* nodes at this depth so far; of the last atom or group */
    for (const char *p = re; *p != '\0'; p++) {
        double factor = 0;
        switch (*p) {
        case '(':
            if (depth == IDENT_RE_MAX_DEPTH) {
                return "nested more than 64 groups deep";
            }
            saved[depth++] = sum;
            sum = last = 0;
            continue;
        case ')':
            if (depth > 0) {
                last = sum;
                sum = saved[--depth] + last;
                continue;
            }
            break;
        case '*':
        case '?':
            factor = 2;
            break;
        case '+':
            factor = 3;
            break;
        case '{': {
            char *end = NULL;
            unsigned long lo = strtoul(p + 1, &end, 10), hi = lo;
            if (end == p + 1) {
                break; /* not a bound: a literal brace */
            }
            if (*end == ',') {
                const char *q = end + 1;
                hi = strtoul(q, &end, 10);
                if (end == q) {
                    hi = lo; /* {n,}: n copies and a star */
                }
            }
            if (*end != '}') {
                break;
            }
            factor = (double)(hi > lo ? hi : lo) + 2;
            p = end;
            break;
        }
        case '[': { /* a bracket expression is one node: skip to its ']' */
            const char *q = p + 1;
            q += *q == '^';
            q += *q == ']'; /* a leading ']' is a member */
            while (*q != '\0' && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    const char *close = strstr(q + 2, (char[]){q[1], ']', '\0'});
                    if (close == NULL) {
                        break;
                    }
                    q = close + 2;
                    continue;
                }
                q++;
            }
            p = *q == ']' ? q : p;
            break;
        }
        case '\\':
            p += p[1] != '\0';
            break;
        default:
            break;
        }
        if (factor > 0) {
            sum += last * (factor - 1);
            last *= factor;
        } else {
            sum += 1;
            last = 1;
        }
        if (sum > IDENT_RE_MAX_NODES || last > IDENT_RE_MAX_NODES) {
            return "its repetitions would expand to too many states (repeated '+', '*', "
                   "'{n,m}' on repeated groups)";
        }
    }
    for (int d = depth - 1; d >= 0; d--) {
        sum += saved[d];
    }
    return sum > IDENT_RE_MAX_NODES ? "too large" : NULL;
}

static dbt_res parse_line(const char *file, const struct dbt_tok_line *tl, struct ident_line *il)
{
    const int line = tl->line;
    memset(il, 0, sizeof(*il));
    il->line = line;
    /* Map name, system user, PostgreSQL user: one value each (IDENT_MULTI_VALUE). */
    for (size_t i = 0; i < 3; i++) {
        if (i >= tl->n) {
            return dbt_tok_error(file, line, "missing entry at end of line");
        }
        if (tl->fields[i].n != 1) {
            return dbt_tok_error(file, line, "multiple values in ident field");
        }
    }
    il->map = tl->fields[0].toks[0].s;
    il->sysuser = tl->fields[1].toks[0].s;
    il->pguser = tl->fields[2].toks[0].s;
    if (il->sysuser[0] == '/') {
        const char *why = regex_too_costly(il->sysuser + 1);
        if (why != NULL) {
            return dbt_tok_error(file, line, "regular expression \"%.80s%s\" refused: %s",
                                 il->sysuser + 1, strlen(il->sysuser + 1) > 80 ? "..." : "", why);
        }
        int rc = regcomp(&il->re, il->sysuser + 1, REG_EXTENDED);
        if (rc != 0) {
            char err[256];
            regerror(rc, &il->re, err, sizeof(err));
            return dbt_tok_error(file, line, "invalid regular expression \"%s\": %s",
                                 il->sysuser + 1, err);
        }
        il->is_regex = true;
    }
    return DBT_OK;
}

dbt_res dbt_ident_parse(const char *text, size_t len, const char *file_name, struct dbt_ident **out)
{
    dbt_res res = DBT_OK;
    struct dbt_ident *id = calloc(1, sizeof(*id));
    if (id == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory parsing an ident map");
    }
    DBT_TRY(dbt_tok_file(text, len, &id->tf));
    if (id->tf.n > 0) {
        id->lines = calloc(id->tf.n, sizeof(*id->lines));
        DBT_ENSURE(id->lines != NULL, NOMEM, "out of memory parsing an ident map");
    }
    for (size_t i = 0; i < id->tf.n; i++) {
        DBT_TRY(parse_line(file_name, &id->tf.lines[i], &id->lines[i]));
        id->n = i + 1;
    }
    *out = id;
    id = NULL;
out:
    dbt_ident_free(id);
    return res;
}

dbt_res dbt_ident_dump(const struct dbt_ident *ident, struct dbt_buf *out)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < ident->n; i++) {
        const struct ident_line *il = &ident->lines[i];
        DBT_TRY(dbt_rules_printf(out, "line %d: map=%s %s=%s pg=%s\n", il->line, il->map,
                                 il->is_regex ? "regex" : "system",
                                 il->is_regex ? il->sysuser + 1 : il->sysuser, il->pguser));
    }
out:
    return res;
}

/*
 * check_ident_usermap for one line. Returns 1 on a match, 0 on none, -1 on an error (logged in
 * log, as PostgreSQL logs it).
 */
static int check_line(const struct ident_line *il, const char *pg_user, const char *system_user,
                      char *log, size_t log_size)
{
    if (!il->is_regex) {
        return strcmp(il->sysuser, system_user) == 0 && strcmp(il->pguser, pg_user) == 0;
    }
    regmatch_t m[2];
    int rc = regexec(&il->re, system_user, 2, m, 0);
    if (rc == REG_NOMATCH) {
        return 0;
    }
    if (rc != 0) {
        char err[128];
        regerror(rc, &il->re, err, sizeof(err));
        snprintf(log, log_size, "regular expression match for \"%s\" failed: %s", il->sysuser + 1,
                 err);
        return -1;
    }
    const char *ofs = strstr(il->pguser, "\\1");
    if (ofs == NULL) {
        return strcmp(il->pguser, pg_user) == 0;
    }
    if (il->re.re_nsub < 1 || m[1].rm_so < 0) {
        snprintf(log, log_size,
                 "regular expression \"%s\" has no subexpressions as requested by backreference "
                 "in \"%s\"",
                 il->sysuser + 1, il->pguser);
        return -1;
    }
    /* Replace the first \1 only, as PostgreSQL does, then compare. */
    size_t pre = (size_t)(ofs - il->pguser);
    size_t cap = (size_t)(m[1].rm_eo - m[1].rm_so);
    size_t post = strlen(ofs + 2);
    size_t ul = strlen(pg_user);
    if (ul != pre + cap + post) {
        return 0;
    }
    return strncmp(pg_user, il->pguser, pre) == 0 &&
           strncmp(pg_user + pre, system_user + m[1].rm_so, cap) == 0 &&
           strcmp(pg_user + pre + cap, ofs + 2) == 0;
}

bool dbt_ident_check(const struct dbt_ident *ident, const char *map, const char *pg_user,
                     const char *system_user, char *log, size_t log_size)
{
    if (log_size > 0) {
        log[0] = '\0';
    }
    if (map == NULL || map[0] == '\0') {
        if (strcmp(pg_user, system_user) == 0) {
            return true;
        }
        snprintf(log, log_size,
                 "provided user name (%s) and authenticated user name (%s) do not match", pg_user,
                 system_user);
        return false;
    }
    for (size_t i = 0; ident != NULL && i < ident->n; i++) {
        const struct ident_line *il = &ident->lines[i];
        if (strcmp(il->map, map) != 0) {
            continue;
        }
        int r = check_line(il, pg_user, system_user, log, log_size);
        if (r > 0) {
            return true;
        }
        if (r < 0) {
            return false;
        }
    }
    snprintf(log, log_size, "no match in usermap \"%s\" for user \"%s\" authenticated as \"%s\"",
             map, pg_user, system_user);
    return false;
}
