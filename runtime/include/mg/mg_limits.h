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

#ifdef __cplusplus
}
#endif
#endif
