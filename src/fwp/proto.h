/*
 * proto.h - the Faktory Work Protocol v2, as text: command lines from
 * clients, RESP replies from the server, and the JSON arguments of HELLO,
 * ACK, FAIL and BEAT. Pure functions with no I/O, so they can be fuzzed and
 * shared by the server (fwp/server.c) and our client (fwp/client.c).
 *
 * A command is one line: VERB [SP ARGUMENT] CRLF (a bare LF is accepted).
 * Replies are RESP2: "+OK", "-ERR message", "$len\r\n<bytes>", "$-1".
 */
#ifndef ZN_FWP_PROTO_H
#define ZN_FWP_PROTO_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"

#define ZN_FWP_DEFAULT_PORT 7419
#define ZN_FWP_WID_MAX 64

enum zn_fwp_verb {
    ZN_FWP_HELLO = 0,
    ZN_FWP_PUSH,
    ZN_FWP_PUSHB,
    ZN_FWP_FETCH,
    ZN_FWP_ACK,
    ZN_FWP_FAIL,
    ZN_FWP_BEAT,
    ZN_FWP_INFO,
    ZN_FWP_FLUSH,
    ZN_FWP_QUEUE,
    ZN_FWP_END,
    ZN_FWP_MUTATE, /* Faktory's: requeue/discard/clear dead, retries, ... */
    ZN_FWP_JOBS,   /* zenith's: list or show jobs (JSON query) */
    ZN_FWP_CONTROL, /* zenith's: the supervisor's commands (JSON) */
    ZN_FWP_VERB_COUNT
};

/* A parsed command line; arg points into the line (not NUL-terminated). */
struct zn_fwp_cmd {
    enum zn_fwp_verb verb;
    const char *arg; /* NULL when the command has no argument */
    size_t arg_len;
};

/*
 * Parses one line (len bytes, without or with its trailing CR/LF).
 * Checks the verb (case-sensitive, as Faktory), and that the argument is
 * present for HELLO, PUSH, PUSHB, FETCH, ACK, FAIL, BEAT, QUEUE, MUTATE,
 * JOBS, CONTROL and absent
 * for INFO, FLUSH, END. ZN_EPROTO with err: "unknown command 'FOO'",
 * "PUSH: missing argument", "INFO: takes no argument", "empty command",
 * "command contains a NUL byte".
 */
int zn_fwp_parse_line(const char *line, size_t len, struct zn_fwp_cmd *out,
                      struct zn_err *err);

/* "PUSH" etc. */
const char *zn_fwp_verb_name(enum zn_fwp_verb v);

/*
 * Splits a space-separated list (FETCH's queues, QUEUE's names) into at
 * most max malloc'd, validated queue names. Returns the count or a
 * negative code (ZN_EINVAL "queue 'x y': ...", ZN_ETOOBIG "too many
 * queues"). A list of only spaces gives 0. Free with zn_fwp_names_free.
 */
int zn_fwp_split_names(const char *s, size_t len, char **names, size_t max,
                       struct zn_err *err);
void zn_fwp_names_free(char **names, size_t n);

struct zn_fwp_hello {
    int v;                           /* protocol version, 2 */
    char wid[ZN_FWP_WID_MAX + 1];    /* empty for a producer */
    char *hostname;
    int64_t pid;
    char **labels;
    size_t nlabels;
    char pwdhash[65];                /* lowercase hex, empty if absent */
};

/*
 * The JSON argument parsers (HELLO, ACK, FAIL, BEAT) return 0, or
 * ZN_EPROTO (ZN_ENOMEM) with a message naming the command and the field.
 * An optional field that is null counts as absent. On failure nothing is
 * left to release.
 */

/*
 * jansson's failure to read a command's JSON as err: "<verb>: invalid
 * JSON at line L column C: <its text, quoted>" (ZN_EPROTO), or ZN_ENOMEM.
 */
struct json_error_t; /* jansson's json_error_t */
int zn_fwp_json_error(const char *verb, const struct json_error_t *je,
                      struct zn_err *err);

/* HELLO {...}: v must be 2; wid, if present, a valid id. */
int zn_fwp_parse_hello(const char *json, size_t len, struct zn_fwp_hello *out,
                       struct zn_err *err);
void zn_fwp_hello_release(struct zn_fwp_hello *h);

/*
 * ACK {"jid":"...", "cpu_ms":N, "rss_kb":N}. The usage of the attempt is
 * zenith's own (zenith work sends it, other clients do not): optional,
 * integers from 0, -1 when absent. FAIL takes the same two fields.
 */
struct zn_fwp_ack {
    char jid[65];    /* ZN_JID_MAX + 1 */
    int64_t cpu_ms;
    int64_t rss_kb;
};

int zn_fwp_parse_ack(const char *json, size_t len, struct zn_fwp_ack *out,
                     struct zn_err *err);

struct zn_fwp_fail {
    char jid[65];
    char *errtype;   /* NULL if absent */
    char *message;   /* NULL if absent */
    char *backtrace; /* JSON array text, NULL if absent */
    int64_t cpu_ms;  /* -1 if absent */
    int64_t rss_kb;  /* -1 if absent */
};

/* FAIL {"jid":..., "errtype":..., "message":..., "backtrace":[...]} */
int zn_fwp_parse_fail(const char *json, size_t len, struct zn_fwp_fail *out,
                      struct zn_err *err);
void zn_fwp_fail_release(struct zn_fwp_fail *f);

struct zn_fwp_beat {
    char wid[ZN_FWP_WID_MAX + 1];
    char current_state[16]; /* "", "quiet" or "terminate" */
    int64_t rss_kb;         /* -1 if absent */
};

/* BEAT {"wid":..., "current_state":..., "rss_kb":...} */
int zn_fwp_parse_beat(const char *json, size_t len, struct zn_fwp_beat *out,
                      struct zn_err *err);

/*
 * Faktory's password hash: SHA-256 of password+salt, then iterations-1
 * more SHA-256 of the previous digest, as lowercase hex (65 bytes).
 * Iterations below 1 count as 1; a NULL password or salt as "".
 */
void zn_fwp_pwdhash(const char *password, const char *salt, int iterations,
                    char *out);

/*
 * Constant-time comparison of two NUL-terminated hex digests. NULL or
 * empty never matches.
 */
bool zn_fwp_hash_equal(const char *a, const char *b);

/*
 * An address: "unix:/path", "/path" (Unix socket), "host:port",
 * "[v6]:port" or "tcp://host:port". host is copied into host (size bytes)
 * or path into path. Returns 0 or ZN_EINVAL "bad address 'x': ...".
 */
struct zn_fwp_addr {
    bool is_unix;
    char host[256];
    int port;
    char path[108];
};
int zn_fwp_parse_addr(const char *s, struct zn_fwp_addr *out,
                      struct zn_err *err);

/*
 * An incremental RESP reply reader for clients. Feed bytes; when a whole
 * reply is in, returns 1 and fills the reply. type is '+', '-', '$' (bulk;
 * data NULL for $-1 nil) or ':' (integer; data holds its digits). data is
 * malloc'd and NUL-terminated; the caller frees it. Returns 0 when more
 * bytes are needed (consumed tells how many were used: 0), or ZN_EPROTO
 * for a malformed reply (a line over 1 MiB, a bulk over max_bulk).
 */
struct zn_resp_reply {
    char type;
    char *data;
    size_t len;
};
int zn_resp_parse(const char *buf, size_t len, size_t max_bulk,
                  struct zn_resp_reply *out, size_t *consumed,
                  struct zn_err *err);

#endif
