/*
 * sqlite_schema.c - the sqlite store's database file: the schema and its
 * migrations, opening a connection (WAL, durability, page cache), and the
 * checkpointer.
 *
 * The checkpointer is a thread with a connection of its own. SQLite's
 * automatic checkpoint runs inside the commit that crosses 1,000 WAL
 * frames: on the event loop, copying every frame into the database and
 * syncing it, which was the p99 of push latency. The writer's WAL hook
 * now wakes the thread, which runs a PASSIVE checkpoint: it never blocks
 * the writer.
 *
 * The WAL starts over from its beginning only when a write begins with
 * every frame copied, which a thread racing a stream of commits rarely
 * sees: it copies the frames up to its start while commits add more. So
 * once the thread has copied all but a few (CATCH_UP_FRAMES), the writer
 * copies the rest itself, in its WAL hook, after its commit: a few pages
 * and one sync, where SQLite's own checkpoint copied a thousand.
 *
 * On a disk whose syncs are slow the thread never gets that close: each
 * of its runs ends more than CATCH_UP_FRAMES behind, and the WAL would
 * grow for as long as the commits go on. So at WAL_MAX_FRAMES the writer
 * waits for the thread's run to end and copies the rest itself, as
 * SQLite's own checkpoint would have, once, at twice its threshold.
 *
 * Non-goals: checkpoints of read-only handles (a reader never writes) or
 * of databases in memory (no WAL).
 */
#include "compat.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/sqlite_int.h"

/* WAL frames after which a checkpoint is due: SQLite's own default. */
#define CKPT_FRAMES 1000
/* Frames left that the writer copies itself (see above). */
#define CATCH_UP_FRAMES 128
/* Frames at which the writer stops the WAL's growth (see above). */
#define WAL_MAX_FRAMES (2 * CKPT_FRAMES)

/*
 * The schema, one entry per version: migrations[i] takes a database from
 * user_version i to i + 1. All pending ones run in one transaction at
 * open (and in `zenith migrate`), so a crash leaves the old version or the
 * new, never a mix.
 *
 * To change the schema:
 *  1. Append a migration; never edit one that has shipped, databases in
 *     the field have already run it.
 *  2. Bump ZN_SCHEMA_VERSION in sqlite.h to the new number of entries (the
 *     static assertion below checks it).
 *  3. If jobs gains or loses a column, change together (they list the
 *     columns in one order): ZN__SQLITE_JOB_COLS, ZN__SQLITE_INSERT_COLS,
 *     ZN__SQLITE_INSERT_ROW and ZN__SQLITE_INSERT_NPARAM in sqlite_int.h,
 *     enum job_col and zn__sqlite_row_job in sqlite_query.c, enum
 *     insert_param and insert_bind in sqlite_push.c.
 *  4. If jobs gains a constraint an insert can break, push_valid or
 *     deferred_check in sqlite_push.c must check it: a deferred push is
 *     answered before its insert, and an insert that fails then fails the
 *     transaction, and every replay of the journal after it.
 *  5. If an index of a hot statement changes, change its INDEXED BY and
 *     test_store_sqlite_query_plans_use_indexes.
 *  6. Add a test that builds a database at the previous version, opens it
 *     with the new code and checks the data survived.
 *  7. Older binaries refuse the migrated file with ZN_ESTATE: say so in the
 *     release notes.
 */
/*
 * What the jobs table's versions share, as text: a shipped migration must
 * stay the same SQL, and these expand to exactly what it was.
 */
#define JOB_COLUMNS \
    " jid TEXT NOT NULL UNIQUE," \
    " queue TEXT NOT NULL," \
    " jobtype TEXT NOT NULL," \
    " state INTEGER NOT NULL," \
    " priority INTEGER NOT NULL," \
    " args TEXT NOT NULL," \
    " custom TEXT," \
    " tags TEXT," \
    " backoff TEXT," \
    " retry INTEGER NOT NULL," \
    " reserve_for INTEGER NOT NULL," \
    " unique_for INTEGER NOT NULL," \
    " unique_key TEXT," \
    " backtrace_lines INTEGER NOT NULL," \
    " created_at INTEGER NOT NULL," \
    " enqueued_at INTEGER NOT NULL," \
    " at INTEGER NOT NULL," \
    " next_at INTEGER NOT NULL," \
    " lease_until INTEGER NOT NULL," \
    " updated_at INTEGER NOT NULL," \
    " pushed_at INTEGER NOT NULL," \
    " attempts INTEGER NOT NULL," \
    " failures INTEGER NOT NULL," \
    " worker TEXT," \
    " errtype TEXT," \
    " message TEXT," \
    " backtrace TEXT," \
    " failed_at INTEGER NOT NULL," \
    " quarantined INTEGER NOT NULL);"
#define JOB_INDEXES_BY_TIME \
    "CREATE INDEX jobs_due ON jobs (next_at) WHERE state IN (0, 3);" \
    "CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 2;" \
    "CREATE INDEX jobs_unique ON jobs (unique_key, pushed_at)" \
    " WHERE unique_key IS NOT NULL;"
#define JOB_INDEXES_OF_ENDED \
    "CREATE INDEX jobs_dead ON jobs (updated_at) WHERE state = 4;" \
    "CREATE INDEX jobs_done ON jobs (updated_at) WHERE state = 5;"

static const char *const migrations[] = {
    /* 1: the first schema. */
    "CREATE TABLE jobs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    JOB_COLUMNS
    "CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq)"
    " WHERE state = 1;"
    JOB_INDEXES_BY_TIME
    "CREATE INDEX jobs_waiting ON jobs (queue, enqueued_at) WHERE state = 1;"
    JOB_INDEXES_OF_ENDED
    "CREATE TABLE job_tags ("
    " seq INTEGER NOT NULL,"
    " tag TEXT NOT NULL,"
    " PRIMARY KEY (seq, tag)) WITHOUT ROWID;"
    "CREATE INDEX job_tags_tag ON job_tags (tag, seq);"
    "CREATE TABLE attempts ("
    " seq INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " worker TEXT,"
    " started_at INTEGER NOT NULL,"
    " ended_at INTEGER NOT NULL,"
    " outcome TEXT,"
    " errtype TEXT,"
    " message TEXT,"
    " cpu_ms INTEGER NOT NULL,"
    " rss_kb INTEGER NOT NULL,"
    " PRIMARY KEY (seq, n)) WITHOUT ROWID;"
    "CREATE TABLE queues ("
    " name TEXT PRIMARY KEY,"
    " paused INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE queue_counts ("
    " queue TEXT NOT NULL,"
    " state INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY (queue, state)) WITHOUT ROWID;"
    "CREATE TABLE counters ("
    " name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL) WITHOUT ROWID;",
    /*
     * 2: fewer pages written per push. jobs loses AUTOINCREMENT (its
     * sqlite_sequence row was one more page per commit); jobs_ready orders
     * a priority by enqueued_at, so a retried job waits behind the jobs
     * enqueued before it (as in Faktory) and the oldest waiting job of a
     * queue is a seek per priority, which makes jobs_waiting redundant;
     * meta says whether queue_counts was left exact (sqlite_count.c).
     */
    "CREATE TABLE jobs_v2 ("
    " seq INTEGER PRIMARY KEY,"
    JOB_COLUMNS
    "INSERT INTO jobs_v2 SELECT * FROM jobs;"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_v2 RENAME TO jobs;"
    "DELETE FROM sqlite_sequence;"
    "CREATE INDEX jobs_ready ON jobs (queue, priority DESC, enqueued_at)"
    " WHERE state = 1;"
    JOB_INDEXES_BY_TIME
    JOB_INDEXES_OF_ENDED
    "CREATE TABLE meta ("
    " name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta (name, value) VALUES ('counts_exact', 1);",
};

_Static_assert(ZN_ARRAY_LEN(migrations) == ZN_SCHEMA_VERSION,
               "one migration per schema version");

const char *
zn__sqlite_migration(int version)
{
    return version >= 1 && version <= ZN_SCHEMA_VERSION
               ? migrations[version - 1]
               : NULL;
}

static int
exec_err(sqlite3 *db, const char *path, const char *what, struct zn_err *err)
{
    int code = sqlite3_errcode(db) == SQLITE_NOMEM ? ZN_ENOMEM : ZN_EIO;

    return zn_err_set(err, code, "cannot %s '%s': %s", what, path,
                      sqlite3_errmsg(db));
}

/* One integer from a statement like "PRAGMA user_version" (0: no row). */
static int
query_int(sqlite3 *db, const char *path, const char *sql, int64_t *v,
          struct zn_err *err)
{
    sqlite3_stmt *q;
    int rc;

    *v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL))
        return exec_err(db, path, "open", err);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(q, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        rc = exec_err(db, path, "open", err);
    else
        rc = 0;
    sqlite3_finalize(q);
    return rc;
}

/* Sets journal_mode=WAL; a database in memory keeps "memory". */
static int
set_wal(sqlite3 *db, const char *path, struct zn_err *err)
{
    sqlite3_stmt *q;
    const char *mode;
    int rc = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &q, NULL))
        return exec_err(db, path, "open", err);
    if (sqlite3_step(q) != SQLITE_ROW) {
        rc = exec_err(db, path, "set WAL mode on", err);
    } else {
        mode = (const char *)sqlite3_column_text(q, 0);
        if (!mode || (strcmp(mode, "wal") && strcmp(mode, "memory")))
            rc = zn_err_set(err, ZN_EIO, "cannot set WAL mode on '%s': "
                            "journal mode stays '%s'", path,
                            mode ? mode : "?");
    }
    sqlite3_finalize(q);
    return rc;
}

static int
db_open(const char *path, bool readonly, enum zn_durability durability,
        sqlite3 **out, struct zn_err *err)
{
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY
                          : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    const char *sync = durability == ZN_DURABILITY_FAST
                           ? "PRAGMA synchronous = NORMAL"
                           : "PRAGMA synchronous = FULL";
    sqlite3 *db = NULL;
    int rc;

    *out = NULL;
    /*
     * Before SQLite's first use in the process (later it is refused, and
     * harmless): no allocation statistics, which cost a mutex per malloc.
     */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (!db)
            return zn_err_set(err, ZN_ENOMEM, "cannot open '%s': out of "
                              "memory", path);
        rc = exec_err(db, path, "open", err);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 5000);
    rc = readonly ? 0 : set_wal(db, path, err);
    /*
     * 8 MiB of page cache: the pages a push, a fetch and an ACK touch (the
     * ends of the indexes) stay in; the rest is a read from the kernel's
     * cache. The statement journal of an op's savepoint stays in memory
     * up to SQLite's spill size (64 KiB) and goes to a temporary file past
     * it: a FLUSH of 100,000 jobs held 18 MiB of it in memory.
     */
    if (rc == 0 && sqlite3_exec(db, "PRAGMA cache_size = -8192", NULL, NULL,
                                NULL))
        rc = exec_err(db, path, "open", err);
    if (rc == 0 && sqlite3_exec(db, sync, NULL, NULL, NULL))
        rc = exec_err(db, path, "open", err);
    if (rc < 0) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

static int
version_newer(const char *path, int64_t v, struct zn_err *err)
{
    return zn_err_set(err, ZN_ESTATE, "cannot open '%s': its schema version "
                      "%lld is newer than this program's %d", path,
                      (long long)v, ZN_SCHEMA_VERSION);
}

/* Applies the pending migrations in one transaction. */
static int
schema_migrate(sqlite3 *db, const char *path, int *from, int *to,
               struct zn_err *err)
{
    char set[64];
    int64_t v = 0;
    int rc = 0;

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL))
        return exec_err(db, path, "migrate", err);
    rc = query_int(db, path, "PRAGMA user_version", &v, err);
    if (rc == 0 && v > ZN_SCHEMA_VERSION)
        rc = version_newer(path, v, err);
    else if (rc == 0 && v < 0)
        rc = zn_err_set(err, ZN_EIO, "cannot migrate '%s': schema version "
                        "%lld is not valid", path, (long long)v);
    for (int64_t i = v; rc == 0 && i < ZN_SCHEMA_VERSION; i++)
        if (sqlite3_exec(db, migrations[i], NULL, NULL, NULL))
            rc = exec_err(db, path, "migrate", err);
    snprintf(set, sizeof(set), "PRAGMA user_version = %d", ZN_SCHEMA_VERSION);
    if (rc == 0 && v < ZN_SCHEMA_VERSION &&
        sqlite3_exec(db, set, NULL, NULL, NULL))
        rc = exec_err(db, path, "migrate", err);
    if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL))
        rc = exec_err(db, path, "migrate", err);
    if (rc < 0) {
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    /* A new, empty database is not news; upgrading existing data is. */
    if (v > 0 && v < ZN_SCHEMA_VERSION)
        ZN_LOG(ZN_INFO, "store.migrated", ZN_STR("path", path),
               ZN_INT("from", v), ZN_INT("to", ZN_SCHEMA_VERSION));
    if (from)
        *from = (int)v;
    if (to)
        *to = ZN_SCHEMA_VERSION;
    return 0;
}

/* A read-only handle cannot migrate: the schema must be current. */
static int
schema_check(sqlite3 *db, const char *path, struct zn_err *err)
{
    int64_t v;
    int rc = query_int(db, path, "PRAGMA user_version", &v, err);

    if (rc < 0)
        return rc;
    if (v > ZN_SCHEMA_VERSION)
        return version_newer(path, v, err);
    if (v < ZN_SCHEMA_VERSION)
        return zn_err_set(err, ZN_ESTATE, "cannot open '%s' read-only: its "
                          "schema version %lld is older than %d; run zenith "
                          "migrate", path, (long long)v, ZN_SCHEMA_VERSION);
    return 0;
}


int
zn__sqlite_db_open(const char *path, const struct zn_sqlite_opts *opts,
                   sqlite3 **out, struct zn_err *err)
{
    int rc = db_open(path, opts->readonly, opts->durability, out, err);

    if (rc == 0)
        rc = opts->readonly ? schema_check(*out, path, err)
                            : schema_migrate(*out, path, NULL, NULL, err);
    if (rc < 0 && *out) {
        sqlite3_close(*out);
        *out = NULL;
    }
    return rc;
}

/* The store's threads. */

int
zn__sqlite_thread_start(struct zn__sqlite_thread *t, void *(*run)(void *),
                        void *arg)
{
    int rc = pthread_mutex_init(&t->mu, NULL);

    if (rc)
        return rc;
    rc = pthread_cond_init(&t->cv, NULL);
    if (rc)
        goto no_cv;
    rc = pthread_cond_init(&t->idle, NULL);
    if (rc)
        goto no_idle;
    t->stop = false;
    rc = pthread_create(&t->thread, NULL, run, arg);
    if (rc == 0)
        return 0;
    pthread_cond_destroy(&t->idle);
no_idle:
    pthread_cond_destroy(&t->cv);
no_cv:
    pthread_mutex_destroy(&t->mu);
    return rc;
}

void
zn__sqlite_thread_stop(struct zn__sqlite_thread *t)
{
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->idle);
    pthread_mutex_destroy(&t->mu);
}

/* The checkpointer. */

struct zn__sqlite_ckpt {
    struct zn__sqlite_thread t;
    bool due;      /* the writer crossed CKPT_FRAMES since the last run */
    bool busy;     /* the thread is in a checkpoint */
    int64_t runs;  /* checkpoints done, by the thread or the writer */
    int backfilled; /* frames the last checkpoint had copied, 0: none */
    int last_frames; /* the WAL's frames at the writer's last commit */
    sqlite3 *db;   /* the thread's own connection */
    char *path;
};

static void *
ckpt_main(void *arg)
{
    struct zn__sqlite_ckpt *k = arg;
    int log_frames, done_frames, rc;

    pthread_mutex_lock(&k->t.mu);
    for (;;) {
        while (!k->due && !k->t.stop)
            pthread_cond_wait(&k->t.cv, &k->t.mu);
        if (k->t.stop)
            break;
        k->due = false;
        k->busy = true;
        pthread_mutex_unlock(&k->t.mu);
        rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       &log_frames, &done_frames);
        /* BUSY: another checkpoint runs; the next commit asks again. */
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            ZN_LOG(ZN_ERROR, "store.checkpoint_failed",
                   ZN_STR("path", k->path),
                   ZN_STR("error", sqlite3_errmsg(k->db)));
        pthread_mutex_lock(&k->t.mu);
        k->busy = false;
        k->runs++;
        if (rc == SQLITE_OK)
            k->backfilled = done_frames;
        pthread_cond_broadcast(&k->t.idle);
    }
    pthread_mutex_unlock(&k->t.mu);
    return NULL;
}

/*
 * On the writer's thread, after each commit, frames being the WAL's size:
 * wakes the checkpointer, or copies the last frames itself: a few when the
 * thread is close behind, all of them when the WAL is at its bound.
 */
static int
wal_hook_cb(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct zn__sqlite_ckpt *k = arg;
    int done = 0;
    bool near, full, catch_up;

    pthread_mutex_lock(&k->t.mu);
    if (frames < k->last_frames)
        k->backfilled = 0; /* the WAL started over */
    k->last_frames = frames;
    near = k->backfilled > 0 && frames - k->backfilled <= CATCH_UP_FRAMES;
    full = frames >= WAL_MAX_FRAMES;
    while (full && k->busy)
        pthread_cond_wait(&k->t.idle, &k->t.mu);
    catch_up = frames >= CKPT_FRAMES && (near || full) && !k->busy;
    if (catch_up)
        k->due = false; /* the thread must not start under the writer */
    else if (frames >= CKPT_FRAMES && !near && !k->due) {
        k->due = true;
        pthread_cond_signal(&k->t.cv);
    }
    pthread_mutex_unlock(&k->t.mu);
    if (!catch_up)
        return SQLITE_OK;
    /* BUSY: another process's checkpoint runs; the next commit retries. */
    if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  &done) != SQLITE_OK)
        return SQLITE_OK;
    pthread_mutex_lock(&k->t.mu);
    k->runs++;
    k->backfilled = done;
    pthread_mutex_unlock(&k->t.mu);
    return SQLITE_OK;
}

int
zn__sqlite_ckpt_start(struct zn__sqlite *s, enum zn_durability durability,
                      struct zn_err *err)
{
    struct zn__sqlite_ckpt *k = calloc(1, sizeof(*k));
    int rc;

    if (!k)
        return zn__sqlite_nomem(s, "start the checkpointer of", err);
    k->path = s->path;
    rc = db_open(s->path, false, durability, &k->db, err);
    if (rc == 0 && sqlite3_exec(k->db, "PRAGMA cache_size = -1024", NULL,
                                NULL, NULL))
        rc = exec_err(k->db, s->path, "start the checkpointer of", err);
    if (rc == 0 && zn__sqlite_thread_start(&k->t, ckpt_main, k))
        rc = zn_err_set(err, ZN_ENOMEM, "cannot start the checkpointer of "
                        "'%s': no thread", s->path);
    if (rc < 0) {
        sqlite3_close(k->db);
        free(k);
        return rc;
    }
    s->ckpt = k;
    sqlite3_wal_hook(s->db, wal_hook_cb, k);
    return 0;
}

void
zn__sqlite_ckpt_stop(struct zn__sqlite *s)
{
    struct zn__sqlite_ckpt *k = s->ckpt;

    if (!k)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    zn__sqlite_thread_stop(&k->t);
    sqlite3_close(k->db);
    free(k);
    s->ckpt = NULL;
}

int64_t
zn_store_sqlite_checkpoints(struct zn_store *st)
{
    struct zn__sqlite_ckpt *k;
    int64_t n;

    if (!st || st->ops != &zn__sqlite_ops || !zn__sqlite_of(st)->ckpt)
        return -1;
    k = zn__sqlite_of(st)->ckpt;
    pthread_mutex_lock(&k->t.mu);
    n = k->runs;
    pthread_mutex_unlock(&k->t.mu);
    return n;
}

int
zn_store_sqlite_migrate(const char *path, int *from, int *to,
                        struct zn_err *err)
{
    sqlite3 *db;
    int rc = db_open(path, false, ZN_DURABILITY_FULL, &db, err);

    if (rc < 0)
        return rc;
    rc = schema_migrate(db, path, from, to, err);
    sqlite3_close(db);
    return rc;
}


