/* mg_error.c — error codes and messages (core layer). */
#include "mg/mg_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *mg_strerror(int code) {
  switch (code) {
#define MG__ERR_STR(name, value, desc)                                         \
  case MG_##name:                                                              \
    return desc;
    MG_ERRNO_MAP(MG__ERR_STR)
#undef MG__ERR_STR
  case 0:
    return "success";
  default:
    if (code < 0 && code > -4096)
      return strerror(-code); /* glibc: a static table for known errnos */
    return "unknown error";
  }
}

const char *mg_err_name(int code) {
  switch (code) {
#define MG__ERR_NAME(name, value, desc)                                        \
  case MG_##name:                                                              \
    return #name;
    MG_ERRNO_MAP(MG__ERR_NAME)
#undef MG__ERR_NAME
  case 0:
    return "OK";
  default:
    if (code < 0 && code > -4096) {
      const char *n = strerrorname_np(-code);
      return n ? n : "EUNKNOWN";
    }
    return "EUNKNOWN";
  }
}

int mg_errf(char *buf, size_t len, int code, const char *fmt, ...) {
  if (buf && len > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
  }
  return code;
}
