/* mg__runtime.h — internals of the runtime host shared by its files
 * (mg_runtime.c: lifecycle, loading, running, shutdown;
 * mg_runtime_libs.c: the policy's standard libraries and the sandbox's
 * subset, require paths, the shipped Lua library). Not installed.
 */
#ifndef MG__RUNTIME_H
#define MG__RUNTIME_H

#include <lua.h>
#include <stddef.h>
#include <uv.h>

#include "mg/mg_runtime.h"

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
typedef void (*mg__rt_unwind_fn)(mg_runtime *rt, int code, void *ud);
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
