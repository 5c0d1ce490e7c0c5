/* test_host_multi.c — several runtimes in one process: created and freed
 * in any order (a sandboxed require in one after another was freed read
 * freed memory once), and several running at once, one per thread. Runs
 * plain, under ASan + UBSan, and under TSan (build.sh test). */
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_runtime.h"
#include "mg_test.h"

static mg_runtime *make(int sandbox) {
  mg_runtime_opts o;
  mg_runtime *rt = NULL;
  char err[512];
  mg_runtime_opts_init(&o);
  o.sandbox = sandbox;
  if (mg_runtime_new(&o, &rt, err, sizeof err) < 0) {
    fprintf(stderr, "mg_runtime_new: %s\n", err);
    return NULL;
  }
  return rt;
}

/* Load `code` in rt and return the global `result` as an integer. */
static long long run_code(mg_runtime *rt, const char *code) {
  char err[1024];
  if (mg_runtime_load_string(rt, code, "=multi", err, sizeof err) < 0) {
    fprintf(stderr, "load: %s\n", err);
    return -1;
  }
  lua_State *L = mg_runtime_lua(rt);
  lua_getglobal(L, "result");
  long long v = lua_isinteger(L, -1) ? (long long)lua_tointeger(L, -1) : -2;
  lua_pop(L, 1);
  return v;
}

static const char require_code[] =
    "local s = require('mg.strategies')\n"
    "result = type(s.builtin) == 'table' and 1 or 0\n";

TEST(sandboxed_require_after_another_runtime_is_freed) {
  mg_runtime *a = make(1), *b = make(1);
  ASSERT(a && b);
  mg_runtime_free(b); /* the one created last goes first… */
  ASSERT_EQ(run_code(a, require_code), 1); /* …and a's require is its own */
  b = make(1);
  ASSERT(b != NULL);
  ASSERT_EQ(run_code(a, require_code), 1);
  mg_runtime_free(a);
  ASSERT_EQ(run_code(b, require_code), 1);
  mg_runtime_free(b);
}

TEST(created_and_freed_in_any_order) {
  mg_runtime *rt[4];
  for (int i = 0; i < 4; i++)
    ASSERT((rt[i] = make(i % 2)) != NULL);
  ASSERT_EQ(run_code(rt[2], require_code), 1);
  mg_runtime_free(rt[2]);
  ASSERT_EQ(run_code(rt[0], require_code), 1);
  mg_runtime_free(rt[0]);
  ASSERT_EQ(run_code(rt[3], require_code), 1);
  ASSERT_EQ(run_code(rt[1], require_code), 1);
  mg_runtime_free(rt[3]);
  mg_runtime_free(rt[1]);
}

/* A policy with timers, a store with a Lua strategy and a callback that
 * blows its budget: enough to exercise every part of the runtime. */
static const char busy_code[] =
    "local ctx = assert(mg.store { name = 'ctx', max_messages = 20,\n"
    "  on_full = 'prune', strategy = function(view, need)\n"
    "    local ids = {}\n"
    "    for i = 1, need.count do ids[i] = view:at(i).id end\n"
    "    return ids\n"
    "  end })\n"
    "local n = 0\n"
    "mg.after(1, function() while true do end end) -- stopped by its budget\n"
    "mg.every(1, function(t)\n"
    "  n = n + 1\n"
    "  assert(ctx:add { role = 'u', content = ('m'):rep(n) })\n"
    "  if n == 50 then t:stop() mg.exit(ctx:len() == 20 and 7 or 1) end\n"
    "end)\n";

typedef struct job {
  int code;
  unsigned long errors;
} job;

static void *runner(void *ud) {
  job *j = ud;
  mg_runtime_opts o;
  mg_runtime *rt = NULL;
  char err[1024];
  mg_runtime_opts_init(&o);
  o.cb_instructions = 200000; /* the endless timer stops fast */
  o.sandbox = 1;
  j->code = -1;
  if (mg_runtime_new(&o, &rt, err, sizeof err) < 0)
    return NULL;
  if (mg_runtime_load_string(rt, busy_code, "=busy", err, sizeof err) == 0) {
    mg_runtime_run(rt);
    j->code = mg_runtime_exit_code(rt);
    j->errors = mg_runtime_callback_errors(rt);
  }
  mg_runtime_free(rt);
  return NULL;
}

TEST(several_run_at_once_on_threads) {
  enum { N = 4 };
  for (int round = 0; round < 3; round++) {
    pthread_t th[N];
    job jobs[N];
    for (int i = 0; i < N; i++)
      ASSERT_EQ(pthread_create(&th[i], NULL, runner, &jobs[i]), 0);
    for (int i = 0; i < N; i++)
      ASSERT_EQ(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < N; i++) {
      ASSERT_EQ(jobs[i].code, 7);
      ASSERT_EQ(jobs[i].errors, 1); /* the endless timer, and only it */
    }
  }
}

int main(void) {
  RUN(sandboxed_require_after_another_runtime_is_freed);
  RUN(created_and_freed_in_any_order);
  RUN(several_run_at_once_on_threads);
  return mg_test_report();
}
