/* mg_lua.h — the `mg` Lua module's shared glue (bindings layer).
 *
 * The bindings sit on libmg (core) and libuv (supervisor layer) and use
 * only the public Lua C API. The runtime host above creates one mg_lua_env
 * per lua_State, fills in the loop, logger and budgets, and calls
 * mg_lua_open(); every file of this folder reaches the env through
 * mg_lua_env_get(). Every call from C into Lua goes through mg_lua_call(),
 * which never lets a Lua error escape.
 */
#ifndef MG_LUA_H
#define MG_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mg/mg.h"

/* A libuv handle owned by the bindings (timer, signal…). Lives on the
 * heap, not in the userdata, because libuv may touch it after Lua lets go:
 * it is freed once both the userdata (__gc) and libuv (close callback)
 * are done with it. */
typedef struct mg_lua_handle mg_lua_handle;
struct mg_lua_handle {
  union {
    uv_handle_t handle;
    uv_timer_t timer;
    uv_signal_t signal;
  } u;
  struct mg_lua_env *env;
  mg_lua_handle *prev, *next; /* env->handles: open handles of this state */
  const char *kind;           /* "timer", "signal" */
  int cb_ref;                 /* registry ref of the Lua callback */
  int self_ref;               /* registry ref of the userdata while active */
  int refs;                   /* 2 while userdata and uv both hold it */
  int closing;                /* uv_close called */
  int oneshot;                /* mg.after: close after the first call */
  int signum;                 /* signal handles */
  uint64_t repeat_ms;
};

/* Per-state environment, set up by the runtime host. */
typedef struct mg_lua_env {
  lua_State *L;
  uv_loop_t *loop;
  mg_logger *logger; /* may be NULL: log lines are dropped */
  mg_paths paths;    /* probe roots (NULL fields: the real system) */
  const char *cgroup_parent;
  int check_only; /* mgrun --check: validate everything, start nothing */

  /* Budget of every callback; 0 disables that part. */
  uint64_t cb_timeout_ms;
  uint64_t cb_instructions;

  /* Memory cap of the Lua state (the host's allocator reads these). */
  size_t mem_used;
  size_t mem_max; /* 0: no cap */
  size_t mem_peak;
  int mem_capped; /* cap enforced now (lifted while C glue runs) */

  /* Per-call budget state (used by the count hook). */
  uint64_t call_deadline_ns;
  uint64_t call_insn_used;
  uint64_t call_budget_ms;
  int call_active; /* a budgeted call is running */
  int call_is_setup; /* it is the policy's top level (--setup-timeout) */
  int call_over;   /* budget exhausted: the hook raises on every instruction */
  char call_over_why[160];
  volatile int interrupted; /* set from a signal handler: raise "interrupted" */

  /* mg.exit and shutdown. */
  int exit_requested;
  int exit_code;
  int exit_notified;
  void (*on_exit)(struct mg_lua_env *env, int code); /* set by the host */
  void *host;                                        /* the host's pointer */

  /* How many policy handlers each signal has (the host's default for INT
   * and TERM steps aside while there is one). */
  int signal_handlers[64];

  mg_lua_handle *handles; /* every open handle, for shutdown */
  unsigned long callback_errors;

  /* Processes (lmg_spawn.c): the supervisor, created at the first
   * mg.spawn (the host shuts it down and frees it), and the processes
   * not yet closed, in spawn order. */
  struct mg_sup *sup;
  struct mg_lua_proc *procs;

  /* Cached cgroup detection for mg.memory(). */
  int cg_cached;
  mg_cgroup_info cg;
} mg_lua_env;

/* Registry key of the env (a light userdata). */
extern const char mg_lua_env_key;

/* Open the module: build the `mg` table, set it as global `mg` and as
 * package.loaded.mg. `env` is caller-owned and must outlive the state. */
void mg_lua_open(lua_State *L, mg_lua_env *env);

/* The env of `L` (never NULL once mg_lua_open ran). */
mg_lua_env *mg_lua_env_get(lua_State *L);

/* Status of mg_lua_call. */
enum {
  MG_LUA_OK = 0,
  MG_LUA_ERROR = 1, /* a Lua error: logged with its traceback */
  MG_LUA_EXIT = 2   /* mg.exit() was called: not an error */
};

/* Call the function below `nargs` arguments on the stack under
 * lua_pcall with a traceback handler and the callback budget. `what`
 * names the callback in the log ("timer", "signal INT"). On error the
 * message and traceback are logged as event `callback_failed` and the
 * stack is left as if the call returned no results (nresults must then be
 * ignored: 0 values are pushed). Never raises. */
int mg_lua_call(lua_State *L, int nargs, int nresults, const char *what);

/* Like mg_lua_call but returns the error text (with traceback) in `err`
 * instead of logging it; for loading a policy's top level. `budget` 0
 * runs without the callback budget. */
int mg_lua_pcall_top(lua_State *L, int nargs, int budget, char *err,
                     size_t err_len);

/* Raise the mg.exit sentinel (does not return). */
int mg_lua_raise_exit(lua_State *L);
/* Is the value at `idx` the mg.exit sentinel? */
int mg_lua_is_exit(lua_State *L, int idx);

/* Install the budget hook on `L` (done by mg_lua_open). */
void mg_lua_install_hook(lua_State *L);

/* Close every handle of the env (shutdown); safe to call twice. */
void mg_lua_close_handles(mg_lua_env *env);

/* Argument helpers shared by the binding files. */
/* A size argument: integer bytes or a size string; raises on a wrong
 * type; returns 0 or fills err (nil, err is for the caller to push). */
int mg_lua_check_size(lua_State *L, int idx, const char *argname, uint64_t *out,
                      char *err, size_t err_len);
/* Effective total memory (bytes) for "%" sizes; 0 if unknown. */
uint64_t mg_lua_effective_total(lua_State *L);
/* Push nil, msg and return 2. */
int mg_lua_fail(lua_State *L, const char *msg);
/* Set t[k] = v for integer / string / number / boolean on table at -1. */
void mg_lua_setint(lua_State *L, const char *k, lua_Integer v);
void mg_lua_setu64(lua_State *L, const char *k, uint64_t v);
void mg_lua_setstr(lua_State *L, const char *k, const char *v);
void mg_lua_setnum(lua_State *L, const char *k, double v);
void mg_lua_setbool(lua_State *L, const char *k, int v);
/* Convert a jansson json_t* (as void*) to a Lua value on the stack
 * (objects → tables, arrays → sequences, null → nil). */
void mg_lua_push_json(lua_State *L, const void *json);

/* Registration of each binding file into the module table at -1. */
void mg_lua_open_size(lua_State *L);
void mg_lua_open_probe(lua_State *L);
void mg_lua_open_limits(lua_State *L);
void mg_lua_open_loop(lua_State *L);
void mg_lua_open_log(lua_State *L);
void mg_lua_open_store(lua_State *L);
void mg_lua_open_spawn(lua_State *L);

#endif
