/* lmg_control.c — the policy's side of the control socket: mg.on_control
 * (commands of its own) and mg.on_reload (the handler of `reload`), and
 * the calls the host makes into them (bindings layer; Lua C API, jansson).
 *
 * State. The commands live in a table in the registry (env->control_ref:
 * name → function) and the reload handler in env->reload_ref: per state,
 * nothing process-wide.
 *
 * Calls. The host (runtime/host/mg_runtime_control*.c) calls a command
 * through mg_lua_control_call: a protected call of its own with the
 * callback budget (mg_lua_pcall), in which the request's arguments are
 * made into a Lua table and the function's result is turned into JSON —
 * all under the budget and the memory cap, so a result too deep or too
 * odd fails like any error of the callback.
 *
 * Lua → JSON (what a command may return): nil → null, booleans, integers,
 * finite floats, strings of UTF-8 text; a table whose keys are exactly
 * 1..n → an array; a table of string keys → an object; an empty table →
 * {}. Anything else (functions, userdata, NaN, a table mixing key kinds,
 * nesting deeper than MG_LUA_CONTROL_DEPTH) is an error naming where it
 * is ("result.items[2]: a function cannot be sent as JSON"). Tables are
 * read raw: metamethods (__pairs, __index) do not run.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/mg__lua.h"

/* The built-in commands a policy cannot take (the host's, and the verbs
 * of mgrun ctl that map onto them). */
static const char *const builtins[] = {MG_LUA_CONTROL_BUILTINS, NULL};

int mg_lua_control_builtin(const char *name) {
  for (int i = 0; builtins[i]; i++)
    if (strcmp(builtins[i], name) == 0)
      return 1;
  return 0;
}

/* The commands table on the stack (created when missing). */
static void push_commands(lua_State *L, mg_lua_env *env) {
  if (env->control_ref > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, env->control_ref);
    return;
  }
  lua_newtable(L);
  lua_pushvalue(L, -1);
  env->control_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static int count_commands(lua_State *L) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    n++;
  }
  return n;
}

/* mg.on_control(name, fn | nil) → true. A command of the policy that
 * `mgrun ctl NAME [ARGS]` (or a request {"cmd": NAME, "args": …}) runs:
 * fn(args) under the callback budget; its result goes back as JSON. A
 * second call with the same name replaces the function; nil removes it. */
static int l_on_control(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  size_t len;
  const char *name = mg_lua_check_text(L, 1, NULL, &len);
  if (!lua_isnil(L, 2))
    luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  char err[512];
  if (mg_name_check("command name", name, len, err, sizeof err) < 0)
    return luaL_argerror(L, 1, err);
  if (mg_lua_control_builtin(name))
    return luaL_argerror(
        L, 1,
        lua_pushfstring(L,
                        "'%s' is a built-in command of the control socket; "
                        "a policy's command takes another name (built-in: "
                        "%s)",
                        name, MG_LUA_CONTROL_BUILTINS_TEXT));
  push_commands(L, env);
  lua_getfield(L, 3, name);
  int exists = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (!exists && !lua_isnil(L, 2) && count_commands(L) >= MG_LUA_CONTROL_MAX)
    return luaL_error(L,
                      "mg.on_control: a policy may add at most %d commands "
                      "(remove one with mg.on_control(name, nil))",
                      MG_LUA_CONTROL_MAX);
  lua_pushvalue(L, 2);
  lua_setfield(L, 3, name);
  lua_pushboolean(L, 1);
  return 1;
}

/* mg.on_reload(fn | nil) → true. The handler the control socket's
 * `reload` runs (under the callback budget); a second call replaces it,
 * nil removes it. */
static int l_on_reload(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (!lua_isnil(L, 1))
    luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (env->reload_ref > 0)
    luaL_unref(L, LUA_REGISTRYINDEX, env->reload_ref);
  env->reload_ref = LUA_NOREF;
  if (!lua_isnil(L, 1))
    env->reload_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushboolean(L, 1);
  return 1;
}

void mg_lua_open_control(lua_State *L) {
  lua_pushcfunction(L, l_on_control);
  lua_setfield(L, -2, "on_control");
  lua_pushcfunction(L, l_on_reload);
  lua_setfield(L, -2, "on_reload");
}

/* ------------------------------------------------------------ Lua → JSON */

typedef struct l2j {
  char path[256]; /* where we are, for messages: "result.items[2]" */
  char why[512];
} l2j;

static json_t *to_json(lua_State *L, int idx, int depth, l2j *s);

static void path_push(l2j *s, size_t *mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_push(l2j *s, size_t *mark, const char *fmt, ...) {
  *mark = strlen(s->path);
  if (*mark + 1 >= sizeof s->path)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->path + *mark, sizeof s->path - *mark, fmt, ap);
  va_end(ap);
}

static json_t *fail(l2j *s, const char *what) {
  snprintf(s->why, sizeof s->why, "%s: %s", s->path, what);
  return NULL;
}

/* A table: an array when its keys are exactly 1..n, an object when they
 * are all strings (text keys), {} when empty. */
static json_t *table_to_json(lua_State *L, int idx, int depth, l2j *s) {
  if (depth >= MG_LUA_CONTROL_DEPTH) {
    char what[128];
    snprintf(what, sizeof what,
             "nested too deep for JSON (at most %d levels; a table that "
             "contains itself never ends)",
             MG_LUA_CONTROL_DEPTH);
    return fail(s, what);
  }
  if (!lua_checkstack(L, 4))
    return fail(s, "the Lua stack is full");
  size_t n = 0, ints = 0, strs = 0;
  lua_Integer maxi = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    n++;
    if (lua_type(L, -1) == LUA_TSTRING)
      strs++;
    else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
      ints++;
      if (lua_tointeger(L, -1) > maxi)
        maxi = lua_tointeger(L, -1);
    } else {
      lua_pop(L, 1);
      return fail(s, "a table key that is neither a string nor a positive "
                     "integer cannot be sent as JSON (accepted: arrays with "
                     "keys 1..n, tables of string keys)");
    }
  }
  size_t mark;
  if (n > 0 && ints == n) {
    if ((size_t)maxi != n)
      return fail(s, "an array with holes cannot be sent as JSON (keys "
                     "must be exactly 1..n)");
    json_t *a = json_array();
    for (size_t i = 1; a && i <= n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i);
      path_push(s, &mark, "[%zu]", i);
      json_t *v = to_json(L, lua_gettop(L), depth + 1, s);
      s->path[mark] = '\0';
      lua_pop(L, 1);
      if (!v || json_array_append_new(a, v) < 0) {
        json_decref(a);
        return v ? fail(s, "out of memory") : NULL;
      }
    }
    return a ? a : fail(s, "out of memory");
  }
  if (ints > 0)
    return fail(s, "a table that mixes string and integer keys cannot be "
                   "sent as JSON (accepted: arrays with keys 1..n, tables of "
                   "string keys)");
  json_t *o = json_object();
  if (!o)
    return fail(s, "out of memory");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen); /* a string: no change */
    path_push(s, &mark, ".%.*s", (int)(klen > 64 ? 64 : klen), k);
    json_t *v = to_json(L, lua_gettop(L), depth + 1, s);
    lua_pop(L, 1);
    /* json_object_setn_new checks the key's UTF-8 and drops v on failure */
    if (v &&
        (memchr(k, '\0', klen) ? (json_decref(v), 1)
                               : json_object_setn_new(o, k, klen, v) < 0)) {
      v = NULL;
      fail(s, "a key that is not UTF-8 text (or holds a NUL byte) cannot "
              "be sent as JSON");
    }
    s->path[mark] = '\0';
    if (!v) {
      lua_pop(L, 1); /* the key */
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

static json_t *to_json(lua_State *L, int idx, int depth, l2j *s) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
  case LUA_TNONE:
    return json_null();
  case LUA_TBOOLEAN:
    return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      return json_integer((json_int_t)lua_tointeger(L, idx));
    if (!isfinite(lua_tonumber(L, idx)))
      return fail(s, "NaN and infinities cannot be sent as JSON");
    return json_real(lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t len;
    const char *str = lua_tolstring(L, idx, &len);
    json_t *j = json_stringn(str, len);
    return j ? j
             : fail(s, "a string that is not UTF-8 text cannot be sent as "
                       "JSON");
  }
  case LUA_TTABLE:
    return table_to_json(L, idx, depth, s);
  default: {
    char what[96];
    snprintf(what, sizeof what, "a %s cannot be sent as JSON",
             lua_typename(L, lua_type(L, idx)));
    return fail(s, what);
  }
  }
}

/* ------------------------------------------------------------ calls */

typedef struct ctl_call {
  const json_t *args; /* NULL: no arguments (reload) */
  json_t *result;
  int declined; /* the function returned nil, message[, code] */
  char message[512];
  char code[32];
} ctl_call;

/* In the protected call: fn, lightuserdata(ctl_call). */
static int call_tramp(lua_State *L) {
  ctl_call *cc = lua_touserdata(L, 2);
  lua_settop(L, 1);
  int nargs = 0;
  if (cc->args) {
    if (json_is_object(cc->args) || json_is_array(cc->args))
      mg_lua_push_json(L, cc->args);
    else
      lua_newtable(L);
    nargs = 1;
  }
  lua_call(L, nargs, 3); /* fn and its argument give way to 3 results */
  if (lua_isnil(L, 1) && lua_type(L, 2) == LUA_TSTRING) {
    cc->declined = 1;
    snprintf(cc->message, sizeof cc->message, "%s", lua_tostring(L, 2));
    if (lua_type(L, 3) == LUA_TSTRING)
      snprintf(cc->code, sizeof cc->code, "%s", lua_tostring(L, 3));
    return 0;
  }
  l2j s;
  snprintf(s.path, sizeof s.path, "result");
  s.why[0] = '\0';
  cc->result = to_json(L, 1, 0, &s);
  if (!cc->result)
    return luaL_error(L, "%s", s.why);
  return 0;
}

/* Push fn (already on the stack) into a protected call of the trampoline. */
static int run_call(mg_lua_env *env, lua_State *L, const char *what,
                    ctl_call *cc, char *code, size_t code_len, char *err,
                    size_t err_len) {
  int fn = lua_gettop(L);
  lua_pushcfunction(L, call_tramp);
  lua_insert(L, fn);
  lua_pushlightuserdata(L, cc);
  mg_lua_failure f;
  int st = mg_lua_pcall(L, 2, 0, what, &f);
  (void)env;
  if (st == MG_LUA_ERROR) {
    json_decref(cc->result);
    cc->result = NULL;
    snprintf(code, code_len, "%s", f.budget ? "EBUDGET" : "EPOLICY");
    return mg_errf(err, err_len, -EIO, "%s failed: %s", what, f.message);
  }
  if (cc->declined) {
    json_decref(cc->result);
    cc->result = NULL;
    snprintf(code, code_len, "%s", cc->code[0] ? cc->code : "EPOLICY");
    return mg_errf(err, err_len, -EIO, "%s", cc->message);
  }
  return st == MG_LUA_EXIT ? 1 : 0;
}

static int can_call(mg_lua_env *env, char *code, size_t code_len, char *err,
                    size_t err_len) {
  if (env->closing_handles) {
    snprintf(code, code_len, "ESHUTDOWN");
    return mg_errf(err, err_len, -ESHUTDOWN,
                   "mgrun is shutting down: the policy's handlers no "
                   "longer run");
  }
  if (env->call) {
    snprintf(code, code_len, "EBUSY");
    return mg_errf(err, err_len, -EBUSY, "a callback of the policy is running");
  }
  if (!lua_checkstack(env->L, 8)) {
    snprintf(code, code_len, "ENOMEM");
    return mg_errf(err, err_len, -ENOMEM, "the Lua stack is full");
  }
  return 0;
}

int mg_lua_control_has(mg_lua_env *env, const char *name) {
  lua_State *L = env->L;
  if (env->control_ref <= 0 || !lua_checkstack(L, 2))
    return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, env->control_ref);
  int t = lua_getfield(L, -1, name);
  lua_pop(L, 2);
  return t == LUA_TFUNCTION;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t mg_lua_control_each(mg_lua_env *env,
                           void (*fn)(const char *name, void *ud), void *ud) {
  lua_State *L = env->L;
  if (env->control_ref <= 0 || !lua_checkstack(L, 4))
    return 0;
  const char *names[MG_LUA_CONTROL_MAX];
  size_t n = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, env->control_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (n < MG_LUA_CONTROL_MAX && lua_type(L, -1) == LUA_TSTRING)
      names[n++] = lua_tostring(L, -1); /* kept alive by the table */
  }
  qsort(names, n, sizeof names[0], cmp_names);
  for (size_t i = 0; i < n; i++)
    fn(names[i], ud);
  lua_pop(L, 1);
  return n;
}

int mg_lua_control_call(mg_lua_env *env, const char *name,
                        const struct json_t *args, struct json_t **result,
                        char *code, size_t code_len, char *err,
                        size_t err_len) {
  lua_State *L = env->L;
  *result = NULL;
  int rc = can_call(env, code, code_len, err, err_len);
  if (rc < 0)
    return rc;
  if (env->control_ref > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, env->control_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
  } else {
    lua_pushnil(L);
  }
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    snprintf(code, code_len, "ENOENT");
    return mg_errf(err, err_len, -ENOENT,
                   "unknown command '%s' (built-in: %s; the policy's: see "
                   "'hello')",
                   name, MG_LUA_CONTROL_BUILTINS_TEXT);
  }
  char what[MG_NAME_MAX + 32];
  snprintf(what, sizeof what, "control command '%s'", name);
  ctl_call cc;
  memset(&cc, 0, sizeof cc);
  cc.args = args ? args : json_object();
  int own = args == NULL;
  rc = run_call(env, L, what, &cc, code, code_len, err, err_len);
  if (own)
    json_decref((json_t *)cc.args);
  *result = cc.result;
  return rc;
}

int mg_lua_reload_handler(const mg_lua_env *env) {
  return env->reload_ref > 0;
}

int mg_lua_reload(mg_lua_env *env, struct json_t **result, char *code,
                  size_t code_len, char *err, size_t err_len) {
  lua_State *L = env->L;
  *result = NULL;
  int rc = can_call(env, code, code_len, err, err_len);
  if (rc < 0)
    return rc;
  if (env->reload_ref <= 0) {
    snprintf(code, code_len, "ENOENT");
    return mg_errf(err, err_len, -ENOENT,
                   "the policy has no reload handler (it sets one with "
                   "mg.on_reload(fn))");
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, env->reload_ref);
  ctl_call cc;
  memset(&cc, 0, sizeof cc);
  rc = run_call(env, L, "reload handler (mg.on_reload)", &cc, code, code_len,
                err, err_len);
  *result = cc.result;
  return rc;
}
