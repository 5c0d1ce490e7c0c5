/* lmg_probe.c — mg.memory, mg.pressure, mg.process, mg.probe (bindings
 * layer). Reads only what is asked for; the cgroup position of this
 * process is detected once and cached. */
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg__lua.h"
#include "mg/mg_gpu.h"
#include "mg/mg_sup.h"

static const mg_cgroup_info *cgroup_info(mg_lua_env *env) {
  if (!env->cg_cached) {
    if (mg_cgroup_detect(&env->paths, &env->cg, NULL, 0) < 0)
      memset(&env->cg, 0, sizeof env->cg);
    env->cg_cached = 1;
  }
  return &env->cg;
}

uint64_t mg_lua_effective_total(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  mg_meminfo mi;
  mg_effmem eff;
  if (mg_meminfo_read(env->paths.proc_root, &mi, NULL, 0) < 0)
    return 0;
  if (mg_effective_memory(&env->paths, &mi, cgroup_info(env), &eff, NULL, 0) <
      0)
    return mi.total_bytes;
  return eff.total_bytes;
}

#define MF(name, member) MG_LUA_FIELD(name, U64, mg_meminfo, member)
static const mg_lua_field meminfo_fields[] = {
    MF("total", total_bytes),        MF("available", available_bytes),
    MF("free", free_bytes),          MF("buffers", buffers_bytes),
    MF("cached", cached_bytes),      MF("swap_total", swap_total_bytes),
    MF("swap_free", swap_free_bytes)};

#define PF(name, member) MG_LUA_FIELD(name, U64, mg_proc_status, member)
static const mg_lua_field status_fields[] = {
    PF("rss", rss_bytes),     PF("hwm", hwm_bytes),   PF("vsize", vsize_bytes),
    PF("data", data_bytes),   PF("anon", anon_bytes), PF("file", file_bytes),
    PF("shmem", shmem_bytes), PF("swap", swap_bytes)};

void mg_lua_set_proc_status(lua_State *L, const mg_proc_status *st) {
  mg_lua_setstr(L, "name", st->name);
  mg_lua_set_fields(L, st, status_fields,
                    sizeof status_fields / sizeof status_fields[0]);
}

/* mg.memory() → { total, available, free, buffers, cached, swap_total,
 * swap_free, cgroup_limit (or nil), effective_total, effective_available,
 * effective_source } | nil, err */
static int l_memory(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  mg_meminfo mi;
  mg_effmem eff;
  char err[512];
  int rc = mg_meminfo_read(env->paths.proc_root, &mi, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  const mg_cgroup_info *cg = cgroup_info(env);
  rc = mg_effective_memory(&env->paths, &mi, cg, &eff, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_createtable(L, 0, 12);
  mg_lua_set_fields(L, &mi, meminfo_fields,
                    sizeof meminfo_fields / sizeof meminfo_fields[0]);
  if (cg->has_limit)
    mg_lua_setu64(L, "cgroup_limit", cg->limit_bytes);
  mg_lua_setu64(L, "effective_total", eff.total_bytes);
  mg_lua_setu64(L, "effective_available", eff.available_bytes);
  mg_lua_setstr(L, "effective_source", eff.source);
  return 1;
}

static void push_psi_line(lua_State *L, const char *name,
                          const mg_psi_line *p) {
  lua_createtable(L, 0, 4);
  mg_lua_setnum(L, "avg10", p->avg10);
  mg_lua_setnum(L, "avg60", p->avg60);
  mg_lua_setnum(L, "avg300", p->avg300);
  mg_lua_setu64(L, "total", p->total_us);
  lua_setfield(L, -2, name);
}

/* mg.pressure() → { some = {avg10, avg60, avg300, total}, full = {...} }
 * | nil, reason (no PSI on this kernel). total is in microseconds. */
static int l_pressure(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  mg_psi psi;
  char err[512];
  int rc = mg_psi_read(env->paths.proc_root, &psi, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_createtable(L, 0, 2);
  push_psi_line(L, "some", &psi.some);
  if (psi.has_full)
    push_psi_line(L, "full", &psi.full);
  return 1;
}

/* mg.process([pid [, {pss=true}]]) → { pid, name, rss, hwm, vsize, data,
 * anon, file, shmem, swap [, pss] } | nil, reason. No pid = this process. */
static int l_process(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  lua_Integer pid = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, pid >= 0 && pid <= 0x7fffffff, 1,
                "pid must be a positive integer");
  int want_pss = 0;
  if (!lua_isnoneornil(L, 2)) {
    static const char *const accepted[] = {"pss", NULL};
    luaL_checktype(L, 2, LUA_TTABLE);
    mg_lua_check_options(L, 2, "process", accepted);
    lua_getfield(L, 2, "pss");
    want_pss = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (pid == 0)
    pid = getpid();
  mg_proc_status st;
  char err[512];
  int rc = mg_proc_status_read(env->paths.proc_root, (pid_t)pid, &st, err,
                               sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_createtable(L, 0, 12);
  mg_lua_setint(L, "pid", st.pid ? st.pid : pid);
  mg_lua_set_proc_status(L, &st);
  if (want_pss) {
    uint64_t pss;
    rc = mg_proc_pss_read(env->paths.proc_root, (pid_t)pid, &pss, err,
                          sizeof err);
    if (rc < 0)
      return mg_lua_fail(L, rc, err);
    mg_lua_setu64(L, "pss", pss);
  }
  return 1;
}

/* mg.gpus() → { { index, uuid, name, total, used, free, integrated }, … }
 * | nil, reason, code (ENOTSUP: no NVML; ENODEV: no GPU; EIO: NVML
 * failed). The supervisor's NVML session (opened at the first call). */
static int l_gpus(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (!env->sup)
    return mg_lua_fail(L, MG_ENOTSUP, "this runtime has no supervisor");
  mg_gpu *g;
  char err[1024];
  unsigned n = 0;
  int rc = mg_sup_gpu(env->sup, &g, err, sizeof err);
  if (rc == 0)
    rc = mg_gpu_count(g, &n, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  lua_createtable(L, (int)n, 0);
  for (unsigned i = 0; i < n; i++) {
    mg_gpu_device d;
    if ((rc = mg_gpu_device_info(g, i, &d, err, sizeof err)) < 0)
      return mg_lua_fail(L, rc, err);
    lua_createtable(L, 0, 7);
    mg_lua_setint(L, "index", i);
    mg_lua_setstr(L, "uuid", d.uuid);
    mg_lua_setstr(L, "name", d.name);
    mg_lua_setu64(L, "total", d.total_bytes);
    mg_lua_setu64(L, "used", d.used_bytes);
    mg_lua_setu64(L, "free", d.free_bytes);
    mg_lua_setbool(L, "integrated", d.integrated);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* mg.probe() → the table `mgrun --probe --json` prints. */
static int l_probe(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  mg_probe_opts opts = {0};
  void *doc = NULL;
  char err[512];
  opts.paths = env->paths;
  opts.cgroup_parent = env->cgroup_parent;
  int rc = mg_probe_json(&opts, &doc, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  mg_lua_push_json(L, doc);
  json_decref(doc);
  return 1;
}

/* mg.pid → this process's pid (mg.process() without argument reads it). */
void mg_lua_open_probe(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"memory", l_memory}, {"pressure", l_pressure}, {"process", l_process},
      {"probe", l_probe},   {"gpus", l_gpus},         {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushinteger(L, getpid());
  lua_setfield(L, -2, "pid");
}
