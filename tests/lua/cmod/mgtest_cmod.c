/* tests/lua/cmod — a Lua C module for test_load.lua: an unsandboxed mgrun
 * loads C modules (package.cpath) as stock lua5.4 does, which is why mgrun
 * exports the Lua API (-Wl,-E) and keeps glibc dynamic. Lua API only. */
#include <lauxlib.h>
#include <lua.h>

static int cmod_twice(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  lua_pushinteger(L, 2 * n);
  return 1;
}

int luaopen_mgtest_cmod(lua_State *L);
int luaopen_mgtest_cmod(lua_State *L) {
  static const luaL_Reg fns[] = {{"twice", cmod_twice}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
