/* mg_sup_run.c — the runs of supervised children (supervisor layer):
 * sampling and warn crossings, the start of a run, reaping on SIGCHLD and
 * the hand-off to classification, restarts with backoff, stop with a grace
 * period, signals, and the process trees killed with a run. The lifetime
 * of children and handles is in mg_sup.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mg__sup.h"

#define SUP__TREE_MAX 512
#define SUP__GRACE_KILL_WAIT_MS 100
#define SUP__OUTPUT_SCAN 8192

static void sup__tree_signal(mg_child *c, int signum);
static void sup__on_grace(uv_timer_t *t);

/* ----------------------------------------------------------- sampling */

int mg__sup_sample(mg_child *c, mg_child_sample *s, char *err, size_t err_len) {
  memset(s, 0, sizeof *s);
  if (c->pid <= 0)
    return mg_errf(err, err_len, -ESRCH, "process '%s' is not running",
                   c->name);
  mg_proc_status st;
  int rc =
      mg_proc_status_read(c->sup->paths.proc_root, c->pid, &st, err, err_len);
  if (rc < 0)
    return rc;
  if (st.is_kernel_thread) /* a zombie not yet reaped */
    return mg_errf(err, err_len, -ESRCH, "process '%s' (pid %ld) has exited",
                   c->name, (long)c->pid);
  s->pid = c->pid;
  s->rss_bytes = st.rss_bytes;
  s->hwm_bytes = st.hwm_bytes;
  s->vsize_bytes = st.vsize_bytes;
  s->data_bytes = st.data_bytes;
  s->swap_bytes = st.swap_bytes;
  s->anon_bytes = st.anon_bytes;
  s->file_bytes = st.file_bytes;
  s->shmem_bytes = st.shmem_bytes;
  if (c->cg) { /* usage, peak and memory.stat: the event counters matter
                  at exit */
    uint64_t cur, peak;
    int has_peak;
    if (mg_cgroup_usage_read(c->cg, &cur, &peak, &has_peak, NULL, 0) == 0) {
      s->has_cgroup = 1;
      s->cgroup_current_bytes = cur;
      s->cgroup_peak_bytes = has_peak ? peak : 0;
      mg_cgroup_memstat ms; /* zeroed when it cannot be read */
      mg_cgroup_memstat_read(c->cg, &ms, NULL, 0);
      s->cgroup_anon_bytes = ms.anon_bytes;
      s->cgroup_file_bytes = ms.file_bytes;
      s->cgroup_shmem_bytes = ms.shmem_bytes;
    }
  }
  switch (c->enforce) {
  case MG_ENFORCE_CGROUP:
    s->used_bytes = s->has_cgroup ? s->cgroup_current_bytes : s->rss_bytes;
    break;
  case MG_ENFORCE_DATA:
    s->used_bytes = s->data_bytes;
    break;
  case MG_ENFORCE_AS:
    s->used_bytes = s->vsize_bytes;
    break;
  default:
    s->used_bytes = s->rss_bytes;
  }
  if (c->gpu_watch || c->sup->gpu)
    mg__sup_gpu_sample(c, s);
  s->limit_bytes = c->limit_bytes;
  s->fraction =
      c->limit_bytes ? (double)s->used_bytes / (double)c->limit_bytes : 0;
  if (s->used_bytes > c->max_used_bytes)
    c->max_used_bytes = s->used_bytes;
  c->last_hwm_bytes = s->hwm_bytes;
  return 0;
}

/* ------------------------------------------------------------ running */

static void sup__on_backoff(uv_timer_t *t);

/* A run has been exec'd: reset per-run state, start sampling, log. */
void mg__sup_run_started(mg_child *c) {
  c->start_ms = mg__sup_now_ms();
  c->term_sent = 0;
  c->killed_by_us = 0;
  c->max_used_bytes = 0;
  c->last_hwm_bytes = 0;
  uv_update_time(c->sup->loop);
  mg__sup_watch_start(c);
  mg__sup_update_ref(c->sup);
  char l[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name),
      MG_LF_INT("pid", c->pid),
      MG_LF_INT("restarts", c->restarts),
      MG_LF_STR("enforce", mg_enforce_name(c->enforce)),
      MG_LF_STR("limit", mg_size_format(c->limit_bytes, l, sizeof l)),
      MG_LF_STR("cgroup", c->cg ? mg_cgroup_dir(c->cg) : ""),
      MG_LF_STR("path", c->path),
  };
  mg_log(c->sup->log, MG_LOG_INFO, "child_started", f, 7);
  MG__SUP_EMIT0(c, on_start);
}

int mg__sup_restart_wanted(const mg_child *c, int failed) {
  int want = c->restart == MG_RESTART_ALWAYS ||
             (c->restart == MG_RESTART_ON_FAILURE && failed);
  if (want && c->max_restarts >= 0 && c->restarts >= c->max_restarts)
    return 0; /* capped */
  return want && !c->stopping && !c->sup->shutting_down;
}

/* After a run (real or a failed restart): decide on a restart, tell the
 * owner, then schedule the restart or close. */
static void sup__run_done(mg_child *c, mg_child_exit *e) {
  mg_sup *sup = c->sup;
  int failed = e->reason != MG_EXIT_EXIT || e->code != 0;
  int want = mg__sup_restart_wanted(c, failed);
  int capped = !want && !c->stopping && !sup->shutting_down &&
               (c->restart == MG_RESTART_ALWAYS ||
                (c->restart == MG_RESTART_ON_FAILURE && failed));
  if (want) {
    if (e->runtime_ms >= c->backoff_reset_ms)
      c->backoff_next_ms = c->backoff_ms;
    e->restart_in_ms = c->backoff_next_ms;
    c->backoff_next_ms = c->backoff_next_ms * 2 > c->backoff_max_ms
                             ? c->backoff_max_ms
                             : c->backoff_next_ms * 2;
  }
  e->will_restart = want;
  char pk[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name),
      MG_LF_INT("pid", e->pid),
      MG_LF_STR("reason", mg_exit_reason_name(e->reason)),
      MG_LF_INT("code", e->code),
      MG_LF_INT("signal", e->signal),
      MG_LF_STR("detail", e->detail),
      MG_LF_STR("peak", mg_size_format(e->peak_bytes, pk, sizeof pk)),
      MG_LF_UINT("runtime_ms", e->runtime_ms),
      MG_LF_INT("restarts", e->restarts),
      MG_LF_BOOL("will_restart", want),
      MG_LF_UINT("restart_in_ms", e->restart_in_ms),
  };
  mg_log(sup->log, failed ? MG_LOG_WARN : MG_LOG_INFO, "child_exited", f, 11);
  if (capped) {
    mg_log_field g[] = {MG_LF_STR("name", c->name),
                        MG_LF_INT("max_restarts", c->max_restarts)};
    mg_log(sup->log, MG_LOG_WARN, "restart_limit_reached", g, 2);
  }
  MG__SUP_EMIT(c, on_exit, e);
  if (c->closed)
    return; /* stopped from inside on_exit */
  if (want && !c->stopping && !sup->shutting_down) {
    uv_update_time(sup->loop);
    uv_timer_start(&c->backoff_timer, sup__on_backoff, e->restart_in_ms, 0);
  } else
    mg__sup_child_close(c);
}

static void sup__on_backoff(uv_timer_t *t) {
  mg_child *c = t->data;
  mg_sup *sup = c->sup;
  if (c->closed)
    return;
  if (c->stopping || sup->shutting_down) {
    mg__sup_child_close(c);
    return;
  }
  c->restarts++;
  mg_log_field f[] = {MG_LF_STR("name", c->name),
                      MG_LF_INT("restarts", c->restarts)};
  mg_log(sup->log, MG_LOG_INFO, "child_restarting", f, 2);
  MG__SUP_EMIT(c, on_restart, c->restarts);
  if (c->closed)
    return;
  if (c->stopping || sup->shutting_down) {
    mg__sup_child_close(c);
    return;
  }
  char err[512];
  if (mg__sup_exec(c, err, sizeof err) == 0) {
    mg__sup_run_started(c);
    return;
  }
  mg_child_exit e;
  memset(&e, 0, sizeof e);
  e.code = 127;
  e.reason = MG_EXIT_EXIT;
  e.restarts = c->restarts;
  snprintf(e.detail, sizeof e.detail, "restart failed: %s", err);
  mg_log_field g[] = {MG_LF_STR("name", c->name), MG_LF_STR("error", err)};
  mg_log(sup->log, MG_LOG_ERROR, "restart_failed", g, 2);
  sup__run_done(c, &e);
}

/* The run's output since it started: an allocation-failure text? */
static const char *sup__scan_output(const char *path, int64_t start) {
  if (!path || start < 0)
    return NULL;
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0)
    return NULL;
  struct stat st;
  const char *hit = NULL;
  if (fstat(f, &st) == 0 && st.st_size > start) {
    int64_t from = st.st_size - SUP__OUTPUT_SCAN;
    if (from < start)
      from = start;
    char buf[SUP__OUTPUT_SCAN];
    ssize_t n = pread(f, buf, (size_t)(st.st_size - from), (off_t)from);
    if (n > 0)
      hit = mg__sup_find_marker(buf, (size_t)n);
  }
  close(f);
  return hit;
}

/* Has this pid exited? Peeks without reaping (WNOWAIT): the zombie keeps
 * its pid and process group id reserved until sup__reap. */
static int sup__exited(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do {
    r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0)
    return errno == ECHILD; /* reaped by someone else */
  return si.si_pid == pid;
}

static void sup__tree_kill_remembered(mg_child *c);

/* The run's main process has exited: kill what is left of its process
 * group and cgroup, reap it, remove the group, classify, go on. */
static void sup__reap(mg_child *c) {
  pid_t pid = c->pid;
  mg__sup_run r;
  memset(&r, 0, sizeof r);
  kill(-pid, SIGKILL); /* leftovers of its group; the zombie holds the id */
  sup__tree_kill_remembered(c); /* and of its tree, if it was stopped */
  int st = 0;
  pid_t w;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  do {
    w = wait4(pid, &st, 0, &ru);
  } while (w < 0 && errno == EINTR);
  r.reaped_elsewhere = w != pid;
  r.status = st;
  r.maxrss_bytes = w == pid ? (uint64_t)ru.ru_maxrss * 1024 : 0; /* KiB */
  uint64_t end = mg__sup_now_ms();
  mg__sup_oom_check(c); /* kills not yet reported, before on_exit */
  c->pid = 0;
  mg__sup_watch_stop(c);
  mg__sup_relay_drain(c);
  uv_timer_stop(&c->grace_timer);
  r.enforce = c->enforce;
  r.limit_bytes = c->limit_bytes;
  r.max_used_bytes = c->max_used_bytes;
  r.last_hwm_bytes = c->last_hwm_bytes;
  r.killed_by_us = c->killed_by_us;
  r.gpu_over = c->gpu_over;
  r.gpu_peak_bytes = c->gpu_peak_bytes;
  r.gpu_limit_bytes = c->gpu_limit_bytes;
  if (c->cg) {
    r.has_cgroup = 1;
    r.cgroup_dir = mg_cgroup_dir(c->cg);
    r.cgroup_version = mg_cgroup_get_version(c->cg);
    /* every run has a new group: its counters started at 0 (r.cg_start) */
    r.cg_end_ok = mg_cgroup_stats_read(c->cg, &r.cg_end, NULL, 0) == 0;
    r.has_oom_kill = r.cg_end.has_oom_kill;
    size_t left = 0;
    if (mg_cgroup_count_pids(c->cg, &left) == 0 && left > 0) {
      mg_log_field f[] = {MG_LF_STR("name", c->name),
                          MG_LF_UINT("processes", left),
                          MG_LF_STR("dir", r.cgroup_dir)};
      mg_log(c->sup->log, MG_LOG_INFO, "leftovers_killed", f, 3);
    }
  }
  mg_child_exit e;
  memset(&e, 0, sizeof e);
  mg__sup_relay_tail(c, &e);
  if (e.stderr_tail_len > 0) {
    r.output_marker = mg__sup_find_marker(e.stderr_tail, e.stderr_tail_len);
    r.own_limit = mg__sup_find_own_limit(e.stderr_tail, e.stderr_tail_len);
    r.output_file =
        c->stderr_mode == MG_STDIO_FILE ? c->stderr_path : "its stderr";
  }
  if (!r.output_marker && c->stdout_mode == MG_STDIO_FILE) {
    r.output_marker = sup__scan_output(c->stdout_path, c->out_start);
    r.output_file = c->stdout_path;
  }
  e.pid = pid;
  e.runtime_ms = end - c->start_ms;
  e.restarts = c->restarts;
  mg__sup_classify(&r, &e); /* before the group's directory goes */
  mg__sup_act_run_end(c);
  if (r.cg_end_ok && r.cg_end.has_oom_kill)
    e.oom_kills = r.cg_end.oom_kills - r.cg_start.oom_kills;
  if (c->cg)
    mg__sup_cgroup_drop(c);
  sup__run_done(c, &e);
}

void mg__sup_on_sigchld(uv_signal_t *h, int signum) {
  (void)signum;
  mg_sup *sup = h->data;
  unsigned round = ++sup->round;
  for (;;) {
    mg_child *hit = NULL;
    for (mg_child *c = sup->head; c && !hit; c = c->next) {
      if (c->pid <= 0 || c->round == round)
        continue;
      c->round = round;
      if (sup__exited(c->pid))
        hit = c;
    }
    if (!hit)
      return;
    sup__reap(hit); /* runs callbacks: rescan from the head */
  }
}

/* Start time of `pid` (0 when it is gone). */
static uint64_t sup__start_time(const mg_child *c, pid_t pid) {
  uint64_t t = 0;
  mg_proc_start_time(c->sup->paths.proc_root, pid, &t, NULL, 0);
  return t;
}

/* The run's process tree, root first (see mg_proc_tree). */
static size_t sup__tree(const mg_child *c, pid_t *out, size_t cap) {
  size_t n = 0;
  mg_proc_tree(c->sup->paths.proc_root, c->pid, out, cap, &n);
  return n;
}

/* Remember the run's tree (with start times) and send it `signum`. */
static void sup__tree_signal(mg_child *c, int signum) {
  if (!c->stop_tree) {
    c->stop_tree = calloc(SUP__TREE_MAX, sizeof *c->stop_tree);
    c->stop_tree_start = calloc(SUP__TREE_MAX, sizeof *c->stop_tree_start);
    if (!c->stop_tree || !c->stop_tree_start) {
      free(c->stop_tree);
      free(c->stop_tree_start);
      c->stop_tree = NULL;
      c->stop_tree_start = NULL;
      return;
    }
  }
  size_t n = sup__tree(c, c->stop_tree, SUP__TREE_MAX);
  c->stop_tree_n = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t st = sup__start_time(c, c->stop_tree[i]);
    if (st == 0)
      continue;
    c->stop_tree[c->stop_tree_n] = c->stop_tree[i];
    c->stop_tree_start[c->stop_tree_n++] = st;
    kill(c->stop_tree[i], signum);
    if (signum != SIGKILL)
      kill(c->stop_tree[i],
           SIGCONT); /* a stopped process sees TERM only then */
  }
}

/* SIGKILL what is left of the tree remembered at stop (same pid and start
 * time only: never a stranger that reused a pid), then forget it. */
static void sup__tree_kill_remembered(mg_child *c) {
  for (size_t i = 0; i < c->stop_tree_n; i++)
    if (c->stop_tree[i] != c->pid &&
        sup__start_time(c, c->stop_tree[i]) == c->stop_tree_start[i])
      kill(c->stop_tree[i], SIGKILL);
  c->stop_tree_n = 0;
}

/* SIGKILL the run's whole tree: its descendants (found before the group
 * is killed, so reparenting cannot hide them), those remembered when it
 * was told to stop, its process group, its cgroup. */
void mg__sup_kill_hard(mg_child *c) {
  if (c->pid <= 0)
    return;
  mg__sup_thaw(c);
  pid_t tree[SUP__TREE_MAX];
  size_t n = sup__tree(c, tree, SUP__TREE_MAX);
  for (size_t i = 0; i < n; i++) /* the memory back at once where it can */
    mg_kill_release(tree[i]);
  kill(-c->pid, SIGKILL);
  sup__tree_kill_remembered(c);
  if (c->cg)
    mg_cgroup_kill_all(c->cg, SUP__GRACE_KILL_WAIT_MS);
}

static void sup__on_grace(uv_timer_t *t) {
  mg_child *c = t->data;
  if (c->pid <= 0)
    return;
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid)};
  mg_log(c->sup->log, MG_LOG_WARN, "child_killed", f, 2);
  c->killed_by_us = 1;
  MG__SUP_EMIT(c, on_kill, SIGKILL, (uint64_t)0);
  mg__sup_kill_hard(c);
}

int mg_child_signal(mg_child *c, int signum) {
  if (!c || signum < 0 || signum >= NSIG)
    return -EINVAL;
  if (c->pid <= 0)
    return -ESRCH;
  if (signum == SIGKILL) { /* the whole run: tree, group, cgroup */
    mg__sup_kill_hard(c);
    return 0;
  }
  int a = kill(-c->pid, signum);
  int ea = errno;
  if (getpgid(c->pid) != c->pid) { /* it left its group (setsid) */
    if (kill(c->pid, signum) == 0)
      return 0;
    return a == 0 ? 0 : -errno;
  }
  return a == 0 ? 0 : -ea;
}

int mg_child_kill(mg_child *c, int signum, uint64_t grace_ms) {
  if (!c || signum <= 0 || signum >= NSIG)
    return -EINVAL;
  if (c->pid <= 0)
    return -ESRCH;
  if (signum == SIGKILL || grace_ms == 0) {
    mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid)};
    mg_log(c->sup->log, MG_LOG_INFO, "child_killed", f, 2);
    c->killed_by_us = 2; /* a kill asked for (1: the end of a grace) */
    MG__SUP_EMIT(c, on_kill, SIGKILL, (uint64_t)0);
    mg__sup_kill_hard(c);
    return 0;
  }
  mg__sup_thaw(c);
  char sn[16];
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
                      MG_LF_STR("signal", mg__sup_signame(signum, sn, 16)),
                      MG_LF_UINT("grace_ms", grace_ms)};
  mg_log(c->sup->log, MG_LOG_INFO, "child_terminating", f, 4);
  MG__SUP_EMIT(c, on_kill, signum, grace_ms);
  uv_update_time(c->sup->loop);
  sup__tree_signal(c, signum);
  mg_child_signal(c, signum);
  if (!c->term_sent || grace_ms < uv_timer_get_due_in(&c->grace_timer))
    uv_timer_start(&c->grace_timer, sup__on_grace, grace_ms, 0);
  c->term_sent = 1;
  return 0;
}

int mg_child_stop(mg_child *c, uint64_t grace_ms) {
  if (!c)
    return -EINVAL;
  if (c->closed)
    return 0;
  c->stopping = 1;
  if (c->pid <= 0) { /* between runs: cancel the restart */
    uv_timer_stop(&c->backoff_timer);
    mg__sup_child_close(c);
    return 0;
  }
  uint64_t g = grace_ms ? grace_ms : c->grace_ms;
  uv_update_time(c->sup->loop); /* the grace counts from now */
  if (c->term_sent) {           /* already stopping: a shorter grace may win */
    uint64_t due = uv_timer_get_due_in(&c->grace_timer);
    if (g < due)
      uv_timer_start(&c->grace_timer, sup__on_grace, g, 0);
    return 0;
  }
  c->term_sent = 1;
  mg__sup_thaw(c);
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
                      MG_LF_UINT("grace_ms", g)};
  mg_log(c->sup->log, MG_LOG_INFO, "child_stopping", f, 3);
  MG__SUP_EMIT(c, on_kill, SIGTERM, g);
  /* The tree first: once the main process dies of SIGTERM its children
   * are reparented away and no longer findable under it. */
  sup__tree_signal(c, SIGTERM); /* also what left the group: setsid, daemons */
  mg_child_signal(c, SIGTERM);
  kill(-c->pid,
       SIGCONT); /* a stopped group (SIGTTIN…) acts on TERM only then */
  uv_timer_start(&c->grace_timer, sup__on_grace, g, 0);
  return 0;
}
