/*
 * timeout.c - the tests' time limits (see timeout.h).
 */
#include "compat.h"

#include <stdlib.h>

#include "support/timeout.h"

int64_t
zn_test_ms(int64_t base_ms)
{
    const char *m = getenv("ZN_TEST_TIMEOUT_MULT");
    long mult = m ? strtol(m, NULL, 10) : 1;

    return base_ms * (mult > 0 ? mult : 1);
}
