/*
 * admin.c - the admin unix socket of dbtlsd (admin.h).
 */
#include "admin/admin.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

struct dbt_admin {
    struct dbt_front *front;
    struct MHD_Daemon *mhd;
    char *path;
};

static json_t *str_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

char *dbt_admin_connections_json(const struct dbt_conn_row *rows, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct dbt_session_status *st = &rows[i].st;
        char start[32];
        dbt_time_rfc3339(st->backend_start, start, sizeof(start));
        json_t *o = json_object();
        json_object_set_new(o, "instance", json_string(st->instance));
        json_object_set_new(o, "client_addr", json_string(st->client_addr));
        json_object_set_new(o, "client_port", json_integer(st->client_port));
        json_object_set_new(o, "user", str_or_null(st->user));
        json_object_set_new(o, "database", str_or_null(st->database));
        json_object_set_new(o, "application_name", json_string(st->application_name));
        json_object_set_new(o, "ssl", json_boolean(st->ssl));
        json_object_set_new(o, "version", str_or_null(st->version));
        json_object_set_new(o, "cipher", str_or_null(st->cipher));
        json_object_set_new(o, "bits", st->ssl ? json_integer(st->bits) : json_null());
        json_object_set_new(o, "client_dn", str_or_null(st->client_dn));
        json_object_set_new(o, "client_serial", str_or_null(st->client_serial));
        json_object_set_new(o, "issuer_dn", str_or_null(st->issuer_dn));
        json_object_set_new(o, "backend_start", json_string(start));
        json_object_set_new(o, "state", json_string(st->state));
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)rows[i].bytes_in));
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)rows[i].bytes_out));
        json_array_append_new(list, o);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "connections", list);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *error_body(const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return t;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct dbt_admin *a = cls;
    if (strcmp(url, "/v1/connections") != 0) {
        return reply(c, MHD_HTTP_NOT_FOUND, error_body("no such resource"));
    }
    if (strcmp(method, "GET") != 0) {
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, error_body("only GET is allowed"));
    }
    struct dbt_conn_row *rows = NULL;
    size_t n = 0;
    if (!dbt_ok(dbt_front_connections(a->front, &rows, &n))) {
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, error_body(dbt_errmsg()));
    }
    char *body = dbt_admin_connections_json(rows, n);
    free(rows);
    if (body == NULL) {
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, error_body("out of memory"));
    }
    return reply(c, MHD_HTTP_OK, body);
}

dbt_res dbt_admin_start(struct dbt_front *front, const char *path, struct dbt_admin **out)
{
    dbt_res res = DBT_OK;
    int fd = -1;
    struct dbt_admin *a = calloc(1, sizeof(*a));
    DBT_ENSURE(a != NULL, NOMEM, "admin: out of memory");
    a->front = front;
    a->path = strdup(path);
    DBT_ENSURE(a->path != NULL, NOMEM, "admin: out of memory");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    DBT_ENSURE(strlen(path) < sizeof(sa.sun_path), INVALID,
               "admin socket path \"%s\" is too long (max %zu bytes)", path,
               sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat stbuf;
    if (lstat(path, &stbuf) == 0) {
        DBT_ENSURE(S_ISSOCK(stbuf.st_mode), EXISTS,
                   "admin socket path \"%s\" exists and is not a socket", path);
        /* a live daemon answers a connect: refuse to steal its socket */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0) {
            close(probe);
        }
        DBT_ENSURE(!live, EXISTS, "admin socket \"%s\" is in use by another dbtlsd", path);
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    DBT_ENSURE(fd >= 0, IO, "admin socket: %s", strerror(errno));
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    DBT_ENSURE(rc == 0, IO, "admin socket \"%s\": bind: %s", path, strerror(e));
    DBT_ENSURE(chmod(path, 0600) == 0, IO, "admin socket \"%s\": chmod: %s", path,
               strerror(errno));
    DBT_ENSURE(listen(fd, 64) == 0, IO, "admin socket \"%s\": listen: %s", path, strerror(errno));
    a->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              handle, a, MHD_OPTION_LISTEN_SOCKET, fd,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    DBT_ENSURE(a->mhd != NULL, IO, "admin socket \"%s\": cannot start the HTTP server", path);
    fd = -1; /* owned by MHD */
    *out = a;
    a = NULL;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (a != NULL) {
        free(a->path);
        free(a);
    }
    return res;
}

void dbt_admin_stop(struct dbt_admin *a)
{
    if (a == NULL) {
        return;
    }
    MHD_stop_daemon(a->mhd);
    unlink(a->path);
    free(a->path);
    free(a);
}
