/*
 * test_supervisor_balance.c - the plan of balance = auto (balance.c,
 * zn__balance_plan) as data: pending jobs, runtimes and processes per
 * queue in, processes to add or take out. The integration test
 * (test_balance.c) runs the same rules on real workers.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/supervisor_int.h"

struct plan_case {
    const char *name;
    int64_t pending[3];
    int64_t avg_ms[3];
    int procs[3];
    int min_each, max_total, max_shift;
    int want[3];
};

static const struct plan_case cases[] = {
    {"one flooded queue grows by the shift", {500, 0, 0}, {100, 100, 100},
     {1, 1, 1}, 1, 5, 1, {1, 0, 0}},
    {"a larger shift, up to the total", {500, 0, 0}, {100, 100, 100},
     {1, 1, 1}, 1, 5, 3, {2, 0, 0}},
    {"at max_total nothing grows", {500, 0, 0}, {100, 100, 100},
     {3, 1, 1}, 1, 5, 2, {0, 0, 0}},
    {"drained: back towards min by the shift", {0, 0, 0}, {100, 100, 100},
     {4, 1, 1}, 1, 6, 2, {-2, 0, 0}},
    {"never below min", {0, 0, 0}, {100, 100, 100}, {1, 1, 1}, 1, 6, 3,
     {0, 0, 0}},
    {"flood moves processes from idle queues", {900, 0, 0}, {100, 100, 100},
     {1, 3, 1}, 1, 5, 1, {1, -1, 0}},
    {"two floods share, total kept", {100, 100, 0}, {100, 100, 100},
     {1, 1, 1}, 1, 6, 3, {2, 1, 0}},
    {"the longer runtime gets more", {10, 10, 0}, {100, 900, 100},
     {1, 1, 1}, 1, 6, 5, {0, 3, 0}},
    {"min 0: an empty queue may have none", {0, 0, 7}, {100, 100, 100},
     {1, 0, 0}, 0, 4, 4, {-1, 0, 4}},
};

static void
test_supervisor_balance_plan_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        const struct plan_case *c = &cases[i];
        int delta[3] = {99, 99, 99}, total = 0;

        zn__balance_plan(3, c->pending, c->avg_ms, c->procs, c->min_each,
                         c->max_total, c->max_shift, delta);
        for (size_t q = 0; q < 3; q++) {
            if (delta[q] != c->want[q])
                fail_msg("%s: queue %zu moves %d, want %d", c->name, q,
                         delta[q], c->want[q]);
            total += c->procs[q] + delta[q];
            assert_true(c->procs[q] + delta[q] >= c->min_each);
        }
        assert_true(total <= c->max_total ||
                    total <= c->procs[0] + c->procs[1] + c->procs[2]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supervisor_balance_plan_cases),
    };

    return cmocka_run_group_tests_name("supervisor balance", tests, NULL,
                                       NULL);
}
