/*
 * cli.h - the `dbtls` command: a table of "noun verb" commands, table-driven option parsing,
 * global options (--state-dir, --format, --master-key-command, --admin-socket) and output as a
 * table for people or JSON with stable field names (docs/cli.md). src/bin/dbtls.c only calls
 * dbt_cli_main; every operation itself lives in the control library (src/ctl).
 *
 * Exit status: 0 success, 1 operation error (one line "dbtls: <what and why>" on stderr),
 * 2 usage error (one line naming the problem, then a short usage line).
 */
#ifndef DBT_CLI_CLI_H
#define DBT_CLI_CLI_H

/* Runs one dbtls command line. Returns the process exit status. */
int dbt_cli_main(int argc, char **argv);

#endif
