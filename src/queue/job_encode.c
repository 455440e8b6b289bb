/*
 * job_encode.c - zn_job_encode: a job as JSON text, in Faktory's shape
 * plus our own fields (job.h lists them), written straight into one
 * growing buffer.
 *
 * Every FETCH encodes the job it hands out. Building a jansson tree for
 * that, with args and custom parsed back from their stored text, cost
 * 12 us a job, as much as the store's work; writing the text costs a
 * fraction of it.
 *
 * Output matches jansson's compact form byte for byte, which the parser
 * reads back (tests/fuzz/fuzz_job.c checks the round trip): members in a
 * fixed order, no spaces, '"', '\\' and control characters escaped
 * ("\n" and friends, else "\uXXXX"), everything else as it is.
 *
 * Strings must be valid UTF-8, and the stored JSON text (args, custom, a
 * failure's backtrace) must be one JSON value of the right kind: a store
 * row is input, and a damaged one gives NULL here, as an allocation
 * failure does, never broken JSON on the wire. The check of stored text
 * is a syntax scan that allocates nothing (zn_json_valid).
 */
#include "compat.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json_plain.h"
#include "common/utf8.h"
#include "queue/job.h"


struct out {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory or bad input: the result is NULL */
};

static void
add(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        char *grown;

        while (cap < o->len + n + 1)
            cap *= 2;
        grown = realloc(o->buf, cap);
        if (!grown) {
            o->failed = true;
            return;
        }
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void
add_str(struct out *o, const char *s)
{
    add(o, s, strlen(s));
}

/* A JSON string, escaped as jansson does; bad UTF-8 fails the output. */
static void
add_quoted(struct out *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), run = 0;

    add(o, "\"", 1);
    for (size_t i = 0; i < n && !o->failed;) {
        const char *esc = NULL;
        char u[8];
        size_t len;

        /* Printable ASCII but the two that need escaping: most bytes. */
        if (p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') {
            run++;
            i++;
            continue;
        }
        len = zn_utf8_len(p + i, n - i);
        if (len == 0) {
            o->failed = true;
            break;
        }
        if (p[i] == '"')
            esc = "\\\"";
        else if (p[i] == '\\')
            esc = "\\\\";
        else if (p[i] == '\n')
            esc = "\\n";
        else if (p[i] == '\r')
            esc = "\\r";
        else if (p[i] == '\t')
            esc = "\\t";
        else if (p[i] == '\b')
            esc = "\\b";
        else if (p[i] == '\f')
            esc = "\\f";
        else if (p[i] < 0x20)
            esc = (snprintf(u, sizeof(u), "\\u%04X", p[i]), u);
        if (!esc) {
            run += len;
            i += len;
            continue;
        }
        add(o, s + i - run, run);
        add_str(o, esc);
        run = 0;
        i++;
    }
    add(o, s + n - run, run);
    add(o, "\"", 1);
}

/* ,"name": before each member but the first; names are plain ASCII. */
static void
key(struct out *o, const char *name)
{
    if (o->len > 1)
        add(o, ",", 1);
    add(o, "\"", 1);
    add_str(o, name);
    add(o, "\":", 2);
}

static void
member_str(struct out *o, const char *name, const char *v)
{
    key(o, name);
    add_quoted(o, v);
}

/* v in decimal, as "%lld" writes it: snprintf was a tenth of an encode. */
static void
add_int(struct out *o, long long v)
{
    char buf[24];
    size_t i = sizeof(buf);
    /* In unsigned arithmetic: -LLONG_MIN does not fit a long long. */
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v
                                 : (unsigned long long)v;

    do
        buf[--i] = (char)('0' + u % 10);
    while ((u /= 10) > 0);
    if (v < 0)
        buf[--i] = '-';
    add(o, buf + i, sizeof(buf) - i);
}

static void
member_int(struct out *o, const char *name, long long v)
{
    key(o, name);
    add_int(o, v);
}

static void
member_time(struct out *o, const char *name, int64_t ms)
{
    char buf[64];

    /* Plain ASCII, written by us: nothing to escape. */
    zn_clock_format(ms, buf, sizeof(buf));
    key(o, name);
    add(o, "\"", 1);
    add_str(o, buf);
    add(o, "\"", 1);
}

/* Stored text that is exactly one JSON value opening with open. */
static void
member_raw(struct out *o, const char *name, const char *text, char open)
{
    size_t n = strlen(text);

    if (!zn_json_valid(text, n, open)) {
        o->failed = true;
        return;
    }
    key(o, name);
    add(o, text, n);
}

/* Faktory's failure object: retry_count is 0 after the first failure. */
static void
add_failure(struct out *o, const struct zn_job *job)
{
    const struct zn_job_failure *fl = &job->failure;
    struct out f = {0};

    add(&f, "{", 1);
    member_int(&f, "retry_count", job->failures > 0 ? job->failures - 1 : 0);
    member_time(&f, "failed_at", fl->failed_at);
    if (job->state == ZN_STATE_RETRY)
        member_time(&f, "next_at", job->next_at);
    member_str(&f, "errtype", fl->errtype);
    if (fl->message)
        member_str(&f, "message", fl->message);
    if (fl->backtrace)
        member_raw(&f, "backtrace", fl->backtrace, '[');
    add(&f, "}", 1);
    o->failed = o->failed || f.failed;
    if (!f.failed) {
        key(o, "failure");
        add(o, f.buf, f.len);
    }
    free(f.buf);
}

static void
add_state(struct out *o, const struct zn_job *job)
{
    member_str(o, "state", zn_job_state_name(job->state));
    member_int(o, "attempts", job->attempts);
    if (job->worker)
        member_str(o, "worker", job->worker);
    if (job->quarantined) {
        key(o, "quarantined");
        add_str(o, "true");
    }
    if (job->failure.errtype)
        add_failure(o, job);
}

/*
 * Empty lists are left out, as is a unique_for of 0 (zn_job_encode):
 * job_codec.c's left_out reads those back as absent, which keeps the
 * round trip exact when custom holds the same fields.
 */
static void
add_lists(struct out *o, const struct zn_job *job)
{
    if (job->ntags) {
        key(o, "tags");
        add(o, "[", 1);
        for (size_t i = 0; i < job->ntags; i++) {
            if (i)
                add(o, ",", 1);
            if (!job->tags[i])
                o->failed = true;
            else
                add_quoted(o, job->tags[i]);
        }
        add(o, "]", 1);
    }
    if (job->nbackoff) {
        key(o, "backoff");
        add(o, "[", 1);
        for (size_t i = 0; i < job->nbackoff; i++) {
            if (i)
                add(o, ",", 1);
            add_int(o, job->backoff[i]);
        }
        add(o, "]", 1);
    }
}

char *
zn_job_encode(const struct zn_job *job, bool with_state)
{
    struct out o = {0};

    if (!job->jobtype)
        return NULL;
    add(&o, "{", 1);
    /* No jid yet (not pushed): "" would not parse again. */
    if (job->jid[0])
        member_str(&o, "jid", job->jid);
    member_str(&o, "queue", job->queue);
    member_str(&o, "jobtype", job->jobtype);
    member_raw(&o, "args", job->args ? job->args : "[]", '[');
    member_time(&o, "created_at", job->created_at);
    if (job->enqueued_at)
        member_time(&o, "enqueued_at", job->enqueued_at);
    if (job->at > 0)
        member_time(&o, "at", job->at);
    member_int(&o, "priority", job->priority);
    if (job->retry != ZN_JOB_RETRY_UNSET)
        member_int(&o, "retry", job->retry);
    if (job->reserve_for)
        member_int(&o, "reserve_for", job->reserve_for);
    if (job->backtrace_lines > 0)
        member_int(&o, "backtrace", job->backtrace_lines);
    add_lists(&o, job);
    if (job->unique_for > 0)
        member_int(&o, "unique_for", job->unique_for);
    if (job->custom)
        member_raw(&o, "custom", job->custom, '{');
    if (with_state)
        add_state(&o, job);
    add(&o, "}", 1);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
