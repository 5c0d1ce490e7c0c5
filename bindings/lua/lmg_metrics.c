/* lmg_metrics.c — mg.metrics: a policy's own gauges and counters, served
 * by the host with its built-in metrics (bindings layer). The families
 * live in the env's registry (env->metrics, core mg_metrics): one per Lua
 * state, never shared between runtimes. A metric object holds a pointer
 * to its family, which the registry owns until the env is freed (after
 * lua_close: no object outlives it).
 *
 *   local g = mg.metrics.gauge("agent_queue_depth", "Jobs waiting.", {"queue"})
 *   g:set(12, { queue = "inbox" })
 *   local c = mg.metrics.counter("agent_turns_total", "Turns taken.")
 *   c:inc()            -- 1
 *   c:inc(2)           -- counters only go up: c:inc(-1) raises
 *   mg.metrics.text()  -- the policy's metrics in the text format
 *
 * Names follow the Prometheus rules (mg/mg_metrics.h) and must not start
 * with "mgrun_", which is mgrun's own. Misuse raises an error naming the
 * argument and saying what is accepted.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/mg__lua.h"

#define METRIC_MT "mg.metric"
#define BUILTIN_PREFIX "mgrun_"

typedef struct lmetric {
  mg_metric *f;
} lmetric;

static lmetric *check_metric(lua_State *L, const char *method) {
  return mg_lua_check_self(L, METRIC_MT, method);
}

/* ------------------------------------------------------------ labels */

/* Label values from the table at `idx` (or none/nil for a family without
 * labels), as text in vals[] (buf holds the converted numbers). */
typedef struct label_values {
  const char *v[MG_METRICS_LABELS_MAX];
  char num[MG_METRICS_LABELS_MAX][48];
} label_values;

static void list_labels(lua_State *L, const mg_metric *f) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t n = mg_metric_label_count(f);
  if (n == 0)
    luaL_addstring(&b, "none");
  for (size_t i = 0; i < n; i++) {
    if (i)
      luaL_addstring(&b, ", ");
    luaL_addstring(&b, mg_metric_label(f, i));
  }
  luaL_pushresult(&b);
}

static const char *const *check_labels(lua_State *L, int idx, const char *fn,
                                       const mg_metric *f, label_values *lv) {
  size_t n = mg_metric_label_count(f);
  int t = lua_type(L, idx);
  if (t == LUA_TNONE || t == LUA_TNIL) {
    if (n == 0)
      return NULL;
    list_labels(L, f);
    luaL_error(L,
               "bad argument #%d to '%s' (metric '%s' needs its labels: a "
               "table with %s)",
               idx, fn, mg_metric_name(f), lua_tostring(L, -1));
  }
  if (t != LUA_TTABLE)
    luaL_error(L,
               "bad argument #%d to '%s' (a table of labels expected, got %s)",
               idx, fn, luaL_typename(L, idx));
  for (size_t i = 0; i < n; i++)
    lv->v[i] = NULL;
  size_t found = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t k = n;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *key = lua_tostring(L, -2);
      for (k = 0; k < n && strcmp(mg_metric_label(f, k), key) != 0; k++)
        ;
    }
    if (k == n) {
      list_labels(L, f);
      if (lua_type(L, -3) == LUA_TSTRING)
        luaL_error(L,
                   "bad argument #%d to '%s' (metric '%s' has no label '%s'; "
                   "its labels: %s)",
                   idx, fn, mg_metric_name(f), lua_tostring(L, -3),
                   lua_tostring(L, -1));
      luaL_error(L,
                 "bad argument #%d to '%s' (label names are strings, got a "
                 "%s key; the labels of metric '%s': %s)",
                 idx, fn, luaL_typename(L, -3), mg_metric_name(f),
                 lua_tostring(L, -1));
    }
    const char *label = mg_metric_label(f, k);
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      if (strlen(s) != len)
        luaL_error(L,
                   "bad argument #%d to '%s' (the value of label '%s' holds a "
                   "NUL byte; accepted: UTF-8 text)",
                   idx, fn, label);
      lv->v[k] = s; /* the table keeps it alive */
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, -1))
        snprintf(lv->num[k], sizeof lv->num[k], "%lld",
                 (long long)lua_tointeger(L, -1));
      else
        snprintf(lv->num[k], sizeof lv->num[k], "%.14g", lua_tonumber(L, -1));
      lv->v[k] = lv->num[k];
      break;
    case LUA_TBOOLEAN:
      lv->v[k] = lua_toboolean(L, -1) ? "true" : "false";
      break;
    default:
      luaL_error(L,
                 "bad argument #%d to '%s' (the value of label '%s' must be a "
                 "string, a number or a boolean, got %s)",
                 idx, fn, label, luaL_typename(L, -1));
    }
    found++;
    lua_pop(L, 1);
  }
  if (found < n) {
    size_t k = 0;
    while (lv->v[k])
      k++;
    list_labels(L, f);
    luaL_error(L,
               "bad argument #%d to '%s' (no value for label '%s' of metric "
               "'%s'; its labels: %s)",
               idx, fn, mg_metric_label(f, k), mg_metric_name(f),
               lua_tostring(L, -1));
  }
  return lv->v;
}

/* A number argument, not a string Lua would convert. */
static double check_value(lua_State *L, int idx, const char *fn) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "bad argument #%d to '%s' (number expected, got %s)", idx, fn,
               luaL_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* ------------------------------------------------------------ methods */

/* metric:set(value [, labels]) — a gauge takes any number; a counter any
 * number not below its value. */
static int l_set(lua_State *L) {
  lmetric *m = check_metric(L, "set");
  double v = check_value(L, 2, "set");
  label_values lv;
  const char *const *vals = check_labels(L, 3, "set", m->f, &lv);
  char err[512];
  if (mg_metric_set(m->f, vals, v, err, sizeof err) < 0)
    return luaL_error(L, "bad argument #2 to 'set' (%s)", err);
  lua_settop(L, 1);
  return 1;
}

/* metric:inc([n] [, labels]) — add n (default 1); a counter's n is not
 * negative. */
static int l_inc(lua_State *L) {
  lmetric *m = check_metric(L, "inc");
  double n = 1;
  int lidx = 3;
  if (lua_type(L, 2) == LUA_TTABLE) {
    if (!lua_isnone(L, 3))
      return luaL_error(L,
                        "bad argument #3 to 'inc' (nothing expected after the "
                        "labels; the form is inc([n] [, labels]))");
    lidx = 2;
  } else if (!lua_isnoneornil(L, 2)) {
    n = check_value(L, 2, "inc");
  }
  if (mg_metric_type_of(m->f) == MG_METRIC_COUNTER && n < 0) {
    char num[48];
    snprintf(num, sizeof num, "%.14g", n);
    return luaL_error(L,
                      "bad argument #2 to 'inc' (counter '%s' cannot add %s: "
                      "counters only go up; use a gauge for a value that goes "
                      "down)",
                      mg_metric_name(m->f), num);
  }
  label_values lv;
  const char *const *vals = check_labels(L, lidx, "inc", m->f, &lv);
  char err[512];
  if (mg_metric_inc(m->f, vals, n, err, sizeof err) < 0)
    return luaL_error(L, "bad argument #2 to 'inc' (%s)", err);
  lua_settop(L, 1);
  return 1;
}

/* metric:get([labels]) → the value | nil when that series was never set */
static int l_get(lua_State *L) {
  lmetric *m = check_metric(L, "get");
  label_values lv;
  const char *const *vals = check_labels(L, 2, "get", m->f, &lv);
  double v;
  if (mg_metric_get(m->f, vals, &v) < 0)
    lua_pushnil(L);
  else if (v == floor(v) && fabs(v) < 9007199254740992.0)
    lua_pushinteger(L, (lua_Integer)v);
  else
    lua_pushnumber(L, v);
  return 1;
}

/* metric:remove(labels) → true | false (no such series): it is no longer
 * served. */
static int l_remove(lua_State *L) {
  lmetric *m = check_metric(L, "remove");
  if (mg_metric_label_count(m->f) == 0)
    return luaL_error(L,
                      "bad argument #1 to 'remove' (metric '%s' has no labels: "
                      "its one series stays; set it instead)",
                      mg_metric_name(m->f));
  label_values lv;
  const char *const *vals = check_labels(L, 2, "remove", m->f, &lv);
  lua_pushboolean(L, mg_metric_remove(m->f, vals) == 0);
  return 1;
}

/* Fields: name, type ("gauge"|"counter"), labels (a new list); then the
 * methods. */
static int l_index(lua_State *L) {
  lmetric *m = check_metric(L, "__index");
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "name") == 0) {
    lua_pushstring(L, mg_metric_name(m->f));
  } else if (k && strcmp(k, "type") == 0) {
    lua_pushstring(L, mg_metric_type_name(mg_metric_type_of(m->f)));
  } else if (k && strcmp(k, "labels") == 0) {
    size_t n = mg_metric_label_count(m->f);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      lua_pushstring(L, mg_metric_label(m->f, i));
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  } else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int l_tostring(lua_State *L) {
  lmetric *m = check_metric(L, "__tostring");
  list_labels(L, m->f);
  lua_pushfstring(L, "mg.metric %s '%s' (labels: %s)",
                  mg_metric_type_name(mg_metric_type_of(m->f)),
                  mg_metric_name(m->f), lua_tostring(L, -1));
  return 1;
}

/* ------------------------------------------------------------ mg.metrics */

static int new_metric(lua_State *L, mg_metric_type type, const char *fn) {
  mg_lua_env *env = mg_lua_env_get(L);
  const char *name = mg_lua_check_text(L, 1, NULL, NULL);
  const char *help = mg_lua_check_text(L, 2, NULL, NULL);
  const char *labels[MG_METRICS_LABELS_MAX];
  size_t n = 0;
  char err[512];
  if (mg_metrics_check_name(name, err, sizeof err) < 0)
    return luaL_error(L, "bad argument #1 to '%s' (%s)", fn, err);
  if (strncmp(name, BUILTIN_PREFIX, strlen(BUILTIN_PREFIX)) == 0)
    return luaL_error(L,
                      "bad argument #1 to '%s' (metric name '%s': names "
                      "starting with '" BUILTIN_PREFIX "' are mgrun's own "
                      "built-in metrics; choose a prefix of the policy's, "
                      "e.g. 'agent_')",
                      fn, name);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer len = (lua_Integer)lua_rawlen(L, 3);
    if (len > (lua_Integer)MG_METRICS_LABELS_MAX)
      return luaL_error(L,
                        "bad argument #3 to '%s' (%d label names; accepted: "
                        "at most %d)",
                        fn, (int)len, (int)MG_METRICS_LABELS_MAX);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pop(L, 1);
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
          lua_tointeger(L, -1) > len)
        return luaL_error(L,
                          "bad argument #3 to '%s' (a list of label names "
                          "expected, e.g. {\"name\", \"queue\"}; it has a "
                          "%s key)",
                          fn, luaL_typename(L, -1));
    }
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, 3, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L,
                          "bad argument #3 to '%s' (label name #%d: string "
                          "expected, got %s)",
                          fn, (int)i, luaL_typename(L, -1));
      labels[n++] = lua_tostring(L, -1); /* the list keeps it alive */
      lua_pop(L, 1);
    }
  }
  lmetric *m = lua_newuserdatauv(L, sizeof *m, 0);
  m->f = NULL;
  int rc = mg_metrics_add(env->metrics, name, type, help, labels, n, &m->f, err,
                          sizeof err);
  if (rc < 0) {
    int arg = 1;
    if (rc == -EINVAL && strstr(err, "its help"))
      arg = 2;
    else if (rc == -EINVAL && strstr(err, "label"))
      arg = 3;
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fn, err);
  }
  luaL_setmetatable(L, METRIC_MT);
  return 1;
}

/* mg.metrics.gauge(name, help [, labels]) → metric */
static int l_gauge(lua_State *L) {
  return new_metric(L, MG_METRIC_GAUGE, "gauge");
}

/* mg.metrics.counter(name, help [, labels]) → metric */
static int l_counter(lua_State *L) {
  return new_metric(L, MG_METRIC_COUNTER, "counter");
}

/* mg.metrics.text() → the policy's metrics in the text format */
static int l_text(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  char *t;
  size_t len;
  if (mg_metrics_render(env->metrics, &t, &len) < 0)
    return luaL_error(L, "mg.metrics.text: out of memory");
  lua_pushlstring(L, t, len);
  free(t);
  return 1;
}

void mg_lua_open_metrics(lua_State *L) {
  static const luaL_Reg methods[] = {{"set", l_set},
                                     {"inc", l_inc},
                                     {"get", l_get},
                                     {"remove", l_remove},
                                     {NULL, NULL}};
  static const luaL_Reg fns[] = {{"gauge", l_gauge},
                                 {"counter", l_counter},
                                 {"text", l_text},
                                 {NULL, NULL}};
  luaL_newmetatable(L, METRIC_MT);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, l_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, METRIC_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "metrics");
}
