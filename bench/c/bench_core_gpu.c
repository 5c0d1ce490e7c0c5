/* bench_core_gpu.c — the cost of one GPU sample of a child (core layer):
 * mg_gpu_pids_usage for a tree of 8 processes over the devices, i.e. the
 * NVML calls a sample makes (per device: the handle, the compute and the
 * graphics process lists) plus our matching. Without a GPU it runs
 * against the tests' fake NVML (tests/gpu/fake_nvml.c, which re-reads its
 * fixture file at every call: a slower "driver" than a real one's cached
 * answers, so an upper bound of our side); with MG_NVML_LIBRARY unset and
 * a real driver, against the real NVML. Prints markdown rows.
 *
 *   bench_core_gpu [CALLS] [FAKE_NVML_LIBRARY]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mg/mg_gpu.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  int calls = argc > 1 ? atoi(argv[1]) : 2000;
  const char *fake = argc > 2 ? argv[2] : NULL;
  char fx[64], err[1024];
  const char *what = "real NVML";
  if (fake) { /* 2 devices, 8 processes of ours and 8 others */
    snprintf(fx, sizeof fx, "/tmp/mgrun-bench-gpu-%ld.txt", (long)getpid());
    FILE *f = fopen(fx, "w");
    if (!f)
      return 1;
    fprintf(f, "device GPU-a 85899345920 0 NVIDIA H100\n"
               "device GPU-b 85899345920 0 NVIDIA H100\n");
    for (int i = 0; i < 16; i++)
      fprintf(f, "proc %d %d %d\n", i % 2, 1000 + i, (i + 1) << 20);
    fclose(f);
    setenv("FAKE_NVML_FIXTURE", fx, 1);
    what = "the tests' fake NVML (no GPU here)";
  }
  mg_gpu *g = NULL;
  if (mg_gpu_open(fake, NULL, &g, err, sizeof err) < 0) {
    printf("| one GPU sample of a child (8 processes) | not measured: %s | — "
           "|\n",
           err);
    if (fake)
      unlink(fx);
    return 0;
  }
  pid_t tree[8];
  for (int i = 0; i < 8; i++)
    tree[i] = 1000 + 2 * i;
  uint64_t total = 0;
  double t0 = now_us();
  for (int i = 0; i < calls; i++)
    mg_gpu_pids_usage(g, tree, 8, NULL, 0, &total, NULL, NULL, err,
                      sizeof err);
  double us = (now_us() - t0) / calls;
  printf("| one GPU sample of a child (8 processes, 2 devices; %s; mean of "
         "%d) | %.1f µs | — |\n",
         what, calls, us);
  mg_gpu_close(g);
  if (fake)
    unlink(fx);
  return 0;
}
