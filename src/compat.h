/* Lua 5.1/LuaJIT, 5.3 and 5.4 differences, in one place, as ac_-prefixed shims. */
#ifndef ALLOY_COMPAT_H
#define ALLOY_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define ac_rawlen(L, i) lua_objlen((L), (i))
#define ac_absindex(L, i) \
  ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)

static inline void ac_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#else
#define ac_rawlen(L, i) lua_rawlen((L), (i))
#define ac_absindex(L, i) lua_absindex((L), (i))
#define ac_setfuncs(L, l, n) luaL_setfuncs((L), (l), (n))
#endif

/* A userdata's one associated value (5.1: its environment table, so a table only). */
#if LUA_VERSION_NUM < 502
#define ac_getuservalue(L, i) lua_getfenv((L), (i))
#define ac_setuservalue(L, i) lua_setfenv((L), (i))
#else
#define ac_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define ac_setuservalue(L, i) lua_setuservalue((L), (i))
#endif

/* Integral numbers: 5.3+ keep integers apart from floats; 5.1 has only doubles. */
#if LUA_VERSION_NUM >= 503
#define ac_isinteger(L, i) lua_isinteger((L), (i))
#else
static inline int ac_isinteger(lua_State *L, int i) {
  lua_Number n;
  if (lua_type(L, i) != LUA_TNUMBER) return 0;
  n = lua_tonumber(L, i);
  return n == (lua_Number)(long long)n;
}
#endif

#endif
