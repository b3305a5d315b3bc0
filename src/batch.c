/* client:batch: many requests over curl_multi (or one by one through a Lua transport),
 * prepared as transfers free up; results in a table or handed to on_result. The requests are
 * an array, or a function that hands them out one at a time (nil: no more; false: none now,
 * ask again when a result is out): then only what is in flight is held, whatever the number. */
#include <stdio.h>
#include <string.h>

#include "alloy_int.h"
#include "errors.h"

static http_transfer *ensure_pool(lua_State *L, client *c, size_t want) {
  if (c->multi == NULL) {
    c->multi = curl_multi_init();
    if (c->multi == NULL) luaL_error(L, "alloy: cannot create a curl multi handle");
  }
  if (want > c->pool_size) {
    http_transfer *pool = realloc(c->pool, want * sizeof *pool);
    if (pool == NULL) luaL_error(L, "alloy: out of memory");
    /* easy handles keep a pointer to their transfer (CURLOPT_PRIVATE, callbacks): re-point */
    for (size_t i = 0; i < c->pool_size; i++) {
      CURL *e = pool[i].easy;
      curl_easy_setopt(e, CURLOPT_PRIVATE, &pool[i]);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, &pool[i]);
      curl_easy_setopt(e, CURLOPT_HEADERDATA, &pool[i]);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, pool[i].res.errbuf);
      curl_easy_setopt(e, CURLOPT_XFERINFODATA, &pool[i]);
    }
    c->pool = pool;
    for (size_t i = c->pool_size; i < want; i++) {
      if (http_transfer_init(&pool[i], &c->conf) != 0) {
        c->pool_size = i;
        luaL_error(L, "alloy: cannot create a curl handle");
      }
      c->pool_size = i + 1;
    }
  }
  return c->pool;
}

enum { REQ_PENDING, REQ_BAD, REQ_SENT, REQ_DONE }; /* a batch request's state */

/* client:batch's Lua stack: its arguments, then what it keeps alive while it runs. */
enum {
  ARG_CLIENT = 1,
  ARG_REQUESTS, /* the array, or the function that hands them out */
  SLOT_ON_RESULT, /* the options argument is replaced by on_result, or nil */
  SLOT_ERROR,     /* on_result's error: the batch stops and raises it */
  SLOT_RESULTS,   /* the results table (true with on_result: nothing is kept) */
  SLOT_STATE,     /* userdata: unsigned char per request */
  SLOT_SLOTS,     /* userdata: batch_slot per pooled transfer */
  SLOT_POOL,      /* userdata: http_transfer * per pooled transfer */
  SLOT_SCRATCH,   /* userdata: http_batch's 2 * width http_transfer * */
  SLOT_ANCHORS    /* and up: per pooled transfer, a table of the strings of its request, from
                   * index 1 for each request (a table that grew with every request, its old
                   * entries set to nil, was rehashed again and again: 1.2k instructions a string) */
};

/* What a pooled transfer runs, by its place in c->pool. */
typedef struct batch_slot {
  prepared p;
  size_t request; /* the index of that request */
  int busy;       /* it has one in flight */
} batch_slot;

typedef struct batch_ctx {
  lua_State *L;
  client *c;
  unsigned char *state; /* per request (an array only) */
  size_t n, cursor;     /* requests; the next one to consider sending */
  int source;           /* the requests come from a function: n counts those it gave */
  int drained;          /* the function said nil */
  batch_slot *slots;
  const alloy_op *op;   /* the last op looked up: most batches repeat one */
  int streaming;        /* results go to on_result, not into the results table */
  int failed;           /* on_result raised */
  int failures;
  sig_atomic_t sigint_mark; /* SIGINTs seen when the batch began */
  int interrupted;          /* the requests function was not asked: Ctrl-C came first */
} batch_ctx;

/* Prepares request i of the batch into p: the array's item, or (item > 0) the table at that
 * stack index (pushing what it needs; the caller restores the stack). Misuse raises, naming
 * the request. */
static void batch_prepare_item(batch_ctx *b, size_t i, int item, anchors *a, prepared *p) {
  lua_State *L = b->L;
  if (item == 0) {
    lua_rawgeti(L, ARG_REQUESTS, (int)i + 1);
    item = lua_gettop(L);
  }
  if (!lua_istable(L, item)) luaL_error(L, "client:batch: request %d must be a table", (int)i + 1);
  lua_getfield(L, item, "op");
  if (lua_isnil(L, -1)) {
    request_from_spec(L, b->c, item, a, NULL, p, "client:batch");
    p->in_batch = 1;
    return;
  }
  const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (name && !(b->op && strcmp(name, b->op->name) == 0)) b->op = alloy_op_find(name);
  const alloy_op *op = name ? b->op : NULL;
  if (op == NULL) luaL_error(L, "client:batch: request %d: unknown op", (int)i + 1);
  lua_getfield(L, item, "args");
  int args = lua_gettop(L);
  int nargs = 0;
  if (lua_istable(L, args)) {
    nargs = (int)ac_rawlen(L, args);
    luaL_checkstack(L, nargs + 8, "too many args");
    for (int k = 1; k <= nargs; k++) lua_rawgeti(L, args, k);
  } else if (!lua_isnil(L, args)) {
    luaL_error(L, "client:batch: request %d: args must be an array", (int)i + 1);
  }
  request_from_op(L, b->c, op, args + 1, nargs, a, p, "client:batch");
  p->in_batch = 1;
}

static void batch_prepare(batch_ctx *b, size_t i, anchors *a, prepared *p) {
  batch_prepare_item(b, i, 0, a, p);
}

/* The result of request i: the response (ok = true, value for a named op) or {ok = false,
 * error, code, res, sent}; stored in results[i] or handed to on_result. r NULL: p failed
 * validation. sent: for a request that never finished, whether it went out (the server may
 * have acted), else -1. Returns nonzero when on_result raised. */
static int batch_store_sent(batch_ctx *b, size_t i, const http_response *r, const prepared *p, int sent) {
  lua_State *L = b->L;
  int base = lua_gettop(L);
  if (b->state) b->state[i] = REQ_DONE;
  int nres = r ? response_result(L, b->c, r, p) : alloy_push_failure(L, p->fail_msg, p->fail_code, 0);
  int first = lua_gettop(L) - nres + 1; /* finish_request leaves scratch below its results */
  if (lua_isnil(L, first)) { /* nil, msg, code, res */
    b->failures++;
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "ok");
    lua_pushvalue(L, first + 1);
    lua_setfield(L, -2, "error");
    lua_pushvalue(L, first + 2);
    lua_setfield(L, -2, "code");
    lua_pushvalue(L, first + 3);
    lua_setfield(L, -2, "res");
    if (sent >= 0) {
      lua_pushboolean(L, sent);
      lua_setfield(L, -2, "sent");
    }
  } else { /* res, or value, res */
    lua_pushvalue(L, nres == 2 ? first + 1 : first);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    if (nres == 2) {
      lua_pushvalue(L, first);
      lua_setfield(L, -2, "value");
    }
  }
  if (b->streaming) {
    lua_pushvalue(L, SLOT_ON_RESULT);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 2, 0, 0) != 0) {
      lua_replace(L, SLOT_ERROR);
      b->failed = 1;
    }
  } else {
    lua_rawseti(L, SLOT_RESULTS, (int)i + 1);
  }
  lua_settop(L, base);
  return b->failed;
}

static int batch_store(batch_ctx *b, size_t i, const http_response *r, const prepared *p) {
  return batch_store_sent(b, i, r, p, -1);
}

/* Prepares request i of the array on the stack and stores its result: r, or p's own failure
 * (sent as batch_store_sent takes it). */
static int batch_store_fresh(batch_ctx *b, size_t i, const http_response *r, int sent) {
  int top = lua_gettop(b->L);
  anchors on_stack = {b->L, 0, 0};
  prepared p;
  batch_prepare(b, i, &on_stack, &p);
  int rc = batch_store_sent(b, i, p.fail_code ? NULL : r, &p, sent);
  lua_settop(b->L, top);
  return rc;
}

/* Drops what anchored p once its result is out: memory then follows what is in flight. */
static void release_anchors(batch_ctx *b, const prepared *p, int table) {
  for (int k = 1; k <= p->anchor_hi; k++) {
    lua_pushnil(b->L);
    lua_rawseti(b->L, table, k);
  }
}

/* http_batch's start: requests are prepared as transfers free up, so a batch holds only
 * what is in flight (its strings are anchored in its transfer's table until the result is out). */
static int batch_start(void *ud, http_transfer *t) {
  batch_ctx *b = ud;
  lua_State *L = b->L;
  if (b->c->closed) return HTTP_STOP; /* by on_result: nothing more is sent */
  if (http_sigint_count() != b->sigint_mark) { /* Ctrl-C: nothing more is asked for */
    b->interrupted = 1;
    return HTTP_STOP;
  }
  for (;;) {
    size_t i;
    int top = lua_gettop(L), item = 0;
    if (b->source) { /* the next request from the function, held by the transfer's anchors */
      if (b->drained) return HTTP_NO_MORE;
      lua_pushvalue(L, ARG_REQUESTS);
      lua_call(L, 0, 1);
      if (b->c->closed) { /* by the function: what it handed out is not sent */
        lua_settop(L, top);
        return HTTP_STOP;
      }
      if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        b->drained = 1;
        return HTTP_NO_MORE;
      }
      if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        lua_settop(L, top);
        return HTTP_WAIT;
      }
      i = b->n++;
      item = lua_gettop(L);
    } else {
      while (b->cursor < b->n && b->state[b->cursor] != REQ_PENDING) b->cursor++;
      if (b->cursor == b->n) return HTTP_NO_MORE;
      i = b->cursor++;
    }
    batch_slot *slot = &b->slots[t - b->c->pool];
    prepared *p = &slot->p;
    anchors keep = {L, SLOT_ANCHORS + (int)(t - b->c->pool), 0};
    if (item) { /* the request table itself is anchored: p points into it */
      lua_pushvalue(L, item);
      lua_rawseti(L, keep.table, ++keep.n);
    }
    batch_prepare_item(b, i, item, &keep, p);
    lua_settop(L, top);
    p->anchor_hi = keep.n;
    if (p->fail_code) { /* the request changed since it was checked */
      int stop = batch_store(b, i, NULL, p);
      release_anchors(b, p, keep.table);
      if (stop) return HTTP_STOP;
      continue;
    }
    if (b->state) b->state[i] = REQ_SENT;
    slot->request = i;
    slot->busy = 1;
    t->req = p->req;
    return HTTP_STARTED;
  }
}

/* http_batch's done: the result goes out, then the request's anchors. */
static int batch_finished(void *ud, http_transfer *t) {
  batch_ctx *b = ud;
  if (b->c->closed) return HTTP_STOP; /* by on_result: no more results either */
  batch_slot *slot = &b->slots[t - b->c->pool];
  slot->busy = 0;
  /* one a refusing host kept from being sent says so (sent = false) */
  int rc = batch_store_sent(b, slot->request, &t->res, &slot->p, t->on_wire ? -1 : 0);
  release_anchors(b, &slot->p, SLOT_ANCHORS + (int)(t - b->c->pool));
  return rc ? HTTP_STOP : 0;
}

/* Raises on_result's error. */
static int batch_raise(batch_ctx *b) {
  lua_pushvalue(b->L, SLOT_ERROR);
  return lua_error(b->L);
}

static const char *const batch_options[] = {"concurrency", "on_result"};

/* client:batch(requests [, {concurrency = N, on_result = fn}]) -> results, failures
 * (with on_result: true, failures; nothing is kept) */
static int client_batch(lua_State *L) {
  client *c = method_client(L);
  /* One batch at a time: the multi handle and the pool are the client's. client_guarded
   * clears this when the call ends, however it ends. */
  if (c->batch_running) luaL_error(L, "alloy: batch already running on this client");
  c->batch_running = 1;
  int source = lua_isfunction(L, ARG_REQUESTS);
  if (!source) luaL_checktype(L, ARG_REQUESTS, LUA_TTABLE);
  lua_settop(L, SLOT_ON_RESULT);
  int has_options = !lua_isnil(L, SLOT_ON_RESULT);
  if (has_options) {
    luaL_checktype(L, SLOT_ON_RESULT, LUA_TTABLE);
    CHECK_KEYS(L, SLOT_ON_RESULT, batch_options, "client:batch", "option");
    lua_getfield(L, SLOT_ON_RESULT, "concurrency");
  } else {
    lua_pushnil(L);
  }
  lua_Integer concurrency = options_concurrency(L, -1);
  lua_pop(L, 1);
  if (has_options) {
    lua_getfield(L, SLOT_ON_RESULT, "on_result");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
      luaL_error(L, "client:batch: on_result must be a function");
    lua_replace(L, SLOT_ON_RESULT);
  }
  if (source && lua_isnil(L, SLOT_ON_RESULT))
    luaL_error(L, "client:batch: requests from a function need on_result (nothing is kept)");
  if (source && c->transport_ref != LUA_NOREF)
    luaL_error(L, "client:batch: requests from a function go over libcurl, not a transport");
  size_t n = source ? 0 : ac_rawlen(L, ARG_REQUESTS);
  size_t width = source || (size_t)concurrency < n ? (size_t)concurrency : n;
  batch_ctx b;
  memset(&b, 0, sizeof b);
  b.L = L;
  b.c = c;
  b.n = n;
  b.source = source;
  b.streaming = !lua_isnil(L, SLOT_ON_RESULT);
  b.sigint_mark = http_sigint_count();
  lua_pushnil(L); /* SLOT_ERROR */
  if (b.streaming)
    lua_pushboolean(L, 1);
  else
    lua_createtable(L, (int)n, 0); /* SLOT_RESULTS */
  /* Bookkeeping lives in userdata, so nothing leaks if anything below raises. */
  b.state = source ? NULL : lua_newuserdata(L, n + 1);
  if (source) lua_pushnil(L); /* SLOT_STATE */
  b.slots = lua_newuserdata(L, (width + 1) * sizeof *b.slots);
  http_transfer **pool_ptrs = lua_newuserdata(L, (width + 1) * sizeof *pool_ptrs);
  http_transfer **scratch = lua_newuserdata(L, 2 * (width + 1) * sizeof *scratch);
  if (b.state) memset(b.state, REQ_PENDING, n + 1);
  memset(b.slots, 0, (width + 1) * sizeof *b.slots);
  luaL_checkstack(L, (int)width + 8, "client:batch");
  for (size_t i = 0; i < width; i++) lua_createtable(L, 4, 0); /* SLOT_ANCHORS + i */
  const int top = lua_gettop(L);

  /* Every request is checked before any is sent: misuse raises with nothing sent, and a
   * bad value (an id with a newline) fails in place. They are built again when sent. */
  size_t sendable = source; /* a function's requests are checked as they come */
  for (size_t i = 0; i < n; i++) {
    anchors on_stack = {L, 0, 0};
    prepared p;
    batch_prepare(&b, i, &on_stack, &p);
    lua_settop(L, top);
    if (p.fail_code) b.state[i] = REQ_BAD; /* reported below */
    else sendable++;
  }
  if (c->closed) luaL_error(L, "alloy: client is closed");
  for (size_t i = 0; i < n && !b.failed; i++)
    if (b.state[i] == REQ_BAD) batch_store_fresh(&b, i, NULL, -1);
  if (b.failed) return batch_raise(&b);
  if (c->closed) luaL_error(L, "alloy: client is closed"); /* by on_result */

  int rc = 0;
  http_sigint_hold(); /* released by client_guarded when anything below raises */
  c->sigint_holds++;
  if (sendable && c->transport_ref != LUA_NOREF) {
    sig_atomic_t mark = http_sigint_count();
    for (size_t i = 0; i < n && rc == 0; i++) {
      if (b.state[i] != REQ_PENDING) continue;
      if (c->closed) luaL_error(L, "alloy: client is closed"); /* by the transport: the rest are not sent */
      if (http_sigint_count() != mark) { /* Ctrl-C: the transport may have swallowed lua.c's stop */
        rc = 2;
        break;
      }
      anchors on_stack = {L, 0, 0};
      prepared p;
      http_response r;
      batch_prepare(&b, i, &on_stack, &p);
      if (p.fail_code) {
        rc = batch_store(&b, i, NULL, &p);
      } else {
        transport_run(L, c, &p, &r);
        rc = batch_store(&b, i, &r, &p);
        http_response_free(&r);
      }
      lua_settop(L, top);
    }
  } else if (sendable) {
    http_transfer *pool = ensure_pool(L, c, width);
    /* A batch stopped by an error raised from deep inside leaves its handles on the multi. */
    for (size_t i = 0; i < c->pool_size; i++) curl_multi_remove_handle(c->multi, pool[i].easy);
    for (size_t i = 0; i < width; i++) pool_ptrs[i] = &pool[i];
    http_warn_insecure(&c->conf);
    rc = http_batch(c->multi, pool_ptrs, width, scratch, batch_start, batch_finished, &b);
    if (rc != 0)
      for (size_t i = 0; i < width; i++) curl_multi_remove_handle(c->multi, pool[i].easy);
  }
  if (rc == 1 && b.interrupted) rc = 2;
  if (rc != 0 && rc != 3 && !b.failed && !c->closed) {
    /* what never finished fails in place: in flight (sent, or not yet), then the rest */
    http_response aborted;
    memset(&aborted, 0, sizeof aborted);
    aborted.curl_code = rc == 2 ? CURLE_ABORTED_BY_CALLBACK : CURLE_FAILED_INIT;
    snprintf(aborted.errbuf, sizeof aborted.errbuf, rc == 2 ? "interrupted" : "batch aborted");
    for (size_t s = 0; s < width && !b.failed; s++) {
      batch_slot *slot = &b.slots[s];
      if (!slot->busy) continue;
      slot->busy = 0;
      batch_store_sent(&b, slot->request, &aborted, &slot->p, c->pool[s].on_wire);
      release_anchors(&b, &slot->p, SLOT_ANCHORS + (int)s);
    }
    for (size_t i = 0; i < n && !b.failed && !source; i++)
      if (b.state[i] != REQ_DONE) batch_store_fresh(&b, i, &aborted, 0);
  }
  /* Only now: a Ctrl-C held back reaches the host's handler (http.c), every result out. */
  http_sigint_release();
  c->sigint_holds--;
  if (b.failed) return batch_raise(&b);
  if (c->closed) luaL_error(L, "alloy: client is closed"); /* by on_result: the rest were not sent */
  if (rc == 3) luaL_error(L, "client:batch: the requests function said false (none now) with none in flight");
  lua_settop(L, SLOT_RESULTS);
  lua_pushinteger(L, b.failures);
  return 2;
}

void batch_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushvalue(L, o->cjson);
  lua_pushcclosure(L, client_batch, 1);
  lua_setfield(L, o->methods, "batch");
}
