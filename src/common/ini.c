/*
 * ini.c - see ini.h.
 */
#include "compat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/ini.h"

char *
zn_ini_next_line(struct zn_ini_lines *l, char *str, int num, bool *too_long)
{
    char *line = fgets(str, num, l->fp);
    size_t len;
    int next;

    *too_long = false;
    if (!line)
        return NULL;
    l->lineno++;
    len = strlen(line);
    if (len + 1 < (size_t)num || line[len - 1] == '\n')
        return line;
    /* The buffer is full: fine if the line ends right there. */
    next = getc(l->fp);
    if (next == EOF || next == '\n')
        return line;
    *too_long = true;
    return NULL;
}

const char *
zn_ini_header(const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    return *line == '[' ? line : NULL;
}

int
zn_ini_parse_file(const char *path, struct zn_ini_lines *lines,
                  ini_reader reader, ini_handler handler, void *user,
                  struct zn_err *err)
{
    int rc;

    lines->fp = fopen(path, "r");
    lines->lineno = 0;
    if (!lines->fp) {
        zn_err_set(err, ZN_EINVAL, "%s: cannot open: %s", path,
                   strerror(errno));
        return -1;
    }
    rc = ini_parse_stream(reader, user, handler, user);
    fclose(lines->fp);
    lines->fp = NULL;
    return rc;
}

int
zn_ini_fail(struct zn_err *err, bool *failed, const char *path, int line,
            const char *fmt, ...)
{
    char msg[ZN_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!*failed && line > 0)
        zn_err_set(err, ZN_EINVAL, "%s:%d: %s", path, line, msg);
    else if (!*failed)
        zn_err_set(err, ZN_EINVAL, "%s: %s", path, msg);
    *failed = true;
    return 0;
}

int
zn_ini_result(int rc, bool failed, const char *path, struct zn_err *err)
{
    if (failed || rc == -1)
        return err && err->code ? err->code : ZN_EINVAL;
    if (rc == -2)
        return zn_err_set(err, ZN_ENOMEM, "%s: out of memory", path);
    if (rc > 0)
        return zn_err_set(err, ZN_EINVAL, "%s:%d: syntax error", path, rc);
    return 0;
}
