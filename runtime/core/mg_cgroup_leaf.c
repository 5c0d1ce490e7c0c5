/* mg_cgroup_leaf.c — cgroup v2's "no internal processes" rule, met the
 * way a delegated service must meet it (core layer).
 *
 * A v2 group that holds processes cannot enable controllers for child
 * groups (writing "+memory" to its cgroup.subtree_control fails with
 * EBUSY), except the root. A supervisor that runs in its own delegated
 * group (systemd's Delegate=yes, a container's cgroup namespace) and wants
 * memory-limited children there moves itself into a leaf of that group
 * first — `<dir>/<prefix>-<pid>-~supervisor` — then enables the memory
 * controller for the group's children, its own leaf included. Only when
 * the group holds this process alone: a stranger in it cannot be moved by
 * us (it is not ours to move), and the EBUSY stands. The leaf's name
 * cannot clash with a child's (child names never hold '~'); once the
 * process is gone it is removed with the other stale groups of that pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg__cgroup.h"
#include "mg__fileio.h"

int mg_cgroup_v2_move_to_leaf(const mg_cgroup_info *info, const char *prefix,
                              char *leaf, size_t leaf_len, char *err,
                              size_t err_len) {
  if (!info || !prefix || !leaf)
    return mg_errf(err, err_len, -EINVAL, "move to leaf: missing argument");
  leaf[0] = '\0';
  if (info->version != MG_CGROUP_V2)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "only cgroup v2 has the no-internal-processes rule (here: "
                   "%s)",
                   mg_cgroup_version_name(info->version));
  char path[PATH_MAX], *text = NULL;
  /* the memory controller must be ours to hand on */
  int rc = mg__cg_join(path, sizeof path, info->dir, "cgroup.controllers");
  if (rc == 0)
    rc = mg__cg_slurp(path, &text);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  int has_memory = mg__cg_list_has(text, " \t\n", "memory");
  free(text);
  text = NULL;
  if (!has_memory)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "%s has no memory controller to give its children (it is "
                   "not in its cgroup.controllers: the parent must delegate "
                   "it, e.g. systemd's Delegate=yes)",
                   info->dir);
  /* only this process in it */
  rc = mg__cg_join(path, sizeof path, info->dir, "cgroup.procs");
  if (rc == 0)
    rc = mg__cg_slurp(path, &text);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  pid_t self = getpid();
  size_t others = 0, mine = 0;
  for (char *p = text; *p;) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    p = end;
    if ((pid_t)pid == self)
      mine++;
    else if (pid > 0)
      others++;
  }
  free(text);
  if (others > 0)
    return mg_errf(err, err_len, -EBUSY,
                   "%s holds %zu other process%s besides mgrun: they are not "
                   "mgrun's to move, so it cannot give its children the "
                   "memory controller (run mgrun in a group of its own, e.g. "
                   "a systemd service with Delegate=yes)",
                   info->dir, others, others == 1 ? "" : "es");
  if (mine == 0)
    return mg_errf(err, err_len, -ESRCH,
                   "this process is not in %s/cgroup.procs", info->dir);
  char dir[PATH_MAX + 96];
  int n = snprintf(dir, sizeof dir, "%s/%s-%ld-~supervisor", info->dir, prefix,
                   (long)self);
  if (n < 0 || (size_t)n >= sizeof dir || (size_t)n >= leaf_len)
    return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s", dir);
  if (mkdir(dir, 0755) < 0 && errno != EEXIST)
    return mg_errf(err, err_len, -errno, "cannot create the leaf %s: %s", dir,
                   strerror(errno));
  char procs[PATH_MAX + 128], pid[24];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
  snprintf(pid, sizeof pid, "%ld", (long)self);
  rc = mg__cg_write(procs, pid);
  if (rc < 0) {
    rmdir(dir);
    return mg_errf(err, err_len, rc, "cannot move mgrun into %s: %s", dir,
                   mg_strerror(rc));
  }
  rc = mg__cg_join(path, sizeof path, info->dir, "cgroup.subtree_control");
  if (rc == 0)
    rc = mg__cg_write(path, "+memory");
  if (rc < 0)
    return mg_errf(err, err_len, rc,
                   "moved mgrun into %s, but enabling the memory controller "
                   "in %s still failed: %s",
                   dir, path, mg_strerror(rc));
  snprintf(leaf, leaf_len, "%s", dir);
  return 0;
}
