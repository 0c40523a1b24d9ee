/*
 * tok.h - the tokenizer shared by the pg_hba.conf and pg_ident.conf parsers (internal to
 * src/front/rules). It follows PostgreSQL's tokenize_auth_file / next_token: records are lines,
 * a backslash as the last character continues a line, '#' starts a comment outside quotes,
 * fields are separated by blanks, a field is a comma-separated list of tokens, double quotes
 * protect blanks, commas and '#', and "" inside quotes is a literal quote. A token that starts
 * with a quote is "quoted" and is never a keyword.
 */
#ifndef DBT_FRONT_RULES_TOK_H
#define DBT_FRONT_RULES_TOK_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

struct dbt_tok {
    char *s;
    bool quoted;
};

struct dbt_tok_field {
    struct dbt_tok *toks;
    size_t n;
};

struct dbt_tok_line {
    int line;  /* first physical line of the record, 1-based */
    char *raw; /* the logical line, continuations joined, as written */
    struct dbt_tok_field *fields;
    size_t n;
};

struct dbt_tok_file {
    struct dbt_tok_line *lines;
    size_t n;
};

/* Tokenizes text[0..len); records without fields (blank, comment) are dropped. */
dbt_res dbt_tok_file(const char *text, size_t len, struct dbt_tok_file *out) DBT_WUR;
void dbt_tok_file_free(struct dbt_tok_file *f);

/* !quoted && strcmp(s, kw) == 0 (PostgreSQL's token_is_keyword). */
bool dbt_tok_is_keyword(const struct dbt_tok *t, const char *kw);

/*
 * A parse error in PostgreSQL's words followed by its context:
 *   <message> (line N of configuration file "F")
 */
dbt_res dbt_tok_error(const char *file_name, int line, const char *fmt, ...) DBT_PRINTF(3, 4);

/* Appends a token as written back (quoted when it was, "" doubled) for dumps. */
struct dbt_buf;
dbt_res dbt_tok_dump(struct dbt_buf *out, const struct dbt_tok *t) DBT_WUR;

/* Growable printf into a dbt_buf (no NUL kept). */
dbt_res dbt_rules_printf(struct dbt_buf *out, const char *fmt, ...) DBT_PRINTF(2, 3) DBT_WUR;

#endif
