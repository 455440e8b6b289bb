/*
 * sqlite.h - the embedded store: one SQLite database in WAL mode.
 */
#ifndef ZN_STORE_SQLITE_H
#define ZN_STORE_SQLITE_H

#include "compat.h"

#include <stdbool.h>

#include "store/store.h"

/*
 * A writer on a file journals its pushes (sqlite_journal.c):
 *   FULL  the journal's fdatasync before a push is answered; commits are
 *         synced when due (administrative changes, a megabyte of journal,
 *         close); without a journal (in memory) synchronous=FULL.
 *   FAST  no fdatasync of the journal; synchronous=NORMAL: the WAL is
 *         synced at checkpoints.
 */
enum zn_durability {
    ZN_DURABILITY_FULL = 0,
    ZN_DURABILITY_FAST,
};

struct zn_sqlite_opts {
    enum zn_durability durability;
    bool readonly;           /* a second handle for readers (the HTTP API) */
};

/* The current schema version; see the change procedure in sqlite.c. */
#define ZN_SCHEMA_VERSION 2

/*
 * Opens (creating if needed) the database at path (":memory:" for tests),
 * applies pending migrations (unless readonly) and returns the store.
 * ZN_EIO with err naming the path and SQLite's message on failure; a
 * database newer than this binary is refused with ZN_ESTATE.
 */
int zn_store_sqlite_open(const char *path, const struct zn_sqlite_opts *opts,
                         struct zn_store **out, struct zn_err *err);

/*
 * Applies pending migrations to the database at path and reports the
 * version before and after. Used by `zenith migrate`.
 */
int zn_store_sqlite_migrate(const char *path, int *from, int *to,
                            struct zn_err *err);

/*
 * How many checkpoints the writer's checkpointer thread has run, -1 when
 * st has none (read-only, in memory, not sqlite). For tests.
 */
int64_t zn_store_sqlite_checkpoints(struct zn_store *st);

/*
 * The EXPLAIN QUERY PLAN of a prepared statement behind a hot operation
 * ("fetch" finds the job, "fetch_after" and "fetch_below" the ones after
 * a buffer's last, "take" leases it, "promote" finds a due job,
 * "expired", "next_due", "get", "finish" finds the working job, "extend",
 * "unique" finds an equal job, "oldest" for queue_stats), one plan line
 * per text line, e.g. "SEARCH jobs USING INDEX jobs_ready (queue=?)".
 * For the test that proves the hot paths search an index, and for
 * diagnostics. *out is malloc'd; the caller frees it. ZN_EINVAL for an
 * unknown op or a store that is not sqlite.
 */
int zn_store_sqlite_explain(struct zn_store *st, const char *op, char **out,
                            struct zn_err *err);

#endif
