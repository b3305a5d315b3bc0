/* alloy.jwt_claims(token) -> the payload's claims (signature not checked) | nil, msg, code */
#include <string.h>

#include "alloy_int.h"
#include "errors.h"
#include "url.h"

/* lua-cjson decodes every number as a float: on 5.3+ the integral top-level claims (exp,
 * iat, nbf) become integers again, as they are written. */
static void integral_claims(lua_State *L, int t) {
#if LUA_VERSION_NUM >= 503
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number v = lua_tonumber(L, -1);
      /* 2^63 is exact as a double; the cast is defined only below it */
      if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 && v == (lua_Number)(lua_Integer)v) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)v);
        lua_rawset(L, t); /* an existing key: allowed while traversing */
      }
    }
    lua_pop(L, 1);
  }
#else
  (void)L, (void)t;
#endif
}

static int alloy_jwt_claims(lua_State *L) {
  size_t n;
  const char *token = luaL_checklstring(L, 1, &n);
  const char *dot1 = memchr(token, '.', n);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
  const char *why = NULL;
  abuf payload = {0};
  if (dot2 == NULL || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token)) != NULL)
    why = "not a three-part JWT";
  else if (b64url_decode(&payload, dot1 + 1, (size_t)(dot2 - dot1 - 1)) != 0 || payload.len == 0)
    why = "payload is not base64url";
  else if (payload.data[strspn(payload.data, " \t\r\n")] != '{')
    why = "payload is not a JSON object"; /* cjson gives a table for an array too */
  if (why == NULL) {
    lua_pushlstring(L, payload.data, payload.len);
    abuf_free(&payload);
    lua_getfield(L, CJSON_UPVALUE, "decode");
    lua_insert(L, -2);
    lua_call(L, 1, 2);
    if (lua_istable(L, -2)) {
      lua_pop(L, 1);
      integral_claims(L, lua_gettop(L));
      return 1;
    }
    why = "payload is not a JSON object";
  }
  abuf_free(&payload);
  const char *code = alloy_code_name(CODE_JWT_DECODE);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", code, why);
  lua_pushstring(L, code);
  return 3;
}

void jwt_open(lua_State *L, const alloy_open_ctx *o) {
  lua_pushvalue(L, o->cjson);
  lua_pushcclosure(L, alloy_jwt_claims, 1);
  lua_setfield(L, o->module, "jwt_claims");
}
