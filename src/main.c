/*
 * main.c - argv -> command; nothing else.
 */
#include "compat.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"serve", zn_cli_serve, "run the server (FWP, engine, store)"},
    {"work", zn_cli_work, "fetch and run jobs (a worker process)"},
    {"push", zn_cli_push, "push a job and print its jid"},
    {"status", zn_cli_status, "queues and their jobs by state"},
    {"failed", zn_cli_failed,
     "list, show, retry, forget, flush, prune dead jobs"},
    {"queue", zn_cli_queue, "pause, resume or clear a queue"},
    {"workers", zn_cli_workers, "workers: supervisor, pid, queues, job, rss"},
    {"restart", zn_cli_restart, "replace every worker after its job"},
    {"pause", zn_cli_pause, "stop a supervisor's workers after their job"},
    {"continue", zn_cli_continue, "start paused supervisors' workers again"},
    {"terminate", zn_cli_terminate, "stop the server, letting jobs finish"},
    {"migrate", zn_cli_migrate, "bring the database schema up to date"},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: zenith COMMAND [ARGS] (COMMAND --help for more)\n\n");
    for (size_t i = 0; i < ZN_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < ZN_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "zenith: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
