/*
 * test_ctl.c - every control operation against a real store in a temp state directory, checked
 * with pki's verifier: init, master key rules, CAs, engines, instance validation, slots
 * (create/rotate/rollback/expired previous) in both CA modes, patch --ca and mode changes,
 * client certs (limit, describe by SHA-1, delete -> CRL), reset-ssl-config, bundles, events,
 * runtime snapshot, and atomicity: every refused operation leaves the change counter and the
 * audit trail untouched, and a process killed inside a transaction (DBTLS_FAULT) leaves the old
 * state. Keys are generated with the store's write lock free: another connection can BEGIN
 * IMMEDIATE while every issuing operation makes its keys.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "ctl/admin_ca.h"
#include "ctl/auto.h"
#include "ctl/ctl.h"
#include "pki/pki.h"
#include "store/store.h"
#include "check.h"

static char root_dir[] = "/tmp/dbtls-test-ctl-XXXXXX";
static char state_dir[300];
static struct dbt_ctl_opts opts;
static struct dbt_ctl *ctl;

static char *path_in(const char *d, const char *name)
{
    static char buf[4][400];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", d, name);
    return buf[i];
}

#include "ctl_refused.h"

static struct dbt_ctl_instance_spec pg_spec(const char *listen, const char *endpoints)
{
    struct dbt_ctl_instance_spec s = {
        .engine = "postgres",
        .listen = listen,
        .backend = "127.0.0.1:5432",
        .endpoints = endpoints,
    };
    return s;
}

static struct dbt_pki_cert *cert_of(const char *pem)
{
    struct dbt_pki_cert *c = NULL;
    CHECK_OK(dbt_pki_cert_from_pem(pem, &c));
    return c;
}

/* Verifies leaf_pem against the CA PEM text as trust anchors (all certs in it: roots trusted,
   intermediates found in the same list as untrusted). */
static dbt_res verify_with(const char *leaf_pem, const char *ca_text, enum dbt_pki_purpose purpose,
                           const char *host, const char *crl_pem)
{
    struct dbt_pki_certs all = {0};
    struct dbt_pki_crl *crl = NULL;
    struct dbt_pki_cert *leaf = cert_of(leaf_pem);
    dbt_res r = dbt_pki_certs_from_pem(ca_text, &all);
    if (dbt_ok(r) && crl_pem) {
        r = dbt_pki_crl_from_pem(crl_pem, &crl);
    }
    if (dbt_ok(r)) {
        struct dbt_pki_verify_opts vo = {
            .trusted = &all, .untrusted = &all, .crl = crl, .purpose = purpose, .host = host};
        r = dbt_pki_verify(leaf, &vo, NULL);
    }
    dbt_pki_certs_free(&all);
    dbt_pki_crl_free(crl);
    dbt_pki_cert_free(leaf);
    return r;
}

static char *slot_sha1(const char *inst, enum dbt_ctl_slot_kind kind, const char *slot)
{
    struct dbt_ctl_cert_list l = {0};
    char *r = NULL;
    CHECK_OK(dbt_ctl_slots_list(ctl, inst, kind, &l));
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].slot, slot) == 0) {
            r = strdup(l.items[i].sha1_fingerprint);
        }
    }
    dbt_ctl_cert_list_cleanup(&l);
    return r;
}

static size_t n_slots(const char *inst)
{
    struct dbt_ctl_cert_list l = {0};
    CHECK_OK(dbt_ctl_slots_list(ctl, inst, DBT_CTL_SLOT_SERVER_CERT, &l));
    size_t n = l.n;
    dbt_ctl_cert_list_cleanup(&l);
    return n;
}

static bool streq_opt(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* ---------------------------------------------------------------------------------------- */

static void test_init_and_master_key(void)
{
    CHECK_OK(dbt_ctl_init(&opts));
    struct stat sb;
    CHECK(stat(state_dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    CHECK(stat(path_in(state_dir, "master.key"), &sb) == 0 && (sb.st_mode & 0777) == 0600 &&
          sb.st_size == 32);
    CHECK(stat(path_in(state_dir, "dbtls.db"), &sb) == 0 && (sb.st_mode & 077) == 0);
    CHECK_ERR(dbt_ctl_init(&opts), DBT_E_EXISTS);
    CHECK(strstr(dbt_errmsg(), "already initialized") != NULL);

    /* Group/world-readable master key: refused, PostgreSQL-style message with the fix. */
    chmod(path_in(state_dir, "master.key"), 0644);
    struct dbt_ctl *c = NULL;
    CHECK_ERR(dbt_ctl_open(&opts, &c), DBT_E_PERM);
    CHECK(strstr(dbt_errmsg(), "has group or world access; permissions should be u=rw (0600) "
                               "or less") != NULL);
    CHECK(strstr(dbt_errmsg(), "chmod 0600") != NULL);
    CHECK(c == NULL);
    chmod(path_in(state_dir, "master.key"), 0600);
    CHECK_OK(dbt_ctl_open(&opts, &ctl));

    /* Missing state dir / not initialized. */
    struct dbt_ctl_opts o2 = {.state_dir = path_in(root_dir, "nowhere")};
    CHECK_ERR(dbt_ctl_open(&o2, &c), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "dbtls init") != NULL);
}

/* The store of state dir d opened with a master key that is not its own. */
static struct dbt_ctl *open_with_wrong_key(const char *d)
{
    struct dbt_ctl_opts wrong = {
        .state_dir = d,
        .master_key_command =
            "printf ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"};
    struct dbt_ctl *c = NULL;
    CHECK_OK(dbt_ctl_open(&wrong, &c));
    return c;
}

static void test_master_key_command(void)
{
    char d[400], cmd[600];
    snprintf(d, sizeof d, "%s/cmd-state", root_dir);
    snprintf(cmd, sizeof cmd,
             "printf 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    struct dbt_ctl_opts o = {.state_dir = d, .master_key_command = cmd};
    CHECK_OK(dbt_ctl_init(&o));
    CHECK(access(path_in(d, "master.key"), F_OK) != 0);
    struct dbt_ctl *c = NULL;
    CHECK_OK(dbt_ctl_open(&o, &c));
    struct dbt_ctl_ca_list cas = {0};
    CHECK_OK(dbt_ctl_cas_list(c, &cas));
    CHECK(cas.n == 3);
    dbt_ctl_ca_list_cleanup(&cas);
    /* Keys sealed under the command's key open with it: an instance can be created. */
    struct dbt_ctl_instance_spec s = pg_spec("127.0.0.1:16000", "db.example.com");
    CHECK_OK(dbt_ctl_instance_create(c, "cmd1", &s, NULL, NULL));
    dbt_ctl_close(c);

    /* A different key: the store opens, but sealed CA keys do not (CRYPTO, no change). */
    c = open_with_wrong_key(d);
    uint64_t before = 0, after = 0;
    CHECK_OK(dbt_ctl_change_counter(c, &before));
    struct dbt_ctl_instance_spec s2 = pg_spec("127.0.0.1:16001", "db2.example.com");
    CHECK_ERR(dbt_ctl_instance_create(c, "cmd2", &s2, NULL, NULL), DBT_E_CRYPTO);
    CHECK(strstr(dbt_errmsg(), "master key") != NULL);
    CHECK_OK(dbt_ctl_change_counter(c, &after));
    CHECK(before == after);
    dbt_ctl_close(c);

    /* Commands that fail or print garbage. */
    struct dbt_ctl_opts bad = {.state_dir = d, .master_key_command = "exit 3"};
    CHECK_ERR(dbt_ctl_open(&bad, &c), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "exit status 3") != NULL);
    bad.master_key_command = "echo short";
    CHECK_ERR(dbt_ctl_open(&bad, &c), DBT_E_INVALID);
    /* Without the command the key file is looked for, and is not there. */
    struct dbt_ctl_opts none = {.state_dir = d};
    CHECK_ERR(dbt_ctl_open(&none, &c), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "master.key") != NULL);
}

/* A fleet: the load's cryptography runs on several threads (base/par.h), each instance gets its
   own key and CRL; a failure names the first instance the load reads (the oldest: instances
   are read in creation order), as a sequential load would. */
static void test_fleet_load(void)
{
    char d[400];
    snprintf(d, sizeof d, "%s/fleet", root_dir);
    struct dbt_ctl_opts o = {
        .state_dir = d,
        .master_key_command =
            "printf 0011223344556677889900112233445566778899001122334455667788990011"};
    CHECK_OK(dbt_ctl_init(&o));
    struct dbt_ctl *c = NULL;
    CHECK_OK(dbt_ctl_open(&o, &c));
    if (c == NULL) {
        return;
    }
    enum { N = 12 };
    for (int i = N - 1; i >= 0; i--) {
        char name[16], listen[32], ep[32];
        snprintf(name, sizeof name, "f%02d", i);
        snprintf(listen, sizeof listen, "127.0.0.1:%d", 16100 + i);
        snprintf(ep, sizeof ep, "f%02d.example.com", i);
        struct dbt_ctl_instance_spec s = pg_spec(listen, ep);
        CHECK_OK(dbt_ctl_instance_create(c, name, &s, NULL, NULL));
    }
    /* A start serves each young stored CRL as is (f05), and signs afresh one past half its
       validity (f11, the first created: row 1 here, given a CRL dated 20 of its 30 days ago
       from another issuer: what is served must be the client CA's own, new one). */
    char *stored05 = NULL;
    CHECK_OK(dbt_ctl_client_ca(c, "f05", NULL, &stored05));
    {
        struct dbt_pki_key *k = NULL;
        struct dbt_pki_cert *ca = NULL;
        struct dbt_pki_crl *old = NULL;
        char *old_pem = NULL;
        struct dbt_store *st = NULL;
        struct dbt_stmt *set = NULL;
        CHECK_OK(dbt_pki_key_generate(DBT_PKI_KEY_EC256, &k));
        struct dbt_pki_cert_spec cs = {.profile = DBT_PKI_PROFILE_CA,
                                       .cn = "someone else",
                                       .validity_secs = 86400 * 365,
                                       .digest = DBT_PKI_SHA256,
                                       .key = k};
        CHECK_OK(dbt_pki_cert_issue(&cs, &ca));
        struct dbt_pki_crl_spec crs = {.issuer = ca,
                                       .issuer_key = k,
                                       .number = 1,
                                       .digest = DBT_PKI_SHA256,
                                       .now = (int64_t)time(NULL) - 20 * 86400};
        CHECK_OK(dbt_pki_crl_build(&crs, &old));
        CHECK_OK(dbt_pki_crl_to_pem(old, &old_pem));
        CHECK_OK(dbt_store_open(path_in(d, "dbtls.db"), DBT_STORE_RW, &st));
        CHECK_OK(dbt_store_stmt(st, DBT_SQL_INSTANCE_SET_CRL, &set));
        dbt_stmt_bind_int(set, 1, 1);
        dbt_stmt_bind_text(set, 2, old_pem);
        dbt_stmt_bind_int(set, 3, 1);
        CHECK_OK(dbt_stmt_exec(set));
        dbt_store_close(st);
        free(old_pem);
        dbt_pki_crl_free(old);
        dbt_pki_cert_free(ca);
        dbt_pki_key_free(k);
    }
    struct dbt_rt_config *rt = NULL;
    CHECK_OK(dbt_ctl_runtime_load(c, NULL, &rt));
    CHECK(rt && rt->n_instances == N);
    CHECK(rt && streq_opt(rt->instances[N - 1 - 5].crl_pem, stored05));
    CHECK(rt && rt->instances[0].crl_last_update >= (int64_t)time(NULL) - 60);
    free(stored05);
    for (size_t i = 0; rt && i < rt->n_instances; i++) {
        const struct dbt_rt_instance *ri = &rt->instances[i];
        char name[16];
        snprintf(name, sizeof name, "f%02d", N - 1 - (int)i);
        CHECK(streq_opt(ri->name, name));
        struct dbt_pki_certs chain = {0};
        struct dbt_pki_key *k = NULL;
        struct dbt_pki_crl *crl = NULL;
        CHECK_OK(dbt_pki_certs_from_pem(ri->cert_chain_pem, &chain));
        CHECK_OK(dbt_pki_key_from_pem(ri->key_pem, &k));
        CHECK(chain.n == 2 && k != NULL && dbt_ok(dbt_pki_cert_key_match(chain.v[0], k)));
        CHECK_OK(dbt_pki_crl_from_pem(ri->crl_pem, &crl));
        struct dbt_pki_crl_info ci = {0};
        char issuer[64];
        snprintf(issuer, sizeof issuer, "CN=dbtls client CA %s", name);
        CHECK(crl != NULL && dbt_ok(dbt_pki_crl_info(crl, &ci)) && strstr(ci.issuer, issuer));
        CHECK(strstr(ri->key_pem, "-----BEGIN PRIVATE KEY-----") == ri->key_pem);
        CHECK(ri->crl_next_update > time(NULL) + 29LL * 86400);
        dbt_pki_crl_free(crl);
        dbt_pki_key_free(k);
        dbt_pki_certs_free(&chain);
    }
    dbt_rt_config_free(rt);
    rt = NULL;
    dbt_ctl_close(c);
    c = open_with_wrong_key(d);
    CHECK_ERR(dbt_ctl_runtime_load(c, NULL, &rt), DBT_E_CRYPTO);
    const char *want = "instance \"f11\": cannot decrypt a stored private key (wrong master "
                       "key?): sealed data does not authenticate";
    CHECK(strncmp(dbt_errmsg(), want, strlen(want)) == 0);
    CHECK(rt == NULL);
    dbt_ctl_close(c);
}

/* A self-signed CA of validity secs from now + offset, as PEMs (free both). */
static void own_ca(int64_t offset, int64_t secs, char **cert_pem, char **key_pem)
{
    struct dbt_pki_key *k = NULL;
    struct dbt_pki_cert *c = NULL;
    CHECK_OK(dbt_pki_key_generate(DBT_PKI_KEY_EC256, &k));
    struct dbt_pki_cert_spec cs = {.profile = DBT_PKI_PROFILE_CA,
                                   .cn = "own CA",
                                   .validity_secs = secs,
                                   .pathlen = -1,
                                   .digest = DBT_PKI_SHA256,
                                   .key = k,
                                   .now = (int64_t)time(NULL) + offset};
    CHECK_OK(dbt_pki_cert_issue(&cs, &c));
    CHECK_OK(dbt_pki_cert_to_pem(c, cert_pem));
    CHECK_OK(dbt_pki_key_to_pem(k, key_pem));
    dbt_pki_cert_free(c);
    dbt_pki_key_free(k);
}

/* Imported CAs: the validity window, issuing in every region in shared mode (the slot names the
   CA's one row), patching an instance onto and off it, and what delete refuses. */
static void test_imported_ca(void)
{
    char *cert = NULL, *key = NULL;
    own_ca(-400 * 86400LL, 365 * 86400LL, &cert, &key); /* expired a month ago */
    CHECK_ERR(dbt_ctl_cas_import(ctl, "own-old", cert, NULL, key), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "expires in less than 30 days (it has expired)") != NULL);
    free(cert);
    dbt_pki_wipe_free(key);
    own_ca(0, 20 * 86400LL, &cert, &key); /* ends in 20 days */
    CHECK_ERR(dbt_ctl_cas_import(ctl, "own-short", cert, NULL, key), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "expires in less than 30 days") != NULL);
    free(cert);
    dbt_pki_wipe_free(key);
    own_ca(3600, 365 * 86400LL, &cert, &key); /* from an hour on */
    CHECK_ERR(dbt_ctl_cas_import(ctl, "own-later", cert, NULL, key), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "is not valid yet") != NULL);
    free(cert);
    dbt_pki_wipe_free(key);

    own_ca(0, 5 * 365 * 86400LL, &cert, &key);
    CHECK_OK(dbt_ctl_cas_import(ctl, "own-ca", cert, NULL, key));
    struct dbt_ctl_instance_spec s = pg_spec("127.0.0.1:16300", "imp.example.com");
    s.ca_id = "own-ca";
    s.region = "eu-imp-1";
    struct dbt_ctl_instance inst = {0};
    CHECK_OK(dbt_ctl_instance_create(ctl, "imp", &s, NULL, &inst));
    CHECK(streq_opt(inst.server_cert.issuer, "CN=own CA,O=dbtls") ||
          streq_opt(inst.server_cert.issuer, "CN=own CA"));
    dbt_ctl_instance_cleanup(&inst);
    /* no intermediate was made for the region: the imported CA issues itself */
    struct dbt_ctl_ca_list l = {0};
    CHECK_OK(dbt_ctl_cas_list(ctl, &l));
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].id, "own-ca") == 0) {
            CHECK(l.items[i].n_regions == 0 && streq_opt(l.items[i].type, "imported CA"));
        }
    }
    dbt_ctl_ca_list_cleanup(&l);
    /* its expiry gauge says imported-ca, not root-ca (dbtls cannot renew it) */
    struct dbt_ctl_expiry_list el = {0};
    CHECK_OK(dbt_ctl_expiry_list(ctl, &el));
    int imported = 0;
    for (size_t i = 0; i < el.n; i++) {
        if (strcmp(el.items[i].name, "own-ca") == 0) {
            imported += strcmp(el.items[i].kind, "imported-ca") == 0 ? 1 : 100;
        }
    }
    CHECK(imported == 1);
    dbt_ctl_expiry_list_cleanup(&el);
    /* the runtime chain: leaf then the CA */
    struct dbt_rt_config *rt = NULL;
    CHECK_OK(dbt_ctl_runtime_load(ctl, NULL, &rt));
    for (size_t i = 0; rt && i < rt->n_instances; i++) {
        if (strcmp(rt->instances[i].name, "imp") == 0) {
            struct dbt_pki_certs chain = {0};
            CHECK_OK(dbt_pki_certs_from_pem(rt->instances[i].cert_chain_pem, &chain));
            CHECK(chain.n == 2 && strstr(rt->instances[i].cert_chain_pem, cert + 28) != NULL);
            dbt_pki_certs_free(&chain);
        }
    }
    dbt_rt_config_free(rt);
    CHECK_OK(dbt_ctl_cas_set_default(ctl, "own-ca"));
    CHECK_REFUSED(dbt_ctl_cas_delete(ctl, "own-ca"), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "is the default for new instances") != NULL);
    CHECK_OK(dbt_ctl_cas_set_default(ctl, "dbtls-ca-ecc384-g1"));
    CHECK_REFUSED(dbt_ctl_cas_delete(ctl, "own-ca"), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "still issues certificates of instances") != NULL);
    /* moved to a dbtls CA, then rid of the rows that still name the imported one */
    struct dbt_ctl_instance_spec p = {.ca_id = "dbtls-ca-ecc384-g1"};
    CHECK_OK(dbt_ctl_instance_patch(ctl, "imp", &p, NULL, NULL));
    CHECK_OK(dbt_ctl_instance_delete(ctl, "imp"));
    CHECK_OK(dbt_ctl_cas_delete(ctl, "own-ca"));
    CHECK_REFUSED(dbt_ctl_cas_delete(ctl, "own-ca"), DBT_E_NOT_FOUND);
    free(cert);
    dbt_pki_wipe_free(key);
}

/* An init killed inside its transaction leaves no store; the next init succeeds and cleans up. */
static void test_init_interrupted(void)
{
    char d[400];
    snprintf(d, sizeof d, "%s/init-crash", root_dir);
    struct dbt_ctl_opts o = {.state_dir = d};
    pid_t pid = fork();
    if (pid == 0) {
        setenv("DBTLS_FAULT", "init-mid", 1);
        _exit(dbt_ok(dbt_ctl_init(&o)) ? 0 : 3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(access(path_in(d, "dbtls.db"), F_OK) != 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c init- >/dev/null", d);
    CHECK(system(cmd) == 0); /* the crashed init's temporary store is there... */
    struct dbt_ctl *c = NULL;
    CHECK_ERR(dbt_ctl_open(&o, &c), DBT_E_NOT_FOUND);
    CHECK_OK(dbt_ctl_init(&o));
    CHECK_OK(dbt_ctl_open(&o, &c));
    dbt_ctl_close(c);
    CHECK(system(cmd) != 0); /* ...and the next init removed it */
}

static void test_corrupt_store(void)
{
    char d[400];
    snprintf(d, sizeof d, "%s/corrupt", root_dir);
    mkdir(d, 0700);
    FILE *f = fopen(path_in(d, "master.key"), "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite("0123456789abcdef0123456789abcdef", 1, 32, f);
        fclose(f);
    }
    chmod(path_in(d, "master.key"), 0600);
    f = fopen(path_in(d, "dbtls.db"), "wb");
    if (f) {
        for (int i = 0; i < 200; i++) {
            fputs("this is not a database at all\n", f);
        }
        fclose(f);
    }
    struct dbt_ctl_opts o = {.state_dir = d};
    struct dbt_ctl *c = NULL;
    CHECK_ERR(dbt_ctl_open(&o, &c), DBT_E_CORRUPT);
    CHECK(strstr(dbt_errmsg(), "dbtls.db") != NULL);
    /* Short master key file. */
    char d2[400];
    snprintf(d2, sizeof d2, "%s/shortkey", root_dir);
    struct dbt_ctl_opts o2 = {.state_dir = d2};
    CHECK_OK(dbt_ctl_init(&o2));
    f = fopen(path_in(d2, "master.key"), "wb");
    if (f) {
        fputs("short", f);
        fclose(f);
    }
    CHECK_ERR(dbt_ctl_open(&o2, &c), DBT_E_CORRUPT);
    CHECK(strstr(dbt_errmsg(), "exactly 32 bytes") != NULL);
}

static void test_cas_and_engines(void)
{
    struct dbt_ctl_ca_list l = {0};
    CHECK_OK(dbt_ctl_cas_list(ctl, &l));
    CHECK(l.n == 3);
    int defaults = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct dbt_ctl_ca_info *c = &l.items[i];
        CHECK(strcmp(c->type, "CA") == 0);
        CHECK(c->n_regions == 1 && strcmp(c->regions[0], DBT_CTL_DEFAULT_REGION) == 0);
        CHECK(strlen(c->sha1_fingerprint) == 40);
        /* Roots live 40 years. */
        CHECK(c->valid_till - c->valid_from > 39LL * 365 * 86400);
        if (c->is_default) {
            defaults++;
            CHECK(strcmp(c->id, "dbtls-ca-ecc384-g1") == 0);
        }
        if (strcmp(c->id, "dbtls-ca-rsa4096-g1") == 0) {
            CHECK(strcmp(c->key_algorithm, "RSA-4096") == 0);
            CHECK(strcmp(c->signature_algorithm, "sha384WithRSAEncryption") == 0);
        }
        if (strcmp(c->id, "dbtls-ca-rsa2048-g1") == 0) {
            CHECK(strcmp(c->signature_algorithm, "sha256WithRSAEncryption") == 0);
        }
        if (strcmp(c->id, "dbtls-ca-ecc384-g1") == 0) {
            CHECK(strcmp(c->key_algorithm, "EC P-384") == 0);
            CHECK(strcmp(c->signature_algorithm, "ecdsa-with-SHA384") == 0);
        }
    }
    CHECK(defaults == 1);
    dbt_ctl_ca_list_cleanup(&l);

    CHECK_REFUSED(dbt_ctl_cas_set_default(ctl, "dbtls-ca-nope"), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "dbtls-ca-rsa2048-g1") != NULL);
    CHECK_OK(dbt_ctl_cas_set_default(ctl, "dbtls-ca-rsa2048-g1"));
    CHECK_OK(dbt_ctl_cas_list(ctl, &l));
    for (size_t i = 0; i < l.n; i++) {
        CHECK(l.items[i].is_default == (strcmp(l.items[i].id, "dbtls-ca-rsa2048-g1") == 0));
    }
    dbt_ctl_ca_list_cleanup(&l);

    size_t n = 0;
    const struct dbt_engine_info *e = dbt_ctl_engines(&n);
    CHECK(n == 8);
    CHECK(e != NULL);
    const struct dbt_engine_info *pg13 = dbt_ctl_engine_find("postgres", "13");
    const struct dbt_engine_info *pg15 = dbt_ctl_engine_find("postgres", "15");
    CHECK(pg13 && strcmp(pg13->hba_reject_suffix, "SSL off") == 0);
    CHECK(pg15 && strcmp(pg15->hba_reject_suffix, "no encryption") == 0);
    CHECK(dbt_ctl_engine_find("postgres", NULL) != NULL);
    CHECK(dbt_ctl_engine_find("postgres", "12") == NULL);
    CHECK(dbt_ctl_engine_find("oracle", NULL) == NULL);
    const struct dbt_engine_info *my = dbt_ctl_engine_find("mysql", "8.0");
    CHECK(my && my->insecure_transport_errno == 3159 && !my->rotation_requires_restart);
    CHECK(my && strstr(my->insecure_transport_error, "--require_secure_transport=ON") != NULL);
    CHECK(dbt_ctl_engine_find("mariadb", NULL) != NULL);

    enum dbt_ssl_mode m;
    CHECK_OK(dbt_ctl_ssl_mode_parse("encrypted_only", &m));
    CHECK(m == DBT_SSL_MODE_ENCRYPTED_ONLY);
    CHECK_ERR(dbt_ctl_ssl_mode_parse("REQUIRED", &m), DBT_E_INVALID);
    CHECK(strcmp(dbt_ctl_ssl_mode_name(DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED),
                 "TRUSTED_CLIENT_CERTIFICATE_REQUIRED") == 0);
}

static void test_instance_validation(void)
{
    struct dbt_ctl_instance_spec s = pg_spec("127.0.0.1:15432", "db1.example.com,10.0.0.5");
    struct dbt_ctl_instance_spec b;

    b = s;
    b.engine = "oracle";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "unknown engine \"oracle\"") != NULL);
    b = s;
    b.engine_version = "9.6";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    const char *bad_listen[] = {"127.0.0.1", "127.0.0.1:0",         "127.0.0.1:70000",
                                "::1:5432",  "db.example.com:5432", "[::1]5432",
                                ":5432"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad_listen); i++) {
        b = s;
        b.listen = bad_listen[i];
        CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
        CHECK(strstr(dbt_errmsg(), "bad listen address") != NULL);
    }
    const char *bad_backend[] = {"127.0.0.1", "relative/socket", "host:99999", "a b:5432"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad_backend); i++) {
        b = s;
        b.backend = bad_backend[i];
        CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
        CHECK(strstr(dbt_errmsg(), "bad backend address") != NULL);
    }
    const char *bad_endpoints[] = {"", "db_1.example.com", "db.example.com,,x.example.com",
                                   "-bad.example.com", "a.example.com,A.example.com"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad_endpoints); i++) {
        b = s;
        b.endpoints = bad_endpoints[i];
        CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    }
    b = s;
    b.ca_id = "dbtls-ca-rsa1024-g1";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "unknown CA id") != NULL);
    b = s;
    b.tls_min = "TLSv1.3";
    b.tls_max = "TLSv1.2";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "above the maximum") != NULL);
    b = s;
    b.tls_min = "SSLv3";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    b = s;
    b.engine = "mysql";
    b.engine_version = "5.7";
    b.tls_max = "TLSv1.3";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "does not support TLSv1.3") != NULL);
    b = s;
    b.ssl_mode = "REQUIRE";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "unknown ssl mode") != NULL);
    b = s;
    b.ca_mode = "private";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    b = s;
    b.ciphers = "HIGH;rm -rf";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    b = s;
    b.max_client_certs = 5000;
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    b = s;
    b.region = "eu west";
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);
    const char *bad_names[] = {
        "",    "1db", "db_1",
        "db-", "a/b", "a234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < DBT_ARRAY_LEN(bad_names); i++) {
        CHECK_REFUSED(dbt_ctl_instance_create(ctl, bad_names[i], &s, NULL, NULL), DBT_E_INVALID);
    }
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", NULL, NULL, NULL), DBT_E_INVALID);
    b = s;
    b.listen = NULL;
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "x", &b, NULL, NULL), DBT_E_INVALID);

    struct dbt_ctl_instance_list l = {0};
    CHECK_OK(dbt_ctl_instance_list(ctl, &l));
    CHECK(l.n == 0);
    dbt_ctl_instance_list_cleanup(&l);
}

static void test_shared_instance(void)
{
    struct dbt_ctl_instance_spec s = pg_spec("127.0.0.1:15432", "db1.example.com,10.0.0.5");
    s.ssl_mode = "ENCRYPTED_ONLY";
    s.hba_text = "hostssl all all 0.0.0.0/0 backend\n";
    struct dbt_ctl_instance inst = {0};
    struct snap before = snap();
    CHECK_OK(dbt_ctl_instance_create(ctl, "db1", &s, NULL, &inst));
    CHECK(snap().counter == before.counter + 1);
    CHECK(streq_opt(inst.engine_version, "16"));
    CHECK(streq_opt(inst.ca_mode, "shared"));
    /* The default was set to rsa2048 by test_cas_and_engines. */
    CHECK(streq_opt(inst.ca_id, "dbtls-ca-rsa2048-g1"));
    CHECK(streq_opt(inst.region, DBT_CTL_DEFAULT_REGION));
    CHECK(inst.ssl_mode == DBT_SSL_MODE_ENCRYPTED_ONLY);
    CHECK(streq_opt(inst.tls_min, "TLSv1.2") && streq_opt(inst.tls_max, "TLSv1.3"));
    CHECK(streq_opt(inst.ciphers, DBT_CTL_DEFAULT_CIPHERS));
    CHECK(inst.max_client_certs == 10 && inst.n_client_certs == 0);
    CHECK(inst.n_endpoints == 2 && streq_opt(inst.endpoints[1], "10.0.0.5"));
    CHECK(streq_opt(inst.server_cert.common_name, "db1.example.com"));
    CHECK(streq_opt(inst.server_cert.key_algorithm, "EC P-256"));
    CHECK(streq_opt(inst.server_cert.slot, "active"));
    /* 1 year (+ the backdating for clock skew). */
    int64_t life = inst.server_cert.expiration_time - inst.server_cert.not_before;
    CHECK(life >= 365LL * 86400 && life <= 365LL * 86400 + 600);
    CHECK(streq_opt(inst.server_ca_cert.common_name, "dbtls-ca-rsa2048-g1 default"));
    CHECK(streq_opt(inst.hba_text, "hostssl all all 0.0.0.0/0 backend\n"));

    /* Chain verifies against the instance download, for both SAN kinds. */
    char *dl = NULL;
    CHECK_OK(dbt_ctl_server_ca_download(ctl, "db1", &dl));
    CHECK_OK(
        verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "db1.example.com", NULL));
    CHECK_OK(verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "10.0.0.5", NULL));
    CHECK_ERR(
        verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "other.example.com", NULL),
        DBT_E_INVALID);
    /* ... and against the global bundle. */
    uint8_t *bundle = NULL;
    size_t blen = 0;
    CHECK_OK(dbt_ctl_bundle(ctl, NULL, NULL, NULL, DBT_CTL_BUNDLE_PEM, &bundle, &blen));
    CHECK_OK(verify_with(inst.server_cert.cert, (char *)bundle, DBT_PKI_PURPOSE_SERVER,
                         "db1.example.com", NULL));
    free(bundle);
    /* Not against another CA's bundle. */
    CHECK_OK(
        dbt_ctl_bundle(ctl, "dbtls-ca-ecc384-g1", NULL, NULL, DBT_CTL_BUNDLE_PEM, &bundle, &blen));
    CHECK_ERR(
        verify_with(inst.server_cert.cert, (char *)bundle, DBT_PKI_PURPOSE_SERVER, NULL, NULL),
        DBT_E_INVALID);
    free(bundle);
    free(dl);
    dbt_ctl_instance_cleanup(&inst);

    /* Duplicates. */
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "db1", &s, NULL, NULL), DBT_E_EXISTS);
    CHECK(strstr(dbt_errmsg(), "already exists") != NULL);
    /* a listen address is shared only by name: not with an endpoint db1 already has */
    struct dbt_ctl_instance_spec s2 = pg_spec("127.0.0.1:15432", "DB1.example.com");
    CHECK_REFUSED(dbt_ctl_instance_create(ctl, "db2", &s2, NULL, NULL), DBT_E_EXISTS);
    CHECK(strstr(dbt_errmsg(), "endpoint DB1.example.com is already an endpoint of instance "
                               "\"db1\" on listen address 127.0.0.1:15432") != NULL);

    /* Wrong slot kind for the mode. */
    CHECK_REFUSED(dbt_ctl_slots_create(ctl, "db1", DBT_CTL_SLOT_SERVER_CA, NULL, NULL),
                  DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "server-certs") != NULL);
    CHECK_REFUSED(dbt_ctl_slots_rotate(ctl, "nope", DBT_CTL_SLOT_SERVER_CERT), DBT_E_NOT_FOUND);
    CHECK(strstr(dbt_errmsg(), "instance \"nope\" does not exist") != NULL);

    /* Slot semantics. */
    CHECK_REFUSED(dbt_ctl_slots_rotate(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "no upcoming server certificate to rotate to; create one first") !=
          NULL);
    CHECK_REFUSED(dbt_ctl_slots_rollback(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "no previous server certificate to roll back to") != NULL);
    char *a0 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    struct dbt_ctl_cert up = {0};
    CHECK_OK(dbt_ctl_slots_create(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT, NULL, &up));
    CHECK(streq_opt(up.slot, "upcoming"));
    char *u1 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming");
    CHECK(streq_opt(u1, up.sha1_fingerprint));
    dbt_ctl_cert_cleanup(&up);
    /* Creating again replaces the unused upcoming. */
    CHECK_OK(dbt_ctl_slots_create(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT, NULL, NULL));
    char *u2 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming");
    CHECK(u2 && u1 && strcmp(u1, u2) != 0);
    CHECK(n_slots("db1") == 2);
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT));
    char *a1 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    char *p1 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "previous");
    CHECK(streq_opt(a1, u2) && streq_opt(p1, a0));
    CHECK(slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming") == NULL);
    CHECK_OK(dbt_ctl_slots_rollback(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT));
    char *a2 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    char *u3 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming");
    CHECK(streq_opt(a2, a0) && streq_opt(u3, u2));
    CHECK(slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "previous") == NULL);
    /* Rotate again: back to the new one, previous = a0. */
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT));
    CHECK(n_slots("db1") == 2);

    /* server-ca-certs list in shared mode: the shared root, per slot. */
    struct dbt_ctl_cert_list cl = {0};
    CHECK_OK(dbt_ctl_slots_list(ctl, "db1", DBT_CTL_SLOT_SERVER_CA, &cl));
    CHECK(cl.n == 2 && streq_opt(cl.items[0].slot, "active"));
    CHECK(cl.n == 2 && streq_opt(cl.items[0].common_name, "dbtls-ca-rsa2048-g1 root"));
    dbt_ctl_cert_list_cleanup(&cl);

    free(a0);
    free(a1);
    free(a2);
    free(p1);
    free(u1);
    free(u2);
    free(u3);
}

static void test_patch(void)
{
    struct dbt_ctl_instance inst = {0};
    char *before_active = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    struct dbt_ctl_instance_spec p = {.ca_id = "dbtls-ca-ecc384-g1"};
    CHECK_OK(dbt_ctl_instance_patch(ctl, "db1", &p, NULL, &inst));
    CHECK(streq_opt(inst.ca_id, "dbtls-ca-ecc384-g1"));
    CHECK(streq_opt(inst.server_ca_cert.common_name, "dbtls-ca-ecc384-g1 default"));
    char *prev = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "previous");
    CHECK(streq_opt(prev, before_active));
    CHECK(slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming") == NULL);
    /* Clients holding both CAs (download) verify the new certificate. */
    char *dl = NULL;
    CHECK_OK(dbt_ctl_server_ca_download(ctl, "db1", &dl));
    CHECK_OK(
        verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "db1.example.com", NULL));
    CHECK(dl && strstr(dl, "BEGIN CERTIFICATE") != NULL);
    free(dl);
    dbt_ctl_instance_cleanup(&inst);
    /* Rollback returns to the certificate under the old CA. */
    CHECK_OK(dbt_ctl_slots_rollback(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT));
    char *act = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    CHECK(streq_opt(act, before_active));
    free(act);
    free(prev);
    free(before_active);

    /* New endpoints: the served certificates get the new SAN. */
    struct dbt_ctl_instance_spec e = {.endpoints = "db1.internal,db1.example.com"};
    CHECK_OK(dbt_ctl_instance_patch(ctl, "db1", &e, NULL, &inst));
    CHECK(streq_opt(inst.server_cert.common_name, "db1.internal"));
    CHECK(inst.n_endpoints == 2);
    CHECK_OK(dbt_ctl_server_ca_download(ctl, "db1", &dl));
    CHECK_OK(verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "db1.internal", NULL));
    free(dl);
    dbt_ctl_instance_cleanup(&inst);

    /* Plain attributes; "" clears an optional text. */
    struct dbt_ctl_instance_spec a = {.ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
                                      .tls_min = "TLSv1.3",
                                      .hba_text = "",
                                      .max_client_certs = 2};
    CHECK_OK(dbt_ctl_instance_patch(ctl, "db1", &a, NULL, &inst));
    CHECK(inst.ssl_mode == DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED);
    CHECK(inst.hba_text == NULL && inst.max_client_certs == 2);
    CHECK(streq_opt(inst.tls_min, "TLSv1.3"));
    dbt_ctl_instance_cleanup(&inst);

    /* Refusals change nothing. */
    struct dbt_ctl_instance_spec bad = {.engine = "mysql"};
    CHECK_REFUSED(dbt_ctl_instance_patch(ctl, "db1", &bad, NULL, NULL), DBT_E_INVALID);
    bad = (struct dbt_ctl_instance_spec){.ca_mode = "per-instance"};
    CHECK_REFUSED(dbt_ctl_instance_patch(ctl, "db1", &bad, NULL, NULL), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "only per-instance -> shared") != NULL);
    bad = (struct dbt_ctl_instance_spec){.tls_max = "TLSv1.2"}; /* below min TLSv1.3 */
    CHECK_REFUSED(dbt_ctl_instance_patch(ctl, "db1", &bad, NULL, NULL), DBT_E_INVALID);
    bad = (struct dbt_ctl_instance_spec){.endpoints = "bad_name"};
    CHECK_REFUSED(dbt_ctl_instance_patch(ctl, "db1", &bad, NULL, NULL), DBT_E_INVALID);
    bad = (struct dbt_ctl_instance_spec){.ca_id = "dbtls-ca-x"};
    CHECK_REFUSED(dbt_ctl_instance_patch(ctl, "db1", &bad, NULL, NULL), DBT_E_NOT_FOUND);
    bad = (struct dbt_ctl_instance_spec){.listen = "127.0.0.1:1"};
    CHECK_REFUSED(dbt_ctl_instance_patch(ctl, "nope", &bad, NULL, NULL), DBT_E_NOT_FOUND);
}

static void test_per_instance(void)
{
    struct dbt_ctl_instance_spec s = pg_spec("[::1]:15433", "db2.example.com");
    s.ca_mode = "per-instance";
    s.ca_id = "dbtls-ca-ecc384-g1";
    s.region = "eu-west-1";
    struct dbt_ctl_instance inst = {0};
    CHECK_OK(dbt_ctl_instance_create(ctl, "db2", &s, NULL, &inst));
    CHECK(streq_opt(inst.server_ca_cert.common_name, "dbtls server CA db2"));
    CHECK(inst.server_ca_cert.expiration_time - inst.server_ca_cert.not_before >=
          10LL * 365 * 86400);
    char *dl = NULL;
    CHECK_OK(dbt_ctl_server_ca_download(ctl, "db2", &dl));
    CHECK_OK(
        verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "db2.example.com", NULL));
    /* Not verifiable with the shared bundle. */
    uint8_t *bundle = NULL;
    size_t blen = 0;
    CHECK_OK(dbt_ctl_bundle(ctl, NULL, NULL, NULL, DBT_CTL_BUNDLE_PEM, &bundle, &blen));
    CHECK_ERR(
        verify_with(inst.server_cert.cert, (char *)bundle, DBT_PKI_PURPOSE_SERVER, NULL, NULL),
        DBT_E_INVALID);
    free(bundle);
    dbt_ctl_instance_cleanup(&inst);
    free(dl);

    /* A per-instance instance in a new region does not create shared intermediates... */
    CHECK_ERR(dbt_ctl_bundle(ctl, NULL, "eu-west-1", NULL, DBT_CTL_BUNDLE_PEM, &bundle, &blen),
              DBT_E_NOT_FOUND);

    CHECK_REFUSED(dbt_ctl_slots_create(ctl, "db2", DBT_CTL_SLOT_SERVER_CERT, NULL, NULL),
                  DBT_E_STATE);
    CHECK_REFUSED(dbt_ctl_slots_rotate(ctl, "db2", DBT_CTL_SLOT_SERVER_CA), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "no upcoming server CA to rotate to; create one first") != NULL);
    CHECK_REFUSED(dbt_ctl_slots_rollback(ctl, "db2", DBT_CTL_SLOT_SERVER_CA), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "no previous server CA to roll back to") != NULL);

    char *ca0 = slot_sha1("db2", DBT_CTL_SLOT_SERVER_CA, "active");
    struct dbt_ctl_cert up = {0};
    CHECK_OK(dbt_ctl_slots_create(ctl, "db2", DBT_CTL_SLOT_SERVER_CA, NULL, &up));
    /* Before rotating, download has both CAs, the active one first. */
    CHECK_OK(dbt_ctl_server_ca_download(ctl, "db2", &dl));
    struct dbt_pki_certs certs = {0};
    CHECK_OK(dbt_pki_certs_from_pem(dl, &certs));
    CHECK(certs.n == 2);
    struct dbt_pki_cert_info info = {0};
    if (certs.n == 2) {
        CHECK_OK(dbt_pki_cert_info(certs.v[0], &info));
        CHECK(streq_opt(info.sha1, ca0));
        dbt_pki_cert_info_cleanup(&info);
        CHECK_OK(dbt_pki_cert_info(certs.v[1], &info));
        CHECK(streq_opt(info.sha1, up.sha1_fingerprint));
        dbt_pki_cert_info_cleanup(&info);
    }
    dbt_pki_certs_free(&certs);
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "db2", DBT_CTL_SLOT_SERVER_CA));
    /* The client's pre-rotation download verifies the new server cert. */
    CHECK_OK(dbt_ctl_instance_describe(ctl, "db2", &inst));
    CHECK(streq_opt(inst.server_ca_cert.sha1_fingerprint, up.sha1_fingerprint));
    CHECK_OK(
        verify_with(inst.server_cert.cert, dl, DBT_PKI_PURPOSE_SERVER, "db2.example.com", NULL));
    dbt_ctl_instance_cleanup(&inst);
    free(dl);
    CHECK_OK(dbt_ctl_slots_rollback(ctl, "db2", DBT_CTL_SLOT_SERVER_CA));
    char *ca1 = slot_sha1("db2", DBT_CTL_SLOT_SERVER_CA, "active");
    CHECK(streq_opt(ca1, ca0));
    free(ca1);
    dbt_ctl_cert_cleanup(&up);

    /* Rollback refused once the previous has expired: make a short-lived active, rotate past
       it, and wait for it to expire. */
    struct dbt_ctl_validity shortv = {.ca_secs = 2, .leaf_secs = 2};
    CHECK_OK(dbt_ctl_slots_create(ctl, "db2", DBT_CTL_SLOT_SERVER_CA, &shortv, NULL));
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "db2", DBT_CTL_SLOT_SERVER_CA));
    CHECK_OK(dbt_ctl_slots_create(ctl, "db2", DBT_CTL_SLOT_SERVER_CA, NULL, NULL));
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "db2", DBT_CTL_SLOT_SERVER_CA));
    sleep(3);
    CHECK_REFUSED(dbt_ctl_slots_rollback(ctl, "db2", DBT_CTL_SLOT_SERVER_CA), DBT_E_STATE);
    CHECK(strstr(dbt_errmsg(), "expired at") != NULL);
    CHECK(strstr(dbt_errmsg(), "rollback is no longer possible") != NULL);

    /* per-instance -> shared: allowed, old active kept as previous. */
    char *old = slot_sha1("db2", DBT_CTL_SLOT_SERVER_CERT, "active");
    struct dbt_ctl_instance_spec p = {.ca_mode = "shared"};
    CHECK_OK(dbt_ctl_instance_patch(ctl, "db2", &p, NULL, &inst));
    CHECK(streq_opt(inst.ca_mode, "shared"));
    CHECK(streq_opt(inst.server_ca_cert.common_name, "dbtls-ca-ecc384-g1 eu-west-1"));
    char *prev = slot_sha1("db2", DBT_CTL_SLOT_SERVER_CERT, "previous");
    CHECK(streq_opt(prev, old));
    /* The region's intermediates appear on first use. */
    CHECK_OK(dbt_ctl_bundle(ctl, NULL, "eu-west-1", NULL, DBT_CTL_BUNDLE_PEM, &bundle, &blen));
    CHECK_OK(verify_with(inst.server_cert.cert, (char *)bundle, DBT_PKI_PURPOSE_SERVER,
                         "db2.example.com", NULL));
    free(bundle);
    dbt_ctl_instance_cleanup(&inst);
    free(prev);
    free(old);
    free(ca0);
    struct dbt_ctl_ca_list cl = {0};
    CHECK_OK(dbt_ctl_cas_list(ctl, &cl));
    for (size_t i = 0; i < cl.n; i++) {
        if (strcmp(cl.items[i].id, "dbtls-ca-ecc384-g1") == 0) {
            CHECK(cl.items[i].n_regions == 2);
        }
    }
    dbt_ctl_ca_list_cleanup(&cl);
}

static void test_client_certs(void)
{
    /* db1 has max_client_certs = 2 (test_patch). */
    struct dbt_ctl_client_cert_new a = {0}, b = {0};
    struct dbt_ctl_client_cert_opts o = {.pkcs12 = true};
    CHECK_OK(dbt_ctl_client_cert_create(ctl, "db1", "app user", &o, &a));
    CHECK(streq_opt(a.cert.common_name, "app user") && streq_opt(a.cert.name, "app user"));
    CHECK(a.key_pem && strstr(a.key_pem, "BEGIN PRIVATE KEY") != NULL);
    CHECK(a.p12 != NULL && a.p12_len > 100);
    CHECK(a.server_ca_pem && strstr(a.server_ca_pem, "BEGIN CERTIFICATE") != NULL);
    int64_t life = a.cert.expiration_time - a.cert.not_before;
    CHECK(life >= 10LL * 365 * 86400);
    if (a.p12) {
        struct dbt_pki_key *k = NULL;
        struct dbt_pki_cert *c = NULL;
        CHECK_OK(dbt_pki_p12_parse(a.p12, a.p12_len, "", &c, &k, NULL));
        CHECK_OK(dbt_pki_cert_key_match(c, k));
        dbt_pki_key_free(k);
        dbt_pki_cert_free(c);
    }
    char *ca = NULL, *crl = NULL;
    CHECK_OK(dbt_ctl_client_ca(ctl, "db1", &ca, &crl));
    CHECK_OK(verify_with(a.cert.cert, ca, DBT_PKI_PURPOSE_CLIENT, NULL, crl));
    free(crl);
    crl = NULL;

    CHECK_REFUSED(dbt_ctl_client_cert_create(ctl, "db1", "app user", NULL, NULL), DBT_E_EXISTS);
    CHECK_REFUSED(dbt_ctl_client_cert_create(ctl, "db1", "bad/name", NULL, NULL), DBT_E_INVALID);
    CHECK_REFUSED(dbt_ctl_client_cert_create(ctl, "nope", "x", NULL, NULL), DBT_E_NOT_FOUND);
    CHECK_OK(dbt_ctl_client_cert_create(ctl, "db1", "second", NULL, &b));
    CHECK(b.p12 == NULL);
    CHECK_REFUSED(dbt_ctl_client_cert_create(ctl, "db1", "third", NULL, NULL), DBT_E_LIMIT);
    CHECK(strstr(dbt_errmsg(), "already has 2 client certificates (the limit)") != NULL);

    struct dbt_ctl_cert_list l = {0};
    CHECK_OK(dbt_ctl_client_cert_list(ctl, "db1", &l));
    CHECK(l.n == 2 && streq_opt(l.items[0].name, "app user") &&
          streq_opt(l.items[1].name, "second"));
    dbt_ctl_cert_list_cleanup(&l);

    /* Describe by SHA-1 in upper case with colons. */
    char colons[64] = {0};
    for (size_t i = 0, j = 0; i < 40 && b.cert.sha1_fingerprint; i++) {
        colons[j++] = (char)(b.cert.sha1_fingerprint[i] >= 'a' ? b.cert.sha1_fingerprint[i] - 32
                                                               : b.cert.sha1_fingerprint[i]);
        if (i % 2 == 1 && i < 39) {
            colons[j++] = ':';
        }
    }
    struct dbt_ctl_cert d = {0};
    CHECK_OK(dbt_ctl_client_cert_describe(ctl, "db1", colons, &d));
    CHECK(streq_opt(d.name, "second"));
    CHECK(d.cert && strstr(d.cert, "PRIVATE") == NULL);
    dbt_ctl_cert_cleanup(&d);
    CHECK_ERR(dbt_ctl_client_cert_describe(ctl, "db1", "missing", &d), DBT_E_NOT_FOUND);

    /* Delete revokes: the CRL lists it, verification with the CRL fails, the slot is free. */
    CHECK_REFUSED(dbt_ctl_client_cert_delete(ctl, "db1", "missing"), DBT_E_NOT_FOUND);
    CHECK_OK(dbt_ctl_client_cert_delete(ctl, "db1", "app user"));
    CHECK_OK(dbt_ctl_client_ca(ctl, "db1", NULL, &crl));
    struct dbt_pki_crl *c = NULL;
    CHECK_OK(dbt_pki_crl_from_pem(crl, &c));
    CHECK(c && dbt_pki_crl_has_serial(c, a.cert.cert_serial_number));
    CHECK(c && !dbt_pki_crl_has_serial(c, b.cert.cert_serial_number));
    dbt_pki_crl_free(c);
    CHECK_ERR(verify_with(a.cert.cert, ca, DBT_PKI_PURPOSE_CLIENT, NULL, crl), DBT_E_INVALID);
    CHECK(strstr(dbt_errmsg(), "revoked") != NULL);
    CHECK_OK(verify_with(b.cert.cert, ca, DBT_PKI_PURPOSE_CLIENT, NULL, crl));
    free(crl);
    CHECK_OK(dbt_ctl_client_cert_create(ctl, "db1", "third", NULL, NULL));
    /* The name is free again too. */
    CHECK_REFUSED(dbt_ctl_client_cert_create(ctl, "db1", "app user", NULL, NULL), DBT_E_LIMIT);

    /* Runtime snapshot carries client CA and CRL; key matches the chain's leaf. */
    struct dbt_rt_config *rt = NULL;
    CHECK_OK(dbt_ctl_runtime_load(ctl, NULL, &rt));
    CHECK(rt && rt->n_instances == 2);
    uint64_t counter = 0;
    CHECK_OK(dbt_ctl_change_counter(ctl, &counter));
    CHECK(rt && rt->change_counter == counter);
    for (size_t i = 0; rt && i < rt->n_instances; i++) {
        struct dbt_rt_instance *ri = &rt->instances[i];
        struct dbt_pki_certs chain = {0};
        struct dbt_pki_key *k = NULL;
        CHECK_OK(dbt_pki_certs_from_pem(ri->cert_chain_pem, &chain));
        CHECK(chain.n == 2); /* both are in shared mode now: leaf + intermediate */
        CHECK_OK(dbt_pki_key_from_pem(ri->key_pem, &k));
        if (chain.n && k) {
            CHECK_OK(dbt_pki_cert_key_match(chain.v[0], k));
        }
        CHECK(ri->client_ca_pem && ri->crl_pem && ri->n_endpoints >= 1);
        /* A fresh CRL with the same revocations as the stored one. */
        CHECK(ri->crl_next_update > time(NULL) + 29LL * 86400);
        if (strcmp(ri->name, "db1") == 0) {
            struct dbt_pki_crl *rc = NULL;
            CHECK_OK(dbt_pki_crl_from_pem(ri->crl_pem, &rc));
            CHECK(rc && dbt_pki_crl_has_serial(rc, a.cert.cert_serial_number));
            CHECK(rc && !dbt_pki_crl_has_serial(rc, b.cert.cert_serial_number));
            dbt_pki_crl_free(rc);
        }
        if (strcmp(ri->name, "db1") == 0) {
            CHECK(streq_opt(ri->client_ca_pem, ca));
            CHECK(ri->ssl_mode == DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED);
        }
        dbt_pki_key_free(k);
        dbt_pki_certs_free(&chain);
    }

    /* A load given the snapshot in use copies what did not change: same material, same key and
       CRL text; a CRL past half its validity is signed again. */
    struct dbt_rt_config *rt2 = NULL, *rt3 = NULL;
    CHECK_OK(dbt_ctl_runtime_load(ctl, rt, &rt2));
    for (size_t i = 0; rt && rt2 && i < rt2->n_instances; i++) {
        CHECK(memcmp(rt->instances[i].material, rt2->instances[i].material, 32) == 0);
        CHECK(streq_opt(rt->instances[i].key_pem, rt2->instances[i].key_pem));
        CHECK(streq_opt(rt->instances[i].crl_pem, rt2->instances[i].crl_pem));
        CHECK(rt->instances[i].crl_last_update == rt2->instances[i].crl_last_update);
    }
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; rt2 && i < rt2->n_instances; i++) {
        rt2->instances[i].crl_last_update = now - 20 * 86400;
        rt2->instances[i].crl_next_update = now + 10 * 86400; /* half-life 5 days ago */
    }
    CHECK_OK(dbt_ctl_runtime_load(ctl, rt2, &rt3));
    for (size_t i = 0; rt3 && i < rt3->n_instances; i++) {
        CHECK(rt3->instances[i].crl_last_update >= now - 60);
        CHECK(rt3->instances[i].crl_next_update > now + 29LL * 86400);
    }
    dbt_rt_config_free(rt2);

    /* reset-ssl-config: new client CA, all client certs gone, one fresh server cert. */
    char *old_active = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    CHECK_OK(dbt_ctl_instance_reset_ssl(ctl, "db1", NULL));
    /* ... which the next load does not take from the old snapshot; the other instance it does */
    CHECK_OK(dbt_ctl_runtime_load(ctl, rt3, &rt2));
    for (size_t i = 0; rt2 && rt3 && i < rt2->n_instances; i++) {
        const struct dbt_rt_instance *was = &rt3->instances[i], *is = &rt2->instances[i];
        bool changed = strcmp(is->name, "db1") == 0;
        CHECK((memcmp(was->material, is->material, 32) != 0) == changed);
        CHECK(streq_opt(was->key_pem, is->key_pem) == !changed);
        CHECK(streq_opt(was->client_ca_pem, is->client_ca_pem) == !changed);
        CHECK(!changed || !streq_opt(was->crl_pem, is->crl_pem));
    }
    dbt_rt_config_free(rt);
    dbt_rt_config_free(rt2);
    dbt_rt_config_free(rt3);
    CHECK_OK(dbt_ctl_client_cert_list(ctl, "db1", &l));
    CHECK(l.n == 0);
    dbt_ctl_cert_list_cleanup(&l);
    CHECK(n_slots("db1") == 1);
    char *new_active = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    CHECK(new_active && old_active && strcmp(new_active, old_active) != 0);
    char *ca2 = NULL;
    CHECK_OK(dbt_ctl_client_ca(ctl, "db1", &ca2, &crl));
    CHECK(ca2 && ca && strcmp(ca, ca2) != 0);
    CHECK_ERR(verify_with(b.cert.cert, ca2, DBT_PKI_PURPOSE_CLIENT, NULL, crl), DBT_E_INVALID);
    free(ca2);
    free(crl);
    free(ca);
    free(old_active);
    free(new_active);
    dbt_ctl_client_cert_new_cleanup(&a);
    dbt_ctl_client_cert_new_cleanup(&b);
}

static void test_bundles_and_events(void)
{
    uint8_t *p = NULL;
    size_t n = 0;
    CHECK_OK(dbt_ctl_bundle(ctl, NULL, NULL, NULL, DBT_CTL_BUNDLE_PEM, &p, &n));
    struct dbt_pki_certs certs = {0};
    CHECK_OK(dbt_pki_certs_from_pem((char *)p, &certs));
    CHECK(certs.n == 3 + 3 + 1); /* 3 roots, default intermediates, ecc384 eu-west-1 */
    dbt_pki_certs_free(&certs);
    free(p);
    CHECK_OK(dbt_ctl_bundle(ctl, "dbtls-ca-rsa4096-g1", NULL, NULL, DBT_CTL_BUNDLE_P7B, &p, &n));
    CHECK_OK(dbt_pki_p7b_parse(p, n, &certs));
    CHECK(certs.n == 2);
    dbt_pki_certs_free(&certs);
    free(p);
    CHECK_OK(dbt_ctl_bundle(ctl, NULL, NULL, "db2", DBT_CTL_BUNDLE_P7B, &p, &n));
    free(p);
    CHECK_ERR(dbt_ctl_bundle(ctl, "dbtls-ca-zzz", NULL, NULL, DBT_CTL_BUNDLE_PEM, &p, &n),
              DBT_E_NOT_FOUND);
    CHECK_ERR(dbt_ctl_bundle(ctl, NULL, "mars-1", NULL, DBT_CTL_BUNDLE_PEM, &p, &n),
              DBT_E_NOT_FOUND);
    CHECK_ERR(dbt_ctl_bundle(ctl, NULL, NULL, "nope", DBT_CTL_BUNDLE_PEM, &p, &n), DBT_E_NOT_FOUND);

    struct dbt_ctl_event_list ev = {0};
    CHECK_OK(dbt_ctl_events_list(ctl, NULL, 0, &ev));
    bool saw[6] = {0};
    const char *want[6] = {"init",
                           "instance.create",
                           "server-cert.rotate",
                           "server-ca.rollback",
                           "client-cert.delete",
                           "instance.reset-ssl-config"};
    for (size_t i = 0; i < ev.n; i++) {
        for (int j = 0; j < 6; j++) {
            saw[j] = saw[j] || strcmp(ev.items[i].action, want[j]) == 0;
        }
        CHECK(streq_opt(ev.items[i].actor, "unit-test"));
        if (strcmp(ev.items[i].action, "server-cert.rotate") == 0) {
            CHECK(strncmp(ev.items[i].detail, "active=", 7) == 0 &&
                  strstr(ev.items[i].detail, " previous=") != NULL);
        }
        CHECK(i == 0 || ev.items[i].id > ev.items[i - 1].id);
    }
    for (int j = 0; j < 6; j++) {
        CHECK(saw[j]);
    }
    size_t all = ev.n;
    dbt_ctl_event_list_cleanup(&ev);
    CHECK_OK(dbt_ctl_events_list(ctl, "db2", 0, &ev));
    CHECK(ev.n > 0 && ev.n < all);
    for (size_t i = 0; i < ev.n; i++) {
        CHECK(strncmp(ev.items[i].object, "instance/db2", 12) == 0);
    }
    dbt_ctl_event_list_cleanup(&ev);
    CHECK_OK(dbt_ctl_events_list(ctl, NULL, 3, &ev));
    CHECK(ev.n == 3);
    dbt_ctl_event_list_cleanup(&ev);
    uint64_t c0 = 0, c1 = 0;
    CHECK_OK(dbt_ctl_change_counter(ctl, &c0));
    CHECK_OK(dbt_ctl_event_add(ctl, "cert.expiring", "instance/db2", "days=29"));
    CHECK_OK(dbt_ctl_change_counter(ctl, &c1));
    CHECK(c0 == c1);
    CHECK_ERR(dbt_ctl_event_add(ctl, "", "x", NULL), DBT_E_INVALID);
}

/* Runs op in a child process with DBTLS_FAULT=point; the child must die of SIGABRT. */
static void run_faulted(const char *point, int op)
{
    dbt_ctl_close(ctl);
    ctl = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("DBTLS_FAULT", point, 1);
        struct dbt_ctl *c = NULL;
        if (!dbt_ok(dbt_ctl_open(&opts, &c))) {
            _exit(2);
        }
        struct dbt_ctl_instance_spec s = pg_spec("127.0.0.1:15999", "db9.example.com");
        dbt_res r = DBT_OK;
        switch (op) {
        case 0:
            r = dbt_ctl_slots_rotate(c, "db1", DBT_CTL_SLOT_SERVER_CERT);
            break;
        case 1:
            r = dbt_ctl_instance_create(c, "db9", &s, NULL, NULL);
            break;
        case 2:
            r = dbt_ctl_client_cert_delete(c, "db3", "victim");
            break;
        default:
            r = dbt_ctl_slots_rollback(c, "db1", DBT_CTL_SLOT_SERVER_CERT);
            break;
        }
        _exit(dbt_ok(r) ? 0 : 3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK_OK(dbt_ctl_open(&opts, &ctl));
}

static void test_atomicity(void)
{
    /* Set up: db1 with an upcoming to rotate to; db3 with a client cert to delete. */
    CHECK_OK(dbt_ctl_slots_create(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT, NULL, NULL));
    struct dbt_ctl_instance_spec s3 = pg_spec("127.0.0.1:15434", "db3.example.com");
    CHECK_OK(dbt_ctl_instance_create(ctl, "db3", &s3, NULL, NULL));
    CHECK_OK(dbt_ctl_client_cert_create(ctl, "db3", "victim", NULL, NULL));
    char *act = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    char *up = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming");
    char *crl0 = NULL;
    CHECK_OK(dbt_ctl_client_ca(ctl, "db3", NULL, &crl0));
    struct snap before = snap();

    run_faulted("rotate-mid", 0);
    CHECK(same(before, snap()));
    char *act2 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    char *up2 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "upcoming");
    CHECK(streq_opt(act, act2) && streq_opt(up, up2));
    CHECK(slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "previous") == NULL);

    run_faulted("create-mid", 1);
    CHECK(same(before, snap()));
    struct dbt_ctl_instance inst = {0};
    CHECK_ERR(dbt_ctl_instance_describe(ctl, "db9", &inst), DBT_E_NOT_FOUND);

    run_faulted("client-delete-mid", 2);
    CHECK(same(before, snap()));
    struct dbt_ctl_cert c = {0};
    CHECK_OK(dbt_ctl_client_cert_describe(ctl, "db3", "victim", &c));
    dbt_ctl_cert_cleanup(&c);
    char *crl1 = NULL;
    CHECK_OK(dbt_ctl_client_ca(ctl, "db3", NULL, &crl1));
    CHECK(streq_opt(crl0, crl1));

    /* After the crashes, the same operations complete normally. */
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "db1", DBT_CTL_SLOT_SERVER_CERT));
    char *act3 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    CHECK(streq_opt(act3, up));
    run_faulted("rollback-mid", 3);
    char *act4 = slot_sha1("db1", DBT_CTL_SLOT_SERVER_CERT, "active");
    CHECK(streq_opt(act4, up));

    /* Delete removes everything of the instance. */
    CHECK_OK(dbt_ctl_instance_delete(ctl, "db3"));
    CHECK_ERR(dbt_ctl_instance_describe(ctl, "db3", &inst), DBT_E_NOT_FOUND);
    CHECK_REFUSED(dbt_ctl_instance_delete(ctl, "db3"), DBT_E_NOT_FOUND);
    struct dbt_rt_config *rt = NULL;
    CHECK_OK(dbt_ctl_instance_export(ctl, "db1", &rt));
    CHECK(rt && rt->n_instances == 1 && streq_opt(rt->instances[0].name, "db1"));
    dbt_rt_config_free(rt);
    CHECK_ERR(dbt_ctl_instance_export(ctl, "db3", &rt), DBT_E_NOT_FOUND);

    free(act);
    free(act2);
    free(act3);
    free(act4);
    free(up);
    free(up2);
    free(crl0);
    free(crl1);
}

/* Concurrent writers (several dbtls commands at once) serialize on the write lock: none fails. */
static void test_concurrent_writers(void)
{
    struct dbt_ctl_instance_spec s = pg_spec("127.0.0.1:15435", "db4.example.com");
    s.max_client_certs = 100;
    CHECK_OK(dbt_ctl_instance_create(ctl, "db4", &s, NULL, NULL));
    struct snap before = snap();
    pid_t pids[4];
    for (int k = 0; k < 4; k++) {
        pids[k] = fork();
        if (pids[k] == 0) {
            struct dbt_ctl *c = NULL;
            if (!dbt_ok(dbt_ctl_open(&opts, &c))) {
                _exit(2);
            }
            for (int i = 0; i < 5; i++) {
                char name[32];
                snprintf(name, sizeof name, "w%d-%d", k, i);
                if (!dbt_ok(dbt_ctl_client_cert_create(c, "db4", name, NULL, NULL))) {
                    fprintf(stderr, "writer %d: %s\n", k, dbt_errmsg());
                    _exit(3);
                }
            }
            dbt_ctl_close(c);
            _exit(0);
        }
    }
    for (int k = 0; k < 4; k++) {
        int st = 0;
        waitpid(pids[k], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    struct snap after = snap();
    CHECK(after.counter == before.counter + 20 && after.events == before.events + 20);
    struct dbt_ctl_cert_list l = {0};
    CHECK_OK(dbt_ctl_client_cert_list(ctl, "db4", &l));
    CHECK(l.n == 20);
    dbt_ctl_cert_list_cleanup(&l);
    CHECK_OK(dbt_ctl_instance_delete(ctl, "db4"));
}

static void test_read_only(void)
{
    struct dbt_ctl_opts ro = opts;
    ro.read_only = 1;
    struct dbt_ctl *c = NULL;
    CHECK_OK(dbt_ctl_open(&ro, &c));
    struct dbt_rt_config *rt = NULL;
    CHECK_OK(dbt_ctl_runtime_load(c, NULL, &rt));
    dbt_rt_config_free(rt);
    CHECK_ERR(dbt_ctl_cas_set_default(c, "dbtls-ca-ecc384-g1"), DBT_E_PERM);
    /* The daemon's poll sees every change committed by another handle. */
    uint64_t c0 = 0, c1 = 0, c2 = 0;
    CHECK_OK(dbt_ctl_change_counter(c, &c0));
    CHECK_OK(dbt_ctl_cas_set_default(ctl, "dbtls-ca-ecc384-g1"));
    CHECK_OK(dbt_ctl_change_counter(c, &c1));
    CHECK(c1 == c0 + 1);
    CHECK_OK(dbt_ctl_client_cert_create(ctl, "db1", "ro-poll", NULL, NULL));
    CHECK_OK(dbt_ctl_client_cert_delete(ctl, "db1", "ro-poll"));
    CHECK_OK(dbt_ctl_change_counter(c, &c2));
    CHECK(c2 == c1 + 2);
    CHECK_OK(dbt_ctl_event_add(c, "daemon.start", "daemon", "pid=1"));
    dbt_ctl_close(c);
}

/*
 * The write-lock probe: a hook that ctl runs just before it generates each private key. It tries
 * BEGIN IMMEDIATE on a second connection that never waits: that fails exactly when the operation
 * holds the write lock while generating keys (RSA-4096: seconds, during which every other
 * writer would wait). With change set, the first call also changes the store behind the
 * operation's back, from a second control handle, once.
 */
struct lock_probe {
    struct dbt_store *st;
    int calls;
    int blocked;
    void (*change)(void);
};

static void probe_write_lock(void *arg)
{
    struct lock_probe *p = arg;
    p->calls++;
    if (dbt_ok(dbt_store_begin(p->st, true))) {
        dbt_store_rollback(p->st);
    } else {
        p->blocked++;
        fprintf(stderr, "key generated under the write lock: %s\n", dbt_errmsg());
    }
    void (*change)(void) = p->change;
    p->change = NULL;
    if (change) {
        change();
    }
}

static struct lock_probe probe;

/* Runs expr with the probe armed; every key it generates must find the write lock free. */
#define CHECK_KEYS_UNLOCKED(expr)                                                                  \
    do {                                                                                           \
        probe.calls = probe.blocked = 0;                                                           \
        dbt_ctl_test_keygen_hook(probe_write_lock, &probe);                                        \
        CHECK_OK(expr);                                                                            \
        dbt_ctl_test_keygen_hook(NULL, NULL);                                                      \
        CHECK(probe.calls > 0);                                                                    \
        CHECK(probe.blocked == 0);                                                                 \
    } while (0)

static void change_ca_of_k4(void)
{
    struct dbt_ctl *c = NULL;
    struct dbt_ctl_instance_spec s = {.ca_id = "dbtls-ca-ecc384-g1"};
    CHECK_OK(dbt_ctl_open(&opts, &c));
    CHECK_OK(dbt_ctl_instance_patch(c, "k4", &s, NULL, NULL));
    dbt_ctl_close(c);
}

static void delete_k3(void)
{
    struct dbt_ctl *c = NULL;
    CHECK_OK(dbt_ctl_open(&opts, &c));
    CHECK_OK(dbt_ctl_instance_delete(c, "k3"));
    dbt_ctl_close(c);
}

static void test_keys_outside_write_lock(void)
{
    CHECK_OK(dbt_store_open(path_in(state_dir, "dbtls.db"), DBT_STORE_RW, &probe.st));
    if (!probe.st) {
        return;
    }
    dbt_store_set_busy_timeout(probe.st, 0);

    /* Per-instance: a new server CA (RSA, as the families that take seconds) and its leaf. */
    struct dbt_ctl_instance_spec s1 = pg_spec("127.0.0.1:15501", "k1.example.com");
    s1.ca_mode = "per-instance";
    s1.ca_id = "dbtls-ca-rsa2048-g1";
    CHECK_KEYS_UNLOCKED(dbt_ctl_instance_create(ctl, "k1", &s1, NULL, NULL));
    CHECK_KEYS_UNLOCKED(dbt_ctl_slots_create(ctl, "k1", DBT_CTL_SLOT_SERVER_CA, NULL, NULL));
    /* Shared, in a region that has no intermediate yet: made in the same operation. */
    struct dbt_ctl_instance_spec s2 = pg_spec("127.0.0.1:15502", "k2.example.com");
    s2.ca_id = "dbtls-ca-rsa2048-g1";
    s2.region = "ap-keys-1";
    CHECK_KEYS_UNLOCKED(dbt_ctl_instance_create(ctl, "k2", &s2, NULL, NULL));
    CHECK_KEYS_UNLOCKED(dbt_ctl_slots_create(ctl, "k2", DBT_CTL_SLOT_SERVER_CERT, NULL, NULL));
    /* New endpoints re-issue active and upcoming. */
    struct dbt_ctl_instance_spec pe = {.endpoints = "k2.example.com,k2b.example.com"};
    CHECK_KEYS_UNLOCKED(dbt_ctl_instance_patch(ctl, "k2", &pe, NULL, NULL));
    CHECK_KEYS_UNLOCKED(dbt_ctl_client_cert_create(ctl, "k2", "app", NULL, NULL));
    CHECK_KEYS_UNLOCKED(dbt_ctl_instance_reset_ssl(ctl, "k2", NULL));
    /* The scheduler, in the future: k2 (shared) rotates within its intermediate's 10 years;
       far later k1 (per-instance) gets an upcoming server CA (after rotating away the one
       above), while k2's intermediate would have ended: no rotation there, a notice. */
    CHECK_OK(dbt_ctl_slots_rotate(ctl, "k1", DBT_CTL_SLOT_SERVER_CA));
    struct dbt_ctl_auto_report rep = {0};
    CHECK_KEYS_UNLOCKED(dbt_ctl_auto_run(ctl, time(NULL) + 300 * 86400LL, &rep));
    CHECK(rep.rotated >= 1 && rep.failed == 0);
    CHECK_KEYS_UNLOCKED(dbt_ctl_auto_run(ctl, time(NULL) + 20 * 365 * 86400LL, &rep));
    CHECK(rep.rotated == 0 && rep.ca_added >= 1 && rep.failed == 0);
    /* per-instance -> shared with new endpoints: a new active and its re-issue. */
    struct dbt_ctl_instance_spec ps = {.ca_mode = "shared", .endpoints = "k1b.example.com"};
    CHECK_KEYS_UNLOCKED(dbt_ctl_instance_patch(ctl, "k1", &ps, NULL, NULL));
    /* The admin CA (made on first use) and an admin certificate. */
    struct dbt_ctl_admin_cert ac = {0};
    CHECK_KEYS_UNLOCKED(dbt_ctl_admin_cert_create(ctl, "keys-admin", 0, &ac));
    dbt_ctl_admin_cert_cleanup(&ac);

    /* The instance moves to another CA family while the keys are generated: the planned RSA
       key no longer fits, so the operation plans and generates again, and the new upcoming
       server CA is of the new family. */
    struct dbt_ctl_instance_spec s3 = pg_spec("127.0.0.1:15503", "k3.example.com");
    s3.ca_mode = "per-instance";
    s3.ca_id = "dbtls-ca-rsa2048-g1";
    CHECK_OK(dbt_ctl_instance_create(ctl, "k3", &s3, NULL, NULL));
    struct dbt_ctl_instance_spec s4 = pg_spec("127.0.0.1:15504", "k4.example.com");
    s4.ca_mode = "per-instance";
    s4.ca_id = "dbtls-ca-rsa2048-g1";
    CHECK_OK(dbt_ctl_instance_create(ctl, "k4", &s4, NULL, NULL));
    struct dbt_ctl_cert up = {0};
    probe.change = change_ca_of_k4;
    CHECK_KEYS_UNLOCKED(dbt_ctl_slots_create(ctl, "k4", DBT_CTL_SLOT_SERVER_CA, NULL, &up));
    CHECK(probe.calls >= 4); /* RSA-2048 + leaf, then EC P-384 + leaf */
    CHECK(streq_opt(up.key_algorithm, "EC P-384"));
    dbt_ctl_cert_cleanup(&up);

    /* The instance is deleted while its keys are generated: the write transaction finds it gone,
       the keys are dropped and nothing else changes. */
    struct snap before = snap();
    probe.change = delete_k3;
    dbt_ctl_test_keygen_hook(probe_write_lock, &probe);
    CHECK_ERR(dbt_ctl_slots_create(ctl, "k3", DBT_CTL_SLOT_SERVER_CA, NULL, NULL), DBT_E_NOT_FOUND);
    dbt_ctl_test_keygen_hook(NULL, NULL);
    struct snap after = snap();
    CHECK(after.counter == before.counter + 1 && after.events == before.events + 1);
    struct dbt_ctl_event_list ev = {0};
    CHECK_OK(dbt_ctl_events_list(ctl, NULL, 1, &ev));
    CHECK(ev.n == 1 && streq_opt(ev.items[0].action, "instance.delete"));
    dbt_ctl_event_list_cleanup(&ev);

    CHECK_OK(dbt_ctl_instance_delete(ctl, "k1"));
    CHECK_OK(dbt_ctl_instance_delete(ctl, "k2"));
    CHECK_OK(dbt_ctl_instance_delete(ctl, "k4"));
    dbt_store_close(probe.st);
    probe.st = NULL;
}

int main(void)
{
    if (!mkdtemp(root_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(state_dir, sizeof state_dir, "%s/state/sub", root_dir);
    opts.state_dir = state_dir;
    opts.actor = "unit-test";
    test_init_and_master_key();
    if (!ctl) {
        return check_exit();
    }
    test_master_key_command();
    test_init_interrupted();
    test_corrupt_store();
    test_fleet_load();
    test_cas_and_engines();
    test_instance_validation();
    test_shared_instance();
    test_patch();
    test_per_instance();
    test_client_certs();
    test_bundles_and_events();
    test_atomicity();
    test_concurrent_writers();
    test_read_only();
    test_keys_outside_write_lock();
    test_imported_ca();
    dbt_ctl_close(ctl);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", root_dir);
    }
    return check_exit();
}
