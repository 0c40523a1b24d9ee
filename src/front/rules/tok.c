/*
 * tok.c - tokenizer for pg_hba.conf / pg_ident.conf text (see tok.h), after PostgreSQL's
 * tokenize_auth_file and next_token (src/backend/libpq/hba.c).
 */
#include "front/rules/tok.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* PostgreSQL's pg_isblank. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

bool dbt_tok_is_keyword(const struct dbt_tok *t, const char *kw)
{
    return !t->quoted && strcmp(t->s, kw) == 0;
}

dbt_res dbt_tok_error(const char *file_name, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dbt_fail(DBT_E_INVALID, "%s (line %d of configuration file \"%s\")", msg, line,
                    file_name);
}

dbt_res dbt_rules_printf(struct dbt_buf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return dbt_fail(DBT_E_INTERNAL, "format error");
    }
    dbt_res r = dbt_buf_reserve(out, (size_t)n + 1);
    if (!dbt_ok(r)) {
        return r;
    }
    va_start(ap, fmt);
    vsnprintf((char *)dbt_buf_tail(out), (size_t)n + 1, fmt, ap);
    va_end(ap);
    dbt_buf_commit(out, (size_t)n);
    return DBT_OK;
}

dbt_res dbt_tok_dump(struct dbt_buf *out, const struct dbt_tok *t)
{
    if (!t->quoted) {
        return dbt_rules_printf(out, "%s", t->s);
    }
    dbt_res r = dbt_rules_printf(out, "\"");
    for (const char *p = t->s; dbt_ok(r) && *p; p++) {
        r = dbt_rules_printf(out, *p == '"' ? "\"\"" : "%c", *p);
    }
    if (dbt_ok(r)) {
        r = dbt_rules_printf(out, "\"");
    }
    return r;
}

static void free_line(struct dbt_tok_line *l)
{
    for (size_t f = 0; f < l->n; f++) {
        for (size_t t = 0; t < l->fields[f].n; t++) {
            free(l->fields[f].toks[t].s);
        }
        free(l->fields[f].toks);
    }
    free(l->fields);
    free(l->raw);
    memset(l, 0, sizeof(*l));
}

void dbt_tok_file_free(struct dbt_tok_file *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free_line(&f->lines[i]);
    }
    free(f->lines);
    memset(f, 0, sizeof(*f));
}

static void *grow(void *p, size_t n, size_t size)
{
    /*
     * Arrays grow in powers of two: when the new count n is a power of two the array is
     * reallocated to 2n elements (n == 1 allocates the first two).
     */
    if (n == 0 || (n & (n - 1)) != 0) {
        return p;
    }
    return realloc(p, n * 2 * size);
}

/*
 * next_token: reads one token from line[*pos..] into tok (malloc'd). Returns false at the end
 * of the line or at a comment (no token). *comma is set when an unquoted comma ended the token.
 */
static dbt_res next_token(const char *line, size_t *pos, struct dbt_tok *tok, bool *got,
                          bool *comma)
{
    struct dbt_buf b;
    dbt_buf_init(&b, 0);
    bool in_quote = false, was_quote = false, saw_quote = false;
    size_t i = *pos;
    char c;
    *got = false;
    *comma = false;
    tok->s = NULL;
    tok->quoted = false;

    /* Move over any whitespace and commas preceding the next token. */
    while ((c = line[i]) != '\0' && (is_blank(c) || c == ',')) {
        i++;
    }
    while (c != '\0' && (!is_blank(c) || in_quote)) {
        if (c == '#' && !in_quote) {
            /* Skip the comment to the end of the line. */
            while (line[i] != '\0') {
                i++;
            }
            c = '\0';
            break;
        }
        if (c == ',' && !in_quote) {
            *comma = true;
            i++;
            break;
        }
        if (c != '"' || was_quote) {
            dbt_res r = dbt_buf_append(&b, &c, 1);
            if (!dbt_ok(r)) {
                dbt_buf_cleanup(&b);
                return r;
            }
        }
        /* A literal double quote is two double quotes. */
        was_quote = (in_quote && c == '"') ? !was_quote : false;
        if (c == '"') {
            in_quote = !in_quote;
            saw_quote = true;
            if (dbt_buf_avail(&b) == 0) {
                tok->quoted = true;
            }
        }
        c = line[++i];
    }
    *pos = i;
    if (!saw_quote && dbt_buf_avail(&b) == 0) {
        dbt_buf_cleanup(&b);
        return DBT_OK;
    }
    char nul = '\0';
    dbt_res r = dbt_buf_append(&b, &nul, 1);
    if (!dbt_ok(r)) {
        dbt_buf_cleanup(&b);
        return r;
    }
    tok->s = (char *)b.data; /* ownership moves to the token */
    *got = true;
    return DBT_OK;
}

/* Splits one logical line into fields of comma-separated tokens. */
static dbt_res tokenize_line(const char *line, struct dbt_tok_line *out)
{
    size_t pos = 0;
    while (line[pos] != '\0') {
        struct dbt_tok_field field = {0};
        bool comma;
        do {
            struct dbt_tok tok;
            bool got;
            dbt_res r = next_token(line, &pos, &tok, &got, &comma);
            if (!dbt_ok(r)) {
                for (size_t t = 0; t < field.n; t++) {
                    free(field.toks[t].s);
                }
                free(field.toks);
                return r;
            }
            if (!got) {
                break;
            }
            struct dbt_tok *nt = grow(field.toks, field.n + 1, sizeof(*nt));
            if (nt == NULL) {
                free(tok.s);
                for (size_t t = 0; t < field.n; t++) {
                    free(field.toks[t].s);
                }
                free(field.toks);
                return dbt_fail(DBT_E_NOMEM, "out of memory tokenizing a rules file");
            }
            field.toks = nt;
            field.toks[field.n++] = tok;
        } while (comma);
        if (field.n == 0) {
            continue; /* end of line or comment */
        }
        struct dbt_tok_field *nf = grow(out->fields, out->n + 1, sizeof(*nf));
        if (nf == NULL) {
            for (size_t t = 0; t < field.n; t++) {
                free(field.toks[t].s);
            }
            free(field.toks);
            return dbt_fail(DBT_E_NOMEM, "out of memory tokenizing a rules file");
        }
        out->fields = nf;
        out->fields[out->n++] = field;
    }
    return DBT_OK;
}

dbt_res dbt_tok_file(const char *text, size_t len, struct dbt_tok_file *out)
{
    dbt_res res = DBT_OK;
    struct dbt_buf lb;
    dbt_buf_init(&lb, 0);
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    int line_number = 1;

    while (i < len) {
        int continuations = 0;
        dbt_buf_reset(&lb);
        for (;;) {
            /* One physical line, without its newline. */
            size_t start = i;
            while (i < len && text[i] != '\n') {
                i++;
            }
            size_t end = i;
            if (i < len) {
                i++; /* the newline */
            }
            /* pg_strip_crlf */
            while (end > start && (text[end - 1] == '\r' || text[end - 1] == '\n')) {
                end--;
            }
            DBT_TRY(dbt_buf_append(&lb, text + start, end - start));
            /* "The backslash must be the last character on the line." */
            if (dbt_buf_avail(&lb) > 0 && dbt_buf_head(&lb)[dbt_buf_avail(&lb) - 1] == '\\' &&
                i < len) {
                lb.len--;
                continuations++;
                continue;
            }
            if (dbt_buf_avail(&lb) > 0 && dbt_buf_head(&lb)[dbt_buf_avail(&lb) - 1] == '\\') {
                lb.len--; /* a continuation at the end of the text joins nothing */
            }
            break;
        }
        char nul = '\0';
        DBT_TRY(dbt_buf_append(&lb, &nul, 1));

        struct dbt_tok_line tl = {.line = line_number};
        res = tokenize_line((const char *)dbt_buf_head(&lb), &tl);
        if (!dbt_ok(res)) {
            free_line(&tl);
            goto out;
        }
        if (tl.n > 0) {
            tl.raw = strdup((const char *)dbt_buf_head(&lb));
            struct dbt_tok_line *nl = grow(out->lines, out->n + 1, sizeof(*nl));
            if (tl.raw == NULL || nl == NULL) {
                free_line(&tl);
                DBT_BAIL(NOMEM, "out of memory tokenizing a rules file");
            }
            out->lines = nl;
            out->lines[out->n++] = tl;
        }
        line_number += continuations + 1;
    }
out:
    dbt_buf_cleanup(&lb);
    if (!dbt_ok(res)) {
        dbt_tok_file_free(out);
    }
    return res;
}
