#include "http.h"
#include "errors.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

double http_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Ctrl-C. Standalone interpreters (lua.c, luajit.c) catch SIGINT only to stop at the next
 * Lua instruction, which never comes while libcurl waits: between the first hold and the
 * last release, our handler counts each SIGINT, and transfers and waits stop at the next
 * count. The first is passed on to the handler it replaced at the last release: lua.c's
 * would stop the Lua a batch calls back (on_result, a requests function) halfway, before
 * every request is accounted for. A second one is passed on at once (a callback that never
 * ends can still be stopped). SIG_DFL (the process ends at once) and SIG_IGN (the host wants
 * no interruption) are left alone. */
static volatile sig_atomic_t sigint_seen;
static volatile sig_atomic_t sigint_held;    /* during this hold: 1 a SIGINT is held back, 2 passed on */
static pthread_mutex_t sigint_lock = PTHREAD_MUTEX_INITIALIZER;
static int sigint_holders;
static struct sigaction sigint_prev; /* the disposition ours replaced, or SIG_DFL */
static struct sigaction sigint_ours; /* ours: sigint_prev's mask and flags, our handler */
static int sigint_installed;         /* the first hold put ours in */
static int sigint_restored;          /* the last release put sigint_prev back */

static void on_sigint(int sig, siginfo_t *info, void *ctx) {
  sigint_seen++;
  if (sigint_held == 0) {
    sigint_held = 1;
    return;
  }
  sigint_held = 2;
  if (sigint_prev.sa_flags & SA_SIGINFO)
    sigint_prev.sa_sigaction(sig, info, ctx);
  else if (sigint_prev.sa_handler != SIG_DFL && sigint_prev.sa_handler != SIG_IGN)
    sigint_prev.sa_handler(sig);
}

static int is_ours(const struct sigaction *sa) {
  return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_sigint;
}

/* The bytes of sa_mask a sigaction() read fills: glibc copies back only the kernel's part
 * (64 signals, 8 bytes), the rest is what was on its stack. */
#ifdef __GLIBC__
#define SA_MASK_BYTES (sizeof(sigset_t) < 8 ? sizeof(sigset_t) : 8)
#else
#define SA_MASK_BYTES sizeof(sigset_t)
#endif

/* Whether a and b, both read back with sigaction() into zeroed structs, are the same
 * disposition. */
static int same_action(const struct sigaction *a, const struct sigaction *b) {
  return a->sa_flags == b->sa_flags && memcmp(&a->sa_mask, &b->sa_mask, SA_MASK_BYTES) == 0 &&
         ((a->sa_flags & SA_SIGINFO) ? a->sa_sigaction == b->sa_sigaction : a->sa_handler == b->sa_handler);
}

/* Puts ours in front of prev when prev handles SIGINT and is not ours already. */
static void install_over(const struct sigaction *prev) {
  int handled = (prev->sa_flags & SA_SIGINFO) ? prev->sa_sigaction != NULL
                                              : prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN;
  if (!handled || is_ours(prev)) return;
  sigint_prev = *prev;
  sigint_ours = *prev; /* its mask and flags */
  sigint_ours.sa_flags |= SA_SIGINFO;
  /* A blocking read in a batch's requests function (--each from a pipe or a terminal) ends
   * with EINTR instead of waiting on for input; poll and nanosleep see EINTR anyway. */
  sigint_ours.sa_flags &= ~SA_RESTART;
  /* Debian's lua5.3 sets its handler with SA_RESETHAND: ours would be gone after the first
   * SIGINT, and the release would take the SIG_DFL left for the host's choice. */
  sigint_ours.sa_flags &= ~SA_RESETHAND;
  sigint_ours.sa_sigaction = on_sigint;
  sigaction(SIGINT, &sigint_ours, NULL);
  sigint_installed = 1;
}

/* Each hold and release is one sigaction call (0.7 us here; a look then a change was four
 * calls a request, 5% of a sequential token request): where the last release put
 * sigint_prev back, the hold swaps ours in and checks that sigint_prev was still there, else
 * puts back what was (a SIGINT in that instant reaches the handler of before the change). */
void http_sigint_hold(void) {
  pthread_mutex_lock(&sigint_lock);
  if (sigint_holders++ == 0) {
    sigint_held = 0;
    struct sigaction prev;
    memset(&prev, 0, sizeof prev);
    int restored = sigint_restored;
    sigint_restored = 0;
    if (restored) {
      sigaction(SIGINT, &sigint_ours, &prev);
      if (same_action(&prev, &sigint_prev))
        sigint_installed = 1;
      else
        sigaction(SIGINT, &prev, NULL);
    } else {
      sigaction(SIGINT, NULL, &prev);
    }
    if (!sigint_installed) install_over(&prev);
  }
  pthread_mutex_unlock(&sigint_lock);
}

void http_sigint_release(void) {
  int pass_on = 0;
  pthread_mutex_lock(&sigint_lock);
  if (--sigint_holders == 0 && sigint_installed) {
    struct sigaction now;
    sigint_installed = 0;
    sigaction(SIGINT, &sigint_prev, &now);
    sigint_restored = is_ours(&now);
    /* Not ours any more: the handler we called replaced itself (lua.c: SIG_DFL, so that a
     * second Ctrl-C ends the process), or the host set another. That one stays. */
    if (!sigint_restored) sigaction(SIGINT, &now, NULL);
    /* The SIGINT held back goes to the host's handler now, in a signal's context: lua.c's
     * then stops the Lua after the call that held it, which has accounted for everything. */
    pass_on = sigint_held == 1 && sigint_restored;
    sigint_held = 0;
  }
  pthread_mutex_unlock(&sigint_lock);
  if (pass_on) raise(SIGINT);
}

sig_atomic_t http_sigint_count(void) { return sigint_seen; }

static int interrupted(sig_atomic_t mark) { return sigint_seen != mark; }
int http_interrupted(sig_atomic_t mark) { return interrupted(mark); }

/* libcurl's progress callback: nonzero aborts the transfer (CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  return interrupted(((const http_transfer *)ud)->sigint_mark);
}

/* Waits s seconds; returns nonzero, at once, when a SIGINT comes. In slices: one that comes
 * just before nanosleep starts does not interrupt it. */
static int sleep_seconds(double s, sig_atomic_t mark) {
  double end = http_now() + s;
  for (;;) {
    if (interrupted(mark)) return 1;
    double left = end - http_now();
    if (left <= 0) return 0;
    if (left > 0.2) left = 0.2;
    struct timespec ts;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(left * 1e9);
    nanosleep(&ts, NULL); /* EINTR: the loop looks again */
  }
}

/* Jitter only needs to spread clients apart, not to be unpredictable. */
static double jitter_unit(void) {
  static uint64_t state;
  if (state == 0) state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (double)(state >> 11) / 9007199254740992.0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  http_transfer *t = ud;
  size_t n = size * nmemb;
  if (t->res.body.len + n > t->conf->max_body) {
    t->res.too_large = 1;
    return 0;
  }
  return abuf_add(&t->res.body, ptr, n) == 0 ? n : 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  http_transfer *t = ud;
  size_t n = size * nmemb;
  /* A new status line starts a new response (100 Continue, proxies): keep only the last. */
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) abuf_clear(&t->res.headers);
  return abuf_add(&t->res.headers, ptr, n) == 0 ? n : 0;
}

static int starts_with_ci(const char *s, size_t n, const char *prefix) {
  size_t k = strlen(prefix);
  return n >= k && strncasecmp(s, prefix, k) == 0;
}

void http_redact_also(const http_conf *conf, abuf *text) {
  for (size_t i = 0; i < conf->also_count && text->len > 0; i++) {
    abuf out = {0};
    alloy_redact_value(&out, text->data, text->len, conf->also_secret[i]);
    abuf_free(text);
    *text = out;
  }
}

/* A client's own debug lines: the values added with client:add_secret, then the key, masked
 * in every form (the whole line at once: a value cut in half would no longer match). */
static void mask_conf(const void *ctx, abuf *out, const char *s, size_t n) {
  const http_conf *conf = ctx;
  abuf raw = {0};
  if (!conf->also_count) {
    alloy_redact(out, s, n, conf->secret);
    return;
  }
  abuf_add(&raw, s, n);
  http_redact_also(conf, &raw);
  alloy_redact(out, raw.data ? raw.data : "", raw.len, conf->secret);
  abuf_free(&raw);
}

/* Prints libcurl's debug text to stderr line by line, as messages are written (errors.c):
 * Authorization and Proxy-Authorization headers entirely replaced, every other line through
 * `mask`, then control bytes and invalid UTF-8 from the server scrubbed. */
void http_debug_lines(const char *prefix, const char *data, size_t size, http_line_mask mask, const void *ctx) {
  const char *p = data, *end = data + size;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
    size_t shown = n;
    if (shown && p[shown - 1] == '\r') shown--;
    if (shown) {
      if (starts_with_ci(p, shown, "authorization:")) {
        fprintf(stderr, "%sAuthorization: [REDACTED]\n", prefix);
      } else if (starts_with_ci(p, shown, "proxy-authorization:")) {
        fprintf(stderr, "%sProxy-Authorization: [REDACTED]\n", prefix);
      } else {
        abuf masked = {0}, line = {0};
        mask(ctx, &masked, p, shown);
        alloy_excerpt(&line, masked.data ? masked.data : "", masked.len, 2 * masked.len + 16, NULL);
        fprintf(stderr, "%s%s\n", prefix, line.data ? line.data : "");
        abuf_free(&masked);
        abuf_free(&line);
      }
    }
    p += n + (eol ? 1 : 0);
  }
}

const char *http_debug_prefix(curl_infotype type) {
  switch (type) {
    case CURLINFO_TEXT: return "* ";
    case CURLINFO_HEADER_OUT: return "> ";
    case CURLINFO_HEADER_IN: return "< ";
    default: return NULL;
  }
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud) {
  const char *prefix = http_debug_prefix(type);
  (void)h;
  if (prefix) http_debug_lines(prefix, data, size, mask_conf, ud);
  return 0;
}

int http_transfer_init(http_transfer *t, const http_conf *conf) {
  memset(t, 0, sizeof *t);
  t->conf = conf;
  t->easy = curl_easy_init();
  if (t->easy == NULL) return -1;
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->res.errbuf);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, t);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, conf->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conf->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)conf->max_body);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, conf->insecure ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, conf->insecure ? 0L : 2L);
  if (conf->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, conf->ca_file);
  if (conf->proxy) curl_easy_setopt(e, CURLOPT_PROXY, conf->proxy);
  if (conf->debug) {
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, (void *)conf); /* the client's: survives pool growth */
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  }
  return 0;
}

void http_warn_insecure(const http_conf *conf) {
  if (conf->insecure)
    fprintf(stderr, "alloy: WARNING: TLS certificate verification is disabled (insecure = true)\n");
}

void http_response_free(http_response *r) {
  abuf_free(&r->body);
  abuf_free(&r->headers);
}

void http_transfer_free(http_transfer *t) {
  if (t->easy) curl_easy_cleanup(t->easy);
  t->easy = NULL;
  http_response_free(&t->res);
  abuf_free(&t->last_url);
}

/* Sets the handle up for req, only what differs from the previous request on it: libcurl
 * re-parses a URL and resets its method state on every setopt, even when nothing changed. */
static void transfer_setup(http_transfer *t, const http_request *req) {
  CURL *e = t->easy;
  abuf_clear(&t->res.body);
  abuf_clear(&t->res.headers);
  t->res.status = 0;
  t->res.too_large = 0;
  t->res.errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
  if (t->last_url.data == NULL || strcmp(t->last_url.data, req->url) != 0) {
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    abuf_clear(&t->last_url);
    abuf_adds(&t->last_url, req->url);
  }
  int is_post = strcmp(req->method, "POST") == 0;
  /* libcurl silently sends a request again when a reused connection dies before any answer.
   * Harmless for GET; a POST or PATCH could then act twice, so each gets a fresh connection,
   * on which libcurl never does that (a drop is then GOT_NOTHING, and not retried). */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, (long)(is_post || strcmp(req->method, "PATCH") == 0));
  int plain_get = req->body == NULL && strcmp(req->method, "GET") == 0;
  if (plain_get && t->last_was_get) return;
  t->last_was_get = plain_get;
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
  curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
  if (req->body || is_post) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    if (!is_post) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
  } else if (strcmp(req->method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (!plain_get) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
  }
}

/* A wait for a retry was cut short by a SIGINT: the request fails as interrupted. */
static void interrupt_wait(http_transfer *t) {
  t->res.curl_code = CURLE_ABORTED_BY_CALLBACK;
  snprintf(t->res.errbuf, sizeof t->res.errbuf, "interrupted");
}

static int is_retryable(const http_request *req, CURLcode code, long status, int has_retry_after) {
  if (req->retry_unsent) /* the server never saw it, or says it did not act and when to retry */
    return code == CURLE_COULDNT_CONNECT || (code == CURLE_OK && status == 429 && has_retry_after);
  /* POST and PATCH are not idempotent: retry only when the server surely did nothing. */
  int idempotent = strcmp(req->method, "POST") != 0 && strcmp(req->method, "PATCH") != 0;
  if (code != CURLE_OK) {
    if (code == CURLE_COULDNT_CONNECT) return 1;
    if (!idempotent) return 0;
    return code == CURLE_GOT_NOTHING || code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR;
  }
  if (status == 429) return 1;
  if (status == 503) return idempotent || has_retry_after;
  if (status == 502 || status == 504) return idempotent;
  return 0;
}

int http_retryable(const char *method, int retry_unsent, CURLcode code, long status, int has_retry_after) {
  http_request req = {0};
  req.method = method;
  req.retry_unsent = retry_unsent;
  return is_retryable(&req, code, status, has_retry_after);
}

/* libcurl reads Retry-After (delta-seconds or HTTP-date; CURLINFO_RETRY_AFTER, 7.66); the
 * header API (7.84) says whether there was one, as that value is 0 for none too. Returns the
 * seconds to wait (capped later), or -1 for none or junk: the usual backoff then. */
static double response_retry_after(CURL *e) {
  struct curl_header *h;
  curl_off_t seconds = 0;
  if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK) return -1;
  if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &seconds) != CURLE_OK) seconds = 0;
  const char *v = h->value; /* trimmed by libcurl */
  size_t digits = strspn(v, "0123456789");
  if (digits == 0) return seconds > 0 ? (double)seconds : -1; /* a date not in the future: -1 */
  if (v[digits] != '\0') return -1; /* "5s", "1.5": libcurl would read the leading number */
  if (seconds > 0) return (double)seconds;
  /* 0 from libcurl: "0", or a number too large for it, which asks for the longest wait */
  return strspn(v, "0") == digits ? 0 : HUGE_VAL;
}

double http_backoff(const http_conf *conf, int attempt, double retry_after) {
  double cap = conf->retry_max_wait;
  if (retry_after >= 0) return retry_after < cap ? retry_after : cap;
  double ceiling = conf->backoff;
  for (int i = 1; i < attempt && ceiling < cap; i++) ceiling *= 2;
  if (ceiling > cap) ceiling = cap;
  return ceiling * jitter_unit();
}

/* Decides whether the finished attempt in t is retried; returns the wait, or -1. */
static double retry_decision(http_transfer *t, const http_request *req) {
  if (t->res.attempts > t->conf->retries) return -1;
  /* Most answers are not retryable even with a Retry-After: do not look it up for them. */
  if (!is_retryable(req, t->res.curl_code, t->res.status, 1)) return -1;
  int ok = t->res.curl_code == CURLE_OK;
  double retry_after = ok ? response_retry_after(t->easy) : -1;
  t->res.retry_after = retry_after;
  if (!is_retryable(req, t->res.curl_code, t->res.status, retry_after >= 0)) return -1;
  double delay = http_backoff(t->conf, t->res.attempts, retry_after);
  if (t->conf->debug) {
    char other[24];
    const char *why = t->res.curl_code != CURLE_OK ? alloy_curl_code((int)t->res.curl_code, other, sizeof other) : NULL;
    if (why)
      fprintf(stderr, "* alloy: attempt %d failed (%s); retrying in %.2fs\n", t->res.attempts, why, delay);
    else
      fprintf(stderr, "* alloy: attempt %d got HTTP %ld; retrying in %.2fs\n", t->res.attempts,
              t->res.status, delay);
  }
  return delay;
}

void http_begin(http_transfer *t, sig_atomic_t mark) {
  t->sigint_mark = mark;
  t->on_wire = 0;
  t->res.attempts = 0;
  t->res.total_time = 0;
}

/* Records the outcome of one attempt in t->res, then decides on the next. */
double http_attempt_done(http_transfer *t, const http_request *req, CURLcode code) {
  double total = 0;
  t->res.curl_code = code;
  t->res.retry_after = -1;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->res.status);
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
  t->res.total_time += total;
  t->res.attempts++;
  if (code == CURLE_FILESIZE_EXCEEDED) t->res.too_large = 1;
  if (code == CURLE_OK) t->res.too_large = 0;
  if (code == CURLE_ABORTED_BY_CALLBACK) /* on_progress, the only callback that aborts */
    snprintf(t->res.errbuf, sizeof t->res.errbuf, "interrupted");
  else if (code != CURLE_OK && t->res.errbuf[0] == '\0')
    snprintf(t->res.errbuf, sizeof t->res.errbuf, "%s", curl_easy_strerror(code));
  return retry_decision(t, req);
}

CURLcode http_perform(http_transfer *t, const http_request *req) {
  http_sigint_hold(); /* no Lua runs in here: the release below is always reached */
  http_begin(t, sigint_seen);
  for (;;) {
    transfer_setup(t, req);
    double delay = http_attempt_done(t, req, curl_easy_perform(t->easy));
    if (delay < 0) break;
    if (sleep_seconds(delay, t->sigint_mark)) {
      interrupt_wait(t);
      break;
    }
  }
  http_sigint_release();
  return t->res.curl_code;
}

void http_multi_add(CURLM *m, http_transfer *t, const http_request *req) {
  transfer_setup(t, req);
  t->on_wire = 1;
  t->sent_at = http_now();
  /* Over TLS a batch's transfers wait for a connection that may multiplex (HTTP/2, when the
   * server offers it) instead of each opening its own; plain HTTP here is HTTP/1.1 only. */
  curl_easy_setopt(t->easy, CURLOPT_PIPEWAIT, (long)(strncmp(req->url, "https:", 6) == 0));
  curl_multi_add_handle(m, t->easy);
}

