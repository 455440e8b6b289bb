/*
 * job_codec.c - the job JSON parser: zn_job_parse turns untrusted JSON
 * into a struct zn_job. Its inverse, zn_job_encode, is in job_encode.c.
 *
 * Parsing loads the whole payload into a jansson tree (after the size
 * check, so an oversized payload costs no allocation), then one reader per
 * field checks type and range and says what was wrong, field name first.
 * Our own fields (tags, backoff, unique_for, timeout) are read from the top
 * level first, else from "custom", where clients that only know Faktory
 * keep them; a message names where the bad value was ("custom.tags[2]").
 *
 * JSON null counts as "absent" for every optional field: Faktory's Go
 * client sends "args": null for a job made without arguments.
 *
 * Invariants: on error *out is untouched and nothing leaks. Every time the
 * parser accepts lies in the years 0000 to 9999 UTC, so the RFC 3339 text
 * the encoder writes parses again, and parsing an encoding gives back the
 * same job, except that an "at" of 1970 or before (which means now) comes
 * back as 0 (tests/fuzz/fuzz_job.c checks both). Messages quote at most
 * QUOTE_MAX bytes of a bad value with control characters replaced, so an
 * error stays one line on the wire.
 *
 * args, custom and a failure's backtrace are kept as compact JSON text and
 * embedded as they are on encode.
 *
 * Most jobs are plain JSON (common/json_plain.h) with none of our own
 * fields: parse_plain reads those without building a tree, and gives up
 * on anything else, errors included, which the tree reader then reads
 * and words. Both must make the same job of any text parse_plain reads
 * (tests/fuzz/fuzz_job.c compares them).
 *
 * Non-goals: applying config defaults and making jids (the engine does
 * both), keeping the original spelling of numbers inside args.
 */
#include "compat.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/json_plain.h"
#include "queue/job.h"

#define QUOTE_MAX 40                     /* bytes of a bad value shown */
#define QUOTE_BUF (QUOTE_MAX + 4)        /* plus "..." and NUL */
#define SECONDS_MAX 31536000             /* a year: backoff, unique_for */
#define RESERVE_MAX 86400
#define TIME_MIN_MS (-62167219200000LL)  /* 0000-01-01T00:00:00.000Z */
#define TIME_MAX_MS 253402300799999LL    /* 9999-12-31T23:59:59.999Z */

/* What every field reader needs. */
struct reader {
    json_t *root;
    json_t *custom; /* the "custom" object, or NULL */
    const struct zn_job_limits *lim;
    struct zn_err *err;
};

/* The integer fields, for both readers: where each goes, and its range. */
static const struct int_field {
    const char *name;
    int lo, hi;
    size_t off;
} int_fields[] = {
    {"priority", 1, 9, offsetof(struct zn_job, priority)},
    {"retry", -1, 1000, offsetof(struct zn_job, retry)},
    {"backtrace", 0, 1000, offsetof(struct zn_job, backtrace_lines)},
    {"reserve_for", 1, RESERVE_MAX, offsetof(struct zn_job, reserve_for)},
    {"unique_for", 0, SECONDS_MAX, offsetof(struct zn_job, unique_for)},
};
enum { F_PRIORITY, F_RETRY, F_BACKTRACE, F_RESERVE_FOR, F_UNIQUE_FOR };

static int *
int_slot(struct zn_job *job, const struct int_field *f)
{
    return (int *)(void *)((char *)job + f->off);
}

static int
oom(struct zn_err *err)
{
    return zn_err_set(err, ZN_ENOMEM, "job: out of memory");
}

/*
 * Copies at most QUOTE_MAX bytes of s into buf (QUOTE_BUF bytes) for a
 * message. Control characters become '?' so the message stays one line,
 * and a cut never splits a UTF-8 sequence, so the message stays valid
 * UTF-8 when it is put into JSON.
 */
static const char *
quote(const char *s, char *buf)
{
    size_t n = strlen(s), i;
    bool cut = n > QUOTE_MAX;

    if (cut) {
        n = QUOTE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cut) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/*
 * jansson's message for the byte it stopped at may hold raw input bytes:
 * keep printable ASCII only. When jansson cannot allocate its lexer it
 * returns without any message at all.
 */
static int
json_fail(const json_error_t *jerr, struct zn_err *err)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    size_t i;

    if (json_error_code(jerr) == json_error_out_of_memory ||
        jerr->text[0] == '\0')
        return oom(err);
    for (i = 0; i < sizeof(text) - 1 && jerr->text[i]; i++) {
        unsigned char c = (unsigned char)jerr->text[i];

        text[i] = c < 0x20 || c > 0x7e ? '?' : (char)c;
    }
    text[i] = '\0';
    return zn_err_set(err, ZN_EINVAL, "job: invalid JSON at line %d column "
                      "%d: %s", jerr->line, jerr->column, text);
}

/*
 * Compact JSON text of v in a malloc'd string, or NULL on allocation
 * failure. Not json_dumps: jansson 2.14 ignores a failed append while it
 * writes an object key, so under memory pressure json_dumps can return
 * success with a key missing. json_dumpb into a buffer (one on the stack
 * first: most args are small, so most are written once) leaves nothing
 * to fail in between.
 */
static char *
dump_compact(const json_t *v)
{
    char small[512], *s;
    size_t n = json_dumpb(v, small, sizeof(small), JSON_COMPACT);

    if (n == 0) /* never a valid length: the shortest JSON is "[]" */
        return NULL;
    s = malloc(n + 1);
    if (!s)
        return NULL;
    if (n <= sizeof(small)) {
        memcpy(s, small, n);
    } else if (json_dumpb(v, s, n, JSON_COMPACT) != n) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    return s;
}

/* A member of obj (which may be NULL); JSON null counts as absent. */
static json_t *
member(json_t *obj, const char *name)
{
    json_t *v = obj ? json_object_get(obj, name) : NULL;

    return json_is_null(v) ? NULL : v;
}

/*
 * A top-level value of our own field that the encoder leaves out: no
 * tags, no backoff, a unique_for of 0. It counts as absent, so that the
 * field in custom, which the encoding keeps, is read now as it would be
 * from the encoding.
 */
static bool
left_out(const char *name, json_t *v)
{
    if (json_is_array(v) && json_array_size(v) == 0)
        return strcmp(name, "tags") == 0 || strcmp(name, "backoff") == 0;
    return strcmp(name, "unique_for") == 0 && json_is_integer(v) &&
           json_integer_value(v) == 0;
}

/*
 * One of our own fields: the top level first, else custom. *label names
 * where it was found, for messages; buf holds "custom.<name>".
 */
static json_t *
own_member(const struct reader *r, const char *name, const char **label,
           char *buf, size_t size)
{
    json_t *v = member(r->root, name);

    *label = name;
    if (v && !left_out(name, v))
        return v;
    v = member(r->custom, name);
    if (v) {
        snprintf(buf, size, "custom.%s", name);
        *label = buf;
    }
    return v;
}

/* Booleans and reals (even 1.0) are not integers. */
static int
read_int(json_t *v, const char *label, long long lo, long long hi, int *out,
         struct zn_err *err)
{
    json_int_t i;

    if (!json_is_integer(v))
        goto bad;
    i = json_integer_value(v);
    if (i < lo || i > hi)
        goto bad;
    *out = (int)i;
    return 0;
bad:
    return zn_err_set(err, ZN_EINVAL, "%s: must be an integer from %lld to "
                      "%lld", label, lo, hi);
}

/* Outside these years the encoder's "%04d" would not parse again. */
static bool
time_in_range(int64_t ms)
{
    return ms >= TIME_MIN_MS && ms <= TIME_MAX_MS;
}

static int
read_time(json_t *v, const char *label, int64_t *out, struct zn_err *err)
{
    char q[QUOTE_BUF];
    const char *s;
    int64_t ms;

    if (!json_is_string(v))
        return zn_err_set(err, ZN_EINVAL, "%s: must be an RFC 3339 time "
                          "string", label);
    s = json_string_value(v);
    if (zn_clock_parse(s, &ms) < 0)
        return zn_err_set(err, ZN_EINVAL, "%s: '%s' is not an RFC 3339 time",
                          label, quote(s, q));
    if (!time_in_range(ms))
        return zn_err_set(err, ZN_EINVAL, "%s: '%s' is outside the years "
                          "0000 to 9999 UTC", label, quote(s, q));
    *out = ms;
    return 0;
}

static int
parse_names(const struct reader *r, struct zn_job *job)
{
    char q[QUOTE_BUF];
    json_t *v;

    v = member(r->root, "jid");
    if (v) {
        if (!json_is_string(v) ||
            !zn_job_jid_valid(json_string_value(v), json_string_length(v)))
            return zn_err_set(r->err, ZN_EINVAL, "jid: must be a string of 1 "
                              "to %d printable ASCII characters without "
                              "spaces", ZN_JID_MAX);
        memcpy(job->jid, json_string_value(v), json_string_length(v) + 1);
    }
    v = member(r->root, "jobtype");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > r->lim->max_jobtype)
        return zn_err_set(r->err, ZN_EINVAL, "jobtype: must be a string of "
                          "1 to %zu bytes", r->lim->max_jobtype);
    job->jobtype = strdup(json_string_value(v));
    if (!job->jobtype)
        return oom(r->err);
    v = member(r->root, "queue");
    if (!v) {
        memcpy(job->queue, "default", sizeof("default"));
        return 0;
    }
    if (!json_is_string(v))
        return zn_err_set(r->err, ZN_EINVAL, "queue: must be a string "
                          "matching [A-Za-z0-9_.:-]{1,100}");
    if (!zn_job_queue_name_valid(json_string_value(v), json_string_length(v)))
        return zn_err_set(r->err, ZN_EINVAL, "queue: '%s' does not match "
                          "[A-Za-z0-9_.:-]{1,100}",
                          quote(json_string_value(v), q));
    memcpy(job->queue, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/*
 * jansson reads values nested up to 2048 deep, but a stored job is
 * written back only as deep as zn_json_valid allows (job_encode.c): a job
 * it cannot write back could never be fetched, so it is refused here:
 * 0, or ZN_EINVAL with err set.
 */
static int
nesting_check(const struct reader *r, const char *name, const char *text,
              char open)
{
    if (zn_json_valid(text, strlen(text), open))
        return 0;
    return zn_err_set(r->err, ZN_EINVAL, "%s: nested more than %d levels "
                      "deep", name, ZN_JSON_DEPTH_MAX);
}

static int
parse_blobs(const struct reader *r, struct zn_job *job)
{
    json_t *v = member(r->root, "args");

    if (v && !json_is_array(v))
        return zn_err_set(r->err, ZN_EINVAL, "args: must be an array");
    job->args = v ? dump_compact(v) : strdup("[]");
    if (!job->args)
        return oom(r->err);
    if (nesting_check(r, "args", job->args, '[') < 0)
        return ZN_EINVAL;
    if (!r->custom)
        return 0;
    job->custom = dump_compact(r->custom);
    if (!job->custom)
        return oom(r->err);
    return nesting_check(r, "custom", job->custom, '{');
}

/* "" means "not given" for both, as in Faktory. */
static int
parse_times(const struct reader *r, struct zn_job *job, int64_t now_ms)
{
    json_t *v;
    int rc;

    v = member(r->root, "at");
    if (v && !(json_is_string(v) && json_string_length(v) == 0)) {
        rc = read_time(v, "at", &job->at, r->err);
        if (rc < 0)
            return rc;
    }
    job->created_at = now_ms;
    v = member(r->root, "created_at");
    if (v && !(json_is_string(v) && json_string_length(v) == 0)) {
        rc = read_time(v, "created_at", &job->created_at, r->err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
parse_numbers(const struct reader *r, struct zn_job *job)
{
    const struct int_field *f;
    const char *label;
    char buf[32];
    json_t *v;
    int rc;

    for (f = &int_fields[F_PRIORITY]; f <= &int_fields[F_BACKTRACE]; f++) {
        v = member(r->root, f->name);
        rc = v ? read_int(v, f->name, f->lo, f->hi, int_slot(job, f),
                          r->err) : 0;
        if (rc < 0)
            return rc;
    }
    /* Faktory says reserve_for; our clients may say timeout. */
    f = &int_fields[F_RESERVE_FOR];
    label = f->name;
    v = member(r->root, f->name);
    if (!v)
        v = own_member(r, "timeout", &label, buf, sizeof(buf));
    if (v) {
        rc = read_int(v, label, f->lo, f->hi, int_slot(job, f), r->err);
        if (rc < 0)
            return rc;
    }
    f = &int_fields[F_UNIQUE_FOR];
    v = own_member(r, f->name, &label, buf, sizeof(buf));
    return v ? read_int(v, label, f->lo, f->hi, int_slot(job, f), r->err)
             : 0;
}

static int
parse_tags(const struct reader *r, struct zn_job *job)
{
    const struct zn_job_limits *lim = r->lim;
    const char *label;
    char buf[32];
    json_t *v = own_member(r, "tags", &label, buf, sizeof(buf));
    size_t n, i;

    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > lim->max_tags)
        return zn_err_set(r->err, ZN_EINVAL, "%s: must be an array of at "
                          "most %zu strings", label, lim->max_tags);
    n = json_array_size(v);
    for (i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);

        if (!json_is_string(t) || json_string_length(t) == 0 ||
            json_string_length(t) > lim->max_tag_len)
            return zn_err_set(r->err, ZN_EINVAL, "%s[%zu]: must be a string "
                              "of 1 to %zu bytes", label, i,
                              lim->max_tag_len);
    }
    if (n == 0)
        return 0;
    job->tags = calloc(n, sizeof(*job->tags));
    if (!job->tags)
        return oom(r->err);
    for (i = 0; i < n; i++) {
        job->tags[i] = strdup(json_string_value(json_array_get(v, i)));
        if (!job->tags[i])
            return oom(r->err);
        job->ntags++;
    }
    return 0;
}

/* An array of seconds, or Faktory-friendly text like "10,30,60". */
static int
parse_backoff(const struct reader *r, struct zn_job *job)
{
    const char *label;
    char buf[32];
    json_t *v = own_member(r, "backoff", &label, buf, sizeof(buf));
    size_t n, i;
    int one = 0;

    if (!v)
        return 0;
    if (json_is_string(v)) {
        int32_t vals[ZN_BACKOFF_MAX];
        char q[QUOTE_BUF];

        if (zn_job_parse_backoff(json_string_value(v), vals, &n, NULL) < 0)
            return zn_err_set(r->err, ZN_EINVAL, "%s: '%s' is not a list of "
                              "at most %d values from 0 to %d seconds like "
                              "10,30,60", label,
                              quote(json_string_value(v), q), ZN_BACKOFF_MAX,
                              SECONDS_MAX);
        memcpy(job->backoff, vals, n * sizeof(vals[0]));
        job->nbackoff = n;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > ZN_BACKOFF_MAX)
        return zn_err_set(r->err, ZN_EINVAL, "%s: must be an array of at "
                          "most %d integers or a string like \"10,30,60\"",
                          label, ZN_BACKOFF_MAX);
    n = json_array_size(v);
    for (i = 0; i < n; i++) {
        if (read_int(json_array_get(v, i), label, 0, SECONDS_MAX, &one,
                     NULL) < 0)
            return zn_err_set(r->err, ZN_EINVAL, "%s[%zu]: must be an "
                              "integer from 0 to %d", label, i, SECONDS_MAX);
        job->backoff[i] = one;
    }
    job->nbackoff = n;
    return 0;
}

int
zn_job_check_size(size_t len, const struct zn_job_limits *lim,
                  struct zn_err *err)
{
    if (len > lim->max_payload)
        return zn_err_set(err, ZN_ETOOBIG, "job: payload of %zu bytes is over "
                          "the limit of %zu bytes", len, lim->max_payload);
    return 0;
}

/* As read_time; false where read_time would fail. "" is not given. */
static bool
plain_time(const struct zn_json_val *v, int64_t *out)
{
    char text[64];

    if (!v || (v->type == ZN_JSON_PLAIN_STRING && v->n == 0))
        return true;
    if (v->type != ZN_JSON_PLAIN_STRING || v->n >= sizeof(text))
        return false;
    memcpy(text, v->p, v->n);
    text[v->n] = '\0';
    return zn_clock_parse(text, out) == 0 && time_in_range(*out);
}

/* As parse_numbers (without backtrace and unique_for: tree only). */
static bool
plain_ints(const struct zn_json_member *m, size_t n, struct zn_job *job)
{
    static const int fields[] = {F_PRIORITY, F_RETRY, F_RESERVE_FOR};

    for (size_t i = 0; i < ZN_ARRAY_LEN(fields); i++) {
        const struct int_field *f = &int_fields[fields[i]];
        const struct zn_json_val *v = zn_json_plain_get(m, n, f->name);

        if (!v)
            continue;
        if (v->type != ZN_JSON_PLAIN_INT || v->i < f->lo || v->i > f->hi)
            return false;
        *int_slot(job, f) = (int)v->i;
    }
    return true;
}

/* As parse_blobs without custom. */
static bool
plain_args(const struct zn_json_val *args, struct zn_job *job)
{
    if (!args) {
        job->args = strdup("[]");
        return job->args != NULL;
    }
    if (args->type != ZN_JSON_PLAIN_ARRAY)
        return false;
    job->args = malloc(args->n + 1);
    if (!job->args)
        return false;
    zn_json_plain_compact(args, job->args);
    return true;
}

static bool
plain_names(const struct zn_json_member *m, size_t n,
            const struct zn_job_limits *lim, struct zn_job *job)
{
    const struct zn_json_val *jid = zn_json_plain_get(m, n, "jid");
    const struct zn_json_val *type = zn_json_plain_get(m, n, "jobtype");
    const struct zn_json_val *queue = zn_json_plain_get(m, n, "queue");

    if (jid && (jid->type != ZN_JSON_PLAIN_STRING ||
                !zn_job_jid_valid(jid->p, jid->n)))
        return false;
    if (!type || type->type != ZN_JSON_PLAIN_STRING || type->n == 0 ||
        type->n > lim->max_jobtype)
        return false;
    if (queue && (queue->type != ZN_JSON_PLAIN_STRING ||
                  !zn_job_queue_name_valid(queue->p, queue->n)))
        return false;
    if (jid) {
        memcpy(job->jid, jid->p, jid->n);
        job->jid[jid->n] = '\0';
    }
    if (queue) {
        memcpy(job->queue, queue->p, queue->n);
        job->queue[queue->n] = '\0';
    } else {
        memcpy(job->queue, "default", sizeof("default"));
    }
    job->jobtype = strndup(type->p, type->n);
    return job->jobtype != NULL;
}

/*
 * The job of a plain text that holds none of our own fields and no
 * "custom" (null counts as absent, as in member()), when it is valid:
 * then *out is set. False in every other case, out of memory included;
 * the tree reader then reads the text.
 */
static bool
parse_plain(const char *json, size_t len, const struct zn_job_limits *lim,
            int64_t now_ms, struct zn_job **out)
{
    static const char *const tree_only[] = {
        "custom", "tags", "backoff", "unique_for", "timeout", "backtrace",
    };
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    struct zn_job *job;
    size_t n;

    if (!zn_json_plain_object(json, len, m, &n))
        return false;
    for (size_t i = 0; i < ZN_ARRAY_LEN(tree_only); i++)
        if (zn_json_plain_get(m, n, tree_only[i]))
            return false;
    job = zn_job_new();
    if (!job)
        return false;
    job->created_at = now_ms;
    if (plain_names(m, n, lim, job) &&
        plain_time(zn_json_plain_get(m, n, "at"), &job->at) &&
        plain_time(zn_json_plain_get(m, n, "created_at"),
                   &job->created_at) &&
        plain_ints(m, n, job) &&
        plain_args(zn_json_plain_get(m, n, "args"), job)) {
        *out = job;
        return true;
    }
    zn_job_free(job);
    return false;
}

int
zn_job_parse(const char *json, size_t len, const struct zn_job_limits *lim,
             int64_t now_ms, struct zn_job **out, struct zn_err *err)
{
    struct zn_job_limits deflim;
    json_error_t jerr;
    json_t *root;
    int rc;

    if (!lim) {
        zn_job_limits_default(&deflim);
        lim = &deflim;
    }
    rc = zn_job_check_size(len, lim, err);
    if (rc < 0)
        return rc;
    if (parse_plain(json, len, lim, now_ms, out))
        return 0;
    /* DECODE_ANY so that "42" gets our message, not jansson's. */
    root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root)
        return json_fail(&jerr, err);
    rc = zn_job_parse_json(root, lim, now_ms, out, err);
    json_decref(root);
    return rc;
}

int
zn_job_parse_json(json_t *root, const struct zn_job_limits *lim,
                  int64_t now_ms, struct zn_job **out, struct zn_err *err)
{
    struct zn_job_limits deflim;
    struct reader r = {root, NULL, lim, err};
    struct zn_job *job = NULL;
    int rc;

    if (!lim) {
        zn_job_limits_default(&deflim);
        r.lim = &deflim;
    }
    if (!json_is_object(r.root)) {
        rc = zn_err_set(err, ZN_EINVAL, "job: must be a JSON object");
        goto fail;
    }
    r.custom = member(r.root, "custom");
    if (r.custom && !json_is_object(r.custom)) {
        rc = zn_err_set(err, ZN_EINVAL, "custom: must be an object");
        goto fail;
    }
    job = zn_job_new();
    if (!job) {
        rc = oom(err);
        goto fail;
    }
    rc = parse_names(&r, job);
    if (rc == 0)
        rc = parse_blobs(&r, job);
    if (rc == 0)
        rc = parse_times(&r, job, now_ms);
    if (rc == 0)
        rc = parse_numbers(&r, job);
    if (rc == 0)
        rc = parse_tags(&r, job);
    if (rc == 0)
        rc = parse_backoff(&r, job);
    if (rc < 0)
        goto fail;
    *out = job;
    return 0;
fail:
    zn_job_free(job);
    return rc;
}

