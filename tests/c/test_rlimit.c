/* test_rlimit.c — the rlimit enforcement probe, get/set on this process
 * and on a child (prlimit), clamping to a finite hard limit, errors. Tests
 * that lower limits irreversibly (hard limits, dropped privileges) run in
 * forked children so this process keeps its own limits. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mg/mg_error.h"
#include "mg/mg_proc.h"
#include "mg/mg_rlimit.h"
#include "mg/mg_size.h"
#include "mg_test.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static char err[1024], warn[512];

/* VmData of `pid` (0 = self) in bytes, from /proc. */
static uint64_t vm_data(pid_t pid) {
  char path[64], line[256];
  if (pid)
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
  else
    snprintf(path, sizeof path, "/proc/self/status");
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmData: %llu kB", &kb) == 1)
      break;
  fclose(f);
  return (uint64_t)kb * 1024;
}

/* Try to map `len` bytes; returns 0 or the errno. */
static int try_map(uint64_t len) {
  void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return errno;
  munmap(p, (size_t)len);
  return 0;
}

/* Run `fn` in a forked child; its `len`-byte result comes back into `out`.
 * Returns the child's wait status. */
static int in_child(void (*fn)(void *), void *out, size_t len) {
  int fds[2];
  if (pipe(fds) < 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    fn(out);
    ssize_t n = write(fds[1], out, len);
    _exit(n == (ssize_t)len ? 0 : 9);
  }
  close(fds[1]);
  size_t got = 0;
  while (pid > 0 && got < len) {
    ssize_t n = read(fds[0], (char *)out + got, len - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fds[0]);
  int status = -1;
  if (pid > 0)
    waitpid(pid, &status, 0);
  return got == len ? status : -1;
}

TEST(probe_cached_and_uncached_agree) {
  mg_rlimit_support a, b, c;
  ASSERT_EQ(mg_rlimit_probe(&a), 0);
  ASSERT_EQ(mg_rlimit_probe_uncached(&b), 0);
  ASSERT_EQ(mg_rlimit_probe(&c), 0);
  fprintf(stderr, "  data: %s\n  as: %s\n", a.data_reason, a.as_reason);
  ASSERT_EQ(a.data_enforced, b.data_enforced);
  ASSERT_EQ(a.as_enforced, b.as_enforced);
  ASSERT(memcmp(&a, &c, sizeof a) == 0); /* the cache, byte for byte */
  /* Linux >= 4.7 counts private writable mappings against RLIMIT_DATA */
  ASSERT_EQ(a.data_enforced, 1);
  ASSERT_CONTAINS(a.data_reason, "enforced: with RLIMIT_DATA set 32 MiB");
  ASSERT_CONTAINS(a.data_reason, "failed with ENOMEM");
  ASSERT_EQ(a.as_enforced, 1);
  ASSERT_CONTAINS(a.as_reason, "RLIMIT_AS");
  ASSERT_EQ(mg_rlimit_probe(NULL), -EINVAL);
}

/* The probe child may share this process's memory (one thread, no
 * sanitizer): it must leave it exactly as it was. */
TEST(probe_leaves_the_parents_memory_alone) {
  mg_proc_status before, after;
  mg_rlimit_support s;
  ASSERT_EQ(mg_proc_status_read(NULL, getpid(), &before, NULL, 0), 0);
  for (int i = 0; i < 20; i++)
    ASSERT_EQ(mg_rlimit_probe_uncached(&s), 0);
  ASSERT_EQ(mg_proc_status_read(NULL, getpid(), &after, NULL, 0), 0);
  ASSERT_U64_EQ(after.data_bytes, before.data_bytes);
  ASSERT_U64_EQ(after.vsize_bytes, before.vsize_bytes);
  ASSERT_EQ(s.data_enforced, 1);
  /* and the parent's own limits are untouched by the child's */
  struct rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_DATA, &rl), 0);
  ASSERT(rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (64u << 20));
}

/* One resource alone: the same verdict and reason as the pair, from the
 * same cache. */
TEST(probe_one_resource) {
  mg_rlimit_support s;
  ASSERT_EQ(mg_rlimit_probe(&s), 0);
  int enforced = -1;
  char reason[256];
  ASSERT_EQ(
      mg_rlimit_probe_one(MG_RLIMIT_DATA, &enforced, reason, sizeof reason), 0);
  ASSERT_EQ(enforced, s.data_enforced);
  ASSERT_STR_EQ(reason, s.data_reason);
  ASSERT_EQ(mg_rlimit_probe_one(MG_RLIMIT_AS, &enforced, NULL, 0), 0);
  ASSERT_EQ(enforced, s.as_enforced);
  ASSERT_EQ(mg_rlimit_probe_one((mg_rlimit_resource)5, &enforced, reason,
                                sizeof reason),
            -EINVAL);
  ASSERT_EQ(enforced, 0);
  ASSERT_CONTAINS(reason, "bad resource 5");
}

TEST(preferred) {
  mg_rlimit_support s;
  mg_rlimit_resource r = MG_RLIMIT_AS;
  ASSERT_EQ(mg_rlimit_probe(&s), 0);
  ASSERT_EQ(mg_rlimit_preferred(&s, &r, err, sizeof err), 0);
  ASSERT_EQ(r, MG_RLIMIT_DATA);

  memset(&s, 0, sizeof s);
  s.as_enforced = 1;
  ASSERT_EQ(mg_rlimit_preferred(&s, &r, err, sizeof err), 0);
  ASSERT_EQ(r, MG_RLIMIT_AS);

  memset(&s, 0, sizeof s);
  snprintf(s.data_reason, sizeof s.data_reason, "reason-one");
  snprintf(s.as_reason, sizeof s.as_reason, "reason-two");
  ASSERT_EQ(mg_rlimit_preferred(&s, &r, err, sizeof err), MG_ENOTENFORCED);
  ASSERT_CONTAINS(err, "neither RLIMIT_DATA nor RLIMIT_AS");
  ASSERT_CONTAINS(err, "reason-one");
  ASSERT_CONTAINS(err, "reason-two");
}

TEST(names) {
  mg_rlimit_resource r = MG_RLIMIT_AS;
  ASSERT_EQ(mg_rlimit_from_name("data", &r, err, sizeof err), 0);
  ASSERT_EQ(r, MG_RLIMIT_DATA);
  ASSERT_EQ(mg_rlimit_from_name("as", &r, err, sizeof err), 0);
  ASSERT_EQ(r, MG_RLIMIT_AS);
  ASSERT_STR_EQ(mg_rlimit_name(MG_RLIMIT_DATA), "data");
  ASSERT_STR_EQ(mg_rlimit_name(MG_RLIMIT_AS), "as");
  const char *bad[] = {"", "DATA", "rss", "data ", "asx"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(mg_rlimit_from_name(bad[i], &r, err, sizeof err), -EINVAL);
    ASSERT_CONTAINS(err, "accepted are \"data\"");
    ASSERT_CONTAINS(err, "\"as\"");
  }
  ASSERT_EQ(mg_rlimit_from_name("rss", &r, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "\"rss\"");
  ASSERT_EQ(mg_rlimit_from_name(NULL, &r, err, sizeof err), -EINVAL);
}

TEST(set_self_data_limit_is_enforced) {
  uint64_t soft0, hard0, soft1 = 0, applied = 0;
  ASSERT_EQ(mg_rlimit_get(0, MG_RLIMIT_DATA, &soft0, &hard0, err, sizeof err),
            0);
  struct rlimit lim;
  getrlimit(RLIMIT_DATA, &lim);
  ASSERT_U64_EQ(soft0, lim.rlim_cur == RLIM_INFINITY ? MG_RLIMIT_UNLIMITED
                                                     : lim.rlim_cur);
  uint64_t base = vm_data(0);
  ASSERT_GT(base, 0);
  uint64_t want = base + 64 * MIB;
  /* Nothing that can fail or allocate between set and restore. */
  int rc = mg_rlimit_set(0, MG_RLIMIT_DATA, want, 0, &applied, warn,
                         sizeof warn, err, sizeof err);
  int get_rc = mg_rlimit_get(0, MG_RLIMIT_DATA, &soft1, NULL, NULL, 0);
  int big = try_map(128 * MIB);
  int small = try_map(8 * MIB);
  int restore =
      mg_rlimit_set(0, MG_RLIMIT_DATA, soft0, 0, NULL, NULL, 0, NULL, 0);
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(restore, 0);
  ASSERT_EQ(get_rc, 0);
  ASSERT_U64_EQ(applied, want);
  ASSERT_U64_EQ(soft1, want);
  ASSERT_STR_EQ(warn, "");
  ASSERT_EQ(big, ENOMEM);
  ASSERT_EQ(small, 0);
  uint64_t soft2;
  ASSERT_EQ(mg_rlimit_get(0, MG_RLIMIT_DATA, &soft2, NULL, err, sizeof err), 0);
  ASSERT_U64_EQ(soft2, soft0);
  ASSERT_EQ(try_map(128 * MIB), 0); /* restored */
}

/* Unlimited round-trips through RLIM_INFINITY. */
static void unlimited_child(void *out) {
  uint64_t *r = out;
  struct rlimit lim = {(rlim_t)1 << 50, RLIM_INFINITY}; /* finite */
  setrlimit(RLIMIT_AS, &lim);
  r[0] = (uint64_t)mg_rlimit_set(0, MG_RLIMIT_AS, MG_RLIMIT_UNLIMITED, 0, &r[1],
                                 NULL, 0, NULL, 0);
  getrlimit(RLIMIT_AS, &lim);
  r[2] = lim.rlim_cur == RLIM_INFINITY;
  mg_rlimit_get(0, MG_RLIMIT_AS, &r[3], NULL, NULL, 0);
}

TEST(unlimited_round_trip) {
  uint64_t r[4] = {1, 0, 0, 0};
  int status = in_child(unlimited_child, r, sizeof r);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_U64_EQ(r[0], 0);
  ASSERT_U64_EQ(r[1], MG_RLIMIT_UNLIMITED);
  ASSERT_U64_EQ(r[2], 1);
  ASSERT_U64_EQ(r[3], MG_RLIMIT_UNLIMITED);
}

TEST(set_on_child_pid) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1)
      _exit(3);
    if (try_map(4 * MIB) != 0)
      _exit(2); /* under the limit must work */
    _exit(try_map(128 * MIB) == ENOMEM ? 0 : 1);
  }
  close(fds[0]);
  uint64_t want = vm_data(pid) + 32 * MIB, applied = 0, soft = 0;
  int rc = mg_rlimit_set(pid, MG_RLIMIT_DATA, want, 0, &applied, warn,
                         sizeof warn, err, sizeof err);
  int get_rc = mg_rlimit_get(pid, MG_RLIMIT_DATA, &soft, NULL, err, sizeof err);
  char c = 'g';
  ssize_t w = write(fds[1], &c, 1);
  close(fds[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_EQ(w, 1);
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(get_rc, 0);
  ASSERT_U64_EQ(applied, want);
  ASSERT_U64_EQ(soft, want);
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
}

typedef struct clamp_result {
  int rc;
  int perm_rc;
  int other_rc;
  int get_other_rc;
  int is_root;
  uint64_t hard, applied, soft_after, hard_after;
  char warn[256];
  char expect[256];
  char perm_err[256];
  char other_err[256];
} clamp_result;

/* In a child: make the hard DATA limit finite, ask for more (clamped with
 * a warning), then drop root and try to raise the hard limit (EPERM). */
static void clamp_child(void *out) {
  clamp_result *r = out;
  memset(r, 0, sizeof *r);
  uint64_t h = (vm_data(0) + 256 * MIB + GIB - 1) / GIB * GIB;
  r->hard = h;
  struct rlimit lim = {(rlim_t)h, (rlim_t)h};
  if (setrlimit(RLIMIT_DATA, &lim) < 0) {
    r->rc = -errno;
    return;
  }
  r->rc = mg_rlimit_set(0, MG_RLIMIT_DATA, h + GIB, 0, &r->applied, r->warn,
                        sizeof r->warn, NULL, 0);
  mg_rlimit_get(0, MG_RLIMIT_DATA, &r->soft_after, &r->hard_after, NULL, 0);
  char a[32], b[32];
  snprintf(r->expect, sizeof r->expect,
           "requested %s exceeds the hard limit %s of RLIMIT_DATA; applied %s",
           mg_size_format(h + GIB, a, sizeof a), mg_size_format(h, b, sizeof b),
           b);
  r->is_root = geteuid() == 0;
  if (r->is_root && setuid(65534) == 0) {
    r->perm_rc = mg_rlimit_set(0, MG_RLIMIT_DATA, h + GIB, 1, NULL, NULL, 0,
                               r->perm_err, sizeof r->perm_err);
    r->other_rc = mg_rlimit_set(1, MG_RLIMIT_DATA, h, 0, NULL, NULL, 0,
                                r->other_err, sizeof r->other_err);
    r->get_other_rc = mg_rlimit_get(1, MG_RLIMIT_DATA, NULL, NULL, NULL, 0);
  }
}

TEST(clamp_to_finite_hard_limit) {
  clamp_result r;
  int status = in_child(clamp_child, &r, sizeof r);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(r.rc, 0);
  ASSERT_U64_EQ(r.applied, r.hard);
  ASSERT_U64_EQ(r.soft_after, r.hard);
  ASSERT_U64_EQ(r.hard_after, r.hard);
  ASSERT_STR_EQ(r.warn, r.expect);
  if (r.hard == GIB) /* the usual case without sanitizers */
    ASSERT_STR_EQ(r.warn, "requested 2.00 GiB exceeds the hard limit 1.00 "
                          "GiB of RLIMIT_DATA; applied 1.00 GiB");
  if (!r.is_root) {
    fprintf(stderr, "  (not root: EPERM checks skipped)\n");
    return;
  }
  ASSERT_EQ(r.perm_rc, -EPERM);
  ASSERT_CONTAINS(r.perm_err, "not permitted to raise the hard limit of "
                              "RLIMIT_DATA of this process");
  ASSERT_CONTAINS(r.perm_err, "CAP_SYS_RESOURCE");
  ASSERT_EQ(r.other_rc, -EPERM);
  ASSERT_STR_EQ(r.other_err, "not permitted to change limits of pid 1 (needs "
                             "CAP_SYS_RESOURCE or the same user)");
  ASSERT_EQ(r.get_other_rc, -EPERM);
}

TEST(dead_pid_is_esrch) {
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  ASSERT_GT(pid, 0);
  waitpid(pid, NULL, 0);
  char want[64];
  snprintf(want, sizeof want, "no process with pid %ld", (long)pid);
  uint64_t soft;
  ASSERT_EQ(mg_rlimit_get(pid, MG_RLIMIT_DATA, &soft, NULL, err, sizeof err),
            -ESRCH);
  ASSERT_STR_EQ(err, want);
  ASSERT_EQ(mg_rlimit_set(pid, MG_RLIMIT_AS, GIB, 0, NULL, warn, sizeof warn,
                          err, sizeof err),
            -ESRCH);
  ASSERT_STR_EQ(err, want);
  ASSERT_EQ(
      mg_rlimit_get(0, (mg_rlimit_resource)7, &soft, NULL, err, sizeof err),
      -EINVAL);
}

typedef struct low_hard_result {
  int rc, data_enforced;
  char reason[256];
} low_hard_result;

/* In a child: a hard DATA limit just above current use. */
static void low_hard_child(void *out) {
  low_hard_result *r = out;
  memset(r, 0, sizeof *r);
  rlim_t h = (rlim_t)(vm_data(0) + 4 * MIB);
  struct rlimit lim = {h, h};
  setrlimit(RLIMIT_DATA, &lim);
  mg_rlimit_support s;
  r->rc = mg_rlimit_probe_uncached(&s);
  r->data_enforced = s.data_enforced;
  memcpy(r->reason, s.data_reason, sizeof r->reason);
}

TEST(probe_with_a_low_hard_limit) {
  low_hard_result r;
  int status = in_child(low_hard_child, &r, sizeof r);
  ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(r.rc, 0);
  ASSERT_EQ(r.data_enforced, 0);
  ASSERT_CONTAINS(r.reason, "unknown: the hard limit of RLIMIT_DATA");
  ASSERT_CONTAINS(r.reason, "leaves no 32 MiB above current use");
}

int main(void) {
  RUN(probe_cached_and_uncached_agree);
  RUN(probe_leaves_the_parents_memory_alone);
  RUN(probe_one_resource);
  RUN(preferred);
  RUN(names);
  RUN(set_self_data_limit_is_enforced);
  RUN(unlimited_round_trip);
  RUN(set_on_child_pid);
  RUN(clamp_to_finite_hard_limit);
  RUN(dead_pid_is_esrch);
  RUN(probe_with_a_low_hard_limit);
  return mg_test_report();
}
