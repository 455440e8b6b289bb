/*
 * jobconf.c - reads the [job "NAME"] sections of the config file with
 * inih (see jobconf.h for the format).
 *
 * Debian's inih calls the handler without a line number, so the reader
 * callback counts lines; it also remembers the line of the last section
 * header, which errors about a whole section cite. inih does not call the
 * handler for an empty section, so a [job "x"] without keys is ignored.
 * A section is complete when the handler sees another section (or the
 * file ends); only then is its handler added to the registry.
 */
#include "compat.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/ini.h"
#include "worker/exec.h"
#include "worker/jobconf.h"
#include "worker/webhook.h"

#define TIMEOUT_MAX_S 86400

struct section {
    bool is_job;
    char *name;
    int line;          /* of its header */
    char **argv;       /* command, split */
    char *url;
    int timeout_s;
};

struct ctx {
    struct zn_handler_registry *reg;
    const char *path;
    struct zn_ini_lines lines; /* lineno: the line inih was handed last */
    int header_line;   /* the last line that opened a section */
    char *current;     /* section name as inih reports it, NULL before */
    int current_line;  /* the header line of the current section */
    struct section sec;
    struct zn_err *err;
    bool failed;
};

static void
section_release(struct section *s)
{
    free(s->name);
    zn_exec_argv_free(s->argv);
    free(s->url);
    memset(s, 0, sizeof(*s));
}

/* Records an error "path:line: ..." and stops the reading; returns 0. */
#define FAIL_AT(c, line, ...)                                               \
    zn_ini_fail((c)->err, &(c)->failed, (c)->path, (line), __VA_ARGS__)

/* Lines counted and over-long ones refused (ini.h); notes headers. */
static char *
read_line_cb(char *str, int num, void *stream)
{
    struct ctx *c = stream;
    bool too_long;
    char *line;

    if (c->failed)
        return NULL;
    line = zn_ini_next_line(&c->lines, str, num, &too_long);
    if (too_long)
        FAIL_AT(c, c->lines.lineno, "line too long: the limit is %d bytes",
                num - 1);
    if (line && zn_ini_header(line))
        c->header_line = c->lines.lineno;
    return line;
}

/* Adds the finished job section to the registry. 0, or 0 with failed. */
static int
finish_section(struct ctx *c)
{
    struct section *s = &c->sec;
    struct zn_handler h = {0};

    if (!s->is_job) {
        section_release(s);
        return 0;
    }
    if (!s->argv && !s->url) {
        FAIL_AT(c, s->line, "job '%s' needs a command or a url", s->name);
        section_release(s);
        return 0;
    }
    h.name = s->name;
    h.kind = s->argv ? ZN_HANDLER_EXEC : ZN_HANDLER_WEBHOOK;
    h.run = s->argv ? zn_exec_run : zn_webhook_run;
    h.argv = s->argv;
    h.url = s->url;
    h.timeout_s = s->timeout_s;
    h.line = s->line;
    memset(s, 0, sizeof(*s));
    if (zn_handler_add_take(c->reg, &h, c->err) < 0)
        c->failed = true;
    return 0;
}

/* Parses `job "NAME"`; section is known to start with "job". */
static int
start_job(struct ctx *c, const char *section)
{
    const struct zn_handler *old;
    const char *p = section + 3, *end;
    size_t len;

    while (*p == ' ' || *p == '\t')
        p++;
    end = *p == '"' ? strchr(p + 1, '"') : NULL;
    if (!end || end[1] != '\0')
        return FAIL_AT(c, c->header_line, "section [%s]: expected "
                       "[job \"NAME\"]", section);
    len = (size_t)(end - p - 1);
    if (len < 1 || len > ZN_HANDLER_NAME_MAX)
        return FAIL_AT(c, c->header_line, "section [%s]: the job name must "
                       "be 1 to %d bytes", section, ZN_HANDLER_NAME_MAX);
    for (const char *q = p + 1; q < end; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            return FAIL_AT(c, c->header_line, "section [%s]: the job name "
                           "has a control character", section);
    c->sec.is_job = true;
    c->sec.line = c->header_line;
    c->sec.name = strndup(p + 1, len);
    if (!c->sec.name) {
        c->failed = true;
        zn_err_set(c->err, ZN_ENOMEM, "out of memory");
        return 0;
    }
    old = zn_handler_find(c->reg, c->sec.name);
    if (old && old->line > 0)
        return FAIL_AT(c, c->header_line, "job '%s' is declared twice "
                       "(first at line %d)", c->sec.name, old->line);
    return 1;
}

/* A new section begins: finish the last one, then look at the new. */
static int
change_section(struct ctx *c, const char *section)
{
    finish_section(c);
    if (c->failed)
        return 0;
    free(c->current);
    c->current = strdup(section);
    c->current_line = c->header_line;
    if (!c->current) {
        c->failed = true;
        zn_err_set(c->err, ZN_ENOMEM, "out of memory");
        return 0;
    }
    if (strncmp(section, "job", 3) == 0 &&
        (section[3] == ' ' || section[3] == '\t' || section[3] == '"'))
        return start_job(c, section);
    return 1;
}

static int
set_timeout(struct ctx *c, const char *value)
{
    int64_t ms;

    if (zn_clock_parse_duration(value, &ms) < 0 || ms % 1000 != 0 ||
        ms < 1000 || ms > TIMEOUT_MAX_S * 1000LL)
        return FAIL_AT(c, c->lines.lineno, "job '%s': timeout: '%s' is not a "
                       "number of seconds from 1 to %d", c->sec.name, value,
                       TIMEOUT_MAX_S);
    c->sec.timeout_s = (int)(ms / 1000);
    return 1;
}

static int
set_key(struct ctx *c, const char *name, const char *value)
{
    struct section *s = &c->sec;
    struct zn_err e;

    if (strcmp(name, "timeout") == 0)
        return set_timeout(c, value);
    if (strcmp(name, "command") != 0 && strcmp(name, "url") != 0)
        return FAIL_AT(c, c->lines.lineno, "job '%s': unknown key '%s' "
                       "(expected command, url or timeout)", s->name, name);
    if (s->argv || s->url)
        return FAIL_AT(c, c->lines.lineno, "job '%s': %s: the job already "
                       "has a %s (one of command or url, once)", s->name, name,
                       s->argv ? "command" : "url");
    if (name[0] == 'u') {
        if (!zn_webhook_url_valid(value))
            return FAIL_AT(c, c->lines.lineno, "job '%s': url: must be an "
                           "http:// or https:// URL", s->name);
        s->url = strdup(value);
        if (s->url)
            return 1;
        zn_err_set(&e, ZN_ENOMEM, "out of memory");
    } else if (zn_exec_split(value, &s->argv, &e) == 0) {
        return 1;
    }
    return FAIL_AT(c, c->lines.lineno, "job '%s': %s: %s", s->name, name,
                   e.msg);
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ctx *c = user;

    if (c->failed)
        return 0;
    /* A repeated header of the same name is a new section too. */
    if ((!c->current || strcmp(section, c->current) != 0 ||
         c->header_line != c->current_line) &&
        !change_section(c, section))
        return 0;
    if (!c->sec.is_job)
        return 1;
    return set_key(c, name, value);
}

int
zn_jobconf_load(struct zn_handler_registry *r, const char *path,
                struct zn_err *err)
{
    struct ctx c = {.reg = r, .path = path, .err = err};
    int rc;

    rc = zn_ini_parse_file(path, &c.lines, read_line_cb, ini_cb, &c, err);
    if (rc >= 0 && !c.failed)
        finish_section(&c);
    section_release(&c.sec);
    free(c.current);
    return zn_ini_result(rc, c.failed, path, err);
}
