/* A batch over curl_multi (client:batch): requests started as transfers free up, retries
 * waited for without blocking the others, and a 429 treated as what it is, the host asking
 * every request to wait. No Lua types here. */
#include <stdio.h>
#include <string.h>

#include "http.h"

/* The hosts a batch has met (scheme://host:port), with the pause each asked for. A batch
 * talks to one or two; past MAX_HOSTS a host is paused with no one. */
enum { MAX_HOSTS = 8, HOST_KEY = 128 };

typedef struct host_state {
  char key[HOST_KEY];
  double until;     /* no request to it is sent before this */
  double paused_at; /* when the current pause began: a 429 to a request sent before is of that round */
  int rounds;       /* pauses in a row it asked for, with no other answer between */
  int refusing;     /* it refused more rounds than a request may be retried: what is left fails */
} host_state;

typedef struct batch_hosts {
  host_state h[MAX_HOSTS];
  int n;
} batch_hosts;

/* The host of url ("https://api.example:443/x" -> "https://api.example:443"), or NULL. */
static host_state *host_of(batch_hosts *hs, const char *url) {
  const char *p = strstr(url, "://");
  if (p == NULL) return NULL;
  size_t n = (size_t)(strcspn(p + 3, "/?#") + (size_t)(p + 3 - url));
  if (n >= HOST_KEY) return NULL;
  for (int i = 0; i < hs->n; i++)
    if (strlen(hs->h[i].key) == n && strncmp(hs->h[i].key, url, n) == 0) return &hs->h[i];
  if (hs->n == MAX_HOSTS) return NULL;
  host_state *h = &hs->h[hs->n++];
  memset(h, 0, sizeof *h);
  memcpy(h->key, url, n);
  h->key[n] = '\0';
  return h;
}

/* The answer of a request the host's refusals kept from being sent: a 429 that says so. */
static void refuse(http_transfer *t) {
  static const char body[] =
      "{\"message\":\"not sent: the API kept answering 429 (rate limited) to the requests before it\"}";
  abuf_free(&t->res.body);
  abuf_free(&t->res.headers);
  t->res.curl_code = CURLE_OK;
  t->res.status = 429;
  t->res.too_large = 0;
  t->res.errbuf[0] = '\0';
  abuf_add(&t->res.body, body, sizeof body - 1);
}

/* What an attempt's outcome tells of its host: a 429 starts a pause (or is of the current
 * one), anything else ends the run of refusals. Returns when t may be sent again at the
 * earliest (0 when the host sets no pause). */
static double host_outcome(host_state *h, const http_transfer *t, double now) {
  if (h == NULL) return 0;
  if (!(t->res.curl_code == CURLE_OK && t->res.status == 429)) {
    h->rounds = 0;
    h->refusing = 0;
    return 0;
  }
  if (t->sent_at >= h->paused_at) { /* a new round: sent after the last pause began */
    h->rounds++;
    double wait = http_backoff(t->conf, h->rounds, t->res.retry_after);
    if (now + wait > h->until) h->until = now + wait;
    h->paused_at = now;
    if (h->rounds > t->conf->retries) h->refusing = 1;
  } else if (t->res.retry_after >= 0) { /* of this round, and it says how long */
    double wait = http_backoff(t->conf, 1, t->res.retry_after);
    if (now + wait > h->until) h->until = now + wait;
  }
  return h->until;
}

int http_batch(CURLM *m, http_transfer **pool, size_t pool_size, http_transfer **scratch,
               http_start_fn start_next, http_done_fn done, void *ud) {
  http_transfer **idle = scratch, **waiting = scratch + pool_size;
  size_t n_idle = pool_size, n_waiting = 0, active = 0;
  int more = 1, wait_for_one = 0;
  batch_hosts hosts;
  hosts.n = 0;
  sig_atomic_t mark = http_sigint_count();
  memcpy(idle, pool, pool_size * sizeof *idle);
  for (;;) {
    if (http_interrupted(mark)) return 2; /* nothing more is started, nor waited for */
    double now = http_now();
    while (more && !wait_for_one && n_idle > 0) {
      http_transfer *t = idle[n_idle - 1];
      int s = start_next(ud, t);
      if (s == HTTP_STOP) return 1;
      if (s == HTTP_NO_MORE) {
        more = 0;
        break;
      }
      if (s == HTTP_WAIT) {
        if (active == 0) return 3;
        wait_for_one = 1;
        break;
      }
      n_idle--;
      active++;
      http_begin(t, mark);
      /* a paused host: the request waits its turn, not yet sent */
      t->retry_at = now;
      waiting[n_waiting++] = t;
    }
    double next_wake = -1;
    for (size_t i = 0; i < n_waiting;) {
      http_transfer *t = waiting[i];
      host_state *h = host_of(&hosts, t->req.url);
      if (h && h->until > t->retry_at) t->retry_at = h->until;
      if (h && h->refusing) { /* its turn will not come: it fails unsent (or as last answered) */
        waiting[i] = waiting[--n_waiting];
        if (!t->on_wire || t->res.status != 429) refuse(t);
        idle[n_idle++] = t;
        active--;
        wait_for_one = 0;
        if (done(ud, t) != 0) return 1;
        continue;
      }
      if (t->retry_at <= now) {
        /* Ctrl-C while the requests function ran: what it handed out stays unsent */
        if (http_interrupted(mark)) return 2;
        waiting[i] = waiting[--n_waiting];
        http_multi_add(m, t, &t->req);
        continue;
      }
      if (next_wake < 0 || t->retry_at < next_wake) next_wake = t->retry_at;
      i++;
    }
    if (active == 0) { /* wait_for_one is set only while one is active */
      if (more) continue;
      return 0;
    }
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) return -1;
    CURLMsg *msg;
    int queued, freed = 0;
    while ((msg = curl_multi_info_read(m, &queued)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      http_transfer *t = NULL;
      CURL *easy = msg->easy_handle;
      CURLcode code = msg->data.result;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
      curl_multi_remove_handle(m, easy);
      if (code == CURLE_ABORTED_BY_CALLBACK && http_interrupted(mark)) continue; /* the caller's to report */
      double delay = http_attempt_done(t, &t->req, code);
      double at = http_now();
      host_state *h = host_of(&hosts, t->req.url);
      double host_until = host_outcome(h, t, at);
      if (delay >= 0 && !(h && h->refusing)) {
        /* a 429 goes again when its host's pause ends, with the others it held: one round */
        t->retry_at = host_until > 0 ? host_until : at + delay;
        waiting[n_waiting++] = t;
        if (next_wake < 0 || t->retry_at < next_wake) next_wake = t->retry_at;
        continue;
      }
      /* The caller copies what it needs; the buffers serve the transfer's next request. */
      idle[n_idle++] = t;
      active--;
      freed = 1;
      wait_for_one = 0;
      if (done(ud, t) != 0) return 1;
    }
    if (freed && more) continue; /* start what is queued before waiting on anything */
    if (active == 0) continue;
    int wait_ms = 1000;
    if (next_wake >= 0) {
      double ms = (next_wake - http_now()) * 1000;
      wait_ms = ms < 0 ? 0 : ms < 1000 ? (int)ms + 1 : 1000;
    }
    if (running > 0 || n_waiting > 0) curl_multi_poll(m, NULL, 0, wait_ms, NULL);
  }
}
