/*
 * log.h - structured logging: one JSON object per line.
 *
 *   ZN_LOG(ZN_WARN, "store.fsync_failed",
 *          ZN_STR("path", path), ZN_INT("errno", e));
 *   {"ts":"2026-06-01T12:00:00.123Z","level":"warn",
 *    "event":"store.fsync_failed","path":"/d/zenith.db","errno":28}
 *
 * The level is checked before the field array is built. Only log.c writes.
 * Job payloads are never logged; secrets are never logged.
 */
#ifndef ZN_LOG_H
#define ZN_LOG_H

#include "compat.h"

#include <stdbool.h>

enum zn_log_level { ZN_DEBUG = 0, ZN_INFO, ZN_WARN, ZN_ERROR };

enum zn_kv_type { ZN_KV_STR, ZN_KV_INT, ZN_KV_BOOL };

struct zn_kv {
    const char *key;
    enum zn_kv_type type;
    union {
        const char *s;
        int64_t i;
        bool b;
    } v;
};

#define ZN_STR(k, s_) \
    ((struct zn_kv){.key = (k), .type = ZN_KV_STR, .v.s = (s_)})
#define ZN_INT(k, n_) \
    ((struct zn_kv){.key = (k), .type = ZN_KV_INT, .v.i = (int64_t)(n_)})
#define ZN_BOOL(k, b_) \
    ((struct zn_kv){.key = (k), .type = ZN_KV_BOOL, .v.b = (b_)})

#define ZN_LOG(lvl, event, ...)                                         \
    do {                                                                \
        if ((lvl) >= zn_log_level()) {                                  \
            const struct zn_kv zn__kv[] = {__VA_ARGS__};                \
            zn_log_write((lvl), (event), zn__kv, ZN_ARRAY_LEN(zn__kv)); \
        }                                                               \
    } while (0)

#define ZN_LOG0(lvl, event)                      \
    do {                                         \
        if ((lvl) >= zn_log_level())             \
            zn_log_write((lvl), (event), NULL, 0); \
    } while (0)

/* Programmer errors only: logs file:line and the expression, then aborts. */
#define ZN_ASSERT(x) \
    ((x) ? (void)0 : zn_log_assert_fail(#x, __FILE__, __LINE__))

enum zn_log_level zn_log_level(void);
void zn_log_set_level(enum zn_log_level level);

/* Parses "debug", "info", "warn", "error"; -1 for anything else. */
int zn_log_parse_level(const char *s);

/* Writes one line to stderr, atomically (one write(2) call). */
void zn_log_write(enum zn_log_level level, const char *event,
                  const struct zn_kv *kv, size_t n);

ZN_NORETURN void zn_log_assert_fail(const char *expr, const char *file,
                                    int line);

#endif
