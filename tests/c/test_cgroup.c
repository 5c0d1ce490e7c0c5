/* test_cgroup.c — cgroup detection against fixture trees, group name
 * validation, parents of child groups, and counters of fixture groups. Each
 * case under tests/fixtures/cgroup/<case>/ has proc/ (the proc root:
 * self/mountinfo, self/cgroup) and fs/ (mirrors the mounts);
 * tests/fixtures/cgroup/counters/ holds plain group directories. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg/mg_cgroup.h"
#include "mg/mg_error.h"
#include "mg_test.h"

static mg_cgroup_info info;
static char err[1024];
static char proc_root[4096], fs_root[4096];

/* Detect in fixture case `name`; returns the code. */
static int detect(const char *name) {
  snprintf(proc_root, sizeof proc_root, "%s/cgroup/%s/proc", MG_TEST_FIXTURES,
           name);
  snprintf(fs_root, sizeof fs_root, "%s/cgroup/%s/fs", MG_TEST_FIXTURES, name);
  mg_paths paths = {proc_root, fs_root};
  memset(&info, 0xab, sizeof info); /* prove every field gets written */
  err[0] = '\0';
  return mg_cgroup_detect(&paths, &info, err, sizeof err);
}

/* fs_root + rel, in a static buffer. */
static const char *fs(const char *rel) {
  static char buf[2][4096 + 256];
  static int i;
  i ^= 1;
  snprintf(buf[i], sizeof buf[i], "%s%s", fs_root, rel);
  return buf[i];
}

TEST(v1_limit_on_own_group) {
  ASSERT_EQ(detect("v1_limit"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V1);
  ASSERT_EQ(info.v2_mounted, 0);
  ASSERT_STR_EQ(info.mount, fs("/sys/fs/cgroup/memory"));
  ASSERT_STR_EQ(info.path, "/process_api/abc");
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup/memory/process_api/abc"));
  ASSERT_EQ(info.has_limit, 1);
  ASSERT_U64_EQ(info.limit_bytes, 536870912);
  ASSERT_STR_EQ(info.limit_dir, fs("/sys/fs/cgroup/memory/process_api/abc"));
  ASSERT_STR_EQ(err, "");
}

TEST(v1_unlimited) {
  ASSERT_EQ(detect("v1_unlimited"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V1);
  ASSERT_EQ(info.has_limit, 0);
  ASSERT_U64_EQ(info.limit_bytes, 0);
  ASSERT_STR_EQ(info.limit_dir, "");
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup/memory/process_api/abc"));
}

TEST(v1_nested_parent_wins) {
  ASSERT_EQ(detect("v1_nested"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V1);
  ASSERT_STR_EQ(info.mount, fs("/sys/fs/cgroup/cpu,memory"));
  ASSERT_STR_EQ(info.path, "/batch/job1");
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup/cpu,memory/batch/job1"));
  ASSERT_EQ(info.has_limit, 1);
  ASSERT_U64_EQ(info.limit_bytes, 268435456);
  ASSERT_STR_EQ(info.limit_dir, fs("/sys/fs/cgroup/cpu,memory/batch"));
}

TEST(v2_unified_limit_two_levels_up) {
  ASSERT_EQ(detect("v2_unified"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V2);
  ASSERT_EQ(info.v2_mounted, 1);
  ASSERT_STR_EQ(info.mount, fs("/sys/fs/cgroup"));
  ASSERT_STR_EQ(info.path, "/user.slice/user-1000.slice/session-3.scope");
  ASSERT_STR_EQ(
      info.dir,
      fs("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"));
  ASSERT_EQ(info.has_limit, 1);
  ASSERT_U64_EQ(info.limit_bytes, 2147483648u);
  ASSERT_STR_EQ(info.limit_dir, fs("/sys/fs/cgroup/user.slice"));
}

TEST(v2_cgroup_namespace) {
  ASSERT_EQ(detect("v2_namespace"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V2);
  ASSERT_STR_EQ(info.path, "/");
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup"));
  ASSERT_STR_EQ(info.mount, fs("/sys/fs/cgroup"));
  ASSERT_EQ(info.has_limit, 1);
  ASSERT_U64_EQ(info.limit_bytes, 1073741824);
  ASSERT_STR_EQ(info.limit_dir, fs("/sys/fs/cgroup"));
}

TEST(v1_container_root_stripped) {
  ASSERT_EQ(detect("v1_container"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V1);
  ASSERT_STR_EQ(info.path, "/docker/f00d");
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup/memory"));
  ASSERT_U64_EQ(info.limit_bytes, 805306368);
  ASSERT_STR_EQ(info.limit_dir, fs("/sys/fs/cgroup/memory"));
}

TEST(hybrid_prefers_v1) {
  ASSERT_EQ(detect("hybrid"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V1);
  ASSERT_EQ(info.v2_mounted, 1);
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup/memory/process_api/abc"));
  ASSERT_EQ(info.has_limit, 1);
  ASSERT_U64_EQ(info.limit_bytes, 4294967296u);
  ASSERT_STR_EQ(info.limit_dir, fs("/sys/fs/cgroup/memory/process_api"));
}

TEST(no_memory_controller) {
  ASSERT_EQ(detect("none"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_NONE);
  ASSERT_EQ(info.v2_mounted, 1);
  ASSERT_EQ(info.has_limit, 0);
  ASSERT_STR_EQ(info.dir, "");
  ASSERT_STR_EQ(info.mount, "");
  ASSERT_STR_EQ(mg_cgroup_version_name(info.version), "none");

  ASSERT_EQ(detect("no_mounts"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_NONE);
  ASSERT_EQ(info.v2_mounted, 0);

  /* nothing can be created or probed without a controller */
  char reason[256];
  ASSERT_EQ(mg_cgroup_probe_writable(&info, NULL, reason, sizeof reason), 0);
  ASSERT_CONTAINS(reason, "no cgroup memory controller");
  mg_cgroup *cg = (mg_cgroup *)(uintptr_t)1; /* must be reset */
  ASSERT_EQ(mg_cgroup_create(&info, NULL, "x", &cg, err, sizeof err),
            MG_ENOTSUP);
  ASSERT(cg == NULL);
}

TEST(malformed_memory_max) {
  ASSERT_EQ(detect("malformed"), MG_EPARSE);
  ASSERT_CONTAINS(err, fs("/sys/fs/cgroup/app.slice/x.service/memory.max"));
  ASSERT_CONTAINS(err, "\"12abc\"");
  ASSERT_CONTAINS(err, "expected a number of bytes");
  ASSERT_EQ(info.version, MG_CGROUP_NONE); /* cleared on failure */
  ASSERT_EQ(info.has_limit, 0);
}

TEST(missing_mountinfo) {
  ASSERT_EQ(detect("missing_mountinfo"), -ENOENT);
  ASSERT_CONTAINS(err, "missing_mountinfo/proc/self/mountinfo");
  ASSERT_CONTAINS(err, "No such file");
}

TEST(v1_without_memory_line) {
  ASSERT_EQ(detect("v1_no_memory_line"), MG_EPARSE);
  ASSERT_CONTAINS(err, "self/cgroup has no line for the memory controller");
}

TEST(escaped_mount_point) {
  ASSERT_EQ(detect("escaped"), 0);
  ASSERT_EQ(info.version, MG_CGROUP_V1);
  ASSERT_STR_EQ(info.mount, fs("/sys/fs/cgroup/my memory"));
  ASSERT_STR_EQ(info.dir, fs("/sys/fs/cgroup/my memory/jobs"));
  ASSERT_U64_EQ(info.limit_bytes, 104857600);
}

TEST(version_names) {
  ASSERT_STR_EQ(mg_cgroup_version_name(MG_CGROUP_V1), "v1");
  ASSERT_STR_EQ(mg_cgroup_version_name(MG_CGROUP_V2), "v2");
  ASSERT_STR_EQ(mg_cgroup_version_name(MG_CGROUP_NONE), "none");
}

TEST(name_validation) {
  static const struct {
    const char *name;
    int ok;
  } cases[] = {
      {"a", 1},
      {"mgrun-1234-worker", 1},
      {"model_v1.2", 1},
      {"A-Z.a_z-09", 1},
      {"...", 1},
      {"1234567890123456789012345678901234567890123456789012345678901234", 1},
      {"12345678901234567890123456789012345678901234567890123456789012345", 0},
      {"", 0},
      {".", 0},
      {"..", 0},
      {"a/b", 0},
      {"/", 0},
      {"../etc", 0},
      {"with space", 0},
      {"tab\t", 0},
      {"nl\n", 0},
      {"uni\xc3\xa9", 0},
      {"semi;colon", 0},
      {"star*", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err[0] = '\0';
    int rc = mg_cgroup_validate_name(cases[i].name, err, sizeof err);
    if (cases[i].ok) {
      if (rc != 0)
        MG__FAIL("\"%s\" rejected: %s", cases[i].name, err);
    } else {
      if (rc != -EINVAL)
        MG__FAIL("\"%s\" accepted (rc %d)", cases[i].name, rc);
      ASSERT_CONTAINS(err, "cgroup name: ");
      ASSERT_CONTAINS(err, "A-Z a-z 0-9 . _ -");
    }
  }
  ASSERT_EQ(mg_cgroup_validate_name("a/b", err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "'a/b'");
  ASSERT_EQ(mg_cgroup_validate_name(NULL, err, sizeof err), -EINVAL);
  ASSERT_EQ(mg_cgroup_validate_name("..", NULL, 0), -EINVAL);
}

TEST(create_rejects_bad_name_before_touching_disk) {
  ASSERT_EQ(detect("v1_limit"), 0);
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_create(&info, NULL, "../escape", &cg, err, sizeof err),
            -EINVAL);
  ASSERT(cg == NULL);
  ASSERT_CONTAINS(err, "'../escape'");
}

/* Write `text` to <dir>/<file> (a plain file in the fake tree). */
static void put(const char *dir, const char *file, const char *text) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Content of <dir>/<file>, in a static buffer. */
static const char *get(const char *dir, const char *file) {
  static char buf[256];
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  return buf;
}

static char fake_root[64];
static char fake_group[PATH_MAX];

static void fake_cleanup(void) {
  static const char *files[] = {
      "memory.max",  "memory.swap.max", "memory.high",  "memory.current",
      "memory.peak", "memory.events",   "cgroup.procs", NULL};
  char path[PATH_MAX + 64];
  for (size_t i = 0; fake_group[0] && files[i]; i++) {
    snprintf(path, sizeof path, "%s/%s", fake_group, files[i]);
    unlink(path);
  }
  if (fake_group[0])
    rmdir(fake_group);
  if (fake_root[0]) {
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", fake_root);
    unlink(path);
    rmdir(fake_root);
  }
}

/* v2 group operations on plain files: which file gets what, and how the
 * counters are parsed (this machine's memory controller is v1). */
TEST(v2_group_files_on_a_fake_tree) {
  snprintf(fake_root, sizeof fake_root, "/tmp/mg-test-cgroup-XXXXXX");
  ASSERT(mkdtemp(fake_root) != NULL);
  put(fake_root, "cgroup.subtree_control", "cpu\n");
  mg_cgroup_info fake;
  memset(&fake, 0, sizeof fake);
  fake.version = MG_CGROUP_V2;
  snprintf(fake.dir, sizeof fake.dir, "%s", fake_root);
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_create(&fake, NULL, "grp", &cg, err, sizeof err), 0);
  snprintf(fake_group, sizeof fake_group, "%s", mg_cgroup_dir(cg));
  /* the memory controller was enabled for children */
  ASSERT_STR_EQ(get(fake_root, "cgroup.subtree_control"), "+memory");
  ASSERT_EQ(mg_cgroup_get_version(cg), MG_CGROUP_V2);

  put(fake_group, "memory.max", "");
  put(fake_group, "memory.swap.max", "");
  put(fake_group, "memory.high", "");
  int swap = -1;
  ASSERT_EQ(mg_cgroup_set_limit(cg, 32 << 20, &swap, err, sizeof err), 0);
  ASSERT_STR_EQ(get(fake_group, "memory.max"), "33554432");
  ASSERT_STR_EQ(get(fake_group, "memory.swap.max"), "0");
  ASSERT_EQ(swap, 1);
  ASSERT_EQ(mg_cgroup_set_high(cg, 16 << 20, err, sizeof err), 0);
  ASSERT_STR_EQ(get(fake_group, "memory.high"), "16777216");

  put(fake_group, "memory.current", "1234567\n");
  put(fake_group, "memory.max", "33554432\n");
  put(fake_group, "memory.events",
      "low 1\nhigh 22\nmax 333\noom 4\noom_kill 5\noom_group_kill 0\n");
  mg_cgroup_stats st;
  ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), 0);
  ASSERT_U64_EQ(st.current_bytes, 1234567);
  ASSERT_EQ(st.has_peak, 0); /* no memory.peak before Linux 5.19 */
  ASSERT_U64_EQ(st.limit_bytes, 33554432);
  ASSERT_U64_EQ(st.high_events, 22);
  ASSERT_U64_EQ(st.max_events, 333);
  ASSERT_U64_EQ(st.oom_events, 4);
  ASSERT_U64_EQ(st.oom_kills, 5);

  put(fake_group, "memory.peak", "7654321\n");
  put(fake_group, "memory.max", "max\n");
  ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), 0);
  ASSERT_EQ(st.has_peak, 1);
  ASSERT_U64_EQ(st.peak_bytes, 7654321);
  ASSERT_U64_EQ(st.limit_bytes, UINT64_MAX); /* "max": no limit */

  put(fake_group, "memory.events", "oom_kill x\n");
  ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "memory.events");
  ASSERT_CONTAINS(err, "oom_kill");
  put(fake_group, "memory.current", "lots\n");
  ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "memory.current: \"lots\"");

  put(fake_group, "cgroup.procs", "");
  size_t n = 7;
  ASSERT_EQ(mg_cgroup_count_pids(cg, &n), 0);
  ASSERT_EQ(n, 0);
  ASSERT_EQ(mg_cgroup_kill_all(cg, 100), 0);
  /* a directory that still has entries cannot be removed: say so */
  ASSERT_LT(mg_cgroup_remove(cg, err, sizeof err), 0);
  ASSERT_CONTAINS(err, "cannot remove cgroup");
  mg_cgroup_free(cg);
  fake_cleanup();
  struct stat sb;
  ASSERT(stat(fake_root, &sb) < 0);
  fake_root[0] = fake_group[0] = '\0';
}

/* The oom_kill counter's presence, from fixture groups: v1 memory.oom_control
 * with "oom_kill" (Linux >= 4.13) and without, v2 memory.events without. */
TEST(oom_kill_counter_presence) {
  static const struct {
    const char *dir;
    mg_cgroup_version v;
    int has;
    uint64_t kills, events;
  } cases[] = {
      {"v1_oom_kill", MG_CGROUP_V1, 1, 2, 12},
      {"v1_old_kernel", MG_CGROUP_V1, 0, 0, 12},
      {"v2_old_kernel", MG_CGROUP_V2, 0, 0, 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/cgroup/counters/%s", MG_TEST_FIXTURES,
             cases[i].dir);
    mg_cgroup *cg = NULL;
    ASSERT_EQ(mg_cgroup_open(cases[i].v, dir, &cg, err, sizeof err), 0);
    ASSERT_STR_EQ(mg_cgroup_dir(cg), dir);
    mg_cgroup_stats st;
    memset(&st, 0xab, sizeof st);
    ASSERT_EQ(mg_cgroup_stats_read(cg, &st, err, sizeof err), 0);
    ASSERT_EQ(st.has_oom_kill, cases[i].has);
    ASSERT_U64_EQ(st.oom_kills, cases[i].kills);
    ASSERT_U64_EQ(st.oom_events, cases[i].events);
    ASSERT_U64_EQ(st.limit_bytes, 64 << 20);
    mg_cgroup_free(cg);
  }
  mg_cgroup *cg = (mg_cgroup *)1;
  ASSERT_EQ(mg_cgroup_open(MG_CGROUP_V1, "/nonexistent/mg-group", &cg, err,
                           sizeof err),
            -ENOENT);
  ASSERT(cg == NULL);
  ASSERT_EQ(mg_cgroup_open(MG_CGROUP_NONE, "/tmp", &cg, err, sizeof err),
            -EINVAL);
}

/* A parent for child groups must exist, be a directory and lie inside the
 * memory hierarchy. */
TEST(check_parent) {
  ASSERT_EQ(detect("v1_limit"), 0);
  const char *what = "cgroup_parent";
  ASSERT_EQ(mg_cgroup_check_parent(&info, what, fs("/sys/fs/cgroup/memory"),
                                   err, sizeof err),
            0);
  ASSERT_EQ(mg_cgroup_check_parent(&info, what,
                                   fs("/sys/fs/cgroup/memory/process_api/"),
                                   err, sizeof err),
            0);
  ASSERT_EQ(mg_cgroup_check_parent(&info, what, "/nope", err, sizeof err),
            -ENOENT);
  ASSERT_STR_EQ(err, "cgroup_parent: '/nope' does not exist");
  const char *file = fs("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  ASSERT_EQ(mg_cgroup_check_parent(&info, what, file, err, sizeof err),
            -ENOTDIR);
  ASSERT_CONTAINS(err, "is not a directory");
  ASSERT_EQ(mg_cgroup_check_parent(&info, what, "/tmp", err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "cgroup_parent: '/tmp' is not inside the cgroup v1 "
                       "memory hierarchy");
  /* "..": resolved before the comparison */
  ASSERT_EQ(mg_cgroup_check_parent(&info, what,
                                   fs("/sys/fs/cgroup/memory/../cpu"), err,
                                   sizeof err),
            -ENOENT); /* the fixture has no cpu directory */
  ASSERT_EQ(mg_cgroup_check_parent(&info, NULL, fs("/sys/fs/cgroup/memory/.."),
                                   err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "cgroup parent: ");
  ASSERT_EQ(detect("none"), 0);
  ASSERT_EQ(mg_cgroup_check_parent(&info, what, "/tmp", err, sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "no cgroup memory controller is mounted");
}

int main(void) {
  RUN(v1_limit_on_own_group);
  RUN(v1_unlimited);
  RUN(v1_nested_parent_wins);
  RUN(v2_unified_limit_two_levels_up);
  RUN(v2_cgroup_namespace);
  RUN(v1_container_root_stripped);
  RUN(hybrid_prefers_v1);
  RUN(no_memory_controller);
  RUN(malformed_memory_max);
  RUN(missing_mountinfo);
  RUN(v1_without_memory_line);
  RUN(escaped_mount_point);
  RUN(version_names);
  RUN(name_validation);
  RUN(create_rejects_bad_name_before_touching_disk);
  RUN(v2_group_files_on_a_fake_tree);
  RUN(oom_kill_counter_presence);
  RUN(check_parent);
  fake_cleanup();
  return mg_test_report();
}
