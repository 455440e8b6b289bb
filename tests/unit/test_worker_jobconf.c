/*
 * test_worker_jobconf.c - the [job "NAME"] sections of the config file:
 * what a good file declares, and bad files as data (file text, expected
 * "file:line: message"). Each case writes its file into a fresh mkdtemp
 * directory.
 */
#include "compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/handler.h"
#include "worker/jobconf.h"

struct fx {
    char dir[64];
    char path[128];
    struct zn_handler_registry reg;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/zn-jobconf-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/zenith.ini", f->dir);
    assert_int_equal(zn_handler_registry_init(&f->reg, NULL), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    zn_handler_registry_release(&f->reg);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int
load(struct fx *f, const char *text, struct zn_err *err)
{
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return zn_jobconf_load(&f->reg, f->path, err);
}

static void
test_worker_jobconf_good(void **state)
{
    struct fx *f = *state;
    const struct zn_handler *h;
    struct zn_err err;
    size_t builtins = f->reg.n;

    if (load(f, "; the server's own keys are not ours\n"
                "data = /var/lib/zenith\n"
                "[server]\n"
                "password = x\n"
                "\n"
                "[job \"resize-image\"]\n"
                "command = /usr/local/bin/resize --fast \"a b\"\n"
                "timeout = 120\n"
                "\n"
                "[supervisor \"mail\"]\n"
                "processes = 3\n"
                "\n"
                "[job \"notify-crm\"]\n"
                "url = https://crm.example/hooks/zenith?token=t\n"
                "[job \"noop\"]\n"
                "command = /bin/true\n"
                "timeout = 2m\n", &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(f->reg.n, builtins + 2);
    h = zn_handler_find(&f->reg, "resize-image");
    assert_non_null(h);
    assert_int_equal(h->kind, ZN_HANDLER_EXEC);
    assert_string_equal(h->argv[0], "/usr/local/bin/resize");
    assert_string_equal(h->argv[1], "--fast");
    assert_string_equal(h->argv[2], "a b");
    assert_null(h->argv[3]);
    assert_int_equal(h->timeout_s, 120);
    assert_int_equal(h->line, 6);
    h = zn_handler_find(&f->reg, "notify-crm");
    assert_int_equal(h->kind, ZN_HANDLER_WEBHOOK);
    assert_string_equal(h->url, "https://crm.example/hooks/zenith?token=t");
    assert_int_equal(h->timeout_s, 0);
    /* A built-in redefined by the config. */
    h = zn_handler_find(&f->reg, "noop");
    assert_int_equal(h->kind, ZN_HANDLER_EXEC);
    assert_int_equal(h->timeout_s, 120);
}

static void
test_worker_jobconf_errors(void **state)
{
    static const struct {
        const char *text;
        const char *msg; /* after "path:" */
    } cases[] = {
        {"[job \"a\"]\ncommand = /bin/true\nretries = 3\n",
         "3: job 'a': unknown key 'retries' (expected command, url or "
         "timeout)"},
        {"[job \"a\"]\ncommand = /bin/true\nurl = http://x/\n",
         "3: job 'a': url: the job already has a command (one of command "
         "or url, once)"},
        {"\n[job \"a\"]\ntimeout = 5\n[server]\ndata = x\n",
         "2: job 'a' needs a command or a url"},
        {"[job \"a\"]\ntimeout = 5\n",
         "1: job 'a' needs a command or a url"},
        {"[job \"a\"]\ncommand = /bin/true\ntimeout = soon\n",
         "3: job 'a': timeout: 'soon' is not a number of seconds from 1 to "
         "86400"},
        {"[job \"a\"]\ncommand = /bin/true\ntimeout = 0\n",
         "3: job 'a': timeout: '0' is not a number of seconds from 1 to "
         "86400"},
        {"[job \"a\"]\nurl = ftp://example.com/x\n",
         "2: job 'a': url: must be an http:// or https:// URL"},
        {"[job \"a\"]\ncommand = /bin/echo \"open\n",
         "2: job 'a': command: command has an unterminated double quote"},
        {"[job a]\ncommand = /bin/true\n",
         "1: section [job a]: expected [job \"NAME\"]"},
        {"[job \"\"]\ncommand = /bin/true\n",
         "1: section [job \"\"]: the job name must be 1 to 256 bytes"},
        {"[job \"a\"]\ncommand = /bin/true\n\n[job \"a\"]\nurl = http://x/\n",
         "4: job 'a' is declared twice (first at line 1)"},
        {"[server]\ndata = x\n[job \"a\"]\ncommand = /bin/sh -c \"echo "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
         "4: line too long: the limit is 199 bytes"},
        {"[job \"a\"]\ncommand = /bin/true\nthis line has no equals sign\n",
         "3: syntax error"},
    };

    for (size_t i = 0; i < ZN_ARRAY_LEN(cases); i++) {
        struct fx *f = *state;
        struct zn_err err;
        char want[512];
        int rc;

        zn_handler_registry_release(&f->reg);
        assert_int_equal(zn_handler_registry_init(&f->reg, NULL), 0);
        memset(&err, 0, sizeof(err));
        rc = load(f, cases[i].text, &err);
        snprintf(want, sizeof(want), "%s:%s", f->path, cases[i].msg);
        if (rc != ZN_EINVAL || strcmp(err.msg, want) != 0)
            fail_msg("case %zu: rc %d, got '%s', want '%s'", i, rc, err.msg,
                     want);
    }
}

static void
test_worker_jobconf_missing_file(void **state)
{
    struct fx *f = *state;
    struct zn_err err;
    char path[160];

    snprintf(path, sizeof(path), "%s/nope.ini", f->dir);
    assert_int_equal(zn_jobconf_load(&f->reg, path, &err), ZN_EINVAL);
    assert_non_null(strstr(err.msg, "nope.ini: cannot open: No such file"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_jobconf_good, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_jobconf_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_jobconf_missing_file,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
