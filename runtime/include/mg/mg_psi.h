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

#ifdef __cplusplus
}
#endif
#endif
