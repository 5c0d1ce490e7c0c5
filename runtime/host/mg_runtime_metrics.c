/* mg_runtime_metrics.c — the runtime's metrics (host layer): a supervisor
 * observer counting what happens to each child, the built-in families
 * (docs/operations.md "Metrics" lists them), the text of a scrape — the
 * built-ins, then the policy's own (mg.metrics). The HTTP endpoint is
 * mg_runtime_metrics_http.c, --metrics-file mg_runtime_metrics_file.c.
 *
 * Every runtime made with mg_runtime_new (not check_only) collects, so
 * that mg_runtime_metrics_text works for an embedding host too; the file
 * and the endpoint exist only when asked for. Gauges are read at scrape
 * time (the stores, /proc; each live child's last sample when it is at
 * most MG__MX_SAMPLE_MS old — the supervisor's own, or an earlier
 * scrape's — else a sample taken then, so that frequent scrapes do not
 * read a child's files more than once in that time); counters come
 * from the observer and are kept per (name, enforce) for the runtime's
 * life, also after a child is closed, so that a totals series never goes
 * back. All on the loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mg__rt_metrics.h"

/* ------------------------------------------------------------ families */

enum {
  MX_L_NONE,
  MX_L_CHILD,   /* name, enforce */
  MX_L_EXIT,    /* name, enforce, reason */
  MX_L_STORE,   /* store */
  MX_L_KIND,    /* kind */
  MX_L_VERSION, /* version */
  MX_L_GPU      /* gpu, uuid, name */
};

enum {
  MX_F_BUILD,
  MX_F_CHILD_UP,
  MX_F_CHILD_MEM,
  MX_F_CHILD_PEAK,
  MX_F_CHILD_LIMIT,
  MX_F_CHILD_ANON,
  MX_F_CHILD_FILE,
  MX_F_CHILD_RESTARTS,
  MX_F_CHILD_EXITS,
  MX_F_CHILD_OOM,
  MX_F_CHILD_THRESH,
  MX_F_CHILD_GPU,
  MX_F_CHILD_GPU_LIMIT,
  MX_F_GPU_TOTAL,
  MX_F_GPU_USED,
  MX_F_STORE_MSGS,
  MX_F_STORE_BYTES,
  MX_F_STORE_TOKENS,
  MX_F_STORE_MAX_MSGS,
  MX_F_STORE_MAX_BYTES,
  MX_F_STORE_MAX_MSG_BYTES,
  MX_F_STORE_MAX_TOKENS,
  MX_F_STORE_EVICT,
  MX_F_STORE_EVICT_BYTES,
  MX_F_STORE_REJECT,
  MX_F_STORE_ARCHIVED,
  MX_F_CB,
  MX_F_CB_FAILED,
  MX_F_CB_STOPPED,
  MX_F_LUA_MEM,
  MX_F_LUA_PEAK,
  MX_F_LUA_LIMIT,
  MX_F_NODE_TOTAL,
  MX_F_NODE_EFF,
  MX_F_NODE_AVAIL,
  MX_F_PSI_SOME,
  MX_F_PSI_FULL,
  MX_F_RSS,
  MX_F_CPU,
  MX_F_COUNT
};

#define G MG_METRIC_GAUGE
#define C MG_METRIC_COUNTER
static const struct {
  const char *name;
  mg_metric_type type;
  int labels;
  const char *help;
} mx_defs[MX_F_COUNT] = {
    [MX_F_BUILD] = {"mgrun_build_info", G, MX_L_VERSION,
                    "Always 1; the version of mgrun in a label."},
    [MX_F_CHILD_UP] = {"mgrun_child_up", G, MX_L_CHILD,
                       "1 while the child runs, 0 while it waits for a "
                       "restart or after its last run."},
    [MX_F_CHILD_MEM] = {"mgrun_child_memory_bytes", G, MX_L_CHILD,
                        "Memory of the child as its limit counts it: its "
                        "cgroup's usage (enforce cgroup), VmData (data), "
                        "VmSize (as), VmRSS (none)."},
    [MX_F_CHILD_PEAK] = {"mgrun_child_memory_peak_bytes", G, MX_L_CHILD,
                         "Highest memory of the child's current run: its "
                         "cgroup's peak, else VmHWM (peak RSS)."},
    [MX_F_CHILD_LIMIT] = {"mgrun_child_memory_limit_bytes", G, MX_L_CHILD,
                          "The child's memory limit (absent without one)."},
    [MX_F_CHILD_ANON] = {"mgrun_child_memory_anon_bytes", G, MX_L_CHILD,
                         "Anonymous memory of the child: its cgroup's anon "
                         "charge, else RssAnon of its main process."},
    [MX_F_CHILD_FILE] = {"mgrun_child_memory_file_bytes", G, MX_L_CHILD,
                         "File-backed memory of the child: its cgroup's file "
                         "charge, else RssFile of its main process."},
    [MX_F_CHILD_RESTARTS] = {"mgrun_child_restarts_total", C, MX_L_CHILD,
                             "Restarts of the child."},
    [MX_F_CHILD_EXITS] = {"mgrun_child_exits_total", C, MX_L_EXIT,
                          "Runs of the child that ended, by reason (exit, "
                          "signal, oom, limit, gpu_limit)."},
    [MX_F_CHILD_OOM] = {"mgrun_child_oom_kills_total", C, MX_L_CHILD,
                        "Processes of the child's cgroup killed by the OOM "
                        "killer."},
    [MX_F_CHILD_THRESH] = {"mgrun_child_thresholds_crossed_total", C,
                           MX_L_CHILD,
                           "Upward crossings of the child's memory "
                           "thresholds."},
    [MX_F_CHILD_GPU] = {"mgrun_child_gpu_memory_bytes", G, MX_L_CHILD,
                        "GPU memory of the child's process tree on the "
                        "devices it may use (NVML; absent without a GPU "
                        "session)."},
    [MX_F_CHILD_GPU_LIMIT] = {"mgrun_child_gpu_memory_limit_bytes", G,
                              MX_L_CHILD,
                              "The child's gpu_limit (absent without one)."},
    [MX_F_GPU_TOTAL] = {"mgrun_gpu_memory_total_bytes", G, MX_L_GPU,
                        "Memory of each GPU (NVML), once a GPU session is "
                        "open."},
    [MX_F_GPU_USED] = {"mgrun_gpu_memory_used_bytes", G, MX_L_GPU,
                       "Memory used on each GPU, by every process."},
    [MX_F_STORE_MSGS] = {"mgrun_store_messages", G, MX_L_STORE,
                         "Messages in the context store."},
    [MX_F_STORE_BYTES] = {"mgrun_store_bytes", G, MX_L_STORE,
                          "Accounted size of the store's messages."},
    [MX_F_STORE_TOKENS] = {"mgrun_store_tokens", G, MX_L_STORE,
                           "Tokens of the store's messages."},
    [MX_F_STORE_MAX_MSGS] = {"mgrun_store_max_messages", G, MX_L_STORE,
                             "The store's message count limit."},
    [MX_F_STORE_MAX_BYTES] = {"mgrun_store_max_bytes", G, MX_L_STORE,
                              "The store's total size limit."},
    [MX_F_STORE_MAX_MSG_BYTES] = {"mgrun_store_max_message_bytes", G,
                                  MX_L_STORE,
                                  "The store's limit on one message's size."},
    [MX_F_STORE_MAX_TOKENS] = {"mgrun_store_max_tokens", G, MX_L_STORE,
                               "The store's token limit (absent without "
                               "one)."},
    [MX_F_STORE_EVICT] = {"mgrun_store_evictions_total", C, MX_L_STORE,
                          "Messages evicted from the store by its strategy "
                          "or a prune."},
    [MX_F_STORE_EVICT_BYTES] = {"mgrun_store_evicted_bytes_total", C,
                                MX_L_STORE,
                                "Accounted bytes of the evicted messages."},
    [MX_F_STORE_REJECT] = {"mgrun_store_rejected_adds_total", C, MX_L_STORE,
                           "Adds the store refused."},
    [MX_F_STORE_ARCHIVED] = {"mgrun_store_archived_records_total", C,
                             MX_L_STORE,
                             "Evicted messages written to the store's "
                             "archive (records, not bytes)."},
    [MX_F_CB] = {"mgrun_callbacks_total", C, MX_L_NONE,
                 "Policy callbacks run (timers, events, store strategies, "
                 "estimators...)."},
    [MX_F_CB_FAILED] = {"mgrun_callbacks_failed_total", C, MX_L_NONE,
                        "Policy callbacks that failed (errors and budgets)."},
    [MX_F_CB_STOPPED] = {"mgrun_callbacks_stopped_total", C, MX_L_KIND,
                         "Policy callbacks stopped by a budget: instructions, "
                         "timeout (wall clock) or memory (the Lua cap)."},
    [MX_F_LUA_MEM] = {"mgrun_lua_memory_bytes", G, MX_L_NONE,
                      "Memory the policy's Lua state holds."},
    [MX_F_LUA_PEAK] = {"mgrun_lua_memory_peak_bytes", G, MX_L_NONE,
                       "The most memory the policy's Lua state held."},
    [MX_F_LUA_LIMIT] = {"mgrun_lua_memory_limit_bytes", G, MX_L_NONE,
                        "The Lua state's memory cap (--lua-mem; 0: none)."},
    [MX_F_NODE_TOTAL] = {"mgrun_node_memory_total_bytes", G, MX_L_NONE,
                         "MemTotal of the machine."},
    [MX_F_NODE_EFF] = {"mgrun_node_memory_effective_bytes", G, MX_L_NONE,
                       "Effective memory: MemTotal or the memory limit of "
                       "mgrun's own cgroup, whichever is less."},
    [MX_F_NODE_AVAIL] = {"mgrun_node_memory_available_bytes", G, MX_L_NONE,
                         "Memory available within the effective memory: "
                         "MemAvailable, or less when the cgroup's limit is "
                         "nearer."},
    [MX_F_PSI_SOME] = {"mgrun_node_pressure_some_seconds_total", C, MX_L_NONE,
                       "Time some task stalled on memory (PSI "
                       "/proc/pressure/memory, absent without PSI)."},
    [MX_F_PSI_FULL] = {"mgrun_node_pressure_full_seconds_total", C, MX_L_NONE,
                       "Time all non-idle tasks stalled on memory at once "
                       "(PSI, absent without PSI)."},
    [MX_F_RSS] = {"mgrun_process_resident_memory_bytes", G, MX_L_NONE,
                  "Resident memory of mgrun itself (VmRSS)."},
    [MX_F_CPU] = {"mgrun_process_cpu_seconds_total", C, MX_L_NONE,
                  "User and system CPU time of mgrun itself."},
};
#undef G
#undef C

static const char *const mx_label_sets[][3] = {
    [MX_L_NONE] = {NULL},
    [MX_L_CHILD] = {"name", "enforce", NULL},
    [MX_L_EXIT] = {"name", "enforce", "reason"},
    [MX_L_STORE] = {"store", NULL},
    [MX_L_KIND] = {"kind", NULL},
    [MX_L_VERSION] = {"version", NULL},
    [MX_L_GPU] = {"gpu", "uuid", "name"},
};
static const size_t mx_label_counts[] = {0, 2, 3, 1, 1, 1, 3};

/* ------------------------------------------------------------ children */

struct mg__mx_child {
  char name[MG_NAME_MAX + 1];
  char enforce[8];
  uint64_t restarts, oom_kills, thresholds;
  uint64_t exits[5]; /* by mg_exit_reason */
  int closed;
  mg_child *cur; /* the live child of this scrape, else NULL */
  /* its last sample (the supervisor's, or a scrape's) and when it was
   * taken (uv_now) */
  int has_last;
  uint64_t last_ms;
  mg_child_sample last;
};

static mg__mx_child *mx__child(struct mg__rt_metrics *m, mg_child *c) {
  const char *name = mg_child_name(c);
  const char *enf = mg_enforce_name(mg_child_enforce(c));
  for (size_t i = 0; i < m->nchildren; i++) {
    mg__mx_child *e = &m->children[i];
    if (strcmp(e->name, name) == 0 && strcmp(e->enforce, enf) == 0)
      return e;
  }
  if (m->nchildren == m->capchildren && m->capchildren < MG__MX_CHILDREN_MAX) {
    size_t cap = m->capchildren ? m->capchildren * 2 : 16;
    if (cap > MG__MX_CHILDREN_MAX)
      cap = MG__MX_CHILDREN_MAX;
    mg__mx_child *v = realloc(m->children, cap * sizeof *v);
    if (!v)
      return NULL;
    m->children = v;
    m->capchildren = cap;
  }
  if (m->nchildren == m->capchildren) { /* forget the oldest closed */
    size_t i = 0;
    while (i < m->nchildren && !m->children[i].closed)
      i++;
    if (i == m->nchildren)
      return NULL;
    memmove(&m->children[i], &m->children[i + 1],
            (m->nchildren - i - 1) * sizeof *m->children);
    m->nchildren--;
  }
  mg__mx_child *e = &m->children[m->nchildren++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->enforce, sizeof e->enforce, "%s", enf);
  return e;
}

static void mx__on_start(mg_child *c, void *ud) {
  mg__mx_child *e = mx__child(ud, c);
  if (e)
    e->closed = 0;
}

static void mx__on_exit(mg_child *c, const mg_child_exit *x, void *ud) {
  mg__mx_child *e = mx__child(ud, c);
  if (e && (unsigned)x->reason < 5)
    e->exits[x->reason]++;
}

static void mx__on_restart(mg_child *c, int restarts, void *ud) {
  mg__mx_child *e = mx__child(ud, c);
  (void)restarts;
  if (e)
    e->restarts++;
}

static void mx__on_oom(mg_child *c, const mg_oom_event *o, void *ud) {
  mg__mx_child *e = mx__child(ud, c);
  if (e)
    e->oom_kills += o->count;
}

static void mx__on_threshold(mg_child *c, const mg_threshold_event *t,
                             void *ud) {
  mg__mx_child *e = mx__child(ud, c);
  (void)t;
  if (e)
    e->thresholds++;
}

/* The supervisor sampled the child: a scrape within MG__MX_SAMPLE_MS uses
 * that sample instead of reading its files again. */
static void mx__on_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  struct mg__rt_metrics *m = ud;
  mg__mx_child *e = mx__child(m, c);
  if (e) {
    e->last = *s;
    e->last_ms = uv_now(m->rt->loop);
    e->has_last = 1;
  }
}

static void mx__on_close(mg_child *c, void *ud) {
  mg__mx_child *e = mx__child(ud, c);
  if (e)
    e->closed = 1;
}

/* ------------------------------------------------------------ a scrape */

/* (a family not registered — PSI on a kernel without it — is skipped) */
static void mx__set(struct mg__rt_metrics *m, int f, const char *const *v,
                    double x) {
  if (m->fam[f])
    mg_metric_set(m->fam[f], v, x, NULL, 0); /* values are ours: valid */
}

static void mx__children(struct mg__rt_metrics *m) {
  mg_sup *sup = m->rt->sup;
  size_t n = sup ? mg_sup_children(sup, NULL, 0) : 0;
  mg_child **live = n ? calloc(n, sizeof *live) : NULL;
  if (live)
    n = mg_sup_children(sup, live, n);
  else
    n = 0;
  for (size_t i = 0; i < m->nchildren; i++)
    m->children[i].cur = NULL;
  for (size_t i = 0; i < n; i++) {
    mg__mx_child *e = mx__child(m, live[i]);
    if (e)
      e->cur = live[i];
  }
  free(live);
  for (size_t i = 0; i < m->nchildren; i++) {
    mg__mx_child *e = &m->children[i];
    const char *v[] = {e->name, e->enforce, NULL};
    int up = e->cur && mg_child_running(e->cur);
    mx__set(m, MX_F_CHILD_UP, v, up);
    mg_child_sample s;
    uint64_t now = uv_now(m->rt->loop);
    int fresh = up && e->has_last && e->last.pid == mg_child_pid(e->cur) &&
                now - e->last_ms <= MG__MX_SAMPLE_MS;
    if (fresh) {
      s = e->last;
    } else if (up && mg_child_memory(e->cur, &s, NULL, 0) == 0) {
      e->last = s;
      e->last_ms = now;
      e->has_last = fresh = 1;
    }
    if (fresh) {
      mx__set(m, MX_F_CHILD_MEM, v, (double)s.used_bytes);
      mx__set(m, MX_F_CHILD_PEAK, v,
              (double)(s.has_cgroup ? s.cgroup_peak_bytes : s.hwm_bytes));
      mx__set(m, MX_F_CHILD_ANON, v,
              (double)(s.has_cgroup ? s.cgroup_anon_bytes : s.anon_bytes));
      mx__set(m, MX_F_CHILD_FILE, v,
              (double)(s.has_cgroup ? s.cgroup_file_bytes : s.file_bytes));
      if (s.has_gpu)
        mx__set(m, MX_F_CHILD_GPU, v, (double)s.gpu_bytes);
      if (s.gpu_limit_bytes)
        mx__set(m, MX_F_CHILD_GPU_LIMIT, v, (double)s.gpu_limit_bytes);
    }
    if (e->cur && mg_child_limit(e->cur))
      mx__set(m, MX_F_CHILD_LIMIT, v, (double)mg_child_limit(e->cur));
    mx__set(m, MX_F_CHILD_RESTARTS, v, (double)e->restarts);
    mx__set(m, MX_F_CHILD_OOM, v, (double)e->oom_kills);
    mx__set(m, MX_F_CHILD_THRESH, v, (double)e->thresholds);
    for (int r = 0; r < 5; r++) {
      const char *xv[] = {e->name, e->enforce,
                          mg_exit_reason_name((mg_exit_reason)r)};
      mx__set(m, MX_F_CHILD_EXITS, xv, (double)e->exits[r]);
    }
  }
}

/* The stores, summed by name (two open stores of one name make one set
 * of series). */
typedef struct mx_store {
  char name[MG_NAME_MAX + 1];
  mg_store_stats st;
} mx_store;

typedef struct mx_stores {
  mx_store *v;
  size_t n, cap;
} mx_stores;

static void mx__store(const char *name, const mg_store *s, void *ud) {
  mx_stores *a = ud;
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  mx_store *e = NULL;
  for (size_t i = 0; i < a->n && !e; i++)
    if (strcmp(a->v[i].name, name) == 0)
      e = &a->v[i];
  if (!e) {
    if (a->n == a->cap) {
      size_t cap = a->cap ? a->cap * 2 : 16;
      mx_store *v = realloc(a->v, cap * sizeof *v);
      if (!v)
        return;
      a->v = v;
      a->cap = cap;
    }
    e = &a->v[a->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
  }
  e->st.message_count += st.message_count;
  e->st.total_size_bytes += st.total_size_bytes;
  e->st.total_tokens += st.total_tokens;
  e->st.max_messages += st.max_messages;
  e->st.max_total_size_bytes += st.max_total_size_bytes;
  if (st.max_message_size_bytes > e->st.max_message_size_bytes)
    e->st.max_message_size_bytes = st.max_message_size_bytes;
  e->st.max_tokens += st.max_tokens;
  e->st.evicted_count += st.evicted_count;
  e->st.evicted_bytes += st.evicted_bytes;
  e->st.rejected_count += st.rejected_count;
  e->st.archived_count += st.archived_count;
}

static void mx__stores(struct mg__rt_metrics *m) {
  mx_stores a = {0};
  if (m->rt->env)
    mg_lua_store_each(m->rt->env, mx__store, &a);
  for (size_t i = 0; i < a.n; i++) {
    const mg_store_stats *st = &a.v[i].st;
    const char *v[] = {a.v[i].name};
    mx__set(m, MX_F_STORE_MSGS, v, (double)st->message_count);
    mx__set(m, MX_F_STORE_BYTES, v, (double)st->total_size_bytes);
    mx__set(m, MX_F_STORE_TOKENS, v, (double)st->total_tokens);
    mx__set(m, MX_F_STORE_MAX_MSGS, v, (double)st->max_messages);
    mx__set(m, MX_F_STORE_MAX_BYTES, v, (double)st->max_total_size_bytes);
    mx__set(m, MX_F_STORE_MAX_MSG_BYTES, v, (double)st->max_message_size_bytes);
    if (st->max_tokens)
      mx__set(m, MX_F_STORE_MAX_TOKENS, v, (double)st->max_tokens);
    mx__set(m, MX_F_STORE_EVICT, v, (double)st->evicted_count);
    mx__set(m, MX_F_STORE_EVICT_BYTES, v, (double)st->evicted_bytes);
    mx__set(m, MX_F_STORE_REJECT, v, (double)st->rejected_count);
    mx__set(m, MX_F_STORE_ARCHIVED, v, (double)st->archived_count);
  }
  free(a.v);
}

static void mx__host(struct mg__rt_metrics *m) {
  mg_lua_env *env = m->rt->env;
  if (env) {
    mg_lua_callback_stats cs;
    mg_lua_callback_stats_get(env, &cs);
    mx__set(m, MX_F_CB, NULL, (double)cs.calls);
    mx__set(m, MX_F_CB_FAILED, NULL, (double)cs.failed);
    const char *k[][1] = {{"instructions"}, {"timeout"}, {"memory"}};
    mx__set(m, MX_F_CB_STOPPED, k[0], (double)cs.stopped_instructions);
    mx__set(m, MX_F_CB_STOPPED, k[1], (double)cs.stopped_timeout);
    mx__set(m, MX_F_CB_STOPPED, k[2], (double)cs.stopped_memory);
    size_t peak, used = mg_lua_mem(env, &peak);
    mx__set(m, MX_F_LUA_MEM, NULL, (double)used);
    mx__set(m, MX_F_LUA_PEAK, NULL, (double)peak);
  }
  mx__set(m, MX_F_LUA_LIMIT, NULL, (double)m->rt->opts.lua_mem_max_bytes);
}

/* The GPUs, when the supervisor has an NVML session open (a spawn with a
 * GPU option or mg.gpus() opened it; a scrape never loads NVML itself). */
static void mx__gpus(struct mg__rt_metrics *m) {
  mg_gpu *g = NULL;
  unsigned n = 0;
  if (!m->rt->sup || !mg_sup_gpu_open(m->rt->sup, &g) ||
      mg_gpu_count(g, &n, NULL, 0) < 0)
    return;
  for (unsigned i = 0; i < n; i++) {
    mg_gpu_device d;
    if (mg_gpu_device_info(g, i, &d, NULL, 0) < 0)
      continue;
    char idx[16];
    snprintf(idx, sizeof idx, "%u", i);
    const char *v[] = {idx, d.uuid, d.name};
    mx__set(m, MX_F_GPU_TOTAL, v, (double)d.total_bytes);
    mx__set(m, MX_F_GPU_USED, v, (double)d.used_bytes);
  }
}

static void mx__node(struct mg__rt_metrics *m) {
  const mg_paths *paths = &m->rt->opts.paths;
  mg_meminfo mi;
  if (mg_meminfo_read(paths->proc_root, &mi, NULL, 0) == 0) {
    mx__set(m, MX_F_NODE_TOTAL, NULL, (double)mi.total_bytes);
    mg_effmem eff;
    if (m->cg_ok &&
        mg_effective_memory(paths, &mi, &m->cg, &eff, NULL, 0) == 0) {
      mx__set(m, MX_F_NODE_EFF, NULL, (double)eff.total_bytes);
      mx__set(m, MX_F_NODE_AVAIL, NULL, (double)eff.available_bytes);
    } else {
      mx__set(m, MX_F_NODE_EFF, NULL, (double)mi.total_bytes);
      mx__set(m, MX_F_NODE_AVAIL, NULL, (double)mi.available_bytes);
    }
  }
  mg_psi psi;
  if (m->fam[MX_F_PSI_SOME] &&
      mg_psi_read(paths->proc_root, &psi, NULL, 0) == 0) {
    mx__set(m, MX_F_PSI_SOME, NULL, (double)psi.some.total_us / 1e6);
    if (psi.has_full)
      mx__set(m, MX_F_PSI_FULL, NULL, (double)psi.full.total_us / 1e6);
  }
}

static void mx__self(struct mg__rt_metrics *m) {
  mg_proc_status st;
  if (mg_proc_status_read(NULL, 0, &st, NULL, 0) == 0)
    mx__set(m, MX_F_RSS, NULL, (double)st.rss_bytes);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    mx__set(m, MX_F_CPU, NULL,
            (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
}

/* Append `s` (n bytes) to the text at *out (*len bytes, malloc'd). */
static int mx__append(char **out, size_t *len, const char *s, size_t n) {
  char *p = realloc(*out, *len + n + 1);
  if (!p)
    return -ENOMEM;
  memcpy(p + *len, s, n);
  *len += n;
  p[*len] = '\0';
  *out = p;
  return 0;
}

/* The built-in families, made at the first scrape (not at every start of
 * mgrun): PSI's only where the kernel has PSI; this process's cgroup
 * position for the effective memory. */
static int mx__families(struct mg__rt_metrics *m) {
  m->fam = calloc(MX_F_COUNT, sizeof *m->fam);
  if (!m->fam || mg_metrics_new(&m->reg) < 0)
    return -ENOMEM;
  const mg_paths *paths = &m->rt->opts.paths;
  mg_psi psi;
  int has_psi = mg_psi_read(paths->proc_root, &psi, NULL, 0) == 0;
  for (int f = 0; f < MX_F_COUNT; f++) {
    int l = mx_defs[f].labels;
    if ((f == MX_F_PSI_SOME && !has_psi) ||
        (f == MX_F_PSI_FULL && !(has_psi && psi.has_full)))
      continue;
    int rc = mg_metrics_add(m->reg, mx_defs[f].name, mx_defs[f].type,
                            mx_defs[f].help, mx_label_sets[l],
                            mx_label_counts[l], &m->fam[f], NULL, 0);
    if (rc < 0)
      return rc;
  }
  m->cg_ok = mg_cgroup_detect(paths, &m->cg, NULL, 0) == 0;
  return 0;
}

int mg__mx_text(struct mg__rt_metrics *m, char **out, size_t *len) {
  if (!m->reg) {
    int rc = mx__families(m);
    if (rc < 0) {
      mg_metrics_free(m->reg);
      m->reg = NULL;
      free(m->fam);
      m->fam = NULL;
      return rc;
    }
  }
  mg_metrics_reset(m->reg);
  const char *ver[] = {MG_VERSION};
  mx__set(m, MX_F_BUILD, ver, 1);
  mx__children(m);
  mx__stores(m);
  mx__host(m);
  mx__node(m);
  mx__gpus(m);
  mx__self(m);
  char *text;
  size_t n;
  int rc = mg_metrics_render(m->reg, &text, &n);
  if (rc < 0)
    return rc;
  mg_metrics *policy = m->rt->env ? mg_lua_metrics(m->rt->env) : NULL;
  if (policy) {
    char *pt;
    size_t pn;
    if ((rc = mg_metrics_render(policy, &pt, &pn)) == 0) {
      rc = mx__append(&text, &n, pt, pn);
      free(pt);
    }
    if (rc < 0) {
      free(text);
      return rc;
    }
  }
  *out = text;
  if (len)
    *len = n;
  return 0;
}

int mg_runtime_metrics_text(mg_runtime *rt, char **out, size_t *len, char *err,
                            size_t err_len) {
  if (out)
    *out = NULL;
  if (!rt || !out)
    return mg_errf(err, err_len, -EINVAL, "metrics: no runtime or no output");
  if (!rt->metrics)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "metrics: this runtime collects none (a check-only or "
                   "attached runtime, or one that stopped)");
  int rc = mg__mx_text(rt->metrics, out, len);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "metrics: out of memory");
  return 0;
}

/* ------------------------------------------------------------ public */

static void mx__free(struct mg__rt_metrics *m) {
  mg__mx_file_stop(m);
  if (m->obs > 0)
    mg_sup_unobserve(m->rt->sup, m->obs);
  mg__mx_http_stop(m);
  mg_metrics_free(m->reg);
  free(m->fam);
  free(m->children);
  free(m);
}

int mg__rt_metrics_start(mg_runtime *rt, char *err, size_t err_len) {
  struct mg__rt_metrics *m = calloc(1, sizeof *m);
  int rc = -ENOMEM;
  if (!m)
    return mg_errf(err, err_len, rc, "metrics: out of memory");
  m->rt = rt;
  mg_child_events ev;
  memset(&ev, 0, sizeof ev);
  ev.on_start = mx__on_start;
  ev.on_sample = mx__on_sample;
  ev.on_exit = mx__on_exit;
  ev.on_restart = mx__on_restart;
  ev.on_oom = mx__on_oom;
  ev.on_threshold = mx__on_threshold;
  ev.on_close = mx__on_close;
  ev.ud = m;
  if (rt->sup) {
    m->obs = mg_sup_observe(rt->sup, &ev);
    if (m->obs < 0) {
      rc = m->obs;
      m->obs = 0;
      mx__free(m);
      return mg_errf(err, err_len, rc,
                     "metrics: the supervisor has no room for an observer");
    }
  }
  rt->metrics = m; /* the file's first text needs it */
  rc = 0;
  if (rt->opts.metrics_addr)
    rc = mg__mx_http_start(m, err, err_len);
  if (rc == 0 && rt->opts.metrics_file)
    rc = mg__mx_file_start(m, err, err_len);
  if (rc < 0) {
    rt->metrics = NULL;
    mx__free(m);
  }
  return rc;
}

void mg__rt_metrics_stop(mg_runtime *rt) {
  struct mg__rt_metrics *m = rt->metrics;
  if (!m)
    return;
  mg__mx_file_write(m); /* the figures as they ended */
  rt->metrics = NULL;
  mx__free(m);
}
