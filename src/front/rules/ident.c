/*
 * ident.c - pg_ident.conf user name maps (PostgreSQL 15 "User Name Maps"): parsing after
 * parse_ident_line and lookup after check_usermap / check_ident_usermap (src/backend/libpq/
 * hba.c). A system user name starting with '/' is a regular expression (not anchored unless
 * written with ^ and $); the first \1 in the PostgreSQL user name is replaced by the first
 * parenthesized capture.
 *
 * The expressions are PCRE2's, not POSIX <regex.h>: PostgreSQL's own are Spencer's "advanced"
 * flavour (\d, \w, non-greedy *?, (?:...), lookahead), which PCRE2 shares and POSIX ERE lacks, and
 * PCRE2 bounds its work where glibc's regcomp does not (fuzz_hba found "a+++...", "((a+)+)+..."
 * and "(()*){300}" patterns that made regcomp allocate gigabytes or run for minutes). Compiling
 * is limited by pattern length and nesting, matching by PCRE2's match and heap limits; a match
 * that hits a limit is an error, logged as PostgreSQL logs a failed match.
 */
#include "front/rules/hba.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "front/rules/tok.h"

struct ident_line {
    int line;
    const char *map;     /* borrowed from the tokenized file */
    const char *sysuser; /* as written, '/' included for a regex */
    const char *pguser;
    pcre2_code *re; /* NULL unless the system user is a regular expression */
};

/* Lengths and limits: far above any real user-name pattern, far below what costs time. */
#define IDENT_RE_MAX_LEN 1000
#define IDENT_RE_MAX_NEST 64
#define IDENT_RE_MATCH_LIMIT 100000
#define IDENT_RE_HEAP_LIMIT_KB 1024

struct dbt_ident {
    struct dbt_tok_file tf;
    struct ident_line *lines;
    size_t n;
    pcre2_match_context *mctx; /* the match limits; read-only once parsed, shared by threads */
};

void dbt_ident_free(struct dbt_ident *ident)
{
    if (ident == NULL) {
        return;
    }
    for (size_t i = 0; i < ident->n; i++) {
        pcre2_code_free(ident->lines[i].re);
    }
    pcre2_match_context_free(ident->mctx);
    free(ident->lines);
    dbt_tok_file_free(&ident->tf);
    free(ident);
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
        const char *pattern = il->sysuser + 1;
        size_t len = strlen(pattern);
        if (len > IDENT_RE_MAX_LEN) {
            return dbt_tok_error(
                file, line, "invalid regular expression \"%.80s...\": longer than %d characters",
                pattern, IDENT_RE_MAX_LEN);
        }
        pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
        if (cctx == NULL) {
            return dbt_fail(DBT_E_NOMEM, "out of memory compiling a regular expression");
        }
        pcre2_set_parens_nest_limit(cctx, IDENT_RE_MAX_NEST);
        int err = 0;
        PCRE2_SIZE off = 0;
        /* As PostgreSQL's (not newline-sensitive) expressions in a UTF-8 database: '.' matches
           a newline and '$' only the very end; characters, not bytes, and \w, \d, [[:alpha:]]
           by their Unicode properties (a CN "José" is one \w+); a subject that is not valid
           UTF-8 still matches where it can instead of failing; "\C" could split a character,
           so it is refused. */
        il->re = pcre2_compile((PCRE2_SPTR)pattern, len,
                               PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C |
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                               &err, &off, cctx);
        pcre2_compile_context_free(cctx);
        if (il->re == NULL) {
            PCRE2_UCHAR msg[256];
            if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0) {
                snprintf((char *)msg, sizeof(msg), "error %d", err);
            }
            return dbt_tok_error(file, line, "invalid regular expression \"%s\": %s at offset %zu",
                                 pattern, (char *)msg, (size_t)off);
        }
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
    id->mctx = pcre2_match_context_create(NULL);
    DBT_ENSURE(id->mctx != NULL, NOMEM, "out of memory parsing an ident map");
    pcre2_set_match_limit(id->mctx, IDENT_RE_MATCH_LIMIT);
    pcre2_set_heap_limit(id->mctx, IDENT_RE_HEAP_LIMIT_KB);
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
                                 il->re != NULL ? "regex" : "system",
                                 il->re != NULL ? il->sysuser + 1 : il->sysuser, il->pguser));
    }
out:
    return res;
}

/*
 * check_ident_usermap for one line. Returns 1 on a match, 0 on none, -1 on an error (logged in
 * log, as PostgreSQL logs it).
 */
static int check_line(const struct ident_line *il, pcre2_match_context *mctx, const char *pg_user,
                      const char *system_user, char *log, size_t log_size)
{
    if (il->re == NULL) {
        return strcmp(il->sysuser, system_user) == 0 && strcmp(il->pguser, pg_user) == 0;
    }
    pcre2_match_data *md = pcre2_match_data_create(2, NULL);
    if (md == NULL) {
        snprintf(log, log_size, "regular expression match for \"%s\" failed: out of memory",
                 il->sysuser + 1);
        return -1;
    }
    int rc = pcre2_match(il->re, (PCRE2_SPTR)system_user, strlen(system_user), 0, 0, md, mctx);
    if (rc == PCRE2_ERROR_NOMATCH) {
        pcre2_match_data_free(md);
        return 0;
    }
    if (rc < 0) {
        PCRE2_UCHAR err[128];
        if (pcre2_get_error_message(rc, err, sizeof(err)) < 0) {
            snprintf((char *)err, sizeof(err), "error %d", rc);
        }
        snprintf(log, log_size, "regular expression match for \"%s\" failed: %s", il->sysuser + 1,
                 (char *)err);
        pcre2_match_data_free(md);
        return -1;
    }
    /* Group 1's span: rc is one more than the highest group set (0 when a group past the two
       pairs asked for was set); a pair past rc was not filled in. */
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    bool set = rc == 0 || rc > 1;
    PCRE2_SIZE so = set ? ov[2] : PCRE2_UNSET, eo = set ? ov[3] : PCRE2_UNSET;
    pcre2_match_data_free(md);
    const char *ofs = strstr(il->pguser, "\\1");
    if (ofs == NULL) {
        return strcmp(il->pguser, pg_user) == 0;
    }
    if (so == PCRE2_UNSET || eo < so) {
        snprintf(log, log_size,
                 "regular expression \"%s\" has no subexpressions as requested by backreference "
                 "in \"%s\"",
                 il->sysuser + 1, il->pguser);
        return -1;
    }
    /* Replace the first \1 only, as PostgreSQL does, then compare. */
    size_t pre = (size_t)(ofs - il->pguser);
    size_t cap = (size_t)(eo - so);
    size_t post = strlen(ofs + 2);
    size_t ul = strlen(pg_user);
    if (ul != pre + cap + post) {
        return 0;
    }
    return strncmp(pg_user, il->pguser, pre) == 0 &&
           strncmp(pg_user + pre, system_user + so, cap) == 0 &&
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
        int r = check_line(il, ident->mctx, pg_user, system_user, log, log_size);
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
