/*
 * test_store.c - the conformance tests of struct zn_store, written against
 * store.h only. Every back end runs all of them: a back end joins by
 * adding a row to backends[], a function that opens a fresh store in a
 * test's own directory. The sqlite back end's own tests (migrations,
 * schema versions, query plans, damaged rows) are in test_store_sqlite.c.
 *
 * Time is injected: every call gets its own "now", counted from T0.
 * Jobs are built by filling struct zn_job, not by parsing JSON.
 */
#include "compat.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/sqlite.h"
#include "store/store.h"
#include "support/files.h"

#define T0 INT64_C(1700000000000)

/* Back ends. */

struct backend {
    const char *name;
    bool persistent; /* data survives close and reopen */
    /* Opens the store kept in dir, a fresh directory of this test. */
    int (*open)(const char *dir, bool readonly, struct zn_store **out,
                struct zn_err *err);
};

static void
db_path(const char *dir, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/zenith.db", dir);

    assert_true(n > 0 && (size_t)n < size);
}

static int
open_sqlite_memory(const char *dir, bool readonly, struct zn_store **out,
                   struct zn_err *err)
{
    struct zn_sqlite_opts opts = {ZN_DURABILITY_FAST, readonly};

    (void)dir;
    return zn_store_sqlite_open(":memory:", &opts, out, err);
}

static int
open_sqlite_file(const char *dir, bool readonly, struct zn_store **out,
                 struct zn_err *err)
{
    struct zn_sqlite_opts opts = {ZN_DURABILITY_FULL, readonly};
    char path[PATH_MAX];

    db_path(dir, path, sizeof(path));
    return zn_store_sqlite_open(path, &opts, out, err);
}

static const struct backend backends[] = {
    {"sqlite :memory:", false, open_sqlite_memory},
    {"sqlite file", true, open_sqlite_file},
};

/* Fixture: a directory of its own and a store opened in it. */

struct fx {
    const struct backend *be;
    char dir[PATH_MAX];
    struct zn_store *st;
};

static void
ok_(int rc, const struct zn_err *err, const char *call)
{
    if (rc != 0)
        fail_msg("%s: %s: %s", call, zn_err_name(rc), err->msg);
}

/* Asserts that call returned 0; needs a struct zn_err err in scope. */
#define OK(call) ok_((call), &err, #call)

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct zn_err err = {0};

    assert_non_null(f);
    f->be = *state;
    zn_test_tmpdir(f->dir, sizeof(f->dir), "zn_test_store");
    OK(f->be->open(f->dir, false, &f->st, &err));
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_store_close(f->st);
    zn_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Helpers. */

static struct zn_job *
job_make(const char *jid, const char *queue, const char *jobtype,
         int priority)
{
    struct zn_job *j = zn_job_new();

    assert_non_null(j);
    snprintf(j->jid, sizeof(j->jid), "%s", jid);
    snprintf(j->queue, sizeof(j->queue), "%s", queue);
    j->jobtype = strdup(jobtype);
    j->args = strdup("[1,\"a\"]");
    assert_non_null(j->jobtype);
    assert_non_null(j->args);
    j->priority = priority;
    j->retry = 3;
    j->reserve_for = 300;
    j->created_at = T0;
    j->enqueued_at = T0;
    j->state = ZN_STATE_ENQUEUED;
    return j;
}

static void
job_tag(struct zn_job *j, const char *tag)
{
    char **grown = realloc(j->tags, (j->ntags + 1) * sizeof(*grown));

    assert_non_null(grown);
    j->tags = grown;
    j->tags[j->ntags] = strdup(tag);
    assert_non_null(j->tags[j->ntags]);
    j->ntags++;
}

static void
job_schedule(struct zn_job *j, int64_t at)
{
    j->state = ZN_STATE_SCHEDULED;
    j->at = at;
    j->next_at = at;
    j->enqueued_at = 0;
}

/*
 * Pushes one job at now and frees it. Returns the refusal code (0 when
 * accepted); the store itself must not fail. *seq gets the job's seq.
 */
static int
push_job(struct zn_store *st, struct zn_job *job, int64_t now,
         struct zn_err *refused, uint64_t *seq)
{
    struct zn_err e = {0};
    int rc = st->ops->push(st, &job, 1, now, &e);

    if (rc != 0)
        fail_msg("push '%s': %s: %s", job->jid, zn_err_name(rc), e.msg);
    if (seq)
        *seq = job->seq;
    if (refused)
        *refused = e;
    zn_job_free(job);
    return e.code;
}

/* Pushes an enqueued job that must be accepted; returns its seq. */
static uint64_t
push_ok(struct zn_store *st, const char *jid, const char *queue,
        int priority, int64_t now)
{
    struct zn_err e;
    uint64_t seq = 0;
    int rc = push_job(st, job_make(jid, queue, "work", priority), now, &e,
                      &seq);

    if (rc != 0)
        fail_msg("push '%s' refused: %s", jid, e.msg);
    return seq;
}

static struct zn_job *
fetch_from(struct zn_store *st, const char *queue, const char *wid,
           int64_t now)
{
    const char *queues[] = {queue};
    struct zn_job *job = NULL;
    struct zn_err err = {0};

    OK(st->ops->fetch(st, queues, 1, wid, now, &job, &err));
    return job;
}

/* Fetches the next job of queue and checks it is jid. */
static void
fetch_expect(struct zn_store *st, const char *queue, const char *jid,
             int64_t now)
{
    struct zn_job *job = fetch_from(st, queue, "w1", now);

    if (!jid) {
        if (job)
            fail_msg("fetch from '%s': want nothing, got '%s'", queue,
                     job->jid);
        return;
    }
    if (!job)
        fail_msg("fetch from '%s': want '%s', got nothing", queue, jid);
    assert_string_equal(job->jid, jid);
    zn_job_free(job);
}

static void
finish_as(struct zn_store *st, const char *jid, int64_t now,
          enum zn_job_state next, int64_t next_at)
{
    struct zn_store_outcome o = {
        .next = next, .next_at = next_at, .cpu_ms = -1, .rss_kb = -1,
        .outcome = next == ZN_STATE_DONE ? "ok" : "failed",
        .errtype = next == ZN_STATE_DONE ? NULL : "RuntimeError",
        .message = next == ZN_STATE_DONE ? NULL : "boom",
    };
    struct zn_err err = {0};

    OK(st->ops->finish(st, jid, now, &o, &err));
}

static struct zn_job *
get_job(struct zn_store *st, const char *jid)
{
    struct zn_job *job = NULL;
    struct zn_err err = {0};

    OK(st->ops->get(st, jid, &job, &err));
    assert_non_null(job);
    return job;
}

static int
get_state(struct zn_store *st, const char *jid)
{
    struct zn_job *job = get_job(st, jid);
    int state = (int)job->state;

    zn_job_free(job);
    return state;
}

static int64_t
count_of(struct zn_store *st, unsigned states)
{
    struct zn_store_query q = {.states = states};
    struct zn_err err = {0};
    int64_t n = -1;

    OK(st->ops->count(st, &q, &n, &err));
    return n;
}

/*
 * Lists every page of q (two jobs a page, so paging runs too) and counts
 * q; both must give the jids in want, e.g. "a b c", in seq order.
 */
static void
expect_jobs(struct zn_store *st, struct zn_store_query q, const char *want)
{
    struct zn_store_list l;
    struct zn_err err = {0};
    char got[2048] = "";
    size_t len = 0;
    int64_t n = -1, total = 0;
    uint64_t last = 0;

    q.after = 0;
    q.limit = 2;
    do {
        OK(st->ops->list(st, &q, &l, &err));
        for (size_t i = 0; i < l.n; i++) {
            assert_true(l.jobs[i]->seq > last);
            last = l.jobs[i]->seq;
            len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s",
                                    len ? " " : "", l.jobs[i]->jid);
            assert_true(len < sizeof(got));
            total++;
        }
        q.after = l.next;
        zn_store_list_release(&l);
    } while (q.after);
    assert_string_equal(got, want);
    OK(st->ops->count(st, &q, &n, &err));
    assert_int_equal(n, total);
}

static struct zn_store *
st_of(void **state)
{
    return ((struct fx *)*state)->st;
}

/* Sets every optional field of j, args as given. */
static void
job_set_all(struct zn_job *j, const char *args)
{
    free(j->args);
    j->args = strdup(args);
    j->custom = strdup("{\"trace\":\"abc\"}");
    job_tag(j, "red");
    job_tag(j, "bl\"ue \xc3\xa9");
    j->backoff[0] = 10;
    j->backoff[1] = 30;
    j->backoff[2] = 60;
    j->nbackoff = 3;
    j->retry = 5;
    j->reserve_for = 120;
    j->unique_for = 30;
    j->backtrace_lines = 8;
    j->created_at = T0 - 5;
}

/* Push. */

static void
test_store_push_get_roundtrip(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_job *j = job_make("rt1", "mail", "send_mail", 7);
    struct zn_err err = {0};
    struct zn_job *g;
    uint64_t seq;

    job_set_all(j, "[\"x\",{\"k\":1}]");
    job_schedule(j, T0 + 1000);
    assert_int_equal(push_job(st, j, T0, &err, &seq), 0);
    assert_true(seq > 0);

    g = get_job(st, "rt1");
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
    struct zn_store *st = st_of(state);
    struct zn_job *g;

    push_ok(st, "plain", "default", 5, T0);
    g = get_job(st, "plain");
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
    struct zn_store *st = st_of(state);
    struct zn_err e;
    struct zn_job *g;

    push_ok(st, "dup", "first", 5, T0);
    assert_int_equal(push_job(st, job_make("dup", "second", "x", 5), T0 + 1,
                              &e, NULL), ZN_EEXIST);
    assert_string_equal(e.msg, "jid 'dup' already exists");
    g = get_job(st, "dup");
    assert_string_equal(g->queue, "first");
    zn_job_free(g);
    assert_int_equal(count_of(st, 0), 1);
}

static struct zn_job *
unique_job(const char *jid, const char *queue, const char *args, int uf)
{
    struct zn_job *j = job_make(jid, queue, "report", 5);

    free(j->args);
    j->args = strdup(args);
    assert_non_null(j->args);
    j->unique_for = uf;
    return j;
}

static void
test_store_push_unique_within_window(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_err e;

    assert_int_equal(push_job(st, unique_job("a", "q", "[1]", 60), T0, &e,
                              NULL), 0);
    assert_int_equal(push_job(st, unique_job("b", "q", "[1]", 60),
                              T0 + 59999, &e, NULL), ZN_EUNIQUE);
    assert_string_equal(e.msg, "job is not unique: equal job 'a' pushed "
                               "within unique_for");
    /* Other args, another queue, or no unique_for: not equal or no claim. */
    assert_int_equal(push_job(st, unique_job("c", "q", "[2]", 60), T0 + 1,
                              &e, NULL), 0);
    assert_int_equal(push_job(st, unique_job("d", "other", "[1]", 60),
                              T0 + 1, &e, NULL), 0);
    assert_int_equal(push_job(st, unique_job("e", "q", "[1]", 0), T0 + 1, &e,
                              NULL), 0);
    assert_int_equal(count_of(st, 0), 4);
}

static void
test_store_push_unique_after_window(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_err e;

    assert_int_equal(push_job(st, unique_job("a", "q", "[1]", 60), T0, &e,
                              NULL), 0);
    /* Pushed exactly unique_for seconds ago: no longer "less than". */
    assert_int_equal(push_job(st, unique_job("b", "q", "[1]", 60),
                              T0 + 60000, &e, NULL), 0);
    /* The window now runs from b's push. */
    assert_int_equal(push_job(st, unique_job("c", "q", "[1]", 60),
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
    struct zn_store *st = st_of(state);
    struct zn_job *jobs[6];
    struct zn_err errs[6];
    struct zn_store_counters c;
    struct zn_err err = {0};
    const int want[6] = {0, ZN_EEXIST, 0, 0, ZN_EUNIQUE, ZN_EEXIST};

    push_ok(st, "x", "q", 5, T0);
    jobs[0] = job_make("a", "q", "work", 5);
    jobs[1] = job_make("x", "q", "work", 5);
    jobs[2] = job_make("b", "q", "work", 5);
    jobs[3] = unique_job("u1", "q", "[9]", 60);
    jobs[4] = unique_job("u2", "q", "[9]", 60);
    jobs[5] = job_make("a", "q", "work", 5);
    OK(st->ops->push(st, jobs, 6, T0 + 10, errs));
    expect_errs(errs, want, 6);
    assert_string_equal(errs[4].msg, "job is not unique: equal job 'u1' "
                                     "pushed within unique_for");
    assert_true(jobs[0]->seq < jobs[2]->seq);
    assert_true(jobs[2]->seq < jobs[3]->seq);
    for (int i = 0; i < 6; i++)
        zn_job_free(jobs[i]);
    expect_jobs(st, (struct zn_store_query){0}, "x a b u1");
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
    struct zn_store *st = st_of(state);
    struct zn_job *jobs[N], *g;
    struct zn_err errs[N];
    struct zn_err err = {0};
    const int want[N] = {[5] = ZN_EINVAL, [20] = ZN_EEXIST};
    char jid[16], tag[16];

    push_ok(st, "taken", "q", 5, T0);
    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "g%d", i);
        jobs[i] = i == 20 ? job_make("taken", "q", "work", 5)
                : i == 30 ? unique_job(jid, "q", "[7]", 60)
                          : job_make(jid, "q", "work", 5);
        if (i % 3 == 0) {
            snprintf(tag, sizeof(tag), "t%d", i);
            job_tag(jobs[i], tag);
        }
    }
    job_tag(jobs[5], "\xff bad");
    OK(st->ops->push(st, jobs, N, T0 + 10, errs));
    expect_errs(errs, want, N);
    for (int i = 0; i < N; i++) {
        if (want[i])
            continue;
        g = get_job(st, jobs[i]->jid);
        assert_int_equal(g->seq, jobs[i]->seq);
        assert_int_equal(g->ntags, jobs[i]->ntags);
        zn_job_free(g);
        if (i > 0 && i != 6 && i != 21)
            assert_true(jobs[i]->seq > jobs[i - 1]->seq);
        if (jobs[i]->ntags)
            expect_jobs(st, (struct zn_store_query){.tag = jobs[i]->tags[0]},
                        jobs[i]->jid);
    }
    assert_int_equal(count_of(st, 0), 1 + N - 2);
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
    struct zn_store *st = st_of(state);
    struct zn_job *jobs[N], *g;
    struct zn_err errs[N];
    struct zn_err err = {0};
    const int want[12] = {[7] = ZN_EINVAL, [10] = ZN_EEXIST};
    char jid[16], tag[16];
    uint64_t last = 0;

    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "f%d", i);
        snprintf(tag, sizeof(tag), "t%d", i);
        jobs[i] = job_make(jid, "q", "work", 5);
        job_tag(jobs[i], tag);
    }
    OK(st->ops->push(st, jobs, N, T0, errs));
    for (int i = 0; i < N; i++) {
        assert_int_equal(errs[i].code, 0);
        assert_true(jobs[i]->seq > last);
        last = jobs[i]->seq;
        g = get_job(st, jobs[i]->jid);
        assert_int_equal(g->seq, jobs[i]->seq);
        zn_job_free(g);
        expect_jobs(st, (struct zn_store_query){.tag = jobs[i]->tags[0]},
                    jobs[i]->jid);
        zn_job_free(jobs[i]);
    }
    for (size_t i = 0; i < ZN_ARRAY_LEN(want); i++) {
        snprintf(jid, sizeof(jid), "h%zu", i == 10 ? 3 : i);
        jobs[i] = job_make(jid, i == 7 ? "bad queue!" : "q", "work", 5);
    }
    OK(st->ops->push(st, jobs, ZN_ARRAY_LEN(want), T0, errs));
    expect_errs(errs, want, ZN_ARRAY_LEN(want));
    for (size_t i = 0; i < ZN_ARRAY_LEN(want); i++)
        zn_job_free(jobs[i]);
    assert_int_equal(count_of(st, 0), N + 10);
}

static void
test_store_push_seq_increases(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {.jid = "j5"};
    struct zn_job *jobs[3];
    struct zn_err errs[3];
    struct zn_err err = {0};
    uint64_t last = 0, below = 0, seq;
    int64_t n;
    char jid[16];

    for (int i = 0; i < 5; i++) {
        snprintf(jid, sizeof(jid), "j%d", 5 - i);
        seq = push_ok(st, jid, "q", 5, T0);
        assert_true(seq > last);
        last = seq;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(jid, sizeof(jid), "b%d", i);
        jobs[i] = job_make(jid, "q", "work", 5);
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
    assert_true(push_ok(st, "after", "q", 5, T0) > below);
}

static void
test_store_get_not_found(void **state)
{
    struct zn_store *st = st_of(state);
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
    struct zn_store *st = st_of(state);

    push_ok(st, "a", "q", 5, T0);
    push_ok(st, "b", "q", 9, T0);
    push_ok(st, "c", "q", 1, T0);
    push_ok(st, "d", "q", 9, T0);
    fetch_expect(st, "q", "b", T0);
    fetch_expect(st, "q", "d", T0);
    fetch_expect(st, "q", "a", T0);
    fetch_expect(st, "q", "c", T0);
    fetch_expect(st, "q", NULL, T0);
}

static void
test_store_fetch_fifo_within_priority(void **state)
{
    struct zn_store *st = st_of(state);
    static const char *const order[] = {"m", "z", "a", "k", "b"};

    for (size_t i = 0; i < ZN_ARRAY_LEN(order); i++)
        push_ok(st, order[i], "q", 3, T0 + (int64_t)i);
    for (size_t i = 0; i < ZN_ARRAY_LEN(order); i++)
        fetch_expect(st, "q", order[i], T0 + 10);
    fetch_expect(st, "q", NULL, T0 + 10);
}

static struct zn_job *
fetch_queues(struct zn_store *st, const char *const *queues, size_t nq)
{
    struct zn_job *job = NULL;
    struct zn_err err = {0};

    OK(st->ops->fetch(st, queues, nq, "w1", T0, &job, &err));
    return job;
}

static void
expect_from_queues(struct zn_store *st, const char *const *queues,
                   size_t nq, const char *jid)
{
    struct zn_job *job = fetch_queues(st, queues, nq);

    if (!jid) {
        assert_null(job);
        return;
    }
    assert_non_null(job);
    assert_string_equal(job->jid, jid);
    zn_job_free(job);
}

static void
test_store_fetch_queues_in_order(void **state)
{
    struct zn_store *st = st_of(state);
    const char *const ab[] = {"alpha", "beta"};
    const char *const ba[] = {"beta", "alpha"};

    push_ok(st, "a1", "alpha", 1, T0);
    push_ok(st, "b1", "beta", 9, T0);
    push_ok(st, "b2", "beta", 9, T0);
    push_ok(st, "g1", "gamma", 9, T0);
    /* The order of the queues wins over priority. */
    expect_from_queues(st, ba, 2, "b1");
    expect_from_queues(st, ab, 2, "a1");
    expect_from_queues(st, ab, 2, "b2");
    expect_from_queues(st, ab, 2, NULL);
    assert_int_equal(get_state(st, "g1"), ZN_STATE_ENQUEUED);
}

static void
test_store_fetch_skips_paused_queue(void **state)
{
    struct zn_store *st = st_of(state);
    const char *const po[] = {"p", "o"};
    struct zn_err err = {0};

    push_ok(st, "a", "p", 9, T0);
    push_ok(st, "b", "o", 1, T0);
    OK(st->ops->set_paused(st, "p", true, &err));
    expect_from_queues(st, po, 2, "b");
    fetch_expect(st, "p", NULL, T0);
    assert_int_equal(get_state(st, "a"), ZN_STATE_ENQUEUED);
    OK(st->ops->set_paused(st, "p", false, &err));
    fetch_expect(st, "p", "a", T0);
}

static void
test_store_fetch_never_scheduled_or_retry(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_job *j = job_make("later", "q", "work", 9);
    struct zn_err e;

    job_schedule(j, T0 + 1000);
    assert_int_equal(push_job(st, j, T0, &e, NULL), 0);
    push_ok(st, "r", "q", 5, T0);
    fetch_expect(st, "q", "r", T0);
    finish_as(st, "r", T0, ZN_STATE_RETRY, T0 + 5000);
    /* Due, but only promote makes them fetchable. */
    fetch_expect(st, "q", NULL, T0 + 10000);
    assert_int_equal(get_state(st, "later"), ZN_STATE_SCHEDULED);
    assert_int_equal(get_state(st, "r"), ZN_STATE_RETRY);
}

static void
test_store_fetch_sets_lease_and_attempt(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_job *j = job_make("a", "q", "work", 5);
    struct zn_attempt *a;
    struct zn_err err = {0};
    struct zn_job *got;
    size_t n;

    j->reserve_for = 120;
    assert_int_equal(push_job(st, j, T0, NULL, NULL), 0);
    got = fetch_from(st, "q", "wid-7", T0 + 500);
    assert_non_null(got);
    assert_int_equal(got->state, ZN_STATE_WORKING);
    assert_int_equal(got->lease_until, T0 + 500 + 120 * 1000);
    assert_int_equal(got->attempts, 1);
    assert_string_equal(got->worker, "wid-7");
    assert_int_equal(got->updated_at, T0 + 500);
    zn_job_free(got);
    got = get_job(st, "a");
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
    struct zn_store *st = st_of(state);
    const char *const none[] = {"nope", "empty"};
    struct zn_job *job = (struct zn_job *)&job;
    struct zn_err err = {0};

    OK(st->ops->fetch(st, none, 2, "w1", T0, &job, &err));
    assert_null(job);
    push_ok(st, "a", "q", 5, T0);
    job = (struct zn_job *)&job;
    OK(st->ops->fetch(st, none, 0, "w1", T0, &job, &err));
    assert_null(job);
    expect_from_queues(st, none, 2, NULL);
}

/* Finish. */

static void
test_store_finish_ack_done(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_outcome o = {.next = ZN_STATE_DONE, .outcome = "ok",
                                 .cpu_ms = 12, .rss_kb = 3456};
    struct zn_store_counters c;
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    size_t n;

    push_ok(st, "a", "q", 5, T0);
    fetch_expect(st, "q", "a", T0 + 1);
    OK(st->ops->finish(st, "a", T0 + 2000, &o, &err));
    g = get_job(st, "a");
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
    struct zn_store *st = st_of(state);
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

    push_ok(st, "a", "q", 5, T0);
    fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0 + 700, &o, &err));
    g = get_job(st, "a");
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
    struct zn_store *st = st_of(state);
    struct zn_store_outcome o = {
        .next = ZN_STATE_DEAD, .outcome = "SIGSEGV", .errtype = "SIGSEGV",
        .message = "worker killed by signal 11", .cpu_ms = -1, .rss_kb = -1,
        .quarantined = true,
    };
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    size_t n;

    push_ok(st, "a", "q", 5, T0);
    fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0 + 9, &o, &err));
    g = get_job(st, "a");
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
    struct zn_store *st = st_of(state);
    struct zn_store_outcome o = {
        .next = ZN_STATE_ENQUEUED, .outcome = "worker gone",
        .errtype = "worker gone", .message = "connection closed",
        .cpu_ms = -1, .rss_kb = -1,
    };
    struct zn_err err = {0};
    struct zn_job *g;

    push_ok(st, "a", "q", 5, T0);
    fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0 + 50, &o, &err));
    g = get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    /* Handed back, not failed on its own: it keeps its place. */
    assert_int_equal(g->enqueued_at, T0);
    assert_int_equal(g->failures, 1);
    assert_string_equal(g->failure.errtype, "worker gone");
    zn_job_free(g);
    g = fetch_from(st, "q", "w2", T0 + 60);
    assert_non_null(g);
    assert_int_equal(g->attempts, 2);
    zn_job_free(g);
}

static void
test_store_finish_not_working(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_outcome o = {.next = ZN_STATE_DONE, .cpu_ms = -1,
                                 .rss_kb = -1};
    struct zn_store_counters c;
    struct zn_err err = {0};

    assert_int_equal(st->ops->finish(st, "nope", T0, &o, &err),
                     ZN_ENOTFOUND);
    push_ok(st, "a", "q", 5, T0);
    assert_int_equal(st->ops->finish(st, "a", T0, &o, &err), ZN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'a'"));
    fetch_expect(st, "q", "a", T0);
    OK(st->ops->finish(st, "a", T0, &o, &err));
    assert_int_equal(st->ops->finish(st, "a", T0, &o, &err), ZN_ENOTFOUND);
    assert_int_equal(get_state(st, "a"), ZN_STATE_DONE);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.processed, 1);
    assert_int_equal(c.failed, 0);
}

static void
test_store_extend_lease(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_err err = {0};
    struct zn_job *g;

    push_ok(st, "a", "q", 5, T0);
    push_ok(st, "b", "q", 5, T0);
    fetch_expect(st, "q", "a", T0);
    OK(st->ops->extend(st, "a", T0 + 999999, &err));
    g = get_job(st, "a");
    assert_int_equal(g->lease_until, T0 + 999999);
    zn_job_free(g);
    assert_int_equal(st->ops->extend(st, "b", T0 + 1, &err), ZN_ENOTFOUND);
    assert_int_equal(st->ops->extend(st, "nope", T0 + 1, &err),
                     ZN_ENOTFOUND);
}

static void
push_leased(struct zn_store *st, const char *jid, int reserve_for)
{
    struct zn_job *j = job_make(jid, "q", "work", 5);

    j->reserve_for = reserve_for;
    assert_int_equal(push_job(st, j, T0, NULL, NULL), 0);
    fetch_expect(st, "q", jid, T0);
}

static void
expect_list(const struct zn_store_list *l, const char *want)
{
    char got[1024] = "";
    size_t len = 0;

    for (size_t i = 0; i < l->n; i++)
        len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s",
                                len ? " " : "", l->jobs[i]->jid);
    assert_string_equal(got, want);
}

static void
test_store_expired_oldest_first(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_list l;
    struct zn_err err = {0};

    push_leased(st, "a", 10);
    push_leased(st, "b", 5);
    push_leased(st, "c", 20);
    push_ok(st, "d", "idle", 5, T0);
    push_leased(st, "e", 1);
    finish_as(st, "e", T0, ZN_STATE_DONE, 0);
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
push_scheduled(struct zn_store *st, const char *jid, const char *queue,
               int64_t at)
{
    struct zn_job *j = job_make(jid, queue, "work", 5);

    job_schedule(j, at);
    assert_int_equal(push_job(st, j, T0, NULL, NULL), 0);
}

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
    struct zn_store *st = st_of(state);
    struct zn_err err = {0};
    char **qs = NULL;
    size_t moved, nq = 0;
    struct zn_job *g;

    push_scheduled(st, "s1", "qa", T0 + 1000);
    push_scheduled(st, "s2", "qb", T0 + 3000);
    push_scheduled(st, "s3", "qc", T0 + 9000);
    push_ok(st, "r1", "qa", 5, T0);
    fetch_expect(st, "qa", "r1", T0);
    finish_as(st, "r1", T0, ZN_STATE_RETRY, T0 + 2000);

    OK(st->ops->promote(st, T0 + 500, 10, &moved, &qs, &nq, &err));
    assert_int_equal(moved, 0);
    assert_int_equal(nq, 0);
    OK(st->ops->promote(st, T0 + 2500, 1, &moved, &qs, &nq, &err));
    assert_int_equal(moved, 1);
    assert_int_equal(nq, 1);
    assert_string_equal(qs[0], "qa");
    assert_int_equal(get_state(st, "s1"), ZN_STATE_ENQUEUED);
    assert_int_equal(get_state(st, "r1"), ZN_STATE_RETRY);
    /* Added to the list already held: qa is not repeated. */
    OK(st->ops->promote(st, T0 + 3000, 10, &moved, &qs, &nq, &err));
    assert_int_equal(moved, 2);
    assert_int_equal(nq, 2);
    assert_string_equal(qs[0], "qa");
    assert_string_equal(qs[1], "qb");
    free_names(qs, nq);

    g = get_job(st, "r1");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    assert_int_equal(g->enqueued_at, T0 + 3000);
    zn_job_free(g);
    assert_int_equal(get_state(st, "s3"), ZN_STATE_SCHEDULED);
    fetch_expect(st, "qb", "s2", T0 + 3000);
    OK(st->ops->promote(st, T0 + 9000, 10, &moved, NULL, NULL, &err));
    assert_int_equal(moved, 1);
    assert_int_equal(get_state(st, "s3"), ZN_STATE_ENQUEUED);
}

static void
test_store_next_due(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_err err = {0};
    int64_t at = -1;

    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, 0);
    push_ok(st, "e", "q", 5, T0);
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, 0);
    push_scheduled(st, "s5", "q", T0 + 5000);
    push_scheduled(st, "s3", "q", T0 + 3000);
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, T0 + 3000);
    fetch_expect(st, "q", "e", T0);
    finish_as(st, "e", T0, ZN_STATE_RETRY, T0 + 1000);
    OK(st->ops->next_due(st, &at, &err));
    assert_int_equal(at, T0 + 1000);
}

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

    j = job_make("j1", "q1", "mail", 5);
    job_tag(j, "red");
    job_tag(j, "blue");
    assert_int_equal(push_job(st, j, T0, NULL, NULL), 0);
    j = job_make("j2", "q2", "mail", 5);
    job_tag(j, "blue");
    assert_int_equal(push_job(st, j, T0 + 1000, NULL, NULL), 0);
    j = job_make("j3", "q1", "report", 5);
    job_schedule(j, T0 + 100000);
    assert_int_equal(push_job(st, j, T0 + 2000, NULL, NULL), 0);
    j = job_make("j4", "q2", "report", 9);
    job_tag(j, "red");
    assert_int_equal(push_job(st, j, T0 + 3000, NULL, NULL), 0);
    fetch_expect(st, "q2", "j4", T0 + 4000);
    j = job_make("j5", "q3", "mail", 5);
    assert_int_equal(push_job(st, j, T0 + 4500, NULL, NULL), 0);
    j = fetch_from(st, "q3", "w2", T0 + 5000);
    assert_non_null(j);
    zn_job_free(j);
    finish_as(st, "j5", T0 + 6000, ZN_STATE_DEAD, 0);
}

static void
test_store_list_filter_states(void **state)
{
    struct zn_store *st = st_of(state);

    filter_setup(st);
    expect_jobs(st, (struct zn_store_query){0}, "j1 j2 j3 j4 j5");
    expect_jobs(st, (struct zn_store_query){
                        .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)},
                "j1 j2");
    expect_jobs(st, (struct zn_store_query){
                        .states = ZN_STATE_BIT(ZN_STATE_SCHEDULED) |
                                  ZN_STATE_BIT(ZN_STATE_DEAD)},
                "j3 j5");
    expect_jobs(st, (struct zn_store_query){
                        .states = ZN_STATE_BIT(ZN_STATE_WORKING)},
                "j4");
    expect_jobs(st, (struct zn_store_query){
                        .states = ZN_STATE_BIT(ZN_STATE_DONE)},
                "");
}

static void
test_store_list_filter_jid(void **state)
{
    struct zn_store *st = st_of(state);

    filter_setup(st);
    expect_jobs(st, (struct zn_store_query){.jid = "j3"}, "j3");
    expect_jobs(st, (struct zn_store_query){.jid = "nope"}, "");
}

static void
test_store_list_filter_queue_and_jobtype(void **state)
{
    struct zn_store *st = st_of(state);

    filter_setup(st);
    expect_jobs(st, (struct zn_store_query){.queue = "q1"}, "j1 j3");
    expect_jobs(st, (struct zn_store_query){.queue = "q2"}, "j2 j4");
    expect_jobs(st, (struct zn_store_query){.jobtype = "mail"},
                "j1 j2 j5");
    expect_jobs(st, (struct zn_store_query){.queue = "q1",
                                            .jobtype = "report"},
                "j3");
    expect_jobs(st, (struct zn_store_query){
                        .queue = "q1",
                        .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)},
                "j1");
}

static void
test_store_list_filter_tag(void **state)
{
    struct zn_store *st = st_of(state);

    filter_setup(st);
    expect_jobs(st, (struct zn_store_query){.tag = "red"}, "j1 j4");
    expect_jobs(st, (struct zn_store_query){.tag = "blue"}, "j1 j2");
    expect_jobs(st, (struct zn_store_query){.tag = "green"}, "");
    expect_jobs(st, (struct zn_store_query){.tag = "red", .queue = "q2"},
                "j4");
}

static void
test_store_list_filter_worker(void **state)
{
    struct zn_store *st = st_of(state);

    filter_setup(st);
    expect_jobs(st, (struct zn_store_query){.worker = "w1"}, "j4");
    /* w2's job is dead: no longer one of its working jobs. */
    expect_jobs(st, (struct zn_store_query){.worker = "w2"}, "");
}

static void
test_store_list_filter_updated(void **state)
{
    struct zn_store *st = st_of(state);

    filter_setup(st);
    expect_jobs(st, (struct zn_store_query){.updated_from = T0 + 1000},
                "j2 j3 j4 j5");
    expect_jobs(st, (struct zn_store_query){.updated_to = T0 + 4000},
                "j1 j2 j3");
    expect_jobs(st, (struct zn_store_query){.updated_from = T0 + 1000,
                                            .updated_to = T0 + 4000},
                "j2 j3");
}

static void
test_store_list_paging(void **state)
{
    struct zn_store *st = st_of(state);
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
        jobs[i] = job_make(jid, "q", "work", 1 + i % 9);
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

    push_ok(st, jid, queue, 5, T0);
    fetch_expect(st, queue, jid, T0);
    finish_as(st, jid, T0 + 1, ZN_STATE_RETRY, T0 + 10);
    OK(st->ops->promote(st, T0 + 10, 100, &moved, NULL, NULL, &err));
    fetch_expect(st, queue, jid, T0 + 11);
    finish_as(st, jid, T0 + 12, ZN_STATE_DEAD, 0);
}

static void
test_store_retry_dead(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {.queue = "q",
                               .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)};
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *g;
    int64_t n;
    size_t na;

    make_dead(st, "d1", "q");
    make_dead(st, "d2", "other");
    push_ok(st, "live", "q", 5, T0);
    /* q.states is ignored: only dead jobs are retried. */
    OK(st->ops->retry_dead(st, &q, T0 + 100, &n, &err));
    assert_int_equal(n, 1);
    g = get_job(st, "d1");
    assert_int_equal(g->state, ZN_STATE_ENQUEUED);
    assert_int_equal(g->failures, 0);
    assert_int_equal(g->attempts, 2);
    assert_int_equal(g->enqueued_at, T0 + 100);
    zn_job_free(g);
    assert_int_equal(get_state(st, "d2"), ZN_STATE_DEAD);
    OK(st->ops->attempts(st, "d1", &a, &na, &err));
    assert_int_equal(na, 2);
    zn_attempts_free(a, na);
    /* Back at the end of its queue, behind the job enqueued before. */
    fetch_expect(st, "q", "live", T0 + 200);
    fetch_expect(st, "q", "d1", T0 + 200);
    OK(st->ops->attempts(st, "d1", &a, &na, &err));
    assert_int_equal(na, 3);
    assert_int_equal(a[2].n, 3);
    zn_attempts_free(a, na);

    q = (struct zn_store_query){0};
    OK(st->ops->retry_dead(st, &q, T0 + 300, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(get_state(st, "d2"), ZN_STATE_ENQUEUED);
}

static void
test_store_remove_with_attempts(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {.jid = "a"};
    struct zn_err err = {0};
    struct zn_attempt *a;
    struct zn_job *j, *g = NULL;
    int64_t n;
    size_t na;

    j = job_make("a", "q", "work", 5);
    job_tag(j, "t");
    assert_int_equal(push_job(st, j, T0, NULL, NULL), 0);
    push_ok(st, "b", "q", 5, T0);
    fetch_expect(st, "q", "a", T0);
    finish_as(st, "a", T0, ZN_STATE_DEAD, 0);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(st->ops->get(st, "a", &g, &err), ZN_ENOTFOUND);
    assert_int_equal(st->ops->attempts(st, "a", &a, &na, &err),
                     ZN_ENOTFOUND);
    expect_jobs(st, (struct zn_store_query){0}, "b");
    /* A new job with the old jid starts with no history and no tags. */
    push_ok(st, "a", "q", 5, T0 + 1);
    OK(st->ops->attempts(st, "a", &a, &na, &err));
    assert_int_equal(na, 0);
    zn_attempts_free(a, na);
    expect_jobs(st, (struct zn_store_query){.tag = "t"}, "");
    q = (struct zn_store_query){.queue = "q",
                                .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)};
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 2);
    assert_int_equal(count_of(st, 0), 0);
}

static void expect_stats_true(struct zn_store *st);

/* A batch: at most max jobs, the least recently updated, attempts too. */
static void
test_store_remove_at_most_max(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {.states = ZN_STATE_BIT(ZN_STATE_DONE),
                               .updated_to = T0 + 100, .max = 2};
    const char *jids[] = {"d1", "d2", "d3", "d4"};
    struct zn_attempt *a;
    struct zn_err err = {0};
    int64_t n;
    size_t na;

    /* Pushed in one order, finished in another: age is updated_at. */
    for (int i = 0; i < 4; i++)
        push_ok(st, jids[i], "q", 5, T0);
    push_ok(st, "live", "q", 5, T0);
    for (int i = 0; i < 4; i++)
        fetch_expect(st, "q", jids[i], T0);
    finish_as(st, "d3", T0 + 1, ZN_STATE_DONE, 0);
    finish_as(st, "d1", T0 + 2, ZN_STATE_DONE, 0);
    finish_as(st, "d4", T0 + 3, ZN_STATE_DONE, 0);
    finish_as(st, "d2", T0 + 200, ZN_STATE_DONE, 0); /* too young */
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 2);
    expect_jobs(st, (struct zn_store_query){0}, "d2 d4 live");
    assert_int_equal(st->ops->attempts(st, "d3", &a, &na, &err),
                     ZN_ENOTFOUND);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 0);
    expect_jobs(st, (struct zn_store_query){0}, "d2 live");
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
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {.states = ZN_STATE_BIT(ZN_STATE_DONE),
                               .max = 2};
    const char *jids[] = {"e1", "e2", "e3", "e4", "e5"};
    struct zn_attempt *a;
    struct zn_err err = {0};
    int64_t n, left = 5;
    size_t na;

    for (int i = 0; i < 5; i++)
        push_ok(st, jids[i], "q", 5, T0);
    for (int i = 0; i < 5; i++) {
        fetch_expect(st, "q", jids[i], T0);
        finish_as(st, jids[i], T0 + 1, ZN_STATE_DONE, 0);
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
        assert_int_equal(count_of(st, 0), left);
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
    struct zn_store *st = st_of(state);
    struct zn_queue_stats *v, *e;
    struct zn_err err = {0};
    struct zn_job *j;
    size_t n;

    j = job_make("x", "a", "work", 5);
    j->enqueued_at = T0 + 10;
    assert_int_equal(push_job(st, j, T0 + 10, NULL, NULL), 0);
    j = job_make("y", "a", "work", 5);
    j->enqueued_at = T0 + 5;
    assert_int_equal(push_job(st, j, T0 + 20, NULL, NULL), 0);
    push_scheduled(st, "s", "a", T0 + 9999);
    push_ok(st, "w", "b", 5, T0);
    push_ok(st, "d", "b", 9, T0);
    fetch_expect(st, "b", "d", T0);
    finish_as(st, "d", T0, ZN_STATE_DONE, 0);
    fetch_expect(st, "b", "w", T0);
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
    all = count_of(st, 0);
    assert_int_equal(total, all);
}

static void
test_store_queue_stats_follow_every_op(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {0};
    struct zn_job *jobs[3];
    struct zn_err errs[3];
    struct zn_err err = {0};
    size_t moved;
    int64_t n;

    jobs[0] = job_make("a", "q1", "work", 5);
    jobs[1] = job_make("b", "q2", "work", 5);
    jobs[2] = job_make("a", "q2", "work", 5); /* refused: not counted */
    OK(st->ops->push(st, jobs, 3, T0, errs));
    for (int i = 0; i < 3; i++)
        zn_job_free(jobs[i]);
    push_scheduled(st, "s", "q1", T0 + 50);
    push_ok(st, "c", "q1", 5, T0 + 7);
    push_ok(st, "d", "q1", 5, T0 + 8);
    expect_stats_true(st);
    fetch_expect(st, "q1", "a", T0);
    fetch_expect(st, "q2", "b", T0);
    expect_stats_true(st);
    finish_as(st, "a", T0 + 1, ZN_STATE_RETRY, T0 + 10);
    finish_as(st, "b", T0 + 1, ZN_STATE_DEAD, 0);
    expect_stats_true(st);
    OK(st->ops->promote(st, T0 + 100, 10, &moved, NULL, NULL, &err));
    assert_int_equal(moved, 2);
    expect_stats_true(st);
    /* Enqueued at T0 + 7, c waits ahead of the jobs promoted at T0 + 100. */
    fetch_expect(st, "q1", "c", T0 + 200);
    finish_as(st, "c", T0 + 201, ZN_STATE_ENQUEUED, 0);
    fetch_expect(st, "q1", "c", T0 + 202); /* it keeps its place */
    finish_as(st, "c", T0 + 203, ZN_STATE_DONE, 0);
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
    struct zn_store *st = st_of(state);
    struct zn_err err = {0};

    push_ok(st, "a", "q1", 5, T0);
    push_ok(st, "b", "q2", 5, T0);
    push_ok(st, "c", "q2", 5, T0);
    /* Inside a transaction stats see its changes; a rollback undoes them. */
    OK(st->ops->begin(st, &err));
    push_ok(st, "e", "q3", 5, T0 + 400);
    fetch_expect(st, "q2", "b", T0 + 401);
    expect_stats_true(st);
    fetch_expect(st, "q1", "a", T0 + 402);
    st->ops->rollback(st);
    expect_stats_true(st);
    OK(st->ops->begin(st, &err));
    fetch_expect(st, "q2", "b", T0 + 500);
    push_ok(st, "f", "q3", 5, T0 + 501);
    OK(st->ops->commit(st, &err));
    expect_stats_true(st);
    /* A flush inside a transaction also drops the counts pending in it. */
    OK(st->ops->begin(st, &err));
    push_ok(st, "g", "q4", 5, T0 + 600);
    OK(st->ops->flush(st, &err));
    push_ok(st, "h", "q5", 5, T0 + 601);
    OK(st->ops->commit(st, &err));
    expect_stats_true(st);
    assert_int_equal(count_of(st, 0), 1);
}

static void
test_store_attempts_oldest_first(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_err err = {0};
    struct zn_attempt *a = NULL;
    struct zn_job *g;
    size_t n = 99;

    assert_int_equal(st->ops->attempts(st, "nope", &a, &n, &err),
                     ZN_ENOTFOUND);
    push_ok(st, "a", "q", 5, T0);
    OK(st->ops->attempts(st, "a", &a, &n, &err));
    assert_int_equal(n, 0);
    zn_attempts_free(a, n);
    for (int i = 0; i < 3; i++) {
        char wid[8];

        snprintf(wid, sizeof(wid), "w%d", i);
        g = fetch_from(st, "q", wid, T0 + i * 100);
        assert_non_null(g);
        zn_job_free(g);
        finish_as(st, "a", T0 + i * 100 + 50,
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
    struct zn_store *st = st_of(state);
    struct zn_store_counters c = {1, 1, 1};
    struct zn_err err = {0};

    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 0);
    assert_int_equal(c.processed, 0);
    assert_int_equal(c.failed, 0);
    push_ok(st, "a", "q", 5, T0);
    push_ok(st, "b", "q", 5, T0);
    push_ok(st, "c", "q", 5, T0);
    assert_int_equal(push_job(st, job_make("a", "q", "w", 5), T0, NULL, NULL),
                     ZN_EEXIST);
    fetch_expect(st, "q", "a", T0);
    finish_as(st, "a", T0, ZN_STATE_DONE, 0);
    fetch_expect(st, "q", "b", T0);
    finish_as(st, "b", T0, ZN_STATE_RETRY, T0 + 1);
    fetch_expect(st, "q", "c", T0);
    finish_as(st, "c", T0, ZN_STATE_DEAD, 0);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 3);
    assert_int_equal(c.processed, 1);
    assert_int_equal(c.failed, 2);
}

static void
test_store_flush_everything(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_counters c;
    struct zn_queue_stats *v;
    struct zn_attempt *a;
    struct zn_err err = {0};
    size_t n;

    push_ok(st, "a", "p", 5, T0);
    push_ok(st, "b", "q", 5, T0);
    fetch_expect(st, "q", "b", T0);
    OK(st->ops->set_paused(st, "p", true, &err));
    OK(st->ops->flush(st, &err));
    assert_int_equal(count_of(st, 0), 0);
    assert_int_equal(st->ops->attempts(st, "b", &a, &n, &err), ZN_ENOTFOUND);
    OK(st->ops->queue_stats(st, &v, &n, &err));
    assert_int_equal(n, 0);
    free(v);
    OK(st->ops->counters(st, &c, &err));
    assert_int_equal(c.pushed, 0);
    /* The pause went with the flush. */
    push_ok(st, "a", "p", 5, T0);
    fetch_expect(st, "p", "a", T0);
}

/* Transactions. */

static void
test_store_rollback_discards_writes(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_job *g = NULL;
    struct zn_err err = {0};

    push_ok(st, "kept", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    push_ok(st, "lost", "q", 5, T0);
    fetch_expect(st, "q", "kept", T0);
    OK(st->ops->set_paused(st, "q", true, &err));
    st->ops->rollback(st);
    assert_int_equal(st->ops->get(st, "lost", &g, &err), ZN_ENOTFOUND);
    assert_int_equal(get_state(st, "kept"), ZN_STATE_ENQUEUED);
    /* The pause was rolled back too. */
    fetch_expect(st, "q", "kept", T0);
}

/*
 * Inside a transaction (the engine's way of working) a store may hand
 * jobs out from memory and write their leases later: every change to the
 * ready jobs must still be seen by the next fetch.
 */
static void
test_store_transaction_fetch_follows_changes(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_store_query q = {.jid = "c"};
    struct zn_job *s = job_make("s", "q", "work", 9);
    struct zn_err err = {0};
    int64_t n = 0;
    size_t moved = 0;

    push_ok(st, "a", "q", 5, T0);
    push_ok(st, "b", "q", 5, T0);
    push_ok(st, "c", "q", 5, T0);
    push_ok(st, "d", "q", 5, T0);
    push_ok(st, "e", "q", 5, T0);
    job_schedule(s, T0 + 100);
    assert_int_equal(push_job(st, s, T0, NULL, NULL), 0);
    OK(st->ops->begin(st, &err));
    fetch_expect(st, "q", "a", T0 + 1);
    /* A push of higher priority comes first. */
    push_ok(st, "x", "q", 9, T0 + 2);
    fetch_expect(st, "q", "x", T0 + 3);
    /* A removed job is not handed out. */
    OK(st->ops->remove(st, &q, &n, &err));
    assert_int_equal(n, 1);
    fetch_expect(st, "q", "b", T0 + 4);
    fetch_expect(st, "q", "d", T0 + 4);
    /* A job handed back keeps its place. */
    finish_as(st, "d", T0 + 5, ZN_STATE_ENQUEUED, 0);
    fetch_expect(st, "q", "d", T0 + 6);
    /* So do a promoted job and a retried dead one. */
    push_ok(st, "y", "q", 9, T0 + 7);
    fetch_expect(st, "q", "y", T0 + 8);
    finish_as(st, "y", T0 + 9, ZN_STATE_DEAD, 0);
    OK(st->ops->promote(st, T0 + 100, 10, &moved, NULL, NULL, &err));
    assert_int_equal(moved, 1);
    fetch_expect(st, "q", "s", T0 + 101);
    q = (struct zn_store_query){.jid = "y"};
    OK(st->ops->retry_dead(st, &q, T0 + 102, &n, &err));
    assert_int_equal(n, 1);
    fetch_expect(st, "q", "y", T0 + 103);
    /* A push after the jobs read ahead comes after them. */
    push_ok(st, "f", "q", 5, T0 + 105);
    fetch_expect(st, "q", "e", T0 + 106);
    fetch_expect(st, "q", "f", T0 + 107);
    fetch_expect(st, "q", NULL, T0 + 108);
    OK(st->ops->commit(st, &err));
    expect_jobs(st, (struct zn_store_query){
                        .states = ZN_STATE_BIT(ZN_STATE_WORKING)},
                "a b d e s x y f");
    expect_jobs(st, (struct zn_store_query){
                        .states = ZN_STATE_BIT(ZN_STATE_ENQUEUED)},
                "");
    expect_stats_true(st);
}

/* A job with every field set, ready, its enqueue time left to the store. */
static struct zn_job *
job_full(const char *jid)
{
    struct zn_job *j = job_make(jid, "q", "send_mail", 7);
    char args[64];

    /* Args of its own: unique_for would refuse an equal job. */
    snprintf(args, sizeof(args), "[\"%s\",{\"k\":1}]", jid);
    job_set_all(j, args);
    j->enqueued_at = 0;
    return j;
}

/* A fetched job, and the same job read back by get, encode alike. */
static void
expect_fetched_is_row(struct zn_store *st, const char *jid, int64_t now)
{
    struct zn_job *f = fetch_from(st, "q", "w1", now), *g;
    char *a, *b;

    assert_non_null(f);
    assert_string_equal(f->jid, jid);
    g = get_job(st, jid);
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
    struct zn_store *st = st_of(state);
    struct zn_err err = {0};

    assert_int_equal(push_job(st, job_full("cold"), T0 + 1, NULL, NULL), 0);
    OK(st->ops->begin(st, &err));
    expect_fetched_is_row(st, "cold", T0 + 2);
    fetch_expect(st, "q", NULL, T0 + 3);
    assert_int_equal(push_job(st, job_full("warm"), T0 + 4, NULL, NULL), 0);
    expect_fetched_is_row(st, "warm", T0 + 5);
    OK(st->ops->commit(st, &err));
    expect_stats_true(st);
}

/* A lease and its ACK in a transaction are seen by every query. */
static void
test_store_transaction_leases_are_seen(void **state)
{
    struct zn_store *st = st_of(state);
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

    push_ok(st, "a", "q", 5, T0);
    push_ok(st, "b", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    zn_job_free(fetch_from(st, "q", "w1", T0 + 10));
    g = get_job(st, "a");
    assert_int_equal(g->state, ZN_STATE_WORKING);
    assert_string_equal(g->worker, "w1");
    assert_int_equal(g->attempts, 1);
    assert_int_equal(g->lease_until, T0 + 10 + 300000);
    zn_job_free(g);
    expect_jobs(st, q, "a");
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
    zn_job_free(fetch_from(st, "q", "w1", T0 + 11));
    assert_int_equal(st->ops->finish(st, "b", T0 + 20, &o, &err),
                     ZN_ESTATE);
    o.worker = "w1";
    OK(st->ops->finish(st, "b", T0 + 20, &o, &err));
    assert_int_equal(st->ops->finish(st, "b", T0 + 21, &o, &err),
                     ZN_ENOTFOUND);
    g = get_job(st, "b");
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
    assert_int_equal(get_state(st, "a"), ZN_STATE_WORKING);
    assert_int_equal(get_state(st, "b"), ZN_STATE_DONE);
    expect_stats_true(st);

    /* An ACK with an outcome of its own keeps it. */
    push_ok(st, "c", "q", 5, T0 + 30);
    OK(st->ops->begin(st, &err));
    fetch_expect(st, "q", "c", T0 + 31);
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
    struct zn_store *st = st_of(state);
    struct zn_store_counters c;
    struct zn_attempt *a = NULL;
    struct zn_err err = {0};
    struct zn_job *g;
    size_t n = 99;

    push_ok(st, "a", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    fetch_expect(st, "q", "a", T0 + 1);
    finish_as(st, "a", T0 + 2, ZN_STATE_DONE, 0);
    st->ops->rollback(st);
    g = get_job(st, "a");
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
    fetch_expect(st, "q", "a", T0 + 3);
    OK(st->ops->commit(st, &err));
    g = get_job(st, "a");
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
    struct zn_store *st = st_of(state);
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
        push_ok(st, jid, "q", 5, T0 + i);
    }
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < N; i++) {
        snprintf(jid, sizeof(jid), "m%02d", i);
        fetch_expect(st, "q", jid, T0 + 100 + i);
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
        g = get_job(st, jid);
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
    assert_int_equal(count_of(st, ZN_STATE_BIT(ZN_STATE_DONE)), acked);
    assert_int_equal(count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)),
                     N - acked);
    expect_stats_true(st);
}

static void
test_store_commit_keeps_writes(void **state)
{
    struct zn_store *st = st_of(state);
    struct zn_job *jobs[3];
    struct zn_err errs[3];
    struct zn_err err = {0};

    push_ok(st, "x", "q", 5, T0);
    OK(st->ops->begin(st, &err));
    assert_int_equal(st->ops->begin(st, &err), ZN_ESTATE);
    jobs[0] = job_make("a", "q", "work", 5);
    jobs[1] = job_make("x", "q", "work", 5);
    jobs[2] = job_make("b", "q", "work", 5);
    OK(st->ops->push(st, jobs, 3, T0, errs));
    assert_int_equal(errs[1].code, ZN_EEXIST);
    for (int i = 0; i < 3; i++)
        zn_job_free(jobs[i]);
    fetch_expect(st, "q", "x", T0);
    OK(st->ops->commit(st, &err));
    assert_int_equal(st->ops->commit(st, &err), ZN_ESTATE);
    expect_jobs(st, (struct zn_store_query){0}, "x a b");
    assert_int_equal(get_state(st, "x"), ZN_STATE_WORKING);
}

static void
test_store_many_jobs_one_transaction(void **state)
{
    struct zn_store *st = st_of(state);
    enum { N = 100000, BATCH = 1000, HIGH = 99000 };
    struct zn_job *jobs[BATCH];
    struct zn_err errs[BATCH];
    struct zn_err err = {0};
    char jid[16];

    OK(st->ops->begin(st, &err));
    for (int b = 0; b < N; b += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            snprintf(jid, sizeof(jid), "j%06d", b + i);
            jobs[i] = job_make(jid, "bulk", "work", b + i < HIGH ? 5 : 9);
        }
        OK(st->ops->push(st, jobs, BATCH, T0, errs));
        for (int i = 0; i < BATCH; i++) {
            assert_int_equal(errs[i].code, 0);
            zn_job_free(jobs[i]);
        }
    }
    OK(st->ops->commit(st, &err));
    assert_int_equal(count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)), N);

    /* The high-priority tail first, in push order, then the rest. */
    OK(st->ops->begin(st, &err));
    for (int i = 0; i < 1500; i++) {
        int want = i < N - HIGH ? HIGH + i : i - (N - HIGH);

        snprintf(jid, sizeof(jid), "j%06d", want);
        fetch_expect(st, "bulk", jid, T0 + 1);
    }
    OK(st->ops->commit(st, &err));
    assert_int_equal(count_of(st, ZN_STATE_BIT(ZN_STATE_WORKING)), 1500);
    assert_int_equal(count_of(st, ZN_STATE_BIT(ZN_STATE_ENQUEUED)),
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
    struct fx *f = *state;
    struct zn_store *st = f->st;
    struct zn_err err = {0};
    int rc;

    OK(st->ops->begin(st, &err));
    push_ok(st, "s1", "q", 5, T0);
    rc = st->ops->sync ? st->ops->sync(st, &err) : ZN_ESTATE;
    assert_true(rc == 0 || rc == ZN_ESTATE);
    if (rc == ZN_ESTATE)
        OK(st->ops->commit(st, &err)); /* what the engine does then */
    else
        push_ok(st, "s2", "q", 5, T0);
    zn_job_free(get_job(st, "s1"));
    if (rc == 0)
        OK(st->ops->commit(st, &err));
    fetch_expect(st, "q", "s1", T0);
    assert_int_equal(count_of(st, 0), rc == 0 ? 2 : 1);
    expect_stats_true(st);
}

/* Persistence: back ends whose data outlives a handle. */

static void
test_store_reopen_keeps_data(void **state)
{
    struct fx *f = *state;
    struct zn_err err = {0};
    struct zn_job *g;
    uint64_t seq;

    if (!f->be->persistent)
        skip();
    seq = push_ok(f->st, "a", "q", 5, T0);
    push_ok(f->st, "b", "q", 5, T0);
    fetch_expect(f->st, "q", "a", T0);
    zn_store_close(f->st);
    f->st = NULL;
    OK(f->be->open(f->dir, false, &f->st, &err));
    g = get_job(f->st, "a");
    assert_int_equal(g->state, ZN_STATE_WORKING);
    assert_int_equal(g->seq, seq);
    zn_job_free(g);
    expect_stats_true(f->st);
    fetch_expect(f->st, "q", "b", T0);
    assert_true(push_ok(f->st, "c", "q", 5, T0) > seq + 1);
    expect_stats_true(f->st);
}

static void
test_store_readonly_reads_but_refuses_writes(void **state)
{
    struct fx *f = *state;
    struct zn_store_outcome o = {.next = ZN_STATE_DONE};
    struct zn_store_query q = {0};
    struct zn_store_list l;
    struct zn_store *ro;
    struct zn_err err = {0}, errs[1];
    struct zn_job *job;
    int64_t n;

    if (!f->be->persistent)
        skip();
    push_ok(f->st, "a", "q", 5, T0);
    OK(f->be->open(f->dir, true, &ro, &err));
    zn_job_free(get_job(ro, "a"));
    OK(ro->ops->list(ro, &q, &l, &err));
    assert_int_equal(l.n, 1);
    zn_store_list_release(&l);

    job = job_make("b", "q", "work", 5);
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
    push_ok(f->st, "c", "q", 5, T0);
    OK(ro->ops->count(ro, &q, &n, &err));
    assert_int_equal(n, 2);
    zn_store_close(ro);
}

#define GENERIC(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

static const struct CMUnitTest generic_tests[] = {
    GENERIC(test_store_push_get_roundtrip),
    GENERIC(test_store_push_get_plain_job),
    GENERIC(test_store_push_duplicate_jid),
    GENERIC(test_store_push_unique_within_window),
    GENERIC(test_store_push_unique_after_window),
    GENERIC(test_store_push_batch_mixed),
    GENERIC(test_store_push_batch_groups),
    GENERIC(test_store_push_batch_full_groups),
    GENERIC(test_store_push_seq_increases),
    GENERIC(test_store_get_not_found),
    GENERIC(test_store_fetch_priority_order),
    GENERIC(test_store_fetch_fifo_within_priority),
    GENERIC(test_store_fetch_queues_in_order),
    GENERIC(test_store_fetch_skips_paused_queue),
    GENERIC(test_store_fetch_never_scheduled_or_retry),
    GENERIC(test_store_fetch_sets_lease_and_attempt),
    GENERIC(test_store_fetch_nothing_gives_null),
    GENERIC(test_store_finish_ack_done),
    GENERIC(test_store_finish_fail_retry),
    GENERIC(test_store_finish_fail_dead_quarantined),
    GENERIC(test_store_finish_fail_enqueued),
    GENERIC(test_store_finish_not_working),
    GENERIC(test_store_extend_lease),
    GENERIC(test_store_expired_oldest_first),
    GENERIC(test_store_promote_due_jobs),
    GENERIC(test_store_next_due),
    GENERIC(test_store_list_filter_states),
    GENERIC(test_store_list_filter_jid),
    GENERIC(test_store_list_filter_queue_and_jobtype),
    GENERIC(test_store_list_filter_tag),
    GENERIC(test_store_list_filter_worker),
    GENERIC(test_store_list_filter_updated),
    GENERIC(test_store_list_paging),
    GENERIC(test_store_retry_dead),
    GENERIC(test_store_remove_with_attempts),
    GENERIC(test_store_remove_at_most_max),
    GENERIC(test_store_remove_batches_of_equal_age),
    GENERIC(test_store_queue_stats),
    GENERIC(test_store_queue_stats_follow_every_op),
    GENERIC(test_store_queue_stats_follow_transactions),
    GENERIC(test_store_attempts_oldest_first),
    GENERIC(test_store_counters),
    GENERIC(test_store_flush_everything),
    GENERIC(test_store_rollback_discards_writes),
    GENERIC(test_store_transaction_fetch_follows_changes),
    GENERIC(test_store_transaction_fetched_job_is_its_row),
    GENERIC(test_store_transaction_leases_are_seen),
    GENERIC(test_store_transaction_rollback_hands_out_again),
    GENERIC(test_store_transaction_acks_many),
    GENERIC(test_store_commit_keeps_writes),
    GENERIC(test_store_many_jobs_one_transaction),
    GENERIC(test_store_sync_keeps_the_transaction),
    GENERIC(test_store_reopen_keeps_data),
    GENERIC(test_store_readonly_reads_but_refuses_writes),
};

int
main(void)
{
    int failed = 0;

    for (size_t i = 0; i < ZN_ARRAY_LEN(backends); i++) {
        struct CMUnitTest t[ZN_ARRAY_LEN(generic_tests)];

        memcpy(t, generic_tests, sizeof(t));
        for (size_t k = 0; k < ZN_ARRAY_LEN(t); k++)
            t[k].initial_state = (void *)&backends[i];
        failed += cmocka_run_group_tests_name(backends[i].name, t, NULL,
                                              NULL);
    }
    return failed;
}
