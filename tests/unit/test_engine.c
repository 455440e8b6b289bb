/*
 * test_engine.c - every transition of the engine, on an in-memory SQLite
 * store with a clock the tests move by hand.
 */
#include "compat.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue/engine.h"
#include "store/sqlite.h"
#include "support/files.h"

struct fx {
    struct zn_store *st;
    struct zn_engine *e;
    char dir[PATH_MAX]; /* of a store in a file (use_file_store), or "" */
    char path[PATH_MAX + 16];
    struct zn_clock clock;
    int64_t now;
    char ready[8][ZN_QUEUE_NAME_MAX + 1];
    int nready;
    int ready_all;
};

static int64_t
fake_now(void *ctx)
{
    return ((struct fx *)ctx)->now;
}

static void
on_ready(void *ctx, const char *queue)
{
    struct fx *f = ctx;

    if (!queue) {
        f->ready_all++;
        return;
    }
    if (f->nready < 8)
        snprintf(f->ready[f->nready++], sizeof(f->ready[0]), "%s", queue);
}

static int
setup(void **state)
{
    struct zn_sqlite_opts so = {0};
    struct zn_engine_config cfg;
    struct fx *f = calloc(1, sizeof(*f));
    struct zn_err err;

    f->now = 1700000000000LL;
    f->clock.now_ms = fake_now;
    f->clock.ctx = f;
    zn_engine_config_default(&cfg);
    if (zn_store_sqlite_open(":memory:", &so, &f->st, &err) < 0)
        fail_msg("open: %s", err.msg);
    if (zn_engine_new(f->st, &cfg, &f->clock, &f->e, &err) < 0)
        fail_msg("engine: %s", err.msg);
    zn_engine_set_ready_cb(f->e, on_ready, f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_engine_free(f->e);
    zn_store_close(f->st);
    if (f->dir[0])
        zn_test_rmdir(f->dir);
    free(f);
    return 0;
}

static struct zn_job *
make_job(const char *jid, const char *queue, int priority)
{
    struct zn_job *job = zn_job_new();

    if (jid)
        snprintf(job->jid, sizeof(job->jid), "%s", jid);
    snprintf(job->queue, sizeof(job->queue), "%s", queue);
    job->jobtype = strdup("test");
    job->args = strdup("[]");
    job->priority = priority;
    return job;
}

/* Pushes one job (taken) and commits; returns the push result code. */
static int
push(struct fx *f, struct zn_job *job)
{
    struct zn_err err;
    struct zn_err perr;
    int rc = zn_engine_push(f->e, &job, 1, &perr);

    assert_int_equal(rc, 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    zn_job_free(job);
    return perr.code;
}

static char *
fetch(struct fx *f, const char *queue)
{
    const char *queues[] = {queue};
    struct zn_job *job = NULL;
    struct zn_err err;
    char *jid = NULL;

    assert_int_equal(zn_engine_fetch(f->e, queues, 1, "w1", &job, &err), 0);
    if (job)
        jid = strdup(job->jid);
    zn_job_free(job);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    return jid;
}

static void
expect_fetch(struct fx *f, const char *queue, const char *want)
{
    char *jid = fetch(f, queue);

    if (!want) {
        if (jid)
            fail_msg("expected no job, got '%s'", jid);
        return;
    }
    if (!jid)
        fail_msg("expected '%s', got no job", want);
    assert_string_equal(jid, want);
    free(jid);
}

static struct zn_job *
get(struct fx *f, const char *jid)
{
    struct zn_job *job = NULL;
    struct zn_err err;

    if (f->st->ops->get(f->st, jid, &job, &err) < 0)
        fail_msg("get '%s': %s", jid, err.msg);
    return job;
}

static enum zn_job_state
state_of(struct fx *f, const char *jid)
{
    struct zn_job *job = get(f, jid);
    enum zn_job_state s = job->state;

    zn_job_free(job);
    return s;
}

static void
fail_it(struct fx *f, const char *jid)
{
    struct zn_engine_failure fl = {.outcome = "failed", .errtype = "Boom",
                                   .message = "it broke", .cpu_ms = -1,
                                   .rss_kb = -1};
    struct zn_err err;

    if (zn_engine_fail(f->e, jid, NULL, &fl, &err) < 0)
        fail_msg("fail '%s': %s", jid, err.msg);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
}

static void
tick(struct fx *f)
{
    struct zn_err err;

    if (zn_engine_tick(f->e, &err) < 0)
        fail_msg("tick: %s", err.msg);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
}

/*
 * sync answers pushes and wakes the fetchers of their queues; a store
 * without a journal (this one, in memory) commits instead.
 */
static void
test_engine_sync_reports_ready(void **state)
{
    struct fx *f = *state;
    struct zn_job *job = make_job("s1", "q", 5);
    struct zn_err err, perr;

    assert_int_equal(zn_engine_push(f->e, &job, 1, &perr), 0);
    assert_int_equal(perr.code, 0);
    zn_job_free(job);
    assert_true(zn_engine_pending(f->e));
    f->nready = 0;
    assert_int_equal(zn_engine_sync(f->e, &err), 0);
    assert_int_equal(f->nready, 1);
    assert_string_equal(f->ready[0], "q");
    assert_false(zn_engine_pending(f->e));
    expect_fetch(f, "q", "s1");
}

static void
test_engine_push_fills_defaults(void **state)
{
    struct fx *f = *state;
    struct zn_job *job = make_job(NULL, "default", 5), *got;
    struct zn_err err, perr;

    assert_int_equal(zn_engine_push(f->e, &job, 1, &perr), 0);
    assert_int_equal(perr.code, 0);
    assert_int_equal(strlen(job->jid), 26);
    assert_int_equal(job->retry, 2);
    assert_int_equal(job->reserve_for, 300);
    assert_int_equal(job->state, ZN_STATE_ENQUEUED);
    assert_int_equal(job->enqueued_at, f->now);
    /* Not visible to fetchers before the commit. */
    assert_int_equal(f->nready, 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    assert_int_equal(f->nready, 1);
    assert_string_equal(f->ready[0], "default");
    got = get(f, job->jid);
    assert_int_equal(got->retry, 2);
    zn_job_free(got);
    zn_job_free(job);
}

static void
test_engine_duplicate_jid_refused(void **state)
{
    struct fx *f = *state;

    assert_int_equal(push(f, make_job("a", "default", 5)), 0);
    assert_int_equal(push(f, make_job("a", "default", 5)), ZN_EEXIST);
}

static void
test_engine_priorities_then_fifo(void **state)
{
    struct fx *f = *state;

    push(f, make_job("p5a", "default", 5));
    push(f, make_job("p1", "default", 1));
    push(f, make_job("p9", "default", 9));
    push(f, make_job("p5b", "default", 5));
    expect_fetch(f, "default", "p9");
    expect_fetch(f, "default", "p5a");
    expect_fetch(f, "default", "p5b");
    expect_fetch(f, "default", "p1");
    expect_fetch(f, "default", NULL);
}

static void
test_engine_fetch_queue_order(void **state)
{
    struct fx *f = *state;
    const char *queues[] = {"high", "low"};
    struct zn_job *job = NULL;
    struct zn_err err;

    push(f, make_job("l", "low", 9));
    push(f, make_job("h", "high", 1));
    assert_int_equal(zn_engine_fetch(f->e, queues, 2, "w", &job, &err), 0);
    assert_string_equal(job->jid, "h");
    assert_int_equal(job->state, ZN_STATE_WORKING);
    assert_int_equal(job->lease_until, f->now + 300 * 1000);
    zn_job_free(job);
    assert_int_equal(zn_engine_fetch(f->e, queues, 2, "w", &job, &err), 0);
    assert_string_equal(job->jid, "l");
    zn_job_free(job);
}

static void
test_engine_ack_done_and_twice(void **state)
{
    struct fx *f = *state;
    struct zn_err err;

    push(f, make_job("a", "default", 5));
    free(fetch(f, "default"));
    assert_int_equal(zn_engine_ack(f->e, "a", NULL, &err), 0);
    assert_int_equal(state_of(f, "a"), ZN_STATE_DONE);
    assert_int_equal(zn_engine_ack(f->e, "a", NULL, &err), ZN_ENOTFOUND);
    assert_int_equal(zn_engine_ack(f->e, "missing", NULL, &err), ZN_ENOTFOUND);
}

static void
test_engine_fail_backoff_then_dead(void **state)
{
    struct fx *f = *state;
    struct zn_job *job;

    push(f, make_job("j", "default", 5));
    /* Config: retry 2 (3 tries), backoff 10,30,60. */
    free(fetch(f, "default"));
    fail_it(f, "j");
    job = get(f, "j");
    assert_int_equal(job->state, ZN_STATE_RETRY);
    assert_int_equal(job->next_at, f->now + 10 * 1000);
    assert_string_equal(job->failure.errtype, "Boom");
    zn_job_free(job);
    /* Not before its time. */
    f->now += 9999;
    tick(f);
    expect_fetch(f, "default", NULL);
    f->now += 1;
    tick(f);
    expect_fetch(f, "default", "j");
    fail_it(f, "j");
    job = get(f, "j");
    assert_int_equal(job->state, ZN_STATE_RETRY);
    assert_int_equal(job->next_at, f->now + 30 * 1000);
    zn_job_free(job);
    f->now += 30 * 1000;
    tick(f);
    expect_fetch(f, "default", "j");
    fail_it(f, "j");
    job = get(f, "j");
    assert_int_equal(job->state, ZN_STATE_DEAD);
    assert_string_equal(job->failure.message, "it broke");
    assert_int_equal(job->failures, 3);
    zn_job_free(job);
}

static void
test_engine_backoff_last_value_repeats(void **state)
{
    struct fx *f = *state;
    struct zn_job *job = make_job("r", "default", 5);

    job->retry = 5;
    job->backoff[0] = 1;
    job->backoff[1] = 2;
    job->nbackoff = 2;
    push(f, job);
    for (int i = 0; i < 4; i++) {
        int64_t want = i == 0 ? 1000 : 2000;

        expect_fetch(f, "default", "r");
        fail_it(f, "r");
        job = get(f, "r");
        assert_int_equal(job->state, ZN_STATE_RETRY);
        assert_int_equal(job->next_at - f->now, want);
        zn_job_free(job);
        f->now += want;
        tick(f);
    }
}

static void
test_engine_retry_minus_one_and_zero_go_dead(void **state)
{
    struct fx *f = *state;
    struct zn_job *a = make_job("m1", "default", 5);
    struct zn_job *b = make_job("z0", "default", 5);

    a->retry = -1;
    b->retry = 0;
    push(f, a);
    push(f, b);
    expect_fetch(f, "default", "m1");
    fail_it(f, "m1");
    assert_int_equal(state_of(f, "m1"), ZN_STATE_DEAD);
    expect_fetch(f, "default", "z0");
    fail_it(f, "z0");
    assert_int_equal(state_of(f, "z0"), ZN_STATE_DEAD);
}

static void
test_engine_lease_expiry_records_attempt(void **state)
{
    struct fx *f = *state;
    struct zn_job *job = make_job("l", "default", 5);
    struct zn_attempt *a = NULL;
    struct zn_err err;
    size_t n = 0;

    job->reserve_for = 5;
    push(f, job);
    expect_fetch(f, "default", "l");
    f->now += 4999;
    tick(f);
    assert_int_equal(state_of(f, "l"), ZN_STATE_WORKING);
    f->now += 1;
    tick(f);
    assert_int_equal(state_of(f, "l"), ZN_STATE_RETRY);
    assert_int_equal(f->st->ops->attempts(f->st, "l", &a, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].outcome, "lease expired");
    zn_attempts_free(a, n);
    /* The late ACK of the expired lease is refused. */
    assert_int_equal(zn_engine_ack(f->e, "l", NULL, &err), ZN_ENOTFOUND);
}

static void
test_engine_late_answer_of_old_lease_refused(void **state)
{
    struct fx *f = *state;
    struct zn_engine_failure fl = {.outcome = "failed", .cpu_ms = -1,
                                   .rss_kb = -1};
    struct zn_job *job = make_job("late", "default", 5);
    const char *queues[] = {"default"};
    struct zn_err err;

    job->reserve_for = 1;
    job->backoff[0] = 0;
    job->nbackoff = 1;
    push(f, job);
    expect_fetch(f, "default", "late");          /* leased to w1 */
    f->now += 1000;
    tick(f);                                    /* lease expired */
    tick(f);                                    /* enqueued again */
    job = NULL;
    assert_int_equal(zn_engine_fetch(f->e, queues, 1, "w2", &job, &err), 0);
    assert_non_null(job);
    zn_job_free(job);
    /* w1 answers late: refused, w2's attempt stands. */
    assert_int_equal(zn_engine_ack(f->e, "late", "w1", &err), ZN_ESTATE);
    assert_int_equal(zn_engine_fail(f->e, "late", "w1", &fl, &err), ZN_ESTATE);
    assert_int_equal(state_of(f, "late"), ZN_STATE_WORKING);
    assert_int_equal(zn_engine_ack(f->e, "late", "w2", &err), 0);
    assert_int_equal(state_of(f, "late"), ZN_STATE_DONE);
}

static void
test_engine_worker_gone_requeues_at_once(void **state)
{
    struct fx *f = *state;
    struct zn_engine_failure gone = {.outcome = "worker gone", .cpu_ms = -1,
                                     .rss_kb = -1, .at_once = true};
    struct zn_err err;
    size_t n = 0;

    push(f, make_job("g", "default", 5));
    push(f, make_job("h", "default", 5));
    expect_fetch(f, "default", "g");
    f->nready = 0;
    assert_int_equal(zn_engine_release_worker(f->e, "w1", &gone, &n, &err), 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(f->nready, 1);
    assert_int_equal(state_of(f, "g"), ZN_STATE_ENQUEUED);
    /* Back at its place: FIFO by original order. */
    expect_fetch(f, "default", "g");
    assert_int_equal(zn_engine_release_worker(f->e, "other", &gone, &n, &err),
                     0);
    assert_int_equal(n, 0);
}

static void
test_engine_worker_gone_counts_tries(void **state)
{
    struct fx *f = *state;
    struct zn_engine_failure gone = {.outcome = "worker gone", .cpu_ms = -1,
                                     .rss_kb = -1, .at_once = true};
    struct zn_err err;
    size_t n;

    push(f, make_job("k", "default", 5));
    for (int i = 0; i < 3; i++) {
        expect_fetch(f, "default", "k");
        assert_int_equal(zn_engine_release_worker(f->e, "w1", &gone, &n, &err),
                         0);
        assert_int_equal(zn_engine_commit(f->e, &err), 0);
    }
    /* A job that keeps losing its worker ends dead, not in a loop. */
    assert_int_equal(state_of(f, "k"), ZN_STATE_DEAD);
}

static void
test_engine_unique_for(void **state)
{
    struct fx *f = *state;
    struct zn_job *a = make_job("u1", "default", 5);
    struct zn_job *b = make_job("u2", "default", 5);
    struct zn_job *c = make_job("u3", "default", 5);
    struct zn_err perr, err;

    a->unique_for = 60;
    b->unique_for = 60;
    c->unique_for = 60;
    assert_int_equal(push(f, a), 0);
    f->now += 59 * 1000;
    assert_int_equal(zn_engine_push(f->e, &b, 1, &perr), 0);
    assert_int_equal(perr.code, ZN_EUNIQUE);
    assert_non_null(strstr(perr.msg, "u1"));
    zn_job_free(b);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    f->now += 1000;
    assert_int_equal(push(f, c), 0);
}

static void
test_engine_scheduled_job_waits(void **state)
{
    struct fx *f = *state;
    struct zn_job *job = make_job("s", "default", 5);

    job->at = f->now + 5000;
    push(f, job);
    assert_int_equal(state_of(f, "s"), ZN_STATE_SCHEDULED);
    assert_int_equal(f->nready, 0);
    expect_fetch(f, "default", NULL);
    f->now += 4999;
    tick(f);
    expect_fetch(f, "default", NULL);
    f->now += 1;
    tick(f);
    assert_int_equal(f->nready, 1);
    expect_fetch(f, "default", "s");
}

static void
test_engine_pause_resume(void **state)
{
    struct fx *f = *state;
    struct zn_err err;

    push(f, make_job("p", "mail", 5));
    assert_int_equal(zn_engine_pause(f->e, "mail", true, &err), 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    expect_fetch(f, "mail", NULL);
    f->nready = 0;
    assert_int_equal(zn_engine_pause(f->e, "mail", false, &err), 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    assert_int_equal(f->nready, 1);
    expect_fetch(f, "mail", "p");
}

static void
test_engine_prunes_done_and_dead(void **state)
{
    struct fx *f = *state;
    struct zn_job *d = make_job("dead1", "default", 5);
    struct zn_job *job = NULL;
    struct zn_err err;

    d->retry = -1;
    push(f, make_job("done1", "default", 5));
    push(f, d);
    expect_fetch(f, "default", "done1");
    assert_int_equal(zn_engine_ack(f->e, "done1", NULL, &err), 0);
    expect_fetch(f, "default", "dead1");
    fail_it(f, "dead1");
    /* Done jobs are kept 60 min, dead ones 7 days. */
    f->now += 60 * 60 * 1000 + 1;
    tick(f);
    assert_int_equal(f->st->ops->get(f->st, "done1", &job, &err), ZN_ENOTFOUND);
    assert_int_equal(state_of(f, "dead1"), ZN_STATE_DEAD);
    f->now += 7LL * 24 * 60 * 60 * 1000;
    tick(f);
    assert_int_equal(f->st->ops->get(f->st, "dead1", &job, &err), ZN_ENOTFOUND);
}

/* Old jobs go a batch of 1,000 (PRUNE_BATCH) a tick, until none is left. */
static void
test_engine_prunes_in_batches(void **state)
{
    struct fx *f = *state;
    struct zn_store_query q = {.states = ZN_STATE_BIT(ZN_STATE_DONE)};
    struct zn_err err;
    char jid[32];
    int64_t n = 0;

    for (int i = 0; i < 2500; i++) {
        snprintf(jid, sizeof(jid), "j%d", i);
        assert_int_equal(push(f, make_job(jid, "default", 5)), 0);
        expect_fetch(f, "default", jid);
        assert_int_equal(zn_engine_ack(f->e, jid, NULL, &err), 0);
    }
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    f->now += 60 * 60 * 1000 + 1;
    for (int64_t left = 2500; left > 0; left -= 1000) {
        tick(f);
        assert_int_equal(f->st->ops->count(f->st, &q, &n, &err), 0);
        assert_int_equal(n, left > 1000 ? left - 1000 : 0);
    }
    /* A job done later goes with the next minute's prune, as before. */
    push(f, make_job("late", "default", 5));
    expect_fetch(f, "default", "late");
    assert_int_equal(zn_engine_ack(f->e, "late", NULL, &err), 0);
    f->now += 60 * 60 * 1000 + 1;
    tick(f);
    assert_int_equal(f->st->ops->count(f->st, &q, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void
test_engine_retry_dead_and_remove(void **state)
{
    struct fx *f = *state;
    struct zn_job *d = make_job("x", "default", 5);
    struct zn_store_query q = {.jid = "x"};
    struct zn_job *job = NULL;
    struct zn_err err;
    int64_t n = 0;

    d->retry = 0;
    push(f, d);
    expect_fetch(f, "default", "x");
    fail_it(f, "x");
    f->ready_all = f->nready = 0;
    assert_int_equal(zn_engine_retry_dead(f->e, &q, &n, &err), 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    assert_int_equal(n, 1);
    assert_true(f->ready_all + f->nready > 0);
    assert_int_equal(state_of(f, "x"), ZN_STATE_ENQUEUED);
    q.states = ZN_STATE_BIT(ZN_STATE_ENQUEUED);
    assert_int_equal(zn_engine_remove(f->e, &q, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(f->st->ops->get(f->st, "x", &job, &err), ZN_ENOTFOUND);
}

static void
test_engine_clear_queue_and_flush(void **state)
{
    struct fx *f = *state;
    struct zn_job *job = NULL;
    struct zn_err err;
    int64_t n = 0;

    push(f, make_job("c1", "q", 5));
    push(f, make_job("c2", "q", 5));
    push(f, make_job("o1", "other", 5));
    assert_int_equal(zn_engine_clear_queue(f->e, "q", &n, &err), 0);
    assert_int_equal(n, 2);
    expect_fetch(f, "q", NULL);
    expect_fetch(f, "other", "o1");
    assert_int_equal(zn_engine_flush(f->e, &err), 0);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
    assert_int_equal(f->st->ops->get(f->st, "o1", &job, &err), ZN_ENOTFOUND);
}

static void
test_engine_fail_not_working(void **state)
{
    struct fx *f = *state;
    struct zn_engine_failure fl = {.outcome = "failed", .cpu_ms = -1,
                                   .rss_kb = -1};
    struct zn_err err;

    push(f, make_job("nw", "default", 5));
    assert_int_equal(zn_engine_fail(f->e, "nw", NULL, &fl, &err), ZN_ESTATE);
    assert_non_null(strstr(err.msg, "nw"));
    assert_int_equal(zn_engine_fail(f->e, "none", NULL, &fl, &err),
                     ZN_ENOTFOUND);
}

/*
 * Moves the fixture's engine onto a store in a file, in a new directory
 * that teardown removes.
 */
static void
use_file_store(struct fx *f)
{
    struct zn_sqlite_opts so = {ZN_DURABILITY_FAST, false};
    struct zn_engine_config cfg;
    struct zn_err err;

    zn_engine_free(f->e);
    zn_store_close(f->st);
    f->e = NULL;
    f->st = NULL;
    zn_test_tmpdir(f->dir, sizeof(f->dir), "zn_test_engine");
    zn_test_db_path(f->dir, f->path, sizeof(f->path));
    zn_engine_config_default(&cfg);
    assert_int_equal(zn_store_sqlite_open(f->path, &so, &f->st, &err), 0);
    assert_int_equal(zn_engine_new(f->st, &cfg, &f->clock, &f->e, &err), 0);
    zn_engine_set_ready_cb(f->e, on_ready, f);
}

/*
 * On a store in a file, under a trigger "poison" on table (when when
 * holds), pushes job "a" to queue q and syncs it: the push is answered.
 */
static void
push_poisoned(struct fx *f, const char *table, const char *when)
{
    struct zn_job *job = make_job("a", "q", 5);
    struct zn_err err, perr;

    use_file_store(f);
    zn_test_sqlite_poison(f->path, table, when);
    assert_int_equal(zn_engine_push(f->e, &job, 1, &perr), 0);
    assert_int_equal(perr.code, 0);
    zn_job_free(job);
    assert_int_equal(zn_engine_sync(f->e, &err), 0);
}

/*
 * After the transaction failed, drops the trigger: a push then wakes every
 * fetcher, and the first job fetched is "a", which the rollback took and
 * the journal brought back.
 */
static void
expect_a_replayed(struct fx *f)
{
    const char *queues[] = {"q"};
    struct zn_job *job, *b = make_job("b", "other", 5);
    struct zn_err err, perr;

    zn_test_sqlite_exec(f->path, "DROP TRIGGER poison");
    f->ready_all = f->nready = 0;
    assert_int_equal(zn_engine_push(f->e, &b, 1, &perr), 0);
    zn_job_free(b);
    assert_int_equal(zn_engine_sync(f->e, &err), 0);
    assert_true(f->ready_all > 0);
    assert_int_equal(zn_engine_fetch(f->e, queues, 1, "w1", &job, &err), 0);
    assert_non_null(job);
    assert_string_equal(job->jid, "a");
    zn_job_free(job);
    assert_int_equal(zn_engine_commit(f->e, &err), 0);
}

/*
 * A commit that fails rolls back pushes already answered from the store's
 * journal; they come back with the next transaction, and its commit wakes
 * the fetchers that wait (a trigger makes the first commit fail).
 */
static void
test_engine_failed_commit_wakes_fetchers_after(void **state)
{
    struct fx *f = *state;
    const char *queues[] = {"q"};
    struct zn_job *job;
    struct zn_err err;

    push_poisoned(f, "attempts", "NEW.worker = 'bad'");
    assert_int_equal(zn_engine_fetch(f->e, queues, 1, "bad", &job, &err), 0);
    assert_non_null(job);
    zn_job_free(job);
    assert_int_equal(zn_engine_commit(f->e, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    expect_a_replayed(f);
}

/*
 * The store's deferred work failing at idle (an answered push whose insert
 * a trigger refuses) rolls the transaction back as a failed commit does.
 */
static void
test_engine_failed_idle_rolls_back(void **state)
{
    struct fx *f = *state;
    struct zn_err err;

    push_poisoned(f, "jobs", "NEW.jid = 'a'");
    assert_int_equal(zn_engine_idle(f->e, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "poison"));
    assert_false(zn_engine_pending(f->e));
    expect_a_replayed(f);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_engine_push_fills_defaults),
        T(test_engine_sync_reports_ready),
        T(test_engine_duplicate_jid_refused),
        T(test_engine_priorities_then_fifo),
        T(test_engine_fetch_queue_order),
        T(test_engine_ack_done_and_twice),
        T(test_engine_fail_backoff_then_dead),
        T(test_engine_backoff_last_value_repeats),
        T(test_engine_retry_minus_one_and_zero_go_dead),
        T(test_engine_lease_expiry_records_attempt),
        T(test_engine_late_answer_of_old_lease_refused),
        T(test_engine_worker_gone_requeues_at_once),
        T(test_engine_worker_gone_counts_tries),
        T(test_engine_unique_for),
        T(test_engine_scheduled_job_waits),
        T(test_engine_pause_resume),
        T(test_engine_prunes_done_and_dead),
        T(test_engine_prunes_in_batches),
        T(test_engine_retry_dead_and_remove),
        T(test_engine_clear_queue_and_flush),
        T(test_engine_fail_not_working),
        T(test_engine_failed_commit_wakes_fetchers_after),
        T(test_engine_failed_idle_rolls_back),
    };

    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
