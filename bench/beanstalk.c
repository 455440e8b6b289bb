/*
 * beanstalk.c - the benchmark's beanstalkd client (see beanstalk.h).
 *
 * The socket stays blocking with SO_RCVTIMEO/SO_SNDTIMEO as the bound on
 * each read and write: a benchmark client has one thing to do at a time,
 * so poll() would buy nothing. Replies are read from one input buffer
 * (in[in_off..in_len) is unread); requests gather in an output buffer
 * until a flush, so a batch of puts leaves in one write.
 *
 * Invariant: after an I/O error or a malformed reply the connection is
 * out of step, so the caller must drop it; the benchmark treats every
 * error as fatal, except the shutdown() that ends a drain.
 */
#include "compat.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "beanstalk.h"

#define DEFAULT_TIMEOUT_MS 30000
#define IN_INITIAL 4096
#define OUT_INITIAL 4096
#define LINE_MAX_BYTES 256      /* the longest reply line we expect */
#define BODY_MAX ((size_t)1 << 20)

struct zn_beanstalk {
    int fd;
    char addr[128];
    char *in;        /* in[in_off..in_len) not yet parsed */
    size_t in_off, in_len, in_cap;
    char *out;       /* queued requests */
    size_t out_len, out_cap;
};

/* Splits "host:port"; the host may be a name or a numeric address. */
static int
split_addr(const char *addr, char *host, size_t hsize, char *port,
           size_t psize, struct zn_err *err)
{
    const char *colon = strrchr(addr, ':');
    size_t hlen;
    char *end;
    long p;

    if (!colon)
        return zn_err_set(err, ZN_EINVAL, "bad address '%s': want "
                          "host:port", addr);
    hlen = (size_t)(colon - addr);
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (hlen == 0 || hlen >= hsize || errno || *end || p < 1 || p > 65535)
        return zn_err_set(err, ZN_EINVAL, "bad address '%s': want "
                          "host:port", addr);
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    snprintf(port, psize, "%ld", p);
    return 0;
}

static int
open_socket(const char *host, const char *port, int *out)
{
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, saved = ECONNREFUSED;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return EHOSTUNREACH;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    *out = fd;
    return fd < 0 ? saved : 0;
}

int
zn_beanstalk_connect(const char *addr, int timeout_ms,
                     struct zn_beanstalk **out, struct zn_err *err)
{
    struct zn_beanstalk *c;
    struct timeval tv;
    char host[256], port[8];
    int one = 1, rc;

    *out = NULL;
    rc = split_addr(addr, host, sizeof(host), port, sizeof(port), err);
    if (rc < 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->in = malloc(IN_INITIAL);
    if (!c->in) {
        free(c);
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    }
    c->in_cap = IN_INITIAL;
    rc = open_socket(host, port, &c->fd);
    if (rc != 0) {
        free(c->in);
        free(c);
        return zn_err_set(err, ZN_EIO, "cannot connect to '%s': %s", addr,
                          strerror(rc));
    }
    if (timeout_ms <= 0)
        timeout_ms = DEFAULT_TIMEOUT_MS;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    /* Each request waits for its reply: no Nagle delay. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    *out = c;
    return 0;
}

void
zn_beanstalk_free(struct zn_beanstalk *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

int
zn_beanstalk_fd(const struct zn_beanstalk *c)
{
    return c->fd;
}

/* ---- output ------------------------------------------------------------ */

static int
out_reserve(struct zn_beanstalk *c, size_t more, struct zn_err *err)
{
    size_t cap = c->out_cap ? c->out_cap : OUT_INITIAL;
    char *p;

    while (cap - c->out_len < more)
        cap *= 2;
    if (cap == c->out_cap)
        return 0;
    p = realloc(c->out, cap);
    if (!p)
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int
out_add(struct zn_beanstalk *c, const char *s, size_t len,
        struct zn_err *err)
{
    int rc = out_reserve(c, len, err);

    if (rc < 0)
        return rc;
    memcpy(c->out + c->out_len, s, len);
    c->out_len += len;
    return 0;
}

int
zn_beanstalk_flush(struct zn_beanstalk *c, struct zn_err *err)
{
    size_t done = 0;
    ssize_t n;

    while (done < c->out_len) {
        n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        c->out_len = 0;
        return zn_err_set(err, ZN_EIO, "cannot write to '%s': %s", c->addr,
                          n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
                              ? "timed out" : strerror(errno));
    }
    c->out_len = 0;
    return 0;
}

/* ---- input ------------------------------------------------------------- */

/* Receives at least one more byte. */
static int
fill(struct zn_beanstalk *c, struct zn_err *err)
{
    ssize_t n;
    char *p;

    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap * 2 : IN_INITIAL;

        if (cap > BODY_MAX + LINE_MAX_BYTES)
            return zn_err_set(err, ZN_EIO, "reply from '%s' is too large",
                              c->addr);
        p = realloc(c->in, cap);
        if (!p)
            return zn_err_set(err, ZN_ENOMEM, "out of memory");
        c->in = p;
        c->in_cap = cap;
    }
    for (;;) {
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return zn_err_set(err, ZN_EIO, "connection closed by '%s'",
                              c->addr);
        if (errno != EINTR)
            break;
    }
    return zn_err_set(err, ZN_EIO, "cannot read from '%s': %s", c->addr,
                      errno == EAGAIN || errno == EWOULDBLOCK
                          ? "timed out" : strerror(errno));
}

/*
 * Reads one line into line (NUL-terminated, without CRLF). The reply
 * lines of the commands we send are short; a longer one is malformed.
 */
static int
read_line(struct zn_beanstalk *c, char *line, size_t size, struct zn_err *err)
{
    size_t scanned = 0;
    int rc;

    for (;;) {
        char *start = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        char *lf = avail > scanned ? memchr(start + scanned, '\n',
                                            avail - scanned)
                                   : NULL;

        if (lf) {
            size_t len = (size_t)(lf - start);

            if (len > 0 && start[len - 1] == '\r')
                len--;
            if (len >= size)
                return zn_err_set(err, ZN_EIO, "reply line from '%s' is "
                                  "too long", c->addr);
            memcpy(line, start, len);
            line[len] = '\0';
            c->in_off += (size_t)(lf - start) + 1;
            return 0;
        }
        scanned = avail;
        if (scanned >= size)
            return zn_err_set(err, ZN_EIO, "reply line from '%s' is too "
                              "long", c->addr);
        rc = fill(c, err);
        if (rc < 0)
            return rc;
    }
}

/* Parses a decimal field of a reply line; advances *p past it. */
static int
parse_u64(const char **p, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (**p < '0' || **p > '9')
        return -1;
    errno = 0;
    v = strtoull(*p, &end, 10);
    if (errno)
        return -1;
    *p = end;
    *out = v;
    return 0;
}

/* Sends req and reads the reply's first line into line. */
static int
request(struct zn_beanstalk *c, const char *req, char *line, size_t size,
        struct zn_err *err)
{
    int rc = out_add(c, req, strlen(req), err);

    if (rc == 0)
        rc = zn_beanstalk_flush(c, err);
    return rc < 0 ? rc : read_line(c, line, size, err);
}

/* The reply line to req must be want (plus a field). */
static int
expect(struct zn_beanstalk *c, const char *req, const char *line,
       const char *want, struct zn_err *err)
{
    size_t wl = strlen(want);

    if (strncmp(line, want, wl) != 0 || (line[wl] && line[wl] != ' '))
        return zn_err_set(err, ZN_EPROTO, "'%s' from '%s': want %s, got "
                          "'%s'", req, c->addr, want, line);
    return 0;
}

/* One request whose only good reply is the line want (plus a field). */
static int
simple(struct zn_beanstalk *c, const char *req, const char *want,
       struct zn_err *err)
{
    char line[LINE_MAX_BYTES];
    int rc = request(c, req, line, sizeof(line), err);

    return rc < 0 ? rc : expect(c, req, line, want, err);
}

static int
tube_cmd(struct zn_beanstalk *c, const char *verb, const char *tube,
         const char *want, struct zn_err *err)
{
    char req[256];

    if (!*tube || strlen(tube) > 200 || strpbrk(tube, " \r\n"))
        return zn_err_set(err, ZN_EINVAL, "bad tube name '%.200s'", tube);
    snprintf(req, sizeof(req), "%s %s\r\n", verb, tube);
    return simple(c, req, want, err);
}

int
zn_beanstalk_use(struct zn_beanstalk *c, const char *tube, struct zn_err *err)
{
    return tube_cmd(c, "use", tube, "USING", err);
}

int
zn_beanstalk_watch(struct zn_beanstalk *c, const char *tube,
                   struct zn_err *err)
{
    int rc = tube_cmd(c, "watch", tube, "WATCHING", err);

    /* Watching only "default" too would mix in other scenarios' jobs. */
    if (rc == 0 && strcmp(tube, "default") != 0)
        rc = simple(c, "ignore default\r\n", "WATCHING", err);
    return rc;
}

int
zn_beanstalk_put_send(struct zn_beanstalk *c, uint32_t pri, uint32_t delay,
                      uint32_t ttr, const char *body, size_t len,
                      struct zn_err *err)
{
    char head[96];
    int n, rc;

    n = snprintf(head, sizeof(head), "put %lu %lu %lu %zu\r\n",
                 (unsigned long)pri, (unsigned long)delay,
                 (unsigned long)ttr, len);
    rc = out_reserve(c, (size_t)n + len + 2, err);
    if (rc < 0)
        return rc;
    memcpy(c->out + c->out_len, head, (size_t)n);
    memcpy(c->out + c->out_len + n, body, len);
    memcpy(c->out + c->out_len + n + len, "\r\n", 2);
    c->out_len += (size_t)n + len + 2;
    return 0;
}

int
zn_beanstalk_put_recv(struct zn_beanstalk *c, uint64_t *id,
                      struct zn_err *err)
{
    char line[LINE_MAX_BYTES];
    const char *p = line + 9;
    int rc = read_line(c, line, sizeof(line), err);

    if (rc < 0)
        return rc;
    if (strncmp(line, "INSERTED ", 9) != 0 || parse_u64(&p, id) < 0 || *p)
        return zn_err_set(err, ZN_EPROTO, "put to '%s': got '%s'", c->addr,
                          line);
    return 0;
}

int
zn_beanstalk_put(struct zn_beanstalk *c, uint32_t pri, uint32_t delay,
                 uint32_t ttr, const char *body, size_t len, uint64_t *id,
                 struct zn_err *err)
{
    int rc = zn_beanstalk_put_send(c, pri, delay, ttr, body, len, err);

    if (rc == 0)
        rc = zn_beanstalk_flush(c, err);
    if (rc == 0)
        rc = zn_beanstalk_put_recv(c, id, err);
    return rc;
}

int
zn_beanstalk_reserve_send(struct zn_beanstalk *c, struct zn_err *err)
{
    int rc = out_add(c, "reserve\r\n", 9, err);

    return rc < 0 ? rc : zn_beanstalk_flush(c, err);
}

/* Takes len bytes of data and their CRLF from the input. */
static int
read_body(struct zn_beanstalk *c, size_t len, char **body, struct zn_err *err)
{
    int rc;

    while (c->in_len - c->in_off < len + 2) {
        rc = fill(c, err);
        if (rc < 0)
            return rc;
    }
    if (memcmp(c->in + c->in_off + len, "\r\n", 2) != 0)
        return zn_err_set(err, ZN_EIO, "reserve from '%s': job data does "
                          "not end with CRLF", c->addr);
    if (body) {
        *body = malloc(len + 1);
        if (!*body)
            return zn_err_set(err, ZN_ENOMEM, "out of memory");
        memcpy(*body, c->in + c->in_off, len);
        (*body)[len] = '\0';
    }
    c->in_off += len + 2;
    return 0;
}

int
zn_beanstalk_reserve_recv(struct zn_beanstalk *c, uint64_t *id, char **body,
                          size_t *len, struct zn_err *err)
{
    char line[LINE_MAX_BYTES];
    const char *p = line + 9;
    uint64_t bytes;
    int rc;

    if (body)
        *body = NULL;
    rc = read_line(c, line, sizeof(line), err);
    if (rc < 0)
        return rc;
    if (strncmp(line, "RESERVED ", 9) != 0 || parse_u64(&p, id) < 0 ||
        *p++ != ' ' || parse_u64(&p, &bytes) < 0 || *p || bytes > BODY_MAX)
        return zn_err_set(err, ZN_EPROTO, "reserve from '%s': got '%s'",
                          c->addr, line);
    if (len)
        *len = (size_t)bytes;
    return read_body(c, (size_t)bytes, body, err);
}

int
zn_beanstalk_reserve(struct zn_beanstalk *c, uint64_t *id, char **body,
                     size_t *len, struct zn_err *err)
{
    int rc = zn_beanstalk_reserve_send(c, err);

    return rc < 0 ? rc : zn_beanstalk_reserve_recv(c, id, body, len, err);
}

int
zn_beanstalk_delete(struct zn_beanstalk *c, uint64_t id, struct zn_err *err)
{
    char req[48];

    snprintf(req, sizeof(req), "delete %llu\r\n", (unsigned long long)id);
    return simple(c, req, "DELETED", err);
}

int
zn_beanstalk_delete_reserve(struct zn_beanstalk *c, uint64_t id,
                            uint64_t *next, char **body, size_t *len,
                            struct zn_err *err)
{
    char req[64], line[LINE_MAX_BYTES];
    int rc;

    snprintf(req, sizeof(req), "delete %llu\r\nreserve\r\n",
             (unsigned long long)id);
    rc = out_add(c, req, strlen(req), err);
    if (rc == 0)
        rc = zn_beanstalk_flush(c, err);
    if (rc == 0)
        rc = read_line(c, line, sizeof(line), err);
    if (rc == 0)
        rc = expect(c, "delete", line, "DELETED", err);
    return rc < 0 ? rc : zn_beanstalk_reserve_recv(c, next, body, len, err);
}

int
zn_beanstalk_stats_tube(struct zn_beanstalk *c, const char *tube,
                        char **yaml, struct zn_err *err)
{
    char req[256], line[LINE_MAX_BYTES];
    const char *p = line + 3;
    uint64_t bytes;
    int rc;

    *yaml = NULL;
    if (!*tube || strlen(tube) > 200 || strpbrk(tube, " \r\n"))
        return zn_err_set(err, ZN_EINVAL, "bad tube name '%.200s'", tube);
    snprintf(req, sizeof(req), "stats-tube %s\r\n", tube);
    rc = request(c, req, line, sizeof(line), err);
    if (rc < 0)
        return rc;
    if (strncmp(line, "OK ", 3) != 0 || parse_u64(&p, &bytes) < 0 || *p ||
        bytes > BODY_MAX)
        return zn_err_set(err, ZN_EPROTO, "'stats-tube %s' from '%s': got "
                          "'%s'", tube, c->addr, line);
    return read_body(c, (size_t)bytes, yaml, err);
}
