/*
 * test_admin.c - the admin API in-process: a real front (no instances) and dbt_admin_start_opts
 * on a temporary store, spoken to with raw HTTP/1.1 bytes over the unix socket so that the edges
 * a library client would smooth over are exercised: the body limit at exactly max and max+1
 * (Content-Length and chunked), a body shorter than its Content-Length, bodies that are not JSON
 * objects, the JSON of a resource equal to the shared view of the same ctl result, and the admin
 * CA (created on first use on a read-write handle, refused on a read-only one, stable).
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>

#include "admin/admin.h"
#include "admin/view.h"
#include "check.h"
#include "ctl/admin_ca.h"
#include "ctl/ctl.h"

static char sock_path[100];

static dbt_res load_cb(void *arg, const struct dbt_rt_config *prev, struct dbt_rt_config **out)
{
    return dbt_ctl_runtime_load(arg, prev, out);
}

static dbt_res counter_cb(void *arg, uint64_t *out)
{
    return dbt_ctl_change_counter(arg, out);
}

/* Sends `req` (len bytes) and returns everything the server sent until it closed (malloc'd). */
static char *exchange(const char *req, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return strdup("");
    }
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the server may answer (413) and close before reading everything */
        }
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 4096, used = 0;
    char *out = malloc(cap);
    for (;;) {
        if (used + 1024 > cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        ssize_t n = recv(fd, out + used, cap - used - 1, 0);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
    }
    out[used] = '\0';
    close(fd);
    return out;
}

static char *request(const char *method, const char *path, const char *body)
{
    size_t bl = body ? strlen(body) : 0;
    size_t cap = bl + 512;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n"
                     "\r\n%s",
                     method, path, bl, body ? body : "");
    char *r = exchange(req, (size_t)n);
    free(req);
    return r;
}

static int status_of(const char *reply)
{
    int st = 0;
    return sscanf(reply, "HTTP/1.1 %d", &st) == 1 ? st : -1;
}

static json_t *body_of(const char *reply)
{
    const char *b = strstr(reply, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

static const char *error_status(json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), "status"));
}

/* A POST /v1/instances body of exactly `total` bytes (padded inside hbaRules). */
static char *sized_body(size_t total)
{
    const char *head = "{\"name\":\"pad\",\"engine\":\"postgres\",\"listen\":\"127.0.0.1:1\","
                       "\"backend\":\"127.0.0.1:2\",\"endpoints\":[\"localhost\"],"
                       "\"hbaRules\":\"host all all all backend #";
    const char *tail = "\"}";
    size_t fixed = strlen(head) + strlen(tail);
    char *b = malloc(total + 1);
    memcpy(b, head, strlen(head));
    memset(b + strlen(head), 'x', total - fixed);
    memcpy(b + total - strlen(tail), tail, strlen(tail) + 1);
    return b;
}

static void test_body_limit(void)
{
    /* max+1 with Content-Length: refused before the body is read */
    char *b = sized_body(DBT_ADMIN_MAX_BODY + 1);
    char *r = request("POST", "/v1/instances", b);
    CHECK(status_of(r) == 413);
    json_t *doc = body_of(r);
    CHECK(doc && strcmp(error_status(doc), "PAYLOAD_TOO_LARGE") == 0);
    json_decref(doc);
    free(r);
    free(b);

    /* exactly max: accepted (the instance is created) */
    b = sized_body(DBT_ADMIN_MAX_BODY);
    r = request("POST", "/v1/instances", b);
    CHECK(status_of(r) == 201);
    free(r);
    free(b);
    r = request("DELETE", "/v1/instances/pad", NULL);
    CHECK(status_of(r) == 200);
    free(r);

    /* chunked: max+1 in two chunks is refused while receiving; max is accepted */
    for (int extra = 1; extra >= 0; extra--) {
        size_t total = DBT_ADMIN_MAX_BODY + (size_t)extra;
        b = sized_body(total);
        size_t half = total / 2;
        char *req = malloc(total + 512);
        int n = snprintf(req, 512,
                         "POST /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
                         half);
        size_t off = (size_t)n;
        memcpy(req + off, b, half);
        off += half;
        off += (size_t)sprintf(req + off, "\r\n%zx\r\n", total - half);
        memcpy(req + off, b + half, total - half);
        off += total - half;
        off += (size_t)sprintf(req + off, "\r\n0\r\n\r\n");
        r = exchange(req, off);
        CHECK(status_of(r) == (extra ? 413 : 201));
        free(r);
        free(req);
        free(b);
        r = request("DELETE", "/v1/instances/pad", NULL);
        CHECK(status_of(r) == (extra ? 404 : 200));
        free(r);
    }
}

static void test_short_and_bad_bodies(void)
{
    /* a body shorter than its Content-Length, then the client goes away: no reply, no crash */
    const char *req = "POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"";
    char *r = exchange(req, strlen(req));
    CHECK(status_of(r) != 200 && status_of(r) != 201);
    free(r);

    static const char *const bad[] = {"",
                                      "null",
                                      "[]",
                                      "\"s\"",
                                      "{",
                                      "{\"name\":1}",
                                      "{\"name\":\"a\\u0000b\",\"engine\":\"postgres\"}",
                                      "{\"x\":1}",
                                      "{\"name\":\"a\"} trailing"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = request("POST", "/v1/instances", bad[i]);
        CHECK(status_of(r) == 400);
        json_t *doc = body_of(r);
        CHECK(doc && strcmp(error_status(doc), "INVALID_ARGUMENT") == 0);
        if (status_of(r) != 400) {
            fprintf(stderr, "body %s -> %s\n", bad[i], r);
        }
        json_decref(doc);
        free(r);
    }
    /* the daemon still serves */
    r = request("GET", "/v1/engines", NULL);
    CHECK(status_of(r) == 200);
    free(r);
}

static void test_views_match(struct dbt_ctl *ctl)
{
    char *r = request("POST", "/v1/instances",
                      "{\"name\":\"v1\",\"engine\":\"postgres\",\"listen\":\"127.0.0.1:3\","
                      "\"backend\":\"/tmp/.s.PGSQL.5432\",\"endpoints\":\"a.example,10.0.0.1\"}");
    CHECK(status_of(r) == 201);
    free(r);
    struct dbt_ctl_instance inst = {0};
    CHECK_OK(dbt_ctl_instance_describe(ctl, "v1", &inst));
    json_t *want = dbt_view_instance(&inst);
    r = request("GET", "/v1/instances/v1", NULL);
    json_t *got = body_of(r);
    CHECK(status_of(r) == 200 && got && want && json_equal(got, want));
    json_decref(got);
    json_decref(want);
    dbt_ctl_instance_cleanup(&inst);
    free(r);

    struct dbt_ctl_cert_list l = {0};
    CHECK_OK(dbt_ctl_slots_list(ctl, "v1", DBT_CTL_SLOT_SERVER_CERT, &l));
    want = dbt_view_cert_list(&l);
    r = request("GET", "/v1/instances/v1/serverCerts", NULL);
    got = body_of(r);
    CHECK(got && want && json_equal(json_object_get(got, "items"), want));
    json_decref(got);
    json_decref(want);
    dbt_ctl_cert_list_cleanup(&l);
    free(r);
}

static void test_admin_ca(const char *state_dir)
{
    struct dbt_ctl *ro = NULL, *rw = NULL;
    struct dbt_ctl_opts o = {.state_dir = state_dir, .read_only = 1};
    CHECK_OK(dbt_ctl_open(&o, &ro));
    char *pem = NULL, *pem2 = NULL;
    /* this store's admin CA was made by the TCP listener's start */
    CHECK_OK(dbt_ctl_admin_ca(ro, &pem));
    o.read_only = 0;
    CHECK_OK(dbt_ctl_open(&o, &rw));
    CHECK_OK(dbt_ctl_admin_ca(rw, &pem2));
    CHECK(pem && pem2 && strcmp(pem, pem2) == 0);
    struct dbt_ctl_admin_cert c = {0};
    CHECK_ERR(dbt_ctl_admin_cert_create(rw, "bad/name", 0, &c), DBT_E_INVALID);
    CHECK_ERR(dbt_ctl_admin_cert_create(rw, "", 0, &c), DBT_E_INVALID);
    CHECK_OK(dbt_ctl_admin_cert_create(rw, "ops", 3600, &c));
    CHECK(c.cert_pem && c.key_pem && c.ca_pem && strcmp(c.ca_pem, pem) == 0);
    CHECK(c.expiration_time > 0 && c.expiration_time <= time(NULL) + 3600 + 1);
    dbt_ctl_admin_cert_cleanup(&c);
    CHECK_ERR(dbt_ctl_admin_server_cert(rw, NULL, 0, 0, &c), DBT_E_INVALID);
    dbt_ctl_close(ro);
    dbt_ctl_close(rw);
    free(pem);
    free(pem2);
}

/*
 * One HTTPS GET over the TCP listener with the given client certificate (PEM, may be NULL);
 * returns the HTTP status, or -1 when the TLS connection failed.
 */
static int tls_get(int port, const char *ca_pem, const char *cert_pem, const char *key_pem)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    int status = -1, fd = -1;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_datum_t ca = {(unsigned char *)ca_pem, (unsigned)strlen(ca_pem)};
    gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
    if (cert_pem != NULL) {
        gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
        gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
        gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    }
    gnutls_init(&s, GNUTLS_CLIENT);
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_session_set_verify_cert(s, "localhost", 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        goto out;
    }
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, 10000);
    if (gnutls_handshake(s) < 0) {
        goto out;
    }
    const char *req = "GET /v1/instances HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if (gnutls_record_send(s, req, strlen(req)) < 0) {
        goto out;
    }
    char buf[4096];
    size_t used = 0;
    for (;;) {
        ssize_t n = gnutls_record_recv(s, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
        if (used == sizeof(buf) - 1) {
            break;
        }
    }
    buf[used] = '\0';
    status = status_of(buf);
out:
    if (fd >= 0) {
        close(fd);
    }
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    return status;
}

/* Only certificates of the admin CA with the clientAuth purpose open the TCP listener. */
static void test_tcp_client_certificates(const char *state_dir, int port)
{
    struct dbt_ctl *rw = NULL;
    struct dbt_ctl_opts o = {.state_dir = state_dir};
    CHECK_OK(dbt_ctl_open(&o, &rw));
    struct dbt_ctl_admin_cert client = {0}, server = {0};
    const char *hosts[] = {"localhost"};
    CHECK_OK(dbt_ctl_admin_cert_create(rw, "ops", 0, &client));
    CHECK_OK(dbt_ctl_admin_server_cert(rw, hosts, 1, 0, &server));
    if (client.ca_pem != NULL && server.cert_pem != NULL) {
        CHECK(tls_get(port, client.ca_pem, client.cert_pem, client.key_pem) == 200);
        CHECK(tls_get(port, client.ca_pem, NULL, NULL) == 401);
        /* same CA, but a serverAuth certificate: refused */
        CHECK(tls_get(port, client.ca_pem, server.cert_pem, server.key_pem) == 403);
    }
    dbt_ctl_admin_cert_cleanup(&client);
    dbt_ctl_admin_cert_cleanup(&server);
    dbt_ctl_close(rw);
}

static void test_admin_ca_fresh_store(void)
{
    char dir[] = "/tmp/dbt-admin-ca-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sd[300];
    snprintf(sd, sizeof(sd), "%s/state", dir);
    struct dbt_ctl_opts o = {.state_dir = sd};
    CHECK_OK(dbt_ctl_init(&o));
    struct dbt_ctl *ro = NULL;
    o.read_only = 1;
    CHECK_OK(dbt_ctl_open(&o, &ro));
    char *pem = NULL;
    /* no admin CA yet and a read-only handle may not create one */
    CHECK_ERR(dbt_ctl_admin_ca(ro, &pem), DBT_E_STATE);
    CHECK(pem == NULL);
    dbt_ctl_close(ro);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    char dir[] = "/tmp/dbt-admin-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char sd[300];
    snprintf(sd, sizeof(sd), "%s/state", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", dir);
    struct dbt_ctl_opts co = {.state_dir = sd};
    CHECK_OK(dbt_ctl_init(&co));
    struct dbt_ctl *ctl = NULL;
    co.read_only = 1;
    CHECK_OK(dbt_ctl_open(&co, &ctl));
    /* the front's loader thread has a handle of its own, as in dbtlsd */
    struct dbt_ctl *front_ctl = NULL;
    CHECK_OK(dbt_ctl_open(&co, &front_ctl));
    struct dbt_front_opts fo = {.workers = 1,
                                .poll_ms = 100,
                                .load = load_cb,
                                .free_config = dbt_rt_config_free,
                                .counter = counter_cb,
                                .arg = front_ctl};
    struct dbt_front *front = NULL;
    CHECK_OK(dbt_front_start(&fo, &front));
    struct dbt_ctl_opts aco = {.state_dir = sd};
    struct dbt_admin_opts ao = {
        .front = front, .socket_path = sock_path, .ctl = &aco, .tcp_listen = "127.0.0.1:0"};
    struct dbt_admin *admin = NULL;
    CHECK_OK(dbt_admin_start_opts(&ao, &admin));
    if (admin != NULL) {
        CHECK(dbt_admin_tcp_port(admin) > 0);
        /* a second daemon may not steal a live socket */
        struct dbt_admin *other = NULL;
        struct dbt_admin_opts ao2 = {.front = front, .socket_path = sock_path};
        CHECK_ERR(dbt_admin_start_opts(&ao2, &other), DBT_E_EXISTS);
        struct dbt_admin_opts ao3 = {.front = front,
                                     .socket_path = "/tmp/dbt-admin-unused.sock",
                                     .ctl = &aco,
                                     .tcp_listen = "nocolon"};
        CHECK_ERR(dbt_admin_start_opts(&ao3, &other), DBT_E_INVALID);

        test_body_limit();
        test_short_and_bad_bodies();
        test_views_match(ctl);
        test_admin_ca(sd);
        test_tcp_client_certificates(sd, dbt_admin_tcp_port(admin));
    }
    test_admin_ca_fresh_store();
    dbt_admin_stop(admin);
    CHECK(access(sock_path, F_OK) != 0); /* the socket file is removed */
    dbt_front_free(front);
    dbt_ctl_close(front_ctl);
    dbt_ctl_close(ctl);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return check_exit();
}
