/* luaopen_alloy: module functions, the Client userdata, option and request parsing.
 * The wire is in http.c, the operations table in ops.c, failure tuples in errors.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat.h"
#include "errors.h"
#include "files.h"
#include "http.h"
#include "ops.h"
#include "url.h"

#define ALLOY_VERSION "0.1.0"
#define CLIENT_MT "alloy.client"
#define RESPONSE_MT "alloy.response"
#define CJSON_UPVALUE lua_upvalueindex(1)

typedef struct client {
  http_conf conf;
  http_transfer single; /* one reused easy handle: keep-alive and TLS session reuse */
  CURLM *multi;         /* batches: created on first use, kept for its connections */
  http_transfer *pool;
  size_t pool_size;
  char *api_key;
  char *auth_header; /* "Authorization: Bearer <key>", the shared tail of every header list */
  struct curl_slist auth_node;
  char *ua_header;      /* "User-Agent: ...", or NULL when user_agent is false or "" */
  struct curl_slist ua_node;
  struct curl_slist *tail; /* ua_node -> auth_node, or auth_node */
  char *version_header; /* "x-api-version: <api_version>" */
  /* The fixed header lists of requests without headers of their own, built once:
   * [body kind (none, json, raw) * 2 + sends x-api-version][node]. */
  struct curl_slist chains[6][4];
  char *base_url;
  char *embedded_url;
  char *api_version;
  char *ca_file;
  char *proxy;
  abuf scratch; /* URL and message building, reused across calls */
  int transport_ref; /* a Lua function that sends instead of libcurl, or LUA_NOREF */
  int closed;   /* close() was called: any later use raises */
  int busy;     /* method calls in progress (see client_guarded) */
  int released; /* handles and buffers freed */
} client;

/* A request ready for the wire; the strings it points at are anchored in a Lua table. */
typedef struct prepared {
  http_request req;
  const alloy_op *op;
  const char *path; /* for messages: the URL's path, up to any query */
  size_t path_len;
  int raw;          /* do not decode the body */
  int url_table, url_index; /* where the URL's Lua string is: table[index], or the stack at index */
  int anchor_lo, anchor_hi; /* a batch request's slots in the anchor table */
  int in_batch;     /* its response table gets ok and value too: sized for them up front */
  const char *fail_code; /* a bad value: the request is not sent and fails with this */
  const char *fail_msg;
} prepared;

/* ------------------------------------------------------------------ helpers */

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

static client *check_client(lua_State *L, int idx) {
  client *c = luaL_checkudata(L, idx, CLIENT_MT);
  if (c->closed) luaL_error(L, "alloy: client is closed");
  return c;
}

/* Calls cjson's fn(value at idx); leaves results on the stack. */
static void cjson_call(lua_State *L, const char *fn, int idx, int nres) {
  idx = ac_absindex(L, idx);
  lua_getfield(L, CJSON_UPVALUE, fn);
  lua_pushvalue(L, idx);
  lua_call(L, 1, nres);
}

/* ------------------------------------------------------------------ client lifecycle */

static void client_release(lua_State *L, client *c) {
  if (c->released) return;
  c->released = 1;
  c->closed = 1;
  luaL_unref(L, LUA_REGISTRYINDEX, c->transport_ref);
  c->transport_ref = LUA_NOREF;
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
}

/* close() and __close: a call in progress (close() reached from a transport, a metamethod
 * or a finaliser it ran) keeps using the handles, so the release then waits for it. */
static int client_close(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_MT);
  c->closed = 1;
  if (c->busy == 0) client_release(L, c);
  return 0;
}

/* __gc: no call can be in progress on an unreachable client. */
static int client_gc(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_MT);
  client_release(L, c);
  return 0;
}

/* Every client method but close runs through here, in protected mode, so busy is right even
 * when the method raises; upvalue: the method, a closure over its own upvalues. */
static int client_guarded(lua_State *L) {
  client *c = check_client(L, 1);
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  c->busy++;
  int rc = lua_pcall(L, n, LUA_MULTRET, 0);
  c->busy--;
  if (c->closed && c->busy == 0) client_release(L, c);
  if (rc != 0) return lua_error(L);
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

/* ------------------------------------------------------------------ alloy.new */

/* ------------------------------------------------------------------ option rules */

enum opt_kind { OPT_KEY, OPT_VERSION, OPT_URL, OPT_NUMBER, OPT_WHOLE, OPT_TEXT, OPT_AGENT,
                OPT_BOOLEAN, OPT_FUNCTION };

/* The one rule and the one default of every option (alloy.new's, and client:batch's
 * concurrency); alloy.defaults, alloy.check_option and alloy.new all read this table. */
typedef struct option_rule {
  const char *name;
  enum opt_kind kind;
  const char *text;      /* a string default, or NULL */
  double number, min, max; /* a number default (when text is NULL and kind is a number) */
  const char *msg;       /* what the rule checks */
} option_rule;

enum { OPT_API_KEY, OPT_API_VERSION, OPT_BASE_URL, OPT_EMBEDDED_URL, OPT_TIMEOUT,
       OPT_CONNECT_TIMEOUT, OPT_RETRIES, OPT_BACKOFF, OPT_RETRY_MAX_WAIT, OPT_MAX_BODY,
       OPT_CA_FILE, OPT_PROXY, OPT_USER_AGENT, OPT_INSECURE, OPT_DEBUG, OPT_TRANSPORT,
       OPT_NEW_COUNT, /* the options above are alloy.new's */
       OPT_CONCURRENCY = OPT_NEW_COUNT, OPT_COUNT };

static const option_rule option_rules[OPT_COUNT] = {
  [OPT_API_KEY] = {"api_key", OPT_KEY, NULL, 0, 0, 0,
                   "api_key must be at least 8 characters, without spaces, CR, LF or NUL"},
  [OPT_API_VERSION] = {"api_version", OPT_VERSION, "2025-09", 0, 0, 0,
                       "api_version must be a version date YYYY-MM (e.g. 2025-09)"},
  [OPT_BASE_URL] = {"base_url", OPT_URL, "https://production.runalloy.com", 0, 0, 0,
                    "base_url must be an http:// or https:// URL without spaces or control characters"},
  [OPT_EMBEDDED_URL] = {"embedded_url", OPT_URL, "https://embedded.runalloy.com", 0, 0, 0,
                        "embedded_url must be an http:// or https:// URL without spaces or control characters"},
  [OPT_TIMEOUT] = {"timeout", OPT_NUMBER, NULL, 30, 0.001, 86400,
                   "timeout must be a number of seconds from 0.001 to 86400"},
  [OPT_CONNECT_TIMEOUT] = {"connect_timeout", OPT_NUMBER, NULL, 10, 0.001, 86400,
                           "connect_timeout must be a number of seconds from 0.001 to 86400"},
  [OPT_RETRIES] = {"retries", OPT_WHOLE, NULL, 2, 0, 10, "retries must be a whole number from 0 to 10"},
  [OPT_BACKOFF] = {"backoff", OPT_NUMBER, NULL, 0.5, 0, 60, "backoff must be a number of seconds from 0 to 60"},
  [OPT_RETRY_MAX_WAIT] = {"retry_max_wait", OPT_NUMBER, NULL, 30, 0, 3600,
                          "retry_max_wait must be a number of seconds from 0 to 3600"},
  [OPT_MAX_BODY] = {"max_body", OPT_WHOLE, NULL, 8388608, 1, 1073741824,
                    "max_body must be a whole number of bytes from 1 to 1073741824"},
  [OPT_CA_FILE] = {"ca_file", OPT_TEXT, NULL, 0, 0, 0, "ca_file must be a string without CR, LF or NUL"},
  [OPT_PROXY] = {"proxy", OPT_TEXT, NULL, 0, 0, 0, "proxy must be a string without CR, LF or NUL"},
  [OPT_USER_AGENT] = {"user_agent", OPT_AGENT, NULL, 0, 0, 0,
                      "user_agent must be a string without CR, LF or NUL, or false for none"},
  [OPT_INSECURE] = {"insecure", OPT_BOOLEAN, NULL, 0, 0, 0, "insecure must be a boolean"},
  [OPT_DEBUG] = {"debug", OPT_BOOLEAN, NULL, 0, 0, 0, "debug must be a boolean"},
  [OPT_TRANSPORT] = {"transport", OPT_FUNCTION, NULL, 0, 0, 0, "transport must be a function"},
  [OPT_CONCURRENCY] = {"concurrency", OPT_WHOLE, NULL, 16, 1, 1024,
                       "concurrency must be a whole number from 1 to 1024"},
};

static int has_default(const option_rule *r) {
  return r->text != NULL || r->kind == OPT_NUMBER || r->kind == OPT_WHOLE;
}

/* Integral values as Lua integers on 5.3+, so 30 is 30 and not 30.0. */
static void push_number(lua_State *L, double v) {
  if (v == (double)(lua_Integer)v)
    lua_pushinteger(L, (lua_Integer)v);
  else
    lua_pushnumber(L, v);
}

static void push_default(lua_State *L, const option_rule *r) {
  if (r->text)
    lua_pushstring(L, r->text);
  else if (r->kind == OPT_NUMBER || r->kind == OPT_WHOLE)
    push_number(L, r->number);
  else if (r->kind == OPT_BOOLEAN)
    lua_pushboolean(L, 0);
  else
    lua_pushnil(L);
}

static int is_version_date(const char *s, size_t n) {
  if (n != 7 || s[4] != '-') return 0;
  for (int i = 0; i < 7; i++)
    if (i != 4 && (s[i] < '0' || s[i] > '9')) return 0;
  int month = (s[5] - '0') * 10 + (s[6] - '0');
  return month >= 1 && month <= 12;
}

/* Checks the value at idx against rule r: pushes the normalised value (the default for nil)
 * and returns NULL, or pushes nothing and returns what the rule checks. */
static const char *option_check(lua_State *L, const option_rule *r, int idx) {
  int t = lua_type(L, idx);
  size_t n = 0;
  const char *s = t == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
  if (t == LUA_TNIL && r->kind != OPT_KEY) {
    push_default(L, r);
    return NULL;
  }
  switch (r->kind) {
    case OPT_KEY: /* never the value in a message; shorter "keys" could not be redacted (errors.c) */
      if (!s || n < 8 || !header_value_ok(s, n) || memchr(s, ' ', n)) return r->msg;
      break;
    case OPT_VERSION:
      if (!s || !is_version_date(s, n)) return r->msg;
      break;
    case OPT_URL:
      if (!s || !((n > 7 && strncmp(s, "http://", 7) == 0) || (n > 8 && strncmp(s, "https://", 8) == 0)))
        return r->msg;
      for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) return r->msg;
      while (n > 0 && s[n - 1] == '/') n--;
      lua_pushlstring(L, s, n);
      return NULL;
    case OPT_NUMBER:
    case OPT_WHOLE: {
      if (t != LUA_TNUMBER) return r->msg;
      double v = lua_tonumber(L, idx);
      if (!(v >= r->min && v <= r->max)) return r->msg;
      if (r->kind == OPT_WHOLE && v != (double)(lua_Integer)v) return r->msg;
      push_number(L, v);
      return NULL;
    }
    case OPT_TEXT:
      if (!s || !header_value_ok(s, n)) return r->msg;
      break;
    case OPT_AGENT:
      if (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)) break;
      if (!s || !header_value_ok(s, n)) return r->msg;
      break;
    case OPT_BOOLEAN:
      if (t != LUA_TBOOLEAN) return r->msg;
      break;
    case OPT_FUNCTION:
      if (t != LUA_TFUNCTION) return r->msg;
      break;
  }
  lua_pushvalue(L, idx);
  return NULL;
}

static const option_rule *find_rule(const char *name, int count) {
  for (int i = 0; i < count; i++)
    if (strcmp(option_rules[i].name, name) == 0) return &option_rules[i];
  return NULL;
}

/* alloy.check_option(name, value) -> normalised value | nil, msg */
static int alloy_check_option(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const option_rule *r = find_rule(name, OPT_COUNT);
  if (r == NULL) luaL_error(L, "alloy.check_option: unknown option '%s'", name);
  lua_settop(L, 2);
  const char *msg = option_check(L, r, 2);
  if (msg == NULL) return 1;
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* Pushes alloy.defaults: a fresh table of every default the rules hold. */
static void push_defaults(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; i < OPT_COUNT; i++) {
    if (!has_default(&option_rules[i])) continue;
    push_default(L, &option_rules[i]);
    lua_setfield(L, -2, option_rules[i].name);
  }
}

/* Pushes the normalised value of option i of the options table at t; raises on misuse. */
static void new_option(lua_State *L, int t, int i) {
  lua_getfield(L, t, option_rules[i].name);
  const char *msg = option_check(L, &option_rules[i], -1);
  if (msg) luaL_error(L, "alloy.new: %s", msg);
  lua_replace(L, -2);
}

/* Raises "<who>: unknown <what> 'k'" for a key of table t that is none of the count names
 * found every stride bytes from *names (a string array, or the name field of a table of
 * rows): typos fail loudly. */
static void check_keys(lua_State *L, int t, const char *const *names, size_t stride, size_t count,
                       const char *who, const char *what) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int known = 0;
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: %s names must be strings", who, what);
    const char *k = lua_tostring(L, -2);
    for (size_t i = 0; i < count && !known; i++)
      known = strcmp(k, *(const char *const *)((const char *)names + i * stride)) == 0;
    if (!known) luaL_error(L, "%s: unknown %s '%s'", who, what, k);
    lua_pop(L, 1);
  }
}
#define CHECK_KEYS(L, t, list, who, what) \
  check_keys(L, t, list, sizeof list[0], sizeof list / sizeof list[0], who, what)

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
  check_keys(L, 1, &option_rules[0].name, sizeof option_rules[0], OPT_NEW_COUNT, "alloy.new", "option");
  /* 2 .. OPT_NEW_COUNT + 1: every option, normalised; strings stay alive on the stack */
  luaL_checkstack(L, OPT_NEW_COUNT + 8, "alloy.new");
  for (int i = 0; i < OPT_NEW_COUNT; i++) new_option(L, 1, i);
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

/* ------------------------------------------------------------------ request building */

static const char *const request_fields[] = {"method", "url", "service", "path", "params", "query",
                                             "json", "body", "headers", "version_in_path", "raw",
                                             "op", "args"};


static const char *field_string(lua_State *L, int spec, const char *name, size_t *len, const char *who) {
  const char *s = NULL;
  lua_getfield(L, spec, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: field '%s' must be a string", who, name);
    s = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1); /* anchored by the spec table */
  return s;
}

/* Stringifies the value at idx for a URL or header; NULL when it is not a string/number/boolean. */
static const char *scalar_string(lua_State *L, int idx, size_t *len) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: return lua_tolstring(L, idx, len);
    case LUA_TBOOLEAN:
      *len = lua_toboolean(L, idx) ? 4 : 5;
      return lua_toboolean(L, idx) ? "true" : "false";
    default: return NULL;
  }
}

/* Where the strings a prepared request points at stay alive while it runs: a table (batch,
 * prepare), or, with table 0, the stack of the call itself (what is pushed stays there). */
typedef struct anchors {
  lua_State *L;
  int table;
  int n;
} anchors;

/* Anchors the value on top of the stack. */
static void anchor(anchors *a) {
  if (a->table) lua_rawseti(a->L, a->table, ++a->n);
}

typedef struct param_lookup {
  lua_State *L;
  int params;
  anchors *a;
} param_lookup;

static const char *lookup_param(void *ud, const char *name, size_t name_len, size_t *value_len) {
  param_lookup *pl = ud;
  if (pl->params == 0) return NULL;
  luaL_checkstack(pl->L, 2, "path parameters");
  lua_pushlstring(pl->L, name, name_len);
  lua_rawget(pl->L, pl->params);
  /* A number's string form is new: anchor it before it can be collected. */
  const char *v = scalar_string(pl->L, -1, value_len);
  anchor(pl->a);
  return v;
}

/* A named operation's path parameters: its positional arguments, in template order. */
typedef struct arg_lookup {
  lua_State *L;
  int next, last;
  anchors *a;
  const char *who;
} arg_lookup;

static const char *lookup_arg(void *ud, const char *name, size_t name_len, size_t *value_len) {
  arg_lookup *al = ud;
  lua_State *L = al->L;
  int i = al->next++;
  int t = i <= al->last ? lua_type(L, i) : LUA_TNIL;
  if (t == LUA_TSTRING) return lua_tolstring(L, i, value_len);
  if (t == LUA_TNUMBER) {
    luaL_checkstack(L, 1, "path parameters");
    lua_pushvalue(L, i); /* converted on a copy: the caller's argument stays a number */
    const char *v = lua_tolstring(L, -1, value_len);
    anchor(al->a);
    return v;
  }
  char shown[48];
  snprintf(shown, sizeof shown, "%.*s", (int)name_len, name);
  if (t == LUA_TNIL) luaL_error(L, "%s: missing argument '%s'", al->who, shown);
  luaL_error(L, "%s: argument '%s' must be a string", al->who, shown);
  return NULL;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends "?k=v&..." sorted by key, so the same query always makes the same URL. */
static void append_query(lua_State *L, int query, abuf *url) {
  const char *keys[64];
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, query)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "alloy: query keys must be strings");
    if (n == sizeof keys / sizeof keys[0]) luaL_error(L, "alloy: too many query parameters");
    keys[n++] = lua_tostring(L, -2);
    lua_pop(L, 1);
  }
  qsort(keys, n, sizeof keys[0], compare_strings);
  for (size_t i = 0; i < n; i++) {
    size_t vlen = 0;
    lua_getfield(L, query, keys[i]);
    const char *v = scalar_string(L, -1, &vlen);
    if (v == NULL) luaL_error(L, "alloy: query value '%s' must be a string, number or boolean", keys[i]);
    abuf_add(url, i == 0 ? "?" : "&", 1);
    url_encode(url, keys[i], strlen(keys[i]));
    abuf_add(url, "=", 1);
    url_encode(url, v, vlen);
    lua_pop(L, 1);
  }
}

static int header_is(const char *name, size_t n, const char *want) {
  return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

enum { BODY_NONE, BODY_JSON, BODY_RAW };

/* Marks p as failing with INVALID_ARGUMENT (the first reason wins); the message is a Lua
 * string anchored through a, so a batch of thousands carries no message buffers. */
static void set_failure(lua_State *L, prepared *p, anchors *a, const char *fmt, const char *name) {
  char msg[200];
  if (p->fail_code) return;
  p->fail_code = alloy_code_name(CODE_INVALID_ARGUMENT);
  int n = snprintf(msg, sizeof msg, "%s: ", p->fail_code);
  snprintf(msg + n, sizeof msg - (size_t)n, fmt, name);
  lua_pushstring(L, msg);
  p->fail_msg = lua_tostring(L, -1);
  anchor(a);
}

/* The header list of a request. Without headers of its own, one of the client's fixed
 * chains; otherwise nodes and strings in one userdata (anchored through a), ending in the
 * client's shared [User-Agent ->] Authorization nodes. */
static struct curl_slist *build_headers(lua_State *L, client *c, int headers, int body_kind,
                                        int version_header, prepared *p, anchors *a) {
  enum { MAX_HEADERS = 32 };
  const char *names[MAX_HEADERS];
  size_t lens[MAX_HEADERS];
  int have_accept = 0, have_version = 0, have_ctype = 0, have_ua = 0;
  size_t count = 0, total = 0;
  const char *bad_header = NULL; /* the first whose value holds CR, LF or NUL */

  if (headers) {
    lua_pushnil(L);
    while (lua_next(L, headers)) {
      size_t nlen = 0, vlen = 0;
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "alloy: header names must be strings");
      const char *name = lua_tolstring(L, -2, &nlen);
      const char *value = scalar_string(L, -1, &vlen);
      if (value == NULL) luaL_error(L, "alloy: header '%s' must be a string or number", name);
      if (!header_name_ok(name, nlen)) luaL_error(L, "alloy: invalid header name '%s'", name);
      if (header_is(name, nlen, "authorization"))
        luaL_error(L, "alloy: the Authorization header is set by the client");
      if (count == MAX_HEADERS) luaL_error(L, "alloy: too many headers");
      if (!header_value_ok(value, vlen) && bad_header == NULL) bad_header = name;
      have_accept |= header_is(name, nlen, "accept");
      have_version |= header_is(name, nlen, "x-api-version");
      have_ctype |= header_is(name, nlen, "content-type");
      have_ua |= header_is(name, nlen, "user-agent");
      /* "name: value" is assembled below; the names stay anchored by the headers table */
      names[count] = name;
      lens[count] = nlen;
      count++;
      total += nlen + 2 + vlen + 1;
      lua_pop(L, 1);
    }
  }
  if (bad_header) set_failure(L, p, a, "header '%.60s' contains CR, LF or NUL", bad_header);
  if (count == 0) return c->chains[body_kind * 2 + version_header];

  /* Lay out nodes then strings in one block. */
  size_t nodes = count + (have_accept ? 0 : 1) + (version_header && !have_version ? 1 : 0) +
                 (body_kind == BODY_JSON && !have_ctype ? 1 : 0) + (body_kind != BODY_NONE ? 1 : 0);
  struct curl_slist *list = lua_newuserdata(L, nodes * sizeof(struct curl_slist) + total);
  char *strings = (char *)(list + nodes);
  size_t k = 0;
  for (size_t i = 0; i < count; i++) {
    size_t vlen = 0;
    lua_getfield(L, headers, names[i]);
    const char *v = scalar_string(L, -1, &vlen);
    list[k].data = strings;
    memcpy(strings, names[i], lens[i]);
    strings += lens[i];
    *strings++ = ':';
    *strings++ = ' ';
    memcpy(strings, v, vlen);
    strings += vlen;
    *strings++ = '\0';
    lua_pop(L, 1);
    k++;
  }
  if (!have_accept) list[k++].data = "Accept: application/json";
  if (body_kind == BODY_JSON && !have_ctype) list[k++].data = "Content-Type: application/json";
  if (body_kind != BODY_NONE) list[k++].data = "Expect:"; /* no 100-continue round trip */
  if (version_header && !have_version) list[k++].data = c->version_header;
  for (size_t i = 0; i + 1 < nodes; i++) list[i].next = &list[i + 1];
  list[nodes - 1].next = have_ua ? &c->auth_node : c->tail;
  anchor(a);
  return list;
}

static const char *check_method(lua_State *L, const char *m, size_t n, const char *who) {
  if (n == 0 || n > 10) luaL_error(L, "%s: invalid method", who);
  for (size_t i = 0; i < n; i++)
    if (m[i] < 'A' || m[i] > 'Z') luaL_error(L, "%s: method must be upper-case letters", who);
  return m;
}

/* What a request is made of, read from a spec table or from a named operation's arguments.
 * json, body, query, headers: stack indices of those values, 0 when absent. */
typedef struct request_input {
  const char *method;
  size_t method_len;
  const char *full_url; /* or base + path */
  size_t url_len;
  const char *base;
  const char *path;
  size_t path_len;
  int version_in_path, raw;
  int json, body, query, headers;
  url_param_fn lookup; /* the values of the path's {name} placeholders */
  void *lookup_ud;
} request_input;

/* Builds the wire request p from in; the strings it makes are anchored through a. Misuse
 * raises; bad values (ids, header values) set p->fail_*. */
static void build_request(lua_State *L, client *c, const request_input *in, anchors *a,
                          const alloy_op *op, prepared *p, const char *who) {
  luaL_checkstack(L, 16, "request");
  memset(p, 0, sizeof *p);
  p->op = op;
  p->raw = in->raw;
  p->req.method = check_method(L, in->method, in->method_len, who);
  if (in->json) {
    lua_getfield(L, CJSON_UPVALUE, "encode");
    lua_pushvalue(L, in->json);
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2)) luaL_error(L, "%s: cannot encode json: %s", who, lua_tostring(L, -1));
    lua_pop(L, 1);
    p->req.body = lua_tolstring(L, -1, &p->req.body_len);
    anchor(a);
  } else if (in->body) {
    p->req.body = lua_tolstring(L, in->body, &p->req.body_len);
  }

  /* URL: base + [/version] + expanded path + query. */
  abuf *url = &c->scratch;
  abuf_clear(url);
  size_t path_off;
  if (in->full_url) {
    abuf_add(url, in->full_url, in->url_len);
    const char *scheme_end = strstr(url->data, "://");
    const char *slash = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    path_off = slash ? (size_t)(slash - url->data) : url->len;
  } else {
    abuf_adds(url, in->base);
    path_off = url->len;
    if (in->version_in_path) {
      abuf_add(url, "/", 1);
      abuf_adds(url, c->api_version);
    }
    const char *err = NULL;
    char name[48];
    if (url_expand(url, in->path, in->path_len, in->lookup, in->lookup_ud, &err, name, sizeof name) != 0) {
      if (strcmp(err, "invalid path parameter") != 0) luaL_error(L, "%s: %s '%s'", who, err, name);
      set_failure(L, p, a, "path parameter '%s' must be a non-empty id without control characters", name);
    }
  }
  if (in->query) append_query(L, in->query, url);

  lua_pushlstring(L, url->data, url->len);
  p->req.url = lua_tostring(L, -1);
  p->url_table = a->table;
  p->url_index = a->table ? a->n + 1 : lua_gettop(L);
  anchor(a);
  const char *q = strchr(p->req.url + path_off, '?');
  p->path = p->req.url + path_off;
  p->path_len = q ? (size_t)(q - p->path) : strlen(p->path);
  if (p->path_len == 0) p->path = "/", p->path_len = 1;

  int body_kind = in->json ? BODY_JSON : in->body ? BODY_RAW : BODY_NONE;
  p->req.headers = build_headers(L, c, in->headers, body_kind, !in->version_in_path, p, a);
}

/* Pushes field name of the spec table when it is set, checking its type; returns its index or 0. */
static int spec_field(lua_State *L, int spec, const char *name, int type, const char *who) {
  lua_getfield(L, spec, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (type != LUA_TNONE && lua_type(L, -1) != type)
    luaL_error(L, "%s: %s must be a %s", who, name, lua_typename(L, type));
  return lua_gettop(L);
}

/* Prepares p from the request spec table at index spec (client:request, batch, prepare). */
static void spec_request(lua_State *L, client *c, int spec, anchors *a, const alloy_op *op,
                         prepared *p, const char *who) {
  spec = ac_absindex(L, spec);
  CHECK_KEYS(L, spec, request_fields, who, "request field");
  request_input in;
  memset(&in, 0, sizeof in);
  in.method = field_string(L, spec, "method", &in.method_len, who);
  if (in.method == NULL) {
    in.method = op ? op->method : "GET";
    in.method_len = strlen(in.method);
  }
  size_t slen = 0;
  in.full_url = field_string(L, spec, "url", &in.url_len, who);
  in.path = field_string(L, spec, "path", &in.path_len, who);
  const char *service = field_string(L, spec, "service", &slen, who);
  if (in.path == NULL && op) {
    in.path = op->path;
    in.path_len = strlen(in.path);
  }
  if (in.full_url && in.path) luaL_error(L, "%s: give either url or path, not both", who);
  if (!in.full_url && !in.path) luaL_error(L, "%s: a path (or url) is required", who);
  if (in.path && (in.path_len == 0 || in.path[0] != '/')) luaL_error(L, "%s: path must start with '/'", who);
  if (in.full_url && !header_value_ok(in.full_url, in.url_len))
    luaL_error(L, "%s: url contains CR, LF or NUL", who);
  in.base = c->base_url;
  if (service == NULL && op && op->service == SERVICE_EMBEDDED) in.base = c->embedded_url;
  if (service) {
    if (strcmp(service, "embedded") == 0)
      in.base = c->embedded_url;
    else if (strcmp(service, "base") != 0)
      luaL_error(L, "%s: service must be \"base\" or \"embedded\"", who);
  }
  lua_getfield(L, spec, "version_in_path");
  in.version_in_path = lua_toboolean(L, -1);
  lua_getfield(L, spec, "raw");
  in.raw = lua_toboolean(L, -1);
  lua_pop(L, 2);

  in.json = spec_field(L, spec, "json", LUA_TNONE, who);
  in.body = spec_field(L, spec, "body", LUA_TSTRING, who);
  if (in.json && in.body) luaL_error(L, "%s: give either json or body, not both", who);
  int params = spec_field(L, spec, "params", LUA_TTABLE, who);
  in.query = spec_field(L, spec, "query", LUA_TTABLE, who);
  in.headers = spec_field(L, spec, "headers", LUA_TTABLE, who);
  param_lookup pl = {L, params, a};
  in.lookup = lookup_param;
  in.lookup_ud = &pl;
  build_request(L, c, &in, a, op, p, who);
}

static void op_spec(lua_State *L, const alloy_op *op, int first, int nargs, const char *who);

/* Prepares p for named operation op called with nargs arguments from index first: straight
 * from the arguments, unless an options table asks for the general path. */
static void op_request(lua_State *L, client *c, const alloy_op *op, int first, int nargs,
                       anchors *a, prepared *p, const char *who) {
  int nparams = 0;
  for (const char *s = op->path; (s = strchr(s, '{')) != NULL; s++) nparams++;
  int last = first + nargs - 1;
  int body = op->has_body ? first + nparams : 0;
  int options = first + nparams + (op->has_body ? 1 : 0);
  if (options <= last && !lua_isnil(L, options)) {
    op_spec(L, op, first, nargs, who);
    spec_request(L, c, lua_gettop(L), a, op, p, who);
    return;
  }
  if (options < last) luaL_error(L, "%s: too many arguments", who);
  request_input in;
  memset(&in, 0, sizeof in);
  in.method = op->method;
  in.method_len = strlen(op->method);
  in.base = op->service == SERVICE_EMBEDDED ? c->embedded_url : c->base_url;
  in.path = op->path;
  in.path_len = strlen(op->path);
  if (body) {
    if (body <= last && !lua_isnil(L, body)) {
      luaL_checktype(L, body, LUA_TTABLE);
      in.json = body;
    } else {
      lua_newtable(L);
      in.json = lua_gettop(L);
    }
  }
  arg_lookup al = {L, first, last, a, who};
  in.lookup = lookup_arg;
  in.lookup_ud = &al;
  build_request(L, c, &in, a, op, p, who);
}

/* ------------------------------------------------------------------ responses */

static void set_number(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

/* Pushes {name = value} for a raw header block: names lower-cased, repeats joined. */
static void push_header_table(lua_State *L, const char *cursor, size_t len) {
  const char *end = cursor + len;
  header_field f;
  char name[128];
  lua_createtable(L, 0, 8);
  while (header_next(&cursor, end, &f)) {
    if (f.name_len >= sizeof name) continue;
    for (size_t i = 0; i < f.name_len; i++) {
      char ch = f.name[i];
      name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    lua_pushlstring(L, name, f.name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, f.value, f.value_len);
    } else { /* repeated header: join as HTTP allows */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, f.value, f.value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}

/* The response metatable's __index: res.headers is built from res.raw_headers when first
 * read, since most callers never look at it and it is most of a response's cost. */
static int response_index(lua_State *L) {
  size_t n = 0;
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "headers") != 0) return 0;
  lua_getfield(L, 1, "raw_headers");
  const char *raw = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "";
  push_header_table(L, raw, n);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/* Pushes the response table for r. */
static void push_response(lua_State *L, const http_response *r, const prepared *p) {
  lua_createtable(L, 0, p->in_batch ? 9 : 7);
  luaL_getmetatable(L, RESPONSE_MT);
  lua_setmetatable(L, -2);
  lua_pushinteger(L, (lua_Integer)r->status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
  lua_setfield(L, -2, "body");
  if (p->url_index == 0)
    lua_pushstring(L, p->req.url);
  else if (p->url_table)
    lua_rawgeti(L, p->url_table, p->url_index);
  else
    lua_pushvalue(L, p->url_index);
  lua_setfield(L, -2, "url");
  set_number(L, "time", r->total_time);
  lua_pushinteger(L, r->attempts);
  lua_setfield(L, -2, "attempts");
  lua_pushlstring(L, r->headers.data ? r->headers.data : "", r->headers.len);
  lua_setfield(L, -2, "raw_headers");
}

/* Pushes nil, msg, code, res for a failure described by code and detail. */
static int fail(lua_State *L, client *c, const prepared *p, const http_response *r, const char *code,
                const char *detail, size_t detail_len, int res) {
  alloy_format_message(&c->scratch, code, detail, detail_len, p->req.method, p->path, p->path_len,
                       r ? r->attempts : 0, c->api_key);
  return alloy_push_failure(L, c->scratch.data, code, res);
}

/* Leaves the value a named operation returns on top of the stack, or returns 0 when the
 * decoded body (at json) does not have the expected shape. */
static int shape_result(lua_State *L, const alloy_op *op, int json) {
  static const char *const wrappers[] = {"data", "credentials", "metadata", "connectors", NULL};
  if (op->result == RESULT_JSON) {
    lua_pushvalue(L, json);
    return 1;
  }
  if (!lua_istable(L, json)) return 0;
  if (op->result == RESULT_FIELD) {
    lua_getfield(L, json, op->field);
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) return 1;
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, json, 1);
  int is_array = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (is_array) {
    lua_pushvalue(L, json);
    return 1;
  }
  for (int i = 0; wrappers[i]; i++) {
    lua_getfield(L, json, wrappers[i]);
    if (lua_istable(L, -1)) return 1;
    lua_pop(L, 1);
  }
  lua_pushnil(L); /* an empty array decodes to an empty table */
  if (lua_next(L, json) == 0) {
    lua_pushvalue(L, json);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

/* Turns the finished transfer into Lua results: res (or value, res) or the failure tuple. */
static int finish_request(lua_State *L, client *c, const http_response *r, const prepared *p) {
  if (r->transport_failed)
    return fail(L, c, p, r, alloy_code_name(CODE_TRANSPORT_ERROR), r->errbuf, strlen(r->errbuf), 0);
  if (r->curl_code != CURLE_OK) {
    char other[24];
    const char *code = r->too_large ? alloy_code_name(CODE_BODY_TOO_LARGE)
                                    : alloy_curl_code((int)r->curl_code, other, sizeof other);
    const char *text = r->too_large ? "response body is larger than max_body" : r->errbuf;
    return fail(L, c, p, r, code, text, strlen(text), 0);
  }

  push_response(L, r, p);
  int res = lua_gettop(L);
  char json_err[96] = "";
  if (!p->raw && r->body.len > 0) {
    lua_getfield(L, CJSON_UPVALUE, "decode");
    lua_getfield(L, res, "body");
    lua_call(L, 1, 2);
    if (!lua_isnil(L, -2)) {
      lua_pop(L, 1);
      lua_setfield(L, res, "json");
    } else {
      snprintf(json_err, sizeof json_err, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid JSON");
    }
    lua_settop(L, res);
  }
  lua_getfield(L, res, "json");
  int json = lua_gettop(L);
  abuf detail = {0};
  int n;

  if (r->status >= 300 || r->status < 200) {
    char code[24];
    alloy_http_code(r->status, code, sizeof code);
    alloy_server_detail(L, json, r->body.data ? r->body.data : "", r->body.len, &detail);
    if (detail.len == 0) abuf_adds(&detail, "no explanation in the response");
    n = fail(L, c, p, r, code, detail.data, detail.len, res);
  } else if (json_err[0]) {
    abuf_adds(&detail, json_err);
    abuf_adds(&detail, "; body starts: ");
    abuf_add(&detail, r->body.data, r->body.len < 40 ? r->body.len : 40);
    n = fail(L, c, p, r, alloy_code_name(CODE_JSON_DECODE), detail.data, detail.len, res);
  } else if (p->op == NULL) {
    lua_pushvalue(L, res);
    n = 1;
  } else if (shape_result(L, p->op, json)) {
    lua_pushvalue(L, res);
    n = 2;
  } else {
    abuf_adds(&detail, "unexpected response shape: ");
    if (p->op->result == RESULT_FIELD) {
      abuf_adds(&detail, "no '");
      abuf_adds(&detail, p->op->field);
      abuf_adds(&detail, "' field");
    } else {
      abuf_adds(&detail, "no list (an array, or data/credentials/metadata/connectors)");
    }
    n = fail(L, c, p, r, alloy_code_name(CODE_BAD_RESPONSE), detail.data, detail.len, res);
  }
  abuf_free(&detail);
  return n;
}

static void warn_insecure(client *c) {
  if (c->conf.insecure)
    fprintf(stderr, "alloy: WARNING: TLS certificate verification is disabled (insecure = true)\n");
}

/* Turns positional arguments of a named operation into a request spec table (pushed). */
static void op_spec(lua_State *L, const alloy_op *op, int first, int nargs, const char *who) {
  int arg = first;
  lua_newtable(L);
  int spec = lua_gettop(L);
  lua_newtable(L);
  const char *s = op->path;
  while ((s = strchr(s, '{')) != NULL) {
    const char *e = strchr(s, '}');
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)(e - s - 1), s + 1);
    int t = arg < first + nargs ? lua_type(L, arg) : LUA_TNIL;
    if (t == LUA_TNIL) luaL_error(L, "%s: missing argument '%s'", who, name);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) luaL_error(L, "%s: argument '%s' must be a string", who, name);
    lua_pushvalue(L, arg++);
    lua_setfield(L, -2, name);
    s = e + 1;
  }
  lua_setfield(L, spec, "params");
  if (op->has_body) {
    if (arg < first + nargs && !lua_isnil(L, arg)) {
      luaL_checktype(L, arg, LUA_TTABLE);
      lua_pushvalue(L, arg);
    } else {
      lua_newtable(L);
    }
    lua_setfield(L, spec, "json");
    arg++;
  }
  if (arg < first + nargs && !lua_isnil(L, arg)) { /* options: merged over the row */
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, arg)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, spec);
    }
    arg++;
  }
  if (arg < first + nargs) luaL_error(L, "%s: too many arguments", who);
}

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
  lua_getfield(L, idx, "status");
  r->status = (long)lua_tointeger(L, -1);
  lua_getfield(L, idx, "body");
  size_t n = 0;
  const char *body = lua_tolstring(L, -1, &n);
  if (n > c->conf.max_body)
    r->too_large = 1, r->curl_code = CURLE_FILESIZE_EXCEEDED;
  else if (body)
    abuf_add(&r->body, body, n);
  lua_getfield(L, idx, "headers");
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

/* Sends p through the client's Lua transport and fills r as libcurl would. */
static void run_transport(lua_State *L, client *c, const prepared *p, http_response *r) {
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
  client *c = check_client(L, 1);
  int nargs = lua_gettop(L) - 1;
  const alloy_op *op = NULL;
  if (lua_type(L, 2) == LUA_TSTRING) {
    op = alloy_op_find(lua_tostring(L, 2));
    if (op == NULL) luaL_error(L, "client:prepare: unknown operation '%s'", lua_tostring(L, 2));
  }
  prepared p;
  anchors on_stack = {L, 0, 0};
  if (op) {
    op_request(L, c, op, 3, nargs - 1, &on_stack, &p, "client:prepare");
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    spec_request(L, c, 2, &on_stack, NULL, &p, "client:prepare");
  }
  if (p.fail_code) return alloy_push_failure(L, p.fail_msg, p.fail_code, 0);
  push_wire_request(L, c, &p);
  return 1;
}

/* client:finish(req, response | nil, err) -> what the call would have returned. */
static int client_finish(lua_State *L) {
  client *c = check_client(L, 1);
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
  int n = finish_request(L, c, &r, &p);
  http_response_free(&r);
  return n;
}

/* Runs one prepared request on the client's handle (or its transport). */
static int run_single(lua_State *L, client *c, prepared *p) {
  if (c->closed) luaL_error(L, "alloy: client is closed");
  if (p->fail_code) return alloy_push_failure(L, p->fail_msg, p->fail_code, 0);
  if (c->transport_ref != LUA_NOREF) {
    http_response r;
    run_transport(L, c, p, &r);
    int n = finish_request(L, c, &r, p);
    http_response_free(&r);
    return n;
  }
  warn_insecure(c);
  http_perform(&c->single, &p->req);
  return finish_request(L, c, &c->single.res, p);
}

/* client:request{...} */
static int client_request(lua_State *L) {
  client *c = check_client(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "op");
  if (!lua_isnil(L, -1)) luaL_error(L, "client:request: use the named method for op");
  lua_pop(L, 1);
  prepared p;
  anchors on_stack = {L, 0, 0};
  spec_request(L, c, 2, &on_stack, NULL, &p, "client:request");
  return run_single(L, c, &p);
}

/* client:<op>(args...); upvalues: cjson, the op's index, "client:<op>" for messages. */
static int client_op(lua_State *L) {
  const alloy_op *op = &alloy_ops[(size_t)lua_tointeger(L, lua_upvalueindex(2))];
  client *c = check_client(L, 1);
  prepared p;
  anchors on_stack = {L, 0, 0};
  op_request(L, c, op, 2, lua_gettop(L) - 1, &on_stack, &p, lua_tostring(L, lua_upvalueindex(3)));
  return run_single(L, c, &p);
}

/* ------------------------------------------------------------------ batch */

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

typedef struct batch_ctx {
  lua_State *L;
  client *c;
  int requests;         /* the requests table */
  unsigned char *state; /* per request */
  size_t n, cursor;     /* requests; the next one to consider sending */
  prepared *slots;      /* what each pooled transfer runs, by its place in c->pool */
  size_t *slot_index;   /* and which request that is */
  anchors keep;         /* strings of the requests in flight */
  const alloy_op *op;   /* the last op looked up: most batches repeat one */
  int out;              /* the results table, or 0 with on_result */
  int on_result;        /* on_result(i, result), or 0 */
  int error;            /* where on_result's error is kept: the batch stops and raises it */
  int failed;           /* on_result raised */
  int failures;
} batch_ctx;

/* Prepares request i of the batch into p (pushing what it needs; the caller restores the
 * stack). Misuse raises, naming the request. */
static void batch_prepare(batch_ctx *b, size_t i, anchors *a, prepared *p) {
  lua_State *L = b->L;
  lua_rawgeti(L, b->requests, (int)i + 1);
  if (!lua_istable(L, -1)) luaL_error(L, "client:batch: request %d must be a table", (int)i + 1);
  int item = lua_gettop(L);
  lua_getfield(L, item, "op");
  if (lua_isnil(L, -1)) {
    spec_request(L, b->c, item, a, NULL, p, "client:batch");
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
  op_request(L, b->c, op, args + 1, nargs, a, p, "client:batch");
  p->in_batch = 1;
}

/* The result of request i: the response (ok = true, value for a named op) or {ok = false,
 * error, code, res}; stored in results[i] or handed to on_result. r NULL: p failed
 * validation. Returns nonzero when on_result raised. */
static int batch_store(batch_ctx *b, size_t i, const http_response *r, const prepared *p) {
  lua_State *L = b->L;
  int base = lua_gettop(L);
  b->state[i] = REQ_DONE;
  int nres = r ? finish_request(L, b->c, r, p) : alloy_push_failure(L, p->fail_msg, p->fail_code, 0);
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
  } else { /* res, or value, res */
    lua_pushvalue(L, nres == 2 ? first + 1 : first);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    if (nres == 2) {
      lua_pushvalue(L, first);
      lua_setfield(L, -2, "value");
    }
  }
  if (b->on_result) {
    lua_pushvalue(L, b->on_result);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 2, 0, 0) != 0) {
      lua_replace(L, b->error);
      b->failed = 1;
    }
  } else {
    lua_rawseti(L, b->out, (int)i + 1);
  }
  lua_settop(L, base);
  return b->failed;
}

/* Prepares request i on the stack and stores its result: r, or p's own failure. */
static int batch_store_fresh(batch_ctx *b, size_t i, const http_response *r) {
  int top = lua_gettop(b->L);
  anchors on_stack = {b->L, 0, 0};
  prepared p;
  batch_prepare(b, i, &on_stack, &p);
  int rc = batch_store(b, i, p.fail_code ? NULL : r, &p);
  lua_settop(b->L, top);
  return rc;
}

/* Drops what anchored p once its result is out: memory then follows what is in flight. */
static void release_anchors(batch_ctx *b, const prepared *p) {
  for (int k = p->anchor_lo; k <= p->anchor_hi; k++) {
    lua_pushnil(b->L);
    lua_rawseti(b->L, b->keep.table, k);
  }
}

/* http_batch's start: requests are prepared as transfers free up, so a batch holds only
 * what is in flight (its strings are anchored in keep until the result is out). */
static int batch_start(void *ud, http_transfer *t) {
  batch_ctx *b = ud;
  lua_State *L = b->L;
  if (b->c->closed) return HTTP_STOP; /* by on_result: nothing more is sent */
  for (;;) {
    while (b->cursor < b->n && b->state[b->cursor] != REQ_PENDING) b->cursor++;
    if (b->cursor == b->n) return HTTP_NO_MORE;
    size_t i = b->cursor++, slot = (size_t)(t - b->c->pool);
    prepared *p = &b->slots[slot];
    int top = lua_gettop(L);
    int lo = b->keep.n + 1;
    batch_prepare(b, i, &b->keep, p);
    lua_settop(L, top);
    p->anchor_lo = lo;
    p->anchor_hi = b->keep.n;
    if (p->fail_code) { /* the request changed since it was checked */
      int stop = batch_store(b, i, NULL, p);
      release_anchors(b, p);
      if (stop) return HTTP_STOP;
      continue;
    }
    b->state[i] = REQ_SENT;
    b->slot_index[slot] = i;
    t->req = p->req;
    return HTTP_STARTED;
  }
}

/* http_batch's done: the result goes out, then the request's anchors. */
static int batch_finished(void *ud, http_transfer *t) {
  batch_ctx *b = ud;
  if (b->c->closed) return HTTP_STOP; /* by on_result: no more results either */
  size_t slot = (size_t)(t - b->c->pool);
  prepared *p = &b->slots[slot];
  int rc = batch_store(b, b->slot_index[slot], &t->res, p);
  release_anchors(b, p);
  return rc ? HTTP_STOP : 0;
}

/* Raises on_result's error, kept at idx. */
static int batch_raise(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  return lua_error(L);
}

static const char *const batch_options[] = {"concurrency", "on_result"};

/* client:batch(requests [, {concurrency = N, on_result = fn}]) -> results, failures
 * (with on_result: true, failures; nothing is kept) */
static int client_batch(lua_State *L) {
  client *c = check_client(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer concurrency = (lua_Integer)option_rules[OPT_CONCURRENCY].number;
  lua_settop(L, 3);
  if (!lua_isnil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    CHECK_KEYS(L, 3, batch_options, "client:batch", "option");
    lua_getfield(L, 3, "concurrency");
    const char *msg = option_check(L, &option_rules[OPT_CONCURRENCY], -1);
    if (msg) luaL_error(L, "client:batch: %s", msg);
    concurrency = lua_tointeger(L, -1);
    lua_pop(L, 2);
    lua_getfield(L, 3, "on_result");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
      luaL_error(L, "client:batch: on_result must be a function");
  } else {
    lua_pushnil(L);
  }
  lua_replace(L, 3); /* 3: on_result or nil */
  int streaming = !lua_isnil(L, 3);
  size_t n = ac_rawlen(L, 2);
  lua_pushnil(L);    /* 4: on_result's error */
  lua_newtable(L);   /* 5: anchors of the requests in flight */
  if (streaming)
    lua_pushboolean(L, 1);
  else
    lua_createtable(L, (int)n, 0); /* 6: results */
  /* Bookkeeping lives in a userdata, so nothing leaks if anything below raises. */
  size_t width = (size_t)concurrency < n ? (size_t)concurrency : n;
  char *block = lua_newuserdata(L, n + 1 + (width + 1) * (sizeof(prepared) + sizeof(size_t) +
                                                           3 * sizeof(http_transfer *))); /* 7 */
  batch_ctx b;
  memset(&b, 0, sizeof b);
  b.L = L;
  b.c = c;
  b.requests = 2;
  b.n = n;
  b.slots = (prepared *)block;
  b.slot_index = (size_t *)(b.slots + width + 1);
  http_transfer **ptrs = (http_transfer **)(b.slot_index + width + 1);
  http_transfer **scratch = ptrs + width + 1;
  b.state = (unsigned char *)(scratch + 2 * (width + 1));
  memset(b.state, REQ_PENDING, n + 1);
  b.keep.L = L;
  b.keep.table = 5;
  b.out = streaming ? 0 : 6;
  b.on_result = streaming ? 3 : 0;
  b.error = 4;

  /* Every request is checked before any is sent: misuse raises with nothing sent, and a
   * bad value (an id with a newline) fails in place. They are built again when sent. */
  size_t sendable = 0;
  for (size_t i = 0; i < n; i++) {
    anchors on_stack = {L, 0, 0};
    prepared p;
    batch_prepare(&b, i, &on_stack, &p);
    lua_settop(L, 7);
    if (p.fail_code) b.state[i] = REQ_BAD; /* reported below */
    else sendable++;
  }
  if (c->closed) luaL_error(L, "alloy: client is closed");
  for (size_t i = 0; i < n && !b.failed; i++)
    if (b.state[i] == REQ_BAD) batch_store_fresh(&b, i, NULL);
  if (b.failed) return batch_raise(L, 4);
  if (c->closed) luaL_error(L, "alloy: client is closed"); /* by on_result */

  int rc = 0;
  if (sendable && c->transport_ref != LUA_NOREF) {
    for (size_t i = 0; i < n && rc == 0; i++) {
      if (b.state[i] != REQ_PENDING) continue;
      if (c->closed) luaL_error(L, "alloy: client is closed"); /* by the transport: the rest are not sent */
      anchors on_stack = {L, 0, 0};
      prepared p;
      http_response r;
      batch_prepare(&b, i, &on_stack, &p);
      if (p.fail_code) {
        rc = batch_store(&b, i, NULL, &p);
      } else {
        run_transport(L, c, &p, &r);
        rc = batch_store(&b, i, &r, &p);
        http_response_free(&r);
      }
      lua_settop(L, 7);
    }
  } else if (sendable) {
    http_transfer *pool = ensure_pool(L, c, width);
    /* A batch stopped by an error raised from deep inside leaves its handles on the multi. */
    for (size_t i = 0; i < c->pool_size; i++) curl_multi_remove_handle(c->multi, pool[i].easy);
    for (size_t i = 0; i < width; i++) ptrs[i] = &pool[i];
    warn_insecure(c);
    rc = http_batch(c->multi, ptrs, width, scratch, batch_start, batch_finished, &b);
    if (rc != 0)
      for (size_t i = 0; i < width; i++) curl_multi_remove_handle(c->multi, pool[i].easy);
  }
  if (b.failed) return batch_raise(L, 4);
  if (c->closed) luaL_error(L, "alloy: client is closed"); /* by on_result: the rest were not sent */
  if (rc != 0) { /* what never finished fails in place */
    http_response aborted;
    memset(&aborted, 0, sizeof aborted);
    aborted.curl_code = CURLE_FAILED_INIT;
    snprintf(aborted.errbuf, sizeof aborted.errbuf, "batch aborted");
    for (size_t i = 0; i < n && !b.failed; i++)
      if (b.state[i] != REQ_DONE) batch_store_fresh(&b, i, &aborted);
    if (b.failed) return batch_raise(L, 4);
  }
  lua_settop(L, 6);
  lua_pushinteger(L, b.failures);
  return 2;
}

/* ------------------------------------------------------------------ module functions */

/* lua-cjson decodes every number as a float: on 5.3+ the integral top-level claims (exp,
 * iat, nbf) become integers again, as they are written. */
static void integral_claims(lua_State *L, int t) {
#if LUA_VERSION_NUM >= 503
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number v = lua_tonumber(L, -1);
      /* 2^63 is exact as a double; the cast is defined only below it */
      if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 && v == (lua_Number)(lua_Integer)v) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)v);
        lua_rawset(L, t); /* an existing key: allowed while traversing */
      }
    }
    lua_pop(L, 1);
  }
#else
  (void)L, (void)t;
#endif
}

static int alloy_jwt_claims(lua_State *L) {
  size_t n;
  const char *token = luaL_checklstring(L, 1, &n);
  const char *dot1 = memchr(token, '.', n);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
  const char *why = NULL;
  abuf payload = {0};
  if (dot2 == NULL || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token)) != NULL)
    why = "not a three-part JWT";
  else if (b64url_decode(&payload, dot1 + 1, (size_t)(dot2 - dot1 - 1)) != 0 || payload.len == 0)
    why = "payload is not base64url";
  if (why == NULL) {
    lua_pushlstring(L, payload.data, payload.len);
    abuf_free(&payload);
    cjson_call(L, "decode", -1, 2);
    if (lua_istable(L, -2)) {
      lua_pop(L, 1);
      integral_claims(L, lua_gettop(L));
      return 1;
    }
    why = "payload is not a JSON object";
  }
  abuf_free(&payload);
  const char *code = alloy_code_name(CODE_JWT_DECODE);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", code, why);
  lua_pushstring(L, code);
  return 3;
}

static const luaL_Reg client_methods[] = {
  {"request", client_request},
  {"batch", client_batch},
  {"prepare", client_prepare},
  {"finish", client_finish},
  {NULL, NULL}};

static const luaL_Reg client_meta[] = {
  {"__gc", client_gc},
  {"__close", client_close},
  {"__tostring", client_tostring},
  {NULL, NULL}};

static const luaL_Reg module_functions[] = {
  {"new", alloy_new},
  {"check_option", alloy_check_option},
  {"jwt_claims", alloy_jwt_claims},
  {NULL, NULL}};

static int loader_gc(lua_State *L) {
  (void)L;
  alloy_curl_wait();
  return 0;
}

/* The module's __index: curl_version, known once libcurl is loaded. */
static int module_index(lua_State *L) {
  char err[256];
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "curl_version") != 0) return 0;
  if (alloy_curl_load(err, sizeof err) != 0) luaL_error(L, "alloy: %s", err);
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

int luaopen_alloy(lua_State *L);
__attribute__((visibility("default"))) int luaopen_alloy(lua_State *L) {
  /* A private lua-cjson instance: our settings never change the host's cjson. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson.safe");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_replace(L, -2);
  int cjson = lua_gettop(L);

  /* After cjson: a C module loaded while the loader runs waits for it. Lua unloads this
   * library when the state closes, so the loader must be done by then: the __gc below. */
  alloy_curl_preload();
  lua_newuserdata(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, loader_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "alloy.loader");

  luaL_newmetatable(L, RESPONSE_MT);
  lua_pushcfunction(L, response_index);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newmetatable(L, CLIENT_MT);
  lua_pushvalue(L, cjson);
  ac_setfuncs(L, client_meta, 1);
  lua_newtable(L); /* methods */
  for (const luaL_Reg *m = client_methods; m->name; m++) {
    lua_pushvalue(L, cjson);
    lua_pushcclosure(L, m->func, 1);
    lua_pushcclosure(L, client_guarded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pushcfunction(L, client_close);
  lua_setfield(L, -2, "close");
  for (size_t i = 0; i < alloy_op_count; i++) {
    lua_pushvalue(L, cjson);
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushfstring(L, "client:%s", alloy_ops[i].name);
    lua_pushcclosure(L, client_op, 3);
    lua_pushcclosure(L, client_guarded, 1);
    lua_setfield(L, -2, alloy_ops[i].name);
  }
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, CLIENT_MT);
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "locked");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  lua_newtable(L);
  lua_pushvalue(L, cjson);
  ac_setfuncs(L, module_functions, 1);
  lua_pushliteral(L, ALLOY_VERSION);
  lua_setfield(L, -2, "VERSION");
  lua_newtable(L); /* alloy.curl_version waits for libcurl: a metatable field */
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_newtable(L);
  for (size_t i = 0; i < alloy_op_count; i++) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, alloy_ops[i].method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, alloy_ops[i].path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, alloy_ops[i].service == SERVICE_EMBEDDED ? "embedded" : "base");
    lua_setfield(L, -2, "service");
    lua_setfield(L, -2, alloy_ops[i].name);
  }
  lua_setfield(L, -2, "operations");
  push_defaults(L);
  lua_setfield(L, -2, "defaults");
  alloy_push_codes(L);
  lua_setfield(L, -2, "codes");
  files_open(L);
  return 1;
}
