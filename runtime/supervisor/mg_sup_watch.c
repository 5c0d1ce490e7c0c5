/* mg_sup_watch.c — what the supervisor watches during a run (supervisor
 * layer): thresholds and the warn line, and the sample timer; the watch
 * handles of a run. OOM kills, v2 memory.events and the group's memory
 * pressure are mg_sup_events.c's.
 *
 * Where the kernel can notify, nothing is polled:
 *   - cgroup v1: each threshold (and warn_at) is an eventfd on the group's
 *     memory.usage_in_bytes, signalled at each crossing in either
 *     direction; an eventfd on memory.oom_control announces OOMs (the
 *     oom_kill counter is read then, and again shortly after: the kill
 *     follows the notice); memory.pressure_level for p:pressure.
 *   - cgroup v2: memory.events is polled for POLLPRI (any counter that
 *     changes: oom_kill, high, max), which also re-checks thresholds;
 *     there is no usage notification below memory.high, so thresholds
 *     are sampled there; a PSI trigger on memory.pressure for p:pressure.
 *   - no group: thresholds are checked on samples.
 * Thresholds compare the group's charged memory (memory.usage_in_bytes /
 * memory.current) where the child has a group, else the sampled `used`
 * (what its limit counts). A threshold fires on each upward crossing and
 * re-arms once the usage is MG_SUP_THRESHOLD_HYSTERESIS (2 %, at least
 * 1 MiB) below its level — a usage that hovers at the level fires once, not
 * at every wiggle (on v1 a second eventfd watches that re-arm line); a
 * notification that shows the usage went up and back down between two
 * reads (an eventfd count of 2 or more while armed) fires too.
 * The sample timer runs at sample_ms (0: off), or — with sample_fallback
 * — only while some threshold has no kernel notification, at sample_ms or
 * MG_SUP_WATCH_SAMPLE_MS. A sample checks every threshold, the notified
 * ones too (a late notification then finds it fired). Levels passed
 * between two measurements fire lowest first.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mg__sup.h"

/* ------------------------------------------------------------ handles */

/* The descriptor is closed only now: libuv uses its number until the
 * handle is closed (it takes it out of epoll), and the thread pool may
 * open files meanwhile (threshold registrations) that would get it. */
static void w__closed(uv_handle_t *h) {
  mg__sup_watch *w = (mg__sup_watch *)h;
  mg_child *c = w->c;
  close(w->fd);
  free(w);
  mg__sup_handle_closed(c);
}

mg__sup_watch *mg__sup_watch_add(mg_child *c, int fd, int kind, int events,
                                 uv_poll_cb cb) {
  mg__sup_watch *w = calloc(1, sizeof *w);
  if (!w || uv_poll_init(c->sup->loop, &w->poll, fd) < 0) {
    free(w);
    close(fd);
    return NULL;
  }
  w->poll.data = w;
  w->c = c;
  w->fd = fd;
  w->kind = kind;
  w->next = c->watches;
  c->watches = w;
  c->handles_open++;
  c->sup->nhandles++;
  uv_unref((uv_handle_t *)&w->poll); /* the run keeps the loop alive */
  uv_poll_start(&w->poll, events, cb);
  return w;
}

void mg__sup_watch_close(mg__sup_watch *w) {
  mg_child *c = w->c;
  for (mg__sup_watch **p = &c->watches; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, w__closed);
}

/* ---------------------------------------------------------- thresholds */

static int th__valid(const mg_threshold *t, char *err, size_t err_len) {
  if (t->swap != 0 && t->swap != 1)
    return mg_errf(err, err_len, -EINVAL,
                   "thresholds: swap = %d (accepted: 0 memory, 1 memory + "
                   "swap)",
                   t->swap);
  if (t->bytes > 0) {
    if (t->bytes > (uint64_t)INT64_MAX)
      return mg_errf(err, err_len, -EINVAL,
                     "thresholds: %" PRIu64 " bytes (accepted: 1 byte to "
                     "2^63-1, or a fraction of the limit above 0 and up to 1)",
                     t->bytes);
    return 0;
  }
  if (!(t->fraction > 0 && t->fraction <= 1))
    return mg_errf(err, err_len, -EINVAL,
                   "thresholds: %g (accepted: a size of 1 byte to 2^63-1, or "
                   "a fraction of the limit above 0 and up to 1)",
                   t->fraction);
  return 0;
}

int mg__sup_th_init(mg_child *c, const mg_child_opts *o, char *err,
                    size_t err_len) {
  if (o->nthresholds > MG_SUP_THRESHOLDS_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "thresholds: %zu given (accepted: at most %d)",
                   o->nthresholds, MG_SUP_THRESHOLDS_MAX);
  if (o->nthresholds > 0 && !o->thresholds)
    return mg_errf(err, err_len, -EINVAL, "thresholds: NULL with a count");
  for (size_t i = 0; i < o->nthresholds; i++) {
    int rc = th__valid(&o->thresholds[i], err, err_len);
    if (rc < 0)
      return rc;
  }
  if (c) {
    memset(c->th, 0, sizeof c->th);
    c->th[0].used = c->warn_at > 0; /* warn_at: the warn line, id 0 */
    c->th[0].t.fraction = c->warn_at;
    for (size_t i = 0; i < o->nthresholds; i++) {
      c->th[i + 1].used = 1;
      c->th[i + 1].id = (int)i + 1;
      c->th[i + 1].t = o->thresholds[i];
    }
    c->next_watch_id = (int)o->nthresholds;
  }
  return 0;
}

/* The re-arm line below a level. */
static uint64_t th__rearm(uint64_t level) {
  uint64_t h = (uint64_t)((double)level * MG_SUP_THRESHOLD_HYSTERESIS);
  if (h < MG_SUP_THRESHOLD_HYSTERESIS_MIN)
    h = MG_SUP_THRESHOLD_HYSTERESIS_MIN;
  return level > h ? level - h : 0;
}

static uint64_t th__level(const mg_child *c, const mg__sup_th *th) {
  if (th->t.bytes)
    return th->t.bytes;
  if (!c->limit_bytes)
    return 0;
  double l = th->t.fraction * (double)c->limit_bytes;
  return l < 1 ? 1 : (uint64_t)l;
}

/* What thresholds compare: the group's charge, else the sampled used;
 * `swap`: the group's memory + swap. */
static int th__usage(mg_child *c, int swap, uint64_t *out) {
  if (swap)
    return c->cg ? mg_cgroup_memsw_read(c->cg, out, NULL, 0) : -ENOENT;
  if (c->cg)
    return mg_cgroup_usage_read(c->cg, out, NULL, NULL, NULL, 0);
  mg_child_sample s;
  int rc = mg__sup_sample(c, &s, NULL, 0);
  *out = s.used_bytes;
  return rc;
}

/* Can threshold `t` be served for child c (its group, now or at its next
 * run)? Only memory + swap asks for something: a group, and a kernel that
 * accounts swap in it. */
static int th__servable(mg_child *c, const mg_threshold *t, char *err,
                        size_t err_len) {
  if (!t->swap)
    return 0;
  if (!c->cg && !c->use_group)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "thresholds: a memory + swap threshold (swap = true) needs "
                   "a group of the process's own (it has none: cgroup = "
                   "false, or no writable memory hierarchy here)");
  uint64_t u;
  char e[PATH_MAX + 256];
  int rc = c->cg ? mg_cgroup_memsw_read(c->cg, &u, e, sizeof e) : 0;
  if (rc < 0)
    return mg_errf(err, err_len, rc, "thresholds: %s", e);
  return 0;
}

int mg__sup_th_check(mg_child *c, char *err, size_t err_len) {
  for (int i = 1; i <= MG_SUP_THRESHOLDS_MAX; i++) {
    int rc = c->th[i].used ? th__servable(c, &c->th[i].t, err, err_len) : 0;
    if (rc < 0)
      return rc;
  }
  return 0;
}

static void th__warn(mg_child *c) {
  mg_child_sample s;
  if (mg__sup_sample(c, &s, NULL, 0) < 0)
    return;
  char u[32], l[32], g[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name),
      MG_LF_INT("pid", s.pid),
      MG_LF_STR("used", mg_size_format(s.used_bytes, u, sizeof u)),
      MG_LF_STR("limit", mg_size_format(s.limit_bytes, l, sizeof l)),
      MG_LF_DBL("fraction", s.fraction),
      MG_LF_DBL("warn_at", c->warn_at),
      MG_LF_STR("cgroup_current",
                s.has_cgroup
                    ? mg_size_format(s.cgroup_current_bytes, g, sizeof g)
                    : ""),
  };
  mg_log(c->sup->log, MG_LOG_WARN, "child_warn", f, s.has_cgroup ? 7 : 6);
  MG__SUP_EMIT(c, on_warn, &s);
}

static void th__fire(mg_child *c, const mg__sup_th *th, uint64_t usage,
                     int by_kernel) {
  if (th->id == 0) {
    th__warn(c);
    return;
  }
  mg_threshold_event t = {.id = th->id,
                          .level_bytes = th->level,
                          .usage_bytes = usage,
                          .rising = 1,
                          .by_kernel = by_kernel,
                          .kind = th->t.swap ? "memsw" : "memory"};
  mg_cgroup_memstat ms;
  if (c->cg && mg_cgroup_memstat_read(c->cg, &ms, NULL, 0) == 0) {
    t.has_stat = 1;
    t.anon_bytes = ms.anon_bytes;
    t.file_bytes = ms.file_bytes;
    t.shmem_bytes = ms.shmem_bytes;
  }
  if (c->limit_bytes)
    t.fraction = (double)th->level / (double)c->limit_bytes;
  char lv[32], us[32];
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("id", th->id),
                      MG_LF_STR("level", mg_size_format(th->level, lv, 32)),
                      MG_LF_STR("usage", mg_size_format(usage, us, 32)),
                      MG_LF_BOOL("by_kernel", by_kernel)};
  mg_log(c->sup->log, MG_LOG_DEBUG, "threshold_crossed", f, 5);
  MG__SUP_EMIT(c, on_threshold, &t);
}

/* A measurement of the usage for threshold `i`: fire on an upward
 * crossing (or a bounce seen by the kernel), re-arm below. */
static void th__seen(mg_child *c, int i, uint64_t usage, int bounced,
                     int by_kernel) {
  mg__sup_th *th = &c->th[i];
  if (!th->used || !th->level)
    return;
  if (usage >= th->level) {
    if (th->armed) {
      th->armed = 0;
      th__fire(c, th, usage, by_kernel);
    }
  } else {
    if (th->armed && bounced)
      th__fire(c, th, usage, by_kernel);
    if (usage < th__rearm(th->level))
      th->armed = 1;
  }
}

/* One measurement against every threshold it concerns (`which`: 1 those
 * the kernel notifies, 0 the sampled ones, -1 all), lowest level first: a
 * usage past several levels at once fires them in rising order, whatever
 * order the kernel's eventfds were read in. `bounced`: the eventfd of
 * threshold `fired` counted a crossing up and back down. A handler may
 * add or stop thresholds or stop the child: th__seen re-checks each. */
static void th__seen_all(mg_child *c, int which, const uint64_t *memory,
                         int fired, int bounced, int by_kernel) {
  uint64_t use[2] = {memory ? *memory : 0, 0}; /* memory, memory + swap */
  int have[2] = {memory != NULL, 0}, bad[2] = {0, 0};
  int order[MG_SUP_THRESHOLDS_MAX + 1] = {0}, n = 0;
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++) {
    if (!c->th[i].used || !c->th[i].level ||
        (which >= 0 && c->th[i].kernel != which))
      continue;
    int j = n++; /* insertion sort by level: at most 65 entries */
    while (j > 0 && c->th[order[j - 1]].level > c->th[i].level) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
  for (int k = 0; k < n && c->pid > 0; k++) {
    int sw = c->th[order[k]].t.swap; /* each reading taken once */
    if (!have[sw] && !bad[sw]) {
      bad[sw] = th__usage(c, sw, &use[sw]) < 0;
      have[sw] = !bad[sw];
    }
    if (have[sw])
      th__seen(c, order[k], use[sw], bounced && order[k] == fired, by_kernel);
  }
}

void mg__sup_th_recheck(mg_child *c) {
  if (c->pid > 0)
    th__seen_all(c, -1, NULL, -1, 0, 1);
}

static void w__on_threshold(uv_poll_t *h, int status, int events) {
  (void)events;
  mg__sup_watch *w = h->data;
  mg_child *c = w->c;
  uint64_t n = 0;
  if (status < 0 || mg_cgroup_eventfd_drain(w->fd, &n) < 0 || n == 0)
    return;
  if (c->pid > 0)
    th__seen_all(c, 1, NULL, w->th, !w->rearm && n >= 2, 1);
}

static void th__disarm(mg_child *c, int i);
static void sup__sampling(mg_child *c);

/* Arm threshold i for the running child: an eventfd on v1, else
 * sampled. At a run's start (`run_start`) it is armed: the run's group
 * began empty, so a level the child passes while the watches are being
 * set up (registering a v1 eventfd waits for an RCU grace period, 10-30
 * ms each) is a crossing, checked once all are armed. Otherwise (p:watch,
 * a new limit) its state starts from the usage now: a level already
 * passed fires only after the usage has gone below it. */
static void th__arm(mg_child *c, int i, int run_start) {
  mg__sup_th *th = &c->th[i];
  th->level = th__level(c, th);
  th->kernel = 0;
  uint64_t usage = 0;
  th->armed =
      run_start || !(th->level && th__usage(c, th->t.swap, &usage) == 0 &&
                     usage >= th->level);
  th->want = th->level && c->cg && mg_cgroup_get_version(c->cg) == MG_CGROUP_V1;
}

/* Serve threshold i with the v1 eventfds fd (its level) and fd2 (its
 * re-arm line, -1 without one); both taken, closed on failure. */
static void th__attach(mg_child *c, int i, int fd, int fd2) {
  mg__sup_watch *w =
      mg__sup_watch_add(c, fd, MG__W_THRESHOLD, UV_READABLE, w__on_threshold);
  if (!w) {
    if (fd2 >= 0)
      close(fd2);
    return;
  }
  w->th = i;
  c->th[i].kernel = 1;
  if (fd2 >= 0) { /* the re-arm line: its crossings only re-evaluate */
    mg__sup_watch *r = mg__sup_watch_add(c, fd2, MG__W_THRESHOLD, UV_READABLE,
                                         w__on_threshold);
    if (r) {
      r->th = i;
      r->rearm = 1;
    } else {
      th__disarm(c, i);
    }
  }
}

/* ------------------------------------- v1 registration, off the loop
 * Each write to cgroup.event_control waits for an RCU grace period under
 * the group's mutex (10-30 ms here; two per threshold: 49 took 2.7 s in
 * bench_spawn), so the writes run in libuv's thread pool; until its eventfds
 * are attached a threshold is sampled. The worker touches only its job (its own
 * handle on the group's directory); a result the run no longer wants (another
 * run, the threshold stopped or moved) is closed. */

typedef struct th__item {
  int slot, id, swap;
  uint64_t level, rearm;
  int fd, fd2;
} th__item;

typedef struct th__job {
  uv_work_t req;
  mg_child *c;
  unsigned gen;
  mg_cgroup_version version;
  char dir[PATH_MAX];
  int n;
  th__item it[MG_SUP_THRESHOLDS_MAX + 1];
} th__job;

static void th__work(uv_work_t *req) {
  th__job *j = req->data;
  mg_cgroup *cg = NULL;
  if (mg_cgroup_open(j->version, j->dir, &cg, NULL, 0) < 0)
    return;
  for (int k = 0; k < j->n; k++) {
    th__item *it = &j->it[k];
    if (mg_cgroup_threshold_open(cg, it->swap, it->level, &it->fd, NULL, 0) < 0)
      continue;
    if (it->rearm > 0 && mg_cgroup_threshold_open(cg, it->swap, it->rearm,
                                                  &it->fd2, NULL, 0) < 0) {
      close(it->fd);
      it->fd = -1;
    }
  }
  mg_cgroup_free(cg);
}

static void th__registered(uv_work_t *req, int status) {
  th__job *j = req->data;
  mg_child *c = j->c;
  int live = status == 0 && j->gen == c->arm_gen && c->pid > 0;
  for (int k = 0; k < j->n; k++) {
    th__item *it = &j->it[k];
    mg__sup_th *th = &c->th[it->slot];
    int wanted = live && th->used && th->pending && th->id == it->id &&
                 th->level == it->level && th->t.swap == it->swap;
    if (wanted)
      th->pending = 0;
    if (wanted && it->fd >= 0) {
      th__attach(c, it->slot, it->fd, it->fd2);
      continue;
    }
    if (it->fd >= 0)
      close(it->fd);
    if (it->fd2 >= 0)
      close(it->fd2);
  }
  if (live) {
    th__seen_all(c, -1, NULL, -1, 0, 0); /* passed while registering */
    sup__sampling(c);
  }
  free(j);
  mg__sup_handle_closed(c); /* the job held the child: last */
}

/* Queue the registration of every threshold that wants one. */
static void th__register(mg_child *c) {
  int n = 0;
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++)
    n += c->th[i].used && c->th[i].want;
  if (n == 0 || !c->cg)
    return;
  th__job *j = calloc(1, sizeof *j);
  if (!j) /* they stay sampled */
    return;
  j->req.data = j;
  j->c = c;
  j->gen = c->arm_gen;
  j->version = mg_cgroup_get_version(c->cg);
  snprintf(j->dir, sizeof j->dir, "%s", mg_cgroup_dir(c->cg));
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++) {
    mg__sup_th *th = &c->th[i];
    if (!th->used || !th->want)
      continue;
    th->want = 0;
    th->pending = 1;
    j->it[j->n++] = (th__item){
        i, th->id, th->t.swap, th->level, th__rearm(th->level), -1, -1};
  }
  if (uv_queue_work(c->sup->loop, &j->req, th__work, th__registered) < 0) {
    for (int k = 0; k < j->n; k++)
      c->th[j->it[k].slot].pending = 0;
    free(j);
    return;
  }
  c->handles_open++;
  c->sup->nhandles++;
}

static void th__disarm(mg_child *c, int i) {
  mg__sup_watch *w = c->watches;
  while (w) { /* the level's and its re-arm line's */
    mg__sup_watch *next = w->next;
    if (w->kind == MG__W_THRESHOLD && w->th == i)
      mg__sup_watch_close(w);
    w = next;
  }
  c->th[i].kernel = c->th[i].want = c->th[i].pending = 0;
}

/* ----------------------------------------------------------- sampling */

static void sup__on_sample(uv_timer_t *t) {
  mg_child *c = t->data;
  mg_child_sample s;
  if (mg__sup_sample(c, &s, NULL, 0) < 0)
    return;
  if (c->sample_ms > 0)
    MG__SUP_EMIT(c, on_sample, &s);
  /* every threshold, also those the kernel notifies: a sample taken
   * anyway costs nothing more, and it catches a crossing whose
   * notification is late (v1 checks its thresholds only every 128 page
   * events of a CPU) or lost */
  uint64_t u = s.has_cgroup ? s.cgroup_current_bytes : s.used_bytes;
  if (c->pid > 0)
    th__seen_all(c, -1, &u, -1, 0, 0);
  mg__sup_gpu_check(c, &s); /* NVML has no notification: sampled */
}

/* Start, restart or stop the sample timer for what the run needs. */
static void sup__sampling(mg_child *c) {
  int need = c->gpu_limit_bytes > 0;
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++)
    need |= c->th[i].used && c->th[i].level && !c->th[i].kernel;
  int ms = (int)c->sample_ms;
  if (ms > 0 && c->sample_fallback && !need)
    ms = 0;
  if (ms == 0 && need)
    ms = MG_SUP_WATCH_SAMPLE_MS;
  if (ms == c->sampling_ms && uv_is_active((uv_handle_t *)&c->sample_timer))
    return;
  c->sampling_ms = ms;
  uv_timer_stop(&c->sample_timer);
  if (ms > 0 && c->pid > 0) {
    uv_update_time(c->sup->loop);
    uv_timer_start(&c->sample_timer, sup__on_sample, (uint64_t)ms,
                   (uint64_t)ms);
  }
}

/* ------------------------------------------------------------ the run */

static void sup__on_armed(uv_timer_t *t) {
  mg_child *c = t->data;
  if (c->pid > 0)
    th__seen_all(c, -1, NULL, -1, 0, 0);
}

void mg__sup_watch_start(mg_child *c) {
  c->gpu_warn_armed = 1;
  memset(c->gpu_th_armed, 1, sizeof c->gpu_th_armed);
  c->gpu_over = 0;
  c->gpu_failed = 0;
  c->oom_seen = 0;
  c->oom_notified = 0;
  c->sampling_ms = 0;
  c->arm_gen++;
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++)
    if (c->th[i].used)
      th__arm(c, i, 1);
  th__register(c);
  /* levels passed while arming: checked on the loop's next turn, once
   * the owner has its handlers (the first run starts inside the spawn) */
  uv_timer_start(&c->arm_timer, sup__on_armed, 0, 0);
  mg__sup_events_start(c); /* OOM kills, memory.events, pressure */
  sup__sampling(c);
}

void mg__sup_watch_stop(mg_child *c) {
  uv_timer_stop(&c->sample_timer);
  uv_timer_stop(&c->arm_timer);
  uv_timer_stop(&c->oom_timer);
  c->sampling_ms = 0;
  mg__sup_watch *w = c->watches;
  while (w) {
    mg__sup_watch *next = w->next;
    if (w->kind != MG__W_RELAY)
      mg__sup_watch_close(w);
    w = next;
  }
  c->arm_gen++; /* a registration under way is dropped when it returns */
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++)
    c->th[i].kernel = c->th[i].want = c->th[i].pending = 0;
}

/* ------------------------------------------------------------- public */

int mg_child_watch(mg_child *c, const mg_threshold *t, int *id, char *err,
                   size_t err_len) {
  if (!c || !t)
    return mg_errf(err, err_len, -EINVAL, "watch: no child or threshold");
  int rc = th__valid(t, err, err_len);
  if (rc == 0)
    rc = th__servable(c, t, err, err_len);
  if (rc < 0)
    return rc;
  if (c->closed)
    return mg_errf(err, err_len, -ESRCH,
                   "watch: process '%s' has ended for good", c->name);
  int slot = 1;
  while (slot <= MG_SUP_THRESHOLDS_MAX && c->th[slot].used)
    slot++;
  if (slot > MG_SUP_THRESHOLDS_MAX)
    return mg_errf(err, err_len, -ENOSPC,
                   "watch: process '%s' has %d thresholds already (accepted: "
                   "at most %d; stop one first)",
                   c->name, MG_SUP_THRESHOLDS_MAX, MG_SUP_THRESHOLDS_MAX);
  mg__sup_th *th = &c->th[slot];
  memset(th, 0, sizeof *th);
  th->used = 1;
  th->id = ++c->next_watch_id;
  th->t = *t;
  if (c->pid > 0) {
    th__arm(c, slot, 0);
    th__register(c);
    sup__sampling(c);
  }
  if (id)
    *id = th->id;
  return 0;
}

int mg_child_unwatch(mg_child *c, int id) {
  if (!c || id <= 0)
    return -EINVAL;
  for (int i = 1; i <= MG_SUP_THRESHOLDS_MAX; i++)
    if (c->th[i].used && c->th[i].id == id) {
      th__disarm(c, i);
      c->th[i].used = 0;
      if (c->pid > 0)
        sup__sampling(c);
      return 0;
    }
  return -ENOENT;
}

/* The limit changed: levels given as fractions move with it. */
void mg__sup_th_limit_changed(mg_child *c) {
  if (c->pid <= 0)
    return;
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++)
    if (c->th[i].used && !c->th[i].t.bytes) {
      th__disarm(c, i);
      th__arm(c, i, 0);
    }
  th__register(c);
  sup__sampling(c);
}

void mg_child_watching_get(const mg_child *c, mg_child_watching *out) {
  memset(out, 0, sizeof *out);
  if (!c)
    return;
  for (int i = 0; i <= MG_SUP_THRESHOLDS_MAX; i++)
    if (c->th[i].used && (c->pid <= 0 || c->th[i].level)) {
      if (c->th[i].kernel)
        out->thresholds_kernel++;
      else
        out->thresholds_sampled++;
    }
  out->oom_notified = c->oom_notified;
  out->sampling_ms =
      uv_is_active((const uv_handle_t *)&c->sample_timer) ? c->sampling_ms : 0;
}
