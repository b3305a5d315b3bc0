/* Requests driven by the host's event loop, the Lua side: client:loop takes the loop's hooks
 * (watch a socket, set the one timer), client:start sends a request or named operation
 * without waiting and returns a handle, and the loop calls client:socket_action and
 * client:on_timeout back. The wire is http_loop.c's; answers become Lua values through
 * response.c, as a blocking call's do. Hooks and callbacks run once libcurl has returned. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "alloy_int.h"
#include "errors.h"
#include "http_loop.h"

#define REQUEST_MT "alloy.request"

/* The anchor table of a started request: what it keeps alive until its callback has run. */
enum { SLOT_ON_DONE = 1, SLOT_HANDLE, SLOT_CLIENT, SLOT_FIRST_STRING };

typedef struct lreq lreq;

typedef struct request_handle {
  lreq *r; /* NULL once the callback has run (or is running) */
} request_handle;

struct lreq {
  http_loop_req w; /* first: the wire side's record */
  prepared p;
  int ref; /* the anchor table, in the registry */
  request_handle *handle;
};

/* One call into the loop from Lua: where its client is, and the first error a hook or a
 * callback raised (raised once the state is whole again). */
typedef struct entry {
  lua_State *L;
  client *c;
  http_loop *lp;
  int client_idx, err, failed, at_gc;
} entry;

static void enter(entry *e, lua_State *L, client *c, int client_idx) {
  memset(e, 0, sizeof *e);
  e->L = L;
  e->c = c;
  e->lp = c->loop;
  e->client_idx = ac_absindex(L, client_idx);
  lua_pushnil(L);
  e->err = lua_gettop(L);
}

static void record_error(entry *e) {
  if (e->failed) {
    lua_pop(e->L, 1);
    return;
  }
  e->failed = 1;
  lua_replace(e->L, e->err);
}

static void raise_first(entry *e) {
  if (!e->failed) return;
  lua_pushvalue(e->L, e->err);
  lua_error(e->L);
}

/* Runs in protected mode, so that even running out of memory leaves the loop able to call
 * its hooks again. Calls them until nothing is left to tell: each socket libcurl named, in
 * order (a closed socket's number may come back for a new one), and the timer; then raises
 * the first error a hook raised. Arguments: the hooks table, the loop (light userdata). */
static int call_hooks(lua_State *L) {
  static const char *const events[] = {"", "r", "w", "rw", "remove"}; /* CURL_POLL_* */
  http_loop *lp = lua_touserdata(L, 2);
  http_loop_sock s;
  long ms;
  int failed = 0;
  lua_settop(L, 3); /* 3: the first error */
  for (;;) { /* a hook may start or end requests: what they change is told in turn */
    int nargs = 1;
    if (http_loop_next_socket(lp, &s)) {
      lua_getfield(L, 1, "socket");
      lua_pushinteger(L, (lua_Integer)s.fd);
      lua_pushstring(L, s.what >= 0 && s.what <= CURL_POLL_REMOVE ? events[s.what] : "");
      nargs = 2;
    } else if (http_loop_next_timer(lp, &ms)) {
      lua_getfield(L, 1, "timer");
      lua_pushinteger(L, (lua_Integer)ms);
    } else {
      break;
    }
    if (lua_pcall(L, nargs, 0, 0) == 0) continue;
    if (failed++) lua_pop(L, 1);
    else lua_replace(L, 3);
  }
  if (failed) lua_error(L);
  return 0;
}

/* Tells the host what changed. A call reached from inside a hook (through a finaliser, or a
 * hook that starts or closes) leaves it to the one calling the hooks: a change told before
 * an earlier one was (a socket removed, then watched) would have the host watch a closed
 * socket. */
static void flush(entry *e) {
  lua_State *L = e->L;
  http_loop_sock s;
  if (e->at_gc) { /* the host may be gone already; its handles go with it */
    while (http_loop_next_socket(e->lp, &s)) continue;
    return;
  }
  if (e->lp->calling_hooks) return;
  lua_pushcfunction(L, call_hooks);
  ac_getuservalue(L, e->client_idx);
  lua_pushlightuserdata(L, e->lp);
  e->lp->calling_hooks = 1;
  int rc = lua_pcall(L, 2, 0, 0);
  e->lp->calling_hooks = 0;
  if (rc != 0) record_error(e);
}

/* Runs in protected mode (upvalue 1: cjson, or none where only cancelled requests are
 * delivered): the result of the request, as the blocking call returns it, to its callback.
 * Arguments: the client and the request (light userdata), its anchor table. */
static int deliver_one(lua_State *L) {
  client *c = lua_touserdata(L, 1);
  lreq *r = lua_touserdata(L, 2);
  prepared p = r->p;
  int n;
  p.url_table = 3;
  if (r->w.cancelled) {
    static const char detail[] = "the request was cancelled";
    abuf msg = {0};
    const char *code = alloy_code_name(CODE_CANCELLED);
    alloy_format_message(&msg, code, detail, sizeof detail - 1, p.req.method, p.path, p.path_len,
                         r->w.t.res.attempts, c->api_key);
    lua_pushstring(L, msg.data);
    abuf_free(&msg);
    n = alloy_push_failure(L, lua_tostring(L, -1), code, 0);
  } else if (p.fail_code) {
    n = alloy_push_failure(L, p.fail_msg, p.fail_code, 0);
  } else {
    n = response_result(L, c, &r->w.t.res, &p); /* the values on top, what it used below */
  }
  lua_rawgeti(L, 3, SLOT_ON_DONE);
  lua_insert(L, -n - 1);
  lua_call(L, n, 0);
  return 0;
}

/* Runs r's callback once. r has left every list, its handle and anchors are let go first:
 * a callback that cancels, starts, closes or raises finds the state whole. */
static void deliver(entry *e, lreq *r) {
  lua_State *L = e->L;
  int top = lua_gettop(L);
  if (r->handle) r->handle->r = NULL;
  r->handle = NULL;
  if (r->w.cancelled) {
    lua_pushcfunction(L, deliver_one);
  } else { /* only the methods the loop calls deliver answers, and they have cjson */
    lua_pushvalue(L, CJSON_UPVALUE);
    lua_pushcclosure(L, deliver_one, 1);
  }
  lua_pushlightuserdata(L, e->c);
  lua_pushlightuserdata(L, r);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref); /* held by the stack from here on */
  luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
  r->ref = LUA_NOREF;
  int rc = lua_pcall(L, 3, 0, 0);
  http_loop_release(e->lp, &r->w);
  if (rc != 0) record_error(e);
  lua_settop(L, top);
}

/* The callbacks due, one at a time: one run from a callback (a nested loop) takes the next. */
static void deliver_all(entry *e) {
  http_loop_req *r;
  while ((r = http_loop_next_done(e->lp)) != NULL) deliver(e, (lreq *)r);
}

static http_loop *need_loop(lua_State *L, client *c, const char *who) {
  if (c->loop == NULL) luaL_error(L, "%s: no event loop: call client:loop{socket = fn, timer = fn} first", who);
  return c->loop;
}

/* client:start(op_name, args..., on_done) or client:start(request, on_done) -> handle */
static int client_start(lua_State *L) {
  client *c = method_client(L);
  int top = lua_gettop(L), nargs = top - 3;
  const alloy_op *op = NULL;
  if (top < 3 || !lua_isfunction(L, top))
    luaL_error(L, "client:start: the last argument must be the function that takes the result");
  http_loop *lp = need_loop(L, c, "client:start");
  if (lua_type(L, 2) == LUA_TSTRING) {
    op = alloy_op_find(lua_tostring(L, 2));
    if (op == NULL) luaL_error(L, "client:start: unknown operation '%s'", lua_tostring(L, 2));
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (nargs > 0) luaL_error(L, "client:start: too many arguments");
    lua_getfield(L, 2, "op");
    if (!lua_isnil(L, -1)) luaL_error(L, "client:start: give the operation's name as the first argument");
    lua_pop(L, 1);
  }
  lua_createtable(L, 8, 0);
  int anchor = lua_gettop(L);
  request_handle *h = lua_newuserdata(L, sizeof *h); /* anchor + 1, returned */
  h->r = NULL;
  luaL_getmetatable(L, REQUEST_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawseti(L, anchor, SLOT_HANDLE);
  lua_pushvalue(L, top);
  lua_rawseti(L, anchor, SLOT_ON_DONE);
  lua_pushvalue(L, 1); /* a request in flight keeps its client alive */
  lua_rawseti(L, anchor, SLOT_CLIENT);
  anchors a = {L, anchor, SLOT_FIRST_STRING - 1};
  prepared p;
  if (op)
    request_from_op(L, c, op, 3, nargs, &a, &p, "client:start");
  else
    request_from_spec(L, c, 2, &a, NULL, &p, "client:start");
  if (c->closed) luaL_error(L, "alloy: client is closed"); /* by a finaliser or metamethod */
  lua_settop(L, anchor + 1);
  lua_pushvalue(L, anchor);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lreq *r = (lreq *)http_loop_take(lp, &c->conf);
  if (r == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_error(L, "alloy: cannot create a curl handle");
  }
  r->p = p;
  r->ref = ref;
  r->handle = h;
  h->r = r;
  if (!p.fail_code) http_warn_insecure(&c->conf);
  /* one that cannot be sent is done at once: its callback runs when the loop calls back */
  http_loop_send(lp, &r->w, p.fail_code ? NULL : &r->p.req);
  entry e;
  enter(&e, L, c, 1);
  flush(&e); /* never a callback from here */
  raise_first(&e);
  lua_pushvalue(L, anchor + 1);
  return 1;
}

/* Ends a call into the loop: the hooks, the callbacks due, the hooks again; then the first
 * error a hook or callback raised. */
static int drive(lua_State *L, client *c, curl_socket_t fd, int flags) {
  entry e;
  lua_settop(L, 1);
  enter(&e, L, c, 1);
  CURLMcode rc = http_loop_action(c->loop, fd, flags);
  if (rc != CURLM_OK) {
    lua_pushfstring(L, "alloy: curl_multi_socket_action: %s", curl_multi_strerror(rc));
    record_error(&e);
  }
  flush(&e);
  deliver_all(&e);
  flush(&e);
  raise_first(&e);
  return 0;
}

/* client:socket_action(fd, events): the loop saw events ("r", "w", "rw"; "e" for an error)
 * on a socket a hook asked it to watch. */
static int client_socket_action(lua_State *L) {
  client *c = method_client(L);
  lua_Integer fd = luaL_checkinteger(L, 2);
  const char *s = luaL_optstring(L, 3, "");
  int flags = 0;
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 2, "not a socket");
  for (; *s; s++) {
    if (*s == 'r')
      flags |= CURL_CSELECT_IN;
    else if (*s == 'w')
      flags |= CURL_CSELECT_OUT;
    else if (*s == 'e')
      flags |= CURL_CSELECT_ERR;
    else if (*s != 'd' && *s != 'p') /* luv's disconnect and prioritized: a read finds out */
      luaL_argerror(L, 3, "events are letters of \"rwe\" (readable, writable, error)");
  }
  need_loop(L, c, "client:socket_action");
  return drive(L, c, (curl_socket_t)fd, flags);
}

/* client:on_timeout(): the timer a hook set has fired. */
static int client_on_timeout(lua_State *L) {
  client *c = method_client(L);
  http_loop_timer_fired(need_loop(L, c, "client:on_timeout"));
  return drive(L, c, CURL_SOCKET_TIMEOUT, 0);
}

static const char *const hook_names[] = {"socket", "timer"};

/* client:loop{socket = fn(fd, events), timer = fn(ms)} */
static int client_loop(lua_State *L) {
  client *c = method_client(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  CHECK_KEYS(L, 2, hook_names, "client:loop", "hook");
  lua_createtable(L, 0, 2);
  for (size_t i = 0; i < 2; i++) {
    lua_getfield(L, 2, hook_names[i]);
    if (!lua_isfunction(L, -1)) luaL_error(L, "client:loop: %s must be a function", hook_names[i]);
    lua_setfield(L, 3, hook_names[i]);
  }
  if (c->transport_ref != LUA_NOREF) luaL_error(L, "client:loop: this client sends through its transport");
  http_loop *lp = c->loop;
  if (lp && (lp->active.head || lp->done.head)) luaL_error(L, "client:loop: requests are in flight");
  if (lp == NULL) {
    lp = malloc(sizeof *lp);
    if (lp == NULL || http_loop_init(lp, sizeof(lreq)) != 0) {
      free(lp);
      return luaL_error(L, "alloy: cannot create a curl multi handle");
    }
    c->loop = lp;
  }
  http_loop_timer_fired(lp); /* the new hooks have set no timer yet */
  lua_pushvalue(L, 3);
  ac_setuservalue(L, 1); /* not the registry: a client its hooks refer to stays collectable */
  return 0;
}

/* handle:cancel() -> true once its callback has run with CANCELLED; false when it had run. */
static int request_cancel(lua_State *L) {
  request_handle *h = luaL_checkudata(L, 1, REQUEST_MT);
  lreq *r = h->r;
  if (r == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
  lua_rawgeti(L, 2, SLOT_CLIENT); /* 3: alive on the stack whatever the callback does */
  client *c = lua_touserdata(L, 3);
  entry e;
  enter(&e, L, c, 3);
  c->busy++; /* a close() from the callback leaves the release to us */
  http_loop_cancel(e.lp, &r->w);
  flush(&e);
  deliver(&e, r);
  flush(&e);
  c->busy--;
  if (c->closed && c->busy == 0) { /* what that close() deferred: the client goes now */
    lua_getfield(L, 3, "close");
    lua_pushvalue(L, 3);
    lua_call(L, 1, 0);
  }
  raise_first(&e);
  lua_pushboolean(L, 1);
  return 1;
}

static int request_tostring(lua_State *L) {
  request_handle *h = luaL_checkudata(L, 1, REQUEST_MT);
  lua_pushstring(L, h->r ? "alloy.request (pending)" : "alloy.request (finished)");
  return 1;
}

int loop_close(lua_State *L, client *c, int client_idx, int at_gc) {
  if (c->loop == NULL) return 0;
  entry e;
  enter(&e, L, c, client_idx);
  e.at_gc = at_gc;
  c->busy++;
  http_loop_cancel_all(e.lp);
  flush(&e);
  deliver_all(&e);
  flush(&e);
  c->busy--;
  if (e.failed && !at_gc) {
    lua_pushvalue(L, e.err);
    return 1;
  }
  lua_settop(L, e.err - 1);
  return 0;
}

void loop_free(lua_State *L, client *c) {
  http_loop *lp = c->loop;
  if (lp == NULL) return;
  c->loop = NULL;
  /* close() has delivered every request: only idle records are left, anchors let go */
  http_loop_list *lists[] = {&lp->active, &lp->done, &lp->idle};
  for (size_t i = 0; i < 3; i++)
    for (http_loop_req *w = lists[i]->head; w; w = w->next) {
      lreq *r = (lreq *)w;
      if (r->handle) r->handle->r = NULL;
      if (r->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
      r->ref = LUA_NOREF;
    }
  http_loop_free(lp);
  free(lp);
}

void loop_open(lua_State *L, const alloy_open_ctx *o) {
  static const luaL_Reg methods[] = {{"loop", client_loop},
                                     {"start", client_start},
                                     {"socket_action", client_socket_action},
                                     {"on_timeout", client_on_timeout},
                                     {NULL, NULL}};
  for (const luaL_Reg *m = methods; m->name; m++) {
    lua_pushvalue(L, o->cjson);
    lua_pushcclosure(L, m->func, 1);
    lua_setfield(L, o->methods, m->name);
  }
  luaL_newmetatable(L, REQUEST_MT);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, request_cancel);
  lua_setfield(L, -2, "cancel");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, request_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
