/*
 * sqlite.c - the embedded store: every job, attempt record, queue flag and
 * counter in one SQLite database in WAL mode, behind struct zn_store_ops.
 *
 * Data: one row per job in "jobs", keyed by seq (INTEGER PRIMARY KEY: a
 * new job's seq is above every seq in the table; a seq can come back only
 * after its job, attempts and tags were all deleted). Tags live twice: as
 * JSON text in jobs.tags, read back with the row, and one row each in
 * job_tags, for search. Attempts are keyed by (job seq, attempt number).
 *
 * Partial indexes make every hot query an index search whatever the table
 * holds (a million waiting jobs cost a fetch a few more B-tree levels).
 * Each one holds the jobs of one state, so a state change touches few of
 * them: a fetch moves an entry from jobs_ready to jobs_lease, nothing
 * more (a job fetched and ACKed in one batch goes straight to jobs_done).
 * A push writes three pages: the row, the jid index, jobs_ready.
 *   jobs_ready   (queue, priority DESC, enqueued_at)        fetch (FIFO by
 *                WHERE enqueued                             enqueue time);
 *                                                           oldest waiting
 *   jobs_due     (next_at) WHERE scheduled or retry         promote
 *   jobs_lease   (lease_until) WHERE working                expired; the
 *                                                           jobs of a worker
 *   jobs_unique  (unique_key, pushed_at) WHERE unique_for   push
 *   jobs_dead, jobs_done (updated_at) WHERE dead, done      pruning by age
 * There is no index by (queue, state): every state change would pay for
 * it. The number of jobs by queue and state is kept instead, in table
 * queue_counts, written at most once a second (sqlite_count.c).
 * The hot statements name their index with INDEXED BY. SQLite documents
 * that clause for exactly this: preparing fails loudly if a schema change
 * makes the index unusable, instead of silently planning a scan.
 *
 * A fetch reads the next ready jobs of a queue through jobs_ready, many
 * at a time, and hands them out from memory; in the caller's transaction
 * their leases and ACKs are written in batches (sqlite_ready.c), so a job
 * fetched and ACKed between two commits costs one update of its row and
 * one attempt row, written by the reader ahead's thread while the loop
 * goes on handing out jobs.
 *
 * Invariants: state is one of enum zn_job_state; worker is set exactly
 * while a job is working; every attempt a fetch starts has its row once
 * settled (sqlite_ready.c);
 * queue_counts plus the changes pending in memory equal the jobs table.
 * The leases held in memory (sqlite_ready.c) are written before any op
 * but push, fetch and finish reads or writes a row, and before a commit;
 * the deferred pushes (sqlite_push.c) are inserted before that, and
 * before a fetch or a push that inserts.
 *
 * This file holds open and close, transactions and the job lifecycle
 * (fetch, finish, promote...), the hot path; pushes and the journal's
 * replay are in sqlite_push.c. Reading rows back
 * (treated as input: a bad value gives ZN_EIO) and the filtered and
 * reporting queries are in sqlite_query.c, the counts in sqlite_count.c,
 * the schema in sqlite_schema.c, the push journal in sqlite_journal.c,
 * the fetches served from memory in sqlite_ready.c; sqlite_int.h is what
 * they share.
 *
 * Each write op is atomic on its own: it runs in its own transaction in
 * autocommit mode, or in a savepoint inside the caller's transaction (a
 * push of one job without tags, one INSERT, needs none there).
 * Inside a transaction a fetch, a first ACK and a single push without
 * unique_for only change memory (and the push journal);
 * zn__sqlite_settle writes the held jobs in one savepoint, and when that
 * fails the transaction fails.
 * The hot statements are prepared once at open and reused (the inserts
 * of several jobs when first used, sqlite_push.c).
 *
 * Non-goals: sharing one handle between threads (open one per thread);
 * the reader ahead only borrows the connection while its owner waits for
 * it or serves from memory (sqlite_ready.c).
 * list pages in seq order: a filter that few jobs match, with no index of
 * its own, reads the table until the page is full (the dashboard's cost,
 * not the event loop's).
 */
#include "compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "common/log.h"
#include "store/sqlite_int.h"

static const char *const stmt_sql[ZN__SQLITE_NSTMT] = {
    [ZN__SQLITE_BEGIN] = "BEGIN IMMEDIATE",
    [ZN__SQLITE_COMMIT] = "COMMIT",
    [ZN__SQLITE_ROLLBACK] = "ROLLBACK",
    [ZN__SQLITE_SAVEPOINT] = "SAVEPOINT zn_op",
    [ZN__SQLITE_RELEASE] = "RELEASE zn_op",
    [ZN__SQLITE_ROLLBACK_TO] = "ROLLBACK TO zn_op",
    [ZN__SQLITE_UNIQUE] = "SELECT jid FROM jobs INDEXED BY jobs_unique"
                          " WHERE unique_key = ?1 AND pushed_at > ?2"
                          " ORDER BY pushed_at DESC LIMIT 1",
    [ZN__SQLITE_INSERT] = ZN__SQLITE_INSERT_INTO ZN__SQLITE_INSERT_ROW,
    [ZN__SQLITE_TAG] =
        "INSERT OR IGNORE INTO job_tags (seq, tag) VALUES (?1, ?2)",
    [ZN__SQLITE_COUNTER_ADD] =
        "INSERT INTO counters (name, value) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE"
        " SET value = value + excluded.value",
    [ZN__SQLITE_GET] =
        "SELECT " ZN__SQLITE_JOB_COLS " FROM jobs WHERE jid = ?1",
    [ZN__SQLITE_SEQ_OF] = "SELECT seq FROM jobs WHERE jid = ?1",
    [ZN__SQLITE_SEQ_MAX] = "SELECT max(seq) FROM jobs",
    [ZN__SQLITE_FETCH] =
        "SELECT " ZN__SQLITE_JOB_COLS " FROM jobs INDEXED BY jobs_ready"
        " WHERE state = 1 AND queue = ?1"
        " ORDER BY priority DESC, enqueued_at, seq LIMIT ?2",
    /* The ready jobs after one (?2, ?3, ?4): of its priority, then below. */
    [ZN__SQLITE_FETCH_AFTER] =
        "SELECT " ZN__SQLITE_JOB_COLS " FROM jobs INDEXED BY jobs_ready"
        " WHERE state = 1 AND queue = ?1 AND priority = ?2"
        " AND (enqueued_at, seq) > (?3, ?4)"
        " ORDER BY enqueued_at, seq LIMIT ?5",
    [ZN__SQLITE_FETCH_BELOW] =
        "SELECT " ZN__SQLITE_JOB_COLS " FROM jobs INDEXED BY jobs_ready"
        " WHERE state = 1 AND queue = ?1 AND priority < ?2"
        " ORDER BY priority DESC, enqueued_at, seq LIMIT ?3",
    [ZN__SQLITE_TAKE] =
        "UPDATE jobs SET state = 2, lease_until = ?2, attempts = ?3,"
        " worker = ?4, updated_at = ?5 WHERE seq = ?1 AND state = 1",
    [ZN__SQLITE_TAKE_DONE] =
        "UPDATE jobs SET state = 5, next_at = 0, lease_until = 0,"
        " attempts = ?3, worker = NULL, updated_at = ?2"
        " WHERE seq = ?1 AND state = 1",
    [ZN__SQLITE_ATTEMPT_ADD] =
        "INSERT OR REPLACE INTO attempts (seq, n, worker,"
        " started_at, ended_at, outcome, cpu_ms, rss_kb)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ZN__SQLITE_WORKING] =
        "SELECT seq, attempts, queue, worker FROM jobs"
        " WHERE jid = ?1 AND state = 2",
    [ZN__SQLITE_FINISH_OK] =
        "UPDATE jobs SET state = 5, next_at = 0,"
        " lease_until = 0, worker = NULL, updated_at = ?2"
        " WHERE seq = ?1",
    [ZN__SQLITE_FINISH_FAIL] =
        "UPDATE jobs SET state = ?3, next_at = ?4,"
        " lease_until = 0, worker = NULL, updated_at = ?2,"
        " failures = failures + 1, errtype = ?5,"
        " message = ?6, backtrace = ?7, failed_at = ?2,"
        " quarantined = ?8"
        " WHERE seq = ?1",
    [ZN__SQLITE_ATTEMPT_END] =
        "UPDATE attempts SET ended_at = ?3, outcome = ?4,"
        " errtype = ?5, message = ?6, cpu_ms = ?7,"
        " rss_kb = ?8 WHERE seq = ?1 AND n = ?2",
    [ZN__SQLITE_EXTEND] = "UPDATE jobs SET lease_until = ?2"
                          " WHERE jid = ?1 AND state = 2",
    [ZN__SQLITE_EXPIRED] =
        "SELECT " ZN__SQLITE_JOB_COLS " FROM jobs INDEXED BY jobs_lease"
        " WHERE state = 2 AND lease_until <= ?1"
        " ORDER BY lease_until LIMIT ?2",
    [ZN__SQLITE_DUE] =
        "SELECT seq, queue, state FROM jobs INDEXED BY jobs_due"
        " WHERE state IN (0, 3) AND next_at <= ?1"
        " ORDER BY next_at LIMIT 1",
    [ZN__SQLITE_META_SET] =
        "INSERT INTO meta (name, value) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    [ZN__SQLITE_PROMOTE] =
        "UPDATE jobs SET state = 1, enqueued_at = ?2, next_at = 0,"
        " updated_at = ?2 WHERE seq = ?1",
    [ZN__SQLITE_NEXT_DUE] = "SELECT next_at FROM jobs INDEXED BY jobs_due"
                            " WHERE state IN (0, 3) ORDER BY next_at LIMIT 1",
    [ZN__SQLITE_ATTEMPTS] = "SELECT n, worker, started_at, ended_at, outcome,"
                            " errtype, message, cpu_ms, rss_kb FROM attempts"
                            " WHERE seq = ?1 ORDER BY n",
    [ZN__SQLITE_COUNTERS] = "SELECT name, value FROM counters",
    [ZN__SQLITE_SET_PAUSED] =
        "INSERT INTO queues (name, paused) VALUES (?1, ?2)"
        " ON CONFLICT (name) DO UPDATE"
        " SET paused = excluded.paused",
    [ZN__SQLITE_PAUSED] =
        "SELECT name FROM queues WHERE paused = 1 ORDER BY name",
    [ZN__SQLITE_DATA_VERSION] = "PRAGMA data_version",
    [ZN__SQLITE_QUEUE_COUNTS] =
        "SELECT queue, state, n FROM queue_counts WHERE n <> 0"
        " ORDER BY queue, state",
    [ZN__SQLITE_QUEUE_COUNT_ADD] =
        "INSERT INTO queue_counts (queue, state, n) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
    /* One seek per priority: jobs_ready orders each by enqueued_at. */
    [ZN__SQLITE_OLDEST] =
        "SELECT min((SELECT enqueued_at FROM jobs INDEXED BY jobs_ready"
        " WHERE state = 1 AND queue = ?1 AND priority = p.column1"
        " ORDER BY enqueued_at LIMIT 1))"
        " FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS p",
};

int
zn__sqlite_err(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    int code = sqlite3_errcode(s->db) == SQLITE_NOMEM ? ZN_ENOMEM : ZN_EIO;

    return zn_err_set(err, code, "cannot %s '%s': %s", what, s->path,
                      sqlite3_errmsg(s->db));
}

int
zn__sqlite_nomem(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    return zn_err_set(err, ZN_ENOMEM, "cannot %s '%s': out of memory", what,
                      s->path);
}

/* The message is taken before the reset, which may replace it. */
int
zn__sqlite_step(struct zn__sqlite *s, sqlite3_stmt *st, const char *what,
                struct zn_err *err)
{
    int rc;

    /* Only the reader ahead uses a connection it has borrowed. */
    ZN_ASSERT(!zn__sqlite_ahead_busy(s) ||
              zn__sqlite_ahead_is_self(s));
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc;
    rc = zn__sqlite_err(s, what, err);
    sqlite3_reset(st);
    return rc;
}

int
zn__sqlite_run(struct zn__sqlite *s, sqlite3_stmt *st, const char *what,
               struct zn_err *err)
{
    int rc = zn__sqlite_step(s, st, what, err);

    if (rc < 0)
        return rc;
    sqlite3_reset(st);
    return 0;
}

/*
 * Binds of integers and of text passed as SQLITE_STATIC copy nothing, so
 * they fail only on programmer errors (a wrong index) that the tests
 * catch; their results are not checked.
 */
static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int64_t
limit_of(size_t n)
{
    return n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

int
zn__sqlite_writable(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    if (!s->readonly)
        return 0;
    return zn_err_set(err, ZN_ESTATE, "cannot %s '%s': the store is open "
                      "read-only", what, s->path);
}

static void
paused_drop(struct zn__sqlite *s)
{
    for (size_t i = 0; i < s->npaused; i++)
        free(s->paused[i]);
    free(s->paused);
    s->paused = NULL;
    s->npaused = 0;
    s->paused_ok = false;
}

/* Undoes what tx_open began; errors go to the log: there is no caller. */
static void
tx_undo(struct zn__sqlite *s, enum zn__sqlite_tx tx)
{
    static const char what[] = "roll back";
    struct zn_err e;
    bool gone;
    int rc = 0;

    s->paused_ok = false;
    zn__sqlite_ready_drop(s);
    if (tx == ZN__SQLITE_TX_OWN)
        zn__sqlite_tally_abort(s);
    else
        zn__sqlite_tally_drop(s);
    /* Some errors (SQLITE_FULL, SQLITE_IOERR) roll back by themselves. */
    gone = tx == ZN__SQLITE_TX_OWN || sqlite3_get_autocommit(s->db);
    if (gone) {
        if (s->journal)
            zn__sqlite_journal_rolled_back(s->journal);
        zn__sqlite_held_discard(s);
        zn__sqlite_deferred_discard(s);
    }
    if (sqlite3_get_autocommit(s->db)) {
        zn__sqlite_tally_abort(s);
        return;
    }
    if (tx == ZN__SQLITE_TX_OWN) {
        rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_ROLLBACK], what, &e);
    } else if (tx == ZN__SQLITE_TX_NESTED) {
        rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_ROLLBACK_TO], what, &e);
        if (rc == 0)
            rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_RELEASE], what, &e);
    }
    if (rc < 0)
        ZN_LOG(ZN_ERROR, "store.rollback_failed", ZN_STR("error", e.msg));
}

int
zn__sqlite_tx_open(struct zn__sqlite *s, enum zn__sqlite_tx *tx,
                   const char *what, struct zn_err *err)
{
    bool own = sqlite3_get_autocommit(s->db);
    int rc;

    *tx = own ? ZN__SQLITE_TX_OWN : ZN__SQLITE_TX_NESTED;
    if (own)
        s->version_read = false; /* another connection may have committed */
    rc = zn__sqlite_run(s, s->stmt[own ? ZN__SQLITE_BEGIN
                                       : ZN__SQLITE_SAVEPOINT], what, err);
    if (rc == 0)
        zn__sqlite_tally_begin(s, own);
    return rc;
}

int
zn__sqlite_tx_open_one(struct zn__sqlite *s, enum zn__sqlite_tx *tx,
                       const char *what, struct zn_err *err)
{
    int rc;

    if (sqlite3_get_autocommit(s->db))
        return zn__sqlite_tx_open(s, tx, what, err);
    rc = zn__sqlite_tally_room(s, what, err);
    if (rc < 0)
        return rc;
    *tx = ZN__SQLITE_TX_STMT;
    zn__sqlite_tally_begin(s, false);
    return 0;
}

int
zn__sqlite_tx_close(struct zn__sqlite *s, enum zn__sqlite_tx tx, int rc,
                    const char *what, struct zn_err *err)
{
    if (rc == 0 && tx == ZN__SQLITE_TX_OWN) {
        rc = zn__sqlite_commit(s, false, what, err);
    } else if (rc == 0) {
        if (tx == ZN__SQLITE_TX_NESTED)
            rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_RELEASE], what, err);
        if (rc == 0)
            zn__sqlite_tally_keep(s);
    }
    if (rc < 0)
        tx_undo(s, tx);
    return rc;
}


/* Transactions. */

static int
sq_begin(struct zn_store *st, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    int rc = zn__sqlite_ahead_join(s, err);

    if (rc < 0)
        return rc;
    if (!sqlite3_get_autocommit(s->db))
        return zn_err_set(err, ZN_ESTATE, "cannot begin on '%s': a "
                          "transaction is already open", s->path);
    zn__sqlite_tally_abort(s);
    s->version_read = false;
    rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_BEGIN],
                        "begin a transaction on", err);
    /* Pushes answered before a failed commit come first. */
    if (rc == 0 && s->journal && zn__sqlite_journal_owed(s->journal)) {
        rc = zn__sqlite_replay(s, err);
        if (rc < 0)
            tx_undo(s, ZN__SQLITE_TX_OWN);
    }
    return rc;
}

/*
 * Makes the pushes of the open transaction durable in the journal; the
 * transaction stays open. Without a journal the caller commits instead.
 */
static int
sq_sync(struct zn_store *st, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);

    int rc;

    if (!s->journal)
        return zn_err_set(err, ZN_ESTATE, "cannot sync '%s': no journal",
                          s->path);
    rc = zn__sqlite_journal_write(s->journal, err);
    /* The caller commits instead, and that commit must sync. */
    if (rc < 0)
        s->sync_due = true;
    return rc;
}

static int
sq_idle(struct zn_store *st, struct zn_err *err)
{
    return zn__sqlite_deferred_insert(zn__sqlite_of(st), err);
}

static int
sq_commit(struct zn_store *st, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    int rc = zn__sqlite_ahead_join(s, err);

    if (rc < 0)
        return rc;
    if (sqlite3_get_autocommit(s->db))
        return zn_err_set(err, ZN_ESTATE, "cannot commit on '%s': no "
                          "transaction is open", s->path);
    rc = zn__sqlite_settle(s, err);
    return rc < 0 ? rc : zn__sqlite_commit(s, false, "commit to", err);
}

static void
sq_rollback(struct zn_store *st)
{
    struct zn__sqlite *s = zn__sqlite_of(st);

    /* Its error, if any, goes with the rest of the transaction. */
    zn__sqlite_ahead_join(s, NULL);
    tx_undo(s, ZN__SQLITE_TX_OWN);
}

/* Get. */

static int
sq_get(struct zn_store *st, const char *jid, struct zn_job **out,
       struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_GET];
    int rc;

    *out = NULL;
    rc = zn__sqlite_settle(s, err);
    if (rc < 0)
        return rc;
    bind_text(q, 1, jid);
    rc = zn__sqlite_step(s, q, "read from", err);
    if (rc == SQLITE_ROW)
        rc = zn__sqlite_row_job(s, q, out, err);
    else if (rc == SQLITE_DONE)
        rc = zn_err_set(err, ZN_ENOTFOUND, "no job '%s'", jid ? jid : "");
    sqlite3_reset(q);
    return rc;
}

/* The seq of a job, or ZN_ENOTFOUND. */
int
zn__sqlite_seq_of(struct zn__sqlite *s, const char *jid, int64_t *seq,
                  struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_SEQ_OF];
    int rc;

    bind_text(q, 1, jid);
    rc = zn__sqlite_step(s, q, "read from", err);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    if (rc == SQLITE_DONE)
        return zn_err_set(err, ZN_ENOTFOUND, "no job '%s'", jid ? jid : "");
    return rc < 0 ? rc : 0;
}

/* Fetch. */

static int
paused_load(struct zn__sqlite *s, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_PAUSED];
    const char *name;
    size_t cap = 0;
    int rc;

    paused_drop(s);
    for (;;) {
        rc = zn__sqlite_step(s, q, "read from", err);
        if (rc != SQLITE_ROW)
            break;
        if (s->npaused == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **grown = realloc(s->paused, ncap * sizeof(*grown));

            if (!grown) {
                rc = zn__sqlite_nomem(s, "read from", err);
                break;
            }
            s->paused = grown;
            cap = ncap;
        }
        name = (const char *)sqlite3_column_text(q, 0);
        s->paused[s->npaused] = strdup(name ? name : "");
        if (!s->paused[s->npaused]) {
            rc = zn__sqlite_nomem(s, "read from", err);
            break;
        }
        s->npaused++;
    }
    sqlite3_reset(q);
    if (rc < 0) {
        paused_drop(s);
        return rc;
    }
    s->paused_ok = true;
    return 0;
}

/*
 * Makes the paused cache current. data_version changes when another
 * connection commits, for instance `zenith pause` run on the file while
 * the server is up, so such a change is seen by the next fetch. None can
 * commit inside a transaction of ours (BEGIN IMMEDIATE holds the write
 * lock): once read there, it holds until the transaction ends.
 */
static int
paused_refresh(struct zn__sqlite *s, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_DATA_VERSION];
    int rc;

    if (s->version_read && s->paused_ok && !sqlite3_get_autocommit(s->db))
        return 0;
    rc = zn__sqlite_step(s, q, "read from", err);
    if (rc < 0)
        return rc;
    s->version_read = !sqlite3_get_autocommit(s->db);
    if (rc == SQLITE_ROW && sqlite3_column_int64(q, 0) != s->data_version) {
        s->data_version = sqlite3_column_int64(q, 0);
        s->paused_ok = false;
        zn__sqlite_ready_drop(s);
    }
    sqlite3_reset(q);
    return s->paused_ok ? 0 : paused_load(s, err);
}

static bool
paused_has(const struct zn__sqlite *s, const char *queue)
{
    for (size_t i = 0; i < s->npaused; i++)
        if (strcmp(s->paused[i], queue) == 0)
            return true;
    return false;
}

static int
sq_fetch(struct zn_store *st, const char *const *queues, size_t nq,
         const char *wid, int64_t now, struct zn_job **out,
         struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    /*
     * The reader ahead runs only inside a transaction, which it does not
     * end, and the paused cache stays valid until the transaction ends.
     */
    bool ahead = zn__sqlite_ahead_busy(s);
    bool own = !ahead && sqlite3_get_autocommit(s->db);
    struct zn_job *job = NULL;
    /* What tx_open sets when own (set here too for -O3's flow analysis). */
    enum zn__sqlite_tx tx = ZN__SQLITE_TX_OWN;
    int rc;

    *out = NULL;
    if (!wid)
        return zn_err_set(err, ZN_EINVAL, "cannot fetch: no worker id");
    rc = zn__sqlite_writable(s, "fetch from", err);
    /*
     * Outside a transaction the fetch is one of its own, its lease written
     * at once: read and written under the write lock, so no other
     * connection commits in between.
     */
    if (rc == 0 && own)
        rc = zn__sqlite_tx_open(s, &tx, "fetch from", err);
    if (rc)
        return rc;
    /* Nothing is handed out before the jobs pushed ahead of it. */
    rc = zn__sqlite_deferred_insert(s, err);
    if (rc == 0 && !ahead)
        rc = paused_refresh(s, err);
    for (size_t i = 0; i < nq && !job && rc == 0; i++)
        if (queues[i] && !paused_has(s, queues[i]))
            rc = zn__sqlite_ready_fetch(s, queues[i], wid, now, !own, &job,
                                        err);
    if (rc == 0 && own)
        rc = zn__sqlite_settle(s, err);
    if (own)
        rc = zn__sqlite_tx_close(s, tx, rc, "fetch from", err);
    if (rc < 0) {
        zn_job_free(job);
        return rc;
    }
    *out = job;
    return 0;
}

/* Finish, extend, expired. */

static bool
outcome_valid(const struct zn_store_outcome *o)
{
    return o->next == ZN_STATE_DONE || o->next == ZN_STATE_ENQUEUED ||
           o->next == ZN_STATE_RETRY || o->next == ZN_STATE_DEAD;
}

/* The seq, running attempt and queue (ZN_QUEUE_NAME_MAX + 1 bytes) of a
 * working job. */
static int
working(struct zn__sqlite *s, const char *jid, const char *worker,
        int64_t *seq, int *n, char *queue, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_WORKING];
    const unsigned char *name;
    int rc;

    sqlite3_bind_text(q, 1, jid, -1, SQLITE_STATIC);
    rc = zn__sqlite_step(s, q, "finish a job in", err);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(q, 0);
        *n = sqlite3_column_int(q, 1);
        name = sqlite3_column_text(q, 2);
        if (name && sqlite3_column_bytes(q, 2) <= ZN_QUEUE_NAME_MAX)
            memcpy(queue, name, (size_t)sqlite3_column_bytes(q, 2) + 1);
        else
            rc = zn_err_set(err, ZN_EIO, "cannot read job %lld from '%s': "
                            "column 'queue' is not a queue name",
                            (long long)*seq, s->path);
        name = sqlite3_column_text(q, 3);
        if (rc >= 0 && worker &&
            (!name || strcmp((const char *)name, worker) != 0))
            rc = zn__sqlite_lease_elsewhere(jid, err);
    } else if (rc == SQLITE_DONE) {
        rc = zn_err_set(err, ZN_ENOTFOUND, "cannot finish job '%s': no such "
                        "working job", jid);
    }
    sqlite3_reset(q);
    return rc < 0 ? rc : 0;
}

/* Moves the working job seq on to o->next. */
static int
finish_job(struct zn__sqlite *s, int64_t seq, int64_t now,
           const struct zn_store_outcome *o, struct zn_err *err)
{
    bool ok = o->next == ZN_STATE_DONE;
    sqlite3_stmt *q =
        s->stmt[ok ? ZN__SQLITE_FINISH_OK : ZN__SQLITE_FINISH_FAIL];

    sqlite3_bind_int64(q, 1, seq);
    sqlite3_bind_int64(q, 2, now);
    if (!ok) {
        sqlite3_bind_int(q, 3, (int)o->next);
        sqlite3_bind_int64(q, 4, o->next == ZN_STATE_RETRY ? o->next_at : 0);
        bind_text(q, 5, o->errtype);
        bind_text(q, 6, o->message);
        bind_text(q, 7, o->backtrace);
        sqlite3_bind_int(q, 8, o->quarantined);
    }
    return zn__sqlite_run(s, q, "finish a job in", err);
}

static int
attempt_end(struct zn__sqlite *s, int64_t seq, int n, int64_t now,
            const struct zn_store_outcome *o, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_ATTEMPT_END];
    const char *outcome = o->outcome;

    if (!outcome)
        outcome = o->next == ZN_STATE_DONE ? "ok" : "failed";
    sqlite3_bind_int64(q, 1, seq);
    sqlite3_bind_int(q, 2, n);
    sqlite3_bind_int64(q, 3, now);
    sqlite3_bind_text(q, 4, outcome, -1, SQLITE_STATIC);
    bind_text(q, 5, o->errtype);
    bind_text(q, 6, o->message);
    sqlite3_bind_int64(q, 7, o->cpu_ms);
    sqlite3_bind_int64(q, 8, o->rss_kb);
    return zn__sqlite_run(s, q, "finish a job in", err);
}

static int
sq_finish(struct zn_store *st, const char *jid, int64_t now,
          const struct zn_store_outcome *o, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    char queue[ZN_QUEUE_NAME_MAX + 1];
    int64_t seq = 0;
    int n = 0;
    bool acked = false;
    enum zn__sqlite_tx tx;
    int rc;

    if (!jid || !outcome_valid(o))
        return zn_err_set(err, ZN_EINVAL, "cannot finish job '%s': next "
                          "state '%s' does not end an attempt",
                          jid ? jid : "", zn_job_state_name(o->next));
    rc = zn__sqlite_writable(s, "finish a job in", err);
    /*
     * A first ACK of a held job ends its attempt in memory; any other
     * finish of a held job settles first, so working() finds its row. A
     * job that is not held does not depend on the held ones.
     */
    if (rc == 0)
        rc = zn__sqlite_held_ack(s, jid, now, o, &acked, err);
    if (rc == 0 && acked)
        return 0;
    if (rc == 0)
        rc = zn__sqlite_tx_open(s, &tx, "finish a job in", err);
    if (rc)
        return rc;
    rc = working(s, jid, o->worker, &seq, &n, queue, err);
    if (rc == 0)
        rc = finish_job(s, seq, now, o, err);
    if (rc == 0)
        rc = attempt_end(s, seq, n, now, o, err);
    if (rc == 0)
        rc = zn__sqlite_tally(s, queue, ZN_STATE_WORKING, -1,
                              "finish a job in", err);
    if (rc == 0)
        rc = zn__sqlite_tally(s, queue, (int)o->next, 1, "finish a job in",
                              err);
    s->op_counter[o->next == ZN_STATE_DONE ? ZN__SQLITE_PROCESSED
                                           : ZN__SQLITE_FAILED]++;
    rc = zn__sqlite_tx_close(s, tx, rc, "finish a job in", err);
    /* Ready again, in its old place: it comes before buffered jobs. */
    if (rc == 0 && o->next == ZN_STATE_ENQUEUED)
        zn__sqlite_ready_drop(s);
    return rc;
}

static int
sq_extend(struct zn_store *st, const char *jid, int64_t lease_until,
          struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_EXTEND];
    int rc = zn__sqlite_write_begin(s, "extend a lease in", err);

    if (rc < 0)
        return rc;
    bind_text(q, 1, jid);
    sqlite3_bind_int64(q, 2, lease_until);
    rc = zn__sqlite_run(s, q, "extend a lease in", err);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = zn_err_set(err, ZN_ENOTFOUND, "cannot extend job '%s': no such "
                        "working job", jid ? jid : "");
    return rc;
}

static int
sq_expired(struct zn_store *st, int64_t now, size_t limit,
           struct zn_store_list *out, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_EXPIRED];
    bool more;
    int rc = zn__sqlite_settle(s, err);

    memset(out, 0, sizeof(*out));
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_int64(q, 2, limit_of(limit));
    return zn__sqlite_read_jobs(s, q, limit, out, &more, err);
}

/* Promote, next_due. */

/* Adds a copy of name to the list unless it is there already. */
static int
name_add(char ***names, size_t *n, const char *name)
{
    char **grown;

    for (size_t i = 0; i < *n; i++)
        if (strcmp((*names)[i], name) == 0)
            return 0;
    grown = realloc(*names, (*n + 1) * sizeof(*grown));
    if (!grown)
        return ZN_ENOMEM;
    *names = grown;
    grown[*n] = strdup(name);
    if (!grown[*n])
        return ZN_ENOMEM;
    (*n)++;
    return 0;
}

/* Moves the first due job to ENQUEUED; queue gets its queue, "" if none. */
static int
promote_one(struct zn__sqlite *s, int64_t now, char *queue,
            struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_DUE];
    const unsigned char *name;
    int64_t seq = 0;
    int rc, state = 0;

    queue[0] = '\0';
    sqlite3_bind_int64(q, 1, now);
    rc = zn__sqlite_step(s, q, "promote jobs in", err);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(q, 0);
        name = sqlite3_column_text(q, 1);
        state = sqlite3_column_int(q, 2);
        if (name && sqlite3_column_bytes(q, 1) <= ZN_QUEUE_NAME_MAX)
            memcpy(queue, name, (size_t)sqlite3_column_bytes(q, 1) + 1);
        else
            rc = zn_err_set(err, ZN_EIO, "cannot read job %lld from '%s': "
                            "column 'queue' is not a queue name",
                            (long long)seq, s->path);
    }
    sqlite3_reset(q);
    if (rc != SQLITE_ROW)
        return rc < 0 ? rc : 0;
    q = s->stmt[ZN__SQLITE_PROMOTE];
    sqlite3_bind_int64(q, 1, seq);
    sqlite3_bind_int64(q, 2, now);
    rc = zn__sqlite_run(s, q, "promote jobs in", err);
    if (rc == 0)
        rc = zn__sqlite_tally(s, queue, state, -1, "promote jobs in", err);
    if (rc == 0)
        rc = zn__sqlite_tally(s, queue, ZN_STATE_ENQUEUED, 1,
                              "promote jobs in", err);
    return rc;
}

/*
 * One due job at a time, each found by a fresh index search: the rows
 * change under the search, and the count by state needs each job's old
 * state, which UPDATE ... RETURNING cannot give.
 */
static int
promote_rows(struct zn__sqlite *s, int64_t now, size_t limit, size_t *moved,
             char ***queues, size_t *nqueues, struct zn_err *err)
{
    char queue[ZN_QUEUE_NAME_MAX + 1];
    int rc = 0;

    while (*moved < limit && rc == 0) {
        rc = promote_one(s, now, queue, err);
        if (rc < 0 || !queue[0])
            break;
        (*moved)++;
        if (queues && name_add(queues, nqueues, queue) < 0)
            rc = zn__sqlite_nomem(s, "promote jobs in", err);
    }
    return rc;
}

static int
sq_promote(struct zn_store *st, int64_t now, size_t limit, size_t *moved,
           char ***queues, size_t *nqueues, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    size_t had = queues ? *nqueues : 0;
    enum zn__sqlite_tx tx;
    int rc;

    *moved = 0;
    rc = zn__sqlite_write_begin(s, "promote jobs in", err);
    if (rc == 0)
        rc = zn__sqlite_tx_open(s, &tx, "promote jobs in", err);
    if (rc)
        return rc;
    rc = promote_rows(s, now, limit, moved, queues, nqueues, err);
    rc = zn__sqlite_tx_close(s, tx, rc, "promote jobs in", err);
    if (rc == 0 && *moved)
        zn__sqlite_ready_drop(s);
    if (rc < 0) {
        /* Nothing moved after all: take back the names this call added. */
        *moved = 0;
        for (; queues && *nqueues > had; (*nqueues)--)
            free((*queues)[*nqueues - 1]);
    }
    return rc;
}

static int
sq_next_due(struct zn_store *st, int64_t *at, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_NEXT_DUE];
    int rc = zn__sqlite_settle(s, err);

    if (rc == 0)
        rc = zn__sqlite_step(s, q, "read from", err);
    *at = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    return rc < 0 ? rc : 0;
}

/* Queues. */

static int
sq_set_paused(struct zn_store *st, const char *queue, bool paused,
              struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_SET_PAUSED];
    int rc;

    if (!queue || !zn_job_queue_name_valid(queue, strlen(queue)))
        return zn_err_set(err, ZN_EINVAL, "queue: '%s' does not match "
                          "[A-Za-z0-9_.:-]{1,100}", queue ? queue : "");
    rc = zn__sqlite_write_begin(s, "pause a queue in", err);
    if (rc < 0)
        return rc;
    s->sync_due = true; /* an administrative change: see lazy_sync */
    sqlite3_bind_text(q, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, paused);
    rc = zn__sqlite_run(s, q, "pause a queue in", err);
    s->paused_ok = false;
    return rc;
}

static int
sq_flush(struct zn_store *st, struct zn_err *err)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    enum zn__sqlite_tx tx;
    int rc;

    rc = zn__sqlite_write_begin(s, "flush", err);
    if (rc == 0)
        rc = zn__sqlite_tx_open(s, &tx, "flush", err);
    if (rc)
        return rc;
    s->sync_due = true; /* an administrative change: see lazy_sync */
    /*
     * No WHERE and no triggers: SQLite truncates each table instead of
     * deleting row by row. The seqs of new jobs start again from 1; no
     * row keyed by an old one is left.
     */
    if (sqlite3_exec(s->db, "DELETE FROM attempts; DELETE FROM job_tags;"
                     " DELETE FROM jobs; DELETE FROM queues;"
                     " DELETE FROM queue_counts; DELETE FROM counters;",
                     NULL, NULL, NULL))
        rc = zn__sqlite_err(s, "flush", err);
    /* The pending counts went with the rows they counted. */
    if (rc == 0)
        zn__sqlite_tally_void(s);
    paused_drop(s);
    zn__sqlite_ready_drop(s);
    return zn__sqlite_tx_close(s, tx, rc, "flush", err);
}

/* Open, migrate, close. */

static void
sq_close(struct zn_store *st)
{
    struct zn__sqlite *s = zn__sqlite_of(st);

    zn__sqlite_ahead_stop(s);
    zn__sqlite_ckpt_stop(s);
    /* What the journal owes lands before the counts are called exact. */
    if (s->journal && !sqlite3_get_autocommit(s->db))
        tx_undo(s, ZN__SQLITE_TX_OWN);
    /* Deferred pushes live in a transaction: its undo discarded them. */
    ZN_ASSERT(s->ndeferred == 0);
    if (s->journal && zn__sqlite_journal_owed(s->journal)) {
        struct zn_err e = {0};

        if (zn__sqlite_replay(s, &e) < 0)
            ZN_LOG(ZN_ERROR, "store.journal_not_replayed",
                   ZN_STR("path", s->path), ZN_STR("error", e.msg));
    }
    if (s->counting)
        zn__sqlite_counts_close(s);
    for (int i = 0; i < ZN__SQLITE_NSTMT; i++)
        sqlite3_finalize(s->stmt[i]);
    for (int i = 0; i <= ZN__SQLITE_GROUP_MAX; i++) {
        sqlite3_finalize(s->group[0][i]);
        sqlite3_finalize(s->group[1][i]);
    }
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        ZN_LOG(ZN_ERROR, "store.close_failed", ZN_STR("path", s->path),
               ZN_STR("error", sqlite3_errmsg(s->db)));
    zn__sqlite_journal_close(s->journal);
    paused_drop(s);
    zn__sqlite_ready_close(s);
    free(s->tally);
    free(s->pend);
    free(s->path);
    free(s);
}

const struct zn_store_ops zn__sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .sync = sq_sync,
    .idle = sq_idle,
    .push = zn__sqlite_push,
    .get = sq_get,
    .fetch = sq_fetch,
    .finish = sq_finish,
    .extend = sq_extend,
    .expired = sq_expired,
    .promote = sq_promote,
    .next_due = sq_next_due,
    .list = zn__sqlite_list,
    .count = zn__sqlite_count,
    .retry_dead = zn__sqlite_retry_dead,
    .remove = zn__sqlite_remove,
    .set_paused = sq_set_paused,
    .queue_stats = zn__sqlite_queue_stats,
    .attempts = zn__sqlite_attempts,
    .counters = zn__sqlite_counters,
    .flush = sq_flush,
};

static int
stmts_prepare(struct zn__sqlite *s, struct zn_err *err)
{
    for (int i = 0; i < ZN__SQLITE_NSTMT; i++) {
        /* A reader's transactions must not take the write lock. */
        const char *sql =
            i == ZN__SQLITE_BEGIN && s->readonly ? "BEGIN" : stmt_sql[i];

        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &s->stmt[i], NULL))
            return zn__sqlite_err(s, "prepare statements for", err);
    }
    return 0;
}

/*
 * Opens the journal of a writer on a file, and inserts what it owes. The
 * database's journal id is made once, at random: a journal beside another
 * database (a restored or a new file) has none of its records.
 */
static int
journal_open(struct zn__sqlite *s, enum zn_durability durability,
             struct zn_err *err)
{
    int64_t epoch, id;
    int rc = zn__sqlite_meta_get(s, "journal_id", &id, err);

    if (rc == 0 && id == 0) {
        if (getrandom(&id, sizeof(id), 0) != sizeof(id))
            return zn_err_set(err, ZN_EIO, "cannot open '%s': no random "
                              "journal id: %s", s->path, strerror(errno));
        if (id == 0)
            id = 1;
        rc = zn__sqlite_meta_set(s, "journal_id", id, "open", err);
    }
    if (rc == 0)
        rc = zn__sqlite_meta_get(s, "journal_epoch", &epoch, err);
    if (rc == 0)
        rc = zn__sqlite_journal_open(s->path, (uint64_t)id, epoch,
                                     durability == ZN_DURABILITY_FULL,
                                     &s->journal, err);
    /* The journal holds the pushes; commits sync when due (see there). */
    if (rc == 0 && durability == ZN_DURABILITY_FULL) {
        if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL,
                         NULL))
            rc = zn__sqlite_err(s, "open", err);
        s->lazy_sync = rc == 0;
    }
    if (rc == 0)
        rc = zn__sqlite_replay(s, err);
    return rc == 0 ? zn__sqlite_journal_reset(s->journal, err) : rc;
}

int
zn_store_sqlite_open(const char *path, const struct zn_sqlite_opts *opts,
                     struct zn_store **out, struct zn_err *err)
{
    static const struct zn_sqlite_opts defaults;
    struct zn__sqlite *s;
    int rc;

    *out = NULL;
    if (!opts)
        opts = &defaults;
    s = calloc(1, sizeof(*s));
    if (!s)
        return zn_err_set(err, ZN_ENOMEM, "cannot open '%s': out of memory",
                          path);
    s->base.ops = &zn__sqlite_ops;
    s->readonly = opts->readonly;
    s->data_version = -1;
    s->path = strdup(path);
    if (!s->path)
        rc = zn_err_set(err, ZN_ENOMEM, "cannot open '%s': out of memory",
                        path);
    else
        rc = zn__sqlite_db_open(path, opts, &s->db, err);
    if (rc == 0)
        rc = stmts_prepare(s, err);
    if (rc == 0 && !opts->readonly) {
        rc = zn__sqlite_counts_open(s, err);
        s->counting = rc == 0;
    }
    if (rc == 0 && !opts->readonly && sqlite3_db_filename(s->db, NULL) &&
        *sqlite3_db_filename(s->db, NULL))
        rc = journal_open(s, opts->durability, err);
    if (rc == 0 && s->journal)
        rc = zn__sqlite_ckpt_start(s, opts->durability, err);
    if (rc == 0 && s->journal)
        rc = zn__sqlite_ahead_start(s, err);
    if (rc < 0) {
        sq_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
