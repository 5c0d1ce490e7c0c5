/* mg_gpu.c — NVML loaded at run time (core layer): devices, their memory,
 * the GPU memory of a set of processes. See mg_gpu.h. The few NVML types
 * used are declared here (no nvml.h at build time): an opaque device
 * handle, nvmlMemory_t, and the two layouts of the process info — v1
 * {pid, usedGpuMemory} for the unversioned calls, v2 {pid,
 * usedGpuMemory, gpuInstanceId, computeInstanceId} for the _v2 and _v3
 * ones.
 */
#include "mg/mg_gpu.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mg/mg_error.h"
#include "mg__fileio.h"

#define GPU__LIB "libnvidia-ml.so.1"
#define GPU__SUCCESS 0
#define GPU__INSUFFICIENT_SIZE 7
#define GPU__NOT_AVAILABLE (~0ULL) /* NVML_VALUE_NOT_AVAILABLE */
#define GPU__PROCS 256

typedef void *gpu_dev;
typedef struct {
  unsigned long long total, free, used;
} gpu_mem;
typedef struct {
  unsigned int pid;
  unsigned long long used;
} gpu_proc1;
typedef struct {
  unsigned int pid;
  unsigned long long used;
  unsigned int gi, ci;
} gpu_proc2;

typedef int (*fn_void)(void);
typedef const char *(*fn_errstr)(int);
typedef int (*fn_count)(unsigned *);
typedef int (*fn_handle)(unsigned, gpu_dev *);
typedef int (*fn_str)(gpu_dev, char *, unsigned);
typedef int (*fn_mem)(gpu_dev, gpu_mem *);
typedef int (*fn_procs)(gpu_dev, unsigned *, void *);

struct mg_gpu {
  void *lib;
  char path[256];
  int tegra; /* the device tree names an NVIDIA Tegra SoC */
  fn_void shutdown;
  fn_errstr errstr;
  fn_count count;
  fn_handle handle;
  fn_str name, uuid;
  fn_mem mem;
  fn_procs compute, graphics;
  int procs_v2; /* compute/graphics take the v2 layout */
};

static const char *gpu__err(const mg_gpu *g, int rc) {
  const char *s = g->errstr ? g->errstr(rc) : NULL;
  return s ? s : "unknown NVML error";
}

/* The first of `names` the library has. */
static void *gpu__sym(void *lib, const char *const *names, int *which) {
  for (int i = 0; names[i]; i++) {
    void *p = dlsym(lib, names[i]);
    if (p) {
      if (which)
        *which = i;
      return p;
    }
  }
  return NULL;
}

static int gpu__is_tegra(const mg_paths *paths) {
  char path[4096], buf[4096];
  snprintf(path, sizeof path, "%s/proc/device-tree/compatible",
           paths && paths->fs_root ? paths->fs_root : "");
  size_t n = 0;
  if (mg__read_file(path, buf, sizeof buf, &n) < 0)
    return 0;
  /* NUL-separated strings: "nvidia,p3737-0000+p3701-0000\0nvidia,tegra234" */
  for (size_t i = 0; i + 12 <= n; i++)
    if (strncmp(buf + i, "nvidia,tegra", 12) == 0)
      return 1;
  return 0;
}

int mg_gpu_open(const char *lib, const mg_paths *paths, mg_gpu **out, char *err,
                size_t err_len) {
  if (!out)
    return mg_errf(err, err_len, -EINVAL, "mg_gpu_open: out is NULL");
  *out = NULL;
  if (!lib || !lib[0])
    lib = getenv("MG_NVML_LIBRARY");
  if (!lib || !lib[0])
    lib = GPU__LIB;
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "no NVML: cannot load %s (%s): no NVIDIA driver here, or "
                   "set MG_NVML_LIBRARY to its path",
                   lib, why ? why : "?");
  }
  mg_gpu *g = calloc(1, sizeof *g);
  if (!g) {
    dlclose(h);
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  }
  g->lib = h;
  snprintf(g->path, sizeof g->path, "%s", lib);
  static const char *const init_n[] = {"nvmlInit_v2", "nvmlInit", NULL};
  static const char *const shut_n[] = {"nvmlShutdown", NULL};
  static const char *const err_n[] = {"nvmlErrorString", NULL};
  static const char *const cnt_n[] = {"nvmlDeviceGetCount_v2",
                                      "nvmlDeviceGetCount", NULL};
  static const char *const hnd_n[] = {"nvmlDeviceGetHandleByIndex_v2",
                                      "nvmlDeviceGetHandleByIndex", NULL};
  static const char *const name_n[] = {"nvmlDeviceGetName", NULL};
  static const char *const uuid_n[] = {"nvmlDeviceGetUUID", NULL};
  static const char *const mem_n[] = {"nvmlDeviceGetMemoryInfo", NULL};
  static const char *const cp_n[] = {"nvmlDeviceGetComputeRunningProcesses_v3",
                                     "nvmlDeviceGetComputeRunningProcesses_v2",
                                     "nvmlDeviceGetComputeRunningProcesses",
                                     NULL};
  static const char *const gp_n[] = {"nvmlDeviceGetGraphicsRunningProcesses_v3",
                                     "nvmlDeviceGetGraphicsRunningProcesses_v2",
                                     "nvmlDeviceGetGraphicsRunningProcesses",
                                     NULL};
  fn_void init = (fn_void)gpu__sym(h, init_n, NULL);
  g->shutdown = (fn_void)gpu__sym(h, shut_n, NULL);
  g->errstr = (fn_errstr)gpu__sym(h, err_n, NULL);
  g->count = (fn_count)gpu__sym(h, cnt_n, NULL);
  g->handle = (fn_handle)gpu__sym(h, hnd_n, NULL);
  g->name = (fn_str)gpu__sym(h, name_n, NULL);
  g->uuid = (fn_str)gpu__sym(h, uuid_n, NULL);
  g->mem = (fn_mem)gpu__sym(h, mem_n, NULL);
  int cv = 2, gv = 2;
  g->compute = (fn_procs)gpu__sym(h, cp_n, &cv);
  g->graphics = (fn_procs)gpu__sym(h, gp_n, &gv);
  if (g->graphics && (cv == 2) != (gv == 2))
    g->graphics = NULL; /* mixed layouts: compute contexts only */
  g->procs_v2 = cv < 2;
  if (!init || !g->count || !g->handle || !g->mem || !g->compute) {
    dlclose(h);
    free(g);
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "%s is not a usable NVML: it lacks nvmlInit, "
                   "nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex, "
                   "nvmlDeviceGetMemoryInfo or "
                   "nvmlDeviceGetComputeRunningProcesses",
                   lib);
  }
  int rc = init();
  if (rc != GPU__SUCCESS) {
    int e = rc;
    const char *why = gpu__err(g, e);
    mg_errf(err, err_len, MG_ENOTSUP,
            "NVML (%s) did not start: %s (error %d): no NVIDIA driver loaded, "
            "or no permission to its devices",
            lib, why, e);
    dlclose(h);
    free(g);
    return MG_ENOTSUP;
  }
  g->tegra = gpu__is_tegra(paths);
  *out = g;
  return 0;
}

void mg_gpu_close(mg_gpu *g) {
  if (!g)
    return;
  if (g->shutdown)
    g->shutdown();
  dlclose(g->lib);
  free(g);
}

const char *mg_gpu_library(const mg_gpu *g) {
  return g ? g->path : NULL;
}

int mg_gpu_count(mg_gpu *g, unsigned *n, char *err, size_t err_len) {
  if (!g || !n)
    return mg_errf(err, err_len, -EINVAL, "mg_gpu_count: no session");
  unsigned c = 0;
  int rc = g->count(&c);
  if (rc != GPU__SUCCESS)
    return mg_errf(err, err_len, -EIO, "nvmlDeviceGetCount: %s (error %d)",
                   gpu__err(g, rc), rc);
  *n = c > MG_GPU_MAX ? MG_GPU_MAX : c;
  return 0;
}

static int gpu__handle(mg_gpu *g, unsigned index, gpu_dev *d, char *err,
                       size_t err_len) {
  int rc = g->handle(index, d);
  if (rc != GPU__SUCCESS)
    return mg_errf(err, err_len, rc == 2 ? -ENODEV : -EIO,
                   "GPU %u: nvmlDeviceGetHandleByIndex: %s (error %d)", index,
                   gpu__err(g, rc), rc);
  return 0;
}

int mg_gpu_device_info(mg_gpu *g, unsigned index, mg_gpu_device *out, char *err,
                       size_t err_len) {
  if (!g || !out)
    return mg_errf(err, err_len, -EINVAL, "mg_gpu_device_info: no session");
  memset(out, 0, sizeof *out);
  out->index = index;
  gpu_dev d;
  int rc = gpu__handle(g, index, &d, err, err_len);
  if (rc < 0)
    return rc;
  if (g->name && g->name(d, out->name, sizeof out->name) != GPU__SUCCESS)
    out->name[0] = '\0';
  if (g->uuid && g->uuid(d, out->uuid, sizeof out->uuid) != GPU__SUCCESS)
    out->uuid[0] = '\0';
  out->name[sizeof out->name - 1] = out->uuid[sizeof out->uuid - 1] = '\0';
  gpu_mem m;
  rc = g->mem(d, &m);
  if (rc != GPU__SUCCESS)
    return mg_errf(err, err_len, -EIO,
                   "GPU %u: nvmlDeviceGetMemoryInfo: %s (error %d)", index,
                   gpu__err(g, rc), rc);
  out->total_bytes = m.total;
  out->used_bytes = m.used;
  out->free_bytes = m.free;
  out->integrated = g->tegra || strstr(out->name, "Orin") ||
                    strstr(out->name, "Xavier") ||
                    strcasestr(out->name, "tegra");
  return 0;
}

/* One call of a process query into `buf` (cap entries); -EIO on error. */
static int gpu__procs(mg_gpu *g, fn_procs f, gpu_dev d, void *buf, unsigned cap,
                      unsigned *n) {
  unsigned c = cap;
  int rc = f(d, &c, buf);
  if (rc == GPU__INSUFFICIENT_SIZE) { /* more than we take: the first cap */
    c = cap;
    rc = GPU__SUCCESS;
  }
  if (rc != GPU__SUCCESS)
    return -rc;
  *n = c > cap ? cap : c;
  (void)g;
  return 0;
}

int mg_gpu_pids_usage(mg_gpu *g, const pid_t *pids, size_t n,
                      const unsigned *devices, size_t ndevices, uint64_t *total,
                      uint64_t *per_device, int *unknown, char *err,
                      size_t err_len) {
  if (!g || !total)
    return mg_errf(err, err_len, -EINVAL, "mg_gpu_pids_usage: no session");
  *total = 0;
  if (unknown)
    *unknown = 0;
  if (per_device)
    memset(per_device, 0, sizeof *per_device * MG_GPU_MAX);
  unsigned count;
  int rc = mg_gpu_count(g, &count, err, err_len);
  if (rc < 0)
    return rc;
  size_t esz = g->procs_v2 ? sizeof(gpu_proc2) : sizeof(gpu_proc1);
  char *buf = malloc(esz * GPU__PROCS);
  if (!buf)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  for (unsigned i = 0; i < count; i++) {
    int wanted = devices == NULL;
    for (size_t k = 0; !wanted && k < ndevices; k++)
      wanted = devices[k] == i;
    if (!wanted)
      continue;
    gpu_dev d;
    if ((rc = gpu__handle(g, i, &d, err, err_len)) < 0)
      break;
    /* a pid with contexts of both kinds is counted once per device */
    pid_t counted[GPU__PROCS * 2];
    size_t ncounted = 0;
    fn_procs fs[2] = {g->compute, g->graphics};
    for (int k = 0; k < 2 && rc == 0; k++) {
      if (!fs[k])
        continue;
      unsigned got = 0;
      int pr = gpu__procs(g, fs[k], d, buf, GPU__PROCS, &got);
      if (pr < 0) {
        rc = mg_errf(err, err_len, -EIO,
                     "GPU %u: nvmlDeviceGet%sRunningProcesses: %s (error %d)",
                     i, k ? "Graphics" : "Compute", gpu__err(g, -pr), -pr);
        break;
      }
      for (unsigned j = 0; j < got; j++) {
        unsigned pid;
        unsigned long long used;
        if (g->procs_v2) {
          pid = ((gpu_proc2 *)(void *)buf)[j].pid;
          used = ((gpu_proc2 *)(void *)buf)[j].used;
        } else {
          pid = ((gpu_proc1 *)(void *)buf)[j].pid;
          used = ((gpu_proc1 *)(void *)buf)[j].used;
        }
        int ours = 0, dup = 0;
        for (size_t p = 0; !ours && p < n; p++)
          ours = (unsigned)pids[p] == pid;
        for (size_t p = 0; ours && !dup && p < ncounted; p++)
          dup = (unsigned)counted[p] == pid;
        if (!ours || dup)
          continue;
        counted[ncounted++] = (pid_t)pid;
        if (used == GPU__NOT_AVAILABLE) {
          if (unknown)
            *unknown = 1;
          continue;
        }
        *total += used;
        if (per_device && i < MG_GPU_MAX)
          per_device[i] += used;
      }
    }
    if (rc < 0)
      break;
  }
  free(buf);
  return rc < 0 ? rc : 0;
}
