/* mg_psi.h — memory pressure from /proc/pressure/memory (core layer).
 * Kernels without PSI (or with psi=0) have no such file: MG_ENOTSUP and a
 * reason, never a crash.
 */
#ifndef MG_PSI_H
#define MG_PSI_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_psi_line {
  double avg10, avg60, avg300; /* percent of wall time stalled */
  uint64_t total_us;           /* cumulative stall time, microseconds */
} mg_psi_line;

typedef struct mg_psi {
  mg_psi_line some;
  mg_psi_line full;
  int has_full; /* "full" line present (memory: since 4.20 always) */
} mg_psi;

MG_API int mg_psi_parse(const char *text, mg_psi *out, char *err,
                        size_t err_len);

/* Read `<proc_root>/pressure/memory`; proc_root NULL means "/proc". */
MG_API int mg_psi_read(const char *proc_root, mg_psi *out, char *err,
                       size_t err_len);

/* PSI triggers (mg_psi_trigger.c). Windows the kernel accepts. */
#define MG_PSI_WINDOW_MIN_US UINT64_C(500000)
#define MG_PSI_WINDOW_MAX_US UINT64_C(10000000)

/* The rule of a trigger: window 500 ms .. 10 s, 1 <= stall <= window
 * (microseconds); -EINVAL naming window_ms / stall_ms otherwise. */
MG_API int mg_psi_trigger_check(uint64_t stall_us, uint64_t window_us,
                                char *err, size_t err_len);

/* Open `path` (a pressure file) and write the trigger "some|full STALL
 * WINDOW" (microseconds; 1 <= stall <= window, window 500 ms .. 10 s).
 * *fd reports POLLPRI when it fires; close it to remove the trigger.
 * MG_ENOTSUP when the file does not exist (no PSI); the kernel's refusal
 * as its errno (-EINVAL for a short window without CAP_SYS_RESOURCE). */
MG_API int mg_psi_trigger_open(const char *path, int full, uint64_t stall_us,
                               uint64_t window_us, int *fd, char *err,
                               size_t err_len);

typedef struct mg_psi_trigger {
  int fd;            /* poll for POLLPRI; the caller closes it */
  uint64_t stall_us; /* what was armed */
  uint64_t window_us;
  int fell_back; /* the asked window was refused */
  char why[640]; /* then: the refusal and what was armed instead */
} mg_psi_trigger;

/* mg_psi_trigger_open, and when the kernel refuses the window (EINVAL,
 * EPERM), the shortest multiple of 2 s that arms, the stall scaled to keep
 * its share of the window. */
MG_API int mg_psi_trigger_arm(const char *path, int full, uint64_t stall_us,
                              uint64_t window_us, mg_psi_trigger *out,
                              char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
