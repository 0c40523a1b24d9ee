/*
 * files.c - the files a generation reads, and whether they changed since (files.h).
 */
#include "front/files.h"

#include <stdlib.h>
#include <string.h>

static void sig_take(struct dbt_file_sig *s)
{
    struct stat st;
    s->exists = stat(s->path, &st) == 0; /* follows symlinks: a swapped link is a change */
    if (!s->exists) {
        return;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    s->ctime = st.st_ctim;
    s->mode = st.st_mode;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool sig_eq(const struct dbt_file_sig *a, const struct dbt_file_sig *b)
{
    if (a->exists != b->exists) {
        return false;
    }
    return !a->exists ||
           (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
            ts_eq(a->mtime, b->mtime) && ts_eq(a->ctime, b->ctime) && a->mode == b->mode);
}

static dbt_res add(struct dbt_files *f, const char *path, const char *instance)
{
    if (path == NULL || path[0] == '\0') {
        return DBT_OK;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].path, path) == 0) {
            return DBT_OK;
        }
    }
    struct dbt_file_sig *nv = realloc(f->v, (f->n + 1) * sizeof(*nv));
    if (nv == NULL) {
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    f->v = nv;
    struct dbt_file_sig *s = &f->v[f->n];
    memset(s, 0, sizeof(*s));
    s->path = strdup(path);
    s->instance = strdup(instance);
    if (s->path == NULL || s->instance == NULL) {
        free(s->path);
        free(s->instance);
        return dbt_fail(DBT_E_NOMEM, "out of memory");
    }
    f->n++;
    sig_take(s);
    return DBT_OK;
}

dbt_res dbt_files_collect(const struct dbt_rt_config *cfg, struct dbt_files *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < cfg->n_instances; i++) {
        const struct dbt_rt_instance *rt = &cfg->instances[i];
        if (rt->backend_tls_ca == NULL || rt->backend_tls_ca[0] == '\0') {
            continue; /* the cert and key are used only with it */
        }
        const char *paths[] = {rt->backend_tls_ca, rt->backend_tls_cert, rt->backend_tls_key};
        for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
            dbt_res r = add(out, paths[k], rt->name);
            if (!dbt_ok(r)) {
                dbt_files_free(out);
                return r;
            }
        }
    }
    return DBT_OK;
}

const struct dbt_file_sig *dbt_files_changed(struct dbt_files *f)
{
    for (size_t i = 0; i < f->n; i++) {
        struct dbt_file_sig now = f->v[i];
        sig_take(&now);
        if (!sig_eq(&now, &f->v[i])) {
            f->v[i] = now;
            return &f->v[i];
        }
    }
    return NULL;
}

void dbt_files_free(struct dbt_files *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].path);
        free(f->v[i].instance);
    }
    free(f->v);
    memset(f, 0, sizeof(*f));
}
