/*
 * test_store_sqlite.c - the sqlite back end's own tests, beyond the
 * conformance suite (test_store.c, test_store_query.c) that it also runs:
 * migrations and schema versions, query plans of the hot statements, rows
 * damaged on disk, changes made by another connection, and the reader
 * ahead. To damage a database on purpose these tests open it with sqlite3
 * directly. The helpers of store_fx.h serve here too.
 */
#include "compat.h"

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/log.h"
#include "store/sqlite.h"
#include "store/sqlite_int.h"
#include "store_fx.h"
#include "support/files.h"

/* Fixture: a directory of its own; each test opens what it needs. */

struct fx {
    char dir[PATH_MAX];
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    zn_test_tmpdir(f->dir, sizeof(f->dir), "zn_test_store_sqlite");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* An ACK, as a worker sends it. */
static const struct zn_store_outcome ack_ok = {
    .next = ZN_STATE_DONE, .outcome = "ok", .cpu_ms = -1, .rss_kb = -1};

static void
push_prio(struct zn_store *st, const char *jid, const char *queue,
          int priority, int64_t now)
{
    struct zn_job *j = zn_job_new();
    struct zn_err e = {0};

    assert_non_null(j);
    snprintf(j->jid, sizeof(j->jid), "%s", jid);
    snprintf(j->queue, sizeof(j->queue), "%s", queue);
    j->priority = priority;
    j->jobtype = strdup("work");
    j->args = strdup("[]");
    j->retry = 3;
    j->reserve_for = 300;
    j->created_at = now;
    assert_int_equal(st->ops->push(st, &j, 1, now, &e), 0);
    assert_int_equal(e.code, 0);
    zn_job_free(j);
}

static void
push_ok(struct zn_store *st, const char *jid, const char *queue,
        int64_t now)
{
    push_prio(st, jid, queue, 5, now);
}

static struct zn_store *
sqlite_open_in(struct fx *f, char *path, size_t size)
{
    struct zn_sqlite_opts opts = {ZN_DURABILITY_FAST, false};
    struct zn_store *st = NULL;
    struct zn_err err = {0};

    zn_test_db_path(f->dir, path, size);
    OK(zn_store_sqlite_open(path, &opts, &st, &err));
    return st;
}

static void
test_store_sqlite_migrate_reports_versions(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    char path[PATH_MAX];
    int from = -1, to = -1;

    zn_test_db_path(f->dir, path, sizeof(path));
    OK(zn_store_sqlite_migrate(path, &from, &to, &err));
    assert_int_equal(from, 0);
    assert_int_equal(to, ZN_SCHEMA_VERSION);
    OK(zn_store_sqlite_migrate(path, &from, &to, &err));
    assert_int_equal(from, ZN_SCHEMA_VERSION);
    assert_int_equal(to, ZN_SCHEMA_VERSION);
}

static void
test_store_sqlite_open_runs_migrations(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    char path[PATH_MAX];
    int from = -1, to = -1;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    OK(zn_store_sqlite_migrate(path, &from, &to, &err));
    assert_int_equal(from, ZN_SCHEMA_VERSION);
    assert_int_equal(to, ZN_SCHEMA_VERSION);
}

/* One integer from the database at path, read with sqlite3 directly. */
static int64_t
sqlite_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int64_t v;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static int64_t
stat_of(struct zn_store *st, const char *queue, enum zn_job_state state)
{
    struct zn_queue_stats *v = NULL;
    struct zn_err err = {0};
    int64_t n = 0;
    size_t nv = 0;

    OK(st->ops->queue_stats(st, &v, &nv, &err));
    for (size_t i = 0; i < nv; i++)
        if (strcmp(v[i].name, queue) == 0)
            n = v[i].count[state];
    free(v);
    return n;
}

/* A database of schema 1, the first release's, with one job waiting. */
static void
test_store_sqlite_v1_data_survives(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    struct zn_store *st = NULL;
    struct zn_job *g = NULL;
    char path[PATH_MAX], sql[1024];

    zn_test_db_path(f->dir, path, sizeof(path));
    zn_test_sqlite_exec(path, zn__sqlite_migration(1));
    snprintf(sql, sizeof(sql),
             "INSERT INTO jobs (seq, jid, queue, jobtype, state, priority,"
             " args, retry, reserve_for, unique_for, backtrace_lines,"
             " created_at, enqueued_at, at, next_at, lease_until,"
             " updated_at, pushed_at, attempts, failures, failed_at,"
             " quarantined) VALUES (7, 'old', 'q', 'work', 1, 5, '[1]', 3,"
             " 300, 0, 0, %lld, %lld, 0, 0, 0, %lld, %lld, 0, 0, 0, 0);"
             " INSERT INTO queue_counts VALUES ('q', 1, 1);"
             " PRAGMA user_version = 1;",
             (long long)T0, (long long)T0, (long long)T0, (long long)T0);
    zn_test_sqlite_exec(path, sql);

    OK(zn_store_sqlite_open(path, NULL, &st, &err));
    assert_int_equal(sqlite_int(path, "PRAGMA user_version"),
                     ZN_SCHEMA_VERSION);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM sqlite_master"
                                      " WHERE name = 'jobs_waiting'"), 0);
    OK(st->ops->get(st, "old", &g, &err));
    assert_int_equal(g->seq, 7);
    assert_string_equal(g->args, "[1]");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    zn_job_free(g);
    push_ok(st, "new", "q", T0 + 1);
    OK(st->ops->get(st, "new", &g, &err));
    assert_int_equal(g->seq, 8);
    zn_job_free(g);
    assert_int_equal(stat_of(st, "q", ZN_STATE_ENQUEUED), 2);
    zn_sfx_fetch_expect(st, "q", "old", T0 + 2);
    zn_sfx_fetch_expect(st, "q", "new", T0 + 2);
    zn_store_close(st);
}

/* A job jid in queue q, tagged tag unless NULL; NULL: out of memory. */
static struct zn_job *
child_job(const char *jid, const char *tag)
{
    struct zn_job *p = zn_job_new();

    if (!p)
        return NULL;
    snprintf(p->jid, sizeof(p->jid), "%s", jid);
    snprintf(p->queue, sizeof(p->queue), "q");
    p->jobtype = strdup("work");
    p->args = strdup("[]");
    p->retry = 3;
    p->reserve_for = 300;
    if (tag) {
        p->tags = calloc(1, sizeof(*p->tags));
        if (p->tags && (p->tags[0] = strdup(tag)))
            p->ntags = 1;
    }
    return p;
}

/* Pushes p and frees it: the store's error, or the refusal's code. */
static int
child_push_job(struct zn_store *st, struct zn_job *p)
{
    struct zn_err err = {0};
    int rc;

    if (!p)
        return ZN_ENOMEM;
    rc = st->ops->push(st, &p, 1, T0, &err);
    zn_job_free(p);
    return rc < 0 ? rc : err.code;
}

/* A job (with a tag, or none) pushed by a child: no cmocka there. */
static int
child_push(struct zn_store *st, const char *jid, const char *tag)
{
    return child_push_job(st, child_job(jid, tag));
}

/*
 * A push whose insert comes at once, not deferred to a later op: a job
 * with unique_for, which must see the jobs pushed before it.
 */
static int
child_push_at_once(struct zn_store *st, const char *jid)
{
    struct zn_job *p = child_job(jid, NULL);

    if (p)
        p->unique_for = 60;
    return child_push_job(st, p);
}

/* One push of the batch PREFIX0..PREFIX<n-1>, each tagged "t-" jid. */
static int
child_push_batch(struct zn_store *st, const char *spec)
{
    struct zn_job *jobs[64] = {NULL};
    struct zn_err errs[64];
    char prefix[16], jid[32], tag[40];
    int n = 0, rc = 0;

    if (sscanf(spec, "%15s %d", prefix, &n) != 2 || n < 1 || n > 64)
        return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        snprintf(jid, sizeof(jid), "%s%d", prefix, i);
        snprintf(tag, sizeof(tag), "t-%s", jid);
        jobs[i] = child_job(jid, tag);
        if (!jobs[i])
            rc = ZN_ENOMEM;
    }
    if (rc == 0)
        rc = st->ops->push(st, jobs, (size_t)n, T0, errs);
    for (int i = 0; i < n; i++) {
        if (rc == 0 && jobs[i] && errs[i].code)
            rc = errs[i].code;
        zn_job_free(jobs[i]);
    }
    return rc;
}

/*
 * Counts wait in memory for up to a second; a writer that dies before
 * writing them leaves queue_counts behind the jobs, and the next open
 * rebuilds it from the jobs.
 */
static void
test_store_sqlite_counts_rebuilt_after_crash(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    struct zn_store *st = NULL;
    char path[PATH_MAX];
    int status;
    pid_t pid;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No cmocka here: any failure is the exit status. */
        int rc = zn_store_sqlite_open(path, NULL, &st, &err);
        const char *queues[] = {"q"};
        struct zn_job *j = NULL;

        for (int i = 0; i < 3 && rc == 0; i++) {
            char jid[8];

            snprintf(jid, sizeof(jid), "j%d", i);
            rc = child_push(st, jid, NULL);
        }
        if (rc == 0)
            rc = st->ops->fetch(st, queues, 1, "w1", T0, &j, &err);
        /* The crash: no close, so the counts were never written. */
        _exit(rc == 0 && j ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 3);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM queue_counts"
                                      " WHERE n <> 0"), 0);
    assert_int_equal(sqlite_int(path, "SELECT value FROM meta"
                                      " WHERE name = 'counts_exact'"), 0);

    OK(zn_store_sqlite_open(path, NULL, &st, &err));
    assert_int_equal(stat_of(st, "q", ZN_STATE_ENQUEUED), 2);
    assert_int_equal(stat_of(st, "q", ZN_STATE_WORKING), 1);
    zn_store_close(st);
    /* A clean close leaves them exact: the next open trusts them. */
    assert_int_equal(sqlite_int(path, "SELECT value FROM meta"
                                      " WHERE name = 'counts_exact'"), 1);
    assert_int_equal(sqlite_int(path, "SELECT sum(n) FROM queue_counts"), 3);
}

/*
 * The checkpointer keeps the WAL from growing without end, and the writer
 * holds it under 2,000 frames even when the thread falls behind (slow
 * syncs): a push is some 3 frames, a commit's worth past the bound.
 */
static void
test_store_sqlite_checkpointer_bounds_wal(void **state)
{
    struct fx *f = *state;
    struct zn_sqlite_opts ro = {ZN_DURABILITY_FAST, true};
    struct zn_store *st, *reader = NULL;
    struct zn_err err = {0};
    char path[PATH_MAX], wal[PATH_MAX + 8], jid[32];
    struct stat sb;
    int64_t runs = 0;

    st = sqlite_open_in(f, path, sizeof(path));
    snprintf(wal, sizeof(wal), "%s-wal", path);
    OK(zn_store_sqlite_open(path, &ro, &reader, &err));
    assert_int_equal(zn_store_sqlite_checkpoints(reader), -1);
    zn_store_close(reader);
    for (int round = 0; round < 2; round++) {
        /* One commit each: some 3 frames a push. */
        for (int i = 0; i < 2500; i++) {
            snprintf(jid, sizeof(jid), "j%d-%d", round, i);
            push_ok(st, jid, "q", T0);
        }
        for (int i = 0; i < 500 && runs <= round; i++) {
            runs = zn_store_sqlite_checkpoints(st);
            usleep(10 * 1000);
        }
        assert_true(runs > round);
    }
    /* Without checkpoints 5,000 commits leave 15,000 frames or more. */
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size <= 32 + 2010 * (4096 + 24));
    assert_int_equal(zn_sfx_count_of(st, 0), 5000);
    zn_store_close(st);
}

/* The push journal beside the database at path (sqlite_journal.c). */
static void
journal_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s-push", path);
}

/*
 * Offsets in a journal record's header: u32 len, u32 version, i64 epoch,
 * u64 sum (sqlite_journal.c).
 */
#define REC_VERSION 4
#define REC_SUM 16

/*
 * Runs the steps of script in a child on the store at path, then the
 * child dies without closing it, as under kill -9:
 *   + JID   push JID (tag "t-JID")      S  sync (the journal)
 *   * JID   push JID (no tag)           ! JID  push JID, which must fail
 *   B       begin                       C  commit
 *   - JID   remove JID                  G P N  push P0..P<N-1> at once
 */
static void
crash_after(const char *path, enum zn_durability durability,
            const char *const *script)
{
    struct zn_sqlite_opts opts = {durability, false};
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        struct zn_store *st = NULL;
        struct zn_err err = {0};
        int rc = zn_store_sqlite_open(path, &opts, &st, &err);

        for (int i = 0; script[i] && rc == 0; i++) {
            const char *a = script[i] + 2;
            char tag[64];
            int64_t n;

            switch (script[i][0]) {
            case '+':
                snprintf(tag, sizeof(tag), "t-%s", a);
                rc = child_push(st, a, tag);
                break;
            case '*': rc = child_push(st, a, NULL); break;
            case 'G': rc = child_push_batch(st, a); break;
            case '!': rc = child_push_at_once(st, a) < 0 ? 0 : -1; break;
            case '-': {
                struct zn_store_query q = {.jid = a};

                rc = st->ops->remove(st, &q, &n, &err);
                break;
            }
            case 'B': rc = st->ops->begin(st, &err); break;
            case 'C': rc = st->ops->commit(st, &err); break;
            case 'S': rc = st->ops->sync(st, &err); break;
            default: rc = -1;
            }
        }
        _exit(rc == 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int64_t
jid_count(const char *path, const char *jid)
{
    char sql[200];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE jid = '%s'",
             jid);
    return sqlite_int(path, sql);
}

/*
 * A push synced to the journal survives a crash before its commit, with
 * its tags, counts and counter; one not synced was never answered and is
 * gone. A committed epoch is not replayed again.
 */
static void
test_store_sqlite_journal_replays_synced_pushes(void **state)
{
    static const char *const script[] = {
        "B", "+ j0", "+ j1", "S", "C",
        "B", "+ j2", "+ j3", "S", "+ j4", NULL,
    };
    struct fx *f = *state;
    struct zn_store_counters c;
    struct zn_err err = {0};
    struct zn_store *st;
    char path[PATH_MAX];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FULL, script);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 2);

    st = sqlite_open_in(f, path, sizeof(path));
    zn_store_close(st);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 4);
    for (int i = 0; i < 4; i++) {
        char jid[8];

        snprintf(jid, sizeof(jid), "j%d", i);
        assert_int_equal(jid_count(path, jid), 1);
    }
    assert_int_equal(jid_count(path, "j4"), 0);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM job_tags"
                                      " WHERE tag IN ('t-j2', 't-j3')"), 2);
    /* Opened again: nothing is replayed twice. */
    st = sqlite_open_in(f, path, sizeof(path));
    assert_int_equal(zn_sfx_count_of(st, 0), 4);
    assert_int_equal(stat_of(st, "q", ZN_STATE_ENQUEUED), 4);
    /*
     * The counter of the committed pushes went with the crash (counters
     * are written once a second); the replayed ones count.
     */
    OK(st->ops->counters(st, &c, &err));
    assert_true(c.pushed >= 2);
    zn_sfx_fetch_expect(st, "q", "j0", T0);
    zn_store_close(st);
}

/*
 * A batch goes in by groups of rows: replayed, each job has its own row
 * again and its tag points at it.
 */
static void
test_store_sqlite_journal_replays_a_batch(void **state)
{
    static const char *const script[] = {"B", "G g 37", "S", NULL};
    struct fx *f = *state;
    char path[PATH_MAX];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FULL, script);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 0);
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 37);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM job_tags t"
                                      " JOIN jobs j ON j.seq = t.seq"
                                      " WHERE t.tag = 't-' || j.jid"), 37);
}

/*
 * With durability full a commit is written but synced only now and then:
 * the journal keeps the pushes of the commits since, and replays those a
 * power cut took back (here: the last commit, undone by hand).
 */
static void
test_store_sqlite_journal_covers_unsynced_commits(void **state)
{
    static const char *const script[] = {
        "B", "+ j0", "S", "C", "B", "+ j1", "S", "C", "B", "+ j2", "S", NULL,
    };
    struct fx *f = *state;
    char path[PATH_MAX];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FULL, script);
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 2);
    zn_test_sqlite_exec(path, "DELETE FROM job_tags WHERE tag = 't-j1';"
                      " DELETE FROM jobs WHERE jid = 'j1';"
                      " UPDATE meta SET value = value - 1"
                      " WHERE name = 'journal_epoch'");
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 3);
    assert_int_equal(jid_count(path, "j0"), 1);
    assert_int_equal(jid_count(path, "j1"), 1);
    assert_int_equal(jid_count(path, "j2"), 1);
}

/*
 * A flush inside the engine's transaction of more jobs than its savepoint
 * journal keeps in memory: the journal spills to a temp file, and the
 * flush still goes through.
 */
static void
test_store_sqlite_big_flush_in_a_transaction(void **state)
{
    enum { BATCH = 1000, BATCHES = 60 };
    struct fx *f = *state;
    struct zn_job *jobs[BATCH];
    struct zn_err errs[BATCH];
    struct zn_err err = {0};
    struct zn_store *st;
    char path[PATH_MAX], jid[32];

    st = sqlite_open_in(f, path, sizeof(path));
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            snprintf(jid, sizeof(jid), "big-%d-%d", b, i);
            jobs[i] = child_job(jid, NULL);
            assert_non_null(jobs[i]);
        }
        OK(st->ops->begin(st, &err));
        OK(st->ops->push(st, jobs, BATCH, T0, errs));
        OK(st->ops->commit(st, &err));
        for (int i = 0; i < BATCH; i++) {
            assert_int_equal(errs[i].code, 0);
            zn_job_free(jobs[i]);
        }
    }
    assert_int_equal(zn_sfx_count_of(st, 0), BATCH * BATCHES);
    OK(st->ops->begin(st, &err));
    OK(st->ops->flush(st, &err));
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, 0), 0);
    zn_store_close(st);
}

/*
 * A push whose one INSERT fails inside the transaction (a trigger refuses
 * it) takes nothing with it: the pushes around it stay, with their
 * counts, and the journal has no record of it. (Its job has unique_for,
 * so it is inserted at once: a deferred insert fails later, see
 * test_store_deferred_insert_failure_keeps_the_push.)
 */
static void
test_store_sqlite_failed_push_leaves_the_rest(void **state)
{
    static const char *const script[] = {
        "B", "* a", "! bad", "* b", "S", NULL,
    };
    struct fx *f = *state;
    struct zn_store *st;
    struct zn_err err = {0};
    char path[PATH_MAX];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    zn_test_sqlite_poison(path, "jobs", "NEW.jid LIKE 'bad%'");
    crash_after(path, ZN_DURABILITY_FULL, script);
    st = sqlite_open_in(f, path, sizeof(path));
    assert_int_equal(zn_sfx_count_of(st, 0), 2);
    OK(st->ops->begin(st, &err));
    push_ok(st, "c", "q", T0);
    assert_int_equal(child_push_at_once(st, "bad2"), ZN_EIO);
    push_ok(st, "d", "q", T0);
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, 0), 4);
    assert_int_equal(stat_of(st, "q", ZN_STATE_ENQUEUED), 4);
    zn_sfx_fetch_expect(st, "q", "a", T0 + 1);
    zn_sfx_fetch_expect(st, "q", "b", T0 + 2);
    zn_sfx_fetch_expect(st, "q", "c", T0 + 3);
    zn_sfx_fetch_expect(st, "q", "d", T0 + 4);
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 5);
    zn_store_close(st);
    assert_int_equal(jid_count(path, "bad"), 0);
}

/*
 * A push that rolls the whole transaction back (inserted at once), after
 * pushes before it were synced (answered): those are owed to the table,
 * and an op that commits on its own before the next transaction must not
 * disown them.
 */
static void
test_store_sqlite_rollback_keeps_synced_pushes(void **state)
{
    struct fx *f = *state;
    struct zn_store *st;
    struct zn_err err = {0};
    char path[PATH_MAX];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    zn_test_sqlite_exec(path, "CREATE TRIGGER doom BEFORE INSERT ON jobs"
                        " WHEN NEW.jid = 'doom' BEGIN"
                        " SELECT RAISE(ROLLBACK, 'doom'); END");
    st = sqlite_open_in(f, path, sizeof(path));
    push_ok(st, "x", "q", T0);
    OK(st->ops->begin(st, &err));
    push_ok(st, "a", "q", T0 + 1);
    OK(st->ops->sync(st, &err));
    assert_int_equal(child_push_at_once(st, "doom"), ZN_EIO);
    /* The caller has not rolled back yet: this commits on its own. */
    zn_sfx_fetch_expect(st, "q", "x", T0 + 2);
    zn_store_close(st);
    st = sqlite_open_in(f, path, sizeof(path));
    assert_int_equal(jid_count(path, "a"), 1);
    assert_int_equal(zn_sfx_count_of(st, 0), 2);
    zn_store_close(st);
}

/*
 * Once open has replayed and synced what the journal held, the file is
 * emptied: a power cut can leave records of epochs the database never
 * reached, which must not meet the records written after them.
 */
static void
test_store_sqlite_journal_emptied_after_replay(void **state)
{
    static const char *const script[] = {"B", "+ j0", "+ j1", "S", NULL};
    struct fx *f = *state;
    char path[PATH_MAX], journal[PATH_MAX + 8], head[64];
    size_t n;
    FILE *fp;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FULL, script);
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 2);
    journal_of(path, journal, sizeof(journal));
    fp = fopen(journal, "rb");
    assert_non_null(fp);
    n = fread(head, 1, sizeof(head), fp);
    fclose(fp);
    /* Empty (fast) or zeros (full): no record. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(head[i], 0);
}

/* A job removed in a committed transaction stays removed. */
static void
test_store_sqlite_journal_keeps_committed_removals(void **state)
{
    static const char *const script[] = {
        "B", "+ j0", "S", "C", "B", "- j0", "C", "B", "+ j1", "S", NULL,
    };
    struct fx *f = *state;
    char path[PATH_MAX];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FAST, script);
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(jid_count(path, "j0"), 0);
    assert_int_equal(jid_count(path, "j1"), 1);
}

/* A record cut short by the crash ends the journal: the ones before stay. */
static void
test_store_sqlite_journal_torn_record(void **state)
{
    static const char *const script[] = {
        "B", "+ j0", "+ j1", "S", NULL,
    };
    struct fx *f = *state;
    char path[PATH_MAX], journal[PATH_MAX + 8];
    struct stat sb;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FAST, script);
    journal_of(path, journal, sizeof(journal));
    assert_int_equal(stat(journal, &sb), 0);
    assert_int_equal(truncate(journal, sb.st_size - 5), 0);
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(jid_count(path, "j0"), 1);
    assert_int_equal(jid_count(path, "j1"), 0);
}

/*
 * Pushes journaled in another format, not stored yet, stop the open with
 * a message that says what to do; nothing is dropped without a word.
 */
static void
test_store_sqlite_journal_of_another_version(void **state)
{
    static const char *const script[] = {"B", "+ j0", "+ j1", "S", NULL};
    static const char *const script2[] = {"B", "+ j2", "S", NULL};
    struct zn_sqlite_opts opts = {ZN_DURABILITY_FULL, false};
    uint64_t zero = 0;
    struct fx *f = *state;
    struct zn_store *st = NULL;
    struct zn_err err = {0};
    char path[PATH_MAX], journal[PATH_MAX + 8];
    uint32_t version, other = 2;
    int fd;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FULL, script);
    journal_of(path, journal, sizeof(journal));
    fd = open(journal, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &version, 4, REC_VERSION), 4);
    assert_int_equal(pwrite(fd, &other, 4, REC_VERSION), 4);
    assert_int_equal(zn_store_sqlite_open(path, &opts, &st, &err),
                     ZN_ESTATE);
    assert_null(st);
    assert_non_null(strstr(err.msg, "in format 2, this zenith reads "
                                    "format 1"));
    assert_non_null(strstr(err.msg, "remove the file"));
    /* The file is as it was: the zenith of its format could still read it. */
    assert_int_equal(sqlite_int(path, "SELECT count(*) FROM jobs"), 0);
    assert_int_equal(pwrite(fd, &version, 4, REC_VERSION), 4);
    close(fd);
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(jid_count(path, "j0"), 1);
    assert_int_equal(jid_count(path, "j1"), 1);

    /* Whose sum does not match this database: not its pushes, no refusal. */
    crash_after(path, ZN_DURABILITY_FULL, script2);
    fd = open(journal, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &other, 4, REC_VERSION), 4);
    assert_int_equal(pwrite(fd, &zero, 8, REC_SUM), 8);
    close(fd);
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(jid_count(path, "j2"), 0);
}

/* A journal left beside a new database file has nothing for it. */
static void
test_store_sqlite_journal_of_another_database(void **state)
{
    static const char *const script[] = {"B", "+ j0", "S", NULL};
    struct fx *f = *state;
    char path[PATH_MAX], other[PATH_MAX + 8];

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    crash_after(path, ZN_DURABILITY_FAST, script);
    /* The database goes (a restore, a mistake); its journal stays. */
    for (int i = 0; i < 3; i++) {
        static const char *const ext[] = {"", "-wal", "-shm"};

        snprintf(other, sizeof(other), "%s%s", path, ext[i]);
        unlink(other);
    }
    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    assert_int_equal(jid_count(path, "j0"), 0);
}

static void
test_store_sqlite_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    struct zn_sqlite_opts ro = {ZN_DURABILITY_FULL, true};
    struct zn_store *st = NULL;
    struct zn_err err = {0};
    char path[PATH_MAX], sql[64];
    int from, to;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
             ZN_SCHEMA_VERSION + 1);
    zn_test_sqlite_exec(path, sql);
    assert_int_equal(zn_store_sqlite_open(path, NULL, &st, &err),
                     ZN_ESTATE);
    assert_null(st);
    assert_non_null(strstr(err.msg, "newer"));
    assert_int_equal(zn_store_sqlite_open(path, &ro, &st, &err), ZN_ESTATE);
    assert_int_equal(zn_store_sqlite_migrate(path, &from, &to, &err),
                     ZN_ESTATE);
}

static void
test_store_sqlite_readonly_needs_current_schema(void **state)
{
    struct fx *f = *state;
    struct zn_sqlite_opts ro = {ZN_DURABILITY_FULL, true};
    struct zn_store *st = NULL;
    struct zn_err err = {0};
    char path[PATH_MAX];

    zn_test_db_path(f->dir, path, sizeof(path));
    zn_test_sqlite_exec(path, "PRAGMA user_version = 0");
    assert_int_equal(zn_store_sqlite_open(path, &ro, &st, &err), ZN_ESTATE);
    assert_non_null(strstr(err.msg, "zenith migrate"));
}

/* Checks that op's plan searches index and never scans nor sorts. */
static void
expect_index_plan(struct zn_store *st, const char *op, const char *index)
{
    struct zn_err err = {0};
    char *plan = NULL;

    OK(zn_store_sqlite_explain(st, op, &plan, &err));
    print_message("%s:\n%s", op, plan);
    assert_non_null(strstr(plan, index));
    for (const char *line = plan; *line; line = strchr(line, '\n') + 1) {
        /* A scan of a table is refused; one of a VALUES list is bounded. */
        bool values = strstr(line, "CONSTANT ROWS") != NULL;

        if ((strncmp(line, "SCAN", 4) == 0 && !values) ||
            strstr(line, "TEMP B-TREE"))
            fail_msg("%s: plan has '%.*s'", op,
                     (int)(strchr(line, '\n') - line), line);
    }
    free(plan);
}

static void
test_store_sqlite_query_plans_use_indexes(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    char path[PATH_MAX];
    char *plan = NULL;
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));

    expect_index_plan(st, "fetch", "USING INDEX jobs_ready (queue=?)");
    expect_index_plan(st, "fetch_after", "USING INDEX jobs_ready (queue=? "
                      "AND priority=? AND enqueued_at>?)");
    expect_index_plan(st, "fetch_below",
                      "USING INDEX jobs_ready (queue=? AND priority<?)");
    expect_index_plan(st, "take", "USING INTEGER PRIMARY KEY (rowid=?)");
    expect_index_plan(st, "promote", "USING INDEX jobs_due (next_at<?)");
    expect_index_plan(st, "expired", "USING INDEX jobs_lease (lease_until<?)");
    expect_index_plan(st, "get", "(jid=?)");
    expect_index_plan(st, "finish", "(jid=?)");
    expect_index_plan(st, "oldest",
                      "jobs_ready (queue=? AND priority=?)");
    expect_index_plan(st, "unique",
                      "jobs_unique (unique_key=? AND pushed_at>?)");
    assert_int_equal(zn_store_sqlite_explain(st, "nope", &plan, &err),
                     ZN_EINVAL);
    zn_store_close(st);
}

static void
test_store_sqlite_damaged_row_is_eio(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *job = NULL;
    char path[PATH_MAX];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));
    size_t n;

    push_ok(st, "bad", "q", T0);
    zn_test_sqlite_exec(path, "UPDATE jobs SET state = 42 WHERE jid = 'bad'");
    assert_int_equal(st->ops->get(st, "bad", &job, &err), ZN_EIO);
    assert_null(job);
    assert_non_null(strstr(err.msg, "column 'state' is out of range"));

    zn_test_sqlite_exec(path, "UPDATE jobs SET state = 1, tags = '{oops'");
    assert_int_equal(st->ops->get(st, "bad", &job, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "column 'tags'"));
    /* A fetch that cannot read the row fails and keeps the job. */
    assert_int_equal(st->ops->fetch(st, (const char *const[]){"q"}, 1, "w",
                                    T0, &job, &err), ZN_EIO);
    assert_null(job);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), 1);

    zn_test_sqlite_exec(path, "UPDATE jobs SET tags = NULL, backoff = 'x,y'");
    assert_int_equal(st->ops->get(st, "bad", &job, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "column 'backoff'"));

    zn_test_sqlite_exec(path, "UPDATE jobs SET backoff = NULL");
    zn_sfx_fetch_expect(st, "q", "bad", T0);
    zn_test_sqlite_exec(path, "UPDATE attempts SET worker = NULL");
    assert_int_equal(st->ops->attempts(st, "bad", &a, &n, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "column 'worker' is NULL"));
    zn_store_close(st);
}

static void
test_store_sqlite_pause_seen_across_handles(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    char path[PATH_MAX];
    struct zn_store *a = sqlite_open_in(f, path, sizeof(path));
    struct zn_store *b = sqlite_open_in(f, path, sizeof(path));

    push_ok(a, "x", "q", T0);
    push_ok(a, "y", "q", T0);
    zn_sfx_fetch_expect(a, "q", "x", T0);
    OK(b->ops->set_paused(b, "q", true, &err));
    zn_sfx_fetch_expect(a, "q", NULL, T0);
    OK(b->ops->set_paused(b, "q", false, &err));
    zn_sfx_fetch_expect(a, "q", "y", T0);
    zn_store_close(b);
    zn_store_close(a);
}

/* Jobs read ahead by one handle follow what another one commits. */
static void
test_store_sqlite_ready_jobs_follow_other_handles(void **state)
{
    struct fx *f = *state;
    struct zn_store_query q = {.jid = "y"};
    struct zn_err err = {0};
    char path[PATH_MAX];
    struct zn_store *a = sqlite_open_in(f, path, sizeof(path));
    struct zn_store *b = sqlite_open_in(f, path, sizeof(path));
    int64_t n = 0;

    push_ok(a, "x", "q", T0);
    push_ok(a, "y", "q", T0);
    push_ok(a, "z", "q", T0);
    zn_sfx_fetch_expect(a, "q", "x", T0);
    OK(b->ops->remove(b, &q, &n, &err));
    assert_int_equal(n, 1);
    zn_sfx_fetch_expect(a, "q", "z", T0);
    zn_sfx_fetch_expect(a, "q", NULL, T0);
    push_ok(b, "w", "q", T0 + 1);
    zn_sfx_fetch_expect(a, "q", "w", T0 + 2);
    zn_sfx_fetch_expect(a, "q", NULL, T0 + 3);
    zn_store_close(b);
    zn_store_close(a);
}

/* A FETCH may name any queue: what is read ahead for them is bounded. */
static void
test_store_sqlite_ready_queues_bounded(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    char path[PATH_MAX], queue[16];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));

    push_ok(st, "a", "q7", T0);
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < 1000; i++) {
        snprintf(queue, sizeof(queue), "q%d", i);
        zn_sfx_fetch_expect(st, queue, i == 7 ? "a" : NULL, T0);
        assert_true(zn__sqlite_of(st)->nready <= ZN__SQLITE_READY_QUEUES);
    }
    push_ok(st, "b", "q7", T0 + 1);
    zn_sfx_fetch_expect(st, "q7", "b", T0 + 2);
    OK(st->ops->commit(st, &err));
    zn_store_close(st);
}

static int
fetch_rc(struct zn_store *st, const char *wid, int64_t now)
{
    struct zn_job *job = NULL;
    struct zn_err err = {0};
    int rc = st->ops->fetch(st, (const char *const[]){"q"}, 1, wid, now,
                            &job, &err);

    zn_job_free(job);
    return rc;
}

/*
 * Leases that cannot be written (here a trigger refuses one attempt row)
 * fail the transaction: no lease or ACK of it is lost while it goes on,
 * no job is handed out twice, and its rollback leaves the jobs ready.
 */
static void
test_store_sqlite_unwritable_leases_fail_the_transaction(void **state)
{
    struct fx *f = *state;
    struct zn_store_counters c;
    struct zn_err err = {0};
    struct zn_job *job = NULL;
    char path[PATH_MAX];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));

    push_ok(st, "a", "q", T0);
    push_ok(st, "b", "q", T0);
    push_ok(st, "c", "q", T0);
    zn_test_sqlite_poison(path, "attempts", "NEW.worker = 'bad'");
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q", "a", T0 + 1);
    OK(st->ops->finish(st, "a", T0 + 2, &ack_ok, &err));
    assert_int_equal(fetch_rc(st, "bad", T0 + 3), 0);
    assert_int_equal(st->ops->get(st, "c", &job, &err), ZN_EIO);
    assert_int_equal(fetch_rc(st, "w2", T0 + 4), ZN_EIO);
    assert_int_equal(st->ops->commit(st, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    st->ops->rollback(st);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), 3);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 0);

    /* Outside a transaction the fetch alone fails; the job stays ready. */
    assert_int_equal(fetch_rc(st, "bad", T0 + 5), ZN_EIO);
    zn_sfx_fetch_expect(st, "q", "a", T0 + 6);
    zn_sfx_fetch_expect(st, "q", "b", T0 + 7);
    zn_sfx_fetch_expect(st, "q", "c", T0 + 8);
    zn_store_close(st);
}

/* A lease that cannot even begin to be written leaves its job ready. */
static void
test_store_sqlite_locked_lease_keeps_the_job(void **state)
{
    struct fx *f = *state;
    char path[PATH_MAX];
    struct zn_store *a = sqlite_open_in(f, path, sizeof(path));
    sqlite3 *db = NULL;

    push_ok(a, "x", "q", T0);
    push_ok(a, "y", "q", T0);
    push_ok(a, "z", "q", T0);
    zn_sfx_fetch_expect(a, "q", "x", T0);
    sqlite3_busy_timeout(zn__sqlite_of(a)->db, 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(fetch_rc(a, "w1", T0 + 1), ZN_EIO);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    zn_sfx_fetch_expect(a, "q", "y", T0 + 2);
    zn_sfx_fetch_expect(a, "q", "z", T0 + 3);
    zn_sfx_fetch_expect(a, "q", NULL, T0 + 4);
    zn_store_close(a);
}

/* A damaged row fails the fetch that reaches it, not those before it. */
static void
test_store_sqlite_damaged_row_after_good_ones(void **state)
{
    struct fx *f = *state;
    char path[PATH_MAX];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));

    push_ok(st, "x", "q", T0);
    push_ok(st, "y", "q", T0);
    push_ok(st, "z", "q", T0);
    zn_test_sqlite_exec(path, "UPDATE jobs SET attempts = -5 WHERE jid = 'z'");
    zn_sfx_fetch_expect(st, "q", "x", T0);
    zn_sfx_fetch_expect(st, "q", "y", T0);
    assert_int_equal(fetch_rc(st, "w1", T0), ZN_EIO);
    assert_int_equal(fetch_rc(st, "w1", T0), ZN_EIO);
    zn_store_close(st);
}

/* What the model of the next test knows of a job. */
struct ahead_job {
    char jid[24];
    int priority;
    int64_t enqueued_at;
    bool taken;
};

/* Pushes job n of the model, and into st. */
static void
ahead_push(struct zn_store *st, struct ahead_job *m, size_t n, int priority,
           int64_t now)
{
    snprintf(m[n].jid, sizeof(m[n].jid), "j%zu", n);
    m[n].priority = priority;
    m[n].enqueued_at = now;
    m[n].taken = false;
    push_prio(st, m[n].jid, "q", priority, now);
}

/* The job of the model a fetch must hand out next: jobs_ready's order. */
static struct ahead_job *
ahead_next(struct ahead_job *m, size_t n)
{
    struct ahead_job *best = NULL;

    for (size_t i = 0; i < n; i++) /* push order is seq order */
        if (!m[i].taken &&
            (!best || m[i].priority > best->priority ||
             (m[i].priority == best->priority &&
              m[i].enqueued_at < best->enqueued_at)))
            best = &m[i];
    return best;
}

/*
 * In a transaction the reader ahead writes the ACKed jobs and reads a
 * buffer's next ones while the buffer is handed out. Jobs of three
 * priorities, many pushed in one millisecond and some pushed during the
 * drain, come out one each in fetch order (the model says which job is
 * next) and end as their ACK or lease left them.
 */
static void
test_store_sqlite_read_ahead_keeps_fetch_order(void **state)
{
    enum { FIRST = 300, MAX = 400 };
    struct fx *f = *state;
    const char *queues[] = {"q"};
    static struct ahead_job m[MAX];
    struct zn_store_counters c;
    struct zn_err err = {0};
    char path[PATH_MAX];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));
    struct ahead_job *want;
    int64_t now = T0 + 10, acked = 0, leased = 0;
    size_t n = 0;

    for (; n < FIRST; n++)
        ahead_push(st, m, n, n < 120 ? 5 : n < 240 ? 9 : 1,
                   n < 200 ? T0 : T0 + 1);
    OK(st->ops->begin(st, &err));
    while ((want = ahead_next(m, n))) {
        struct zn_job *job = NULL;

        /*
         * Now and then two more: one behind the priority 5 jobs, one
         * before the priority 1 jobs still there.
         */
        if (++now % 23 == 0 && n + 2 <= MAX) {
            ahead_push(st, m, n, 5, now);
            ahead_push(st, m, n + 1, 3, now);
            n += 2;
            want = ahead_next(m, n);
        }
        OK(st->ops->fetch(st, queues, 1, "w1", now, &job, &err));
        assert_non_null(job);
        assert_string_equal(job->jid, want->jid);
        want->taken = true;
        if (now % 9 == 0) {
            leased++;
        } else {
            OK(st->ops->finish(st, job->jid, now, &ack_ok, &err));
            acked++;
        }
        zn_job_free(job);
    }
    assert_true(n > FIRST);
    assert_true(zn__sqlite_ahead_runs(zn__sqlite_of(st)) > 4);
    zn_sfx_fetch_expect(st, "q", NULL, now);
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_DONE)),
                     acked);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)),
                     leased);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), 0);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, acked);
    zn_store_close(st);
}

/*
 * A held job is not handed out again by a read ahead that meets it: a
 * buffer emptied and refilled by pushes of a higher priority ends before
 * it, so the read after the buffer's last job finds its row, still ready.
 */
static void
test_store_sqlite_read_ahead_skips_held_jobs(void **state)
{
    struct fx *f = *state;
    const char *queues[] = {"q"};
    struct zn_err err = {0};
    char path[PATH_MAX], jid[16];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));
    struct zn_job *job = NULL;
    int i;

    push_ok(st, "held", "q", T0);
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q", "held", T0 + 1);
    for (i = 0; i < 100; i++) {
        snprintf(jid, sizeof(jid), "p%d", i);
        push_prio(st, jid, "q", 9, T0 + 2);
    }
    for (i = 0; i < 100; i++) {
        snprintf(jid, sizeof(jid), "p%d", i);
        OK(st->ops->fetch(st, queues, 1, "w2", T0 + 3, &job, &err));
        assert_non_null(job);
        assert_string_equal(job->jid, jid);
        zn_job_free(job);
    }
    assert_true(zn__sqlite_ahead_runs(zn__sqlite_of(st)) > 0);
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 4);
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)), 101);
    zn_store_close(st);
}

/* Pushes n jobs j0... to queue q, each on its own. */
static void
push_many(struct zn_store *st, int n)
{
    char jid[16];

    for (int i = 0; i < n; i++) {
        snprintf(jid, sizeof(jid), "j%d", i);
        push_ok(st, jid, "q", T0);
    }
}

/*
 * Fetches and ACKs the jobs of queue q, the one of fetch number bad as
 * worker "bad", until an op fails (its code, err set) or n are done (0).
 * *done (unless NULL): the fetches made.
 */
static int
drain_until_error(struct zn_store *st, int n, int bad, int *done,
                  struct zn_err *err)
{
    const char *queues[] = {"q"};
    int rc = 0, i;

    for (i = 0; i < n && rc == 0; i++) {
        struct zn_job *job = NULL;

        rc = st->ops->fetch(st, queues, 1, i == bad ? "bad" : "w1", T0 + i,
                            &job, err);
        if (rc == 0) {
            assert_non_null(job);
            rc = st->ops->finish(st, job->jid, T0 + i, &ack_ok, err);
        }
        zn_job_free(job);
    }
    if (done)
        *done = i;
    return rc;
}

/*
 * A write of the reader ahead that fails leaves its jobs held: a finish
 * of one of them settles and fails, an op that needs none of them (a
 * push) succeeds, and the commit fails. Rolled back, every job is ready
 * again.
 */
static void
test_store_sqlite_read_ahead_write_fails_the_transaction(void **state)
{
    struct fx *f = *state;
    struct zn_store_counters c;
    struct zn_err err = {0};
    char path[PATH_MAX];
    struct zn_store *st = sqlite_open_in(f, path, sizeof(path));

    push_many(st, 200);
    zn_test_sqlite_poison(path, "attempts", "NEW.worker = 'bad'");
    OK(st->ops->begin(st, &err));
    /* The read ahead after fetch 32 takes the ACK of fetch 10 along. */
    OK(drain_until_error(st, 40, 10, NULL, &err));
    assert_int_equal(st->ops->finish(st, "j10", T0 + 50, &ack_ok, &err),
                     ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    push_ok(st, "after", "other", T0);
    assert_true(zn__sqlite_ahead_runs(zn__sqlite_of(st)) > 0);
    OK(st->ops->sync(st, &err));
    assert_int_equal(st->ops->commit(st, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    st->ops->rollback(st);
    OK(st->ops->begin(st, &err));
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), 201);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 0);
    zn_store_close(st);
}

/*
 * A write of the reader ahead that rolls the whole transaction back fails
 * the op that joins it; nothing of the transaction stays but the pushes
 * it synced, which the next transaction replays.
 */
static void
test_store_sqlite_read_ahead_rollback_ends_the_transaction(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    char path[PATH_MAX];
    struct zn_store *st;
    int done;

    zn_store_close(sqlite_open_in(f, path, sizeof(path)));
    zn_test_sqlite_exec(path, "CREATE TRIGGER doom BEFORE INSERT ON attempts"
                        " WHEN NEW.worker = 'bad' BEGIN"
                        " SELECT RAISE(ROLLBACK, 'doom'); END");
    st = sqlite_open_in(f, path, sizeof(path));
    push_many(st, 200);
    OK(st->ops->begin(st, &err));
    push_ok(st, "synced", "other", T0);
    OK(st->ops->sync(st, &err));
    assert_int_equal(drain_until_error(st, 200, 3, &done, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "doom"));
    assert_true(done < 100); /* the first read ahead met it */
    assert_true(zn__sqlite_ahead_runs(zn__sqlite_of(st)) > 0);
    st->ops->rollback(st);
    OK(st->ops->begin(st, &err));
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), 201);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_DONE)), 0);
    zn_store_close(st);
}

#define TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
    static const struct CMUnitTest tests[] = {
        TEST(test_store_sqlite_migrate_reports_versions),
        TEST(test_store_sqlite_open_runs_migrations),
        TEST(test_store_sqlite_v1_data_survives),
        TEST(test_store_sqlite_counts_rebuilt_after_crash),
        TEST(test_store_sqlite_checkpointer_bounds_wal),
        TEST(test_store_sqlite_journal_replays_synced_pushes),
        TEST(test_store_sqlite_journal_replays_a_batch),
        TEST(test_store_sqlite_journal_covers_unsynced_commits),
        TEST(test_store_sqlite_journal_emptied_after_replay),
        TEST(test_store_sqlite_failed_push_leaves_the_rest),
        TEST(test_store_sqlite_rollback_keeps_synced_pushes),
        TEST(test_store_sqlite_big_flush_in_a_transaction),
        TEST(test_store_sqlite_journal_of_another_version),
        TEST(test_store_sqlite_journal_keeps_committed_removals),
        TEST(test_store_sqlite_journal_torn_record),
        TEST(test_store_sqlite_journal_of_another_database),
        TEST(test_store_sqlite_newer_schema_refused),
        TEST(test_store_sqlite_readonly_needs_current_schema),
        TEST(test_store_sqlite_query_plans_use_indexes),
        TEST(test_store_sqlite_damaged_row_is_eio),
        TEST(test_store_sqlite_pause_seen_across_handles),
        TEST(test_store_sqlite_ready_jobs_follow_other_handles),
        TEST(test_store_sqlite_ready_queues_bounded),
        TEST(test_store_sqlite_unwritable_leases_fail_the_transaction),
        TEST(test_store_sqlite_locked_lease_keeps_the_job),
        TEST(test_store_sqlite_damaged_row_after_good_ones),
        TEST(test_store_sqlite_read_ahead_keeps_fetch_order),
        TEST(test_store_sqlite_read_ahead_skips_held_jobs),
        TEST(test_store_sqlite_read_ahead_write_fails_the_transaction),
        TEST(test_store_sqlite_read_ahead_rollback_ends_the_transaction),
    };

    /* Damaged rows fail fetches on purpose; keep their log lines out. */
    zn_log_set_level(ZN_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
