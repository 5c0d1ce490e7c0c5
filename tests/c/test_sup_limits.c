/* test_sup_limits.c — limits of supervised children, for real: in force
 * before the program's first instruction (RLIMIT_DATA and cgroup), an
 * allocation refused at RLIMIT_DATA / RLIMIT_AS classified `limit` (from
 * the output, or from sampled usage), warn once per upward crossing,
 * sampling, set_limit on a running child. cgroup enforcement is in
 * test_sup_cgroup.c. The demo workload mg-hog is the child. */
#include "test_sup_util.h"

static mg_rlimit_support rl;

static int rl_data(void) {
  mg_rlimit_probe(&rl);
  return rl.data_enforced;
}

/* MG_HOG_ALLOC_AT_START makes main's first statement allocate. */
TEST(data_limit_before_first_instruction) {
  if (!rl_data())
    SKIP("RLIMIT_DATA is not enforced here: %s", rl.data_reason);
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max", "1M", "--hold", "0", NULL};
  char *const env[] = {"MG_HOG_ALLOC_AT_START=256M", NULL};
  char errp[PATH_MAX + 64];
  snprintf(errp, sizeof errp, "%s", tmp_path("first.err"));
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("first", argv);
  o.env = env;
  o.enforce = MG_ENFORCE_DATA;
  o.limit_bytes = 64 * MIB;
  o.stderr_mode = MG_STDIO_FILE;
  o.stderr_path = errp;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT_EQ(mg_child_enforce(c), MG_ENFORCE_DATA);
  /* where groups can be made it has one to watch, without a limit */
  const char *dir = mg_child_cgroup_dir(c);
  if (dir) {
    char lf[PATH_MAX + 64];
    snprintf(lf, sizeof lf, "%s/memory.limit_in_bytes", dir);
    const char *lim = slurp(lf);
    if (!lim[0]) {
      snprintf(lf, sizeof lf, "%s/memory.max", dir);
      lim = slurp(lf);
    }
    ASSERT(strncmp(lim, "max", 3) == 0 || strlen(lim) >= 18); /* unlimited */
  }
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 3);
  ASSERT_EQ(r.exit[0].signal, 0);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(r.exit[0].detail, "RLIMIT_DATA 64.00 MiB");
  ASSERT_CONTAINS(r.exit[0].detail, "cannot allocate memory");
  ASSERT_CONTAINS(slurp(errp),
                  "mg-hog: allocation of 256.00 MiB failed: Cannot allocate "
                  "memory");
  mg_child_release(c);

  /* the same program without the limit allocates fine */
  rec r2 = {0};
  mg_child_events ev2 = rec_events(&r2);
  o.name = "first-free";
  o.enforce = MG_ENFORCE_NONE;
  o.limit_bytes = MG_CHILD_NO_LIMIT;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r2, 20000));
  ASSERT_EQ(r2.exit[0].code, 0);
  sup_finish();
}

/* Growing past RLIMIT_DATA: detected from the output, and, with stderr
 * not captured, from the sampled usage (the heuristic). */
TEST(data_limit_while_growing) {
  if (!rl_data())
    SKIP("RLIMIT_DATA is not enforced here: %s", rl.data_reason);
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--rate", "200M", "--quiet", NULL};
  char errp[PATH_MAX + 64];
  snprintf(errp, sizeof errp, "%s", tmp_path("grow.err"));
  rec r1 = {0}, r2 = {0};
  mg_child_events e1 = rec_events(&r1), e2 = rec_events(&r2);
  mg_child_opts o = child_opts("grow-file", argv);
  o.enforce = MG_ENFORCE_DATA;
  o.limit_bytes = 48 * MIB;
  o.sample_ms = 10;
  o.stderr_mode = MG_STDIO_FILE;
  o.stderr_path = errp;
  ASSERT_EQ(mg_child_spawn(sup, &o, &e1, NULL, err, sizeof err), 0);
  mg_child_opts o2 = o;
  o2.name = "grow-sampled";
  o2.stderr_mode = MG_STDIO_NULL;
  ASSERT_EQ(mg_child_spawn(sup, &o2, &e2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r1, 20000));
  ASSERT(run_until(rec_closed, &r2, 20000));
  ASSERT_EQ(r1.exit[0].code, 3);
  ASSERT_EQ(r1.exit[0].reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(r1.exit[0].detail, "says \"cannot allocate memory\"");
  ASSERT_EQ(r2.exit[0].code, 3);
  ASSERT_EQ(r2.exit[0].reason, MG_EXIT_LIMIT);
  /* stderr = null is still relayed: its tail names the failure */
  ASSERT_CONTAINS(r2.exit[0].detail, "its output (its stderr) says");
  ASSERT_CONTAINS(r2.exit[0].stderr_tail, "Cannot allocate memory");
  ASSERT_GT(r2.samples, 3);
  ASSERT_GE(r2.exit[0].peak_bytes, 24 * MIB); /* >= 50 % */
  ASSERT_LE(r2.exit[0].peak_bytes, 48 * MIB);
  ASSERT_GE(r2.max_used, 24 * MIB);
  ASSERT_GT(r2.exit[0].runtime_ms, 100);
  sup_finish();
}

/* A normal non-zero exit far below the limit stays `exit`. */
TEST(data_limit_not_blamed) {
  if (!rl_data())
    SKIP("RLIMIT_DATA is not enforced here: %s", rl.data_reason);
  sup_start();
  char *const argv[] = {"sh", "-c", "sleep 0.1; exit 4", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("innocent", argv);
  o.enforce = MG_ENFORCE_DATA;
  o.limit_bytes = 512 * MIB;
  o.sample_ms = 20;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 4);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_EXIT);
  sup_finish();
}

TEST(as_limit) {
  mg_rlimit_probe(&rl);
  if (!rl.as_enforced)
    SKIP("RLIMIT_AS is not enforced here: %s", rl.as_reason);
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--no-touch", "--step", "8M",
                        "--quiet",          NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("as-hog", argv);
  o.enforce = MG_ENFORCE_AS;
  o.limit_bytes = 128 * MIB;
  o.sample_ms = 10;
  char errp[PATH_MAX + 64];
  snprintf(errp, sizeof errp, "%s", tmp_path("as.err"));
  o.stderr_mode = MG_STDIO_FILE;
  o.stderr_path = errp;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, &c, err, sizeof err), 0);
  ASSERT_EQ(mg_child_enforce(c), MG_ENFORCE_AS);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 3);
  ASSERT_EQ(r.exit[0].reason, MG_EXIT_LIMIT);
  ASSERT_CONTAINS(r.exit[0].detail, "RLIMIT_AS 128.00 MiB");
  mg_child_release(c);
  sup_finish();
}

/* warn: once per upward crossing, re-armed below. mg-hog grows to 80 MiB,
 * holds, frees, rests, grows again. */
TEST(warn_once_per_crossing) {
  if (!rl_data())
    SKIP("RLIMIT_DATA is not enforced here: %s", rl.data_reason);
  sup_start();
  char *const argv[] = {
      (char *)hog_path(), "--max", "80M",     "--cycle", "0.3",
      "--cycles",         "2",     "--quiet", NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("sawtooth", argv);
  o.enforce = MG_ENFORCE_DATA;
  o.limit_bytes = 160 * MIB;
  o.warn_at = 0.4; /* 64 MiB */
  o.sample_ms = 20;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.exit[0].code, 0);
  ASSERT_EQ(r.warns, 2);
  ASSERT_GT(r.samples, 20);
  ASSERT_GE(r.max_used, 80 * MIB);
  sup_finish();
}

/* No warn_at, or a limit that is never approached: no warn. */
TEST(no_warn_below) {
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max", "8M", "--hold", "0.3",
                        "--quiet",          NULL};
  rec r = {0};
  mg_child_events ev = rec_events(&r);
  mg_child_opts o = child_opts("calm", argv);
  o.enforce = MG_ENFORCE_NONE; /* watch only: used = RSS */
  o.limit_bytes = 256 * MIB;
  o.warn_at = 0.5;
  o.sample_ms = 20;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r, 20000));
  ASSERT_EQ(r.warns, 0);
  ASSERT_GT(r.samples, 5);
  ASSERT_GE(r.max_used, 8 * MIB);
  ASSERT_GE(r.exit[0].peak_bytes, 8 * MIB); /* VmHWM */
  sup_finish();
}

static int hog_holding(void *arg) {
  mg_child *c = arg;
  mg_child_sample s;
  return mg_child_memory(c, &s, NULL, 0) == 0 && s.used_bytes >= 20 * MIB;
}

TEST(set_limit_running) {
  sup_start();
  char *const argv[] = {(char *)hog_path(), "--max", "24M", "--quiet", NULL};
  /* rlimit: prlimit on the live process */
  if (rl_data()) {
    mg_child_opts o = child_opts("setlim-data", argv);
    o.enforce = MG_ENFORCE_DATA;
    o.limit_bytes = 64 * MIB;
    mg_child *c;
    ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
    uint64_t soft, hard;
    ASSERT_EQ(mg_rlimit_get(mg_child_pid(c), MG_RLIMIT_DATA, &soft, &hard, err,
                            sizeof err),
              0);
    ASSERT_U64_EQ(soft, 64 * MIB);
    ASSERT_U64_EQ(hard, 64 * MIB);
    ASSERT_EQ(mg_child_set_limit(c, 48 * MIB, err, sizeof err), 0);
    ASSERT_EQ(mg_rlimit_get(mg_child_pid(c), MG_RLIMIT_DATA, &soft, &hard, err,
                            sizeof err),
              0);
    ASSERT_U64_EQ(soft, 48 * MIB);
    ASSERT_U64_EQ(hard, 48 * MIB);
    ASSERT_U64_EQ(mg_child_limit(c), 48 * MIB);
    /* raising a hard limit needs CAP_SYS_RESOURCE: done, or refused
     * with the reason and nothing changed */
    int rc = mg_child_set_limit(c, 96 * MIB, err, sizeof err);
    if (rc == 0) {
      ASSERT_EQ(mg_rlimit_get(mg_child_pid(c), MG_RLIMIT_DATA, &soft, NULL, err,
                              sizeof err),
                0);
      ASSERT_U64_EQ(soft, 96 * MIB);
      ASSERT_U64_EQ(mg_child_limit(c), 96 * MIB);
    } else {
      ASSERT_EQ(rc, -EPERM);
      ASSERT_CONTAINS(err, "limit: not permitted to raise");
      ASSERT_CONTAINS(err, "CAP_SYS_RESOURCE");
      ASSERT_U64_EQ(mg_child_limit(c), 48 * MIB);
    }
    ASSERT_EQ(mg_child_set_limit(c, 0, err, sizeof err), -EINVAL);
    ASSERT_CONTAINS(err, "limit: must be positive");
    ASSERT_EQ(mg_child_set_limit(c, MG_CHILD_NO_LIMIT, err, sizeof err),
              -EINVAL);
    ASSERT_CONTAINS(err, "limit: required with enforce=data");
    ASSERT_EQ(mg_child_stop(c, 200), 0);
    mg_child_release(c);
  }
  if (cgroup_usable()) {
    mg_child_opts o = child_opts("setlim-cg", argv);
    o.enforce = MG_ENFORCE_CGROUP;
    o.limit_bytes = 64 * MIB;
    mg_child *c;
    ASSERT_EQ(mg_child_spawn(sup, &o, NULL, &c, err, sizeof err), 0);
    char file[PATH_MAX + 64];
    snprintf(file, sizeof file, "%s/memory.limit_in_bytes",
             mg_child_cgroup_dir(c));
    ASSERT_EQ(strtoull(slurp(file), NULL, 10), 64 * MIB);
    ASSERT_EQ(mg_child_set_limit(c, 128 * MIB, err, sizeof err), 0);
    ASSERT_EQ(strtoull(slurp(file), NULL, 10), 128 * MIB);
    ASSERT(run_until(hog_holding, c, 20000));
    /* below its usage: the kernel refuses (v1 EBUSY) or reclaims; it may
     * also OOM-kill it — either way the call reports, never crashes */
    mg_child_sample s;
    ASSERT_EQ(mg_child_memory(c, &s, err, sizeof err), 0);
    ASSERT(s.has_cgroup);
    ASSERT_GE(s.cgroup_current_bytes, 20 * MIB);
    ASSERT_U64_EQ(s.used_bytes, s.cgroup_current_bytes);
    ASSERT_U64_EQ(s.limit_bytes, 128 * MIB);
    ASSERT_EQ(mg_child_stop(c, 200), 0);
    mg_child_release(c);
  }
  sup_finish();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  SUP_RUN(data_limit_before_first_instruction);
  SUP_RUN(data_limit_while_growing);
  SUP_RUN(data_limit_not_blamed);
  SUP_RUN(as_limit);
  SUP_RUN(warn_once_per_crossing);
  SUP_RUN(no_warn_below);
  SUP_RUN(set_limit_running);
  return mg_test_report();
}
