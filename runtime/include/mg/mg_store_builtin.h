/* mg_store_builtin.h — the shipped pruning strategies of the context store,
 * in C, chosen by name (core layer).
 *
 * The same strategies as the Lua library `mg.strategies` (scripts/mg/
 * strategies.lua), choosing exactly the same messages, for hosts that have
 * no Lua state to run those in (a C host, the Python package):
 *
 *   "oldest"                   oldest units first until `need` is met (the
 *                              store's own C fast path: no strategy is set)
 *   "keep_last(N)"             everything but the newest N unpinned
 *                              messages, at once, and more if need asks
 *   "lowest_priority_first"    lowest priority first (a group counts with
 *                              its highest member), oldest first among equals
 *   "older_than(S)"            every unit whose newest message is older than
 *   "older_than(S, strict)"    S seconds, then oldest first — unless strict
 *   "token_budget(N)"          oldest first until the store holds at most N
 *                              tokens (before the new message) and need is met
 *   "user_turn_start"          oldest first until need is met, then on until
 *                              the kept history starts on a "user" turn
 *
 * Every one thinks in units (mg_ffi.h: a message without group, or a whole
 * group) and never chooses a unit with a pinned member or the group of the
 * message being added. Summarize-and-replace needs a summarizer and so is
 * not here: a binding builds it on mg_store_units and mg_store_plan_replace.
 */
#ifndef MG_STORE_BUILTIN_H
#define MG_STORE_BUILTIN_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#include "mg/mg_store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_store_builtin_kind {
  MG_STRATEGY_OLDEST = 0,
  MG_STRATEGY_KEEP_LAST = 1,
  MG_STRATEGY_LOWEST_PRIORITY_FIRST = 2,
  MG_STRATEGY_OLDER_THAN = 3,
  MG_STRATEGY_TOKEN_BUDGET = 4,
  MG_STRATEGY_USER_TURN_START = 5
} mg_store_builtin_kind;

/* What mg_store_builtin_parse accepts, for error messages. */
#define MG_STORE_BUILTIN_ACCEPTED                                              \
  "oldest, keep_last(N), lowest_priority_first, older_than(SECONDS), "         \
  "older_than(SECONDS, strict), token_budget(N), user_turn_start"

/* A parsed strategy. Plain data, the caller's; it is the `ud` of
 * mg_store_builtin_strategy and must outlive the store that uses it. */
typedef struct mg_store_builtin {
  mg_store_builtin_kind kind;
  uint64_t n;     /* keep_last: messages kept; token_budget: max tokens */
  double seconds; /* older_than: age in seconds */
  int strict;     /* older_than: fail rather than fall back on oldest */
  double now;     /* older_than: the clock in unix seconds; 0 = real time
                     (CLOCK_REALTIME, the clock of message times) */
  char name[64];  /* canonical name for messages: "keep_last(200)" */
} mg_store_builtin;

/* Parse `spec` (one of MG_STORE_BUILTIN_ACCEPTED; spaces around the
 * parentheses and the comma are allowed; N is a non-negative integer up to
 * 2^63 - 1, SECONDS a non-negative finite number) into *out. -EINVAL with
 * err quoting the spec and saying what is accepted. Nothing is owned. */
MG_API int mg_store_builtin_parse(const char *spec, mg_store_builtin *out,
                                  char *err, size_t err_len);

/* The strategy itself (an mg_store_strategy_fn): `ud` is a
 * const mg_store_builtin *. Returns 0 with the plan filled (too little
 * freed is left for the store to report), or -ENOMEM with err. */
MG_API int mg_store_builtin_strategy(void *ud, const mg_store *view,
                                     const mg_store_need *need,
                                     mg_store_plan *plan, char *err,
                                     size_t err_len);

/* Set the strategy of `opts` (strategy, strategy_ud, strategy_name) to
 * `b` (borrowed: it must outlive the store). "oldest" sets no strategy,
 * so the store uses its C fast path. */
MG_API void mg_store_builtin_options(const mg_store_builtin *b,
                                     mg_store_options *opts);

/* The same on a live store (mg_store_set_strategy). */
MG_API int mg_store_builtin_set(mg_store *s, const mg_store_builtin *b);

#ifdef __cplusplus
}
#endif
#endif
