/*
 * harness.c - starting and stopping the real server for integration
 * tests. The server's stderr goes to a log file in its data directory;
 * readiness is its server.listening line, polled with a deadline.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "common/clock.h"
#include "queue/job.h"
#include "harness.h"
#include "support/files.h"

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

/* Applies "NAME=VALUE" / "NAME" changes to the environment (a child's). */
static void
apply_env(const char *const *env)
{
    for (size_t i = 0; env && env[i]; i++) {
        if (strchr(env[i], '='))
            putenv((char *)env[i]);
        else
            unsetenv(env[i]);
    }
}

void
zn_srv_init_dir(struct zn_srv *s)
{
    if (s->dir[0])
        return;
    snprintf(s->dir, sizeof(s->dir), "/tmp/zn-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    snprintf(s->sock, sizeof(s->sock), "%s/zenith.sock", s->dir);
}

void
zn_srv_start(struct zn_srv *s, const char *const *extra)
{
    const char *argv[64];
    int argc = 0, fd, port = 0;
    struct stat st;
    int64_t deadline;

    zn_srv_init_dir(s);
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
        /* A test that dies (a failed assertion) takes its server along. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(127);
        apply_env(s->env);
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

void
zn_srv_wait_exit(struct zn_srv *s, int64_t base_ms)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(base_ms);

    while (zn_srv_alive(s)) {
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(s);
            fail_msg("the server did not stop");
        }
        pause_ms(20);
    }
}

void
zn_srv_finish(struct zn_srv *s, struct zn_fwp_client *p)
{
    zn_fwp_client_free(p);
    if (s->pid > 0)
        assert_int_equal(zn_srv_stop(s), 0);
    zn_srv_cleanup(s);
}

void
zn_write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

void
zn_srv_start_config(struct zn_srv *s, const char *config, const char *text)
{
    const char *extra[] = {"--workers", "true", "--config", config, NULL};

    zn_write_file(config, text);
    zn_srv_start(s, extra);
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
    if (s->pid > 0)
        zn_srv_stop(s);
    if (s->dir[0] && strncmp(s->dir, "/tmp/zn-test-", 13) == 0)
        zn_test_rmdir(s->dir);
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

void
zn_srv_push(struct zn_fwp_client *c, const char *json)
{
    free(zn_srv_call(c, "PUSH", json));
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
    zn_test_db_path(s->dir, out, size);
}

/* One output stream of a child, read into a growing buffer. */
struct capture {
    int fd;      /* -1 once at EOF */
    char *buf;
    size_t len, cap;
};

static void
capture_read(struct capture *c)
{
    ssize_t n;

    if (c->len + 1 >= c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
    if (n > 0) {
        c->len += (size_t)n;
    } else if (n == 0 || errno != EINTR) {
        close(c->fd);
        c->fd = -1;
    }
}

/* The captured text (caller frees) into *out, or dropped when out is NULL. */
static void
capture_take(struct capture *c, char **out)
{
    if (!c->buf)
        c->buf = calloc(1, 1);
    assert_non_null(c->buf);
    c->buf[c->len] = '\0';
    if (out)
        *out = c->buf;
    else
        free(c->buf);
}

int
zn_run_cli_env(const char *const *env, const char *const *args, char **out,
               char **err)
{
    const char *argv[64];
    struct capture cap[2] = {{.fd = -1}, {.fd = -1}};
    int argc = 0, pipes[2][2], status;
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(10000);
    bool killed = false;
    pid_t pid;

    argv[argc++] = bin();
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    for (int k = 0; k < 2; k++)
        if (k == 0 || err)
            assert_int_equal(pipe(pipes[k]), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        apply_env(env);
        for (int k = 0; k < 2; k++) {
            if (k == 1 && !err)
                break;
            dup2(pipes[k][1], k + 1);
            close(pipes[k][0]);
            close(pipes[k][1]);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int k = 0; k < 2; k++) {
        if (k == 1 && !err)
            break;
        close(pipes[k][1]);
        cap[k].fd = pipes[k][0];
    }
    while (cap[0].fd >= 0 || cap[1].fd >= 0) {
        struct pollfd pfd[2] = {{.fd = cap[0].fd, .events = POLLIN},
                                {.fd = cap[1].fd, .events = POLLIN}};
        int64_t left = deadline - zn_clock_mono_ms();
        int n = poll(pfd, 2, killed ? -1 : (int)(left > 0 ? left : 0));

        if (n == 0 && !killed) {
            fprintf(stderr, "zenith %s: still running after the timeout: "
                    "killed\n", args[0] ? args[0] : "");
            kill(pid, SIGKILL);
            killed = true;
        }
        for (int k = 0; n > 0 && k < 2; k++)
            if (pfd[k].revents)
                capture_read(&cap[k]);
    }
    capture_take(&cap[0], out);
    if (err)
        capture_take(&cap[1], err);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
zn_run_cli(const char *const *args, char **out)
{
    return zn_run_cli_env(NULL, args, out, NULL);
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

void
zn_child_start(struct zn_child *c, const char *log, const char *const *args)
{
    const char *argv[64];
    int argc = 0, fd;

    snprintf(c->log, sizeof(c->log), "%s", log);
    argv[argc++] = bin();
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(127);
        fd = open("/dev/null", O_WRONLY);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
}

int
zn_child_wait(struct zn_child *c, int64_t timeout_ms)
{
    int64_t deadline = zn_clock_mono_ms() + timeout_ms;
    int status;

    if (c->pid <= 0)
        return -1;
    for (;;) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);

        if (r == c->pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (zn_clock_mono_ms() > deadline)
            return -1;
        pause_ms(5);
    }
    c->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
zn_child_stop(struct zn_child *c)
{
    int rc;

    if (c->pid <= 0)
        return -1;
    kill(c->pid, SIGTERM);
    rc = zn_child_wait(c, zn_test_ms(10000));
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    return rc;
}

bool
zn_child_log_wait(const struct zn_child *c, const char *text,
                  int64_t timeout_ms)
{
    int64_t deadline = zn_clock_mono_ms() + timeout_ms;
    char line[4096];

    for (;;) {
        FILE *fp = fopen(c->log, "r");
        bool found = false;

        while (fp && !found && fgets(line, sizeof(line), fp))
            found = strstr(line, text) != NULL;
        if (fp)
            fclose(fp);
        if (found)
            return true;
        if (zn_clock_mono_ms() > deadline)
            return false;
        pause_ms(5);
    }
}

void
zn_child_wait_log(const struct zn_child *c, const char *text,
                  int64_t base_ms)
{
    if (!zn_child_log_wait(c, text, zn_test_ms(base_ms))) {
        zn_child_dump_log(c);
        fail_msg("no line with '%s' in the child's log", text);
    }
}

void
zn_child_dump_log(const struct zn_child *c)
{
    FILE *fp = fopen(c->log, "r");
    char line[4096];

    fprintf(stderr, "---- log %s ----\n", c->log);
    while (fp && fgets(line, sizeof(line), fp))
        fputs(line, stderr);
    if (fp)
        fclose(fp);
    fprintf(stderr, "---- end of log ----\n");
}

/* ---- JSON replies (jansson) -------------------------------------------- */

json_t *
zn_srv_parse_take(char *reply)
{
    /* A nil reply (NULL) fails as text that is not JSON does. */
    json_t *j = json_loads(reply ? reply : "", 0, NULL);

    if (!j)
        fail_msg("not JSON: %s", reply ? reply : "(nil)");
    free(reply);
    return j;
}

const char *
zn_srv_fetch_jid(struct zn_fwp_client *c, const char *queues)
{
    static char jid[ZN_JID_MAX + 1];
    json_t *j = zn_srv_parse_take(zn_srv_call(c, "FETCH", queues));
    const char *s = json_string_value(json_object_get(j, "jid"));

    if (!s)
        fail_msg("FETCH %s: a job without a jid", queues);
    /* fail_msg does not return; -O3 does not know it. */
    snprintf(jid, sizeof(jid), "%s", s ? s : "");
    json_decref(j);
    return jid;
}

json_t *
zn_srv_job(struct zn_fwp_client *c, const char *jid)
{
    char arg[128];

    snprintf(arg, sizeof(arg), "{\"jid\":\"%s\"}", jid);
    return zn_srv_parse_take(zn_srv_call(c, "JOBS", arg));
}

json_t *
zn_srv_wait_state(const struct zn_srv *s, struct zn_fwp_client *c,
                  const char *jid, const char *state, int64_t base_ms)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(base_ms);

    for (;;) {
        json_t *info = zn_srv_job(c, jid);
        const char *got = json_string_value(json_object_get(
            json_object_get(info, "job"), "state"));

        if (got && strcmp(got, state) == 0)
            return info;
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(s);
            fail_msg("job %s is %s, want %s", jid, got ? got : "(none)",
                     state);
        }
        json_decref(info);
        pause_ms(20);
    }
}

int64_t
zn_srv_queue_count(const struct zn_srv *s, struct zn_fwp_client *c,
                   const char *queue, const char *state)
{
    char *text = NULL;
    json_t *info, *queues, *q;
    struct zn_err err;
    int64_t n = 0;
    size_t i;

    if (zn_fwp_client_call(c, "INFO", NULL, &text, &err) < 0) {
        zn_srv_dump_log(s);
        fail_msg("INFO: %s", err.msg);
    }
    info = zn_srv_parse_take(text);
    queues = json_object_get(json_object_get(info, "zenith"), "queues");
    if (!json_is_array(queues))
        fail_msg("INFO: no array zenith.queues");
    json_array_foreach(queues, i, q) {
        const char *name = json_string_value(json_object_get(q, "name"));
        json_t *count = json_object_get(q, state);

        if (!name)
            fail_msg("INFO: a queue without a name");
        if (strcmp(name, queue) != 0)
            continue;
        if (!json_is_integer(count))
            fail_msg("INFO: queue '%s' has no count '%s'", queue, state);
        n = json_integer_value(count);
    }
    json_decref(info);
    return n;
}

/* ---- the server's log -------------------------------------------------- */

size_t
zn_srv_log_count(const struct zn_srv *s, const char *a, const char *b)
{
    FILE *fp = fopen(s->log, "r");
    char line[4096];
    size_t n = 0;

    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        n += strstr(line, a) && (!b || strstr(line, b));
    fclose(fp);
    return n;
}

bool
zn_srv_log_has(const struct zn_srv *s, const char *a, const char *b)
{
    return zn_srv_log_count(s, a, b) > 0;
}

void
zn_srv_wait_log(const struct zn_srv *s, const char *a, const char *b,
                int64_t base_ms)
{
    int64_t deadline = zn_clock_mono_ms() + zn_test_ms(base_ms);

    while (!zn_srv_log_has(s, a, b)) {
        if (zn_clock_mono_ms() > deadline) {
            zn_srv_dump_log(s);
            fail_msg("no log line with '%s' and '%s'", a, b ? b : "");
        }
        pause_ms(20);
    }
}

/* ---- processes, from /proc --------------------------------------------- */

size_t
zn_test_children(pid_t pid, pid_t *out, size_t max, size_t *zombies)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    size_t n = 0;

    *zombies = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[300], buf[512], *close;
        FILE *fp;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        fp = fopen(path, "r");
        if (!fp)
            continue;
        close = fgets(buf, sizeof(buf), fp) ? strrchr(buf, ')') : NULL;
        fclose(fp);
        /* "pid (comm) S ppid ...": comm may hold spaces and parens. */
        if (!close || close[1] != ' ' || strtol(close + 4, NULL, 10) != pid)
            continue;
        *zombies += close[2] == 'Z';
        if (n < max && out)
            out[n] = (pid_t)strtol(e->d_name, NULL, 10);
        n++;
    }
    closedir(d);
    return n;
}

size_t
zn_test_fd_count(pid_t pid)
{
    char path[64];
    struct dirent *e;
    size_t n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (!d)
        return 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}
