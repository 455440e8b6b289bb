/*
 * handler.c - the handler registry, the built-in handlers and the one
 * entry point that runs a job (zn_handler_run).
 *
 * The registry is a small array searched by name: a worker has a handful
 * of jobtypes, and lookups cost nothing next to a network round trip.
 * Built-ins come first; the config adds exec and webhook handlers and may
 * replace a built-in of the same name.
 *
 * The built-ins are for tests and benchmarks, not for applications:
 * noop (ACK at once), sleep (args[0] seconds), fail (FAIL with args[0] as
 * the message), crash (SIGSEGV in the worker) and grow (allocate and touch
 * args[0] MiB and keep it, as a leaking handler does, to drive the memory
 * limits: the kept blocks stay reachable from grown, so they are no leak
 * to LeakSanitizer).
 */
#include "compat.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/utf8.h"
#include "worker/exec.h"
#include "worker/handler.h"

#define SLEEP_MAX_S 86400.0
#define GROW_MAX_MB 65536
#define PAGE_STEP 4096

/* grow's blocks, each starting with the pointer to the one before. */
static void *grown;

void
zn_handler_ok(struct zn_handler_result *res)
{
    res->ok = true;
    res->errtype[0] = '\0';
    res->message[0] = '\0';
}

void
zn_handler_fail(struct zn_handler_result *res, const char *errtype,
                const char *fmt, ...)
{
    va_list ap;

    res->ok = false;
    snprintf(res->errtype, sizeof(res->errtype), "%s", errtype);
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
}

bool
zn_handler_wait(int cancel_fd, int64_t deadline_ms)
{
    struct pollfd p = {.fd = cancel_fd, .events = POLLIN};

    for (;;) {
        int64_t left = deadline_ms - zn_clock_mono_ms();
        int rc;

        if (left <= 0)
            return false;
        rc = poll(&p, cancel_fd >= 0 ? 1 : 0,
                  left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return true;
    }
}

/* ---- built-ins (tests and benchmarks) ---------------------------------- */

static int
run_noop(const struct zn_handler *h, const struct zn_handler_job *job,
         struct zn_handler_result *res, struct zn_err *err)
{
    (void)h;
    (void)job;
    (void)err;
    zn_handler_ok(res);
    return 0;
}

static const json_t *
arg0(const struct zn_handler_job *job)
{
    return json_array_get(json_object_get(job->job, "args"), 0);
}

/*
 * Sleeps args[0] seconds (fractions allowed). It does not watch the
 * deadline: a sleep past the timeout is what the watchdog tests need.
 */
static int
run_sleep(const struct zn_handler *h, const struct zn_handler_job *job,
          struct zn_handler_result *res, struct zn_err *err)
{
    const json_t *a = arg0(job);
    double s = json_number_value(a);

    (void)h;
    (void)err;
    if (!json_is_number(a) || s < 0 || s > SLEEP_MAX_S) {
        zn_handler_fail(res, "bad args", "sleep: args[0] must be a number "
                        "of seconds from 0 to %.0f", SLEEP_MAX_S);
        return 0;
    }
    if (zn_handler_wait(job->cancel_fd,
                        zn_clock_mono_ms() + (int64_t)(s * 1000.0)))
        zn_handler_fail(res, "terminated", "the worker was told to "
                        "terminate while the job ran");
    else
        zn_handler_ok(res);
    return 0;
}

static int
run_fail(const struct zn_handler *h, const struct zn_handler_job *job,
         struct zn_handler_result *res, struct zn_err *err)
{
    const char *msg = json_string_value(arg0(job));

    (void)h;
    (void)err;
    zn_handler_fail(res, "fail", "%s", msg && *msg ? msg : "failed on "
                    "purpose");
    return 0;
}

static int
run_crash(const struct zn_handler *h, const struct zn_handler_job *job,
          struct zn_handler_result *res, struct zn_err *err)
{
    (void)h;
    (void)job;
    (void)err;
    raise(SIGSEGV);
    /* Only reached when SIGSEGV is blocked or ignored. */
    zn_handler_fail(res, "crash", "SIGSEGV was not delivered");
    return 0;
}

static int
run_grow(const struct zn_handler *h, const struct zn_handler_job *job,
         struct zn_handler_result *res, struct zn_err *err)
{
    const json_t *a = arg0(job);
    json_int_t mb = json_integer_value(a);
    volatile char *p;
    size_t size;

    (void)h;
    (void)err;
    if (!json_is_integer(a) || mb < 1 || mb > GROW_MAX_MB) {
        zn_handler_fail(res, "bad args", "grow: args[0] must be a whole "
                        "number of MiB from 1 to %d", GROW_MAX_MB);
        return 0;
    }
    size = (size_t)mb << 20;
    p = malloc(size);
    if (!p) {
        zn_handler_fail(res, "grow", "cannot allocate %lld MiB",
                        (long long)mb);
        return 0;
    }
    /* Touch every page so it counts in the RSS, not just in the map. */
    for (size_t i = 0; i < size; i += PAGE_STEP)
        p[i] = (char)i;
    memcpy((void *)p, &grown, sizeof(grown));
    grown = (void *)p;
    zn_handler_ok(res);
    return 0;
}

/* ---- the registry ------------------------------------------------------ */

static void
handler_release(struct zn_handler *h)
{
    free(h->name);
    zn_exec_argv_free(h->argv);
    free(h->url);
    memset(h, 0, sizeof(*h));
}

const struct zn_handler *
zn_handler_find(const struct zn_handler_registry *r, const char *jobtype)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, jobtype) == 0)
            return &r->v[i];
    return NULL;
}

int
zn_handler_add_take(struct zn_handler_registry *r, struct zn_handler *h,
                    struct zn_err *err)
{
    struct zn_handler *old = (struct zn_handler *)zn_handler_find(r, h->name);

    if (old) {
        handler_release(old);
        *old = *h;
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct zn_handler *v = realloc(r->v, cap * sizeof(*v));

        if (!v) {
            handler_release(h);
            return zn_err_set(err, ZN_ENOMEM, "out of memory");
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = *h;
    return 0;
}

int
zn_handler_registry_init(struct zn_handler_registry *r, struct zn_err *err)
{
    static const struct {
        const char *name;
        zn_handler_run_cb *run;
    } builtins[] = {
        {"noop", run_noop}, {"sleep", run_sleep}, {"fail", run_fail},
        {"crash", run_crash}, {"grow", run_grow},
    };

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < ZN_ARRAY_LEN(builtins); i++) {
        struct zn_handler h = {.kind = ZN_HANDLER_BUILTIN,
                               .run = builtins[i].run};
        int rc;

        h.name = strdup(builtins[i].name);
        rc = h.name ? zn_handler_add_take(r, &h, err)
                    : zn_err_set(err, ZN_ENOMEM, "out of memory");
        if (rc < 0) {
            zn_handler_registry_release(r);
            return rc;
        }
    }
    return 0;
}

void
zn_handler_registry_release(struct zn_handler_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        handler_release(&r->v[i]);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

/* ---- running a job ----------------------------------------------------- */

/*
 * Handler texts come from child processes and HTTP servers; JSON strings
 * must be UTF-8, so every byte of a broken sequence becomes '?'.
 */
static void
scrub_utf8(char *text)
{
    unsigned char *s = (unsigned char *)text;
    const unsigned char *end = s + strlen(text);

    while (s < end) {
        size_t n = zn_utf8_len(s, (size_t)(end - s));

        if (n == 0)
            *s++ = '?';
        else
            s += n;
    }
}

void
zn_handler_run(const struct zn_handler_registry *r,
               const struct zn_handler_job *job, struct zn_handler_result *res)
{
    const struct zn_handler *h = zn_handler_find(r, job->jobtype);
    struct rusage before, after;
    struct zn_err err;
    bool have_before;
    int rc;

    memset(res, 0, sizeof(*res));
    res->cpu_ms = -1;
    res->rss_kb = -1;
    if (!h) {
        zn_handler_fail(res, "unknown jobtype", "no handler for jobtype "
                        "'%.256s'", job->jobtype);
        scrub_utf8(res->message);
        return;
    }
    have_before = getrusage(RUSAGE_SELF, &before) == 0;
    zn_err_clear(&err);
    rc = h->run(h, job, res, &err);
    if (rc < 0)
        zn_handler_fail(res, "worker error", "%s", err.msg[0] ? err.msg
                        : zn_err_name(rc));
    if (res->cpu_ms < 0 && have_before && getrusage(RUSAGE_SELF, &after) == 0) {
        res->cpu_ms = zn_clock_cpu_ms(&after) - zn_clock_cpu_ms(&before);
        res->rss_kb = after.ru_maxrss;
    }
    if (!res->ok && !res->message[0])
        snprintf(res->message, sizeof(res->message), "%s", res->errtype);
    scrub_utf8(res->errtype);
    scrub_utf8(res->message);
    scrub_utf8(res->trace);
}
