/*
 * test_store_deferred.c - the sqlite store's deferred pushes
 * (sqlite_push.c): inside a transaction on a database file, a single push
 * is checked and journaled at once, answered, and inserted later, before
 * anything else reads or inserts jobs. These tests check that nothing can
 * tell the difference but the time it takes: fetch order, seqs, refusals,
 * reads, and the failures of an insert that comes after its answer. The
 * fixture is store_fx's, on the back end with a file.
 */
#include "compat.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/log.h"
#include "store/sqlite_int.h"
#include "store_fx.h"
#include "support/files.h"

/* store_fx's fixture on its back end "sqlite file". */
static int
setup(void **state)
{
    *state = (void *)zn_sfx_sqlite_file;
    return zn_sfx_setup(state);
}

static bool
deferred(struct zn_store *st)
{
    return zn__sqlite_of(st)->ndeferred > 0;
}

/*
 * A deferred push of a higher priority comes before the jobs a fetch has
 * buffered, and one of the same priority after them.
 */
static void
test_store_deferred_fetched_in_order(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};

    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "a1", "q", 5, T0);
    zn_sfx_push_ok(st, "a2", "q", 5, T0);
    zn_sfx_push_ok(st, "a3", "q", 5, T0);
    assert_true(deferred(st));
    zn_sfx_fetch_expect(st, "q", "a1", T0 + 1);
    assert_false(deferred(st));
    zn_sfx_push_ok(st, "h", "q", 9, T0 + 2);
    zn_sfx_push_ok(st, "b", "q", 5, T0 + 2);
    assert_true(deferred(st));
    zn_sfx_fetch_expect(st, "q", "h", T0 + 3);
    zn_sfx_fetch_expect(st, "q", "a2", T0 + 3);
    zn_sfx_fetch_expect(st, "q", "a3", T0 + 3);
    zn_sfx_fetch_expect(st, "q", "b", T0 + 3);
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 3);
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)), 5);
}

/*
 * The seq a push reports is the one its row gets, past the most pushes
 * deferred at once (which go in when the next one comes).
 */
static void
test_store_deferred_seqs_are_the_rows(void **state)
{
    enum { N = ZN__SQLITE_DEFERRED_MAX + 5 };
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};
    uint64_t seq[N];
    char jid[16];

    zn_sfx_push_ok(st, "first", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "j%d", i);
        seq[i] = zn_sfx_push_ok(st, jid, "q", 5, T0);
        assert_true(seq[i] > 1);
        assert_true(i == 0 || seq[i] == seq[i - 1] + 1);
        assert_int_equal(zn__sqlite_of(st)->ndeferred,
                         i % ZN__SQLITE_DEFERRED_MAX + 1);
    }
    OK(st->ops->commit(st, &err));
    for (int i = 0; i < N; i++) {
        struct zn_job *g;

        snprintf(jid, sizeof(jid), "j%d", i);
        g = zn_sfx_get_job(st, jid);
        assert_int_equal(g->seq, seq[i]);
        zn_job_free(g);
    }
    zn_sfx_fetch_expect(st, "q", "first", T0 + 1);
    zn_sfx_fetch_expect(st, "q", "j0", T0 + 1);
}

/* A taken jid is refused at the push, deferred or in the table. */
static void
test_store_deferred_refuses_taken_jids(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0}, refused = {0};

    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "x", "q", 5, T0);
    assert_int_equal(zn_sfx_push_job(st, zn_sfx_job_make("x", "r", "b", 3),
                                     T0, &refused, NULL),
                     ZN_EEXIST);
    assert_string_equal(refused.msg, "jid 'x' already exists");
    assert_int_equal(zn__sqlite_of(st)->ndeferred, 1);
    OK(st->ops->commit(st, &err));
    OK(st->ops->begin(st, &err));
    assert_int_equal(zn_sfx_push_job(st, zn_sfx_job_make("x", "q", "b", 5),
                                     T0, &refused, NULL),
                     ZN_EEXIST);
    assert_false(deferred(st));
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, 0), 1);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "r"}, "");
}

/*
 * Reads see a deferred push: get, a list by its tag, a count, and the
 * next due time of a scheduled one.
 */
static void
test_store_deferred_seen_by_reads(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *job = zn_sfx_job_make("t", "q", "mail", 5);
    struct zn_err err = {0};
    int64_t at = 0;

    zn_sfx_job_tag(job, "vip");
    OK(st->ops->begin(st, &err));
    assert_int_equal(zn_sfx_push_job(st, job, T0, NULL, NULL), 0);
    assert_true(deferred(st));
    assert_int_equal(zn_sfx_get_state(st, "t"), ZN_STATE_ENQUEUED);
    assert_false(deferred(st));
    zn_sfx_push_ok(st, "u", "q", 5, T0);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.tag = "vip"}, "t");
    zn_sfx_push_ok(st, "v", "q", 5, T0);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), 3);
    zn_sfx_push_scheduled(st, "s", "q", T0 + 5000);
    assert_true(deferred(st));
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, T0 + 5000);
    OK(st->ops->commit(st, &err));
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "q"}, "t u v s");
}

/* A batch after deferred pushes gets the seqs after theirs. */
static void
test_store_deferred_then_a_batch(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *batch[2] = {zn_sfx_job_make("b", "q", "work", 5),
                               zn_sfx_job_make("c", "q", "work", 5)};
    struct zn_err err = {0}, errs[2];
    uint64_t a;

    OK(st->ops->begin(st, &err));
    a = zn_sfx_push_ok(st, "a", "q", 5, T0);
    OK(st->ops->push(st, batch, 2, T0, errs));
    assert_int_equal(errs[0].code + errs[1].code, 0);
    assert_false(deferred(st));
    assert_int_equal(batch[0]->seq, a + 1);
    assert_int_equal(batch[1]->seq, a + 2);
    zn_job_free(batch[0]);
    zn_job_free(batch[1]);
    OK(st->ops->commit(st, &err));
    zn_sfx_fetch_expect(st, "q", "a", T0 + 1);
    zn_sfx_fetch_expect(st, "q", "b", T0 + 1);
    zn_sfx_fetch_expect(st, "q", "c", T0 + 1);
}

/* An integer a statement of the store's own connection reads. */
static int64_t
db_int(struct zn_store *st, const char *sql)
{
    sqlite3_stmt *q;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(zn__sqlite_of(st)->db, sql, -1, &q,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/*
 * A deferred insert that fills the disk (max_page_count) rolls back the
 * whole transaction, answered pushes included: an op that then commits on
 * its own must leave them owed, and the next open inserts them.
 */
static void
test_store_deferred_full_disk_keeps_answered_pushes(void **state)
{
    struct zn_sfx *f = *state;
    struct zn_store *st = f->st;
    const char *queues[] = {"q"};
    struct zn_job *job = NULL;
    struct zn_err err = {0};
    char jid[16], sql[64];

    zn_sfx_push_ok(st, "x", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < 20; i++) {
        struct zn_job *j;

        snprintf(jid, sizeof(jid), "big%d", i);
        j = zn_sfx_job_make(jid, "q", "work", 1);
        free(j->args);
        j->args = malloc(4000);
        assert_non_null(j->args);
        memset(j->args, 'a', 4000);
        memcpy(j->args, "[\"", 2);
        memcpy(j->args + 3996, "\"]", 3);
        assert_int_equal(zn_sfx_push_job(st, j, T0, NULL, NULL), 0);
    }
    OK(st->ops->sync(st, &err));
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
             (long long)db_int(st, "PRAGMA page_count"));
    db_int(st, sql);
    assert_int_equal(st->ops->fetch(st, queues, 1, "w1", T0 + 1, &job, &err),
                     ZN_EIO);
    assert_non_null(strstr(err.msg, "full"));
    assert_null(job);
    assert_false(deferred(st));
    assert_true(sqlite3_get_autocommit(zn__sqlite_of(st)->db));
    db_int(st, "PRAGMA max_page_count = 1000000");
    zn_sfx_fetch_expect(st, "q", "x", T0 + 2);
    zn_store_close(st);
    f->st = NULL;
    OK(f->be->open(f->dir, false, &f->st, &err));
    assert_int_equal(zn_sfx_count_of(f->st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)),
                     20);
    assert_int_equal(zn_sfx_get_state(f->st, "x"), ZN_STATE_WORKING);
}

/*
 * An insert that fails after its push was answered fails idle and the
 * commit; after the rollback the journal owes the push, and the next
 * begin inserts it (or fails while it cannot).
 */
static void
test_store_deferred_insert_failure_keeps_the_push(void **state)
{
    struct zn_sfx *f = *state;
    struct zn_store *st = f->st;
    struct zn_err err = {0};
    char path[PATH_MAX];

    zn_test_db_path(f->dir, path, sizeof(path));
    zn_test_sqlite_poison(path, "jobs", "NEW.jid = 'bad'");
    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_push_ok(st, "bad", "q", 5, T0);
    OK(st->ops->sync(st, &err));
    assert_int_equal(st->ops->idle(st, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    assert_true(deferred(st));
    assert_int_equal(st->ops->commit(st, &err), ZN_EIO);
    st->ops->rollback(st);
    assert_false(deferred(st));
    assert_int_equal(st->ops->begin(st, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    zn_test_sqlite_exec(path, "DROP TRIGGER poison");
    OK(st->ops->begin(st, &err));
    OK(st->ops->commit(st, &err));
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "q"}, "a bad");
}

/* A rollback drops the deferred pushes: the replay, not they, adds them. */
static void
test_store_deferred_dropped_by_rollback(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};

    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "a", "q", 5, T0);
    OK(st->ops->sync(st, &err));
    zn_sfx_push_ok(st, "unsynced", "q", 5, T0);
    st->ops->rollback(st);
    assert_false(deferred(st));
    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    OK(st->ops->commit(st, &err));
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "q"}, "a b");
}

#define TEST(t) cmocka_unit_test_setup_teardown(t, setup, zn_sfx_teardown)

int
main(void)
{
    static const struct CMUnitTest tests[] = {
        TEST(test_store_deferred_fetched_in_order),
        TEST(test_store_deferred_seqs_are_the_rows),
        TEST(test_store_deferred_refuses_taken_jids),
        TEST(test_store_deferred_seen_by_reads),
        TEST(test_store_deferred_then_a_batch),
        TEST(test_store_deferred_full_disk_keeps_answered_pushes),
        TEST(test_store_deferred_insert_failure_keeps_the_push),
        TEST(test_store_deferred_dropped_by_rollback),
    };

    /* Warnings (a replay) stay out; errors show. */
    zn_log_set_level(ZN_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
