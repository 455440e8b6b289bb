/*
 * supervisor.c - children of `zenith serve`: spawn, watch, attribute
 * crashes, restart, stop.
 *
 * One flat array of struct zn__child holds every slot of every block
 * (supervisor_int.h); a slot keeps its events for its whole life and gets
 * a new process (and wid) each time it restarts. Invariant: child->pid is
 * not 0 exactly while the process has not been reaped. A slot's process
 * is replaced when it ends only while the slot is active and its block
 * not paused (balance.c and control.c change those).
 *
 * Ordering of a death. A dying child closes its sockets and becomes a
 * zombie together, so the FWP server may see the connections drop before
 * or after the loop delivers SIGCHLD. The jobs must be FAILed with what
 * killed the child, not released as "worker gone", so:
 *  - the server asks gone_cb when a worker's last connection closes; for
 *    a wid of a running child the answer is "mine": the jobs stay
 *    WORKING, and a fallback timer (FALLBACK_MS) is armed;
 *  - on reaping, the supervisor FAILs the jobs of the wid itself (with
 *    the signal or exit status, or "worker gone" after a clean exit);
 *  - when the fallback fires first (the child lives on without a
 *    connection, or hangs on its way out), the jobs are released as
 *    "worker gone" then, as the server would have done.
 * Rejected: re-reading the jobs after the fact and rewriting their
 * attempt records (the store has no such update, and the job may already
 * run elsewhere); blocking waitpid in the gone path (a child that closed
 * its connection may live on).
 *
 * Quarantine counts come from the job's own attempt records (those whose
 * outcome is a signal or an exit status, which only this file writes), so
 * they survive a restart of the server and are exact for any number of
 * jobs.
 */
#include "compat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/signame.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/path.h"
#include "fwp/proto.h"
#include "supervisor/supervisor_int.h"
#include "worker/exit.h"

#define FALLBACK_MS 5000          /* connection gone, process not reaped */
#define FAST_DEATH_MS 10000       /* a child that dies sooner backs off */
#define RESTART_DELAY_MAX_MS 60000
#define ARGV_MAX 24
#define BALANCE_TICK_MS 250

extern char **environ;

/* How a reaped child ended. */
struct death {
    int status;
    char what[32];               /* "SIGSEGV", "exit 1", "exit 0" */
    bool crash;                  /* its jobs get attribution */
    int64_t cpu_ms;
    int64_t rss_kb;
};

static void spawn(struct zn__child *c);

/* ---- names -------------------------------------------------------------- */

static void
describe(int status, const struct rusage *ru, struct death *d)
{
    d->status = status;
    d->cpu_ms = zn_clock_cpu_ms(ru);
    d->rss_kb = ru->ru_maxrss; /* kilobytes on Linux */
    if (WIFSIGNALED(status)) {
        const char *name = zn_signal_name(WTERMSIG(status));

        if (name)
            snprintf(d->what, sizeof(d->what), "%s", name);
        else
            snprintf(d->what, sizeof(d->what), "SIG%d", WTERMSIG(status));
        d->crash = true;
    } else {
        snprintf(d->what, sizeof(d->what), "exit %d", WEXITSTATUS(status));
        /*
         * A broken connection is not the doing of the job the worker may
         * hold, not started (a FETCH sent with the last ACK).
         */
        d->crash = WEXITSTATUS(status) != 0 &&
                   WEXITSTATUS(status) != ZN_WORKER_EXIT_TIMEOUT &&
                   WEXITSTATUS(status) != ZN_WORKER_EXIT_LOST;
    }
}

/* ---- crash counts and attribution ------------------------------------ */

/* An attempt that fail_crashed ended: "SIGSEGV", "SIG64", "exit 1". */
static bool
crash_outcome(const char *outcome)
{
    return outcome && (strncmp(outcome, "SIG", 3) == 0 ||
                       strncmp(outcome, "exit ", 5) == 0);
}

/*
 * How many workers jid has killed, this one included: its earlier
 * attempts that ended in a crash, plus one. If they cannot be read, this
 * crash alone counts (and the error is logged).
 */
static int
count_crash(struct zn_supervisor *s, const char *jid)
{
    struct zn_attempt *a = NULL;
    struct zn_err err;
    size_t na = 0;
    int n = 1;

    if (zn_engine_attempts(s->engine, jid, &a, &na, &err) < 0) {
        ZN_LOG(ZN_ERROR, "supervisor.attempts_unread", ZN_STR("jid", jid),
               ZN_STR("error", err.msg));
        return n;
    }
    for (size_t i = 0; i < na; i++)
        n += crash_outcome(a[i].outcome);
    zn_attempts_free(a, na);
    return n;
}

/* FAILs one job of a crashed child, quarantined at the limit. */
static void
fail_crashed(struct zn__child *c, const struct zn_job *job,
             const struct death *d, pid_t pid)
{
    struct zn_supervisor *s = c->sv;
    int n = count_crash(s, job->jid);
    struct zn_engine_failure f = {
        .outcome = d->what, .errtype = d->what, .cpu_ms = d->cpu_ms,
        .rss_kb = d->rss_kb,
        .quarantined = n >= c->conf->quarantine_after,
    };
    char msg[160];
    struct zn_err err;

    if (WIFSIGNALED(d->status))
        snprintf(msg, sizeof(msg), "worker %ld killed by %s", (long)pid,
                 d->what);
    else
        snprintf(msg, sizeof(msg), "worker %ld ended with %s", (long)pid,
                 d->what);
    if (f.quarantined)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
                 "; quarantined after %d crashed workers", n);
    f.message = msg;
    if (zn_engine_fail(s->engine, job->jid, c->wid, &f, &err) < 0) {
        ZN_LOG(ZN_ERROR, "supervisor.fail_failed", ZN_STR("jid", job->jid),
               ZN_STR("wid", c->wid), ZN_STR("error", err.msg));
        return;
    }
    ZN_LOG(f.quarantined ? ZN_WARN : ZN_INFO,
           f.quarantined ? "supervisor.job_quarantined"
                         : "supervisor.job_crashed",
           ZN_STR("jid", job->jid), ZN_STR("wid", c->wid),
           ZN_STR("outcome", d->what), ZN_INT("crashes", n));
}

/*
 * Ends the attempts of the jobs c's wid still holds: with attribution
 * after a crash, else as "worker gone" (requeued at once), as the FWP
 * server does for a dropped consumer.
 */
static void
release_jobs(struct zn__child *c, const struct death *d, pid_t pid)
{
    struct zn_engine_failure gone = {
        .outcome = "worker gone",
        .message = "the worker's connection closed before ACK or FAIL",
        .cpu_ms = -1, .rss_kb = -1, .at_once = true,
    };
    struct zn_store_query q = {
        .states = ZN_STATE_BIT(ZN_STATE_WORKING), .worker = c->wid,
        .limit = 1000,
    };
    struct zn_store_list l = {0};
    struct zn_err err;
    size_t n = 0;

    if (!d || !d->crash) {
        if (d) {
            gone.cpu_ms = d->cpu_ms;
            gone.rss_kb = d->rss_kb;
        }
        if (zn_engine_release_worker(c->sv->engine, c->wid, &gone, &n,
                                     &err) < 0)
            ZN_LOG(ZN_ERROR, "supervisor.release_failed",
                   ZN_STR("wid", c->wid), ZN_STR("error", err.msg));
        else if (n)
            ZN_LOG(ZN_INFO, "supervisor.jobs_released",
                   ZN_STR("wid", c->wid), ZN_INT("jobs", n));
        return;
    }
    /* One worker holds one job; a page of 1000 is more than enough. */
    if (zn_engine_list(c->sv->engine, &q, &l, &err) < 0) {
        ZN_LOG(ZN_ERROR, "supervisor.release_failed", ZN_STR("wid", c->wid),
               ZN_STR("error", err.msg));
        return;
    }
    for (size_t i = 0; i < l.n; i++)
        fail_crashed(c, l.jobs[i], d, pid);
    zn_store_list_release(&l);
}

/* ---- the FWP server's question --------------------------------------- */

static struct zn__child *
find_wid(struct zn_supervisor *s, const char *wid)
{
    for (size_t i = 0; i < s->nchildren; i++)
        if (s->children[i].pid && strcmp(s->children[i].wid, wid) == 0)
            return &s->children[i];
    return NULL;
}

static bool
gone_cb(void *ctx, const char *wid)
{
    struct zn__child *c = find_wid(ctx, wid);
    struct timeval tv = zn_clock_tv(FALLBACK_MS);

    if (!c)
        return false;
    evtimer_add(c->fallback, &tv);
    return true;
}

static void
fallback_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zn__child *c = arg;

    (void)fd;
    (void)what;
    if (!c->pid)
        return;
    ZN_LOG(ZN_WARN, "supervisor.worker_disconnected", ZN_STR("wid", c->wid),
           ZN_INT("pid", c->pid));
    release_jobs(c, NULL, c->pid);
}

/* ---- per-block job defaults ------------------------------------------ */

/*
 * The block whose workers run a queue's jobs: the first that fetches it
 * first, else the first that fetches it at all; NULL when none does.
 * Called for every pushed job: it reads the blocks' queues as split once.
 */
static const struct zn_supervisor_conf *
block_of(const struct zn_supervisor *s, const char *queue)
{
    const struct zn_supervisor_conf *later = NULL;

    for (size_t i = 0; i < s->nblocks; i++) {
        const struct zn__block *b = &s->blocks[i];

        for (size_t q = 0; q < b->nq; q++) {
            if (strcmp(b->queues[q], queue) != 0)
                continue;
            if (q == 0)
                return b->conf;
            if (!later)
                later = b->conf;
            break;
        }
    }
    return later;
}

/*
 * The FWP server's push callback: a job that sets no retry, backoff or
 * reserve_for gets its block's tries, backoff and timeout when the block
 * gave them (else the engine fills the server-wide options). Done at push
 * because only then is "the job set none" known: the engine stores the
 * filled values, and its retry rule runs on the FAIL of any consumer.
 */
static void
push_cb(void *ctx, struct zn_job *const *jobs, size_t n)
{
    struct zn_supervisor *s = ctx;

    for (size_t i = 0; i < n; i++) {
        struct zn_job *job = jobs[i];
        const struct zn_supervisor_conf *b = block_of(s, job->queue);

        if (!b)
            continue;
        if ((b->given & ZN_SUPERVISOR_GIVEN_TRIES) &&
            job->retry == ZN_JOB_RETRY_UNSET)
            job->retry = b->tries - 1;
        if ((b->given & ZN_SUPERVISOR_GIVEN_TIMEOUT) && job->reserve_for <= 0)
            job->reserve_for = b->timeout_s;
        if ((b->given & ZN_SUPERVISOR_GIVEN_BACKOFF) && job->nbackoff == 0) {
            memcpy(job->backoff, b->backoff,
                   b->nbackoff * sizeof(job->backoff[0]));
            job->nbackoff = b->nbackoff;
        }
    }
}

/* ---- reaping and restarting ------------------------------------------ */

static int64_t
restart_delay_ms(struct zn__child *c, const struct death *d, int64_t lived_ms)
{
    int64_t ms;

    /* A worker that keeps losing its connection at once waits too. */
    if (lived_ms >= FAST_DEATH_MS || c->retiring ||
        (!d->crash && WIFEXITED(d->status) &&
         WEXITSTATUS(d->status) != ZN_WORKER_EXIT_LOST)) {
        c->fast_deaths = 0;
        return 0;
    }
    ms = 1000LL << (c->fast_deaths < 6 ? c->fast_deaths : 6);
    c->fast_deaths++;
    return ms < RESTART_DELAY_MAX_MS ? ms : RESTART_DELAY_MAX_MS;
}

static void
exited(struct zn__child *c, int status, const struct rusage *ru)
{
    int64_t lived = zn_clock_mono_ms() - c->started_ms, delay;
    struct timeval tv;
    struct death d = {0};
    pid_t pid = c->pid;

    describe(status, ru, &d);
    ZN_LOG(d.crash ? ZN_WARN : ZN_INFO, "supervisor.worker_exited",
           ZN_STR("supervisor", c->conf->name), ZN_INT("pid", pid),
           ZN_STR("wid", c->wid), ZN_STR("status", d.what),
           ZN_STR("signal", WIFSIGNALED(status) ? d.what : ""),
           ZN_INT("exit_code", WIFEXITED(status) ? WEXITSTATUS(status) : -1),
           ZN_INT("rss_kb", d.rss_kb), ZN_INT("cpu_ms", d.cpu_ms),
           ZN_INT("uptime_ms", lived));
    release_jobs(c, &d, pid);
    c->pid = 0;
    evtimer_del(c->fallback);
    evtimer_del(c->quit);
    evtimer_del(c->kill);
    if (c->sv->stopping)
        return;
    if (!c->active || c->blk->paused) {
        c->retiring = false;
        return;
    }
    delay = restart_delay_ms(c, &d, lived);
    c->retiring = false;
    if (delay)
        ZN_LOG(ZN_WARN, "supervisor.restart_delayed",
               ZN_STR("supervisor", c->conf->name), ZN_STR("wid", c->wid),
               ZN_STR("status", d.what), ZN_INT("delay_ms", delay));
    tv = zn_clock_tv(delay);
    evtimer_add(c->restart, &tv);
}

static void
sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    struct zn_supervisor *s = arg;
    struct rusage ru;
    int status;
    pid_t pid;

    (void)sig;
    (void)what;
    /* One SIGCHLD may stand for several deaths: reap until none is left. */
    for (;;) {
        struct zn__child *c = NULL;

        pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0)
            break;
        for (size_t i = 0; i < s->nchildren && !c; i++)
            if (s->children[i].pid == pid)
                c = &s->children[i];
        if (c)
            exited(c, status, &ru);
        else
            ZN_LOG(ZN_DEBUG, "supervisor.reaped_unknown", ZN_INT("pid", pid));
    }
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zn__child *c = arg;

    (void)fd;
    (void)what;
    if (c->active && !c->blk->paused && !c->pid)
        spawn(c);
}

/*
 * The job c's worker holds: 1 and its lease_until, 0 when it holds none,
 * ZN_E* when the store cannot say.
 */
static int
held_job(struct zn_supervisor *s, const struct zn__child *c,
         int64_t *lease_until)
{
    struct zn_store_query q = {
        .states = ZN_STATE_BIT(ZN_STATE_WORKING), .worker = c->wid,
        .limit = 1,
    };
    struct zn_store_list l = {0};
    struct zn_err err;
    int rc = zn_engine_list(s->engine, &q, &l, &err);

    if (rc < 0)
        return rc;
    rc = l.n > 0;
    *lease_until = rc ? l.jobs[0]->lease_until : 0;
    zn_store_list_release(&l);
    return rc;
}

void
zn__supervisor_retire(struct zn__child *c, const char *why)
{
    int64_t lease_until = 0, ms = c->conf->grace_ms;
    struct timeval tv;

    if (!c->pid || c->retiring)
        return;
    c->retiring = true;
    evtimer_del(c->quit);
    ZN_LOG(ZN_INFO, "supervisor.worker_retiring",
           ZN_STR("supervisor", c->conf->name), ZN_STR("wid", c->wid),
           ZN_INT("pid", c->pid), ZN_STR("reason", why));
    /*
     * zenith work: finish the job in hand, fetch no more, exit 0. The
     * server refuses its next FETCH too, in case one is on its way.
     */
    kill(c->pid, SIGTSTP);
    zn_fwp_server_signal_workers(c->sv->fwp, c->wid, "quiet");
    /*
     * A worker that does not go is stopped as terminate stops one: its
     * job has until its lease (the worker kills it at its timeout), then
     * grace, then SIGTERM and, grace later, SIGKILL.
     */
    if (held_job(c->sv, c, &lease_until) > 0 &&
        lease_until > zn_engine_now(c->sv->engine))
        ms += lease_until - zn_engine_now(c->sv->engine);
    tv = zn_clock_tv(ms);
    c->draining = true;
    evtimer_add(c->kill, &tv);
}

bool
zn__supervisor_idle(struct zn_supervisor *s, const struct zn__child *c)
{
    int64_t lease_until;

    if (!c->pid)
        return true;
    /* Unsure (the store failed): leave it be. */
    return held_job(s, c, &lease_until) == 0;
}

void
zn__supervisor_spawn(struct zn__child *c)
{
    evtimer_del(c->restart);
    spawn(c);
}

/* max_time is up: the worker finishes its job and exits (SIGTSTP). */
static void
quit_cb(evutil_socket_t fd, short what, void *arg)
{
    zn__supervisor_retire(arg, "max_time");
    (void)fd;
    (void)what;
}

static void
balance_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    zn__balance_run(arg, zn_clock_mono_ms());
}

static void
kill_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zn__child *c = arg;

    (void)fd;
    (void)what;
    if (!c->pid)
        return;
    if (c->draining) {
        struct timeval tv = zn_clock_tv(c->conf->grace_ms);

        /* terminate's grace is over: FAIL the job, then SIGKILL. */
        c->draining = false;
        ZN_LOG(ZN_WARN, "supervisor.worker_terminated", ZN_STR("wid", c->wid),
               ZN_INT("pid", c->pid));
        kill(c->pid, SIGTERM);
        evtimer_add(c->kill, &tv);
        return;
    }
    ZN_LOG(ZN_WARN, "supervisor.worker_killed", ZN_STR("wid", c->wid),
           ZN_INT("pid", c->pid));
    kill(c->pid, SIGKILL);
}

/* ---- spawning --------------------------------------------------------- */

/* In the forked child: set up, exec; never returns. */
ZN_NORETURN static void
exec_child(const struct zn__child *c, char *const *argv)
{
    const struct zn_supervisor_conf *conf = c->conf;
    sigset_t none;

    setpgid(0, 0);
    /*
     * The server ignores SIGPIPE (an ignored signal stays so across exec)
     * and libevent catches SIGTERM, SIGINT and SIGCHLD with handlers that
     * write to the server's own socketpair: until exec, a signal to this
     * child would reach the server's loop as its own. All signals are
     * blocked since before fork (spawn), so nothing is delivered before
     * the defaults are back.
     */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    /*
     * SIGTSTP ("finish and exit") stays blocked across exec until zenith
     * work handles it: its default action would stop a child that has
     * not set up its handler yet.
     */
    sigemptyset(&none);
    sigaddset(&none, SIGTSTP);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (conf->nice)
        setpriority(PRIO_PROCESS, 0, conf->nice);
    if (HAVE_ADDRESS_LIMIT && conf->memory_mb > 0) {
        struct rlimit rl;

        rl.rlim_cur = (rlim_t)conf->memory_mb * conf->memory_hard_factor *
                      1024 * 1024;
        rl.rlim_max = rl.rlim_cur;
        setrlimit(RLIMIT_AS, &rl);
    }
    execve(c->sv->exe, argv, c->sv->envp);
    _exit(127);
}

/* The child's argv; nums holds its numbers' text (2 x 24 bytes). */
static void
child_argv(const struct zn__child *c, char **argv, char (*nums)[24])
{
    const struct zn_supervisor *s = c->sv;
    size_t n = 0;

    argv[n++] = (char *)s->exe;
    argv[n++] = (char *)"--server";
    argv[n++] = s->server;
    argv[n++] = (char *)"--queues";
    argv[n++] = (char *)c->queues;
    argv[n++] = (char *)"--wid";
    argv[n++] = (char *)c->wid;
    argv[n++] = (char *)"--supervisor";
    argv[n++] = (char *)c->conf->name;
    if (c->conf->max_jobs > 0) {
        snprintf(nums[0], sizeof(nums[0]), "%lld",
                 (long long)c->conf->max_jobs);
        argv[n++] = (char *)"--max-jobs";
        argv[n++] = nums[0];
    }
    if (c->conf->memory_mb > 0) {
        snprintf(nums[1], sizeof(nums[1]), "%lld",
                 (long long)c->conf->memory_mb);
        argv[n++] = (char *)"--memory";
        argv[n++] = nums[1];
    }
    if (s->config) {
        argv[n++] = (char *)"--config";
        argv[n++] = s->config;
    }
    argv[n] = NULL;
}

static void
spawn(struct zn__child *c)
{
    char nums[2][24];
    char *argv[ARGV_MAX];
    sigset_t all, old;
    int saved;
    pid_t pid;

    if (c->sv->stopping || c->pid)
        return;
    c->generation++;
    snprintf(c->wid, sizeof(c->wid), "%s-%d-%u", c->conf->name, c->slot,
             c->generation);
    child_argv(c, argv, nums);
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0)
        exec_child(c, argv);
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    if (pid < 0) {
        struct timeval tv = {5, 0};

        ZN_LOG(ZN_ERROR, "supervisor.fork_failed", ZN_STR("wid", c->wid),
               ZN_STR("error", strerror(errno)));
        evtimer_add(c->restart, &tv);
        return;
    }
    c->pid = pid;
    c->started_ms = zn_clock_mono_ms();
    c->started_wall_ms = zn_clock_wall_ms();
    c->retiring = false;
    if (c->conf->max_time_ms > 0) {
        struct timeval tv = zn_clock_tv(c->conf->max_time_ms);

        evtimer_add(c->quit, &tv);
    }
    ZN_LOG(ZN_INFO, "supervisor.worker_started",
           ZN_STR("supervisor", c->conf->name), ZN_INT("pid", pid),
           ZN_STR("wid", c->wid), ZN_STR("queues", c->queues));
}

/* ---- setup ------------------------------------------------------------ */

/* environ without ZENITH_PASSWORD, plus ours when there is a password. */
static int
build_env(struct zn_supervisor *s, const char *password)
{
    static const char key[] = "ZENITH_PASSWORD=";
    size_t n = 0, k = 0;

    while (environ && environ[n])
        n++;
    s->envp = calloc(n + 2, sizeof(*s->envp));
    if (!s->envp)
        return ZN_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], key, sizeof(key) - 1) != 0)
            s->envp[k++] = environ[i];
    if (password && *password) {
        size_t len = sizeof(key) + strlen(password);

        s->pw_env = malloc(len);
        if (!s->pw_env)
            return ZN_ENOMEM;
        snprintf(s->pw_env, len, "%s%s", key, password);
        s->envp[k++] = s->pw_env;
    }
    s->envp[k] = NULL;
    return 0;
}

/* Splits "a,b,c" into b->queues; ZN_ENOMEM. */
static int
split_queues(struct zn__block *b)
{
    const char *p = b->conf->queues;
    size_t n = 1;

    for (const char *q = p; *q; q++)
        n += *q == ',';
    b->queues = calloc(n, sizeof(*b->queues));
    b->done = calloc(n, sizeof(*b->done));
    b->avg_ms = calloc(n, sizeof(*b->avg_ms));
    if (!b->queues || !b->done || !b->avg_ms)
        return ZN_ENOMEM;
    for (b->nq = 0; b->nq < n; b->nq++) {
        size_t len = strcspn(p, ",");

        b->queues[b->nq] = strndup(p, len);
        if (!b->queues[b->nq])
            return ZN_ENOMEM;
        b->done[b->nq] = -1;
        p += len + (p[len] == ',');
    }
    return 0;
}

static int
init_slot(struct zn_supervisor *s, struct zn__block *b, size_t k, int slot)
{
    struct zn__child *c = &s->children[k];

    c->sv = s;
    c->blk = b;
    c->conf = b->conf;
    c->slot = slot;
    c->queues = b->conf->queues;
    s->nchildren = k + 1;
    c->restart = evtimer_new(s->base, restart_cb, c);
    c->fallback = evtimer_new(s->base, fallback_cb, c);
    c->quit = evtimer_new(s->base, quit_cb, c);
    c->kill = evtimer_new(s->base, kill_cb, c);
    return c->restart && c->fallback && c->quit && c->kill ? 0 : ZN_ENOMEM;
}

/* One block per conf, its slots (conf.h: processes, or max with auto). */
static int
init_blocks(struct zn_supervisor *s, const struct zn_supervisor_confs *cs)
{
    size_t total = 0, k = 0;

    s->blocks = calloc(cs->n ? cs->n : 1, sizeof(*s->blocks));
    if (!s->blocks)
        return ZN_ENOMEM;
    for (size_t i = 0; i < cs->n; i++) {
        const struct zn_supervisor_conf *conf = &cs->v[i];

        total += (size_t)(conf->balance == ZN_SUPERVISOR_BALANCE_AUTO
                              ? conf->max_processes : conf->processes);
    }
    s->children = calloc(total ? total : 1, sizeof(*s->children));
    if (!s->children)
        return ZN_ENOMEM;
    for (size_t i = 0; i < cs->n; i++) {
        struct zn__block *b = &s->blocks[i];

        b->conf = &cs->v[i];
        s->nblocks = i + 1;
        if (split_queues(b) < 0)
            return ZN_ENOMEM;
        b->first = k;
        b->n = (size_t)(b->conf->balance == ZN_SUPERVISOR_BALANCE_AUTO
                            ? b->conf->max_processes : b->conf->processes);
        for (size_t j = 0; j < b->n; j++, k++)
            if (init_slot(s, b, k, (int)j + 1) < 0)
                return ZN_ENOMEM;
        zn__balance_initial(b, &s->children[b->first]);
    }
    return 0;
}

/* A periodic balancing step when some block balances automatically. */
static int
start_balancing(struct zn_supervisor *s)
{
    struct timeval tv = {0, BALANCE_TICK_MS * 1000};
    bool any = false;

    for (size_t i = 0; i < s->nblocks; i++) {
        ZN_ASSERT(s->blocks[i].conf); /* init_blocks gave each its conf */
        any |= s->blocks[i].conf->balance == ZN_SUPERVISOR_BALANCE_AUTO;
    }
    if (!any)
        return 0;
    s->balance = event_new(s->base, -1, EV_PERSIST, balance_cb, s);
    if (!s->balance || event_add(s->balance, &tv) < 0)
        return ZN_ENOMEM;
    return 0;
}

int
zn_supervisor_new(struct event_base *base, struct zn_engine *e,
                  struct zn_fwp_server *fwp,
                  const struct zn_supervisor_opts *o,
                  struct zn_supervisor **out, struct zn_err *err)
{
    struct zn_supervisor *s = calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (!s)
        return zn_err_set(err, ZN_ENOMEM, "cannot allocate the supervisor");
    s->base = base;
    s->engine = e;
    s->fwp = fwp;
    s->confs = o->confs;
    /* The worker program, installed beside zenith. */
    rc = zn_path_beside_self("zenith-work", s->exe, sizeof(s->exe), err);
    if (rc < 0)
        goto fail;
    s->server = strdup(o->server);
    s->config = o->config ? strdup(o->config) : NULL;
    if (!s->server || (o->config && !s->config) ||
        build_env(s, o->password) < 0 || init_blocks(s, o->confs) < 0 ||
        start_balancing(s) < 0)
        goto oom;
    s->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, s);
    if (!s->sigchld || evsignal_add(s->sigchld, NULL) < 0)
        goto oom;
    zn_fwp_server_set_gone_cb(fwp, gone_cb, s);
    zn_fwp_server_set_push_cb(fwp, push_cb, s);
    for (size_t i = 0; i < s->nchildren; i++)
        if (s->children[i].active)
            spawn(&s->children[i]);
    *out = s;
    return 0;
oom:
    rc = zn_err_set(err, ZN_ENOMEM, "cannot set up the supervisor");
fail:
    zn_supervisor_free(s);
    return rc;
}

/*
 * What stop and drain share: no more balancing, restarts or max_time
 * quits. False when the supervisor is stopping already.
 */
static bool
begin_stop(struct zn_supervisor *s)
{
    if (!s || s->stopping)
        return false;
    s->stopping = true;
    if (s->balance)
        event_del(s->balance);
    for (size_t i = 0; i < s->nchildren; i++) {
        evtimer_del(s->children[i].restart);
        evtimer_del(s->children[i].quit);
    }
    return true;
}

void
zn_supervisor_stop(struct zn_supervisor *s)
{
    if (!begin_stop(s))
        return;
    for (size_t i = 0; i < s->nchildren; i++) {
        struct zn__child *c = &s->children[i];
        struct timeval tv = zn_clock_tv(c->conf->grace_ms);

        if (!c->pid)
            continue;
        kill(c->pid, SIGTERM);
        evtimer_add(c->kill, &tv);
    }
    ZN_LOG(ZN_INFO, "supervisor.stopping",
           ZN_INT("running", zn_supervisor_running(s)));
}

void
zn_supervisor_drain(struct zn_supervisor *s, int64_t grace_ms)
{
    struct timeval tv = zn_clock_tv(grace_ms);

    if (!begin_stop(s))
        return;
    for (size_t i = 0; i < s->nchildren; i++) {
        struct zn__child *c = &s->children[i];

        if (!c->pid)
            continue;
        zn__supervisor_retire(c, "terminate");
        c->draining = true;
        evtimer_add(c->kill, &tv);
    }
    ZN_LOG(ZN_INFO, "supervisor.draining",
           ZN_INT("running", zn_supervisor_running(s)),
           ZN_INT("grace_ms", grace_ms));
}

size_t
zn_supervisor_running(const struct zn_supervisor *s)
{
    size_t n = 0;

    for (size_t i = 0; s && i < s->nchildren; i++)
        if (s->children[i].pid)
            n++;
    return n;
}

static void
free_events(struct zn__child *c)
{
    if (c->restart)
        event_free(c->restart);
    if (c->fallback)
        event_free(c->fallback);
    if (c->quit)
        event_free(c->quit);
    if (c->kill)
        event_free(c->kill);
}

void
zn_supervisor_free(struct zn_supervisor *s)
{
    if (!s)
        return;
    s->stopping = true;
    for (size_t i = 0; i < s->nchildren; i++) {
        struct zn__child *c = &s->children[i];
        struct rusage ru;
        int status;

        if (c->pid) {
            kill(c->pid, SIGKILL);
            if (wait4(c->pid, &status, 0, &ru) == c->pid)
                exited(c, status, &ru);
        }
        free_events(c);
    }
    if (s->fwp) {
        zn_fwp_server_set_gone_cb(s->fwp, NULL, NULL);
        zn_fwp_server_set_push_cb(s->fwp, NULL, NULL);
    }
    if (s->sigchld)
        event_free(s->sigchld);
    if (s->balance)
        event_free(s->balance);
    for (size_t i = 0; i < s->nblocks; i++) {
        for (size_t q = 0; s->blocks[i].queues && q < s->blocks[i].nq; q++)
            free(s->blocks[i].queues[q]);
        free(s->blocks[i].queues);
        free(s->blocks[i].done);
        free(s->blocks[i].avg_ms);
    }
    free(s->blocks);
    if (s->pw_env) {
        memset(s->pw_env, 0, strlen(s->pw_env));
        free(s->pw_env);
    }
    free(s->envp);
    free(s->server);
    free(s->config);
    free(s->children);
    free(s);
}
