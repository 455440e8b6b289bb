/*
 * files.c - the tests' scratch directories and direct SQL (see files.h).
 */
#include "compat.h"

#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "files.h"

void
zn_test_tmpdir(char *dir, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, size, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
                     name);

    assert_true(n > 0 && (size_t)n < size);
    assert_non_null(mkdtemp(dir));
}

void
zn_test_db_path(const char *dir, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/zenith.db", dir);

    assert_true(n > 0 && (size_t)n < size);
}

void
zn_test_rmdir(const char *dir)
{
    char path[PATH_MAX + 256];
    struct dirent *d;
    DIR *dp = opendir(dir);

    if (!dp)
        return;
    for (d = readdir(dp); d; d = readdir(dp)) {
        struct stat sb;

        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            zn_test_rmdir(path);
        else
            unlink(path);
    }
    closedir(dp);
    rmdir(dir);
}

void
zn_test_sqlite_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    /* A running server holds the write lock for a few ms at a time. */
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

void
zn_test_sqlite_poison(const char *path, const char *table, const char *when)
{
    char sql[512];

    snprintf(sql, sizeof(sql), "CREATE TRIGGER poison BEFORE INSERT ON %s"
             " WHEN %s BEGIN SELECT RAISE(ABORT, 'poison'); END", table,
             when);
    zn_test_sqlite_exec(path, sql);
}
