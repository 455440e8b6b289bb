/*
 * server.h - the Faktory Work Protocol v2 server: listeners on TCP and a
 * Unix socket, one connection state machine each, blocking FETCH, the
 * registry of connected workers, and the group commit of pushes.
 *
 * Runs on the event-loop thread that owns the engine. The loop calls
 * zn_fwp_server_flush after every iteration: it commits the engine's
 * transaction and only then answers the pushes it held.
 */
#ifndef ZN_FWP_SERVER_H
#define ZN_FWP_SERVER_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"
#include "queue/engine.h"

struct event_base;
struct zn_fwp_server;

struct zn_fwp_server_opts {
    const char *tcp;        /* "host:port" or NULL/"" for none */
    const char *unix_path;  /* socket path or NULL/"" for none */
    const char *password;   /* NULL/"" = no password */
    size_t max_line;        /* longest command line in bytes */
    int hash_iterations;    /* pwdhash iterations asked in HI */
};

/*
 * Binds the listeners and registers their events on base. The engine is
 * borrowed. ZN_EIO "cannot listen on 'addr': ..." on failure.
 */
int zn_fwp_server_new(struct event_base *base, struct zn_engine *e,
                      const struct zn_fwp_server_opts *o,
                      struct zn_fwp_server **out, struct zn_err *err);

/* The TCP port bound (useful with port 0), or 0 when TCP is off. */
int zn_fwp_server_port(const struct zn_fwp_server *s);

/*
 * End of an event-loop iteration: commits and answers held replies,
 * resumes their connections, frees closed ones. A transaction that holds
 * no reply (fetches, acks) may wait a few milliseconds for company; a
 * timer then wakes the loop. Returns true when replies are still held
 * (the loop must not block before calling it again).
 */
bool zn_fwp_server_flush(struct zn_fwp_server *s);

/* Stops accepting connections (shutdown, step one). */
void zn_fwp_server_stop_listening(struct zn_fwp_server *s);

/*
 * Shutdown, step two: runs no more commands, commits and answers what is
 * held. Returns true while replies still wait to be written: the caller
 * runs the loop and calls it again, up to a grace period.
 */
bool zn_fwp_server_drain(struct zn_fwp_server *s);

/*
 * Asks every worker to go quiet or terminate: their next BEAT gets
 * {"state":"quiet"} or {"state":"terminate"}. wid NULL = all workers.
 * Returns how many workers were marked.
 */
size_t zn_fwp_server_signal_workers(struct zn_fwp_server *s, const char *wid,
                                    const char *state);

/*
 * Asked when the last connection of worker wid closes, before the jobs it
 * holds are released as "worker gone". Returning true takes that over:
 * the callee (the supervisor, which learns how its child died) releases
 * them itself, through the engine, later in the same loop. Not asked on
 * zn_fwp_server_free.
 */
typedef bool zn_fwp_gone_cb(void *ctx, const char *wid);

/* Sets (or with cb NULL, clears) the gone callback. */
void zn_fwp_server_set_gone_cb(struct zn_fwp_server *s, zn_fwp_gone_cb *cb,
                               void *ctx);

/*
 * Called for the jobs of each PUSH and PUSHB after they parse and before
 * the engine takes them, so the callee may fill defaults the job did not
 * set (the supervisor's per-block tries, backoff and timeout). It must
 * not block or keep the pointers.
 */
typedef void zn_fwp_push_cb(void *ctx, struct zn_job *const *jobs, size_t n);

/* Sets (or with cb NULL, clears) the push callback. */
void zn_fwp_server_set_push_cb(struct zn_fwp_server *s, zn_fwp_push_cb *cb,
                               void *ctx);

/*
 * CONTROL {json}: zenith's verb for the supervisor's commands (restart,
 * pause, continue, terminate, workers). The callee gets the argument as
 * sent and returns 0 with *reply, a malloc'd JSON text sent as a bulk
 * string, or a negative code with err, sent as -ERR. Without a callback
 * (serve --no-workers) CONTROL answers "-ERR CONTROL: no supervisor".
 */
typedef int zn_fwp_control_cb(void *ctx, const char *arg, size_t len,
                              char **reply, struct zn_err *err);

/* Sets (or with cb NULL, clears) the control callback. */
void zn_fwp_server_set_control_cb(struct zn_fwp_server *s,
                                  zn_fwp_control_cb *cb, void *ctx);

/*
 * Closes every connection and listener and frees the server. The jobs
 * that connected workers hold stay theirs (a restart is not their death).
 */
void zn_fwp_server_free(struct zn_fwp_server *s);

#endif
