#include "errors.h"

#include <stdio.h>

static void add_clean(abuf *out, const char *s, size_t n) {
  for (size_t i = 0; i < n && out->len < ALLOY_MSG_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    char ch = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    /* collapse runs of white space so a multi-line body stays one line */
    if (ch == ' ' && out->len > 0 && out->data[out->len - 1] == ' ') continue;
    abuf_add(out, &ch, 1);
  }
}

static void redact(abuf *out, const char *secret) {
  static const char mask[] = "[REDACTED]";
  size_t k = secret ? strlen(secret) : 0;
  /* A very short "key" would blank out ordinary words; real keys are long. */
  if (k < 8 || out->len < k) return;
  for (size_t i = 0; i + k <= out->len;) {
    if (memcmp(out->data + i, secret, k) == 0) {
      abuf tail = {0};
      abuf_add(&tail, out->data + i + k, out->len - i - k);
      out->len = i;
      abuf_add(out, mask, sizeof mask - 1);
      abuf_add(out, tail.data ? tail.data : "", tail.len);
      abuf_free(&tail);
      i += sizeof mask - 1;
    } else {
      i++;
    }
  }
}

void alloy_format_message(abuf *out, const char *code, const char *detail, size_t detail_len,
                          const char *method, const char *path, size_t path_len, int attempts,
                          const char *secret) {
  char tail[48] = "";
  abuf_clear(out);
  abuf_adds(out, code);
  abuf_adds(out, ": ");
  add_clean(out, detail, detail_len);
  while (out->len > 0 && out->data[out->len - 1] == ' ') out->data[--out->len] = '\0';
  if (method && path) {
    abuf_adds(out, " (");
    abuf_adds(out, method);
    abuf_adds(out, " ");
    add_clean(out, path, path_len);
    abuf_adds(out, ")");
  }
  if (attempts > 1) {
    snprintf(tail, sizeof tail, " after %d attempts", attempts);
    abuf_adds(out, tail);
  }
  redact(out, secret);
}

static int string_field(lua_State *L, int t, const char *name, abuf *out) {
  int found = 0;
  lua_getfield(L, t, name);
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (n > 0) {
      abuf_add(out, s, n);
      found = 1;
    }
  }
  lua_pop(L, 1);
  return found;
}

void alloy_server_detail(lua_State *L, int json_idx, const char *body, size_t body_len,
                         abuf *out) {
  json_idx = ac_absindex(L, json_idx);
  if (lua_istable(L, json_idx)) {
    if (string_field(L, json_idx, "message", out)) return;
    lua_getfield(L, json_idx, "error");
    int err = lua_gettop(L);
    int found = lua_istable(L, err) ? string_field(L, err, "message", out)
                                    : string_field(L, json_idx, "error", out);
    lua_pop(L, 1);
    if (found) return;
  }
  size_t n = body_len < 160 ? body_len : 160;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)body[i] < 0x09) return; /* binary: say nothing rather than garbage */
  abuf_add(out, body, n);
}

int alloy_push_failure(lua_State *L, const char *msg, const char *code, int res_idx) {
  if (res_idx) res_idx = ac_absindex(L, res_idx);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  if (res_idx)
    lua_pushvalue(L, res_idx);
  else
    lua_pushnil(L);
  return 4;
}
