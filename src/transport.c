/* Hosts that send requests themselves: the Lua `transport` option (a function called with
 * the wire request) and client:prepare / client:finish (a request out as a table, its
 * answer back in), for hosts that must yield while sending. transport_send picks the way. */
#include <stdio.h>
#include <string.h>

#include "alloy_int.h"
#include "errors.h"
#include "url.h"

static void transport_failed(http_response *r, const char *why) {
  r->transport_failed = 1;
  snprintf(r->errbuf, sizeof r->errbuf, "%s", why ? why : "transport failed");
}

/* Pushes the wire form of p, what a transport sends: {method, url, headers = {{name, value}, ...},
 * body, timeout}, plus what finish needs to read the answer: path, op, raw. */
static void push_wire_request(lua_State *L, client *c, const prepared *p) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, p->req.method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, p->req.url);
  lua_setfield(L, -2, "url");
  if (p->req.body) {
    lua_pushlstring(L, p->req.body, p->req.body_len);
    lua_setfield(L, -2, "body");
  }
  lua_pushnumber(L, (lua_Number)c->conf.timeout_ms / 1000);
  lua_setfield(L, -2, "timeout");
  lua_pushlstring(L, p->path, p->path_len);
  lua_setfield(L, -2, "path");
  if (p->op) {
    lua_pushstring(L, p->op->name);
    lua_setfield(L, -2, "op");
  }
  if (p->raw) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "raw");
  }
  lua_newtable(L);
  int i = 0;
  for (const struct curl_slist *h = p->req.headers; h; h = h->next) {
    const char *colon = strchr(h->data, ':');
    const char *v = colon ? colon + 1 : "";
    while (*v == ' ') v++;
    if (colon == NULL || *v == '\0') continue; /* "Name:" only removes a libcurl default */
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, h->data, (size_t)(colon - h->data));
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, v);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "headers");
}

static void add_header_line(http_response *r, const char *name, const char *v, size_t vlen) {
  if (!header_value_ok(v, vlen)) return;
  abuf_adds(&r->headers, name);
  abuf_add(&r->headers, ": ", 2);
  abuf_add(&r->headers, v, vlen);
  abuf_add(&r->headers, "\r\n", 2);
}

/* Fills r as libcurl would from a transport's answer: the table {status, headers, body} at
 * idx, or, when that is not a table, the failure message at idx + 1. */
static void response_from_lua(lua_State *L, client *c, int idx, http_response *r) {
  int top = lua_gettop(L);
  idx = ac_absindex(L, idx);
  memset(r, 0, sizeof *r);
  r->attempts = 1;
  if (!lua_istable(L, idx)) {
    transport_failed(r, lua_tostring(L, idx + 1));
    return;
  }
  /* Every field first: an __index that raises must find nothing of r allocated yet. */
  lua_getfield(L, idx, "status");
  lua_getfield(L, idx, "body");
  lua_getfield(L, idx, "headers");
  r->status = (long)lua_tointeger(L, -3);
  size_t n = 0;
  const char *body = lua_tolstring(L, -2, &n);
  if (n > c->conf.max_body)
    r->too_large = 1, r->curl_code = CURLE_FILESIZE_EXCEEDED;
  else if (body)
    abuf_add(&r->body, body, n);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      size_t vlen = 0;
      if (lua_type(L, -2) == LUA_TSTRING) {
        const char *name = lua_tostring(L, -2);
        if (lua_istable(L, -1)) { /* a repeated header, as ngx.location.capture gives it */
          for (int i = 1;; i++) {
            lua_rawgeti(L, -1, i);
            const char *v = scalar_string(L, -1, &vlen);
            if (v) add_header_line(r, name, v, vlen);
            lua_pop(L, 1);
            if (!v) break;
          }
        } else {
          const char *v = scalar_string(L, -1, &vlen);
          if (v) add_header_line(r, name, v, vlen);
        }
      }
      lua_pop(L, 1);
    }
  }
  if (r->status < 100 || r->status > 999) transport_failed(r, "transport returned no valid status");
  lua_settop(L, top);
}

void transport_run(lua_State *L, client *c, const prepared *p, http_response *r) {
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->transport_ref);
  push_wire_request(L, c, p);
  if (lua_pcall(L, 1, 2, 0) != 0) lua_pushnil(L), lua_insert(L, -2); /* nil, error */
  response_from_lua(L, c, top + 1, r);
  lua_settop(L, top);
}

/* client:prepare(op_name, args... | spec) -> the wire request, for hosts that send it
 * themselves (a yielding transport: C cannot yield across lua_pcall on LuaJIT). */
static int client_prepare(lua_State *L) {
  client *c = method_client(L);
  int nargs = lua_gettop(L) - 1;
  const alloy_op *op = NULL;
  if (lua_type(L, 2) == LUA_TSTRING) {
    op = alloy_op_find(lua_tostring(L, 2));
    if (op == NULL) luaL_error(L, "client:prepare: unknown operation '%s'", lua_tostring(L, 2));
  }
  prepared p;
  anchors on_stack = {L, 0, 0};
  if (op) {
    request_from_op(L, c, op, 3, nargs - 1, &on_stack, &p, "client:prepare");
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    request_from_spec(L, c, 2, &on_stack, NULL, &p, "client:prepare");
  }
  if (p.fail_code) return alloy_push_failure(L, p.fail_msg, p.fail_code, 0);
  push_wire_request(L, c, &p);
  return 1;
}

/* client:finish(req, response | nil, err) -> what the call would have returned. */
static int client_finish(lua_State *L) {
  client *c = method_client(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 4);
  prepared p;
  memset(&p, 0, sizeof p);
  lua_getfield(L, 2, "method");
  lua_getfield(L, 2, "url");
  lua_getfield(L, 2, "path");
  if (!lua_isstring(L, -3) || !lua_isstring(L, -2) || !lua_isstring(L, -1))
    luaL_error(L, "client:finish: req must come from client:prepare");
  p.req.method = lua_tostring(L, -3);
  p.req.url = lua_tostring(L, -2);
  p.path = lua_tolstring(L, -1, &p.path_len);
  lua_getfield(L, 2, "raw");
  p.raw = lua_toboolean(L, -1);
  lua_getfield(L, 2, "op");
  if (lua_isstring(L, -1) && (p.op = alloy_op_find(lua_tostring(L, -1))) == NULL)
    luaL_error(L, "client:finish: unknown operation '%s'", lua_tostring(L, -1));
  http_response r;
  response_from_lua(L, c, 3, &r);
  int n = response_result(L, c, &r, &p);
  http_response_free(&r);
  return n;
}

const http_response *transport_send(lua_State *L, client *c, const prepared *p, http_response *r) {
  if (c->transport_ref != LUA_NOREF) {
    transport_run(L, c, p, r);
    return r;
  }
  http_warn_insecure(&c->conf);
  http_perform(&c->single, &p->req);
  return &c->single.res;
}

void transport_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushvalue(L, o->cjson);
  lua_pushcclosure(L, client_prepare, 1);
  lua_setfield(L, o->methods, "prepare");
  lua_pushvalue(L, o->cjson);
  lua_pushcclosure(L, client_finish, 1);
  lua_setfield(L, o->methods, "finish");
}
