/*
 * cmd.h - internal to src/cli: the command table entry, the parsed command line handed to each
 * handler, and the helpers handlers share (option lookup, opening the control library).
 *
 * A command is a path of words ("ssl client-certs create"), at most one positional argument
 * (e.g. NAME), and a NULL-terminated option table. The parser (args.c) accepts "--opt value" and
 * "--opt=value", global options anywhere after "dbtls", and "--" to end options. It reports
 * unknown options, missing values, missing required options and extra arguments as usage errors
 * (exit 2) before a handler runs, so handlers only see well-formed input.
 */
#ifndef DBT_CLI_CMD_H
#define DBT_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dbt_ctl;

enum dbt_cli_format { DBT_CLI_FMT_TABLE, DBT_CLI_FMT_JSON };

struct dbt_cli_opt {
    const char *name;    /* long name without "--" */
    const char *metavar; /* value placeholder ("NAME"); NULL = a flag without a value */
    const char *help;
    bool required;
    bool hidden; /* accepted but not listed in --help (documented in docs/cli.md) */
};

struct dbt_cli;

struct dbt_cli_cmd {
    const char *path;       /* "instances create" */
    const char *positional; /* "NAME" when the command takes one positional argument */
    bool positional_optional;
    const char *summary;
    const struct dbt_cli_opt *opts; /* terminated by an entry with name == NULL; may be NULL */
    int (*run)(struct dbt_cli *c);
    /* Set when --format selects a file format (bundle: pem|p7b) rather than table|json. */
    bool own_format;
};

#define DBT_CLI_MAX_VALUES 64

struct dbt_cli_value {
    const char *name;  /* option name as in the table */
    const char *value; /* NULL for flags */
};

struct dbt_cli {
    const struct dbt_cli_cmd *cmd;
    const char *state_dir;          /* resolved: --state-dir, DBTLS_STATE_DIR, XDG default */
    char *state_dir_owned;          /* freed at exit when the default was computed */
    const char *master_key_command; /* --master-key-command or DBTLS_MASTER_KEY_COMMAND */
    const char *admin_socket;       /* --admin-socket; NULL = <state_dir>/admin.sock */
    /* Remote mode (remote.c): --server https://host:port and the admin client certificate. */
    const char *server;
    const char *admin_cert;
    const char *admin_key;
    const char *admin_ca;
    const char *format_raw; /* --format value as given; NULL when absent */
    enum dbt_cli_format format;
    const char *positional;
    struct dbt_cli_value values[DBT_CLI_MAX_VALUES];
    size_t n_values;
    struct dbt_ctl *ctl; /* opened lazily by dbt_cli_ctl */
};

/* The last value of option `name`, or NULL when it was not given. */
const char *dbt_cli_get(const struct dbt_cli *c, const char *name);
/* Whether flag or option `name` was given. */
bool dbt_cli_has(const struct dbt_cli *c, const char *name);
/* Parses option `name` as an integer in [min, max]; *out untouched when absent. INVALID names
 * the option on a bad value. */
dbt_res dbt_cli_get_int(const struct dbt_cli *c, const char *name, int64_t min, int64_t max,
                        int64_t *out) DBT_WUR;

/* Opens the control library on the state directory (once per run). */
dbt_res dbt_cli_ctl(struct dbt_cli *c, struct dbt_ctl **out) DBT_WUR;

/* Reports a failed operation ("dbtls: <message>") and returns its exit code. */
int dbt_cli_fail(dbt_res r);

/* Prints "dbtls: <message>" and the command's usage line; returns 2. */
int dbt_cli_usage_error(const struct dbt_cli_cmd *cmd, const char *fmt, ...) DBT_PRINTF(2, 3);

/* Command tables of each handler file, terminated by a zeroed entry. */
extern const struct dbt_cli_cmd dbt_cli_cmds_general[];
extern const struct dbt_cli_cmd dbt_cli_cmds_instances[];
extern const struct dbt_cli_cmd dbt_cli_cmds_check[];
extern const struct dbt_cli_cmd dbt_cli_cmds_ssl[];
extern const struct dbt_cli_cmd dbt_cli_cmds_connections[];
extern const struct dbt_cli_cmd dbt_cli_cmds_apply[];

/* Remote mode (remote.c): runs the command through the admin API of the daemon at --server
 * (HTTPS with the admin client certificate) instead of on the local store; same output. */
int dbt_cli_remote_run(struct dbt_cli *c);
/* GET `path` from the daemon at c->server; *out is the parsed JSON of a 2xx reply. */
struct json_t;
dbt_res dbt_cli_remote_get_json(const struct dbt_cli *c, const char *path,
                                struct json_t **out) DBT_WUR;
/* method `path` (body: JSON or NULL) on the daemon at c->server; *out is the parsed JSON of a
 * 2xx reply; another status is an error carrying the daemon's message. */
dbt_res dbt_cli_remote_json(const struct dbt_cli *c, const char *method, const char *path,
                            struct json_t *body, struct json_t **out) DBT_WUR;
/* `admin-certs create|list|revoke` (remote_certs.c; list and revoke also with --server). */
extern const struct dbt_cli_cmd dbt_cli_cmds_admin[];

/* `instances export` (cmd_export.c): its handler and options, listed in the instances table. */
extern const struct dbt_cli_opt dbt_cli_export_opts[];
int dbt_cli_run_export(struct dbt_cli *c);

#endif
