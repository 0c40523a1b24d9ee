/*
 * file.h - small private files (the master key, store.conf): created whole or not at all.
 */
#ifndef DBT_BASE_FILE_H
#define DBT_BASE_FILE_H

#include <stddef.h>

#include "base/err.h"

/*
 * Creates path (O_EXCL, O_NOFOLLOW, mode 0600 whatever the umask) holding p[0..n), synced.
 * EXISTS when it is there, IO otherwise; messages name it as what ("master key file") and the
 * path. On failure nothing is left at path.
 */
dbt_res dbt_file_create_private(const char *path, const void *p, size_t n,
                                const char *what) DBT_WUR;

#endif
