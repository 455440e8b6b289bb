/*
 * test_fwp_client.c - the blocking FWP client against a small fake server run
 * in a thread of the test, on a loopback port chosen by the kernel or a Unix
 * socket in a fresh temporary directory. The fake speaks just enough FWP to
 * script replies: each command the client sends names the reply the fake
 * writes back (PING, BAD, NIL, BULK, BIG, INT, SILENT, DRIP, STALL, GARBAGE,
 * CLOSE). The thread only records what it saw; all assertions run in the
 * test's own thread, after joining it.
 */
#include "compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "fwp/client.h"
#include "fwp/proto.h"
#include "support/timeout.h"

#define BIG_LEN (300 * 1024)
#define DRIP_BYTES 250      /* DRIP: bytes sent, one every DRIP_EVERY_MS */
#define DRIP_EVERY_MS 40

struct fake {
    int lfd;
    pthread_t th;
    char addr[160];
    char dir[64];             /* temporary dir of a Unix socket, or "" */
    const char *hi;           /* greeting, NULL: say nothing */
    const char *password;     /* checked against HELLO's pwdhash */
    const char *salt;
    int iter;
    char hello[4096];         /* the HELLO line received */
    int commands;             /* lines after HELLO, END included */
    bool saw_end;
};

static void
send_str(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* One line without its CRLF into buf; false at EOF or error. */
static bool
read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    char c;

    for (;;) {
        ssize_t r = recv(fd, &c, 1, 0);

        if (r <= 0)
            return false;
        if (c == '\n')
            break;
        if (n + 1 < size)
            buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return true;
}

/* Replies as FWP would; HELLO checks the password hash when one is set. */
static bool
fake_reply(struct fake *f, int fd, const char *line)
{
    static char big[BIG_LEN];

    if (strncmp(line, "HELLO ", 6) == 0) {
        struct zn_fwp_hello h;
        char want[65];
        bool ok = zn_fwp_parse_hello(line + 6, strlen(line + 6), &h,
                                     NULL) == 0;

        snprintf(f->hello, sizeof(f->hello), "%s", line);
        if (ok && f->password) {
            zn_fwp_pwdhash(f->password, f->salt, f->iter, want);
            ok = zn_fwp_hash_equal(h.pwdhash, want);
        }
        zn_fwp_hello_release(&h);
        send_str(fd, ok ? "+OK\r\n" : "-ERR Invalid password\r\n",
                 ok ? 5 : 23);
        return true;
    }
    f->commands++;
    if (strcmp(line, "END") == 0) {
        f->saw_end = true;
        return false;
    }
    if (strcmp(line, "PING") == 0)
        send_str(fd, "+PONG\r\n", 7);
    else if (strcmp(line, "BAD") == 0)
        send_str(fd, "-ERR nope\r\n", 11);
    else if (strcmp(line, "NIL") == 0)
        send_str(fd, "$-1\r\n", 5);
    else if (strcmp(line, "INT") == 0)
        send_str(fd, ":7\r\n", 4);
    else if (strcmp(line, "GARBAGE") == 0)
        send_str(fd, "?what\r\n", 7);
    else if (strcmp(line, "CLOSE") == 0)
        return false;
    else if (strcmp(line, "BULK hello") == 0) {
        /* In pieces, so the client must put a reply together. */
        send_str(fd, "$5\r\nhe", 6);
        send_str(fd, "llo\r", 4);
        send_str(fd, "\n", 1);
    } else if (strcmp(line, "BIG") == 0) {
        char hdr[32];
        int n = snprintf(hdr, sizeof(hdr), "$%d\r\n", BIG_LEN);

        memset(big, 'b', sizeof(big));
        send_str(fd, hdr, (size_t)n);
        send_str(fd, big, sizeof(big));
        send_str(fd, "\r\n", 2);
    } else if (strcmp(line, "DRIP") == 0) {
        /*
         * A reply that never ends, a byte at a time, until the client
         * goes: each byte comes well within the client's timeout.
         */
        char hdr[16];
        int n = snprintf(hdr, sizeof(hdr), "$%d\r\n", DRIP_BYTES + 1);

        send_str(fd, hdr, (size_t)n);
        for (int i = 0; i < DRIP_BYTES; i++) {
            usleep(DRIP_EVERY_MS * 1000);
            if (send(fd, "d", 1, MSG_NOSIGNAL) != 1)
                break;
        }
    } else if (strncmp(line, "STALL ", 6) == 0) {
        /* The start of a reply after the given ms, then nothing. */
        poll(NULL, 0, (int)strtol(line + 6, NULL, 10));
        send_str(fd, "$100\r\nab", 8);
    } else if (strcmp(line, "SILENT") != 0)
        send_str(fd, "-ERR unknown command\r\n", 22);
    return true;
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    struct timeval tv = {.tv_sec = 10};
    char line[4096];
    int fd = accept(f->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    /* A test that fails half-way must not leave this thread hanging. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (f->hi)
        send_str(fd, f->hi, strlen(f->hi));
    while (read_line(fd, line, sizeof(line)) && fake_reply(f, fd, line))
        ;
    close(fd);
    return NULL;
}

static void
fake_listen_tcp(struct fake *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", ntohs(sin.sin_port));
}

static void
fake_listen_unix(struct fake *f)
{
    struct sockaddr_un su = {.sun_family = AF_UNIX};

    snprintf(f->dir, sizeof(f->dir), "/tmp/zn-fwp-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(su.sun_path, sizeof(su.sun_path), "%s/s.sock", f->dir);
    snprintf(f->addr, sizeof(f->addr), "unix:%s", su.sun_path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&su, sizeof(su)), 0);
}

static void
fake_start(struct fake *f, bool on_unix, const char *hi)
{
    f->hi = hi;
    if (on_unix)
        fake_listen_unix(f);
    else
        fake_listen_tcp(f);
    assert_int_equal(listen(f->lfd, 4), 0);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_join(struct fake *f)
{
    char path[128];

    assert_int_equal(pthread_join(f->th, NULL), 0);
    close(f->lfd);
    if (f->dir[0]) {
        snprintf(path, sizeof(path), "%s/s.sock", f->dir);
        unlink(path);
        rmdir(f->dir);
    }
}

static const char *const labels[] = {"reports", "eu"};

static void
test_fwp_client_hello_consumer(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_fwp_hello h;
    struct zn_err err = {0};
    char *reply;

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    o.wid = "worker-1";
    o.hostname = "test-host";
    o.labels = labels;
    o.nlabels = 2;
    if (zn_fwp_client_connect(&o, &c, &err) != 0)
        fail_msg("connect: %s", err.msg);
    assert_null(zn_fwp_client_salt(c));
    assert_true(zn_fwp_client_fd(c) >= 0);
    assert_int_equal(zn_fwp_client_call(c, "PING", NULL, &reply, &err), 0);
    assert_string_equal(reply, "PONG");
    free(reply);
    zn_fwp_client_free(c);
    zn_fwp_client_free(NULL);
    fake_join(&f);
    assert_true(f.saw_end);
    assert_int_equal(zn_fwp_parse_hello(f.hello + 6, strlen(f.hello + 6), &h,
                                        &err), 0);
    assert_string_equal(h.wid, "worker-1");
    assert_string_equal(h.hostname, "test-host");
    assert_int_equal(h.pid, getpid());
    assert_int_equal(h.nlabels, 2);
    assert_string_equal(h.labels[1], "eu");
    assert_string_equal(h.pwdhash, "");
    zn_fwp_hello_release(&h);
}

/* A producer over a Unix socket: no wid, no labels, our own hostname. */
static void
test_fwp_client_hello_producer_unix(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_fwp_hello h;
    struct zn_err err = {0};

    (void)state;
    fake_start(&f, true, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    o.labels = labels;
    o.nlabels = 2;
    if (zn_fwp_client_connect(&o, &c, &err) != 0)
        fail_msg("connect: %s", err.msg);
    assert_int_equal(zn_fwp_client_call(c, "PING", NULL, NULL, &err), 0);
    zn_fwp_client_free(c);
    fake_join(&f);
    assert_int_equal(zn_fwp_parse_hello(f.hello + 6, strlen(f.hello + 6), &h,
                                        &err), 0);
    assert_string_equal(h.wid, "");
    assert_int_equal(h.nlabels, 0);
    assert_non_null(h.hostname);
    assert_true(strlen(h.hostname) > 0);
    zn_fwp_hello_release(&h);
    assert_null(strstr(f.hello, "labels"));
}

static void
test_fwp_client_hello_password(void **state)
{
    struct fake f = {.password = "secret", .salt = "abc", .iter = 7};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_err err = {0};
    char want[65];

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2,\"i\":7,\"s\":\"abc\"}\r\n");
    o.addr = f.addr;
    o.password = "secret";
    if (zn_fwp_client_connect(&o, &c, &err) != 0)
        fail_msg("connect: %s", err.msg);
    assert_string_equal(zn_fwp_client_salt(c), "abc");
    zn_fwp_client_free(c);
    fake_join(&f);
    zn_fwp_pwdhash("secret", "abc", 7, want);
    assert_non_null(strstr(f.hello, want));
}

static void
test_fwp_client_wrong_password(void **state)
{
    struct fake f = {.password = "secret", .salt = "abc", .iter = 3};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c = (struct zn_fwp_client *)&f;
    struct zn_err err = {0};

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2,\"i\":3,\"s\":\"abc\"}\r\n");
    o.addr = f.addr;
    o.password = "guess";
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EAUTH);
    assert_null(c);
    assert_non_null(strstr(err.msg, "refused HELLO: ERR Invalid password"));
    fake_join(&f);
    assert_false(f.saw_end);
}

static void
test_fwp_client_password_required(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_err err = {0};

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2,\"i\":1,\"s\":\"x\"}\r\n");
    o.addr = f.addr;
    o.password = "";
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EAUTH);
    assert_string_equal(err.msg, "server requires a password");
    fake_join(&f);
    assert_string_equal(f.hello, "");
}

static void
test_fwp_client_bad_greeting(void **state)
{
    static const struct {
        const char *hi;
        const char *frag;
    } cases[] = {
        {"+HELLO\r\n", "expected HI from"},
        {"-ERR too many clients\r\n", "expected HI from '127.0.0.1:"},
        {"+HI {\"v\":3}\r\n", "does not speak protocol version 2"},
        {"+HI [2]\r\n", "not a JSON object"},
        {"+HI {\"v\":2,\"s\":\"x\",\"i\":0}\r\n", "i must be 1 to"},
        {"+HI {\"v\":2,\"s\":\"x\",\"i\":99999999}\r\n", "i must be 1 to"},
        {"+HI {\"v\":2,\"s\":5}\r\n", "s must be a string"},
        {"HI\r\n", "bad reply from"},
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        struct fake f = {0};
        struct zn_fwp_client_opts o = {.password = "pw"};
        struct zn_fwp_client *c;
        struct zn_err err = {0};
        int rc;

        fake_start(&f, false, cases[i].hi);
        o.addr = f.addr;
        rc = zn_fwp_client_connect(&o, &c, &err);
        fake_join(&f);
        if (rc != ZN_EPROTO || !strstr(err.msg, cases[i].frag))
            fail_msg("case %zu: rc %d, '%s' lacks '%s'", i, rc, err.msg,
                     cases[i].frag);
    }
}

static void
test_fwp_client_call_replies(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_err err = {0};
    char *reply = (char *)&f;

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), 0);
    /* -ERR is the server's answer, not a broken connection. */
    assert_int_equal(zn_fwp_client_call(c, "BAD", NULL, &reply, &err),
                     ZN_EPROTO);
    assert_null(reply);
    assert_string_equal(err.msg, "ERR nope");
    assert_int_equal(zn_fwp_client_call(c, "NIL", NULL, &reply, &err), 0);
    assert_null(reply);
    assert_int_equal(zn_fwp_client_call(c, "BULK", "hello", &reply, &err), 0);
    assert_string_equal(reply, "hello");
    free(reply);
    assert_int_equal(zn_fwp_client_call(c, "INT", NULL, &reply, &err), 0);
    assert_string_equal(reply, "7");
    free(reply);
    assert_int_equal(zn_fwp_client_call(c, "BIG", NULL, &reply, &err), 0);
    assert_int_equal(strlen(reply), BIG_LEN);
    free(reply);
    assert_int_equal(zn_fwp_client_call(c, "FOO", NULL, NULL, &err),
                     ZN_EPROTO);
    assert_int_equal(zn_fwp_client_call(c, "PING", NULL, &reply, &err), 0);
    assert_string_equal(reply, "PONG");
    free(reply);
    zn_fwp_client_free(c);
    fake_join(&f);
    assert_int_equal(f.commands, 8);
    assert_true(f.saw_end);
}

static void
test_fwp_client_pipelining_and_raw(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_err err = {0};
    char *reply;

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), 0);
    assert_int_equal(zn_fwp_client_send(c, "PING", NULL, &err), 0);
    assert_int_equal(zn_fwp_client_send(c, "INT", NULL, &err), 0);
    assert_int_equal(zn_fwp_client_send_raw(c, "PING\r\n", 6, &err), 0);
    assert_int_equal(zn_fwp_client_recv(c, &reply, &err), 0);
    assert_string_equal(reply, "PONG");
    free(reply);
    assert_int_equal(zn_fwp_client_recv(c, &reply, &err), 0);
    assert_string_equal(reply, "7");
    free(reply);
    assert_int_equal(zn_fwp_client_recv(c, NULL, &err), 0);
    /* Refused before anything is written: the stream stays in step. */
    assert_int_equal(zn_fwp_client_send(c, "PING X", NULL, &err), ZN_EINVAL);
    assert_int_equal(zn_fwp_client_send(c, "", NULL, &err), ZN_EINVAL);
    assert_int_equal(zn_fwp_client_send(c, "PUSH", "{}\r\nFLUSH", &err),
                     ZN_EINVAL);
    assert_non_null(strstr(err.msg, "line break"));
    assert_int_equal(zn_fwp_client_call(c, "PING", NULL, NULL, &err), 0);
    /* Two commands in one write; their replies in order. */
    assert_int_equal(zn_fwp_client_send2(c, "PING", NULL, "BAD X", NULL,
                                         &err), ZN_EINVAL);
    assert_int_equal(zn_fwp_client_send2(c, "BULK", "hello", "INT", NULL,
                                         &err), 0);
    assert_int_equal(zn_fwp_client_recv(c, &reply, &err), 0);
    assert_string_equal(reply, "hello");
    free(reply);
    assert_int_equal(zn_fwp_client_recv(c, &reply, &err), 0);
    assert_string_equal(reply, "7");
    free(reply);
    assert_false(zn_fwp_client_buffered(c));
    zn_fwp_client_free(c);
    fake_join(&f);
    assert_int_equal(f.commands, 7);
}

/* Timeouts and dropped connections leave the client broken for good. */
static void
test_fwp_client_timeout(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {.timeout_ms = 200};
    struct zn_fwp_client *c;
    struct zn_err err = {0};

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), 0);
    assert_int_equal(zn_fwp_client_call(c, "SILENT", NULL, NULL, &err),
                     ZN_EIO);
    assert_non_null(strstr(err.msg, "timed out after 200 ms"));
    assert_int_equal(zn_fwp_client_call(c, "PING", NULL, NULL, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "broken by an earlier error"));
    assert_int_equal(zn_fwp_client_send_raw(c, "x", 1, &err), ZN_EIO);
    zn_fwp_client_free(c);
    fake_join(&f);
    assert_false(f.saw_end);
}

/*
 * Calls verb (with arg, or none) on a fake with a client timeout of
 * timeout_ms, which must fail with a timeout; returns how long it took.
 */
static int64_t
call_timed_out(const char *verb, const char *arg, int timeout_ms)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {.timeout_ms = timeout_ms};
    struct zn_fwp_client *c;
    struct zn_err err = {0};
    char want[64];
    int64_t t0, took;

    fake_start(&f, false, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), 0);
    t0 = zn_clock_mono_ms();
    assert_int_equal(zn_fwp_client_call(c, verb, arg, NULL, &err), ZN_EIO);
    took = zn_clock_mono_ms() - t0;
    snprintf(want, sizeof(want), "timed out after %d ms", timeout_ms);
    if (!strstr(err.msg, want))
        fail_msg("%s: '%s', not '%s'", verb, err.msg, want);
    zn_fwp_client_free(c);
    fake_join(&f);
    return took;
}

/* The timeout bounds the whole reply, not each byte of it. */
static void
test_fwp_client_drip(void **state)
{
    int timeout = (int)zn_test_ms(200);
    int64_t took = call_timed_out("DRIP", NULL, timeout);

    (void)state;
    /* Per byte, it would have read the whole drip. */
    if (took > 2 * timeout || 2 * timeout > DRIP_BYTES * DRIP_EVERY_MS)
        fail_msg("took %lld ms: timeout %d ms, drip %d ms", (long long)took,
                 timeout, DRIP_BYTES * DRIP_EVERY_MS);
}

/*
 * A reply that stops half-way ends at the timeout: the read after its
 * start waits only for the time left.
 */
static void
test_fwp_client_stall(void **state)
{
    int timeout = (int)zn_test_ms(400);
    char after[16];
    int64_t took;

    (void)state;
    snprintf(after, sizeof(after), "%d", timeout * 3 / 4);
    took = call_timed_out("STALL", after, timeout);
    /* A fresh full timeout for that read would end at 1.75 times it. */
    if (took < timeout || took > timeout * 3 / 2)
        fail_msg("took %lld ms, timeout %d ms", (long long)took, timeout);
}

static void
test_fwp_client_silent_server(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {.timeout_ms = 150};
    struct zn_fwp_client *c;
    struct zn_err err = {0};

    (void)state;
    fake_start(&f, false, NULL);
    o.addr = f.addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, "timed out after 150 ms"));
    fake_join(&f);
}

static void
test_fwp_client_lost_connection(void **state)
{
    static const char *const verbs[] = {"GARBAGE", "CLOSE"};
    static const char *const frags[] = {
        "bad reply from", "connection closed by",
    };

    (void)state;
    for (size_t i = 0; i < ZN_ARRAY_LEN(verbs); i++) {
        struct fake f = {0};
        struct zn_fwp_client_opts o = {0};
        struct zn_fwp_client *c;
        struct zn_err err = {0};

        fake_start(&f, false, "+HI {\"v\":2}\r\n");
        o.addr = f.addr;
        assert_int_equal(zn_fwp_client_connect(&o, &c, &err), 0);
        assert_int_equal(zn_fwp_client_call(c, verbs[i], NULL, NULL, &err),
                         ZN_EIO);
        if (!strstr(err.msg, frags[i]))
            fail_msg("%s: '%s' lacks '%s'", verbs[i], err.msg, frags[i]);
        assert_int_equal(zn_fwp_client_call(c, "PING", NULL, NULL, &err),
                         ZN_EIO);
        zn_fwp_client_free(c);
        fake_join(&f);
    }
}

/* A port bound but not listening answers with a reset: always refused. */
static void
test_fwp_client_refused(void **state)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct zn_fwp_client_opts o = {0};
    struct zn_fwp_client *c;
    struct zn_err err = {0};
    socklen_t sl = sizeof(sin);
    char addr[64];
    int fd;

    (void)state;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    o.addr = addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EIO);
    assert_null(c);
    assert_non_null(strstr(err.msg, "cannot connect to '127.0.0.1:"));
    assert_non_null(strstr(err.msg, strerror(ECONNREFUSED)));
    close(fd);

    o.addr = "unix:/nonexistent-zenith-dir/s.sock";
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EIO);
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    o.addr = "host:99999";
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EINVAL);
    assert_int_equal(zn_fwp_client_connect(NULL, &c, &err), ZN_EINVAL);
}

static void
test_fwp_client_bad_options(void **state)
{
    struct fake f = {0};
    struct zn_fwp_client_opts o = {.wid = "has space"};
    struct zn_fwp_client *c;
    struct zn_err err = {0};

    (void)state;
    fake_start(&f, false, "+HI {\"v\":2}\r\n");
    o.addr = f.addr;
    assert_int_equal(zn_fwp_client_connect(&o, &c, &err), ZN_EINVAL);
    assert_non_null(strstr(err.msg, "wid: must be 1 to 64"));
    fake_join(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fwp_client_hello_consumer),
        cmocka_unit_test(test_fwp_client_hello_producer_unix),
        cmocka_unit_test(test_fwp_client_hello_password),
        cmocka_unit_test(test_fwp_client_wrong_password),
        cmocka_unit_test(test_fwp_client_password_required),
        cmocka_unit_test(test_fwp_client_bad_greeting),
        cmocka_unit_test(test_fwp_client_call_replies),
        cmocka_unit_test(test_fwp_client_pipelining_and_raw),
        cmocka_unit_test(test_fwp_client_timeout),
        cmocka_unit_test(test_fwp_client_drip),
        cmocka_unit_test(test_fwp_client_stall),
        cmocka_unit_test(test_fwp_client_silent_server),
        cmocka_unit_test(test_fwp_client_lost_connection),
        cmocka_unit_test(test_fwp_client_refused),
        cmocka_unit_test(test_fwp_client_bad_options),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
