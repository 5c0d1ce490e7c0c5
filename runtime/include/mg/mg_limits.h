/* mg_limits.h — validation of memory limits against effective memory
 * (core layer). Seed 1's validate_memory_limit / validate_total_allocations,
 * without its bugs: NaN, inf and non-positive items are invalid, and every
 * item of a total is validated.
 */
#ifndef MG_LIMITS_H
#define MG_LIMITS_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Percent of effective memory above which a single limit warns. */
#define MG_LIMIT_WARN_PCT 90.0
/* Percent of effective memory above which a total warns. */
#define MG_TOTAL_WARN_PCT 95.0

/* Result of a validation; plain data, owned by the caller. `message` is
 * empty when ok; `warning` is empty when there is nothing to say. */
typedef struct mg_validation {
  int ok;
  char message[1024];
  char warning[512];
} mg_validation;

/* One named allocation. `bytes` is a double so NaN, inf and negative
 * values (from Lua or JSON) reach validation and are reported, not lost.
 * `name` may be NULL ("instance N" is used). */
typedef struct mg_limit_item {
  const char *name;
  double bytes;
} mg_limit_item;

/* Validate one limit against `effective_bytes` (what the machine really
 * offers, see mg_probe). Messages follow the seed:
 *   "Memory limit must be positive, got -5 B"
 *   "Requested limit 20.00 GiB exceeds total system memory 13.00 GiB"
 * and a warning above 90 %. Always returns 0; the verdict is in *out. */
MG_API int mg_validate_limit(double bytes, uint64_t effective_bytes,
                             mg_validation *out);

/* Validate `n` allocations and their sum. n == 0 is invalid ("No
 * allocations given"); each item is validated like mg_validate_limit (an
 * invalid item names itself); a sum above effective memory is invalid and
 * the message names each instance and its limit; above 95 % warns. */
MG_API int mg_validate_total(const mg_limit_item *items, size_t n,
                             uint64_t effective_bytes, mg_validation *out);

/* A GPU budget of an instance: gpu_limit `bytes` on the devices `gpus`
 * (NULL: every device), split evenly over them. */
typedef struct mg_gpu_budget {
  const char *name;
  double bytes;
  const unsigned *gpus;
  size_t ngpus;
} mg_gpu_budget;

/* A GPU device as admission sees it. */
typedef struct mg_gpu_capacity {
  const char *name;     /* "NVIDIA H200" */
  uint64_t total_bytes; /* its memory */
  int integrated;       /* shares system memory: counted by the host limit,
                           not here (so never twice) */
} mg_gpu_capacity;

/* Validate GPU budgets per device, in the seed's shapes: every budget is
 * finite and positive ("instance 2: GPU memory limit must be positive, got
 * -1 B"), names devices that exist ("llm: GPU 3 does not exist (this
 * machine has 2)"), and on each discrete device the shares (a budget over
 * k devices puts bytes/k on each) fit: "Total GPU allocation 90.00 GiB on
 * GPU 0 (NVIDIA H200) exceeds its memory 80.00 GiB: llm 60.00 GiB,
 * embedder 30.00 GiB". Warnings above 95 % of a device. Integrated
 * devices are skipped (their use is host memory). Returns 0; the verdict is
 * in *out. */
MG_API int mg_validate_gpu_total(const mg_gpu_budget *items, size_t n,
                                 const mg_gpu_capacity *devs, size_t ndevs,
                                 mg_validation *out);

#ifdef __cplusplus
}
#endif
#endif
