/*
 * conf.c - reads [supervisor "NAME"] blocks with inih, through a table of
 * keys of their own (keys[]), as config.c does for the server's options.
 *
 * Debian's inih passes no line numbers and skips sections without keys,
 * so the line reader counts lines and opens a block itself when it reads
 * a header: an empty [supervisor "x"] is a block with every default.
 * Rules about a whole block (min_processes <= max_processes) are checked
 * when the next header or the end of the file closes it.
 */
#include "compat.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/ini.h"
#include "supervisor/conf.h"

enum key_type {
    K_QUEUES,
    K_INT,
    K_DURATION,
    K_BALANCE,
    K_BACKOFF,
};

struct key_def {
    const char *name;
    enum key_type type;
    size_t offset;
    int64_t min, max;
};

#define OFF(f) offsetof(struct zn_supervisor_conf, f)
#define DAY_MS (86400LL * 1000)

/* Ints are stored as int unless the field is int64_t (see set_int). */
static const struct key_def keys[] = {
    {"queues", K_QUEUES, OFF(queues), 0, 0},
    {"processes", K_INT, OFF(processes), 0, 1000},
    {"min_processes", K_INT, OFF(min_processes), 0, 1000},
    {"max_processes", K_INT, OFF(max_processes), 1, 1000},
    {"balance", K_BALANCE, OFF(balance), 0, 0},
    {"balance_max_shift", K_INT, OFF(balance_max_shift), 1, 1000},
    {"balance_cooldown", K_DURATION, OFF(balance_cooldown_ms), 0, DAY_MS},
    {"tries", K_INT, OFF(tries), 1, 1001},
    {"backoff", K_BACKOFF, OFF(backoff), 0, 0},
    {"timeout", K_INT, OFF(timeout_s), 1, 86400},
    {"memory", K_INT, OFF(memory_mb), 0, 1024 * 1024},
    {"memory_hard_factor", K_INT, OFF(memory_hard_factor), 1, 64},
    {"nice", K_INT, OFF(nice), -20, 19},
    {"max_jobs", K_INT, OFF(max_jobs), 0, INT64_MAX},
    {"max_time", K_DURATION, OFF(max_time_ms), 0, 365 * DAY_MS},
    {"sleep", K_DURATION, OFF(sleep_ms), 0, DAY_MS},
    {"quarantine_after", K_INT, OFF(quarantine_after), 1, 1000},
    {"grace", K_DURATION, OFF(grace_ms), 0, DAY_MS},
};

static const char *const seed_layout[] = {"default", "notifications",
                                          "reports"};

struct ctx {
    struct zn_supervisor_confs *out;
    const char *path;
    struct zn_ini_lines lines;
    struct zn_supervisor_conf *cur; /* the open block, NULL outside one */
    struct zn_err *err;
    bool failed;
    bool env;                       /* path is "env NAME": no line */
};

int
zn_supervisor_conf_default(struct zn_supervisor_conf *c, const char *name,
                           struct zn_err *err)
{
    static const int32_t backoff[] = {10, 30, 60};

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->queues = strdup(name);
    if (!c->queues)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    c->processes = 3;
    c->min_processes = 1;
    c->max_processes = 3;
    c->balance = ZN_SUPERVISOR_BALANCE_OFF;
    c->balance_max_shift = 1;
    c->balance_cooldown_ms = 3000;
    c->tries = 3;
    memcpy(c->backoff, backoff, sizeof(backoff));
    c->nbackoff = ZN_ARRAY_LEN(backoff);
    c->timeout_s = 300;
    c->memory_mb = 128;
    c->memory_hard_factor = 4;
    c->quarantine_after = 2;
    c->grace_ms = 30000;
    c->sleep_ms = 3000;
    return 0;
}

void
zn_supervisor_confs_release(struct zn_supervisor_confs *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].queues);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

/* Records "path:line: ..." and stops the reading; returns 0 (for inih). */
#define FAIL_AT(c, line, ...)                                               \
    zn_ini_fail((c)->err, &(c)->failed, (c)->path, (c)->env ? 0 : (line),   \
                __VA_ARGS__)

/* Checks the rules between the keys of the open block, then closes it. */
static void
close_block(struct ctx *c)
{
    struct zn_supervisor_conf *s = c->cur;
    int nq = 1;

    c->cur = NULL;
    if (!s || c->failed)
        return;
    if (s->min_processes > s->max_processes) {
        FAIL_AT(c, s->line, "supervisor '%s': min_processes (%d) is more "
                "than max_processes (%d)", s->name, s->min_processes,
                s->max_processes);
        return;
    }
    for (const char *p = s->queues; *p; p++)
        nq += *p == ',';
    /* Without processes, off and simple run the block's most. */
    if (!(s->given & ZN_SUPERVISOR_GIVEN_PROCESSES))
        s->processes = s->max_processes;
    if (s->balance == ZN_SUPERVISOR_BALANCE_SIMPLE && s->processes < nq) {
        FAIL_AT(c, s->line, "supervisor '%s': balance = simple needs a "
                "process for each of its %d queues, processes is %d",
                s->name, nq, s->processes);
        return;
    }
    if (s->balance == ZN_SUPERVISOR_BALANCE_AUTO &&
        (int64_t)s->min_processes * nq > s->max_processes)
        FAIL_AT(c, s->line, "supervisor '%s': balance = auto needs "
                "min_processes (%d) for each of %d queues, more than "
                "max_processes (%d)", s->name, s->min_processes, nq,
                s->max_processes);
}

/* `supervisor "NAME"`: opens a block. */
static void
open_block(struct ctx *c, const char *hdr, size_t len)
{
    struct zn_supervisor_conf *grown, *s;
    const char *p = hdr + strlen("supervisor");
    const char *end = hdr + len;
    char name[ZN_SUPERVISOR_NAME_MAX + 1];
    size_t nlen;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p >= end || *p != '"' || end - p < 2 || end[-1] != '"') {
        FAIL_AT(c, c->lines.lineno, "expected [supervisor \"NAME\"]");
        return;
    }
    nlen = (size_t)(end - p - 2);
    if (nlen < 1 || nlen > ZN_SUPERVISOR_NAME_MAX ||
        !zn_job_queue_name_valid(p + 1, nlen)) {
        FAIL_AT(c, c->lines.lineno, "supervisor name must match "
                "[A-Za-z0-9_.:-]{1,%d}", ZN_SUPERVISOR_NAME_MAX);
        return;
    }
    memcpy(name, p + 1, nlen);
    name[nlen] = '\0';
    for (size_t i = 0; i < c->out->n; i++)
        if (strcmp(c->out->v[i].name, name) == 0) {
            FAIL_AT(c, c->lines.lineno, "supervisor '%s' is declared twice "
                    "(first at line %d)", name, c->out->v[i].line);
            return;
        }
    if (c->out->n == ZN_SUPERVISOR_MAX) {
        FAIL_AT(c, c->lines.lineno, "more than %d supervisors",
                ZN_SUPERVISOR_MAX);
        return;
    }
    grown = realloc(c->out->v, (c->out->n + 1) * sizeof(*grown));
    if (!grown)
        goto oom;
    c->out->v = grown;
    s = &grown[c->out->n];
    if (zn_supervisor_conf_default(s, name, NULL) < 0)
        goto oom;
    c->out->n++;
    s->line = c->lines.lineno;
    c->cur = s;
    return;
oom:
    zn_err_set(c->err, ZN_ENOMEM, "out of memory");
    c->failed = true;
}

/* A header line: closes the open block, opens a supervisor one. */
static void
header(struct ctx *c, const char *line)
{
    const char *start = line + 1, *close = strchr(start, ']');
    size_t len;

    close_block(c);
    if (!close || c->failed)
        return; /* inih reports the syntax error */
    while (*start == ' ' || *start == '\t')
        start++;
    len = (size_t)(close - start);
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len >= 10 && strncmp(start, "supervisor", 10) == 0 &&
        (len == 10 || start[10] == ' ' || start[10] == '\t' ||
         start[10] == '"'))
        open_block(c, start, len);
}

/* Lines counted and over-long ones refused (ini.h); reads headers. */
static char *
read_line_cb(char *str, int num, void *stream)
{
    struct ctx *c = stream;
    bool too_long;
    const char *h;
    char *line;

    if (c->failed)
        return NULL;
    line = zn_ini_next_line(&c->lines, str, num, &too_long);
    if (too_long)
        FAIL_AT(c, c->lines.lineno, "line too long: the limit is %d bytes",
                num - 1);
    if (line && (h = zn_ini_header(line)))
        header(c, h);
    return c->failed ? NULL : line;
}

/* Each name of "a,b,c" must be a queue name; no empty ones. */
static int
set_queues(struct ctx *c, const char *v)
{
    struct zn_supervisor_conf *s = c->cur;
    const char *p = v;
    size_t n = 0;
    char *copy;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (!zn_job_queue_name_valid(p, len))
            return FAIL_AT(c, c->lines.lineno, "supervisor '%s': queues: "
                           "'%.*s' does not match [A-Za-z0-9_.:-]{1,100}",
                           s->name, (int)(len > 100 ? 100 : len), p);
        if (++n > 64)
            return FAIL_AT(c, c->lines.lineno, "supervisor '%s': queues: more "
                           "than 64", s->name);
        if (!comma)
            break;
        p = comma + 1;
    }
    copy = strdup(v);
    if (!copy) {
        zn_err_set(c->err, ZN_ENOMEM, "out of memory");
        c->failed = true;
        return 0;
    }
    free(s->queues);
    s->queues = copy;
    return 1;
}

static int
set_number(struct ctx *c, const struct key_def *k, const char *v)
{
    struct zn_supervisor_conf *s = c->cur;
    char *base = (char *)s + k->offset;
    long long n;
    int64_t ms;
    char *end;

    if (k->type == K_DURATION) {
        if (zn_clock_parse_duration(v, &ms) < 0)
            return FAIL_AT(c, c->lines.lineno, "supervisor '%s': %s: '%s' is "
                           "not a duration like 90s, 15m, 2h", s->name,
                           k->name, v);
        n = ms;
    } else {
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno || end == v || *end || !(*v == '-' || (*v >= '0' &&
                                                         *v <= '9')))
            return FAIL_AT(c, c->lines.lineno, "supervisor '%s': %s: '%s' is "
                           "not a whole number", s->name, k->name, v);
    }
    if (n < k->min || n > k->max)
        return FAIL_AT(c, c->lines.lineno, "supervisor '%s': %s: %s is out of "
                       "range %lld..%lld", s->name, k->name, v,
                       (long long)k->min, (long long)k->max);
    if (k->type == K_DURATION || k->offset == OFF(memory_mb) ||
        k->offset == OFF(max_jobs))
        *(int64_t *)base = n;
    else
        *(int *)base = (int)n;
    if (k->offset == OFF(processes))
        s->given |= ZN_SUPERVISOR_GIVEN_PROCESSES;
    else if (k->offset == OFF(tries))
        s->given |= ZN_SUPERVISOR_GIVEN_TRIES;
    else if (k->offset == OFF(timeout_s))
        s->given |= ZN_SUPERVISOR_GIVEN_TIMEOUT;
    return 1;
}

static int
set_key(struct ctx *c, const char *name, const char *v)
{
    struct zn_supervisor_conf *s = c->cur;
    const struct key_def *k = NULL;
    struct zn_err e;

    for (size_t i = 0; i < ZN_ARRAY_LEN(keys) && !k; i++)
        if (strcmp(keys[i].name, name) == 0)
            k = &keys[i];
    if (!k)
        return FAIL_AT(c, c->lines.lineno, "supervisor '%s': unknown key '%s'",
                       s->name, name);
    switch (k->type) {
    case K_QUEUES:
        return set_queues(c, v);
    case K_INT:
    case K_DURATION:
        return set_number(c, k, v);
    case K_BALANCE:
        if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
            s->balance = ZN_SUPERVISOR_BALANCE_OFF;
        else if (strcmp(v, "simple") == 0)
            s->balance = ZN_SUPERVISOR_BALANCE_SIMPLE;
        else if (strcmp(v, "auto") == 0)
            s->balance = ZN_SUPERVISOR_BALANCE_AUTO;
        else
            return FAIL_AT(c, c->lines.lineno, "supervisor '%s': balance: "
                           "'%s' is not off, simple or auto", s->name, v);
        return 1;
    case K_BACKOFF:
        if (zn_job_parse_backoff(v, s->backoff, &s->nbackoff, &e) < 0)
            return FAIL_AT(c, c->lines.lineno, "supervisor '%s': %s", s->name,
                           e.msg);
        s->given |= ZN_SUPERVISOR_GIVEN_BACKOFF;
        return 1;
    }
    return FAIL_AT(c, c->lines.lineno, "supervisor '%s': %s: unknown type",
                   s->name, name);
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ctx *c = user;

    if (c->failed)
        return 0;
    if (!c->cur || strncmp(section, "supervisor", 10) != 0)
        return 1; /* another module's section */
    return set_key(c, name, value);
}

static int
load_seed(struct zn_supervisor_confs *out, struct zn_err *err)
{
    out->v = calloc(ZN_ARRAY_LEN(seed_layout), sizeof(*out->v));
    if (!out->v)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    for (size_t i = 0; i < ZN_ARRAY_LEN(seed_layout); i++) {
        int rc = zn_supervisor_conf_default(&out->v[i], seed_layout[i], err);

        if (rc < 0) {
            zn_supervisor_confs_release(out);
            return rc;
        }
        out->n++;
    }
    return 0;
}

/* ZENITH_SUPERVISOR_<BLOCK>_<KEY>: upper case, other than [A-Z0-9] is _. */
static void
env_name(char *out, size_t size, const char *block, const char *key)
{
    size_t n = (size_t)snprintf(out, size, "ZENITH_SUPERVISOR_%s_%s", block,
                                key);

    for (size_t i = 18; i < n && i < size; i++) {
        char ch = out[i];

        if (ch >= 'a' && ch <= 'z')
            out[i] = (char)(ch - 32);
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            out[i] = '_';
    }
}

/*
 * The environment over the blocks read: every key of every block may be
 * set by ZENITH_SUPERVISOR_<BLOCK>_<KEY>; then each block's rules are
 * checked again. Errors read "env NAME: message".
 */
static int
load_env(struct zn_supervisor_confs *out, struct zn_err *err)
{
    char var[160], where[170];
    struct ctx c = {.out = out, .path = where, .err = err, .env = true};

    for (size_t i = 0; i < out->n && !c.failed; i++) {
        for (size_t k = 0; k < ZN_ARRAY_LEN(keys) && !c.failed; k++) {
            const char *v;

            env_name(var, sizeof(var), out->v[i].name, keys[k].name);
            v = getenv(var);
            if (!v)
                continue;
            snprintf(where, sizeof(where), "env %s", var);
            c.cur = &out->v[i];
            set_key(&c, keys[k].name, v);
        }
        snprintf(where, sizeof(where), "env ZENITH_SUPERVISOR_*");
        c.cur = &out->v[i];
        close_block(&c);
    }
    return c.failed ? (err && err->code ? err->code : ZN_EINVAL) : 0;
}

static int
load_file(struct zn_supervisor_confs *out, const char *path,
          struct zn_err *err)
{
    struct ctx c = {.out = out, .path = path, .err = err};
    int rc;

    out->v = NULL;
    out->n = 0;
    if (!path)
        return load_seed(out, err);
    rc = zn_ini_parse_file(path, &c.lines, read_line_cb, ini_cb, &c, err);
    if (rc == -1)
        return zn_ini_result(rc, false, path, err);
    close_block(&c);
    rc = zn_ini_result(rc, c.failed, path, err);
    if (rc < 0)
        return rc; /* the caller releases what was read */
    return out->n ? 0 : load_seed(out, err);
}

int
zn_supervisor_conf_load(struct zn_supervisor_confs *out, const char *path,
                        struct zn_err *err)
{
    int rc = load_file(out, path, err);

    if (rc == 0)
        rc = load_env(out, err);
    if (rc < 0)
        zn_supervisor_confs_release(out);
    return rc;
}
