/*
 * ini.c - see ini.h.
 */
#include "compat.h"

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
