/*
 * test_control.c - zenith restart, pause, continue, terminate and
 * workers against the real `zenith serve` and its `zenith work`
 * children, and what a thousand worker restarts leave behind in the
 * server (zombies, file descriptors).
 */
#include "compat.h"

#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "harness.h"

#define CHILDREN_MAX 64

struct fx {
    struct zn_srv srv;
    struct zn_fwp_client *p;
    char config[PATH_MAX];
    struct zn_child w;       /* a worker of our own (not supervised) */
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    zn_srv_init_dir(&f->srv);
    snprintf(f->config, sizeof(f->config), "%s/zenith.ini", f->srv.dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_child_stop(&f->w);
    zn_srv_finish(&f->srv, f->p);
    free(f);
    return 0;
}

static void
start(struct fx *f, const char *text)
{
    zn_srv_start_config(&f->srv, f->config, text);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
}

/* Runs `zenith ARGS... --server ADDR`; returns the exit status. */
static int
cli(struct fx *f, const char *const *args, char **out, char **err)
{
    const char *argv[16];
    size_t n = 0;

    for (; n < 12 && args[n]; n++)
        argv[n] = args[n];
    argv[n++] = "--server";
    argv[n++] = f->srv.addr;
    argv[n] = NULL;
    return zn_run_cli_env(NULL, argv, out, err);
}

/* Pushes n jobs of jobtype (args JSON) as jids PREFIX0.. with PUSHB. */
static void
push_many(struct fx *f, const char *prefix, int n, const char *jobtype,
          const char *args)
{
    enum { BATCH = 500 };
    size_t size = BATCH * 128;
    char *text = malloc(size);

    assert_non_null(text);
    for (int i = 0; i < n; i += BATCH) {
        size_t off = (size_t)snprintf(text, size, "[");

        for (int k = i; k < n && k < i + BATCH; k++)
            off += (size_t)snprintf(text + off, size - off,
                                    "%s{\"jid\":\"%s%d\",\"jobtype\":\"%s\","
                                    "\"args\":%s}", k > i ? "," : "",
                                    prefix, k, jobtype, args);
        snprintf(text + off, size - off, "]");
        free(zn_srv_call(f->p, "PUSHB", text));
    }
    free(text);
}

static void
wait_done(struct fx *f, int64_t want, int64_t base_ms)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(base_ms), n;

    while ((n = zn_srv_queue_count(&f->srv, f->p, "default", "done")) < want) {
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("%lld of %lld jobs done", (long long)n,
                     (long long)want);
        }
        poll(NULL, 0, 50);
    }
}

/*
 * Every job of the run ran exactly once: a page at a time, every done
 * job has one attempt, and nothing is left in any other state.
 */
static void
assert_each_once(struct fx *f, int64_t want)
{
    static const char *const others[] = {"enqueued", "working", "retry",
                                         "dead", "scheduled"};
    int64_t seen = 0, after = 0;

    for (size_t i = 0; i < ZN_ARRAY_LEN(others); i++)
        assert_int_equal(zn_srv_queue_count(&f->srv, f->p, "default",
                                            others[i]), 0);
    for (;;) {
        char arg[96];
        json_t *page, *job;
        size_t i, n;

        snprintf(arg, sizeof(arg), "{\"state\":\"done\",\"after\":%lld,"
                 "\"limit\":1000}", (long long)after);
        page = zn_srv_parse_take(zn_srv_call(f->p, "JOBS", arg));
        n = json_array_size(json_object_get(page, "jobs"));
        json_array_foreach(json_object_get(page, "jobs"), i, job) {
            json_int_t a = json_integer_value(json_object_get(job,
                                                              "attempts"));

            if (a != 1)
                fail_msg("job %s ran %lld times",
                         json_string_value(json_object_get(job, "jid")),
                         (long long)a);
            seen++;
        }
        after = json_integer_value(json_object_get(page, "next"));
        json_decref(page);
        if (n == 0 || after <= 0)
            break;
    }
    assert_int_equal(seen, want);
}

/* ---- tests ------------------------------------------------------------- */

/*
 * zenith restart in the middle of 5,000 jobs: each one is done exactly
 * once, and every one of the four workers is replaced.
 */
static void
test_control_restart_mid_run(void **state)
{
    struct fx *f = *state;
    static const char *const restart[] = {"restart", NULL};
    char *out = NULL, wid[32];
    int64_t done_then;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 4\n");
    for (int n = 1; n <= 4; n++) {
        snprintf(wid, sizeof(wid), "\"wid\":\"main-%d-1\"", n);
        zn_srv_wait_log(&f->srv, "\"worker.connected\"", wid, 10000);
    }
    push_many(f, "r", 5000, "sleep", "[0.002]");
    wait_done(f, 300, 20000);
    assert_int_equal(cli(f, restart, &out, NULL), 0);
    done_then = zn_srv_queue_count(&f->srv, f->p, "default", "done");
    assert_non_null(strstr(out, "restarting 4 workers"));
    free(out);
    if (done_then >= 5000)
        fail_msg("the run was over before the restart");
    wait_done(f, 5000, 60000);
    for (int n = 1; n <= 4; n++) {
        snprintf(wid, sizeof(wid), "\"wid\":\"main-%d-1\"", n);
        zn_srv_wait_log(&f->srv, "\"supervisor.worker_exited\"", wid, 5000);
        snprintf(wid, sizeof(wid), "\"wid\":\"main-%d-2\"", n);
        zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"", wid, 5000);
    }
    assert_int_equal(zn_srv_log_count(&f->srv, "\"supervisor.worker_exited\"",
                                      "\"status\":\"exit 0\""), 4);
    assert_each_once(f, 5000);
}

/*
 * A thousand workers end (max_jobs = 1) and are replaced: the server has
 * no zombie and no more file descriptors than before, and every job ran
 * once.
 */
static void
test_control_thousand_restarts_leak_nothing(void **state)
{
    struct fx *f = *state;
    pid_t kids[CHILDREN_MAX];
    size_t before, after, zombies = 0, n;
    int64_t deadline;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 4\n"
             "max_jobs = 1\n");
    for (int k = 1; k <= 4; k++) {
        char wid[32];

        snprintf(wid, sizeof(wid), "\"wid\":\"main-%d-1\"", k);
        zn_srv_wait_log(&f->srv, "\"worker.connected\"", wid, 10000);
    }
    before = zn_test_fd_count(f->srv.pid);
    push_many(f, "t", 1000, "noop", "[]");
    wait_done(f, 1000, 55000);
    assert_true(zn_srv_log_count(&f->srv, "\"supervisor.worker_started\"",
                                 NULL) >= 1000);
    /* Settled: four children, none a zombie, as many fds as before. */
    deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    for (;;) {
        n = zn_test_children(f->srv.pid, kids, CHILDREN_MAX, &zombies);
        after = zn_test_fd_count(f->srv.pid);
        if (n == 4 && zombies == 0 && after <= before)
            break;
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("%zu children (%zu zombies), %zu fds (%zu before)", n,
                     zombies, after, before);
        }
        poll(NULL, 0, 50);
    }
    assert_each_once(f, 1000);
}

/* pause: the workers stop fetching (a job waits); continue: it runs. */
static void
test_control_pause_and_continue(void **state)
{
    struct fx *f = *state;
    static const char *const pause_main[] = {"pause", "main", NULL};
    static const char *const pause_nope[] = {"pause", "nope", NULL};
    static const char *const cont[] = {"continue", NULL};
    pid_t kids[CHILDREN_MAX];
    size_t zombies;
    char *out = NULL, *err = NULL;
    json_t *info;
    int64_t deadline;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 2\n");
    assert_int_equal(cli(f, pause_main, &out, NULL), 0);
    assert_string_equal(out, "paused: main\n");
    free(out);
    deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    while (zn_test_children(f->srv.pid, kids, CHILDREN_MAX, &zombies) > 0) {
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("the paused workers did not exit");
        }
        poll(NULL, 0, 20);
    }
    zn_srv_push(f->p, "{\"jid\":\"p1\",\"jobtype\":\"noop\"}");
    poll(NULL, 0, 500); /* a worker, if any, would take it now */
    info = zn_srv_job(f->p, "p1");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(info, "job"), "state")),
                        "enqueued");
    json_decref(info);
    assert_int_equal(cli(f, pause_nope, NULL, &err), 1);
    assert_non_null(strstr(err, "no supervisor 'nope'"));
    free(err);
    assert_int_equal(cli(f, cont, &out, NULL), 0);
    assert_string_equal(out, "continued: main\n");
    free(out);
    json_decref(zn_srv_wait_state(&f->srv, f->p, "p1", "done", 10000));
}

/*
 * zenith workers --json lists the supervisor's workers and a remote one
 * with every field, and shows the job a worker has in hand.
 */
static void
test_control_workers_lists_all(void **state)
{
    struct fx *f = *state;
    static const char *const workers[] = {"workers", "--json", NULL};
    static const char *const keys[] = {"supervisor", "wid", "pid", "host",
                                       "queues", "state", "jid",
                                       "working_since", "jobs", "rss_kb",
                                       "started_at"};
    char log[PATH_MAX], *out = NULL;
    const char *wargs[] = {"work", "--server", f->srv.addr, "--queues",
                           "other", "--wid", "remote-1", NULL};
    json_t *list, *w;
    size_t i, mine = 0, remote = 0, busy = 0;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 2\n");
    snprintf(log, sizeof(log), "%s/remote.log", f->srv.dir);
    zn_child_start(&f->w, log, wargs);
    zn_srv_wait_log(&f->srv, "\"worker.connected\"", "\"wid\":\"remote-1\"",
                    10000);
    zn_srv_push(f->p, "{\"jid\":\"w1\",\"jobtype\":\"sleep\",\"args\":[3]}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "w1", "working", 10000));
    assert_int_equal(cli(f, workers, &out, NULL), 0);
    list = json_loads(out, 0, NULL);
    if (!json_is_array(list))
        fail_msg("not a JSON array: %s", out);
    json_array_foreach(list, i, w) {
        const char *sup = json_string_value(json_object_get(w, "supervisor"));
        const char *jid = json_string_value(json_object_get(w, "jid"));

        for (size_t k = 0; k < ZN_ARRAY_LEN(keys); k++)
            if (!json_object_get(w, keys[k]) &&
                strcmp(keys[k], "supervisor") != 0 &&
                strcmp(keys[k], "jid") != 0 &&
                strcmp(keys[k], "working_since") != 0)
                fail_msg("worker %zu has no %s: %s", i, keys[k], out);
        if (sup && strcmp(sup, "main") == 0) {
            mine++;
            assert_string_equal(json_string_value(json_object_get(w,
                                                                 "queues")),
                                "default");
        } else if (!sup) {
            remote++;
            assert_string_equal(json_string_value(json_object_get(w,
                                                                 "queues")),
                                "other");
        }
        if (jid && strcmp(jid, "w1") == 0) {
            busy++;
            assert_non_null(json_string_value(json_object_get(
                w, "working_since")));
        }
    }
    json_decref(list);
    free(out);
    assert_int_equal(mine, 2);
    assert_int_equal(remote, 1);
    assert_int_equal(busy, 1);
}

/*
 * zenith terminate: the server stops once its running job is done
 * (within the grace), exit 0; the job is done, not failed.
 */
static void
test_control_terminate_waits_for_jobs(void **state)
{
    struct fx *f = *state;
    static const char *const term[] = {"terminate", "--grace", "20s", NULL};
    static const char *const bad[] = {"terminate", "--grace", "soon", NULL};
    json_t *info;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n");
    zn_srv_push(f->p, "{\"jid\":\"d1\",\"jobtype\":\"sleep\",\"args\":[2]}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "d1", "working", 10000));
    assert_int_equal(cli(f, bad, NULL, NULL), 2);
    assert_int_equal(cli(f, term, NULL, NULL), 0);
    zn_srv_wait_exit(&f->srv, 15000);
    zn_fwp_client_free(f->p);
    f->p = NULL;
    assert_true(zn_srv_log_has(&f->srv, "\"server.stopped\"", NULL));
    /* On the same data, without workers: d1 was done before the stop. */
    zn_srv_start(&f->srv, NULL);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
    info = zn_srv_job(f->p, "d1");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(info, "job"), "state")),
                        "done");
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 1);
    json_decref(info);
}

/* A job longer than the grace is FAILed as terminated, not lost. */
static void
test_control_terminate_grace_over(void **state)
{
    struct fx *f = *state;
    static const char *const term[] = {"terminate", "--grace", "1s", NULL};
    json_t *info;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n");
    zn_srv_push(f->p, "{\"jid\":\"g1\",\"jobtype\":\"sleep\",\"args\":[60]}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "g1", "working", 10000));
    assert_int_equal(cli(f, term, NULL, NULL), 0);
    zn_srv_wait_exit(&f->srv, 15000);
    zn_fwp_client_free(f->p);
    zn_srv_start(&f->srv, NULL);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
    info = zn_srv_job(f->p, "g1");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(info, "attempts"), 0) ?
                            json_object_get(json_array_get(json_object_get(
                                info, "attempts"), 0), "errtype") : NULL),
                        "terminated");
    json_decref(info);
}

/* Bad CONTROL input is refused with a message; the server goes on. */
static void
test_control_bad_input(void **state)
{
    struct fx *f = *state;
    static const char *const args[] = {
        "not json", "[1]", "{}", "{\"cmd\":1}", "{\"cmd\":\"explode\"}",
        "{\"cmd\":\"pause\",\"supervisor\":7}",
        "{\"cmd\":\"terminate\",\"grace_ms\":-1}",
        "{\"cmd\":\"terminate\",\"grace_ms\":\"x\"}",
    };

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n");
    for (size_t i = 0; i < ZN_ARRAY_LEN(args); i++) {
        const char *msg = zn_srv_call_err(f->p, "CONTROL", args[i]);

        if (!strstr(msg, "CONTROL"))
            fail_msg("CONTROL %s: '%s'", args[i], msg);
    }
    zn_srv_push(f->p, "{\"jid\":\"b1\",\"jobtype\":\"noop\"}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "b1", "done", 10000));
}

/*
 * serve --no-workers: the supervisor's commands say there is none (exit
 * 1); zenith workers still lists a remote worker, quietly; terminate
 * still stops the server.
 */
static void
test_control_without_supervisor(void **state)
{
    struct fx *f = *state;
    static const char *const restart[] = {"restart", NULL};
    static const char *const workers[] = {"workers", NULL};
    static const char *const terminate[] = {"terminate", NULL};
    char log[PATH_MAX], *out = NULL, *err = NULL;
    const char *wargs[] = {"work", "--server", f->srv.addr, "--wid",
                           "remote-2", NULL};

    zn_srv_start(&f->srv, NULL);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
    assert_int_equal(cli(f, restart, NULL, &err), 1);
    assert_non_null(strstr(err, "no supervisor"));
    free(err);
    err = NULL;
    snprintf(log, sizeof(log), "%s/remote.log", f->srv.dir);
    wargs[2] = f->srv.addr;
    zn_child_start(&f->w, log, wargs);
    zn_srv_wait_log(&f->srv, "\"worker.connected\"", "\"wid\":\"remote-2\"",
                    10000);
    assert_int_equal(cli(f, workers, &out, &err), 0);
    assert_non_null(strstr(out, "SUPERVISOR"));
    assert_non_null(strstr(out, "default"));
    assert_string_equal(err, "");
    free(out);
    free(err);
    /* terminate needs no supervisor: the server stops, exit 0. */
    assert_int_equal(cli(f, terminate, NULL, NULL), 0);
    zn_srv_wait_exit(&f->srv, 10000);
    assert_true(zn_srv_log_has(&f->srv, "\"server.stopped\"", NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_restart_mid_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_control_thousand_restarts_leak_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_pause_and_continue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_workers_lists_all, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_terminate_waits_for_jobs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_terminate_grace_over,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_bad_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_without_supervisor,
                                        setup, teardown),
    };

    return cmocka_run_group_tests_name("zenith control", tests, NULL, NULL);
}
