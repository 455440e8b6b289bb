/*
 * job.c - the job model: lifetime, jids, uniqueness keys and backoff. The
 * JSON codec lives in job_codec.c.
 */
#include "compat.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "queue/job.h"

static const char *const state_names[ZN_STATE_COUNT] = {
    "scheduled", "enqueued", "working", "retry", "dead", "done",
};

const char *
zn_job_state_name(enum zn_job_state s)
{
    return (unsigned)s < ZN_STATE_COUNT ? state_names[s] : "unknown";
}

int
zn_job_state_parse(const char *name)
{
    for (int i = 0; i < ZN_STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

void
zn_job_limits_default(struct zn_job_limits *lim)
{
    lim->max_payload = 1024 * 1024;
    lim->max_jobtype = 256;
    lim->max_tags = 32;
    lim->max_tag_len = 128;
}

struct zn_job *
zn_job_new(void)
{
    struct zn_job *job = calloc(1, sizeof(*job));

    if (!job)
        return NULL;
    job->state = ZN_STATE_ENQUEUED;
    job->priority = 5;
    job->retry = ZN_JOB_RETRY_UNSET;
    return job;
}

void
zn_job_failure_release(struct zn_job_failure *f)
{
    free(f->errtype);
    free(f->message);
    free(f->backtrace);
    memset(f, 0, sizeof(*f));
}

void
zn_job_free(struct zn_job *job)
{
    if (!job)
        return;
    free(job->jobtype);
    free(job->args);
    free(job->custom);
    for (size_t i = 0; i < job->ntags; i++)
        free(job->tags[i]);
    free(job->tags);
    free(job->worker);
    zn_job_failure_release(&job->failure);
    free(job);
}

/* strdup that keeps NULL as NULL; *ok drops to 0 on allocation failure. */
static char *
dup_or_null(const char *s, int *ok)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = 0;
    return d;
}

struct zn_job *
zn_job_dup(const struct zn_job *job)
{
    struct zn_job *d = malloc(sizeof(*d));
    int ok = 1;

    if (!d)
        return NULL;
    *d = *job;
    d->jobtype = dup_or_null(job->jobtype, &ok);
    d->args = dup_or_null(job->args, &ok);
    d->custom = dup_or_null(job->custom, &ok);
    d->worker = dup_or_null(job->worker, &ok);
    d->failure.errtype = dup_or_null(job->failure.errtype, &ok);
    d->failure.message = dup_or_null(job->failure.message, &ok);
    d->failure.backtrace = dup_or_null(job->failure.backtrace, &ok);
    d->tags = NULL;
    d->ntags = 0;
    if (job->ntags) {
        d->tags = calloc(job->ntags, sizeof(*d->tags));
        if (!d->tags)
            ok = 0;
        for (size_t i = 0; d->tags && i < job->ntags; i++) {
            d->tags[i] = dup_or_null(job->tags[i], &ok);
            d->ntags++;
        }
    }
    if (!ok) {
        zn_job_free(d);
        return NULL;
    }
    return d;
}

bool
zn_job_queue_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > ZN_QUEUE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

bool
zn_job_jid_valid(const char *s, size_t len)
{
    if (len == 0 || len > ZN_JID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/*
 * ULID-style jids. The state is process-wide because jids must never
 * repeat within a process whatever calls it; a mutex keeps it correct if
 * a second thread (the HTTP server) ever makes jids too.
 */
static pthread_mutex_t jid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t jid_last_ms = -1;
static uint8_t jid_rand[10];

void
zn_job_make_jid(int64_t now_ms, char *out)
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint8_t bytes[16];
    uint64_t t = (uint64_t)now_ms;
    int bit = 0;

    pthread_mutex_lock(&jid_lock);
    if (now_ms > jid_last_ms) {
        jid_last_ms = now_ms;
        randombytes_buf(jid_rand, sizeof(jid_rand));
        jid_rand[0] &= 0x7f; /* room to count up within one millisecond */
    } else {
        /* Same (or earlier) millisecond: keep order by counting up. */
        t = (uint64_t)jid_last_ms;
        for (int i = 9; i >= 0 && ++jid_rand[i] == 0; i--)
            ;
    }
    for (int i = 0; i < 6; i++)
        bytes[i] = (uint8_t)(t >> (40 - 8 * i));
    memcpy(bytes + 6, jid_rand, sizeof(jid_rand));
    pthread_mutex_unlock(&jid_lock);

    /* 128 bits as 26 base32 digits: two zero bits of padding in front. */
    for (int i = 0; i < 26; i++) {
        unsigned v = 0;

        for (int b = 0; b < 5; b++, bit++) {
            int pos = bit - 2; /* bits -2 and -1 are the padding */

            v <<= 1;
            if (pos >= 0)
                v |= (bytes[pos / 8] >> (7 - pos % 8)) & 1;
        }
        out[i] = b32[v];
    }
    out[26] = '\0';
}

void
zn_job_unique_key(const struct zn_job *job, char *out)
{
    crypto_hash_sha256_state st;
    unsigned char digest[crypto_hash_sha256_BYTES];
    const char *args = job->args ? job->args : "[]";

    /* NUL separators so ("ab","c") and ("a","bc") differ. */
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)job->jobtype,
                              strlen(job->jobtype) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)job->queue,
                              strlen(job->queue) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)args, strlen(args));
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

int32_t
zn_job_backoff_s(const struct zn_job *job, const int32_t *cfg, size_t ncfg,
                 int n)
{
    const int32_t *b = job->nbackoff ? job->backoff : cfg;
    size_t nb = job->nbackoff ? job->nbackoff : ncfg;

    if (nb == 0)
        return 0;
    if (n < 1)
        n = 1;
    return (size_t)n <= nb ? b[n - 1] : b[nb - 1];
}

int
zn_job_parse_backoff(const char *s, int32_t *out, size_t *n,
                     struct zn_err *err)
{
    int32_t vals[ZN_BACKOFF_MAX];
    const char *p = s;
    size_t count = 0;

    if (!*p)
        return zn_err_set(err, ZN_EINVAL, "backoff: must not be empty");
    for (;;) {
        int64_t v = 0;
        const char *start;

        while (*p == ' ')
            p++;
        start = p;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p - '0');
            if (v > 31536000)
                return zn_err_set(err, ZN_EINVAL,
                                  "backoff: '%s' has a value over 31536000 "
                                  "seconds", s);
            p++;
        }
        if (p == start)
            return zn_err_set(err, ZN_EINVAL,
                              "backoff: '%s' is not a list of seconds like "
                              "10,30,60", s);
        if (count == ZN_BACKOFF_MAX)
            return zn_err_set(err, ZN_EINVAL,
                              "backoff: more than %d values", ZN_BACKOFF_MAX);
        vals[count++] = (int32_t)v;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (*p != ',')
            return zn_err_set(err, ZN_EINVAL,
                              "backoff: '%s' is not a list of seconds like "
                              "10,30,60", s);
        p++;
    }
    /* Only a whole valid list replaces what out held. */
    memcpy(out, vals, count * sizeof(*vals));
    *n = count;
    return 0;
}
