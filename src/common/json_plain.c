/*
 * json_plain.c - see json_plain.h.
 *
 * A recursive descent over the grammar of RFC 8259 that gives up (returns
 * false) at the first thing outside plain JSON; the same descent, in full
 * mode, checks any JSON (zn_json_valid). Strings are checked for
 * UTF-8 as jansson checks them (common/utf8.c); an integer of at most
 * DIGITS_MAX digits cannot overflow int64_t, so longer ones are left to
 * jansson, which refuses those that do.
 */
#include "compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_plain.h"
#include "common/log.h"
#include "common/utf8.h"

#define DIGITS_MAX 18

/*
 * full: any JSON (escapes, reals, any number of keys, repeated or not),
 * only checked (zn_json_valid): a number's value is not filled in. Else
 * plain JSON, read. max_depth: the deepest nesting.
 */
struct scan {
    const char *p, *end;
    int max_depth;
    bool full;
};

struct span {
    const char *p;
    size_t n;
};

static bool read_value(struct scan *s, int depth, struct zn_json_val *v);

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Skips whitespace; true when a byte is left to read. */
static bool
skip_space(struct scan *s)
{
    while (s->p < s->end && is_space(*s->p))
        s->p++;
    return s->p < s->end;
}

/* Length of the escape at p ("\n", "\u00e9"...), 0 when it is none. */
static size_t
escape_len(const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdefABCDEF";

    if (n < 2)
        return 0;
    if (p[1] != 'u')
        return p[1] && strchr("\"\\/bfnrt", p[1]) ? 2 : 0;
    for (size_t i = 2; i < 6; i++)
        if (i >= n || !p[i] || !strchr(hex, p[i]))
            return 0;
    return 6;
}

/* s->p is at the opening quote; escapes only when s->full. */
static bool
read_string(struct scan *s, struct zn_json_val *v)
{
    const unsigned char *p = (const unsigned char *)s->p + 1;
    const unsigned char *end = (const unsigned char *)s->end;
    size_t len;

    while (p < end) {
        if (*p == '"') {
            v->type = ZN_JSON_PLAIN_STRING;
            v->p = s->p + 1;
            v->n = (size_t)((const char *)p - v->p);
            s->p = (const char *)p + 1;
            return true;
        }
        if (*p < 0x20 || (*p == '\\' && !s->full))
            return false;
        if (*p == '\\')
            len = escape_len(p, (size_t)(end - p));
        else
            len = *p < 0x80 ? 1 : zn_utf8_len(p, (size_t)(end - p));
        if (len == 0)
            return false;
        p += len;
    }
    return false;
}

/* s->p is at '-' or a digit: plain mode's numbers. */
static bool
read_int(struct scan *s, struct zn_json_val *v)
{
    const char *p = s->p, *first;
    bool neg = *p == '-';
    int64_t i = 0;

    if (neg)
        p++;
    first = p;
    while (p < s->end && *p >= '0' && *p <= '9') {
        if (p - first == DIGITS_MAX)
            return false;
        i = i * 10 + (*p - '0');
        p++;
    }
    /* "-", leading zeros and "-0" (which jansson writes back as 0) */
    if (p == first || (*first == '0' && (p - first > 1 || neg)))
        return false;
    /* A real: jansson writes it back its own way. */
    if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E'))
        return false;
    v->type = ZN_JSON_PLAIN_INT;
    v->p = s->p;
    v->n = (size_t)(p - s->p);
    v->i = neg ? -i : i;
    s->p = p;
    return true;
}

/* s->p is at '-' or a digit: any JSON number (full mode). */
static bool
read_number(struct scan *s)
{
    const char *start;

    if (*s->p == '-')
        s->p++;
    start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    if (s->p == start || (*start == '0' && s->p - start > 1))
        return false;
    if (s->p < s->end && *s->p == '.') {
        start = ++s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
        if (s->p == start)
            return false;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        start = s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
        if (s->p == start)
            return false;
    }
    return true;
}

static bool
read_word(struct scan *s, const char *word, enum zn_json_plain_type type,
          struct zn_json_val *v)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    v->type = type;
    v->p = s->p;
    v->n = n;
    s->p += n;
    return true;
}

/*
 * s->p is at an opening bracket: steps over it. False when too deep or
 * cut short; *more unless the container is empty (then its close is
 * stepped over too).
 */
static bool
open_container(struct scan *s, int depth, char close, bool *more)
{
    s->p++;
    if (depth > s->max_depth || !skip_space(s))
        return false;
    *more = *s->p != close;
    if (!*more)
        s->p++;
    return true;
}

/*
 * After a member or an element: *more at ',', which a byte must follow,
 * not at close; both are stepped over. False at anything else.
 */
static bool
next_item(struct scan *s, char close, bool *more)
{
    if (!skip_space(s) || (*s->p != ',' && *s->p != close))
        return false;
    *more = *s->p++ == ',';
    return !*more || skip_space(s);
}

/*
 * s->p is at '{'. When m is not NULL the members go there (the top
 * level, plain mode). In plain mode every level checks its keys are
 * distinct and at most ZN_JSON_PLAIN_KEYS; full mode takes any keys.
 */
static bool
read_object(struct scan *s, int depth, struct zn_json_member *m, size_t *n,
            struct zn_json_val *v)
{
    struct span keys[ZN_JSON_PLAIN_KEYS];
    struct zn_json_val key, val;
    const char *start = s->p;
    size_t nkeys = 0;
    bool more;

    ZN_ASSERT(!m || !s->full);
    if (!open_container(s, depth, '}', &more))
        return false;
    while (more) {
        if (*s->p != '"' || !read_string(s, &key))
            return false;
        if (!s->full) {
            if (nkeys == ZN_JSON_PLAIN_KEYS)
                return false;
            for (size_t i = 0; i < nkeys; i++)
                if (keys[i].n == key.n &&
                    memcmp(keys[i].p, key.p, key.n) == 0)
                    return false;
            keys[nkeys++] = (struct span){key.p, key.n};
        }
        if (!skip_space(s) || *s->p++ != ':' || !skip_space(s) ||
            !read_value(s, depth, &val))
            return false;
        if (m)
            m[nkeys - 1] = (struct zn_json_member){key.p, key.n, val};
        if (!next_item(s, '}', &more))
            return false;
    }
    if (n)
        *n = nkeys;
    *v = (struct zn_json_val){ZN_JSON_PLAIN_OBJECT, start,
                              (size_t)(s->p - start), 0};
    return true;
}

/* A top-level array's elements, grown as they are read. */
struct list {
    struct zn_json_val *v;
    size_t n, cap;
};

static bool
list_add(struct list *l, const struct zn_json_val *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct zn_json_val *grown = realloc(l->v, cap * sizeof(*grown));

        if (!grown)
            return false;
        l->v = grown;
        l->cap = cap;
    }
    l->v[l->n++] = *v;
    return true;
}

/*
 * s->p is at '['. When out is not NULL the elements go there (the top
 * level), at most max of them.
 */
static bool
read_array(struct scan *s, int depth, struct list *out, size_t max,
           struct zn_json_val *v)
{
    struct zn_json_val elem;
    const char *start = s->p;
    size_t nelem = 0;
    bool more;

    if (!open_container(s, depth, ']', &more))
        return false;
    while (more) {
        if (!read_value(s, depth, &elem) || nelem++ == max ||
            (out && !list_add(out, &elem)) || !next_item(s, ']', &more))
            return false;
    }
    *v = (struct zn_json_val){ZN_JSON_PLAIN_ARRAY, start,
                              (size_t)(s->p - start), 0};
    return true;
}

/* s->p is at the value's first byte. */
static bool
read_value(struct scan *s, int depth, struct zn_json_val *v)
{
    switch (*s->p) {
    case '"':
        return read_string(s, v);
    case '{':
        return read_object(s, depth + 1, NULL, NULL, v);
    case '[':
        return read_array(s, depth + 1, NULL, SIZE_MAX, v);
    case 't':
        return read_word(s, "true", ZN_JSON_PLAIN_TRUE, v);
    case 'f':
        return read_word(s, "false", ZN_JSON_PLAIN_FALSE, v);
    case 'n':
        return read_word(s, "null", ZN_JSON_PLAIN_NULL, v);
    default:
        if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
            return false;
        return s->full ? read_number(s) : read_int(s, v);
    }
}

bool
zn_json_plain_object(const char *text, size_t len,
                     struct zn_json_member m[ZN_JSON_PLAIN_KEYS], size_t *n)
{
    struct scan s = {text, text + len, ZN_JSON_PLAIN_DEPTH, false};
    struct zn_json_val v;

    if (!skip_space(&s) || *s.p != '{' || !read_object(&s, 1, m, n, &v))
        return false;
    return !skip_space(&s);
}

bool
zn_json_plain_array(const char *text, size_t len, size_t max,
                    struct zn_json_val **out, size_t *n)
{
    struct scan s = {text, text + len, ZN_JSON_PLAIN_DEPTH, false};
    struct list l = {NULL, 0, 0};
    struct zn_json_val v;

    if (!skip_space(&s) || *s.p != '[' || !read_array(&s, 1, &l, max, &v) ||
        skip_space(&s)) {
        free(l.v);
        return false;
    }
    *out = l.v;
    *n = l.n;
    return true;
}

bool
zn_json_valid(const char *text, size_t len, char open)
{
    struct scan s = {text, text + len, ZN_JSON_DEPTH_MAX, true};
    struct zn_json_val v;

    if (!skip_space(&s) || *s.p != open || !read_value(&s, 0, &v))
        return false;
    return !skip_space(&s);
}

const struct zn_json_val *
zn_json_plain_get(const struct zn_json_member *m, size_t n, const char *key)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i < n; i++)
        if (m[i].klen == klen && memcmp(m[i].key, key, klen) == 0)
            return m[i].v.type == ZN_JSON_PLAIN_NULL ? NULL : &m[i].v;
    return NULL;
}

const char *
zn_json_plain_text(const struct zn_json_val *v, size_t *n)
{
    bool quoted = v->type == ZN_JSON_PLAIN_STRING;

    *n = v->n + (quoted ? 2 : 0);
    return quoted ? v->p - 1 : v->p;
}

size_t
zn_json_plain_compact(const struct zn_json_val *v, char *out)
{
    bool in_string = false;
    size_t n = 0;

    /* Plain strings hold no backslash: every quote opens or closes one. */
    for (size_t i = 0; i < v->n; i++) {
        if (v->p[i] == '"')
            in_string = !in_string;
        else if (!in_string && is_space(v->p[i]))
            continue;
        out[n++] = v->p[i];
    }
    out[n] = '\0';
    return n;
}
