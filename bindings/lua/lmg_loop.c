/* lmg_loop.c — mg.every, mg.after, mg.on_signal, mg.on_pressure, mg.now
 * and the handle lifetime they share (bindings layer; libuv).
 *
 * Lifetime (as luv): the userdata holds a pointer to a heap mg_lua_handle.
 * The handle is freed when both its owners let go: the userdata (__gc) and
 * libuv (the close callback). While a handle is active it keeps a registry
 * reference to its own userdata, so Lua cannot collect it under libuv's
 * feet; stopping it (also from inside its own callback) closes it and
 * drops that reference. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg__lua.h"

#define TIMER_MT "mg.timer"
#define SIGNAL_MT "mg.signal"
#define PRESSURE_MT "mg.pressure"

static void link_handle(mg_lua_env *env, mg_lua_handle *h) {
  h->next = env->handles;
  h->prev = NULL;
  if (env->handles)
    env->handles->prev = h;
  env->handles = h;
}

static void unlink_handle(mg_lua_env *env, mg_lua_handle *h) {
  if (h->prev)
    h->prev->next = h->next;
  else if (env->handles == h)
    env->handles = h->next;
  if (h->next)
    h->next->prev = h->prev;
  h->prev = h->next = NULL;
}

static void release(mg_lua_handle *h) {
  if (--h->refs == 0)
    free(h);
}

static void on_close(uv_handle_t *uh) {
  release((mg_lua_handle *)uh->data);
}

/* Close: idempotent; drops the Lua references and the signal count. */
static void handle_close(mg_lua_handle *h) {
  mg_lua_env *env = h->env;
  lua_State *L = env->L;
  if (h->closing)
    return;
  h->closing = 1;
  unlink_handle(env, h);
  if (h->signum > 0 && h->signum <= 64 && env->signal_handlers[h->signum] > 0)
    env->signal_handlers[h->signum]--;
  luaL_unref(L, LUA_REGISTRYINDEX, h->cb_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, h->self_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, h->name_ref);
  h->cb_ref = h->self_ref = h->name_ref = LUA_NOREF;
  if (h->fd >= 0) { /* a pressure trigger: stop polling, then remove it */
    uv_poll_stop(&h->u.poll);
    close(h->fd);
    h->fd = -1;
  }
  uv_close(&h->u.handle, on_close);
}

void mg_lua_close_handles(mg_lua_env *env) {
  while (env->handles)
    handle_close(env->handles);
}

/* New userdata (closed state first), then the heap handle, initialised
 * with libuv and linked before anything else can raise, so __gc always
 * finds a consistent handle. */
static mg_lua_handle *handle_new(lua_State *L, const char *mt, const char *kind,
                                 int fn_idx, int fd) {
  mg_lua_env *env = mg_lua_env_get(L);
  mg_lua_handle **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, mt);
  mg_lua_handle *h = calloc(1, sizeof *h);
  if (h == NULL)
    luaL_error(L, "not enough memory for a %s", kind);
  h->env = env;
  h->kind = kind;
  h->refs = 2; /* the userdata and libuv */
  h->cb_ref = h->self_ref = h->name_ref = LUA_NOREF;
  h->fd = -1;
  if (strcmp(mt, TIMER_MT) == 0) {
    uv_timer_init(env->loop, &h->u.timer);
  } else if (strcmp(mt, SIGNAL_MT) == 0) {
    uv_signal_init(env->loop, &h->u.signal);
  } else if (uv_poll_init(env->loop, &h->u.poll, fd) < 0) {
    free(h);
    close(fd);
    return luaL_error(L, "cannot watch the %s descriptor", kind), NULL;
  } else {
    h->fd = fd;
  }
  h->u.handle.data = h;
  link_handle(env, h);
  *ud = h;
  lua_pushvalue(L, fn_idx);
  h->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  h->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return h;
}

/* The handle userdata of a method call: a timer or a signal handle, as
 * the method's own type (`mt`); never trusted without the check. */
static mg_lua_handle **check_ud(lua_State *L, const char *mt,
                                const char *method) {
  return mg_lua_check_self(L, mt, method);
}

/* __gc / __close: close if still open, then let go of the heap part. */
static int handle_gc_of(lua_State *L, const char *mt, const char *method) {
  mg_lua_handle **ud = check_ud(L, mt, method);
  mg_lua_handle *h = *ud;
  if (h == NULL)
    return 0;
  *ud = NULL;
  if (!h->closing)
    handle_close(h);
  release(h);
  return 0;
}

/* ------------------------------------------------------------ timers */

static void on_timer(uv_timer_t *t) {
  mg_lua_handle *h = t->data;
  lua_State *L = h->env->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->cb_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->self_ref);
  if (h->oneshot)
    handle_close(h); /* done after this call; the stack holds fn + self */
  mg_lua_pcall(L, 1, 0, h->oneshot ? "timer (mg.after)" : "timer (mg.every)",
               NULL);
}

/* No new handle once the shutdown has begun (it would keep the loop, and
 * the state it calls into, alive after the policy was closed). */
static int shutting_down(lua_State *L, const char *what) {
  return mg_lua_failf(L, -ECANCELED, "mgrun is shutting down: no new %s", what);
}

static int start_timer(lua_State *L, int repeat) {
  lua_Number ms = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (mg_lua_env_get(L)->closing_handles)
    return shutting_down(L, "timer");
  if (repeat)
    luaL_argcheck(L, ms >= 1 && ms <= 1e12, 1,
                  "interval must be 1 ms to 1e12 ms");
  else
    luaL_argcheck(L, ms >= 0 && ms <= 1e12, 1, "delay must be 0 ms to 1e12 ms");
  mg_lua_handle *h = handle_new(L, TIMER_MT, "timer", 2, -1);
  h->oneshot = !repeat;
  h->repeat_ms = repeat ? (uint64_t)ms : 0;
  /* The loop's clock is cached per iteration (and stale during a long
   * setup): refresh it so the delay counts from now. */
  uv_update_time(h->env->loop);
  uv_timer_start(&h->u.timer, on_timer, (uint64_t)ms, h->repeat_ms);
  return 1;
}

/* mg.every(ms, fn) → timer; fn(timer) every ms milliseconds. */
static int l_every(lua_State *L) {
  return start_timer(L, 1);
}

/* mg.after(ms, fn) → timer; fn(timer) once, ms milliseconds from now. */
static int l_after(lua_State *L) {
  return start_timer(L, 0);
}

/* timer:stop() / signal:stop() — idempotent, safe inside the callback. */
static int handle_stop(lua_State *L, const char *mt, const char *method) {
  mg_lua_handle **ud = check_ud(L, mt, method);
  if (*ud && !(*ud)->closing)
    handle_close(*ud);
  return 0;
}

/* handle:active() → whether it will still fire. */
static int handle_active(lua_State *L, const char *mt) {
  mg_lua_handle **ud = check_ud(L, mt, "active");
  lua_pushboolean(L, *ud && !(*ud)->closing);
  return 1;
}

#define HANDLE_METHODS(prefix, MT)                                             \
  static int prefix##_stop(lua_State *L) {                                     \
    return handle_stop(L, MT, "stop");                                         \
  }                                                                            \
  static int prefix##_close(lua_State *L) {                                    \
    return handle_stop(L, MT, "close");                                        \
  }                                                                            \
  static int prefix##_closemm(lua_State *L) {                                  \
    return handle_stop(L, MT, "__close");                                      \
  }                                                                            \
  static int prefix##_active(lua_State *L) {                                   \
    return handle_active(L, MT);                                               \
  }                                                                            \
  static int prefix##_gc(lua_State *L) {                                       \
    return handle_gc_of(L, MT, "__gc");                                        \
  }
HANDLE_METHODS(timer, TIMER_MT)
HANDLE_METHODS(signal, SIGNAL_MT)
HANDLE_METHODS(pressure, PRESSURE_MT)

static int l_timer_tostring(lua_State *L) {
  mg_lua_handle *h = *check_ud(L, TIMER_MT, "__tostring");
  if (h == NULL || h->closing)
    lua_pushliteral(L, "mg.timer (stopped)");
  else if (h->oneshot)
    lua_pushliteral(L, "mg.timer (once)");
  else
    lua_pushfstring(L, "mg.timer (every %I ms)", (lua_Integer)h->repeat_ms);
  return 1;
}

/* ------------------------------------------------------------ signals */

/* The signals a policy may handle (names as mg_signal_name spells them). */
static const int policy_signals[] = {SIGINT,  SIGTERM, SIGHUP,
                                     SIGUSR1, SIGUSR2, 0};

static const char *signal_name(int signum) {
  const char *n = mg_signal_name(signum);
  return n ? n : "?";
}

static void on_signal(uv_signal_t *s, int signum) {
  mg_lua_handle *h = s->data;
  lua_State *L = h->env->L;
  char what[32];
  snprintf(what, sizeof what, "signal %s", signal_name(signum));
  if (!lua_checkstack(L, 4))
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->cb_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->name_ref); /* interned at start */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->self_ref);
  mg_lua_pcall(L, 2, 0, what, NULL);
}

/* mg.on_signal(name, fn) → handle; fn(name, handle) on each delivery.
 * A policy that handles INT or TERM takes over mgrun's default (graceful
 * shutdown) for that signal until the handle is stopped. */
static int l_on_signal(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  const char *name = mg_lua_check_text(L, 1, NULL, NULL);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int signum = 0, parsed = 0;
  if (mg_signal_parse(name, &parsed, NULL, 0) == 0 &&
      !(name[0] >= '0' && name[0] <= '9'))
    for (int i = 0; policy_signals[i]; i++)
      if (policy_signals[i] == parsed)
        signum = parsed;
  if (signum && env->closing_handles)
    return shutting_down(L, "signal handler");
  if (signum == 0)
    return luaL_argerror(L, 1,
                         lua_pushfstring(L,
                                         "unknown signal '%s' (accepted: "
                                         "INT, TERM, HUP, USR1, USR2)",
                                         lua_tostring(L, 1)));
  mg_lua_handle *h = handle_new(L, SIGNAL_MT, "signal", 2, -1);
  h->signum = signum;
  lua_pushstring(L, signal_name(signum));
  h->name_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  env->signal_handlers[signum]++;
  uv_signal_start(&h->u.signal, on_signal, signum);
  return 1;
}

static int l_signal_tostring(lua_State *L) {
  mg_lua_handle *h = *check_ud(L, SIGNAL_MT, "__tostring");
  if (h == NULL || h->closing)
    lua_pushliteral(L, "mg.signal (stopped)");
  else
    lua_pushfstring(L, "mg.signal (%s)", signal_name(h->signum));
  return 1;
}

/* ----------------------------------------------------------- pressure */

/* The trigger fired: fn(psi, handle) with psi = { kind, stall_ms,
 * window_ms, some = { avg10, avg60, avg300, total_us }, full = {...} }
 * read from /proc/pressure/memory now. */
static void on_pressure(uv_poll_t *p, int status, int events) {
  mg_lua_handle *h = p->data;
  lua_State *L = h->env->L;
  (void)events;
  if (status < 0 || h->closing || !lua_checkstack(L, 8))
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->cb_ref);
  lua_createtable(L, 0, 5);
  mg_lua_setstr(L, "kind", h->full ? "full" : "some");
  mg_lua_setu64(L, "stall_ms", h->stall_us / 1000);
  mg_lua_setu64(L, "window_ms", h->window_us / 1000);
  mg_psi psi;
  if (mg_psi_read(h->env->paths.proc_root, &psi, NULL, 0) == 0) {
    const mg_psi_line *lines[2] = {&psi.some, &psi.full};
    const char *names[2] = {"some", "full"};
    for (int i = 0; i < 1 + psi.has_full; i++) {
      lua_createtable(L, 0, 4);
      mg_lua_setnum(L, "avg10", lines[i]->avg10);
      mg_lua_setnum(L, "avg60", lines[i]->avg60);
      mg_lua_setnum(L, "avg300", lines[i]->avg300);
      mg_lua_setu64(L, "total_us", lines[i]->total_us);
      lua_setfield(L, -2, names[i]);
    }
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->self_ref);
  mg_lua_pcall(L, 2, 0, "pressure (mg.on_pressure)", NULL);
}

/* mg.on_pressure{ kind = "some"|"full", stall_ms = 150, window_ms = 2000,
 * fn = function(psi, handle) end } → handle | nil, err, code. A PSI
 * trigger on /proc/pressure/memory; a window the kernel refuses (below
 * 2 s without CAP_SYS_RESOURCE) falls back to the shortest 2 s multiple
 * that arms, the stall keeping its share: handle.window_ms, .stall_ms and
 * .fallback say what is armed. */
static int l_on_pressure(lua_State *L) {
  static const char *const accepted[] = {"kind", "stall_ms", "window_ms", "fn",
                                         NULL};
  mg_lua_env *env = mg_lua_env_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  mg_lua_check_options(L, 1, "on_pressure", accepted);
  int full = 0;
  if (lua_getfield(L, 1, "kind") != LUA_TNIL) {
    const char *k = mg_lua_check_text(L, -1, "kind", NULL);
    if (strcmp(k, "some") != 0 && strcmp(k, "full") != 0)
      return mg_lua_failf(L, -EINVAL, "kind: '%s' (accepted: some, full)", k);
    full = strcmp(k, "full") == 0;
  }
  lua_Integer v[2] = {150, 2000};
  const char *names[2] = {"stall_ms", "window_ms"};
  for (int i = 0; i < 2; i++) {
    int t = lua_getfield(L, 1, names[i]);
    if (t != LUA_TNIL && !lua_isinteger(L, -1))
      return luaL_error(L,
                        "bad option '%s' to 'on_pressure' (integer "
                        "milliseconds expected, got %s)",
                        names[i], luaL_typename(L, -1));
    if (t != LUA_TNIL)
      v[i] = lua_tointeger(L, -1);
  }
  if (lua_getfield(L, 1, "fn") != LUA_TFUNCTION)
    return luaL_error(L,
                      "bad option 'fn' to 'on_pressure' (function "
                      "expected, got %s)",
                      luaL_typename(L, -1));
  int fn = lua_gettop(L);
  if (env->closing_handles)
    return shutting_down(L, "pressure handler");
  char path[512], err[768];
  for (int i = 0; i < 2; i++) /* the rule is the core's: negatives are 0 */
    if (v[i] < 0 || v[i] > 1000000)
      v[i] = v[i] < 0 ? 0 : 1000000;
  if (mg_psi_trigger_check((uint64_t)v[0] * 1000, (uint64_t)v[1] * 1000, err,
                           sizeof err) < 0)
    return mg_lua_fail(L, -EINVAL, err);
  snprintf(path, sizeof path, "%s/pressure/memory",
           env->paths.proc_root ? env->paths.proc_root : "/proc");
  mg_psi_trigger t;
  int rc = mg_psi_trigger_arm(path, full, (uint64_t)v[0] * 1000,
                              (uint64_t)v[1] * 1000, &t, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  mg_lua_handle *h = handle_new(L, PRESSURE_MT, "pressure trigger", fn, t.fd);
  h->full = full;
  h->stall_us = t.stall_us;
  h->window_us = t.window_us;
  snprintf(h->why, sizeof h->why, "%s", t.why);
  if (t.fell_back)
    mg_log(env->logger, MG_LOG_INFO, "pressure_window_fallback",
           (mg_log_field[]){MG_LF_STR("why", t.why)}, 1);
  uv_poll_start(&h->u.poll, UV_PRIORITIZED, on_pressure);
  return 1;
}

/* handle.window_ms / .stall_ms / .kind / .fallback (the why, or nil). */
static int l_pressure_index(lua_State *L) {
  mg_lua_handle *h = *check_ud(L, PRESSURE_MT, "__index");
  const char *k = luaL_checkstring(L, 2);
  if (h && strcmp(k, "window_ms") == 0)
    lua_pushinteger(L, (lua_Integer)(h->window_us / 1000));
  else if (h && strcmp(k, "stall_ms") == 0)
    lua_pushinteger(L, (lua_Integer)(h->stall_us / 1000));
  else if (h && strcmp(k, "kind") == 0)
    lua_pushstring(L, h->full ? "full" : "some");
  else if (h && strcmp(k, "fallback") == 0) {
    if (h->why[0])
      lua_pushstring(L, h->why);
    else
      lua_pushnil(L);
  } else {
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int l_pressure_tostring(lua_State *L) {
  mg_lua_handle *h = *check_ud(L, PRESSURE_MT, "__tostring");
  if (h == NULL || h->closing)
    lua_pushliteral(L, "mg.pressure (stopped)");
  else
    lua_pushfstring(
        L, "mg.pressure (%s %I ms in %I ms)", h->full ? "full" : "some",
        (lua_Integer)(h->stall_us / 1000), (lua_Integer)(h->window_us / 1000));
  return 1;
}

/* mg.now() → milliseconds (float) on a monotonic clock. */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

static void new_handle_mt(lua_State *L, const char *mt, const luaL_Reg *methods,
                          lua_CFunction gc, lua_CFunction close,
                          lua_CFunction tostring) {
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, mt); /* getmetatable(h) gives the name, not the table */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

void mg_lua_open_loop(lua_State *L) {
  static const luaL_Reg fns[] = {{"every", l_every},
                                 {"after", l_after},
                                 {"on_signal", l_on_signal},
                                 {"on_pressure", l_on_pressure},
                                 {"now", l_now},
                                 {NULL, NULL}};
  static const luaL_Reg timer_methods[] = {{"stop", timer_stop},
                                           {"close", timer_close},
                                           {"active", timer_active},
                                           {NULL, NULL}};
  static const luaL_Reg signal_methods[] = {{"stop", signal_stop},
                                            {"close", signal_close},
                                            {"active", signal_active},
                                            {NULL, NULL}};
  new_handle_mt(L, TIMER_MT, timer_methods, timer_gc, timer_closemm,
                l_timer_tostring);
  new_handle_mt(L, SIGNAL_MT, signal_methods, signal_gc, signal_closemm,
                l_signal_tostring);
  static const luaL_Reg pressure_methods[] = {{"stop", pressure_stop},
                                              {"close", pressure_close},
                                              {"active", pressure_active},
                                              {NULL, NULL}};
  new_handle_mt(L, PRESSURE_MT, pressure_methods, pressure_gc, pressure_closemm,
                l_pressure_tostring);
  luaL_getmetatable(L, PRESSURE_MT); /* fields as well as methods */
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, l_pressure_index);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
