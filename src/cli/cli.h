/*
 * cli.h - the zenith commands. Each takes the arguments after its name
 * (argv[0] is the command) and returns the exit status: 0 ok, 1 failure,
 * 2 usage.
 */
#ifndef ZN_CLI_H
#define ZN_CLI_H

#include "compat.h"

int zn_cli_serve(int argc, char **argv);
int zn_cli_migrate(int argc, char **argv);
int zn_cli_work(int argc, char **argv);
int zn_cli_push(int argc, char **argv);
int zn_cli_status(int argc, char **argv);
int zn_cli_failed(int argc, char **argv);
int zn_cli_queue(int argc, char **argv);
int zn_cli_restart(int argc, char **argv);
int zn_cli_pause(int argc, char **argv);
int zn_cli_continue(int argc, char **argv);
int zn_cli_terminate(int argc, char **argv);
int zn_cli_workers(int argc, char **argv);

#endif
