/* test_sup_spawn.c — the supervisor's spawn: validation (nothing started,
 * the field named), exit codes, environment (MG_RESTARTS, MG_CHILD_NAME,
 * env), cwd, stdio, what the child inherits (signal dispositions, mask,
 * descriptors, process group), exec failures reported through the pipe,
 * spawning from inside on_exit, released children still reaped. */
#include "test_sup_util.h"

#include <sys/resource.h>

static char *const true_argv[] = {"true", NULL};

TEST(names_parse) {
  mg_enforce e;
  mg_restart r;
  const char *modes[] = {"auto", "cgroup", "data", "as", "none"};
  for (int i = 0; i < 5; i++) {
    ASSERT_EQ(mg_enforce_parse(modes[i], &e, err, sizeof err), 0);
    ASSERT_EQ((int)e, i);
    ASSERT_STR_EQ(mg_enforce_name(e), modes[i]);
  }
  ASSERT_EQ(mg_enforce_parse("cgroups", &e, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "enforce: unknown mode 'cgroups'");
  ASSERT_CONTAINS(err, "auto, cgroup, data, as, none");
  ASSERT_EQ(mg_restart_parse("on-failure", &r, err, sizeof err), 0);
  ASSERT_EQ(r, MG_RESTART_ON_FAILURE);
  ASSERT_EQ(mg_restart_parse("always", &r, err, sizeof err), 0);
  ASSERT_EQ(r, MG_RESTART_ALWAYS);
  ASSERT_EQ(mg_restart_parse("sometimes", &r, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "restart: unknown policy 'sometimes'");
  ASSERT_STR_EQ(mg_restart_name(MG_RESTART_NO), "no");
  ASSERT_STR_EQ(mg_exit_reason_name(MG_EXIT_OOM), "oom");
  ASSERT_STR_EQ(mg_exit_reason_name(MG_EXIT_LIMIT), "limit");
  ASSERT_STR_EQ(mg_exit_reason_name(MG_EXIT_SIGNAL), "signal");
  ASSERT_STR_EQ(mg_exit_reason_name(MG_EXIT_EXIT), "exit");
}

TEST(spawn_true) {
  sup_start();
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("t1", true_argv);
  mg_child *c = NULL;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT(c != NULL);
  ASSERT_GT(mg_child_pid(c), 0);
  ASSERT(mg_child_running(c));
  ASSERT_STR_EQ(mg_child_name(c), "t1");
  ASSERT_EQ(mg_child_enforce(c), MG_ENFORCE_NONE); /* auto without limit */
  mg_child *list[4];
  ASSERT_EQ(mg_sup_children(sup, list, 4), 1);
  ASSERT(list[0] == c);
  pid_t pid = mg_child_pid(c);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exits, 1);
  ASSERT_EQ(r.closes, 1);
  ASSERT_EQ(r.restarts, 0);
  ASSERT_EQ(r.exit[0].pid, pid);
  ASSERT_EQ(r.exit[0].code, 0);
  ASSERT_EQ(r.exit[0].signal, 0);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_EXIT);
  ASSERT_EQ(r.exit[0].will_restart, 0);
  ASSERT_EQ(r.exit[0].restarts, 0);
  ASSERT_CONTAINS(r.exit[0].detail, "exited with code 0");
  ASSERT(!mg_child_running(c));
  ASSERT(mg_child_closed(c));
  ASSERT_EQ(mg_child_pid(c), 0);
  ASSERT_EQ(mg_sup_children(sup, list, 4), 0);
  ASSERT_EQ(proc_state(pid), 0); /* reaped: no zombie */
  ASSERT_EQ(mg_child_signal(c, SIGTERM), -ESRCH);
  mg_child_sample s;
  ASSERT_EQ(mg_child_memory(c, &s, err, sizeof err), -ESRCH);
  mg_child_release(c);
  sup_finish();
}

TEST(exit_code_and_signal) {
  sup_start();
  rec r1 = {0}, r2 = {0};
  mg_child_events e1 = rec_events(&r1), e2 = rec_events(&r2);
  char *const a1[] = {"sh", "-c", "exit 7", NULL};
  char *const a2[] = {"sh", "-c", "kill -SEGV $$", NULL};
  mg_child_opts o1 = child_opts("code7", a1), o2 = child_opts("segv", a2);
  ASSERT_EQ(mg_child_spawn(sup, &o1, &e1, NULL, err, sizeof err), 0);
  ASSERT_EQ(mg_child_spawn(sup, &o2, &e2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r1, 20000));
  ASSERT(run_until(rec_closed, &r2, 20000));
  ASSERT_EQ(r1.exit[0].code, 7);
  ASSERT_EQ(r1.exit[0].reason, MG_EXIT_EXIT);
  ASSERT_EQ(r2.exit[0].code, -1);
  ASSERT_EQ(r2.exit[0].signal, SIGSEGV);
  ASSERT_EQ(r2.exit[0].reason, MG_EXIT_SIGNAL);
  ASSERT_CONTAINS(r2.exit[0].detail, "SIGSEGV");
  sup_finish();
}

/* Each bad field: -error, err names the field, nothing started. */
static void expect_invalid(const mg_child_opts *o, const char *want) {
  mg_child *c = (mg_child *)1;
  err[0] = '\0';
  int rc = mg_child_spawn(sup, o, NULL, &c, err, sizeof err);
  if (rc >= 0)
    MG__FAIL("spawn accepted options that should fail with \"%s\"", want);
  ASSERT(c == NULL);
  ASSERT_CONTAINS(err, want);
  ASSERT(strncmp(err, want, strlen(want)) == 0);
  ASSERT(mg_child_validate(sup, o, NULL, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, want);
  ASSERT_EQ(mg_sup_children(sup, NULL, 0), 0);
}

TEST(validation) {
  sup_start();
  char *const nosuch[] = {"nosuch-mg-program", NULL};
  mg_child_opts o = child_opts("nosuch", nosuch);
  expect_invalid(&o, "cmd: program 'nosuch-mg-program' not found in PATH");
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, NULL, err, sizeof err), -ENOENT);

  char *const empty[] = {"", NULL};
  char *const none[] = {NULL};
  o = child_opts("x", empty);
  expect_invalid(&o, "cmd: the program name is empty");
  o = child_opts("x", none);
  expect_invalid(&o, "cmd: required");
  o = child_opts("x", NULL);
  expect_invalid(&o, "cmd: required");
  char *const rel[] = {"./no/such/prog", NULL};
  o = child_opts("x", rel);
  expect_invalid(&o, "cmd: program './no/such/prog' not found");
  char *const dir[] = {"/tmp", NULL};
  o = child_opts("x", dir);
  expect_invalid(&o, "cmd: '/tmp' is a directory");
  const char *plain = tmp_path("not-executable");
  FILE *f = fopen(plain, "w");
  ASSERT(f != NULL);
  fclose(f);
  char *const noexec[] = {(char *)plain, NULL};
  o = child_opts("x", noexec);
  expect_invalid(&o, "cmd: program");
  ASSERT_CONTAINS(err, "is not executable");

  o = child_opts("a/b", true_argv);
  expect_invalid(&o, "name: invalid name 'a/b'");
  o = child_opts("..", true_argv);
  expect_invalid(&o, "name: invalid name");
  o = child_opts("", true_argv);
  expect_invalid(&o, "name: required");
  o = child_opts(NULL, true_argv);
  expect_invalid(&o, "name: required");
  char long_name[80];
  memset(long_name, 'n', 65);
  long_name[65] = '\0';
  o = child_opts(long_name, true_argv);
  expect_invalid(&o, "name: invalid name");

  o = child_opts("x", true_argv);
  o.cwd = "/no/such/dir";
  expect_invalid(&o, "cwd: '/no/such/dir'");
  o.cwd = plain;
  expect_invalid(&o, "cwd:");
  ASSERT_CONTAINS(err, "is not a directory");

  char *const bad_env[] = {"FOO", NULL};
  o = child_opts("x", true_argv);
  o.env = bad_env;
  expect_invalid(&o, "env: entry 'FOO' is not KEY=VALUE");

  o = child_opts("x", true_argv);
  o.enforce = MG_ENFORCE_DATA;
  expect_invalid(&o, "limit: required with enforce=data");
  o.enforce = MG_ENFORCE_CGROUP;
  if (cgroup_usable())
    expect_invalid(&o, "limit: required with enforce=cgroup");
  else
    expect_invalid(&o, "enforce: cgroup not available here:");
  o.enforce = (mg_enforce)42;
  o.limit_bytes = 64 * MIB;
  expect_invalid(&o, "enforce: unknown mode 42");
  o.enforce = MG_ENFORCE_NONE;
  o.limit_bytes = UINT64_MAX - 1;
  expect_invalid(&o, "limit: 18446744073709551614 bytes is more than 2^63-1");
  o.limit_bytes = 0;
  expect_invalid(&o, "limit: must be positive (omit it for no limit)");

  o = child_opts("x", true_argv);
  o.warn_at = 1.5;
  expect_invalid(&o, "warn_at: 1.5 is out of range (accepted: a fraction");
  o.warn_at = -0.1;
  expect_invalid(&o, "warn_at:");
  o.warn_at = NAN;
  expect_invalid(&o, "warn_at:");
  o = child_opts("x", true_argv);
  o.sample_ms = 3;
  expect_invalid(&o, "sample_ms:");
  o = child_opts("x", true_argv);
  o.restart = (mg_restart)9;
  expect_invalid(&o, "restart: unknown policy 9");
  o = child_opts("x", true_argv);
  o.max_restarts = -2;
  expect_invalid(&o, "max_restarts:");
  o = child_opts("x", true_argv);
  o.backoff_ms = 500;
  o.backoff_max_ms = 100;
  expect_invalid(&o, "backoff_max_ms:");

  o = child_opts("x", true_argv);
  o.stdout_mode = MG_STDIO_FILE;
  expect_invalid(&o, "stdout: a file path is required");
  o.stdout_path = "/no/such/dir/out.log";
  expect_invalid(&o, "stdout: cannot create '/no/such/dir/out.log'");
  o = child_opts("x", true_argv);
  o.stderr_mode = MG_STDIO_FILE;
  o.stderr_path = "/tmp";
  expect_invalid(&o, "stderr: '/tmp' is a directory");
  o.stderr_mode = (mg_stdio)7;
  expect_invalid(&o, "stderr: unknown mode 7");

  /* Duplicate names among live children. */
  char *const sleeper[] = {"sleep", "5", NULL};
  o = child_opts("dup", sleeper);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
  mg_child_opts o2 = child_opts("dup", true_argv);
  mg_child *c2 = NULL;
  ASSERT_EQ(mg_child_spawn(sup, &o2, NULL, &c2, err, sizeof err), -EEXIST);
  ASSERT_CONTAINS(err, "name: a process named 'dup' is already running");
  ASSERT(c2 == NULL);
  ASSERT_EQ(mg_child_validate(sup, &o, NULL, err, sizeof err), -EEXIST);
  mg_child_release(c);
  ASSERT_LE(sup_finish(), 2000);
}

/* A validation failure before any spawn leaves no handle behind. */
TEST(free_without_spawn) {
  sup_start();
  char *const nosuch[] = {"nosuch-mg-program", NULL};
  mg_child_opts o = child_opts("nosuch", nosuch);
  ASSERT(mg_child_spawn(sup, &o, NULL, NULL, err, sizeof err) < 0);
  mg_sup_free(sup);
  sup = NULL;
  ASSERT_EQ(uv_loop_close(&loop), 0);
  loop_open = 0;
}

TEST(environment) {
  sup_start();
  const char *out = tmp_path("env.out");
  char script[PATH_MAX + 128];
  snprintf(script, sizeof script,
           "echo \"$MG_RESTARTS $MG_CHILD_NAME $FOO $BAR\" >> '%s'", out);
  char *const argv[] = {"sh", "-c", script, NULL};
  char *const env[] = {"FOO=bar", "MG_RESTARTS=99", "BAR=1", "BAR=2", NULL};
  setenv("FOO", "inherited", 1);
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("envtest", argv);
  o.env = env;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  unsetenv("FOO");
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 0);
  /* ours win over opts env (MG_RESTARTS), opts env over inherited, the
   * last of two equal keys wins */
  ASSERT_STR_EQ(slurp(out), "0 envtest bar 2\n");
  sup_finish();
}

TEST(cwd_and_stdio) {
  sup_start();
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", tmp_path("wd"));
  ASSERT_EQ(mkdir(dir, 0755), 0);
  char real[PATH_MAX];
  ASSERT(realpath(dir, real) != NULL);
  const char *out = tmp_path("stdio.out");
  char outp[PATH_MAX + 64], errp[PATH_MAX + 64];
  snprintf(outp, sizeof outp, "%s", out);
  snprintf(errp, sizeof errp, "%s", tmp_path("stdio.err"));
  char *const argv[] = {"sh", "-c", "pwd; echo to-stderr >&2", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("stdio", argv);
  o.cwd = dir;
  o.stdout_mode = MG_STDIO_FILE;
  o.stdout_path = outp;
  o.stderr_mode = MG_STDIO_FILE;
  o.stderr_path = errp;
  o.restart = MG_RESTART_ALWAYS;
  o.max_restarts = 1;
  o.backoff_ms = 10;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exits, 2);
  char want[2 * PATH_MAX + 8];
  snprintf(want, sizeof want, "%s\n%s\n", real, real); /* appended */
  ASSERT_STR_EQ(slurp(outp), want);
  ASSERT_STR_EQ(slurp(errp), "to-stderr\nto-stderr\n");

  /* null: nothing reaches our stdout; a relative program path is
   * resolved against cwd */
  FILE *f = fopen(tmp_path("wd/prog.sh"), "w");
  ASSERT(f != NULL);
  fprintf(f, "#!/bin/sh\necho from-prog > prog.out\n");
  fclose(f);
  ASSERT_EQ(chmod(tmp_path("wd/prog.sh"), 0755), 0);
  char *const argv2[] = {"./prog.sh", NULL};
  rec r2 = {0};
  mg_child_events ev2 = rec_events(&r2);
  mg_child_opts o2 = child_opts("relprog", argv2);
  o2.cwd = dir;
  o2.stdout_mode = MG_STDIO_NULL;
  o2.stderr_mode = MG_STDIO_NULL;
  ASSERT_EQ(mg_child_spawn(sup, &o2, &ev2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r2, 20000));
  ASSERT_EQ(r2.exit[0].code, 0);
  ASSERT_STR_EQ(slurp(tmp_path("wd/prog.out")), "from-prog\n");
  sup_finish();
}

/* The child starts clean: default signal dispositions, empty mask, no
 * inherited descriptor beyond 0-2, its own process group. */
TEST(child_starts_clean) {
  sup_start();
  int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
  ASSERT_GE(leak, 3);
  struct sigaction ign, old_int, old_usr1;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &old_int);
  sigaction(SIGUSR1, &ign, &old_usr1);
  sigset_t blk, old_mask;
  sigemptyset(&blk);
  sigaddset(&blk, SIGUSR2);
  sigprocmask(SIG_BLOCK, &blk, &old_mask);

  const char *out = tmp_path("clean.out");
  char outp[PATH_MAX + 64];
  snprintf(outp, sizeof outp, "%s", out);
  /* cat reads its own status and lists its descriptors */
  char *const argv[] = {"cat", "/proc/self/status", NULL};
  char *const argv_fd[] = {"ls", "/proc/self/fd", NULL};
  rec r = {0}, r2 = {0};
  mg_child_events ev = rec_events(&r), ev2 = rec_events(&r2);
  mg_child_opts o = child_opts("clean", argv);
  o.stdout_mode = MG_STDIO_FILE;
  o.stdout_path = outp;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  char fdp[PATH_MAX + 64];
  snprintf(fdp, sizeof fdp, "%s", tmp_path("fds.out"));
  mg_child_opts o2 = child_opts("fds", argv_fd);
  o2.stdout_mode = MG_STDIO_FILE;
  o2.stdout_path = fdp;
  ASSERT_EQ(mg_child_spawn(sup, &o2, &ev2, NULL, err, sizeof err), 0);

  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGUSR1, &old_usr1, NULL);
  sigprocmask(SIG_SETMASK, &old_mask, NULL);
  close(leak);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT(run_until(rec_closed, &r2, 20000));
  const char *st = slurp(outp);
  ASSERT_CONTAINS(st, "SigIgn:\t0000000000000000");
  ASSERT_CONTAINS(st, "SigBlk:\t0000000000000000");
  /* ls sees 0, 1, 2 and the directory it reads: nothing else */
  const char *fds = slurp(fdp);
  int n = 0, maxfd = -1;
  for (const char *p = fds; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    n++;
    if (v > maxfd)
      maxfd = (int)v;
    p = end;
  }
  ASSERT_EQ(n, 4);
  ASSERT_EQ(maxfd, 3);

  /* own process group */
  char *const sleeper[] = {"sleep", "5", NULL};
  mg_child_opts o3 = child_opts("pgrp", sleeper);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o3, NULL, &c, err, sizeof err), 0);
  ASSERT_EQ(getpgid(mg_child_pid(c)), mg_child_pid(c));
  ASSERT_NE(getpgid(mg_child_pid(c)), getpgid(0));
  mg_child_sample s;
  ASSERT_EQ(mg_child_memory(c, &s, err, sizeof err), 0);
  ASSERT_EQ(s.pid, mg_child_pid(c));
  ASSERT_GT(s.rss_bytes, 0);
  ASSERT_GT(s.vsize_bytes, 0);
  ASSERT_U64_EQ(s.used_bytes, s.rss_bytes); /* enforce none */
  ASSERT_EQ(s.limit_bytes, 0);
  ASSERT_DBL_NEAR(s.fraction, 0, 0);
  mg_child_release(c);
  ASSERT_LE(sup_finish(), 2000);
}

/* A failure between fork and exec comes back through the pipe as a spawn
 * error; nothing is left running. */
TEST(exec_failure_reported) {
  sup_start();
  const char *bad = tmp_path("bad-format");
  FILE *f = fopen(bad, "w");
  ASSERT(f != NULL);
  fprintf(f, "this is not a program\n");
  fclose(f);
  ASSERT_EQ(chmod(bad, 0755), 0);
  char badp[PATH_MAX + 64];
  snprintf(badp, sizeof badp, "%s", bad);
  char *const argv[] = {badp, NULL};
  mg_child_opts o = child_opts("badexec", argv);
  mg_child *c = (mg_child *)1;
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), -ENOEXEC);
  ASSERT(c == NULL);
  ASSERT_CONTAINS(err, "cmd: cannot execute '");
  ASSERT_CONTAINS(err, "Exec format error");
  ASSERT_EQ(mg_sup_children(sup, NULL, 0), 0);

  /* too small to load: RLIMIT_DATA of 4 KiB */
  if (mg_sup_auto_enforce(sup, NULL) != MG_ENFORCE_NONE) {
    mg_rlimit_support rl;
    mg_rlimit_probe(&rl);
    if (rl.data_enforced) {
      char *const hog[] = {(char *)hog_path(), "--max", "1M", NULL};
      o = child_opts("tiny", hog);
      o.enforce = MG_ENFORCE_DATA;
      o.limit_bytes = 4096;
      rec r = {0};
      mg_child_events ev = rec_events(&r);
      int rc = mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err);
      if (rc == 0) { /* loaded after all: then it cannot get far */
        ASSERT(run_until(rec_closed, &r, 20000));
        ASSERT(r.exit[0].code != 0);
      } else {
        ASSERT_CONTAINS(err, "cmd: cannot execute");
        ASSERT_CONTAINS(err, "RLIMIT_DATA");
      }
    }
  }
  sup_finish();
}

/* on_exit may spawn; a released child is still reaped. */
static rec chain_rec;
static int chain_spawned;
static mg_child *chain_child;
static void chain_after_exit(mg_child *c, const mg_child_exit *e, rec *r) {
  (void)c;
  (void)e;
  (void)r;
  if (chain_spawned++)
    return;
  static char *const argv[] = {"sh", "-c", "exit 5", NULL};
  mg_child_opts o = child_opts("chain2", argv);
  mg_child_events ev = rec_events(&chain_rec);
  if (mg_child_spawn(sup, &o, &ev, &chain_child, err, sizeof err) < 0)
    fprintf(stderr, "spawn from on_exit: %s\n", err);
}

TEST(spawn_from_on_exit_and_release) {
  sup_start();
  memset(&chain_rec, 0, sizeof chain_rec);
  chain_spawned = 0;
  rec r = {0};
  r.after_exit = chain_after_exit;
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("chain1", true_argv);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &chain_rec, 20000));
  ASSERT_EQ(chain_rec.exit[0].code, 5);
  ASSERT_EQ(r.exits, 1);
  mg_child_release(c);
  mg_child_release(chain_child);

  /* released while running: no events, but reaped */
  char *const argv[] = {"sh", "-c", "sleep 0.2", NULL};
  rec r2 = {0};
  mg_child_events ev2 = rec_events(&r2);
  mg_child_opts o2 = child_opts("released", argv);
  mg_child *c2;
  ASSERT_EQ(mg_child_spawn(sup, &o2, &ev2, &c2, err, sizeof err), 0);
  pid_t pid = mg_child_pid(c2);
  mg_child_release(c2);
  ASSERT_EQ(mg_sup_children(sup, NULL, 0), 1);
  uv_run(&loop, UV_RUN_DEFAULT); /* ends: nothing keeps it alive then */
  ASSERT_EQ(proc_state(pid), 0);
  ASSERT_EQ(r2.exits, 0);
  ASSERT_EQ(r2.closes, 0);
  ASSERT_EQ(mg_sup_children(sup, NULL, 0), 0);
  sup_finish();
}

/* An idle supervisor does not keep the loop alive. */
TEST(idle_loop_ends) {
  sup_start();
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("idle", true_argv);
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  uint64_t t0 = now_ms();
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_LT(now_ms() - t0, 3000);
  ASSERT_EQ(r.closes, 1);
  sup_finish();
}

/* Children are read under the supervisor's proc root: a root that lacks
 * the child's directory hides it, a link to the real one shows it. */
TEST(children_read_under_proc_root) {
  char root[PATH_MAX], link[PATH_MAX + 32];
  snprintf(root, sizeof root, "%s", tmp_path("proc-root"));
  ASSERT_EQ(mkdir(root, 0755), 0);
  snprintf(link, sizeof link, "%s/self", root);
  ASSERT_EQ(symlink("/proc/self", link), 0);
  snprintf(link, sizeof link, "%s/meminfo", root);
  ASSERT_EQ(symlink("/proc/meminfo", link), 0);
  ASSERT_EQ(uv_loop_init(&loop), 0);
  loop_open = 1;
  mg_sup_opts so;
  memset(&so, 0, sizeof so);
  so.loop = &loop;
  so.logger = test_logger();
  so.paths.proc_root = root;
  ASSERT_EQ(mg_sup_new(&so, &sup, err, sizeof err), 0);
  char *const sleeper[] = {"sleep", "5", NULL};
  mg_child_opts o = child_opts("hidden", sleeper);
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
  mg_child_sample s;
  ASSERT_EQ(mg_child_memory(c, &s, err, sizeof err), -ESRCH);
  char target[64];
  snprintf(target, sizeof target, "/proc/%ld", (long)mg_child_pid(c));
  snprintf(link, sizeof link, "%s/%ld", root, (long)mg_child_pid(c));
  ASSERT_EQ(symlink(target, link), 0);
  ASSERT_EQ(mg_child_memory(c, &s, err, sizeof err), 0);
  ASSERT_EQ(s.pid, mg_child_pid(c));
  ASSERT_GT(s.rss_bytes, 0);
  mg_child_release(c);
  ASSERT_LE(sup_finish(), 2000);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  SUP_RUN(names_parse);
  SUP_RUN(spawn_true);
  SUP_RUN(exit_code_and_signal);
  SUP_RUN(validation);
  SUP_RUN(free_without_spawn);
  SUP_RUN(environment);
  SUP_RUN(cwd_and_stdio);
  SUP_RUN(child_starts_clean);
  SUP_RUN(exec_failure_reported);
  SUP_RUN(spawn_from_on_exit_and_release);
  SUP_RUN(idle_loop_ends);
  SUP_RUN(children_read_under_proc_root);
  return mg_test_report();
}
