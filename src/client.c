/* The Client userdata: alloy.new, close/__gc/__close, the guard every method runs in, the
 * shared header chains; client:request and the named operations (one request each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloy_int.h"
#include "errors.h"

static void wipe_free(char *s) {
  if (s == NULL) return;
  volatile char *p = s;
  while (*p) *p++ = '\0';
  free(s);
}

static char *dup_string(lua_State *L, const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d == NULL) luaL_error(L, "alloy: out of memory");
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* A malloc'd copy of the string at idx, or NULL for nil. */
static char *opt_dup(lua_State *L, int idx) {
  size_t n = 0;
  const char *s = lua_tolstring(L, idx, &n);
  return s ? dup_string(L, s, n) : NULL;
}

static void client_release(lua_State *L, client *c) {
  if (c->released) return;
  c->released = 1;
  c->closed = 1;
  luaL_unref(L, LUA_REGISTRYINDEX, c->transport_ref);
  c->transport_ref = LUA_NOREF;
  loop_free(L, c);
  http_transfer_free(&c->single);
  for (size_t i = 0; i < c->pool_size; i++) {
    if (c->multi && c->pool[i].easy) curl_multi_remove_handle(c->multi, c->pool[i].easy);
    http_transfer_free(&c->pool[i]);
  }
  free(c->pool);
  c->pool = NULL;
  c->pool_size = 0;
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  for (size_t i = 0; i < c->conf.also_count; i++) wipe_free(c->conf.also_secret[i]);
  free(c->conf.also_secret);
  c->conf.also_secret = NULL;
  c->conf.also_count = 0;
  wipe_free(c->api_key);
  wipe_free(c->auth_header);
  c->api_key = c->auth_header = NULL;
  free(c->ua_header);
  free(c->version_header);
  c->ua_header = c->version_header = NULL;
  free(c->base_url);
  free(c->embedded_url);
  free(c->api_version);
  free(c->ca_file);
  free(c->proxy);
  c->base_url = c->embedded_url = c->api_version = NULL;
  c->ca_file = c->proxy = NULL;
  abuf_free(&c->scratch);
  for (size_t i = 0; c->op_urls && i < alloy_op_count; i++) {
    luaL_unref(L, LUA_REGISTRYINDEX, c->op_urls[i].ref);
    abuf_free(&c->op_urls[i].args);
  }
  free(c->op_urls);
  c->op_urls = NULL;
}

/* close(), __close and __gc: a call in progress (close() reached from on_result, a transport,
 * a metamethod or a finaliser it ran) keeps using the handles, so the release then waits for
 * it. An unreachable client has no call in progress: __gc releases at once. Requests started
 * on the host's loop are cancelled first, their callbacks run (close() raises the first
 * error one raised, once the client is released). */
static int close_client(lua_State *L, int at_gc) {
  client *c = luaL_checkudata(L, 1, CLIENT_MT);
  int failed = 0;
  if (!c->closed) {
    c->closed = 1;
    failed = loop_close(L, c, 1, at_gc);
  }
  if (c->busy == 0) client_release(L, c);
  return failed ? lua_error(L) : 0;
}

static int client_close(lua_State *L) { return close_client(L, 0); }
static int client_gc(lua_State *L) { return close_client(L, 1); }

/* Every client method but close runs through here, in protected mode, so what a call holds
 * is given back even when it raises; upvalues: the method, a closure over its own upvalues,
 * and its name. A nested call (from on_result, a transport, a metamethod or a finaliser) gets a scratch
 * buffer of its own, as the outer call may be in the middle of building a URL or a message
 * in the client's, and its own easy handle when the outer call is reading an answer from
 * `single`; both are parked here and put back when it ends. */
static int client_guarded(lua_State *L) {
  client *c = lua_touserdata(L, 1);
  int is_client = c && lua_getmetatable(L, 1);
  if (is_client) {
    luaL_getmetatable(L, CLIENT_MT);
    is_client = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!is_client) /* named here: luaL_checkudata would say '?' when called from C (pcall) */
    luaL_error(L, "calling 'client:%s' on bad self (alloy.client expected, got %s)",
               lua_tostring(L, lua_upvalueindex(2)), luaL_typename(L, 1));
  if (c->closed) luaL_error(L, "alloy: client is closed");
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  int batch = c->batch_running, single = c->single_running, holds = c->sigint_holds;
  int nested = c->busy > 0;
  abuf outer_scratch = c->scratch;
  http_transfer outer_single = c->single;
  if (nested) memset(&c->scratch, 0, sizeof c->scratch);
  if (single) memset(&c->single, 0, sizeof c->single); /* run_single makes one if needed */
  c->single_running = 0;
  c->busy++;
  int rc = lua_pcall(L, n, LUA_MULTRET, 0);
  c->busy--;
  for (; c->sigint_holds > holds; c->sigint_holds--) http_sigint_release();
  c->batch_running = batch;
  c->single_running = single;
  if (nested) {
    abuf_free(&c->scratch);
    c->scratch = outer_scratch;
  }
  if (single) {
    http_transfer_free(&c->single);
    c->single = outer_single; /* its easy handle points at c->single again */
  }
  if (c->closed && c->busy == 0) client_release(L, c);
  if (rc != 0) {
    alloy_name_arg_error(L, lua_tostring(L, lua_upvalueindex(2)));
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int client_tostring(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_MT);
  if (c->closed)
    lua_pushliteral(L, "alloy.client (closed)");
  else
    lua_pushfstring(L, "alloy.client (%s)", c->base_url);
  return 1;
}

/* Mallocs "<prefix><value>". */
static char *header_line(lua_State *L, const char *prefix, const char *value) {
  size_t n = strlen(prefix) + strlen(value) + 1;
  char *line = malloc(n);
  if (line == NULL) luaL_error(L, "alloy: out of memory");
  snprintf(line, n, "%s%s", prefix, value);
  return line;
}

/* Links the client's shared header nodes: every list ends in [User-Agent ->] Authorization. */
static void build_chains(client *c) {
  c->auth_node.data = c->auth_header;
  c->auth_node.next = NULL;
  c->ua_node.data = c->ua_header;
  c->ua_node.next = &c->auth_node;
  c->tail = c->ua_header ? &c->ua_node : &c->auth_node;
  for (int kind = 0; kind < 3; kind++)
    for (int version = 0; version < 2; version++) {
      struct curl_slist *n = c->chains[kind * 2 + version];
      int k = 0;
      n[k++].data = "Accept: application/json";
      if (kind == 1) n[k++].data = "Content-Type: application/json";
      if (kind != 0) n[k++].data = "Expect:"; /* no 100-continue round trip */
      if (version) n[k++].data = c->version_header;
      for (int i = 0; i + 1 < k; i++) n[i].next = &n[i + 1];
      n[k - 1].next = c->tail;
    }
}

static int alloy_new(lua_State *L) {
  char err[256];
  luaL_checktype(L, 1, LUA_TTABLE);
  if (alloy_curl_load(err, sizeof err) != 0) luaL_error(L, "alloy: %s", err);
  lua_settop(L, 1);
  options_read(L, 1); /* 2 .. OPT_NEW_COUNT + 1; the strings stay alive on the stack */
#define OPT(i) (2 + (i))
  size_t key_len = 0, ver_len = 0;
  const char *key = lua_tolstring(L, OPT(OPT_API_KEY), &key_len);
  const char *version = lua_tolstring(L, OPT(OPT_API_VERSION), &ver_len);

  http_conf conf;
  memset(&conf, 0, sizeof conf);
  conf.timeout_ms = (long)(lua_tonumber(L, OPT(OPT_TIMEOUT)) * 1000);
  conf.connect_timeout_ms = (long)(lua_tonumber(L, OPT(OPT_CONNECT_TIMEOUT)) * 1000);
  conf.retries = (int)lua_tointeger(L, OPT(OPT_RETRIES));
  conf.backoff = lua_tonumber(L, OPT(OPT_BACKOFF));
  conf.retry_max_wait = lua_tonumber(L, OPT(OPT_RETRY_MAX_WAIT));
  conf.max_body = (size_t)lua_tointeger(L, OPT(OPT_MAX_BODY));
  conf.insecure = lua_toboolean(L, OPT(OPT_INSECURE));
  conf.debug = lua_toboolean(L, OPT(OPT_DEBUG));

  client *c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->closed = 1; /* until fully built: a raise below leaves nothing for __gc to free twice */
  luaL_getmetatable(L, CLIENT_MT);
  lua_setmetatable(L, -2);
  c->closed = 0;
  c->transport_ref = LUA_NOREF;
  c->conf = conf;
  c->op_urls = calloc(alloy_op_count, sizeof *c->op_urls);
  if (c->op_urls == NULL) luaL_error(L, "alloy: out of memory");
  for (size_t i = 0; i < alloy_op_count; i++) c->op_urls[i].ref = LUA_NOREF;
  c->api_key = dup_string(L, key, key_len);
  c->api_version = dup_string(L, version, ver_len);
  c->base_url = opt_dup(L, OPT(OPT_BASE_URL));
  c->embedded_url = opt_dup(L, OPT(OPT_EMBEDDED_URL));
  c->ca_file = opt_dup(L, OPT(OPT_CA_FILE));
  c->proxy = opt_dup(L, OPT(OPT_PROXY));
  c->conf.ca_file = c->ca_file;
  c->conf.proxy = c->proxy;
  c->conf.secret = c->api_key;
  c->auth_header = header_line(L, "Authorization: Bearer ", c->api_key);
  c->version_header = header_line(L, "x-api-version: ", c->api_version);
  /* user_agent: nil for ours, a string, or false (or "") for none. */
  const char *agent = lua_tostring(L, OPT(OPT_USER_AGENT));
  char ua[96];
  if (lua_isnil(L, OPT(OPT_USER_AGENT))) {
    snprintf(ua, sizeof ua, "lua-alloy/%s libcurl/%s", ALLOY_VERSION, curl_version_info(CURLVERSION_NOW)->version);
    agent = ua;
  }
  if (agent && agent[0]) c->ua_header = header_line(L, "User-Agent: ", agent);
  build_chains(c);

  if (!lua_isnil(L, OPT(OPT_TRANSPORT))) {
    lua_pushvalue(L, OPT(OPT_TRANSPORT));
    c->transport_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
#undef OPT
  if (http_transfer_init(&c->single, &c->conf) != 0) luaL_error(L, "alloy: cannot create a curl handle");
  return 1;
}


/* Runs one prepared request on the client's handle (or its transport). */
static int run_single(lua_State *L, client *c, prepared *p) {
  if (c->closed) luaL_error(L, "alloy: client is closed");
  if (p->fail_code) return alloy_push_failure(L, p->fail_msg, p->fail_code, 0);
  if (c->transport_ref == LUA_NOREF) { /* held until the answer is read (see client_guarded) */
    if (c->single.easy == NULL && http_transfer_init(&c->single, &c->conf) != 0)
      luaL_error(L, "alloy: cannot create a curl handle");
    c->single_running = 1;
  }
  http_response own;
  const http_response *r = transport_send(L, c, p, &own);
  int n = response_result(L, c, r, p);
  if (r == &own) http_response_free(&own);
  return n;
}

/* client:request{...} */
static int client_request(lua_State *L) {
  client *c = method_client(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "op");
  if (!lua_isnil(L, -1)) luaL_error(L, "client:request: use the named method for op");
  lua_pop(L, 1);
  prepared p;
  anchors on_stack = {L, 0, 0};
  request_from_spec(L, c, 2, &on_stack, NULL, &p, "client:request");
  return run_single(L, c, &p);
}

/* client:<op>(args...); upvalues: cjson, the op's index, "client:<op>" for messages. */
static int client_op(lua_State *L) {
  const alloy_op *op = &alloy_ops[(size_t)lua_tointeger(L, lua_upvalueindex(2))];
  client *c = method_client(L);
  prepared p;
  anchors on_stack = {L, 0, 0};
  request_from_op(L, c, op, 2, lua_gettop(L) - 1, &on_stack, &p, lua_tostring(L, lua_upvalueindex(3)));
  return run_single(L, c, &p);
}

/* client:add_secret(value): one more value (a connector's password, a token) this client
 * never prints: masked as the key is in its messages and debug output. */
enum { MAX_ALSO_SECRETS = 32 };
static int client_add_secret(lua_State *L) {
  client *c = method_client(L);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  luaL_argcheck(L, n > 0 && n == strlen(s), 2, "a secret is a non-empty string without NUL");
  for (size_t i = 0; i < c->conf.also_count; i++)
    if (strcmp(c->conf.also_secret[i], s) == 0) return 0;
  if (c->conf.also_count == MAX_ALSO_SECRETS) luaL_error(L, "client:add_secret: at most %d secrets", MAX_ALSO_SECRETS);
  char **list = realloc(c->conf.also_secret, (c->conf.also_count + 1) * sizeof *list);
  if (list == NULL) luaL_error(L, "alloy: out of memory");
  c->conf.also_secret = list;
  list[c->conf.also_count] = dup_string(L, s, n);
  c->conf.also_count++;
  return 0;
}

static const luaL_Reg client_meta[] = {
  {"__gc", client_gc},
  {"__close", client_close},
  {"__tostring", client_tostring},
  {NULL, NULL}};

/* alloy.operations[op].retried: { HTTP_503 = "always" | "with Retry-After", ... } for the
 * failures the op is sent again after (up to the client's retries), from http_retryable, so a
 * hint states the rule the wire follows. */
static void push_retried(lua_State *L, const alloy_op *op) {
  static const long statuses[] = {429, 500, 502, 503, 504};
  static const CURLcode codes[] = {CURLE_COULDNT_CONNECT, CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
                                   CURLE_OPERATION_TIMEDOUT};
  int unsent = op->retry == RETRY_UNSENT;
  char name[32];
  lua_newtable(L);
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    const char *when = http_retryable(op->method, unsent, CURLE_OK, statuses[i], 0)   ? "always"
                       : http_retryable(op->method, unsent, CURLE_OK, statuses[i], 1) ? "with Retry-After"
                                                                                      : NULL;
    if (!when) continue;
    snprintf(name, sizeof name, "HTTP_%ld", statuses[i]);
    lua_pushstring(L, when);
    lua_setfield(L, -2, name);
  }
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    if (!http_retryable(op->method, unsent, codes[i], 0, 0)) continue;
    lua_pushstring(L, "always");
    lua_setfield(L, -2, alloy_curl_code((int)codes[i], name, sizeof name));
  }
}

/* Adds client:request and one method per operation (and alloy.operations), wraps every
 * method the units put in o->methods in the guard, and sets up the metatable. */
void client_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushvalue(L, o->cjson);
  lua_pushcclosure(L, client_request, 1);
  lua_setfield(L, o->methods, "request");
  lua_pushcfunction(L, client_add_secret);
  lua_setfield(L, o->methods, "add_secret");
  lua_newtable(L); /* alloy.operations */
  for (size_t i = 0; i < alloy_op_count; i++) {
    lua_pushvalue(L, o->cjson);
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushfstring(L, "client:%s", alloy_ops[i].name);
    lua_pushcclosure(L, client_op, 3);
    lua_setfield(L, o->methods, alloy_ops[i].name);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, alloy_ops[i].method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, alloy_ops[i].path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, alloy_ops[i].service == SERVICE_EMBEDDED ? "embedded" : "base");
    lua_setfield(L, -2, "service");
    push_retried(L, &alloy_ops[i]);
    lua_setfield(L, -2, "retried");
    lua_setfield(L, -2, alloy_ops[i].name);
  }
  lua_setfield(L, o->module, "operations");
  lua_pushnil(L);
  while (lua_next(L, o->methods)) {
    lua_pushvalue(L, -2); /* the method's name, for argument errors */
    lua_pushcclosure(L, client_guarded, 2);
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, o->methods); /* an existing key: allowed while traversing */
  }
  lua_pushcfunction(L, client_close); /* not guarded: it may run inside a guarded call */
  lua_setfield(L, o->methods, "close");

  luaL_newmetatable(L, CLIENT_MT);
  lua_pushvalue(L, o->cjson);
  ac_setfuncs(L, client_meta, 1);
  lua_pushvalue(L, o->methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, CLIENT_MT);
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  lua_pushvalue(L, o->cjson);
  lua_pushcclosure(L, alloy_new, 1);
  lua_setfield(L, o->module, "new");
}
