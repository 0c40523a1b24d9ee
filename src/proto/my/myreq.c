/*
 * myreq.c - per-user REQUIRE rules for MySQL/MariaDB instances (see myreq.h): a small
 * hand-written scanner over the rules text (operator-supplied, not wire data) and the evaluation
 * MySQL performs in acl_check_ssl().
 */
#include "proto/my/myreq.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/rd.h"

struct scan {
    const char *p;
    const char *end; /* end of the current line */
    unsigned line;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r')) {
        s->p++;
    }
}

static bool at_end(struct scan *s)
{
    skip_ws(s);
    return s->p >= s->end || *s->p == '#';
}

static char *dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* A quoted string ('...' or "..."), doubling or backslash escapes the quote. */
static dbt_res scan_quoted(struct scan *s, char **out)
{
    char q = *s->p++;
    size_t cap = (size_t)(s->end - s->p) + 1;
    char *d = malloc(cap);
    size_t n = 0;
    if (d == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    while (s->p < s->end) {
        char c = *s->p++;
        if (c == '\\' && s->p < s->end) {
            c = *s->p++;
        } else if (c == q) {
            if (s->p < s->end && *s->p == q) {
                s->p++;
            } else {
                d[n] = '\0';
                *out = d;
                return DBT_OK;
            }
        }
        d[n++] = c;
    }
    free(d);
    return dbt_fail(DBT_E_INVALID, "line %u: unterminated string", s->line);
}

/* A bare word: up to whitespace or one of stops. */
static dbt_res scan_word(struct scan *s, const char *stops, char **out)
{
    const char *start = s->p;
    while (s->p < s->end && !isspace((unsigned char)*s->p) && strchr(stops, *s->p) == NULL) {
        s->p++;
    }
    if (s->p == start) {
        return dbt_fail(DBT_E_INVALID, "line %u: expected a name", s->line);
    }
    *out = dup_n(start, (size_t)(s->p - start));
    return *out ? DBT_OK : dbt_fail(DBT_E_NOMEM, "out of memory");
}

static dbt_res scan_name(struct scan *s, const char *stops, char **out)
{
    skip_ws(s);
    if (s->p < s->end && (*s->p == '\'' || *s->p == '"' || *s->p == '`')) {
        return scan_quoted(s, out);
    }
    return scan_word(s, stops, out);
}

static bool scan_keyword(struct scan *s, const char *kw)
{
    size_t n = strlen(kw);
    skip_ws(s);
    if ((size_t)(s->end - s->p) < n || strncasecmp(s->p, kw, n) != 0) {
        return false;
    }
    if (s->p + n < s->end && (isalnum((unsigned char)s->p[n]) || s->p[n] == '_')) {
        return false;
    }
    s->p += n;
    return true;
}

static void req_cleanup(struct dbt_my_req *r)
{
    free(r->user);
    free(r->host);
    free(r->issuer);
    free(r->subject);
    free(r->cipher);
    memset(r, 0, sizeof(*r));
}

static dbt_res parse_requirement(struct scan *s, struct dbt_my_req *r)
{
    dbt_res res = DBT_OK;
    if (scan_keyword(s, "REQUIRE")) {
        /* "alice=REQUIRE SSL" reads like the SQL; accept it. */
    }
    if (scan_keyword(s, "NONE")) {
        r->type = DBT_MY_REQ_NONE;
    } else if (scan_keyword(s, "SSL")) {
        r->type = DBT_MY_REQ_SSL;
    } else if (scan_keyword(s, "X509")) {
        r->type = DBT_MY_REQ_X509;
    } else {
        /* require_list: ISSUER/SUBJECT/CIPHER 'str' [AND] ... each at most once. */
        r->type = DBT_MY_REQ_SPECIFIED;
        bool first = true;
        while (!at_end(s)) {
            char **slot;
            const char *what;
            if (!first) {
                (void)scan_keyword(s, "AND");
            }
            if (scan_keyword(s, "ISSUER")) {
                slot = &r->issuer;
                what = "ISSUER";
            } else if (scan_keyword(s, "SUBJECT")) {
                slot = &r->subject;
                what = "SUBJECT";
            } else if (scan_keyword(s, "CIPHER")) {
                slot = &r->cipher;
                what = "CIPHER";
            } else {
                DBT_BAIL(INVALID,
                         "line %u: expected NONE, SSL, X509, ISSUER '...', SUBJECT '...' or "
                         "CIPHER '...'",
                         s->line);
            }
            DBT_ENSURE(*slot == NULL, INVALID, "line %u: %s given twice", s->line, what);
            skip_ws(s);
            DBT_ENSURE(s->p < s->end && (*s->p == '\'' || *s->p == '"'), INVALID,
                       "line %u: %s needs a quoted string", s->line, what);
            DBT_TRY(scan_quoted(s, slot));
            first = false;
        }
        DBT_ENSURE(!first, INVALID, "line %u: missing requirement after '='", s->line);
    }
    DBT_ENSURE(at_end(s), INVALID, "line %u: unexpected text after the requirement", s->line);
out:
    return res;
}

static dbt_res parse_line(struct scan *s, struct dbt_my_req *r)
{
    dbt_res res = DBT_OK;
    r->line = s->line;
    DBT_TRY(scan_name(s, "=@", &r->user));
    skip_ws(s);
    if (s->p < s->end && *s->p == '@') {
        s->p++;
        DBT_TRY(scan_name(s, "=", &r->host));
        skip_ws(s);
    } else {
        r->host = dup_n("%", 1);
        DBT_ENSURE(r->host != NULL, NOMEM, "out of memory");
    }
    DBT_ENSURE(s->p < s->end && *s->p == '=', INVALID,
               "line %u: expected user=REQUIREMENT (e.g. alice=SSL)", s->line);
    s->p++;
    DBT_TRY(parse_requirement(s, r));
out:
    return res;
}

dbt_res dbt_my_reqs_parse(const char *text, struct dbt_my_reqs *out)
{
    dbt_res res = DBT_OK;
    struct dbt_my_reqs reqs = {0};
    struct dbt_my_req cur = {0};
    unsigned line = 0;

    memset(out, 0, sizeof(*out));
    const char *p = text ? text : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        struct scan s = {p, end, ++line};
        p = nl ? nl + 1 : end;
        if (at_end(&s)) {
            continue;
        }
        DBT_TRY(parse_line(&s, &cur));
        for (size_t i = 0; i < reqs.n; i++) {
            DBT_ENSURE(strcmp(reqs.v[i].user, cur.user) != 0 ||
                           strcasecmp(reqs.v[i].host, cur.host) != 0,
                       INVALID, "line %u: account '%s'@'%s' already has a rule on line %u", line,
                       cur.user, cur.host, reqs.v[i].line);
        }
        struct dbt_my_req *v = realloc(reqs.v, (reqs.n + 1) * sizeof(*v));
        DBT_ENSURE(v != NULL, NOMEM, "out of memory");
        reqs.v = v;
        reqs.v[reqs.n++] = cur;
        memset(&cur, 0, sizeof(cur));
    }
    *out = reqs;
    memset(&reqs, 0, sizeof(reqs));
out:
    req_cleanup(&cur);
    dbt_my_reqs_free(&reqs);
    return res;
}

void dbt_my_reqs_free(struct dbt_my_reqs *reqs)
{
    for (size_t i = 0; i < reqs->n; i++) {
        req_cleanup(&reqs->v[i]);
    }
    free(reqs->v);
    reqs->v = NULL;
    reqs->n = 0;
}

bool dbt_my_host_like(const char *pat, const char *host)
{
    while (*pat) {
        if (*pat == '%') {
            while (*pat == '%') {
                pat++;
            }
            if (*pat == '\0') {
                return true;
            }
            for (const char *h = host; *h; h++) {
                if (dbt_my_host_like(pat, h)) {
                    return true;
                }
            }
            return false;
        }
        if (*host == '\0') {
            return false;
        }
        if (*pat == '_') {
            pat++;
            host++;
            continue;
        }
        if (*pat == '\\' && pat[1] != '\0') {
            pat++;
        }
        if (tolower((unsigned char)*pat) != tolower((unsigned char)*host)) {
            return false;
        }
        pat++;
        host++;
    }
    return *host == '\0';
}

const struct dbt_my_req *dbt_my_reqs_find(const struct dbt_my_reqs *reqs, const char *user,
                                          size_t user_len, const char *host)
{
    for (size_t i = 0; reqs != NULL && i < reqs->n; i++) {
        const struct dbt_my_req *r = &reqs->v[i];
        if (strlen(r->user) == user_len && memcmp(r->user, user, user_len) == 0 &&
            dbt_my_host_like(r->host, host ? host : "")) {
            return r;
        }
    }
    return NULL;
}

const char *dbt_my_req_type_name(enum dbt_my_req_type type)
{
    switch (type) {
    case DBT_MY_REQ_NONE:
        return "NONE";
    case DBT_MY_REQ_SSL:
        return "SSL";
    case DBT_MY_REQ_X509:
        return "X509";
    case DBT_MY_REQ_SPECIFIED:
        return "SPECIFIED";
    }
    return "?";
}

dbt_res dbt_my_req_check(const struct dbt_my_req *req, const struct dbt_my_tls_facts *f)
{
    if (req == NULL || req->type == DBT_MY_REQ_NONE) {
        return DBT_OK;
    }
    /* acl_check_ssl: every type but NONE needs an encrypted connection. */
    if (!f->tls) {
        return dbt_fail(DBT_E_DENIED,
                        "account requires REQUIRE %s but the connection is not "
                        "encrypted",
                        dbt_my_req_type_name(req->type));
    }
    if (req->type == DBT_MY_REQ_SSL) {
        return DBT_OK;
    }
    /* SSL_TYPE_SPECIFIED checks the cipher before looking at the certificate. */
    if (req->type == DBT_MY_REQ_SPECIFIED && req->cipher != NULL &&
        (f->cipher == NULL || strcmp(req->cipher, f->cipher) != 0)) {
        return dbt_fail(DBT_E_DENIED, "account requires CIPHER '%s' but the connection uses '%s'",
                        req->cipher, f->cipher ? f->cipher : "(none)");
    }
    if (!f->cert_present) {
        return dbt_fail(DBT_E_DENIED,
                        "account requires a client certificate (REQUIRE %s) and "
                        "none was presented",
                        dbt_my_req_type_name(req->type));
    }
    if (!f->cert_verified) {
        return dbt_fail(DBT_E_DENIED, "account requires a verified client certificate and the "
                                      "presented one did not verify");
    }
    if (req->type == DBT_MY_REQ_X509) {
        return DBT_OK;
    }
    if (req->issuer != NULL && (f->issuer == NULL || strcmp(req->issuer, f->issuer) != 0)) {
        return dbt_fail(DBT_E_DENIED,
                        "account requires ISSUER '%s' but the certificate's issuer "
                        "is '%s'",
                        req->issuer, f->issuer ? f->issuer : "(none)");
    }
    if (req->subject != NULL && (f->subject == NULL || strcmp(req->subject, f->subject) != 0)) {
        return dbt_fail(DBT_E_DENIED,
                        "account requires SUBJECT '%s' but the certificate's "
                        "subject is '%s'",
                        req->subject, f->subject ? f->subject : "(none)");
    }
    return DBT_OK;
}

dbt_res dbt_my_dn_oneline(const char *dn, char *out, size_t outlen)
{
    /* Unescape each component into tmp, remembering where each starts, then emit in reverse. */
    size_t len = strlen(dn);
    char *tmp = malloc(len + 1);
    size_t *starts = malloc((len + 1) * sizeof(*starts));
    size_t n = 0, ncomp = 0;
    dbt_res res = DBT_OK;

    DBT_ENSURE(tmp != NULL && starts != NULL, NOMEM, "out of memory");
    if (len > 0) {
        starts[ncomp++] = 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = dn[i];
        if (c == '\\') {
            DBT_ENSURE(i + 1 < len, INVALID, "DN \"%s\" ends with a dangling escape", dn);
            int hi = dbt_hex_digit(dn[i + 1]);
            int lo = i + 2 < len ? dbt_hex_digit(dn[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                tmp[n++] = (char)(hi << 4 | lo);
                i += 2;
            } else {
                tmp[n++] = dn[++i];
            }
        } else if (c == ',' || c == '+') {
            tmp[n++] = '\0';
            starts[ncomp++] = n;
        } else {
            tmp[n++] = c;
        }
    }
    tmp[n] = '\0';
    size_t o = 0;
    for (size_t k = ncomp; k-- > 0;) {
        const char *comp = tmp + starts[k];
        size_t cl = strlen(comp);
        DBT_ENSURE(o + 1 + cl < outlen, LIMIT, "DN \"%s\" is too long", dn);
        out[o++] = '/';
        memcpy(out + o, comp, cl);
        o += cl;
    }
    DBT_ENSURE(o < outlen, LIMIT, "DN \"%s\" is too long", dn);
    out[o] = '\0';
out:
    free(tmp);
    free(starts);
    return res;
}
