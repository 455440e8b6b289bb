/*
 * sqlite_count.c - the counts of the sqlite store: jobs by queue and state
 * (table queue_counts, read by queue_stats) and the pushed, processed and
 * failed counters (table counters).
 *
 * Keeping counts makes queue_stats cost one row per queue and state
 * instead of a scan of every job, which at a million jobs took a second.
 * Updating the tables on every state change would cost the hot path two
 * upserts per fetch and per ack, and triggers cost more still (SQLite
 * builds the whole old and new row for them). So each op adds its changes
 * in memory, and they are written at most once a second, with the commit
 * that comes then: writing them with every commit was two of the seven
 * pages a push wrote. Readers through this handle (queue_stats, counters)
 * add what is pending in memory to the rows, so they see exact counts
 * without writing; a read-only handle sees them up to a second late.
 *
 * A crash loses the changes not yet written. queue_counts is rebuilt from
 * the jobs at the next open: meta.counts_exact is 0 from the open of a
 * writer to its clean close. The counters cannot be rebuilt (done jobs are
 * pruned): a crash may lose up to a second of them. They are statistics;
 * no job depends on them.
 *
 * Three sets of changes, all in memory:
 *   pend, pend_counter     committed, not yet written;
 *   tally[0..mark), counter     the ops of the open transaction that
 *                               succeeded;
 *   tally[mark..ntally), op_counter     the running op, dropped if it
 *                                       fails, as its writes are.
 * pend_in_tx: pend has been written in the open transaction (or voided by
 * a flush of the tables): it is cleared if that transaction commits, kept
 * if it rolls back. Nothing of the transaction's is pending while none is
 * open.
 */
#include "compat.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "store/sqlite_int.h"

/* How long committed changes may wait in memory. */
#define WRITE_EVERY_MS 1000

static const char *const counter_names[ZN__SQLITE_NCOUNTER] = {
    "pushed", "processed", "failed",
};

/* The transaction's changes are gone (written, or rolled back). */
static void
tx_forget(struct zn__sqlite *s)
{
    s->ntally = 0;
    s->mark = 0;
    memset(s->counter, 0, sizeof(s->counter));
    memset(s->op_counter, 0, sizeof(s->op_counter));
}

/* Every committed change is in the tables. */
static void
pend_clear(struct zn__sqlite *s)
{
    s->npend = 0;
    memset(s->pend_counter, 0, sizeof(s->pend_counter));
    s->written_ms = zn_clock_mono_ms();
}

void
zn__sqlite_tally_begin(struct zn__sqlite *s, bool own_tx)
{
    if (own_tx) {
        tx_forget(s);
        s->pend_in_tx = false;
    }
    s->mark = s->ntally;
    memset(s->op_counter, 0, sizeof(s->op_counter));
}

/* Room for n more entries in *v (of *cap); ZN_ENOMEM. */
static int
tally_reserve(struct zn__sqlite_tally **v, size_t *cap, size_t used,
              size_t n)
{
    struct zn__sqlite_tally *grown;
    size_t want = *cap ? *cap : 16;

    if (used + n <= *cap)
        return 0;
    while (want < used + n)
        want *= 2;
    grown = realloc(*v, want * sizeof(*grown));
    if (!grown)
        return ZN_ENOMEM;
    *v = grown;
    *cap = want;
    return 0;
}

/* Adds n to (queue, state) among v[from..*used); room must be there. */
static void
tally_add(struct zn__sqlite_tally *v, size_t from, size_t *used,
          const char *queue, size_t len, int state, int64_t n)
{
    struct zn__sqlite_tally *t;

    for (size_t i = from; i < *used; i++) {
        t = &v[i];
        if (t->state == state && strcmp(t->queue, queue) == 0) {
            t->n += n;
            return;
        }
    }
    t = &v[(*used)++];
    memcpy(t->queue, queue, len + 1);
    t->state = state;
    t->n = n;
}

int
zn__sqlite_tally(struct zn__sqlite *s, const char *queue, int state,
                 int64_t n, const char *what, struct zn_err *err)
{
    size_t len = strlen(queue);
    int rc;

    if (len > ZN_QUEUE_NAME_MAX)
        return zn_err_set(err, ZN_EIO, "cannot %s '%s': queue name of %zu "
                          "bytes", what, s->path, len);
    rc = zn__sqlite_tally_room(s, what, err);
    if (rc < 0)
        return rc;
    /* Only the running op's entries: a failed op must not touch others. */
    tally_add(s->tally, s->mark, &s->ntally, queue, len, state, n);
    return 0;
}

int
zn__sqlite_tally_room(struct zn__sqlite *s, const char *what,
                      struct zn_err *err)
{
    if (tally_reserve(&s->tally, &s->cap_tally, s->ntally, 1) < 0)
        return zn__sqlite_nomem(s, what, err);
    return 0;
}

void
zn__sqlite_tally_keep(struct zn__sqlite *s)
{
    s->mark = s->ntally;
    for (int i = 0; i < ZN__SQLITE_NCOUNTER; i++)
        s->counter[i] += s->op_counter[i];
    memset(s->op_counter, 0, sizeof(s->op_counter));
}

void
zn__sqlite_tally_drop(struct zn__sqlite *s)
{
    s->ntally = s->mark;
    memset(s->op_counter, 0, sizeof(s->op_counter));
}

void
zn__sqlite_tally_abort(struct zn__sqlite *s)
{
    tx_forget(s);
    s->pend_in_tx = false;
}

void
zn__sqlite_tally_void(struct zn__sqlite *s)
{
    tx_forget(s);
    s->pend_in_tx = true;
}

static int
write_queue_count(struct zn__sqlite *s, const struct zn__sqlite_tally *t,
                  const char *what, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_QUEUE_COUNT_ADD];

    if (t->n == 0)
        return 0;
    sqlite3_bind_text(q, 1, t->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, t->state);
    sqlite3_bind_int64(q, 3, t->n);
    return zn__sqlite_run(s, q, what, err);
}

static int
write_counter(struct zn__sqlite *s, int i, int64_t v, const char *what,
              struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_COUNTER_ADD];

    if (v == 0)
        return 0;
    sqlite3_bind_text(q, 1, counter_names[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, v);
    return zn__sqlite_run(s, q, what, err);
}

/* Writes pend (unless written already) and the transaction's changes. */
static int
write_all(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    int rc = 0;

    for (size_t i = 0; !s->pend_in_tx && i < s->npend && rc == 0; i++)
        rc = write_queue_count(s, &s->pend[i], what, err);
    for (size_t i = 0; i < s->ntally && rc == 0; i++)
        rc = write_queue_count(s, &s->tally[i], what, err);
    for (int i = 0; i < ZN__SQLITE_NCOUNTER && rc == 0; i++)
        rc = write_counter(s, i,
                           s->counter[i] +
                               (s->pend_in_tx ? 0 : s->pend_counter[i]),
                           what, err);
    return rc;
}

/*
 * Writes what is pending into the transaction about to commit. If the
 * write or the commit fails, the caller rolls the whole transaction back
 * and pend stays pending.
 */
static int
write_pending(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    int rc = write_all(s, what, err);

    if (rc == 0) {
        tx_forget(s);
        s->pend_in_tx = true;
    }
    return rc;
}

void
zn__sqlite_pending_each(const struct zn__sqlite *s,
                        void (*fn)(void *ctx, const char *queue, int state,
                                   int64_t n),
                        void *ctx)
{
    for (size_t i = 0; !s->pend_in_tx && i < s->npend; i++)
        fn(ctx, s->pend[i].queue, s->pend[i].state, s->pend[i].n);
    for (size_t i = 0; i < s->ntally; i++)
        fn(ctx, s->tally[i].queue, s->tally[i].state, s->tally[i].n);
}

void
zn__sqlite_pending_counters(const struct zn__sqlite *s,
                            int64_t counter[ZN__SQLITE_NCOUNTER])
{
    for (int i = 0; i < ZN__SQLITE_NCOUNTER; i++)
        counter[i] += s->counter[i] + s->op_counter[i] +
                      (s->pend_in_tx ? 0 : s->pend_counter[i]);
}

/* The committed transaction's changes join pend (room was reserved). */
static void
pend_merge(struct zn__sqlite *s)
{
    for (size_t i = 0; i < s->ntally; i++)
        tally_add(s->pend, 0, &s->npend, s->tally[i].queue,
                  strlen(s->tally[i].queue), s->tally[i].state,
                  s->tally[i].n);
    for (int i = 0; i < ZN__SQLITE_NCOUNTER; i++)
        s->pend_counter[i] += s->counter[i];
}

/* fsync of the WAL, so every commit so far is on disk (lazy_sync). */
static int
wal_sync(struct zn__sqlite *s)
{
    sqlite3_file *wal = NULL;
    int rc;

    rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
                              &wal);
    if (rc == SQLITE_OK && wal && wal->pMethods)
        rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
    else if (rc == SQLITE_OK)
        rc = SQLITE_MISUSE; /* no WAL open: nothing to say it is synced */
    if (rc == SQLITE_OK)
        return 0;
    ZN_LOG(ZN_ERROR, "store.sync_failed", ZN_STR("path", s->path),
           ZN_STR("error", sqlite3_errstr(rc)));
    return ZN_EIO;
}

int
zn__sqlite_commit(struct zn__sqlite *s, bool force, const char *what,
                  struct zn_err *err)
{
    int64_t now = zn_clock_mono_ms();
    bool write, sync;
    int rc = 0;

    zn__sqlite_tally_keep(s);
    /* Without room to keep them, the changes are written now. */
    write = force || s->pend_in_tx || now - s->written_ms >= WRITE_EVERY_MS ||
            tally_reserve(&s->pend, &s->cap_pend, s->npend, s->ntally) < 0;
    if (write)
        rc = write_pending(s, what, err);
    /* The journal's records are in this commit: their epoch is over. */
    if (rc == 0 && s->journal && zn__sqlite_journal_dirty(s->journal))
        rc = zn__sqlite_meta_set(s, "journal_epoch",
                                 zn__sqlite_journal_epoch(s->journal) + 1,
                                 what, err);
    /*
     * With lazy_sync (durability full) this commit syncs only when it
     * must: an administrative change, a close, a journal due to restart,
     * or pushes whose records were not written (they are answered after
     * this commit, not after the journal).
     */
    sync = !s->lazy_sync || force || s->sync_due ||
           (s->journal && (zn__sqlite_journal_restart_due(s->journal) ||
                           zn__sqlite_journal_unwritten(s->journal)));
    if (rc == 0)
        rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_COMMIT], what, err);
    if (rc < 0)
        return rc;
    if (s->pend_in_tx)
        pend_clear(s);
    pend_merge(s);
    tx_forget(s);
    s->pend_in_tx = false;
    s->sync_due = false;
    if (!s->lazy_sync || !sync) {
        if (s->journal)
            zn__sqlite_journal_committed(s->journal, sync);
        return 0;
    }
    /*
     * A failed fsync may have dropped the pages it could not write: from
     * then on no sync is believed, the journal is never written over, and
     * what waited for this one gets the error, though the commit is done.
     */
    if (!s->sync_failed && wal_sync(s) == 0) {
        zn__sqlite_journal_committed(s->journal, true);
        return 0;
    }
    s->sync_failed = true;
    zn__sqlite_journal_committed(s->journal, false);
    return zn_err_set(err, ZN_EIO, "cannot %s '%s': committed, but cannot "
                      "sync it to disk", what, s->path);
}

int
zn__sqlite_meta_get(struct zn__sqlite *s, const char *name, int64_t *v,
                    struct zn_err *err)
{
    sqlite3_stmt *q;
    int rc;

    *v = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = ?1",
                           -1, &q, NULL))
        return zn__sqlite_err(s, "open", err);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    rc = zn__sqlite_step(s, q, "open", err);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc < 0 ? rc : 0;
}

int
zn__sqlite_meta_set(struct zn__sqlite *s, const char *name, int64_t v,
                    const char *what, struct zn_err *err)
{
    sqlite3_stmt *st = s->stmt[ZN__SQLITE_META_SET];

    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    return zn__sqlite_run(s, st, what, err);
}

static int
exec(struct zn__sqlite *s, const char *sql, const char *what,
     struct zn_err *err)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL)
               ? zn__sqlite_err(s, what, err)
               : 0;
}

int
zn__sqlite_counts_open(struct zn__sqlite *s, struct zn_err *err)
{
    int64_t exact;
    int rc = zn__sqlite_meta_get(s, "counts_exact", &exact, err);

    if (rc < 0)
        return rc;
    s->written_ms = zn_clock_mono_ms();
    rc = exec(s, "BEGIN IMMEDIATE", "open", err);
    if (rc == 0 && exact != 1) {
        ZN_LOG(ZN_WARN, "store.counts_rebuilt", ZN_STR("path", s->path),
               ZN_STR("reason", "not closed cleanly"));
        rc = exec(s, "DELETE FROM queue_counts;"
                  " INSERT INTO queue_counts (queue, state, n)"
                  " SELECT queue, state, count(*) FROM jobs"
                  " GROUP BY queue, state", "rebuild the counts of", err);
    }
    if (rc == 0)
        rc = zn__sqlite_meta_set(s, "counts_exact", 0, "open", err);
    if (rc == 0)
        rc = exec(s, "COMMIT", "open", err);
    if (rc < 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

void
zn__sqlite_counts_close(struct zn__sqlite *s)
{
    struct zn_err e;
    int rc;

    /* A transaction the caller left open goes, as sqlite3_close would. */
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        zn__sqlite_tally_abort(s);
    }
    rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_BEGIN], "close", &e);
    if (rc == 0) {
        zn__sqlite_tally_begin(s, true);
        rc = zn__sqlite_meta_set(s, "counts_exact", 1, "close", &e);
    }
    if (rc == 0)
        rc = zn__sqlite_commit(s, true, "close", &e);
    if (rc < 0) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        ZN_LOG(ZN_ERROR, "store.counts_not_saved", ZN_STR("error", e.msg));
    }
}
