/*
 * zn_bench.c - the benchmark client: drives one server (zenith over FWP,
 * or beanstalkd) through the scenarios of bench/README.md and prints one
 * "result ..." line of key=value figures per scenario on stdout, for
 * bench/run to put in its table. Progress and errors go to stderr.
 *
 *   zn_bench --proto fwp|beanstalk --addr HOST:PORT --queue NAME
 *            --scenario push1|push8|pushb|drain4|latency[,...] [--jobs N]
 *   zn_bench --scenario fsync --dir DIR [--jobs N]
 *   zn_bench --free-port
 *
 * Equal work for both peers: a no-op job is the same JSON bytes in both,
 * {"jid":...,"jobtype":"noop","queue":...,"args":[]}, pushed by the same
 * loops; only the wire protocol differs (struct peer_ops). Connections are
 * made before a scenario's clock starts; time is CLOCK_MONOTONIC.
 *
 * Scenarios run in the order given, on one queue (FWP) or tube
 * (beanstalkd): a drain after a push drains what that push left. Before a
 * push scenario, FWP sends FLUSH so each starts from an empty store;
 * beanstalkd gets a fresh tube from bench/run instead.
 *
 * Non-goals: being a load generator for anything else; every error is
 * fatal (exit 1) because a figure from a failed run would mislead.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "beanstalk.h"
#include "fwp/client.h"
#include "queue/job.h"

#define PRODUCERS 8
#define CONSUMERS 4
#define BATCH 1000
#define LATENCY_JOBS 1000
#define FSYNC_BLOCK 4096
#define FSYNC_SPAN 256          /* blocks the overwrite phase cycles over */
#define TIMEOUT_MS 30000        /* per request; a stall this long is a bug */
#define STALL_NS (30LL * 1000000000)
#define BODY_MAX 256
#define BS_PRI 1024             /* beanstalkd's conventional default */
#define BS_TTR 300              /* as zenith's default lease */

enum proto { PROTO_FWP, PROTO_BEANSTALK };

struct bench {
    enum proto proto;
    const char *addr;
    const char *queue;
    const char *dir;
    long jobs;
    bool jobs_given;
    char tag[32];               /* makes this process's jids unique */
    const struct peer_ops *ops;
};

/* One connection to the server under test. */
struct conn {
    const struct bench *b;
    struct zn_fwp_client *fwp;
    struct zn_beanstalk *bs;
};

/* A job as a consumer got it: what it needs to ACK and to time it. */
struct got {
    char jid[ZN_JID_MAX + 1];   /* FWP */
    uint64_t id;                /* beanstalkd */
    int64_t stamp_ns;           /* args[0] of a latency job, else -1 */
};

/*
 * What differs between the peers. open's consumer is -1 for a producer,
 * else the consumer's number (FWP: part of its wid). fetch_recv returns 1
 * with a job, 0 when the server had none (FWP's FETCH gives up after 2 s),
 * or an error.
 */
struct peer_ops {
    int (*open)(struct conn *c, int consumer, struct zn_err *err);
    void (*close)(struct conn *c);
    int (*reset)(struct conn *c, struct zn_err *err);
    int (*push)(struct conn *c, const char *body, size_t len,
                struct zn_err *err);
    int (*push_batch)(struct conn *c, const char *scen, long first, long n,
                      struct zn_err *err);
    int (*fetch_send)(struct conn *c, struct zn_err *err);
    int (*fetch_recv)(struct conn *c, struct got *g, struct zn_err *err);
    int (*ack)(struct conn *c, const struct got *g, struct zn_err *err);
    int (*fd)(const struct conn *c);
};

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
pause_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * The no-op job, the same bytes for both peers. stamp >= 0 goes in args
 * (the latency scenario's push time). Returns the length.
 */
static size_t
make_body(const struct bench *b, const char *scen, long i, int64_t stamp,
          char *out, size_t size)
{
    char args[32] = "";
    int n;

    if (stamp >= 0)
        snprintf(args, sizeof(args), "%lld", (long long)stamp);
    n = snprintf(out, size, "{\"jid\":\"%s-%s-%ld\",\"jobtype\":\"noop\","
                 "\"queue\":\"%s\",\"args\":[%s]}", scen, b->tag, i,
                 b->queue, args);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* Reads the latency stamp back from a job's JSON ("args":[N]). */
static int64_t
body_stamp(const char *json)
{
    const char *p = json ? strstr(json, "\"args\":[") : NULL;
    char *end;
    long long v;

    if (!p || p[8] < '0' || p[8] > '9')
        return -1;
    errno = 0;
    v = strtoll(p + 8, &end, 10);
    return errno || *end != ']' ? -1 : (int64_t)v;
}

/* ---- FWP (zenith) ------------------------------------------------------ */

static int
fwp_open(struct conn *c, int consumer, struct zn_err *err)
{
    char wid[ZN_FWP_WID_MAX + 1];
    struct zn_fwp_client_opts o = {.addr = c->b->addr,
                                   .hostname = "zn-bench",
                                   .timeout_ms = TIMEOUT_MS};

    if (consumer >= 0) {
        snprintf(wid, sizeof(wid), "bench-%s-%d", c->b->tag, consumer);
        o.wid = wid;
    }
    return zn_fwp_client_connect(&o, &c->fwp, err);
}

static void
fwp_close(struct conn *c)
{
    zn_fwp_client_free(c->fwp);
    c->fwp = NULL;
}

static int
fwp_reset(struct conn *c, struct zn_err *err)
{
    return zn_fwp_client_call(c->fwp, "FLUSH", NULL, NULL, err);
}

static int
fwp_push(struct conn *c, const char *body, size_t len, struct zn_err *err)
{
    (void)len;
    return zn_fwp_client_call(c->fwp, "PUSH", body, NULL, err);
}

/* PUSHB of jobs first..first+n-1; the reply lists refused jobs. */
static int
fwp_push_batch(struct conn *c, const char *scen, long first, long n,
               struct zn_err *err)
{
    char *arr = malloc((size_t)n * BODY_MAX + 3), *reply = NULL;
    size_t len = 0;
    int rc;

    if (!arr)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    arr[len++] = '[';
    for (long i = 0; i < n; i++) {
        if (i > 0)
            arr[len++] = ',';
        len += make_body(c->b, scen, first + i, -1, arr + len, BODY_MAX);
    }
    arr[len++] = ']';
    arr[len] = '\0';
    rc = zn_fwp_client_call(c->fwp, "PUSHB", arr, &reply, err);
    if (rc == 0 && (!reply || strcmp(reply, "{}") != 0))
        rc = zn_err_set(err, ZN_EPROTO, "PUSHB refused jobs: %.300s",
                        reply ? reply : "(nil)");
    free(reply);
    free(arr);
    return rc;
}

static int
fwp_fetch_send(struct conn *c, struct zn_err *err)
{
    return zn_fwp_client_send(c->fwp, "FETCH", c->b->queue, err);
}

static int
fwp_fetch_recv(struct conn *c, struct got *g, struct zn_err *err)
{
    char *job = NULL;
    const char *p, *q;
    int rc = zn_fwp_client_recv(c->fwp, &job, err);

    if (rc < 0 || !job)
        return rc;
    p = strstr(job, "\"jid\":\"");
    q = p ? strchr(p + 7, '"') : NULL;
    if (!q || q - (p + 7) > ZN_JID_MAX) {
        rc = zn_err_set(err, ZN_EPROTO, "FETCH: no jid in '%.200s'", job);
        free(job);
        return rc;
    }
    memcpy(g->jid, p + 7, (size_t)(q - (p + 7)));
    g->jid[q - (p + 7)] = '\0';
    g->stamp_ns = body_stamp(job);
    free(job);
    return 1;
}

static int
fwp_ack(struct conn *c, const struct got *g, struct zn_err *err)
{
    char arg[ZN_JID_MAX + 16];

    snprintf(arg, sizeof(arg), "{\"jid\":\"%s\"}", g->jid);
    return zn_fwp_client_call(c->fwp, "ACK", arg, NULL, err);
}

static int
fwp_fd(const struct conn *c)
{
    return zn_fwp_client_fd(c->fwp);
}

static const struct peer_ops fwp_ops = {
    fwp_open, fwp_close, fwp_reset, fwp_push, fwp_push_batch,
    fwp_fetch_send, fwp_fetch_recv, fwp_ack, fwp_fd,
};

/* ---- beanstalkd -------------------------------------------------------- */

static int
bs_open(struct conn *c, int consumer, struct zn_err *err)
{
    int rc = zn_beanstalk_connect(c->b->addr, TIMEOUT_MS, &c->bs, err);

    if (rc == 0 && consumer >= 0)
        rc = zn_beanstalk_watch(c->bs, c->b->queue, err);
    else if (rc == 0)
        rc = zn_beanstalk_use(c->bs, c->b->queue, err);
    return rc;
}

static void
bs_close(struct conn *c)
{
    zn_beanstalk_free(c->bs);
    c->bs = NULL;
}

/* A fresh tube per scenario (bench/run) is beanstalkd's FLUSH. */
static int
bs_reset(struct conn *c, struct zn_err *err)
{
    (void)c;
    (void)err;
    return 0;
}

static int
bs_push(struct conn *c, const char *body, size_t len, struct zn_err *err)
{
    uint64_t id;

    return zn_beanstalk_put(c->bs, BS_PRI, 0, BS_TTR, body, len, &id, err);
}

/*
 * beanstalkd has no batch put: the n puts go out in one write and their
 * n replies are read after it.
 */
static int
bs_push_batch(struct conn *c, const char *scen, long first, long n,
              struct zn_err *err)
{
    char body[BODY_MAX];
    uint64_t id;
    size_t len;
    int rc = 0;

    for (long i = 0; rc == 0 && i < n; i++) {
        len = make_body(c->b, scen, first + i, -1, body, sizeof(body));
        rc = zn_beanstalk_put_send(c->bs, BS_PRI, 0, BS_TTR, body, len, err);
    }
    if (rc == 0)
        rc = zn_beanstalk_flush(c->bs, err);
    for (long i = 0; rc == 0 && i < n; i++)
        rc = zn_beanstalk_put_recv(c->bs, &id, err);
    return rc;
}

static int
bs_fetch_send(struct conn *c, struct zn_err *err)
{
    return zn_beanstalk_reserve_send(c->bs, err);
}

static int
bs_fetch_recv(struct conn *c, struct got *g, struct zn_err *err)
{
    char *body = NULL;
    int rc = zn_beanstalk_reserve_recv(c->bs, &g->id, &body, NULL, err);

    if (rc < 0)
        return rc;
    g->stamp_ns = body_stamp(body);
    free(body);
    return 1;
}

static int
bs_ack(struct conn *c, const struct got *g, struct zn_err *err)
{
    return zn_beanstalk_delete(c->bs, g->id, err);
}

static int
bs_fd(const struct conn *c)
{
    return zn_beanstalk_fd(c->bs);
}

static const struct peer_ops bs_ops = {
    bs_open, bs_close, bs_reset, bs_push, bs_push_batch,
    bs_fetch_send, bs_fetch_recv, bs_ack, bs_fd,
};

/* ---- helpers ----------------------------------------------------------- */

static void ZN_NORETURN ZN_PRINTF(1, 2)
die(const char *fmt, ...)
{
    va_list ap;

    fputs("zn_bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void
conn_open(const struct bench *b, struct conn *c, int consumer)
{
    struct zn_err err;

    memset(c, 0, sizeof(*c));
    c->b = b;
    if (b->ops->open(c, consumer, &err) < 0)
        die("cannot open a connection to %s: %s", b->addr, err.msg);
}

static void
reset(const struct bench *b, struct conn *c)
{
    struct zn_err err;

    if (b->ops->reset(c, &err) < 0)
        die("cannot empty the server before a scenario: %s", err.msg);
}

static void
report_rate(const struct bench *b, const char *scen, long jobs, int64_t ns)
{
    double s = (double)ns / 1e9;

    printf("result proto=%s scenario=%s jobs=%ld seconds=%.4f rate=%.1f\n",
           b->proto == PROTO_FWP ? "fwp" : "beanstalk", scen, jobs, s,
           s > 0 ? (double)jobs / s : 0.0);
    fflush(stdout);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0..100) of v (sorted, n > 0). */
static int64_t
percentile(const int64_t *v, size_t n, int p)
{
    size_t rank = ((size_t)p * n + 99) / 100;

    return v[rank > 0 ? rank - 1 : 0];
}

/* ---- push scenarios ---------------------------------------------------- */

static void
scen_push1(const struct bench *b)
{
    char body[BODY_MAX];
    struct zn_err err;
    struct conn c;
    int64_t t0;

    conn_open(b, &c, -1);
    reset(b, &c);
    t0 = now_ns();
    for (long i = 0; i < b->jobs; i++) {
        size_t len = make_body(b, "push1", i, -1, body, sizeof(body));

        if (b->ops->push(&c, body, len, &err) < 0)
            die("push1: job %ld: %s", i, err.msg);
    }
    report_rate(b, "push1", b->jobs, now_ns() - t0);
    b->ops->close(&c);
}

struct producer {
    const struct bench *b;
    struct conn c;
    long first, n;
    pthread_barrier_t *start;
    struct zn_err err;
    int rc;
};

static void *
producer_main(void *arg)
{
    struct producer *p = arg;
    char body[BODY_MAX];

    pthread_barrier_wait(p->start);
    for (long i = p->first; p->rc == 0 && i < p->first + p->n; i++) {
        size_t len = make_body(p->b, "push8", i, -1, body, sizeof(body));

        p->rc = p->b->ops->push(&p->c, body, len, &p->err);
    }
    return NULL;
}

static void
scen_push8(const struct bench *b)
{
    struct producer p[PRODUCERS];
    pthread_t th[PRODUCERS];
    pthread_barrier_t start;
    int64_t t0;

    pthread_barrier_init(&start, NULL, PRODUCERS + 1);
    for (int k = 0; k < PRODUCERS; k++) {
        memset(&p[k], 0, sizeof(p[k]));
        p[k].b = b;
        p[k].start = &start;
        p[k].first = b->jobs * k / PRODUCERS;
        p[k].n = b->jobs * (k + 1) / PRODUCERS - p[k].first;
        conn_open(b, &p[k].c, -1);
    }
    reset(b, &p[0].c);
    for (int k = 0; k < PRODUCERS; k++)
        if (pthread_create(&th[k], NULL, producer_main, &p[k]) != 0)
            die("push8: cannot start a thread");
    pthread_barrier_wait(&start);
    t0 = now_ns();
    for (int k = 0; k < PRODUCERS; k++)
        pthread_join(th[k], NULL);
    report_rate(b, "push8", b->jobs, now_ns() - t0);
    for (int k = 0; k < PRODUCERS; k++) {
        if (p[k].rc < 0)
            die("push8: producer %d: %s", k, p[k].err.msg);
        b->ops->close(&p[k].c);
    }
    pthread_barrier_destroy(&start);
}

static void
scen_pushb(const struct bench *b)
{
    struct zn_err err;
    struct conn c;
    int64_t t0;

    conn_open(b, &c, -1);
    reset(b, &c);
    t0 = now_ns();
    for (long i = 0; i < b->jobs; i += BATCH) {
        long n = b->jobs - i < BATCH ? b->jobs - i : BATCH;

        if (b->ops->push_batch(&c, "pushb", i, n, &err) < 0)
            die("pushb: batch at job %ld: %s", i, err.msg);
    }
    report_rate(b, "pushb", b->jobs, now_ns() - t0);
    b->ops->close(&c);
}

/* ---- drain ------------------------------------------------------------- */

struct drain {
    const struct bench *b;
    atomic_long done;           /* jobs acknowledged */
    atomic_llong end_ns;        /* when done reached b->jobs */
    atomic_bool failed;
    sem_t finished;             /* posted at the last job, or on failure */
    pthread_barrier_t start;
};

struct consumer {
    struct drain *d;
    struct conn c;
    struct zn_err err;
    int rc;
};

/* One job: fetch, ack, count. 1 = counted, 0 = none came, < 0 = error. */
static int
drain_one(struct consumer *w)
{
    const struct peer_ops *ops = w->d->b->ops;
    struct got g;
    int rc;

    rc = ops->fetch_send(&w->c, &w->err);
    if (rc == 0)
        rc = ops->fetch_recv(&w->c, &g, &w->err);
    if (rc <= 0)
        return rc;
    rc = ops->ack(&w->c, &g, &w->err);
    if (rc < 0)
        return rc;
    if (atomic_fetch_add(&w->d->done, 1) + 1 == w->d->b->jobs) {
        atomic_store(&w->d->end_ns, now_ns());
        sem_post(&w->d->finished);
    }
    return 1;
}

static void *
consumer_main(void *arg)
{
    struct consumer *w = arg;
    struct drain *d = w->d;
    int64_t progress;
    int rc;

    pthread_barrier_wait(&d->start);
    progress = now_ns();
    while (atomic_load(&d->done) < d->b->jobs && !atomic_load(&d->failed)) {
        rc = drain_one(w);
        if (rc > 0)
            progress = now_ns();
        else if (rc == 0 && now_ns() - progress > STALL_NS)
            rc = zn_err_set(&w->err, ZN_EIO, "no job for 30 s");
        /* An error after the last job is the shutdown() that ends us. */
        if (rc < 0 && atomic_load(&d->done) < d->b->jobs) {
            w->rc = rc;
            atomic_store(&d->failed, true);
            sem_post(&d->finished);
        }
        if (rc < 0)
            break;
    }
    return NULL;
}

/*
 * The clock stops when the last job is acknowledged: the consumers that
 * wait in FETCH or reserve then are released by shutdown(), so a 2 s FETCH
 * timeout never counts.
 */
static void
scen_drain4(const struct bench *b)
{
    struct consumer w[CONSUMERS];
    pthread_t th[CONSUMERS];
    struct drain d = {.b = b};
    int64_t t0;

    sem_init(&d.finished, 0, 0);
    pthread_barrier_init(&d.start, NULL, CONSUMERS + 1);
    for (int k = 0; k < CONSUMERS; k++) {
        memset(&w[k], 0, sizeof(w[k]));
        w[k].d = &d;
        conn_open(b, &w[k].c, k);
    }
    for (int k = 0; k < CONSUMERS; k++)
        if (pthread_create(&th[k], NULL, consumer_main, &w[k]) != 0)
            die("drain4: cannot start a thread");
    pthread_barrier_wait(&d.start);
    t0 = now_ns();
    while (sem_wait(&d.finished) < 0 && errno == EINTR)
        ;
    for (int k = 0; k < CONSUMERS; k++)
        shutdown(b->ops->fd(&w[k].c), SHUT_RDWR);
    for (int k = 0; k < CONSUMERS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < CONSUMERS; k++)
        if (w[k].rc < 0)
            die("drain4: consumer %d after %ld jobs: %s", k,
                atomic_load(&d.done), w[k].err.msg);
    report_rate(b, "drain4", b->jobs, atomic_load(&d.end_ns) - t0);
    for (int k = 0; k < CONSUMERS; k++)
        b->ops->close(&w[k].c);
    pthread_barrier_destroy(&d.start);
    sem_destroy(&d.finished);
}

/* ---- latency ----------------------------------------------------------- */

struct latency {
    const struct bench *b;
    struct conn c;
    long n;
    int64_t *ns;                /* push start -> job received, per job */
    sem_t waiting;              /* the consumer has sent its FETCH */
    struct zn_err err;
    int rc;
};

static void *
latency_consumer(void *arg)
{
    struct latency *l = arg;
    const struct peer_ops *ops = l->b->ops;
    struct got g;
    int rc = 0;

    for (long i = 0; rc == 0 && i < l->n; i++) {
        rc = ops->fetch_send(&l->c, &l->err);
        if (rc < 0)
            break;
        sem_post(&l->waiting);
        /* FWP's FETCH gives up after 2 s with no job: ask again. */
        while ((rc = ops->fetch_recv(&l->c, &g, &l->err)) == 0 &&
               (rc = ops->fetch_send(&l->c, &l->err)) == 0)
            ;
        if (rc < 0)
            break;
        l->ns[i] = now_ns() - g.stamp_ns;
        if (g.stamp_ns < 0)
            rc = zn_err_set(&l->err, ZN_EPROTO, "job without a time stamp");
        else
            rc = ops->ack(&l->c, &g, &l->err);
    }
    l->rc = rc;
    if (rc < 0)
        sem_post(&l->waiting);
    return NULL;
}

/*
 * One job at a time on an idle server: the consumer already waits in
 * FETCH (reserve) when the producer pushes; the job carries its push time.
 */
static void
scen_latency(const struct bench *b)
{
    struct latency l = {.b = b};
    char body[BODY_MAX];
    struct zn_err err;
    struct conn prod;
    pthread_t th;

    l.n = b->jobs_given && b->jobs < LATENCY_JOBS ? b->jobs : LATENCY_JOBS;
    l.ns = calloc((size_t)l.n, sizeof(*l.ns));
    if (!l.ns)
        die("latency: out of memory");
    sem_init(&l.waiting, 0, 0);
    conn_open(b, &prod, -1);
    reset(b, &prod);
    conn_open(b, &l.c, 0);
    if (pthread_create(&th, NULL, latency_consumer, &l) != 0)
        die("latency: cannot start a thread");
    for (long i = 0; i < l.n; i++) {
        int64_t t;
        size_t len;

        while (sem_wait(&l.waiting) < 0 && errno == EINTR)
            ;
        if (l.rc < 0)
            break;
        /* Let the FETCH reach the server and park there: an idle server. */
        pause_ns(1000000);
        t = now_ns();
        len = make_body(b, "lat", i, t, body, sizeof(body));
        if (b->ops->push(&prod, body, len, &err) < 0)
            die("latency: push %ld: %s", i, err.msg);
    }
    pthread_join(th, NULL);
    if (l.rc < 0)
        die("latency: consumer: %s", l.err.msg);
    qsort(l.ns, (size_t)l.n, sizeof(*l.ns), cmp_i64);
    printf("result proto=%s scenario=latency jobs=%ld p50_us=%.1f "
           "p99_us=%.1f min_us=%.1f max_us=%.1f\n",
           b->proto == PROTO_FWP ? "fwp" : "beanstalk", l.n,
           (double)percentile(l.ns, (size_t)l.n, 50) / 1e3,
           (double)percentile(l.ns, (size_t)l.n, 99) / 1e3,
           (double)l.ns[0] / 1e3, (double)l.ns[l.n - 1] / 1e3);
    fflush(stdout);
    b->ops->close(&prod);
    b->ops->close(&l.c);
    sem_destroy(&l.waiting);
    free(l.ns);
}

/* ---- the machine's fsync ----------------------------------------------- */

/*
 * n writes of 4 KiB, each followed by sync_fn; overwrite cycles over the
 * first FSYNC_SPAN blocks (a file that does not grow, as SQLite's WAL
 * after its first checkpoint and beanstalkd's preallocated binlog), else
 * the file grows. Fills ns[] with each write+sync time.
 */
static int
time_syncs(int fd, bool overwrite, int (*sync_fn)(int), int64_t *ns, long n)
{
    char block[FSYNC_BLOCK];

    memset(block, 'z', sizeof(block));
    for (long i = 0; i < n; i++) {
        off_t off = (off_t)(overwrite ? i % FSYNC_SPAN : i) * FSYNC_BLOCK;
        int64_t t = now_ns();

        if (pwrite(fd, block, sizeof(block), off) != (ssize_t)sizeof(block) ||
            sync_fn(fd) < 0)
            return -1;
        ns[i] = now_ns() - t;
    }
    qsort(ns, (size_t)n, sizeof(*ns), cmp_i64);
    return 0;
}

static void
scen_fsync(const struct bench *b)
{
    static const struct {
        const char *name;
        bool overwrite;
        int (*fn)(int);
    } kinds[] = {
        {"overwrite_fdatasync", true, fdatasync},
        {"overwrite_fsync", true, fsync},
        {"append_fdatasync", false, fdatasync},
        {"append_fsync", false, fsync},
    };
    long n = b->jobs_given ? b->jobs : LATENCY_JOBS;
    /* Room for the FSYNC_SPAN writes that prepare the overwrite phase. */
    int64_t *ns = calloc((size_t)(n > FSYNC_SPAN ? n : FSYNC_SPAN),
                         sizeof(*ns));
    char path[4096];

    if (!b->dir || !ns)
        die("fsync: needs --dir DIR");
    printf("result scenario=fsync ops=%ld", n);
    for (size_t k = 0; k < ZN_ARRAY_LEN(kinds); k++) {
        int fd;

        snprintf(path, sizeof(path), "%s/zn-bench-fsync.%zu", b->dir, k);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        /* The overwrite phase writes blocks that already exist. */
        if (fd < 0 || (kinds[k].overwrite &&
                       time_syncs(fd, false, fsync, ns, FSYNC_SPAN) < 0) ||
            time_syncs(fd, kinds[k].overwrite, kinds[k].fn, ns, n) < 0)
            die("fsync: '%s': %s", path, strerror(errno));
        close(fd);
        unlink(path);
        printf(" %s_p50_us=%.1f %s_p99_us=%.1f", kinds[k].name,
               (double)percentile(ns, (size_t)n, 50) / 1e3, kinds[k].name,
               (double)percentile(ns, (size_t)n, 99) / 1e3);
    }
    printf("\n");
    free(ns);
}

/* ---- main -------------------------------------------------------------- */

/* Prints a TCP port of 127.0.0.1 that was free a moment ago. */
static int
free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        die("cannot find a free port: %s", strerror(errno));
    printf("%d\n", ntohs(sin.sin_port));
    close(fd);
    return 0;
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: zn_bench --proto fwp|beanstalk --addr HOST:PORT "
            "[--queue NAME]\n"
            "                --scenario push1|push8|pushb|drain4|latency"
            "[,...] [--jobs N]\n"
            "       zn_bench --scenario fsync --dir DIR [--jobs N]\n"
            "       zn_bench --free-port\n");
}

static void
run_scenario(const struct bench *b, const char *name)
{
    static const struct {
        const char *name;
        void (*fn)(const struct bench *);
    } scens[] = {
        {"push1", scen_push1}, {"push8", scen_push8}, {"pushb", scen_pushb},
        {"drain4", scen_drain4}, {"latency", scen_latency},
        {"fsync", scen_fsync},
    };

    for (size_t i = 0; i < ZN_ARRAY_LEN(scens); i++) {
        if (strcmp(scens[i].name, name) != 0)
            continue;
        if (!b->ops && strcmp(name, "fsync") != 0)
            die("%s: needs --proto and --addr", name);
        fprintf(stderr, "zn_bench: %s%s%s ...\n",
                !b->ops ? "" : b->proto == PROTO_FWP ? "fwp" : "beanstalk",
                b->ops ? " " : "", name);
        scens[i].fn(b);
        return;
    }
    die("unknown scenario '%s'", name);
}

static long
parse_jobs(const char *s)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > 100000000)
        die("--jobs: '%s' is not a number from 1 to 100000000", s);
    return v;
}

/* One "--name value" pair of the command line. */
static void
set_option(struct bench *b, const char *name, char *v, char **scens)
{
    if (!strcmp(name, "--proto")) {
        if (strcmp(v, "fwp") != 0 && strcmp(v, "beanstalk") != 0)
            die("--proto: '%s' is not fwp or beanstalk", v);
        b->proto = !strcmp(v, "fwp") ? PROTO_FWP : PROTO_BEANSTALK;
        b->ops = b->proto == PROTO_FWP ? &fwp_ops : &bs_ops;
    } else if (!strcmp(name, "--addr")) {
        b->addr = v;
    } else if (!strcmp(name, "--queue")) {
        b->queue = v;
    } else if (!strcmp(name, "--dir")) {
        b->dir = v;
    } else if (!strcmp(name, "--scenario")) {
        *scens = v;
    } else if (!strcmp(name, "--jobs")) {
        b->jobs = parse_jobs(v);
        b->jobs_given = true;
    } else {
        die("unknown argument '%s %s' (see --help)", name, v);
    }
}

static void
parse_args(struct bench *b, int argc, char **argv, char **scens)
{
    int i = 1;

    while (i < argc) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(argv[i], "--free-port"))
            exit(free_port());
        if (i + 1 >= argc)
            die("%s: missing value (see --help)", argv[i]);
        set_option(b, argv[i], argv[i + 1], scens);
        i += 2;
    }
}

int
main(int argc, char **argv)
{
    struct bench b = {.queue = "bench", .jobs = 100000};
    char *scens = NULL, *name, *rest;

    parse_args(&b, argc, argv, &scens);
    if (!scens) {
        usage(stderr);
        return 2;
    }
    if (b.ops && !b.addr)
        die("--proto needs --addr HOST:PORT");
    if (!zn_job_jid_valid(b.queue, strlen(b.queue)) || strlen(b.queue) > 100)
        die("--queue: '%s' is not a valid queue name", b.queue);
    snprintf(b.tag, sizeof(b.tag), "%ld", (long)getpid());
    for (rest = scens; (name = strsep(&rest, ",")) != NULL;)
        if (*name)
            run_scenario(&b, name);
    return 0;
}
