/*
 * httpd.c - the tests' one-request HTTP server (see httpd.h).
 */
#include "compat.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"

/* True once the request's headers and Content-Length bytes are in. */
static bool
request_complete(const struct zn_test_httpd *d)
{
    const char *end = strstr(d->request, "\r\n\r\n");
    const char *cl = strstr(d->request, "Content-Length: ");

    if (!end)
        return false;
    return !cl || d->len >= (size_t)(end + 4 - d->request) +
                                (size_t)strtol(cl + 16, NULL, 10);
}

static void *
httpd_main(void *arg)
{
    struct zn_test_httpd *d = arg;
    char reply[1024];
    int fd = accept(d->lfd, NULL, NULL);
    ssize_t n;

    if (fd < 0)
        return NULL;
    while (!request_complete(d) && d->len + 1 < sizeof(d->request)) {
        n = recv(fd, d->request + d->len, sizeof(d->request) - d->len - 1, 0);
        if (n <= 0)
            break;
        d->len += (size_t)n;
        d->request[d->len] = '\0';
    }
    if (d->status) {
        snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: "
                 "%zu\r\nConnection: close\r\n\r\n", d->status,
                 strlen(d->body));
        send(fd, reply, strlen(reply), MSG_NOSIGNAL);
        send(fd, d->body, strlen(d->body), MSG_NOSIGNAL);
    } else {
        /* Silent: wait for the client to give up and close. */
        char c;

        while (recv(fd, &c, 1, 0) > 0)
            ;
    }
    close(fd);
    return NULL;
}

void
zn_test_httpd_start(struct zn_test_httpd *d, int status, const char *body)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);

    memset(d, 0, sizeof(*d));
    d->status = status;
    d->body = body;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(d->lfd >= 0);
    assert_int_equal(bind(d->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(d->lfd, 4), 0);
    assert_int_equal(getsockname(d->lfd, (struct sockaddr *)&sin, &sl), 0);
    d->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&d->th, NULL, httpd_main, d), 0);
}

void
zn_test_httpd_join(struct zn_test_httpd *d)
{
    pthread_join(d->th, NULL);
    close(d->lfd);
}
