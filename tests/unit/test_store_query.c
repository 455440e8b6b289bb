/*
 * test_store_query.c - the conformance tests of struct zn_store, written
 * against store.h only, second part: list and count with their filters,
 * retry of dead jobs, remove, queue stats, attempts, counters, flush,
 * transactions, and reopening a persistent store. The first part (push,
 * get, fetch, finish, leases, promote) is test_store.c; both run on every
 * back end of zn_sfx_backends[] (store_fx.c, the fixture they share).
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

/* List and count. */

/*
 * j1 q1 mail   [red blue]  enqueued   updated T0
 * j2 q2 mail   [blue]      enqueued   updated T0+1000
 * j3 q1 report []          scheduled  updated T0+2000
 * j4 q2 report [red]       working w1 updated T0+4000
 * j5 q3 mail   []          dead       updated T0+6000
 */
static void
filter_setup(struct zn_store *st)
{
    struct zn_job *j;

    j = zn_sfx_job_make("j1", "q1", "mail", 5);
    zn_sfx_job_tag(j, "red");
    zn_sfx_job_tag(j, "blue");
    assert_int_equal(zn_sfx_push_job(st, j, T0, NULL, NULL), 0);
    j = zn_sfx_job_make("j2", "q2", "mail", 5);
    zn_sfx_job_tag(j, "blue");
    assert_int_equal(zn_sfx_push_job(st, j, T0 + 1000, NULL, NULL), 0);
    j = zn_sfx_job_make("j3", "q1", "report", 5);
    zn_sfx_job_schedule(j, T0 + 100000);
    assert_int_equal(zn_sfx_push_job(st, j, T0 + 2000, NULL, NULL), 0);
    j = zn_sfx_job_make("j4", "q2", "report", 9);
    zn_sfx_job_tag(j, "red");
    assert_int_equal(zn_sfx_push_job(st, j, T0 + 3000, NULL, NULL), 0);
    zn_sfx_fetch_expect(st, "q2", "j4", T0 + 4000);
    j = zn_sfx_job_make("j5", "q3", "mail", 5);
    assert_int_equal(zn_sfx_push_job(st, j, T0 + 4500, NULL, NULL), 0);
    j = zn_sfx_fetch_from(st, "q3", "w2", T0 + 5000);
    assert_non_null(j);
    zn_job_free(j);
    zn_sfx_finish_as(st, "j5", T0 + 6000, ZN_STATE_DEAD, 0);
}

static void
test_store_list_filter_states(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    filter_setup(st);
    zn_sfx_expect_jobs(st, (struct zn_store_query){0}, "j1 j2 j3 j4 j5");
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)},
                       "j1 j2");
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .states = ZN_STATE_BIT(ZN_STATE_SCHEDULED) |
                                         ZN_STATE_BIT(ZN_STATE_DEAD)},
                       "j3 j5");
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .states = ZN_STATE_BIT(ZN_STATE_WORKING)},
                       "j4");
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .states = ZN_STATE_BIT(ZN_STATE_DONE)},
                       "");
}

static void
test_store_list_filter_jid(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    filter_setup(st);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.jid = "j3"}, "j3");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.jid = "nope"}, "");
}

static void
test_store_list_filter_queue_and_jobtype(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    filter_setup(st);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "q1"}, "j1 j3");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "q2"}, "j2 j4");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.jobtype = "mail"},
                       "j1 j2 j5");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.queue = "q1",
                                                   .jobtype = "report"},
                       "j3");
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .queue = "q1",
                               .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)},
                       "j1");
}

static void
test_store_list_filter_tag(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    filter_setup(st);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.tag = "red"}, "j1 j4");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.tag = "blue"}, "j1 j2");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.tag = "green"}, "");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.tag = "red", .queue = "q2"},
                       "j4");
}

static void
test_store_list_filter_worker(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    filter_setup(st);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.worker = "w1"}, "j4");
    /* w2's job is dead: no longer one of its working jobs. */
    zn_sfx_expect_jobs(st, (struct zn_store_query){.worker = "w2"}, "");
}

static void
test_store_list_filter_updated(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);

    filter_setup(st);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.updated_from = T0 + 1000},
                       "j2 j3 j4 j5");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.updated_to = T0 + 4000},
                       "j1 j2 j3");
    zn_sfx_expect_jobs(st, (struct zn_store_query){.updated_from = T0 + 1000,
                                                   .updated_to = T0 + 4000},
                       "j2 j3");
}

static void
test_store_list_paging(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    enum { N = 1200 };
    struct zn_job **jobs = calloc(N, sizeof(*jobs));
    struct zn_err *errs = calloc(N, sizeof(*errs));
    uint64_t *seqs = calloc(N, sizeof(*seqs));
    struct zn_store_query q = {0};
    struct zn_store_list l;
    struct zn_err err = {0};
    size_t seen = 0, pages = 0;
    char jid[16];

    assert_true(jobs && errs && seqs);
    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "p%04d", i);
        jobs[i] = zn_sfx_job_make(jid, "q", "work", 1 + i % 9);
    }
    OK(st->ops->push(st, jobs, N, T0, errs));
    for (int i = 0; i < N; i++) {
        assert_int_equal(errs[i].code, 0);
        seqs[i] = jobs[i]->seq;
        zn_job_free(jobs[i]);
    }
    OK(st->ops->list(st, &q, &l, &err)); /* limit 0: 100 */
    assert_int_equal(l.n, 100);
    assert_int_equal(l.next, seqs[99]);
    zn_store_list_release(&l);
    q.limit = 5000; /* at most 1000 */
    OK(st->ops->list(st, &q, &l, &err));
    assert_int_equal(l.n, 1000);
    zn_store_list_release(&l);

    /* Every job once, in seq order, whatever the page size. */
    q.limit = 250;
    do {
        OK(st->ops->list(st, &q, &l, &err));
        for (size_t i = 0; i < l.n; i++)
            assert_int_equal(l.jobs[i]->seq, seqs[seen++]);
        pages++;
        q.after = l.next;
        zn_store_list_release(&l);
    } while (q.after);
    assert_int_equal(seen, N);
    assert_int_equal(pages, 5);
    free(jobs);
    free(errs);
    free(seqs);
}

/* Retry, remove, queues. */

/* Two failed attempts: the second one sends the job to the dead. */
static void
make_dead(struct zn_store *st, const char *jid, const char *queue)
{
    size_t moved;
    struct zn_err err = {0};

    zn_sfx_push_ok(st, jid, queue, 5, T0);
    zn_sfx_fetch_expect(st, queue, jid, T0);
    zn_sfx_finish_as(st, jid, T0 + 1, ZN_STATE_RETRY, T0 + 10);
    OK(st->ops->promote(st, T0 + 10, 100, &moved, NULL, NULL, &err));
    zn_sfx_fetch_expect(st, queue, jid, T0 + 11);
    zn_sfx_finish_as(st, jid, T0 + 12, ZN_STATE_DEAD, 0);
}

static void
test_store_retry_dead(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {.queue = "q",
                               .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)};
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    int64_t n;
    size_t na;

    make_dead(st, "d1", "q");
    make_dead(st, "d2", "other");
    zn_sfx_push_ok(st, "live", "q", 5, T0);
    /* q.states is ignored: only dead jobs are retried. */
    OK(st->ops->retry_dead(st, &q, T0 + 100, &n, &err));
    assert_int_equal(n, 1);
    g = zn_sfx_get_job(st, "d1");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    assert_int_equal(g->failures, 0);
    assert_int_equal(g->attempts, 2);
    assert_int_equal(g->enqueued_at, T0 + 100);
    zn_job_free(g);
    assert_int_equal(zn_sfx_get_state(st, "d2"), ZN_STATE_DEAD);
    OK(st->ops->attempts(st, "d1", &a, &na, &err));
    assert_int_equal(na, 2);
    zn_attempts_free(a, na);
    /* Back at the end of its queue, behind the job enqueued before. */
    zn_sfx_fetch_expect(st, "q", "live", T0 + 200);
    zn_sfx_fetch_expect(st, "q", "d1", T0 + 200);
    OK(st->ops->attempts(st, "d1", &a, &na, &err));
    assert_int_equal(na, 3);
    assert_int_equal(a[2].n, 3);
    zn_attempts_free(a, na);

    q = (struct zn_store_query){0};
    OK(st->ops->retry_dead(st, &q, T0 + 300, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(zn_sfx_get_state(st, "d2"), ZN_STATE_ENQUEUED);
}

static void
test_store_remove_with_attempts(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {.jid = "a"};
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *j, *g = NULL;
    int64_t n;
    size_t na;

    /* a is the newest job: a store may give its seq to the next one. */
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    j = zn_sfx_job_make("a", "q", "work", 9);
    zn_sfx_job_tag(j, "t");
    assert_int_equal(zn_sfx_push_job(st, j, T0, NULL, NULL), 0);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    zn_sfx_finish_as(st, "a", T0, ZN_STATE_DEAD, 0);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(st->ops->get(st, "a", &g, &err), ZN_ENOTFOUND);
    assert_int_equal(st->ops->attempts(st, "a", &a, &na, &err),
                     ZN_ENOTFOUND);
    zn_sfx_expect_jobs(st, (struct zn_store_query){0}, "b");
    /*
     * The next job, and a new job with the old jid, start with no
     * history and no tags: the attempts and tags went with the job.
     */
    zn_sfx_push_ok(st, "c", "q", 5, T0 + 1);
    zn_sfx_push_ok(st, "a", "q", 5, T0 + 1);
    OK(st->ops->attempts(st, "c", &a, &na, &err));
    assert_int_equal(na, 0);
    zn_attempts_free(a, na);
    OK(st->ops->attempts(st, "a", &a, &na, &err));
    assert_int_equal(na, 0);
    zn_attempts_free(a, na);
    zn_sfx_expect_jobs(st, (struct zn_store_query){.tag = "t"}, "");
    q = (struct zn_store_query){.queue = "q",
                                .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)};
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 3);
    assert_int_equal(zn_sfx_count_of(st, 0), 0);
}

/*
 * Checks queue_stats against the jobs themselves: every count is what
 * count() finds for that queue and state, oldest_enqueued_at is the
 * smallest enqueued_at that list() shows, and no queue with jobs is
 * missing.
 */
static void
expect_stats_true(struct zn_store *st)
{
    struct zn_queue_stats *v;
    struct zn_store_list l;
    struct zn_err err = {0};
    int64_t n, total = 0, all = 0;
    size_t nv;

    OK(st->ops->queue_stats(st, &v, &nv, &err));
    for (size_t i = 0; i < nv; i++) {
        struct zn_store_query q = {.queue = v[i].name, .limit = 1000};
        int64_t oldest = 0;

        for (int s = 0; s < ZN_STATE_COUNT; s++) {
            q.states = ZN_STATE_BIT(s);
            OK(st->ops->count(st, &q, &n, &err));
            if (n != v[i].count[s])
                fail_msg("queue '%s' state %s: stats %lld, count %lld",
                         v[i].name, zn_job_state_name(s),
                         (long long)v[i].count[s], (long long)n);
            total += n;
        }
        q.states = ZN_STATE_BIT(ZN_STATE_ENQUEUED);
        OK(st->ops->list(st, &q, &l, &err));
        for (size_t k = 0; k < l.n; k++)
            if (!oldest || l.jobs[k]->enqueued_at < oldest)
                oldest = l.jobs[k]->enqueued_at;
        zn_store_list_release(&l);
        assert_int_equal(v[i].oldest_enqueued_at, oldest);
    }
    free(v);
    all = zn_sfx_count_of(st, 0);
    assert_int_equal(total, all);
}

/* A batch: at most max jobs, the least recently updated, attempts too. */
static void
test_store_remove_at_most_max(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {.states = ZN_STATE_BIT(ZN_STATE_DONE),
                               .updated_to = T0 + 100, .max = 2};
    const char *jids[] = {"d1", "d2", "d3", "d4"};
    struct zn_attempt *a;
    struct zn_err err = {0};
    int64_t n;
    size_t na;

    /* Pushed in one order, finished in another: age is updated_at. */
    for (int i = 0; i < 4; i++)
        zn_sfx_push_ok(st, jids[i], "q", 5, T0);
    zn_sfx_push_ok(st, "live", "q", 5, T0);
    for (int i = 0; i < 4; i++)
        zn_sfx_fetch_expect(st, "q", jids[i], T0);
    zn_sfx_finish_as(st, "d3", T0 + 1, ZN_STATE_DONE, 0);
    zn_sfx_finish_as(st, "d1", T0 + 2, ZN_STATE_DONE, 0);
    zn_sfx_finish_as(st, "d4", T0 + 3, ZN_STATE_DONE, 0);
    zn_sfx_finish_as(st, "d2", T0 + 200, ZN_STATE_DONE, 0); /* too young */
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 2);
    zn_sfx_expect_jobs(st, (struct zn_store_query){0}, "d2 d4 live");
    assert_int_equal(st->ops->attempts(st, "d3", &a, &na, &err),
                     ZN_ENOTFOUND);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 0);
    zn_sfx_expect_jobs(st, (struct zn_store_query){0}, "d2 live");
    OK(st->ops->attempts(st, "d2", &a, &na, &err));
    assert_int_equal(na, 1);
    zn_attempts_free(a, na);
    expect_stats_true(st);
}

/*
 * A batched remove among jobs of one updated_at: each batch takes whole
 * jobs, their attempts with them, and leaves the others' attempts.
 */
static void
test_store_remove_batches_of_equal_age(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {.states = ZN_STATE_BIT(ZN_STATE_DONE),
                               .max = 2};
    const char *jids[] = {"e1", "e2", "e3", "e4", "e5"};
    struct zn_attempt *a;
    struct zn_err err = {0};
    int64_t n, left = 5;
    size_t na;

    for (int i = 0; i < 5; i++)
        zn_sfx_push_ok(st, jids[i], "q", 5, T0);
    for (int i = 0; i < 5; i++) {
        zn_sfx_fetch_expect(st, "q", jids[i], T0);
        zn_sfx_finish_as(st, jids[i], T0 + 1, ZN_STATE_DONE, 0);
    }
    while (left > 0) {
        OK(st->ops->remove(st, &q, &n, &err));
        assert_int_equal(n, left < 2 ? left : 2);
        left -= n;
        for (int i = 0; i < 5; i++) {
            int rc = st->ops->attempts(st, jids[i], &a, &na, &err);

            if (rc == ZN_ENOTFOUND)
                continue;
            OK(rc);
            assert_int_equal(na, 1);
            zn_attempts_free(a, na);
        }
        assert_int_equal(zn_sfx_count_of(st, 0), left);
    }
    expect_stats_true(st);
}

static struct zn_queue_stats *
stats_find(struct zn_queue_stats *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static void
test_store_queue_stats(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_queue_stats *v, *e;
    struct zn_err err = {0};
    struct zn_job *j;
    size_t n;

    j = zn_sfx_job_make("x", "a", "work", 5);
    j->enqueued_at = T0 + 10;
    assert_int_equal(zn_sfx_push_job(st, j, T0 + 10, NULL, NULL), 0);
    j = zn_sfx_job_make("y", "a", "work", 5);
    j->enqueued_at = T0 + 5;
    assert_int_equal(zn_sfx_push_job(st, j, T0 + 20, NULL, NULL), 0);
    zn_sfx_push_scheduled(st, "s", "a", T0 + 9999);
    zn_sfx_push_ok(st, "w", "b", 5, T0);
    zn_sfx_push_ok(st, "d", "b", 9, T0);
    zn_sfx_fetch_expect(st, "b", "d", T0);
    zn_sfx_finish_as(st, "d", T0, ZN_STATE_DONE, 0);
    zn_sfx_fetch_expect(st, "b", "w", T0);
    OK(st->ops->set_paused(st, "c", true, &err));
    OK(st->ops->set_paused(st, "a", true, &err));
    OK(st->ops->set_paused(st, "gone", true, &err));
    OK(st->ops->set_paused(st, "gone", false, &err));

    OK(st->ops->queue_stats(st, &v, &n, &err));
    assert_int_equal(n, 3);
    assert_string_equal(v[0].name, "a");
    assert_string_equal(v[1].name, "b");
    assert_string_equal(v[2].name, "c");
    e = stats_find(v, n, "a");
    assert_true(e->paused);
    assert_int_equal(e->count[ZN_STATE_ENQUEUED], 2);
    assert_int_equal(e->count[ZN_STATE_SCHEDULED], 1);
    assert_int_equal(e->oldest_enqueued_at, T0 + 5);
    e = stats_find(v, n, "b");
    assert_false(e->paused);
    assert_int_equal(e->count[ZN_STATE_WORKING], 1);
    assert_int_equal(e->count[ZN_STATE_DONE], 1);
    assert_int_equal(e->count[ZN_STATE_ENQUEUED], 0);
    assert_int_equal(e->oldest_enqueued_at, 0);
    e = stats_find(v, n, "c");
    assert_true(e->paused);
    for (int s = 0; s < ZN_STATE_COUNT; s++)
        assert_int_equal(e->count[s], 0);
    free(v);
}

static void
test_store_queue_stats_follow_every_op(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {0};
    struct zn_job *jobs[3];
    struct zn_err errs[3];
    struct zn_err err = {0};
    size_t moved;
    int64_t n;

    jobs[0] = zn_sfx_job_make("a", "q1", "work", 5);
    jobs[1] = zn_sfx_job_make("b", "q2", "work", 5);
    jobs[2] = zn_sfx_job_make("a", "q2", "work", 5); /* refused: not counted */
    OK(st->ops->push(st, jobs, 3, T0, errs));
    for (int i = 0; i < 3; i++)
        zn_job_free(jobs[i]);
    zn_sfx_push_scheduled(st, "s", "q1", T0 + 50);
    zn_sfx_push_ok(st, "c", "q1", 5, T0 + 7);
    zn_sfx_push_ok(st, "d", "q1", 5, T0 + 8);
    expect_stats_true(st);
    zn_sfx_fetch_expect(st, "q1", "a", T0);
    zn_sfx_fetch_expect(st, "q2", "b", T0);
    expect_stats_true(st);
    zn_sfx_finish_as(st, "a", T0 + 1, ZN_STATE_RETRY, T0 + 10);
    zn_sfx_finish_as(st, "b", T0 + 1, ZN_STATE_DEAD, 0);
    expect_stats_true(st);
    OK(st->ops->promote(st, T0 + 100, 10, &moved, NULL, NULL, &err));
    assert_int_equal(moved, 2);
    expect_stats_true(st);
    /* Enqueued at T0 + 7, c waits ahead of the jobs promoted at T0 + 100. */
    zn_sfx_fetch_expect(st, "q1", "c", T0 + 200);
    zn_sfx_finish_as(st, "c", T0 + 201, ZN_STATE_ENQUEUED, 0);
    zn_sfx_fetch_expect(st, "q1", "c", T0 + 202); /* it keeps its place */
    zn_sfx_finish_as(st, "c", T0 + 203, ZN_STATE_DONE, 0);
    expect_stats_true(st);
    OK(st->ops->retry_dead(st, &q, T0 + 300, &n, &err));
    expect_stats_true(st);
    q.queue = "q1";
    q.states = ZN_STATE_BIT(ZN_STATE_ENQUEUED);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 3);
    expect_stats_true(st);
}

static void
test_store_queue_stats_follow_transactions(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};

    zn_sfx_push_ok(st, "a", "q1", 5, T0);
    zn_sfx_push_ok(st, "b", "q2", 5, T0);
    zn_sfx_push_ok(st, "c", "q2", 5, T0);
    /* Inside a transaction stats see its changes; a rollback undoes them. */
    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "e", "q3", 5, T0 + 400);
    zn_sfx_fetch_expect(st, "q2", "b", T0 + 401);
    expect_stats_true(st);
    zn_sfx_fetch_expect(st, "q1", "a", T0 + 402);
    st->ops->rollback(st);
    expect_stats_true(st);
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q2", "b", T0 + 500);
    zn_sfx_push_ok(st, "f", "q3", 5, T0 + 501);
    OK(st->ops->commit(st, &err));
    expect_stats_true(st);
    /* A flush inside a transaction also drops the counts pending in it. */
    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "g", "q4", 5, T0 + 600);
    OK(st->ops->flush(st, &err));
    zn_sfx_push_ok(st, "h", "q5", 5, T0 + 601);
    OK(st->ops->commit(st, &err));
    expect_stats_true(st);
    assert_int_equal(zn_sfx_count_of(st, 0), 1);
}

static void
test_store_attempts_oldest_first(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};
    struct zn_attempt *a = NULL;
    struct zn_job *g;
    size_t n = 99;

    assert_int_equal(st->ops->attempts(st, "nope", &a, &n, &err),
                     ZN_ENOTFOUND);
    zn_sfx_push_ok(st, "a", "q", 5, T0);
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 0);
    zn_attempts_free(a, n);
    for (int i = 0; i < 3; i++) {
        char wid[8];

        snprintf(wid, sizeof(wid), "w%d", i);
        g = zn_sfx_fetch_from(st, "q", wid, T0 + i * 100);
        assert_non_null(g);
        zn_job_free(g);
        zn_sfx_finish_as(st, "a", T0 + i * 100 + 50,
                         i < 2 ? ZN_STATE_ENQUEUED : ZN_STATE_DONE, 0);
    }
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        char wid[8];

        snprintf(wid, sizeof(wid), "w%d", i);
        assert_int_equal(a[i].n, i + 1);
        assert_string_equal(a[i].worker, wid);
        assert_int_equal(a[i].started_at, T0 + i * 100);
        assert_int_equal(a[i].ended_at, T0 + i * 100 + 50);
        assert_string_equal(a[i].outcome, i < 2 ? "failed" : "ok");
    }
    zn_attempts_free(a, n);
}

static void
test_store_counters(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_counters c = {1, 1, 1};
    struct zn_err err = {0};

    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 0);
    assert_int_equal(c.processed, 0);
    assert_int_equal(c.failed, 0);
    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    zn_sfx_push_ok(st, "c", "q", 5, T0);
    assert_int_equal(zn_sfx_push_job(st, zn_sfx_job_make("a", "q", "w", 5),
                                     T0, NULL, NULL), ZN_EEXIST);
    zn_sfx_fetch_expect(st, "q", "a", T0);
    zn_sfx_finish_as(st, "a", T0, ZN_STATE_DONE, 0);
    zn_sfx_fetch_expect(st, "q", "b", T0);
    zn_sfx_finish_as(st, "b", T0, ZN_STATE_RETRY, T0 + 1);
    zn_sfx_fetch_expect(st, "q", "c", T0);
    zn_sfx_finish_as(st, "c", T0, ZN_STATE_DEAD, 0);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 3);
    assert_int_equal(c.processed, 1);
    assert_int_equal(c.failed, 2);
}

static void
test_store_flush_everything(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_counters c;
    struct zn_queue_stats *v;
    struct zn_attempt *a;
    struct zn_err err = {0};
    size_t n;

    zn_sfx_push_ok(st, "a", "p", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "b", T0);
    OK(st->ops->set_paused(st, "p", true, &err));
    OK(st->ops->flush(st, &err));
    assert_int_equal(zn_sfx_count_of(st, 0), 0);
    assert_int_equal(st->ops->attempts(st, "b", &a, &n, &err), ZN_ENOTFOUND);
    OK(st->ops->queue_stats(st, &v, &n, &err));
    assert_int_equal(n, 0);
    free(v);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 0);
    /* Jobs pushed after it start with no history, if seqs start again. */
    zn_sfx_push_ok(st, "c", "q", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    OK(st->ops->attempts(st, "b", &a, &n, &err));
    assert_int_equal(n, 0);
    zn_attempts_free(a, n);
    /* The pause went with the flush. */
    zn_sfx_push_ok(st, "a", "p", 5, T0);
    zn_sfx_fetch_expect(st, "p", "a", T0);
}

/* Transactions. */

static void
test_store_rollback_discards_writes(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *g = NULL;
    struct zn_err err = {0};

    zn_sfx_push_ok(st, "kept", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "lost", "q", 5, T0);
    zn_sfx_fetch_expect(st, "q", "kept", T0);
    OK(st->ops->set_paused(st, "q", true, &err));
    st->ops->rollback(st);
    assert_int_equal(st->ops->get(st, "lost", &g, &err), ZN_ENOTFOUND);
    assert_int_equal(zn_sfx_get_state(st, "kept"), ZN_STATE_ENQUEUED);
    /* The pause was rolled back too. */
    zn_sfx_fetch_expect(st, "q", "kept", T0);
}

/*
 * Inside a transaction (the engine's way of working) a store may hand
 * jobs out from memory and write their leases later: every change to the
 * ready jobs must still be seen by the next fetch.
 */
static void
test_store_transaction_fetch_follows_changes(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_query q = {.jid = "c"};
    struct zn_job *s = zn_sfx_job_make("s", "q", "work", 9);
    struct zn_err err = {0};
    int64_t n = 0;
    size_t moved = 0;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    zn_sfx_push_ok(st, "c", "q", 5, T0);
    zn_sfx_push_ok(st, "d", "q", 5, T0);
    zn_sfx_push_ok(st, "e", "q", 5, T0);
    zn_sfx_job_schedule(s, T0 + 100);
    assert_int_equal(zn_sfx_push_job(st, s, T0, NULL, NULL), 0);
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q", "a", T0 + 1);
    /* A push of higher priority comes first. */
    zn_sfx_push_ok(st, "x", "q", 9, T0 + 2);
    zn_sfx_fetch_expect(st, "q", "x", T0 + 3);
    /* A removed job is not handed out. */
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    zn_sfx_fetch_expect(st, "q", "b", T0 + 4);
    zn_sfx_fetch_expect(st, "q", "d", T0 + 4);
    /* A job handed back keeps its place. */
    zn_sfx_finish_as(st, "d", T0 + 5, ZN_STATE_ENQUEUED, 0);
    zn_sfx_fetch_expect(st, "q", "d", T0 + 6);
    /* So do a promoted job and a retried dead one. */
    zn_sfx_push_ok(st, "y", "q", 9, T0 + 7);
    zn_sfx_fetch_expect(st, "q", "y", T0 + 8);
    zn_sfx_finish_as(st, "y", T0 + 9, ZN_STATE_DEAD, 0);
    OK(st->ops->promote(st, T0 + 100, 10, &moved, NULL, NULL, &err));
    assert_int_equal(moved, 1);
    zn_sfx_fetch_expect(st, "q", "s", T0 + 101);
    q = (struct zn_store_query){.jid = "y"};
    OK(st->ops->retry_dead(st, &q, T0 + 102, &n, &err));
    assert_int_equal(n, 1);
    zn_sfx_fetch_expect(st, "q", "y", T0 + 103);
    /* A push after the jobs read ahead comes after them. */
    zn_sfx_push_ok(st, "f", "q", 5, T0 + 105);
    zn_sfx_fetch_expect(st, "q", "e", T0 + 106);
    zn_sfx_fetch_expect(st, "q", "f", T0 + 107);
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 108);
    OK(st->ops->commit(st, &err));
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .states = ZN_STATE_BIT(ZN_STATE_WORKING)},
                       "a b d e s x y f");
    zn_sfx_expect_jobs(st, (struct zn_store_query){
                               .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)},
                       "");
    expect_stats_true(st);
}

/* A job with every field set, ready, its enqueue time left to the store. */
static struct zn_job *
job_full(const char *jid)
{
    struct zn_job *j = zn_sfx_job_make(jid, "q", "send_mail", 7);
    char args[64];

    /* Args of its own: unique_for would refuse an equal job. */
    snprintf(args, sizeof(args), "[\"%s\",{\"k\":1}]", jid);
    zn_sfx_job_set_all(j, args);
    j->enqueued_at = 0;
    return j;
}

/* A fetched job, and the same job read back by get, encode alike. */
static void
expect_fetched_is_row(struct zn_store *st, const char *jid, int64_t now)
{
    struct zn_job *f = zn_sfx_fetch_from(st, "q", "w1", now), *g;
    char *a, *b;

    assert_non_null(f);
    assert_string_equal(f->jid, jid);
    g = zn_sfx_get_job(st, jid);
    a = zn_job_encode(f, true);
    b = zn_job_encode(g, true);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    assert_int_equal(f->seq, g->seq);
    assert_int_equal(f->enqueued_at, now - 1);
    assert_int_equal(f->updated_at, now);
    free(a);
    free(b);
    zn_job_free(f);
    zn_job_free(g);
}

/*
 * In a transaction a job may come from memory: pushed while the store
 * held every ready job of its queue. It must be the job its row holds.
 */
static void
test_store_transaction_fetched_job_is_its_row(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_err err = {0};

    assert_int_equal(zn_sfx_push_job(st, job_full("cold"), T0 + 1, NULL,
                                     NULL), 0);
    OK(st->ops->begin(st, &err));
    expect_fetched_is_row(st, "cold", T0 + 2);
    zn_sfx_fetch_expect(st, "q", NULL, T0 + 3);
    assert_int_equal(zn_sfx_push_job(st, job_full("warm"), T0 + 4, NULL,
                                     NULL), 0);
    expect_fetched_is_row(st, "warm", T0 + 5);
    OK(st->ops->commit(st, &err));
    expect_stats_true(st);
}

/* A lease and its ACK in a transaction are seen by every query. */
static void
test_store_transaction_leases_are_seen(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_outcome o = {.next = ZN_STATE_DONE, .outcome = "ok",
                                 .cpu_ms = 7, .rss_kb = 900,
                                 .worker = "w2"};
    struct zn_store_query q = {.worker = "w1"};
    struct zn_store_counters c;
    struct zn_store_list l;
    struct zn_attempt *a = NULL;
    struct zn_err err = {0};
    struct zn_job *g;
    size_t n = 0;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    zn_sfx_push_ok(st, "b", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    zn_job_free(zn_sfx_fetch_from(st, "q", "w1", T0 + 10));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_WORKING);
    assert_string_equal(g->worker, "w1");
    assert_int_equal(g->attempts, 1);
    assert_int_equal(g->lease_until, T0 + 10 + 300000);
    zn_job_free(g);
    zn_sfx_expect_jobs(st, q, "a");
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 1);
    assert_string_equal(a[0].worker, "w1");
    assert_int_equal(a[0].started_at, T0 + 10);
    assert_int_equal(a[0].ended_at, 0);
    zn_attempts_free(a, n);
    OK(st->ops->expired(st, T0 + 10 + 300000, 10, &l, &err));
    assert_int_equal(l.n, 1);
    assert_string_equal(l.jobs[0]->jid, "a");
    zn_store_list_release(&l);
    expect_stats_true(st);

    /* The ACK: the lease's worker only, once. */
    zn_job_free(zn_sfx_fetch_from(st, "q", "w1", T0 + 11));
    assert_int_equal(st->ops->finish(st, "b", T0 + 20, &o, &err),
                     ZN_ESTATE);
    o.worker = "w1";
    OK(st->ops->finish(st, "b", T0 + 20, &o, &err));
    assert_int_equal(st->ops->finish(st, "b", T0 + 21, &o, &err),
                     ZN_ENOTFOUND);
    g = zn_sfx_get_job(st, "b");
    assert_int_equal(g->state, ZN_STATE_DONE);
    assert_null(g->worker);
    assert_int_equal(g->attempts, 1);
    assert_int_equal(g->updated_at, T0 + 20);
    zn_job_free(g);
    OK(st->ops->attempts(st, "b", &a, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(a[0].started_at, T0 + 11);
    assert_int_equal(a[0].ended_at, T0 + 20);
    assert_string_equal(a[0].outcome, "ok");
    assert_int_equal(a[0].cpu_ms, 7);
    assert_int_equal(a[0].rss_kb, 900);
    zn_attempts_free(a, n);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 1);
    expect_stats_true(st);
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_get_state(st, "a"), ZN_STATE_WORKING);
    assert_int_equal(zn_sfx_get_state(st, "b"), ZN_STATE_DONE);
    expect_stats_true(st);

    /* An ACK with an outcome of its own keeps it. */
    zn_sfx_push_ok(st, "c", "q", 5, T0 + 30);
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q", "c", T0 + 31);
    o.outcome = "skipped";
    o.worker = NULL;
    OK(st->ops->finish(st, "c", T0 + 32, &o, &err));
    OK(st->ops->attempts(st, "c", &a, &n, &err));
    assert_int_equal(n, 1);
    assert_string_equal(a[0].outcome, "skipped");
    zn_attempts_free(a, n);
    OK(st->ops->commit(st, &err));
}

/* A rolled back fetch and ACK leave the job ready, with no attempt. */
static void
test_store_transaction_rollback_hands_out_again(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_store_counters c;
    struct zn_attempt *a = NULL;
    struct zn_err err = {0};
    struct zn_job *g;
    size_t n = 99;

    zn_sfx_push_ok(st, "a", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q", "a", T0 + 1);
    zn_sfx_finish_as(st, "a", T0 + 2, ZN_STATE_DONE, 0);
    st->ops->rollback(st);
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    assert_int_equal(g->attempts, 0);
    zn_job_free(g);
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 0);
    zn_attempts_free(a, n);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 0);
    expect_stats_true(st);
    OK(st->ops->begin(st, &err));
    zn_sfx_fetch_expect(st, "q", "a", T0 + 3);
    OK(st->ops->commit(st, &err));
    g = zn_sfx_get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_WORKING);
    assert_int_equal(g->attempts, 1);
    zn_job_free(g);
}

/*
 * Many jobs fetched and ACKed in one transaction, some left working among
 * them: each row, attempt and count is the job's own. More jobs than the
 * SQLite store reads ahead at once, so some of its leases and ACKs are
 * written in the middle of the transaction (the next read settles them),
 * the others at the commit.
 */
static void
test_store_transaction_acks_many(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    enum { N = 150 };
    struct zn_store_outcome o = {.next = ZN_STATE_DONE, .outcome = "ok"};
    struct zn_store_counters c;
    struct zn_attempt *a = NULL;
    struct zn_err err = {0};
    struct zn_job *g;
    char jid[16];
    int acked = 0;
    size_t n = 0;

    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "m%02d", i);
        zn_sfx_push_ok(st, jid, "q", 5, T0 + i);
    }
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "m%02d", i);
        zn_sfx_fetch_expect(st, "q", jid, T0 + 100 + i);
    }
    for (int i = 0; i < N; i++) {
        if (i % 7 == 3)
            continue; /* left working */
        snprintf(jid, sizeof(jid), "m%02d", i);
        o.cpu_ms = i;
        o.rss_kb = 1000 + i;
        OK(st->ops->finish(st, jid, T0 + 1000 + i, &o, &err));
        acked++;
    }
    OK(st->ops->commit(st, &err));
    for (int i = 0; i < N; i++) {
        bool done = i % 7 != 3;

        snprintf(jid, sizeof(jid), "m%02d", i);
        g = zn_sfx_get_job(st, jid);
        assert_int_equal(g->state, done ? ZN_STATE_DONE : ZN_STATE_WORKING);
        assert_int_equal(g->attempts, 1);
        assert_int_equal(g->updated_at, done ? T0 + 1000 + i : T0 + 100 + i);
        assert_int_equal(g->lease_until, done ? 0 : T0 + 100 + i + 300000);
        if (done)
            assert_null(g->worker);
        else
            assert_string_equal(g->worker, "w1");
        zn_job_free(g);
        OK(st->ops->attempts(st, jid, &a, &n, &err));
        assert_int_equal(n, 1);
        assert_string_equal(a[0].worker, "w1");
        assert_int_equal(a[0].started_at, T0 + 100 + i);
        assert_int_equal(a[0].ended_at, done ? T0 + 1000 + i : 0);
        if (done) {
            assert_string_equal(a[0].outcome, "ok");
            assert_int_equal(a[0].cpu_ms, i);
            assert_int_equal(a[0].rss_kb, 1000 + i);
        } else {
            assert_null(a[0].outcome);
        }
        zn_attempts_free(a, n);
    }
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, acked);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_DONE)), acked);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)),
                     N - acked);
    expect_stats_true(st);
}

static void
test_store_commit_keeps_writes(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    struct zn_job *jobs[3];
    struct zn_err errs[3];
    struct zn_err err = {0};

    zn_sfx_push_ok(st, "x", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    assert_int_equal(st->ops->begin(st, &err), ZN_ESTATE);
    jobs[0] = zn_sfx_job_make("a", "q", "work", 5);
    jobs[1] = zn_sfx_job_make("x", "q", "work", 5);
    jobs[2] = zn_sfx_job_make("b", "q", "work", 5);
    OK(st->ops->push(st, jobs, 3, T0, errs));
    assert_int_equal(errs[1].code, ZN_EEXIST);
    for (int i = 0; i < 3; i++)
        zn_job_free(jobs[i]);
    zn_sfx_fetch_expect(st, "q", "x", T0);
    OK(st->ops->commit(st, &err));
    assert_int_equal(st->ops->commit(st, &err), ZN_ESTATE);
    zn_sfx_expect_jobs(st, (struct zn_store_query){0}, "x a b");
    assert_int_equal(zn_sfx_get_state(st, "x"), ZN_STATE_WORKING);
}

static void
test_store_many_jobs_one_transaction(void **state)
{
    struct zn_store *st = zn_sfx_st_of(state);
    enum { N = 100000, BATCH = 1000, HIGH = 99000 };
    struct zn_job *jobs[BATCH];
    struct zn_err errs[BATCH];
    struct zn_err err = {0};
    char jid[16];

    OK(st->ops->begin(st, &err));
    for (int b = 0; b < N; b += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            snprintf(jid, sizeof(jid), "j%06d", b + i);
            jobs[i] = zn_sfx_job_make(jid, "bulk", "work",
                                      b + i < HIGH ? 5 : 9);
        }
        OK(st->ops->push(st, jobs, BATCH, T0, errs));
        for (int i = 0; i < BATCH; i++) {
            assert_int_equal(errs[i].code, 0);
            zn_job_free(jobs[i]);
        }
    }
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), N);

    /* The high-priority tail first, in push order, then the rest. */
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < 1500; i++) {
        int want = i < N - HIGH ? HIGH + i : i - (N - HIGH);

        snprintf(jid, sizeof(jid), "j%06d", want);
        zn_sfx_fetch_expect(st, "bulk", jid, T0 + 1);
    }
    OK(st->ops->commit(st, &err));
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)), 1500);
    assert_int_equal(zn_sfx_count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)),
                     N - 1500);
}

/*
 * sync: inside a transaction, the pushes so far are made durable without
 * a commit (or the store says it cannot, and the caller commits). Either
 * way the transaction goes on, its jobs visible to this handle, and a
 * later commit keeps them with what came after.
 */
static void
test_store_sync_keeps_the_transaction(void **state)
{
    struct zn_sfx *f = *state;
    struct zn_store *st = f->st;
    struct zn_err err = {0};
    int rc;

    OK(st->ops->begin(st, &err));
    zn_sfx_push_ok(st, "s1", "q", 5, T0);
    rc = st->ops->sync ? st->ops->sync(st, &err) : ZN_ESTATE;
    assert_true(rc == 0 || rc == ZN_ESTATE);
    if (rc == ZN_ESTATE)
        OK(st->ops->commit(st, &err)); /* what the engine does then */
    else
        zn_sfx_push_ok(st, "s2", "q", 5, T0);
    zn_job_free(zn_sfx_get_job(st, "s1"));
    if (rc == 0)
        OK(st->ops->commit(st, &err));
    zn_sfx_fetch_expect(st, "q", "s1", T0);
    assert_int_equal(zn_sfx_count_of(st, 0), rc == 0 ? 2 : 1);
    expect_stats_true(st);
}

/* Persistence: back ends whose data outlives a handle. */

static void
test_store_reopen_keeps_data(void **state)
{
    struct zn_sfx *f = *state;
    struct zn_err err = {0};
    struct zn_job *g;
    uint64_t seq;

    if (!f->be->persistent)
        skip();
    seq = zn_sfx_push_ok(f->st, "a", "q", 5, T0);
    zn_sfx_push_ok(f->st, "b", "q", 5, T0);
    zn_sfx_fetch_expect(f->st, "q", "a", T0);
    zn_store_close(f->st);
    f->st = NULL;
    OK(f->be->open(f->dir, false, &f->st, &err));
    g = zn_sfx_get_job(f->st, "a");
    assert_int_equal(g->state, ZN_STATE_WORKING);
    assert_int_equal(g->seq, seq);
    zn_job_free(g);
    expect_stats_true(f->st);
    zn_sfx_fetch_expect(f->st, "q", "b", T0);
    assert_true(zn_sfx_push_ok(f->st, "c", "q", 5, T0) > seq + 1);
    expect_stats_true(f->st);
}

static void
test_store_readonly_reads_but_refuses_writes(void **state)
{
    struct zn_sfx *f = *state;
    struct zn_store_outcome o = {.next = ZN_STATE_DONE};
    struct zn_store_query q = {0};
    struct zn_store_list l;
    struct zn_store *ro;
    struct zn_err err = {0}, errs[1];
    struct zn_job *job;
    int64_t n;

    if (!f->be->persistent)
        skip();
    zn_sfx_push_ok(f->st, "a", "q", 5, T0);
    OK(f->be->open(f->dir, true, &ro, &err));
    zn_job_free(zn_sfx_get_job(ro, "a"));
    OK(ro->ops->list(ro, &q, &l, &err));
    assert_int_equal(l.n, 1);
    zn_store_list_release(&l);

    job = zn_sfx_job_make("b", "q", "work", 5);
    assert_true(ro->ops->push(ro, &job, 1, T0, errs) < 0);
    assert_true(errs[0].code < 0);
    zn_job_free(job);
    job = NULL;
    assert_true(ro->ops->fetch(ro, (const char *const[]){"q"}, 1, "w", T0,
                               &job, &err) < 0);
    assert_null(job);
    assert_true(ro->ops->finish(ro, "a", T0, &o, &err) < 0);
    assert_true(ro->ops->flush(ro, &err) < 0);
    assert_true(ro->ops->set_paused(ro, "q", true, &err) < 0);

    /* It sees what the writer commits later. */
    zn_sfx_push_ok(f->st, "c", "q", 5, T0);
    OK(ro->ops->count(ro, &q, &n, &err));
    assert_int_equal(n, 2);
    zn_store_close(ro);
}

static const struct CMUnitTest generic_tests[] = {
    ZN_SFX_TEST(test_store_list_filter_states),
    ZN_SFX_TEST(test_store_list_filter_jid),
    ZN_SFX_TEST(test_store_list_filter_queue_and_jobtype),
    ZN_SFX_TEST(test_store_list_filter_tag),
    ZN_SFX_TEST(test_store_list_filter_worker),
    ZN_SFX_TEST(test_store_list_filter_updated),
    ZN_SFX_TEST(test_store_list_paging),
    ZN_SFX_TEST(test_store_retry_dead),
    ZN_SFX_TEST(test_store_remove_with_attempts),
    ZN_SFX_TEST(test_store_remove_at_most_max),
    ZN_SFX_TEST(test_store_remove_batches_of_equal_age),
    ZN_SFX_TEST(test_store_queue_stats),
    ZN_SFX_TEST(test_store_queue_stats_follow_every_op),
    ZN_SFX_TEST(test_store_queue_stats_follow_transactions),
    ZN_SFX_TEST(test_store_attempts_oldest_first),
    ZN_SFX_TEST(test_store_counters),
    ZN_SFX_TEST(test_store_flush_everything),
    ZN_SFX_TEST(test_store_rollback_discards_writes),
    ZN_SFX_TEST(test_store_transaction_fetch_follows_changes),
    ZN_SFX_TEST(test_store_transaction_fetched_job_is_its_row),
    ZN_SFX_TEST(test_store_transaction_leases_are_seen),
    ZN_SFX_TEST(test_store_transaction_rollback_hands_out_again),
    ZN_SFX_TEST(test_store_transaction_acks_many),
    ZN_SFX_TEST(test_store_commit_keeps_writes),
    ZN_SFX_TEST(test_store_many_jobs_one_transaction),
    ZN_SFX_TEST(test_store_sync_keeps_the_transaction),
    ZN_SFX_TEST(test_store_reopen_keeps_data),
    ZN_SFX_TEST(test_store_readonly_reads_but_refuses_writes),
};

int
main(void)
{
    return zn_sfx_run(generic_tests, ZN_ARRAY_LEN(generic_tests));
}
