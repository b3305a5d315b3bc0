#include "errors.h"

#include <curl/curl.h> /* only the CURLE_ numbers: nothing of libcurl is called here */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

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
  [CODE_BAD_RESPONSE] = {"BAD_RESPONSE", -1, "a 2xx JSON response lacks the field or list the operation returns (user_token: a JWT)"},
  [CODE_BODY_TOO_LARGE] = {"BODY_TOO_LARGE", CURLE_FILESIZE_EXCEEDED, "the response body is larger than max_body"},
  /* 100: CURLE_TOO_LARGE (libcurl 8.6+); older ones say CURLE_OUT_OF_MEMORY (response.c) */
  [CODE_HEADERS_TOO_LARGE] = {"HEADERS_TOO_LARGE", 100, "a response header line is larger than libcurl accepts (100 KB)"},
  [CODE_JWT_DECODE] = {"JWT_DECODE", -1, "alloy.jwt_claims: not a JWT with a base64url JSON object payload"},
  [CODE_CANCELLED] = {"CANCELLED", -1, "a started request was cancelled (handle:cancel(), or client:close() before its callback ran)"},
  [CODE_UNSUCCESSFUL] = {"UNSUCCESSFUL", -1, "a 2xx answer that says {\"success\": false}: the API did not do it"},
  [CODE_FILE_READ] = {"FILE_READ", -1, "a file to send cannot be read (missing, not a regular file, no permission, a read error)"},
  [CODE_FILE_CHANGED] = {"FILE_CHANGED", -1, "the file changed while it was read: its bytes no longer have the MD5 (or size) given; the upload was stopped before its last byte"},
  [CODE_UNSAFE_URL] = {"UNSAFE_URL", -1, "an upload URL that is not https (http only on 127.0.0.1, localhost or [::1]), or that carries a user name; nothing was sent"},
  [CODE_MD5_UNAVAILABLE] = {"MD5_UNAVAILABLE", -1, "libcrypto (OpenSSL) cannot be loaded, or refuses MD5 (FIPS mode)"},
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
  {"INTERRUPTED", CURLE_ABORTED_BY_CALLBACK, "Ctrl-C (SIGINT) stopped the request or its wait; nothing more was sent"},
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

/* The length of the well-formed UTF-8 sequence at s (1 for ASCII), or 0 for an invalid one:
 * a stray continuation byte, a truncated, overlong or surrogate form, or beyond U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : (c & 0xF0) == 0xE0 ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (k == 0 || k > n) return 0;
  for (size_t j = 1; j < k; j++)
    if ((s[j] & 0xC0) != 0x80) return 0;
  if (k == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0;
  if (k == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
  return k;
}

/* Appends s as one printable line, keeping out->len within limit: control bytes (C0, DEL,
 * and the C1 range U+0080..U+009F, which terminals obey too) become spaces, runs of spaces
 * collapse, and each byte of an invalid UTF-8 sequence becomes '?'. Text cut short ends in
 * "..." and never in half a UTF-8 sequence. */
static void add_clean(abuf *out, const char *s, size_t n, size_t limit) {
  const unsigned char *u = (const unsigned char *)s;
  size_t start = out->len, i = 0;
  int cut = 0;
  while (i < n && !cut) {
    size_t k = utf8_len(u + i, n - i);
    const char *piece = s + i;
    int space = k == 1 ? (u[i] < 0x20 || u[i] == 0x7f || u[i] == ' ') : k == 2 && u[i] == 0xC2 && u[i + 1] < 0xA0;
    if (k == 0) piece = "?", k = 1;
    if (space && out->len > 0 && out->data[out->len - 1] == ' ') {
      i += k;
      continue;
    }
    if (space) piece = " ";
    size_t shown = space ? 1 : k;
    if (out->len + shown > limit) {
      cut = 1;
      break;
    }
    abuf_add(out, piece, shown);
    i += k;
  }
  if (!cut) return;
  for (cut = 0; i < n && !cut; i++) cut = u[i] > 0x20 && u[i] != 0x7f;
  if (!cut) return;
  /* Room for "...": drop whole characters from the end. */
  while (out->len > start && out->len + 3 > limit) {
    out->len--;
    while (out->len > start && ((unsigned char)out->data[out->len] & 0xC0) == 0x80) out->len--;
  }
  out->data[out->len] = '\0';
  if (out->len + 3 <= limit) abuf_add(out, "...", 3);
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex_pair(const unsigned char *s) {
  int hi = hex_value(s[0]), lo = hi < 0 ? -1 : hex_value(s[1]);
  return lo < 0 ? -1 : hi * 16 + lo;
}

static unsigned char fold(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

/* The length of the encoded form of byte want at s (percent-encoded once or twice, a JSON
 * escape \uXXXX, \/, \\ or \", or '+' for a space), or 0. Letter case is ignored. */
static size_t encoded_len(const unsigned char *s, size_t n, unsigned char want) {
  if (n >= 3 && s[0] == '%') {
    int v = hex_pair(s + 1);
    if (v >= 0 && fold((unsigned char)v) == fold(want)) return 3;
    if (v == '%' && n >= 5 && (v = hex_pair(s + 3)) >= 0 && fold((unsigned char)v) == fold(want)) return 5;
  }
  if (n >= 2 && s[0] == '\\') {
    if (s[1] == want && (want == '/' || want == '\\' || want == '"')) return 2;
    if (n >= 6 && s[1] == 'u' && hex_pair(s + 2) == 0) {
      int v = hex_pair(s + 4);
      if (v >= 0 && fold((unsigned char)v) == fold(want)) return 6;
    }
  }
  if (s[0] == '+' && want == ' ') return 1;
  return 0;
}

/* How far (in bytes of s) the secret's bytes from secret[j] on match at s, in any mix of the
 * forms encoded_len knows and plain bytes; *count gets how many secret bytes matched. */
static size_t match_span(const unsigned char *s, size_t n, const unsigned char *secret, size_t k,
                         size_t j, size_t *count) {
  size_t i = 0, m = 0;
  while (j + m < k && i < n) {
    size_t e = encoded_len(s + i, n - i, secret[j + m]);
    if (e == 0 && fold(s[i]) == fold(secret[j + m])) e = 1;
    if (e == 0) break;
    i += e, m++;
  }
  *count = m;
  return i;
}

/* A piece shorter than this is not masked: too short to tell from ordinary text (keys are
 * at least this long, options.c). */
#define REDACT_MIN 8

/* The offsets of the secret a match may start at (those with room for a window), chained by
 * their byte (letter case folded): a text byte is tried only against the offsets that hold it,
 * one or two for a key of mixed letters and digits, instead of all of them. */
typedef struct start_index {
  int first[256];
  int *next;
  int own[256]; /* next, for a secret of up to 256 offsets */
} start_index;

static int start_index_build(start_index *x, const unsigned char *key, size_t starts) {
  x->next = starts <= 256 ? x->own : malloc(starts * sizeof *x->next);
  if (x->next == NULL) return -1;
  for (int b = 0; b < 256; b++) x->first[b] = -1;
  for (size_t j = starts; j-- > 0;) {
    unsigned char b = fold(key[j]);
    x->next[j] = x->first[b];
    x->first[b] = (int)j;
  }
  return 0;
}

static void start_index_free(start_index *x) {
  if (x->next != x->own) free(x->next);
}

/* Appends s[from, at) and the mask that stands for the secret found at `at`. */
static void add_masked(abuf *out, const char *s, size_t from, size_t at) {
  static const char mask[] = "[REDACTED]";
  abuf_add(out, s + from, at - from);
  abuf_add(out, mask, sizeof mask - 1);
}

/* As alloy_redact, masking pieces of `window` bytes (the whole secret when it is shorter). */
static void redact_window(abuf *out, const char *s, size_t n, const char *secret, size_t window) {
  const unsigned char *u = (const unsigned char *)s, *key = (const unsigned char *)secret;
  size_t k = secret ? strlen(secret) : 0, from = 0;
  if (window > k) window = k;
  if (window == 0 || n < window) { /* nothing can match */
    abuf_add(out, s, n);
    return;
  }
  start_index x;
  int indexed = start_index_build(&x, key, k - window + 1) == 0; /* else every offset, slower */
  for (size_t i = 0; i + window <= n;) {
    size_t best = 0, count, span;
    /* The start of an encoding may stand for any byte: every offset. Else only those that
     * hold this byte. The scripts pass all their output through here. */
    if (u[i] == '%' || u[i] == '\\' || u[i] == '+' || !indexed) {
      for (size_t j = 0; j + window <= k; j++) {
        if (u[i] != '%' && u[i] != '\\' && u[i] != '+' && fold(u[i]) != fold(key[j])) continue;
        span = match_span(u + i, n - i, key, k, j, &count);
        if (count >= window && span > best) best = span;
      }
    } else {
      for (int j = x.first[fold(u[i])]; j >= 0; j = x.next[j]) {
        span = match_span(u + i, n - i, key, k, (size_t)j, &count);
        if (count >= window && span > best) best = span;
      }
    }
    if (best == 0) {
      i++;
      continue;
    }
    add_masked(out, s, from, i);
    i += best;
    from = i;
  }
  abuf_add(out, s + from, n - from);
  if (indexed) start_index_free(&x);
}

/* Base64 of the secret, a server may echo it so (a Basic header, a token it wraps): the
 * standard and URL-safe alphabets, from each of the three byte offsets a piece of it can start
 * at, each cut to its whole 3-byte groups (the last characters depend on what follows). A run
 * of B64_MIN characters stands for 8 bytes of the key, the plain rule's piece. */
#define B64_MIN 11

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64_of(abuf *out, const unsigned char *s, size_t n, int url_safe) {
  for (size_t i = 0; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
    char four[4];
    for (int k = 0; k < 4; k++) {
      char c = b64_std[(v >> (18 - 6 * k)) & 63];
      if (url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
      four[k] = c;
    }
    abuf_add(out, four, 4);
  }
}

static int is_b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
         c == '-' || c == '_';
}

/* The windows of B64_MIN characters of the forms, by a rolling hash: a text position is
 * compared only where its window's hash is one of theirs. */
typedef struct b64_window {
  uint64_t hash;
  const char *at; /* the window in its form */
  size_t left;    /* characters of the form from there */
} b64_window;

#define B64_BASE 1099511628211ull

static int by_hash(const void *a, const void *b) {
  uint64_t x = ((const b64_window *)a)->hash, y = ((const b64_window *)b)->hash;
  return x < y ? -1 : x > y;
}

/* The first window with hash h in the sorted win[0..count), or count. */
static size_t first_with(const b64_window *win, size_t count, uint64_t h) {
  size_t lo = 0, hi = count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (win[mid].hash < h) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static uint64_t hash_window(const char *s) {
  uint64_t h = 0;
  for (int i = 0; i < B64_MIN; i++) h = h * B64_BASE + (unsigned char)s[i];
  return h;
}

/* The six forms of a secret and their windows, sorted by hash. */
typedef struct b64_forms {
  abuf forms[6];
  abuf windows; /* b64_window[count] */
  size_t count;
} b64_forms;

static void b64_build(b64_forms *b, const char *secret) {
  size_t k = strlen(secret);
  memset(b, 0, sizeof *b);
  for (int f = 0; f < 6; f++) {
    if (k > (size_t)(f % 3)) base64_of(&b->forms[f], (const unsigned char *)secret + f % 3, k - f % 3, f >= 3);
  }
  /* the windows point into the forms: added once every form is complete (no more realloc) */
  for (int f = 0; f < 6; f++) {
    for (size_t j = 0; j + B64_MIN <= b->forms[f].len; j++) {
      b64_window w = {hash_window(b->forms[f].data + j), b->forms[f].data + j, b->forms[f].len - j};
      abuf_add(&b->windows, (const char *)&w, sizeof w);
      b->count++;
    }
  }
  if (b->count > 1) qsort(b->windows.data, b->count, sizeof(b64_window), by_hash);
}

static void b64_free(b64_forms *b) {
  for (int f = 0; f < 6; f++) abuf_free(&b->forms[f]);
  abuf_free(&b->windows);
}

/* The length of the run of base64 characters at s, up to n. */
static size_t b64_run(const char *s, size_t n) {
  size_t run = 0;
  while (run < n && is_b64_char((unsigned char)s[run])) run++;
  return run;
}

/* Whether s holds a run of base64 characters long enough to carry a piece of a secret. */
static int has_long_run(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t run = b64_run(s + i, n - i);
    if (run >= B64_MIN) return 1;
    i += run ? run : 1;
  }
  return 0;
}

/* Appends s with every run of B64_MIN or more characters of one of the forms masked. Only
 * runs of base64 characters that long are looked into: most text has few. */
static void redact_base64(abuf *out, const char *s, size_t n, const b64_forms *b) {
  const b64_window *win = (const b64_window *)b->windows.data;
  size_t count = b->count, from = 0;
  uint64_t top = 1; /* B64_BASE^(B64_MIN-1), to roll the first character out */
  for (int i = 1; i < B64_MIN; i++) top *= B64_BASE;
  for (size_t i = 0; i < n && count > 0;) {
    size_t run = b64_run(s + i, n - i);
    if (run < B64_MIN) {
      i += run ? run : 1;
      continue;
    }
    size_t end = i + run, p = i;
    uint64_t h = hash_window(s + p);
    while (p + B64_MIN <= end) {
      size_t best = 0;
      for (size_t w = first_with(win, count, h); w < count && win[w].hash == h; w++) {
        size_t m = 0;
        while (p + m < end && m < win[w].left && s[p + m] == win[w].at[m]) m++;
        if (m >= B64_MIN && m > best) best = m;
      }
      if (best == 0) {
        if (p + B64_MIN < end) h = (h - top * (unsigned char)s[p]) * B64_BASE + (unsigned char)s[p + B64_MIN];
        p++;
        continue;
      }
      add_masked(out, s, from, p);
      p += best;
      from = p;
      if (p + B64_MIN <= end) h = hash_window(s + p);
    }
    i = end;
  }
  abuf_add(out, s + from, n - from);
}

/* The whole rule: the plain forms by redact_window, then the base64 ones (forms: built for
 * this secret, or NULL to build them only when the text has a run long enough). */
static void redact_all(abuf *out, const char *s, size_t n, const char *secret, size_t window,
                       const b64_forms *forms) {
  abuf plain = {0};
  redact_window(&plain, s, n, secret, window);
  const char *p = plain.data ? plain.data : "";
  if (forms) {
    redact_base64(out, p, plain.len, forms);
  } else if (has_long_run(p, plain.len)) {
    b64_forms built;
    b64_build(&built, secret);
    redact_base64(out, p, plain.len, &built);
    b64_free(&built);
  } else {
    abuf_add(out, p, plain.len);
  }
  abuf_free(&plain);
}

void alloy_redact(abuf *out, const char *s, size_t n, const char *secret) {
  /* a key shorter than REDACT_MIN is refused by alloy.new: nothing to mask */
  if (!secret || strlen(secret) < REDACT_MIN) {
    abuf_add(out, s, n);
    return;
  }
  redact_all(out, s, n, secret, REDACT_MIN, NULL);
}

void alloy_redact_value(abuf *out, const char *s, size_t n, const char *secret) {
  size_t k = secret ? strlen(secret) : 0;
  if (k == 0) {
    abuf_add(out, s, n);
    return;
  }
  redact_all(out, s, n, secret, k < REDACT_MIN ? k : REDACT_MIN, NULL);
}

void alloy_excerpt(abuf *out, const char *s, size_t n, size_t limit, const char *secret) {
  abuf tmp = {0};
  /* Enough input for limit bytes of output even when some is masked or collapsed, plus a
   * whole secret in its longest encoding (6 bytes each) straddling that. */
  size_t k = secret ? strlen(secret) : 0, window = 4 * limit + 6 * k + 16;
  alloy_redact(&tmp, s, n < window ? n : window, secret);
  add_clean(out, tmp.data ? tmp.data : "", tmp.len, out->len + limit);
  abuf_free(&tmp);
}

void alloy_format_message(abuf *out, const char *code, const char *detail, size_t detail_len,
                          const char *method, const char *path, size_t path_len, int attempts,
                          const char *secret) {
  char tail[48] = "";
  abuf shown_path = {0}, whole = {0};
  if (attempts > 1) snprintf(tail, sizeof tail, " after %d attempts", attempts);
  size_t fixed = strlen(code) + 2 + strlen(tail) + (method && path ? strlen(method) + 4 : 0);
  size_t room = fixed < ALLOY_MSG_MAX ? ALLOY_MSG_MAX - fixed : 0;
  /* Each piece is redacted before it is cleaned and cut: a key cut in half by the length
   * cap would no longer match afterwards, and half a key is still a leak. */
  if (method && path) {
    alloy_excerpt(&shown_path, path, path_len, room / 2, secret); /* the path gets at most half */
    room -= shown_path.len;
  }
  abuf_clear(out);
  abuf_adds(out, code);
  abuf_adds(out, ": ");
  alloy_excerpt(out, detail, detail_len, room, secret);
  while (out->len > 0 && out->data[out->len - 1] == ' ') out->data[--out->len] = '\0';
  if (method && path) {
    abuf_adds(out, " (");
    abuf_adds(out, method);
    abuf_adds(out, " ");
    abuf_add(out, shown_path.data ? shown_path.data : "", shown_path.len);
    abuf_adds(out, ")");
  }
  abuf_adds(out, tail);
  /* Belt and braces: the pieces were redacted one by one above. */
  alloy_redact(&whole, out->data, out->len, secret);
  if (whole.len != out->len || memcmp(whole.data, out->data, out->len) != 0) {
    abuf_clear(out);
    add_clean(out, whole.data, whole.len, ALLOY_MSG_MAX);
  }
  abuf_free(&whole);
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
                         const char *secret, abuf *out) {
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
  size_t n = body_len < ALLOY_EXCERPT_MAX ? body_len : ALLOY_EXCERPT_MAX;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)body[i] < 0x09) return; /* binary: say nothing rather than garbage */
  alloy_excerpt(out, body, body_len, ALLOY_EXCERPT_MAX, secret);
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

void alloy_name_arg_error(lua_State *L, const char *method) {
  size_t n;
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  const char *to = msg ? strstr(msg, " to '?'") : NULL;
  int arg = 0, used = 0;
  if (to == NULL || sscanf(msg, "bad argument #%d%n", &arg, &used) != 1 || msg + used != to || arg < 2) return;
  lua_pushfstring(L, "bad argument #%d to 'client:%s'%s", arg - 1, method, to + 7);
  lua_remove(L, -2);
}

/* alloy.redact(text, secret [, window]) -> text with every piece of secret of 8 bytes (the
 * API key's rule: a shorter secret is left alone), in any form alloy_redact knows, masked: the
 * messages' rule, for what the Lua side prints itself. With `window` (1 to 8), pieces of that
 * many bytes, or the whole secret when it is shorter: for a connector's secrets, which may be
 * short. */
static int alloy_redact_lua(lua_State *L) {
  size_t n, k;
  const char *text = luaL_checklstring(L, 1, &n);
  const char *secret = luaL_checklstring(L, 2, &k);
  abuf out = {0};
  if (k != strlen(secret)) luaL_argerror(L, 2, "secret contains NUL");
  if (lua_isnoneornil(L, 3)) {
    alloy_redact(&out, text, n, secret);
  } else {
    lua_Integer window = luaL_checkinteger(L, 3);
    luaL_argcheck(L, window >= 1 && window <= REDACT_MIN, 3, "window must be 1 to 8");
    redact_all(&out, text, n, secret, (size_t)window, NULL);
  }
  lua_pushlstring(L, out.data ? out.data : "", out.len);
  abuf_free(&out);
  return 1;
}

/* alloy.redactor(secret [, window]) -> function(text) -> text: alloy.redact with the secret's
 * forms built once, for output that passes through it line by line. */
#define REDACTOR_MT "alloy.redactor"

typedef struct redactor {
  char *secret;
  size_t window;
  b64_forms forms;
} redactor;

static int redactor_gc(lua_State *L) {
  redactor *r = luaL_checkudata(L, 1, REDACTOR_MT);
  if (r->secret) {
    free(r->secret);
    b64_free(&r->forms);
    r->secret = NULL;
  }
  return 0;
}

static int redactor_call(lua_State *L) {
  redactor *r = lua_touserdata(L, lua_upvalueindex(1));
  size_t n;
  const char *text = luaL_checklstring(L, 1, &n);
  abuf out = {0};
  if (r->window == 0) abuf_add(&out, text, n); /* a secret too short for the key's rule */
  else redact_all(&out, text, n, r->secret, r->window, &r->forms);
  lua_pushlstring(L, out.data ? out.data : "", out.len);
  abuf_free(&out);
  return 1;
}

static int alloy_redactor_lua(lua_State *L) {
  size_t k;
  const char *secret = luaL_checklstring(L, 1, &k);
  if (k != strlen(secret)) luaL_argerror(L, 1, "secret contains NUL");
  size_t window = REDACT_MIN;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer w = luaL_checkinteger(L, 2);
    luaL_argcheck(L, w >= 1 && w <= REDACT_MIN, 2, "window must be 1 to 8");
    window = (size_t)w;
  } else if (k < REDACT_MIN) {
    window = 0;
  }
  redactor *r = lua_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  luaL_getmetatable(L, REDACTOR_MT);
  lua_setmetatable(L, -2);
  r->secret = malloc(k + 1);
  if (r->secret == NULL) luaL_error(L, "not enough memory");
  memcpy(r->secret, secret, k + 1);
  r->window = window;
  b64_build(&r->forms, r->secret);
  lua_pushcclosure(L, redactor_call, 1);
  return 1;
}

void alloy_errors_open(lua_State *L, int module) {
  lua_createtable(L, 0, (int)CODE_ROWS);
  for (size_t i = 0; i < CODE_ROWS; i++) {
    lua_pushstring(L, code_rows[i].what);
    lua_setfield(L, -2, code_rows[i].name);
  }
  lua_setfield(L, module, "codes");
  lua_pushcfunction(L, alloy_redact_lua);
  lua_setfield(L, module, "redact");
  luaL_newmetatable(L, REDACTOR_MT);
  lua_pushcfunction(L, redactor_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, alloy_redactor_lua);
  lua_setfield(L, module, "redactor");
}
