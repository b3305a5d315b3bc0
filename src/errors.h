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

#endif
