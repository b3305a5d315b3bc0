/* Requests a host's event loop drives, the wire side (no Lua types): one curl_multi in socket
 * mode, the requests in flight and their retry waits, and what libcurl asks of the host
 * (watch a socket, set its timer), recorded for the caller to pass on once libcurl has
 * returned. Each attempt goes through the steps http.c shares with a blocking call. */
#ifndef ALLOY_HTTP_LOOP_H
#define ALLOY_HTTP_LOOP_H

#include "http.h"

typedef struct http_loop_req http_loop_req;
typedef struct http_loop_list {
  http_loop_req *head, *tail;
} http_loop_list;

/* One request. A caller's own record starts with it: http_loop_take allocates that size. */
struct http_loop_req {
  http_transfer t;          /* first: CURLOPT_PRIVATE points at it */
  const http_request *req;  /* what each attempt sends */
  http_loop_list *list;     /* the loop's active (sending or waiting), done or idle list */
  http_loop_req *prev, *next;
  int sending;              /* an attempt is on the multi handle */
  int cancelled;
  double retry_at;          /* when not sending and active: when the next attempt goes */
};

typedef struct http_loop_sock {
  curl_socket_t fd;
  int what; /* CURL_POLL_IN, _OUT, _INOUT or _REMOVE */
} http_loop_sock;

typedef struct http_loop {
  CURLM *multi;
  http_loop_list active, done, idle;
  size_t n_idle, record_size;
  http_loop_sock *socks; /* what libcurl asked about its sockets, not yet passed on */
  size_t n_socks, cap_socks, passed;
  double curl_deadline;  /* libcurl's timer on http_now's clock; -1: none */
  int host_timer;        /* the host's timer: stopped, armed for host_at, or fired */
  double host_at;
  int calling_hooks;     /* the caller is passing changes on to the host */
} http_loop;

/* record_size: the size of the caller's records (at least sizeof(http_loop_req)). -1 when
 * libcurl cannot make a multi handle. */
int http_loop_init(http_loop *lp, size_t record_size);
/* Frees every request and the multi handle: callers let go of their parts of them first. */
void http_loop_free(http_loop *lp);

/* A request record, idle or new, zeroed beyond its transfer; NULL when out of memory. */
http_loop_req *http_loop_take(http_loop *lp, const http_conf *conf);
/* Sends req (it must stay valid until r is done), or, with req NULL, puts r among the done
 * without sending anything. */
void http_loop_send(http_loop *lp, http_loop_req *r, const http_request *req);
/* Tells libcurl what happened on fd (CURL_CSELECT_* flags), or with CURL_SOCKET_TIMEOUT that
 * the host's timer fired; then moves every finished attempt on (to its retry wait, or among
 * the done) and sends the attempts whose wait is over. */
CURLMcode http_loop_action(http_loop *lp, curl_socket_t fd, int flags);
/* Stops r wherever it is and marks it cancelled; r leaves every list. */
void http_loop_cancel(http_loop *lp, http_loop_req *r);
/* Every active request stopped, marked cancelled and put among the done; the done ones too. */
void http_loop_cancel_all(http_loop *lp);
/* The first request done (finished, failed before sending, or cancelled), out of the list;
 * NULL when there is none. Its answer is in r->t.res until it is released. */
http_loop_req *http_loop_next_done(http_loop *lp);
/* r leaves its list, for the idle ones (its handle and buffers serve a later request). */
void http_loop_release(http_loop *lp, http_loop_req *r);

/* The next socket change to pass on to the host; 0 when there is none left. */
int http_loop_next_socket(http_loop *lp, http_loop_sock *out);
/* 1 when the host's timer must change: to fire in *ms milliseconds, or stop (*ms = -1). It
 * fires at once while requests are done and not yet released. */
int http_loop_next_timer(http_loop *lp, long *ms);
/* The host's timer fired: it is set again even for the same deadline. */
void http_loop_timer_fired(http_loop *lp);

#endif
