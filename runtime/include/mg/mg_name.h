/* mg_name.h — the one rule for the names of processes and stores (core
 * layer). Names appear in cgroup directory names, file names, log fields
 * and metric labels, so they are kept to a safe alphabet:
 * 1 to 64 bytes of A-Z a-z 0-9 . _ -, and neither "." nor "..".
 */
#ifndef MG_NAME_H
#define MG_NAME_H

#include "mg/mg_api.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest name, in bytes. */
#define MG_NAME_MAX 64u

/* What the rule accepts, for error messages. */
#define MG_NAME_ACCEPTED                                                       \
  "1 to 64 characters from A-Z a-z 0-9 . _ - (not \".\" or \"..\")"

/* Check `len` bytes at `name` (which may hold NUL bytes: they are refused,
 * as in a Lua string). 0, or -EINVAL with err (caller-owned, may be NULL)
 * naming `what` ("name", "store name"), quoting the name and saying what is
 * accepted. A NULL name is "required". */
MG_API int mg_name_check(const char *what, const char *name, size_t len,
                         char *err, size_t err_len);

/* Make a valid name from `text` (a program path, say): its last path
 * component, characters outside the alphabet turned into '_', cut to
 * MG_NAME_MAX; `fallback` (itself valid) when nothing is left or the
 * result is "." or "..". Writes at most out_len bytes (NUL-terminated;
 * MG_NAME_MAX + 1 are always enough) and returns out. */
MG_API char *mg_name_from(const char *text, const char *fallback, char *out,
                          size_t out_len);

#ifdef __cplusplus
}
#endif
#endif
