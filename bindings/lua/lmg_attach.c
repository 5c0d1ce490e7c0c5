/* lmg_attach.c — the bindings in a Lua state they did not make (mg.so in
 * a stock lua5.4): attach to it, leave it as it was found, and
 * mg.configure, which such a program uses where mgrun has command-line
 * options (bindings layer; public Lua C API, libmg only).
 *
 * Finding the env. Every function of the module finds its env as the ud
 * of the state's allocator (mg_lua_env_find): ours in a state made by
 * mg_lua_new, ours wrapping the state's own after mg_lua_attach. That
 * holds for every thread of the state, also a coroutine made before the
 * module was loaded (the extra space of such a thread was copied from the
 * main thread before anything was written there). Should another library
 * wrap the allocator after us, the registry's "mg.env" still finds it.
 * Nothing here is process-wide: several states may each attach.
 */
#include <errno.h>
#include <string.h>

#include "lua/mg__lua.h"

#define MG__ENV_KEY "mg.env"

/* mg.configure's budgets and cap: the rule of mg_lua.h (MG_LUA_MAX_BUDGET_MS,
 * MG_LUA_MIN_MEM), as mgrun's --cb-timeout and --lua-mem. */

/* ------------------------------------------------------------ registry */

static int set_env_key(lua_State *L) {
  lua_settop(L, 1); /* the env (light userdata) or nil */
  lua_setfield(L, LUA_REGISTRYINDEX, MG__ENV_KEY);
  return 0;
}

int mg__lua_env_register(lua_State *L, mg_lua_env *env) {
  if (!lua_checkstack(L, 3))
    return -ENOMEM;
  lua_pushcfunction(L, set_env_key);
  lua_pushlightuserdata(L, env);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    return -ENOMEM;
  }
  return 0;
}

mg_lua_env *mg__lua_env_lookup(lua_State *L) {
  /* The key is interned while the entry exists: no allocation. */
  lua_getfield(L, LUA_REGISTRYINDEX, MG__ENV_KEY);
  mg_lua_env *env = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return env;
}

int mg__lua_env_gone(lua_State *L) {
  return luaL_error(L, "the mg module has left this Lua state (it is being "
                       "closed): no mg function runs any more");
}

/* ------------------------------------------------------------ attach */

int mg_lua_attach(lua_State *L, const mg_lua_config *c, mg_lua_env **env_out,
                  char *err, size_t err_len) {
  *env_out = NULL;
  if (L == NULL)
    return mg_errf(err, err_len, -EINVAL, "mg_lua_attach: no Lua state");
  if (c && c->sandbox)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_lua_attach: a sandbox needs a state the runtime "
                   "makes (its libraries are the sandbox)");
  if (lua_gc(L, LUA_GCISRUNNING) < 0) /* Lua 5.4: inside a finalizer */
    return mg_errf(err, err_len, -EBUSY,
                   "the mg module cannot be loaded from inside a finalizer");
  if (!lua_checkstack(L, 4))
    return mg_errf(err, err_len, -ENOMEM, "the Lua stack is full");
  if (mg_lua_env_find(L) != NULL)
    return mg_errf(err, err_len, -EBUSY,
                   "this Lua state has the mg module already (mgrun's own "
                   "state, or mg.so loaded into it before)");
  mg_lua_env *env;
  int rc = mg__lua_env_new(c, &env, err, err_len);
  if (rc < 0)
    return rc;
  if (mg__lua_env_register(L, env) < 0) {
    mg__lua_env_free(env);
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *main = lua_tothread(L, -1);
  lua_pop(L, 1);
  env->L = main; /* callbacks from the loop run on its stack */
  env->attached = 1;
  /* Count from what the state holds now, then route every allocation
   * through the cap; nothing allocates in between. */
  env->base_alloc = lua_getallocf(L, &env->base_ud);
  env->mem_used =
      (size_t)lua_gc(L, LUA_GCCOUNT) * 1024u + (size_t)lua_gc(L, LUA_GCCOUNTB);
  env->mem_peak = env->mem_used;
  lua_setallocf(L, mg__lua_alloc, env);
  mg__lua_install_hook(main);
  if (L != main)
    mg__lua_install_hook(L);
  *env_out = env;
  return 0;
}

void mg__lua_detach(mg_lua_env *env) {
  lua_State *L = env->L;
  env->mem_capped = 0;
  env->mem_max = 0;
  mg__lua_remove_hook(L); /* threads that copied it drop it themselves */
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, MG__ENV_KEY); /* an existing key */
  void *ud;
  if (lua_getallocf(L, &ud) == mg__lua_alloc && ud == env) {
    lua_setallocf(L, env->base_alloc, env->base_ud);
    mg__lua_env_free(env);
    return;
  }
  /* Something wrapped our allocator after us and still calls it: it
   * stays, a pass-through without a cap, and keeps this env. */
  env->detached = 1;
}

/* ------------------------------------------------------------ configure */

static const char *const cfg_keys[] = {"cb_timeout_ms", "cb_instructions",
                                       "lua_mem",       "log_level",
                                       "log_format",    NULL};

/* Field k of the options (at -1): a non-negative integer up to max. */
static uint64_t cfg_uint(lua_State *L, const char *k, uint64_t max) {
  lua_Integer v = 0;
  int ok = 0;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    v = lua_tointegerx(L, -1, &ok);
    ok = ok && v >= 0 && (uint64_t)v <= max;
  }
  if (!ok)
    luaL_error(L,
               "bad argument #1 to 'configure' (field '%s' must be an "
               "integer from 0 (none) to %I, got %s)",
               k,
               (lua_Integer)(max > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER
                                                            : (lua_Integer)max),
               lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1)
                                              : luaL_typename(L, -1));
  return (uint64_t)v;
}

static uint64_t cfg_mem(lua_State *L, mg_lua_env *env) {
  char err[512], a[32], b[32];
  uint64_t v;
  if (mg_lua_check_size(L, -1, "lua_mem", &v, err, sizeof err) < 0)
    luaL_error(L, "bad argument #1 to 'configure' (%s; or 0 for no cap)", err);
  if (v != 0 && v < MG_LUA_MIN_MEM)
    luaL_error(L,
               "bad argument #1 to 'configure' (lua_mem %s is below the "
               "smallest cap, 1 MiB; accepted: 0 for no cap, or at least 1M)",
               mg_size_format(v, a, sizeof a));
  if (v != 0 && v < env->mem_used)
    luaL_error(L,
               "bad argument #1 to 'configure' (lua_mem %s is below what "
               "the Lua state holds now, %s; accepted: 0 for no cap, or at "
               "least that)",
               mg_size_format(v, a, sizeof a),
               mg_size_format(env->mem_used, b, sizeof b));
  return v;
}

static void push_config(lua_State *L, mg_lua_env *env) {
  size_t used = env->mem_used, peak = env->mem_peak; /* before the table */
  lua_createtable(L, 0, 7);
  mg_lua_setu64(L, "cb_timeout_ms", env->budget.timeout_ms);
  mg_lua_setu64(L, "cb_instructions", env->budget.instructions);
  mg_lua_setu64(L, "lua_mem", env->mem_max);
  mg_lua_setu64(L, "lua_mem_used", used);
  mg_lua_setu64(L, "lua_mem_peak", peak);
  if (env->logger) {
    mg_lua_setstr(L, "log_level",
                  mg_log_level_name(mg_logger_level(env->logger)));
    mg_lua_setstr(L, "log_format",
                  mg_logger_format(env->logger) == MG_LOG_JSON ? "json"
                                                               : "text");
  }
}

/* mg.configure([{ cb_timeout_ms=, cb_instructions=, lua_mem=, log_level=,
 * log_format= }]) → the configuration now (also lua_mem_used and
 * lua_mem_peak). Every field is checked before any is applied; misuse
 * raises. */
static int l_configure(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (lua_isnoneornil(L, 1)) {
    push_config(L, env);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  mg_lua_check_options(L, 1, "configure", cfg_keys);
  mg_lua_budget b = env->budget;
  uint64_t mem = env->mem_max;
  int level = -1, format = -1;
  if (lua_getfield(L, 1, "cb_timeout_ms") != LUA_TNIL)
    b.timeout_ms = cfg_uint(L, "cb_timeout_ms", MG_LUA_MAX_BUDGET_MS);
  if (lua_getfield(L, 1, "cb_instructions") != LUA_TNIL)
    b.instructions = cfg_uint(L, "cb_instructions", (uint64_t)LUA_MAXINTEGER);
  if (lua_getfield(L, 1, "lua_mem") != LUA_TNIL)
    mem = cfg_mem(L, env);
  if (lua_getfield(L, 1, "log_level") != LUA_TNIL) {
    mg_log_level lv;
    const char *s = mg_lua_check_text(L, -1, "log_level", NULL);
    if (mg_log_level_parse(s, &lv) < 0)
      luaL_error(L,
                 "bad argument #1 to 'configure' (unknown log_level '%s'; "
                 "accepted: debug, info, warn, error)",
                 s);
    level = (int)lv;
  }
  if (lua_getfield(L, 1, "log_format") != LUA_TNIL) {
    mg_log_format f;
    const char *s = mg_lua_check_text(L, -1, "log_format", NULL);
    if (mg_log_format_parse(s, &f) < 0)
      luaL_error(L,
                 "bad argument #1 to 'configure' (unknown log_format '%s'; "
                 "accepted: text, json)",
                 s);
    format = (int)f;
  }
  if ((level >= 0 || format >= 0) && env->logger == NULL)
    luaL_error(L, "bad argument #1 to 'configure' (this state has no "
                  "logger to configure)");
  env->budget = b;
  env->mem_max = (size_t)mem;
  if (level >= 0)
    mg_logger_set_level(env->logger, (mg_log_level)level);
  if (format >= 0)
    mg_logger_set_format(env->logger, (mg_log_format)format);
  push_config(L, env);
  return 1;
}

void mg_lua_open_configure(lua_State *L) {
  lua_pushcfunction(L, l_configure);
  lua_setfield(L, -2, "configure");
}
