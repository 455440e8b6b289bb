/*
 * test_crash.c - kill -9 under load. Producers push 20,000 jobs while the
 * server is killed at a random moment; after a restart on the same data,
 * every jid that got OK is present exactly once and the database passes
 * PRAGMA integrity_check. Ten rounds on one data directory.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "common/clock.h"
#include "harness.h"

#define ROUNDS 10
#define PRODUCERS 4
#define JOBS_PER_ROUND 20000

struct jids {
    char **v;
    size_t n, cap;
};

static void
jids_add(struct jids *j, const char *s)
{
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 1024;
        j->v = realloc(j->v, j->cap * sizeof(*j->v));
        assert_non_null(j->v);
    }
    j->v[j->n++] = strdup(s);
}

static void
jids_free(struct jids *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->v[i]);
    free(j->v);
    memset(j, 0, sizeof(*j));
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A producer's connection or push failed: the kill's doing once the round
 * reached its target (a small target can come before the last producer
 * has even connected), else a failure, said on stderr.
 */
static _Noreturn void
producer_failed(int k, const char *what, const char *msg, int target,
                volatile int *acked_count)
{
    if (__atomic_load_n(acked_count, __ATOMIC_SEQ_CST) >= target)
        _exit(0);
    fprintf(stderr, "producer %d: %s: %s\n", k, what, msg);
    _exit(1);
}

/*
 * A producer process: pushes its share, appending each jid to its file
 * only after the server answered OK. Exits 0 when its share is done or
 * the server went away after the round's target; 1 when it could not
 * start, or failed before the kill could have come.
 */
static void
produce(const struct zn_srv *s, int round, int k, const char *path,
        int target, volatile int *acked_count)
{
    struct zn_fwp_client_opts o = {.addr = s->addr, .timeout_ms = 30000};
    struct zn_fwp_client *c = NULL;
    struct zn_err err;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0) {
        fprintf(stderr, "producer %d: %s: %s\n", k, path, strerror(errno));
        _exit(1);
    }
    if (zn_fwp_client_connect(&o, &c, &err) < 0)
        producer_failed(k, "connect", err.msg, target, acked_count);
    for (int i = 0; i < JOBS_PER_ROUND / PRODUCERS; i++) {
        char job[160], line[64];
        int n;

        snprintf(job, sizeof(job),
                 "{\"jid\":\"r%d-p%d-%d\",\"jobtype\":\"crash\","
                 "\"args\":[%d]}", round, k, i, i);
        if (zn_fwp_client_call(c, "PUSH", job, NULL, &err) < 0)
            producer_failed(k, "push", err.msg, target, acked_count);
        n = snprintf(line, sizeof(line), "r%d-p%d-%d\n", round, k, i);
        if (write(fd, line, (size_t)n) != n) {
            fprintf(stderr, "producer %d: %s: short write\n", k, path);
            _exit(1);
        }
        __atomic_add_fetch(acked_count, 1, __ATOMIC_SEQ_CST);
    }
    _exit(0);
}

/* Every jid the server holds, sorted; fails the test on a duplicate. */
static void
stored_jids(const struct zn_srv *s, struct jids *out)
{
    static const char *const states[] = {"scheduled", "enqueued", "working",
                                         "retry", "dead", "done"};
    struct zn_fwp_client *c = zn_srv_connect(s, NULL, NULL);

    for (size_t k = 0; k < ZN_ARRAY_LEN(states); k++) {
        json_int_t next = 0;

        do {
            char arg[128];
            json_t *page, *job;
            size_t i;

            snprintf(arg, sizeof(arg),
                     "{\"state\":\"%s\",\"limit\":1000,\"after\":%lld}",
                     states[k], (long long)next);
            page = zn_srv_parse_take(zn_srv_call(c, "JOBS", arg));
            json_array_foreach(json_object_get(page, "jobs"), i, job)
                jids_add(out, json_string_value(json_object_get(job, "jid")));
            next = json_integer_value(json_object_get(page, "next"));
            json_decref(page);
        } while (next > 0);
    }
    zn_fwp_client_free(c);
    qsort(out->v, out->n, sizeof(*out->v), cmp_str);
    for (size_t i = 1; i < out->n; i++)
        if (!strcmp(out->v[i - 1], out->v[i]))
            fail_msg("jid '%s' is stored twice", out->v[i]);
}

static void
read_acked(const char *path, struct jids *acked)
{
    FILE *fp = fopen(path, "r");
    char line[128];

    while (fp && fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            jids_add(acked, line);
    }
    if (fp)
        fclose(fp);
}

static void
integrity_check(const struct zn_srv *s)
{
    char path[PATH_MAX + 16], *msg = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    zn_srv_db_path(s, path, sizeof(path));
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
                                        NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    msg = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (strcmp(msg, "ok") != 0)
        fail_msg("integrity_check: %s", msg);
    free(msg);
}

static void
test_crash_kill9_loses_no_acknowledged_push(void **state)
{
    struct zn_srv s = {0};
    struct jids acked = {0};
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    size_t lost_total = 0;
    /* Acknowledged pushes of the round, counted by the producers. */
    volatile int *count = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    (void)state;
    assert_true(count != MAP_FAILED);
    printf("# seed %u\n", seed);
    for (int round = 0; round < ROUNDS; round++) {
        pid_t kids[PRODUCERS];
        char paths[PRODUCERS][PATH_MAX];
        struct jids stored = {0};
        /* The moment: after a random number of the round's 20,000. */
        int target = 1 + rand_r(&seed) % (JOBS_PER_ROUND - 1);
        size_t before = acked.n, lost = 0;
        struct timespec ms1 = {0, 1000000L};
        int reached, status[PRODUCERS];
        int64_t deadline;

        *count = 0;
        zn_srv_start(&s, NULL);
        for (int k = 0; k < PRODUCERS; k++) {
            snprintf(paths[k], sizeof(paths[k]), "%s/acked-%d-%d", s.dir,
                     round, k);
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0)
                produce(&s, round, k, paths[k], target, count);
        }
        deadline = zn_clock_mono_ms() + zn_test_ms(120000);
        while (__atomic_load_n(count, __ATOMIC_SEQ_CST) < target &&
               zn_clock_mono_ms() < deadline)
            nanosleep(&ms1, NULL);
        reached = __atomic_load_n(count, __ATOMIC_SEQ_CST);
        zn_srv_kill9(&s);
        for (int k = 0; k < PRODUCERS; k++) {
            assert_int_equal(waitpid(kids[k], &status[k], 0), kids[k]);
            read_acked(paths[k], &acked);
        }
        /* The kill came after the target, not at the deadline. */
        if (reached < target)
            fail_msg("round %d: %d pushes acknowledged by the deadline, "
                     "not the %d targeted", round + 1, reached, target);
        for (int k = 0; k < PRODUCERS; k++)
            if (!WIFEXITED(status[k]) || WEXITSTATUS(status[k]) != 0)
                fail_msg("round %d: producer %d failed before the kill "
                         "(wait status %d)", round + 1, k, status[k]);
        /* Restart on the same data: everything acknowledged is there. */
        integrity_check(&s);
        zn_srv_start(&s, NULL);
        stored_jids(&s, &stored);
        for (size_t i = 0; i < acked.n; i++)
            if (!bsearch(&acked.v[i], stored.v, stored.n, sizeof(*stored.v),
                         cmp_str)) {
                fprintf(stderr, "lost acknowledged jid '%s'\n", acked.v[i]);
                lost++;
            }
        printf("# round %d: killed at %d acknowledged, %zu pushes "
               "acknowledged, %zu stored in all, %zu lost\n", round + 1,
               target, acked.n - before, stored.n, lost);
        /* Pushes committed whose OK the kill cut off: one per producer. */
        assert_true(stored.n >= acked.n);
        assert_true(stored.n - acked.n <= (size_t)(round + 1) * PRODUCERS);
        lost_total += lost;
        jids_free(&stored);
        assert_int_equal(zn_srv_stop(&s), 0);
        integrity_check(&s);
        assert_int_equal(lost, 0);
    }
    printf("# %d rounds, %zu acknowledged pushes, %zu lost\n", ROUNDS, acked.n,
           lost_total);
    assert_true(acked.n > 0);
    jids_free(&acked);
    munmap((void *)count, sizeof(int));
    zn_srv_cleanup(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_kill9_loses_no_acknowledged_push),
    };

    return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
