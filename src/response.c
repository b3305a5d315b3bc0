/* Answers -> Lua values: the response table (res.headers built lazily), the value a named
 * operation returns, or the failure tuple nil, msg, code, res. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloy_int.h"
#include "errors.h"
#include "url.h"

static void set_number(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

/* Pushes {name = value} for a raw header block: names lower-cased, repeats joined. Parsed by
 * hand (header_next), not read with curl_easy_header: res.headers is built when first read,
 * after the easy handle has served other requests, and answers from a transport or
 * client:finish never came from libcurl. */
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
  abuf masked = {0};
  if (c->conf.also_count) { /* before the message is cut: a value cut in half would not match */
    abuf_add(&masked, detail, detail_len);
    http_redact_also(&c->conf, &masked);
    detail = masked.data ? masked.data : "";
    detail_len = masked.len;
  }
  alloy_format_message(&c->scratch, code, detail, detail_len, p->req.method, p->path, p->path_len,
                       r ? r->attempts : 0, c->api_key);
  abuf_free(&masked);
  http_redact_also(&c->conf, &c->scratch); /* the path too */
  return alloy_push_failure(L, c->scratch.data, code, res);
}

/* The base64url text s (n bytes of its alphabet) decodes to what a JSON object's text
 * must start and end with: its first byte that is not blank is '{', its last is '}'. Each
 * group of four characters decodes on its own, so only the groups that hold those bytes
 * are decoded (callgrind: the whole header and payload took 6k instructions a token). */
static int b64url_object_text(const char *s, size_t n) {
  char bytes[8];
  abuf group = {bytes, 0, sizeof bytes}; /* four characters need 7 bytes: never grown */
  size_t last = n % 4 ? n - n % 4 : n - 4;
  if (n % 4 == 1 || b64url_decode(&group, s + last, n - last) != 0 || group.data[group.len - 1] != '}')
    return 0;
  for (size_t at = 0; at < n; at += 4) {
    group.len = 0;
    if (b64url_decode(&group, s + at, n - at < 4 ? n - at : 4) != 0) return 0;
    for (size_t i = 0; i < group.len; i++) {
      char c = group.data[i];
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return c == '{';
    }
  }
  return 0; /* all blank */
}

/* The base64url alphabet, as a table: strspn builds one on every call (600 instructions). */
#define B2(c) [c] = 1, [c + 1] = 1
#define B8(c) B2(c), B2(c + 2), B2(c + 4), B2(c + 6)
#define B26(c) B8(c), B8(c + 8), B8(c + 16), B2(c + 24)
static const unsigned char b64url_alphabet[256] = {B26('A'), B26('a'), B8('0'), B2('8'), ['-'] = 1, ['_'] = 1};

/* A JWT (RFC 7519 compact form): three non-empty base64url parts, the first two JSON
 * objects. Anything else (a number, "", a NUL, CR LF, ESC, non-ASCII) would reach a header,
 * a file or a terminal as given. */
static int is_jwt(lua_State *L, int idx) {
  size_t n = 0, from = 0;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
  if (s == NULL) return 0;
  for (int part = 0; part < 3; part++) {
    size_t end = from;
    while (end < n && b64url_alphabet[(unsigned char)s[end]]) end++;
    if (end == from) return 0;
    if (part == 2) return end == n;
    if (end == n || s[end] != '.' || !b64url_object_text(s + from, end - from)) return 0;
    from = end + 1;
  }
  return 0;
}

/* A redirect is not followed (it could carry the key elsewhere): say where it pointed. */
static void redirect_detail(const http_response *r, const char *secret, abuf *out) {
  const char *cursor = r->headers.data ? r->headers.data : "";
  header_field f;
  abuf_adds(out, out->len ? "; redirect not followed" : "redirect not followed");
  while (header_next(&cursor, cursor + strlen(cursor), &f)) {
    if (f.name_len == 8 && strncasecmp(f.name, "location", 8) == 0) {
      abuf_adds(out, " (Location: ");
      alloy_excerpt(out, f.value, f.value_len, ALLOY_EXCERPT_MAX, secret);
      abuf_adds(out, ")");
      break;
    }
  }
}

/* Leaves the value a named operation returns on top of the stack, or returns 0 when the
 * decoded body (at json) does not have the expected shape. */
static int shape_result(lua_State *L, const alloy_op *op, int json) {
  static const char *const wrappers[] = {"data", "credentials", "metadata", "connectors", NULL};
  if (op->result == RESULT_JSON) {
    lua_pushvalue(L, json);
    return 1;
  }
  if (op->result == RESULT_FIELD) {
    /* One rendering of the 2025-09 token reference shows the body as a bare JSON string. */
    if (lua_istable(L, json))
      lua_getfield(L, json, op->field);
    else
      lua_pushvalue(L, json);
    if (is_jwt(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, json)) return 0;
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

/* No body, or only blanks (a 204, an empty 200). */
static int body_blank(const http_response *r) {
  for (size_t i = 0; i < r->body.len; i++) {
    char ch = r->body.data[i];
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') return 0;
  }
  return 1;
}

/* The decoded body at json says the API did not do it: {"success": false}. Alloy's deletes,
 * execute and headless create answer {"success": true, ...}; a false is not documented either
 * way, and reporting it done would be the one wrong answer. */
static int said_unsuccessful(lua_State *L, int json) {
  if (!lua_istable(L, json)) return 0;
  lua_pushliteral(L, "success");
  lua_rawget(L, json);
  int no = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  return no;
}

int response_result(lua_State *L, client *c, const http_response *r, const prepared *p) {
  if (r->transport_failed)
    return fail(L, c, p, r, alloy_code_name(CODE_TRANSPORT_ERROR), r->errbuf, strlen(r->errbuf), 0);
  if (r->curl_code != CURLE_OK) {
    char other[24];
    const char *code = alloy_curl_code((int)r->curl_code, other, sizeof other);
    const char *text = r->errbuf;
    if (r->too_large) {
      code = alloy_code_name(CODE_BODY_TOO_LARGE);
      text = "response body is larger than max_body";
    } else if (strcmp(code, alloy_code_name(CODE_HEADERS_TOO_LARGE)) == 0 ||
               (r->curl_code == CURLE_OUT_OF_MEMORY && r->headers.len > 0)) {
      /* libcurl before 8.6 reports a header line over its 100 KB cap as out of memory; once
       * the status line is in, that is what it was. */
      code = alloy_code_name(CODE_HEADERS_TOO_LARGE);
      text = "a response header line is larger than libcurl accepts (100 KB)";
    }
    return fail(L, c, p, r, code, text, strlen(text), 0);
  }

  push_response(L, r, p);
  int res = lua_gettop(L);
  char json_err[96] = "";
  if (!p->raw && !body_blank(r)) {
    lua_getfield(L, CJSON_UPVALUE, "decode");
    lua_getfield(L, res, "body");
    lua_call(L, 1, 2);
    if (!lua_isnil(L, -2)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_setfield(L, res, "json");
    } else {
      snprintf(json_err, sizeof json_err, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid JSON");
      lua_settop(L, res);
      lua_pushnil(L);
    }
  } else {
    lua_pushnil(L);
  }
  int json = res + 1; /* the decoded body, or nil */
  abuf detail = {0};
  int n;

  if (r->status >= 300 || r->status < 200) {
    char code[24];
    alloy_http_code(r->status, code, sizeof code);
    alloy_server_detail(L, json, r->body.data ? r->body.data : "", r->body.len, c->api_key, &detail);
    if (r->status >= 300 && r->status < 400) redirect_detail(r, c->api_key, &detail);
    if (detail.len == 0) abuf_adds(&detail, "no explanation in the response");
    n = fail(L, c, p, r, code, detail.data, detail.len, res);
  } else if (json_err[0]) {
    abuf_adds(&detail, json_err);
    abuf_adds(&detail, "; body starts: ");
    alloy_excerpt(&detail, r->body.data, r->body.len, 60, c->api_key);
    n = fail(L, c, p, r, alloy_code_name(CODE_JSON_DECODE), detail.data, detail.len, res);
  } else if (p->op == NULL) {
    lua_pushvalue(L, res);
    n = 1;
  } else if (p->op->result == RESULT_JSON && said_unsuccessful(L, json)) {
    alloy_server_detail(L, json, "", 0, c->api_key, &detail);
    if (detail.len == 0) abuf_adds(&detail, "the API answered success: false");
    n = fail(L, c, p, r, alloy_code_name(CODE_UNSUCCESSFUL), detail.data, detail.len, res);
  } else if (p->op->result == RESULT_JSON && lua_isnil(L, json)) {
    lua_pushboolean(L, 1); /* 204, or a 2xx with no body: done, nothing to say */
    lua_pushvalue(L, res);
    n = 2;
  } else if (shape_result(L, p->op, json)) {
    lua_pushvalue(L, res);
    n = 2;
  } else {
    abuf_adds(&detail, "unexpected response shape: ");
    if (p->op->result == RESULT_FIELD) {
      abuf_adds(&detail, "no '");
      abuf_adds(&detail, p->op->field);
      abuf_adds(&detail, "' field with a JWT (three base64url parts)");
    } else {
      abuf_adds(&detail, "no list (an array, or data/credentials/metadata/connectors)");
    }
    n = fail(L, c, p, r, alloy_code_name(CODE_BAD_RESPONSE), detail.data, detail.len, res);
  }
  abuf_free(&detail);
  return n;
}

void response_open(lua_State *L, const alloy_open_ctx *o) {
  (void)o;
  luaL_newmetatable(L, RESPONSE_MT);
  lua_pushcfunction(L, response_index);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
