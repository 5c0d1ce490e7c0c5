/* mg_runtime.c — the runtime host: owns (or borrows) the uv_loop_t, owns
 * the supervisor and the Lua state, loads the policy, runs the loop, shuts
 * down cleanly (host layer: the bindings through lua/mg_lua.h, the
 * supervisor, libuv, libmg).
 *
 * Signals. With handle_signals, SIGINT and SIGTERM mean a graceful
 * shutdown (128+N) unless the policy handles them; a second one during
 * the shutdown kills the children at once. While the policy's top level
 * runs, the loop does not, so the runtime watches the two signals on a
 * small loop of its own that the budget hook polls: a signal interrupts
 * the top level (unless the policy took that signal with mg.on_signal).
 * libuv hands every signal to each loop that watches it, so the main loop
 * sees the same signal later; the runtime skips that copy when the top
 * level already acted on it. Nothing of this is process-wide state of
 * ours: libuv owns the signal dispositions.
 *
 * Attached (mg__rt_attach, for mg.so): the Lua state is a stock
 * interpreter's. The runtime does not make, open or close it; it owns the
 * loop, the supervisor and the bindings' env around it, and watches INT
 * and TERM only while its loop runs (mg__rt_run_mode).
 */
#include <errno.h>
#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg__runtime.h"

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
  mg__rt_ops_stop(rt);
}

/* Stop the children: SIGTERM, grace, SIGKILL, reap, remove cgroups; the
 * loop runs until on_sup_done (the supervisor's handles keep it alive). */
static void stop_children(mg_runtime *rt) {
  if (rt->sup == NULL || mg_sup_children(rt->sup, NULL, 0) == 0) {
    rt->sup_done = 1; /* nothing to stop (mg_sup_free closes the rest) */
    return;
  }
  if (rt->sup_stopping)
    return;
  rt->sup_stopping = 1;
  mg_sup_shutdown(rt->sup, on_sup_done, rt);
}

static void do_shutdown(mg_runtime *rt) {
  if (rt->shut_down)
    return;
  rt->shut_down = 1;
  mg_lua_shutdown(rt->env);
  stop_children(rt);
  if (rt->sup_done) {
    close_own_signals(rt);
    mg__rt_ops_stop(rt);
  }
  if (rt->opts.on_exit) {
    int code;
    mg_lua_exit_requested(rt->env, &code);
    rt->opts.on_exit(rt, code, rt->opts.on_exit_ud);
  }
}

/* mg.exit from the policy (called once by the bindings). */
static void on_policy_exit(void *ud, int code) {
  mg_runtime *rt = ud;
  mg_log_field f[] = {MG_LF_INT("code", code)};
  mg_log(rt->opts.logger, MG_LOG_INFO, "exit_requested", f, 1);
  do_shutdown(rt);
}

void mg_runtime_shutdown(mg_runtime *rt, int code) {
  mg_lua_request_exit(rt->env, code);
  do_shutdown(rt);
}

static const char *sig_name(int signum) {
  return signum == SIGINT ? "INT" : signum == SIGTERM ? "TERM" : "?";
}

/* A second INT/TERM while children are still being stopped: SIGKILL
 * every child's process group now instead of waiting for the grace
 * period (the supervisor still kills what is left of their cgroups). */
static void force_shutdown(mg_runtime *rt, int signum) {
  if (rt->sup == NULL || rt->sup_done)
    return;
  rt->forced = 1;
  mg_log_field f[] = {MG_LF_STR("signal", sig_name(signum))};
  mg_log(rt->opts.logger, MG_LOG_WARN, "shutdown_forced", f, 1);
  size_t n = mg_sup_children(rt->sup, NULL, 0); /* how many */
  mg_child **kids = calloc(n ? n : 1, sizeof *kids);
  if (kids == NULL)
    return;
  n = mg_sup_children(rt->sup, kids, n);
  for (size_t i = 0; i < n; i++)
    mg_child_signal(kids[i], SIGKILL);
  free(kids);
}

/* Default SIGINT/SIGTERM: graceful shutdown with 128+N — unless the
 * policy handles that signal itself. A second one during the shutdown
 * kills the children at once. */
static void on_default_signal(uv_signal_t *s, int signum) {
  mg_runtime *rt = s->data;
  if (signum > 0 && signum <= 64 && rt->skip[signum] > 0) {
    rt->skip[signum]--; /* the top level already acted on this one */
    return;
  }
  if (rt->shut_down) {
    force_shutdown(rt, signum);
    return;
  }
  if (mg_lua_signal_handlers(rt->env, signum) > 0)
    return;
  mg_log_field f[] = {MG_LF_STR("signal", sig_name(signum))};
  mg_log(rt->opts.logger, MG_LOG_INFO, "shutdown_signal", f, 1);
  mg_runtime_shutdown(rt, 128 + signum);
}

static void start_own_signals(mg_runtime *rt) {
  static const int sigs[2] = {SIGINT, SIGTERM};
  if (!rt->opts.handle_signals)
    return;
  if (rt->signals_started) { /* again, after a pause */
    for (int i = 0; i < 2 && rt->signals_paused; i++)
      if (rt->sig[i])
        uv_signal_start(rt->sig[i], on_default_signal, sigs[i]);
    rt->signals_paused = 0;
    return;
  }
  rt->signals_started = 1;
  for (int i = 0; i < 2; i++) {
    uv_signal_t *s = malloc(sizeof *s);
    if (s == NULL)
      continue;
    uv_signal_init(rt->loop, s);
    s->data = rt;
    uv_signal_start(s, on_default_signal, sigs[i]);
    uv_unref((uv_handle_t *)s); /* never keeps the loop alive alone */
    rt->sig[i] = s;
  }
}

/* Attached, when a run ends: between runs the two signals are the
 * interpreter's again (libuv gives them their default action back). */
static void pause_own_signals(mg_runtime *rt) {
  for (int i = 0; i < 2; i++)
    if (rt->sig[i])
      uv_signal_stop(rt->sig[i]);
  rt->signals_paused = 1;
}

/* ----------------------------------------------------------- lifecycle */

static int l_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "mgrun: unprotected Lua error (bug): %s\n", msg ? msg : "?");
  abort();
}

static void runtime_free_parts(mg_runtime *rt) {
  if (rt->env)
    mg_lua_close(rt->env);
  if (rt->sup)
    mg_sup_free(rt->sup);
  mg__rt_share_close(rt);
  if (rt->owns_loop) {
    uv_run(&rt->own_loop, UV_RUN_DEFAULT); /* close callbacks */
    uv_loop_close(&rt->own_loop);
  }
  mg__rt_share_destroy(rt);
  free(rt);
}

/* Attached: mg.exit's unwinding reached the program's own code. Outside
 * the loop, the caller of mg__rt_attach may finish the exit there. */
static void on_policy_exit_unwind(void *ud, int code) {
  mg_runtime *rt = ud;
  if (rt->unwind && !rt->running)
    rt->unwind(rt, code, rt->unwind_ud);
}

/* A runtime on a Lua state of its own (foreign NULL) or on the caller's. */
static int runtime_make(const mg_runtime_opts *o, lua_State *foreign,
                        mg__rt_unwind_fn unwind, void *unwind_ud,
                        mg_runtime **out, char *err, size_t err_len) {
  *out = NULL;
  mg_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  rt->opts = *o;
  if (o->loop) {
    rt->loop = o->loop;
  } else {
    int rc = uv_loop_init(&rt->own_loop);
    if (rc < 0) {
      free(rt);
      return mg_errf(err, err_len, rc, "cannot create the event loop: %s",
                     uv_strerror(rc));
    }
    rt->owns_loop = 1;
    rt->loop = &rt->own_loop;
  }
  int rc = mg__rt_share_init(rt, err, err_len);
  if (rc < 0) {
    runtime_free_parts(rt);
    return rc;
  }
  /* The supervisor first: a bad cgroup_parent is reported at start, and
   * stale groups of a dead earlier run go now, not at the first spawn. */
  mg_sup_opts so;
  memset(&so, 0, sizeof so);
  so.loop = rt->loop;
  so.logger = o->logger;
  so.paths = o->paths;
  so.cgroup_parent = o->cgroup_parent;
  rc = mg_sup_new(&so, &rt->sup, err, err_len);
  if (rc < 0) {
    rt->sup = NULL;
    runtime_free_parts(rt);
    return rc;
  }
  mg_lua_config c;
  mg_lua_config_init(&c);
  c.loop = rt->loop;
  c.logger = o->logger;
  c.sup = rt->sup;
  c.paths = o->paths;
  c.cgroup_parent = o->cgroup_parent;
  c.check_only = o->check_only;
  c.mem_max_bytes = o->lua_mem_max_bytes;
  c.callback.timeout_ms = o->cb_timeout_ms;
  c.callback.instructions = o->cb_instructions;
  c.sandbox = o->sandbox;
  c.allow_spawn = o->allow_spawn;
  c.allow_dirs = o->allow_dirs;
  c.on_exit = on_policy_exit;
  c.ud = rt;
  if (foreign) {
    rt->attached = 1;
    rt->unwind = unwind;
    rt->unwind_ud = unwind_ud;
    c.exit_unwind = on_policy_exit_unwind;
    rc = mg_lua_attach(foreign, &c, &rt->env, err, err_len);
    rt->L = rc == 0 ? mg_lua_state(rt->env) : NULL;
  } else {
    rc = mg_lua_new(&c, &rt->L, &rt->env, err, err_len);
  }
  if (rc < 0) {
    runtime_free_parts(rt);
    return rc;
  }
  if (foreign) { /* its libraries and its `mg` are the caller's to make */
    *out = rt;
    return 0;
  }
  lua_atpanic(rt->L, l_panic);
  mg_lua_open(rt->L);
  mg__rt_find_scripts(o->scripts_dir, rt->scripts_dir, sizeof rt->scripts_dir);
  mg__rt_open_libs(rt->L, o->sandbox, rt->scripts_dir);
  if (!o->check_only && (rc = mg__rt_ops_start(rt, err, err_len)) < 0) {
    mg_runtime_free(rt);
    return rc;
  }
  *out = rt;
  return 0;
}

int mg_runtime_new(const mg_runtime_opts *o, mg_runtime **out, char *err,
                   size_t err_len) {
  return runtime_make(o, NULL, NULL, NULL, out, err, err_len);
}

int mg__rt_attach(lua_State *L, const mg_runtime_opts *o,
                  mg__rt_unwind_fn unwind, void *unwind_ud, mg_runtime **out,
                  char *err, size_t err_len) {
  *out = NULL;
  if (o->sandbox || o->check_only)
    return mg_errf(err, err_len, -EINVAL,
                   "an attached runtime has no sandbox and no check mode");
  return runtime_make(o, L, unwind, unwind_ud, out, err, err_len);
}

/* ----------------------------------------------------------- loading */

static void on_load_signal(uv_signal_t *s, int signum) {
  mg_runtime *rt = s->data;
  /* a policy that took the signal (mg.on_signal) gets it from the loop */
  if (mg_lua_signal_handlers(rt->env, signum) == 0 && !rt->load_signal)
    rt->load_signal = signum;
}

/* Polled by the budget hook while the top level runs. */
static int poll_load(void *ud) {
  mg_runtime *rt = ud;
  uv_run(&rt->load_loop, UV_RUN_NOWAIT);
  return rt->load_signal != 0;
}

static int load_watch_start(mg_runtime *rt) {
  static const int sigs[2] = {SIGINT, SIGTERM};
  if (uv_loop_init(&rt->load_loop) < 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    uv_signal_init(&rt->load_loop, &rt->load_sig[i]);
    rt->load_sig[i].data = rt;
    uv_signal_start(&rt->load_sig[i], on_load_signal, sigs[i]);
  }
  return 0;
}

static void load_watch_stop(mg_runtime *rt) {
  uv_run(&rt->load_loop, UV_RUN_NOWAIT); /* a signal of the last moment */
  for (int i = 0; i < 2; i++)
    uv_close((uv_handle_t *)&rt->load_sig[i], NULL);
  uv_run(&rt->load_loop, UV_RUN_DEFAULT);
  uv_loop_close(&rt->load_loop);
}

/* Run the chunk on the stack (with nargs args) as the top level. */
static int run_top(mg_runtime *rt, int nargs, char *err, size_t err_len) {
  int watching = 0;
  if (rt->opts.handle_signals) {
    /* the main loop's handlers first, so that a signal between the load
     * and the loop is delivered by the loop */
    start_own_signals(rt);
    watching = load_watch_start(rt) == 0;
  }
  rt->load_signal = 0;
  int st = mg_lua_run_top(rt->env, nargs, rt->opts.setup_timeout_ms,
                          watching ? poll_load : NULL, rt, MG__LOAD_POLL_MS,
                          err, err_len);
  if (watching)
    load_watch_stop(rt);
  int sig = rt->load_signal;
  if (st == MG_LUA_ERROR && sig) { /* interrupted: a graceful shutdown */
    rt->skip[sig]++;
    mg_log_field f[] = {MG_LF_STR("signal", sig_name(sig))};
    mg_log(rt->opts.logger, MG_LOG_INFO, "shutdown_signal", f, 1);
    mg_runtime_shutdown(rt, 128 + sig);
    return 0;
  }
  if (st == MG_LUA_ERROR)
    return MG_EPARSE;
  if (st == MG_LUA_EXIT) {
    int code;
    mg_lua_exit_requested(rt->env, &code);
    mg_runtime_shutdown(rt, code);
  }
  /* A signal the top level did not act on reaches the main loop's
   * handler (or the policy's) when the loop runs. */
  return 0;
}

/* arg = { [0] = name, argv... } as in lua(1) */
static void set_arg(lua_State *L, const char *name, int argc,
                    char *const *argv) {
  lua_createtable(L, argc, 1);
  lua_pushstring(L, name);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
}

static int load_file(mg_runtime *rt, const char *path, int argc,
                     char *const *argv, char *err, size_t err_len) {
  lua_State *L = rt->L;
  set_arg(L, path, argc, argv);
  /* require() finds modules next to the policy too */
  if (!rt->opts.sandbox) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    mg__rt_add_path(L, dirname(tmp));
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

static int load_module(mg_runtime *rt, const char *module, int argc,
                       char *const *argv, char *err, size_t err_len) {
  static const char loader[] =
      "local name = ...\n"
      "local main = require(name)\n"
      "if type(main) ~= 'function' then\n"
      "  error(('module %s returns %s, not a function'):format(name, "
      "type(main)), 0)\n"
      "end\n"
      "return main(select(2, ...))\n";
  lua_State *L = rt->L;
  set_arg(L, module, argc, argv);
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

static int load_string(mg_runtime *rt, const char *code, const char *name,
                       char *err, size_t err_len) {
  lua_State *L = rt->L;
  if (luaL_loadbufferx(L, code, strlen(code), name, "t") != LUA_OK) {
    mg_errf(err, err_len, MG_EPARSE, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return MG_EPARSE;
  }
  return run_top(rt, 0, err, err_len);
}

/* The thread that loads owns the runtime meanwhile (mg_runtime_share.c):
 * other threads' calls wait for the top level to end. */
int mg_runtime_load(mg_runtime *rt, const char *path, int argc,
                    char *const *argv, char *err, size_t err_len) {
  mg__rt_share_enter(rt, 0);
  int rc = load_file(rt, path, argc, argv, err, err_len);
  mg__rt_share_leave(rt);
  return rc;
}

int mg_runtime_load_module(mg_runtime *rt, const char *module, int argc,
                           char *const *argv, char *err, size_t err_len) {
  mg__rt_share_enter(rt, 0);
  int rc = load_module(rt, module, argc, argv, err, err_len);
  mg__rt_share_leave(rt);
  return rc;
}

int mg_runtime_load_string(mg_runtime *rt, const char *code, const char *name,
                           char *err, size_t err_len) {
  mg__rt_share_enter(rt, 0);
  int rc = load_string(rt, code, name, err, err_len);
  mg__rt_share_leave(rt);
  return rc;
}

/* ----------------------------------------------------------- running */

int mg__rt_run_mode(mg_runtime *rt, uv_run_mode mode) {
  if (!rt->owns_loop)
    return -EINVAL;
  if (rt->running || mg_lua_in_call(rt->env))
    return -EBUSY;
  if (rt->shut_down)
    return -ECANCELED;
  rt->running = 1;
  start_own_signals(rt);
  int alive = uv_run(rt->loop, mode);
  rt->running = 0;
  if (rt->attached && !rt->shut_down)
    pause_own_signals(rt);
  return alive;
}

int mg_runtime_run(mg_runtime *rt) {
  if (!rt->owns_loop)
    return -EINVAL;
  mg__rt_share_enter(rt, 1);
  rt->running = 1;
  if (!rt->shut_down) {
    start_own_signals(rt);
    /* Running children keep the loop alive (the supervisor's handles). */
    uv_run(rt->loop, UV_RUN_DEFAULT);
  }
  /* Out of work, or shut down: close what is left, stop the children and
   * run until they are reaped and their cgroups removed. A shutdown that
   * was asked for during the load (mg.exit at top level, a signal) left
   * the signal handlers unstarted: start them now, so a second signal
   * can still force it. */
  if (!rt->sup_done)
    start_own_signals(rt);
  do_shutdown(rt);
  uv_run(rt->loop, UV_RUN_DEFAULT);
  rt->running = 0;
  mg__rt_share_leave(rt);
  return 0;
}

int mg_runtime_exit_requested(const mg_runtime *rt) {
  return mg_lua_exit_requested(rt->env, NULL);
}

int mg_runtime_exit_code(const mg_runtime *rt) {
  int code;
  mg_lua_exit_requested(rt->env, &code);
  return code;
}

unsigned long mg_runtime_callback_errors(const mg_runtime *rt) {
  return mg_lua_callback_errors(rt->env);
}

size_t mg_runtime_lua_mem(const mg_runtime *rt, size_t *peak_bytes) {
  return mg_lua_mem(rt->env, peak_bytes);
}

lua_State *mg_runtime_lua(mg_runtime *rt) {
  return rt->L;
}

uv_loop_t *mg_runtime_loop(mg_runtime *rt) {
  return rt->loop;
}

mg_sup *mg_runtime_sup(mg_runtime *rt) {
  return rt->sup;
}

void mg_runtime_free(mg_runtime *rt) {
  if (rt == NULL)
    return;
  mg__rt_share_close(rt); /* other threads' calls fail from now on */
  if (rt->running) {
    /* Freed from inside its own loop: an attached state closed by a
     * callback (os.exit(code, true) in mg.so), and the process ends next.
     * The loop cannot run here: kill and reap the children at once, and
     * leave the runtime and its loop to the exit (uv_run is below us). */
    mg__rt_ops_stop(rt);
    mg_lua_close(rt->env);
    rt->env = NULL;
    mg_sup_free(rt->sup);
    rt->sup = NULL;
    close_own_signals(rt);
    return;
  }
  mg_lua_shutdown(rt->env);
  /* Children never outlive the runtime: stop them and wait (on a borrowed
   * loop too: this runs the caller's loop until they are reaped). */
  stop_children(rt);
  if (rt->sup_done)
    mg__rt_ops_stop(rt);
  while (!rt->sup_done)
    if (uv_run(rt->loop, UV_RUN_ONCE) == 0 && !rt->sup_done)
      break; /* nothing left that could finish it (a supervisor bug) */
  close_own_signals(rt);
  if (rt->owns_loop)
    uv_run(rt->loop, UV_RUN_DEFAULT); /* run the close callbacks */
  mg_lua_close(rt->env); /* releases every mg_child (process __gc) */
  rt->env = NULL;
  mg_sup_free(rt->sup); /* unfinished: kills and reaps what is left */
  rt->sup = NULL;
  if (rt->owns_loop) {
    uv_run(rt->loop, UV_RUN_DEFAULT); /* the supervisor's last closes */
    uv_loop_close(&rt->own_loop);
  }
  mg__rt_share_destroy(rt);
  free(rt);
}
