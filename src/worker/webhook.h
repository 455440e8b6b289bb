/*
 * webhook.h - the `webhook` handler: POSTs the job's JSON to a configured
 * URL with libcurl. A 2xx reply is success; any other status fails the job as
 * "http N" with the status and the first 512 bytes of the body; a
 * transport error (refused, DNS, TLS) fails it as "webhook error" with
 * curl's message; the job's deadline bounds the whole request ("timeout").
 * Redirects are not followed: a webhook answers where it is configured.
 */
#ifndef ZN_WORKER_WEBHOOK_H
#define ZN_WORKER_WEBHOOK_H

#include "compat.h"

#include <stdbool.h>

#include "common/err.h"
#include "worker/handler.h"

#define ZN_WEBHOOK_BODY_EXCERPT 512

/*
 * libcurl's global set-up: call once, before any thread is started.
 * Returns 0 or ZN_EIO.
 */
int zn_webhook_global_init(struct zn_err *err);
void zn_webhook_global_cleanup(void);

/* True if url is an http:// or https:// URL curl accepts. */
bool zn_webhook_url_valid(const char *url);

/*
 * The handler (zn_handler_run_cb): one POST of job->json to h->url with
 * Content-Type application/json and X-Zenith-Jid, bounded by
 * job->deadline_ms, abandoned as "terminated" when job->cancel_fd becomes
 * readable. Blocks for the request. Returns a negative code only when
 * curl cannot be set up (memory).
 */
int zn_webhook_run(const struct zn_handler *h, const struct zn_handler_job *job,
                   struct zn_handler_result *res, struct zn_err *err);

#endif
