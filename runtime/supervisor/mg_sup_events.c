/* mg_sup_events.c — what the kernel reports about a run besides its
 * thresholds (supervisor layer): OOM kills inside the child's group (v1
 * memory.oom_control eventfd, v2 memory.events with POLLPRI, which also
 * re-checks the thresholds) and the group's memory pressure (v1
 * memory.pressure_level, v2 a PSI trigger on memory.pressure; p:pressure).
 * The watch handles and thresholds are mg_sup_watch.c's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mg__sup.h"

#define SUP__OOM_RECHECK_MS 10
#define SUP__OOM_RECHECKS 50

/* ---------------------------------------------------------- OOM kills */

static void sup__on_oom_recheck(uv_timer_t *t) {
  mg_child *c = t->data;
  uint64_t before = c->oom_seen;
  mg__sup_oom_check(c);
  if (c->oom_seen == before && c->oom_tries-- > 0 && c->pid > 0)
    uv_timer_start(&c->oom_timer, sup__on_oom_recheck, SUP__OOM_RECHECK_MS, 0);
}

void mg__sup_oom_check(mg_child *c) {
  mg_cgroup_stats st;
  if (!c->cg || mg_cgroup_stats_read(c->cg, &st, NULL, 0) < 0)
    return;
  uint64_t total = st.has_oom_kill ? st.oom_kills : 0;
  if (total <= c->oom_seen)
    return;
  mg_oom_event o = {total - c->oom_seen, total, 0};
  c->oom_seen = total;
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
                      MG_LF_UINT("count", o.count), MG_LF_UINT("total", total),
                      MG_LF_STR("cgroup", mg_cgroup_dir(c->cg))};
  mg_log(c->sup->log, MG_LOG_WARN, "child_oom_kill", f, 5);
  MG__SUP_EMIT(c, on_oom, &o);
}

static void w__on_oom(uv_poll_t *h, int status, int events) {
  (void)events;
  mg__sup_watch *w = h->data;
  mg_child *c = w->c;
  uint64_t n = 0;
  if (status < 0 || mg_cgroup_eventfd_drain(w->fd, &n) < 0 || n == 0)
    return;
  uint64_t before = c->oom_seen;
  mg__sup_oom_check(c);
  if (c->oom_seen == before && c->pid > 0) { /* the kill follows the notice */
    c->oom_tries = SUP__OOM_RECHECKS;
    uv_timer_start(&c->oom_timer, sup__on_oom_recheck, SUP__OOM_RECHECK_MS, 0);
  }
}

/* v2 memory.events changed: OOM kills, and a look at the thresholds
 * (memory.high and memory.max events say the usage moved near them). */
static void w__on_events(uv_poll_t *h, int status, int events) {
  (void)events;
  mg__sup_watch *w = h->data;
  mg_child *c = w->c;
  if (status < 0)
    return;
  char buf[512];
  (void)!pread(w->fd, buf, sizeof buf, 0); /* re-arms the notification */
  mg__sup_oom_check(c);
  mg__sup_th_recheck(c);
}

/* ------------------------------------------------------------ pressure */

static void w__on_pressure(uv_poll_t *h, int status, int events) {
  (void)events;
  mg__sup_watch *w = h->data;
  mg_child *c = w->c;
  if (status < 0 || c->pid <= 0)
    return;
  mg_pressure_event p;
  memset(&p, 0, sizeof p);
  if (mg_cgroup_get_version(c->cg) == MG_CGROUP_V1) {
    uint64_t n = 0;
    if (mg_cgroup_eventfd_drain(w->fd, &n) < 0 || n == 0)
      return;
    p.level = c->pressure_level;
  } else {
    p.full = c->pressure.full;
    p.stall_us = c->pressure.stall_us;
    p.window_us = c->pressure.window_us;
    char path[PATH_MAX + 32], *text = NULL;
    snprintf(path, sizeof path, "%s/memory.pressure", mg_cgroup_dir(c->cg));
    FILE *f = fopen(path, "re");
    if (f) {
      text = calloc(1, 1024);
      if (text && fread(text, 1, 1023, f) > 0)
        p.has_psi = mg_psi_parse(text, &p.psi, NULL, 0) == 0;
      free(text);
      fclose(f);
    }
  }
  MG__SUP_EMIT(c, on_pressure, &p);
}

static int sup__pressure_arm(mg_child *c, char *err, size_t err_len) {
  int fd = -1, rc;
  if (!c->cg)
    return mg__sup_no_group(c, "pressure", err, err_len);
  if (mg_cgroup_get_version(c->cg) == MG_CGROUP_V1) {
    rc = mg_cgroup_pressure_level_open(c->cg, c->pressure_level, &fd, err,
                                       err_len);
    if (rc < 0)
      return rc;
    return mg__sup_watch_add(c, fd, MG__W_PRESSURE, UV_READABLE, w__on_pressure)
               ? 0
               : mg_errf(err, err_len, -ENOMEM, "pressure: out of memory");
  }
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/memory.pressure", mg_cgroup_dir(c->cg));
  mg_psi_trigger t;
  rc = mg_psi_trigger_arm(path, c->pressure.full, c->pressure.stall_us,
                          c->pressure.window_us, &t, err, err_len);
  if (rc < 0)
    return rc;
  if (t.fell_back) {
    mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_STR("why", t.why)};
    mg_log(c->sup->log, MG_LOG_INFO, "pressure_window_fallback", f, 2);
    c->pressure.stall_us = t.stall_us;
    c->pressure.window_us = t.window_us;
  }
  return mg__sup_watch_add(c, t.fd, MG__W_PRESSURE, UV_PRIORITIZED,
                           w__on_pressure)
             ? 0
             : mg_errf(err, err_len, -ENOMEM, "pressure: out of memory");
}

/* ------------------------------------------------------------ the run */

void mg__sup_events_start(mg_child *c) {
  if (!c->cg)
    return;
  int fd;
  int v2 = mg_cgroup_get_version(c->cg) == MG_CGROUP_V2;
  if (mg_cgroup_oom_open(c->cg, &fd, NULL, 0) == 0)
    c->oom_notified = mg__sup_watch_add(c, fd, v2 ? MG__W_EVENTS : MG__W_OOM,
                                        v2 ? UV_PRIORITIZED : UV_READABLE,
                                        v2 ? w__on_events : w__on_oom) != NULL;
  char err[512];
  if (c->has_pressure && sup__pressure_arm(c, err, sizeof err) < 0) {
    mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_STR("error", err)};
    mg_log(c->sup->log, MG_LOG_WARN, "pressure_watch_failed", f, 2);
  }
}

/* ------------------------------------------------------------- public */

int mg_child_pressure(mg_child *c, const mg_pressure_opts *o, char *err,
                      size_t err_len) {
  if (!c || !o)
    return mg_errf(err, err_len, -EINVAL, "pressure: no child or options");
  const char *level = o->level ? o->level : "medium";
  if (strcmp(level, "low") != 0 && strcmp(level, "medium") != 0 &&
      strcmp(level, "critical") != 0)
    return mg_errf(err, err_len, -EINVAL,
                   "level: '%s' (accepted: low, medium, critical)", level);
  int rc = mg_psi_trigger_check(o->stall_us, o->window_us, err, err_len);
  if (rc < 0)
    return rc;
  if (c->pid > 0 && !c->cg)
    return mg__sup_no_group(c, "pressure", err, err_len);
  snprintf(c->pressure_level, sizeof c->pressure_level, "%s", level);
  c->pressure = *o;
  c->pressure.level = c->pressure_level;
  c->has_pressure = 1;
  for (mg__sup_watch *w = c->watches; w; w = w->next)
    if (w->kind == MG__W_PRESSURE) {
      mg__sup_watch_close(w);
      break;
    }
  if (c->pid > 0)
    return sup__pressure_arm(c, err, err_len);
  return 0;
}
