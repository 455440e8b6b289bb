/*
 * server_admin.c - the FWP commands that inspect and administer: INFO (the
 * server, its queues and workers), FLUSH, QUEUE PAUSE/RESUME/REMOVE,
 * CONTROL (to the supervisor), and zenith's own JOBS (queries) and MUTATE
 * (Faktory's changes to many jobs). Their replies are held until the
 * commit, like a push's. The hot commands are in server.c.
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "fwp/server_int.h"

/* A JOBS page ends early past this much JSON (jobs_page). */
#define JOBS_PAGE_BYTES (16u << 20)

/* v as a bulk reply; NULL (a failed allocation) is an error. */
static void
reply_json(struct conn *c, const json_t *v, const char *verb)
{
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    char msg[64];

    if (text) {
        reply_bulk(c, text);
    } else {
        snprintf(msg, sizeof(msg), "%s: out of memory", verb);
        reply_err(c, msg);
    }
    free(text);
}

/* The queues' counts, or NULL with err set when the store fails. */
static json_t *
info_queues(struct zn_fwp_server *s, json_t *sizes, int64_t *total,
            struct zn_err *err)
{
    struct zn_queue_stats *qs = NULL;
    int64_t now = zn_engine_now(s->engine);
    json_t *list;
    size_t n = 0;

    *total = 0;
    if (zn_engine_queue_stats(s->engine, &qs, &n, err) < 0)
        return NULL;
    list = json_array();
    if (!list) {
        free(qs);
        zn_err_set(err, ZN_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *q = json_object();

        json_object_set_new(q, "name", json_string(qs[i].name));
        json_object_set_new(q, "paused", json_boolean(qs[i].paused));
        for (int k = 0; k < ZN_STATE_COUNT; k++)
            json_object_set_new(q, zn_job_state_name(k),
                                json_integer(qs[i].count[k]));
        json_object_set_new(q, "oldest_age_s", json_integer(
            qs[i].oldest_enqueued_at ? (now - qs[i].oldest_enqueued_at) / 1000
                                     : 0));
        json_array_append_new(list, q);
        json_object_set_new(sizes, qs[i].name,
                            json_integer(qs[i].count[ZN_STATE_ENQUEUED]));
        *total += qs[i].count[ZN_STATE_ENQUEUED];
    }
    free(qs);
    return list;
}

/*
 * The value of the worker's label "key:value" (zenith work labels itself
 * "supervisor:NAME" and "queues:a,b"), or NULL.
 */
static json_t *
label_value(json_t *labels, const char *key)
{
    size_t i, n = strlen(key);
    json_t *l;

    json_array_foreach(labels, i, l) {
        const char *v = json_string_value(l);

        if (v && strncmp(v, key, n) == 0 && v[n] == ':')
            return json_string(v + n + 1);
    }
    return json_null();
}

/* Adds the job worker w has in hand (jid, since) from the working list. */
static void
info_current_job(json_t *o, const struct worker *w,
                 const struct zn_store_list *working)
{
    char t[64];

    for (size_t i = 0; i < working->n; i++) {
        const struct zn_job *job = working->jobs[i];

        if (job->worker && strcmp(job->worker, w->wid) == 0) {
            zn_clock_format(job->updated_at, t, sizeof(t));
            json_object_set_new(o, "jid", json_string(job->jid));
            json_object_set_new(o, "working_since", json_string(t));
            return;
        }
    }
    json_object_set_new(o, "jid", json_null());
    json_object_set_new(o, "working_since", json_null());
}

/* The workers, or NULL with err set when the store fails. */
static json_t *
info_workers(struct zn_fwp_server *s, struct zn_err *err)
{
    struct zn_store_query q = {
        .states = ZN_STATE_BIT(ZN_STATE_WORKING), .limit = 1000,
    };
    struct zn_store_list working = {0};
    json_t *list;
    struct worker *w;
    char t1[64], t2[64];

    if (zn_engine_list(s->engine, &q, &working, err) < 0)
        return NULL;
    list = json_array();
    if (!list) {
        zn_store_list_release(&working);
        zn_err_set(err, ZN_ENOMEM, "out of memory");
        return NULL;
    }
    LIST_FOREACH(w, &s->workers, link) {
        json_t *labels = w->labels;
        json_t *o;

        zn_clock_format(w->started_at, t1, sizeof(t1));
        zn_clock_format(w->last_beat, t2, sizeof(t2));
        o = json_pack(
            "{s:s,s:s,s:I,s:O,s:s,s:s,s:I,s:s,s:i,s:o,s:o,s:I}", "wid",
            w->wid, "hostname", w->hostname, "pid", (json_int_t)w->pid,
            "labels", labels, "started_at", t1, "last_beat", t2,
            "rss_kb", (json_int_t)w->rss_kb, "state",
            w->state[0] ? w->state : "running", "connections", w->conns,
            "supervisor", label_value(labels, "supervisor"), "queues",
            label_value(labels, "queues"), "jobs", (json_int_t)w->jobs);
        if (o)
            info_current_job(o, w, &working);
        json_array_append_new(list, o);
    }
    zn_store_list_release(&working);
    return list;
}

void
zn__fwp_cmd_info(struct conn *c)
{
    struct zn_fwp_server *s = c->srv;
    struct zn_store_counters ctr = {0};
    struct rusage ru;
    json_t *sizes = json_object(), *root, *queues = NULL, *workers = NULL;
    int64_t now = zn_engine_now(s->engine), total = 0;
    struct zn_err err;
    char ts[64], msg[sizeof(err.msg) + 8];

    /* A store that cannot answer gets its error, not counts of 0. */
    if (zn_engine_counters(s->engine, &ctr, &err) == 0)
        queues = info_queues(s, sizes, &total, &err);
    if (queues)
        workers = info_workers(s, &err);
    if (!workers) {
        json_decref(sizes);
        json_decref(queues);
        snprintf(msg, sizeof(msg), "INFO: %s", err.msg);
        reply_err(c, msg);
        return;
    }
    getrusage(RUSAGE_SELF, &ru);
    zn_clock_format(now, ts, sizeof(ts));
    root = json_pack(
        "{s:{s:I,s:I,s:I,s:I,s:o,s:{}},s:s,s:{s:s,s:s,s:I,s:I,s:I,s:I},"
        "s:{s:o,s:o}}",
        "faktory", "total_enqueued", (json_int_t)total, "total_queues",
        (json_int_t)json_object_size(sizes), "total_processed",
        (json_int_t)ctr.processed, "total_failures", (json_int_t)ctr.failed,
        "queues", sizes, "tasks",
        "server_utc_time", ts,
        "server", "description", "zenith", "faktory_version", "1.9.0",
        "uptime", (json_int_t)((now - s->started_at) / 1000), "connections",
        (json_int_t)s->nconns, "command_count", (json_int_t)s->commands,
        "used_memory_mb", (json_int_t)(ru.ru_maxrss / 1024),
        "zenith", "queues", queues, "workers", workers);
    reply_json(c, root, "INFO");
    json_decref(root);
}

/* CONTROL {json}: handed to the supervisor (server.h). */
void
zn__fwp_cmd_control(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct zn_err err = {0};
    char *reply = NULL, *bulk;

    if (!c->srv->control_cb) {
        reply_err(c, "CONTROL: no supervisor (serve runs with --no-workers)");
        return;
    }
    if (c->srv->control_cb(c->srv->control_ctx, cmd->arg, cmd->arg_len,
                           &reply, &err) < 0) {
        reply_err(c, err.msg);
        return;
    }
    bulk = reply ? bulk_text(reply) : NULL;
    free(reply);
    if (!bulk) {
        reply_err(c, "CONTROL: out of memory");
        return;
    }
    hold(c, bulk, bulk);
}

void
zn__fwp_cmd_flush(struct conn *c)
{
    struct zn_err err;

    if (zn_engine_flush(c->srv->engine, &err) < 0)
        reply_err(c, err.msg);
    else
        hold_ok(c);
}

/* QUEUE PAUSE|RESUME|REMOVE name... */
void
zn__fwp_cmd_queue(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    static const char *const subs[] = {"PAUSE", "RESUME", "REMOVE"};
    char *names[FETCH_QUEUES_MAX];
    const char *sp = memchr(cmd->arg, ' ', cmd->arg_len);
    size_t sublen = sp ? (size_t)(sp - cmd->arg) : cmd->arg_len;
    struct zn_err err;
    int which = -1, n, i, rc = 0;
    int64_t removed;
    char msg[sizeof(err.msg) + 160];

    for (int k = 0; k < 3; k++)
        if (sublen == strlen(subs[k]) && !memcmp(cmd->arg, subs[k], sublen))
            which = k;
    if (which < 0) {
        reply_err(c, "QUEUE: subcommand must be PAUSE, RESUME or REMOVE");
        return;
    }
    n = sp ? zn_fwp_split_names(sp + 1, cmd->arg_len - sublen - 1, names,
                                FETCH_QUEUES_MAX, &err)
           : 0;
    if (n <= 0) {
        reply_err(c, n < 0 ? err.msg : "QUEUE: at least one queue name is "
                                       "required");
        return;
    }
    for (i = 0; i < n; i++) {
        if (which == 2)
            rc = zn_engine_clear_queue(c->srv->engine, names[i], &removed,
                                       &err);
        else
            rc = zn_engine_pause(c->srv->engine, names[i], which == 0, &err);
        if (rc < 0)
            break;
        ZN_LOG(ZN_INFO, "queue.changed", ZN_STR("queue", names[i]),
               ZN_STR("action", subs[which]));
    }
    /* The queues before the one that failed stay changed: say so. */
    if (rc < 0 && i > 0)
        snprintf(msg, sizeof(msg), "QUEUE %s: %s (done for the %d "
                 "queue%s before '%s')", subs[which], err.msg, i,
                 i == 1 ? "" : "s", names[i]);
    else if (rc < 0)
        snprintf(msg, sizeof(msg), "QUEUE %s: %s", subs[which], err.msg);
    zn_fwp_names_free(names, (size_t)n);
    if (rc < 0)
        reply_err(c, msg);
    else
        hold_ok(c);
}

/* ---- zenith's own commands: JOBS (queries), MUTATE (Faktory's) -------- */

/* Reads the filter fields shared by JOBS and MUTATE; strings borrowed. */
static int
read_query(struct zn_engine *e, json_t *o, struct zn_store_query *q,
           const char *verb, struct zn_err *err)
{
    static const char *const keys[] = {"queue", "jobtype", "tag", "jid"};
    const char **dst[] = {&q->queue, &q->jobtype, &q->tag, &q->jid};
    json_t *v;

    for (size_t i = 0; i < ZN_ARRAY_LEN(keys); i++) {
        v = json_object_get(o, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_string(v))
            return zn_err_set(err, ZN_EINVAL, "%s: %s must be a string", verb,
                              keys[i]);
        *dst[i] = json_string_value(v);
    }
    v = json_object_get(o, "older_than");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return zn_err_set(err, ZN_EINVAL, "%s: older_than must be a "
                              "number of seconds", verb);
        q->updated_to = zn_engine_age_cutoff(e, json_integer_value(v));
    }
    return 0;
}

/*
 * Appends job as JSON to b; a job whose row cannot be written back (a
 * damaged row) as {"jid":...,"unreadable":true}. False when out of memory.
 */
static bool
job_add(struct evbuffer *b, const struct zn_job *job)
{
    char *text = zn_job_encode(job, true);
    json_t *o;
    int rc;

    /* A jid may hold '"' or '\\': jansson writes it escaped. */
    if (!text) {
        o = json_pack("{s:s,s:b}", "jid", job->jid, "unreadable", 1);
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    rc = text ? evbuffer_add(b, text, strlen(text)) : -1;
    free(text);
    return rc == 0;
}

/*
 * A page of jobs as JOBS' reply into b: {"jobs":[...],"next":N}. Past
 * JOBS_PAGE_BYTES of jobs the page ends early, next at its last job, so
 * that a page of big jobs is not held whole many times over.
 */
static bool
jobs_page(struct evbuffer *b, const struct zn_store_list *l)
{
    uint64_t next = l->next;
    bool ok = evbuffer_add(b, "{\"jobs\":[", 9) == 0;

    for (size_t i = 0; ok && i < l->n; i++) {
        ok = (i == 0 || evbuffer_add(b, ",", 1) == 0) &&
             job_add(b, l->jobs[i]);
        if (i + 1 < l->n && evbuffer_get_length(b) > JOBS_PAGE_BYTES) {
            next = l->jobs[i]->seq;
            break;
        }
    }
    return ok && evbuffer_add_printf(b, "],\"next\":%llu}",
                                     (unsigned long long)next) > 0;
}

/* The attempts of job jid as compact JSON (malloc'd), or NULL with err. */
static char *
attempts_text(struct zn_engine *e, const char *jid, struct zn_err *err)
{
    struct zn_attempt *a = NULL;
    json_t *list;
    size_t n = 0;
    char t1[64], t2[64], *text;

    if (zn_engine_attempts(e, jid, &a, &n, err) < 0)
        return NULL;
    list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        zn_clock_format(a[i].started_at, t1, sizeof(t1));
        zn_clock_format(a[i].ended_at, t2, sizeof(t2));
        json_array_append_new(list, json_pack(
            "{s:i,s:s?,s:s,s:s?,s:s?,s:s?,s:s?,s:I,s:I}", "n", a[i].n,
            "worker", a[i].worker, "started_at", t1, "ended_at",
            a[i].ended_at ? t2 : NULL, "outcome", a[i].outcome, "errtype",
            a[i].errtype, "message", a[i].message, "cpu_ms",
            (json_int_t)a[i].cpu_ms, "rss_kb", (json_int_t)a[i].rss_kb));
    }
    zn_attempts_free(a, n);
    text = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    if (!text)
        zn_err_set(err, ZN_ENOMEM, "JOBS: out of memory");
    return text;
}

/*
 * JOBS {"state":..., "queue":..., "jobtype":..., "tag":..., "after":N,
 * "limit":N} -> {"jobs":[...], "next":N}; JOBS {"jid":...} -> {"job":
 * {...}, "attempts":[...]}.
 */
void
zn__fwp_cmd_jobs(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    struct zn_engine *e = c->srv->engine;
    struct zn_store_query q = {0};
    struct zn_store_list l = {0};
    struct zn_job *job = NULL;
    struct evbuffer *b = NULL;
    json_error_t jerr;
    json_t *o, *v;
    char *attempts = NULL;
    struct zn_err err;
    bool ok;

    o = json_loadb(cmd->arg, cmd->arg_len, 0, &jerr);
    if (!json_is_object(o)) {
        reply_err(c, "JOBS: argument must be a JSON object");
        goto done;
    }
    if (read_query(e, o, &q, "JOBS", &err) < 0) {
        reply_err(c, err.msg);
        goto done;
    }
    v = json_object_get(o, "state");
    if (v) {
        int s = json_is_string(v) ? zn_job_state_parse(json_string_value(v))
                                  : -1;

        if (s < 0) {
            reply_err(c, "JOBS: state must be scheduled, enqueued, working, "
                         "retry, dead or done");
            goto done;
        }
        q.states = ZN_STATE_BIT(s);
    }
    v = json_object_get(o, "after");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        reply_err(c, "JOBS: after must be a cursor from an earlier page");
        goto done;
    }
    q.after = v ? (uint64_t)json_integer_value(v) : 0;
    v = json_object_get(o, "limit");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
              json_integer_value(v) > 1000)) {
        reply_err(c, "JOBS: limit must be a whole number from 1 to 1000");
        goto done;
    }
    q.limit = v ? (size_t)json_integer_value(v) : 100;
    b = evbuffer_new();
    if (!b) {
        reply_err(c, "JOBS: out of memory");
        goto done;
    }
    if (q.jid) {
        if (zn_engine_get(e, q.jid, &job, &err) < 0) {
            reply_err(c, err.msg);
            goto done;
        }
        attempts = attempts_text(e, q.jid, &err);
        if (!attempts) {
            reply_err(c, err.msg);
            goto done;
        }
        ok = evbuffer_add(b, "{\"job\":", 7) == 0 && job_add(b, job) &&
             evbuffer_add_printf(b, ",\"attempts\":%s}", attempts) > 0;
    } else {
        if (zn_engine_list(e, &q, &l, &err) < 0) {
            reply_err(c, err.msg);
            goto done;
        }
        ok = jobs_page(b, &l);
    }
    if (ok)
        reply_bulk_buffer(c, b);
    else
        reply_err(c, "JOBS: out of memory");
done:
    if (b)
        evbuffer_free(b);
    free(attempts);
    zn_store_list_release(&l);
    zn_job_free(job);
    json_decref(o);
}

/* Requeues (dead only) or removes the jobs matching q; adds to *total. */
static int
mutate_apply(struct zn_engine *e, bool requeue, struct zn_store_query *q,
             int64_t *total, struct zn_err *err)
{
    int64_t n = 0;
    int rc = requeue ? zn_engine_retry_dead(e, q, &n, err)
                     : zn_engine_remove(e, q, &n, err);

    *total += n;
    return rc;
}

/*
 * MUTATE {"cmd":"requeue"|"discard"|"clear", "target":"dead"|"retries"|
 * "scheduled", "filter":{"jids":[...], "jid":..., "jobtype":..., "queue":
 * ..., "older_than":SECONDS}}, as Faktory (plus queue and older_than).
 * "clear" ignores the filter: it empties the target.
 */
void
zn__fwp_cmd_mutate(struct conn *c, const struct zn_fwp_cmd *cmd)
{
    static const char *const targets[] = {"dead", "retries", "scheduled"};
    static const enum zn_job_state tstate[] = {
        ZN_STATE_DEAD, ZN_STATE_RETRY, ZN_STATE_SCHEDULED};
    struct zn_engine *e = c->srv->engine;
    struct zn_store_query q = {0};
    json_t *o, *filter, *jids, *jid;
    const char *verb, *target;
    struct zn_err err;
    int t = -1, rc = 0;
    int64_t total = 0;
    bool requeue;
    size_t i;

    o = json_loadb(cmd->arg, cmd->arg_len, 0, NULL);
    verb = json_string_value(json_object_get(o, "cmd"));
    target = json_string_value(json_object_get(o, "target"));
    for (size_t k = 0; target && k < ZN_ARRAY_LEN(targets); k++)
        if (!strcmp(target, targets[k]))
            t = (int)k;
    if (!json_is_object(o) || !verb || t < 0 ||
        (strcmp(verb, "requeue") && strcmp(verb, "discard") &&
         strcmp(verb, "clear"))) {
        reply_err(c, "MUTATE: needs {\"cmd\": requeue|discard|clear, "
                     "\"target\": dead|retries|scheduled, \"filter\": {...}}");
        goto done;
    }
    requeue = !strcmp(verb, "requeue");
    if (requeue && tstate[t] != ZN_STATE_DEAD) {
        reply_err(c, "MUTATE: requeue applies to the dead target only");
        goto done;
    }
    filter = strcmp(verb, "clear") ? json_object_get(o, "filter") : NULL;
    if (filter && !json_is_object(filter)) {
        reply_err(c, "MUTATE: filter must be an object");
        goto done;
    }
    if (read_query(e, filter, &q, "MUTATE", &err) < 0) {
        reply_err(c, err.msg);
        goto done;
    }
    q.states = ZN_STATE_BIT(tstate[t]);
    jids = json_object_get(filter, "jids");
    json_array_foreach(jids, i, jid) {
        if (!json_is_string(jid)) {
            reply_err(c, "MUTATE: filter.jids must be an array of strings");
            goto done;
        }
    }
    if (jids && !json_is_array(jids)) {
        reply_err(c, "MUTATE: filter.jids must be an array of strings");
        goto done;
    }
    if (!jids) {
        rc = mutate_apply(e, requeue, &q, &total, &err);
    } else {
        json_array_foreach(jids, i, jid) {
            q.jid = json_string_value(jid);
            rc = mutate_apply(e, requeue, &q, &total, &err);
            if (rc < 0)
                break;
        }
    }
    if (rc < 0) {
        reply_err(c, err.msg);
        goto done;
    }
    ZN_LOG(ZN_INFO, "jobs.mutated", ZN_STR("cmd", verb),
           ZN_STR("target", target), ZN_INT("jobs", total));
    hold_ok(c);
done:
    json_decref(o);
}
