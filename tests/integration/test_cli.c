/*
 * test_cli.c - every zenith command and option, run as the real binary
 * against a real server. What a command did is read back over FWP (JOBS,
 * FETCH) from the server, never taken from the command's own output. The
 * server's start-up configuration is here too: the INI file, ZENITH_*
 * variables and flags, their precedence and their errors.
 *
 * Every run gets a clean client environment (no ZENITH_SERVER or
 * ZENITH_PASSWORD from the caller) unless a test sets one on purpose.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "harness.h"
#include "store/sqlite.h"

#define PASSWORD "s3cret-pw"

struct fx {
    struct zn_srv srv;
    const char *password;    /* the server's; run_full() passes it on */
    struct zn_fwp_client *p; /* producer */
    struct zn_fwp_client *w; /* consumer "w1" */
    char *out, *err;         /* of the last run */
    int dead_fd;             /* a bound port nobody listens on, or -1 */
    char dead_addr[64];
};

/* The caller's client settings must not leak into a test. */
static const char *const clean_env[] = {"ZENITH_SERVER", "ZENITH_PASSWORD",
                                        NULL};

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- fixtures -------------------------------------------------------- */

static int
setup_with(void **state, bool server, const char *password)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *extra[] = {"--password", password, NULL};

    assert_non_null(f);
    f->dead_fd = -1;
    f->password = password;
    if (server) {
        zn_srv_start(&f->srv, password ? extra : NULL);
        f->p = zn_srv_connect(&f->srv, NULL, password);
        f->w = zn_srv_connect(&f->srv, "w1", password);
    } else {
        zn_srv_init_dir(&f->srv);
    }
    *state = f;
    return 0;
}

static int setup_srv(void **state) { return setup_with(state, true, NULL); }
static int setup_pw(void **state) { return setup_with(state, true, PASSWORD); }
static int setup_dir(void **state) { return setup_with(state, false, NULL); }

static int
teardown(void **state)
{
    struct fx *f = *state;
    int rc = 0;

    zn_fwp_client_free(f->p);
    zn_fwp_client_free(f->w);
    if (f->srv.pid > 0)
        rc = zn_srv_stop(&f->srv);
    zn_srv_cleanup(&f->srv);
    if (f->dead_fd >= 0)
        close(f->dead_fd);
    free(f->out);
    free(f->err);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* ---- running the binary ---------------------------------------------- */

/*
 * Runs zenith with args, plus --server (and --password) of the fixture's
 * server when conn is set, in env (NULL: clean_env). Fails the test,
 * showing the command and both outputs, unless it exits with want.
 */
static void
run_full(struct fx *f, int want, const char *const *env, bool conn,
         const char *const *args)
{
    const char *argv[48];
    char line[1024];
    size_t used = 0;
    int n = 0, rc;

    for (; n < 40 && args[n]; n++) {
        argv[n] = args[n];
        used += (size_t)snprintf(line + used, sizeof(line) - used, " %s",
                                 args[n]);
        if (used >= sizeof(line))
            used = sizeof(line) - 1;
    }
    if (conn) {
        argv[n++] = "--server";
        argv[n++] = f->srv.addr;
        if (f->password) {
            argv[n++] = "--password";
            argv[n++] = f->password;
        }
    }
    argv[n] = NULL;
    free(f->out);
    free(f->err);
    f->out = f->err = NULL;
    rc = zn_run_cli_env(env ? env : clean_env, argv, &f->out, &f->err);
    if (rc != want) {
        fprintf(stderr, "---- stdout ----\n%s---- stderr ----\n%s----\n",
                f->out, f->err);
        fail_msg("zenith%s: exit status %d, want %d", line, rc, want);
    }
}

#define RUN(f, want, ...) run_full(f, want, NULL, true, ARGS(__VA_ARGS__))
#define RUN_ENV(f, want, env, ...)                                          \
    run_full(f, want, env, false, ARGS(__VA_ARGS__))
#define RUN_BARE(f, want, ...) run_full(f, want, NULL, false, ARGS(__VA_ARGS__))

static void
expect_in(const char *hay, const char *needle)
{
    if (!strstr(hay ? hay : "", needle))
        fail_msg("'%s' not found in:\n%s", needle, hay ? hay : "(nil)");
}

static void
expect_not_in(const char *hay, const char *needle)
{
    if (strstr(hay ? hay : "", needle))
        fail_msg("'%s' unexpectedly found in:\n%s", needle, hay);
}

static void
expect_prefix(const char *s, const char *prefix)
{
    if (strncmp(s ? s : "", prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", s ? s : "(nil)", prefix);
}

/* The jid push printed (static buffer): one line of 26 characters. */
static const char *
pushed_jid(const struct fx *f)
{
    static char jid[80];
    size_t len = strcspn(f->out, "\n");

    if (len != 26 || strcmp(f->out + len, "\n") != 0)
        fail_msg("push printed '%s', not one jid", f->out);
    snprintf(jid, sizeof(jid), "%.*s", (int)len, f->out);
    return jid;
}

/* Fills fields[] from the line of out whose first field is name. */
static int
row(const char *out, const char *name, char fields[][64], int max)
{
    const char *line = out;

    while (line && *line) {
        const char *end = line + strcspn(line, "\n"), *p = line;
        int n = 0;

        while (p < end && n < max) {
            size_t len;

            p += strspn(p, " ");
            len = strcspn(p, " \n");
            if (len == 0)
                break;
            snprintf(fields[n++], 64, "%.*s", (int)len, p);
            p += len;
        }
        if (n > 0 && strcmp(fields[0], name) == 0)
            return n;
        line = *end ? end + 1 : NULL;
    }
    fail_msg("no line for '%s' in:\n%s", name, out);
    return 0;
}

static bool
has_row(const char *out, const char *name)
{
    size_t len = strlen(name);

    for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l)
        if (!strncmp(l, name, len) && (l[len] == ' ' || l[len] == '\n'))
            return true;
    return false;
}

/* ---- talking to the server directly ---------------------------------- */

static json_t *
parse_out(const struct fx *f)
{
    json_t *j = json_loads(f->out, 0, NULL);

    if (!j)
        fail_msg("stdout is not JSON: %s", f->out);
    return j;
}

static const char *
jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "(none)";
}

static long long
jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return (long long)json_integer_value(v);
}

/* The state of jid, or "gone" when the server has no such job. */
static void
expect_state(struct fx *f, const char *jid, const char *want)
{
    char arg[128], *reply = NULL;
    struct zn_err err;
    json_t *info;

    snprintf(arg, sizeof(arg), "{\"jid\":\"%s\"}", jid);
    if (zn_fwp_client_call(f->p, "JOBS", arg, &reply, &err) < 0) {
        if (strcmp(want, "gone") != 0)
            fail_msg("job '%s': %s (want %s)", jid, err.msg, want);
        expect_in(err.msg, "no job");
        return;
    }
    info = zn_srv_parse_take(reply);
    assert_string_equal(jstr(json_object_get(info, "job"), "state"), want);
    json_decref(info);
}

static void
fail_job(struct fx *f, const char *jid, const char *errtype, const char *msg)
{
    char arg[256];

    snprintf(arg, sizeof(arg), "{\"jid\":\"%s\",\"errtype\":\"%s\","
             "\"message\":\"%s\"}", jid, errtype, msg);
    free(zn_srv_call(f->w, "FAIL", arg));
}

/*
 * A dead job: pushed with retry (0 or -1), fetched by w1 and failed. The
 * queue must hold no other ready job.
 */
static void
make_dead(struct fx *f, const char *jid, const char *queue, int retry,
          const char *errtype, const char *msg)
{
    char job[256];

    snprintf(job, sizeof(job), "{\"jid\":\"%s\",\"jobtype\":\"mail\","
             "\"queue\":\"%s\",\"retry\":%d}", jid, queue, retry);
    zn_srv_push(f->p, job);
    assert_string_equal(zn_srv_fetch_jid(f->w, queue), jid);
    fail_job(f, jid, errtype, msg);
    expect_state(f, jid, "dead");
}

static void
pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/*
 * An address where nothing listens: a port bound but not listening
 * refuses connections for as long as the fixture keeps it.
 */
static const char *
dead_addr(struct fx *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->dead_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->dead_fd >= 0);
    assert_int_equal(bind(f->dead_fd, (struct sockaddr *)&sin, sizeof(sin)),
                     0);
    assert_int_equal(getsockname(f->dead_fd, (struct sockaddr *)&sin, &len),
                     0);
    snprintf(f->dead_addr, sizeof(f->dead_addr), "127.0.0.1:%d",
             ntohs(sin.sin_port));
    return f->dead_addr;
}

static bool
exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* ---- help and usage --------------------------------------------------- */

static void
test_cli_help_on_every_command(void **state)
{
    static const char *const cmds[] = {"serve", "push", "status", "failed",
                                       "queue", "migrate"};
    struct fx *f = *state;
    char want[64];

    for (size_t i = 0; i < ZN_ARRAY_LEN(cmds); i++) {
        RUN_BARE(f, 0, cmds[i], "--help");
        snprintf(want, sizeof(want), "usage: zenith %s", cmds[i]);
        expect_prefix(f->out, want);
        assert_string_equal(f->err, "");
        RUN_BARE(f, 0, cmds[i], "-h");
        expect_prefix(f->out, want);
    }
    RUN_BARE(f, 0, "--help");
    for (size_t i = 0; i < ZN_ARRAY_LEN(cmds); i++)
        expect_in(f->out, cmds[i]);
    RUN_BARE(f, 0, "help");
    expect_prefix(f->out, "usage: zenith COMMAND");
    /* --help wins wherever it is, and nothing runs. */
    RUN_BARE(f, 0, "push", "mail", "[1]", "--queue", "q", "--help");
    expect_prefix(f->out, "usage: zenith push");
    RUN_BARE(f, 0, "failed", "retry", "--all", "--help");
    expect_prefix(f->out, "usage: zenith failed");
    RUN_BARE(f, 0, "queue", "pause", "mail", "--help");
    expect_prefix(f->out, "usage: zenith queue");
    RUN_BARE(f, 0, "serve", "--data", f->srv.dir, "--fwp", "127.0.0.1:0",
             "--help");
    /* serve --help lists the options of the table. */
    expect_in(f->out, "--config FILE");
    expect_in(f->out, "--no-workers");
    expect_in(f->out, "--password");
    expect_in(f->out, "--timeout");
    expect_in(f->out, "ZENITH_");
    expect_not_in(f->err, "server.listening");
}

static void
test_cli_unknown_command_and_bare_usage(void **state)
{
    struct fx *f = *state;

    RUN_BARE(f, 2, "bogus");
    expect_prefix(f->err, "zenith: unknown command 'bogus'");
    expect_in(f->err, "usage: zenith COMMAND");
    assert_string_equal(f->out, "");
    run_full(f, 2, NULL, false, (const char *const[]){NULL});
    expect_prefix(f->err, "usage: zenith COMMAND");
    /* Usage errors come before any connection: no server is needed. */
    RUN_BARE(f, 2, "status", "extra");
    expect_in(f->err, "status takes no arguments");
    RUN_BARE(f, 2, "push");
    expect_prefix(f->err, "usage: zenith push");
    RUN_BARE(f, 2, "queue");
    expect_in(f->err, "usage: zenith queue");
    RUN_BARE(f, 2, "failed");
    expect_prefix(f->err, "usage: zenith failed");
    RUN_BARE(f, 2, "status", "--server");
    expect_in(f->err, "--server: missing value");
}

/* ---- push ------------------------------------------------------------- */

static void
test_cli_push_defaults(void **state)
{
    struct fx *f = *state;
    json_t *info, *job;
    char jid[80];

    RUN(f, 0, "push", "mail");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    info = zn_srv_job(f->p, jid);
    job = json_object_get(info, "job");
    assert_string_equal(jstr(job, "jobtype"), "mail");
    assert_string_equal(jstr(job, "queue"), "default");
    assert_int_equal(json_array_size(json_object_get(job, "args")), 0);
    assert_int_equal(jint(job, "priority"), 5);
    assert_int_equal(jint(job, "retry"), 2);          /* config default */
    assert_int_equal(jint(job, "reserve_for"), 300);  /* config default */
    assert_null(json_object_get(job, "at"));
    assert_null(json_object_get(job, "tags"));
    assert_null(json_object_get(job, "backoff"));
    assert_string_equal(jstr(job, "state"), "enqueued");
    json_decref(info);
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), jid);
}

static void
test_cli_push_every_flag(void **state)
{
    struct fx *f = *state;
    json_t *info, *job, *want;
    int64_t t0, t1, at;
    char jid[80];

    t0 = zn_clock_wall_ms();
    RUN(f, 0, "push", "mail", "[1,\"two\",{\"k\":3}]", "--queue", "mailers",
        "--priority", "8", "--retry", "4", "--backoff", "5,10,20", "--tag",
        "alpha", "--tag", "beta", "--in", "3600");
    t1 = zn_clock_wall_ms();
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    info = zn_srv_job(f->p, jid);
    job = json_object_get(info, "job");
    want = json_loads("[1,\"two\",{\"k\":3}]", 0, NULL);
    assert_true(json_equal(json_object_get(job, "args"), want));
    json_decref(want);
    assert_string_equal(jstr(job, "queue"), "mailers");
    assert_int_equal(jint(job, "priority"), 8);
    assert_int_equal(jint(job, "retry"), 4);
    want = json_loads("[5,10,20]", 0, NULL);
    assert_true(json_equal(json_object_get(job, "backoff"), want));
    json_decref(want);
    want = json_loads("[\"alpha\",\"beta\"]", 0, NULL);
    assert_true(json_equal(json_object_get(job, "tags"), want));
    json_decref(want);
    /* --in: an hour after the moment of the push. */
    assert_int_equal(zn_clock_parse(jstr(job, "at"), &at), 0);
    if (at < t0 + 3600000 || at > t1 + 3600000)
        fail_msg("at %s is not an hour after the push", jstr(job, "at"));
    assert_string_equal(jstr(job, "state"), "scheduled");
    json_decref(info);
}

static void
test_cli_push_at_time(void **state)
{
    struct fx *f = *state;
    json_t *info, *job;
    char jid[80];

    /* Flags may come before the job type; offsets become UTC. */
    RUN(f, 0, "push", "--at", "2099-01-02T05:04:05+02:00", "--queue",
        "later", "report");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    info = zn_srv_job(f->p, jid);
    job = json_object_get(info, "job");
    assert_string_equal(jstr(job, "at"), "2099-01-02T03:04:05.000Z");
    assert_string_equal(jstr(job, "state"), "scheduled");
    assert_string_equal(jstr(job, "jobtype"), "report");
    json_decref(info);
    /* A time in the past: ready at once. */
    RUN(f, 0, "push", "report", "--queue", "later", "--at",
        "2000-01-01T00:00:00Z");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    expect_state(f, jid, "enqueued");
    assert_string_equal(zn_srv_fetch_jid(f->w, "later"), jid);
}

static void
test_cli_push_flags_take_effect(void **state)
{
    struct fx *f = *state;
    char low[80], high[80], jid[80];
    json_t *info, *fl;
    int64_t failed_at, next_at;

    /* --priority: the higher one is handed out first. */
    RUN(f, 0, "push", "mail", "--queue", "prio", "--priority", "1");
    snprintf(low, sizeof(low), "%s", pushed_jid(f));
    RUN(f, 0, "push", "mail", "--queue", "prio", "--priority", "9");
    snprintf(high, sizeof(high), "%s", pushed_jid(f));
    assert_string_equal(zn_srv_fetch_jid(f->w, "prio"), high);
    assert_string_equal(zn_srv_fetch_jid(f->w, "prio"), low);
    /* --retry 0 and --retry -1: dead after the first failure. */
    RUN(f, 0, "push", "mail", "--queue", "r", "--retry", "0");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    assert_string_equal(zn_srv_fetch_jid(f->w, "r"), jid);
    fail_job(f, jid, "Boom", "no");
    expect_state(f, jid, "dead");
    RUN(f, 0, "push", "mail", "--queue", "r", "--retry", "-1");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    assert_string_equal(zn_srv_fetch_jid(f->w, "r"), jid);
    fail_job(f, jid, "Boom", "no");
    expect_state(f, jid, "dead");
    /* --retry 1 --backoff 600: a retry ten minutes after the failure. */
    RUN(f, 0, "push", "mail", "--queue", "r", "--retry", "1", "--backoff",
        "600");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    assert_string_equal(zn_srv_fetch_jid(f->w, "r"), jid);
    fail_job(f, jid, "Boom", "once");
    info = zn_srv_job(f->p, jid);
    assert_string_equal(jstr(json_object_get(info, "job"), "state"), "retry");
    fl = json_object_get(json_object_get(info, "job"), "failure");
    assert_int_equal(zn_clock_parse(jstr(fl, "failed_at"), &failed_at), 0);
    assert_int_equal(zn_clock_parse(jstr(fl, "next_at"), &next_at), 0);
    assert_in_range(next_at - failed_at, 599000, 601000);
    json_decref(info);
}

static void
test_cli_push_bad_input_exit_2(void **state)
{
    static const struct {
        const char *args[8];
        const char *want;
    } cases[] = {
        {{"push", "mail", "{bad"}, "ARGS-JSON must be a JSON array"},
        {{"push", "mail", "[1,"}, "ARGS-JSON must be a JSON array"},
        {{"push", "mail", "{\"a\":1}"}, "ARGS-JSON must be a JSON array"},
        {{"push", "mail", "--priority", "0"}, "--priority: '0'"},
        {{"push", "mail", "--priority", "10"}, "--priority: '10'"},
        {{"push", "mail", "--priority", "high"}, "--priority: 'high'"},
        {{"push", "mail", "--retry", "-2"}, "--retry: '-2'"},
        {{"push", "mail", "--retry", "1001"}, "--retry: '1001'"},
        {{"push", "mail", "--backoff", "soon"}, "backoff: 'soon'"},
        {{"push", "mail", "--in", "-5"}, "--in: '-5'"},
        {{"push", "mail", "--in", "5m"}, "--in: '5m'"},
        {{"push", "mail", "--at", "tomorrow"}, "--at: 'tomorrow'"},
        {{"push", "mail", "--at", "2030-01-01T00:00:00Z", "--in", "5"},
         "--at or --in"},
        {{"push", "mail", "--in", "5", "--in", "6"}, "--at or --in"},
        {{"push", "mail", "--queue", "a b"}, "--queue: 'a b'"},
        {{"push", "mail", "--frob", "1"}, "unknown option '--frob'"},
        {{"push", "mail", "--queue"}, "--queue: missing value"},
        {{"push", "mail", "[]", "extra"}, "unexpected argument 'extra'"},
        {{"push", "--priority", "5"}, "usage: zenith push"},
    };
    struct fx *f = *state;

    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        run_full(f, 2, NULL, true, cases[i].args);
        expect_in(f->err, cases[i].want);
        expect_prefix(f->err, strstr(f->err, "usage:") == f->err ? "usage:"
                                                                 : "zenith: ");
        assert_string_equal(f->out, "");
    }
    /* Nothing reached the server. */
    RUN(f, 0, "status", "--json");
    assert_string_equal(f->out, "[]\n");
}

static void
test_cli_push_refused_by_server_exit_1(void **state)
{
    struct fx *f = *state;
    char args[200];

    zn_srv_start(&f->srv, ARGS("--max-payload", "64"));
    memset(args, 'x', sizeof(args));
    memcpy(args, "[\"", 2);
    memcpy(args + sizeof(args) - 3, "\"]", 3);
    RUN(f, 1, "push", "mail", args);
    /* The server's reason, without the protocol's "ERR". */
    expect_prefix(f->err, "zenith: job: payload of ");
    expect_in(f->err, "over the limit of 64 bytes");
    assert_string_equal(f->out, "");
}

static void
test_cli_client_commands_server_down_exit_1(void **state)
{
    struct fx *f = *state;
    const char *addr = dead_addr(f);
    char env[100];

    RUN_BARE(f, 1, "push", "mail", "--server", addr);
    expect_prefix(f->err, "zenith: cannot connect to '");
    expect_in(f->err, addr);
    assert_string_equal(f->out, "");
    RUN_BARE(f, 1, "status", "--server", addr);
    expect_in(f->err, "cannot connect");
    RUN_BARE(f, 1, "failed", "list", "--server", addr);
    expect_in(f->err, "cannot connect");
    RUN_BARE(f, 1, "queue", "pause", "mail", "--server", addr);
    expect_in(f->err, "cannot connect");
    snprintf(env, sizeof(env), "ZENITH_SERVER=%s", addr);
    RUN_ENV(f, 1, ARGS(env, "ZENITH_PASSWORD"), "push", "mail");
    expect_in(f->err, addr);
}

/* ---- status ------------------------------------------------------------ */

static json_t *
queue_entry(json_t *queues, const char *name)
{
    size_t i;
    json_t *q;

    json_array_foreach(queues, i, q)
        if (!strcmp(jstr(q, "name"), name))
            return q;
    fail_msg("no queue '%s' in the status", name);
    return NULL;
}

static void
test_cli_status_table_and_json(void **state)
{
    static const char *const header[] = {"QUEUE", "ENQUEUED", "SCHEDULED",
                                         "WORKING", "RETRY", "DEAD",
                                         "PAUSED", "OLDEST(s)"};
    struct fx *f = *state;
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    char fields[10][64];
    json_t *all, *a, *b;

    /* Queue b: one job in retry, one dead, one scheduled; paused. */
    zn_srv_push(f->p, "{\"jid\":\"b-retry\",\"jobtype\":\"x\",\"queue\":\"b\","
                      "\"retry\":3,\"backoff\":[600]}");
    assert_string_equal(zn_srv_fetch_jid(f->w, "b"), "b-retry");
    fail_job(f, "b-retry", "Boom", "later");
    make_dead(f, "b-dead", "b", 0, "Boom", "dead");
    RUN(f, 0, "push", "x", "--queue", "b", "--in", "3600");
    RUN(f, 0, "queue", "pause", "b");
    /* Queue a: three pushed, one of them working. */
    zn_srv_push(f->p, "{\"jid\":\"a1\",\"jobtype\":\"x\",\"queue\":\"a\"}");
    zn_srv_push(f->p, "{\"jid\":\"a2\",\"jobtype\":\"x\",\"queue\":\"a\"}");
    zn_srv_push(f->p, "{\"jid\":\"a3\",\"jobtype\":\"x\",\"queue\":\"a\"}");
    assert_string_equal(zn_srv_fetch_jid(f->w, "a"), "a1");
    /* The oldest waiting job of a ages: poll until it is a second old. */
    for (;;) {
        RUN(f, 0, "status", "--json");
        all = parse_out(f);
        a = queue_entry(all, "a");
        if (jint(a, "oldest_age_s") >= 1)
            break;
        json_decref(all);
        if (zn_clock_mono_ms() > deadline)
            fail_msg("oldest-job age of queue a stayed 0");
        pause_ms(50);
    }
    assert_int_equal(json_array_size(all), 2);
    assert_int_equal(jint(a, "enqueued"), 2);
    assert_int_equal(jint(a, "scheduled"), 0);
    assert_int_equal(jint(a, "working"), 1);
    assert_int_equal(jint(a, "retry"), 0);
    assert_int_equal(jint(a, "dead"), 0);
    assert_false(json_is_true(json_object_get(a, "paused")));
    b = queue_entry(all, "b");
    assert_int_equal(jint(b, "enqueued"), 0);
    assert_int_equal(jint(b, "scheduled"), 1);
    assert_int_equal(jint(b, "working"), 0);
    assert_int_equal(jint(b, "retry"), 1);
    assert_int_equal(jint(b, "dead"), 1);
    assert_true(json_is_true(json_object_get(b, "paused")));
    assert_int_equal(jint(b, "oldest_age_s"), 0);
    json_decref(all);
    /* The table says the same. */
    RUN(f, 0, "status");
    assert_int_equal(row(f->out, "QUEUE", fields, 10), 8);
    for (size_t i = 0; i < ZN_ARRAY_LEN(header); i++)
        assert_string_equal(fields[i], header[i]);
    assert_int_equal(row(f->out, "a", fields, 10), 8);
    assert_string_equal(fields[1], "2");
    assert_string_equal(fields[2], "0");
    assert_string_equal(fields[3], "1");
    assert_string_equal(fields[4], "0");
    assert_string_equal(fields[5], "0");
    assert_string_equal(fields[6], "no");
    assert_true(strtol(fields[7], NULL, 10) >= 1);
    assert_int_equal(row(f->out, "b", fields, 10), 8);
    assert_string_equal(fields[1], "0");
    assert_string_equal(fields[2], "1");
    assert_string_equal(fields[3], "0");
    assert_string_equal(fields[4], "1");
    assert_string_equal(fields[5], "1");
    assert_string_equal(fields[6], "yes");
    assert_string_equal(fields[7], "0");
}

/* ---- failed ------------------------------------------------------------ */

static void
test_cli_failed_list_and_show(void **state)
{
    struct fx *f = *state;
    char fields[10][64];
    json_t *list, *r, *job, *a;
    size_t i;

    make_dead(f, "d1", "q1", 0, "Boom", "boom one");
    make_dead(f, "d2", "q2", -1, "Other", "two");
    zn_srv_push(f->p,
                "{\"jid\":\"alive\",\"jobtype\":\"mail\",\"queue\":\"q1\"}");
    RUN(f, 0, "failed", "list");
    assert_int_equal(row(f->out, "JID", fields, 10), 5);
    assert_string_equal(fields[4], "MESSAGE");
    assert_int_equal(row(f->out, "d1", fields, 10), 6);
    assert_string_equal(fields[1], "q1");
    assert_string_equal(fields[2], "mail");
    assert_string_equal(fields[3], "Boom");
    assert_string_equal(fields[4], "boom");
    assert_string_equal(fields[5], "one");
    assert_int_equal(row(f->out, "d2", fields, 10), 5);
    assert_string_equal(fields[3], "Other");
    assert_false(has_row(f->out, "alive"));
    RUN(f, 0, "failed", "list", "--queue", "q1");
    assert_true(has_row(f->out, "d1"));
    assert_false(has_row(f->out, "d2"));
    /* --json: the jobs as the server has them. */
    RUN(f, 0, "failed", "list", "--json");
    list = parse_out(f);
    assert_int_equal(json_array_size(list), 2);
    json_array_foreach(list, i, job) {
        assert_string_equal(jstr(job, "state"), "dead");
        assert_true(!strcmp(jstr(job, "jid"), "d1") ||
                    !strcmp(jstr(job, "jid"), "d2"));
    }
    json_decref(list);
    RUN(f, 0, "failed", "list", "--json", "--queue", "q2");
    list = parse_out(f);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(jstr(json_array_get(list, 0), "jid"), "d2");
    json_decref(list);
    RUN(f, 0, "failed", "list", "--queue", "empty", "--json");
    assert_string_equal(f->out, "[]\n");
    /* show: the job, its failure and its attempts. */
    RUN(f, 0, "failed", "show", "d1");
    expect_in(f->out, "\"jid\": \"d1\"");
    expect_in(f->out, "\"state\": \"dead\"");
    expect_in(f->out, "\"message\": \"boom one\"");
    expect_in(f->out, "\nattempts:\n  #1 w1 ");
    expect_in(f->out, " failed: boom one\n");
    RUN(f, 0, "failed", "show", "d1", "--json");
    r = parse_out(f);
    job = json_object_get(r, "job");
    assert_string_equal(jstr(job, "jid"), "d1");
    assert_string_equal(jstr(json_object_get(job, "failure"), "errtype"),
                        "Boom");
    a = json_array_get(json_object_get(r, "attempts"), 0);
    assert_string_equal(jstr(a, "outcome"), "failed");
    assert_string_equal(jstr(a, "worker"), "w1");
    json_decref(r);
    RUN(f, 1, "failed", "show", "nope");
    assert_string_equal(f->err, "zenith: no job 'nope'\n");
    RUN(f, 2, "failed", "show");
    expect_prefix(f->err, "usage: zenith failed");
}

/*
 * Sends n commands "VERB args[i]" at once (args NULL: "VERB arg"), then
 * reads the n replies, each of which must carry something.
 */
static void
pipeline(struct zn_fwp_client *c, const char *verb, const char *arg,
         char (*args)[96], int n)
{
    struct zn_err err;

    for (int i = 0; i < n; i++)
        if (zn_fwp_client_send(c, verb, args ? args[i] : arg, &err) < 0)
            fail_msg("%s #%d: %s", verb, i, err.msg);
    for (int i = 0; i < n; i++) {
        char *reply = NULL;

        if (zn_fwp_client_recv(c, &reply, &err) < 0 || !reply)
            fail_msg("%s #%d: %s", verb, i, reply ? err.msg : "nothing");
        free(reply);
    }
}

static void
test_cli_failed_list_pages_past_1000(void **state)
{
    enum { N = 1001 }; /* the server sends at most 1000 jobs a page */
    struct fx *f = *state;
    size_t cap = N * 80, len = 0, rows = 0;
    char *batch = malloc(cap), (*fails)[96] = calloc(N, sizeof(*fails));
    json_t *list, *refused;

    assert_non_null(batch);
    assert_non_null(fails);
    len += (size_t)snprintf(batch, cap, "[");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(batch + len, cap - len, "%s{\"jid\":\"p%04d\","
                                "\"jobtype\":\"x\",\"queue\":\"bulk\","
                                "\"retry\":0}", i ? "," : "", i);
    snprintf(batch + len, cap - len, "]");
    refused = zn_srv_parse_take(zn_srv_call(f->p, "PUSHB", batch));
    assert_int_equal(json_object_size(refused), 0);
    json_decref(refused);
    free(batch);
    pipeline(f->w, "FETCH", "bulk", NULL, N);
    for (int i = 0; i < N; i++)
        snprintf(fails[i], sizeof(fails[i]), "{\"jid\":\"p%04d\","
                 "\"errtype\":\"Boom\"}", i);
    pipeline(f->w, "FAIL", NULL, fails, N);
    free(fails);
    RUN(f, 0, "failed", "list", "--json");
    list = parse_out(f);
    assert_int_equal(json_array_size(list), N);
    assert_string_equal(jstr(json_array_get(list, 0), "jid"), "p0000");
    assert_string_equal(jstr(json_array_get(list, N - 1), "jid"), "p1000");
    json_decref(list);
    RUN(f, 0, "failed", "list");
    for (const char *l = f->out; (l = strchr(l, '\n')); l++)
        rows++;
    assert_int_equal(rows, N + 1); /* and the header */
    assert_true(has_row(f->out, "p1000"));
}

static void
test_cli_failed_retry_one_and_all(void **state)
{
    struct fx *f = *state;

    make_dead(f, "d1", "q1", 0, "Boom", "x");
    make_dead(f, "d2", "q1", 0, "Boom", "x");
    make_dead(f, "d3", "q2", -1, "Boom", "x");
    zn_srv_push(f->p,
                "{\"jid\":\"alive\",\"jobtype\":\"mail\",\"queue\":\"q3\"}");
    RUN(f, 0, "failed", "retry", "d1");
    expect_state(f, "d1", "enqueued");
    expect_state(f, "d2", "dead");
    assert_string_equal(zn_srv_fetch_jid(f->w, "q1"), "d1");
    RUN(f, 1, "failed", "retry", "alive");
    assert_string_equal(f->err, "zenith: job 'alive' is not dead (it is "
                                "enqueued)\n");
    expect_state(f, "alive", "enqueued");
    RUN(f, 1, "failed", "retry", "nope");
    expect_in(f->err, "'nope'");
    RUN(f, 2, "failed", "retry");
    RUN(f, 2, "failed", "retry", "d2", "--all");
    expect_state(f, "d2", "dead");
    RUN(f, 0, "failed", "retry", "--all", "--queue", "q2");
    expect_state(f, "d3", "enqueued");
    expect_state(f, "d2", "dead");
    RUN(f, 0, "failed", "retry", "--all");
    expect_state(f, "d2", "enqueued");
    RUN(f, 0, "failed", "list", "--json");
    assert_string_equal(f->out, "[]\n");
    assert_string_equal(zn_srv_fetch_jid(f->w, "q2"), "d3");
}

static void
test_cli_failed_forget_and_flush(void **state)
{
    struct fx *f = *state;

    make_dead(f, "d1", "q1", 0, "Boom", "x");
    make_dead(f, "d2", "q1", 0, "Boom", "x");
    make_dead(f, "d3", "q2", 0, "Boom", "x");
    make_dead(f, "d4", "q2", -1, "Boom", "x");
    zn_srv_push(f->p,
                "{\"jid\":\"alive\",\"jobtype\":\"mail\",\"queue\":\"q3\"}");
    RUN(f, 0, "failed", "forget", "d1");
    expect_state(f, "d1", "gone");
    expect_state(f, "d2", "dead");
    RUN(f, 1, "failed", "forget", "alive");
    expect_in(f->err, "is not dead");
    expect_state(f, "alive", "enqueued");
    RUN(f, 1, "failed", "forget", "d1");
    expect_in(f->err, "no job 'd1'");
    RUN(f, 2, "failed", "forget");
    RUN(f, 0, "failed", "flush", "--queue", "q2");
    expect_state(f, "d3", "gone");
    expect_state(f, "d4", "gone");
    expect_state(f, "d2", "dead");
    RUN(f, 2, "failed", "flush", "d2");
    expect_state(f, "d2", "dead");
    RUN(f, 0, "failed", "flush");
    expect_state(f, "d2", "gone");
    expect_state(f, "alive", "enqueued");
    RUN(f, 0, "failed", "list", "--json");
    assert_string_equal(f->out, "[]\n");
}

static int64_t
dead_since(struct fx *f, const char *jid)
{
    json_t *info = zn_srv_job(f->p, jid);
    int64_t ms = 0;

    assert_int_equal(zn_clock_parse(jstr(json_object_get(json_object_get(
                         info, "job"), "failure"), "failed_at"), &ms), 0);
    json_decref(info);
    return ms;
}

static void
test_cli_failed_prune_older_than(void **state)
{
    struct fx *f = *state;
    int64_t old_at, deadline = zn_clock_mono_ms() + zn_test_ms(10000);

    make_dead(f, "old1", "q1", 0, "Boom", "x");
    make_dead(f, "old2", "q2", 0, "Boom", "x");
    RUN(f, 0, "failed", "prune", "--older-than", "1h");
    expect_state(f, "old1", "dead");
    expect_state(f, "old2", "dead");
    /* Wait (polling the clock) until both are more than a second old. */
    old_at = dead_since(f, "old2");
    while (zn_clock_wall_ms() < old_at + 1200) {
        if (zn_clock_mono_ms() > deadline)
            fail_msg("the wall clock does not move");
        pause_ms(20);
    }
    RUN(f, 0, "failed", "prune", "--older-than", "1s", "--queue", "q2");
    expect_state(f, "old2", "gone");
    expect_state(f, "old1", "dead");
    /* A job dead for less than a second stays. */
    make_dead(f, "new1", "q1", 0, "Boom", "x");
    RUN(f, 0, "failed", "prune", "--older-than", "1s");
    expect_state(f, "old1", "gone");
    expect_state(f, "new1", "dead");
    RUN(f, 2, "failed", "prune");
    expect_prefix(f->err, "usage: zenith failed");
    RUN(f, 2, "failed", "prune", "--older-than", "soon");
    assert_string_equal(f->err, "zenith: --older-than: 'soon' is not a "
                                "duration like 90s, 15m, 7d\n");
    expect_state(f, "new1", "dead");
}

static void
test_cli_failed_refuses_options_it_would_ignore(void **state)
{
    struct fx *f = *state;

    make_dead(f, "d1", "q1", 0, "Boom", "x");
    make_dead(f, "d2", "q2", 0, "Boom", "x");
    /* Ignored, --older-than would turn a prune into a flush of all. */
    RUN(f, 2, "failed", "flush", "--older-than", "7d");
    assert_string_equal(f->err, "zenith: failed flush: --older-than does "
                                "not apply\n");
    RUN(f, 2, "failed", "forget", "d1", "--queue", "q2");
    expect_in(f->err, "--queue does not apply");
    RUN(f, 2, "failed", "retry", "d1", "--queue", "q2");
    expect_in(f->err, "--queue does not apply");
    RUN(f, 2, "failed", "list", "--all");
    expect_in(f->err, "--all does not apply");
    RUN(f, 2, "failed", "show", "d1", "--older-than", "1d");
    expect_in(f->err, "--older-than does not apply");
    RUN(f, 2, "failed", "list", "--queue");
    expect_in(f->err, "unexpected '--queue'");
    RUN(f, 2, "failed", "list", "--frob");
    expect_in(f->err, "unexpected '--frob'");
    RUN(f, 2, "failed", "bogus");
    expect_prefix(f->err, "usage: zenith failed");
    RUN(f, 2, "failed", "show", "d1", "d2");
    expect_in(f->err, "unexpected 'd2'");
    expect_state(f, "d1", "dead");
    expect_state(f, "d2", "dead");
}

/* ---- queue ------------------------------------------------------------- */

static bool
queue_paused(struct fx *f, const char *name)
{
    json_t *all;
    bool paused;

    RUN(f, 0, "status", "--json");
    all = parse_out(f);
    paused = json_is_true(json_object_get(queue_entry(all, name), "paused"));
    json_decref(all);
    return paused;
}

static void
test_cli_queue_pause_resume_clear(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p, "{\"jid\":\"m1\",\"jobtype\":\"x\",\"queue\":\"mail\"}");
    zn_srv_push(f->p, "{\"jid\":\"m2\",\"jobtype\":\"x\",\"queue\":\"mail\"}");
    zn_srv_push(f->p, "{\"jid\":\"m3\",\"jobtype\":\"x\",\"queue\":\"mail\"}");
    zn_srv_push(f->p, "{\"jid\":\"m4\",\"jobtype\":\"x\",\"queue\":\"mail\","
                      "\"at\":\"2099-01-01T00:00:00Z\"}");
    zn_srv_push(f->p, "{\"jid\":\"o1\",\"jobtype\":\"x\",\"queue\":\"other\"}");
    assert_string_equal(zn_srv_fetch_jid(f->w, "mail"), "m1");
    RUN(f, 0, "queue", "pause", "mail");
    assert_string_equal(f->out, "");
    assert_true(queue_paused(f, "mail"));
    assert_false(queue_paused(f, "other"));
    /* A paused queue is passed over. */
    assert_string_equal(zn_srv_fetch_jid(f->w, "mail other"), "o1");
    RUN(f, 0, "queue", "resume", "mail");
    assert_false(queue_paused(f, "mail"));
    assert_string_equal(zn_srv_fetch_jid(f->w, "mail other"), "m2");
    /* clear: the waiting jobs go, the working ones stay. */
    zn_srv_push(f->p, "{\"jid\":\"o2\",\"jobtype\":\"x\",\"queue\":\"other\"}");
    RUN(f, 0, "queue", "clear", "mail");
    expect_state(f, "m3", "gone");
    expect_state(f, "m4", "gone");
    expect_state(f, "m1", "working");
    expect_state(f, "m2", "working");
    expect_state(f, "o2", "enqueued");
    RUN(f, 2, "queue", "pause");
    expect_in(f->err, "usage: zenith queue");
    RUN(f, 2, "queue", "pause", "a", "b");
    RUN(f, 2, "queue", "stop", "mail");
    expect_in(f->err, "unknown action 'stop'");
    RUN(f, 2, "queue", "pause", "a b");
    expect_in(f->err, "'a b' does not match");
    assert_false(queue_paused(f, "other"));
}

/* ---- migrate ----------------------------------------------------------- */

static void
test_cli_migrate_fresh_and_existing(void **state)
{
    struct fx *f = *state;
    char dir[PATH_MAX], want[PATH_MAX + 64], db[PATH_MAX], ini[PATH_MAX];
    char jid[80];

    snprintf(dir, sizeof(dir), "%s/fresh", f->srv.dir);
    RUN_BARE(f, 0, "migrate", "--data", dir);
    snprintf(want, sizeof(want), "%s/zenith.db: schema version 0 -> %d\n",
             dir, ZN_SCHEMA_VERSION);
    assert_string_equal(f->out, want);
    RUN_BARE(f, 0, "migrate", "--data", dir);
    snprintf(want, sizeof(want), "%s/zenith.db: schema version %d -> %d\n",
             dir, ZN_SCHEMA_VERSION, ZN_SCHEMA_VERSION);
    assert_string_equal(f->out, want);
    /* The data directory of a server that ran: --data holds its db. */
    zn_srv_start(&f->srv, NULL);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
    RUN(f, 0, "push", "mail");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    zn_fwp_client_free(f->p);
    f->p = NULL;
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    zn_srv_db_path(&f->srv, db, sizeof(db));
    assert_true(exists(db));
    RUN_BARE(f, 0, "migrate", "--data", f->srv.dir);
    snprintf(want, sizeof(want), "%s: schema version %d -> %d\n", db,
             ZN_SCHEMA_VERSION, ZN_SCHEMA_VERSION);
    assert_string_equal(f->out, want);
    zn_srv_start(&f->srv, NULL);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
    expect_state(f, jid, "enqueued");
    /* migrate reads the same configuration as serve. */
    snprintf(ini, sizeof(ini), "%s/bad.ini", f->srv.dir);
    zn_write_file(ini, "[server]\nretry = lots\n");
    RUN_BARE(f, 2, "migrate", "--config", ini, "--data", dir);
    snprintf(want, sizeof(want), "zenith: %s:2: retry: 'lots'", ini);
    expect_prefix(f->err, want);
    RUN_BARE(f, 2, "migrate", "--data", dir, "extra");
    expect_in(f->err, "unexpected argument 'extra'");
}

/* ---- finding and opening the server ------------------------------------ */

static void
test_cli_password_flag_and_env(void **state)
{
    struct fx *f = *state;
    const char *right = "ZENITH_PASSWORD=" PASSWORD;
    const char *wrong = "ZENITH_PASSWORD=nope";
    char jid[80];

    RUN_BARE(f, 1, "status", "--server", f->srv.addr);
    assert_string_equal(f->err, "zenith: server requires a password\n");
    RUN_BARE(f, 1, "status", "--server", f->srv.addr, "--password", "nope");
    expect_in(f->err, "invalid password");
    RUN_BARE(f, 0, "status", "--server", f->srv.addr, "--password",
             PASSWORD);
    RUN_ENV(f, 0, ARGS(right, "ZENITH_SERVER"), "push", "mail", "--server",
            f->srv.addr);
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    expect_state(f, jid, "enqueued");
    /* The flag beats the variable, both ways. */
    RUN_ENV(f, 0, ARGS(wrong, "ZENITH_SERVER"), "status", "--server",
            f->srv.addr, "--password", PASSWORD);
    RUN_ENV(f, 1, ARGS(right, "ZENITH_SERVER"), "status", "--server",
            f->srv.addr, "--password", "nope");
    expect_in(f->err, "invalid password");
    /* Every client command passes it on. */
    RUN(f, 0, "failed", "list");
    RUN(f, 0, "queue", "pause", "default");
    RUN(f, 0, "failed", "prune", "--older-than", "1d");
    RUN(f, 0, "push", "mail", "--queue", "pw");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    expect_state(f, jid, "enqueued");
}

static void
test_cli_server_from_env(void **state)
{
    struct fx *f = *state;
    char env[100], dead[100], jid[80];

    snprintf(env, sizeof(env), "ZENITH_SERVER=%s", f->srv.addr);
    snprintf(dead, sizeof(dead), "ZENITH_SERVER=%s", dead_addr(f));
    RUN_ENV(f, 0, ARGS(env, "ZENITH_PASSWORD"), "push", "mail");
    snprintf(jid, sizeof(jid), "%s", pushed_jid(f));
    expect_state(f, jid, "enqueued");
    RUN_ENV(f, 0, ARGS(env, "ZENITH_PASSWORD"), "status", "--json");
    expect_in(f->out, "\"name\":\"default\"");
    RUN_ENV(f, 1, ARGS(dead, "ZENITH_PASSWORD"), "status");
    expect_in(f->err, f->dead_addr);
    /* --server beats ZENITH_SERVER. */
    RUN_ENV(f, 0, ARGS(dead, "ZENITH_PASSWORD"), "failed", "list",
            "--server", f->srv.addr);
}

/* ---- serve: configuration ---------------------------------------------- */

/* Runs serve on dir with args after the safe ones; must exit 2. */
static void
serve_fails(struct fx *f, const char *const *env, const char *a1,
            const char *a2, const char *a3)
{
    char data[PATH_MAX];

    snprintf(data, sizeof(data), "%s/data", f->srv.dir);
    /* A free port and a data dir of its own, should it start after all. */
    run_full(f, 2, env, false, ARGS("serve", "--data", data, "--fwp",
                                    "127.0.0.1:0", "--http", "", a1, a2, a3));
    assert_false(exists(data));
    assert_string_equal(f->out, "");
    expect_not_in(f->err, "server.listening");
}

static void
test_cli_serve_config_file_errors(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *want;
    } cases[] = {
        {"# zenith\n[server]\ntimeout = 30\nretry = abc\n", 4,
         "retry: 'abc' is not a whole number"},
        {"timeout = 0\n", 1, "timeout: 0 is out of range 1..86400"},
        {"[server]\ndurability = sometimes\n", 2, "durability: 'sometimes'"},
        {"[server]\nworkers = maybe\n", 2, "workers: 'maybe'"},
        {"[server]\ndead_ttl = 7 days\n", 2, "dead_ttl: '7 days'"},
        {"[server]\n\nfrobnicate = 1\n", 3, "unknown option 'frobnicate'"},
        {"[server]\ntimeout = 5\n[workers]\nprocesses = 3\n", 4,
         "unknown section 'workers'"},
        {"[server]\ntimeout 5\n", 2, "syntax error"},
    };
    struct fx *f = *state;
    char ini[PATH_MAX], want[PATH_MAX + 64], text[512];

    snprintf(ini, sizeof(ini), "%s/zenith.ini", f->srv.dir);
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        zn_write_file(ini, cases[i].text);
        serve_fails(f, NULL, "--config", ini, NULL);
        snprintf(want, sizeof(want), "zenith: %s:%d: %s", ini, cases[i].line,
                 cases[i].want);
        expect_prefix(f->err, want);
    }
    /* A line too long for the parser is named, and nothing after it. */
    memset(text, 'x', sizeof(text));
    memcpy(text, "[server]\npassword = ", 20);
    memcpy(text + 300, "\nretry = abc\n", 14);
    zn_write_file(ini, text);
    serve_fails(f, NULL, "--config", ini, NULL);
    snprintf(want, sizeof(want), "zenith: %s:2: line too long", ini);
    expect_prefix(f->err, want);
    serve_fails(f, NULL, "--config", "/nonexistent/zenith.ini", NULL);
    expect_prefix(f->err, "zenith: /nonexistent/zenith.ini: cannot open");
    serve_fails(f, NULL, "--config", NULL, NULL);
    assert_string_equal(f->err, "zenith: --config: missing value\n");
}

static void
test_cli_serve_env_and_flag_errors(void **state)
{
    struct fx *f = *state;

    serve_fails(f, ARGS("ZENITH_RETRY=abc"), NULL, NULL, NULL);
    assert_string_equal(f->err, "zenith: env ZENITH_RETRY: retry: 'abc' is "
                                "not a whole number\n");
    serve_fails(f, ARGS("ZENITH_TIMEOUT=0"), NULL, NULL, NULL);
    expect_prefix(f->err, "zenith: env ZENITH_TIMEOUT: timeout: 0 is out");
    serve_fails(f, ARGS("ZENITH_BACKOFF=1,,2"), NULL, NULL, NULL);
    expect_prefix(f->err, "zenith: env ZENITH_BACKOFF: backoff: '1,,2'");
    serve_fails(f, NULL, "--timeout", "0", NULL);
    expect_prefix(f->err, "zenith: --timeout: timeout: 0 is out of range");
    serve_fails(f, NULL, "--retry=many", NULL, NULL);
    expect_prefix(f->err, "zenith: --retry: retry: 'many'");
    serve_fails(f, NULL, "--bogus", "1", NULL);
    assert_string_equal(f->err, "zenith: unknown option '--bogus'\n");
    serve_fails(f, NULL, "stray", NULL, NULL);
    assert_string_equal(f->err, "zenith: unexpected argument 'stray'\n");
    serve_fails(f, NULL, "--retry", NULL, NULL);
    assert_string_equal(f->err, "zenith: --retry: missing value\n");
    /* A bad variable stops start-up even when a flag sets the same key. */
    serve_fails(f, ARGS("ZENITH_RETRY=abc"), "--retry", "3", NULL);
    expect_prefix(f->err, "zenith: env ZENITH_RETRY");
}

/* Pushes a job with the CLI and returns its stored job (caller decrefs). */
static json_t *
push_and_read(struct fx *f)
{
    json_t *info, *job;

    f->p = zn_srv_connect(&f->srv, NULL, NULL);
    RUN(f, 0, "push", "mail");
    info = zn_srv_job(f->p, pushed_jid(f));
    job = json_incref(json_object_get(info, "job"));
    json_decref(info);
    zn_fwp_client_free(f->p);
    f->p = NULL;
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    return job;
}

static void
test_cli_serve_precedence_flag_env_file(void **state)
{
    struct fx *f = *state;
    char ini[PATH_MAX], text[PATH_MAX + 100], data[PATH_MAX];
    char arg[PATH_MAX + 16];
    const char *const env_timeout[] = {"ZENITH_TIMEOUT=222", NULL};
    const char *const env_both[] = {"ZENITH_TIMEOUT=222", "ZENITH_RETRY=8",
                                    NULL};
    char db[PATH_MAX];
    json_t *job;

    snprintf(ini, sizeof(ini), "%s/zenith.ini", f->srv.dir);
    snprintf(data, sizeof(data), "%s/from-file", f->srv.dir);
    snprintf(text, sizeof(text), "[server]\ntimeout = 111\nretry = 7\n"
             "data = %s\n", data);
    zn_write_file(ini, text);
    /* File over defaults; the --data flag over the file's data. */
    snprintf(arg, sizeof(arg), "--config=%s", ini);
    zn_srv_start(&f->srv, ARGS(arg));
    job = push_and_read(f);
    assert_int_equal(jint(job, "reserve_for"), 111);
    assert_int_equal(jint(job, "retry"), 7);
    json_decref(job);
    zn_srv_db_path(&f->srv, db, sizeof(db));
    assert_true(exists(db));
    assert_false(exists(data));
    /* Environment over file. */
    f->srv.env = env_timeout;
    zn_srv_start(&f->srv, ARGS("--config", ini));
    job = push_and_read(f);
    assert_int_equal(jint(job, "reserve_for"), 222);
    assert_int_equal(jint(job, "retry"), 7);
    json_decref(job);
    /* Flag over environment over file. */
    f->srv.env = env_both;
    zn_srv_start(&f->srv, ARGS("--config", ini, "--timeout", "333"));
    job = push_and_read(f);
    assert_int_equal(jint(job, "reserve_for"), 333);
    assert_int_equal(jint(job, "retry"), 8);
    json_decref(job);
    f->srv.env = NULL;
}

static void
test_cli_serve_password_from_env(void **state)
{
    struct fx *f = *state;
    const char *const env[] = {"ZENITH_PASSWORD=from-env", NULL};

    f->srv.env = env;
    zn_srv_start(&f->srv, NULL);
    f->srv.env = NULL;
    RUN_BARE(f, 1, "status", "--server", f->srv.addr);
    expect_in(f->err, "requires a password");
    RUN_BARE(f, 0, "status", "--server", f->srv.addr, "--password",
             "from-env");
    /* The flag beats the variable on the server's side too. */
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    f->srv.env = env;
    zn_srv_start(&f->srv, ARGS("--password", "from-flag"));
    f->srv.env = NULL;
    RUN_BARE(f, 1, "status", "--server", f->srv.addr, "--password",
             "from-env");
    RUN_BARE(f, 0, "status", "--server", f->srv.addr, "--password",
             "from-flag");
}

#define SRV(t) cmocka_unit_test_setup_teardown(t, setup_srv, teardown)
#define PW(t) cmocka_unit_test_setup_teardown(t, setup_pw, teardown)
#define IN_DIR(t) cmocka_unit_test_setup_teardown(t, setup_dir, teardown)

static const struct CMUnitTest tests[] = {
    IN_DIR(test_cli_help_on_every_command),
    IN_DIR(test_cli_unknown_command_and_bare_usage),
    SRV(test_cli_push_defaults),
    SRV(test_cli_push_every_flag),
    SRV(test_cli_push_at_time),
    SRV(test_cli_push_flags_take_effect),
    SRV(test_cli_push_bad_input_exit_2),
    IN_DIR(test_cli_push_refused_by_server_exit_1),
    IN_DIR(test_cli_client_commands_server_down_exit_1),
    SRV(test_cli_status_table_and_json),
    SRV(test_cli_failed_list_and_show),
    SRV(test_cli_failed_list_pages_past_1000),
    SRV(test_cli_failed_retry_one_and_all),
    SRV(test_cli_failed_forget_and_flush),
    SRV(test_cli_failed_prune_older_than),
    SRV(test_cli_failed_refuses_options_it_would_ignore),
    SRV(test_cli_queue_pause_resume_clear),
    IN_DIR(test_cli_migrate_fresh_and_existing),
    PW(test_cli_password_flag_and_env),
    SRV(test_cli_server_from_env),
    IN_DIR(test_cli_serve_config_file_errors),
    IN_DIR(test_cli_serve_env_and_flag_errors),
    IN_DIR(test_cli_serve_precedence_flag_env_file),
    IN_DIR(test_cli_serve_password_from_env),
};

int
main(void)
{
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL) ? 1 : 0;
}
