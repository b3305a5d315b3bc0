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
 * body at json_idx (any Lua value), else a printable excerpt of the raw body. */
void alloy_server_detail(lua_State *L, int json_idx, const char *body, size_t body_len,
                         abuf *out);

/* Pushes nil, msg, code and res (the value at res_idx, or nil when 0); returns 4. */
int alloy_push_failure(lua_State *L, const char *msg, const char *code, int res_idx);

/* The failure codes alloy.so produces itself; libcurl's have their own rows (alloy_curl_code). */
typedef enum alloy_code {
  CODE_TRANSPORT_ERROR,
  CODE_INVALID_ARGUMENT,
  CODE_JSON_DECODE,
  CODE_BAD_RESPONSE,
  CODE_BODY_TOO_LARGE,
  CODE_JWT_DECODE
} alloy_code;

const char *alloy_code_name(alloy_code code);
/* The code of a failed libcurl transfer: its row's name, else "CURL_<n>" written into buf. */
const char *alloy_curl_code(int curl_code, char *buf, size_t size);
/* Writes "HTTP_<status>" into buf; returns buf. */
const char *alloy_http_code(long status, char *buf, size_t size);
/* Pushes alloy.codes: { CODE = "description" } for every code above. */
void alloy_push_codes(lua_State *L);

#endif
