/* test_sup_cgroup.c — cgroup enforcement of supervised children, for
 * real (cgroup v1 here; the v2 paths are covered by fixtures in
 * test_sup_classify.c): a hog OOM-killed in its own 64 MiB group is
 * classified `oom`, a sibling under its own limit is unaffected, the group
 * is gone afterwards; the limit is in force before the first instruction;
 * shutdown of a child that ignores SIGTERM and whose grandchildren left
 * its process group (setsid) leaves no process and no group; a supervisor
 * killed with SIGKILL takes its child along (PDEATHSIG) and the next one
 * removes the stale group, killing what the group still held; a limit
 * above the effective memory leaves no group behind; v1 threshold
 * registrations run off the loop and leave no descriptor behind. Skipped
 * without a writable cgroup (a failure under MG_REQUIRE_CGROUP=1). */
#include "test_sup_util.h"

static void require_cgroup(void) {
  const char *why;
  if (mg_sup_auto_enforce(sup, &why) != MG_ENFORCE_CGROUP)
    SKIP_CGROUP("no writable cgroup here: %s", why);
}

static char hog_dir[PATH_MAX], sib_dir[PATH_MAX];

TEST(cgroup_oom_kill_and_sibling) {
  sup_start();
  require_cgroup();
  /* it waits 0.3 s before growing: its membership is checked first */
  char *const hog[] = {(char *)hog_path(), "--max",  "256M", "--quiet",
                       "--start-delay-us", "300000", NULL};
  char *const sib[] = {(char *)hog_path(), "--max", "16M", "--hold", "3",
                       "--quiet",          NULL};
  rec rh = {0}, rs = {0};
  mg_child_events eh = rec_events(&rh), es = rec_events(&rs);
  mg_child_opts oh = child_opts("oomhog", hog);
  oh.enforce = MG_ENFORCE_AUTO; /* resolves to cgroup here */
  oh.limit_bytes = 64 * MIB;
  oh.sample_ms = 20;
  mg_child_opts os = child_opts("oomsib", sib);
  os.enforce = MG_ENFORCE_CGROUP;
  os.limit_bytes = 64 * MIB;
  os.sample_ms = 20;
  mg_child *ch, *cs;
  ASSERT_EQ(mg_child_spawn(sup, &os, &es, &cs, err, sizeof err), 0);
  ASSERT_EQ(mg_child_spawn(sup, &oh, &eh, &ch, err, sizeof err), 0);
  ASSERT_EQ(mg_child_enforce(ch), MG_ENFORCE_CGROUP);
  ASSERT(mg_child_cgroup_dir(ch) != NULL);
  snprintf(hog_dir, sizeof hog_dir, "%s", mg_child_cgroup_dir(ch));
  snprintf(sib_dir, sizeof sib_dir, "%s", mg_child_cgroup_dir(cs));
  ASSERT(dir_exists(hog_dir));
  char want[128];
  snprintf(want, sizeof want, "/mgrun-%ld-oomhog", (long)getpid());
  ASSERT_CONTAINS(hog_dir, want);
  /* the child joined its group itself, before exec */
  char procs[PATH_MAX + 32];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", hog_dir);
  char pid_line[32];
  snprintf(pid_line, sizeof pid_line, "%ld\n", (long)mg_child_pid(ch));
  ASSERT_CONTAINS(slurp(procs), pid_line);

  ASSERT(run_until(rec_closed, &rh, 20000));
  ASSERT_EQ(rh.exit[0].signal, SIGKILL);
  ASSERT_EQ(rh.exit[0].code, -1);
  ASSERT_EQ(rh.exit[0].reason, MG_EXIT_OOM);
  ASSERT_CONTAINS(rh.exit[0].detail, "oom_kill 0 -> 1");
  ASSERT_CONTAINS(rh.exit[0].detail, hog_dir);
  ASSERT_GE(rh.exit[0].peak_bytes, 60 * MIB);
  ASSERT_LE(rh.exit[0].peak_bytes, 64 * MIB);
  ASSERT(!dir_exists(hog_dir)); /* removed after the reap */
  ASSERT(mg_child_running(cs)); /* the sibling lives on */
  ASSERT(dir_exists(sib_dir));

  ASSERT(run_until(rec_closed, &rs, 20000));
  ASSERT_EQ(rs.exit[0].code, 0);
  ASSERT_EQ(rs.exit[0].reason, MG_EXIT_EXIT);
  ASSERT_GE(rs.exit[0].peak_bytes, 16 * MIB);
  ASSERT_GE(rs.max_used, 16 * MIB); /* cgroup current while holding */
  ASSERT(!dir_exists(sib_dir));
  mg_child_release(ch);
  mg_child_release(cs);
  sup_finish();
}

TEST(cgroup_limit_before_first_instruction) {
  sup_start();
  require_cgroup();
  char *const argv[] = {(char *)hog_path(), "--max", "1M", "--hold", "0", NULL};
  char *const env[] = {"MG_HOG_ALLOC_AT_START=256M", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("cgfirst", argv);
  o.env = env;
  o.enforce = MG_ENFORCE_CGROUP;
  o.limit_bytes = 64 * MIB;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].signal, SIGKILL);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_OOM);
  sup_finish();
}

/* The pids listed in a group's cgroup.procs. */
static size_t group_pids(const char *dir, pid_t *out, size_t cap) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
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

typedef struct group_wait {
  const char *dir;
  size_t want;  /* processes in the group */
  pid_t leader; /* … of which all but the leader left its process group */
} group_wait;

static int group_has(void *arg) {
  group_wait *g = arg;
  pid_t p[16];
  size_t n = group_pids(g->dir, p, 16);
  if (n < g->want)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] != g->leader && getpgid(p[i]) == g->leader)
      return 0;
  return 1;
}

/* A child that ignores SIGTERM and whose grandchildren left its process
 * group: after shutdown nothing is left, within grace + 1 s. */
TEST(shutdown_setsid_grandchildren) {
  sup_start();
  require_cgroup();
  char *const argv[] = {(char *)hog_path(), "--max",   "4M",
                        "--fork",           "2",       "--fork-setsid",
                        "--ignore-term",    "--quiet", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("daemons", argv);
  o.enforce = MG_ENFORCE_CGROUP;
  o.limit_bytes = 64 * MIB;
  o.grace_ms = 300;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", mg_child_cgroup_dir(c));
  group_wait g = {dir, 3, mg_child_pid(c)};
  ASSERT(run_until(group_has, &g, 20000));
  pid_t pids[16];
  size_t n = group_pids(dir, pids, 16);
  ASSERT_EQ(n, 3);
  for (size_t i = 0; i < n; i++)
    if (pids[i] != mg_child_pid(c))
      ASSERT_NE(getpgid(pids[i]), mg_child_pid(c)); /* left the group */
  pid_t main_pid = mg_child_pid(c);
  uint64_t took = sup_finish(); /* also frees c (never released) */
  ASSERT_GE(took, 250);         /* it ignored SIGTERM: the grace ran out */
  ASSERT_LE(took, 300 + 1000);
  /* all gone within grace + 1 s of the shutdown call */
  ASSERT(procs_dead_within(pids, n, (int)(300 + 1000 - took)));
  ASSERT_EQ(proc_state(main_pid), 0); /* ours: reaped */
  ASSERT(!dir_exists(dir));
  ASSERT_EQ(r.exits, 1);
  ASSERT_EQ(r.closes, 1);
  ASSERT_EQ(r.exit[0].signal, SIGKILL);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_SIGNAL);
  ASSERT_CONTAINS(r.exit[0].detail, "after the grace period");
  ASSERT_EQ(r.exit[0].will_restart, 0);
}

/* In a forked process: a supervisor that spawns a hog whose child leaves
 * the process group, reports "<pid> <dir>" on `fd`, and waits to be
 * killed. */
/* A prefix of this test process's own, so that no other supervisor on
 * the machine (another test run) removes the stale group first. */
static char stale_prefix[32];

static _Noreturn void doomed_supervisor(int fd) {
  uv_loop_t l;
  mg_sup *s;
  mg_sup_opts so;
  memset(&so, 0, sizeof so);
  so.loop = &l;
  so.group_prefix = stale_prefix;
  if (uv_loop_init(&l) < 0 || mg_sup_new(&so, &s, err, sizeof err) < 0)
    _exit(10);
  char *const argv[] = {(char *)hog_path(), "--max",   "4M", "--fork", "1",
                        "--fork-setsid",    "--quiet", NULL};
  mg_child_opts o = child_opts("doomed", argv);
  o.enforce = MG_ENFORCE_CGROUP;
  o.limit_bytes = 64 * MIB;
  mg_child *c;
  if (mg_child_spawn(s, &o, NULL, &c, err, sizeof err) < 0)
    _exit(11);
  char line[PATH_MAX + 32];
  int n = snprintf(line, sizeof line, "%ld %s\n", (long)mg_child_pid(c),
                   mg_child_cgroup_dir(c));
  if (write(fd, line, (size_t)n) != n)
    _exit(12);
  for (;;)
    pause();
}

TEST(stale_group_after_sigkill) {
  sup_start();
  require_cgroup();
  sup_finish();
  snprintf(stale_prefix, sizeof stale_prefix, "stale%ld", (long)getpid());
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    close(pfd[0]);
    doomed_supervisor(pfd[1]);
  }
  close(pfd[1]);
  char line[PATH_MAX + 64] = {0};
  ssize_t got = read(pfd[0], line, sizeof line - 1);
  close(pfd[0]);
  if (got <= 0) {
    kill(helper, SIGKILL);
    waitpid(helper, NULL, 0);
    MG__FAIL("the helper supervisor did not start its child");
  }
  long child = 0;
  char dir[PATH_MAX];
  ASSERT_EQ(sscanf(line, "%ld %4095s", &child, dir), 2);
  ASSERT(dir_exists(dir));
  /* wait for the grandchild, then kill the supervisor hard */
  uint64_t end = now_ms() + 5000;
  pid_t pids[8];
  size_t n;
  while ((n = group_pids(dir, pids, 8)) < 2 && now_ms() < end)
    sleep_ms(10);
  ASSERT_EQ(n, 2);
  pid_t grandchild = pids[0] == (pid_t)child ? pids[1] : pids[0];
  ASSERT_EQ(kill(helper, SIGKILL), 0);
  ASSERT_EQ(waitpid(helper, NULL, 0), helper);
  pid_t cp = (pid_t)child;
  ASSERT(procs_dead_within(&cp, 1, 1000)); /* PR_SET_PDEATHSIG */
  ASSERT(!proc_dead(grandchild));          /* escaped: setsid */
  ASSERT(dir_exists(dir));                 /* the stale group */

  /* the next supervisor removes it, killing what it holds, and says so */
  FILE *logf = tmpfile();
  ASSERT(logf != NULL);
  mg_logger *lg = mg_logger_new(logf, MG_LOG_TEXT, MG_LOG_INFO);
  ASSERT_EQ(uv_loop_init(&loop), 0);
  loop_open = 1;
  mg_sup_opts o;
  memset(&o, 0, sizeof o);
  o.loop = &loop;
  o.logger = lg;
  o.group_prefix = stale_prefix;
  int rc = mg_sup_new(&o, &sup, err, sizeof err);
  ASSERT_EQ(rc, 0);
  ASSERT(!dir_exists(dir));
  ASSERT(procs_dead_within(&grandchild, 1, 1000));
  sup_finish();
  mg_logger_free(lg);
  fflush(logf);
  rewind(logf);
  char text[8192];
  size_t tl = fread(text, 1, sizeof text - 1, logf);
  text[tl] = '\0';
  fclose(logf);
  ASSERT_CONTAINS(text, "stale_cgroups_removed");
  ASSERT_CONTAINS(text, "removed=1");
  ASSERT(!strstr(text, "enforce_chosen")); /* nothing resolved at start */
}

/* A limit above the effective memory is refused after the mode is
 * resolved, for cgroup and for auto (which made its group first): no
 * group is left. */
TEST(limit_rule_leaves_no_group) {
  sup_start();
  require_cgroup();
  char *const argv[] = {"true", NULL};
  mg_enforce modes[] = {MG_ENFORCE_CGROUP, MG_ENFORCE_AUTO};
  for (int i = 0; i < 2; i++) {
    mg_child_opts o = child_opts("huge", argv);
    o.enforce = modes[i];
    o.limit_bytes = (uint64_t)100 << 40;
    mg_child *c = (mg_child *)1;
    ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), MG_ELIMIT);
    ASSERT(c == NULL);
    ASSERT_CONTAINS(err, "limit: Memory limit validation failed: Requested "
                         "limit 100.00 TiB exceeds total system memory");
    mg_cgroup_info info;
    ASSERT_EQ(mg_cgroup_detect(NULL, &info, NULL, 0), 0);
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/mgrun-%ld-huge", info.dir, (long)getpid());
    ASSERT(!dir_exists(dir));
  }
  sup_finish();
}

/* The eventfds this process holds (what a threshold registration makes;
 * other descriptors come and go with the process, the loop, a popen). */
static int count_eventfds(void) {
  char dir[64], path[128], link[128];
  snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)getpid());
  int n = 0;
  for (int fd = 0; fd < 4096; fd++) {
    snprintf(path, sizeof path, "%s/%d", dir, fd);
    ssize_t k = readlink(path, link, sizeof link - 1);
    if (k <= 0)
      continue;
    link[k] = '\0';
    n += strcmp(link, "anon_inode:[eventfd]") == 0;
  }
  return n;
}

typedef struct kern_wait {
  mg_child *c;
  int want;
} kern_wait;

static int all_kernel(void *arg) {
  kern_wait *k = arg;
  mg_child_watching w;
  mg_child_watching_get(k->c, &w);
  return w.thresholds_kernel == k->want && w.thresholds_sampled == 0;
}

/* A child in a 64 MiB group of its own with `n` thresholds. */
static mg_child_opts th_opts(const char *name, char *const *argv,
                             const mg_threshold *th, size_t n) {
  mg_child_opts o = child_opts(name, argv);
  o.enforce = MG_ENFORCE_CGROUP;
  o.limit_bytes = 64 * MIB;
  o.thresholds = th;
  o.nthresholds = n;
  return o;
}

/* v1 threshold eventfds are registered in the thread pool (each
 * registration waits for an RCU grace period): the spawn returns at once
 * with them sampled; once registered they are the kernel's. A run that
 * ends (or a watch stopped) while its registrations are under way leaves
 * no eventfd behind. */
TEST(threshold_registration_off_the_loop) {
  int fds0 = count_eventfds(); /* before the loop and the supervisor */
  sup_start();
  require_cgroup();
  mg_cgroup_info info;
  if (mg_cgroup_detect(NULL, &info, NULL, 0) < 0 ||
      info.version != MG_CGROUP_V1) {
    fprintf(stderr, "  (cgroup v2: thresholds are sampled, nothing to "
                    "register)\n");
    sup_finish();
    return;
  }
  mg_threshold th[MG_SUP_THRESHOLDS_MAX];
  for (int i = 0; i < 48; i++)
    th[i] = (mg_threshold){0, (i + 1) / 50.0, 0};
  /* ends at once: its registrations come back for a run that is over */
  char *const quick[] = {"true", NULL};
  rec rq = {0};
  mg_child_events eq = rec_events(&rq);
  mg_child_opts oq = th_opts("quick", quick, th, 48);
  mg_child *cq;
  ASSERT_EQ(mg_child_spawn(sup, &oq, &eq, &cq, err, sizeof err), 0);
  /* lives: its 48 and the warn line become kernel notifications */
  char *const slow[] = {"sleep", "3", NULL};
  rec rs = {0};
  mg_child_events es = rec_events(&rs);
  mg_child_opts os = th_opts("slow", slow, th, 48);
  mg_child *cs;
  uint64_t t0 = now_ms();
  ASSERT_EQ(mg_child_spawn(sup, &os, &es, &cs, err, sizeof err), 0);
  uint64_t spawn_ms = now_ms() - t0;
  mg_child_watching w;
  mg_child_watching_get(cs, &w);
  fprintf(stderr,
          "  spawn with 49 thresholds: %llu ms; %d kernel, %d "
          "sampled at once\n",
          (unsigned long long)spawn_ms, w.thresholds_kernel,
          w.thresholds_sampled);
  ASSERT_EQ(w.thresholds_kernel + w.thresholds_sampled, 49);
  /* a watch stopped while its registration is under way */
  mg_threshold one = {5 * MIB, 0, 0};
  int id = 0;
  ASSERT_EQ(mg_child_watch(cs, &one, &id, err, sizeof err), 0);
  ASSERT_EQ(mg_child_unwatch(cs, id), 0);
  kern_wait k = {cs, 49};
  ASSERT(run_until(all_kernel, &k, 20000));
  ASSERT(run_until(rec_closed, &rq, 20000));
  ASSERT(run_until(rec_closed, &rs, 20000));
  mg_child_release(cq);
  mg_child_release(cs);
  sup_finish();
  ASSERT_EQ(count_eventfds(), fds0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  SUP_RUN(cgroup_oom_kill_and_sibling);
  SUP_RUN(cgroup_limit_before_first_instruction);
  SUP_RUN(shutdown_setsid_grandchildren);
  SUP_RUN(stale_group_after_sigkill);
  SUP_RUN(limit_rule_leaves_no_group);
  SUP_RUN(threshold_registration_off_the_loop);
  return mg_test_report();
}
