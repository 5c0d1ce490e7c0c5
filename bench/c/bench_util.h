/* bench_util.h — the clocks, the sort order and the quiet command run
 * that the benchmarks in bench/c share. Header only: each bench_*.c is a
 * program of its own, and CMake builds each from its one source. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Seconds on clock `id`. */
static inline double bench_clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall clock (monotonic), in seconds and in milliseconds. */
static inline double bench_now_s(void) {
  return bench_clock_s(CLOCK_MONOTONIC);
}

static inline double bench_now_ms(void) {
  return bench_clock_s(CLOCK_MONOTONIC) * 1e3;
}

/* CPU time of this thread: what one core spent, not counting the time
 * other processes on a shared machine took from it. */
static inline double bench_thread_cpu_s(void) {
  return bench_clock_s(CLOCK_THREAD_CPUTIME_ID);
}

/* CPU time of this process, user and system, in seconds. */
static inline double bench_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* qsort order for doubles, smallest first. */
static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Run argv (looked up in PATH) to its end, its stdout and stderr on
 * /dev/null: fork + execvp + waitpid. Returns the wall time in ms; *status
 * is the wait status (exit 127: it could not be run; -1: no child). */
static inline double bench_run_quiet_ms(char **argv, int *status) {
  *status = -1;
  double t0 = bench_now_ms();
  pid_t pid = fork();
  if (pid < 0)
    return 0;
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
  }
  return bench_now_ms() - t0;
}

#endif
