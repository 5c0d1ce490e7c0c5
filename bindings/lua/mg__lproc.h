/* mg__lproc.h — what mg.spawn (lmg_spawn.c) and the process object
 * (lmg_proc.c) share (bindings layer, on the supervisor).
 *
 * Lifetime. The process userdata holds the binding's state itself (an
 * lproc): the supervisor calls back into it only until on_close, or until
 * mg_child_release() — whichever comes first — so nothing outlives the
 * userdata. While a child is running or waiting for a restart, the lproc
 * keeps a registry reference to its own userdata (self_ref), so a policy
 * that drops every reference to `p` still gets its events; on_close drops
 * that reference, and __gc releases the mg_child. The supervisor belongs
 * to the runtime host, which lends it to the bindings.
 */
#ifndef MG__LPROC_H
#define MG__LPROC_H

#include "lua/mg__lua.h"
#include "mg/mg_sup.h"

#define MG_LPROC_MT "mg.process"

typedef struct mg_lua_proc mg_lproc;
struct mg_lua_proc {
  mg_lua_env *env;
  mg_child *child;       /* NULL: never started (--check) or released */
  mg_lproc *prev, *next; /* env->procs, spawn order, while not closed */
  int self_ref;          /* registry ref of the userdata while not closed */
  int started;
  int closed;         /* on_close ran (or never started) */
  int linked;         /* in env->procs */
  mg_enforce enforce; /* resolved, for an unstarted (--check) process */
  uint64_t limit_bytes;
  int nthresholds; /* the spawn's: ids 1..n; higher ids are p:watch's */
  char name[MG_NAME_MAX + 8];
};

/* A threshold level at stack index idx: "80%" (a fraction of the
 * child's limit, above 0 and up to 100 %), or a size (bytes, "1.5G").
 * EPARSE / ERANGE_SIZE with err naming `what`; a wrong type raises. */
int mg_lua_check_level(lua_State *L, int idx, const char *what,
                       mg_threshold *out, char *err, size_t len);
/* A threshold at stack index idx: a level (mg_lua_check_level), or a
 * table { level, swap = true|false } ([1] or level =; swap: memory +
 * swap). Unknown keys, two levels or none: EINVAL naming `what`. */
int mg_lua_check_threshold(lua_State *L, int idx, const char *what,
                           mg_threshold *out, char *err, size_t len);

/* For the methods in lmg_proc_act.c: the receiver (raises otherwise);
 * nil, err, code for a process never started; for an errno of the
 * supervisor; a signal argument ("TERM", "SIGKILL", 9). */
mg_lproc *mg_lproc_check(lua_State *L, const char *method);
int mg_lproc_not_started(lua_State *L, const mg_lproc *p);
int mg_lproc_errno_fail(lua_State *L, const mg_lproc *p, int rc,
                        const char *what);
int mg_lproc_check_signal(lua_State *L, int idx);
/* Methods of lmg_proc_act.c (kill, throttle, unthrottle, freeze, thaw,
 * watch, pressure) into the methods table at the top; the watch handle's
 * metatable. */
void mg_lproc_act_open(lua_State *L);

/* A new process userdata (closed, unstarted) at the top of the stack. */
mg_lproc *mg_lproc_new(lua_State *L);
/* The supervisor's callbacks for `p` (every event goes through
 * mg_lua_pcall, with the event's table built inside the call). */
void mg_lproc_events(mg_lproc *p, mg_child_events *ev);
/* Append to env->procs (spawn order). */
void mg_lproc_link(mg_lua_env *env, mg_lproc *p);
/* The process metatable and its methods. */
void mg_lproc_open(lua_State *L);

#endif
