/* lmg_module.c — mg.so, the `mg` module for a stock lua5.4:
 *
 *   local mg = require "mg"     -- LUA_CPATH finds mg.so; luaopen_mg
 *
 * The program is not a policy: it owns the interpreter and its state, and
 * runs the loop itself with mg.run([mode]). This file is to mg.so what
 * mgrun's main() is to mgrun: it makes a runtime attached to the
 * interpreter's state (mg__rt_attach: loop, supervisor, the bindings'
 * env with the capped allocator wrapping the state's and the budget
 * hook), builds the same `mg` table as in mgrun (mg_lua_push) plus
 * mg.run (here) and mg.configure (the bindings), and decides what is
 * fatal: mg.exit ends the process, as the contract says.
 *
 * Lifetime. The first thing luaopen_mg makes is the anchor, a userdata
 * whose __gc frees the runtime; the registry holds it, so it lives until
 * lua_close. lua_close runs finalizers newest first, so every mg object
 * (stores, timers, processes), all made after the anchor, is finalized
 * before it; the anchor's __gc then stops and reaps the children, removes
 * their cgroups, closes the loop and gives the state its allocator back.
 * Nothing is process-wide: each state that loads mg.so has its own
 * anchor, runtime and loop.
 */
#include <dlfcn.h>
#include <errno.h>
#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg_lua.h"
#include "mg/mg_runtime.h"
#include "mg__runtime.h"

#define MOD_MT "mg.module"
#define MOD_ANCHOR "mg.module.anchor" /* registry: the anchor */
#define MOD_TABLE "mg.module.table"   /* registry: the `mg` table */

/* The anchor's payload. */
typedef struct mgmod {
  mg_runtime *rt;    /* NULL once freed */
  mg_logger *logger; /* stderr, text, info (mgrun's defaults) */
} mgmod;

__attribute__((visibility("default"))) int luaopen_mg(lua_State *L);

/* ------------------------------------------------------------ exit */

/* The end of mg.exit (or of a shutdown a signal started): the shutdown is
 * under way (handles closed, children told to stop); run the loop until
 * every child is reaped and its cgroup removed, close the state as
 * os.exit(code, true) does (finalizers run; the anchor's last, which
 * frees the runtime), and end the process with the code. */
static _Noreturn void finish_exit(mgmod *m) {
  mg_runtime *rt = m->rt;
  lua_State *L = mg_runtime_lua(rt);
  mg_runtime_run(rt);
  int code = mg_runtime_exit_code(rt);
  lua_close(L); /* mg.so stays mapped (luaopen_mg), this code with it */
  exit(code);
}

/* mg.exit unwound into the program's own code, outside mg.run. */
static void on_unwind(mg_runtime *rt, int code, void *ud) {
  (void)code;
  /* Inside a finalizer (Lua 5.4 answers -1 there) the state cannot be
   * closed: the shutdown has begun, and the next mg.run, or lua_close,
   * completes it. */
  if (lua_gc(mg_runtime_lua(rt), LUA_GCISRUNNING) < 0)
    return;
  finish_exit(ud);
}

/* ------------------------------------------------------------ mg.run */

static int module_gone(lua_State *L) {
  return luaL_error(L, "the mg module has left this Lua state (it is being "
                       "closed): mg.run cannot run");
}

/* mg.run([mode]) → whether handles are still active (as luv's uv.run).
 * "default" (or nil): until nothing is left to do; "once": one iteration,
 * waiting for an event if there is none; "nowait": one iteration without
 * waiting. An exit asked for (mg.exit, SIGINT/SIGTERM) is completed here
 * and ends the process. */
static int l_run(lua_State *L) {
  static const char *const names[] = {"default", "once", "nowait", NULL};
  static const uv_run_mode modes[] = {UV_RUN_DEFAULT, UV_RUN_ONCE,
                                      UV_RUN_NOWAIT};
  mgmod *m = lua_touserdata(L, lua_upvalueindex(1));
  uv_run_mode mode = UV_RUN_DEFAULT;
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, 1);
    int i = 0;
    while (names[i] && strcmp(names[i], s) != 0)
      i++;
    if (names[i] == NULL)
      return luaL_argerror(L, 1,
                           lua_pushfstring(L,
                                           "unknown mode '%s'; accepted: "
                                           "\"default\", \"once\", \"nowait\"",
                                           s));
    mode = modes[i];
  } else if (t != LUA_TNONE && t != LUA_TNIL) {
    return luaL_argerror(L, 1,
                         lua_pushfstring(L,
                                         "mode must be \"default\", \"once\" "
                                         "or \"nowait\", got %s",
                                         luaL_typename(L, 1)));
  }
  if (m->rt == NULL)
    return module_gone(L);
  int rc = mg__rt_run_mode(m->rt, mode);
  if (rc == -EBUSY)
    return luaL_error(L, "mg.run cannot be called from inside a callback (a "
                         "timer, a signal or process handler, a store's "
                         "strategy, on_evict or on_warn): the loop that "
                         "called it is running already");
  if (rc == -ECANCELED || mg_runtime_exit_requested(m->rt))
    finish_exit(m);
  if (rc < 0)
    return luaL_error(L, "mg.run: %s", mg_strerror(rc));
  lua_pushboolean(L, rc != 0);
  return 1;
}

/* ------------------------------------------------------------ anchor */

static int l_anchor_gc(lua_State *L) {
  mgmod *m = luaL_testudata(L, 1, MOD_MT);
  if (m == NULL)
    return 0;
  mg_runtime *rt = m->rt;
  m->rt = NULL;
  if (rt)
    mg_runtime_free(rt); /* children stopped, reaped; the state given back */
  mg_logger_free(m->logger);
  m->logger = NULL;
  return 0;
}

/* ------------------------------------------------------------ paths */

/* dir/rel/file exists (mode: access's): out = dir/rel, resolved. */
static int find_beside(const char *dir, const char *rel, const char *file,
                       int mode, char *out) {
  char cand[PATH_MAX * 2 + 64];
  if (dir[0] == '\0')
    return 0;
  snprintf(cand, sizeof cand, "%s/%s/%s", dir, rel, file);
  if (access(cand, mode) != 0)
    return 0;
  snprintf(cand, sizeof cand, "%s/%s", dir, rel);
  return realpath(cand, out) != NULL;
}

/* Append dir/?.lua;dir/?/init.lua to package.path (after the program's
 * own directories), once. */
static void append_path(lua_State *L, const char *dir) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "package") == LUA_TTABLE) {
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    const char *add = lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    if (old == NULL || strstr(old, add) == NULL) {
      if (old && old[0])
        lua_pushfstring(L, "%s;%s", old, add);
      else
        lua_pushvalue(L, -1);
      lua_setfield(L, -4, "path");
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
}

/* mg.bindir (where mgrun's programs, mg-hog among them, are: bin/ of the
 * prefix mg.so is installed in, else this build's directory; nil when
 * neither has them) and the shipped Lua library on package.path
 * (require "mg.strategies", the built-in strategy names). The table is
 * at -1. */
static void set_paths(lua_State *L) {
  char dir[PATH_MAX] = "", so[PATH_MAX], found[PATH_MAX];
  Dl_info info;
  if (dladdr((void *)luaopen_mg, &info) && info.dli_fname &&
      realpath(info.dli_fname, so))
    snprintf(dir, sizeof dir, "%s", dirname(so));
  if (find_beside(dir, MG_LUADIR_TO_BINDIR, "mg-hog", X_OK, found) ||
      find_beside(MG_BUILD_BINDIR, ".", "mg-hog", X_OK, found))
    lua_pushstring(L, found);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, "bindir");
  if (find_beside(dir, MG_LUADIR_TO_SCRIPTS, "mg/strategies.lua", R_OK,
                  found) ||
      find_beside(MG_SCRIPTS_DIR, ".", "mg/strategies.lua", R_OK, found))
    append_path(L, found);
}

/* ------------------------------------------------------------ open */

int luaopen_mg(lua_State *L) {
  /* Loaded before in this state (package.loaded.mg was cleared): the same
   * module, never a second runtime on one state. */
  if (lua_getfield(L, LUA_REGISTRYINDEX, MOD_TABLE) == LUA_TTABLE)
    return 1;
  lua_pop(L, 1);
  /* lua_close unloads C modules (package's finalizer dlcloses them), and
   * mg.exit's code runs on after its lua_close: mg.so stays mapped for
   * the life of the process (RTLD_NODELETE on the object already loaded). */
  Dl_info info;
  if (!dladdr((void *)luaopen_mg, &info) || info.dli_fname == NULL)
    return luaL_error(L, "cannot load the mg module: dladdr cannot find it");
  if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) == NULL)
    return luaL_error(L, "cannot load the mg module: cannot keep %s loaded: %s",
                      info.dli_fname, dlerror());
  mgmod *m = lua_newuserdatauv(L, sizeof *m, 0);
  m->rt = NULL;
  m->logger = NULL;
  if (luaL_newmetatable(L, MOD_MT)) {
    lua_pushcfunction(L, l_anchor_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, MOD_MT);
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  int anchor = lua_gettop(L);
  m->logger = mg_logger_new(stderr, MG_LOG_TEXT, MG_LOG_INFO);
  if (m->logger == NULL)
    return luaL_error(L, "cannot load the mg module: out of memory");
  mg_runtime_opts o;
  mg_runtime_opts_init(&o); /* mgrun's budgets: 64 MiB, 1000 ms, 1e9 */
  o.logger = m->logger;
  o.handle_signals = 1; /* while mg.run runs */
  char err[1024];
  if (mg__rt_attach(L, &o, on_unwind, m, &m->rt, err, sizeof err) < 0)
    return luaL_error(L, "cannot load the mg module: %s", err);
  /* From here the anchor owns the runtime: whatever raises below, its
   * __gc frees it. */
  lua_pushvalue(L, anchor);
  lua_setfield(L, LUA_REGISTRYINDEX, MOD_ANCHOR);
  mg_lua_push(L);
  lua_pushvalue(L, anchor);
  lua_pushcclosure(L, l_run, 1);
  lua_setfield(L, -2, "run");
  set_paths(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, MOD_TABLE);
  return 1;
}
