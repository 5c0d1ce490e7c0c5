/* test_sup_shutdown.c — stop and shutdown without cgroups: a child that
 * ignores SIGTERM with grandchildren in its process group, and one whose
 * grandchildren called setsid (caught by the process-tree walk while the
 * child lives): all gone within grace + 1 s, no zombie; SIGTERM honoured
 * quickly; stop with a shorter grace; mg_child_signal; leftovers of the
 * process group killed when the main process exits; the supervisor
 * killed with SIGKILL takes its child along (PR_SET_PDEATHSIG);
 * mg_sup_free without shutdown kills and reaps; shutdown with nothing to
 * do still ends through the loop. */
#include "test_sup_util.h"

/* Child pids of `pid` (from /proc/<pid>/task/<pid>/children). */
static size_t children_of(pid_t pid, pid_t *out, size_t cap) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)pid,
           (long)pid);
  const char *s = slurp(path);
  size_t n = 0;
  for (char *end; *s && n < cap; s = end) {
    long v = strtol(s, &end, 10);
    if (end == s)
      break;
    out[n++] = (pid_t)v;
  }
  return n;
}

typedef struct kids_wait {
  mg_child *c;
  size_t want;
  int setsid;
} kids_wait;

static int has_kids(void *arg) {
  kids_wait *k = arg;
  pid_t p[16];
  pid_t pid = mg_child_pid(k->c);
  size_t n = children_of(pid, p, 16);
  if (n < k->want)
    return 0;
  for (size_t i = 0; k->setsid && i < n; i++)
    if (getpgid(p[i]) == pid)
      return 0;
  return 1;
}

static void shutdown_tree(const char *name, int setsid) {
  sup_start();
  char *const argv_pg[] = {(char *)hog_path(), "--max",   "4M", "--fork", "2",
                           "--ignore-term",    "--quiet", NULL};
  char *const argv_sid[] = {(char *)hog_path(), "--max",   "4M",
                            "--fork",           "2",       "--fork-setsid",
                            "--ignore-term",    "--quiet", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts(name, setsid ? argv_sid : argv_pg);
  o.enforce = MG_ENFORCE_NONE; /* no cgroup to fall back on */
  o.grace_ms = 300;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  kids_wait k = {c, 2, setsid};
  ASSERT(run_until(has_kids, &k, 20000));
  pid_t pids[16];
  pids[0] = mg_child_pid(c);
  size_t n = 1 + children_of(pids[0], pids + 1, 15);
  ASSERT_EQ(n, 3);
  uint64_t took = sup_finish();
  ASSERT_GE(took, 250);
  ASSERT_LE(took, 300 + 1000);
  /* all gone within grace + 1 s of the shutdown call */
  ASSERT(procs_dead_within(pids, n, (int)(300 + 1000 - took)));
  ASSERT_EQ(proc_state(pids[0]), 0); /* reaped by us: no zombie */
  ASSERT_EQ(r.exits, 1);
  ASSERT_EQ(r.exit[0].signal, SIGKILL);
  ASSERT_CONTAINS(r.exit[0].detail, "after the grace period");
}

TEST(shutdown_ignores_term_grandchildren) {
  shutdown_tree("pgtree", 0);
}

TEST(shutdown_ignores_term_setsid_grandchildren) {
  shutdown_tree("sidtree", 1);
}

/* SIGTERM honoured: it ends long before the grace; a signal, no restart
 * (the child was stopped, so on-failure does not apply). */
TEST(stop_term_honoured) {
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max", "4M", "--quiet", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("polite", argv);
  o.restart = MG_RESTART_ALWAYS;
  o.grace_ms = 5000;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  uint64_t t0 = now_ms();
  ASSERT_EQ(mg_child_stop(c, 0), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_LT(now_ms() - t0, 1000);
  ASSERT_EQ(r.exit[0].signal, SIGTERM);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_SIGNAL);
  ASSERT_EQ(r.exit[0].will_restart, 0);
  ASSERT_EQ(r.restarts, 0);
  mg_child_release(c);
  sup_finish();
}

/* A second stop with a shorter grace wins. */
TEST(stop_shorter_grace) {
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max",   "4M",
                        "--ignore-term",    "--quiet", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("stubborn", argv);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  sleep_ms(50); /* let it install SIG_IGN */
  uint64_t t0 = now_ms();
  ASSERT_EQ(mg_child_stop(c, 10000), 0);
  ASSERT_EQ(mg_child_stop(c, 100), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  uint64_t took = now_ms() - t0;
  ASSERT_GE(took, 90);
  ASSERT_LT(took, 2000);
  ASSERT_EQ(r.exit[0].signal, SIGKILL);
  mg_child_release(c);
  sup_finish();
}

TEST(signal_child) {
  sup_start();
  char *const argv[] = {"sleep", "10", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("sig", argv);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT_EQ(mg_child_signal(c, 0), 0);
  ASSERT_EQ(mg_child_signal(c, -1), -EINVAL);
  ASSERT_EQ(mg_child_signal(c, SIGUSR1), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].signal, SIGUSR1);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_SIGNAL);
  ASSERT_EQ(mg_child_signal(c, SIGUSR1), -ESRCH);
  mg_child_release(c);
  sup_finish();
}

/* When the main process exits, what is left of its process group is
 * killed with it (a run is the whole tree). */
TEST(leftovers_killed_at_exit) {
  sup_start();
  const char *pidfile = tmp_path("bg.pid");
  char script[PATH_MAX + 64];
  snprintf(script, sizeof script, "sleep 30 & echo $! > '%s'; exit 0", pidfile);
  char *const argv[] = {"sh", "-c", script, NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("leaves", argv);
  o.enforce = MG_ENFORCE_NONE;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 0);
  pid_t bg = (pid_t)atol(slurp(pidfile));
  ASSERT_GT(bg, 0);
  ASSERT(procs_dead_within(&bg, 1, 1000));
  sup_finish();
}

/* mg_child_signal(SIGKILL) kills the whole run, setsid'd grandchildren
 * included, without a cgroup. */
TEST(sigkill_whole_tree) {
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max",   "4M", "--fork", "2",
                        "--fork-setsid",    "--quiet", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("killtree", argv);
  o.enforce = MG_ENFORCE_NONE;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  kids_wait k = {c, 2, 1};
  ASSERT(run_until(has_kids, &k, 20000));
  pid_t pids[8];
  pids[0] = mg_child_pid(c);
  size_t n = 1 + children_of(pids[0], pids + 1, 7);
  ASSERT_EQ(n, 3);
  ASSERT_EQ(mg_child_signal(c, SIGKILL), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT(procs_dead_within(pids, n, 1000));
  ASSERT_EQ(r.exit[0].signal, SIGKILL);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_SIGNAL);
  ASSERT_STR_EQ(r.exit[0].detail, "killed by SIGKILL (9)");
  mg_child_release(c);
  sup_finish();
}

/* The supervisor dies with SIGKILL: its child follows (PDEATHSIG). */
static _Noreturn void doomed(int fd) {
  uv_loop_t l;
  mg_sup *s;
  mg_sup_opts so;
  memset(&so, 0, sizeof so);
  so.loop = &l;
  if (uv_loop_init(&l) < 0 || mg_sup_new(&so, &s, err, sizeof err) < 0)
    _exit(10);
  char *const argv[] = {"sleep", "30", NULL};
  mg_child_opts o = child_opts("orphan", argv);
  o.enforce = MG_ENFORCE_NONE;
  mg_child *c;
  if (mg_child_spawn(s, &o, NULL, &c, err, sizeof err) < 0)
    _exit(11);
  pid_t pid = mg_child_pid(c);
  if (write(fd, &pid, sizeof pid) != (ssize_t)sizeof pid)
    _exit(12);
  for (;;)
    pause();
}

TEST(pdeathsig) {
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    close(pfd[0]);
    doomed(pfd[1]);
  }
  close(pfd[1]);
  pid_t child = 0;
  ssize_t got = read(pfd[0], &child, sizeof child);
  close(pfd[0]);
  if (got != (ssize_t)sizeof child) {
    kill(helper, SIGKILL);
    waitpid(helper, NULL, 0);
    MG__FAIL("the helper supervisor did not start its child");
  }
  ASSERT(!proc_dead(child));
  ASSERT_EQ(kill(helper, SIGKILL), 0);
  ASSERT_EQ(waitpid(helper, NULL, 0), helper);
  ASSERT(procs_dead_within(&child, 1, 1000));
}

/* mg_sup_free without a shutdown: kills and reaps now, frees once the
 * loop has run the close callbacks. */
TEST(free_kills_and_reaps) {
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max",   "4M", "--fork", "1",
                        "--ignore-term",    "--quiet", NULL};
  mg_child_opts o = child_opts("abandoned", argv);
  o.restart = MG_RESTART_ALWAYS;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
  kids_wait k = {c, 1, 0};
  ASSERT(run_until(has_kids, &k, 20000));
  pid_t pids[4];
  pids[0] = mg_child_pid(c);
  size_t n = 1 + children_of(pids[0], pids + 1, 3);
  mg_sup_free(sup);
  sup = NULL;
  ASSERT_EQ(proc_state(pids[0]), 0); /* reaped synchronously */
  ASSERT(procs_dead_within(pids, n, 1000));
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  loop_open = 0;
}

TEST(shutdown_nothing) {
  sup_start();
  ASSERT_LT(sup_finish(), 1000); /* nothing to wait for */
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  SUP_RUN(shutdown_ignores_term_grandchildren);
  SUP_RUN(shutdown_ignores_term_setsid_grandchildren);
  SUP_RUN(stop_term_honoured);
  SUP_RUN(stop_shorter_grace);
  SUP_RUN(signal_child);
  SUP_RUN(leftovers_killed_at_exit);
  SUP_RUN(sigkill_whole_tree);
  SUP_RUN(pdeathsig);
  SUP_RUN(free_kills_and_reaps);
  SUP_RUN(shutdown_nothing);
  return mg_test_report();
}
