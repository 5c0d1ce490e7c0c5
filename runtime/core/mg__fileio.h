/* mg__fileio.h — internal file helpers of libmg (core layer, not public).
 *
 * Small readers for /proc and /sys files, and a walker over the lines of
 * what they read. Errors are negative errno values; callers turn them into
 * messages.
 */
#ifndef MG__FILEIO_H
#define MG__FILEIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read all of `path` into the caller's `buf` (capacity `cap`, >= 1) and
 * NUL-terminate it; *len (may be NULL) receives the number of bytes read.
 * Reads until EOF (proc/sys files report size 0, so st_size is not used),
 * retrying on EINTR. Returns 0, a negative errno from open/read, or
 * -EFBIG when the file does not fit in cap - 1 bytes (buf then holds the
 * first cap - 1 bytes, NUL-terminated). */
int mg__read_file(const char *path, char *buf, size_t cap, size_t *len);

/* Read all of `path` into a new heap buffer (NUL-terminated), for files
 * whose size is not known in advance (/proc/PID/status with a long Groups
 * line). Reads at most `max_len` bytes; a longer file is -EFBIG. On 0 the
 * caller owns *out and frees it with free(); on error *out is NULL. */
int mg__read_file_alloc(const char *path, size_t max_len, char **out,
                        size_t *len);

/* Join `root` (NULL or "" = `dflt`) and `rel` with one '/' into `out`.
 * Returns 0, or -ENAMETOOLONG when it does not fit. */
int mg__path_join(char *out, size_t out_len, const char *root, const char *dflt,
                  const char *rel);

/* Walks the lines of a NUL-terminated text (meminfo, PID/status,
 * pressure, memory.stat):
 *   mg__lines it = mg__lines_start(text);
 *   while (mg__lines_next(&it)) ... [it.line, it.eol) ...
 * A line ends at '\n' (not included) or at the NUL; a final '\n' does not
 * start an empty last line. */
typedef struct mg__lines {
  const char *line; /* the current line */
  const char *eol;  /* its end: its '\n' or the text's NUL */
  int lineno;       /* 1 for the first line */
  const char *next; /* where the next line starts */
} mg__lines;

mg__lines mg__lines_start(const char *text);

/* Step to the next line: 1 when there is one, 0 at the end of the text. */
int mg__lines_next(mg__lines *it);

/* Whether the current line is "<key>:<value>" (key without ':'); *value
 * is then where the value starts, past spaces and tabs (it ends at eol). */
int mg__lines_key(const mg__lines *it, const char *key, const char **value);

/* The current line's length for quoting in a message: at most 200. */
int mg__lines_quote_len(const mg__lines *it);

/* Parse " <digits> kB" (spaces/tabs around, as in /proc/meminfo and
 * /proc/PID/status) in [p, end) into bytes. Returns 0, or -1 when
 * malformed or above 2^63-1 bytes. */
int mg__parse_kb(const char *p, const char *end, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
