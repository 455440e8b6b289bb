/*
 * sqlite_push.c - pushes into the SQLite store, and the journal's replay
 * of them.
 *
 * A push binds a job's row to the insert and, inside the engine's
 * transaction, writes the same values to the push journal as one record
 * (sqlite_journal.c), so replay can bind them back after a crash. The
 * jobs of a batch go in by groups, one statement for up to GROUP_MAX
 * rows (group_run says which); a job with unique_for, an invalid one and
 * the jobs of a group with a refusal go in alone, so each refusal names
 * its job. Inside the engine's transaction a single push is deferred:
 * checked and journaled now, inserted once it has been answered (the
 * section "Deferred pushes" below).
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "store/sqlite_int.h"

enum insert_param {
    P_JID = 1, P_QUEUE, P_JOBTYPE, P_STATE, P_PRIORITY, P_ARGS, P_CUSTOM,
    P_TAGS, P_BACKOFF, P_RETRY, P_RESERVE_FOR, P_UNIQUE_FOR, P_UNIQUE_KEY,
    P_BACKTRACE_LINES, P_CREATED_AT, P_ENQUEUED_AT, P_AT, P_NEXT_AT,
    P_LEASE_UNTIL, P_UPDATED_AT, P_PUSHED_AT, P_ATTEMPTS, P_FAILURES,
    P_WORKER, P_ERRTYPE, P_MESSAGE, P_BACKTRACE, P_FAILED_AT, P_QUARANTINED
};
_Static_assert(P_QUARANTINED == ZN__SQLITE_INSERT_NPARAM,
               "a row's parameters are the insert's columns");

/* One row of job_tags; len -1: tag is NUL-terminated. */
static int
tag_insert(struct zn__sqlite *s, int64_t seq, const char *tag, int len,
           const char *what, struct zn_err *err)
{
    sqlite3_stmt *st = s->stmt[ZN__SQLITE_TAG];

    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, tag, len, SQLITE_STATIC);
    return zn__sqlite_run(s, st, what, err);
}

/* The journal's replay (sqlite_journal.c says when). */

struct replay {
    struct zn__sqlite *s;
    struct zn_err *err;
};

static void
bind_value(sqlite3_stmt *st, int i, const struct zn__sqlite_journal_value *v)
{
    if (v->type == ZN__SQLITE_JINT)
        sqlite3_bind_int64(st, i, v->i);
    else if (v->type == ZN__SQLITE_JTEXT)
        sqlite3_bind_text(st, i, v->text, (int)v->len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Inserts the job of one record again, as its push did. */
static int
replay_one(void *ctx, const struct zn__sqlite_journal_value *v, size_t n)
{
    struct replay *r = ctx;
    struct zn__sqlite *s = r->s;
    sqlite3_stmt *st = s->stmt[ZN__SQLITE_INSERT];
    char queue[ZN_QUEUE_NAME_MAX + 1] = "";
    int64_t seq, state = -1;
    int rc;

    sqlite3_clear_bindings(st);
    for (size_t i = 0; i < n; i++) {
        if (v[i].param == ZN__SQLITE_JOURNAL_TAG)
            continue;
        /* The version in each record keeps this from happening. */
        if (v[i].param > P_QUARANTINED)
            return zn_err_set(r->err, ZN_EIO, "cannot replay the journal of "
                              "'%s': parameter %d is unknown", s->path,
                              v[i].param);
        bind_value(st, v[i].param, &v[i]);
        if (v[i].param == P_QUEUE && v[i].type == ZN__SQLITE_JTEXT &&
            v[i].len < sizeof(queue)) {
            memcpy(queue, v[i].text, v[i].len);
            queue[v[i].len] = '\0';
        } else if (v[i].param == P_STATE && v[i].type == ZN__SQLITE_JINT) {
            state = v[i].i;
        }
    }
    rc = sqlite3_step(st);
    seq = sqlite3_last_insert_rowid(s->db);
    if (rc != SQLITE_DONE &&
        sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE) {
        sqlite3_reset(st);
        return 0; /* the job is there: nothing was owed */
    }
    if (rc != SQLITE_DONE) {
        rc = zn__sqlite_err(s, "replay the journal of", r->err);
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (v[i].param == ZN__SQLITE_JOURNAL_TAG &&
            v[i].type == ZN__SQLITE_JTEXT)
            rc = tag_insert(s, seq, v[i].text, (int)v[i].len,
                            "replay the journal of", r->err);
    if (rc == 0 && state >= 0 && state < ZN_STATE_COUNT)
        rc = zn__sqlite_tally(s, queue, (int)state, 1,
                              "replay the journal of", r->err);
    if (rc == 0)
        s->op_counter[ZN__SQLITE_PUSHED]++;
    return rc;
}

int
zn__sqlite_replay(struct zn__sqlite *s, struct zn_err *err)
{
    struct replay r = {s, err};
    enum zn__sqlite_tx tx;
    size_t n = 0;
    int rc = zn__sqlite_tx_open(s, &tx, "replay the journal of", err);

    if (rc == 0)
        rc = zn__sqlite_journal_replay(s->journal, replay_one, &r, &n, err);
    s->sync_due = true;
    zn__sqlite_ready_drop(s);
    rc = zn__sqlite_tx_close(s, tx, rc, "replay the journal of", err);
    if (rc == 0 && n)
        ZN_LOG(ZN_WARN, "store.journal_replayed", ZN_STR("path", s->path),
               ZN_INT("jobs", (int64_t)n));
    return rc;
}

/* Push. */

/* Sets *refused to ZN_EUNIQUE when an equal job is within unique_for. */
static int
unique_check(struct zn__sqlite *s, const struct zn_job *job, const char *key,
             int64_t now, struct zn_err *refused, struct zn_err *err)
{
    sqlite3_stmt *st = s->stmt[ZN__SQLITE_UNIQUE];
    const unsigned char *jid;
    int rc;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now - (int64_t)job->unique_for * 1000);
    rc = zn__sqlite_step(s, st, "push into", err);
    if (rc == SQLITE_ROW) {
        jid = sqlite3_column_text(st, 0);
        zn_err_set(refused, ZN_EUNIQUE, "job is not unique: equal job '%s' "
                   "pushed within unique_for", jid ? (const char *)jid : "?");
    }
    sqlite3_reset(st);
    return rc < 0 ? rc : 0;
}

/* "10,30,60" into out, or NULL when the job has no list of its own. */
static const char *
backoff_text(const struct zn_job *job, char *out, size_t size)
{
    size_t len = 0;
    size_t n = job->nbackoff < ZN_BACKOFF_MAX ? job->nbackoff
                                              : ZN_BACKOFF_MAX;

    if (n == 0)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%ld", i ? "," : "",
                                (long)job->backoff[i]);
    return out;
}

/* The tags as JSON text (malloc'd) into *out, NULL when there are none. */
static int
tags_json(const struct zn_job *job, char **out)
{
    json_t *a;
    int rc = 0;

    *out = NULL;
    if (job->ntags == 0)
        return 0;
    a = json_array();
    if (!a)
        return ZN_ENOMEM;
    for (size_t i = 0; i < job->ntags && rc == 0; i++) {
        /* NULL for a NULL tag or bad UTF-8 (the codec lets neither in). */
        json_t *v = job->tags[i] ? json_string(job->tags[i]) : NULL;

        if (!v || json_array_append_new(a, v))
            rc = ZN_EINVAL;
    }
    if (rc == 0) {
        *out = json_dumps(a, JSON_COMPACT);
        if (!*out)
            rc = ZN_ENOMEM;
    }
    json_decref(a);
    return rc;
}

/*
 * Binds parameter i of the insert's row that starts after parameter base,
 * unless st is NULL, and records it as i in the journal j when not NULL: a
 * record holds exactly what is bound, so replay binds it back.
 */
static void
put_text(sqlite3_stmt *st, int base, struct zn__sqlite_journal *j, int i,
         const char *v)
{
    /* A NULL v binds NULL (SQLite documents it). */
    if (st)
        sqlite3_bind_text(st, base + i, v, -1, SQLITE_STATIC);
    zn__sqlite_journal_text(j, i, v);
}

static void
put_int(sqlite3_stmt *st, int base, struct zn__sqlite_journal *j, int i,
        int64_t v)
{
    if (st)
        sqlite3_bind_int64(st, base + i, v);
    zn__sqlite_journal_int(j, i, v);
}

static void
insert_bind(sqlite3_stmt *st, int b, struct zn__sqlite_journal *j,
            const struct zn__sqlite_row *row, const char *backoff)
{
    const struct zn_job *job = row->job;

    put_text(st, b, j, P_JID, job->jid);
    put_text(st, b, j, P_QUEUE, job->queue);
    put_text(st, b, j, P_JOBTYPE, job->jobtype);
    put_int(st, b, j, P_STATE, (int)job->state);
    put_int(st, b, j, P_PRIORITY, job->priority);
    put_text(st, b, j, P_ARGS, job->args);
    put_text(st, b, j, P_CUSTOM, job->custom);
    put_text(st, b, j, P_TAGS, row->tags);
    put_text(st, b, j, P_BACKOFF, backoff);
    put_int(st, b, j, P_RETRY, job->retry);
    put_int(st, b, j, P_RESERVE_FOR, job->reserve_for);
    put_int(st, b, j, P_UNIQUE_FOR, job->unique_for);
    put_text(st, b, j, P_UNIQUE_KEY, row->key);
    put_int(st, b, j, P_BACKTRACE_LINES, job->backtrace_lines);
    put_int(st, b, j, P_CREATED_AT, job->created_at);
    put_int(st, b, j, P_ENQUEUED_AT, job->enqueued_at);
    put_int(st, b, j, P_AT, job->at);
    put_int(st, b, j, P_NEXT_AT, job->next_at);
    put_int(st, b, j, P_LEASE_UNTIL, job->lease_until);
    put_int(st, b, j, P_UPDATED_AT, row->now);
    put_int(st, b, j, P_PUSHED_AT, row->now);
    put_int(st, b, j, P_ATTEMPTS, job->attempts);
    put_int(st, b, j, P_FAILURES, job->failures);
    put_text(st, b, j, P_WORKER, job->worker);
    put_text(st, b, j, P_ERRTYPE, job->failure.errtype);
    put_text(st, b, j, P_MESSAGE, job->failure.message);
    put_text(st, b, j, P_BACKTRACE, job->failure.backtrace);
    put_int(st, b, j, P_FAILED_AT, job->failure.failed_at);
    put_int(st, b, j, P_QUARANTINED, job->quarantined);
}

/*
 * The row of job pushed at now, key its unique key or NULL: its tags as
 * JSON, and its defaults set in the job, which is what reads back (set
 * even when the push is then refused). 0, or 0 with *refused set, or a
 * store failure. row_free frees what it made.
 */
static int
row_prepare(struct zn__sqlite *s, struct zn_job *job, const char *key,
            int64_t now, struct zn__sqlite_row *row, struct zn_err *refused,
            struct zn_err *err)
{
    int rc;

    *row = (struct zn__sqlite_row){job, NULL, key, now};
    rc = tags_json(job, &row->tags);
    if (rc == ZN_EINVAL) {
        zn_err_set(refused, rc, "tags: a tag of job '%s' is not valid UTF-8",
                   job->jid);
        return 0;
    }
    if (rc == 0 && !job->args && !(job->args = strdup("[]"))) {
        free(row->tags);
        row->tags = NULL;
        rc = ZN_ENOMEM;
    }
    if (rc < 0)
        return zn__sqlite_nomem(s, "push into", err);
    if (job->enqueued_at == 0 && job->state == ZN_STATE_ENQUEUED)
        job->enqueued_at = now;
    return 0;
}

static void
row_free(struct zn__sqlite_row *row)
{
    free(row->tags);
    row->tags = NULL;
}

/* Room for a job's backoff list as text. */
#define BACKOFF_TEXT_MAX (ZN_BACKOFF_MAX * 12)

/*
 * Binds row after parameter base (st NULL: binds nothing) and writes its
 * journal record, the tags last (the insert's values, then number 0
 * each). backoff (BACKOFF_TEXT_MAX bytes) is bound: it lives until the
 * step.
 */
static void
row_bind(sqlite3_stmt *st, int base, struct zn__sqlite_journal *j,
         const struct zn__sqlite_row *row, char *backoff)
{
    const struct zn_job *job = row->job;

    zn__sqlite_journal_begin(j);
    insert_bind(st, base, j, row,
                backoff_text(job, backoff, BACKOFF_TEXT_MAX));
    for (size_t i = 0; i < job->ntags; i++)
        zn__sqlite_journal_text(j, ZN__SQLITE_JOURNAL_TAG, job->tags[i]);
    zn__sqlite_journal_end(j);
}

/* What an inserted job gets: its seq, job_tags rows, a ready buffer. */
static int
row_inserted(struct zn__sqlite *s, const struct zn__sqlite_row *row,
             int64_t seq, struct zn_err *err)
{
    struct zn_job *job = row->job;
    int rc = 0;

    job->seq = (uint64_t)seq;
    job->updated_at = row->now;
    for (size_t i = 0; i < job->ntags && rc == 0; i++)
        rc = tag_insert(s, seq, job->tags[i], -1, "push into", err);
    if (rc == 0 && job->state == ZN_STATE_ENQUEUED)
        zn__sqlite_ready_pushed(s, job);
    return rc;
}

/*
 * The insert of k rows into *out, prepared the first time it is used:
 * of deferred pushes when deferred, else of a batch.
 */
static int
group_stmt(struct zn__sqlite *s, size_t k, bool deferred, sqlite3_stmt **out,
           struct zn_err *err)
{
    const char *into = deferred ? ZN__SQLITE_INSERT_OR_FAIL
                                : ZN__SQLITE_INSERT_INTO;
    sqlite3_stmt **st = &s->group[deferred][k];
    char sql[sizeof(ZN__SQLITE_INSERT_OR_FAIL) +
             ZN__SQLITE_GROUP_MAX * ZN__SQLITE_INSERT_NPARAM * 8];
    size_t len = strlen(into);
    int p = 1;

    *out = k == 1 && !deferred ? s->stmt[ZN__SQLITE_INSERT] : *st;
    if (*out)
        return 0;
    memcpy(sql, into, len);
    for (size_t r = 0; r < k; r++)
        for (int i = 0; i < ZN__SQLITE_INSERT_NPARAM; i++, p++)
            len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s?%d%s",
                                    i ? ", " : r ? ", (" : "(", p,
                                    i == ZN__SQLITE_INSERT_NPARAM - 1 ? ")"
                                                                      : "");
    if (sqlite3_prepare_v3(s->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT,
                           st, NULL) != SQLITE_OK)
        return zn__sqlite_err(s, "push into", err);
    *out = *st;
    return 0;
}

/*
 * Inserts rows[0..k) (1 <= k <= GROUP_MAX) with one statement, their
 * records into j. 1 when they went in; 0 when a jid was taken (SQLite
 * undid just this statement, unless deferred: then the rows before it
 * stay, see ZN__SQLITE_INSERT_OR_FAIL); or a store failure.
 */
static int
rows_insert(struct zn__sqlite *s, struct zn__sqlite_journal *j,
            const struct zn__sqlite_row *rows, size_t k, bool deferred,
            struct zn_err *err)
{
    struct zn__sqlite_journal_mark mark = zn__sqlite_journal_mark(j);
    char backoff[ZN__SQLITE_GROUP_MAX][BACKOFF_TEXT_MAX];
    sqlite3_stmt *st;
    int64_t last;
    int rc = group_stmt(s, k, deferred, &st, err);

    if (rc < 0)
        return rc;
    for (size_t r = 0; r < k; r++)
        row_bind(st, (int)r * ZN__SQLITE_INSERT_NPARAM, j, &rows[r],
                 backoff[r]);
    rc = sqlite3_step(st);
    last = sqlite3_last_insert_rowid(s->db);
    /* The seqs below hold only if every row went in, in order. */
    if (rc == SQLITE_DONE && sqlite3_changes(s->db) == (int)k &&
        last >= (int64_t)k)
        rc = 1;
    else if (rc == SQLITE_DONE)
        rc = zn_err_set(err, ZN_EIO, "cannot push into '%s': an insert of "
                        "%zu jobs wrote %d rows", s->path, k,
                        sqlite3_changes(s->db));
    else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE &&
             !sqlite3_get_autocommit(s->db))
        rc = 0;
    else
        rc = zn__sqlite_err(s, "push into", err);
    sqlite3_reset(st);
    if (rc != 1) {
        zn__sqlite_journal_undo(j, mark);
        return rc;
    }
    for (size_t r = 0; r < k && rc == 1; r++) {
        int done = row_inserted(s, &rows[r], last - (int64_t)(k - 1 - r),
                                err);

        if (done < 0)
            rc = done;
    }
    return rc;
}

static void
jid_taken(struct zn_err *refused, const char *jid)
{
    zn_err_set(refused, ZN_EEXIST, "jid '%s' already exists", jid);
}

/* Inserts the row of job; a taken jid is a refusal, not a store failure. */
static int
insert_job(struct zn__sqlite *s, struct zn__sqlite_journal *j,
           struct zn_job *job, const char *key, int64_t now,
           struct zn_err *refused, struct zn_err *err)
{
    struct zn__sqlite_row row;
    int rc = row_prepare(s, job, key, now, &row, refused, err);

    if (rc < 0 || refused->code)
        return rc;
    rc = rows_insert(s, j, &row, 1, false, err);
    if (rc == 0)
        jid_taken(refused, job->jid);
    row_free(&row);
    return rc < 0 ? rc : 0;
}

/* The engine checks jobs; these checks keep a bad one from being stored. */
static bool
push_valid(const struct zn_job *job, struct zn_err *refused)
{
    const char *bad = NULL;

    if (!zn_job_jid_valid(job->jid, strnlen(job->jid, sizeof(job->jid))))
        bad = "jid is not valid";
    else if (!zn_job_queue_name_valid(job->queue,
                                      strnlen(job->queue, sizeof(job->queue))))
        bad = "queue is not valid";
    else if (!job->jobtype || !job->jobtype[0])
        bad = "jobtype is missing";
    else if ((unsigned)job->state >= ZN_STATE_COUNT)
        bad = "state is unknown";
    if (bad)
        zn_err_set(refused, ZN_EINVAL, "cannot push job: %s", bad);
    return !bad;
}

/*
 * Deferred pushes. Inside the engine's transaction a push is answered once
 * its journal record is written, and its insert was, for a single PUSH,
 * most of the CPU the server spent on it before the reply. So a single job
 * without unique_for is checked as the insert would check it (push_valid,
 * its tags, its jid among the table's and the deferred ones), recorded in
 * the journal and kept as a copy; its insert comes later, with up to
 * GROUP_MAX others in one statement, before anything else reads or
 * inserts jobs: settle (which every op but push, fetch and finish calls
 * first), a fetch, a push that inserts, and the commit (which settles);
 * and at the latest when the loop has sent its replies (the store's idle
 * op), so the insert costs the client no wait.
 * A finish needs none: a deferred job is not working. The seq a deferred
 * job gets is known at its push, one above the table's highest and the
 * deferred before it: no other insert, and no delete, can come between.
 *
 * A rollback drops them with the transaction; their records bring them
 * back, as for every journaled push. An insert that fails leaves the rest
 * deferred (a statement that went in stays in), and the commit, which
 * settles first, fails with it; an error that ends the transaction drops
 * them as a rollback does. The jid check makes a taken jid impossible at
 * the insert; were one met, the rows before it in its statement stay in
 * (OR FAIL), the next try fails on them, and so the commit fails too.
 * With tags, a job is several statements: a savepoint keeps them whole.
 *
 * deferred_check steps SEQ_OF itself: zn__sqlite_seq_of would format a
 * "no job" message for every push.
 */

/*
 * Sets *refused when jid is taken; else *seq is the seq its insert after
 * the deferred ones will give it.
 */
static int
deferred_check(struct zn__sqlite *s, const char *jid, int64_t *seq,
               struct zn_err *refused, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_SEQ_OF];
    int rc;

    for (size_t i = 0; i < s->ndeferred; i++) {
        if (strcmp(s->deferred[i].job->jid, jid) == 0) {
            jid_taken(refused, jid);
            return 0;
        }
    }
    sqlite3_bind_text(q, 1, jid, -1, SQLITE_STATIC);
    rc = zn__sqlite_step(s, q, "push into", err);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        jid_taken(refused, jid);
    if (rc != SQLITE_DONE)
        return rc < 0 ? rc : 0;
    if (s->ndeferred) {
        *seq = (int64_t)s->deferred[s->ndeferred - 1].job->seq + 1;
        return 0;
    }
    q = s->stmt[ZN__SQLITE_SEQ_MAX];
    rc = zn__sqlite_step(s, q, "push into", err);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(q, 0) + 1;
    sqlite3_reset(q);
    return rc < 0 ? rc : 0;
}

/* Checks job, records it in j and keeps a copy to insert later. */
static int
push_deferred(struct zn__sqlite *s, struct zn__sqlite_journal *j,
              struct zn_job *job, int64_t now, struct zn_err *refused,
              struct zn_err *err)
{
    struct zn__sqlite_row row;
    char backoff[BACKOFF_TEXT_MAX];
    int64_t seq = 0;
    int rc;

    ZN_ASSERT(s->ndeferred < ZN__SQLITE_DEFERRED_MAX);
    if (!push_valid(job, refused))
        return 0;
    rc = row_prepare(s, job, NULL, now, &row, refused, err);
    if (rc < 0 || refused->code)
        return rc;
    rc = deferred_check(s, job->jid, &seq, refused, err);
    if (rc == 0 && !refused->code) {
        job->seq = (uint64_t)seq;
        job->updated_at = now;
        row.job = zn_job_dup(job);
        if (!row.job)
            rc = zn__sqlite_nomem(s, "push into", err);
    }
    if (rc < 0 || refused->code) {
        row_free(&row);
        return rc;
    }
    row_bind(NULL, 0, j, &row, backoff);
    s->deferred[s->ndeferred++] = row;
    return 0;
}

/* Drops deferred rows [from, to): frees their copies, moves the rest up. */
static void
deferred_drop(struct zn__sqlite *s, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        zn_job_free(s->deferred[i].job);
        row_free(&s->deferred[i]);
    }
    memmove(s->deferred + from, s->deferred + to,
            (s->ndeferred - to) * sizeof(s->deferred[0]));
    s->ndeferred -= to - from;
}

int
zn__sqlite_deferred_insert(struct zn__sqlite *s, struct zn_err *err)
{
    enum zn__sqlite_tx tx;
    bool tagged = false;
    size_t done = 0;
    int rc;

    if (s->ndeferred == 0)
        return 0;
    /* A push joins the reader ahead; a fetch inserts these before it starts. */
    ZN_ASSERT(!zn__sqlite_ahead_busy(s));
    for (size_t i = 0; i < s->ndeferred; i++)
        tagged |= s->deferred[i].job->ntags > 0;
    /* Tags are more statements: with them, all go in or none. */
    rc = tagged ? zn__sqlite_tx_open(s, &tx, "push into", err)
                : zn__sqlite_tx_open_one(s, &tx, "push into", err);
    while (rc == 0 && done < s->ndeferred) {
        size_t k = s->ndeferred - done;

        k = k < ZN__SQLITE_GROUP_MAX ? k : ZN__SQLITE_GROUP_MAX;
        rc = rows_insert(s, NULL, s->deferred + done, k, true, err);
        if (rc == 0)
            rc = zn_err_set(err, ZN_EIO, "cannot push into '%s': a jid of "
                            "jobs '%s'... was taken after their push",
                            s->path, s->deferred[done].job->jid);
        if (rc == 1) {
            rc = 0;
            done += k;
        }
    }
    rc = zn__sqlite_tx_close(s, tx, rc, "push into", err);
    /*
     * A failure undid the savepoint (tagged), or the whole transaction,
     * whose undo discarded every deferred row; else the statements that
     * went in stay in.
     */
    if (rc < 0 && (tagged || s->ndeferred == 0))
        done = 0;
    deferred_drop(s, 0, done);
    return rc;
}

void
zn__sqlite_deferred_discard(struct zn__sqlite *s)
{
    deferred_drop(s, 0, s->ndeferred);
}

/*
 * Whether a push can be deferred: one job without unique_for (whose check
 * must see the jobs pushed before it), journaled.
 */
static bool
push_can_defer(const struct zn__sqlite_journal *j, struct zn_job *const *jobs,
               size_t n)
{
    return j && n == 1 && jobs[0]->unique_for <= 0;
}

/*
 * Whether push_one writes the batch with one statement, with nothing
 * fallible after it but one tally (see zn__sqlite_tx_open_one): a single
 * job without tags is one INSERT.
 */
static bool
push_is_one_statement(struct zn_job *const *jobs, size_t n)
{
    return n == 1 && jobs[0]->ntags == 0;
}

/*
 * One job: 0 with *refused set or not, or a store failure. An accepted
 * job gets its record in the journal j, when not NULL.
 */
static int
push_one(struct zn__sqlite *s, struct zn__sqlite_journal *j,
         struct zn_job *job, int64_t now, struct zn_err *refused,
         struct zn_err *err)
{
    struct zn__sqlite_journal_mark mark = zn__sqlite_journal_mark(j);
    char key[65];
    int rc;

    if (!push_valid(job, refused))
        return 0;
    if (job->unique_for > 0) {
        zn_job_unique_key(job, key);
        rc = unique_check(s, job, key, now, refused, err);
        if (rc < 0 || refused->code)
            return rc;
    }
    rc = insert_job(s, j, job, job->unique_for > 0 ? key : NULL, now,
                    refused, err);
    if (rc < 0 || refused->code)
        zn__sqlite_journal_undo(j, mark);
    return rc;
}

/*
 * Groups: the jobs of a batch go in by inserts of up to GROUP_MAX rows, a
 * statement's overhead shared among them. A group is a run of jobs that
 * one statement can take: valid ones without unique_for (whose check must
 * see the jobs pushed before it). The rows of one statement get
 * consecutive seqs, as each new seq is one above the table's highest
 * (rows_insert checks that they all went in). When a job of the group is
 * refused (a taken jid, which SQLite undoes with just that statement, or
 * a tag that is not UTF-8), the group's jobs go in one by one, which
 * tells which one is refused and why.
 */
static size_t
group_run(struct zn_job *const *jobs, size_t n)
{
    struct zn_err scratch;
    size_t k = 0;

    while (k < n && k < ZN__SQLITE_GROUP_MAX && jobs[k]->unique_for <= 0 &&
           push_valid(jobs[k], &scratch))
        k++;
    return k;
}

/*
 * Inserts jobs[0..k) (2 <= k <= GROUP_MAX, a group_run) with one
 * statement, their records into j. 1 when they went in; 0 when nothing
 * did and the caller pushes them one by one (a refusal among them: a
 * taken jid, a tag that is not UTF-8); or a store failure.
 */
static int
group_insert(struct zn__sqlite *s, struct zn__sqlite_journal *j,
             struct zn_job *const *jobs, size_t k, int64_t now,
             struct zn_err *err)
{
    struct zn__sqlite_row rows[ZN__SQLITE_GROUP_MAX];
    struct zn_err refused = {0};
    size_t ready = 0;
    int rc = 0;

    for (; ready < k && rc == 0 && !refused.code; ready++)
        rc = row_prepare(s, jobs[ready], NULL, now, &rows[ready], &refused,
                         err);
    if (rc == 0 && !refused.code)
        rc = rows_insert(s, j, rows, k, false, err);
    for (size_t r = 0; r < ready; r++)
        row_free(&rows[r]);
    return rc;
}

/*
 * The jobs of a push, in groups or one by one (deferred when defer), each
 * accepted one tallied: 0 with errs[] set, or a store failure.
 */
static int
push_jobs(struct zn__sqlite *s, struct zn__sqlite_journal *j,
          struct zn_job *const *jobs, size_t n, int64_t now, bool defer,
          struct zn_err *errs, struct zn_err *err)
{
    int64_t accepted = 0;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0;) {
        size_t k = n - i >= 2 ? group_run(jobs + i, n - i) : 0;
        size_t end = i + (k ? k : 1);
        int in = k >= 2 ? group_insert(s, j, jobs + i, k, now, err) : 0;

        rc = in < 0 ? in : 0;
        for (; i < end && rc == 0; i++) {
            if (defer)
                rc = push_deferred(s, j, jobs[i], now, &errs[i], err);
            else if (in != 1)
                rc = push_one(s, j, jobs[i], now, &errs[i], err);
            if (rc == 0 && errs[i].code == 0) {
                accepted++;
                rc = zn__sqlite_tally(s, jobs[i]->queue, (int)jobs[i]->state,
                                      1, "push into", err);
            }
        }
    }
    s->op_counter[ZN__SQLITE_PUSHED] += accepted;
    return rc;
}

int
zn__sqlite_push(struct zn_store *st, struct zn_job *const *jobs, size_t n,
                int64_t now, struct zn_err *errs)
{
    struct zn__sqlite *s = zn__sqlite_of(st);
    struct zn__sqlite_journal *j;
    struct zn__sqlite_journal_mark mark;
    struct zn_err err;
    enum zn__sqlite_tx tx;
    size_t kept;
    bool defer;
    int rc;

    for (size_t i = 0; i < n; i++)
        zn_err_clear(&errs[i]);
    if (n == 0)
        return 0;
    rc = zn__sqlite_ahead_join(s, &err);
    /* In a caller's transaction a push is journaled: it commits later. */
    j = s->journal && !sqlite3_get_autocommit(s->db) ? s->journal : NULL;
    mark = zn__sqlite_journal_mark(j);
    defer = push_can_defer(j, jobs, n);
    if (rc == 0)
        rc = zn__sqlite_writable(s, "push into", &err);
    /* Its seqs come after the deferred jobs'; or the deferred are full. */
    if (rc == 0 && (!defer || s->ndeferred == ZN__SQLITE_DEFERRED_MAX))
        rc = zn__sqlite_deferred_insert(s, &err);
    kept = s->ndeferred;
    if (rc == 0 && (defer || push_is_one_statement(jobs, n)))
        rc = zn__sqlite_tx_open_one(s, &tx, "push into", &err);
    else if (rc == 0)
        rc = zn__sqlite_tx_open(s, &tx, "push into", &err);
    if (rc == 0) {
        rc = push_jobs(s, j, jobs, n, now, defer, errs, &err);
        rc = zn__sqlite_tx_close(s, tx, rc, "push into", &err);
    }
    if (rc == 0)
        return 0;
    zn__sqlite_journal_undo(j, mark);
    /* Nothing of the batch was kept: every job gets the store's error. */
    if (s->ndeferred > kept)
        deferred_drop(s, kept, s->ndeferred);
    for (size_t i = 0; i < n; i++)
        errs[i] = err;
    return rc;
}
