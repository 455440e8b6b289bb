/*
 * httpd.h - a one-request HTTP server on a loopback port, in a thread of
 * its own, for the tests of the webhook handler: it keeps the request it
 * got and answers it with a set status and body, or never answers.
 */
#ifndef ZN_TEST_HTTPD_H
#define ZN_TEST_HTTPD_H

#include "compat.h"

#include <pthread.h>
#include <stddef.h>

struct zn_test_httpd {
    int lfd;
    int port;
    pthread_t th;
    int status;          /* reply status; 0: never answer */
    const char *body;
    char request[16384]; /* what came in, headers and body */
    size_t len;
};

/* Listens on 127.0.0.1 (d->port) and serves one request in a thread. */
void zn_test_httpd_start(struct zn_test_httpd *d, int status,
                         const char *body);

/* Waits for that request to be served, then stops listening. */
void zn_test_httpd_join(struct zn_test_httpd *d);

#endif
