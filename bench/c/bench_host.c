/* bench_host.c — costs of the runtime host: C→Lua callback dispatch under
 * the budget, timer dispatch through libuv, and the probes called from
 * Lua. Prints markdown table rows: | what | figure | target |. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mg/mg_runtime.h"
#include "lua/mg__lua.h" /* mg_lua_pcall: the dispatch measured */

static mg_runtime *new_rt(void) {
  mg_runtime_opts o;
  mg_runtime *rt;
  char err[256];
  mg_runtime_opts_init(&o);
  if (mg_runtime_new(&o, &rt, err, sizeof err) < 0) {
    fprintf(stderr, "bench_host: %s\n", err);
    exit(1);
  }
  return rt;
}

static void load(mg_runtime *rt, const char *code) {
  char err[1024];
  if (mg_runtime_load_string(rt, code, "=bench", err, sizeof err) < 0) {
    fprintf(stderr, "bench_host: %s\n", err);
    exit(1);
  }
}

/* Direct dispatch: what every timer / event callback pays on top of
 * libuv — pcall with the traceback handler, budget and memory cap. */
static void bench_dispatch(void) {
  mg_runtime *rt = new_rt();
  lua_State *L = mg_runtime_lua(rt);
  load(rt, "n = 0 function f() n = n + 1 end");
  const int N = 2000000;
  double t0 = bench_now_s();
  for (int i = 0; i < N; i++) {
    lua_getglobal(L, "f");
    mg_lua_pcall(L, 0, 0, "bench", NULL);
  }
  double ns = (bench_now_s() - t0) / N * 1e9;
  printf("| C→Lua callback dispatch (budgeted pcall) | %.0f ns | ≤ 1000 ns |\n",
         ns);
  mg_runtime_free(rt);
}

/* Timer dispatch as policies see it: 1000 repeating 1 ms timers for 1 s,
 * CPU time per callback (libuv's timer heap + the budgeted call). */
static void bench_timers(void) {
  mg_runtime *rt = new_rt();
  load(rt, "n = 0 local function f() n = n + 1 end "
           "for i = 1, 1000 do mg.every(1, f) end "
           "mg.after(1000, function() mg.exit(0) end)");
  double c0 = bench_cpu_s();
  mg_runtime_run(rt);
  double cpu = bench_cpu_s() - c0;
  lua_State *L = mg_runtime_lua(rt);
  lua_getglobal(L, "n");
  double n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  printf("| timer callback dispatch (1000 × mg.every(1) for 1 s: %.0f "
         "callbacks, CPU per callback) | %.0f ns | ≤ 1000 ns |\n",
         n, cpu / n * 1e9);
  mg_runtime_free(rt);
}

static void bench_lua_loop(const char *what, const char *body, int n) {
  mg_runtime *rt = new_rt();
  char code[512];
  snprintf(code, sizeof code,
           "local t0 = mg.now() for i = 1, %d do %s end "
           "result = (mg.now() - t0) * 1000 / %d",
           n, body, n);
  load(rt, code);
  lua_State *L = mg_runtime_lua(rt);
  lua_getglobal(L, "result");
  printf("| %s | %.1f µs/call | — |\n", what, lua_tonumber(L, -1));
  lua_pop(L, 1);
  mg_runtime_free(rt);
}

int main(void) {
  bench_dispatch();
  bench_timers();
  bench_lua_loop("mg.memory() (meminfo + cached cgroup position)",
                 "mg.memory()", 20000);
  bench_lua_loop("mg.process(pid) (/proc/PID/status)", "mg.process(mg.pid)",
                 20000);
  bench_lua_loop("mg.pressure() (/proc/pressure/memory)", "mg.pressure()",
                 20000);
  bench_lua_loop("mg.size(\"1.5G\")", "mg.size('1.5G')", 200000);
  return 0;
}
