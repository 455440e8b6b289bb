/*
 * config.h - the server's options: one table (config.c) declares each
 * option once (name, type, default, bounds, help) and drives the INI file,
 * the ZENITH_* environment variables, the command-line flags and --help.
 *
 * Precedence: defaults < file < environment < command line. Every error
 * reads "file:line: message" (or "env NAME: ..." / "--flag: ...") and
 * leaves the config unusable: the caller exits with status 2.
 */
#ifndef ZN_CONFIG_H
#define ZN_CONFIG_H

#include "compat.h"

#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"
#include "queue/engine.h"

struct zn_config {
    char *data;            /* directory of the database files */
    char *fwp;             /* FWP TCP address, "" = off */
    char *unix_socket;     /* FWP Unix socket, "" = <data>/zenith.sock */
    char *http;            /* HTTP address, "" = off */
    char *password;        /* FWP password, "" = none */
    char *store;           /* "sqlite" (QUEUE_CONNECTION) */
    int durability;        /* enum zn_durability */
    int log_level;         /* enum zn_log_level */
    bool workers;          /* run the supervisor's workers */
    int64_t max_line;      /* bytes of one FWP command line */
    char *redis_host;      /* REDIS_HOST (the Redis store is to come) */
    int redis_port;        /* REDIS_PORT */
    char *redis_password;  /* REDIS_PASSWORD, "" = none ("null" too) */
    bool dashboard;        /* HORIZON_ENABLED: serve the dashboard */
    char *file;            /* the --config file, NULL when none */
    struct zn_engine_config engine;
};

/* Fills cfg with the defaults. Strings are malloc'd. */
int zn_config_init(struct zn_config *cfg, struct zn_err *err);
void zn_config_release(struct zn_config *cfg);

/* Reads an INI file over cfg. ZN_EINVAL "path:line: message". */
int zn_config_load_file(struct zn_config *cfg, const char *path,
                        struct zn_err *err);

/*
 * Applies the environment: first the seed's variables (QUEUE_CONNECTION,
 * REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, HORIZON_ENABLED), then
 * ZENITH_<KEY>, which wins over them. Errors read "env NAME: ...".
 */
int zn_config_load_env(struct zn_config *cfg, struct zn_err *err);

/*
 * Sets one option by its name (as in the file: "backoff", "data", ...)
 * from text. where prefixes error messages ("zenith.ini:12").
 */
int zn_config_set(struct zn_config *cfg, const char *name, const char *value,
                  const char *where, struct zn_err *err);

/*
 * Parses "serve"'s command line: --config FILE first (then file and
 * environment are applied), then every other --<option> VALUE or
 * --<option>=VALUE. Returns 0, 1 when --help was printed, or ZN_EINVAL.
 */
int zn_config_from_args(struct zn_config *cfg, int argc, char **argv,
                        struct zn_err *err);

/* Prints the options with their defaults and help, for --help. */
void zn_config_usage(FILE *out);

#endif
