/* lmg_proc.c — the process object of mg.spawn: its events, fields and
 * methods (bindings layer, on the supervisor). Lifetime: mg__lproc.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lua/mg__lproc.h"

#define PROC_MT MG_LPROC_MT
typedef mg_lproc lproc;

/* Events, by the index their handler lists have in the handlers table
 * (integer keys: dispatch reads them without allocating). */
enum {
  EV_WARN = 1,
  EV_SAMPLE,
  EV_EXIT,
  EV_RESTART,
  EV_THRESHOLD,
  EV_OOM,
  EV_PRESSURE,
  EV_GPU_LIMIT,
  EV_N = EV_GPU_LIMIT
};
static const char *const events[EV_N + 1] = {NULL,   "warn",     "sample",
                                             "exit", "restart",  "threshold",
                                             "oom",  "pressure", "gpu_limit"};
#define EVENTS_ACCEPTED                                                        \
  "warn, sample, exit, restart, threshold, oom, pressure, gpu_limit"

/* ------------------------------------------------------------ the list */

void mg_lproc_link(mg_lua_env *env, lproc *p) {
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

/* A sample as a Lua table: { pid, rss, hwm, vsize, data, anon, file,
 * shmem, swap, used, limit (nil when none), fraction } and, with a
 * cgroup, { cgroup_current, cgroup_peak, cgroup_anon, cgroup_file,
 * cgroup_shmem }. anon/file/shmem are the process's RssAnon/RssFile/
 * RssShmem, as in mg.process; the cgroup_ ones the same three parts of
 * what the group is charged (memory.stat). */
#define CF(name, type, member) MG_LUA_FIELD(name, type, mg_child_sample, member)
static const mg_lua_field sample_fields[] = {
    CF("rss", U64, rss_bytes),       CF("hwm", U64, hwm_bytes),
    CF("vsize", U64, vsize_bytes),   CF("data", U64, data_bytes),
    CF("anon", U64, anon_bytes),     CF("file", U64, file_bytes),
    CF("shmem", U64, shmem_bytes),   CF("swap", U64, swap_bytes),
    CF("used", U64, used_bytes),     CF("limit", U64_NZ, limit_bytes),
    CF("fraction", DOUBLE, fraction)};
static const mg_lua_field sample_gpu_fields[] = {
    CF("gpu", U64, gpu_bytes), CF("gpu_limit", U64_NZ, gpu_limit_bytes)};
static const mg_lua_field sample_cgroup_fields[] = {
    CF("cgroup_current", U64, cgroup_current_bytes),
    CF("cgroup_peak", U64, cgroup_peak_bytes),
    CF("cgroup_anon", U64, cgroup_anon_bytes),
    CF("cgroup_file", U64, cgroup_file_bytes),
    CF("cgroup_shmem", U64, cgroup_shmem_bytes)};

static void push_sample(lua_State *L, const mg_child_sample *s) {
  lua_createtable(L, 0, 18);
  mg_lua_setint(L, "pid", s->pid);
  mg_lua_set_fields(L, s, sample_fields,
                    sizeof sample_fields / sizeof sample_fields[0]);
  if (s->has_gpu)
    mg_lua_set_fields(L, s, sample_gpu_fields,
                      sizeof sample_gpu_fields / sizeof sample_gpu_fields[0]);
  if (s->has_cgroup)
    mg_lua_set_fields(L, s, sample_cgroup_fields,
                      sizeof sample_cgroup_fields /
                          sizeof sample_cgroup_fields[0]);
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
    const char *sn = mg_signal_name(e->signal);
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
  mg_lua_setu64(L, "oom_kills", e->oom_kills);
  lua_pushlstring(L, e->stderr_tail, e->stderr_tail_len);
  lua_setfield(L, -2, "stderr_tail");
}

/* { level, fraction (nil without a limit), usage, rising, kind, id,
 * by_kernel [, anon, file, shmem: the group's memory.stat] } */
static void push_threshold(lua_State *L, const mg_threshold_event *t) {
  lua_createtable(L, 0, 7);
  mg_lua_setu64(L, "level", t->level_bytes);
  if (t->fraction > 0)
    mg_lua_setnum(L, "fraction", t->fraction);
  mg_lua_setu64(L, "usage", t->usage_bytes);
  mg_lua_setbool(L, "rising", t->rising);
  mg_lua_setstr(L, "kind", t->kind);
  mg_lua_setint(L, "id", t->id);
  mg_lua_setbool(L, "by_kernel", t->by_kernel);
  if (t->has_stat) { /* the group's charge, in parts */
    mg_lua_setu64(L, "anon", t->anon_bytes);
    mg_lua_setu64(L, "file", t->file_bytes);
    mg_lua_setu64(L, "shmem", t->shmem_bytes);
  }
}

static void push_psi_line(lua_State *L, const char *k, const mg_psi_line *l) {
  lua_createtable(L, 0, 4);
  mg_lua_setnum(L, "avg10", l->avg10);
  mg_lua_setnum(L, "avg60", l->avg60);
  mg_lua_setnum(L, "avg300", l->avg300);
  mg_lua_setu64(L, "total_us", l->total_us);
  lua_setfield(L, -2, k);
}

/* v1 { level }; v2 { kind, stall_ms, window_ms, some, full } */
static void push_pressure(lua_State *L, const mg_pressure_event *e) {
  lua_createtable(L, 0, 5);
  if (e->level) {
    mg_lua_setstr(L, "level", e->level);
    return;
  }
  mg_lua_setstr(L, "kind", e->full ? "full" : "some");
  mg_lua_setu64(L, "stall_ms", e->stall_us / 1000);
  mg_lua_setu64(L, "window_ms", e->window_us / 1000);
  if (e->has_psi) {
    push_psi_line(L, "some", &e->psi.some);
    if (e->psi.has_full)
      push_psi_line(L, "full", &e->psi.full);
  }
}

/* ------------------------------------------------------------ events */

/* What an event hands its handlers. */
typedef struct ev_call {
  int kind;
  const mg_child_sample *sample;
  const mg_child_exit *exit;
  int restarts;
  const mg_threshold_event *th;
  const mg_oom_event *oom;
  const mg_pressure_event *pr;
} ev_call;

/* Trampoline: (ev_call, handler, p) → handler(p, value); the value's
 * table is built here, inside the protected call (a fresh one for each
 * handler). */
static int ev_tramp(lua_State *L) {
  const ev_call *ec = lua_touserdata(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  if (ec->kind == EV_EXIT)
    push_exit(L, ec->exit);
  else if (ec->kind == EV_GPU_LIMIT)
    push_sample(L, ec->sample);
  else if (ec->kind == EV_RESTART)
    lua_pushinteger(L, ec->restarts);
  else if (ec->kind == EV_THRESHOLD)
    push_threshold(L, ec->th);
  else if (ec->kind == EV_OOM) {
    lua_createtable(L, 0, 3);
    mg_lua_setu64(L, "count", ec->oom->count);
    mg_lua_setu64(L, "total", ec->oom->total);
    if (ec->oom->victim_pid > 0)
      mg_lua_setint(L, "victim_pid", ec->oom->victim_pid);
  } else if (ec->kind == EV_PRESSURE)
    push_pressure(L, ec->pr);
  else
    push_sample(L, ec->sample);
  lua_call(L, 2, 0);
  return 0;
}

/* Call every handler of the event, each in a protected call of its own;
 * stop after one that called mg.exit. Allocates nothing outside those
 * calls and never raises (it runs in a libuv callback). */
static void dispatch(lproc *p, const ev_call *ec) {
  lua_State *L = p->env->L;
  if (p->self_ref == LUA_NOREF || p->self_ref == LUA_REFNIL ||
      !lua_checkstack(L, 8))
    return;
  int top = lua_gettop(L);
  /* a p:watch threshold goes to its own function, at key -id */
  lua_Integer key = ec->kind;
  if (ec->kind == EV_THRESHOLD && ec->th->id > p->nthresholds)
    key = -(lua_Integer)ec->th->id;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->self_ref); /* top+1: userdata */
  if (lua_getiuservalue(L, top + 1, 1) == LUA_TTABLE &&
      lua_rawgeti(L, top + 2, key) == LUA_TTABLE) { /* top+3: list */
    char what[MG_NAME_MAX + 32];
    snprintf(what, sizeof what, "process %s %s", p->name, events[ec->kind]);
    lua_Integer n = (lua_Integer)lua_rawlen(L, top + 3);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_pushcfunction(L, ev_tramp);
      lua_pushlightuserdata(L, (void *)ec);
      lua_rawgeti(L, top + 3, i);
      lua_pushvalue(L, top + 1);
      if (mg_lua_pcall(L, 3, 0, what, NULL) == MG_LUA_EXIT)
        break;
    }
  }
  lua_settop(L, top);
}

static void ev_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  ev_call ec = {.kind = EV_SAMPLE, .sample = s};
  (void)c;
  dispatch(ud, &ec);
}

static void ev_warn(mg_child *c, const mg_child_sample *s, void *ud) {
  ev_call ec = {.kind = EV_WARN, .sample = s};
  (void)c;
  dispatch(ud, &ec);
}

static void ev_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  ev_call ec = {.kind = EV_EXIT, .exit = e};
  (void)c;
  dispatch(ud, &ec);
}

static void ev_restart(mg_child *c, int restarts, void *ud) {
  ev_call ec = {.kind = EV_RESTART, .restarts = restarts};
  (void)c;
  dispatch(ud, &ec);
}

static void ev_threshold(mg_child *c, const mg_threshold_event *t, void *ud) {
  ev_call ec = {.kind = EV_THRESHOLD, .th = t};
  (void)c;
  dispatch(ud, &ec);
}

static void ev_oom(mg_child *c, const mg_oom_event *o, void *ud) {
  ev_call ec = {.kind = EV_OOM, .oom = o};
  (void)c;
  dispatch(ud, &ec);
}

/* The policy handles a crossed gpu_limit itself when it has a handler. */
static int ev_gpu_limit(mg_child *c, const mg_child_sample *s, void *ud) {
  lproc *p = ud;
  lua_State *L = p->env->L;
  (void)c;
  if (p->self_ref == LUA_NOREF || !lua_checkstack(L, 4))
    return 0;
  int top = lua_gettop(L), has = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->self_ref);
  if (lua_getiuservalue(L, -1, 1) == LUA_TTABLE &&
      lua_rawgeti(L, -1, EV_GPU_LIMIT) == LUA_TTABLE)
    has = lua_rawlen(L, -1) > 0;
  lua_settop(L, top);
  if (!has)
    return 0;
  ev_call ec = {.kind = EV_GPU_LIMIT, .sample = s};
  dispatch(p, &ec);
  return 1;
}

static void ev_pressure(mg_child *c, const mg_pressure_event *e, void *ud) {
  ev_call ec = {.kind = EV_PRESSURE, .pr = e};
  (void)c;
  dispatch(ud, &ec);
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

void mg_lproc_events(lproc *p, mg_child_events *ev) {
  mg_child_events e = {.on_sample = ev_sample,
                       .on_warn = ev_warn,
                       .on_exit = ev_exit,
                       .on_restart = ev_restart,
                       .on_close = ev_close,
                       .on_threshold = ev_threshold,
                       .on_oom = ev_oom,
                       .on_pressure = ev_pressure,
                       .on_gpu_limit = ev_gpu_limit,
                       .ud = p};
  *ev = e;
}

lproc *mg_lproc_new(lua_State *L) {
  lproc *p = lua_newuserdatauv(L, sizeof *p, 1);
  memset(p, 0, sizeof *p);
  p->env = mg_lua_env_get(L);
  p->self_ref = LUA_NOREF;
  p->closed = 1;
  luaL_setmetatable(L, PROC_MT);
  lua_createtable(L, EV_N, 0); /* handler lists by event */
  lua_setiuservalue(L, -2, 1);
  return p;
}

/* ------------------------------------------------------------ methods */

static lproc *check_proc(lua_State *L, const char *method) {
  return mg_lua_check_self(L, PROC_MT, method);
}

lproc *mg_lproc_check(lua_State *L, const char *method) {
  return check_proc(L, method);
}

/* nil, err, code for a process that was never started or is released. */
int mg_lproc_not_started(lua_State *L, const lproc *p) {
  return mg_lua_fail(
      L, -ESRCH, p->env->check_only ? "not started (--check)" : "not started");
}

#define not_started mg_lproc_not_started
#define errno_fail mg_lproc_errno_fail
#define check_signal mg_lproc_check_signal

int mg_lproc_errno_fail(lua_State *L, const lproc *p, int rc,
                        const char *what) {
  if (rc == -ESRCH)
    return mg_lua_failf(L, rc, "%s: process '%s' is not running", what,
                        p->name);
  return mg_lua_failf(L, rc, "%s: %s", what, mg_strerror(rc));
}

/* p:memory() → { pid, name, rss, hwm, vsize, data, anon, file, shmem,
 * swap, used, limit, fraction [, cgroup_current, cgroup_peak,
 * cgroup_anon, cgroup_file, cgroup_shmem] } | nil, err (not running).
 * It is mg.process(p.pid)'s table and more: the sample already holds
 * every size mg.process gives, with the same meaning (/proc/PID/status),
 * so only the name is added, and all the sizes come from one read. */
static int l_memory(lua_State *L) {
  lproc *p = check_proc(L, "memory");
  if (p->child == NULL)
    return not_started(L, p);
  mg_child_sample s;
  char err[512];
  int rc = mg_child_memory(p->child, &s, err, sizeof err);
  if (rc == -ESRCH)
    return errno_fail(L, p, rc, "memory");
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  push_sample(L, &s);
  mg_proc_status st; /* the name: the one field of mg.process not in s */
  if (mg_proc_status_read(p->env->paths.proc_root, s.pid, &st, NULL, 0) == 0)
    mg_lua_setstr(L, "name", st.name);
  return 1;
}

/* p:on(event, fn) → p. Events: warn, sample, exit, restart, threshold
 * (the spawn's thresholds; p:watch's go to their own function), oom,
 * pressure; handlers of one event run in the order they were added. */
static int l_on(lua_State *L) {
  check_proc(L, "on");
  const char *name = mg_lua_check_text(L, 2, NULL, NULL);
  int ev = 1;
  while (ev <= EV_N && strcmp(events[ev], name) != 0)
    ev++;
  if (ev > EV_N)
    return luaL_argerror(
        L, 2,
        lua_pushfstring(L, "unknown event '%s' (accepted: " EVENTS_ACCEPTED ")",
                        name));
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_getiuservalue(L, 1, 1);
  if (lua_rawgeti(L, -1, ev) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ev);
  }
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_settop(L, 1);
  return 1;
}

/* A signal argument: "TERM", "SIGTERM" or a number 1..64. Raises
 * otherwise. */
int mg_lproc_check_signal(lua_State *L, int idx) {
  int sig = 0;
  char err[512];
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n > 0 && n < 65, idx, "signal number must be 1..64");
    return (int)n;
  }
  const char *s = mg_lua_check_text(L, idx, NULL, NULL);
  if (s[0] >= '0' && s[0] <= '9') /* a number as text is not a name */
    s = "";
  if (mg_signal_parse(s, &sig, err, sizeof err) < 0)
    return luaL_argerror(
        L, idx,
        lua_pushfstring(L, "unknown signal '%s' (accepted: %s)",
                        lua_tostring(L, idx), MG_SIGNAL_ACCEPTED));
  return sig;
}

/* p:signal(sig) → true | nil, err. To the child's process group; the
 * restart policy applies if it dies of it. */
static int l_signal(lua_State *L) {
  lproc *p = check_proc(L, "signal");
  int sig = check_signal(L, 2);
  if (p->child == NULL)
    return not_started(L, p);
  int rc = mg_child_signal(p->child, sig);
  if (rc < 0)
    return errno_fail(L, p, rc, "signal");
  lua_pushboolean(L, 1);
  return 1;
}

/* p:stop([grace_ms]) → true | nil, err. For good: SIGTERM, then SIGKILL
 * of the group (and cgroup) after grace_ms (default: the spawn's
 * grace_ms; 0: at once). Stopping a stopped process is a no-op. */
static int l_stop(lua_State *L) {
  lproc *p = check_proc(L, "stop");
  uint64_t grace = 0;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer g = luaL_checkinteger(L, 2);
    luaL_argcheck(L, g >= 0 && g <= MG_SUP_GRACE_MS_MAX, 2,
                  "grace_ms must be 0..3600000");
    grace = g == 0 ? 1 : (uint64_t)g; /* 0 for mg_child_stop: the default */
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
  lproc *p = check_proc(L, "set_limit");
  uint64_t bytes;
  char err[512];
  luaL_checkany(L, 2);
  int src = mg_lua_check_size(L, 2, "size", &bytes, err, sizeof err);
  if (src < 0)
    return mg_lua_fail(L, src, err);
  if (p->child == NULL)
    return not_started(L, p);
  int rc = mg_child_set_limit(p->child, bytes, err, sizeof err);
  if (rc < 0)
    return mg_lua_fail(L, rc, err);
  p->limit_bytes = bytes;
  lua_pushboolean(L, 1);
  return 1;
}

/* Fields: name, pid (nil when not running), restarts, limit (nil when
 * none), enforce, started, running, closed, cgroup; then the methods. */
static int l_index(lua_State *L) {
  lproc *p = check_proc(L, "__index");
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
  check_proc(L, "__newindex");
  return luaL_error(L, "process fields are read-only (got '%s')",
                    luaL_tolstring(L, 2, NULL));
}

static int l_tostring(lua_State *L) {
  lproc *p = check_proc(L, "__tostring");
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
  lproc *p = check_proc(L, "__gc");
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

void mg_lproc_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", l_index},
                                  {"__newindex", l_newindex},
                                  {"__tostring", l_tostring},
                                  {"__gc", l_gc},
                                  {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"memory", l_memory},       {"on", l_on},
      {"signal", l_signal},       {"stop", l_stop},
      {"set_limit", l_set_limit}, {NULL, NULL}};
  luaL_newmetatable(L, PROC_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  mg_lproc_act_open(L);
  lua_setfield(L, -2, "methods");
  lua_pushliteral(L, PROC_MT); /* getmetatable(p) gives the name */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
