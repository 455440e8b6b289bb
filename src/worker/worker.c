/*
 * worker.c - the fetch loop, the beat thread and the watchdog of
 * `zenith work` (see worker.h for the behaviour).
 *
 * Shared state lives in struct worker. The main thread owns conn and the
 * loop; the beat thread owns beat_conn. Under lock: the quiet and
 * terminate flags and the job in progress (run), which the watchdog reads
 * and the main thread clears when the handler returns. The watchdog holds
 * the lock from its decision until _exit, so a job is reported once:
 * either the main thread clears run first (and reports), or it blocks on
 * the lock until the process ends.
 *
 * Signals: SIGTERM, SIGINT and SIGTSTP are blocked in the main thread and
 * open in the beat thread, so they interrupt only the latter; the handler
 * writes one byte to the wake pipe, which the beat thread polls. The pipe
 * fd is the one file-scope variable: a signal handler has no argument.
 *
 * Deadlines: a job's timeout is its reserve_for (or the config's timeout
 * for its jobtype). When it is the lease, the worker stops the job a
 * little early (a fifth of the lease, at most 1 s) so that its FAIL
 * "timeout", not the server's lease expiry, records the attempt.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "fwp/client.h"
#include "queue/job.h"
#include "worker/exec.h"
#include "worker/handler.h"
#include "worker/webhook.h"
#include "worker/worker.h"

#define CALL_TIMEOUT_MS 30000     /* per request; FETCH waits 2 s at most */
#define BEAT_TIMEOUT_MS 5000
#define FETCH_POLL_MS 35000
#define FETCH_RETRY_MS 1000       /* after the server refused a FETCH, */
#define FETCH_RETRY_MAX_MS 30000  /* doubled while refusals go on */
#define BACKSTOP_MS 10000         /* exec and webhook stop themselves */
#define LEASE_MARGIN_MAX_MS 1000
#define DEFAULT_TIMEOUT_S 300     /* a job without reserve_for */
#define LABEL_MAX 255             /* the server refuses longer labels */

struct run_state {
    bool active;
    char jid[ZN_JID_MAX + 1];
    char jobtype[ZN_HANDLER_NAME_MAX + 1];
    char queue[ZN_QUEUE_NAME_MAX + 1];
    int timeout_s;
    int64_t started;    /* zn_clock_mono_ms() */
    int64_t watch_at;   /* the watchdog fails the job from then on */
    pid_t pgid;         /* an exec child's process group, 0 none */
};

struct worker {
    const struct zn_worker_opts *o;
    char wid[ZN_FWP_WID_MAX + 1];
    char *fetch_arg;                 /* "q1 q2 q3" */
    const char *labels[3];
    char label_sup[ZN_FWP_WID_MAX + 16];  /* "supervisor:NAME" */
    char label_queues[LABEL_MAX + 1];     /* "queues:a,b,c", cut to fit */
    struct zn_fwp_client_opts copts;
    struct zn_fwp_client *conn;      /* main thread */
    struct zn_fwp_client *beat_conn; /* beat thread */
    int wake[2];                     /* to the beat thread: T Q k x */
    int cancel[2];                   /* readable once terminating */
    pthread_t beat_thread;
    pthread_mutex_t lock;
    bool quiet;                      /* under lock */
    bool terminating;                /* under lock */
    int64_t term_deadline;           /* under lock */
    int64_t sleep_until;             /* under lock: the beat thread's wake */
    struct run_state run;            /* under lock */
    int64_t jobs;                    /* main thread */
    bool fetch_sent;                 /* main thread: a FETCH went with the
                                        last ACK; its reply comes next */
    int retry_ms;                    /* main thread: the wait after the
                                        next refused FETCH */
};

static int signal_wake_fd = -1;

/* ---- signals and requests ---------------------------------------------- */

static void
stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTSTP);
}

static void
on_signal(int sig)
{
    int saved = errno;
    char c = sig == SIGTSTP ? 'Q' : 'T';
    /* A full pipe wakes the thread all the same: nothing to do on error. */
    ssize_t n = write(signal_wake_fd, &c, 1);

    (void)n;
    errno = saved;
}

static void
wake(struct worker *w, char c)
{
    if (write(w->wake[1], &c, 1) < 0)
        ZN_LOG(ZN_WARN, "worker.wake_failed", ZN_STR("error", strerror(errno)));
}

static void
begin_quiet(struct worker *w, const char *reason)
{
    bool was;

    pthread_mutex_lock(&w->lock);
    was = w->quiet;
    w->quiet = true;
    pthread_mutex_unlock(&w->lock);
    if (!was)
        ZN_LOG(ZN_INFO, "worker.quiet", ZN_STR("wid", w->wid),
               ZN_STR("reason", reason));
}

static void
begin_terminate(struct worker *w, const char *reason)
{
    bool was;

    pthread_mutex_lock(&w->lock);
    was = w->terminating;
    if (!was) {
        w->terminating = true;
        w->term_deadline = zn_clock_mono_ms() + ZN_WORKER_TERM_GRACE_MS;
    }
    pthread_mutex_unlock(&w->lock);
    if (was)
        return;
    if (write(w->cancel[1], "x", 1) < 0)
        ZN_LOG(ZN_WARN, "worker.cancel_failed",
               ZN_STR("error", strerror(errno)));
    ZN_LOG(ZN_INFO, "worker.terminating", ZN_STR("wid", w->wid),
           ZN_STR("reason", reason));
}

static bool
stop_wanted(struct worker *w, bool *terminating)
{
    bool stop;

    pthread_mutex_lock(&w->lock);
    stop = w->quiet || w->terminating;
    if (terminating)
        *terminating = w->terminating;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

/* ---- reporting --------------------------------------------------------- */

/* Current RSS from /proc when there is one, else the peak. */
static int64_t
rss_kb(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long long resident = -1;
    struct rusage ru;
    char line[128], *p, *end;

    if (fp && fgets(line, sizeof(line), fp)) {
        p = strchr(line, ' ');
        resident = p ? strtoll(p + 1, &end, 10) : -1;
        if (!p || end == p + 1)
            resident = -1;
    }
    if (fp)
        fclose(fp);
    if (resident >= 0)
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* FAIL's argument; NULL when out of memory. */
static char *
fail_json(const char *jid, const struct zn_handler_result *res)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "jid", jid, "errtype",
                          res->errtype, "message", res->message);
    json_t *bt = json_array();
    const char *p = res->trace;
    char *text = NULL;

    while (o && bt && *p) {
        size_t n = strcspn(p, "\n");

        json_array_append_new(bt, json_stringn(p, n));
        p += n + (p[n] == '\n');
    }
    if (o && bt) {
        json_object_set(o, "backtrace", bt);
        if (res->cpu_ms >= 0)
            json_object_set_new(o, "cpu_ms", json_integer(res->cpu_ms));
        if (res->rss_kb >= 0)
            json_object_set_new(o, "rss_kb", json_integer(res->rss_kb));
        text = json_dumps(o, JSON_COMPACT);
    }
    json_decref(bt);
    json_decref(o);
    return text;
}

/*
 * ACK or FAIL on c (the worker's connection; the beat thread's when it
 * ends a job that ran out of time), with the next FETCH in the same write
 * when fetch_next: the server answers both in one wake-up instead of two
 * round trips. A refusal (-ERR: the lease expired meanwhile) is logged and
 * is not an error of the worker; a broken connection is.
 */
static int
report(struct worker *w, struct zn_fwp_client *c, const char *jid,
       const struct zn_handler_result *res, bool fetch_next,
       struct zn_err *err)
{
    char *arg;
    int rc;

    if (res->ok) {
        json_t *o = json_pack("{s:s}", "jid", jid);

        /* zenith's own fields: the attempt's usage, when measured. */
        if (o && res->cpu_ms >= 0)
            json_object_set_new(o, "cpu_ms", json_integer(res->cpu_ms));
        if (o && res->rss_kb >= 0)
            json_object_set_new(o, "rss_kb", json_integer(res->rss_kb));
        arg = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    } else {
        arg = fail_json(jid, res);
    }
    if (!arg)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    if (fetch_next)
        rc = zn_fwp_client_send2(c, res->ok ? "ACK" : "FAIL", arg, "FETCH",
                                 w->fetch_arg, err);
    else
        rc = zn_fwp_client_send(c, res->ok ? "ACK" : "FAIL", arg, err);
    free(arg);
    if (fetch_next)
        w->fetch_sent = rc == 0;
    if (rc == 0)
        rc = zn_fwp_client_recv(c, NULL, err);
    if (rc == ZN_EPROTO) {
        ZN_LOG(ZN_WARN, "job.report_refused", ZN_STR("jid", jid),
               ZN_STR("error", err->msg));
        return 0;
    }
    return rc;
}

/* ---- the beat thread --------------------------------------------------- */

static int
beat_connect(struct worker *w, struct zn_err *err)
{
    struct zn_fwp_client_opts o = w->copts;

    if (w->beat_conn)
        return 0;
    o.timeout_ms = BEAT_TIMEOUT_MS;
    return zn_fwp_client_connect(&o, &w->beat_conn, err);
}

/*
 * The watchdog fires: the job's handler is stuck (or ignores terminate).
 * Called with the lock held, which it keeps until the process ends.
 */
ZN_NORETURN static void
fire(struct worker *w, const char *errtype, int status)
{
    struct zn_handler_result res = {.ok = false, .cpu_ms = -1, .rss_kb = -1};
    struct zn_err err;
    int rc;

    if (w->run.pgid > 0)
        kill(-w->run.pgid, SIGKILL);
    snprintf(res.errtype, sizeof(res.errtype), "%s", errtype);
    if (status == ZN_WORKER_EXIT_TIMEOUT)
        snprintf(res.message, sizeof(res.message), "job ran past its "
                 "timeout of %d s", w->run.timeout_s);
    else
        snprintf(res.message, sizeof(res.message), "the worker was told to "
                 "terminate and the job did not stop within %d s",
                 ZN_WORKER_TERM_GRACE_MS / 1000);
    res.rss_kb = rss_kb();
    rc = beat_connect(w, &err);
    if (rc == 0)
        rc = report(w, w->beat_conn, w->run.jid, &res, false, &err);
    /* Unreported, the job is still safe: our connections close now. */
    if (rc < 0)
        ZN_LOG(ZN_ERROR, "job.report_failed", ZN_STR("jid", w->run.jid),
               ZN_STR("error", err.msg));
    ZN_LOG(ZN_ERROR, "job.failed", ZN_STR("jid", w->run.jid),
           ZN_STR("jobtype", w->run.jobtype), ZN_STR("queue", w->run.queue),
           ZN_INT("ms", zn_clock_mono_ms() - w->run.started),
           ZN_STR("errtype", errtype), ZN_STR("wid", w->wid));
    ZN_LOG(ZN_WARN, "worker.exit", ZN_STR("wid", w->wid),
           ZN_STR("reason", errtype), ZN_INT("status", status));
    zn_fwp_client_free(w->beat_conn);
    _exit(status);
}

static void
watchdog(struct worker *w, int64_t now)
{
    pthread_mutex_lock(&w->lock);
    if (w->run.active && now >= w->run.watch_at)
        fire(w, "timeout", ZN_WORKER_EXIT_TIMEOUT);
    if (w->run.active && w->terminating && now >= w->term_deadline)
        fire(w, "terminated", 0);
    pthread_mutex_unlock(&w->lock);
}

static void
beat_reply(struct worker *w, const char *reply)
{
    json_t *j;
    const char *state;

    if (!reply || strcmp(reply, "OK") == 0)
        return;
    j = json_loads(reply, 0, NULL);
    state = json_string_value(json_object_get(j, "state"));
    if (state && strcmp(state, "quiet") == 0)
        begin_quiet(w, "server");
    else if (state && strcmp(state, "terminate") == 0)
        begin_terminate(w, "server");
    else
        ZN_LOG(ZN_WARN, "worker.beat_reply_unknown", ZN_STR("wid", w->wid));
    json_decref(j);
}

static void
beat(struct worker *w)
{
    char *arg = NULL, *reply = NULL;
    const char *state;
    struct zn_err err;
    json_t *o;
    int rc;

    pthread_mutex_lock(&w->lock);
    state = w->terminating ? "terminate" : w->quiet ? "quiet" : NULL;
    pthread_mutex_unlock(&w->lock);
    o = json_pack("{s:s,s:I}", "wid", w->wid, "rss_kb", (json_int_t)rss_kb());
    if (o && state)
        json_object_set_new(o, "current_state", json_string(state));
    arg = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    rc = arg ? beat_connect(w, &err)
             : zn_err_set(&err, ZN_ENOMEM, "out of memory");
    if (rc == 0)
        rc = zn_fwp_client_call(w->beat_conn, "BEAT", arg, &reply, &err);
    free(arg);
    if (rc < 0) {
        ZN_LOG(ZN_WARN, "worker.beat_failed", ZN_STR("wid", w->wid),
               ZN_STR("error", err.msg));
        /* A broken connection is made again at the next beat. */
        if (rc == ZN_EIO) {
            zn_fwp_client_free(w->beat_conn);
            w->beat_conn = NULL;
        }
        return;
    }
    beat_reply(w, reply);
    free(reply);
}

/* Reads the wake pipe; false when the thread must end. */
static bool
read_wakes(struct worker *w)
{
    char buf[64];
    ssize_t n;

    while ((n = read(w->wake[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'x')
                return false;
            if (buf[i] == 'T')
                begin_terminate(w, "signal");
            else if (buf[i] == 'Q')
                begin_quiet(w, "signal");
        }
    }
    return true;
}

static int64_t
next_wake(struct worker *w, int64_t next_beat)
{
    int64_t at = next_beat;

    pthread_mutex_lock(&w->lock);
    if (w->run.active && w->run.watch_at < at)
        at = w->run.watch_at;
    if (w->run.active && w->terminating && w->term_deadline < at)
        at = w->term_deadline;
    w->sleep_until = at;
    pthread_mutex_unlock(&w->lock);
    return at;
}

static void *
beat_main(void *arg)
{
    struct worker *w = arg;
    /* The first beat at once: the server learns our RSS, we its state. */
    int64_t next_beat = zn_clock_mono_ms();
    sigset_t set;

    stop_signals(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (;;) {
        struct pollfd p = {.fd = w->wake[0], .events = POLLIN};
        int64_t left = next_wake(w, next_beat) - zn_clock_mono_ms();
        int64_t now;

        if (poll(&p, 1, left < 0 ? 0 : (int)left) > 0 && !read_wakes(w))
            break;
        now = zn_clock_mono_ms();
        if (now >= next_beat) {
            beat(w);
            next_beat = now + ZN_WORKER_BEAT_MS;
        }
        watchdog(w, zn_clock_mono_ms());
    }
    return NULL;
}

/* ---- running one job --------------------------------------------------- */

static void
on_spawn(void *ctx, pid_t pgid)
{
    struct worker *w = ctx;

    pthread_mutex_lock(&w->lock);
    w->run.pgid = pgid;
    pthread_mutex_unlock(&w->lock);
}

/* When the job must end, on the monotonic clock (see the file comment). */
static int64_t
job_deadline(int64_t start, int timeout_s, bool config_timeout, int reserve_for)
{
    int64_t d = start + (int64_t)timeout_s * 1000;
    int64_t lease = (int64_t)reserve_for * 1000, margin = lease / 5;

    if (config_timeout || reserve_for <= 0)
        return d;
    if (margin > LEASE_MARGIN_MAX_MS)
        margin = LEASE_MARGIN_MAX_MS;
    return d < start + lease - margin ? d : start + lease - margin;
}

/* Fills jr from the fetched job; false when it has no usable jid. */
static bool
describe(struct worker *w, json_t *job, struct zn_handler_job *jr,
         const struct zn_handler **h, int *reserve_for)
{
    const char *jid = json_string_value(json_object_get(job, "jid"));
    const char *type = json_string_value(json_object_get(job, "jobtype"));
    const char *queue = json_string_value(json_object_get(job, "queue"));

    if (!jid || !zn_job_jid_valid(jid, strlen(jid)))
        return false;
    jr->jid = jid;
    jr->jobtype = type ? type : "";
    jr->queue = queue ? queue : "";
    jr->job = job;
    jr->attempt = (int)json_integer_value(json_object_get(job, "attempts"));
    *reserve_for = (int)json_integer_value(json_object_get(job,
                                                           "reserve_for"));
    *h = zn_handler_find(w->o->handlers, jr->jobtype);
    jr->timeout_s = *h && (*h)->timeout_s ? (*h)->timeout_s
                    : *reserve_for > 0 ? *reserve_for : DEFAULT_TIMEOUT_S;
    jr->cancel_fd = w->cancel[0];
    jr->spawn_cb = on_spawn;
    jr->spawn_ctx = w;
    return true;
}

static void
run_begin(struct worker *w, const struct zn_handler_job *jr, bool builtin,
          int64_t start)
{
    bool earlier;

    pthread_mutex_lock(&w->lock);
    memset(&w->run, 0, sizeof(w->run));
    w->run.active = true;
    snprintf(w->run.jid, sizeof(w->run.jid), "%s", jr->jid);
    snprintf(w->run.jobtype, sizeof(w->run.jobtype), "%s", jr->jobtype);
    snprintf(w->run.queue, sizeof(w->run.queue), "%s", jr->queue);
    w->run.timeout_s = jr->timeout_s;
    w->run.started = start;
    w->run.watch_at = jr->deadline_ms + (builtin ? 0 : BACKSTOP_MS);
    /*
     * The beat thread sleeps until its next beat (15 s at most) and then
     * sees the deadline; only one before that needs it awake now. Waking
     * it for every job cost two context switches a job.
     */
    earlier = w->run.watch_at < w->sleep_until;
    pthread_mutex_unlock(&w->lock);
    if (earlier)
        wake(w, 'k');
}

static void
log_outcome(const struct zn_handler_job *jr,
            const struct zn_handler_result *res, int64_t ms)
{
    if (res->ok)
        ZN_LOG(ZN_INFO, "job.done", ZN_STR("jid", jr->jid),
               ZN_STR("jobtype", jr->jobtype), ZN_STR("queue", jr->queue),
               ZN_INT("ms", ms), ZN_INT("cpu_ms", res->cpu_ms),
               ZN_INT("rss_kb", res->rss_kb));
    else
        ZN_LOG(ZN_WARN, "job.failed", ZN_STR("jid", jr->jid),
               ZN_STR("jobtype", jr->jobtype), ZN_STR("queue", jr->queue),
               ZN_INT("ms", ms), ZN_STR("errtype", res->errtype),
               ZN_INT("cpu_ms", res->cpu_ms), ZN_INT("rss_kb", res->rss_kb));
}

/* After a job: true when the RSS is above the limit (the worker exits). */
static bool
over_memory(struct worker *w)
{
    struct rusage ru;
    int64_t kb;

    if (w->o->memory_mb <= 0)
        return false;
    /* The RSS is at most its peak: one syscall instead of reading /proc. */
    if (getrusage(RUSAGE_SELF, &ru) == 0 &&
        ru.ru_maxrss <= w->o->memory_mb * 1024)
        return false;
    kb = rss_kb();
    if (kb <= w->o->memory_mb * 1024)
        return false;
    ZN_LOG(ZN_WARN, "worker.memory_exceeded", ZN_STR("wid", w->wid),
           ZN_INT("rss_kb", kb), ZN_INT("memory_mb", w->o->memory_mb),
           ZN_INT("jobs", w->jobs));
    return true;
}

/*
 * Runs one job and reports it; *last when the worker must end after it
 * (over its memory, or max_jobs reached), in which case no FETCH goes
 * with the report.
 */
static int
run_job(struct worker *w, const char *text, bool *last, struct zn_err *err)
{
    struct zn_handler_job jr = {.json = text, .json_len = strlen(text)};
    struct zn_handler_result res;
    const struct zn_handler *h = NULL;
    json_t *job = json_loads(text, 0, NULL);
    int64_t start = zn_clock_mono_ms();
    int reserve_for = 0, rc;

    *last = false;
    if (!describe(w, job, &jr, &h, &reserve_for)) {
        /* Without a jid there is nothing to answer: the lease ends it. */
        ZN_LOG(ZN_ERROR, "worker.bad_job", ZN_STR("wid", w->wid));
        json_decref(job);
        return 0;
    }
    jr.deadline_ms = job_deadline(start, jr.timeout_s,
                                  h && h->timeout_s > 0, reserve_for);
    run_begin(w, &jr, !h || h->kind == ZN_HANDLER_BUILTIN, start);
    ZN_LOG(ZN_INFO, "job.started", ZN_STR("jid", jr.jid),
           ZN_STR("jobtype", jr.jobtype), ZN_STR("queue", jr.queue),
           ZN_INT("attempt", jr.attempt));
    zn_handler_run(w->o->handlers, &jr, &res);
    pthread_mutex_lock(&w->lock);
    w->run.active = false;
    pthread_mutex_unlock(&w->lock);
    log_outcome(&jr, &res, zn_clock_mono_ms() - start);
    w->jobs++;
    *last = (w->o->max_jobs > 0 && w->jobs >= w->o->max_jobs) ||
            over_memory(w);
    rc = report(w, w->conn, jr.jid, &res, !*last && !stop_wanted(w, NULL),
                err);
    json_decref(job);
    return rc;
}

/* ---- the fetch loop ---------------------------------------------------- */

/*
 * One FETCH. 1 and *job (malloc'd) when a job came, 0 when none did,
 * 2 when terminate came first (the reply is left unread: closing the
 * connection hands a job that was on its way to another worker), or a
 * negative code.
 */
static int
fetch(struct worker *w, char **job, struct zn_err *err)
{
    struct pollfd p[2] = {
        {.fd = zn_fwp_client_fd(w->conn), .events = POLLIN},
        {.fd = w->cancel[0], .events = POLLIN},
    };
    int rc;

    *job = NULL;
    rc = w->fetch_sent ? 0
                       : zn_fwp_client_send(w->conn, "FETCH", w->fetch_arg,
                                            err);
    w->fetch_sent = false;
    if (rc < 0)
        return rc;
    for (;;) {
        if (zn_fwp_client_buffered(w->conn))
            break; /* the reply came with the last one's */
        rc = poll(p, 2, FETCH_POLL_MS);
        if (rc >= 0 || errno != EINTR)
            break;
    }
    if (rc > 0 && p[1].revents && !p[0].revents)
        return 2;
    rc = zn_fwp_client_recv(w->conn, job, err);
    if (rc < 0)
        return rc;
    return *job ? 1 : 0;
}

/*
 * The server answered a FETCH with an error (its store failed, say): the
 * connection is fine, so the worker waits and asks again, as Horizon's
 * worker sleeps after an error, longer each time the errors go on.
 * Terminate ends the wait at once; quiet, which wakes nothing here, is
 * seen within FETCH_RETRY_MS (work_loop then returns). A lost connection
 * ends the loop at the next FETCH.
 */
static void
fetch_refused(struct worker *w, const struct zn_err *err)
{
    int wait_ms = w->retry_ms ? w->retry_ms : FETCH_RETRY_MS;
    int64_t end = zn_clock_mono_ms() + wait_ms, now;

    w->retry_ms = wait_ms * 2 < FETCH_RETRY_MAX_MS ? wait_ms * 2
                                                   : FETCH_RETRY_MAX_MS;
    ZN_LOG(ZN_WARN, "worker.fetch_refused", ZN_STR("wid", w->wid),
           ZN_STR("error", err->msg), ZN_INT("retry_ms", wait_ms));
    /* In slices of FETCH_RETRY_MS, to see a quiet; a cancel ends it. */
    while ((now = zn_clock_mono_ms()) < end && !stop_wanted(w, NULL) &&
           !zn_handler_wait(w->cancel[0], now + FETCH_RETRY_MS < end
                                              ? now + FETCH_RETRY_MS
                                              : end))
        ;
}

static int
work_loop(struct worker *w, struct zn_err *err)
{
    bool terminating = false, last;
    char *job;
    int rc;

    for (;;) {
        /*
         * A FETCH that went with the last ACK is waited for even when
         * quiet: a job it brings was leased to us, and is run.
         */
        if (!w->fetch_sent && stop_wanted(w, NULL))
            return 0;
        zn_exec_reap_strays();
        rc = fetch(w, &job, err);
        if (rc == ZN_EPROTO) {
            fetch_refused(w, err);
            continue;
        }
        w->retry_ms = 0;
        if (rc < 0 || rc == 2)
            return rc < 0 ? rc : 0;
        if (rc == 0)
            continue;
        if (stop_wanted(w, &terminating) && terminating) {
            /* Not started: the connection's end hands it out again. */
            free(job);
            return 0;
        }
        rc = run_job(w, job, &last, err);
        free(job);
        if (rc < 0 || last)
            return rc;
    }
}

/* ---- set-up and tear-down ---------------------------------------------- */

static int
make_pipes(struct worker *w, struct zn_err *err)
{
    int *fds[] = {w->wake, w->cancel};

    for (size_t i = 0; i < ZN_ARRAY_LEN(fds); i++) {
        if (pipe(fds[i]) < 0)
            return zn_err_set(err, ZN_EIO, "cannot create a pipe: %s",
                              strerror(errno));
        for (int k = 0; k < 2; k++) {
            fcntl(fds[i][k], F_SETFD, FD_CLOEXEC);
            fcntl(fds[i][k], F_SETFL, O_NONBLOCK);
        }
    }
    return 0;
}

static int
make_fetch_arg(struct worker *w, struct zn_err *err)
{
    size_t len = 1, off = 0;

    for (size_t i = 0; i < w->o->nqueues; i++)
        len += strlen(w->o->queues[i]) + 1;
    w->fetch_arg = malloc(len);
    if (!w->fetch_arg)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    for (size_t i = 0; i < w->o->nqueues; i++) {
        size_t n = strlen(w->o->queues[i]);

        if (i)
            w->fetch_arg[off++] = ' ';
        memcpy(w->fetch_arg + off, w->o->queues[i], n);
        off += n;
    }
    w->fetch_arg[off] = '\0';
    return 0;
}

/*
 * HELLO's labels: "zenith", "queues:a,b,c" (cut at a comma to fit the
 * server's label limit) and "supervisor:NAME" when a supervisor runs us:
 * INFO and `zenith workers` show them.
 */
static void
make_labels(struct worker *w)
{
    size_t n = 0, len;

    w->labels[n++] = "zenith";
    len = (size_t)snprintf(w->label_queues, sizeof(w->label_queues),
                           "queues:%s", w->fetch_arg);
    for (char *p = w->label_queues; *p; p++)
        if (*p == ' ')
            *p = ',';
    if (len >= sizeof(w->label_queues)) {
        char *comma = strrchr(w->label_queues, ',');

        if (comma)
            *comma = '\0';
    }
    w->labels[n++] = w->label_queues;
    if (w->o->supervisor && *w->o->supervisor) {
        snprintf(w->label_sup, sizeof(w->label_sup), "supervisor:%s",
                 w->o->supervisor);
        w->labels[n++] = w->label_sup;
    }
    w->copts = (struct zn_fwp_client_opts){
        .addr = w->o->server, .password = w->o->password, .wid = w->wid,
        .labels = w->labels, .nlabels = n, .timeout_ms = CALL_TIMEOUT_MS};
}

static int
set_up(struct worker *w, const struct zn_worker_opts *o, struct zn_err *err)
{
    unsigned char rnd[6];
    int rc;

    w->o = o;
    if (o->wid) {
        snprintf(w->wid, sizeof(w->wid), "%s", o->wid);
    } else {
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(w->wid, sizeof(w->wid), rnd, sizeof(rnd));
    }
    rc = make_fetch_arg(w, err);
    if (rc == 0)
        make_labels(w);
    if (rc == 0)
        rc = make_pipes(w, err);
    if (rc == 0)
        rc = zn_fwp_client_connect(&w->copts, &w->conn, err);
    if (rc == 0)
        rc = beat_connect(w, err);
    return rc;
}

static void
tear_down(struct worker *w)
{
    zn_fwp_client_free(w->conn);
    zn_fwp_client_free(w->beat_conn);
    for (int k = 0; k < 2; k++) {
        if (w->wake[k] >= 0)
            close(w->wake[k]);
        if (w->cancel[k] >= 0)
            close(w->cancel[k]);
    }
    free(w->fetch_arg);
}

struct saved_signals {
    sigset_t mask;
    struct sigaction term, intr, tstp, pipe;
};

static void
take_signals(struct worker *w, struct saved_signals *s)
{
    struct sigaction sa;
    sigset_t set;

    signal_wake_fd = w->wake[1];
    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, &s->mask);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &s->term);
    sigaction(SIGINT, &sa, &s->intr);
    sigaction(SIGTSTP, &sa, &s->tstp);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &s->pipe);
}

/*
 * The beat thread is gone: a stop signal that came since is pending on
 * the process. We are stopping anyway, so it is taken here rather than
 * delivered, with its old disposition, when the mask is restored.
 */
static void
give_back_signals(const struct saved_signals *s)
{
    struct timespec zero = {0, 0};
    sigset_t set;

    stop_signals(&set);
    while (sigtimedwait(&set, NULL, &zero) > 0)
        ;
    sigaction(SIGTERM, &s->term, NULL);
    sigaction(SIGINT, &s->intr, NULL);
    sigaction(SIGTSTP, &s->tstp, NULL);
    sigaction(SIGPIPE, &s->pipe, NULL);
    pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
    signal_wake_fd = -1;
}

/* Starts the beat thread, runs the loop, stops the thread. */
static int
run_threads(struct worker *w, struct zn_err *err)
{
    struct saved_signals saved;
    int rc;

    take_signals(w, &saved);
    rc = pthread_create(&w->beat_thread, NULL, beat_main, w);
    if (rc != 0) {
        give_back_signals(&saved);
        return zn_err_set(err, ZN_EIO, "cannot start the beat thread: %s",
                          strerror(rc));
    }
    ZN_LOG(ZN_INFO, "worker.started", ZN_STR("wid", w->wid),
           ZN_STR("server", w->o->server), ZN_STR("queues", w->fetch_arg),
           ZN_INT("pid", getpid()));
    rc = work_loop(w, err);
    /* Only the connection gives ZN_EIO: a job may be on its way here. */
    if (rc == ZN_EIO)
        rc = ZN_WORKER_LOST;
    wake(w, 'x');
    pthread_join(w->beat_thread, NULL);
    give_back_signals(&saved);
    ZN_LOG(ZN_INFO, "worker.stopped", ZN_STR("wid", w->wid),
           ZN_INT("jobs", w->jobs), ZN_BOOL("ok", rc == 0));
    return rc;
}

int
zn_worker_run(const struct zn_worker_opts *o, struct zn_err *err)
{
    struct worker *w = calloc(1, sizeof(*w));
    bool curl_ready = false;
    int rc;

    if (!w)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    w->wake[0] = w->wake[1] = w->cancel[0] = w->cancel[1] = -1;
    pthread_mutex_init(&w->lock, NULL);
    rc = sodium_init() < 0 ? zn_err_set(err, ZN_EIO, "cannot initialise "
                                        "libsodium")
                           : zn_webhook_global_init(err);
    curl_ready = rc == 0;
    /* Orphans of exec handlers are reaped here, not left as zombies. */
    if (rc == 0 && zn_exec_become_subreaper() < 0)
        ZN_LOG(ZN_DEBUG, "worker.no_subreaper", ZN_STR("error",
                                                       strerror(errno)));
    if (rc == 0)
        rc = set_up(w, o, err);
    if (rc == 0)
        rc = run_threads(w, err);
    tear_down(w);
    if (curl_ready)
        zn_webhook_global_cleanup();
    pthread_mutex_destroy(&w->lock);
    free(w);
    return rc;
}
