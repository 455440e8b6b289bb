/*
 * exec.h - the `exec` handler: runs a configured command for each job,
 * without a shell (posix_spawn), in a process group of its own.
 *
 * The child gets the job's JSON on stdin, its stdout on /dev/null, its
 * stderr on a pipe (the last 4 KiB are kept: the last 10 lines become the
 * failure message), and the worker's environment plus ZENITH_JID,
 * ZENITH_ATTEMPT and ZENITH_QUEUE. Exit status 0 is success; any other
 * status fails the job as "exit N", a signal as its name ("SIGSEGV").
 *
 * The job's process group does not outlive the job: when the command
 * exits, whatever it left running in its group is killed. At the deadline,
 * or when the worker is told to terminate, the whole group gets SIGTERM,
 * then SIGKILL 2 s later, and the job fails as "timeout" (or
 * "terminated").
 */
#ifndef ZN_WORKER_EXEC_H
#define ZN_WORKER_EXEC_H

#include "compat.h"

#include "common/err.h"
#include "worker/handler.h"

#define ZN_EXEC_ARGS_MAX 64          /* words in a command */
#define ZN_EXEC_COMMAND_MAX 4096     /* bytes of a command */
#define ZN_EXEC_KILL_GRACE_MS 2000   /* SIGTERM to SIGKILL */
#define ZN_EXEC_STDERR_KEEP 4096     /* bytes of stderr kept */
#define ZN_EXEC_MESSAGE_LINES 10     /* lines of stderr in the message */

/*
 * Splits a command line into a NULL-terminated argv: words are separated
 * by spaces or tabs; double quotes group words ("a b" is one argument,
 * "" an empty one) and inside them \" and \\ stand for " and \. There is
 * no other quoting, no variable, no glob: no shell is involved. Returns 0
 * and *out (free with zn_exec_argv_free), ZN_EINVAL ("command is empty",
 * "command has an unterminated double quote"), ZN_ETOOBIG (over
 * ZN_EXEC_ARGS_MAX words or ZN_EXEC_COMMAND_MAX bytes) or ZN_ENOMEM.
 */
int zn_exec_split(const char *cmd, char ***out, struct zn_err *err);

/* Frees an argv from zn_exec_split. NULL is a no-op. */
void zn_exec_argv_free(char **argv);

/*
 * The handler (zn_handler_run_cb): runs h->argv for job and fills res,
 * including the child's CPU time and peak RSS. Blocks until the command
 * and its process group are gone: at most until job->deadline_ms plus
 * ZN_EXEC_KILL_GRACE_MS and the time to reap. SIGPIPE is blocked in the
 * calling thread while it runs. A command whose file cannot be executed
 * (not found, not executable...) fails the job as "exit 127". Returns a
 * negative code only when the worker cannot start the command (pipe,
 * process, memory).
 */
int zn_exec_run(const struct zn_handler *h, const struct zn_handler_job *job,
                struct zn_handler_result *res, struct zn_err *err);

/*
 * Makes this process the reaper of its orphaned descendants, so that the
 * processes a command leaves behind are reaped here rather than left as
 * zombies when init does not reap. Returns 0 or -1 (unsupported).
 */
int zn_exec_become_subreaper(void);

/* Reaps children that have exited (adopted orphans). Never blocks. */
void zn_exec_reap_strays(void);

#endif
