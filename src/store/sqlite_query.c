/*
 * sqlite_query.c - the read side of the sqlite store: turning rows back
 * into jobs, and the ops that select jobs by a filter (list, count,
 * retry_dead, remove) or report on them (queue_stats, attempts, counters,
 * query plans).
 *
 * Every row read back is input, as a network message is: a NULL where a
 * string belongs, a state out of range or tags that are not JSON give
 * ZN_EIO naming the job and the column, never a crash.
 *
 * Filters become one WHERE clause with named parameters, bound only when
 * the filter has them; these statements are prepared per call, as they
 * are not on the hot path.
 */
#include "compat.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "store/sqlite_int.h"

/* Column numbers of ZN__SQLITE_JOB_COLS. */
enum job_col {
    C_SEQ, C_JID, C_QUEUE, C_JOBTYPE, C_STATE, C_PRIORITY, C_ARGS, C_CUSTOM,
    C_TAGS, C_BACKOFF, C_RETRY, C_RESERVE_FOR, C_UNIQUE_FOR,
    C_BACKTRACE_LINES, C_CREATED_AT, C_ENQUEUED_AT, C_AT, C_NEXT_AT,
    C_LEASE_UNTIL, C_UPDATED_AT, C_ATTEMPTS, C_FAILURES, C_WORKER,
    C_ERRTYPE, C_MESSAGE, C_BACKTRACE, C_FAILED_AT, C_QUARANTINED
};

/*
 * Reading rows. A row is input: every getter checks what it reads and the
 * first problem sticks in rc, so row_job reads as a flat list of fields.
 */
struct row {
    struct zn__sqlite *s;
    sqlite3_stmt *st;
    const char *what; /* "job", "attempt of job" */
    int64_t id;       /* the job's seq; 0 when there is none */
    struct zn_err *err;
    int rc;
};

static void
row_bad(struct row *r, int col, const char *problem)
{
    const char *name = sqlite3_column_name(r->st, col);

    if (r->rc)
        return;
    if (r->id)
        r->rc = zn_err_set(r->err, ZN_EIO, "cannot read %s %lld from '%s': "
                           "column '%s' %s", r->what, (long long)r->id,
                           r->s->path, name ? name : "?", problem);
    else
        r->rc = zn_err_set(r->err, ZN_EIO, "cannot read %s from '%s': "
                           "column '%s' %s", r->what, r->s->path,
                           name ? name : "?", problem);
}

static int64_t
row_int(struct row *r, int col, int64_t lo, int64_t hi)
{
    int64_t v;

    if (sqlite3_column_type(r->st, col) != SQLITE_INTEGER) {
        row_bad(r, col, "is not an integer");
        return lo;
    }
    v = sqlite3_column_int64(r->st, col);
    if (v < lo || v > hi) {
        row_bad(r, col, "is out of range");
        return lo;
    }
    return v;
}

/* The text of a column and its length; NULL for SQL NULL or a problem. */
static const char *
row_text(struct row *r, int col, bool required, size_t *len)
{
    const unsigned char *t;

    *len = 0;
    if (r->rc)
        return NULL;
    if (sqlite3_column_type(r->st, col) == SQLITE_NULL) {
        if (required)
            row_bad(r, col, "is NULL");
        return NULL;
    }
    t = sqlite3_column_text(r->st, col);
    if (!t) {
        r->rc = zn__sqlite_nomem(r->s, "read", r->err);
        return NULL;
    }
    *len = (size_t)sqlite3_column_bytes(r->st, col);
    if (memchr(t, '\0', *len)) {
        row_bad(r, col, "holds a NUL byte");
        return NULL;
    }
    return (const char *)t;
}

static char *
row_dup(struct row *r, int col, bool required)
{
    size_t len;
    const char *t = row_text(r, col, required, &len);
    char *d;

    if (!t)
        return NULL;
    d = malloc(len + 1);
    if (!d) {
        r->rc = zn__sqlite_nomem(r->s, "read", r->err);
        return NULL;
    }
    memcpy(d, t, len + 1);
    return d;
}

/* Copies a required, non-empty text column into buf. */
static void
row_copy(struct row *r, int col, char *buf, size_t size)
{
    size_t len;
    const char *t = row_text(r, col, true, &len);

    if (!t)
        return;
    if (len == 0 || len >= size) {
        row_bad(r, col, len ? "is too long" : "is empty");
        return;
    }
    memcpy(buf, t, len + 1);
}

static void
row_tags(struct row *r, int col, struct zn_job *job)
{
    size_t len, n;
    const char *t = row_text(r, col, false, &len);
    json_t *a;

    if (!t)
        return;
    a = json_loadb(t, len, 0, NULL);
    n = json_is_array(a) ? json_array_size(a) : 0;
    if (!json_is_array(a) || n == 0) {
        row_bad(r, col, "is not a JSON array of strings");
        json_decref(a);
        return;
    }
    job->tags = calloc(n, sizeof(*job->tags));
    if (!job->tags)
        r->rc = zn__sqlite_nomem(r->s, "read", r->err);
    for (size_t i = 0; job->tags && i < n && !r->rc; i++) {
        const char *v = json_string_value(json_array_get(a, i));

        if (!v) {
            row_bad(r, col, "is not a JSON array of strings");
            break;
        }
        job->tags[i] = strdup(v);
        if (!job->tags[i])
            r->rc = zn__sqlite_nomem(r->s, "read", r->err);
        else
            job->ntags++;
    }
    json_decref(a);
}

static void
row_backoff(struct row *r, int col, struct zn_job *job)
{
    size_t len;
    const char *t = row_text(r, col, false, &len);

    if (t && zn_job_parse_backoff(t, job->backoff, &job->nbackoff, NULL))
        row_bad(r, col, "is not a list of seconds");
}

/* Builds a job from a row whose columns are ZN__SQLITE_JOB_COLS. */
int
zn__sqlite_row_job(struct zn__sqlite *s, sqlite3_stmt *st, struct zn_job **out,
                   struct zn_err *err)
{
    struct row r = {s, st, "job", sqlite3_column_int64(st, C_SEQ), err, 0};
    struct zn_job *job = zn_job_new();

    if (!job)
        return zn__sqlite_nomem(s, "read", err);
    job->seq = (uint64_t)row_int(&r, C_SEQ, 1, INT64_MAX);
    row_copy(&r, C_JID, job->jid, sizeof(job->jid));
    row_copy(&r, C_QUEUE, job->queue, sizeof(job->queue));
    job->jobtype = row_dup(&r, C_JOBTYPE, true);
    job->state = (enum zn_job_state)row_int(&r, C_STATE, 0,
                                            ZN_STATE_COUNT - 1);
    job->priority = (int)row_int(&r, C_PRIORITY, INT_MIN, INT_MAX);
    job->args = row_dup(&r, C_ARGS, true);
    job->custom = row_dup(&r, C_CUSTOM, false);
    row_tags(&r, C_TAGS, job);
    row_backoff(&r, C_BACKOFF, job);
    job->retry = (int)row_int(&r, C_RETRY, INT_MIN, INT_MAX);
    job->reserve_for = (int)row_int(&r, C_RESERVE_FOR, INT_MIN, INT_MAX);
    job->unique_for = (int)row_int(&r, C_UNIQUE_FOR, INT_MIN, INT_MAX);
    job->backtrace_lines = (int)row_int(&r, C_BACKTRACE_LINES, INT_MIN,
                                        INT_MAX);
    job->created_at = row_int(&r, C_CREATED_AT, INT64_MIN, INT64_MAX);
    job->enqueued_at = row_int(&r, C_ENQUEUED_AT, INT64_MIN, INT64_MAX);
    job->at = row_int(&r, C_AT, INT64_MIN, INT64_MAX);
    job->next_at = row_int(&r, C_NEXT_AT, INT64_MIN, INT64_MAX);
    job->lease_until = row_int(&r, C_LEASE_UNTIL, INT64_MIN, INT64_MAX);
    job->updated_at = row_int(&r, C_UPDATED_AT, INT64_MIN, INT64_MAX);
    job->attempts = (int)row_int(&r, C_ATTEMPTS, 0, INT_MAX - 1);
    job->failures = (int)row_int(&r, C_FAILURES, 0, INT_MAX);
    job->worker = row_dup(&r, C_WORKER, false);
    job->failure.errtype = row_dup(&r, C_ERRTYPE, false);
    job->failure.message = row_dup(&r, C_MESSAGE, false);
    job->failure.backtrace = row_dup(&r, C_BACKTRACE, false);
    job->failure.failed_at = row_int(&r, C_FAILED_AT, INT64_MIN, INT64_MAX);
    job->quarantined = row_int(&r, C_QUARANTINED, 0, 1) != 0;
    if (r.rc) {
        zn_job_free(job);
        return r.rc;
    }
    *out = job;
    return 0;
}

/*
 * Steps st and appends up to max jobs to out; *more tells whether a row
 * was left. out is released on failure. st is reset.
 */
int
zn__sqlite_read_jobs(struct zn__sqlite *s, sqlite3_stmt *st, size_t max,
                     struct zn_store_list *out, bool *more, struct zn_err *err)
{
    size_t cap = 0;
    int rc;

    *more = false;
    for (;;) {
        rc = zn__sqlite_step(s, st, "read from", err);
        if (rc != SQLITE_ROW)
            break;
        if (out->n == max) {
            *more = true;
            break;
        }
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct zn_job **grown = realloc(out->jobs, ncap * sizeof(*grown));

            if (!grown) {
                rc = zn__sqlite_nomem(s, "read from", err);
                break;
            }
            out->jobs = grown;
            cap = ncap;
        }
        rc = zn__sqlite_row_job(s, st, &out->jobs[out->n], err);
        if (rc < 0)
            break;
        out->n++;
    }
    sqlite3_reset(st);
    if (rc < 0) {
        zn_store_list_release(out);
        return rc;
    }
    return 0;
}

/*
 * Queries: list, count, retry_dead and remove share one WHERE clause,
 * built from the filter with named parameters bound only when present.
 */
struct sql {
    char s[2048];
    size_t len;
};

static void
sql_add(struct sql *b, const char *text)
{
    size_t n = strlen(text);

    ZN_ASSERT(b->len + n < sizeof(b->s));
    memcpy(b->s + b->len, text, n + 1);
    b->len += n;
}

/*
 * " AND state = 4" for one state, " AND state IN (1, 3)" for several:
 * written exactly as in the partial indexes (jobs_dead, jobs_done,
 * jobs_lease), the one-state form lets SQLite use them.
 */
static void
sql_states(struct sql *b, unsigned states)
{
    char list[3 * ZN_STATE_COUNT + 1] = "";
    size_t len = 0;
    int n = 0;

    for (int i = 0; i < ZN_STATE_COUNT; i++) {
        if (!(states & ZN_STATE_BIT(i)))
            continue;
        if (n++) {
            list[len++] = ',';
            list[len++] = ' ';
        }
        list[len++] = (char)('0' + i);
        list[len] = '\0';
    }
    if (n == 0) {
        sql_add(b, " AND 0"); /* only unknown states asked for */
        return;
    }
    sql_add(b, n == 1 ? " AND state = " : " AND state IN (");
    sql_add(b, list);
    sql_add(b, n == 1 ? "" : ")");
}

static void
sql_where(struct sql *b, const struct zn_store_query *q, bool dead_only)
{
    sql_add(b, " WHERE 1");
    if (dead_only || q->states)
        sql_states(b, dead_only ? ZN_STATE_BIT(ZN_STATE_DEAD) : q->states);
    if (q->jid)
        sql_add(b, " AND jid = :jid");
    if (q->queue)
        sql_add(b, " AND queue = :queue");
    if (q->jobtype)
        sql_add(b, " AND jobtype = :jobtype");
    if (q->tag)
        sql_add(b, " AND seq IN (SELECT seq FROM job_tags WHERE tag = :tag)");
    /*
     * The engine asks for a worker's jobs when its connection drops: only
     * the working jobs are searched, not the table.
     */
    if (q->worker)
        sql_add(b, " AND seq IN (SELECT seq FROM jobs INDEXED BY jobs_lease"
                   " WHERE state = 2 AND worker = :worker)");
    /*
     * The working jobs (INFO and `zenith workers` list them) are a few
     * among millions: found through their index, not by reading the table
     * in seq order until a thousand turn up. That read was a quarter of
     * the server's time while a benchmark polled INFO.
     */
    else if (!dead_only && q->states == ZN_STATE_BIT(ZN_STATE_WORKING))
        sql_add(b, " AND seq IN (SELECT seq FROM jobs INDEXED BY jobs_lease"
                   " WHERE state = 2)");
    if (q->updated_from)
        sql_add(b, " AND updated_at >= :from");
    if (q->updated_to)
        sql_add(b, " AND updated_at < :to");
    if (q->after)
        sql_add(b, " AND seq > :after");
}

static void
bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(st, name);

    if (i > 0)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void
bind_named_int(sqlite3_stmt *st, const char *name, int64_t v)
{
    int i = sqlite3_bind_parameter_index(st, name);

    if (i > 0)
        sqlite3_bind_int64(st, i, v);
}

static void
bind_query(sqlite3_stmt *st, const struct zn_store_query *q)
{
    bind_named_text(st, ":jid", q->jid);
    bind_named_text(st, ":queue", q->queue);
    bind_named_text(st, ":jobtype", q->jobtype);
    bind_named_text(st, ":tag", q->tag);
    bind_named_text(st, ":worker", q->worker);
    bind_named_int(st, ":from", q->updated_from);
    bind_named_int(st, ":to", q->updated_to);
    bind_named_int(st, ":after", q->after > (uint64_t)INT64_MAX
                                     ? INT64_MAX : (int64_t)q->after);
}

/* Prepares a statement built for one call (not kept). */
static int
prepare_once(struct zn__sqlite *s, const struct sql *b, const char *what,
             sqlite3_stmt **out, struct zn_err *err)
{
    if (sqlite3_prepare_v3(s->db, b->s, (int)b->len + 1, 0, out, NULL))
        return zn__sqlite_err(s, what, err);
    return 0;
}

int
zn__sqlite_list(struct zn_store *st, const struct zn_store_query *q,
                struct zn_store_list *out, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    size_t limit = q->limit == 0 ? 100 : q->limit > 1000 ? 1000 : q->limit;
    struct sql b = {{0}, 0};
    sqlite3_stmt *ps;
    bool more;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = zn__sqlite_settle(s, err);
    if (rc < 0)
        return rc;
    sql_add(&b, "SELECT " ZN__SQLITE_JOB_COLS " FROM jobs");
    sql_where(&b, q, false);
    sql_add(&b, " ORDER BY seq LIMIT :limit");
    rc = prepare_once(s, &b, "list jobs in", &ps, err);
    if (rc < 0)
        return rc;
    bind_query(ps, q);
    bind_named_int(ps, ":limit", (int64_t)limit + 1);
    rc = zn__sqlite_read_jobs(s, ps, limit, out, &more, err);
    sqlite3_finalize(ps);
    if (rc == 0 && more)
        out->next = out->jobs[out->n - 1]->seq;
    return rc;
}

int
zn__sqlite_count(struct zn_store *st, const struct zn_store_query *q,
                 int64_t *n, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    struct sql b = {{0}, 0};
    sqlite3_stmt *ps;
    int rc;

    *n = 0;
    rc = zn__sqlite_settle(s, err);
    if (rc < 0)
        return rc;
    sql_add(&b, "SELECT count(*) FROM jobs");
    sql_where(&b, q, false);
    rc = prepare_once(s, &b, "count jobs in", &ps, err);
    if (rc < 0)
        return rc;
    bind_query(ps, q);
    rc = zn__sqlite_step(s, ps, "count jobs in", err);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(ps, 0);
    sqlite3_finalize(ps);
    return rc < 0 ? rc : 0;
}

/*
 * Steps a statement that returns (queue[, state]) for each job it moved
 * from state from (-1: the one in column 1) to state to (-1: deleted),
 * and counts them; *n = how many.
 */
static int
tally_rows(struct zn__sqlite *s, sqlite3_stmt *ps, int from, int to,
           int64_t *n, const char *what, struct zn_err *err)
{
    struct row r = {s, ps, "job", 0, err, 0};
    char queue[ZN_QUEUE_NAME_MAX + 1];
    int rc, state;

    for (;;) {
        rc = zn__sqlite_step(s, ps, what, err);
        if (rc != SQLITE_ROW)
            break;
        row_copy(&r, 0, queue, sizeof(queue));
        state = from >= 0 ? from : (int)row_int(&r, 1, 0, ZN_STATE_COUNT - 1);
        rc = r.rc;
        if (rc == 0)
            rc = zn__sqlite_tally(s, queue, state, -1, what, err);
        if (rc == 0 && to >= 0)
            rc = zn__sqlite_tally(s, queue, to, 1, what, err);
        if (rc < 0)
            break;
        (*n)++;
    }
    sqlite3_reset(ps);
    return rc < 0 ? rc : 0;
}

static int
retry_rows(struct zn__sqlite *s, const struct zn_store_query *q, int64_t now,
           int64_t *n, struct zn_err *err)
{
    struct sql b = {{0}, 0};
    sqlite3_stmt *ps;
    int rc;

    sql_add(&b, "UPDATE jobs SET state = 1, failures = 0, quarantined = 0,"
                " enqueued_at = :now, next_at = 0, updated_at = :now");
    sql_where(&b, q, true);
    sql_add(&b, " RETURNING queue");
    rc = prepare_once(s, &b, "retry jobs in", &ps, err);
    if (rc < 0)
        return rc;
    bind_query(ps, q);
    bind_named_int(ps, ":now", now);
    rc = tally_rows(s, ps, ZN_STATE_DEAD, ZN_STATE_ENQUEUED, n,
                    "retry jobs in", err);
    sqlite3_finalize(ps);
    return rc;
}

int
zn__sqlite_retry_dead(struct zn_store *st, const struct zn_store_query *q,
                      int64_t now, int64_t *n, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    enum zn__sqlite_tx tx;
    int rc;

    *n = 0;
    rc = zn__sqlite_write_begin(s, "retry jobs in", err);
    if (rc == 0)
        rc = zn__sqlite_tx_open(s, &tx, "retry jobs in", err);
    if (rc)
        return rc;
    s->sync_due = true; /* an administrative change: see lazy_sync */
    rc = retry_rows(s, q, now, n, err);
    rc = zn__sqlite_tx_close(s, tx, rc, "retry jobs in", err);
    if (rc < 0)
        *n = 0;
    if (*n)
        zn__sqlite_ready_drop(s);
    return rc;
}

/*
 * Runs "<head> <WHERE of q> <tail>" once. With counted, its rows are
 * (queue, state) of deleted jobs, to count; *n = how many.
 */
static int
run_filtered(struct zn__sqlite *s, const char *head, const char *tail,
             const struct zn_store_query *q, bool counted, int64_t *n,
             struct zn_err *err)
{
    struct sql b = {{0}, 0};
    sqlite3_stmt *ps;
    int rc;

    sql_add(&b, head);
    sql_where(&b, q, false);
    /*
     * A batch: the same max rows for each of the three statements of a
     * remove (the same query on the same data, in a total order: seq
     * breaks ties of updated_at), oldest first.
     */
    if (q->max) {
        sql_add(&b, " AND seq IN (SELECT seq FROM jobs");
        sql_where(&b, q, false);
        sql_add(&b, " ORDER BY updated_at, seq LIMIT :max)");
    }
    sql_add(&b, tail);
    rc = prepare_once(s, &b, "remove jobs from", &ps, err);
    if (rc < 0)
        return rc;
    bind_query(ps, q);
    if (q->max)
        bind_named_int(ps, ":max",
                       q->max > INT64_MAX ? INT64_MAX : (int64_t)q->max);
    if (counted)
        rc = tally_rows(s, ps, -1, -1, n, "remove jobs from", err);
    else
        rc = zn__sqlite_run(s, ps, "remove jobs from", err);
    sqlite3_finalize(ps);
    return rc;
}

int
zn__sqlite_remove(struct zn_store *st, const struct zn_store_query *q,
                  int64_t *n, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    enum zn__sqlite_tx tx;
    int rc;

    *n = 0;
    rc = zn__sqlite_write_begin(s, "remove jobs from", err);
    if (rc == 0)
        rc = zn__sqlite_tx_open(s, &tx, "remove jobs from", err);
    if (rc)
        return rc;
    /* Children first: their subquery needs the jobs rows. */
    rc = run_filtered(s, "DELETE FROM attempts WHERE seq IN (SELECT seq "
                      "FROM jobs", ")", q, false, NULL, err);
    if (rc == 0)
        rc = run_filtered(s, "DELETE FROM job_tags WHERE seq IN (SELECT seq "
                          "FROM jobs", ")", q, false, NULL, err);
    if (rc == 0)
        rc = run_filtered(s, "DELETE FROM jobs", " RETURNING queue, state",
                          q, true, n, err);
    /* A change to sync (see lazy_sync); a prune that found nothing is not. */
    if (rc == 0 && *n > 0)
        s->sync_due = true;
    rc = zn__sqlite_tx_close(s, tx, rc, "remove jobs from", err);
    if (rc < 0)
        *n = 0;
    if (*n)
        zn__sqlite_ready_drop(s);
    return rc;
}

/* The entry for name, appended when missing (rows come sorted by name). */
static struct zn_queue_stats *
stats_entry(struct zn_queue_stats **v, size_t *n, size_t *cap,
            const char *name)
{
    struct zn_queue_stats *e;

    for (size_t i = *n; i > 0; i--)
        if (strcmp((*v)[i - 1].name, name) == 0)
            return &(*v)[i - 1];
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct zn_queue_stats *grown = realloc(*v, ncap * sizeof(*grown));

        if (!grown)
            return NULL;
        *v = grown;
        *cap = ncap;
    }
    e = &(*v)[(*n)++];
    memset(e, 0, sizeof(*e));
    memcpy(e->name, name, strlen(name) + 1);
    return e;
}

/* Reads rows of (queue, state, n) of queue_counts, or (queue) of paused. */
static int
stats_rows(struct zn__sqlite *s, sqlite3_stmt *q, bool counts,
           struct zn_queue_stats **v, size_t *n, size_t *cap,
           struct zn_err *err)
{
    struct row r = {s, q, "queue stats", 0, err, 0};
    char name[ZN_QUEUE_NAME_MAX + 1];
    struct zn_queue_stats *e;
    int rc, state;

    for (;;) {
        rc = zn__sqlite_step(s, q, "read from", err);
        if (rc != SQLITE_ROW)
            break;
        row_copy(&r, 0, name, sizeof(name));
        state = counts ? (int)row_int(&r, 1, 0, ZN_STATE_COUNT - 1) : 0;
        if (r.rc) {
            rc = r.rc;
            break;
        }
        e = stats_entry(v, n, cap, name);
        if (!e) {
            rc = zn__sqlite_nomem(s, "read from", err);
            break;
        }
        if (!counts) {
            e->paused = true;
            continue;
        }
        e->count[state] = row_int(&r, 2, 0, INT64_MAX);
        if (r.rc) {
            rc = r.rc;
            break;
        }
    }
    sqlite3_reset(q);
    return rc < 0 ? rc : 0;
}

/* Adds the counts pending in memory to the rows read (stats_pending). */
struct pending_ctx {
    struct zn_queue_stats **v;
    size_t *n, *cap;
    bool nomem;
};

static void
pending_cb(void *arg, const char *queue, int state, int64_t n)
{
    struct pending_ctx *p = arg;
    struct zn_queue_stats *e;

    if (n == 0 || state < 0 || state >= ZN_STATE_COUNT)
        return;
    e = stats_entry(p->v, p->n, p->cap, queue);
    if (e)
        e->count[state] += n;
    else
        p->nomem = true;
}

/*
 * The counts of queue_counts plus those not written yet, without writing
 * them: a read costs no write. Queues left with no job drop out, as their
 * rows of 0 do.
 */
static int
stats_pending(struct zn__sqlite *s, struct zn_queue_stats **v, size_t *n,
              size_t *cap, struct zn_err *err)
{
    struct pending_ctx p = {v, n, cap, false};
    size_t kept = 0;

    zn__sqlite_pending_each(s, pending_cb, &p);
    if (p.nomem)
        return zn__sqlite_nomem(s, "read from", err);
    for (size_t i = 0; i < *n; i++) {
        bool any = false;

        for (int k = 0; k < ZN_STATE_COUNT; k++)
            any = any || (*v)[i].count[k] != 0;
        if (any)
            (*v)[kept++] = (*v)[i];
    }
    *n = kept;
    return 0;
}

/* The oldest enqueued_at of each queue with enqueued jobs: one search. */
static int
stats_oldest(struct zn__sqlite *s, struct zn_queue_stats *v, size_t n,
             struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_OLDEST];
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v[i].count[ZN_STATE_ENQUEUED] == 0)
            continue;
        sqlite3_bind_text(q, 1, v[i].name, -1, SQLITE_STATIC);
        rc = zn__sqlite_step(s, q, "read from", err);
        if (rc == SQLITE_ROW)
            v[i].oldest_enqueued_at = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        rc = rc < 0 ? rc : 0;
    }
    return rc;
}

static int
stats_cmp(const void *a, const void *b)
{
    return strcmp(((const struct zn_queue_stats *)a)->name,
                  ((const struct zn_queue_stats *)b)->name);
}

int
zn__sqlite_queue_stats(struct zn_store *st, struct zn_queue_stats **out,
                       size_t *n, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    struct zn_queue_stats *v = NULL;
    size_t nv = 0, cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    rc = zn__sqlite_settle(s, err);
    if (rc == 0)
        rc = stats_rows(s, s->stmt[ZN__SQLITE_QUEUE_COUNTS], true, &v, &nv,
                        &cap, err);
    if (rc == 0)
        rc = stats_pending(s, &v, &nv, &cap, err);
    if (rc == 0)
        rc = stats_oldest(s, v, nv, err);
    if (rc == 0)
        rc = stats_rows(s, s->stmt[ZN__SQLITE_PAUSED], false, &v, &nv, &cap,
                        err);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (nv)
        qsort(v, nv, sizeof(*v), stats_cmp);
    *out = v;
    *n = nv;
    return 0;
}

/* Attempts, counters, flush. */

static int
attempt_read(struct zn__sqlite *s, sqlite3_stmt *q, int64_t seq,
             struct zn_attempt *a, struct zn_err *err)
{
    struct row r = {s, q, "attempt of job", seq, err, 0};

    memset(a, 0, sizeof(*a));
    a->n = (int)row_int(&r, 0, 1, INT_MAX);
    a->worker = row_dup(&r, 1, true);
    a->started_at = row_int(&r, 2, INT64_MIN, INT64_MAX);
    a->ended_at = row_int(&r, 3, INT64_MIN, INT64_MAX);
    a->outcome = row_dup(&r, 4, false);
    a->errtype = row_dup(&r, 5, false);
    a->message = row_dup(&r, 6, false);
    a->cpu_ms = row_int(&r, 7, INT64_MIN, INT64_MAX);
    a->rss_kb = row_int(&r, 8, INT64_MIN, INT64_MAX);
    if (r.rc) {
        free(a->worker);
        free(a->outcome);
        free(a->errtype);
        free(a->message);
    }
    return r.rc;
}

int
zn__sqlite_attempts(struct zn_store *st, const char *jid,
                    struct zn_attempt **out, size_t *n, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_ATTEMPTS];
    struct zn_attempt *v = NULL;
    size_t nv = 0, cap = 0;
    int64_t seq;
    int rc;

    *out = NULL;
    *n = 0;
    rc = zn__sqlite_settle(s, err);
    if (rc == 0)
        rc = zn__sqlite_seq_of(s, jid, &seq, err);
    if (rc < 0)
        return rc;
    /* Errors are negative, so zn__sqlite_seq_of has set seq. */
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage) */
    sqlite3_bind_int64(q, 1, seq);
    for (;;) {
        rc = zn__sqlite_step(s, q, "read from", err);
        if (rc != SQLITE_ROW)
            break;
        if (nv == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct zn_attempt *grown = realloc(v, ncap * sizeof(*grown));

            if (!grown) {
                rc = zn__sqlite_nomem(s, "read from", err);
                break;
            }
            v = grown;
            cap = ncap;
        }
        rc = attempt_read(s, q, seq, &v[nv], err);
        if (rc < 0)
            break;
        nv++;
    }
    sqlite3_reset(q);
    if (rc < 0) {
        zn_attempts_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int
zn__sqlite_counters(struct zn_store *st, struct zn_store_counters *out,
                    struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_COUNTERS];
    int64_t pending[ZN__SQLITE_NCOUNTER] = {0};
    const char *name;
    int64_t v;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = zn__sqlite_settle(s, err);
    if (rc < 0)
        return rc;
    for (;;) {
        rc = zn__sqlite_step(s, q, "read from", err);
        if (rc != SQLITE_ROW)
            break;
        name = (const char *)sqlite3_column_text(q, 0);
        v = sqlite3_column_int64(q, 1);
        if (!name)
            continue;
        if (strcmp(name, "pushed") == 0)
            out->pushed = v;
        else if (strcmp(name, "processed") == 0)
            out->processed = v;
        else if (strcmp(name, "failed") == 0)
            out->failed = v;
    }
    sqlite3_reset(q);
    if (rc < 0)
        return rc;
    /* Plus what is not written yet: a read costs no write. */
    zn__sqlite_pending_counters(s, pending);
    out->pushed += pending[ZN__SQLITE_PUSHED];
    out->processed += pending[ZN__SQLITE_PROCESSED];
    out->failed += pending[ZN__SQLITE_FAILED];
    return 0;
}

/* Appends the plan lines of the statement behind op to a malloc'd text. */
static int
explain_stmt(struct zn__sqlite *s, sqlite3_stmt *hot, char **out,
             struct zn_err *err)
{
    struct sql b = {{0}, 0};
    sqlite3_stmt *q;
    size_t len = 0;
    char *text = NULL;
    int rc;

    sql_add(&b, "EXPLAIN QUERY PLAN ");
    sql_add(&b, sqlite3_sql(hot));
    rc = prepare_once(s, &b, "explain a query of", &q, err);
    if (rc < 0)
        return rc;
    for (;;) {
        const char *d;
        char *grown;

        rc = zn__sqlite_step(s, q, "explain a query of", err);
        if (rc != SQLITE_ROW)
            break;
        d = (const char *)sqlite3_column_text(q, 3);
        d = d ? d : "";
        grown = realloc(text, len + strlen(d) + 2);
        if (!grown) {
            rc = zn__sqlite_nomem(s, "explain a query of", err);
            break;
        }
        text = grown;
        memcpy(text + len, d, strlen(d));
        len += strlen(d);
        text[len++] = '\n';
        text[len] = '\0';
    }
    sqlite3_finalize(q);
    if (rc < 0) {
        free(text);
        return rc;
    }
    *out = text ? text : strdup("");
    return *out ? 0 : zn__sqlite_nomem(s, "explain a query of", err);
}

int
zn_store_sqlite_explain(struct zn_store *st, const char *op, char **out,
                        struct zn_err *err)
{
    static const struct {
        const char *op;
        enum zn__sqlite_stmt id;
    } ops[] = {
        {"fetch", ZN__SQLITE_FETCH},     {"take", ZN__SQLITE_TAKE},
        {"fetch_after", ZN__SQLITE_FETCH_AFTER},
        {"fetch_below", ZN__SQLITE_FETCH_BELOW},
        {"promote", ZN__SQLITE_DUE},     {"expired", ZN__SQLITE_EXPIRED},
        {"next_due", ZN__SQLITE_NEXT_DUE}, {"get", ZN__SQLITE_GET},
        {"finish", ZN__SQLITE_WORKING},  {"extend", ZN__SQLITE_EXTEND},
        {"unique", ZN__SQLITE_UNIQUE},   {"oldest", ZN__SQLITE_OLDEST},
    };
    int rc;

    *out = NULL;
    if (!st || st->ops != &zn__sqlite_ops)
        return zn_err_set(err, ZN_EINVAL, "cannot explain: not a sqlite "
                          "store");
    rc = zn__sqlite_ahead_join(zn__sqlite_of(st), err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < ZN_ARRAY_LEN(ops); i++)
        if (strcmp(ops[i].op, op) == 0)
            return explain_stmt(zn__sqlite_of(st),
                                zn__sqlite_of(st)->stmt[ops[i].id], out,
                                err);
    return zn_err_set(err, ZN_EINVAL, "cannot explain '%s': not a hot "
                      "operation", op);
}
