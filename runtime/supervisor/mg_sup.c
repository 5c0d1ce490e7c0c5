/* mg_sup.c — the supervisor: detection at start, spawning, sampling,
 * reaping on SIGCHLD, restarts with backoff, stop and shutdown, and the
 * lifetime of children and handles (supervisor layer: libuv + libmg).
 *
 * Handles. The supervisor owns a uv_signal_t on SIGCHLD (started before
 * the first fork, referenced only while some child runs, so an idle
 * supervisor does not keep the loop alive) and a timer used once to defer
 * `done`. Each child owns three timers (sampling, restart backoff, stop
 * grace) that live from its successful spawn until it is closed. Memory is
 * freed only after every handle in it went through its close callback.
 *
 * Reentrancy. User callbacks may spawn, stop, release and shut down from
 * inside any event. Children are never freed synchronously while the
 * supervisor walks its list (only released children that are already
 * closed are freed, and those are skipped by every walk), and walks that
 * call back into user code restart from the head, marking the children
 * already visited with a generation number.
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
#define SUP__KILL_WAIT_MS 1000 /* mg_cgroup_kill_all's wait at run end */
#define SUP__GRACE_KILL_WAIT_MS 100
#define SUP__OUTPUT_SCAN 8192

/* ------------------------------------------------------------- names */

const char *mg_enforce_name(mg_enforce e) {
  switch (e) {
  case MG_ENFORCE_AUTO:
    return "auto";
  case MG_ENFORCE_CGROUP:
    return "cgroup";
  case MG_ENFORCE_DATA:
    return "data";
  case MG_ENFORCE_AS:
    return "as";
  case MG_ENFORCE_NONE:
    return "none";
  }
  return "?";
}

int mg_enforce_parse(const char *s, mg_enforce *out, char *err, size_t len) {
  for (int i = MG_ENFORCE_AUTO; i <= MG_ENFORCE_NONE; i++)
    if (s && strcmp(s, mg_enforce_name((mg_enforce)i)) == 0) {
      if (out)
        *out = (mg_enforce)i;
      return 0;
    }
  return mg_errf(err, len, -EINVAL,
                 "enforce: unknown mode '%.64s' (auto, cgroup, data, as, "
                 "none)",
                 s ? s : "(null)");
}

const char *mg_restart_name(mg_restart r) {
  switch (r) {
  case MG_RESTART_NO:
    return "no";
  case MG_RESTART_ON_FAILURE:
    return "on-failure";
  case MG_RESTART_ALWAYS:
    return "always";
  }
  return "?";
}

int mg_restart_parse(const char *s, mg_restart *out, char *err, size_t len) {
  for (int i = MG_RESTART_NO; i <= MG_RESTART_ALWAYS; i++)
    if (s && strcmp(s, mg_restart_name((mg_restart)i)) == 0) {
      if (out)
        *out = (mg_restart)i;
      return 0;
    }
  return mg_errf(err, len, -EINVAL,
                 "restart: unknown policy '%.64s' (no, on-failure, always)",
                 s ? s : "(null)");
}

const char *mg_exit_reason_name(mg_exit_reason r) {
  switch (r) {
  case MG_EXIT_EXIT:
    return "exit";
  case MG_EXIT_SIGNAL:
    return "signal";
  case MG_EXIT_OOM:
    return "oom";
  case MG_EXIT_LIMIT:
    return "limit";
  }
  return "?";
}

/* ----------------------------------------------------------- helpers */

uint64_t mg__sup_now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static char *sup__strdup(const char *s) {
  return s ? strdup(s) : NULL;
}

/* NULL-terminated deep copy; *ok = 0 on out-of-memory. */
static char **sup__vdup(char *const *v, int *ok) {
  if (!v)
    return NULL;
  size_t n = 0;
  while (v[n])
    n++;
  char **out = calloc(n + 1, sizeof *out);
  if (!out) {
    *ok = 0;
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    if (!(out[i] = strdup(v[i])))
      *ok = 0;
  return out;
}

static void sup__vfree(char **v) {
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

static void sup__log(mg_sup *sup, mg_log_level lv, const char *event,
                     const mg_log_field *f, size_t n) {
  mg_log(sup->log, lv, event, f, n);
}

/* The SIGCHLD handle keeps the loop alive only while a child runs. */
static void sup__update_ref(mg_sup *sup) {
  if (!sup->sigchld_init || uv_is_closing((uv_handle_t *)&sup->sigchld))
    return;
  for (mg_child *c = sup->head; c; c = c->next)
    if (c->pid > 0) {
      uv_ref((uv_handle_t *)&sup->sigchld);
      return;
    }
  uv_unref((uv_handle_t *)&sup->sigchld);
}

static void sup__check(mg_sup *sup);

/* --------------------------------------------------------- lifetime */

static void sup__child_free(mg_child *c) {
  mg_sup *sup = c->sup;
  if (c->prev)
    c->prev->next = c->next;
  else
    sup->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    sup->tail = c->prev;
  if (c->cg)
    mg__sup_cgroup_drop(c);
  if (c->cg_leftover) {
    mg__sup_cgroup_drop(c);
    mg_cgroup_free(c->cg_leftover);
  }
  sup__vfree(c->argv);
  sup__vfree(c->env);
  free(c->path);
  free(c->cwd);
  free(c->stdout_path);
  free(c->stderr_path);
  free(c->stop_tree);
  free(c->stop_tree_start);
  free(c);
}

static void sup__free_now(mg_sup *sup) {
  while (sup->head)
    sup__child_free(sup->head);
  free(sup->proc_root);
  free(sup->fs_root);
  free(sup->parent);
  free(sup);
}

static void sup__on_child_handle_closed(uv_handle_t *h) {
  mg_child *c = h->data;
  mg_sup *sup = c->sup;
  c->handles_open--;
  sup->nhandles--;
  if (c->handles_open == 0 && c->released && !sup->free_requested)
    sup__child_free(c);
  sup__check(sup);
}

static void sup__on_sup_handle_closed(uv_handle_t *h) {
  mg_sup *sup = h->data;
  sup->nhandles--;
  sup__check(sup);
}

static void sup__close_child_handles(mg_child *c) {
  uv_handle_t *hs[] = {(uv_handle_t *)&c->sample_timer,
                       (uv_handle_t *)&c->backoff_timer,
                       (uv_handle_t *)&c->grace_timer};
  for (size_t i = 0; i < 3; i++)
    if (!uv_is_closing(hs[i]))
      uv_close(hs[i], sup__on_child_handle_closed);
}

/* No further run: close the handles, then on_close. */
static void sup__child_close(mg_child *c) {
  if (c->closed)
    return;
  c->closed = 1;
  uv_timer_stop(&c->sample_timer);
  uv_timer_stop(&c->backoff_timer);
  uv_timer_stop(&c->grace_timer);
  if (c->cg_leftover)
    mg__sup_cgroup_drop(c);
  mg_log_field f[] = {MG_LF_STR("name", c->name),
                      MG_LF_INT("restarts", c->restarts)};
  sup__log(c->sup, MG_LOG_DEBUG, "child_closed", f, 2);
  sup__close_child_handles(c);
  sup__update_ref(c->sup);
  if (!c->released && c->ev.on_close)
    c->ev.on_close(c, c->ev.ud);
}

/* Shutdown bookkeeping and deferred frees; see the file comment. */
static void sup__check(mg_sup *sup) {
  if (sup->free_requested) {
    if (sup->nhandles == 0)
      sup__free_now(sup);
    return;
  }
  if (!sup->shutting_down || sup->done_called)
    return;
  if (!sup->finishing) {
    for (mg_child *c = sup->head; c; c = c->next)
      if (!c->closed || c->handles_open > 0)
        return;
    sup->finishing = 1;
    if (sup->sigchld_init && !uv_is_closing((uv_handle_t *)&sup->sigchld))
      uv_close((uv_handle_t *)&sup->sigchld, sup__on_sup_handle_closed);
    if (!sup->finish_init) { /* guarantees `done` runs from the loop */
      uv_timer_init(sup->loop, &sup->finish);
      sup->finish.data = sup;
      sup->finish_init = 1;
      sup->nhandles++;
      uv_close((uv_handle_t *)&sup->finish, sup__on_sup_handle_closed);
    }
    return;
  }
  if (sup->nhandles > 0)
    return;
  sup->done_called = 1;
  sup__log(sup, MG_LOG_INFO, "shutdown_done", NULL, 0);
  if (sup->done)
    sup->done(sup, sup->done_ud); /* may free sup */
}

/* ------------------------------------------------------------ cgroups */

void mg__sup_cgroup_drop(mg_child *c) {
  mg_cgroup **slot = c->cg ? &c->cg : &c->cg_leftover;
  mg_cgroup *cg = *slot;
  if (!cg)
    return;
  char e[PATH_MAX + 256];
  mg_cgroup_kill_all(cg, SUP__KILL_WAIT_MS);
  int rc = mg_cgroup_remove(cg, e, sizeof e);
  mg_log_field f[] = {MG_LF_STR("name", c->name),
                      MG_LF_STR("dir", mg_cgroup_dir(cg)),
                      MG_LF_STR("error", e)};
  if (rc < 0) {
    sup__log(c->sup, MG_LOG_ERROR, "cgroup_remove_failed", f, 3);
    *slot = NULL;
    if (c->cg_leftover && c->cg_leftover != cg)
      mg_cgroup_free(c->cg_leftover);
    c->cg_leftover = cg;
    return;
  }
  sup__log(c->sup, MG_LOG_DEBUG, "cgroup_removed", f, 2);
  *slot = NULL;
  mg_cgroup_free(cg);
}

/* ----------------------------------------------------------- sampling */

static int sup__sample(mg_child *c, mg_child_sample *s, char *err,
                       size_t err_len) {
  memset(s, 0, sizeof *s);
  if (c->pid <= 0)
    return mg_errf(err, err_len, -ESRCH, "process '%s' is not running",
                   c->name);
  mg_proc_status st;
  int rc = mg_proc_status_read("/proc", c->pid, &st, err, err_len);
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
  if (c->cg) { /* usage and peak only: the event counters matter at exit */
    uint64_t cur, peak;
    int has_peak;
    if (mg_cgroup_usage_read(c->cg, &cur, &peak, &has_peak, NULL, 0) == 0) {
      s->has_cgroup = 1;
      s->cgroup_current_bytes = cur;
      s->cgroup_peak_bytes = has_peak ? peak : 0;
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
  s->limit_bytes = c->limit_bytes;
  s->fraction =
      c->limit_bytes ? (double)s->used_bytes / (double)c->limit_bytes : 0;
  if (s->used_bytes > c->max_used_bytes)
    c->max_used_bytes = s->used_bytes;
  c->last_hwm_bytes = s->hwm_bytes;
  return 0;
}

static void sup__on_sample(uv_timer_t *t) {
  mg_child *c = t->data;
  mg_child_sample s;
  if (sup__sample(c, &s, NULL, 0) < 0)
    return;
  int warn = 0;
  if (c->warn_at > 0 && s.limit_bytes > 0) {
    if (s.fraction >= c->warn_at) {
      warn = c->warn_armed;
      c->warn_armed = 0;
    } else {
      c->warn_armed = 1;
    }
  }
  if (!c->released && c->ev.on_sample)
    c->ev.on_sample(c, &s, c->ev.ud);
  if (!warn)
    return;
  char u[32], l[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name),
      MG_LF_INT("pid", s.pid),
      MG_LF_STR("used", mg_size_format(s.used_bytes, u, sizeof u)),
      MG_LF_STR("limit", mg_size_format(s.limit_bytes, l, sizeof l)),
      MG_LF_DBL("fraction", s.fraction),
      MG_LF_DBL("warn_at", c->warn_at),
  };
  sup__log(c->sup, MG_LOG_WARN, "child_warn", f, 6);
  if (!c->released && c->ev.on_warn)
    c->ev.on_warn(c, &s, c->ev.ud);
}

/* ------------------------------------------------------------ running */

static void sup__on_backoff(uv_timer_t *t);

/* A run has been exec'd: reset per-run state, start sampling, log. */
static void sup__run_started(mg_child *c) {
  c->start_ms = mg__sup_now_ms();
  c->term_sent = 0;
  c->killed_by_us = 0;
  c->warn_armed = 1;
  c->max_used_bytes = 0;
  c->last_hwm_bytes = 0;
  uv_update_time(c->sup->loop);
  if (c->sample_ms > 0)
    uv_timer_start(&c->sample_timer, sup__on_sample, c->sample_ms,
                   c->sample_ms);
  sup__update_ref(c->sup);
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
  sup__log(c->sup, MG_LOG_INFO, "child_started", f, 7);
}

/* After a run (real or a failed restart): decide on a restart, tell the
 * owner, then schedule the restart or close. */
static void sup__run_done(mg_child *c, mg_child_exit *e) {
  mg_sup *sup = c->sup;
  int failed = e->reason != MG_EXIT_EXIT || e->code != 0;
  int want = c->restart == MG_RESTART_ALWAYS ||
             (c->restart == MG_RESTART_ON_FAILURE && failed);
  int capped = want && c->max_restarts >= 0 && c->restarts >= c->max_restarts;
  if (capped || c->stopping || sup->shutting_down)
    want = 0;
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
  sup__log(sup, failed ? MG_LOG_WARN : MG_LOG_INFO, "child_exited", f, 11);
  if (capped) {
    mg_log_field g[] = {MG_LF_STR("name", c->name),
                        MG_LF_INT("max_restarts", c->max_restarts)};
    sup__log(sup, MG_LOG_WARN, "restart_limit_reached", g, 2);
  }
  if (!c->released && c->ev.on_exit)
    c->ev.on_exit(c, e, c->ev.ud);
  if (c->closed)
    return; /* stopped from inside on_exit */
  if (want && !c->stopping && !sup->shutting_down) {
    uv_update_time(sup->loop);
    uv_timer_start(&c->backoff_timer, sup__on_backoff, e->restart_in_ms, 0);
  } else
    sup__child_close(c);
}

static void sup__on_backoff(uv_timer_t *t) {
  mg_child *c = t->data;
  mg_sup *sup = c->sup;
  if (c->closed)
    return;
  if (c->stopping || sup->shutting_down) {
    sup__child_close(c);
    return;
  }
  c->restarts++;
  mg_log_field f[] = {MG_LF_STR("name", c->name),
                      MG_LF_INT("restarts", c->restarts)};
  sup__log(sup, MG_LOG_INFO, "child_restarting", f, 2);
  if (!c->released && c->ev.on_restart)
    c->ev.on_restart(c, c->restarts, c->ev.ud);
  if (c->closed)
    return;
  if (c->stopping || sup->shutting_down) {
    sup__child_close(c);
    return;
  }
  char err[512];
  if (mg__sup_exec(c, err, sizeof err) == 0) {
    sup__run_started(c);
    return;
  }
  mg_child_exit e;
  memset(&e, 0, sizeof e);
  e.code = 127;
  e.reason = MG_EXIT_EXIT;
  e.restarts = c->restarts;
  snprintf(e.detail, sizeof e.detail, "restart failed: %s", err);
  mg_log_field g[] = {MG_LF_STR("name", c->name), MG_LF_STR("error", err)};
  sup__log(sup, MG_LOG_ERROR, "restart_failed", g, 2);
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
  c->pid = 0;
  uv_timer_stop(&c->sample_timer);
  uv_timer_stop(&c->grace_timer);
  r.enforce = c->enforce;
  r.limit_bytes = c->limit_bytes;
  r.max_used_bytes = c->max_used_bytes;
  r.last_hwm_bytes = c->last_hwm_bytes;
  r.killed_by_us = c->killed_by_us;
  if (c->cg) {
    r.has_cgroup = 1;
    r.cgroup_dir = mg_cgroup_dir(c->cg);
    r.cgroup_version = mg_cgroup_get_version(c->cg);
    r.has_oom_kill = c->cg_has_oom_kill;
    r.cg_start = c->cg_start;
    r.cg_end_ok = mg_cgroup_stats_read(c->cg, &r.cg_end, NULL, 0) == 0;
    size_t left = 0;
    if (mg_cgroup_count_pids(c->cg, &left) == 0 && left > 0) {
      mg_log_field f[] = {MG_LF_STR("name", c->name),
                          MG_LF_UINT("processes", left),
                          MG_LF_STR("dir", r.cgroup_dir)};
      sup__log(c->sup, MG_LOG_INFO, "leftovers_killed", f, 3);
    }
  }
  if (c->enforce == MG_ENFORCE_DATA || c->enforce == MG_ENFORCE_AS) {
    r.output_marker = sup__scan_output(c->stderr_path, c->err_start);
    r.output_file = c->stderr_path;
    if (!r.output_marker) {
      r.output_marker = sup__scan_output(c->stdout_path, c->out_start);
      r.output_file = c->stdout_path;
    }
  }
  mg_child_exit e;
  memset(&e, 0, sizeof e);
  e.pid = pid;
  e.runtime_ms = end - c->start_ms;
  e.restarts = c->restarts;
  mg__sup_classify(&r, &e); /* before the group's directory goes */
  if (c->cg)
    mg__sup_cgroup_drop(c);
  sup__run_done(c, &e);
}

static void sup__on_sigchld(uv_signal_t *h, int signum) {
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
  size_t n = mg__sup_tree("/proc", c->pid, c->stop_tree, SUP__TREE_MAX);
  c->stop_tree_n = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned long long st = mg__sup_start_time(c->stop_tree[i]);
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
        mg__sup_start_time(c->stop_tree[i]) == c->stop_tree_start[i])
      kill(c->stop_tree[i], SIGKILL);
  c->stop_tree_n = 0;
}

/* SIGKILL the run's whole tree: its descendants (found before the group
 * is killed, so reparenting cannot hide them), those remembered when it
 * was told to stop, its process group, its cgroup. */
static void sup__kill_hard(mg_child *c) {
  if (c->pid <= 0)
    return;
  pid_t tree[SUP__TREE_MAX];
  size_t n = mg__sup_tree("/proc", c->pid, tree, SUP__TREE_MAX);
  kill(-c->pid, SIGKILL);
  for (size_t i = 0; i < n; i++)
    kill(tree[i], SIGKILL);
  sup__tree_kill_remembered(c);
  if (c->cg)
    mg_cgroup_kill_all(c->cg, SUP__GRACE_KILL_WAIT_MS);
}

static void sup__on_grace(uv_timer_t *t) {
  mg_child *c = t->data;
  if (c->pid <= 0)
    return;
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid)};
  sup__log(c->sup, MG_LOG_WARN, "child_killed", f, 2);
  c->killed_by_us = 1;
  sup__kill_hard(c);
}

/* ------------------------------------------------------------- public */

int mg_sup_new(const mg_sup_opts *o, mg_sup **out, char *err, size_t err_len) {
  if (!out)
    return mg_errf(err, err_len, -EINVAL, "mg_sup_new: out is NULL");
  *out = NULL;
  if (!o || !o->loop)
    return mg_errf(err, err_len, -EINVAL, "mg_sup_new: a loop is required");
  const char *prefix = o->group_prefix ? o->group_prefix : "mgrun";
  size_t pl = strlen(prefix);
  int ok = pl >= 1 && pl <= 20;
  for (size_t i = 0; ok && i < pl; i++)
    ok = (prefix[i] >= 'a' && prefix[i] <= 'z') ||
         (prefix[i] >= 'A' && prefix[i] <= 'Z') ||
         (prefix[i] >= '0' && prefix[i] <= '9') || prefix[i] == '_' ||
         prefix[i] == '.';
  if (!ok)
    return mg_errf(err, err_len, -EINVAL,
                   "group_prefix: invalid '%.40s': use 1 to 20 characters "
                   "from A-Z a-z 0-9 . _",
                   prefix);
  mg_sup *sup = calloc(1, sizeof *sup);
  if (!sup)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  sup->loop = o->loop;
  sup->log = o->logger;
  sup->self_pid = getpid();
  memcpy(sup->prefix, prefix, pl + 1);
  sup->proc_root = sup__strdup(o->paths.proc_root);
  sup->fs_root = sup__strdup(o->paths.fs_root);
  sup->parent = sup__strdup(o->cgroup_parent);
  if ((o->paths.proc_root && !sup->proc_root) ||
      (o->paths.fs_root && !sup->fs_root) ||
      (o->cgroup_parent && !sup->parent)) {
    sup__free_now(sup);
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  }
  sup->paths.proc_root = sup->proc_root;
  sup->paths.fs_root = sup->fs_root;

  /* cgroups: detection, a real probe, stale groups of dead runs. */
  char e[1024];
  int rc = mg_cgroup_detect(&sup->paths, &sup->cg, e, sizeof e);
  if (rc < 0) {
    memset(&sup->cg, 0, sizeof sup->cg);
    snprintf(sup->cg_reason, sizeof sup->cg_reason,
             "cgroup detection failed: %s", e);
  } else if (sup->cg.version == MG_CGROUP_NONE) {
    snprintf(sup->cg_reason, sizeof sup->cg_reason,
             "no cgroup memory controller is mounted%s",
             sup->cg.v2_mounted ? " (cgroup2 is mounted without the memory "
                                  "controller)"
                                : "");
  } else {
    if (sup->parent) {
      struct stat st;
      if (stat(sup->parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
        rc = mg_errf(err, err_len, -ENOENT,
                     "cgroup_parent: '%s' is not a directory", sup->parent);
        sup__free_now(sup);
        return rc;
      }
    }
    rc = mg_cgroup_probe_writable(&sup->cg, sup->parent, sup->cg_reason,
                                  sizeof sup->cg_reason);
    sup->cg_writable = rc == 1;
    if (rc < 0)
      snprintf(sup->cg_reason, sizeof sup->cg_reason,
               "the writability probe failed: %s", mg_strerror(rc));
    char pfx[40];
    size_t removed = 0;
    snprintf(pfx, sizeof pfx, "%s-", sup->prefix);
    rc = mg_cgroup_remove_stale(&sup->cg, sup->parent, pfx, &removed, e,
                                sizeof e);
    const char *parent = sup->parent ? sup->parent : sup->cg.dir;
    if (rc < 0) {
      mg_log_field f[] = {MG_LF_STR("parent", parent), MG_LF_STR("error", e)};
      sup__log(sup, MG_LOG_WARN, "stale_cgroups_remove_failed", f, 2);
    }
    if (removed > 0) {
      mg_log_field f[] = {MG_LF_STR("parent", parent), MG_LF_STR("prefix", pfx),
                          MG_LF_UINT("removed", removed)};
      sup__log(sup, MG_LOG_INFO, "stale_cgroups_removed", f, 3);
    }
  }

  /* rlimits, and what `auto` means here. */
  mg_rlimit_probe(&sup->rl);
  if (sup->cg_writable) {
    sup->auto_enforce = MG_ENFORCE_CGROUP;
    snprintf(sup->auto_why, sizeof sup->auto_why, "cgroup %s is writable: %s",
             mg_cgroup_version_name(sup->cg.version), sup->cg_reason);
  } else if (sup->rl.data_enforced) {
    sup->auto_enforce = MG_ENFORCE_DATA;
    snprintf(sup->auto_why, sizeof sup->auto_why,
             "no writable cgroup (%s); RLIMIT_DATA is enforced: %s",
             sup->cg_reason, sup->rl.data_reason);
  } else if (sup->rl.as_enforced) {
    sup->auto_enforce = MG_ENFORCE_AS;
    snprintf(sup->auto_why, sizeof sup->auto_why,
             "no writable cgroup (%s); RLIMIT_DATA is not enforced (%s); "
             "RLIMIT_AS is: %s",
             sup->cg_reason, sup->rl.data_reason, sup->rl.as_reason);
  } else {
    sup->auto_enforce = MG_ENFORCE_NONE;
    snprintf(sup->auto_why, sizeof sup->auto_why,
             "nothing can enforce a limit here: no writable cgroup (%s), "
             "RLIMIT_DATA not enforced (%s), RLIMIT_AS not enforced (%s); "
             "limits are watched only",
             sup->cg_reason, sup->rl.data_reason, sup->rl.as_reason);
  }
  mg_log_field f[] = {
      MG_LF_STR("enforce", mg_enforce_name(sup->auto_enforce)),
      MG_LF_STR("why", sup->auto_why),
      MG_LF_STR("cgroup", mg_cgroup_version_name(sup->cg.version)),
      MG_LF_BOOL("cgroup_writable", sup->cg_writable),
      MG_LF_BOOL("data_enforced", sup->rl.data_enforced),
      MG_LF_BOOL("as_enforced", sup->rl.as_enforced),
  };
  sup__log(sup,
           sup->auto_enforce == MG_ENFORCE_NONE ? MG_LOG_WARN : MG_LOG_INFO,
           "enforce_chosen", f, 6);
  *out = sup;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

mg_enforce mg_sup_auto_enforce(const mg_sup *sup, const char **why) {
  if (why)
    *why = sup ? sup->auto_why : "";
  return sup ? sup->auto_enforce : MG_ENFORCE_NONE;
}

int mg_child_validate(mg_sup *sup, const mg_child_opts *o, char *err,
                      size_t err_len) {
  return mg__sup_validate(sup, o, NULL, NULL, err, err_len);
}

/* Start SIGCHLD watching before the first fork, so no exit is missed. */
static int sup__sigchld_start(mg_sup *sup, char *err, size_t err_len) {
  if (sup->sigchld_init)
    return 0;
  int rc = uv_signal_init(sup->loop, &sup->sigchld);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "spawn: uv_signal_init: %s",
                   uv_strerror(rc));
  sup->sigchld.data = sup;
  sup->sigchld_init = 1;
  sup->nhandles++;
  rc = uv_signal_start(&sup->sigchld, sup__on_sigchld, SIGCHLD);
  if (rc < 0) {
    sup->sigchld_init = 0;
    uv_close((uv_handle_t *)&sup->sigchld, sup__on_sup_handle_closed);
    return mg_errf(err, err_len, rc, "spawn: watching SIGCHLD: %s",
                   uv_strerror(rc));
  }
  uv_unref((uv_handle_t *)&sup->sigchld);
  return 0;
}

int mg_child_spawn(mg_sup *sup, const mg_child_opts *o,
                   const mg_child_events *ev, mg_child **out, char *err,
                   size_t err_len) {
  if (out)
    *out = NULL;
  mg_enforce enforce;
  char *path = NULL;
  int rc = mg__sup_validate(sup, o, &enforce, &path, err, err_len);
  if (rc < 0)
    return rc;
  mg_child *c = calloc(1, sizeof *c);
  if (!c) {
    free(path);
    return mg_errf(err, err_len, -ENOMEM, "spawn: out of memory");
  }
  int ok = 1;
  c->sup = sup;
  c->path = path;
  snprintf(c->name, sizeof c->name, "%s", o->name);
  c->argv = sup__vdup(o->argv, &ok);
  c->env = sup__vdup(o->env, &ok);
  c->cwd = sup__strdup(o->cwd);
  c->stdout_mode = o->stdout_mode;
  c->stderr_mode = o->stderr_mode;
  if (o->stdout_mode == MG_STDIO_FILE)
    c->stdout_path = sup__strdup(o->stdout_path);
  if (o->stderr_mode == MG_STDIO_FILE)
    c->stderr_path = sup__strdup(o->stderr_path);
  if (!ok || (o->cwd && !c->cwd) ||
      (o->stdout_mode == MG_STDIO_FILE && !c->stdout_path) ||
      (o->stderr_mode == MG_STDIO_FILE && !c->stderr_path)) {
    sup__vfree(c->argv);
    sup__vfree(c->env);
    free(c->cwd);
    free(c->stdout_path);
    free(c->stderr_path);
    free(c->path);
    free(c);
    return mg_errf(err, err_len, -ENOMEM, "spawn: out of memory");
  }
  c->enforce = enforce;
  c->limit_bytes = o->limit_bytes;
  c->warn_at = o->warn_at;
  c->sample_ms = o->sample_ms;
  c->restart = o->restart;
  c->max_restarts = o->max_restarts;
  c->backoff_ms = o->backoff_ms ? o->backoff_ms : MG_SUP_BACKOFF_MS;
  c->backoff_max_ms =
      o->backoff_max_ms ? o->backoff_max_ms : MG_SUP_BACKOFF_MAX_MS;
  if (c->backoff_max_ms < c->backoff_ms)
    c->backoff_max_ms = c->backoff_ms;
  c->backoff_next_ms = c->backoff_ms;
  c->backoff_reset_ms =
      o->backoff_reset_ms ? o->backoff_reset_ms : MG_SUP_BACKOFF_RESET_MS;
  c->grace_ms = o->grace_ms ? o->grace_ms : MG_SUP_GRACE_MS;
  if (ev)
    c->ev = *ev;
  c->out_start = c->err_start = -1;

  rc = sup__sigchld_start(sup, err, err_len);
  if (rc == 0)
    rc = mg__sup_exec(c, err, err_len);
  if (rc < 0) {
    sup__vfree(c->argv);
    sup__vfree(c->env);
    free(c->cwd);
    free(c->stdout_path);
    free(c->stderr_path);
    free(c->path);
    free(c);
    return rc;
  }
  /* Running: from here on it is one of ours. */
  uv_timer_init(sup->loop, &c->sample_timer);
  uv_timer_init(sup->loop, &c->backoff_timer);
  uv_timer_init(sup->loop, &c->grace_timer);
  c->sample_timer.data = c->backoff_timer.data = c->grace_timer.data = c;
  c->handles_open = 3;
  sup->nhandles += 3;
  c->prev = sup->tail;
  if (sup->tail)
    sup->tail->next = c;
  else
    sup->head = c;
  sup->tail = c;
  sup__run_started(c);
  if (out)
    *out = c;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

const char *mg_child_name(const mg_child *c) {
  return c ? c->name : NULL;
}

pid_t mg_child_pid(const mg_child *c) {
  return c ? c->pid : 0;
}

int mg_child_restarts(const mg_child *c) {
  return c ? c->restarts : 0;
}

int mg_child_running(const mg_child *c) {
  return c && c->pid > 0;
}

int mg_child_closed(const mg_child *c) {
  return !c || c->closed;
}

mg_enforce mg_child_enforce(const mg_child *c) {
  return c ? c->enforce : MG_ENFORCE_NONE;
}

uint64_t mg_child_limit(const mg_child *c) {
  return c ? c->limit_bytes : 0;
}

const char *mg_child_cgroup_dir(const mg_child *c) {
  return c && c->cg ? mg_cgroup_dir(c->cg) : NULL;
}

int mg_child_memory(mg_child *c, mg_child_sample *out, char *err,
                    size_t err_len) {
  if (!c || !out)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_child_memory: child and out "
                   "are required");
  return sup__sample(c, out, err, err_len);
}

int mg_child_signal(mg_child *c, int signum) {
  if (!c || signum < 0 || signum >= NSIG)
    return -EINVAL;
  if (c->pid <= 0)
    return -ESRCH;
  if (signum == SIGKILL) { /* the whole run: tree, group, cgroup */
    sup__kill_hard(c);
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

int mg_child_stop(mg_child *c, uint64_t grace_ms) {
  if (!c)
    return -EINVAL;
  if (c->closed)
    return 0;
  c->stopping = 1;
  if (c->pid <= 0) { /* between runs: cancel the restart */
    uv_timer_stop(&c->backoff_timer);
    sup__child_close(c);
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
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
                      MG_LF_UINT("grace_ms", g)};
  sup__log(c->sup, MG_LOG_INFO, "child_stopping", f, 3);
  /* The tree first: once the main process dies of SIGTERM its children
   * are reparented away and no longer findable under it. */
  sup__tree_signal(c, SIGTERM); /* also what left the group: setsid, daemons */
  mg_child_signal(c, SIGTERM);
  kill(-c->pid,
       SIGCONT); /* a stopped group (SIGTTIN…) acts on TERM only then */
  uv_timer_start(&c->grace_timer, sup__on_grace, g, 0);
  return 0;
}

int mg_child_set_limit(mg_child *c, uint64_t bytes, char *err, size_t err_len) {
  if (!c)
    return mg_errf(err, err_len, -EINVAL, "mg_child_set_limit: no child");
  if (bytes > MG_SIZE_MAX)
    return mg_errf(err, err_len, MG_ERANGE_SIZE,
                   "limit: %" PRIu64 " bytes is more than 2^63-1", bytes);
  if (bytes == 0 && c->enforce != MG_ENFORCE_NONE)
    return mg_errf(err, err_len, -EINVAL, "limit: required with enforce=%s",
                   mg_enforce_name(c->enforce));
  uint64_t applied = bytes;
  char e[1024], warn[256] = "";
  if (c->pid > 0 && c->enforce == MG_ENFORCE_CGROUP && c->cg) {
    int rc = mg_cgroup_set_limit(c->cg, bytes, NULL, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "limit: %s", e);
  } else if (c->pid > 0 &&
             (c->enforce == MG_ENFORCE_DATA || c->enforce == MG_ENFORCE_AS)) {
    mg_rlimit_resource r =
        c->enforce == MG_ENFORCE_DATA ? MG_RLIMIT_DATA : MG_RLIMIT_AS;
    int rc = mg_rlimit_set(c->pid, r, bytes, 1, &applied, warn, sizeof warn, e,
                           sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "limit: %s", e);
  }
  c->limit_bytes = bytes;
  char l[32], a[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name),
      MG_LF_INT("pid", c->pid),
      MG_LF_STR("enforce", mg_enforce_name(c->enforce)),
      MG_LF_STR("limit", mg_size_format(bytes, l, sizeof l)),
      MG_LF_STR("applied", mg_size_format(applied, a, sizeof a)),
      MG_LF_STR("warning", warn),
  };
  sup__log(c->sup, MG_LOG_INFO, "limit_changed", f, warn[0] ? 6 : 5);
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

void mg_child_release(mg_child *c) {
  if (!c || c->released)
    return;
  c->released = 1;
  if (c->closed && c->handles_open == 0 && !c->sup->free_requested)
    sup__child_free(c);
}

size_t mg_sup_children(mg_sup *sup, mg_child **out, size_t cap) {
  size_t n = 0;
  for (mg_child *c = sup ? sup->head : NULL; c; c = c->next)
    if (!c->closed) {
      if (out && n < cap)
        out[n] = c;
      n++;
    }
  return n < cap || !out ? n : cap;
}

int mg_sup_shutdown(mg_sup *sup, void (*done)(mg_sup *sup, void *ud),
                    void *ud) {
  if (!sup)
    return -EINVAL;
  if (sup->shutting_down || sup->free_requested)
    return 0;
  sup->shutting_down = 1;
  sup->done = done;
  sup->done_ud = ud;
  mg_log_field f[] = {MG_LF_UINT("children", mg_sup_children(sup, NULL, 0))};
  sup__log(sup, MG_LOG_INFO, "shutdown", f, 1);
  unsigned round = ++sup->round;
  for (;;) {
    mg_child *c = sup->head;
    while (c && (c->closed || c->round == round))
      c = c->next;
    if (!c)
      break;
    c->round = round;
    mg_child_stop(c, 0); /* may call on_close: rescan */
  }
  sup__check(sup);
  return 0;
}

void mg_sup_free(mg_sup *sup) {
  if (!sup || sup->free_requested)
    return;
  if (sup->nhandles == 0) {
    sup__free_now(sup);
    return;
  }
  /* Handles are still open (no completed shutdown): kill and reap
   * synchronously, close everything, free from the last close callback. */
  sup->free_requested = 1;
  for (mg_child *c = sup->head; c; c = c->next) {
    c->released = 1;
    if (c->pid > 0) {
      sup__kill_hard(c);
      while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
      }
      c->pid = 0;
    }
    if (c->cg)
      mg__sup_cgroup_drop(c);
    c->closed = 1;
    if (c->handles_open > 0)
      sup__close_child_handles(c);
  }
  if (sup->sigchld_init && !uv_is_closing((uv_handle_t *)&sup->sigchld))
    uv_close((uv_handle_t *)&sup->sigchld, sup__on_sup_handle_closed);
}
