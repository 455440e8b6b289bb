/*
 * webhook.c - the `webhook` handler (see webhook.h for the contract).
 *
 * One easy handle per request: a worker runs one job at a time, and
 * connection reuse across jobs would keep a socket to every webhook host
 * open between jobs for little gain. CURLOPT_NOSIGNAL because the worker
 * is threaded (curl must not use alarm() for DNS timeouts).
 */
#include "compat.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "worker/webhook.h"

struct reply_body {
    char text[ZN_WEBHOOK_BODY_EXCERPT + 1];
    size_t len;
};

int
zn_webhook_global_init(struct zn_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return zn_err_set(err, ZN_EIO, "cannot initialise libcurl");
    return 0;
}

void
zn_webhook_global_cleanup(void)
{
    curl_global_cleanup();
}

bool
zn_webhook_url_valid(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    bool ok = false;

    if (!u)
        return false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
        ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

/* Keeps the first bytes of the reply body; takes (and drops) the rest. */
static size_t
body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct reply_body *b = userdata;
    size_t n = size * nmemb;

    for (size_t i = 0; i < n && b->len < ZN_WEBHOOK_BODY_EXCERPT; i++)
        b->text[b->len++] = ptr[i] ? ptr[i] : '?';
    b->text[b->len] = '\0';
    return n;
}

/* Non-zero aborts the transfer: the worker was told to terminate. */
static int
progress_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
            curl_off_t ultotal, curl_off_t ulnow)
{
    const struct zn_handler_job *job = clientp;
    struct pollfd p = {.fd = job->cancel_fd, .events = POLLIN};

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return job->cancel_fd >= 0 && poll(&p, 1, 0) > 0;
}

static void
http_result(CURL *e, const struct reply_body *body,
            struct zn_handler_result *res)
{
    char type[ZN_HANDLER_ERRTYPE_MAX];
    long status = 0;

    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status <= 299) {
        zn_handler_ok(res);
        return;
    }
    snprintf(type, sizeof(type), "http %ld", status);
    zn_handler_fail(res, type, "HTTP %ld%s%s", status, body->len ? ": " : "",
                    body->text);
}

static void
set_options(CURL *e, const struct zn_handler *h,
            const struct zn_handler_job *job, struct curl_slist *headers,
            struct reply_body *body, char *errbuf)
{
    int64_t left = job->deadline_ms - zn_clock_mono_ms();

    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, job->json);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->json_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "zenith-worker");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left > 0 ? left : 1));
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)job);
}

int
zn_webhook_run(const struct zn_handler *h, const struct zn_handler_job *job,
               struct zn_handler_result *res, struct zn_err *err)
{
    char errbuf[CURL_ERROR_SIZE] = "", jid_header[128];
    struct reply_body body = {.len = 0};
    struct curl_slist *headers = NULL, *more;
    CURL *e = curl_easy_init();
    CURLcode code;

    snprintf(jid_header, sizeof(jid_header), "X-Zenith-Jid: %s", job->jid);
    headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before a large body. */
    more = headers ? curl_slist_append(headers, "Expect:") : NULL;
    more = more ? curl_slist_append(more, jid_header) : NULL;
    if (!e || !more) {
        curl_slist_free_all(headers);
        curl_easy_cleanup(e);
        return zn_err_set(err, ZN_ENOMEM, "out of memory");
    }
    set_options(e, h, job, headers, &body, errbuf);
    code = curl_easy_perform(e);
    if (code == CURLE_OK)
        http_result(e, &body, res);
    else if (code == CURLE_OPERATION_TIMEDOUT)
        zn_handler_fail(res, "timeout", "job ran past its timeout of %d s",
                        job->timeout_s);
    else if (code == CURLE_ABORTED_BY_CALLBACK)
        zn_handler_fail(res, "terminated", "the worker was told to "
                        "terminate while the job ran");
    else
        /* Not the URL: webhook URLs often carry a token. */
        zn_handler_fail(res, "webhook error", "%s",
                        errbuf[0] ? errbuf : curl_easy_strerror(code));
    curl_slist_free_all(headers);
    curl_easy_cleanup(e);
    return 0;
}
