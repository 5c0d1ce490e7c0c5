/* mg_psi_trigger.c — PSI triggers: the kernel wakes a poller when tasks
 * stalled on memory for `stall` within a `window` (core layer).
 *
 * A trigger is written to a pressure file (/proc/pressure/memory, or a v2
 * group's memory.pressure) opened read-write: "some 150000 2000000" (both
 * in microseconds). The descriptor then reports POLLPRI at most once per
 * window while the stall goes on; closing it removes the trigger. The
 * kernel accepts windows of 500 ms .. 10 s; windows that are not a
 * multiple of 2 s need CAP_SYS_RESOURCE (an unprivileged trigger, or root
 * in a container without that capability, gets EINVAL or EPERM for them).
 * mg_psi_trigger_arm falls back to the shortest window that arms, keeping
 * the stall's share of the window, and says what it armed.
 */
#include "mg/mg_psi.h"

#include "mg/mg_error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#define PSI__PROC_MAGIC 0x9fa0        /* PROC_SUPER_MAGIC */
#define PSI__CGROUP2_MAGIC 0x63677270 /* CGROUP2_SUPER_MAGIC */

int mg_psi_trigger_check(uint64_t stall_us, uint64_t window_us, char *err,
                         size_t err_len) {
  if (window_us < MG_PSI_WINDOW_MIN_US || window_us > MG_PSI_WINDOW_MAX_US)
    return mg_errf(err, err_len, -EINVAL,
                   "window_ms: %" PRIu64 " (accepted: 500..10000)",
                   window_us / 1000);
  if (stall_us == 0 || stall_us > window_us)
    return mg_errf(err, err_len, -EINVAL,
                   "stall_ms: %" PRIu64 " (accepted: 1..window_ms, %" PRIu64
                   ")",
                   stall_us / 1000, window_us / 1000);
  return 0;
}

int mg_psi_trigger_open(const char *path, int full, uint64_t stall_us,
                        uint64_t window_us, int *fd, char *err,
                        size_t err_len) {
  if (!fd || !path)
    return mg_errf(err, err_len, -EINVAL, "psi trigger: no path or fd");
  *fd = -1;
  int rc = mg_psi_trigger_check(stall_us, window_us, err, err_len);
  if (rc < 0)
    return rc;
  int f = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (f < 0) {
    int e = errno;
    return mg_errf(err, err_len, e == ENOENT ? MG_ENOTSUP : -e,
                   "cannot open %s: %s%s", path, strerror(e),
                   e == ENOENT ? " (no PSI: Linux < 4.20, or psi=0)" : "");
  }
  /* Only the kernel's own pressure files take triggers: a fixture or any
   * other regular file would just be overwritten. */
  struct statfs sf;
  if (fstatfs(f, &sf) < 0 ||
      (sf.f_type != PSI__PROC_MAGIC && sf.f_type != PSI__CGROUP2_MAGIC)) {
    close(f);
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "%s is not a pressure file of the kernel (not on procfs "
                   "or cgroup2): no trigger can be armed on it",
                   path);
  }
  char line[96];
  int n = snprintf(line, sizeof line, "%s %" PRIu64 " %" PRIu64,
                   full ? "full" : "some", stall_us, window_us);
  ssize_t w;
  do {
    w = write(f, line, (size_t)n + 1); /* the kernel wants the NUL too */
  } while (w < 0 && errno == EINTR);
  if (w < 0) {
    int e = errno;
    close(f);
    return mg_errf(err, err_len, -e, "trigger '%s' refused by %s: %s", line,
                   path, strerror(e));
  }
  *fd = f;
  return 0;
}

int mg_psi_trigger_arm(const char *path, int full, uint64_t stall_us,
                       uint64_t window_us, mg_psi_trigger *out, char *err,
                       size_t err_len) {
  if (!out)
    return mg_errf(err, err_len, -EINVAL, "psi trigger: no result to fill");
  memset(out, 0, sizeof *out);
  out->fd = -1;
  char first[512];
  int rc = mg_psi_trigger_open(path, full, stall_us, window_us, &out->fd, first,
                               sizeof first);
  if (rc == 0) {
    out->stall_us = stall_us;
    out->window_us = window_us;
    return 0;
  }
  if (rc != -EINVAL && rc != -EPERM)
    return mg_errf(err, err_len, rc, "%s", first);
  if (mg_psi_trigger_check(stall_us, window_us, NULL, 0) < 0)
    return mg_errf(err, err_len, rc, "%s", first); /* our own refusal */
  /* Refused by the kernel: the next whole multiples of 2 s. */
  for (uint64_t w = 2000000; w <= MG_PSI_WINDOW_MAX_US; w += 2000000) {
    if (w <= window_us && window_us % 2000000 == 0)
      continue;
    uint64_t s = (uint64_t)((double)stall_us * (double)w / (double)window_us);
    if (s == 0)
      s = 1;
    if (mg_psi_trigger_open(path, full, s, w, &out->fd, NULL, 0) == 0) {
      out->stall_us = s;
      out->window_us = w;
      out->fell_back = 1;
      snprintf(out->why, sizeof out->why,
               "%s; armed %" PRIu64 " ms in %" PRIu64
               " ms instead (the same share of the window)",
               first, s / 1000, w / 1000);
      return 0;
    }
  }
  return mg_errf(err, err_len, rc, "%s (and no 2 s multiple armed either)",
                 first);
}
