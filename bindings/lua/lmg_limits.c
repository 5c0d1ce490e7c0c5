/* lmg_limits.c — mg.validate_limit, mg.validate_total, mg.rlimit_support,
 * mg.set_limit, mg.get_limit (bindings layer). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg__lproc.h"
#include "mg/mg_gpu.h"

/* Push the verdict: ok, message ("" when ok), warning (nil when none). */
static int push_validation(lua_State *L, const mg_validation *v) {
  lua_pushboolean(L, v->ok);
  lua_pushstring(L, v->ok ? "" : v->message);
  if (v->warning[0])
    lua_pushstring(L, v->warning);
  else
    lua_pushnil(L);
  return 3;
}

/* A limit value for validation: numbers pass through as doubles (so NaN,
 * inf and negatives are judged, not lost); strings are parsed. Returns 0,
 * or -1 with *msg set when a string does not parse. */
static int limit_value(lua_State *L, int idx, const char *what, double *out,
                       char *msg, size_t len) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
    *out = (double)lua_tonumber(L, idx);
    return 0;
  }
  if (t == LUA_TSTRING) {
    uint64_t b;
    int rc = mg_lua_check_size(L, idx, what, &b, msg, len);
    if (rc < 0)
      return rc;
    *out = (double)b;
    return 0;
  }
  return luaL_error(L,
                    "bad argument '%s' (size expected: a number of bytes "
                    "or a string like \"2G\", got %s)",
                    what, luaL_typename(L, idx));
}

/* mg.validate_limit(size) → ok, message, warning */
static int l_validate_limit(lua_State *L) {
  mg_validation v;
  double bytes;
  luaL_checkany(L, 1);
  memset(&v, 0, sizeof v);
  if (limit_value(L, 1, "size", &bytes, v.message, sizeof v.message) < 0)
    return push_validation(L, &v);
  mg_validate_limit(bytes, mg_lua_effective_total(L), &v);
  return push_validation(L, &v);
}

/* The GPU budgets of the items (gpu_limit = size | "N%" of its devices,
 * gpus = { index, ... }): validated per device (mg_validate_gpu_total).
 * Returns 1 when no item has one (nothing to check), else pushes nothing
 * and fills *v. */
static int gpu_total(lua_State *L, lua_Integer n, mg_validation *v) {
  mg_gpu_budget *b = lua_newuserdatauv(L, sizeof *b * (size_t)(n + 1), 0);
  unsigned *idx = lua_newuserdatauv(L, sizeof *idx * (size_t)(n + 1) * 64, 0);
  double *frac = lua_newuserdatauv(L, sizeof *frac * (size_t)(n + 1), 0);
  int any = 0, top = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_settop(L, top);
    mg_gpu_budget *it = &b[i - 1];
    memset(it, 0, sizeof *it);
    frac[i - 1] = 0;
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE)
      continue;
    int t = lua_gettop(L);
    lua_pushliteral(L, "name");
    if (lua_rawget(L, t) == LUA_TSTRING)
      it->name = lua_tostring(L, -1);
    lua_pushliteral(L, "gpu_limit");
    if (lua_rawget(L, t) == LUA_TNIL)
      continue;
    any = 1;
    mg_threshold lv;
    char what[80];
    snprintf(what, sizeof what, "%s: gpu_limit", it->name ? it->name : "item");
    if (mg_lua_check_level(L, -1, what, &lv, v->message, sizeof v->message) <
        0) {
      v->ok = 0;
      return 0;
    }
    it->bytes = (double)lv.bytes;
    frac[i - 1] = lv.fraction;
    lua_pushliteral(L, "gpus");
    if (lua_rawget(L, t) == LUA_TTABLE) {
      size_t k = (size_t)lua_rawlen(L, -1);
      luaL_argcheck(L, k >= 1 && k <= 64, 1, "gpus: 1 to 64 device indices");
      it->gpus = idx + (size_t)(i - 1) * 64;
      for (size_t j = 0; j < k; j++) {
        lua_rawgeti(L, -1, (lua_Integer)j + 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
          return luaL_error(L,
                            "bad argument #1 to 'validate_total' (%s: "
                            "gpus[%d] must be a device index >= 0)",
                            it->name ? it->name : "item", (int)j + 1);
        idx[(size_t)(i - 1) * 64 + j] = (unsigned)lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      it->ngpus = k;
    }
  }
  if (!any)
    return 1;
  mg_lua_env *env = mg_lua_env_get(L);
  mg_gpu *g = NULL;
  char err[1024];
  unsigned nd = 0;
  int rc = env->sup ? mg_sup_gpu(env->sup, &g, err, sizeof err) : MG_ENOTSUP;
  if (rc == 0)
    rc = mg_gpu_count(g, &nd, err, sizeof err);
  if (rc < 0) {
    v->ok = 0;
    snprintf(v->message, sizeof v->message,
             "Cannot validate GPU memory limits: %s",
             env->sup ? err : "no supervisor");
    return 0;
  }
  mg_gpu_capacity cap[MG_GPU_MAX];
  mg_gpu_device dev[MG_GPU_MAX];
  for (unsigned d = 0; d < nd; d++) {
    if (mg_gpu_device_info(g, d, &dev[d], err, sizeof err) < 0) {
      v->ok = 0;
      snprintf(v->message, sizeof v->message,
               "Cannot validate GPU memory limits: %s", err);
      return 0;
    }
    cap[d].name = dev[d].name;
    cap[d].total_bytes = dev[d].total_bytes;
    cap[d].integrated = dev[d].integrated;
  }
  for (lua_Integer i = 0; i < n; i++) /* "N%": of the devices it may use */
    if (frac[i] > 0) {
      double total = 0;
      for (size_t j = 0; j < (b[i].ngpus ? b[i].ngpus : nd); j++) {
        unsigned d = b[i].ngpus ? b[i].gpus[j] : (unsigned)j;
        if (d < nd)
          total += (double)cap[d].total_bytes;
      }
      b[i].bytes = frac[i] * total;
    }
  mg_validate_gpu_total(b, (size_t)n, cap, nd, v);
  return 0;
}

/* mg.validate_total({size, ...}) or ({ {name=, limit=, gpu_limit=,
 * gpus=}, ... }) → ok, message, warning; host budgets against the
 * effective memory, GPU budgets per device. */
static int l_validate_total(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  mg_validation v;
  memset(&v, 0, sizeof v);
  luaL_argcheck(L, n >= 0 && n <= 4096, 1, "at most 4096 items");
  mg_limit_item *items =
      lua_newuserdatauv(L, sizeof *items * (size_t)(n + 1), 0);
  int base = lua_gettop(L);
  /* Names are borrowed from the item tables, which argument 1 anchors. */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_settop(L, base);
    char what[64];
    lua_rawgeti(L, 1, i); /* raw: a metamethod's fresh table would not
                             anchor the name we borrow */
    int item = lua_gettop(L);
    items[i - 1].name = NULL;
    snprintf(what, sizeof what, "item %lld", (long long)i);
    if (lua_type(L, item) == LUA_TTABLE) {
      lua_pushliteral(L, "name");
      lua_rawget(L, item);
      if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
          return luaL_error(L,
                            "bad argument #1 to 'validate_total' (item "
                            "%d: name must be a string)",
                            (int)i);
        items[i - 1].name = lua_tostring(L, -1);
        snprintf(what, sizeof what, "%s", items[i - 1].name);
      }
      lua_pushliteral(L, "limit");
      lua_rawget(L, item);
      if (lua_isnil(L, -1))
        return luaL_error(L,
                          "bad argument #1 to 'validate_total' (item "
                          "%d has no 'limit')",
                          (int)i);
      if (limit_value(L, -1, what, &items[i - 1].bytes, v.message,
                      sizeof v.message) < 0)
        return push_validation(L, &v);
    } else if (limit_value(L, item, what, &items[i - 1].bytes, v.message,
                           sizeof v.message) < 0) {
      return push_validation(L, &v);
    }
  }
  mg_validate_total(items, (size_t)n, mg_lua_effective_total(L), &v);
  if (!v.ok)
    return push_validation(L, &v);
  mg_validation gv;
  memset(&gv, 0, sizeof gv);
  if (gpu_total(L, n, &gv) == 1)
    return push_validation(L, &v);
  if (gv.warning[0] && v.warning[0]) {
    size_t l = strlen(v.warning);
    snprintf(v.warning + l, sizeof v.warning - l, "; %s", gv.warning);
  } else if (gv.warning[0]) {
    snprintf(v.warning, sizeof v.warning, "%s", gv.warning);
  }
  if (!gv.ok) {
    snprintf(gv.warning, sizeof gv.warning, "%s", v.warning);
    return push_validation(L, &gv);
  }
  return push_validation(L, &v);
}

/* mg.rlimit_support() → "data" | "as" | nil, description */
static int l_rlimit_support(lua_State *L) {
  mg_rlimit_support s;
  mg_rlimit_resource r;
  char desc[700], err[600];
  mg_rlimit_probe(&s);
  /* the reasons start with their verdict ("enforced: …") */
  snprintf(desc, sizeof desc, "RLIMIT_DATA %s; RLIMIT_AS %s", s.data_reason,
           s.as_reason);
  if (mg_rlimit_preferred(&s, &r, err, sizeof err) < 0)
    lua_pushnil(L);
  else
    lua_pushstring(L, mg_rlimit_name(r));
  lua_pushstring(L, desc);
  return 2;
}

/* Options of mg.set_limit. */
typedef struct set_opts {
  int strict;
  int validate;
  int hard;
  lua_Integer pid;
  const char *resource;
} set_opts;

static void read_set_opts(lua_State *L, int idx, set_opts *o) {
  o->strict = 1; /* the seed's default: raise on failure */
  o->validate = 1;
  o->hard = 0;
  o->pid = 0;
  o->resource = "auto";
  static const char *const accepted[] = {"strict", "validate", "hard",
                                         "pid",    "resource", NULL};
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  mg_lua_check_options(L, idx, "set_limit", accepted);
  lua_getfield(L, idx, "strict");
  if (!lua_isnil(L, -1))
    o->strict = lua_toboolean(L, -1);
  lua_getfield(L, idx, "validate");
  if (!lua_isnil(L, -1))
    o->validate = lua_toboolean(L, -1);
  lua_getfield(L, idx, "hard");
  o->hard = lua_toboolean(L, -1);
  lua_getfield(L, idx, "pid");
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0 ||
        lua_tointeger(L, -1) > 0x7fffffff)
      luaL_error(L,
                 "bad option 'pid' to 'set_limit' (a pid: an integer from 1 "
                 "to 2147483647, got %s)",
                 luaL_tolstring(L, -1, NULL));
    o->pid = lua_tointeger(L, -1);
  }
  lua_getfield(L, idx, "resource");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad option 'resource' to 'set_limit' (\"auto\", "
                    "\"data\" or \"as\" expected)");
    o->resource = lua_tostring(L, -1); /* kept alive: stays on the stack */
  }
}

/* Failure: raise when strict, else return false, reason, code. */
static int set_fail(lua_State *L, const set_opts *o, int code,
                    const char *msg) {
  mg_lua_env *env = mg_lua_env_get(L);
  mg_log_field f[] = {MG_LF_STR("error", msg)};
  mg_log(env->logger, MG_LOG_ERROR, "limit_failed", f, 1);
  if (o->strict)
    return luaL_error(L, "%s", msg);
  lua_pushboolean(L, 0);
  lua_pushstring(L, msg);
  lua_pushstring(L, mg_err_name(code));
  return 3;
}

/* mg.set_limit(size [, {strict=true, resource="auto"|"data"|"as", pid=N,
 * hard=false, validate=true}]) → true [, nil, warning] | false, reason
 * (strict raises). validate=false skips the check against effective memory
 * (for limits that count more than resident memory, e.g. RLIMIT_AS of a
 * CUDA process, or any limit of a process built with AddressSanitizer). */
static int l_set_limit(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  set_opts o;
  char msg[1024], warn[512] = "";
  double bytes_d;
  mg_validation v;
  mg_rlimit_resource res;
  luaL_checkany(L, 1);
  read_set_opts(L, 2, &o);

  int rc = limit_value(L, 1, "size", &bytes_d, msg, sizeof msg);
  if (rc < 0)
    return set_fail(L, &o, rc, msg);
  if (mg_lua_pid_allowed(env, (long)o.pid, msg, sizeof msg) < 0)
    return set_fail(L, &o, -EPERM, msg);
  if (o.validate) {
    mg_validate_limit(bytes_d, mg_lua_effective_total(L), &v);
  } else { /* only what any rlimit needs: a positive finite number */
    mg_validate_limit(bytes_d, MG_SIZE_MAX, &v);
    v.warning[0] = '\0';
  }
  if (!v.ok) {
    snprintf(msg, sizeof msg, "Memory limit validation failed: %s", v.message);
    return set_fail(L, &o, MG_ELIMIT, msg);
  }
  if (strcmp(o.resource, "auto") == 0) {
    mg_rlimit_support s;
    mg_rlimit_probe(&s);
    rc = mg_rlimit_preferred(&s, &res, msg, sizeof msg);
    if (rc < 0)
      return set_fail(L, &o, rc, msg);
  } else if (mg_rlimit_from_name(o.resource, &res, msg, sizeof msg) < 0) {
    return luaL_error(L, "bad option 'resource' to 'set_limit' (%s)", msg);
  }

  uint64_t applied = 0;
  uint64_t bytes = (uint64_t)bytes_d;
  rc = mg_rlimit_set((pid_t)o.pid, res, bytes, o.hard, &applied, warn,
                     sizeof warn, msg, sizeof msg);
  if (rc < 0)
    return set_fail(L, &o, rc, msg);

  char a[32], h[32] = "unlimited";
  uint64_t hard = MG_RLIMIT_UNLIMITED;
  mg_rlimit_get((pid_t)o.pid, res, NULL, &hard, NULL, 0);
  if (hard != MG_RLIMIT_UNLIMITED)
    mg_size_format(hard, h, sizeof h);
  mg_log_field f[] = {MG_LF_STR("limit", mg_size_format(applied, a, sizeof a)),
                      MG_LF_UINT("bytes", applied),
                      MG_LF_STR("resource", res == MG_RLIMIT_DATA
                                                ? "RLIMIT_DATA"
                                                : "RLIMIT_AS"),
                      MG_LF_STR("hard", h),
                      MG_LF_INT("pid", o.pid ? o.pid : (lua_Integer)getpid())};
  mg_log(env->logger, MG_LOG_INFO, "limit_set", f, 5);
  /* Both warnings reach the log; the third return value carries them. */
  const char *w1 = v.warning[0] ? v.warning : NULL;
  const char *w2 = warn[0] ? warn : NULL;
  if (w1) {
    mg_log_field wf[] = {MG_LF_STR("warning", w1)};
    mg_log(env->logger, MG_LOG_WARN, "limit_warning", wf, 1);
  }
  if (w2) {
    mg_log_field wf[] = {MG_LF_STR("warning", w2)};
    mg_log(env->logger, MG_LOG_WARN, "limit_clamped", wf, 1);
  }
  lua_pushboolean(L, 1);
  lua_pushnil(L);
  if (w1 && w2)
    lua_pushfstring(L, "%s; %s", w1, w2);
  else if (w1 || w2)
    lua_pushstring(L, w1 ? w1 : w2);
  else
    lua_pushnil(L);
  return 3;
}

/* mg.get_limit(resource [, pid]) → soft, hard (nil = unlimited)
 * | false, reason */
static int l_get_limit(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_Integer pid = luaL_optinteger(L, 2, 0);
  mg_rlimit_resource res;
  char err[256];
  uint64_t soft, hard;
  if (mg_rlimit_from_name(name, &res, err, sizeof err) < 0)
    return luaL_argerror(L, 1, err);
  luaL_argcheck(L, pid >= 0 && pid <= 0x7fffffff, 2,
                "pid must be a positive integer");
  int rc = mg_rlimit_get((pid_t)pid, res, &soft, &hard, err, sizeof err);
  if (rc < 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    lua_pushstring(L, mg_err_name(rc));
    return 3;
  }
  if (soft == MG_RLIMIT_UNLIMITED)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)soft);
  if (hard == MG_RLIMIT_UNLIMITED)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)hard);
  return 2;
}

void mg_lua_open_limits(lua_State *L) {
  static const luaL_Reg fns[] = {{"validate_limit", l_validate_limit},
                                 {"validate_total", l_validate_total},
                                 {"rlimit_support", l_rlimit_support},
                                 {"set_limit", l_set_limit},
                                 {"get_limit", l_get_limit},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
