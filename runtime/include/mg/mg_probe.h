/* mg_probe.h — everything this machine offers, as one JSON document
 * (core layer; uses jansson). `mgrun --probe --json` prints it and the
 * Lua `mg.probe()` converts the same document to a table, so the two can
 * never disagree.
 *
 * Shape (bytes everywhere; null where unknown):
 * {
 *   "version": "0.1.0",
 *   "memory": { total, available, free, buffers, cached, swap_total,
 *               swap_free, cgroup_limit, effective_total,
 *               effective_available, effective_source } ,
 *   "cgroup": { "version": "v1"|"v2"|"none", "v2_mounted", "mount",
 *               "path", "dir", "limit", "limit_dir", "writable",
 *               "writable_reason" },
 *   "rlimit": { "preferred": "data"|"as"|null,
 *               "data": { "enforced", "reason" },
 *               "as":   { "enforced", "reason" } },
 *   "pressure": { "some": {avg10, avg60, avg300, total},
 *                 "full": {...} } | null,
 *   "pressure_reason": "…" (only when pressure is null),
 *   "notify": { "groups": "…what the cgroup version notifies…" | null,
 *               "psi_trigger": { window_ms, stall_ms, asked_window_ms,
 *                                fallback: "why" | null } | null,
 *               "psi_trigger_reason": "…" (only when that is null) },
 *   "gpus": [ { index, uuid, name, total, used, free, integrated } ] | null,
 *   "gpu_reason": "…" (only when gpus is null: no NVML, no device),
 *   "kernel": "6.1.0-…", "arch": "x86_64"
 * }
 */
#ifndef MG_PROBE_H
#define MG_PROBE_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mg/mg_cgroup.h"
#include "mg/mg_meminfo.h"
#include "mg/mg_paths.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Effective memory: min(MemTotal, the cgroup limit of this process). */
typedef struct mg_effmem {
  uint64_t total_bytes;       /* MemTotal or the cgroup limit */
  uint64_t available_bytes;   /* min(MemAvailable, limit - usage) */
  int from_cgroup;            /* 1 when the cgroup limit applied */
  char source[PATH_MAX + 64]; /* "meminfo" or "cgroup v1 <dir>" */
} mg_effmem;

/* Compute effective memory from already-read meminfo and cgroup info
 * (usage of the limiting group is read from disk under `paths`). */
MG_API int mg_effective_memory(const mg_paths *paths, const mg_meminfo *mi,
                               const mg_cgroup_info *cg, mg_effmem *out,
                               char *err, size_t err_len);

/* Convenience: read meminfo + cgroup and compute. */
MG_API int mg_effective_memory_read(const mg_paths *paths, mg_effmem *out,
                                    char *err, size_t err_len);

/* Options for mg_probe_json. */
typedef struct mg_probe_opts {
  mg_paths paths;
  int skip_writable; /* 1: do not try to create a cgroup (report null) */
  int skip_rlimit;   /* 1: do not fork the rlimit probe (report null) */
  const char *cgroup_parent; /* where to test writability (NULL = own);
                                checked first (mg_cgroup_check_parent: a
                                missing, non-directory or foreign path
                                fails the probe with its code) */
} mg_probe_opts;

/* Build the probe document. *out is a new jansson json_t* (declared void*
 * here so this header does not need jansson.h); the caller owns it and
 * releases it with json_decref. */
MG_API int mg_probe_json(const mg_probe_opts *opts, void **out, char *err,
                         size_t err_len);

/* Print the document from mg_probe_json to `f`: for people (one section
 * per line: memory, effective, cgroup, rlimit, pressure) or as indented
 * JSON. 0, or -EIO / -ENOMEM. */
MG_API int mg_probe_print(const void *doc, int as_json, FILE *f);

/* Release the document (json_decref). NULL is a no-op. */
MG_API void mg_probe_free(void *doc);

#ifdef __cplusplus
}
#endif
#endif
