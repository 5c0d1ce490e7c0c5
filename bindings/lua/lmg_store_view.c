/* lmg_store_view.c — the read-only view of a store that a strategy sees
 * (bindings layer). Its methods read the store through the core's
 * accessors; it is invalidated as soon as the strategy returns (or
 * fails), so a view leaked into a global raises a clear error. */
#include <string.h>

#include "lua/mg__lstore.h"

/* A read-only view of a store given to a strategy. */
typedef struct lview {
  const mg_store *s;
  int valid; /* cleared when the strategy returns */
} lview;

/* ------------------------------------------------------------ views */

static lview *check_view(lua_State *L, const char *method) {
  lview *v = mg_lua_check_self(L, MG_LSTORE_VIEW_MT, method);
  if (!v->valid)
    luaL_error(L, "store view used after its strategy returned: a view is "
                  "valid only during the call (copy what you need)");
  return v;
}

/* Position argument: 1-based. */
static uint64_t check_pos(lua_State *L, int idx) {
  lua_Integer i = luaL_checkinteger(L, idx);
  return i >= 1 ? (uint64_t)(i - 1) : UINT64_MAX;
}

static uint64_t check_id(lua_State *L, int idx) {
  lua_Integer id;
  if (!mg_lstore_get_int(L, idx, &id))
    luaL_typeerror(L, idx, "integer message id");
  return id > 0 ? (uint64_t)id : 0;
}

/* view:len() → messages */
static int l_view_len(lua_State *L) {
  lview *v = check_view(L, "len");
  mg_lua_pushu64(L, mg_store_len(v->s));
  return 1;
}

/* view:at(i) → message table (i = 1 oldest) | nil */
static int l_view_at(lua_State *L) {
  lview *v = check_view(L, "at");
  mg_store_msg m;
  if (mg_store_at(v->s, check_pos(L, 2), &m) < 0)
    return 0;
  mg_lstore_push_msg(L, &m);
  return 1;
}

/* view:info(i) → id, size, tokens, priority, pinned, time, group, role —
 * the fields a strategy ranks by, without building a table. */
static int l_view_info(lua_State *L) {
  lview *v = check_view(L, "info");
  mg_store_msg m;
  if (mg_store_at(v->s, check_pos(L, 2), &m) < 0)
    return 0;
  mg_lua_pushu64(L, m.id);
  mg_lua_pushu64(L, m.size_bytes);
  mg_lua_pushu64(L, m.tokens);
  lua_pushinteger(L, (lua_Integer)m.priority);
  lua_pushboolean(L, m.pinned);
  lua_pushnumber(L, m.time);
  if (m.group_len)
    lua_pushlstring(L, m.group, m.group_len);
  else
    lua_pushnil(L);
  lua_pushlstring(L, m.role, m.role_len);
  return 8;
}

/* view:get(id) → message table | nil */
static int l_view_get(lua_State *L) {
  lview *v = check_view(L, "get");
  mg_store_msg m;
  uint64_t id = check_id(L, 2);
  if (id == 0 || mg_store_get(v->s, id, &m) < 0)
    return 0;
  mg_lstore_push_msg(L, &m);
  return 1;
}

static int view_iter(lua_State *L) {
  lview *v = check_view(L, "messages iterator");
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(1));
  mg_store_msg m;
  if (mg_store_at(v->s, (uint64_t)i, &m) < 0)
    return 0;
  lua_pushinteger(L, i + 1);
  lua_replace(L, lua_upvalueindex(1));
  mg_lstore_push_msg(L, &m);
  return 1;
}

/* view:messages() → iterator over message tables, oldest first */
static int l_view_messages(lua_State *L) {
  check_view(L, "messages");
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, view_iter, 1);
  lua_pushvalue(L, 1);
  return 2;
}

/* view:units() → u, of: the store in *units* — a message without a
 * group, or a whole group (what one eviction removes) — in store order
 * (by the oldest member), as parallel arrays u.id, u.first (position of
 * the oldest member), u.count, u.bytes, u.tokens (what evicting it
 * frees), u.pinned (a member is pinned: never evictable), u.priority
 * (highest member priority), u.time (newest member time), u.role (of the
 * oldest member), u.group (nil when none), and u.n; of[pos] is the unit
 * of the message at position pos. Built in C: strategies rank 10^4
 * messages in a few milliseconds. */
enum {
  U_ID = 1,
  U_FIRST,
  U_COUNT,
  U_BYTES,
  U_TOKENS,
  U_PINNED,
  U_PRIORITY,
  U_TIME,
  U_ROLE,
  U_GROUP,
  U_NARR = U_GROUP
};
static const char *const unit_fields[U_NARR] = {
    "id",     "first",    "count", "bytes", "tokens",
    "pinned", "priority", "time",  "role",  "group"};

static lua_Integer units_geti(lua_State *L, int arr, lua_Integer k) {
  lua_rawgeti(L, arr, k);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_view_units(lua_State *L) {
  lview *v = check_view(L, "units");
  uint64_t n64 = mg_store_len(v->s);
  mg_store_stats st;
  mg_store_get_stats(v->s, &st);
  int n = n64 > (uint64_t)INT32_MAX ? INT32_MAX : (int)n64;
  int ng =
      st.group_count > (uint64_t)INT32_MAX ? INT32_MAX : (int)st.group_count;
  luaL_checkstack(L, U_NARR + 16, "view:units");
  lua_settop(L, 1);
  for (int f = 0; f < U_NARR; f++) /* arrays at 2 .. U_NARR+1 */
    lua_createtable(L, n, 0);
  int of = lua_gettop(L) + 1;
  lua_createtable(L, n, 0);
  int gunit = of + 1;
  lua_createtable(L, 0, ng);
  mg_store_iter it;
  mg_store_msg m;
  lua_Integer k = 0, pos = 0;
  mg_store_iter_init(v->s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(v->s, &it, &m) == 1) {
    lua_Integer u = 0;
    pos++;
    if (m.group_len) {
      lua_pushlstring(L, m.group, m.group_len);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, gunit) == LUA_TNUMBER)
        u = lua_tointeger(L, -1);
      lua_pop(L, 1); /* leaves the group string */
    }
    if (u) {
      lua_pop(L, 1);
      int b = 1; /* arrays are at b + U_* */
      lua_pushinteger(L, units_geti(L, b + U_COUNT, u) + 1);
      lua_rawseti(L, b + U_COUNT, u);
      lua_pushinteger(L, units_geti(L, b + U_BYTES, u) +
                             (lua_Integer)m.size_bytes);
      lua_rawseti(L, b + U_BYTES, u);
      lua_pushinteger(L,
                      units_geti(L, b + U_TOKENS, u) + (lua_Integer)m.tokens);
      lua_rawseti(L, b + U_TOKENS, u);
      if (m.pinned) {
        lua_pushboolean(L, 1);
        lua_rawseti(L, b + U_PINNED, u);
      }
      if ((lua_Integer)m.priority > units_geti(L, b + U_PRIORITY, u)) {
        lua_pushinteger(L, (lua_Integer)m.priority);
        lua_rawseti(L, b + U_PRIORITY, u);
      }
      lua_rawgeti(L, b + U_TIME, u);
      if (m.time > lua_tonumber(L, -1)) {
        lua_pushnumber(L, m.time);
        lua_rawseti(L, b + U_TIME, u);
      }
      lua_pop(L, 1);
    } else {
      u = ++k;
      if (m.group_len) { /* group string on the stack */
        lua_pushvalue(L, -1);
        lua_pushinteger(L, u);
        lua_rawset(L, gunit);
        lua_rawseti(L, 1 + U_GROUP, u);
      }
      mg_lua_pushu64(L, m.id);
      lua_rawseti(L, 1 + U_ID, u);
      lua_pushinteger(L, pos);
      lua_rawseti(L, 1 + U_FIRST, u);
      lua_pushinteger(L, 1);
      lua_rawseti(L, 1 + U_COUNT, u);
      mg_lua_pushu64(L, m.size_bytes);
      lua_rawseti(L, 1 + U_BYTES, u);
      mg_lua_pushu64(L, m.tokens);
      lua_rawseti(L, 1 + U_TOKENS, u);
      lua_pushboolean(L, m.pinned);
      lua_rawseti(L, 1 + U_PINNED, u);
      lua_pushinteger(L, (lua_Integer)m.priority);
      lua_rawseti(L, 1 + U_PRIORITY, u);
      lua_pushnumber(L, m.time);
      lua_rawseti(L, 1 + U_TIME, u);
      lua_pushlstring(L, m.role, m.role_len);
      lua_rawseti(L, 1 + U_ROLE, u);
    }
    lua_pushinteger(L, u);
    lua_rawseti(L, of, pos);
  }
  lua_pop(L, 1); /* gunit */
  lua_createtable(L, 0, U_NARR + 1);
  for (int f = 0; f < U_NARR; f++) {
    lua_pushvalue(L, 2 + f);
    lua_setfield(L, -2, unit_fields[f]);
  }
  lua_pushinteger(L, k);
  lua_setfield(L, -2, "n");
  lua_pushvalue(L, of);
  return 2;
}

/* view:stats() → the store's stats */
static int l_view_stats(lua_State *L) {
  lview *v = check_view(L, "stats");
  mg_store_stats st;
  mg_store_get_stats(v->s, &st);
  mg_lstore_push_stats(L, &st);
  return 1;
}

/* view:now() → unix seconds (the clock of message times) */
static int l_view_now(lua_State *L) {
  check_view(L, "now");
  lua_pushnumber(L, mg_lstore_unix_now());
  return 1;
}

/* __index: methods, `name`; anything else is an error that says why. */
static int l_view_index(lua_State *L) {
  lview *v = mg_lua_check_self(L, MG_LSTORE_VIEW_MT, "__index");
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "name") == 0) {
    check_view(L, "name");
    lua_pushstring(L, mg_store_name(v->s));
    return 1;
  }
  return luaL_error(L,
                    "store view is read-only: it has no '%s' (a strategy "
                    "returns the ids to evict and an optional replacement; "
                    "it cannot change the store)",
                    k ? k : luaL_typename(L, 2));
}

/* #view: as view:len(), under its own name in messages. */
static int l_view_lenmm(lua_State *L) {
  lview *v = check_view(L, "__len");
  mg_lua_pushu64(L, mg_store_len(v->s));
  return 1;
}

static int l_view_newindex(lua_State *L) {
  mg_lua_check_self(L, MG_LSTORE_VIEW_MT, "__newindex");
  return luaL_error(L, "store view is read-only");
}

static int l_view_tostring(lua_State *L) {
  lview *v = mg_lua_check_self(L, MG_LSTORE_VIEW_MT, "__tostring");
  if (v->valid)
    lua_pushfstring(L, "mg.store.view '%s' (%I message%s)", mg_store_name(v->s),
                    (lua_Integer)mg_store_len(v->s),
                    mg_store_len(v->s) == 1 ? "" : "s");
  else
    lua_pushliteral(L, "mg.store.view (expired)");
  return 1;
}

void mg_lstore_view_push(lua_State *L, const mg_store *s) {
  lview *v = lua_newuserdatauv(L, sizeof *v, 0);
  v->s = NULL;
  v->valid = 0;
  luaL_setmetatable(L, MG_LSTORE_VIEW_MT);
  v->s = s;
  v->valid = 1;
}

void mg_lstore_view_end(lua_State *L, int idx) {
  lview *v = lua_touserdata(L, idx); /* ours: taken from the registry ref */
  if (v)
    v->valid = 0;
}

void mg_lstore_open_view(lua_State *L) {
  static const luaL_Reg view_methods[] = {{"len", l_view_len},
                                          {"at", l_view_at},
                                          {"info", l_view_info},
                                          {"units", l_view_units},
                                          {"get", l_view_get},
                                          {"messages", l_view_messages},
                                          {"stats", l_view_stats},
                                          {"now", l_view_now},
                                          {NULL, NULL}};
  luaL_newmetatable(L, MG_LSTORE_VIEW_MT);
  luaL_newlib(L, view_methods);
  lua_pushcclosure(L, l_view_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_view_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_view_lenmm);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_view_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, MG_LSTORE_VIEW_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
