/*
 * fuzz_fwp_line.c - libFuzzer target for the FWP text layer. The input is
 * read three ways: as a command line (then as its verb's argument: HELLO,
 * ACK, FAIL, BEAT, or FETCH/QUEUE's queue list), as a stream of RESP
 * replies, and, NUL-terminated, as an address. Everything parsed is freed,
 * so a leak shows up as a finding too.
 *
 * ACK is read without jansson's tree when it is plain JSON (proto.c),
 * FAIL always with it: on what the two share, jid and usage, they must
 * agree.
 */
#include "compat.h"

#include <stdlib.h>
#include <string.h>

#include "fwp/proto.h"
#include "queue/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_ack(const struct zn_fwp_cmd *cmd)
{
    struct zn_err err, ferr;
    struct zn_fwp_ack ack;
    struct zn_fwp_fail f;
    int a = zn_fwp_parse_ack(cmd->arg, cmd->arg_len, &ack, &err);
    int b = zn_fwp_parse_fail(cmd->arg, cmd->arg_len, &f, &ferr);

    if (b == 0 && (a != 0 || strcmp(ack.jid, f.jid) != 0 ||
                   ack.cpu_ms != f.cpu_ms || ack.rss_kb != f.rss_kb))
        abort();
    /*
     * FAIL alone reads errtype, message and backtrace: its messages for
     * them (proto.c) name the field, and this check relies on that.
     */
    if (a == 0 && b != 0 && !strstr(ferr.msg, "errtype") &&
        !strstr(ferr.msg, "message") && !strstr(ferr.msg, "backtrace") &&
        !strstr(ferr.msg, "out of memory"))
        abort();
    if (b == 0)
        zn_fwp_fail_release(&f);
}

static void
fuzz_argument(const struct zn_fwp_cmd *cmd)
{
    struct zn_err err;
    struct zn_fwp_hello h;
    struct zn_fwp_fail f;
    struct zn_fwp_beat b;
    char *names[8];
    int n;

    switch (cmd->verb) {
    case ZN_FWP_HELLO:
        zn_fwp_parse_hello(cmd->arg, cmd->arg_len, &h, &err);
        zn_fwp_hello_release(&h);
        break;
    case ZN_FWP_ACK:
        check_ack(cmd);
        break;
    case ZN_FWP_FAIL:
        zn_fwp_parse_fail(cmd->arg, cmd->arg_len, &f, &err);
        zn_fwp_fail_release(&f);
        break;
    case ZN_FWP_BEAT:
        zn_fwp_parse_beat(cmd->arg, cmd->arg_len, &b, &err);
        break;
    case ZN_FWP_FETCH:
    case ZN_FWP_QUEUE:
        n = zn_fwp_split_names(cmd->arg, cmd->arg_len, names,
                               ZN_ARRAY_LEN(names), &err);
        if (n > 0)
            zn_fwp_names_free(names, (size_t)n);
        break;
    default:
        break;
    }
}

/* Reads replies one after another, as the client does from its buffer. */
static void
fuzz_replies(const char *buf, size_t len)
{
    while (len > 0) {
        struct zn_resp_reply r;
        struct zn_err err;
        size_t used = 0;

        if (zn_resp_parse(buf, len, 4096, &r, &used, &err) != 1)
            break;
        free(r.data);
        if (used == 0 || used > len)
            abort();
        buf += used;
        len -= used;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct zn_fwp_cmd cmd;
    struct zn_fwp_addr a;
    struct zn_err err;
    char *s;

    if (zn_fwp_parse_line(in, size, &cmd, &err) == 0)
        fuzz_argument(&cmd);
    fuzz_replies(in, size);
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    zn_fwp_parse_addr(s, &a, &err);
    free(s);
    return 0;
}
