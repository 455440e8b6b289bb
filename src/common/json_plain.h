/*
 * json_plain.h - a reader for plain JSON: the shape nearly every job and
 * ACK a client sends has. Plain means strings without escapes, integers
 * of at most 18 digits (no fraction, exponent or "-0"), each object's keys
 * distinct, nesting at most ZN_JSON_PLAIN_DEPTH deep.
 *
 * It finds, without allocating, where the members of one top-level object
 * are (the elements of a top-level array go into one array it grows). A
 * text outside plain JSON is not an error here: the caller hands it to
 * jansson, which reads all of JSON and words the errors. So a plain text
 * must read exactly as jansson reads it, and the compact form of a value
 * must be what json_dumpb(JSON_COMPACT) writes for it;
 * tests/fuzz/fuzz_job.c compares the two. zn_json_valid checks any JSON,
 * with the same descent.
 */
#ifndef ZN_COMMON_JSON_PLAIN_H
#define ZN_COMMON_JSON_PLAIN_H

#include "compat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZN_JSON_PLAIN_DEPTH 16
#define ZN_JSON_DEPTH_MAX 512  /* nesting zn_json_valid allows */
#define ZN_JSON_PLAIN_KEYS 32  /* members of any one object */

enum zn_json_plain_type {
    ZN_JSON_PLAIN_STRING, ZN_JSON_PLAIN_INT, ZN_JSON_PLAIN_TRUE,
    ZN_JSON_PLAIN_FALSE, ZN_JSON_PLAIN_NULL, ZN_JSON_PLAIN_ARRAY,
    ZN_JSON_PLAIN_OBJECT
};

/*
 * A value inside the text it was read from (nothing is copied): p and n
 * are its text, except that a string's are its bytes without the quotes
 * (valid UTF-8, no escapes); i is an integer's value.
 */
struct zn_json_val {
    enum zn_json_plain_type type;
    const char *p;
    size_t n;
    int64_t i;
};

struct zn_json_member {
    const char *key; /* without quotes, not NUL-terminated */
    size_t klen;
    struct zn_json_val v;
};

/*
 * True when text[0..len) is one plain object (whitespace around it
 * allowed): its members, in order, are m[0..*n). False when the text is
 * not plain JSON, or not JSON at all; m and *n are then undefined.
 */
bool zn_json_plain_object(const char *text, size_t len,
                          struct zn_json_member m[ZN_JSON_PLAIN_KEYS],
                          size_t *n);

/*
 * The same for one plain array of at most max elements: its elements, in
 * order, are (*out)[0..*n), an array the caller frees (NULL when empty).
 * False too when it has more than max, or memory ran out.
 */
bool zn_json_plain_array(const char *text, size_t len, size_t max,
                         struct zn_json_val **out, size_t *n);

/*
 * The value of member key (NUL-terminated), or NULL when absent; it
 * points into m. JSON null counts as absent: Faktory's Go client sends
 * null for nil.
 */
const struct zn_json_val *zn_json_plain_get(const struct zn_json_member *m,
                                            size_t n, const char *key);

/* The whole JSON text of v, a string's quotes included: *n bytes. */
const char *zn_json_plain_text(const struct zn_json_val *v, size_t *n);

/*
 * Writes the text of v (an array or an object read by the reader) into
 * out, which has room for v->n + 1 bytes, without the whitespace between
 * its tokens: jansson's compact form. Returns its length; out is
 * NUL-terminated.
 */
size_t zn_json_plain_compact(const struct zn_json_val *v, char *out);

/*
 * Whether text[0..len) is one JSON value of any kind (escapes, reals,
 * repeated keys) that opens with open ('[', '{'...), whitespace around it
 * allowed, nested at most ZN_JSON_DEPTH_MAX deep, its strings valid UTF-8
 * as jansson checks them. A syntax check: nothing is read.
 */
bool zn_json_valid(const char *text, size_t len, char open);

#endif
