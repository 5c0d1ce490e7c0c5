/* bench_core_sample.c — what one sample of a child reads (core layer,
 * libmg only): /proc/PID/status, the group's usage and peak, and its
 * memory.stat (the anon / file / shmem split, issue 10), each timed per
 * call in this thread's CPU, for a child in a group of its own holding
 * 64 MiB of anonymous memory and 64 MiB of a mapped file. Prints markdown
 * table rows: | what | figure | target |.
 *
 *   bench_core_sample [CALLS]      (default 20000 per reader)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "mg/mg_cgroup.h"
#include "mg/mg_proc.h"

#define MIB ((size_t)1 << 20)

/* The child: joins nothing itself (the parent moves it, then writes to
 * go_fd), maps 64 MiB of the file at `path` and 64 MiB anonymous,
 * touches both, says so on ready_fd, then waits. */
static void child_main(const char *path, int go_fd, int ready_fd) {
  char go;
  if (read(go_fd, &go, 1) != 1)
    _exit(1);
  int fd = open(path, O_RDONLY);
  unsigned char *f =
      fd >= 0 ? mmap(NULL, 64 * MIB, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  unsigned char *a = mmap(NULL, 64 * MIB, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  volatile unsigned char sink = 0;
  for (size_t off = 0; f && f != MAP_FAILED && off < 64 * MIB; off += 4096)
    sink ^= f[off];
  for (size_t off = 0; a != MAP_FAILED && off < 64 * MIB; off += 4096)
    a[off] = 1;
  (void)sink;
  if (write(ready_fd, "r", 1) != 1)
    _exit(1);
  pause();
  _exit(0);
}

typedef int (*reader)(void *ctx);

/* Mean CPU µs of `n` calls of fn; exits on the first failure. */
static double per_call_us(const char *what, reader fn, void *ctx, int n) {
  if (fn(ctx) < 0) {
    fprintf(stderr, "bench_core_sample: %s failed\n", what);
    exit(1);
  }
  double t0 = bench_thread_cpu_s();
  for (int i = 0; i < n; i++)
    fn(ctx);
  return (bench_thread_cpu_s() - t0) / n * 1e6;
}

typedef struct ctx {
  pid_t pid;
  mg_cgroup *cg;
} ctx;

static int rd_status(void *p) {
  mg_proc_status st;
  return mg_proc_status_read(NULL, ((ctx *)p)->pid, &st, NULL, 0);
}

static int rd_usage(void *p) {
  uint64_t cur, peak;
  int hp;
  return mg_cgroup_usage_read(((ctx *)p)->cg, &cur, &peak, &hp, NULL, 0);
}

static int rd_memstat(void *p) {
  mg_cgroup_memstat ms;
  return mg_cgroup_memstat_read(((ctx *)p)->cg, &ms, NULL, 0);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  if (n <= 0)
    n = 20000;
  char err[1024];
  mg_cgroup_info info;
  if (mg_cgroup_detect(NULL, &info, err, sizeof err) < 0 ||
      info.version == MG_CGROUP_NONE ||
      mg_cgroup_probe_writable(&info, NULL, err, sizeof err) != 1) {
    printf("| one sample: memory.stat read | skipped | no writable memory "
           "cgroup |\n");
    return 0;
  }
  char path[] = "/var/tmp/mgrun-bench-sample-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0 || ftruncate(fd, (off_t)(64 * MIB)) < 0) {
    perror("bench_core_sample: file");
    return 1;
  }
  close(fd);
  char name[64];
  snprintf(name, sizeof name, "mgrun-bench-sample-%ld", (long)getpid());
  mg_cgroup *cg = NULL;
  if (mg_cgroup_create(&info, NULL, name, &cg, err, sizeof err) < 0) {
    fprintf(stderr, "bench_core_sample: %s\n", err);
    unlink(path);
    return 1;
  }
  int pfd[2], gfd[2];
  if (pipe(pfd) < 0 || pipe(gfd) < 0)
    return 1;
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    close(gfd[1]);
    child_main(path, gfd[0], pfd[1]);
  }
  close(pfd[1]);
  close(gfd[0]);
  if (mg_cgroup_add_pid(cg, pid, err, sizeof err) < 0)
    fprintf(stderr, "bench_core_sample: %s\n", err);
  /* the child touches its memory after the move: it is charged here */
  char c = 'g';
  if (write(gfd[1], &c, 1) != 1 || read(pfd[0], &c, 1) != 1)
    fprintf(stderr, "bench_core_sample: the child did not start\n");
  ctx x = {pid, cg};
  double st = per_call_us("status", rd_status, &x, n);
  double us = per_call_us("usage", rd_usage, &x, n);
  double ms = per_call_us("memory.stat", rd_memstat, &x, n);
  mg_cgroup_memstat m;
  mg_cgroup_memstat_read(cg, &m, NULL, 0);
  printf("| one sample, cgroup %s: /proc/PID/status | %.1f µs CPU | — |\n",
         mg_cgroup_version_name(info.version), st);
  printf("| one sample: group usage + peak (two files) | %.1f µs CPU | — |\n",
         us);
  printf("| one sample: group memory.stat, the anon/file/shmem split (anon "
         "%.0f MiB, file %.0f MiB) | %.1f µs CPU | ≤ the status read |\n",
         (double)m.anon_bytes / MIB, (double)m.file_bytes / MIB, ms);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  mg_cgroup_remove(cg, NULL, 0);
  mg_cgroup_free(cg);
  unlink(path);
  return 0;
}
