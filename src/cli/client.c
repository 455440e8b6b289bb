/*
 * client.c - the commands that talk to a running server over FWP: push,
 * status, failed, queue. They share one way to find the server
 * (--server, --password, or ZENITH_SERVER / ZENITH_PASSWORD) and print
 * errors as "zenith: message" with exit status 1 (2 for usage).
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/clock.h"
#include "fwp/client.h"
#include "queue/job.h"

#define EXIT_USAGE 2

int
zn__cli_take_conn_flags(int argc, char **argv, struct zn__cli_conn *o)
{
    int out = 0;

    o->server = getenv("ZENITH_SERVER");
    o->password = getenv("ZENITH_PASSWORD");
    o->json = false;
    if (!o->server || !*o->server)
        o->server = "127.0.0.1:7419";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--server") || !strcmp(argv[i], "--password")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "zenith: %s: missing value\n", argv[i]);
                return -1;
            }
            if (argv[i][2] == 's')
                o->server = argv[++i];
            else
                o->password = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            o->json = true;
        } else {
            argv[out++] = argv[i];
        }
    }
    return out;
}

bool
zn__cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

static struct zn_fwp_client *
connect_or_say(const struct zn__cli_conn *o)
{
    struct zn_fwp_client_opts co = {.addr = o->server,
                                    .password = o->password};
    struct zn_fwp_client *c = NULL;
    struct zn_err err;

    if (zn_fwp_client_connect(&co, &c, &err) < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        return NULL;
    }
    return c;
}

int
zn__cli_call(const struct zn__cli_conn *o, const char *verb, const char *arg,
             char **out)
{
    struct zn_fwp_client *c = connect_or_say(o);
    struct zn_err err;
    int rc;

    if (!c)
        return 1;
    rc = zn_fwp_client_call(c, verb, arg, out, &err);
    zn_fwp_client_free(c);
    if (rc < 0) {
        /* A refusal is "-ERR message": the kind adds nothing for people. */
        bool refused = rc == ZN_EPROTO && !strncmp(err.msg, "ERR ", 4);

        fprintf(stderr, "zenith: %s\n", err.msg + (refused ? 4 : 0));
        return 1;
    }
    return 0;
}

/* ---- push ----------------------------------------------------------- */

static void
push_usage(FILE *out)
{
    fprintf(out,
            "usage: zenith push JOBTYPE [ARGS-JSON] [--queue Q] "
            "[--at TIME | --in SECONDS]\n"
            "                   [--priority P] [--retry N] "
            "[--backoff a,b,c] [--tag T]...\n"
            "                   [--server ADDR] [--password P]\n\n"
            "Pushes one job and prints its jid. ARGS-JSON is a JSON array "
            "(default []).\n");
}

/* Reads a whole number in [min, max] from s; -1 on anything else. */
static int
parse_bounded(const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
push_option(json_t *job, json_t *tags, const char *flag, const char *v)
{
    struct zn_err err;
    int64_t ms;
    long n;
    char ts[64];

    /* Both would set "at": the last one must not silently win. */
    if ((!strcmp(flag, "--at") || !strcmp(flag, "--in")) &&
        json_object_get(job, "at")) {
        fprintf(stderr, "zenith: push: give one --at or --in, not more\n");
        return -1;
    }
    if (!strcmp(flag, "--queue")) {
        if (!zn_job_queue_name_valid(v, strlen(v))) {
            fprintf(stderr, "zenith: --queue: '%s' does not match "
                            "[A-Za-z0-9_.:-]{1,100}\n", v);
            return -1;
        }
        json_object_set_new(job, "queue", json_string(v));
    } else if (!strcmp(flag, "--at")) {
        if (zn_clock_parse(v, &ms) < 0) {
            fprintf(stderr, "zenith: --at: '%s' is not an RFC 3339 time\n", v);
            return -1;
        }
        json_object_set_new(job, "at", json_string(v));
    } else if (!strcmp(flag, "--in")) {
        if (parse_bounded(v, 0, 366L * 86400, &n) < 0) {
            fprintf(stderr, "zenith: --in: '%s' is not a number of seconds\n",
                    v);
            return -1;
        }
        zn_clock_format(zn_clock_wall_ms() + n * 1000, ts, sizeof(ts));
        json_object_set_new(job, "at", json_string(ts));
    } else if (!strcmp(flag, "--priority") || !strcmp(flag, "--retry")) {
        int prio = flag[2] == 'p';

        if (parse_bounded(v, prio ? 1 : -1, prio ? 9 : 1000, &n) < 0) {
            fprintf(stderr, "zenith: %s: '%s' must be a whole number from "
                    "%d to %d\n", flag, v, prio ? 1 : -1, prio ? 9 : 1000);
            return -1;
        }
        json_object_set_new(job, flag + 2, json_integer(n));
    } else if (!strcmp(flag, "--backoff")) {
        int32_t b[ZN_BACKOFF_MAX];
        size_t nb;
        json_t *arr = json_array();

        if (zn_job_parse_backoff(v, b, &nb, &err) < 0) {
            json_decref(arr);
            fprintf(stderr, "zenith: --%s\n", err.msg);
            return -1;
        }
        for (size_t i = 0; i < nb; i++)
            json_array_append_new(arr, json_integer(b[i]));
        json_object_set_new(job, "backoff", arr);
    } else if (!strcmp(flag, "--tag")) {
        json_array_append_new(tags, json_string(v));
    } else {
        fprintf(stderr, "zenith: push: unknown option '%s'\n", flag);
        return -1;
    }
    return 0;
}

int
zn_cli_push(int argc, char **argv)
{
    struct zn__cli_conn o;
    json_t *job = NULL, *tags = NULL, *args = NULL;
    char jid[ZN_JID_MAX + 1], *text = NULL;
    int rc = EXIT_USAGE, npos = 0;

    if (zn__cli_wants_help(argc, argv)) {
        push_usage(stdout);
        return 0;
    }
    argc = zn__cli_take_conn_flags(argc, argv, &o);
    job = json_object();
    tags = json_array();
    if (argc < 0 || !job || !tags)
        goto done;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--", 2)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "zenith: %s: missing value\n", argv[i]);
                goto done;
            }
            if (push_option(job, tags, argv[i], argv[i + 1]) < 0)
                goto done;
            i++;
        } else if (npos == 0) {
            json_object_set_new(job, "jobtype", json_string(argv[i]));
            npos++;
        } else if (npos == 1) {
            json_error_t jerr;

            args = json_loads(argv[i], 0, &jerr);
            if (!json_is_array(args)) {
                fprintf(stderr, "zenith: ARGS-JSON must be a JSON array: %s\n",
                        args ? "got another type" : jerr.text);
                goto done;
            }
            json_object_set(job, "args", args);
            npos++;
        } else {
            fprintf(stderr, "zenith: push: unexpected argument '%s'\n",
                    argv[i]);
            goto done;
        }
    }
    if (npos == 0) {
        push_usage(stderr);
        goto done;
    }
    if (json_array_size(tags))
        json_object_set(job, "tags", tags);
    if (sodium_init() < 0) {
        rc = 1;
        goto done;
    }
    zn_job_make_jid(zn_clock_wall_ms(), jid);
    json_object_set_new(job, "jid", json_string(jid));
    text = json_dumps(job, JSON_COMPACT);
    rc = text ? zn__cli_call(&o, "PUSH", text, NULL) : 1;
    if (rc == 0)
        printf("%s\n", jid);
done:
    free(text);
    json_decref(args);
    json_decref(tags);
    json_decref(job);
    return rc;
}

/* ---- status --------------------------------------------------------- */

static int
print_status(const char *info, bool as_json)
{
    static const char *const cols[] = {"enqueued", "scheduled", "working",
                                       "retry", "dead"};
    json_t *root = json_loads(info, 0, NULL), *queues, *q;
    size_t i;

    queues = json_object_get(json_object_get(root, "zenith"), "queues");
    if (!json_is_array(queues)) {
        fprintf(stderr, "zenith: the server's INFO has no queue list\n");
        json_decref(root);
        return 1;
    }
    if (as_json) {
        char *text = json_dumps(queues, JSON_COMPACT);

        printf("%s\n", text ? text : "[]");
        free(text);
        json_decref(root);
        return 0;
    }
    printf("%-24s %9s %9s %9s %9s %9s %7s %10s\n", "QUEUE", "ENQUEUED",
           "SCHEDULED", "WORKING", "RETRY", "DEAD", "PAUSED", "OLDEST(s)");
    json_array_foreach(queues, i, q) {
        printf("%-24s", json_string_value(json_object_get(q, "name")));
        for (size_t k = 0; k < ZN_ARRAY_LEN(cols); k++)
            printf(" %9lld", (long long)json_integer_value(
                                 json_object_get(q, cols[k])));
        printf(" %7s %10lld\n",
               json_is_true(json_object_get(q, "paused")) ? "yes" : "no",
               (long long)json_integer_value(
                   json_object_get(q, "oldest_age_s")));
    }
    json_decref(root);
    return 0;
}

int
zn_cli_status(int argc, char **argv)
{
    struct zn__cli_conn o;
    char *info = NULL;
    int rc;

    if (zn__cli_wants_help(argc, argv)) {
        printf("usage: zenith status [--json] [--server ADDR] "
               "[--password P]\n\nPer queue: jobs enqueued, scheduled, "
               "working, retry, dead; paused; age of the oldest waiting "
               "job.\n");
        return 0;
    }
    argc = zn__cli_take_conn_flags(argc, argv, &o);
    if (argc != 1) {
        fprintf(stderr, "zenith: status takes no arguments\n");
        return EXIT_USAGE;
    }
    rc = zn__cli_call(&o, "INFO", NULL, &info);
    if (rc == 0)
        rc = print_status(info, o.json);
    free(info);
    return rc;
}

/* ---- queue ------------------------------------------------------------ */

int
zn_cli_queue(int argc, char **argv)
{
    static const char *const subs[][2] = {
        {"pause", "PAUSE"}, {"resume", "RESUME"}, {"clear", "REMOVE"},
    };
    struct zn__cli_conn o;
    char arg[256];

    if (zn__cli_wants_help(argc, argv)) {
        printf("usage: zenith queue pause|resume|clear QUEUE [--server ADDR] "
               "[--password P]\n\npause: hand out no more jobs; resume: "
               "hand them out again;\nclear: delete the jobs waiting in the "
               "queue (enqueued, scheduled, retry).\n");
        return 0;
    }
    argc = zn__cli_take_conn_flags(argc, argv, &o);
    if (argc != 3) {
        fprintf(stderr, "usage: zenith queue pause|resume|clear QUEUE\n");
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < ZN_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i][0]) != 0)
            continue;
        if (!zn_job_queue_name_valid(argv[2], strlen(argv[2]))) {
            fprintf(stderr, "zenith: queue '%s' does not match "
                            "[A-Za-z0-9_.:-]{1,100}\n", argv[2]);
            return EXIT_USAGE;
        }
        snprintf(arg, sizeof(arg), "%s %s", subs[i][1], argv[2]);
        return zn__cli_call(&o, "QUEUE", arg, NULL);
    }
    fprintf(stderr, "zenith: queue: unknown action '%s'\n", argv[1]);
    return EXIT_USAGE;
}

static const char *
str_or(const char *s, const char *def)
{
    return s ? s : def;
}

/* The string member key of obj, or def when it is missing or not one. */
static const char *
get_str(const json_t *obj, const char *key, const char *def)
{
    return str_or(json_string_value(json_object_get(obj, key)), def);
}

/* ---- failed ------------------------------------------------------------ */

static void
failed_usage(FILE *out)
{
    fprintf(out,
            "usage: zenith failed list [--queue Q] [--json]\n"
            "       zenith failed show JID [--json]\n"
            "       zenith failed retry JID | --all [--queue Q]\n"
            "       zenith failed forget JID\n"
            "       zenith failed flush [--queue Q]\n"
            "       zenith failed prune --older-than DURATION [--queue Q]\n"
            "  (each also takes --server ADDR and --password P)\n\n"
            "Dead jobs are the failed-jobs store: jobs whose tries are used "
            "up.\n");
}

static void
print_failed_row(json_t *job)
{
    json_t *f = json_object_get(job, "failure");

    /* A job JOBS could not read has its jid and nothing else. */
    printf("%-28s %-16s %-24s %-20s %s\n", get_str(job, "jid", "-"),
           get_str(job, "queue", "-"), get_str(job, "jobtype", "-"),
           get_str(f, "errtype", "-"), get_str(f, "message", ""));
}

static int
failed_list(const struct zn__cli_conn *o, const char *queue)
{
    json_t *q = json_pack("{s:s,s:i}", "state", "dead", "limit", 1000);
    json_t *all = json_array();
    json_int_t next = 0;
    int rc = 0;

    if (queue)
        json_object_set_new(q, "queue", json_string(queue));
    if (!o->json)
        printf("%-28s %-16s %-24s %-20s %s\n", "JID", "QUEUE", "JOBTYPE",
               "ERROR", "MESSAGE");
    do {
        char *arg, *reply = NULL;
        json_t *page, *job;
        size_t i;

        json_object_set_new(q, "after", json_integer(next));
        arg = json_dumps(q, JSON_COMPACT);
        rc = arg ? zn__cli_call(o, "JOBS", arg, &reply) : 1;
        free(arg);
        page = rc == 0 ? json_loads(reply, 0, NULL) : NULL;
        free(reply);
        if (rc == 0 && !page) {
            fprintf(stderr, "zenith: the server sent a malformed job list\n");
            rc = 1;
        }
        json_array_foreach(json_object_get(page, "jobs"), i, job) {
            if (o->json)
                json_array_append(all, job);
            else
                print_failed_row(job);
        }
        next = json_integer_value(json_object_get(page, "next"));
        json_decref(page);
    } while (rc == 0 && next > 0);
    if (rc == 0 && o->json) {
        char *text = json_dumps(all, JSON_COMPACT);

        printf("%s\n", text ? text : "[]");
        free(text);
    }
    json_decref(all);
    json_decref(q);
    return rc;
}

/* Fetches JOBS {"jid":...}; prints it (show) or checks it is dead. */
static int
failed_get(const struct zn__cli_conn *o, const char *jid, bool print)
{
    json_t *q = json_pack("{s:s}", "jid", jid), *r, *job, *a;
    char *arg = json_dumps(q, JSON_COMPACT), *reply = NULL;
    int rc = arg ? zn__cli_call(o, "JOBS", arg, &reply) : 1;
    size_t i;

    free(arg);
    json_decref(q);
    if (rc)
        return rc;
    r = json_loads(reply, 0, NULL);
    job = json_object_get(r, "job");
    if (!print) {
        rc = strcmp(get_str(job, "state", ""), "dead") == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "zenith: job '%s' is not dead (it is %s)\n", jid,
                    get_str(job, "state", "?"));
    } else if (o->json) {
        printf("%s\n", reply);
    } else {
        char *text = json_dumps(job, JSON_INDENT(2));

        printf("%s\n\nattempts:\n", text ? text : "");
        free(text);
        json_array_foreach(json_object_get(r, "attempts"), i, a)
            printf("  #%lld %s %s..%s %s: %s\n",
                   (long long)json_integer_value(json_object_get(a, "n")),
                   get_str(a, "worker", "-"), get_str(a, "started_at", ""),
                   get_str(a, "ended_at", ""), get_str(a, "outcome", "running"),
                   get_str(a, "message", ""));
    }
    json_decref(r);
    free(reply);
    return rc;
}

static int
mutate(const struct zn__cli_conn *o, const char *cmd, const char *jid,
       const char *queue, int64_t older_than_s)
{
    json_t *filter = json_object(), *m;
    char *arg;
    int rc;

    if (jid)
        json_object_set_new(filter, "jids", json_pack("[s]", jid));
    if (queue)
        json_object_set_new(filter, "queue", json_string(queue));
    if (older_than_s >= 0)
        json_object_set_new(filter, "older_than", json_integer(older_than_s));
    m = json_pack("{s:s,s:s,s:o}", "cmd", cmd, "target", "dead", "filter",
                  filter);
    arg = m ? json_dumps(m, JSON_COMPACT) : NULL;
    rc = arg ? zn__cli_call(o, "MUTATE", arg, NULL) : 1;
    free(arg);
    json_decref(m);
    return rc;
}

enum failed_flags {
    FAILED_QUEUE = 1 << 0,
    FAILED_ALL = 1 << 1,
    FAILED_OLDER = 1 << 2,
};

struct failed_args {
    const char *action, *jid, *queue, *older;
    unsigned flags; /* enum failed_flags given */
};

/* Splits argv (without the connection flags); -1 on an unexpected word. */
static int
failed_parse(int argc, char **argv, struct failed_args *a)
{
    int pos = 0;

    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) {
            a->flags |= FAILED_ALL;
        } else if (!strcmp(argv[i], "--queue") && i + 1 < argc) {
            a->queue = argv[++i];
            a->flags |= FAILED_QUEUE;
        } else if (!strcmp(argv[i], "--older-than") && i + 1 < argc) {
            a->older = argv[++i];
            a->flags |= FAILED_OLDER;
        } else if (argv[i][0] == '-' || pos == 2) {
            fprintf(stderr, "zenith: failed: unexpected '%s'\n", argv[i]);
            return -1;
        } else if (pos++ == 0) {
            a->action = argv[i];
        } else {
            a->jid = argv[i];
        }
    }
    return 0;
}

/*
 * An option the action does not read would be ignored, and "failed flush
 * --older-than 7d" would then flush every dead job: refuse it instead.
 * Returns 0, or -1 after saying which option does not apply.
 */
static int
failed_check_flags(const struct failed_args *a)
{
    static const char *const names[] = {"--queue", "--all", "--older-than"};
    const char *act = a->action;
    unsigned ok = 0, bad;

    if (!strcmp(act, "list") || !strcmp(act, "flush"))
        ok = FAILED_QUEUE;
    else if (!strcmp(act, "retry")) /* JID with --all: the usage says */
        ok = a->jid ? FAILED_ALL : FAILED_ALL | FAILED_QUEUE;
    else if (!strcmp(act, "prune"))
        ok = FAILED_OLDER | FAILED_QUEUE;
    else if (strcmp(act, "show") != 0 && strcmp(act, "forget") != 0)
        return 0; /* an unknown action: the usage says more */
    bad = a->flags & ~ok;
    for (size_t k = 0; k < ZN_ARRAY_LEN(names); k++) {
        if (bad & (1u << k)) {
            fprintf(stderr, "zenith: failed %s%s: %s does not apply\n", act,
                    a->jid ? " JID" : "", names[k]);
            return -1;
        }
    }
    return 0;
}

int
zn_cli_failed(int argc, char **argv)
{
    struct zn__cli_conn o;
    struct failed_args a;
    bool all;
    int64_t ms = -1;

    if (zn__cli_wants_help(argc, argv)) {
        failed_usage(stdout);
        return 0;
    }
    argc = zn__cli_take_conn_flags(argc, argv, &o);
    if (argc < 0 || failed_parse(argc, argv, &a) < 0)
        return EXIT_USAGE;
    if (!a.action)
        goto usage;
    if (failed_check_flags(&a) < 0)
        return EXIT_USAGE;
    all = a.flags & FAILED_ALL;
    if (!strcmp(a.action, "list") && !a.jid)
        return failed_list(&o, a.queue);
    if (!strcmp(a.action, "show") && a.jid)
        return failed_get(&o, a.jid, true);
    if (!strcmp(a.action, "retry") && (a.jid != NULL) != all)
        return a.jid && failed_get(&o, a.jid, false) ? 1
               : mutate(&o, "requeue", a.jid, a.queue, -1);
    if (!strcmp(a.action, "forget") && a.jid)
        return failed_get(&o, a.jid, false) ? 1
               : mutate(&o, "discard", a.jid, NULL, -1);
    if (!strcmp(a.action, "flush") && !a.jid)
        return mutate(&o, "discard", NULL, a.queue, -1);
    if (!strcmp(a.action, "prune") && !a.jid && a.older) {
        if (zn_clock_parse_duration(a.older, &ms) < 0) {
            fprintf(stderr, "zenith: --older-than: '%s' is not a duration "
                            "like 90s, 15m, 7d\n", a.older);
            return EXIT_USAGE;
        }
        return mutate(&o, "discard", NULL, a.queue, ms / 1000);
    }
usage:
    failed_usage(stderr);
    return EXIT_USAGE;
}
