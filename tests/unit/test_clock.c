/*
 * test_clock.c - time as text and in jids: RFC 3339 parsing and
 * formatting and duration parsing (src/common/clock.c), which the job
 * codec relies on for at and created_at, and the time-ordered jids of
 * zn_job_make_jid (src/queue/job.c), whose first 10 characters are the
 * milliseconds they were made at. The job model and its JSON codec are
 * tested in test_job.c.
 *
 * zn_clock_format is checked against gmtime_r and snprintf, on edge cases
 * and on random times of the years 0000 to 9999. Jid tests never assume
 * which milliseconds earlier tests used: the jid state is process-wide,
 * so they start past it.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "queue/job.h"

#define NOW_MS 1767323045000LL /* 2026-01-02T03:04:05Z */

static void
test_clock_parse_accepts_rfc3339(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"2026-01-02T03:04:05Z", NOW_MS},
        {"2026-01-02t03:04:05z", NOW_MS},
        {"2026-01-02T03:04:05.678Z", NOW_MS + 678},
        {"2026-01-02T03:04:05.5Z", NOW_MS + 500},
        {"2026-01-02T03:04:05.123456789Z", NOW_MS + 123},
        {"2026-01-02T05:04:05+02:00", NOW_MS},
        {"2026-01-01T22:34:05-04:30", NOW_MS},
        {"2026-01-02T03:04:05.250+00:00", NOW_MS + 250},
        {"2026-01-02T03:04:05-00:00", NOW_MS},
        {"2026-01-02T00:00:00+23:59", 1767225660000LL},
        {"2024-02-29T12:00:00Z", 1709208000000LL},
        {"2000-02-29T00:00:00Z", 951782400000LL},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59Z", -1000},
        {"2026-01-01T23:59:60Z", 1767312000000LL}, /* leap second */
        {"0000-01-01T00:00:00Z", -62167219200000LL},
        {"9999-12-31T23:59:59.999Z", 253402300799999LL},
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(good); i++) {
        int64_t ms = 42;

        if (zn_clock_parse(good[i].s, &ms) != 0)
            fail_msg("'%s' was refused", good[i].s);
        if (ms != good[i].ms)
            print_message("input: %s\n", good[i].s);
        assert_int_equal(ms, good[i].ms);
    }
}

/* What zn_clock_format wrote with gmtime_r and snprintf. */
static void
format_by_libc(int64_t ms, char *out, size_t size)
{
    time_t sec = (time_t)(ms / 1000 - (ms % 1000 < 0));
    int msec = (int)(ms % 1000 < 0 ? ms % 1000 + 1000 : ms % 1000);
    struct tm tm;

    assert_non_null(gmtime_r(&sec, &tm));
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, msec);
}

static void
test_clock_format_as_libc(void **state)
{
    static const int64_t fixed[] = {
        0, 1, -1, 999, -999, 1000, -1000, -1001, 86399999, -86400000,
        -86400001, 951782400000LL, 951868799999LL, 1709208000000LL,
        4107542400000LL, -62167219200000LL, 253402300799999LL,
        -2208988800001LL, 1767225660000LL,
        /* outside RFC 3339's years: as %04d writes them */
        -62167219200001LL, -62198755200000LL, 253402300800000LL,
        9223372036854775807LL, -9223372036854775807LL - 1,
    };
    char got[64], want[64];
    uint64_t x = 88172645463325252ULL;

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(fixed) + 200000; i++) {
        int64_t ms;

        if (i < ZN_ARRAY_LEN(fixed)) {
            ms = fixed[i];
        } else {
            /* xorshift over years 0..9999 */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms = -62167219200000LL +
                 (int64_t)(x % (253402300800000ULL + 62167219200000ULL));
        }
        zn_clock_format(ms, got, sizeof(got));
        format_by_libc(ms, want, sizeof(want));
        if (strcmp(got, want) != 0)
            fail_msg("%lld: got %s, want %s", (long long)ms, got, want);
    }
    /* Out of RFC 3339's years, and cut to the room given. */
    zn_clock_format(253402300800000LL, got, sizeof(got));
    assert_string_equal(got, "10000-01-01T00:00:00.000Z");
    zn_clock_format(0, got, 11);
    assert_string_equal(got, "1970-01-01");
}

/* Each of the n texts in bad is refused by parse, *out left alone. */
static void
expect_refused(int (*parse)(const char *, int64_t *),
               const char *const *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t ms = 42;

        if (parse(bad[i], &ms) != ZN_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(ms, 42);
    }
}

static void
test_clock_parse_rejects_non_rfc3339(void **state)
{
    static const char *const bad[] = {
        "", "tomorrow", "2026-01-02", "2026-01-02T03:04:05",
        "2026-01-02 03:04:05Z", "2026-1-02T03:04:05Z", "26-01-02T03:04:05Z",
        "2026-13-02T03:04:05Z", "2026-00-02T03:04:05Z",
        "2026-01-00T03:04:05Z", "2026-04-31T03:04:05Z",
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2026-01-02T24:00:00Z", "2026-01-02T03:60:05Z",
        "2026-01-02T03:04:61Z", "2026-01-02T03:04:05.Z",
        "2026-01-02T03:04:05.1234567890Z", "2026-01-02T03:04:05,5Z",
        "2026-01-02T03:04:05+24:00", "2026-01-02T03:04:05+02:60",
        "2026-01-02T03:04:05+0200", "2026-01-02T03:04:05+02",
        "2026-01-02T03:04:05Zjunk", "2026-01-02T03:04:05Z ",
        " 2026-01-02T03:04:05Z", "2026-01-02T03:04", "2026-01-02T",
        "+2026-01-02T03:04:05Z",
    };

    (void)state;
    expect_refused(zn_clock_parse, bad, ZN_ARRAY_LEN(bad));
}

static void
test_clock_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"0", 0}, {"90", 90000}, {"90s", 90000}, {"15m", 900000},
        {"2h", 7200000}, {"7d", 604800000}, {"007", 7000},
    };
    static const char *const bad[] = {
        "", "s", "-1", "+1", "1.5h", "10x", "10ss", " 10", "10 ", "10S",
        "1h30m", "99999999999999999999",
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(good); i++) {
        int64_t ms = 42;

        if (zn_clock_parse_duration(good[i].s, &ms) != 0)
            fail_msg("'%s' was refused", good[i].s);
        assert_int_equal(ms, good[i].ms);
    }
    expect_refused(zn_clock_parse_duration, bad, ZN_ARRAY_LEN(bad));
}

/* The milliseconds in a jid: its first 10 digits are 2 zero bits + 48. */
static int64_t
jid_ms(const char *jid)
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    int64_t v = 0;

    for (int i = 0; i < 10; i++) {
        const char *p = strchr(b32, jid[i]);

        assert_non_null(p);
        v = v << 5 | (p - b32);
    }
    return v;
}

/* A millisecond after any jid made so far in this process. */
static int64_t
fresh_ms(void)
{
    char probe[ZN_JID_MAX + 1];

    zn_job_make_jid(0, probe);
    return jid_ms(probe) + 1000;
}

static void
test_clock_jid_shape(void **state)
{
    char jid[ZN_JID_MAX + 1];
    int64_t t = fresh_ms();

    (void)state;
    zn_job_make_jid(t, jid);
    assert_int_equal(strlen(jid), 26);
    assert_true(zn_job_jid_valid(jid, 26));
    for (int i = 0; i < 26; i++)
        assert_non_null(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", jid[i]));
    assert_int_equal(jid_ms(jid), t);
}

/*
 * 100,000 jids made from t on, strictly increasing (so also all
 * distinct), each carrying its ms: all in ms t (per_ms 0), or per_ms in
 * each ms after t. *last (unless NULL) gets the last one.
 */
static void
expect_jids_increase(int64_t t, int per_ms, char *last)
{
    char a[ZN_JID_MAX + 1], b[ZN_JID_MAX + 1];
    char *prev = a, *cur = b, *tmp;

    zn_job_make_jid(t, prev);
    for (int i = 0; i < 100000; i++) {
        int64_t ms = per_ms ? t + 1 + i / per_ms : t;

        zn_job_make_jid(ms, cur);
        if (strcmp(prev, cur) >= 0)
            fail_msg("call %d: '%s' is not after '%s'", i, cur, prev);
        assert_int_equal(jid_ms(cur), ms);
        tmp = prev;
        prev = cur;
        cur = tmp;
    }
    if (last)
        memcpy(last, prev, ZN_JID_MAX + 1);
}

static void
test_clock_jid_increases_within_one_ms(void **state)
{
    (void)state;
    expect_jids_increase(fresh_ms(), 0, NULL);
}

static void
test_clock_jid_increases_across_ms(void **state)
{
    char last[ZN_JID_MAX + 1], cur[ZN_JID_MAX + 1];
    int64_t t = fresh_ms();

    (void)state;
    expect_jids_increase(t, 100, last); /* 100 jids in each of 1000 ms */
    /* A clock that steps back keeps the order too. */
    zn_job_make_jid(t, cur);
    assert_true(strcmp(last, cur) < 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_parse_accepts_rfc3339),
        cmocka_unit_test(test_clock_format_as_libc),
        cmocka_unit_test(test_clock_parse_rejects_non_rfc3339),
        cmocka_unit_test(test_clock_parse_duration),
        cmocka_unit_test(test_clock_jid_shape),
        cmocka_unit_test(test_clock_jid_increases_within_one_ms),
        cmocka_unit_test(test_clock_jid_increases_across_ms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
