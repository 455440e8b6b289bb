/*
 * timeout.h - the tests' time limits, scaled for slow builds.
 */
#ifndef ZN_TEST_TIMEOUT_H
#define ZN_TEST_TIMEOUT_H

#include "compat.h"

#include <stdint.h>

/*
 * base_ms scaled by ZN_TEST_TIMEOUT_MULT (default 1): sanitizer builds run
 * the same tests slower.
 */
int64_t zn_test_ms(int64_t base_ms);

#endif
