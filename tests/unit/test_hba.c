/*
 * test_hba.c - unit tests of the access rules (src/front/rules): golden files for pg_hba.conf
 * and pg_ident.conf parsing (tests/golden/hba/NAME.conf|NAME.ident -> NAME.<ext>.out, either the
 * canonical dump or "ERROR: <message>"), first-match lookup over IPv4/IPv6, SSL and replication,
 * and every decision with PostgreSQL's exact texts. Set DBTLS_GOLDEN_UPDATE=1 to rewrite the
 * .out files after a deliberate change (then review the diff).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "check.h"
#include "front/rules/hba.h"
#include "front/rules/share.h"

/* ---------------------------------------------------------------- golden files ------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void golden_one(const char *dir, const char *name, int is_ident, int update)
{
    char path[1024], outpath[1100];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(outpath, sizeof(outpath), "%s.out", path);
    size_t len;
    char *text = read_file(path, &len);
    CHECK(text != NULL);
    if (text == NULL) {
        return;
    }
    struct dbt_buf got;
    dbt_buf_init(&got, 0);
    dbt_res r;
    if (is_ident) {
        struct dbt_ident *id = NULL;
        r = dbt_ident_parse(text, len, "pg_ident.conf", &id);
        if (dbt_ok(r)) {
            CHECK_OK(dbt_ident_dump(id, &got));
            dbt_ident_free(id);
        }
    } else {
        struct dbt_hba *hba = NULL;
        r = dbt_hba_parse(text, len, "pg_hba.conf", &hba);
        if (dbt_ok(r)) {
            CHECK_OK(dbt_hba_dump(hba, &got));
            dbt_hba_free(hba);
        }
    }
    if (!dbt_ok(r)) {
        CHECK(r.code == DBT_E_INVALID);
        const char *e = dbt_errmsg();
        CHECK_OK(dbt_buf_append(&got, "ERROR: ", 7));
        CHECK_OK(dbt_buf_append(&got, e, strlen(e)));
        CHECK_OK(dbt_buf_append(&got, "\n", 1));
    }
    /* Error files are named err_*: a parse that succeeds there (or fails elsewhere) is a bug. */
    CHECK((strncmp(name, "err_", 4) == 0) == !dbt_ok(r));
    if (update) {
        FILE *f = fopen(outpath, "wb");
        CHECK(f != NULL);
        if (f) {
            fwrite(got.data, 1, got.len, f);
            fclose(f);
        }
    } else {
        size_t wl;
        char *want = read_file(outpath, &wl);
        CHECK(want != NULL);
        int same = want != NULL && wl == got.len && (wl == 0 || memcmp(want, got.data, wl) == 0);
        if (!same) {
            fprintf(stderr, "golden mismatch for %s:\n--- want\n%s--- got\n%.*s---\n", name,
                    want ? want : "(missing)\n", (int)got.len, (const char *)got.data);
        }
        CHECK(same);
        free(want);
    }
    dbt_buf_cleanup(&got);
    free(text);
}

static void test_golden(void)
{
    const char *root = getenv("DBTLS_SOURCE_ROOT");
    char dir[900];
    snprintf(dir, sizeof(dir), "%s/tests/golden/hba", root ? root : ".");
    int update = getenv("DBTLS_GOLDEN_UPDATE") != NULL;
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s (set DBTLS_SOURCE_ROOT)\n", dir);
        return;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (ends_with(e->d_name, ".conf")) {
            golden_one(dir, e->d_name, 0, update);
            n++;
        } else if (ends_with(e->d_name, ".ident")) {
            golden_one(dir, e->d_name, 1, update);
            n++;
        }
    }
    closedir(d);
    CHECK(n >= 30);
}

/* ---------------------------------------------------------------- matching ----------------- */

static struct sockaddr_storage ss;

static const struct sockaddr *ip(const char *s)
{
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(40000);
    } else if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
    } else {
        abort();
    }
    return (const struct sockaddr *)&ss;
}

static struct dbt_hba *parse(const char *text)
{
    struct dbt_hba *h = NULL;
    CHECK_OK(dbt_hba_parse(text, strlen(text), "pg_hba.conf", &h));
    return h;
}

/* The line of the first matching rule, 0 when none. */
static int match_line(const struct dbt_hba *h, const char *addr, bool ssl, const char *user,
                      const char *db, bool repl)
{
    struct dbt_hba_conn c = {ip(addr), sizeof(ss), ssl, repl, user, db, 15};
    const struct dbt_hba_rule *r = dbt_hba_match(h, &c);
    return r ? r->line : 0;
}

static void test_match(void)
{
    struct dbt_hba *h = parse("hostnossl all      all     127.0.0.1/32  reject\n"         /* 1 */
                              "hostssl   sameuser all     127.0.0.0/8   backend\n"        /* 2 */
                              "host      \"all\"  all     127.0.0.0/8   backend\n"        /* 3 */
                              "host      db1,db2  u1,\"U2\" 10.1.0.0 255.255.0.0 trust\n" /* 4 */
                              "host      replication repl all           trust\n"          /* 5 */
                              "hostssl   all      all     ::1/128       backend\n"        /* 6 */
                              "host      all      all     10.0.0.0/8    reject\n"         /* 7 */
                              "host      all      \"all\" 0.0.0.0/0     backend\n");      /* 8 */
    if (h == NULL) {
        return;
    }
    CHECK(dbt_hba_count(h) == 8);
    /* SSL decides between hostnossl and hostssl. */
    CHECK(match_line(h, "127.0.0.1", false, "u", "u", false) == 1);
    CHECK(match_line(h, "127.0.0.1", true, "u", "u", false) == 2);
    /* sameuser needs database = user; a quoted "all" is a database named all. */
    CHECK(match_line(h, "127.0.0.2", true, "u", "other", false) == 0);
    CHECK(match_line(h, "127.0.0.2", true, "u", "all", false) == 3);
    /* Lists, quoted user names are case-sensitive names, separate mask column. */
    CHECK(match_line(h, "10.1.200.3", false, "u1", "db2", false) == 4);
    CHECK(match_line(h, "10.1.200.3", false, "U2", "db1", false) == 4);
    CHECK(match_line(h, "10.1.200.3", false, "u2", "db1", false) == 7);
    CHECK(match_line(h, "10.2.0.1", false, "u1", "db1", false) == 7);
    /* Physical replication matches only the replication keyword; normal never does. */
    CHECK(match_line(h, "192.0.2.1", false, "repl", "", true) == 5);
    CHECK(match_line(h, "192.0.2.1", false, "repl", "replication", false) == 0);
    CHECK(match_line(h, "192.0.2.1", false, "other", "", true) == 0);
    /* IPv6 rules do not match IPv4 clients and the reverse. */
    CHECK(match_line(h, "::1", true, "u", "d", false) == 6);
    CHECK(match_line(h, "::1", false, "u", "d", false) == 0);
    CHECK(match_line(h, "::ffff:127.0.0.1", true, "u", "d", false) == 0);
    /* A user literally named "all" matches a quoted "all". */
    CHECK(match_line(h, "192.0.2.1", false, "all", "d", false) == 8);
    CHECK(match_line(h, "192.0.2.1", false, "bob", "d", false) == 0);
    /* No address: nothing matches. */
    struct dbt_hba_conn none = {NULL, 0, false, false, "u", "u", 15};
    CHECK(dbt_hba_match(h, &none) == NULL);
    dbt_hba_free(h);

    /* CIDR edges: /0, /32, /128, an odd prefix. */
    h = parse("host all all 192.168.0.0/23 trust\n"
              "host all all 2001:db8::/33 trust\n"
              "host all all 0.0.0.0/0 reject\n"
              "host all all ::/0 backend\n");
    if (h == NULL) {
        return;
    }
    CHECK(match_line(h, "192.168.1.255", false, "u", "d", false) == 1);
    CHECK(match_line(h, "192.168.2.0", false, "u", "d", false) == 3);
    CHECK(match_line(h, "2001:db8:7fff::1", false, "u", "d", false) == 2);
    CHECK(match_line(h, "2001:db8:8000::1", false, "u", "d", false) == 4);
    dbt_hba_free(h);
}

/* ---------------------------------------------------------------- decisions ---------------- */

static struct dbt_hba_verdict v;
static const char *cert_dn; /* the certificate subject decide() shows for clientname=DN */

static void decide(const struct dbt_hba *h, const struct dbt_ident *id, const char *addr, bool ssl,
                   const char *user, const char *db, int major, bool cert, const char *cn)
{
    struct dbt_hba_conn c = {ip(addr), sizeof(ss), ssl, false, user, db, major};
    struct dbt_hba_tls t = {.cert_valid = cert, .cn = cn, .dn = cert_dn};
    dbt_hba_check(h, id, &c, &t, &v);
    if (v.accept) {
        CHECK(v.sqlstate == NULL);
    } else {
        CHECK(v.sqlstate != NULL && strcmp(v.sqlstate, "28000") == 0);
    }
}

/* As decide, for a physical replication connection (database "replication"). */
static void decide_repl(const struct dbt_hba *h, const char *addr, bool ssl, bool cert)
{
    struct dbt_hba_conn c = {ip(addr), sizeof(ss), ssl, true, "u", "replication", 15};
    struct dbt_hba_tls t = {.cert_valid = cert, .cn = cert ? "u" : NULL};
    dbt_hba_check(h, NULL, &c, &t, &v);
}

static void test_defaults(void)
{
    struct dbt_hba *allow = NULL, *enc = NULL, *certreq = NULL;
    CHECK_OK(dbt_hba_default_rules(DBT_HBA_DEFAULT_ALLOW, &allow));
    CHECK_OK(dbt_hba_default_rules(DBT_HBA_DEFAULT_ENCRYPTED_ONLY, &enc));
    CHECK_OK(dbt_hba_default_rules(DBT_HBA_DEFAULT_CERT_REQUIRED, &certreq));
    CHECK_ERR(dbt_hba_default_rules((enum dbt_hba_default)9, &allow), DBT_E_INVALID);
    if (!allow || !enc || !certreq) {
        return;
    }
    decide(allow, NULL, "127.0.0.1", false, "u", "d", 15, false, NULL);
    CHECK(v.accept && v.rule && v.rule->method == DBT_HBA_METHOD_BACKEND);
    decide(allow, NULL, "::1", true, "u", "d", 15, false, NULL);
    CHECK(v.accept);

    decide(enc, NULL, "127.0.0.1", true, "u", "d", 15, false, NULL);
    CHECK(v.accept);
    decide(enc, NULL, "127.0.0.1", false, "u", "d", 15, false, NULL);
    CHECK(!v.accept && v.rule == NULL);
    CHECK(strcmp(v.message, "no pg_hba.conf entry for host \"127.0.0.1\", user \"u\", database "
                            "\"d\", no encryption") == 0);
    decide(enc, NULL, "::1", false, "u", "d", 13, false, NULL);
    CHECK(strcmp(v.message,
                 "no pg_hba.conf entry for host \"::1\", user \"u\", database \"d\", SSL off") ==
          0);

    decide(certreq, NULL, "127.0.0.1", true, "u", "d", 15, false, NULL);
    CHECK(!v.accept && v.rule != NULL);
    CHECK(strcmp(v.message, "connection requires a valid client certificate") == 0);
    decide(certreq, NULL, "127.0.0.1", true, "u", "d", 15, true, "someone-else");
    CHECK(v.accept); /* verify-ca: any CN */
    decide(certreq, NULL, "127.0.0.1", false, "u", "d", 15, false, NULL);
    CHECK(!v.accept && strstr(v.message, "no pg_hba.conf entry") == v.message);

    /* physical replication follows the ssl mode like every other connection */
    decide_repl(allow, "127.0.0.1", false, false);
    CHECK(v.accept && v.rule && v.rule->method == DBT_HBA_METHOD_BACKEND);
    decide_repl(enc, "127.0.0.1", true, false);
    CHECK(v.accept);
    decide_repl(enc, "127.0.0.1", false, false);
    CHECK(!v.accept && strcmp(v.message, "no pg_hba.conf entry for replication connection from "
                                         "host \"127.0.0.1\", user \"u\", no encryption") == 0);
    decide_repl(certreq, "127.0.0.1", true, false);
    CHECK(!v.accept && strcmp(v.message, "connection requires a valid client certificate") == 0);
    decide_repl(certreq, "127.0.0.1", true, true);
    CHECK(v.accept);
    dbt_hba_free(allow);
    dbt_hba_free(enc);
    dbt_hba_free(certreq);
}

static void test_decisions(void)
{
    static const char ident_text[] = "corp /^(.*)@example\\.com$ \\1\n"
                                     "corp alice.admin alice\n";
    struct dbt_ident *id = NULL;
    CHECK_OK(dbt_ident_parse(ident_text, strlen(ident_text), "pg_ident.conf", &id));
    struct dbt_hba *h = parse("hostssl certdb  all all cert\n"
                              "hostssl mapdb   all all cert map=corp\n"
                              "hostssl fulldb  all all backend clientcert=verify-full\n"
                              "hostssl fullmap all all backend clientcert=verify-full map=corp\n"
                              "hostssl trustdb all all trust clientcert=verify-full\n"
                              "host    nodb    all all reject\n"
                              "host    all     all 192.0.2.0/24 reject\n"
                              "host    all     all all backend\n");
    if (h == NULL || id == NULL) {
        return;
    }
    /* Reject lines, with each engine's encryption wording. */
    decide(h, id, "127.0.0.1", false, "u", "nodb", 15, false, NULL);
    CHECK(!v.accept && v.rule && v.rule->line == 6);
    CHECK(strcmp(v.message, "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"u\", "
                            "database \"nodb\", no encryption") == 0);
    decide(h, id, "192.0.2.9", true, "u", "x", 14, false, NULL);
    CHECK(strcmp(v.message, "pg_hba.conf rejects connection for host \"192.0.2.9\", user \"u\", "
                            "database \"x\", SSL encryption") == 0);
    decide(h, id, "192.0.2.9", true, "u", "x", 12, false, NULL);
    CHECK(strcmp(v.message, "pg_hba.conf rejects connection for host \"192.0.2.9\", user \"u\", "
                            "database \"x\", SSL on") == 0);

    /* cert: CN = user. */
    decide(h, id, "127.0.0.1", true, "alice", "certdb", 15, true, "alice");
    CHECK(v.accept && v.rule->method == DBT_HBA_METHOD_CERT);
    decide(h, id, "127.0.0.1", true, "alice", "certdb", 15, true, "mallory");
    CHECK(!v.accept);
    CHECK(strcmp(v.message, "certificate authentication failed for user \"alice\"") == 0);
    CHECK(strcmp(v.log, "provided user name (alice) and authenticated user name (mallory) do "
                        "not match") == 0);
    decide(h, id, "127.0.0.1", true, "alice", "certdb", 15, true, "");
    CHECK(!v.accept);
    CHECK(strcmp(v.message, "certificate authentication failed for user \"alice\"") == 0);
    CHECK(strcmp(v.log, "certificate authentication failed for user \"alice\": client "
                        "certificate contains no user name") == 0);
    decide(h, id, "127.0.0.1", true, "alice", "certdb", 15, false, NULL);
    CHECK(strcmp(v.message, "connection requires a valid client certificate") == 0);
    /* Without TLS the hostssl cert lines do not match at all. */
    decide(h, id, "127.0.0.1", false, "alice", "certdb", 15, true, "alice");
    CHECK(v.accept && v.rule->line == 8);

    /* cert + map: regex with \1, and a plain line. */
    decide(h, id, "127.0.0.1", true, "bob", "mapdb", 15, true, "bob@example.com");
    CHECK(v.accept);
    decide(h, id, "127.0.0.1", true, "alice", "mapdb", 15, true, "alice.admin");
    CHECK(v.accept);
    decide(h, id, "127.0.0.1", true, "bob", "mapdb", 15, true, "bob@example.org");
    CHECK(!v.accept);
    CHECK(strcmp(v.message, "certificate authentication failed for user \"bob\"") == 0);
    CHECK(strcmp(v.log, "no match in usermap \"corp\" for user \"bob\" authenticated as "
                        "\"bob@example.org\"") == 0);

    /* clientcert=verify-full with the backend method. */
    decide(h, id, "127.0.0.1", true, "carol", "fulldb", 15, true, "carol");
    CHECK(v.accept && v.rule->method == DBT_HBA_METHOD_BACKEND);
    decide(h, id, "127.0.0.1", true, "carol", "fulldb", 15, true, "dave");
    CHECK(!v.accept);
    CHECK(strcmp(v.message,
                 "certificate validation (clientcert=verify-full) failed for user \"carol\"") == 0);
    CHECK(strstr(v.log, "certificate validation (clientcert=verify-full) failed for user "
                        "\"carol\": CN mismatch") != NULL);
    CHECK(strstr(v.log, "provided user name (carol) and authenticated user name (dave)") != NULL);
    decide(h, id, "127.0.0.1", true, "carol", "fulldb", 15, false, NULL);
    CHECK(strcmp(v.message, "connection requires a valid client certificate") == 0);
    decide(h, id, "127.0.0.1", true, "bob", "fullmap", 15, true, "bob@example.com");
    CHECK(v.accept);
    decide(h, id, "127.0.0.1", true, "eve", "fullmap", 15, true, "bob@example.com");
    CHECK(!v.accept);
    CHECK(strstr(v.log, "no match in usermap \"corp\"") == v.log);

    /* trust + verify-full: the same certificate validation failure. */
    decide(h, id, "127.0.0.1", true, "u", "trustdb", 15, true, "x");
    CHECK(!v.accept);
    CHECK(strcmp(v.message,
                 "certificate validation (clientcert=verify-full) failed for user \"u\"") == 0);
    decide(h, id, "127.0.0.1", true, "u", "trustdb", 15, true, "u");
    CHECK(v.accept && v.rule->method == DBT_HBA_METHOD_TRUST);

    /* Replication wording (only the replication keyword matches such a connection). */
    dbt_hba_free(h);
    h = parse("host replication all 192.0.2.0/24 reject\n"
              "host all all all backend\n");
    if (h == NULL) {
        return;
    }
    struct dbt_hba_conn rc = {ip("192.0.2.1"), sizeof(ss), false, true, "r", "", 15};
    struct dbt_hba_tls nt = {.cert_valid = false};
    dbt_hba_check(h, id, &rc, &nt, &v);
    CHECK(strcmp(v.message, "pg_hba.conf rejects replication connection for host \"192.0.2.1\", "
                            "user \"r\", no encryption") == 0);
    rc.addr = ip("127.0.0.1");
    dbt_hba_check(h, id, &rc, &nt, &v);
    CHECK(strcmp(v.message, "no pg_hba.conf entry for replication connection from host "
                            "\"127.0.0.1\", user \"r\", no encryption") == 0);

    dbt_hba_free(h);
    dbt_ident_free(id);
}

/* ---------------------------------------------------------------- ident maps --------------- */

/* clientname=DN (PostgreSQL 14): the whole RFC 2253 subject is the name the user must equal or
   map from; the default (and clientname=CN) stays the CN. */
static void test_clientname(void)
{
    /* quoted, as PostgreSQL's own tests quote them: a comma separates values otherwise */
    static const char ident_text[] = "dns \"/^CN=([^,]+),OU=eng,O=dbtls$\" \\1\n"
                                     "dns \"CN=ops,O=dbtls\" admin\n";
    struct dbt_ident *id = NULL;
    CHECK_OK(dbt_ident_parse(ident_text, strlen(ident_text), "pg_ident.conf", &id));
    struct dbt_hba *h = parse("hostssl certdb all all cert clientname=DN map=dns\n"
                              "hostssl rawdn  all all cert clientname=DN\n"
                              "hostssl cndb   all all cert clientname=CN\n"
                              "hostssl fulldb all all backend clientcert=verify-full "
                              "clientname=DN map=dns\n");
    if (h == NULL || id == NULL) {
        dbt_ident_free(id);
        return;
    }
    CHECK(dbt_hba_match(h, &(struct dbt_hba_conn){ip("127.0.0.1"), sizeof(ss), true, false, "u",
                                                  "certdb", 15})
              ->clientname == DBT_HBA_CLIENTNAME_DN);
    cert_dn = "CN=fred,OU=eng,O=dbtls";
    decide(h, id, "127.0.0.1", true, "fred", "certdb", 15, true, "fred");
    CHECK(v.accept && v.rule->method == DBT_HBA_METHOD_CERT);
    /* the same CN in another OU: the DN decides, not the CN */
    cert_dn = "CN=fred,OU=sales,O=dbtls";
    decide(h, id, "127.0.0.1", true, "fred", "certdb", 15, true, "fred");
    CHECK(!v.accept);
    CHECK(strcmp(v.message, "certificate authentication failed for user \"fred\"") == 0);
    CHECK(strcmp(v.log, "no match in usermap \"dns\" for user \"fred\" authenticated as "
                        "\"CN=fred,OU=sales,O=dbtls\"") == 0);
    cert_dn = "CN=ops,O=dbtls";
    decide(h, id, "127.0.0.1", true, "admin", "certdb", 15, true, "ops");
    CHECK(v.accept);
    /* without a map the user name must be the DN itself */
    decide(h, id, "127.0.0.1", true, "ops", "rawdn", 15, true, "ops");
    CHECK(!v.accept);
    decide(h, id, "127.0.0.1", true, "CN=ops,O=dbtls", "rawdn", 15, true, "ops");
    CHECK(v.accept);
    /* no usable DN (none, or too long to be shown whole): refused, as a certificate without a
       user name */
    cert_dn = NULL;
    decide(h, id, "127.0.0.1", true, "admin", "certdb", 15, true, "ops");
    CHECK(!v.accept && strstr(v.log, "client certificate contains no user name") != NULL);
    /* clientname=CN is the default behaviour */
    cert_dn = "CN=ops,O=dbtls";
    decide(h, id, "127.0.0.1", true, "ops", "cndb", 15, true, "ops");
    CHECK(v.accept);
    /* clientcert=verify-full with another method: the log names the DN */
    cert_dn = "CN=fred,OU=sales,O=dbtls";
    decide(h, id, "127.0.0.1", true, "fred", "fulldb", 15, true, "fred");
    CHECK(!v.accept);
    CHECK(strcmp(v.message,
                 "certificate validation (clientcert=verify-full) failed for user \"fred\"") == 0);
    CHECK(strstr(v.log, "\"fred\": DN mismatch") != NULL);
    cert_dn = NULL;
    dbt_hba_free(h);
    dbt_ident_free(id);
}

static void test_ident(void)
{
    static const char text[] = "m /^(.*)@example\\.com$ \\1\n"
                               "m /svc ops\n"
                               "m /^x-(.*)$ pre_\\1_\\1\n"
                               "m /^nosub$ \\1\n"
                               "m Case Case\n"
                               "n carol carol\n";
    struct dbt_ident *id = NULL;
    char log[512];
    CHECK_OK(dbt_ident_parse(text, strlen(text), "pg_ident.conf", &id));
    if (id == NULL) {
        return;
    }
    CHECK(dbt_ident_check(id, "m", "bob", "bob@example.com", log, sizeof(log)));
    CHECK(!dbt_ident_check(id, "m", "bob", "bob@example.com.evil", log, sizeof(log)));
    /* Unanchored: "/svc" matches anywhere. */
    CHECK(dbt_ident_check(id, "m", "ops", "my-svc-1", log, sizeof(log)));
    /* Only the first \1 is replaced. */
    CHECK(dbt_ident_check(id, "m", "pre_a_\\1", "x-a", log, sizeof(log)));
    CHECK(!dbt_ident_check(id, "m", "pre_a_a", "x-a", log, sizeof(log)));
    /* A backreference without a capture is an error, logged as PostgreSQL does. */
    CHECK(!dbt_ident_check(id, "m", "whatever", "nosub", log, sizeof(log)));
    CHECK(strcmp(log, "regular expression \"^nosub$\" has no subexpressions as requested by "
                      "backreference in \"\\1\"") == 0);
    /* Case-sensitive. */
    CHECK(dbt_ident_check(id, "m", "Case", "Case", log, sizeof(log)));
    CHECK(!dbt_ident_check(id, "m", "case", "Case", log, sizeof(log)));
    /* Lines of another map do not count. */
    CHECK(!dbt_ident_check(id, "m", "carol", "carol", log, sizeof(log)));
    CHECK(strcmp(log, "no match in usermap \"m\" for user \"carol\" authenticated as \"carol\"") ==
          0);
    CHECK(dbt_ident_check(id, "n", "carol", "carol", log, sizeof(log)));
    /* No map name: equality; no ident file: nothing maps. */
    CHECK(dbt_ident_check(NULL, NULL, "a", "a", log, sizeof(log)));
    CHECK(dbt_ident_check(id, "", "a", "a", log, sizeof(log)));
    CHECK(!dbt_ident_check(NULL, "m", "a", "a", log, sizeof(log)));
    CHECK(!dbt_ident_check(NULL, NULL, "a", "b", log, sizeof(log)));
    CHECK(strcmp(log, "provided user name (a) and authenticated user name (b) do not match") == 0);
    dbt_ident_free(id);

    /* Not NUL-terminated input is fine (length given); an embedded NUL ends the line. */
    static const char nul[] = "m a b\0ignored\nm c d";
    CHECK_OK(dbt_ident_parse(nul, sizeof(nul) - 1, "pg_ident.conf", &id));
    if (id) {
        CHECK(dbt_ident_check(id, "m", "b", "a", log, sizeof(log)));
        CHECK(dbt_ident_check(id, "m", "d", "c", log, sizeof(log)));
        dbt_ident_free(id);
    }
}

/* Ident-map regular expressions are PCRE2's (front/rules/ident.c): PostgreSQL's flavour (\d,
   non-greedy, (?:)) compiles; patterns that made glibc's regcomp allocate gigabytes or run for
   minutes (fuzz_hba) compile at once or are refused naming the line; a match that backtracks
   without end stops at the match limit and is logged as PostgreSQL logs a failed match. */
static void test_ident_regex_cost(void)
{
    static const char *const fine[] = {
        "m /^(.*)@example\\.com$ \\1\n",
        "m /^([a-z0-9._-]+)@(corp|ops)\\.example\\.com$ \\1\n",
        "m \"/^svc-[[:alnum:]]{1,32}$\" svc\n", /* a comma needs quotes, as in PostgreSQL */
        "m \"/^[]a-z]+x{2,}$\" y\n",
        "m /^(a|b)*(c?d+){3}$ y\n",
        "m /^(?:db-)?(\\w+?)\\d*$ \\1\n",
        "m /((((((((((()+)+)+)+)+)+)+)+)+)+)+ x\n", /* regcomp: 35 s */
        "m /((()|())+){200} x\n",                   /* regcomp: minutes */
        "m /((((((((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+) x\n",
    };
    static const char *const refused[] = {
        "m /^(.*)@e++++++++++++++++++++++++++++++++++++++++xample$ \\1\n",
        "m /()+++++++++ x\n",
        "m /((a{100}){100}){100} x\n",
        "m /(a \\1\n",
    };
    struct dbt_ident *id = NULL;
    char log[512];
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        CHECK_OK(dbt_ident_parse(fine[i], strlen(fine[i]), "pg_ident.conf", &id));
        dbt_ident_free(id);
        id = NULL;
    }
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        CHECK_ERR(dbt_ident_parse(refused[i], strlen(refused[i]), "pg_ident.conf", &id),
                  DBT_E_INVALID);
        CHECK(strstr(dbt_errmsg(), "line 1 of configuration file \"pg_ident.conf\"") != NULL &&
              strstr(dbt_errmsg(), "invalid regular expression") != NULL);
    }
    char long_re[1100];
    memset(long_re, 'a', sizeof(long_re));
    memcpy(long_re, "m /", 3);
    memcpy(long_re + sizeof(long_re) - 4, " x\n", 4);
    CHECK_ERR(dbt_ident_parse(long_re, strlen(long_re), "pg_ident.conf", &id), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "longer than 1000 characters") != NULL);

    /* PostgreSQL's flavour: \w, \d, non-greedy capture; '.' matches a newline, '$' only the end */
    static const char flavour[] = "m /^(?:db-)?(\\w+?)\\d*$ \\1\n"
                                  "n /^a.b$ nl\n";
    CHECK_OK(dbt_ident_parse(flavour, strlen(flavour), "pg_ident.conf", &id));
    if (id != NULL) {
        CHECK(dbt_ident_check(id, "m", "alice", "db-alice42", log, sizeof(log)));
        CHECK(dbt_ident_check(id, "m", "bob", "bob7", log, sizeof(log)));
        CHECK(!dbt_ident_check(id, "m", "bob", "bob-7", log, sizeof(log)));
        CHECK(dbt_ident_check(id, "n", "nl", "a\nb", log, sizeof(log)));
        /* characters, not bytes: a UTF-8 CN is \w+ as in a UTF-8 PostgreSQL database; bytes
           that are not UTF-8 do not match \w but are no error */
        CHECK(dbt_ident_check(id, "m", "Jos\xc3\xa9", "db-Jos\xc3\xa9", log, sizeof(log)));
        CHECK(!dbt_ident_check(id, "m", "Jos", "db-Jos\xe9", log, sizeof(log)));
        CHECK(strstr(log, "no match in usermap") != NULL);
        CHECK(!dbt_ident_check(id, "n", "nl", "a-b\n", log, sizeof(log)));
        dbt_ident_free(id);
        id = NULL;
    }
    /* Catastrophic backtracking stops at the match limit: an error, not a hang, not a match. */
    static const char hostile[] = "m /^(a|aa)+$ x\n";
    CHECK_OK(dbt_ident_parse(hostile, strlen(hostile), "pg_ident.conf", &id));
    if (id != NULL) {
        char user[80];
        memset(user, 'a', sizeof(user) - 2);
        user[sizeof(user) - 2] = 'b';
        user[sizeof(user) - 1] = '\0';
        CHECK(!dbt_ident_check(id, "m", "x", user, log, sizeof(log)));
        CHECK(strstr(log, "regular expression match for \"^(a|aa)+$\" failed: match limit "
                          "exceeded") != NULL);
        CHECK(dbt_ident_check(id, "m", "x", "aaaa", log, sizeof(log)));
        dbt_ident_free(id);
    }
}

/* Shared listen addresses (front/rules/share.h). */
static void test_share(void)
{
    const char *ea[] = {"orders.example.com", "10.0.0.5", "*.orders.example.com"};
    const char *eb[] = {"billing.example.com", "10.0.0.5"};
    const char *ec[] = {"ORDERS.example.com"};
    struct dbt_share_inst a = {"orders", "postgres", "0.0.0.0:5432", NULL, ea, 3};
    struct dbt_share_inst b = {"billing", "postgres", "0.0.0.0:5432", "", eb, 2};
    struct dbt_share_inst c = {"dup", "postgres", "0.0.0.0:5432", NULL, ec, 1};
    struct dbt_share_inst m = {"shop", "mariadb", "0.0.0.0:5432", NULL, eb, 2};
    struct dbt_share_inst g = {"curvy", "postgres", "0.0.0.0:5432", "P-256", eb, 2};
    CHECK_OK(dbt_share_check(&a, &b)); /* an IP endpoint may repeat; NULL groups = "" */
    CHECK_ERR(dbt_share_check(&a, &c), DBT_E_EXISTS);
    CHECK(strstr(dbt_errmsg(), "endpoint ORDERS.example.com is already an endpoint of instance "
                               "\"orders\" on listen address 0.0.0.0:5432") != NULL);
    CHECK_ERR(dbt_share_check(&a, &m), DBT_E_EXISTS);
    CHECK(strstr(dbt_errmsg(), "only PostgreSQL instances can share") != NULL);
    CHECK_ERR(dbt_share_check(&m, &a), DBT_E_EXISTS);
    CHECK_ERR(dbt_share_check(&a, &g), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "whose TLS groups (default) differ") != NULL);

    CHECK(dbt_share_endpoint_is_name("db.example.com"));
    CHECK(dbt_share_endpoint_is_name("*.example.com"));
    CHECK(!dbt_share_endpoint_is_name("10.0.0.5"));
    CHECK(!dbt_share_endpoint_is_name("::1"));
    CHECK(!dbt_share_endpoint_is_name("2001:db8::5"));
}

int main(void)
{
    test_golden();
    test_match();
    test_defaults();
    test_decisions();
    test_clientname();
    test_ident();
    test_ident_regex_cost();
    test_share();
    return check_exit();
}
