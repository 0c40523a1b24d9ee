/*
 * cli.c - the command table walk, option parsing and help of `dbtls` (see cli.h and cmd.h).
 *
 * Shape of a command line: dbtls [GLOBAL...] NOUN [SUBNOUN] VERB [POSITIONAL] [OPTIONS...].
 * Command words are matched against the tables of the handler files; what follows is parsed
 * with the command's own option table plus the global options. Every malformed line is a usage
 * error (exit 2) found before anything touches the state directory.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/statedir.h"
#include "dbtls_config.h"
#include "cli/cmd.h"

static const struct dbt_cli_opt global_opts[] = {
    {"state-dir", "DIR",
     "state directory (default $DBTLS_STATE_DIR, else $XDG_DATA_HOME/dbtls or "
     "~/.local/share/dbtls)",
     false, false},
    {"format", "FORMAT", "output format: table (default) or json", false, false},
    {"master-key-command", "CMD", "run CMD (sh -c) to obtain the master key instead of master.key",
     false, false},
    {"admin-socket", "PATH", "dbtlsd admin socket (default <state-dir>/admin.sock)", false, false},
    {"server", "URL",
     "run the command on the dbtlsd at URL (https://host:port) through its admin "
     "API",
     false, false},
    {"admin-cert", "FILE", "with --server: admin client certificate (dbtls admin-certs create)",
     false, false},
    {"admin-key", "FILE", "with --server: its private key", false, false},
    {"admin-ca", "FILE", "with --server: the admin CA that signed the daemon's certificate", false,
     false},
    {"help", NULL, "show help", false, false},
    {NULL, NULL, NULL, false, false},
};

static const struct dbt_cli_cmd *const tables[] = {
    dbt_cli_cmds_general,     dbt_cli_cmds_instances, dbt_cli_cmds_check, dbt_cli_cmds_ssl,
    dbt_cli_cmds_connections, dbt_cli_cmds_admin,     dbt_cli_cmds_apply,
};

#define FOREACH_CMD(var)                                                                           \
    for (size_t t_ = 0; t_ < DBT_ARRAY_LEN(tables); t_++)                                          \
        for (const struct dbt_cli_cmd *var = tables[t_]; var->path; var++)

/* Whether `path` starts with the words in `prefix` (a whole-word prefix; "" matches all). */
static bool path_has_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    if (n == 0) {
        return true;
    }
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == ' ');
}

static const struct dbt_cli_cmd *find_exact(const char *path)
{
    FOREACH_CMD(cmd)
    {
        if (strcmp(cmd->path, path) == 0) {
            return cmd;
        }
    }
    return NULL;
}

static bool is_group(const char *prefix)
{
    FOREACH_CMD(cmd)
    {
        if (path_has_prefix(cmd->path, prefix) && strlen(cmd->path) > strlen(prefix)) {
            return true;
        }
    }
    return false;
}

static const struct dbt_cli_opt *find_opt(const struct dbt_cli_opt *opts, const char *name,
                                          size_t n)
{
    for (; opts && opts->name; opts++) {
        if (strlen(opts->name) == n && strncmp(opts->name, name, n) == 0) {
            return opts;
        }
    }
    return NULL;
}

/* "usage: dbtls ssl client-certs create CERT_NAME --instance NAME [options]" */
static void print_usage_line(FILE *f, const struct dbt_cli_cmd *cmd)
{
    fprintf(f, "usage: dbtls %s", cmd->path);
    if (cmd->positional) {
        fprintf(f, cmd->positional_optional ? " [%s]" : " %s", cmd->positional);
    }
    for (const struct dbt_cli_opt *o = cmd->opts; o && o->name; o++) {
        if (o->required) {
            fprintf(f, " --%s %s", o->name, o->metavar ? o->metavar : "");
        }
    }
    fprintf(f, " [options]\n");
}

static void print_opt(FILE *f, const struct dbt_cli_opt *o)
{
    char left[64];

    snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
    fprintf(f, "  %-28s %s%s\n", left, o->help, o->required ? " (required)" : "");
}

static void print_cmd_help(const struct dbt_cli_cmd *cmd)
{
    print_usage_line(stdout, cmd);
    printf("\n%s\n", cmd->summary);
    if (cmd->opts && cmd->opts->name) {
        printf("\noptions:\n");
        for (const struct dbt_cli_opt *o = cmd->opts; o->name; o++) {
            if (!o->hidden) {
                print_opt(stdout, o);
            }
        }
    }
    printf("\nglobal options:\n");
    for (const struct dbt_cli_opt *o = global_opts; o->name; o++) {
        if (!(cmd->own_format && strcmp(o->name, "format") == 0)) {
            print_opt(stdout, o);
        }
    }
}

/* Lists every command under `prefix` ("" = all). */
static void print_group_help(FILE *f, const char *prefix)
{
    if (prefix[0] == '\0') {
        fprintf(f,
                "dbtls %s - SSL/TLS for self-hosted PostgreSQL and MySQL/MariaDB, as managed "
                "databases give it\n\n",
                DBTLS_VERSION);
        fprintf(f, "usage: dbtls [global options] COMMAND [ARGS] [options]\n\ncommands:\n");
    } else {
        fprintf(f, "usage: dbtls %s COMMAND [ARGS] [options]\n\ncommands:\n", prefix);
    }
    FOREACH_CMD(cmd)
    {
        if (path_has_prefix(cmd->path, prefix)) {
            char left[96];
            snprintf(left, sizeof(left), "%s%s%s%s%s", cmd->path, cmd->positional ? " " : "",
                     cmd->positional && cmd->positional_optional ? "[" : "",
                     cmd->positional ? cmd->positional : "",
                     cmd->positional && cmd->positional_optional ? "]" : "");
            fprintf(f, "  %-44s %s\n", left, cmd->summary);
        }
    }
    if (prefix[0] == '\0') {
        fprintf(f, "\nglobal options:\n");
        for (const struct dbt_cli_opt *o = global_opts; o->name; o++) {
            print_opt(f, o);
        }
    }
    fprintf(f, "\nRun 'dbtls %s%sCOMMAND --help' for a command's options.\n", prefix,
            prefix[0] ? " " : "");
}

int dbt_cli_usage_error(const struct dbt_cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "dbtls: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd) {
        print_usage_line(stderr, cmd);
    } else {
        fprintf(stderr, "usage: dbtls [global options] COMMAND [ARGS] [options] (dbtls --help "
                        "lists the commands)\n");
    }
    return 2;
}

int dbt_cli_fail(dbt_res r)
{
    const char *msg = dbt_errmsg();

    /* One line, always: a message carrying a newline (e.g. from a file name) is flattened. */
    fputs("dbtls: ", stderr);
    for (const char *p = msg[0] ? msg : dbt_err_desc(r.code); *p; p++) {
        fputc(*p == '\n' || *p == '\r' ? ' ' : *p, stderr);
    }
    fputc('\n', stderr);
    return dbt_err_exit_code(r);
}

const char *dbt_cli_get(const struct dbt_cli *c, const char *name)
{
    const char *v = NULL;

    for (size_t i = 0; i < c->n_values; i++) {
        if (strcmp(c->values[i].name, name) == 0) {
            v = c->values[i].value;
        }
    }
    return v;
}

bool dbt_cli_has(const struct dbt_cli *c, const char *name)
{
    for (size_t i = 0; i < c->n_values; i++) {
        if (strcmp(c->values[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

dbt_res dbt_cli_get_int(const struct dbt_cli *c, const char *name, int64_t min, int64_t max,
                        int64_t *out)
{
    const char *s = dbt_cli_get(c, name);
    char *end;
    long long v;

    if (!s) {
        return DBT_OK;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return dbt_fail(DBT_E_USAGE,
                        "invalid value \"%s\" for --%s: expected an integer from %lld to %lld", s,
                        name, (long long)min, (long long)max);
    }
    *out = v;
    return DBT_OK;
}

dbt_res dbt_cli_ctl(struct dbt_cli *c, struct dbt_ctl **out)
{
    if (!c->ctl) {
        struct dbt_ctl_opts opts = {
            .state_dir = c->state_dir,
            .master_key_command = c->master_key_command,
            .read_only = 0,
        };
        dbt_res r = dbt_ctl_open(&opts, &c->ctl);
        if (!dbt_ok(r)) {
            c->ctl = NULL;
            return r;
        }
    }
    *out = c->ctl;
    return DBT_OK;
}

/* --state-dir, else the shared default (ctl/statedir.h: DBTLS_STATE_DIR, XDG, ~/.local/share). */
static int resolve_state_dir(struct dbt_cli *c)
{
    if (c->state_dir) {
        if (c->state_dir[0] == '\0') {
            return dbt_cli_usage_error(c->cmd, "--state-dir must not be empty");
        }
        return 0;
    }
    dbt_res r = dbt_ctl_default_state_dir(&c->state_dir_owned);
    if (!dbt_ok(r)) {
        fprintf(stderr, "dbtls: %s\n", dbt_errmsg());
        return 1;
    }
    c->state_dir = c->state_dir_owned;
    return 0;
}

/* Applies a global option. Returns 0, or an exit code (2) after reporting a usage error. */
static int set_global(struct dbt_cli *c, const struct dbt_cli_opt *o, const char *value)
{
    if (strcmp(o->name, "state-dir") == 0) {
        c->state_dir = value;
    } else if (strcmp(o->name, "format") == 0) {
        c->format_raw = value;
    } else if (strcmp(o->name, "master-key-command") == 0) {
        c->master_key_command = value;
    } else if (strcmp(o->name, "admin-socket") == 0) {
        c->admin_socket = value;
    } else if (strcmp(o->name, "server") == 0) {
        c->server = value;
    } else if (strcmp(o->name, "admin-cert") == 0) {
        c->admin_cert = value;
    } else if (strcmp(o->name, "admin-key") == 0) {
        c->admin_key = value;
    } else if (strcmp(o->name, "admin-ca") == 0) {
        c->admin_ca = value;
    }
    return 0;
}

/*
 * Splits argv[*i] as an option: "--name=value", or "--name" with the value in the next argument
 * when the option takes one. The command's options are searched first, then the global ones.
 * Returns 0 and sets opt, value and is_global, or 2 after a usage error.
 */
static int take_option(const struct dbt_cli_cmd *cmd, const struct dbt_cli_opt *cmd_opts, int argc,
                       char **argv, int *i, const struct dbt_cli_opt **opt, const char **value,
                       bool *is_global)
{
    const char *arg = argv[*i];
    const char *name, *eq;
    size_t n;
    const struct dbt_cli_opt *o;

    if (strcmp(arg, "-h") == 0) {
        arg = "--help";
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        return dbt_cli_usage_error(cmd, "unknown option '%s'", arg);
    }
    name = arg + 2;
    eq = strchr(name, '=');
    n = eq ? (size_t)(eq - name) : strlen(name);
    o = find_opt(cmd_opts, name, n);
    *is_global = false;
    if (!o) {
        o = find_opt(global_opts, name, n);
        *is_global = o != NULL;
    }
    if (!o) {
        return dbt_cli_usage_error(cmd, "unknown option '--%.*s'", (int)n, name);
    }
    if (!o->metavar) {
        if (eq) {
            return dbt_cli_usage_error(cmd, "option '--%s' takes no value", o->name);
        }
        *value = NULL;
    } else if (eq) {
        *value = eq + 1;
    } else {
        if (*i + 1 >= argc) {
            return dbt_cli_usage_error(cmd, "option '--%s' needs a value (%s)", o->name,
                                       o->metavar);
        }
        *value = argv[++*i];
    }
    *opt = o;
    return 0;
}

int dbt_cli_main(int argc, char **argv)
{
    struct dbt_cli c = {0};
    char prefix[128] = "";
    int i = 1, rc = 0;
    bool help = false, only_positional = false;
    const struct dbt_cli_cmd *cmd = NULL;

    /* "dbtls help instances create" = "dbtls instances create --help" (as gcloud help). */
    if (argc > 1 && strcmp(argv[1], "help") == 0) {
        help = true;
        i = 2;
    }

    /* 1. Global options and command words. */
    while (i < argc) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] != '\0') {
            const struct dbt_cli_opt *o;
            const char *value;
            bool is_global;
            if (strcmp(a, "--version") == 0) {
                printf("dbtls %s\n", DBTLS_VERSION);
                return 0;
            }
            if (strcmp(a, "--") == 0) {
                break;
            }
            /* An option after a complete command word belongs to the command. */
            if (find_exact(prefix)) {
                break;
            }
            rc = take_option(NULL, NULL, argc, argv, &i, &o, &value, &is_global);
            if (rc != 0) {
                return rc;
            }
            if (strcmp(o->name, "help") == 0) {
                help = true;
            } else {
                set_global(&c, o, value);
            }
            i++;
            continue;
        }
        char next[sizeof(prefix)];
        int n = snprintf(next, sizeof(next), "%s%s%s", prefix, prefix[0] ? " " : "", a);
        if (n < 0 || (size_t)n >= sizeof(next) || !(find_exact(next) || is_group(next))) {
            if (find_exact(prefix)) {
                break; /* a positional argument */
            }
            return dbt_cli_usage_error(NULL, "unknown command '%s%s%s'", prefix,
                                       prefix[0] ? " " : "", a);
        }
        memcpy(prefix, next, sizeof(prefix));
        i++;
    }
    cmd = find_exact(prefix);
    if (!cmd) {
        if (help) {
            print_group_help(stdout, prefix);
            return 0;
        }
        if (prefix[0] == '\0') {
            return dbt_cli_usage_error(NULL, "missing command");
        }
        fprintf(stderr, "dbtls: '%s' needs a command\n", prefix);
        print_group_help(stderr, prefix);
        return 2;
    }
    if (help) {
        print_cmd_help(cmd);
        return 0;
    }
    c.cmd = cmd;

    /* 2. The command's positional argument and options. */
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!only_positional && strcmp(a, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (!only_positional && a[0] == '-' && a[1] != '\0') {
            const struct dbt_cli_opt *o;
            const char *value;
            bool is_global;
            rc = take_option(cmd, cmd->opts, argc, argv, &i, &o, &value, &is_global);
            if (rc != 0) {
                return rc;
            }
            if (is_global && strcmp(o->name, "help") == 0) {
                print_cmd_help(cmd);
                return 0;
            }
            if (is_global) {
                set_global(&c, o, value);
                continue;
            }
            if (cmd->own_format && strcmp(o->name, "format") == 0) {
                c.format_raw = value;
            }
            if (c.n_values == DBT_CLI_MAX_VALUES) {
                return dbt_cli_usage_error(cmd, "too many options");
            }
            c.values[c.n_values].name = o->name;
            c.values[c.n_values].value = value;
            c.n_values++;
            continue;
        }
        if (cmd->positional && !c.positional) {
            c.positional = a;
            continue;
        }
        return dbt_cli_usage_error(cmd, "unexpected argument '%s'", a);
    }
    if (cmd->positional && !cmd->positional_optional && !c.positional) {
        return dbt_cli_usage_error(cmd, "missing %s", cmd->positional);
    }
    for (const struct dbt_cli_opt *o = cmd->opts; o && o->name; o++) {
        if (o->required && !dbt_cli_has(&c, o->name)) {
            return dbt_cli_usage_error(cmd, "missing required option --%s", o->name);
        }
    }
    if (!cmd->own_format && c.format_raw) {
        if (strcmp(c.format_raw, "json") == 0) {
            c.format = DBT_CLI_FMT_JSON;
        } else if (strcmp(c.format_raw, "table") != 0) {
            return dbt_cli_usage_error(cmd, "unknown format '%s': expected table or json",
                                       c.format_raw);
        }
    }
    if (!c.master_key_command) {
        const char *env = getenv("DBTLS_MASTER_KEY_COMMAND");
        c.master_key_command = env && env[0] ? env : NULL;
    }
    rc = resolve_state_dir(&c);
    if (rc != 0) {
        return rc;
    }

    /* 3. Run. */
    rc = c.server ? dbt_cli_remote_run(&c) : cmd->run(&c);
    fflush(stdout);
    if (ferror(stdout) && rc == 0) {
        fprintf(stderr, "dbtls: cannot write to standard output: %s\n", strerror(errno));
        rc = 1;
    }
    if (c.ctl) {
        dbt_ctl_close(c.ctl);
    }
    free(c.state_dir_owned);
    return rc;
}
