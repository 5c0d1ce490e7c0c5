/* lmg_spawn.c — mg.spawn and mg.processes (bindings layer, on the
 * supervisor: runtime/include/mg/mg_sup.h). The process object it returns
 * is lmg_proc.c's; their shared state is in mg__lproc.h. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg__lproc.h"

typedef mg_lproc lproc;

/* ------------------------------------------------------------ options */

/* Option reading checks types only, as luv's spawn does: every value goes
 * to the supervisor as given, and mg_child_spawn / mg_child_validate apply
 * every rule (ranges, defaults, names, limits) and say what is wrong. What
 * the binding refuses itself is what cannot be passed at all: an unknown
 * field, a string with a NUL byte, a number that is not an integer, a size
 * that does not parse, an env name holding '=' (no "NAME=VALUE" string can
 * carry it). */

static const char *const fields[] = {
    "name",       "cmd",        "limit",          "enforce",
    "warn_at",    "sample_ms",  "restart",        "max_restarts",
    "env",        "cwd",        "stdout",         "stderr",
    "grace_ms",   "backoff_ms", "backoff_max_ms", "backoff_reset_ms",
    "thresholds", "cgroup",     "sample",         "memory_pressure",
    "gpu_limit",  "gpus",       "gpu_mps",        NULL};

/* Raise: field `f` has the wrong type. */
static int type_error(lua_State *L, const char *f, const char *expected,
                      int idx) {
  return luaL_error(L, "bad field '%s' in mg.spawn (%s expected, got %s)", f,
                    expected, luaL_typename(L, idx));
}

/* t[f] without metamethods: no policy code runs while the options are
 * read (a table with __index could otherwise drop strings borrowed so
 * far). Pushes the value, returns its type. */
static int raw_field(lua_State *L, int t, const char *f) {
  lua_pushstring(L, f);
  return lua_rawget(L, t);
}

/* The table keeping the strings borrowed from the options alive until the
 * supervisor has copied them (stack index 2 of l_spawn). */
#define ANCHOR 2

static void keep(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_rawseti(L, ANCHOR, (lua_Integer)lua_rawlen(L, ANCHOR) + 1);
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
  int ty = raw_field(L, t, f);
  int rc = 0;
  *out = NULL;
  if (ty == LUA_TSTRING &&
      (rc = (*out = c_string(L, -1, f, err, len)) ? 0 : -EINVAL) == 0)
    keep(L, -1);
  else if (ty != LUA_TNIL)
    type_error(L, f, "string", -1);
  lua_pop(L, 1);
  return rc;
}

/* An optional integer field into *out (left alone when absent). -1 with
 * err for a number that is not an integer. */
static int opt_integer(lua_State *L, int t, const char *f, int64_t *out,
                       char *err, size_t len) {
  int ty = raw_field(L, t, f);
  int rc = 0;
  if (ty == LUA_TNUMBER) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (isnum) {
      *out = (int64_t)v;
    } else {
      snprintf(err, len, "%s: %s is not an integer", f, lua_tostring(L, -1));
      rc = -EINVAL;
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
    return -EINVAL;
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
                 "backoff_reset_ms, thresholds, cgroup, sample, "
                 "memory_pressure, gpu_limit, gpus, gpu_mps)",
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
      return -EINVAL;
    }
  }
  return 0;
}

/* cmd = { prog, args... } → a NULL-terminated argv in a userdata left on
 * the stack (o->argv stays NULL when cmd is absent: the supervisor says it
 * is required). */
static int read_cmd(lua_State *L, int t, int anchor, mg_child_opts *o,
                    char *err, size_t len) {
  int ty = raw_field(L, t, "cmd");
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
      return -EINVAL;
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
  int ty = raw_field(L, t, "env");
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
      return -EINVAL;
    }
    char what[96];
    snprintf(what, sizeof what, "env.%.80s", k);
    const char *val = c_string(L, -1, what, err, len);
    if (!val) {
      lua_pop(L, 3);
      return -EINVAL;
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

/* thresholds = { "80%" (of the limit), 200 * 2^20 (bytes), "1.5G",
 * { "90%", swap = true } (memory + swap), ... } → an mg_threshold array in a
 * userdata anchored at `anchor`. */
static int read_thresholds(lua_State *L, int t, int anchor, mg_child_opts *o,
                           char *err, size_t len) {
  int ty = raw_field(L, t, "thresholds");
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (ty != LUA_TTABLE)
    return type_error(L, "thresholds", "table { \"80%\", size, ... }", -1);
  int tt = lua_gettop(L);
  size_t n = (size_t)lua_rawlen(L, tt);
  if (n > MG_SUP_THRESHOLDS_MAX) {
    snprintf(err, len, "thresholds: %zu given (accepted: at most %d)", n,
             MG_SUP_THRESHOLDS_MAX);
    lua_pop(L, 1);
    return -EINVAL;
  }
  mg_threshold *th = lua_newuserdatauv(L, sizeof *th * (n ? n : 1), 0);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  for (size_t i = 0; i < n; i++) {
    char what[48];
    snprintf(what, sizeof what, "thresholds[%zu]", i + 1);
    lua_rawgeti(L, tt, (lua_Integer)i + 1);
    int rc = mg_lua_check_threshold(L, -1, what, &th[i], err, len);
    lua_pop(L, 1);
    if (rc < 0) {
      lua_pop(L, 1);
      return rc;
    }
  }
  o->thresholds = th;
  o->nthresholds = n;
  lua_pop(L, 1);
  return 0;
}

/* gpu_limit = "8G" | "50%" (of its devices' memory); gpus = { 0, 1 };
 * gpu_mps = true. The device list is a userdata anchored at `anchor`. */
static int read_gpu(lua_State *L, int t, int anchor, mg_child_opts *o,
                    char *err, size_t len) {
  if (raw_field(L, t, "gpu_limit") != LUA_TNIL) {
    mg_threshold lv;
    int rc = mg_lua_check_level(L, -1, "gpu_limit", &lv, err, len);
    if (rc < 0) {
      lua_pop(L, 1);
      return rc;
    }
    o->gpu_limit_bytes = lv.bytes;
    o->gpu_limit_fraction = lv.fraction;
  }
  lua_pop(L, 1);
  int ty = raw_field(L, t, "gpus");
  if (ty == LUA_TTABLE) {
    int gt = lua_gettop(L);
    size_t n = (size_t)lua_rawlen(L, gt);
    if (n == 0 || n > MG_GPU_MAX) {
      snprintf(err, len,
               "gpus: %zu devices (accepted: 1 to %d indices, e.g. "
               "{ 0, 1 })",
               n, MG_GPU_MAX);
      lua_pop(L, 1);
      return -EINVAL;
    }
    unsigned *g = lua_newuserdatauv(L, sizeof *g * n, 0);
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, gt, (lua_Integer)i + 1);
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
          lua_tointeger(L, -1) >= MG_GPU_MAX) {
        snprintf(err, len, "gpus[%zu]: %s (accepted: a device index 0..%d)",
                 i + 1, luaL_tolstring(L, -1, NULL), MG_GPU_MAX - 1);
        lua_pop(L, 3);
        return -EINVAL;
      }
      g[i] = (unsigned)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    o->gpus = g;
    o->ngpus = n;
  } else if (ty != LUA_TNIL) {
    return type_error(L, "gpus", "table { device index, ... }", -1);
  }
  lua_pop(L, 1);
  ty = raw_field(L, t, "gpu_mps");
  if (ty == LUA_TBOOLEAN)
    o->gpu_mps = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    return type_error(L, "gpu_mps", "boolean", -1);
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
    return -EINVAL;
  if (o->name == NULL)
    o->name =
        mg_name_from(o->argv ? o->argv[0] : NULL, "child", name_buf, name_len);

  if (raw_field(L, t, "limit") != LUA_TNIL) {
    char e[512];
    int rc = mg_lua_check_size(L, -1, "limit", &o->limit_bytes, e, sizeof e);
    if (rc < 0) {
      lua_pop(L, 1);
      snprintf(err, len, "%s", e);
      return rc; /* EPARSE, ERANGE_SIZE: a size that does not parse */
    }
  }
  lua_pop(L, 1);
  const char *enf, *rs;
  if (opt_string(L, t, "enforce", &enf, err, len) < 0 ||
      (enf && mg_enforce_parse(enf, &o->enforce, err, len) < 0) ||
      opt_string(L, t, "restart", &rs, err, len) < 0 ||
      (rs && mg_restart_parse(rs, &o->restart, err, len) < 0))
    return -EINVAL;

  /* warn_at: a number, or false for none */
  int ty = raw_field(L, t, "warn_at");
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
    return -EINVAL;
  int rc = read_thresholds(L, t, anchor, o, err, len);
  if (rc == 0)
    rc = read_gpu(L, t, anchor, o, err, len);
  if (rc < 0)
    return rc;
  /* cgroup: true (required) | false (never); absent: where one can be */
  ty = raw_field(L, t, "cgroup");
  if (ty == LUA_TBOOLEAN)
    o->cgroup = lua_toboolean(L, -1) ? 1 : 0;
  else if (ty != LUA_TNIL)
    return type_error(L, "cgroup", "boolean", -1);
  lua_pop(L, 1);
  ty = raw_field(L, t, "memory_pressure");
  if (ty == LUA_TBOOLEAN)
    o->pressure_env = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    return type_error(L, "memory_pressure", "boolean", -1);
  lua_pop(L, 1);
  const char *smode;
  if (opt_string(L, t, "sample", &smode, err, len) < 0)
    return -EINVAL;
  if (smode && strcmp(smode, "fallback") == 0)
    o->sample_fallback = 1;
  else if (smode && strcmp(smode, "always") != 0) {
    snprintf(err, len,
             "sample: '%s' (accepted: \"always\": every sample_ms, or "
             "\"fallback\": only while some threshold has no kernel "
             "notification)",
             smode);
    return -EINVAL;
  }
  return 0;
}

/* The sandbox's checks: the program must be one the host allows, and the
 * working directory and output files must lie in allowed directories. */
static int sandbox_check(mg_lua_env *env, const mg_child_opts *o, char *err,
                         size_t len) {
  int rc = 0;
  if (!env->sandbox)
    return 0;
  if (o->argv && o->argv[0])
    rc = mg_lua_program_allowed(env, o->argv[0], err, len);
  for (size_t i = 0; rc == 0 && o->env && o->env[i]; i++)
    rc = mg_lua_env_allowed(env, o->env[i], strcspn(o->env[i], "="), err, len);
  if (rc == 0 && o->cwd)
    rc = mg_lua_path_allowed(env, "cwd", o->cwd, 0, err, len);
  if (rc == 0 && o->stdout_mode == MG_STDIO_FILE)
    rc = mg_lua_path_allowed(env, "stdout", o->stdout_path, 1, err, len);
  if (rc == 0 && o->stderr_mode == MG_STDIO_FILE)
    rc = mg_lua_path_allowed(env, "stderr", o->stderr_path, 1, err, len);
  return rc;
}

/* mg.spawn{ name=, cmd=, limit=, enforce=, ... } → process | nil, err,
 * code. err is the supervisor's (it names the field); nothing is started
 * when it fails. Under --check the options are validated and an unstarted
 * process is returned. */
static int l_spawn(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  char err[1024];
  char name[MG_NAME_MAX + 1];
  mg_child_opts o;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L);            /* 2: anchor for strings built here */
  lproc *p = mg_lproc_new(L); /* 3: closed state first: __gc is safe */
  err[0] = '\0';
  int rc = read_opts(L, 1, 2, &o, name, sizeof name, err, sizeof err);
  if (rc == 0)
    rc = sandbox_check(env, &o, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  if (env->exit_requested) /* before the supervisor knows: the top level */
    return mg_lua_fail(L, -ECANCELED, "mgrun is shutting down: no new process");
  mg_sup *sup = env->sup;
  if (sup == NULL)
    return mg_lua_fail(L, -ENOTSUP,
                       env->sup_error ? env->sup_error
                                      : "this runtime has no process "
                                        "supervisor");
  snprintf(p->name, sizeof p->name, "%s", o.name); /* events name it */
  if (env->check_only) {
    rc = mg_child_validate(sup, &o, &p->enforce, err, sizeof err);
    if (rc < 0)
      return mg_lua_fail(L, rc, err);
    p->limit_bytes = o.limit_bytes == MG_CHILD_NO_LIMIT ? 0 : o.limit_bytes;
    lua_settop(L, 3);
    return 1;
  }
  mg_child_events ev;
  mg_lproc_events(p, &ev);
  lua_pushvalue(L, 3);
  p->self_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* before the spawn: raises */
  p->closed = 0;
  mg_child *c;
  rc = mg_child_spawn(sup, &o, &ev, &c, err, sizeof err);
  if (rc < 0) {
    p->closed = 1;
    luaL_unref(L, LUA_REGISTRYINDEX, p->self_ref);
    p->self_ref = LUA_NOREF;
    return mg_lua_fail(L, rc, err);
  }
  p->child = c;
  p->started = 1;
  p->nthresholds = (int)o.nthresholds;
  if (!p->closed) /* on_close could only come later, but be safe */
    mg_lproc_link(env, p);
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
  static const luaL_Reg fns[] = {
      {"spawn", l_spawn}, {"processes", l_processes}, {NULL, NULL}};
  mg_lproc_open(L);
  luaL_setfuncs(L, fns, 0);
  push_bindir(L);
}
