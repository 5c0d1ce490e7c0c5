/* mg_sup_gpu.c — GPU memory of supervised children (supervisor layer, on
 * core's mg_gpu.h): the supervisor's NVML session, a spawn's GPU options,
 * the GPU figure of each sample (NVML has no notification: GPU use is
 * sampled), the warn line and the limit, and the environment that points
 * a child at its devices.
 *
 *   - gpu_limit: bytes, or a fraction of the total memory of the devices
 *     it may use (`gpus`, else all), resolved at spawn.
 *   - Each sample sums the GPU memory of the run's process tree over those
 *     devices. warn_at × gpu_limit crossed upwards: a threshold event with
 *     kind "gpu" (id 0) and a child_gpu_warn line, re-armed below; the
 *     limit crossed: on_gpu_limit may handle it (returns 1), else the run is
 *     stopped (TERM, its grace_ms, SIGKILL; the restart policy applies) and
 *     its exit is `gpu_limit`.
 *   - An NVML failure mid-run: the sample has no GPU figure (has_gpu 0),
 *     logged once per run (gpu_sample_failed).
 *   - Environment: CUDA_VISIBLE_DEVICES=<gpus> when gpus are given; with
 *     gpu_mps, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="0=<MiB>M,1=…" — the MPS
 *     server's per-client limit on each visible device (it bounds what a
 *     CUDA client of an MPS server may allocate on a device; it does
 *     nothing without an MPS server, and nothing for a program that is not
 *     an MPS client).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg__sup.h"

#define GPU__TREE_MAX 512

int mg_sup_gpu(mg_sup *sup, mg_gpu **out, char *err, size_t err_len) {
  if (!sup || !out)
    return mg_errf(err, err_len, -EINVAL, "mg_sup_gpu: no supervisor");
  *out = NULL;
  if (!sup->gpu_tried) {
    sup->gpu_tried = 1;
    sup->gpu_rc = mg_gpu_open(NULL, &sup->paths, &sup->gpu, sup->gpu_reason,
                              sizeof sup->gpu_reason);
    unsigned n = 0;
    if (sup->gpu_rc == 0 &&
        mg_gpu_count(sup->gpu, &n, sup->gpu_reason, sizeof sup->gpu_reason) ==
            0 &&
        n == 0) {
      snprintf(sup->gpu_reason, sizeof sup->gpu_reason,
               "NVML (%s) found no GPU", mg_gpu_library(sup->gpu));
      mg_gpu_close(sup->gpu);
      sup->gpu = NULL;
      sup->gpu_rc = -ENODEV;
    }
  }
  if (sup->gpu_rc < 0)
    return mg_errf(err, err_len, sup->gpu_rc, "%s", sup->gpu_reason);
  *out = sup->gpu;
  return 0;
}

int mg_sup_gpu_open(mg_sup *sup, mg_gpu **out) {
  if (out)
    *out = sup ? sup->gpu : NULL;
  return sup && sup->gpu;
}

int mg__sup_gpu_init(mg_child *c, const mg_child_opts *o, char *err,
                     size_t err_len) {
  if (o->gpu_limit_fraction < 0 || o->gpu_limit_fraction > 1)
    return mg_errf(err, err_len, -EINVAL,
                   "gpu_limit: %g%% (accepted: above 0 and up to 100 %% of "
                   "its devices' memory, or a size)",
                   o->gpu_limit_fraction * 100);
  if (o->gpu_limit_bytes > (uint64_t)INT64_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "gpu_limit: size out of range (accepted: 1 byte to 2^63-1)");
  if (o->ngpus > MG_GPU_MAX || (o->ngpus && !o->gpus))
    return mg_errf(err, err_len, -EINVAL,
                   "gpus: %zu devices (accepted: up to %d device indices)",
                   o->ngpus, MG_GPU_MAX);
  int want =
      o->gpu_limit_bytes || o->gpu_limit_fraction > 0 || o->ngpus || o->gpu_mps;
  if (!want)
    return 0;
  if (o->gpu_mps && !o->gpu_limit_bytes && !(o->gpu_limit_fraction > 0))
    return mg_errf(err, err_len, -EINVAL,
                   "gpu_mps: needs a gpu_limit (the per-device limit MPS is "
                   "told)");
  mg_gpu *g;
  char e[1024];
  int rc = mg_sup_gpu(c->sup, &g, e, sizeof e);
  if (rc < 0)
    return mg_errf(err, err_len, rc == -ENODEV ? MG_ENOTSUP : rc,
                   "%s: no GPU to govern here: %s",
                   o->ngpus ? "gpus" : "gpu_limit", e);
  unsigned n = 0;
  if ((rc = mg_gpu_count(g, &n, e, sizeof e)) < 0)
    return mg_errf(err, err_len, rc, "gpus: %s", e);
  uint64_t total = 0;
  for (size_t i = 0; i < (o->ngpus ? o->ngpus : n); i++) {
    unsigned idx = o->ngpus ? o->gpus[i] : (unsigned)i;
    if (idx >= n)
      return mg_errf(err, err_len, -EINVAL,
                     "gpus: device %u does not exist (accepted: 0..%u, this "
                     "machine has %u)",
                     idx, n - 1, n);
    for (size_t j = 0; j < i && o->ngpus; j++)
      if (o->gpus[j] == idx)
        return mg_errf(err, err_len, -EINVAL, "gpus: device %u given twice",
                       idx);
    mg_gpu_device d;
    if ((rc = mg_gpu_device_info(g, idx, &d, e, sizeof e)) < 0)
      return mg_errf(err, err_len, rc, "gpus: %s", e);
    total += d.total_bytes;
    if (o->ngpus)
      c->gpus[i] = idx;
  }
  c->ngpus = o->ngpus;
  c->gpu_limit_bytes = o->gpu_limit_bytes;
  if (!c->gpu_limit_bytes && o->gpu_limit_fraction > 0)
    c->gpu_limit_bytes = (uint64_t)(o->gpu_limit_fraction * (double)total);
  if (c->gpu_limit_bytes > total) {
    char a[32], b[32];
    return mg_errf(err, err_len, MG_ELIMIT,
                   "gpu_limit: %s exceeds the memory of the devices it may "
                   "use, %s",
                   mg_size_format(c->gpu_limit_bytes, a, sizeof a),
                   mg_size_format(total, b, sizeof b));
  }
  c->gpu_watch = 1;
  c->gpu_mps = o->gpu_mps;
  return 0;
}

void mg__sup_gpu_sample(mg_child *c, mg_child_sample *s) {
  s->has_gpu = 0;
  s->gpu_limit_bytes = c->gpu_limit_bytes;
  mg_sup *sup = c->sup;
  if (!sup->gpu || c->pid <= 0)
    return;
  pid_t tree[GPU__TREE_MAX];
  size_t n = 0;
  mg_proc_tree(sup->paths.proc_root, c->pid, tree, GPU__TREE_MAX, &n);
  if (n == 0) {
    tree[0] = c->pid;
    n = 1;
  }
  char e[512];
  uint64_t used = 0;
  int rc = mg_gpu_pids_usage(sup->gpu, tree, n, c->ngpus ? c->gpus : NULL,
                             c->ngpus, &used, NULL, NULL, e, sizeof e);
  if (rc < 0) {
    if (!c->gpu_failed) {
      c->gpu_failed = 1;
      mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_STR("error", e)};
      mg_log(sup->log, MG_LOG_WARN, "gpu_sample_failed", f, 2);
    }
    return;
  }
  s->has_gpu = 1;
  s->gpu_bytes = used;
}

void mg__sup_gpu_check(mg_child *c, const mg_child_sample *s) {
  if (!s->has_gpu || !c->gpu_limit_bytes || c->pid <= 0)
    return;
  if (c->warn_at > 0) {
    uint64_t line = (uint64_t)(c->warn_at * (double)c->gpu_limit_bytes);
    if (s->gpu_bytes >= line && c->gpu_warn_armed) {
      c->gpu_warn_armed = 0;
      char u[32], l[32];
      mg_log_field f[] = {
          MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
          MG_LF_STR("gpu", mg_size_format(s->gpu_bytes, u, sizeof u)),
          MG_LF_STR("gpu_limit",
                    mg_size_format(c->gpu_limit_bytes, l, sizeof l)),
          MG_LF_DBL("warn_at", c->warn_at)};
      mg_log(c->sup->log, MG_LOG_WARN, "child_gpu_warn", f, 5);
      mg_threshold_event t = {0, line, c->warn_at, s->gpu_bytes, 1, 0, "gpu", 0,
                              0, 0,    0};
      MG__SUP_EMIT(c, on_threshold, &t);
    } else if (s->gpu_bytes < line) {
      c->gpu_warn_armed = 1;
    }
  }
  /* the spawn's thresholds given as shares ("80%") apply to gpu_limit
   * too (sizes are host sizes: they do not) */
  for (int i = 1; i <= MG_SUP_THRESHOLDS_MAX && c->pid > 0; i++) {
    const mg__sup_th *th = &c->th[i];
    if (!th->used || th->t.bytes || th->t.swap || !(th->t.fraction > 0))
      continue;
    uint64_t lv = (uint64_t)(th->t.fraction * (double)c->gpu_limit_bytes);
    if (s->gpu_bytes >= lv && c->gpu_th_armed[i]) {
      c->gpu_th_armed[i] = 0;
      mg_threshold_event t = {
          th->id, lv, th->t.fraction, s->gpu_bytes, 1, 0, "gpu", 0, 0, 0, 0};
      MG__SUP_EMIT(c, on_threshold, &t);
    } else if (s->gpu_bytes < lv) {
      c->gpu_th_armed[i] = 1;
    }
  }
  if (s->gpu_bytes < c->gpu_limit_bytes || c->gpu_over || c->pid <= 0)
    return;
  if (!c->released && c->ev.on_gpu_limit &&
      c->ev.on_gpu_limit(c, s, c->ev.ud) == 1)
    return; /* the owner handles it */
  if (c->pid <= 0 || c->term_sent)
    return;
  c->gpu_over = 1;
  char u[32], l[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
      MG_LF_STR("gpu", mg_size_format(s->gpu_bytes, u, sizeof u)),
      MG_LF_STR("gpu_limit", mg_size_format(c->gpu_limit_bytes, l, sizeof l)),
      MG_LF_UINT("grace_ms", c->grace_ms)};
  mg_log(c->sup->log, MG_LOG_WARN, "child_gpu_limit", f, 5);
  c->gpu_peak_bytes = s->gpu_bytes;
  mg_child_kill(c, c->grace_ms ? SIGTERM : SIGKILL, c->grace_ms);
}

size_t mg__sup_gpu_env(const mg_child *c, char *buf, size_t len,
                       const char **kv, size_t max) {
  size_t k = 0, used = 0;
  if (!c->gpu_watch || max < 2 || len == 0)
    return 0;
  if (c->ngpus) {
    int n = snprintf(buf, len, "CUDA_VISIBLE_DEVICES=");
    for (size_t i = 0; i < c->ngpus && n > 0 && (size_t)n < len; i++)
      n += snprintf(buf + n, len - (size_t)n, "%s%u", i ? "," : "", c->gpus[i]);
    if (n > 0 && (size_t)n < len) {
      kv[k++] = buf;
      used = (size_t)n + 1;
    }
  }
  if (c->gpu_mps && c->gpu_limit_bytes && used < len) {
    char *p = buf + used;
    size_t room = len - used;
    unsigned long long mib = c->gpu_limit_bytes >> 20;
    size_t ndev = c->ngpus ? c->ngpus : 1;
    int n = snprintf(p, room, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=");
    for (size_t i = 0; i < ndev && n > 0 && (size_t)n < room; i++)
      n += snprintf(p + n, room - (size_t)n, "%s%zu=%lluM", i ? "," : "", i,
                    mib);
    if (n > 0 && (size_t)n < room && k < max)
      kv[k++] = p;
  }
  return k;
}
