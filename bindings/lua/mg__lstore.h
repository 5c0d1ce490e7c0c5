/* mg__lstore.h — what the files of the store's Lua binding share
 * (bindings layer, on libmg's mg_store_* only).
 *
 *   lmg_store.c       mg.store, mg.load_store, the store's methods
 *   lmg_store_opts.c  the options of mg.store / mg.load_store, the limits
 *   lmg_store_msg.c   messages in (Lua table → mg_store_input) and out
 *                     (message, stats and error tables)
 *   lmg_store_cb.c    the store's Lua callbacks: strategy, on_evict,
 *                     on_warn, estimator
 *   lmg_store_view.c  the read-only view a strategy sees
 *
 * Lifetime. The userdata holds the binding's state (lstore) directly: the
 * C store calls back only during a call made from Lua, so nothing can
 * reach the state after the userdata is gone. A close asked from inside
 * one of the store's own callbacks is deferred until the outermost call
 * into the store returns.
 *
 * Callbacks are Lua functions kept as uservalues of the store's userdata
 * (so a closure that captures the store does not keep it alive for ever).
 * C reaches them only through mg_lua_pcall (a budget of their own, the
 * memory cap, never raises): strategy and on_evict run with the store
 * locked, so while the store's code is on the C stack nothing here may
 * raise — each callback pushes only non-allocating values and lets a
 * trampoline, already inside the protected call, build the arguments and
 * call the user's function.
 */
#ifndef MG__LSTORE_H
#define MG__LSTORE_H

#include "lua/mg__lua.h"

#define MG_LSTORE_MT "mg.store"
#define MG_LSTORE_VIEW_MT "mg.store.view"
#define MG_LSTORE_ERROR_MT "mg.store.error"

/* Uservalues of a store userdata: its Lua callbacks. */
enum {
  MG_LSTORE_UV_STRATEGY = 1,
  MG_LSTORE_UV_ON_WARN,
  MG_LSTORE_UV_ON_EVICT,
  MG_LSTORE_UV_ESTIMATOR,
  MG_LSTORE_UV_COUNT = 4
};

/* Message fields, interned once per state: the add path compares key
 * pointers instead of hashing (short strings are unique in Lua 5.4). */
enum {
  MG_LF_ROLE,
  MG_LF_CONTENT,
  MG_LF_SOURCE,
  MG_LF_GROUP,
  MG_LF_PINNED,
  MG_LF_PRIORITY,
  MG_LF_TOKENS,
  MG_LF_META,
  MG_LF_COUNT
};
typedef struct mg_lstore_keys {
  const char *p[MG_LF_COUNT];
} mg_lstore_keys;

typedef struct mg_lstore {
  mg_store *s;       /* NULL once closed */
  mg_lua_env *env;   /* of the state that created it */
  lua_State *L;      /* thread of the call in progress: callbacks run there */
  int self;          /* stack index of this userdata in L during that call */
  int depth;         /* calls into the store in progress */
  int closing;       /* closed during a call: freed when depth drops to 0 */
  int has_estimator; /* a Lua estimator runs inside mg_store_add */
  char name[MG_NAME_MAX + 1];
  char strategy_name[64];
  const mg_lstore_keys *keys;
} mg_lstore;

/* A message being read from a Lua table. Its strings are borrowed from
 * the table; when Lua code can run before the store has copied them (an
 * estimator, a strategy's replacement), set `anchor` to the stack index of
 * a table that keeps every borrowed string alive, whatever that code does
 * to the message table. */
typedef struct mg_lstore_msg {
  mg_store_input in;
  mg_store_meta meta[MG_STORE_META_MAX];
  int anchor; /* 0: none */
  int anchored;
} mg_lstore_msg;

/* ---- lmg_store_opts.c */

#define MG_LSTORE_LIMITS_ACCEPTED                                              \
  "max_messages, max_message_size, max_total_size, max_tokens, warn_at"
/* Which limits a table gave (bits). */
enum { G_COUNT = 1, G_MSGSIZE = 2, G_TOTAL = 4, G_TOKENS = 8, G_WARN = 16 };
/* Raise: "field 'F' must be EXPECTED, got TYPE" for argument `arg`. */
int mg_lstore_field_error(lua_State *L, int arg, const char *field,
                          const char *expected, int v);
/* A limit field k = value at v into *l. 1 when k is not a limit, 0 when
 * set, a negative code with err. Raises on a wrong type. */
int mg_lstore_limit_field(lua_State *L, int arg, const char *k, int v,
                          mg_store_limits *l, unsigned *given, char *err,
                          size_t len);
/* Read mg.store's / mg.load_store's options table at `oi` into *o, *lim,
 * *given and the callbacks into the uservalues of the userdata at `self`;
 * leaves an anchor table on the stack that keeps the borrowed strings
 * alive. 0, or a negative code with err; raises on misuse. */
int mg_lstore_read_options(lua_State *L, int arg, int oi, int self,
                           mg_lstore *ls, mg_store_options *o,
                           mg_store_limits *lim, unsigned *given, char *err,
                           size_t len);
/* Limits given to mg.load_store replace the file's. */
void mg_lstore_merge_limits(mg_store_limits *cur, const mg_store_limits *lim,
                            unsigned given);

/* ---- lmg_store_msg.c */

enum { MG_LPARSE_OK = 0, MG_LPARSE_MISUSE = 1, MG_LPARSE_INVALID = 2 };
/* Read the message table at idx into *m (strings are borrowed from the
 * table, which the caller keeps on the stack). Leaves extra values on the
 * stack. MG_LPARSE_OK, MG_LPARSE_MISUSE (wrong types, unknown fields) or
 * MG_LPARSE_INVALID (data the store refuses), with a message in err. */
int mg_lstore_parse_msg(lua_State *L, int idx, const mg_lstore_keys *keys,
                        mg_lstore_msg *m, char *err, size_t len);
/* A message (copied) as a table. */
void mg_lstore_push_msg(lua_State *L, const mg_store_msg *m);
/* The same, outside a callback, with the collector stopped (a finalizer
 * must not change the store while its view is copied); may raise. */
void mg_lstore_push_msg_safe(lua_State *L, const mg_store_msg *m);
void mg_lstore_push_stats(lua_State *L, const mg_store_stats *st);
/* nil, err, code for a failed add: err is a table {limit_type, current,
 * limit, details, message, code} with a __tostring and code the
 * limit_type for limit failures; else a string and the error's name. */
int mg_lstore_push_add_error(lua_State *L, const mg_store_error *e);
/* An integer-valued number at idx (1.0 counts; 1.5 does not). */
int mg_lstore_get_int(lua_State *L, int idx, lua_Integer *out);
/* __tostring of the error tables. */
int mg_lstore_error_tostring(lua_State *L);
/* Intern the field names: pushes their anchor userdata. */
const mg_lstore_keys *mg_lstore_open_keys(lua_State *L);
double mg_lstore_unix_now(void);

/* ---- lmg_store_cb.c (the mg_store_* callback functions; ud = lstore) */

int mg_lstore_strategy_cb(void *ud, const mg_store *view,
                          const mg_store_need *need, mg_store_plan *plan,
                          char *err, size_t err_len);
int mg_lstore_evict_cb(void *ud, const mg_store *view,
                       const mg_store_batch *batch,
                       mg_store_evict_reason reason, char *err, size_t err_len);
void mg_lstore_warn_cb(void *ud, mg_store *store, mg_store_warn_kind kind,
                       const mg_store_stats *stats);
/* Resolve the strategy value at v: nil, "oldest" or mg.strategies.oldest
 * → the built-in C fast path (pushes nil); another built-in name → its
 * function in mg.strategies.builtin; a function → itself. Pushes the Lua
 * function (or nil) and writes its name (for messages) into name. Raises
 * for anything else (argument `arg`). */
void mg_lstore_resolve_strategy(lua_State *L, int arg, int v, char *name,
                                size_t len);
/* mg_store_estimate_fn: the store's Lua estimator, run by the core on the
 * message's content (0 with *tokens, or a negative code with err). */
int mg_lstore_estimate_cb(void *ud, const mg_store_input *in, uint64_t *tokens,
                          char *err, size_t err_len);

/* ---- lmg_store_view.c */

/* Push a new view of `s` for a strategy; valid until mg_lstore_view_end. */
void mg_lstore_view_push(lua_State *L, const mg_store *s);
/* Invalidate the view at idx (no allocation, never raises). */
void mg_lstore_view_end(lua_State *L, int idx);
void mg_lstore_open_view(lua_State *L);

#endif
