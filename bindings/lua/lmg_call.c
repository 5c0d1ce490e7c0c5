/* lmg_call.c — the protected call: the one way C calls into Lua, with the
 * capped allocator and the budget hook it relies on (bindings layer).
 *
 * Budgets. Each protected call keeps its budget in an mg_lua_call on its
 * own C stack frame, linked to the call it is nested in (env->call is the
 * innermost). The count hook charges instructions to the innermost call
 * only; when a nested call ends, the wall-clock time it took is added to
 * its caller's deadline, so nothing a nested call uses is charged to its
 * caller. A spent budget makes the hook raise on every instruction of that
 * call, so a pcall inside the policy cannot swallow it; when the call
 * ends, its caller goes on under its own budget.
 *
 * Memory. The cap applies while Lua code runs (env->mem_capped); the
 * message handler lifts it so the traceback can be built, and the C glue
 * between calls runs without it, so only a protected call ever sees an
 * allocation fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua/mg__lua.h"

/* Instructions between two runs of the budget hook. */
#define MG__HOOK_EVERY 1000

static const char mg__exit_key = 0; /* its address is the mg.exit sentinel */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ allocator */

/* In an attached state the allocations go on to the allocator the state
 * had (base_alloc); in a state of mg_lua_new, to realloc and free. */
void *mg__lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  mg_lua_env *env = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    if (env->base_alloc)
      env->base_alloc(env->base_ud, ptr, osize, 0);
    else
      free(ptr);
    env->mem_used -= old < env->mem_used ? old : env->mem_used;
    return NULL;
  }
  if (nsize > old && env->mem_capped && env->mem_max &&
      env->mem_used + (nsize - old) > env->mem_max)
    return NULL;
  void *p = env->base_alloc ? env->base_alloc(env->base_ud, ptr, osize, nsize)
                            : realloc(ptr, nsize);
  if (p == NULL)
    return NULL;
  env->mem_used =
      env->mem_used - (old < env->mem_used ? old : env->mem_used) + nsize;
  if (env->mem_used > env->mem_peak)
    env->mem_peak = env->mem_used;
  return p;
}

/* The options that set the budgets: mgrun's command line, or the fields
 * of mg.configure in a state the bindings attached to (mg.so). */
const char *mg__lua_budget_option(const mg_lua_env *env, int which) {
  switch (which) {
  case 'i':
    return env->attached ? "mg.configure cb_instructions" : "--cb-instructions";
  case 't':
    return env->attached ? "mg.configure cb_timeout_ms" : "--cb-timeout";
  case 's':
    return env->attached ? "no budget outside callbacks" : "--setup-timeout";
  default:
    return env->attached ? "mg.configure lua_mem" : "--lua-mem";
  }
}

/* ------------------------------------------------------------ hook */

static void hook_every(lua_State *L, int n);

/* Count hook, installed on the main thread and inherited by every
 * coroutine created after it. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  mg_lua_env *env = mg_lua_env_find(L);
  (void)ar;
  if (env == NULL) { /* the bindings left this (attached) state */
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  mg_lua_call *c = env->call;
  if (env->poll && !env->interrupted) {
    uint64_t t = now_ns();
    if (t >= env->poll_next_ns) {
      env->poll_next_ns = t + env->poll_every_ns;
      if (env->poll(env->poll_ud))
        env->interrupted = 1;
    }
  }
  if (env->interrupted) { /* sticky until the top level ends */
    hook_every(L, 1);
    luaL_error(L, "interrupted");
  }
  if (c == NULL) { /* Lua outside a protected call: not ours to limit */
    hook_every(L, MG__HOOK_EVERY);
    return;
  }
  if (!c->over) {
    mg_lua_call *r = c->root;
    uint64_t n = (uint64_t)lua_gethookcount(L);
    uint64_t t = c->deadline_ns || r->chain_deadline_ns ? now_ns() : 0;
    c->insn_used += n;
    r->chain_insn_used += n;
    if (c->insn_budget && c->insn_used > c->insn_budget) {
      c->over = 1;
      c->over_kind = 'i';
      snprintf(c->why, sizeof c->why,
               "%s exceeded its instruction budget of %llu (%s)", c->what,
               (unsigned long long)c->insn_budget,
               mg__lua_budget_option(env, 'i'));
    } else if (c->deadline_ns && t > c->deadline_ns) {
      c->over = 1;
      c->over_kind = 't';
      snprintf(c->why, sizeof c->why,
               "%s exceeded its time budget of %llu ms (%s)", c->what,
               (unsigned long long)c->budget_ms,
               mg__lua_budget_option(env, c->top ? 's' : 't'));
    } else if ((r->chain_deadline_ns && t > r->chain_deadline_ns) ||
               (r->chain_insn_budget &&
                r->chain_insn_used > r->chain_insn_budget)) {
      c->over = r->over = 1; /* the whole chain unwinds */
      c->over_kind = r->over_kind =
          r->chain_deadline_ns && t > r->chain_deadline_ns ? 't' : 'i';
      snprintf(c->why, sizeof c->why,
               "%s and the calls nested in it exceeded %d times its budget "
               "in all (%s)",
               r->what, MG_LUA_CHAIN_FACTOR,
               mg__lua_budget_option(env, r->chain_deadline_ns &&
                                                  t > r->chain_deadline_ns
                                              ? (r->top ? 's' : 't')
                                              : 'i'));
      snprintf(r->why, sizeof r->why, "%s", c->why);
    }
    if (!c->over) {
      hook_every(L, MG__HOOK_EVERY); /* after call_end's single step */
      return;
    }
  }
  hook_every(L, 1);
  luaL_error(L, "%s", c->why);
}

static void hook_every(lua_State *L, int n) {
  if (lua_gethook(L) != budget_hook || lua_gethookcount(L) != n)
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, n);
}

void mg__lua_install_hook(lua_State *L) {
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, MG__HOOK_EVERY);
}

void mg__lua_remove_hook(lua_State *L) {
  if (lua_gethook(L) == budget_hook)
    lua_sethook(L, NULL, 0, 0);
}

/* ------------------------------------------------------------ calls */

/* Message handler: the message with a traceback; passes mg.exit's
 * sentinel through. Lifts the memory cap so the traceback can be built. */
static int msgh(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (mg_lua_is_exit(L, 1))
    return 1;
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) { /* policy code (__tostring): still under the cap */
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  int capped = env->mem_capped;
  env->mem_capped = 0; /* the traceback only: to-be-closed variables closed
                          while the error unwinds run under the cap again */
  luaL_traceback(L, L, msg, 1);
  env->mem_capped = capped;
  return 1;
}

static void call_begin(mg_lua_env *env, lua_State *L, mg_lua_call *c,
                       const char *what, int top, uint64_t timeout_ms,
                       uint64_t insns) {
  /* every field but `why` (written only when the call is stopped) */
  c->over = 0;
  c->over_kind = 0;
  c->insn_used = 0;
  c->chain_deadline_ns = c->chain_insn_budget = c->chain_insn_used = 0;
  c->why[0] = '\0';
  c->outer = env->call;
  c->what = what;
  c->top = top;
  c->start_ns = now_ns();
  c->budget_ms = timeout_ms;
  c->deadline_ns = timeout_ms ? c->start_ns + timeout_ms * 1000000u : 0;
  c->insn_budget = insns;
  c->capped = env->mem_capped;
  c->root = c->outer ? c->outer->root : c;
  if (c->root == c) {
    c->chain_deadline_ns =
        timeout_ms ? c->start_ns + timeout_ms * 1000000u * MG_LUA_CHAIN_FACTOR
                   : 0;
    c->chain_insn_budget = insns * MG_LUA_CHAIN_FACTOR;
  }
  env->call = c;
  env->mem_capped = 1;
  hook_every(L, MG__HOOK_EVERY); /* a fresh count; not "spent" any more */
}

static void call_end(mg_lua_env *env, lua_State *L, mg_lua_call *c) {
  mg_lua_call *o = c->outer;
  env->call = o;
  env->mem_capped = c->capped;
  if (o && o->deadline_ns) /* the nested call's time is not the caller's */
    o->deadline_ns += now_ns() - c->start_ns;
  /* The caller's next instruction runs the hook: its own budget, the
   * chain's and an interrupt are checked at once, however few
   * instructions it runs between two nested calls. */
  hook_every(L, 1);
}

/* The error at the top of the stack as text (st: the lua_pcall status). */
static const char *error_text(mg_lua_env *env, lua_State *L, int st, char *buf,
                              size_t len) {
  if (st == LUA_ERRMEM) {
    char cap[32];
    snprintf(buf, len,
             "not enough memory: the Lua state reached its memory cap of %s "
             "(%s)",
             mg_size_format(env->mem_max, cap, sizeof cap),
             mg__lua_budget_option(env, 'm'));
    return buf;
  }
  const char *msg = lua_tostring(L, -1);
  if (st == LUA_ERRERR)
    snprintf(buf, len, "error in the error handler: %s", msg ? msg : "?");
  else
    snprintf(buf, len, "%s", msg ? msg : "(no message)");
  return buf;
}

/* A full collection with the cap in force: finalizers (policy code) it
 * runs cannot allocate past it (their errors become warnings). */
static void capped_collect(mg_lua_env *env, lua_State *L) {
  int capped = env->mem_capped;
  env->mem_capped = 1;
  lua_gc(L, LUA_GCCOLLECT);
  env->mem_capped = capped;
}

/* lua_pcall under a fresh mg_lua_call; the error (with traceback) is left
 * on the stack. */
static int protected_call(mg_lua_env *env, lua_State *L, int nargs,
                          int nresults, const char *what, int top,
                          uint64_t timeout_ms, uint64_t insns, int *over,
                          char *over_kind) {
  int base = lua_gettop(L) - nargs;
  mg_lua_call c;
  /* Near the cap: collect first. The auxiliary library's buffers allocate
   * through the allocator directly, without Lua's emergency collection, so
   * garbage must not be left standing at the cap. */
  if (env->mem_max && env->mem_used > env->mem_max / 4 * 3)
    capped_collect(env, L);
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  call_begin(env, L, &c, what, top, timeout_ms, insns);
  int st = lua_pcall(L, nargs, nresults, base);
  *over = c.over || env->interrupted;
  *over_kind = c.over ? c.over_kind : 0;
  call_end(env, L, &c);
  lua_remove(L, base);
  if (st == LUA_ERRMEM)
    capped_collect(env, L); /* what the failed call built is garbage now */
  return st;
}

static void notify_exit(mg_lua_env *env) {
  if (env->exit_requested && !env->exit_notified) {
    env->exit_notified = 1;
    if (env->on_exit)
      env->on_exit(env->ud, env->exit_code);
  }
}

int mg_lua_pcall(lua_State *L, int nargs, int nresults, const char *what,
                 mg_lua_failure *fail) {
  mg_lua_env *env = mg_lua_env_get(L);
  int over = 0;
  char kind = 0;
  env->cb_calls++;
  if (fail) {
    fail->budget = 0;
    fail->message[0] = '\0';
  }
  if (!lua_checkstack(L, 4)) {
    lua_pop(L, nargs + 1);
    if (fail)
      snprintf(fail->message, sizeof fail->message,
               "%s could not be called: the Lua stack is full", what);
    return MG_LUA_ERROR;
  }
  int st =
      protected_call(env, L, nargs, nresults, what, 0, env->budget.timeout_ms,
                     env->budget.instructions, &over, &kind);
  if (st == LUA_OK) {
    if (env->exit_requested && env->call == NULL) {
      notify_exit(env);
      return MG_LUA_EXIT;
    }
    return env->exit_requested ? MG_LUA_EXIT : MG_LUA_OK;
  }
  if (mg_lua_is_exit(L, -1) || (env->exit_requested && st != LUA_ERRMEM)) {
    lua_pop(L, 1);
    if (fail)
      snprintf(fail->message, sizeof fail->message, "mg.exit() was called");
    if (env->call == NULL)
      notify_exit(env);
    return MG_LUA_EXIT;
  }
  char buf[8192];
  error_text(env, L, st, buf, sizeof buf);
  lua_pop(L, 1);
  env->callback_errors++;
  if (st == LUA_ERRMEM)
    env->cb_stopped_mem++;
  else if (kind == 'i')
    env->cb_stopped_insns++;
  else if (kind == 't')
    env->cb_stopped_time++;
  mg_log_field f[] = {MG_LF_STR("callback", what), MG_LF_STR("error", buf)};
  mg_log(env->logger, MG_LOG_ERROR, "callback_failed", f, 2);
  if (fail) {
    const char *tb = strstr(buf, "\nstack traceback:");
    int n = tb ? (int)(tb - buf) : (int)strlen(buf);
    snprintf(fail->message, sizeof fail->message, "%.*s", n, buf);
    fail->budget = over || st == LUA_ERRMEM;
  }
  if (env->exit_requested && env->call == NULL)
    notify_exit(env);
  return MG_LUA_ERROR;
}

int mg_lua_run_top(mg_lua_env *env, int nargs, uint64_t timeout_ms,
                   int (*poll)(void *ud), void *poll_ud, uint64_t poll_ms,
                   char *err, size_t err_len) {
  lua_State *L = env->L;
  int over = 0;
  char kind = 0;
  env->interrupted = 0;
  env->poll = poll;
  env->poll_ud = poll_ud;
  env->poll_every_ns = (poll_ms ? poll_ms : 1) * 1000000u;
  env->poll_next_ns = now_ns() + env->poll_every_ns;
  int st = protected_call(env, L, nargs, 0, "the policy's top level", 1,
                          timeout_ms, 0, &over, &kind);
  env->poll = NULL;
  env->interrupted = 0; /* not for a later callback */
  if (st == LUA_OK)
    return env->exit_requested ? MG_LUA_EXIT : MG_LUA_OK;
  if (mg_lua_is_exit(L, -1) || (env->exit_requested && st != LUA_ERRMEM)) {
    lua_pop(L, 1); /* mg.exit was called (an error on the way out is not a
                      load error), as in a callback */
    return MG_LUA_EXIT;
  }
  error_text(env, L, st, err, err_len);
  lua_pop(L, 1);
  return MG_LUA_ERROR;
}

int mg_lua_raise_exit(lua_State *L) {
  mg_lua_env *env = mg_lua_env_get(L);
  if (env->call == NULL && env->exit_unwind && env->exit_requested) {
    /* The program's own code (an attached state): no call of ours would
     * catch the sentinel. The host hears of the exit now, and may end
     * the process here. */
    notify_exit(env);
    env->exit_unwind(env->ud, env->exit_code);
  }
  lua_pushlightuserdata(L, (void *)&mg__exit_key);
  return lua_error(L);
}

int mg_lua_is_exit(lua_State *L, int idx) {
  return lua_islightuserdata(L, idx) &&
         lua_touserdata(L, idx) == (void *)&mg__exit_key;
}
