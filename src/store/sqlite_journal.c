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
 *
 * A record is one accepted job: the values bound to the insert, each with
 * its parameter's number, and its tags (number 0). Records carry the
 * journal's epoch. A commit that follows records moves the epoch on in
 * table meta, in the same transaction, so the records of the stored epoch
 * are exactly the pushes the database lacks. After that commit the
 * journal is written again from its start, over the old records: the file
 * stops growing, and an fdatasync writes data, not the file's size.
 *
 * At open, and after a commit failed, the records of the stored epoch are
 * inserted again (sqlite.c, replay). The journal ends at the first record
 * whose checksum or epoch does not match: a write cut short by a crash,
 * or an older epoch's record past the newer ones.
 *
 *   record:  u32 len | u32 0 | i64 epoch | u64 sum | payload (len bytes)
 *   payload: values, each u8 param | u8 type | int: i64, text: u32 n + n
 *            bytes (type 0 null, 1 int, 2 text)
 *   sum:     FNV-1a (64 bits) of the epoch and the payload
 *
 * Integers are in the machine's order: the journal never leaves it.
 *
 * Non-goals: read-only handles and databases in memory have no journal;
 * a push outside the engine's transaction commits at once and needs none.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "store/sqlite_int.h"

#define HEADER_LEN 24
/* No record is this long: a longer len is a damaged header. */
#define RECORD_MAX (256u * 1024 * 1024)

enum { V_NULL, V_INT, V_TEXT };

struct zn__sqlite_journal {
    int fd;
    bool sync;      /* durability full: fdatasync after each write */
    int64_t epoch;  /* of the records written now */
    off_t off;      /* end of the records in the file */
    char *buf;      /* records not written yet */
    size_t len, cap;
    size_t rec;     /* start of the record being built */
    bool dirty;     /* records since the last commit */
    bool owed;      /* records of this epoch the database lacks */
    bool nomem;     /* a record could not be built: commit instead */
    char *path;
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
record_sum(int64_t epoch, const char *payload, size_t n)
{
    return fnv1a(fnv1a(0xcbf29ce484222325ULL, &epoch, sizeof(epoch)),
                 payload, n);
}

static bool
reserve(struct zn__sqlite_journal *j, size_t n)
{
    size_t cap = j->cap ? j->cap : 4096;
    char *p;

    if (j->nomem)
        return false;
    if (j->len + n <= j->cap)
        return true;
    while (cap < j->len + n)
        cap *= 2;
    p = realloc(j->buf, cap);
    if (!p) {
        j->nomem = true;
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

    j->rec = j->len;
    put(j, header, sizeof(header));
}

void
zn__sqlite_journal_int(struct zn__sqlite_journal *j, int param, int64_t v)
{
    unsigned char tag[2] = {(unsigned char)param, V_INT};

    put(j, tag, sizeof(tag));
    put(j, &v, sizeof(v));
}

void
zn__sqlite_journal_text(struct zn__sqlite_journal *j, int param,
                        const char *v)
{
    unsigned char tag[2] = {(unsigned char)param, v ? V_TEXT : V_NULL};
    uint32_t n = v ? (uint32_t)strlen(v) : 0;

    put(j, tag, sizeof(tag));
    if (v) {
        put(j, &n, sizeof(n));
        put(j, v, n);
    }
}

void
zn__sqlite_journal_end(struct zn__sqlite_journal *j)
{
    uint32_t len = (uint32_t)(j->len - j->rec - HEADER_LEN), zero = 0;
    uint64_t sum;
    char *h;

    if (j->nomem)
        return;
    h = j->buf + j->rec;
    sum = record_sum(j->epoch, h + HEADER_LEN, len);
    memcpy(h, &len, 4);
    memcpy(h + 4, &zero, 4);
    memcpy(h + 8, &j->epoch, 8);
    memcpy(h + 16, &sum, 8);
    j->dirty = true;
}

size_t
zn__sqlite_journal_mark(const struct zn__sqlite_journal *j)
{
    return j->len;
}

void
zn__sqlite_journal_undo(struct zn__sqlite_journal *j, size_t mark)
{
    if (mark <= j->len)
        j->len = mark;
}

int
zn__sqlite_journal_write(struct zn__sqlite_journal *j, struct zn_err *err)
{
    static const char zero[HEADER_LEN];
    size_t done = 0;
    ssize_t n = -1;

    if (j->nomem)
        return zn_err_set(err, ZN_ENOMEM, "cannot write the journal '%s': "
                          "out of memory", j->path);
    while (done < j->len) {
        n = pwrite(j->fd, j->buf + done, j->len - done,
                   j->off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        done += (size_t)n;
    }
    if (j->len && j->sync && fdatasync(j->fd) < 0)
        goto fail;
    j->off += (off_t)j->len;
    j->len = 0;
    return 0;
fail:
    zn_err_set(err, ZN_EIO, "cannot write the journal '%s': %s", j->path,
               n == 0 ? "short write" : strerror(errno));
    /*
     * What did get written must not be taken for pushes at the next open:
     * they will be answered with this error.
     */
    if (pwrite(j->fd, zero, sizeof(zero), j->off) < 0)
        ZN_LOG(ZN_ERROR, "store.journal_failed", ZN_STR("path", j->path),
               ZN_STR("error", strerror(errno)));
    return ZN_EIO;
}

bool
zn__sqlite_journal_dirty(const struct zn__sqlite_journal *j)
{
    return j->dirty || j->len > 0 || j->nomem;
}

int64_t
zn__sqlite_journal_epoch(const struct zn__sqlite_journal *j)
{
    return j->epoch;
}

void
zn__sqlite_journal_committed(struct zn__sqlite_journal *j)
{
    if (!zn__sqlite_journal_dirty(j))
        return;
    j->epoch++;
    j->off = 0;
    j->len = 0;
    j->dirty = false;
    j->nomem = false;
}

void
zn__sqlite_journal_rolled_back(struct zn__sqlite_journal *j)
{
    /* Unwritten records were not answered: their pushes get the error. */
    j->len = 0;
    j->nomem = false;
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
    if (v->type == V_NULL)
        return true;
    if (v->type == V_INT) {
        if (end - *p < 8)
            return false;
        memcpy(&v->i, *p, 8);
        *p += 8;
        return true;
    }
    if (v->type != V_TEXT || end - *p < 4)
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

int
zn__sqlite_journal_replay(struct zn__sqlite_journal *j,
                          int (*fn)(void *ctx,
                                    const struct zn__sqlite_journal_value *v,
                                    size_t n),
                          void *ctx, size_t *records, struct zn_err *err)
{
    struct zn__sqlite_journal_value *vals = NULL;
    char header[HEADER_LEN], *payload = NULL;
    size_t cap = 0, nvals = 0, capvals = 0;
    off_t off = 0;
    int rc = 0;

    *records = 0;
    for (;;) {
        uint32_t len;
        int64_t epoch;
        uint64_t sum;
        const char *p, *end;

        rc = read_at(j->fd, header, sizeof(header), off);
        if (rc != 0)
            break;
        memcpy(&len, header, 4);
        memcpy(&epoch, header + 8, 8);
        memcpy(&sum, header + 16, 8);
        if (epoch != j->epoch || len == 0 || len > RECORD_MAX)
            break;
        if (len > cap) {
            char *np = realloc(payload, len);

            if (!np) {
                rc = -1;
                errno = ENOMEM;
                break;
            }
            payload = np;
            cap = len;
        }
        rc = read_at(j->fd, payload, len, off + HEADER_LEN);
        if (rc != 0 || record_sum(epoch, payload, len) != sum)
            break;
        nvals = 0;
        for (p = payload, end = payload + len; p < end; nvals++) {
            if (nvals == capvals) {
                size_t nc = capvals ? capvals * 2 : 64;
                void *nv = realloc(vals, nc * sizeof(*vals));

                if (!nv) {
                    rc = -1;
                    errno = ENOMEM;
                    goto out;
                }
                vals = nv;
                capvals = nc;
            }
            if (!value_next(&p, end, &vals[nvals]))
                goto out; /* a sum that matched a bad payload: stop */
        }
        rc = fn(ctx, vals, nvals);
        if (rc < 0)
            goto out;
        (*records)++;
        off += HEADER_LEN + (off_t)len;
    }
out:
    free(payload);
    free(vals);
    if (rc == -1)
        return zn_err_set(err, errno == ENOMEM ? ZN_ENOMEM : ZN_EIO,
                          "cannot read the journal '%s': %s", j->path,
                          strerror(errno));
    if (rc < 0)
        return rc;
    /* What was replayed joins the next commit, which moves the epoch on. */
    if (*records)
        j->dirty = true;
    j->off = off;
    j->owed = false;
    return 0;
}

int
zn__sqlite_journal_open(const char *db_path, int64_t epoch, bool sync,
                        struct zn__sqlite_journal **out, struct zn_err *err)
{
    struct zn__sqlite_journal *j = calloc(1, sizeof(*j));
    size_t n = strlen(db_path) + sizeof("-push");

    *out = NULL;
    if (!j || !(j->path = malloc(n))) {
        free(j);
        return zn_err_set(err, ZN_ENOMEM, "cannot open the journal of '%s':"
                          " out of memory", db_path);
    }
    snprintf(j->path, n, "%s-push", db_path);
    j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        zn_err_set(err, ZN_EIO, "cannot open the journal '%s': %s", j->path,
                   strerror(errno));
        free(j->path);
        free(j);
        return ZN_EIO;
    }
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
