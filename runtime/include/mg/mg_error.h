/* mg_error.h — error codes of libmg (core layer: no Lua, no libuv).
 *
 * Every libmg function that can fail returns 0 on success or a negative
 * error code. System errors are negative errno values (-ENOENT, -EACCES…);
 * libmg's own conditions use the MG_E* codes below, which lie outside the
 * errno range. mg_strerror() describes either kind. Functions that can say
 * more (quote the input, name the field) also fill a caller-owned
 * `char *err, size_t err_len` buffer; NULL is accepted there.
 */
#ifndef MG_ERROR_H
#define MG_ERROR_H

#include "mg/mg_api.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, description) — one table generates the enum,
 * mg_strerror() and mg_err_name(). */
#define MG_ERRNO_MAP(XX)                                                       \
  XX(EPARSE, -4096, "malformed input")                                         \
  XX(ERANGE_SIZE, -4097, "size out of range")                                  \
  XX(ENOTSUP, -4098, "not supported on this system")                           \
  XX(ELIMIT, -4099, "limit exceeded")                                          \
  XX(ECORRUPT, -4100, "corrupt or truncated file")                             \
  XX(EVERSION, -4101, "unsupported file version")                              \
  XX(ESTRATEGY, -4102, "pruning strategy failed")                              \
  XX(ENOTENFORCED, -4103, "limit is not enforced on this system")              \
  XX(EPINNED, -4104, "pinned messages cannot be evicted")                      \
  XX(EBUSY, -4105, "resource busy")                                            \
  XX(ECLOSED, -4106, "closed")

typedef enum {
#define MG__ERR_ENUM(name, value, desc) MG_##name = (value),
  MG_ERRNO_MAP(MG__ERR_ENUM)
#undef MG__ERR_ENUM
} mg_errcode;

/* Description of `code` (MG_E* or -errno). Returns a static string. */
MG_API const char *mg_strerror(int code);

/* Symbolic name of `code` ("EPARSE", "ENOENT"…). Returns a static string. */
MG_API const char *mg_err_name(int code);

/* Format into a caller-owned buffer; a no-op when buf is NULL or len is 0.
 * Always NUL-terminates. Returns `code` so callers can `return mg__err(...)`.
 */
MG_API int mg_errf(char *buf, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif
#endif
