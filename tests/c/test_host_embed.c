/* test_host_embed.c — the runtime host embedded in a program that owns
 * its loop: policies run on the caller's loop, mg.exit reaches on_exit,
 * load errors come back as "file:line: message", budgets and the memory
 * cap hold, and every handle is closed so the caller's loop closes. */
#include <lua.h>
#include <string.h>
#include <uv.h>

#include "mg/mg_runtime.h"
#include "mg_test.h"

static int exit_calls, exit_code;
static void on_exit_cb(mg_runtime *rt, int code, void *ud) {
  (void)rt;
  (void)ud;
  exit_calls++;
  exit_code = code;
}

static int host_ticks;
static void host_timer_cb(uv_timer_t *t) {
  host_ticks++;
  (void)t;
}

static mg_runtime *make(uv_loop_t *loop, mg_logger *lg) {
  mg_runtime_opts o;
  mg_runtime *rt = NULL;
  char err[256];
  mg_runtime_opts_init(&o);
  o.loop = loop;
  o.logger = lg;
  o.on_exit = on_exit_cb;
  o.sandbox = 1;
  if (mg_runtime_new(&o, &rt, err, sizeof err) < 0)
    return NULL;
  return rt;
}

TEST(policy_runs_on_callers_loop) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  /* a handle of the host's own, which the runtime must leave alone */
  uv_timer_t host_timer;
  uv_timer_init(&loop, &host_timer);
  uv_timer_start(&host_timer, host_timer_cb, 1, 1);

  mg_runtime *rt = make(&loop, NULL);
  ASSERT(rt != NULL);
  char err[512];
  exit_calls = 0;
  ASSERT_EQ(mg_runtime_load_string(rt,
                                   "n = 0\n"
                                   "mg.every(2, function() n = n + 1 end)\n"
                                   "mg.after(30, function() mg.exit(5) end)\n",
                                   "=embedded", err, sizeof err),
            0);
  ASSERT_EQ(mg_runtime_run(rt), -EINVAL); /* the caller runs its loop */
  while (exit_calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(exit_calls, 1);
  ASSERT_EQ(exit_code, 5);
  ASSERT_EQ(mg_runtime_exit_code(rt), 5);
  lua_State *L = mg_runtime_lua(rt);
  lua_getglobal(L, "n");
  ASSERT_GE(lua_tointeger(L, -1), 1); /* the policy's timer ran */
  lua_pop(L, 1);
  ASSERT_GT(host_ticks, 0); /* the host's timer kept running */
  mg_runtime_free(rt);
  uv_timer_stop(&host_timer);
  uv_close((uv_handle_t *)&host_timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* runs the runtime's close callbacks */
  ASSERT_EQ(uv_loop_close(&loop), 0);
}

TEST(load_errors_name_file_and_line) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  mg_runtime *rt = make(&loop, NULL);
  char err[1024];
  ASSERT_EQ(mg_runtime_load_string(rt, "local x = = 1", "=policy.lua", err,
                                   sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "policy.lua:1:");
  ASSERT_EQ(mg_runtime_load_string(rt, "\nerror('boom')", "=policy.lua", err,
                                   sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "policy.lua:2: boom");
  ASSERT_CONTAINS(err, "stack traceback");
  ASSERT_EQ(mg_runtime_load(rt, "/nonexistent/p.lua", 0, NULL, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "cannot open /nonexistent/p.lua");
  /* the sandbox holds: no io, no os.execute */
  ASSERT_EQ(mg_runtime_load_string(rt,
                                   "assert(io == nil and os.execute == nil)",
                                   "=sb", err, sizeof err),
            0);
  mg_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(&loop), 0);
}

TEST(callbacks_fail_safely_and_are_counted) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  char *buf = NULL;
  size_t len = 0;
  FILE *logf = open_memstream(&buf, &len);
  mg_logger *lg = mg_logger_new(logf, MG_LOG_TEXT, MG_LOG_INFO);
  mg_runtime_opts o;
  mg_runtime *rt;
  char err[512];
  mg_runtime_opts_init(&o);
  o.loop = &loop;
  o.logger = lg;
  /* instructions, not the wall clock, stop the endless loop: on a loaded
   * machine a wall-clock budget could stop the memory bomb first */
  o.cb_timeout_ms = 0;
  o.cb_instructions = 5000000;
  o.lua_mem_max_bytes = 8u << 20;
  o.on_exit = on_exit_cb;
  ASSERT_EQ(mg_runtime_new(&o, &rt, err, sizeof err), 0);
  exit_calls = 0;
  ASSERT_EQ(mg_runtime_load_string(
                rt,
                "mg.after(1, function() error('e1') end)\n"
                "mg.after(2, function() while true do end end)\n"
                "mg.after(3, function() local t = {} while true do "
                "t[#t+1] = ('x'):rep(4096) .. #t end end)\n"
                "mg.after(20, function() ok = true mg.exit(0) end)\n",
                "=cb", err, sizeof err),
            0);
  while (exit_calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  ASSERT_EQ(mg_runtime_callback_errors(rt), 3);
  size_t peak = 0;
  mg_runtime_lua_mem(rt, &peak);
  ASSERT_LE(peak, (8u << 20) + 65536); /* the cap held (plus the traceback) */
  lua_State *L = mg_runtime_lua(rt);
  lua_getglobal(L, "ok");
  ASSERT(lua_toboolean(L, -1));
  lua_pop(L, 1);
  mg_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  mg_logger_free(lg);
  fclose(logf);
  ASSERT_CONTAINS(buf, "e1");
  ASSERT_CONTAINS(buf, "instruction budget of 5000000");
  ASSERT_CONTAINS(buf, "memory cap of 8.00 MiB");
  free(buf);
}

int main(void) {
  RUN(policy_runs_on_callers_loop);
  RUN(load_errors_name_file_and_line);
  RUN(callbacks_fail_safely_and_are_counted);
  return mg_test_report();
}
