/*
 * command.c - the `zenith work` command, run as zenith-work: flags and
 * environment to struct zn_worker_opts, the handler registry from the
 * built-ins and the config file, then zn_worker_run. Exit status 0 after
 * a clean stop, 1 when the server cannot be reached, 2 for usage and
 * config errors, 3 when the watchdog ended a job, 4 when the connection
 * broke while working (worker/exit.h).
 */
#include "compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fwp/proto.h"
#include "queue/job.h"
#include "worker/jobconf.h"
#include "worker/worker.h"

#define EXIT_USAGE 2
#define QUEUES_MAX 64   /* the server takes no more in one FETCH */

struct work_args {
    struct zn_worker_opts o;
    const char *queues_arg;
    const char *config;
    char *queue_buf;                 /* queues_arg, split in place */
    const char *queues[QUEUES_MAX];
};

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: zenith work [--server ADDR] [--password P] "
            "[--queues a,b,c]\n"
            "                   [--config FILE] [--wid ID] [--max-jobs N] "
            "[--memory MB]\n"
            "\n"
            "Fetches jobs from the queues (in this order; default: default),"
            " one at a\ntime, and runs the handler of each job's jobtype: "
            "the [job \"NAME\"]\nsections of the config (command = ... or "
            "url = ...) and the built-ins noop,\nsleep, fail, crash and grow"
            " (for tests and benchmarks).\n"
            "\n"
            "  --server ADDR   host:port or a Unix socket path "
            "(env ZENITH_SERVER,\n"
            "                  default 127.0.0.1:7419)\n"
            "  --password P    the server's password (env ZENITH_PASSWORD)\n"
            "  --queues a,b,c  queues to fetch from, first has priority\n"
            "  --config FILE   INI file with [job \"NAME\"] sections\n"
            "  --wid ID        worker id (default: random)\n"
            "  --max-jobs N    exit after N jobs (default: no limit)\n"
            "  --memory MB     exit after a job that leaves the RSS above "
            "MB\n"
            "  --supervisor S  the supervisor block running this worker "
            "(shown by\n"
            "                  zenith workers; set by zenith serve)\n"
            "\n"
            "SIGTERM or SIGINT: fail the running job as terminated and exit."
            "\nSIGTSTP: finish the running job, fetch no more, exit.\n");
}

/* Splits "a,b,c" into a->queues, checking each name. */
static int
split_queues(struct work_args *a)
{
    char *p;

    a->queue_buf = strdup(a->queues_arg);
    if (!a->queue_buf) {
        fprintf(stderr, "zenith: out of memory\n");
        return -1;
    }
    p = a->queue_buf;
    for (;;) {
        char *comma = strchr(p, ',');

        if (comma)
            *comma = '\0';
        if (!zn_job_queue_name_valid(p, strlen(p))) {
            fprintf(stderr, "zenith: --queues: '%s' does not match "
                    "[A-Za-z0-9_.:-]{1,100}\n", p);
            return -1;
        }
        if (a->o.nqueues == QUEUES_MAX) {
            fprintf(stderr, "zenith: --queues: more than %d queues\n",
                    QUEUES_MAX);
            return -1;
        }
        a->queues[a->o.nqueues++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    a->o.queues = a->queues;
    return 0;
}

static int
parse_count(const char *flag, const char *v, int64_t *out)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < 0 || *v < '0' || *v > '9') {
        fprintf(stderr, "zenith: %s: '%s' is not a whole number "
                "of 0 or more\n", flag, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* One "--flag VALUE" or "--flag=VALUE"; returns how many argv it used. */
static int
take_flag(struct work_args *a, int argc, char **argv, int i)
{
    static const char *const flags[] = {"--server", "--password", "--queues",
                                        "--config", "--wid", "--max-jobs",
                                        "--memory", "--supervisor"};
    const char *v = NULL, *eq = strchr(argv[i], '=');
    size_t len = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);

    for (size_t k = 0; k < ZN_ARRAY_LEN(flags); k++) {
        if (strlen(flags[k]) != len || strncmp(argv[i], flags[k], len) != 0)
            continue;
        v = eq ? eq + 1 : i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "zenith: %s: missing value\n", flags[k]);
            return -1;
        }
        switch (k) {
        case 0: a->o.server = v; break;
        case 1: a->o.password = v; break;
        case 2: a->queues_arg = v; break;
        case 3: a->config = v; break;
        case 4: a->o.wid = v; break;
        case 5:
            if (parse_count(flags[k], v, &a->o.max_jobs) < 0)
                return -1;
            break;
        case 6:
            if (parse_count(flags[k], v, &a->o.memory_mb) < 0)
                return -1;
            break;
        case 7: a->o.supervisor = v; break;
        }
        return eq ? 1 : 2;
    }
    fprintf(stderr, "zenith: work: unexpected argument '%s'\n", argv[i]);
    return -1;
}

/* 0 ready, 1 --help printed, -1 usage error (printed). */
static int
parse_args(struct work_args *a, int argc, char **argv)
{
    const char *lvl = getenv("ZENITH_LOG_LEVEL");
    int level;

    a->o.server = getenv("ZENITH_SERVER");
    a->o.password = getenv("ZENITH_PASSWORD");
    if (!a->o.server || !*a->o.server)
        a->o.server = "127.0.0.1:7419";
    a->queues_arg = "default";
    for (int i = 1; i < argc;) {
        int used;

        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        }
        used = take_flag(a, argc, argv, i);
        if (used < 0)
            return -1;
        i += used;
    }
    if (a->o.wid && (strlen(a->o.wid) > ZN_FWP_WID_MAX ||
                     !zn_job_jid_valid(a->o.wid, strlen(a->o.wid)))) {
        fprintf(stderr, "zenith: --wid: must be 1 to %d printable "
                "characters without spaces\n", ZN_FWP_WID_MAX);
        return -1;
    }
    if (lvl && *lvl) {
        level = zn_log_parse_level(lvl);
        if (level < 0) {
            fprintf(stderr, "zenith: env ZENITH_LOG_LEVEL: '%s' is not "
                    "debug, info, warn or error\n", lvl);
            return -1;
        }
        zn_log_set_level(level);
    }
    return split_queues(a);
}

int
zn_worker_command(int argc, char **argv)
{
    struct work_args a;
    struct zn_handler_registry reg;
    struct zn_err err;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = parse_args(&a, argc, argv);
    if (rc != 0) {
        free(a.queue_buf);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    if (zn_handler_registry_init(&reg, &err) < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        free(a.queue_buf);
        return 1;
    }
    rc = a.config ? zn_jobconf_load(&reg, a.config, &err) : 0;
    if (rc < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        rc = rc == ZN_ENOMEM ? 1 : EXIT_USAGE;
    } else {
        a.o.handlers = &reg;
        rc = zn_worker_run(&a.o, &err);
        if (rc)
            fprintf(stderr, "zenith: %s\n", err.msg);
        rc = rc == ZN_WORKER_LOST ? ZN_WORKER_EXIT_LOST : rc < 0 ? 1 : 0;
    }
    zn_handler_registry_release(&reg);
    free(a.queue_buf);
    return rc;
}
