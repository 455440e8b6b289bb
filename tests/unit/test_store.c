/*
 * test_store.c - the conformance tests of struct zn_store, written against
 * store.h only, first part: push, get, fetch, finish, leases, promote.
 * The rest (list and count, retry and remove, queue stats, counters,
 * flush, transactions, reopen) are in test_store_query.c. Every back end
 * runs all of them: a back end joins by adding a row to zn_sfx_backends[]
 * (store_fx.c, the fixture both files share), a function that opens a
 * fresh store in a test's own directory. The sqlite back end's own tests
 * (migrations, schema versions, query plans, damaged rows) are in
 * test_store_sqlite.c.
 *
 * Time is injected: every call gets its own "now", counted from T0.
 * Jobs are built by filling struct zn_job, not by parsing JSON.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
#include "store_fx.h"

/* Push. */

static void
test_store_push_get_roundtrip(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *j = zn_sfx_job_make("rt1", "mail", "send_mail", 7);
    struct zn_err err = {0};
    struct zn_job *g;
    uint64_t seq;

    zn_sfx_job_set_all(j, "[\"x\",{\"k\":1}]");
    zn_sfx_job_schedule(j, T0 + 1000);
    assert_int_equal(zn_sfx_push_job(st, j, T0, &err, &seq), 0);
    assert_true(seq > 0);

    g = zn_sfx_get_job(st, "rt1");
    assert_int_equal(g->seq, seq);
    assert_string_equal(g->queue, "mail");
    assert_string_equal(g->jobtype, "send_mail");
    assert_string_equal(g->args, "[\"x\",{\"k\":1}]");
    assert_string_equal(g->custom, "{\"trace\":\"abc\"}");
    assert_int_equal(g->ntags, 2);
    assert_string_equal(g->tags[0], "red");
    assert_string_equal(g->tags[1], "bl\"ue \xc3\xa9");
    assert_int_equal(g->nbackoff, 3);
    assert_int_equal(g->backoff[2], 60);
    assert_int_equal(g->priority, 7);
    assert_int_equal(g->retry, 5);
    assert_int_equal(g->reserve_for, 120);
    assert_int_equal(g->unique_for, 30);
    assert_int_equal(g->backtrace_lines, 8);
    assert_int_equal(g->created_at, T0 - 5);
    assert_int_equal(g->at, T0 + 1000);
    assert_int_equal(g->next_at, T0 + 1000);
    assert_int_equal(g->state, ZN_STATE_SCHEDULED);
    assert_int_equal(g->updated_at, T0);
    assert_int_equal(g->attempts, 0);
    assert_int_equal(g->failures, 0);
    assert_null(g->worker);
    assert_null(g->failure.errtype);
    assert_false(g->quarantined);
    zn_job_free(g);
}

/* A job without custom, tags or backoff reads back without them. */
static void
test_store_push_get_plain_job(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *g;

    zn_sfx_push_ok(st, "plain", "default", 5, T0);
    g = zn_sfx_get_job(st, "plain");
    assert_null(g->custom);
    assert_int_equal(g->ntags, 0);
    assert_int_equal(g->nbackoff, 0);
    assert_int_equal(g->enqueued_at, T0);
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    zn_job_free(g);
}

static void
test_store_push_duplicate_jid(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err e;
    struct zn_job *g;

    zn_sfx_push_ok(st, "dup", "first", 5, T0);
    assert_int_equal(zn_sfx_push_job(st,
                                     zn_sfx_job_make("dup", "second", "x", 5),
                                     T0 + 1, &e, NULL), ZN_EEXIST);
    assert_string_equal(e.msg, "jid 'dup' already exists");
    g = zn_sfx_get_job(st, "dup");
    assert_string_equal(g->queue, "first");
    zn_job_free(g);
    assert_int_equal(zn_sfx_count_of(st, 0), 1);
}

static struct zn_job *
unique_job(const char *jid, const char *queue, const char *args, int uf)
{
    struct zn_job *j = zn_sfx_job_make(jid, queue, "report", 5);

    free(j->args);
    j->args = strdup(args);
    assert_non_null(j->args);
    j->unique_for = uf;
    return j;
}

static void
test_store_push_unique_within_window(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err e;

    assert_int_equal(zn_sfx_push_job(st, unique_job("a", "q", "[1]", 60),
                                     T0, &e, NULL), 0);
    assert_int_equal(zn_sfx_push_job(st, unique_job("b", "q", "[1]", 60),
                                     T0 + 59999, &e, NULL), ZN_EUNIQUE);
    assert_string_equal(e.msg, "job is not unique: equal job 'a' pushed "
                               "within unique_for");
    /* Other args, another queue, or no unique_for: not equal or no claim. */
    assert_int_equal(zn_sfx_push_job(st, unique_job("c", "q", "[2]", 60),
                                     T0 + 1, &e, NULL), 0);
    assert_int_equal(zn_sfx_push_job(st, unique_job("d", "other", "[1]", 60),
                                     T0 + 1, &e, NULL), 0);
    assert_int_equal(zn_sfx_push_job(st, unique_job("e", "q", "[1]", 0),
                                     T0 + 1, &e, NULL), 0);
    assert_int_equal(zn_sfx_count_of(st, 0), 4);
}

static void
test_store_push_unique_after_window(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err e;

    assert_int_equal(zn_sfx_push_job(st, unique_job("a", "q", "[1]", 60),
                                     T0, &e, NULL), 0);
    /* Pushed exactly unique_for seconds ago: no longer "less than". */
    assert_int_equal(zn_sfx_push_job(st, unique_job("b", "q", "[1]", 60),
                                     T0 + 60000, &e, NULL), 0);
    /* The window now runs from b's push. */
    assert_int_equal(zn_sfx_push_job(st, unique_job("c", "q", "[1]", 60),
                                     T0 + 60001, &e, NULL), ZN_EUNIQUE);
    assert_string_equal(e.msg, "job is not unique: equal job 'b' pushed "
                               "within unique_for");
}

/*
 * A batch's per-job errors: errs[i].code must be want[i] for each of its
 * n jobs. The message names the job, both codes and the store's text.
 */
static void
expect_errs(const struct zn_err *errs, const int *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (errs[i].code != want[i])
            fail_msg("job %zu: %s, want %s (%s)", i, zn_err_name(errs[i].code),
                     zn_err_name(want[i]), errs[i].msg);
}

static void
test_store_push_batch_mixed(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *jobs[6];
    struct zn_err errs[6];
    struct zn_store_counters c;
    struct zn_err err = {0};
    const int want[6] = {0, ZN_EEXIST, 0, 0, ZN_EUNIQUE, ZN_EEXIST};

    zn_sfx_push_ok(st, "x", "q", 5, T0);
    jobs[0] = zn_sfx_job_make("a", "q", "work", 5);
    jobs[1] = zn_sfx_job_make("x", "q", "work", 5);
    jobs[2] = zn_sfx_job_make("b", "q", "work", 5);
    jobs[3] = unique_job("u1", "q", "[9]", 60);
    jobs[4] = unique_job("u2", "q", "[9]", 60);
    jobs[5] = zn_sfx_job_make("a", "q", "work", 5);
    OK(st->ops->push(st, jobs, 6, T0 + 10, errs));
    expect_errs(errs, want, 6);
    assert_string_equal(errs[4].msg, "job is not unique: equal job 'u1' "
                                     "pushed within unique_for");
    assert_true(jobs[0]->seq < jobs[2]->seq);
    assert_true(jobs[2]->seq < jobs[3]->seq);
    for (int i = 0; i < 6; i++)
        zn_job_free(jobs[i]);
    zn_sfx_expect_jobs(st, (struct zn_store_query){0}, "x a b u1");
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 4);
}

/*
 * A batch larger than a group, with a tag that is not UTF-8, a taken jid
 * and a unique_for job among the jobs: every accepted job gets its own
 * row, seq and tag rows, whatever group it went in with; each refused one
 * its own reason.
 */
static void
test_store_push_batch_groups(void **state)
{
    enum { N = 40 };
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *jobs[N], *g;
    struct zn_err errs[N];
    struct zn_err err = {0};
    const int want[N] = {[5] = ZN_EINVAL, [20] = ZN_EEXIST};
    char jid[16], tag[16];

    zn_sfx_push_ok(st, "taken", "q", 5, T0);
    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "g%d", i);
        jobs[i] = i == 20 ? zn_sfx_job_make("taken", "q", "work", 5)
                : i == 30 ? unique_job(jid, "q", "[7]", 60)
                          : zn_sfx_job_make(jid, "q", "work", 5);
        if (i % 3 == 0) {
            snprintf(tag, sizeof(tag), "t%d", i);
            zn_sfx_job_tag(jobs[i], tag);
        }
    }
    zn_sfx_job_tag(jobs[5], "\xff bad");
    OK(st->ops->push(st, jobs, N, T0 + 10, errs));
    expect_errs(errs, want, N);
    for (int i = 0; i < N; i++) {
        if (want[i])
            continue;
        g = zn_sfx_get_job(st, jobs[i]->jid);
        assert_int_equal(g->seq, jobs[i]->seq);
        assert_int_equal(g->ntags, jobs[i]->ntags);
        zn_job_free(g);
        if (i > 0 && i != 6 && i != 21)
            assert_true(jobs[i]->seq > jobs[i - 1]->seq);
        if (jobs[i]->ntags)
            zn_sfx_expect_jobs(st,
                               (struct zn_store_query){.tag = jobs[i]->tags[0]},
                               jobs[i]->jid);
    }
    assert_int_equal(zn_sfx_count_of(st, 0), 1 + N - 2);
    for (int i = 0; i < N; i++)
        zn_job_free(jobs[i]);
}

/*
 * Full groups back to back: every job's seq is its row's and its tag finds
 * it; then a batch with a jid twice and an invalid job inside a group.
 */
static void
test_store_push_batch_full_groups(void **state)
{
    enum { N = 35 };
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *jobs[N], *g;
    struct zn_err errs[N];
    struct zn_err err = {0};
    const int want[12] = {[7] = ZN_EINVAL, [10] = ZN_EEXIST};
    char jid[16], tag[16];
    uint64_t last = 0;

    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "f%d", i);
        snprintf(tag, sizeof(tag), "t%d", i);
        jobs[i] = zn_sfx_job_make(jid, "q", "work", 5);
        zn_sfx_job_tag(jobs[i], tag);
    }
    OK(st->ops->push(st, jobs, N, T0, errs));
    for (int i = 0; i < N; i++) {
        assert_int_equal(errs[i].code, 0);
        assert_true(jobs[i]->seq > last);
        last = jobs[i]->seq;
        g = zn_sfx_get_job(st, jobs[i]->jid);
        assert_int_equal(g->seq, jobs[i]->seq);
        zn_job_free(g);
        zn_sfx_expect_jobs(st,
                           (struct zn_store_query){.tag = jobs[i]->tags[0]},
                           jobs[i]->jid);
        zn_job_free(jobs[i]);
    }
    for (size_t i = 0; i < ZN_ARRAY_LEN(want); i++) {
        snprintf(jid, sizeof(jid), "h%zu", i == 10 ? 3 : i);
        jobs[i] = zn_sfx_job_make(jid, i == 7 ? "bad queue!" : "q", "work", 5);
    }
    OK(st->ops->push(st, jobs, ZN_ARRAY_LEN(want), T0, errs));
    expect_errs(errs, want, ZN_ARRAY_LEN(want));
    for (size_t i = 0; i < ZN_ARRAY_LEN(want); i++)
        zn_job_free(jobs[i]);
    assert_int_equal(zn_sfx_count_of(st, 0), N + 10);
}

static void
test_store_push_seq_increases(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {.jid = "j5"};
    struct zn_job *jobs[3];
    struct zn_err errs[3];
    struct zn_err err = {0};
    uint64_t last = 0, below = 0, seq;
    int64_t n;
    char jid[16];

    for (int i = 0; i < 5; i++) {
        snprintf(jid, sizeof(jid), "j%d", 5 - i);
        seq = zn_sfx_push_ok(st, jid, "q", 5, T0);
        assert_true(seq > last);
        last = seq;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(jid, sizeof(jid), "b%d", i);
        jobs[i] = zn_sfx_job_make(jid, "q", "work", 5);
    }
    OK(st->ops->push(st, jobs, 3, T0, errs));
    for (int i = 0; i < 3; i++) {
        assert_true(jobs[i]->seq > last);
        below = last;
        last = jobs[i]->seq;
        zn_job_free(jobs[i]);
    }
    /* After the newest job is removed, a new one still comes after all. */
    q.jid = "b2";
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    assert_true(zn_sfx_push_ok(st, "after", "q", 5, T0) > below);
}

static void
test_store_get_not_found(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *job = (struct zn_job *)&job;
    struct zn_err err = {0};

    assert_int_equal(st->ops->get(st, "nope", &job, &err), ZN_ENOTFOUND);
    assert_null(job);
    assert_non_null(strstr(err.msg, "nope"));
}

/* Fetch. */

static void
test_store_fetch_priority_order(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 9, T0);
    zn_sfx_push_ok(st, "c", "q", 1, T0);
    zn_sfx_push_ok(st, "d", "q", 9, T0);
    zn_sfx_fetch_expect(st, "q", "b", T0);
    zn_sfx_fetch_expect(st, "q", "d", T0);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    zn_sfx_fetch_expect(st, "q", "c", T0);
    zn_sfx_fetch_expect(st, "q", NULL, T0);
}

static void
test_store_fetch_fifo_within_priority(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    static const char *const order[] = {"m", "z", "a", "k", "b"};

    for (size_t i = 0; i < ZN_ARRAY_LEN(order); i++)
        zn_sfx_push_ok(st, order[i], "q", 3, T0 + (int64_t)i);
    for (size_t i = 0; i < ZN_ARRAY_LEN(order); i++)
        zn_sfx_fetch_expect(st, "q", order[i], T0 + 10);
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 10);
}

static void
test_store_fetch_queues_in_order(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    const char *const ab[] = {"alpha", "beta"};
    const char *const ba[] = {"beta", "alpha"};

    zn_sfx_push_ok(st, "a1", "alpha", 1, T0);
    zn_sfx_push_ok(st, "b1", "beta", 9, T0);
    zn_sfx_push_ok(st, "b2", "beta", 9, T0);
    zn_sfx_push_ok(st, "g1", "gamma", 9, T0);
    /* The order of the queues wins over priority. */
    zn_sfx_fetch_expect_in(st, ba, 2, "b1", T0);
    zn_sfx_fetch_expect_in(st, ab, 2, "a1", T0);
    zn_sfx_fetch_expect_in(st, ab, 2, "b2", T0);
    zn_sfx_fetch_expect_in(st, ab, 2, NULL, T0);
    assert_int_equal(zn_sfx_get_state(st, "g1"), ZN_STATE_ENQUEUED);
}

static void
test_store_fetch_skips_paused_queue(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    const char *const po[] = {"p", "o"};
    struct zn_err err = {0};

    zn_sfx_push_ok(st, "a", "p", 9, T0);
    zn_sfx_push_ok(st, "b", "o", 1, T0);
    OK(st->ops->set_paused(st, "p", true, &err));
    zn_sfx_fetch_expect_in(st, po, 2, "b", T0);
    zn_sfx_fetch_expect(st, "p", NULL, T0);
    assert_int_equal(zn_sfx_get_state(st, "a"), ZN_STATE_ENQUEUED);
    OK(st->ops->set_paused(st, "p", false, &err));
    zn_sfx_fetch_expect(st, "p", "a", T0);
}

static void
test_store_fetch_never_scheduled_or_retry(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *j = zn_sfx_job_make("later", "q", "work", 9);
    struct zn_err e;

    zn_sfx_job_schedule(j, T0 + 1000);
    assert_int_equal(zn_sfx_push_job(st, j, T0, &e, NULL), 0);
    zn_sfx_push_ok(st, "r", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "r", T0);
    zn_sfx_finish_as(st, "r", T0, ZN_STATE_RETRY, T0 + 5000);
    /* Due, but only promote makes them fetchable. */
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 10000);
    assert_int_equal(zn_sfx_get_state(st, "later"), ZN_STATE_SCHEDULED);
    assert_int_equal(zn_sfx_get_state(st, "r"), ZN_STATE_RETRY);
}

static void
test_store_fetch_sets_lease_and_attempt(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *j = zn_sfx_job_make("a", "q", "work", 5);
    struct zn_attempt *a;
    struct zn_err err = {0};
    struct zn_job *got;
    size_t n;

    j->reserve_for = 120;
    assert_int_equal(zn_sfx_push_job(st, j, T0, NULL, NULL), 0);
    got = zn_sfx_fetch_from(st, "q", "wid-7", T0 + 500);
    assert_non_null(got);
    assert_int_equal(got->state, ZN_STATE_WORKING);
    assert_int_equal(got->lease_until, T0 + 500 + 120 * 1000);
    assert_int_equal(got->attempts, 1);
    assert_string_equal(got->worker, "wid-7");
    assert_int_equal(got->updated_at, T0 + 500);
    zn_job_free(got);
    got = zn_sfx_get_job(st, "a");
    assert_int_equal(got->state, ZN_STATE_WORKING);
    assert_int_equal(got->lease_until, T0 + 120500);
    assert_string_equal(got->worker, "wid-7");
    zn_job_free(got);

    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(a[0].n, 1);
    assert_string_equal(a[0].worker, "wid-7");
    assert_int_equal(a[0].started_at, T0 + 500);
    assert_int_equal(a[0].ended_at, 0);
    assert_null(a[0].outcome);
    zn_attempts_free(a, n);
}

static void
test_store_fetch_nothing_gives_null(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    const char *const none[] = {"nope", "empty"};
    struct zn_job *job = (struct zn_job *)&job;
    struct zn_err err = {0};

    OK(st->ops->fetch(st, none, 2, "w1", T0, &job, &err));
    assert_null(job);
    zn_sfx_push_ok(st, "a", "q", 5, T0);
    job = (struct zn_job *)&job;
    OK(st->ops->fetch(st, none, 0, "w1", T0, &job, &err));
    assert_null(job);
    zn_sfx_fetch_expect_in(st, none, 2, NULL, T0);
}

/* Finish. */

static void
test_store_finish_ack_done(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_outcome o = {.next = ZN_STATE_DONE, .outcome = "ok",
                                 .cpu_ms = 12, .rss_kb = 3456};
    struct zn_store_counters c;
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    size_t n;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "a", T0 + 1);
    OK(st->ops->finish(st, "a", T0 + 2000, &o, &err));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_DONE);
    assert_null(g->worker);
    assert_int_equal(g->lease_until, 0);
    assert_int_equal(g->failures, 0);
    assert_int_equal(g->attempts, 1);
    assert_int_equal(g->updated_at, T0 + 2000);
    assert_null(g->failure.errtype);
    zn_job_free(g);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 1);
    assert_int_equal(c.failed, 0);
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(a[0].ended_at, T0 + 2000);
    assert_string_equal(a[0].outcome, "ok");
    assert_null(a[0].errtype);
    assert_int_equal(a[0].cpu_ms, 12);
    assert_int_equal(a[0].rss_kb, 3456);
    zn_attempts_free(a, n);
}

static void
test_store_finish_fail_retry(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_outcome o = {
        .next = ZN_STATE_RETRY, .next_at = T0 + 30000, .outcome = "failed",
        .errtype = "RuntimeError", .message = "boom",
        .backtrace = "[\"a.rb:1\",\"b.rb:2\"]", .cpu_ms = 5, .rss_kb = 100,
    };
    struct zn_store_counters c;
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    size_t n;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0 + 700, &o, &err));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_RETRY);
    assert_int_equal(g->next_at, T0 + 30000);
    assert_int_equal(g->failures, 1);
    assert_null(g->worker);
    assert_string_equal(g->failure.errtype, "RuntimeError");
    assert_string_equal(g->failure.message, "boom");
    assert_string_equal(g->failure.backtrace, "[\"a.rb:1\",\"b.rb:2\"]");
    assert_int_equal(g->failure.failed_at, T0 + 700);
    assert_false(g->quarantined);
    zn_job_free(g);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 0);
    assert_int_equal(c.failed, 1);
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 1);
    assert_string_equal(a[0].outcome, "failed");
    assert_string_equal(a[0].errtype, "RuntimeError");
    assert_string_equal(a[0].message, "boom");
    assert_int_equal(a[0].ended_at, T0 + 700);
    assert_int_equal(a[0].cpu_ms, 5);
    assert_int_equal(a[0].rss_kb, 100);
    zn_attempts_free(a, n);
}

static void
test_store_finish_fail_dead_quarantined(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_outcome o = {
        .next = ZN_STATE_DEAD, .outcome = "SIGSEGV", .errtype = "SIGSEGV",
        .message = "worker killed by signal 11", .cpu_ms = -1, .rss_kb = -1,
        .quarantined = true,
    };
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    size_t n;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0 + 9, &o, &err));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_DEAD);
    assert_true(g->quarantined);
    assert_int_equal(g->failures, 1);
    assert_string_equal(g->failure.errtype, "SIGSEGV");
    assert_int_equal(g->failure.failed_at, T0 + 9);
    zn_job_free(g);
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_string_equal(a[0].outcome, "SIGSEGV");
    assert_int_equal(a[0].cpu_ms, -1);
    zn_attempts_free(a, n);
}

static void
test_store_finish_fail_enqueued(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_outcome o = {
        .next = ZN_STATE_ENQUEUED, .outcome = "worker gone",
        .errtype = "worker gone", .message = "connection closed",
        .cpu_ms = -1, .rss_kb = -1,
    };
    struct zn_err err = {0};
    struct zn_job *g;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0 + 50, &o, &err));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    /* Handed back, not failed on its own: it keeps its place. */
    assert_int_equal(g->enqueued_at, T0);
    assert_int_equal(g->failures, 1);
    assert_string_equal(g->failure.errtype, "worker gone");
    zn_job_free(g);
    g = zn_sfx_fetch_from(st, "q", "w2", T0 + 60);
    assert_non_null(g);
    assert_int_equal(g->attempts, 2);
    zn_job_free(g);
}

static void
test_store_finish_not_working(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_outcome o = {.next = ZN_STATE_DONE, .cpu_ms = -1,
                                 .rss_kb = -1};
    struct zn_store_counters c;
    struct zn_err err = {0};

    assert_int_equal(st->ops->finish(st, "nope", T0, &o, &err),
                     ZN_ENOTFOUND);
    zn_sfx_push_ok(st, "a", "q", 5, T0);
    assert_int_equal(st->ops->finish(st, "a", T0, &o, &err), ZN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'a'"));
    zn_sfx_fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0, &o, &err));
    assert_int_equal(st->ops->finish(st, "a", T0, &o, &err), ZN_ENOTFOUND);
    assert_int_equal(zn_sfx_get_state(st, "a"), ZN_STATE_DONE);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 1);
    assert_int_equal(c.failed, 0);
}

static void
test_store_extend_lease(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};
    struct zn_job *g;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    OK(st->ops->extend(st, "a", T0 + 999999, &err));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->lease_until, T0 + 999999);
    zn_job_free(g);
    assert_int_equal(st->ops->extend(st, "b", T0 + 1, &err), ZN_ENOTFOUND);
    assert_int_equal(st->ops->extend(st, "nope", T0 + 1, &err),
                     ZN_ENOTFOUND);
}

static void
push_leased(struct zn_store *st, const char *jid, int reserve_for)
{
    struct zn_job *j = zn_sfx_job_make(jid, "q", "work", 5);

    j->reserve_for = reserve_for;
    assert_int_equal(zn_sfx_push_job(st, j, T0, NULL, NULL), 0);
    zn_sfx_fetch_expect(st, "q", jid, T0);
}

static void
expect_list(const struct zn_store_list *l, const char *want)
{
    char got[1024] = "";
    size_t len = 0;

    zn_sfx_jids_append(l, got, sizeof(got), &len);
    assert_string_equal(got, want);
}

static void
test_store_expired_oldest_first(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_list l;
    struct zn_err err = {0};

    push_leased(st, "a", 10);
    push_leased(st, "b", 5);
    push_leased(st, "c", 20);
    zn_sfx_push_ok(st, "d", "idle", 5, T0);
    push_leased(st, "e", 1);
    zn_sfx_finish_as(st, "e", T0, ZN_STATE_DONE, 0);
    OK(st->ops->expired(st, T0 + 4999, 10, &l, &err));
    expect_list(&l, "");
    zn_store_list_release(&l);
    /* A lease that ends exactly now has expired. */
    OK(st->ops->expired(st, T0 + 10000, 10, &l, &err));
    expect_list(&l, "b a");
    assert_int_equal(l.jobs[0]->state, ZN_STATE_WORKING);
    zn_store_list_release(&l);
    OK(st->ops->expired(st, T0 + 100000, 2, &l, &err));
    expect_list(&l, "b a");
    zn_store_list_release(&l);
    OK(st->ops->expired(st, T0 + 100000, 1, &l, &err));
    expect_list(&l, "b");
    zn_store_list_release(&l);
}

/* Promote, next_due. */

static void
free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void
test_store_promote_due_jobs(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};
    char **qs = NULL;
    size_t moved, nq = 0;
    struct zn_job *g;

    zn_sfx_push_scheduled(st, "s1", "qa", T0 + 1000);
    zn_sfx_push_scheduled(st, "s2", "qb", T0 + 3000);
    zn_sfx_push_scheduled(st, "s3", "qc", T0 + 9000);
    zn_sfx_push_ok(st, "r1", "qa", 5, T0);
    zn_sfx_fetch_expect(st, "qa", "r1", T0);
    zn_sfx_finish_as(st, "r1", T0, ZN_STATE_RETRY, T0 + 2000);

    OK(st->ops->promote(st, T0 + 500, 10, &moved, &qs, &nq, &err));
    assert_int_equal(moved, 0);
    assert_int_equal(nq, 0);
    OK(st->ops->promote(st, T0 + 2500, 1, &moved, &qs, &nq, &err));
    assert_int_equal(moved, 1);
    assert_int_equal(nq, 1);
    assert_string_equal(qs[0], "qa");
    assert_int_equal(zn_sfx_get_state(st, "s1"), ZN_STATE_ENQUEUED);
    assert_int_equal(zn_sfx_get_state(st, "r1"), ZN_STATE_RETRY);
    /* Added to the list already held: qa is not repeated. */
    OK(st->ops->promote(st, T0 + 3000, 10, &moved, &qs, &nq, &err));
    assert_int_equal(moved, 2);
    assert_int_equal(nq, 2);
    assert_string_equal(qs[0], "qa");
    assert_string_equal(qs[1], "qb");
    free_names(qs, nq);

    g = zn_sfx_get_job(st, "r1");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    assert_int_equal(g->enqueued_at, T0 + 3000);
    zn_job_free(g);
    assert_int_equal(zn_sfx_get_state(st, "s3"), ZN_STATE_SCHEDULED);
    zn_sfx_fetch_expect(st, "qb", "s2", T0 + 3000);
    OK(st->ops->promote(st, T0 + 9000, 10, &moved, NULL, NULL, &err));
    assert_int_equal(moved, 1);
    assert_int_equal(zn_sfx_get_state(st, "s3"), ZN_STATE_ENQUEUED);
}

static void
test_store_next_due(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};
    int64_t at = -1;

    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, 0);
    zn_sfx_push_ok(st, "e", "q", 5, T0);
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, 0);
    zn_sfx_push_scheduled(st, "s5", "q", T0 + 5000);
    zn_sfx_push_scheduled(st, "s3", "q", T0 + 3000);
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, T0 + 3000);
    zn_sfx_fetch_expect(st, "q", "e", T0);
    zn_sfx_finish_as(st, "e", T0, ZN_STATE_RETRY, T0 + 1000);
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, T0 + 1000);
}

static const struct CMUnitTest generic_tests[] = {
    ZN_SFX_TEST(test_store_push_get_roundtrip),
    ZN_SFX_TEST(test_store_push_get_plain_job),
    ZN_SFX_TEST(test_store_push_duplicate_jid),
    ZN_SFX_TEST(test_store_push_unique_within_window),
    ZN_SFX_TEST(test_store_push_unique_after_window),
    ZN_SFX_TEST(test_store_push_batch_mixed),
    ZN_SFX_TEST(test_store_push_batch_groups),
    ZN_SFX_TEST(test_store_push_batch_full_groups),
    ZN_SFX_TEST(test_store_push_seq_increases),
    ZN_SFX_TEST(test_store_get_not_found),
    ZN_SFX_TEST(test_store_fetch_priority_order),
    ZN_SFX_TEST(test_store_fetch_fifo_within_priority),
    ZN_SFX_TEST(test_store_fetch_queues_in_order),
    ZN_SFX_TEST(test_store_fetch_skips_paused_queue),
    ZN_SFX_TEST(test_store_fetch_never_scheduled_or_retry),
    ZN_SFX_TEST(test_store_fetch_sets_lease_and_attempt),
    ZN_SFX_TEST(test_store_fetch_nothing_gives_null),
    ZN_SFX_TEST(test_store_finish_ack_done),
    ZN_SFX_TEST(test_store_finish_fail_retry),
    ZN_SFX_TEST(test_store_finish_fail_dead_quarantined),
    ZN_SFX_TEST(test_store_finish_fail_enqueued),
    ZN_SFX_TEST(test_store_finish_not_working),
    ZN_SFX_TEST(test_store_extend_lease),
    ZN_SFX_TEST(test_store_expired_oldest_first),
    ZN_SFX_TEST(test_store_promote_due_jobs),
    ZN_SFX_TEST(test_store_next_due),
};

int
main(void)
{
    return zn_sfx_run(generic_tests, ZN_ARRAY_LEN(generic_tests));
}
