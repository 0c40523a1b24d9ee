/*
 * conf.c - store.conf, the file by which a state directory says its store is a PostgreSQL
 * database rather than dbtls.db: one line, the libpq conninfo (URI or key=value). It may hold a
 * password, so it is written 0600 and, like master.key, refused when group or world may read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "store/store.h"

#define CONF_MAX 4096

dbt_res dbt_store_conf_write(const char *path, const char *conninfo)
{
    dbt_res res = DBT_OK;
    char *err = NULL;
    if (!conninfo || !*conninfo || strpbrk(conninfo, "\r\n") || strlen(conninfo) >= CONF_MAX) {
        return dbt_fail(DBT_E_INVALID, "invalid PostgreSQL store connection string: empty, too "
                                       "long or more than one line");
    }
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        res = dbt_fail(DBT_E_INVALID, "invalid PostgreSQL store connection string: %.200s",
                       err ? strtok(err, "\n") : "out of memory");
        PQfreemem(err);
        return res;
    }
    PQconninfoFree(opts);
    /* one line: the conninfo and its newline */
    size_t n = strlen(conninfo);
    char *line = malloc(n + 2);
    if (line == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    memcpy(line, conninfo, n);
    line[n] = '\n';
    res = dbt_file_create_private(path, line, n + 1, "store file");
    memset(line, 0, n + 1); /* it may hold a password */
    free(line);
    return res;
}

dbt_res dbt_store_conf_read(const char *path, char **out)
{
    dbt_res res = DBT_OK;
    char buf[CONF_MAX + 1];
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            return dbt_fail(DBT_E_NOT_FOUND, "store file \"%s\" does not exist", path);
        }
        return dbt_fail(DBT_E_IO, "cannot open store file \"%s\": %s", path, strerror(errno));
    }
    struct stat sb;
    DBT_ENSURE(fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode), IO,
               "store file \"%s\" is not a regular file", path);
    DBT_ENSURE((sb.st_mode & (S_IRWXG | S_IRWXO)) == 0, PERM,
               "store file \"%s\" has group or world access; it may hold a password, so "
               "permissions should be u=rw (0600) or less (fix with: chmod 0600 %s)",
               path, path);
    ssize_t n = read(fd, buf, sizeof buf);
    DBT_ENSURE(n >= 0, IO, "cannot read store file \"%s\": %s", path, strerror(errno));
    DBT_ENSURE(n <= CONF_MAX, CORRUPT, "store file \"%s\" is longer than %d bytes", path, CONF_MAX);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
        n--;
    }
    buf[n] = 0;
    DBT_ENSURE(n > 0 && !memchr(buf, '\n', (size_t)n) && !memchr(buf, 0, (size_t)n), CORRUPT,
               "store file \"%s\" must hold one line, a PostgreSQL connection string", path);
    *out = strdup(buf);
    DBT_ENSURE(*out, NOMEM, "store: out of memory");
out:
    memset(buf, 0, sizeof buf);
    close(fd);
    return res;
}
