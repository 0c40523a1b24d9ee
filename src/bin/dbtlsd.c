/*
 * dbtlsd.c - main of the TLS front daemon: parses the command line, opens the control plane
 * read-only, starts the front (workers, listeners) and the admin socket, prints "dbtlsd: ready"
 * once everything listens, and runs until SIGTERM/SIGINT (graceful) with SIGHUP reloading.
 */
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "base/log.h"
#include "base/sdnotify.h"
#include "ctl/runtime.h"
#include "ctl/statedir.h"
#include "dbtls_config.h"
#include "front/front.h"
#include "front/stats.h"
#include "sched/scheduler.h"
#include "tls/tls.h"

/*
 * Once the sessions are gone, stopping is joining threads: the front's loader, the scheduler and
 * the admin API, each of which may be waiting for a store that does not answer (up to 20 s per
 * call). Past EXIT_WAIT_S the process leaves without them: the store holds no half operation
 * (SQLite's journal and PostgreSQL's transactions roll an interrupted one back).
 */
#define EXIT_WAIT_S 3

static void *exit_watchdog(void *arg)
{
    struct timespec ts = {.tv_sec = EXIT_WAIT_S};
    while (nanosleep(&ts, &ts) != 0) {
    }
    dbt_warn("dbtlsd: stopped without waiting any longer for the store (it does not answer)");
    _exit((int)(intptr_t)arg);
}

static void arm_exit_watchdog(int rc)
{
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, exit_watchdog, (void *)(intptr_t)rc) != 0) {
        dbt_warn("dbtlsd: no exit watchdog: stopping waits for the store");
    }
    pthread_attr_destroy(&a);
}

/*
 * Each session holds two descriptors, and a shell's soft limit (1,024) would stop a front at about
 * 500 clients with the hard limit far above: lift the soft limit to the hard one, as nginx's
 * worker_rlimit_nofile or Go's runtime do (epoll has no FD_SETSIZE). The systemd unit sets
 * LimitNOFILE=65536 on both.
 */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = before;
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY) {
        dbt_info("file descriptors: no limit");
    } else if (rl.rlim_cur != before) {
        dbt_info("file descriptors: up to %llu (raised from %llu, the soft limit)",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)before);
    } else {
        dbt_info("file descriptors: up to %llu", (unsigned long long)rl.rlim_cur);
    }
}

#define MAX_PROXY_FROM 64

/* --proxy-protocol-from's comma list (the option may be repeated), appended to list. */
static bool parse_cidrs(const char *arg, struct dbt_net_cidr *list, size_t *n)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf)) {
        fprintf(stderr, "dbtlsd: --proxy-protocol-from: list too long\n");
        return false;
    }
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_PROXY_FROM) {
            fprintf(stderr, "dbtlsd: --proxy-protocol-from: more than %d ranges\n", MAX_PROXY_FROM);
            return false;
        }
        if (!dbt_ok(dbt_net_cidr_parse(t, &list[*n]))) {
            fprintf(stderr, "dbtlsd: --proxy-protocol-from: %s\n", dbt_errmsg());
            return false;
        }
        (*n)++;
    }
    if (*n == 0) {
        fprintf(stderr, "dbtlsd: --proxy-protocol-from: \"%s\" names no address range\n", arg);
        return false;
    }
    return true;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: dbtlsd [--state-dir DIR] [--workers N] [--admin-socket PATH]\n"
               "              [--auth-timeout SECONDS] [--shutdown-timeout SECONDS]\n"
               "              [--master-key-command CMD] [--version]\n"
               "  --state-dir DIR          state directory (default $DBTLS_STATE_DIR, else\n"
               "                           $XDG_DATA_HOME/dbtls or ~/.local/share/dbtls)\n"
               "  --workers N              worker threads (default: number of cores)\n"
               "  --admin-socket PATH      admin API socket (default DIR/admin.sock)\n"
               "  --auth-timeout S         pre-authentication deadline (default 60)\n"
               "  --shutdown-timeout S     SIGTERM: wait this long for sessions (default 30)\n"
               "  --drain-delay S          SIGTERM: first fail health checks and keep accepting\n"
               "                           this long (default 0)\n"
               "  --backend-dns-interval S a backend named by host name is looked up again this\n"
               "                           often, new connections follow it (default 15; 0: at\n"
               "                           reloads only)\n"
               "  --proxy-protocol-from CIDR[,CIDR...]\n"
               "                           connections from these load balancers start with a\n"
               "                           PROXY protocol header (v1 or v2) naming the client\n"
               "  --log-connections        log each authenticated session: user, database, TLS,\n"
               "                           certificate identity, client (PostgreSQL's setting)\n"
               "  --log-disconnections     log each such session's end and its duration\n"
               "  --tcp-keepalives-idle S, --tcp-keepalives-interval S, --tcp-keepalives-count N,\n"
               "  --tcp-user-timeout MS    TCP keepalive of client and backend connections, as\n"
               "                           PostgreSQL's settings of those names (keepalive is\n"
               "                           always on; 0 or absent: the system's timings)\n"
               "  --health-listen HOST:PORT serve GET /healthz, /healthz/INSTANCE and /metrics\n"
               "                           over plain HTTP (read-only, for load balancers)\n"
               "  --health-user NAME       MySQL/MariaDB health probes log in as NAME (no\n"
               "                           password, no privileges) instead of stopping at\n"
               "                           the greeting, which servers count as an aborted\n"
               "                           connection\n"
               "  --master-key-command CMD obtain the master key from CMD's output\n"
               "  --tls-library NAME       openssl (default, or $DBTLS_TLS_LIBRARY) or boringssl:\n"
               "                           the client-facing TLS (BoringSSL: less CPU per\n"
               "                           handshake; TLS 1.3 suites fixed)\n"
               "  --admin-listen HOST:PORT also serve the admin API over TCP with mutual TLS\n"
               "                           (client certificates from the admin CA)\n"
               "  --admin-cert-validity S  lifetime of that listener's server certificate\n"
               "                           (default 1 year; renewed at half-life, no restart)\n"
               "  --scheduler-interval S   automatic rotation / expiry check and notification\n"
               "                           tick (default 60; 0 = no scheduler)\n"
               "  --notify-command CMD     run CMD (/bin/sh -c) with each event as JSON on stdin\n"
               "  --notify-webhook URL     POST each event as JSON to URL\n");
}

static dbt_res load_cb(void *arg, const struct dbt_rt_config *prev, struct dbt_rt_config **out)
{
    return dbt_ctl_runtime_load(arg, prev, out);
}

static dbt_res counter_cb(void *arg, uint64_t *out)
{
    return dbt_ctl_change_counter(arg, out);
}

static dbt_res watch_open_cb(void *arg, int *fd)
{
    return dbt_ctl_watch_open(arg, fd);
}

static dbt_res watch_read_cb(void *arg, bool *changed)
{
    return dbt_ctl_watch_read(arg, changed);
}

static void watch_close_cb(void *arg)
{
    dbt_ctl_watch_close(arg);
}

/* The front's handshakes refused by clients for our certificate, per instance (scheduler). */
static size_t refusals_cb(void *arg, struct dbt_sched_refusal *out, size_t max)
{
    (void)arg;
    struct dbt_stats_snapshot st = {0};
    size_t n = 0;
    if (!dbt_stats_snapshot(&st)) {
        return 0;
    }
    for (size_t i = 0; i < st.n_hs && n < max; i++) {
        if (strcmp(st.hs[i].reason, "server_cert_refused") == 0) {
            snprintf(out[n].instance, sizeof out[n].instance, "%s", st.hs[i].instance);
            out[n++].n = st.hs[i].n;
        }
    }
    dbt_stats_snapshot_cleanup(&st);
    return n;
}

static bool parse_num(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    const char *state_dir = getenv("DBTLS_STATE_DIR");
    const char *admin_socket = NULL;
    const char *mkc = NULL;
    const char *admin_listen = NULL, *health_listen = NULL, *health_user = NULL;
    const char *notify_command = NULL, *notify_webhook = NULL;
    const char *tls_library = getenv("DBTLS_TLS_LIBRARY");
    long sched_interval = 60;
    long admin_cert_validity = 0;
    long workers = 0, auth_timeout = 60, shutdown_timeout = 30, drain_delay = 0;
    long ka_idle = 0, ka_interval = 0, ka_count = 0, user_timeout = 0;
    bool log_connections = false, log_disconnections = false;
    long dns_interval = 15;
    struct dbt_net_cidr proxy_from[MAX_PROXY_FROM];
    size_t n_proxy_from = 0;
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'w'},
        {"admin-socket", required_argument, NULL, 'a'},
        {"auth-timeout", required_argument, NULL, 't'},
        {"shutdown-timeout", required_argument, NULL, 'T'},
        {"master-key-command", required_argument, NULL, 'm'},
        {"admin-listen", required_argument, NULL, 'L'},
        {"health-listen", required_argument, NULL, 'H'},
        {"drain-delay", required_argument, NULL, 'D'},
        {"health-user", required_argument, NULL, 'U'},
        {"scheduler-interval", required_argument, NULL, 'S'},
        {"admin-cert-validity", required_argument, NULL, 'C'},
        {"notify-command", required_argument, NULL, 'N'},
        {"notify-webhook", required_argument, NULL, 'W'},
        {"tls-library", required_argument, NULL, 'l'},
        {"tcp-keepalives-idle", required_argument, NULL, 'k'},
        {"tcp-keepalives-interval", required_argument, NULL, 'i'},
        {"tcp-keepalives-count", required_argument, NULL, 'c'},
        {"tcp-user-timeout", required_argument, NULL, 'u'},
        {"log-connections", no_argument, NULL, 'c' + 256},
        {"proxy-protocol-from", required_argument, NULL, 'p' + 256},
        {"backend-dns-interval", required_argument, NULL, 'b' + 256},
        {"log-disconnections", no_argument, NULL, 'd' + 256},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state_dir = optarg;
            break;
        case 'w':
            if (!parse_num(optarg, 1, 1024, &workers)) {
                fprintf(stderr, "dbtlsd: --workers: \"%s\" is not a number from 1 to 1024\n",
                        optarg);
                return 2;
            }
            break;
        case 'a':
            admin_socket = optarg;
            break;
        case 't':
            if (!parse_num(optarg, 1, 86400, &auth_timeout)) {
                fprintf(stderr, "dbtlsd: --auth-timeout: \"%s\" is not a number of seconds\n",
                        optarg);
                return 2;
            }
            break;
        case 'T':
            if (!parse_num(optarg, 0, 86400, &shutdown_timeout)) {
                fprintf(stderr, "dbtlsd: --shutdown-timeout: \"%s\" is not a number of seconds\n",
                        optarg);
                return 2;
            }
            break;
        case 'm':
            mkc = optarg;
            break;
        case 'L':
            admin_listen = optarg;
            break;
        case 'H':
            health_listen = optarg;
            break;
        case 'U':
            /* MariaDB's user names are at most 80 characters (MySQL's 32) */
            if (optarg[0] == '\0' || strlen(optarg) > 80) {
                fprintf(stderr,
                        "dbtlsd: --health-user: \"%s\" is not a user name of 1 to 80 "
                        "characters\n",
                        optarg);
                return 2;
            }
            health_user = optarg;
            break;
        case 'D':
            if (!parse_num(optarg, 0, 3600, &drain_delay)) {
                fprintf(stderr,
                        "dbtlsd: --drain-delay: \"%s\" is not a number of seconds from 0 to 3600\n",
                        optarg);
                return 2;
            }
            break;
        case 'C':
            if (!parse_num(optarg, 10, 10L * 366 * 86400, &admin_cert_validity)) {
                fprintf(stderr,
                        "dbtlsd: --admin-cert-validity: \"%s\" is not a number of seconds from 10 "
                        "to 10 years\n",
                        optarg);
                return 2;
            }
            break;
        case 'S':
            if (!parse_num(optarg, 0, 86400, &sched_interval)) {
                fprintf(stderr,
                        "dbtlsd: --scheduler-interval: \"%s\" is not a number of seconds from 0 "
                        "to 86400\n",
                        optarg);
                return 2;
            }
            break;
        case 'N':
            notify_command = optarg;
            break;
        case 'W':
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0) {
                fprintf(stderr,
                        "dbtlsd: --notify-webhook: \"%s\" is not an http:// or https:// URL\n",
                        optarg);
                return 2;
            }
            notify_webhook = optarg;
            break;
        case 'l':
            tls_library = optarg;
            break;
        case 'c' + 256:
            log_connections = true;
            break;
        case 'b' + 256:
            if (!parse_num(optarg, 0, 86400, &dns_interval)) {
                fprintf(stderr,
                        "dbtlsd: --backend-dns-interval: \"%s\" is not a number of seconds from 0 "
                        "to 86400\n",
                        optarg);
                return 2;
            }
            break;
        case 'p' + 256:
            if (!parse_cidrs(optarg, proxy_from, &n_proxy_from)) {
                return 2;
            }
            break;
        case 'd' + 256:
            log_disconnections = true;
            break;
        case 'k':
        case 'i':
            if (!parse_num(optarg, 0, DBT_NET_KEEPALIVE_MAX_S,
                           c == 'k' ? &ka_idle : &ka_interval)) {
                fprintf(stderr,
                        "dbtlsd: --tcp-keepalives-%s: \"%s\" is not a number of seconds from 0 "
                        "to %d\n",
                        c == 'k' ? "idle" : "interval", optarg, DBT_NET_KEEPALIVE_MAX_S);
                return 2;
            }
            break;
        case 'c':
            if (!parse_num(optarg, 0, DBT_NET_KEEPALIVE_MAX_COUNT, &ka_count)) {
                fprintf(stderr,
                        "dbtlsd: --tcp-keepalives-count: \"%s\" is not a number from 0 to %d\n",
                        optarg, DBT_NET_KEEPALIVE_MAX_COUNT);
                return 2;
            }
            break;
        case 'u':
            if (!parse_num(optarg, 0, INT_MAX, &user_timeout)) {
                fprintf(stderr,
                        "dbtlsd: --tcp-user-timeout: \"%s\" is not a number of milliseconds "
                        "from 0 to %d\n",
                        optarg, INT_MAX);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dbtlsd %s\n", DBTLS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dbtlsd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    /* the same default as dbtls, so the daemon serves the store the command line changes */
    static char *state_dir_owned;
    if (state_dir == NULL || state_dir[0] == '\0') {
        if (!dbt_ok(dbt_ctl_default_state_dir(&state_dir_owned))) {
            fprintf(stderr, "dbtlsd: %s\n", dbt_errmsg());
            return 2;
        }
        state_dir = state_dir_owned;
    }
    char sockbuf[4096];
    if (admin_socket == NULL) {
        snprintf(sockbuf, sizeof(sockbuf), "%s/admin.sock", state_dir);
        admin_socket = sockbuf;
    }

    if (tls_library != NULL && tls_library[0] != '\0' &&
        (strcmp(tls_library, "openssl") != 0 && strcmp(tls_library, "boringssl") != 0)) {
        fprintf(stderr, "dbtlsd: --tls-library: \"%s\" is not openssl or boringssl\n", tls_library);
        return 2;
    }
    if (tls_library != NULL && tls_library[0] != '\0' &&
        !dbt_ok(dbt_tls_use_library(tls_library))) {
        fprintf(stderr, "dbtlsd: --tls-library %s: %s\n", tls_library, dbt_errmsg());
        return 1;
    }

    int rc = 1;
    struct dbt_ctl *ctl = NULL;
    struct dbt_front *front = NULL;
    struct dbt_admin *admin = NULL;
    struct dbt_sched *sched = NULL;
    if (sched_interval == 0 && (notify_command != NULL || notify_webhook != NULL)) {
        fprintf(stderr, "dbtlsd: --notify-command/--notify-webhook need the scheduler "
                        "(--scheduler-interval above 0)\n");
        return 2;
    }
    /* read-write: opening migrates an older store; the scheduler writes through its own handle */
    struct dbt_ctl_opts co = {
        .state_dir = state_dir, .master_key_command = mkc, .read_only = 0, .actor = "dbtlsd"};
    if (!dbt_ok(dbt_ctl_open(&co, &ctl))) {
        dbt_error("dbtlsd: %s", dbt_errmsg());
        fprintf(stderr, "dbtlsd: %s\n", dbt_errmsg());
        goto out;
    }
    struct dbt_front_opts fo = {
        .workers = (int)workers,
        .auth_timeout_ms = (uint64_t)auth_timeout * 1000,
        .shutdown_timeout_ms = shutdown_timeout == 0 ? 1 : (uint64_t)shutdown_timeout * 1000,
        .drain_delay_ms = (uint64_t)drain_delay * 1000,
        .log_connections = log_connections,
        .backend_dns_interval_s = (unsigned)dns_interval,
        .proxy_from = proxy_from,
        .n_proxy_from = n_proxy_from,
        .log_disconnections = log_disconnections,
        .tcp = {.keepalives_idle = (int)ka_idle,
                .keepalives_interval = (int)ka_interval,
                .keepalives_count = (int)ka_count,
                .user_timeout_ms = (int)user_timeout},
        .poll_ms = 500,
        .health_user = health_user,
        .load = load_cb,
        .free_config = dbt_rt_config_free,
        .counter = counter_cb,
        .watch_open = watch_open_cb,
        .watch_read = watch_read_cb,
        .watch_close = watch_close_cb,
        .arg = ctl,
    };
    raise_nofile();
    if (!dbt_ok(dbt_front_start(&fo, &front))) {
        fprintf(stderr, "dbtlsd: invalid configuration, not starting: %s\n", dbt_errmsg());
        goto out;
    }
    /* The admin API opens its own read-write control handles (one per listener thread). */
    struct dbt_ctl_opts aco = {.state_dir = state_dir, .master_key_command = mkc};
    struct dbt_admin_opts ao = {.front = front,
                                .socket_path = admin_socket,
                                .ctl = &aco,
                                .tcp_listen = admin_listen,
                                .health_listen = health_listen,
                                .tcp_cert_validity_secs = admin_cert_validity};
    if (!dbt_ok(dbt_admin_start_opts(&ao, &admin))) {
        fprintf(stderr, "dbtlsd: %s\n", dbt_errmsg());
        goto out;
    }
    dbt_info("client TLS: %s", dbt_tls_library_version());
    dbt_info("admin API on %s", admin_socket);
    if (health_listen != NULL) {
        dbt_info("health checks on http://%s (port %d): /healthz, /healthz/INSTANCE, /metrics",
                 health_listen, dbt_admin_health_port(admin));
    }
    if (admin_listen != NULL) {
        dbt_info("admin API on https://%s (port %d, mutual TLS)", admin_listen,
                 dbt_admin_tcp_port(admin));
    }
    if (sched_interval > 0) {
        /* after dbt_front_start: the thread inherits the blocked signals */
        struct dbt_sched_opts so = {.ctl = &co,
                                    .interval_ms = (uint64_t)sched_interval * 1000,
                                    .notify_command = notify_command,
                                    .notify_webhook = notify_webhook,
                                    .refusals = refusals_cb};
        if (!dbt_ok(dbt_sched_start(&so, &sched))) {
            fprintf(stderr, "dbtlsd: scheduler: %s\n", dbt_errmsg());
            goto out;
        }
        dbt_info("scheduler: every %ld s%s%s", sched_interval,
                 notify_command ? ", notify command" : "", notify_webhook ? ", webhook" : "");
    }
    dbt_info("dbtlsd: ready");
    dbt_sd_notify("READY=1");
    if (!dbt_ok(dbt_front_run(front))) {
        dbt_error("dbtlsd: %s", dbt_errmsg());
        arm_exit_watchdog(1);
        goto out;
    }
    arm_exit_watchdog(0);
    dbt_info("dbtlsd: stopped");
    rc = 0;
out:
    dbt_sched_stop(sched);
    dbt_admin_stop(admin);
    dbt_front_free(front);
    dbt_ctl_close(ctl);
    return rc;
}
