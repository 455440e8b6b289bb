/*
 * conf.h - the supervisor blocks of the config file:
 *
 *   [supervisor "notifications"]
 *   queues = notifications,default   ; fetched in this order
 *   processes = 3                    ; or min_processes / max_processes
 *   balance = off                    ; off | simple | auto
 *   timeout = 300                    ; memory = 128 (MB), nice = 5, ...
 *
 * Each block becomes one struct zn_supervisor_conf; with no block at all
 * the seed's layout applies (default, notifications, reports: three
 * processes each). Errors read "file:line: message" (the line of the key,
 * or of the section header for rules about a whole block). Then the
 * environment: ZENITH_SUPERVISOR_<BLOCK>_<KEY> (upper case, any other
 * character than [A-Z0-9] as _) sets a key of a block read, with errors
 * as "env NAME: message".
 *
 * Non-goals here: the keys are parsed and checked, not acted on; what the
 * supervisor does with each is in supervisor.h. given records which of
 * tries, backoff, timeout and processes a block set itself: the first
 * three apply to jobs only then (else the server-wide options do).
 */
#ifndef ZN_SUPERVISOR_CONF_H
#define ZN_SUPERVISOR_CONF_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"
#include "queue/job.h"

#define ZN_SUPERVISOR_NAME_MAX 48   /* leaves room in a wid for "-N-GEN" */
#define ZN_SUPERVISOR_MAX 64        /* blocks in one file */

enum zn_supervisor_balance {
    ZN_SUPERVISOR_BALANCE_OFF,
    ZN_SUPERVISOR_BALANCE_SIMPLE,
    ZN_SUPERVISOR_BALANCE_AUTO,
};

/* Keys a block gave itself (the others are defaults). */
enum zn_supervisor_conf_given {
    ZN_SUPERVISOR_GIVEN_TRIES = 1 << 0,
    ZN_SUPERVISOR_GIVEN_BACKOFF = 1 << 1,
    ZN_SUPERVISOR_GIVEN_TIMEOUT = 1 << 2,
    ZN_SUPERVISOR_GIVEN_PROCESSES = 1 << 3,
};

struct zn_supervisor_conf {
    char name[ZN_SUPERVISOR_NAME_MAX + 1];
    char *queues;               /* "a,b,c", each a valid queue name */
    int processes;              /* what runs with balance = off */
    int min_processes;
    int max_processes;
    int balance;                /* enum zn_supervisor_balance */
    int balance_max_shift;
    int64_t balance_cooldown_ms;
    int tries;                  /* 1 + retries */
    int32_t backoff[ZN_BACKOFF_MAX];
    size_t nbackoff;
    int timeout_s;
    int64_t memory_mb;          /* 0 = no limit */
    int memory_hard_factor;     /* RLIMIT_AS = memory_mb x this */
    int nice;
    int64_t max_jobs;           /* 0 = no limit */
    int64_t max_time_ms;        /* 0 = no limit */
    int64_t sleep_ms;
    int quarantine_after;       /* crashes before a job is quarantined */
    int64_t grace_ms;           /* SIGTERM to SIGKILL on shutdown */
    unsigned given;             /* enum zn_supervisor_conf_given */
    int line;                   /* of the header; 0 for the defaults */
};

struct zn_supervisor_confs {
    struct zn_supervisor_conf *v;
    size_t n;
};

/* Fills c with the defaults of a block named name (queues = name). */
int zn_supervisor_conf_default(struct zn_supervisor_conf *c,
                               const char *name, struct zn_err *err);

/*
 * Reads the [supervisor "NAME"] blocks of the INI file at path (NULL: no
 * file) into out; when there is none, out gets the seed's three. Other
 * sections are skipped (config.c and jobconf.c read them). ZN_EINVAL
 * "path:line: message", ZN_ENOMEM. out is empty after a failure.
 */
int zn_supervisor_conf_load(struct zn_supervisor_confs *out,
                            const char *path, struct zn_err *err);

void zn_supervisor_confs_release(struct zn_supervisor_confs *c);

#endif
