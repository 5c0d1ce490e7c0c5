/* bench_lstore.c — the context store through the Lua binding (linked with
 * the whole host): ctx:add from a policy with the store at its limit, a
 * Lua strategy choosing from 10,000 messages, trimming 4,000 messages to
 * 10 % (with the estimator's calls counted), and, for the comparison in
 * bench/compare, mg_store_add itself on the same workload.
 *
 * Prints markdown rows (what | figure | target) and, for bench/run.sh,
 * "#fig NAME VALUE" lines.
 *
 *   bench_lstore [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mg/mg_runtime.h"
#include "mg/mg.h"

static const char *const BENCH_LUA =
    "local S = require('mg.strategies')\n"
    "S256 = string.rep('x', 256)\n"
    "function setup_add()\n"
    "  ctx = assert(mg.store{ name = 'bench', max_messages = 1000,\n"
    "    max_total_size = '1G', on_full = 'prune' })\n"
    "  for i = 1, 1000 do assert(ctx:add{ role = 'user', content = S256 }) "
    "end\n"
    "end\n"
    "function run_add(n)\n"
    "  local c, s = ctx, S256\n"
    "  for i = 1, n do c:add{ role = 'user', content = s } end\n"
    "end\n"
    "local roles = { 'user', 'assistant', 'tool' }\n"
    "function setup_strategy(name)\n"
    "  local strategy = name == 'lowest_priority_first' and "
    "S.lowest_priority_first\n"
    "    or name == 'oldest_lua' and function(v, n) return S.oldest(v, n) "
    "end\n"
    "    or name == 'user_turn_start' and S.user_turn_start\n"
    "    or error('unknown ' .. name)\n"
    "  big = assert(mg.store{ name = 'big', max_messages = 10000,\n"
    "    max_total_size = '1G', on_full = 'prune', strategy = strategy })\n"
    "  big:add{ role = 'system', content = 'sys', pinned = true }\n"
    "  for i = 2, 10000 do\n"
    "    local g = (i % 10 < 3) and ('call-' .. (i // 10)) or nil\n"
    "    assert(big:add{ role = roles[i % 3 + 1], content = S256,\n"
    "                    priority = i % 7, group = g })\n"
    "  end\n"
    "end\n"
    "function refill()\n"
    "  while #big < 10000 do\n"
    "    assert(big:add{ role = 'user', content = S256, priority = 6 })\n"
    "  end\n"
    "end\n"
    "function run_strategy() assert(big:make_room{ count = 1 } >= 1) end\n"
    "est_calls = 0\n"
    "local function est(c) est_calls = est_calls + 1 return #c // 4 end\n"
    "function setup_trim(strategy)\n"
    "  trim = assert(mg.store{ name = 'trim', max_messages = 4000,\n"
    "    max_total_size = '1G', estimator = est,\n"
    "    strategy = strategy and S.keep_last(400) or nil })\n"
    "  for i = 1, 4000 do\n"
    "    assert(trim:add{ role = i % 2 == 0 and 'user' or 'assistant',\n"
    "                     content = S256 })\n"
    "  end\n"
    "  est_before = est_calls\n"
    "end\n"
    "function run_prune() assert(trim:prune(400) == 3600) end\n"
    "function run_keep_last() assert(trim:make_room{ count = 1 } == 3600) "
    "end\n"
    "function trim_est_calls() return est_calls - est_before end\n";

static lua_State *L;

/* Call global fn(args...) (numbers or one string); aborts on error. */
static void call(const char *fn, const char *sarg, long long narg) {
  lua_getglobal(L, fn);
  int n = 0;
  if (sarg) {
    lua_pushstring(L, sarg);
    n = 1;
  } else if (narg >= 0) {
    lua_pushinteger(L, narg);
    n = 1;
  }
  if (lua_pcall(L, n, 1, 0) != LUA_OK) {
    fprintf(stderr, "bench_lstore: %s: %s\n", fn, lua_tostring(L, -1));
    exit(1);
  }
}

/* C: mg_store_add of 256-byte messages, store at 1,000, evicting oldest
 * (the same workload as run_add, without Lua). Best of rounds, adds/s. */
static double bench_c_add(int rounds, long n) {
  mg_store_options o;
  mg_store *s;
  char err[256];
  static char content[256];
  memset(content, 'x', sizeof content);
  mg_store_options_init(&o);
  o.limits.max_messages = 1000;
  o.limits.max_total_size_bytes = 1u << 30;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  if (mg_store_new(&o, &s, err, sizeof err) < 0) {
    fprintf(stderr, "bench_lstore: %s\n", err);
    exit(1);
  }
  mg_store_input in = {0};
  in.role = "user";
  in.content = content;
  in.content_len = sizeof content;
  for (int i = 0; i < 1000; i++)
    mg_store_add(s, &in, NULL, NULL);
  double best = 0;
  for (int r = 0; r < rounds; r++) {
    double t0 = bench_now_s();
    for (long i = 0; i < n; i++)
      if (mg_store_add(s, &in, NULL, NULL) != 0)
        abort();
    double rate = (double)n / (bench_now_s() - t0);
    if (rate > best)
      best = rate;
  }
  mg_store_free(s);
  return best;
}

static double bench_lua_add(int rounds, long n) {
  double best = 0;
  call("setup_add", NULL, -1);
  for (int r = 0; r < rounds; r++) {
    double t0 = bench_now_s();
    call("run_add", NULL, n);
    double rate = (double)n / (bench_now_s() - t0);
    if (rate > best)
      best = rate;
  }
  return best;
}

/* Median time (ms) of one run of the strategy over 10,000 messages (what
 * a full store runs before an add; refilled to 10,000 between runs). */
static double bench_strategy(const char *name, int n) {
  double t[64] = {0};
  if (n > 64)
    n = 64;
  call("setup_strategy", name, -1);
  lua_gc(L, LUA_GCCOLLECT);
  for (int i = 0; i < n; i++) {
    call("refill", NULL, -1);
    lua_settop(L, 0);
    double t0 = bench_now_s();
    call("run_strategy", NULL, -1);
    t[i] = (bench_now_s() - t0) * 1e3;
    lua_settop(L, 0);
  }
  qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
  return t[n / 2];
}

/* Median time (ms) to trim 4,000 to 400; *est = estimator calls during. */
static double bench_trim(const char *run, int rounds, long *est) {
  double t[64] = {0};
  if (rounds > 64)
    rounds = 64;
  *est = 0;
  for (int r = 0; r < rounds; r++) {
    lua_getglobal(L, "setup_trim");
    lua_pushboolean(L, strcmp(run, "run_keep_last") == 0);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "bench_lstore: setup_trim: %s\n", lua_tostring(L, -1));
      exit(1);
    }
    lua_gc(L, LUA_GCCOLLECT);
    double t0 = bench_now_s();
    call(run, NULL, -1);
    t[r] = (bench_now_s() - t0) * 1e3;
    call("trim_est_calls", NULL, -1);
    *est += (long)lua_tointeger(L, -1);
    lua_settop(L, 0);
  }
  qsort(t, (size_t)rounds, sizeof t[0], bench_cmp_double);
  return t[rounds / 2];
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1)
    rounds = 1;
  mg_runtime_opts o;
  mg_runtime_opts_init(&o);
  o.lua_mem_max_bytes = (size_t)1 << 30;
  o.cb_timeout_ms = 0;
  o.cb_instructions = 0;
  mg_runtime *rt;
  char err[8192];
  if (mg_runtime_new(&o, &rt, err, sizeof err) < 0 ||
      mg_runtime_load_string(rt, BENCH_LUA, "=bench_lstore", err, sizeof err) <
          0) {
    fprintf(stderr, "bench_lstore: %s\n", err);
    return 1;
  }
  L = mg_runtime_lua(rt);

  double c_add = bench_c_add(rounds, 2000000);
  double lua_add = bench_lua_add(rounds, 2000000);
  double lpf = bench_strategy("lowest_priority_first", 31);
  double old = bench_strategy("oldest_lua", 31);
  double utt = bench_strategy("user_turn_start", 31);
  long est_prune, est_keep;
  double prune_ms = bench_trim("run_prune", 2 * rounds + 1, &est_prune);
  double keep_ms = bench_trim("run_keep_last", 2 * rounds + 1, &est_keep);

  printf("| store, C: mg_store_add, 256-byte messages, store at its limit "
         "(1,000) evicting oldest | %.1f M adds/s | ≥ 2× lru-cache |\n",
         c_add / 1e6);
  printf("| store, Lua: ctx:add from a policy, same workload | %.2f M adds/s "
         "| ≥ 1 M/s |\n",
         lua_add / 1e6);
  printf("| store, Lua strategy lowest_priority_first choosing from 10,000 "
         "messages (one run) | %.2f ms | < 5 ms |\n",
         lpf);
  printf("| store, Lua strategy S.oldest (in Lua) choosing from 10,000 "
         "messages (one run) | %.2f ms | < 5 ms |\n",
         old);
  printf("| store, Lua strategy user_turn_start choosing from 10,000 "
         "messages (one run) | %.2f ms | < 5 ms |\n",
         utt);
  printf("| store, trim 4,000 messages to 10 %% from Lua (ctx:prune(400)) | "
         "%.3f ms | < 1 ms |\n",
         prune_ms);
  printf("| store, trim 4,000 messages to 10 %% by the Lua strategy "
         "keep_last(400) | %.3f ms | — |\n",
         keep_ms);
  printf("| store, estimator calls during those %d trims | %ld | 0 |\n",
         2 * (2 * rounds + 1), est_prune + est_keep);
  printf("#fig c_adds_per_s %.0f\n", c_add);
  printf("#fig lua_adds_per_s %.0f\n", lua_add);
  printf("#fig prune_ms %.4f\n", prune_ms);
  printf("#fig keep_last_ms %.4f\n", keep_ms);
  mg_runtime_free(rt);
  return 0;
}
