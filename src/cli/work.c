/*
 * work.c - `zenith work`: runs zenith-work, the worker program beside this
 * one, with the same arguments (see worker/command.c for them).
 */
#include "compat.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/path.h"

int
zn_cli_work(int argc, char **argv)
{
    char path[PATH_MAX];
    struct zn_err err;

    (void)argc;
    if (zn_path_beside_self("zenith-work", path, sizeof(path), &err) < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        return 1;
    }
    argv[0] = path;
    execv(path, argv);
    fprintf(stderr, "zenith: cannot run '%s': %s\n", path, strerror(errno));
    return 1;
}
