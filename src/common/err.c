/*
 * err.c - the error carrier. No allocation: messages live in the caller's
 * struct, so reporting an out-of-memory error cannot itself fail.
 */
#include "compat.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"

int
zn_err_set(struct zn_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void
zn_err_clear(struct zn_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *
zn_err_name(int code)
{
    switch (code) {
    case ZN_OK: return "OK";
    case ZN_EINVAL: return "EINVAL";
    case ZN_ENOMEM: return "ENOMEM";
    case ZN_EIO: return "EIO";
    case ZN_ENOTFOUND: return "ENOTFOUND";
    case ZN_EEXIST: return "EEXIST";
    case ZN_EUNIQUE: return "EUNIQUE";
    case ZN_ETOOBIG: return "ETOOBIG";
    case ZN_ESTATE: return "ESTATE";
    case ZN_EAUTH: return "EAUTH";
    case ZN_EPROTO: return "EPROTO";
    case ZN_EAGAIN: return "EAGAIN";
    }
    return "EUNKNOWN";
}
