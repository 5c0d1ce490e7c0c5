/* test_sup_validate.c — every rule of a spawn's options, in the supervisor:
 * mg_child_opts_init's defaults, a bad value of each option refused with
 * a message that names the field, quotes the value and says what is
 * accepted, the error codes, and the limit rule for each mode (effective
 * memory from a fixture meminfo and a fixture cgroup limit; an as limit
 * against the hard RLIMIT_AS; the 90 % warning, logged and kept),
 * for spawn, validation and set_limit. */
#include "test_sup_util.h"

#include <sys/resource.h>

static char *const true_argv[] = {"true", NULL};
static char *const sleep_argv[] = {"sleep", "5", NULL};

/* A machine of 8 GiB; with `cgroup_limit`, this process sits in a v1
 * memory group limited to 2 GiB (a container). */
static void build_tree(const char *name, int cgroup_limit) {
  snprintf(fx_root, sizeof fx_root, "%s", tmp_path(name));
  fx_mkdirs("proc/self");
  fx_put("proc/meminfo", "MemTotal:        8388608 kB\n"
                         "MemFree:         4194304 kB\n"
                         "MemAvailable:    6291456 kB\n");
  if (!cgroup_limit) {
    fx_put(
        "proc/self/mountinfo",
        "22 26 0:21 / /proc rw,nosuid - proc proc rw\n"
        "31 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n");
    fx_put("proc/self/cgroup", "1:cpu:/\n");
    return;
  }
  fx_mkdirs("fs/sys/fs/cgroup/memory/box");
  fx_put("proc/self/mountinfo", "34 30 0:31 / /sys/fs/cgroup/memory rw,nosuid "
                                "- cgroup cgroup rw,memory\n");
  fx_put("proc/self/cgroup", "4:memory:/box\n");
  fx_put("fs/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "9223372036854771712\n");
  fx_put("fs/sys/fs/cgroup/memory/box/memory.limit_in_bytes", "2147483648\n");
  fx_put("fs/sys/fs/cgroup/memory/box/memory.usage_in_bytes", "104857600\n");
}

/* A supervisor on the tree of build_tree. */
static void sup_on_tree(void) {
  mg_paths paths = fx_paths();
  ASSERT_EQ(sup_start_logged(&paths, NULL), 0);
}

/* Refused by spawn and validation alike with `code`; err starts with
 * `want`; nothing started. */
static void expect_refused(const mg_child_opts *o, int code, const char *want) {
  mg_child *c = (mg_child *)1;
  err[0] = '\0';
  int rc = mg_child_spawn(sup, o, NULL, &c, err, sizeof err);
  if (rc != code)
    MG__FAIL("spawn: rc %d (%s), wanted %d with \"%s\"", rc, err, code, want);
  ASSERT(c == NULL);
  if (strncmp(err, want, strlen(want)) != 0)
    MG__FAIL("spawn: err \"%s\" does not start with \"%s\"", err, want);
  mg_enforce e = MG_ENFORCE_CGROUP;
  ASSERT_EQ(mg_child_validate(sup, o, &e, err, sizeof err), code);
  ASSERT_EQ(e, MG_ENFORCE_NONE);
  if (strncmp(err, want, strlen(want)) != 0)
    MG__FAIL("validate: err \"%s\" does not start with \"%s\"", err, want);
  ASSERT_EQ(mg_sup_children(sup, NULL, 0), 0);
}

TEST(opts_init_defaults) {
  mg_child_opts o;
  memset(&o, 0x5a, sizeof o);
  mg_child_opts_init(&o);
  ASSERT(o.name == NULL && o.argv == NULL && o.env == NULL && o.cwd == NULL);
  ASSERT_U64_EQ(o.limit_bytes, MG_CHILD_NO_LIMIT);
  ASSERT_EQ(o.enforce, MG_ENFORCE_AUTO);
  ASSERT_DBL_NEAR(o.warn_at, 0.8, 0);
  ASSERT_EQ(o.sample_ms, 1000);
  ASSERT_EQ(o.restart, MG_RESTART_NO);
  ASSERT_EQ(o.max_restarts, -1);
  ASSERT_EQ(o.backoff_ms, 100);
  ASSERT(o.backoff_max_ms == MG_CHILD_BACKOFF_MAX_DEFAULT);
  ASSERT_EQ(o.backoff_reset_ms, 10000);
  ASSERT_EQ(o.grace_ms, 5000);
  ASSERT_EQ(o.stdout_mode, MG_STDIO_INHERIT);
  ASSERT_EQ(o.stderr_mode, MG_STDIO_INHERIT);
}

/* Each option: the edges of its range accepted, one past them refused,
 * the message naming the field, quoting the value, saying what is
 * accepted. */
TEST(every_range) {
  build_tree("ranges", 0);
  sup_on_tree();
  static const struct {
    const char *field;
    size_t off;
    int64_t ok_lo, ok_hi, bad_lo, bad_hi;
    const char *accepted;
  } ranges[] = {
      {"sample_ms", offsetof(mg_child_opts, sample_ms), 10, 86400000, 9,
       86400001, "0 for no sampling, or 10..86400000"},
      {"max_restarts", offsetof(mg_child_opts, max_restarts), -1, 1000000, -2,
       1000001, "-1..1000000"},
      {"grace_ms", offsetof(mg_child_opts, grace_ms), 0, 3600000, -1, 3600001,
       "0..3600000"},
      {"backoff_ms", offsetof(mg_child_opts, backoff_ms), 1, 3600000, 0,
       3600001, "1..3600000"},
      {"backoff_max_ms", offsetof(mg_child_opts, backoff_max_ms), 3600000,
       86400000, 0, 86400001, "1..86400000"},
      {"backoff_reset_ms", offsetof(mg_child_opts, backoff_reset_ms), 1,
       86400000, 0, 86400001, "1..86400000"},
  };
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
    int64_t vals[4] = {ranges[i].ok_lo, ranges[i].ok_hi, ranges[i].bad_lo,
                       ranges[i].bad_hi};
    for (int k = 0; k < 4; k++) {
      mg_child_opts o = child_opts("r", true_argv);
      o.backoff_ms = 1; /* so that any backoff_max_ms is not below it */
      if (strcmp(ranges[i].field, "backoff_ms") == 0)
        o.backoff_max_ms = 86400000;
      *(int64_t *)((char *)&o + ranges[i].off) = vals[k];
      if (k < 2) {
        if (mg_child_validate(sup, &o, NULL, err, sizeof err) != 0)
          MG__FAIL("%s = %lld refused: %s", ranges[i].field, (long long)vals[k],
                   err);
        continue;
      }
      char want[256];
      snprintf(want, sizeof want, "%s: %lld is out of range (accepted: %s)",
               ranges[i].field, (long long)vals[k], ranges[i].accepted);
      expect_refused(&o, -EINVAL, want);
    }
  }
  /* 0 means what the Lua API means */
  mg_child_opts o = child_opts("zeros", true_argv);
  o.sample_ms = 0;
  o.grace_ms = 0;
  o.warn_at = 0;
  ASSERT_EQ(mg_child_validate(sup, &o, NULL, err, sizeof err), 0);
  o.warn_at = 1;
  ASSERT_EQ(mg_child_validate(sup, &o, NULL, err, sizeof err), 0);
  o.warn_at = 1.5;
  expect_refused(&o, -EINVAL,
                 "warn_at: 1.5 is out of range (accepted: a fraction 0 < "
                 "warn_at <= 1, or 0 for no warn events)");
  o.warn_at = -0.1;
  expect_refused(&o, -EINVAL, "warn_at: -0.1 is out of range");
  o.warn_at = NAN;
  expect_refused(&o, -EINVAL, "warn_at: nan is out of range");
  /* backoff order, and the default cap following a larger backoff_ms */
  o = child_opts("order", true_argv);
  o.backoff_ms = 500;
  o.backoff_max_ms = 100;
  expect_refused(&o, -EINVAL, "backoff_max_ms: 100 is below backoff_ms 500");
  o.backoff_max_ms = MG_CHILD_BACKOFF_MAX_DEFAULT;
  o.backoff_ms = 20000;
  ASSERT_EQ(mg_child_validate(sup, &o, NULL, err, sizeof err), 0);
  sup_finish();
  cap_close();
}

/* The other options and the codes of mg_sup.h's list. */
TEST(other_options_and_codes) {
  build_tree("codes", 0);
  sup_on_tree();
  mg_child_opts o = child_opts("x", true_argv);
  o.limit_bytes = 0;
  expect_refused(&o, -EINVAL, "limit: must be positive (omit it for no limit)");
  o.limit_bytes = (uint64_t)INT64_MAX + 1;
  expect_refused(&o, -EINVAL,
                 "limit: 9223372036854775808 bytes is more than 2^63-1");
  o = child_opts("x", true_argv);
  o.enforce = MG_ENFORCE_AS;
  expect_refused(&o, -EINVAL,
                 "limit: required with enforce=as (set a limit, or use "
                 "enforce=none)");
  o = child_opts("x", true_argv);
  o.cwd = "";
  expect_refused(&o, -EINVAL, "cwd: empty (omit it to inherit");
  o.cwd = "/nonexistent/mg-dir";
  expect_refused(&o, -ENOENT, "cwd: '/nonexistent/mg-dir'");
  o.cwd = "/dev/null";
  expect_refused(&o, -ENOTDIR, "cwd: '/dev/null' is not a directory");
  o = child_opts("x", true_argv);
  o.stdout_mode = MG_STDIO_FILE;
  o.stdout_path = "";
  expect_refused(&o, -EINVAL,
                 "stdout: empty (accepted: \"inherit\", \"null\" or a file "
                 "path)");
  o.stdout_path = "/tmp";
  expect_refused(&o, -EISDIR, "stdout: '/tmp' is a directory");
  char *const bad_env[] = {"=x", NULL};
  o = child_opts("x", true_argv);
  o.env = bad_env;
  expect_refused(&o, -EINVAL, "env: entry '=x' has an empty name");
  o = child_opts("a b", true_argv);
  expect_refused(&o, -EINVAL, "name: invalid name 'a b' (it holds a character");
  char *const missing[] = {"/nonexistent/mg-program", NULL};
  o = child_opts("x", missing);
  expect_refused(&o, -ENOENT, "cmd: program '/nonexistent/mg-program' not");
  char *const dir[] = {"/tmp", NULL};
  o = child_opts("x", dir);
  expect_refused(&o, -EISDIR, "cmd: '/tmp' is a directory");
  char plain[PATH_MAX + 64];
  snprintf(plain, sizeof plain, "%s", tmp_path("plain-file"));
  FILE *f = fopen(plain, "w");
  ASSERT(f != NULL);
  fclose(f);
  ASSERT_EQ(chmod(plain, 0644), 0);
  char *const noexec[] = {plain, NULL};
  o = child_opts("x", noexec);
  expect_refused(&o, -EACCES, "cmd: program '");
  ASSERT_CONTAINS(err, "' is not executable");
  /* a name the cgroup of cgroup mode cannot hold */
  char long_name[65];
  memset(long_name, 'n', 64);
  long_name[64] = '\0';
  o = child_opts(long_name, true_argv);
  o.enforce = MG_ENFORCE_CGROUP;
  o.limit_bytes = 64 * MIB;
  expect_refused(&o, -EINVAL, "name: 'nnnn");
  ASSERT_CONTAINS(err, "longer than 64 characters");
  /* duplicate */
  o = child_opts("dup", sleep_argv);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, NULL, err, sizeof err), -EEXIST);
  ASSERT_STR_EQ(err, "name: a process named 'dup' is already running (names "
                     "are unique among live processes)");
  mg_child_release(c);
  sup_finish();
  cap_close();
}

/* none and data bound memory: not above the effective memory (here the
 * fixture's 8 GiB), a warning above 90 %; as bounds address space. */
TEST(limit_rule_per_mode) {
  build_tree("rule", 0);
  sup_on_tree();
  mg_rlimit_support rl;
  mg_rlimit_probe(&rl);
  mg_child_opts o = child_opts("big", true_argv);
  o.enforce = MG_ENFORCE_NONE;
  o.limit_bytes = 9 * 1024 * MIB;
  expect_refused(&o, MG_ELIMIT,
                 "limit: Memory limit validation failed: Requested limit 9.00 "
                 "GiB exceeds total system memory 8.00 GiB");
  if (rl.data_enforced) {
    o.enforce = MG_ENFORCE_DATA;
    expect_refused(&o, MG_ELIMIT, "limit: Memory limit validation failed:");
  }
  o.enforce = MG_ENFORCE_AUTO; /* no cgroup here: falls back, same rule */
  expect_refused(&o, MG_ELIMIT, "limit: Memory limit validation failed:");
  if (rl.as_enforced) { /* address space, not RAM: 30 GiB is fine */
    o.enforce = MG_ENFORCE_AS;
    o.limit_bytes = 30 * 1024 * MIB;
    mg_enforce e;
    ASSERT_EQ(mg_child_validate(sup, &o, &e, err, sizeof err), 0);
    ASSERT_EQ(e, MG_ENFORCE_AS);
  }
  o.enforce = MG_ENFORCE_CGROUP;
  o.limit_bytes = 64 * MIB;
  expect_refused(&o, MG_ENOTSUP,
                 "enforce: cgroup not available here: no "
                 "cgroup memory controller is mounted");

  /* above 90 %: valid, warned, kept */
  o = child_opts("high", sleep_argv);
  o.enforce = MG_ENFORCE_NONE;
  o.limit_bytes = 7680 * MIB; /* 93.75 % */
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
  ASSERT(mg_child_limit_warning(c) != NULL);
  ASSERT_CONTAINS(mg_child_limit_warning(c),
                  "Requested limit 7.50 GiB is 93.8% of total system memory "
                  "8.00 GiB");
  ASSERT_CONTAINS(cap_text(), "limit_warning name=high enforce=none");

  /* set_limit: the same rule */
  ASSERT_EQ(mg_child_set_limit(c, 9 * 1024 * MIB, err, sizeof err), MG_ELIMIT);
  ASSERT_CONTAINS(err, "Requested limit 9.00 GiB exceeds total system memory");
  ASSERT_U64_EQ(mg_child_limit(c), 7680 * MIB); /* unchanged */
  ASSERT_EQ(mg_child_set_limit(c, 0, err, sizeof err), -EINVAL);
  ASSERT_EQ(mg_child_set_limit(c, 1024 * MIB, err, sizeof err), 0);
  ASSERT(mg_child_limit_warning(c) == NULL);
  ASSERT_EQ(mg_child_set_limit(c, MG_CHILD_NO_LIMIT, err, sizeof err), 0);
  ASSERT_U64_EQ(mg_child_limit(c), 0); /* a watched limit can go */
  mg_child_release(c);
  sup_finish();
  cap_close();
}

/* Inside a container: the cgroup's 2 GiB limit is the effective memory. */
TEST(limit_rule_in_a_limited_cgroup) {
  build_tree("container", 1);
  sup_on_tree();
  mg_child_opts o = child_opts("c", true_argv);
  o.enforce = MG_ENFORCE_NONE;
  o.limit_bytes = 3 * 1024 * MIB;
  expect_refused(&o, MG_ELIMIT,
                 "limit: Memory limit validation failed: Requested limit 3.00 "
                 "GiB exceeds total system memory 2.00 GiB");
  o.limit_bytes = 1024 * MIB;
  ASSERT_EQ(mg_child_validate(sup, &o, NULL, err, sizeof err), 0);
  sup_finish();
  cap_close();
}

/* In a child whose hard RLIMIT_AS is set: an as limit above it refused. */
static int as_hard_child(void) {
  mg_proc_status st;
  if (mg_proc_status_read(NULL, 0, &st, NULL, 0) < 0)
    return 10;
  rlim_t hard = (rlim_t)(st.vsize_bytes + ((uint64_t)4 << 30));
  struct rlimit lim = {hard, hard};
  if (setrlimit(RLIMIT_AS, &lim) < 0)
    return 11;
  mg_child_opts o = child_opts("as", true_argv);
  o.enforce = MG_ENFORCE_AS;
  o.limit_bytes = (uint64_t)hard + 1;
  mg_rlimit_support rl;
  mg_rlimit_probe(&rl);
  if (!rl.as_enforced)
    return 0; /* nothing to check here */
  if (mg_child_validate(sup, &o, NULL, err, sizeof err) != MG_ELIMIT)
    return 12;
  if (!strstr(err, "is above the hard RLIMIT_AS of this process"))
    return 13;
  o.limit_bytes = (uint64_t)hard - 1;
  if (mg_child_validate(sup, &o, NULL, err, sizeof err) != 0)
    return 14;
  return 0;
}

TEST(as_limit_within_hard_rlimit) {
  build_tree("as", 0);
  sup_on_tree();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0)
    _exit(as_hard_child());
  int st;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0);
  sup_finish();
  cap_close();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(opts_init_defaults);
  SUP_RUN(every_range);
  SUP_RUN(other_options_and_codes);
  SUP_RUN(limit_rule_per_mode);
  SUP_RUN(limit_rule_in_a_limited_cgroup);
  SUP_RUN(as_limit_within_hard_rlimit);
  cap_close();
  return mg_test_report();
}
