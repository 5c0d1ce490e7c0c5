/* mg_gpu.h — GPU memory through NVML, loaded at run time (core layer).
 *
 * No build-time dependency on a GPU stack: libnvidia-ml.so.1 is dlopen'ed
 * by mg_gpu_open (the path in $MG_NVML_LIBRARY first, for tests and odd
 * installs). A machine without the library or without a device is not an
 * error of the caller's: MG_ENOTSUP (no library, NVML refuses to start)
 * or -ENODEV (no device), with the reason. One mg_gpu is one NVML session
 * (nvmlInit_v2 … nvmlShutdown); it holds no process-wide state of ours
 * (NVML counts its own sessions), so several runtimes may each open one.
 *
 * Integrated GPUs (Jetson-class boards, where the GPU's memory is the
 * host's): a device is integrated when <fs_root>/proc/device-tree/compatible
 * names an "nvidia,tegra" SoC, or its NVML name says Orin, Xavier or
 * Tegra. Its use is then host memory already counted by the cgroup and
 * /proc figures: admission must not count it twice.
 */
#ifndef MG_GPU_H
#define MG_GPU_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mg/mg_paths.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MG_GPU_MAX 64 /* devices looked at */

typedef struct mg_gpu mg_gpu;

typedef struct mg_gpu_device {
  unsigned index;
  char uuid[96];
  char name[96];
  uint64_t total_bytes, used_bytes, free_bytes;
  int integrated; /* shares system memory (see above) */
} mg_gpu_device;

/* Load NVML (lib: NULL = $MG_NVML_LIBRARY, else "libnvidia-ml.so.1") and
 * start a session. MG_ENOTSUP: no library / a library without NVML's
 * symbols / nvmlInit refused (the reason says which, with NVML's own
 * words); *out is the caller's (mg_gpu_close). `paths` (may be NULL) is
 * where the device tree is looked for. */
MG_API int mg_gpu_open(const char *lib, const mg_paths *paths, mg_gpu **out,
                       char *err, size_t err_len);
MG_API void mg_gpu_close(mg_gpu *g);
/* The library that was loaded (for --probe). */
MG_API const char *mg_gpu_library(const mg_gpu *g);

/* Number of devices (0 is not an error here; see mg_gpu_open). */
MG_API int mg_gpu_count(mg_gpu *g, unsigned *n, char *err, size_t err_len);
/* Device `index`: its identity and memory now. -EIO with NVML's error
 * string when NVML fails (a device lost mid-run, a driver reload). */
MG_API int mg_gpu_device_info(mg_gpu *g, unsigned index, mg_gpu_device *out,
                              char *err, size_t err_len);

/* GPU memory used by the processes `pids` (a child's tree), summed over
 * the devices in `devices` (NULL: all): compute and graphics contexts
 * (nvmlDeviceGet{Compute,Graphics}RunningProcesses _v3, else _v2, else the
 * unversioned call), each process counted once per device. per_device
 * (may be NULL, MG_GPU_MAX entries) gets the split by device index.
 * A process whose use NVML cannot tell (NVML_VALUE_NOT_AVAILABLE, e.g.
 * without permission) counts 0 and sets *unknown (may be NULL). */
MG_API int mg_gpu_pids_usage(mg_gpu *g, const pid_t *pids, size_t n,
                             const unsigned *devices, size_t ndevices,
                             uint64_t *total, uint64_t *per_device,
                             int *unknown, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
