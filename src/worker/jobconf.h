/*
 * jobconf.h - the handler sections of the config file (the same INI file
 * `zenith serve --config` reads):
 *
 *   [job "resize-image"]
 *   command = /usr/local/bin/resize --fast      ; exec handler
 *   timeout = 120                               ; optional, seconds
 *
 *   [job "notify-crm"]
 *   url = https://crm.example/hooks/zenith      ; webhook handler
 *
 * A job section has exactly one of command or url, and optionally a
 * timeout that replaces the job's own (its reserve_for). Note that the
 * server's lease is still the job's reserve_for: a longer timeout lets the
 * lease expire first. Other sections ([server], [supervisor "x"], keys
 * before any section) belong to other readers and are skipped here.
 *
 * inih rules apply: lines of at most 198 bytes, and " ;" starts a comment
 * even inside a value (write ";" without a space before it in commands).
 */
#ifndef ZN_WORKER_JOBCONF_H
#define ZN_WORKER_JOBCONF_H

#include "compat.h"

#include "common/err.h"
#include "worker/handler.h"

/*
 * Reads path and adds its job handlers to r (replacing built-ins of the
 * same name). Returns 0, ZN_EINVAL with "path:line: message" (or "path:
 * cannot open: ..."), or ZN_ENOMEM. On error r may hold the handlers read
 * before the faulty line; the caller releases it and exits.
 */
int zn_jobconf_load(struct zn_handler_registry *r, const char *path,
                    struct zn_err *err);

#endif
