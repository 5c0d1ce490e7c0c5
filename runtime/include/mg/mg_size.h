/* mg_size.h — parse and format memory sizes (core layer).
 *
 * Accepted: a non-negative integer number of bytes ("1048576"), or
 * "<number>[unit]" where the number may have a fraction ("1.5G") and the
 * unit is B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (also P, E) in any case,
 * all powers of 1024 ("2 GB" = 2147483648), optionally separated by spaces; or
 * "<number>%" of a base (the effective system memory). Everything else —
 * empty, negative, NaN, inf, trailing garbage, more than 2^63-1 bytes — is
 * MG_EPARSE / MG_ERANGE_SIZE with a message that quotes the input and says
 * what is accepted.
 */
#ifndef MG_SIZE_H
#define MG_SIZE_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest size libmg accepts: 2^63 - 1 bytes (fits a Lua integer). */
#define MG_SIZE_MAX ((uint64_t)INT64_MAX)

/* One line listing what mg_size_parse accepts, for error messages. */
#define MG_SIZE_ACCEPTED                                                       \
  "a non-negative number of bytes, or <number>[B|K|KB|KiB|M|MB|MiB|G|GB|GiB|"  \
  "T|TB|TiB|P|PiB|E|EiB] (powers of 1024, any case), or <number>% of "         \
  "effective memory"

/* Parse `text` into *out_bytes. `percent_base_bytes` is what 100% means;
 * pass 0 when no base is known (then "N%" is an error). Fractions round
 * down to whole bytes. Caller owns every buffer; nothing is allocated. */
MG_API int mg_size_parse(const char *text, uint64_t percent_base_bytes,
                         uint64_t *out_bytes, char *err, size_t err_len);

/* Check a number given as a double (from Lua or JSON): it must be finite,
 * non-negative, integral and at most MG_SIZE_MAX. */
MG_API int mg_size_from_double(double value, uint64_t *out_bytes, char *err,
                               size_t err_len);

/* Format `bytes` for people: "512 B", "1.00 KiB", "1.50 GiB" (two decimals,
 * rounded half up, 1024-based, largest unit up to EiB). Every value up to
 * MG_SIZE_MAX formats to a string that mg_size_parse reads back, within a
 * hundredth of its unit (near 2^63 it rounds down: "7.99 EiB"). Writes at
 * most `len` bytes into the caller's `buf` (always NUL-terminated) and
 * returns `buf`. 32 bytes are always enough. */
MG_API char *mg_size_format(uint64_t bytes, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
