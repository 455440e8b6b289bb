/*
 * utf8.h - UTF-8 as jansson checks it: what may go into a JSON string.
 */
#ifndef ZN_COMMON_UTF8_H
#define ZN_COMMON_UTF8_H

#include "compat.h"

#include <stddef.h>

/*
 * The length (1 to 4) of the valid UTF-8 sequence at s, of which n bytes
 * are readable; 0 when it is not valid: a bad lead or continuation byte,
 * an overlong form, a surrogate, or beyond U+10FFFF.
 */
size_t zn_utf8_len(const unsigned char *s, size_t n);

#endif
