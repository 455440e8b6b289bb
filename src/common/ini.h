/*
 * ini.h - the line reader under zenith's INI files (the [server] options,
 * [supervisor "NAME"] and [job "NAME"] blocks), for inih's
 * ini_parse_stream. Debian's inih does not pass line numbers to its
 * handlers, so the reader counts them for error messages; and inih would
 * read the rest of a line longer than its buffer as a line of its own, so
 * such a line is refused.
 */
#ifndef ZN_COMMON_INI_H
#define ZN_COMMON_INI_H

#include "compat.h"

#include <stdbool.h>
#include <stdio.h>

struct zn_ini_lines {
    FILE *fp;
    int lineno; /* the line read last, from 1 */
};

/*
 * Reads the next line into str (num bytes) as fgets does, and counts it.
 * NULL at the end of the file, or with *too_long set when the line does
 * not fit in num - 1 bytes (its newline aside): the caller reports
 * "line too long: the limit is <num - 1> bytes" at l->lineno.
 */
char *zn_ini_next_line(struct zn_ini_lines *l, char *str, int num,
                       bool *too_long);

#endif
