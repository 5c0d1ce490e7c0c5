/* mg__runtime.h — internals of the runtime host shared by its files
 * (mg_runtime.c: lifecycle, loading, running, shutdown;
 * mg_runtime_libs.c: the policy's standard libraries and the sandbox's
 * subset, require paths, the shipped Lua library). Not installed.
 */
#ifndef MG__RUNTIME_H
#define MG__RUNTIME_H

#include <lua.h>
#include <stddef.h>

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
