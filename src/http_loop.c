#include "http_loop.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_MAX 16 /* released records kept for later requests (their handles and buffers) */
#define IDLE_KEEP 65536 /* bytes of a kept record's answer buffers kept with it */

enum { HOST_TIMER_STOPPED, HOST_TIMER_ARMED, HOST_TIMER_FIRED };

static void link_tail(http_loop_list *l, http_loop_req *r) {
  r->list = l;
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
}

static void unlink_req(http_loop_req *r) {
  http_loop_list *l = r->list;
  if (l == NULL) return;
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  r->list = NULL;
  r->prev = r->next = NULL;
}

/* libcurl's callbacks only record what it asked for: the host hears of it afterwards. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *socketp) {
  http_loop *lp = ud;
  (void)easy, (void)socketp;
  if (lp->n_socks == lp->cap_socks) {
    size_t cap = lp->cap_socks ? 2 * lp->cap_socks : 16;
    http_loop_sock *grown = realloc(lp->socks, cap * sizeof *grown);
    if (grown == NULL) return -1;
    lp->socks = grown;
    lp->cap_socks = cap;
  }
  lp->socks[lp->n_socks].fd = fd;
  lp->socks[lp->n_socks++].what = what;
  return 0;
}

static int on_timer(CURLM *multi, long ms, void *ud) {
  http_loop *lp = ud;
  (void)multi;
  lp->curl_deadline = ms < 0 ? -1 : http_now() + (double)ms / 1000;
  return 0;
}

int http_loop_init(http_loop *lp, size_t record_size) {
  memset(lp, 0, sizeof *lp);
  lp->record_size = record_size;
  lp->curl_deadline = -1;
  lp->multi = curl_multi_init();
  if (lp->multi == NULL) return -1;
  curl_multi_setopt(lp->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(lp->multi, CURLMOPT_SOCKETDATA, (void *)lp);
  curl_multi_setopt(lp->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(lp->multi, CURLMOPT_TIMERDATA, (void *)lp);
  return 0;
}

void http_loop_free(http_loop *lp) {
  http_loop_list *lists[] = {&lp->active, &lp->done, &lp->idle};
  for (size_t i = 0; i < 3; i++)
    while (lists[i]->head) {
      http_loop_req *r = lists[i]->head;
      unlink_req(r);
      if (r->sending) curl_multi_remove_handle(lp->multi, r->t.easy);
      http_transfer_free(&r->t);
      free(r);
    }
  if (lp->multi) curl_multi_cleanup(lp->multi);
  free(lp->socks);
  memset(lp, 0, sizeof *lp);
}

http_loop_req *http_loop_take(http_loop *lp, const http_conf *conf) {
  http_loop_req *r = lp->idle.head;
  if (r) {
    unlink_req(r);
    lp->n_idle--;
    memset((char *)r + sizeof *r, 0, lp->record_size - sizeof *r);
    return r;
  }
  r = calloc(1, lp->record_size);
  if (r == NULL) return NULL;
  if (http_transfer_init(&r->t, conf) != 0) {
    http_transfer_free(&r->t);
    free(r);
    return NULL;
  }
  /* Ctrl-C is the host's to handle: a SIGINT that stops a blocking call must not stop what
   * the loop drives (it would, at the next progress callback). */
  curl_easy_setopt(r->t.easy, CURLOPT_NOPROGRESS, 1L);
  return r;
}

void http_loop_send(http_loop *lp, http_loop_req *r, const http_request *req) {
  r->req = req;
  r->cancelled = 0;
  if (req == NULL) {
    r->t.res.attempts = 0; /* a kept record's last request counted its own */
    r->sending = 0;
    link_tail(&lp->done, r);
    return;
  }
  link_tail(&lp->active, r);
  r->sending = 1;
  http_begin(&r->t, http_sigint_count());
  http_multi_add(lp->multi, &r->t, req);
}

CURLMcode http_loop_action(http_loop *lp, curl_socket_t fd, int flags) {
  int running = 0, queued;
  /* Asked to run its timers, libcurl forgets the one it told of and tells again only if one
   * is still set: without this a finished transfer would leave its deadline behind. */
  if (fd == CURL_SOCKET_TIMEOUT) lp->curl_deadline = -1;
  CURLMcode rc = curl_multi_socket_action(lp->multi, fd, flags, &running);
  CURLMsg *msg;
  while ((msg = curl_multi_info_read(lp->multi, &queued)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    http_transfer *t = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(lp->multi, easy);
    http_loop_req *r = (http_loop_req *)t;
    r->sending = 0;
    double delay = http_attempt_done(t, r->req, code);
    if (delay >= 0) {
      r->retry_at = http_now() + delay;
    } else {
      unlink_req(r);
      link_tail(&lp->done, r);
    }
  }
  double now = http_now();
  for (http_loop_req *r = lp->active.head; r; r = r->next)
    if (!r->sending && r->retry_at <= now) {
      r->sending = 1;
      http_multi_add(lp->multi, &r->t, r->req);
    }
  return rc;
}

void http_loop_cancel(http_loop *lp, http_loop_req *r) {
  if (r->sending) curl_multi_remove_handle(lp->multi, r->t.easy);
  r->sending = 0;
  r->cancelled = 1;
  unlink_req(r);
}

void http_loop_cancel_all(http_loop *lp) {
  for (http_loop_req *r = lp->done.head; r; r = r->next) r->cancelled = 1;
  while (lp->active.head) {
    http_loop_req *r = lp->active.head;
    http_loop_cancel(lp, r);
    link_tail(&lp->done, r);
  }
}

http_loop_req *http_loop_next_done(http_loop *lp) {
  http_loop_req *r = lp->done.head;
  if (r) unlink_req(r);
  return r;
}

void http_loop_release(http_loop *lp, http_loop_req *r) {
  unlink_req(r);
  if (lp->n_idle < IDLE_MAX) {
    /* a kept record does not keep a large answer's buffers (up to max_body each) */
    if (r->t.res.body.cap > IDLE_KEEP) abuf_free(&r->t.res.body);
    if (r->t.res.headers.cap > IDLE_KEEP) abuf_free(&r->t.res.headers);
    link_tail(&lp->idle, r);
    lp->n_idle++;
    return;
  }
  http_transfer_free(&r->t);
  free(r);
}

int http_loop_next_socket(http_loop *lp, http_loop_sock *out) {
  if (lp->passed < lp->n_socks) {
    *out = lp->socks[lp->passed++];
    return 1;
  }
  lp->n_socks = lp->passed = 0;
  return 0;
}

/* When the host's timer must fire: at once (0, long past) while requests are done (a loop
 * the caller runs from inside a callback then releases them), else at libcurl's timer or the
 * first retry. */
static double next_deadline(const http_loop *lp) {
  if (lp->done.head) return 0;
  double at = lp->curl_deadline;
  for (const http_loop_req *r = lp->active.head; r; r = r->next)
    if (!r->sending && (at < 0 || r->retry_at < at)) at = r->retry_at;
  return at;
}

int http_loop_next_timer(http_loop *lp, long *ms) {
  double at = next_deadline(lp);
  if (at < 0) {
    if (lp->host_timer == HOST_TIMER_STOPPED) return 0;
    lp->host_timer = HOST_TIMER_STOPPED;
    *ms = -1;
    return 1;
  }
  if (lp->host_timer == HOST_TIMER_ARMED && lp->host_at == at) return 0;
  lp->host_timer = HOST_TIMER_ARMED;
  lp->host_at = at;
  /* whole milliseconds, rounded up: a timer that fires early is only set again */
  double left = (at - http_now()) * 1000;
  *ms = left <= 0 ? 0 : left >= INT_MAX ? INT_MAX : (long)left + ((double)(long)left < left);
  return 1;
}

void http_loop_timer_fired(http_loop *lp) { lp->host_timer = HOST_TIMER_FIRED; }
