/*
 * cmd_connections.c - `dbtls connections`: asks the running dbtlsd for its live connections
 * (HTTP GET /v1/connections on the admin unix socket, through libcurl) and shows what
 * pg_stat_ssl joined with pg_stat_activity would show. This is the only command that talks to
 * the daemon; it never opens the store.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cmd.h"
#include "cli/out.h"

#define ADMIN_REPLY_MAX (64u << 20) /* a reply larger than this is not a connection list */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct dbt_buf *b = userdata;
    size_t n = size * nmemb;

    if (!dbt_ok(dbt_buf_append(b, ptr, n))) {
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    return n;
}

/*
 * Connects once by hand so that "no daemon" is reported with the system's reason (ENOENT,
 * ECONNREFUSED, EACCES) rather than curl's generic "Couldn't connect to server".
 */
static dbt_res probe_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc, err;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return dbt_fail(DBT_E_IO, "cannot reach dbtlsd at %s: socket path is longer than %zu bytes",
                        path, sizeof(sa.sun_path) - 1);
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return dbt_fail(DBT_E_IO, "cannot reach dbtlsd at %s: %s", path, strerror(errno));
    }
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (rc != 0) {
        return dbt_fail(DBT_E_IO, "cannot reach dbtlsd at %s: %s", path, strerror(err));
    }
    return DBT_OK;
}

/* GET `url_path` on the admin socket; *out is the parsed JSON body of a 200 reply. */
static dbt_res admin_get(const char *sock, const char *url_path, json_t **out)
{
    dbt_res res = DBT_OK;
    struct dbt_buf body;
    char errbuf[CURL_ERROR_SIZE] = "";
    char url[512];
    long status = 0;
    CURL *h = NULL;
    CURLcode cc;
    json_error_t jerr;

    dbt_buf_init(&body, ADMIN_REPLY_MAX);
    DBT_TRY(probe_socket(sock));
    DBT_ENSURE(curl_global_init(CURL_GLOBAL_DEFAULT) == 0, INTERNAL, "cannot initialise libcurl");
    h = curl_easy_init();
    DBT_ENSURE(h, NOMEM, "cannot initialise libcurl");
    snprintf(url, sizeof(url), "http://localhost%s", url_path);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(h);
    DBT_ENSURE(cc == CURLE_OK, IO, "cannot reach dbtlsd at %s: %s", sock,
               errbuf[0] ? errbuf : curl_easy_strerror(cc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        /* Show the daemon's own error when it sent {"error": "..."}. */
        json_t *e = json_loadb((const char *)body.data, body.len, 0, &jerr);
        const char *msg = json_string_value(json_object_get(e, "error"));
        if (!msg) { /* the admin API's {"error": {"code", "status", "message"}} */
            msg = json_string_value(json_object_get(json_object_get(e, "error"), "message"));
        }
        res = dbt_fail(DBT_E_IO, "dbtlsd at %s answered HTTP %ld to GET %s%s%s", sock, status,
                       url_path, msg ? ": " : "", msg ? msg : "");
        json_decref(e);
        goto out;
    }
    *out = json_loadb((const char *)body.data, body.len, 0, &jerr);
    DBT_ENSURE(*out, PROTO, "dbtlsd at %s sent a reply that is not JSON: %s (line %d)", sock,
               jerr.text, jerr.line);
out:
    if (h) {
        curl_easy_cleanup(h);
    }
    dbt_buf_cleanup(&body);
    return res;
}

static int run_connections(struct dbt_cli *c)
{
    static const struct dbt_cli_col cols[] = {
        {"INSTANCE", "instance"},
        {"CLIENT", "client"},
        {"USER", "user"},
        {"DATABASE", "database"},
        {"APPLICATION", "application_name"},
        {"SSL", "ssl"},
        {"VERSION", "version"},
        {"CIPHER", "cipher"},
        {"BITS", "bits"},
        {"CLIENT_DN", "client_dn"},
        {"SERVER_CERT", "server_cert"},
        {"STARTED", "backend_start"},
        {"BYTES_IN", "bytes_in"},
        {"BYTES_OUT", "bytes_out"},
        {NULL, NULL},
    };
    const char *instance = dbt_cli_get(c, "instance");
    char *sock = NULL;
    json_t *reply = NULL, *list, *shown = NULL, *conn;
    dbt_res res = DBT_OK;
    size_t i;
    int rc;

    if (c->admin_socket) {
        sock = strdup(c->admin_socket);
    } else {
        size_t n = strlen(c->state_dir) + sizeof("/admin.sock");
        sock = malloc(n);
        if (sock) {
            snprintf(sock, n, "%s/admin.sock", c->state_dir);
        }
    }
    DBT_ENSURE(sock, NOMEM, "out of memory");
    if (c->server) {
        DBT_TRY(dbt_cli_remote_get_json(c, "/v1/connections", (struct json_t **)&reply));
    } else {
        DBT_TRY(admin_get(sock, "/v1/connections", &reply));
    }
    list = json_object_get(reply, "connections");
    DBT_ENSURE(json_is_array(list), PROTO,
               "dbtlsd at %s sent a reply without a \"connections\" list", sock);
    shown = json_array();
    DBT_ENSURE(shown, NOMEM, "out of memory");
    json_array_foreach(list, i, conn)
    {
        const char *inst = json_string_value(json_object_get(conn, "instance"));
        if (instance && (!inst || strcmp(inst, instance) != 0)) {
            continue;
        }
        if (c->format == DBT_CLI_FMT_TABLE) {
            /* One "address:port" column for people; JSON keeps the fields apart. */
            const char *addr = json_string_value(json_object_get(conn, "client_addr"));
            json_t *port = json_object_get(conn, "client_port");
            char buf[128];
            if (addr && json_is_integer(port)) {
                snprintf(buf, sizeof(buf),
                         strchr(addr, ':') ? "[%s]:%" JSON_INTEGER_FORMAT
                                           : "%s:%" JSON_INTEGER_FORMAT,
                         addr, json_integer_value(port));
                json_object_set_new(conn, "client", json_string(buf));
            } else {
                json_object_set(conn, "client", json_object_get(conn, "client_addr"));
            }
        }
        if (c->format == DBT_CLI_FMT_TABLE) {
            /* the start of SHA1_FINGERPRINT in `ssl server-certs list`: enough to tell slots */
            const char *sha = json_string_value(json_object_get(conn, "server_cert_sha1"));
            char shortsha[16];
            snprintf(shortsha, sizeof shortsha, "%.10s", sha ? sha : "");
            json_object_set_new(conn, "server_cert", sha ? json_string(shortsha) : json_null());
        }
        json_array_append(shown, conn);
    }
    if (c->format == DBT_CLI_FMT_JSON) {
        json_t *wrap = json_pack("{sO}", "connections", shown);
        DBT_ENSURE(wrap, NOMEM, "out of memory");
        dbt_cli_print_object(c, wrap);
        json_decref(wrap);
    } else {
        dbt_cli_print_list(c, shown, cols);
    }
out:
    rc = dbt_ok(res) ? 0 : dbt_cli_fail(res);
    json_decref(shown);
    json_decref(reply);
    free(sock);
    return rc;
}

static const struct dbt_cli_opt connections_opts[] = {
    {"instance", "NAME", "only connections of this instance", false, false},
    {NULL, NULL, NULL, false, false},
};

const struct dbt_cli_cmd dbt_cli_cmds_connections[] = {
    {"connections", NULL, false,
     "show live connections through the running dbtlsd (TLS version, cipher, client "
     "certificate)",
     connections_opts, run_connections, false},
    {0},
};
