/*
 * hba.h - the access rules of a PostgreSQL instance: a pg_hba.conf subset and a pg_ident.conf
 * user name map, parsed once per configuration generation into immutable objects, then asked
 * per connection "may this client in, and if not, what does PostgreSQL say?". Pure code: no I/O,
 * no globals; the daemon's session state machine (src/front/pg_session.c) drives it.
 *
 * pg_hba.conf subset (PostgreSQL 15 "The pg_hba.conf File"): one record per line,
 *   host|hostssl|hostnossl  DATABASE  USER  ADDRESS [MASK]  METHOD  [OPTIONS]
 * DATABASE: all, sameuser, names, comma lists, "quoted" names (a quoted keyword is a name);
 * USER: all, names, comma lists, quoted; ADDRESS: all, CIDR (v4/v6) or an IP with the mask in
 * the next column; METHOD: backend (the database server authenticates: the front relays),
 * trust, cert, reject; OPTIONS: clientcert=verify-ca|verify-full, clientname=CN|DN (PostgreSQL
 * 14: which part of the certificate's subject is the name matched), map=NAME. '#' comments, a
 * backslash at the end of a line continues it. First matching record wins.
 *
 * pg_ident.conf (PostgreSQL 15 "User Name Maps"): MAPNAME SYSTEM-USERNAME PG-USERNAME; a system
 * user name starting with '/' is a POSIX extended regular expression whose first capture may be
 * referenced as \1 in PG-USERNAME.
 *
 * Ownership: objects are immutable after parsing and may be shared by all worker threads; the
 * rule pointers handed out live as long as their dbt_hba.
 */
#ifndef DBT_FRONT_RULES_HBA_H
#define DBT_FRONT_RULES_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/err.h"

/* ---------------------------------------------------------------- pg_hba.conf -------------- */

enum dbt_hba_conn_type {
    DBT_HBA_HOST,      /* TCP, with or without TLS */
    DBT_HBA_HOSTSSL,   /* TCP with TLS only */
    DBT_HBA_HOSTNOSSL, /* TCP without TLS only */
};

enum dbt_hba_method {
    DBT_HBA_METHOD_BACKEND, /* the database server authenticates (relay its auth exchange) */
    DBT_HBA_METHOD_TRUST,   /* the front admits; the backend must trust the front */
    DBT_HBA_METHOD_CERT,    /* verified client certificate whose CN = user (or maps to it) */
    DBT_HBA_METHOD_REJECT,
};

enum dbt_hba_clientcert {
    DBT_HBA_CLIENTCERT_OFF,
    DBT_HBA_CLIENTCERT_VERIFY_CA,   /* a certificate verified against the client CA + CRL */
    DBT_HBA_CLIENTCERT_VERIFY_FULL, /* ...and its CN = user (or maps to it); implied by cert */
};

/* What of the client certificate cert and clientcert=verify-full compare with the user. */
enum dbt_hba_clientname {
    DBT_HBA_CLIENTNAME_CN, /* the subject's CN (the default) */
    DBT_HBA_CLIENTNAME_DN, /* the whole subject, RFC 2253 ("CN=alice,OU=eng,O=dbtls") */
};

/* One parsed record. Read-only for callers. */
struct dbt_hba_rule {
    int line; /* 1-based line in the source text (first physical line) */
    enum dbt_hba_conn_type conn_type;
    enum dbt_hba_method method;
    enum dbt_hba_clientcert clientcert;
    enum dbt_hba_clientname clientname;
    bool clientname_given; /* the record says clientname= (an option of PostgreSQL 14 on) */
    const char *map;       /* map=NAME, NULL when absent */
    const char *raw;       /* the record's text as written (continuations joined) */
};

struct dbt_hba;

/*
 * Parses pg_hba.conf text[0..len) (need not be NUL-terminated). file_name names the source in
 * messages (e.g. "pg_hba.conf" or the instance's --hba-file name). On error returns
 * DBT_E_INVALID and sets dbt_errmsg() to PostgreSQL's reason followed by its context, e.g.
 *   invalid authentication method "md5x" (line 3 of configuration file "pg_hba.conf")
 * naming the first bad line. An empty file (only comments) is an error as in PostgreSQL
 * ("configuration file "pg_hba.conf" contains no entries"). *out is set only on success.
 */
dbt_res dbt_hba_parse(const char *text, size_t len, const char *file_name,
                      struct dbt_hba **out) DBT_WUR;

/* The instance's ssl mode, for the rules used when it has no access rules of its own. */
enum dbt_hba_default {
    DBT_HBA_DEFAULT_ALLOW,          /* ALLOW_UNENCRYPTED_AND_ENCRYPTED: host all all all backend */
    DBT_HBA_DEFAULT_ENCRYPTED_ONLY, /* ENCRYPTED_ONLY: hostssl all all all backend */
    DBT_HBA_DEFAULT_CERT_REQUIRED,  /* TRUSTED_CLIENT_CERTIFICATE_REQUIRED: hostssl all all all
                                       backend clientcert=verify-ca */
};

/* The rules derived from an ssl mode (file name in messages: "default rules"). */
dbt_res dbt_hba_default_rules(enum dbt_hba_default mode, struct dbt_hba **out) DBT_WUR;

void dbt_hba_free(struct dbt_hba *hba);

size_t dbt_hba_count(const struct dbt_hba *hba);
const struct dbt_hba_rule *dbt_hba_rule_at(const struct dbt_hba *hba, size_t i);

/* Appends a canonical, one-record-per-line dump of the parsed rules (golden tests, logs). */
dbt_res dbt_hba_dump(const struct dbt_hba *hba, struct dbt_buf *out) DBT_WUR;

/* ---------------------------------------------------------------- pg_ident.conf ------------ */

struct dbt_ident;

/*
 * Parses pg_ident.conf text. Errors as dbt_hba_parse (DBT_E_INVALID, first bad line named),
 * including an invalid regular expression ('invalid regular expression "...": <regerror>').
 * An empty map file is valid.
 */
dbt_res dbt_ident_parse(const char *text, size_t len, const char *file_name,
                        struct dbt_ident **out) DBT_WUR;
void dbt_ident_free(struct dbt_ident *ident);
dbt_res dbt_ident_dump(const struct dbt_ident *ident, struct dbt_buf *out) DBT_WUR;

/*
 * PostgreSQL's check_usermap: may system_user (the certificate CN) log in as pg_user?
 * map NULL or "": the two must be equal. Else any line of that map whose system user equals
 * system_user (or whose regex matches it) and whose PG user equals pg_user (after \1
 * substitution) allows it. ident may be NULL (no map file: every named map is empty).
 * Returns true when allowed; otherwise false and writes PostgreSQL's log line into log
 * (e.g. 'no match in usermap "m" for user "u" authenticated as "cn"').
 */
bool dbt_ident_check(const struct dbt_ident *ident, const char *map, const char *pg_user,
                     const char *system_user, char *log, size_t log_size);

/* ---------------------------------------------------------------- per connection ----------- */

/* What the front knows about a connection when the StartupMessage has been read. */
struct dbt_hba_conn {
    const struct sockaddr *addr; /* client address: AF_INET or AF_INET6 */
    socklen_t addr_len;
    bool ssl;         /* the client leg runs TLS */
    bool replication; /* physical replication (replication=true): matches only the
                         "replication" database keyword; replication=database (logical) is a
                         normal connection */
    const char *user;
    const char *database;
    int engine_major; /* instance engine version: >= 14 says "SSL encryption" /
                         "no encryption", before says "SSL on" / "SSL off" */
};

/* What the TLS layer established about the client certificate. */
struct dbt_hba_tls {
    bool cert_valid; /* a client certificate was presented and verified (chain + CRL) */
    const char *cn;  /* its subject CN, NULL or "" when it has none */
    const char *dn;  /* its subject as clientname=DN matches it (dbt_tls_peer_dn), NULL or ""
                        when unknown: needed only when the matched rule says clientname=DN */
};

/* First rule that matches (type vs ssl, database, user, address), or NULL if none. */
const struct dbt_hba_rule *dbt_hba_match(const struct dbt_hba *hba, const struct dbt_hba_conn *c);

#define DBT_HBA_MSG_MAX 512

struct dbt_hba_verdict {
    bool accept;
    const struct dbt_hba_rule *rule; /* the matched rule, NULL when none matched */
    const char *sqlstate;            /* "28000" when refused, NULL when accepted */
    char message[DBT_HBA_MSG_MAX];   /* refused: the FATAL text for the client */
    char log[DBT_HBA_MSG_MAX];       /* refused: the server log line PostgreSQL writes before
                                        the FATAL (e.g. the ident map failure), "" if none */
};

/*
 * Decides a matched rule (rule may be NULL = nothing matched), as PostgreSQL's
 * ClientAuthentication does:
 *   no rule   -> no pg_hba.conf entry for host "H", user "U", database "D", no encryption
 *   reject    -> pg_hba.conf rejects connection for host "H", user "U", database "D", ...
 *   clientcert set (or cert) without a valid certificate
 *             -> connection requires a valid client certificate
 *   cert with CN (clientname=DN: DN) missing or not mapping to the user
 *             -> certificate authentication failed for user "U"
 *   clientcert=verify-full (other methods), CN (DN) not mapping
 *             -> certificate validation (clientcert=verify-full) failed for user "U"
 * (replication connections get PostgreSQL's "replication connection" wording). Accepted
 * connections report the method in verdict->rule->method: BACKEND means relay the backend's
 * authentication, TRUST and CERT mean the front has authenticated the user.
 */
void dbt_hba_decide(const struct dbt_hba_rule *rule, const struct dbt_ident *ident,
                    const struct dbt_hba_conn *c, const struct dbt_hba_tls *tls,
                    struct dbt_hba_verdict *out);

/* dbt_hba_match then dbt_hba_decide. */
void dbt_hba_check(const struct dbt_hba *hba, const struct dbt_ident *ident,
                   const struct dbt_hba_conn *c, const struct dbt_hba_tls *tls,
                   struct dbt_hba_verdict *out);

#endif
