/* lmg.c — the `mg` module: env, protected calls under a budget, mg.exit,
 * shared helpers (bindings layer; public Lua C API, libmg, libuv only). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lua/mg_lua.h"

const char mg_lua_env_key = 0;
static const char mg_lua_exit_key = 0; /* address = the mg.exit sentinel */

/* Instructions between two runs of the budget hook. */
#define MG_HOOK_EVERY 1000

mg_lua_env *mg_lua_env_get(lua_State *L) {
  return *(mg_lua_env **)lua_getextraspace(L);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Count hook, installed once on the main thread and inherited by every
 * coroutine: enforces the budget of the call in progress and turns an
 * interrupt request into an error. Once the budget is spent it fires on
 * every instruction, so a pcall inside the policy cannot swallow it. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  mg_lua_env *env = mg_lua_env_get(L);
  (void)ar;
  if (env->interrupted) { /* sticky (and every instruction): a pcall in
                              the policy cannot swallow it; run_top clears */
    if (lua_gethookcount(L) != 1)
      lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "interrupted");
  }
  if (!env->call_active) {
    if (lua_gethookcount(L) != MG_HOOK_EVERY)
      lua_sethook(L, budget_hook, LUA_MASKCOUNT, MG_HOOK_EVERY);
    return;
  }
  if (!env->call_over) {
    env->call_insn_used += (uint64_t)lua_gethookcount(L);
    if (env->cb_instructions && env->call_insn_used > env->cb_instructions) {
      env->call_over = 1;
      snprintf(env->call_over_why, sizeof env->call_over_why,
               "callback exceeded its instruction budget of %llu "
               "(--cb-instructions)",
               (unsigned long long)env->cb_instructions);
    } else if (env->call_deadline_ns && now_ns() > env->call_deadline_ns) {
      env->call_over = 1;
      snprintf(env->call_over_why, sizeof env->call_over_why,
               "%s exceeded its time budget of %llu ms (%s)",
               env->call_is_setup ? "the policy's top level" : "callback",
               (unsigned long long)env->call_budget_ms,
               env->call_is_setup ? "--setup-timeout" : "--cb-timeout");
    }
    if (!env->call_over)
      return;
  }
  if (lua_gethookcount(L) != 1)
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "%s", env->call_over_why);
}

void mg_lua_install_hook(lua_State *L) {
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, MG_HOOK_EVERY);
}

/* Message handler: adds a traceback; passes the exit sentinel through.
 * Lifts the memory cap so the traceback itself can be built. */
static int msgh(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (mg_lua_is_exit(L, 1))
    return 1;
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) { /* policy code (__tostring): still under the cap */
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  env->mem_capped = 0; /* room for the traceback itself */
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Saved budget state, so a call made from inside a call keeps the outer
 * budget intact. */
typedef struct call_save {
  int active, over, capped;
  uint64_t deadline, used, budget_ms;
} call_save;

static void budget_begin(mg_lua_env *env, call_save *s, int budget) {
  s->active = env->call_active;
  s->over = env->call_over;
  s->capped = env->mem_capped;
  s->deadline = env->call_deadline_ns;
  s->used = env->call_insn_used;
  s->budget_ms = env->call_budget_ms;
  if (budget && !s->active) {
    /* a spent budget left the hook firing on every instruction */
    if (lua_gethookcount(env->L) != MG_HOOK_EVERY)
      lua_sethook(env->L, budget_hook, LUA_MASKCOUNT, MG_HOOK_EVERY);
    env->call_active = 1;
    env->call_over = 0;
    env->call_insn_used = 0;
    env->call_budget_ms = env->cb_timeout_ms;
    env->call_deadline_ns =
        env->cb_timeout_ms ? now_ns() + env->cb_timeout_ms * 1000000u : 0;
  }
  env->mem_capped = 1;
}

static void budget_end(mg_lua_env *env, const call_save *s) {
  env->call_active = s->active;
  env->call_over = s->over;
  env->mem_capped = s->capped;
  env->call_deadline_ns = s->deadline;
  env->call_insn_used = s->used;
  env->call_budget_ms = s->budget_ms;
}

/* Run the function under nargs args with msgh; returns the lua status.
 * On error the message (with traceback) is left on the stack. */
static int protected_call(lua_State *L, int nargs, int nresults, int budget) {
  mg_lua_env *env = mg_lua_env_get(L);
  int base = lua_gettop(L) - nargs;
  call_save save;
  /* Near the cap: collect first. The auxiliary library's buffers
   * allocate through the allocator directly, without Lua's emergency
   * collection, so garbage must not be left standing at the cap. */
  if (env->mem_max && env->mem_used > env->mem_max / 4 * 3)
    lua_gc(L, LUA_GCCOLLECT);
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  budget_begin(env, &save, budget);
  int st = lua_pcall(L, nargs, nresults, base);
  budget_end(env, &save);
  lua_remove(L, base);
  if (st == LUA_ERRMEM)
    lua_gc(L, LUA_GCCOLLECT); /* what the failed call built is garbage now */
  return st;
}

static void notify_exit(mg_lua_env *env) {
  if (env->exit_requested && !env->exit_notified) {
    env->exit_notified = 1;
    if (env->on_exit)
      env->on_exit(env, env->exit_code);
  }
}

static const char *error_text(lua_State *L, int st, char *buf, size_t len) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (st == LUA_ERRMEM) {
    char cap[32];
    snprintf(buf, len,
             "not enough memory: the Lua state reached its memory cap of %s "
             "(--lua-mem)",
             mg_size_format(env->mem_max, cap, sizeof cap));
    return buf;
  }
  const char *msg = lua_tostring(L, -1);
  if (st == LUA_ERRERR)
    snprintf(buf, len, "error in the error handler: %s", msg ? msg : "?");
  else
    snprintf(buf, len, "%s", msg ? msg : "(no message)");
  return buf;
}

int mg_lua_call(lua_State *L, int nargs, int nresults, const char *what) {
  mg_lua_env *env = mg_lua_env_get(L);
  int st = protected_call(L, nargs, nresults, 1);
  if (st == LUA_OK) {
    if (env->exit_requested) {
      notify_exit(env);
      return MG_LUA_EXIT;
    }
    return MG_LUA_OK;
  }
  if (mg_lua_is_exit(L, -1) || (env->exit_requested && st != LUA_ERRMEM)) {
    lua_pop(L, 1);
    notify_exit(env);
    return MG_LUA_EXIT;
  }
  char buf[8192];
  error_text(L, st, buf, sizeof buf);
  lua_pop(L, 1);
  env->callback_errors++;
  mg_log_field f[] = {MG_LF_STR("callback", what), MG_LF_STR("error", buf)};
  mg_log(env->logger, MG_LOG_ERROR, "callback_failed", f, 2);
  if (env->exit_requested)
    notify_exit(env);
  return MG_LUA_ERROR;
}

int mg_lua_pcall_top(lua_State *L, int nargs, int budget, char *err,
                     size_t err_len) {
  mg_lua_env *env = mg_lua_env_get(L);
  int st = protected_call(L, nargs, 0, budget);
  if (st == LUA_OK)
    return env->exit_requested ? MG_LUA_EXIT : MG_LUA_OK;
  if (mg_lua_is_exit(L, -1)) {
    lua_pop(L, 1);
    return MG_LUA_EXIT;
  }
  error_text(L, st, err, err_len);
  lua_pop(L, 1);
  return MG_LUA_ERROR;
}

int mg_lua_raise_exit(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&mg_lua_exit_key);
  return lua_error(L);
}

int mg_lua_is_exit(lua_State *L, int idx) {
  return lua_islightuserdata(L, idx) &&
         lua_touserdata(L, idx) == (void *)&mg_lua_exit_key;
}

/* mg.exit([code]) — graceful shutdown, then exit with code (default 0;
 * true = 0, false = 1). Does not return. */
static int l_exit(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  int code = 0;
  if (lua_isboolean(L, 1)) {
    code = lua_toboolean(L, 1) ? 0 : 1;
  } else if (!lua_isnoneornil(L, 1)) {
    lua_Integer c = luaL_checkinteger(L, 1);
    luaL_argcheck(L, c >= 0 && c <= 255, 1, "exit code must be 0..255");
    code = (int)c;
  }
  if (!env->exit_requested) {
    env->exit_requested = 1;
    env->exit_code = code;
  }
  return mg_lua_raise_exit(L);
}

/* ------------------------------------------------------------ helpers */

int mg_lua_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

void mg_lua_setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setu64(lua_State *L, const char *k, uint64_t v) {
  if (v > (uint64_t)INT64_MAX)
    lua_pushnumber(L, (lua_Number)v);
  else
    lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

void mg_lua_setstr(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setnum(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setbool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_push_json(lua_State *L, const void *vj) {
  const json_t *j = vj;
  luaL_checkstack(L, 4, "JSON nesting too deep");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *key;
    json_t *val;
    lua_createtable(L, 0, (int)json_object_size(j));
    json_object_foreach((json_t *)j, key, val) {
      if (json_is_null(val))
        continue;
      mg_lua_push_json(L, val);
      lua_setfield(L, -2, key);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *val;
    lua_createtable(L, (int)json_array_size(j), 0);
    json_array_foreach((json_t *)j, i, val) {
      mg_lua_push_json(L, val);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(j), json_string_length(j));
    break;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(j));
    break;
  case JSON_REAL:
    lua_pushnumber(L, json_real_value(j));
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  default:
    lua_pushnil(L);
    break;
  }
}

int mg_lua_check_size(lua_State *L, int idx, const char *argname, uint64_t *out,
                      char *err, size_t err_len) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      if (v < 0)
        return mg_errf(err, err_len, MG_EPARSE,
                       "invalid size %lld for %s: must not be negative; "
                       "accepted: %s",
                       (long long)v, argname, MG_SIZE_ACCEPTED);
      *out = (uint64_t)v;
      return 0;
    }
    char e[512];
    int rc = mg_size_from_double(lua_tonumber(L, idx), out, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "%s: %s", argname, e);
    return 0;
  }
  if (t == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
      return mg_errf(err, err_len, MG_EPARSE,
                     "%s: invalid size (it holds a NUL byte); accepted: %s",
                     argname, MG_SIZE_ACCEPTED);
    uint64_t base = strchr(s, '%') ? mg_lua_effective_total(L) : 0;
    char e[512];
    int rc = mg_size_parse(s, base, out, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "%s: %s", argname, e);
    return 0;
  }
  return luaL_error(L,
                    "bad argument '%s' (size expected: a number of "
                    "bytes or a string like \"1.5G\", got %s)",
                    argname, luaL_typename(L, idx));
}

/* ------------------------------------------------------------ module */

static void push_version(lua_State *L) {
  lua_pushliteral(L, MG_VERSION);
  lua_setfield(L, -2, "version");
}

void mg_lua_open(lua_State *L, mg_lua_env *env) {
  *(mg_lua_env **)lua_getextraspace(L) = env;
  env->L = L;
  lua_pushlightuserdata(L, env);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &mg_lua_env_key);
  mg_lua_install_hook(L);

  lua_newtable(L);
  push_version(L);
  lua_pushcfunction(L, l_exit);
  lua_setfield(L, -2, "exit");
  mg_lua_open_size(L);
  mg_lua_open_probe(L);
  mg_lua_open_limits(L);
  mg_lua_open_loop(L);
  mg_lua_open_log(L);
  mg_lua_open_store(L);
  mg_lua_open_spawn(L);

  lua_pushvalue(L, -1);
  lua_setglobal(L, "mg");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "mg");
  lua_pop(L, 2);
}
