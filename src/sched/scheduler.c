/*
 * scheduler.c - the scheduler thread of dbtlsd (scheduler.h): a tick that runs the automatic
 * actions, and in-order, at-least-once delivery of events to the notification sinks with
 * exponential backoff. The delivered marker of a sink moves only after the sink accepted the event,
 * so a crash between delivery and marker repeats one event (at least once), never loses one.
 */
#include "sched/scheduler.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

extern char **environ;

enum { SINK_COMMAND, SINK_WEBHOOK };

struct sink {
    int type;
    const char *target; /* command or URL */
    char *key;          /* marker key in the store: "command:CMD" / "webhook:URL" */
    int64_t last_id;    /* delivered up to here */
    uint64_t next_try_ms;
    uint64_t backoff_ms;
    int failures; /* consecutive failures of the head event */
};

#define SCHED_MAX_REFUSALS 256

struct dbt_sched {
    struct dbt_sched_opts o;
    struct dbt_ctl *ctl;
    struct sink sinks[2];
    int n_sinks;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    struct dbt_sched_refusal seen[SCHED_MAX_REFUSALS]; /* counts already reported */
    size_t n_seen;
};

char *dbt_sched_event_json(const struct dbt_ctl_event *e)
{
    char when[32];
    dbt_time_rfc3339(e->time, when, sizeof when);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(e->id));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "actor", json_string(e->actor ? e->actor : ""));
    json_object_set_new(o, "action", json_string(e->action ? e->action : ""));
    json_object_set_new(o, "object", json_string(e->object ? e->object : ""));
    /* "instance/NAME" or "instance/NAME/..." -> NAME */
    json_t *inst = json_null();
    if (e->object && strncmp(e->object, "instance/", 9) == 0) {
        const char *n = e->object + 9;
        const char *slash = strchr(n, '/');
        inst = json_stringn(n, slash ? (size_t)(slash - n) : strlen(n));
    }
    json_object_set_new(o, "instance", inst);
    json_object_set_new(o, "detail", json_string(e->detail ? e->detail : ""));
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return t;
}

dbt_res dbt_sched_run_command(const char *cmd, const char *json, uint64_t timeout_ms)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        return dbt_fail(DBT_E_IO, "notify command: pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    if (rc != 0) {
        close(p[1]);
        return dbt_fail(DBT_E_IO, "notify command: cannot run /bin/sh: %s", strerror(rc));
    }
    /* The event is small (< PIPE_BUF-ish); a command that does not read it gets EPIPE, which is
       fine (SIGPIPE is ignored by the daemon). */
    size_t len = strlen(json), off = 0;
    while (off < len) {
        ssize_t w = write(p[1], json + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
    (void)!write(p[1], "\n", 1);
    close(p[1]);
    uint64_t deadline = dbt_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            return dbt_fail(DBT_E_IO, "notify command: waitpid: %s", strerror(errno));
        }
        if (dbt_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return dbt_fail(DBT_E_TIMEOUT, "notify command did not finish within %llu ms; killed",
                            (unsigned long long)timeout_ms);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return DBT_OK;
    }
    if (WIFEXITED(status)) {
        return dbt_fail(DBT_E_IO, "notify command exited with status %d", WEXITSTATUS(status));
    }
    return dbt_fail(DBT_E_IO, "notify command was killed by signal %d",
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static size_t discard(char *p, size_t sz, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return sz * n;
}

dbt_res dbt_sched_post_webhook(const char *url, const char *json, uint64_t timeout_ms)
{
    dbt_res res = DBT_OK;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    DBT_ENSURE(c != NULL, NOMEM, "notify webhook: cannot create a curl handle");
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dbtlsd-notify");
    CURLcode cr = curl_easy_perform(c);
    DBT_ENSURE(cr == CURLE_OK, IO, "notify webhook %s: %s", url, curl_easy_strerror(cr));
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    DBT_ENSURE(code >= 200 && code < 300, IO, "notify webhook %s answered HTTP %ld", url, code);
out:
    curl_slist_free_all(h);
    if (c) {
        curl_easy_cleanup(c);
    }
    return res;
}

/* Delivers what is pending for one sink, in order, stopping at the first failure. */
static void sink_deliver(struct dbt_sched *s, struct sink *k)
{
    uint64_t now = dbt_now_ms();
    if (now < k->next_try_ms) {
        return;
    }
    struct dbt_ctl_event_list l = {0};
    if (!dbt_ok(dbt_ctl_events_after(s->ctl, k->last_id, 100, &l))) {
        dbt_warn("notify: cannot read events: %s", dbt_errmsg());
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        char *json = dbt_sched_event_json(&l.items[i]);
        dbt_res r = json == NULL ? dbt_fail(DBT_E_NOMEM, "out of memory")
                    : k->type == SINK_COMMAND
                        ? dbt_sched_run_command(k->target, json, s->o.notify_timeout_ms)
                        : dbt_sched_post_webhook(k->target, json, s->o.notify_timeout_ms);
        free(json);
        if (!dbt_ok(r)) {
            k->failures++;
            k->backoff_ms = k->backoff_ms == 0 ? s->o.retry_min_ms : k->backoff_ms * 2;
            if (k->backoff_ms > s->o.retry_max_ms) {
                k->backoff_ms = s->o.retry_max_ms;
            }
            k->next_try_ms = dbt_now_ms() + k->backoff_ms;
            dbt_warn("notify: event %lld (%s) not delivered to %s (attempt %d): %s; retrying in "
                     "%llu ms",
                     (long long)l.items[i].id, l.items[i].action,
                     k->type == SINK_COMMAND ? "the notify command" : "the webhook", k->failures,
                     dbt_errmsg(), (unsigned long long)k->backoff_ms);
            break;
        }
        if (k->failures > 0) {
            dbt_info("notify: event %lld delivered after %d failed attempt%s",
                     (long long)l.items[i].id, k->failures, k->failures == 1 ? "" : "s");
        }
        k->failures = 0;
        k->backoff_ms = 0;
        k->next_try_ms = 0;
        k->last_id = l.items[i].id;
        if (!dbt_ok(dbt_ctl_notify_mark_put(s->ctl, k->key, k->last_id))) {
            /* delivered but not marked: a restart delivers it again (at least once) */
            dbt_warn("notify: cannot record delivery of event %lld: %s", (long long)k->last_id,
                     dbt_errmsg());
        }
    }
    dbt_ctl_event_list_cleanup(&l);
}

/* One event per instance whose refused-handshake count grew since the last tick. */
static void refusals_check(struct dbt_sched *s)
{
    struct dbt_sched_refusal now[SCHED_MAX_REFUSALS];
    size_t n = s->o.refusals(s->o.refusals_arg, now, SCHED_MAX_REFUSALS);
    for (size_t i = 0; i < n; i++) {
        struct dbt_sched_refusal *old = NULL;
        for (size_t j = 0; j < s->n_seen; j++) {
            if (strcmp(s->seen[j].instance, now[i].instance) == 0) {
                old = &s->seen[j];
            }
        }
        if (old == NULL && s->n_seen < SCHED_MAX_REFUSALS) {
            old = &s->seen[s->n_seen++];
            *old = (struct dbt_sched_refusal){.n = 0};
            snprintf(old->instance, sizeof old->instance, "%.63s", now[i].instance);
        }
        if (old == NULL || now[i].n <= old->n) {
            continue;
        }
        uint64_t more = now[i].n - old->n;
        char obj[96], detail[400];
        snprintf(obj, sizeof obj, "instance/%.63s", now[i].instance);
        snprintf(detail, sizeof detail,
                 "%llu client TLS handshake%s refused the server certificate (TLS alert, e.g. "
                 "unknown ca) since the last check: those clients may lack the current server "
                 "CA; give them `dbtls ssl server-ca-certs download` or roll back",
                 (unsigned long long)more, more == 1 ? "" : "s");
        if (!dbt_ok(dbt_ctl_event_add(s->ctl, "tls.server-cert-refused", obj, detail))) {
            dbt_warn("scheduler: cannot record refused handshakes of instance \"%s\": %s",
                     now[i].instance, dbt_errmsg());
            continue; /* counted again at the next tick */
        }
        dbt_warn("instance \"%s\": %s", now[i].instance, detail);
        old->n = now[i].n;
    }
}

static void tick(struct dbt_sched *s)
{
    if (s->o.refusals != NULL) {
        refusals_check(s);
    }
    struct dbt_ctl_auto_report rep;
    if (!dbt_ok(dbt_ctl_auto_run(s->ctl, dbt_now_unix(), &rep))) {
        dbt_error("scheduler: automatic action failed: %s", dbt_errmsg());
    }
    if (rep.rotated || rep.ca_added || rep.notices) {
        dbt_info("scheduler: %d server certificate%s auto-rotated, %d upcoming server CA%s added, "
                 "%d expiry notice%s",
                 rep.rotated, rep.rotated == 1 ? "" : "s", rep.ca_added,
                 rep.ca_added == 1 ? "" : "s", rep.notices, rep.notices == 1 ? "" : "s");
    }
}

static void *run(void *arg)
{
    struct dbt_sched *s = arg;
    uint64_t next_tick = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        uint64_t now = dbt_now_ms();
        if (now >= next_tick) {
            tick(s);
            next_tick = dbt_now_ms() + s->o.interval_ms;
        }
        for (int i = 0; i < s->n_sinks; i++) {
            sink_deliver(s, &s->sinks[i]);
        }
        /* sleep until the next tick or the next retry, whichever is first */
        uint64_t wake = next_tick;
        for (int i = 0; i < s->n_sinks; i++) {
            if (s->sinks[i].next_try_ms != 0 && s->sinks[i].next_try_ms < wake) {
                wake = s->sinks[i].next_try_ms;
            }
        }
        pthread_mutex_lock(&s->lock);
        now = dbt_now_ms();
        if (!s->stop && wake > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t d = wake - now;
            ts.tv_sec += (time_t)(d / 1000);
            ts.tv_nsec += (long)(d % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static dbt_res sink_init(struct dbt_sched *s, int type, const char *target)
{
    dbt_res res = DBT_OK;
    struct sink *k = &s->sinks[s->n_sinks];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->target = target;
    size_t n = strlen(target) + 16;
    k->key = malloc(n);
    DBT_ENSURE(k->key != NULL, NOMEM, "out of memory");
    snprintf(k->key, n, "%s:%s", type == SINK_COMMAND ? "command" : "webhook", target);
    s->n_sinks++;
    bool found = false;
    DBT_TRY(dbt_ctl_notify_mark_get(s->ctl, k->key, &k->last_id, &found));
    if (!found) {
        /* a new sink starts with what happens from now on, not the whole history */
        DBT_TRY(dbt_ctl_events_max_id(s->ctl, &k->last_id));
        DBT_TRY(dbt_ctl_notify_mark_put(s->ctl, k->key, k->last_id));
        dbt_info("notify: new %s; delivering events after %lld",
                 type == SINK_COMMAND ? "notify command" : "webhook", (long long)k->last_id);
    } else {
        dbt_info("notify: %s resumes after event %lld",
                 type == SINK_COMMAND ? "notify command" : "webhook", (long long)k->last_id);
    }
out:
    return res;
}

dbt_res dbt_sched_start(const struct dbt_sched_opts *o, struct dbt_sched **out)
{
    dbt_res res = DBT_OK;
    *out = NULL;
    struct dbt_sched *s = calloc(1, sizeof *s);
    DBT_ENSURE(s != NULL, NOMEM, "out of memory");
    s->o = *o;
    if (s->o.interval_ms == 0) {
        s->o.interval_ms = 60000;
    }
    if (s->o.notify_timeout_ms == 0) {
        s->o.notify_timeout_ms = 30000;
    }
    if (s->o.retry_min_ms == 0) {
        s->o.retry_min_ms = 1000;
    }
    if (s->o.retry_max_ms == 0) {
        s->o.retry_max_ms = 300000;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    struct dbt_ctl_opts co = *o->ctl;
    co.read_only = 0;
    DBT_TRY(dbt_ctl_open(&co, &s->ctl));
    if (o->notify_webhook) {
        DBT_ENSURE(curl_global_init(CURL_GLOBAL_DEFAULT) == 0, IO, "cannot initialize libcurl");
    }
    if (o->notify_command) {
        DBT_TRY(sink_init(s, SINK_COMMAND, o->notify_command));
    }
    if (o->notify_webhook) {
        DBT_TRY(sink_init(s, SINK_WEBHOOK, o->notify_webhook));
    }
    int rc = pthread_create(&s->thread, NULL, run, s);
    DBT_ENSURE(rc == 0, IO, "scheduler: cannot start its thread: %s", strerror(rc));
    s->started = true;
    *out = s;
    s = NULL;
out:
    dbt_sched_stop(s);
    return res;
}

void dbt_sched_stop(struct dbt_sched *s)
{
    if (s == NULL) {
        return;
    }
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < s->n_sinks; i++) {
        free(s->sinks[i].key);
    }
    dbt_ctl_close(s->ctl);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
