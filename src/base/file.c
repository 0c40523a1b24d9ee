/*
 * file.c - small private files (see file.h).
 */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

dbt_res dbt_file_create_private(const char *path, const void *p, size_t n, const char *what)
{
    dbt_res res = DBT_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return dbt_fail(errno == EEXIST ? DBT_E_EXISTS : DBT_E_IO, "cannot create %s \"%s\": %s",
                        what, path, strerror(errno));
    }
    ssize_t w = write(fd, p, n);
    DBT_ENSURE(w >= 0 && (size_t)w == n, IO, "cannot write %s \"%s\": %s", what, path,
               w < 0 ? strerror(errno) : "short write");
    DBT_ENSURE(fsync(fd) == 0, IO, "cannot sync %s \"%s\": %s", what, path, strerror(errno));
out:
    close(fd);
    if (!dbt_ok(res)) {
        unlink(path);
    }
    return res;
}
