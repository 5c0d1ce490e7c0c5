/* bench_spawn.c — costs of the supervisor (issue 5): spawn-to-exit of a
 * child under limits vs. plain fork/exec and prlimit, the cost of one
 * sample per child, mgrun supervising 50 idle children, and the time from
 * a hog crossing a policy limit (seen by 100 ms sampling) to its death,
 * and what a spawn with many thresholds costs the loop.
 * Prints markdown table rows: | what | figure | target |.
 *
 *   bench_spawn MGRUN MG-HOG [thresholds]   (thresholds: only section 5)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "mg/mg_runtime.h"
#include "mg/mg_sup.h"

static const char *hog_path;

/* Percentile p (0..100) of n sorted values. */
static double pct(const double *v, int n, double p) {
  int i = (int)(p / 100.0 * (n - 1) + 0.5);
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static __attribute__((noreturn)) void die(const char *what, const char *err) {
  fprintf(stderr, "bench_spawn: %s: %s\n", what, err);
  exit(1);
}

/* ------------------------------------------------- plain fork/exec */

static double fork_exec_ms(char **argv) {
  int st;
  double ms = bench_run_quiet_ms(argv, &st);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die(argv[0], "failed");
  return ms;
}

/* ------------------------------------------------- supervisor helpers */

typedef struct run_state {
  int exited, closed;
  double t_exit;
  mg_child_exit e;
  /* crossing test */
  uint64_t threshold;
  int killed;
  unsigned long samples;
  double t_prev;      /* time of the previous sample (the spawn at first) */
  uint64_t used_prev; /* its usage */
  double t_cross;     /* interpolated crossing time */
} run_state;

static void on_exit_cb(mg_child *c, const mg_child_exit *e, void *ud) {
  run_state *s = ud;
  (void)c;
  s->t_exit = bench_now_ms();
  s->e = *e;
  s->exited = 1;
}

static void on_close_cb(mg_child *c, void *ud) {
  (void)c;
  ((run_state *)ud)->closed = 1;
}

static void on_sample_count(mg_child *c, const mg_child_sample *smp, void *ud) {
  run_state *s = ud;
  (void)c;
  (void)smp;
  s->samples++;
}

/* The policy's side of the crossing test: kill at the first sample at or
 * above the threshold. */
static void on_sample_kill(mg_child *c, const mg_child_sample *smp, void *ud) {
  run_state *s = ud;
  double t = bench_now_ms();
  s->samples++;
  if (!s->killed && smp->used_bytes >= s->threshold) {
    s->killed = 1;
    mg_child_signal(c, SIGKILL);
    /* The crossing happened between the previous sample and this one:
     * interpolate on the usage the two saw (the hog grows steadily). */
    double du = (double)smp->used_bytes - (double)s->used_prev;
    double f = du > 0 ? ((double)s->threshold - (double)s->used_prev) / du : 1;
    s->t_cross = s->t_prev + f * (t - s->t_prev);
  }
  s->t_prev = t;
  s->used_prev = smp->used_bytes;
}

static mg_sup *new_sup(uv_loop_t *loop) {
  mg_sup_opts so;
  mg_sup *sup;
  char err[1024];
  memset(&so, 0, sizeof so);
  so.loop = loop;
  so.group_prefix = "mgbench";
  if (mg_sup_new(&so, &sup, err, sizeof err) < 0)
    die("mg_sup_new", err);
  return sup;
}

static int shutdown_done;
static void on_done(mg_sup *sup, void *ud) {
  (void)sup;
  (void)ud;
  shutdown_done = 1;
}

static void end_sup(uv_loop_t *loop, mg_sup *sup) {
  shutdown_done = 0;
  mg_sup_shutdown(sup, on_done, NULL);
  while (!shutdown_done)
    uv_run(loop, UV_RUN_ONCE);
  mg_sup_free(sup);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Options for the child "<prefix><i>" (its name in name[32]) running
 * `argv` under `enforce`, sampled every sample_ms (0: never). */
static mg_child_opts child_opts(char name[32], const char *prefix, int i,
                                char **argv, mg_enforce enforce,
                                int64_t sample_ms) {
  snprintf(name, 32, "%s%d", prefix, i);
  mg_child_opts o;
  mg_child_opts_init(&o);
  o.name = name;
  o.argv = argv;
  o.enforce = enforce;
  o.sample_ms = sample_ms;
  return o;
}

static mg_child *spawn(mg_sup *sup, const mg_child_opts *o,
                       const mg_child_events *ev) {
  char err[1024];
  mg_child *c;
  if (mg_child_spawn(sup, o, ev, &c, err, sizeof err) < 0)
    die("mg_child_spawn", err);
  return c;
}

/* Spawn a child whose events write `s`, and run until it is closed. */
static void run_to_close(uv_loop_t *loop, mg_sup *sup, const mg_child_opts *o,
                         const mg_child_events *ev, run_state *s) {
  mg_child *c = spawn(sup, o, ev);
  while (!s->closed)
    uv_run(loop, UV_RUN_ONCE);
  mg_child_release(c);
}

/* Spawn `argv` under `enforce` and run until it is closed; returns the
 * spawn-to-exit time in ms (exit seen by the supervisor: SIGCHLD, reap,
 * cgroup read and removal included). */
static double sup_run_ms(uv_loop_t *loop, mg_sup *sup, mg_enforce enforce,
                         char **argv, int i) {
  char name[32];
  run_state s;
  memset(&s, 0, sizeof s);
  /* sample_ms 0: spawn to exit only */
  mg_child_opts o = child_opts(name, "b", i, argv, enforce, 0);
  if (enforce != MG_ENFORCE_NONE)
    o.limit_bytes = (uint64_t)256 << 20;
  o.warn_at = 0;
  o.stdout_mode = o.stderr_mode = MG_STDIO_NULL;
  mg_child_events ev = {NULL, NULL, on_exit_cb, NULL, on_close_cb, &s};
  double t0 = bench_now_ms();
  run_to_close(loop, sup, &o, &ev, &s);
  if (s.e.reason != MG_EXIT_EXIT || s.e.code != 0)
    die(argv[0], "did not exit 0 under the supervisor");
  return s.t_exit - t0;
}

/* ------------------------------------------------- 1. spawn latency */

static void bench_spawn_latency(int cgroup_ok) {
  enum { N = 200 };
  static double t[N];
  char *true_argv[] = {"true", NULL};
  char *prl_argv[] = {"prlimit", "--data=268435456", "true", NULL};
  uv_loop_t loop;
  uv_loop_init(&loop);
  mg_sup *sup = new_sup(&loop);

  struct {
    const char *what;
    mg_enforce e;
    int sup;
    char **argv;
  } cases[] = {
      {"fork + exec + waitpid of `true`", MG_ENFORCE_NONE, 0, true_argv},
      {"`prlimit --data=256M true`", MG_ENFORCE_NONE, 0, prl_argv},
      {"mg_child_spawn `true`, enforce none", MG_ENFORCE_NONE, 1, true_argv},
      {"mg_child_spawn `true`, RLIMIT_DATA 256M", MG_ENFORCE_DATA, 1,
       true_argv},
      {"mg_child_spawn `true`, cgroup 256M", MG_ENFORCE_CGROUP, 1, true_argv},
  };
  double med[5] = {0};
  for (int k = 0; k < 5; k++) {
    if (cases[k].e == MG_ENFORCE_CGROUP && !cgroup_ok) {
      printf("| spawn → exit: %s | skipped (no writable cgroup) | — |\n",
             cases[k].what);
      continue;
    }
    for (int i = 0; i < 3 + N; i++) {
      double ms = cases[k].sup
                      ? sup_run_ms(&loop, sup, cases[k].e, cases[k].argv, i)
                      : fork_exec_ms(cases[k].argv);
      if (i >= 3)
        t[i - 3] = ms;
    }
    qsort(t, N, sizeof t[0], bench_cmp_double);
    med[k] = pct(t, N, 50);
    printf("| spawn → exit: %s (median of %d; p90 %.2f ms) | %.2f ms | %s |\n",
           cases[k].what, N, pct(t, N, 90), med[k],
           k < 2 ? "—" : "≤ 2× prlimit");
  }
  for (int k = 3; k < 5; k++)
    if (med[k] > 0)
      printf("| ratio %s / prlimit | %.2f× | ≤ 2× |\n",
             k == 3 ? "supervised RLIMIT_DATA" : "supervised cgroup",
             med[k] / med[1]);
  end_sup(&loop, sup);
  uv_loop_close(&loop);
}

/* ------------------------------------------------- 2. sample cost (C)
 * Targets: 50 children sampled every 100 ms are 500 samples/s; at most 5 %
 * of one core for them is 100 µs per sample. */

static void bench_sample_cost(int cgroup_ok) {
  enum { KIDS = 50 };
  static run_state st[KIDS];
  static mg_child *kids[KIDS];
  char *argv[] = {"sleep", "3600", NULL};
  uv_loop_t loop;
  uv_loop_init(&loop);
  mg_sup *sup = new_sup(&loop);
  for (int i = 0; i < KIDS; i++) {
    char name[32];
    mg_child_opts o =
        child_opts(name, "idle", i, argv,
                   cgroup_ok ? MG_ENFORCE_CGROUP : MG_ENFORCE_DATA, 100);
    o.limit_bytes = (uint64_t)64 << 20;
    o.warn_at = 0.8;
    mg_child_events ev = {on_sample_count, NULL,  NULL, NULL,
                          on_close_cb,     &st[i]};
    kids[i] = spawn(sup, &o, &ev);
  }
  /* warm up 0.5 s, then measure 3 s */
  double end = bench_now_ms() + 500;
  while (bench_now_ms() < end)
    uv_run(&loop, UV_RUN_ONCE);
  unsigned long s0 = 0, s1 = 0;
  for (int i = 0; i < KIDS; i++)
    s0 += st[i].samples;
  double c0 = bench_cpu_s();
  end = bench_now_ms() + 3000;
  while (bench_now_ms() < end)
    uv_run(&loop, UV_RUN_ONCE);
  double cpu = bench_cpu_s() - c0;
  for (int i = 0; i < KIDS; i++)
    s1 += st[i].samples;
  printf("| supervisor (C) per child per sample, %d children (%s) at "
         "sample_ms 100: %lu samples in 3 s | %.1f µs CPU | ≤ 100 µs |\n",
         KIDS, cgroup_ok ? "cgroup" : "RLIMIT_DATA", s1 - s0,
         cpu / (double)(s1 - s0) * 1e6);
  for (int i = 0; i < KIDS; i++)
    mg_child_release(kids[i]);
  end_sup(&loop, sup);
  uv_loop_close(&loop);
}

/* ------------------------------------------------- 3. mgrun, 50 children */

static const char idle_policy[] =
    "local n = 0\n"
    "for i = 1, 50 do\n"
    "  local p = assert(mg.spawn { name = 'idle' .. i, cmd = { 'sleep', "
    "'3600' },\n"
    "    limit = '64M', sample_ms = 100 })\n"
    "  p:on('sample', function() n = n + 1 end)\n"
    "end\n"
    "mg.after(1000, function() print('start', n) io.stdout:flush() end)\n"
    "mg.after(6000, function() print('end', n) io.stdout:flush() mg.exit(0) "
    "end)\n";

static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, stt = 0;
  if (p)
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
           &stt);
  return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_rss_mib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  double kib = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %lf kB", &kib) == 1)
      break;
  fclose(f);
  return kib / 1024;
}

static void bench_mgrun_idle(const char *mgrun) {
  char path[] = "/tmp/mgrun-bench-idle-XXXXXX.lua";
  int fd = mkstemps(path, 4);
  if (fd < 0 || write(fd, idle_policy, sizeof idle_policy - 1) < 0)
    die("mkstemps", strerror(errno));
  close(fd);
  int pfd[2];
  if (pipe(pfd) < 0)
    die("pipe", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    close(pfd[1]);
    execl(mgrun, mgrun, "--log-level", "error", path, (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  FILE *in = fdopen(pfd[0], "r");
  char line[128];
  unsigned long n0 = 0, n1 = 0;
  double c0 = 0, c1 = 0, rss = 0, t0 = 0, t1 = 0;
  while (in && fgets(line, sizeof line, in)) {
    if (sscanf(line, "start %lu", &n0) == 1) {
      c0 = proc_cpu_s(pid);
      t0 = bench_now_ms();
    } else if (sscanf(line, "end %lu", &n1) == 1) {
      c1 = proc_cpu_s(pid);
      t1 = bench_now_ms();
      rss = proc_rss_mib(pid);
    }
  }
  if (in)
    fclose(in);
  int st;
  waitpid(pid, &st, 0);
  unlink(path);
  if (n1 <= n0 || t1 <= t0)
    die("mgrun idle policy", "no samples");
  double secs = (t1 - t0) / 1000;
  printf("| mgrun supervising 50 idle children (sample_ms 100, a Lua sample "
         "handler each): RSS | %.2f MiB | ≤ 8 MiB |\n",
         rss);
  printf("| mgrun supervising 50 idle children: CPU over %.0f s | %.2f %% | "
         "≤ 5 %% |\n",
         secs, (c1 - c0) / secs * 100);
  printf("| mgrun per child per sample, Lua handler included (%lu samples; "
         "CPU clock ticks of %ld Hz) | %.1f µs | ≤ 100 µs |\n",
         n1 - n0, sysconf(_SC_CLK_TCK), (c1 - c0) / (double)(n1 - n0) * 1e6);
}

/* ------------------------------------------------- 4. crossing → death
 * A hog grows steadily (VmRSS, enforce none); the "policy" kills it at the
 * first sample at or above a threshold. Latency = its death (reaped) −
 * the crossing, interpolated between the last sample below and the first
 * above. The threshold varies so the crossing falls anywhere in the
 * sampling period. */

static void bench_crossing(void) {
  enum { N = 40 };
  static double lat[N];
  const uint64_t rate = (uint64_t)256 << 20; /* bytes per second */
  char rate_s[32];
  snprintf(rate_s, sizeof rate_s, "%llu", (unsigned long long)rate);
  char *argv[] = {(char *)hog_path, "--quiet", "--rate", rate_s,
                  "--step",         "256K",    NULL};
  uv_loop_t loop;
  uv_loop_init(&loop);
  mg_sup *sup = new_sup(&loop);
  unsigned seed = 12345;
  for (int i = 0; i < N; i++) {
    run_state s;
    memset(&s, 0, sizeof s);
    /* a threshold between 16 and 48 MiB: the crossing falls anywhere in
     * the sampling period */
    seed = seed * 1103515245u + 12345u;
    uint64_t mib = 16 + (seed >> 16) % 33;
    s.threshold = mib << 20;
    char name[32];
    /* enforce none: the policy limit is the only one */
    mg_child_opts o = child_opts(name, "cross", i, argv, MG_ENFORCE_NONE, 100);
    o.stdout_mode = o.stderr_mode = MG_STDIO_NULL;
    mg_child_events ev = {on_sample_kill, NULL,        on_exit_cb,
                          NULL,           on_close_cb, &s};
    s.t_prev = bench_now_ms();
    run_to_close(&loop, sup, &o, &ev, &s);
    if (!s.killed)
      die("crossing", "the hog was not killed at its policy limit");
    lat[i] = s.t_exit - s.t_cross;
  }
  qsort(lat, N, sizeof lat[0], bench_cmp_double);
  printf("| hog crossing a policy limit → its death, sample_ms 100 "
         "(p:kill() at the first sample above; %d runs) p50 | %.0f ms | "
         "≤ 100 ms |\n",
         N, pct(lat, N, 50));
  printf("| same, p99 | %.0f ms | ≤ 110 ms |\n", pct(lat, N, 99));
  end_sup(&loop, sup);
  uv_loop_close(&loop);
}

/* ------------------------------------------ 5. thresholds at spawn
 * A v1 threshold is two eventfd registrations, each waiting for an RCU
 * grace period under the group's mutex: done in the thread pool, so the
 * spawn (the loop) does not wait for them. Rows: how long mg_child_spawn
 * held the loop with 48 thresholds and without any, and how long until
 * every threshold was the kernel's. Each measured spawn follows a warm-up
 * spawn: moving a child into a v1 group after some idle time waits for a
 * grace period too (the cgroup threadgroup lock's), and that is not the
 * thresholds' cost. */

static mg_child *th_spawn(mg_sup *sup, const char *prefix, int r,
                          const mg_threshold *th, int nth, run_state *s,
                          double *held) {
  static char names[4][32];
  static int k;
  char *argv[] = {"sleep", "5", NULL};
  memset(s, 0, sizeof *s);
  k = (k + 1) % 4;
  mg_child_opts o = child_opts(names[k], prefix, r, argv, MG_ENFORCE_CGROUP, 0);
  o.limit_bytes = (uint64_t)256 << 20;
  o.thresholds = th;
  o.nthresholds = (size_t)nth;
  mg_child_events ev = {NULL, NULL, on_exit_cb, NULL, on_close_cb, s};
  double t0 = bench_now_ms();
  mg_child *c = spawn(sup, &o, &ev);
  if (held)
    *held = bench_now_ms() - t0;
  return c;
}

static void th_end(uv_loop_t *loop, mg_child *c, run_state *s) {
  mg_child_stop(c, 0);
  while (!s->closed)
    uv_run(loop, UV_RUN_ONCE);
  mg_child_release(c);
}

static void bench_thresholds(int cgroup_ok) {
  enum { NTH = 48, RUNS = 7 };
  if (!cgroup_ok) {
    printf("| spawn with %d thresholds | skipped (no writable cgroup) | — "
           "|\n",
           NTH);
    return;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  mg_sup *sup = new_sup(&loop);
  mg_threshold th[NTH];
  for (int i = 0; i < NTH; i++)
    th[i] = (mg_threshold){0, (i + 1) / 50.0, 0};
  double held[RUNS], held0[RUNS], ready[RUNS];
  for (int r = 0; r < RUNS; r++) {
    run_state sw, s0, s;
    mg_child *w = th_spawn(sup, "thw", r, NULL, 0, &sw, NULL);
    mg_child *c0 = th_spawn(sup, "th0-", r, NULL, 0, &s0, &held0[r]);
    mg_child *c = th_spawn(sup, "th", r, th, NTH, &s, &held[r]);
    double t0 = bench_now_ms() - held[r];
    mg_child_watching wt;
    do {
      uv_run(&loop, UV_RUN_NOWAIT);
      mg_child_watching_get(c, &wt);
    } while (wt.thresholds_sampled > 0 && bench_now_ms() - t0 < 10000);
    ready[r] = bench_now_ms() - t0;
    th_end(&loop, c, &s);
    th_end(&loop, c0, &s0);
    th_end(&loop, w, &sw);
  }
  qsort(held, RUNS, sizeof held[0], bench_cmp_double);
  qsort(held0, RUNS, sizeof held0[0], bench_cmp_double);
  qsort(ready, RUNS, sizeof ready[0], bench_cmp_double);
  printf("| mg_child_spawn with %d thresholds + warn (cgroup v1): the loop "
         "held (median of %d; %.2f ms without thresholds) | %.2f ms | ≤ "
         "1 ms more |\n",
         NTH, RUNS, held0[RUNS / 2], held[RUNS / 2]);
  printf("| … until all %d are kernel notifications (registered in the "
         "thread pool; sampled meanwhile) | %.0f ms | — |\n",
         NTH + 1, ready[RUNS / 2]);
  end_sup(&loop, sup);
  uv_loop_close(&loop);
}

int main(int argc, char **argv) {
  if (argc != 3 && !(argc == 4 && strcmp(argv[3], "thresholds") == 0)) {
    fprintf(stderr, "usage: bench_spawn MGRUN MG-HOG [thresholds]\n");
    return 2;
  }
  hog_path = argv[2];
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  mg_sup *sup = new_sup(&loop);
  const char *why = NULL;
  int cgroup_ok = mg_sup_auto_enforce(sup, &why) == MG_ENFORCE_CGROUP;
  end_sup(&loop, sup);
  uv_loop_close(&loop);

  if (argc == 4) { /* only the thresholds' rows */
    bench_thresholds(cgroup_ok);
    return 0;
  }
  bench_spawn_latency(cgroup_ok);
  bench_sample_cost(cgroup_ok);
  bench_mgrun_idle(argv[1]);
  bench_crossing();
  bench_thresholds(cgroup_ok);
  return 0;
}
