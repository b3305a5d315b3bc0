/* libFuzzer target: error-message extraction and formatting (src/errors.c).
 *   alloy_server_detail (the server's message from a decoded body, else a body excerpt)
 *   alloy_format_message (one line, capped, secret redacted)
 * These take a lua_State, so this binary links liblua5.4 (the module never does) and loads
 * lua-cjson through package.cpath, exactly as alloy.c decodes bodies.
 * Input: byte 0 = mode, byte 1 = attempts, byte 2 = method/secret pick, byte 3 = path length,
 * then the path, then the body (the rest). Mode bit 0 picks cjson.decode(body) or a table
 * built from the body's pieces (bits 1-3 choose its shape).
 * Invariants: the Lua stack is balanced; the detail is the documented field or a <= 160-byte
 * printable prefix of the body; the message starts with "CODE: ", is one line with no control
 * bytes or NUL, is at most ALLOY_MSG_MAX bytes, carries " after N attempts" when N > 1, and
 * holds neither the secret nor any 8-byte piece of it that was not in the input apart from
 * whole copies of the secret (a truncated copy is a leak too), and is well-formed UTF-8 when
 * its parts were. */
#include "fuzz_common.h"
#include "errors.h"

#include <lualib.h>

#ifndef CJSON_CPATH
#define CJSON_CPATH "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
#endif

static lua_State *L;

static const char *const secrets[] = {
  "sk_FuzzSecretKey_0123456789abcdefXY", /* 35: the usual shape */
  "Zq9-Lm2_Vx7pRt4wYb8nKc3dHf6gJs1a",    /* 32: the sandbox's alphabet */
  "abcdefghijklmnopqrst",                /* 20: easy for the fuzzer to rebuild from pieces */
};
static const char *const methods[] = {"GET", "POST", "DELETE", "PATCH", NULL};
static const char *const codes[] = {"HTTP_500", "JSON_DECODE", "COULDNT_CONNECT", "BAD_RESPONSE"};

static void init(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, CJSON_CPATH);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson.safe");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_errors: cannot load cjson.safe: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setglobal(L, "cjson_safe");
}

/* Pushes the "decoded body" the way finish_request would have it. */
static void push_json(unsigned mode, const char *body, size_t n) {
  if ((mode & 1) == 0) {
    lua_getglobal(L, "cjson_safe");
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
    lua_pushlstring(L, body, n);
    lua_call(L, 1, 2);
    lua_pop(L, 1); /* the error message of a failed decode */
    return;
  }
  size_t h = n / 2;
  const char *s1 = body, *s2 = body + h;
  size_t n1 = h, n2 = n - h;
  switch ((mode >> 1) & 7) {
    case 0: /* {message = s1, error = s2} */
      lua_newtable(L);
      lua_pushlstring(L, s1, n1);
      lua_setfield(L, -2, "message");
      lua_pushlstring(L, s2, n2);
      lua_setfield(L, -2, "error");
      break;
    case 1: /* {error = {message = s1}} */
      lua_newtable(L);
      lua_newtable(L);
      lua_pushlstring(L, s1, n1);
      lua_setfield(L, -2, "message");
      lua_setfield(L, -2, "error");
      break;
    case 2: /* {message = 42, error = s1} */
      lua_newtable(L);
      lua_pushinteger(L, 42);
      lua_setfield(L, -2, "message");
      lua_pushlstring(L, s1, n1);
      lua_setfield(L, -2, "error");
      break;
    case 3: /* {message = true, error = {message = {}}} */
      lua_newtable(L);
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "message");
      lua_newtable(L);
      lua_newtable(L);
      lua_setfield(L, -2, "message");
      lua_setfield(L, -2, "error");
      break;
    case 4: /* a string, not a table */
      lua_pushlstring(L, s1, n1);
      break;
    case 5: /* {error = {message = ""}, message = ""} */
      lua_newtable(L);
      lua_pushliteral(L, "");
      lua_setfield(L, -2, "message");
      lua_newtable(L);
      lua_pushliteral(L, "");
      lua_setfield(L, -2, "message");
      lua_setfield(L, -2, "error");
      break;
    case 6: /* a number key where a name was expected */
      lua_newtable(L);
      lua_pushlstring(L, s1, n1);
      lua_rawseti(L, -2, 1);
      break;
    default:
      lua_pushnil(L);
      break;
  }
}

/* What alloy_server_detail must produce, computed from the Lua value directly. */
static int field_string(int t, const char *k, const char **s, size_t *n) {
  lua_getfield(L, t, k);
  int ok = lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0;
  if (ok) *s = lua_tolstring(L, -1, n);
  lua_pop(L, 1); /* still referenced by the table */
  return ok;
}

static void expected_detail(int json, const char *body, size_t n, const char **s, size_t *len) {
  if (lua_istable(L, json)) {
    if (field_string(json, "message", s, len)) return;
    lua_getfield(L, json, "error");
    int e = lua_gettop(L);
    int ok = lua_istable(L, e) ? field_string(e, "message", s, len) : field_string(json, "error", s, len);
    lua_pop(L, 1);
    if (ok) return;
  }
  size_t k = n < 160 ? n : 160;
  for (size_t i = 0; i < k; i++)
    if ((unsigned char)body[i] < 0x09) {
      *s = "", *len = 0;
      return;
    }
  *s = body, *len = k;
}

/* 1 when s is well-formed UTF-8 (no overlong forms or surrogates checked: the cut is what
 * matters here, not the encoder). */
static int utf8_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k == 0 || i + k > n) return 0;
    for (size_t j = 1; j < k; j++)
      if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
    i += k;
  }
  return 1;
}

/* Replaces whole copies of secret in s with a marker, so pieces that remain were in the input
 * on their own. */
static char *strip_secret(const char *s, size_t n, const char *secret, size_t *out_n) {
  size_t k = strlen(secret);
  char *d = malloc(n + 1);
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    if (i + k <= n && memcmp(s + i, secret, k) == 0) {
      d[j++] = '\x01';
      i += k;
    } else {
      d[j++] = s[i++];
    }
  }
  *out_n = j;
  return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) init();
  if (size < 4) return 0;
  unsigned mode = data[0];
  int attempts = data[1] % 13;
  unsigned pick = data[2];
  size_t plen = data[3];
  data += 4, size -= 4;
  if (plen > size) plen = size;
  char *path = fz_dup((const char *)data, plen, 0);
  size_t blen = size - plen;
  char *body = fz_dup((const char *)data + plen, blen, 0);
  const char *secret = secrets[pick % 3];
  const char *method = methods[(pick / 3) % 5];
  const char *code = codes[(pick / 15) % 4];

  lua_settop(L, 0);
  push_json(mode, body, blen);
  int json = lua_gettop(L);
  abuf detail = {0};
  alloy_server_detail(L, -1, body, blen, &detail);
  CHECK(lua_gettop(L) == json, "alloy_server_detail left the stack at %d, not %d", lua_gettop(L), json);
  const char *want;
  size_t want_len;
  expected_detail(json, body, blen, &want, &want_len);
  CHECK(detail.len == want_len && (want_len == 0 || memcmp(detail.data, want, want_len) == 0),
        "detail (%zu bytes) is not the expected %zu bytes", detail.len, want_len);
  if (detail.len == 0) abuf_adds(&detail, "no explanation in the response");

  /* Format into a reused buffer, like client->scratch. */
  static abuf msg;
  abuf_adds(&msg, "stale text from the previous call");
  alloy_format_message(&msg, code, detail.data, detail.len, method, method ? path : NULL, plen,
                       attempts, secret);
  CHECK(msg.data != NULL && strlen(msg.data) == msg.len, "message has a NUL inside (len %zu)", msg.len);
  CHECK(strncmp(msg.data, code, strlen(code)) == 0 && msg.data[strlen(code)] == ':',
        "message does not start with the code: %.60s", msg.data);
  for (size_t i = 0; i < msg.len; i++) {
    unsigned char c = (unsigned char)msg.data[i];
    CHECK(c >= 0x20 && c != 0x7f, "control byte 0x%02x at %zu: not one line", c, i);
  }
  CHECK(msg.len <= ALLOY_MSG_MAX, "message is %zu bytes, over ALLOY_MSG_MAX (%d)", msg.len, ALLOY_MSG_MAX);
  CHECK(!fz_memmem(msg.data, msg.len, secret, strlen(secret)), "the secret is in the message");
  if (attempts > 1) {
    char tail[40];
    snprintf(tail, sizeof tail, " after %d attempts", attempts);
    size_t tl = strlen(tail);
    CHECK(msg.len >= tl && memcmp(msg.data + msg.len - tl, tail, tl) == 0, "attempt count missing");
  }
  /* A message built from well-formed UTF-8 is well-formed UTF-8: a cut never splits a
   * character (the message may end up in JSON, a terminal or a log). */
  if (utf8_ok(detail.data, detail.len) && utf8_ok(path, plen))
    CHECK(utf8_ok(msg.data, msg.len), "the message is not UTF-8 although its parts were: %s", msg.data);
  /* Pieces of the secret: each 8-byte window found in the message must have been in the input
   * outside whole copies of the secret. */
  size_t sd_n, sp_n;
  char *sd = strip_secret(detail.data, detail.len, secret, &sd_n);
  char *sp = strip_secret(path, plen, secret, &sp_n);
  size_t k = strlen(secret);
  for (size_t i = 0; i + 8 <= k; i++) {
    const char *w = secret + i;
    if (fz_memmem(msg.data, msg.len, w, 8)) {
      int in_input = fz_memmem(sd, sd_n, w, 8) || fz_memmem(sp, sp_n, w, 8) ||
                     fz_memmem(code, strlen(code), w, 8) || (method && fz_memmem(method, strlen(method), w, 8));
      CHECK(in_input, "a piece of the secret (%.8s, at offset %zu of it) leaked into: %s", w, i, msg.data);
    }
  }
  free(sd), free(sp);
  abuf_free(&detail);
  free(path), free(body);
  lua_settop(L, 0);
  static unsigned calls;
  if (++calls % 4096 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
