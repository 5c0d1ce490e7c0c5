/* test_sup_startup.c — what the supervisor does at start and what each
 * mode probes: mg_sup_new forks no probe child and creates no probe group;
 * a spawn probes only what its mode needs (none and cgroup: no probe
 * child; data and as: one for their resource, once per process); `auto`
 * tries the child's own group, never a probe group; only `auto` logs
 * enforce_chosen; a bad cgroup_parent fails mg_sup_new with its code;
 * stale groups of dead runs are removed (and counted) at mg_sup_new;
 * shutdown is logged only with children left.
 *
 * Probe children are counted by SIGCHLD (the rlimit cache is cold when
 * this executable starts, so the first test must stay first), groups by
 * inotify on the parent directory. The parts that need a writable cgroup
 * run last and are skipped without one (a failure under
 * MG_REQUIRE_CGROUP=1). */
#include "test_sup_util.h"

#include <sys/inotify.h>

static char *const true_argv[] = {"true", NULL};
static char *const sleep_argv[] = {"sleep", "5", NULL};

static char no_cgroup_why[1024]; /* set when the cgroup parts could not run */

/* ----------------------------------------------- what each mode probes */

static volatile sig_atomic_t chld_count;

static void on_chld(int s) {
  (void)s;
  chld_count++;
}

/* Count SIGCHLD from now on. libuv takes the signal over at a
 * supervisor's first spawn (after the mode's probes) and gives it back
 * when the supervisor is freed. */
static void count_children(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
  chld_count = 0;
}

static int ino = -1; /* inotify on the default parent of child groups */

/* Is `name` one of this process's groups (mgrun-<pid>-…, mgrun-probe-<pid>)?
 * Other test executables create theirs in the same directory meanwhile. */
static int ours(const char *name) {
  char mid[32], end[32];
  snprintf(mid, sizeof mid, "-%ld-", (long)getpid());
  snprintf(end, sizeof end, "-%ld", (long)getpid());
  size_t nl = strlen(name), el = strlen(end);
  return strstr(name, mid) || (nl >= el && strcmp(name + nl - el, end) == 0);
}

/* Our names created in the watched directory since the last call, joined
 * by ' ' (static buffer; "" without a watch). */
static const char *created(void) {
  static char names[4096];
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  names[0] = '\0';
  for (ssize_t n; ino >= 0 && (n = read(ino, buf, sizeof buf)) > 0;)
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)(void *)p;
      if ((ev->mask & IN_CREATE) && ev->len && ours(ev->name)) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? " " : "", ev->name);
      }
      p += sizeof *ev + ev->len;
    }
  return names;
}

/* A fresh supervisor and one child `name` in mode `e` with a 64 MiB limit:
 * `probes` probe children are forked before it, and the group directories
 * `made` (space-separated, "" for none) created. Returns the spawn's
 * code; on success the child has run and the log is checked:
 * enforce_chosen once for auto (its own group), never otherwise. */
static int one_mode(const char *name, mg_enforce e, int probes,
                    const char *made) {
  count_children();
  ASSERT_EQ(sup_start_logged(NULL, NULL), 0);
  ASSERT_EQ(chld_count, 0);     /* mg_sup_new: no probe child… */
  ASSERT_STR_EQ(created(), ""); /* …and no probe group */
  mg_child_opts o = child_opts(name, true_argv);
  o.enforce = e;
  o.limit_bytes = 64 * MIB;
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child *c = NULL;
  int rc = mg_child_spawn(sup, &o, &ev, &c, err, sizeof err);
  if (chld_count != probes)
    MG__FAIL("%s: %d probe children forked, wanted %d", name, (int)chld_count,
             probes);
  if (rc < 0) {
    sup_finish();
    return rc;
  }
  ASSERT_STR_EQ(created(), made);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 0);
  mg_enforce got = mg_child_enforce(c);
  mg_child_release(c);
  sup_finish();
  const char *text = cap_text();
  const char *chosen = strstr(text, "enforce_chosen");
  if (e != MG_ENFORCE_AUTO) {
    ASSERT(chosen == NULL);
    ASSERT_EQ(got, e);
    return 0;
  }
  ASSERT(chosen != NULL);
  ASSERT(strstr(chosen + 1, "enforce_chosen") == NULL); /* once */
  char want[128];
  snprintf(want, sizeof want,
           "enforce_chosen name=%s enforce=cgroup why=\"its own cgroup ", name);
  ASSERT_CONTAINS(text, want);
  ASSERT_EQ(got, MG_ENFORCE_CGROUP);
  return 0;
}

TEST(probes_only_what_the_mode_needs) {
  mg_cgroup_info info;
  ASSERT_EQ(mg_cgroup_detect(NULL, &info, err, sizeof err), 0);
  if (info.version != MG_CGROUP_NONE) {
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ASSERT_GE(ino, 0);
    ASSERT_GE(inotify_add_watch(ino, info.dir, IN_CREATE), 0);
  }
  mg_rlimit_support rl;
  /* none, data, as: no probe group, but a group of its own to watch
   * (without a limit) where one can be made */
  char g[5][128];
  const char *names[5] = {"m-none", "m-data", "m-data2", "m-as", "m-as2"};
  for (int i = 0; i < 5; i++)
    snprintf(g[i], sizeof g[i], "mgrun-%ld-%s", (long)getpid(), names[i]);
  int watch = info.version != MG_CGROUP_NONE;
  ASSERT_EQ(one_mode("m-none", MG_ENFORCE_NONE, 0, watch ? g[0] : ""), 0);
  /* data: one probe child, for RLIMIT_DATA only; cached afterwards */
  int rc = one_mode("m-data", MG_ENFORCE_DATA, 1, watch ? g[1] : "");
  ASSERT(rc == 0 || rc == MG_ENOTENFORCED);
  ASSERT_EQ(one_mode("m-data2", MG_ENFORCE_DATA, 0, watch ? g[2] : ""), rc);
  rc = one_mode("m-as", MG_ENFORCE_AS, 1, watch ? g[3] : "");
  ASSERT(rc == 0 || rc == MG_ENOTENFORCED);
  ASSERT_EQ(one_mode("m-as2", MG_ENFORCE_AS, 0, watch ? g[4] : ""), rc);
  mg_rlimit_probe(&rl); /* both cached: no child */

  /* cgroup and auto: the child's own group and nothing else */
  char group[128];
  snprintf(group, sizeof group, "mgrun-%ld-m-cgroup", (long)getpid());
  rc = one_mode("m-cgroup", MG_ENFORCE_CGROUP, 0, group);
  if (rc == MG_ENOTSUP) {
    snprintf(no_cgroup_why, sizeof no_cgroup_why, "%s", err);
  } else {
    ASSERT_EQ(rc, 0);
    snprintf(group, sizeof group, "mgrun-%ld-m-auto", (long)getpid());
    ASSERT_EQ(one_mode("m-auto", MG_ENFORCE_AUTO, 0, group), 0);
    /* the full probe of mg_sup_auto_enforce makes a probe group: the
     * watch sees what there is to see */
    ASSERT_EQ(sup_start_logged(NULL, NULL), 0);
    ASSERT_EQ(mg_sup_auto_enforce(sup, NULL), MG_ENFORCE_CGROUP);
    char probe[64];
    snprintf(probe, sizeof probe, "mgrun-probe-%ld", (long)getpid());
    ASSERT_STR_EQ(created(), probe);
    sup_finish();
  }
  signal(SIGCHLD, SIG_DFL);
  if (ino >= 0)
    close(ino);
  ino = -1;
}

/* ------------------------------------------------------ cgroup_parent */

#define MEM "fs/sys/fs/cgroup/memory"

/* A v1 machine with this process in /box. */
static mg_paths build_v1(const char *name) {
  static char proc[PATH_MAX + 16], fs[PATH_MAX + 16];
  snprintf(fx_root, sizeof fx_root, "%s", tmp_path(name));
  fx_mkdirs("proc/self");
  fx_mkdirs(MEM "/box/sub");
  fx_put("proc/self/mountinfo", "34 30 0:31 / /sys/fs/cgroup/memory rw,nosuid "
                                "- cgroup cgroup rw,memory\n");
  fx_put("proc/self/cgroup", "4:memory:/box\n");
  fx_put(MEM "/memory.limit_in_bytes", "9223372036854771712\n");
  fx_put(MEM "/box/memory.limit_in_bytes", "9223372036854771712\n");
  snprintf(proc, sizeof proc, "%s/proc", fx_root);
  snprintf(fs, sizeof fs, "%s/fs", fx_root);
  mg_paths p = {proc, fs};
  return p;
}

TEST(bad_cgroup_parent) {
  mg_paths paths = build_v1("parent");
  char dir[PATH_MAX + 64];
  ASSERT_EQ(sup_start_logged(&paths, "/nope"), -ENOENT);
  ASSERT_STR_EQ(err, "cgroup_parent: '/nope' does not exist");
  ASSERT(sup == NULL);
  snprintf(dir, sizeof dir, "%s/" MEM "/box/memory.limit_in_bytes", fx_root);
  ASSERT_EQ(sup_start_logged(&paths, dir), -ENOTDIR);
  ASSERT_CONTAINS(err, "is not a directory");
  ASSERT_EQ(sup_start_logged(&paths, "/tmp"), -EINVAL);
  ASSERT_CONTAINS(err, "cgroup_parent: '/tmp' is not inside the cgroup v1 "
                       "memory hierarchy");
  snprintf(dir, sizeof dir, "%s/" MEM "/box/sub", fx_root);
  ASSERT_EQ(sup_start_logged(&paths, dir), 0);
  sup_finish();
  /* no memory controller at all */
  char proc[PATH_MAX + 64];
  snprintf(proc, sizeof proc, "%s/cgroup/none/proc", MG_TEST_FIXTURES);
  mg_paths none = {proc, NULL};
  ASSERT_EQ(sup_start_logged(&none, "/tmp"), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "no cgroup memory controller is mounted");
  ASSERT_EQ(sup_start_logged(&none, NULL), 0); /* fine without a parent */
  sup_finish();
  cap_close();
}

/* Stale groups <prefix>-<deadpid>-* under the parent go at mg_sup_new,
 * and the log says how many; live ones, strangers and other parents stay. */
TEST(stale_groups_removed_at_start) {
  mg_paths paths = build_v1("stale");
  fx_mkdirs(MEM "/box/sub/mgrun-2147483646-old");
  fx_mkdirs(MEM "/box/sub/mgrun-2147483645-older");
  char live[128];
  snprintf(live, sizeof live, MEM "/box/sub/mgrun-%ld-live", (long)getpid());
  fx_mkdirs(live);
  fx_mkdirs(MEM "/box/sub/other-2147483646-x");
  fx_mkdirs(MEM "/box/mgrun-2147483646-elsewhere");
  char parent[PATH_MAX + 64], p[PATH_MAX + 128];
  snprintf(parent, sizeof parent, "%s/" MEM "/box/sub", fx_root);
  ASSERT_EQ(sup_start_logged(&paths, parent), 0);
  snprintf(p, sizeof p, "%s/mgrun-2147483646-old", parent);
  ASSERT(!dir_exists(p));
  snprintf(p, sizeof p, "%s/mgrun-2147483645-older", parent);
  ASSERT(!dir_exists(p));
  snprintf(p, sizeof p, "%s/%s", fx_root, live);
  ASSERT(dir_exists(p));
  snprintf(p, sizeof p, "%s/other-2147483646-x", parent);
  ASSERT(dir_exists(p));
  snprintf(p, sizeof p, "%s/" MEM "/box/mgrun-2147483646-elsewhere", fx_root);
  ASSERT(dir_exists(p));
  sup_finish();
  char want[PATH_MAX + 128];
  snprintf(want, sizeof want,
           " info  stale_cgroups_removed parent=%s prefix=mgrun- removed=2",
           parent);
  ASSERT_CONTAINS(cap_text(), want);
  ASSERT(!strstr(cap_text(), "enforce_chosen"));
  cap_close();
}

/* ------------------------------------------------------------ shutdown */

static void shutdown_from_exit(mg_child *c, const mg_child_exit *e, rec *r) {
  (void)c;
  (void)e;
  (void)r;
  mg_sup_shutdown(sup, on_done, &done_calls);
}

/* "shutdown children=N" counts what still runs or waits to restart, and
 * is not logged when nothing does (a policy that exits from on_exit). */
TEST(shutdown_counts_what_is_left) {
  ASSERT_EQ(sup_start_logged(NULL, NULL), 0);
  mg_child_opts o = child_opts("sleeper", sleep_argv);
  o.grace_ms = 0; /* SIGKILL at once */
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, NULL, err, sizeof err), 0);
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  o = child_opts("quick", true_argv);
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_LT(sup_finish(), 1000);
  ASSERT_CONTAINS(cap_text(), " info  shutdown children=1\n");

  ASSERT_EQ(sup_start_logged(NULL, NULL), 0);
  rec r2 = {0};
  r2.after_exit = shutdown_from_exit;
  ev = rec_events(&r2);
  done_calls = 0;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(done_calls, 1);
  mg_sup_free(sup);
  sup = NULL;
  ASSERT_EQ(uv_loop_close(&loop), 0);
  loop_open = 0;
  const char *text = cap_text();
  ASSERT_CONTAINS(text, "shutdown_done");
  ASSERT(!strstr(text, " shutdown children"));
  cap_close();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  SUP_RUN(probes_only_what_the_mode_needs); /* first: a cold rlimit cache */
  SUP_RUN(bad_cgroup_parent);
  SUP_RUN(stale_groups_removed_at_start);
  SUP_RUN(shutdown_counts_what_is_left);
  cap_close();
  if (no_cgroup_why[0] && mg__test_failed_total == 0)
    SKIP_CGROUP("the cgroup parts did not run: %s", no_cgroup_why);
  return mg_test_report();
}
