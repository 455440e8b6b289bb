/*
 * test_job.c - the job model and its JSON codec (src/queue/job.c,
 * src/queue/job_codec.c): parsing, its validation and limits, encoding,
 * round trips, backoff lists, unique keys, dup and state names. The time
 * parsing the codec relies on (src/common/clock.c) and the jid maker are
 * tested in test_clock.c.
 *
 * Every validation rule of zn_job_parse has a row in bad_cases[] that
 * checks the code and the whole message, which always begins with the
 * field it is about.
 */
#include "compat.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/json_plain.h"
#include "queue/job.h"

#define NOW_MS 1767323045000LL /* 2026-01-02T03:04:05Z */
#define NOW_TEXT "2026-01-02T03:04:05.000Z"

/* A job with every field the parser reads, spelled the long way. */
static const char full_job[] =
    "{ \"jid\": \"j-1\", \"jobtype\": \"Send.Mail\",\n"
    "  \"args\": [ 1, \"two\", { \"three\": 3.5 }, null ],\n"
    "  \"queue\": \"mail:high\", \"at\": \"2026-01-02T05:04:05.250+02:00\",\n"
    "  \"created_at\": \"2026-01-01T00:00:00Z\", \"priority\": 9,\n"
    "  \"retry\": 7, \"reserve_for\": 600, \"backtrace\": 12,\n"
    "  \"tags\": [\"mail\", \"vip\"], \"backoff\": [5, 50, 500],\n"
    "  \"unique_for\": 3600, \"custom\": { \"trace\": \"abc\" } }";

/* Its encoding, without the closing brace. */
#define FULL_FIELDS                                                        \
    "{\"jid\":\"j-1\",\"queue\":\"mail:high\",\"jobtype\":\"Send.Mail\","    \
    "\"args\":[1,\"two\",{\"three\":3.5},null],"                           \
    "\"created_at\":\"2026-01-01T00:00:00.000Z\","                         \
    "\"at\":\"2026-01-02T03:04:05.250Z\",\"priority\":9,\"retry\":7,"      \
    "\"reserve_for\":600,\"backtrace\":12,\"tags\":[\"mail\",\"vip\"],"    \
    "\"backoff\":[5,50,500],\"unique_for\":3600,"                          \
    "\"custom\":{\"trace\":\"abc\"}"
#define FULL_ENCODED FULL_FIELDS "}"

static int
parse_lim(const char *json, const struct zn_job_limits *lim,
          struct zn_job **out, struct zn_err *err)
{
    return zn_job_parse(json, strlen(json), lim, NOW_MS, out, err);
}

static int
parse_str(const char *json, struct zn_job **out, struct zn_err *err)
{
    struct zn_job_limits lim;

    zn_job_limits_default(&lim);
    return parse_lim(json, &lim, out, err);
}

static struct zn_job *
must_parse(const char *json)
{
    struct zn_err err = {0, ""};
    struct zn_job *job = NULL;
    int rc = parse_str(json, &job, &err);

    if (rc != 0)
        print_message("parse of %s failed: %s\n", json, err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(job);
    return job;
}

/* Parses json, which must fail with code and exactly msg. */
static void
expect_error(const char *json, const struct zn_job_limits *lim, int code,
             const char *msg)
{
    struct zn_job sentinel;
    struct zn_job *job = &sentinel;
    struct zn_err err = {0, ""};
    struct zn_job_limits def;
    int rc;

    if (!lim) {
        zn_job_limits_default(&def);
        lim = &def;
    }
    rc = parse_lim(json, lim, &job, &err);
    if (rc != code || strcmp(err.msg, msg) != 0)
        print_message("input: %s\n", json);
    assert_int_equal(rc, code);
    assert_string_equal(err.msg, msg);
    assert_ptr_equal(job, &sentinel); /* *out untouched */
}

/* Joins n copies of item with sep between them into a malloc'd string. */
static char *
repeat(const char *item, const char *sep, size_t n)
{
    size_t li = strlen(item), ls = strlen(sep), len = 0;
    char *s = malloc(n * (li + ls) + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            memcpy(s + len, sep, ls);
            len += ls;
        }
        memcpy(s + len, item, li);
        len += li;
    }
    s[len] = '\0';
    return s;
}

/* "{...prefix<value>suffix...}" built into a malloc'd string. */
static char *
wrap(const char *prefix, const char *value, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(value) + strlen(suffix) + 1;
    char *s = malloc(n);

    assert_non_null(s);
    snprintf(s, n, "%s%s%s", prefix, value, suffix);
    return s;
}

static void
test_job_parse_fills_every_field(void **state)
{
    struct zn_job *job = must_parse(full_job);

    (void)state;
    assert_string_equal(job->jid, "j-1");
    assert_string_equal(job->jobtype, "Send.Mail");
    assert_string_equal(job->args, "[1,\"two\",{\"three\":3.5},null]");
    assert_string_equal(job->queue, "mail:high");
    assert_int_equal(job->at, NOW_MS + 250);
    assert_int_equal(job->created_at, 1767225600000LL);
    assert_int_equal(job->enqueued_at, 0);
    assert_int_equal(job->priority, 9);
    assert_int_equal(job->retry, 7);
    assert_int_equal(job->reserve_for, 600);
    assert_int_equal(job->backtrace_lines, 12);
    assert_int_equal(job->ntags, 2);
    assert_string_equal(job->tags[0], "mail");
    assert_string_equal(job->tags[1], "vip");
    assert_int_equal(job->nbackoff, 3);
    assert_int_equal(job->backoff[0], 5);
    assert_int_equal(job->backoff[1], 50);
    assert_int_equal(job->backoff[2], 500);
    assert_int_equal(job->unique_for, 3600);
    assert_string_equal(job->custom, "{\"trace\":\"abc\"}");
    assert_int_equal(job->state, ZN_STATE_ENQUEUED);
    zn_job_free(job);
}

/* Args and custom of any size come back as compact JSON, whole. */
static void
test_job_parse_keeps_long_blobs(void **state)
{
    /* Around dump_compact's 512-byte buffer: args add 6, custom 8. */
    static const size_t sizes[] = {0, 480, 503, 504, 505, 506, 507, 4000};
    char *json = malloc(16384), *want = malloc(8192), *pad = malloc(8192);

    (void)state;
    assert_non_null(json);
    assert_non_null(want);
    assert_non_null(pad);
    for (size_t i = 0; i < ZN_ARRAY_LEN(sizes); i++) {
        struct zn_job *job;

        memset(pad, 'x', sizes[i]);
        pad[sizes[i]] = '\0';
        snprintf(json, 16384, "{\"jobtype\": \"t\", \"args\": [ \"%s\", 1 ],"
                 " \"custom\": { \"k\": \"%s\" }}", pad, pad);
        job = must_parse(json);
        snprintf(want, 8192, "[\"%s\",1]", pad);
        assert_string_equal(job->args, want);
        snprintf(want, 8192, "{\"k\":\"%s\"}", pad);
        assert_string_equal(job->custom, want);
        zn_job_free(job);
    }
    free(json);
    free(want);
    free(pad);
}

static void
test_job_parse_applies_defaults(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"x\"}");

    (void)state;
    assert_string_equal(job->jid, ""); /* the engine makes one */
    assert_string_equal(job->jobtype, "x");
    assert_string_equal(job->args, "[]");
    assert_string_equal(job->queue, "default");
    assert_int_equal(job->at, 0);
    assert_int_equal(job->created_at, NOW_MS);
    assert_int_equal(job->enqueued_at, 0);
    assert_int_equal(job->priority, 5);
    assert_int_equal(job->retry, ZN_JOB_RETRY_UNSET);
    assert_int_equal(job->reserve_for, 0);
    assert_int_equal(job->backtrace_lines, 0);
    assert_int_equal(job->ntags, 0);
    assert_null(job->tags);
    assert_int_equal(job->nbackoff, 0);
    assert_int_equal(job->unique_for, 0);
    assert_null(job->custom);
    assert_null(job->worker);
    assert_null(job->failure.errtype);
    assert_int_equal(job->state, ZN_STATE_ENQUEUED);
    zn_job_free(job);
}

/* Faktory's Go client sends "args": null for a job without arguments. */
static void
test_job_parse_null_means_default(void **state)
{
    struct zn_job *job = must_parse(
        "{\"jobtype\":\"x\",\"jid\":null,\"args\":null,\"queue\":null,"
        "\"at\":null,\"created_at\":null,\"priority\":null,\"retry\":null,"
        "\"reserve_for\":null,\"timeout\":null,\"backtrace\":null,"
        "\"custom\":null,\"tags\":null,\"backoff\":null,"
        "\"unique_for\":null}");

    (void)state;
    assert_string_equal(job->jid, "");
    assert_string_equal(job->args, "[]");
    assert_string_equal(job->queue, "default");
    assert_int_equal(job->at, 0);
    assert_int_equal(job->created_at, NOW_MS);
    assert_int_equal(job->priority, 5);
    assert_int_equal(job->retry, ZN_JOB_RETRY_UNSET);
    assert_int_equal(job->reserve_for, 0);
    assert_int_equal(job->backtrace_lines, 0);
    assert_null(job->custom);
    assert_int_equal(job->ntags, 0);
    assert_int_equal(job->nbackoff, 0);
    assert_int_equal(job->unique_for, 0);
    zn_job_free(job);

    /* A null at the top level falls back to custom like a missing one. */
    job = must_parse("{\"jobtype\":\"x\",\"tags\":null,"
                     "\"custom\":{\"tags\":[\"c\"]}}");
    assert_int_equal(job->ntags, 1);
    assert_string_equal(job->tags[0], "c");
    zn_job_free(job);
}

static void
test_job_parse_empty_times_mean_now(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"x\",\"at\":\"\","
                                    "\"created_at\":\"\"}");

    (void)state;
    assert_int_equal(job->at, 0);
    assert_int_equal(job->created_at, NOW_MS);
    zn_job_free(job);
}

static void
test_job_parse_reads_own_fields_from_custom(void **state)
{
    const char *json =
        "{\"jobtype\":\"x\",\"custom\":{\"tags\":[\"a\",\"b\"],"
        "\"backoff\":[1,2],\"unique_for\":60,\"timeout\":120,\"k\":[1]}}";
    struct zn_job *job = must_parse(json);

    (void)state;
    assert_int_equal(job->ntags, 2);
    assert_string_equal(job->tags[0], "a");
    assert_string_equal(job->tags[1], "b");
    assert_int_equal(job->nbackoff, 2);
    assert_int_equal(job->backoff[0], 1);
    assert_int_equal(job->backoff[1], 2);
    assert_int_equal(job->unique_for, 60);
    assert_int_equal(job->reserve_for, 120);
    /* custom is kept whole, our fields included. */
    assert_string_equal(job->custom,
                        "{\"tags\":[\"a\",\"b\"],\"backoff\":[1,2],"
                        "\"unique_for\":60,\"timeout\":120,\"k\":[1]}");
    zn_job_free(job);

    job = must_parse("{\"jobtype\":\"x\",\"custom\":{\"backoff\":\"7, 8\"}}");
    assert_int_equal(job->nbackoff, 2);
    assert_int_equal(job->backoff[0], 7);
    assert_int_equal(job->backoff[1], 8);
    zn_job_free(job);
}

static void
test_job_parse_prefers_top_level_over_custom(void **state)
{
    struct zn_job *job = must_parse(
        "{\"jobtype\":\"x\",\"tags\":[\"top\"],\"backoff\":\"5\","
        "\"unique_for\":1,\"reserve_for\":30,\"timeout\":40,"
        "\"custom\":{\"tags\":[\"c\"],\"backoff\":[9],\"unique_for\":2,"
        "\"timeout\":50}}");

    (void)state;
    assert_int_equal(job->ntags, 1);
    assert_string_equal(job->tags[0], "top");
    assert_int_equal(job->nbackoff, 1);
    assert_int_equal(job->backoff[0], 5);
    assert_int_equal(job->unique_for, 1);
    assert_int_equal(job->reserve_for, 30); /* reserve_for beats timeout */
    zn_job_free(job);

    job = must_parse("{\"jobtype\":\"x\",\"timeout\":40,"
                     "\"custom\":{\"timeout\":50}}");
    assert_int_equal(job->reserve_for, 40);
    zn_job_free(job);

    /*
     * But a top-level value the encoder leaves out counts as absent, so
     * the job's encoding (which keeps custom) parses to the same job.
     */
    job = must_parse("{\"jobtype\":\"x\",\"tags\":[],\"backoff\":[],"
                     "\"unique_for\":0,\"custom\":{\"tags\":[\"c\"],"
                     "\"backoff\":[9],\"unique_for\":2}}");
    assert_int_equal(job->ntags, 1);
    assert_string_equal(job->tags[0], "c");
    assert_int_equal(job->nbackoff, 1);
    assert_int_equal(job->backoff[0], 9);
    assert_int_equal(job->unique_for, 2);
    zn_job_free(job);
}

static void
test_job_parse_backoff_string(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"x\","
                                    "\"backoff\":\"10,30,60\"}");

    (void)state;
    assert_int_equal(job->nbackoff, 3);
    assert_int_equal(job->backoff[0], 10);
    assert_int_equal(job->backoff[1], 30);
    assert_int_equal(job->backoff[2], 60);
    zn_job_free(job);

    job = must_parse("{\"jobtype\":\"x\",\"backoff\":[]}");
    assert_int_equal(job->nbackoff, 0); /* empty: the config's list */
    zn_job_free(job);
}

static void
test_job_parse_ignores_unknown_and_state_fields(void **state)
{
    struct zn_job *job = must_parse(
        "{\"jobtype\":\"x\",\"enqueued_at\":\"2020-01-01T00:00:00Z\","
        "\"state\":\"dead\",\"attempts\":9,\"worker\":\"w\","
        "\"failure\":{\"errtype\":\"E\"},\"whatever\":[1,{}]}");

    (void)state;
    assert_int_equal(job->enqueued_at, 0);
    assert_int_equal(job->state, ZN_STATE_ENQUEUED);
    assert_int_equal(job->attempts, 0);
    assert_null(job->worker);
    assert_null(job->failure.errtype);
    zn_job_free(job);
}

static void
test_job_parse_duplicate_keys_last_wins(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"a\",\"jobtype\":\"b\"}");

    (void)state;
    assert_string_equal(job->jobtype, "b");
    zn_job_free(job);
}

static void
test_job_parse_keeps_args_compact_and_exact(void **state)
{
    struct zn_job *job = must_parse(
        "{ \"jobtype\" : \"x\" , \"args\" : [ 9007199254740993 ,\n"
        "  -9223372036854775808, 9223372036854775807, \"\\u00e9\\n\","
        " { \"k\" : [ ] } , true ] }");

    (void)state;
    assert_string_equal(job->args,
                        "[9007199254740993,-9223372036854775808,"
                        "9223372036854775807,\"\xc3\xa9\\n\",{\"k\":[]},"
                        "true]");
    zn_job_free(job);
}

/*
 * zn_job_parse reads plain JSON without jansson's tree (job_codec.c): the
 * tree reader alone must make the same job of each text, plain or not.
 */
static void
test_job_parse_plain_as_tree(void **state)
{
    static const char *const texts[] = {
        "{\"jobtype\":\"x\"}",
        "{\"jid\":\"j-1\",\"jobtype\":\"noop\",\"queue\":\"q\",\"args\":[]}",
        " { \"jobtype\" : \"caf\xc3\xa9\" , \"args\" : [ 1 , { \"a\" :"
        " [ true , null ] } , \"s t\" ] } ",
        "{\"jobtype\":\"x\",\"at\":\"2026-01-02T03:04:06Z\",\"created_at\":"
        "\"2025-12-31T23:59:59.500Z\",\"priority\":9,\"retry\":-1,"
        "\"reserve_for\":86400}",
        "{\"jobtype\":\"x\",\"at\":\"\",\"created_at\":\"\",\"queue\":null,"
        "\"args\":null,\"jid\":null,\"priority\":null}",
        "{\"jobtype\":\"x\",\"custom\":null,\"tags\":null,\"backoff\":null}",
        "{\"jobtype\":\"x\",\"enqueued_at\":\"any\",\"failure\":{\"message\":"
        "\"m\"},\"other\":[1.5]}",
        "{\"jobtype\":\"x\",\"at\":\"1969-01-01T00:00:00Z\"}",
        /* outside plain JSON or our fields: the tree reader reads these */
        "{\"jobtype\":\"x\",\"args\":[1.5,-0,\"\\u00e9\"]}",
        "{\"jobtype\":\"x\",\"custom\":{\"tags\":[\"a\"]}}",
        "{\"jobtype\":\"x\",\"tags\":[\"a\"],\"backoff\":\"1,2\"}",
        "{\"jobtype\":\"a\",\"jobtype\":\"b\"}",
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(texts); i++) {
        struct zn_job *job = must_parse(texts[i]), *tree = NULL;
        json_t *root = json_loads(texts[i], 0, NULL);
        struct zn_err err = {0, ""};
        char *a, *b;

        assert_non_null(root);
        assert_int_equal(zn_job_parse_json(root, NULL, NOW_MS, &tree, &err),
                         0);
        a = zn_job_encode(job, true);
        b = zn_job_encode(tree, true);
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b);
        free(a);
        free(b);
        zn_job_free(tree);
        zn_job_free(job);
        json_decref(root);
    }
}

static void
test_job_parse_reads_only_len_bytes(void **state)
{
    static const char text[] = "{\"jobtype\":\"x\"}";
    const size_t len = sizeof(text) - 1;
    char *buf = malloc(len); /* no NUL after it: ASan sees any overread */
    struct zn_job *job = NULL;
    struct zn_err err = {0, ""};

    (void)state;
    assert_non_null(buf);
    memcpy(buf, text, len);
    assert_int_equal(zn_job_parse(buf, len, NULL, NOW_MS, &job, &err), 0);
    assert_string_equal(job->jobtype, "x");
    zn_job_free(job);
    free(buf);

    job = NULL;
    assert_int_equal(zn_job_parse("{\"jobtype\":\"x\"}garbage", len, NULL,
                                  NOW_MS, &job, &err), 0);
    zn_job_free(job);
}

/*
 * One row per rule. Messages begin with the field, so each row also
 * checks that the field is named.
 */
static const struct bad_case {
    const char *json;
    const char *msg;
} bad_cases[] = {
    {"[]", "job: must be a JSON object"},
    {"42", "job: must be a JSON object"},
    {"\"job\"", "job: must be a JSON object"},
    {"null", "job: must be a JSON object"},
    /* jid */
    {"{\"jobtype\":\"x\",\"jid\":5}",
     "jid: must be a string of 1 to 64 printable ASCII characters without "
     "spaces"},
    {"{\"jobtype\":\"x\",\"jid\":\"\"}",
     "jid: must be a string of 1 to 64 printable ASCII characters without "
     "spaces"},
    {"{\"jobtype\":\"x\",\"jid\":\"a b\"}",
     "jid: must be a string of 1 to 64 printable ASCII characters without "
     "spaces"},
    {"{\"jobtype\":\"x\",\"jid\":\"\\u00e9\"}",
     "jid: must be a string of 1 to 64 printable ASCII characters without "
     "spaces"},
    {"{\"jobtype\":\"x\",\"jid\":\"a\\tb\"}",
     "jid: must be a string of 1 to 64 printable ASCII characters without "
     "spaces"},
    /* jobtype */
    {"{\"args\":[]}", "jobtype: must be a string of 1 to 256 bytes"},
    {"{\"jobtype\":\"\"}", "jobtype: must be a string of 1 to 256 bytes"},
    {"{\"jobtype\":7}", "jobtype: must be a string of 1 to 256 bytes"},
    {"{\"jobtype\":null}", "jobtype: must be a string of 1 to 256 bytes"},
    {"{\"jobtype\":[\"x\"]}", "jobtype: must be a string of 1 to 256 bytes"},
    /* args */
    {"{\"jobtype\":\"x\",\"args\":\"a\"}", "args: must be an array"},
    {"{\"jobtype\":\"x\",\"args\":{}}", "args: must be an array"},
    {"{\"jobtype\":\"x\",\"args\":1}", "args: must be an array"},
    /* queue */
    {"{\"jobtype\":\"x\",\"queue\":\"a b\"}",
     "queue: 'a b' does not match [A-Za-z0-9_.:-]{1,100}"},
    {"{\"jobtype\":\"x\",\"queue\":\"\"}",
     "queue: '' does not match [A-Za-z0-9_.:-]{1,100}"},
    {"{\"jobtype\":\"x\",\"queue\":\"a/b\"}",
     "queue: 'a/b' does not match [A-Za-z0-9_.:-]{1,100}"},
    {"{\"jobtype\":\"x\",\"queue\":\"a\\nb\"}", /* stays one line */
     "queue: 'a?b' does not match [A-Za-z0-9_.:-]{1,100}"},
    {"{\"jobtype\":\"x\",\"queue\":5}",
     "queue: must be a string matching [A-Za-z0-9_.:-]{1,100}"},
    /* at */
    {"{\"jobtype\":\"x\",\"at\":\"tomorrow\"}",
     "at: 'tomorrow' is not an RFC 3339 time"},
    {"{\"jobtype\":\"x\",\"at\":\"2026-01-02T03:04:05\"}",
     "at: '2026-01-02T03:04:05' is not an RFC 3339 time"},
    {"{\"jobtype\":\"x\",\"at\":1767323045}",
     "at: must be an RFC 3339 time string"},
    {"{\"jobtype\":\"x\",\"at\":\"0000-01-01T00:00:00+00:01\"}",
     "at: '0000-01-01T00:00:00+00:01' is outside the years 0000 to 9999 "
     "UTC"},
    /* created_at */
    {"{\"jobtype\":\"x\",\"created_at\":\"yesterday\"}",
     "created_at: 'yesterday' is not an RFC 3339 time"},
    {"{\"jobtype\":\"x\",\"created_at\":true}",
     "created_at: must be an RFC 3339 time string"},
    {"{\"jobtype\":\"x\",\"created_at\":\"9999-12-31T23:59:59-00:01\"}",
     "created_at: '9999-12-31T23:59:59-00:01' is outside the years 0000 to "
     "9999 UTC"},
    /* priority */
    {"{\"jobtype\":\"x\",\"priority\":0}",
     "priority: must be an integer from 1 to 9"},
    {"{\"jobtype\":\"x\",\"priority\":10}",
     "priority: must be an integer from 1 to 9"},
    {"{\"jobtype\":\"x\",\"priority\":\"5\"}",
     "priority: must be an integer from 1 to 9"},
    {"{\"jobtype\":\"x\",\"priority\":5.0}",
     "priority: must be an integer from 1 to 9"},
    {"{\"jobtype\":\"x\",\"priority\":true}",
     "priority: must be an integer from 1 to 9"},
    /* retry */
    {"{\"jobtype\":\"x\",\"retry\":-2}",
     "retry: must be an integer from -1 to 1000"},
    {"{\"jobtype\":\"x\",\"retry\":1001}",
     "retry: must be an integer from -1 to 1000"},
    {"{\"jobtype\":\"x\",\"retry\":1.0}",
     "retry: must be an integer from -1 to 1000"},
    {"{\"jobtype\":\"x\",\"retry\":false}",
     "retry: must be an integer from -1 to 1000"},
    {"{\"jobtype\":\"x\",\"retry\":9223372036854775807}",
     "retry: must be an integer from -1 to 1000"},
    /* reserve_for and its timeout aliases */
    {"{\"jobtype\":\"x\",\"reserve_for\":0}",
     "reserve_for: must be an integer from 1 to 86400"},
    {"{\"jobtype\":\"x\",\"reserve_for\":86401}",
     "reserve_for: must be an integer from 1 to 86400"},
    {"{\"jobtype\":\"x\",\"reserve_for\":\"300\"}",
     "reserve_for: must be an integer from 1 to 86400"},
    {"{\"jobtype\":\"x\",\"timeout\":0}",
     "timeout: must be an integer from 1 to 86400"},
    {"{\"jobtype\":\"x\",\"custom\":{\"timeout\":\"x\"}}",
     "custom.timeout: must be an integer from 1 to 86400"},
    /* backtrace */
    {"{\"jobtype\":\"x\",\"backtrace\":-1}",
     "backtrace: must be an integer from 0 to 1000"},
    {"{\"jobtype\":\"x\",\"backtrace\":1001}",
     "backtrace: must be an integer from 0 to 1000"},
    {"{\"jobtype\":\"x\",\"backtrace\":true}",
     "backtrace: must be an integer from 0 to 1000"},
    /* custom */
    {"{\"jobtype\":\"x\",\"custom\":[]}", "custom: must be an object"},
    {"{\"jobtype\":\"x\",\"custom\":\"x\"}", "custom: must be an object"},
    /* tags */
    {"{\"jobtype\":\"x\",\"tags\":\"a\"}",
     "tags: must be an array of at most 32 strings"},
    {"{\"jobtype\":\"x\",\"tags\":[\"a\",1]}",
     "tags[1]: must be a string of 1 to 128 bytes"},
    {"{\"jobtype\":\"x\",\"tags\":[\"\"]}",
     "tags[0]: must be a string of 1 to 128 bytes"},
    {"{\"jobtype\":\"x\",\"custom\":{\"tags\":[null]}}",
     "custom.tags[0]: must be a string of 1 to 128 bytes"},
    {"{\"jobtype\":\"x\",\"tags\":5,\"custom\":{\"tags\":[\"a\"]}}",
     "tags: must be an array of at most 32 strings"},
    /* backoff */
    {"{\"jobtype\":\"x\",\"backoff\":[-1]}",
     "backoff[0]: must be an integer from 0 to 31536000"},
    {"{\"jobtype\":\"x\",\"backoff\":[1,31536001]}",
     "backoff[1]: must be an integer from 0 to 31536000"},
    {"{\"jobtype\":\"x\",\"backoff\":[1.5]}",
     "backoff[0]: must be an integer from 0 to 31536000"},
    {"{\"jobtype\":\"x\",\"backoff\":{}}",
     "backoff: must be an array of at most 32 integers or a string like "
     "\"10,30,60\""},
    {"{\"jobtype\":\"x\",\"backoff\":10}",
     "backoff: must be an array of at most 32 integers or a string like "
     "\"10,30,60\""},
    {"{\"jobtype\":\"x\",\"backoff\":\"10,x\"}",
     "backoff: '10,x' is not a list of at most 32 values from 0 to 31536000 "
     "seconds like 10,30,60"},
    {"{\"jobtype\":\"x\",\"backoff\":\"\"}",
     "backoff: '' is not a list of at most 32 values from 0 to 31536000 "
     "seconds like 10,30,60"},
    {"{\"jobtype\":\"x\",\"custom\":{\"backoff\":\"1,99999999\"}}",
     "custom.backoff: '1,99999999' is not a list of at most 32 values from 0 "
     "to 31536000 seconds like 10,30,60"},
    /* unique_for */
    {"{\"jobtype\":\"x\",\"unique_for\":-1}",
     "unique_for: must be an integer from 0 to 31536000"},
    {"{\"jobtype\":\"x\",\"unique_for\":31536001}",
     "unique_for: must be an integer from 0 to 31536000"},
    {"{\"jobtype\":\"x\",\"unique_for\":\"60\"}",
     "unique_for: must be an integer from 0 to 31536000"},
    {"{\"jobtype\":\"x\",\"custom\":{\"unique_for\":true}}",
     "custom.unique_for: must be an integer from 0 to 31536000"},
};

static void
test_job_parse_rejects_each_bad_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(bad_cases); i++)
        expect_error(bad_cases[i].json, NULL, ZN_EINVAL, bad_cases[i].msg);
}

static void
test_job_parse_rejects_long_strings(void **state)
{
    char *v, *json;

    (void)state;
    v = repeat("a", "", 65);
    json = wrap("{\"jobtype\":\"x\",\"jid\":\"", v, "\"}");
    expect_error(json, NULL, ZN_EINVAL, "jid: must be a string of 1 to 64 "
                 "printable ASCII characters without spaces");
    free(json);
    json = wrap("{\"jobtype\":\"x\",\"jid\":\"", v + 1, "\"}");
    zn_job_free(must_parse(json)); /* 64 is fine */
    free(json);
    free(v);

    v = repeat("t", "", 257);
    json = wrap("{\"jobtype\":\"", v, "\"}");
    expect_error(json, NULL, ZN_EINVAL,
                 "jobtype: must be a string of 1 to 256 bytes");
    free(json);
    json = wrap("{\"jobtype\":\"", v + 1, "\"}");
    zn_job_free(must_parse(json));
    free(json);
    free(v);

    /* The quoted value is cut at 40 bytes. */
    v = repeat("q", "", 101);
    json = wrap("{\"jobtype\":\"x\",\"queue\":\"", v, "\"}");
    expect_error(json, NULL, ZN_EINVAL, "queue: 'qqqqqqqqqqqqqqqqqqqqqqqqqqq"
                 "qqqqqqqqqqqqq...' does not match [A-Za-z0-9_.:-]{1,100}");
    free(json);
    json = wrap("{\"jobtype\":\"x\",\"queue\":\"", v + 1, "\"}");
    zn_job_free(must_parse(json));
    free(json);
    free(v);
}

static void
test_job_parse_rejects_long_lists(void **state)
{
    char *v, *json;

    (void)state;
    v = repeat("\"t\"", ",", 33);
    json = wrap("{\"jobtype\":\"x\",\"tags\":[", v, "]}");
    expect_error(json, NULL, ZN_EINVAL,
                 "tags: must be an array of at most 32 strings");
    free(json);
    json = wrap("{\"jobtype\":\"x\",\"tags\":[", v + 4, "]}");
    zn_job_free(must_parse(json));
    free(json);
    free(v);

    v = repeat("g", "", 129);
    json = wrap("{\"jobtype\":\"x\",\"tags\":[\"", v, "\"]}");
    expect_error(json, NULL, ZN_EINVAL,
                 "tags[0]: must be a string of 1 to 128 bytes");
    free(json);
    free(v);

    v = repeat("1", ",", 33);
    json = wrap("{\"jobtype\":\"x\",\"backoff\":[", v, "]}");
    expect_error(json, NULL, ZN_EINVAL, "backoff: must be an array of at "
                 "most 32 integers or a string like \"10,30,60\"");
    free(json);
    json = wrap("{\"jobtype\":\"x\",\"backoff\":\"", v, "\"}");
    expect_error(json, NULL, ZN_EINVAL, "backoff: '1,1,1,1,1,1,1,1,1,1,1,1,"
                 "1,1,1,1,1,1,1,1,...' is not a list of at most 32 values "
                 "from 0 to 31536000 seconds like 10,30,60");
    free(json);
    json = wrap("{\"jobtype\":\"x\",\"backoff\":[", v + 2, "]}");
    zn_job_free(must_parse(json));
    free(json);
    free(v);
}

/* A cut never splits a UTF-8 sequence: messages go into JSON replies. */
static void
test_job_parse_quotes_utf8_whole(void **state)
{
    char *v = repeat("\xc3\xa9", "", 30);
    char *json = wrap("{\"jobtype\":\"x\",\"queue\":\"a", v, "\"}");
    char *want_v = repeat("\xc3\xa9", "", 19);
    char *want = wrap("queue: 'a", want_v,
                      "...' does not match [A-Za-z0-9_.:-]{1,100}");

    (void)state;
    expect_error(json, NULL, ZN_EINVAL, want);
    free(v);
    free(json);
    free(want_v);
    free(want);
}

static void
test_job_parse_honours_limits(void **state)
{
    struct zn_job_limits lim;
    struct zn_err err = {0, ""};
    struct zn_job *job = NULL;

    (void)state;
    zn_job_limits_default(&lim);
    assert_int_equal(lim.max_payload, 1024 * 1024);
    assert_int_equal(lim.max_jobtype, 256);
    assert_int_equal(lim.max_tags, 32);
    assert_int_equal(lim.max_tag_len, 128);

    lim.max_jobtype = 3;
    lim.max_tags = 1;
    lim.max_tag_len = 2;
    expect_error("{\"jobtype\":\"abcd\"}", &lim, ZN_EINVAL,
                 "jobtype: must be a string of 1 to 3 bytes");
    expect_error("{\"jobtype\":\"abc\",\"tags\":[\"a\",\"b\"]}", &lim,
                 ZN_EINVAL, "tags: must be an array of at most 1 strings");
    expect_error("{\"jobtype\":\"abc\",\"tags\":[\"abc\"]}", &lim, ZN_EINVAL,
                 "tags[0]: must be a string of 1 to 2 bytes");
    assert_int_equal(parse_lim("{\"jobtype\":\"abc\",\"tags\":[\"ab\"]}",
                               &lim, &job, &err), 0);
    zn_job_free(job);
}

static void
test_job_parse_refuses_big_payload_unparsed(void **state)
{
    struct zn_job_limits lim;
    struct zn_job *job = NULL;
    struct zn_err err = {0, ""};

    (void)state;
    zn_job_limits_default(&lim);
    lim.max_payload = 15; /* strlen("{\"jobtype\":\"x\"}") */
    assert_int_equal(parse_lim("{\"jobtype\":\"x\"}", &lim, &job, &err), 0);
    zn_job_free(job);
    /* Not valid JSON either: the size check comes first. */
    expect_error("{\"jobtype\":\"x\"} ", &lim, ZN_ETOOBIG,
                 "job: payload of 16 bytes is over the limit of 15 bytes");
    expect_error("{{{{{{{{{{{{{{{{{{{{", &lim, ZN_ETOOBIG,
                 "job: payload of 20 bytes is over the limit of 15 bytes");
}

static void
test_job_parse_reports_json_position(void **state)
{
    struct zn_job sentinel;
    struct zn_job *job = &sentinel;
    struct zn_err err = {0, ""};

    (void)state;
    expect_error("{\n  \"jobtype\": \"x\",\n  oops\n}", NULL, ZN_EINVAL,
                 "job: invalid JSON at line 3 column 6: string or '}' "
                 "expected near 'oops'");
    expect_error("", NULL, ZN_EINVAL,
                 "job: invalid JSON at line 1 column 0: unexpected token "
                 "near end of file");
    expect_error("{\"jobtype\":\"x\"} {}", NULL, ZN_EINVAL,
                 "job: invalid JSON at line 1 column 17: end of file "
                 "expected near '{'");
    /* Raw bytes from the input never reach the message. */
    assert_int_equal(parse_str("{\"jobtype\":\"\x01\xff\"}", &job, &err),
                     ZN_EINVAL);
    assert_ptr_equal(job, &sentinel);
    assert_true(strncmp(err.msg, "job: invalid JSON at line 1 column ",
                        35) == 0);
    for (const char *p = err.msg; *p; p++)
        assert_true(*p >= ' ' && *p <= '~');
}

/* Fails the nth jansson allocation (0: never). */
static long alloc_fail_at;
static long alloc_count;

static void *
failing_malloc(size_t n)
{
    if (alloc_fail_at && ++alloc_count == alloc_fail_at)
        return NULL;
    return malloc(n);
}

/*
 * Fails each of jansson's allocations in turn until a run needs fewer.
 * jansson 2.14 reports some of its failures as bad JSON, and its lexer
 * drops a byte when it cannot grow a buffer, so under failure any
 * EINVAL may come back; what must hold is no crash, no leak (ASan) and
 * *out untouched.
 */
static void
test_job_codec_survives_allocation_failures(void **state)
{
    static const char want[] =
        FULL_FIELDS ",\"state\":\"enqueued\",\"attempts\":0,"
        "\"failure\":{\"retry_count\":0,\"failed_at\":"
        "\"1970-01-01T00:00:00.000Z\",\"errtype\":\"E\","
        "\"backtrace\":[\"x\"]}}";
    struct zn_job *job, *base = must_parse(full_job);
    struct zn_err err;
    int rc;

    (void)state;
    base->failures = 1;
    base->failure.errtype = strdup("E");
    base->failure.backtrace = strdup("[\"x\"]");
    json_set_alloc_funcs(failing_malloc, free);
    for (alloc_fail_at = 1;; alloc_fail_at++) {
        struct zn_job sentinel;

        alloc_count = 0;
        job = &sentinel;
        zn_err_clear(&err);
        rc = parse_str(full_job, &job, &err);
        if (alloc_count < alloc_fail_at) {
            assert_int_equal(rc, 0); /* nothing failed */
            zn_job_free(job);
            break;
        }
        if (rc == 0) {
            zn_job_free(job);
            continue;
        }
        assert_ptr_equal(job, &sentinel);
        if (rc != ZN_EINVAL) {
            assert_int_equal(rc, ZN_ENOMEM);
            assert_string_equal(err.msg, "job: out of memory");
        }
    }
    for (alloc_fail_at = 1;; alloc_fail_at++) {
        char *s;

        alloc_count = 0;
        s = zn_job_encode(base, true);
        if (s)
            assert_string_equal(s, want);
        free(s);
        if (alloc_count < alloc_fail_at) {
            assert_non_null(s);
            break;
        }
    }
    json_set_alloc_funcs(malloc, free);
    alloc_fail_at = 0;
    zn_job_free(base);
}

static void
test_job_encode_minimal(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"x\"}");
    char *s = zn_job_encode(job, false);

    (void)state;
    /* No jid yet, no retry (config applies), no reserve_for, no at. */
    assert_string_equal(s, "{\"queue\":\"default\",\"jobtype\":\"x\","
                        "\"args\":[],\"created_at\":\"" NOW_TEXT "\","
                        "\"priority\":5}");
    free(s);
    zn_job_free(job);
}

/* Integers are written as "%d" writes them, at both ends of int. */
static void
test_job_encode_ints(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"x\"}");
    char *s;

    (void)state;
    job->priority = INT_MIN;
    job->retry = -1;
    job->reserve_for = INT_MAX;
    job->unique_for = 10;
    job->backoff[0] = 0;
    job->backoff[1] = -7;
    job->backoff[2] = INT32_MAX;
    job->nbackoff = 3;
    s = zn_job_encode(job, false);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"priority\":-2147483648,\"retry\":-1,"
                              "\"reserve_for\":2147483647,\"backoff\":"
                              "[0,-7,2147483647],\"unique_for\":10}"));
    free(s);
    zn_job_free(job);
}

static void
test_job_encode_full(void **state)
{
    struct zn_job *job = must_parse(full_job);
    char *s = zn_job_encode(job, false);

    (void)state;
    assert_string_equal(s, FULL_ENCODED);
    free(s);
    zn_job_free(job);
}

static void
test_job_encode_retry_state(void **state)
{
    struct zn_job *job = must_parse("{\"jid\":\"j1\",\"jobtype\":\"x\"}");
    char *s;

    (void)state;
    job->enqueued_at = NOW_MS + 1;
    job->state = ZN_STATE_RETRY;
    job->attempts = 2;
    job->failures = 2;
    job->worker = strdup("w1");
    job->quarantined = true;
    job->next_at = NOW_MS + 30000;
    job->failure.errtype = strdup("RuntimeError");
    job->failure.message = strdup("boom");
    job->failure.backtrace = strdup("[\"a.rb:1\",\"b.rb:2\"]");
    job->failure.failed_at = NOW_MS;
    s = zn_job_encode(job, true);
    assert_string_equal(
        s, "{\"jid\":\"j1\",\"queue\":\"default\",\"jobtype\":\"x\","
           "\"args\":[],\"created_at\":\"" NOW_TEXT "\","
           "\"enqueued_at\":\"2026-01-02T03:04:05.001Z\",\"priority\":5,"
           "\"state\":\"retry\",\"attempts\":2,\"worker\":\"w1\","
           "\"quarantined\":true,\"failure\":{\"retry_count\":1,"
           "\"failed_at\":\"" NOW_TEXT "\","
           "\"next_at\":\"2026-01-02T03:04:35.000Z\","
           "\"errtype\":\"RuntimeError\",\"message\":\"boom\","
           "\"backtrace\":[\"a.rb:1\",\"b.rb:2\"]}}");
    free(s);
    zn_job_free(job);
}

/*
 * Dead: no next_at, and no message or backtrace when not set; without
 * state none of it; never failed, no failure object.
 */
static void
test_job_encode_dead_state(void **state)
{
    struct zn_job *job = must_parse("{\"jid\":\"j1\",\"jobtype\":\"x\"}");
    char *s;

    (void)state;
    job->enqueued_at = NOW_MS + 1;
    job->state = ZN_STATE_DEAD;
    job->attempts = 2;
    job->failures = 2;
    job->next_at = NOW_MS + 30000;
    job->failure.errtype = strdup("RuntimeError");
    job->failure.failed_at = NOW_MS;
    s = zn_job_encode(job, true);
    assert_string_equal(
        s, "{\"jid\":\"j1\",\"queue\":\"default\",\"jobtype\":\"x\","
           "\"args\":[],\"created_at\":\"" NOW_TEXT "\","
           "\"enqueued_at\":\"2026-01-02T03:04:05.001Z\",\"priority\":5,"
           "\"state\":\"dead\",\"attempts\":2,\"failure\":{\"retry_count\":1,"
           "\"failed_at\":\"" NOW_TEXT "\",\"errtype\":\"RuntimeError\"}}");
    free(s);

    s = zn_job_encode(job, false);
    assert_string_equal(
        s, "{\"jid\":\"j1\",\"queue\":\"default\",\"jobtype\":\"x\","
           "\"args\":[],\"created_at\":\"" NOW_TEXT "\","
           "\"enqueued_at\":\"2026-01-02T03:04:05.001Z\",\"priority\":5}");
    free(s);

    zn_job_failure_release(&job->failure);
    job->state = ZN_STATE_ENQUEUED;
    job->attempts = 0;
    job->enqueued_at = 0;
    s = zn_job_encode(job, true);
    assert_string_equal(
        s, "{\"jid\":\"j1\",\"queue\":\"default\",\"jobtype\":\"x\","
           "\"args\":[],\"created_at\":\"" NOW_TEXT "\",\"priority\":5,"
           "\"state\":\"enqueued\",\"attempts\":0}");
    free(s);
    zn_job_free(job);
}

/*
 * Strings are escaped as jansson writes them and read back the same; bad
 * UTF-8 in a string fails the encoding instead of reaching the wire.
 */
static void
test_job_encode_escapes(void **state)
{
    struct zn_job *job = must_parse("{\"jid\":\"j1\",\"jobtype\":\"x\"}");
    json_t *back;
    char *s;

    (void)state;
    job->state = ZN_STATE_DEAD;
    job->failure.errtype = strdup("E\"q\\b/\n\r\t\b\f\x01\x1f\x7f\xc3\xa9");
    job->failure.failed_at = NOW_MS;
    s = zn_job_encode(job, true);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"errtype\":\"E\\\"q\\\\b/\\n\\r\\t\\b\\f"
                              "\\u0001\\u001F\x7f\xc3\xa9\""));
    back = json_loads(s, 0, NULL);
    assert_non_null(back);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(back, "failure"),
                                          "errtype")),
        job->failure.errtype);
    json_decref(back);
    free(s);
    free(job->failure.errtype);
    job->failure.errtype = strdup("bad \xff byte");
    assert_null(zn_job_encode(job, true));
    free(job->failure.errtype);
    job->failure.errtype = strdup("overlong \xc0\xaf");
    assert_null(zn_job_encode(job, true));
    zn_job_free(job);
}

/* Stored JSON text is embedded as it is when it is one value of its kind. */
static void
test_job_encode_checks_stored_text(void **state)
{
    static const char *const bad[] = {
        "[1,]", "[01]", "[\"a]", "[tru]", "[1] x", "[\"\\q\"]", "[-]",
        "[1.]", "[1e]", "[\"\\u12G4\"]", "[\"\x01\"]", "[\"\xff\"]",
        "[{\"a\" 1}]", "[{1:2}]", "[", "", " ", "[]]",
    };
    struct zn_job *job = must_parse("{\"jobtype\":\"x\"}");
    char deep[1201], *s;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        free(job->args);
        job->args = strdup(bad[i]);
        if (zn_job_encode(job, false))
            fail_msg("args '%s' encoded", bad[i]);
    }
    free(job->args);
    job->args = strdup(" [ 1 , {\"a\" : "
                       "[true,false,null,-0.5e+3,\"\\u00e9\"]} ] ");
    s = zn_job_encode(job, false);
    assert_non_null(s);
    assert_non_null(strstr(s, job->args));
    free(s);
    /* Nesting past the scanner's limit is refused, not a stack overflow. */
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    deep[1200] = '\0';
    free(job->args);
    job->args = strdup(deep);
    assert_null(zn_job_encode(job, false));
    /* Within it, the same shape is fine. */
    job->args[500] = '\0';
    memset(job->args + 250, ']', 250);
    s = zn_job_encode(job, false);
    assert_non_null(s);
    free(s);
    zn_job_free(job);
}

/* Stored JSON that no longer parses cannot be embedded. */
static void
test_job_encode_refuses_damaged_json(void **state)
{
    struct zn_job *job = must_parse("{\"jobtype\":\"x\"}");

    (void)state;
    free(job->args);
    job->args = strdup("[1,");
    assert_null(zn_job_encode(job, false));
    free(job->args);
    job->args = strdup("{}"); /* not an array */
    assert_null(zn_job_encode(job, false));
    free(job->args);
    job->args = strdup("[]");
    job->custom = strdup("[]"); /* not an object */
    assert_null(zn_job_encode(job, false));
    zn_job_free(job);
}

static void
assert_jobs_equal(const struct zn_job *a, const struct zn_job *b)
{
    assert_string_equal(a->jid, b->jid);
    assert_string_equal(a->queue, b->queue);
    assert_string_equal(a->jobtype, b->jobtype);
    assert_string_equal(a->args, b->args);
    if (a->custom || b->custom) {
        assert_non_null(a->custom);
        assert_non_null(b->custom);
        assert_string_equal(a->custom, b->custom);
    }
    assert_int_equal(a->ntags, b->ntags);
    for (size_t i = 0; i < a->ntags; i++)
        assert_string_equal(a->tags[i], b->tags[i]);
    assert_int_equal(a->nbackoff, b->nbackoff);
    for (size_t i = 0; i < a->nbackoff; i++)
        assert_int_equal(a->backoff[i], b->backoff[i]);
    assert_int_equal(a->priority, b->priority);
    assert_int_equal(a->retry, b->retry);
    assert_int_equal(a->reserve_for, b->reserve_for);
    assert_int_equal(a->unique_for, b->unique_for);
    assert_int_equal(a->backtrace_lines, b->backtrace_lines);
    assert_int_equal(a->created_at, b->created_at);
    /* An at in the past (or 1970 and before) means "now" either way. */
    assert_int_equal(a->at > 0 ? a->at : 0, b->at > 0 ? b->at : 0);
}

static void
test_job_round_trip(void **state)
{
    static const char *const inputs[] = {
        full_job,
        "{\"jobtype\":\"x\"}",
        "{\"jobtype\":\"x\",\"retry\":-1,\"at\":\"0000-01-01T00:00:00Z\","
        "\"created_at\":\"9999-12-31T23:59:59.999Z\"}",
        "{\"jobtype\":\"x\",\"timeout\":5,\"custom\":{\"tags\":[\"a\"],"
        "\"backoff\":\"1,2\",\"unique_for\":9}}",
        "{\"jobtype\":\"\\u00e9\\\"\\\\\",\"args\":[\"\\u0001\",1e300,-0.5,"
        "{\"\":[[[]]]}],\"retry\":0,\"backtrace\":0,\"unique_for\":0,"
        "\"backoff\":[0,31536000]}",
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(inputs); i++) {
        struct zn_job *a = must_parse(inputs[i]), *b;
        char *s1 = zn_job_encode(a, false), *s2;

        assert_non_null(s1);
        b = must_parse(s1);
        assert_jobs_equal(a, b);
        s2 = zn_job_encode(b, false);
        assert_string_equal(s1, s2);
        free(s1);
        free(s2);
        zn_job_free(a);
        zn_job_free(b);
    }
}

/* An encoding with state parses again: the extra fields are ignored. */
static void
test_job_round_trip_with_state(void **state)
{
    struct zn_job *a = must_parse(full_job), *b;
    char *s;

    (void)state;
    a->state = ZN_STATE_DEAD;
    a->failure.errtype = strdup("E");
    s = zn_job_encode(a, true);
    b = must_parse(s);
    assert_jobs_equal(a, b);
    assert_int_equal(b->state, ZN_STATE_ENQUEUED);
    assert_null(b->failure.errtype);
    free(s);
    zn_job_free(a);
    zn_job_free(b);
}

static void
test_job_backoff_last_value_repeats(void **state)
{
    static const int32_t cfg[] = {10, 30, 60};
    struct zn_job *job = zn_job_new();

    (void)state;
    assert_non_null(job);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 1), 10);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 2), 30);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 3), 60);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 4), 60);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 1000), 60);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 0), 10);
    assert_int_equal(zn_job_backoff_s(job, NULL, 0, 1), 0);
    zn_job_free(job);
}

static void
test_job_backoff_job_list_overrides_config(void **state)
{
    static const int32_t cfg[] = {10, 30, 60};
    struct zn_job *job = must_parse("{\"jobtype\":\"x\",\"backoff\":[5,7]}");

    (void)state;
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 1), 5);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 2), 7);
    assert_int_equal(zn_job_backoff_s(job, cfg, 3, 3), 7);
    assert_int_equal(zn_job_backoff_s(job, NULL, 0, 9), 7);
    zn_job_free(job);
}

static void
test_job_parse_backoff_accepts_lists(void **state)
{
    int32_t v[ZN_BACKOFF_MAX];
    size_t n = 99;
    char *many;

    (void)state;
    assert_int_equal(zn_job_parse_backoff("10,30,60", v, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 10);
    assert_int_equal(v[1], 30);
    assert_int_equal(v[2], 60);
    assert_int_equal(zn_job_parse_backoff(" 5 , 6 ", v, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 5);
    assert_int_equal(v[1], 6);
    assert_int_equal(zn_job_parse_backoff("0", v, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 0);
    assert_int_equal(zn_job_parse_backoff("31536000", v, &n, NULL), 0);
    assert_int_equal(v[0], 31536000);
    many = repeat("2", ",", ZN_BACKOFF_MAX);
    assert_int_equal(zn_job_parse_backoff(many, v, &n, NULL), 0);
    assert_int_equal(n, ZN_BACKOFF_MAX);
    free(many);
}

static void
test_job_parse_backoff_rejects_bad_lists(void **state)
{
    static const char *const bad[] = {
        "", ",", "10,", ",10", "a", "10;20", "-1", "31536001", "1.5",
        "10,,20", "99999999999999999999",
    };
    int32_t v[ZN_BACKOFF_MAX];
    struct zn_err err;
    size_t n = 99;
    char *many = repeat("2", ",", ZN_BACKOFF_MAX + 1);

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(bad); i++) {
        zn_err_clear(&err);
        if (zn_job_parse_backoff(bad[i], v, &n, &err) != ZN_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(strncmp(err.msg, "backoff: ", 9) == 0);
        assert_int_equal(n, 99); /* untouched */
    }
    assert_int_equal(zn_job_parse_backoff(many, v, &n, &err), ZN_EINVAL);
    assert_string_equal(err.msg, "backoff: more than 32 values");
    assert_int_equal(n, 99);
    free(many);
}

static void
test_job_unique_key_equal_jobs(void **state)
{
    struct zn_job *a = must_parse("{\"jid\":\"1\",\"jobtype\":\"x\","
                                  "\"args\":[1,{\"k\":2}],\"queue\":\"q\"}");
    struct zn_job *b = must_parse("{\"jid\":\"2\",\"jobtype\":\"x\","
                                  "\"args\":[ 1, {\"k\" : 2} ],"
                                  "\"queue\":\"q\",\"priority\":9}");
    char ka[65], kb[65];

    (void)state;
    zn_job_unique_key(a, ka);
    zn_job_unique_key(b, kb);
    assert_int_equal(strlen(ka), 64);
    assert_int_equal(strspn(ka, "0123456789abcdef"), 64);
    assert_string_equal(ka, kb);
    zn_job_free(a);
    zn_job_free(b);
}

static void
test_job_unique_key_differs(void **state)
{
    static const char *const others[] = {
        "{\"jobtype\":\"y\",\"args\":[1],\"queue\":\"q\"}",
        "{\"jobtype\":\"x\",\"args\":[2],\"queue\":\"q\"}",
        "{\"jobtype\":\"x\",\"args\":[1],\"queue\":\"r\"}",
        "{\"jobtype\":\"x\",\"args\":[1]}",
    };
    struct zn_job *base = must_parse("{\"jobtype\":\"x\",\"args\":[1],"
                                     "\"queue\":\"q\"}");
    struct zn_job *o;
    char kb[65], ko[65];

    (void)state;
    zn_job_unique_key(base, kb);
    for (size_t i = 0; i < ZN_ARRAY_LEN(others); i++) {
        o = must_parse(others[i]);
        zn_job_unique_key(o, ko);
        if (strcmp(kb, ko) == 0)
            fail_msg("'%s' has the key of the base job", others[i]);
        zn_job_free(o);
    }
    /* ("x", "q") against ("xq", ""): the separators keep them apart. */
    o = must_parse("{\"jobtype\":\"xq\",\"args\":[1]}");
    o->queue[0] = '\0';
    zn_job_unique_key(o, ko);
    assert_string_not_equal(kb, ko);
    zn_job_free(o);
    zn_job_free(base);
}

/*
 * "{\"jobtype\":\"x\",\"<name>\":" then depth of open, one value, closes:
 * malloc'd.
 */
static char *
nested_job(const char *name, int depth, char open, char close)
{
    size_t cap = 64 + 6 * (size_t)depth + 8, o;
    char *s = malloc(cap);

    assert_non_null(s);
    o = (size_t)snprintf(s, cap, "{\"jobtype\":\"x\",\"%s\":", name);
    for (int i = 0; i < depth; i++) {
        s[o++] = open;
        if (open == '{' && i < depth - 1)
            o += (size_t)snprintf(s + o, cap - o, "\"k\":");
    }
    for (int i = 0; i < depth; i++)
        s[o++] = close;
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

/*
 * args and custom nested as deep as a stored job can be written back are
 * accepted, and come back; one level more is refused (jansson alone reads
 * 2048), not stored to fail every fetch.
 */
static void
test_job_nesting_limit(void **state)
{
    static const struct {
        const char *name;
        char open, close;
    } blobs[] = {{"args", '[', ']'}, {"custom", '{', '}'}};
    struct zn_err err = {0};
    struct zn_job *job;
    char want[64], *text, *out;

    (void)state;
    for (size_t b = 0; b < 2; b++) {
        text = nested_job(blobs[b].name, ZN_JSON_DEPTH_MAX, blobs[b].open,
                          blobs[b].close);
        job = must_parse(text);
        out = zn_job_encode(job, false);
        assert_non_null(out);
        free(out);
        zn_job_free(job);
        free(text);
        text = nested_job(blobs[b].name, ZN_JSON_DEPTH_MAX + 1,
                          blobs[b].open, blobs[b].close);
        job = NULL;
        assert_int_equal(parse_str(text, &job, &err), ZN_EINVAL);
        assert_null(job);
        snprintf(want, sizeof(want), "%s: nested more than %d levels deep",
                 blobs[b].name, ZN_JSON_DEPTH_MAX);
        assert_string_equal(err.msg, want);
        free(text);
    }
}

static void
test_job_dup_is_deep(void **state)
{
    struct zn_job *a = must_parse(full_job), *b;
    char *sa, *sb;

    (void)state;
    a->worker = strdup("w1");
    a->failure.errtype = strdup("E");
    a->failure.message = strdup("m");
    a->failure.backtrace = strdup("[]");
    a->state = ZN_STATE_RETRY;
    a->attempts = 3;
    a->seq = 42;
    b = zn_job_dup(a);
    assert_non_null(b);
    assert_jobs_equal(a, b);
    assert_ptr_not_equal(a->jobtype, b->jobtype);
    assert_ptr_not_equal(a->args, b->args);
    assert_ptr_not_equal(a->custom, b->custom);
    assert_ptr_not_equal(a->tags, b->tags);
    assert_ptr_not_equal(a->tags[0], b->tags[0]);
    assert_ptr_not_equal(a->worker, b->worker);
    assert_ptr_not_equal(a->failure.errtype, b->failure.errtype);
    assert_int_equal(b->seq, 42);
    sa = zn_job_encode(a, true);
    sb = zn_job_encode(b, true);
    assert_string_equal(sa, sb);
    free(sa);
    free(sb);
    zn_job_free(a); /* b must not share anything with a */
    assert_string_equal(b->tags[1], "vip");
    assert_string_equal(b->failure.message, "m");
    zn_job_free(b);

    a = must_parse("{\"jobtype\":\"x\"}");
    b = zn_job_dup(a);
    assert_non_null(b);
    assert_null(b->tags);
    assert_null(b->custom);
    assert_null(b->worker);
    assert_jobs_equal(a, b);
    zn_job_free(a);
    zn_job_free(b);
    zn_job_free(NULL);
}

static void
test_job_state_names(void **state)
{
    (void)state;
    for (int s = 0; s < ZN_STATE_COUNT; s++)
        assert_int_equal(zn_job_state_parse(zn_job_state_name(s)), s);
    assert_string_equal(zn_job_state_name(ZN_STATE_RETRY), "retry");
    assert_string_equal(zn_job_state_name(ZN_STATE_COUNT), "unknown");
    assert_int_equal(zn_job_state_parse("nope"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_parse_fills_every_field),
        cmocka_unit_test(test_job_parse_keeps_long_blobs),
        cmocka_unit_test(test_job_parse_applies_defaults),
        cmocka_unit_test(test_job_parse_null_means_default),
        cmocka_unit_test(test_job_parse_empty_times_mean_now),
        cmocka_unit_test(test_job_parse_reads_own_fields_from_custom),
        cmocka_unit_test(test_job_parse_prefers_top_level_over_custom),
        cmocka_unit_test(test_job_parse_backoff_string),
        cmocka_unit_test(test_job_parse_ignores_unknown_and_state_fields),
        cmocka_unit_test(test_job_parse_duplicate_keys_last_wins),
        cmocka_unit_test(test_job_parse_keeps_args_compact_and_exact),
        cmocka_unit_test(test_job_parse_plain_as_tree),
        cmocka_unit_test(test_job_parse_reads_only_len_bytes),
        cmocka_unit_test(test_job_parse_rejects_each_bad_field),
        cmocka_unit_test(test_job_parse_rejects_long_strings),
        cmocka_unit_test(test_job_parse_rejects_long_lists),
        cmocka_unit_test(test_job_parse_quotes_utf8_whole),
        cmocka_unit_test(test_job_parse_honours_limits),
        cmocka_unit_test(test_job_parse_refuses_big_payload_unparsed),
        cmocka_unit_test(test_job_parse_reports_json_position),
        cmocka_unit_test(test_job_codec_survives_allocation_failures),
        cmocka_unit_test(test_job_encode_minimal),
        cmocka_unit_test(test_job_encode_ints),
        cmocka_unit_test(test_job_encode_full),
        cmocka_unit_test(test_job_encode_retry_state),
        cmocka_unit_test(test_job_encode_dead_state),
        cmocka_unit_test(test_job_encode_escapes),
        cmocka_unit_test(test_job_encode_checks_stored_text),
        cmocka_unit_test(test_job_encode_refuses_damaged_json),
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_job_round_trip_with_state),
        cmocka_unit_test(test_job_backoff_last_value_repeats),
        cmocka_unit_test(test_job_backoff_job_list_overrides_config),
        cmocka_unit_test(test_job_parse_backoff_accepts_lists),
        cmocka_unit_test(test_job_parse_backoff_rejects_bad_lists),
        cmocka_unit_test(test_job_unique_key_equal_jobs),
        cmocka_unit_test(test_job_unique_key_differs),
        cmocka_unit_test(test_job_nesting_limit),
        cmocka_unit_test(test_job_dup_is_deep),
        cmocka_unit_test(test_job_state_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
