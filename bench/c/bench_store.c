/* bench_store.c — the bounded context store's C hot paths, printed as a
 * markdown table:
 *   1. add of 256-byte messages into a store at its limit (1,000 messages,
 *      on_full = prune, built-in "oldest"): each add evicts the oldest;
 *   2. trim 4,000 messages to 10 % with mg_store_prune, counting calls to
 *      the token estimator during the trim (must be 0);
 *   3. real heap per message (malloc_usable_size + 8 per block) against the
 *      accounted size.
 * Usage: bench_store [adds]   (default 10,000,000 adds per round, 7
 * rounds; best and median reported, by wall clock and by this thread's CPU
 * time — on a shared machine the CPU figure is the steadier one).
 * Single-threaded: one core. */
#include <inttypes.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mg/mg.h"

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_store: %s: %s\n", what, msg);
  exit(1);
}

static char content[256];

/* A store from `o`; a failure ends the benchmark. */
static mg_store *new_store(const mg_store_options *o) {
  mg_store *s = NULL;
  char err[256];
  if (mg_store_new(o, &s, err, sizeof err))
    die("mg_store_new", err);
  return s;
}

/* The message every benchmark adds: 256 bytes of content, role "user". */
static mg_store_input message(void) {
  mg_store_input in = {0};
  in.role = "user";
  in.content = content;
  in.content_len = sizeof content;
  return in;
}

/* Add `n` copies of the message to `s`. */
static void fill(mg_store *s, int n) {
  mg_store_input in = message();
  mg_store_error e;
  for (int i = 0; i < n; i++)
    if (mg_store_add(s, &in, NULL, &e))
      die("fill", e.message);
}

/* ---------------------------------------------------------- 1. add */

#define ADD_ROUNDS 7
/* Seconds per round: wall[] and cpu[] sorted. */
static void bench_add(long n, double *wall, double *cpu, uint64_t *evicted) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "bench";
  o.on_full = MG_STORE_ON_FULL_PRUNE; /* strategy NULL: oldest, C path */
  mg_store *s = new_store(&o);
  fill(s, 1000); /* to the limit */
  mg_store_input in = message();
  mg_store_error e;
  for (int r = 0; r < ADD_ROUNDS; r++) {
    double t0 = bench_now_s(), c0 = bench_thread_cpu_s();
    for (long i = 0; i < n; i++)
      if (mg_store_add(s, &in, NULL, &e))
        die("add", e.message);
    cpu[r] = bench_thread_cpu_s() - c0;
    wall[r] = bench_now_s() - t0;
  }
  qsort(wall, ADD_ROUNDS, sizeof wall[0], bench_cmp_double);
  qsort(cpu, ADD_ROUNDS, sizeof cpu[0], bench_cmp_double);
  char err[256];
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  *evicted = st.evicted_count;
  if (st.message_count != 1000 || mg_store_check(s, err, sizeof err))
    die("after adds", "store not at its limit or inconsistent");
  mg_store_free(s);
}

/* ---------------------------------------------------------- 2. trim */

static uint64_t est_calls;
static int estimator(void *ud, const mg_store_input *in, uint64_t *tokens,
                     char *err, size_t err_len) {
  (void)ud;
  (void)err;
  (void)err_len;
  est_calls++;
  *tokens = (in->content_len + 3) / 4;
  return 0;
}

static double bench_trim(uint64_t *calls_during, uint64_t *removed_out) {
  enum { RUNS = 21 };
  double t[RUNS];
  *calls_during = 0;
  for (int r = 0; r < RUNS; r++) {
    mg_store_options o;
    mg_store_options_init(&o);
    o.name = "trim";
    o.limits.max_messages = 10000;
    o.estimate_tokens = estimator;
    mg_store *s = new_store(&o);
    fill(s, 4000);
    uint64_t before = est_calls, removed = 0;
    char err[256];
    double t0 = bench_now_s();
    if (mg_store_prune(s, 400, &removed, err, sizeof err))
      die("prune", err);
    t[r] = bench_now_s() - t0;
    *calls_during += est_calls - before;
    *removed_out = removed;
    if (mg_store_len(s) != 400)
      die("prune", "did not keep 400");
    mg_store_free(s);
  }
  qsort(t, RUNS, sizeof t[0], bench_cmp_double);
  return t[RUNS / 2];
}

/* ---------------------------------------------------------- 3. heap */

static size_t live;
static void *c_malloc(void *ud, size_t n) {
  (void)ud;
  void *p = malloc(n);
  if (p)
    live += malloc_usable_size(p) + 8;
  return p;
}
static void *c_realloc(void *ud, void *p, size_t o, size_t n) {
  (void)ud;
  (void)o;
  size_t before = p ? malloc_usable_size(p) + 8 : 0;
  void *q = realloc(p, n);
  if (q)
    live = live - before + malloc_usable_size(q) + 8;
  return q;
}
static void c_free(void *ud, void *p, size_t n) {
  (void)ud;
  (void)n;
  if (p)
    live -= malloc_usable_size(p) + 8;
  free(p);
}

static void bench_heap(double *real_per_msg, double *accounted_per_msg,
                       size_t *store_const) {
  mg_store_alloc a = {c_malloc, c_realloc, c_free, NULL};
  mg_store_options o;
  mg_store_options_init(&o);
  o.alloc = &a;
  live = 0;
  mg_store *s = new_store(&o);
  *store_const = live;
  fill(s, 1000);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  *real_per_msg = (double)(live - *store_const) / 1000.0;
  *accounted_per_msg = (double)st.total_size_bytes / 1000.0;
  mg_store_free(s);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000;
  if (n <= 0)
    n = 10000000;
  memset(content, 'a', sizeof content);
  uint64_t evicted = 0, calls = 0, removed = 0;
  double wall[ADD_ROUNDS], cpu[ADD_ROUNDS];
  int cpu_before = sched_getcpu();
  bench_add(n, wall, cpu, &evicted);
  int cpu_after = sched_getcpu();
  double trim_s = bench_trim(&calls, &removed);
  double real_pm, acc_pm;
  size_t cst;
  bench_heap(&real_pm, &acc_pm, &cst);
  double payload = 256 + 4;
  printf("| store benchmark (C, one core) | result | notes |\n");
  printf("|---|---|---|\n");
  double nd = (double)n;
  printf("| add 256-byte msg, store at limit (1,000), evicting oldest | "
         "%.1f M adds/s (%.1f ns/add) | best of %d rounds of %ld adds, by "
         "CPU time; median %.1f M/s; wall clock best %.1f M/s, median %.1f "
         "M/s; %" PRIu64 " evicted in all |\n",
         nd / cpu[0] / 1e6, cpu[0] / nd * 1e9, ADD_ROUNDS, n,
         nd / cpu[ADD_ROUNDS / 2] / 1e6, nd / wall[0] / 1e6,
         nd / wall[ADD_ROUNDS / 2] / 1e6, evicted);
  printf("| trim 4,000 messages to 10 %% (prune keep 400) | %.3f ms | "
         "median of 21; removed %" PRIu64 "; estimator calls during trims: "
         "%" PRIu64 " |\n",
         trim_s * 1e3, removed, calls);
  printf("| heap per message (256 B content, role \"user\") | %.1f B real, "
         "%.1f B accounted | real overhead %.1f B/msg (payload %.0f B); "
         "accounted overhead %u B/msg; store constant %zu B |\n",
         real_pm, acc_pm, real_pm - payload, payload, MG_STORE_MSG_OVERHEAD,
         cst);
  printf("\n(adds ran on CPU %d%s%d; pin with taskset -c N to compare "
         "cores on a shared or virtual machine)\n",
         cpu_before, cpu_before == cpu_after ? " = " : " -> ", cpu_after);
  return calls == 0 ? 0 : 1;
}
