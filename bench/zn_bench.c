/*
 * zn_bench.c - the benchmark client: drives one server (zenith over FWP,
 * or beanstalkd) through the scenarios of bench/README.md and prints one
 * "result ..." line of key=value figures per scenario on stdout, for
 * bench/run to put in its table. Progress and errors go to stderr.
 *
 *   zn_bench --proto fwp|beanstalk --addr HOST:PORT --queue NAME
 *            --scenario push1|push8|pushb|drain4|latency[,...] [--jobs N]
 *   zn_bench --proto fwp|beanstalk --addr HOST:PORT --queue NAME
 *            --scenario work --procs N [--jobtype noop|true] [--jobs N]
 *   zn_bench --scenario fsync --dir DIR [--jobs N]
 *   zn_bench --free-port
 *
 * Equal work for both peers: a no-op job is the same JSON bytes in both,
 * {"jid":...,"jobtype":"noop","queue":...,"args":[]}, pushed by the same
 * loops; only the wire protocol differs (struct peer_ops). Connections are
 * made before a scenario's clock starts; time is CLOCK_MONOTONIC.
 *
 * The work scenario drains through worker processes instead of threads:
 * zenith's are the ones its supervisor runs (`zenith work`, configured by
 * bench/run), beanstalkd's are forked here (struct crew), each with its
 * own connection, running the same handler: nothing for jobtype noop,
 * /bin/true with the job on stdin for jobtype true.
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
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
#define PROCS_MAX 64            /* worker processes of the work scenario */
#define POLL_MAX_NS 100000000LL /* work: longest wait between two polls */
#define POLL_MIN_NS 1000000LL   /* work: shortest */
#define EXEC_PATH "/bin/true"   /* the command of jobtype true */

enum proto { PROTO_FWP, PROTO_BEANSTALK };

struct bench {
    enum proto proto;
    const char *addr;
    const char *queue;
    const char *dir;
    const char *jobtype;        /* noop, or true (runs EXEC_PATH) */
    long jobs;
    bool jobs_given;
    int procs;                  /* worker processes of the work scenario */
    char tag[32];               /* makes this process's jids unique */
    const struct peer_ops *ops;
};

/* One connection to the server under test. */
struct conn {
    const struct bench *b;
    struct zn_fwp_client *fwp;
    struct zn_beanstalk *bs;
};

/*
 * The worker processes of the work scenario. FWP: the server's own, only
 * counted. beanstalkd: forked here; they wait to read EOF on the pipe
 * whose write end go_fd is, so closing it starts them all at once.
 */
struct crew {
    int n;
    pid_t pid[PROCS_MAX];       /* beanstalkd: 0 once reaped */
    int go_fd;                  /* beanstalkd: -1 once closed */
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
 * or an error. The crew_ functions serve the work scenario: crew_ready
 * returns when n worker processes wait for jobs that cannot reach them
 * yet, crew_go lets the jobs through, crew_left says how many are not
 * done (ZN_EIO if one failed), crew_end stops what crew_ready started.
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
    int (*crew_ready)(struct conn *c, struct crew *w, struct zn_err *err);
    int (*crew_go)(struct conn *c, struct crew *w, struct zn_err *err);
    int (*crew_left)(struct conn *c, struct crew *w, long *left,
                     struct zn_err *err);
    void (*crew_end)(struct crew *w);
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
 * The job, the same bytes for both peers; its jobtype is b->jobtype (noop
 * but in the work scenario's exec runs). stamp >= 0 goes in args (the
 * latency scenario's push time). Returns the length.
 */
static size_t
make_body(const struct bench *b, const char *scen, long i, int64_t stamp,
          char *out, size_t size)
{
    char args[32] = "";
    int n;

    if (stamp >= 0)
        snprintf(args, sizeof(args), "%lld", (long long)stamp);
    n = snprintf(out, size, "{\"jid\":\"%s-%s-%ld\",\"jobtype\":\"%s\","
                 "\"queue\":\"%s\",\"args\":[%s]}", scen, b->tag, i,
                 b->jobtype, b->queue, args);
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

/* The work scenario's halves (defined with it, below). */
static int fwp_crew_ready(struct conn *c, struct crew *w, struct zn_err *err);
static int fwp_crew_go(struct conn *c, struct crew *w, struct zn_err *err);
static int fwp_crew_left(struct conn *c, struct crew *w, long *left,
                         struct zn_err *err);
static void fwp_crew_end(struct crew *w);

static const struct peer_ops fwp_ops = {
    fwp_open, fwp_close, fwp_reset, fwp_push, fwp_push_batch,
    fwp_fetch_send, fwp_fetch_recv, fwp_ack, fwp_fd,
    fwp_crew_ready, fwp_crew_go, fwp_crew_left, fwp_crew_end,
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

static int bs_crew_ready(struct conn *c, struct crew *w, struct zn_err *err);
static int bs_crew_go(struct conn *c, struct crew *w, struct zn_err *err);
static int bs_crew_left(struct conn *c, struct crew *w, long *left,
                        struct zn_err *err);
static void bs_crew_end(struct crew *w);

static const struct peer_ops bs_ops = {
    bs_open, bs_close, bs_reset, bs_push, bs_push_batch,
    bs_fetch_send, bs_fetch_recv, bs_ack, bs_fd,
    bs_crew_ready, bs_crew_go, bs_crew_left, bs_crew_end,
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

/* ---- work: drain through worker processes ------------------------------ */

static int
fwp_info(struct conn *c, json_t **out, struct zn_err *err)
{
    char *reply = NULL;
    int rc = zn_fwp_client_call(c->fwp, "INFO", NULL, &reply, err);

    *out = NULL;
    if (rc < 0)
        return rc;
    *out = reply ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    return *out ? 0 : zn_err_set(err, ZN_EPROTO, "INFO: the reply is not "
                                 "JSON");
}

/* INFO's zenith.<what> array (borrowed from info). */
static json_t *
info_list(json_t *info, const char *what)
{
    return json_object_get(json_object_get(info, "zenith"), what);
}

/* A count of INFO's entry of a queue ("enqueued", "done", ...), or 0. */
static long
info_count(json_t *queue, const char *state)
{
    return (long)json_integer_value(json_object_get(queue, state));
}

/*
 * The supervisor's workers run already (bench/run configured them): the
 * queue is paused so that they wait in FETCH while the jobs are pushed,
 * and we wait until all w->n have said HELLO. Workers that fetch other
 * queues too would make the figure mean something else: refused.
 */
static int
fwp_crew_ready(struct conn *c, struct crew *w, struct zn_err *err)
{
    char arg[128];
    int64_t t0 = now_ns();
    json_t *info, *e;
    size_t i;
    int rc, n;

    snprintf(arg, sizeof(arg), "PAUSE %s", c->b->queue);
    rc = zn_fwp_client_call(c->fwp, "QUEUE", arg, NULL, err);
    while (rc == 0) {
        rc = fwp_info(c, &info, err);
        if (rc < 0)
            break;
        n = 0;
        json_array_foreach(info_list(info, "workers"), i, e) {
            const char *q = json_string_value(json_object_get(e, "queues"));

            if (q && strcmp(q, c->b->queue) == 0)
                n++;
        }
        json_decref(info);
        if (n >= w->n)
            return n == w->n ? 0 : zn_err_set(err, ZN_ESTATE, "%d workers "
                                              "fetch '%s', not %d", n,
                                              c->b->queue, w->n);
        if (now_ns() - t0 > STALL_NS)
            return zn_err_set(err, ZN_EIO, "%d of %d workers came in 30 s",
                              n, w->n);
        pause_ns(10000000);
    }
    return rc;
}

static int
fwp_crew_go(struct conn *c, struct crew *w, struct zn_err *err)
{
    char arg[128];

    (void)w;
    snprintf(arg, sizeof(arg), "RESUME %s", c->b->queue);
    return zn_fwp_client_call(c->fwp, "QUEUE", arg, NULL, err);
}

/* From INFO's counts: a job that failed even once spoils the figure. */
static int
fwp_crew_left(struct conn *c, struct crew *w, long *left, struct zn_err *err)
{
    json_t *info, *e, *q = NULL;
    long done, failed;
    size_t i;
    int rc = fwp_info(c, &info, err);

    (void)w;
    if (rc < 0)
        return rc;
    json_array_foreach(info_list(info, "queues"), i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));

        if (name && strcmp(name, c->b->queue) == 0)
            q = e;
    }
    done = info_count(q, "done");
    failed = info_count(q, "retry") + info_count(q, "dead");
    json_decref(info);
    *left = c->b->jobs - done;
    if (failed > 0 || *left < 0)
        return zn_err_set(err, ZN_EIO, "queue '%s': %ld jobs failed, %ld "
                          "done of %ld", c->b->queue, failed, done,
                          c->b->jobs);
    return 0;
}

static void
fwp_crew_end(struct crew *w)
{
    (void)w;
}

extern char **environ;

/* Starts path with stdin from in, stderr to err: 0 or an errno. */
static int
spawn(pid_t *pid, const char *path, char *const *argv, int in, int err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t dfl;
    int rc;

    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    if (posix_spawn_file_actions_init(&fa) != 0)
        return ENOMEM;
    if (posix_spawnattr_init(&at) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return ENOMEM;
    }
    rc = posix_spawn_file_actions_adddup2(&fa, in, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, err, 2);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
                                               POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &dfl);
    if (rc == 0)
        rc = posix_spawn(pid, path, &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/*
 * The exec handler of a beanstalkd worker, as zenith's: EXEC_PATH without
 * a shell in its own process group, the job on its stdin, its stderr read
 * to the end, then reaped; exit 0 is success. Simpler than zenith's (no
 * timeout, no environment of its own): it only has to run /bin/true.
 */
static int
run_exec(const char *body, size_t len, struct zn_err *err)
{
    static char path[] = EXEC_PATH;
    char *argv[] = {path, NULL};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, status, rc;
    char buf[512];
    size_t off = 0;
    ssize_t n = 1;
    pid_t pid = -1;

    if (pipe(in) < 0 || pipe(out) < 0)
        goto fail;
    for (int k = 0; k < 2; k++) {
        fcntl(in[k], F_SETFD, FD_CLOEXEC);
        fcntl(out[k], F_SETFD, FD_CLOEXEC);
    }
    /* As zenith work starts a command: posix_spawn, its own group. */
    rc = spawn(&pid, path, argv, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    /* EPIPE is no error: a command need not read its stdin. */
    while (off < len && (n > 0 || errno == EINTR)) {
        n = write(in[1], body + off, len - off);
        off += n > 0 ? (size_t)n : 0;
    }
    close(in[1]);
    in[1] = -1;
    do
        n = read(out[0], buf, sizeof(buf));
    while (n > 0 || (n < 0 && errno == EINTR));
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            goto fail;
    close(out[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return zn_err_set(err, ZN_EIO, "'%s' failed: wait status %d", path,
                      status);
fail:
    n = errno;
    for (int k = 0; k < 2; k++) {
        if (in[k] >= 0)
            close(in[k]);
        if (out[k] >= 0)
            close(out[k]);
    }
    return zn_err_set(err, ZN_EIO, "cannot run '%s': %s", path,
                      strerror((int)n));
}

/*
 * A beanstalkd worker process: connects, says it is ready on ready_fd,
 * waits for EOF on go_fd, then reserve, handler, delete until it is
 * killed (or its connection ends: the server stopped, or 30 s with no
 * job, so an orphan does not linger).
 */
static void ZN_NORETURN
bs_worker_main(const struct bench *b, int k, int ready_fd, int go_fd)
{
    struct sigaction sa = {.sa_handler = SIG_IGN};
    struct zn_err err;
    struct conn c;
    uint64_t id;
    char *body, x;
    size_t len;
    bool noop = strcmp(b->jobtype, "noop") == 0;

    sigaction(SIGPIPE, &sa, NULL);
    conn_open(b, &c, k);
    if (write(ready_fd, "r", 1) != 1)
        die("worker %d: cannot write to the ready pipe", k);
    close(ready_fd);
    while (read(go_fd, &x, 1) < 0 && errno == EINTR)
        ;
    close(go_fd);
    /* Each delete goes with the next reserve, as zenith work's ACK goes
     * with its next FETCH. */
    if (zn_beanstalk_reserve(c.bs, &id, &body, &len, &err) < 0)
        die("worker %d: %s", k, err.msg);
    for (;;) {
        if (!noop && run_exec(body, len, &err) < 0)
            die("worker %d: %s", k, err.msg);
        free(body);
        if (zn_beanstalk_delete_reserve(c.bs, id, &id, &body, &len, &err) < 0)
            die("worker %d: %s", k, err.msg);
    }
}

static int
bs_crew_ready(struct conn *c, struct crew *w, struct zn_err *err)
{
    int ready[2], go[2], got = 0;
    ssize_t n;
    char buf[PROCS_MAX];

    if (pipe(ready) < 0)
        return zn_err_set(err, ZN_EIO, "cannot make a pipe: %s",
                          strerror(errno));
    if (pipe(go) < 0) {
        close(ready[0]);
        close(ready[1]);
        return zn_err_set(err, ZN_EIO, "cannot make a pipe: %s",
                          strerror(errno));
    }
    fflush(NULL);
    for (int k = 0; k < w->n; k++) {
        w->pid[k] = fork();
        if (w->pid[k] == 0) {
            close(ready[0]);
            close(go[1]);
            bs_worker_main(c->b, k, ready[1], go[0]);
        }
        if (w->pid[k] < 0) {
            w->pid[k] = 0;
            break;
        }
    }
    close(ready[1]);
    close(go[0]);
    w->go_fd = go[1];
    /* One byte from each; EOF before means one died (its error is out). */
    while (got < w->n) {
        n = read(ready[0], buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
        got += n > 0 ? (int)n : 0;
    }
    close(ready[0]);
    return got == w->n ? 0 : zn_err_set(err, ZN_EIO, "%d of %d worker "
                                        "processes started", got, w->n);
}

static int
bs_crew_go(struct conn *c, struct crew *w, struct zn_err *err)
{
    (void)c;
    (void)err;
    close(w->go_fd);
    w->go_fd = -1;
    return 0;
}

/* A "key: N" line of stats-tube's YAML, or -1. */
static long
yaml_count(const char *yaml, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\n%s: ", key);
    p = strstr(yaml, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

/* From stats-tube; a worker that ended or a buried job is a failure. */
static int
bs_crew_left(struct conn *c, struct crew *w, long *left, struct zn_err *err)
{
    char *yaml = NULL;
    long deleted, buried;
    int rc, status;

    for (int k = 0; k < w->n; k++) {
        if (w->pid[k] > 0 && waitpid(w->pid[k], &status, WNOHANG) > 0) {
            w->pid[k] = 0;
            return zn_err_set(err, ZN_EIO, "worker process %d ended (wait "
                              "status %d)", k, status);
        }
    }
    rc = zn_beanstalk_stats_tube(c->bs, c->b->queue, &yaml, err);
    if (rc < 0)
        return rc;
    deleted = yaml_count(yaml, "cmd-delete");
    buried = yaml_count(yaml, "current-jobs-buried");
    free(yaml);
    *left = c->b->jobs - deleted;
    if (deleted < 0 || buried != 0 || *left < 0)
        return zn_err_set(err, ZN_EIO, "tube '%s': %ld jobs buried, %ld "
                          "deleted of %ld", c->b->queue, buried, deleted,
                          c->b->jobs);
    return 0;
}

/* SIGTERM ends a worker at once: by now it waits in reserve. */
static void
bs_crew_end(struct crew *w)
{
    if (w->go_fd >= 0)
        close(w->go_fd);
    w->go_fd = -1;
    for (int k = 0; k < w->n; k++)
        if (w->pid[k] > 0)
            kill(w->pid[k], SIGTERM);
    for (int k = 0; k < w->n; k++) {
        while (w->pid[k] > 0 && waitpid(w->pid[k], NULL, 0) < 0 &&
               errno == EINTR)
            ;
        w->pid[k] = 0;
    }
}

/*
 * How long to wait before the next poll: a quarter of the time the jobs
 * left should take at the rate so far, within [POLL_MIN_NS, POLL_MAX_NS].
 * A poll costs the server a little work, so few while much is left; near
 * the end they come every millisecond, so the clock stops within one
 * or two of the last job.
 */
static int64_t
poll_wait(int64_t elapsed, long done, long left)
{
    double est;

    if (done <= 0)
        return POLL_MAX_NS / 10;
    est = (double)elapsed * (double)left / (double)done / 4;
    return est < POLL_MIN_NS ? POLL_MIN_NS
         : est > POLL_MAX_NS ? POLL_MAX_NS : (int64_t)est;
}

/*
 * The jobs are pushed (in batches, as pushb) while b->procs worker
 * processes wait; the clock starts when they are let through and stops
 * at the first poll of the server that finds every job done. Both peers
 * are polled the same way (poll_wait), over the push connection.
 */
static void
scen_work(const struct bench *b)
{
    struct crew w = {.n = b->procs, .go_fd = -1};
    int64_t t0 = 0, t1 = 0, progress = 0;
    long left = b->jobs, before;
    struct zn_err err;
    struct conn c;
    int rc;

    if (b->procs < 1)
        die("work: needs --procs N");
    conn_open(b, &c, -1);
    rc = b->ops->crew_ready(&c, &w, &err);
    for (long i = 0; rc == 0 && i < b->jobs; i += BATCH)
        rc = b->ops->push_batch(&c, "work", i,
                                b->jobs - i < BATCH ? b->jobs - i : BATCH,
                                &err);
    if (rc == 0) {
        t0 = progress = now_ns();
        rc = b->ops->crew_go(&c, &w, &err);
    }
    while (rc == 0) {
        before = left;
        rc = b->ops->crew_left(&c, &w, &left, &err);
        t1 = now_ns();
        if (rc < 0 || left == 0)
            break;
        if (left < before)
            progress = t1;
        else if (t1 - progress > STALL_NS)
            rc = zn_err_set(&err, ZN_EIO, "no job done for 30 s, %ld left",
                            left);
        else
            pause_ns(poll_wait(t1 - t0, b->jobs - left, left));
    }
    b->ops->crew_end(&w);
    if (rc < 0)
        die("work: %s", err.msg);
    printf("result proto=%s scenario=work jobtype=%s procs=%d jobs=%ld "
           "seconds=%.4f rate=%.1f\n",
           b->proto == PROTO_FWP ? "fwp" : "beanstalk", b->jobtype, b->procs,
           b->jobs, (double)(t1 - t0) / 1e9,
           (double)b->jobs / ((double)(t1 - t0) / 1e9));
    fflush(stdout);
    b->ops->close(&c);
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
            "       zn_bench --proto fwp|beanstalk --addr HOST:PORT "
            "[--queue NAME]\n"
            "                --scenario work --procs N "
            "[--jobtype noop|true] [--jobs N]\n"
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
        {"work", scen_work},
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
parse_count(const char *opt, const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        die("%s: '%s' is not a number from 1 to %ld", opt, s, max);
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
    } else if (!strcmp(name, "--jobtype")) {
        if (strcmp(v, "noop") != 0 && strcmp(v, "true") != 0)
            die("--jobtype: '%s' is not noop or true", v);
        b->jobtype = v;
    } else if (!strcmp(name, "--procs")) {
        b->procs = (int)parse_count("--procs", v, PROCS_MAX);
    } else if (!strcmp(name, "--jobs")) {
        b->jobs = parse_count("--jobs", v, 100000000);
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
    struct bench b = {.queue = "bench", .jobtype = "noop", .jobs = 100000};
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
