/* lmg_log.c — mg.log.debug|info|warn|error(event, {field = value, ...})
 * (bindings layer). Fields are written sorted by key so lines are
 * reproducible. */
#include <stdlib.h>
#include <string.h>

#include "lua/mg__lua.h"

#define MAX_FIELDS 64

typedef struct key_idx {
  const char *key;
  int idx; /* stack index of the value */
} key_idx;

static int cmp_key(const void *a, const void *b) {
  return strcmp(((const key_idx *)a)->key, ((const key_idx *)b)->key);
}

static int log_at(lua_State *L, mg_log_level level) {
  mg_lua_env *env = mg_lua_env_get(L);
  size_t elen;
  const char *event = luaL_checklstring(L, 1, &elen);
  luaL_argcheck(L, event[0] != '\0', 1, "event name must not be empty");
  luaL_argcheck(L, strlen(event) == elen, 1,
                "event name holds a NUL byte (log text cannot)");
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  if (env->logger == NULL || level < mg_logger_level(env->logger))
    return 0;
  key_idx keys[MAX_FIELDS];
  mg_log_field fields[MAX_FIELDS];
  size_t n = 0;
  lua_settop(L, 2);
  if (lua_istable(L, 2)) {
    luaL_checkstack(L, 4 * MAX_FIELDS + 8, "too many log fields");
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
      if (n == MAX_FIELDS)
        return luaL_error(L, "bad argument #2 (at most %d log fields)",
                          MAX_FIELDS);
      if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L,
                          "bad argument #2 (log field names must be "
                          "strings, got %s)",
                          luaL_typename(L, -2));
      size_t kl;
      keys[n].key = lua_tolstring(L, -2, &kl);
      if (strlen(keys[n].key) != kl)
        return luaL_error(L, "bad argument #2 (a log field name holds a NUL "
                             "byte, which log text cannot)");
      /* keep key and value on the stack; push a copy of the key to go on */
      keys[n].idx = lua_gettop(L);
      n++;
      lua_pushvalue(L, -2);
    }
  }
  if (n > 1)
    qsort(keys, n, sizeof keys[0], cmp_key);
  for (size_t i = 0; i < n; i++) {
    int idx = keys[i].idx;
    fields[i].key = keys[i].key;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        fields[i].type = MG_LOG_T_INT;
        fields[i].v.i = lua_tointeger(L, idx);
      } else {
        fields[i].type = MG_LOG_T_DOUBLE;
        fields[i].v.d = lua_tonumber(L, idx);
      }
      break;
    case LUA_TBOOLEAN:
      fields[i].type = MG_LOG_T_BOOL;
      fields[i].v.b = lua_toboolean(L, idx);
      break;
    default: {
      size_t vl;
      fields[i].type = MG_LOG_T_STR;
      fields[i].v.s = luaL_tolstring(L, idx, &vl); /* anchored on stack */
      if (strlen(fields[i].v.s) != vl)
        return luaL_error(L,
                          "bad argument #2 (log field '%s' holds a NUL "
                          "byte, which log text cannot)",
                          keys[i].key);
      break;
    }
    }
  }
  mg_log(env->logger, level, event, fields, n);
  return 0;
}

static int l_debug(lua_State *L) {
  return log_at(L, MG_LOG_DEBUG);
}
static int l_info(lua_State *L) {
  return log_at(L, MG_LOG_INFO);
}
static int l_warn(lua_State *L) {
  return log_at(L, MG_LOG_WARN);
}
static int l_error(lua_State *L) {
  return log_at(L, MG_LOG_ERROR);
}

void mg_lua_open_log(lua_State *L) {
  static const luaL_Reg fns[] = {{"debug", l_debug},
                                 {"info", l_info},
                                 {"warn", l_warn},
                                 {"error", l_error},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "log");
}
