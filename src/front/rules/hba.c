/*
 * hba.c - pg_hba.conf subset: parsing (after PostgreSQL's parse_hba_line), first-match lookup
 * (check_hba) and the decision with PostgreSQL's own messages (ClientAuthentication,
 * CheckCertAuth, auth_failed in src/backend/libpq/auth.c). See hba.h for the grammar.
 */
#include "front/rules/hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/rules/tok.h"

struct hba_list {
    struct dbt_tok *toks; /* borrowed from the tokenized file, which the dbt_hba keeps */
    size_t n;
};

struct hba_rule {
    struct dbt_hba_rule pub; /* first member: rule pointers convert back */
    struct hba_list dbs;
    struct hba_list users;
    bool addr_all;
    struct sockaddr_storage addr;
    struct sockaddr_storage mask;
};

struct dbt_hba {
    struct dbt_tok_file tf;
    struct hba_rule *rules;
    size_t n;
};

void dbt_hba_free(struct dbt_hba *hba)
{
    if (hba == NULL) {
        return;
    }
    for (size_t i = 0; i < hba->n; i++) {
        free((char *)hba->rules[i].pub.map);
    }
    free(hba->rules);
    dbt_tok_file_free(&hba->tf);
    free(hba);
}

size_t dbt_hba_count(const struct dbt_hba *hba)
{
    return hba->n;
}

const struct dbt_hba_rule *dbt_hba_rule_at(const struct dbt_hba *hba, size_t i)
{
    return i < hba->n ? &hba->rules[i].pub : NULL;
}

/* pg_sockaddr_cidr_mask: a prefix length 0..32 / 0..128 into a mask of the family. */
static bool cidr_mask(struct sockaddr_storage *mask, const char *bits_s, int family)
{
    char *end;
    if (*bits_s == '\0') {
        return false;
    }
    errno = 0;
    long bits = strtol(bits_s, &end, 10);
    if (*end != '\0' || errno != 0) {
        return false;
    }
    memset(mask, 0, sizeof(*mask));
    if (family == AF_INET) {
        if (bits < 0 || bits > 32) {
            return false;
        }
        struct sockaddr_in *m = (struct sockaddr_in *)mask;
        m->sin_family = AF_INET;
        uint32_t v = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
        m->sin_addr.s_addr = htonl(v);
        return true;
    }
    if (family == AF_INET6) {
        if (bits < 0 || bits > 128) {
            return false;
        }
        struct sockaddr_in6 *m = (struct sockaddr_in6 *)mask;
        m->sin6_family = AF_INET6;
        for (int i = 0; i < 16; i++) {
            long b = bits - 8 * i;
            m->sin6_addr.s6_addr[i] = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
        }
        return true;
    }
    return false;
}

/* A numeric address (AI_NUMERICHOST, as PostgreSQL parses them): 0, or the getaddrinfo code. */
static int numeric_addr(const char *s, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    int ret = getaddrinfo(s, NULL, &hints, &ai);
    if (ret == 0 && ai != NULL) {
        memset(out, 0, sizeof(*out));
        memcpy(out, ai->ai_addr, ai->ai_addrlen < sizeof(*out) ? ai->ai_addrlen : sizeof(*out));
    } else if (ret == 0) {
        ret = EAI_NONAME;
    }
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    return ret;
}

static bool method_from(const char *s, enum dbt_hba_method *m)
{
    static const struct {
        const char *name;
        enum dbt_hba_method m;
    } tab[] = {
        {"backend", DBT_HBA_METHOD_BACKEND},
        {"trust", DBT_HBA_METHOD_TRUST},
        {"cert", DBT_HBA_METHOD_CERT},
        {"reject", DBT_HBA_METHOD_REJECT},
    };
    for (size_t i = 0; i < DBT_ARRAY_LEN(tab); i++) {
        if (strcmp(s, tab[i].name) == 0) {
            *m = tab[i].m;
            return true;
        }
    }
    return false;
}

static const char *method_name(enum dbt_hba_method m)
{
    switch (m) {
    case DBT_HBA_METHOD_BACKEND:
        return "backend";
    case DBT_HBA_METHOD_TRUST:
        return "trust";
    case DBT_HBA_METHOD_CERT:
        return "cert";
    case DBT_HBA_METHOD_REJECT:
        return "reject";
    }
    return "?";
}

static const char *conn_type_name(enum dbt_hba_conn_type t)
{
    switch (t) {
    case DBT_HBA_HOST:
        return "host";
    case DBT_HBA_HOSTSSL:
        return "hostssl";
    case DBT_HBA_HOSTNOSSL:
        return "hostnossl";
    }
    return "?";
}

/* Methods PostgreSQL knows that the front does not implement (it relays them as "backend"). */
static bool pg_method_elsewhere(const char *s)
{
    static const char *const names[] = {"md5",  "scram-sha-256", "password", "ident",
                                        "peer", "gss",           "sspi",     "pam",
                                        "bsd",  "ldap",          "radius"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Database and user columns: what PostgreSQL features the front cannot honour. */
static dbt_res check_list(const char *file, int line, const struct dbt_tok_field *f, bool is_db)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct dbt_tok *t = &f->toks[i];
        if (!t->quoted && t->s[0] == '@' && t->s[1] != '\0') {
            return dbt_tok_error(file, line, "file inclusion \"%s\" is not supported", t->s);
        }
        if (is_db && (dbt_tok_is_keyword(t, "samerole") || dbt_tok_is_keyword(t, "samegroup"))) {
            return dbt_tok_error(file, line,
                                 "database keyword \"%s\" is not supported: the front does not "
                                 "know role membership",
                                 t->s);
        }
        if (!is_db && !t->quoted && t->s[0] == '+') {
            return dbt_tok_error(file, line,
                                 "role membership \"%s\" is not supported: the front does not "
                                 "know role membership",
                                 t->s);
        }
    }
    return DBT_OK;
}

static dbt_res parse_option(const char *file, int line, const char *tokstr, struct hba_rule *r)
{
    const char *eq = strchr(tokstr, '=');
    if (eq == NULL) {
        return dbt_tok_error(file, line, "authentication option not in name=value format: %s",
                             tokstr);
    }
    size_t nl = (size_t)(eq - tokstr);
    const char *val = eq + 1;
    if (nl == 3 && strncmp(tokstr, "map", 3) == 0) {
        if (r->pub.method == DBT_HBA_METHOD_REJECT) {
            return dbt_tok_error(file, line,
                                 "authentication option \"%s\" is only valid for authentication "
                                 "methods %s",
                                 "map", "backend, trust, and cert");
        }
        free((char *)r->pub.map);
        r->pub.map = strdup(val);
        if (r->pub.map == NULL) {
            return dbt_fail(DBT_E_NOMEM, "out of memory parsing access rules");
        }
        return DBT_OK;
    }
    if (nl == 10 && strncmp(tokstr, "clientcert", 10) == 0) {
        if (r->pub.conn_type != DBT_HBA_HOSTSSL) {
            return dbt_tok_error(file, line,
                                 "clientcert can only be configured for \"hostssl\" rows");
        }
        if (strcmp(val, "verify-full") == 0) {
            r->pub.clientcert = DBT_HBA_CLIENTCERT_VERIFY_FULL;
        } else if (strcmp(val, "verify-ca") == 0) {
            if (r->pub.method == DBT_HBA_METHOD_CERT) {
                return dbt_tok_error(file, line,
                                     "clientcert only accepts \"verify-full\" when using \"cert\" "
                                     "authentication");
            }
            r->pub.clientcert = DBT_HBA_CLIENTCERT_VERIFY_CA;
        } else {
            return dbt_tok_error(file, line, "invalid value for clientcert: \"%s\"", val);
        }
        return DBT_OK;
    }
    if (nl == 10 && strncmp(tokstr, "clientname", 10) == 0) {
        if (r->pub.conn_type != DBT_HBA_HOSTSSL) {
            return dbt_tok_error(file, line,
                                 "clientname can only be configured for \"hostssl\" rows");
        }
        if (strcmp(val, "CN") == 0) {
            r->pub.clientname = DBT_HBA_CLIENTNAME_CN;
        } else if (strcmp(val, "DN") == 0) {
            r->pub.clientname = DBT_HBA_CLIENTNAME_DN;
        } else {
            return dbt_tok_error(file, line, "invalid value for clientname: \"%s\"", val);
        }
        r->pub.clientname_given = true;
        return DBT_OK;
    }
    return dbt_tok_error(file, line, "unrecognized authentication option name: \"%.*s\"", (int)nl,
                         tokstr);
}

static dbt_res parse_line(const char *file, const struct dbt_tok_line *tl, struct hba_rule *r)
{
    const int line = tl->line;
    size_t fi = 0;
    const struct dbt_tok_field *f = &tl->fields[fi];
    const struct dbt_tok *t;

    memset(r, 0, sizeof(*r));
    r->pub.line = line;
    r->pub.raw = tl->raw;

    /* Connection type. */
    if (f->n > 1) {
        return dbt_tok_error(file, line, "multiple values specified for connection type");
    }
    t = &f->toks[0];
    if (strcmp(t->s, "host") == 0) {
        r->pub.conn_type = DBT_HBA_HOST;
    } else if (strcmp(t->s, "hostssl") == 0) {
        r->pub.conn_type = DBT_HBA_HOSTSSL;
    } else if (strcmp(t->s, "hostnossl") == 0) {
        r->pub.conn_type = DBT_HBA_HOSTNOSSL;
    } else if (strcmp(t->s, "local") == 0 || strcmp(t->s, "hostgssenc") == 0 ||
               strcmp(t->s, "hostnogssenc") == 0) {
        return dbt_tok_error(file, line,
                             "connection type \"%s\" is not supported: the front accepts TCP "
                             "connections with or without SSL only",
                             t->s);
    } else {
        return dbt_tok_error(file, line, "invalid connection type \"%s\"", t->s);
    }

    /* Databases, roles. */
    if (++fi >= tl->n) {
        return dbt_tok_error(file, line, "end-of-line before database specification");
    }
    dbt_res res = check_list(file, line, &tl->fields[fi], true);
    if (!dbt_ok(res)) {
        return res;
    }
    r->dbs = (struct hba_list){tl->fields[fi].toks, tl->fields[fi].n};
    if (++fi >= tl->n) {
        return dbt_tok_error(file, line, "end-of-line before role specification");
    }
    res = check_list(file, line, &tl->fields[fi], false);
    if (!dbt_ok(res)) {
        return res;
    }
    r->users = (struct hba_list){tl->fields[fi].toks, tl->fields[fi].n};

    /* Address, with a CIDR suffix or a mask in the next column. */
    if (++fi >= tl->n) {
        return dbt_tok_error(file, line, "end-of-line before IP address specification");
    }
    f = &tl->fields[fi];
    if (f->n > 1) {
        return dbt_tok_error(file, line, "multiple values specified for host address");
    }
    t = &f->toks[0];
    if (dbt_tok_is_keyword(t, "all")) {
        r->addr_all = true;
    } else if (dbt_tok_is_keyword(t, "samehost") || dbt_tok_is_keyword(t, "samenet")) {
        return dbt_tok_error(file, line, "address keyword \"%s\" is not supported", t->s);
    } else {
        char addr_s[256];
        if (snprintf(addr_s, sizeof(addr_s), "%s", t->s) >= (int)sizeof(addr_s)) {
            return dbt_tok_error(file, line, "invalid IP address \"%s\": too long", t->s);
        }
        char *slash = strchr(addr_s, '/');
        if (slash) {
            *slash = '\0';
        }
        int ret = numeric_addr(addr_s, &r->addr);
        if (ret == EAI_NONAME) {
            if (slash) {
                return dbt_tok_error(
                    file, line, "specifying both host name and CIDR mask is invalid: \"%s\"", t->s);
            }
            return dbt_tok_error(file, line,
                                 "host name \"%s\" is not supported: use an IP address with a "
                                 "CIDR mask, or all",
                                 t->s);
        }
        if (ret != 0) {
            return dbt_tok_error(file, line, "invalid IP address \"%s\": %s", addr_s,
                                 gai_strerror(ret));
        }
        if (slash) {
            if (!cidr_mask(&r->mask, slash + 1, r->addr.ss_family)) {
                return dbt_tok_error(file, line, "invalid CIDR mask in address \"%s\"", t->s);
            }
        } else {
            if (++fi >= tl->n) {
                return dbt_tok_error(file, line, "end-of-line before netmask specification");
            }
            f = &tl->fields[fi];
            if (f->n > 1) {
                return dbt_tok_error(file, line, "multiple values specified for netmask");
            }
            t = &f->toks[0];
            ret = numeric_addr(t->s, &r->mask);
            if (ret != 0) {
                return dbt_tok_error(file, line, "invalid IP mask \"%s\": %s", t->s,
                                     gai_strerror(ret));
            }
            if (r->addr.ss_family != r->mask.ss_family) {
                return dbt_tok_error(file, line, "IP address and mask do not match");
            }
        }
    }

    /* Method. */
    if (++fi >= tl->n) {
        return dbt_tok_error(file, line, "end-of-line before authentication method");
    }
    f = &tl->fields[fi];
    if (f->n > 1) {
        return dbt_tok_error(file, line, "multiple values specified for authentication type");
    }
    t = &f->toks[0];
    if (!method_from(t->s, &r->pub.method)) {
        if (pg_method_elsewhere(t->s)) {
            return dbt_tok_error(file, line,
                                 "invalid authentication method \"%s\": not supported by this "
                                 "build; use \"backend\" to let the database server authenticate",
                                 t->s);
        }
        return dbt_tok_error(file, line, "invalid authentication method \"%s\"", t->s);
    }
    if (r->pub.method == DBT_HBA_METHOD_CERT && r->pub.conn_type != DBT_HBA_HOSTSSL) {
        return dbt_tok_error(file, line,
                             "cert authentication is only supported on hostssl connections");
    }

    /* Options: name=value tokens, in any field that follows. */
    while (++fi < tl->n) {
        f = &tl->fields[fi];
        for (size_t k = 0; k < f->n; k++) {
            res = parse_option(file, line, f->toks[k].s, r);
            if (!dbt_ok(res)) {
                return res;
            }
        }
    }
    /* "For auth method cert, client certificate validation is mandatory, and it implies the
     * level of verify-full." */
    if (r->pub.method == DBT_HBA_METHOD_CERT) {
        r->pub.clientcert = DBT_HBA_CLIENTCERT_VERIFY_FULL;
    }
    return DBT_OK;
}

dbt_res dbt_hba_parse(const char *text, size_t len, const char *file_name, struct dbt_hba **out)
{
    dbt_res res = DBT_OK;
    struct dbt_hba *hba = calloc(1, sizeof(*hba));
    if (hba == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory parsing access rules");
    }
    DBT_TRY(dbt_tok_file(text, len, &hba->tf));
    if (hba->tf.n > 0) {
        hba->rules = calloc(hba->tf.n, sizeof(*hba->rules));
        DBT_ENSURE(hba->rules != NULL, NOMEM, "out of memory parsing access rules");
    }
    for (size_t i = 0; i < hba->tf.n; i++) {
        res = parse_line(file_name, &hba->tf.lines[i], &hba->rules[i]);
        hba->n = i + 1; /* so that a partial rule's map is freed */
        if (!dbt_ok(res)) {
            goto out;
        }
    }
    /* "A valid HBA file must have at least one entry; else there's no way to connect." */
    DBT_ENSURE(hba->n > 0, INVALID, "configuration file \"%s\" contains no entries", file_name);
    *out = hba;
    hba = NULL;
out:
    dbt_hba_free(hba);
    return res;
}

dbt_res dbt_hba_default_rules(enum dbt_hba_default mode, struct dbt_hba **out)
{
    const char *text;
    /* `all` never matches a physical replication connection (PostgreSQL's rule, kept by the
     * parser): each mode has a `replication` line too, so that the mode alone decides what
     * pg_basebackup or a standby gets, and the backend's own pg_hba.conf the rest. */
    switch (mode) {
    case DBT_HBA_DEFAULT_ALLOW:
        text = "host all all all backend\n"
               "host replication all all backend\n";
        break;
    case DBT_HBA_DEFAULT_ENCRYPTED_ONLY:
        text = "hostssl all all all backend\n"
               "hostssl replication all all backend\n";
        break;
    case DBT_HBA_DEFAULT_CERT_REQUIRED:
        text = "hostssl all all all backend clientcert=verify-ca\n"
               "hostssl replication all all backend clientcert=verify-ca\n";
        break;
    default:
        return dbt_fail(DBT_E_INVALID, "unknown ssl mode %d", (int)mode);
    }
    return dbt_hba_parse(text, strlen(text), "default rules", out);
}

/* ---------------------------------------------------------------- dump --------------------- */

static dbt_res dump_addr(struct dbt_buf *out, const struct sockaddr_storage *ss)
{
    char s[INET6_ADDRSTRLEN];
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (inet_ntop(ss->ss_family, a, s, sizeof(s)) == NULL) {
        return dbt_fail(DBT_E_INTERNAL, "cannot print an address");
    }
    return dbt_rules_printf(out, "%s", s);
}

static dbt_res dump_list(struct dbt_buf *out, const char *label, const struct hba_list *l)
{
    dbt_res r = dbt_rules_printf(out, " %s=", label);
    for (size_t i = 0; dbt_ok(r) && i < l->n; i++) {
        if (i > 0) {
            r = dbt_rules_printf(out, ",");
        }
        if (dbt_ok(r)) {
            r = dbt_tok_dump(out, &l->toks[i]);
        }
    }
    return r;
}

dbt_res dbt_hba_dump(const struct dbt_hba *hba, struct dbt_buf *out)
{
    dbt_res res = DBT_OK;
    static const char *const cc[] = {"off", "verify-ca", "verify-full"};
    for (size_t i = 0; i < hba->n; i++) {
        const struct hba_rule *r = &hba->rules[i];
        DBT_TRY(
            dbt_rules_printf(out, "line %d: %s", r->pub.line, conn_type_name(r->pub.conn_type)));
        DBT_TRY(dump_list(out, "db", &r->dbs));
        DBT_TRY(dump_list(out, "user", &r->users));
        if (r->addr_all) {
            DBT_TRY(dbt_rules_printf(out, " addr=all"));
        } else {
            DBT_TRY(dbt_rules_printf(out, " addr="));
            DBT_TRY(dump_addr(out, &r->addr));
            DBT_TRY(dbt_rules_printf(out, " mask="));
            DBT_TRY(dump_addr(out, &r->mask));
        }
        DBT_TRY(dbt_rules_printf(out, " method=%s clientcert=%s", method_name(r->pub.method),
                                 cc[r->pub.clientcert]));
        if (r->pub.clientname == DBT_HBA_CLIENTNAME_DN) {
            DBT_TRY(dbt_rules_printf(out, " clientname=DN"));
        }
        if (r->pub.map) {
            DBT_TRY(dbt_rules_printf(out, " map=%s", r->pub.map));
        }
        DBT_TRY(dbt_rules_printf(out, "\n"));
    }
out:
    return res;
}

/* ---------------------------------------------------------------- matching ----------------- */

/* pg_range_sockaddr: same family and (addr ^ net) & mask == 0. */
static bool addr_in_range(const struct sockaddr *a, const struct hba_rule *r)
{
    if (a->sa_family != r->addr.ss_family) {
        return false;
    }
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *c = (const struct sockaddr_in *)a;
        const struct sockaddr_in *n = (const struct sockaddr_in *)&r->addr;
        const struct sockaddr_in *m = (const struct sockaddr_in *)&r->mask;
        return ((c->sin_addr.s_addr ^ n->sin_addr.s_addr) & m->sin_addr.s_addr) == 0;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *c = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *n = (const struct sockaddr_in6 *)&r->addr;
        const struct sockaddr_in6 *m = (const struct sockaddr_in6 *)&r->mask;
        for (int i = 0; i < 16; i++) {
            if ((c->sin6_addr.s6_addr[i] ^ n->sin6_addr.s6_addr[i]) & m->sin6_addr.s6_addr[i]) {
                return false;
            }
        }
        return true;
    }
    return false;
}

/* check_db */
static bool db_matches(const struct hba_list *l, const struct dbt_hba_conn *c)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct dbt_tok *t = &l->toks[i];
        if (c->replication) {
            /* Physical replication connections can only match the replication keyword. */
            if (dbt_tok_is_keyword(t, "replication")) {
                return true;
            }
        } else if (dbt_tok_is_keyword(t, "all")) {
            return true;
        } else if (dbt_tok_is_keyword(t, "sameuser")) {
            if (strcmp(c->database, c->user) == 0) {
                return true;
            }
        } else if (dbt_tok_is_keyword(t, "replication")) {
            continue; /* never matches a connection that is not physical replication */
        } else if (strcmp(t->s, c->database) == 0) {
            return true;
        }
    }
    return false;
}

/* check_role */
static bool user_matches(const struct hba_list *l, const char *user)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct dbt_tok *t = &l->toks[i];
        if (strcmp(t->s, user) == 0 || dbt_tok_is_keyword(t, "all")) {
            return true;
        }
    }
    return false;
}

const struct dbt_hba_rule *dbt_hba_match(const struct dbt_hba *hba, const struct dbt_hba_conn *c)
{
    if (c->addr == NULL || (c->addr->sa_family != AF_INET && c->addr->sa_family != AF_INET6)) {
        return NULL; /* only host* records exist: a non-TCP client matches none */
    }
    if (c->user == NULL || c->database == NULL) {
        return NULL; /* the startup packet always gives both; refuse rather than guess */
    }
    for (size_t i = 0; i < hba->n; i++) {
        const struct hba_rule *r = &hba->rules[i];
        if (r->pub.conn_type == DBT_HBA_HOSTSSL && !c->ssl) {
            continue;
        }
        if (r->pub.conn_type == DBT_HBA_HOSTNOSSL && c->ssl) {
            continue;
        }
        if (!r->addr_all && !addr_in_range(c->addr, r)) {
            continue;
        }
        if (!db_matches(&r->dbs, c) || !user_matches(&r->users, c->user)) {
            continue;
        }
        return &r->pub;
    }
    return NULL;
}

/* ---------------------------------------------------------------- decision ----------------- */

static void host_text(const struct dbt_hba_conn *c, char *s, size_t n)
{
    snprintf(s, n, "[unknown]");
    if (c->addr == NULL) {
        return;
    }
    if (c->addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)c->addr)->sin_addr, s, (socklen_t)n);
    } else if (c->addr->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)c->addr)->sin6_addr, s, (socklen_t)n);
    } else if (c->addr->sa_family == AF_UNIX) {
        snprintf(s, n, "[local]");
    }
}

static const char *encryption_state(const struct dbt_hba_conn *c)
{
    /* PostgreSQL 14 changed "SSL on"/"SSL off" to "SSL encryption"/"no encryption". */
    if (c->engine_major >= 14) {
        return c->ssl ? "SSL encryption" : "no encryption";
    }
    return c->ssl ? "SSL on" : "SSL off";
}

static void refuse(struct dbt_hba_verdict *out, const char *log, const char *fmt, ...)
    DBT_PRINTF(3, 4);

static void refuse(struct dbt_hba_verdict *out, const char *log, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
    snprintf(out->log, sizeof(out->log), "%s", log ? log : "");
    out->accept = false;
    out->sqlstate = "28000";
}

void dbt_hba_decide(const struct dbt_hba_rule *rule, const struct dbt_ident *ident,
                    const struct dbt_hba_conn *c, const struct dbt_hba_tls *tls,
                    struct dbt_hba_verdict *out)
{
    char host[INET6_ADDRSTRLEN + 16];
    char log[DBT_HBA_MSG_MAX];
    memset(out, 0, sizeof(*out));
    out->rule = rule;
    host_text(c, host, sizeof(host));
    const char *user = c->user ? c->user : "";
    const char *db = c->database ? c->database : "";

    if (rule == NULL) {
        if (c->replication) {
            refuse(out, NULL,
                   "no pg_hba.conf entry for replication connection from host \"%s\", "
                   "user \"%s\", %s",
                   host, user, encryption_state(c));
        } else {
            refuse(out, NULL,
                   "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s", host,
                   user, db, encryption_state(c));
        }
        return;
    }
    if (rule->method == DBT_HBA_METHOD_REJECT) {
        if (c->replication) {
            refuse(out, NULL,
                   "pg_hba.conf rejects replication connection for host \"%s\", user \"%s\", %s",
                   host, user, encryption_state(c));
        } else {
            refuse(out, NULL,
                   "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", "
                   "%s",
                   host, user, db, encryption_state(c));
        }
        return;
    }
    /* ClientAuthentication: any clientcert setting needs a certificate that verified. */
    if (rule->clientcert != DBT_HBA_CLIENTCERT_OFF &&
        (tls == NULL || !tls->cert_valid || !c->ssl)) {
        refuse(out, NULL, "connection requires a valid client certificate");
        return;
    }
    if (rule->clientcert == DBT_HBA_CLIENTCERT_VERIFY_FULL) {
        /* CheckCertAuth (cert, or clientcert=verify-full with another method): the CN, or with
         * clientname=DN the whole subject, maps to the user. */
        const bool by_dn = rule->clientname == DBT_HBA_CLIENTNAME_DN;
        const char *cn = by_dn ? tls->dn : tls->cn;
        bool ok;
        if (cn == NULL || cn[0] == '\0') {
            snprintf(log, sizeof(log),
                     "certificate authentication failed for user \"%s\": client certificate "
                     "contains no user name",
                     user);
            ok = false;
        } else {
            ok = dbt_ident_check(ident, rule->map, user, cn, log, sizeof(log));
        }
        if (!ok) {
            switch (rule->method) {
            case DBT_HBA_METHOD_CERT:
                refuse(out, log, "certificate authentication failed for user \"%s\"", user);
                break;
            default:
                /*
                 * PostgreSQL itself would name the line's method here ('"trust" authentication
                 * failed', 'password authentication failed') and log the CN mismatch; the front
                 * says what actually failed, as issue 3 asks.
                 */
                refuse(out, NULL,
                       "certificate validation (clientcert=verify-full) failed for user \"%s\"",
                       user);
                if (cn == NULL || cn[0] == '\0') {
                    snprintf(out->log, sizeof(out->log), "%.*s", (int)sizeof(out->log) - 1, log);
                } else {
                    /* The ident check's reason, then PostgreSQL's CheckCertAuth line. */
                    snprintf(out->log, sizeof(out->log),
                             "%.250s; certificate validation (clientcert=verify-full) failed for "
                             "user \"%.64s\": %s mismatch",
                             log, user, by_dn ? "DN" : "CN");
                }
                break;
            }
            return;
        }
    }
    out->accept = true;
    out->sqlstate = NULL;
}

void dbt_hba_check(const struct dbt_hba *hba, const struct dbt_ident *ident,
                   const struct dbt_hba_conn *c, const struct dbt_hba_tls *tls,
                   struct dbt_hba_verdict *out)
{
    dbt_hba_decide(dbt_hba_match(hba, c), ident, c, tls, out);
}
