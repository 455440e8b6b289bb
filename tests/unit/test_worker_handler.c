/*
 * test_worker_handler.c - the worker's handlers, run in this process:
 * the registry and built-ins, command splitting, exec handlers against
 * /bin/sh, /bin/true and /bin/false, and webhook handlers against a tiny
 * HTTP server in a thread of the test (127.0.0.1, port chosen by the
 * kernel). The server thread only records what it received; assertions
 * run in the test's thread after joining it. Time limits scale with
 * ZN_TEST_TIMEOUT_MULT.
 */
#include "compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "worker/exec.h"
#include "worker/handler.h"
#include "worker/webhook.h"
#include "support/httpd.h"
#include "support/timeout.h"

/* ---- a job to run ------------------------------------------------------ */

struct job_fx {
    json_t *obj;
    char *text;
    struct zn_handler_job run;
    pid_t pgid;
};

static void
record_pgid(void *ctx, pid_t pgid)
{
    ((struct job_fx *)ctx)->pgid = pgid;
}

/* A job of jobtype with args (JSON text), timeout_s from now. */
static void
job_init(struct job_fx *f, const char *jobtype, const char *args,
         int timeout_s)
{
    json_t *a = json_loads(args, 0, NULL);

    assert_non_null(a);
    memset(f, 0, sizeof(*f));
    f->obj = json_pack("{s:s,s:s,s:s,s:o,s:i}", "jid", "j1", "jobtype",
                       jobtype, "queue", "mail", "args", a, "attempts", 2);
    f->text = json_dumps(f->obj, JSON_COMPACT);
    f->run.jid = "j1";
    f->run.jobtype = jobtype;
    f->run.queue = "mail";
    f->run.json = f->text;
    f->run.json_len = strlen(f->text);
    f->run.job = f->obj;
    f->run.attempt = 2;
    f->run.timeout_s = timeout_s;
    f->run.deadline_ms = zn_clock_mono_ms() + timeout_s * 1000LL;
    f->run.cancel_fd = -1;
    f->run.spawn_cb = record_pgid;
    f->run.spawn_ctx = f;
}

static void
job_release(struct job_fx *f)
{
    free(f->text);
    json_decref(f->obj);
}

/* Runs jobtype through a registry holding only the built-ins. */
static void
run_builtin(const char *jobtype, const char *args, int cancel_fd,
            struct zn_handler_result *res)
{
    struct zn_handler_registry r;
    struct job_fx f;

    assert_int_equal(zn_handler_registry_init(&r, NULL), 0);
    job_init(&f, jobtype, args, 30);
    f.run.cancel_fd = cancel_fd;
    zn_handler_run(&r, &f.run, res);
    job_release(&f);
    zn_handler_registry_release(&r);
}

/* ---- registry and built-ins -------------------------------------------- */

static void
test_worker_handler_registry(void **state)
{
    static const char *const builtins[] = {"noop", "sleep", "fail", "crash",
                                           "grow"};
    struct zn_handler_registry r;
    struct zn_handler h = {.kind = ZN_HANDLER_EXEC, .run = zn_exec_run,
                           .line = 7};
    size_t n;

    (void)state;
    assert_int_equal(zn_handler_registry_init(&r, NULL), 0);
    for (size_t i = 0; i < ZN_ARRAY_LEN(builtins); i++) {
        const struct zn_handler *b = zn_handler_find(&r, builtins[i]);

        assert_non_null(b);
        assert_int_equal(b->kind, ZN_HANDLER_BUILTIN);
        assert_int_equal(b->line, 0);
    }
    assert_null(zn_handler_find(&r, "nope"));
    assert_null(zn_handler_find(&r, ""));
    /* The config may replace a built-in: same name, new kind. */
    n = r.n;
    h.name = strdup("noop");
    assert_int_equal(zn_exec_split("/bin/true", &h.argv, NULL), 0);
    assert_int_equal(zn_handler_add_take(&r, &h, NULL), 0);
    assert_int_equal(r.n, n);
    assert_int_equal(zn_handler_find(&r, "noop")->kind, ZN_HANDLER_EXEC);
    assert_int_equal(zn_handler_find(&r, "noop")->line, 7);
    h = (struct zn_handler){.kind = ZN_HANDLER_WEBHOOK, .run = zn_webhook_run};
    h.name = strdup("hook");
    h.url = strdup("http://127.0.0.1:1/");
    assert_int_equal(zn_handler_add_take(&r, &h, NULL), 0);
    assert_int_equal(r.n, n + 1);
    assert_string_equal(zn_handler_find(&r, "hook")->url,
                        "http://127.0.0.1:1/");
    zn_handler_registry_release(&r);
    assert_int_equal(r.n, 0);
}

static void
test_worker_handler_builtins(void **state)
{
    struct zn_handler_result res;
    int64_t t0;

    (void)state;
    run_builtin("noop", "[]", -1, &res);
    assert_true(res.ok);
    run_builtin("fail", "[\"it broke\"]", -1, &res);
    assert_false(res.ok);
    assert_string_equal(res.errtype, "fail");
    assert_string_equal(res.message, "it broke");
    run_builtin("fail", "[]", -1, &res);
    assert_string_equal(res.message, "failed on purpose");
    t0 = zn_clock_mono_ms();
    run_builtin("sleep", "[0.2]", -1, &res);
    assert_true(res.ok);
    assert_true(zn_clock_mono_ms() - t0 >= 200);
    run_builtin("sleep", "[\"x\"]", -1, &res);
    assert_string_equal(res.errtype, "bad args");
    run_builtin("sleep", "[-1]", -1, &res);
    assert_string_equal(res.errtype, "bad args");
    run_builtin("grow", "[4]", -1, &res);
    assert_true(res.ok);
    assert_true(res.rss_kb >= 4096);
    assert_true(res.cpu_ms >= 0);
    run_builtin("grow", "[0]", -1, &res);
    assert_string_equal(res.errtype, "bad args");
}

static void
test_worker_handler_unknown_jobtype(void **state)
{
    struct zn_handler_registry r;
    struct zn_handler_result res;
    struct job_fx f;

    (void)state;
    run_builtin("resize-image", "[]", -1, &res);
    assert_false(res.ok);
    assert_string_equal(res.errtype, "unknown jobtype");
    assert_string_equal(res.message, "no handler for jobtype 'resize-image'");
    /* Not UTF-8: the message must still be valid JSON text. */
    assert_int_equal(zn_handler_registry_init(&r, NULL), 0);
    job_init(&f, "x", "[]", 30);
    f.run.jobtype = "bad\xff\xfe";
    zn_handler_run(&r, &f.run, &res);
    job_release(&f);
    zn_handler_registry_release(&r);
    assert_string_equal(res.message, "no handler for jobtype 'bad?" "?'");
}

static void
test_worker_handler_sleep_cancelled(void **state)
{
    struct zn_handler_result res;
    int fds[2];
    int64_t t0;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    t0 = zn_clock_mono_ms();
    run_builtin("sleep", "[30]", fds[0], &res);
    assert_true(zn_clock_mono_ms() - t0 < zn_test_ms(2000));
    assert_string_equal(res.errtype, "terminated");
    close(fds[0]);
    close(fds[1]);
}

/* ---- splitting commands ------------------------------------------------ */

static void
assert_split(const char *cmd, const char *const *want, size_t n)
{
    char **argv = NULL;
    struct zn_err err;
    size_t i;

    if (zn_exec_split(cmd, &argv, &err) != 0)
        fail_msg("split '%s': %s", cmd, err.msg);
    for (i = 0; argv[i]; i++) {
        assert_true(i < n);
        assert_string_equal(argv[i], want[i]);
    }
    assert_int_equal(i, n);
    zn_exec_argv_free(argv);
}

static void
test_worker_handler_split(void **state)
{
    const char *a[] = {"/usr/local/bin/resize", "--fast"};
    const char *b[] = {"/bin/sh", "-c", "echo \"hi\" >&2; exit 3"};
    const char *c[] = {"x", "", "y"};
    const char *d[] = {"ab cd", "e\\f"};

    (void)state;
    assert_split("/usr/local/bin/resize --fast", a, 2);
    assert_split("  /usr/local/bin/resize \t --fast  ", a, 2);
    assert_split("/bin/sh -c \"echo \\\"hi\\\" >&2; exit 3\"", b, 3);
    assert_split("x \"\" y", c, 3);
    assert_split("a\"b c\"d e\\f", d, 2);
}

static void
test_worker_handler_split_errors(void **state)
{
    char *big = malloc(ZN_EXEC_COMMAND_MAX + 2), many[512] = "";
    char **argv = (char **)1;
    struct zn_err err;

    (void)state;
    assert_int_equal(zn_exec_split("", &argv, &err), ZN_EINVAL);
    assert_null(argv);
    assert_string_equal(err.msg, "command is empty");
    assert_int_equal(zn_exec_split("   \t ", &argv, &err), ZN_EINVAL);
    assert_int_equal(zn_exec_split("/bin/echo \"open", &argv, &err),
                     ZN_EINVAL);
    assert_string_equal(err.msg, "command has an unterminated double quote");
    for (int i = 0; i <= ZN_EXEC_ARGS_MAX; i++)
        memcpy(many + 2 * i, "a ", 3);
    assert_int_equal(zn_exec_split(many, &argv, &err), ZN_ETOOBIG);
    assert_non_null(strstr(err.msg, "more than 64 words"));
    memset(big, 'x', ZN_EXEC_COMMAND_MAX + 1);
    big[ZN_EXEC_COMMAND_MAX + 1] = '\0';
    assert_int_equal(zn_exec_split(big, &argv, &err), ZN_ETOOBIG);
    big[ZN_EXEC_COMMAND_MAX] = '\0';
    assert_int_equal(zn_exec_split(big, &argv, &err), 0);
    zn_exec_argv_free(argv);
    free(big);
}

/* ---- exec -------------------------------------------------------------- */

/* Runs argv (NULL-terminated) as an exec handler with timeout_s. */
static void
run_exec(const char *const *argv, int timeout_s, int cancel_fd,
         struct zn_handler_result *res, pid_t *pgid)
{
    struct zn_handler_registry r;
    struct zn_handler h = {.kind = ZN_HANDLER_EXEC, .run = zn_exec_run};
    struct job_fx f;
    size_t n = 0;

    while (argv[n])
        n++;
    h.name = strdup("cmd");
    h.argv = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        h.argv[i] = strdup(argv[i]);
    assert_int_equal(zn_handler_registry_init(&r, NULL), 0);
    assert_int_equal(zn_handler_add_take(&r, &h, NULL), 0);
    job_init(&f, "cmd", "[1]", timeout_s);
    f.run.cancel_fd = cancel_fd;
    zn_handler_run(&r, &f.run, res);
    if (pgid)
        *pgid = f.pgid;
    job_release(&f);
    zn_handler_registry_release(&r);
}

/*
 * An exec command's CPU time is its own, measured: a shell counting to
 * 200,000 spends tens of milliseconds or more, and no more CPU than the
 * time it ran (one thread).
 */
static void
test_worker_handler_exec_cpu_time(void **state)
{
    const char *burn[] = {"/bin/sh", "-c",
                          "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); "
                          "done", NULL};
    struct zn_handler_result res;
    int64_t t0, wall;

    (void)state;
    t0 = zn_clock_mono_ms();
    run_exec(burn, 60, -1, &res, NULL);
    wall = zn_clock_mono_ms() - t0;
    assert_true(res.ok);
    if (res.cpu_ms < 10 || res.cpu_ms > wall + 10)
        fail_msg("cpu_ms %lld for a run of %lld ms", (long long)res.cpu_ms,
                 (long long)wall);
}

static void
test_worker_handler_exec_status(void **state)
{
    const char *t[] = {"/bin/true", NULL};
    const char *f[] = {"/bin/false", NULL};
    const char *sh[] = {"/bin/sh", "-c", "echo oops >&2; exit 3", NULL};
    const char *sig[] = {"/bin/sh", "-c", "echo dying >&2; kill -SEGV $$",
                         NULL};
    const char *none[] = {"/nonexistent/prog", "--x", NULL};
    /* SIGPIPE is blocked in the worker while it starts the command. */
    const char *pipe_sig[] = {"/bin/sh", "-c", "kill -PIPE $$; exit 0",
                              NULL};
    struct zn_handler_result res;
    pid_t pgid = 0;

    (void)state;
    run_exec(t, 10, -1, &res, &pgid);
    assert_true(res.ok);
    assert_true(pgid > 0);
    assert_true(res.cpu_ms >= 0);
    assert_true(res.rss_kb > 0);
    run_exec(f, 10, -1, &res, NULL);
    assert_false(res.ok);
    assert_string_equal(res.errtype, "exit 1");
    assert_string_equal(res.message, "exited with status 1");
    run_exec(sh, 10, -1, &res, NULL);
    assert_string_equal(res.errtype, "exit 3");
    assert_string_equal(res.message, "oops");
    assert_string_equal(res.trace, "oops");
    run_exec(sig, 10, -1, &res, NULL);
    assert_string_equal(res.errtype, "SIGSEGV");
    assert_string_equal(res.message, "dying");
    run_exec(pipe_sig, 10, -1, &res, NULL);
    assert_string_equal(res.errtype, "SIGPIPE");
    run_exec(none, 10, -1, &res, NULL);
    assert_string_equal(res.errtype, "exit 127");
    assert_string_equal(res.message, "cannot execute '/nonexistent/prog': "
                        "No such file or directory");
}

static void
test_worker_handler_exec_env_and_stdin(void **state)
{
    const char *env[] = {"/bin/sh", "-c",
                         "test \"$ZENITH_JID\" = j1 && "
                         "test \"$ZENITH_ATTEMPT\" = 2 && "
                         "test \"$ZENITH_QUEUE\" = mail && "
                         "test \"$KEEP_ME\" = yes", NULL};
    const char *in[] = {"/bin/sh", "-c", "grep -q '\"jobtype\":\"cmd\"'",
                        NULL};
    const char *ignore_in[] = {"/bin/sh", "-c", "exec 0<&-; exit 0", NULL};
    struct zn_handler_result res;

    (void)state;
    setenv("KEEP_ME", "yes", 1);
    setenv("ZENITH_JID", "stale", 1);
    run_exec(env, 10, -1, &res, NULL);
    assert_true(res.ok);
    unsetenv("KEEP_ME");
    unsetenv("ZENITH_JID");
    run_exec(in, 10, -1, &res, NULL);
    assert_true(res.ok);
    /* A command that closes its stdin unread: no SIGPIPE for us. */
    run_exec(ignore_in, 10, -1, &res, NULL);
    assert_true(res.ok);
}

static void
test_worker_handler_exec_stderr_tail(void **state)
{
    const char *many[] = {"/bin/sh", "-c",
                          "i=1; while [ $i -le 400 ]; do "
                          "echo \"line $i of the error output\" >&2; "
                          "i=$((i+1)); done; exit 2", NULL};
    struct zn_handler_result res;
    const char *p;
    int lines = 0;

    (void)state;
    run_exec(many, 10, -1, &res, NULL);
    assert_string_equal(res.errtype, "exit 2");
    /* The message: the last 10 lines; the trace: whole lines of 4 KiB. */
    assert_true(strncmp(res.message, "line 391 of", 11) == 0);
    assert_non_null(strstr(res.message, "line 400 of the error output"));
    for (p = res.message; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 9);
    assert_true(strlen(res.trace) <= ZN_EXEC_STDERR_KEEP);
    assert_true(strncmp(res.trace, "line ", 5) == 0);
    assert_non_null(strstr(res.trace, "line 300 of"));
}

static void
test_worker_handler_exec_timeout_kills_group(void **state)
{
    const char *stubborn[] = {"/bin/sh", "-c", "trap \"\" TERM; sleep 30",
                              NULL};
    struct zn_handler_result res;
    pid_t pgid = 0;
    int64_t t0 = zn_clock_mono_ms(), took;

    (void)state;
    run_exec(stubborn, 1, -1, &res, &pgid);
    took = zn_clock_mono_ms() - t0;
    assert_true(took >= 1000 + ZN_EXEC_KILL_GRACE_MS - 50);
    if (took > zn_test_ms(3500))
        fail_msg("took %lld ms", (long long)took);
    assert_false(res.ok);
    assert_string_equal(res.errtype, "timeout");
    assert_string_equal(res.message, "job ran past its timeout of 1 s");
    /* Nothing of the group is left, not even a zombie. */
    assert_true(pgid > 0);
    assert_int_equal(kill(-pgid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

static void
test_worker_handler_exec_cancelled(void **state)
{
    const char *slow[] = {"/bin/sh", "-c", "sleep 30", NULL};
    struct zn_handler_result res;
    int fds[2];
    pid_t pgid = 0;
    int64_t t0 = zn_clock_mono_ms();

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    run_exec(slow, 30, fds[0], &res, &pgid);
    assert_true(zn_clock_mono_ms() - t0 < zn_test_ms(2000));
    assert_string_equal(res.errtype, "terminated");
    assert_int_equal(kill(-pgid, 0), -1);
    close(fds[0]);
    close(fds[1]);
}

static void
test_worker_handler_exec_leftovers_killed(void **state)
{
    /* The command exits at once but leaves a sleeper in its group. */
    const char *bg[] = {"/bin/sh", "-c", "sleep 30 & exit 0", NULL};
    struct zn_handler_result res;
    pid_t pgid = 0;
    int64_t t0 = zn_clock_mono_ms();

    (void)state;
    run_exec(bg, 30, -1, &res, &pgid);
    assert_true(res.ok);
    assert_true(zn_clock_mono_ms() - t0 < zn_test_ms(2000));
    assert_int_equal(kill(-pgid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* ---- webhook ------------------------------------------------------------ */

static void
run_webhook(int port, int timeout_s, struct zn_handler_result *res)
{
    struct zn_handler_registry r;
    struct zn_handler h = {.kind = ZN_HANDLER_WEBHOOK, .run = zn_webhook_run};
    struct job_fx f;
    char url[64];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/zenith", port);
    h.name = strdup("hook");
    h.url = strdup(url);
    assert_int_equal(zn_handler_registry_init(&r, NULL), 0);
    assert_int_equal(zn_handler_add_take(&r, &h, NULL), 0);
    job_init(&f, "hook", "[\"payload\"]", timeout_s);
    zn_handler_run(&r, &f.run, res);
    job_release(&f);
    zn_handler_registry_release(&r);
}

static void
test_worker_handler_webhook_ok(void **state)
{
    struct zn_handler_result res;
    struct zn_test_httpd d;

    (void)state;
    zn_test_httpd_start(&d, 204, "");
    run_webhook(d.port, 10, &res);
    zn_test_httpd_join(&d);
    assert_true(res.ok);
    assert_true(strncmp(d.request, "POST /hooks/zenith HTTP/1.1\r\n", 29) == 0);
    assert_non_null(strstr(d.request, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(d.request, "X-Zenith-Jid: j1\r\n"));
    assert_non_null(strstr(d.request, "\"args\":[\"payload\"]"));
}

static void
test_worker_handler_webhook_error_status(void **state)
{
    struct zn_handler_result res;
    char body[2048];
    struct zn_test_httpd d;

    (void)state;
    memset(body, 'b', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    memcpy(body, "down for maintenance", 20);
    zn_test_httpd_start(&d, 503, body);
    run_webhook(d.port, 10, &res);
    zn_test_httpd_join(&d);
    assert_false(res.ok);
    assert_string_equal(res.errtype, "http 503");
    assert_true(strncmp(res.message, "HTTP 503: down for maintenance", 30)
                == 0);
    /* Status, ": ", then the first 512 bytes of the body. */
    assert_int_equal(strlen(res.message), strlen("HTTP 503: ") +
                     ZN_WEBHOOK_BODY_EXCERPT);
}

static void
test_worker_handler_webhook_refused(void **state)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);
    struct zn_handler_result res;
    int fd;

    (void)state;
    /* Bound but not listening: connections to it are refused. */
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    run_webhook(ntohs(sin.sin_port), 10, &res);
    close(fd);
    assert_false(res.ok);
    assert_string_equal(res.errtype, "webhook error");
    assert_non_null(strstr(res.message, "onnect"));
}

static void
test_worker_handler_webhook_timeout(void **state)
{
    struct zn_handler_result res;
    struct zn_test_httpd d;
    int64_t t0 = zn_clock_mono_ms();

    (void)state;
    zn_test_httpd_start(&d, 0, "");
    run_webhook(d.port, 1, &res);
    zn_test_httpd_join(&d);
    assert_true(zn_clock_mono_ms() - t0 < zn_test_ms(3000));
    assert_string_equal(res.errtype, "timeout");
    assert_string_equal(res.message, "job ran past its timeout of 1 s");
}

static void
test_worker_handler_webhook_url_valid(void **state)
{
    (void)state;
    assert_true(zn_webhook_url_valid("http://127.0.0.1:8080/x"));
    assert_true(zn_webhook_url_valid("https://crm.example/hooks?t=1"));
    assert_false(zn_webhook_url_valid("ftp://example.com/"));
    assert_false(zn_webhook_url_valid("file:///etc/passwd"));
    assert_false(zn_webhook_url_valid("not a url"));
    assert_false(zn_webhook_url_valid(""));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_handler_registry),
        cmocka_unit_test(test_worker_handler_builtins),
        cmocka_unit_test(test_worker_handler_unknown_jobtype),
        cmocka_unit_test(test_worker_handler_sleep_cancelled),
        cmocka_unit_test(test_worker_handler_split),
        cmocka_unit_test(test_worker_handler_split_errors),
        cmocka_unit_test(test_worker_handler_exec_status),
        cmocka_unit_test(test_worker_handler_exec_cpu_time),
        cmocka_unit_test(test_worker_handler_exec_env_and_stdin),
        cmocka_unit_test(test_worker_handler_exec_stderr_tail),
        cmocka_unit_test(test_worker_handler_exec_timeout_kills_group),
        cmocka_unit_test(test_worker_handler_exec_cancelled),
        cmocka_unit_test(test_worker_handler_exec_leftovers_killed),
        cmocka_unit_test(test_worker_handler_webhook_ok),
        cmocka_unit_test(test_worker_handler_webhook_error_status),
        cmocka_unit_test(test_worker_handler_webhook_refused),
        cmocka_unit_test(test_worker_handler_webhook_timeout),
        cmocka_unit_test(test_worker_handler_webhook_url_valid),
    };
    int failed;

    /* Orphans of the commands are ours to reap, as in the worker. */
    zn_exec_become_subreaper();
    assert_int_equal(zn_webhook_global_init(NULL), 0);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    zn_webhook_global_cleanup();
    return failed;
}
