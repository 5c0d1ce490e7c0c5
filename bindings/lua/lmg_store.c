/* lmg_store.c — mg.store{...}, mg.load_store(path [, opts]) and the store
 * object's methods (bindings layer; libmg's mg_store_* only).
 *
 * Lifetime. The userdata holds the binding's state (lstore) directly: the
 * C store calls back only during a call made from Lua, so nothing can
 * reach the state after the userdata is gone. `__gc`, `__close` and
 * `ctx:close()` share one idempotent function; a close asked from inside
 * one of the store's own callbacks is deferred until the outermost call
 * into the store returns.
 *
 * Callbacks. The strategy, on_evict, on_warn and the estimator are Lua
 * functions kept as uservalues of the store's userdata (so a closure that
 * captures the store does not keep it alive for ever). C reaches them
 * only through mg_lua_call (budget, memory cap, never raises): strategy
 * and on_evict run with the store locked, so while the store's code is on
 * the C stack nothing here may raise a Lua error — every callback pushes
 * only non-allocating values and lets a trampoline, already inside the
 * protected call, build tables and call the user's function under an
 * inner lua_pcall that captures the error text for the add's error.
 *
 * Views. A strategy sees a read-only view userdata whose methods read the
 * store through the header's accessors; it is invalidated as soon as the
 * strategy returns, so a view leaked into a global raises a clear error.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lua/mg_lua.h"

#define STORE_MT "mg.store"
#define VIEW_MT "mg.store.view"
#define ERROR_MT "mg.store.error"

/* Uservalues of a store userdata: its Lua callbacks. */
enum { UV_STRATEGY = 1, UV_ON_WARN, UV_ON_EVICT, UV_ESTIMATOR, UV_COUNT = 4 };

typedef struct lstore {
  mg_store *s;     /* NULL once closed */
  mg_lua_env *env; /* of the state that created it */
  lua_State *L;    /* thread of the call in progress: callbacks run there */
  int self;        /* stack index of this userdata in L during that call */
  int depth;       /* calls into the store in progress */
  int closing;     /* closed during a call: freed when depth drops to 0 */
  int has_estimator;
  char name[MG_STORE_NAME_MAX + 1];
  char strategy_name[64];
  const struct lkeys *keys; /* interned message field names */
} lstore;

/* A read-only view of a store given to a strategy. */
typedef struct lview {
  const mg_store *s;
  int valid; /* cleared when the strategy returns */
} lview;

/* Message fields, interned once per state: the add path compares key
 * pointers instead of hashing (short strings are unique in Lua 5.4). */
enum {
  F_ROLE,
  F_CONTENT,
  F_SOURCE,
  F_GROUP,
  F_PINNED,
  F_PRIORITY,
  F_TOKENS,
  F_META,
  F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "role",   "content",  "source", "group",
    "pinned", "priority", "tokens", "meta"};
#define FIELDS_ACCEPTED                                                        \
  "role, content, source, group, pinned, priority, tokens, meta"

typedef struct lkeys {
  const char *p[F_COUNT];
} lkeys;

/* A message being read from a Lua table. */
typedef struct lmsg {
  mg_store_input in;
  mg_store_meta meta[MG_STORE_META_MAX];
} lmsg;

/* parse_msg results */
enum { PARSE_OK = 0, PARSE_MISUSE = 1, PARSE_INVALID = 2 };

/* ------------------------------------------------------------ helpers */

static const lkeys *keys_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* An integer-valued number at idx (1.0 counts; 1.5 does not). */
static int get_int(lua_State *L, int idx, lua_Integer *out) {
  int ok = 0;
  *out = lua_tointegerx(L, idx, &ok);
  return ok && lua_type(L, idx) == LUA_TNUMBER;
}

static void push_u64(lua_State *L, uint64_t v) {
  if (v > (uint64_t)INT64_MAX)
    lua_pushnumber(L, (lua_Number)v);
  else
    lua_pushinteger(L, (lua_Integer)v);
}

static void setlstr(lua_State *L, const char *k, const char *v, size_t n) {
  lua_pushlstring(L, v, n);
  lua_setfield(L, -2, k);
}

/* A message (copied) as a table: id, role, content, source (nil when
 * empty), group (nil when none), pinned, priority, tokens, time, size,
 * meta (nil when empty). */
static void push_msg(lua_State *L, const mg_store_msg *m) {
  lua_createtable(L, 0, 11);
  mg_lua_setu64(L, "id", m->id);
  setlstr(L, "role", m->role, m->role_len);
  setlstr(L, "content", (const char *)m->content, m->content_len);
  if (m->source_len)
    setlstr(L, "source", m->source, m->source_len);
  if (m->group_len)
    setlstr(L, "group", m->group, m->group_len);
  mg_lua_setbool(L, "pinned", m->pinned);
  mg_lua_setint(L, "priority", (lua_Integer)m->priority);
  mg_lua_setu64(L, "tokens", m->tokens);
  mg_lua_setnum(L, "time", m->time);
  mg_lua_setu64(L, "size", m->size_bytes);
  if (m->meta_count) {
    size_t cur = 0;
    const char *k, *v;
    lua_createtable(L, 0, (int)m->meta_count);
    while (mg_store_msg_meta_next(m, &cur, &k, &v))
      mg_lua_setstr(L, k, v);
    lua_setfield(L, -2, "meta");
  }
}

static void push_stats(lua_State *L, const mg_store_stats *st) {
  lua_createtable(L, 0, 30);
  /* the seed's ten */
  mg_lua_setu64(L, "message_count", st->message_count);
  mg_lua_setu64(L, "total_size_bytes", st->total_size_bytes);
  mg_lua_setu64(L, "largest_message_bytes", st->largest_message_bytes);
  mg_lua_setu64(L, "max_messages", st->max_messages);
  mg_lua_setu64(L, "max_message_size_bytes", st->max_message_size_bytes);
  mg_lua_setu64(L, "max_total_size_bytes", st->max_total_size_bytes);
  mg_lua_setnum(L, "message_count_utilization", st->message_count_utilization);
  mg_lua_setnum(L, "total_size_utilization", st->total_size_utilization);
  mg_lua_setbool(L, "near_message_limit", st->near_message_limit);
  mg_lua_setbool(L, "near_size_limit", st->near_size_limit);
  /* tokens */
  mg_lua_setu64(L, "total_tokens", st->total_tokens);
  if (st->max_tokens)
    mg_lua_setu64(L, "max_tokens", st->max_tokens);
  mg_lua_setnum(L, "token_utilization", st->token_utilization);
  mg_lua_setbool(L, "near_token_limit", st->near_token_limit);
  /* bytes split, pins, groups */
  mg_lua_setu64(L, "payload_bytes", st->payload_bytes);
  mg_lua_setu64(L, "overhead_bytes", st->overhead_bytes);
  mg_lua_setu64(L, "pinned_count", st->pinned_count);
  mg_lua_setu64(L, "pinned_bytes", st->pinned_bytes);
  mg_lua_setu64(L, "group_count", st->group_count);
  mg_lua_setnum(L, "warn_at", st->warn_at);
  mg_lua_setu64(L, "next_id", st->next_id);
  /* counters */
  mg_lua_setu64(L, "evicted_count", st->evicted_count);
  mg_lua_setu64(L, "evicted_bytes", st->evicted_bytes);
  mg_lua_setu64(L, "archived_count", st->archived_count);
  mg_lua_setu64(L, "removed_count", st->removed_count);
  mg_lua_setu64(L, "replaced_count", st->replaced_count);
  mg_lua_setu64(L, "rejected_count", st->rejected_count);
}

/* nil, err where err is a table {limit_type, current, limit, details,
 * message, code} with a __tostring (limit failures) or a string. */
static int push_add_error(lua_State *L, const mg_store_error *e) {
  lua_pushnil(L);
  if (e->limit_type == MG_STORE_LIMIT_NONE) {
    lua_pushstring(L, e->message);
    return 2;
  }
  lua_createtable(L, 0, 6);
  mg_lua_setstr(L, "limit_type", mg_store_limit_name(e->limit_type));
  mg_lua_setu64(L, "current", e->current);
  mg_lua_setu64(L, "limit", e->limit);
  mg_lua_setstr(L, "details", e->details);
  mg_lua_setstr(L, "message", e->message);
  mg_lua_setstr(L, "code", mg_err_name(e->code));
  luaL_setmetatable(L, ERROR_MT);
  return 2;
}

static int l_error_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  if (!lua_isstring(L, -1))
    lua_pushliteral(L, "store error");
  return 1;
}

/* ------------------------------------------------------------ messages in */

static int parse_fail(char *err, size_t len, int kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int parse_fail(char *err, size_t len, int kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return kind;
}

static int parse_text(lua_State *L, int v, const char *field, const char **out,
                      char *err, size_t len) {
  size_t n;
  if (lua_type(L, v) != LUA_TSTRING)
    return parse_fail(err, len, PARSE_MISUSE,
                      "field '%s' must be a string, got %s", field,
                      luaL_typename(L, v));
  const char *s = lua_tolstring(L, v, &n);
  if (memchr(s, 0, n))
    return parse_fail(err, len, PARSE_INVALID,
                      "field '%s' contains a NUL byte (text fields are UTF-8 "
                      "without NUL; only content may hold any bytes)",
                      field);
  *out = s;
  return PARSE_OK;
}

static int parse_meta(lua_State *L, int t, lmsg *m, char *err, size_t len) {
  if (lua_type(L, t) != LUA_TTABLE)
    return parse_fail(err, len, PARSE_MISUSE,
                      "field 'meta' must be a table of strings, got %s",
                      luaL_typename(L, t));
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return parse_fail(err, len, PARSE_MISUSE,
                        "field 'meta' must map strings to strings, got a %s "
                        "key with a %s value",
                        luaL_typename(L, -2), luaL_typename(L, -1));
    if (n == MG_STORE_META_MAX)
      return parse_fail(err, len, PARSE_INVALID,
                        "meta has more than %u entries; at most %u are "
                        "accepted",
                        MG_STORE_META_MAX, MG_STORE_META_MAX);
    size_t kl, vl;
    const char *k = lua_tolstring(L, -2, &kl);
    const char *v = lua_tolstring(L, -1, &vl);
    if (memchr(k, 0, kl) || memchr(v, 0, vl))
      return parse_fail(err, len, PARSE_INVALID,
                        "meta entry '%s' contains a NUL byte", k);
    m->meta[n].key = k; /* anchored by the meta table */
    m->meta[n].value = v;
    n++;
    lua_pop(L, 1);
  }
  m->in.meta = m->meta;
  m->in.meta_count = n;
  return PARSE_OK;
}

/* Read the message table at idx into *m (strings are borrowed from the
 * table, which the caller keeps on the stack). Leaves extra values on the
 * stack. Returns PARSE_OK, PARSE_MISUSE (wrong types, unknown fields) or
 * PARSE_INVALID (data the store refuses), with a message in err. */
static int parse_msg(lua_State *L, int idx, const lkeys *keys, lmsg *m,
                     char *err, size_t len) {
  memset(&m->in, 0, sizeof m->in);
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE)
    return parse_fail(err, len, PARSE_MISUSE, "message table expected, got %s",
                      luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kind, f = -1;
    lua_Integer i;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      for (f = 0; f < F_COUNT && keys->p[f] != k; f++)
        ;
    }
    switch (f) {
    case F_ROLE:
      if ((kind = parse_text(L, -1, "role", &m->in.role, err, len)))
        return kind;
      break;
    case F_SOURCE:
      if ((kind = parse_text(L, -1, "source", &m->in.source, err, len)))
        return kind;
      break;
    case F_GROUP:
      if ((kind = parse_text(L, -1, "group", &m->in.group, err, len)))
        return kind;
      break;
    case F_CONTENT:
      if (lua_type(L, -1) != LUA_TSTRING)
        return parse_fail(err, len, PARSE_MISUSE,
                          "field 'content' must be a string, got %s",
                          luaL_typename(L, -1));
      m->in.content = lua_tolstring(L, -1, &m->in.content_len);
      break;
    case F_PINNED:
      if (lua_type(L, -1) != LUA_TBOOLEAN)
        return parse_fail(err, len, PARSE_MISUSE,
                          "field 'pinned' must be a boolean, got %s",
                          luaL_typename(L, -1));
      m->in.pinned = lua_toboolean(L, -1);
      break;
    case F_PRIORITY:
      if (!get_int(L, -1, &i))
        return parse_fail(err, len, PARSE_MISUSE,
                          "field 'priority' must be an integer, got %s",
                          luaL_typename(L, -1));
      m->in.priority = (int64_t)i;
      break;
    case F_TOKENS:
      if (!get_int(L, -1, &i) || i < 0)
        return parse_fail(err, len, PARSE_MISUSE,
                          "field 'tokens' must be a non-negative integer, got "
                          "%s",
                          lua_type(L, -1) == LUA_TNUMBER
                              ? lua_pushfstring(L, "%f", lua_tonumber(L, -1))
                              : luaL_typename(L, -1));
      m->in.has_tokens = 1;
      m->in.tokens = (uint64_t)i;
      break;
    case F_META:
      if ((kind = parse_meta(L, lua_gettop(L), m, err, len)))
        return kind;
      break;
    default:
      if (lua_type(L, -2) == LUA_TSTRING)
        return parse_fail(err, len, PARSE_MISUSE,
                          "unknown message field '%s' (accepted: %s)",
                          lua_tostring(L, -2), FIELDS_ACCEPTED);
      return parse_fail(err, len, PARSE_MISUSE,
                        "message field names must be strings, got a %s key",
                        luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
  return PARSE_OK;
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

static void store_release(lua_State *L, lstore *ls, int self) {
  mg_store_free(ls->s);
  ls->s = NULL;
  ls->closing = 0;
  if (self) /* drop the callbacks: they may hold big upvalues */
    for (int i = 1; i <= UV_COUNT; i++) {
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

/* The store of a method call (upvalue 2 of every method is the store's
 * metatable: comparing it is cheaper than luaL_checkudata's registry
 * lookup on the add path). Raises when closed. */
static lstore *check_store(lua_State *L) {
  lstore *ls = lua_touserdata(L, 1);
  int ok = ls != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1);
  }
  if (!ok)
    ls = luaL_checkudata(L, 1, STORE_MT); /* raises the usual message */
  if (ls->s == NULL || ls->closing)
    luaL_error(L, "store '%s' is closed", ls->name);
  return ls;
}

/* Log a callback failure caught by an inner pcall the way mg_lua_call
 * logs its own. */
static void log_cb_failure(mg_lua_env *env, const char *what,
                           const char *text) {
  env->callback_errors++;
  mg_log_field f[] = {MG_LF_STR("callback", what), MG_LF_STR("error", text)};
  mg_log(env->logger, MG_LOG_ERROR, "callback_failed", f, 2);
}

/* Message handler of the inner calls: message + traceback. The cap is
 * lifted so the traceback can be built (the trampoline restores it). */
static int inner_msgh(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  env->mem_capped = 0;
  if (mg_lua_is_exit(L, 1))
    return 1;
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Inside a trampoline (already under mg_lua_call's budget and cap): call
 * the function below nargs arguments with a traceback handler. On error
 * write the message (without traceback) into err, log it with its
 * traceback, and return -1 (*is_exit set when it was mg.exit's sentinel,
 * which is then on the stack top for re-raising); 0 with nres results. */
static int inner_call(lua_State *L, int nargs, int nres, const char *what,
                      char *err, size_t err_len, int *is_exit) {
  mg_lua_env *env = mg_lua_env_get(L);
  int base = lua_gettop(L) - nargs;
  int capped = env->mem_capped;
  *is_exit = 0;
  lua_pushcfunction(L, inner_msgh);
  lua_insert(L, base);
  int st = lua_pcall(L, nargs, nres, base);
  env->mem_capped = capped;
  lua_remove(L, base);
  if (st == LUA_OK)
    return 0;
  if (mg_lua_is_exit(L, -1)) {
    *is_exit = 1;
    snprintf(err, err_len, "mg.exit() was called");
    return -1;
  }
  if (st == LUA_ERRMEM) {
    char cap[32];
    snprintf(err, err_len,
             "not enough memory: the Lua state reached its memory cap of %s "
             "(--lua-mem)",
             mg_size_format(env->mem_max, cap, sizeof cap));
    lua_pop(L, 1);
    log_cb_failure(env, what, err);
    lua_gc(L, LUA_GCCOLLECT); /* what it built is garbage now */
    return -1;
  }
  const char *full = lua_tostring(L, -1);
  if (full == NULL)
    full = "(no message)";
  const char *tb = strstr(full, "\nstack traceback:");
  int n = tb ? (int)(tb - full) : (int)strlen(full);
  snprintf(err, err_len, "%.*s", n, full);
  log_cb_failure(env, what, full);
  lua_pop(L, 1);
  return -1;
}

/* ------------------------------------------------------------ estimator */

typedef struct est_call {
  lstore *ls;
  const char *content;
  size_t len;
  uint64_t tokens;
  int done;
  char err[300];
} est_call;

/* Trampoline: (est_call, store) → calls estimator(content). Runs inside a
 * protected call; never raises except to pass mg.exit on. */
static int est_tramp(lua_State *L) {
  est_call *ec = lua_touserdata(L, 1);
  int is_exit;
  lua_getiuservalue(L, 2, UV_ESTIMATOR);
  lua_pushlstring(L, ec->content, ec->len);
  snprintf(ec->err, sizeof ec->err, "%s", "");
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' estimator", ec->ls->name);
  if (inner_call(L, 1, 1, what, ec->err, sizeof ec->err, &is_exit) < 0)
    return is_exit ? lua_error(L) : 0;
  lua_Integer t = -1;
  if (lua_type(L, -1) == LUA_TNUMBER && !get_int(L, -1, &t)) {
    double d = lua_tonumber(L, -1);
    t = d >= 0 && d < 9.2e18 ? (lua_Integer)ceil(d) : -1; /* round up */
  }
  if (t < 0) {
    snprintf(ec->err, sizeof ec->err,
             "store '%s' estimator must return a non-negative number of "
             "tokens, got %s",
             ec->ls->name, luaL_typename(L, -1));
    return 0;
  }
  ec->tokens = (uint64_t)t;
  ec->done = 1;
  return 0;
}

/* Estimate with the Lua estimator. Called with the store NOT locked, or
 * from inside a trampoline. 0 or -1 with err. */
static int estimate(lua_State *L, lstore *ls, int self, const void *content,
                    size_t len, uint64_t *out, char *err, size_t err_len) {
  est_call ec = {ls, content, len, 0, 0, ""};
  if (!lua_checkstack(L, 4)) {
    snprintf(err, err_len, "Lua stack overflow calling the estimator");
    return -1;
  }
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' estimator", ls->name);
  lua_pushcfunction(L, est_tramp);
  lua_pushlightuserdata(L, &ec);
  lua_pushvalue(L, self);
  mg_lua_call(L, 2, 0, what);
  if (!ec.done) {
    snprintf(err, err_len, "%s",
             ec.err[0] ? ec.err
                       : "the estimator could not run (see the "
                         "callback_failed log line)");
    return -1;
  }
  *out = ec.tokens;
  return 0;
}

/* ------------------------------------------------------------ views */

static lview *check_view(lua_State *L) {
  lview *v = luaL_checkudata(L, 1, VIEW_MT);
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
  if (!get_int(L, idx, &id))
    luaL_typeerror(L, idx, "integer message id");
  return id > 0 ? (uint64_t)id : 0;
}

/* view:len() → messages */
static int l_view_len(lua_State *L) {
  lview *v = check_view(L);
  push_u64(L, mg_store_len(v->s));
  return 1;
}

/* view:at(i) → message table (i = 1 oldest) | nil */
static int l_view_at(lua_State *L) {
  lview *v = check_view(L);
  mg_store_msg m;
  if (mg_store_at(v->s, check_pos(L, 2), &m) < 0)
    return 0;
  push_msg(L, &m);
  return 1;
}

/* view:info(i) → id, size, tokens, priority, pinned, time, group, role —
 * the fields a strategy ranks by, without building a table. */
static int l_view_info(lua_State *L) {
  lview *v = check_view(L);
  mg_store_msg m;
  if (mg_store_at(v->s, check_pos(L, 2), &m) < 0)
    return 0;
  push_u64(L, m.id);
  push_u64(L, m.size_bytes);
  push_u64(L, m.tokens);
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
  lview *v = check_view(L);
  mg_store_msg m;
  uint64_t id = check_id(L, 2);
  if (id == 0 || mg_store_get(v->s, id, &m) < 0)
    return 0;
  push_msg(L, &m);
  return 1;
}

static int view_iter(lua_State *L) {
  lview *v = check_view(L);
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(1));
  mg_store_msg m;
  if (mg_store_at(v->s, (uint64_t)i, &m) < 0)
    return 0;
  lua_pushinteger(L, i + 1);
  lua_replace(L, lua_upvalueindex(1));
  push_msg(L, &m);
  return 1;
}

/* view:messages() → iterator over message tables, oldest first */
static int l_view_messages(lua_State *L) {
  check_view(L);
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
  lview *v = check_view(L);
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
      push_u64(L, m.id);
      lua_rawseti(L, 1 + U_ID, u);
      lua_pushinteger(L, pos);
      lua_rawseti(L, 1 + U_FIRST, u);
      lua_pushinteger(L, 1);
      lua_rawseti(L, 1 + U_COUNT, u);
      push_u64(L, m.size_bytes);
      lua_rawseti(L, 1 + U_BYTES, u);
      push_u64(L, m.tokens);
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
  lview *v = check_view(L);
  mg_store_stats st;
  mg_store_get_stats(v->s, &st);
  push_stats(L, &st);
  return 1;
}

/* view:now() → unix seconds (the clock of message times) */
static int l_view_now(lua_State *L) {
  check_view(L);
  lua_pushnumber(L, unix_now());
  return 1;
}

/* __index: methods, `name`; anything else is an error that says why. */
static int l_view_index(lua_State *L) {
  lview *v = luaL_checkudata(L, 1, VIEW_MT);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "name") == 0) {
    check_view(L);
    lua_pushstring(L, mg_store_name(v->s));
    return 1;
  }
  return luaL_error(L,
                    "store view is read-only: it has no '%s' (a strategy "
                    "returns the ids to evict and an optional replacement; "
                    "it cannot change the store)",
                    k ? k : luaL_typename(L, 2));
}

static int l_view_newindex(lua_State *L) {
  return luaL_error(L, "store view is read-only");
}

static int l_view_tostring(lua_State *L) {
  lview *v = luaL_checkudata(L, 1, VIEW_MT);
  if (v->valid)
    lua_pushfstring(L, "mg.store.view '%s' (%d messages)", mg_store_name(v->s),
                    (int)mg_store_len(v->s));
  else
    lua_pushliteral(L, "mg.store.view (expired)");
  return 1;
}

/* ------------------------------------------------------------ strategy */

typedef struct strat_call {
  lstore *ls;
  const mg_store *view;
  const mg_store_need *need;
  mg_store_plan *plan;
  const lkeys *keys;
  int done;   /* the strategy ran and its answer was handed to the plan */
  int failed; /* err says why */
  char err[256];
} strat_call;

static int strat_fail(strat_call *sc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int strat_fail(strat_call *sc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sc->err, sizeof sc->err, fmt, ap);
  va_end(ap);
  sc->failed = 1;
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
      if (!get_int(L, -1, &id) || id <= 0)
        return strat_fail(sc,
                          "it returned a %s at position %lld of its list "
                          "(message ids are positive integers)",
                          luaL_typename(L, -1), (long long)i);
      lua_pop(L, 1);
      if (mg_store_plan_evict(sc->plan, (uint64_t)id) < 0)
        break; /* the plan says why */
    }
  }
  t = lua_type(L, repl);
  if (t == LUA_TTABLE) {
    lmsg m;
    char err[200];
    int kind = parse_msg(L, repl, sc->keys, &m, err, sizeof err);
    if (kind != PARSE_OK)
      return strat_fail(sc, "its replacement message is invalid: %s", err);
    if (!m.in.has_tokens && sc->ls->has_estimator) {
      if (estimate(L, sc->ls, self, m.in.content, m.in.content_len,
                   &m.in.tokens, err, sizeof err) < 0)
        return strat_fail(sc, "estimating its replacement: %s", err);
      m.in.has_tokens = 1;
    }
    mg_store_plan_replace(sc->plan, &m.in); /* errors poison the plan */
  } else if (t != LUA_TNIL) {
    return strat_fail(sc,
                      "its second result (the replacement) must be a message "
                      "table or nil, got %s",
                      luaL_typename(L, repl));
  }
  sc->done = 1;
  return 0;
}

/* Trampoline: (strat_call, store) → strategy(view, need); inside the
 * protected call of mg_lua_call. */
static int strat_tramp(lua_State *L) {
  strat_call *sc = lua_touserdata(L, 1);
  int is_exit;
  lview *v = lua_newuserdatauv(L, sizeof *v, 0); /* 3: anchored here */
  v->s = NULL;
  v->valid = 0;
  luaL_setmetatable(L, VIEW_MT);
  v->s = sc->view;
  v->valid = 1;
  lua_getiuservalue(L, 2, UV_STRATEGY);
  lua_pushvalue(L, 3);
  lua_createtable(L, 0, 5);
  mg_lua_setu64(L, "bytes", sc->need->bytes);
  if (sc->need->group_len) /* the core never evicts it for its own member */
    mg_lua_setstr(L, "group", sc->need->group);
  mg_lua_setu64(L, "count", sc->need->count);
  mg_lua_setu64(L, "tokens", sc->need->tokens);
  mg_lua_setstr(L, "limit_type", mg_store_limit_name(sc->need->limit_type));
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' strategy", sc->ls->name);
  int rc = inner_call(L, 2, 2, what, sc->err, sizeof sc->err, &is_exit);
  v->valid = 0; /* before anything else can run */
  if (rc < 0) {
    sc->failed = 1;
    return is_exit ? lua_error(L) : 0;
  }
  int top = lua_gettop(L);
  return strat_apply(L, sc, 2, top - 1, top);
}

/* mg_store_strategy_fn: runs with the store locked; must not raise. */
static int strategy_cb(void *ud, const mg_store *view,
                       const mg_store_need *need, mg_store_plan *plan,
                       char *err, size_t err_len) {
  lstore *ls = ud;
  lua_State *L = ls->L;
  strat_call sc = {ls, view, need, plan, NULL, 0, 0, ""};
  if (L == NULL || !lua_checkstack(L, 8))
    return mg_errf(err, err_len, MG_ESTRATEGY, "no Lua stack to run it on");
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' strategy", ls->name);
  sc.keys = ls->keys;
  lua_pushcfunction(L, strat_tramp);
  lua_pushlightuserdata(L, &sc);
  lua_pushvalue(L, ls->self);
  mg_lua_call(L, 2, 0, what);
  if (sc.done && !sc.failed)
    return 0;
  return mg_errf(err, err_len, MG_ESTRATEGY, "%s",
                 sc.err[0] ? sc.err
                           : "it could not be called (Lua memory cap or "
                             "budget; see the callback_failed log line)");
}

/* ------------------------------------------------------------ on_evict */

typedef struct evict_call {
  lstore *ls;
  const mg_store_batch *batch;
  mg_store_evict_reason reason;
  int done;
  char err[256];
} evict_call;

/* Trampoline: (evict_call, store) → on_evict(store, messages, reason).
 * An error or `false [, why]` refuses the eviction. */
static int evict_tramp(lua_State *L) {
  evict_call *ec = lua_touserdata(L, 1);
  int is_exit;
  size_t n = mg_store_batch_len(ec->batch);
  lua_getiuservalue(L, 2, UV_ON_EVICT);
  lua_pushvalue(L, 2);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    mg_store_msg m;
    if (mg_store_batch_at(ec->batch, i, &m) < 0)
      break;
    push_msg(L, &m);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushstring(L, mg_store_evict_reason_name(ec->reason));
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' on_evict", ec->ls->name);
  if (inner_call(L, 3, 2, what, ec->err, sizeof ec->err, &is_exit) < 0)
    return is_exit ? lua_error(L) : 0;
  if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) {
    const char *why = lua_tostring(L, -1);
    snprintf(ec->err, sizeof ec->err, "on_evict returned false%s%s",
             why ? ": " : "", why ? why : "");
    return 0;
  }
  ec->done = 1;
  return 0;
}

static int evict_cb(void *ud, const mg_store *view, const mg_store_batch *batch,
                    mg_store_evict_reason reason, char *err, size_t err_len) {
  lstore *ls = ud;
  lua_State *L = ls->L;
  evict_call ec = {ls, batch, reason, 0, ""};
  (void)view;
  if (L == NULL || !lua_checkstack(L, 8))
    return mg_errf(err, err_len, MG_ESTRATEGY, "no Lua stack to run it on");
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' on_evict", ls->name);
  lua_pushcfunction(L, evict_tramp);
  lua_pushlightuserdata(L, &ec);
  lua_pushvalue(L, ls->self);
  mg_lua_call(L, 2, 0, what);
  if (ec.done)
    return 0;
  return mg_errf(err, err_len, MG_ESTRATEGY, "%s",
                 ec.err[0] ? ec.err
                           : "on_evict could not be called (Lua memory cap or "
                             "budget; see the callback_failed log line)");
}

/* ------------------------------------------------------------ on_warn */

typedef struct warn_call {
  mg_store_warn_kind kind;
  const mg_store_stats *stats;
} warn_call;

/* Trampoline: (warn_call, store) → on_warn(store, kind, stats). Errors go
 * to mg_lua_call, which logs them. */
static int warn_tramp(lua_State *L) {
  warn_call *wc = lua_touserdata(L, 1);
  lua_getiuservalue(L, 2, UV_ON_WARN);
  lua_pushvalue(L, 2);
  lua_pushstring(L, mg_store_warn_name(wc->kind));
  push_stats(L, wc->stats);
  lua_call(L, 3, 0);
  return 0;
}

/* mg_store_warn_fn: runs after the store's lock was released. */
static void warn_cb(void *ud, mg_store *store, mg_store_warn_kind kind,
                    const mg_store_stats *stats) {
  lstore *ls = ud;
  lua_State *L = ls->L;
  warn_call wc = {kind, stats};
  if (ls->s == NULL) { /* mg_store_load warns before it returns the store */
    ls->s = store;
    snprintf(ls->name, sizeof ls->name, "%s", mg_store_name(store));
  }
  if (L == NULL || !lua_checkstack(L, 8))
    return;
  char what[MG_STORE_NAME_MAX + 32];
  snprintf(what, sizeof what, "store '%s' on_warn", ls->name);
  lua_pushcfunction(L, warn_tramp);
  lua_pushlightuserdata(L, &wc);
  lua_pushvalue(L, ls->self);
  mg_lua_call(L, 2, 0, what);
}

/* ------------------------------------------------------------ options */

#define OPTIONS_ACCEPTED                                                       \
  "name, max_messages, max_message_size, max_total_size, max_tokens, "         \
  "warn_at, on_full, strategy, on_warn, on_evict, archive, archive_fsync, "    \
  "estimator"
#define LIMITS_ACCEPTED                                                        \
  "max_messages, max_message_size, max_total_size, max_tokens, warn_at"

enum { G_COUNT = 1, G_MSGSIZE = 2, G_TOTAL = 4, G_TOKENS = 8, G_WARN = 16 };

static int field_error(lua_State *L, int arg, const char *field,
                       const char *expected, int v) {
  return luaL_argerror(L, arg,
                       lua_pushfstring(L, "field '%s' must be %s, got %s",
                                       field, expected, luaL_typename(L, v)));
}

/* A limit field k = value at v into *l. Returns 1 when k is not a limit,
 * 0 when set, -1 with err (nil, err for the caller). Raises on a wrong
 * type. */
static int limit_field(lua_State *L, int arg, const char *k, int v,
                       mg_store_limits *l, unsigned *given, char *err,
                       size_t len) {
  lua_Integer n;
  if (strcmp(k, "max_messages") == 0) {
    if (!get_int(L, v, &n))
      return field_error(L, arg, k, "an integer", v);
    if (n < (lua_Integer)MG_STORE_MIN_MAX_MESSAGES)
      return mg_errf(err, len, -EINVAL,
                     "max_messages %lld is below the minimum %u", (long long)n,
                     MG_STORE_MIN_MAX_MESSAGES);
    l->max_messages = (uint64_t)n;
    *given |= G_COUNT;
    return 0;
  }
  if (strcmp(k, "max_message_size") == 0 || strcmp(k, "max_total_size") == 0) {
    uint64_t b;
    if (mg_lua_check_size(L, v, k, &b, err, len) < 0)
      return -1;
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
    if (lua_type(L, v) == LUA_TBOOLEAN && !lua_toboolean(L, v)) {
      n = 0; /* false: no token limit */
    } else if (!get_int(L, v, &n)) {
      return field_error(L, arg, k, "an integer or false", v);
    } else if (n < 0) {
      return mg_errf(err, len, -EINVAL,
                     "max_tokens %lld is below the minimum 0 (0 or false: no "
                     "token limit)",
                     (long long)n);
    }
    l->max_tokens = (uint64_t)n;
    *given |= G_TOKENS;
    return 0;
  }
  if (strcmp(k, "warn_at") == 0) {
    if (lua_type(L, v) != LUA_TNUMBER)
      return field_error(L, arg, k, "a number (0 < warn_at <= 1)", v);
    l->warn_at = lua_tonumber(L, v);
    *given |= G_WARN;
    return 0;
  }
  return 1;
}

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
static void resolve_strategy(lua_State *L, int arg, int v, char *name,
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
    field_error(L, arg, "strategy",
                "\"oldest\", a built-in strategy name or a function", v);
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

static lstore *new_store_ud(lua_State *L, const lkeys *keys) {
  lstore *ls = lua_newuserdatauv(L, sizeof *ls, UV_COUNT);
  memset(ls, 0, sizeof *ls);
  ls->env = mg_lua_env_get(L);
  ls->keys = keys;
  luaL_setmetatable(L, STORE_MT);
  return ls;
}

/* mg.store{...} and mg.load_store(path, {...}): options at `oi`, the new
 * (closed) userdata at `self`. Returns 1 (the store) or 2 (nil, err). */
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
  lua_pushnil(L);
  while (lua_next(L, oi)) {
    int v = lua_gettop(L);
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_argerror(L, arg,
                           lua_pushfstring(L,
                                           "option names must be strings, "
                                           "got a %s key",
                                           luaL_typename(L, -2)));
    const char *k = lua_tostring(L, -2);
    int r = limit_field(L, arg, k, v, &lim, &given, err, sizeof err);
    if (r < 0)
      return mg_lua_fail(L, err);
    if (r == 0) {
    } else if (strcmp(k, "name") == 0) {
      if (lua_type(L, v) != LUA_TSTRING)
        return field_error(L, arg, k, "a string", v);
      o.name = lua_tostring(L, v);
    } else if (strcmp(k, "on_full") == 0) {
      const char *s = lua_type(L, v) == LUA_TSTRING ? lua_tostring(L, v) : "";
      if (strcmp(s, "error") == 0)
        o.on_full = MG_STORE_ON_FULL_ERROR;
      else if (strcmp(s, "prune") == 0)
        o.on_full = MG_STORE_ON_FULL_PRUNE;
      else
        return field_error(L, arg, k, "\"error\" or \"prune\"", v);
    } else if (strcmp(k, "strategy") == 0) {
      resolve_strategy(L, arg, v, ls->strategy_name, sizeof ls->strategy_name);
      lua_setiuservalue(L, self, UV_STRATEGY);
    } else if (strcmp(k, "on_warn") == 0 || strcmp(k, "on_evict") == 0 ||
               strcmp(k, "estimator") == 0) {
      if (lua_type(L, v) != LUA_TFUNCTION)
        return field_error(L, arg, k, "a function", v);
      lua_pushvalue(L, v);
      lua_setiuservalue(L, self,
                        k[0] == 'e'   ? UV_ESTIMATOR
                        : k[3] == 'w' ? UV_ON_WARN
                                      : UV_ON_EVICT);
    } else if (strcmp(k, "archive") == 0) {
      if (lua_type(L, v) != LUA_TSTRING)
        return field_error(L, arg, k, "a path (string)", v);
      o.archive_path = lua_tostring(L, v);
    } else if (strcmp(k, "archive_fsync") == 0) {
      if (lua_type(L, v) != LUA_TBOOLEAN)
        return field_error(L, arg, k, "a boolean", v);
      o.archive_fsync = lua_toboolean(L, v);
    } else {
      return luaL_argerror(L, arg,
                           lua_pushfstring(L,
                                           "unknown option '%s' (accepted: "
                                           "%s)",
                                           k, OPTIONS_ACCEPTED));
    }
    lua_settop(L, v - 1);
  }
  if (lua_getiuservalue(L, self, UV_STRATEGY) == LUA_TFUNCTION) {
    o.strategy = strategy_cb;
    o.strategy_ud = ls;
    o.strategy_name = ls->strategy_name;
  }
  if (lua_getiuservalue(L, self, UV_ON_WARN) == LUA_TFUNCTION) {
    o.on_warn = warn_cb;
    o.on_warn_ud = ls;
  }
  if (lua_getiuservalue(L, self, UV_ON_EVICT) == LUA_TFUNCTION) {
    o.on_evict = evict_cb;
    o.on_evict_ud = ls;
  }
  ls->has_estimator = lua_getiuservalue(L, self, UV_ESTIMATOR) == LUA_TFUNCTION;
  lua_pop(L, 4);
  snprintf(ls->name, sizeof ls->name, "%s", o.name ? o.name : "");
  lcall c;
  int rc;
  enter(ls, L, self, &c);
  if (path) {
    rc = mg_store_load(path, &o, &ls->s, err, sizeof err);
    if (rc == 0 && given) { /* limits given: they replace the file's */
      mg_store_limits cur;
      mg_store_get_limits(ls->s, &cur);
      if (given & G_COUNT)
        cur.max_messages = lim.max_messages;
      if (given & G_MSGSIZE)
        cur.max_message_size_bytes = lim.max_message_size_bytes;
      if (given & G_TOTAL)
        cur.max_total_size_bytes = lim.max_total_size_bytes;
      if (given & G_TOKENS)
        cur.max_tokens = lim.max_tokens;
      if (given & G_WARN)
        cur.warn_at = lim.warn_at;
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
    return mg_lua_fail(L, err);
  if (ls->s == NULL) /* on_warn closed it during the load */
    return mg_lua_fail(L, "the store was closed during its load (by on_warn)");
  snprintf(ls->name, sizeof ls->name, "%s", mg_store_name(ls->s));
  lua_pushvalue(L, self);
  return 1;
}

/* mg.store{ name, max_messages, max_message_size, max_total_size,
 * max_tokens, warn_at, on_full, strategy, on_warn, on_evict, archive,
 * archive_fsync, estimator } → store | nil, err */
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

/* mg.load_store(path [, opts]) → store | nil, err. opts as mg.store's;
 * limits given there replace the file's (as ctx:set_limits would). */
static int l_load_store(lua_State *L) {
  luaL_checkstring(L, 1);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  new_store_ud(L, keys_of(L));
  return open_store(L, 2, 2, 3, lua_tostring(L, 1));
}

/* ------------------------------------------------------------ methods */

/* ctx:add{ role=, content=, source=, group=, pinned=, priority=, tokens=,
 * meta= } → id | nil, err (a table for limit failures, else a string) */
static int l_add(lua_State *L) {
  lstore *ls = check_store(L);
  const lkeys *keys = keys_of(L);
  lmsg m;
  char err[256];
  int kind = parse_msg(L, 2, keys, &m, err, sizeof err);
  if (kind == PARSE_MISUSE)
    return luaL_argerror(L, 2, err);
  if (kind == PARSE_INVALID)
    return mg_lua_fail(L, err);
  if (!m.in.has_tokens && ls->has_estimator) {
    uint64_t tokens;
    char e2[300];
    if (estimate(L, ls, 1, m.in.content, m.in.content_len, &tokens, e2,
                 sizeof e2) < 0) {
      lua_settop(L, 2);
      return mg_lua_fail(
          L,
          lua_pushfstring(L, "store '%s': estimator failed: %s", ls->name, e2));
    }
    if (ls->s == NULL || ls->closing) /* the estimator closed it */
      return luaL_error(L, "store '%s' is closed", ls->name);
    /* read again: the estimator may have changed the table */
    lua_settop(L, 2);
    kind = parse_msg(L, 2, keys, &m, err, sizeof err);
    if (kind == PARSE_MISUSE)
      return luaL_argerror(L, 2, err);
    if (kind == PARSE_INVALID)
      return mg_lua_fail(L, err);
    if (!m.in.has_tokens) {
      m.in.has_tokens = 1;
      m.in.tokens = tokens;
    }
  }
  uint64_t id;
  mg_store_error e;
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_add(ls->s, &m.in, &id, &e);
  leave(ls, &c);
  if (rc == 0) {
    push_u64(L, id);
    return 1;
  }
  return push_add_error(L, &e);
}

static int push_msg_protected(lua_State *L) {
  push_msg(L, lua_touserdata(L, 1));
  return 1;
}

/* Push a message read outside a callback with the collector stopped: a
 * finalizer must not change the store while its view is being copied. */
static void push_msg_safe(lua_State *L, const mg_store_msg *m) {
  int running = lua_gc(L, LUA_GCISRUNNING);
  if (running)
    lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, push_msg_protected);
  lua_pushlightuserdata(L, (void *)m);
  int st = lua_pcall(L, 1, 1, 0);
  if (running)
    lua_gc(L, LUA_GCRESTART);
  if (st != LUA_OK)
    lua_error(L);
}

/* ctx:get(id) → message table | nil */
static int l_get(lua_State *L) {
  lstore *ls = check_store(L);
  uint64_t id = check_id(L, 2);
  mg_store_msg m;
  if (id == 0 || mg_store_get(ls->s, id, &m) < 0)
    return 0;
  push_msg_safe(L, &m);
  return 1;
}

/* ctx:remove(id) → true | nil, err (only that id: an explicit request
 * does not take its group along, and is not archived) */
static int l_remove(lua_State *L) {
  lstore *ls = check_store(L);
  uint64_t id = check_id(L, 2);
  char err[256];
  lcall c;
  enter(ls, L, 1, &c);
  int rc = id ? mg_store_remove(ls->s, id, err, sizeof err)
              : mg_errf(err, sizeof err, -ENOENT,
                        "store '%s' has no message "
                        "%lld",
                        ls->name, (long long)lua_tointeger(L, 2));
  leave(ls, &c);
  if (rc < 0)
    return mg_lua_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:len() / #ctx → number of messages */
static int l_len(lua_State *L) {
  lstore *ls = check_store(L);
  push_u64(L, mg_store_len(ls->s));
  return 1;
}

/* ctx:clear() → removed | nil, err (pinned messages too; not archived) */
static int l_clear(lua_State *L) {
  lstore *ls = check_store(L);
  uint64_t n = 0;
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_clear(ls->s, &n);
  leave(ls, &c);
  if (rc < 0)
    return mg_lua_fail(L, lua_pushfstring(L,
                                          "store '%s' is busy: no change "
                                          "from inside its own callback",
                                          ls->name));
  push_u64(L, n);
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
      push_msg_safe(L, &m);
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
  lstore *ls = check_store(L);
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
  lstore *ls = check_store(L);
  mg_store_stats st;
  mg_store_get_stats(ls->s, &st);
  push_stats(L, &st);
  return 1;
}

/* ctx:check() → true | nil, description */
static int l_check(lua_State *L) {
  lstore *ls = check_store(L);
  char err[512];
  if (mg_store_check(ls->s, err, sizeof err) < 0)
    return mg_lua_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:prune([keep_count]) → removed | nil, err. keep_count defaults to
 * max_messages // 2; negative or non-integer raises. */
static int l_prune(lua_State *L) {
  lstore *ls = check_store(L);
  uint64_t keep = MG_STORE_PRUNE_DEFAULT;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer k;
    if (!get_int(L, 2, &k) || k < 0)
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
    return mg_lua_fail(L, err);
  push_u64(L, removed);
  return 1;
}

/* ctx:make_room{bytes=, count=, tokens=} → removed | nil, err: run the
 * strategy as a full store would before an add. */
static int l_make_room(lua_State *L) {
  lstore *ls = check_store(L);
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
    if (!get_int(L, -1, &n) || n < 0)
      return field_error(L, 2, k, "a non-negative integer", lua_gettop(L));
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
    return mg_lua_fail(L, e.message);
  push_u64(L, removed);
  return 1;
}

/* ctx:save(path) → true | nil, err (crash-safe: temp file, fsync,
 * rename) */
static int l_save(lua_State *L) {
  lstore *ls = check_store(L);
  const char *path = luaL_checkstring(L, 2);
  char err[768];
  if (mg_store_save(ls->s, path, err, sizeof err) < 0)
    return mg_lua_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:set_limits{ max_messages=, max_message_size=, max_total_size=,
 * max_tokens=, warn_at= } → true | nil, err. Fields not given keep their
 * value; lowering below the current use evicts nothing. */
static int l_set_limits(lua_State *L) {
  lstore *ls = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  mg_store_limits lim;
  unsigned given = 0;
  char err[512];
  mg_store_get_limits(ls->s, &lim);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int r = limit_field(L, 2, k, lua_gettop(L), &lim, &given, err, sizeof err);
    if (r < 0)
      return mg_lua_fail(L, err);
    if (r > 0)
      return luaL_argerror(L, 2,
                           lua_pushfstring(L,
                                           "unknown limit '%s' (accepted: "
                                           "%s)",
                                           luaL_tolstring(L, -2, NULL),
                                           LIMITS_ACCEPTED));
    lua_pop(L, 1);
  }
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_set_limits(ls->s, &lim, err, sizeof err);
  leave(ls, &c);
  if (rc < 0)
    return mg_lua_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ctx:set_strategy(strategy) → true | nil, err (as the option) */
static int l_set_strategy(lua_State *L) {
  lstore *ls = check_store(L);
  char name[sizeof ls->strategy_name];
  lua_settop(L, 2);
  resolve_strategy(L, 2, 2, name, sizeof name);
  int is_lua = lua_isfunction(L, 3);
  lcall c;
  enter(ls, L, 1, &c);
  int rc = mg_store_set_strategy(ls->s, is_lua ? strategy_cb : NULL, ls, name);
  leave(ls, &c);
  if (rc < 0)
    return mg_lua_fail(L, lua_pushfstring(L,
                                          "store '%s' is busy: no change "
                                          "from inside its own callback",
                                          ls->name));
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 1, UV_STRATEGY);
  snprintf(ls->strategy_name, sizeof ls->strategy_name, "%s", name);
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc, __close and ctx:close(): free the store; idempotent. From inside
 * one of the store's callbacks the store is closed at once for Lua and
 * freed when the outermost call into it returns. */
static int l_close(lua_State *L) {
  lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  if (ls->s == NULL || ls->closing)
    return 0;
  if (ls->depth > 0) {
    ls->closing = 1;
    return 0;
  }
  store_release(L, ls, 1);
  return 0;
}

/* ctx.name, then the methods. */
static int l_store_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL)
    return 1; /* a method: the hot path, no check needed */
  lstore *ls = luaL_checkudata(L, 1, STORE_MT);
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

static int l_store_tostring(lua_State *L) {
  lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  if (ls->s == NULL || ls->closing)
    lua_pushfstring(L, "mg.store '%s' (closed)", ls->name);
  else
    lua_pushfstring(L, "mg.store '%s' (%I messages)", ls->name,
                    (lua_Integer)mg_store_len(ls->s));
  return 1;
}

/* mg.time() → unix seconds with a fraction (the clock of message times) */
static int l_time(lua_State *L) {
  lua_pushnumber(L, unix_now());
  return 1;
}

/* ------------------------------------------------------------ open */

static void open_keys(lua_State *L) {
  lkeys *k = lua_newuserdatauv(L, sizeof *k, 1);
  lua_createtable(L, F_COUNT, 0); /* anchors the interned names */
  for (int i = 0; i < F_COUNT; i++) {
    lua_pushstring(L, field_names[i]);
    k->p[i] = lua_tostring(L, -1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setiuservalue(L, -2, 1);
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
  static const luaL_Reg view_methods[] = {{"len", l_view_len},
                                          {"at", l_view_at},
                                          {"info", l_view_info},
                                          {"units", l_view_units},
                                          {"get", l_view_get},
                                          {"messages", l_view_messages},
                                          {"stats", l_view_stats},
                                          {"now", l_view_now},
                                          {NULL, NULL}};
  static const luaL_Reg fns[] = {
      {"store", l_store}, {"load_store", l_load_store}, {NULL, NULL}};
  int mod = lua_gettop(L);
  open_keys(L);
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
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_store_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  luaL_newmetatable(L, VIEW_MT);
  luaL_newlib(L, view_methods);
  lua_pushcclosure(L, l_view_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_view_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_view_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_view_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  luaL_newmetatable(L, ERROR_MT);
  lua_pushcfunction(L, l_error_tostring);
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
