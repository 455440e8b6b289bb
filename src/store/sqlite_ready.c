/*
 * sqlite_ready.c - fetches served from memory, their writes batched and,
 * inside a transaction, made on a thread of their own.
 *
 * Inside the engine's transaction a fetch and its ACK need not reach the
 * tables before the commit: a crash loses that transaction anyway, and
 * its jobs are then still ready and fetched again, as at-least-once
 * allows. So a job costs a share of one read and, fetched and ACKed
 * between two commits, one update and one attempt row:
 *
 *   ready  for each queue fetched from (at most ZN__SQLITE_READY_QUEUES),
 *          its next ready jobs in fetch order (up to READY_ROWS, and
 *          READY_BYTES of payload in all queues), read by one statement.
 *          A fetch hands out the first. While a buffer holds every ready
 *          job of its queue, a job pushed there joins it as its row reads
 *          back: workers that keep up with their producers are served
 *          without a read.
 *   held   the jobs handed out since the last settle, each with its lease,
 *          and once ACKed the end of its attempt. settle writes them: a job
 *          fetched and ACKed in one batch goes from enqueued to done with
 *          one update and one attempt row.
 *   ahead  the reader ahead (at the end of this file): a thread that, in
 *          the caller's transaction, writes the ACKed held jobs and reads
 *          a buffer's next jobs while the loop hands out the rest of it,
 *          so a drain's SQLite work runs beside the loop, not in it.
 *
 * Invariants:
 *   - a ready job is in at most one buffer or in held, never both; the
 *     rows of held jobs still say enqueued until settle;
 *   - a buffer holds ready jobs of its queue in fetch order, and no ready
 *     job of its queue outside it sorts before its last one; with all
 *     set, none is outside it. Every write that makes a job ready or
 *     removes one calls zn__sqlite_ready_pushed or zn__sqlite_ready_drop;
 *     a commit by another connection drops them all (paused_refresh);
 *   - a job in a buffer equals what its row reads back (for the jobs a
 *     push adds, row_prepare sets the row's defaults in the job itself);
 *   - held is empty while no transaction is open: outside one, a fetch
 *     settles before it returns;
 *   - every op but push, fetch and finish settles first, so what it reads
 *     or changes includes the leases and the deferred pushes (a fetch
 *     inserts those itself, so a buffer never passes one by); a finish
 *     settles when its job is held (and is not a first ACK, which ends
 *     the attempt in memory): the row of a job that is not held does not
 *     depend on the others;
 *   - while the reader ahead is busy only its thread uses the connection
 *     (zn__sqlite_step asserts it): settle joins it, and so do push,
 *     begin, commit, rollback, close, explain, a finish of a job not
 *     held and a fetch that must read.
 *
 * Non-goals: finding a held job costs a scan of held from its newest end;
 * held is settled at every commit, and at HELD_MAX jobs.
 */
#include "compat.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/sqlite_int.h"

/* How many jobs one read puts in a queue's buffer. */
#define READY_ROWS 64

/* Payload (args and custom) the buffers may hold, all queues together. */
#define READY_BYTES (4u << 20)

/* Jobs held before a fetch settles them, without waiting for a commit. */
#define HELD_MAX 1024

static size_t
payload_bytes(const struct zn_job *job)
{
    return strlen(job->args) + (job->custom ? strlen(job->custom) : 0);
}

static void
buffer_free(struct zn__sqlite *s, struct zn__sqlite_ready *r)
{
    for (size_t i = r->head; i < r->n; i++) {
        s->ready_bytes -= payload_bytes(r->jobs[i]);
        zn_job_free(r->jobs[i]);
    }
    free(r->jobs);
}

void
zn__sqlite_ready_drop(struct zn__sqlite *s)
{
    for (size_t i = 0; i < s->nready; i++)
        buffer_free(s, &s->ready[i]);
    free(s->ready);
    s->ready = NULL;
    s->nready = 0;
    s->ready_bytes = 0;
}

static struct zn__sqlite_ready *
buffer_of(struct zn__sqlite *s, const char *queue)
{
    for (size_t i = 0; i < s->nready; i++)
        if (strcmp(s->ready[i].queue, queue) == 0)
            return &s->ready[i];
    return NULL;
}

static void
buffer_remove(struct zn__sqlite *s, struct zn__sqlite_ready *r)
{
    buffer_free(s, r);
    *r = s->ready[--s->nready];
}

/* True when job a is fetched before job b (jobs_ready's order). */
static bool
fetched_before(const struct zn_job *a, const struct zn_job *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    if (a->enqueued_at != b->enqueued_at)
        return a->enqueued_at < b->enqueued_at;
    return a->seq < b->seq;
}

/*
 * A buffer that holds every ready job of its queue keeps doing so: the
 * new job joins it at its end when there is room. Else the buffer goes
 * (it would come before the last one) or no longer holds all.
 */
void
zn__sqlite_ready_pushed(struct zn__sqlite *s, const struct zn_job *job)
{
    struct zn__sqlite_ready *r = buffer_of(s, job->queue);
    struct zn_job *copy;

    if (!r)
        return;
    if (r->head < r->n && fetched_before(job, r->jobs[r->n - 1])) {
        buffer_remove(s, r);
        return;
    }
    if (!r->all)
        return;
    if (r->head == r->n)
        r->head = r->n = 0;
    copy = r->n < READY_ROWS && s->ready_bytes <= READY_BYTES
               ? zn_job_dup(job)
               : NULL;
    if (!copy) {
        r->all = false;
        return;
    }
    r->jobs[r->n++] = copy;
    s->ready_bytes += payload_bytes(copy);
}

/* Reads the next ready jobs of queue into a new buffer, *out. */
static int
buffer_fill(struct zn__sqlite *s, const char *queue,
            struct zn__sqlite_ready **out, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_FETCH];
    struct zn__sqlite_ready *r, *grown;
    struct zn_job *job;
    struct zn_err bad;
    int rc;

    if (s->ready_bytes > READY_BYTES || s->nready == ZN__SQLITE_READY_QUEUES)
        zn__sqlite_ready_drop(s);
    grown = realloc(s->ready, (s->nready + 1) * sizeof(*grown));
    if (!grown)
        return zn__sqlite_nomem(s, "fetch from", err);
    s->ready = grown;
    r = &grown[s->nready];
    memset(r, 0, sizeof(*r));
    r->jobs = malloc(READY_ROWS * sizeof(*r->jobs));
    if (!r->jobs)
        return zn__sqlite_nomem(s, "fetch from", err);
    s->nready++;
    memcpy(r->queue, queue, strlen(queue) + 1);
    sqlite3_bind_text(q, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, READY_ROWS + 1);
    for (;;) {
        rc = zn__sqlite_step(s, q, "fetch from", err);
        if (rc != SQLITE_ROW)
            break;
        if (r->n == READY_ROWS || s->ready_bytes > READY_BYTES)
            break;
        /* A bad row fails the fetch that reaches it, not those before. */
        rc = zn__sqlite_row_job(s, q, &job, r->n > 0 ? &bad : err);
        if (rc < 0) {
            if (r->n > 0)
                rc = SQLITE_ROW;
            break;
        }
        r->jobs[r->n++] = job;
        s->ready_bytes += payload_bytes(job);
    }
    r->all = rc == SQLITE_DONE;
    sqlite3_reset(q);
    if (rc < 0) {
        buffer_remove(s, r);
        return rc;
    }
    *out = r;
    return 0;
}

static void ahead_submit(struct zn__sqlite *s, struct zn__sqlite_ready *r);

/* Leases job (taken from a buffer) to wid: job and held change alike. */
static int
held_add(struct zn__sqlite *s, struct zn_job *job, const char *wid,
         int64_t now, struct zn_err *err)
{
    struct zn__sqlite_held *h;
    char *worker, *copy;

    if (s->nheld == s->cap_held) {
        size_t cap = s->cap_held ? s->cap_held * 2 : 64;

        h = realloc(s->held, cap * sizeof(*h));
        if (!h)
            return zn__sqlite_nomem(s, "fetch from", err);
        s->held = h;
        s->cap_held = cap;
    }
    h = &s->held[s->nheld];
    worker = strdup(wid);
    copy = strdup(wid);
    if (!worker || !copy) {
        free(worker);
        free(copy);
        return zn__sqlite_nomem(s, "fetch from", err);
    }
    free(job->worker);
    job->worker = worker;
    job->state = ZN_STATE_WORKING;
    job->lease_until = now + (int64_t)job->reserve_for * 1000;
    job->attempts++; /* row_job allows at most INT_MAX - 1 */
    job->updated_at = now;
    memset(h, 0, sizeof(*h));
    h->seq = (int64_t)job->seq;
    memcpy(h->jid, job->jid, sizeof(h->jid));
    memcpy(h->queue, job->queue, sizeof(h->queue));
    h->worker = copy;
    h->attempts = job->attempts;
    h->started_at = now;
    h->lease_until = job->lease_until;
    s->nheld++;
    return 0;
}

/* r has no job to hand out, and a read would find none. */
static bool
buffer_spent(const struct zn__sqlite_ready *r)
{
    return r && r->head == r->n && r->all;
}

/* A fetch from r (NULL: none yet) must read, or settle first. */
static bool
needs_db(const struct zn__sqlite *s, const struct zn__sqlite_ready *r)
{
    return s->nheld >= HELD_MAX || !r || r->head == r->n;
}

int
zn__sqlite_ready_fetch(struct zn__sqlite *s, const char *queue,
                       const char *wid, int64_t now, bool ahead,
                       struct zn_job **out, struct zn_err *err)
{
    struct zn__sqlite_ready *r;
    struct zn_job *job;
    int rc = 0;

    *out = NULL;
    if (strlen(queue) > ZN_QUEUE_NAME_MAX)
        return 0; /* no job is in such a queue */
    r = buffer_of(s, queue);
    if (buffer_spent(r))
        return 0;
    if (needs_db(s, r)) {
        /* What the reader ahead read may be enough. */
        rc = zn__sqlite_ahead_join(s, err);
        if (rc < 0)
            return rc;
        r = buffer_of(s, queue);
        if (buffer_spent(r))
            return 0;
        /* A read must not meet the jobs held: their rows say ready. */
        if (needs_db(s, r))
            rc = zn__sqlite_settle(s, err);
        if (rc < 0)
            return rc;
    }
    /* A settle that succeeds leaves the buffers as they were. */
    if (!r || r->head == r->n) {
        if (r)
            buffer_remove(s, r);
        rc = buffer_fill(s, queue, &r, err);
    }
    /* Errors are negative, so buffer_fill has set r. */
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
    if (rc < 0 || r->head == r->n)
        return rc;
    job = r->jobs[r->head];
    rc = held_add(s, job, wid, now, err);
    if (rc < 0)
        return rc;
    r->head++;
    s->ready_bytes -= payload_bytes(job);
    *out = job;
    if (ahead)
        ahead_submit(s, r);
    return 0;
}

/* The held job jid, from the newest end, or NULL. */
static struct zn__sqlite_held *
held_find(struct zn__sqlite *s, const char *jid)
{
    for (size_t i = s->nheld; i-- > 0;)
        if (strcmp(s->held[i].jid, jid) == 0)
            return &s->held[i];
    return NULL;
}

int
zn__sqlite_held_ack(struct zn__sqlite *s, const char *jid, int64_t now,
                    const struct zn_store_outcome *o, bool *acked,
                    struct zn_err *err)
{
    struct zn__sqlite_held *h = held_find(s, jid);
    int rc;

    *acked = false;
    /* The reader ahead's write has it, and puts it back if it fails. */
    if (!h && zn__sqlite_ahead_busy(s)) {
        rc = zn__sqlite_ahead_join(s, err);
        if (rc < 0)
            return rc;
        h = held_find(s, jid);
    }
    if (!h)
        return 0;
    /* Anything but a first ACK is for the row: write it first. */
    if (h->acked || o->next != ZN_STATE_DONE || o->errtype || o->message ||
        (o->outcome && strcmp(o->outcome, "ok") != 0))
        return zn__sqlite_settle(s, err);
    if (o->worker && strcmp(o->worker, h->worker) != 0)
        return zn__sqlite_lease_elsewhere(jid, err);
    h->acked = true;
    h->ended_at = now;
    h->cpu_ms = o->cpu_ms;
    h->rss_kb = o->rss_kb;
    *acked = true;
    return 0;
}

/* The update of a held job's row, which must say ready still. */
static int
held_row(struct zn__sqlite *s, const struct zn__sqlite_held *h,
         struct zn_err *err)
{
    sqlite3_stmt *q;
    int rc;

    if (h->acked) {
        q = s->stmt[ZN__SQLITE_TAKE_DONE];
        sqlite3_bind_int64(q, 2, h->ended_at);
    } else {
        q = s->stmt[ZN__SQLITE_TAKE];
        sqlite3_bind_int64(q, 2, h->lease_until);
        sqlite3_bind_text(q, 4, h->worker, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, h->started_at);
    }
    sqlite3_bind_int64(q, 1, h->seq);
    sqlite3_bind_int(q, 3, h->attempts);
    rc = zn__sqlite_run(s, q, "write leases to", err);
    /* The write lock is held since the read: the row cannot have moved. */
    if (rc == 0 && sqlite3_changes(s->db) != 1)
        rc = zn_err_set(err, ZN_EIO, "cannot write leases to '%s': job "
                        "%lld changed while held", s->path,
                        (long long)h->seq);
    return rc;
}

/* The row, the attempt and the counts of one held job. */
static int
held_write(struct zn__sqlite *s, const struct zn__sqlite_held *h,
           struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_ATTEMPT_ADD];
    int next = h->acked ? ZN_STATE_DONE : ZN_STATE_WORKING;
    int rc = held_row(s, h, err);

    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, h->seq);
    sqlite3_bind_int(q, 2, h->attempts);
    sqlite3_bind_text(q, 3, h->worker, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, h->started_at);
    sqlite3_bind_int64(q, 5, h->acked ? h->ended_at : 0);
    if (h->acked)
        sqlite3_bind_text(q, 6, "ok", -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 6);
    sqlite3_bind_int64(q, 7, h->acked ? h->cpu_ms : -1);
    sqlite3_bind_int64(q, 8, h->acked ? h->rss_kb : -1);
    rc = zn__sqlite_run(s, q, "write leases to", err);
    if (rc == 0)
        rc = zn__sqlite_tally(s, h->queue, ZN_STATE_ENQUEUED, -1,
                              "write leases to", err);
    if (rc == 0)
        rc = zn__sqlite_tally(s, h->queue, next, 1, "write leases to", err);
    if (rc == 0 && h->acked)
        s->op_counter[ZN__SQLITE_PROCESSED]++;
    return rc;
}

int
zn__sqlite_write_begin(struct zn__sqlite *s, const char *what,
                       struct zn_err *err)
{
    int rc = zn__sqlite_writable(s, what, err);

    return rc < 0 ? rc : zn__sqlite_settle(s, err);
}

int
zn__sqlite_lease_elsewhere(const char *jid, struct zn_err *err)
{
    return zn_err_set(err, ZN_ESTATE, "cannot finish job '%s': its lease "
                      "passed to another worker", jid);
}

/* Frees what n held jobs own. */
static void
held_free(struct zn__sqlite_held *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(h[i].worker);
}

void
zn__sqlite_held_discard(struct zn__sqlite *s)
{
    held_free(s->held, s->nheld);
    s->nheld = 0;
}

int
zn__sqlite_settle(struct zn__sqlite *s, struct zn_err *err)
{
    enum zn__sqlite_tx tx;
    int rc = zn__sqlite_ahead_join(s, err);

    if (rc == 0)
        rc = zn__sqlite_deferred_insert(s, err);
    if (rc < 0 || s->nheld == 0)
        return rc;
    rc = zn__sqlite_tx_open(s, &tx, "write leases to", err);
    if (rc == 0) {
        for (size_t i = 0; i < s->nheld && rc == 0; i++)
            rc = held_write(s, &s->held[i], err);
        rc = zn__sqlite_tx_close(s, tx, rc, "write leases to", err);
    }
    if (rc == 0 || sqlite3_get_autocommit(s->db)) {
        /* Written, or gone with the op's own transaction: still ready. */
        zn__sqlite_held_discard(s);
    }
    /*
     * Failed inside the caller's transaction: the leases and ACKs stay
     * held, and every op that settles fails until a settle succeeds, the
     * commit too, which the caller then rolls back. A read of jobs_ready
     * comes after a settle: the buffers go, none may skip a held job.
     */
    if (rc < 0)
        zn__sqlite_ready_drop(s);
    return rc;
}

void
zn__sqlite_ready_close(struct zn__sqlite *s)
{
    zn__sqlite_ready_drop(s);
    zn__sqlite_held_discard(s);
    free(s->held);
    s->held = NULL;
    s->cap_held = 0;
}

/*
 * The reader ahead. Once a buffer is down to half of READY_ROWS, inside
 * the caller's transaction, the thread takes the ACKed held jobs and
 * writes them, then reads the jobs that follow the buffer's last one:
 * the rest of its priority (ZN__SQLITE_FETCH_AFTER), then the lower ones
 * (ZN__SQLITE_FETCH_BELOW). The next fetch that needs the connection
 * joins it and appends them, but for the held ones: their rows say ready
 * still, and a buffer emptied and refilled by a push (ready_pushed) may
 * end before them. Every other ready job the read meets follows the
 * buffer's last one; whatever removes a buffer (a push before its last
 * job, a rollback, a requeue) joins first.
 *
 * The task's fields are the loop's until due is set and again once the
 * thread clears it; busy is the loop's alone. The thread logs nothing. A
 * write that fails puts its jobs back in held, so the next settle tries
 * again and fails the op that needed it, as a settle of its own would
 * have; a read that fails only stops short (a fetch that reads for itself
 * reports it). Only when the transaction is gone does the join fail.
 */
struct zn__sqlite_ahead {
    struct zn__sqlite_thread t;
    bool due;
    bool busy;           /* submitted and not joined */
    int64_t runs;        /* tasks run to their end */
    /* The task: the ACKed jobs to write, the read to make. */
    struct zn__sqlite_held *held;
    size_t nheld, cap_held;
    char queue[ZN_QUEUE_NAME_MAX + 1];
    int priority;        /* the buffer's last job: read after it */
    int64_t enqueued_at;
    int64_t seq;
    size_t want;         /* jobs to read at most */
    size_t bytes;        /* payload to read at most */
    /* The outcome. */
    bool opened;         /* the write's savepoint was opened */
    int rc;              /* of the write */
    struct zn_err err;   /* of the write, or of what ended the transaction */
    struct zn_job *jobs[READY_ROWS];
    size_t njobs;
    bool all;            /* the read reached the queue's last ready job */
};

/* Steps q, bound, appending its jobs to the read: SQLITE_DONE at its end. */
static int
ahead_read(struct zn__sqlite *s, struct zn__sqlite_ahead *a, sqlite3_stmt *q,
           size_t *bytes)
{
    struct zn_job *job;
    int rc;

    for (;;) {
        rc = zn__sqlite_step(s, q, "fetch from", &a->err);
        if (rc != SQLITE_ROW || a->njobs == a->want || *bytes > a->bytes)
            break;
        rc = zn__sqlite_row_job(s, q, &job, &a->err);
        if (rc < 0)
            break;
        a->jobs[a->njobs++] = job;
        *bytes += payload_bytes(job);
    }
    sqlite3_reset(q);
    return rc;
}

/* The thread's part: writes the held jobs, then reads. */
static void
ahead_run(struct zn__sqlite *s, struct zn__sqlite_ahead *a)
{
    sqlite3_stmt *after = s->stmt[ZN__SQLITE_FETCH_AFTER];
    sqlite3_stmt *below = s->stmt[ZN__SQLITE_FETCH_BELOW];
    enum zn__sqlite_tx tx = ZN__SQLITE_TX_NESTED;
    size_t bytes = 0;
    int rc = 0;

    a->opened = false;
    a->njobs = 0;
    a->all = false;
    zn_err_clear(&a->err);
    if (a->nheld) {
        rc = zn__sqlite_tx_open(s, &tx, "write leases to", &a->err);
        a->opened = rc == 0;
        ZN_ASSERT(rc < 0 || tx == ZN__SQLITE_TX_NESTED);
    }
    for (size_t i = 0; i < a->nheld && rc == 0; i++)
        rc = held_write(s, &a->held[i], &a->err);
    /* The loop undoes a failed write (tx_undo touches its buffers). */
    if (rc == 0 && a->opened)
        rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_RELEASE], "write leases to",
                            &a->err);
    if (rc == 0 && a->opened)
        zn__sqlite_tally_keep(s);
    a->rc = rc;
    if (rc == 0) {
        sqlite3_bind_text(after, 1, a->queue, -1, SQLITE_STATIC);
        sqlite3_bind_int(after, 2, a->priority);
        sqlite3_bind_int64(after, 3, a->enqueued_at);
        sqlite3_bind_int64(after, 4, a->seq);
        sqlite3_bind_int64(after, 5, (int64_t)a->want + 1);
        rc = ahead_read(s, a, after, &bytes);
    }
    if (rc == SQLITE_DONE) {
        sqlite3_bind_text(below, 1, a->queue, -1, SQLITE_STATIC);
        sqlite3_bind_int(below, 2, a->priority);
        sqlite3_bind_int64(below, 3, (int64_t)(a->want - a->njobs) + 1);
        rc = ahead_read(s, a, below, &bytes);
    }
    a->all = rc == SQLITE_DONE;
}

static void *
ahead_main(void *arg)
{
    struct zn__sqlite *s = arg;
    struct zn__sqlite_ahead *a = s->ahead;

    pthread_mutex_lock(&a->t.mu);
    for (;;) {
        while (!a->due && !a->t.stop)
            pthread_cond_wait(&a->t.cv, &a->t.mu);
        if (a->t.stop)
            break;
        pthread_mutex_unlock(&a->t.mu);
        ahead_run(s, a);
        pthread_mutex_lock(&a->t.mu);
        a->due = false;
        a->runs++;
        pthread_cond_signal(&a->t.idle);
    }
    pthread_mutex_unlock(&a->t.mu);
    return NULL;
}

/*
 * Room for the task's jobs to go back to held, whatever the loop holds
 * by then (at most HELD_MAX: a fetch past it joins), so a write that
 * fails loses none.
 */
static bool
ahead_reserve(struct zn__sqlite *s, size_t moved)
{
    size_t kept = s->nheld - moved;
    size_t need = (kept > HELD_MAX ? kept : HELD_MAX) + moved;
    struct zn__sqlite_held *grown;

    if (s->cap_held < need) {
        grown = realloc(s->held, need * sizeof(*grown));
        if (!grown)
            return false;
        s->held = grown;
        s->cap_held = need;
    }
    if (s->ahead->cap_held < moved) {
        grown = realloc(s->ahead->held, moved * sizeof(*grown));
        if (!grown)
            return false;
        s->ahead->held = grown;
        s->ahead->cap_held = moved;
    }
    return true;
}

/*
 * Gives the thread its task when r, just fetched from in the caller's
 * transaction, is down to half and may have more jobs behind it.
 */
static void
ahead_submit(struct zn__sqlite *s, struct zn__sqlite_ready *r)
{
    struct zn__sqlite_ahead *a = s->ahead;
    const struct zn_job *last;
    size_t moved = 0, k = 0;

    if (!a || a->busy || r->all || r->head == r->n ||
        r->n - r->head > READY_ROWS / 2 || s->ready_bytes > READY_BYTES)
        return;
    for (size_t i = 0; i < s->nheld; i++)
        moved += s->held[i].acked;
    if (!ahead_reserve(s, moved))
        return; /* the next settle writes them */
    a->nheld = 0;
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->held[i].acked)
            a->held[a->nheld++] = s->held[i];
        else
            s->held[k++] = s->held[i];
    }
    s->nheld = k;
    last = r->jobs[r->n - 1];
    memcpy(a->queue, r->queue, sizeof(a->queue));
    a->priority = last->priority;
    a->enqueued_at = last->enqueued_at;
    a->seq = (int64_t)last->seq;
    a->want = READY_ROWS - (r->n - r->head);
    a->bytes = READY_BYTES - s->ready_bytes;
    a->busy = true;
    pthread_mutex_lock(&a->t.mu);
    a->due = true;
    pthread_cond_signal(&a->t.cv);
    pthread_mutex_unlock(&a->t.mu);
}

static bool
is_held(const struct zn__sqlite *s, uint64_t seq)
{
    for (size_t i = 0; i < s->nheld; i++)
        if (s->held[i].seq == (int64_t)seq)
            return true;
    return false;
}

/* Appends what the thread read to its buffer, as far as there is room. */
static void
ahead_merge(struct zn__sqlite *s, struct zn__sqlite_ahead *a)
{
    struct zn__sqlite_ready *r = buffer_of(s, a->queue);
    bool fits = true;

    /* Nothing removes a buffer while the thread reads (see above). */
    ZN_ASSERT(r != NULL);
    memmove(r->jobs, r->jobs + r->head, (r->n - r->head) * sizeof(*r->jobs));
    r->n -= r->head;
    r->head = 0;
    for (size_t i = 0; i < a->njobs; i++) {
        struct zn_job *job = a->jobs[i];

        fits = fits && r->n < READY_ROWS && s->ready_bytes <= READY_BYTES;
        if (!fits || is_held(s, job->seq)) {
            zn_job_free(job);
            continue;
        }
        r->jobs[r->n++] = job;
        s->ready_bytes += payload_bytes(job);
    }
    r->all = fits && a->all;
    a->njobs = 0;
}

/*
 * A write that failed: its jobs are held again (ahead_reserve made room)
 * and its savepoint is undone, as a settle of its own would have done.
 */
static void
ahead_failed(struct zn__sqlite *s, struct zn__sqlite_ahead *a)
{
    ZN_ASSERT(s->nheld + a->nheld <= s->cap_held);
    memcpy(s->held + s->nheld, a->held, a->nheld * sizeof(*a->held));
    s->nheld += a->nheld;
    a->nheld = 0;
    if (a->opened)
        zn__sqlite_tx_close(s, ZN__SQLITE_TX_NESTED, a->rc, "write leases to",
                            NULL);
    zn__sqlite_ready_drop(s);
}

int
zn__sqlite_ahead_join(struct zn__sqlite *s, struct zn_err *err)
{
    struct zn__sqlite_ahead *a = s->ahead;
    bool gone;

    if (!a || !a->busy)
        return 0;
    pthread_mutex_lock(&a->t.mu);
    while (a->due)
        pthread_cond_wait(&a->t.idle, &a->t.mu);
    pthread_mutex_unlock(&a->t.mu);
    a->busy = false;
    /* Some errors (SQLITE_FULL, SQLITE_IOERR) roll back by themselves. */
    gone = sqlite3_get_autocommit(s->db);
    if (a->rc < 0 && !gone) {
        ahead_failed(s, a);
        return 0;
    }
    held_free(a->held, a->nheld);
    a->nheld = 0;
    if (!gone) {
        ahead_merge(s, a);
        return 0;
    }
    /* As a rollback: nothing held or read is left, the error is. */
    for (size_t i = 0; i < a->njobs; i++)
        zn_job_free(a->jobs[i]);
    a->njobs = 0;
    zn__sqlite_tx_close(s, ZN__SQLITE_TX_OWN, ZN_EIO, "write leases to",
                        NULL);
    if (a->err.code == 0)
        zn_err_set(&a->err, ZN_EIO, "cannot write leases to '%s': the "
                   "transaction rolled back", s->path);
    if (err)
        *err = a->err;
    return a->err.code;
}

bool
zn__sqlite_ahead_busy(const struct zn__sqlite *s)
{
    return s->ahead && s->ahead->busy;
}

int64_t
zn__sqlite_ahead_runs(struct zn__sqlite *s)
{
    int64_t n;

    if (!s->ahead)
        return -1;
    pthread_mutex_lock(&s->ahead->t.mu);
    n = s->ahead->runs;
    pthread_mutex_unlock(&s->ahead->t.mu);
    return n;
}

bool
zn__sqlite_ahead_is_self(const struct zn__sqlite *s)
{
    return s->ahead && pthread_equal(pthread_self(), s->ahead->t.thread);
}

int
zn__sqlite_ahead_start(struct zn__sqlite *s, struct zn_err *err)
{
    struct zn__sqlite_ahead *a = calloc(1, sizeof(*a));
    int rc;

    if (!a)
        return zn__sqlite_nomem(s, "start the reader ahead of", err);
    s->ahead = a;
    rc = zn__sqlite_thread_start(&a->t, ahead_main, s);
    if (rc == 0)
        return 0;
    s->ahead = NULL;
    free(a);
    return zn_err_set(err, ZN_ENOMEM, "cannot start the reader ahead of "
                      "'%s': %s", s->path, strerror(rc));
}

void
zn__sqlite_ahead_stop(struct zn__sqlite *s)
{
    struct zn__sqlite_ahead *a = s->ahead;

    if (!a)
        return;
    zn__sqlite_ahead_join(s, NULL);
    zn__sqlite_thread_stop(&a->t);
    free(a->held);
    free(a);
    s->ahead = NULL;
}
