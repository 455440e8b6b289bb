/*
 * clock.h - time in milliseconds. Code that makes decisions on time (the
 * engine) never calls these directly: it is handed a struct zn_clock, so
 * tests can drive time by hand.
 */
#ifndef ZN_CLOCK_H
#define ZN_CLOCK_H

#include "compat.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/time.h>

struct zn_clock {
    int64_t (*now_ms)(void *ctx); /* Unix epoch milliseconds */
    void *ctx;
};

/* Wall clock, Unix epoch milliseconds. */
int64_t zn_clock_wall_ms(void);

/* ms (from 0) as a struct timeval, for libevent's timers. */
struct timeval zn_clock_tv(int64_t ms);

/* The CPU time (user + system) of a struct rusage, in milliseconds. */
int64_t zn_clock_cpu_ms(const struct rusage *ru);

/* Monotonic clock, milliseconds since an arbitrary start. */
int64_t zn_clock_mono_ms(void);

/* Monotonic clock in microseconds, for latency measurements. */
int64_t zn_clock_mono_us(void);

/* The real clock, for struct zn_clock. */
extern const struct zn_clock zn_clock_real;

/*
 * Formats ms as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z")
 * into out (at least 64 bytes, as -Wformat-truncation counts).
 */
void zn_clock_format(int64_t ms, char *out, size_t size);

/*
 * Parses an RFC 3339 timestamp ("2026-01-02T03:04:05Z",
 * "...05.123456+02:00") into Unix epoch milliseconds. Returns 0, or
 * ZN_EINVAL for anything else.
 */
int zn_clock_parse(const char *s, int64_t *out_ms);

/*
 * Parses a duration: "90", "90s", "15m", "2h", "7d" (seconds when no unit)
 * into milliseconds. Returns 0 or ZN_EINVAL.
 */
int zn_clock_parse_duration(const char *s, int64_t *out_ms);

#endif
