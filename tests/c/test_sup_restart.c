/* test_sup_restart.c — restart policies: on-failure with exponential
 * backoff, its cap and its reset after a long run, MG_RESTARTS 0, 1, 2 in the
 * child, max_restarts stops it, on_restart / on_exit counts and values; always;
 * no restart after success under on-failure; a restart whose exec fails becomes
 * an exit with detail; stop and shutdown cancel a pending restart. */
#include "test_sup_util.h"

TEST(on_failure_backoff_and_max) {
  sup_start();
  const char *out = tmp_path("restarts.out");
  char script[PATH_MAX + 64];
  snprintf(script, sizeof script, "echo $MG_RESTARTS >> '%s'; exit 3", out);
  char *const argv[] = {"sh", "-c", script, NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("flaky", argv);
  o.restart = MG_RESTART_ON_FAILURE;
  o.max_restarts = 2;
  o.backoff_ms = 100;
  o.backoff_max_ms = 1000;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT_EQ(mg_child_restarts(c), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_STR_EQ(slurp(out), "0\n1\n2\n");
  ASSERT_EQ(r.exits, 3);
  ASSERT_EQ(r.restarts, 2);
  ASSERT_EQ(r.closes, 1);
  ASSERT_EQ(r.restart_values[0], 1);
  ASSERT_EQ(r.restart_values[1], 2);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(r.exit[i].code, 3);
    ASSERT_EQ(r.exit[i].reason, MG_EXIT_EXIT);
    ASSERT_EQ(r.exit[i].restarts, i);
  }
  ASSERT_EQ(r.exit[0].will_restart, 1);
  ASSERT_EQ(r.exit[0].restart_in_ms, 100);
  ASSERT_EQ(r.exit[1].will_restart, 1);
  ASSERT_EQ(r.exit[1].restart_in_ms, 200); /* doubled */
  ASSERT_EQ(r.exit[2].will_restart, 0);    /* max_restarts */
  /* the delays were really waited for */
  ASSERT_GE(r.restart_at_ms[0] - r.exit_at_ms[0], 90);
  ASSERT_GE(r.restart_at_ms[1] - r.exit_at_ms[1], 190);
  ASSERT_EQ(mg_child_restarts(c), 2);
  ASSERT(mg_child_closed(c));
  mg_child_release(c);
  sup_finish();
}

TEST(backoff_cap) {
  sup_start();
  char *const argv[] = {"false", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("capped", argv);
  o.restart = MG_RESTART_ON_FAILURE;
  o.max_restarts = 4;
  o.backoff_ms = 20;
  o.backoff_max_ms = 50;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exits, 5);
  ASSERT_EQ(r.exit[0].restart_in_ms, 20);
  ASSERT_EQ(r.exit[1].restart_in_ms, 40);
  ASSERT_EQ(r.exit[2].restart_in_ms, 50);
  ASSERT_EQ(r.exit[3].restart_in_ms, 50);
  ASSERT_EQ(r.exit[4].will_restart, 0);
  ASSERT_EQ(r.exit[4].restarts, 4);
  sup_finish();
}

/* A run that lasted backoff_reset_ms resets the delay to backoff_ms. */
TEST(backoff_reset_after_long_run) {
  sup_start();
  char *const argv[] = {
      "sh", "-c", "if [ \"$MG_RESTARTS\" = 2 ]; then sleep 0.4; fi; exit 1",
      NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("resets", argv);
  o.restart = MG_RESTART_ON_FAILURE;
  o.max_restarts = 3;
  o.backoff_ms = 20;
  o.backoff_max_ms = 1000;
  o.backoff_reset_ms = 300;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exits, 4);
  ASSERT_EQ(r.exit[0].restart_in_ms, 20);
  ASSERT_EQ(r.exit[1].restart_in_ms, 40);
  ASSERT_GE(r.exit[2].runtime_ms, 300);
  ASSERT_EQ(r.exit[2].restart_in_ms, 20); /* reset */
  ASSERT_EQ(r.exit[3].will_restart, 0);
  sup_finish();
}

TEST(always_and_on_failure_success) {
  sup_start();
  char *const ok_argv[] = {"true", NULL};
  rec r1 = {0}, r2 = {0};
  mg_child_events e1 = rec_events(&r1), e2 = rec_events(&r2);
  mg_child_opts o1 = child_opts("always", ok_argv);
  o1.restart = MG_RESTART_ALWAYS;
  o1.max_restarts = 2;
  o1.backoff_ms = 10;
  mg_child_opts o2 = child_opts("succeeds", ok_argv);
  o2.restart = MG_RESTART_ON_FAILURE;
  o2.backoff_ms = 10;
  ASSERT_EQ(mg_child_spawn(sup, &o1, &e1, NULL, err, sizeof err), 0);
  ASSERT_EQ(mg_child_spawn(sup, &o2, &e2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r1, 20000));
  ASSERT(run_until(rec_closed, &r2, 20000));
  ASSERT_EQ(r1.exits, 3);
  ASSERT_EQ(r1.restarts, 2);
  ASSERT_EQ(r2.exits, 1);
  ASSERT_EQ(r2.restarts, 0);
  ASSERT_EQ(r2.exit[0].will_restart, 0);
  sup_finish();
}

/* A signal counts as a failure; unlimited restarts until stopped. */
static void stop_after_three(mg_child *c, const mg_child_exit *e, rec *r) {
  (void)e;
  if (r->exits >= 3)
    mg_child_stop(c, 0); /* from inside on_exit: cancels the restart */
}

TEST(signal_restarts_until_stopped) {
  sup_start();
  char *const argv[] = {"sh", "-c", "kill -TERM $$", NULL};
  rec r = {0};
  r.after_exit = stop_after_three;
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("selfkill", argv);
  o.restart = MG_RESTART_ON_FAILURE;
  o.max_restarts = -1;
  o.backoff_ms = 10;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exits, 3);
  ASSERT_EQ(r.restarts, 2);
  ASSERT_EQ(r.exit[0].signal, SIGTERM);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_SIGNAL);
  ASSERT_EQ(r.exit[2].will_restart, 1); /* told before the stop */
  sup_finish();
}

/* The program disappears between runs: the restart's exec fails and is
 * reported as an exit with detail, then the policy goes on. */
static const char *vanishing;
static void remove_program(mg_child *c, const mg_child_exit *e, rec *r) {
  (void)c;
  (void)e;
  if (r->exits == 1)
    unlink(vanishing);
}

TEST(restart_exec_failure) {
  sup_start();
  static char prog[PATH_MAX + 64];
  snprintf(prog, sizeof prog, "%s", tmp_path("vanishing.sh"));
  vanishing = prog;
  FILE *f = fopen(prog, "w");
  ASSERT(f != NULL);
  fprintf(f, "#!/bin/sh\nexit 1\n");
  fclose(f);
  ASSERT_EQ(chmod(prog, 0755), 0);
  char *const argv[] = {prog, NULL};
  rec r = {0};
  r.after_exit = remove_program;
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("vanish", argv);
  o.restart = MG_RESTART_ON_FAILURE;
  o.max_restarts = 2;
  o.backoff_ms = 10;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exits, 3);
  ASSERT_EQ(r.exit[0].code, 1);
  ASSERT_EQ(r.exit[1].code, 127);
  ASSERT_EQ(r.exit[1].pid, 0);
  ASSERT_CONTAINS(r.exit[1].detail, "restart failed: cmd: cannot execute");
  ASSERT_CONTAINS(r.exit[1].detail, "No such file or directory");
  ASSERT_EQ(r.exit[1].restarts, 1);
  ASSERT_EQ(r.exit[2].code, 127);
  ASSERT_EQ(r.exit[2].will_restart, 0);
  sup_finish();
}

/* stop / shutdown while a restart is pending: cancelled at once. */
TEST(stop_cancels_pending_restart) {
  sup_start();
  char *const argv[] = {"false", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("pending", argv);
  o.restart = MG_RESTART_ON_FAILURE;
  o.backoff_ms = 5000;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT(run_until(rec_exited, &r, 20000));
  ASSERT_EQ(r.exit[0].will_restart, 1);
  ASSERT_EQ(r.exit[0].restart_in_ms, 5000);
  ASSERT(!mg_child_closed(c));
  ASSERT_EQ(mg_sup_children(sup, NULL, 0), 1);
  uint64_t t0 = now_ms();
  ASSERT_EQ(mg_child_stop(c, 0), 0);
  ASSERT(mg_child_closed(c));
  ASSERT_EQ(r.closes, 1);
  ASSERT_EQ(mg_child_stop(c, 0), 0); /* idempotent */
  uv_run(&loop, UV_RUN_DEFAULT);     /* nothing left to wait for */
  ASSERT_LT(now_ms() - t0, 1000);
  ASSERT_EQ(r.restarts, 0);
  mg_child_release(c);

  rec r2 = {0};
  mg_child_events ev2 = rec_events(&r2);
  o.name = "pending2";
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_exited, &r2, 20000));
  ASSERT_EQ(r2.exit[0].will_restart, 1);
  ASSERT_LT(sup_finish(), 1000);
  ASSERT_EQ(r2.restarts, 0);
  ASSERT_EQ(r2.closes, 1);
}

/* A spawn during shutdown is refused. */
static void spawn_in_close(mg_child *c, void *ud) {
  (void)c;
  char *const argv[] = {"true", NULL};
  mg_child_opts o = child_opts("late", argv);
  int *rc = ud;
  *rc = mg_child_spawn(sup, &o, NULL, NULL, err, sizeof err);
}

TEST(no_spawn_during_shutdown) {
  sup_start();
  char *const argv[] = {"sleep", "5", NULL};
  int rc = 1;
  mg_child_events ev = {NULL, NULL, NULL, NULL, spawn_in_close, &rc};
  mg_child_opts o = child_opts("sleeper", argv);
  o.grace_ms = 200;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT_LT(sup_finish(), 1500); /* sleep dies of SIGTERM at once */
  ASSERT_EQ(rc, -ECANCELED);
  ASSERT_CONTAINS(err, "shutting down");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  SUP_RUN(on_failure_backoff_and_max);
  SUP_RUN(backoff_cap);
  SUP_RUN(backoff_reset_after_long_run);
  SUP_RUN(always_and_on_failure_success);
  SUP_RUN(signal_restarts_until_stopped);
  SUP_RUN(restart_exec_failure);
  SUP_RUN(stop_cancels_pending_restart);
  SUP_RUN(no_spawn_during_shutdown);
  return mg_test_report();
}
