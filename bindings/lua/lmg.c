/* lmg.c — the `mg` module: its environment (one per Lua state, owned by
 * whoever called mg_lua_new), the module table, mg.exit, and the argument
 * helpers every binding file shares (bindings layer; public Lua C API,
 * libmg, libuv only). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua/mg__lua.h"

/* ------------------------------------------------------------ env */

void mg_lua_config_init(mg_lua_config *c) {
  memset(c, 0, sizeof *c);
}

static char *dup_or_null(const char *s, int *ok) {
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *ok = 0;
  return d;
}

static void free_list(char **v) {
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

void mg__lua_env_free(mg_lua_env *env) {
  mg_metrics_free(env->metrics);
  free(env->sup_error);
  free(env->proc_root);
  free(env->fs_root);
  free(env->cgroup_parent);
  free_list(env->allow_spawn);
  free_list(env->allow_dirs);
  free(env);
}

/* Resolve each entry of `in` (realpath: symlinks and ".." gone) into a
 * new NULL-terminated list. */
static int resolve_list(const char *const *in, const char *what, int dirs,
                        char ***out, char *err, size_t err_len) {
  size_t n = 0;
  while (in && in[n])
    n++;
  char **v = calloc(n + 1, sizeof *v);
  if (!v)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  *out = v;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    v[i] = realpath(in[i], NULL);
    if (!v[i])
      return mg_errf(err, err_len, errno == ENOMEM ? -ENOMEM : -EINVAL,
                     "%s: cannot use '%s': %s", what, in[i], strerror(errno));
    if (stat(v[i], &st) < 0)
      return mg_errf(err, err_len, -EINVAL, "%s: cannot use '%s': %s", what,
                     in[i], strerror(errno));
    if (dirs && !S_ISDIR(st.st_mode))
      return mg_errf(err, err_len, -ENOTDIR,
                     "%s: '%s' is not a directory (accepted: directories "
                     "the policy may read and write in)",
                     what, in[i]);
    if (!dirs && (!S_ISREG(st.st_mode) || access(v[i], X_OK) < 0))
      return mg_errf(err, err_len, -EINVAL,
                     "%s: '%s' is not an executable file (accepted: the "
                     "programs mg.spawn may run)",
                     what, in[i]);
  }
  return 0;
}

int mg__lua_env_new(const mg_lua_config *c, mg_lua_env **out, char *err,
                    size_t err_len) {
  *out = NULL;
  if (!c || !c->loop)
    return mg_errf(err, err_len, -EINVAL, "a loop is required");
  mg_lua_env *env = calloc(1, sizeof *env);
  if (!env)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  int ok = 1;
  env->loop = c->loop;
  env->logger = c->logger;
  env->sup = c->sup;
  env->sup_error = dup_or_null(c->sup_error, &ok);
  env->proc_root = dup_or_null(c->paths.proc_root, &ok);
  env->fs_root = dup_or_null(c->paths.fs_root, &ok);
  env->cgroup_parent = dup_or_null(c->cgroup_parent, &ok);
  env->paths.proc_root = env->proc_root;
  env->paths.fs_root = env->fs_root;
  env->check_only = c->check_only;
  env->budget = c->callback;
  env->mem_max = c->mem_max_bytes;
  env->on_exit = c->on_exit;
  env->exit_unwind = c->exit_unwind;
  env->ud = c->ud;
  env->sandbox = c->sandbox;
  if (mg_metrics_new(&env->metrics) < 0)
    ok = 0;
  env->control_ref = env->reload_ref = LUA_NOREF;
  if (!ok) {
    mg__lua_env_free(env);
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  }
  int rc = 0;
  if (c->sandbox) {
    rc = resolve_list(c->allow_spawn, "allow_spawn", 0, &env->allow_spawn, err,
                      err_len);
    if (rc == 0)
      rc = resolve_list(c->allow_dirs, "allow_dirs", 1, &env->allow_dirs, err,
                        err_len);
  }
  if (rc < 0) {
    mg__lua_env_free(env);
    return rc;
  }
  *out = env;
  return 0;
}

int mg_lua_new(const mg_lua_config *c, lua_State **L, mg_lua_env **env_out,
               char *err, size_t err_len) {
  *L = NULL;
  *env_out = NULL;
  mg_lua_env *env;
  int rc = mg__lua_env_new(c, &env, err, err_len);
  if (rc < 0)
    return rc;
  lua_State *s = lua_newstate(mg__lua_alloc, env);
  if (!s || mg__lua_env_register(s, env) < 0) {
    if (s)
      lua_close(s);
    mg__lua_env_free(env);
    return mg_errf(err, err_len, -ENOMEM, "cannot create the Lua state");
  }
  env->L = s;
  mg__lua_install_hook(s);
  *L = s;
  *env_out = env;
  return 0;
}

void mg_lua_close(mg_lua_env *env) {
  if (!env)
    return;
  env->closing_handles = 1; /* a finalizer cannot make a new one */
  mg_lua_close_handles(env);
  if (env->attached) { /* not ours to close: give it back */
    mg__lua_detach(env);
    return;
  }
  if (env->L) {
    env->mem_capped = 1; /* finalizers run under the cap too */
    lua_close(env->L);   /* __gc of every object of the module runs here */
  }
  mg__lua_env_free(env);
}

mg_lua_env *mg_lua_env_of(lua_State *L) {
  return mg_lua_env_find(L);
}

int mg_lua_in_call(const mg_lua_env *env) {
  return env->call != NULL;
}

lua_State *mg_lua_state(const mg_lua_env *env) {
  return env->L;
}

void mg_lua_set_budget(mg_lua_env *env, const mg_lua_budget *b) {
  env->budget = *b;
}

void mg_lua_shutdown(mg_lua_env *env) {
  env->closing_handles = 1;
  mg_lua_close_handles(env);
}

void mg_lua_request_exit(mg_lua_env *env, int code) {
  if (!env->exit_requested) {
    env->exit_requested = 1;
    env->exit_code = code;
  }
  env->exit_notified = 1;
}

int mg_lua_exit_requested(const mg_lua_env *env, int *code) {
  if (code)
    *code = env->exit_requested ? env->exit_code : 0;
  return env->exit_requested;
}

int mg_lua_signal_handlers(const mg_lua_env *env, int signum) {
  return signum > 0 && signum <= 64 ? env->signal_handlers[signum] : 0;
}

unsigned long mg_lua_callback_errors(const mg_lua_env *env) {
  return env->callback_errors;
}

void mg_lua_callback_stats_get(const mg_lua_env *env,
                               mg_lua_callback_stats *out) {
  out->calls = env->cb_calls;
  out->failed = env->callback_errors;
  out->stopped_instructions = env->cb_stopped_insns;
  out->stopped_timeout = env->cb_stopped_time;
  out->stopped_memory = env->cb_stopped_mem;
}

struct mg_metrics *mg_lua_metrics(mg_lua_env *env) {
  return env->metrics;
}

size_t mg_lua_mem(const mg_lua_env *env, size_t *peak) {
  if (peak)
    *peak = env->mem_peak;
  return env->mem_used;
}

/* ------------------------------------------------------------ mg.exit */

/* mg.exit([code]) — graceful shutdown, then exit with code (default 0;
 * true = 0, false = 1). Does not return. */
static int l_exit(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  int code = 0;
  if (lua_isboolean(L, 1)) {
    code = lua_toboolean(L, 1) ? 0 : 1;
  } else if (!lua_isnoneornil(L, 1)) {
    lua_Integer c = luaL_checkinteger(L, 1);
    luaL_argcheck(L, c >= 0 && c <= 255, 1, "exit code must be 0..255");
    code = (int)c;
  }
  if (!env->exit_requested) {
    env->exit_requested = 1;
    env->exit_code = code;
  }
  return mg_lua_raise_exit(L);
}

/* ------------------------------------------------------------ helpers */

/* The name of the value at idx for messages: its metatable's __name
 * (mg.store, mg.timer…) or its type. */
static const char *value_name(lua_State *L, int idx) {
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) {
    const char *n = lua_tostring(L, -1);
    lua_pop(L, 1); /* the metatable keeps the string alive */
    return n;
  }
  return luaL_typename(L, idx);
}

void *mg_lua_check_self(lua_State *L, const char *mt, const char *method) {
  void *p = luaL_testudata(L, 1, mt);
  if (p == NULL)
    luaL_error(L, "bad argument #1 to '%s' (%s expected, got %s)", method, mt,
               value_name(L, 1));
  return p;
}

void mg_lua_check_options(lua_State *L, int idx, const char *fn,
                          const char *const *accepted) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; accepted[i] && !known; i++)
        known = strcmp(accepted[i], k) == 0;
    }
    if (known)
      continue;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; accepted[i]; i++) {
      if (i)
        luaL_addstring(&b, ", ");
      luaL_addstring(&b, accepted[i]);
    }
    luaL_pushresult(&b);
    if (lua_type(L, -2) == LUA_TSTRING)
      luaL_error(L,
                 "bad argument #%d to '%s' (unknown option '%s'; accepted: %s)",
                 idx, fn, lua_tostring(L, -2), lua_tostring(L, -1));
    luaL_error(L,
               "bad argument #%d to '%s' (option names are strings, got a %s "
               "key; accepted: %s)",
               idx, fn, luaL_typename(L, -2), lua_tostring(L, -1));
  }
}

const char *mg_lua_check_text(lua_State *L, int idx, const char *what,
                              size_t *len) {
  size_t n;
  const char *s;
  if (what == NULL) { /* an argument: the usual messages; a string, not a
                        number that Lua would turn into one */
    luaL_checktype(L, idx, LUA_TSTRING);
    s = lua_tolstring(L, idx, &n);
    if (memchr(s, '\0', n))
      luaL_argerror(L, idx, "it holds a NUL byte, which text cannot hold here");
  } else {
    if (lua_type(L, idx) != LUA_TSTRING)
      luaL_error(L, "bad field '%s' (string expected, got %s)", what,
                 value_name(L, idx));
    s = lua_tolstring(L, idx, &n);
    if (memchr(s, '\0', n))
      luaL_error(L,
                 "bad field '%s' (it holds a NUL byte, which text cannot "
                 "hold here)",
                 what);
  }
  if (len)
    *len = n;
  return s;
}

int mg_lua_fail(lua_State *L, int code, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, mg_err_name(code));
  return 3;
}

int mg_lua_failf(lua_State *L, int code, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return mg_lua_fail(L, code, buf);
}

void mg_lua_pushu64(lua_State *L, uint64_t v) {
  if (v > (uint64_t)INT64_MAX)
    lua_pushnumber(L, (lua_Number)v);
  else
    lua_pushinteger(L, (lua_Integer)v);
}

void mg_lua_setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setu64(lua_State *L, const char *k, uint64_t v) {
  mg_lua_pushu64(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setstr(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setnum(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_setbool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

void mg_lua_set_fields(lua_State *L, const void *base,
                       const mg_lua_field *fields, size_t n) {
  const char *b = base;
  for (size_t i = 0; i < n; i++) {
    const void *at = b + fields[i].offset;
    uint64_t u;
    double d;
    int v;
    switch (fields[i].type) {
    case MG_LUA_F_U64:
    case MG_LUA_F_U64_NZ:
      memcpy(&u, at, sizeof u);
      if (u == 0 && fields[i].type == MG_LUA_F_U64_NZ)
        continue;
      mg_lua_pushu64(L, u);
      break;
    case MG_LUA_F_DOUBLE:
      memcpy(&d, at, sizeof d);
      lua_pushnumber(L, d);
      break;
    case MG_LUA_F_BOOL:
      memcpy(&v, at, sizeof v);
      lua_pushboolean(L, v);
      break;
    default:
      memcpy(&v, at, sizeof v);
      lua_pushinteger(L, v);
      break;
    }
    lua_setfield(L, -2, fields[i].name);
  }
}

void mg_lua_push_json(lua_State *L, const void *vj) {
  const json_t *j = vj;
  luaL_checkstack(L, 4, "JSON nesting too deep");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *key;
    json_t *val;
    lua_createtable(L, 0, (int)json_object_size(j));
    json_object_foreach((json_t *)j, key, val) {
      if (json_is_null(val))
        continue;
      mg_lua_push_json(L, val);
      lua_setfield(L, -2, key);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *val;
    lua_createtable(L, (int)json_array_size(j), 0);
    json_array_foreach((json_t *)j, i, val) {
      mg_lua_push_json(L, val);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  }
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(j), json_string_length(j));
    break;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(j));
    break;
  case JSON_REAL:
    lua_pushnumber(L, json_real_value(j));
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  default:
    lua_pushnil(L);
    break;
  }
}

int mg_lua_check_size(lua_State *L, int idx, const char *argname, uint64_t *out,
                      char *err, size_t err_len) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      if (v < 0)
        return mg_errf(err, err_len, MG_EPARSE,
                       "invalid size %lld for %s: must not be negative; "
                       "accepted: %s",
                       (long long)v, argname, MG_SIZE_ACCEPTED);
      *out = (uint64_t)v;
      return 0;
    }
    char e[512];
    int rc = mg_size_from_double(lua_tonumber(L, idx), out, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "%s: %s", argname, e);
    return 0;
  }
  if (t == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
      return mg_errf(err, err_len, MG_EPARSE,
                     "%s: invalid size (it holds a NUL byte); accepted: %s",
                     argname, MG_SIZE_ACCEPTED);
    uint64_t base = strchr(s, '%') ? mg_lua_effective_total(L) : 0;
    char e[512];
    int rc = mg_size_parse(s, base, out, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "%s: %s", argname, e);
    return 0;
  }
  return luaL_error(L,
                    "bad argument '%s' (size expected: a number of "
                    "bytes or a string like \"1.5G\", got %s)",
                    argname, value_name(L, idx));
}

/* ------------------------------------------------------------ module */

void mg_lua_push(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  lua_newtable(L);
  lua_pushliteral(L, MG_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushcfunction(L, l_exit);
  lua_setfield(L, -2, "exit");
  mg_lua_open_size(L);
  mg_lua_open_probe(L);
  mg_lua_open_limits(L);
  mg_lua_open_loop(L);
  mg_lua_open_log(L);
  mg_lua_open_store(L);
  mg_lua_open_spawn(L);
  mg_lua_open_metrics(L);
  mg_lua_open_control(L);
  if (env->attached)
    mg_lua_open_configure(L);
}

void mg_lua_open(lua_State *L) {
  mg_lua_push(L);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "mg");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "mg");
  lua_pop(L, 2);
}
