/*
 * sqlite_journal.c - the push journal: what makes a push durable before
 * the transaction holding it commits.
 *
 * A push used to be answered after the commit of its transaction: six
 * file locks and a WAL frame for each page it touched, and with durability
 * full the WAL's fsync, for every loop turn that pushed. Now the pushes of
 * a turn are appended here (one write, and one fdatasync when durability
 * is full) and answered; their transaction commits with the rest of the
 * engine's work a few milliseconds later, when many pushes share its pages.
 * A single push's row is inserted after its answer too (sqlite_push.c).
 *
 * A record is one accepted job: the values bound to the insert, each with
 * its parameter's number, and its tags (number 0). Records carry the
 * journal's epoch. A commit that follows records moves the epoch on in
 * table meta, in the same transaction, so the records of the stored epoch
 * and later ones are exactly the pushes the database lacks.
 *
 * Once a commit is known to be on disk the journal is written again from
 * its start, over the old records: the file stops growing, and an
 * fdatasync writes data, not the file's size. With durability fast every
 * commit is (a crash of zenith keeps it; a crash of the machine may lose
 * it, as fast allows). With durability full a commit is only written, not
 * synced, so the journal goes on after it, and the commit that finds the
 * journal past RESTART_BYTES syncs (sqlite.c says which others do); one
 * fsync then covers a megabyte of pushes instead of one per 10 ms.
 * Records written over are of older epochs than the ones written since,
 * so the journal ends where the epochs go down.
 *
 * At open, and after a commit failed, the records of the stored epoch and
 * later are inserted again (sqlite_push.c, replay). The journal ends at the
 * first record whose checksum, epoch or version does not match: a write
 * cut short by a crash, or an older epoch's record past the newer ones.
 * But a first record of another version, of an epoch not stored yet and
 * whose checksum matches, stops the open: those pushes were answered.
 * The checksum covers the database's journal id (table meta), so a journal
 * left beside another database file matches nothing in it.
 *
 *   record:  u32 len | u32 version | i64 epoch | u64 sum | payload
 *   payload: values, each u8 param | u8 type | int: i64, text: u32 n + n
 *            bytes (enum zn__sqlite_jtype)
 *   sum:     FNV-1a (64 bits) of the id, the epoch and the payload
 *
 * Integers are in the machine's order: the journal never leaves it.
 *
 * To change the record:
 *  1. Bump JOURNAL_VERSION.
 *  2. Keep the header (len, version, epoch, sum) and the sum's rule as
 *     they are: an open checks the first record of another version by
 *     them before it refuses to drop its pushes.
 *  3. Say in the release notes that a clean stop (which leaves no record)
 *     must come before the upgrade, else the new build refuses to open
 *     until the old one has run once or the journal is removed.
 *
 * Non-goals: read-only handles and databases in memory have no journal;
 * a push outside the engine's transaction commits at once and needs none.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "store/sqlite_int.h"

#define HEADER_LEN 24
#define JOURNAL_VERSION 1
#define RESTART_BYTES (1024 * 1024)
/*
 * Zeros written at open, once: an fdatasync of a write inside the file
 * costs half of one that grows it (bench/ measures both). A zero length
 * ends the journal.
 */
#define PREALLOC_BYTES (RESTART_BYTES + 256 * 1024)
/*
 * The records of one turn are held in memory up to this; past it (a PUSHB
 * of huge jobs) the turn's pushes are committed instead of journaled.
 */
#define BUF_MAX (64u * 1024 * 1024)

struct zn__sqlite_journal {
    int fd;
    bool sync;      /* durability full: fdatasync after each write */
    uint64_t id;    /* the database's journal id */
    int64_t epoch;  /* of the records written now */
    off_t off;      /* end of the records in the file */
    char *buf;      /* records not written yet */
    size_t len, cap;
    size_t rec;     /* start of the record being built */
    bool dirty;     /* records since the last commit */
    bool owed;      /* records of this epoch the database lacks */
    /* Why the records built cannot be written: the caller commits. */
    const char *unwritable;
    char *path;
};

/* A record read back: its values, and the memory they point into. */
struct zn__sqlite_journal_rec {
    char *payload;
    size_t payload_cap;
    struct zn__sqlite_journal_value *vals;
    size_t n, cap;
    off_t len;          /* header and payload */
    int64_t last_epoch; /* the journal ends where epochs go down */
};

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;

    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t
record_sum(const struct zn__sqlite_journal *j, int64_t epoch,
           const char *payload, size_t n)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, &j->id, sizeof(j->id));

    return fnv1a(fnv1a(h, &epoch, sizeof(epoch)), payload, n);
}

static bool
reserve(struct zn__sqlite_journal *j, size_t n)
{
    size_t cap = j->cap ? j->cap : 4096;
    char *p;

    if (j->unwritable)
        return false;
    if (j->len + n <= j->cap)
        return true;
    if (j->len + n > BUF_MAX) {
        j->unwritable = "the turn's pushes are too big";
        return false;
    }
    while (cap < j->len + n)
        cap *= 2;
    p = realloc(j->buf, cap);
    if (!p) {
        j->unwritable = "out of memory";
        return false;
    }
    j->buf = p;
    j->cap = cap;
    return true;
}

static void
put(struct zn__sqlite_journal *j, const void *p, size_t n)
{
    if (reserve(j, n)) {
        memcpy(j->buf + j->len, p, n);
        j->len += n;
    }
}

void
zn__sqlite_journal_begin(struct zn__sqlite_journal *j)
{
    static const char header[HEADER_LEN];

    if (!j)
        return;
    j->rec = j->len;
    put(j, header, sizeof(header));
}

/* A value's param and type, then n bytes of it: one reserve for all. */
static char *
put_value(struct zn__sqlite_journal *j, int param, enum zn__sqlite_jtype type,
          size_t n)
{
    char *p;

    if (!reserve(j, 2 + n))
        return NULL;
    p = j->buf + j->len;
    p[0] = (char)param;
    p[1] = (char)type;
    j->len += 2 + n;
    return p + 2;
}

void
zn__sqlite_journal_int(struct zn__sqlite_journal *j, int param, int64_t v)
{
    char *p;

    if (!j)
        return;
    p = put_value(j, param, ZN__SQLITE_JINT, sizeof(v));
    if (p)
        memcpy(p, &v, sizeof(v));
}

void
zn__sqlite_journal_text(struct zn__sqlite_journal *j, int param,
                        const char *v)
{
    uint32_t n;
    char *p;

    if (!j)
        return;
    n = v ? (uint32_t)strlen(v) : 0;
    p = v ? put_value(j, param, ZN__SQLITE_JTEXT, sizeof(n) + n)
          : put_value(j, param, ZN__SQLITE_JNULL, 0);
    if (p && v) {
        memcpy(p, &n, sizeof(n));
        memcpy(p + sizeof(n), v, n);
    }
}

void
zn__sqlite_journal_end(struct zn__sqlite_journal *j)
{
    uint32_t len, version = JOURNAL_VERSION;
    uint64_t sum;
    char *h;

    if (!j)
        return;
    len = (uint32_t)(j->len - j->rec - HEADER_LEN);
    j->dirty = true;
    if (j->unwritable)
        return;
    h = j->buf + j->rec;
    sum = record_sum(j, j->epoch, h + HEADER_LEN, len);
    memcpy(h, &len, 4);
    memcpy(h + 4, &version, 4);
    memcpy(h + 8, &j->epoch, 8);
    memcpy(h + 16, &sum, 8);
}

struct zn__sqlite_journal_mark
zn__sqlite_journal_mark(const struct zn__sqlite_journal *j)
{
    struct zn__sqlite_journal_mark m = {0, false};

    if (j) {
        m.len = j->len;
        m.dirty = j->dirty;
    }
    return m;
}

void
zn__sqlite_journal_undo(struct zn__sqlite_journal *j,
                        struct zn__sqlite_journal_mark mark)
{
    /*
     * Only records built since the mark are undone: after a rollback the
     * journal has none (len 0), and its clean state must stay, or the
     * next commit would move the epoch past the records it owes.
     */
    if (j && mark.len < j->len) {
        j->len = mark.len;
        j->dirty = mark.dirty;
    }
}

int
zn__sqlite_journal_write(struct zn__sqlite_journal *j, struct zn_err *err)
{
    const char *failed = NULL;
    size_t done = 0;
    ssize_t n;

    if (j->unwritable) {
        /* Said once: the caller commits the records' pushes instead. */
        zn_err_set(err, ZN_ESTATE, "cannot journal the pushes of '%s': %s",
                   j->path, j->unwritable);
        j->unwritable = NULL;
        j->len = 0;
        return ZN_ESTATE;
    }
    while (done < j->len && !failed) {
        n = pwrite(j->fd, j->buf + done, j->len - done,
                   j->off + (off_t)done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0 || errno != EINTR)
            failed = n == 0 ? "short write" : strerror(errno);
    }
    if (!failed && j->len && j->sync && fdatasync(j->fd) < 0)
        failed = strerror(errno);
    if (!failed) {
        j->off += (off_t)j->len;
        j->len = 0;
        return 0;
    }
    zn_err_set(err, ZN_EIO, "cannot write the journal '%s': %s", j->path,
               failed);
    /*
     * What did get written must not be taken for pushes at the next open:
     * they will be answered with this error.
     */
    if (ftruncate(j->fd, j->off) < 0)
        ZN_LOG(ZN_ERROR, "store.journal_failed", ZN_STR("path", j->path),
               ZN_STR("error", strerror(errno)));
    return ZN_EIO;
}

bool
zn__sqlite_journal_dirty(const struct zn__sqlite_journal *j)
{
    return j->dirty || j->len > 0;
}

int64_t
zn__sqlite_journal_epoch(const struct zn__sqlite_journal *j)
{
    return j->epoch;
}

void
zn__sqlite_journal_committed(struct zn__sqlite_journal *j, bool restart)
{
    if (restart)
        j->off = 0;
    if (!zn__sqlite_journal_dirty(j))
        return;
    j->epoch++;
    j->len = 0;
    j->dirty = false;
    j->unwritable = NULL;
}

bool
zn__sqlite_journal_restart_due(const struct zn__sqlite_journal *j)
{
    return (int64_t)j->off + (int64_t)j->len >= RESTART_BYTES;
}

bool
zn__sqlite_journal_unwritten(const struct zn__sqlite_journal *j)
{
    return j->len > 0 || j->unwritable;
}

void
zn__sqlite_journal_rolled_back(struct zn__sqlite_journal *j)
{
    /*
     * Records not written yet are of pushes not answered yet: the next
     * write fails, so they are answered with an error, not an OK for a
     * row that is gone.
     */
    if (j->len > 0)
        j->unwritable = "the transaction rolled back";
    j->len = 0;
    j->dirty = false;
    if (j->off > 0)
        j->owed = true;
}

bool
zn__sqlite_journal_owed(const struct zn__sqlite_journal *j)
{
    return j->owed;
}

/* Reads n bytes at off: 0, 1 at the end of the file, or -1. */
static int
read_at(int fd, void *p, size_t n, off_t off)
{
    size_t done = 0;
    ssize_t r;

    while (done < n) {
        r = pread(fd, (char *)p + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 1;
        done += (size_t)r;
    }
    return 0;
}

/* One value of a payload into v; false when it does not fit. */
static bool
value_next(const char **p, const char *end,
           struct zn__sqlite_journal_value *v)
{
    uint32_t n;

    if (end - *p < 2)
        return false;
    v->param = (unsigned char)(*p)[0];
    v->type = (unsigned char)(*p)[1];
    *p += 2;
    if (v->type == ZN__SQLITE_JNULL)
        return true;
    if (v->type == ZN__SQLITE_JINT) {
        if (end - *p < 8)
            return false;
        memcpy(&v->i, *p, 8);
        *p += 8;
        return true;
    }
    if (v->type != ZN__SQLITE_JTEXT || end - *p < 4)
        return false;
    memcpy(&n, *p, 4);
    *p += 4;
    if ((size_t)(end - *p) < n)
        return false;
    v->text = *p;
    v->len = n;
    *p += n;
    return true;
}

/* The values of a payload into r->vals (grown); false when damaged. */
static bool
payload_values(struct zn__sqlite_journal_rec *r, const char *p, size_t len)
{
    const char *end = p + len;

    r->n = 0;
    while (p < end) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 64;
            void *v = realloc(r->vals, cap * sizeof(*r->vals));

            if (!v)
                return false;
            r->vals = v;
            r->cap = cap;
        }
        if (!value_next(&p, end, &r->vals[r->n++]))
            return false;
    }
    return true;
}

/*
 * The first record, whose header and sum match this database, is of
 * another format: another build wrote the journal since its last
 * restart. (Further on, a header may be bytes of an older record written
 * over, which end the journal.) Of a committed epoch, the journal ends
 * there. Else it holds pushes that were answered and are not in the
 * database: refusing to open says so, where going on would drop them.
 */
static int
other_version(const struct zn__sqlite_journal *j, uint32_t version,
              int64_t epoch, struct zn_err *err)
{
    if (epoch < j->epoch)
        return 1;
    return zn_err_set(err, ZN_ESTATE, "cannot replay the journal '%s': its "
                      "pushes are in format %" PRIu32 ", this zenith reads "
                      "format %d; run the zenith that wrote them once to "
                      "store them, or remove the file to drop them",
                      j->path, version, JOURNAL_VERSION);
}

/*
 * The record at off into r: 0, 1 when the journal ends there (logged when
 * a record of this epoch was cut short or damaged), or ZN_EIO/ZN_ENOMEM.
 */
static int
record_read(struct zn__sqlite_journal *j, off_t off, off_t size,
            struct zn__sqlite_journal_rec *r, struct zn_err *err)
{
    char header[HEADER_LEN];
    uint32_t len, version;
    int64_t epoch;
    uint64_t sum;
    int rc = read_at(j->fd, header, sizeof(header), off);

    if (rc != 0)
        goto end;
    memcpy(&len, header, 4);
    memcpy(&version, header + 4, 4);
    memcpy(&epoch, header + 8, 8);
    memcpy(&sum, header + 16, 8);
    if (epoch < r->last_epoch || len == 0)
        return 1;
    /* Past the start: bytes of an older record written over. */
    if (version != JOURNAL_VERSION && off > 0)
        return 1;
    if (len > size - off - HEADER_LEN)
        goto damaged;
    if (len > r->payload_cap) {
        char *p = realloc(r->payload, len);

        if (!p)
            return zn_err_set(err, ZN_ENOMEM, "cannot read the journal "
                              "'%s': out of memory", j->path);
        r->payload = p;
        r->payload_cap = len;
    }
    rc = read_at(j->fd, r->payload, len, off + HEADER_LEN);
    if (rc != 0)
        goto end;
    if (record_sum(j, epoch, r->payload, len) != sum)
        goto damaged;
    if (version != JOURNAL_VERSION)
        return other_version(j, version, epoch, err);
    if (!payload_values(r, r->payload, len))
        goto damaged;
    r->len = HEADER_LEN + (off_t)len;
    r->last_epoch = epoch;
    return 0;
damaged:
    ZN_LOG(ZN_WARN, "store.journal_cut", ZN_STR("path", j->path),
           ZN_INT("offset", (int64_t)off),
           ZN_STR("reason", "a record cut short or damaged (a crash while "
                            "it was written): it was never answered"));
    return 1;
end:
    if (rc > 0)
        return 1;
    return zn_err_set(err, ZN_EIO, "cannot read the journal '%s': %s",
                      j->path, strerror(errno));
}

int
zn__sqlite_journal_replay(struct zn__sqlite_journal *j,
                          int (*fn)(void *ctx,
                                    const struct zn__sqlite_journal_value *v,
                                    size_t n),
                          void *ctx, size_t *records, struct zn_err *err)
{
    struct zn__sqlite_journal_rec r = {0};
    struct stat sb;
    off_t off = 0;
    int rc;

    *records = 0;
    if (fstat(j->fd, &sb) < 0)
        return zn_err_set(err, ZN_EIO, "cannot read the journal '%s': %s",
                          j->path, strerror(errno));
    while ((rc = record_read(j, off, sb.st_size, &r, err)) == 0) {
        /* Older epochs are committed: in the database already. */
        if (r.last_epoch >= j->epoch) {
            rc = fn(ctx, r.vals, r.n);
            if (rc < 0)
                break;
            (*records)++;
        }
        off += r.len;
    }
    free(r.payload);
    free(r.vals);
    if (rc < 0)
        return rc;
    /* What was replayed joins the next commit, which moves the epoch on. */
    if (*records)
        j->dirty = true;
    j->off = off;
    j->owed = false;
    return 0;
}

/* Fills the file with zeros up to PREALLOC_BYTES (see there). */
static int
prealloc(struct zn__sqlite_journal *j, struct zn_err *err)
{
    static const char zeros[64 * 1024];
    struct stat sb;
    off_t at;

    if (fstat(j->fd, &sb) < 0)
        goto fail;
    for (at = sb.st_size; at < PREALLOC_BYTES; at += (off_t)sizeof(zeros))
        if (pwrite(j->fd, zeros, sizeof(zeros), at) != (ssize_t)sizeof(zeros))
            goto fail;
    if (sb.st_size < PREALLOC_BYTES && fdatasync(j->fd) < 0)
        goto fail;
    return 0;
fail:
    return zn_err_set(err, ZN_EIO, "cannot fill the journal '%s': %s",
                      j->path, strerror(errno));
}

int
zn__sqlite_journal_reset(struct zn__sqlite_journal *j, struct zn_err *err)
{
    if (j->owed || j->off != 0)
        return 0; /* the replay was not synced: keep what is there */
    if (ftruncate(j->fd, 0) < 0)
        return zn_err_set(err, ZN_EIO, "cannot empty the journal '%s': %s",
                          j->path, strerror(errno));
    return j->sync ? prealloc(j, err) : 0;
}

/* Makes a new journal's name durable: fsync of its directory. */
static void
dir_sync(const char *path)
{
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    int fd;

    if (slash)
        *slash = '\0';
    fd = dir ? open(slash ? (*dir ? dir : "/") : ".",
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC)
             : -1;
    if (fd < 0 || fsync(fd) < 0)
        ZN_LOG(ZN_WARN, "store.journal_dir_sync_failed", ZN_STR("path", path),
               ZN_STR("error", strerror(errno)));
    if (fd >= 0)
        close(fd);
    free(dir);
}

int
zn__sqlite_journal_open(const char *db_path, uint64_t id, int64_t epoch,
                        bool sync, struct zn__sqlite_journal **out,
                        struct zn_err *err)
{
    struct zn__sqlite_journal *j = calloc(1, sizeof(*j));
    size_t n = strlen(db_path) + sizeof("-push");

    *out = NULL;
    if (j)
        j->path = malloc(n);
    if (!j || !j->path) {
        free(j);
        return zn_err_set(err, ZN_ENOMEM, "cannot open the journal of '%s':"
                          " out of memory", db_path);
    }
    snprintf(j->path, n, "%s-push", db_path);
    j->fd = open(j->path, O_RDWR | O_CLOEXEC);
    if (j->fd < 0 && errno == ENOENT) {
        j->fd = open(j->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (j->fd >= 0 && sync)
            dir_sync(j->path);
    }
    if (j->fd < 0) {
        zn_err_set(err, ZN_EIO, "cannot open the journal '%s': %s", j->path,
                   strerror(errno));
        free(j->path);
        free(j);
        return ZN_EIO;
    }
    j->id = id;
    j->epoch = epoch;
    j->sync = sync;
    j->owed = true; /* until replay has read the file */
    *out = j;
    return 0;
}

void
zn__sqlite_journal_close(struct zn__sqlite_journal *j)
{
    if (!j)
        return;
    close(j->fd);
    free(j->buf);
    free(j->path);
    free(j);
}
