/*
 * files.h - the tests' scratch directories, and SQL run on a database
 * file behind the store's back (to damage a row, or plant a trigger).
 */
#ifndef ZN_TEST_FILES_H
#define ZN_TEST_FILES_H

#include "compat.h"

#include <stddef.h>

/* Makes a fresh directory "$TMPDIR/<name>.XXXXXX" (TMPDIR: /tmp) in dir. */
void zn_test_tmpdir(char *dir, size_t size, const char *name);

/* The store's database file in dir, "<dir>/zenith.db", into out. */
void zn_test_db_path(const char *dir, char *out, size_t size);

/* Removes what dir holds (directories too), then dir. */
void zn_test_rmdir(const char *dir);

/* Runs sql on the database file at path; a failure fails the test. */
void zn_test_sqlite_exec(const char *path, const char *sql);

/*
 * A trigger "poison" that refuses (RAISE ABORT 'poison') each INSERT into
 * table whose row matches when (SQL on NEW).
 */
void zn_test_sqlite_poison(const char *path, const char *table,
                           const char *when);

#endif
