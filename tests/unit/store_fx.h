/*
 * store_fx.h - the fixture of the store conformance tests (test_store.c,
 * test_store_query.c): the back ends every test runs on, a store opened
 * afresh in a directory of each test's own, and helpers that build, push,
 * fetch, finish, get and list jobs through struct zn_store's ops. The
 * sqlite back end's own tests (test_store_sqlite.c, test_store_deferred.c)
 * use the helpers too.
 *
 * A helper that fails fails the test (cmocka), so none returns an error.
 * Time is injected: every call gets its own "now", counted from T0.
 */
#ifndef ZN_TEST_STORE_FX_H
#define ZN_TEST_STORE_FX_H

#include "compat.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define T0 INT64_C(1700000000000)

/* Back ends. */

struct zn_sfx_backend {
    const char *name;
    bool persistent; /* data survives close and reopen */
    /* Opens the store kept in dir, a fresh directory of this test. */
    int (*open)(const char *dir, bool readonly, struct zn_store **out,
                struct zn_err *err);
};

/*
 * Every back end the tests run on, zn_sfx_nbackends of them. A back end
 * joins by adding a row, a function that opens a fresh store in dir.
 */
extern const struct zn_sfx_backend zn_sfx_backends[];
extern const size_t zn_sfx_nbackends;

/* The back end "sqlite file", one of zn_sfx_backends. */
extern const struct zn_sfx_backend *const zn_sfx_sqlite_file;

/* Fixture: a directory of its own and a store opened in it. */

struct zn_sfx {
    const struct zn_sfx_backend *be;
    char dir[PATH_MAX];
    struct zn_store *st;
};

/*
 * cmocka's setup: *state comes in as the test's const struct
 * zn_sfx_backend * and goes out as a struct zn_sfx, its store open for
 * writing. Teardown closes the store, removes the directory and frees it.
 */
int zn_sfx_setup(void **state);
int zn_sfx_teardown(void **state);

/* A test with that setup and teardown, for zn_sfx_run. */
#define ZN_SFX_TEST(t)                                                      \
    cmocka_unit_test_setup_teardown(t, zn_sfx_setup, zn_sfx_teardown)

/* The fixture's store. */
struct zn_store *zn_sfx_st_of(void **state);

/* Fails the test, naming call and err's message, if rc is not 0. */
void zn_sfx_ok(int rc, const struct zn_err *err, const char *call);

/* Asserts that call returned 0; needs a struct zn_err err in scope. */
#define OK(call) zn_sfx_ok((call), &err, #call)

/* Jobs. */

/*
 * A new enqueued job (args [1,"a"], retry 3, reserve_for 300, created and
 * enqueued at T0); the caller frees it with zn_job_free.
 */
struct zn_job *zn_sfx_job_make(const char *jid, const char *queue,
                               const char *jobtype, int priority);

/* Appends tag to j's tags. */
void zn_sfx_job_tag(struct zn_job *j, const char *tag);

/* Makes j scheduled for at. */
void zn_sfx_job_schedule(struct zn_job *j, int64_t at);

/* Sets every optional field of j, args as given. */
void zn_sfx_job_set_all(struct zn_job *j, const char *args);

/* Push, fetch, finish, get. */

/*
 * Pushes one job at now and frees it. Returns the refusal code (0 when
 * accepted); the store itself must not fail. *refused gets the refusal,
 * *seq the job's seq; either may be NULL.
 */
int zn_sfx_push_job(struct zn_store *st, struct zn_job *job, int64_t now,
                    struct zn_err *refused, uint64_t *seq);

/* Pushes an enqueued job that must be accepted; returns its seq. */
uint64_t zn_sfx_push_ok(struct zn_store *st, const char *jid,
                        const char *queue, int priority, int64_t now);

/* Pushes jid scheduled for at (priority 5, at T0); it must be accepted. */
void zn_sfx_push_scheduled(struct zn_store *st, const char *jid,
                           const char *queue, int64_t at);

/* Fetches from queue for worker wid: the job (the caller's), or NULL. */
struct zn_job *zn_sfx_fetch_from(struct zn_store *st, const char *queue,
                                 const char *wid, int64_t now);

/* Fetches the next job of queue for w1 and checks it is jid (NULL: none). */
void zn_sfx_fetch_expect(struct zn_store *st, const char *queue,
                         const char *jid, int64_t now);

/* The same from the first of nq queues that has a job. */
void zn_sfx_fetch_expect_in(struct zn_store *st, const char *const *queues,
                            size_t nq, const char *jid, int64_t now);

/*
 * Finishes the working jid at now, moving it to next (due at next_at):
 * outcome "ok" when next is done, else "failed", RuntimeError "boom". The
 * store must not fail.
 */
void zn_sfx_finish_as(struct zn_store *st, const char *jid, int64_t now,
                      enum zn_job_state next, int64_t next_at);

/* Reads jid, which must exist; the caller frees it with zn_job_free. */
struct zn_job *zn_sfx_get_job(struct zn_store *st, const char *jid);

/* The state of jid, which must exist. */
int zn_sfx_get_state(struct zn_store *st, const char *jid);

/* Queries. */

/* How many jobs are in states (ZN_STATE_BIT()s; 0: any state). */
int64_t zn_sfx_count_of(struct zn_store *st, unsigned states);

/*
 * Appends the jids of l to out (size bytes, of which *len are used),
 * separated by spaces; they must fit.
 */
void zn_sfx_jids_append(const struct zn_store_list *l, char *out,
                        size_t size, size_t *len);

/*
 * Lists every page of q (two jobs a page, so paging runs too) and counts
 * q; both must give the jids in want, e.g. "a b c", in seq order.
 */
void zn_sfx_expect_jobs(struct zn_store *st, struct zn_store_query q,
                        const char *want);

/*
 * Runs the n tests, each with initial_state NULL, once on every back end
 * (a cmocka group named after it); the failures of all the groups.
 */
struct CMUnitTest;
int zn_sfx_run(const struct CMUnitTest *tests, size_t n);

#endif
