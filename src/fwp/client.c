/*
 * client.c - a blocking FWP client: one socket (TCP or Unix), one input
 * buffer, one request at a time. zn_fwp_client_connect does the HI/HELLO
 * handshake; after it, every call writes "VERB ARG\r\n" and reads one RESP
 * reply with proto.c's incremental reader.
 *
 * The socket stays in blocking mode (callers may poll() it). A send is
 * made with MSG_DONTWAIT and waits in poll() only when the socket is full;
 * a recv blocks under SO_RCVTIMEO, set to the time left (within
 * RCVTIMEO_SLACK_MS, so most replies cost one recv and no other call).
 * The timeout bounds each whole operation (one request written, one reply
 * read) to about that slack and the kernel's rounding, so a server that
 * drips one byte at a time, or stops half-way, cannot hold a caller
 * forever. A caller must leave the socket blocking.
 *
 * Invariant: once the client is broken (timeout, closed connection, write
 * failure, malformed reply), requests and replies may be out of step, so
 * every later call fails at once with ZN_EIO rather than hand a caller the
 * reply to somebody else's request. A "-ERR" reply does not break it.
 *
 * Non-goals: reconnecting, TLS, pipelining depth control (the caller
 * counts what it sent with zn_fwp_client_send).
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "common/clock.h"
#include "fwp/client.h"
#include "queue/job.h"

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_BULK ((size_t)64 << 20)   /* largest reply we accept */
#define IN_INITIAL 4096
#define IN_MAX (MAX_BULK + 64)        /* bulk + its "$N\r\n...\r\n" frame */
#define HI_ITER_MAX 1000000           /* a hostile server could ask more */
#define ADDR_TEXT_MAX 128
#define RCVTIMEO_SLACK_MS 10          /* how far a recv may pass its time */

struct zn_fwp_client {
    int fd;
    int timeout_ms;
    int64_t rcvtimeo_ms;       /* the socket's SO_RCVTIMEO, 0 = none */
    bool broken;
    char *salt;                /* from HI, NULL when no password asked */
    char addr[ADDR_TEXT_MAX];  /* as given, printable, for messages */
    char *in;                  /* bytes received, not yet parsed */
    size_t in_len;
    size_t in_cap;
};

/* Replaces control bytes so server text is safe in our messages. */
static char *
printable(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

static int
broke(struct zn_fwp_client *c, int rc)
{
    c->broken = true;
    return rc;
}

/* 1 when fd is ready for events, 0 at the deadline, -1 with errno. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int64_t left = deadline - zn_clock_mono_ms();
        int rc;

        if (left <= 0)
            return 0;
        rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- connecting -------------------------------------------------------- */

/*
 * connect() with a deadline: non-blocking for the attempt only, then back
 * to blocking. Returns 0 or -1 with errno.
 */
static int
connect_fd(int fd, const struct sockaddr *sa, socklen_t salen,
           int64_t deadline)
{
    int flags = fcntl(fd, F_GETFL);
    socklen_t sl = sizeof(int);
    int soerr = 0;
    int rc;

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    rc = connect(fd, sa, salen);
    /* EINTR: the attempt goes on in the background, as EINPROGRESS. */
    if (rc < 0 && (errno == EINPROGRESS || errno == EINTR)) {
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0)
            errno = ETIMEDOUT;
        if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            rc = -1;
        else if (rc == 1 && soerr)
            errno = soerr;
        rc = (rc == 1 && soerr == 0) ? 0 : -1;
    }
    if (rc == 0 && fcntl(fd, F_SETFL, flags) < 0)
        rc = -1;
    return rc;
}

static int
connect_unix(struct zn_fwp_client *c, const struct zn_fwp_addr *a,
             int64_t deadline, struct zn_err *err)
{
    struct sockaddr_un su;
    int saved;

    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    memcpy(su.sun_path, a->path, strlen(a->path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 ||
        connect_fd(c->fd, (struct sockaddr *)&su, sizeof(su), deadline) < 0)
        goto fail;
    return 0;
fail:
    saved = errno;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    return zn_err_set(err, ZN_EIO, "cannot connect to '%s': %s", c->addr,
                      strerror(saved));
}

static int
connect_tcp(struct zn_fwp_client *c, const struct zn_fwp_addr *a,
            int64_t deadline, struct zn_err *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[8];
    int one = 1;
    int saved = ECONNREFUSED;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", a->port);
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0)
        return zn_err_set(err, ZN_EIO, "cannot connect to '%s': %s", c->addr,
                          gai_strerror(rc));
    for (ai = res; ai; ai = ai->ai_next) {
        c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                       ai->ai_protocol);
        if (c->fd >= 0 &&
            connect_fd(c->fd, ai->ai_addr, ai->ai_addrlen, deadline) == 0)
            break;
        saved = errno;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return zn_err_set(err, ZN_EIO, "cannot connect to '%s': %s", c->addr,
                          strerror(saved));
    /* Requests are small and each waits for its reply: no Nagle delay. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

/* ---- reading and writing ----------------------------------------------- */

static int
grow_input(struct zn_fwp_client *c, struct zn_err *err)
{
    size_t cap = c->in_cap ? c->in_cap * 2 : IN_INITIAL;
    char *p;

    if (c->in_cap >= IN_MAX)
        return broke(c, zn_err_set(err, ZN_EIO, "reply from '%s' is too "
                                   "large", c->addr));
    if (cap > IN_MAX)
        cap = IN_MAX;
    p = realloc(c->in, cap);
    if (!p)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/*
 * Lets a blocking recv last about ms (SO_RCVTIMEO), set only when it is
 * off by more than RCVTIMEO_SLACK_MS. Returns 0 or -1 with errno.
 */
static int
recv_within(struct zn_fwp_client *c, int64_t ms)
{
    struct timeval tv;

    if (c->rcvtimeo_ms && llabs(c->rcvtimeo_ms - ms) <= RCVTIMEO_SLACK_MS)
        return 0;
    tv = zn_clock_tv(ms);
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return -1;
    c->rcvtimeo_ms = ms;
    return 0;
}

/* Receives at least one more byte into the input buffer. */
static int
fill_input(struct zn_fwp_client *c, int64_t deadline, struct zn_err *err)
{
    ssize_t n;
    int rc;

    if (c->in_len == c->in_cap) {
        rc = grow_input(c, err);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        int64_t left = deadline - zn_clock_mono_ms();

        if (left <= 0)
            return broke(c, zn_err_set(err, ZN_EIO, "timed out after %d ms "
                                       "waiting for a reply from '%s'",
                                       c->timeout_ms, c->addr));
        if (recv_within(c, left) < 0)
            return broke(c, zn_err_set(err, ZN_EIO, "cannot set a read "
                                       "timeout on '%s': %s", c->addr,
                                       strerror(errno)));
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return broke(c, zn_err_set(err, ZN_EIO, "connection closed by "
                                       "'%s'", c->addr));
        /*
         * EAGAIN: SO_RCVTIMEO ran out, or a caller made the socket
         * non-blocking after all; poll until the deadline, which then
         * says whether it is over.
         */
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(c->fd, POLLIN, deadline) < 0)
                break;
        } else if (errno != EINTR) {
            break;
        }
    }
    return broke(c, zn_err_set(err, ZN_EIO, "cannot read from '%s': %s",
                               c->addr, strerror(errno)));
}

/*
 * Reads one whole reply into *r. A malformed reply breaks the client and
 * returns bad_code (ZN_EPROTO while connecting, ZN_EIO after).
 */
static int
read_reply(struct zn_fwp_client *c, struct zn_resp_reply *r, int bad_code,
           struct zn_err *err)
{
    int64_t deadline = zn_clock_mono_ms() + c->timeout_ms;
    struct zn_err perr = {0};
    size_t used;
    int rc;

    for (;;) {
        rc = zn_resp_parse(c->in, c->in_len, MAX_BULK, r, &used, &perr);
        if (rc == 1)
            break;
        if (rc == ZN_ENOMEM)
            return zn_err_set(err, ZN_ENOMEM, "out of memory");
        if (rc < 0)
            return broke(c, zn_err_set(err, bad_code, "bad reply from '%s': "
                                       "%s", c->addr, perr.msg));
        rc = fill_input(c, deadline, err);
        if (rc < 0)
            return rc;
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    return 0;
}

static int
write_all(struct zn_fwp_client *c, const char *p, size_t len,
          struct zn_err *err)
{
    int64_t deadline = zn_clock_mono_ms() + c->timeout_ms;
    ssize_t n;
    int rc;

    while (len > 0) {
        /* MSG_NOSIGNAL: a peer that went away is an error, not SIGPIPE. */
        n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break;
        rc = wait_fd(c->fd, POLLOUT, deadline);
        if (rc == 0)
            return broke(c, zn_err_set(err, ZN_EIO, "timed out after %d ms "
                                       "writing to '%s'", c->timeout_ms,
                                       c->addr));
        if (rc < 0)
            break;
    }
    if (len == 0)
        return 0;
    return broke(c, zn_err_set(err, ZN_EIO, "cannot write to '%s': %s",
                               c->addr, strerror(errno)));
}

static int
check_usable(const struct zn_fwp_client *c, struct zn_err *err)
{
    if (!c)
        return zn_err_set(err, ZN_EINVAL, "no client");
    if (c->broken)
        return zn_err_set(err, ZN_EIO, "connection to '%s' is broken by an "
                          "earlier error", c->addr);
    return 0;
}

/* ---- the handshake ----------------------------------------------------- */

/* Checks HI's JSON; keeps the salt and iteration count if it has them. */
static int
parse_hi(struct zn_fwp_client *c, json_t *hi, int *iter, struct zn_err *err)
{
    json_t *v = json_object_get(hi, "v");
    json_t *s = json_object_get(hi, "s");
    json_t *i = json_object_get(hi, "i");

    if (!json_is_integer(v) || json_integer_value(v) != 2)
        return zn_err_set(err, ZN_EPROTO, "server at '%s' does not speak "
                          "protocol version 2", c->addr);
    if (!s)
        return 0;
    if (!json_is_string(s) || (i && !json_is_integer(i)))
        return zn_err_set(err, ZN_EPROTO, "bad HI from '%s': s must be a "
                          "string and i an integer", c->addr);
    *iter = 1;
    if (i && (json_integer_value(i) < 1 ||
              json_integer_value(i) > HI_ITER_MAX))
        return zn_err_set(err, ZN_EPROTO, "bad HI from '%s': i must be 1 "
                          "to %d", c->addr, HI_ITER_MAX);
    if (i)
        *iter = (int)json_integer_value(i);
    c->salt = strdup(json_string_value(s));
    if (!c->salt)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    return 0;
}

static int
read_hi(struct zn_fwp_client *c, int *iter, struct zn_err *err)
{
    struct zn_resp_reply r;
    json_t *hi = NULL;
    int rc;

    rc = read_reply(c, &r, ZN_EPROTO, err);
    if (rc < 0)
        return rc;
    if (r.type != '+' || r.len < 3 || memcmp(r.data, "HI ", 3) != 0) {
        rc = zn_err_set(err, ZN_EPROTO, "expected HI from '%s', got '%c%s'",
                        c->addr, r.type, r.data ? printable(r.data) : "");
        goto done;
    }
    hi = json_loadb(r.data + 3, r.len - 3, 0, NULL);
    if (!json_is_object(hi)) {
        rc = zn_err_set(err, ZN_EPROTO, "bad HI from '%s': not a JSON "
                        "object", c->addr);
        goto done;
    }
    rc = parse_hi(c, hi, iter, err);
done:
    json_decref(hi);
    free(r.data);
    return rc;
}

/* Adds "wid" and "labels": only a consumer has them. */
static int
hello_consumer(json_t *h, const struct zn_fwp_client_opts *o,
               struct zn_err *err)
{
    json_t *labels = json_array();

    if (!labels)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    if (json_object_set_new(h, "labels", labels) < 0)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    if (!zn_job_jid_valid(o->wid, strlen(o->wid)) ||
        strlen(o->wid) > ZN_FWP_WID_MAX)
        return zn_err_set(err, ZN_EINVAL, "wid: must be 1 to %d printable "
                          "characters without spaces", ZN_FWP_WID_MAX);
    if (json_object_set_new(h, "wid", json_string(o->wid)) < 0)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->nlabels; i++) {
        json_t *l = o->labels[i] ? json_string(o->labels[i]) : NULL;

        if (!l)
            return zn_err_set(err, ZN_EINVAL, "labels[%zu]: must be a "
                              "UTF-8 string", i);
        if (json_array_append_new(labels, l) < 0)
            return zn_err_set(err, ZN_ENOMEM, "out of memory");
    }
    return 0;
}

/* The HELLO argument as JSON text; the caller wipes and frees it. */
static int
build_hello(const struct zn_fwp_client *c, const struct zn_fwp_client_opts *o,
            int iter, char **out, struct zn_err *err)
{
    char host[256] = "";
    char hash[65];
    json_t *h;
    int rc = 0;

    *out = NULL;
    if (c->salt && (!o->password || !*o->password))
        return zn_err_set(err, ZN_EAUTH, "server requires a password");
    if (o->hostname)
        snprintf(host, sizeof(host), "%s", o->hostname);
    else if (gethostname(host, sizeof(host) - 1) < 0)
        snprintf(host, sizeof(host), "localhost");
    h = json_pack("{s:i, s:I}", "v", 2, "pid", (json_int_t)getpid());
    if (!h)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    if (json_object_set_new(h, "hostname", json_string(host)) < 0)
        rc = zn_err_set(err, ZN_EINVAL, "hostname: must be a UTF-8 string");
    if (rc == 0 && o->wid)
        rc = hello_consumer(h, o, err);
    if (rc == 0 && c->salt) {
        zn_fwp_pwdhash(o->password, c->salt, iter, hash);
        if (json_object_set_new(h, "pwdhash", json_string(hash)) < 0)
            rc = zn_err_set(err, ZN_ENOMEM, "out of memory");
        sodium_memzero(hash, sizeof(hash));
    }
    if (rc == 0) {
        *out = json_dumps(h, JSON_COMPACT);
        if (!*out)
            rc = zn_err_set(err, ZN_ENOMEM, "out of memory");
    }
    json_decref(h);
    return rc;
}

static int
handshake(struct zn_fwp_client *c, const struct zn_fwp_client_opts *o,
          struct zn_err *err)
{
    struct zn_resp_reply r = {0};
    char *hello = NULL;
    int iter = 1;
    int rc;

    rc = read_hi(c, &iter, err);
    if (rc == 0)
        rc = build_hello(c, o, iter, &hello, err);
    if (rc == 0)
        rc = zn_fwp_client_send(c, "HELLO", hello, err);
    if (hello) {
        sodium_memzero(hello, strlen(hello));
        free(hello);
    }
    if (rc == 0)
        rc = read_reply(c, &r, ZN_EPROTO, err);
    if (rc < 0)
        return rc;
    if (r.type == '+' && strcmp(r.data, "OK") == 0)
        rc = 0;
    else if (r.type == '-')
        rc = zn_err_set(err, ZN_EAUTH, "server '%s' refused HELLO: %s",
                        c->addr, printable(r.data));
    else
        rc = zn_err_set(err, ZN_EPROTO, "unexpected reply to HELLO from "
                        "'%s': '%c%s'", c->addr, r.type,
                        r.data ? printable(r.data) : "");
    free(r.data);
    return rc;
}

int
zn_fwp_client_connect(const struct zn_fwp_client_opts *o,
                      struct zn_fwp_client **out, struct zn_err *err)
{
    struct zn_fwp_client *c;
    struct zn_fwp_addr a;
    int64_t deadline;
    int rc;

    *out = NULL;
    if (!o || !o->addr)
        return zn_err_set(err, ZN_EINVAL, "no server address");
    rc = zn_fwp_parse_addr(o->addr, &a, err);
    if (rc < 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    c->fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    snprintf(c->addr, sizeof(c->addr), "%s", o->addr);
    printable(c->addr);
    deadline = zn_clock_mono_ms() + c->timeout_ms;
    rc = a.is_unix ? connect_unix(c, &a, deadline, err)
                   : connect_tcp(c, &a, deadline, err);
    if (rc == 0)
        rc = handshake(c, o, err);
    if (rc < 0) {
        /* Whatever state the server is in, it gets no END from us. */
        c->broken = true;
        zn_fwp_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
zn_fwp_client_free(struct zn_fwp_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0) {
        if (!c->broken)
            (void)send(c->fd, "END\r\n", 5, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(c->fd);
    }
    free(c->in);
    free(c->salt);
    free(c);
}

/* ---- requests ---------------------------------------------------------- */

/* The length of "VERB[ ARG]\r\n", or ZN_EINVAL when it is not one line. */
static int
line_len(const char *verb, const char *arg, size_t *len, struct zn_err *err)
{
    size_t vlen = verb ? strlen(verb) : 0;

    if (vlen == 0 || strpbrk(verb, " \r\n"))
        return zn_err_set(err, ZN_EINVAL, "command verb must be one word");
    /* A line break inside arg would slip a second command in. */
    if (arg && strpbrk(arg, "\r\n"))
        return zn_err_set(err, ZN_EINVAL, "%s: argument contains a line "
                          "break", verb);
    *len = vlen + (arg ? 1 + strlen(arg) : 0) + 2;
    return 0;
}

/* Writes "VERB[ ARG]\r\n" at p (line_len bytes); returns the end. */
static char *
line_put(char *p, const char *verb, const char *arg)
{
    p = stpcpy(p, verb);
    if (arg) {
        *p++ = ' ';
        p = stpcpy(p, arg);
    }
    memcpy(p, "\r\n", 2);
    return p + 2;
}

/* Sends the commands (verb2 NULL: one) in one write. */
static int
send_lines(struct zn_fwp_client *c, const char *verb1, const char *arg1,
           const char *verb2, const char *arg2, struct zn_err *err)
{
    size_t len1 = 0, len2 = 0;
    char *buf;
    int rc = check_usable(c, err);

    if (rc == 0)
        rc = line_len(verb1, arg1, &len1, err);
    if (rc == 0 && verb2)
        rc = line_len(verb2, arg2, &len2, err);
    if (rc < 0)
        return rc;
    buf = malloc(len1 + len2 + 1);
    if (!buf)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    if (verb2)
        line_put(line_put(buf, verb1, arg1), verb2, arg2);
    else
        line_put(buf, verb1, arg1);
    rc = write_all(c, buf, len1 + len2, err);
    /* The line may carry a password hash (HELLO). */
    sodium_memzero(buf, len1 + len2);
    free(buf);
    return rc;
}

int
zn_fwp_client_send(struct zn_fwp_client *c, const char *verb,
                   const char *arg, struct zn_err *err)
{
    return send_lines(c, verb, arg, NULL, NULL, err);
}

int
zn_fwp_client_send2(struct zn_fwp_client *c, const char *verb1,
                    const char *arg1, const char *verb2, const char *arg2,
                    struct zn_err *err)
{
    return send_lines(c, verb1, arg1, verb2, arg2, err);
}

bool
zn_fwp_client_buffered(const struct zn_fwp_client *c)
{
    return c && c->in_len > 0;
}

int
zn_fwp_client_recv(struct zn_fwp_client *c, char **reply, struct zn_err *err)
{
    struct zn_resp_reply r = {0};
    int rc;

    if (reply)
        *reply = NULL;
    rc = check_usable(c, err);
    if (rc == 0)
        rc = read_reply(c, &r, ZN_EIO, err);
    if (rc < 0)
        return rc;
    if (r.type == '-') {
        rc = zn_err_set(err, ZN_EPROTO, "%s", printable(r.data));
        free(r.data);
        return rc;
    }
    if (reply)
        *reply = r.data;
    else
        free(r.data);
    return 0;
}

int
zn_fwp_client_call(struct zn_fwp_client *c, const char *verb,
                   const char *arg, char **reply, struct zn_err *err)
{
    int rc;

    if (reply)
        *reply = NULL;
    rc = zn_fwp_client_send(c, verb, arg, err);
    if (rc < 0)
        return rc;
    return zn_fwp_client_recv(c, reply, err);
}

int
zn_fwp_client_send_raw(struct zn_fwp_client *c, const void *buf, size_t len,
                       struct zn_err *err)
{
    int rc = check_usable(c, err);

    if (rc < 0)
        return rc;
    return write_all(c, buf, len, err);
}

const char *
zn_fwp_client_salt(const struct zn_fwp_client *c)
{
    return c ? c->salt : NULL;
}

int
zn_fwp_client_fd(const struct zn_fwp_client *c)
{
    return c ? c->fd : -1;
}
