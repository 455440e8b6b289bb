/*
 * handler.h - what `zenith work` runs for a job: a registry that maps a
 * jobtype to a handler, and the result every handler reports.
 *
 * Three kinds of handler share one calling convention (zn_handler_run_cb):
 * built-in C functions that run inside the worker process, `exec` handlers
 * (a command from the config, see exec.h) and `webhook` handlers (an HTTP
 * POST, see webhook.h). A handler never crashes the worker on bad input:
 * a job it cannot run becomes a failure result, which the worker turns
 * into FAIL. Only the `crash` built-in crashes, on purpose.
 *
 * Time limits: exec and webhook handlers stop at the job's deadline
 * themselves. Built-ins run in the worker's own thread and cannot be
 * interrupted safely; the worker's watchdog (worker.c) enforces their
 * deadline by failing the job and ending the process. All handlers that
 * wait watch cancel_fd and give up early, as "terminated", when it
 * becomes readable.
 */
#ifndef ZN_WORKER_HANDLER_H
#define ZN_WORKER_HANDLER_H

#include "compat.h"

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/err.h"

#define ZN_HANDLER_ERRTYPE_MAX 64
#define ZN_HANDLER_MSG_MAX 4608   /* 10 lines of a 4 KiB stderr tail, + room */
#define ZN_HANDLER_NAME_MAX 256   /* as a jobtype */

/* Called by the exec handler once its child runs in process group pgid. */
typedef void zn_handler_spawn_cb(void *ctx, pid_t pgid);

/* One job as a handler sees it. Everything is borrowed for the call. */
struct zn_handler_job {
    const char *jid;
    const char *jobtype;
    const char *queue;
    const char *json;       /* the job as fetched (exec stdin, webhook body) */
    size_t json_len;
    const json_t *job;      /* the same, parsed: built-ins read "args" */
    int attempt;            /* 1 for the first try */
    int timeout_s;          /* for messages: "timeout of N s" */
    int64_t deadline_ms;    /* zn_clock_mono_ms() by which the job must end */
    int cancel_fd;          /* readable once the worker must stop; -1 none */
    zn_handler_spawn_cb *spawn_cb; /* may be NULL */
    void *spawn_ctx;
};

/*
 * The outcome of one attempt. ok, or errtype + message (never empty on
 * failure) + trace: '\n'-separated lines for FAIL's backtrace ("" none).
 * cpu_ms and rss_kb measure the attempt, -1 when unknown.
 */
struct zn_handler_result {
    bool ok;
    char errtype[ZN_HANDLER_ERRTYPE_MAX];
    char message[ZN_HANDLER_MSG_MAX];
    char trace[ZN_HANDLER_MSG_MAX];
    int64_t cpu_ms;
    int64_t rss_kb;
};

enum zn_handler_kind {
    ZN_HANDLER_BUILTIN = 0,
    ZN_HANDLER_EXEC,
    ZN_HANDLER_WEBHOOK,
};

struct zn_handler;

/*
 * Runs one job and fills res (zeroed by the caller, cpu_ms and rss_kb set
 * to -1). Returns 0 with res filled, or a negative code with err when the
 * worker itself failed (cannot start a process, out of memory):
 * zn_handler_run turns that into a failure of the job too ("worker
 * error").
 */
typedef int zn_handler_run_cb(const struct zn_handler *h,
                              const struct zn_handler_job *job,
                              struct zn_handler_result *res,
                              struct zn_err *err);

struct zn_handler {
    char *name;             /* the jobtype */
    enum zn_handler_kind kind;
    zn_handler_run_cb *run;
    char **argv;            /* exec: NULL-terminated, program first */
    char *url;              /* webhook */
    int timeout_s;          /* 0: the job's own (its reserve_for) */
    int line;               /* config line that declared it; 0 built-in */
};

struct zn_handler_registry {
    struct zn_handler *v;
    size_t n, cap;
};

/* Fills r with the built-in handlers (noop, sleep, fail, crash, grow). */
int zn_handler_registry_init(struct zn_handler_registry *r,
                             struct zn_err *err);

/* Frees every handler and their strings; r can be init'ed again. */
void zn_handler_registry_release(struct zn_handler_registry *r);

/*
 * Adds h, taking ownership of its strings (name, argv, url) even when it
 * fails. A handler of the same name is replaced: the config may redefine
 * a built-in. Returns 0 or ZN_ENOMEM.
 */
int zn_handler_add_take(struct zn_handler_registry *r, struct zn_handler *h,
                        struct zn_err *err);

/* The handler of jobtype, or NULL. The pointer lives until the next add. */
const struct zn_handler *zn_handler_find(const struct zn_handler_registry *r,
                                         const char *jobtype);

/*
 * Runs the handler of job->jobtype and fills res, never failing: an
 * unknown jobtype gives errtype "unknown jobtype" and message "no handler
 * for jobtype 'x'"; a worker error gives "worker error". Measures the
 * attempt's CPU time and peak RSS when the handler did not (built-ins and
 * webhooks: this process; exec: the child). Texts in res are valid UTF-8
 * afterwards. Blocks for as long as the handler runs.
 */
void zn_handler_run(const struct zn_handler_registry *r,
                    const struct zn_handler_job *job,
                    struct zn_handler_result *res);

/* Sets res to success. */
void zn_handler_ok(struct zn_handler_result *res);

/* Sets res to failure with errtype and a formatted message. */
void zn_handler_fail(struct zn_handler_result *res, const char *errtype,
                     const char *fmt, ...) ZN_PRINTF(3, 4);

/*
 * Waits until deadline_ms (monotonic) or until cancel_fd is readable,
 * whichever comes first. Returns true when cancelled.
 */
bool zn_handler_wait(int cancel_fd, int64_t deadline_ms);

#endif
