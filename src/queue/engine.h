/*
 * engine.h - the rules of zenith: job states, retries and backoff, delays,
 * leases and their expiry, uniqueness, pause, priorities, workers.
 *
 * The engine is driven by one thread (the event loop). It talks to
 * storage only through struct zn_store and reads time only through its
 * struct zn_clock, so tests drive it with a fake clock on an in-memory
 * store.
 *
 * Group commit: every write opens (or joins) one store transaction. The
 * caller makes the pushes of an event-loop iteration durable with
 * zn_engine_sync, and only then answers their producers; it commits the
 * transaction with zn_engine_commit a few milliseconds later, or at once
 * for a command that must see its change committed. Jobs become visible to
 * blocked fetchers (the ready callback) after the sync or commit.
 */
#ifndef ZN_ENGINE_H
#define ZN_ENGINE_H

#include "compat.h"

#include <stdbool.h>

#include "common/clock.h"
#include "common/err.h"
#include "queue/job.h"
#include "store/store.h"

struct zn_engine_config {
    int retry;                        /* retries after the first try: 2 */
    int32_t backoff[ZN_BACKOFF_MAX];  /* seconds: 10,30,60 */
    size_t nbackoff;
    int reserve_for;                  /* lease / timeout, seconds: 300 */
    int64_t done_ttl_ms;              /* done jobs kept: 60 min */
    int64_t dead_ttl_ms;              /* dead jobs kept: 7 days */
    struct zn_job_limits limits;
};

/* The seed's defaults. */
void zn_engine_config_default(struct zn_engine_config *cfg);

struct zn_engine;

/*
 * Called after a commit for each queue that got fetchable jobs (queue is
 * NULL when any queue may have: a bulk retry). Must not commit.
 */
typedef void zn_engine_ready_cb(void *ctx, const char *queue);

/* The engine borrows st and clock; both must outlive it. */
int zn_engine_new(struct zn_store *st, const struct zn_engine_config *cfg,
                  const struct zn_clock *clock, struct zn_engine **out,
                  struct zn_err *err);
void zn_engine_free(struct zn_engine *e);

void zn_engine_set_ready_cb(struct zn_engine *e, zn_engine_ready_cb *cb,
                            void *ctx);

const struct zn_engine_config *zn_engine_config(const struct zn_engine *e);
int64_t zn_engine_now(const struct zn_engine *e);

/* True while writes wait for zn_engine_commit. */
bool zn_engine_pending(const struct zn_engine *e);

/*
 * Commits the open transaction (a no-op when none is open), then reports
 * ready queues. On failure everything since the last commit is rolled
 * back and the error returned: the caller must answer every held push
 * with an error.
 */
int zn_engine_commit(struct zn_engine *e, struct zn_err *err);

/*
 * Makes the jobs pushed since the last sync durable (the store's journal)
 * and reports ready queues; the transaction stays open for a later
 * zn_engine_commit. A store without a journal, or whose journal failed,
 * commits instead, with zn_engine_commit's outcome.
 */
int zn_engine_sync(struct zn_engine *e, struct zn_err *err);

/*
 * Lets the store do the work it deferred (zn_store_ops.idle) while
 * nothing waits for it: after the replies of an iteration went out. On
 * failure the transaction is rolled back as a failed zn_engine_commit's,
 * and the error is logged and returned.
 */
int zn_engine_idle(struct zn_engine *e, struct zn_err *err);

/*
 * Accepts n parsed jobs: fills the defaults from the config (retry,
 * reserve_for), a jid when the client gave none, created/enqueued times
 * and the state (SCHEDULED when "at" is in the future). errs[i] gets each
 * job's result (ZN_EEXIST, ZN_EUNIQUE, ...). The jobs stay the caller's.
 * Returns 0, or an error of the store (then no job was accepted).
 */
int zn_engine_push(struct zn_engine *e, struct zn_job *const *jobs, size_t n,
                   struct zn_err *errs);

/*
 * Leases the next job of queues (in order) to worker wid. *out is NULL
 * when there is none. The caller frees *out.
 */
int zn_engine_fetch(struct zn_engine *e, const char *const *queues, size_t nq,
                    const char *wid, struct zn_job **out, struct zn_err *err);

/*
 * Marks a working job done. ZN_ENOTFOUND when no such job is working
 * (done, expired or never there); with wid set, ZN_ESTATE when another
 * worker holds it now. wid NULL accepts any (a producer's ACK).
 */
int zn_engine_ack(struct zn_engine *e, const char *jid, const char *wid,
                  struct zn_err *err);

/* The same, recording the attempt's CPU time and peak RSS (-1: unknown). */
int zn_engine_ack_usage(struct zn_engine *e, const char *jid,
                        const char *wid, int64_t cpu_ms, int64_t rss_kb,
                        struct zn_err *err);

struct zn_engine_failure {
    const char *outcome;   /* attempt record: "failed", "lease expired", ... */
    const char *errtype;   /* NULL: same as outcome */
    const char *message;
    const char *backtrace; /* JSON array text or NULL */
    int64_t cpu_ms;        /* -1 unknown */
    int64_t rss_kb;        /* -1 unknown */
    bool at_once;          /* requeue without backoff (worker gone) */
    bool quarantined;      /* straight to DEAD, marked: it kills workers */
};

/*
 * Ends the attempt of a working job as failed and applies the retry rule:
 * with tries left the job goes to RETRY after backoff[failures] (or back
 * to ENQUEUED at once when f->at_once); when its tries are used up, or
 * retry is -1 or 0, it goes to DEAD with its error; f->quarantined sends
 * it to DEAD at once, marked quarantined. ZN_ENOTFOUND when
 * there is no such job, ZN_ESTATE when it is not working or (wid set)
 * another worker holds it.
 */
int zn_engine_fail(struct zn_engine *e, const char *jid, const char *wid,
                   const struct zn_engine_failure *f, struct zn_err *err);

/*
 * Extends the lease of a working job by its reserve_for from now.
 * ZN_ENOTFOUND / ZN_ESTATE as zn_engine_fail.
 */
int zn_engine_extend(struct zn_engine *e, const char *jid, struct zn_err *err);

/*
 * Fails, at once and as f says, every job that worker wid holds (its
 * connection dropped, or its process died). *n = how many.
 */
int zn_engine_release_worker(struct zn_engine *e, const char *wid,
                             const struct zn_engine_failure *f, size_t *n,
                             struct zn_err *err);

/*
 * Time-driven work: promotes due scheduled/retry jobs, fails jobs whose
 * lease expired ("lease expired"), and every minute prunes done and dead
 * jobs past their keep time. Call it often (every 100 ms).
 */
int zn_engine_tick(struct zn_engine *e, struct zn_err *err);

/*
 * Administration. Each returns 0 or a store error; those with n report
 * how many jobs they touched. Changes commit with the next
 * zn_engine_commit.
 */
int zn_engine_pause(struct zn_engine *e, const char *queue, bool paused,
                    struct zn_err *err);
int zn_engine_clear_queue(struct zn_engine *e, const char *queue, int64_t *n,
                          struct zn_err *err);
int zn_engine_retry_dead(struct zn_engine *e, const struct zn_store_query *q,
                         int64_t *n, struct zn_err *err);
int zn_engine_remove(struct zn_engine *e, const struct zn_store_query *q,
                     int64_t *n, struct zn_err *err);
int zn_engine_flush(struct zn_engine *e, struct zn_err *err);

/*
 * Queries for the protocol edges, inside the open transaction (so they see
 * what this iteration wrote). Same contracts as the store functions of the
 * same names (store.h); results belong to the caller.
 */
int zn_engine_get(struct zn_engine *e, const char *jid, struct zn_job **out,
                  struct zn_err *err);
int zn_engine_list(struct zn_engine *e, const struct zn_store_query *q,
                   struct zn_store_list *out, struct zn_err *err);
int zn_engine_attempts(struct zn_engine *e, const char *jid,
                       struct zn_attempt **out, size_t *n,
                       struct zn_err *err);
int zn_engine_queue_stats(struct zn_engine *e, struct zn_queue_stats **out,
                          size_t *n, struct zn_err *err);
int zn_engine_counters(struct zn_engine *e, struct zn_store_counters *out,
                       struct zn_err *err);

/* The time "seconds ago" on the engine's clock (capped at 100 years). */
int64_t zn_engine_age_cutoff(const struct zn_engine *e, int64_t seconds);

#endif
