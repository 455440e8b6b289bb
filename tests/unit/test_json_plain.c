/*
 * test_json_plain.c - the plain JSON reader (common/json_plain.c): what it
 * reads, where it gives up, and that a value it reads is what jansson
 * reads and writes back.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/json_plain.h"

static bool
plain(const char *text, struct zn_json_member *m, size_t *n)
{
    return zn_json_plain_object(text, strlen(text), m, n);
}

static void
test_json_plain_members(void **state)
{
    const char *text = " {\"s\" : \"caf\xc3\xa9\", \"i\":-123456789012345678,"
                       "\"t\":true,\"f\":false,\"z\":null,\"a\":[ 1, [] ],"
                       "\"o\":{ },\"\":0}\r\n";
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    const struct zn_json_val *v;
    size_t n;

    (void)state;
    assert_true(plain(text, m, &n));
    assert_int_equal(n, 8);
    v = zn_json_plain_get(m, n, "s");
    assert_int_equal(v->type, ZN_JSON_PLAIN_STRING);
    assert_int_equal(v->n, 5);
    assert_memory_equal(v->p, "caf\xc3\xa9", 5);
    v = zn_json_plain_get(m, n, "i");
    assert_int_equal(v->type, ZN_JSON_PLAIN_INT);
    assert_true(v->i == -123456789012345678LL);
    assert_int_equal(zn_json_plain_get(m, n, "t")->type, ZN_JSON_PLAIN_TRUE);
    assert_int_equal(zn_json_plain_get(m, n, "f")->type, ZN_JSON_PLAIN_FALSE);
    /* null reads as absent, as does a key that is not there */
    assert_null(zn_json_plain_get(m, n, "z"));
    assert_null(zn_json_plain_get(m, n, "missing"));
    v = zn_json_plain_get(m, n, "a");
    assert_int_equal(v->type, ZN_JSON_PLAIN_ARRAY);
    assert_int_equal(v->n, strlen("[ 1, [] ]"));
    assert_memory_equal(v->p, "[ 1, [] ]", v->n);
    assert_int_equal(zn_json_plain_get(m, n, "o")->type, ZN_JSON_PLAIN_OBJECT);
    assert_int_equal(zn_json_plain_get(m, n, "")->i, 0);
    assert_true(plain("{}", m, &n));
    assert_int_equal(n, 0);
}

/* Texts outside plain JSON, valid JSON or not: the reader gives up. */
static void
test_json_plain_gives_up(void **state)
{
    static const char *const texts[] = {
        "", " ", "[]", "\"s\"", "1", "null", "{", "}", "{\"a\"}",
        "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{,}", "{\"a\":1}x",
        "{\"a\":1}{}", "{a:1}", "{'a':1}", "{\"a\":[1,]}", "{\"a\":[,]}",
        "{\"a\":[1 2]}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":truex}",
        "{\"a\":-}", "{\"a\":+1}", "{\"a\":01}", "{\"a\":-01}",
        /* valid JSON that jansson would write back otherwise */
        "{\"a\":\"x\\\"y\"}", "{\"a\\n\":1}", "{\"a\":\"\\u00e9\"}",
        "{\"a\":1.0}", "{\"a\":1e2}", "{\"a\":1E2}", "{\"a\":-0}",
        "{\"a\":1234567890123456789}",
        /* duplicate keys, at the top and deeper */
        "{\"a\":1,\"a\":2}", "{\"a\":[{\"b\":1,\"b\":1}]}",
        /* bytes jansson refuses in a string */
        "{\"a\":\"\x01\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"x}",
    };
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    size_t n;

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(texts); i++)
        if (plain(texts[i], m, &n))
            fail_msg("read as plain: %s", texts[i]);
    /* NUL bytes, outside a string and inside one */
    assert_false(zn_json_plain_object("{\"a\":1}\0", 8, m, &n));
    assert_false(zn_json_plain_object("{\"a\":\"\0\"}", 8, m, &n));
}

/* Every cut of a plain text, but the whole, is not JSON. */
static void
test_json_plain_prefixes(void **state)
{
    const char *text = "{\"jid\":\"a\",\"args\":[1,-2,{\"k\":[true,false,"
                       "null]},\"\xc3\xa9\"],\"n\":123}";
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    size_t n;

    (void)state;
    for (size_t len = 0; len < strlen(text); len++)
        if (zn_json_plain_object(text, len, m, &n))
            fail_msg("a cut of %zu bytes read as plain", len);
    assert_true(plain(text, m, &n));
}

static char *
nested(int depth)
{
    char *s = malloc(16 + 2 * (size_t)depth);
    size_t n = strlen("{\"a\":");

    assert_non_null(s);
    memcpy(s, "{\"a\":", n);
    for (int i = 1; i < depth; i++)
        s[n++] = '[';
    s[n++] = '1';
    for (int i = 1; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

static void
test_json_plain_limits(void **state)
{
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    char keys[ZN_JSON_PLAIN_KEYS * 8 + 16], *s;
    size_t n, len = 0;

    (void)state;
    s = nested(ZN_JSON_PLAIN_DEPTH);
    assert_true(plain(s, m, &n));
    free(s);
    s = nested(ZN_JSON_PLAIN_DEPTH + 1);
    assert_false(plain(s, m, &n));
    free(s);
    keys[len++] = '{';
    for (int i = 0; i < ZN_JSON_PLAIN_KEYS; i++)
        len += (size_t)snprintf(keys + len, sizeof(keys) - len,
                                "%s\"k%d\":1", i ? "," : "", i);
    snprintf(keys + len, sizeof(keys) - len, "}");
    assert_true(plain(keys, m, &n));
    assert_int_equal(n, ZN_JSON_PLAIN_KEYS);
    snprintf(keys + len, sizeof(keys) - len, ",\"one more\":1}");
    assert_false(plain(keys, m, &n));
}

static void
test_json_plain_array(void **state)
{
    const char *text = " [ {\"a\":1} ,5,\"s\",[],{} ] ";
    struct zn_json_val *el = NULL;
    size_t n;

    (void)state;
    assert_true(zn_json_plain_array(text, strlen(text), 5, &el, &n));
    assert_int_equal(n, 5);
    assert_int_equal(el[0].type, ZN_JSON_PLAIN_OBJECT);
    assert_int_equal(el[0].n, strlen("{\"a\":1}"));
    assert_int_equal(el[1].i, 5);
    assert_int_equal(el[2].type, ZN_JSON_PLAIN_STRING);
    assert_int_equal(el[3].type, ZN_JSON_PLAIN_ARRAY);
    assert_int_equal(el[4].type, ZN_JSON_PLAIN_OBJECT);
    free(el);
    /* one more than max, an element outside plain JSON, not an array */
    assert_false(zn_json_plain_array(text, strlen(text), 4, &el, &n));
    assert_false(zn_json_plain_array("[1,{\"a\":1.5}]", 13, 5, &el, &n));
    assert_false(zn_json_plain_array("{}", 2, 5, &el, &n));
    assert_true(zn_json_plain_array("[]", 2, 0, &el, &n));
    assert_int_equal(n, 0);
    free(el);
}

static bool
valid(const char *text, char open)
{
    return zn_json_valid(text, strlen(text), open);
}

/* Arrays nested depth deep, around one 1. */
static char *
brackets(int depth)
{
    char *s = malloc(2 * (size_t)depth + 2);

    assert_non_null(s);
    memset(s, '[', (size_t)depth);
    s[depth] = '1';
    memset(s + depth + 1, ']', (size_t)depth);
    s[2 * depth + 1] = '\0';
    return s;
}

/*
 * Full mode (zn_json_valid) takes the JSON the plain reader leaves to
 * jansson: reals, "-0", long integers, escapes, repeated keys, more keys
 * and deeper nesting; what is not JSON neither takes.
 */
static void
test_json_plain_valid_full(void **state)
{
    static const char *const full_only[] = {
        "{\"a\":1.5}", "{\"a\":-0}", "{\"a\":-0.0}", "{\"a\":1e2}",
        "{\"a\":-1.25E-3}", "{\"a\":0e+1}", "{\"a\":1234567890123456789}",
        "{\"a\\n\":\"\\u00e9\\\"\\/\"}", "{\"a\":1,\"a\":2}",
        "{\"a\":[{\"b\":1,\"b\":1}]}",
    };
    static const char *const neither[] = {
        "", "{", "{\"a\":01}", "{\"a\":-01}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":1e}", "{\"a\":1e+}", "{\"a\":1.5e}", "{\"a\":+1}",
        "{\"a\":-}", "{\"a\":--1}", "{\"a\":NaN}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u00g0\"}", "{\"a\":\"\\u00\"}", "{\"a\":1,}",
        "{\"a\":1}x", "{\"a\" 1}", "{1:1}", "{\"a\":\"\x01\"}",
        "{\"a\":\"\xc3\"}", "{\"a\":[1 2]}", "{\"a\":tru}",
    };
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    char keys[ZN_JSON_PLAIN_KEYS * 8 + 16], *s;
    struct zn_json_val *el = NULL;
    size_t n, len = 0;

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(full_only); i++) {
        if (!valid(full_only[i], '{') || valid(full_only[i], '['))
            fail_msg("not valid as an object: %s", full_only[i]);
        if (plain(full_only[i], m, &n))
            fail_msg("read as plain: %s", full_only[i]);
    }
    for (size_t i = 0; i < ZN_ARRAY_LEN(neither); i++)
        if (valid(neither[i], '{') || plain(neither[i], m, &n))
            fail_msg("taken: %s", neither[i]);
    assert_true(valid(" [1.5, -0, \"\\t\"] ", '['));
    assert_false(zn_json_plain_array("[1.5]", 5, 5, &el, &n));
    assert_false(zn_json_plain_array("[-0]", 4, 5, &el, &n));
    /* one key more than the plain reader takes */
    keys[len++] = '{';
    for (int i = 0; i <= ZN_JSON_PLAIN_KEYS; i++)
        len += (size_t)snprintf(keys + len, sizeof(keys) - len,
                                "%s\"k%d\":1", i ? "," : "", i);
    snprintf(keys + len, sizeof(keys) - len, "}");
    assert_true(valid(keys, '{'));
    assert_false(plain(keys, m, &n));
    s = nested(ZN_JSON_PLAIN_DEPTH + 1);
    assert_true(valid(s, '{'));
    free(s);
    s = brackets(ZN_JSON_DEPTH_MAX);
    assert_true(valid(s, '['));
    free(s);
    s = brackets(ZN_JSON_DEPTH_MAX + 1);
    assert_false(valid(s, '['));
    free(s);
}

/* The compact form of a value is what jansson writes for it. */
static void
test_json_plain_compact_as_jansson(void **state)
{
    static const char *const values[] = {
        "[]", "[ ]", "{ }", "[1,2,3]", " [ 1 , -2 ,\t3\n]",
        "[\"a b\",\" \",\"caf\xc3\xa9\", {\"k\" : \"v w\"}]",
        "{\"x\":[true,false,null],\"y\":{\"z\":[[],{}]}}",
        "[999999999999999999,-999999999999999999,0]",
        "[\"\xf0\x9f\x98\x80\", \"/\", \"\x7f\"]",
    };
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    char text[256], out[256], dumped[256];
    size_t n, len;

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(values); i++) {
        const struct zn_json_val *v;
        json_t *j;

        snprintf(text, sizeof(text), "{\"v\":%s}", values[i]);
        assert_true(plain(text, m, &n));
        v = zn_json_plain_get(m, n, "v");
        len = zn_json_plain_compact(v, out);
        assert_int_equal(len, strlen(out));
        j = json_loads(values[i], 0, NULL);
        assert_non_null(j);
        n = json_dumpb(j, dumped, sizeof(dumped), JSON_COMPACT);
        json_decref(j);
        assert_true(n < sizeof(dumped));
        dumped[n] = '\0';
        assert_string_equal(out, dumped);
    }
}

int
main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_plain_members),
        cmocka_unit_test(test_json_plain_gives_up),
        cmocka_unit_test(test_json_plain_prefixes),
        cmocka_unit_test(test_json_plain_limits),
        cmocka_unit_test(test_json_plain_array),
        cmocka_unit_test(test_json_plain_valid_full),
        cmocka_unit_test(test_json_plain_compact_as_jansson),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
