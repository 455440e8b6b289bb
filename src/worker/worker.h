/*
 * worker.h - `zenith work`: a Faktory consumer that runs one job at a
 * time. It fetches from its queues in strict order, runs the handler of
 * the job's jobtype (handler.h), and ACKs or FAILs.
 *
 * Two threads, two connections under one wid. The main thread fetches and
 * runs jobs. A second thread sends BEAT every 15 s on its own connection,
 * so a long job never misses a beat; it also receives the worker's
 * signals and is the watchdog: it fails a built-in job that runs past its
 * deadline (FAIL "timeout" on its own connection, then _exit(3): the
 * stuck thread cannot be stopped, the process is replaced) and a job that
 * ignores a terminate request for 25 s (FAIL "terminated", _exit(0)).
 *
 * Memory (Horizon's meaning): after each job, a worker whose resident set
 * is above memory_mb logs worker.memory_exceeded, reports the job (with no
 * FETCH after it) and exits 0, to be replaced.
 *
 * The next FETCH goes in the same write as a job's ACK or FAIL. A FETCH
 * the server answers with an error (its store failed) is logged and asked
 * again after 1 s, then 2, 4... up to 30 s while the errors go on; a
 * lost connection ends the worker (exit 4).
 *
 * quiet (BEAT reply or SIGTSTP): finish the current job, fetch no more,
 * exit 0; a FETCH already sent with the last ACK is answered first, and a
 * job it brings (handed to this worker) is run. terminate (BEAT reply,
 * SIGTERM or SIGINT): handlers are told to stop through a cancel fd, which
 * also ends a wait after a refused FETCH; the running job is FAILed
 * "terminated" and the worker exits 0. A job that arrives after terminate
 * is not started: closing the connections hands it out again at once.
 */
#ifndef ZN_WORKER_WORKER_H
#define ZN_WORKER_WORKER_H

#include "compat.h"

#include "common/err.h"
#include "worker/exit.h"
#include "worker/handler.h"

#define ZN_WORKER_BEAT_MS 15000
#define ZN_WORKER_TERM_GRACE_MS 25000
/* zn_worker_run's result when the connection broke (err says how). */
#define ZN_WORKER_LOST 1

struct zn_worker_opts {
    const char *server;             /* see zn_fwp_parse_addr */
    const char *password;           /* NULL or "" = none */
    const char *wid;                /* NULL = random hex */
    const char *const *queues;      /* fetched in this order */
    size_t nqueues;
    int64_t max_jobs;               /* exit 0 after this many; 0 = no limit */
    int64_t memory_mb;              /* exit 0 after a job that leaves the
                                       RSS above this; 0 = no limit */
    const char *supervisor;         /* the block that runs us, or NULL */
    const struct zn_handler_registry *handlers;
};

/*
 * Runs the worker until it is told to stop, has run max_jobs, or loses the
 * server. Installs handlers for SIGTERM, SIGINT and SIGTSTP and ignores
 * SIGPIPE while it runs (the previous dispositions are restored). Returns
 * 0 after a clean stop, ZN_WORKER_LOST when the connection broke after it
 * was made, or a negative code with err ("cannot connect to 'x': ...").
 * May end the process itself with
 * _exit(ZN_WORKER_EXIT_TIMEOUT) or _exit(0) when the watchdog fires.
 */
int zn_worker_run(const struct zn_worker_opts *o, struct zn_err *err);

/*
 * zenith-work's main: argv[0] is the program, then the flags of `zenith
 * work`. Returns the exit status described in command.c.
 */
int zn_worker_command(int argc, char **argv);

#endif
