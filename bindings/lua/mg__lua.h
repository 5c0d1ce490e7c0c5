/* mg__lua.h — what the files of the `mg` Lua module share (bindings
 * layer; not for the host, which sees only mg_lua.h).
 *
 *   lmg.c          the environment, the module table, mg.exit, helpers
 *   lmg_attach.c   the environment of a state the bindings did not make
 *                  (mg.so in a stock lua5.4): attach, detach, mg.configure
 *   lmg_call.c     the protected call: one implementation for every
 *                  C → Lua call (budgets, memory cap, traceback, logging)
 *   lmg_sandbox.c  the sandbox boundary: allowed programs and directories
 *   lmg_size.c, lmg_probe.c, lmg_limits.c, lmg_log.c, lmg_loop.c,
 *   lmg_spawn.c, lmg_store*.c, lmg_metrics.c, lmg_control.c   one file
 *                  per part of the Lua API
 *
 * Rules every binding file follows: every method checks its receiver
 * (mg_lua_check_self) and its arguments; misuse raises an error naming the
 * argument; an expected failure returns nil, message, code
 * (mg_lua_fail); C reaches Lua only through mg_lua_pcall.
 */
#ifndef MG__LUA_H
#define MG__LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lua/mg_lua.h"
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
    uv_poll_t poll; /* mg.on_pressure: a PSI trigger's descriptor */
  } u;
  struct mg_lua_env *env;
  mg_lua_handle *prev, *next; /* env->handles: open handles of this state */
  const char *kind;           /* "timer", "signal" */
  int cb_ref;                 /* registry ref of the Lua callback */
  int self_ref;               /* registry ref of the userdata while active */
  int name_ref;               /* signals: the name handed to the handler */
  int refs;                   /* 2 while userdata and uv both hold it */
  int closing;                /* uv_close called */
  int oneshot;                /* mg.after: close after the first call */
  int signum;                 /* signal handles */
  uint64_t repeat_ms;
  int fd;                       /* pressure handles: the trigger, else -1 */
  int full;                     /* pressure: "full" (1) or "some" */
  uint64_t stall_us, window_us; /* pressure: what was armed */
  char why[640];                /* pressure: the window fallback, "" none */
};

/* The budget state of one protected call. It lives on the C stack of
 * mg_lua_pcall; env->call points at the innermost one. */
typedef struct mg_lua_call mg_lua_call;
struct mg_lua_call {
  mg_lua_call *outer;
  const char *what;     /* "timer", "store 'ctx' strategy" */
  int top;              /* the policy's top level (--setup-timeout) */
  uint64_t start_ns;    /* when it began (monotonic) */
  uint64_t deadline_ns; /* 0: no wall-clock budget */
  uint64_t budget_ms;   /* for the message */
  uint64_t insn_budget; /* 0: none */
  uint64_t insn_used;   /* charged by the count hook */
  int over;             /* spent: the hook raises on every instruction */
  char over_kind;       /* what was spent: 'i' instructions, 't' time */
  int capped;           /* the memory cap was in force before it */
  /* The outermost call of the chain this one is nested in (itself when
   * outermost): what a nested call uses is not charged to its caller, but
   * the whole chain is bounded at MG_LUA_CHAIN_FACTOR times the outermost
   * budget, so a loop of nested calls cannot run for ever. */
  mg_lua_call *root;
  uint64_t chain_deadline_ns; /* root only; 0: none */
  uint64_t chain_insn_budget; /* root only; 0: none */
  uint64_t chain_insn_used;   /* root only */
  char why[256];              /* why it was stopped */
};

/* How many times its own budget a callback and the calls nested in it may
 * use in all. */
#define MG_LUA_CHAIN_FACTOR 10

struct mg_lua_env {
  lua_State *L;
  uv_loop_t *loop;
  mg_logger *logger;
  struct mg_sup *sup;
  char *sup_error;
  mg_paths paths;
  char *proc_root, *fs_root, *cgroup_parent; /* owned copies */
  int check_only;
  mg_lua_budget budget;

  /* Memory cap (the allocator reads these): in force while Lua code runs
   * (mem_capped), lifted while the C glue around calls runs. */
  size_t mem_used, mem_max, mem_peak;
  int mem_capped;

  /* A state the bindings attached to (mg_lua_attach) rather than made:
   * the allocator it had, which ours wraps; detached once mg_lua_close
   * gave it back. */
  int attached, detached;
  lua_Alloc base_alloc;
  void *base_ud;
  void (*exit_unwind)(void *ud, int code);

  /* Protected calls in progress, innermost first. */
  mg_lua_call *call;
  /* Top-level interrupt polling (mg_lua_run_top). */
  int (*poll)(void *ud);
  void *poll_ud;
  uint64_t poll_every_ns, poll_next_ns;
  int interrupted; /* raise "interrupted" on every instruction */

  /* mg.exit and shutdown. */
  int exit_requested, exit_code, exit_notified;
  void (*on_exit)(void *ud, int code);
  void *ud;

  /* Policy handlers per signal number (mg.on_signal). */
  int signal_handlers[65];
  mg_lua_handle *handles; /* every open handle, for shutdown */
  int closing_handles;    /* mg_lua_shutdown ran: no new handle */
  unsigned long callback_errors;
  /* Protected calls made, and those stopped by a budget, by kind (for
   * mg_lua_callback_stats; the host's metrics). */
  uint64_t cb_calls, cb_stopped_insns, cb_stopped_time, cb_stopped_mem;
  /* The policy's own metrics (mg.metrics, lmg_metrics.c); created with
   * the env, freed with it. */
  struct mg_metrics *metrics;
  struct mg_lua_proc *procs; /* processes not yet closed, spawn order */

  /* Cached cgroup detection for mg.memory(). */
  int cg_cached;
  mg_cgroup_info cg;

  /* The control socket's side (lmg_control.c): registry refs of the
   * policy's commands (a table name → function, mg.on_control) and of its
   * reload handler (mg.on_reload); LUA_NOREF when none. */
  int control_ref, reload_ref;

  /* The sandbox: realpath'd allowed programs and directories. */
  int sandbox;
  char **allow_spawn;
  char **allow_dirs;
};

/* The capped allocator of every state the bindings run in (ud = the
 * env): made with it (mg_lua_new) or wrapped by it (mg_lua_attach). */
void *mg__lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* The env in the registry ("mg.env"), for a state whose allocator someone
 * wrapped again after us; NULL when there is none (detached). */
mg_lua_env *mg__lua_env_lookup(lua_State *L);
/* Raise "the mg module was closed …" (does not return). */
int mg__lua_env_gone(lua_State *L);

/* The environment of L, any of its threads: the ud of the state's
 * allocator, which is ours in every state the bindings run in (a thread
 * made before the module was loaded finds it too, unlike the extra
 * space). NULL only once the bindings left an attached state. */
static inline mg_lua_env *mg_lua_env_find(lua_State *L) {
  void *ud;
  if (lua_getallocf(L, &ud) == mg__lua_alloc)
    return ud;
  return mg__lua_env_lookup(L);
}

/* The same for the functions of the module: raises when the module has
 * left the state (a finalizer run by lua_close after it). */
static inline mg_lua_env *mg_lua_env_get(lua_State *L) {
  mg_lua_env *env = mg_lua_env_find(L);
  if (env == NULL)
    mg__lua_env_gone(L);
  return env;
}

/* The environment's life (lmg.c, lmg_attach.c): a new env from a config
 * (copies; the state is set by the caller); free it; record it in the
 * registry of L as "mg.env" (protected: -ENOMEM, never raises); leave an
 * attached state (mg_lua_close does). */
int mg__lua_env_new(const mg_lua_config *c, mg_lua_env **out, char *err,
                    size_t err_len);
void mg__lua_env_free(mg_lua_env *env);
int mg__lua_env_register(lua_State *L, mg_lua_env *env);
void mg__lua_detach(mg_lua_env *env);

/* ------------------------------------------------------------ calls */

/* How a protected call failed, for the operation that made it (a store
 * add fails with this message). */
typedef struct mg_lua_failure {
  int budget;        /* stopped by its budget or the memory cap */
  char message[512]; /* the error's first part, without the traceback */
} mg_lua_failure;

/* Call the function below `nargs` arguments under lua_pcall with a
 * traceback handler and a fresh callback budget; `what` names the
 * callback in messages and in the log. On error the message and
 * traceback are logged (`callback_failed`), counted, copied into *fail
 * (may be NULL) without the traceback, and the stack is left as if the
 * call returned no results (nresults must then be ignored). A call that
 * asked for mg.exit returns MG_LUA_EXIT after telling the host. Never
 * raises; safe with a store's lock held. */
int mg_lua_pcall(lua_State *L, int nargs, int nresults, const char *what,
                 mg_lua_failure *fail);

/* Raise the mg.exit sentinel (does not return) / is the value at idx it?
 * Where no protected call of the bindings surrounds the caller (the
 * program's own code in an attached state), nothing would catch the
 * sentinel: the host is told there (exit_unwind), and may end the
 * process before it is raised. */
int mg_lua_raise_exit(lua_State *L);
int mg_lua_is_exit(lua_State *L, int idx);

/* Install the budget hook on L (mg_lua_new and mg_lua_attach do) / take
 * it off L if it is ours. */
void mg__lua_install_hook(lua_State *L);
void mg__lua_remove_hook(lua_State *L);

/* The option that sets a budget, for messages: mgrun's command line
 * ("--cb-timeout") or, in an attached state, mg.configure's field.
 * which: 'i' instructions, 't' callback time, 's' setup time, 'm' memory. */
const char *mg__lua_budget_option(const mg_lua_env *env, int which);

/* ------------------------------------------------------------ helpers */

/* The receiver of method `method`: a userdata with metatable `mt`, or an
 * error "bad argument #1 to 'METHOD' (MT expected, got OTHER)". */
void *mg_lua_check_self(lua_State *L, const char *mt, const char *method);

/* Every key of the options table at `idx` is one of `accepted`
 * (NULL-terminated); otherwise raise "bad argument #ARG to 'FN' (unknown
 * option 'K'; accepted: …)". */
void mg_lua_check_options(lua_State *L, int idx, const char *fn,
                          const char *const *accepted);

/* A string without NUL bytes (they would be cut in C): argument `idx`
 * when `what` is NULL (the usual "bad argument #N to 'f'" messages), else
 * the value at idx of a field named `what`. Raises otherwise. */
const char *mg_lua_check_text(lua_State *L, int idx, const char *what,
                              size_t *len);

/* A size argument: integer bytes or a size string; raises on a wrong type;
 * returns 0 or a negative code with err (for the caller's nil, err). */
int mg_lua_check_size(lua_State *L, int idx, const char *argname, uint64_t *out,
                      char *err, size_t err_len);
/* Effective total memory (bytes) for "%" sizes; 0 if unknown. */
uint64_t mg_lua_effective_total(lua_State *L);

/* Push nil, msg, mg_err_name(code) and return 3. */
int mg_lua_fail(lua_State *L, int code, const char *msg);
/* Same with a formatted message. */
int mg_lua_failf(lua_State *L, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set t[k] = v on the table at -1. */
void mg_lua_setint(lua_State *L, const char *k, lua_Integer v);
void mg_lua_setu64(lua_State *L, const char *k, uint64_t v);
void mg_lua_setstr(lua_State *L, const char *k, const char *v);
void mg_lua_setnum(lua_State *L, const char *k, double v);
void mg_lua_setbool(lua_State *L, const char *k, int v);
void mg_lua_pushu64(lua_State *L, uint64_t v);
/* A field of a C struct copied into a Lua table: its name, its type and
 * where it is (offsetof). MG_LUA_F_U64_NZ is left out when zero. */
typedef enum {
  MG_LUA_F_U64,
  MG_LUA_F_U64_NZ,
  MG_LUA_F_DOUBLE,
  MG_LUA_F_BOOL,
  MG_LUA_F_INT /* an int */
} mg_lua_ftype;
typedef struct mg_lua_field {
  const char *name;
  mg_lua_ftype type;
  size_t offset;
} mg_lua_field;
#define MG_LUA_FIELD(name, type, st, member)                                   \
  { name, MG_LUA_F_##type, offsetof(st, member) }
/* Set every field of `fields` from the struct at `base` on the table at
 * -1. */
void mg_lua_set_fields(lua_State *L, const void *base,
                       const mg_lua_field *fields, size_t n);

/* name, rss, hwm, vsize, data, anon, file, shmem, swap of a process
 * (what mg.process gives besides pid) on the table at -1. */
void mg_lua_set_proc_status(lua_State *L, const mg_proc_status *st);

/* Convert a jansson json_t* (as void*) to a Lua value on the stack. */
void mg_lua_push_json(lua_State *L, const void *json);

/* ------------------------------------------------------------ sandbox */

/* In a sandbox: may `path` be read (write = 0) or written (write = 1)?
 * 0, or -EACCES with err naming `what`, the path and the allowed
 * directories. Outside a sandbox: always 0. */
int mg_lua_path_allowed(mg_lua_env *env, const char *what, const char *path,
                        int write, char *err, size_t err_len);
/* In a sandbox: may the program at the absolute `path` be spawned? */
int mg_lua_program_allowed(mg_lua_env *env, const char *path, char *err,
                           size_t err_len);
/* In a sandbox: may a child get the environment variable `name`? (Not
 * the ones that make programs load or run other code.) */
int mg_lua_env_allowed(mg_lua_env *env, const char *name, size_t len, char *err,
                       size_t err_len);
/* In a sandbox: may a signal or a limit be sent to `pid`? (Only this
 * process and its supervised children.) */
int mg_lua_pid_allowed(mg_lua_env *env, long pid, char *err, size_t err_len);

/* ------------------------------------------------------------ parts */

/* Close every handle of the env (shutdown); safe to call twice. */
void mg_lua_close_handles(mg_lua_env *env);

/* Registration of each binding file into the module table at -1. */
void mg_lua_open_size(lua_State *L);
void mg_lua_open_probe(lua_State *L);
void mg_lua_open_limits(lua_State *L);
void mg_lua_open_loop(lua_State *L);
void mg_lua_open_log(lua_State *L);
void mg_lua_open_store(lua_State *L);
void mg_lua_open_spawn(lua_State *L);
void mg_lua_open_metrics(lua_State *L);
void mg_lua_open_control(lua_State *L);
void mg_lua_open_configure(lua_State *L); /* attached states only */

#endif
