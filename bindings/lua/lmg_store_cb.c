/* lmg_store_cb.c — a store's Lua callbacks: the strategy, on_evict,
 * on_warn and the token estimator (bindings layer).
 *
 * Each C callback runs inside a call into the store made from Lua (the
 * lstore knows the thread and the stack slot of its userdata). It pushes a
 * C trampoline, a light userdata with its arguments and the store, and
 * makes one protected call (mg_lua_pcall: a budget of its own, never
 * raises). The trampoline, already inside that call, builds the Lua
 * arguments, calls the user's function and reads its answer; an error, a
 * spent budget or the memory cap ends the trampoline and the protected
 * call reports it, so the operation that made the callback fails with that
 * message and the store is unchanged.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lua/mg__lstore.h"

/* "store 'ctx' strategy" */
static const char *cb_name(const mg_lstore *ls, const char *cb, char *buf,
                           size_t len) {
  snprintf(buf, len, "store '%s' %s", ls->name, cb);
  return buf;
}

/* The reason a callback gives when it could not run or failed. */
static const char *cb_reason(const char *own, const mg_lua_failure *f,
                             const char *what) {
  if (own[0])
    return own;
  if (f->message[0])
    return f->message;
  return what;
}

/* ------------------------------------------------------------ estimator */

typedef struct est_call {
  const void *content;
  size_t len;
  uint64_t tokens;
  int done;
  char err[300];
} est_call;

/* The value at idx quoted for a message: "-1", "nan", "1.1805916207e+21"… */
static const char *quote_number(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    return luaL_typename(L, idx);
  if (lua_isinteger(L, idx))
    return lua_pushfstring(L, "%I", lua_tointeger(L, idx));
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", (double)lua_tonumber(L, idx));
  return lua_pushstring(L, buf);
}

/* Trampoline: (est_call, store) → estimator(content). A fraction rounds
 * up (docs/lua-api.md); anything but a number in 0 .. 2^63-1 is an error
 * that quotes it. */
static int est_tramp(lua_State *L) {
  est_call *ec = lua_touserdata(L, 1);
  lua_getiuservalue(L, 2, MG_LSTORE_UV_ESTIMATOR);
  lua_pushlstring(L, ec->content, ec->len);
  lua_call(L, 1, 1);
  lua_Integer t = -1;
  if (lua_type(L, -1) == LUA_TNUMBER && !mg_lstore_get_int(L, -1, &t)) {
    double d = lua_tonumber(L, -1);
    t = d >= 0 && d <= 9.2e18 ? (lua_Integer)ceil(d) : -1;
  }
  if (t < 0) {
    snprintf(ec->err, sizeof ec->err,
             "the estimator must return a non-negative number of tokens (at "
             "most 2^63-1), got %s",
             quote_number(L, -1));
    return 0;
  }
  ec->tokens = (uint64_t)t;
  ec->done = 1;
  return 0;
}

static int estimate(lua_State *L, mg_lstore *ls, int self, const void *content,
                    size_t len, uint64_t *out, char *err, size_t err_len);

/* mg_store_estimate_fn: called by the core inside a call into the store
 * made from Lua (an add, a strategy's replacement, a load), in the frame
 * that set ls->self; never raises. */
int mg_lstore_estimate_cb(void *ud, const mg_store_input *in, uint64_t *tokens,
                          char *err, size_t err_len) {
  mg_lstore *ls = ud;
  if (ls->L == NULL)
    return mg_errf(err, err_len, MG_ESTRATEGY, "no Lua stack to run it on");
  return estimate(ls->L, ls, ls->self, in->content, in->content_len, tokens,
                  err, err_len);
}

static int estimate(lua_State *L, mg_lstore *ls, int self, const void *content,
                    size_t len, uint64_t *out, char *err, size_t err_len) {
  est_call ec = {content, len, 0, 0, ""};
  char what[MG_NAME_MAX + 32];
  mg_lua_failure f;
  if (!lua_checkstack(L, 4)) {
    snprintf(err, err_len, "the Lua stack is full: the estimator cannot run");
    return MG_ESTRATEGY;
  }
  lua_pushcfunction(L, est_tramp);
  lua_pushlightuserdata(L, &ec);
  lua_pushvalue(L, self);
  mg_lua_pcall(L, 2, 0, cb_name(ls, "estimator", what, sizeof what), &f);
  if (!ec.done) {
    snprintf(err, err_len, "%s",
             cb_reason(ec.err, &f, "the estimator could not run"));
    return MG_ESTRATEGY;
  }
  *out = ec.tokens;
  return 0;
}

/* ------------------------------------------------------------ strategy */

/* package.loaded["mg.strategies"], requiring it when `load`; pushes the
 * module or nil. */
static void push_strategies(lua_State *L, int load) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "mg.strategies");
  lua_remove(L, -2);
  if (lua_istable(L, -1) || !load)
    return;
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  lua_pushliteral(L, "mg.strategies");
  lua_call(L, 1, 1);
}

/* Resolve the strategy value at v: nil, "oldest" or mg.strategies.oldest
 * → the built-in C fast path (pushes nil); another built-in name → its
 * function in mg.strategies.builtin; a function → itself. Pushes the Lua
 * function (or nil) and writes its name (for messages) into name. */
void mg_lstore_resolve_strategy(lua_State *L, int arg, int v, char *name,
                                size_t len) {
  v = lua_absindex(L, v);
  int t = lua_type(L, v);
  snprintf(name, len, "oldest");
  if (t == LUA_TNIL ||
      (t == LUA_TSTRING && strcmp(lua_tostring(L, v), "oldest") == 0)) {
    lua_pushnil(L);
    return;
  }
  if (t == LUA_TSTRING) {
    const char *s = lua_tostring(L, v);
    push_strategies(L, 1);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "builtin");
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, s);
        if (lua_isfunction(L, -1)) {
          lua_replace(L, -3);
          lua_pop(L, 1);
          snprintf(name, len, "%s", s);
          return;
        }
      }
    }
    luaL_argerror(L, arg,
                  lua_pushfstring(L,
                                  "unknown strategy '%s' (accepted: "
                                  "\"oldest\", a name of "
                                  "mg.strategies.builtin, or a "
                                  "function(view, need))",
                                  s));
    return;
  }
  if (t != LUA_TFUNCTION) {
    luaL_argerror(L, arg,
                  lua_pushfstring(L,
                                  "field 'strategy' must be \"oldest\", a "
                                  "built-in strategy name or a function, got "
                                  "%s",
                                  luaL_typename(L, v)));
    return;
  }
  push_strategies(L, 0);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "oldest");
    if (lua_rawequal(L, -1, v)) { /* the Lua twin of the C fast path */
      lua_pop(L, 2);
      lua_pushnil(L);
      return;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "names");
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, v);
      if (lua_rawget(L, -2) == LUA_TSTRING) {
        snprintf(name, len, "%s", lua_tostring(L, -1));
        lua_pop(L, 3);
        lua_pushvalue(L, v);
        return;
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_Debug ar;
  lua_pushvalue(L, v);
  lua_getinfo(L, ">S", &ar);
  snprintf(name, len, "function at %s:%d", ar.short_src, ar.linedefined);
  lua_pushvalue(L, v);
}

typedef struct strat_call {
  mg_lstore *ls;
  const mg_store *view;
  const mg_store_need *need;
  mg_store_plan *plan;
  int view_ref; /* the view, while the strategy runs */
  int done;     /* the strategy ran and its answer was handed to the plan */
  char err[256];
} strat_call;

static int strat_fail(strat_call *sc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int strat_fail(strat_call *sc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sc->err, sizeof sc->err, fmt, ap);
  va_end(ap);
  return 0;
}

/* Hand the strategy's answer (ids at `ids`, replacement at `repl`) to the
 * plan. C validates: unknown or pinned ids poison the plan. */
static int strat_apply(lua_State *L, strat_call *sc, int self, int ids,
                       int repl) {
  int t = lua_type(L, ids);
  if (t != LUA_TNIL && t != LUA_TTABLE)
    return strat_fail(sc,
                      "it must return a list of message ids (and optionally "
                      "a replacement message), got %s",
                      luaL_typename(L, ids));
  if (t == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, ids);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_Integer id;
      lua_rawgeti(L, ids, i);
      if (!mg_lstore_get_int(L, -1, &id) || id <= 0)
        return strat_fail(sc,
                          "it returned %s at position %lld of its list "
                          "(message ids are positive integers)",
                          quote_number(L, -1), (long long)i);
      lua_pop(L, 1);
      if (mg_store_plan_evict(sc->plan, (uint64_t)id) < 0)
        break; /* the plan says why */
    }
  }
  t = lua_type(L, repl);
  if (t == LUA_TTABLE) {
    mg_lstore_msg m;
    char err[200];
    lua_createtable(L, 8, 0); /* the estimator may run: keep the strings */
    m.anchor = lua_gettop(L);
    int kind = mg_lstore_parse_msg(L, repl, sc->ls->keys, &m, err, sizeof err);
    if (kind != MG_LPARSE_OK)
      return strat_fail(sc, "its replacement message is invalid: %s", err);
    /* the core estimates a replacement without tokens: here, in this
     * trampoline's frame, where the store is at `self` */
    int saved = sc->ls->self;
    sc->ls->self = self;
    mg_store_plan_replace(sc->plan, &m.in); /* errors poison the plan */
    sc->ls->self = saved;
  } else if (t != LUA_TNIL) {
    return strat_fail(sc,
                      "its second result (the replacement) must be a message "
                      "table or nil, got %s",
                      luaL_typename(L, repl));
  }
  sc->done = 1;
  return 0;
}

/* Trampoline: (strat_call, store) → strategy(view, need). */
static int strat_tramp(lua_State *L) {
  strat_call *sc = lua_touserdata(L, 1);
  mg_lstore_view_push(L, sc->view); /* 3 */
  lua_pushvalue(L, 3);
  sc->view_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getiuservalue(L, 2, MG_LSTORE_UV_STRATEGY);
  lua_pushvalue(L, 3);
  lua_createtable(L, 0, 5);
  mg_lua_setu64(L, "bytes", sc->need->bytes);
  if (sc->need->group_len) /* the core never evicts it for its own member */
    mg_lua_setstr(L, "group", sc->need->group);
  mg_lua_setu64(L, "count", sc->need->count);
  mg_lua_setu64(L, "tokens", sc->need->tokens);
  mg_lua_setstr(L, "limit_type", mg_store_limit_name(sc->need->limit_type));
  lua_call(L, 2, 2);
  mg_lstore_view_end(L, 3); /* before anything else can run */
  int top = lua_gettop(L);
  return strat_apply(L, sc, 2, top - 1, top);
}

/* mg_store_strategy_fn: runs with the store locked; never raises. */
int mg_lstore_strategy_cb(void *ud, const mg_store *view,
                          const mg_store_need *need, mg_store_plan *plan,
                          char *err, size_t err_len) {
  mg_lstore *ls = ud;
  lua_State *L = ls->L;
  strat_call sc = {ls, view, need, plan, LUA_NOREF, 0, ""};
  char what[MG_NAME_MAX + 32];
  mg_lua_failure f;
  if (L == NULL || !lua_checkstack(L, 8))
    return mg_errf(err, err_len, MG_ESTRATEGY, "no Lua stack to run it on");
  lua_pushcfunction(L, strat_tramp);
  lua_pushlightuserdata(L, &sc);
  lua_pushvalue(L, ls->self);
  mg_lua_pcall(L, 2, 0, cb_name(ls, "strategy", what, sizeof what), &f);
  if (sc.view_ref != LUA_NOREF) { /* a failed strategy's view expires too */
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc.view_ref);
    mg_lstore_view_end(L, -1);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, sc.view_ref);
  }
  if (sc.done)
    return 0;
  return mg_errf(err, err_len, MG_ESTRATEGY, "%s",
                 cb_reason(sc.err, &f, "it could not be called"));
}

/* ------------------------------------------------------------ on_evict */

typedef struct evict_call {
  const mg_store_batch *batch;
  mg_store_evict_reason reason;
  int done;
  char err[256];
} evict_call;

/* Trampoline: (evict_call, store) → on_evict(store, messages, reason).
 * An error or `false [, why]` refuses the eviction. */
static int evict_tramp(lua_State *L) {
  evict_call *ec = lua_touserdata(L, 1);
  size_t n = mg_store_batch_len(ec->batch);
  lua_getiuservalue(L, 2, MG_LSTORE_UV_ON_EVICT);
  lua_pushvalue(L, 2);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    mg_store_msg m;
    if (mg_store_batch_at(ec->batch, i, &m) < 0)
      break;
    mg_lstore_push_msg(L, &m);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushstring(L, mg_store_evict_reason_name(ec->reason));
  lua_call(L, 3, 2);
  if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) {
    const char *why = lua_tostring(L, -1);
    snprintf(ec->err, sizeof ec->err, "on_evict returned false%s%s",
             why ? ": " : "", why ? why : "");
    return 0;
  }
  ec->done = 1;
  return 0;
}

int mg_lstore_evict_cb(void *ud, const mg_store *view,
                       const mg_store_batch *batch,
                       mg_store_evict_reason reason, char *err,
                       size_t err_len) {
  mg_lstore *ls = ud;
  lua_State *L = ls->L;
  evict_call ec = {batch, reason, 0, ""};
  char what[MG_NAME_MAX + 32];
  mg_lua_failure f;
  (void)view;
  if (L == NULL || !lua_checkstack(L, 8))
    return mg_errf(err, err_len, MG_ESTRATEGY, "no Lua stack to run it on");
  lua_pushcfunction(L, evict_tramp);
  lua_pushlightuserdata(L, &ec);
  lua_pushvalue(L, ls->self);
  mg_lua_pcall(L, 2, 0, cb_name(ls, "on_evict", what, sizeof what), &f);
  if (ec.done)
    return 0;
  return mg_errf(err, err_len, MG_ESTRATEGY, "%s",
                 cb_reason(ec.err, &f, "on_evict could not be called"));
}

/* ------------------------------------------------------------ on_warn */

typedef struct warn_call {
  mg_store_warn_kind kind;
  const mg_store_stats *stats;
} warn_call;

/* Trampoline: (warn_call, store) → on_warn(store, kind, stats). */
static int warn_tramp(lua_State *L) {
  warn_call *wc = lua_touserdata(L, 1);
  lua_getiuservalue(L, 2, MG_LSTORE_UV_ON_WARN);
  lua_pushvalue(L, 2);
  lua_pushstring(L, mg_store_warn_name(wc->kind));
  mg_lstore_push_stats(L, wc->stats);
  lua_call(L, 3, 0);
  return 0;
}

/* mg_store_warn_fn: runs after the store's lock was released. */
void mg_lstore_warn_cb(void *ud, mg_store *store, mg_store_warn_kind kind,
                       const mg_store_stats *stats) {
  mg_lstore *ls = ud;
  lua_State *L = ls->L;
  warn_call wc = {kind, stats};
  char what[MG_NAME_MAX + 32];
  if (ls->s == NULL) { /* mg_store_load warns before it returns the store */
    ls->s = store;
    snprintf(ls->name, sizeof ls->name, "%s", mg_store_name(store));
  }
  if (L == NULL || !lua_checkstack(L, 8))
    return;
  lua_pushcfunction(L, warn_tramp);
  lua_pushlightuserdata(L, &wc);
  lua_pushvalue(L, ls->self);
  mg_lua_pcall(L, 2, 0, cb_name(ls, "on_warn", what, sizeof what), NULL);
}
