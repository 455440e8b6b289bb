/*
 * beanstalk.h - a minimal blocking beanstalkd client for the benchmark:
 * the peer zenith is compared with. It speaks only what a producer and a
 * consumer of no-op jobs need: use, watch, put, reserve, delete, and
 * stats-tube to see when a tube has been drained.
 *
 * One connection, one buffered reader. Requests may be queued without
 * waiting (zn_beanstalk_put_send, then zn_beanstalk_flush) so a batch of
 * puts goes out in one write and its replies are read after it: the
 * nearest beanstalkd gets to FWP's PUSHB, which it has no command for.
 *
 * Non-goals: the rest of the protocol (bury, kick, the other stats, ...),
 * reconnecting, and use by anything but bench/.
 */
#ifndef ZN_BENCH_BEANSTALK_H
#define ZN_BENCH_BEANSTALK_H

#include "compat.h"

#include "common/err.h"

struct zn_beanstalk;

/*
 * Connects to "host:port" (TCP, TCP_NODELAY). timeout_ms bounds each
 * read and write (0 = 30000). ZN_EINVAL for a bad address, ZN_EIO when
 * the connection fails.
 */
int zn_beanstalk_connect(const char *addr, int timeout_ms,
                         struct zn_beanstalk **out, struct zn_err *err);

/* Closes and frees. NULL is a no-op. */
void zn_beanstalk_free(struct zn_beanstalk *c);

/* The socket, so another thread may shutdown() it to end a reserve. */
int zn_beanstalk_fd(const struct zn_beanstalk *c);

/* "use TUBE": later puts go to tube. ZN_EPROTO on an unexpected reply. */
int zn_beanstalk_use(struct zn_beanstalk *c, const char *tube,
                     struct zn_err *err);

/* "watch TUBE" then "ignore default": reserve takes from tube only. */
int zn_beanstalk_watch(struct zn_beanstalk *c, const char *tube,
                       struct zn_err *err);

/*
 * Queues "put PRI DELAY TTR LEN\r\nBODY\r\n" in the output buffer without
 * writing it. ZN_ENOMEM when the buffer cannot grow.
 */
int zn_beanstalk_put_send(struct zn_beanstalk *c, uint32_t pri,
                          uint32_t delay, uint32_t ttr, const char *body,
                          size_t len, struct zn_err *err);

/* Writes everything queued. ZN_EIO on failure or timeout. */
int zn_beanstalk_flush(struct zn_beanstalk *c, struct zn_err *err);

/*
 * Reads one reply to a put: "INSERTED <id>" gives 0 and *id; anything
 * else (BURIED, JOB_TOO_BIG, DRAINING, ...) ZN_EPROTO with the reply in
 * err; ZN_EIO when the connection failed.
 */
int zn_beanstalk_put_recv(struct zn_beanstalk *c, uint64_t *id,
                          struct zn_err *err);

/* put_send + flush + put_recv. */
int zn_beanstalk_put(struct zn_beanstalk *c, uint32_t pri, uint32_t delay,
                     uint32_t ttr, const char *body, size_t len,
                     uint64_t *id, struct zn_err *err);

/* Sends "reserve": the reply is read by zn_beanstalk_reserve_recv. */
int zn_beanstalk_reserve_send(struct zn_beanstalk *c, struct zn_err *err);

/*
 * Reads "RESERVED <id> <bytes>\r\n<data>\r\n". *body (malloc'd, NUL-
 * terminated, the caller frees it) may be NULL to discard the data.
 * Blocks until a job comes or the timeout passes (ZN_EIO).
 */
int zn_beanstalk_reserve_recv(struct zn_beanstalk *c, uint64_t *id,
                              char **body, size_t *len, struct zn_err *err);

/* reserve_send + reserve_recv. */
int zn_beanstalk_reserve(struct zn_beanstalk *c, uint64_t *id, char **body,
                         size_t *len, struct zn_err *err);

/* "delete ID" -> "DELETED". ZN_EPROTO for NOT_FOUND. */
int zn_beanstalk_delete(struct zn_beanstalk *c, uint64_t id,
                        struct zn_err *err);

/*
 * "delete ID" and "reserve" in one write, as zenith work sends its ACK
 * with its next FETCH; then reads both replies (see reserve_recv).
 */
int zn_beanstalk_delete_reserve(struct zn_beanstalk *c, uint64_t id,
                                uint64_t *next, char **body, size_t *len,
                                struct zn_err *err);

/*
 * "stats-tube TUBE" -> "OK <bytes>\r\n<YAML>\r\n": *yaml gets the YAML
 * (malloc'd, NUL-terminated; the caller frees it). ZN_EPROTO for
 * NOT_FOUND (a tube with no job, no watcher and no user does not exist).
 */
int zn_beanstalk_stats_tube(struct zn_beanstalk *c, const char *tube,
                            char **yaml, struct zn_err *err);

#endif
