/* One place that turns curl/HTTP/JSON failures into the Lua tuple nil, msg, code[, res]. */
#ifndef ALLOY_ERRORS_H
#define ALLOY_ERRORS_H

#include <stddef.h>
#include "compat.h"
#include "buf.h"

/* Writes "<CODE>: <detail> (<METHOD> <path>)[ after N attempts]" into out as one line of
 * at most ALLOY_MSG_MAX bytes, with every occurrence of secret replaced. */
#define ALLOY_MSG_MAX 400
void alloy_format_message(abuf *out, const char *code, const char *detail, size_t detail_len,
                          const char *method, const char *path, size_t path_len, int attempts,
                          const char *secret);

/* The server's own explanation: message, error.message or a string error of the decoded
 * body at json_idx (any Lua value), else a printable excerpt of the raw body (at most
 * ALLOY_EXCERPT_MAX bytes, secret redacted; nothing for a binary body). */
#define ALLOY_EXCERPT_MAX 160
void alloy_server_detail(lua_State *L, int json_idx, const char *body, size_t body_len,
                         const char *secret, abuf *out);

/* Appends s with every copy of secret masked, and every piece of it of 8 bytes or more:
 * as given, in other letter case, percent-encoded (once or twice), JSON-escaped (\uXXXX,
 * \/) or in any mix of these. One rule for every message and the --verbose output. */
void alloy_redact(abuf *out, const char *s, size_t n, const char *secret);
/* As alloy_redact, for a value that may be shorter than a key: pieces of min(8, its length). */
void alloy_redact_value(abuf *out, const char *s, size_t n, const char *secret);
/* Appends s redacted, then as one printable line (control bytes as spaces, invalid UTF-8 as
 * '?') of at most limit bytes, ending in "..." when cut: redacting first, so a key the cut
 * would halve is masked whole. */
void alloy_excerpt(abuf *out, const char *s, size_t n, size_t limit, const char *secret);

/* Pushes nil, msg, code and res (the value at res_idx, or nil when 0); returns 4. */
int alloy_push_failure(lua_State *L, const char *msg, const char *code, int res_idx);

/* A client method runs inside the guard's lua_pcall, so Lua names it '?' in argument errors:
 * rewrites "bad argument #n to '?' (...)" on top of the stack to name client:<method> and
 * count from its first argument after self, as a method call would. */
void alloy_name_arg_error(lua_State *L, const char *method);

/* The failure codes alloy.so produces itself; libcurl's have their own rows (alloy_curl_code). */
typedef enum alloy_code {
  CODE_TRANSPORT_ERROR,
  CODE_INVALID_ARGUMENT,
  CODE_JSON_DECODE,
  CODE_BAD_RESPONSE,
  CODE_BODY_TOO_LARGE,
  CODE_HEADERS_TOO_LARGE,
  CODE_JWT_DECODE,
  CODE_CANCELLED,
  CODE_UNSUCCESSFUL,
  CODE_FILE_READ,
  CODE_FILE_CHANGED,
  CODE_UNSAFE_URL,
  CODE_MD5_UNAVAILABLE
} alloy_code;

const char *alloy_code_name(alloy_code code);
/* The code of a failed libcurl transfer: its row's name, else "CURL_<n>" written into buf. */
const char *alloy_curl_code(int curl_code, char *buf, size_t size);
/* Writes "HTTP_<status>" into buf; returns buf. */
const char *alloy_http_code(long status, char *buf, size_t size);
/* Sets alloy.codes ({ CODE = "description" } for every code above) and alloy.redact in the
 * module table at index module. */
void alloy_errors_open(lua_State *L, int module);

#endif
