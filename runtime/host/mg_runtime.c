/* mg_runtime.c — the runtime host: owns (or borrows) the uv_loop_t, owns
 * the lua_State, loads the policy, runs the loop, shuts down cleanly
 * (host layer: uses the bindings, libuv, libmg). */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg_lua.h"
#include "host/mg_runtime.h"
#include "sup/mg_sup.h"

struct mg_runtime {
  mg_lua_env env; /* first: the allocator's ud */
  mg_runtime_opts opts;
  uv_loop_t own_loop;
  int owns_loop;
  uv_signal_t *sig[2]; /* default SIGINT / SIGTERM handlers */
  int signals_started;
  int load_signal; /* a signal that interrupted the top level */
  int shut_down;
  int sup_stopping; /* mg_sup_shutdown called */
  int sup_done;     /* ... and every child reaped, every cgroup removed */
  int forced;       /* a second INT/TERM during shutdown: SIGKILL now */
  char scripts_dir[PATH_MAX];
};

/* --------------------------------------------------------- allocator */

/* The Lua allocator with a cap: the cap applies while Lua code runs
 * (env->mem_capped), so the C glue around calls never sees a failure
 * outside a protected call. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  mg_lua_env *env = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    env->mem_used -= old;
    return NULL;
  }
  if (nsize > old && env->mem_capped && env->mem_max &&
      env->mem_used + (nsize - old) > env->mem_max)
    return NULL;
  void *p = realloc(ptr, nsize);
  if (p == NULL)
    return NULL;
  env->mem_used = env->mem_used - old + nsize;
  if (env->mem_used > env->mem_peak)
    env->mem_peak = env->mem_used;
  return p;
}

static int l_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "mgrun: unprotected Lua error (bug): %s\n", msg ? msg : "?");
  abort();
}

/* ----------------------------------------------------------- libraries */

/* os.exit in a policy means a graceful mg.exit, never a bare exit(). */
static int l_os_exit(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1)); /* mg.exit, whatever happens to mg */
  lua_pushvalue(L, 1);
  lua_call(L, 1, 0);
  return 0;
}

/* load() that refuses bytecode (sandbox): the real load is upvalue 1. */
static int l_load_text(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkany(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (n >= 2)
    lua_pushvalue(L, 2);
  else
    lua_pushnil(L); /* the default chunk name */
  lua_pushliteral(L, "t");
  if (n >= 4) {
    lua_pushvalue(L, 4);
    lua_call(L, 4, LUA_MULTRET);
  } else {
    lua_call(L, 3, LUA_MULTRET);
  }
  return lua_gettop(L) - n;
}

/* The directories a sandboxed require may read (set by the host). */
static const char *sandbox_dirs[4];

/* Searcher of the sandbox: `name` (dots → slashes) as <dir>/name.lua or
 * <dir>/name/init.lua in the allowed directories, loaded as text only. */
static int sandbox_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_Buffer tried;
  luaL_buffinit(L, &tried);
  if (strstr(name, "..") || name[0] == '/' || name[0] == '.') {
    lua_pushfstring(L,
                    "no module '%s' in the sandbox (a module name, not a "
                    "path)",
                    name);
    return 1;
  }
  const char *rel = luaL_gsub(L, name, ".", "/");
  for (int i = 0; i < 4 && sandbox_dirs[i]; i++) {
    static const char *const fmt[2] = {"%s/%s.lua", "%s/%s/init.lua"};
    for (int k = 0; k < 2; k++) {
      const char *path = lua_pushfstring(L, fmt[k], sandbox_dirs[i], rel);
      if (luaL_loadfilex(L, path, "t") == LUA_OK) {
        lua_pushstring(L, path);
        return 2;
      }
      if (access(path, F_OK) == 0) /* there, but not a loadable text chunk */
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                          name, path, lua_tostring(L, -1));
      lua_pop(L, 2);
    }
  }
  lua_pushfstring(L, "no module '%s' in the sandbox's directories", name);
  return 1;
}

static void open_sandbox(lua_State *L) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                  {LUA_LOADLIBNAME, luaopen_package},
                                  {LUA_COLIBNAME, luaopen_coroutine},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {LUA_OSLIBNAME, luaopen_os},
                                  {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->func; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  /* os: only the clock and calendar. */
  static const char *const os_keep[] = {"clock", "date",   "difftime",
                                        "time",  "getenv", NULL};
  lua_getglobal(L, "os");
  lua_newtable(L);
  for (int i = 0; os_keep[i]; i++) {
    lua_getfield(L, -2, os_keep[i]);
    lua_setfield(L, -2, os_keep[i]);
  }
  lua_pushvalue(L, -1);
  lua_setglobal(L, "os");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, "os"); /* require("os") is the filtered one too */
  lua_pop(L, 2);
  /* no files, no bytecode, no C modules */
  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, "load");
  lua_pushcclosure(L, l_load_text, 1);
  lua_setglobal(L, "load");
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushnil(L);
  lua_setfield(L, -2, "loadlib");
  /* require: the preload searcher and ours (text chunks, from the
   * directories the host allows — not from package.path, which the policy
   * could change); no C, all-in-one or bytecode loading. */
  lua_getfield(L, -1, "searchers");
  for (int i = 4; i >= 2; i--) {
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  lua_pushcfunction(L, sandbox_searcher);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

/* Prepend `dir`/?.lua;`dir`/?/init.lua to package.path (sandbox: replace). */
static void add_path(lua_State *L, const char *dir, int replace) {
  lua_getglobal(L, "package");
  if (replace)
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
  else {
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir,
                    lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* The shipped scripts: next to an installed binary
 * (<prefix>/share/mgrun/scripts), else the source tree's. */
static void find_scripts_dir(mg_runtime *rt) {
  char exe[PATH_MAX];
  if (rt->opts.scripts_dir) {
    snprintf(rt->scripts_dir, sizeof rt->scripts_dir, "%s",
             rt->opts.scripts_dir);
    return;
  }
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char cand[PATH_MAX];
    snprintf(cand, sizeof cand, "%s/../share/mgrun/scripts", dirname(exe));
    if (access(cand, R_OK) == 0) {
      snprintf(rt->scripts_dir, sizeof rt->scripts_dir, "%s", cand);
      return;
    }
  }
#ifdef MG_SCRIPTS_DIR
  snprintf(rt->scripts_dir, sizeof rt->scripts_dir, "%s", MG_SCRIPTS_DIR);
#endif
}

/* ----------------------------------------------------------- shutdown */

static void free_on_close(uv_handle_t *h) {
  free(h);
}

static void close_own_signals(mg_runtime *rt) {
  for (int i = 0; i < 2; i++) {
    if (rt->sig[i]) {
      uv_close((uv_handle_t *)rt->sig[i], free_on_close);
      rt->sig[i] = NULL;
    }
  }
}

/* Every child is reaped and its cgroup removed: the default signal
 * handlers (kept to force a slow shutdown) can go. May run inside
 * mg_sup_shutdown when there is nothing to stop. */
static void on_sup_done(mg_sup *sup, void *ud) {
  mg_runtime *rt = ud;
  (void)sup;
  rt->sup_done = 1;
  close_own_signals(rt);
}

/* Stop the children: SIGTERM, grace, SIGKILL, reap, remove cgroups; the
 * loop runs until on_sup_done (the supervisor's handles keep it alive). */
static void stop_children(mg_runtime *rt) {
  if (rt->env.sup == NULL) {
    rt->sup_done = 1;
    return;
  }
  if (rt->sup_stopping)
    return;
  rt->sup_stopping = 1;
  mg_sup_shutdown(rt->env.sup, on_sup_done, rt); /* logs "shutdown" */
}

static void do_shutdown(mg_runtime *rt) {
  if (rt->shut_down)
    return;
  rt->shut_down = 1;
  mg_lua_close_handles(&rt->env);
  stop_children(rt);
  if (rt->sup_done)
    close_own_signals(rt);
  if (rt->opts.on_exit)
    rt->opts.on_exit(rt, rt->env.exit_code, rt->opts.on_exit_ud);
}

/* mg.exit from a callback (called once by the bindings). */
static void on_policy_exit(mg_lua_env *env, int code) {
  mg_runtime *rt = env->host;
  mg_log_field f[] = {MG_LF_INT("code", code)};
  mg_log(env->logger, MG_LOG_INFO, "exit_requested", f, 1);
  do_shutdown(rt);
}

void mg_runtime_shutdown(mg_runtime *rt, int code) {
  if (!rt->env.exit_requested) {
    rt->env.exit_requested = 1;
    rt->env.exit_code = code;
  }
  rt->env.exit_notified = 1;
  do_shutdown(rt);
}

static const char *sig_name(int signum) {
  return signum == SIGINT ? "INT" : signum == SIGTERM ? "TERM" : "?";
}

/* A second INT/TERM while children are still being stopped: SIGKILL
 * every child's process group now instead of waiting for the grace
 * period (the supervisor still kills what is left of their cgroups). */
static void force_shutdown(mg_runtime *rt, int signum) {
  if (rt->env.sup == NULL || rt->sup_done)
    return;
  rt->forced = 1;
  mg_log_field f[] = {MG_LF_STR("signal", sig_name(signum))};
  mg_log(rt->env.logger, MG_LOG_WARN, "shutdown_forced", f, 1);
  size_t n = mg_sup_children(rt->env.sup, NULL, 0); /* how many */
  mg_child **kids = calloc(n ? n : 1, sizeof *kids);
  if (kids == NULL)
    return;
  n = mg_sup_children(rt->env.sup, kids, n);
  for (size_t i = 0; i < n; i++)
    mg_child_signal(kids[i], SIGKILL);
  free(kids);
}

/* Default SIGINT/SIGTERM: graceful shutdown with 128+N — unless the
 * policy handles that signal itself. A second one during the shutdown
 * kills the children at once. */
static void on_default_signal(uv_signal_t *s, int signum) {
  mg_runtime *rt = s->data;
  if (rt->shut_down) {
    force_shutdown(rt, signum);
    return;
  }
  if (signum > 0 && signum < 64 && rt->env.signal_handlers[signum] > 0)
    return;
  mg_log_field f[] = {MG_LF_STR("signal", sig_name(signum))};
  mg_log(rt->env.logger, MG_LOG_INFO, "shutdown_signal", f, 1);
  mg_runtime_shutdown(rt, 128 + signum);
}

static void start_own_signals(mg_runtime *rt) {
  static const int sigs[2] = {SIGINT, SIGTERM};
  if (!rt->opts.handle_signals || rt->signals_started)
    return;
  rt->signals_started = 1;
  for (int i = 0; i < 2; i++) {
    uv_signal_t *s = malloc(sizeof *s);
    if (s == NULL)
      continue;
    uv_signal_init(rt->env.loop, s);
    s->data = rt;
    uv_signal_start(s, on_default_signal, sigs[i]);
    uv_unref((uv_handle_t *)s); /* never keeps the loop alive alone */
    rt->sig[i] = s;
  }
}

/* ----------------------------------------------------------- lifecycle */

void mg_runtime_opts_init(mg_runtime_opts *o) {
  memset(o, 0, sizeof *o);
  o->lua_mem_max_bytes = MG_RUNTIME_DEFAULT_LUA_MEM;
  o->cb_timeout_ms = MG_RUNTIME_DEFAULT_CB_TIMEOUT_MS;
  o->cb_instructions = MG_RUNTIME_DEFAULT_CB_INSTRUCTIONS;
}

int mg_runtime_new(const mg_runtime_opts *o, mg_runtime **out, char *err,
                   size_t err_len) {
  mg_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  rt->opts = *o;
  if (o->loop) {
    rt->env.loop = o->loop;
  } else {
    int rc = uv_loop_init(&rt->own_loop);
    if (rc < 0) {
      free(rt);
      return mg_errf(err, err_len, rc, "cannot create the event loop: %s",
                     uv_strerror(rc));
    }
    rt->owns_loop = 1;
    rt->env.loop = &rt->own_loop;
  }
  rt->env.logger = o->logger;
  rt->env.paths = o->paths;
  rt->env.cgroup_parent = o->cgroup_parent;
  rt->env.check_only = o->check_only;
  rt->env.cb_timeout_ms = o->cb_timeout_ms;
  rt->env.cb_instructions = o->cb_instructions;
  rt->env.mem_max = o->lua_mem_max_bytes;
  rt->env.on_exit = on_policy_exit;
  rt->env.host = rt;

  lua_State *L = lua_newstate(l_alloc, &rt->env);
  if (L == NULL) {
    if (rt->owns_loop)
      uv_loop_close(&rt->own_loop);
    free(rt);
    return mg_errf(err, err_len, -ENOMEM, "cannot create the Lua state");
  }
  lua_atpanic(L, l_panic);
  if (o->sandbox)
    open_sandbox(L);
  else
    luaL_openlibs(L);
  mg_lua_open(L, &rt->env);
  lua_getglobal(L, "os");
  lua_getglobal(L, "mg");
  lua_getfield(L, -1, "exit");
  lua_remove(L, -2);
  lua_pushcclosure(L, l_os_exit, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  find_scripts_dir(rt);
  if (rt->scripts_dir[0])
    add_path(L, rt->scripts_dir, o->sandbox);
  if (o->sandbox)
    sandbox_dirs[0] = rt->scripts_dir[0] ? rt->scripts_dir : NULL;
  *out = rt;
  return 0;
}

/* The runtime being loaded, for the load-time signal handler. */
static mg_runtime *volatile loading_rt;

static void on_load_signal(int signum) {
  mg_runtime *rt = loading_rt;
  if (rt) {
    rt->load_signal = signum;
    rt->env.interrupted = 1; /* the count hook raises "interrupted" */
  }
}

/* Run the chunk on the stack (with nargs args) as the top level. */
static int run_top(mg_runtime *rt, int nargs, char *err, size_t err_len) {
  mg_lua_env *env = &rt->env;
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_load_signal;
  sigemptyset(&sa.sa_mask);
  if (rt->opts.handle_signals) {
    /* libuv's handlers first, so that what the load hands back to is
     * theirs: a signal between the load and the loop is then delivered
     * by the loop, not fatal. */
    start_own_signals(rt);
    loading_rt = rt;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  uint64_t t = env->cb_timeout_ms, n = env->cb_instructions;
  env->cb_timeout_ms = rt->opts.setup_timeout_ms;
  env->cb_instructions = 0;
  env->call_is_setup = rt->opts.setup_timeout_ms > 0;
  int st = mg_lua_pcall_top(env->L, nargs, rt->opts.setup_timeout_ms > 0, err,
                            err_len);
  env->call_is_setup = 0;
  env->cb_timeout_ms = t;
  env->cb_instructions = n;
  if (rt->opts.handle_signals) {
    /* Restore only what is still ours: a policy that called mg.on_signal
     * has given the signal to libuv. */
    struct sigaction cur;
    sigaction(SIGINT, NULL, &cur);
    if (cur.sa_handler == on_load_signal)
      sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, NULL, &cur);
    if (cur.sa_handler == on_load_signal)
      sigaction(SIGTERM, &old_term, NULL);
    loading_rt = NULL;
  }
  env->interrupted = 0; /* not for a later callback */
  if (st == MG_LUA_ERROR) {
    if (rt->load_signal) {
      mg_runtime_shutdown(rt, 128 + rt->load_signal);
      return 0;
    }
    return MG_EPARSE;
  }
  if (st == MG_LUA_EXIT) {
    mg_runtime_shutdown(rt, env->exit_code);
  } else if (rt->load_signal) {
    /* It came too close to the end of the top level for the hook to
     * see it: hand it to the loop (the policy's handler if it set one
     * meanwhile, else the graceful default). */
    int sig = rt->load_signal;
    rt->load_signal = 0;
    raise(sig);
  }
  return 0;
}

int mg_runtime_load(mg_runtime *rt, const char *path, int argc,
                    char *const *argv, char *err, size_t err_len) {
  lua_State *L = rt->env.L;
  /* arg = { [0] = path, argv... } as in lua(1) */
  lua_createtable(L, argc, 1);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  /* require() finds modules next to the policy too */
  if (!rt->opts.sandbox) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    add_path(L, dirname(tmp), 0);
  }
  if (luaL_loadfilex(L, path, rt->opts.sandbox ? "t" : "bt") != LUA_OK) {
    mg_errf(err, err_len, MG_EPARSE, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return MG_EPARSE;
  }
  luaL_checkstack(L, argc + 4, "too many arguments");
  for (int i = 0; i < argc; i++)
    lua_pushstring(L, argv[i]);
  return run_top(rt, argc, err, err_len);
}

int mg_runtime_load_module(mg_runtime *rt, const char *module, int argc,
                           char *const *argv, char *err, size_t err_len) {
  static const char loader[] =
      "local name = ...\n"
      "local main = require(name)\n"
      "if type(main) ~= 'function' then\n"
      "  error(('module %s returns %s, not a function'):format(name, "
      "type(main)), 0)\n"
      "end\n"
      "return main(select(2, ...))\n";
  lua_State *L = rt->env.L;
  lua_createtable(L, argc, 1);
  lua_pushstring(L, module);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadbufferx(L, loader, sizeof loader - 1, "=mgrun", "t") != LUA_OK) {
    mg_errf(err, err_len, MG_EPARSE, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return MG_EPARSE;
  }
  luaL_checkstack(L, argc + 4, "too many arguments");
  lua_pushstring(L, module);
  for (int i = 0; i < argc; i++)
    lua_pushstring(L, argv[i]);
  return run_top(rt, argc + 1, err, err_len);
}

int mg_runtime_load_string(mg_runtime *rt, const char *code, const char *name,
                           char *err, size_t err_len) {
  lua_State *L = rt->env.L;
  if (luaL_loadbufferx(L, code, strlen(code), name, "t") != LUA_OK) {
    mg_errf(err, err_len, MG_EPARSE, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return MG_EPARSE;
  }
  return run_top(rt, 0, err, err_len);
}

int mg_runtime_run(mg_runtime *rt) {
  if (!rt->owns_loop)
    return -EINVAL;
  if (!rt->shut_down) {
    start_own_signals(rt);
    /* Running children keep the loop alive (the supervisor's handles). */
    uv_run(rt->env.loop, UV_RUN_DEFAULT);
  }
  /* Out of work, or shut down: close what is left, stop the children and
   * run until they are reaped and their cgroups removed. A shutdown that
   * was asked for during the load (mg.exit at top level, a signal) left
   * the signal handlers unstarted: start them now, so a second signal
   * can still force it. */
  if (!rt->sup_done)
    start_own_signals(rt);
  do_shutdown(rt);
  uv_run(rt->env.loop, UV_RUN_DEFAULT);
  return 0;
}

int mg_runtime_exit_requested(const mg_runtime *rt) {
  return rt->env.exit_requested;
}

int mg_runtime_exit_code(const mg_runtime *rt) {
  return rt->env.exit_requested ? rt->env.exit_code : 0;
}

unsigned long mg_runtime_callback_errors(const mg_runtime *rt) {
  return rt->env.callback_errors;
}

size_t mg_runtime_lua_mem(const mg_runtime *rt, size_t *peak_bytes) {
  if (peak_bytes)
    *peak_bytes = rt->env.mem_peak;
  return rt->env.mem_used;
}

lua_State *mg_runtime_lua(mg_runtime *rt) {
  return rt->env.L;
}

uv_loop_t *mg_runtime_loop(mg_runtime *rt) {
  return rt->env.loop;
}

void mg_runtime_free(mg_runtime *rt) {
  if (rt == NULL)
    return;
  mg_lua_close_handles(&rt->env);
  /* Children never outlive the runtime: stop them and wait (on a borrowed
   * loop too: this runs the caller's loop until they are reaped). */
  stop_children(rt);
  while (!rt->sup_done)
    if (uv_run(rt->env.loop, UV_RUN_ONCE) == 0 && !rt->sup_done)
      break; /* nothing left that could finish it (a supervisor bug) */
  close_own_signals(rt);
  if (rt->owns_loop)
    uv_run(rt->env.loop, UV_RUN_DEFAULT); /* run the close callbacks */
  lua_close(rt->env.L); /* releases every mg_child (process __gc) */
  if (rt->env.sup && rt->sup_done)
    mg_sup_free(rt->env.sup);
  rt->env.sup = NULL;
  if (rt->owns_loop)
    uv_loop_close(&rt->own_loop);
  free(rt);
}
