/*
 * dbtls.c - main of the `dbtls` command; everything else is in src/cli.
 */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return dbt_cli_main(argc, argv);
}
