/*
 * err.h - error codes and the error message carrier.
 *
 * Fallible functions return 0 or a negative ZN_E* code; an optional
 * struct zn_err receives a human message (lowercase, no full stop, failure
 * first). A NULL err is allowed everywhere and means "code only".
 */
#ifndef ZN_ERR_H
#define ZN_ERR_H

#include "compat.h"

enum zn_err_code {
    ZN_OK = 0,
    ZN_EINVAL = -1,    /* bad input: the message says which field and why */
    ZN_ENOMEM = -2,    /* allocation failed */
    ZN_EIO = -3,       /* file, socket or store failure */
    ZN_ENOTFOUND = -4, /* no such job, queue, key */
    ZN_EEXIST = -5,    /* already there (a client-given jid) */
    ZN_EUNIQUE = -6,   /* refused by unique_for; message names the jid */
    ZN_ETOOBIG = -7,   /* over a configured limit */
    ZN_ESTATE = -8,    /* not allowed in the current state */
    ZN_EAUTH = -9,     /* bad password */
    ZN_EPROTO = -10,   /* protocol violation by the peer */
    ZN_EAGAIN = -11,   /* nothing now; try later */
};

#define ZN_ERR_MSG_MAX 512

struct zn_err {
    int code;
    char msg[ZN_ERR_MSG_MAX];
};

/*
 * Records code and a formatted message in err (if not NULL) and returns
 * code, so callers write "return zn_err_set(err, ZN_EINVAL, ...)".
 */
int zn_err_set(struct zn_err *err, int code, const char *fmt, ...)
    ZN_PRINTF(3, 4);

/* Resets err to "no error". NULL is a no-op. */
void zn_err_clear(struct zn_err *err);

/* A short constant name for a code: "EINVAL", "ENOTFOUND", ... */
const char *zn_err_name(int code);

#endif
