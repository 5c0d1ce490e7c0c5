/* mg_lua.h — the `mg` Lua module as the runtime host sees it (bindings
 * layer). This is the whole interface between the host and the bindings:
 * create a Lua state with its environment from a config, open the module,
 * set budgets, run the policy's top level, ask for and observe shutdown,
 * free. The environment is opaque here; the binding files share its
 * definition through mg__lua.h.
 *
 *   mg_lua_config c;
 *   mg_lua_config_init(&c);
 *   c.loop = loop; c.sup = sup; c.logger = log; c.mem_max_bytes = 64 << 20;
 *   lua_State *L; mg_lua_env *env;
 *   mg_lua_new(&c, &L, &env, err, sizeof err);   // capped allocator, env
 *   luaL_openlibs(L);                             // or the sandbox's set
 *   mg_lua_open(L);                               // the global `mg`
 *   luaL_loadfile(L, "policy.lua");
 *   mg_lua_run_top(env, 0, 0, err, sizeof err);   // its top level
 *   ... run the loop ...
 *   mg_lua_shutdown(env);                         // close every handle
 *   mg_lua_close(env);                            // lua_close + free
 *
 * A state the caller made and keeps (a stock lua5.4's, for mg.so) gets
 * the same bindings with mg_lua_attach instead of mg_lua_new, and
 * mg_lua_push instead of mg_lua_open (no global is set); mg_lua_close
 * then gives the state back as it found it, without closing it.
 *
 * Every call from C into Lua (timers, signals, process events, store
 * callbacks) is a protected call of its own: lua_pcall with a traceback
 * handler, a fresh budget (instructions, wall clock) and the state's
 * memory cap — also when it is nested in another call or in the top
 * level; what a nested call uses is not charged to its caller. No Lua
 * error ever escapes into C, and none longjmps through libuv.
 */
#ifndef MG_LUA_H
#define MG_LUA_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mg/mg.h"

struct mg_sup;
typedef struct mg_lua_env mg_lua_env;

/* The budget of one callback. 0 disables that part. */
/* What the bindings accept as budgets and caps — the one rule, which the
 * host's options (mg_runtime_opts_set, mgrun's command line) and mg.so's
 * mg.configure check against: a wall-clock budget of at most a week
 * (longer would overflow the clock arithmetic of the budget hook), and a
 * Lua memory cap of 0 (none) or at least 1 MiB. */
#define MG_LUA_MAX_BUDGET_MS (7ull * 24 * 3600 * 1000)
#define MG_LUA_MIN_MEM ((uint64_t)1 << 20)

typedef struct mg_lua_budget {
  uint64_t timeout_ms;   /* wall clock */
  uint64_t instructions; /* Lua VM instructions */
} mg_lua_budget;

typedef struct mg_lua_config {
  uv_loop_t *loop;           /* required; borrowed for the env's life */
  mg_logger *logger;         /* borrowed; NULL drops log lines */
  struct mg_sup *sup;        /* borrowed; NULL: mg.spawn says why not */
  const char *sup_error;     /* why there is no supervisor (copied) */
  mg_paths paths;            /* probe roots (copied); zero = the system */
  const char *cgroup_parent; /* for mg.probe() (copied) */
  int check_only;            /* mgrun --check: validate, start nothing */
  size_t mem_max_bytes;      /* cap of the Lua state; 0 = none */
  mg_lua_budget callback;    /* budget of every callback */
  /* The sandbox boundary (see docs/lua-api.md "Sandbox"): with `sandbox`
   * set, mg.spawn runs only the programs in allow_spawn (absolute paths,
   * NULL-terminated; NULL = none) and every path the API reads or writes
   * (snapshots, archives, a child's cwd and output files) must lie in one
   * of allow_dirs (NULL-terminated; NULL = none). Both are copied. */
  int sandbox;
  const char *const *allow_spawn;
  const char *const *allow_dirs;
  /* Called once when the policy asks to exit (mg.exit, os.exit), from
   * inside the call that asked; the host starts its shutdown there. */
  void (*on_exit)(void *ud, int code);
  /* Attached states only (optional): mg.exit was called, or a callback
   * that called it returned, where no protected call of the bindings
   * surrounds the code (the program's own top level); on_exit has been
   * called. The host may finish the shutdown and end the process here;
   * if it returns, the exit sentinel is raised into that code. */
  void (*exit_unwind)(void *ud, int code);
  void *ud;
} mg_lua_config;

/* Zero `c` and set the defaults: no cap, no budget, no sandbox. */
void mg_lua_config_init(mg_lua_config *c);

/* Create a Lua state whose allocator enforces the memory cap, and its
 * environment. Opens no library. *L and *env are owned by the caller and
 * released together by mg_lua_close. Fails with -EINVAL (a missing loop,
 * an allowed path that cannot be resolved: err says which) or -ENOMEM. */
int mg_lua_new(const mg_lua_config *c, lua_State **L, mg_lua_env **env,
               char *err, size_t err_len);

/* Give the bindings a state the caller owns and keeps (the bindings never
 * close it): its allocator is wrapped by the capped one, counting from
 * what the state holds now (lua_gc COUNT/COUNTB); the budget hook is set
 * on L and on the state's main thread, whose stack callbacks run on; the
 * env is recorded in the registry ("mg.env"). Callbacks get the budgets
 * and cap of `c`, as in a state of mg_lua_new. Budget messages name
 * mg.configure's fields instead of mgrun's options, and the module gets
 * mg.configure. mg_lua_close(*env) detaches: handles closed, the hook
 * taken off, the registry entry removed, the allocator given back (if
 * nothing wrapped it again meanwhile; else ours stays as a pass-through
 * and its env is not freed). Detach only when no object of the module
 * can be used any more — from a finalizer during lua_close made before
 * the first mg object, as mg.so does. Fails with -EBUSY when the state
 * has the bindings already (mgrun's own state, an earlier attach),
 * -EINVAL, -ENOMEM; never raises. */
int mg_lua_attach(lua_State *L, const mg_lua_config *c, mg_lua_env **env,
                  char *err, size_t err_len);

/* Build the `mg` table, set it as global `mg` and package.loaded.mg. Call
 * once, after the standard libraries are open. */
void mg_lua_open(lua_State *L);
/* Build the `mg` table and leave it on the stack (nothing global): for a
 * module's luaopen_ function. May raise (memory). */
void mg_lua_push(lua_State *L);

/* The environment of a state made by mg_lua_new or attached to (of any
 * of its threads); NULL for one without the bindings. */
mg_lua_env *mg_lua_env_of(lua_State *L);

/* Is a protected call of the bindings in progress (a callback, a store's
 * strategy)? The host refuses to run its loop from inside one. */
int mg_lua_in_call(const mg_lua_env *env);
lua_State *mg_lua_state(const mg_lua_env *env);

/* Change the budget of later callbacks. */
void mg_lua_set_budget(mg_lua_env *env, const mg_lua_budget *b);

/* Run the function below `nargs` arguments on the stack as the policy's
 * top level: a protected call with a traceback handler under a wall-clock
 * budget of `timeout_ms` (0 = none; no instruction budget). Callbacks it
 * reaches (a store's strategy, say) have budgets of their own. While it
 * runs, `poll` (if set) is called every `poll_ms` milliseconds of Lua
 * execution; when it returns non-zero the top level is interrupted (an
 * error "interrupted" that its own pcalls cannot swallow). Returns
 * MG_LUA_OK, MG_LUA_EXIT (mg.exit was called) or MG_LUA_ERROR with
 * "file:line: message" and a traceback in err. Never raises. */
enum {
  MG_LUA_OK = 0,
  MG_LUA_ERROR = 1, /* a Lua error, a budget, the memory cap */
  MG_LUA_EXIT = 2   /* mg.exit() was called: not an error */
};
int mg_lua_run_top(mg_lua_env *env, int nargs, uint64_t timeout_ms,
                   int (*poll)(void *ud), void *poll_ud, uint64_t poll_ms,
                   char *err, size_t err_len);

/* Close every handle of the module (timers, signal handlers): nothing of
 * the policy's runs after this returns (close callbacks run when the loop
 * next runs). Children are the supervisor's: the host stops them.
 * Idempotent. */
void mg_lua_shutdown(mg_lua_env *env);

/* The host asks for shutdown (a signal, mg_runtime_shutdown): records the
 * exit code as mg.exit would, without calling on_exit. */
void mg_lua_request_exit(mg_lua_env *env, int code);
/* Has an exit been asked for (by the policy or the host)? *code gets it. */
int mg_lua_exit_requested(const mg_lua_env *env, int *code);

/* How many policy handlers `signum` has now (the host's default for INT
 * and TERM steps aside while there is one). */
int mg_lua_signal_handlers(const mg_lua_env *env, int signum);

/* Callbacks that failed (errors, budgets, memory cap) so far. */
unsigned long mg_lua_callback_errors(const mg_lua_env *env);

/* Protected calls so far (every callback, store strategy, estimator…; not
 * the top level), those that failed, and those of them stopped by a
 * budget: the instruction budget, the wall-clock budget (also the chain
 * of a call's nested calls, by whichever of the two it passed), the
 * memory cap. For the host's metrics. */
typedef struct mg_lua_callback_stats {
  uint64_t calls;
  uint64_t failed;
  uint64_t stopped_instructions, stopped_timeout, stopped_memory;
} mg_lua_callback_stats;
void mg_lua_callback_stats_get(const mg_lua_env *env,
                               mg_lua_callback_stats *out);

/* The registry of the policy's own metrics (mg.metrics.gauge/counter):
 * one per env, made with it and freed by mg_lua_close, so that two
 * runtimes never share one. The host renders it after its built-ins. */
struct mg_metrics;
struct mg_metrics *mg_lua_metrics(mg_lua_env *env);
/* Bytes the Lua state holds now; *peak (may be NULL) the most it held. */
size_t mg_lua_mem(const mg_lua_env *env, size_t *peak);

/* lua_close the state, then free the environment. NULL is a no-op. */
/* The policy's open store named `name`, for the host: *out gets a new
 * reference (mg_store_free drops it). The store stays the policy's: when
 * the policy closes it or lets it be collected, the host's calls fail
 * with MG_ECLOSED. Errors: -ENOENT (no open store of that name), -EEXIST
 * (several: the message says to name them apart). Call it on the thread
 * that runs the state (the host serialises). */
int mg_lua_store_find(mg_lua_env *env, const char *name, mg_store **out,
                      char *err, size_t err_len);

/* Call fn(name, store, ud) for each store the policy has open (in no
 * particular order; fn must not call into Lua nor open or close a store);
 * returns how many. For the host's metrics and timeline. */
size_t mg_lua_store_each(mg_lua_env *env,
                         void (*fn)(const char *name, const mg_store *s,
                                    void *ud),
                         void *ud);

/* Run op(s, ud) — a change of store `s` made by the host, not by Lua — so
 * that the store's Lua callbacks (strategy, estimator, on_evict, on_warn)
 * run on the state's main thread, each with its own budget, exactly as for
 * a call from Lua; a store a callback closed is released afterwards.
 * Returns op's result. On the thread that runs the state. */
int mg_lua_store_call(mg_lua_env *env, mg_store *s,
                      int (*op)(mg_store *s, void *ud), void *ud);

/* ---- The policy's side of the control socket (lmg_control.c): its own
 * commands (mg.on_control) and its reload handler (mg.on_reload).
 *
 * The built-in commands of the host's socket, which a policy's command
 * cannot be named (with the verbs of `mgrun ctl` that map onto them). */
#define MG_LUA_CONTROL_BUILTINS                                                \
  "hello", "status", "set-limit", "stop", "restart", "store-stats", "stats",   \
      "reload", "subscribe", "events", "health", "help", "version"
#define MG_LUA_CONTROL_BUILTINS_TEXT                                           \
  "hello, status, set-limit, stop, restart, store-stats, stats, reload, "      \
  "subscribe, events, health, help, version"
#define MG_LUA_CONTROL_MAX 64   /* commands a policy may add */
#define MG_LUA_CONTROL_DEPTH 32 /* nesting of a command's result */

struct json_t;

/* Is `name` one of MG_LUA_CONTROL_BUILTINS? */
int mg_lua_control_builtin(const char *name);
/* Is `name` a command of the policy? */
int mg_lua_control_has(mg_lua_env *env, const char *name);
/* fn(name, ud) for each command of the policy, sorted by name (fn must
 * not call into Lua); returns how many. */
size_t mg_lua_control_each(mg_lua_env *env,
                           void (*fn)(const char *name, void *ud), void *ud);
/* Run the policy's command `name` with `args` (a JSON object or array,
 * made into the function's one argument, a table; NULL: an empty table)
 * in a protected call with the callback budget; *result gets a new
 * reference to its result as JSON (null when it returned nothing; see
 * lmg_control.c for what converts). Returns 0, 1 when the command called
 * mg.exit (the shutdown has begun), or a negative code with err saying
 * why and `code` (caller-owned, ~32 bytes) the protocol's code: ENOENT
 * (no such command), ESHUTDOWN (the policy's handlers no longer run),
 * EBUSY (inside a callback), EPOLICY (it raised an error, or a result
 * that does not convert), EBUDGET (stopped by its budget or the memory
 * cap), or the code the function returned with nil, message, code. On
 * the thread that runs the state. */
int mg_lua_control_call(mg_lua_env *env, const char *name,
                        const struct json_t *args, struct json_t **result,
                        char *code, size_t code_len, char *err, size_t err_len);
/* Does the policy have a reload handler? */
int mg_lua_reload_handler(const mg_lua_env *env);
/* Run the reload handler, fn(), as mg_lua_control_call runs a command
 * (ENOENT when there is none). */
int mg_lua_reload(mg_lua_env *env, struct json_t **result, char *code,
                  size_t code_len, char *err, size_t err_len);

void mg_lua_close(mg_lua_env *env);

#endif
