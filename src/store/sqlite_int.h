/*
 * sqlite_int.h - what the files of the sqlite store share: the handle
 * with its prepared statements, and the error and transaction helpers
 * (sqlite.c); the row readers and the filtered queries (sqlite_query.c);
 * the counts (sqlite_count.c), the schema and checkpointer
 * (sqlite_schema.c), pushes and their replay (sqlite_push.c), the push
 * journal (sqlite_journal.c) and the fetches served from memory
 * with the reader ahead (sqlite_ready.c). Only src/store/sqlite*.c (and the
 * store's own tests) include it.
 */
#ifndef ZN_STORE_SQLITE_INT_H
#define ZN_STORE_SQLITE_INT_H

#include "compat.h"

#include <pthread.h>
#include <stdbool.h>

#include <sqlite3.h>

#include "store/sqlite.h"

/* The columns of a job as read back, in the order of enum job_col. */
#define ZN__SQLITE_JOB_COLS                                                 \
    "seq, jid, queue, jobtype, state, priority, args, custom, tags, "       \
    "backoff, retry, reserve_for, unique_for, backtrace_lines, "            \
    "created_at, enqueued_at, at, next_at, lease_until, updated_at, "       \
    "attempts, failures, worker, errtype, message, backtrace, "             \
    "failed_at, quarantined"

/*
 * The insert of a job: its columns, then one row of parameters; a group
 * of rows numbers them on, ZN__SQLITE_INSERT_NPARAM a row (sqlite_push.c).
 * The deferred pushes' insert, whose jids were checked, is OR FAIL: it
 * needs no statement journal, which a statement of many rows that may
 * abort does, and which costs a copy of every page the statement changes
 * (past 64 KiB, in a temporary file).
 */
#define ZN__SQLITE_INSERT_INTO "INSERT INTO jobs " ZN__SQLITE_INSERT_COLS
#define ZN__SQLITE_INSERT_OR_FAIL                                           \
    "INSERT OR FAIL INTO jobs " ZN__SQLITE_INSERT_COLS
#define ZN__SQLITE_INSERT_COLS                                              \
    "(jid, queue, jobtype, state, priority, args, custom, "                 \
    "tags, backoff, retry, reserve_for, unique_for, unique_key, "           \
    "backtrace_lines, created_at, enqueued_at, at, next_at, lease_until, "  \
    "updated_at, pushed_at, attempts, failures, worker, errtype, message, " \
    "backtrace, failed_at, quarantined) VALUES "
#define ZN__SQLITE_INSERT_ROW                                               \
    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "   \
    "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)"
#define ZN__SQLITE_INSERT_NPARAM 29

/* The most jobs one insert statement writes (sqlite_push.c). */
#define ZN__SQLITE_GROUP_MAX 16

/* The most pushes answered before their insert (sqlite_push.c). */
#define ZN__SQLITE_DEFERRED_MAX (4 * ZN__SQLITE_GROUP_MAX)

/*
 * The statements prepared once at open (their SQL is in sqlite.c, the
 * insert's above).
 */
enum zn__sqlite_stmt {
    ZN__SQLITE_BEGIN, ZN__SQLITE_COMMIT, ZN__SQLITE_ROLLBACK,
    ZN__SQLITE_SAVEPOINT, ZN__SQLITE_RELEASE, ZN__SQLITE_ROLLBACK_TO,
    ZN__SQLITE_UNIQUE, ZN__SQLITE_INSERT, ZN__SQLITE_TAG,
    ZN__SQLITE_COUNTER_ADD, ZN__SQLITE_GET, ZN__SQLITE_SEQ_OF,
    ZN__SQLITE_SEQ_MAX,
    ZN__SQLITE_FETCH, ZN__SQLITE_FETCH_AFTER, ZN__SQLITE_FETCH_BELOW,
    ZN__SQLITE_TAKE, ZN__SQLITE_TAKE_DONE,
    ZN__SQLITE_ATTEMPT_ADD,
    ZN__SQLITE_WORKING, ZN__SQLITE_FINISH_OK, ZN__SQLITE_FINISH_FAIL,
    ZN__SQLITE_ATTEMPT_END, ZN__SQLITE_EXTEND,
    ZN__SQLITE_EXPIRED, ZN__SQLITE_PROMOTE, ZN__SQLITE_NEXT_DUE,
    ZN__SQLITE_ATTEMPTS, ZN__SQLITE_COUNTERS, ZN__SQLITE_SET_PAUSED,
    ZN__SQLITE_PAUSED, ZN__SQLITE_DATA_VERSION, ZN__SQLITE_QUEUE_COUNTS,
    ZN__SQLITE_QUEUE_COUNT_ADD, ZN__SQLITE_OLDEST, ZN__SQLITE_DUE,
    ZN__SQLITE_META_SET, ZN__SQLITE_NSTMT
};

/* The rows of the counters table, in memory. */
enum zn__sqlite_counter {
    ZN__SQLITE_PUSHED, ZN__SQLITE_PROCESSED, ZN__SQLITE_FAILED,
    ZN__SQLITE_NCOUNTER
};

/* A change to the number of jobs of a queue in a state, not yet written. */
struct zn__sqlite_tally {
    char queue[ZN_QUEUE_NAME_MAX + 1];
    int state;
    int64_t n;
};

/* The next ready jobs of one queue, in fetch order (sqlite_ready.c). */
struct zn__sqlite_ready {
    char queue[ZN_QUEUE_NAME_MAX + 1];
    struct zn_job **jobs; /* jobs[head..n) are still to hand out */
    size_t head, n;
    bool all;             /* no ready job of the queue is outside it */
};

/* A job handed out whose row is not written yet (sqlite_ready.c). */
struct zn__sqlite_held {
    int64_t seq;
    char jid[ZN_JID_MAX + 1];
    char queue[ZN_QUEUE_NAME_MAX + 1];
    char *worker;
    int attempts;          /* the job's, this attempt's number */
    int64_t started_at;
    int64_t lease_until;
    bool acked;            /* then the attempt ended at ended_at */
    int64_t ended_at;
    int64_t cpu_ms;
    int64_t rss_kb;
};

/*
 * A job's row and what it needs besides the job (sqlite_push.c): its tags
 * as JSON (malloc'd, or NULL), its unique key (or NULL) and the push's
 * time. A deferred row owns its job, a copy.
 */
struct zn__sqlite_row {
    struct zn_job *job;
    char *tags;
    const char *key;
    int64_t now;
};

struct zn__sqlite {
    struct zn_store base; /* first: a zn_store * is a zn__sqlite * */
    sqlite3 *db;
    char *path;
    bool readonly;
    sqlite3_stmt *stmt[ZN__SQLITE_NSTMT];
    /*
     * Names of the paused queues, so a fetch costs no query per queue.
     * Valid while paused_ok; dropped by set_paused, flush and rollbacks on
     * this handle, and when data_version shows another connection wrote.
     */
    char **paused;
    size_t npaused;
    bool paused_ok;
    int64_t data_version;
    bool version_read;    /* data_version was read in the open transaction */
    /*
     * Changes to queue_counts and counters kept in memory, written at most
     * once a second (sqlite_count.c says which set is which).
     */
    struct zn__sqlite_tally *tally, *pend;
    size_t ntally, cap_tally, mark, npend, cap_pend;
    int64_t counter[ZN__SQLITE_NCOUNTER];
    int64_t op_counter[ZN__SQLITE_NCOUNTER];
    int64_t pend_counter[ZN__SQLITE_NCOUNTER];
    bool pend_in_tx;
    bool counting;      /* a writer whose counts_open succeeded */
    int64_t written_ms; /* monotonic time of the last write */
    struct zn__sqlite_ckpt *ckpt; /* the checkpointer of a writer, or NULL */
    struct zn__sqlite_journal *journal; /* a writer's push journal, or NULL */
    /*
     * Durability full with a journal: a commit syncs only when sync_due
     * (the transaction holds an administrative change) or the journal has
     * grown past its restart size; see zn__sqlite_commit.
     */
    bool lazy_sync;
    bool sync_due;
    bool sync_failed; /* an fsync failed: none is believed until reopen */
    /* Fetches served from memory (sqlite_ready.c). */
    struct zn__sqlite_ready *ready;
    size_t nready;
    size_t ready_bytes; /* payload of the jobs in ready */
    struct zn__sqlite_held *held;
    size_t nheld, cap_held;
    struct zn__sqlite_ahead *ahead; /* a writer's reader ahead, or NULL */
    /*
     * Inserts of 1..ZN__SQLITE_GROUP_MAX jobs, prepared when first used:
     * [0] of a batch (one job: stmt's), [1] of deferred pushes.
     */
    sqlite3_stmt *group[2][ZN__SQLITE_GROUP_MAX + 1];
    /* Pushes answered before their insert, in order (sqlite_push.c). */
    struct zn__sqlite_row deferred[ZN__SQLITE_DEFERRED_MAX];
    size_t ndeferred;
};

/*
 * How an op made itself atomic: its own transaction, a savepoint, or
 * (inside the caller's transaction) the one statement it writes with.
 */
enum zn__sqlite_tx { ZN__SQLITE_TX_OWN, ZN__SQLITE_TX_NESTED,
                     ZN__SQLITE_TX_STMT };

extern const struct zn_store_ops zn__sqlite_ops;

static inline struct zn__sqlite *
zn__sqlite_of(struct zn_store *st)
{
    return (struct zn__sqlite *)st;
}

/* Records SQLite's last error as "cannot <what> '<path>': <message>". */
int zn__sqlite_err(struct zn__sqlite *s, const char *what,
                   struct zn_err *err);

/* ZN_ENOMEM as "cannot <what> '<path>': out of memory". */
int zn__sqlite_nomem(struct zn__sqlite *s, const char *what,
                     struct zn_err *err);

/*
 * Steps st once: returns SQLITE_ROW or SQLITE_DONE, or a ZN_E* code with
 * err set and st reset.
 */
int zn__sqlite_step(struct zn__sqlite *s, sqlite3_stmt *st, const char *what,
                    struct zn_err *err);

/* Runs st to its first row or its end, then resets it: 0 or ZN_E*. */
int zn__sqlite_run(struct zn__sqlite *s, sqlite3_stmt *st, const char *what,
                   struct zn_err *err);

/* ZN_ESTATE when the handle is read-only. */
int zn__sqlite_writable(struct zn__sqlite *s, const char *what,
                        struct zn_err *err);

/*
 * Makes one op atomic: its own transaction in autocommit mode, else a
 * savepoint in the caller's. tx_close keeps the work when rc is 0 and
 * undoes it otherwise; it returns the op's outcome.
 */
int zn__sqlite_tx_open(struct zn__sqlite *s, enum zn__sqlite_tx *tx,
                       const char *what, struct zn_err *err);
int zn__sqlite_tx_close(struct zn__sqlite *s, enum zn__sqlite_tx tx, int rc,
                        const char *what, struct zn_err *err);

/*
 * zn__sqlite_tx_open for an op that writes with one statement and can
 * fail after it only in what tx_close undoes in memory: inside the
 * caller's transaction the statement is atomic by itself, and the
 * savepoint is left out. The op may then add one tally, which cannot fail
 * (room for it is made here); nothing else may fail after the statement.
 */
int zn__sqlite_tx_open_one(struct zn__sqlite *s, enum zn__sqlite_tx *tx,
                           const char *what, struct zn_err *err);

/* One integer of table meta into *v (0 when the row is missing). */
int zn__sqlite_meta_get(struct zn__sqlite *s, const char *name, int64_t *v,
                        struct zn_err *err);

/* Sets one integer of table meta (in the open transaction, if any). */
int zn__sqlite_meta_set(struct zn__sqlite *s, const char *name, int64_t v,
                        const char *what, struct zn_err *err);

/* The seq of the job jid, or ZN_ENOTFOUND. */
int zn__sqlite_seq_of(struct zn__sqlite *s, const char *jid, int64_t *seq,
                      struct zn_err *err);

/* sqlite_schema.c */

/*
 * Opens a connection to path (WAL, durability, page cache) and brings its
 * schema to ZN_SCHEMA_VERSION, or checks it is there when read-only.
 */
int zn__sqlite_db_open(const char *path, const struct zn_sqlite_opts *opts,
                       sqlite3 **out, struct zn_err *err);

/*
 * A thread of the store (the checkpointer, the reader ahead) and what it
 * waits on, under mu: cv wakes it, idle tells that a run ended, stop
 * that it must end. start runs run(arg) in it: 0 or an errno value. stop
 * sets stop, signals cv, joins the thread and frees what start made.
 */
struct zn__sqlite_thread {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t idle;
    bool stop;
};

int zn__sqlite_thread_start(struct zn__sqlite_thread *t,
                            void *(*run)(void *), void *arg);
void zn__sqlite_thread_stop(struct zn__sqlite_thread *t);

/*
 * Starts the checkpointer thread of a writer, with its own connection;
 * stop joins it (no-op when none runs). See sqlite_schema.c.
 */
int zn__sqlite_ckpt_start(struct zn__sqlite *s, enum zn_durability durability,
                          struct zn_err *err);
void zn__sqlite_ckpt_stop(struct zn__sqlite *s);

/*
 * The SQL that takes a database from schema version - 1 to version, NULL
 * outside 1..ZN_SCHEMA_VERSION: tests build old databases with it.
 */
const char *zn__sqlite_migration(int version);

/* sqlite_journal.c: the push journal (see there). */

struct zn__sqlite_journal;

/* The parameter number of a job's tag in a record (the insert's are 1..). */
#define ZN__SQLITE_JOURNAL_TAG 0

/* The type of a value in a record. */
enum zn__sqlite_jtype { ZN__SQLITE_JNULL, ZN__SQLITE_JINT, ZN__SQLITE_JTEXT };

/* One value of a record, as replay hands it out. */
struct zn__sqlite_journal_value {
    int param;        /* the insert's parameter, or ZN__SQLITE_JOURNAL_TAG */
    int type;         /* enum zn__sqlite_jtype */
    int64_t i;
    const char *text; /* len bytes, not NUL-terminated */
    uint32_t len;
};

/*
 * Opens (creates) "<db_path>-push" for the database whose journal id is
 * id; records are of epoch from now on.
 */
int zn__sqlite_journal_open(const char *db_path, uint64_t id, int64_t epoch,
                            bool sync, struct zn__sqlite_journal **out,
                            struct zn_err *err);
void zn__sqlite_journal_close(struct zn__sqlite_journal *j);

/*
 * Builds one record in memory: begin, the values, end. Past the buffer's
 * cap, or when memory runs out, the next write fails with ZN_ESTATE, so
 * those pushes are committed instead. These and undo do nothing when j is
 * NULL (a push that commits at once has no record).
 */
void zn__sqlite_journal_begin(struct zn__sqlite_journal *j);
void zn__sqlite_journal_int(struct zn__sqlite_journal *j, int param,
                            int64_t v);
void zn__sqlite_journal_text(struct zn__sqlite_journal *j, int param,
                             const char *v);
void zn__sqlite_journal_end(struct zn__sqlite_journal *j);

/*
 * Records built since mark are dropped by undo (a push that failed): a
 * mark is where the records end, and whether any came since the commit
 * (j may be NULL: no journal, nothing to mark).
 */
struct zn__sqlite_journal_mark {
    size_t len;
    bool dirty;
};
struct zn__sqlite_journal_mark
zn__sqlite_journal_mark(const struct zn__sqlite_journal *j);
void zn__sqlite_journal_undo(struct zn__sqlite_journal *j,
                             struct zn__sqlite_journal_mark mark);

/*
 * Appends the records built, then fdatasync when durability is full.
 * ZN_ESTATE: they cannot be journaled (see above); ZN_EIO.
 */
int zn__sqlite_journal_write(struct zn__sqlite_journal *j,
                             struct zn_err *err);

/* Records since the last commit: the commit moves the epoch on. */
bool zn__sqlite_journal_dirty(const struct zn__sqlite_journal *j);
int64_t zn__sqlite_journal_epoch(const struct zn__sqlite_journal *j);

/*
 * The commit that moved the epoch on is done; restart: it was synced, so
 * the journal is written again from its start.
 */
void zn__sqlite_journal_committed(struct zn__sqlite_journal *j,
                                  bool restart);

/* The journal has grown enough that the next commit should sync. */
bool zn__sqlite_journal_restart_due(const struct zn__sqlite_journal *j);

/* Records built and not written: their pushes wait for the commit. */
bool zn__sqlite_journal_unwritten(const struct zn__sqlite_journal *j);

/*
 * Empties the file (zeros, then fdatasync): after open's replay was
 * committed and synced, nothing in it is owed, and a power cut may have
 * left records of later epochs than the stored one in it.
 */
int zn__sqlite_journal_reset(struct zn__sqlite_journal *j,
                             struct zn_err *err);

/*
 * The transaction rolled back: records not written yet go (their pushes
 * get the error); the written ones are owed until a replay.
 */
void zn__sqlite_journal_rolled_back(struct zn__sqlite_journal *j);

/* Written records the database lacks: replay them before anything else. */
bool zn__sqlite_journal_owed(const struct zn__sqlite_journal *j);

/*
 * Hands each record of the current epoch in the file to fn (values and
 * their number), in order; *records says how many. fn's error stops it.
 */
int zn__sqlite_journal_replay(
    struct zn__sqlite_journal *j,
    int (*fn)(void *ctx, const struct zn__sqlite_journal_value *v, size_t n),
    void *ctx, size_t *records, struct zn_err *err);

/* sqlite_ready.c: fetches served from memory (see there). */

/* Read-ahead buffers kept at once: FETCH may name any queue. */
#define ZN__SQLITE_READY_QUEUES 256

/*
 * Hands out the next ready job of queue, leased to wid: *out (the
 * caller's), or NULL when the queue has none. The lease is held in memory
 * until zn__sqlite_settle. A buffer read first settles the held jobs:
 * that settle's error, or one of the read (ZN_EIO for a bad row first in
 * line, ZN_ENOMEM), is returned. With ahead (in the caller's transaction)
 * the reader ahead may be given the buffer's next read.
 */
int zn__sqlite_ready_fetch(struct zn__sqlite *s, const char *queue,
                           const char *wid, int64_t now, bool ahead,
                           struct zn_job **out, struct zn_err *err);

/*
 * Ends the attempt of a held job as o says, when o is its first ACK (an
 * outcome of "ok" or none, no error): *acked. Else, when jid is held, the
 * held jobs are settled for the finish to find its row (the settle's
 * error is returned). A jid not held joins the reader ahead, which may
 * have it (that join's error). ZN_ESTATE when o->worker is set and
 * another worker holds the lease.
 */
int zn__sqlite_held_ack(struct zn__sqlite *s, const char *jid, int64_t now,
                        const struct zn_store_outcome *o, bool *acked,
                        struct zn_err *err);

/* ZN_ESTATE: the lease of job jid passed to another worker. */
int zn__sqlite_lease_elsewhere(const char *jid, struct zn_err *err);

/* zn__sqlite_writable, then zn__sqlite_settle: what a write op starts with. */
int zn__sqlite_write_begin(struct zn__sqlite *s, const char *what,
                           struct zn_err *err);

/*
 * Inserts the deferred pushes and writes the held jobs (in an op of its
 * own: never inside another op's savepoint). On failure in the caller's
 * transaction the held jobs stay held, and the next settle (the
 * commit's, at the latest) tries again; the caller rolls back a commit
 * that fails. In an op's own transaction they are forgotten: their rows
 * say ready still.
 */
int zn__sqlite_settle(struct zn__sqlite *s, struct zn_err *err);

/*
 * The reader ahead of a writer (sqlite_ready.c): a thread that borrows the
 * connection inside the caller's transaction to write the ACKed held jobs
 * and read a buffer's next jobs while the loop hands out the ones it has.
 * While it is busy, every use of the connection but the fetches and first
 * ACKs served from memory joins it first, which waits for its end:
 * zn__sqlite_settle does, and push, begin, commit, rollback, finish,
 * explain and close. The join fails (ZN_EIO, ZN_ENOMEM) only when the
 * transaction the thread ran in rolled back by itself; a write that failed
 * leaves its jobs held for the next settle. start fails when no thread
 * can be had; stop joins and ends it (no-op when none runs).
 */
int zn__sqlite_ahead_start(struct zn__sqlite *s, struct zn_err *err);
int zn__sqlite_ahead_join(struct zn__sqlite *s, struct zn_err *err);
void zn__sqlite_ahead_stop(struct zn__sqlite *s);

/* True while the reader ahead has the connection (it is busy). */
bool zn__sqlite_ahead_busy(const struct zn__sqlite *s);

/* The tasks the reader ahead ran (-1: none runs), for tests. */
int64_t zn__sqlite_ahead_runs(struct zn__sqlite *s);

/* True on the reader ahead's thread. */
bool zn__sqlite_ahead_is_self(const struct zn__sqlite *s);

/* Pushes (sqlite_push.c): the op, and the journal's replay. */
int zn__sqlite_push(struct zn_store *st, struct zn_job *const *jobs,
                    size_t n, int64_t now, struct zn_err *errs);

/*
 * Inserts the jobs the journal holds and the database lacks: in a
 * transaction of its own (at open), or in the caller's (see sq_begin).
 */
int zn__sqlite_replay(struct zn__sqlite *s, struct zn_err *err);

/*
 * Inserts the deferred pushes, in the caller's transaction: settle does,
 * and every other op that reads or inserts jobs calls it or settle first
 * (sqlite_push.c says why). On failure the ones not inserted stay
 * deferred and the next call tries again, so a commit cannot pass them
 * by; a failure that ends the transaction discards them, and the journal
 * owes them.
 */
int zn__sqlite_deferred_insert(struct zn__sqlite *s, struct zn_err *err);

/* The transaction rolled back: the deferred pushes wait for the replay. */
void zn__sqlite_deferred_discard(struct zn__sqlite *s);

/* The transaction rolled back: the held jobs are ready again. */
void zn__sqlite_held_discard(struct zn__sqlite *s);

/*
 * job was pushed ready (as its row reads back): it joins the buffer of its
 * queue when that holds every ready job; a buffer it would come before is
 * dropped.
 */
void zn__sqlite_ready_pushed(struct zn__sqlite *s,
                             const struct zn_job *job);

/* Jobs became ready or went: every buffer is dropped. */
void zn__sqlite_ready_drop(struct zn__sqlite *s);

/* At close: frees the buffers and what is held. */
void zn__sqlite_ready_close(struct zn__sqlite *s);

/* sqlite_count.c */

/* Starts an op's changes; own_tx: no transaction was open, none pend. */
void zn__sqlite_tally_begin(struct zn__sqlite *s, bool own_tx);

/* Counts n more (n < 0: fewer) jobs of queue in state. ZN_ENOMEM. */
int zn__sqlite_tally(struct zn__sqlite *s, const char *queue, int state,
                     int64_t n, const char *what, struct zn_err *err);

/* Room for one more tally, so that the next zn__sqlite_tally succeeds. */
int zn__sqlite_tally_room(struct zn__sqlite *s, const char *what,
                          struct zn_err *err);

/* The running op succeeded: its changes join the transaction's. */
void zn__sqlite_tally_keep(struct zn__sqlite *s);

/* The running op failed: its changes are forgotten. */
void zn__sqlite_tally_drop(struct zn__sqlite *s);

/* The transaction rolled back: its changes go, committed ones stay. */
void zn__sqlite_tally_abort(struct zn__sqlite *s);

/* A flush emptied both tables in the open transaction: all changes void. */
void zn__sqlite_tally_void(struct zn__sqlite *s);


/*
 * The changes not in the tables yet, for readers of this handle: fn gets
 * each (queue, state, n), entries of one pair possibly twice; counter
 * gets the counters' (added to what it holds).
 */
void zn__sqlite_pending_each(const struct zn__sqlite *s,
                             void (*fn)(void *ctx, const char *queue,
                                        int state, int64_t n),
                             void *ctx);
void zn__sqlite_pending_counters(const struct zn__sqlite *s,
                                 int64_t counter[ZN__SQLITE_NCOUNTER]);

/*
 * Commits the open transaction, with the pending changes when force, when
 * they were last written a second ago, or when memory runs short. On
 * failure the caller rolls back.
 */
int zn__sqlite_commit(struct zn__sqlite *s, bool force, const char *what,
                      struct zn_err *err);

/*
 * At the open of a writer: rebuilds queue_counts if the last writer did
 * not close cleanly, then marks the counts inexact until counts_close.
 */
int zn__sqlite_counts_open(struct zn__sqlite *s, struct zn_err *err);

/* At close: writes what is pending and marks the counts exact; logs. */
void zn__sqlite_counts_close(struct zn__sqlite *s);

/* sqlite_query.c */

/* Builds a job from a row whose columns are ZN__SQLITE_JOB_COLS. */
int zn__sqlite_row_job(struct zn__sqlite *s, sqlite3_stmt *st,
                       struct zn_job **out, struct zn_err *err);

/*
 * Steps st and appends up to max jobs to out; *more tells whether a row
 * was left. out is released on failure. st is reset.
 */
int zn__sqlite_read_jobs(struct zn__sqlite *s, sqlite3_stmt *st, size_t max,
                         struct zn_store_list *out, bool *more,
                         struct zn_err *err);

/* The ops of sqlite_query.c, for the table in sqlite.c. */
int zn__sqlite_list(struct zn_store *st, const struct zn_store_query *q,
                    struct zn_store_list *out, struct zn_err *err);
int zn__sqlite_count(struct zn_store *st, const struct zn_store_query *q,
                     int64_t *n, struct zn_err *err);
int zn__sqlite_retry_dead(struct zn_store *st,
                          const struct zn_store_query *q, int64_t now,
                          int64_t *n, struct zn_err *err);
int zn__sqlite_remove(struct zn_store *st, const struct zn_store_query *q,
                      int64_t *n, struct zn_err *err);
int zn__sqlite_queue_stats(struct zn_store *st, struct zn_queue_stats **out,
                           size_t *n, struct zn_err *err);
int zn__sqlite_attempts(struct zn_store *st, const char *jid,
                        struct zn_attempt **out, size_t *n,
                        struct zn_err *err);
int zn__sqlite_counters(struct zn_store *st, struct zn_store_counters *out,
                        struct zn_err *err);

#endif
