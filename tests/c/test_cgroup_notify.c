/* test_cgroup_notify.c — the kernel's notifications about a group, for
 * real (cgroup v1 usage thresholds in both directions, the OOM eventfd,
 * memory.pressure_level, PSI triggers with their window fallback) and,
 * against fixture directories, the cgroup v2 side (memory.events opened
 * for polling, cgroup.freeze). The live part is skipped (failed under
 * MG_REQUIRE_CGROUP=1) without a writable v1 memory hierarchy; every
 * group made is removed at exit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mg/mg_cgroup.h"
#include "mg/mg_error.h"
#include "mg/mg_psi.h"
#include "mg_test.h"

#define MIB (UINT64_C(1) << 20)

static mg_cgroup_info info;
static char err[2048];
static mg_cgroup *group;
static pid_t child;
static char fixture[PATH_MAX];

static void cleanup(void) {
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  if (group) {
    mg_cgroup_kill_all(group, 1000);
    mg_cgroup_remove(group, NULL, 0);
    mg_cgroup_free(group);
  }
  if (fixture[0]) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixture);
    if (system(cmd) != 0)
      fprintf(stderr, "cleanup: %s failed\n", cmd);
  }
}

/* Wait up to ms for POLLIN (or `events`) on fd: 1 ready, 0 timeout. */
static int ready(int fd, short events, int ms) {
  struct pollfd p = {fd, events, 0};
  int r;
  do {
    r = poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & events);
}

static uint64_t usage(void) {
  uint64_t cur = 0;
  ASSERT_EQ(mg_cgroup_usage_read(group, &cur, NULL, NULL, err, sizeof err), 0);
  return cur;
}

/* A child in the group that touches `mib`, signals on `up`, waits for a
 * byte on `go`, frees it all, signals again and sleeps. */
static pid_t grow_then_free(size_t mib, int up, int go) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  size_t len = mib * MIB;
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    _exit(4);
  memset(p, 1, len);
  char c = 'u';
  if (write(up, &c, 1) != 1 || read(go, &c, 1) != 1)
    _exit(5);
  munmap(p, len);
  if (write(up, &c, 1) != 1)
    _exit(6);
  for (;;)
    pause();
}

TEST(threshold_fires_both_ways) {
  char name[64];
  snprintf(name, sizeof name, "mgrun-test-%ld-notify", (long)getpid());
  ASSERT_EQ(mg_cgroup_create(&info, NULL, name, &group, err, sizeof err), 0);
  int fd = -1;
  ASSERT_EQ(mg_cgroup_threshold_open(group, 0, 32 * MIB, &fd, err, sizeof err),
            0);
  ASSERT(fd >= 0);
  ASSERT(!ready(fd, POLLIN, 50)); /* nothing crossed yet */
  int up[2], go[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(go), 0);
  child = grow_then_free(64, up[1], go[0]);
  ASSERT(child > 0);
  ASSERT_EQ(mg_cgroup_add_pid(group, child, err, sizeof err), 0);
  char c;
  ASSERT_EQ(read(up[0], &c, 1), 1);
  ASSERT(ready(fd, POLLIN, 2000)); /* upward */
  uint64_t n = 0;
  ASSERT_EQ(mg_cgroup_eventfd_drain(fd, &n), 0);
  ASSERT(n >= 1);
  ASSERT(usage() >= 32 * MIB);
  ASSERT_EQ(write(go[1], &c, 1), 1);
  ASSERT_EQ(read(up[0], &c, 1), 1);
  ASSERT(ready(fd, POLLIN, 2000)); /* downward */
  ASSERT_EQ(mg_cgroup_eventfd_drain(fd, &n), 0);
  ASSERT(n >= 1);
  ASSERT(usage() < 32 * MIB);
  ASSERT_EQ(mg_cgroup_eventfd_drain(fd, &n), 0); /* nothing pending: 0 */
  ASSERT_EQ(n, 0);
  close(fd);
  /* bad levels are refused with the accepted range */
  ASSERT_EQ(mg_cgroup_threshold_open(group, 0, 0, &fd, err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "accepted: 1..2^63-1");
  /* pressure levels: the three names, anything else refused */
  ASSERT_EQ(
      mg_cgroup_pressure_level_open(group, "medium", &fd, err, sizeof err), 0);
  close(fd);
  ASSERT_EQ(mg_cgroup_pressure_level_open(group, "high", &fd, err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "accepted: low, medium, critical");
  /* v2-only files on a v1 group: ENOTSUP, saying why */
  ASSERT_EQ(mg_cgroup_events_open(group, &fd, err, sizeof err), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "only in cgroup v2");
  ASSERT_EQ(mg_cgroup_freeze(group, 1, err, sizeof err), MG_ENOTSUP);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  child = 0;
  close(up[0]);
  close(up[1]);
  close(go[0]);
  close(go[1]);
}

TEST(oom_eventfd_fires) {
  ASSERT(group != NULL);
  ASSERT_EQ(mg_cgroup_set_limit(group, 16 * MIB, NULL, err, sizeof err), 0);
  int fd = -1;
  ASSERT_EQ(mg_cgroup_oom_open(group, &fd, err, sizeof err), 0);
  int up[2], go[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(go), 0);
  child = grow_then_free(64, up[1], go[0]); /* dies on the way */
  ASSERT(child > 0);
  ASSERT_EQ(mg_cgroup_add_pid(group, child, err, sizeof err), 0);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  child = 0;
  ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  ASSERT(ready(fd, POLLIN, 2000));
  uint64_t n = 0;
  ASSERT_EQ(mg_cgroup_eventfd_drain(fd, &n), 0);
  ASSERT(n >= 1);
  mg_cgroup_stats s;
  ASSERT_EQ(mg_cgroup_stats_read(group, &s, err, sizeof err), 0);
  if (s.has_oom_kill)
    ASSERT(s.oom_kills >= 1);
  close(fd);
  close(up[0]);
  close(up[1]);
  close(go[0]);
  close(go[1]);
}

TEST(psi_trigger_arms_or_falls_back) {
  mg_psi_trigger t;
  int rc = mg_psi_trigger_arm("/proc/pressure/memory", 0, 150000, 500000, &t,
                              err, sizeof err);
  if (rc == MG_ENOTSUP) {
    fprintf(stderr, "  (no PSI here: %s)\n", err);
    return;
  }
  ASSERT_EQ(rc, 0);
  ASSERT(t.fd >= 0);
  if (t.fell_back) { /* a container without CAP_SYS_RESOURCE */
    ASSERT_EQ(t.window_us % 2000000, 0);
    ASSERT_EQ(t.stall_us, 150000 * t.window_us / 500000);
    ASSERT_CONTAINS(t.why, "instead");
  } else {
    ASSERT_EQ(t.window_us, 500000);
  }
  fprintf(stderr, "  armed %llu us in %llu us%s\n",
          (unsigned long long)t.stall_us, (unsigned long long)t.window_us,
          t.fell_back ? " (fallback)" : "");
  close(t.fd);
  /* our own refusals name the field and the range */
  ASSERT_EQ(mg_psi_trigger_arm("/proc/pressure/memory", 0, 1000, 100000, &t,
                               err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "window_ms: 100 (accepted: 500..10000)");
  ASSERT_EQ(mg_psi_trigger_arm("/proc/pressure/memory", 1, 3000000, 2000000, &t,
                               err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "stall_ms: 3000");
  ASSERT_EQ(mg_psi_trigger_open("/nonexistent/pressure", 0, 1000, 2000000,
                                &t.fd, err, sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "no PSI");
}

static void put(const char *dir, const char *file, const char *text) {
  char p[PATH_MAX + 64];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  FILE *f = fopen(p, "w");
  ASSERT(f != NULL);
  fputs(text, f);
  fclose(f);
}

/* The v2 side, against a fixture group directory. */
TEST(v2_fixture_events_and_freeze) {
  snprintf(fixture, sizeof fixture, "/tmp/mgrun-test-notify-%ld",
           (long)getpid());
  ASSERT_EQ(mkdir(fixture, 0700), 0);
  put(fixture, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
  put(fixture, "cgroup.freeze", "0\n");
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_open(MG_CGROUP_V2, fixture, &cg, err, sizeof err), 0);
  int fd = -1;
  ASSERT_EQ(mg_cgroup_events_open(cg, &fd, err, sizeof err), 0);
  ASSERT(fd >= 0);
  close(fd);
  ASSERT_EQ(mg_cgroup_oom_open(cg, &fd, err, sizeof err), 0); /* the same */
  close(fd);
  ASSERT_EQ(mg_cgroup_threshold_open(cg, 0, MIB, &fd, err, sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "only in cgroup v1");
  ASSERT_EQ(mg_cgroup_freeze(cg, 1, err, sizeof err), 0);
  char p[PATH_MAX + 32], buf[8] = {0};
  snprintf(p, sizeof p, "%s/cgroup.freeze", fixture);
  FILE *f = fopen(p, "r");
  ASSERT(f != NULL);
  ASSERT(fgets(buf, sizeof buf, f) != NULL);
  fclose(f);
  ASSERT_EQ(buf[0], '1');
  unlink(p); /* an old kernel without the freezer */
  ASSERT_EQ(mg_cgroup_freeze(cg, 0, err, sizeof err), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "Linux >= 5.2");
  mg_cgroup_free(cg);

  /* delegation: into a leaf only when alone, with memory to hand on */
  mg_cgroup_info fi;
  memset(&fi, 0, sizeof fi);
  fi.version = MG_CGROUP_V2;
  snprintf(fi.dir, sizeof fi.dir, "%s", fixture);
  char leaf[PATH_MAX + 128], procs[64];
  put(fixture, "cgroup.controllers", "cpu io\n");
  snprintf(procs, sizeof procs, "%ld\n", (long)getpid());
  put(fixture, "cgroup.procs", procs);
  ASSERT_EQ(mg_cgroup_v2_move_to_leaf(&fi, "mgrun", leaf, sizeof leaf, err,
                                      sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "no memory controller to give its children");
  put(fixture, "cgroup.controllers", "cpu memory io\n");
  snprintf(procs, sizeof procs, "1\n%ld\n2\n", (long)getpid());
  put(fixture, "cgroup.procs", procs);
  ASSERT_EQ(mg_cgroup_v2_move_to_leaf(&fi, "mgrun", leaf, sizeof leaf, err,
                                      sizeof err),
            -EBUSY);
  ASSERT_CONTAINS(err, "holds 2 other processes besides mgrun");
  snprintf(procs, sizeof procs, "%ld\n", (long)getpid());
  put(fixture, "cgroup.procs", procs);
  /* a fixture's leaf has no cgroup.procs: the move fails, the leaf goes */
  ASSERT_EQ(mg_cgroup_v2_move_to_leaf(&fi, "mgrun", leaf, sizeof leaf, err,
                                      sizeof err),
            -ENOENT);
  ASSERT_CONTAINS(err, "cannot move mgrun into");
  ASSERT_CONTAINS(err, "-~supervisor");
  char ldir[PATH_MAX + 64];
  snprintf(ldir, sizeof ldir, "%s/mgrun-%ld-~supervisor", fixture,
           (long)getpid());
  struct stat lst;
  ASSERT(stat(ldir, &lst) != 0);
  fi.version = MG_CGROUP_V1;
  ASSERT_EQ(mg_cgroup_v2_move_to_leaf(&fi, "mgrun", leaf, sizeof leaf, err,
                                      sizeof err),
            MG_ENOTSUP);
}

int main(void) {
  atexit(cleanup);
  RUN(v2_fixture_events_and_freeze);
  RUN(psi_trigger_arms_or_falls_back);
  if (mg_cgroup_detect(NULL, &info, err, sizeof err) != 0) {
    fprintf(stderr, "mg_cgroup_detect: %s\n", err);
    return 1;
  }
  if (info.version == MG_CGROUP_NONE)
    SKIP_CGROUP("no cgroup memory controller is mounted");
  if (info.version != MG_CGROUP_V1) /* not a missing hierarchy: v1 only */
    SKIP("the live part is about cgroup v1 files (here: %s)",
         mg_cgroup_version_name(info.version));
  char reason[1024];
  if (mg_cgroup_probe_writable(&info, NULL, reason, sizeof reason) != 1)
    SKIP_CGROUP("%s", reason);
  RUN(threshold_fires_both_ways);
  RUN(oom_eventfd_fires);
  return mg_test_report();
}
