/* luaopen_alloy: the module table, made by one *_open per unit (alloy_int.h lists them).
 * libcurl is loaded when first needed (alloy.new, alloy.curl_version). */
#include <string.h>

#include "alloy_int.h"
#include "errors.h"

/* The module's __index: curl_version, known once libcurl is loaded. */
static int module_index(lua_State *L) {
  char err[256];
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "curl_version") != 0) return 0;
  if (alloy_curl_load(err, sizeof err) != 0) luaL_error(L, "alloy: %s", err);
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

int luaopen_alloy(lua_State *L);
__attribute__((visibility("default"))) int luaopen_alloy(lua_State *L) {
  alloy_open_ctx o;
  /* A private lua-cjson instance: our settings never change the host's cjson. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson.safe");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_replace(L, -2);
  o.cjson = lua_gettop(L);

  lua_newtable(L);
  o.methods = lua_gettop(L);
  lua_newtable(L);
  o.module = lua_gettop(L);
  lua_pushliteral(L, ALLOY_VERSION);
  lua_setfield(L, o.module, "VERSION");
  alloy_errors_open(L, o.module);
  options_open(L, &o);
  response_open(L, &o);
  transport_open(L, &o);
  batch_open(L, &o);
  jwt_open(L, &o);
  files_open(L, &o);
  lines_open(L, &o);
  md5_open(L, &o);
  upload_open(L, &o);
  loop_open(L, &o);
  client_open(L, &o); /* last: it wraps every method the others added */

  lua_newtable(L); /* alloy.curl_version waits for libcurl: a metatable field */
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, o.module);
  return 1;
}
