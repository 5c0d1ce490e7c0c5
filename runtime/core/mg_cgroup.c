/* mg_cgroup.c — cgroup v1 and v2 memory controller: detection, the
 * effective limit of this process, writability, and child groups
 * (core layer).
 *
 * Every path kept in mg_cgroup_info (mount, dir, limit_dir) already
 * includes paths->fs_root, so later calls (create, stats, remove…) work on
 * the same tree that detection read, fixture or real.
 */
#include "mg/mg_cgroup.h"

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

#include "mg__fileio.h"
#include "mg/mg_error.h"

/* v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on
 * 4 KiB pages); anything this large is no limit in practice. */
#define CG__UNLIMITED_MIN (UINT64_C(1) << 62)
#define CG__PROBE_LIMIT_BYTES (UINT64_C(64) << 20)
#define CG__NAME_MAX 64
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

/* "<dir>/<name>" into out; -ENAMETOOLONG when it does not fit. */
static int cg__join(char *out, size_t len, const char *dir, const char *name) {
  int n = snprintf(out, len, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= len)
    return -ENAMETOOLONG;
  return 0;
}

/* Copy with a truncation check. */
static int cg__copy(char *out, size_t len, const char *s) {
  size_t n = strlen(s);
  if (n >= len)
    return -ENAMETOOLONG;
  memcpy(out, s, n + 1);
  return 0;
}

/* Read a whole file of any size (mountinfo, cgroup.procs) into a new
 * heap buffer (*out, caller frees). */
static int cg__slurp(const char *path, char **out) {
  return mg__read_file_alloc(path, (size_t)64 << 20, out, NULL);
}

/* Read a small value file and strip trailing whitespace. */
static int cg__read_value(const char *path, char *buf, size_t cap) {
  int rc = mg__read_file(path, buf, cap, NULL);
  if (rc < 0)
    return rc;
  size_t n = strlen(buf);
  while (n > 0 && isspace((unsigned char)buf[n - 1]))
    buf[--n] = '\0';
  return 0;
}

/* Write `text` to an existing control file. */
static int cg__write(const char *path, const char *text) {
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

/* Is `word` an item of `list`, items separated by any char of `seps`? */
static int cg__list_has(const char *list, const char *seps, const char *word) {
  size_t wl = strlen(word);
  const char *p = list;
  while (*p) {
    size_t n = strcspn(p, seps);
    if (n == wl && strncmp(p, word, wl) == 0)
      return 1;
    p += n;
    if (*p)
      p++;
  }
  return 0;
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static int cg__parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  if (!*s)
    return MG_EPARSE;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return MG_EPARSE;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return MG_EPARSE;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* A limit value: a number of bytes, or "max" (v2). *bytes is UINT64_MAX
 * for no limit (also v1's huge "unlimited" number). */
static int cg__parse_limit(const char *text, uint64_t *bytes) {
  if (strcmp(text, "max") == 0) {
    *bytes = UINT64_MAX;
    return 0;
  }
  uint64_t v;
  if (cg__parse_u64(text, &v) < 0)
    return MG_EPARSE;
  *bytes = v >= CG__UNLIMITED_MIN ? UINT64_MAX : v;
  return 0;
}

/* Read and parse a limit file; MG_EPARSE names the file and quotes it. */
static int cg__read_limit(const char *path, uint64_t *bytes, char *err,
                          size_t err_len) {
  char buf[128];
  int rc = cg__read_value(path, buf, sizeof buf);
  if (rc == -EFBIG)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.40s...\" (expected a number of bytes "
                   "or \"max\")",
                   path, buf);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (cg__parse_limit(buf, bytes) < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.64s\" (expected a number of bytes or "
                   "\"max\")",
                   path, buf);
  return 0;
}

/* Read a plain counter file (usage, failcnt…). */
static int cg__read_counter(const char *path, uint64_t *out, char *err,
                            size_t err_len) {
  char buf[128];
  int rc = cg__read_value(path, buf, sizeof buf);
  if (rc < 0 && rc != -EFBIG)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (rc < 0 || cg__parse_u64(buf, out) < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.64s\" (expected a number)", path, buf);
  return 0;
}

/* Find "key N" among the lines of `text`: 1 found, 0 absent, MG_EPARSE
 * when the key is there but N is not a number. */
static int cg__kv_get(const char *text, const char *key, uint64_t *out) {
  size_t kl = strlen(key);
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == ' ') {
      char num[32];
      size_t vl = n - kl - 1;
      if (vl == 0 || vl >= sizeof num)
        return MG_EPARSE;
      memcpy(num, p + kl + 1, vl);
      num[vl] = '\0';
      return cg__parse_u64(num, out) < 0 ? MG_EPARSE : 1;
    }
    p += n;
    if (*p)
      p++;
  }
  return 0;
}

/* Decode mountinfo's octal escapes (\040 space, \011 tab, \012 newline,
 * \134 backslash) in place. */
static void cg__unescape(char *s) {
  char *w = s;
  for (const char *r = s; *r;) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
        r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
      r += 4;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
}

/* Does `path` lie at or under `root` (component-wise)? */
static int cg__under(const char *path, const char *root) {
  if (strcmp(root, "/") == 0)
    return 1;
  size_t rl = strlen(root);
  return strncmp(path, root, rl) == 0 && (path[rl] == '\0' || path[rl] == '/');
}

/* ---------------------------------------------------------- detection */

const char *mg_cgroup_version_name(mg_cgroup_version v) {
  switch (v) {
  case MG_CGROUP_V1:
    return "v1";
  case MG_CGROUP_V2:
    return "v2";
  default:
    return "none";
  }
}

/* One interesting line of mountinfo; the strings point into its buffer. */
typedef struct cg__mount {
  const char *root;  /* the mount's root inside the hierarchy */
  const char *point; /* where it is mounted */
} cg__mount;

#define CG__MAX_MOUNTS 16

typedef struct cg__mounts {
  cg__mount v1[CG__MAX_MOUNTS]; /* cgroup mounts with the memory option */
  size_t n_v1;
  cg__mount v2[CG__MAX_MOUNTS]; /* cgroup2 mounts */
  size_t n_v2;
} cg__mounts;

/* Split mountinfo (in place) and collect the cgroup mounts. */
static int cg__parse_mountinfo(char *text, const char *path, cg__mounts *m,
                               char *err, size_t err_len) {
  memset(m, 0, sizeof *m);
  int lineno = 0;
  char *save_line = NULL;
  for (char *line = strtok_r(text, "\n", &save_line); line;
       line = strtok_r(NULL, "\n", &save_line)) {
    lineno++;
    char *f[64];
    size_t nf = 0, sep = 0;
    char *rest = line; /* strsep keeps empty fields (an empty source) */
    for (char *tok = strsep(&rest, " "); tok && nf < 64;
         tok = strsep(&rest, " ")) {
      if (sep == 0 && nf >= 6 && strcmp(tok, "-") == 0)
        sep = nf;
      f[nf++] = tok;
    }
    if (nf == 1 && *f[0] == '\0')
      continue;
    if (sep == 0 || sep + 2 >= nf)
      return mg_errf(err, err_len, MG_EPARSE,
                     "malformed %s line %d: expected \"id parent major:minor "
                     "root mountpoint options [optional...] - fstype source "
                     "superoptions\"",
                     path, lineno);
    const char *fstype = f[sep + 1];
    const char *super = sep + 3 < nf ? f[sep + 3] : "";
    int is_v1 =
        strcmp(fstype, "cgroup") == 0 && cg__list_has(super, ",", "memory");
    int is_v2 = strcmp(fstype, "cgroup2") == 0;
    if (!is_v1 && !is_v2)
      continue;
    cg__unescape(f[3]);
    cg__unescape(f[4]);
    cg__mount mt = {f[3], f[4]};
    if (is_v1 && m->n_v1 < CG__MAX_MOUNTS)
      m->v1[m->n_v1++] = mt;
    if (is_v2 && m->n_v2 < CG__MAX_MOUNTS)
      m->v2[m->n_v2++] = mt;
  }
  return 0;
}

/* From /proc/self/cgroup: the v1 memory path and the v2 ("0::") path. */
static void cg__parse_self_cgroup(char *text, const char **v1_path,
                                  const char **v2_path) {
  *v1_path = NULL;
  *v2_path = NULL;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
      continue;
    *c1 = '\0';
    *c2 = '\0';
    const char *ctrls = c1 + 1, *path = c2 + 1;
    if (!*v1_path && cg__list_has(ctrls, ",", "memory"))
      *v1_path = path;
    else if (!*v2_path && strcmp(line, "0") == 0 && *ctrls == '\0')
      *v2_path = path;
  }
}

/* The mount whose root holds `cgpath` (the first one when none does). */
static const cg__mount *cg__pick(const cg__mount *ms, size_t n,
                                 const char *cgpath) {
  for (size_t i = 0; i < n; i++)
    if (cgpath && cg__under(cgpath, ms[i].root))
      return &ms[i];
  return n ? &ms[0] : NULL;
}

/* mount = fs_root + point; dir = mount + (cgpath less the mount's root). */
static int cg__locate(const mg_paths *paths, const cg__mount *mt,
                      const char *cgpath, mg_cgroup_info *out) {
  int rc = mg__path_join(out->mount, sizeof out->mount,
                         paths ? paths->fs_root : NULL, "", mt->point);
  if (rc < 0)
    return rc;
  size_t ml = strlen(out->mount);
  if (ml > 1 && out->mount[ml - 1] == '/')
    out->mount[--ml] = '\0';
  const char *rel = "";
  if (cg__under(cgpath, mt->root))
    rel = strcmp(mt->root, "/") == 0 ? cgpath : cgpath + strlen(mt->root);
  /* else: the path lies outside the mount (cgroup namespace edge case);
   * the mount point is the best directory we can name. */
  if (strcmp(rel, "/") == 0)
    rel = "";
  int n;
  if (strcmp(out->mount, "/") == 0 && *rel)
    n = snprintf(out->dir, sizeof out->dir, "%s", rel);
  else
    n = snprintf(out->dir, sizeof out->dir, "%s%s", out->mount, rel);
  if (n < 0 || (size_t)n >= sizeof out->dir)
    return -ENAMETOOLONG;
  return cg__copy(out->path, sizeof out->path, cgpath);
}

/* Walk from out->dir up to out->mount; keep the tightest finite limit. */
static int cg__walk_limits(mg_cgroup_info *out, char *err, size_t err_len) {
  const char *file =
      out->version == MG_CGROUP_V1 ? "memory.limit_in_bytes" : "memory.max";
  char cur[PATH_MAX], path[PATH_MAX];
  size_t ml = strlen(out->mount);
  memcpy(cur, out->dir, strlen(out->dir) + 1);
  for (;;) {
    int rc = cg__join(path, sizeof path, cur, file);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "path too long: %s/%s", cur, file);
    uint64_t v;
    rc = cg__read_limit(path, &v, err, err_len);
    if (rc == -ENOENT) {
      /* the hierarchy root has no limit file (v2 memory.max) */
    } else if (rc < 0) {
      return rc;
    } else if (v != UINT64_MAX && (!out->has_limit || v < out->limit_bytes)) {
      out->has_limit = 1;
      out->limit_bytes = v;
      memcpy(out->limit_dir, cur, strlen(cur) + 1);
    }
    if (strlen(cur) <= ml || strcmp(cur, out->mount) == 0)
      break;
    char *slash = strrchr(cur, '/');
    if (!slash)
      break;
    if (slash == cur)
      slash[1] = '\0';
    else
      *slash = '\0';
  }
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

/* Does the cgroup2 mount list "memory" in its cgroup.controllers? */
static int cg__v2_has_memory(const mg_paths *paths, const cg__mount *mt) {
  char mount[PATH_MAX], path[PATH_MAX], buf[1024];
  if (mg__path_join(mount, sizeof mount, paths ? paths->fs_root : NULL, "",
                    mt->point) < 0 ||
      cg__join(path, sizeof path, mount, "cgroup.controllers") < 0)
    return 0;
  if (mg__read_file(path, buf, sizeof buf, NULL) < 0)
    return 0;
  return cg__list_has(buf, " \t\n", "memory");
}

int mg_cgroup_detect(const mg_paths *paths, mg_cgroup_info *out, char *err,
                     size_t err_len) {
  if (!out)
    return mg_errf(err, err_len, -EINVAL, "mg_cgroup_detect: out is NULL");
  memset(out, 0, sizeof *out);
  const char *proc = paths ? paths->proc_root : NULL;
  char mi_path[PATH_MAX], cg_path[PATH_MAX];
  int rc =
      mg__path_join(mi_path, sizeof mi_path, proc, "/proc", "self/mountinfo");
  if (rc == 0)
    rc = mg__path_join(cg_path, sizeof cg_path, proc, "/proc", "self/cgroup");
  if (rc < 0)
    return mg_errf(err, err_len, rc, "proc root too long: %s", proc);

  char *mi = NULL, *self = NULL;
  rc = cg__slurp(mi_path, &mi);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", mi_path,
                   mg_strerror(rc));
  cg__mounts m;
  rc = cg__parse_mountinfo(mi, mi_path, &m, err, err_len);
  if (rc < 0)
    goto done;
  out->v2_mounted = m.n_v2 > 0;
  if (m.n_v1 == 0) {
    int v2_memory = 0;
    for (size_t i = 0; i < m.n_v2 && !v2_memory; i++)
      v2_memory = cg__v2_has_memory(paths, &m.v2[i]);
    if (!v2_memory)
      goto done; /* no memory controller anywhere: version none */
  }

  rc = cg__slurp(cg_path, &self);
  if (rc < 0) {
    mg_errf(err, err_len, rc, "cannot read %s: %s", cg_path, mg_strerror(rc));
    goto done;
  }
  const char *v1_path, *v2_path;
  cg__parse_self_cgroup(self, &v1_path, &v2_path);

  const cg__mount *mt = NULL;
  const char *cgpath = NULL;
  if (m.n_v1 > 0) {
    if (!v1_path) {
      rc = mg_errf(err, err_len, MG_EPARSE,
                   "%s has no line for the memory controller, but a cgroup "
                   "v1 memory hierarchy is mounted at %s",
                   cg_path, m.v1[0].point);
      goto done;
    }
    out->version = MG_CGROUP_V1;
    cgpath = v1_path;
    mt = cg__pick(m.v1, m.n_v1, cgpath);
  } else {
    const cg__mount *v2 = cg__pick(m.v2, m.n_v2, v2_path);
    if (!cg__v2_has_memory(paths, v2))
      goto done; /* cgroup2 without the memory controller: none */
    if (!v2_path) {
      rc = mg_errf(err, err_len, MG_EPARSE,
                   "%s has no \"0::<path>\" line, but cgroup2 is mounted at "
                   "%s",
                   cg_path, v2->point);
      goto done;
    }
    out->version = MG_CGROUP_V2;
    cgpath = v2_path;
    mt = v2;
  }
  rc = cg__locate(paths, mt, cgpath, out);
  if (rc < 0) {
    mg_errf(err, err_len, rc, "cgroup path too long: %s", cgpath);
    goto done;
  }
  rc = cg__walk_limits(out, err, err_len);

done:
  free(mi);
  free(self);
  if (rc < 0) {
    int v2m = out->v2_mounted;
    memset(out, 0, sizeof *out);
    out->v2_mounted = v2m;
  } else if (err && err_len) {
    err[0] = '\0';
  }
  return rc;
}

/* -------------------------------------------------------- names, probe */

int mg_cgroup_validate_name(const char *name, char *err, size_t err_len) {
  static const char accepted[] =
      "use 1 to 64 characters from A-Z a-z 0-9 . _ - (not \".\" or \"..\", "
      "no \"/\")";
  if (!name)
    return mg_errf(err, err_len, -EINVAL, "cgroup name is missing: %s",
                   accepted);
  size_t n = strlen(name);
  int ok = n >= 1 && n <= CG__NAME_MAX && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
  for (size_t i = 0; ok && i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    ok = isalnum(c) || c == '.' || c == '_' || c == '-';
  }
  if (!ok)
    return mg_errf(err, err_len, -EINVAL, "invalid cgroup name \"%.80s%s\": %s",
                   name, n > 80 ? "..." : "", accepted);
  return 0;
}

/* v2: make sure children of `parent` get the memory controller (writing
 * "+memory" to its cgroup.subtree_control when missing). */
static int cg__v2_enable_memory(const char *parent, char *err, size_t err_len) {
  char path[PATH_MAX], buf[1024];
  int rc = cg__join(path, sizeof path, parent, "cgroup.subtree_control");
  if (rc < 0)
    return mg_errf(err, err_len, rc, "path too long: %s", parent);
  rc = mg__read_file(path, buf, sizeof buf, NULL);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (cg__list_has(buf, " \t\n", "memory"))
    return 0;
  rc = cg__write(path, "+memory");
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
  if (cg__join(dir, sizeof dir, parent, name) < 0 ||
      cg__join(file, sizeof file, dir, cg__limit_file(info->version)) < 0)
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
  int rc = cg__write(file, val);
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
  rc = cg__join(cg->dir, sizeof cg->dir, parent, name);
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
  int rc = cg__join(path, sizeof path, cg->dir, file);
  if (rc == 0)
    rc = cg__write(path, text);
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
    if (cg__join(swapf, sizeof swapf, cg->dir, "memory.memsw.limit_in_bytes") <
        0)
      return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s", cg->dir);
    int has_memsw = cg__exists(swapf);
    rc = cg__write_file(cg, "memory.limit_in_bytes", val, err, err_len);
    if (rc == -EINVAL && has_memsw && cg__write(swapf, val) == 0) {
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
      swapped = cg__write(swapf, val) == 0;
  } else {
    rc = cg__write_file(cg, "memory.max", val, err, err_len);
    if (rc < 0)
      return rc;
    if (cg__join(swapf, sizeof swapf, cg->dir, "memory.swap.max") == 0 &&
        cg__exists(swapf))
      swapped = cg__write(swapf, "0") == 0;
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
  int rc = cg__join(path, sizeof path, cg->dir, "cgroup.procs");
  snprintf(val, sizeof val, "%ld", (long)pid);
  if (rc == 0)
    rc = cg__write(path, val);
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
  int rc = cg__join(path, sizeof path, cg->dir, file);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "path too long: %s", cg->dir);
  if (present && !cg__exists(path))
    return 0;
  rc = cg__read_counter(path, out, err, err_len);
  if (rc == 0 && present)
    *present = 1;
  return rc;
}

/* Read a key=value file (memory.events, memory.oom_control) into *text. */
static int cg__stat_text(const mg_cgroup *cg, const char *file, char **text,
                         char *err, size_t err_len) {
  char path[PATH_MAX];
  int rc = cg__join(path, sizeof path, cg->dir, file);
  if (rc == 0)
    rc = cg__slurp(path, text);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s/%s: %s", cg->dir, file,
                   mg_strerror(rc));
  return 0;
}

/* Look up `key` in a key-value file's text; absent keys read as 0. */
static int cg__stat_kv(const char *text, const char *key, uint64_t *out,
                       const mg_cgroup *cg, const char *file, char *err,
                       size_t err_len) {
  *out = 0;
  int rc = cg__kv_get(text, key, out);
  if (rc < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s/%s: the \"%s\" line is not \"%s <number>\"",
                   cg->dir, file, key, key);
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
  rc = cg__join(path, sizeof path, cg->dir, "memory.limit_in_bytes");
  if (rc == 0)
    rc = cg__read_limit(path, &out->limit_bytes, err, err_len);
  if (rc < 0)
    return rc;
  char *text = NULL;
  rc = cg__stat_text(cg, "memory.oom_control", &text, err, err_len);
  if (rc == 0) /* "oom_kill N" since Linux 4.13; absent reads as 0 */
    rc = cg__stat_kv(text, "oom_kill", &out->oom_kills, cg,
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
  rc = cg__join(path, sizeof path, cg->dir, "memory.max");
  if (rc == 0)
    rc = cg__read_limit(path, &out->limit_bytes, err, err_len);
  if (rc < 0)
    return rc;
  char *text = NULL;
  static const char ev[] = "memory.events";
  uint64_t low;
  rc = cg__stat_text(cg, ev, &text, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "low", &low, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "high", &out->high_events, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "max", &out->max_events, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "oom", &out->oom_events, cg, ev, err, err_len);
  if (rc == 0)
    rc = cg__stat_kv(text, "oom_kill", &out->oom_kills, cg, ev, err, err_len);
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
  int rc = cg__join(path, sizeof path, cg->dir, "cgroup.procs");
  if (rc == 0)
    rc = cg__slurp(path, &text);
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
      kill((pid_t)pid, SIGKILL);
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
  int used_kill = 0;
  if (n > 0 && cg->version == MG_CGROUP_V2 && !self_inside) {
    char path[PATH_MAX];
    used_kill = cg__join(path, sizeof path, cg->dir, "cgroup.kill") == 0 &&
                cg__exists(path) && cg__write(path, "1") == 0;
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
    if (cg__join(tmp.dir, sizeof tmp.dir, parent, ent->d_name) < 0 ||
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
