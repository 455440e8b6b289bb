/*
 * fuzz_job.c - libFuzzer target for the job codec. Any input may be
 * refused, but none may crash or leak, and an accepted job must survive
 * the trip through its own encoding: the encoding parses again and
 * encodes to the same text (a fixed point). The second parse lifts the
 * payload limit: the limit is for what producers send, and an encoding
 * may be longer than its input (defaults filled in, numbers respelled).
 *
 * zn_job_parse reads plain JSON without jansson's tree (job_codec.c): the
 * tree reader alone must make the same job of every accepted input.
 */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "queue/job.h"

#define NOW_MS 1767323045000LL /* any fixed time keeps runs reproducible */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "fuzz_job: %s\n%s\n%s\n", what, a ? a : "",
            b ? b : "");
    abort();
}

static void
check_tree_reader(const uint8_t *data, size_t size,
                  const struct zn_job_limits *lim, const char *with_state)
{
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY,
                              NULL);
    struct zn_err err = {0, ""};
    struct zn_job *job = NULL;
    char *text;

    if (!root || zn_job_parse_json(root, lim, NOW_MS, &job, &err) < 0)
        die("the tree reader refuses an accepted job", with_state, err.msg);
    text = zn_job_encode(job, true);
    if (!text || strcmp(text, with_state) != 0)
        die("the tree reader makes another job", with_state, text);
    free(text);
    zn_job_free(job);
    json_decref(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zn_job_limits lim, unlimited;
    struct zn_job *job = NULL, *again = NULL;
    struct zn_err err = {0, ""};
    char *text, *text2, *with_state;

    zn_job_limits_default(&lim);
    if (zn_job_parse((const char *)data, size, &lim, NOW_MS, &job, &err) < 0)
        return 0;
    text = zn_job_encode(job, false);
    with_state = zn_job_encode(job, true);
    if (!text || !with_state)
        die("encode failed", NULL, NULL);
    check_tree_reader(data, size, &lim, with_state);
    unlimited = lim;
    unlimited.max_payload = SIZE_MAX;
    if (zn_job_parse(text, strlen(text), &unlimited, NOW_MS, &again,
                     &err) < 0)
        die("the encoding does not parse", text, err.msg);
    text2 = zn_job_encode(again, false);
    if (!text2 || strcmp(text, text2) != 0)
        die("the encoding changed on a second trip", text, text2);
    zn_job_free(again);
    again = NULL;
    if (zn_job_parse(with_state, strlen(with_state), &unlimited, NOW_MS,
                     &again, &err) < 0)
        die("the encoding with state does not parse", with_state,
            err.msg);
    zn_job_free(again);
    free(text2);
    free(with_state);
    free(text);
    zn_job_free(job);
    return 0;
}
