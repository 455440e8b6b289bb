/*
 * proto.c - the Faktory Work Protocol v2 as text: command lines, the JSON
 * arguments of HELLO, ACK, FAIL and BEAT, the password hash, addresses and
 * an incremental RESP reply reader.
 *
 * Everything here is a pure function of its input, and that input comes
 * from the network: any bytes, any length. Nothing is trusted to be
 * NUL-terminated, valid UTF-8 or small. Every refusal names the command and
 * the field, and any piece of the input quoted in a message is made
 * printable first, because messages travel back in "-ERR" lines where a
 * stray CR or LF would break the framing.
 *
 * Non-goals: reading or writing sockets (fwp/server.c, fwp/client.c) and
 * job payloads (queue/job_codec.c).
 */
#include "compat.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <jansson.h>
#include <sodium.h>

#include "common/json_plain.h"
#include "fwp/proto.h"
#include "queue/job.h"

#define QUOTE_MAX 48                 /* input bytes quoted in a message */
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)
#define HOSTNAME_MAX 255
#define LABELS_MAX 64
#define LABEL_MAX 255
#define FAIL_ERRTYPE_MAX 1024
#define FAIL_MESSAGE_MAX (64 * 1024)
#define FAIL_BACKTRACE_MAX (64 * 1024) /* its lines' bytes, all together */
#define RESP_LINE_MAX (1024 * 1024)
#define RESP_NUM_MAX 32              /* digits line of ':' and '$' */

static const char *const verb_names[ZN_FWP_VERB_COUNT] = {
    "HELLO", "PUSH", "PUSHB", "FETCH", "ACK", "FAIL",
    "BEAT", "INFO", "FLUSH", "QUEUE", "END", "MUTATE", "JOBS", "CONTROL",
};

/*
 * Makes n bytes of untrusted input safe to print: printable ASCII stays,
 * anything else becomes \xNN, and more than max bytes are cut with "...".
 */
static const char *
quote_max(const char *s, size_t n, size_t max, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i;

    for (i = 0; i < n && i < max && o + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
            continue;
        }
        buf[o++] = '\\';
        buf[o++] = 'x';
        buf[o++] = hex[c >> 4];
        buf[o++] = hex[c & 15];
    }
    if (i < n && o + 4 <= size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static const char *
quote(const char *s, size_t n, char *buf, size_t size)
{
    return quote_max(s, n, QUOTE_MAX, buf, size);
}

int
zn_fwp_json_error(const char *verb, const struct json_error_t *je,
                  struct zn_err *err)
{
    char q[JSON_ERROR_TEXT_LENGTH * 4 + 8];

    if (json_error_code(je) == json_error_out_of_memory)
        return zn_err_set(err, ZN_ENOMEM, "%s: out of memory", verb);
    quote_max(je->text, strlen(je->text), JSON_ERROR_TEXT_LENGTH, q,
              sizeof(q));
    if (je->line > 0)
        return zn_err_set(err, ZN_EPROTO,
                          "%s: invalid JSON at line %d column %d: %s", verb,
                          je->line, je->column, q);
    return zn_err_set(err, ZN_EPROTO, "%s: invalid JSON: %s", verb, q);
}

const char *
zn_fwp_verb_name(enum zn_fwp_verb v)
{
    return (unsigned)v < ZN_FWP_VERB_COUNT ? verb_names[v] : "UNKNOWN";
}

static int
find_verb(const char *s, size_t n)
{
    for (int i = 0; i < ZN_FWP_VERB_COUNT; i++)
        if (strlen(verb_names[i]) == n && memcmp(verb_names[i], s, n) == 0)
            return i;
    return -1;
}

static bool
verb_takes_arg(enum zn_fwp_verb v)
{
    return v != ZN_FWP_INFO && v != ZN_FWP_FLUSH && v != ZN_FWP_END;
}

/* Refuses a verb we do not know; says so when only its case is wrong. */
static int
unknown_verb(const char *s, size_t n, struct zn_err *err)
{
    char up[8];
    char q[QUOTE_BUF];
    int v = -1;

    if (n < sizeof(up)) {
        for (size_t i = 0; i < n; i++)
            up[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
        v = find_verb(up, n);
    }
    quote(s, n, q, sizeof(q));
    if (v >= 0)
        return zn_err_set(err, ZN_EPROTO,
                          "unknown command '%s' (commands are uppercase: %s)",
                          q, verb_names[v]);
    return zn_err_set(err, ZN_EPROTO, "unknown command '%s'", q);
}

static bool
all_spaces(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ')
            return false;
    return true;
}

int
zn_fwp_parse_line(const char *line, size_t len, struct zn_fwp_cmd *out,
                  struct zn_err *err)
{
    const char *sp;
    size_t vlen;
    int v;

    memset(out, 0, sizeof(*out));
    if (!line)
        len = 0;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return zn_err_set(err, ZN_EPROTO, "empty command");
    if (memchr(line, '\0', len))
        return zn_err_set(err, ZN_EPROTO, "command contains a NUL byte");
    /* One command per line: an inner CR or LF would smuggle in another. */
    if (memchr(line, '\n', len) || memchr(line, '\r', len))
        return zn_err_set(err, ZN_EPROTO, "command contains a line break");
    sp = memchr(line, ' ', len);
    vlen = sp ? (size_t)(sp - line) : len;
    v = find_verb(line, vlen);
    if (v < 0)
        return unknown_verb(line, vlen, err);
    out->verb = (enum zn_fwp_verb)v;
    /* Trailing blanks after the verb count as no argument at all. */
    if (!sp || all_spaces(sp + 1, len - vlen - 1)) {
        if (verb_takes_arg(out->verb))
            return zn_err_set(err, ZN_EPROTO, "%s: missing argument",
                              verb_names[v]);
        return 0;
    }
    if (!verb_takes_arg(out->verb))
        return zn_err_set(err, ZN_EPROTO, "%s: takes no argument",
                          verb_names[v]);
    out->arg = sp + 1;
    out->arg_len = len - vlen - 1;
    return 0;
}

void
zn_fwp_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        names[i] = NULL;
    }
}

int
zn_fwp_split_names(const char *s, size_t len, char **names, size_t max,
                   struct zn_err *err)
{
    char q[QUOTE_BUF];
    size_t count = 0;
    size_t i = 0;
    int rc;

    if (!s)
        len = 0;
    while (i < len) {
        size_t start;

        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        start = i;
        while (i < len && s[i] != ' ')
            i++;
        if (!zn_job_queue_name_valid(s + start, i - start)) {
            rc = zn_err_set(err, ZN_EINVAL,
                            "queue '%s': must match [A-Za-z0-9_.:-]{1,100}",
                            quote(s + start, i - start, q, sizeof(q)));
            goto fail;
        }
        if (count == max) {
            rc = zn_err_set(err, ZN_ETOOBIG, "too many queues (at most %zu)",
                            max);
            goto fail;
        }
        names[count] = malloc(i - start + 1);
        if (!names[count]) {
            rc = zn_err_set(err, ZN_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(names[count], s + start, i - start);
        names[count][i - start] = '\0';
        count++;
    }
    return (int)count;
fail:
    zn_fwp_names_free(names, count);
    return rc;
}

/* ---- JSON arguments ---------------------------------------------------- */

/*
 * Parses a command's JSON argument, which must be one object. Duplicate
 * keys are refused: two "jid"s would make the command mean what the
 * reader's parser happens to keep.
 */
static int
load_object(const char *verb, const char *json, size_t len, json_t **out,
            struct zn_err *err)
{
    json_error_t je;
    json_t *root;

    *out = NULL;
    root = json_loadb(json ? json : "", json ? len : 0,
                      JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return zn_fwp_json_error(verb, &je, err);
    if (!json_is_object(root)) {
        json_decref(root);
        return zn_err_set(err, ZN_EPROTO, "%s: argument must be a JSON object",
                          verb);
    }
    *out = root;
    return 0;
}

/* A field, or NULL when absent or null: Go clients send null for nil. */
static json_t *
field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_null(v) ? NULL : v;
}

/*
 * Copies an id field (jid or wid: 1..max printable bytes, no space) into
 * out. An absent field is an error when required, else leaves out empty.
 */
static int
get_id(const char *verb, json_t *obj, const char *key, bool required,
       char *out, size_t max, struct zn_err *err)
{
    json_t *v = field(obj, key);
    const char *s;
    size_t n;

    out[0] = '\0';
    if (!v) {
        if (required)
            return zn_err_set(err, ZN_EPROTO, "%s: %s is required", verb,
                              key);
        return 0;
    }
    if (!json_is_string(v))
        return zn_err_set(err, ZN_EPROTO, "%s: %s must be a string", verb,
                          key);
    s = json_string_value(v);
    n = json_string_length(v);
    if (n > max || !zn_job_jid_valid(s, n))
        return zn_err_set(err, ZN_EPROTO,
                          "%s: %s must be 1 to %zu printable characters "
                          "without spaces", verb, key, max);
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* Length of s cut to at most cap bytes without splitting a UTF-8 char. */
static size_t
utf8_cut(const char *s, size_t n, size_t cap)
{
    if (n <= cap)
        return n;
    n = cap;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/*
 * Duplicates an optional string field into *out (NULL when absent). Longer
 * than cap: truncated when truncate is set, refused otherwise.
 */
static int
get_text(const char *verb, json_t *obj, const char *key, size_t cap,
         bool truncate, char **out, struct zn_err *err)
{
    json_t *v = field(obj, key);
    size_t n;

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return zn_err_set(err, ZN_EPROTO, "%s: %s must be a string", verb,
                          key);
    n = json_string_length(v);
    if (n > cap && !truncate)
        return zn_err_set(err, ZN_EPROTO,
                          "%s: %s must be at most %zu bytes", verb, key, cap);
    n = utf8_cut(json_string_value(v), n, cap);
    *out = malloc(n + 1);
    if (!*out)
        return zn_err_set(err, ZN_ENOMEM, "%s: out of memory", verb);
    memcpy(*out, json_string_value(v), n);
    (*out)[n] = '\0';
    return 0;
}

/* An optional integer field >= min; *present says if it was there. */
static int
get_int(const char *verb, json_t *obj, const char *key, int64_t min,
        int64_t *out, bool *present, struct zn_err *err)
{
    json_t *v = field(obj, key);

    *present = false;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return zn_err_set(err, ZN_EPROTO, "%s: %s must be an integer", verb,
                          key);
    if (json_integer_value(v) < min)
        return zn_err_set(err, ZN_EPROTO, "%s: %s must be at least %" PRId64,
                          verb, key, min);
    *out = json_integer_value(v);
    *present = true;
    return 0;
}

static int
hello_version(json_t *obj, struct zn_fwp_hello *out, struct zn_err *err)
{
    json_t *v = field(obj, "v");

    if (!v)
        return zn_err_set(err, ZN_EPROTO, "HELLO: v is required");
    if (!json_is_integer(v))
        return zn_err_set(err, ZN_EPROTO, "HELLO: v must be an integer");
    if (json_integer_value(v) != 2)
        return zn_err_set(err, ZN_EPROTO,
                          "HELLO: protocol version %" PRId64
                          " is not supported, use 2",
                          (int64_t)json_integer_value(v));
    out->v = 2;
    return 0;
}

static int
hello_labels(json_t *obj, struct zn_fwp_hello *out, struct zn_err *err)
{
    json_t *arr = field(obj, "labels");
    size_t i;
    json_t *l;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return zn_err_set(err, ZN_EPROTO,
                          "HELLO: labels must be an array of strings");
    if (json_array_size(arr) > LABELS_MAX)
        return zn_err_set(err, ZN_EPROTO,
                          "HELLO: labels must have at most %d entries",
                          LABELS_MAX);
    if (json_array_size(arr) == 0)
        return 0;
    out->labels = calloc(json_array_size(arr), sizeof(*out->labels));
    if (!out->labels)
        return zn_err_set(err, ZN_ENOMEM, "HELLO: out of memory");
    json_array_foreach(arr, i, l) {
        if (!json_is_string(l) || json_string_length(l) > LABEL_MAX)
            return zn_err_set(err, ZN_EPROTO,
                              "HELLO: labels[%zu] must be a string of at "
                              "most %d bytes", i, LABEL_MAX);
        out->labels[i] = strdup(json_string_value(l));
        if (!out->labels[i])
            return zn_err_set(err, ZN_ENOMEM, "HELLO: out of memory");
        out->nlabels = i + 1;
    }
    return 0;
}

static int
hello_pwdhash(json_t *obj, struct zn_fwp_hello *out, struct zn_err *err)
{
    json_t *v = field(obj, "pwdhash");
    const char *s;

    if (!v)
        return 0;
    s = json_is_string(v) ? json_string_value(v) : "";
    if (json_string_length(v) != 64)
        goto bad;
    for (size_t i = 0; i < 64; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'F')
            c = (char)(c + 32);
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            goto bad;
        out->pwdhash[i] = c;
    }
    out->pwdhash[64] = '\0';
    return 0;
bad:
    sodium_memzero(out->pwdhash, sizeof(out->pwdhash));
    return zn_err_set(err, ZN_EPROTO,
                      "HELLO: pwdhash must be a string of 64 hex characters");
}

/*
 * A producer may send "wid":"" (some clients always send the key); that
 * means no wid, as the field being absent does.
 */
static int
hello_wid(json_t *obj, struct zn_fwp_hello *out, struct zn_err *err)
{
    json_t *v = field(obj, "wid");

    if (json_is_string(v) && json_string_length(v) == 0)
        return 0;
    return get_id("HELLO", obj, "wid", false, out->wid, ZN_FWP_WID_MAX, err);
}

int
zn_fwp_parse_hello(const char *json, size_t len, struct zn_fwp_hello *out,
                   struct zn_err *err)
{
    json_t *obj;
    bool has_pid;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = load_object("HELLO", json, len, &obj, err);
    if (rc < 0)
        return rc;
    rc = hello_version(obj, out, err);
    if (rc == 0)
        rc = hello_wid(obj, out, err);
    if (rc == 0)
        rc = get_text("HELLO", obj, "hostname", HOSTNAME_MAX, false,
                      &out->hostname, err);
    if (rc == 0)
        rc = get_int("HELLO", obj, "pid", 0, &out->pid, &has_pid, err);
    if (rc == 0)
        rc = hello_labels(obj, out, err);
    if (rc == 0)
        rc = hello_pwdhash(obj, out, err);
    json_decref(obj);
    if (rc < 0)
        zn_fwp_hello_release(out);
    return rc;
}

void
zn_fwp_hello_release(struct zn_fwp_hello *h)
{
    if (!h)
        return;
    free(h->hostname);
    for (size_t i = 0; i < h->nlabels; i++)
        free(h->labels[i]);
    free(h->labels);
    sodium_memzero(h, sizeof(*h));
}

/* The attempt's CPU time and peak RSS (zenith work's); absent: untouched. */
static int
get_usage(const char *verb, json_t *obj, int64_t *cpu_ms, int64_t *rss_kb,
          struct zn_err *err)
{
    bool present;
    int rc;

    rc = get_int(verb, obj, "cpu_ms", 0, cpu_ms, &present, err);
    if (rc == 0)
        rc = get_int(verb, obj, "rss_kb", 0, rss_kb, &present, err);
    return rc;
}

/*
 * What ACK and FAIL share: the object (*obj, for the caller to release
 * whatever the result), its jid and the attempt's usage.
 */
static int
parse_report(const char *verb, const char *json, size_t len, json_t **obj,
             char *jid, int64_t *cpu_ms, int64_t *rss_kb, struct zn_err *err)
{
    int rc;

    jid[0] = '\0';
    *cpu_ms = -1;
    *rss_kb = -1;
    rc = load_object(verb, json, len, obj, err);
    if (rc == 0)
        rc = get_id(verb, *obj, "jid", true, jid, ZN_JID_MAX, err);
    if (rc == 0)
        rc = get_usage(verb, *obj, cpu_ms, rss_kb, err);
    return rc;
}

/* As get_usage's field; false where it would fail. */
static bool
plain_usage(const struct zn_json_member *m, size_t n, const char *key,
            int64_t *out)
{
    const struct zn_json_val *v = zn_json_plain_get(m, n, key);

    if (!v)
        return true;
    if (v->type != ZN_JSON_PLAIN_INT || v->i < 0)
        return false;
    *out = v->i;
    return true;
}

/*
 * An ACK in plain JSON (common/json_plain.h) with a valid jid and usage,
 * read without jansson's tree. False for anything else, which
 * parse_report then reads and words.
 */
static bool
plain_ack(const char *json, size_t len, struct zn_fwp_ack *out)
{
    struct zn_json_member m[ZN_JSON_PLAIN_KEYS];
    const struct zn_json_val *jid;
    size_t n;

    if (!json || !zn_json_plain_object(json, len, m, &n))
        return false;
    jid = zn_json_plain_get(m, n, "jid");
    if (!jid || jid->type != ZN_JSON_PLAIN_STRING ||
        !zn_job_jid_valid(jid->p, jid->n))
        return false;
    out->cpu_ms = -1;
    out->rss_kb = -1;
    if (!plain_usage(m, n, "cpu_ms", &out->cpu_ms) ||
        !plain_usage(m, n, "rss_kb", &out->rss_kb))
        return false;
    memcpy(out->jid, jid->p, jid->n);
    out->jid[jid->n] = '\0';
    return true;
}

int
zn_fwp_parse_ack(const char *json, size_t len, struct zn_fwp_ack *out,
                 struct zn_err *err)
{
    json_t *obj = NULL;
    int rc;

    if (plain_ack(json, len, out))
        return 0;
    rc = parse_report("ACK", json, len, &obj, out->jid, &out->cpu_ms,
                      &out->rss_kb, err);

    json_decref(obj);
    return rc;
}

/*
 * The backtrace as compact JSON text: an array of strings. Its lines are
 * kept up to FAIL_BACKTRACE_MAX bytes in all, the line that crosses it
 * cut there, the rest dropped: as the message, cut and not refused, since
 * the failure must still be recorded, and a job keeps its last one.
 */
static int
fail_backtrace(json_t *obj, struct zn_fwp_fail *out, struct zn_err *err)
{
    json_t *arr = field(obj, "backtrace");
    json_t *kept, *l;
    size_t i, left = FAIL_BACKTRACE_MAX;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return zn_err_set(err, ZN_EPROTO,
                          "FAIL: backtrace must be an array of strings");
    kept = json_array();
    json_array_foreach(arr, i, l) {
        size_t full, n;

        if (!json_is_string(l)) {
            json_decref(kept);
            return zn_err_set(err, ZN_EPROTO,
                              "FAIL: backtrace[%zu] must be a string", i);
        }
        if (!kept || left == 0)
            continue;
        full = json_string_length(l);
        n = utf8_cut(json_string_value(l), full, left);
        left = n < full ? 0 : left - n; /* a line cut is the last one */
        if (json_array_append_new(kept, json_stringn(json_string_value(l),
                                                     n)) < 0) {
            json_decref(kept);
            kept = NULL;
        }
    }
    out->backtrace = kept ? json_dumps(kept, JSON_COMPACT) : NULL;
    json_decref(kept);
    if (!out->backtrace)
        return zn_err_set(err, ZN_ENOMEM, "FAIL: out of memory");
    return 0;
}

int
zn_fwp_parse_fail(const char *json, size_t len, struct zn_fwp_fail *out,
                  struct zn_err *err)
{
    json_t *obj = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = parse_report("FAIL", json, len, &obj, out->jid, &out->cpu_ms,
                      &out->rss_kb, err);
    /* Long texts are cut, not refused: the failure must still be recorded. */
    if (rc == 0)
        rc = get_text("FAIL", obj, "errtype", FAIL_ERRTYPE_MAX, true,
                      &out->errtype, err);
    if (rc == 0)
        rc = get_text("FAIL", obj, "message", FAIL_MESSAGE_MAX, true,
                      &out->message, err);
    if (rc == 0)
        rc = fail_backtrace(obj, out, err);
    json_decref(obj);
    if (rc < 0)
        zn_fwp_fail_release(out);
    return rc;
}

void
zn_fwp_fail_release(struct zn_fwp_fail *f)
{
    if (!f)
        return;
    free(f->errtype);
    free(f->message);
    free(f->backtrace);
    memset(f, 0, sizeof(*f));
}

static int
beat_state(json_t *obj, struct zn_fwp_beat *out, struct zn_err *err)
{
    static const char *const states[] = {"", "quiet", "terminate"};
    json_t *v = field(obj, "current_state");
    char q[QUOTE_BUF];

    if (!v)
        return 0;
    if (!json_is_string(v))
        return zn_err_set(err, ZN_EPROTO,
                          "BEAT: current_state must be a string");
    for (size_t i = 0; i < ZN_ARRAY_LEN(states); i++) {
        if (strcmp(json_string_value(v), states[i]) == 0) {
            memcpy(out->current_state, states[i], strlen(states[i]) + 1);
            return 0;
        }
    }
    quote(json_string_value(v), json_string_length(v), q, sizeof(q));
    return zn_err_set(err, ZN_EPROTO,
                      "BEAT: current_state '%s' is not one of \"\", "
                      "\"quiet\", \"terminate\"", q);
}

int
zn_fwp_parse_beat(const char *json, size_t len, struct zn_fwp_beat *out,
                  struct zn_err *err)
{
    bool has_rss;
    json_t *obj;
    int rc;

    memset(out, 0, sizeof(*out));
    out->rss_kb = -1;
    rc = load_object("BEAT", json, len, &obj, err);
    if (rc < 0)
        return rc;
    rc = get_id("BEAT", obj, "wid", true, out->wid, ZN_FWP_WID_MAX, err);
    if (rc == 0)
        rc = beat_state(obj, out, err);
    if (rc == 0)
        rc = get_int("BEAT", obj, "rss_kb", 0, &out->rss_kb, &has_rss, err);
    json_decref(obj);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
        out->rss_kb = -1;
    }
    return rc;
}

/* ---- password hash ----------------------------------------------------- */

void
zn_fwp_pwdhash(const char *password, const char *salt, int iterations,
               char *out)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    unsigned char next[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;

    if (!password)
        password = "";
    if (!salt)
        salt = "";
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)password,
                              strlen(password));
    crypto_hash_sha256_update(&st, (const unsigned char *)salt, strlen(salt));
    crypto_hash_sha256_final(&st, digest);
    for (int i = 1; i < iterations; i++) {
        crypto_hash_sha256(next, digest, sizeof(digest));
        memcpy(digest, next, sizeof(digest));
    }
    sodium_bin2hex(out, 65, digest, sizeof(digest));
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(digest, sizeof(digest));
    sodium_memzero(next, sizeof(next));
}

bool
zn_fwp_hash_equal(const char *a, const char *b)
{
    size_t n;

    if (!a || !b)
        return false;
    /* Lengths are public (always 64); only the contents must not leak. */
    n = strlen(a);
    if (n == 0 || n != strlen(b))
        return false;
    return sodium_memcmp(a, b, n) == 0;
}

/* ---- addresses --------------------------------------------------------- */

static int
bad_addr(const char *s, const char *why, struct zn_err *err)
{
    char q[QUOTE_BUF];

    return zn_err_set(err, ZN_EINVAL, "bad address '%s': %s",
                      quote(s, strlen(s), q, sizeof(q)), why);
}

/* A port: 1 to 5 digits, 0..65535 (0 asks a server for any free port). */
static int
parse_port(const char *p, int *out)
{
    size_t n = strlen(p);
    int v = 0;

    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = v;
    return 0;
}

static bool
host_char(char c, bool v6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
        return true;
    return v6 && (c == ':' || c == '%');
}

static int
parse_unix(const char *s, const char *path, struct zn_fwp_addr *out,
           struct zn_err *err)
{
    size_t n = strlen(path);

    if (n == 0)
        return bad_addr(s, "empty socket path", err);
    if (n >= sizeof(out->path) ||
        n >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return bad_addr(s, "socket path is too long", err);
    out->is_unix = true;
    memcpy(out->path, path, n + 1);
    return 0;
}

static int
parse_tcp(const char *s, const char *h, struct zn_fwp_addr *out,
          struct zn_err *err)
{
    const char *port = NULL;
    const char *end;
    bool v6 = h[0] == '[';
    size_t n;

    if (v6) {
        end = strchr(h, ']');
        if (!end)
            return bad_addr(s, "missing ']'", err);
        h++;
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != '\0')
            return bad_addr(s, "expected ':port' after ']'", err);
    } else {
        end = strchr(h, ':');
        if (end && strchr(end + 1, ':'))
            return bad_addr(s, "IPv6 addresses need brackets, as [::1]:7419",
                            err);
        port = end ? end + 1 : NULL;
        end = end ? end : h + strlen(h);
    }
    n = (size_t)(end - h);
    if (n == 0)
        return bad_addr(s, "missing host", err);
    if (n >= sizeof(out->host))
        return bad_addr(s, "host name is too long", err);
    for (size_t i = 0; i < n; i++)
        if (!host_char(h[i], v6))
            return bad_addr(s, "invalid character in host", err);
    out->port = ZN_FWP_DEFAULT_PORT;
    if (port && parse_port(port, &out->port) < 0)
        return bad_addr(s, "port must be a number from 0 to 65535", err);
    memcpy(out->host, h, n);
    out->host[n] = '\0';
    return 0;
}

int
zn_fwp_parse_addr(const char *s, struct zn_fwp_addr *out, struct zn_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!s || !*s)
        return zn_err_set(err, ZN_EINVAL, "bad address '': empty");
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix(s, s + 5, out, err);
    if (s[0] == '/')
        return parse_unix(s, s, out, err);
    if (strncmp(s, "tcp://", 6) == 0)
        return parse_tcp(s, s + 6, out, err);
    return parse_tcp(s, s, out, err);
}

/* ---- RESP replies ------------------------------------------------------ */

/*
 * Finds the CRLF that ends the line starting at buf[1]. Returns the offset
 * of its CR, 0 when more bytes are needed, or ZN_EPROTO.
 */
static int64_t
resp_line_end(const char *buf, size_t len, size_t max, struct zn_err *err)
{
    size_t scan = len - 1 < max + 2 ? len - 1 : max + 2;
    const char *lf = memchr(buf + 1, '\n', scan);
    size_t at;

    if (!lf) {
        if (scan == max + 2)
            return zn_err_set(err, ZN_EPROTO, "reply: line of more than "
                              "%zu bytes", max);
        return 0;
    }
    at = (size_t)(lf - buf);
    if (at < 2 || buf[at - 1] != '\r')
        return zn_err_set(err, ZN_EPROTO, "reply: line does not end in CRLF");
    if (at - 2 > max)
        return zn_err_set(err, ZN_EPROTO, "reply: line of more than %zu bytes",
                          max);
    return (int64_t)(at - 1);
}

static int
resp_copy(const char *p, size_t n, struct zn_resp_reply *out,
          struct zn_err *err)
{
    out->data = malloc(n + 1);
    if (!out->data)
        return zn_err_set(err, ZN_ENOMEM, "reply: out of memory");
    memcpy(out->data, p, n);
    out->data[n] = '\0';
    out->len = n;
    return 0;
}

static bool
all_digits(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* "$N\r\n<N bytes>\r\n" or "$-1\r\n"; hdr is the offset of the first CR. */
static int
resp_bulk(const char *buf, size_t len, size_t hdr, size_t max_bulk,
          struct zn_resp_reply *out, size_t *consumed, struct zn_err *err)
{
    const char *num = buf + 1;
    size_t digits = hdr - 1;
    size_t n = 0;
    bool over = false;

    if (digits == 2 && memcmp(num, "-1", 2) == 0) {
        *consumed = hdr + 2;
        return 1;
    }
    if (!all_digits(num, digits))
        return zn_err_set(err, ZN_EPROTO, "reply: bad bulk length");
    for (size_t i = 0; i < digits && !over; i++) {
        size_t d = (size_t)(num[i] - '0');

        /* Checked before multiplying, so no length can wrap around. */
        over = n > max_bulk / 10 || d > max_bulk - n * 10;
        n = n * 10 + d;
    }
    if (over)
        return zn_err_set(err, ZN_EPROTO,
                          "reply: bulk of %.*s bytes is over the limit",
                          (int)digits, num);
    if (len - (hdr + 2) < n || len - (hdr + 2) - n < 2)
        return 0;
    if (buf[hdr + 2 + n] != '\r' || buf[hdr + 3 + n] != '\n')
        return zn_err_set(err, ZN_EPROTO, "reply: bulk does not end in CRLF");
    if (resp_copy(buf + hdr + 2, n, out, err) < 0)
        return ZN_ENOMEM;
    *consumed = hdr + 4 + n;
    return 1;
}

int
zn_resp_parse(const char *buf, size_t len, size_t max_bulk,
              struct zn_resp_reply *out, size_t *consumed,
              struct zn_err *err)
{
    char q[QUOTE_BUF];
    int64_t end;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    if (!buf || len == 0)
        return 0;
    out->type = buf[0];
    switch (buf[0]) {
    case '+':
    case '-':
        end = resp_line_end(buf, len, RESP_LINE_MAX, err);
        break;
    case '$':
    case ':':
        end = resp_line_end(buf, len, RESP_NUM_MAX, err);
        break;
    default:
        out->type = 0;
        return zn_err_set(err, ZN_EPROTO, "reply: unexpected type byte '%s'",
                          quote(buf, 1, q, sizeof(q)));
    }
    if (end <= 0) {
        out->type = end < 0 ? 0 : out->type;
        return (int)end;
    }
    n = (size_t)end - 1;
    if (buf[0] == '$')
        rc = resp_bulk(buf, len, (size_t)end, max_bulk, out, consumed, err);
    else if (memchr(buf + 1, '\0', n))
        rc = zn_err_set(err, ZN_EPROTO, "reply: line contains a NUL byte");
    else if (buf[0] == ':' && !(all_digits(buf + 1, n) ||
                                (n > 1 && buf[1] == '-' &&
                                 all_digits(buf + 2, n - 1))))
        rc = zn_err_set(err, ZN_EPROTO, "reply: bad integer");
    else if (resp_copy(buf + 1, n, out, err) < 0)
        rc = ZN_ENOMEM;
    else {
        *consumed = (size_t)end + 2;
        rc = 1;
    }
    if (rc <= 0)
        memset(out, 0, sizeof(*out));
    return rc;
}
