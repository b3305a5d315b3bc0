/* The wire: one libcurl transfer with retries, and a batch over curl_multi.
 * No Lua types here; callers hand in plain C requests and read plain C responses. */
#ifndef ALLOY_HTTP_H
#define ALLOY_HTTP_H

#include <curl/curl.h>
#include <signal.h>
#include "curl_api.h"
#include "buf.h"

typedef struct http_conf {
  long timeout_ms;
  long connect_timeout_ms;
  int retries;
  double backoff;         /* seconds: base of the exponential backoff */
  double retry_max_wait;  /* seconds: cap on any single wait, Retry-After included */
  size_t max_body;
  const char *ca_file;
  const char *proxy;
  int insecure;
  int debug;
  const char *secret;     /* never printed: replaced in debug output */
  char **also_secret;     /* more values masked the same way (client:add_secret) */
  size_t also_count;
} http_conf;

/* Masks the values of conf->also_secret in text (in place): after the key's own redaction,
 * for what the module prints (debug lines, failure messages). */
void http_redact_also(const http_conf *conf, abuf *text);
/* --verbose: libcurl's debug text of `type` ("* ", "> ", "< ", or NULL: not shown), printed
 * line by line with credential headers replaced and every other line through `mask`. */
typedef void (*http_line_mask)(const void *ctx, abuf *out, const char *s, size_t n);
const char *http_debug_prefix(curl_infotype type);
void http_debug_lines(const char *prefix, const char *data, size_t size, http_line_mask mask, const void *ctx);

typedef struct http_request {
  const char *method;
  const char *url;
  const char *body;  /* NULL: no body */
  size_t body_len;
  struct curl_slist *headers;
  int retry_unsent; /* retried only when surely not acted on (ops.h, RETRY_UNSENT) */
} http_request;

typedef struct http_response {
  long status;
  CURLcode curl_code;
  int too_large;
  int transport_failed; /* a Lua transport failed; errbuf says why */
  int attempts;
  double retry_after; /* the last answer's Retry-After in seconds, or -1 for none */
  double total_time;
  abuf body;
  abuf headers;  /* raw header block of the last response */
  char errbuf[CURL_ERROR_SIZE];
} http_response;

/* One reusable easy handle and its buffers. */
typedef struct http_transfer {
  CURL *easy;
  const http_conf *conf;
  http_response res;
  abuf last_url;    /* what CURLOPT_URL holds, so an unchanged URL is not set again */
  int last_was_get; /* the handle is already set for a plain GET */
  /* Batch bookkeeping. */
  http_request req; /* the request this transfer runs */
  double retry_at;
  double sent_at; /* when its last attempt was put on the wire */
  int on_wire;    /* an attempt of its request went out: the server may have acted */
  sig_atomic_t sigint_mark; /* the SIGINT count when its call began: a new one aborts it */
} http_transfer;

/* Creates t's easy handle with conf's settings (libcurl must be loaded); -1 on failure. */
int http_transfer_init(http_transfer *t, const http_conf *conf);
void http_transfer_free(http_transfer *t);

/* Ctrl-C while a call blocks: between the first hold and the last release (counted, any
 * thread), a SIGINT stops transfers and waits at once, then reaches the handler the process
 * had (lua.c's, a host's); with none (SIG_DFL) or SIG_IGN nothing changes. A stopped request
 * fails with CURLE_ABORTED_BY_CALLBACK and errbuf "interrupted". http_perform holds it
 * itself; a caller of http_batch holds it (its callbacks may raise past a release). */
void http_sigint_hold(void);
void http_sigint_release(void);
/* SIGINTs taken so far: a call compares it with the count when it began. */
sig_atomic_t http_sigint_count(void);

/* Whether a request of this method (and retry policy, ops.h) is sent again after an attempt
 * that ended with code, or with HTTP status (code CURLE_OK), with or without a Retry-After:
 * the one rule, also shown to Lua (alloy.operations[op].retried). */
int http_retryable(const char *method, int retry_unsent, CURLcode code, long status, int has_retry_after);

/* Runs req to completion, retrying as the policy allows. Returns res.curl_code. */
CURLcode http_perform(http_transfer *t, const http_request *req);

/* The steps of a request that http_perform, http_batch and a request driven by the host's
 * event loop (loop.c) share, so that all three retry, wait, limit and fail alike:
 * http_begin before the first attempt (mark: the SIGINT count a new one is told by);
 * http_multi_add puts an attempt at req on multi handle m; http_attempt_done records how an
 * attempt ended and returns the seconds to wait before the next one (Retry-After, capped, or
 * the backoff), or -1 when there is none and t->res is the answer. */
void http_begin(http_transfer *t, sig_atomic_t mark);
void http_multi_add(CURLM *m, http_transfer *t, const http_request *req);
double http_attempt_done(http_transfer *t, const http_request *req, CURLcode code);
/* Seconds on the monotonic clock the waits are measured with. */
double http_now(void);
/* The wait before attempt+1: retry_after (>= 0) capped, or the exponential backoff. */
double http_backoff(const http_conf *conf, int attempt, double retry_after);
/* Whether a SIGINT came since the count was mark. */
int http_interrupted(sig_atomic_t mark);

/* http_batch.c: a batch over curl_multi m, one request in flight per pooled transfer.
 * start(ud, t) gives an idle transfer its next request (sets t->req): HTTP_STARTED,
 * HTTP_NO_MORE, HTTP_WAIT (none now: ask again once a request has finished) or HTTP_STOP.
 * done(ud, t) is called when t's request has finished, retries included (from this loop,
 * never from inside libcurl; t->res is only valid during the call): 0, or HTTP_STOP.
 * A 429 is about the host, not the request: every request to that host waits for the pause
 * it asked for (Retry-After, else a backoff the host's refusals grow), and once the host has
 * refused as many rounds in a row as a request may be retried, what is left for it fails
 * without being sent (a 429 whose body says so). scratch holds 2 * pool_size pointers.
 * Returns 0; 1 when stopped, 2 when a SIGINT stopped it, with the unfinished transfers still
 * on m; 3 when start waited with nothing in flight; -1 when curl_multi failed. */
enum { HTTP_STARTED, HTTP_NO_MORE, HTTP_STOP, HTTP_WAIT };
typedef int (*http_start_fn)(void *ud, http_transfer *t);
typedef int (*http_done_fn)(void *ud, http_transfer *t);
int http_batch(CURLM *m, http_transfer **pool, size_t pool_size, http_transfer **scratch,
               http_start_fn start, http_done_fn done, void *ud);
void http_response_free(http_response *r);
/* Warns on stderr, before requests are sent, when conf disables certificate checks. */
void http_warn_insecure(const http_conf *conf);

#endif
