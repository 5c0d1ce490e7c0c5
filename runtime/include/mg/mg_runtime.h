/* mg_runtime.h — the runtime host: one uv_loop_t + one lua_State that run
 * a policy (host layer). `mgrun` is a thin main() over this API; an agent
 * host embeds the same runtime, optionally on its own loop.
 *
 *   mg_runtime_opts o;
 *   mg_runtime_opts_init(&o);          // defaults
 *   o.loop = my_loop;                  // optional: caller-owned loop
 *   mg_runtime *rt;
 *   mg_runtime_new(&o, &rt, err, sizeof err);
 *   if (mg_runtime_load(rt, "policy.lua", argc, argv, err, sizeof err) < 0)
 *     ... err holds "policy.lua:3: message" and a traceback
 *   mg_runtime_run(rt);                // or run your own loop
 *   int code = mg_runtime_exit_code(rt);
 *   mg_runtime_free(rt);
 */
#ifndef MG_RUNTIME_H
#define MG_RUNTIME_H

#include "mg/mg_api.h"

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mg/mg.h"

struct mg_sup;

#ifdef __cplusplus
extern "C" {
#endif

#define MG_RUNTIME_DEFAULT_LUA_MEM ((size_t)64 << 20) /* 64 MiB */
#define MG_RUNTIME_DEFAULT_CB_TIMEOUT_MS 1000
#define MG_RUNTIME_DEFAULT_CB_INSTRUCTIONS 1000000000ull

typedef struct mg_runtime mg_runtime;

typedef struct mg_runtime_opts {
  uv_loop_t *loop;           /* NULL: the runtime creates and owns one */
  mg_logger *logger;         /* borrowed; NULL drops log lines */
  size_t lua_mem_max_bytes;  /* cap of the Lua state; 0 = none */
  uint64_t cb_timeout_ms;    /* wall-clock budget per callback; 0 = none */
  uint64_t cb_instructions;  /* instruction budget per callback; 0 = none */
  uint64_t setup_timeout_ms; /* budget of the policy's top level; 0 = none */
  int sandbox; /* no io, os.execute…, debug, bytecode, C modules;
                  programs and paths only as allowed below */
  const char *const *allow_spawn; /* sandbox: programs mg.spawn may run
                                     (paths, NULL-terminated; NULL: none) */
  const char *const *allow_dirs;  /* sandbox: directories the API may read
                                     and write in (NULL-terminated) */
  int handle_signals;      /* SIGINT/SIGTERM → graceful shutdown (mgrun: 1) */
  int check_only;          /* mgrun --check: validate, start nothing */
  const char *scripts_dir; /* shipped Lua library; NULL = built-in default */
  const char *cgroup_parent; /* where child cgroups go; NULL = own cgroup */
  mg_paths paths;            /* probe roots; zero = the real system */
  /* Called once when the policy asks to exit (mg.exit) or a signal asks
   * for shutdown, after the runtime closed its handles. Optional. */
  void (*on_exit)(mg_runtime *rt, int code, void *ud);
  void *on_exit_ud;
  void *priv; /* set by mg_runtime_opts_new: what the object owns */
  /* Operations, all off by default (NULL / 0); started by mg_runtime_run
   * before its loop, closed at shutdown once the children are reaped. */
  const char *metrics_addr; /* GET /metrics: "127.0.0.1:PORT", "[::1]:PORT",
                               "unix:/path" (mgrun --metrics) */
  int metrics_remote;       /* accept an address that is not loopback */
  const char *metrics_file; /* the same text, written atomically every
                               metrics_interval_ms (--metrics-file) */
  uint64_t metrics_interval_ms; /* 0: MG_RUNTIME_DEFAULT_METRICS_MS */
  const char *control_path; /* the control socket (--control); "" = the
                               default path (mg_runtime_control_default);
                               SIGPIPE must be ignored or blocked in the
                               process (mgrun does: a client that goes
                               away would end it), else -EINVAL */
  const char *timeline_path; /* every sample and event, JSON lines
                                (--timeline) */
} mg_runtime_opts;

#define MG_RUNTIME_DEFAULT_METRICS_MS 15000

/* The control socket's default path (control_path "", mgrun --control
 * without a value, and `mgrun ctl` without --socket):
 * $XDG_RUNTIME_DIR/mgrun/mgrun.sock when XDG_RUNTIME_DIR is set to an
 * absolute path, else /run/mgrun/mgrun.sock. Written into the caller's
 * buf; -ENAMETOOLONG when it does not fit. One path per user: a second
 * instance needs a path of its own. */
MG_API int mg_runtime_control_default(char *buf, size_t len);

/* Fill `o` with the defaults (64 MiB Lua cap, 1000 ms / 1e9 instructions
 * per callback, no setup budget, no sandbox, no signal handling). */
MG_API void mg_runtime_opts_init(mg_runtime_opts *o);

/* Options by name — for hosts that cannot lay out this struct (an FFI
 * such as Python's ctypes) and for a command line; each option's rule is
 * checked here. mg_runtime_opts_new gives the defaults in an object that
 * owns its strings, lists and logger (text lines at info on stderr, like
 * mgrun's); NULL when out of memory. It must outlive the runtimes made
 * from it; mg_runtime_opts_free releases it (NULL: a no-op). */
MG_API mg_runtime_opts *mg_runtime_opts_new(void);
MG_API void mg_runtime_opts_free(mg_runtime_opts *o);

/* Set option `key` from text. Numbers: lua_mem (SIZE or N% of the
 * effective memory; 0 = no cap, else at least 1M), cb_timeout_ms and
 * setup_timeout_ms (0 to a week), cb_instructions (0 = none); booleans
 * (true/false, 1/0, yes/no): sandbox, handle_signals, check_only. On an
 * object from mg_runtime_opts_new only (copied): scripts_dir,
 * cgroup_parent, allow_spawn and allow_dir (each call adds one), and
 * log_level (debug, info, warn, error) / log_format (text, json), which
 * remake its logger. -EINVAL (or the size parser's code) with err naming
 * the key, the value and what is accepted. */
MG_API int mg_runtime_opts_set(mg_runtime_opts *o, const char *key,
                               const char *value, char *err, size_t err_len);

/* Create a runtime: the supervisor of its children (cgroup detection,
 * the cgroup_parent checked, stale groups of dead earlier runs removed), a
 * Lua state with the standard libraries (or the sandboxed subset) and the
 * `mg` module. *out is owned by the caller and released with
 * mg_runtime_free. Errors: a bad cgroup_parent or allowed path (-ENOENT,
 * -ENOTDIR, -EINVAL: a usage error for a command line), -ENOMEM, a loop
 * that cannot be created. Several runtimes may live in one process, each
 * used by one thread at a time; only one of them should handle_signals
 * (signal dispositions belong to the process). */
MG_API int mg_runtime_new(const mg_runtime_opts *o, mg_runtime **out, char *err,
                          size_t err_len);

/* Load `path` and run its top level with `arg` = {[0]=path, argv...} and
 * `...` = argv. Fails with "file:line: message" (+ traceback) in err for a
 * missing file, a syntax error or an error at top level: MG_EPARSE.
 * A top level that calls mg.exit succeeds; mg_runtime_exit_requested()
 * then says so. */
MG_API int mg_runtime_load(mg_runtime *rt, const char *path, int argc,
                           char *const *argv, char *err, size_t err_len);

/* Load a chunk from memory (same contract; `name` names it in messages). */
MG_API int mg_runtime_load_string(mg_runtime *rt, const char *code,
                                  const char *name, char *err, size_t err_len);

/* Run a module of the shipped Lua library (found on package.path, e.g.
 * "mg.default" = scripts/mg/default.lua) as the policy: require() it; it
 * must return a function, which is called with argv... as its top level
 * (`arg` = {[0]=module, argv...}). Same contract as mg_runtime_load. */
MG_API int mg_runtime_load_module(mg_runtime *rt, const char *module, int argc,
                                  char *const *argv, char *err, size_t err_len);

/* Run the loop until nothing is left to do, mg.exit, or a handled signal;
 * then close every handle of the runtime, stop every child (SIGTERM,
 * grace, SIGKILL) and run until they are reaped and their cgroups
 * removed. Running children keep the loop alive. Only for a runtime-owned loop
 * (-EINVAL otherwise: run your own loop). */
MG_API int mg_runtime_run(mg_runtime *rt);

/* Ask for a graceful shutdown with `code`, as mg.exit does. */
MG_API void mg_runtime_shutdown(mg_runtime *rt, int code);

MG_API int mg_runtime_exit_requested(const mg_runtime *rt);
/* The exit status the policy asked for (0 when it just ran out of work;
 * 128+N after a signal N ended it). */
MG_API int mg_runtime_exit_code(const mg_runtime *rt);
/* Callbacks that failed (errors, budgets, memory cap) so far. */
MG_API unsigned long mg_runtime_callback_errors(const mg_runtime *rt);
/* Bytes the Lua state holds now and at most. */
MG_API size_t mg_runtime_lua_mem(const mg_runtime *rt, size_t *peak_bytes);

/* The runtime's metrics in the Prometheus text format 0.0.4 (what GET
 * /metrics serves: mgrun's built-in families, docs/operations.md, then
 * the policy's mg.metrics), for a host that serves or writes them itself.
 * *out is malloc'd (free it), *len (may be NULL) its length. On the
 * thread that owns the runtime (or through mg_runtime_call). MG_ENOTSUP
 * for a check-only or attached runtime, or after the runtime stopped
 * (its children reaped); -ENOMEM. */
MG_API int mg_runtime_metrics_text(mg_runtime *rt, char **out, size_t *len,
                                   char *err, size_t err_len);

MG_API lua_State *mg_runtime_lua(mg_runtime *rt);
MG_API uv_loop_t *mg_runtime_loop(mg_runtime *rt);
/* The supervisor of the runtime's children (owned by the runtime). */
MG_API struct mg_sup *mg_runtime_sup(mg_runtime *rt);

/* ---- Other threads of the host.
 *
 * One thread owns a runtime at a time: the one inside mg_runtime_load*
 * or mg_runtime_run (the Lua state, libuv and the supervisor are touched
 * by it alone). Another thread uses the runtime through the calls below:
 * each runs on the owner, between two callbacks (an async handle wakes
 * its loop), and the caller waits for it; while the top level of a load
 * runs, calls wait for it to end. When no thread owns the runtime, the
 * caller runs the call itself, one caller at a time. With a caller-owned
 * loop, nothing marks the thread that runs it: make these calls on that
 * thread, or while it is not running the loop. */

/* Run fn(rt, ud) as above; returns its result, or -ESHUTDOWN once
 * mg_runtime_free began. From the owner itself (a callback), at once. */
MG_API int mg_runtime_call(mg_runtime *rt, int (*fn)(mg_runtime *rt, void *ud),
                           void *ud);

/* The policy's open store named `name`: *out gets a new reference, dropped
 * with mg_store_free. Reads (mg_store_get, _stats, _read, iteration…) may
 * be made from any thread (the store has its own lock); changes go through
 * mg_runtime_store_add & co., which run them on the owner so that the
 * store's Lua callbacks (strategy, estimator, on_evict, on_warn) run with
 * their budgets, as for a change made by the policy. The store stays the
 * policy's: when the policy closes it or drops it, the host's calls fail
 * with MG_ECLOSED ("store 'ctx' is closed"). Errors: -ENOENT (no open store
 * of that name), -EEXIST (several: name them apart), -ESHUTDOWN. */
MG_API int mg_runtime_store(mg_runtime *rt, const char *name, mg_store **out,
                            char *err, size_t err_len);
/* mg_store_add / _remove / _clear / _prune / _set_limits of a store of
 * the runtime, made from any thread of the host (same contracts). */
MG_API int mg_runtime_store_add(mg_runtime *rt, mg_store *s,
                                const mg_store_input *in, uint64_t *out_id,
                                mg_store_error *e);
/* mg_store_add_flat (mg/mg_ffi.h: an add from scalars, for FFI hosts) of
 * a store of the runtime, from any thread: the new id, or a negative code
 * with e filled. */
MG_API int64_t mg_runtime_store_add_flat(mg_runtime *rt, mg_store *s,
                                         const char *role, const void *content,
                                         size_t content_len, const char *source,
                                         const char *group, int pinned,
                                         int64_t priority, int64_t tokens,
                                         const char *meta, size_t meta_len,
                                         mg_store_error *e);
MG_API int mg_runtime_store_remove(mg_runtime *rt, mg_store *s, uint64_t id,
                                   char *err, size_t err_len);
MG_API int mg_runtime_store_clear(mg_runtime *rt, mg_store *s,
                                  uint64_t *out_removed);
MG_API int mg_runtime_store_prune(mg_runtime *rt, mg_store *s,
                                  uint64_t keep_count, uint64_t *out_removed,
                                  char *err, size_t err_len);
MG_API int mg_runtime_store_set_limits(mg_runtime *rt, mg_store *s,
                                       const mg_store_limits *limits, char *err,
                                       size_t err_len);
/* mg_runtime_shutdown(rt, code) from any thread: the graceful shutdown
 * (children stopped, then the loop ends) begins on the owner. */
MG_API int mg_runtime_request_shutdown(mg_runtime *rt, int code);

/* Close the Lua state and, if the runtime owns it, the loop. NULL is a
 * no-op. Children still running are stopped first, and this waits for
 * them (running the loop, also a borrowed one, until they are reaped:
 * then do not call it from inside a callback of that loop — call
 * mg_runtime_shutdown there and free the runtime after uv_run returns).
 * With a caller-owned loop, the runtime's handles are closed and their
 * close callbacks run when the caller next runs the loop. */
MG_API void mg_runtime_free(mg_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
