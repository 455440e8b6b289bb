/*
 * supervisor.h - the worker processes of `zenith serve`: for each
 * supervisor block (conf.h) it forks and execs `processes` children
 * running `zenith work` over the server's Unix socket, watches them with
 * a SIGCHLD event on the server's loop, and restarts the ones that end.
 *
 * A child is `zenith work --server SOCKET --queues Q --wid NAME-N-GEN
 * [--max-jobs N] [--memory MB] [--config FILE]`: N numbers its slot in the
 * block (from 1), GEN counts the processes that slot has had. The password,
 * when there is one, goes through the environment (ZENITH_PASSWORD), never
 * argv. Each child runs in its own process group (a terminal's ^C reaches the
 * server, which stops the children itself), with the block's nice value and an
 * address-space limit of memory x memory_hard_factor MB.
 *
 * Crash attribution: when a child ends by a signal or a non-zero exit
 * status other than 3 (its watchdog already FAILed the job), the jobs its
 * wid holds are FAILed at once with what ended it ("SIGSEGV", "exit 1"),
 * its CPU time and peak RSS; a job that has ended quarantine_after workers
 * goes to DEAD marked quarantined. The supervisor registers a gone
 * callback with the FWP server so a child's dropped connection does not
 * release its jobs as "worker gone" first (see supervisor.c).
 *
 * Per-block job defaults: the supervisor registers a push callback with
 * the FWP server; a job pushed to a block's queue that sets no retry,
 * backoff or reserve_for gets the tries, backoff and timeout the block
 * gave (supervisor.c, push_cb). Memory: each child gets --memory (it
 * exits after a job that leaves it above) and RLIMIT_AS of memory x
 * memory_hard_factor.
 *
 * Balancing between a block's queues (off, simple, auto) is balance.c's.
 *
 * The commands restart, pause, continue, terminate and workers come over
 * the FWP verb CONTROL (control.c). sleep has nothing to do:
 * FETCH blocks on the server, so workers never poll.
 */
#ifndef ZN_SUPERVISOR_H
#define ZN_SUPERVISOR_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"
#include "fwp/server.h"
#include "queue/engine.h"
#include "supervisor/conf.h"

struct event_base;
struct zn_supervisor;

struct zn_supervisor_opts {
    const struct zn_supervisor_confs *confs; /* borrowed, must outlive */
    const char *server;   /* Unix socket path the children connect to */
    const char *password; /* NULL or "" = none */
    const char *config;   /* INI file handed to the children, or NULL */
};

/*
 * Registers the SIGCHLD event on base and the gone callback on fwp, and
 * starts every child. The engine and fwp are borrowed and must outlive
 * the supervisor. A child that cannot be forked is retried later (logged),
 * so only setup failures are errors: ZN_ENOMEM, ZN_EIO "cannot find the
 * zenith binary: ...".
 */
int zn_supervisor_new(struct event_base *base, struct zn_engine *e,
                      struct zn_fwp_server *fwp,
                      const struct zn_supervisor_opts *o,
                      struct zn_supervisor **out, struct zn_err *err);

/*
 * Shutdown, step one: restarts no more, sends SIGTERM to every child and
 * SIGKILL to those still running after their block's grace. The caller
 * runs the loop (and zn_fwp_server_flush) while zn_supervisor_running
 * is not 0: the children FAIL their jobs as they go.
 */
void zn_supervisor_stop(struct zn_supervisor *s);

/*
 * Shutdown by `zenith terminate`: restarts no more and lets every child
 * finish its job and exit (SIGTSTP); a child still running after
 * grace_ms gets SIGTERM (it FAILs its job as terminated), and SIGKILL
 * after its block's grace. The caller runs the loop as after
 * zn_supervisor_stop.
 */
void zn_supervisor_drain(struct zn_supervisor *s, int64_t grace_ms);

/* Asked by CONTROL terminate to stop serve, draining for grace_ms. */
typedef void zn_supervisor_terminate_cb(void *ctx, int64_t grace_ms);

/*
 * The FWP verb CONTROL's commands (control.c): arg (len bytes, untrusted
 * JSON) is restart, pause, continue, workers or terminate; the last calls
 * term_cb, which stops the server. s may be NULL (serve --no-workers):
 * then only terminate works and the others fail "no supervisor". 0 and
 * *reply (malloc'd JSON text), or ZN_EINVAL / ZN_ENOTFOUND / ZN_ESTATE /
 * ZN_ENOMEM with err. Does not block.
 */
int zn_supervisor_control(struct zn_supervisor *s, const char *arg,
                          size_t len, zn_supervisor_terminate_cb *term_cb,
                          void *term_ctx, char **reply, struct zn_err *err);

/* How many children are running (not yet reaped). */
size_t zn_supervisor_running(const struct zn_supervisor *s);

/*
 * Kills (SIGKILL) and reaps any child still running, unregisters from the
 * loop and the FWP server, and frees s. May block until those children
 * are reaped. NULL is a no-op.
 */
void zn_supervisor_free(struct zn_supervisor *s);

#endif
