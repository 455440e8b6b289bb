/*
 * test_work.c - `zenith work` against the real server: each test starts
 * its own server (harness) and runs the worker binary as a child with a
 * config file in the test's data directory, then reads the outcome of its
 * jobs back with JOBS. Webhooks post to a one-request HTTP server in a
 * thread of the test. quiet and terminate sent by the server have no
 * command to trigger them yet; SIGTERM to the worker stands in for
 * terminate.
 */
#include "compat.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "harness.h"
#include "support/files.h"
#include "support/httpd.h"

struct fx {
    struct zn_srv srv;
    struct zn_fwp_client *p;
    struct zn_child w;
    char config[PATH_MAX];
    char wlog[PATH_MAX];
};

static int
setup_with(void **state, const char *password)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *extra[] = {"--password", password, NULL};

    zn_srv_start(&f->srv, password ? extra : NULL);
    f->p = zn_srv_connect(&f->srv, NULL, password);
    snprintf(f->config, sizeof(f->config), "%s/zenith.ini", f->srv.dir);
    snprintf(f->wlog, sizeof(f->wlog), "%s/worker.log", f->srv.dir);
    zn_write_file(f->config, "[server]\ntimeout = 300\n");
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_with(state, NULL); }
static int setup_pw(void **state) { return setup_with(state, "pw-123"); }

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_child_stop(&f->w);
    zn_fwp_client_free(f->p);
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    zn_srv_cleanup(&f->srv);
    free(f);
    return 0;
}

/* `zenith work` on the default queue with the test's config, + extra. */
static void
start_worker(struct fx *f, const char *const *extra)
{
    const char *args[32] = {"work", "--server", f->srv.addr, "--queues",
                            "default", "--config", f->config};
    size_t n = 7;

    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    zn_child_start(&f->w, f->wlog, args);
}

static void
expect_exit(struct fx *f, int want, int64_t base_ms)
{
    int got = zn_child_wait(&f->w, zn_test_ms(base_ms));

    if (got != want) {
        zn_child_dump_log(&f->w);
        zn_srv_dump_log(&f->srv);
        fail_msg("worker exit status %d, want %d", got, want);
    }
}

/* Runs the worker until it has handled max_jobs jobs; it must exit 0. */
static void
work(struct fx *f, const char *max_jobs)
{
    const char *extra[] = {"--max-jobs", max_jobs, NULL};

    start_worker(f, extra);
    expect_exit(f, 0, 10000);
}

static void
assert_state(struct fx *f, const char *jid, const char *state)
{
    json_t *info = zn_srv_job(f->p, jid);
    const char *got = json_string_value(
        json_object_get(json_object_get(info, "job"), "state"));

    if (!got || strcmp(got, state) != 0) {
        zn_child_dump_log(&f->w);
        fail_msg("job %s is %s, want %s", jid, got ? got : "(none)", state);
    }
    json_decref(info);
}

/* The job must be dead with this errtype and a message starting so. */
static void
assert_dead(struct fx *f, const char *jid, const char *errtype,
            const char *message)
{
    json_t *info, *fl;
    const char *et, *msg;

    assert_state(f, jid, "dead");
    info = zn_srv_job(f->p, jid);
    fl = json_object_get(json_object_get(info, "job"), "failure");
    et = json_string_value(json_object_get(fl, "errtype"));
    msg = json_string_value(json_object_get(fl, "message"));
    if (!et || strcmp(et, errtype) != 0 || !msg ||
        strncmp(msg, message, strlen(message)) != 0)
        fail_msg("job %s failed as '%s': '%s'; want '%s': '%s'", jid,
                 et ? et : "", msg ? msg : "", errtype, message);
    json_decref(info);
}

/* ---- tests ------------------------------------------------------------- */

static void
test_work_noop_acked(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p, "{\"jid\":\"n1\",\"jobtype\":\"noop\"}");
    work(f, "1");
    assert_state(f, "n1", "done");
    assert_true(zn_child_log_wait(&f->w, "\"event\":\"job.done\"", 0));
}

static void
test_work_sleep_and_fail_to_dead(void **state)
{
    struct fx *f = *state;
    json_t *info;

    zn_srv_push(f->p, "{\"jid\":\"s1\",\"jobtype\":\"sleep\",\"args\":[0.1]}");
    zn_srv_push(f->p,
                "{\"jid\":\"f1\",\"jobtype\":\"fail\",\"args\":[\"boom\"],"
                "\"retry\":1,\"backoff\":[0]}");
    /* sleep, fail (retry), fail again (dead). */
    work(f, "3");
    assert_state(f, "s1", "done");
    assert_dead(f, "f1", "fail", "boom");
    info = zn_srv_job(f->p, "f1");
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 2);
    json_decref(info);
}

static void
test_work_unknown_jobtype(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p,
                "{\"jid\":\"u1\",\"jobtype\":\"resize-image\",\"retry\":0}");
    zn_srv_push(f->p, "{\"jid\":\"u2\",\"jobtype\":\"noop\"}");
    work(f, "2");
    assert_dead(f, "u1", "unknown jobtype",
                "no handler for jobtype 'resize-image'");
    /* The worker went on with the next job. */
    assert_state(f, "u2", "done");
}

static void
test_work_exec(void **state)
{
    struct fx *f = *state;

    zn_write_file(f->config,
                  "[job \"check\"]\n"
                  "command = /bin/sh -c \"grep -q '\\\"jid\\\":\\\"e1\\\"' && "
                  "test $ZENITH_QUEUE = default\"\n"
                  "[job \"resize\"]\n"
                  "command = /bin/sh -c \"echo resize failed >&2; exit 3\"\n");
    zn_srv_push(f->p, "{\"jid\":\"e1\",\"jobtype\":\"check\"}");
    zn_srv_push(f->p, "{\"jid\":\"e2\",\"jobtype\":\"resize\",\"retry\":0}");
    work(f, "2");
    assert_state(f, "e1", "done");
    assert_dead(f, "e2", "exit 3", "resize failed");
}

static void
test_work_exec_timeout_goes_on(void **state)
{
    struct fx *f = *state;

    zn_write_file(f->config, "[job \"slow\"]\ncommand = /bin/sleep 30\n"
                             "[job \"slow-1s\"]\ncommand = /bin/sleep 30\n"
                             "timeout = 1\n");
    zn_srv_push(f->p, "{\"jid\":\"x1\",\"jobtype\":\"slow\",\"retry\":0,"
                      "\"reserve_for\":2}");
    /* The config's timeout replaces the job's reserve_for (300 s). */
    zn_srv_push(f->p, "{\"jid\":\"x2\",\"jobtype\":\"slow-1s\",\"retry\":0}");
    zn_srv_push(f->p, "{\"jid\":\"x3\",\"jobtype\":\"noop\"}");
    /* The commands are killed; the worker itself carries on. */
    work(f, "3");
    assert_dead(f, "x1", "timeout", "job ran past its timeout of 2 s");
    assert_dead(f, "x2", "timeout", "job ran past its timeout of 1 s");
    assert_state(f, "x3", "done");
}

static void
test_work_webhook(void **state)
{
    struct fx *f = *state;
    struct zn_test_httpd ok, down;
    char cfg[512];

    zn_test_httpd_start(&ok, 200, "{\"ok\":true}");
    zn_test_httpd_start(&down, 500, "maintenance");
    snprintf(cfg, sizeof(cfg),
             "[job \"hook-ok\"]\nurl = http://127.0.0.1:%d/in\n"
             "[job \"hook-down\"]\nurl = http://127.0.0.1:%d/in\n",
             ok.port, down.port);
    zn_write_file(f->config, cfg);
    zn_srv_push(f->p, "{\"jid\":\"w1\",\"jobtype\":\"hook-ok\",\"args\":[42]}");
    zn_srv_push(f->p, "{\"jid\":\"w2\",\"jobtype\":\"hook-down\",\"retry\":0}");
    work(f, "2");
    zn_test_httpd_join(&ok);
    zn_test_httpd_join(&down);
    assert_state(f, "w1", "done");
    assert_non_null(strstr(ok.request, "POST /in HTTP/1.1"));
    assert_non_null(strstr(ok.request, "\"args\":[42]"));
    assert_dead(f, "w2", "http 500", "HTTP 500: maintenance");
}

static void
test_work_builtin_timeout_exits(void **state)
{
    struct fx *f = *state;
    int64_t t0;
    json_t *info, *a;

    zn_srv_push(f->p, "{\"jid\":\"t1\",\"jobtype\":\"sleep\",\"args\":[5],"
                      "\"reserve_for\":1,\"retry\":0}");
    t0 = zn_clock_mono_ms();
    start_worker(f, NULL);
    /* The watchdog fails the job, then ends the stuck process: status 3. */
    expect_exit(f, 3, 2500);
    assert_true(zn_clock_mono_ms() - t0 < zn_test_ms(2500));
    assert_dead(f, "t1", "timeout", "job ran past its timeout of 1 s");
    /* Recorded by the worker's FAIL, not by the lease's expiry. */
    info = zn_srv_job(f->p, "t1");
    a = json_array_get(json_object_get(info, "attempts"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "outcome")),
                        "failed");
    json_decref(info);
}

static void
test_work_crash_is_not_lost(void **state)
{
    struct fx *f = *state;
    json_t *info, *a;
    const char *outcome;
    int64_t deadline;
    int status;

    zn_srv_push(f->p, "{\"jid\":\"c1\",\"jobtype\":\"crash\",\"retry\":0}");
    start_worker(f, NULL);
    status = zn_child_wait(&f->w, zn_test_ms(10000));
    if (status <= 0)
        fail_msg("worker exit status %d, want a crash", status);
    deadline = zn_clock_mono_ms() + zn_test_ms(5000);
    /* Its connections closed: the server ends the attempt as they go. */
    for (;;) {
        info = zn_srv_job(f->p, "c1");
        a = json_array_get(json_object_get(info, "attempts"), 0);
        outcome = json_string_value(json_object_get(a, "outcome"));
        if (outcome || zn_clock_mono_ms() > deadline)
            break;
        json_decref(info);
        poll(NULL, 0, 5);
    }
    assert_string_equal(outcome ? outcome : "(none)", "worker gone");
    json_decref(info);
}

static void
test_work_sigterm_fails_running_job(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p, "{\"jid\":\"g1\",\"jobtype\":\"sleep\",\"args\":[30],"
                      "\"retry\":0}");
    start_worker(f, NULL);
    zn_child_wait_log(&f->w, "\"event\":\"job.started\"", 5000);
    kill(f->w.pid, SIGTERM);
    expect_exit(f, 0, 5000);
    assert_dead(f, "g1", "terminated", "the worker was told to terminate");
}

static void
test_work_sigterm_kills_exec(void **state)
{
    struct fx *f = *state;

    zn_write_file(f->config, "[job \"slow\"]\ncommand = /bin/sleep 30\n");
    zn_srv_push(f->p, "{\"jid\":\"k1\",\"jobtype\":\"slow\",\"retry\":0}");
    start_worker(f, NULL);
    zn_child_wait_log(&f->w, "\"event\":\"job.started\"", 5000);
    kill(f->w.pid, SIGTERM);
    /* The command's group gets SIGTERM; sleep dies of it at once. */
    expect_exit(f, 0, 3000);
    assert_dead(f, "k1", "terminated", "the worker was told to terminate");
}

static void
test_work_sigterm_when_idle(void **state)
{
    struct fx *f = *state;

    start_worker(f, NULL);
    zn_child_wait_log(&f->w, "\"event\":\"worker.started\"", 5000);
    kill(f->w.pid, SIGTERM);
    /* It waits in FETCH; terminate does not wait for the FETCH to end. */
    expect_exit(f, 0, 1500);
}

/*
 * The server gone while the worker waits in FETCH: status 4, which the
 * supervisor does not count a crash of a job the worker may hold.
 */
static void
test_work_server_lost(void **state)
{
    struct fx *f = *state;

    start_worker(f, NULL);
    zn_child_wait_log(&f->w, "\"event\":\"worker.started\"", 5000);
    zn_srv_kill9(&f->srv);
    expect_exit(f, 4, 3000);
    zn_srv_start(&f->srv, NULL); /* for the teardown's clean stop */
}

/*
 * A FETCH the server refuses (here its store cannot read the job's row)
 * does not end the worker: it waits, longer each time, asks again, and
 * runs the job once the row reads again.
 */
static void
test_work_fetch_refused_goes_on(void **state)
{
    const char *extra[] = {"--max-jobs", "1", NULL};
    struct fx *f = *state;
    char path[PATH_MAX];

    zn_srv_push(f->p, "{\"jid\":\"j1\",\"jobtype\":\"noop\"}");
    zn_srv_db_path(&f->srv, path, sizeof(path));
    zn_test_sqlite_exec(path, "UPDATE jobs SET tags = '{oops'");
    start_worker(f, extra);
    /* Asked again after 1 s, then after 2 s. */
    zn_child_wait_log(&f->w, "\"retry_ms\":2000", 10000);
    zn_test_sqlite_exec(path, "UPDATE jobs SET tags = NULL");
    expect_exit(f, 0, 10000);
    assert_state(f, "j1", "done");
}

static void
test_work_sigtstp_quiets(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p, "{\"jid\":\"q1\",\"jobtype\":\"sleep\",\"args\":[0.5]}");
    zn_srv_push(f->p, "{\"jid\":\"q2\",\"jobtype\":\"noop\"}");
    start_worker(f, NULL);
    zn_child_wait_log(&f->w, "\"event\":\"job.started\"", 5000);
    kill(f->w.pid, SIGTSTP);
    /* quiet: the running job ends normally, the next is not fetched. */
    expect_exit(f, 0, 5000);
    assert_state(f, "q1", "done");
    assert_state(f, "q2", "enqueued");
}

static void
test_work_beats_with_its_wid(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"--wid", "w-test-1", NULL};
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(5000);
    json_t *info = NULL, *wk = NULL;
    size_t i;

    zn_srv_push(f->p, "{\"jid\":\"b1\",\"jobtype\":\"sleep\",\"args\":[30],"
                      "\"retry\":0}");
    start_worker(f, extra);
    /* Its first BEAT comes at start, on the beat thread's connection. */
    while (!wk && zn_clock_mono_ms() < deadline) {
        json_t *w;

        json_decref(info);
        info = zn_srv_parse_take(zn_srv_call(f->p, "INFO", NULL));
        json_array_foreach(json_object_get(json_object_get(info, "zenith"),
                                           "workers"), i, w)
            if (json_integer_value(json_object_get(w, "rss_kb")) > 0)
                wk = w;
    }
    if (!wk)
        fail_msg("no worker with an RSS in INFO");
    assert_string_equal(json_string_value(json_object_get(wk, "wid")),
                        "w-test-1");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(wk, "labels"), 0)), "zenith");
    json_decref(info);
    assert_true(zn_child_log_wait(&f->w, "\"wid\":\"w-test-1\"", 0));
}

static void
test_work_usage_and_config_errors(void **state)
{
    struct fx *f = *state;
    const char *bad_queue[] = {"--queues", "a b", NULL};
    const char *bad_max[] = {"--max-jobs", "many", NULL};
    const char *bad_flag[] = {"--bogus", NULL};
    const char *args[] = {"work", "--server", "127.0.0.1:1", NULL};

    start_worker(f, bad_queue);
    expect_exit(f, 2, 5000);
    start_worker(f, bad_max);
    expect_exit(f, 2, 5000);
    start_worker(f, bad_flag);
    expect_exit(f, 2, 5000);
    zn_write_file(f->config,
                  "[job \"x\"]\ncommand = /bin/true\nurl = http://a/\n");
    start_worker(f, NULL);
    expect_exit(f, 2, 5000);
    assert_true(zn_child_log_wait(&f->w, "zenith.ini:3: job 'x': url:", 0));
    /* Nothing listens on port 1: exit 1 with the reason. */
    zn_child_start(&f->w, f->wlog, args);
    expect_exit(f, 1, 5000);
    assert_true(zn_child_log_wait(&f->w, "zenith: cannot connect to "
                                         "'127.0.0.1:1'", 0));
}

static void
test_work_password(void **state)
{
    struct fx *f = *state;
    const char *wrong[] = {"--password", "nope", NULL};
    const char *right[] = {"--password", "pw-123", "--max-jobs", "1", NULL};

    zn_srv_push(f->p, "{\"jid\":\"p1\",\"jobtype\":\"noop\"}");
    start_worker(f, wrong);
    expect_exit(f, 1, 5000);
    start_worker(f, right);
    expect_exit(f, 0, 10000);
    assert_state(f, "p1", "done");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_work_noop_acked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_sleep_and_fail_to_dead,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_unknown_jobtype, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_exec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_exec_timeout_goes_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_webhook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_builtin_timeout_exits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_crash_is_not_lost, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_sigterm_fails_running_job,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_sigterm_kills_exec, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_sigterm_when_idle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_server_lost, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_fetch_refused_goes_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_sigtstp_quiets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_beats_with_its_wid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_usage_and_config_errors,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_password, setup_pw,
                                        teardown),
    };

    return cmocka_run_group_tests_name("zenith work", tests, NULL, NULL);
}
