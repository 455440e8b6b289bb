/*
 * harness.h - integration tests start the real `zenith serve` (path in
 * $ZN_BIN) on a free port with its own data directory, wait for its
 * server.listening log line, talk to it over FWP, and stop it. Timeouts
 * scale with $ZN_TEST_TIMEOUT_MULT (sanitizer builds are slower).
 */
#ifndef ZN_TEST_HARNESS_H
#define ZN_TEST_HARNESS_H

#include "compat.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "fwp/client.h"
#include "support/timeout.h"

struct zn_srv {
    pid_t pid;
    char dir[256];       /* data directory (mkdtemp) */
    char log[PATH_MAX];  /* the server's stderr, appended across restarts */
    char addr[64];       /* "127.0.0.1:PORT" */
    char sock[PATH_MAX]; /* Unix socket */
    int port;
    off_t log_seen;      /* log bytes before the current run */
    /*
     * Environment changes for the server: "NAME=VALUE" sets, "NAME"
     * unsets; NULL-terminated, or NULL for none. Borrowed.
     */
    const char *const *env;
};

/*
 * Gives s a fresh data directory (mkdtemp) unless it has one, and sets
 * its log and socket paths; zn_srv_cleanup removes it.
 */
void zn_srv_init_dir(struct zn_srv *s);

/*
 * Starts the server with extra arguments (NULL-terminated, may be NULL):
 * a fresh data directory unless s->dir is already set (restart on the
 * same data). Fails the test (cmocka) if it does not come up.
 */
void zn_srv_start(struct zn_srv *s, const char *const *extra);

/* Writes text to the file at path (created or emptied); fails the test. */
void zn_write_file(const char *path, const char *text);

/*
 * Writes text to the file config and starts the server on it with its
 * supervisor's workers on (s->dir set: zn_srv_init_dir).
 */
void zn_srv_start_config(struct zn_srv *s, const char *config,
                         const char *text);

/* SIGTERM, then SIGKILL after a timeout; returns the exit status. */
int zn_srv_stop(struct zn_srv *s);

/* kill -9 and reap. */
void zn_srv_kill9(struct zn_srv *s);

/* True while the server process is alive. */
bool zn_srv_alive(struct zn_srv *s);

/* Waits until the server has exited by itself; fails with its log. */
void zn_srv_wait_exit(struct zn_srv *s, int64_t base_ms);

/*
 * A test's end: frees p (may be NULL), stops the server if it runs (it
 * must exit 0) and removes its data directory.
 */
void zn_srv_finish(struct zn_srv *s, struct zn_fwp_client *p);

/* Stops the server if running and removes the data directory. */
void zn_srv_cleanup(struct zn_srv *s);

/* Prints the server's log (on failure). */
void zn_srv_dump_log(const struct zn_srv *s);

/* Connects as producer (wid NULL) or consumer; fails the test on error. */
struct zn_fwp_client *zn_srv_connect(const struct zn_srv *s, const char *wid,
                                     const char *password);

/* One command that must succeed; returns the reply (caller frees). */
char *zn_srv_call(struct zn_fwp_client *c, const char *verb, const char *arg);

/* PUSH json, which must succeed (the reply is dropped). */
void zn_srv_push(struct zn_fwp_client *c, const char *json);

/* One command that must fail; returns the error message (static). */
const char *zn_srv_call_err(struct zn_fwp_client *c, const char *verb,
                            const char *arg);

/* Path of the database file of s. */
void zn_srv_db_path(const struct zn_srv *s, char *out, size_t size);

/* A plain TCP socket to 127.0.0.1:port (no HELLO); -1 on failure. */
int zn_test_connect_raw(int port);

/* Runs `zenith ARGS...` with stdout captured; returns exit status. */
int zn_run_cli(const char *const *args, char **out);

/* A `zenith` process other than the server, e.g. `zenith work`. */
struct zn_child {
    pid_t pid;             /* 0 once reaped */
    char log[PATH_MAX];    /* its stderr, appended */
};

/*
 * Starts `zenith ARGS...` (args NULL-terminated) in the background with
 * its stderr appended to log and stdout on /dev/null.
 */
void zn_child_start(struct zn_child *c, const char *log,
                    const char *const *args);

/*
 * Waits up to timeout_ms (already scaled by the caller) for the child to
 * exit; returns its exit status (128 + signal when killed), or -1 when it
 * still runs.
 */
int zn_child_wait(struct zn_child *c, int64_t timeout_ms);

/* SIGTERM, then SIGKILL after a timeout; the exit status. No-op: -1. */
int zn_child_stop(struct zn_child *c);

/* Polls the child's log for a line containing text; true once there. */
bool zn_child_log_wait(const struct zn_child *c, const char *text,
                       int64_t timeout_ms);

/* The same within zn_test_ms(base_ms), else the log is shown and fails. */
void zn_child_wait_log(const struct zn_child *c, const char *text,
                       int64_t base_ms);

/* Prints the child's log (on failure). */
void zn_child_dump_log(const struct zn_child *c);

/*
 * Runs `zenith ARGS...` with env applied as struct zn_srv's env says.
 * *out gets stdout and *err stderr (malloc'd; either may be NULL: stdout
 * is then dropped, stderr left on the test's). A run that outlasts the
 * timeout is killed (status 128 + SIGKILL). Returns the exit status.
 */
int zn_run_cli_env(const char *const *env, const char *const *args,
                   char **out, char **err);

/* ---- JSON replies (jansson) -------------------------------------------- */

struct json_t;

/*
 * Parses reply as JSON and frees it (takes ownership); the caller
 * json_decrefs the result. Fails the test, showing the reply, when it is
 * not JSON or NULL (what zn_srv_call returns for a nil reply).
 */
struct json_t *zn_srv_parse_take(char *reply);

/*
 * FETCH queues, which must hand out a job: its jid, in a static buffer
 * (the next call overwrites it). Fails the test on a nil or bad reply.
 */
const char *zn_srv_fetch_jid(struct zn_fwp_client *c, const char *queues);

/*
 * JOBS {"jid":jid}: {"job":{...},"attempts":[...]} (caller json_decrefs).
 * Fails the test when the call fails (-ERR: no such job), or the reply is
 * nil or not JSON.
 */
struct json_t *zn_srv_job(struct zn_fwp_client *c, const char *jid);

/* Polls until jid is in state (fails with the server's log); the JOBS. */
struct json_t *zn_srv_wait_state(const struct zn_srv *s,
                                 struct zn_fwp_client *c, const char *jid,
                                 const char *state, int64_t base_ms);

/*
 * INFO's count of jobs in state (a key of zenith.queues[]: "done",
 * "enqueued", ...) on queue; 0 when the queue is not listed. Fails the
 * test when INFO fails (with the server's log), or lists the queue
 * without that count.
 */
int64_t zn_srv_queue_count(const struct zn_srv *s, struct zn_fwp_client *c,
                           const char *queue, const char *state);

/* ---- the server's log -------------------------------------------------- */

/* True once the server's log holds a line with a and (unless NULL) b. */
bool zn_srv_log_has(const struct zn_srv *s, const char *a, const char *b);

/* How many lines of the server's log hold a and (unless NULL) b. */
size_t zn_srv_log_count(const struct zn_srv *s, const char *a, const char *b);

/* Polls zn_srv_log_has; fails with the server's log after the timeout. */
void zn_srv_wait_log(const struct zn_srv *s, const char *a, const char *b,
                     int64_t base_ms);

/* ---- processes, from /proc --------------------------------------------- */

/*
 * The children of pid from /proc: their pids into out (at most max), how
 * many are zombies into *zombies. Returns how many there are.
 */
size_t zn_test_children(pid_t pid, pid_t *out, size_t max, size_t *zombies);

/* How many file descriptors process pid has open (/proc/PID/fd). */
size_t zn_test_fd_count(pid_t pid);

#endif
