#include "errors.h"

#include <curl/curl.h> /* only the CURLE_ numbers: nothing of libcurl is called here */
#include <stdio.h>

/* Every failure code alloy.so can return, the one place they are named. curl is the
 * libcurl error a row stands for (-1: none); families come last. */
static const struct code_row {
  const char *name;
  int curl;
  const char *what;
} code_rows[] = {
  [CODE_TRANSPORT_ERROR] = {"TRANSPORT_ERROR", -1, "the transport option's function failed or returned no valid status"},
  [CODE_INVALID_ARGUMENT] = {"INVALID_ARGUMENT", -1, "a value (id, header) cannot be sent as given; nothing was sent"},
  [CODE_JSON_DECODE] = {"JSON_DECODE", -1, "a 2xx response body is not valid JSON"},
  [CODE_BAD_RESPONSE] = {"BAD_RESPONSE", -1, "a 2xx JSON response lacks the field or list the operation returns"},
  [CODE_BODY_TOO_LARGE] = {"BODY_TOO_LARGE", CURLE_FILESIZE_EXCEEDED, "the response body is larger than max_body"},
  [CODE_JWT_DECODE] = {"JWT_DECODE", -1, "alloy.jwt_claims: not a JWT with a base64url JSON object payload"},
  {"UNSUPPORTED_PROTOCOL", CURLE_UNSUPPORTED_PROTOCOL, "the URL's scheme is not http or https"},
  {"URL_MALFORMAT", CURLE_URL_MALFORMAT, "the URL cannot be parsed"},
  {"COULDNT_RESOLVE_PROXY", CURLE_COULDNT_RESOLVE_PROXY, "the proxy's host name did not resolve"},
  {"COULDNT_RESOLVE_HOST", CURLE_COULDNT_RESOLVE_HOST, "the host name did not resolve"},
  {"COULDNT_CONNECT", CURLE_COULDNT_CONNECT, "no connection to the host or proxy (refused, unreachable)"},
  {"WEIRD_SERVER_REPLY", CURLE_WEIRD_SERVER_REPLY, "the server's answer is not HTTP"},
  {"HTTP2", CURLE_HTTP2, "an HTTP/2 framing error"},
  {"HTTP2_STREAM", CURLE_HTTP2_STREAM, "the server reset the HTTP/2 stream"},
  {"PROXY", CURLE_PROXY, "the proxy refused or failed the connection"},
  {"PARTIAL_FILE", CURLE_PARTIAL_FILE, "the connection closed before the whole body arrived"},
  {"OUT_OF_MEMORY", CURLE_OUT_OF_MEMORY, "out of memory"},
  {"OPERATION_TIMEDOUT", CURLE_OPERATION_TIMEDOUT, "timeout or connect_timeout expired"},
  {"SSL_CONNECT_ERROR", CURLE_SSL_CONNECT_ERROR, "the TLS handshake failed"},
  {"SSL_CACERT", CURLE_PEER_FAILED_VERIFICATION, "the server's TLS certificate is not trusted (see ca_file)"},
  {"SSL_CACERT_BADFILE", CURLE_SSL_CACERT_BADFILE, "ca_file cannot be read as CA certificates"},
  {"GOT_NOTHING", CURLE_GOT_NOTHING, "the server closed the connection without answering"},
  {"SEND_ERROR", CURLE_SEND_ERROR, "sending the request failed"},
  {"RECV_ERROR", CURLE_RECV_ERROR, "receiving the response failed"},
  {"HTTP_<status>", -1, "the server answered with this status, not 2xx (res holds the answer)"},
  {"CURL_<n>", -1, "any other libcurl error n (see libcurl-errors(3))"},
};

#define CODE_ROWS (sizeof code_rows / sizeof code_rows[0])

const char *alloy_code_name(alloy_code code) { return code_rows[code].name; }

const char *alloy_curl_code(int curl_code, char *buf, size_t size) {
  for (size_t i = 0; i < CODE_ROWS; i++)
    if (code_rows[i].curl == curl_code) return code_rows[i].name;
  snprintf(buf, size, "CURL_%d", curl_code);
  return buf;
}

const char *alloy_http_code(long status, char *buf, size_t size) {
  snprintf(buf, size, "HTTP_%ld", status);
  return buf;
}

void alloy_push_codes(lua_State *L) {
  lua_createtable(L, 0, (int)CODE_ROWS);
  for (size_t i = 0; i < CODE_ROWS; i++) {
    lua_pushstring(L, code_rows[i].what);
    lua_setfield(L, -2, code_rows[i].name);
  }
}

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
