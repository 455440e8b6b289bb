/*
 * log.c - the only writer of log lines. Each line is built in a stack
 * buffer and written with one write(2), so lines from the server and its
 * workers never interleave mid-line. Over-long values are cut, never
 * allowed to overflow.
 */
#include "compat.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define LOG_LINE_MAX 4096

static enum zn_log_level min_level = ZN_INFO;

enum zn_log_level
zn_log_level(void)
{
    return min_level;
}

void
zn_log_set_level(enum zn_log_level level)
{
    min_level = level;
}

int
zn_log_parse_level(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    for (size_t i = 0; i < ZN_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool truncated;
};

/* Room kept for what closes a cut line: "\",\"truncated\":true}\n". */
#define LINE_TAIL 24

/* Appends s whole, or nothing (and marks the line cut). */
static void
put(struct line *l, const char *s, size_t n)
{
    if (l->len + n + LINE_TAIL > sizeof(l->buf)) {
        l->truncated = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* A JSON string; a value too long for the line is cut between characters. */
static void
put_json_string(struct line *l, const char *s)
{
    char esc[8];

    l->buf[l->len++] = '"'; /* LINE_TAIL leaves room for both quotes */
    for (; s && *s && !l->truncated; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    l->buf[l->len++] = '"';
}

static void
put_timestamp(struct line *l)
{
    char out[64];

    zn_clock_format(zn_clock_wall_ms(), out, sizeof(out));
    put_json_string(l, out);
}

void
zn_log_write(enum zn_log_level level, const char *event,
             const struct zn_kv *kv, size_t n)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct line l;
    char num[32];

    l.len = 0;
    l.truncated = false;
    put_str(&l, "{\"ts\":");
    put_timestamp(&l);
    put_str(&l, ",\"level\":\"");
    put_str(&l, names[level]);
    put_str(&l, "\",\"event\":");
    put_json_string(&l, event);
    for (size_t i = 0; i < n && !l.truncated; i++) {
        /* The key whole with room for a value, or the line ends here. */
        if (l.len + strlen(kv[i].key) + 8 + LINE_TAIL > sizeof(l.buf)) {
            l.truncated = true;
            break;
        }
        put_str(&l, ",");
        put_json_string(&l, kv[i].key);
        put_str(&l, ":");
        switch (kv[i].type) {
        case ZN_KV_STR:
            if (kv[i].v.s)
                put_json_string(&l, kv[i].v.s);
            else
                put_str(&l, "null");
            break;
        case ZN_KV_INT:
            snprintf(num, sizeof(num), "%lld", (long long)kv[i].v.i);
            put_str(&l, num);
            break;
        case ZN_KV_BOOL:
            put_str(&l, kv[i].v.b ? "true" : "false");
            break;
        }
    }
    if (l.truncated) {
        memcpy(l.buf + l.len, ",\"truncated\":true", 17);
        l.len += 17;
    }
    l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    /* A failed log write has nowhere to be reported; ignore it. */
    if (write(STDERR_FILENO, l.buf, l.len) < 0)
        return;
}

void
zn_log_assert_fail(const char *expr, const char *file, int line)
{
    ZN_LOG(ZN_ERROR, "assert.failed", ZN_STR("expr", expr),
           ZN_STR("file", file), ZN_INT("line", line));
    abort();
}
