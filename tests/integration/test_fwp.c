/*
 * test_fwp.c - every FWP command against the real server, once without
 * and once with a password. Each test gets its own server and data dir.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "harness.h"

struct fx {
    struct zn_srv srv;
    const char *password;
    struct zn_fwp_client *p; /* producer */
    struct zn_fwp_client *w; /* consumer "w1" */
};

static const char *pw_none = NULL;
static const char *pw_set = "s3cret-pw";

static int
setup_with(void **state, const char *password)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *extra[] = {"--password", password, NULL};

    f->password = password;
    zn_srv_start(&f->srv, password ? extra : NULL);
    f->p = zn_srv_connect(&f->srv, NULL, password);
    f->w = zn_srv_connect(&f->srv, "w1", password);
    *state = f;
    return 0;
}

static int setup_open(void **state) { return setup_with(state, pw_none); }
static int setup_pw(void **state) { return setup_with(state, pw_set); }

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_fwp_client_free(f->p);
    zn_fwp_client_free(f->w);
    assert_int_equal(zn_srv_stop(&f->srv), 0);
    zn_srv_cleanup(&f->srv);
    free(f);
    return 0;
}

static const char *
job_state(json_t *info)
{
    return json_string_value(
        json_object_get(json_object_get(info, "job"), "state"));
}

static void
test_fwp_push_fetch_ack(void **state)
{
    struct fx *f = *state;
    json_t *info, *j;

    zn_srv_push(f->p,
                "{\"jid\":\"j1\",\"jobtype\":\"send\",\"args\":[1,\"a\"]}");
    j = zn_srv_parse_take(zn_srv_call(f->w, "FETCH", "default"));
    assert_string_equal(json_string_value(json_object_get(j, "jid")), "j1");
    assert_string_equal(json_string_value(json_object_get(j, "jobtype")),
                        "send");
    assert_int_equal(json_integer_value(
                         json_array_get(json_object_get(j, "args"), 0)), 1);
    json_decref(j);
    free(zn_srv_call(f->w, "ACK", "{\"jid\":\"j1\"}"));
    info = zn_srv_job(f->p, "j1");
    assert_string_equal(job_state(info), "done");
    json_decref(info);
    /* A second ACK of the same job is an error, not a crash. */
    assert_non_null(strstr(zn_srv_call_err(f->w, "ACK", "{\"jid\":\"j1\"}"),
                           "'j1'"));
    info = zn_srv_parse_take(zn_srv_call(f->p, "INFO", NULL));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(info, "faktory"), "total_processed")),
                     1);
    json_decref(info);
}

static void
test_fwp_push_refusals(void **state)
{
    struct fx *f = *state;

    assert_non_null(strstr(zn_srv_call_err(f->p, "PUSH", "{\"args\":[]}"),
                           "jobtype"));
    assert_non_null(strstr(zn_srv_call_err(f->p, "PUSH", "{nope"),
                           "invalid JSON"));
    zn_srv_push(f->p, "{\"jid\":\"dup\",\"jobtype\":\"x\"}");
    assert_non_null(strstr(zn_srv_call_err(f->p, "PUSH",
                                           "{\"jid\":\"dup\","
                                           "\"jobtype\":\"x\"}"),
                           "already exists"));
    assert_non_null(strstr(zn_srv_call_err(f->p, "PUSH",
                                           "{\"jobtype\":\"x\","
                                           "\"queue\":\"a b\"}"),
                           "queue"));
}

static void
test_fwp_pushb_reports_refused(void **state)
{
    struct fx *f = *state;
    json_t *r;

    r = zn_srv_parse_take(zn_srv_call(
        f->p, "PUSHB",
        "[{\"jid\":\"b1\",\"jobtype\":\"x\"},"
        "{\"jid\":\"b2\",\"args\":[]},"
        "{\"jid\":\"b3\",\"jobtype\":\"x\",\"priority\":12}]"));
    assert_int_equal(json_object_size(r), 2);
    assert_non_null(json_object_get(r, "b2"));
    assert_non_null(strstr(json_string_value(json_object_get(r, "b3")),
                           "priority"));
    json_decref(r);
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "b1");
    r = zn_srv_parse_take(zn_srv_call(f->p, "PUSHB", "[]"));
    assert_int_equal(json_object_size(r), 0);
    json_decref(r);
    assert_non_null(strstr(zn_srv_call_err(f->p, "PUSHB", "{\"a\":1}"),
                           "array"));
    /*
     * Without a jid, a refused job is named by its index, whether the
     * batch is plain JSON (read in place) or not (the 1.5: jansson).
     */
    for (int i = 0; i < 2; i++) {
        r = zn_srv_parse_take(zn_srv_call(f->p, "PUSHB", i == 0
            ? "[5,{\"jid\":null,\"jobtype\":\"x\",\"priority\":0},"
              "{\"jid\":\"b4\",\"jobtype\":\"x\",\"args\":[1]}]"
            : "[5,{\"jid\":null,\"jobtype\":\"x\",\"priority\":0},"
              "{\"jid\":\"b5\",\"jobtype\":\"x\",\"args\":[1.5]}]"));
        assert_int_equal(json_object_size(r), 2);
        assert_non_null(strstr(json_string_value(json_object_get(r, "#0")),
                               "object"));
        assert_non_null(strstr(json_string_value(json_object_get(r, "#1")),
                               "priority"));
        json_decref(r);
    }
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "b4");
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "b5");
    /* Strings are not jobs, even one that holds a job's text. */
    r = zn_srv_parse_take(zn_srv_call(f->p, "PUSHB", "[\"x\",\"{}\",\"\"]"));
    for (int i = 0; i < 3; i++) {
        char key[8];

        snprintf(key, sizeof(key), "#%d", i);
        assert_string_equal(json_string_value(json_object_get(r, key)),
                            "job: must be a JSON object");
    }
    json_decref(r);
}

static void
test_fwp_fetch_order_and_queues(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p, "{\"jid\":\"low\",\"jobtype\":\"x\",\"priority\":1}");
    zn_srv_push(f->p, "{\"jid\":\"mid1\",\"jobtype\":\"x\"}");
    zn_srv_push(f->p, "{\"jid\":\"mid2\",\"jobtype\":\"x\"}");
    zn_srv_push(f->p, "{\"jid\":\"high\",\"jobtype\":\"x\",\"priority\":9}");
    zn_srv_push(f->p,
                "{\"jid\":\"crit\",\"jobtype\":\"x\",\"queue\":\"critical\"}");
    assert_string_equal(zn_srv_fetch_jid(f->w, "critical default"), "crit");
    assert_string_equal(zn_srv_fetch_jid(f->w, "critical default"), "high");
    assert_string_equal(zn_srv_fetch_jid(f->w, "critical default"), "mid1");
    assert_string_equal(zn_srv_fetch_jid(f->w, "critical default"), "mid2");
    assert_string_equal(zn_srv_fetch_jid(f->w, "critical default"), "low");
}

static void
test_fwp_fetch_blocks_then_wakes(void **state)
{
    struct fx *f = *state;
    struct zn_err err;
    char *reply = (char *)"x";
    int64_t t0;

    /* Nothing waiting: nil after the 2 s wait. */
    t0 = zn_clock_mono_ms();
    assert_int_equal(zn_fwp_client_call(f->w, "FETCH", "empty", &reply, &err),
                     0);
    assert_null(reply);
    assert_true(zn_clock_mono_ms() - t0 >= 1900);
    /* A job pushed while the fetch waits is handed over at once. */
    assert_int_equal(zn_fwp_client_send(f->w, "FETCH", "wake", &err), 0);
    zn_srv_push(f->p, "{\"jid\":\"wj\",\"jobtype\":\"x\",\"queue\":\"wake\"}");
    t0 = zn_clock_mono_ms();
    assert_int_equal(zn_fwp_client_recv(f->w, &reply, &err), 0);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"wj\""));
    assert_true(zn_clock_mono_ms() - t0 < 1500);
    free(reply);
}

static void
test_fwp_fail_retry_then_dead(void **state)
{
    struct fx *f = *state;
    json_t *info, *a;

    zn_srv_push(f->p, "{\"jid\":\"ff\",\"jobtype\":\"x\","
                      "\"retry\":1,\"backoff\":[0]}");
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "ff");
    free(zn_srv_call(f->w, "FAIL", "{\"jid\":\"ff\",\"errtype\":\"Boom\","
                                   "\"message\":\"first\","
                                   "\"backtrace\":[\"a:1\"]}"));
    info = zn_srv_job(f->p, "ff");
    assert_true(!strcmp(job_state(info), "retry") ||
                !strcmp(job_state(info), "enqueued"));
    json_decref(info);
    /* Backoff 0: enqueued again by the next tick; FETCH waits for it. */
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "ff");
    free(zn_srv_call(f->w, "FAIL", "{\"jid\":\"ff\",\"errtype\":\"Boom\","
                                   "\"message\":\"second\"}"));
    info = zn_srv_job(f->p, "ff");
    assert_string_equal(job_state(info), "dead");
    a = json_object_get(json_object_get(info, "job"), "failure");
    assert_string_equal(json_string_value(json_object_get(a, "errtype")),
                        "Boom");
    assert_string_equal(json_string_value(json_object_get(a, "message")),
                        "second");
    assert_int_equal(json_array_size(json_object_get(info, "attempts")), 2);
    json_decref(info);
    assert_non_null(strstr(zn_srv_call_err(f->w, "FAIL", "{\"jid\":\"nope\"}"),
                           "nope"));
}

static void
test_fwp_worker_gone_requeues_at_once(void **state)
{
    struct fx *f = *state;
    struct zn_fwp_client *w2 = zn_srv_connect(&f->srv, "w2", f->password);
    json_t *info, *a;

    zn_srv_push(f->p, "{\"jid\":\"g1\",\"jobtype\":\"x\"}");
    assert_string_equal(zn_srv_fetch_jid(w2, "default"), "g1");
    zn_fwp_client_free(w2); /* gone without ACK */
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "g1");
    info = zn_srv_job(f->p, "g1");
    a = json_array_get(json_object_get(info, "attempts"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "outcome")),
                        "worker gone");
    json_decref(info);
}

static void
test_fwp_lease_expiry(void **state)
{
    struct fx *f = *state;
    json_t *info, *a;

    zn_srv_push(f->p, "{\"jid\":\"le\",\"jobtype\":\"x\",\"reserve_for\":1,"
                      "\"backoff\":[0]}");
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "le");
    /* Not acknowledged: after 1 s the lease expires and it comes back. */
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "le");
    info = zn_srv_job(f->p, "le");
    a = json_array_get(json_object_get(info, "attempts"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "outcome")),
                        "lease expired");
    json_decref(info);
}

static void
test_fwp_scheduled_job_waits(void **state)
{
    struct fx *f = *state;
    char job[200], at[64];
    struct zn_err err;
    char *reply = NULL;
    int64_t t0 = zn_clock_wall_ms();

    zn_clock_format(t0 + 2500, at, sizeof(at));
    snprintf(job, sizeof(job),
             "{\"jid\":\"later\",\"jobtype\":\"x\",\"at\":\"%s\"}", at);
    zn_srv_push(f->p, job);
    /* First FETCH waits its 2 s and comes back empty. */
    assert_int_equal(zn_fwp_client_call(f->w, "FETCH", "default", &reply, &err),
                     0);
    assert_null(reply);
    assert_string_equal(zn_srv_fetch_jid(f->w, "default"), "later");
    assert_true(zn_clock_wall_ms() >= t0 + 2500);
}

static void
test_fwp_unique_for(void **state)
{
    struct fx *f = *state;

    zn_srv_push(f->p, "{\"jid\":\"u1\",\"jobtype\":\"mail\",\"args\":[7],"
                      "\"unique_for\":60}");
    assert_non_null(strstr(zn_srv_call_err(f->p, "PUSH",
                                           "{\"jid\":\"u2\","
                                           "\"jobtype\":\"mail\","
                                           "\"args\":[7],\"unique_for\":60}"),
                           "u1"));
    /* Other args: a different job. */
    zn_srv_push(f->p, "{\"jid\":\"u3\",\"jobtype\":\"mail\",\"args\":[8],"
                      "\"unique_for\":60}");
}

static void
test_fwp_queue_pause_resume_remove(void **state)
{
    struct fx *f = *state;
    struct zn_err err;
    char *reply = NULL;
    json_t *info;

    zn_srv_push(f->p, "{\"jid\":\"q1\",\"jobtype\":\"x\",\"queue\":\"mail\"}");
    free(zn_srv_call(f->p, "QUEUE", "PAUSE mail"));
    assert_int_equal(zn_fwp_client_call(f->w, "FETCH", "mail", &reply, &err),
                     0);
    assert_null(reply);
    free(zn_srv_call(f->p, "QUEUE", "RESUME mail"));
    assert_string_equal(zn_srv_fetch_jid(f->w, "mail"), "q1");
    zn_srv_push(f->p, "{\"jid\":\"q2\",\"jobtype\":\"x\",\"queue\":\"mail\"}");
    free(zn_srv_call(f->p, "QUEUE", "REMOVE mail"));
    info = zn_srv_job(f->p, "q1");
    json_decref(info);
    assert_non_null(strstr(zn_srv_call_err(f->p, "JOBS", "{\"jid\":\"q2\"}"),
                           "q2"));
    assert_non_null(strstr(zn_srv_call_err(f->p, "QUEUE", "STOP mail"),
                           "subcommand must be PAUSE, RESUME or REMOVE"));
    assert_non_null(strstr(zn_srv_call_err(f->p, "QUEUE", "PAUSE"),
                           "at least one queue name is required"));
}

static void
test_fwp_beat_and_info(void **state)
{
    struct fx *f = *state;
    json_t *info, *workers;

    free(zn_srv_call(f->w, "BEAT", "{\"wid\":\"w1\",\"rss_kb\":2048}"));
    assert_non_null(strstr(zn_srv_call_err(f->w, "BEAT",
                                           "{\"wid\":\"nobody\"}"),
                           "unknown worker 'nobody'"));
    info = zn_srv_parse_take(zn_srv_call(f->p, "INFO", NULL));
    workers = json_object_get(json_object_get(info, "zenith"), "workers");
    assert_int_equal(json_array_size(workers), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(workers, 0), "wid")), "w1");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(workers, 0), "rss_kb")), 2048);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(info, "server"), "description")),
                        "zenith");
    json_decref(info);
}

static void
test_fwp_flush(void **state)
{
    struct fx *f = *state;
    struct zn_err err;
    char *reply = NULL;

    zn_srv_push(f->p, "{\"jid\":\"fl\",\"jobtype\":\"x\"}");
    free(zn_srv_call(f->p, "FLUSH", NULL));
    assert_int_equal(zn_fwp_client_call(f->w, "FETCH", "default", &reply, &err),
                     0);
    assert_null(reply);
}

static void
test_fwp_errors_keep_connection(void **state)
{
    struct fx *f = *state;

    assert_non_null(strstr(zn_srv_call_err(f->p, "BOGUS", "x"), "BOGUS"));
    assert_non_null(strstr(zn_srv_call_err(f->p, "INFO", "extra"),
                           "takes no argument"));
    assert_non_null(strstr(zn_srv_call_err(f->p, "FETCH", "default"),
                           "only a consumer"));
    zn_srv_push(f->p, "{\"jid\":\"ok\",\"jobtype\":\"x\"}");
}

static void
test_fwp_end_closes(void **state)
{
    struct fx *f = *state;
    struct zn_err err;
    char *reply = NULL;

    assert_int_equal(zn_fwp_client_send(f->p, "END", NULL, &err), 0);
    assert_int_equal(zn_fwp_client_recv(f->p, &reply, &err), ZN_EIO);
    zn_fwp_client_free(f->p);
    f->p = zn_srv_connect(&f->srv, NULL, f->password);
}

/* Reads from fd into buf (size bytes, NUL-terminated) up to a newline. */
static void
read_line(int fd, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;

    buf[0] = '\0';
    while (!memchr(buf, '\n', len) &&
           (n = read(fd, buf + len, size - 1 - len)) > 0) {
        len += (size_t)n;
        buf[len] = '\0';
    }
}

/*
 * A raw connection to the server on port, its HI line read into hi (size
 * bytes): the descriptor. Reads time out after 30 s, so a server that
 * keeps the connection open fails a test instead of hanging it.
 */
static int
raw_hi(int port, char *hi, size_t size)
{
    struct timeval tv = {30, 0};
    int fd = zn_test_connect_raw(port);

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                sizeof(tv)), 0);
    read_line(fd, hi, size);
    return fd;
}

/*
 * A raw connection to f's server past HELLO (with the password's hash
 * when it has one): its descriptor.
 */
static int
raw_ready(struct fx *f)
{
    char buf[256], hello[200], salt[40] = "", hash[65];
    int fd = raw_hi(f->srv.port, buf, sizeof(buf));
    const char *p = strstr(buf, "\"s\":\"");

    if (p)
        sscanf(p + 5, "%32[0-9a-f]", salt);
    if (f->password) {
        zn_fwp_pwdhash(f->password, salt, 5545, hash);
        snprintf(hello, sizeof(hello), "HELLO {\"v\":2,\"pwdhash\":\"%s\"}\r\n",
                 hash);
    } else {
        snprintf(hello, sizeof(hello), "HELLO {\"v\":2}\r\n");
    }
    assert_true(write(fd, hello, strlen(hello)) > 0);
    read_line(fd, buf, sizeof(buf));
    assert_string_equal(buf, "+OK\r\n");
    return fd;
}

/* Reads fd to its end into a malloc'd, NUL-terminated text. */
static char *
read_to_end(int fd, size_t *len)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    ssize_t n;

    assert_non_null(buf);
    *len = 0;
    while ((n = read(fd, buf + *len, cap - 1 - *len)) > 0) {
        *len += (size_t)n;
        if (*len == cap - 1) {
            char *grown = realloc(buf, cap * 2);

            assert_non_null(grown);
            buf = grown;
            cap *= 2;
        }
    }
    buf[*len] = '\0';
    return buf;
}

/* A client that sends its commands and half-closes still gets every reply. */
static void
test_fwp_half_close_answers_everything(void **state)
{
    struct fx *f = *state;
    const char *p;
    char *buf;
    size_t len;
    int fd = raw_ready(f), oks = 0;

    for (int i = 0; i < 3; i++) {
        char push[100];

        snprintf(push, sizeof(push),
                 "PUSH {\"jid\":\"hc%d\",\"jobtype\":\"x\"}\r\n", i);
        assert_true(write(fd, push, strlen(push)) > 0);
    }
    shutdown(fd, SHUT_WR);
    buf = read_to_end(fd, &len);
    close(fd);
    for (p = buf; (p = strstr(p, "+OK")); p++)
        oks++;
    assert_int_equal(oks, 3);
    free(buf);
}

/*
 * 80 jobs of 1 MB. JOBS pages them by size: a page ends past 16 MiB of
 * JSON, next at its last job, and the pages hold each job once. And a
 * client that half-closes while the replies to its 5 JOBS pass the
 * server's output limit (64 MiB) still gets the rest of its commands run:
 * the server stops reading until the client reads, then runs the PUSH
 * behind them before it closes.
 */
static void
test_fwp_big_pages_and_full_output(void **state)
{
    enum { BIG = 80, ARG = 1000000, PAGES = 5 };
    static const char jobs[] = "JOBS {\"queue\":\"big\",\"limit\":1000}\r\n";
    static const char push[] =
        "PUSH {\"jid\":\"behind\",\"jobtype\":\"x\"}\r\n";
    struct fx *f = *state;
    char *job = malloc(ARG + 100), *buf, arg[64];
    json_int_t after = 0;
    size_t len, o, seen = 0, pages = 0;
    json_t *j;
    int fd;

    assert_non_null(job);
    for (int i = 0; i < BIG; i++) {
        o = (size_t)snprintf(job, 100, "{\"jid\":\"big%d\",\"jobtype\":\"x\","
                             "\"queue\":\"big\",\"args\":[\"", i);
        memset(job + o, 'a', ARG);
        memcpy(job + o + ARG, "\"]}", 4);
        zn_srv_push(f->p, job);
    }
    free(job);
    do {
        json_t *list;

        snprintf(arg, sizeof(arg), "{\"queue\":\"big\",\"after\":%lld}",
                 (long long)after);
        j = zn_srv_parse_take(zn_srv_call(f->p, "JOBS", arg));
        list = json_object_get(j, "jobs");
        assert_true(json_array_size(list) > 0);
        assert_true(json_array_size(list) < BIG);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char want[16];

            snprintf(want, sizeof(want), "big%zu", seen++);
            assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(list, i), "jid")), want);
        }
        after = json_integer_value(json_object_get(j, "next"));
        json_decref(j);
        pages++;
    } while (after);
    assert_int_equal(seen, BIG);
    assert_true(pages >= 5);
    fd = raw_ready(f);
    for (int i = 0; i < PAGES; i++)
        assert_int_equal(write(fd, jobs, sizeof(jobs) - 1),
                         (ssize_t)sizeof(jobs) - 1);
    assert_int_equal(write(fd, push, sizeof(push) - 1),
                     (ssize_t)sizeof(push) - 1);
    shutdown(fd, SHUT_WR);
    buf = read_to_end(fd, &len);
    close(fd);
    assert_true(len > (size_t)64 * 1024 * 1024);
    assert_int_equal(buf[0], '$');
    assert_string_equal(buf + len - 5, "+OK\r\n");
    free(buf);
    j = zn_srv_job(f->p, "behind");
    json_decref(j);
}

/*
 * The server itself refuses a HELLO (a raw line, past our client's own
 * check) that lacks the password's hash or has a wrong one, and then
 * closes the connection: a PUSH sent after it gets nothing.
 */
static void
expect_hello_refused(const char *hello, int port)
{
    static const char push[] = "PUSH {\"jid\":\"sneak\",\"jobtype\":\"x\"}\r\n";
    char hi[256], *buf;
    size_t len;
    int fd = raw_hi(port, hi, sizeof(hi));

    assert_non_null(strstr(hi, "\"s\":\"")); /* HI carries a salt */
    assert_true(write(fd, hello, strlen(hello)) > 0);
    (void)!write(fd, push, sizeof(push) - 1); /* may meet the close */
    buf = read_to_end(fd, &len);
    close(fd);
    assert_string_equal(buf, "-ERR invalid password\r\n");
    free(buf);
}

static void
test_fwp_password(void **state)
{
    struct fx *f = *state;
    struct zn_fwp_client_opts o = {.addr = f->srv.addr, .password = "wrong"};
    struct zn_fwp_client *c = NULL;
    struct zn_err err;
    char hello[128];
    int rc;

    rc = zn_fwp_client_connect(&o, &c, &err);
    if (!f->password) {
        /* No password set: any client gets in. */
        assert_int_equal(rc, 0);
        zn_fwp_client_free(c);
        return;
    }
    assert_int_equal(rc, ZN_EAUTH);
    o.password = NULL;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EAUTH);
    expect_hello_refused("HELLO {\"v\":2}\r\n", f->srv.port);
    snprintf(hello, sizeof(hello), "HELLO {\"v\":2,\"pwdhash\":\"%064d\"}\r\n",
             0);
    expect_hello_refused(hello, f->srv.port);
}

/* Every test runs twice: on a server without and with a password. */
#define FWP_TESTS(X)                              \
    X(test_fwp_push_fetch_ack)                    \
    X(test_fwp_push_refusals)                     \
    X(test_fwp_pushb_reports_refused)             \
    X(test_fwp_fetch_order_and_queues)            \
    X(test_fwp_fetch_blocks_then_wakes)           \
    X(test_fwp_fail_retry_then_dead)              \
    X(test_fwp_worker_gone_requeues_at_once)      \
    X(test_fwp_lease_expiry)                      \
    X(test_fwp_scheduled_job_waits)               \
    X(test_fwp_unique_for)                        \
    X(test_fwp_queue_pause_resume_remove)         \
    X(test_fwp_beat_and_info)                     \
    X(test_fwp_flush)                             \
    X(test_fwp_errors_keep_connection)            \
    X(test_fwp_end_closes)                        \
    X(test_fwp_half_close_answers_everything)     \
    X(test_fwp_big_pages_and_full_output)         \
    X(test_fwp_password)

#define OPEN(t) cmocka_unit_test_setup_teardown(t, setup_open, teardown),
#define WITH_PW(t) cmocka_unit_test_setup_teardown(t, setup_pw, teardown),

static const struct CMUnitTest tests_open[] = {FWP_TESTS(OPEN)};
static const struct CMUnitTest tests_pw[] = {FWP_TESTS(WITH_PW)};

int
main(void)
{
    int failed = 0;

    failed += cmocka_run_group_tests_name("fwp without password", tests_open,
                                          NULL, NULL);
    failed += cmocka_run_group_tests_name("fwp with password", tests_pw, NULL,
                                          NULL);
    return failed ? 1 : 0;
}
