/*
 * server.c - the FWP server. Each connection is a small state machine:
 *
 *   HELLO --(HELLO ok)--> READY --(END, error, EOF)--> CLOSING (freed
 *                                                     after the iteration)
 *
 * While a connection waits for its push to be durable (held) or for a job
 * (blocking FETCH), its input is left unread in its buffer, so replies
 * always leave in the order of the commands. Over-long lines are skipped
 * as they arrive and answered with an error; they are never buffered whole.
 *
 * Replies are written to the socket directly at the end of the loop turn
 * that made them (zn_fwp_server_flush), in one write per connection, not
 * one loop turn later through the bufferevent's write event: that saved
 * two epoll_ctl calls and a loop turn per request. Only a reply the
 * socket cannot take at once is left to the bufferevent (EV_WRITE is
 * enabled just until its output drains). Once they are out and no reply
 * waits for a sync, the engine's idle hook lets the store do the work it
 * deferred (the inserts of answered pushes).
 *
 * Consumers register under their wid; a wid may have several connections
 * (client libraries keep a pool). When the last one closes, the jobs that
 * worker holds are handed out again at once, recorded as "worker gone".
 *
 * This file has the connections, the job commands (HELLO, PUSH, PUSHB,
 * FETCH, ACK, FAIL, BEAT) and the loop's hooks; server_admin.c the
 * commands that inspect and administer; server_int.h what they share.
 */
#include "compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>

#include "common/clock.h"
#include "common/json_plain.h"
#include "common/log.h"
#include "fwp/server_int.h"

#define FETCH_WAIT_MS 2000
#define PUSHB_MAX 10000
#define TICK_MS 100
/*
 * The engine's transaction commits at most this late, so many commands
 * share one: ACKs need not wait for an fsync (a lost ACK only runs a job
 * again), and pushes are durable in the store's journal once synced.
 * Admin commands hold their reply for the commit, which then runs at once.
 */
#define COMMIT_DELAY_MS 10
#define HELLO_LINE_MAX (16 * 1024)  /* before HELLO nobody gets more */
#define OUTPUT_MAX (64 * 1024 * 1024) /* stop reading while over this */

static void process_input(struct conn *c);

/* ---- workers ---------------------------------------------------------- */

static struct worker *
worker_find(struct zn_fwp_server *s, const char *wid)
{
    struct worker *w;

    LIST_FOREACH(w, &s->workers, link)
        if (strcmp(w->wid, wid) == 0)
            return w;
    return NULL;
}

static void
worker_free(struct worker *w)
{
    free(w->hostname);
    json_decref(w->labels);
    free(w);
}

static int
worker_attach(struct conn *c, const struct zn_fwp_hello *h)
{
    struct zn_fwp_server *s = c->srv;
    struct worker *w = worker_find(s, h->wid);

    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return ZN_ENOMEM;
        snprintf(w->wid, sizeof(w->wid), "%s", h->wid);
        w->hostname = strdup(h->hostname ? h->hostname : "");
        w->labels = json_array();
        for (size_t i = 0; w->labels && i < h->nlabels; i++)
            if (json_array_append_new(w->labels,
                                      json_string(h->labels[i])) < 0) {
                json_decref(w->labels);
                w->labels = NULL;
            }
        w->pid = h->pid;
        w->started_at = zn_engine_now(s->engine);
        w->last_beat = w->started_at;
        w->rss_kb = -1;
        if (!w->hostname || !w->labels) {
            worker_free(w);
            return ZN_ENOMEM;
        }
        LIST_INSERT_HEAD(&s->workers, w, link);
        ZN_LOG(ZN_INFO, "worker.connected", ZN_STR("wid", w->wid),
               ZN_STR("hostname", w->hostname), ZN_INT("pid", w->pid));
    }
    w->conns++;
    c->worker = w;
    return 0;
}

/* The last connection of a worker closed: it cannot be working any job. */
static void
worker_detach(struct conn *c)
{
    struct worker *w = c->worker;
    struct zn_engine_failure f = {
        .outcome = "worker gone",
        .message = "the worker's connection closed before ACK or FAIL",
        .cpu_ms = -1, .rss_kb = -1, .at_once = true,
    };
    struct zn_err err;
    bool deferred = false;
    size_t n = 0;

    c->worker = NULL;
    if (!w || --w->conns > 0)
        return;
    /*
     * On shutdown the worker is not gone: it keeps working its jobs and
     * may ACK them after a restart; their leases cover the rest. A
     * supervised worker's jobs wait for the supervisor, which can tell
     * how the process died (gone_cb).
     */
    if (c->srv->closing_all)
        deferred = true;
    else if (c->srv->gone_cb)
        deferred = c->srv->gone_cb(c->srv->gone_ctx, w->wid);
    if (!deferred &&
        zn_engine_release_worker(c->srv->engine, w->wid, &f, &n, &err) < 0)
        ZN_LOG(ZN_ERROR, "worker.release_failed", ZN_STR("wid", w->wid),
               ZN_STR("error", err.msg));
    ZN_LOG(ZN_INFO, "worker.gone", ZN_STR("wid", w->wid),
           ZN_INT("jobs_released", n), ZN_BOOL("deferred", deferred));
    LIST_REMOVE(w, link);
    worker_free(w);
}

size_t
zn_fwp_server_signal_workers(struct zn_fwp_server *s, const char *wid,
                             const char *state)
{
    struct worker *w;
    size_t n = 0;

    LIST_FOREACH(w, &s->workers, link) {
        if (wid && strcmp(w->wid, wid) != 0)
            continue;
        /* terminate is stronger than quiet: never weaken a request. */
        if (strcmp(w->state, "terminate") != 0)
            snprintf(w->state, sizeof(w->state), "%s", state);
        n++;
    }
    return n;
}

void
zn_fwp_server_set_gone_cb(struct zn_fwp_server *s, zn_fwp_gone_cb *cb,
                          void *ctx)
{
    s->gone_cb = cb;
    s->gone_ctx = ctx;
}

void
zn_fwp_server_set_push_cb(struct zn_fwp_server *s, zn_fwp_push_cb *cb,
                          void *ctx)
{
    s->push_cb = cb;
    s->push_ctx = ctx;
}

void
zn_fwp_server_set_control_cb(struct zn_fwp_server *s, zn_fwp_control_cb *cb,
                             void *ctx)
{
    s->control_cb = cb;
    s->control_ctx = ctx;
}

/* ---- connections ------------------------------------------------------ */

static void
fetch_stop_waiting(struct conn *c)
{
    if (!c->waiting)
        return;
    c->waiting = false;
    TAILQ_REMOVE(&c->srv->waiters, c, wait_link);
    evtimer_del(c->fetch_timer);
    zn_fwp_names_free(c->queues, c->nqueues);
    c->nqueues = 0;
}

/* Marks c closing; it is freed after the loop iteration. */
static void
conn_close(struct conn *c)
{
    struct zn_fwp_server *s = c->srv;

    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    fetch_stop_waiting(c);
    if (c->resuming) {
        TAILQ_REMOVE(&s->resumed, c, resume_link);
        c->resuming = false;
    }
    if (c->held) {
        TAILQ_REMOVE(&s->held, c, held_link);
        release_held(c);
    }
    if (c->unsent) {
        TAILQ_REMOVE(&s->unsent, c, unsent_link);
        c->unsent = false;
    }
    worker_detach(c);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    TAILQ_REMOVE(&s->all, c, all_link);
    TAILQ_INSERT_TAIL(&s->dead, c, dead_link);
    s->nconns--;
}

static void
conn_free(struct conn *c)
{
    if (c->fetch_timer)
        event_free(c->fetch_timer);
    bufferevent_free(c->bev);
    free(c);
}

/* ---- commands --------------------------------------------------------- */

static void
cmd_hello(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct zn_fwp_hello h;
    struct zn_err err;

    if (c->state != C_HELLO) {
        reply_err(c, "HELLO: already said");
        return;
    }
    if (zn_fwp_parse_hello(cmd->arg, cmd->arg_len, &h, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    if (c->srv->password) {
        char want[65];

        zn_fwp_pwdhash(c->srv->password, c->salt,
                       c->srv->opts.hash_iterations, want);
        if (!h.pwdhash[0] || !zn_fwp_hash_equal(want, h.pwdhash)) {
            sodium_memzero(want, sizeof(want));
            zn_fwp_hello_release(&h);
            ZN_LOG(ZN_WARN, "fwp.auth_failed", ZN_STR("peer", c->peer));
            reply_err(c, "invalid password");
            /* As Faktory: no second guess on the same connection. */
            c->ending = true;
            return;
        }
        sodium_memzero(want, sizeof(want));
    }
    if (h.wid[0] && worker_attach(c, &h) < 0) {
        zn_fwp_hello_release(&h);
        reply_err(c, "out of memory");
        return;
    }
    zn_fwp_hello_release(&h);
    c->state = C_READY;
    reply_ok(c);
}

static void
cmd_push(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    const struct zn_engine_config *cfg = zn_engine_config(c->srv->engine);
    struct zn_job *job = NULL;
    struct zn_err err;

    if (zn_job_parse(cmd->arg, cmd->arg_len, &cfg->limits,
                     zn_engine_now(c->srv->engine), &job, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    if (c->srv->push_cb)
        c->srv->push_cb(c->srv->push_ctx, &job, 1);
    if (zn_engine_push(c->srv->engine, &job, 1, &err) < 0 || err.code) {
        reply_err(c, err.msg);
    } else {
        ZN_LOG(ZN_DEBUG, "job.pushed", ZN_STR("jid", job->jid),
               ZN_STR("queue", job->queue), ZN_STR("jobtype", job->jobtype));
        hold_push(c, "+OK\r\n", NULL);
    }
    zn_job_free(job);
}

/*
 * A PUSHB batch: its elements as the plain reader found them
 * (common/json_plain.h), or as jansson's tree when the text is not plain
 * JSON. Each plain element goes through zn_job_parse, as PUSH's job does.
 */
struct batch {
    struct zn_json_val *plain; /* n elements, or NULL */
    json_t *arr;
    size_t n;
};

/*
 * 0, or an error with the reply's message in err. An empty array leaves
 * both plain and arr NULL: n is 0 then.
 */
static int
batch_read(const struct zn_fwp_cmd *cmd, size_t max_payload,
           struct batch *b, struct zn_err *err)
{
    json_error_t jerr;

    memset(b, 0, sizeof(*b));
    /*
     * Over the limit, a job's size is its tree's (pushb_tree_job). The
     * plain reader gives up when out of memory too: jansson then says so.
     */
    if (cmd->arg_len <= max_payload &&
        zn_json_plain_array(cmd->arg, cmd->arg_len, PUSHB_MAX, &b->plain,
                            &b->n))
        return 0;
    b->arr = json_loadb(cmd->arg, cmd->arg_len, 0, &jerr);
    b->n = json_array_size(b->arr);
    if (!b->arr)
        return zn_fwp_json_error("PUSHB", &jerr, err);
    if (!json_is_array(b->arr) || b->n > PUSHB_MAX)
        return zn_err_set(err, ZN_EINVAL, "PUSHB: must be a JSON array of "
                          "at most %d jobs", PUSHB_MAX);
    return 0;
}

static void
batch_release(struct batch *b)
{
    free(b->plain);
    json_decref(b->arr);
}

/* Element i of a tree batch as a job. */
static int
pushb_tree_job(json_t *el, size_t arg_len, const struct zn_job_limits *lim,
               int64_t now, struct zn_job **job, struct zn_err *err)
{
    int rc = 0;

    /* Only a batch over the limit can hold a job over it. */
    if (arg_len > lim->max_payload)
        rc = zn_job_check_size(json_dumpb(el, NULL, 0, JSON_COMPACT |
                                                           JSON_ENCODE_ANY),
                               lim, err);
    return rc < 0 ? rc : zn_job_parse_json(el, lim, now, job, err);
}

/* Lists element i as refused: under its jid when it has one, else "#i". */
static int
pushb_refuse(const struct batch *b, size_t i, const char *msg,
             json_t *refused)
{
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    const struct zn_json_val *v = NULL;
    char key[32];
    const char *name = key;
    size_t len, n;
    json_t *jid;

    len = (size_t)snprintf(key, sizeof(key), "#%zu", i);
    if (b->plain) {
        if (b->plain[i].type == ZN_JSON_PLAIN_OBJECT &&
            zn_json_plain_object(b->plain[i].p, b->plain[i].n, m, &n))
            v = zn_json_plain_get(m, n, "jid");
        if (v && v->type == ZN_JSON_PLAIN_STRING) {
            name = v->p;
            len = v->n;
        }
    } else {
        jid = json_object_get(json_array_get(b->arr, i), "jid");
        if (json_is_string(jid)) {
            name = json_string_value(jid);
            len = json_string_length(jid);
        }
    }
    return json_object_setn_new(refused, name, len, json_string(msg)) < 0
               ? ZN_ENOMEM : 0;
}

/*
 * Parses every element of b into jobs[] (the good ones, *ok of them);
 * the refused ones go into refused as "jid" (or "#index"): "reason".
 * Returns 0 or ZN_ENOMEM.
 */
static int
pushb_parse(struct conn *c, const struct batch *b, size_t arg_len,
            struct zn_job **jobs, size_t *ok, json_t *refused)
{
    const struct zn_engine_config *cfg = zn_engine_config(c->srv->engine);
    int64_t now = zn_engine_now(c->srv->engine);
    struct zn_err perr;

    for (size_t i = 0; i < b->n; i++) {
        const char *text;
        size_t n;
        int rc;

        if (b->plain) {
            text = zn_json_plain_text(&b->plain[i], &n);
            rc = zn_job_parse(text, n, &cfg->limits, now, &jobs[*ok], &perr);
        } else {
            rc = pushb_tree_job(json_array_get(b->arr, i), arg_len,
                                &cfg->limits, now, &jobs[*ok], &perr);
        }

        if (rc == 0)
            (*ok)++;
        else if (rc == ZN_ENOMEM ||
                 pushb_refuse(b, i, perr.msg, refused) < 0)
            return ZN_ENOMEM;
    }
    return 0;
}

/*
 * PUSHB [job, ...]: the good jobs are accepted, the refused ones listed
 * in one reply, {"jid": "reason", ...} ({} when all went in), as Faktory.
 */
static void
cmd_pushb(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    const struct zn_engine_config *cfg = zn_engine_config(c->srv->engine);
    struct zn_job **jobs = NULL;
    struct zn_err *errs = NULL;
    struct batch b;
    json_t *refused = json_object();
    size_t ok = 0;
    char *text = NULL, *reply = NULL;
    struct zn_err err;

    if (batch_read(cmd, cfg->limits.max_payload, &b, &err) < 0) {
        reply_err(c, err.msg);
        goto done;
    }
    jobs = calloc(b.n ? b.n : 1, sizeof(*jobs));
    errs = calloc(b.n ? b.n : 1, sizeof(*errs));
    if (!jobs || !errs || !refused ||
        pushb_parse(c, &b, cmd->arg_len, jobs, &ok, refused) < 0)
        goto oom;
    if (ok && c->srv->push_cb)
        c->srv->push_cb(c->srv->push_ctx, jobs, ok);
    if (ok && zn_engine_push(c->srv->engine, jobs, ok, errs) < 0) {
        reply_err(c, errs[0].msg);
        goto done;
    }
    for (size_t i = 0; i < ok; i++)
        if (errs[i].code &&
            json_object_set_new(refused, jobs[i]->jid,
                                json_string(errs[i].msg)) < 0)
            goto oom;
    text = json_dumps(refused, JSON_COMPACT);
    reply = text ? bulk_text(text) : NULL;
    if (!reply)
        goto oom;
    hold_push(c, reply, reply);
    goto done;
oom:
    reply_err(c, "out of memory");
done:
    for (size_t i = 0; jobs && i < ok; i++)
        zn_job_free(jobs[i]);
    free(jobs);
    free(errs);
    free(text);
    json_decref(refused);
    batch_release(&b);
}

/* Tries to hand c a job; true when it got one (or an error was sent). */
static bool
fetch_try(struct conn *c)
{
    struct zn_job *job = NULL;
    struct zn_err err;
    char *text;

    if (zn_engine_fetch(c->srv->engine, (const char *const *)c->queues,
                        c->nqueues, c->worker ? c->worker->wid : "",
                        &job, &err) < 0) {
        reply_err(c, err.msg);
        return true;
    }
    if (!job)
        return false;
    text = zn_job_encode(job, true);
    if (text) {
        reply_bulk(c, text);
    } else {
        /* A damaged row: no worker can run it, so it must not wait. */
        struct zn_engine_failure f = {
            .outcome = "failed", .errtype = "unreadable",
            .message = "the stored job cannot be encoded",
            .cpu_ms = -1, .rss_kb = -1,
        };

        if (zn_engine_fail(c->srv->engine, job->jid, NULL, &f, &err) == 0) {
            reply_err(c, "FETCH: the next job could not be read; it was "
                      "failed");
        } else {
            /* Its lease ends it: reserve_for, then the retry rule. */
            ZN_LOG(ZN_ERROR, "job.unreadable_not_failed",
                   ZN_STR("jid", job->jid), ZN_STR("error", err.msg));
            reply_err(c, "FETCH: the next job could not be read");
        }
    }
    ZN_LOG(ZN_DEBUG, "job.fetched", ZN_STR("jid", job->jid),
           ZN_STR("queue", job->queue), ZN_STR("wid", job->worker));
    free(text);
    zn_job_free(job);
    return true;
}

static void
fetch_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    fetch_stop_waiting(c);
    reply_raw(c, "$-1\r\n");
    process_input(c);
}

static void
cmd_fetch(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct timeval tv = zn_clock_tv(FETCH_WAIT_MS);
    struct zn_err err;
    bool quiet;
    int n;

    if (!c->worker) {
        reply_err(c, "FETCH: only a consumer (HELLO with a wid) may fetch");
        return;
    }
    n = zn_fwp_split_names(cmd->arg, cmd->arg_len, c->queues,
                           FETCH_QUEUES_MAX, &err);
    if (n < 0) {
        reply_err(c, err.msg);
        return;
    }
    c->nqueues = (size_t)n;
    if (n == 0) {
        reply_err(c, "FETCH: at least one queue is required");
        return;
    }
    quiet = c->worker->state[0] != '\0';
    if (quiet || fetch_try(c)) {
        /* A quiet or terminating worker gets no more jobs. */
        if (quiet)
            reply_raw(c, "$-1\r\n");
        zn_fwp_names_free(c->queues, c->nqueues);
        c->nqueues = 0;
        return;
    }
    c->waiting = true;
    TAILQ_INSERT_TAIL(&c->srv->waiters, c, wait_link);
    evtimer_add(c->fetch_timer, &tv);
}

static void
cmd_ack(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct zn_fwp_ack a;
    struct zn_err err;

    if (zn_fwp_parse_ack(cmd->arg, cmd->arg_len, &a, &err) < 0 ||
        zn_engine_ack_usage(c->srv->engine, a.jid,
                            c->worker ? c->worker->wid : NULL, a.cpu_ms,
                            a.rss_kb, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    ZN_LOG(ZN_DEBUG, "job.acked", ZN_STR("jid", a.jid));
    if (c->worker)
        c->worker->jobs++;
    reply_ok(c);
}

static void
cmd_fail(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct zn_fwp_fail f;
    struct zn_engine_failure ef = {.outcome = "failed"};
    struct zn_err err;

    if (zn_fwp_parse_fail(cmd->arg, cmd->arg_len, &f, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    ef.cpu_ms = f.cpu_ms;
    ef.rss_kb = f.rss_kb;
    ef.errtype = f.errtype ? f.errtype : "unknown";
    ef.message = f.message;
    ef.backtrace = f.backtrace;
    if (zn_engine_fail(c->srv->engine, f.jid,
                       c->worker ? c->worker->wid : NULL, &ef, &err) < 0) {
        reply_err(c, err.msg);
    } else {
        if (c->worker)
            c->worker->jobs++;
        reply_ok(c);
    }
    zn_fwp_fail_release(&f);
}

static void
cmd_beat(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct zn_fwp_beat b;
    struct worker *w;
    struct zn_err err;
    char reply[96];

    if (zn_fwp_parse_beat(cmd->arg, cmd->arg_len, &b, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    w = worker_find(c->srv, b.wid);
    if (!w || w != c->worker) {
        snprintf(reply, sizeof(reply), "BEAT: unknown worker '%.20s': "
                 "HELLO with this wid first", b.wid);
        if (w)
            snprintf(reply, sizeof(reply), "BEAT: wid '%.20s' is not the "
                     "worker of this connection", b.wid);
        reply_err(c, reply);
        return;
    }
    w->last_beat = zn_engine_now(c->srv->engine);
    if (b.rss_kb >= 0)
        w->rss_kb = b.rss_kb;
    if (!w->state[0]) {
        reply_ok(c);
        return;
    }
    snprintf(reply, sizeof(reply), "{\"state\":\"%s\"}", w->state);
    reply_bulk(c, reply);
}

static void
dispatch(struct conn *c, const char *line, size_t len)
{
    struct zn_fwp_cmd cmd;
    struct zn_err err;

    c->srv->commands++;
    if (zn_fwp_parse_line(line, len, &cmd, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    if (cmd.verb == ZN_FWP_END) {
        c->ending = true;
        return;
    }
    if (c->state == C_HELLO && cmd.verb != ZN_FWP_HELLO) {
        char msg[80];

        snprintf(msg, sizeof(msg), "%s: say HELLO first",
                 zn_fwp_verb_name(cmd.verb));
        reply_err(c, msg);
        return;
    }
    switch (cmd.verb) {
    case ZN_FWP_HELLO: cmd_hello(c, &cmd); break;
    case ZN_FWP_PUSH: cmd_push(c, &cmd); break;
    case ZN_FWP_PUSHB: cmd_pushb(c, &cmd); break;
    case ZN_FWP_FETCH: cmd_fetch(c, &cmd); break;
    case ZN_FWP_ACK: cmd_ack(c, &cmd); break;
    case ZN_FWP_FAIL: cmd_fail(c, &cmd); break;
    case ZN_FWP_BEAT: cmd_beat(c, &cmd); break;
    case ZN_FWP_INFO: zn__fwp_cmd_info(c); break;
    case ZN_FWP_FLUSH: zn__fwp_cmd_flush(c); break;
    case ZN_FWP_QUEUE: zn__fwp_cmd_queue(c, &cmd); break;
    case ZN_FWP_MUTATE: zn__fwp_cmd_mutate(c, &cmd); break;
    case ZN_FWP_JOBS: zn__fwp_cmd_jobs(c, &cmd); break;
    case ZN_FWP_CONTROL: zn__fwp_cmd_control(c, &cmd); break;
    case ZN_FWP_END:
    case ZN_FWP_VERB_COUNT: break;
    }
}

/* ---- input ------------------------------------------------------------ */

/* Length of the line's content: without its LF and an optional CR. */
static size_t
content_len(struct evbuffer *in, size_t len)
{
    struct evbuffer_ptr p;
    char last = 0;

    if (len == 0 || evbuffer_ptr_set(in, &p, len - 1, EVBUFFER_PTR_SET) < 0 ||
        evbuffer_copyout_from(in, &p, &last, 1) != 1)
        return len;
    return last == '\r' ? len - 1 : len;
}

/* Skips over-long input as it arrives; true when c must wait for more. */
static bool
discard_long(struct conn *c, struct evbuffer *in, size_t avail, size_t max,
             ev_ssize_t eol_at, size_t eol_len)
{
    char msg[96];

    if (eol_at < 0) {
        c->scanned = avail;
        if (c->discarding || avail > max + 1) {
            c->discarding = true;
            evbuffer_drain(in, avail);
            c->scanned = 0;
        }
        return true;
    }
    c->discarding = false;
    evbuffer_drain(in, (size_t)eol_at + eol_len);
    snprintf(msg, sizeof(msg), "line too long: the limit is %zu bytes", max);
    reply_err(c, msg);
    return false;
}

/*
 * Runs the complete lines buffered on c, one at a time, until the
 * connection must wait (held push, blocking FETCH, full output) or closes.
 */
static void
process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);

    while (c->state != C_CLOSING && !c->held && !c->waiting && !c->ending &&
           !c->srv->draining && evbuffer_get_length(out) < OUTPUT_MAX) {
        size_t max = c->state == C_HELLO ? HELLO_LINE_MAX
                                         : c->srv->opts.max_line;
        size_t avail = evbuffer_get_length(in), eol_len = 0, len;
        struct evbuffer_ptr p;
        const char *line;

        if (avail == 0)
            break;
        /* Resume the newline search where the last one stopped. */
        evbuffer_ptr_set(in, &p, c->scanned < avail ? c->scanned : 0,
                         EVBUFFER_PTR_SET);
        p = evbuffer_search_eol(in, &p, &eol_len, EVBUFFER_EOL_LF);
        if (p.pos < 0 || c->discarding ||
            content_len(in, (size_t)p.pos) > max) {
            if (discard_long(c, in, avail, max, p.pos, eol_len))
                break;
            continue;
        }
        len = (size_t)p.pos;
        c->scanned = 0;
        line = (const char *)evbuffer_pullup(in, (ev_ssize_t)(len + eol_len));
        if (!line) {
            reply_err(c, "out of memory");
            conn_close(c);
            return;
        }
        dispatch(c, line, len + eol_len);
        evbuffer_drain(in, len + eol_len);
    }
    /*
     * After EOF, every complete line has run once nothing waits; a full
     * output only pauses them (write_cb goes on once it drains).
     */
    if (c->eof && !c->held && !c->waiting &&
        evbuffer_get_length(out) < OUTPUT_MAX)
        c->ending = true;
    if (c->ending && c->state != C_CLOSING && !c->held && !c->waiting) {
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(out) == 0)
            conn_close(c);
    }
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

/*
 * The bufferevent wrote out what a direct write left: back to direct
 * writes; close after END or EOF, or read on after a pause.
 */
static void
write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    bufferevent_disable(bev, EV_WRITE);
    if (c->state != C_CLOSING)
        process_input(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_ERROR) {
        conn_close(c);
    } else if (what & BEV_EVENT_EOF) {
        /* Half-closed: run what was sent, answer it, then close. */
        c->eof = true;
        bufferevent_disable(c->bev, EV_READ);
        process_input(c);
    }
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int socklen, void *arg)
{
    struct zn_fwp_server *s = arg;
    struct conn *c = calloc(1, sizeof(*c));
    unsigned char salt[8];
    char hi[96];

    (void)l;
    (void)socklen;
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = s;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->fetch_timer = evtimer_new(s->base, fetch_timeout_cb, c);
    if (!c->bev || !c->fetch_timer) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->fetch_timer)
            event_free(c->fetch_timer);
        free(c);
        return;
    }
    if (sa->sa_family == AF_UNIX) {
        snprintf(c->peer, sizeof(c->peer), "unix");
    } else {
        int one = 1;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        evutil_inet_ntop(sa->sa_family,
                         sa->sa_family == AF_INET
                             ? (void *)&((struct sockaddr_in *)sa)->sin_addr
                             : (void *)&((struct sockaddr_in6 *)sa)->sin6_addr,
                         c->peer, sizeof(c->peer));
    }
    /* Reading pauses above the limit, so one connection cannot buffer more. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, s->opts.max_line + 65536);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* A new bufferevent has EV_WRITE on: replies go out by send_now. */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    TAILQ_INSERT_TAIL(&s->all, c, all_link);
    s->nconns++;
    if (s->password) {
        randombytes_buf(salt, sizeof(salt));
        sodium_bin2hex(c->salt, sizeof(c->salt), salt, sizeof(salt));
        snprintf(hi, sizeof(hi), "+HI {\"v\":2,\"i\":%d,\"s\":\"%s\"}\r\n",
                 s->opts.hash_iterations, c->salt);
    } else {
        snprintf(hi, sizeof(hi), "+HI {\"v\":2}\r\n");
    }
    reply_raw(c, hi);
}

/*
 * accept() failed (out of descriptors, most often): stop accepting for a
 * second instead of spinning, and say so once.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct zn_fwp_server *s = arg;
    struct timeval tv = {1, 0};
    int e = EVUTIL_SOCKET_ERROR();

    ZN_LOG(ZN_WARN, "fwp.accept_failed", ZN_STR("error", strerror(e)),
           ZN_INT("connections", s->nconns));
    if (s->tcp)
        evconnlistener_disable(s->tcp);
    if (s->unix_l)
        evconnlistener_disable(s->unix_l);
    (void)l;
    evtimer_add(s->relisten, &tv);
}

static void
relisten_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zn_fwp_server *s = arg;

    (void)fd;
    (void)what;
    if (s->tcp)
        evconnlistener_enable(s->tcp);
    if (s->unix_l)
        evconnlistener_enable(s->unix_l);
}

/* ---- the loop's hooks -------------------------------------------------- */

/* Queues c to run its buffered input at the end of this flush. */
static void
resume(struct conn *c)
{
    if (c->resuming)
        return;
    c->resuming = true;
    TAILQ_INSERT_TAIL(&c->srv->resumed, c, resume_link);
}

static bool
waits_on(const struct conn *c, const char *queue)
{
    if (c->worker && c->worker->state[0])
        return false; /* quiet or terminating: no more jobs */
    if (!queue)
        return true;
    for (size_t i = 0; i < c->nqueues; i++)
        if (strcmp(c->queues[i], queue) == 0)
            return true;
    return false;
}

/* Jobs became fetchable in queue: serve the waiting fetchers, oldest first. */
static void
ready_cb(void *ctx, const char *queue)
{
    struct zn_fwp_server *s = ctx;
    struct conn *c, *next;

    for (c = TAILQ_FIRST(&s->waiters); c; c = next) {
        next = TAILQ_NEXT(c, wait_link);
        if (!waits_on(c, queue))
            continue;
        if (!fetch_try(c)) {
            /* Nothing for c, so queue itself is empty again. */
            if (queue)
                break;
            continue;
        }
        fetch_stop_waiting(c);
        resume(c);
    }
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct zn_fwp_server *s = arg;
    struct zn_err err;

    (void)fd;
    (void)what;
    if (zn_engine_tick(s->engine, &err) < 0)
        ZN_LOG(ZN_ERROR, "engine.tick_failed", ZN_STR("error", err.msg));
}

static void
free_dead(struct zn_fwp_server *s)
{
    struct conn *c;

    while ((c = TAILQ_FIRST(&s->dead))) {
        TAILQ_REMOVE(&s->dead, c, dead_link);
        conn_free(c);
    }
}

/* The delayed commit is due: the flush after this loop turn does it. */
static void
commit_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/*
 * Writes the output of c now. What the socket does not take is left to
 * the bufferevent; a connection with nothing left to send may have input
 * that waited for that (END, a full output), so it runs again.
 */
static void
send_now(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int n;

    /*
     * The bufferevent keeps the start of its output frozen but for its
     * own writes, and thaws it for them the same way.
     */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(c);
        return;
    }
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(c->bev, EV_WRITE);
    else if (c->ending || evbuffer_get_length(bufferevent_get_input(c->bev)))
        resume(c);
}

static void
send_all(struct zn_fwp_server *s)
{
    struct conn *c;

    while ((c = TAILQ_FIRST(&s->unsent))) {
        TAILQ_REMOVE(&s->unsent, c, unsent_link);
        c->unsent = false;
        send_now(c);
    }
}

/* Commits now: the delayed commit is done too. */
static int
commit_now(struct zn_fwp_server *s, struct zn_err *err)
{
    s->pending_since = 0;
    return zn_engine_commit(s->engine, err);
}

bool
zn_fwp_server_flush(struct zn_fwp_server *s)
{
    struct zn_err err;
    struct conn *c;
    int rc;

    /*
     * Held replies go out once what they answer is durable: pushes after
     * the journal's sync, admin commands after the commit. Fetchers woken
     * by either (ready_cb) join s->resumed too.
     */
    if (!TAILQ_EMPTY(&s->held)) {
        rc = s->held_commit || s->draining ? commit_now(s, &err)
                                           : zn_engine_sync(s->engine, &err);
        s->held_commit = false;
        while ((c = TAILQ_FIRST(&s->held))) {
            TAILQ_REMOVE(&s->held, c, held_link);
            ZN_ASSERT(c->held_reply); /* set by hold_until */
            if (rc < 0)
                reply_err(c, err.msg);
            else
                reply_raw(c, c->held_reply);
            release_held(c);
            resume(c);
        }
    }
    /* The rest commits COMMIT_DELAY_MS after it began to wait. */
    if (zn_engine_pending(s->engine)) {
        int64_t now = zn_clock_mono_ms(), left;

        if (!s->pending_since)
            s->pending_since = now;
        left = s->pending_since + COMMIT_DELAY_MS - now;
        if (left > 0 && !s->draining) {
            struct timeval tv = {0, (suseconds_t)left * 1000};

            if (!evtimer_pending(s->commit_timer, NULL))
                evtimer_add(s->commit_timer, &tv);
        } else {
            /*
             * The replies made so far wait for nothing: they go out
             * first, not behind the commit's writes.
             */
            send_all(s);
            commit_now(s, &err);
        }
    } else {
        s->pending_since = 0;
    }
    /*
     * Commands that waited behind a held reply run now, in order, and
     * their replies go out.
     */
    do {
        while ((c = TAILQ_FIRST(&s->resumed))) {
            TAILQ_REMOVE(&s->resumed, c, resume_link);
            c->resuming = false;
            process_input(c);
        }
        send_all(s);
    } while (!TAILQ_EMPTY(&s->resumed));
    free_dead(s);
    /* Held replies need the next sync now; the rest can wait for it. */
    if (!TAILQ_EMPTY(&s->held))
        return true;
    /* The replies are out: what the store deferred costs no one a wait. */
    zn_engine_idle(s->engine, &err);
    return false;
}

/* ---- setup ------------------------------------------------------------- */

/* A numeric (or "localhost") host and port into ss; -1 if not numeric. */
static int
tcp_sockaddr(const struct zn_fwp_addr *a, struct sockaddr_storage *ss,
             socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    const char *host = strcmp(a->host, "localhost") == 0 ? "127.0.0.1"
                                                          : a->host;

    memset(ss, 0, sizeof(*ss));
    if (evutil_inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)a->port);
        *len = sizeof(*sin);
        return 0;
    }
    if (evutil_inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)a->port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

static struct evconnlistener *
listen_tcp(struct zn_fwp_server *s, const char *addr, struct zn_err *err)
{
    struct zn_fwp_addr a;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct evconnlistener *l;

    if (zn_fwp_parse_addr(addr, &a, err) < 0)
        return NULL;
    if (a.is_unix || tcp_sockaddr(&a, &ss, &sslen) < 0) {
        zn_err_set(err, ZN_EINVAL, "cannot listen on '%s': not a numeric "
                   "host:port", addr);
        return NULL;
    }
    l = evconnlistener_new_bind(s->base, accept_cb, s,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                    LEV_OPT_CLOSE_ON_EXEC,
                                512, (struct sockaddr *)&ss, (int)sslen);
    if (!l) {
        zn_err_set(err, ZN_EIO, "cannot listen on '%s': %s", addr,
                   strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    sslen = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss,
                    &sslen) == 0)
        s->port = ntohs(ss.ss_family == AF_INET
                            ? ((struct sockaddr_in *)&ss)->sin_port
                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return l;
}

static struct evconnlistener *
listen_unix(struct zn_fwp_server *s, const char *path, struct zn_err *err)
{
    struct sockaddr_un sun;
    struct stat st;
    struct evconnlistener *l;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        zn_err_set(err, ZN_EINVAL, "cannot listen on '%s': path too long",
                   path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    /*
     * A socket left by an earlier run goes; anything else at that path is
     * not ours to delete. (The data directory's lock file keeps a second
     * server off the default path.)
     */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            zn_err_set(err, ZN_EEXIST, "cannot listen on '%s': a file that "
                       "is not a socket is in the way", path);
            return NULL;
        }
        unlink(path);
    }
    l = evconnlistener_new_bind(s->base, accept_cb, s,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                512, (struct sockaddr *)&sun, sizeof(sun));
    if (!l) {
        zn_err_set(err, ZN_EIO, "cannot listen on '%s': %s", path,
                   strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    if (chmod(path, 0600) < 0) {
        zn_err_set(err, ZN_EIO, "cannot restrict '%s' to its owner: %s", path,
                   strerror(errno));
        evconnlistener_free(l);
        return NULL;
    }
    return l;
}

int
zn_fwp_server_new(struct event_base *base, struct zn_engine *e,
                  const struct zn_fwp_server_opts *o,
                  struct zn_fwp_server **out, struct zn_err *err)
{
    struct zn_fwp_server *s = calloc(1, sizeof(*s));
    struct timeval tv = {0, TICK_MS * 1000};

    if (!s)
        return zn_err_set(err, ZN_ENOMEM, "cannot allocate the FWP server");
    s->base = base;
    s->engine = e;
    s->opts = *o;
    if (s->opts.hash_iterations <= 0)
        s->opts.hash_iterations = 5545;
    s->started_at = zn_engine_now(e);
    TAILQ_INIT(&s->all);
    TAILQ_INIT(&s->held);
    TAILQ_INIT(&s->unsent);
    TAILQ_INIT(&s->waiters);
    TAILQ_INIT(&s->dead);
    TAILQ_INIT(&s->resumed);
    LIST_INIT(&s->workers);
    s->relisten = evtimer_new(base, relisten_cb, s);
    s->commit_timer = evtimer_new(base, commit_timer_cb, s);
    if (!s->relisten || !s->commit_timer)
        goto oom;
    if (o->password && *o->password) {
        s->password = strdup(o->password);
        if (!s->password)
            goto oom;
    }
    if (o->tcp && *o->tcp) {
        s->tcp = listen_tcp(s, o->tcp, err);
        if (!s->tcp)
            goto fail;
    }
    if (o->unix_path && *o->unix_path) {
        s->unix_path = strdup(o->unix_path);
        if (!s->unix_path)
            goto oom;
        s->unix_l = listen_unix(s, o->unix_path, err);
        if (!s->unix_l)
            goto fail;
    }
    s->tick = event_new(base, -1, EV_PERSIST, tick_cb, s);
    if (!s->tick)
        goto oom;
    event_add(s->tick, &tv);
    zn_engine_set_ready_cb(e, ready_cb, s);
    *out = s;
    return 0;
oom:
    zn_err_set(err, ZN_ENOMEM, "cannot allocate the FWP server");
    zn_fwp_server_free(s);
    return ZN_ENOMEM;
fail:
    zn_fwp_server_free(s);
    return err ? err->code : ZN_EIO;
}

int
zn_fwp_server_port(const struct zn_fwp_server *s)
{
    return s->port;
}

void
zn_fwp_server_stop_listening(struct zn_fwp_server *s)
{
    if (s->tcp)
        evconnlistener_free(s->tcp);
    if (s->unix_l) {
        evconnlistener_free(s->unix_l);
        ZN_ASSERT(s->unix_path); /* set before unix_l (zn_fwp_server_new) */
        unlink(s->unix_path);
    }
    s->tcp = NULL;
    s->unix_l = NULL;
}

bool
zn_fwp_server_drain(struct zn_fwp_server *s)
{
    struct conn *c;

    if (!s->draining) {
        s->draining = true;
        TAILQ_FOREACH(c, &s->all, all_link)
            bufferevent_disable(c->bev, EV_READ);
    }
    zn_fwp_server_flush(s);
    TAILQ_FOREACH(c, &s->all, all_link)
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            return true;
    return false;
}

void
zn_fwp_server_free(struct zn_fwp_server *s)
{
    struct conn *c;

    if (!s)
        return;
    s->closing_all = true;
    zn_fwp_server_stop_listening(s);
    while ((c = TAILQ_FIRST(&s->all)))
        conn_close(c);
    while ((c = TAILQ_FIRST(&s->dead))) {
        TAILQ_REMOVE(&s->dead, c, dead_link);
        conn_free(c);
    }
    if (s->tick)
        event_free(s->tick);
    if (s->relisten)
        event_free(s->relisten);
    if (s->commit_timer)
        event_free(s->commit_timer);
    zn_engine_set_ready_cb(s->engine, NULL, NULL);
    if (s->password) {
        sodium_memzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s->unix_path);
    free(s);
}
