/*
 * supervisor_int.h - what supervisor.c (processes), balance.c (how many
 * run for each queue) and control.c (restart, pause, continue, the list
 * of workers) share. Not for use outside src/supervisor/.
 *
 * A block (one [supervisor] section) owns a fixed range of slots in the
 * supervisor's one array of children: `processes` slots with balance =
 * off or simple, `max_processes` with auto. A slot is active when the
 * block wants a process in it; an active slot whose process ends gets a
 * new one, an inactive slot's process is not replaced. Invariant: a slot
 * with pid 0 and active false is free for the balancer to take.
 */
#ifndef ZN_SUPERVISOR_INT_H
#define ZN_SUPERVISOR_INT_H

#include "compat.h"

#include <stdbool.h>
#include <sys/types.h>

#include "fwp/proto.h"
#include "supervisor/supervisor.h"

struct event;

struct zn__block {
    const struct zn_supervisor_conf *conf;
    char **queues;               /* conf->queues split, nq of them */
    size_t nq;
    size_t first, n;             /* its slots: children[first .. first+n) */
    bool paused;                 /* zenith pause: no process runs */
    int64_t balanced_ms;         /* monotonic time of the last step */
    int64_t *done;               /* per queue: done count then, -1 unknown */
    int64_t *avg_ms;             /* per queue: estimated runtime of a job */
};

struct zn__child {
    struct zn_supervisor *sv;
    struct zn__block *blk;
    const struct zn_supervisor_conf *conf;
    int slot;                    /* 1.. inside its block */
    size_t qi;                   /* its queue (balance simple|auto) */
    const char *queues;          /* what it fetches: "a,b" or one queue */
    bool active;                 /* the block wants a process here */
    unsigned generation;
    pid_t pid;                   /* 0 = not running */
    char wid[ZN_FWP_WID_MAX + 1];
    int64_t started_ms;          /* monotonic */
    int64_t started_wall_ms;
    int fast_deaths;             /* in a row, for the restart delay */
    bool retiring;               /* asked to finish its job and exit */
    bool draining;               /* terminate: SIGTERM when kill fires */
    struct event *restart;
    struct event *fallback;
    struct event *quit;          /* max_time */
    struct event *kill;          /* grace after SIGTERM on shutdown */
};

struct zn_supervisor {
    struct event_base *base;
    struct zn_engine *engine;
    struct zn_fwp_server *fwp;
    const struct zn_supervisor_confs *confs;
    char exe[4096];              /* zenith-work, beside zenith */
    char *server;
    char *config;
    char **envp;                 /* environ's strings + our password one */
    char *pw_env;                /* "ZENITH_PASSWORD=..." (owned, wiped) */
    struct zn__block *blocks;
    size_t nblocks;
    struct zn__child *children;
    size_t nchildren;
    struct event *sigchld;
    struct event *balance;       /* periodic: balance.c */
    bool stopping;
};

/* Starts a process in slot c now (supervisor.c). */
void zn__supervisor_spawn(struct zn__child *c);

/*
 * Asks c's process to finish its job and exit (SIGTSTP; it fetches no
 * more). The slot gets a new process afterwards only while it is active.
 */
void zn__supervisor_retire(struct zn__child *c, const char *why);

/* True when c's worker holds no job (it may be starting, or fetching). */
bool zn__supervisor_idle(struct zn_supervisor *s, const struct zn__child *c);

/* One balancing step for every auto block whose cooldown is over. */
void zn__balance_run(struct zn_supervisor *s, int64_t now_ms);

/* Activates the first slots of a block as its balance mode says. */
void zn__balance_initial(struct zn__block *b, struct zn__child *slots);

/*
 * The pure part of balance = auto, for tests. For nq queues with pending
 * jobs, the estimated runtime of one job (ms) and the processes each has
 * now, fills delta[] with the processes to add (> 0) or take (< 0):
 * estimated wait = pending x runtime / processes; each queue's target is
 * its share of the total wait times max_total, kept within min_each..
 * max_total; no queue moves by more than max_shift, the total never goes
 * above max_total and no queue below min_each. With no wait anywhere,
 * every queue goes back towards min_each.
 */
void zn__balance_plan(size_t nq, const int64_t *pending,
                      const int64_t *avg_ms, const int *procs, int min_each,
                      int max_total, int max_shift, int *delta);

#endif
