/*
 * store_fx.c - the fixture of the store conformance tests (see
 * store_fx.h): the back ends, setup and teardown, and the job helpers.
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

#include "store/sqlite.h"
#include "store/store.h"
#include "support/files.h"
#include "store_fx.h"

/* Back ends. */

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

    zn_test_db_path(dir, path, sizeof(path));
    return zn_store_sqlite_open(path, &opts, out, err);
}

enum { SQLITE_MEMORY, SQLITE_FILE };

const struct zn_sfx_backend zn_sfx_backends[] = {
    [SQLITE_MEMORY] = {"sqlite :memory:", false, open_sqlite_memory},
    [SQLITE_FILE] = {"sqlite file", true, open_sqlite_file},
};

const size_t zn_sfx_nbackends = ZN_ARRAY_LEN(zn_sfx_backends);

const struct zn_sfx_backend *const zn_sfx_sqlite_file =
    &zn_sfx_backends[SQLITE_FILE];

/* Fixture. */

void
zn_sfx_ok(int rc, const struct zn_err *err, const char *call)
{
    if (rc != 0)
        fail_msg("%s: %s: %s", call, zn_err_name(rc), err->msg);
}

int
zn_sfx_setup(void **state)
{
    struct zn_sfx *f = calloc(1, sizeof(*f));
    struct zn_err err = {0};

    assert_non_null(f);
    f->be = *state;
    zn_test_tmpdir(f->dir, sizeof(f->dir), "zn_test_store");
    OK(f->be->open(f->dir, false, &f->st, &err));
    *state = f;
    return 0;
}

int
zn_sfx_teardown(void **state)
{
    struct zn_sfx *f = *state;

    zn_store_close(f->st);
    zn_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Helpers. */

struct zn_job *
zn_sfx_job_make(const char *jid, const char *queue, const char *jobtype,
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

void
zn_sfx_job_tag(struct zn_job *j, const char *tag)
{
    char **grown = realloc(j->tags, (j->ntags + 1) * sizeof(*grown));

    assert_non_null(grown);
    j->tags = grown;
    j->tags[j->ntags] = strdup(tag);
    assert_non_null(j->tags[j->ntags]);
    j->ntags++;
}

void
zn_sfx_job_schedule(struct zn_job *j, int64_t at)
{
    j->state = ZN_STATE_SCHEDULED;
    j->at = at;
    j->next_at = at;
    j->enqueued_at = 0;
}

int
zn_sfx_push_job(struct zn_store *st, struct zn_job *job, int64_t now,
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

uint64_t
zn_sfx_push_ok(struct zn_store *st, const char *jid, const char *queue,
               int priority, int64_t now)
{
    struct zn_job *job = zn_sfx_job_make(jid, queue, "work", priority);
    struct zn_err e;
    uint64_t seq = 0;
    int rc = zn_sfx_push_job(st, job, now, &e, &seq);

    if (rc != 0)
        fail_msg("push '%s' refused: %s", jid, e.msg);
    return seq;
}

void
zn_sfx_push_scheduled(struct zn_store *st, const char *jid,
                      const char *queue, int64_t at)
{
    struct zn_job *j = zn_sfx_job_make(jid, queue, "work", 5);

    zn_sfx_job_schedule(j, at);
    assert_int_equal(zn_sfx_push_job(st, j, T0, NULL, NULL), 0);
}

struct zn_job *
zn_sfx_fetch_from(struct zn_store *st, const char *queue, const char *wid,
                  int64_t now)
{
    const char *queues[] = {queue};
    struct zn_job *job = NULL;
    struct zn_err err = {0};

    OK(st->ops->fetch(st, queues, 1, wid, now, &job, &err));
    return job;
}

void
zn_sfx_fetch_expect_in(struct zn_store *st, const char *const *queues,
                       size_t nq, const char *jid, int64_t now)
{
    struct zn_job *job = NULL;
    struct zn_err err = {0};

    OK(st->ops->fetch(st, queues, nq, "w1", now, &job, &err));
    if (!jid) {
        if (job)
            fail_msg("fetch from '%s'...: want nothing, got '%s'",
                     nq ? queues[0] : "", job->jid);
        return;
    }
    if (!job)
        fail_msg("fetch from '%s'...: want '%s', got nothing",
                 nq ? queues[0] : "", jid);
    assert_string_equal(job->jid, jid);
    zn_job_free(job);
}

void
zn_sfx_fetch_expect(struct zn_store *st, const char *queue, const char *jid,
                    int64_t now)
{
    zn_sfx_fetch_expect_in(st, &queue, 1, jid, now);
}

void
zn_sfx_finish_as(struct zn_store *st, const char *jid, int64_t now,
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

struct zn_job *
zn_sfx_get_job(struct zn_store *st, const char *jid)
{
    struct zn_job *job = NULL;
    struct zn_err err = {0};

    OK(st->ops->get(st, jid, &job, &err));
    assert_non_null(job);
    return job;
}

int
zn_sfx_get_state(struct zn_store *st, const char *jid)
{
    struct zn_job *job = zn_sfx_get_job(st, jid);
    int state = (int)job->state;

    zn_job_free(job);
    return state;
}

int64_t
zn_sfx_count_of(struct zn_store *st, unsigned states)
{
    struct zn_store_query q = {.states = states};
    struct zn_err err = {0};
    int64_t n = -1;

    OK(st->ops->count(st, &q, &n, &err));
    return n;
}

void
zn_sfx_jids_append(const struct zn_store_list *l, char *out, size_t size,
                   size_t *len)
{
    for (size_t i = 0; i < l->n; i++) {
        *len += (size_t)snprintf(out + *len, size - *len, "%s%s",
                                 *len ? " " : "", l->jobs[i]->jid);
        assert_true(*len < size);
    }
}

void
zn_sfx_expect_jobs(struct zn_store *st, struct zn_store_query q,
                   const char *want)
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
        }
        zn_sfx_jids_append(&l, got, sizeof(got), &len);
        total += (int64_t)l.n;
        q.after = l.next;
        zn_store_list_release(&l);
    } while (q.after);
    assert_string_equal(got, want);
    OK(st->ops->count(st, &q, &n, &err));
    assert_int_equal(n, total);
}

struct zn_store *
zn_sfx_st_of(void **state)
{
    return ((struct zn_sfx *)*state)->st;
}

void
zn_sfx_job_set_all(struct zn_job *j, const char *args)
{
    free(j->args);
    j->args = strdup(args);
    j->custom = strdup("{\"trace\":\"abc\"}");
    zn_sfx_job_tag(j, "red");
    zn_sfx_job_tag(j, "bl\"ue \xc3\xa9");
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

int
zn_sfx_run(const struct CMUnitTest *tests, size_t n)
{
    struct CMUnitTest *t = malloc(n * sizeof(*t));
    int failed = 0;

    assert_non_null(t);
    for (size_t i = 0; i < zn_sfx_nbackends; i++) {
        memcpy(t, tests, n * sizeof(*t));
        for (size_t k = 0; k < n; k++)
            t[k].initial_state = (void *)&zn_sfx_backends[i];
        failed += _cmocka_run_group_tests(zn_sfx_backends[i].name, t, n,
                                          NULL, NULL);
    }
    free(t);
    return failed;
}
