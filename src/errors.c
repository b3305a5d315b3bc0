#include "errors.h"

#include <stdio.h>

/* Appends s with control bytes as spaces and runs of spaces collapsed, so a multi-line body
 * stays one line, keeping out->len within limit. Text cut short ends in "..." and never in
 * half a UTF-8 sequence. */
static void add_clean(abuf *out, const char *s, size_t n, size_t limit) {
  size_t start = out->len, i = 0;
  for (; i < n && out->len < limit; i++) {
    unsigned char c = (unsigned char)s[i];
    char ch = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    if (ch == ' ' && out->len > 0 && out->data[out->len - 1] == ' ') continue;
    abuf_add(out, &ch, 1);
  }
  int cut = 0;
  for (; i < n && !cut; i++) cut = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] != 0x7f;
  if (!cut) return;
  out->len = limit >= start + 3 && out->len > limit - 3 ? limit - 3 : out->len;
  size_t j = out->len, cont = 0;
  while (j > start && cont < 3 && ((unsigned char)out->data[j - 1] & 0xC0) == 0x80) j--, cont++;
  if (j > start && (unsigned char)out->data[j - 1] >= 0xC0) {
    unsigned char lead = (unsigned char)out->data[j - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (cont + 1 < want) out->len = j - 1;
  }
  out->data[out->len] = '\0';
  if (out->len + 3 <= limit) abuf_add(out, "...", 3);
}

/* Replaces every copy of secret in s with a mask; returns the text to use (s itself when the
 * secret is absent, else tmp's data) and its length in *n. */
static const char *redacted(abuf *tmp, const char *s, size_t *n, const char *secret) {
  static const char mask[] = "[REDACTED]";
  size_t k = secret ? strlen(secret) : 0;
  size_t len = *n, from = 0;
  /* A very short "key" would blank out ordinary words; real keys are long. */
  if (k < 8 || len < k) return s;
  for (size_t i = 0; i + k <= len;) {
    if (memcmp(s + i, secret, k) == 0) {
      abuf_add(tmp, s + from, i - from);
      abuf_add(tmp, mask, sizeof mask - 1);
      i += k;
      from = i;
    } else {
      i++;
    }
  }
  if (from == 0) return s;
  abuf_add(tmp, s + from, len - from);
  *n = tmp->len;
  return tmp->data;
}

static void redact(abuf *out, const char *secret) {
  abuf tmp = {0};
  size_t n = out->len;
  const char *s = redacted(&tmp, out->data, &n, secret);
  if (s != out->data) {
    abuf_clear(out);
    abuf_add(out, s, n);
  }
  abuf_free(&tmp);
}

void alloy_format_message(abuf *out, const char *code, const char *detail, size_t detail_len,
                          const char *method, const char *path, size_t path_len, int attempts,
                          const char *secret) {
  char tail[48] = "";
  abuf d = {0}, p = {0}, shown_path = {0};
  /* Redact before cleaning and cutting: a key cut in half by the length cap would no longer
   * match afterwards, and half a key is still a leak. */
  detail = redacted(&d, detail, &detail_len, secret);
  if (attempts > 1) snprintf(tail, sizeof tail, " after %d attempts", attempts);
  size_t fixed = strlen(code) + 2 + strlen(tail) + (method && path ? strlen(method) + 4 : 0);
  size_t room = fixed < ALLOY_MSG_MAX ? ALLOY_MSG_MAX - fixed : 0;
  if (method && path) {
    path = redacted(&p, path, &path_len, secret);
    add_clean(&shown_path, path, path_len, room / 2); /* the path gets at most half */
    room -= shown_path.len;
  }
  abuf_clear(out);
  abuf_adds(out, code);
  abuf_adds(out, ": ");
  add_clean(out, detail, detail_len, out->len + room);
  while (out->len > 0 && out->data[out->len - 1] == ' ') out->data[--out->len] = '\0';
  if (method && path) {
    abuf_adds(out, " (");
    abuf_adds(out, method);
    abuf_adds(out, " ");
    abuf_add(out, shown_path.data ? shown_path.data : "", shown_path.len);
    abuf_adds(out, ")");
  }
  abuf_adds(out, tail);
  redact(out, secret); /* belt and braces: the pieces were redacted one by one above */
  abuf_free(&d);
  abuf_free(&p);
  abuf_free(&shown_path);
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
