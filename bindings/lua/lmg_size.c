/* lmg_size.c — mg.size, mg.format_size (bindings layer). */
#include "lua/mg__lua.h"

/* mg.size(x) → bytes. Raises on bad input (the message quotes it and says
 * what is accepted). */
static int l_size(lua_State *L) {
  uint64_t v;
  char err[512];
  luaL_argexpected(
      L, lua_type(L, 1) == LUA_TNUMBER || lua_type(L, 1) == LUA_TSTRING, 1,
      "size (number or string)");
  if (mg_lua_check_size(L, 1, "size", &v, err, sizeof err) < 0)
    return luaL_error(L, "%s", err);
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

/* mg.format_size(bytes) → "1.50 GiB". Accepts what mg.size accepts. */
static int l_format_size(lua_State *L) {
  uint64_t v;
  char err[512], buf[32];
  luaL_argexpected(
      L, lua_type(L, 1) == LUA_TNUMBER || lua_type(L, 1) == LUA_TSTRING, 1,
      "size (number or string)");
  if (mg_lua_check_size(L, 1, "bytes", &v, err, sizeof err) < 0)
    return luaL_error(L, "%s", err);
  lua_pushstring(L, mg_size_format(v, buf, sizeof buf));
  return 1;
}

void mg_lua_open_size(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"size", l_size}, {"format_size", l_format_size}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
