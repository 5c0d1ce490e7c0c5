/* mg_runtime_control_ev.c — what the control socket sees of the children
 * (host layer; a supervisor observer, jansson): each event as a JSON line
 * for the subscribers, and the restart history that `health` reads.
 *
 * An event line: {"v":1,"event":TYPE,"t_ms":ms since mgrun started,
 * "name":child, …}. TYPE and its fields:
 *   start      pid, restarts
 *   sample     pid, used, limit, rss, fraction   (only with "samples")
 *   warn       pid, used, limit, fraction
 *   threshold  id, level, usage, by_kernel
 *   oom        count, total
 *   pressure   level (v1) | kind, stall_ms, window_ms (v2)
 *   kill       signal, grace_ms
 *   exit       pid, reason, code, signal, detail, peak, runtime_ms,
 *              restarts, will_restart, restart_in_ms, oom_kills
 *   restart    restarts
 *   close      (no further run)
 * and the host's own: limit (name, limit, previous: a set-limit), reload
 * (ok, error), dropped (count: events this subscriber missed), shutdown
 * (the last line before mgrun closes the socket).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mg__control.h"

static json_t *u64(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

void mg__ctl_broadcast(struct mg__rt_control *ctl, const char *type,
                       json_t *o) {
  if (!o)
    return;
  if (ctl->nsubs == 0 || ctl->stopped) {
    json_decref(o);
    return;
  }
  json_t *line = json_object();
  double ms = (double)(uv_hrtime() - ctl->t0_ns) / 1e6;
  json_object_set_new(line, "v", json_integer(MG__CTL_PROTOCOL));
  json_object_set_new(line, "event", json_string(type));
  json_object_set_new(line, "t_ms",
                      json_real((double)(int64_t)(ms * 1000) / 1000));
  json_object_update(line, o);
  json_decref(o);
  mg__ctl_send_subscribers(ctl, line, strcmp(type, "sample") == 0);
}

/* ------------------------------------------------------------ history */

mg__ctl_hist *mg__ctl_hist_find(struct mg__rt_control *ctl, const char *name) {
  for (size_t i = 0; i < ctl->nhist; i++)
    if (strcmp(ctl->hist[i].name, name) == 0)
      return &ctl->hist[i];
  return NULL;
}

/* The entry of `name`, made (or the least recently seen one reused). */
static mg__ctl_hist *hist_get(struct mg__rt_control *ctl, const char *name) {
  mg__ctl_hist *h = mg__ctl_hist_find(ctl, name);
  if (!h) {
    if (ctl->nhist < MG__CTL_HIST_MAX) {
      h = &ctl->hist[ctl->nhist++];
    } else {
      h = &ctl->hist[0];
      for (size_t i = 1; i < ctl->nhist; i++)
        if (ctl->hist[i].seen_ms < h->seen_ms)
          h = &ctl->hist[i];
    }
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
  }
  h->seen_ms = now_ms();
  return h;
}

/* ------------------------------------------------------------ events */

/* Subscribers at all? Events are built only then. */
#define WANT(ctl) ((ctl)->nsubs > 0 && !(ctl)->stopped)

static json_t *ev_child(mg_child *c) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(mg_child_name(c)));
  return o;
}

static void on_start(mg_child *c, void *ud) {
  struct mg__rt_control *ctl = ud;
  hist_get(ctl, mg_child_name(c))->gave_up = 0;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "pid", json_integer(mg_child_pid(c)));
  json_object_set_new(o, "restarts", json_integer(mg_child_restarts(c)));
  mg__ctl_broadcast(ctl, "start", o);
}

static void on_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "pid", json_integer(s->pid));
  json_object_set_new(o, "used", u64(s->used_bytes));
  json_object_set_new(o, "limit",
                      s->limit_bytes ? u64(s->limit_bytes) : json_null());
  json_object_set_new(o, "rss", u64(s->rss_bytes));
  json_object_set_new(o, "fraction",
                      s->limit_bytes ? json_real(s->fraction) : json_null());
  mg__ctl_broadcast(ctl, "sample", o);
}

static void on_warn(mg_child *c, const mg_child_sample *s, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "pid", json_integer(s->pid));
  json_object_set_new(o, "used", u64(s->used_bytes));
  json_object_set_new(o, "limit", u64(s->limit_bytes));
  json_object_set_new(o, "fraction", json_real(s->fraction));
  mg__ctl_broadcast(ctl, "warn", o);
}

static void on_threshold(mg_child *c, const mg_threshold_event *e, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "id", json_integer(e->id));
  json_object_set_new(o, "level", u64(e->level_bytes));
  json_object_set_new(o, "usage", u64(e->usage_bytes));
  json_object_set_new(o, "by_kernel", json_boolean(e->by_kernel));
  mg__ctl_broadcast(ctl, "threshold", o);
}

static void on_oom(mg_child *c, const mg_oom_event *e, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "count", u64(e->count));
  json_object_set_new(o, "total", u64(e->total));
  mg__ctl_broadcast(ctl, "oom", o);
}

static void on_pressure(mg_child *c, const mg_pressure_event *e, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  if (e->level) {
    json_object_set_new(o, "level", json_string(e->level));
  } else {
    json_object_set_new(o, "kind", json_string(e->full ? "full" : "some"));
    json_object_set_new(o, "stall_ms", u64(e->stall_us / 1000));
    json_object_set_new(o, "window_ms", u64(e->window_us / 1000));
  }
  mg__ctl_broadcast(ctl, "pressure", o);
}

static void on_kill(mg_child *c, int signum, uint64_t grace_ms, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  const char *sn = mg_signal_name(signum);
  json_object_set_new(o, "signal", sn ? json_string(sn) : json_integer(signum));
  json_object_set_new(o, "grace_ms", u64(grace_ms));
  mg__ctl_broadcast(ctl, "kill", o);
}

static void ev_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  struct mg__rt_control *ctl = ud;
  int failed = e->reason != MG_EXIT_EXIT || e->code != 0;
  mg__ctl_hist *h = hist_get(ctl, mg_child_name(c));
  /* its restarts ran out: restart policy would have, the cap said no */
  mg_restart p = mg_child_restart_policy(c);
  int mx = mg_child_max_restarts(c);
  h->gave_up =
      !e->will_restart && mx >= 0 && e->restarts >= mx &&
      !mg_child_stopping(c) && !ctl->rt->shut_down &&
      (p == MG_RESTART_ALWAYS || (p == MG_RESTART_ON_FAILURE && failed));
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "pid", json_integer(e->pid));
  json_object_set_new(o, "reason", json_string(mg_exit_reason_name(e->reason)));
  json_object_set_new(o, "code",
                      e->signal ? json_null() : json_integer(e->code));
  const char *sn = e->signal ? mg_signal_name(e->signal) : NULL;
  json_object_set_new(o, "signal",
                      !e->signal ? json_null()
                      : sn       ? json_string(sn)
                                 : json_integer(e->signal));
  json_t *d = json_string(e->detail);
  json_object_set_new(o, "detail", d ? d : json_null());
  json_object_set_new(o, "peak", u64(e->peak_bytes));
  json_object_set_new(o, "runtime_ms", u64(e->runtime_ms));
  json_object_set_new(o, "restarts", json_integer(e->restarts));
  json_object_set_new(o, "will_restart", json_boolean(e->will_restart));
  json_object_set_new(o, "restart_in_ms",
                      e->will_restart ? u64(e->restart_in_ms) : json_null());
  json_object_set_new(o, "oom_kills", u64(e->oom_kills));
  mg__ctl_broadcast(ctl, "exit", o);
}

static void on_restart(mg_child *c, int restarts, void *ud) {
  struct mg__rt_control *ctl = ud;
  mg__ctl_hist *h = hist_get(ctl, mg_child_name(c));
  h->restarts_ms[h->nrestarts++ % (MG__CTL_LOOP_RESTARTS + 1)] = now_ms();
  if (!WANT(ctl))
    return;
  json_t *o = ev_child(c);
  json_object_set_new(o, "restarts", json_integer(restarts));
  mg__ctl_broadcast(ctl, "restart", o);
}

static void on_close(mg_child *c, void *ud) {
  struct mg__rt_control *ctl = ud;
  if (!WANT(ctl))
    return;
  mg__ctl_broadcast(ctl, "close", ev_child(c));
}

int mg__ctl_observe(struct mg__rt_control *ctl) {
  mg_child_events ev;
  memset(&ev, 0, sizeof ev);
  ev.on_start = on_start;
  ev.on_sample = on_sample;
  ev.on_warn = on_warn;
  ev.on_threshold = on_threshold;
  ev.on_oom = on_oom;
  ev.on_pressure = on_pressure;
  ev.on_kill = on_kill;
  ev.on_exit = ev_exit;
  ev.on_restart = on_restart;
  ev.on_close = on_close;
  ev.ud = ctl;
  int id = mg_sup_observe(ctl->rt->sup, &ev);
  if (id > 0)
    ctl->obs = id;
  return id;
}

void mg__ctl_unobserve(struct mg__rt_control *ctl) {
  if (ctl->obs > 0)
    mg_sup_unobserve(ctl->rt->sup, ctl->obs);
  ctl->obs = 0;
}

/* ------------------------------------------------------------ health */

static void problem(json_t *problems, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(json_t *problems, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  json_array_append_new(problems, json_string(buf));
}

/* Healthy: the runtime runs (no shutdown under way); no child restarted
 * MG__CTL_LOOP_RESTARTS times within MG__CTL_LOOP_WINDOW_MS (a restart
 * loop); no child whose restarts ran out (its policy meant it to run, and
 * it will not run again) unless the policy spawned it again; the policy's
 * Lua state below MG__CTL_LUA_MEM_FRACTION of its cap. */
int mg__ctl_health(struct mg__rt_control *ctl, json_t *problems) {
  mg_runtime *rt = ctl->rt;
  size_t before = json_array_size(problems);
  if (rt->shut_down)
    problem(problems, "mgrun is shutting down");
  uint64_t now = now_ms();
  for (size_t i = 0; i < ctl->nhist; i++) {
    mg__ctl_hist *h = &ctl->hist[i];
    unsigned recent = 0;
    unsigned kept = h->nrestarts < MG__CTL_LOOP_RESTARTS + 1
                        ? h->nrestarts
                        : MG__CTL_LOOP_RESTARTS + 1;
    for (unsigned k = 0; k < kept; k++)
      if (now - h->restarts_ms[k] <= MG__CTL_LOOP_WINDOW_MS)
        recent++;
    if (recent >= MG__CTL_LOOP_RESTARTS)
      problem(problems,
              "child '%s' restarted %u times in the last %d s (a restart "
              "loop)",
              h->name, recent, MG__CTL_LOOP_WINDOW_MS / 1000);
    if (h->gave_up)
      problem(problems,
              "child '%s' used up its restarts (max_restarts) and is not "
              "running",
              h->name);
  }
  size_t cap = rt->opts.lua_mem_max_bytes;
  size_t used = rt->env ? mg_lua_mem(rt->env, NULL) : 0;
  if (cap && (double)used >= MG__CTL_LUA_MEM_FRACTION * (double)cap) {
    char u[32], c[32];
    problem(
        problems, "the policy's Lua state uses %s of its %s cap (--lua-mem)",
        mg_size_format(used, u, sizeof u), mg_size_format(cap, c, sizeof c));
  }
  return json_array_size(problems) == before;
}
