/*
 * files.h - the files a generation reads from disk (each instance's --backend-tls-ca, -cert and
 * -key), with what identifies their content: device, inode, size, mtime and ctime, taken before
 * the read. The loader compares them every second and reloads when one changed, so a renewed
 * backend certificate (an operator's cron job, a Kubernetes secret's symlink swap, a chmod that
 * fixes a key's mode) is taken up without a SIGHUP.
 */
#ifndef DBT_FRONT_FILES_H
#define DBT_FRONT_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "base/err.h"
#include "ctl/runtime.h"

struct dbt_file_sig {
    char *path;
    char *instance; /* the first instance that names it, for the log */
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    mode_t mode;
};

struct dbt_files {
    struct dbt_file_sig *v;
    size_t n;
};

/* Notes every distinct file cfg's instances read, as it is now. */
dbt_res dbt_files_collect(const struct dbt_rt_config *cfg, struct dbt_files *out) DBT_WUR;
/* The first file that is not as noted any more (created, removed, replaced, written, chmod'ed),
   noted anew as it is now (so one change is reported once); NULL when none changed. */
const struct dbt_file_sig *dbt_files_changed(struct dbt_files *f);
void dbt_files_free(struct dbt_files *f);

#endif
