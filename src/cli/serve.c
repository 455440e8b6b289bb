/*
 * serve.c - `zenith serve` and `zenith migrate`: wires config, store,
 * engine and the FWP server onto one event loop, and owns the loop.
 *
 * The loop runs one libevent iteration at a time and then lets the FWP
 * server commit: every push that arrived in that iteration shares one
 * commit (group commit), and nothing is answered before it is durable.
 *
 * The supervisor's children are stopped first on shutdown, while the FWP
 * server still runs: they FAIL (or finish) their jobs over it. SIGTERM
 * and SIGINT stop them at once (jobs FAILed as terminated); `zenith
 * terminate` (CONTROL) lets them finish their jobs for a grace period.
 */
#include "compat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "fwp/server.h"
#include "store/sqlite.h"
#include "supervisor/supervisor.h"

#define SHUTDOWN_GRACE_MS 2000

struct serve {
    struct zn_config cfg;
    struct event_base *base;
    struct zn_store *store;
    struct zn_engine *engine;
    struct zn_fwp_server *fwp;
    struct zn_supervisor_confs sups;
    struct zn_supervisor *sup;
    struct event *sigterm, *sigint;
    int lock_fd;
    bool stopping;
    int64_t drain_ms;           /* zenith terminate: workers' grace, or -1 */
};

static void
serve_usage(FILE *out)
{
    fprintf(out, "usage: zenith serve [--config FILE] [--data DIR] "
                 "[--fwp ADDR] [--http ADDR]\n"
                 "                    [--password P] [--no-workers] "
                 "[--OPTION VALUE]...\n\n");
    zn_config_usage(out);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct serve *sv = arg;

    (void)what;
    ZN_LOG(ZN_INFO, "server.stopping", ZN_INT("signal", sig));
    sv->stopping = true;
}

/* CONTROL terminate (zenith terminate): stop, letting jobs finish. */
static void
terminate_cb(void *ctx, int64_t grace_ms)
{
    struct serve *sv = ctx;

    ZN_LOG(ZN_INFO, "server.stopping", ZN_STR("by", "terminate"),
           ZN_INT("grace_ms", grace_ms));
    sv->drain_ms = grace_ms;
    sv->stopping = true;
}

/* FWP CONTROL: the supervisor's commands, and terminate even without. */
static int
control_cb(void *ctx, const char *arg, size_t len, char **reply,
           struct zn_err *err)
{
    struct serve *sv = ctx;

    return zn_supervisor_control(sv->sup, arg, len, terminate_cb, sv, reply,
                                 err);
}

static int
db_path(const struct zn_config *cfg, char *out, size_t size)
{
    if (mkdir(cfg->data, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "zenith: cannot create '%s': %s\n", cfg->data,
                strerror(errno));
        return -1;
    }
    if ((size_t)snprintf(out, size, "%s/zenith.db", cfg->data) >= size) {
        fprintf(stderr, "zenith: data path too long: '%s'\n", cfg->data);
        return -1;
    }
    return 0;
}

/* Parses the command line into cfg; returns -1 to go on, else an exit code. */
static int
load_config(struct zn_config *cfg, int argc, char **argv,
            void (*usage)(FILE *))
{
    struct zn_err err;
    int rc;

    if (zn_config_init(cfg, &err) < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        return 1;
    }
    rc = zn_config_from_args(cfg, argc, argv, &err);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        return 2;
    }
    if (strcmp(cfg->store, "sqlite") != 0) {
        fprintf(stderr, "zenith: store: '%s' is not available in this build "
                        "(use sqlite)\n", cfg->store);
        return 2;
    }
    zn_log_set_level((enum zn_log_level)cfg->log_level);
    return -1;
}

/* libevent's own warnings, as our log lines. */
static void
libevent_log_cb(int severity, const char *msg)
{
    ZN_LOG(severity >= EVENT_LOG_ERR ? ZN_ERROR : ZN_WARN, "libevent",
           ZN_STR("message", msg));
}

/* One server per data directory: a second would share the database. */
static int
lock_data_dir(struct serve *sv, struct zn_err *err)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/zenith.lock", sv->cfg.data);
    sv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sv->lock_fd < 0)
        return zn_err_set(err, ZN_EIO, "cannot open '%s': %s", path,
                          strerror(errno));
    if (flock(sv->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return zn_err_set(err, ZN_ESTATE, "another zenith serve is using "
                          "'%s'", sv->cfg.data);
    return 0;
}

static int
serve_open(struct serve *sv, struct zn_err *err)
{
    struct zn_sqlite_opts so = {.durability = sv->cfg.durability};
    struct zn_fwp_server_opts fo = {
        .tcp = sv->cfg.fwp, .password = sv->cfg.password,
        .max_line = (size_t)sv->cfg.max_line,
    };
    char path[4096], sock[4096], cwd[4096], worker_addr[8300];
    int rc;

    if (db_path(&sv->cfg, path, sizeof(path)) < 0)
        return zn_err_set(err, ZN_EIO, "cannot prepare the data directory");
    rc = lock_data_dir(sv, err);
    if (rc < 0)
        return rc;
    if (sv->cfg.unix_socket[0])
        snprintf(sock, sizeof(sock), "%s", sv->cfg.unix_socket);
    else
        snprintf(sock, sizeof(sock), "%s/zenith.sock", sv->cfg.data);
    fo.unix_path = sock;
    rc = zn_store_sqlite_open(path, &so, &sv->store, err);
    if (rc == 0)
        rc = zn_engine_new(sv->store, &sv->cfg.engine, &zn_clock_real,
                           &sv->engine, err);
    if (rc < 0)
        return rc;
    sv->base = event_base_new();
    if (!sv->base)
        return zn_err_set(err, ZN_ENOMEM, "cannot create the event loop");
    rc = zn_fwp_server_new(sv->base, sv->engine, &fo, &sv->fwp, err);
    if (rc < 0)
        return rc;
    zn_fwp_server_set_control_cb(sv->fwp, control_cb, sv);
    sv->sigterm = evsignal_new(sv->base, SIGTERM, signal_cb, sv);
    sv->sigint = evsignal_new(sv->base, SIGINT, signal_cb, sv);
    if (!sv->sigterm || !sv->sigint)
        return zn_err_set(err, ZN_ENOMEM, "cannot watch signals");
    evsignal_add(sv->sigterm, NULL);
    evsignal_add(sv->sigint, NULL);
    /*
     * The workers' address: "unix:" says a Unix socket even for a relative
     * path, which is made absolute in case a worker's directory differs.
     */
    if (sock[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        snprintf(worker_addr, sizeof(worker_addr), "unix:%s", sock);
    else
        snprintf(worker_addr, sizeof(worker_addr), "unix:%s/%s", cwd, sock);
    if (sv->cfg.workers) {
        struct zn_supervisor_opts so2 = {
            .confs = &sv->sups, .server = worker_addr,
            .password = sv->cfg.password, .config = sv->cfg.file,
        };

        rc = zn_supervisor_new(sv->base, sv->engine, sv->fwp, &so2,
                               &sv->sup, err);
        if (rc < 0)
            return rc;
    }
    ZN_LOG(ZN_INFO, "server.listening", ZN_STR("fwp", sv->cfg.fwp),
           ZN_INT("port", zn_fwp_server_port(sv->fwp)),
           ZN_STR("unix", sock), ZN_STR("db", path),
           ZN_STR("durability",
                  sv->cfg.durability == ZN_DURABILITY_FULL ? "full" : "fast"),
           ZN_STR("store", sv->cfg.store), ZN_BOOL("dashboard",
                                                   sv->cfg.dashboard),
           ZN_INT("pid", getpid()));
    return 0;
}

static void
serve_close(struct serve *sv)
{
    struct zn_err err;

    zn_supervisor_free(sv->sup);
    zn_supervisor_confs_release(&sv->sups);
    /* Closing connections releases the jobs their workers held. */
    zn_fwp_server_free(sv->fwp);
    if (sv->engine && zn_engine_commit(sv->engine, &err) < 0)
        ZN_LOG(ZN_ERROR, "server.final_commit_failed",
               ZN_STR("error", err.msg));
    zn_engine_free(sv->engine);
    zn_store_close(sv->store);
    if (sv->sigterm)
        event_free(sv->sigterm);
    if (sv->sigint)
        event_free(sv->sigint);
    if (sv->base)
        event_base_free(sv->base);
    if (sv->lock_fd >= 0)
        close(sv->lock_fd);
    zn_config_release(&sv->cfg);
}

int
zn_cli_serve(int argc, char **argv)
{
    struct serve sv = {.lock_fd = -1, .drain_ms = -1};
    struct zn_err err;
    bool more = false;
    int64_t deadline;
    int rc;

    rc = load_config(&sv.cfg, argc, argv, serve_usage);
    if (rc >= 0) {
        zn_config_release(&sv.cfg);
        return rc;
    }
    if (sv.cfg.workers &&
        zn_supervisor_conf_load(&sv.sups, sv.cfg.file, &err) < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        zn_config_release(&sv.cfg);
        return err.code == ZN_ENOMEM ? 1 : 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "zenith: cannot initialise libsodium\n");
        zn_supervisor_confs_release(&sv.sups);
        zn_config_release(&sv.cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    event_set_log_callback(libevent_log_cb);
    if (serve_open(&sv, &err) < 0) {
        ZN_LOG(ZN_ERROR, "server.start_failed", ZN_STR("error", err.msg));
        fprintf(stderr, "zenith: %s\n", err.msg);
        serve_close(&sv);
        return 1;
    }
    while (!sv.stopping) {
        event_base_loop(sv.base, EVLOOP_ONCE | (more ? EVLOOP_NONBLOCK : 0));
        more = zn_fwp_server_flush(sv.fwp);
    }
    /*
     * Children first: they end their jobs over their connections, which
     * the server keeps serving until the last child is reaped.
     */
    if (sv.drain_ms >= 0)
        zn_supervisor_drain(sv.sup, sv.drain_ms);
    else
        zn_supervisor_stop(sv.sup);
    while (zn_supervisor_running(sv.sup) > 0) {
        event_base_loop(sv.base, EVLOOP_ONCE);
        zn_fwp_server_flush(sv.fwp);
    }
    /*
     * Stop accepting, run no more commands, commit, and give the replies
     * that are due a short grace period to reach their clients.
     */
    zn_fwp_server_stop_listening(sv.fwp);
    deadline = zn_clock_mono_ms() + SHUTDOWN_GRACE_MS;
    while (zn_fwp_server_drain(sv.fwp) && zn_clock_mono_ms() < deadline)
        event_base_loop(sv.base, EVLOOP_ONCE);
    serve_close(&sv);
    ZN_LOG0(ZN_INFO, "server.stopped");
    return 0;
}

static void
migrate_usage(FILE *out)
{
    fprintf(out, "usage: zenith migrate [--config FILE] [--data DIR]\n\n"
                 "Applies pending schema migrations to DATA/zenith.db.\n");
}

int
zn_cli_migrate(int argc, char **argv)
{
    struct zn_config cfg;
    struct zn_err err;
    char path[4096];
    int rc, from = 0, to = 0;

    rc = load_config(&cfg, argc, argv, migrate_usage);
    if (rc >= 0) {
        zn_config_release(&cfg);
        return rc;
    }
    rc = db_path(&cfg, path, sizeof(path));
    if (rc == 0 && zn_store_sqlite_migrate(path, &from, &to, &err) < 0) {
        fprintf(stderr, "zenith: %s\n", err.msg);
        rc = -1;
    }
    if (rc == 0)
        printf("%s: schema version %d -> %d\n", path, from, to);
    zn_config_release(&cfg);
    return rc == 0 ? 0 : 1;
}
