/* test_gpu.c — NVML through the fake library (tests/gpu/fake_nvml.c,
 * loaded through MG_NVML_LIBRARY): no library, a library that refuses to
 * start, no device, several devices, a process tree on two devices
 * (compute and graphics contexts counted once), the unversioned calls'
 * layout, an integrated GPU (by the device tree and by name), NVML errors
 * mid-run. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg/mg_error.h"
#include "mg/mg_gpu.h"
#include "mg_test.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static char err[1024];
static char fixture[PATH_MAX], root[PATH_MAX];
static const char *lib, *legacy;

static void put(const char *text) {
  FILE *f = fopen(fixture, "w");
  ASSERT(f != NULL);
  fputs(text, f);
  fclose(f);
}

static mg_gpu *open_ok(const char *path) {
  mg_gpu *g = NULL;
  int rc = mg_gpu_open(path, NULL, &g, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "open: %s\n", err);
  ASSERT_EQ(rc, 0);
  return g;
}

TEST(no_library) {
  mg_gpu *g = NULL;
  ASSERT_EQ(
      mg_gpu_open("/nonexistent/libnvidia-ml.so.1", NULL, &g, err, sizeof err),
      MG_ENOTSUP);
  ASSERT(g == NULL);
  ASSERT_CONTAINS(err, "no NVML: cannot load /nonexistent/libnvidia-ml.so.1");
  ASSERT_CONTAINS(err, "MG_NVML_LIBRARY");
  /* a library that is not NVML */
  ASSERT_EQ(mg_gpu_open("libm.so.6", NULL, &g, err, sizeof err), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "is not a usable NVML");
}

TEST(init_refused_and_no_device) {
  put("init 9\n");
  mg_gpu *g = NULL;
  ASSERT_EQ(mg_gpu_open(lib, NULL, &g, err, sizeof err), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "did not start: Driver Not Loaded (error 9)");
  put("");
  g = open_ok(lib);
  unsigned n = 99;
  ASSERT_EQ(mg_gpu_count(g, &n, err, sizeof err), 0);
  ASSERT_EQ(n, 0);
  ASSERT_STR_EQ(mg_gpu_library(g), lib);
  mg_gpu_close(g);
}

TEST(devices_and_a_tree_on_two) {
  char text[1024];
  snprintf(text, sizeof text,
           "device GPU-aaaa 150323855360 1073741824 NVIDIA H200\n"
           "device GPU-bbbb 85899345920 0 NVIDIA A100-SXM4-80GB\n"
           "proc 0 100 %llu\n"
           "proc 0 100 %llu graphics\n" /* the same pid: counted once */
           "proc 0 101 %llu\n"
           "proc 1 101 %llu\n"
           "proc 1 999 %llu\n", /* not ours */
           (unsigned long long)(512 * MIB), (unsigned long long)(512 * MIB),
           (unsigned long long)(256 * MIB), (unsigned long long)GIB,
           (unsigned long long)(4 * GIB));
  put(text);
  mg_gpu *g = open_ok(lib);
  unsigned n = 0;
  ASSERT_EQ(mg_gpu_count(g, &n, err, sizeof err), 0);
  ASSERT_EQ(n, 2);
  mg_gpu_device d;
  ASSERT_EQ(mg_gpu_device_info(g, 0, &d, err, sizeof err), 0);
  ASSERT_STR_EQ(d.uuid, "GPU-aaaa");
  ASSERT_STR_EQ(d.name, "NVIDIA H200");
  ASSERT_U64_EQ(d.total_bytes, UINT64_C(150323855360));
  ASSERT_U64_EQ(d.used_bytes, GIB);
  ASSERT_U64_EQ(d.free_bytes, UINT64_C(150323855360) - GIB);
  ASSERT_EQ(d.integrated, 0);
  ASSERT_EQ(mg_gpu_device_info(g, 7, &d, err, sizeof err), -ENODEV);
  ASSERT_CONTAINS(err, "GPU 7");
  pid_t tree[] = {100, 101};
  uint64_t total = 0, per[MG_GPU_MAX];
  int unknown = 1;
  ASSERT_EQ(mg_gpu_pids_usage(g, tree, 2, NULL, 0, &total, per, &unknown, err,
                              sizeof err),
            0);
  ASSERT_U64_EQ(total, 512 * MIB + 256 * MIB + GIB);
  ASSERT_U64_EQ(per[0], 768 * MIB);
  ASSERT_U64_EQ(per[1], GIB);
  ASSERT_EQ(unknown, 0);
  unsigned only1[] = {1}; /* the devices it may use */
  ASSERT_EQ(mg_gpu_pids_usage(g, tree, 2, only1, 1, &total, NULL, NULL, err,
                              sizeof err),
            0);
  ASSERT_U64_EQ(total, GIB);
  mg_gpu_close(g);
  /* the unversioned calls and their smaller layout */
  mg_gpu *l = open_ok(legacy);
  ASSERT_EQ(mg_gpu_pids_usage(l, tree, 2, NULL, 0, &total, per, NULL, err,
                              sizeof err),
            0);
  ASSERT_U64_EQ(total, 512 * MIB + 256 * MIB + GIB);
  mg_gpu_close(l);
}

TEST(integrated) {
  put("device GPU-orin 64000000000 1000 Orin (nvgpu)\n");
  mg_gpu *g = open_ok(lib);
  mg_gpu_device d;
  ASSERT_EQ(mg_gpu_device_info(g, 0, &d, err, sizeof err), 0);
  ASSERT_EQ(d.integrated, 1); /* by name */
  mg_gpu_close(g);
  put("device GPU-x 64000000000 1000 NVIDIA Graphics\n");
  char dt[PATH_MAX + 64];
  snprintf(dt, sizeof dt, "%s/proc/device-tree", root);
  char cmd[PATH_MAX * 2];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dt);
  ASSERT_EQ(system(cmd), 0);
  snprintf(dt, sizeof dt, "%s/proc/device-tree/compatible", root);
  FILE *f = fopen(dt, "w");
  ASSERT(f != NULL);
  fwrite("nvidia,p3737-0000\0nvidia,tegra234\0", 1, 34, f);
  fclose(f);
  mg_paths paths = {NULL, root};
  mg_gpu *t = NULL;
  ASSERT_EQ(mg_gpu_open(lib, &paths, &t, err, sizeof err), 0);
  ASSERT_EQ(mg_gpu_device_info(t, 0, &d, err, sizeof err), 0);
  ASSERT_EQ(d.integrated, 1); /* by the device tree */
  mg_gpu_close(t);
  ASSERT_EQ(mg_gpu_open(lib, NULL, &t, err, sizeof err), 0);
  ASSERT_EQ(mg_gpu_device_info(t, 0, &d, err, sizeof err), 0);
  ASSERT_EQ(d.integrated, 0); /* a discrete board without that tree */
  mg_gpu_close(t);
}

TEST(errors_mid_run) {
  put("device GPU-aaaa 1000000 0 NVIDIA H200\nproc 0 100 1000\n");
  mg_gpu *g = open_ok(lib);
  put("device GPU-aaaa 1000000 0 NVIDIA H200\nfail memory 15\n");
  mg_gpu_device d;
  ASSERT_EQ(mg_gpu_device_info(g, 0, &d, err, sizeof err), -EIO);
  ASSERT_CONTAINS(err,
                  "GPU 0: nvmlDeviceGetMemoryInfo: GPU is lost (error 15)");
  put("device GPU-aaaa 1000000 0 NVIDIA H200\nfail procs 15\n");
  pid_t tree[] = {100};
  uint64_t total;
  ASSERT_EQ(mg_gpu_pids_usage(g, tree, 1, NULL, 0, &total, NULL, NULL, err,
                              sizeof err),
            -EIO);
  ASSERT_CONTAINS(err, "RunningProcesses: GPU is lost");
  put("fail count 3\n");
  unsigned n;
  ASSERT_EQ(mg_gpu_count(g, &n, err, sizeof err), -EIO);
  ASSERT_CONTAINS(err, "Not Supported");
  /* and back */
  put("device GPU-aaaa 1000000 0 NVIDIA H200\nproc 0 100 1000\n");
  ASSERT_EQ(mg_gpu_pids_usage(g, tree, 1, NULL, 0, &total, NULL, NULL, err,
                              sizeof err),
            0);
  ASSERT_U64_EQ(total, 1000);
  mg_gpu_close(g);
}

int main(void) {
  static char l1[PATH_MAX], l2[PATH_MAX];
  snprintf(l1, sizeof l1, "%s/libfake_nvml.so", MG_TEST_BINDIR);
  snprintf(l2, sizeof l2, "%s/libfake_nvml_legacy.so", MG_TEST_BINDIR);
  lib = l1;
  legacy = l2;
  snprintf(root, sizeof root, "/tmp/mgrun-test-gpu-%ld", (long)getpid());
  mkdir(root, 0700);
  snprintf(fixture, sizeof fixture, "%s/nvml.txt", root);
  setenv("FAKE_NVML_FIXTURE", fixture, 1);
  RUN(no_library);
  RUN(init_refused_and_no_device);
  RUN(devices_and_a_tree_on_two);
  RUN(integrated);
  RUN(errors_mid_run);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "cleanup failed: %s\n", cmd);
  return mg_test_report();
}
