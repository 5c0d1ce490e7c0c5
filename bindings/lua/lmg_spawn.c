/* lmg_spawn.c — mg.spawn, the process object and mg.processes (bindings
 * layer, on the supervisor: runtime/include/sup/mg_sup.h).
 *
 * Lifetime. The process userdata holds the binding's state itself (an
 * lproc): the supervisor calls back into it only until on_close, or until
 * mg_child_release() — whichever comes first — so nothing outlives the
 * userdata. While a child is running or waiting for a restart, the lproc
 * keeps a registry reference to its own userdata (self_ref), so a policy
 * that drops every reference to `p` still gets its events; on_close drops
 * that reference, and __gc releases the mg_child. The supervisor is created
 * at the first mg.spawn and kept in the env; the runtime host shuts it down
 * and frees it.
 *
 * Every event reaches Lua through mg_lua_call (pcall + budget): a failing
 * handler is logged and never harms the child. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg_lua.h"
#include "sup/mg_sup.h"

#define PROC_MT "mg.process"

typedef struct mg_lua_proc lproc;
struct mg_lua_proc {
  mg_lua_env *env;
  mg_child *child;    /* NULL: never started (--check) or released */
  lproc *prev, *next; /* env->procs, spawn order, while not closed */
  int self_ref;       /* registry ref of the userdata while not closed */
  int started;
  int closed;         /* on_close ran (or never started) */
  int linked;         /* in env->procs */
  mg_enforce enforce; /* resolved, for an unstarted (--check) process */
  uint64_t limit_bytes;
  char name[72];
};

static const char *const events[] = {"warn", "sample", "exit", "restart", NULL};

/* ------------------------------------------------------------ the list */

static void link_proc(mg_lua_env *env, lproc *p) {
  lproc *last = env->procs;
  while (last && last->next)
    last = last->next;
  p->prev = last;
  p->next = NULL;
  if (last)
    last->next = p;
  else
    env->procs = p;
  p->linked = 1;
}

static void unlink_proc(mg_lua_env *env, lproc *p) {
  if (!p->linked)
    return;
  if (p->prev)
    p->prev->next = p->next;
  else
    env->procs = p->next;
  if (p->next)
    p->next->prev = p->prev;
  p->prev = p->next = NULL;
  p->linked = 0;
}

/* ------------------------------------------------------------ tables */

/* A sample as a Lua table: { pid, rss, hwm, vsize, data, swap, used,
 * limit (nil when none), fraction, cgroup_current, cgroup_peak }. */
static void push_sample(lua_State *L, const mg_child_sample *s) {
  lua_createtable(L, 0, 12);
  mg_lua_setint(L, "pid", s->pid);
  mg_lua_setu64(L, "rss", s->rss_bytes);
  mg_lua_setu64(L, "hwm", s->hwm_bytes);
  mg_lua_setu64(L, "vsize", s->vsize_bytes);
  mg_lua_setu64(L, "data", s->data_bytes);
  mg_lua_setu64(L, "swap", s->swap_bytes);
  mg_lua_setu64(L, "used", s->used_bytes);
  if (s->limit_bytes)
    mg_lua_setu64(L, "limit", s->limit_bytes);
  mg_lua_setnum(L, "fraction", s->fraction);
  if (s->has_cgroup) {
    mg_lua_setu64(L, "cgroup_current", s->cgroup_current_bytes);
    mg_lua_setu64(L, "cgroup_peak", s->cgroup_peak_bytes);
  }
}

static const struct {
  const char *name;
  int signum;
} signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
               {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
               {"TERM", SIGTERM}, {"STOP", SIGSTOP}, {"CONT", SIGCONT},
               {"ABRT", SIGABRT}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE},
               {"ALRM", SIGALRM}, {"BUS", SIGBUS},   {"FPE", SIGFPE},
               {"ILL", SIGILL},   {"TRAP", SIGTRAP}, {"XCPU", SIGXCPU},
               {"XFSZ", SIGXFSZ}, {"SYS", SIGSYS},   {NULL, 0}};

static const char *signal_name(int signum) {
  for (int i = 0; signals[i].name; i++)
    if (signals[i].signum == signum)
      return signals[i].name;
  return NULL;
}

/* Exit info: { pid, code (nil when signalled), signal (nil when it
 * exited), signame, status (code, or 128+signal as a shell reports it),
 * reason, detail, peak, runtime_ms, restarts, will_restart,
 * restart_in_ms }. */
static void push_exit(lua_State *L, const mg_child_exit *e) {
  lua_createtable(L, 0, 13);
  mg_lua_setint(L, "pid", e->pid);
  if (e->signal) {
    mg_lua_setint(L, "signal", e->signal);
    const char *sn = signal_name(e->signal);
    if (sn)
      mg_lua_setstr(L, "signame", sn);
    mg_lua_setint(L, "status", 128 + e->signal);
  } else {
    mg_lua_setint(L, "code", e->code);
    mg_lua_setint(L, "status", e->code);
  }
  mg_lua_setstr(L, "reason", mg_exit_reason_name(e->reason));
  mg_lua_setstr(L, "detail", e->detail);
  mg_lua_setu64(L, "peak", e->peak_bytes);
  mg_lua_setu64(L, "runtime_ms", e->runtime_ms);
  mg_lua_setint(L, "restarts", e->restarts);
  mg_lua_setbool(L, "will_restart", e->will_restart);
  if (e->will_restart)
    mg_lua_setu64(L, "restart_in_ms", e->restart_in_ms);
}

/* ------------------------------------------------------------ events */

/* Call every handler of `event` as fn(p, <value at -1>); pops the value.
 * Stops after a handler that called mg.exit. Never raises. */
static void dispatch(lproc *p, const char *event) {
  lua_State *L = p->env->L;
  int value = lua_gettop(L);
  if (p->self_ref == LUA_NOREF || p->self_ref == LUA_REFNIL) {
    lua_settop(L, value - 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->self_ref); /* value+1: userdata */
  lua_getiuservalue(L, value + 1, 1);             /* value+2: handlers */
  /* raw access only: no metamethod (policy code) may run outside the
   * protected calls below */
  if (lua_type(L, -1) == LUA_TTABLE &&
      (lua_pushstring(L, event), lua_rawget(L, -2)) == LUA_TTABLE) {
    /* value+3: list */
    char what[128];
    snprintf(what, sizeof what, "process %s %s", p->name, event);
    lua_Integer n = (lua_Integer)lua_rawlen(L, value + 3);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, value + 3, i);
      lua_pushvalue(L, value + 1);
      lua_pushvalue(L, value);
      if (mg_lua_call(L, 2, 0, what) == MG_LUA_EXIT)
        break;
    }
  }
  lua_settop(L, value - 1);
}

static void ev_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  lproc *p = ud;
  (void)c;
  luaL_checkstack(p->env->L, 8, NULL);
  push_sample(p->env->L, s);
  dispatch(p, "sample");
}

static void ev_warn(mg_child *c, const mg_child_sample *s, void *ud) {
  lproc *p = ud;
  (void)c;
  luaL_checkstack(p->env->L, 8, NULL);
  push_sample(p->env->L, s);
  dispatch(p, "warn");
}

static void ev_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  lproc *p = ud;
  (void)c;
  luaL_checkstack(p->env->L, 8, NULL);
  push_exit(p->env->L, e);
  dispatch(p, "exit");
}

static void ev_restart(mg_child *c, int restarts, void *ud) {
  lproc *p = ud;
  (void)c;
  lua_pushinteger(p->env->L, restarts);
  dispatch(p, "restart");
}

/* No further run: the process leaves mg.processes() and lets Lua collect
 * its userdata (whose __gc releases the mg_child). */
static void ev_close(mg_child *c, void *ud) {
  lproc *p = ud;
  (void)c;
  p->closed = 1;
  unlink_proc(p->env, p);
  luaL_unref(p->env->L, LUA_REGISTRYINDEX, p->self_ref);
  p->self_ref = LUA_NOREF;
}

/* ------------------------------------------------------------ options */

/* Option reading checks types only, as luv's spawn does: every value goes
 * to the supervisor as given, and mg_child_spawn / mg_child_validate apply
 * every rule (ranges, defaults, names, limits) and say what is wrong. What
 * the binding refuses itself is what cannot be passed at all: an unknown
 * field, a string with a NUL byte, a number that is not an integer, a size
 * that does not parse, an env name holding '=' (no "NAME=VALUE" string can
 * carry it). */

static const char *const fields[] = {
    "name",     "cmd",        "limit",          "enforce",
    "warn_at",  "sample_ms",  "restart",        "max_restarts",
    "env",      "cwd",        "stdout",         "stderr",
    "grace_ms", "backoff_ms", "backoff_max_ms", "backoff_reset_ms",
    NULL};

/* Raise: field `f` has the wrong type. */
static int type_error(lua_State *L, const char *f, const char *expected,
                      int idx) {
  return luaL_error(L, "bad field '%s' in mg.spawn (%s expected, got %s)", f,
                    expected, luaL_typename(L, idx));
}

/* The string at `idx` if it holds no NUL byte, else NULL with err. */
static const char *c_string(lua_State *L, int idx, const char *what, char *err,
                            size_t len) {
  size_t sl;
  const char *s = lua_tolstring(L, idx, &sl);
  if (strlen(s) == sl)
    return s;
  snprintf(err, len, "%s: contains a NUL byte", what);
  return NULL;
}

/* An optional string field into *out (NULL when absent); the string stays
 * anchored by the options table. -1 with err for a NUL byte. */
static int opt_string(lua_State *L, int t, const char *f, const char **out,
                      char *err, size_t len) {
  int ty = lua_getfield(L, t, f);
  int rc = 0;
  *out = NULL;
  if (ty == LUA_TSTRING)
    rc = (*out = c_string(L, -1, f, err, len)) ? 0 : -1;
  else if (ty != LUA_TNIL)
    type_error(L, f, "string", -1);
  lua_pop(L, 1);
  return rc;
}

/* An optional integer field into *out (left alone when absent). -1 with
 * err for a number that is not an integer. */
static int opt_integer(lua_State *L, int t, const char *f, int64_t *out,
                       char *err, size_t len) {
  int ty = lua_getfield(L, t, f);
  int rc = 0;
  if (ty == LUA_TNUMBER) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (isnum) {
      *out = (int64_t)v;
    } else {
      snprintf(err, len, "%s: %s is not an integer", f, lua_tostring(L, -1));
      rc = -1;
    }
  } else if (ty != LUA_TNIL) {
    type_error(L, f, "integer", -1);
  }
  lua_pop(L, 1);
  return rc;
}

/* stdout / stderr: "inherit" | "null" | a path. */
static int opt_stdio(lua_State *L, int t, const char *f, mg_stdio *mode,
                     const char **path, char *err, size_t len) {
  const char *s;
  if (opt_string(L, t, f, &s, err, len) < 0)
    return -1;
  *path = NULL;
  if (s == NULL || strcmp(s, "inherit") == 0) {
    *mode = MG_STDIO_INHERIT;
  } else if (strcmp(s, "null") == 0) {
    *mode = MG_STDIO_NULL;
  } else {
    *mode = MG_STDIO_FILE;
    *path = s;
  }
  return 0;
}

/* Every key of the options table must be a known field. */
static int check_unknown(lua_State *L, int t, char *err, size_t len) {
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; fields[i] && !known; i++)
        known = strcmp(fields[i], k) == 0;
      if (!known) {
        snprintf(err, len,
                 "unknown field '%s' (accepted: name, cmd, limit, enforce, "
                 "warn_at, sample_ms, restart, max_restarts, env, cwd, "
                 "stdout, stderr, grace_ms, backoff_ms, backoff_max_ms, "
                 "backoff_reset_ms)",
                 k);
      }
    } else {
      snprintf(err, len,
               "unknown field [%s] (fields are named: name, cmd, "
               "limit, …)",
               luaL_tolstring(L, -1, NULL));
      lua_pop(L, 1);
    }
    if (!known) {
      lua_pop(L, 1);
      return -1;
    }
  }
  return 0;
}

/* cmd = { prog, args... } → a NULL-terminated argv in a userdata left on
 * the stack (o->argv stays NULL when cmd is absent: the supervisor says it
 * is required). */
static int read_cmd(lua_State *L, int t, int anchor, mg_child_opts *o,
                    char *err, size_t len) {
  int ty = lua_getfield(L, t, "cmd");
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (ty != LUA_TTABLE)
    return type_error(L, "cmd", "table { program, args... }", -1);
  int cmd = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, cmd);
  char **argv = lua_newuserdatauv(L, sizeof *argv * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    int et = lua_rawgeti(L, cmd, i);
    if (et != LUA_TSTRING && et != LUA_TNUMBER)
      return luaL_error(L,
                        "bad field 'cmd' in mg.spawn (cmd[%d]: string "
                        "expected, got %s)",
                        (int)i, luaL_typename(L, -1));
    char what[32];
    snprintf(what, sizeof what, "cmd[%d]", (int)i);
    if (!(argv[i - 1] = (char *)c_string(L, -1, what, err, len))) {
      lua_pop(L, 1);
      return -1;
    }
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  }
  argv[n] = NULL;
  o->argv = argv;
  return 0;
}

/* env = { K = "v" } → "K=v" strings in a userdata array, both anchored in
 * the table at `anchor`. */
static int read_env(lua_State *L, int t, int anchor, mg_child_opts *o,
                    char *err, size_t len) {
  int ty = lua_getfield(L, t, "env");
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (ty != LUA_TTABLE)
    return type_error(L, "env", "table { NAME = \"value\" }", -1);
  int et = lua_gettop(L);
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, et) != 0) {
    lua_pop(L, 1);
    count++;
  }
  char **envv = lua_newuserdatauv(L, sizeof *envv * (count + 1), 0);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, et) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L,
                        "bad field 'env' in mg.spawn (names must be "
                        "strings, got %s)",
                        luaL_typename(L, -2));
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
      return luaL_error(L,
                        "bad field 'env' in mg.spawn (env.%s: string "
                        "expected, got %s)",
                        lua_tostring(L, -2), luaL_typename(L, -1));
    const char *k = lua_tostring(L, -2);
    if (strchr(k, '=') || strlen(k) != lua_rawlen(L, -2)) {
      snprintf(err, len, "env: invalid variable name '%s' (no '=', no NUL)", k);
      lua_pop(L, 3);
      return -1;
    }
    char what[96];
    snprintf(what, sizeof what, "env.%.80s", k);
    const char *val = c_string(L, -1, what, err, len);
    if (!val) {
      lua_pop(L, 3);
      return -1;
    }
    envv[i++] = (char *)lua_pushfstring(L, "%s=%s", k, val);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    lua_pop(L, 1);
  }
  envv[i] = NULL;
  o->env = envv;
  lua_pop(L, 1);
  return 0;
}

/* Read the options table at `t` into `o`, over mg_child_opts_init's
 * defaults. Type errors raise (naming the field); what cannot be passed
 * returns -1 with err. Everything `o` points to stays anchored until the
 * caller resets the stack: argv is a userdata left on the stack, the env
 * array and the "K=V" strings are in the table at `anchor`, the other
 * strings belong to the options table; a default name is written to
 * name_buf. */
static int read_opts(lua_State *L, int t, int anchor, mg_child_opts *o,
                     char *name_buf, size_t name_len, char *err, size_t len) {
  mg_child_opts_init(o);
  if (check_unknown(L, t, err, len) < 0 ||
      read_cmd(L, t, anchor, o, err, len) < 0 ||
      opt_string(L, t, "name", &o->name, err, len) < 0)
    return -1;
  if (o->name == NULL)
    o->name =
        mg_name_from(o->argv ? o->argv[0] : NULL, "child", name_buf, name_len);

  if (lua_getfield(L, t, "limit") != LUA_TNIL) {
    char e[512];
    if (mg_lua_check_size(L, -1, "limit", &o->limit_bytes, e, sizeof e) < 0) {
      lua_pop(L, 1);
      snprintf(err, len, "%s", e);
      return -1;
    }
  }
  lua_pop(L, 1);
  const char *enf, *rs;
  if (opt_string(L, t, "enforce", &enf, err, len) < 0 ||
      (enf && mg_enforce_parse(enf, &o->enforce, err, len) < 0) ||
      opt_string(L, t, "restart", &rs, err, len) < 0 ||
      (rs && mg_restart_parse(rs, &o->restart, err, len) < 0))
    return -1;

  /* warn_at: a number, or false for none */
  int ty = lua_getfield(L, t, "warn_at");
  if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    o->warn_at = 0;
  else if (ty == LUA_TNUMBER)
    o->warn_at = lua_tonumber(L, -1);
  else if (ty != LUA_TNIL)
    return type_error(L, "warn_at", "number or false", -1);
  lua_pop(L, 1);

  if (opt_integer(L, t, "sample_ms", &o->sample_ms, err, len) < 0 ||
      opt_integer(L, t, "max_restarts", &o->max_restarts, err, len) < 0 ||
      opt_integer(L, t, "grace_ms", &o->grace_ms, err, len) < 0 ||
      opt_integer(L, t, "backoff_ms", &o->backoff_ms, err, len) < 0 ||
      opt_integer(L, t, "backoff_max_ms", &o->backoff_max_ms, err, len) < 0 ||
      opt_integer(L, t, "backoff_reset_ms", &o->backoff_reset_ms, err, len) <
          0 ||
      read_env(L, t, anchor, o, err, len) < 0 ||
      opt_string(L, t, "cwd", &o->cwd, err, len) < 0 ||
      opt_stdio(L, t, "stdout", &o->stdout_mode, &o->stdout_path, err, len) <
          0 ||
      opt_stdio(L, t, "stderr", &o->stderr_mode, &o->stderr_path, err, len) < 0)
    return -1;
  return 0;
}

/* ------------------------------------------------------------ supervisor */

/* The env's supervisor, created on first use. */
static mg_sup *get_sup(mg_lua_env *env, char *err, size_t len) {
  if (env->sup)
    return env->sup;
  mg_sup_opts so;
  memset(&so, 0, sizeof so);
  so.loop = env->loop;
  so.logger = env->logger;
  so.paths = env->paths;
  so.cgroup_parent = env->cgroup_parent;
  mg_sup *sup;
  if (mg_sup_new(&so, &sup, err, len) < 0)
    return NULL;
  env->sup = sup;
  return sup;
}

/* mg.spawn{ name=, cmd=, limit=, enforce=, ... } → process | nil, err.
 * err is the supervisor's (it names the field); nothing is started when it
 * fails. Under --check the options are validated and an unstarted process
 * is returned. */
static int l_spawn(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  char err[1024], e2[1024];
  char name[MG_NAME_MAX + 1];
  mg_child_opts o;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L); /* 2: anchor for strings built here */

  /* 3: the userdata, closed state first (so __gc is always safe). */
  lproc *p = lua_newuserdatauv(L, sizeof *p, 1);
  memset(p, 0, sizeof *p);
  p->env = env;
  p->self_ref = LUA_NOREF;
  p->closed = 1;
  luaL_setmetatable(L, PROC_MT);
  lua_newtable(L); /* handlers by event */
  lua_setiuservalue(L, 3, 1);

  err[0] = '\0';
  if (read_opts(L, 1, 2, &o, name, sizeof name, err, sizeof err) < 0)
    return mg_lua_fail(L, err);
  if (env->exit_requested)
    return mg_lua_fail(L, "mgrun is shutting down: no new process");
  mg_sup *sup = get_sup(env, e2, sizeof e2);
  if (sup == NULL) {
    snprintf(err, sizeof err, "cannot start the supervisor: %s", e2);
    return mg_lua_fail(L, err);
  }

  mg_child_events ev = {ev_sample, ev_warn, ev_exit, ev_restart, ev_close, p};
  if (env->check_only) {
    if (mg_child_validate(sup, &o, &p->enforce, err, sizeof err) < 0)
      return mg_lua_fail(L, err);
    snprintf(p->name, sizeof p->name, "%s", o.name);
    p->limit_bytes = o.limit_bytes == MG_CHILD_NO_LIMIT ? 0 : o.limit_bytes;
    lua_settop(L, 3);
    return 1;
  }
  snprintf(p->name, sizeof p->name, "%s", o.name); /* events name it */
  lua_pushvalue(L, 3);
  p->self_ref =
      luaL_ref(L, LUA_REGISTRYINDEX); /* before the spawn: can raise */
  p->closed = 0;
  mg_child *c;
  if (mg_child_spawn(sup, &o, &ev, &c, err, sizeof err) < 0) {
    p->closed = 1;
    luaL_unref(L, LUA_REGISTRYINDEX, p->self_ref);
    p->self_ref = LUA_NOREF;
    return mg_lua_fail(L, err);
  }
  p->child = c;
  p->started = 1;
  if (!p->closed) /* on_close could only come later, but be safe */
    link_proc(env, p);
  lua_settop(L, 3);
  return 1;
}

/* mg.processes() → { process, ... }: those running or waiting for a
 * restart, in spawn order. */
static int l_processes(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  lua_newtable(L);
  lua_Integer i = 0;
  for (lproc *p = env->procs; p; p = p->next) {
    if (p->closed || p->self_ref == LUA_NOREF)
      continue;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->self_ref);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* ------------------------------------------------------------ methods */

static lproc *check_proc(lua_State *L) {
  return luaL_checkudata(L, 1, PROC_MT);
}

/* nil, err for a process that was never started or is released. */
static int not_started(lua_State *L, const lproc *p) {
  return mg_lua_fail(L, p->env->check_only ? "not started (--check)"
                                           : "not started");
}

static int errno_fail(lua_State *L, const lproc *p, int rc, const char *what) {
  char msg[256];
  if (rc == -ESRCH)
    snprintf(msg, sizeof msg, "%s: process '%s' is not running", what, p->name);
  else
    snprintf(msg, sizeof msg, "%s: %s", what, mg_strerror(rc));
  return mg_lua_fail(L, msg);
}

/* p:memory() → { pid, name, rss, hwm, vsize, data, anon, file, shmem,
 * swap, used, limit, fraction [, cgroup_current, cgroup_peak] }
 * | nil, err (not running). */
static int l_memory(lua_State *L) {
  lproc *p = check_proc(L);
  if (p->child == NULL)
    return not_started(L, p);
  mg_child_sample s;
  char err[512];
  int rc = mg_child_memory(p->child, &s, err, sizeof err);
  if (rc == -ESRCH)
    return errno_fail(L, p, rc, "memory");
  if (rc < 0)
    return mg_lua_fail(L, err);
  push_sample(L, &s);
  mg_proc_status st;
  if (mg_proc_status_read(p->env->paths.proc_root, s.pid, &st, NULL, 0) == 0) {
    mg_lua_setstr(L, "name", st.name);
    mg_lua_setu64(L, "anon", st.anon_bytes);
    mg_lua_setu64(L, "file", st.file_bytes);
    mg_lua_setu64(L, "shmem", st.shmem_bytes);
  }
  return 1;
}

/* p:on(event, fn) → p. Events: warn, sample, exit, restart; handlers of
 * one event run in the order they were added. */
static int l_on(lua_State *L) {
  check_proc(L);
  const char *name = luaL_checkstring(L, 2);
  int ev = 0;
  while (events[ev] && strcmp(events[ev], name) != 0)
    ev++;
  if (events[ev] == NULL)
    return luaL_argerror(L, 2,
                         lua_pushfstring(L,
                                         "unknown event '%s' (accepted: "
                                         "warn, sample, exit, restart)",
                                         name));
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_getiuservalue(L, 1, 1);
  if (lua_getfield(L, -1, events[ev]) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, events[ev]);
  }
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_settop(L, 1);
  return 1;
}

/* A signal argument: "TERM", "SIGTERM" or a number. Raises otherwise. */
static int check_signal(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n > 0 && n < 65, idx, "signal number must be 1..64");
    return (int)n;
  }
  const char *s = luaL_checkstring(L, idx);
  if (strncmp(s, "SIG", 3) == 0)
    s += 3;
  for (int i = 0; signals[i].name; i++)
    if (strcmp(signals[i].name, s) == 0)
      return signals[i].signum;
  return luaL_argerror(
      L, idx,
      lua_pushfstring(L,
                      "unknown signal '%s' (accepted: TERM, KILL, INT, HUP, "
                      "QUIT, USR1, USR2, STOP, CONT, … or a number)",
                      lua_tostring(L, idx)));
}

/* p:signal(sig) → true | nil, err. To the child's process group; the
 * restart policy applies if it dies of it. */
static int l_signal(lua_State *L) {
  lproc *p = check_proc(L);
  int sig = check_signal(L, 2);
  if (p->child == NULL)
    return not_started(L, p);
  int rc = mg_child_signal(p->child, sig);
  if (rc < 0)
    return errno_fail(L, p, rc, "signal");
  lua_pushboolean(L, 1);
  return 1;
}

/* p:kill() → true | nil, err: p:signal("KILL"). */
static int l_kill(lua_State *L) {
  lproc *p = check_proc(L);
  if (p->child == NULL)
    return not_started(L, p);
  int rc = mg_child_signal(p->child, SIGKILL);
  if (rc < 0)
    return errno_fail(L, p, rc, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

/* p:stop([grace_ms]) → true | nil, err. For good: SIGTERM, then SIGKILL
 * of the group (and cgroup) after grace_ms (default: the spawn's
 * grace_ms; 0: at once). Stopping a stopped process is a no-op. */
static int l_stop(lua_State *L) {
  lproc *p = check_proc(L);
  uint64_t grace = 0;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer g = luaL_checkinteger(L, 2);
    luaL_argcheck(L, g >= 0 && g <= 3600000, 2, "grace_ms must be 0..3600000");
    grace = g == 0 ? 1 : (uint64_t)g;
  }
  if (p->child == NULL)
    return not_started(L, p);
  if (!p->closed) {
    int rc = mg_child_stop(p->child, grace);
    if (rc < 0 && rc != -ESRCH)
      return errno_fail(L, p, rc, "stop");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* p:set_limit(size) → true | nil, err. Applies to the running child and
 * to later runs. */
static int l_set_limit(lua_State *L) {
  lproc *p = check_proc(L);
  uint64_t bytes;
  char err[512];
  luaL_checkany(L, 2);
  if (mg_lua_check_size(L, 2, "size", &bytes, err, sizeof err) < 0)
    return mg_lua_fail(L, err);
  if (bytes == 0)
    return mg_lua_fail(L, "size: must be positive");
  if (p->child == NULL)
    return not_started(L, p);
  if (mg_child_set_limit(p->child, bytes, err, sizeof err) < 0)
    return mg_lua_fail(L, err);
  p->limit_bytes = bytes;
  lua_pushboolean(L, 1);
  return 1;
}

/* Fields: name, pid (nil when not running), restarts, limit (nil when
 * none), enforce, started, running, closed, cgroup; then the methods. */
static int l_index(lua_State *L) {
  lproc *p = check_proc(L);
  const char *k = luaL_checkstring(L, 2);
  mg_child *c = p->child;
  if (strcmp(k, "name") == 0) {
    lua_pushstring(L, p->name);
  } else if (strcmp(k, "pid") == 0) {
    pid_t pid = c ? mg_child_pid(c) : 0;
    if (pid > 0)
      lua_pushinteger(L, pid);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "restarts") == 0) {
    lua_pushinteger(L, c ? mg_child_restarts(c) : 0);
  } else if (strcmp(k, "limit") == 0) {
    uint64_t lim = c ? mg_child_limit(c) : p->limit_bytes;
    if (lim)
      lua_pushinteger(L, (lua_Integer)lim);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "enforce") == 0) {
    lua_pushstring(L, mg_enforce_name(c ? mg_child_enforce(c) : p->enforce));
  } else if (strcmp(k, "started") == 0) {
    lua_pushboolean(L, p->started);
  } else if (strcmp(k, "running") == 0) {
    lua_pushboolean(L, c && mg_child_running(c));
  } else if (strcmp(k, "closed") == 0) {
    lua_pushboolean(L, p->closed);
  } else if (strcmp(k, "cgroup") == 0) {
    const char *d = c ? mg_child_cgroup_dir(c) : NULL;
    if (d)
      lua_pushstring(L, d);
    else
      lua_pushnil(L);
  } else {
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int l_newindex(lua_State *L) {
  check_proc(L);
  return luaL_error(L, "process fields are read-only (got '%s')",
                    luaL_tolstring(L, 2, NULL));
}

static int l_tostring(lua_State *L) {
  lproc *p = check_proc(L);
  pid_t pid = p->child ? mg_child_pid(p->child) : 0;
  if (!p->started)
    lua_pushfstring(L, "mg.process %s (not started)", p->name);
  else if (pid > 0)
    lua_pushfstring(L, "mg.process %s (pid %d)", p->name, (int)pid);
  else if (p->closed)
    lua_pushfstring(L, "mg.process %s (exited)", p->name);
  else
    lua_pushfstring(L, "mg.process %s (restarting)", p->name);
  return 1;
}

/* __gc: the userdata is unreachable, so the child is closed (self_ref
 * would have kept it alive otherwise) or the state is closing. Release
 * the child: no event reaches this lproc afterwards. */
static int l_gc(lua_State *L) {
  lproc *p = luaL_checkudata(L, 1, PROC_MT);
  unlink_proc(p->env, p);
  if (p->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, p->self_ref);
    p->self_ref = LUA_NOREF;
  }
  if (p->child) {
    mg_child *c = p->child;
    p->child = NULL;
    mg_child_release(c);
  }
  return 0;
}

/* mg.bindir: the directory of the running executable (where mg-hog and
 * the other programs built with mgrun live), or nil. */
static void push_bindir(lua_State *L) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    lua_pushnil(L);
  } else {
    exe[n] = '\0';
    lua_pushstring(L, dirname(exe));
  }
  lua_setfield(L, -2, "bindir");
}

void mg_lua_open_spawn(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", l_index},
                                  {"__newindex", l_newindex},
                                  {"__tostring", l_tostring},
                                  {"__gc", l_gc},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"memory", l_memory}, {"on", l_on},     {"signal", l_signal},
      {"kill", l_kill},     {"stop", l_stop}, {"set_limit", l_set_limit},
      {NULL, NULL}};
  static const luaL_Reg fns[] = {
      {"spawn", l_spawn}, {"processes", l_processes}, {NULL, NULL}};
  luaL_newmetatable(L, PROC_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
  push_bindir(L);
}
