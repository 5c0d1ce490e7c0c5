/* mg_sup_act.c — actions finer than a kill on a running child
 * (supervisor layer): throttling (cgroup v2 memory.high) and freezing
 * (cgroup v2 cgroup.freeze; on cgroup v1 the freezer hierarchy, where it
 * is mounted: the run's processes are moved into a freezer group of the
 * same name when first frozen, and that group is removed with the run).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg__sup.h"

int mg__sup_no_group(const mg_child *c, const char *what, char *err,
                     size_t err_len) {
  return mg_errf(err, err_len, MG_ENOTSUP,
                 "%s: process '%s' has no cgroup of its own (cgroup = false, "
                 "or none can be made here)",
                 what, c->name);
}

int mg_child_throttle(mg_child *c, uint64_t bytes, char *err, size_t err_len) {
  if (!c)
    return mg_errf(err, err_len, -EINVAL, "throttle: no child");
  if (c->pid <= 0)
    return mg_errf(err, err_len, -ESRCH,
                   "throttle: process '%s' is not "
                   "running",
                   c->name);
  if (!c->cg)
    return mg__sup_no_group(c, "throttle", err, err_len);
  if (mg_cgroup_get_version(c->cg) != MG_CGROUP_V2)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "throttle: cgroup v1 has no memory.high (throttling needs "
                   "cgroup v2); on v1 lower the hard limit (p:set_limit: the "
                   "kernel reclaims, then OOM-kills), pause the process "
                   "(p:freeze) or stop it (p:kill{})");
  if (bytes != UINT64_MAX && (bytes == 0 || bytes > (uint64_t)INT64_MAX))
    return mg_errf(err, err_len, -EINVAL,
                   "throttle: size must be 1 byte to 2^63-1");
  char e[PATH_MAX + 256];
  int rc = mg_cgroup_set_high(c->cg, bytes, e, sizeof e);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "throttle: %s", e);
  char h[32];
  mg_log_field f[] = {
      MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid),
      MG_LF_STR("high", bytes == UINT64_MAX
                            ? "max"
                            : mg_size_format(bytes, h, sizeof h))};
  mg_log(c->sup->log, MG_LOG_INFO,
         bytes == UINT64_MAX ? "child_unthrottled" : "child_throttled", f, 3);
  return 0;
}

/* ------------------------------------------------------ v1 freezer */

/* Is `word` one of the items of `list` separated by any of `seps`? */
static int act__has(const char *list, const char *seps, const char *word) {
  size_t wl = strlen(word);
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, seps);
    if (n == wl && strncmp(p, word, wl) == 0)
      return 1;
    p += n;
    if (*p)
      p++;
  }
  return 0;
}

/* The freezer hierarchy's directory of this process's freezer cgroup:
 * mount point (mountinfo: a cgroup mount with the freezer option) joined
 * with our path in it (/proc/self/cgroup "N:freezer:/path"). */
static int act__freezer_dir(const mg_sup *sup, char *out, size_t len) {
  char p[PATH_MAX], line[4096], mnt[PATH_MAX] = "", path[PATH_MAX] = "";
  const char *proc = sup->paths.proc_root ? sup->paths.proc_root : "/proc";
  snprintf(p, sizeof p, "%s/self/mountinfo", proc);
  FILE *f = fopen(p, "re");
  if (!f)
    return -errno;
  while (fgets(line, sizeof line, f)) {
    char *dash = strstr(line, " - ");
    if (!dash || strncmp(dash, " - cgroup ", 10) != 0)
      continue;
    char *opts = strrchr(dash, ' ');
    if (!opts || !act__has(opts + 1, ",\n", "freezer"))
      continue;
    char mp[PATH_MAX];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1)
      snprintf(mnt, sizeof mnt, "%s", mp);
    break;
  }
  fclose(f);
  snprintf(p, sizeof p, "%s/self/cgroup", proc);
  f = fopen(p, "re");
  if (!f)
    return -errno;
  while (fgets(line, sizeof line, f)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b)
      continue;
    *b = '\0';
    if (act__has(a + 1, ",", "freezer")) {
      b[1 + strcspn(b + 1, "\n")] = '\0';
      snprintf(path, sizeof path, "%s", b + 1);
      break;
    }
  }
  fclose(f);
  if (!mnt[0] || !path[0])
    return MG_ENOTSUP;
  if (snprintf(out, len, "%s%s", mnt, strcmp(path, "/") == 0 ? "" : path) >=
      (int)len)
    return -ENAMETOOLONG;
  return 0;
}

static int act__write(const char *dir, const char *file, const char *text) {
  char p[PATH_MAX + 64];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  int f = open(p, O_WRONLY | O_CLOEXEC);
  if (f < 0)
    return -errno;
  ssize_t w;
  do {
    w = write(f, text, strlen(text));
  } while (w < 0 && errno == EINTR);
  int e = errno;
  close(f);
  return w < 0 ? -e : 0;
}

/* Move every process of the run's memory group into the freezer group. */
static int act__v1_move(mg_child *c, const char *dir) {
  char p[PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/cgroup.procs", mg_cgroup_dir(c->cg));
  FILE *f = fopen(p, "re");
  if (!f)
    return -errno;
  size_t cap = 4096, n = 0;
  char *text = malloc(cap);
  while (text) {
    size_t k = fread(text + n, 1, cap - n - 1, f);
    n += k;
    if (k == 0)
      break;
    if (n + 1 == cap) {
      char *t = realloc(text, cap * 2);
      if (!t) {
        free(text);
        text = NULL;
        break;
      }
      text = t;
      cap *= 2;
    }
  }
  fclose(f);
  if (!text)
    return -ENOMEM;
  text[n] = '\0';
  int rc = 0;
  for (char *s = text; *s;) {
    char *end;
    long pid = strtol(s, &end, 10);
    if (end == s) {
      s++;
      continue;
    }
    s = end;
    char v[24];
    snprintf(v, sizeof v, "%ld", pid);
    int w = act__write(dir, "cgroup.procs", v);
    if (w < 0 && w != -ESRCH) {
      rc = w;
      break;
    }
  }
  free(text);
  return rc;
}

static int act__v1_freeze(mg_child *c, int frozen, char *err, size_t err_len) {
  char base[PATH_MAX], dir[PATH_MAX + 200];
  int rc = act__freezer_dir(c->sup, base, sizeof base);
  if (rc < 0)
    return mg_errf(err, err_len, rc == MG_ENOTSUP ? MG_ENOTSUP : rc,
                   "freeze: the cgroup v1 freezer hierarchy is not mounted "
                   "here%s",
                   rc == MG_ENOTSUP ? "" : " (cannot read mountinfo)");
  snprintf(dir, sizeof dir, "%s/%s", base,
           strrchr(mg_cgroup_dir(c->cg), '/') + 1);
  if (!frozen && access(dir, F_OK) != 0)
    return 0; /* never frozen */
  if (frozen && mkdir(dir, 0755) < 0 && errno != EEXIST)
    return mg_errf(err, err_len, -errno, "freeze: cannot create %s: %s", dir,
                   strerror(errno));
  snprintf(c->freezer_dir, sizeof c->freezer_dir, "%s", dir);
  if (frozen && (rc = act__v1_move(c, dir)) < 0)
    return mg_errf(err, err_len, rc,
                   "freeze: cannot move the processes "
                   "into %s: %s",
                   dir, mg_strerror(rc));
  rc = act__write(dir, "freezer.state", frozen ? "FROZEN" : "THAWED");
  if (rc < 0)
    return mg_errf(err, err_len, rc,
                   "freeze: cannot write %s/freezer.state: "
                   "%s",
                   dir, mg_strerror(rc));
  return 0;
}

void mg__sup_act_run_end(mg_child *c) {
  c->frozen = 0;
  if (!c->freezer_dir[0])
    return;
  act__write(c->freezer_dir, "freezer.state", "THAWED"); /* let them die */
  for (int i = 0; i < 50 && rmdir(c->freezer_dir) < 0 && errno == EBUSY; i++)
    usleep(2000);
  c->freezer_dir[0] = '\0';
}

int mg_child_freeze(mg_child *c, int frozen, char *err, size_t err_len) {
  if (!c)
    return mg_errf(err, err_len, -EINVAL, "freeze: no child");
  if (c->pid <= 0)
    return mg_errf(err, err_len, -ESRCH, "freeze: process '%s' is not running",
                   c->name);
  if (!c->cg)
    return mg__sup_no_group(c, "freeze", err, err_len);
  int rc;
  if (mg_cgroup_get_version(c->cg) == MG_CGROUP_V2) {
    char e[PATH_MAX + 256];
    rc = mg_cgroup_freeze(c->cg, frozen, e, sizeof e);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "freeze: %s", e);
  } else {
    rc = act__v1_freeze(c, frozen, err, err_len);
    if (rc < 0)
      return rc;
  }
  c->frozen = frozen;
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_INT("pid", c->pid)};
  mg_log(c->sup->log, MG_LOG_INFO, frozen ? "child_frozen" : "child_thawed", f,
         2);
  return 0;
}

void mg__sup_thaw(mg_child *c) {
  if (c->frozen && c->pid > 0)
    mg_child_freeze(c, 0, NULL, 0);
  c->frozen = 0;
}
