/*
 * harness.c - starting and stopping the real server for integration
 * tests. The server's stderr goes to a log file in its data directory;
 * readiness is its server.listening line, polled with a deadline.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "harness.h"

int64_t
zn_test_ms(int64_t base_ms)
{
    const char *m = getenv("ZN_TEST_TIMEOUT_MULT");
    long mult = m ? strtol(m, NULL, 10) : 1;

    return base_ms * (mult > 0 ? mult : 1);
}

static const char *
bin(void)
{
    const char *b = getenv("ZN_BIN");

    return b && *b ? b : "build/zenith";
}

static void
pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Reads the log from s->log_seen; returns the port once listening, else 0. */
static int
find_listening(struct zn_srv *s)
{
    FILE *fp = fopen(s->log, "r");
    char line[4096];
    int port = 0;

    if (!fp)
        return 0;
    fseeko(fp, s->log_seen, SEEK_SET);
    while (!port && fgets(line, sizeof(line), fp)) {
        const char *p;

        if (!strstr(line, "\"event\":\"server.listening\""))
            continue;
        p = strstr(line, "\"port\":");
        port = p ? (int)strtol(p + 7, NULL, 10) : 0;
        if (!port)
            port = -1; /* listening without TCP */
    }
    fclose(fp);
    return port;
}

void
zn_srv_start(struct zn_srv *s, const char *const *extra)
{
    const char *argv[64];
    int argc = 0, fd, port = 0;
    struct stat st;
    int64_t deadline;

    if (!s->dir[0]) {
        snprintf(s->dir, sizeof(s->dir), "/tmp/zn-test-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
        snprintf(s->sock, sizeof(s->sock), "%s/zenith.sock", s->dir);
    }
    s->log_seen = stat(s->log, &st) == 0 ? st.st_size : 0;
    argv[argc++] = bin();
    argv[argc++] = "serve";
    argv[argc++] = "--data";
    argv[argc++] = s->dir;
    argv[argc++] = "--fwp";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--http";
    argv[argc++] = "";
    argv[argc++] = "--no-workers";
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    while (!(port = find_listening(s))) {
        if (!zn_srv_alive(s) || zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(s);
            fail_msg("server did not start (see its log above)");
        }
        pause_ms(5);
    }
    s->port = port > 0 ? port : 0;
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
}

bool
zn_srv_alive(struct zn_srv *s)
{
    int status;

    if (s->pid <= 0)
        return false;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
        s->pid = 0;
        return false;
    }
    return true;
}

int
zn_srv_stop(struct zn_srv *s)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    int status = 0;

    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (zn_clock_mono_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            s->pid = 0;
            return -1;
        }
        pause_ms(5);
    }
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void
zn_srv_kill9(struct zn_srv *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void
zn_srv_cleanup(struct zn_srv *s)
{
    char cmd[300];

    if (s->pid > 0)
        zn_srv_stop(s);
    if (s->dir[0] && strncmp(s->dir, "/tmp/zn-test-", 13) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", s->dir);
    }
    memset(s, 0, sizeof(*s));
}

void
zn_srv_dump_log(const struct zn_srv *s)
{
    FILE *fp = fopen(s->log, "r");
    char line[4096];

    fprintf(stderr, "---- server log %s ----\n", s->log);
    while (fp && fgets(line, sizeof(line), fp))
        fputs(line, stderr);
    if (fp)
        fclose(fp);
    fprintf(stderr, "---- end of server log ----\n");
}

struct zn_fwp_client *
zn_srv_connect(const struct zn_srv *s, const char *wid, const char *password)
{
    struct zn_fwp_client_opts o = {.addr = s->addr, .wid = wid,
                                   .password = password,
                                   .timeout_ms = (int)zn_test_ms(10000)};
    struct zn_fwp_client *c = NULL;
    struct zn_err err;

    if (zn_fwp_client_connect(&o, &c, &err) < 0)
        fail_msg("cannot connect to %s: %s", s->addr, err.msg);
    return c;
}

char *
zn_srv_call(struct zn_fwp_client *c, const char *verb, const char *arg)
{
    struct zn_err err;
    char *reply = NULL;

    if (zn_fwp_client_call(c, verb, arg, &reply, &err) < 0)
        fail_msg("%s %s: %s", verb, arg ? arg : "", err.msg);
    return reply;
}

const char *
zn_srv_call_err(struct zn_fwp_client *c, const char *verb, const char *arg)
{
    static struct zn_err err;
    char *reply = NULL;
    int rc = zn_fwp_client_call(c, verb, arg, &reply, &err);

    if (rc != ZN_EPROTO)
        fail_msg("%s %.200s: expected an -ERR reply, got rc %d reply '%s'",
                 verb, arg ? arg : "", rc, reply ? reply : "(nil)");
    free(reply);
    return err.msg;
}

void
zn_srv_db_path(const struct zn_srv *s, char *out, size_t size)
{
    snprintf(out, size, "%s/zenith.db", s->dir);
}

int
zn_run_cli(const char *const *args, char **out)
{
    const char *argv[64];
    int argc = 0, pipefd[2], status;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    pid_t pid;
    ssize_t n;

    argv[argc++] = bin();
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(pipefd[0]);
    buf[len] = '\0';
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
zn_test_connect_raw(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}
