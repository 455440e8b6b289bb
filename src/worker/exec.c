/*
 * exec.c - the `exec` handler (see exec.h for the contract).
 *
 * One child at a time, watched by a poll loop in the caller's thread:
 * it feeds the job's JSON to the child's stdin, keeps the tail of its
 * stderr in a ring buffer, and notices the deadline and the cancel fd.
 * The loop learns that the command exited with waitid(WNOWAIT), which
 * leaves the child a zombie: while it is one, its pid (the group id)
 * cannot be reused, so killing the rest of the group cannot hit a
 * stranger. Only then is it reaped (wait4, which also gives its rusage).
 *
 * There is no SIGCHLD handler (the worker is threaded and a handler is
 * process-wide): the loop polls a pidfd of the command, readable the
 * moment it exits, with the pipes. Where pidfd_open is missing (Linux
 * before 5.3) it polls the pipes for at most a backoff that starts at
 * 1 ms, doubles to 100 ms and restarts on pipe activity.
 *
 * The command starts with posix_spawn: glibc's child shares the worker's
 * memory until its execve (CLONE_VFORK), so a start costs no copy of the
 * worker's page tables, and an execve failure is its return value. The
 * child's process group, signal mask and default handlers are set by the
 * spawn's attributes, its stdin, stdout and stderr by its file actions;
 * every other descriptor of ours is close-on-exec.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_CHILD_SUBREAPER
#include <sys/prctl.h>
#endif
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/signame.h"
#include "common/clock.h"
#include "worker/exec.h"

#define BACKOFF_MAX_MS 100
#define REAP_WAIT_MS 2000

extern char **environ;

enum outcome { RAN, TIMED_OUT, CANCELLED };

struct child {
    pid_t pid;
    int in_fd;                   /* our end of its stdin, -1 once closed */
    int err_fd;                  /* our end of its stderr */
    int exec_errno;              /* it could not be executed: pid is -1 */
    const char *in;
    size_t in_len, in_off;
    char ring[ZN_EXEC_STDERR_KEEP];
    uint64_t err_total;          /* stderr bytes seen; ring holds the last */
    enum outcome outcome;
    int status;
    bool lost;                   /* reaped by someone else: status unknown */
    struct rusage ru;
};

/* ---- argv ------------------------------------------------------------- */

void
zn_exec_argv_free(char **argv)
{
    if (!argv)
        return;
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
    free(argv);
}

/* Copies one word starting at *pp into word; 0 or -1 (open quote). */
static int
next_word(const char **pp, char *word, size_t *len)
{
    const char *p = *pp;
    int quoted = 0;

    *len = 0;
    while (*p && (quoted || (*p != ' ' && *p != '\t'))) {
        if (*p == '"') {
            quoted = !quoted;
            p++;
            continue;
        }
        if (quoted && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
            p++;
        word[(*len)++] = *p++;
    }
    *pp = p;
    return quoted ? -1 : 0;
}

int
zn_exec_split(const char *cmd, char ***out, struct zn_err *err)
{
    size_t cmdlen = strlen(cmd), n = 0, len;
    char **argv = NULL, *word = NULL;
    const char *p = cmd;
    int rc = 0;

    *out = NULL;
    if (cmdlen > ZN_EXEC_COMMAND_MAX)
        return zn_err_set(err, ZN_ETOOBIG, "command is longer than %d bytes",
                          ZN_EXEC_COMMAND_MAX);
    argv = calloc(ZN_EXEC_ARGS_MAX + 1, sizeof(*argv));
    word = malloc(cmdlen + 1);
    if (!argv || !word) {
        rc = zn_err_set(err, ZN_ENOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n == ZN_EXEC_ARGS_MAX) {
            rc = zn_err_set(err, ZN_ETOOBIG, "command has more than %d "
                            "words", ZN_EXEC_ARGS_MAX);
            goto done;
        }
        if (next_word(&p, word, &len) < 0) {
            rc = zn_err_set(err, ZN_EINVAL, "command has an unterminated "
                            "double quote");
            goto done;
        }
        argv[n] = strndup(word, len);
        if (!argv[n++]) {
            rc = zn_err_set(err, ZN_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (n == 0)
        rc = zn_err_set(err, ZN_EINVAL, "command is empty");
done:
    free(word);
    if (rc < 0)
        zn_exec_argv_free(argv);
    else
        *out = argv;
    return rc;
}

/* ---- environment ------------------------------------------------------- */

static bool
replaced_var(const char *entry)
{
    static const char *const ours[] = {"ZENITH_JID=", "ZENITH_ATTEMPT=",
                                       "ZENITH_QUEUE="};

    for (size_t i = 0; i < ZN_ARRAY_LEN(ours); i++)
        if (strncmp(entry, ours[i], strlen(ours[i])) == 0)
            return true;
    return false;
}

/* "NAME=value", malloc'd. */
static char *
env_var(const char *name, const char *value)
{
    size_t size = strlen(name) + strlen(value) + 2;
    char *s = malloc(size);

    if (s)
        snprintf(s, size, "%s=%s", name, value);
    return s;
}

/*
 * The inherited environment plus the job's three variables. The array
 * borrows the inherited strings; its last three entries before NULL are
 * malloc'd (free with free_env).
 */
static char **
build_env(const struct zn_handler_job *job)
{
    size_t n = 0, k = 0;
    char attempt[16];
    char **env;

    while (environ && environ[n])
        n++;
    env = calloc(n + 4, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!replaced_var(environ[i]))
            env[k++] = environ[i];
    snprintf(attempt, sizeof(attempt), "%d", job->attempt);
    env[k] = env_var("ZENITH_JID", job->jid);
    env[k + 1] = env_var("ZENITH_ATTEMPT", attempt);
    env[k + 2] = env_var("ZENITH_QUEUE", job->queue);
    if (!env[k] || !env[k + 1] || !env[k + 2]) {
        for (size_t i = k; i < k + 3; i++)
            free(env[i]);
        free(env);
        return NULL;
    }
    return env;
}

static void
free_env(char **env)
{
    size_t n = 0;

    if (!env)
        return;
    while (env[n])
        n++;
    for (size_t i = n >= 3 ? n - 3 : 0; i < n; i++)
        free(env[i]);
    free(env);
}

/* ---- starting the child ------------------------------------------------ */

/* Close-on-exec, and above 2 so the child's dup2 calls cannot collide. */
static int
high_fd(int fd)
{
    int moved;

    if (fd < 0)
        return -1;
    if (fd > 2)
        return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

static int
make_pipe(int fds[2])
{
    if (pipe(fds) < 0)
        return -1;
    fds[0] = high_fd(fds[0]);
    fds[1] = high_fd(fds[1]);
    return fds[0] < 0 || fds[1] < 0 ? -1 : 0;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int
set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* What the command starts with: its own group, no signal of ours. */
static int
spawn_attr(posix_spawnattr_t *at)
{
    static const int dfl[] = {SIGTERM, SIGINT, SIGTSTP, SIGPIPE};
    sigset_t none, defaults;
    int rc = posix_spawnattr_init(at);

    if (rc != 0)
        return rc;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (size_t i = 0; i < ZN_ARRAY_LEN(dfl); i++)
        sigaddset(&defaults, dfl[i]);
    /*
     * The worker handles, blocks or ignores signals the command must not
     * inherit: their defaults, and an empty mask.
     */
    rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP |
                                          POSIX_SPAWN_SETSIGMASK |
                                          POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(at, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(at, &defaults);
    if (rc != 0)
        posix_spawnattr_destroy(at);
    return rc;
}

/* Its stdin, stdout and stderr. */
static int
spawn_files(posix_spawn_file_actions_t *fa, int in, int out, int err)
{
    int rc = posix_spawn_file_actions_init(fa);

    if (rc != 0)
        return rc;
    rc = posix_spawn_file_actions_adddup2(fa, in, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(fa, out, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(fa, err, 2);
    if (rc != 0)
        posix_spawn_file_actions_destroy(fa);
    return rc;
}

/* posix_spawn with the attributes and files above: 0 or an error number. */
static int
start(pid_t *pid, char *const *argv, char *const *envp, int in, int out,
      int err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = spawn_attr(&at);

    if (rc != 0)
        return rc;
    rc = spawn_files(&fa, in, out, err);
    if (rc == 0) {
        rc = posix_spawn(pid, argv[0], &fa, &at, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
    }
    posix_spawnattr_destroy(&at);
    return rc;
}

/*
 * errno of an execve that the command's file caused (the job's fault).
 * posix_spawn reports a failure of its own setup (spawn_attr's process
 * group and signals) the same way; none is expected, and one with these
 * codes would fail the job as "exit 127", not the worker.
 */
static bool
exec_fault(int e)
{
    switch (e) {
    case E2BIG: case EACCES: case EINVAL: case EISDIR: case ELIBBAD:
    case ELOOP: case ENAMETOOLONG: case ENOENT: case ENOEXEC: case ENOTDIR:
    case EPERM: case ETXTBSY:
        return true;
    default:
        return false;
    }
}

/*
 * Starts the command, or sets exec_errno when its file cannot be executed
 * (the job fails with it). A failure of ours (no pipe, no process, no
 * memory) is an error.
 */
static int
spawn(struct child *c, char *const *argv, char *const *envp,
      struct zn_err *err)
{
    int in[2] = {-1, -1}, er[2] = {-1, -1}, devnull = -1, rc;
    const char *step = "create a pipe";

    if (make_pipe(in) < 0 || make_pipe(er) < 0)
        goto fail;
    step = "open /dev/null";
    devnull = high_fd(open("/dev/null", O_WRONLY));
    if (devnull < 0)
        goto fail;
    step = "start a process";
    rc = start(&c->pid, argv, envp, in[0], devnull, er[1]);
    if (rc != 0 && !exec_fault(rc)) {
        errno = rc;
        goto fail;
    }
    if (rc != 0) {
        c->pid = -1;
        c->exec_errno = rc;
    }
    close_fd(&in[0]);
    close_fd(&er[1]);
    close_fd(&devnull);
    c->in_fd = in[1];
    c->err_fd = er[0];
    set_nonblock(c->in_fd);
    set_nonblock(c->err_fd);
    return 0;
fail:
    rc = errno;
    c->pid = -1;
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&er[i]);
    }
    close_fd(&devnull);
    return zn_err_set(err, ZN_EIO, "cannot %s for '%s': %s", step, argv[0],
                      strerror(rc));
}

/* ---- watching it ------------------------------------------------------- */

static void
keep_stderr(struct child *c, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        c->ring[(c->err_total + i) % sizeof(c->ring)] = buf[i];
    c->err_total += n;
}

/* Reads what stderr has now; closes it at EOF or on error. */
static void
read_stderr(struct child *c)
{
    char buf[4096];

    while (c->err_fd >= 0) {
        ssize_t n = read(c->err_fd, buf, sizeof(buf));

        if (n > 0) {
            keep_stderr(c, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close_fd(&c->err_fd);
    }
}

/* Writes what stdin takes now; closes it when done or when refused. */
static void
write_stdin(struct child *c)
{
    while (c->in_fd >= 0 && c->in_off < c->in_len) {
        ssize_t n = write(c->in_fd, c->in + c->in_off, c->in_len - c->in_off);

        if (n > 0) {
            c->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* EPIPE: the command does not read its input */
    }
    close_fd(&c->in_fd);
}

static bool
leader_exited(const struct child *c)
{
    siginfo_t si;

    for (;;) {
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)c->pid, &si,
                   WEXITED | WNOHANG | WNOWAIT) == 0)
            return si.si_pid == c->pid;
        if (errno != EINTR)
            return true; /* ECHILD: nothing left to wait for */
    }
}

/* Sends the signal the phase calls for; returns when to look again. */
static int64_t
escalate(struct child *c, const struct zn_handler_job *job, bool cancelled,
         int *phase, int64_t kill_at, int64_t now)
{
    if (*phase == 0 && (now >= job->deadline_ms || cancelled)) {
        c->outcome = cancelled ? CANCELLED : TIMED_OUT;
        kill(-c->pid, SIGTERM);
        *phase = 1;
        return now + ZN_EXEC_KILL_GRACE_MS;
    }
    if (*phase == 1 && now >= kill_at) {
        kill(-c->pid, SIGKILL);
        *phase = 2;
    }
    return kill_at;
}

/*
 * Runs until the command exits (it is then a zombie, not yet reaped). A
 * pidfd wakes the poll the moment it exits; without one (a kernel before
 * 5.3) the loop looks again after 1, 2, 4 ... 100 ms, which cost an exec
 * job a millisecond or more.
 */
static void
supervise(struct child *c, const struct zn_handler_job *job)
{
    int64_t backoff = 1, kill_at = 0, now, wait;
    bool cancelled = false;
    int phase = 0; /* 0 running, 1 SIGTERM sent, 2 SIGKILL sent */
    int pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);

    while (!leader_exited(c)) {
        struct pollfd p[4];
        nfds_t n = 0;
        int ci = -1;

        now = zn_clock_mono_ms();
        kill_at = escalate(c, job, cancelled, &phase, kill_at, now);
        wait = phase == 0 ? job->deadline_ms - now
               : phase == 1 ? kill_at - now : BACKOFF_MAX_MS;
        if (pidfd < 0 && wait > backoff)
            wait = backoff;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        if (pidfd >= 0)
            p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (c->in_fd >= 0)
            p[n++] = (struct pollfd){.fd = c->in_fd, .events = POLLOUT};
        if (c->err_fd >= 0)
            p[n++] = (struct pollfd){.fd = c->err_fd, .events = POLLIN};
        if (job->cancel_fd >= 0 && !cancelled) {
            ci = (int)n;
            p[n++] = (struct pollfd){.fd = job->cancel_fd, .events = POLLIN};
        }
        if (poll(p, n, wait < 0 ? 0 : (int)wait) <= 0)
            continue;
        backoff = 1;
        if (ci >= 0 && p[ci].revents)
            cancelled = true;
        write_stdin(c);
        read_stderr(c);
    }
    if (pidfd >= 0)
        close(pidfd);
}

/*
 * The command is a zombie: kill what it left in its group, reap it, then
 * reap the rest of the group (ours to reap when we are their subreaper).
 */
static void
reap(struct child *c)
{
    int64_t deadline = zn_clock_mono_ms() + REAP_WAIT_MS, pause_ms = 1;

    kill(-c->pid, SIGKILL);
    while (wait4(c->pid, &c->status, 0, &c->ru) != c->pid) {
        if (errno != EINTR) {
            c->lost = true;
            break;
        }
    }
    for (;;) {
        pid_t r = waitpid(-c->pid, NULL, WNOHANG);

        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || zn_clock_mono_ms() > deadline)
            break;
        poll(NULL, 0, (int)pause_ms);
        pause_ms = pause_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                 : pause_ms * 2;
    }
    read_stderr(c);
}

/* ---- the result -------------------------------------------------------- */

/*
 * The kept stderr as text into out: complete lines only (the first is
 * dropped when the ring wrapped), without trailing blank lines.
 */
static void
stderr_text(const struct child *c, char *out, size_t size)
{
    char lin[sizeof(c->ring)];
    size_t keep = sizeof(c->ring), len, start = 0;

    if (c->err_total <= keep) {
        len = (size_t)c->err_total;
        memcpy(lin, c->ring, len);
    } else {
        size_t pos = (size_t)(c->err_total % keep);

        memcpy(lin, c->ring + pos, keep - pos);
        memcpy(lin + keep - pos, c->ring, pos);
        len = keep;
        while (start < len && lin[start] != '\n')
            start++;
        if (start < len)
            start++;
    }
    while (len > start && strchr("\r\n\t ", lin[len - 1]))
        len--;
    if (len - start >= size)
        start = len - (size - 1);
    for (size_t i = start; i < len; i++)
        out[i - start] = lin[i] ? lin[i] : '?';
    out[len - start] = '\0';
}

/* The last n lines of text. */
static const char *
last_lines(const char *text, int n)
{
    const char *p = text + strlen(text);

    while (p > text) {
        if (p[-1] == '\n' && --n == 0)
            break;
        p--;
    }
    return p;
}

static void
fill_result(const struct child *c, const struct zn_handler *h,
            const struct zn_handler_job *job, struct zn_handler_result *res)
{
    const char *lines = last_lines(res->trace, ZN_EXEC_MESSAGE_LINES);
    char type[ZN_HANDLER_ERRTYPE_MAX];
    if (c->outcome == TIMED_OUT) {
        zn_handler_fail(res, "timeout", "job ran past its timeout of %d s",
                        job->timeout_s);
    } else if (c->outcome == CANCELLED) {
        zn_handler_fail(res, "terminated", "the worker was told to "
                        "terminate while the job ran");
    } else if (c->lost) {
        zn_handler_fail(res, "worker error", "lost track of process %d",
                        (int)c->pid);
    } else if (c->exec_errno) {
        zn_handler_fail(res, "exit 127", "cannot execute '%s': %s",
                        h->argv[0], strerror(c->exec_errno));
    } else if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) {
        zn_handler_ok(res);
    } else if (WIFEXITED(c->status)) {
        snprintf(type, sizeof(type), "exit %d", WEXITSTATUS(c->status));
        zn_handler_fail(res, type, "%s", *lines ? lines : "");
        if (!*lines)
            snprintf(res->message, sizeof(res->message), "exited with "
                     "status %d", WEXITSTATUS(c->status));
    } else {
        const char *name = WIFSIGNALED(c->status)
                           ? zn_signal_name(WTERMSIG(c->status)) : NULL;

        if (name)
            snprintf(type, sizeof(type), "%s", name);
        else
            snprintf(type, sizeof(type), "signal %d",
                     WIFSIGNALED(c->status) ? WTERMSIG(c->status) : -1);
        zn_handler_fail(res, type, "%s", *lines ? lines : "");
        if (!*lines)
            snprintf(res->message, sizeof(res->message), "killed by %s",
                     type);
    }
    /* No process, no usage of its own: the caller measures the attempt. */
    if (!c->exec_errno) {
        res->cpu_ms = zn_clock_cpu_ms(&c->ru);
        res->rss_kb = c->ru.ru_maxrss;
    }
}

/* Discards a SIGPIPE our writes raised while it was blocked. */
static void
drop_sigpipe(const sigset_t *pipe_set)
{
    struct timespec zero = {0, 0};
    sigset_t pending;

    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
        sigtimedwait(pipe_set, NULL, &zero);
}

int
zn_exec_run(const struct zn_handler *h, const struct zn_handler_job *job,
            struct zn_handler_result *res, struct zn_err *err)
{
    struct child *c = calloc(1, sizeof(*c));
    char **env = build_env(job);
    sigset_t pipe_set, old;
    int rc;

    if (!c || !env) {
        free(c);
        free_env(env);
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    }
    c->in = job->json;
    c->in_len = job->json_len;
    /* A command that does not read stdin must not kill us with SIGPIPE. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    rc = spawn(c, h->argv, env, err);
    free_env(env);
    if (rc == 0) {
        if (c->pid > 0) {
            if (job->spawn_cb)
                job->spawn_cb(job->spawn_ctx, c->pid);
            write_stdin(c);
            supervise(c, job);
            reap(c);
        }
        stderr_text(c, res->trace, sizeof(res->trace));
        fill_result(c, h, job, res);
        close_fd(&c->in_fd);
        close_fd(&c->err_fd);
        drop_sigpipe(&pipe_set);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free(c);
    return rc;
}

/* ---- orphans ----------------------------------------------------------- */

int
zn_exec_become_subreaper(void)
{
#ifdef HAVE_CHILD_SUBREAPER
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -1;
#else
    return -1;
#endif
}

void
zn_exec_reap_strays(void)
{
    for (;;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);

        if (r > 0 || (r < 0 && errno == EINTR))
            continue;
        return;
    }
}
