/*
 * engine.c - the job state machine:
 *
 *   scheduled --(at due)--> enqueued --(fetch)--> working --(ack)--> done
 *                              ^                     |
 *                              |   (fail, lease expired, worker gone)
 *                              +--- retry <----------+----> dead
 *
 * No I/O of its own: persistence goes through struct zn_store, time
 * through struct zn_clock. Invariant: a write is only ever made inside the
 * engine's open transaction, so zn_engine_sync (pushes) and
 * zn_engine_commit (everything) are the points where work becomes durable
 * and visible to fetchers.
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "queue/engine.h"

#define TOUCHED_MAX 16
#define TICK_BATCH 500
#define PRUNE_EVERY_MS (60 * 1000)
/*
 * Jobs pruned per tick: a trim window's worth of done jobs (an hour of a
 * busy queue is millions) deleted at once stalled the loop for seconds.
 * While a batch comes back full, the next tick prunes on.
 */
#define PRUNE_BATCH 1000

struct zn_engine {
    struct zn_store *st;
    struct zn_engine_config cfg;
    const struct zn_clock *clock;
    zn_engine_ready_cb *ready_cb;
    void *ready_ctx;
    bool in_txn;
    /* Queues that got fetchable jobs in the open transaction. */
    char *touched[TOUCHED_MAX];
    size_t ntouched;
    bool touched_all;
    int64_t last_prune;
    bool prune_more;  /* the last prune left old jobs behind */
};

void
zn_engine_config_default(struct zn_engine_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->retry = 2;
    cfg->backoff[0] = 10;
    cfg->backoff[1] = 30;
    cfg->backoff[2] = 60;
    cfg->nbackoff = 3;
    cfg->reserve_for = 300;
    cfg->done_ttl_ms = 60 * 60 * 1000;
    cfg->dead_ttl_ms = 7LL * 24 * 60 * 60 * 1000;
    zn_job_limits_default(&cfg->limits);
}

int
zn_engine_new(struct zn_store *st, const struct zn_engine_config *cfg,
              const struct zn_clock *clock, struct zn_engine **out,
              struct zn_err *err)
{
    struct zn_engine *e = calloc(1, sizeof(*e));

    if (!e)
        return zn_err_set(err, ZN_ENOMEM, "cannot allocate the engine");
    e->st = st;
    e->cfg = *cfg;
    e->clock = clock;
    e->last_prune = clock->now_ms(clock->ctx);
    *out = e;
    return 0;
}

static void
touched_reset(struct zn_engine *e)
{
    for (size_t i = 0; i < e->ntouched; i++)
        free(e->touched[i]);
    e->ntouched = 0;
    e->touched_all = false;
}

void
zn_engine_free(struct zn_engine *e)
{
    if (!e)
        return;
    if (e->in_txn)
        e->st->ops->rollback(e->st);
    touched_reset(e);
    free(e);
}

void
zn_engine_set_ready_cb(struct zn_engine *e, zn_engine_ready_cb *cb, void *ctx)
{
    e->ready_cb = cb;
    e->ready_ctx = ctx;
}

const struct zn_engine_config *
zn_engine_config(const struct zn_engine *e)
{
    return &e->cfg;
}

int64_t
zn_engine_now(const struct zn_engine *e)
{
    return e->clock->now_ms(e->clock->ctx);
}

bool
zn_engine_pending(const struct zn_engine *e)
{
    return e->in_txn;
}

/* Notes that queue got fetchable jobs; a NULL queue means "any". */
static void
touch(struct zn_engine *e, const char *queue)
{
    if (e->touched_all)
        return;
    if (!queue || e->ntouched == TOUCHED_MAX) {
        e->touched_all = true;
        return;
    }
    for (size_t i = 0; i < e->ntouched; i++)
        if (strcmp(e->touched[i], queue) == 0)
            return;
    e->touched[e->ntouched] = strdup(queue);
    if (!e->touched[e->ntouched])
        e->touched_all = true; /* waking everyone is always correct */
    else
        e->ntouched++;
}

static int
begin(struct zn_engine *e, struct zn_err *err)
{
    int rc;

    if (e->in_txn)
        return 0;
    rc = e->st->ops->begin(e->st, err);
    if (rc == 0)
        e->in_txn = true;
    return rc;
}

/*
 * Reports the touched queues. The list is taken first: a callback may run
 * more commands, which touch queues for the next commit.
 */
static void
ready(struct zn_engine *e)
{
    char *queues[TOUCHED_MAX];
    size_t n = e->ntouched;
    bool all = e->touched_all;

    memcpy(queues, e->touched, n * sizeof(*queues));
    e->ntouched = 0;
    e->touched_all = false;
    if (e->ready_cb && all)
        e->ready_cb(e->ready_ctx, NULL);
    for (size_t i = 0; i < n; i++) {
        if (e->ready_cb && !all)
            e->ready_cb(e->ready_ctx, queues[i]);
        free(queues[i]);
    }
}

/* The open transaction failed at event (logged): it is rolled back. */
static int
txn_failed(struct zn_engine *e, const char *event, int rc,
           const struct zn_err *err)
{
    e->in_txn = false;
    e->st->ops->rollback(e->st);
    touched_reset(e);
    /*
     * The journaled pushes this rollback dropped come back with the next
     * begin, into queues no longer in touched: the next commit wakes
     * every fetcher.
     */
    e->touched_all = true;
    ZN_LOG(ZN_ERROR, event, ZN_STR("error", err ? err->msg : ""));
    return rc;
}

int
zn_engine_commit(struct zn_engine *e, struct zn_err *err)
{
    int rc;

    if (!e->in_txn)
        return 0;
    rc = e->st->ops->commit(e->st, err);
    if (rc < 0)
        return txn_failed(e, "store.commit_failed", rc, err);
    e->in_txn = false;
    ready(e);
    return 0;
}

int
zn_engine_idle(struct zn_engine *e, struct zn_err *err)
{
    int rc;

    if (!e->in_txn || !e->st->ops->idle)
        return 0;
    rc = e->st->ops->idle(e->st, err);
    return rc < 0 ? txn_failed(e, "store.idle_failed", rc, err) : 0;
}

int
zn_engine_sync(struct zn_engine *e, struct zn_err *err)
{
    int rc;

    if (!e->in_txn)
        return 0;
    rc = e->st->ops->sync ? e->st->ops->sync(e->st, err) : ZN_ESTATE;
    if (rc < 0) {
        if (rc != ZN_ESTATE)
            ZN_LOG(ZN_ERROR, "store.sync_failed",
                   ZN_STR("error", err ? err->msg : ""));
        return zn_engine_commit(e, err);
    }
    ready(e);
    return 0;
}

int
zn_engine_push(struct zn_engine *e, struct zn_job *const *jobs, size_t n,
               struct zn_err *errs)
{
    int64_t now = zn_engine_now(e);
    struct zn_err err;
    int rc;

    for (size_t i = 0; i < n; i++) {
        struct zn_job *job = jobs[i];

        zn_err_clear(&errs[i]);
        if (!job->jid[0])
            zn_job_make_jid(now, job->jid);
        if (job->retry == ZN_JOB_RETRY_UNSET)
            job->retry = e->cfg.retry;
        if (job->reserve_for <= 0)
            job->reserve_for = e->cfg.reserve_for;
        if (!job->created_at)
            job->created_at = now;
        job->updated_at = now;
        if (job->at > now) {
            job->state = ZN_STATE_SCHEDULED;
            job->next_at = job->at;
            job->enqueued_at = 0;
        } else {
            job->state = ZN_STATE_ENQUEUED;
            job->next_at = 0;
            job->enqueued_at = now;
        }
    }
    rc = begin(e, &err);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            zn_err_set(&errs[i], rc, "store failed: %s", err.msg);
        return rc;
    }
    /* On failure the store has put its message in errs[]. */
    rc = e->st->ops->push(e->st, jobs, n, now, errs);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (errs[i].code == 0 && jobs[i]->state == ZN_STATE_ENQUEUED)
            touch(e, jobs[i]->queue);
    return 0;
}

int
zn_engine_fetch(struct zn_engine *e, const char *const *queues, size_t nq,
                const char *wid, struct zn_job **out, struct zn_err *err)
{
    int rc = begin(e, err);

    *out = NULL;
    if (rc < 0)
        return rc;
    return e->st->ops->fetch(e->st, queues, nq, wid, zn_engine_now(e), out,
                             err);
}

int
zn_engine_ack(struct zn_engine *e, const char *jid, const char *wid,
              struct zn_err *err)
{
    return zn_engine_ack_usage(e, jid, wid, -1, -1, err);
}

int
zn_engine_ack_usage(struct zn_engine *e, const char *jid, const char *wid,
                    int64_t cpu_ms, int64_t rss_kb, struct zn_err *err)
{
    struct zn_store_outcome o = {
        .next = ZN_STATE_DONE, .outcome = "ok", .cpu_ms = cpu_ms,
        .rss_kb = rss_kb, .worker = wid,
    };
    int rc = begin(e, err);

    if (rc < 0)
        return rc;
    return e->st->ops->finish(e->st, jid, zn_engine_now(e), &o, err);
}

/* The retry rule, applied to a job that is working now. */
static int
fail_job(struct zn_engine *e, const struct zn_job *job,
         const struct zn_engine_failure *f, struct zn_err *err)
{
    int64_t now = zn_engine_now(e);
    int failures = job->failures + 1;
    struct zn_store_outcome o = {
        .outcome = f->outcome,
        .errtype = f->errtype ? f->errtype : f->outcome,
        .message = f->message ? f->message : "",
        .backtrace = f->backtrace,
        .cpu_ms = f->cpu_ms,
        .rss_kb = f->rss_kb,
        .quarantined = f->quarantined,
    };
    int rc;

    if (f->quarantined || job->retry <= 0 || failures > job->retry) {
        o.next = ZN_STATE_DEAD;
    } else if (f->at_once) {
        o.next = ZN_STATE_ENQUEUED;
    } else {
        o.next = ZN_STATE_RETRY;
        o.next_at = now + (int64_t)zn_job_backoff_s(job, e->cfg.backoff,
                                                    e->cfg.nbackoff,
                                                    failures) * 1000;
    }
    rc = e->st->ops->finish(e->st, job->jid, now, &o, err);
    if (rc < 0)
        return rc;
    if (o.next == ZN_STATE_ENQUEUED)
        touch(e, job->queue);
    ZN_LOG(o.next == ZN_STATE_DEAD ? ZN_WARN : ZN_INFO,
           o.next == ZN_STATE_DEAD ? "job.dead" : "job.failed",
           ZN_STR("jid", job->jid), ZN_STR("queue", job->queue),
           ZN_STR("jobtype", job->jobtype), ZN_STR("outcome", f->outcome),
           ZN_INT("failures", failures),
           ZN_STR("next", zn_job_state_name(o.next)));
    return 0;
}

/* Reads jid, which must be working, into *out (the caller frees it). */
static int
get_working(struct zn_engine *e, const char *jid, struct zn_job **out,
            struct zn_err *err)
{
    int rc = begin(e, err);

    *out = NULL;
    if (rc == 0)
        rc = e->st->ops->get(e->st, jid, out, err);
    if (rc == 0 && (*out)->state != ZN_STATE_WORKING) {
        rc = zn_err_set(err, ZN_ESTATE, "job '%s' is not working (it is %s)",
                        jid, zn_job_state_name((*out)->state));
        zn_job_free(*out);
        *out = NULL;
    }
    ZN_ASSERT(rc < 0 || *out);
    return rc;
}

int
zn_engine_fail(struct zn_engine *e, const char *jid, const char *wid,
               const struct zn_engine_failure *f, struct zn_err *err)
{
    struct zn_job *job = NULL;
    int rc = get_working(e, jid, &job, err);

    if (rc == 0 && wid && (!job->worker || strcmp(job->worker, wid) != 0))
        rc = zn_err_set(err, ZN_ESTATE, "job '%s' is leased to another "
                        "worker now", jid);
    if (rc == 0)
        rc = fail_job(e, job, f, err);
    zn_job_free(job);
    return rc;
}

int
zn_engine_extend(struct zn_engine *e, const char *jid, struct zn_err *err)
{
    struct zn_job *job = NULL;
    int rc = get_working(e, jid, &job, err);

    if (rc == 0)
        rc = e->st->ops->extend(e->st, jid,
                                zn_engine_now(e) + job->reserve_for * 1000LL,
                                err);
    zn_job_free(job);
    return rc;
}

int
zn_engine_release_worker(struct zn_engine *e, const char *wid,
                         const struct zn_engine_failure *f, size_t *n,
                         struct zn_err *err)
{
    struct zn_store_query q = {
        .states = ZN_STATE_BIT(ZN_STATE_WORKING), .worker = wid,
        .limit = 1000,
    };
    struct zn_store_list l = {0};
    int rc = begin(e, err);

    *n = 0;
    if (rc < 0)
        return rc;
    do {
        rc = e->st->ops->list(e->st, &q, &l, err);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < l.n && rc == 0; i++) {
            rc = fail_job(e, l.jobs[i], f, err);
            (*n)++;
        }
        q.after = l.next;
        zn_store_list_release(&l);
    } while (rc == 0 && q.after);
    return rc;
}

static int
expire_leases(struct zn_engine *e, int64_t now, struct zn_err *err)
{
    struct zn_store_list l = {0};
    char msg[96];
    int rc;

    rc = e->st->ops->expired(e->st, now, TICK_BATCH, &l, err);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        struct zn_engine_failure f = {
            .outcome = "lease expired", .message = msg,
            .cpu_ms = -1, .rss_kb = -1,
        };

        snprintf(msg, sizeof(msg), "lease of %d s expired before ACK or FAIL",
                 l.jobs[i]->reserve_for);
        rc = fail_job(e, l.jobs[i], &f, err);
    }
    zn_store_list_release(&l);
    return rc;
}

static int
promote(struct zn_engine *e, int64_t now, struct zn_err *err)
{
    char **queues = NULL;
    size_t moved = 0, nq = 0;
    int rc;

    rc = e->st->ops->promote(e->st, now, TICK_BATCH, &moved, &queues, &nq,
                             err);
    for (size_t i = 0; i < nq; i++) {
        touch(e, queues[i]);
        free(queues[i]);
    }
    free(queues);
    return rc;
}

static int
prune(struct zn_engine *e, int64_t now, struct zn_err *err)
{
    struct zn_store_query done = {
        .states = ZN_STATE_BIT(ZN_STATE_DONE),
        .updated_to = now - e->cfg.done_ttl_ms,
        .max = PRUNE_BATCH,
    };
    struct zn_store_query dead = {
        .states = ZN_STATE_BIT(ZN_STATE_DEAD),
        .updated_to = now - e->cfg.dead_ttl_ms,
        .max = PRUNE_BATCH,
    };
    int64_t n1 = 0, n2 = 0;
    int rc;

    e->last_prune = now;
    rc = e->st->ops->remove(e->st, &done, &n1, err);
    if (rc == 0)
        rc = e->st->ops->remove(e->st, &dead, &n2, err);
    e->prune_more = rc == 0 && (n1 == PRUNE_BATCH || n2 == PRUNE_BATCH);
    if (rc == 0 && n1 + n2 > 0)
        ZN_LOG(ZN_INFO, "engine.pruned", ZN_INT("done", n1),
               ZN_INT("dead", n2));
    return rc;
}

int
zn_engine_tick(struct zn_engine *e, struct zn_err *err)
{
    int64_t now = zn_engine_now(e), due = 0;
    int rc;

    rc = e->st->ops->next_due(e->st, &due, err);
    if (rc < 0)
        return rc;
    rc = begin(e, err);
    if (rc == 0 && due && due <= now)
        rc = promote(e, now, err);
    if (rc == 0)
        rc = expire_leases(e, now, err);
    if (rc == 0 && (e->prune_more || now - e->last_prune >= PRUNE_EVERY_MS))
        rc = prune(e, now, err);
    return rc;
}

int
zn_engine_pause(struct zn_engine *e, const char *queue, bool paused,
                struct zn_err *err)
{
    int rc = begin(e, err);

    if (rc == 0)
        rc = e->st->ops->set_paused(e->st, queue, paused, err);
    if (rc == 0 && !paused)
        touch(e, queue);
    return rc;
}

int
zn_engine_clear_queue(struct zn_engine *e, const char *queue, int64_t *n,
                      struct zn_err *err)
{
    struct zn_store_query q = {
        .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED) |
                  ZN_STATE_BIT(ZN_STATE_SCHEDULED) |
                  ZN_STATE_BIT(ZN_STATE_RETRY),
        .queue = queue,
    };
    int rc = begin(e, err);

    if (rc == 0)
        rc = e->st->ops->remove(e->st, &q, n, err);
    return rc;
}

int
zn_engine_retry_dead(struct zn_engine *e, const struct zn_store_query *q,
                     int64_t *n, struct zn_err *err)
{
    int rc = begin(e, err);

    if (rc == 0)
        rc = e->st->ops->retry_dead(e->st, q, zn_engine_now(e), n, err);
    if (rc == 0 && *n > 0)
        touch(e, q->queue);
    return rc;
}

int
zn_engine_remove(struct zn_engine *e, const struct zn_store_query *q,
                 int64_t *n, struct zn_err *err)
{
    int rc = begin(e, err);

    if (rc == 0)
        rc = e->st->ops->remove(e->st, q, n, err);
    return rc;
}

int
zn_engine_flush(struct zn_engine *e, struct zn_err *err)
{
    int rc = begin(e, err);

    if (rc == 0)
        rc = e->st->ops->flush(e->st, err);
    return rc;
}

/* ---- queries: reads for the protocol edges -------------------------- */

int
zn_engine_get(struct zn_engine *e, const char *jid, struct zn_job **out,
              struct zn_err *err)
{
    return e->st->ops->get(e->st, jid, out, err);
}

int
zn_engine_list(struct zn_engine *e, const struct zn_store_query *q,
               struct zn_store_list *out, struct zn_err *err)
{
    return e->st->ops->list(e->st, q, out, err);
}

int
zn_engine_attempts(struct zn_engine *e, const char *jid,
                   struct zn_attempt **out, size_t *n, struct zn_err *err)
{
    return e->st->ops->attempts(e->st, jid, out, n, err);
}

int
zn_engine_queue_stats(struct zn_engine *e, struct zn_queue_stats **out,
                      size_t *n, struct zn_err *err)
{
    return e->st->ops->queue_stats(e->st, out, n, err);
}

int
zn_engine_counters(struct zn_engine *e, struct zn_store_counters *out,
                   struct zn_err *err)
{
    return e->st->ops->counters(e->st, out, err);
}

int64_t
zn_engine_age_cutoff(const struct zn_engine *e, int64_t seconds)
{
    /* A hundred years back at most: no overflow, and nothing is older. */
    if (seconds > 100LL * 366 * 86400)
        seconds = 100LL * 366 * 86400;
    return zn_engine_now(e) - seconds * 1000;
}
