/* test_cgroup_live.c — cgroups on the real machine: detection, the
 * writability probe, a child group with a 32 MiB limit whose member is
 * OOM-killed, kill_all, remove, and removal of stale groups. Skipped (or,
 * under MG_REQUIRE_CGROUP=1, failed) when no writable memory hierarchy is
 * available. Everything created is removed at exit, even after a failure. */
#include <errno.h>
#include <limits.h>
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
#include "mg_test.h"

#define MIB (UINT64_C(1) << 20)

static mg_cgroup_info info;
static char err[2048];

/* What the atexit handler must undo. */
static mg_cgroup *groups[4];
static pid_t children[4];
static char made_dirs[4][PATH_MAX + 64];

static void track_group(mg_cgroup *cg) {
  for (size_t i = 0; i < 4; i++)
    if (!groups[i]) {
      groups[i] = cg;
      return;
    }
}

static void untrack_group(mg_cgroup *cg) {
  for (size_t i = 0; i < 4; i++)
    if (groups[i] == cg)
      groups[i] = NULL;
}

static void track_child(pid_t pid) {
  for (size_t i = 0; i < 4; i++)
    if (children[i] <= 0) {
      children[i] = pid;
      return;
    }
}

static void reaped(pid_t pid) {
  for (size_t i = 0; i < 4; i++)
    if (children[i] == pid)
      children[i] = 0;
}

static void track_dir(const char *dir) {
  for (size_t i = 0; i < 4; i++)
    if (!made_dirs[i][0]) {
      snprintf(made_dirs[i], sizeof made_dirs[i], "%s", dir);
      return;
    }
}

static void cleanup(void) {
  for (size_t i = 0; i < 4; i++)
    if (children[i] > 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
      children[i] = 0;
    }
  for (size_t i = 0; i < 4; i++)
    if (groups[i]) {
      mg_cgroup_kill_all(groups[i], 1000);
      if (mg_cgroup_remove(groups[i], err, sizeof err) < 0)
        fprintf(stderr, "cleanup: %s\n", err);
      mg_cgroup_free(groups[i]);
      groups[i] = NULL;
    }
  for (size_t i = 0; i < 4; i++)
    if (made_dirs[i][0]) {
      rmdir(made_dirs[i]);
      made_dirs[i][0] = '\0';
    }
}

static int dir_exists(const char *dir) {
  struct stat st;
  return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Fork a child that waits for one byte on a pipe, then runs `body`
 * (which never returns). *release_fd gets the write end. */
static pid_t fork_waiting(void (*body)(void), int *release_fd) {
  int fds[2];
  if (pipe(fds) < 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[1]);
    char c;
    ssize_t n;
    do {
      n = read(fds[0], &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
      _exit(3); /* parent gave up */
    body();
    _exit(0);
  }
  close(fds[0]);
  if (pid < 0) {
    close(fds[1]);
    return -1;
  }
  track_child(pid);
  *release_fd = fds[1];
  return pid;
}

/* Touch 128 MiB page by page; survive → exit 0. */
static void touch_128mib(void) {
  size_t len = (size_t)(128 * MIB);
  volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    _exit(4);
  long page = sysconf(_SC_PAGESIZE);
  for (size_t off = 0; off < len; off += (size_t)page)
    p[off] = 1;
  _exit(0);
}

static void sleep_forever(void) {
  for (;;)
    pause();
}

static void release(int fd) {
  char c = 'g';
  ASSERT_EQ(write(fd, &c, 1), 1);
  close(fd);
}

static int wait_child(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  reaped(pid);
  return r == pid ? status : -1;
}

/* Our own pid must be listed in <dir>/cgroup.procs. */
TEST(detect_finds_own_group) {
  ASSERT(info.version == MG_CGROUP_V1 || info.version == MG_CGROUP_V2);
  ASSERT(dir_exists(info.dir));
  ASSERT(dir_exists(info.mount));
  ASSERT_EQ(strncmp(info.dir, info.mount, strlen(info.mount)), 0);
  char path[PATH_MAX + 32], buf[65536];
  snprintf(path, sizeof path, "%s/cgroup.procs", info.dir);
  FILE *f = fopen(path, "r");
  ASSERT(f != NULL);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char me[32];
  snprintf(me, sizeof me, "%ld", (long)getpid());
  int found = 0;
  for (char *tok = strtok(buf, "\n"); tok; tok = strtok(NULL, "\n"))
    found |= strcmp(tok, me) == 0;
  ASSERT(found);
  if (info.has_limit)
    ASSERT(dir_exists(info.limit_dir));
}

TEST(probe_leaves_nothing) {
  char reason[1024], probe_dir[PATH_MAX + 64];
  ASSERT_EQ(mg_cgroup_probe_writable(&info, NULL, reason, sizeof reason), 1);
  ASSERT_CONTAINS(reason, "created a cgroup");
  snprintf(probe_dir, sizeof probe_dir, "%s/mgrun-probe-%ld", info.dir,
           (long)getpid());
  ASSERT(!dir_exists(probe_dir));
  /* a parent that does not exist is a clear "not writable" */
  ASSERT_EQ(mg_cgroup_probe_writable(&info, "/nonexistent/cgroup/dir", reason,
                                     sizeof reason),
            0);
  ASSERT_CONTAINS(reason, "cannot create a cgroup under /nonexistent/cgroup/"
                          "dir: No such file or directory");
}

TEST(limit_oom_kill_and_remove) {
  char name[64];
  snprintf(name, sizeof name, "mgrun-test-%ld-live", (long)getpid());
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_create(&info, NULL, name, &cg, err, sizeof err), 0);
  track_group(cg);
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", mg_cgroup_dir(cg));
  ASSERT(dir_exists(dir));
  ASSERT_EQ(mg_cgroup_get_version(cg), info.version);

  mg_cgroup *dup = NULL;
  ASSERT_EQ(mg_cgroup_create(&info, NULL, name, &dup, err, sizeof err),
            -EEXIST);
  ASSERT(dup == NULL);
  ASSERT_CONTAINS(err, "already exists");

  int swap_limited = -1;
  if (mg_cgroup_set_limit(cg, 32 * MIB, &swap_limited, err, sizeof err) != 0)
    MG__FAIL("set_limit: %s", err);
  ASSERT(swap_limited == 0 || swap_limited == 1);
  mg_cgroup_stats st;
  ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), 0);
  ASSERT_U64_EQ(st.limit_bytes, 32 * MIB);
  ASSERT_U64_EQ(st.oom_kills, 0);

  int go;
  pid_t pid = fork_waiting(touch_128mib, &go);
  ASSERT_GT(pid, 0);
  if (mg_cgroup_add_pid(cg, pid, err, sizeof err) != 0)
    MG__FAIL("add_pid: %s", err);
  size_t n = 99;
  ASSERT_EQ(mg_cgroup_count_pids(cg, &n), 0);
  ASSERT_EQ(n, 1);
  release(go);
  int status = wait_child(pid);
  if (!WIFSIGNALED(status))
    MG__FAIL("child was not killed: status %#x (exit %d)", status,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);

  ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), 0);
  fprintf(stderr,
          "  stats: current %llu peak %llu (has %d) oom_kills %llu "
          "oom_events %llu\n",
          (unsigned long long)st.current_bytes,
          (unsigned long long)st.peak_bytes, st.has_peak,
          (unsigned long long)st.oom_kills, (unsigned long long)st.oom_events);
  ASSERT(st.oom_kills >= 1 || st.oom_events > 0);
  if (st.has_peak) {
    ASSERT(st.peak_bytes <= 32 * MIB);
    ASSERT(st.peak_bytes >= 16 * MIB); /* it really filled the group */
  }
  ASSERT_EQ(mg_cgroup_count_pids(cg, &n), 0);
  ASSERT_EQ(n, 0);

  if (mg_cgroup_remove(cg, err, sizeof err) != 0)
    MG__FAIL("remove: %s", err);
  ASSERT(!dir_exists(dir));
  ASSERT_EQ(mg_cgroup_remove(cg, err, sizeof err), 0); /* idempotent */
  untrack_group(cg);
  mg_cgroup_free(cg);
}

TEST(kill_all_empties_group) {
  char name[64];
  snprintf(name, sizeof name, "mgrun-test-%ld-kill", (long)getpid());
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_create(&info, NULL, name, &cg, err, sizeof err), 0);
  track_group(cg);
  int go1, go2;
  pid_t a = fork_waiting(sleep_forever, &go1);
  pid_t b = fork_waiting(sleep_forever, &go2);
  ASSERT(a > 0 && b > 0);
  ASSERT_EQ(mg_cgroup_add_pid(cg, a, err, sizeof err), 0);
  ASSERT_EQ(mg_cgroup_add_pid(cg, b, err, sizeof err), 0);
  release(go1);
  release(go2);
  size_t n = 0;
  ASSERT_EQ(mg_cgroup_count_pids(cg, &n), 0);
  ASSERT_EQ(n, 2);
  ASSERT_EQ(mg_cgroup_kill_all(cg, 2000), 0);
  int sa = wait_child(a), sb = wait_child(b);
  ASSERT(WIFSIGNALED(sa) && WTERMSIG(sa) == SIGKILL);
  ASSERT(WIFSIGNALED(sb) && WTERMSIG(sb) == SIGKILL);
  ASSERT_EQ(mg_cgroup_count_pids(cg, &n), 0);
  ASSERT_EQ(n, 0);
  ASSERT_EQ(mg_cgroup_remove(cg, err, sizeof err), 0);
  untrack_group(cg);
  mg_cgroup_free(cg);
}

TEST(add_dead_pid_is_esrch) {
  char name[64];
  snprintf(name, sizeof name, "mgrun-test-%ld-esrch", (long)getpid());
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_create(&info, NULL, name, &cg, err, sizeof err), 0);
  track_group(cg);
  pid_t dead = fork();
  if (dead == 0)
    _exit(0);
  ASSERT_GT(dead, 0);
  wait_child(dead);
  ASSERT_EQ(mg_cgroup_add_pid(cg, dead, err, sizeof err), -ESRCH);
  char want[64];
  snprintf(want, sizeof want, "no process with pid %ld", (long)dead);
  ASSERT_CONTAINS(err, want);
  if (info.version == MG_CGROUP_V1) {
    ASSERT_EQ(mg_cgroup_set_high(cg, 16 * MIB, err, sizeof err), -ENOTSUP);
    ASSERT_CONTAINS(err, "cgroup v2");
  }
  ASSERT_EQ(mg_cgroup_remove(cg, err, sizeof err), 0);
  untrack_group(cg);
  mg_cgroup_free(cg);
}

TEST(remove_stale_groups) {
  pid_t dead = fork();
  if (dead == 0)
    _exit(0);
  ASSERT_GT(dead, 0);
  wait_child(dead);
  ASSERT(kill(dead, 0) < 0 && errno == ESRCH);

  char stale[PATH_MAX + 64], keep[PATH_MAX + 64];
  snprintf(stale, sizeof stale, "%s/mgrun-test-%ld-x", info.dir, (long)dead);
  snprintf(keep, sizeof keep, "%s/mgrun-test-%ld-keep", info.dir,
           (long)getpid());
  ASSERT_EQ(mkdir(stale, 0755), 0);
  track_dir(stale);
  ASSERT_EQ(mkdir(keep, 0755), 0);
  track_dir(keep);

  size_t removed = 0;
  if (mg_cgroup_remove_stale(&info, NULL, "mgrun-test-", &removed, err,
                             sizeof err) != 0)
    MG__FAIL("remove_stale: %s", err);
  ASSERT_GE(removed, 1);
  ASSERT(!dir_exists(stale));
  ASSERT(dir_exists(keep)); /* our own pid lives: not stale */
  ASSERT_EQ(rmdir(keep), 0);

  ASSERT_EQ(
      mg_cgroup_remove_stale(&info, NULL, "a/b", &removed, err, sizeof err),
      -EINVAL);
}

int main(void) {
  atexit(cleanup);
  int rc = mg_cgroup_detect(NULL, &info, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "mg_cgroup_detect: %s\n", err);
    return 1;
  }
  fprintf(stderr, "cgroup %s at %s (dir %s, v2 mounted %d)\n",
          mg_cgroup_version_name(info.version), info.mount, info.dir,
          info.v2_mounted);
  if (info.version == MG_CGROUP_NONE)
    SKIP_CGROUP("no cgroup memory controller is mounted");
  char reason[1024];
  rc = mg_cgroup_probe_writable(&info, NULL, reason, sizeof reason);
  if (rc < 0) {
    fprintf(stderr, "mg_cgroup_probe_writable: %s\n", reason);
    return 1;
  }
  if (rc == 0)
    SKIP_CGROUP("%s", reason);
  RUN(detect_finds_own_group);
  RUN(probe_leaves_nothing);
  RUN(limit_oom_kill_and_remove);
  RUN(kill_all_empties_group);
  RUN(add_dead_pid_is_esrch);
  RUN(remove_stale_groups);
  return mg_test_report();
}
