/* mg_meminfo.c — system memory from /proc/meminfo (core layer).
 *
 * Lines are "Key:   <number> kB". Only the keys below are checked; other
 * lines (new kernel fields, "HugePages_Total: 0" without a unit) are
 * skipped without a look, so a newer kernel cannot break the parser.
 *
 * MemAvailable appeared in Linux 3.14. Without it, available_bytes is
 * estimated like the kernel's own si_mem_available() minus the watermarks
 * we cannot see: MemFree + Buffers + (Cached - Shmem) + SReclaimable
 * (shared memory sits in Cached but cannot be dropped), capped at MemTotal.
 */
#include "mg/mg_meminfo.h"

#include "mg/mg_error.h"
#include "mg__fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  F_TOTAL,
  F_FREE,
  F_AVAIL,
  F_BUFFERS,
  F_CACHED,
  F_SHMEM,
  F_SRECL,
  F_SWAPT,
  F_SWAPF,
  F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "MemTotal", "MemFree",      "MemAvailable", "Buffers", "Cached",
    "Shmem",    "SReclaimable", "SwapTotal",    "SwapFree"};

static uint64_t *field_ptr(mg_meminfo *m, int f) {
  switch (f) {
  case F_TOTAL:
    return &m->total_bytes;
  case F_FREE:
    return &m->free_bytes;
  case F_AVAIL:
    return &m->available_bytes;
  case F_BUFFERS:
    return &m->buffers_bytes;
  case F_CACHED:
    return &m->cached_bytes;
  case F_SHMEM:
    return &m->shmem_bytes;
  case F_SRECL:
    return &m->sreclaimable_bytes;
  case F_SWAPT:
    return &m->swap_total_bytes;
  default:
    return &m->swap_free_bytes;
  }
}

int mg_meminfo_parse(const char *text, mg_meminfo *out, char *err,
                     size_t err_len) {
  mg_meminfo m;
  memset(&m, 0, sizeof m);
  if (out)
    memset(out, 0, sizeof *out);
  if (!text || !out)
    return mg_errf(err, err_len, MG_EPARSE, "meminfo: no text to parse");
  int seen[F_COUNT] = {0};
  mg__lines it = mg__lines_start(text);
  while (mg__lines_next(&it)) {
    for (int f = 0; f < F_COUNT; f++) {
      const char *v;
      if (!mg__lines_key(&it, field_names[f], &v))
        continue;
      if (mg__parse_kb(v, it.eol, field_ptr(&m, f)) < 0)
        return mg_errf(err, err_len, MG_EPARSE,
                       "meminfo: malformed line %d: \"%.*s\" (expected "
                       "\"%s: <number> kB\", at most 2^63-1 bytes)",
                       it.lineno, mg__lines_quote_len(&it), it.line,
                       field_names[f]);
      seen[f] = 1;
      break;
    }
  }
  if (text[strspn(text, " \t\r\n")] == '\0')
    return mg_errf(err, err_len, MG_EPARSE,
                   "meminfo: empty file (expected \"MemTotal: <number> kB\" "
                   "lines)");
  for (int f = F_TOTAL; f <= F_FREE; f++)
    if (!seen[f])
      return mg_errf(err, err_len, MG_EPARSE,
                     "meminfo: required field %s is missing (expected a "
                     "\"%s: <number> kB\" line)",
                     field_names[f], field_names[f]);
  if (!seen[F_AVAIL]) {
    uint64_t cache =
        m.cached_bytes > m.shmem_bytes ? m.cached_bytes - m.shmem_bytes : 0;
    /* Each term is < 2^63: two cannot wrap; saturate after that. */
    uint64_t est = m.free_bytes + m.buffers_bytes;
    est = est > UINT64_MAX - cache ? UINT64_MAX : est + cache;
    est = est > UINT64_MAX - m.sreclaimable_bytes ? UINT64_MAX
                                                  : est + m.sreclaimable_bytes;
    m.available_bytes = est < m.total_bytes ? est : m.total_bytes;
    m.available_estimated = 1;
  }
  *out = m;
  return 0;
}

int mg_meminfo_read(const char *proc_root, mg_meminfo *out, char *err,
                    size_t err_len) {
  if (out)
    memset(out, 0, sizeof *out);
  char path[4096];
  if (mg__path_join(path, sizeof path, proc_root, "/proc", "meminfo") < 0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "meminfo: path too long");
  char *text = NULL;
  int rc = mg__read_file_alloc(path, 1 << 20, &text, NULL);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  char perr[512];
  rc = mg_meminfo_parse(text, out, perr, sizeof perr);
  free(text);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "%s: %s", path, perr);
  return 0;
}
