/*
 * job.h - the job model (DESIGN.md "The job") and its JSON codec.
 *
 * A struct zn_job owns all its strings. The codec is the one place that
 * turns untrusted JSON into a job: every rule has its own message naming
 * the field and what was wrong. Faktory clients keep our own fields
 * (tags, backoff, unique_for, timeout) in "custom"; we read them from the
 * top level or from custom, top level first.
 *
 * Times are Unix epoch milliseconds; 0 means "not set".
 */
#ifndef ZN_JOB_H
#define ZN_JOB_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"

#define ZN_JID_MAX 64           /* bytes, printable ASCII without space */
#define ZN_QUEUE_NAME_MAX 100   /* [A-Za-z0-9_.:-]{1,100} */
#define ZN_BACKOFF_MAX 32       /* values in a per-job backoff list */

enum zn_job_state {
    ZN_STATE_SCHEDULED = 0, /* waiting for its "at" */
    ZN_STATE_ENQUEUED,      /* ready to be fetched */
    ZN_STATE_WORKING,       /* leased to a worker */
    ZN_STATE_RETRY,         /* failed, waiting for its backoff */
    ZN_STATE_DEAD,          /* tries used up: the failed-jobs store */
    ZN_STATE_DONE,          /* acknowledged, kept for the trim window */
    ZN_STATE_COUNT
};

/* "scheduled", "enqueued", ... and back; -1 for an unknown name. */
const char *zn_job_state_name(enum zn_job_state s);
int zn_job_state_parse(const char *name);

/* Limits checked by the codec; config may change them. */
struct zn_job_limits {
    size_t max_payload;     /* bytes of one job's JSON, default 1 MiB */
    size_t max_jobtype;     /* default 256 */
    size_t max_tags;        /* default 32 */
    size_t max_tag_len;     /* default 128 */
};

/* The defaults above. */
void zn_job_limits_default(struct zn_job_limits *lim);

/* The last failure of a job, as Faktory's "failure" object. */
struct zn_job_failure {
    char *errtype;   /* "RuntimeError", "timeout", "lease expired", ... */
    char *message;
    char *backtrace; /* JSON array of strings, or NULL */
    int64_t failed_at;
};

struct zn_job {
    char jid[ZN_JID_MAX + 1];
    char queue[ZN_QUEUE_NAME_MAX + 1];
    char *jobtype;
    char *args;      /* JSON text of the args array, never NULL once parsed */
    char *custom;    /* JSON text of the custom object, or NULL */
    char **tags;
    size_t ntags;
    int32_t backoff[ZN_BACKOFF_MAX]; /* seconds; nbackoff 0 = use config */
    size_t nbackoff;
    int priority;    /* 1..9, default 5 */
    int retry;       /* -1..1000; ZN_JOB_RETRY_UNSET until defaults applied */
    int reserve_for; /* seconds, 1..86400; 0 until defaults applied */
    int unique_for;  /* seconds, 0 = none */
    int backtrace_lines; /* Faktory "backtrace": lines of backtrace to keep */
    int64_t created_at;
    int64_t enqueued_at;
    int64_t at;      /* run no earlier than; 0 = now */

    /* Kept by the store; ignored by zn_job_parse. */
    enum zn_job_state state;
    int attempts;         /* attempts started so far */
    int failures;         /* failed attempts so far (Faktory retry_count+1) */
    int64_t lease_until;  /* while working */
    int64_t next_at;      /* when scheduled/retry becomes enqueued */
    int64_t updated_at;   /* last state change */
    char *worker;         /* wid while working, or NULL */
    struct zn_job_failure failure; /* errtype NULL when never failed */
    bool quarantined;
    uint64_t seq;         /* store order: FIFO inside a priority */
};

#define ZN_JOB_RETRY_UNSET (-1000)

/* Allocates a zeroed job with state ENQUEUED and defaults unset. */
struct zn_job *zn_job_new(void);

/* Frees the job and everything it owns. NULL is a no-op. */
void zn_job_free(struct zn_job *job);

/* Deep copy; NULL on allocation failure. */
struct zn_job *zn_job_dup(const struct zn_job *job);

/* Frees the strings of a failure and zeroes it. */
void zn_job_failure_release(struct zn_job_failure *f);

/*
 * Parses and validates one job from JSON text (len bytes, not necessarily
 * NUL-terminated). now_ms fills created_at. A missing jid is left empty
 * (the engine makes one). Returns 0 and *out, or ZN_EINVAL / ZN_ETOOBIG /
 * ZN_ENOMEM with err naming the field: "jobtype: must be a string of 1 to
 * 256 bytes", "args: must be an array", "queue: 'a b' does not match
 * [A-Za-z0-9_.:-]{1,100}", "at: 'tomorrow' is not an RFC 3339 time", ...
 */
int zn_job_parse(const char *json, size_t len, const struct zn_job_limits *lim,
                 int64_t now_ms, struct zn_job **out, struct zn_err *err);

/*
 * The same from a JSON value already parsed (an element of PUSHB's array),
 * which the caller keeps. The payload size is the caller's to check, with
 * zn_job_check_size, when the value's text could exceed the limit.
 */
struct json_t; /* jansson's json_t */
int zn_job_parse_json(struct json_t *root, const struct zn_job_limits *lim,
                      int64_t now_ms, struct zn_job **out,
                      struct zn_err *err);

/* ZN_ETOOBIG, with zn_job_parse's message, when len is over the limit. */
int zn_job_check_size(size_t len, const struct zn_job_limits *lim,
                      struct zn_err *err);

/*
 * Encodes the job as JSON (Faktory's shape plus our fields): jid, queue,
 * jobtype, args, created_at, enqueued_at, at (if in the future when
 * pushed), priority, retry, reserve_for, backoff, tags, unique_for, custom,
 * and with_state adds state, attempts, worker, failure{retry_count,
 * failed_at, next_at, errtype, message, backtrace}. Returns a malloc'd
 * NUL-terminated string the caller frees, or NULL on allocation failure
 * or when stored args/custom/backtrace text no longer parses (a damaged
 * row).
 */
char *zn_job_encode(const struct zn_job *job, bool with_state);

/* True if s (len bytes) is a valid queue name. */
bool zn_job_queue_name_valid(const char *s, size_t len);

/* True if s (len bytes) is a valid jid (1..64 printable, no space). */
bool zn_job_jid_valid(const char *s, size_t len);

/*
 * Makes a new server jid into out (at least ZN_JID_MAX + 1 bytes): 26
 * characters of Crockford base32, 48 bits of milliseconds then 80 bits
 * that are random per millisecond and incremented within one, so jids made
 * by one process sort by creation time and never repeat.
 */
void zn_job_make_jid(int64_t now_ms, char *out);

/*
 * The uniqueness key of a job: a hex SHA-256 of jobtype, args and queue,
 * into out (at least 65 bytes).
 */
void zn_job_unique_key(const struct zn_job *job, char *out);

/*
 * Seconds to wait before the retry that follows failure number n (1 for
 * the first failure): backoff[n-1], the last value repeating. Uses the
 * job's own list when it has one, else the config's (cfg, ncfg).
 */
int32_t zn_job_backoff_s(const struct zn_job *job, const int32_t *cfg,
                         size_t ncfg, int n);

/* Parses "10,30,60" into out (max ZN_BACKOFF_MAX values, each 0..31536000). */
int zn_job_parse_backoff(const char *s, int32_t *out, size_t *n,
                         struct zn_err *err);

#endif
