/*
 * control.c - the commands for the supervisor of a running server:
 * restart, pause, continue, terminate (FWP CONTROL, see
 * supervisor/control.c) and workers (INFO's workers, with the
 * supervisor's view of its own slots from CONTROL workers).
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/clock.h"
#include "fwp/client.h"

#define EXIT_USAGE 2

/* Sends CONTROL req (stolen); *out gets the parsed reply when wanted. */
static int
control(const struct zn__cli_conn *o, json_t *req, json_t **out)
{
    char *arg = req ? json_dumps(req, JSON_COMPACT) : NULL, *reply = NULL;
    int rc;

    json_decref(req);
    if (!arg) {
        fprintf(stderr, "zenith: out of memory\n");
        return 1;
    }
    rc = zn__cli_call(o, "CONTROL", arg, &reply);
    free(arg);
    if (rc == 0 && out) {
        *out = reply ? json_loads(reply, 0, NULL) : NULL;
        if (!*out) {
            fprintf(stderr, "zenith: CONTROL: the reply is not JSON\n");
            rc = 1;
        }
    }
    free(reply);
    return rc;
}

/*
 * The common start of each command: --help, the connection flags, and
 * at most max_args positional arguments. Returns -1 to go on, else the
 * exit status.
 */
static int
begin(int *argc, char **argv, struct zn__cli_conn *o, int max_args,
      const char *flag, const char *usage)
{
    if (zn__cli_wants_help(*argc, argv)) {
        printf("%s", usage);
        return 0;
    }
    *argc = zn__cli_take_conn_flags(*argc, argv, o);
    if (*argc < 0)
        return EXIT_USAGE;
    for (int i = 1; i < *argc; i++)
        if (argv[i][0] == '-' && (!flag || strcmp(argv[i], flag) != 0)) {
            fprintf(stderr, "zenith: %s: unknown option '%s'\n", argv[0],
                    argv[i]);
            return EXIT_USAGE;
        }
    if (*argc - 1 > max_args) {
        fprintf(stderr, "zenith: %s: unexpected argument '%s'\n%s", argv[0],
                argv[max_args + 1], usage);
        return EXIT_USAGE;
    }
    return -1;
}

static const char restart_usage[] =
    "usage: zenith restart [SUPERVISOR] [--server ADDR] [--password P]\n\n"
    "Every worker of the server's supervisor (or of one block) finishes "
    "its job,\nexits and is replaced. Nothing is lost or run twice.\n";

int
zn_cli_restart(int argc, char **argv)
{
    struct zn__cli_conn o;
    json_t *reply = NULL;
    int rc = begin(&argc, argv, &o, 1, NULL, restart_usage);

    if (rc >= 0)
        return rc;
    rc = control(&o, json_pack("{s:s,s:s?}", "cmd", "restart", "supervisor",
                               argc > 1 ? argv[1] : NULL), &reply);
    if (rc == 0)
        printf("restarting %lld workers\n", (long long)json_integer_value(
                   json_object_get(reply, "restarting")));
    json_decref(reply);
    return rc;
}

static const char pause_usage[] =
    "usage: zenith pause [SUPERVISOR] [--server ADDR] [--password P]\n"
    "       zenith continue [SUPERVISOR] [--server ADDR] [--password P]\n\n"
    "pause: the workers of every supervisor block (or of one) finish their"
    " job\nand exit, and are not replaced. continue: they start again.\n";

static int
pause_or_continue(int argc, char **argv, const char *cmd)
{
    struct zn__cli_conn o;
    json_t *reply = NULL, *name;
    int rc = begin(&argc, argv, &o, 1, NULL, pause_usage);
    size_t i;

    if (rc >= 0)
        return rc;
    rc = control(&o, json_pack("{s:s,s:s?}", "cmd", cmd, "supervisor",
                               argc > 1 ? argv[1] : NULL), &reply);
    if (rc == 0) {
        printf("%s:", strcmp(cmd, "pause") == 0 ? "paused" : "continued");
        json_array_foreach(json_object_get(reply, strcmp(cmd, "pause") == 0
                                                      ? "paused"
                                                      : "continued"),
                           i, name)
            printf(" %s", json_string_value(name));
        printf("\n");
    }
    json_decref(reply);
    return rc;
}

int
zn_cli_pause(int argc, char **argv)
{
    return pause_or_continue(argc, argv, "pause");
}

int
zn_cli_continue(int argc, char **argv)
{
    return pause_or_continue(argc, argv, "continue");
}

static const char terminate_usage[] =
    "usage: zenith terminate [--grace DURATION] [--server ADDR] "
    "[--password P]\n\n"
    "Stops the server gracefully: its workers finish their jobs for up to "
    "the grace\nperiod (default 30s), then the jobs still running are "
    "FAILed as terminated.\nReturns at once; the server exits when its "
    "workers are done.\n";

int
zn_cli_terminate(int argc, char **argv)
{
    struct zn__cli_conn o;
    json_t *reply = NULL;
    int64_t grace = 30000;
    int rc = begin(&argc, argv, &o, 2, "--grace", terminate_usage);

    if (rc >= 0)
        return rc;
    if (argc == 2 || (argc == 3 && strcmp(argv[1], "--grace") != 0)) {
        fprintf(stderr, "zenith: terminate: unexpected argument '%s'\n%s",
                argv[argc - 1], terminate_usage);
        return EXIT_USAGE;
    }
    if (argc == 3 && zn_clock_parse_duration(argv[2], &grace) < 0) {
        fprintf(stderr, "zenith: --grace: '%s' is not a duration like 30s, "
                "2m\n", argv[2]);
        return EXIT_USAGE;
    }
    rc = control(&o, json_pack("{s:s,s:I}", "cmd", "terminate", "grace_ms",
                               (json_int_t)grace), &reply);
    if (rc == 0)
        printf("terminating (grace %lld ms)\n", (long long)grace);
    json_decref(reply);
    return rc;
}

/* ---- workers --------------------------------------------------------- */

static const char workers_usage[] =
    "usage: zenith workers [--json] [--server ADDR] [--password P]\n\n"
    "The workers connected to the server (its own and remote ones) and the"
    " slots\nof its supervisor: supervisor, pid, host, queues, state, the "
    "job in hand and\nsince when, jobs done, RSS, start time.\n";

/* The supervisor's slot for wid in slots (CONTROL workers), or NULL. */
static json_t *
slot_of(json_t *slots, const char *wid)
{
    json_t *s;
    size_t i;

    json_array_foreach(slots, i, s) {
        const char *w = json_string_value(json_object_get(s, "wid"));

        if (w && wid && strcmp(w, wid) == 0)
            return s;
    }
    return NULL;
}

/* One row from an INFO worker w and its slot (either may be NULL). */
static json_t *
row(json_t *w, json_t *slot)
{
    json_t *src = w ? w : slot;
    json_t *state = slot ? json_object_get(slot, "state")
                         : json_object_get(w, "state");
    json_t *sup = w ? json_object_get(w, "supervisor") : NULL;

    if (!sup || json_is_null(sup))
        sup = slot ? json_object_get(slot, "supervisor") : NULL;
    /* A slot's process that has not said HELLO yet is starting. */
    if (slot && !w && json_integer_value(json_object_get(slot, "pid")))
        state = json_string("starting");
    else
        json_incref(state);
    return json_pack(
        "{s:O*,s:O*,s:O*,s:O*,s:O*,s:o*,s:O*,s:O*,s:O*,s:O*,s:O*}",
        "supervisor", sup, "wid", json_object_get(src, "wid"), "pid",
        json_object_get(src, "pid"), "host",
        w ? json_object_get(w, "hostname") : NULL, "queues",
        w && json_is_string(json_object_get(w, "queues"))
            ? json_object_get(w, "queues") : json_object_get(slot, "queues"),
        "state", state, "jid", w ? json_object_get(w, "jid") : NULL,
        "working_since", w ? json_object_get(w, "working_since") : NULL,
        "jobs", w ? json_object_get(w, "jobs") : NULL, "rss_kb",
        w ? json_object_get(w, "rss_kb") : NULL, "started_at",
        json_object_get(src, "started_at"));
}

/* INFO's workers merged with the supervisor's slots, as one array. */
static json_t *
merge(json_t *info, json_t *slots)
{
    json_t *list = json_array(), *w, *s;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(info, "zenith"),
                                       "workers"), i, w)
        json_array_append_new(list, row(w, slot_of(slots, json_string_value(
                                                json_object_get(w, "wid")))));
    json_array_foreach(slots, i, s) {
        const char *wid = json_string_value(json_object_get(s, "wid"));
        bool seen = false;
        json_t *r;
        size_t k;

        json_array_foreach(list, k, r)
            seen |= wid && json_is_string(json_object_get(r, "wid")) &&
                    strcmp(json_string_value(json_object_get(r, "wid")),
                           wid) == 0;
        if (!seen)
            json_array_append_new(list, row(NULL, s));
    }
    return list;
}

static const char *
text_or(json_t *v, const char *def)
{
    return json_is_string(v) ? json_string_value(v) : def;
}

static void
print_workers(json_t *list)
{
    json_t *r;
    size_t i;

    printf("%-16s %-8s %-16s %-20s %-10s %-27s %-25s %6s %8s %s\n",
           "SUPERVISOR", "PID", "HOST", "QUEUES", "STATE", "JID", "SINCE",
           "JOBS", "RSS_KB", "STARTED");
    json_array_foreach(list, i, r) {
        json_t *jobs = json_object_get(r, "jobs");
        json_t *rss = json_object_get(r, "rss_kb");

        printf("%-16s %-8lld %-16s %-20s %-10s %-27s %-25s %6s%lld %8s%lld "
               "%s\n", text_or(json_object_get(r, "supervisor"), "-"),
               (long long)json_integer_value(json_object_get(r, "pid")),
               text_or(json_object_get(r, "host"), "-"),
               text_or(json_object_get(r, "queues"), "-"),
               text_or(json_object_get(r, "state"), "-"),
               text_or(json_object_get(r, "jid"), "-"),
               text_or(json_object_get(r, "working_since"), "-"), "",
               (long long)(jobs ? json_integer_value(jobs) : 0), "",
               (long long)(rss ? json_integer_value(rss) : -1),
               text_or(json_object_get(r, "started_at"), "-"));
    }
}

/*
 * CONTROL workers, or NULL without a word: serve --no-workers has no
 * supervisor, and INFO alone then says it all.
 */
static json_t *
supervisor_slots(const struct zn__cli_conn *o)
{
    struct zn_fwp_client_opts co = {.addr = o->server,
                                    .password = o->password};
    struct zn_fwp_client *c = NULL;
    struct zn_err err;
    char *text = NULL;
    json_t *j = NULL;

    if (zn_fwp_client_connect(&co, &c, &err) < 0)
        return NULL;
    if (zn_fwp_client_call(c, "CONTROL", "{\"cmd\":\"workers\"}", &text,
                           &err) == 0 && text)
        j = json_loads(text, 0, NULL);
    free(text);
    zn_fwp_client_free(c);
    return j;
}

int
zn_cli_workers(int argc, char **argv)
{
    struct zn__cli_conn o;
    json_t *info = NULL, *sup = NULL, *list;
    char *text = NULL;
    int rc = begin(&argc, argv, &o, 0, NULL, workers_usage);

    if (rc >= 0)
        return rc;
    rc = zn__cli_call(&o, "INFO", NULL, &text);
    info = rc == 0 && text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (rc == 0 && !info) {
        fprintf(stderr, "zenith: INFO: the reply is not JSON\n");
        return 1;
    }
    if (rc != 0)
        return rc;
    sup = supervisor_slots(&o);
    list = merge(info, json_object_get(sup, "workers"));
    if (o.json) {
        text = json_dumps(list, JSON_COMPACT);
        printf("%s\n", text ? text : "[]");
        free(text);
    } else {
        print_workers(list);
    }
    json_decref(list);
    json_decref(info);
    json_decref(sup);
    return 0;
}
