/* mg_kill.c — SIGKILL a process and take its memory back at once (core
 * layer). A killed process frees its memory only as its exit path runs,
 * which can take long for a large address space (or a process stuck in
 * the kernel); process_mrelease (Linux >= 5.15) reaps its private memory
 * from the caller's context right after the kill, as oomd and
 * lmkd do. Through a pidfd, so a pid reused between the lookup and the
 * kill is not hit. Older kernels: a plain kill.
 */
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mg/mg_proc.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif

int mg_kill_release(pid_t pid) {
  if (pid <= 0)
    return -EINVAL;
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    if (errno == ESRCH)
      return -ESRCH;
    return kill(pid, SIGKILL) == 0 ? 0 : -errno; /* no pidfd: < 5.3 */
  }
  int rc = 0;
  if (syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) < 0)
    rc = -errno;
  else if (syscall(SYS_process_mrelease, fd, 0) == 0)
    rc = 1;
  close(fd);
  return rc;
}
