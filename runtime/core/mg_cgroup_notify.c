/* mg_cgroup_notify.c — what the kernel can tell about a child group
 * without being polled (core layer: plain system calls, no event loop).
 *
 * Each function hands back a descriptor for the caller's event loop:
 *   - v1 usage thresholds: an eventfd registered through
 *     cgroup.event_control on memory.usage_in_bytes (or
 *     memory.memsw.usage_in_bytes); the kernel signals it each time the
 *     usage crosses the level, in either direction (it checks on charge
 *     and uncharge batches, so the usage may be up to a few hundred KiB
 *     past the level when it fires). Readable (POLLIN) → read 8 bytes.
 *   - v1 OOM: an eventfd registered on memory.oom_control, signalled at
 *     each OOM of the group (before the OOM killer has picked a victim).
 *   - v1 memory.pressure_level: an eventfd for "low" | "medium" |
 *     "critical" reclaim pressure.
 *   - v2 memory.events: the file itself; the kernel wakes pollers
 *     (POLLPRI | POLLERR) whenever a counter in it changes.
 * Registrations of v1 last as long as the eventfd is open (closing it
 * unregisters) or until the group is removed; the control files opened
 * to register are closed again at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg__cgroup.h"

static int cgn__v1_only(const mg_cgroup *cg, const char *what, char *err,
                        size_t err_len) {
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "%s: no group", what);
  if (mg_cgroup_get_version(cg) != MG_CGROUP_V1)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "%s exists only in cgroup v1 (%s is %s)", what,
                   mg_cgroup_dir(cg),
                   mg_cgroup_version_name(mg_cgroup_get_version(cg)));
  return 0;
}

/* Register "<efd> <fd of file> [args]" with cgroup.event_control; *fd
 * gets the eventfd. */
static int cgn__register(const mg_cgroup *cg, const char *file,
                         const char *args, int *fd, char *err, size_t err_len) {
  char path[PATH_MAX], ctl[PATH_MAX];
  *fd = -1;
  if (mg__cg_join(path, sizeof path, mg_cgroup_dir(cg), file) < 0 ||
      mg__cg_join(ctl, sizeof ctl, mg_cgroup_dir(cg), "cgroup.event_control") <
          0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "%s/%s: path too long",
                   mg_cgroup_dir(cg), file);
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0)
    return mg_errf(err, err_len, -errno, "eventfd: %s", strerror(errno));
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(efd);
    return mg_errf(err, err_len, -e, "cannot open %s: %s", path, strerror(e));
  }
  int c = open(ctl, O_WRONLY | O_CLOEXEC);
  if (c < 0) {
    int e = errno;
    close(target);
    close(efd);
    return mg_errf(err, err_len, -e, "cannot open %s: %s", ctl, strerror(e));
  }
  struct statfs sf; /* a fixture's plain file would just be overwritten */
  if (fstatfs(c, &sf) < 0 || sf.f_type != 0x27e0eb /* CGROUP_SUPER_MAGIC */) {
    close(c);
    close(target);
    close(efd);
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "%s is not a cgroup v1 control file of the kernel", ctl);
  }
  char line[128];
  int n = snprintf(line, sizeof line, "%d %d%s%s", efd, target, args ? " " : "",
                   args ? args : "");
  ssize_t w;
  do {
    w = write(c, line, (size_t)n);
  } while (w < 0 && errno == EINTR);
  int e = w < 0 ? errno : 0;
  close(c);
  close(target);
  if (w < 0) {
    close(efd);
    return mg_errf(err, err_len, -e, "cannot register '%s' with %s: %s", file,
                   ctl, strerror(e));
  }
  *fd = efd;
  return 0;
}

int mg_cgroup_threshold_open(mg_cgroup *cg, int memsw, uint64_t bytes, int *fd,
                             char *err, size_t err_len) {
  if (!fd)
    return mg_errf(err, err_len, -EINVAL, "threshold: no fd to fill");
  *fd = -1;
  int rc = cgn__v1_only(cg, "a usage threshold (cgroup.event_control)", err,
                        err_len);
  if (rc < 0)
    return rc;
  if (bytes == 0 || bytes > (uint64_t)INT64_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "threshold: %" PRIu64 " bytes (accepted: 1..2^63-1)", bytes);
  char arg[32];
  snprintf(arg, sizeof arg, "%" PRIu64, bytes);
  return cgn__register(
      cg, memsw ? "memory.memsw.usage_in_bytes" : "memory.usage_in_bytes", arg,
      fd, err, err_len);
}

int mg_cgroup_oom_open(mg_cgroup *cg, int *fd, char *err, size_t err_len) {
  if (!fd)
    return mg_errf(err, err_len, -EINVAL, "oom: no fd to fill");
  *fd = -1;
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "oom: no group");
  if (mg_cgroup_get_version(cg) == MG_CGROUP_V2)
    return mg_cgroup_events_open(cg, fd, err, err_len);
  return cgn__register(cg, "memory.oom_control", NULL, fd, err, err_len);
}

int mg_cgroup_pressure_level_open(mg_cgroup *cg, const char *level, int *fd,
                                  char *err, size_t err_len) {
  if (!fd)
    return mg_errf(err, err_len, -EINVAL, "pressure level: no fd to fill");
  *fd = -1;
  int rc = cgn__v1_only(cg, "memory.pressure_level", err, err_len);
  if (rc < 0)
    return rc;
  if (!level || (strcmp(level, "low") != 0 && strcmp(level, "medium") != 0 &&
                 strcmp(level, "critical") != 0))
    return mg_errf(err, err_len, -EINVAL,
                   "pressure level: '%s' (accepted: low, medium, critical)",
                   level ? level : "(null)");
  return cgn__register(cg, "memory.pressure_level", level, fd, err, err_len);
}

int mg_cgroup_events_open(mg_cgroup *cg, int *fd, char *err, size_t err_len) {
  if (!fd)
    return mg_errf(err, err_len, -EINVAL, "memory.events: no fd to fill");
  *fd = -1;
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "memory.events: no group");
  if (mg_cgroup_get_version(cg) != MG_CGROUP_V2)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "memory.events exists only in cgroup v2 (%s is %s)",
                   mg_cgroup_dir(cg),
                   mg_cgroup_version_name(mg_cgroup_get_version(cg)));
  char path[PATH_MAX];
  if (mg__cg_join(path, sizeof path, mg_cgroup_dir(cg), "memory.events") < 0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "%s: path too long",
                   mg_cgroup_dir(cg));
  int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f < 0)
    return mg_errf(err, err_len, -errno, "cannot open %s: %s", path,
                   strerror(errno));
  *fd = f;
  return 0;
}

int mg_cgroup_eventfd_drain(int fd, uint64_t *count) {
  uint64_t v = 0;
  ssize_t n;
  do {
    n = read(fd, &v, sizeof v);
  } while (n < 0 && errno == EINTR);
  if (count)
    *count = n == (ssize_t)sizeof v ? v : 0;
  if (n < 0)
    return errno == EAGAIN ? 0 : -errno;
  return 0;
}

int mg_cgroup_freeze(mg_cgroup *cg, int frozen, char *err, size_t err_len) {
  if (!cg)
    return mg_errf(err, err_len, -EINVAL, "freeze: no group");
  if (mg_cgroup_get_version(cg) != MG_CGROUP_V2)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "cgroup.freeze exists only in cgroup v2 (%s is %s)",
                   mg_cgroup_dir(cg),
                   mg_cgroup_version_name(mg_cgroup_get_version(cg)));
  char path[PATH_MAX];
  if (mg__cg_join(path, sizeof path, mg_cgroup_dir(cg), "cgroup.freeze") < 0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "%s: path too long",
                   mg_cgroup_dir(cg));
  int rc = mg__cg_write(path, frozen ? "1" : "0");
  if (rc == -ENOENT)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "cannot open %s: %s (the freezer needs Linux >= 5.2)", path,
                   strerror(ENOENT));
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot write %s: %s", path,
                   mg_strerror(rc));
  return 0;
}
