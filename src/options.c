/* The one rule and the one default of every option: alloy.new's (read by client.c),
 * client:batch's concurrency, alloy.check_option and alloy.defaults. */
#include <string.h>
#include <strings.h>

#include "alloy_int.h"
#include "url.h"

enum opt_kind { OPT_KEY, OPT_VERSION, OPT_URL, OPT_NUMBER, OPT_WHOLE, OPT_TEXT, OPT_AGENT,
                OPT_BOOLEAN, OPT_FUNCTION, OPT_REGION_NAME };

/* The hosts of each region, where base_url and embedded_url default to. US: the 2025-09
 * reference's production.runalloy.com, and embedded.runalloy.com (the Node SDK's; the token
 * call there with the header is the reported working form). EU: Alloy's Node SDK points every
 * service at eu-embedded.runalloy.com (with a path version, /2024-03); no EU form of the
 * production host is documented, so both go there (the header form on it is inferred). */
static const struct region {
  const char *name, *base_url, *embedded_url;
} regions[] = {
  {"us", "https://production.runalloy.com", "https://embedded.runalloy.com"},
  {"eu", "https://eu-embedded.runalloy.com", "https://eu-embedded.runalloy.com"},
};

static const struct region *find_region(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++)
    if (n == strlen(regions[i].name) && strncasecmp(s, regions[i].name, n) == 0) return &regions[i];
  return NULL;
}

/* The one rule and the one default of every option (alloy.new's, and client:batch's
 * concurrency); alloy.defaults, alloy.check_option and alloy.new all read this table. */
typedef struct option_rule {
  const char *name;
  enum opt_kind kind;
  const char *text;      /* a string default, or NULL */
  double number, min, max; /* a number default (when text is NULL and kind is a number) */
  const char *msg;       /* what the rule checks */
} option_rule;

/* The rule of both host options, after the option's name. */
#define URL_RULE \
  " must be an http:// or https:// URL: a host, an optional port (1-65535) and path; no" \
  " user:password@, query (?), fragment (#), spaces or control characters"

static const option_rule option_rules[OPT_COUNT] = {
  [OPT_API_KEY] = {"api_key", OPT_KEY, NULL, 0, 0, 0,
                   "api_key must be at least 8 characters, without spaces, CR, LF or NUL"},
  [OPT_API_VERSION] = {"api_version", OPT_VERSION, "2025-09", 0, 0, 0,
                       "api_version must be a version date YYYY-MM (e.g. 2025-09)"},
  [OPT_BASE_URL] = {"base_url", OPT_URL, "https://production.runalloy.com", 0, 0, 0, "base_url" URL_RULE},
  [OPT_EMBEDDED_URL] = {"embedded_url", OPT_URL, "https://embedded.runalloy.com", 0, 0, 0, "embedded_url" URL_RULE},
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
  [OPT_REGION] = {"region", OPT_REGION_NAME, "us", 0, 0, 0, "region must be us or eu (any case)"},
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

/* 1 when s is a base URL requests can be built on by appending a path: http(s)://, a host
 * (a name, an IPv4 address or [IPv6]), an optional port 1-65535, then only a path. Userinfo
 * would be printed wherever the URL is (and sent); a query or fragment would swallow the
 * path appended after it. */
static int is_base_url(const char *s, size_t n) {
  size_t i = n > 8 && strncmp(s, "https://", 8) == 0 ? 8 : n > 7 && strncmp(s, "http://", 7) == 0 ? 7 : 0;
  if (i == 0) return 0;
  for (size_t j = 0; j < n; j++) {
    unsigned char c = (unsigned char)s[j];
    if (c <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '@' || c == '\\') return 0;
  }
  size_t host = i;
  if (s[i] == '[') {
    const char *close = memchr(s + i, ']', n - i);
    if (close == NULL) return 0;
    i = (size_t)(close - s) + 1;
  } else {
    while (i < n && s[i] != ':' && s[i] != '/' && s[i] != '[' && s[i] != ']') i++;
  }
  if (i == host || (i < n && s[i] != ':' && s[i] != '/')) return 0;
  if (i < n && s[i] == ':') {
    long port = 0;
    size_t digits = 0;
    for (i++; i < n && s[i] >= '0' && s[i] <= '9' && digits < 6; i++, digits++) port = port * 10 + (s[i] - '0');
    if (digits == 0 || port < 1 || port > 65535) return 0;
  }
  return i == n || s[i] == '/';
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
      if (!s || !is_base_url(s, n)) return r->msg;
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
    case OPT_REGION_NAME: {
      const struct region *g = s ? find_region(s, n) : NULL;
      if (!g) return r->msg;
      lua_pushstring(L, g->name);
      return NULL;
    }
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

void options_read(lua_State *L, int t) {
  t = ac_absindex(L, t);
  check_keys(L, t, &option_rules[0].name, sizeof option_rules[0], OPT_NEW_COUNT, "alloy.new", "option");
  luaL_checkstack(L, OPT_NEW_COUNT + 4, "alloy.new");
  /* the region first: the hosts' defaults are its */
  lua_getfield(L, t, option_rules[OPT_REGION].name);
  const char *msg = option_check(L, &option_rules[OPT_REGION], -1);
  if (msg) luaL_error(L, "alloy.new: %s", msg);
  size_t gn;
  const char *gs = lua_tolstring(L, -1, &gn);
  const struct region *g = find_region(gs, gn);
  lua_pop(L, 2);
  for (int i = 0; i < OPT_NEW_COUNT; i++) {
    lua_getfield(L, t, option_rules[i].name);
    if (lua_isnil(L, -1) && (i == OPT_BASE_URL || i == OPT_EMBEDDED_URL)) {
      lua_pop(L, 1);
      lua_pushstring(L, i == OPT_BASE_URL ? g->base_url : g->embedded_url);
    }
    msg = option_check(L, &option_rules[i], -1);
    if (msg) luaL_error(L, "alloy.new: %s", msg);
    lua_replace(L, -2);
  }
}

lua_Integer options_concurrency(lua_State *L, int idx) {
  const char *msg = option_check(L, &option_rules[OPT_CONCURRENCY], idx);
  if (msg) luaL_error(L, "client:batch: %s", msg);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

void options_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushcfunction(L, alloy_check_option);
  lua_setfield(L, o->module, "check_option");
  push_defaults(L);
  lua_setfield(L, o->module, "defaults");
  /* alloy.regions: { us = { base_url =, embedded_url = }, eu = { ... } } */
  lua_newtable(L);
  for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, regions[i].base_url);
    lua_setfield(L, -2, "base_url");
    lua_pushstring(L, regions[i].embedded_url);
    lua_setfield(L, -2, "embedded_url");
    lua_setfield(L, -2, regions[i].name);
  }
  lua_setfield(L, o->module, "regions");
}
