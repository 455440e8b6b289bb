/*
 * config.c - the option table and its readers (INI file through inih,
 * environment, command line). Adding an option is one row in options[];
 * nothing else reads option names.
 */
#include "compat.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/ini.h"
#include "common/log.h"
#include "store/sqlite.h"

enum opt_type {
    OPT_STR,
    OPT_INT,      /* int, bounded */
    OPT_BOOL,
    OPT_DURATION, /* int64 ms from "90s", "15m", "7d" */
    OPT_SIZE,     /* int64 bytes from "1048576", "64k", "1m" */
    OPT_BACKOFF,
    OPT_DURABILITY,
    OPT_LOGLEVEL,
    OPT_HOST,     /* a host name or address: 1..255 bytes, no spaces */
};

/* Fields in the order a row reads; packing would save 8 bytes a row. */
/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding) */
struct option_def {
    const char *name;
    enum opt_type type;
    size_t offset;
    const char *def;
    int64_t min, max;
    bool secret;
    const char *help;
    const char *seed_env;   /* the seed's variable for it, or NULL */
};

#define OFF(f) offsetof(struct zn_config, f)

static const struct option_def options[] = {
    {"data", OPT_STR, OFF(data), "zenith-data", 0, 0, false,
     "directory of the database files", NULL},
    {"fwp", OPT_STR, OFF(fwp), "127.0.0.1:7419", 0, 0, false,
     "Faktory protocol TCP address (\"\" = off; port 0 = any free port)",
     NULL},
    {"unix_socket", OPT_STR, OFF(unix_socket), "", 0, 0, false,
     "Faktory protocol Unix socket (\"\" = DATA/zenith.sock)", NULL},
    {"http", OPT_STR, OFF(http), "127.0.0.1:7420", 0, 0, false,
     "HTTP API and dashboard address (not served by this release yet)",
     NULL},
    {"password", OPT_STR, OFF(password), "", 0, 0, true,
     "password FWP clients must give (\"\" = none)", NULL},
    {"store", OPT_STR, OFF(store), "sqlite", 0, 0, false,
     "job store: sqlite (env QUEUE_CONNECTION)", "QUEUE_CONNECTION"},
    {"redis_host", OPT_HOST, OFF(redis_host), "127.0.0.1", 0, 0, false,
     "Redis host for store = redis (env REDIS_HOST; store to come)",
     "REDIS_HOST"},
    {"redis_port", OPT_INT, OFF(redis_port), "6379", 1, 65535, false,
     "Redis port (env REDIS_PORT)", "REDIS_PORT"},
    {"redis_password", OPT_STR, OFF(redis_password), "", 0, 0, true,
     "Redis password (env REDIS_PASSWORD; \"\" or null = none)",
     "REDIS_PASSWORD"},
    {"dashboard", OPT_BOOL, OFF(dashboard), "true", 0, 0, false,
     "serve the dashboard with the HTTP API (env HORIZON_ENABLED)",
     "HORIZON_ENABLED"},
    {"durability", OPT_DURABILITY, OFF(durability), "full", 0, 0, false,
     "full: fsync before a push is answered; fast: fsync at checkpoints",
     NULL},
    {"log_level", OPT_LOGLEVEL, OFF(log_level), "info", 0, 0, false,
     "debug, info, warn or error", NULL},
    {"workers", OPT_BOOL, OFF(workers), "true", 0, 0, false,
     "run the supervisor's worker processes ([supervisor \"NAME\"] "
     "blocks)", NULL},
    {"max_line", OPT_SIZE, OFF(max_line), "16m", 1024, 1LL << 30, false,
     "longest FWP command line, in bytes (PUSHB carries many jobs)", NULL},
    {"max_payload", OPT_SIZE, OFF(engine.limits.max_payload), "1m", 64,
     1LL << 30, false, "largest job, in bytes of JSON", NULL},
    {"retry", OPT_INT, OFF(engine.retry), "2", -1, 1000, false,
     "retries after the first try when a job sets none (2 = 3 tries)",
     NULL},
    {"backoff", OPT_BACKOFF, OFF(engine.backoff), "10,30,60", 0, 0, false,
     "seconds before each retry; the last value repeats", NULL},
    {"timeout", OPT_INT, OFF(engine.reserve_for), "300", 1, 86400, false,
     "lease of a job in seconds when it sets no reserve_for", NULL},
    {"done_ttl", OPT_DURATION, OFF(engine.done_ttl_ms), "60m", 0,
     3650LL * 86400000, false, "how long done jobs are kept", NULL},
    {"dead_ttl", OPT_DURATION, OFF(engine.dead_ttl_ms), "7d", 0,
     3650LL * 86400000, false, "how long dead jobs are kept", NULL},
};

static const struct option_def *
find_option(const char *name)
{
    for (size_t i = 0; i < ZN_ARRAY_LEN(options); i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

/* Parses a whole decimal integer with an optional k/m/g suffix. */
static int
parse_int(const char *s, bool size_units, int64_t *out)
{
    char *end;
    long long v;

    /* strtoll alone would take " 12", "+12" and "-1k" (an overflow). */
    if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && !size_units)))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (size_units && *end) {
        int64_t mult = *end == 'k' ? 1024 : *end == 'm' ? 1024 * 1024 :
                       *end == 'g' ? 1024LL * 1024 * 1024 : 0;

        if (!mult || end[1] || v > INT64_MAX / mult)
            return -1;
        v *= mult;
        end++;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int
set_value(struct zn_config *cfg, const struct option_def *o, const char *v,
          const char *where, struct zn_err *err)
{
    char *base = (char *)cfg + o->offset;
    int64_t n;
    int level;

    switch (o->type) {
    case OPT_HOST:
        if (!*v || strlen(v) > 255 || strpbrk(v, " \t\r\n/"))
            return zn_err_set(err, ZN_EINVAL, "%s: %s: '%.64s' is not a host "
                              "name or address", where, o->name, v);
        /* fall through */
    case OPT_STR: {
        /* The seed's REDIS_PASSWORD=null means no password. */
        char *copy = strdup(o->secret && strcmp(v, "null") == 0 &&
                            o->seed_env ? "" : v);

        if (!copy)
            return zn_err_set(err, ZN_ENOMEM, "%s: out of memory", where);
        free(*(char **)base);
        *(char **)base = copy;
        return 0;
    }
    case OPT_INT:
    case OPT_SIZE:
    case OPT_DURATION:
        if (o->type == OPT_DURATION ? zn_clock_parse_duration(v, &n) != 0 :
                                      parse_int(v, o->type == OPT_SIZE, &n))
            return zn_err_set(err, ZN_EINVAL, "%s: %s: '%s' is not a %s", where,
                              o->name, v,
                              o->type == OPT_DURATION
                                  ? "duration like 90s, 15m, 7d"
                              : o->type == OPT_SIZE ? "size like 1048576 or 1m"
                                                    : "whole number");
        if (n < o->min || n > o->max)
            return zn_err_set(err, ZN_EINVAL,
                              "%s: %s: %s is out of range %lld..%lld", where,
                              o->name, v, (long long)o->min, (long long)o->max);
        if (o->type == OPT_INT)
            *(int *)base = (int)n;
        else if (o->offset == OFF(engine.limits.max_payload))
            *(size_t *)base = (size_t)n;
        else
            *(int64_t *)base = n;
        return 0;
    case OPT_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") ||
            !strcmp(v, "1"))
            *(bool *)base = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") ||
                 !strcmp(v, "off") || !strcmp(v, "0"))
            *(bool *)base = false;
        else
            return zn_err_set(err, ZN_EINVAL,
                              "%s: %s: '%s' is not true or false", where,
                              o->name, v);
        return 0;
    case OPT_BACKOFF: {
        struct zn_err e2;
        size_t nb;

        if (zn_job_parse_backoff(v, cfg->engine.backoff, &nb, &e2) < 0)
            return zn_err_set(err, ZN_EINVAL, "%s: %s", where, e2.msg);
        cfg->engine.nbackoff = nb;
        return 0;
    }
    case OPT_DURABILITY:
        if (!strcmp(v, "full"))
            *(int *)base = ZN_DURABILITY_FULL;
        else if (!strcmp(v, "fast"))
            *(int *)base = ZN_DURABILITY_FAST;
        else
            return zn_err_set(err, ZN_EINVAL,
                              "%s: durability: '%s' is not full or fast",
                              where, v);
        return 0;
    case OPT_LOGLEVEL:
        level = zn_log_parse_level(v);
        if (level < 0)
            return zn_err_set(err, ZN_EINVAL,
                              "%s: log_level: '%s' is not debug, info, warn "
                              "or error", where, v);
        *(int *)base = level;
        return 0;
    }
    return zn_err_set(err, ZN_EINVAL, "%s: %s: unknown type", where, o->name);
}

int
zn_config_set(struct zn_config *cfg, const char *name, const char *value,
              const char *where, struct zn_err *err)
{
    const struct option_def *o = find_option(name);

    if (!o)
        return zn_err_set(err, ZN_EINVAL, "%s: unknown option '%s'", where,
                          name);
    return set_value(cfg, o, value, where, err);
}

int
zn_config_init(struct zn_config *cfg, struct zn_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    zn_engine_config_default(&cfg->engine);
    for (size_t i = 0; i < ZN_ARRAY_LEN(options); i++) {
        int rc = set_value(cfg, &options[i], options[i].def, "default", err);

        if (rc < 0) {
            zn_config_release(cfg);
            return rc;
        }
    }
    return 0;
}

void
zn_config_release(struct zn_config *cfg)
{
    for (size_t i = 0; i < ZN_ARRAY_LEN(options); i++) {
        if (options[i].type == OPT_STR || options[i].type == OPT_HOST) {
            char **p = (char **)((char *)cfg + options[i].offset);

            if (*p && options[i].secret)
                memset(*p, 0, strlen(*p));
            free(*p);
            *p = NULL;
        }
    }
    free(cfg->file);
    cfg->file = NULL;
}

struct ini_ctx {
    struct zn_config *cfg;
    const char *path;
    struct zn_ini_lines lines; /* lineno: the line ini_cb was handed */
    struct zn_err *err;
    bool failed;
};

static char *
read_line_cb(char *str, int num, void *stream)
{
    struct ini_ctx *c = stream;
    bool too_long;
    char *line = zn_ini_next_line(&c->lines, str, num, &too_long);

    if (too_long)
        zn_ini_fail(c->err, &c->failed, c->path, c->lines.lineno,
                    "line too long: the limit is %d bytes", num - 1);
    return line;
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    char where[300];

    snprintf(where, sizeof(where), "%s:%d", c->path, c->lines.lineno);
    /* [job "NAME"] belongs to zenith work's handler registry (jobconf.c). */
    if (!strncmp(section, "job ", 4) || !strncmp(section, "job\"", 4))
        return 1;
    /* [supervisor "NAME"] is read by supervisor/conf.c. */
    if (!strncmp(section, "supervisor", 10) &&
        (section[10] == ' ' || section[10] == '\t' || section[10] == '"'))
        return 1;
    if (strcmp(section, "") != 0 && strcmp(section, "server") != 0)
        return zn_ini_fail(c->err, &c->failed, c->path, c->lines.lineno,
                           "unknown section '%s'", section);
    if (zn_config_set(c->cfg, name, value, where, c->err) < 0) {
        c->failed = true;
        return 0;
    }
    return 1;
}

int
zn_config_load_file(struct zn_config *cfg, const char *path,
                     struct zn_err *err)
{
    struct ini_ctx c = {cfg, path, {NULL, 0}, err, false};
    int rc = zn_ini_parse_file(path, &c.lines, read_line_cb, ini_cb, &c, err);

    return zn_ini_result(rc, c.failed, path, err);
}

/* The seed's variables; an empty one counts as unset. */
static int
load_seed_env(struct zn_config *cfg, struct zn_err *err)
{
    for (size_t i = 0; i < ZN_ARRAY_LEN(options); i++) {
        const char *v = options[i].seed_env ? getenv(options[i].seed_env)
                                            : NULL;
        char where[80];
        int rc;

        if (!v || !*v)
            continue;
        snprintf(where, sizeof(where), "env %s", options[i].seed_env);
        rc = set_value(cfg, &options[i], v, where, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
zn_config_load_env(struct zn_config *cfg, struct zn_err *err)
{
    int rc = load_seed_env(cfg, err);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < ZN_ARRAY_LEN(options); i++) {
        char var[64], where[80];
        const char *v;
        size_t j;

        memcpy(var, "ZENITH_", 7);
        for (j = 0; options[i].name[j] && j + 8 < sizeof(var); j++) {
            char ch = options[i].name[j];

            var[7 + j] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
        }
        var[7 + j] = '\0';
        v = getenv(var);
        if (!v)
            continue;
        snprintf(where, sizeof(where), "env %s", var);
        rc = set_value(cfg, &options[i], v, where, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Turns "--log-level" into "log_level" in out; 0 if it is an option. */
static int
flag_to_name(const char *arg, char *out, size_t size, const char **value)
{
    size_t i;

    *value = NULL;
    if (strncmp(arg, "--", 2) != 0)
        return -1;
    arg += 2;
    for (i = 0; arg[i] && arg[i] != '=' && i + 1 < size; i++)
        out[i] = arg[i] == '-' ? '_' : arg[i];
    out[i] = '\0';
    if (arg[i] == '=')
        *value = arg + i + 1;
    return 0;
}

/* Rules between options, once every source has been applied. */
static int
check(const struct zn_config *cfg, struct zn_err *err)
{
    /* A job within max_payload must fit a PUSH line. */
    if ((uint64_t)cfg->max_line < cfg->engine.limits.max_payload + 64)
        return zn_err_set(err, ZN_EINVAL, "max_line (%lld) must exceed "
                          "max_payload (%zu) by at least 64 bytes",
                          (long long)cfg->max_line,
                          cfg->engine.limits.max_payload);
    return 0;
}

int
zn_config_from_args(struct zn_config *cfg, int argc, char **argv,
                    struct zn_err *err)
{
    const char *file = NULL;
    char name[64];
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        if (!strcmp(argv[i], "--config") && i + 1 >= argc)
            return zn_err_set(err, ZN_EINVAL, "--config: missing value");
        if (!strcmp(argv[i], "--config"))
            file = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
    }
    if (file) {
        cfg->file = strdup(file);
        if (!cfg->file)
            return zn_err_set(err, ZN_ENOMEM, "out of memory");
        rc = zn_config_load_file(cfg, file, err);
        if (rc < 0)
            return rc;
    }
    rc = zn_config_load_env(cfg, err);
    if (rc < 0)
        return rc;
    for (int i = 1; i < argc; i++) {
        const char *value;
        char where[80];

        if (flag_to_name(argv[i], name, sizeof(name), &value) < 0)
            return zn_err_set(err, ZN_EINVAL, "unexpected argument '%s'",
                              argv[i]);
        if (!strcmp(name, "config")) {
            i += value ? 0 : 1;
            continue;
        }
        if (!strcmp(name, "no_workers") && !value) {
            cfg->workers = false;
            continue;
        }
        if (!find_option(name))
            return zn_err_set(err, ZN_EINVAL, "unknown option '%s'", argv[i]);
        if (!value) {
            if (i + 1 >= argc)
                return zn_err_set(err, ZN_EINVAL, "%s: missing value",
                                  argv[i]);
            value = argv[++i];
        }
        snprintf(where, sizeof(where), "--%s", name);
        rc = zn_config_set(cfg, name, value, where, err);
        if (rc < 0)
            return rc;
    }
    return check(cfg, err);
}

void
zn_config_usage(FILE *out)
{
    fprintf(out, "options (file key, --flag, or env ZENITH_<KEY>):\n"
                 "  --config FILE        INI file ([server] section)\n"
                 "  --no-workers         same as --workers false\n");
    for (size_t i = 0; i < ZN_ARRAY_LEN(options); i++) {
        char flag[64];
        size_t j;

        for (j = 0; options[i].name[j] && j + 1 < sizeof(flag); j++)
            flag[j] = options[i].name[j] == '_' ? '-' : options[i].name[j];
        flag[j] = '\0';
        fprintf(out, "  --%-18s %s (default: %s)\n", flag, options[i].help,
                options[i].secret ? "none" : options[i].def);
    }
}
