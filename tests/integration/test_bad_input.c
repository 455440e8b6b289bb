/*
 * test_bad_input.c - malformed input of every kind over FWP: each gets an
 * error, the server stays up, the stored jobs do not change, and a good
 * command on the same connection still works afterwards.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MAX_LINE 65536

struct bad {
    const char *verb;
    const char *arg;  /* NULL: no argument */
    const char *want; /* a fragment of the error message */
};

static const struct bad bad_commands[] = {
    /* Unknown verbs and broken lines. */
    {"FOO", NULL, "FOO"},
    {"push", "{}", "push"},
    {"PUSHX", "{}", "PUSHX"},
    {"INFO", "now", "INFO"},
    {"FLUSH", "all", "FLUSH"},
    {"PUSH", NULL, "PUSH"},
    {"FETCH", NULL, "FETCH"},
    {"ACK", NULL, "ACK"},
    /* Truncated frames and bad JSON. */
    {"PUSH", "{\"jid\":\"t1\",\"jobtype\"", "JSON"},
    {"PUSH", "{\"jobtype\":\"x\",\"args\":[1,2", "JSON"},
    {"PUSH", "{", "JSON"},
    {"PUSH", "[", "JSON"},
    {"PUSH", "nul", "JSON"},
    {"PUSH", "\"just a string\"", "object"},
    {"PUSH", "[{\"jobtype\":\"x\"}]", "object"},
    {"PUSH", "42", "object"},
    {"PUSH", "{\"jobtype\":\"x\"} trailing", "JSON"},
    /* Wrong types and values. */
    {"PUSH", "{\"jobtype\":5}", "jobtype"},
    {"PUSH", "{\"jobtype\":\"\"}", "jobtype"},
    {"PUSH", "{\"args\":[]}", "jobtype"},
    {"PUSH", "{\"jobtype\":\"x\",\"args\":{}}", "args"},
    {"PUSH", "{\"jobtype\":\"x\",\"args\":\"a\"}", "args"},
    {"PUSH", "{\"jobtype\":\"x\",\"queue\":\"\"}", "queue"},
    {"PUSH", "{\"jobtype\":\"x\",\"queue\":\"a b\"}", "queue"},
    {"PUSH", "{\"jobtype\":\"x\",\"queue\":7}", "queue"},
    {"PUSH", "{\"jobtype\":\"x\",\"priority\":0}", "priority"},
    {"PUSH", "{\"jobtype\":\"x\",\"priority\":10}", "priority"},
    {"PUSH", "{\"jobtype\":\"x\",\"priority\":\"high\"}", "priority"},
    {"PUSH", "{\"jobtype\":\"x\",\"retry\":-2}", "retry"},
    {"PUSH", "{\"jobtype\":\"x\",\"retry\":1001}", "retry"},
    {"PUSH", "{\"jobtype\":\"x\",\"retry\":1.5}", "retry"},
    {"PUSH", "{\"jobtype\":\"x\",\"retry\":true}", "retry"},
    {"PUSH", "{\"jobtype\":\"x\",\"reserve_for\":0}", "reserve_for"},
    {"PUSH", "{\"jobtype\":\"x\",\"reserve_for\":86401}", "reserve_for"},
    {"PUSH", "{\"jobtype\":\"x\",\"at\":\"tomorrow\"}", "at"},
    {"PUSH", "{\"jobtype\":\"x\",\"at\":\"2026-02-30T00:00:00Z\"}", "at"},
    {"PUSH", "{\"jobtype\":\"x\",\"at\":12}", "at"},
    {"PUSH", "{\"jobtype\":\"x\",\"tags\":\"a\"}", "tags"},
    {"PUSH", "{\"jobtype\":\"x\",\"tags\":[1]}", "tags"},
    {"PUSH", "{\"jobtype\":\"x\",\"custom\":\"c\"}", "custom"},
    {"PUSH", "{\"jobtype\":\"x\",\"backoff\":\"a,b\"}", "backoff"},
    {"PUSH", "{\"jobtype\":\"x\",\"backoff\":[-1]}", "backoff"},
    {"PUSH", "{\"jobtype\":\"x\",\"unique_for\":-1}", "unique_for"},
    {"PUSH", "{\"jobtype\":\"x\",\"jid\":\"a b\"}", "jid"},
    {"PUSH", "{\"jobtype\":\"x\",\"jid\":5}", "jid"},
    {"PUSH", "{\"jobtype\":\"x\",\"custom\":{\"tags\":[[]]}}", "tags"},
    /* PUSHB. */
    {"PUSHB", "{\"jobtype\":\"x\"}", "array"},
    {"PUSHB", "[{\"jobtype\":\"x\"", "JSON"},
    {"PUSHB", "[\x01\xff\xfe]", "JSON"},
    {"PUSHB", "[\xc3\xa9]", "JSON"},
    {"PUSH", "{\"jobtype\":\xc3\xa9}", "JSON"},
    /* Commands in the wrong state or on unknown jobs. */
    {"HELLO", "{\"v\":2}", "HELLO"},
    {"FETCH", "default", "consumer"},
    {"ACK", "{\"jid\":\"nosuch\"}", "nosuch"},
    {"ACK", "{\"jid\":5}", "jid"},
    {"ACK", "{}", "jid"},
    {"ACK", "nope", "JSON"},
    {"FAIL", "{\"jid\":\"nosuch\"}", "nosuch"},
    {"FAIL", "{\"message\":\"m\"}", "jid"},
    {"BEAT", "{\"wid\":\"nobody\"}", "nobody"},
    {"BEAT", "{}", "wid"},
    {"QUEUE", "EXPLODE default", "QUEUE"},
    {"QUEUE", "PAUSE", "queue"},
    {"QUEUE", "PAUSE bad/name", "queue"},
    {"JOBS", "[]", "JOBS"},
    {"JOBS", "{\"state\":\"lost\"}", "state"},
    {"MUTATE", "{\"cmd\":\"explode\",\"target\":\"dead\"}", "MUTATE"},
    {"MUTATE", "{\"cmd\":\"requeue\",\"target\":\"retries\"}", "MUTATE"},
};

struct fx {
    struct zn_srv srv;
    struct zn_fwp_client *c;
    char *snapshot;
};

/* Every stored job, in every state: the data that must not change. */
static char *
snapshot(struct zn_fwp_client *c)
{
    static const char *const states[] = {"scheduled", "enqueued", "working",
                                         "retry", "dead", "done"};
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);

    for (size_t i = 0; i < ZN_ARRAY_LEN(states); i++) {
        char arg[64];
        char *r;

        snprintf(arg, sizeof(arg), "{\"state\":\"%s\"}", states[i]);
        r = zn_srv_call(c, "JOBS", arg);
        len += (size_t)snprintf(out + len, cap - len, "%s\n", r);
        free(r);
    }
    return out;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *extra[] = {"--max-line", "65536", "--max-payload", "32768",
                           NULL};

    zn_srv_start(&f->srv, extra);
    f->c = zn_srv_connect(&f->srv, NULL, NULL);
    zn_srv_push(f->c, "{\"jid\":\"keep1\",\"jobtype\":\"x\"}");
    zn_srv_push(f->c, "{\"jid\":\"keep2\",\"jobtype\":\"y\","
                      "\"queue\":\"other\",\"at\":\"2099-01-01T00:00:00Z\"}");
    f->snapshot = snapshot(f->c);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char *now;

    bool same, alive;
    int stopped;

    /*
     * The data is as it was, and the server is alive and well. The server
     * is stopped before any check fails, so a failure leaves none behind.
     */
    now = snapshot(f->c);
    same = strcmp(now, f->snapshot) == 0;
    zn_fwp_client_free(f->c);
    alive = zn_srv_alive(&f->srv);
    stopped = zn_srv_stop(&f->srv);
    zn_srv_cleanup(&f->srv);
    if (!same)
        fail_msg("the data changed:\nbefore %s\nafter  %s", f->snapshot, now);
    assert_true(alive);
    assert_int_equal(stopped, 0);
    free(now);
    free(f->snapshot);
    free(f);
    return 0;
}

/* After every bad input the same connection still serves a good command. */
static void
still_good(struct fx *f)
{
    char *r = zn_srv_call(f->c, "INFO", NULL);

    assert_non_null(strstr(r, "\"zenith\""));
    free(r);
}

static void
test_bad_input_commands(void **state)
{
    struct fx *f = *state;

    assert_true(ZN_ARRAY_LEN(bad_commands) >= 50);
    for (size_t i = 0; i < ZN_ARRAY_LEN(bad_commands); i++) {
        const struct bad *b = &bad_commands[i];
        const char *msg = zn_srv_call_err(f->c, b->verb, b->arg);

        if (!strstr(msg, b->want))
            fail_msg("%s %s: error '%s' does not mention '%s'", b->verb,
                     b->arg ? b->arg : "", msg, b->want);
        /* Raw input bytes never reach the reply. */
        for (const char *p = msg; *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                fail_msg("%s: error '%s' holds byte 0x%02x", b->verb, msg,
                         (unsigned char)*p);
        still_good(f);
    }
}

/* Raw bytes that are not a command at all. */
static void
test_bad_input_raw_bytes(void **state)
{
    static const char *const raw[] = {
        "\r\n", "   \r\n", "\x01\x02\x03\xff\xfe\r\n", "PUSH \xff\xfe{}\r\n",
        "\x16\x03\x01\x02\xfc\x03\x03\n", /* a TLS hello (NULs aside) */
        "GET / HTTP/1.1\r\n", "*1\r\n", "$5\r\n",
    };
    struct fx *f = *state;
    struct zn_err err;
    char *reply;

    for (size_t i = 0; i < ZN_ARRAY_LEN(raw); i++) {
        reply = NULL;
        assert_int_equal(zn_fwp_client_send_raw(f->c, raw[i], strlen(raw[i]),
                                                &err), 0);
        assert_int_equal(zn_fwp_client_recv(f->c, &reply, &err), ZN_EPROTO);
        free(reply);
        still_good(f);
    }
    /* A NUL byte inside a line. */
    assert_int_equal(zn_fwp_client_send_raw(f->c, "INFO\0x\r\n", 8, &err), 0);
    assert_int_equal(zn_fwp_client_recv(f->c, &reply, &err), ZN_EPROTO);
    still_good(f);
}

static void
test_bad_input_oversize_line(void **state)
{
    struct fx *f = *state;
    size_t n = 4 * MAX_LINE;
    char *line = malloc(n + 2);
    struct zn_err err;
    char *reply = NULL;

    memcpy(line, "PUSH {\"jobtype\":\"x\",\"args\":[\"", 29);
    memset(line + 29, 'a', n - 29);
    memcpy(line + n, "\r\n", 2);
    assert_int_equal(zn_fwp_client_send_raw(f->c, line, n + 2, &err), 0);
    assert_int_equal(zn_fwp_client_recv(f->c, &reply, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "too long"));
    free(line);
    still_good(f);
}

static void
test_bad_input_oversize_payload(void **state)
{
    struct fx *f = *state;
    size_t n = 40000;
    char *job = malloc(n + 64);
    const char *msg;

    memcpy(job, "{\"jobtype\":\"x\",\"args\":[\"", 24);
    memset(job + 24, 'b', n);
    memcpy(job + 24 + n, "\"]}", 4);
    msg = zn_srv_call_err(f->c, "PUSH", job);
    assert_non_null(strstr(msg, "limit"));
    free(job);
    still_good(f);
}

/* In a batch, the job over the limit is refused with its own reason. */
static void
test_bad_input_oversize_job_in_batch(void **state)
{
    struct fx *f = *state;
    size_t n = 40000;
    const char *head = "[{\"jid\":\"big\",\"jobtype\":\"x\",\"args\":[\"";
    size_t h = strlen(head);
    char *batch = malloc(h + n + 128);
    char *reply;

    assert_non_null(batch);
    memcpy(batch, head, h);
    memset(batch + h, 'b', n);
    snprintf(batch + h + n, 128, "\"]},{\"jid\":\"small\",\"jobtype\":7}]");
    reply = zn_srv_call(f->c, "PUSHB", batch);
    assert_non_null(strstr(reply, "\"big\":\"job: payload of "));
    assert_non_null(strstr(reply, "over the limit of 32768 bytes"));
    assert_non_null(strstr(reply, "\"small\":\"jobtype: "));
    free(reply);
    free(batch);
    still_good(f);
}

static void
test_bad_input_before_hello(void **state)
{
    struct fx *f = *state;
    struct zn_fwp_addr a;
    struct zn_err err;
    char buf[256] = "";
    int fd;
    ssize_t n;
    size_t len = 0;

    /* A raw socket that never says HELLO. */
    assert_int_equal(zn_fwp_parse_addr(f->srv.addr, &a, &err), 0);
    fd = zn_test_connect_raw(f->srv.port);
    assert_true(fd >= 0);
    assert_true(write(fd, "PUSH {\"jobtype\":\"x\"}\r\nHELLO {\"v\":9}\r\n",
                      37) == 37);
    while (len < sizeof(buf) - 1 && !strstr(buf, "HELLO:") &&
           (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t)n;
        buf[len] = '\0';
    }
    close(fd);
    assert_non_null(strstr(buf, "+HI"));
    assert_non_null(strstr(buf, "-ERR PUSH: say HELLO first"));
    assert_non_null(strstr(buf, "-ERR HELLO:"));
    still_good(f);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bad_input_commands),
        T(test_bad_input_raw_bytes),
        T(test_bad_input_oversize_line),
        T(test_bad_input_oversize_payload),
        T(test_bad_input_oversize_job_in_batch),
        T(test_bad_input_before_hello),
    };

    return cmocka_run_group_tests_name("bad input", tests, NULL, NULL);
}
