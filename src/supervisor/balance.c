/*
 * balance.c - how many processes of a block work each of its queues.
 *
 *   off     every process fetches all the block's queues, in order;
 *   simple  the block's processes are split evenly: slot j works queue
 *           j mod nq, and only it;
 *   auto    each queue has its own processes, at least min_processes
 *           each and max_processes in all; every balance_cooldown the
 *           supervisor moves at most balance_max_shift processes per
 *           queue towards the queues with the longest estimated wait.
 *
 * Estimated wait of a queue = pending x average runtime / processes
 * (Horizon's time-to-clear). Pending is the enqueued count from the
 * engine's queue stats (0 for a paused queue). The average runtime is
 * measured, not stored: over one cooldown, a queue whose processes were
 * busy (it had pending jobs) finished done' - done jobs with procs
 * processes, so one job took procs x interval / (done' - done); a queue
 * never measured counts 1 s. Rejected: reading every attempt record
 * (a store query per job on the loop thread) and a runtime column (the
 * store's schema is not ours to change).
 *
 * Scale-down takes idle workers only (zn__supervisor_idle), and then by
 * SIGTSTP: one that fetched a job meanwhile finishes it before it exits.
 * A slot keeps its process while it winds down, so the processes of a
 * block never outnumber its max_processes slots.
 */
#include "compat.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "supervisor/supervisor_int.h"

#define UNKNOWN_RUNTIME_MS 1000

void
zn__balance_initial(struct zn__block *b, struct zn__child *slots)
{
    const struct zn_supervisor_conf *conf = b->conf;
    size_t k = 0;

    for (size_t j = 0; j < b->n; j++) {
        slots[j].queues = conf->queues;
        slots[j].active = conf->balance == ZN_SUPERVISOR_BALANCE_OFF;
        if (conf->balance == ZN_SUPERVISOR_BALANCE_SIMPLE) {
            slots[j].qi = j % b->nq;
            slots[j].queues = b->queues[slots[j].qi];
            slots[j].active = true;
        }
    }
    if (conf->balance != ZN_SUPERVISOR_BALANCE_AUTO)
        return;
    /* auto starts at its least: min_processes for each queue. */
    for (size_t q = 0; q < b->nq; q++)
        for (int m = 0; m < conf->min_processes && k < b->n; m++, k++) {
            slots[k].qi = q;
            slots[k].queues = b->queues[q];
            slots[k].active = true;
        }
}

/* The target of one queue (see zn__balance_plan). */
static int
target_of(int64_t pending, double wait, double total_wait, int min_each,
          int max_total)
{
    int t;

    if (pending <= 0 || total_wait <= 0)
        return min_each;
    t = (int)(wait / total_wait * max_total + 0.5);
    if (t < 1)
        t = 1;
    if (t < min_each)
        t = min_each;
    return t > max_total ? max_total : t;
}

void
zn__balance_plan(size_t nq, const int64_t *pending, const int64_t *avg_ms,
                 const int *procs, int min_each, int max_total,
                 int max_shift, int *delta)
{
    double total_wait = 0;
    int total = 0;

    for (size_t q = 0; q < nq; q++) {
        int p = procs[q] > 0 ? procs[q] : 1;

        total_wait += (double)pending[q] * (double)avg_ms[q] / p;
        total += procs[q];
    }
    /* Downs first: they make room for the ups. */
    for (size_t q = 0; q < nq; q++) {
        int p = procs[q] > 0 ? procs[q] : 1;
        double wait = (double)pending[q] * (double)avg_ms[q] / p;
        int d = target_of(pending[q], wait, total_wait, min_each, max_total) -
                procs[q];

        if (d > max_shift)
            d = max_shift;
        if (d < -max_shift)
            d = -max_shift;
        if (d < 0 && procs[q] + d < min_each)
            d = min_each - procs[q] < 0 ? min_each - procs[q] : 0;
        delta[q] = d;
        if (d < 0)
            total += d;
    }
    for (size_t q = 0; q < nq; q++) {
        if (delta[q] <= 0)
            continue;
        if (delta[q] > max_total - total)
            delta[q] = max_total - total > 0 ? max_total - total : 0;
        total += delta[q];
    }
}

/* Pending and done counts of the block's queues from the engine. */
static int
read_stats(struct zn_supervisor *s, struct zn__block *b, int64_t *pending,
           int64_t *done)
{
    struct zn_queue_stats *qs = NULL;
    struct zn_err err;
    size_t n = 0;

    if (zn_engine_queue_stats(s->engine, &qs, &n, &err) < 0) {
        ZN_LOG(ZN_WARN, "supervisor.balance_failed",
               ZN_STR("supervisor", b->conf->name), ZN_STR("error", err.msg));
        return -1;
    }
    for (size_t q = 0; q < b->nq; q++) {
        pending[q] = 0;
        done[q] = -1;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(qs[i].name, b->queues[q]) != 0)
                continue;
            pending[q] = qs[i].paused ? 0 : qs[i].count[ZN_STATE_ENQUEUED];
            done[q] = qs[i].count[ZN_STATE_DONE];
        }
    }
    free(qs);
    return 0;
}

/* Updates the runtime estimates from what got done since the last step. */
static void
measure(struct zn__block *b, const int64_t *pending, const int64_t *done,
        const int *procs, int64_t elapsed_ms)
{
    for (size_t q = 0; q < b->nq; q++) {
        int64_t n = b->done[q] >= 0 && done[q] >= 0 ? done[q] - b->done[q] : 0;

        if (!b->avg_ms[q])
            b->avg_ms[q] = UNKNOWN_RUNTIME_MS;
        /* Only a queue kept busy tells its runtime (pruning: n < 0). */
        if (n > 0 && pending[q] > 0 && procs[q] > 0 && elapsed_ms > 0) {
            int64_t ms = (int64_t)procs[q] * elapsed_ms / n;

            b->avg_ms[q] = (b->avg_ms[q] + (ms > 0 ? ms : 1)) / 2;
        }
        b->done[q] = done[q];
    }
}

/* Adds up to n processes to queue q in free slots; returns how many. */
static int
grow(struct zn__block *b, struct zn__child *slots, size_t q, int n)
{
    int added = 0;

    for (size_t j = 0; j < b->n && added < n; j++) {
        struct zn__child *c = &slots[j];

        if (c->active || c->pid)
            continue;
        c->active = true;
        c->qi = q;
        c->queues = b->queues[q];
        c->fast_deaths = 0;
        zn__supervisor_spawn(c);
        added++;
    }
    return added;
}

/* Retires up to n idle processes of queue q; returns how many. */
static int
shrink(struct zn_supervisor *s, struct zn__block *b, struct zn__child *slots,
       size_t q, int n)
{
    int taken = 0;

    for (size_t j = b->n; j-- > 0 && taken < n;) {
        struct zn__child *c = &slots[j];

        if (!c->active || c->qi != q || !zn__supervisor_idle(s, c))
            continue;
        c->active = false;
        zn__supervisor_retire(c, "balance");
        taken++;
    }
    return taken;
}

static void
step(struct zn_supervisor *s, struct zn__block *b, int64_t elapsed_ms)
{
    struct zn__child *slots = &s->children[b->first];
    int64_t *pending = calloc(b->nq, sizeof(*pending));
    int64_t *done = calloc(b->nq, sizeof(*done));
    int *procs = calloc(b->nq, sizeof(*procs));
    int *delta = calloc(b->nq, sizeof(*delta));
    bool moved = false;

    if (!pending || !done || !procs || !delta ||
        read_stats(s, b, pending, done) < 0)
        goto out;
    for (size_t j = 0; j < b->n; j++)
        if (slots[j].active)
            procs[slots[j].qi]++;
    measure(b, pending, done, procs, elapsed_ms);
    zn__balance_plan(b->nq, pending, b->avg_ms, procs,
                     b->conf->min_processes, b->conf->max_processes,
                     b->conf->balance_max_shift, delta);
    for (size_t q = 0; q < b->nq; q++)
        if (delta[q] < 0) {
            int n = shrink(s, b, slots, q, -delta[q]);

            procs[q] -= n;
            moved |= n > 0;
        }
    for (size_t q = 0; q < b->nq; q++)
        if (delta[q] > 0) {
            int n = grow(b, slots, q, delta[q]);

            procs[q] += n;
            moved |= n > 0;
        }
    for (size_t q = 0; moved && q < b->nq; q++)
        ZN_LOG(ZN_INFO, "supervisor.balanced",
               ZN_STR("supervisor", b->conf->name),
               ZN_STR("queue", b->queues[q]), ZN_INT("processes", procs[q]),
               ZN_INT("pending", pending[q]),
               ZN_INT("runtime_ms", b->avg_ms[q]));
out:
    free(pending);
    free(done);
    free(procs);
    free(delta);
}

void
zn__balance_run(struct zn_supervisor *s, int64_t now_ms)
{
    for (size_t i = 0; i < s->nblocks && !s->stopping; i++) {
        struct zn__block *b = &s->blocks[i];
        int64_t elapsed = now_ms - b->balanced_ms;

        if (b->conf->balance != ZN_SUPERVISOR_BALANCE_AUTO || b->paused ||
            (b->balanced_ms && elapsed < b->conf->balance_cooldown_ms))
            continue;
        step(s, b, b->balanced_ms ? elapsed : 0);
        b->balanced_ms = now_ms;
    }
}
