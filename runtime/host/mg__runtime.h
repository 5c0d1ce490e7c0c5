/* mg__runtime.h — internals of the runtime host shared by its files
 * (mg_runtime.c: lifecycle, loading, running, shutdown;
 * mg_runtime_libs.c: the policy's standard libraries and the sandbox's
 * subset, require paths, the shipped Lua library; mg_runtime_ops.c: the
 * operator's side — metrics (mg_runtime_metrics.c), the control socket
 * (mg_runtime_control.c), the timeline (mg_runtime_timeline.c)). Not
 * installed.
 */
#ifndef MG__RUNTIME_H
#define MG__RUNTIME_H

#include <limits.h>
#include <lua.h>
#include <stddef.h>
#include <uv.h>

#include "lua/mg_lua.h"
#include "mg/mg_runtime.h"
#include "mg/mg_sup.h"

/* Calls from other threads (mg_runtime_share.c): queued for the thread
 * that owns the runtime, which runs them between callbacks. */
typedef struct mg__rt_req {
  int (*fn)(mg_runtime *rt, void *ud);
  void *ud;
  int rc;
  int done;
  struct mg__rt_req *next;
} mg__rt_req;

typedef struct mg__rt_share {
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_async_t *async; /* wakes the loop for queued requests; heap-held, so
                        that a borrowed loop may close it after free */
  int live;          /* mu, cv and async were created */
  mg__rt_req *head, *tail;
  int active;        /* a thread is inside load or run: the owner */
  uv_thread_t owner; /* ... that thread */
  int in_loop;       /* the owner is in uv_run: the async serves */
  int closed;        /* mg_runtime_free began: calls fail */
} mg__rt_share;

/* mg.exit unwinding into an attached state's own code (mg__rt_attach). */
typedef void (*mg__rt_unwind_fn)(mg_runtime *rt, int code, void *ud);

/* How often the top level looks for a signal, in ms of Lua execution. */
#define MG__LOAD_POLL_MS 5

struct mg_runtime {
  mg_runtime_opts opts;
  uv_loop_t own_loop;
  uv_loop_t *loop;
  int owns_loop;
  mg_sup *sup;
  lua_State *L;
  mg_lua_env *env;
  uv_signal_t *sig[2]; /* default SIGINT / SIGTERM handlers */
  int signals_started;
  /* the top level's own watch of INT/TERM */
  uv_loop_t load_loop;
  uv_signal_t load_sig[2];
  int load_signal; /* a signal that interrupted (or came during) the top level
                    */
  int skip[65];    /* copies of signals the main loop should ignore */
  int shut_down;
  int sup_stopping; /* mg_sup_shutdown called */
  int sup_done;     /* ... and every child reaped, every cgroup removed */
  int forced;       /* a second INT/TERM during shutdown: SIGKILL now */

  /* attached to the caller's Lua state (mg__rt_attach, for mg.so) */
  int attached;
  int running;        /* inside uv_run of this runtime */
  int signals_paused; /* between runs: the default handlers stopped */
  mg__rt_unwind_fn unwind;
  void *unwind_ud;
  char scripts_dir[PATH_MAX];
  mg__rt_share share;
  /* the operator's side (mg_runtime_ops.c); NULL when off */
  struct mg__rt_metrics *metrics;
  struct mg__rt_control *control;
  struct mg__rt_timeline *timeline;
  int ops_stopped;
};

/* ---- mg_runtime_ops.c: metrics, control socket, timeline
 *
 * Started when the runtime is made (a bad address or path fails
 * mg_runtime_new, naming the option), on rt->loop, their handles unref'd
 * (they never keep the loop alive on their own); stopped once every
 * child is reaped (or by mg_runtime_free): their handles are closed then,
 * and the loop's next run frees them. Each part: start (0, or a negative
 * code with err naming the option) and stop (idempotent, also after a
 * failed start). */
int mg__rt_ops_start(mg_runtime *rt, char *err, size_t err_len);
void mg__rt_ops_stop(mg_runtime *rt);
int mg__rt_metrics_start(mg_runtime *rt, char *err, size_t err_len);
void mg__rt_metrics_stop(mg_runtime *rt);
int mg__rt_control_start(mg_runtime *rt, char *err, size_t err_len);
void mg__rt_control_stop(mg_runtime *rt);
int mg__rt_timeline_start(mg_runtime *rt, char *err, size_t err_len);
void mg__rt_timeline_stop(mg_runtime *rt);

/* ---- mg_runtime_share.c */

/* Create the queue and its async handle (unref'd) on rt->loop. */
int mg__rt_share_init(mg_runtime *rt, char *err, size_t err_len);
/* The owning thread enters load or run (in_loop: run's uv_run): calls
 * from other threads wait for it from now on. */
void mg__rt_share_enter(mg_runtime *rt, int in_loop);
/* ... and leaves: what is still queued runs now, on this thread. */
void mg__rt_share_leave(mg_runtime *rt);
/* mg_runtime_free: refuse new calls, run what is queued, close the async
 * handle (its close callback runs with the loop's next run). */
void mg__rt_share_close(mg_runtime *rt);
/* After the loop is closed. */
void mg__rt_share_destroy(mg_runtime *rt);

/* ---- a runtime on a Lua state the caller owns (mg.so, bindings/lua/module)
 *
 * Attach a runtime to L, a state the caller made and keeps (a stock
 * lua5.4's): the runtime owns a loop (o->loop must be NULL for
 * mg__rt_run_mode), the supervisor and the bindings' env (mg_lua_attach:
 * L's allocator wrapped by the capped one, the budget hook); it opens no
 * library, sets no global and leaves making the `mg` table to the caller
 * (mg_lua_push). o->sandbox and o->check_only are refused (-EINVAL).
 * `unwind` (optional) is called when mg.exit unwinds into the caller's
 * own code outside the loop (the program's top level): to finish, call
 * mg_runtime_run (stops the children, runs until they are reaped), then
 * end the process; if it returns, mg.exit raises its sentinel there.
 * mg_runtime_free detaches (mg_lua_close): call it when no mg object can
 * be used any more, e.g. from the finalizer of an object made before any
 * mg object, which lua_close runs last. */
int mg__rt_attach(lua_State *L, const mg_runtime_opts *o,
                  mg__rt_unwind_fn unwind, void *unwind_ud, mg_runtime **out,
                  char *err, size_t err_len);

/* Run the runtime's own loop once in `mode` (as uv_run: DEFAULT until
 * nothing is left to do, ONCE, NOWAIT) with the default INT/TERM handling
 * (handle_signals) while it runs; returns uv_run's result (non-zero: handles
 * are still active), -EBUSY when the loop is running already or a
 * callback is in progress (re-entry), -ECANCELED after a shutdown began,
 * -EINVAL for a borrowed loop. */
int mg__rt_run_mode(mg_runtime *rt, uv_run_mode mode);

/* Open the standard libraries (all, or the sandbox's subset: no io, no
 * os.execute/remove/rename/exit…, no debug, no bytecode, no C modules,
 * require only from `scripts_dir`), make os.exit a graceful mg.exit, and
 * put `scripts_dir` (may be "") first on package.path. Call after
 * mg_lua_open (os.exit needs mg.exit). */
void mg__rt_open_libs(lua_State *L, int sandbox, const char *scripts_dir);

/* Prepend `dir`/?.lua;`dir`/?/init.lua to package.path. */
void mg__rt_add_path(lua_State *L, const char *dir);

/* The shipped Lua library: `given` if set, else next to an installed
 * binary (<prefix>/share/mgrun/scripts), else the source tree's. */
void mg__rt_find_scripts(const char *given, char *out, size_t len);

#endif
