/* mg_rlimit.c — memory rlimits: enforcement probe, get and set on this
 * process or another through prlimit (core layer).
 *
 * The probe runs in a forked child that uses only system calls (no malloc
 * after fork): it sets the limit 32 MiB above its own current use (VmData
 * or VmSize), which also works under AddressSanitizer, whose shadow memory
 * makes those numbers huge, then checks that 8 MiB can be mapped and 64 MiB
 * more cannot. Both limits are checked when a mapping is made, so no page
 * is touched, and the child unmaps what it mapped before it exits. The
 * verdict comes back through a pipe; each resource's first verdict is
 * cached for the life of the process.
 *
 * In a process with one thread (mgrun), the child shares the parent's
 * memory while the parent waits (clone with CLONE_VM | CLONE_VFORK: no
 * page tables to copy, a quarter of fork's cost): rlimits are per process,
 * so the child's limit is its own, and with the only thread of the parent
 * stopped nothing else can map memory meanwhile. Elsewhere (other threads
 * could map memory while the probe counts it; sanitizer builds) it forks.
 */
#include "mg/mg_rlimit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mg/mg_error.h"
#include "mg/mg_size.h"
#include "mg__fileio.h"

#define RL__MIB (UINT64_C(1) << 20)
#define RL__HEADROOM_BYTES (32 * RL__MIB)
#define RL__UNDER_BYTES (8 * RL__MIB)
#define RL__PAST_BYTES (64 * RL__MIB)

const char *mg_rlimit_name(mg_rlimit_resource r) {
  return r == MG_RLIMIT_AS ? "as" : "data";
}

static const char *rl__kernel_name(mg_rlimit_resource r) {
  return r == MG_RLIMIT_AS ? "RLIMIT_AS" : "RLIMIT_DATA";
}

int mg_rlimit_from_name(const char *name, mg_rlimit_resource *out, char *err,
                        size_t err_len) {
  if (name && strcmp(name, "data") == 0) {
    if (out)
      *out = MG_RLIMIT_DATA;
    return 0;
  }
  if (name && strcmp(name, "as") == 0) {
    if (out)
      *out = MG_RLIMIT_AS;
    return 0;
  }
  return mg_errf(err, err_len, -EINVAL,
                 "unknown rlimit resource \"%.64s\": accepted are \"data\" "
                 "(RLIMIT_DATA, the default) and \"as\" (RLIMIT_AS)",
                 name ? name : "(null)");
}

/* RLIMIT_* of a resource, or -1 when out of range. */
static int rl__resource(mg_rlimit_resource r) {
  switch (r) {
  case MG_RLIMIT_DATA:
    return RLIMIT_DATA;
  case MG_RLIMIT_AS:
    return RLIMIT_AS;
  default:
    return -1;
  }
}

/* ------------------------------------------------------------- probe */

enum {
  RL__ENFORCED = 1,
  RL__NOT_ENFORCED,
  RL__STATUS_FAILED, /* could not read VmData/VmSize */
  RL__SET_FAILED,
  RL__UNDER_FAILED,
  RL__OTHER_ERRNO, /* the allocation past the limit failed, but not ENOMEM */
  RL__HARD_TOO_LOW /* the hard limit leaves no headroom to test with */
};

/* What the probe child writes to the pipe. */
typedef struct rl__result {
  int verdict;
  int err;             /* errno of the failing step */
  uint64_t base_bytes; /* VmData / VmSize before the limit */
  uint64_t hard_bytes; /* the hard limit, for RL__HARD_TOO_LOW */
} rl__result;

/* Value in kB of "<key>   N kB" in /proc/self/status text → bytes. */
static int rl__status_kb(const char *text, const char *key, uint64_t *bytes) {
  const char *p = strstr(text, key);
  if (!p)
    return -ENOENT;
  p += strlen(key);
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p < '0' || *p > '9')
    return -EINVAL;
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++)
    v = v * 10 + (uint64_t)(*p - '0');
  *bytes = v * 1024;
  return 0;
}

/* mmap straight through the system call (no interposed allocator). */
static void *rl__mmap(uint64_t len) {
  long r = syscall(SYS_mmap, NULL, (size_t)len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return r == -1 ? MAP_FAILED : (void *)r;
}

/* The probe child: system calls only, then _exit. */
static void rl__child(mg_rlimit_resource r, int fd) {
  rl__result res = {0, 0, 0, 0};
  char buf[8192];
  int rc = mg__read_file("/proc/self/status", buf, sizeof buf, NULL);
  if (rc == 0 || rc == -EFBIG)
    rc = rl__status_kb(
        buf, r == MG_RLIMIT_AS ? "\nVmSize:" : "\nVmData:", &res.base_bytes);
  if (rc < 0) {
    res.verdict = RL__STATUS_FAILED;
    res.err = -rc;
    goto report;
  }
  struct rlimit lim;
  if (getrlimit(rl__resource(r), &lim) < 0) {
    res.verdict = RL__SET_FAILED;
    res.err = errno;
    goto report;
  }
  lim.rlim_cur = (rlim_t)(res.base_bytes + RL__HEADROOM_BYTES);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_cur > lim.rlim_max) {
    res.verdict = RL__HARD_TOO_LOW;
    res.hard_bytes = (uint64_t)lim.rlim_max;
    goto report;
  }
  if (setrlimit(rl__resource(r), &lim) < 0) {
    res.verdict = RL__SET_FAILED;
    res.err = errno;
    goto report;
  }
  void *under = rl__mmap(RL__UNDER_BYTES);
  if (under == MAP_FAILED) {
    res.verdict = RL__UNDER_FAILED;
    res.err = errno;
    goto report;
  }
  void *past = rl__mmap(RL__PAST_BYTES);
  if (past != MAP_FAILED) {
    res.verdict = RL__NOT_ENFORCED;
    syscall(SYS_munmap, past, (size_t)RL__PAST_BYTES);
  } else {
    res.err = errno;
    res.verdict = res.err == ENOMEM ? RL__ENFORCED : RL__OTHER_ERRNO;
  }
  /* the memory may be the parent's (CLONE_VM): leave it as it was */
  syscall(SYS_munmap, under, (size_t)RL__UNDER_BYTES);
report:;
  const char *p = (const char *)&res;
  size_t left = sizeof res;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    p += n;
    left -= (size_t)n;
  }
  _exit(0);
}

/* Sharing the parent's memory: not under a sanitizer, whose runtime does
 * not expect a second process in the same memory. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RL__SHARE_MEMORY 1
#endif

#ifdef RL__SHARE_MEMORY
typedef struct rl__clone_arg {
  mg_rlimit_resource r;
  int fd, other_fd;
} rl__clone_arg;

static int rl__clone_main(void *p) {
  const rl__clone_arg *a = p;
  close(a->other_fd);
  rl__child(a->r, a->fd);
  return 0;
}

/* Does this process have exactly one thread? */
static int rl__one_thread(void) {
  char buf[4096];
  int rc = mg__read_file("/proc/self/status", buf, sizeof buf, NULL);
  if (rc != 0 && rc != -EFBIG)
    return 0;
  const char *t = strstr(buf, "\nThreads:");
  return t && strtol(t + 9, NULL, 10) == 1;
}

#define RL__CLONE_STACK (64 * 1024)
#endif

/* The probe child: sharing the parent's memory where that is safe (see the
 * file comment), else forked. Returns its pid, or -1 with errno. */
static pid_t rl__spawn_child(mg_rlimit_resource r, int fds[2]) {
#ifdef RL__SHARE_MEMORY
  if (rl__one_thread()) {
    char *stack = malloc(RL__CLONE_STACK);
    if (stack) {
      rl__clone_arg a = {r, fds[1], fds[0]};
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, &old); /* no handler in the child */
      pid_t pid = clone(rl__clone_main, stack + RL__CLONE_STACK,
                        CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
      int e = errno;
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      free(stack); /* the child has exited (CLONE_VFORK) */
      errno = e;
      if (pid > 0)
        return pid;
    }
  }
#endif
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    rl__child(r, fds[1]);
  }
  return pid;
}

/* Run one probe child; fill *enforced and reason. Returns 0 or -errno when
 * the child could not be run at all. */
static int rl__probe_one(mg_rlimit_resource r, int *enforced, char *reason,
                         size_t reason_len) {
  const char *kname = rl__kernel_name(r);
  *enforced = 0;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    int rc = -errno;
    return mg_errf(reason, reason_len, rc, "cannot probe %s: pipe failed: %s",
                   kname, mg_strerror(rc));
  }
  pid_t pid = rl__spawn_child(r, fds);
  if (pid < 0) {
    int rc = -errno;
    close(fds[0]);
    close(fds[1]);
    return mg_errf(reason, reason_len, rc, "cannot probe %s: fork failed: %s",
                   kname, mg_strerror(rc));
  }
  close(fds[1]);
  rl__result res = {0, 0, 0, 0};
  size_t got = 0;
  while (got < sizeof res) {
    ssize_t n = read(fds[0], (char *)&res + got, sizeof res - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got != sizeof res) {
    if (WIFSIGNALED(status))
      mg_errf(reason, reason_len, 0,
              "unknown: the %s probe child died of signal %d", kname,
              WTERMSIG(status));
    else
      mg_errf(reason, reason_len, 0,
              "unknown: the %s probe child exited without a result", kname);
    return 0;
  }
  char base[32], hard[32];
  mg_size_format(res.base_bytes, base, sizeof base);
  switch (res.verdict) {
  case RL__ENFORCED:
    *enforced = 1;
    mg_errf(reason, reason_len, 0,
            "enforced: with %s set 32 MiB above current use (%s %s), an "
            "8 MiB allocation succeeded and a 64 MiB one failed with ENOMEM",
            kname, r == MG_RLIMIT_AS ? "VmSize" : "VmData", base);
    break;
  case RL__NOT_ENFORCED:
    mg_errf(reason, reason_len, 0,
            "not enforced: a 64 MiB allocation past a 32 MiB headroom "
            "succeeded under %s",
            kname);
    break;
  case RL__STATUS_FAILED:
    mg_errf(reason, reason_len, 0,
            "unknown: cannot read %s from /proc/self/status: %s",
            r == MG_RLIMIT_AS ? "VmSize" : "VmData", strerror(res.err));
    break;
  case RL__HARD_TOO_LOW:
    mg_size_format(res.hard_bytes, hard, sizeof hard);
    mg_errf(reason, reason_len, 0,
            "unknown: the hard limit of %s (%s) leaves no 32 MiB above "
            "current use (%s) to test with",
            kname, hard, base);
    break;
  case RL__SET_FAILED:
    mg_errf(reason, reason_len, 0, "setrlimit(%s) failed: %s", kname,
            strerror(res.err));
    break;
  case RL__UNDER_FAILED:
    mg_errf(reason, reason_len, 0,
            "an allocation under the limit failed too: 8 MiB with %s 32 MiB "
            "above current use: %s",
            kname, strerror(res.err));
    break;
  default:
    mg_errf(reason, reason_len, 0,
            "not enforced as expected: a 64 MiB allocation past %s failed "
            "with %s, not ENOMEM",
            kname, strerror(res.err));
    break;
  }
  return 0;
}

int mg_rlimit_probe_uncached(mg_rlimit_support *out) {
  if (!out)
    return -EINVAL;
  memset(out, 0, sizeof *out);
  int rc = rl__probe_one(MG_RLIMIT_DATA, &out->data_enforced, out->data_reason,
                         sizeof out->data_reason);
  int rc2 = rl__probe_one(MG_RLIMIT_AS, &out->as_enforced, out->as_reason,
                          sizeof out->as_reason);
  return rc < 0 ? rc : rc2;
}

/* The first verdict of each resource, for the life of the process. */
static pthread_mutex_t rl__cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int valid, enforced;
  char reason[sizeof((mg_rlimit_support *)0)->data_reason];
} rl__cache[2];

int mg_rlimit_probe_one(mg_rlimit_resource r, int *enforced, char *reason,
                        size_t reason_len) {
  if (enforced)
    *enforced = 0;
  if (rl__resource(r) < 0)
    return mg_errf(reason, reason_len, -EINVAL,
                   "mg_rlimit_probe_one: bad resource %d", (int)r);
  pthread_mutex_lock(&rl__cache_lock);
  int rc = 0;
  if (!rl__cache[r].valid) {
    rc = rl__probe_one(r, &rl__cache[r].enforced, rl__cache[r].reason,
                       sizeof rl__cache[r].reason);
    rl__cache[r].valid = rc == 0; /* a failed fork is retried next time */
  }
  if (enforced)
    *enforced = rl__cache[r].enforced;
  if (reason && reason_len)
    snprintf(reason, reason_len, "%s", rl__cache[r].reason);
  pthread_mutex_unlock(&rl__cache_lock);
  return rc;
}

int mg_rlimit_probe(mg_rlimit_support *out) {
  if (!out)
    return -EINVAL;
  memset(out, 0, sizeof *out);
  int rc = mg_rlimit_probe_one(MG_RLIMIT_DATA, &out->data_enforced,
                               out->data_reason, sizeof out->data_reason);
  int rc2 = mg_rlimit_probe_one(MG_RLIMIT_AS, &out->as_enforced, out->as_reason,
                                sizeof out->as_reason);
  return rc < 0 ? rc : rc2;
}

int mg_rlimit_preferred(const mg_rlimit_support *s, mg_rlimit_resource *out,
                        char *err, size_t err_len) {
  if (!s)
    return mg_errf(err, err_len, -EINVAL, "mg_rlimit_preferred: no support");
  if (s->data_enforced || s->as_enforced) {
    if (out)
      *out = s->data_enforced ? MG_RLIMIT_DATA : MG_RLIMIT_AS;
    if (err && err_len)
      err[0] = '\0';
    return 0;
  }
  return mg_errf(err, err_len, MG_ENOTENFORCED,
                 "neither RLIMIT_DATA nor RLIMIT_AS is enforced here: data: "
                 "%s; as: %s",
                 s->data_reason, s->as_reason);
}

/* ------------------------------------------------------------ get / set */

static uint64_t rl__to_bytes(rlim_t v) {
  return v == RLIM_INFINITY ? MG_RLIMIT_UNLIMITED : (uint64_t)v;
}

static rlim_t rl__from_bytes(uint64_t v) {
  return v == MG_RLIMIT_UNLIMITED ? RLIM_INFINITY : (rlim_t)v;
}

/* "1.00 GiB" or "unlimited". */
static char *rl__fmt(uint64_t bytes, char *buf, size_t len) {
  if (bytes == MG_RLIMIT_UNLIMITED) {
    snprintf(buf, len, "unlimited");
    return buf;
  }
  return mg_size_format(bytes, buf, len);
}

/* "pid N" or "this process" (pid 0). */
static const char *rl__who(pid_t pid, char *buf, size_t len) {
  if (pid == 0)
    snprintf(buf, len, "this process");
  else
    snprintf(buf, len, "pid %ld", (long)pid);
  return buf;
}

/* prlimit's errno as a message about `pid`. */
static int rl__pid_error(int e, pid_t pid, const char *verb, char *err,
                         size_t err_len) {
  char who[32];
  if (e == ESRCH)
    return mg_errf(err, err_len, -e, "no process with pid %ld", (long)pid);
  if (e == EPERM)
    return mg_errf(err, err_len, -e,
                   "not permitted to %s limits of %s (needs "
                   "CAP_SYS_RESOURCE or the same user)",
                   verb, rl__who(pid, who, sizeof who));
  return mg_errf(err, err_len, -e, "prlimit on %s failed: %s",
                 rl__who(pid, who, sizeof who), strerror(e));
}

int mg_rlimit_get(pid_t pid, mg_rlimit_resource r, uint64_t *soft,
                  uint64_t *hard, char *err, size_t err_len) {
  int res = rl__resource(r);
  if (res < 0 || pid < 0)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_rlimit_get: bad resource %d or pid %ld", (int)r,
                   (long)pid);
  struct rlimit lim;
  if (prlimit(pid, (__rlimit_resource_t)res, NULL, &lim) < 0)
    return rl__pid_error(errno, pid, "read", err, err_len);
  if (soft)
    *soft = rl__to_bytes(lim.rlim_cur);
  if (hard)
    *hard = rl__to_bytes(lim.rlim_max);
  return 0;
}

int mg_rlimit_set(pid_t pid, mg_rlimit_resource r, uint64_t bytes,
                  int also_hard, uint64_t *applied_bytes, char *warn,
                  size_t warn_len, char *err, size_t err_len) {
  if (warn && warn_len)
    warn[0] = '\0';
  int res = rl__resource(r);
  if (res < 0 || pid < 0)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_rlimit_set: bad resource %d or pid %ld", (int)r,
                   (long)pid);
  const char *kname = rl__kernel_name(r);
  struct rlimit old, lim;
  if (prlimit(pid, (__rlimit_resource_t)res, NULL, &old) < 0)
    return rl__pid_error(errno, pid, "change", err, err_len);
  uint64_t hard = rl__to_bytes(old.rlim_max);
  uint64_t soft = bytes;
  char a[32], b[32], c[32];
  if (also_hard) {
    lim.rlim_cur = lim.rlim_max = rl__from_bytes(bytes);
  } else {
    if (hard != MG_RLIMIT_UNLIMITED && bytes > hard) {
      soft = hard;
      mg_errf(warn, warn_len, 0,
              "requested %s exceeds the hard limit %s of %s; applied %s",
              rl__fmt(bytes, a, sizeof a), rl__fmt(hard, b, sizeof b), kname,
              rl__fmt(soft, c, sizeof c));
    }
    lim.rlim_cur = rl__from_bytes(soft);
    lim.rlim_max = old.rlim_max;
  }
  if (prlimit(pid, (__rlimit_resource_t)res, &lim, NULL) < 0) {
    int e = errno;
    char who[32];
    if (e == EPERM && also_hard && bytes > hard)
      return mg_errf(err, err_len, -e,
                     "not permitted to raise the hard limit of %s of %s from "
                     "%s to %s (needs CAP_SYS_RESOURCE)",
                     kname, rl__who(pid, who, sizeof who),
                     rl__fmt(hard, a, sizeof a), rl__fmt(bytes, b, sizeof b));
    if (e == EINVAL)
      return mg_errf(err, err_len, -e,
                     "cannot set %s of %s to %s: the kernel rejected the "
                     "value",
                     kname, rl__who(pid, who, sizeof who),
                     rl__fmt(bytes, a, sizeof a));
    return rl__pid_error(e, pid, "change", err, err_len);
  }
  if (applied_bytes)
    *applied_bytes = soft;
  return 0;
}
