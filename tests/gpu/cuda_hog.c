/* cuda_hog.c — a tiny CUDA client for the real-GPU test (driver API only,
 * no toolkit: libcuda.so.1 is dlopen'ed): cuInit, a context on device 0,
 * cuMemAlloc of FIRST MiB, a line on stdout, HOLD seconds, then SECOND
 * MiB more, a line, HOLD seconds, exit 0. Exit 2 when there is no CUDA
 * driver, 3 when an allocation fails (with CUDA's error number).
 *
 *   cuda_hog FIRST_MIB SECOND_MIB HOLD_SECONDS
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*f_init)(unsigned);
typedef int (*f_dev)(int *, int);
typedef int (*f_ctx)(void **, unsigned, int);
typedef int (*f_alloc)(unsigned long long *, size_t);

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: cuda_hog FIRST_MIB SECOND_MIB HOLD_SECONDS\n");
    return 64;
  }
  size_t first = (size_t)strtoull(argv[1], NULL, 10) << 20;
  size_t second = (size_t)strtoull(argv[2], NULL, 10) << 20;
  unsigned hold = (unsigned)atoi(argv[3]);
  void *cuda = dlopen("libcuda.so.1", RTLD_NOW);
  if (!cuda) {
    fprintf(stderr, "cuda_hog: no CUDA driver: %s\n", dlerror());
    return 2;
  }
  f_init init = (f_init)dlsym(cuda, "cuInit");
  f_dev dev = (f_dev)dlsym(cuda, "cuDeviceGet");
  f_ctx ctx = (f_ctx)dlsym(cuda, "cuCtxCreate_v2");
  f_alloc alloc = (f_alloc)dlsym(cuda, "cuMemAlloc_v2");
  int d = 0, rc;
  void *c = NULL;
  if (!init || !dev || !ctx || !alloc || (rc = init(0)) != 0 ||
      (rc = dev(&d, 0)) != 0 || (rc = ctx(&c, 0, d)) != 0) {
    fprintf(stderr, "cuda_hog: CUDA does not start\n");
    return 2;
  }
  unsigned long long p1 = 0, p2 = 0;
  if ((rc = alloc(&p1, first)) != 0) {
    fprintf(stderr, "cuda_hog: cuMemAlloc of %zu MiB: CUDA error %d "
                    "(CUDA_ERROR_OUT_OF_MEMORY is 2)\n",
            first >> 20, rc);
    return 3;
  }
  printf("cuda_hog pid=%ld allocated_mib=%zu\n", (long)getpid(), first >> 20);
  fflush(stdout);
  sleep(hold);
  if ((rc = alloc(&p2, second)) != 0) {
    fprintf(stderr, "cuda_hog: cuMemAlloc of %zu MiB: CUDA error %d\n",
            second >> 20, rc);
    return 3;
  }
  printf("cuda_hog pid=%ld allocated_mib=%zu\n", (long)getpid(),
         (first + second) >> 20);
  fflush(stdout);
  sleep(hold);
  return 0;
}
