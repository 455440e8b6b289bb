/*
 * server_int.h - what the two files of the FWP server share: the server,
 * its connections and workers (server.c says how they work), and the
 * reply helpers. server.c has the connections and the job commands;
 * server_admin.c the commands that inspect and administer (INFO, FLUSH,
 * QUEUE, JOBS, MUTATE, CONTROL). Only src/fwp/server*.c include it.
 */
#ifndef ZN_FWP_SERVER_INT_H
#define ZN_FWP_SERVER_INT_H

#include "compat.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "fwp/proto.h"
#include "fwp/server.h"
#include "queue/engine.h"

#define FETCH_QUEUES_MAX 64

struct worker {
    char wid[ZN_FWP_WID_MAX + 1];
    char *hostname;
    int64_t pid;
    json_t *labels;     /* JSON array of strings, built once at HELLO */
    int64_t started_at;
    int64_t last_beat;
    int64_t rss_kb;
    char state[16];     /* "", "quiet", "terminate": what we asked */
    int64_t jobs;       /* ACKed or FAILed over its connections */
    int conns;
    LIST_ENTRY(worker) link;
};

enum conn_state { C_HELLO, C_READY, C_CLOSING };

struct conn {
    struct zn_fwp_server *srv;
    struct bufferevent *bev;
    enum conn_state state;
    char salt[33];
    char peer[64];
    struct worker *worker;
    size_t scanned;        /* input bytes known to hold no newline */
    bool discarding;       /* inside an over-long line */
    bool held;             /* reply waits for the sync or the commit */
    const char *held_reply; /* the RESP text to send then */
    char *held_owned;      /* held_reply when malloc'd, else NULL */
    bool waiting;          /* blocking FETCH */
    bool ending;           /* no more commands: close once output is out */
    bool eof;              /* the peer closed its side */
    char *queues[FETCH_QUEUES_MAX];
    size_t nqueues;
    struct event *fetch_timer;
    TAILQ_ENTRY(conn) all_link;
    TAILQ_ENTRY(conn) held_link;
    TAILQ_ENTRY(conn) wait_link;
    TAILQ_ENTRY(conn) dead_link;
    TAILQ_ENTRY(conn) resume_link;
    TAILQ_ENTRY(conn) unsent_link;
    bool resuming;         /* on srv->resumed */
    bool unsent;           /* on srv->unsent */
};

TAILQ_HEAD(conn_list, conn);

struct zn_fwp_server {
    struct event_base *base;
    struct zn_engine *engine;
    struct zn_fwp_server_opts opts;
    char *password;
    char *unix_path;
    struct evconnlistener *tcp;
    struct evconnlistener *unix_l;
    int port;
    struct event *tick;
    struct conn_list all;
    struct conn_list held;
    struct conn_list waiters;
    struct conn_list dead;
    struct conn_list resumed; /* to run their buffered input after commit */
    struct conn_list unsent;  /* output to write at the end of the turn */
    bool draining;         /* shutting down: run no more commands */
    bool held_commit;      /* a held reply needs the commit, not a sync */
    bool closing_all;      /* freeing: keep the jobs workers hold */
    struct event *relisten;  /* re-enables accepting after an error */
    struct event *commit_timer; /* wakes the loop for a delayed commit */
    int64_t pending_since;   /* monotonic ms the open transaction was seen */
    LIST_HEAD(, worker) workers;
    zn_fwp_gone_cb *gone_cb;
    void *gone_ctx;
    zn_fwp_push_cb *push_cb;
    void *push_ctx;
    zn_fwp_control_cb *control_cb;
    void *control_ctx;
    size_t nconns;
    int64_t started_at;
    uint64_t commands;
};

/* Replies. Each marks c for the write at the end of the loop turn. */
/* The output of c, which the end of this loop turn writes. */
static inline struct evbuffer *
output(struct conn *c)
{
    if (!c->unsent) {
        c->unsent = true;
        TAILQ_INSERT_TAIL(&c->srv->unsent, c, unsent_link);
    }
    return bufferevent_get_output(c->bev);
}

static inline void
reply_raw(struct conn *c, const char *s)
{
    evbuffer_add(output(c), s, strlen(s));
}

static inline void
reply_ok(struct conn *c)
{
    reply_raw(c, "+OK\r\n");
}

static inline void
reply_err(struct conn *c, const char *msg)
{
    struct evbuffer *out = output(c);

    /* RESP errors are one line: CR and LF in a message would end it. */
    evbuffer_add(out, "-ERR ", 5);
    for (const char *p = msg; *p; p++)
        evbuffer_add(out, (*p == '\r' || *p == '\n') ? " " : p, 1);
    evbuffer_add(out, "\r\n", 2);
}

static inline void
reply_bulk(struct conn *c, const char *s)
{
    struct evbuffer *out = output(c);
    size_t len = strlen(s);

    evbuffer_add_printf(out, "$%zu\r\n", len);
    evbuffer_add(out, s, len);
    evbuffer_add(out, "\r\n", 2);
}

/* The text in b as a bulk reply; b is left empty. */
static inline void
reply_bulk_buffer(struct conn *c, struct evbuffer *b)
{
    struct evbuffer *out = output(c);

    evbuffer_add_printf(out, "$%zu\r\n", evbuffer_get_length(b));
    evbuffer_add_buffer(out, b);
    evbuffer_add(out, "\r\n", 2);
}

/* Formats a bulk reply as a malloc'd string, for held replies. */
static inline char *
bulk_text(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(len + 32);

    if (out)
        snprintf(out, len + 32, "$%zu\r\n%s\r\n", len, s);
    return out;
}

/*
 * Holds reply until the open transaction is durable: synced to the
 * store's journal (a push), or committed (commit: a command whose change
 * others must see). owned is the same text when it was malloc'd (taken),
 * NULL for a constant.
 */
static inline void
hold_until(struct conn *c, const char *reply, char *owned, bool commit)
{
    if (!zn_engine_pending(c->srv->engine)) {
        reply_raw(c, reply);
        free(owned);
        return;
    }
    c->held = true;
    c->held_reply = reply;
    c->held_owned = owned;
    c->srv->held_commit |= commit;
    TAILQ_INSERT_TAIL(&c->srv->held, c, held_link);
}

static inline void
hold(struct conn *c, const char *reply, char *owned)
{
    hold_until(c, reply, owned, true);
}

/* "+OK" after the commit; needs no allocation, so it cannot fail. */
static inline void
hold_ok(struct conn *c)
{
    hold(c, "+OK\r\n", NULL);
}

static inline void
hold_push(struct conn *c, const char *reply, char *owned)
{
    hold_until(c, reply, owned, false);
}

static inline void
release_held(struct conn *c)
{
    free(c->held_owned);
    c->held_owned = NULL;
    c->held_reply = NULL;
    c->held = false;
}

/* The commands of server_admin.c. */
void zn__fwp_cmd_info(struct conn *c);
void zn__fwp_cmd_control(struct conn *c, const struct zn_fwp_cmd *cmd);
void zn__fwp_cmd_flush(struct conn *c);
void zn__fwp_cmd_queue(struct conn *c, const struct zn_fwp_cmd *cmd);
void zn__fwp_cmd_jobs(struct conn *c, const struct zn_fwp_cmd *cmd);
void zn__fwp_cmd_mutate(struct conn *c, const struct zn_fwp_cmd *cmd);

#endif
