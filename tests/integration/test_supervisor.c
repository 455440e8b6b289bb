/*
 * test_supervisor.c - the supervisor inside the real `zenith serve`: each
 * test starts a server with workers on (and a small [supervisor "main"]
 * block: two processes on queue default, backoff 0) and watches what its
 * children do through JOBS, INFO, the server's log and /proc.
 *
 * The crash built-in raises SIGSEGV; AddressSanitizer would turn that
 * into an exit status, so the server (and its children) run with
 * handle_segv=0.
 */
#include "compat.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
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

#define CHILDREN_MAX 16

static const char *const server_env[] = {"ASAN_OPTIONS=handle_segv=0",
                                         NULL};

static const char config_text[] =
    "[server]\n"
    "backoff = 0\n"
    "[supervisor \"main\"]\n"
    "queues = default\n"
    "processes = 2\n"
    "grace = 3s\n"
    "quarantine_after = 2\n";

struct fx {
    struct zn_srv srv;
    struct zn_fwp_client *p;
    char config[PATH_MAX];
};

/* Starts the server with workers on and text as its config file. */
static void
start(struct fx *f, const char *text)
{
    zn_srv_start_config(&f->srv, f->config, text);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
}

/* A fixture whose test starts the server itself (start). */
static int
setup_bare(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->srv.env = server_env;
    zn_srv_init_dir(&f->srv);
    snprintf(f->config, sizeof(f->config), "%s/zenith.ini", f->srv.dir);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    setup_bare(state);
    start(*state, config_text);
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_srv_finish(&f->srv, f->p);
    free(f);
    return 0;
}

static const char *
job_str(json_t *info, const char *key)
{
    return json_string_value(json_object_get(json_object_get(info, "job"),
                                             key));
}

static const char *
attempt_str(json_t *info, size_t i, const char *key)
{
    json_t *a = json_array_get(json_object_get(info, "attempts"), i);

    return json_string_value(json_object_get(a, key));
}

/* The pid INFO reports for worker wid, 0 when it is not connected. */
static pid_t
worker_pid(struct fx *f, const char *wid)
{
    json_t *info = zn_srv_parse_take(zn_srv_call(f->p, "INFO", NULL)), *w;
    json_t *list = json_object_get(json_object_get(info, "zenith"),
                                   "workers");
    pid_t pid = 0;
    size_t i;

    json_array_foreach(list, i, w) {
        const char *id = json_string_value(json_object_get(w, "wid"));

        if (id && strcmp(id, wid) == 0)
            pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(info);
    return pid;
}

/* Waits until the server has want children, none a zombie. */
static size_t
wait_children(struct fx *f, size_t want, pid_t *out)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    size_t n, zombies;

    for (;;) {
        n = zn_test_children(f->srv.pid, out, CHILDREN_MAX, &zombies);
        if (n == want && zombies == 0)
            return n;
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("server has %zu children (%zu zombies), want %zu",
                     n, zombies, want);
        }
        poll(NULL, 0, 20);
    }
}


/* An attempt's time (started_at, ended_at) in epoch ms; fails if absent. */
static int64_t
attempt_ms(json_t *info, size_t i, const char *key)
{
    const char *t = attempt_str(info, i, key);
    int64_t ms = 0;

    if (!t || zn_clock_parse(t, &ms) < 0)
        fail_msg("attempt %zu has no %s", i, key);
    return ms;
}

/* Polls until every jid of jids is done. */
static void
wait_all_done(struct fx *f, const char *const *jids, size_t n, int64_t base)
{
    for (size_t i = 0; i < n; i++)
        json_decref(zn_srv_wait_state(&f->srv, f->p, jids[i], "done", base));
}

/* How many processes run with exactly this argv (from /proc/PID/cmdline). */
static size_t
count_cmdline(const char *const *argv)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[300], buf[512];
        size_t len = 0, off = 0, k = 0;
        bool same = true;
        FILE *fp;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        fp = fopen(path, "r");
        if (!fp)
            continue;
        len = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[len] = '\0';
        for (; argv[k] && same; k++) {
            same = off < len && strcmp(buf + off, argv[k]) == 0;
            off += strlen(buf + off) + 1;
        }
        if (same && off == len)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_supervisor_runs_noop(void **state)
{
    struct fx *f = *state;
    json_t *info, *a;
    const char *wid;

    zn_srv_push(f->p, "{\"jid\":\"n1\",\"jobtype\":\"noop\"}");
    info = zn_srv_wait_state(&f->srv, f->p, "n1", "done", 10000);
    /* The worker reports the attempt's CPU time and peak RSS with ACK. */
    a = json_array_get(json_object_get(info, "attempts"), 0);
    assert_true(json_is_integer(json_object_get(a, "cpu_ms")));
    assert_true(json_integer_value(json_object_get(a, "cpu_ms")) >= 0);
    assert_true(json_integer_value(json_object_get(a, "rss_kb")) > 0);
    wid = attempt_str(info, 0, "worker");
    if (!wid || strncmp(wid, "main-", 5) != 0)
        fail_msg("n1 was worked by '%s', want a supervised main-N-G",
                 wid ? wid : "(none)");
    json_decref(info);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-1-1\"", 5000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-2-1\"", 5000);
}

static void
test_supervisor_crash_is_attributed_and_quarantined(void **state)
{
    struct fx *f = *state;
    json_t *info, *attempts;
    const char *msg;

    zn_srv_push(f->p, "{\"jid\":\"c1\",\"jobtype\":\"crash\",\"retry\":5}");
    info = zn_srv_wait_state(&f->srv, f->p, "c1", "dead", 20000);
    attempts = json_object_get(info, "attempts");
    assert_int_equal(json_array_size(attempts), 2);
    assert_string_equal(attempt_str(info, 0, "outcome"), "SIGSEGV");
    assert_string_equal(attempt_str(info, 1, "outcome"), "SIGSEGV");
    msg = attempt_str(info, 0, "message");
    if (!msg || !strstr(msg, "killed by SIGSEGV"))
        fail_msg("attempt message '%s'", msg ? msg : "(none)");
    assert_true(json_is_true(json_object_get(json_object_get(info, "job"),
                                             "quarantined")));
    assert_true(json_integer_value(json_object_get(
                    json_array_get(attempts, 0), "rss_kb")) > 0);
    json_decref(info);
    /* Both slots lost a process to c1: each gets a new one. */
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-1-2\"", 10000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-2-2\"", 10000);
    assert_true(zn_srv_alive(&f->srv));
    zn_srv_push(f->p, "{\"jid\":\"n2\",\"jobtype\":\"noop\"}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "n2", "done", 10000));
}

/*
 * The count of workers a job killed is read from its attempts, so a
 * restart of the server between two crashes does not reset it.
 */
static void
test_supervisor_quarantine_survives_restart(void **state)
{
    struct fx *f = *state;
    json_t *info;
    const char *msg;

    zn_srv_push(f->p, "{\"jid\":\"q1\",\"jobtype\":\"crash\",\"retry\":5,"
                      "\"backoff\":[4]}");
    info = zn_srv_wait_state(&f->srv, f->p, "q1", "retry", 20000);
    assert_string_equal(attempt_str(info, 0, "outcome"), "SIGSEGV");
    json_decref(info);
    zn_fwp_client_free(f->p);
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    start(f, config_text);
    info = zn_srv_wait_state(&f->srv, f->p, "q1", "dead", 20000);
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 2);
    assert_true(json_is_true(json_object_get(json_object_get(info, "job"),
                                             "quarantined")));
    msg = attempt_str(info, 1, "message");
    if (!msg || !strstr(msg, "quarantined after 2 crashed workers"))
        fail_msg("second attempt's message '%s'", msg ? msg : "(none)");
    json_decref(info);
}

static void
test_supervisor_kill9_fails_and_reruns(void **state)
{
    struct fx *f = *state;
    json_t *info;
    char wid[80];
    pid_t pid = 0;
    int64_t deadline, killed, rerun;

    zn_srv_push(f->p, "{\"jid\":\"k1\",\"jobtype\":\"sleep\",\"args\":[2],"
                      "\"retry\":3}");
    info = zn_srv_wait_state(&f->srv, f->p, "k1", "working", 10000);
    snprintf(wid, sizeof(wid), "%s", job_str(info, "worker"));
    json_decref(info);
    deadline = zn_clock_mono_ms() + zn_test_ms(5000);
    while (!(pid = worker_pid(f, wid)) && zn_clock_mono_ms() < deadline)
        poll(NULL, 0, 20);
    assert_true(pid > 0);
    killed = zn_clock_wall_ms();
    assert_int_equal(kill(pid, SIGKILL), 0);
    info = zn_srv_wait_state(&f->srv, f->p, "k1", "done", 20000);
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 2);
    /* Re-run within 1 s of the kill, by the other (idle) worker. */
    rerun = attempt_ms(info, 1, "started_at") - killed;
    printf("k1 ran again %lld ms after the kill\n", (long long)rerun);
    if (rerun > 1000)
        fail_msg("k1 ran again %lld ms after the kill, want <= 1000",
                 (long long)rerun);
    assert_string_equal(attempt_str(info, 0, "outcome"), "SIGKILL");
    assert_string_equal(attempt_str(info, 0, "errtype"), "SIGKILL");
    assert_string_equal(attempt_str(info, 0, "worker"), wid);
    assert_string_not_equal(attempt_str(info, 1, "worker"), wid);
    assert_string_equal(attempt_str(info, 1, "outcome"), "ok");
    json_decref(info);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_exited\"",
                    "\"status\":\"SIGKILL\"", 5000);
}

/*
 * A worker told to finish and exit that does not (stopped here with
 * SIGSTOP) is killed after its grace, and its slot gets a new worker.
 */
static void
test_supervisor_stuck_retiring_worker_is_killed(void **state)
{
    struct fx *f = *state;
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    pid_t pid = 0;

    start(f, "[supervisor \"main\"]\n"
             "queues = default\n"
             "processes = 1\n"
             "grace = 1s\n");
    while (!(pid = worker_pid(f, "main-1-1")) && zn_clock_mono_ms() < deadline)
        poll(NULL, 0, 20);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    free(zn_srv_call(f->p, "CONTROL", "{\"cmd\":\"restart\"}"));
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_killed\"",
                    "\"wid\":\"main-1-1\"", 10000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-1-2\"", 10000);
    zn_srv_push(f->p, "{\"jid\":\"after\",\"jobtype\":\"noop\"}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "after", "done", 10000));
}

/* A relative socket path (or --data) still reaches the workers. */
static void
test_supervisor_relative_socket(void **state)
{
    struct fx *f = *state;
    char text[256];

    snprintf(text, sizeof(text),
             "[server]\nunix_socket = zn-test-%ld.sock\n"
             "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n",
             (long)getpid());
    start(f, text);
    zn_srv_push(f->p, "{\"jid\":\"rel\",\"jobtype\":\"noop\"}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "rel", "done", 10000));
}

/* True when this test process has target open too (inherited by all). */
static bool
test_has_open(const char *target)
{
    char path[64], mine[PATH_MAX];

    for (int fd = 0; fd < 1024; fd++) {
        ssize_t len;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        len = readlink(path, mine, sizeof(mine) - 1);
        if (len < 0)
            continue;
        mine[len] = '\0';
        if (strcmp(mine, target) == 0)
            return true;
    }
    return false;
}

/*
 * No zombies while running (after a kill -9 too), nothing of the server's
 * open in its children, and no child left once it stops.
 */
static void
test_supervisor_no_zombies_no_leaked_fds(void **state)
{
    struct fx *f = *state;
    pid_t kids[CHILDREN_MAX];
    char path[128], target[PATH_MAX], theirs[PATH_MAX];
    size_t n;

    wait_children(f, 2, kids);
    assert_int_equal(kill(kids[0], SIGKILL), 0);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_exited\"",
                    "\"status\":\"SIGKILL\"", 5000);
    n = wait_children(f, 2, kids);
    for (size_t i = 0; i < n; i++) {
        for (int fd = 3; fd < 1024; fd++) {
            ssize_t len;

            snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)kids[i], fd);
            len = readlink(path, target, sizeof(target) - 1);
            if (len < 0)
                continue;
            target[len] = '\0';
            /*
             * The log is the server's stderr, which children share on
             * purpose; the harness also leaves it open as a spare fd.
             */
            if (strcmp(target, f->srv.log) == 0)
                continue;
            if (strstr(target, f->srv.dir))
                fail_msg("child %d has %s open as fd %d", (int)kids[i],
                         target, fd);
            /* The same socket or pipe as one of the server's is leaked. */
            for (int sfd = 3; sfd < 1024; sfd++) {
                ssize_t slen;

                snprintf(path, sizeof(path), "/proc/%d/fd/%d",
                         (int)f->srv.pid, sfd);
                slen = readlink(path, theirs, sizeof(theirs) - 1);
                if (slen < 0)
                    continue;
                theirs[slen] = '\0';
                /*
                 * What the test runner left open in us reaches the server
                 * as it is: only what the server opened must stay home.
                 */
                if (strcmp(theirs, target) == 0 &&
                    strncmp(target, "anon_inode:", 11) != 0 &&
                    !test_has_open(target))
                    fail_msg("child %d shares %s with the server",
                             (int)kids[i], target);
            }
        }
    }
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    for (size_t i = 0; i < n; i++)
        if (kill(kids[i], 0) == 0 || errno != ESRCH)
            fail_msg("child %d outlived the server", (int)kids[i]);
}


/*
 * A job that leaves its worker above memory: the job is done (once), the
 * worker exits cleanly after it and is replaced, the next jobs run on.
 */
static void
test_supervisor_memory_replaces_worker(void **state)
{
    struct fx *f = *state;
    static const char *const jids[] = {"g1", "m1", "m2", "m3"};
    json_t *info;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n"
             "memory = 100\n");
    zn_srv_push(f->p, "{\"jid\":\"g1\",\"jobtype\":\"grow\",\"args\":[160]}");
    zn_srv_push(f->p, "{\"jid\":\"m1\",\"jobtype\":\"noop\"}");
    zn_srv_push(f->p, "{\"jid\":\"m2\",\"jobtype\":\"noop\"}");
    zn_srv_push(f->p, "{\"jid\":\"m3\",\"jobtype\":\"noop\"}");
    wait_all_done(f, jids, ZN_ARRAY_LEN(jids), 20000);
    info = zn_srv_job(f->p, "g1");
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 1);
    assert_string_equal(attempt_str(info, 0, "worker"), "main-1-1");
    json_decref(info);
    zn_srv_wait_log(&f->srv, "\"worker.memory_exceeded\"",
                    "\"wid\":\"main-1-1\"", 5000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_exited\"",
                    "\"status\":\"exit 0\"", 5000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-1-2\"", 5000);
    /* The jobs after g1 ran on the replacement, each once. */
    for (size_t i = 1; i < ZN_ARRAY_LEN(jids); i++) {
        info = zn_srv_job(f->p, jids[i]);
        assert_int_equal(json_array_size(json_object_get(info, "attempts")),
                         1);
        assert_string_equal(attempt_str(info, 0, "worker"), "main-1-2");
        json_decref(info);
    }
}

/*
 * A block's tries and backoff apply to a job that sets neither: with
 * backoff = 1,2,3 the retries start 1, 2 and 3 s after the failures
 * (+-0.5 s), and the fourth failure is the last. A job's own retry wins.
 */
static void
test_supervisor_block_backoff_and_tries(void **state)
{
    struct fx *f = *state;
    json_t *info;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n"
             "tries = 4\nbackoff = 1,2,3\n");
    zn_srv_push(f->p,
                "{\"jid\":\"b1\",\"jobtype\":\"fail\",\"args\":[\"no\"]}");
    zn_srv_push(f->p, "{\"jid\":\"b2\",\"jobtype\":\"fail\",\"args\":[\"no\"],"
                      "\"retry\":0}");
    info = zn_srv_wait_state(&f->srv, f->p, "b1", "dead", 30000);
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 4);
    for (size_t i = 1; i < 4; i++) {
        int64_t gap = attempt_ms(info, i, "started_at") -
                      attempt_ms(info, i - 1, "ended_at");

        printf("retry %zu started %lld ms after failure %zu\n", i,
               (long long)gap, i);
        if (gap < (int64_t)i * 1000 - 500 || gap > (int64_t)i * 1000 + 500) {
            zn_srv_dump_log(&f->srv);
            fail_msg("retry %zu started %lld ms after the failure, want "
                     "%zu000 +- 500", i, (long long)gap, i);
        }
    }
    json_decref(info);
    info = zn_srv_wait_state(&f->srv, f->p, "b2", "dead", 10000);
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 1);
    json_decref(info);
}

/*
 * A block's timeout is the lease of a job that sets none: a sleep past it
 * is killed at the timeout (+-1 s), FAILed as timeout, and retried.
 */
static void
test_supervisor_block_timeout(void **state)
{
    struct fx *f = *state;
    json_t *info;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n"
             "timeout = 2\ntries = 2\nbackoff = 0\n");
    zn_srv_push(f->p, "{\"jid\":\"t1\",\"jobtype\":\"sleep\",\"args\":[30]}");
    info = zn_srv_wait_state(&f->srv, f->p, "t1", "dead", 30000);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(info, "job"), "reserve_for")), 2);
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 2);
    for (size_t i = 0; i < 2; i++) {
        int64_t ran = attempt_ms(info, i, "ended_at") -
                      attempt_ms(info, i, "started_at");

        assert_string_equal(attempt_str(info, i, "errtype"), "timeout");
        printf("attempt %zu was killed after %lld ms (timeout 2 s)\n", i + 1,
               (long long)ran);
        if (ran < 1000 || ran > 3000)
            fail_msg("attempt %zu ran %lld ms, want 2000 +- 1000", i,
                     (long long)ran);
    }
    json_decref(info);
    /* The watchdog ended both workers; the slot has its third process. */
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-1-3\"", 10000);
}

/*
 * An exec command whose whole process group ignores SIGTERM is killed
 * all the same (SIGKILL after the grace) when its job runs past timeout.
 */
static void
test_supervisor_exec_ignoring_sigterm_is_killed(void **state)
{
    struct fx *f = *state;
    static const char *const argv[] = {"sleep", "29.25", NULL};
    int64_t deadline;
    json_t *info;

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n"
             "timeout = 2\ntries = 1\n"
             "[job \"stubborn\"]\n"
             "command = /bin/sh -c \"trap '' TERM; exec sleep 29.25\"\n");
    zn_srv_push(f->p, "{\"jid\":\"s1\",\"jobtype\":\"stubborn\"}");
    deadline = zn_clock_mono_ms() + zn_test_ms(5000);
    while (count_cmdline(argv) == 0) {
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("the stubborn command never started");
        }
        poll(NULL, 0, 20);
    }
    info = zn_srv_wait_state(&f->srv, f->p, "s1", "dead", 15000);
    json_decref(info);
    /* SIGTERM at the timeout, SIGKILL 2 s later: gone well before 29 s. */
    deadline = zn_clock_mono_ms() + zn_test_ms(8000);
    while (count_cmdline(argv) > 0) {
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("the command that ignores SIGTERM still runs");
        }
        poll(NULL, 0, 20);
    }
    zn_srv_wait_log(&f->srv, "\"job.failed\"", "\"errtype\":\"timeout\"", 5000);
}

static void
test_supervisor_bad_config_exits_2(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"[supervisor \"a\"]\nprocesses = lots\n", "zenith.bad.ini:2: "
         "supervisor 'a': processes: 'lots' is not a whole number"},
        {"[server]\n\n[supervisor \"a\"]\nbalance = maybe\n",
         "zenith.bad.ini:4: supervisor 'a': balance: 'maybe'"},
        {"[supervisor \"a\"]\nqueues = x\n[supervisor \"a\"]\n",
         "zenith.bad.ini:3: supervisor 'a' is declared twice"},
        {"[supervisor \"a\"]\nwho = me\n", "zenith.bad.ini:2: supervisor "
         "'a': unknown key 'who'"},
        {"[supervisor \"a\"]\nmin_processes = 4\nmax_processes = 2\n",
         "zenith.bad.ini:1: supervisor 'a': min_processes (4) is more"},
        {"[supervisor a]\n", "zenith.bad.ini:1: expected [supervisor "
         "\"NAME\"]"},
        {"[supervisor \"a\"]\nqueues = x,y,z\nbalance = auto\n"
         "max_processes = 2\n", "zenith.bad.ini:1: supervisor 'a': balance "
         "= auto needs min_processes (1) for each of 3 queues"},
        {"[supervisor \"a\"]\nqueues = x,y,z\nbalance = simple\n"
         "processes = 2\n", "zenith.bad.ini:1: supervisor 'a': balance = "
         "simple needs a process for each of its 3 queues, processes is 2"},
        {"[supervisor \"a\"]\nmemory_hard_factor = 0\n", "zenith.bad.ini:2: "
         "supervisor 'a': memory_hard_factor: 0 is out of range 1..64"},
        {"[supervisor \"a\"]\nqueues = ok,no way\n", "zenith.bad.ini:2: "
         "supervisor 'a': queues: 'no way'"},
    };
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/zenith.bad.ini", f->srv.dir);
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        const char *args[] = {"serve", "--data", f->srv.dir, "--fwp",
                              "127.0.0.1:0", "--http", "", "--config", path,
                              NULL};
        char *err = NULL;
        int rc;

        zn_write_file(path, cases[i].text);
        rc = zn_run_cli_env(NULL, args, NULL, &err);
        if (rc != 2 || !err || !strstr(err, cases[i].want))
            fail_msg("case %zu: exit %d, stderr '%s', want 2 and '%s'", i,
                     rc, err ? err : "", cases[i].want);
        free(err);
    }
}

/* The nice value of process pid (/proc/PID/stat field 19). */
static long
nice_of(pid_t pid)
{
    char path[64], buf[1024], *p;
    FILE *fp;
    int field = 3;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fp = fopen(path, "r");
    assert_non_null(fp);
    p = fgets(buf, sizeof(buf), fp) ? strrchr(buf, ')') : NULL;
    fclose(fp);
    assert_non_null(p);
    p += 2; /* field 3, the state */
    for (; field < 19 && p; field++) {
        p = strchr(p, ' ');
        p = p ? p + 1 : NULL;
    }
    assert_non_null(p);
    return strtol(p, NULL, 10);
}

/* The soft "Max address space" of pid (/proc/PID/limits), -1 unlimited. */
static long long
address_limit_of(pid_t pid)
{
    char path[64], line[256];
    long long v = -2;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    fp = fopen(path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp))
        if (strncmp(line, "Max address space", 17) == 0) {
            const char *p = line + 17;

            while (*p == ' ')
                p++;
            v = strncmp(p, "unlimited", 9) == 0 ? -1 : strtoll(p, NULL, 10);
        }
    fclose(fp);
    return v;
}

/*
 * nice and the address-space limit (memory x memory_hard_factor; none in
 * sanitizer builds) apply to the children; max_time replaces a worker.
 */
static void
test_supervisor_nice_and_max_time(void **state)
{
    struct fx *f = *state;
    pid_t kids[CHILDREN_MAX];

    start(f, "[supervisor \"main\"]\nqueues = default\nprocesses = 1\n"
             "nice = 7\nmax_time = 1s\nmemory = 100\n"
             "memory_hard_factor = 3\n");
    /* Connected: it has exec'd, with its nice value and limits set. */
    zn_srv_wait_log(&f->srv, "\"worker.connected\"", "\"wid\":\"main-1-1\"",
                    10000);
    wait_children(f, 1, kids);
    assert_int_equal(nice_of(kids[0]), 7);
    if (HAVE_ADDRESS_LIMIT)
        assert_int_equal(address_limit_of(kids[0]), 300LL * 1024 * 1024);
    else
        assert_int_equal(address_limit_of(kids[0]), -1);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_retiring\"",
                    "\"reason\":\"max_time\"", 5000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-1-2\"", 8000);
    zn_srv_push(f->p, "{\"jid\":\"x1\",\"jobtype\":\"noop\"}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "x1", "done", 10000));
}

/*
 * The environment: ZENITH_SUPERVISOR_<BLOCK>_<KEY> over a block's keys,
 * the seed's REDIS_* and HORIZON_ENABLED read and checked; a bad value
 * stops start-up with "env NAME: message" and exit 2.
 */
static void
test_supervisor_env_overrides(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *var;
        const char *want;
    } bad[] = {
        {"ZENITH_SUPERVISOR_A_PROCESSES=lots", "env ZENITH_SUPERVISOR_A_"
         "PROCESSES: supervisor 'a': processes: 'lots' is not a whole"},
        {"ZENITH_SUPERVISOR_A_MIN_PROCESSES=5", "supervisor 'a': "
         "min_processes (5) is more than max_processes (3)"},
        {"ZENITH_SUPERVISOR_A_BALANCE=sometimes", "env ZENITH_SUPERVISOR_A_"
         "BALANCE: supervisor 'a': balance: 'sometimes'"},
        {"REDIS_PORT=99999", "env REDIS_PORT: redis_port: 99999 is out of "
         "range 1..65535"},
        {"ZENITH_REDIS_PORT=0", "env ZENITH_REDIS_PORT: redis_port: 0 is out "
         "of range"},
        {"REDIS_HOST=a b", "env REDIS_HOST: redis_host: 'a b' is not a host"},
        {"HORIZON_ENABLED=maybe", "env HORIZON_ENABLED: dashboard: 'maybe' is "
         "not true or false"},
    };
    const char *env[] = {"ASAN_OPTIONS=handle_segv=0",
                         "ZENITH_SUPERVISOR_MAIN_PROCESSES=3",
                         "ZENITH_SUPERVISOR_MAIN_QUEUES=default,other",
                         "REDIS_PASSWORD=null", "REDIS_HOST=redis.local",
                         "REDIS_PORT=6380", "HORIZON_ENABLED=false", NULL};
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/zenith.env.ini", f->srv.dir);
    zn_write_file(path, "[supervisor \"a\"]\nqueues = x\n");
    for (size_t i = 0; i < ZN_ARRAY_LEN(bad); i++) {
        const char *args[] = {"serve", "--data", f->srv.dir, "--fwp",
                              "127.0.0.1:0", "--http", "", "--config", path,
                              NULL};
        const char *one[] = {bad[i].var, NULL};
        char *err = NULL;
        int rc = zn_run_cli_env(one, args, NULL, &err);

        if (rc != 2 || !err || !strstr(err, bad[i].want))
            fail_msg("%s: exit %d, stderr '%s', want 2 and '%s'", bad[i].var,
                     rc, err ? err : "", bad[i].want);
        free(err);
    }
    /* Good values: the block runs 3 processes on both queues. */
    f->srv.env = env;
    start(f, config_text);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"wid\":\"main-3-1\"", 10000);
    zn_srv_wait_log(&f->srv, "\"supervisor.worker_started\"",
                    "\"queues\":\"default,other\"", 5000);
    assert_true(zn_srv_log_has(&f->srv, "\"server.listening\"",
                               "\"dashboard\":false"));
    zn_srv_push(f->p,
                "{\"jid\":\"o1\",\"jobtype\":\"noop\",\"queue\":\"other\"}");
    json_decref(zn_srv_wait_state(&f->srv, f->p, "o1", "done", 10000));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_supervisor_runs_noop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_crash_is_attributed_and_quarantined, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_quarantine_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_stuck_retiring_worker_is_killed, setup_bare,
            teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_relative_socket,
                                        setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_kill9_fails_and_reruns,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_no_zombies_no_leaked_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_memory_replaces_worker, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_block_backoff_and_tries, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_block_timeout,
                                        setup_bare, teardown),
        cmocka_unit_test_setup_teardown(
            test_supervisor_exec_ignoring_sigterm_is_killed, setup_bare,
            teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_nice_and_max_time,
                                        setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_env_overrides,
                                        setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_bad_config_exits_2,
                                        setup, teardown),
    };

    return cmocka_run_group_tests_name("zenith supervisor", tests, NULL,
                                       NULL);
}
