/* mg_sup.c — the supervisor and the lifetime of its children (supervisor
 * layer: libuv + libmg): names of the modes, mg_sup_new, spawning,
 * accessors, limits, release, shutdown and free. The runs themselves
 * (sampling, reaping, restarts, stop) are in mg_sup_run.c, validation in
 * mg_sup_validate.c, the fork/exec step in mg_sup_exec.c.
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
  case MG_EXIT_GPU_LIMIT:
    return "gpu_limit";
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
void mg__sup_update_ref(mg_sup *sup) {
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

/* The one way a child goes (a failed spawn, a released child once
 * closed, mg_sup_free): out of the list if it is in it, its groups
 * dropped, everything it owns freed. */
static void sup__child_free(mg_child *c) {
  mg_sup *sup = c->sup;
  if (c->prev || sup->head == c) {
    if (c->prev)
      c->prev->next = c->next;
    else
      sup->head = c->next;
    if (c->next)
      c->next->prev = c->prev;
    else
      sup->tail = c->prev;
  }
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
  mg_gpu_close(sup->gpu);
  free(sup->proc_root);
  free(sup->fs_root);
  free(sup->parent);
  free(sup);
}

static void sup__on_child_handle_closed(uv_handle_t *h) {
  mg__sup_handle_closed(h->data);
}

void mg__sup_handle_closed(mg_child *c) {
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
  uv_handle_t *hs[] = {
      (uv_handle_t *)&c->sample_timer, (uv_handle_t *)&c->backoff_timer,
      (uv_handle_t *)&c->grace_timer, (uv_handle_t *)&c->oom_timer,
      (uv_handle_t *)&c->arm_timer};
  mg__sup_watch_stop(c);
  mg__sup_relay_drain(c);
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (!uv_is_closing(hs[i]))
      uv_close(hs[i], sup__on_child_handle_closed);
}

/* No further run: close the handles, then on_close. */
void mg__sup_child_close(mg_child *c) {
  if (c->closed)
    return;
  c->closed = 1;
  uv_timer_stop(&c->sample_timer);
  uv_timer_stop(&c->backoff_timer);
  uv_timer_stop(&c->grace_timer);
  uv_timer_stop(&c->oom_timer);
  uv_timer_stop(&c->arm_timer);
  if (c->cg_leftover)
    mg__sup_cgroup_drop(c);
  mg_log_field f[] = {MG_LF_STR("name", c->name),
                      MG_LF_INT("restarts", c->restarts)};
  sup__log(c->sup, MG_LOG_DEBUG, "child_closed", f, 2);
  sup__close_child_handles(c);
  mg__sup_update_ref(c->sup);
  MG__SUP_EMIT0(c, on_close);
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

/* ------------------------------------------------------------- public */

/* Remove the groups <prefix>-<deadpid>-* of dead earlier runs, saying how
 * many. */
static void sup__remove_stale(mg_sup *sup) {
  char pfx[40], e[1024];
  size_t removed = 0;
  snprintf(pfx, sizeof pfx, "%s-", sup->prefix);
  int rc =
      mg_cgroup_remove_stale(&sup->cg, sup->parent, pfx, &removed, e, sizeof e);
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

  /* cgroups: detection, the parent, stale groups of dead runs. Nothing is
   * probed here: a mode learns what it needs at the first spawn. */
  char e[1024];
  int rc = mg_cgroup_detect(&sup->paths, &sup->cg, e, sizeof e);
  if (rc < 0) {
    memset(&sup->cg, 0, sizeof sup->cg);
    snprintf(sup->cg_reason, sizeof sup->cg_reason,
             "cgroup detection failed: %s", e);
    sup->cg_known = 1;
    if (sup->parent) {
      rc = mg_errf(err, err_len, rc, "cgroup_parent: '%s' cannot be used: %s",
                   sup->parent, sup->cg_reason);
      sup__free_now(sup);
      return rc;
    }
  } else if (sup->cg.version == MG_CGROUP_NONE) {
    snprintf(sup->cg_reason, sizeof sup->cg_reason,
             "no cgroup memory controller is mounted%s",
             sup->cg.v2_mounted ? " (cgroup2 is mounted without the memory "
                                  "controller)"
                                : "");
    sup->cg_known = 1;
  }
  if (sup->parent) {
    rc = mg_cgroup_check_parent(&sup->cg, "cgroup_parent", sup->parent, err,
                                err_len);
    if (rc < 0) {
      sup__free_now(sup);
      return rc;
    }
  }
  if (sup->cg.version != MG_CGROUP_NONE)
    sup__remove_stale(sup);
  *out = sup;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

int mg_child_validate(mg_sup *sup, const mg_child_opts *o, mg_enforce *enforce,
                      char *err, size_t err_len) {
  if (enforce)
    *enforce = MG_ENFORCE_NONE;
  int has_limit = o && o->limit_bytes != MG_CHILD_NO_LIMIT;
  mg_enforce e = MG_ENFORCE_NONE;
  int rc = mg__sup_validate(sup, o, NULL, err, err_len);
  if (rc == 0)
    rc = mg__sup_mode_check(sup, o->enforce, has_limit, &e, err, err_len);
  if (rc == 0)
    rc = mg__sup_limit_rule(sup, o->name, e, has_limit ? o->limit_bytes : 0,
                            NULL, 0, err, err_len);
  if (rc == 0 && enforce)
    *enforce = e;
  return rc;
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
  rc = uv_signal_start(&sup->sigchld, mg__sup_on_sigchld, SIGCHLD);
  if (rc < 0) {
    sup->sigchld_init = 0;
    uv_close((uv_handle_t *)&sup->sigchld, sup__on_sup_handle_closed);
    return mg_errf(err, err_len, rc, "spawn: watching SIGCHLD: %s",
                   uv_strerror(rc));
  }
  uv_unref((uv_handle_t *)&sup->sigchld);
  return 0;
}

/* A child with deep copies of the options (it owns `path` from here on),
 * not yet in the list; NULL when out of memory. */
static mg_child *sup__child_new(mg_sup *sup, const mg_child_opts *o, char *path,
                                const mg_child_events *ev) {
  mg_child *c = calloc(1, sizeof *c);
  if (!c) {
    free(path);
    return NULL;
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
    sup__child_free(c);
    return NULL;
  }
  /* validated: every value is in range; enforce is resolved later */
  c->limit_bytes = o->limit_bytes == MG_CHILD_NO_LIMIT ? 0 : o->limit_bytes;
  c->warn_at = o->warn_at;
  c->sample_ms = (uint64_t)o->sample_ms;
  c->restart = o->restart;
  c->max_restarts = (int)o->max_restarts;
  c->backoff_ms = (uint64_t)o->backoff_ms;
  c->backoff_max_ms = (uint64_t)o->backoff_max_ms;
  if (o->backoff_max_ms == MG_CHILD_BACKOFF_MAX_DEFAULT)
    c->backoff_max_ms = c->backoff_ms > MG_SUP_BACKOFF_MAX_MS
                            ? c->backoff_ms
                            : MG_SUP_BACKOFF_MAX_MS;
  c->backoff_next_ms = c->backoff_ms;
  c->backoff_reset_ms = (uint64_t)o->backoff_reset_ms;
  c->grace_ms = (uint64_t)o->grace_ms;
  c->cgroup_opt = o->cgroup;
  c->sample_fallback = o->sample_fallback;
  c->pressure_env = o->pressure_env;
  if (ev)
    c->ev = *ev;
  c->out_start = c->err_start = -1;
  c->relay_fd = -1;
  mg__sup_th_init(c, o, NULL, 0); /* validated */
  return c;
}

int mg_child_spawn(mg_sup *sup, const mg_child_opts *o,
                   const mg_child_events *ev, mg_child **out, char *err,
                   size_t err_len) {
  if (out)
    *out = NULL;
  char *path = NULL;
  int rc = mg__sup_validate(sup, o, &path, err, err_len);
  if (rc < 0)
    return rc;
  mg_child *c = sup__child_new(sup, o, path, ev);
  if (!c)
    return mg_errf(err, err_len, -ENOMEM, "spawn: out of memory");
  char why[1024];
  rc = mg__sup_gpu_init(c, o, err, err_len);
  if (rc < 0) {
    sup__child_free(c);
    return rc;
  }
  rc = mg__sup_resolve(c, o->enforce, why, sizeof why, err, err_len);
  if (rc == 0)
    rc = mg__sup_th_check(c, err, err_len); /* memory + swap: its group */
  if (rc == 0)
    rc = mg__sup_limit_rule(sup, c->name, c->enforce, c->limit_bytes,
                            c->limit_warning, sizeof c->limit_warning, err,
                            err_len);
  if (rc == 0 && why[0]) { /* auto was resolved: once, with the why */
    mg_log_field f[] = {
        MG_LF_STR("name", c->name),
        MG_LF_STR("enforce", mg_enforce_name(c->enforce)),
        MG_LF_STR("why", why),
        MG_LF_STR("cgroup", mg_cgroup_version_name(sup->cg.version)),
    };
    sup__log(sup, c->enforce == MG_ENFORCE_NONE ? MG_LOG_WARN : MG_LOG_INFO,
             "enforce_chosen", f, 4);
  }
  if (rc == 0)
    rc = sup__sigchld_start(sup, err, err_len);
  if (rc == 0)
    rc = mg__sup_exec(c, err, err_len);
  if (rc < 0) {
    sup__child_free(c);
    return rc;
  }
  /* Running: from here on it is one of ours. */
  uv_timer_init(sup->loop, &c->sample_timer);
  uv_timer_init(sup->loop, &c->backoff_timer);
  uv_timer_init(sup->loop, &c->grace_timer);
  uv_timer_init(sup->loop, &c->oom_timer);
  uv_timer_init(sup->loop, &c->arm_timer);
  c->sample_timer.data = c->backoff_timer.data = c->grace_timer.data = c;
  c->oom_timer.data = c->arm_timer.data = c;
  c->handles_open += 5; /* and the exec's stderr relay, if any */
  sup->nhandles += 5;
  c->prev = sup->tail;
  if (sup->tail)
    sup->tail->next = c;
  else
    sup->head = c;
  sup->tail = c;
  mg__sup_run_started(c);
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

double mg_child_warn_at(const mg_child *c) {
  return c ? c->warn_at : 0;
}

uint64_t mg_child_limit(const mg_child *c) {
  return c ? c->limit_bytes : 0;
}

const char *mg_child_limit_warning(const mg_child *c) {
  return c && c->limit_warning[0] ? c->limit_warning : NULL;
}

const char *mg_child_cgroup_dir(const mg_child *c) {
  return c && c->cg ? mg_cgroup_dir(c->cg) : NULL;
}

mg_restart mg_child_restart_policy(const mg_child *c) {
  return c ? c->restart : MG_RESTART_NO;
}

int mg_child_max_restarts(const mg_child *c) {
  return c ? c->max_restarts : 0;
}

uint64_t mg_child_grace_ms(const mg_child *c) {
  return c ? c->grace_ms : 0;
}

int mg_child_stopping(const mg_child *c) {
  return c && c->pid > 0 && (c->stopping || c->term_sent);
}

int mg_child_would_restart(const mg_child *c, int failed) {
  return c && c->pid > 0 && mg__sup_restart_wanted(c, failed);
}

int mg_child_memory(mg_child *c, mg_child_sample *out, char *err,
                    size_t err_len) {
  if (!c || !out)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_child_memory: child and out "
                   "are required");
  return mg__sup_sample(c, out, err, err_len);
}

int mg_child_set_limit(mg_child *c, uint64_t bytes, char *err, size_t err_len) {
  if (!c)
    return mg_errf(err, err_len, -EINVAL, "mg_child_set_limit: no child");
  if (bytes == MG_CHILD_NO_LIMIT && c->enforce != MG_ENFORCE_NONE)
    return mg_errf(err, err_len, -EINVAL,
                   "limit: required with enforce=%s (only a watched limit "
                   "can be removed)",
                   mg_enforce_name(c->enforce));
  if (bytes == MG_CHILD_NO_LIMIT)
    bytes = 0;
  else if (mg__sup_limit_value(bytes, err, err_len) < 0)
    return -EINVAL;
  char e[1024], warn[256] = "", mem_warn[sizeof c->limit_warning];
  int rc = mg__sup_limit_rule(c->sup, c->name, c->enforce, bytes, mem_warn,
                              sizeof mem_warn, err, err_len);
  if (rc < 0)
    return rc;
  uint64_t applied = bytes;
  if (c->pid > 0 && c->enforce == MG_ENFORCE_CGROUP && c->cg) {
    rc = mg_cgroup_set_limit(c->cg, bytes, NULL, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "limit: %s", e);
  } else if (c->pid > 0 &&
             (c->enforce == MG_ENFORCE_DATA || c->enforce == MG_ENFORCE_AS)) {
    mg_rlimit_resource r =
        c->enforce == MG_ENFORCE_DATA ? MG_RLIMIT_DATA : MG_RLIMIT_AS;
    rc = mg_rlimit_set(c->pid, r, bytes, 1, &applied, warn, sizeof warn, e,
                       sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "limit: %s", e);
  }
  c->limit_bytes = bytes;
  memcpy(c->limit_warning, mem_warn, sizeof c->limit_warning);
  mg__sup_th_limit_changed(c);
  char l[32], a[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name),
      MG_LF_INT("pid", c->pid),
      MG_LF_STR("enforce", mg_enforce_name(c->enforce)),
      MG_LF_STR("limit", bytes ? mg_size_format(bytes, l, sizeof l) : "none"),
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

int mg_sup_observe(mg_sup *sup, const mg_child_events *ev) {
  if (!sup || !ev)
    return -EINVAL;
  for (int i = 0; i < MG_SUP_OBSERVERS_MAX; i++)
    if (!sup->obs_used[i]) {
      sup->obs[i] = *ev;
      sup->obs_used[i] = 1;
      return i + 1;
    }
  return -ENOSPC;
}

void mg_sup_unobserve(mg_sup *sup, int id) {
  if (sup && id >= 1 && id <= MG_SUP_OBSERVERS_MAX) {
    sup->obs_used[id - 1] = 0;
    memset(&sup->obs[id - 1], 0, sizeof sup->obs[id - 1]);
  }
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
  /* Only what is really left: a child whose last run was just reaped
   * (shutdown called from its on_exit) is not running any more. */
  size_t left = 0;
  for (mg_child *c = sup->head; c; c = c->next)
    left += !c->closed &&
            (c->pid > 0 || uv_is_active((uv_handle_t *)&c->backoff_timer));
  if (left > 0) {
    mg_log_field f[] = {MG_LF_UINT("children", left)};
    sup__log(sup, MG_LOG_INFO, "shutdown", f, 1);
  }
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
      mg__sup_kill_hard(c);
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
