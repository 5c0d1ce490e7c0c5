/* lmg_store.c — mg.store{...}, mg.load_store(path [, opts]) and the store
 * object's methods (bindings layer; libmg's mg_store_* only). The parts
 * of the store's binding are described in mg__lstore.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lua/mg__lstore.h"

#define STORE_MT MG_LSTORE_MT
typedef mg_lstore lstore;

/* The interned field names: upvalue 1 of every function of this file. */
static const mg_lstore_keys *keys_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* ------------------------------------------------------------ calls */

/* Every method brackets its calls into the store with enter/leave, so
 * that callbacks find the thread and the userdata of the call. */
typedef struct lcall {
  lua_State *L;
  int self;
  int exit_before;
} lcall;

static void enter(lstore *ls, lua_State *L, int self, lcall *c) {
  c->L = ls->L;
  c->self = ls->self;
  c->exit_before = ls->env->exit_requested;
  ls->L = L;
  ls->self = self;
  ls->depth++;
}

/* The policy is done with its store: closed for every holder (a host
 * that took it with mg_lua_store_find sees MG_ECLOSED), and the policy's
 * reference dropped. */
static void store_release(lua_State *L, lstore *ls, int self) {
  mg_store_close(ls->s);
  mg_store_free(ls->s);
  ls->s = NULL;
  ls->closing = 0;
  if (self) /* drop the callbacks: they may hold big upvalues */
    for (int i = 1; i <= MG_LSTORE_UV_COUNT; i++) {
      lua_pushnil(L);
      lua_setiuservalue(L, self, i);
    }
}

/* Undo enter; free a store closed meanwhile; a callback that called
 * mg.exit ends the caller's code as mg.exit does (after the store call
 * completed: nothing of the store is on the C stack any more). */
static void leave(lstore *ls, lcall *c) {
  lua_State *L = ls->L;
  int self = ls->self;
  ls->L = c->L;
  ls->self = c->self;
  if (--ls->depth == 0 && ls->closing)
    store_release(L, ls, self);
  if (ls->env->exit_requested && !c->exit_before)
    mg_lua_raise_exit(L);
}

/* The store of a call to `method` (upvalue 2 of every method is the
 * store's metatable: comparing it is cheaper than a registry lookup on the
 * add path). Raises for another receiver, and when the store is closed. */
static lstore *check_store(lua_State *L, const char *method) {
  lstore *ls = lua_touserdata(L, 1);
  int ok = ls != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1);
  }
  if (!ok)
    ls = mg_lua_check_self(L, STORE_MT, method);
  if (ls->s == NULL || ls->closing)
    luaL_error(L, "store '%s' is closed", ls->name);
  return ls;
}

static uint64_t check_id(lua_State *L, int idx) {
  lua_Integer id;
  if (!mg_lstore_get_int(L, idx, &id))
    luaL_typeerror(L, idx, "integer message id");
  return id > 0 ? (uint64_t)id : 0;
}

/* "store 'ctx' is busy" for MG_EBUSY, else the message. */
static int fail_busy(lua_State *L, const lstore *ls, int rc, const char *err) {
  if (rc == MG_EBUSY)
    return mg_lua_failf(L, rc,
                        "store '%s' is busy: no change from inside its own "
                        "callback",
                        ls->name);
  return mg_lua_fail(L, rc, err);
}

/* The state's open stores, for the host (mg_lua_store_find): a table with
 * weak values, lightuserdata(lstore) → the store's userdata, so that it
 * keeps no store alive. Pushes it. */
static const char STORE_REG_KEY = 0;
static void registry_push(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &STORE_REG_KEY) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &STORE_REG_KEY);
}

static lstore *new_store_ud(lua_State *L, const mg_lstore_keys *keys) {
  lstore *ls = lua_newuserdatauv(L, sizeof *ls, MG_LSTORE_UV_COUNT);
  memset(ls, 0, sizeof *ls);
  ls->env = mg_lua_env_get(L);
  ls->keys = keys;
  luaL_setmetatable(L, STORE_MT);
  return ls;
}

/* Read the options table at `oi` into *o (strings borrowed from it) and
 * the callbacks into the uservalues of `self`. Returns 0, or a negative
 * code with err; raises on misuse. */
/* mg.store{...} and mg.load_store(path, {...}): options at `oi`, the new
 * (closed) userdata at `self`. Returns 1 (the store) or 3 (nil, err,
 * code). */
static int open_store(lua_State *L, int arg, int oi, int self,
                      const char *path) {
  lstore *ls = lua_touserdata(L, self);
  mg_store_options o;
  mg_store_limits lim;
  unsigned given = 0;
  char err[768];
  mg_store_options_init(&o);
  lim = o.limits;
  o.logger = ls->env->logger;
  snprintf(ls->strategy_name, sizeof ls->strategy_name, "oldest");
  int rc = mg_lstore_read_options(L, arg, oi, self, ls, &o, &lim, &given, err,
                                  sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  snprintf(ls->name, sizeof ls->name, "%s", o.name ? o.name : "");
  lcall c;
  enter(ls, L, self, &c);
  if (path) {
    rc = mg_store_load(path, &o, &ls->s, err, sizeof err);
    if (rc == 0 && given) {
      mg_store_limits cur;
      mg_store_get_limits(ls->s, &cur);
      mg_lstore_merge_limits(&cur, &lim, given);
      rc = mg_store_set_limits(ls->s, &cur, err, sizeof err);
      if (rc < 0) {
        mg_store_free(ls->s);
        ls->s = NULL;
      }
    }
  } else {
    o.limits = lim;
    rc = mg_store_new(&o, &ls->s, err, sizeof err);
  }
  leave(ls, &c);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  if (ls->s == NULL) /* on_warn closed it during the load */
    return mg_lua_fail(L, -ECANCELED,
                       "the store was closed during its load (by on_warn)");
  snprintf(ls->name, sizeof ls->name, "%s", mg_store_name(ls->s));
  registry_push(L);
  lua_pushvalue(L, self);
  lua_rawsetp(L, -2, ls);
  lua_pop(L, 1);
  lua_pushvalue(L, self);
  return 1;
}

/* mg.store{ name, max_messages, max_message_size, max_total_size,
 * max_tokens, warn_at, on_full, strategy, on_warn, on_evict, archive,
 * archive_fsync, estimator } → store | nil, err, code */
static int l_store(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  new_store_ud(L, keys_of(L));
  return open_store(L, 1, 1, 2, NULL);
}

/* mg.load_store(path [, opts]) → store | nil, err, code. opts as
 * mg.store's; limits given there replace the file's (as ctx:set_limits
 * would). */
static int l_load_store(lua_State *L) {
  const char *path = mg_lua_check_text(L, 1, NULL, NULL);
  char err[1024];
  int rc = mg_lua_path_allowed(mg_lua_env_get(L), "load_store", path, 0, err,
                               sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  new_store_ud(L, keys_of(L));
  return open_store(L, 2, 2, 3, path);
}

/* ------------------------------------------------------------ methods */

/* ctx:add{ role=, content=, source=, group=, pinned=, priority=, tokens=,
 * meta= } → id | nil, err, code (err: a table for limit failures, whose
 * limit_type is the code; else a string) */
static int l_add(lua_State *L) {
  lstore *ls = check_store(L, "add");
  const mg_lstore_keys *keys = keys_of(L);
  mg_lstore_msg m;
  char err[256];
  m.anchor = 0;
  if (ls->has_estimator) { /* Lua runs before the store copies the strings */
    lua_settop(L, 2);
    lua_createtable(L, 8, 0);
    m.anchor = 3;
  }
  int kind = mg_lstore_parse_msg(L, 2, keys, &m, err, sizeof err);
  if (kind == MG_LPARSE_MISUSE)
    return luaL_argerror(L, 2, err);
  if (kind == MG_LPARSE_INVALID)
    return mg_lua_fail(L, -EINVAL, err);
  /* the estimator (if any) runs inside mg_store_add, on the strings read
   * above, which the message table keeps alive */
  uint64_t id;
  mg_store_error e;
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_add(ls->s, &m.in, &id, &e);
  leave(ls, &c);
  if (rc == 0) {
    mg_lua_pushu64(L, id);
    return 1;
  }
  return mg_lstore_push_add_error(L, &e);
}

/* ctx:get(id) → message table | nil */
static int l_get(lua_State *L) {
  lstore *ls = check_store(L, "get");
  uint64_t id = check_id(L, 2);
  mg_store_msg m;
  if (id == 0 || mg_store_get(ls->s, id, &m) < 0)
    return 0;
  mg_lstore_push_msg_safe(L, &m);
  return 1;
}

/* ctx:remove(id) → true | nil, err, code (only that id: an explicit
 * request does not take its group along, and is not archived) */
static int l_remove(lua_State *L) {
  lstore *ls = check_store(L, "remove");
  uint64_t id = check_id(L, 2);
  char err[256];
  lcall c;
  enter(ls, L, 1, &c);
  int rc =
      id ? mg_store_remove(ls->s, id, err, sizeof err)
         : mg_errf(err, sizeof err, -ENOENT, "store '%s' has no message %lld",
                   ls->name, (long long)lua_tointeger(L, 2));
  leave(ls, &c);
  if (rc < 0)
    return fail_busy(L, ls, rc, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:len() / #ctx → number of messages */
static int l_len(lua_State *L) {
  lstore *ls = check_store(L, "len");
  mg_lua_pushu64(L, mg_store_len(ls->s));
  return 1;
}

/* ctx:clear() → removed | nil, err, code (pinned messages too; not
 * archived) */
static int l_clear(lua_State *L) {
  lstore *ls = check_store(L, "clear");
  uint64_t n = 0;
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_clear(ls->s, &n);
  leave(ls, &c);
  if (rc < 0)
    return fail_busy(L, ls, rc, mg_strerror(rc));
  mg_lua_pushu64(L, n);
  return 1;
}

typedef struct snap {
  size_t n, pos;
  uint64_t ids[];
} snap;

static int messages_iter(lua_State *L) {
  lstore *ls = lua_touserdata(L, lua_upvalueindex(1));
  snap *sn = lua_touserdata(L, lua_upvalueindex(2));
  if (ls->s == NULL || ls->closing)
    return luaL_error(L, "store '%s' was closed during iteration", ls->name);
  while (sn->pos < sn->n) {
    mg_store_msg m;
    if (mg_store_get(ls->s, sn->ids[sn->pos++], &m) == 0) {
      mg_lstore_push_msg_safe(L, &m);
      return 1;
    }
  }
  return 0;
}

/* ctx:messages() → iterator over copies of the messages, oldest first.
 * It walks the messages present when it was created: those removed or
 * evicted meanwhile are skipped, those added meanwhile are not visited,
 * so changing the store inside the loop is safe. */
static int l_messages(lua_State *L) {
  lstore *ls = check_store(L, "messages");
  size_t n = (size_t)mg_store_len(ls->s);
  lua_pushvalue(L, 1);
  snap *sn = lua_newuserdatauv(L, sizeof *sn + n * sizeof sn->ids[0], 0);
  sn->n = sn->pos = 0;
  mg_store_iter it;
  mg_store_msg m;
  mg_store_iter_init(ls->s, &it, MG_STORE_OLDEST_FIRST);
  while (sn->n < n && mg_store_iter_next(ls->s, &it, &m) == 1)
    sn->ids[sn->n++] = m.id;
  lua_pushcclosure(L, messages_iter, 2);
  return 1;
}

/* ctx:stats() → the seed's ten fields, token figures, payload/overhead
 * split, pins, groups and counters */
static int l_stats(lua_State *L) {
  lstore *ls = check_store(L, "stats");
  mg_store_stats st;
  mg_store_get_stats(ls->s, &st);
  mg_lstore_push_stats(L, &st);
  return 1;
}

/* ctx:check() → true | nil, description, code */
static int l_check(lua_State *L) {
  lstore *ls = check_store(L, "check");
  char err[512];
  int rc = mg_store_check(ls->s, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:prune([keep_count]) → removed | nil, err, code. keep_count defaults
 * to max_messages // 2; negative or non-integer raises. */
static int l_prune(lua_State *L) {
  lstore *ls = check_store(L, "prune");
  uint64_t keep = MG_STORE_PRUNE_DEFAULT;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer k;
    if (!mg_lstore_get_int(L, 2, &k) || k < 0)
      return luaL_argerror(
          L, 2,
          lua_pushfstring(L,
                          "keep_count must be a non-negative integer, got %s",
                          lua_type(L, 2) == LUA_TNUMBER ? lua_tostring(L, 2)
                                                        : luaL_typename(L, 2)));
    keep = (uint64_t)k;
  }
  uint64_t removed = 0;
  char err[512];
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_prune(ls->s, keep, &removed, err, sizeof err);
  leave(ls, &c);
  if (rc < 0)
    return fail_busy(L, ls, rc, err);
  mg_lua_pushu64(L, removed);
  return 1;
}

/* ctx:make_room{bytes=, count=, tokens=} → removed | nil, err, code: run
 * the strategy as a full store would before an add. */
static int l_make_room(lua_State *L) {
  lstore *ls = check_store(L, "make_room");
  mg_store_need need;
  memset(&need, 0, sizeof need);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    lua_Integer n;
    uint64_t *dst = strcmp(k, "bytes") == 0    ? &need.bytes
                    : strcmp(k, "count") == 0  ? &need.count
                    : strcmp(k, "tokens") == 0 ? &need.tokens
                                               : NULL;
    if (dst == NULL)
      return luaL_argerror(L, 2,
                           lua_pushfstring(L,
                                           "unknown field '%s' (accepted: "
                                           "bytes, count, tokens)",
                                           luaL_tolstring(L, -2, NULL)));
    if (!mg_lstore_get_int(L, -1, &n) || n < 0)
      return mg_lstore_field_error(L, 2, k, "a non-negative integer",
                                   lua_gettop(L));
    *dst = (uint64_t)n;
    lua_pop(L, 1);
  }
  need.limit_type = need.count    ? MG_STORE_LIMIT_MESSAGE_COUNT
                    : need.bytes  ? MG_STORE_LIMIT_TOTAL_SIZE
                    : need.tokens ? MG_STORE_LIMIT_TOKENS
                                  : MG_STORE_LIMIT_NONE;
  uint64_t removed = 0;
  mg_store_error e;
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_make_room(ls->s, &need, &removed, &e);
  leave(ls, &c);
  if (rc < 0)
    return fail_busy(L, ls, rc, e.message);
  mg_lua_pushu64(L, removed);
  return 1;
}

/* ctx:save(path) → true | nil, err, code (crash-safe: temp file, fsync,
 * rename) */
static int l_save(lua_State *L) {
  lstore *ls = check_store(L, "save");
  const char *path = mg_lua_check_text(L, 2, NULL, NULL);
  char err[1024];
  int rc = mg_lua_path_allowed(ls->env, "save", path, 1, err, sizeof err);
  if (rc == 0)
    rc = mg_store_save(ls->s, path, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:set_limits{ max_messages=, max_message_size=, max_total_size=,
 * max_tokens=, warn_at= } → true | nil, err, code. Fields not given keep
 * their value; lowering below the current use evicts nothing. */
static int l_set_limits(lua_State *L) {
  lstore *ls = check_store(L, "set_limits");
  luaL_checktype(L, 2, LUA_TTABLE);
  mg_store_limits lim;
  unsigned given = 0;
  char err[512];
  mg_store_get_limits(ls->s, &lim);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int r = mg_lstore_limit_field(L, 2, k, lua_gettop(L), &lim, &given, err,
                                  sizeof err);
    if (r < 0)
      return mg_lua_fail(L, r, err);
    if (r > 0)
      return luaL_argerror(L, 2,
                           lua_pushfstring(L,
                                           "unknown limit '%s' (accepted: "
                                           "%s)",
                                           luaL_tolstring(L, -2, NULL),
                                           MG_LSTORE_LIMITS_ACCEPTED));
    lua_pop(L, 1);
  }
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_set_limits(ls->s, &lim, err, sizeof err);
  leave(ls, &c);
  if (rc < 0)
    return fail_busy(L, ls, rc, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:set_strategy(strategy) → true | nil, err, code (as the option) */
static int l_set_strategy(lua_State *L) {
  lstore *ls = check_store(L, "set_strategy");
  char name[sizeof ls->strategy_name];
  lua_settop(L, 2);
  mg_lstore_resolve_strategy(L, 2, 2, name, sizeof name);
  int is_lua = lua_isfunction(L, 3);
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_set_strategy(ls->s, is_lua ? mg_lstore_strategy_cb : NULL,
                                 ls, name);
  leave(ls, &c);
  if (rc < 0)
    return fail_busy(L, ls, rc, mg_strerror(rc));
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 1, MG_LSTORE_UV_STRATEGY);
  snprintf(ls->strategy_name, sizeof ls->strategy_name, "%s", name);
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc, __close and ctx:close(): free the store; idempotent. From inside
 * one of the store's callbacks the store is closed at once for Lua and
 * freed when the outermost call into it returns. */
static int store_close(lua_State *L, const char *method) {
  lstore *ls = mg_lua_check_self(L, STORE_MT, method);
  if (ls->s == NULL || ls->closing)
    return 0;
  if (ls->depth > 0) {
    ls->closing = 1;
    return 0;
  }
  store_release(L, ls, 1);
  return 0;
}
static int l_close(lua_State *L) {
  return store_close(L, "close");
}
static int l_gc(lua_State *L) {
  return store_close(L, "__gc");
}
static int l_closemm(lua_State *L) {
  return store_close(L, "__close");
}

/* ------------------------------------------------------------ the host */

/* The open store named `name` (or holding core store `s` when name is
 * NULL): its userdata is pushed and returned when exactly one matches;
 * *count says how many did. Nothing is pushed otherwise. */
static lstore *registry_find(lua_State *L, const char *name, const mg_store *s,
                             int *count) {
  lstore *hit = NULL;
  *count = 0;
  registry_push(L);
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lstore *ls = lua_touserdata(L, -1);
    if (ls && ls->s && !ls->closing &&
        (name ? strcmp(ls->name, name) == 0 : ls->s == s)) {
      hit = ls;
      (*count)++;
    }
    lua_pop(L, 1);
  }
  if (*count != 1) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_rawgetp(L, t, hit);
  lua_remove(L, t);
  return hit;
}

size_t mg_lua_store_each(mg_lua_env *env,
                         void (*fn)(const char *name, const mg_store *s,
                                    void *ud),
                         void *ud) {
  lua_State *L = mg_lua_state(env);
  size_t n = 0;
  if (!lua_checkstack(L, 4))
    return 0;
  registry_push(L);
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lstore *ls = lua_touserdata(L, -1);
    if (ls && ls->s && !ls->closing) {
      n++;
      if (fn)
        fn(ls->name, ls->s, ud);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

int mg_lua_store_find(mg_lua_env *env, const char *name, mg_store **out,
                      char *err, size_t err_len) {
  lua_State *L = mg_lua_state(env);
  int n = 0;
  *out = NULL;
  if (!name)
    return mg_errf(err, err_len, -EINVAL, "no store name given (NULL)");
  if (!lua_checkstack(L, 4))
    return mg_errf(err, err_len, -ENOMEM, "the Lua stack is full");
  lstore *ls = registry_find(L, name, NULL, &n);
  if (n == 0)
    return mg_errf(err, err_len, -ENOENT,
                   "the policy has no open store named '%s'", name);
  if (n > 1)
    return mg_errf(err, err_len, -EEXIST,
                   "the policy has %d open stores named '%s': give them "
                   "distinct names (mg.store{name = ...})",
                   n, name);
  *out = mg_store_retain(ls->s);
  lua_pop(L, 1);
  return 0;
}

int mg_lua_store_call(mg_lua_env *env, mg_store *s,
                      int (*op)(mg_store *s, void *ud), void *ud) {
  lua_State *L = mg_lua_state(env);
  int n = 0;
  if (!lua_checkstack(L, 8))
    return -ENOMEM;
  lstore *ls = registry_find(L, NULL, s, &n);
  if (!ls) /* closed and collected: the core says so */
    return op(s, ud);
  int self = lua_gettop(L);
  lcall c;
  enter(ls, L, self, &c);
  int rc = op(s, ud);
  ls->L = c.L;
  ls->self = c.self;
  if (--ls->depth == 0 && ls->closing) /* a callback closed it */
    store_release(L, ls, self);
  lua_settop(L, self - 1);
  return rc;
}

/* ctx.name, ctx.strategy, then the methods. */
static int l_store_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL)
    return 1; /* a method: the hot path; each method checks its receiver */
  lstore *ls = mg_lua_check_self(L, STORE_MT, "__index");
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "name") == 0) {
    lua_pushstring(L, ls->name);
    return 1;
  }
  if (k && strcmp(k, "strategy") == 0) {
    lua_pushstring(L, ls->strategy_name);
    return 1;
  }
  return 0;
}

/* #ctx: as ctx:len(), under its own name in messages. */
static int l_lenmm(lua_State *L) {
  lstore *ls = mg_lua_check_self(L, STORE_MT, "__len");
  if (ls->s == NULL || ls->closing)
    return luaL_error(L, "store '%s' is closed", ls->name);
  mg_lua_pushu64(L, mg_store_len(ls->s));
  return 1;
}

static int l_store_tostring(lua_State *L) {
  lstore *ls = mg_lua_check_self(L, STORE_MT, "__tostring");
  if (ls->s == NULL || ls->closing)
    lua_pushfstring(L, "mg.store '%s' (closed)", ls->name);
  else
    lua_pushfstring(L, "mg.store '%s' (%I message%s)", ls->name,
                    (lua_Integer)mg_store_len(ls->s),
                    mg_store_len(ls->s) == 1 ? "" : "s");
  return 1;
}

/* mg.time() → unix seconds with a fraction (the clock of message times) */
static int l_time(lua_State *L) {
  lua_pushnumber(L, mg_lstore_unix_now());
  return 1;
}

void mg_lua_open_store(lua_State *L) {
  static const luaL_Reg methods[] = {{"add", l_add},
                                     {"get", l_get},
                                     {"remove", l_remove},
                                     {"len", l_len},
                                     {"clear", l_clear},
                                     {"messages", l_messages},
                                     {"stats", l_stats},
                                     {"check", l_check},
                                     {"prune", l_prune},
                                     {"make_room", l_make_room},
                                     {"save", l_save},
                                     {"set_limits", l_set_limits},
                                     {"set_strategy", l_set_strategy},
                                     {"close", l_close},
                                     {NULL, NULL}};
  static const luaL_Reg fns[] = {
      {"store", l_store}, {"load_store", l_load_store}, {NULL, NULL}};
  int mod = lua_gettop(L);
  mg_lstore_open_keys(L);
  int keys = lua_gettop(L);

  /* store metatable: methods are closures(keys, metatable); __index is
   * closure(keys, methods) */
  luaL_newmetatable(L, STORE_MT);
  int mt = lua_gettop(L);
  lua_createtable(L, 0, sizeof methods / sizeof methods[0]);
  lua_pushvalue(L, keys);
  lua_pushvalue(L, mt);
  luaL_setfuncs(L, methods, 2);
  lua_pushvalue(L, keys);
  lua_insert(L, -2);
  lua_pushcclosure(L, l_store_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_closemm);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_lenmm);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_store_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, STORE_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  mg_lstore_open_view(L);

  luaL_newmetatable(L, MG_LSTORE_ERROR_MT);
  lua_pushcfunction(L, mg_lstore_error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_settop(L, keys); /* module, keys: the closures hold the keys */
  luaL_setfuncs(L, fns, 1);
  lua_pushcfunction(L, l_time);
  lua_setfield(L, -2, "time");
  lua_pushinteger(L, MG_STORE_MSG_OVERHEAD);
  lua_setfield(L, -2, "store_msg_overhead");
  lua_settop(L, mod);
}
