/* mg_log.h — structured log lines (core layer).
 *
 * One function writes one line: a time, a level, an event name and
 * fields. Text ("2026-11-29T12:00:00.123Z warn  approaching_size_limit
 * store=ctx used=80") or JSON lines ({"time":…,"level":…,"event":…, fields}).
 * The library never logs on its own: a logger exists only when the
 * embedding program creates one and says where it writes.
 */
#ifndef MG_LOG_H
#define MG_LOG_H

#include "mg/mg_api.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_log_level {
  MG_LOG_DEBUG = 0,
  MG_LOG_INFO = 1,
  MG_LOG_WARN = 2,
  MG_LOG_ERROR = 3
} mg_log_level;

typedef enum mg_log_format { MG_LOG_TEXT = 0, MG_LOG_JSON = 1 } mg_log_format;

typedef enum mg_log_type {
  MG_LOG_T_STR = 0,
  MG_LOG_T_INT = 1,
  MG_LOG_T_UINT = 2,
  MG_LOG_T_DOUBLE = 3,
  MG_LOG_T_BOOL = 4
} mg_log_type;

/* One field. Strings are borrowed for the duration of the call. */
typedef struct mg_log_field {
  const char *key;
  mg_log_type type;
  union {
    const char *s;
    int64_t i;
    uint64_t u;
    double d;
    int b;
  } v;
} mg_log_field;

#define MG_LF_STR(k, x)                                                        \
  {                                                                            \
    (k), MG_LOG_T_STR, {                                                       \
      .s = (x)                                                                 \
    }                                                                          \
  }
#define MG_LF_INT(k, x)                                                        \
  {                                                                            \
    (k), MG_LOG_T_INT, {                                                       \
      .i = (int64_t)(x)                                                        \
    }                                                                          \
  }
#define MG_LF_UINT(k, x)                                                       \
  {                                                                            \
    (k), MG_LOG_T_UINT, {                                                      \
      .u = (uint64_t)(x)                                                       \
    }                                                                          \
  }
#define MG_LF_DBL(k, x)                                                        \
  {                                                                            \
    (k), MG_LOG_T_DOUBLE, {                                                    \
      .d = (double)(x)                                                         \
    }                                                                          \
  }
#define MG_LF_BOOL(k, x)                                                       \
  {                                                                            \
    (k), MG_LOG_T_BOOL, {                                                      \
      .b = !!(x)                                                               \
    }                                                                          \
  }

typedef struct mg_logger mg_logger;

/* Create a logger writing to `out` (borrowed; the caller keeps it open).
 * Lines below `min_level` are dropped. Returns NULL on out-of-memory. */
MG_API mg_logger *mg_logger_new(FILE *out, mg_log_format format,
                                mg_log_level min_level);
MG_API void mg_logger_free(mg_logger *lg); /* NULL is a no-op */

MG_API void mg_logger_set_level(mg_logger *lg, mg_log_level min_level);
MG_API mg_log_level mg_logger_level(const mg_logger *lg);
MG_API mg_log_format mg_logger_format(const mg_logger *lg);
/* Change the format of the lines written from now on (thread-safe). */
MG_API void mg_logger_set_format(mg_logger *lg, mg_log_format format);

/* Write one line (thread-safe, one write per line). A NULL logger drops
 * the line. `fields` may be NULL when n is 0. */
MG_API void mg_log(mg_logger *lg, mg_log_level level, const char *event,
                   const mg_log_field *fields, size_t n);

/* "debug", "info", "warn", "error". */
MG_API const char *mg_log_level_name(mg_log_level level);
/* Parse a level name ("warning" is accepted for warn); -EINVAL otherwise. */
MG_API int mg_log_level_parse(const char *name, mg_log_level *out);
/* Parse "text" / "json"; -EINVAL otherwise. */
MG_API int mg_log_format_parse(const char *name, mg_log_format *out);

#ifdef __cplusplus
}
#endif
#endif
