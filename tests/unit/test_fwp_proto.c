/*
 * test_fwp_proto.c - the FWP text layer: command lines, the JSON arguments
 * of HELLO/ACK/FAIL/BEAT, queue lists, the password hash, addresses and
 * the RESP reply reader. Bad inputs are tables: each row gives the input,
 * the expected code and a fragment the message must contain, so a wrong
 * or vague message fails as surely as a wrong code.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fwp/proto.h"
#include "queue/job.h"

struct bad_case {
    const char *in;
    size_t len;
    int code;
    const char *frag;
};

/* sizeof keeps embedded NUL bytes in the input. */
#define BAD(s, c, f) {(s), sizeof(s) - 1, (c), (f)}

typedef int (*parse_fn)(const char *in, size_t len, struct zn_err *err);

static void
check_err(size_t i, const char *in, int rc, int code, const char *frag,
          const struct zn_err *err)
{
    if (rc != code)
        fail_msg("case %zu '%s': code %d (%s), expected %d (%s); msg '%s'", i,
                 in, rc, zn_err_name(rc), code, zn_err_name(code), err->msg);
    if (!strstr(err->msg, frag))
        fail_msg("case %zu '%s': message '%s' lacks '%s'", i, in, err->msg,
                 frag);
}

static void
run_bad(const struct bad_case *cases, size_t n, parse_fn fn)
{
    for (size_t i = 0; i < n; i++) {
        struct zn_err err = {0};
        int rc = fn(cases[i].in, cases[i].len, &err);

        check_err(i, cases[i].in, rc, cases[i].code, cases[i].frag, &err);
    }
}

/* ---- command lines ----------------------------------------------------- */

static void
test_fwp_proto_parse_line_every_verb(void **state)
{
    static const struct {
        const char *line;
        enum zn_fwp_verb verb;
        const char *arg;
    } cases[] = {
        {"HELLO {\"v\":2}", ZN_FWP_HELLO, "{\"v\":2}"},
        {"PUSH {\"jobtype\":\"x\"}", ZN_FWP_PUSH, "{\"jobtype\":\"x\"}"},
        {"PUSHB [{}]", ZN_FWP_PUSHB, "[{}]"},
        {"FETCH critical default", ZN_FWP_FETCH, "critical default"},
        {"ACK {\"jid\":\"a\"}", ZN_FWP_ACK, "{\"jid\":\"a\"}"},
        {"FAIL {\"jid\":\"a\"}", ZN_FWP_FAIL, "{\"jid\":\"a\"}"},
        {"BEAT {\"wid\":\"w\"}", ZN_FWP_BEAT, "{\"wid\":\"w\"}"},
        {"INFO", ZN_FWP_INFO, NULL},
        {"FLUSH", ZN_FWP_FLUSH, NULL},
        {"QUEUE PAUSE a b", ZN_FWP_QUEUE, "PAUSE a b"},
        {"END", ZN_FWP_END, NULL},
        {"END   ", ZN_FWP_END, NULL},
        {"ACK  {}", ZN_FWP_ACK, " {}"},
        {"CONTROL {\"cmd\":\"restart\"}", ZN_FWP_CONTROL,
         "{\"cmd\":\"restart\"}"},
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        struct zn_fwp_cmd cmd;
        struct zn_err err = {0};
        int rc = zn_fwp_parse_line(cases[i].line, strlen(cases[i].line), &cmd,
                                   &err);

        if (rc != 0)
            fail_msg("'%s': %s", cases[i].line, err.msg);
        assert_int_equal(cmd.verb, cases[i].verb);
        assert_string_equal(zn_fwp_verb_name(cmd.verb),
                            zn_fwp_verb_name(cases[i].verb));
        if (!cases[i].arg) {
            assert_null(cmd.arg);
            assert_int_equal(cmd.arg_len, 0);
        } else {
            assert_int_equal(cmd.arg_len, strlen(cases[i].arg));
            assert_memory_equal(cmd.arg, cases[i].arg, cmd.arg_len);
        }
    }
}

static void
test_fwp_proto_verb_names(void **state)
{
    (void)state;
    assert_string_equal(zn_fwp_verb_name(ZN_FWP_HELLO), "HELLO");
    assert_string_equal(zn_fwp_verb_name(ZN_FWP_PUSHB), "PUSHB");
    assert_string_equal(zn_fwp_verb_name(ZN_FWP_END), "END");
    assert_string_equal(zn_fwp_verb_name(ZN_FWP_VERB_COUNT), "UNKNOWN");
    assert_string_equal(zn_fwp_verb_name((enum zn_fwp_verb)-1), "UNKNOWN");
}

static void
test_fwp_proto_parse_line_crlf(void **state)
{
    static const char *const lines[] = {
        "ACK {}\r\n", "ACK {}\n", "ACK {}\r", "ACK {}",
    };
    struct zn_fwp_cmd cmd;
    struct zn_err err = {0};

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(lines); i++) {
        assert_int_equal(zn_fwp_parse_line(lines[i], strlen(lines[i]), &cmd,
                                           &err), 0);
        assert_int_equal(cmd.verb, ZN_FWP_ACK);
        assert_int_equal(cmd.arg_len, 2);
        assert_memory_equal(cmd.arg, "{}", 2);
    }
    assert_int_equal(zn_fwp_parse_line("INFO\r\n", 6, &cmd, &err), 0);
    assert_int_equal(cmd.verb, ZN_FWP_INFO);
    assert_null(cmd.arg);
    /* Only the length counts: bytes past it are not looked at. */
    assert_int_equal(zn_fwp_parse_line("END\nGARBAGE", 4, &cmd, &err), 0);
    assert_int_equal(cmd.verb, ZN_FWP_END);
}

static int
parse_line_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_fwp_cmd cmd;

    return zn_fwp_parse_line(in, len, &cmd, err);
}

static void
test_fwp_proto_parse_line_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("", ZN_EPROTO, "empty command"),
        BAD("\r\n", ZN_EPROTO, "empty command"),
        BAD("\n", ZN_EPROTO, "empty command"),
        BAD("\r", ZN_EPROTO, "empty command"),
        BAD("FOO", ZN_EPROTO, "unknown command 'FOO'"),
        BAD("FOO bar\r\n", ZN_EPROTO, "unknown command 'FOO'"),
        BAD("push {}", ZN_EPROTO, "unknown command 'push'"),
        BAD("Ack {}", ZN_EPROTO, "commands are uppercase: ACK"),
        BAD("end", ZN_EPROTO, "unknown command 'end'"),
        BAD(" PUSH {}", ZN_EPROTO, "unknown command ''"),
        BAD("ACK\t{}", ZN_EPROTO, "unknown command 'ACK\\x09{}'"),
        BAD("PUSH", ZN_EPROTO, "PUSH: missing argument"),
        BAD("PUSH ", ZN_EPROTO, "PUSH: missing argument"),
        BAD("PUSH   \r\n", ZN_EPROTO, "PUSH: missing argument"),
        BAD("HELLO\r\n", ZN_EPROTO, "HELLO: missing argument"),
        BAD("FETCH", ZN_EPROTO, "FETCH: missing argument"),
        BAD("ACK", ZN_EPROTO, "ACK: missing argument"),
        BAD("QUEUE", ZN_EPROTO, "QUEUE: missing argument"),
        BAD("CONTROL", ZN_EPROTO, "CONTROL: missing argument"),
        BAD("control {}", ZN_EPROTO, "unknown command"),
        BAD("INFO now", ZN_EPROTO, "INFO: takes no argument"),
        BAD("FLUSH all", ZN_EPROTO, "FLUSH: takes no argument"),
        BAD("END bye\r\n", ZN_EPROTO, "END: takes no argument"),
        BAD("ACK {\"jid\":\"a\0b\"}", ZN_EPROTO, "NUL byte"),
        BAD("\0", ZN_EPROTO, "NUL byte"),
        BAD("ACK a\rb", ZN_EPROTO, "line break"),
        BAD("ACK a\nb\n", ZN_EPROTO, "line break"),
        BAD("ACK {}\n\n", ZN_EPROTO, "line break"),
        BAD("\xff\xfe", ZN_EPROTO, "unknown command '\\xff\\xfe'"),
    };

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), parse_line_fn);
}

static void
test_fwp_proto_parse_line_long_verb(void **state)
{
    size_t n = 100000;
    char *line = malloc(n);
    struct zn_fwp_cmd cmd;
    struct zn_err err = {0};

    (void)state;
    assert_non_null(line);
    memset(line, 'A', n);
    assert_int_equal(zn_fwp_parse_line(line, n, &cmd, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "unknown command 'AAAA"));
    assert_non_null(strstr(err.msg, "...'"));
    assert_true(strlen(err.msg) < 128);
    assert_int_equal(zn_fwp_parse_line(NULL, 0, &cmd, &err), ZN_EPROTO);
    free(line);
}

/* ---- queue names ------------------------------------------------------- */

static void
test_fwp_proto_split_names(void **state)
{
    const char *s = "  critical   default mail.out:2 ";
    char *names[4];
    struct zn_err err = {0};
    int n;

    (void)state;
    n = zn_fwp_split_names(s, strlen(s), names, 4, &err);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "critical");
    assert_string_equal(names[1], "default");
    assert_string_equal(names[2], "mail.out:2");
    zn_fwp_names_free(names, (size_t)n);
    assert_int_equal(zn_fwp_split_names("   ", 3, names, 4, &err), 0);
    assert_int_equal(zn_fwp_split_names("a", 1, names, 1, &err), 1);
    zn_fwp_names_free(names, 1);
    zn_fwp_names_free(NULL, 3);
}

static int
split_fn(const char *in, size_t len, struct zn_err *err)
{
    char *names[3];

    /* On failure nothing is left allocated: ASan would see a leak. */
    return zn_fwp_split_names(in, len, names, 3, err);
}

static void
test_fwp_proto_split_names_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("a b!c", ZN_EINVAL, "queue 'b!c': must match"),
        BAD("a b c d", ZN_ETOOBIG, "too many queues (at most 3)"),
        BAD("a \xc3\xa9t\xc3\xa9", ZN_EINVAL, "queue '\\xc3\\xa9t\\xc3\\xa9'"),
        BAD("a\0b", ZN_EINVAL, "queue 'a\\x00b'"),
        BAD("a\tb", ZN_EINVAL, "queue 'a\\x09b'"),
        BAD("a*", ZN_EINVAL, "queue 'a*'"),
    };
    char longname[150];
    struct zn_err err = {0};

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), split_fn);
    memset(longname, 'q', sizeof(longname));
    assert_int_equal(split_fn(longname, 101, &err), ZN_EINVAL);
    assert_non_null(strstr(err.msg, "qqqq...'"));
}

static void
test_fwp_proto_split_names_limits(void **state)
{
    char name[ZN_QUEUE_NAME_MAX];
    char *names[1];
    struct zn_err err = {0};

    (void)state;
    memset(name, 'q', sizeof(name));
    assert_int_equal(zn_fwp_split_names(name, sizeof(name), names, 1, &err),
                     1);
    assert_int_equal(strlen(names[0]), ZN_QUEUE_NAME_MAX);
    zn_fwp_names_free(names, 1);
    assert_int_equal(zn_fwp_split_names("a", 1, names, 0, &err), ZN_ETOOBIG);
}

/* ---- HELLO ------------------------------------------------------------- */

static void
test_fwp_proto_hello_full(void **state)
{
    const char *j = "{\"v\":2,\"wid\":\"w-1\",\"hostname\":\"box\",\"pid\":42,"
                    "\"labels\":[\"a\",\"b\"],\"extra\":{\"x\":[1]},"
                    "\"pwdhash\":\"F6BA18523C6942BA1E1B54F8256527AB1B8DB944"
                    "96CF6F4A2B6DB9695C0FC6F9\"}";
    struct zn_fwp_hello h;
    struct zn_err err = {0};

    (void)state;
    assert_int_equal(zn_fwp_parse_hello(j, strlen(j), &h, &err), 0);
    assert_int_equal(h.v, 2);
    assert_string_equal(h.wid, "w-1");
    assert_string_equal(h.hostname, "box");
    assert_int_equal(h.pid, 42);
    assert_int_equal(h.nlabels, 2);
    assert_string_equal(h.labels[0], "a");
    assert_string_equal(h.labels[1], "b");
    /* Stored lowercase, so it compares with our own hex. */
    assert_string_equal(h.pwdhash, "f6ba18523c6942ba1e1b54f8256527ab1b8db944"
                                   "96cf6f4a2b6db9695c0fc6f9");
    zn_fwp_hello_release(&h);
    assert_null(h.hostname);
    zn_fwp_hello_release(NULL);
}

static void
test_fwp_proto_hello_minimal(void **state)
{
    static const char *const inputs[] = {
        "{\"v\":2}",
        " {\"v\":2} \n",
        "{\"v\":2,\"wid\":\"\",\"labels\":[]}",
        /* Go clients send null for nil slices and unset strings. */
        ("{\"v\":2,\"wid\":null,\"hostname\":null,\"pid\":null,"
         "\"labels\":null,\"pwdhash\":null}"),
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(inputs); i++) {
        struct zn_fwp_hello h;
        struct zn_err err = {0};

        if (zn_fwp_parse_hello(inputs[i], strlen(inputs[i]), &h, &err) != 0)
            fail_msg("'%s': %s", inputs[i], err.msg);
        assert_int_equal(h.v, 2);
        assert_string_equal(h.wid, "");
        assert_null(h.hostname);
        assert_int_equal(h.pid, 0);
        assert_int_equal(h.nlabels, 0);
        assert_string_equal(h.pwdhash, "");
        zn_fwp_hello_release(&h);
    }
}

static int
hello_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_fwp_hello h;
    int rc = zn_fwp_parse_hello(in, len, &h, err);

    zn_fwp_hello_release(&h);
    return rc;
}

static void
test_fwp_proto_hello_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("", ZN_EPROTO, "HELLO: invalid JSON at line 1 column"),
        BAD("{\"v\":", ZN_EPROTO, "HELLO: invalid JSON at line 1 column 5"),
        BAD("{\"v\":2} x", ZN_EPROTO, "HELLO: invalid JSON"),
        BAD("[2]", ZN_EPROTO, "HELLO: argument must be a JSON object"),
        BAD("{}", ZN_EPROTO, "HELLO: v is required"),
        BAD("{\"v\":\"2\"}", ZN_EPROTO, "HELLO: v must be an integer"),
        BAD("{\"v\":2.0}", ZN_EPROTO, "HELLO: v must be an integer"),
        BAD("{\"v\":3}", ZN_EPROTO,
            "HELLO: protocol version 3 is not supported, use 2"),
        BAD("{\"v\":-1}", ZN_EPROTO, "protocol version -1 is not supported"),
        BAD("{\"v\":99999999999999999999999}", ZN_EPROTO,
            "HELLO: invalid JSON"),
        BAD("{\"v\":2,\"v\":2}", ZN_EPROTO, "duplicate"),
        BAD("{\"v\":2,\"wid\":5}", ZN_EPROTO, "HELLO: wid must be a string"),
        BAD("{\"v\":2,\"wid\":\"a b\"}", ZN_EPROTO,
            "HELLO: wid must be 1 to 64 printable"),
        BAD("{\"v\":2,\"wid\":\"\\u00e9\"}", ZN_EPROTO, "HELLO: wid must be"),
        BAD("{\"v\":2,\"hostname\":7}", ZN_EPROTO,
            "HELLO: hostname must be a string"),
        BAD("{\"v\":2,\"hostname\":\"a\\u0000b\"}", ZN_EPROTO,
            "HELLO: invalid JSON"),
        BAD("{\"v\":2,\"hostname\":\"\xff\"}", ZN_EPROTO,
            "HELLO: invalid JSON"),
        BAD("{\"v\":2,\"pid\":-1}", ZN_EPROTO, "HELLO: pid must be at least 0"),
        BAD("{\"v\":2,\"pid\":\"1\"}", ZN_EPROTO,
            "HELLO: pid must be an integer"),
        BAD("{\"v\":2,\"labels\":\"a\"}", ZN_EPROTO,
            "HELLO: labels must be an array of strings"),
        BAD("{\"v\":2,\"labels\":[\"a\",1]}", ZN_EPROTO,
            "HELLO: labels[1] must be a string"),
        BAD("{\"v\":2,\"pwdhash\":\"abc\"}", ZN_EPROTO,
            "HELLO: pwdhash must be a string of 64 hex"),
        BAD("{\"v\":2,\"pwdhash\":12}", ZN_EPROTO, "HELLO: pwdhash must be"),
        BAD("{\"v\":2,\"pwdhash\":\"zz00000000000000000000000000000000000000"
            "000000000000000000000000\"}", ZN_EPROTO, "HELLO: pwdhash must"),
        BAD("{\"v\":2\n,\"x\":}", ZN_EPROTO, "invalid JSON at line 2"),
    };

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), hello_fn);
}

/* Inputs too large to write out: built at run time. */
static void
test_fwp_proto_hello_bad_large(void **state)
{
    size_t n = 100000;
    char *j = malloc(n + 64);
    struct zn_err err = {0};
    size_t o;

    (void)state;
    assert_non_null(j);
    /* Deep nesting is refused by the parser's depth limit, not the stack. */
    o = (size_t)snprintf(j, 64, "{\"v\":2,\"x\":");
    memset(j + o, '[', n);
    assert_int_equal(hello_fn(j, o + n, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "HELLO: invalid JSON"));
    o = (size_t)snprintf(j, 64, "{\"v\":2,\"hostname\":\"");
    memset(j + o, 'h', 256);
    memcpy(j + o + 256, "\"}", 2);
    assert_int_equal(hello_fn(j, o + 258, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "HELLO: hostname must be at most 255"));
    o = (size_t)snprintf(j, 64, "{\"v\":2,\"wid\":\"");
    memset(j + o, 'w', 65);
    memcpy(j + o + 65, "\"}", 2);
    assert_int_equal(hello_fn(j, o + 67, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "HELLO: wid must be 1 to 64"));
    o = (size_t)snprintf(j, 64, "{\"v\":2,\"labels\":[");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(j + o, 8, "\"l\",");
    memcpy(j + o - 1, "]}", 2);
    assert_int_equal(hello_fn(j, o + 1, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "HELLO: labels must have at most 64"));
    free(j);
}

/* ---- ACK, FAIL, BEAT --------------------------------------------------- */

static void
test_fwp_proto_ack(void **state)
{
    const char *j = "{\"jid\":\"01HX-abc\",\"other\":1}";
    struct zn_fwp_ack a;
    struct zn_err err = {0};

    (void)state;
    assert_int_equal(zn_fwp_parse_ack(j, strlen(j), &a, &err), 0);
    assert_string_equal(a.jid, "01HX-abc");
    assert_int_equal(a.cpu_ms, -1);
    assert_int_equal(a.rss_kb, -1);
    /* zenith work adds the attempt's usage. */
    j = "{\"jid\":\"j\",\"cpu_ms\":0,\"rss_kb\":20480}";
    assert_int_equal(zn_fwp_parse_ack(j, strlen(j), &a, &err), 0);
    assert_int_equal(a.cpu_ms, 0);
    assert_int_equal(a.rss_kb, 20480);
}

static int
ack_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_fwp_ack a;

    return zn_fwp_parse_ack(in, len, &a, err);
}

static void
test_fwp_proto_ack_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("{}", ZN_EPROTO, "ACK: jid is required"),
        BAD("{\"jid\":null}", ZN_EPROTO, "ACK: jid is required"),
        BAD("{\"jid\":5}", ZN_EPROTO, "ACK: jid must be a string"),
        BAD("{\"jid\":[\"a\"]}", ZN_EPROTO, "ACK: jid must be a string"),
        BAD("{\"jid\":\"\"}", ZN_EPROTO, "ACK: jid must be 1 to 64"),
        BAD("{\"jid\":\"a b\"}", ZN_EPROTO, "ACK: jid must be 1 to 64"),
        BAD("{\"jid\":\"a\\nb\"}", ZN_EPROTO, "ACK: jid must be 1 to 64"),
        BAD("{\"jid\":\"0123456789012345678901234567890123456789012345678901"
            "2345678901234\"}", ZN_EPROTO, "ACK: jid must be 1 to 64"),
        BAD("\"abc\"", ZN_EPROTO, "ACK: invalid JSON"),
        BAD("{\"jid\" \"a\"}", ZN_EPROTO, "ACK: invalid JSON at line 1"),
        BAD("{\"jid\":\"a\",\"jid\":\"b\"}", ZN_EPROTO, "duplicate"),
        BAD("[]", ZN_EPROTO, "ACK: argument must be a JSON object"),
        BAD("{\"jid\":\"a\",\"cpu_ms\":\"5\"}", ZN_EPROTO,
            "ACK: cpu_ms must be an integer"),
        BAD("{\"jid\":\"a\",\"cpu_ms\":1.5}", ZN_EPROTO,
            "ACK: cpu_ms must be an integer"),
        BAD("{\"jid\":\"a\",\"rss_kb\":-2}", ZN_EPROTO,
            "ACK: rss_kb must be at least 0"),
    };

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), ack_fn);
}

static void
test_fwp_proto_fail(void **state)
{
    const char *j = "{\"jid\":\"j1\",\"errtype\":\"RuntimeError\","
                    "\"message\":\"boom \\u00e9\",\"backtrace\":"
                    "[ \"a.rb:1\" , \"b.rb:2\" ]}";
    struct zn_fwp_fail f;
    struct zn_err err = {0};

    (void)state;
    assert_int_equal(zn_fwp_parse_fail(j, strlen(j), &f, &err), 0);
    assert_string_equal(f.jid, "j1");
    assert_string_equal(f.errtype, "RuntimeError");
    assert_string_equal(f.message, "boom \xc3\xa9");
    assert_string_equal(f.backtrace, "[\"a.rb:1\",\"b.rb:2\"]");
    assert_int_equal(f.cpu_ms, -1);
    assert_int_equal(f.rss_kb, -1);
    zn_fwp_fail_release(&f);
    assert_null(f.message);
    j = "{\"jid\":\"j1\",\"errtype\":\"E\",\"cpu_ms\":12,\"rss_kb\":3}";
    assert_int_equal(zn_fwp_parse_fail(j, strlen(j), &f, &err), 0);
    assert_int_equal(f.cpu_ms, 12);
    assert_int_equal(f.rss_kb, 3);
    zn_fwp_fail_release(&f);
    j = "{\"jid\":\"j1\",\"cpu_ms\":-1}";
    assert_int_equal(zn_fwp_parse_fail(j, strlen(j), &f, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "FAIL: cpu_ms must be at least 0"));
    zn_fwp_fail_release(NULL);

    /* Faktory's Go client sends "backtrace":null when it has none. */
    j = "{\"jid\":\"j2\",\"message\":\"\",\"errtype\":\"\",\"backtrace\":null}";
    assert_int_equal(zn_fwp_parse_fail(j, strlen(j), &f, &err), 0);
    assert_string_equal(f.message, "");
    assert_null(f.backtrace);
    zn_fwp_fail_release(&f);
}

/* A long message is cut at 64 KiB on a character boundary, not refused. */
static void
test_fwp_proto_fail_long_message(void **state)
{
    size_t cap = 64 * 1024;
    char *j = malloc(cap + 128);
    struct zn_fwp_fail f;
    struct zn_err err = {0};
    size_t o;

    (void)state;
    assert_non_null(j);
    o = (size_t)snprintf(j, 64, "{\"jid\":\"j\",\"message\":\"");
    memset(j + o, 'm', cap - 1);
    o += cap - 1;
    /* A two-byte character straddles the cap: it goes whole. */
    memcpy(j + o, "\xc3\xa9tail\"}", 8);
    o += 8;
    assert_int_equal(zn_fwp_parse_fail(j, o, &f, &err), 0);
    assert_int_equal(strlen(f.message), cap - 1);
    zn_fwp_fail_release(&f);
    free(j);
}

/*
 * A long backtrace keeps its lines up to 64 KiB in all: three lines of 40
 * KiB come back as the first, the second cut to the 24 KiB left (before
 * the two-byte character that straddles the cap), and not the third.
 */
static void
test_fwp_proto_fail_long_backtrace(void **state)
{
    size_t cap = 64 * 1024, line = 40 * 1024, o;
    char *j = malloc(3 * (line + 8) + 128);
    struct zn_fwp_fail f;
    struct zn_err err = {0};
    json_t *bt;

    (void)state;
    assert_non_null(j);
    o = (size_t)snprintf(j, 64, "{\"jid\":\"j\",\"backtrace\":[");
    for (int k = 0; k < 3; k++) {
        j[o++] = '"';
        memset(j + o, 'a' + k, line);
        if (k == 1)
            memcpy(j + o + (cap - line) - 1, "\xc3\xa9", 2);
        o += line;
        j[o++] = '"';
        j[o++] = k < 2 ? ',' : ']';
    }
    j[o++] = '}';
    assert_int_equal(zn_fwp_parse_fail(j, o, &f, &err), 0);
    bt = json_loads(f.backtrace, 0, NULL);
    assert_int_equal(json_array_size(bt), 2);
    assert_int_equal(json_string_length(json_array_get(bt, 0)), line);
    assert_int_equal(json_string_length(json_array_get(bt, 1)),
                     cap - line - 1);
    assert_int_equal(json_string_value(json_array_get(bt, 1))[0], 'b');
    json_decref(bt);
    zn_fwp_fail_release(&f);
    free(j);
}

static int
fail_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_fwp_fail f;
    int rc = zn_fwp_parse_fail(in, len, &f, err);

    zn_fwp_fail_release(&f);
    return rc;
}

static void
test_fwp_proto_fail_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("{\"errtype\":\"E\"}", ZN_EPROTO, "FAIL: jid is required"),
        BAD("{\"jid\":1}", ZN_EPROTO, "FAIL: jid must be a string"),
        BAD("{\"jid\":\"j\",\"errtype\":5}", ZN_EPROTO,
            "FAIL: errtype must be a string"),
        BAD("{\"jid\":\"j\",\"message\":[]}", ZN_EPROTO,
            "FAIL: message must be a string"),
        BAD("{\"jid\":\"j\",\"backtrace\":\"x\"}", ZN_EPROTO,
            "FAIL: backtrace must be an array of strings"),
        BAD("{\"jid\":\"j\",\"backtrace\":[\"a\",{}]}", ZN_EPROTO,
            "FAIL: backtrace[1] must be a string"),
        BAD("{\"jid\":\"j\",\"message\":\"\\ud800\"}", ZN_EPROTO,
            "FAIL: invalid JSON"),
        BAD("{\"jid\"", ZN_EPROTO, "FAIL: invalid JSON at line 1 column"),
        BAD("{\"jid\":\"j\"}}", ZN_EPROTO, "FAIL: invalid JSON"),
        BAD("null", ZN_EPROTO, "FAIL: invalid JSON"),
    };

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), fail_fn);
}

static void
test_fwp_proto_beat(void **state)
{
    static const struct {
        const char *json;
        const char *cs;
        int64_t rss;
    } cases[] = {
        {"{\"wid\":\"w1\"}", "", -1},
        {"{\"wid\":\"w1\",\"current_state\":\"quiet\",\"rss_kb\":0}", "quiet",
         0},
        {"{\"wid\":\"w1\",\"current_state\":\"terminate\",\"rss_kb\":123456}",
         "terminate", 123456},
        {"{\"wid\":\"w1\",\"current_state\":\"\",\"rss_kb\":null}", "", -1},
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        struct zn_fwp_beat b;
        struct zn_err err = {0};

        if (zn_fwp_parse_beat(cases[i].json, strlen(cases[i].json), &b,
                              &err) != 0)
            fail_msg("'%s': %s", cases[i].json, err.msg);
        assert_string_equal(b.wid, "w1");
        assert_string_equal(b.current_state, cases[i].cs);
        assert_int_equal(b.rss_kb, cases[i].rss);
    }
}

static int
beat_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_fwp_beat b;

    return zn_fwp_parse_beat(in, len, &b, err);
}

static void
test_fwp_proto_beat_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("{}", ZN_EPROTO, "BEAT: wid is required"),
        BAD("{\"wid\":true}", ZN_EPROTO, "BEAT: wid must be a string"),
        BAD("{\"wid\":\"\"}", ZN_EPROTO, "BEAT: wid must be 1 to 64"),
        BAD("{\"wid\":\"w\",\"current_state\":\"busy\"}", ZN_EPROTO,
            "BEAT: current_state 'busy' is not one of"),
        BAD("{\"wid\":\"w\",\"current_state\":\"QUIET\"}", ZN_EPROTO,
            "BEAT: current_state 'QUIET'"),
        BAD("{\"wid\":\"w\",\"current_state\":\"a\\r\\nb\"}", ZN_EPROTO,
            "current_state 'a\\x0d\\x0ab'"),
        BAD("{\"wid\":\"w\",\"current_state\":1}", ZN_EPROTO,
            "BEAT: current_state must be a string"),
        BAD("{\"wid\":\"w\",\"rss_kb\":-5}", ZN_EPROTO,
            "BEAT: rss_kb must be at least 0"),
        BAD("{\"wid\":\"w\",\"rss_kb\":1.5}", ZN_EPROTO,
            "BEAT: rss_kb must be an integer"),
        BAD("{\"wid\":\"w\",\"rss_kb\":1e3}", ZN_EPROTO,
            "BEAT: rss_kb must be an integer"),
        BAD("{\"wid\":\"w\"", ZN_EPROTO, "BEAT: invalid JSON"),
    };

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), beat_fn);
}

/* ---- password hash ----------------------------------------------------- */

/*
 * Expected digests were computed outside this code with Python's hashlib:
 *   d = hashlib.sha256(b"secret" + b"abc").digest()
 *   for _ in range(iterations - 1): d = hashlib.sha256(d).digest()
 *   d.hex()
 * and the 1-iteration value also with `printf secretabc | sha256sum`.
 */
static void
test_fwp_proto_pwdhash_vectors(void **state)
{
    char out[65];

    (void)state;
    zn_fwp_pwdhash("secret", "abc", 1, out);
    assert_string_equal(out, "f6ba18523c6942ba1e1b54f8256527ab"
                             "1b8db94496cf6f4a2b6db9695c0fc6f9");
    zn_fwp_pwdhash("secret", "abc", 2, out);
    assert_string_equal(out, "1b0f89903d508ed415de26b592e0f8e5"
                             "eef394f6a740bf87451c2eccbf57bb00");
    zn_fwp_pwdhash("secret", "abc", 1000, out);
    assert_string_equal(out, "959d02c37acf6255b5eb3eac3659c985"
                             "c89b40f959d2c2cfee9db6bea24a1c39");
    /* Fewer than one iteration still hashes once. */
    zn_fwp_pwdhash("secret", "abc", 0, out);
    assert_string_equal(out, "f6ba18523c6942ba1e1b54f8256527ab"
                             "1b8db94496cf6f4a2b6db9695c0fc6f9");
    zn_fwp_pwdhash(NULL, NULL, 1, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
                             "27ae41e4649b934ca495991b7852b855");
}

static void
test_fwp_proto_hash_equal(void **state)
{
    char a[65], b[65];

    (void)state;
    zn_fwp_pwdhash("secret", "abc", 5, a);
    zn_fwp_pwdhash("secret", "abc", 5, b);
    assert_true(zn_fwp_hash_equal(a, b));
    b[63] = b[63] == '0' ? '1' : '0';
    assert_false(zn_fwp_hash_equal(a, b));
    b[0] = '\0';
    assert_false(zn_fwp_hash_equal(a, b));
    assert_false(zn_fwp_hash_equal(a, "abc"));
    assert_false(zn_fwp_hash_equal("", ""));
    assert_false(zn_fwp_hash_equal(NULL, a));
    assert_false(zn_fwp_hash_equal(a, NULL));
}

/* ---- addresses --------------------------------------------------------- */

static void
test_fwp_proto_addr(void **state)
{
    static const struct {
        const char *in;
        bool is_unix;
        const char *host_or_path;
        int port;
    } cases[] = {
        {"unix:/run/zenith.sock", true, "/run/zenith.sock", 0},
        {"/run/zenith.sock", true, "/run/zenith.sock", 0},
        {"unix:rel.sock", true, "rel.sock", 0},
        {"localhost:7420", false, "localhost", 7420},
        {"127.0.0.1:0", false, "127.0.0.1", 0},
        {"[::1]:7419", false, "::1", 7419},
        {"[::1]", false, "::1", 7419},
        {"[fe80::1%eth0]:1", false, "fe80::1%eth0", 1},
        {"tcp://jobs.example.com:65535", false, "jobs.example.com", 65535},
        {"tcp://10.0.0.2", false, "10.0.0.2", 7419},
        {"faktory", false, "faktory", 7419},
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        struct zn_fwp_addr a;
        struct zn_err err = {0};

        if (zn_fwp_parse_addr(cases[i].in, &a, &err) != 0)
            fail_msg("'%s': %s", cases[i].in, err.msg);
        assert_int_equal(a.is_unix, cases[i].is_unix);
        assert_string_equal(a.is_unix ? a.path : a.host,
                            cases[i].host_or_path);
        assert_int_equal(a.port, cases[i].port);
    }
}

static int
addr_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_fwp_addr a;

    (void)len;
    return zn_fwp_parse_addr(in, &a, err);
}

static void
test_fwp_proto_addr_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("", ZN_EINVAL, "bad address '': empty"),
        BAD("unix:", ZN_EINVAL, "bad address 'unix:': empty socket path"),
        BAD("host:", ZN_EINVAL, "port must be a number from 0 to 65535"),
        BAD("host:65536", ZN_EINVAL, "port must be a number"),
        BAD("host:-1", ZN_EINVAL, "port must be a number"),
        BAD("host:12x", ZN_EINVAL, "port must be a number"),
        BAD("host:000080", ZN_EINVAL, "port must be a number"),
        BAD("::1:7419", ZN_EINVAL, "IPv6 addresses need brackets"),
        BAD("[::1", ZN_EINVAL, "missing ']'"),
        BAD("[::1]7419", ZN_EINVAL, "expected ':port' after ']'"),
        BAD("[]:1", ZN_EINVAL, "missing host"),
        BAD(":7419", ZN_EINVAL, "missing host"),
        BAD("tcp://", ZN_EINVAL, "missing host"),
        BAD("tcp://host:1/x", ZN_EINVAL, "port must be a number"),
        BAD("ho st:1", ZN_EINVAL, "invalid character in host"),
        BAD("http://host:1", ZN_EINVAL, "bad address 'http://host:1'"),
        BAD("h\x01:1", ZN_EINVAL, "bad address 'h\\x01:1'"),
    };
    char path[200] = "unix:/";
    struct zn_err err = {0};

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), addr_fn);
    memset(path + 6, 'p', sizeof(path) - 7);
    assert_int_equal(addr_fn(path, 0, &err), ZN_EINVAL);
    assert_non_null(strstr(err.msg, "socket path is too long"));
    assert_int_equal(addr_fn(path + 5, 0, &err), ZN_EINVAL);
    assert_int_equal(addr_fn(NULL, 0, &err), ZN_EINVAL);
}

/* ---- RESP replies ------------------------------------------------------ */

static void
test_fwp_proto_resp_whole(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        char type;
        const char *data; /* NULL: nil */
        size_t data_len;
    } cases[] = {
        {"+OK\r\n", 5, '+', "OK", 2},
        {"+\r\n", 3, '+', "", 0},
        {"+HI {\"v\":2}\r\n", 13, '+', "HI {\"v\":2}", 10},
        {"-ERR unknown\r\n", 14, '-', "ERR unknown", 11},
        {"$5\r\nhello\r\n", 11, '$', "hello", 5},
        {"$0\r\n\r\n", 6, '$', "", 0},
        {"$-1\r\n", 5, '$', NULL, 0},
        {"$4\r\na\0\r\n\r\n", 10, '$', "a\0\r\n", 4},
        {":42\r\n", 5, ':', "42", 2},
        {":-7\r\n", 5, ':', "-7", 2},
        {"+OK\r\n+NEXT\r\n", 12, '+', "OK", 2},
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        struct zn_resp_reply r;
        struct zn_err err = {0};
        size_t used = 99;
        int rc = zn_resp_parse(cases[i].in, cases[i].len, 1024, &r, &used,
                               &err);

        if (rc != 1)
            fail_msg("case %zu: rc %d: %s", i, rc, err.msg);
        assert_int_equal(r.type, cases[i].type);
        if (cases[i].data) {
            assert_non_null(r.data);
            assert_int_equal(r.len, cases[i].data_len);
            assert_memory_equal(r.data, cases[i].data, r.len);
            assert_int_equal(r.data[r.len], '\0');
        } else {
            assert_null(r.data);
        }
        /* The second reply of the last case stays unread. */
        assert_int_equal(used, i + 1 == ZN_ARRAY_LEN(cases) ? 5
                                                              : cases[i].len);
        free(r.data);
    }
}

/* Fed one byte more at a time, the reader waits, then reads each reply. */
static void
test_fwp_proto_resp_byte_by_byte(void **state)
{
    static const char stream[] = "+HI {\"v\":2}\r\n$-1\r\n-ERR no\r\n"
                                 "$12\r\nline1\r\nline2\r\n:0\r\n+OK\r\n";
    static const char types[] = {'+', '$', '-', '$', ':', '+'};
    size_t total = sizeof(stream) - 1;
    size_t start = 0, end = start, got = 0;

    (void)state;
    while (end < total) {
        struct zn_resp_reply r;
        struct zn_err err = {0};
        size_t used = 99;
        int rc;

        end++;
        rc = zn_resp_parse(stream + start, end - start, 64, &r, &used, &err);
        if (rc < 0)
            fail_msg("at byte %zu: %s", end, err.msg);
        if (rc == 0) {
            assert_int_equal(used, 0);
            assert_null(r.data);
            continue;
        }
        assert_int_equal(used, end - start);
        assert_true(got < sizeof(types));
        assert_int_equal(r.type, types[got]);
        if (got == 3)
            assert_string_equal(r.data, "line1\r\nline2");
        free(r.data);
        got++;
        start = end;
    }
    assert_int_equal(got, sizeof(types));
}

static int
resp_fn(const char *in, size_t len, struct zn_err *err)
{
    struct zn_resp_reply r;
    size_t used;
    int rc = zn_resp_parse(in, len, 8, &r, &used, err);

    assert_null(r.data);
    return rc;
}

static void
test_fwp_proto_resp_bad(void **state)
{
    static const struct bad_case cases[] = {
        BAD("X\r\n", ZN_EPROTO, "reply: unexpected type byte 'X'"),
        BAD("\r\n", ZN_EPROTO, "unexpected type byte '\\x0d'"),
        BAD("*1\r\n", ZN_EPROTO, "unexpected type byte '*'"),
        BAD("+OK\n", ZN_EPROTO, "reply: line does not end in CRLF"),
        BAD("+\n", ZN_EPROTO, "line does not end in CRLF"),
        BAD("+a\0b\r\n", ZN_EPROTO, "reply: line contains a NUL byte"),
        BAD("$abc\r\n", ZN_EPROTO, "reply: bad bulk length"),
        BAD("$\r\n", ZN_EPROTO, "reply: bad bulk length"),
        BAD("$-2\r\n", ZN_EPROTO, "reply: bad bulk length"),
        BAD("$+1\r\n", ZN_EPROTO, "reply: bad bulk length"),
        BAD("$3\r\nabcXY", ZN_EPROTO, "reply: bulk does not end in CRLF"),
        BAD("$9\r\n", ZN_EPROTO, "reply: bulk of 9 bytes is over the limit"),
        BAD("$99999999999999999999999\r\n", ZN_EPROTO,
            "reply: bulk of 99999999999999999999999 bytes is over the limit"),
        BAD("$123456789012345678901234567890123456", ZN_EPROTO,
            "reply: line of more than 32 bytes"),
        BAD(":abc\r\n", ZN_EPROTO, "reply: bad integer"),
        BAD(":\r\n", ZN_EPROTO, "reply: bad integer"),
        BAD(":-\r\n", ZN_EPROTO, "reply: bad integer"),
        BAD(":1 \r\n", ZN_EPROTO, "reply: bad integer"),
    };
    struct zn_err err = {0};
    struct zn_resp_reply r;
    size_t n = 1024 * 1024 + 3;
    char *big = malloc(n + 2);
    size_t used;

    (void)state;
    run_bad(cases, ZN_ARRAY_LEN(cases), resp_fn);
    /* 1 MiB is the longest line; one byte more without CRLF is refused. */
    assert_non_null(big);
    big[0] = '-';
    memset(big + 1, 'e', n - 1);
    assert_int_equal(zn_resp_parse(big, n, 8, &r, &used, &err), ZN_EPROTO);
    assert_non_null(strstr(err.msg, "reply: line of more than 1048576"));
    memcpy(big + 1024 * 1024 + 1, "\r\n", 2);
    assert_int_equal(zn_resp_parse(big, n, 8, &r, &used, &err), 1);
    assert_int_equal(r.len, 1024 * 1024);
    free(r.data);
    free(big);
}

static void
test_fwp_proto_resp_needs_more(void **state)
{
    static const char *const partial[] = {
        "", "+", "+OK", "+OK\r", "$", "$5", "$5\r\n", "$5\r\nhel",
        "$5\r\nhello", "$5\r\nhello\r", "$-1\r", ":12",
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(partial); i++) {
        struct zn_resp_reply r;
        struct zn_err err = {0};
        size_t used = 7;

        assert_int_equal(zn_resp_parse(partial[i], strlen(partial[i]), 64,
                                       &r, &used, &err), 0);
        assert_int_equal(used, 0);
        assert_null(r.data);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fwp_proto_parse_line_every_verb),
        cmocka_unit_test(test_fwp_proto_verb_names),
        cmocka_unit_test(test_fwp_proto_parse_line_crlf),
        cmocka_unit_test(test_fwp_proto_parse_line_bad),
        cmocka_unit_test(test_fwp_proto_parse_line_long_verb),
        cmocka_unit_test(test_fwp_proto_split_names),
        cmocka_unit_test(test_fwp_proto_split_names_bad),
        cmocka_unit_test(test_fwp_proto_split_names_limits),
        cmocka_unit_test(test_fwp_proto_hello_full),
        cmocka_unit_test(test_fwp_proto_hello_minimal),
        cmocka_unit_test(test_fwp_proto_hello_bad),
        cmocka_unit_test(test_fwp_proto_hello_bad_large),
        cmocka_unit_test(test_fwp_proto_ack),
        cmocka_unit_test(test_fwp_proto_ack_bad),
        cmocka_unit_test(test_fwp_proto_fail),
        cmocka_unit_test(test_fwp_proto_fail_long_message),
        cmocka_unit_test(test_fwp_proto_fail_long_backtrace),
        cmocka_unit_test(test_fwp_proto_fail_bad),
        cmocka_unit_test(test_fwp_proto_beat),
        cmocka_unit_test(test_fwp_proto_beat_bad),
        cmocka_unit_test(test_fwp_proto_pwdhash_vectors),
        cmocka_unit_test(test_fwp_proto_hash_equal),
        cmocka_unit_test(test_fwp_proto_addr),
        cmocka_unit_test(test_fwp_proto_addr_bad),
        cmocka_unit_test(test_fwp_proto_resp_whole),
        cmocka_unit_test(test_fwp_proto_resp_byte_by_byte),
        cmocka_unit_test(test_fwp_proto_resp_bad),
        cmocka_unit_test(test_fwp_proto_resp_needs_more),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
