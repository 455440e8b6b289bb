/*
 * control.c - the supervisor's commands, as the FWP verb CONTROL brings
 * them from `zenith restart | pause | continue | terminate | workers`:
 *
 *   {"cmd":"restart"[,"supervisor":"NAME"]}   every worker finishes its
 *        job, exits and is replaced at once;
 *   {"cmd":"pause"[,"supervisor":"NAME"]}     the workers finish their job
 *        and exit, and are not replaced until continue;
 *   {"cmd":"continue"[,"supervisor":"NAME"]}  paused blocks start again;
 *   {"cmd":"terminate"[,"grace_ms":N]}        serve stops: workers finish
 *        their jobs for up to N ms (default 30 s), then SIGTERM, SIGKILL;
 *   {"cmd":"workers"}                         the slots and their processes.
 *
 * "Finish the job and exit" is SIGTSTP to `zenith work`, which ACKs or
 * FAILs its job before it exits: no job is lost or run twice. Children
 * start with SIGTSTP blocked (supervisor.c), so one that has not yet set
 * up its handler keeps the signal pending instead of stopping.
 *
 * Input is untrusted: any JSON that is not one of these is refused with
 * a message, never acted on.
 */
#include "compat.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "supervisor/supervisor_int.h"

#define DEFAULT_GRACE_MS 30000
#define GRACE_MAX_MS (86400LL * 1000)

/* The blocks a command names (all when name is NULL); 0 when none. */
static size_t
select_blocks(struct zn_supervisor *s, const char *name, bool *pick)
{
    size_t n = 0;

    for (size_t i = 0; i < s->nblocks; i++) {
        pick[i] = !name || strcmp(s->blocks[i].conf->name, name) == 0;
        n += pick[i];
    }
    return n;
}

static json_t *
do_restart(struct zn_supervisor *s, const bool *pick)
{
    json_int_t n = 0;

    for (size_t i = 0; i < s->nchildren; i++) {
        struct zn__child *c = &s->children[i];

        if (!pick[c->blk - s->blocks] || !c->pid || c->retiring)
            continue;
        zn__supervisor_retire(c, "restart");
        n++;
    }
    ZN_LOG(ZN_INFO, "supervisor.restart", ZN_INT("workers", n));
    return json_pack("{s:I}", "restarting", n);
}

static json_t *
do_pause(struct zn_supervisor *s, const bool *pick, bool pause)
{
    json_t *names = json_array();

    for (size_t i = 0; i < s->nblocks; i++) {
        struct zn__block *b = &s->blocks[i];

        if (!pick[i])
            continue;
        b->paused = pause;
        json_array_append_new(names, json_string(b->conf->name));
        ZN_LOG(ZN_INFO, pause ? "supervisor.paused" : "supervisor.continued",
               ZN_STR("supervisor", b->conf->name));
        for (size_t j = b->first; j < b->first + b->n; j++) {
            struct zn__child *c = &s->children[j];

            if (pause) {
                zn__supervisor_retire(c, "pause");
            } else if (c->active && !c->pid) {
                c->fast_deaths = 0;
                zn__supervisor_spawn(c);
            }
        }
    }
    return json_pack("{s:o}", pause ? "paused" : "continued", names);
}

static const char *
slot_state(const struct zn__child *c)
{
    if (c->pid)
        return c->retiring ? "retiring" : "running";
    return c->blk->paused ? "paused" : "restarting";
}

static json_t *
do_workers(struct zn_supervisor *s)
{
    json_t *list = json_array();
    char t[64];

    for (size_t i = 0; i < s->nchildren; i++) {
        const struct zn__child *c = &s->children[i];

        if (!c->pid && !c->active)
            continue; /* a spare slot of balance = auto */
        zn_clock_format(c->started_wall_ms, t, sizeof(t));
        json_array_append_new(list, json_pack(
            "{s:s,s:i,s:s,s:I,s:s,s:s,s:s?}", "supervisor", c->conf->name,
            "slot", c->slot, "wid", c->wid, "pid", (json_int_t)c->pid,
            "queues", c->queues, "state", slot_state(c), "started_at",
            c->started_wall_ms ? t : NULL));
    }
    return json_pack("{s:o}", "workers", list);
}

struct term {
    zn_supervisor_terminate_cb *cb;
    void *ctx;
};

static json_t *
do_terminate(const struct term *t, json_t *req, struct zn_err *err)
{
    json_t *g = json_object_get(req, "grace_ms");
    json_int_t grace = DEFAULT_GRACE_MS;

    if (g && (!json_is_integer(g) || json_integer_value(g) < 0 ||
              json_integer_value(g) > GRACE_MAX_MS)) {
        zn_err_set(err, ZN_EINVAL, "CONTROL: grace_ms must be a whole "
                   "number of 0 to %lld", (long long)GRACE_MAX_MS);
        return NULL;
    }
    if (g)
        grace = json_integer_value(g);
    if (!t->cb) {
        zn_err_set(err, ZN_ESTATE, "CONTROL: terminate is not available");
        return NULL;
    }
    ZN_LOG(ZN_INFO, "supervisor.terminate", ZN_INT("grace_ms", grace));
    t->cb(t->ctx, grace);
    return json_pack("{s:b,s:I}", "terminating", 1, "grace_ms", grace);
}

/* Runs a parsed request; the reply object, or NULL with err. */
static json_t *
dispatch(struct zn_supervisor *s, const struct term *t, json_t *req,
         struct zn_err *err)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *sup = json_object_get(req, "supervisor");
    const char *name = json_string_value(sup);
    bool pick[ZN_SUPERVISOR_MAX];

    if (!cmd) {
        zn_err_set(err, ZN_EINVAL, "CONTROL: \"cmd\" must be a string");
        return NULL;
    }
    if (sup && !json_is_null(sup) && !name) {
        zn_err_set(err, ZN_EINVAL, "CONTROL: \"supervisor\" must be a "
                   "string");
        return NULL;
    }
    if (strcmp(cmd, "terminate") == 0)
        return do_terminate(t, req, err);
    if (!s) {
        zn_err_set(err, ZN_ESTATE, "CONTROL: no supervisor (serve runs with "
                   "--no-workers)");
        return NULL;
    }
    if (s->stopping) {
        zn_err_set(err, ZN_ESTATE, "CONTROL: the server is stopping");
        return NULL;
    }
    if (select_blocks(s, name, pick) == 0 && name) {
        zn_err_set(err, ZN_ENOTFOUND, "CONTROL: no supervisor '%.64s'",
                   name);
        return NULL;
    }
    if (strcmp(cmd, "restart") == 0)
        return do_restart(s, pick);
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "continue") == 0)
        return do_pause(s, pick, cmd[0] == 'p');
    if (strcmp(cmd, "workers") == 0)
        return do_workers(s);
    zn_err_set(err, ZN_EINVAL, "CONTROL: unknown cmd '%.32s' (restart, "
               "pause, continue, terminate, workers)", cmd);
    return NULL;
}

int
zn_supervisor_control(struct zn_supervisor *s, const char *arg, size_t len,
                      zn_supervisor_terminate_cb *term_cb, void *term_ctx,
                      char **reply, struct zn_err *err)
{
    const struct term t = {term_cb, term_ctx};
    json_error_t jerr;
    json_t *req = json_loadb(arg, len, 0, &jerr), *out;

    *reply = NULL;
    zn_err_clear(err);
    if (!json_is_object(req)) {
        json_decref(req);
        return zn_err_set(err, ZN_EINVAL, "CONTROL: argument must be a JSON "
                          "object");
    }
    out = dispatch(s, &t, req, err);
    json_decref(req);
    if (!out)
        return err && err->code ? err->code
                                : zn_err_set(err, ZN_ENOMEM, "out of memory");
    *reply = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return *reply ? 0 : zn_err_set(err, ZN_ENOMEM, "out of memory");
}
