/* Request tables and named operations -> one wire request (a prepared), its strings
 * anchored in Lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloy_int.h"
#include "errors.h"
#include "url.h"

void check_keys(lua_State *L, int t, const char *const *names, size_t stride, size_t count,
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
  lua_pop(L, 1); /* held by the spec table: enough while the caller reads it */
  return s;
}

const char *scalar_string(lua_State *L, int idx, size_t *len) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: return lua_tolstring(L, idx, len);
    case LUA_TBOOLEAN:
      *len = lua_toboolean(L, idx) ? 4 : 5;
      return lua_toboolean(L, idx) ? "true" : "false";
    default: return NULL;
  }
}

/* Anchors the value on top of the stack. */
static void anchor(anchors *a) {
  if (a->table) lua_rawseti(a->L, a->table, ++a->n);
}

typedef struct param_lookup {
  lua_State *L;
  int params;
  anchors *a;
} param_lookup;

/* The path form of the number at idx, pushed: a whole number as an integer ("12", never
 * "12.0" or "1.2e+13"); any other number (nan, inf, 1.5) as a value url_param_ok refuses,
 * so the request fails naming the parameter instead of asking for /users/nan. */
static const char *number_param(lua_State *L, int idx, size_t *len) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    lua_pushvalue(L, idx);
    return lua_tolstring(L, -1, len);
  }
#endif
  lua_Number v = lua_tonumber(L, idx);
  char digits[24] = "\x01"; /* a control byte: url_param_ok refuses it */
  if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (lua_Number)(long long)v)
    snprintf(digits, sizeof digits, "%lld", (long long)v);
  lua_pushstring(L, digits);
  return lua_tolstring(L, -1, len);
}

static const char *lookup_param(void *ud, const char *name, size_t name_len, size_t *value_len) {
  param_lookup *pl = ud;
  if (pl->params == 0) return NULL;
  luaL_checkstack(pl->L, 2, "path parameters");
  lua_pushlstring(pl->L, name, name_len);
  lua_rawget(pl->L, pl->params);
  /* A number's string form is new: anchor it before it can be collected. */
  const char *v;
  if (lua_type(pl->L, -1) == LUA_TNUMBER) {
    v = number_param(pl->L, -1, value_len);
    lua_remove(pl->L, -2);
  } else {
    v = scalar_string(pl->L, -1, value_len);
  }
  anchor(pl->a);
  return v;
}

/* A named operation's path parameters: its positional arguments, in template order; a name
 * met again (in the template's query: ?userId={userId}) takes the same value. */
enum { ARGS_SEEN = 4 };
typedef struct arg_lookup {
  lua_State *L;
  int next, last;
  anchors *a;
  const char *who;
  struct {
    const char *name, *value;
    size_t name_len, value_len;
  } seen[ARGS_SEEN];
  int n_seen;
} arg_lookup;

static const char *seen_arg(arg_lookup *al, const char *name, size_t name_len, const char *v, size_t *value_len) {
  if (al->n_seen < ARGS_SEEN) {
    al->seen[al->n_seen].name = name;
    al->seen[al->n_seen].name_len = name_len;
    al->seen[al->n_seen].value = v;
    al->seen[al->n_seen].value_len = *value_len;
    al->n_seen++;
  }
  return v;
}

static const char *lookup_arg(void *ud, const char *name, size_t name_len, size_t *value_len) {
  arg_lookup *al = ud;
  lua_State *L = al->L;
  for (int k = 0; k < al->n_seen; k++) {
    if (al->seen[k].name_len == name_len && memcmp(al->seen[k].name, name, name_len) == 0) {
      *value_len = al->seen[k].value_len;
      return al->seen[k].value;
    }
  }
  int i = al->next++;
  int t = i <= al->last ? lua_type(L, i) : LUA_TNIL;
  if (t == LUA_TSTRING) return seen_arg(al, name, name_len, lua_tolstring(L, i, value_len), value_len);
  if (t == LUA_TNUMBER) {
    luaL_checkstack(L, 2, "path parameters");
    const char *v = number_param(L, i, value_len); /* a copy: the caller's argument stays a number */
    anchor(al->a);
    return seen_arg(al, name, name_len, v, value_len);
  }
  char shown[48];
  snprintf(shown, sizeof shown, "%.*s", (int)name_len, name);
  if (t == LUA_TNIL) luaL_error(L, "%s: missing argument '%s'", al->who, shown);
  luaL_error(L, "%s: argument '%s' must be a string", al->who, shown);
  return NULL;
}

typedef struct query_pair {
  const char *key, *value;
  size_t value_len;
} query_pair;

static int compare_keys(const void *a, const void *b) {
  return strcmp(((const query_pair *)a)->key, ((const query_pair *)b)->key);
}

/* Appends "?k=v&..." sorted by key, so the same query always makes the same URL. Each key
 * and value stays on the stack from when it is read: a finaliser run by an allocation may
 * change the table. */
static void append_query(lua_State *L, int query, abuf *url) {
  query_pair pairs[64];
  size_t n = 0;
  int top = lua_gettop(L);
  luaL_checkstack(L, 2 * 64 + 4, "query");
  lua_pushnil(L);
  while (lua_next(L, query)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "alloy: query keys must be strings");
    if (n == sizeof pairs / sizeof pairs[0]) luaL_error(L, "alloy: too many query parameters");
    pairs[n].key = lua_tostring(L, -2);
    pairs[n].value = scalar_string(L, -1, &pairs[n].value_len);
    if (pairs[n].value == NULL)
      luaL_error(L, "alloy: query value '%s' must be a string, number or boolean", pairs[n].key);
    n++;
    lua_pushvalue(L, -2); /* key, value below the key lua_next goes on from */
    lua_insert(L, -3);
    lua_insert(L, -2);
  }
  qsort(pairs, n, sizeof pairs[0], compare_keys);
  int has_query = url->len > 0 && memchr(url->data, '?', url->len) != NULL; /* the template's own */
  for (size_t i = 0; i < n; i++) {
    abuf_add(url, i == 0 && !has_query ? "?" : "&", 1);
    url_encode(url, pairs[i].key, strlen(pairs[i].key));
    abuf_add(url, "=", 1);
    url_encode(url, pairs[i].value, pairs[i].value_len);
  }
  lua_settop(L, top);
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
  const char *names[MAX_HEADERS], *values[MAX_HEADERS];
  size_t lens[MAX_HEADERS], vlens[MAX_HEADERS];
  int have_accept = 0, have_version = 0, have_ctype = 0, have_ua = 0;
  size_t count = 0, total = 0;
  const char *bad_header = NULL; /* the first whose value holds CR, LF or NUL */
  int pairs = lua_gettop(L) + 1; /* each name and value, kept on the stack from the first pass:
                                  * a finaliser run by an allocation may change the table */

  if (headers) {
    luaL_checkstack(L, 2 * MAX_HEADERS + 4, "headers");
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
      names[count] = name;
      lens[count] = nlen;
      values[count] = value;
      vlens[count] = vlen;
      count++;
      total += nlen + 2 + vlen + 1;
      lua_pushvalue(L, -2); /* name, value below the key lua_next goes on from */
      lua_insert(L, -3);
      lua_insert(L, -2);
    }
  }
  if (count == 0) return c->chains[body_kind * 2 + version_header];

  /* Lay out nodes then strings in one block. */
  size_t nodes = count + (have_accept ? 0 : 1) + (version_header && !have_version ? 1 : 0) +
                 (body_kind == BODY_JSON && !have_ctype ? 1 : 0) + (body_kind != BODY_NONE ? 1 : 0);
  struct curl_slist *list = lua_newuserdata(L, nodes * sizeof(struct curl_slist) + total);
  char *strings = (char *)(list + nodes);
  size_t k = 0;
  for (size_t i = 0; i < count; i++) {
    list[k].data = strings;
    memcpy(strings, names[i], lens[i]);
    strings += lens[i];
    *strings++ = ':';
    *strings++ = ' ';
    memcpy(strings, values[i], vlens[i]);
    strings += vlens[i];
    *strings++ = '\0';
    k++;
  }
  if (!have_accept) list[k++].data = "Accept: application/json";
  if (body_kind == BODY_JSON && !have_ctype) list[k++].data = "Content-Type: application/json";
  if (body_kind != BODY_NONE) list[k++].data = "Expect:"; /* no 100-continue round trip */
  if (version_header && !have_version) list[k++].data = c->version_header;
  for (size_t i = 0; i + 1 < nodes; i++) list[i].next = &list[i + 1];
  list[nodes - 1].next = have_ua ? &c->auth_node : c->tail;
  lua_replace(L, pairs); /* the block replaces the pairs it was made from */
  lua_settop(L, pairs);
  anchor(a);
  if (bad_header) set_failure(L, p, a, "header '%.60s' contains CR, LF or NUL", bad_header);
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
  int url;             /* or the stack index of the URL, made already, its path at url_path_off */
  size_t url_path_off;
} request_input;

/* Builds the wire request p from in; the strings it makes are anchored through a. Misuse
 * raises; bad values (ids, header values) set p->fail_*. */
static void build_request(lua_State *L, client *c, const request_input *in, anchors *a,
                          const alloy_op *op, prepared *p, const char *who) {
  luaL_checkstack(L, 16, "request");
  memset(p, 0, sizeof *p);
  p->op = op;
  p->req.retry_unsent = op && op->retry == RETRY_UNSENT;
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
    /* libcurl sends it from this memory, again on a retry: the spec table may drop it first */
    lua_pushvalue(L, in->body);
    p->req.body = lua_tolstring(L, -1, &p->req.body_len);
    anchor(a);
  }

  /* URL: base + [/version] + expanded path + query. */
  abuf *url = &c->scratch;
  size_t path_off = in->url_path_off;
  if (in->url) {
    lua_pushvalue(L, in->url);
  } else {
    abuf_clear(url);
    if (in->full_url) {
      abuf_add(url, in->full_url, in->url_len);
      /* Only the path, for messages: libcurl parses the URL it sends (no CURLU needed). */
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
        set_failure(L, p, a, "path parameter '%s' must be a non-empty id (a string without control characters, '/', '?' or '#', or a whole number)", name);
      }
    }
    if (in->query) append_query(L, in->query, url);
    lua_pushlstring(L, url->data, url->len);
  }
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

void request_from_spec(lua_State *L, client *c, int spec, anchors *a, const alloy_op *op,
                         prepared *p, const char *who) {
  spec = ac_absindex(L, spec);
  CHECK_KEYS(L, spec, request_fields, who, "request field");
  request_input in;
  memset(&in, 0, sizeof in);
  in.method = field_string(L, spec, "method", &in.method_len, who);
  if (in.method) { /* sent from this memory, again on a retry: the spec table may drop it */
    luaL_checkstack(L, 1, "request");
    lua_pushlstring(L, in.method, in.method_len);
    in.method = lua_tostring(L, -1);
    anchor(a);
  } else {
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

/* Turns positional arguments of a named operation into a request spec table (pushed). */
static void op_spec(lua_State *L, const alloy_op *op, int first, int nargs, const char *who) {
  int arg = first;
  lua_newtable(L);
  int spec = lua_gettop(L);
  lua_newtable(L);
  const char *s = op->path, *query = strchr(op->path, '?');
  while ((s = strchr(s, '{')) != NULL && (query == NULL || s < query)) {
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

/* Whether the nparams arguments from first are the strings cached in key. */
static int same_args(lua_State *L, int first, int nparams, const abuf *key) {
  const char *k = key->data, *end = key->data + key->len;
  for (int i = first; i < first + nparams; i++) {
    size_t len, klen;
    const char *v = lua_tolstring(L, i, &len);
    if ((size_t)(end - k) < sizeof klen) return 0;
    memcpy(&klen, k, sizeof klen);
    k += sizeof klen;
    if (klen != len || (size_t)(end - k) < len || memcmp(k, v, len) != 0) return 0;
    k += len;
  }
  return k == end;
}

/* Remembers p's URL (its path from path_off) as op's, made from the nparams string arguments
 * from first. */
static void remember_url(lua_State *L, op_url *u, const prepared *p, size_t path_off, int first,
                         int nparams) {
  abuf_clear(&u->args);
  for (int i = first; i < first + nparams; i++) {
    size_t len;
    const char *v = lua_tolstring(L, i, &len);
    if (abuf_add(&u->args, &len, sizeof len) != 0 || abuf_add(&u->args, v, len) != 0) {
      abuf_free(&u->args); /* out of memory: nothing is remembered */
      luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
      u->ref = LUA_NOREF;
      return;
    }
  }
  if (p->url_table)
    lua_rawgeti(L, p->url_table, p->url_index);
  else
    lua_pushvalue(L, p->url_index);
  luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
  u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  u->path_off = path_off;
}

/* Named operation op called with nargs arguments from index first: straight from the
 * arguments, unless an options table asks for the general path. */
void request_from_op(lua_State *L, client *c, const alloy_op *op, int first, int nargs,
                       anchors *a, prepared *p, const char *who) {
  int nparams = 0; /* in the path: the query's repeat them */
  const char *query = strchr(op->path, '?');
  for (const char *s = op->path; (s = strchr(s, '{')) != NULL && (query == NULL || s < query); s++) nparams++;
  int last = first + nargs - 1;
  int body = op->has_body ? first + nparams : 0;
  int options = first + nparams + (op->has_body ? 1 : 0);
  if (options <= last && !lua_isnil(L, options)) {
    op_spec(L, op, first, nargs, who);
    request_from_spec(L, c, lua_gettop(L), a, op, p, who);
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
  /* Path arguments that are all strings: the URL of the last call with the same ones. */
  op_url *u = &c->op_urls[op - alloy_ops];
  int strings = nparams <= nargs;
  for (int i = first; strings && i < first + nparams; i++) strings = lua_type(L, i) == LUA_TSTRING;
  if (strings && u->ref != LUA_NOREF && same_args(L, first, nparams, &u->args)) {
    luaL_checkstack(L, 1, "request");
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
    in.url = lua_gettop(L);
    in.url_path_off = u->path_off;
  }
  arg_lookup al = {L, first, last, a, who, {{0}}, 0};
  in.lookup = lookup_arg;
  in.lookup_ud = &al;
  build_request(L, c, &in, a, op, p, who);
  if (strings && !in.url && !p->fail_code) remember_url(L, u, p, strlen(in.base), first, nparams);
}
