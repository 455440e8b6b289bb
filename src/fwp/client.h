/*
 * client.h - a blocking FWP client: what zenith's CLI, its worker, the
 * tests and the benchmarks use to talk to a server. One connection, one
 * request at a time (send/recv split out for pipelining).
 */
#ifndef ZN_FWP_CLIENT_H
#define ZN_FWP_CLIENT_H

#include "compat.h"

#include "common/err.h"
#include "fwp/proto.h"

struct zn_fwp_client;

struct zn_fwp_client_opts {
    const char *addr;      /* see zn_fwp_parse_addr */
    const char *password;  /* NULL or "" = none */
    const char *wid;       /* NULL = producer; else a consumer's wid */
    const char *hostname;  /* NULL = gethostname() */
    const char *const *labels;
    size_t nlabels;
    int timeout_ms;        /* per read/write; 0 = 30000 */
};

/*
 * Connects, reads HI, answers HELLO (with pwdhash when the server asks)
 * and waits for OK. ZN_EIO "cannot connect to 'addr': ...", ZN_EAUTH when
 * the server refuses the password, ZN_EPROTO for anything unexpected.
 */
int zn_fwp_client_connect(const struct zn_fwp_client_opts *o,
                          struct zn_fwp_client **out, struct zn_err *err);

/* Sends END (best effort), closes and frees. NULL is a no-op. */
void zn_fwp_client_free(struct zn_fwp_client *c);

/*
 * Sends "VERB ARG\r\n" (arg may be NULL) and reads one reply. *reply gets
 * the payload of +simple or $bulk replies (malloc'd, NUL-terminated), or
 * NULL for a nil bulk; reply may be NULL to discard it. A -ERR reply
 * returns ZN_EPROTO with the server's message in err (the connection stays
 * usable); ZN_EIO when the connection failed. After a ZN_EIO (timeout,
 * closed connection, malformed reply) the client is broken: requests and
 * replies may be out of step, so every later call fails with ZN_EIO.
 */
int zn_fwp_client_call(struct zn_fwp_client *c, const char *verb,
                       const char *arg, char **reply, struct zn_err *err);

/* Pipelining halves of zn_fwp_client_call. */
int zn_fwp_client_send(struct zn_fwp_client *c, const char *verb,
                       const char *arg, struct zn_err *err);
int zn_fwp_client_recv(struct zn_fwp_client *c, char **reply,
                       struct zn_err *err);

/*
 * Two commands in one write: the server gets the second with the first,
 * and answers both in one wake-up (zenith work's ACK and next FETCH).
 * Their replies come in order: two zn_fwp_client_recv.
 */
int zn_fwp_client_send2(struct zn_fwp_client *c, const char *verb1,
                        const char *arg1, const char *verb2,
                        const char *arg2, struct zn_err *err);

/*
 * True when bytes of a reply were received and not read yet: poll() on
 * the socket would wait for what is already here.
 */
bool zn_fwp_client_buffered(const struct zn_fwp_client *c);

/* Sends raw bytes as they are (tests of malformed input). */
int zn_fwp_client_send_raw(struct zn_fwp_client *c, const void *buf,
                           size_t len, struct zn_err *err);

/* The HI line's salt, or NULL when the server asked for no password. */
const char *zn_fwp_client_salt(const struct zn_fwp_client *c);

/*
 * The connected socket, for poll() in callers that multiplex. It must stay
 * blocking: the client's reads wait in recv() under SO_RCVTIMEO.
 */
int zn_fwp_client_fd(const struct zn_fwp_client *c);

#endif
