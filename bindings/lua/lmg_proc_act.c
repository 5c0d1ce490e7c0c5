/* lmg_proc_act.c — the process object's actions finer than a kill and
 * its run-time watches (bindings layer, on the supervisor): p:kill{},
 * p:throttle / p:unthrottle, p:freeze / p:thaw, p:watch (and its handle),
 * p:pressure. The rest of the object is lmg_proc.c's. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/mg__lproc.h"

#define WATCH_MT "mg.watch"

typedef mg_lproc lproc;

int mg_lua_check_level(lua_State *L, int idx, const char *what,
                       mg_threshold *out, char *err, size_t len) {
  memset(out, 0, sizeof *out);
  const char *of = strstr(what, "gpu_limit") ? "of the memory of its GPUs"
                                             : "of the process's limit";
  size_t n = 0;
  const char *s =
      lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
  if (s && n > 0 && s[n - 1] == '%') { /* a share of the child's limit */
    char num[64];
    if (n - 1 == 0 || n - 1 >= sizeof num || strlen(s) != n)
      return mg_errf(err, len, MG_EPARSE,
                     "%s: invalid percentage '%s' (accepted: \"80%%\", "
                     "above 0 and up to 100, %s)",
                     what, s, of);
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    char *end;
    double v = strtod(num, &end);
    if (*end != '\0' || end == num || !(v > 0) || v > 100 || isnan(v))
      return mg_errf(err, len, v > 100 ? MG_ERANGE_SIZE : MG_EPARSE,
                     "%s: invalid percentage '%s' (accepted: \"80%%\", above "
                     "0 and up to 100, %s)",
                     what, s, of);
    out->fraction = v / 100;
    return 0;
  }
  char e[512];
  int rc = mg_lua_check_size(L, idx, what, &out->bytes, e, sizeof e);
  if (rc < 0)
    return mg_errf(err, len, rc, "%s", e);
  if (out->bytes == 0)
    return mg_errf(err, len, MG_EPARSE,
                   "%s: 0 bytes (accepted: a size of at least 1 byte, or "
                   "\"80%%\" %s)",
                   what, of);
  return 0;
}

int mg_lua_check_threshold(lua_State *L, int idx, const char *what,
                           mg_threshold *out, char *err, size_t len) {
  static const char accepted[] =
      "a level (\"80%\" or a size), or { level, swap = true|false }";
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE)
    return mg_lua_check_level(L, idx, what, out, err, len);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int kt = lua_type(L, -1), known = 0;
    if (kt == LUA_TSTRING)
      known = strcmp(lua_tostring(L, -1), "level") == 0 ||
              strcmp(lua_tostring(L, -1), "swap") == 0;
    else if (kt == LUA_TNUMBER)
      known = lua_isinteger(L, -1) && lua_tointeger(L, -1) == 1;
    if (!known) {
      int rc = mg_errf(
          err, len, -EINVAL, "%s: unknown key %s%s%s (accepted: %s)", what,
          kt == LUA_TSTRING ? "'" : "a ",
          kt == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1),
          kt == LUA_TSTRING ? "'" : "", accepted);
      lua_pop(L, 1);
      return rc;
    }
  }
  int t1 = lua_rawgeti(L, idx, 1);
  lua_pushliteral(L, "level");
  int tl = lua_rawget(L, idx);
  if ((t1 == LUA_TNIL) == (tl == LUA_TNIL)) {
    lua_pop(L, 2);
    return mg_errf(err, len, -EINVAL, "%s: %s (accepted: %s)", what,
                   t1 == LUA_TNIL ? "no level" : "two levels ([1] and level)",
                   accepted);
  }
  int rc = mg_lua_check_level(L, t1 == LUA_TNIL ? -1 : -2, what, out, err, len);
  lua_pop(L, 2);
  if (rc < 0)
    return rc;
  lua_pushliteral(L, "swap");
  int ts = lua_rawget(L, idx);
  if (ts != LUA_TNIL && ts != LUA_TBOOLEAN) {
    lua_pop(L, 1);
    return mg_errf(err, len, -EINVAL,
                   "%s: swap must be a boolean (true: compare memory + swap), "
                   "not a %s",
                   what, lua_typename(L, ts));
  }
  out->swap = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return 0;
}

/* p:kill([{ signal = "TERM", grace_ms = 2000 }]) → true | nil, err, code.
 * No argument: SIGKILL of the whole run now. With a signal and a grace:
 * that signal to the run's tree, SIGKILL of what is left after grace_ms.
 * The restart policy applies (p:stop is for good). */
static int l_kill(lua_State *L) {
  lproc *p = mg_lproc_check(L, "kill");
  int sig = SIGKILL;
  lua_Integer grace = 0;
  if (!lua_isnoneornil(L, 2)) {
    static const char *const accepted[] = {"signal", "grace_ms", NULL};
    luaL_checktype(L, 2, LUA_TTABLE);
    mg_lua_check_options(L, 2, "kill", accepted);
    if (lua_getfield(L, 2, "signal") != LUA_TNIL)
      sig = mg_lproc_check_signal(L, lua_gettop(L));
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "grace_ms") != LUA_TNIL) {
      if (!lua_isinteger(L, -1))
        return luaL_error(L, "bad option 'grace_ms' to 'kill' (integer "
                             "milliseconds 0..3600000 expected)");
      grace = lua_tointeger(L, -1);
      luaL_argcheck(L, grace >= 0 && grace <= MG_SUP_GRACE_MS_MAX, 2,
                    "grace_ms must be 0..3600000");
    } else if (sig != SIGKILL) {
      grace = MG_SUP_GRACE_MS; /* a signal to act on needs time to act */
    }
    lua_pop(L, 1);
  }
  if (p->child == NULL)
    return mg_lproc_not_started(L, p);
  int rc = mg_child_kill(p->child, sig, (uint64_t)grace);
  if (rc < 0)
    return mg_lproc_errno_fail(L, p, rc, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

static int act_result(lua_State *L, int rc, const char *err) {
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:throttle(size) → true | nil, err, code (ENOTSUP on cgroup v1). */
static int l_throttle(lua_State *L) {
  lproc *p = mg_lproc_check(L, "throttle");
  uint64_t bytes;
  char err[768];
  luaL_checkany(L, 2);
  int rc = mg_lua_check_size(L, 2, "size", &bytes, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  if (p->child == NULL)
    return mg_lproc_not_started(L, p);
  return act_result(L, mg_child_throttle(p->child, bytes, err, sizeof err),
                    err);
}

static int l_unthrottle(lua_State *L) {
  lproc *p = mg_lproc_check(L, "unthrottle");
  char err[768];
  if (p->child == NULL)
    return mg_lproc_not_started(L, p);
  return act_result(L, mg_child_throttle(p->child, UINT64_MAX, err, sizeof err),
                    err);
}

static int freeze(lua_State *L, const char *m, int frozen) {
  lproc *p = mg_lproc_check(L, m);
  char err[768];
  if (p->child == NULL)
    return mg_lproc_not_started(L, p);
  return act_result(L, mg_child_freeze(p->child, frozen, err, sizeof err), err);
}

static int l_freeze(lua_State *L) {
  return freeze(L, "freeze", 1);
}

static int l_thaw(lua_State *L) {
  return freeze(L, "thaw", 0);
}

/* ------------------------------------------------------------ watches */

typedef struct lwatch {
  int id; /* 0: stopped */
} lwatch;

/* p:watch(size_or_pct, fn) → handle | nil, err, code. fn(p, t) on each
 * upward crossing, as the spawn's thresholds. The handle's uservalue is
 * p. */
static int l_watch(lua_State *L) {
  lproc *p = mg_lproc_check(L, "watch");
  luaL_checkany(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  mg_threshold t;
  char err[768];
  int rc = mg_lua_check_threshold(L, 2, "level", &t, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  if (p->child == NULL)
    return mg_lproc_not_started(L, p);
  int id = 0;
  rc = mg_child_watch(p->child, &t, &id, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_getiuservalue(L, 1, 1); /* handlers: [-id] = { fn } */
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, 1);
  lua_rawseti(L, -2, -(lua_Integer)id);
  lua_pop(L, 1);
  lwatch *w = lua_newuserdatauv(L, sizeof *w, 1);
  w->id = id;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, WATCH_MT);
  return 1;
}

static int l_watch_stop(lua_State *L) {
  lwatch *w = mg_lua_check_self(L, WATCH_MT, "stop");
  if (w->id == 0)
    return 0;
  int id = w->id;
  w->id = 0;
  if (lua_getiuservalue(L, 1, 1) != LUA_TUSERDATA)
    return 0;
  lproc *p = lua_touserdata(L, -1);
  if (p->child)
    mg_child_unwatch(p->child, id);
  if (lua_getiuservalue(L, -1, 1) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_rawseti(L, -2, -(lua_Integer)id);
  }
  return 0;
}

static int l_watch_active(lua_State *L) {
  lwatch *w = mg_lua_check_self(L, WATCH_MT, "active");
  lua_pushboolean(L, w->id != 0);
  return 1;
}

static int l_watch_tostring(lua_State *L) {
  lwatch *w = mg_lua_check_self(L, WATCH_MT, "__tostring");
  lua_pushfstring(L, "mg.watch %d (%s)", w->id, w->id ? "active" : "stopped");
  return 1;
}

/* p:pressure{ level = "medium" } (cgroup v1) or { kind = "some"|"full",
 * stall_ms = 150, window_ms = 2000 } (cgroup v2) → true | nil, err, code.
 * Arms the "pressure" event for this and later runs. */
static int l_pressure(lua_State *L) {
  lproc *p = mg_lproc_check(L, "pressure");
  static const char *const accepted[] = {"level", "kind", "stall_ms",
                                         "window_ms", NULL};
  mg_pressure_opts o = {NULL, 0, 150000, 2000000};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    mg_lua_check_options(L, 2, "pressure", accepted);
    if (lua_getfield(L, 2, "level") != LUA_TNIL)
      o.level = mg_lua_check_text(L, -1, "level", NULL);
    if (lua_getfield(L, 2, "kind") != LUA_TNIL) {
      const char *k = mg_lua_check_text(L, -1, "kind", NULL);
      if (strcmp(k, "some") != 0 && strcmp(k, "full") != 0)
        return mg_lua_failf(L, -EINVAL, "kind: '%s' (accepted: some, full)", k);
      o.full = strcmp(k, "full") == 0;
    }
    const char *ms[] = {"stall_ms", "window_ms"};
    uint64_t *dst[] = {&o.stall_us, &o.window_us};
    for (int i = 0; i < 2; i++) {
      if (lua_getfield(L, 2, ms[i]) != LUA_TNIL) {
        /* an integer here; its range is mg_psi_trigger_check's */
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
            lua_tointeger(L, -1) > 1000000)
          return mg_lua_failf(L, -EINVAL,
                              "%s: %s (accepted: integer milliseconds; "
                              "window_ms 500..10000, stall_ms 1..window_ms)",
                              ms[i], luaL_tolstring(L, -1, NULL));
        *dst[i] = (uint64_t)lua_tointeger(L, -1) * 1000;
      }
      lua_pop(L, 1);
    }
  }
  if (p->child == NULL)
    return mg_lproc_not_started(L, p);
  char err[768];
  return act_result(L, mg_child_pressure(p->child, &o, err, sizeof err), err);
}

void mg_lproc_act_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"kill", l_kill},
                                     {"throttle", l_throttle},
                                     {"unthrottle", l_unthrottle},
                                     {"freeze", l_freeze},
                                     {"thaw", l_thaw},
                                     {"watch", l_watch},
                                     {"pressure", l_pressure},
                                     {NULL, NULL}};
  luaL_setfuncs(L, methods, 0); /* into the methods table at the top */
  static const luaL_Reg wmeta[] = {{"__tostring", l_watch_tostring},
                                   {"__close", l_watch_stop},
                                   {NULL, NULL}};
  static const luaL_Reg wmethods[] = {{"stop", l_watch_stop},
                                      {"close", l_watch_stop},
                                      {"active", l_watch_active},
                                      {NULL, NULL}};
  luaL_newmetatable(L, WATCH_MT);
  luaL_setfuncs(L, wmeta, 0);
  luaL_newlib(L, wmethods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, WATCH_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
