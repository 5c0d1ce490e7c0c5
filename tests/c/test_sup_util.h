/* test_sup_util.h — shared helpers of the supervisor tests (test_sup_*.c):
 * a loop and a supervisor per test, recorded events, polling the loop
 * until a condition holds, process and cgroup checks, and a cleanup that
 * kills whatever a failed test left behind. */
#ifndef TEST_SUP_UTIL_H
#define TEST_SUP_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "mg/mg.h"
#include "mg_test.h"
#include "mg/mg_sup.h"

#define MIB (UINT64_C(1) << 20)
#define REC_MAX_EXITS 16

static __attribute__((unused)) char err[2048];
static __attribute__((unused)) char tmpdir[PATH_MAX];

/* ---------------------------------------------------------- paths */

static inline const char *hog_path(void) {
  static char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s/../mg-hog", MG_TEST_BINDIR);
  return buf;
}

/* A fresh temporary directory for this test file (removed at exit). */
static inline void rm_tmpdir(void) {
  if (tmpdir[0]) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
      fprintf(stderr, "cannot remove %s\n", tmpdir);
  }
}

static inline const char *tmp_path(const char *name) {
  static char buf[4][PATH_MAX + 64];
  static int i;
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mg-test-sup.XXXXXX");
    if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      exit(1);
    }
    atexit(rm_tmpdir);
  }
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
  return buf[i];
}

/* Whole file into a static buffer ("" when missing). */
static inline const char *slurp(const char *path) {
  static char buf[65536];
  buf[0] = '\0';
  int f = open(path, O_RDONLY);
  if (f < 0)
    return buf;
  ssize_t n = read(f, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = '\0';
  close(f);
  return buf;
}

static inline uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* A fixture tree written by a test: fx_root (under tmp_path), files and
 * directories given relative to it. */
static __attribute__((unused)) char fx_root[PATH_MAX];

static inline void fx_put(const char *rel, const char *text) {
  char path[PATH_MAX + 256];
  snprintf(path, sizeof path, "%s/%s", fx_root, rel);
  FILE *f = fopen(path, "w");
  if (!f)
    MG__FAIL("cannot write %s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
}

static inline void fx_mkdirs(const char *rel) {
  char cmd[PATH_MAX + 300];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", fx_root, rel);
  ASSERT_EQ(system(cmd), 0);
}

/* Its roots: fx_root/proc and fx_root/fs (static strings). */
static inline mg_paths fx_paths(void) {
  static char proc[PATH_MAX + 16], fs[PATH_MAX + 16];
  snprintf(proc, sizeof proc, "%s/proc", fx_root);
  snprintf(fs, sizeof fs, "%s/fs", fx_root);
  mg_paths p = {proc, fs};
  return p;
}

/* ------------------------------------------------------- processes */

/* 'R', 'S', 'Z'… of a pid, or 0 when it does not exist. */
static inline char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  int f = open(path, O_RDONLY);
  if (f < 0)
    return 0;
  ssize_t n = read(f, buf, sizeof buf - 1);
  close(f);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : 0;
}

/* Not running any more: gone, or a zombie that is not ours (a killed
 * orphan waiting for init to reap it). */
static inline int proc_dead(pid_t pid) {
  char st = proc_state(pid);
  if (st == 0)
    return 1;
  if (st != 'Z')
    return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  const char *s = slurp(path);
  const char *p = strrchr(s, ')');
  long ppid = 0;
  if (p)
    sscanf(p + 2, "%*c %ld", &ppid);
  return ppid != (long)getpid();
}

/* Wait up to `ms` for all pids to be dead. */
static inline int procs_dead_within(const pid_t *pids, size_t n, int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  for (;;) {
    size_t alive = 0;
    for (size_t i = 0; i < n; i++)
      alive += !proc_dead(pids[i]);
    if (alive == 0)
      return 1;
    if (now_ms() >= end)
      return 0;
    sleep_ms(10);
  }
}

static inline int dir_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ------------------------------------------------ loop and supervisor */

static __attribute__((unused)) uv_loop_t loop;
static __attribute__((unused)) mg_sup *sup;
static __attribute__((unused)) mg_logger *logger;
static __attribute__((unused)) int loop_open;
static __attribute__((unused)) int done_calls;

static inline mg_logger *test_logger(void) {
  if (!logger) {
    const char *lv = getenv("MG_TEST_LOG");
    mg_log_level level = MG_LOG_ERROR;
    if (lv)
      mg_log_level_parse(lv, &level);
    logger = mg_logger_new(stderr, MG_LOG_TEXT, level);
  }
  return logger;
}

/* A loop and a supervisor with the real /proc and cgroups. */
static inline mg_sup *sup_start(void) {
  if (!loop_open) {
    ASSERT_EQ(uv_loop_init(&loop), 0);
    loop_open = 1;
  }
  mg_sup_opts o;
  memset(&o, 0, sizeof o);
  o.loop = &loop;
  o.logger = test_logger();
  int rc = mg_sup_new(&o, &sup, err, sizeof err);
  if (rc < 0)
    MG__FAIL("mg_sup_new: %s", err);
  return sup;
}

/* A logger into a temporary file, and the text it wrote so far. */
static __attribute__((unused)) FILE *cap_file;
static __attribute__((unused)) mg_logger *cap_logger;

static inline void cap_close(void) {
  if (cap_logger)
    mg_logger_free(cap_logger);
  if (cap_file)
    fclose(cap_file);
  cap_logger = NULL;
  cap_file = NULL;
}

static inline const char *cap_text(void) {
  static char text[32768];
  text[0] = '\0';
  if (!cap_file)
    return text;
  fflush(cap_file);
  rewind(cap_file);
  size_t n = fread(text, 1, sizeof text - 1, cap_file);
  text[n] = '\0';
  return text;
}

/* mg_sup_new on `paths` (NULL: the real system) under `parent`, logging
 * into a fresh capture at debug level; returns its code. */
static inline int sup_start_logged(const mg_paths *paths, const char *parent) {
  cap_close();
  if (!loop_open) {
    ASSERT_EQ(uv_loop_init(&loop), 0);
    loop_open = 1;
  }
  cap_file = tmpfile();
  ASSERT(cap_file != NULL);
  cap_logger = mg_logger_new(cap_file, MG_LOG_TEXT, MG_LOG_DEBUG);
  mg_sup_opts o;
  memset(&o, 0, sizeof o);
  o.loop = &loop;
  o.logger = cap_logger;
  if (paths)
    o.paths = *paths;
  o.cgroup_parent = parent;
  return mg_sup_new(&o, &sup, err, sizeof err);
}

static inline void on_done(mg_sup *s, void *ud) {
  (void)s;
  (*(int *)ud)++;
}

/* Shut down, run the loop dry, free, close the loop: every handle must be
 * closed. Returns the time the shutdown took, in ms. */
static inline uint64_t sup_finish(void) {
  uint64_t t0 = now_ms();
  done_calls = 0;
  ASSERT_EQ(mg_sup_shutdown(sup, on_done, &done_calls), 0);
  ASSERT_EQ(mg_sup_shutdown(sup, on_done, &done_calls), 0); /* idempotent */
  uv_run(&loop, UV_RUN_DEFAULT);
  uint64_t took = now_ms() - t0;
  ASSERT_EQ(done_calls, 1);
  mg_sup_free(sup);
  sup = NULL;
  ASSERT_EQ(uv_loop_close(&loop), 0);
  loop_open = 0;
  return took;
}

/* After each test: whatever a failed test left (kill, reap, close). */
static inline void sup_cleanup(void) {
  if (sup) {
    mg_sup_free(sup); /* kills and reaps synchronously */
    sup = NULL;
  }
  if (loop_open) {
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
      fprintf(stderr, "cleanup: the loop still has handles\n");
    loop_open = 0;
  }
}
#define SUP_RUN(name)                                                          \
  do {                                                                         \
    RUN(name);                                                                 \
    sup_cleanup();                                                             \
  } while (0)

static inline void on_tick(uv_timer_t *t) {
  (void)t;
}

/* Run the loop until cond(arg) or `ms` passed; returns cond's value. */
static inline int run_until(int (*cond)(void *), void *arg, int ms) {
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  uint64_t end = now_ms() + (uint64_t)ms;
  int ok;
  while (!(ok = cond(arg)) && now_ms() < end)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_NOWAIT); /* let the tick's close finish */
  if (!ok && sup) {             /* say what was still there */
    mg_child *kids[16];
    size_t n = mg_sup_children(sup, kids, 16);
    for (size_t i = 0; i < n; i++)
      fprintf(stderr, "run_until timed out: child %s pid %ld state %c\n",
              mg_child_name(kids[i]), (long)mg_child_pid(kids[i]),
              mg_child_pid(kids[i]) ? proc_state(mg_child_pid(kids[i])) : '-');
  }
  return ok;
}

/* ----------------------------------------------------------- events */

typedef struct rec {
  int samples, warns, exits, restarts, closes;
  int restart_values[REC_MAX_EXITS];
  mg_child_exit exit[REC_MAX_EXITS];
  uint64_t exit_at_ms[REC_MAX_EXITS], restart_at_ms[REC_MAX_EXITS];
  uint64_t max_used;
  char cgroup_dir[PATH_MAX];
  void (*after_exit)(mg_child *c, const mg_child_exit *e, struct rec *r);
} rec;

static inline void rec_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  rec *r = ud;
  (void)c;
  r->samples++;
  if (s->used_bytes > r->max_used)
    r->max_used = s->used_bytes;
}

static inline void rec_warn(mg_child *c, const mg_child_sample *s, void *ud) {
  (void)c;
  (void)s;
  ((rec *)ud)->warns++;
}

static inline void rec_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  rec *r = ud;
  if (r->exits < REC_MAX_EXITS) {
    r->exit[r->exits] = *e;
    r->exit_at_ms[r->exits] = now_ms();
  }
  r->exits++;
  if (r->after_exit)
    r->after_exit(c, e, r);
}

static inline void rec_restart(mg_child *c, int restarts, void *ud) {
  rec *r = ud;
  (void)c;
  if (r->restarts < REC_MAX_EXITS) {
    r->restart_values[r->restarts] = restarts;
    r->restart_at_ms[r->restarts] = now_ms();
  }
  r->restarts++;
}

static inline void rec_close(mg_child *c, void *ud) {
  (void)c;
  ((rec *)ud)->closes++;
}

static inline mg_child_events rec_events(rec *r) {
  mg_child_events ev = {rec_sample,  rec_warn,  rec_exit,
                        rec_restart, rec_close, r};
  return ev;
}

static inline int rec_closed(void *arg) {
  return ((rec *)arg)->closes > 0;
}

static inline int rec_exited(void *arg) {
  return ((rec *)arg)->exits > 0;
}

/* The default options with a name and argv. */
static inline mg_child_opts child_opts(const char *name, char *const *argv) {
  mg_child_opts o;
  mg_child_opts_init(&o);
  o.name = name;
  o.argv = argv;
  return o;
}

/* Can this machine run cgroup-limited children? */
static inline int cgroup_usable(void) {
  const char *why;
  return mg_sup_auto_enforce(sup, &why) == MG_ENFORCE_CGROUP;
}

#endif
