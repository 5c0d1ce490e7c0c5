/* mg_runtime_timeline.c — the run as JSON lines (host layer; jansson):
 * every sample and event of every child (a supervisor observer) and, once a
 * second, each open store's figures, with a monotonic time.
 *
 * One object per line, each with "t_ms" (milliseconds since the timeline
 * started, monotonic, 3 decimals) and "type":
 *   start         version, pid (mgrun's), wall (UTC, ISO 8601)
 *   child_started name, pid, restarts, enforce, limit (bytes|null),
 *                 warn_at (fraction|null), cgroup (dir|null)
 *   sample        name, pid, used, limit, rss, cgroup_current (|null)
 *   warn          name, pid, used, limit, fraction
 *   threshold     name, id, level, usage, by_kernel
 *   oom_kill      name, count, total
 *   pressure      name, level (v1) | kind, stall_ms, window_ms (v2)
 *   kill          name, signal (number), signame, grace_ms
 *   child_exited  name, pid, reason, code|null, signal|null, peak,
 *                 runtime_ms, oom_kills, will_restart
 *   restart       name, restarts
 *   store         store, messages, bytes, tokens, max_messages, max_bytes,
 *                 max_tokens, evicted, rejected, archived
 *   evict         store, count (evictions since the previous store line)
 *   end           (the last line, when the runtime stops)
 * Each line is flushed as it is written: a run that dies leaves a file
 * that is complete up to its last event. `mgrun plot` draws it.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mg__runtime.h"

#define TL__STORE_MS 1000
#define TL__STORES_MAX 64

typedef struct tl_store {
  char name[MG_NAME_MAX + 1];
  uint64_t evicted;
  int seen;
} tl_store;

struct mg__rt_timeline {
  mg_runtime *rt;
  FILE *f;
  int obs;
  uint64_t t0_ns;
  uv_timer_t *timer; /* heap-held: freed by its close callback */
  tl_store stores[TL__STORES_MAX];
  size_t nstores;
  int failed; /* a write failed: logged once, the file is dropped */
};

static void tl__write(struct mg__rt_timeline *t, const char *type, json_t *o) {
  if (!t->f || !o) {
    json_decref(o);
    return;
  }
  double ms = (double)(uv_hrtime() - t->t0_ns) / 1e6;
  json_t *line = json_object(); /* t_ms and type first, then the rest */
  json_object_set_new(line, "t_ms",
                      json_real((double)(int64_t)(ms * 1000) / 1000));
  json_object_set_new(line, "type", json_string(type));
  json_object_update(line, o);
  json_decref(o);
  int rc = json_dumpf(
      line, t->f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
  json_decref(line);
  if (rc == 0 && fputc('\n', t->f) != EOF && fflush(t->f) == 0)
    return;
  if (!t->failed) {
    t->failed = 1;
    mg_log_field f[] = {MG_LF_STR("path", t->rt->opts.timeline_path),
                        MG_LF_STR("error", strerror(errno))};
    mg_log(t->rt->opts.logger, MG_LOG_ERROR, "timeline_write_failed", f, 2);
  }
}

static json_t *tl__u64(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *tl__child(mg_child *c) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(mg_child_name(c)));
  return o;
}

static void tl__on_start(mg_child *c, void *ud) {
  json_t *o = tl__child(c);
  uint64_t lim = mg_child_limit(c);
  double warn = mg_child_warn_at(c);
  const char *cg = mg_child_cgroup_dir(c);
  json_object_set_new(o, "pid", json_integer(mg_child_pid(c)));
  json_object_set_new(o, "restarts", json_integer(mg_child_restarts(c)));
  json_object_set_new(o, "enforce",
                      json_string(mg_enforce_name(mg_child_enforce(c))));
  json_object_set_new(o, "limit", lim ? tl__u64(lim) : json_null());
  json_object_set_new(o, "warn_at",
                      warn > 0 && lim ? json_real(warn) : json_null());
  json_object_set_new(o, "cgroup", cg ? json_string(cg) : json_null());
  tl__write(ud, "child_started", o);
}

static void tl__on_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  json_t *o = tl__child(c);
  json_object_set_new(o, "pid", json_integer(s->pid));
  json_object_set_new(o, "used", tl__u64(s->used_bytes));
  json_object_set_new(o, "limit",
                      s->limit_bytes ? tl__u64(s->limit_bytes) : json_null());
  json_object_set_new(o, "rss", tl__u64(s->rss_bytes));
  json_object_set_new(o, "cgroup_current",
                      s->has_cgroup ? tl__u64(s->cgroup_current_bytes)
                                    : json_null());
  tl__write(ud, "sample", o);
}

static void tl__on_warn(mg_child *c, const mg_child_sample *s, void *ud) {
  json_t *o = tl__child(c);
  json_object_set_new(o, "pid", json_integer(s->pid));
  json_object_set_new(o, "used", tl__u64(s->used_bytes));
  json_object_set_new(o, "limit", tl__u64(s->limit_bytes));
  json_object_set_new(o, "fraction", json_real(s->fraction));
  tl__write(ud, "warn", o);
}

static void tl__on_threshold(mg_child *c, const mg_threshold_event *e,
                             void *ud) {
  json_t *o = tl__child(c);
  json_object_set_new(o, "id", json_integer(e->id));
  json_object_set_new(o, "level", tl__u64(e->level_bytes));
  json_object_set_new(o, "usage", tl__u64(e->usage_bytes));
  json_object_set_new(o, "by_kernel", json_boolean(e->by_kernel));
  tl__write(ud, "threshold", o);
}

static void tl__on_oom(mg_child *c, const mg_oom_event *e, void *ud) {
  json_t *o = tl__child(c);
  json_object_set_new(o, "count", tl__u64(e->count));
  json_object_set_new(o, "total", tl__u64(e->total));
  tl__write(ud, "oom_kill", o);
}

static void tl__on_pressure(mg_child *c, const mg_pressure_event *e, void *ud) {
  json_t *o = tl__child(c);
  if (e->level) {
    json_object_set_new(o, "level", json_string(e->level));
  } else {
    json_object_set_new(o, "kind", json_string(e->full ? "full" : "some"));
    json_object_set_new(o, "stall_ms", tl__u64(e->stall_us / 1000));
    json_object_set_new(o, "window_ms", tl__u64(e->window_us / 1000));
  }
  tl__write(ud, "pressure", o);
}

static void tl__on_kill(mg_child *c, int signum, uint64_t grace_ms, void *ud) {
  json_t *o = tl__child(c);
  const char *sn = mg_signal_name(signum);
  json_object_set_new(o, "signal", json_integer(signum));
  json_object_set_new(o, "signame", sn ? json_string(sn) : json_null());
  json_object_set_new(o, "grace_ms", tl__u64(grace_ms));
  tl__write(ud, "kill", o);
}

static void tl__on_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  json_t *o = tl__child(c);
  json_object_set_new(o, "pid", json_integer(e->pid));
  json_object_set_new(o, "reason", json_string(mg_exit_reason_name(e->reason)));
  json_object_set_new(o, "code",
                      e->signal ? json_null() : json_integer(e->code));
  json_object_set_new(o, "signal",
                      e->signal ? json_integer(e->signal) : json_null());
  json_object_set_new(o, "peak", tl__u64(e->peak_bytes));
  json_object_set_new(o, "runtime_ms", tl__u64(e->runtime_ms));
  json_object_set_new(o, "oom_kills", tl__u64(e->oom_kills));
  json_object_set_new(o, "will_restart", json_boolean(e->will_restart));
  tl__write(ud, "child_exited", o);
}

static void tl__on_restart(mg_child *c, int restarts, void *ud) {
  json_t *o = tl__child(c);
  json_object_set_new(o, "restarts", json_integer(restarts));
  tl__write(ud, "restart", o);
}

/* ------------------------------------------------------------ stores */

static tl_store *tl__store_slot(struct mg__rt_timeline *t, const char *name) {
  for (size_t i = 0; i < t->nstores; i++)
    if (strcmp(t->stores[i].name, name) == 0)
      return &t->stores[i];
  if (t->nstores == TL__STORES_MAX)
    return NULL;
  tl_store *s = &t->stores[t->nstores++];
  snprintf(s->name, sizeof s->name, "%s", name);
  return s;
}

static void tl__store(const char *name, const mg_store *s, void *ud) {
  struct mg__rt_timeline *t = ud;
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  json_t *o = json_object();
  json_object_set_new(o, "store", json_string(name));
  json_object_set_new(o, "messages", tl__u64(st.message_count));
  json_object_set_new(o, "bytes", tl__u64(st.total_size_bytes));
  json_object_set_new(o, "tokens", tl__u64(st.total_tokens));
  json_object_set_new(o, "max_messages", tl__u64(st.max_messages));
  json_object_set_new(o, "max_bytes", tl__u64(st.max_total_size_bytes));
  json_object_set_new(o, "max_tokens", tl__u64(st.max_tokens));
  json_object_set_new(o, "evicted", tl__u64(st.evicted_count));
  json_object_set_new(o, "rejected", tl__u64(st.rejected_count));
  json_object_set_new(o, "archived", tl__u64(st.archived_count));
  tl__write(t, "store", o);
  tl_store *slot = tl__store_slot(t, name);
  if (slot && slot->seen && st.evicted_count > slot->evicted) {
    json_t *ev = json_object();
    json_object_set_new(ev, "store", json_string(name));
    json_object_set_new(ev, "count", tl__u64(st.evicted_count - slot->evicted));
    tl__write(t, "evict", ev);
  }
  if (slot) {
    slot->evicted = st.evicted_count;
    slot->seen = 1;
  }
}

static void tl__stores(struct mg__rt_timeline *t) {
  if (t->rt->env)
    mg_lua_store_each(t->rt->env, tl__store, t);
}

static void tl__on_timer(uv_timer_t *h) {
  tl__stores(h->data);
}

static void tl__free_timer(uv_handle_t *h) {
  free(h);
}

/* ------------------------------------------------------------- public */

int mg__rt_timeline_start(mg_runtime *rt, char *err, size_t err_len) {
  const char *path = rt->opts.timeline_path;
  if (!path)
    return 0;
  if (!path[0])
    return mg_errf(err, err_len, -EINVAL, "timeline: a path is needed");
  struct mg__rt_timeline *t = calloc(1, sizeof *t);
  uv_timer_t *tm = calloc(1, sizeof *tm);
  if (!t || !tm) {
    free(t);
    free(tm);
    return mg_errf(err, err_len, -ENOMEM, "timeline: out of memory");
  }
  t->rt = rt;
  t->f = fopen(path, "we");
  if (!t->f) {
    int e = errno;
    free(t);
    free(tm);
    return mg_errf(err, err_len, -e, "timeline: cannot open '%s': %s", path,
                   strerror(e));
  }
  mg_child_events ev;
  memset(&ev, 0, sizeof ev);
  ev.on_start = tl__on_start;
  ev.on_sample = tl__on_sample;
  ev.on_warn = tl__on_warn;
  ev.on_threshold = tl__on_threshold;
  ev.on_oom = tl__on_oom;
  ev.on_pressure = tl__on_pressure;
  ev.on_kill = tl__on_kill;
  ev.on_exit = tl__on_exit;
  ev.on_restart = tl__on_restart;
  ev.ud = t;
  t->obs = mg_sup_observe(rt->sup, &ev);
  if (t->obs < 0) {
    int rc = t->obs;
    fclose(t->f);
    free(t);
    free(tm);
    return mg_errf(err, err_len, rc,
                   "timeline: the supervisor has no room for an observer");
  }
  t->t0_ns = uv_hrtime();
  uv_timer_init(rt->loop, tm);
  tm->data = t;
  uv_unref((uv_handle_t *)tm);
  uv_timer_start(tm, tl__on_timer, TL__STORE_MS, TL__STORE_MS);
  t->timer = tm;
  rt->timeline = t;
  char wall[40];
  time_t now = time(NULL);
  struct tm g;
  gmtime_r(&now, &g);
  strftime(wall, sizeof wall, "%Y-%m-%dT%H:%M:%SZ", &g);
  json_t *o = json_object();
  json_object_set_new(o, "version", json_string(MG_VERSION));
  json_object_set_new(o, "pid", json_integer(getpid()));
  json_object_set_new(o, "wall", json_string(wall));
  tl__write(t, "start", o);
  return 0;
}

void mg__rt_timeline_stop(mg_runtime *rt) {
  struct mg__rt_timeline *t = rt->timeline;
  if (!t)
    return;
  rt->timeline = NULL;
  tl__stores(t); /* the stores as they ended */
  tl__write(t, "end", json_object());
  mg_sup_unobserve(rt->sup, t->obs);
  uv_timer_stop(t->timer);
  uv_close((uv_handle_t *)t->timer, tl__free_timer);
  fclose(t->f);
  free(t);
}
