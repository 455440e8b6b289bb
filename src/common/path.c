/*
 * path.c - the path of a program beside the running one. /proc/self/exe
 * names the binary even when it was started through a relative path or a
 * symlink.
 */
#include "compat.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/path.h"

int
zn_path_beside_self(const char *name, char *out, size_t size,
                    struct zn_err *err)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (len <= 0)
        return zn_err_set(err, ZN_EIO, "cannot find the running binary: %s",
                          len < 0 ? strerror(errno) : "empty path");
    if ((size_t)len >= sizeof(self) - 1)
        return zn_err_set(err, ZN_ETOOBIG, "cannot find the running binary: "
                          "path too long");
    self[len] = '\0';
    slash = strrchr(self, '/');
    if (!slash)
        return zn_err_set(err, ZN_EIO, "cannot find the running binary: "
                          "'%s' is not absolute", self);
    slash[1] = '\0';
    if ((size_t)snprintf(out, size, "%s%s", self, name) >= size)
        return zn_err_set(err, ZN_ETOOBIG, "path of '%s' too long", name);
    return 0;
}
