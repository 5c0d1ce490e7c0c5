/* mg_cgroup.c — child groups of the cgroup memory controller (core layer):
 * names, the writability probe, create, limits, counters, kill, remove,
 * and the stale groups of dead earlier runs. Detection is in
 * mg_cgroup_detect.c.
 */
#include "mg/mg_cgroup.h"
#include "mg/mg_proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mg/mg_error.h"
#include "mg/mg_name.h"
#include "mg__cgroup.h"
#include "mg__fileio.h"

#define CG__PROBE_LIMIT_BYTES (UINT64_C(64) << 20)
#define CG__REMOVE_RETRY_MS 1000
#define CG__POLL_MS 10

struct mg_cgroup {
  mg_cgroup_version version;
  char dir[PATH_MAX];
};

/* ------------------------------------------------------------- helpers */

static void cg__sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static int64_t cg__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write `text` to an existing control file. */
int mg__cg_write(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t len = strlen(text);
  ssize_t n;
  do {
    n = write(fd, text, len);
  } while (n < 0 && errno == EINTR);
  int rc = n < 0 ? -errno : ((size_t)n != len ? -EIO : 0);
  if (close(fd) < 0 && rc == 0 && errno != EINTR)
    rc = -errno;
  return rc;
}

static int cg__exists(const char *path) {
  return access(path, F_OK) == 0;
}

/* Find "key N" among the lines of `text`: 1 found, 0 absent, MG_EPARSE
 * when the key is there but N is not a number. */
static int cg__kv_get(const char *text, const char *key, uint64_t *out) {
  size_t kl = strlen(key);
  mg__lines it = mg__lines_start(text);
  while (mg__lines_next(&it)) {
    const char *p = it.line;
    size_t n = (size_t)(it.eol - p);
    if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == ' ') {
      char num[32];
      size_t vl = n - kl - 1;
      if (vl == 0 || vl >= sizeof num)
        return MG_EPARSE;
      memcpy(num, p + kl + 1, vl);
      num[vl] = '\0';
      return mg__cg_parse_u64(num, out) < 0 ? MG_EPARSE : 1;
    }
  }
  return 0;
}

/* -------------------------------------------------------- names, probe */

int mg_cgroup_validate_name(const char *name, char *err, size_t err_len) {
  return mg_name_check("cgroup name", name, name ? strlen(name) : 0, err,
                       err_len);
}

/* v2: make sure children of `parent` get the memory controller (writing
 * "+memory" to its cgroup.subtree_control when missing). */
static int cg__v2_enable_memory(const char *parent, char *err, size_t err_len) {
  char path[PATH_MAX], buf[1024];
  int rc = mg__cg_join(path, sizeof path, parent, "cgroup.subtree_control");
  if (rc < 0)
    return mg_errf(err, err_len, rc, "path too long: %s", parent);
  rc = mg__read_file(path, buf, sizeof buf, NULL);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (mg__cg_list_has(buf, " \t\n", "memory"))
    return 0;
  rc = mg__cg_write(path, "+memory");
  if (rc == 0)
    return 0;
  if (rc == -EBUSY)
    return mg_errf(
        err, err_len, rc,
        "cannot enable the memory controller for groups under %s: writing "
        "\"+memory\" to %s failed (%s): the group holds processes, and "
        "cgroup v2's \"no internal processes\" rule lets only the root "
        "group enable controllers for its children while it has processes; "
        "run under a parent group without processes",
        parent, path, mg_strerror(rc));
  if (rc == -ENOENT)
    return mg_errf(err, err_len, rc,
                   "cannot enable the memory controller for groups under %s: "
                   "it is not available there (not listed in its "
                   "cgroup.controllers; the parent must delegate it)",
                   parent);
  return mg_errf(err, err_len, rc,
                 "cannot enable the memory controller for groups under %s: "
                 "writing \"+memory\" to %s: %s",
                 parent, path, mg_strerror(rc));
}

/* The hard-limit file of a version. */
static const char *cg__limit_file(mg_cgroup_version v) {
  return v == MG_CGROUP_V1 ? "memory.limit_in_bytes" : "memory.max";
}

/* rmdir, retrying while the kernel still drains the group. Returns 0
 * (also when already gone) or -errno. */
static int cg__rmdir(const char *dir) {
  int64_t deadline = cg__now_ms() + CG__REMOVE_RETRY_MS;
  for (;;) {
    if (rmdir(dir) == 0 || errno == ENOENT)
      return 0;
    int e = errno;
    if (e != EBUSY || cg__now_ms() >= deadline)
      return -e;
    cg__sleep_ms(CG__POLL_MS);
  }
}

static const char *cg__parent(const mg_cgroup_info *info,
                              const char *parent_dir) {
  return parent_dir && *parent_dir ? parent_dir : info->dir;
}

int mg_cgroup_check_parent(const mg_cgroup_info *info, const char *what,
                           const char *dir, char *err, size_t err_len) {
  if (!what)
    what = "cgroup parent";
  if (!info || !dir || !*dir)
    return mg_errf(err, err_len, -EINVAL, "%s: a directory is required", what);
  struct stat st;
  if (stat(dir, &st) < 0) {
    int rc = -errno;
    if (rc == -ENOENT)
      return mg_errf(err, err_len, rc, "%s: '%s' does not exist", what, dir);
    return mg_errf(err, err_len, rc, "%s: cannot use '%s': %s", what, dir,
                   mg_strerror(rc));
  }
  if (!S_ISDIR(st.st_mode))
    return mg_errf(err, err_len, -ENOTDIR, "%s: '%s' is not a directory", what,
                   dir);
  if (info->version != MG_CGROUP_V1 && info->version != MG_CGROUP_V2)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "%s: '%s' cannot hold memory-limited groups: no cgroup "
                   "memory controller is mounted",
                   what, dir);
  /* component-wise, after resolving links and "..": */
  char real_dir[PATH_MAX], real_mount[PATH_MAX];
  const char *d = realpath(dir, real_dir) ? real_dir : dir;
  const char *m = realpath(info->mount, real_mount) ? real_mount : info->mount;
  if (!mg__cg_under(d, m))
    return mg_errf(err, err_len, -EINVAL,
                   "%s: '%s' is not inside the cgroup %s memory hierarchy "
                   "(mounted at %s)",
                   what, dir, mg_cgroup_version_name(info->version),
                   info->mount);
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

int mg_cgroup_probe_writable(const mg_cgroup_info *info, const char *parent_dir,
                             char *reason, size_t reason_len) {
  if (!info)
    return mg_errf(reason, reason_len, -EINVAL,
                   "mg_cgroup_probe_writable: info is NULL");
  if (info->version != MG_CGROUP_V1 && info->version != MG_CGROUP_V2) {
    mg_errf(reason, reason_len, 0, "no cgroup memory controller is mounted");
    return 0;
  }
  const char *parent = cg__parent(info, parent_dir);
  char dir[PATH_MAX], name[64], file[PATH_MAX];
  snprintf(name, sizeof name, "mgrun-probe-%ld", (long)getpid());
  if (mg__cg_join(dir, sizeof dir, parent, name) < 0 ||
      mg__cg_join(file, sizeof file, dir, cg__limit_file(info->version)) < 0)
    return mg_errf(reason, reason_len, -ENAMETOOLONG, "path too long: %s",
                   parent);
  if (info->version == MG_CGROUP_V2 &&
      cg__v2_enable_memory(parent, reason, reason_len) < 0)
    return 0;
  if (mkdir(dir, 0755) < 0) {
    int e = errno;
    /* a leftover of this very pid (an earlier probe that crashed) */
    if (!(e == EEXIST && rmdir(dir) == 0 && mkdir(dir, 0755) == 0)) {
      mg_errf(reason, reason_len, 0, "cannot create a cgroup under %s: %s",
              parent, strerror(e));
      return 0;
    }
  }
  char val[32];
  snprintf(val, sizeof val, "%" PRIu64, CG__PROBE_LIMIT_BYTES);
  int rc = mg__cg_write(file, val);
  int rm = cg__rmdir(dir);
  if (rc < 0) {
    mg_errf(reason, reason_len, 0,
            "created a cgroup under %s but cannot set its memory limit "
            "(writing %s): %s",
            parent, file, mg_strerror(rc));
    return 0;
  }
  if (rm < 0) {
    mg_errf(reason, reason_len, 0,
            "created the cgroup %s but cannot remove it: %s", dir,
            mg_strerror(rm));
    return 0;
  }
  mg_errf(reason, reason_len, 0,
          "created a cgroup %s group with a 64 MiB limit under %s "
          "and removed it",
          mg_cgroup_version_name(info->version), parent);
  return 1;
}

/* --------------------------------------------------------- child groups */

int mg_cgroup_create(const mg_cgroup_info *info, const char *parent_dir,
                     const char *name, mg_cgroup **out, char *err,
                     size_t err_len) {
  if (!out || !info)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_create: info and out are required");
  *out = NULL;
  int rc = mg_cgroup_validate_name(name, err, err_len);
  if (rc < 0)
    return rc;
  if (info->version != MG_CGROUP_V1 && info->version != MG_CGROUP_V2)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "cannot create cgroup \"%s\": no cgroup memory controller "
                   "is mounted",
                   name);
  const char *parent = cg__parent(info, parent_dir);
  mg_cgroup *cg = calloc(1, sizeof *cg);
  if (!cg)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  cg->version = info->version;
  rc = mg__cg_join(cg->dir, sizeof cg->dir, parent, name);
  if (rc < 0) {
    free(cg);
    return mg_errf(err, err_len, rc, "path too long: %s/%s", parent, name);
  }
  if (cg->version == MG_CGROUP_V2) {
    rc = cg__v2_enable_memory(parent, err, err_len);
    if (rc < 0) {
      free(cg);
      return rc;
    }
  }
  if (mkdir(cg->dir, 0755) < 0) {
    rc = -errno;
    if (rc == -EEXIST)
      mg_errf(err, err_len, rc,
              "cgroup %s already exists (remove it or pick another name)",
              cg->dir);
    else
      mg_errf(err, err_len, rc, "cannot create a cgroup under %s: %s", parent,
              mg_strerror(rc));
    free(cg);
    return rc;
  }
  *out = cg;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

int mg_cgroup_open(mg_cgroup_version version, const char *dir, mg_cgroup **out,
                   char *err, size_t err_len) {
  if (!out || !dir || (version != MG_CGROUP_V1 && version != MG_CGROUP_V2))
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_open: a version (v1, v2), a directory and out "
                   "are required");
  *out = NULL;
  struct stat st;
  if (stat(dir, &st) < 0) {
    int rc = -errno;
    return mg_errf(err, err_len, rc, "cannot open cgroup %s: %s", dir,
                   mg_strerror(rc));
  }
  if (!S_ISDIR(st.st_mode))
    return mg_errf(err, err_len, -ENOTDIR,
                   "cannot open cgroup %s: not a directory", dir);
  mg_cgroup *cg = calloc(1, sizeof *cg);
  if (!cg)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  cg->version = version;
  int rc = mg__cg_copy(cg->dir, sizeof cg->dir, dir);
  if (rc < 0) {
    free(cg);
    return mg_errf(err, err_len, rc, "path too long: %s", dir);
  }
  *out = cg;
  return 0;
}

const char *mg_cgroup_dir(const mg_cgroup *cg) {
  return cg ? cg->dir : NULL;
}

mg_cgroup_version mg_cgroup_get_version(const mg_cgroup *cg) {
  return cg ? cg->version : MG_CGROUP_NONE;
}

/* Write `text` to <dir>/<file>, explaining a failure. */
static int cg__write_file(const mg_cgroup *cg, const char *file,
                          const char *text, char *err, size_t err_len) {
  char path[PATH_MAX];
  int rc = mg__cg_join(path, sizeof path, cg->dir, file);
  if (rc == 0)
    rc = mg__cg_write(path, text);
  if (rc < 0)
    mg_errf(err, err_len, rc, "cannot write \"%s\" to %s/%s: %s", text, cg->dir,
            file, mg_strerror(rc));
  return rc;
}

/* Decimal bytes, or the version's word for no limit. */
static void cg__fmt_limit(mg_cgroup_version v, uint64_t bytes, char *buf,
                          size_t len) {
  if (bytes == UINT64_MAX)
    snprintf(buf, len, "%s", v == MG_CGROUP_V1 ? "-1" : "max");
  else
    snprintf(buf, len, "%" PRIu64, bytes);
}

int mg_cgroup_set_limit(mg_cgroup *cg, uint64_t bytes, int *swap_limited,
                        char *err, size_t err_len) {
  if (swap_limited)
    *swap_limited = 0;
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "mg_cgroup_set_limit: no group");
  char val[32], swapf[PATH_MAX];
  cg__fmt_limit(cg->version, bytes, val, sizeof val);
  int swapped = 0, rc;
  if (cg->version == MG_CGROUP_V1) {
    /* memsw.limit must stay >= limit: raise memsw first when growing. */
    if (mg__cg_join(swapf, sizeof swapf, cg->dir,
                    "memory.memsw.limit_in_bytes") < 0)
      return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s", cg->dir);
    int has_memsw = cg__exists(swapf);
    rc = cg__write_file(cg, "memory.limit_in_bytes", val, err, err_len);
    if (rc == -EINVAL && has_memsw && mg__cg_write(swapf, val) == 0) {
      swapped = 1;
      rc = cg__write_file(cg, "memory.limit_in_bytes", val, err, err_len);
    }
    if (rc == -EBUSY)
      return mg_errf(err, err_len, rc,
                     "cannot set the memory limit of %s to %s bytes: its "
                     "usage is above that and cannot be reclaimed (EBUSY)",
                     cg->dir, val);
    if (rc < 0)
      return rc;
    if (has_memsw && !swapped)
      swapped = mg__cg_write(swapf, val) == 0;
  } else {
    rc = cg__write_file(cg, "memory.max", val, err, err_len);
    if (rc < 0)
      return rc;
    if (mg__cg_join(swapf, sizeof swapf, cg->dir, "memory.swap.max") == 0 &&
        cg__exists(swapf))
      swapped = mg__cg_write(swapf, "0") == 0;
  }
  if (swap_limited)
    *swap_limited = swapped;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

int mg_cgroup_set_high(mg_cgroup *cg, uint64_t bytes, char *err,
                       size_t err_len) {
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "mg_cgroup_set_high: no group");
  if (cg->version != MG_CGROUP_V2)
    return mg_errf(err, err_len, -ENOTSUP,
                   "memory.high exists only in cgroup v2 (%s is %s)", cg->dir,
                   mg_cgroup_version_name(cg->version));
  char val[32];
  cg__fmt_limit(cg->version, bytes, val, sizeof val);
  return cg__write_file(cg, "memory.high", val, err, err_len);
}

int mg_cgroup_add_pid(mg_cgroup *cg, pid_t pid, char *err, size_t err_len) {
  if (!cg || pid <= 0)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_add_pid: a group and a pid > 0 are required");
  char path[PATH_MAX], val[32];
  int rc = mg__cg_join(path, sizeof path, cg->dir, "cgroup.procs");
  snprintf(val, sizeof val, "%ld", (long)pid);
  if (rc == 0)
    rc = mg__cg_write(path, val);
  if (rc == -ESRCH)
    return mg_errf(err, err_len, rc, "no process with pid %ld", (long)pid);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot move pid %ld into %s: %s",
                   (long)pid, cg->dir, mg_strerror(rc));
  return 0;
}

/* Read a counter at <dir>/<file>; *present (may be NULL) says whether the
 * file exists (a missing file is then not an error). */
static int cg__stat_u64(const mg_cgroup *cg, const char *file, uint64_t *out,
                        int *present, char *err, size_t err_len) {
  char path[PATH_MAX];
  *out = 0;
  if (present)
    *present = 0;
  int rc = mg__cg_join(path, sizeof path, cg->dir, file);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "path too long: %s", cg->dir);
  if (present && !cg__exists(path))
    return 0;
  rc = mg__cg_read_counter(path, out, err, err_len);
  if (rc == 0 && present)
    *present = 1;
  return rc;
}

/* Read a key=value file (memory.events, memory.oom_control) into *text. */
static int cg__stat_text(const mg_cgroup *cg, const char *file, char **text,
                         char *err, size_t err_len) {
  char path[PATH_MAX];
  int rc = mg__cg_join(path, sizeof path, cg->dir, file);
  if (rc == 0)
    rc = mg__cg_slurp(path, text);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s/%s: %s", cg->dir, file,
                   mg_strerror(rc));
  return 0;
}

/* Look up `key` in a key-value file's text; absent keys read as 0, and
 * *present (may be NULL) says whether the line was there. */
static int cg__stat_kv(const char *text, const char *key, uint64_t *out,
                       int *present, const mg_cgroup *cg, const char *file,
                       char *err, size_t err_len) {
  *out = 0;
  int rc = cg__kv_get(text, key, out);
  if (rc < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s/%s: the \"%s\" line is not \"%s <number>\"",
                   cg->dir, file, key, key);
  if (present)
    *present = rc == 1;
  return 0;
}

static int cg__stats_v1(mg_cgroup *cg, mg_cgroup_stats *out, char *err,
                        size_t err_len) {
  char path[PATH_MAX];
  int rc = cg__stat_u64(cg, "memory.usage_in_bytes", &out->current_bytes, NULL,
                        err, err_len);
  if (rc == 0)
    rc = cg__stat_u64(cg, "memory.max_usage_in_bytes", &out->peak_bytes,
                      &out->has_peak, err, err_len);
  if (rc == 0)
    rc = cg__stat_u64(cg, "memory.failcnt", &out->oom_events, NULL, err,
                      err_len);
  if (rc < 0)
    return rc;
  rc = mg__cg_join(path, sizeof path, cg->dir, "memory.limit_in_bytes");
  if (rc == 0)
    rc = mg__cg_read_limit(path, &out->limit_bytes, err, err_len);
  if (rc < 0)
    return rc;
  char *text = NULL;
  rc = cg__stat_text(cg, "memory.oom_control", &text, err, err_len);
  if (rc == 0) /* "oom_kill N" since Linux 4.13; absent reads as 0 */
    rc = cg__stat_kv(text, "oom_kill", &out->oom_kills, &out->has_oom_kill, cg,
                     "memory.oom_control", err, err_len);
  free(text);
  return rc;
}

static int cg__stats_v2(mg_cgroup *cg, mg_cgroup_stats *out, char *err,
                        size_t err_len) {
  char path[PATH_MAX];
  int rc = cg__stat_u64(cg, "memory.current", &out->current_bytes, NULL, err,
                        err_len);
  if (rc == 0)
    rc = cg__stat_u64(cg, "memory.peak", &out->peak_bytes, &out->has_peak, err,
                      err_len);
  if (rc < 0)
    return rc;
  rc = mg__cg_join(path, sizeof path, cg->dir, "memory.max");
  if (rc == 0)
    rc = mg__cg_read_limit(path, &out->limit_bytes, err, err_len);
  if (rc < 0)
    return rc;
  char *text = NULL;
  static const char ev[] = "memory.events";
  uint64_t low;
  rc = cg__stat_text(cg, ev, &text, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "low", &low, NULL, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "high", &out->high_events, NULL, cg, ev, err,
                     err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "max", &out->max_events, NULL, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "oom", &out->oom_events, NULL, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "oom_kill", &out->oom_kills, &out->has_oom_kill, cg,
                     ev, err, err_len);
  free(text);
  return rc;
}

int mg_cgroup_usage_read(mg_cgroup *cg, uint64_t *current_bytes,
                         uint64_t *peak_bytes, int *has_peak, char *err,
                         size_t err_len) {
  if (!cg || !current_bytes)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_usage_read: group and current are required");
  int v1 = cg->version == MG_CGROUP_V1, hp = 0;
  uint64_t peak = 0;
  int rc = cg__stat_u64(cg, v1 ? "memory.usage_in_bytes" : "memory.current",
                        current_bytes, NULL, err, err_len);
  if (rc == 0 && peak_bytes)
    rc = cg__stat_u64(cg, v1 ? "memory.max_usage_in_bytes" : "memory.peak",
                      &peak, &hp, err, err_len);
  if (rc < 0)
    return rc;
  if (peak_bytes)
    *peak_bytes = peak;
  if (has_peak)
    *has_peak = hp;
  return 0;
}

int mg_cgroup_stats_read(mg_cgroup *cg, mg_cgroup_stats *out, char *err,
                         size_t err_len) {
  if (!cg || !out)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_stats_read: group and out are required");
  memset(out, 0, sizeof *out);
  int rc = cg->version == MG_CGROUP_V1 ? cg__stats_v1(cg, out, err, err_len)
                                       : cg__stats_v2(cg, out, err, err_len);
  if (rc < 0)
    memset(out, 0, sizeof *out);
  else if (err && err_len)
    err[0] = '\0';
  return rc;
}

/* The pids listed in <dir>/cgroup.procs: count them and, when `kill_them`,
 * SIGKILL each (never this process). *self_inside reports our own pid. */
static int cg__procs(const mg_cgroup *cg, int kill_them, size_t *count,
                     int *self_inside) {
  char path[PATH_MAX], *text = NULL;
  *count = 0;
  if (self_inside)
    *self_inside = 0;
  int rc = mg__cg_join(path, sizeof path, cg->dir, "cgroup.procs");
  if (rc == 0)
    rc = mg__cg_slurp(path, &text);
  if (rc < 0)
    return rc;
  pid_t self = getpid();
  for (char *p = text; *p;) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    p = end;
    if (pid <= 0)
      continue;
    (*count)++;
    if ((pid_t)pid == self) {
      if (self_inside)
        *self_inside = 1;
      continue;
    }
    if (kill_them)
      mg_kill_release((pid_t)pid);
  }
  free(text);
  return 0;
}

int mg_cgroup_count_pids(mg_cgroup *cg, size_t *count) {
  if (!cg || !count)
    return -EINVAL;
  return cg__procs(cg, 0, count, NULL);
}

int mg_cgroup_kill_all(mg_cgroup *cg, int timeout_ms) {
  if (!cg)
    return -EINVAL;
  int64_t deadline = cg__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  size_t n;
  int self_inside = 0;
  int rc = cg__procs(cg, 0, &n, &self_inside);
  if (rc == -ENOENT)
    return 0; /* the group is gone: nothing left to kill */
  if (rc < 0)
    return rc;
  if (n == (size_t)self_inside)
    return 0; /* empty (the usual end of a run): nothing to kill */
  int used_kill = 0;
  if (cg->version == MG_CGROUP_V2 && !self_inside) {
    char path[PATH_MAX];
    used_kill = mg__cg_join(path, sizeof path, cg->dir, "cgroup.kill") == 0 &&
                cg__exists(path) && mg__cg_write(path, "1") == 0;
  }
  for (;;) {
    rc = cg__procs(cg, !used_kill, &n, &self_inside);
    if (rc == -ENOENT)
      return 0;
    if (rc < 0)
      return rc;
    if (n == (size_t)self_inside)
      return 0;
    if (cg__now_ms() >= deadline)
      return -ETIMEDOUT;
    cg__sleep_ms(CG__POLL_MS);
  }
}

int mg_cgroup_remove(mg_cgroup *cg, char *err, size_t err_len) {
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "mg_cgroup_remove: no group");
  int rc = cg__rmdir(cg->dir);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot remove cgroup %s: %s%s", cg->dir,
                   mg_strerror(rc),
                   rc == -EBUSY ? " (it still holds processes; kill them "
                                  "first)"
                                : "");
  return 0;
}

void mg_cgroup_free(mg_cgroup *cg) {
  free(cg);
}

/* Parse "<prefix><pid>-…" → pid, or 0 when the name does not match. */
static pid_t cg__stale_pid(const char *name, const char *prefix) {
  size_t pl = strlen(prefix);
  if (strncmp(name, prefix, pl) != 0)
    return 0;
  const char *p = name + pl;
  long pid = 0;
  if (!isdigit((unsigned char)*p))
    return 0;
  for (; isdigit((unsigned char)*p); p++) {
    pid = pid * 10 + (*p - '0');
    if (pid > INT_MAX)
      return 0;
  }
  return *p == '-' && pid > 0 ? (pid_t)pid : 0;
}

int mg_cgroup_remove_stale(const mg_cgroup_info *info, const char *parent_dir,
                           const char *prefix, size_t *removed, char *err,
                           size_t err_len) {
  if (removed)
    *removed = 0;
  if (!info || !prefix || !*prefix || strchr(prefix, '/'))
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_remove_stale: info and a non-empty prefix "
                   "without \"/\" are required");
  if (info->version != MG_CGROUP_V1 && info->version != MG_CGROUP_V2)
    return 0; /* no memory hierarchy, nothing of ours can be there */
  const char *parent = cg__parent(info, parent_dir);
  DIR *d = opendir(parent);
  if (!d) {
    int rc = -errno;
    return mg_errf(err, err_len, rc, "cannot list %s: %s", parent,
                   mg_strerror(rc));
  }
  int first_rc = 0;
  size_t count = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    pid_t pid = cg__stale_pid(ent->d_name, prefix);
    if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
      continue; /* not ours, or its owner still lives */
    mg_cgroup tmp = {info->version, {0}};
    struct stat st;
    if (mg__cg_join(tmp.dir, sizeof tmp.dir, parent, ent->d_name) < 0 ||
        stat(tmp.dir, &st) < 0 || !S_ISDIR(st.st_mode))
      continue;
    mg_cgroup_kill_all(&tmp, CG__REMOVE_RETRY_MS);
    char e[PATH_MAX + 128];
    int rc = mg_cgroup_remove(&tmp, e, sizeof e);
    if (rc == 0) {
      count++;
    } else if (first_rc == 0) {
      first_rc = rc;
      mg_errf(err, err_len, rc, "%s", e);
    }
  }
  closedir(d);
  if (removed)
    *removed = count;
  if (first_rc == 0 && err && err_len)
    err[0] = '\0';
  return first_rc;
}
