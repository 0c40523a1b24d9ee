/*
 * myreq.h - per-user TLS requirements for MySQL/MariaDB instances, mirroring
 * `CREATE/ALTER USER ... REQUIRE NONE | SSL | X509 | ISSUER '...' | SUBJECT '...' | CIPHER '...'`
 * (https://dev.mysql.com/doc/refman/8.0/en/create-user.html#create-user-tls), enforced by the
 * front because the backend never sees the client's certificate. Pure: parsing and evaluation,
 * no I/O.
 *
 * Rules text (dbt_rt_instance.user_require_text), one rule per line, '#' starts a comment:
 *
 *     alice=SSL
 *     'bob'@'10.%'=X509
 *     carol = SUBJECT '/CN=carol' AND ISSUER '/CN=dbtls client CA'
 *     dave=CIPHER 'ECDHE-RSA-AES256-GCM-SHA384'
 *
 * The account is a user name, optionally quoted, optionally followed by @host where host is a
 * LIKE pattern ('%' any run, '_' one character) matched against the client's address; no host
 * means '%'. Keywords are case-insensitive; ISSUER, SUBJECT and CIPHER may be combined (with or
 * without AND, each at most once) as MySQL's grammar allows. Strings are single- or double-quoted
 * with '' / "" or backslash escapes. The first rule whose account matches applies; a user without
 * a rule has REQUIRE NONE.
 *
 * DNs are compared as MySQL and MariaDB compare them: exactly, against OpenSSL's
 * X509_NAME_oneline() form ("/C=US/O=Example/CN=alice").
 */
#ifndef DBT_PROTO_MY_MYREQ_H
#define DBT_PROTO_MY_MYREQ_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum dbt_my_req_type {
    DBT_MY_REQ_NONE,
    DBT_MY_REQ_SSL,       /* any TLS connection */
    DBT_MY_REQ_X509,      /* TLS and a verified client certificate */
    DBT_MY_REQ_SPECIFIED, /* TLS, verified certificate, and the ISSUER/SUBJECT/CIPHER given */
};

struct dbt_my_req {
    char *user;
    char *host; /* LIKE pattern, "%" when not given */
    enum dbt_my_req_type type;
    char *issuer;  /* NULL when not required */
    char *subject; /* NULL when not required */
    char *cipher;  /* NULL when not required */
    unsigned line; /* line in the rules text, for messages */
};

struct dbt_my_reqs {
    struct dbt_my_req *v;
    size_t n;
};

/*
 * Parses rules text (NULL or empty = no rules). On error returns INVALID with a message
 * "line N: ..." naming what is wrong; *out is left empty. Free with dbt_my_reqs_free.
 */
dbt_res dbt_my_reqs_parse(const char *text, struct dbt_my_reqs *out) DBT_WUR;
void dbt_my_reqs_free(struct dbt_my_reqs *reqs);

/*
 * The rule for user (user_len bytes, from the wire) connecting from host (the client's address
 * text), or NULL (REQUIRE NONE).
 */
const struct dbt_my_req *dbt_my_reqs_find(const struct dbt_my_reqs *reqs, const char *user,
                                          size_t user_len, const char *host);

/* What the front knows about the client's TLS session when the HandshakeResponse arrives. */
struct dbt_my_tls_facts {
    bool tls;            /* the client leg is TLS */
    bool cert_present;   /* the client presented a certificate */
    bool cert_verified;  /* ... and it verified against the instance's client CA and CRL */
    const char *subject; /* X509_NAME_oneline of the certificate's subject, or NULL */
    const char *issuer;  /* X509_NAME_oneline of its issuer, or NULL */
    const char *cipher;  /* OpenSSL cipher name (SSL_get_cipher), or NULL */
};

/*
 * Evaluates a rule (NULL = REQUIRE NONE) the way MySQL's acl_check_ssl does. OK when satisfied;
 * DENIED with a message saying which requirement failed (for the log: the client only ever sees
 * MySQL's 1045 Access denied).
 */
dbt_res dbt_my_req_check(const struct dbt_my_req *req,
                         const struct dbt_my_tls_facts *facts) DBT_WUR;

/* "NONE", "SSL", "X509" or "SPECIFIED" (for logs and status). */
const char *dbt_my_req_type_name(enum dbt_my_req_type type);

/*
 * Converts a DN printed by OpenSSL's X509_NAME_print_ex(XN_FLAG_RFC2253) ("CN=alice,O=Acme,C=US",
 * last RDN first, RFC 2253 escapes) into X509_NAME_oneline()'s form ("/C=US/O=Acme/CN=alice"),
 * which is what MySQL compares REQUIRE ISSUER/SUBJECT against. Multi-valued RDNs ('+') become
 * separate components, as oneline prints them. INVALID on a dangling escape; LIMIT when out is
 * too small.
 */
dbt_res dbt_my_dn_oneline(const char *rfc2253, char *out, size_t outlen) DBT_WUR;

/* MySQL LIKE matching of a host pattern ('%', '_', '\\' escapes), case-insensitive. */
bool dbt_my_host_like(const char *pattern, const char *host);

#endif
