/* mg_cgroup_detect.c — where this process sits in the cgroup memory
 * hierarchy (core layer): the mounts in mountinfo, this process's path in
 * /proc/self/cgroup, whether cgroup2 offers the memory controller, and the
 * effective limit found by walking up to the hierarchy root. Child groups
 * are in mg_cgroup.c.
 *
 * Every path kept in mg_cgroup_info (mount, dir, limit_dir) already
 * includes paths->fs_root, so later calls (create, stats, remove…) work on
 * the same tree that detection read, fixture or real.
 */
#include "mg/mg_cgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_error.h"
#include "mg__cgroup.h"
#include "mg__fileio.h"

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
        strcmp(fstype, "cgroup") == 0 && mg__cg_list_has(super, ",", "memory");
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
    if (!*v1_path && mg__cg_list_has(ctrls, ",", "memory"))
      *v1_path = path;
    else if (!*v2_path && strcmp(line, "0") == 0 && *ctrls == '\0')
      *v2_path = path;
  }
}

/* The mount whose root holds `cgpath` (the first one when none does). */
static const cg__mount *cg__pick(const cg__mount *ms, size_t n,
                                 const char *cgpath) {
  for (size_t i = 0; i < n; i++)
    if (cgpath && mg__cg_under(cgpath, ms[i].root))
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
  if (mg__cg_under(cgpath, mt->root))
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
  return mg__cg_copy(out->path, sizeof out->path, cgpath);
}

/* Walk from out->dir up to out->mount; keep the tightest finite limit. */
static int cg__walk_limits(mg_cgroup_info *out, char *err, size_t err_len) {
  const char *file =
      out->version == MG_CGROUP_V1 ? "memory.limit_in_bytes" : "memory.max";
  char cur[PATH_MAX], path[PATH_MAX];
  size_t ml = strlen(out->mount);
  memcpy(cur, out->dir, strlen(out->dir) + 1);
  for (;;) {
    int rc = mg__cg_join(path, sizeof path, cur, file);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "path too long: %s/%s", cur, file);
    uint64_t v;
    rc = mg__cg_read_limit(path, &v, err, err_len);
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
      mg__cg_join(path, sizeof path, mount, "cgroup.controllers") < 0)
    return 0;
  if (mg__read_file(path, buf, sizeof buf, NULL) < 0)
    return 0;
  return mg__cg_list_has(buf, " \t\n", "memory");
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
  rc = mg__cg_slurp(mi_path, &mi);
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

  rc = mg__cg_slurp(cg_path, &self);
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
