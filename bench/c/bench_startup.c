/* bench_startup.c — median wall time of running a command to completion.
 *
 *   bench_startup RUNS CMD [ARGS...]  → prints "<median ms> <p90 ms>"
 *   bench_startup --pair RUNS A [ARGS...] --- B [ARGS...]
 *       → "<median A> <p90 A> <median B> <p90 B> <median of A/B ratios>"
 *         (A and B in turn, A B A B …, so drift hits both alike)
 *
 * fork + execvp + waitpid, output to /dev/null, after 3 warm-up runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static double run_once(char **argv) {
  int st;
  double ms = bench_run_quiet_ms(argv, &st);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "bench_startup: %s failed (status %d)\n", argv[0], st);
    exit(1);
  }
  return ms;
}

static int pair(int runs, char **a, char **b) {
  double *ta = calloc((size_t)runs, sizeof *ta);
  double *tb = calloc((size_t)runs, sizeof *tb);
  double *r = calloc((size_t)runs, sizeof *r);
  if (!ta || !tb || !r)
    return 1;
  for (int i = 0; i < 3; i++) {
    run_once(a);
    run_once(b);
  }
  for (int i = 0; i < runs; i++) {
    ta[i] = run_once(a);
    tb[i] = run_once(b);
    r[i] = ta[i] / tb[i];
  }
  qsort(ta, (size_t)runs, sizeof *ta, bench_cmp_double);
  qsort(tb, (size_t)runs, sizeof *tb, bench_cmp_double);
  qsort(r, (size_t)runs, sizeof *r, bench_cmp_double);
  printf("%.3f %.3f %.3f %.3f %.2f\n", ta[runs / 2], ta[(runs * 9) / 10],
         tb[runs / 2], tb[(runs * 9) / 10], r[runs / 2]);
  free(ta);
  free(tb);
  free(r);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--pair") == 0) {
    int sep = 0;
    for (int i = 3; i < argc; i++)
      if (strcmp(argv[i], "---") == 0)
        sep = i;
    int runs = argc > 2 ? atoi(argv[2]) : 0;
    if (sep <= 3 || sep == argc - 1 || runs < 1 || runs > 100000) {
      fprintf(stderr, "usage: bench_startup --pair RUNS A [ARGS...] --- B "
                      "[ARGS...]\n");
      return 2;
    }
    argv[sep] = NULL;
    return pair(runs, argv + 3, argv + sep + 1);
  }
  if (argc < 3) {
    fprintf(stderr, "usage: bench_startup RUNS CMD [ARGS...]\n");
    return 2;
  }
  int runs = atoi(argv[1]);
  if (runs < 1 || runs > 100000) {
    fprintf(stderr, "bench_startup: RUNS must be 1..100000\n");
    return 2;
  }
  double *t = calloc((size_t)runs, sizeof *t);
  if (!t)
    return 1;
  for (int i = 0; i < 3; i++)
    run_once(argv + 2);
  for (int i = 0; i < runs; i++)
    t[i] = run_once(argv + 2);
  qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
  printf("%.3f %.3f\n", t[runs / 2], t[(runs * 9) / 10]);
  free(t);
  return 0;
}
