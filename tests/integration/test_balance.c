/*
 * test_balance.c - balance = auto and simple on the real `zenith serve`:
 * how many `zenith work` children fetch each queue, read from /proc (the
 * --queues argument of each child of the server), sampled while a flood
 * of jobs arrives on one queue and drains.
 */
#include "compat.h"

#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/clock.h"
#include "harness.h"

#define NQ 3

static const char *const queues[NQ] = {"qa", "qb", "qc"};

struct fx {
    struct zn_srv srv;
    struct zn_fwp_client *p;
    char config[PATH_MAX];
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    zn_srv_init_dir(&f->srv);
    snprintf(f->config, sizeof(f->config), "%s/zenith.ini", f->srv.dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_srv_finish(&f->srv, f->p);
    free(f);
    return 0;
}

static void
start(struct fx *f, const char *text)
{
    zn_srv_start_config(&f->srv, f->config, text);
    f->p = zn_srv_connect(&f->srv, NULL, NULL);
}

/*
 * The queue index a child of the server fetches (its --queues), or -1 (a
 * zombie's cmdline is empty).
 */
static int
queue_of(pid_t pid)
{
    char path[64], buf[4096];
    size_t len, off = 0;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fp = fopen(path, "r");
    if (!fp)
        return -1;
    len = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[len] = '\0';
    while (off < len) {
        const char *arg = buf + off;

        off += strlen(arg) + 1;
        if (strcmp(arg, "--queues") != 0 || off >= len)
            continue;
        for (int q = 0; q < NQ; q++)
            if (strcmp(buf + off, queues[q]) == 0)
                return q;
        return -1;
    }
    return -1;
}

/* Counts the server's children per queue (zombies left out). */
static void
count_workers(const struct fx *f, int *per_queue)
{
    pid_t kids[64];
    size_t zombies, n = zn_test_children(f->srv.pid, kids, 64, &zombies);

    memset(per_queue, 0, NQ * sizeof(*per_queue));
    for (size_t i = 0; i < n && i < 64; i++) {
        int q = queue_of(kids[i]);

        if (q >= 0)
            per_queue[q]++;
    }
}

/* Samples until pred holds for the counts; checks min/max each time. */
static void
watch(struct fx *f, int min_each, int max_total, int64_t base_ms,
      bool (*pred)(const int *n), const char *what)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(base_ms);
    int n[NQ];

    for (;;) {
        count_workers(f, n);
        if (n[0] + n[1] + n[2] > max_total || n[0] < min_each ||
            n[1] < min_each || n[2] < min_each) {
            zn_srv_dump_log(&f->srv);
            fail_msg("workers %d/%d/%d break min %d or max %d", n[0], n[1],
                     n[2], min_each, max_total);
        }
        if (pred(n))
            return;
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("workers %d/%d/%d: never %s", n[0], n[1], n[2], what);
        }
        poll(NULL, 0, 25);
    }
}

static bool
one_each(const int *n)
{
    return n[0] == 1 && n[1] == 1 && n[2] == 1;
}

static bool qa_grew(const int *n) { return n[0] >= 2; }
static bool qa_full(const int *n) { return n[0] == 3; }

/*
 * One flooded queue of three, min 1, max 5, shift 1, cooldown 1 s: qa
 * gets a second process within the cooldown and its third soon after,
 * never more than 5 in all nor fewer than 1 on any queue; every job is
 * done once; when qa drains, its extra processes go (only idle ones are
 * taken, so no job is handed out twice).
 */
static void
test_balance_auto_follows_the_flood(void **state)
{
    struct fx *f = *state;
    enum { JOBS = 120 };
    size_t size = JOBS * 96, off = 0;
    char *batch = malloc(size);
    int64_t t0, deadline;

    start(f, "[supervisor \"pool\"]\nqueues = qa,qb,qc\nbalance = auto\n"
             "min_processes = 1\nmax_processes = 5\nbalance_max_shift = 1\n"
             "balance_cooldown = 1s\n");
    watch(f, 0, 5, 10000, one_each, "one worker on each queue");
    assert_non_null(batch);
    off += (size_t)snprintf(batch + off, size - off, "[");
    for (int i = 0; i < JOBS; i++)
        off += (size_t)snprintf(batch + off, size - off,
                                "%s{\"jid\":\"a%d\",\"jobtype\":\"sleep\","
                                "\"args\":[0.1],\"queue\":\"qa\"}",
                                i ? "," : "", i);
    snprintf(batch + off, size - off, "]");
    free(zn_srv_call(f->p, "PUSHB", batch));
    free(batch);
    t0 = zn_clock_mono_ms();
    watch(f, 1, 5, 2500, qa_grew, "a second worker on qa");
    printf("qa got its second worker %lld ms after the flood\n",
           (long long)(zn_clock_mono_ms() - t0));
    watch(f, 1, 5, 5000, qa_full, "three workers on qa");
    deadline = zn_clock_mono_ms() + zn_test_ms(30000);
    while (zn_srv_queue_count(&f->srv, f->p, "qa", "done") < JOBS) {
        int n[NQ];

        count_workers(f, n);
        assert_true(n[0] + n[1] + n[2] <= 5);
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(&f->srv);
            fail_msg("qa did not drain");
        }
        poll(NULL, 0, 50);
    }
    watch(f, 1, 5, 10000, one_each, "back to one worker on each queue");
    /* Each job ran once: no attempt was ended by a worker going away. */
    for (int i = 0; i < JOBS; i++) {
        char jid[16];
        json_t *j;

        snprintf(jid, sizeof(jid), "a%d", i);
        j = zn_srv_job(f->p, jid);
        assert_int_equal(json_array_size(json_object_get(j, "attempts")), 1);
        json_decref(j);
    }
}

static bool
two_one_one(const int *n)
{
    return n[0] == 2 && n[1] == 1 && n[2] == 1;
}

/* simple: four processes over three queues, the first gets the extra. */
static void
test_balance_simple_splits_evenly(void **state)
{
    struct fx *f = *state;

    start(f, "[supervisor \"pool\"]\nqueues = qa,qb,qc\nbalance = simple\n"
             "processes = 4\n");
    watch(f, 0, 4, 10000, two_one_one, "2/1/1 workers");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_balance_auto_follows_the_flood,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_balance_simple_splits_evenly,
                                        setup, teardown),
    };

    return cmocka_run_group_tests_name("zenith balance", tests, NULL, NULL);
}
