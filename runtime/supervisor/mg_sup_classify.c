/* mg_sup_classify.c — why a run ended: exit code, signal, OOM kill inside
 * its cgroup, or an allocation refused at its rlimit (supervisor layer).
 *
 * oom: the run's main process died of SIGKILL and the group's oom_kill
 * counter (v2 memory.events, v1 memory.oom_control) grew during the run;
 * on a v1 kernel without that counter (< 4.13), memory.failcnt growing
 * stands in for it.
 *
 * A kill of ours (mg_child_kill, the end of a stop's grace) is `signal`.
 *
 * limit (a child with a limit and mode cgroup, data or as), for a run
 * that ended abnormally (exit code != 0, or a signal other than TERM, INT,
 * HUP), by the first rule that holds:
 *   - its usage was within MG_SUP_LIMIT_MARGIN (2 %, at least 1 MiB) of
 *     the limit: the group's peak (every mode has a group where one can
 *     be made; for data / as it stands in for VmData / VmSize) or the
 *     highest sample; whatever the signal or status (V8 dies of SIGTRAP,
 *     a C program exits 3, the kernel's OOM kill outside the group…);
 *   - its stderr tail (or stdout file) names an allocation failure
 *     (mg__sup_find_marker: "Cannot allocate memory", "bad_alloc",
 *     "Fatal process out of memory", "MemoryError", "failed to
 *     allocate", CUDA's out of memory…) — unless the usage was below 50 %
 *     of the limit and either the group's exact charge shows it (cgroup)
 *     or the text is a runtime's own heap limit (V8's "Reached heap
 *     limit", the JVM's "Java heap space": the detail says so);
 *   - data / as only: it crashed (exit code != 0, SIGABRT, SIGSEGV,
 *     SIGBUS, SIGTRAP, SIGILL) with its highest sampled VmData / VmSize at
 *     MG_SUP_LIMIT_FRACTION (50 %) of the limit or more.
 * The detail says which rule fired.
 */
#include <ctype.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "mg__sup.h"

/* Texts runtimes print when an allocation fails, lowercase: strerror
 * (ENOMEM), C++, Python, Rust, Go, glibc, llama.cpp / ggml. */
static const char *const sup__markers[] = {
    "cannot allocate memory",
    "out of memory",
    "bad_alloc",
    "memoryerror",
    "memory allocation of",
    "failed to allocate",
    "allocation failed",
    "mmap failed",
    "fatal process out of memory",
    "fatal process oom",
    "failed to reserve virtual memory",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
};

/* Texts of a runtime that hit a heap limit of its own (V8's
 * --max-old-space-size, the JVM's -Xmx), not an allocation the kernel
 * refused: with one of them the output rule does not blame mgrun's limit. */
static const char *const sup__own_limits[] = {
    "reached heap limit",
    "javascript heap out of memory",
    "java heap space",
};

static const char *sup__find(const char *const *list, size_t n,
                             const char *text, size_t len) {
  for (size_t m = 0; m < n; m++) {
    const char *w = list[m];
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= len; i++) {
      size_t j = 0;
      while (j < wl && tolower((unsigned char)text[i + j]) == w[j])
        j++;
      if (j == wl)
        return w;
    }
  }
  return NULL;
}

const char *mg__sup_find_own_limit(const char *text, size_t len) {
  return sup__find(sup__own_limits,
                   sizeof sup__own_limits / sizeof sup__own_limits[0], text,
                   len);
}

const char *mg__sup_find_marker(const char *text, size_t len) {
  return sup__find(sup__markers, sizeof sup__markers / sizeof sup__markers[0],
                   text, len);
}

const char *mg__sup_signame(int sig, char *buf, size_t len) {
  const char *name = mg_signal_name(sig);
  if (name)
    snprintf(buf, len, "SIG%s", name);
  else
    snprintf(buf, len, "signal");
  return buf;
}

static const char *sup__rl_name(mg_enforce e) {
  return e == MG_ENFORCE_AS ? "RLIMIT_AS" : "RLIMIT_DATA";
}

static const char *sup__used_name(mg_enforce e) {
  return e == MG_ENFORCE_AS ? "VmSize" : "VmData";
}

/* "exit code 3" / "SIGSEGV (11)" */
static void sup__how(const mg_child_exit *e, char *buf, size_t len) {
  char name[16];
  if (e->signal)
    snprintf(buf, len, "killed by %s (%d)",
             mg__sup_signame(e->signal, name, sizeof name), e->signal);
  else
    snprintf(buf, len, "exit code %d", e->code);
}

void mg__sup_classify(const mg__sup_run *r, mg_child_exit *e) {
  char how[64], lim[32], peak[32], used[32];
  e->code = -1;
  e->signal = 0;
  e->reason = MG_EXIT_EXIT;
  e->detail[0] = '\0';
  uint64_t pk = r->max_used_bytes; /* the group's peak: exact, every mode */
  if (r->has_cgroup && r->cg_end_ok && r->cg_end.has_peak)
    pk = r->cg_end.peak_bytes;
  else if (r->enforce == MG_ENFORCE_NONE && r->last_hwm_bytes > pk)
    pk = r->last_hwm_bytes;
  if (pk == 0) /* died before its first sample: its peak RSS at least */
    pk = r->maxrss_bytes;
  e->peak_bytes = pk;
  mg_size_format(r->limit_bytes, lim, sizeof lim);
  mg_size_format(pk, peak, sizeof peak);
  mg_size_format(r->max_used_bytes, used, sizeof used);

  if (r->reaped_elsewhere) {
    snprintf(e->detail, sizeof e->detail,
             "exit status unknown: the process was reaped outside the "
             "supervisor (a waitpid(-1) elsewhere in this program?)");
    return;
  }
  if (WIFEXITED(r->status))
    e->code = WEXITSTATUS(r->status);
  else if (WIFSIGNALED(r->status))
    e->signal = WTERMSIG(r->status);
  sup__how(e, how, sizeof how);

  /* Stopped by the supervisor for its GPU memory. */
  if (r->gpu_over) {
    char g[32], gl[32];
    e->reason = MG_EXIT_GPU_LIMIT;
    snprintf(e->detail, sizeof e->detail,
             "%s: stopped by the supervisor, its GPU memory %s crossed its "
             "gpu_limit %s",
             how, mg_size_format(r->gpu_peak_bytes, g, sizeof g),
             mg_size_format(r->gpu_limit_bytes, gl, sizeof gl));
    return;
  }

  /* OOM kill inside the run's own group. */
  uint64_t k0 = r->cg_start.oom_kills, k1 = r->cg_end.oom_kills;
  uint64_t f0 = r->cg_start.oom_events, f1 = r->cg_end.oom_events;
  int have_cg = r->has_cgroup && r->cg_end_ok;
  int oom_kill = have_cg && k1 > k0;
  int fail_grew = have_cg && !r->has_oom_kill && f1 > f0;
  if (e->signal == SIGKILL && (oom_kill || fail_grew)) {
    e->reason = MG_EXIT_OOM;
    if (oom_kill)
      snprintf(e->detail, sizeof e->detail,
               "killed by the OOM killer: oom_kill %" PRIu64 " -> %" PRIu64
               " in %s (cgroup %s limit %s, peak %s)",
               k0, k1, r->cgroup_dir, mg_cgroup_version_name(r->cgroup_version),
               lim, peak);
    else
      snprintf(e->detail, sizeof e->detail,
               "killed by the OOM killer: memory.failcnt %" PRIu64
               " -> %" PRIu64 " in %s and SIGKILL (this kernel has no "
               "oom_kill counter; cgroup limit %s, peak %s)",
               f0, f1, r->cgroup_dir, lim, peak);
    return;
  }

  /* A kill of ours (a policy's kill, the end of a grace period) is a
   * signal, whatever the usage was. */
  int enforcing = r->limit_bytes > 0 && r->enforce != MG_ENFORCE_NONE;
  int abnormal =
      !r->killed_by_us && ((!e->signal && e->code != 0) ||
                           (e->signal && e->signal != SIGTERM &&
                            e->signal != SIGINT && e->signal != SIGHUP));
  int rl_mode = r->enforce == MG_ENFORCE_DATA || r->enforce == MG_ENFORCE_AS;

  /* An allocation refused: the run says so in its output. */
  /* …unless the usage was far below the limit and either the group's
   * charge (exact, for cgroup) says so or the text is a runtime's own heap
   * limit */
  uint64_t usage = r->max_used_bytes;
  if (have_cg && r->cg_end.has_peak && r->cg_end.peak_bytes > usage)
    usage = r->cg_end.peak_bytes;
  int far_below = usage > 0 && (double)usage < MG_SUP_LIMIT_FRACTION *
                                                   (double)r->limit_bytes;
  /* the group's charge is what a cgroup limit counts: exact; a runtime's
   * heap limit of its own is no refusal unless it was set near ours (V8
   * sizes its heap from the cgroup limit) */
  int cleared =
      far_below && (r->own_limit || (have_cg && r->cg_end.has_peak &&
                                     r->enforce == MG_ENFORCE_CGROUP));
  if (enforcing && abnormal && r->output_marker && !cleared) {
    e->reason = MG_EXIT_LIMIT;
    snprintf(e->detail, sizeof e->detail,
             "%s under %s %s and its output (%s) says \"%s\"; peak %s", how,
             rl_mode ? sup__rl_name(r->enforce) : "the cgroup limit", lim,
             r->output_file ? r->output_file : "?", r->output_marker, peak);
    goto note;
  }

  /* Died at its limit: whatever the signal or status, a death within the
   * margin of the limit is the limit's doing. The usage is the group's
   * peak (exact, also for a death before the first sample; for data / as
   * it stands in for VmData / VmSize, which a dead process no longer
   * has) or the highest sample. */
  uint64_t margin = (uint64_t)((double)r->limit_bytes * MG_SUP_LIMIT_MARGIN);
  if (margin < MG_SUP_LIMIT_MARGIN_MIN)
    margin = MG_SUP_LIMIT_MARGIN_MIN;
  if (enforcing && abnormal && usage + margin >= r->limit_bytes) {
    char us[32];
    e->reason = MG_EXIT_LIMIT;
    snprintf(e->detail, sizeof e->detail,
             "%s with its usage at %s (%s) = %.1f%% of its %s %s: within "
             "%.0f%% (or 1 MiB) of the limit",
             how, mg_size_format(usage, us, sizeof us),
             usage == r->max_used_bytes ? "the highest sample"
                                        : "the group's peak",
             (double)usage * 100 / (double)r->limit_bytes,
             rl_mode ? sup__rl_name(r->enforce) : "cgroup limit", lim,
             MG_SUP_LIMIT_MARGIN * 100);
    goto note;
  }

  /* An allocation refused at the rlimit, by the sampled usage. */
  int crash = (!e->signal && e->code != 0) || e->signal == SIGABRT ||
              e->signal == SIGSEGV || e->signal == SIGBUS ||
              e->signal == SIGTRAP || e->signal == SIGILL;
  if (rl_mode && crash && !r->killed_by_us && r->limit_bytes > 0) {
    double frac = (double)r->max_used_bytes / (double)r->limit_bytes;
    if (frac >= MG_SUP_LIMIT_FRACTION) {
      e->reason = MG_EXIT_LIMIT;
      snprintf(e->detail, sizeof e->detail,
               "%s with sampled %s peak %s = %.0f%% of %s %s (heuristic: an "
               "abnormal end at >= %.0f%% of the limit)",
               how, sup__used_name(r->enforce), used, frac * 100,
               sup__rl_name(r->enforce), lim, MG_SUP_LIMIT_FRACTION * 100);
      goto note;
    }
  }

  if (e->signal) {
    e->reason = MG_EXIT_SIGNAL;
    snprintf(e->detail, sizeof e->detail, "%s%s", how,
             r->killed_by_us == 2   ? ", sent by the supervisor (a kill)"
             : r->killed_by_us == 1 ? ", sent by the supervisor after the "
                                      "grace period"
                                    : "");
  } else {
    snprintf(e->detail, sizeof e->detail, "exited with code %d", e->code);
  }
note:
  if (r->own_limit && e->reason != MG_EXIT_LIMIT && r->output_marker) {
    size_t n = strlen(e->detail);
    snprintf(e->detail + n, sizeof e->detail - n,
             "; its output names a heap limit of its own (\"%s\"), not "
             "mgrun's",
             r->own_limit);
  }
  if (oom_kill) {
    size_t n = strlen(e->detail);
    snprintf(e->detail + n, sizeof e->detail - n,
             "; oom_kill %" PRIu64 " -> %" PRIu64
             " in %s: another process of the group was OOM-killed",
             k0, k1, r->cgroup_dir);
  }
}
