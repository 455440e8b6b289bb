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

#include <ini.h>

#include "common/err.h"

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

/* The '[' of a section header line (after blanks), else NULL. */
const char *zn_ini_header(const char *line);

/*
 * Runs ini_parse_stream over the file at path: lines->fp is open while
 * reader (which reads through zn_ini_next_line on lines) and handler run;
 * user is both their argument. Returns what inih returns (0, the first
 * line it could not parse, -2 out of memory), or -1 with err set to
 * "PATH: cannot open: REASON".
 */
int zn_ini_parse_file(const char *path, struct zn_ini_lines *lines,
                      ini_reader reader, ini_handler handler, void *user,
                      struct zn_err *err);

/*
 * A reader's or handler's refusal: sets err to "PATH:LINE: <message>"
 * ("PATH: <message>" when line is 0) unless *failed is set already (the
 * first error is the one reported), then sets *failed. Returns 0, which
 * tells inih to stop.
 */
int zn_ini_fail(struct zn_err *err, bool *failed, const char *path, int line,
                const char *fmt, ...) ZN_PRINTF(5, 6);

/*
 * What a run of zn_ini_parse_file comes to: when a reader or handler
 * failed, the error it set in err; else inih's result, as ZN_ENOMEM
 * "PATH: out of memory" or ZN_EINVAL "PATH:N: syntax error"; else 0.
 */
int zn_ini_result(int rc, bool failed, const char *path, struct zn_err *err);

#endif
