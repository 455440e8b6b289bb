/*
 * clock.c - wall and monotonic time, RFC 3339 and duration parsing.
 * Parsing is strict: every character must be accounted for.
 */
#include "compat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"

int64_t
zn_clock_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
zn_clock_mono_ms(void)
{
    return zn_clock_mono_us() / 1000;
}

int64_t
zn_clock_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
real_now(void *ctx)
{
    (void)ctx;
    return zn_clock_wall_ms();
}

const struct zn_clock zn_clock_real = {real_now, NULL};

/* Reads exactly n decimal digits. */
static int
digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];

        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), no libc timezone. */
static int64_t
days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* y-m-d of day z from 1970-01-01: the inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Writes v (0 <= v < 10^n) as n digits. */
static char *
put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

/*
 * By hand, not gmtime_r and snprintf: every job a FETCH hands out has its
 * times formatted. Years outside 0..9999 are not RFC 3339; they are
 * written as %04d writes them.
 */
void
zn_clock_format(int64_t ms, char *out, size_t size)
{
    int64_t sec = ms / 1000, days, y;
    int msec = (int)(ms % 1000), rest, m, d;
    char buf[32], *p = buf;

    if (msec < 0) {
        msec += 1000;
        sec--;
    }
    days = sec / 86400;
    rest = (int)(sec % 86400);
    if (rest < 0) {
        rest += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        snprintf(out, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 (long long)y, m, d, rest / 3600, rest / 60 % 60, rest % 60,
                 msec);
        return;
    }
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, rest / 3600, 2);
    *p++ = ':';
    p = put_digits(p, rest / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rest % 60, 2);
    *p++ = '.';
    p = put_digits(p, msec, 3);
    *p++ = 'Z';
    if (size > 0) {
        size_t n = (size_t)(p - buf) < size ? (size_t)(p - buf) : size - 1;

        memcpy(out, buf, n);
        out[n] = '\0';
    }
}

int
zn_clock_parse(const char *s, int64_t *out_ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    int64_t frac = 0, ms;
    const char *p = s;

    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
        *p++ != '-' || digits(&p, 2, &d) || (*p != 'T' && *p != 't'))
        return ZN_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) ||
        *p++ != ':' || digits(&p, 2, &se))
        return ZN_EINVAL;
    if (*p == '.') {
        int n = 0;

        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return ZN_EINVAL;
        for (; n < 3; n++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
            return ZN_EINVAL;
        if (oh > 23 || om > 59)
            return ZN_EINVAL;
    } else {
        return ZN_EINVAL;
    }
    if (*p != '\0')
        return ZN_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || se > 60)
        return ZN_EINVAL;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return ZN_EINVAL;
    ms = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    ms -= (int64_t)sign * (oh * 3600 + om * 60);
    *out_ms = ms * 1000 + frac;
    return 0;
}

int
zn_clock_parse_duration(const char *s, int64_t *out_ms)
{
    int64_t v = 0, unit = 1000;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return ZN_EINVAL;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return ZN_EINVAL;
        v = v * 10 + (*p++ - '0');
    }
    if (*p) {
        switch (*p) {
        case 's': unit = 1000; break;
        case 'm': unit = 60 * 1000; break;
        case 'h': unit = 3600 * 1000; break;
        case 'd': unit = 86400 * 1000; break;
        default: return ZN_EINVAL;
        }
        if (p[1] != '\0')
            return ZN_EINVAL;
    }
    if (v > INT64_MAX / unit)
        return ZN_EINVAL;
    *out_ms = v * unit;
    return 0;
}

struct timeval
zn_clock_tv(int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

int64_t
zn_clock_cpu_ms(const struct rusage *ru)
{
    return (int64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000 +
           (ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000;
}
