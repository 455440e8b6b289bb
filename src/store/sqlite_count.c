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
 * in memory and they are written once, at commit: a batch of a hundred
 * fetches from one queue writes two rows.
 *
 * Invariant: tally[0..mark) and counter hold the changes of the ops that
 * succeeded in the open transaction; tally[mark..ntally) and op_counter
 * those of the running op, dropped if it fails, as its savepoint is.
 * Nothing is pending while no transaction is open.
 */
#include "compat.h"

#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

void
zn__sqlite_tally_begin(struct zn__sqlite *s, bool own_tx)
{
    if (own_tx)
        zn__sqlite_tally_clear(s);
    s->mark = s->ntally;
    memset(s->op_counter, 0, sizeof(s->op_counter));
}

int
zn__sqlite_tally(struct zn__sqlite *s, const char *queue, int state,
                 int64_t n, const char *what, struct zn_err *err)
{
    struct zn__sqlite_tally *t;
    size_t len = strlen(queue);

    /* Only the running op's entries: a failed op must not touch others. */
    for (size_t i = s->mark; i < s->ntally; i++) {
        t = &s->tally[i];
        if (t->state == state && strcmp(t->queue, queue) == 0) {
            t->n += n;
            return 0;
        }
    }
    if (len > ZN_QUEUE_NAME_MAX)
        return zn_err_set(err, ZN_EIO, "cannot %s '%s': queue name of %zu "
                          "bytes", what, s->path, len);
    if (s->ntally == s->cap_tally) {
        size_t cap = s->cap_tally ? s->cap_tally * 2 : 16;
        struct zn__sqlite_tally *grown = realloc(s->tally,
                                                 cap * sizeof(*grown));

        if (!grown)
            return zn__sqlite_nomem(s, what, err);
        s->tally = grown;
        s->cap_tally = cap;
    }
    t = &s->tally[s->ntally++];
    memcpy(t->queue, queue, len + 1);
    t->state = state;
    t->n = n;
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
zn__sqlite_tally_clear(struct zn__sqlite *s)
{
    s->ntally = 0;
    s->mark = 0;
    memset(s->counter, 0, sizeof(s->counter));
    memset(s->op_counter, 0, sizeof(s->op_counter));
}

static int
tally_cmp(const void *a, const void *b)
{
    const struct zn__sqlite_tally *x = a, *y = b;
    int c = strcmp(x->queue, y->queue);

    return c ? c : (x->state > y->state) - (x->state < y->state);
}

static int
write_queue_count(struct zn__sqlite *s, const struct zn__sqlite_tally *t,
                  int64_t n, const char *what, struct zn_err *err)
{
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_QUEUE_COUNT_ADD];

    sqlite3_bind_text(q, 1, t->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, t->state);
    sqlite3_bind_int64(q, 3, n);
    return zn__sqlite_run(s, q, what, err);
}

static int
write_counters(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    static const char *const names[ZN__SQLITE_NCOUNTER] = {
        "pushed", "processed", "failed",
    };
    sqlite3_stmt *q = s->stmt[ZN__SQLITE_COUNTER_ADD];
    int rc = 0;

    for (int i = 0; i < ZN__SQLITE_NCOUNTER && rc == 0; i++) {
        if (s->counter[i] == 0)
            continue;
        sqlite3_bind_text(q, 1, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, s->counter[i]);
        rc = zn__sqlite_run(s, q, what, err);
    }
    return rc;
}

/* Sorts the entries, then writes one row per queue and state. */
static int
write_tally(struct zn__sqlite *s, const char *what, struct zn_err *err)
{
    int rc = 0;

    if (s->ntally > 1)
        qsort(s->tally, s->ntally, sizeof(*s->tally), tally_cmp);
    for (size_t i = 0; i < s->ntally && rc == 0;) {
        int64_t n = 0;
        size_t j = i;

        for (; j < s->ntally && tally_cmp(&s->tally[i], &s->tally[j]) == 0;
             j++)
            n += s->tally[j].n;
        if (n)
            rc = write_queue_count(s, &s->tally[i], n, what, err);
        i = j;
    }
    return rc;
}

/*
 * All or nothing, in a savepoint of its own: a flush that fails (during a
 * queue_stats inside the caller's transaction, say) writes nothing and
 * keeps the changes pending.
 */
int
zn__sqlite_tally_flush(struct zn__sqlite *s, const char *what,
                       struct zn_err *err)
{
    bool counters = false;
    int rc;

    zn__sqlite_tally_keep(s);
    for (int i = 0; i < ZN__SQLITE_NCOUNTER; i++)
        counters = counters || s->counter[i] != 0;
    if (s->ntally == 0 && !counters)
        return 0;
    rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_SAVEPOINT], what, err);
    if (rc < 0)
        return rc;
    rc = write_tally(s, what, err);
    if (rc == 0)
        rc = write_counters(s, what, err);
    if (rc == 0)
        rc = zn__sqlite_run(s, s->stmt[ZN__SQLITE_RELEASE], what, err);
    if (rc == 0) {
        zn__sqlite_tally_clear(s);
        return 0;
    }
    if (!sqlite3_get_autocommit(s->db) &&
        zn__sqlite_run(s, s->stmt[ZN__SQLITE_ROLLBACK_TO], what, NULL) == 0)
        zn__sqlite_run(s, s->stmt[ZN__SQLITE_RELEASE], what, NULL);
    return rc;
}
