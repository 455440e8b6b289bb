/*
 * cli_int.h - what the client commands share (client.c, control.c): how
 * they find the server and send one command. Not for use outside
 * src/cli/.
 */
#ifndef ZN_CLI_INT_H
#define ZN_CLI_INT_H

#include "compat.h"

#include <stdbool.h>

struct zn__cli_conn {
    const char *server;
    const char *password;
    bool json;
};

/*
 * Takes the connection flags (--server, --password, and --json) out of
 * argv, in place; the defaults come from ZENITH_SERVER and
 * ZENITH_PASSWORD. Returns the new argc, or -1 on a flag without its
 * value (printed).
 */
int zn__cli_take_conn_flags(int argc, char **argv, struct zn__cli_conn *o);

/* True when argv (after argv[0]) asks for --help or -h. */
bool zn__cli_wants_help(int argc, char **argv);

/*
 * Connects, sends one command, and closes. *out (when out is not NULL)
 * gets the reply, malloc'd. Prints the error as "zenith: message".
 * Returns 0 or 1 (the exit status).
 */
int zn__cli_call(const struct zn__cli_conn *o, const char *verb,
                 const char *arg, char **out);

#endif
