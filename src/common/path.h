/*
 * path.h - where the running program's companions are: zenith and
 * zenith-work are installed (and built) side by side.
 */
#ifndef ZN_COMMON_PATH_H
#define ZN_COMMON_PATH_H

#include "compat.h"

#include <stddef.h>

#include "common/err.h"

/*
 * The path of the file name in the directory of the running binary
 * (/proc/self/exe), into out. ZN_EIO when the binary cannot be found,
 * ZN_ETOOBIG when the path does not fit.
 */
int zn_path_beside_self(const char *name, char *out, size_t size,
                        struct zn_err *err);

#endif
