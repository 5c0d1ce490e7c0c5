/* lmg_store_opts.c — the options of mg.store and mg.load_store and the
 * limits of ctx:set_limits, read from their Lua tables (bindings layer).
 * Types are checked here; the rules (minimums, the name rule) are the
 * core's, which mg_store_new / mg_store_set_limits apply. */
#include <errno.h>
#include <string.h>

#include "lua/mg__lstore.h"

typedef mg_lstore lstore;

/* ------------------------------------------------------------ options */

static const char *const options_accepted[] = {"name",
                                               "max_messages",
                                               "max_message_size",
                                               "max_total_size",
                                               "max_tokens",
                                               "warn_at",
                                               "on_full",
                                               "strategy",
                                               "on_warn",
                                               "on_evict",
                                               "archive",
                                               "archive_fsync",
                                               "estimator",
                                               NULL};

int mg_lstore_field_error(lua_State *L, int arg, const char *field,
                          const char *expected, int v) {
  return luaL_argerror(L, arg,
                       lua_pushfstring(L, "field '%s' must be %s, got %s",
                                       field, expected, luaL_typename(L, v)));
}

/* A count limit (max_messages, max_tokens): a non-negative integer (the
 * core checks the minimum). Returns 0, or a negative code with err. */
static int count_field(lua_State *L, int arg, const char *k, int v,
                       uint64_t *out, char *err, size_t len) {
  lua_Integer n;
  if (!mg_lstore_get_int(L, v, &n))
    return mg_lstore_field_error(L, arg, k, "an integer", v);
  if (n < 0) /* unsigned in C: the core cannot see it */
    return mg_errf(err, len, -EINVAL, "%s %lld is below the minimum %u%s", k,
                   (long long)n, k[4] == 'm' ? MG_STORE_MIN_MAX_MESSAGES : 0u,
                   k[4] == 'm' ? "" : " (0 or false: no token limit)");
  *out = (uint64_t)n;
  return 0;
}

/* A limit field k = value at v into *l. Returns 1 when k is not a limit,
 * 0 when set, a negative code with err (nil, err for the caller). Raises
 * on a wrong type. */
int mg_lstore_limit_field(lua_State *L, int arg, const char *k, int v,
                          mg_store_limits *l, unsigned *given, char *err,
                          size_t len) {
  int rc;
  if (strcmp(k, "max_messages") == 0) {
    rc = count_field(L, arg, k, v, &l->max_messages, err, len);
    *given |= G_COUNT;
    return rc;
  }
  if (strcmp(k, "max_message_size") == 0 || strcmp(k, "max_total_size") == 0) {
    uint64_t b;
    rc = mg_lua_check_size(L, v, k, &b, err, len);
    if (rc < 0)
      return rc;
    if (k[4] == 'm') {
      l->max_message_size_bytes = b;
      *given |= G_MSGSIZE;
    } else {
      l->max_total_size_bytes = b;
      *given |= G_TOTAL;
    }
    return 0;
  }
  if (strcmp(k, "max_tokens") == 0) {
    *given |= G_TOKENS;
    if (lua_type(L, v) == LUA_TBOOLEAN && !lua_toboolean(L, v)) {
      l->max_tokens = 0; /* false: no token limit */
      return 0;
    }
    if (lua_type(L, v) != LUA_TNUMBER)
      return mg_lstore_field_error(L, arg, k, "an integer or false", v);
    return count_field(L, arg, k, v, &l->max_tokens, err, len);
  }
  if (strcmp(k, "warn_at") == 0) {
    if (lua_type(L, v) != LUA_TNUMBER)
      return mg_lstore_field_error(L, arg, k, "a number (0 < warn_at <= 1)", v);
    l->warn_at = lua_tonumber(L, v);
    *given |= G_WARN;
    return 0;
  }
  return 1;
}

/* Read the options table at `oi` into *o (strings borrowed from it) and
 * the callbacks into the uservalues of `self`. Returns 0, or a negative
 * code with err; raises on misuse. */
int mg_lstore_read_options(lua_State *L, int arg, int oi, int self, lstore *ls,
                           mg_store_options *o, mg_store_limits *lim,
                           unsigned *given, char *err, size_t len) {
  mg_lua_check_options(L, oi, arg == 1 ? "store" : "load_store",
                       options_accepted);
  /* The strategy first: a built-in name may run Lua code (require), which
   * must not see strings of ours borrowed yet. */
  lua_pushliteral(L, "strategy");
  if (lua_rawget(L, oi) != LUA_TNIL) {
    mg_lstore_resolve_strategy(L, arg, -1, ls->strategy_name,
                               sizeof ls->strategy_name);
    lua_setiuservalue(L, self, MG_LSTORE_UV_STRATEGY);
  }
  lua_pop(L, 1);
  /* Strings borrowed from the options table stay alive in this anchor
   * until the store has copied them (an estimator may run during a load),
   * whatever Lua code does to the table meanwhile. */
  lua_createtable(L, 2, 0);
  int anchor = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, oi)) {
    int v = lua_gettop(L);
    const char *k = lua_tostring(L, -2);
    int r = mg_lstore_limit_field(L, arg, k, v, lim, given, err, len);
    if (r < 0)
      return r;
    if (r == 0 || strcmp(k, "strategy") == 0) {
    } else if (strcmp(k, "name") == 0) {
      size_t n;
      if (lua_type(L, v) != LUA_TSTRING)
        return mg_lstore_field_error(L, arg, k, "a string", v);
      o->name = lua_tolstring(L, v, &n);
      r = mg_name_check("store name", o->name, n, err, len);
      if (r < 0)
        return r;
      lua_pushvalue(L, v);
      lua_rawseti(L, anchor, 1);
    } else if (strcmp(k, "on_full") == 0) {
      const char *s = lua_type(L, v) == LUA_TSTRING ? lua_tostring(L, v) : "";
      if (strcmp(s, "error") == 0)
        o->on_full = MG_STORE_ON_FULL_ERROR;
      else if (strcmp(s, "prune") == 0)
        o->on_full = MG_STORE_ON_FULL_PRUNE;
      else
        return mg_lstore_field_error(L, arg, k, "\"error\" or \"prune\"", v);
    } else if (strcmp(k, "on_warn") == 0 || strcmp(k, "on_evict") == 0 ||
               strcmp(k, "estimator") == 0) {
      if (lua_type(L, v) != LUA_TFUNCTION)
        return mg_lstore_field_error(L, arg, k, "a function", v);
      lua_pushvalue(L, v);
      lua_setiuservalue(L, self,
                        k[0] == 'e'   ? MG_LSTORE_UV_ESTIMATOR
                        : k[3] == 'w' ? MG_LSTORE_UV_ON_WARN
                                      : MG_LSTORE_UV_ON_EVICT);
    } else if (strcmp(k, "archive") == 0) {
      if (lua_type(L, v) != LUA_TSTRING)
        return mg_lstore_field_error(L, arg, k, "a path (string)", v);
      o->archive_path = mg_lua_check_text(L, v, "archive", NULL);
      r = mg_lua_path_allowed(ls->env, "archive", o->archive_path, 1, err, len);
      if (r < 0)
        return r;
      lua_pushvalue(L, v);
      lua_rawseti(L, anchor, 2);
    } else { /* archive_fsync: the only option left */
      if (lua_type(L, v) != LUA_TBOOLEAN)
        return mg_lstore_field_error(L, arg, k, "a boolean", v);
      o->archive_fsync = lua_toboolean(L, v);
    }
    lua_settop(L, v - 1);
  }
  if (lua_getiuservalue(L, self, MG_LSTORE_UV_STRATEGY) == LUA_TFUNCTION) {
    o->strategy = mg_lstore_strategy_cb;
    o->strategy_ud = ls;
    o->strategy_name = ls->strategy_name;
  }
  if (lua_getiuservalue(L, self, MG_LSTORE_UV_ON_WARN) == LUA_TFUNCTION) {
    o->on_warn = mg_lstore_warn_cb;
    o->on_warn_ud = ls;
  }
  if (lua_getiuservalue(L, self, MG_LSTORE_UV_ON_EVICT) == LUA_TFUNCTION) {
    o->on_evict = mg_lstore_evict_cb;
    o->on_evict_ud = ls;
  }
  if (lua_getiuservalue(L, self, MG_LSTORE_UV_ESTIMATOR) == LUA_TFUNCTION) {
    o->estimate_tokens = mg_lstore_estimate_cb; /* the core calls it */
    o->estimate_ud = ls;
    ls->has_estimator = 1;
  }
  lua_pop(L, 4); /* the anchor stays until open_store returns */
  return 0;
}

/* Limits given to mg.load_store replace the file's. */
void mg_lstore_merge_limits(mg_store_limits *cur, const mg_store_limits *lim,
                            unsigned given) {
  if (given & G_COUNT)
    cur->max_messages = lim->max_messages;
  if (given & G_MSGSIZE)
    cur->max_message_size_bytes = lim->max_message_size_bytes;
  if (given & G_TOTAL)
    cur->max_total_size_bytes = lim->max_total_size_bytes;
  if (given & G_TOKENS)
    cur->max_tokens = lim->max_tokens;
  if (given & G_WARN)
    cur->warn_at = lim->warn_at;
}
