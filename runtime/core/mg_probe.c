/* mg_probe.c — effective memory (MemTotal vs the cgroup limit) and the
 * probe document that `mgrun --probe --json` prints and mg.probe() returns
 * (core layer; jansson).
 */
#include "mg/mg_probe.h"
#include "mg/mg_gpu.h"
#include "mg/mg_psi.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg__fileio.h"

/* ------------------------------------------------------ effective memory */

/* Strict unsigned decimal with optional trailing whitespace. */
static int pr__parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return MG_EPARSE;
    v = v * 10 + d;
  }
  if (p == s)
    return MG_EPARSE;
  while (*p == '\n' || *p == ' ' || *p == '\t')
    p++;
  if (*p)
    return MG_EPARSE;
  *out = v;
  return 0;
}

/* Usage of the cgroup at `dir`: memory.usage_in_bytes (v1) or
 * memory.current (v2). */
static int pr__read_usage(mg_cgroup_version v, const char *dir, uint64_t *usage,
                          char *err, size_t err_len) {
  const char *file =
      v == MG_CGROUP_V1 ? "memory.usage_in_bytes" : "memory.current";
  char path[PATH_MAX + 32], buf[128];
  int n = snprintf(path, sizeof path, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= sizeof path)
    return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s", dir);
  int rc = mg__read_file(path, buf, sizeof buf, NULL);
  if (rc < 0 && rc != -EFBIG)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (rc < 0 || pr__parse_u64(buf, usage) < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.64s\" (expected a number of bytes)", path,
                   buf);
  return 0;
}

int mg_effective_memory(const mg_paths *paths, const mg_meminfo *mi,
                        const mg_cgroup_info *cg, mg_effmem *out, char *err,
                        size_t err_len) {
  (void)paths; /* cg's directories already include paths->fs_root */
  if (!mi || !out)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_effective_memory: meminfo and out are required");
  mg_effmem e;
  memset(&e, 0, sizeof e);
  e.total_bytes = mi->total_bytes;
  e.available_bytes = mi->available_bytes;
  snprintf(e.source, sizeof e.source, "meminfo");
  if (cg && (cg->version == MG_CGROUP_V1 || cg->version == MG_CGROUP_V2) &&
      cg->has_limit && cg->limit_bytes < mi->total_bytes) {
    uint64_t usage = 0;
    int rc = pr__read_usage(cg->version, cg->limit_dir, &usage, err, err_len);
    if (rc < 0)
      return rc;
    uint64_t headroom = usage < cg->limit_bytes ? cg->limit_bytes - usage : 0;
    e.total_bytes = cg->limit_bytes;
    if (headroom < e.available_bytes)
      e.available_bytes = headroom;
    e.from_cgroup = 1;
    snprintf(e.source, sizeof e.source, "cgroup %s %s",
             mg_cgroup_version_name(cg->version), cg->limit_dir);
  }
  *out = e;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

int mg_effective_memory_read(const mg_paths *paths, mg_effmem *out, char *err,
                             size_t err_len) {
  if (!out)
    return mg_errf(err, err_len, -EINVAL, "mg_effective_memory_read: no out");
  mg_meminfo mi;
  int rc = mg_meminfo_read(paths ? paths->proc_root : NULL, &mi, err, err_len);
  if (rc < 0)
    return rc;
  mg_cgroup_info *cg = malloc(sizeof *cg);
  if (!cg)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  rc = mg_cgroup_detect(paths, cg, err, err_len);
  if (rc == 0)
    rc = mg_effective_memory(paths, &mi, cg, out, err, err_len);
  free(cg);
  return rc;
}

/* ------------------------------------------------------------ document */

/* Builder state: any failed allocation turns ok off. */
typedef struct pr__b {
  int ok;
} pr__b;

static void pr__set(pr__b *b, json_t *obj, const char *key, json_t *v) {
  if (!obj) {
    json_decref(v);
    b->ok = 0;
  } else if (!v || json_object_set_new(obj, key, v) < 0) {
    b->ok = 0; /* set_new releases v on failure */
  }
}

/* A byte count; null when it does not fit a JSON integer (never in
 * practice: MG_SIZE_MAX). */
static json_t *pr__bytes(uint64_t v) {
  return v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v) : json_null();
}

/* A string, null when empty or NULL. Bytes that are not valid UTF-8 (a
 * path can hold anything) become '?'. */
static json_t *pr__str(const char *s) {
  if (!s || !*s)
    return json_null();
  json_t *v = json_string(s);
  if (v)
    return v;
  char *copy = strdup(s);
  if (!copy)
    return NULL;
  for (char *p = copy; *p; p++)
    if ((unsigned char)*p >= 0x80)
      *p = '?';
  v = json_string(copy);
  free(copy);
  return v;
}

/* The cgroup's limit, null without one. */
static json_t *pr__limit(const mg_cgroup_info *cg) {
  return cg->has_limit ? pr__bytes(cg->limit_bytes) : json_null();
}

static json_t *pr__memory(pr__b *b, const mg_meminfo *mi,
                          const mg_cgroup_info *cg, const mg_effmem *eff) {
  static const struct {
    const char *key;
    size_t off;
  } mi_fields[] = {
      {"total", offsetof(mg_meminfo, total_bytes)},
      {"available", offsetof(mg_meminfo, available_bytes)},
      {"free", offsetof(mg_meminfo, free_bytes)},
      {"buffers", offsetof(mg_meminfo, buffers_bytes)},
      {"cached", offsetof(mg_meminfo, cached_bytes)},
      {"swap_total", offsetof(mg_meminfo, swap_total_bytes)},
      {"swap_free", offsetof(mg_meminfo, swap_free_bytes)},
  };
  json_t *o = json_object();
  for (size_t i = 0; i < sizeof mi_fields / sizeof mi_fields[0]; i++) {
    const uint64_t *v = (const uint64_t *)((const char *)mi + mi_fields[i].off);
    pr__set(b, o, mi_fields[i].key, pr__bytes(*v));
  }
  pr__set(b, o, "cgroup_limit", pr__limit(cg));
  pr__set(b, o, "effective_total", pr__bytes(eff->total_bytes));
  pr__set(b, o, "effective_available", pr__bytes(eff->available_bytes));
  pr__set(b, o, "effective_source", pr__str(eff->source));
  return o;
}

static json_t *pr__cgroup(pr__b *b, const mg_probe_opts *opts,
                          const mg_cgroup_info *cg) {
  json_t *o = json_object();
  pr__set(b, o, "version", json_string(mg_cgroup_version_name(cg->version)));
  pr__set(b, o, "v2_mounted", json_boolean(cg->v2_mounted));
  pr__set(b, o, "mount", pr__str(cg->mount));
  pr__set(b, o, "path", pr__str(cg->path));
  pr__set(b, o, "dir", pr__str(cg->dir));
  pr__set(b, o, "limit", pr__limit(cg));
  pr__set(b, o, "limit_dir",
          cg->has_limit ? pr__str(cg->limit_dir) : json_null());
  if (opts->skip_writable) {
    pr__set(b, o, "writable", json_null());
    pr__set(b, o, "writable_reason", json_null());
  } else {
    char reason[PATH_MAX + 512];
    reason[0] = '\0';
    int w = mg_cgroup_probe_writable(cg, opts->cgroup_parent, reason,
                                     sizeof reason);
    pr__set(b, o, "writable", json_boolean(w == 1));
    pr__set(b, o, "writable_reason", pr__str(reason));
  }
  return o;
}

static json_t *pr__rlimit_one(pr__b *b, int skip, int enforced,
                              const char *reason) {
  json_t *o = json_object();
  pr__set(b, o, "enforced", skip ? json_null() : json_boolean(enforced));
  pr__set(b, o, "reason", skip ? json_null() : pr__str(reason));
  return o;
}

static json_t *pr__rlimit(pr__b *b, const mg_probe_opts *opts) {
  json_t *o = json_object();
  mg_rlimit_support s;
  memset(&s, 0, sizeof s);
  int skip = opts->skip_rlimit;
  json_t *preferred = json_null();
  if (!skip) {
    mg_rlimit_probe(&s); /* a failed fork leaves reasons that say so */
    mg_rlimit_resource r;
    if (mg_rlimit_preferred(&s, &r, NULL, 0) == 0)
      preferred = json_string(mg_rlimit_name(r));
  }
  pr__set(b, o, "preferred", preferred);
  pr__set(b, o, "data",
          pr__rlimit_one(b, skip, s.data_enforced, s.data_reason));
  pr__set(b, o, "as", pr__rlimit_one(b, skip, s.as_enforced, s.as_reason));
  return o;
}

static json_t *pr__psi_line(pr__b *b, const mg_psi_line *l) {
  json_t *o = json_object();
  pr__set(b, o, "avg10", json_real(l->avg10));
  pr__set(b, o, "avg60", json_real(l->avg60));
  pr__set(b, o, "avg300", json_real(l->avg300));
  pr__set(b, o, "total", pr__bytes(l->total_us));
  return o;
}

/* "pressure" (and "pressure_reason" when PSI is unavailable). */
static void pr__pressure(pr__b *b, json_t *doc, const mg_paths *paths) {
  mg_psi psi;
  char reason[PATH_MAX + 256];
  if (mg_psi_read(paths->proc_root, &psi, reason, sizeof reason) < 0) {
    pr__set(b, doc, "pressure", json_null());
    pr__set(b, doc, "pressure_reason", pr__str(reason));
    return;
  }
  json_t *o = json_object();
  pr__set(b, o, "some", pr__psi_line(b, &psi.some));
  pr__set(b, o, "full",
          psi.has_full ? pr__psi_line(b, &psi.full) : json_null());
  pr__set(b, doc, "pressure", o);
}

/* "notify": what the kernel can tell instead of being sampled — the
 * group notifications of this cgroup version and the shortest PSI
 * trigger window that arms (500 ms is asked; without CAP_SYS_RESOURCE the
 * kernel refuses windows that are not a multiple of 2 s). */
static json_t *pr__notify(pr__b *b, const mg_paths *paths,
                          const mg_cgroup_info *cg) {
  json_t *o = json_object();
  char path[PATH_MAX + 64], reason[1024];
  const char *groups = NULL;
  if (cg->version == MG_CGROUP_V1) {
    snprintf(path, sizeof path, "%s/cgroup.event_control", cg->dir);
    if (access(path, W_OK) == 0)
      groups = "cgroup v1 eventfds (cgroup.event_control): usage thresholds, "
               "OOM, pressure levels";
  } else if (cg->version == MG_CGROUP_V2) {
    groups = "cgroup v2 memory.events (poll) and memory.pressure PSI "
             "triggers; thresholds below memory.high are sampled";
  }
  pr__set(b, o, "groups", groups ? pr__str(groups) : json_null());
  snprintf(path, sizeof path, "%s/pressure/memory",
           paths->proc_root ? paths->proc_root : "/proc");
  mg_psi_trigger t;
  if (mg_psi_trigger_arm(path, 0, 150000, 500000, &t, reason, sizeof reason) ==
      0) {
    close(t.fd);
    json_t *p = json_object();
    pr__set(b, p, "window_ms", json_integer((json_int_t)(t.window_us / 1000)));
    pr__set(b, p, "stall_ms", json_integer((json_int_t)(t.stall_us / 1000)));
    pr__set(b, p, "asked_window_ms", json_integer(500));
    pr__set(b, p, "fallback", t.fell_back ? pr__str(t.why) : json_null());
    pr__set(b, o, "psi_trigger", p);
  } else {
    pr__set(b, o, "psi_trigger", json_null());
    pr__set(b, o, "psi_trigger_reason", pr__str(reason));
  }
  return o;
}

/* "gpus": [ {index, uuid, name, total, used, free, integrated} ] | null,
 * with "gpu_reason" when null (no NVML, no device, an NVML error). */
static void pr__gpus(pr__b *b, json_t *doc, const mg_paths *paths) {
  mg_gpu *g = NULL;
  char reason[1024];
  unsigned n = 0;
  int rc = mg_gpu_open(NULL, paths, &g, reason, sizeof reason);
  if (rc == 0)
    rc = mg_gpu_count(g, &n, reason, sizeof reason);
  if (rc == 0 && n == 0) {
    snprintf(reason, sizeof reason, "NVML (%s) found no GPU",
             mg_gpu_library(g));
    rc = -ENODEV;
  }
  json_t *a = rc == 0 ? json_array() : NULL;
  for (unsigned i = 0; rc == 0 && i < n; i++) {
    mg_gpu_device d;
    if ((rc = mg_gpu_device_info(g, i, &d, reason, sizeof reason)) < 0)
      break;
    json_t *o = json_object();
    pr__set(b, o, "index", json_integer(i));
    pr__set(b, o, "uuid", pr__str(d.uuid));
    pr__set(b, o, "name", pr__str(d.name));
    pr__set(b, o, "total", pr__bytes(d.total_bytes));
    pr__set(b, o, "used", pr__bytes(d.used_bytes));
    pr__set(b, o, "free", pr__bytes(d.free_bytes));
    pr__set(b, o, "integrated", json_boolean(d.integrated));
    if (json_array_append_new(a, o) < 0)
      b->ok = 0;
  }
  mg_gpu_close(g);
  if (rc < 0) {
    json_decref(a);
    pr__set(b, doc, "gpus", json_null());
    pr__set(b, doc, "gpu_reason", pr__str(reason));
    return;
  }
  pr__set(b, doc, "gpus", a);
}

int mg_probe_json(const mg_probe_opts *opts, void **out, char *err,
                  size_t err_len) {
  static const mg_probe_opts defaults;
  if (!out)
    return mg_errf(err, err_len, -EINVAL, "mg_probe_json: out is NULL");
  *out = NULL;
  if (!opts)
    opts = &defaults;
  mg_meminfo mi;
  int rc = mg_meminfo_read(opts->paths.proc_root, &mi, err, err_len);
  if (rc < 0)
    return rc;
  mg_cgroup_info *cg = malloc(sizeof *cg);
  if (!cg)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  mg_effmem eff;
  rc = mg_cgroup_detect(&opts->paths, cg, err, err_len);
  if (rc == 0 && opts->cgroup_parent && cg->version != MG_CGROUP_NONE)
    rc = mg_cgroup_check_parent(cg, "cgroup_parent", opts->cgroup_parent, err,
                                err_len); /* before a probe group is made */
  if (rc == 0)
    rc = mg_effective_memory(&opts->paths, &mi, cg, &eff, err, err_len);
  if (rc < 0) {
    free(cg);
    return rc;
  }

  pr__b b = {1};
  json_t *doc = json_object();
  pr__set(&b, doc, "version", json_string(MG_VERSION));
  pr__set(&b, doc, "memory", pr__memory(&b, &mi, cg, &eff));
  pr__set(&b, doc, "cgroup", pr__cgroup(&b, opts, cg));
  pr__set(&b, doc, "rlimit", pr__rlimit(&b, opts));
  pr__pressure(&b, doc, &opts->paths);
  pr__set(&b, doc, "notify", pr__notify(&b, &opts->paths, cg));
  pr__gpus(&b, doc, &opts->paths);
  struct utsname u;
  int have_uname = uname(&u) == 0;
  pr__set(&b, doc, "kernel", have_uname ? pr__str(u.release) : json_null());
  pr__set(&b, doc, "arch", have_uname ? pr__str(u.machine) : json_null());
  free(cg);
  if (!b.ok) {
    json_decref(doc);
    return mg_errf(err, err_len, -ENOMEM,
                   "out of memory while building the probe document");
  }
  *out = doc;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}
