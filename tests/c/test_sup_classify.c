/* test_sup_classify.c — why a run ended (mg__sup_classify) for every
 * reason and both cgroup versions, the allocation-failure texts, and the
 * supervisor on a cgroup v2 fixture tree (detection, `auto` trying the
 * child's own group and falling back with the reason, stale-group
 * removal, the v2 counters read back through mg_cgroup_stats_read). No
 * real cgroup v2 machine is needed. */
#include "test_sup_util.h"

#include "supervisor/mg__sup.h"

#define EXITED(code) ((code) << 8)
#define SIGNALED(sig) (sig)

static mg__sup_run base_run(mg_enforce e, uint64_t limit) {
  mg__sup_run r;
  memset(&r, 0, sizeof r);
  r.enforce = e;
  r.limit_bytes = limit;
  return r;
}

static mg_child_exit classify(const mg__sup_run *r) {
  mg_child_exit e;
  memset(&e, 0, sizeof e);
  mg__sup_classify(r, &e);
  return e;
}

TEST(exit_and_signal) {
  mg__sup_run r = base_run(MG_ENFORCE_NONE, 0);
  r.status = EXITED(0);
  mg_child_exit e = classify(&r);
  ASSERT_EQ(e.code, 0);
  ASSERT_EQ(e.signal, 0);
  ASSERT_EQ(e.reason, MG_EXIT_EXIT);
  r.status = EXITED(42);
  e = classify(&r);
  ASSERT_EQ(e.code, 42);
  ASSERT_STR_EQ(e.detail, "exited with code 42");
  r.status = SIGNALED(SIGTERM);
  e = classify(&r);
  ASSERT_EQ(e.code, -1);
  ASSERT_EQ(e.signal, SIGTERM);
  ASSERT_EQ(e.reason, MG_EXIT_SIGNAL);
  ASSERT_STR_EQ(e.detail, "killed by SIGTERM (15)");
  r.status = SIGNALED(SIGKILL);
  r.killed_by_us = 1;
  e = classify(&r);
  ASSERT_CONTAINS(e.detail, "sent by the supervisor after the grace period");
  r = base_run(MG_ENFORCE_NONE, 0);
  r.reaped_elsewhere = 1;
  e = classify(&r);
  ASSERT_EQ(e.code, -1);
  ASSERT_EQ(e.reason, MG_EXIT_EXIT);
  ASSERT_CONTAINS(e.detail, "reaped outside the supervisor");
}

TEST(oom_v1_and_v2) {
  mg__sup_run r = base_run(MG_ENFORCE_CGROUP, 64 * MIB);
  r.has_cgroup = 1;
  r.cg_end_ok = 1;
  r.cgroup_dir = "/sys/fs/cgroup/x/mgrun-1-a";
  r.cgroup_version = MG_CGROUP_V2;
  r.has_oom_kill = 1;
  r.cg_end.oom_kills = 1;
  r.cg_end.has_peak = 1;
  r.cg_end.peak_bytes = 64 * MIB;
  r.max_used_bytes = 50 * MIB;
  r.status = SIGNALED(SIGKILL);
  mg_child_exit e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_OOM);
  ASSERT_EQ(e.signal, SIGKILL);
  ASSERT_CONTAINS(e.detail, "oom_kill 0 -> 1 in /sys/fs/cgroup/x/mgrun-1-a");
  ASSERT_CONTAINS(e.detail, "cgroup v2 limit 64.00 MiB");
  ASSERT_U64_EQ(e.peak_bytes, 64 * MIB); /* the group's peak wins */

  /* the counter grew but the main process exited (a wrapper whose child
   * was killed) at its limit: limit (the margin rule), and the detail
   * says a process of the group was OOM-killed */
  r.status = EXITED(137);
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_EQ(e.code, 137);
  ASSERT_CONTAINS(e.detail, "within 2% (or 1 MiB) of the limit");
  ASSERT_CONTAINS(e.detail, "another process of the group was OOM-killed");
  /* …and far below its limit: exit */
  r.cg_end.peak_bytes = 20 * MIB;
  r.max_used_bytes = 20 * MIB;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_EXIT);
  ASSERT_CONTAINS(e.detail, "another process of the group was OOM-killed");
  r.cg_end.peak_bytes = 64 * MIB;
  r.max_used_bytes = 50 * MIB;

  /* SIGKILL without the counter moving: at the limit, the limit's doing;
   * below it, a signal */
  r.status = SIGNALED(SIGKILL);
  r.cg_end.oom_kills = 0;
  r.cg_end.oom_events = 3; /* failcnt: hit the limit, reclaimed */
  r.cgroup_version = MG_CGROUP_V1;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  r.cg_end.peak_bytes = 40 * MIB;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_SIGNAL);

  /* v1 kernel without oom_kill in memory.oom_control: failcnt stands in */
  r.has_oom_kill = 0;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_OOM);
  ASSERT_CONTAINS(e.detail, "memory.failcnt 0 -> 3");

  /* stats unreadable: no claim */
  r.cg_end_ok = 0;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_SIGNAL);
  ASSERT_U64_EQ(e.peak_bytes, 50 * MIB); /* the highest sample */
}

TEST(limit_heuristics) {
  mg__sup_run r = base_run(MG_ENFORCE_DATA, 100 * MIB);
  r.status = EXITED(1);
  r.max_used_bytes = 60 * MIB;
  mg_child_exit e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_EQ(e.code, 1);
  ASSERT_CONTAINS(e.detail, "exit code 1 with sampled VmData peak 60.00 MiB");
  ASSERT_CONTAINS(e.detail, "60% of RLIMIT_DATA 100.00 MiB");
  ASSERT_CONTAINS(e.detail, "heuristic");
  r.max_used_bytes = 10 * MIB; /* far below: not blamed */
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_EXIT);
  r.output_marker = "cannot allocate memory"; /* …unless it says so */
  r.output_file = "/tmp/err.log";
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(e.detail, "(/tmp/err.log) says \"cannot allocate memory\"");
  r.status = EXITED(0); /* success is never a limit */
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_EXIT);
  r.output_marker = NULL;
  r.max_used_bytes = 99 * MIB;
  r.status = SIGNALED(SIGSEGV);
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_EQ(e.signal, SIGSEGV);
  r.status = SIGNALED(SIGABRT);
  ASSERT_EQ(classify(&r).reason, MG_EXIT_LIMIT);
  r.status = SIGNALED(SIGBUS);
  ASSERT_EQ(classify(&r).reason, MG_EXIT_LIMIT);
  r.status = SIGNALED(SIGTRAP); /* V8's end after a refused allocation */
  ASSERT_EQ(classify(&r).reason, MG_EXIT_LIMIT);
  /* within the margin of the limit: limit, whatever the signal… */
  r.status = SIGNALED(SIGKILL);
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(e.detail, "99.0% of its RLIMIT_DATA 100.00 MiB");
  /* …but not below it, not for a deliberate stop, not for our own kill */
  r.max_used_bytes = 90 * MIB;
  ASSERT_EQ(classify(&r).reason, MG_EXIT_SIGNAL);
  r.max_used_bytes = 99 * MIB;
  r.status = SIGNALED(SIGTERM);
  ASSERT_EQ(classify(&r).reason, MG_EXIT_SIGNAL);
  r.status = SIGNALED(SIGKILL);
  r.killed_by_us = 2;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_SIGNAL);
  ASSERT_CONTAINS(e.detail, "sent by the supervisor (a kill)");
  r.killed_by_us = 0;
  /* the group's peak stands in for a usage no sample saw (a fast hog that
   * exits 3 between two samples) */
  r.max_used_bytes = 0;
  r.status = EXITED(3);
  r.has_cgroup = 1;
  r.cg_end_ok = 1;
  r.cg_end.has_peak = 1;
  r.cg_end.peak_bytes = 100 * MIB + 470 * 1024;
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(e.detail, "(the group's peak)");
  r.has_cgroup = 0;
  r.cg_end_ok = 0;
  r.cg_end.has_peak = 0;
  r.max_used_bytes = 99 * MIB;
  r.enforce = MG_ENFORCE_AS;
  r.status = EXITED(3);
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(e.detail, "(the highest sample)");
  ASSERT_CONTAINS(e.detail, "RLIMIT_AS");
  r.max_used_bytes = 70 * MIB; /* the heuristic names VmSize */
  e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(e.detail, "VmSize");
  r.max_used_bytes = 99 * MIB;
  r.enforce = MG_ENFORCE_NONE; /* watch only: no limit to blame */
  ASSERT_EQ(classify(&r).reason, MG_EXIT_EXIT);
  r.enforce = MG_ENFORCE_CGROUP; /* at its cgroup limit: the margin rule */
  ASSERT_EQ(classify(&r).reason, MG_EXIT_LIMIT);
  r.max_used_bytes = 70 * MIB; /* cgroups have no 50 % heuristic */
  ASSERT_EQ(classify(&r).reason, MG_EXIT_EXIT);

  /* peak in watch-only mode includes VmHWM */
  r = base_run(MG_ENFORCE_NONE, 0);
  r.max_used_bytes = 10 * MIB;
  r.last_hwm_bytes = 12 * MIB;
  ASSERT_U64_EQ(classify(&r).peak_bytes, 12 * MIB);
}

TEST(markers) {
  static const char *hits[] = {
      "mg-hog: allocation of 1.00 MiB failed: Cannot allocate memory\n",
      "terminate called after throwing an instance of 'std::bad_alloc'",
      "Traceback (most recent call last):\nMemoryError\n",
      "memory allocation of 1048576 bytes failed\n",
      "fatal error: runtime: out of memory\n",
      "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer",
      "#\n# Fatal process OOM in Failed to reserve virtual memory for "
      "CodeRange\n#\n",
      "RuntimeError: CUDA error: out of memory",
      "cudaErrorMemoryAllocation",
  };
  for (size_t i = 0; i < sizeof hits / sizeof hits[0]; i++)
    ASSERT(mg__sup_find_marker(hits[i], strlen(hits[i])) != NULL);
  const char *s = "CANNOT ALLOCATE MEMORY";
  ASSERT_STR_EQ(mg__sup_find_marker(s, strlen(s)), "cannot allocate memory");
  s = "all good, exiting";
  ASSERT(mg__sup_find_marker(s, strlen(s)) == NULL);
  s = "cannot allocate mem"; /* cut short: no match past the length */
  ASSERT(mg__sup_find_marker(s, 12) == NULL);
  /* a runtime's own heap limit is told apart */
  s = "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap "
      "out of memory";
  ASSERT(mg__sup_find_marker(s, strlen(s)) != NULL);
  ASSERT_STR_EQ(mg__sup_find_own_limit(s, strlen(s)), "reached heap limit");
  s = "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap "
      "space";
  ASSERT(mg__sup_find_own_limit(s, strlen(s)) != NULL);
  s = "terminate called after throwing an instance of 'std::bad_alloc'";
  ASSERT(mg__sup_find_own_limit(s, strlen(s)) == NULL);
  mg__sup_run r = base_run(MG_ENFORCE_DATA, 2048 * MIB);
  r.status = SIGNALED(SIGABRT);
  r.max_used_bytes = 100 * MIB;
  r.output_marker = "out of memory";
  r.own_limit = "reached heap limit";
  r.output_file = "its stderr";
  mg_child_exit e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_SIGNAL);
  ASSERT_CONTAINS(e.detail, "a heap limit of its own (\"reached heap limit\")");
  r.own_limit = NULL; /* the same text without it: the limit */
  ASSERT_EQ(classify(&r).reason, MG_EXIT_LIMIT);
  /* cgroup: the group's exact peak far below the limit clears it */
  r = base_run(MG_ENFORCE_CGROUP, 1024 * MIB);
  r.status = EXITED(1);
  r.output_marker = "bad_alloc";
  r.has_cgroup = 1;
  r.cg_end_ok = 1;
  r.cg_end.has_peak = 1;
  r.cg_end.peak_bytes = 100 * MIB;
  ASSERT_EQ(classify(&r).reason, MG_EXIT_EXIT);
  r.cg_end.peak_bytes = 900 * MIB;
  ASSERT_EQ(classify(&r).reason, MG_EXIT_LIMIT);
  char name[16];
  ASSERT_STR_EQ(mg__sup_signame(SIGSEGV, name, sizeof name), "SIGSEGV");
  ASSERT_STR_EQ(mg__sup_signame(SIGWINCH, name, sizeof name), "SIGWINCH");
  ASSERT_STR_EQ(mg__sup_signame(40, name, sizeof name), "signal");
}

/* --------------------------------------------------- cgroup v2 fixture */

#define CG "fs/sys/fs/cgroup"
#define SLICE CG "/mgrun.slice"

/* A unified (v2-only) machine: this process in /mgrun.slice, memory
 * delegated to its children. */
static void build_v2_tree(void) {
  snprintf(fx_root, sizeof fx_root, "%s", tmp_path("v2"));
  fx_mkdirs("proc/self");
  fx_mkdirs(SLICE);
  fx_put("proc/self/mountinfo",
         "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc "
         "proc rw\n"
         "30 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 "
         "- cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n");
  fx_put("proc/self/cgroup", "0::/mgrun.slice\n");
  fx_put("proc/meminfo",
         "MemTotal:       16777216 kB\nMemFree:         8388608 kB\n"
         "MemAvailable:    8388608 kB\n");
  fx_put(CG "/cgroup.controllers", "cpuset cpu io memory pids\n");
  fx_put(CG "/cgroup.subtree_control", "memory pids\n");
  fx_put(SLICE "/cgroup.controllers", "memory pids\n");
  fx_put(SLICE "/cgroup.subtree_control", "memory\n");
  fx_put(SLICE "/memory.max", "max\n");
  fx_put(SLICE "/cgroup.procs", "1\n");
  /* a stale group of a dead run, one of a live run (ours), a stranger */
  fx_mkdirs(SLICE "/mgrun-2147483646-old");
  char ours[128];
  snprintf(ours, sizeof ours, SLICE "/mgrun-%ld-live", (long)getpid());
  fx_mkdirs(ours);
  fx_mkdirs(SLICE "/other-2147483646-x");
}

TEST(v2_fixture_supervisor) {
  build_v2_tree();
  mg_paths paths = fx_paths();
  ASSERT_EQ(sup_start_logged(&paths, NULL), 0);

  /* detected as v2, nothing resolved yet. `auto` tries the child's own
   * group: a plain directory has no memory.max, so it falls back, and says
   * why */
  char *const argv[] = {"true", NULL};
  mg_child_opts co = child_opts("v2auto", argv);
  co.limit_bytes = 64 * MIB;
  mg_child *c;
  int src = mg_child_spawn(sup, &co, NULL, &c, err, sizeof err);
  if (src != 0)
    fprintf(stderr, "spawn: %s\n", err);
  ASSERT_EQ(src, 0);
  ASSERT(mg_child_enforce(c) != MG_ENFORCE_CGROUP);
  ASSERT(mg_child_cgroup_dir(c) == NULL);
  char p[PATH_MAX + 128];
  snprintf(p, sizeof p, "%s/" SLICE "/mgrun-%ld-v2auto", fx_root,
           (long)getpid());
  ASSERT(!dir_exists(p)); /* the failed group is gone */
  mg_child_release(c);
  const char *why;
  mg_enforce e = mg_sup_auto_enforce(sup, &why);
  ASSERT(e != MG_ENFORCE_CGROUP);
  ASSERT_CONTAINS(why, "no writable cgroup");
  ASSERT_CONTAINS(why, "memory.max");
  ASSERT_CONTAINS(why, "mgrun.slice");
  co = child_opts("v2child", argv);
  co.enforce = MG_ENFORCE_CGROUP;
  co.limit_bytes = 64 * MIB;
  ASSERT_EQ(mg_child_spawn(sup, &co, NULL, NULL, err, sizeof err), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "enforce: cgroup not available here: ");
  ASSERT_CONTAINS(err, "memory.max");

  /* stale removal: only the dead run's group went */
  snprintf(p, sizeof p, "%s/" SLICE "/mgrun-2147483646-old", fx_root);
  ASSERT(!dir_exists(p));
  snprintf(p, sizeof p, "%s/" SLICE "/mgrun-%ld-live", fx_root, (long)getpid());
  ASSERT(dir_exists(p));
  snprintf(p, sizeof p, "%s/" SLICE "/other-2147483646-x", fx_root);
  ASSERT(dir_exists(p));
  sup_finish();
  const char *text = cap_text();
  ASSERT_CONTAINS(text, "stale_cgroups_removed");
  ASSERT_CONTAINS(text, "removed=1");
  ASSERT_CONTAINS(text, "enforce_chosen name=v2auto enforce=");
  ASSERT_CONTAINS(text, "cgroup=v2");
  ASSERT_EQ(strstr(strstr(text, "enforce_chosen") + 1, "enforce_chosen"),
            NULL); /* once: the explicit mode logs nothing */
  cap_close();
}

/* The v2 counters a run's classification reads: memory.events oom_kill,
 * memory.peak, memory.max — through mg_cgroup_stats_read on a group
 * created in the fixture. */
TEST(v2_fixture_counters) {
  build_v2_tree();
  mg_paths paths = fx_paths();
  mg_cgroup_info info;
  ASSERT_EQ(mg_cgroup_detect(&paths, &info, err, sizeof err), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V2);
  mg_cgroup *cg;
  char name[64];
  snprintf(name, sizeof name, "mgrun-%ld-v2hog", (long)getpid());
  ASSERT_EQ(mg_cgroup_create(&info, NULL, name, &cg, err, sizeof err), 0);
  char rel[PATH_MAX];
  snprintf(rel, sizeof rel, SLICE "/%s", name);
  char f[PATH_MAX + 64];
  snprintf(f, sizeof f, "%s/memory.current", rel);
  fx_put(f, "1048576\n");
  snprintf(f, sizeof f, "%s/memory.peak", rel);
  fx_put(f, "67108864\n");
  snprintf(f, sizeof f, "%s/memory.max", rel);
  fx_put(f, "67108864\n");
  snprintf(f, sizeof f, "%s/memory.events", rel);
  fx_put(f, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n");
  mg__sup_run r = base_run(MG_ENFORCE_CGROUP, 64 * MIB);
  r.has_cgroup = 1;
  r.has_oom_kill = 1;
  r.cgroup_dir = mg_cgroup_dir(cg);
  r.cgroup_version = mg_cgroup_get_version(cg);
  ASSERT_EQ(mg_cgroup_stats_read(cg, &r.cg_start, err, sizeof err), 0);
  fx_put(f, "low 0\nhigh 0\nmax 40\noom 3\noom_kill 1\n");
  ASSERT_EQ(mg_cgroup_stats_read(cg, &r.cg_end, err, sizeof err), 0);
  r.cg_end_ok = 1;
  r.status = SIGNALED(SIGKILL);
  mg_child_exit e = classify(&r);
  ASSERT_EQ(e.reason, MG_EXIT_OOM);
  ASSERT_CONTAINS(e.detail, "oom_kill 0 -> 1");
  ASSERT_CONTAINS(e.detail, "cgroup v2 limit 64.00 MiB");
  ASSERT_CONTAINS(e.detail, name);
  ASSERT_U64_EQ(e.peak_bytes, 64 * MIB);
  mg_cgroup_free(cg);
}

/* A run that died before its first sample still reports a peak: its peak
 * RSS from wait4; a sampled peak wins when there is one. */
TEST(peak_falls_back_to_maxrss) {
  mg__sup_run r = base_run(MG_ENFORCE_DATA, 64 * MIB);
  r.status = EXITED(3);
  r.maxrss_bytes = 3 * MIB;
  mg_child_exit e = classify(&r);
  ASSERT_U64_EQ(e.peak_bytes, 3 * MIB);
  r.max_used_bytes = 10 * MIB;
  e = classify(&r);
  ASSERT_U64_EQ(e.peak_bytes, 10 * MIB);
}

int main(void) {
  RUN(peak_falls_back_to_maxrss);
  SUP_RUN(exit_and_signal);
  SUP_RUN(oom_v1_and_v2);
  SUP_RUN(limit_heuristics);
  SUP_RUN(markers);
  SUP_RUN(v2_fixture_supervisor);
  SUP_RUN(v2_fixture_counters);
  return mg_test_report();
}
