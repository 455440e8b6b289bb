/*
 * store.h - the storage interface under the engine.
 *
 * The engine owns the rules (which state comes next, when, why); a store
 * only persists them and answers queries. Two back ends implement this
 * table of functions: sqlite (embedded, one file) and, later, redis. Both
 * must pass tests/unit/test_store.c and test_store_query.c, which are
 * written against this header only.
 *
 * Batches: every write may run inside begin/commit. The engine opens one
 * transaction and commits it once for many loop iterations; the pushes of
 * an iteration are made durable together by sync (group commit) or, in a
 * store without it, by a commit. Writes outside begin/commit commit on
 * their own.
 *
 * Ownership: jobs and lists returned belong to the caller (zn_job_free,
 * zn_store_list_release). Strings passed in are borrowed.
 *
 * All functions return 0 or a negative ZN_E* code with err set; a store
 * error never leaves a half-applied operation visible after rollback.
 */
#ifndef ZN_STORE_H
#define ZN_STORE_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"
#include "queue/job.h"

struct zn_store;

/* Bit for a state in zn_store_query.states. */
#define ZN_STATE_BIT(s) (1u << (s))

/* A filter for list, count, retry and remove. Zeroed = every job. */
struct zn_store_query {
    unsigned states;      /* ZN_STATE_BIT()s; 0 = any state */
    const char *jid;      /* exactly this job, or NULL */
    const char *queue;    /* NULL = any */
    const char *jobtype;  /* NULL = any */
    const char *tag;      /* NULL = any */
    const char *worker;   /* NULL = any (working jobs of this wid) */
    int64_t updated_from; /* updated_at >= this, 0 = open */
    int64_t updated_to;   /* updated_at < this, 0 = open */
    uint64_t after;       /* cursor: jobs with seq > after, ascending */
    size_t limit;         /* list only; 0 = 100, at most 1000 */
    size_t max;           /* remove only: at most this many, least
                             recently updated first; 0 = all */
};

struct zn_store_list {
    struct zn_job **jobs;
    size_t n;
    uint64_t next; /* cursor for the next page, 0 when this was the last */
};

void zn_store_list_release(struct zn_store_list *l);

/* How an attempt ended, and what the job becomes. */
struct zn_store_outcome {
    enum zn_job_state next;  /* ENQUEUED, RETRY, DEAD (fail) or DONE (ack) */
    int64_t next_at;         /* RETRY: when it becomes enqueued */
    const char *outcome;     /* attempt record: "ok", "failed", "timeout",
                                "lease expired", "worker gone", "SIGSEGV" */
    const char *errtype;     /* NULL on success */
    const char *message;
    const char *backtrace;   /* JSON array text or NULL */
    int64_t cpu_ms;          /* -1 unknown */
    int64_t rss_kb;          /* -1 unknown */
    bool quarantined;        /* DEAD because it killed its workers */
    const char *worker;      /* not NULL: only if leased to this worker */
};

struct zn_attempt {
    int n;                /* 1 for the first attempt */
    char *worker;
    int64_t started_at;
    int64_t ended_at;     /* 0 while running */
    char *outcome;        /* NULL while running */
    char *errtype;
    char *message;
    int64_t cpu_ms;
    int64_t rss_kb;
};

void zn_attempts_free(struct zn_attempt *a, size_t n);

struct zn_queue_stats {
    char name[ZN_QUEUE_NAME_MAX + 1];
    bool paused;
    int64_t count[ZN_STATE_COUNT]; /* jobs by state */
    int64_t oldest_enqueued_at;    /* 0 when none is enqueued */
};

struct zn_store_counters {
    int64_t pushed;    /* jobs accepted, ever */
    int64_t processed; /* acks, ever */
    int64_t failed;    /* failed attempts, ever */
};

struct zn_store_ops {
    const char *name;

    /* Closes the store and frees it. NULL-safe through zn_store_close. */
    void (*close)(struct zn_store *st);

    int (*begin)(struct zn_store *st, struct zn_err *err);
    int (*commit)(struct zn_store *st, struct zn_err *err);
    void (*rollback)(struct zn_store *st);
    /*
     * Makes the jobs pushed in the open transaction durable without
     * committing it (a journal); they are answered then, and the
     * transaction commits later. ZN_ESTATE: this store cannot, the caller
     * commits instead. NULL: the same.
     */
    int (*sync)(struct zn_store *st, struct zn_err *err);
    /*
     * Called when the caller has answered what it could and would wait:
     * the store does the work it deferred in the open transaction (the
     * inserts of pushes answered after their sync). On failure the caller
     * rolls back, as after a commit that failed. NULL: nothing is deferred.
     */
    int (*idle)(struct zn_store *st, struct zn_err *err);

    /*
     * Inserts n new jobs (jid, defaults and state already set by the
     * engine: SCHEDULED with next_at, or ENQUEUED). errs[i].code is 0 or:
     * ZN_EEXIST "jid 'x' already exists"; ZN_EUNIQUE "job is not unique:
     * equal job 'jid' pushed within unique_for" when unique_for > 0 and an
     * equal job (zn_job_unique_key) was pushed less than unique_for seconds
     * before now. Sets each job's seq. Returns 0 unless the store itself
     * failed (then nothing of the batch is kept).
     */
    int (*push)(struct zn_store *st, struct zn_job *const *jobs, size_t n,
                int64_t now, struct zn_err *errs);

    /* The job with this jid in any state, or ZN_ENOTFOUND. */
    int (*get)(struct zn_store *st, const char *jid, struct zn_job **out,
               struct zn_err *err);

    /*
     * Takes the next job for worker wid: the first of queues (in the order
     * given) that is not paused and has an enqueued job; in it, the highest
     * priority, then the lowest seq. The job becomes WORKING with
     * lease_until = now + reserve_for s, attempts + 1, worker = wid, and an
     * attempt record is started. *out is NULL when there is nothing.
     * Must stay O(log n) in the number of jobs.
     */
    int (*fetch)(struct zn_store *st, const char *const *queues, size_t nq,
                 const char *wid, int64_t now, struct zn_job **out,
                 struct zn_err *err);

    /*
     * Ends the running attempt of a WORKING job and moves it to o->next
     * (DONE for an ack). ZN_ENOTFOUND if no such job is working; ZN_ESTATE
     * when o->worker is set and another worker holds the lease (a late
     * answer after the lease expired and the job moved on). Bumps the
     * processed or failed counter.
     */
    int (*finish)(struct zn_store *st, const char *jid, int64_t now,
                  const struct zn_store_outcome *o, struct zn_err *err);

    /* Sets lease_until of a WORKING job; ZN_ENOTFOUND otherwise. */
    int (*extend)(struct zn_store *st, const char *jid, int64_t lease_until,
                  struct zn_err *err);

    /* Up to limit WORKING jobs whose lease_until <= now, oldest first. */
    int (*expired)(struct zn_store *st, int64_t now, size_t limit,
                   struct zn_store_list *out, struct zn_err *err);

    /*
     * Moves up to limit SCHEDULED and RETRY jobs with next_at <= now to
     * ENQUEUED (enqueued_at = now). Adds the queues that received jobs to
     * *queues (malloc'd names, caller frees each and the array) when
     * queues is not NULL. *queues and *nqueues must hold a list already
     * (NULL and 0 for an empty one); a name in it is not added twice.
     */
    int (*promote)(struct zn_store *st, int64_t now, size_t limit,
                   size_t *moved, char ***queues, size_t *nqueues,
                   struct zn_err *err);

    /* The smallest next_at of SCHEDULED/RETRY jobs, 0 when none. */
    int (*next_due)(struct zn_store *st, int64_t *at, struct zn_err *err);

    /* One page of jobs matching q, in seq order. */
    int (*list)(struct zn_store *st, const struct zn_store_query *q,
                struct zn_store_list *out, struct zn_err *err);

    int (*count)(struct zn_store *st, const struct zn_store_query *q,
                 int64_t *n, struct zn_err *err);

    /*
     * Moves the DEAD jobs matching q (q->states is ignored) back to
     * ENQUEUED with a fresh set of tries (failures = 0), keeping their
     * attempt history. *n = how many.
     */
    int (*retry_dead)(struct zn_store *st, const struct zn_store_query *q,
                      int64_t now, int64_t *n, struct zn_err *err);

    /*
     * Deletes the jobs matching q (at most q->max of them when set), with
     * their attempts. *n = how many.
     */
    int (*remove)(struct zn_store *st, const struct zn_store_query *q,
                  int64_t *n, struct zn_err *err);

    /* Creates the queue if needed and sets its paused flag. */
    int (*set_paused)(struct zn_store *st, const char *queue, bool paused,
                      struct zn_err *err);

    /*
     * Every queue that holds jobs or is paused, sorted by name. *out is
     * malloc'd; the caller frees it.
     */
    int (*queue_stats)(struct zn_store *st, struct zn_queue_stats **out,
                       size_t *n, struct zn_err *err);

    /* The attempt records of a job, oldest first (malloc'd, see above). */
    int (*attempts)(struct zn_store *st, const char *jid,
                    struct zn_attempt **out, size_t *n, struct zn_err *err);

    int (*counters)(struct zn_store *st, struct zn_store_counters *out,
                    struct zn_err *err);

    /* Deletes every job, attempt, queue and counter (FLUSH). */
    int (*flush)(struct zn_store *st, struct zn_err *err);
};

struct zn_store {
    const struct zn_store_ops *ops;
};

/* st->ops->close(st); NULL is a no-op. */
void zn_store_close(struct zn_store *st);

#endif
