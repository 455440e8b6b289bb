/*
 * test_ini.c - the INI line reader (common/ini.c): lines counted, a line
 * that exactly fills the buffer accepted, one byte more refused.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/ini.h"

/* Reads text with a buffer of num bytes: how many lines, and too_long. */
static int
read_all(const char *text, int num, bool *too_long, int *lineno)
{
    char buf[64];
    struct zn_ini_lines l = {fmemopen((void *)text, strlen(text), "r"), 0};
    int n = 0;

    assert_non_null(l.fp);
    assert_true(num <= (int)sizeof(buf));
    while (zn_ini_next_line(&l, buf, num, too_long))
        n++;
    fclose(l.fp);
    *lineno = l.lineno;
    return n;
}

static void
test_ini_counts_lines(void **state)
{
    bool too_long;
    int lineno;

    (void)state;
    assert_int_equal(read_all("a = 1\n\n[s]\nb = 2", 16, &too_long, &lineno),
                     4);
    assert_false(too_long);
    assert_int_equal(lineno, 4);
    assert_int_equal(read_all("", 16, &too_long, &lineno), 0);
    assert_false(too_long);
}

static void
test_ini_line_limit(void **state)
{
    bool too_long;
    int lineno;

    (void)state;
    /* 7 bytes fit a buffer of 8, with or without their newline. */
    assert_int_equal(read_all("1234567\nx\n", 8, &too_long, &lineno), 2);
    assert_false(too_long);
    assert_int_equal(read_all("x\n1234567", 8, &too_long, &lineno), 2);
    assert_false(too_long);
    /* 8 do not: the reading stops at that line. */
    assert_int_equal(read_all("x\n12345678\ny\n", 8, &too_long, &lineno), 1);
    assert_true(too_long);
    assert_int_equal(lineno, 2);
}

int
main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ini_counts_lines),
        cmocka_unit_test(test_ini_line_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
