/* bench_reaction.c — how fast, and how far past the line, each governor
 * stops a hog that grows past L (issue 10). For every governor and hog
 * speed it runs the project's hog (mg-hog) RUNS times with a random start
 * phase and prints one markdown table row: the overshoot (the hog's usage
 * when it died, less L) and the time from the crossing to the death.
 *
 *   bench_reaction [--runs N] [--only LIST] [--earlyoom PATH] MGRUN MG-HOG
 *
 * The hog times its own crossing and keeps its usage where this program
 * reads it after the death (mg-hog --mark, --mark-file: the RSS it had
 * before growing plus the bytes it touched since, page by page, so it
 * follows VmRSS). The death is the moment the hog's pidfd polls readable:
 * the kernel says so in exit_notify, after the hog's memory was freed.
 * Every kill is checked against the hog's pid. Libc only (Linux >= 5.3
 * for pidfd_open). See docs/benchmarks.md, "Reaction".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define MIB (1024.0 * 1024.0)
#define RX_MAX_RUNS 1000
#define RX_HOG_NAME "rxhog" /* the hog's comm: a link of this name */
#define RX_HOG_MAX "2G"     /* where a hog that nothing stops holds */
#define RX_POLICY_LIMIT "4G"
#define RX_SLOW_RATE "100M"
#define RX_SLOW_RUN_IN (64.0 * MIB) /* at RX_SLOW_RATE for the last 64 MiB */
#define RX_PHASE_US 100000          /* random start phase: 0 .. 100 ms */
#define RX_EARLYOOM_LEAD_US 300000

typedef enum {
  G_SELF,
  G_CGROUP,
  G_THRESHOLD,
  G_SAMPLE,
  G_EARLYOOM,
  G_COUNT
} governor;

static const char *const gov_key[G_COUNT] = {"self", "cgroup", "threshold",
                                             "sample", "earlyoom"};

typedef struct run_result {
  int measured;   /* the hog died and its usage was read */
  int crossed;    /* its mark was recorded */
  int by_gov;     /* the governor killed the hog (its pid checked) */
  int wrong;      /* kills of another pid */
  int survived;   /* the hog ended on its own */
  double over;    /* MiB: usage at death - L */
  double lat;     /* ms: death - crossing */
  double speed;   /* MiB/s: start of growth to the crossing */
  char err[512];  /* the governor could not be run: why */
  char note[128]; /* something to say about this run */
} run_result;

static const char *mgrun_path, *hog_path, *earlyoom_path;
static char tmp_dir[64], mark_path[128], policy_path[128];
static uint64_t limit_bytes = (uint64_t)256 << 20;
static int cgroup_v2;

/* ------------------------------------------------------------ helpers */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(long us) {
  struct timespec ts = {(time_t)(us / 1000000), (us % 1000000) * 1000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static __attribute__((noreturn)) void die(const char *what, const char *err) {
  fprintf(stderr, "bench_reaction: %s: %s\n", what, err);
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Percentile p (0..100) of n sorted values, interpolated between ranks. */
static double pct(const double *v, int n, double p) {
  if (n == 1)
    return v[0];
  double r = p / 100.0 * (n - 1);
  int i = (int)r;
  return i + 1 < n ? v[i] + (r - i) * (v[i + 1] - v[i]) : v[n - 1];
}

/* A growing buffer of a governor's output. */
typedef struct outbuf {
  char *s;
  size_t n, cap;
} outbuf;

/* Read what `fd` (non-blocking) has now into b; 1 at end of file. */
static int drain(int fd, outbuf *b) {
  for (;;) {
    if (b->cap - b->n < 4096) {
      b->cap = b->cap ? b->cap * 2 : 16384;
      b->s = realloc(b->s, b->cap);
      if (!b->s)
        die("realloc", strerror(errno));
    }
    ssize_t r = read(fd, b->s + b->n, b->cap - b->n - 1);
    if (r > 0) {
      b->n += (size_t)r;
      b->s[b->n] = '\0';
      continue;
    }
    if (r == 0)
      return 1;
    if (errno == EINTR)
      continue;
    return 0;
  }
}

/* fork + exec argv, stdin on /dev/null, stdout and stderr on out_fd (or
 * /dev/null when it is < 0). Returns the pid. */
static pid_t spawn(char **argv, int out_fd, int close_fd) {
  pid_t pid = fork();
  if (pid < 0)
    die("fork", strerror(errno));
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(out_fd >= 0 ? out_fd : null, 1);
    dup2(out_fd >= 0 ? out_fd : null, 2);
    if (close_fd >= 0)
      close(close_fd);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

/* A pipe whose read end is non-blocking and both ends close on exec
 * (spawn dups the write end onto 1 and 2). */
static void out_pipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) < 0)
    die("pipe", strerror(errno));
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

/* The hog's mark file (mg-hog --help). */
typedef struct mark_rec {
  uint64_t pid, start_ns, base, usage, mark_ns, mark_usage;
} mark_rec;

static int read_mark(mark_rec *m) {
  char buf[512];
  int fd = open(mark_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  unsigned long long v[6];
  if (sscanf(buf,
             "pid=%llu start_ns=%llu base_bytes=%llu usage_bytes=%llu "
             "mark_ns=%llu mark_usage_bytes=%llu",
             &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return -1;
  *m = (mark_rec){v[0], v[1], v[2], v[3], v[4], v[5]};
  return 0;
}

/* MemAvailable in KiB. */
static long long mem_available_kib(void) {
  char line[256];
  long long kib = -1;
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f)
    die("/proc/meminfo", strerror(errno));
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* The value after "key" (e.g. " pid=") in s, or -1. */
static long long field_after(const char *s, const char *key) {
  const char *p = s ? strstr(s, key) : NULL;
  return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* The last non-empty line of s, into out. */
static void last_line(const char *s, char *out, size_t len) {
  const char *end = s ? s + strlen(s) : NULL;
  out[0] = '\0';
  if (!end)
    return;
  while (end > s && (end[-1] == '\n' || end[-1] == ' '))
    end--;
  const char *b = end;
  while (b > s && b[-1] != '\n')
    b--;
  snprintf(out, len, "%.*s", (int)(end - b), b);
  for (char *c = out; *c; c++)
    if (*c == '|')
      *c = '/'; /* it goes into a markdown table */
}

/* ------------------------------------------------------------ one run */

typedef struct hog_args {
  char *v[32];
  int n;
  char bufs[8][64];
  int nb;
} hog_args;

static void add(hog_args *a, const char *s) {
  a->v[a->n++] = (char *)s;
  a->v[a->n] = NULL;
}

/* v in decimal, kept in a. */
static const char *num(hog_args *a, unsigned long long v) {
  char *b = a->bufs[a->nb++];
  snprintf(b, 64, "%llu", v);
  return b;
}

/* The hog's command line: a hog that grows at full speed (slow = 0) or at
 * RX_SLOW_RATE over its last RX_SLOW_RUN_IN before L, marks L, and starts
 * after delay_us. */
static void hog_argv(hog_args *a, int slow, long delay_us, int kill_self) {
  a->n = a->nb = 0;
  add(a, hog_path);
  add(a, "--quiet");
  add(a, "--max");
  add(a, RX_HOG_MAX);
  add(a, "--hold");
  add(a, "2");
  add(a, "--mark");
  add(a, num(a, (unsigned long long)limit_bytes));
  add(a, "--mark-file");
  add(a, mark_path);
  add(a, "--start-delay-us");
  add(a, num(a, (unsigned long long)delay_us));
  if (slow) {
    add(a, "--rate");
    add(a, RX_SLOW_RATE);
    add(a, "--fast-to");
    add(a, num(a, (unsigned long long)(limit_bytes - RX_SLOW_RUN_IN)));
    add(a, "--step");
    add(a, "64K");
  }
  if (kill_self) {
    add(a, "--kill-self-at");
    add(a, num(a, (unsigned long long)limit_bytes));
  }
}

/* Wait until the hog's pid is in its mark file (read twice, the same),
 * while `gov` (when > 0) is alive. Returns the pid, or 0. */
static pid_t wait_hog_pid(pid_t gov, int out_fd, outbuf *out) {
  int64_t end = now_ns() + 5 * (int64_t)1000000000;
  uint64_t prev = 0;
  while (now_ns() < end) {
    mark_rec m;
    uint64_t pid = read_mark(&m) == 0 ? m.pid : 0;
    if (pid && pid == prev)
      return (pid_t)pid;
    prev = pid;
    if (out_fd >= 0)
      drain(out_fd, out);
    if (gov > 0 && waitpid(gov, NULL, WNOHANG) == gov)
      return -1; /* reaped: the caller reads the output */
    sleep_us(200);
  }
  return 0;
}

/* Poll the hog's pidfd (and drain out_fd) until it is readable; returns
 * the time of the death in ns, or 0 after timeout_s. */
static int64_t wait_death(int pidfd, int out_fd, outbuf *out, int timeout_s) {
  int64_t end = now_ns() + (int64_t)timeout_s * 1000000000;
  struct pollfd p[2] = {{pidfd, POLLIN, 0}, {out_fd, POLLIN, 0}};
  for (;;) {
    int64_t left = (end - now_ns()) / 1000000;
    if (left <= 0)
      return 0;
    int r = poll(p, out_fd >= 0 ? 2 : 1, (int)left);
    int64_t t = now_ns();
    if (r < 0 && errno != EINTR)
      die("poll", strerror(errno));
    if (r > 0 && (p[0].revents & (POLLIN | POLLHUP)))
      return t;
    if (r > 0 && out_fd >= 0 && p[1].revents)
      if (drain(out_fd, out))
        p[1].fd = -1; /* end of file: stop polling it */
  }
}

/* Drain out_fd until `pid` ends (killed after timeout_s); its status. */
static int reap_draining(pid_t pid, int out_fd, outbuf *out, int timeout_s) {
  int64_t end = now_ns() + (int64_t)timeout_s * 1000000000;
  int st = 0;
  for (;;) {
    if (out_fd >= 0)
      drain(out_fd, out);
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      break;
    if (now_ns() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    sleep_us(1000);
  }
  if (out_fd >= 0)
    drain(out_fd, out);
  return st;
}

/* earlyoom's victims in its output: each "sending SIG… to process P"
 * counted as ours (P == hog) or not. */
static void earlyoom_victims(const char *s, pid_t hog, run_result *r) {
  for (const char *p = s; p && (p = strstr(p, "sending ")); p++) {
    const char *q = strstr(p, " to process ");
    if (!q)
      break;
    long pid = strtol(q + strlen(" to process "), NULL, 10);
    if (pid == hog)
      r->by_gov = 1;
    else
      r->wrong++;
  }
}

/* The hog's usage at its death and its mark, into r. */
static void measure(int64_t t_death, run_result *r) {
  mark_rec m;
  if (!t_death || read_mark(&m) < 0)
    return;
  r->measured = 1;
  r->over = ((double)m.usage - (double)limit_bytes) / MIB;
  if (m.mark_ns) {
    r->crossed = 1;
    r->lat = (double)(t_death - (int64_t)m.mark_ns) / 1e6;
    if (m.mark_ns > m.start_ns)
      r->speed = ((double)m.mark_usage - (double)m.base) / MIB /
                 ((double)(m.mark_ns - m.start_ns) / 1e9);
  }
}

static void run_once(governor g, int slow, long delay_us, run_result *r) {
  memset(r, 0, sizeof *r);
  unlink(mark_path);
  hog_args h;
  hog_argv(&h, slow, delay_us + (g == G_EARLYOOM ? RX_EARLYOOM_LEAD_US : 0),
           g == G_SELF);
  int fds[2] = {-1, -1};
  outbuf out = {0};
  pid_t hog = 0, gov = 0;
  char *argv[48];
  int n = 0;
  char lim[32], eo_m[32];
  snprintf(lim, sizeof lim, "%llu", (unsigned long long)limit_bytes);

  if (g == G_SELF) {
    hog = spawn(h.v, -1, -1);
  } else if (g == G_EARLYOOM) {
    /* -M: what is available now less L (KiB); SIGTERM there, SIGKILL at
     * half of it (earlyoom's default). The hog starts first, asleep for
     * RX_EARLYOOM_LEAD_US, so that earlyoom always has a preferred victim
     * to choose; every other name is avoided (a shared machine). */
    long long avail = mem_available_kib();
    snprintf(eo_m, sizeof eo_m, "%lld", avail - (long long)(limit_bytes >> 10));
    hog = spawn(h.v, -1, -1);
    out_pipe(fds);
    char *eo[] = {(char *)earlyoom_path,
                  "-M",
                  eo_m,
                  "-s",
                  "100",
                  "-r",
                  "0",
                  "--prefer",
                  "^" RX_HOG_NAME "$",
                  "--avoid",
                  "^(.{0,4}|.{6,}|[^r].{4}|r[^x].{3}|rx[^h].{2}|rxh[^o].|"
                  "rxho[^g])$",
                  NULL};
    gov = spawn(eo, fds[1], fds[0]);
    close(fds[1]);
    int64_t end = now_ns() + 2 * (int64_t)1000000000;
    while (!(out.s && strstr(out.s, "SIGKILL when mem")) && now_ns() < end) {
      drain(fds[0], &out);
      sleep_us(500);
    }
    mark_rec m;
    if (!(out.s && strstr(out.s, "SIGKILL when mem")) ||
        (read_mark(&m) == 0 && m.base != 0)) {
      last_line(out.s, r->note, sizeof r->note);
      snprintf(r->err, sizeof r->err, "earlyoom not ready in time: %s",
               r->note);
      kill(hog, SIGKILL);
      kill(gov, SIGKILL);
      waitpid(hog, NULL, 0);
      waitpid(gov, NULL, 0);
      close(fds[0]);
      free(out.s);
      return;
    }
  } else {
    argv[n++] = (char *)mgrun_path;
    argv[n++] = "--log-level";
    argv[n++] = "warn";
    if (g == G_CGROUP) {
      argv[n++] = "--limit";
      argv[n++] = lim;
      argv[n++] = "--enforce";
      argv[n++] = "cgroup";
      argv[n++] = "--";
    } else {
      argv[n++] = policy_path;
      argv[n++] = lim;
      argv[n++] = g == G_THRESHOLD ? "threshold" : "sample";
    }
    for (int i = 0; i < h.n; i++)
      argv[n++] = h.v[i];
    argv[n] = NULL;
    out_pipe(fds);
    gov = spawn(argv, fds[1], fds[0]);
    close(fds[1]);
  }

  if (!hog) {
    hog = wait_hog_pid(gov, fds[0], &out);
    if (hog <= 0) {
      if (hog == 0) {
        kill(gov, SIGKILL);
        waitpid(gov, NULL, 0);
      }
      drain(fds[0], &out);
      const char *e = out.s ? strstr(out.s, "rx-error ") : NULL;
      if (e)
        snprintf(r->err, sizeof r->err, "%.*s", (int)strcspn(e + 9, "\n"),
                 e + 9);
      else
        last_line(out.s, r->err, sizeof r->err);
      if (!r->err[0])
        snprintf(r->err, sizeof r->err, "the hog never started");
      char *acc = strstr(r->err, " (accepted:"); /* the list is long */
      if (acc)
        *acc = '\0';
      for (char *c = r->err; *c; c++)
        if (*c == '|')
          *c = '/';
      close(fds[0]);
      free(out.s);
      return;
    }
  }
  int pidfd = (int)syscall(SYS_pidfd_open, hog, 0);
  if (pidfd < 0)
    die("pidfd_open", strerror(errno));
  int64_t t_death = wait_death(pidfd, fds[0], &out, 30);
  close(pidfd);
  measure(t_death, r);

  if (g == G_SELF || g == G_EARLYOOM) {
    int st;
    if (!t_death)
      kill(hog, SIGKILL);
    waitpid(hog, &st, 0);
    r->survived = WIFEXITED(st);
    if (g == G_SELF)
      r->by_gov = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  }
  if (g == G_EARLYOOM) {
    /* it says whom it signals before it sends */
    int64_t end = now_ns() + 1000000000;
    while (!(out.s && strstr(out.s, "sending ")) && now_ns() < end) {
      drain(fds[0], &out);
      sleep_us(1000);
    }
    kill(gov, SIGKILL);
    reap_draining(gov, fds[0], &out, 5);
    earlyoom_victims(out.s, hog, r);
  } else if (g != G_SELF) {
    if (!t_death)
      kill(hog, SIGKILL);
    reap_draining(gov, fds[0], &out, 10);
    if (g == G_CGROUP) {
      /* the kernel's victim: mgrun's child_exited line names it */
      const char *e = out.s ? strstr(out.s, "child_exited") : NULL;
      long long pid = field_after(e, " pid=");
      if (e && strstr(e, "reason=oom")) {
        if (pid == hog)
          r->by_gov = 1;
        else
          r->wrong++;
      } else if (e && strstr(e, "reason=exit")) {
        r->survived = 1;
      }
    } else {
      for (const char *p = out.s; p && (p = strstr(p, "rx-killed pid=")); p++)
        if (field_after(p, "rx-killed pid=") == hog)
          r->by_gov = 1;
        else
          r->wrong++;
      const char *e = out.s ? strstr(out.s, "rx-exit ") : NULL;
      if (e && strstr(e, "reason=exit"))
        r->survived = 1;
      if (g == G_SAMPLE && out.s && strstr(out.s, "group=false"))
        snprintf(r->note, sizeof r->note, "usage: VmRSS (no group)");
      else if (g == G_SAMPLE && out.s && strstr(out.s, "group=true"))
        snprintf(r->note, sizeof r->note, "in a group of its own");
    }
  }
  if (fds[0] >= 0)
    close(fds[0]);
  free(out.s);
}

/* ------------------------------------------------------------ the table */

static const char *gov_label(governor g, char *buf, size_t len) {
  switch (g) {
  case G_SELF:
    return "the hog SIGKILLs itself at L (the floor)";
  case G_CGROUP:
    snprintf(buf, len,
             "kernel limit: `mgrun --limit 256M --enforce cgroup` (cgroup "
             "v%d)",
             cgroup_v2 ? 2 : 1);
    return buf;
  case G_THRESHOLD:
    return "mgrun threshold event: `p:kill()` in its `threshold` handler";
  case G_SAMPLE:
    return "mgrun sampling: `p:kill()` in its `sample` handler, `sample_ms = "
           "100`";
  default:
    break;
  }
  char ver[64] = "earlyoom";
  int fds[2];
  out_pipe(fds);
  char *argv[] = {(char *)earlyoom_path, "-v", NULL};
  outbuf out = {0};
  pid_t pid = spawn(argv, fds[1], fds[0]);
  close(fds[1]);
  reap_draining(pid, fds[0], &out, 5);
  close(fds[0]);
  if (out.s && strstr(out.s, "earlyoom v"))
    snprintf(ver, sizeof ver, "earlyoom %.*s",
             (int)strcspn(strstr(out.s, "earlyoom v") + 10, "\n "),
             strstr(out.s, "earlyoom v") + 10);
  free(out.s);
  snprintf(buf, len, "%s, `-M` MemAvailable − L, `--prefer` the hog", ver);
  return buf;
}

/* p50 / p99 / max of v[0..n) with `digits` decimals, into buf. */
static const char *triple(double *v, int n, int digits, const char *unit,
                          char *buf, size_t len) {
  if (n == 0)
    return "—";
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  snprintf(buf, len, "%.*f / %.*f / %.*f %s", digits, pct(v, n, 50), digits,
           pct(v, n, 99), digits, v[n - 1], unit);
  return buf;
}

static void bench_row(governor g, int slow, int runs, unsigned *seed) {
  static run_result res[RX_MAX_RUNS];
  static double over[RX_MAX_RUNS], lat[RX_MAX_RUNS], speeds[RX_MAX_RUNS];
  char buf[256], b1[96], b2[96], speed[64];
  const char *label = gov_label(g, buf, sizeof buf);
  snprintf(speed, sizeof speed, "%s", slow ? "100 MiB/s" : "full");
  if (g == G_EARLYOOM && !earlyoom_path[0]) {
    printf("| %s | %s | — | not measured: earlyoom not found (Debian: "
           "apt-get install earlyoom) | | | |\n",
           label, speed);
    fflush(stdout);
    return;
  }
  run_result warm;
  run_once(g, slow, 0, &warm); /* not counted: the first touch of memory */
  if (warm.err[0] && g != G_EARLYOOM) { /* mgrun refused: say why */
    printf("| %s | %s | — | not measured: %s | | | |\n", label, speed,
           warm.err);
    fflush(stdout);
    return;
  }
  int nover = 0, nlat = 0, wrong = 0, early = 0, survived = 0, other = 0;
  int failed = 0;
  const char *why_failed = "no death seen";
  for (int i = 0; i < runs; i++) {
    long delay = (long)(rand_r(seed) % RX_PHASE_US);
    run_result *r = &res[i];
    run_once(g, slow, delay, r);
    if (r->err[0] || !r->measured) {
      if (!failed++ && r->err[0])
        why_failed = r->err;
      continue;
    }
    over[nover++] = r->over;
    if (r->crossed)
      speeds[nlat] = r->speed, lat[nlat++] = r->lat;
    else
      early++;
    wrong += r->wrong;
    survived += r->survived;
    other += !r->survived && !r->by_gov;
  }
  if (!slow && nlat) { /* what full speed was, start to crossing */
    qsort(speeds, (size_t)nlat, sizeof speeds[0], cmp_double);
    snprintf(speed, sizeof speed, "full (%.2f GiB/s)",
             pct(speeds, nlat, 50) / 1024);
  }
  char notes[512] = "";
  size_t nn = 0;
  if (early)
    nn += (size_t)snprintf(notes + nn, sizeof notes - nn,
                           "%d killed before the crossing; ", early);
  if (survived)
    nn += (size_t)snprintf(notes + nn, sizeof notes - nn,
                           "%d not killed (held %s); ", survived, RX_HOG_MAX);
  if (other)
    nn += (size_t)snprintf(notes + nn, sizeof notes - nn, "%d died unclaimed; ",
                           other);
  if (failed)
    nn += (size_t)snprintf(notes + nn, sizeof notes - nn, "%d failed (%s); ",
                           failed, why_failed);
  if (res[0].note[0] && nn < sizeof notes)
    nn += (size_t)snprintf(notes + nn, sizeof notes - nn, "%s; ", res[0].note);
  if (nn >= 2 && nn < sizeof notes)
    notes[nn - 2] = '\0';
  printf("| %s | %s | %d | %s | %s | %d | %s |\n", label, speed, nover,
         triple(over, nover, 1, "MiB", b1, sizeof b1),
         triple(lat, nlat, 1, "ms", b2, sizeof b2), wrong, notes);
  fflush(stdout);
}

/* ------------------------------------------------------------ main */

static const char policy_text[] =
    "-- bench/reaction: spawn the hog and kill it at L (arg[1], bytes),\n"
    "-- on a threshold event or at the first sample at or above L.\n"
    "local L, mode = tonumber(arg[1]), arg[2]\n"
    "local cmd = { table.unpack(arg, 3) }\n"
    "local function say(s) print(s) io.stdout:flush() end\n"
    "local spec = { name = '" RX_HOG_NAME "', cmd = cmd, enforce = 'none',\n"
    "               limit = '" RX_POLICY_LIMIT "', warn_at = false }\n"
    "local p, err\n"
    "if mode == 'threshold' then\n"
    "  spec.thresholds, spec.sample_ms = { L }, 0\n"
    "  p, err = mg.spawn(spec)\n"
    "else\n"
    "  spec.sample_ms, spec.cgroup = 100, true -- its own group if it can\n"
    "  p, err = mg.spawn(spec)\n"
    "  if not p and tostring(err):find(\"unknown field 'cgroup'\", 1, true) "
    "then\n"
    "    spec.cgroup = nil\n"
    "    p, err = mg.spawn(spec)\n"
    "  end\n"
    "end\n"
    "if not p then say('rx-error ' .. tostring(err)) mg.exit(3) return end\n"
    "say('rx-spawned pid=' .. p.pid .. ' group=' .. tostring(p.cgroup ~= "
    "nil))\n"
    "local killed = false\n"
    "local function kill(q)\n"
    "  if killed then return end\n"
    "  killed = true\n"
    "  local pid = q.pid\n"
    "  q:kill()\n"
    "  say('rx-killed pid=' .. tostring(pid))\n"
    "end\n"
    "if mode == 'threshold' then\n"
    "  p:on('threshold', function(q) kill(q) end)\n"
    "else\n"
    "  p:on('sample', function(q, s) if s.used >= L then kill(q) end end)\n"
    "end\n"
    "p:on('exit', function(_, e)\n"
    "  say(('rx-exit pid=%s reason=%s'):format(e.pid, e.reason))\n"
    "  mg.exit(0)\n"
    "end)\n";

static void cleanup(void) {
  char link[128];
  snprintf(link, sizeof link, "%s/%s", tmp_dir, RX_HOG_NAME);
  unlink(link);
  unlink(mark_path);
  unlink(policy_path);
  rmdir(tmp_dir);
}

static void usage(void) {
  fprintf(stderr, "usage: bench_reaction [--runs N] [--only LIST] "
                  "[--earlyoom PATH] MGRUN MG-HOG\n"
                  "  LIST: comma-separated of self,cgroup,threshold,sample,"
                  "earlyoom\n");
  exit(2);
}

int main(int argc, char **argv) {
  int runs = 20, i = 1;
  const char *only = NULL;
  earlyoom_path = "";
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      only = argv[++i];
    else if (strcmp(argv[i], "--earlyoom") == 0 && i + 1 < argc)
      earlyoom_path = argv[++i];
    else
      usage();
  }
  if (argc - i != 2 || runs < 1 || runs > RX_MAX_RUNS)
    usage();
  static char mg_abs[4096], hog_abs[4096];
  if (!realpath(argv[i], mg_abs) || !realpath(argv[i + 1], hog_abs))
    die("realpath", strerror(errno));
  mgrun_path = mg_abs;

  snprintf(tmp_dir, sizeof tmp_dir, "/dev/shm/mgrun-reaction.XXXXXX");
  if (!mkdtemp(tmp_dir))
    die("mkdtemp", strerror(errno));
  atexit(cleanup);
  static char hog_link[128];
  snprintf(hog_link, sizeof hog_link, "%s/%s", tmp_dir, RX_HOG_NAME);
  if (symlink(hog_abs, hog_link) < 0)
    die("symlink", strerror(errno));
  hog_path = hog_link;
  snprintf(mark_path, sizeof mark_path, "%s/mark", tmp_dir);
  snprintf(policy_path, sizeof policy_path, "%s/policy.lua", tmp_dir);
  FILE *pf = fopen(policy_path, "w");
  if (!pf || fputs(policy_text, pf) < 0 || fclose(pf) != 0)
    die(policy_path, strerror(errno));
  cgroup_v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
  signal(SIGPIPE, SIG_IGN);

  printf("| governor | hog speed | runs | overshoot p50 / p99 / max | "
         "crossing → death p50 / p99 / max | wrong victims | notes |\n");
  printf("|---|---|---|---|---|---|---|\n");
  fflush(stdout);
  unsigned seed = (unsigned)now_ns();
  for (int slow = 0; slow < 2; slow++)
    for (int g = 0; g < G_COUNT; g++)
      if (!only || strstr(only, gov_key[g]))
        bench_row((governor)g, slow, runs, &seed);
  return 0;
}
