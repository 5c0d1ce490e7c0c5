/* mg_runtime_libs.c — the libraries a policy sees: Lua's standard ones or
 * the sandbox's subset, require paths, the shipped Lua library (host
 * layer). Nothing here is process-wide: the sandbox's searcher keeps its
 * directory in an upvalue of its own state. */
#include <dlfcn.h>
#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mg__runtime.h"

/* os.exit in a policy means a graceful mg.exit, never a bare exit(). */
static int l_os_exit(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1)); /* mg.exit, whatever happens to mg */
  lua_pushvalue(L, 1);
  lua_call(L, 1, 0);
  return 0;
}

/* load() that refuses bytecode (sandbox): the real load is upvalue 1. */
static int l_load_text(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkany(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (n >= 2)
    lua_pushvalue(L, 2);
  else
    lua_pushnil(L); /* the default chunk name */
  lua_pushliteral(L, "t");
  if (n >= 4) {
    lua_pushvalue(L, 4);
    lua_call(L, 4, LUA_MULTRET);
  } else {
    lua_call(L, 3, LUA_MULTRET);
  }
  return lua_gettop(L) - n;
}

/* setmetatable of the sandbox (the real one is upvalue 1): no __gc. A
 * finalizer runs with Lua's hooks off, outside every budget, so one that
 * never returns would hang mgrun. */
static int l_setmetatable_nogc(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "bad argument #2 to 'setmetatable' (__gc is not "
                           "allowed in the sandbox: a finalizer runs outside "
                           "every budget)");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* Searcher of the sandbox: `name` (dots → slashes) as <dir>/name.lua or
 * <dir>/name/init.lua in the directory of upvalue 1 (nil: none), loaded
 * as text only. */
static int sandbox_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *dir = lua_tostring(L, lua_upvalueindex(1));
  if (strstr(name, "..") || name[0] == '/' || name[0] == '.') {
    lua_pushfstring(L,
                    "no module '%s' in the sandbox (a module name, not a "
                    "path)",
                    name);
    return 1;
  }
  const char *rel = luaL_gsub(L, name, ".", "/");
  static const char *const fmt[2] = {"%s/%s.lua", "%s/%s/init.lua"};
  for (int k = 0; dir && k < 2; k++) {
    const char *path = lua_pushfstring(L, fmt[k], dir, rel);
    if (luaL_loadfilex(L, path, "t") == LUA_OK) {
      lua_pushstring(L, path);
      return 2;
    }
    if (access(path, F_OK) == 0) /* there, but not a loadable text chunk */
      return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                        name, path, lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  lua_pushfstring(L, "no module '%s' in the sandbox's directories", name);
  return 1;
}

static void open_sandbox(lua_State *L, const char *scripts_dir) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                  {LUA_LOADLIBNAME, luaopen_package},
                                  {LUA_COLIBNAME, luaopen_coroutine},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {LUA_OSLIBNAME, luaopen_os},
                                  {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->func; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  /* os: only the clock and calendar. */
  static const char *const os_keep[] = {"clock", "date",   "difftime",
                                        "time",  "getenv", NULL};
  lua_getglobal(L, "os");
  lua_newtable(L);
  for (int i = 0; os_keep[i]; i++) {
    lua_getfield(L, -2, os_keep[i]);
    lua_setfield(L, -2, os_keep[i]);
  }
  lua_pushvalue(L, -1);
  lua_setglobal(L, "os");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, "os"); /* require("os") is the filtered one too */
  lua_pop(L, 2);
  /* no files, no bytecode, no C modules */
  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, "load");
  lua_pushcclosure(L, l_load_text, 1);
  lua_setglobal(L, "load");
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, l_setmetatable_nogc, 1);
  lua_setglobal(L, "setmetatable");
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushnil(L);
  lua_setfield(L, -2, "loadlib");
  /* require: the preload searcher and ours (text chunks, from the shipped
   * library only — not from package.path, which the policy could change);
   * no C, all-in-one or bytecode loading. */
  lua_getfield(L, -1, "searchers");
  for (int i = 4; i >= 2; i--) {
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  if (scripts_dir && scripts_dir[0])
    lua_pushstring(L, scripts_dir);
  else
    lua_pushnil(L);
  lua_pushcclosure(L, sandbox_searcher, 1);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

void mg__rt_add_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir,
                  lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

void mg__rt_open_libs(lua_State *L, int sandbox, const char *scripts_dir) {
  if (sandbox)
    open_sandbox(L, scripts_dir);
  else
    luaL_openlibs(L);
  lua_getglobal(L, "os");
  lua_getglobal(L, "mg");
  lua_getfield(L, -1, "exit");
  lua_remove(L, -2);
  lua_pushcclosure(L, l_os_exit, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  if (sandbox) { /* package.path says where require looks (it ignores it) */
    lua_getglobal(L, "package");
    if (scripts_dir && scripts_dir[0])
      lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", scripts_dir, scripts_dir);
    else
      lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
  } else if (scripts_dir && scripts_dir[0]) {
    mg__rt_add_path(L, scripts_dir);
  }
}

/* Does `dir`/`rel` hold the shipped library? Then it is the answer. */
static int try_scripts(const char *dir, const char *rel, char *out,
                       size_t len) {
  char cand[PATH_MAX + 64];
  snprintf(cand, sizeof cand, "%s/%s", dir, rel);
  if (access(cand, R_OK) != 0)
    return 0;
  snprintf(out, len, "%s", cand);
  return 1;
}

/* The shipped Lua library: the host's choice; else beside an installed
 * mgrun (bin/../share/mgrun/scripts); else beside the installed shared
 * library this code is in (libdir/MG_LIB_TO_SCRIPTS: a Python or C host,
 * mg.so in lua5.4); else the source tree of this build. */
void mg__rt_find_scripts(const char *given, char *out, size_t len) {
  char path[PATH_MAX];
  out[0] = '\0';
  if (given) {
    snprintf(out, len, "%s", given);
    return;
  }
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n > 0) {
    path[n] = '\0';
    if (try_scripts(dirname(path), "../share/mgrun/scripts", out, len))
      return;
  }
#ifdef MG_LIB_TO_SCRIPTS
  Dl_info info;
  if (dladdr((void *)mg__rt_find_scripts, &info) && info.dli_fname &&
      strchr(info.dli_fname, '/')) {
    snprintf(path, sizeof path, "%s", info.dli_fname);
    if (try_scripts(dirname(path), MG_LIB_TO_SCRIPTS, out, len))
      return;
  }
#endif
#ifdef MG_SCRIPTS_DIR
  snprintf(out, len, "%s", MG_SCRIPTS_DIR);
#endif
}
