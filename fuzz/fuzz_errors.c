/* libFuzzer target: error-message extraction, formatting and redaction (src/errors.c).
 *   alloy_server_detail (the server's message from a decoded body, else a body excerpt)
 *   alloy_format_message (one line, capped, secret redacted)
 *   alloy_excerpt (redact, then scrub and cut: what messages and --verbose lines go through)
 * These take a lua_State, so this binary links liblua5.4 (the module never does) and loads
 * lua-cjson through package.cpath, exactly as alloy.c decodes bodies.
 * Input: byte 0 = mode, byte 1 = attempts (low 4 bits) and the form a copy of the secret is
 * spliced in with (high 4 bits: none, as is, upper case, %XX, %xx, \u00XX, \u00xx, %25XX,
 * '\/', and from 8 up a mix that changes form byte by byte), byte 2 = method/secret pick,
 * byte 3 = path length, then the path, then the body (the rest); the secret replaces the
 * body's first 0x01 byte. Mode bit 0 picks cjson.decode(body) or a table built from the
 * body's pieces (bits 1-3 choose its shape); bits 4-7 give an excerpt limit for
 * alloy_excerpt of the body.
 * Invariants: the Lua stack is balanced; the detail is the documented field, or a printable
 * excerpt of at most 160 bytes (nothing for a binary body); the message starts with
 * "CODE: ", is one line with no control bytes (C0, DEL, C1) or NUL, is well-formed UTF-8, is
 * at most ALLOY_MSG_MAX bytes and carries " after N attempts" when N > 1; an excerpt keeps
 * to its limit the same way; and none of them holds any 8-byte piece of the secret, in any
 * letter case, percent-encoded (once or twice) or JSON-escaped: checked by decoding every
 * such form first and searching the result, not the way errors.c matches. */
#include "fuzz_common.h"
#include "errors.h"

#include <ctype.h>
#include <lualib.h>

#ifndef CJSON_CPATH
#define CJSON_CPATH "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
#endif

static lua_State *L;

static const char *const secrets[] = {
  "sk_FuzzSecretKey_0123456789abcdefXY", /* 35: the usual shape */
  "Zq9-Lm2_Vx7pRt4wYb8nKc3dHf6gJs1a",    /* 32: the sandbox's alphabet */
  "abcdefghijklmnopqrst",                /* 20: easy for the fuzzer to rebuild from pieces */
  "sk/live+Fuzz=Key/0123456789",         /* bytes that percent-encoding and JSON change */
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

/* The field alloy_server_detail must copy as is, or NULL when it falls back to the body. */
static int expected_field(int json, const char **s, size_t *len) {
  if (lua_istable(L, json)) {
    if (field_string(json, "message", s, len)) return 1;
    lua_getfield(L, json, "error");
    int e = lua_gettop(L);
    int ok = lua_istable(L, e) ? field_string(e, "message", s, len) : field_string(json, "error", s, len);
    lua_pop(L, 1);
    if (ok) return 1;
  }
  return 0;
}

/* 1 when s is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without control characters: C0, DEL, or C1 (U+0080..U+009F). */
static int printable_utf8(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k == 0 || i + k > n || c < 0x20 || c == 0x7f) return 0;
    unsigned long cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
    for (size_t j = 1; j < k; j++) {
      if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | ((unsigned char)s[i + j] & 0x3F);
    }
    static const unsigned long least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[k] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || (cp >= 0x80 && cp <= 0x9F)) return 0;
    i += k;
  }
  return 1;
}

static int hexdig(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex2(const char *s, size_t n) {
  if (n < 2 || hexdig((unsigned char)s[0]) < 0 || hexdig((unsigned char)s[1]) < 0) return -1;
  return hexdig((unsigned char)s[0]) * 16 + hexdig((unsigned char)s[1]);
}

/* s with every encoded form decoded (%25XX, %XX, \u00XX, \/, \\, \") and folded to lower
 * case: a piece of the secret in any form is then a plain substring. */
static char *decode_forms(const char *s, size_t n, size_t *out_n) {
  char *d = malloc(n + 1);
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    int v;
    if (s[i] == '%' && n - i >= 5 && s[i + 1] == '2' && s[i + 2] == '5' && (v = hex2(s + i + 3, n - i - 3)) >= 0) {
      d[j++] = (char)v, i += 5;
    } else if (s[i] == '%' && (v = hex2(s + i + 1, n - i - 1)) >= 0) {
      d[j++] = (char)v, i += 3;
    } else if (s[i] == '\\' && n - i >= 6 && s[i + 1] == 'u' && s[i + 2] == '0' && s[i + 3] == '0' &&
               (v = hex2(s + i + 4, n - i - 4)) >= 0) {
      d[j++] = (char)v, i += 6;
    } else if (s[i] == '\\' && n - i >= 2 && (s[i + 1] == '/' || s[i + 1] == '\\' || s[i + 1] == '"')) {
      d[j++] = s[i + 1], i += 2;
    } else {
      d[j++] = s[i++];
    }
  }
  for (size_t i = 0; i < j; i++) d[i] = (char)tolower((unsigned char)d[i]);
  *out_n = j;
  return d;
}

/* The offset of an 8-byte piece of secret found in s in any form, or -1. Searched in s
 * decoded and in s as is (lower case): "%0123..." is '%' and "0123" as much as 0x01, "23". */
static long secret_piece(const char *s, size_t n, const char *secret) {
  size_t dn, k = strlen(secret);
  char *d = decode_forms(s, n, &dn), *plain = malloc(n + 1);
  for (size_t i = 0; i < n; i++) plain[i] = (char)tolower((unsigned char)s[i]);
  char w[8];
  long found = -1;
  for (size_t i = 0; i + 8 <= k && found < 0; i++) {
    for (size_t j = 0; j < 8; j++) w[j] = (char)tolower((unsigned char)secret[i + j]);
    if (fz_memmem(d, dn, w, 8) || fz_memmem(plain, n, w, 8)) found = (long)i;
  }
  free(d), free(plain);
  return found;
}

/* Appends the secret in one of the forms a server may echo it in. */
static void splice_secret(abuf *out, const char *secret, unsigned form) {
  static const char hexu[] = "0123456789ABCDEF", hexl[] = "0123456789abcdef";
  for (size_t i = 0; secret[i]; i++) {
    unsigned char c = (unsigned char)secret[i];
    unsigned f = form < 8 ? form : (form + (unsigned)i) % 8 + 1;
    char b[8];
    size_t n = 0;
    switch (f) {
      case 2: b[n++] = (char)toupper(c); break;
      case 3: b[n++] = '%', b[n++] = hexu[c >> 4], b[n++] = hexu[c & 15]; break;
      case 4: b[n++] = '%', b[n++] = hexl[c >> 4], b[n++] = hexl[c & 15]; break;
      case 5: memcpy(b, "\\u00", 4), n = 4, b[n++] = hexu[c >> 4], b[n++] = hexu[c & 15]; break;
      case 6: memcpy(b, "\\u00", 4), n = 4, b[n++] = hexl[c >> 4], b[n++] = hexl[c & 15]; break;
      case 7: memcpy(b, "%25", 3), n = 3, b[n++] = hexu[c >> 4], b[n++] = hexu[c & 15]; break;
      case 8: if (c == '/') b[n++] = '\\'; b[n++] = (char)c; break;
      default: b[n++] = (char)c; break;
    }
    abuf_add(out, b, n);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) init();
  if (size < 4) return 0;
  unsigned mode = data[0];
  int attempts = data[1] % 16;
  unsigned form = data[1] >> 4;
  unsigned pick = data[2];
  size_t plen = data[3];
  data += 4, size -= 4;
  if (plen > size) plen = size;
  const char *secret = secrets[pick % 4];
  const char *method = methods[(pick / 4) % 5];
  const char *code = codes[(pick / 20) % 4];
  char *path = fz_dup((const char *)data, plen, 0);
  /* The body, with the secret in the chosen form in place of its first 0x01 byte. */
  abuf spliced = {0};
  const char *raw = (const char *)data + plen;
  size_t raw_len = size - plen;
  const char *mark = form ? memchr(raw, 0x01, raw_len) : NULL;
  if (mark) {
    abuf_add(&spliced, raw, (size_t)(mark - raw));
    splice_secret(&spliced, secret, form);
    abuf_add(&spliced, mark + 1, raw_len - (size_t)(mark - raw) - 1);
  } else {
    abuf_add(&spliced, raw, raw_len);
  }
  size_t blen = spliced.len;
  char *body = fz_dup(spliced.data, blen, 0);
  abuf_free(&spliced);

  lua_settop(L, 0);
  push_json(mode, body, blen);
  int json = lua_gettop(L);
  abuf detail = {0};
  alloy_server_detail(L, -1, body, blen, secret, &detail);
  CHECK(lua_gettop(L) == json, "alloy_server_detail left the stack at %d, not %d", lua_gettop(L), json);
  const char *want;
  size_t want_len;
  if (expected_field(json, &want, &want_len)) {
    CHECK(detail.len == want_len && memcmp(detail.data, want, want_len) == 0,
          "detail (%zu bytes) is not the field's %zu bytes", detail.len, want_len);
  } else {
    int binary = 0;
    for (size_t i = 0; i < blen && i < ALLOY_EXCERPT_MAX; i++) binary |= (unsigned char)body[i] < 0x09;
    CHECK(!binary || detail.len == 0, "a binary body gave a %zu-byte excerpt", detail.len);
    CHECK(detail.len <= ALLOY_EXCERPT_MAX, "the excerpt is %zu bytes", detail.len);
    CHECK(printable_utf8(detail.data, detail.len), "the excerpt is not printable UTF-8: %.*s", (int)detail.len,
          detail.data);
    CHECK(secret_piece(detail.data, detail.len, secret) < 0, "a piece of the secret in the excerpt: %.*s",
          (int)detail.len, detail.data);
    if (blen > 0 && !binary && blen <= ALLOY_EXCERPT_MAX && secret_piece(body, blen, secret) < 0) {
      /* nothing to mask, nothing to cut: the excerpt is the body with control bytes as spaces */
      int plain = 1;
      for (size_t i = 0; i < blen; i++) /* and no '%' or '\\': there decoding is ambiguous */
        plain &= (unsigned char)body[i] > 0x20 && (unsigned char)body[i] < 0x7f && body[i] != '%' && body[i] != '\\';
      if (plain) CHECK(detail.len == blen && memcmp(detail.data, body, blen) == 0, "a plain body was changed");
    }
  }
  if (detail.len == 0) abuf_adds(&detail, "no explanation in the response");

  /* Format into a reused buffer, like client->scratch. */
  static abuf msg;
  abuf_adds(&msg, "stale text from the previous call");
  alloy_format_message(&msg, code, detail.data, detail.len, method, method ? path : NULL, plen,
                       attempts, secret);
  CHECK(msg.data != NULL && strlen(msg.data) == msg.len, "message has a NUL inside (len %zu)", msg.len);
  CHECK(strncmp(msg.data, code, strlen(code)) == 0 && msg.data[strlen(code)] == ':',
        "message does not start with the code: %.60s", msg.data);
  CHECK(printable_utf8(msg.data, msg.len), "the message is not one printable UTF-8 line: %s", msg.data);
  CHECK(msg.len <= ALLOY_MSG_MAX, "message is %zu bytes, over ALLOY_MSG_MAX (%d)", msg.len, ALLOY_MSG_MAX);
  if (attempts > 1) {
    char tail[40];
    snprintf(tail, sizeof tail, " after %d attempts", attempts);
    size_t tl = strlen(tail);
    CHECK(msg.len >= tl && memcmp(msg.data + msg.len - tl, tail, tl) == 0, "attempt count missing");
  }
  long at = secret_piece(msg.data, msg.len, secret);
  CHECK(at < 0, "a piece of the secret (at offset %ld of it) leaked into: %s", at, msg.data);

  /* An excerpt of the body at any limit, as a --verbose line or a JSON_DECODE excerpt gets. */
  size_t limit = (mode >> 4) * 13;
  abuf ex = {0};
  abuf_adds(&ex, "> ");
  alloy_excerpt(&ex, body, blen, limit, secret);
  CHECK(ex.len <= 2 + limit, "an excerpt of limit %zu is %zu bytes", limit, ex.len - 2);
  CHECK(printable_utf8(ex.data, ex.len), "the excerpt is not printable UTF-8: %s", ex.data);
  at = secret_piece(ex.data, ex.len, secret);
  CHECK(at < 0, "a piece of the secret (at offset %ld of it) in an excerpt: %s", at, ex.data);
  abuf_free(&ex);
  /* Redaction alone (no cut) leaves no piece either. */
  abuf red = {0};
  alloy_redact(&red, body, blen, secret);
  at = secret_piece(red.data ? red.data : "", red.len, secret);
  CHECK(at < 0, "a piece of the secret (at offset %ld of it) survived alloy_redact", at);
  abuf_free(&red);

  abuf_free(&detail);
  free(path), free(body);
  lua_settop(L, 0);
  static unsigned calls;
  if (++calls % 4096 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
