/* mg_cgroup_stat.c — what a group's memory charge is made of: anonymous,
 * file-backed and shmem bytes from its memory.stat, cgroup v1 and v2, and
 * its memory + swap (core layer).
 *
 * memory.stat is "<key> <value>" lines, values in bytes for the sizes we
 * read (v1 also has page counts such as pgfault, which are skipped). The
 * file is read into a stack buffer (a few KiB; a heap one only if it is
 * larger), because the supervisor reads it on every sample of a child.
 * What that costs is measured by bench/c/bench_core_sample.c: about as
 * much as reading /proc/PID/status, most of it the kernel formatting the
 * file (a read at offset 0 of a descriptor kept open would save the open
 * and close, about 40 %, at the price of a descriptor per group).
 */
#include "mg/mg_cgroup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mg/mg_error.h"
#include "mg__cgroup.h"
#include "mg__fileio.h"

#define CGS__STACK_BUF 8192
#define CGS__MAX_FILE ((size_t)1 << 20)

enum { CGS_ANON, CGS_FILE, CGS_SHMEM, CGS_N };

/* The keys of each part: the hierarchical one first where v1 has it. */
typedef struct cgs_keys {
  const char *total, *local;
} cgs_keys;

static const cgs_keys cgs_v1[CGS_N] = {
    {"total_rss", "rss"}, {"total_cache", "cache"}, {"total_shmem", "shmem"}};
static const cgs_keys cgs_v2[CGS_N] = {
    {"anon", NULL}, {"file", NULL}, {"shmem", NULL}};

/* Is the line [p, key_end) exactly `key`? */
static int cgs_is(const char *p, size_t n, const char *key) {
  return key && strlen(key) == n && memcmp(p, key, n) == 0;
}

/* The value of a "<key> <digits>" line, [v, eol): digits, then only
 * trailing blanks. */
static int cgs_value(const char *v, const char *eol, uint64_t *out) {
  while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t' || eol[-1] == '\r'))
    eol--;
  char num[32];
  size_t n = (size_t)(eol - v);
  if (n == 0 || n >= sizeof num)
    return MG_EPARSE;
  memcpy(num, v, n);
  num[n] = '\0';
  return mg__cg_parse_u64(num, out);
}

/* Parse the text of `path` (named in errors) for version `v1`. */
static int cgs_parse(const char *text, int v1, const char *path,
                     mg_cgroup_memstat *out, char *err, size_t err_len) {
  const cgs_keys *keys = v1 ? cgs_v1 : cgs_v2;
  uint64_t total[CGS_N] = {0}, local[CGS_N] = {0};
  int has_total[CGS_N] = {0}, has_local[CGS_N] = {0};
  mg__lines it = mg__lines_start(text);
  while (mg__lines_next(&it)) {
    const char *sp = memchr(it.line, ' ', (size_t)(it.eol - it.line));
    if (!sp)
      continue; /* not a "key value" line: nothing we read */
    size_t kl = (size_t)(sp - it.line);
    for (int k = 0; k < CGS_N; k++) {
      int is_total = cgs_is(it.line, kl, keys[k].total);
      if (!is_total && !cgs_is(it.line, kl, keys[k].local))
        continue;
      uint64_t v;
      if (cgs_value(sp + 1, it.eol, &v) < 0)
        return mg_errf(err, err_len, MG_EPARSE,
                       "malformed %s: line %d: \"%.*s\" (expected \"%.*s "
                       "<number of bytes>\")",
                       path, it.lineno, mg__lines_quote_len(&it), it.line,
                       (int)kl, it.line);
      if (is_total) {
        total[k] = v;
        has_total[k] = 1;
      } else {
        local[k] = v;
        has_local[k] = 1;
      }
      break;
    }
  }
  uint64_t val[CGS_N];
  for (int k = 0; k < CGS_N; k++) {
    val[k] = has_total[k] ? total[k] : local[k];
    if (k == CGS_SHMEM || has_total[k] || has_local[k])
      continue; /* shmem: absent on old kernels, 0 then */
    if (v1)
      return mg_errf(err, err_len, MG_EPARSE,
                     "malformed %s: no \"%s\" or \"%s\" line (is this a "
                     "cgroup v1 memory.stat?)",
                     path, keys[k].total, keys[k].local);
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: no \"%s\" line (is this a cgroup v2 "
                   "memory.stat?)",
                   path, keys[k].total);
  }
  out->anon_bytes = val[CGS_ANON];
  out->shmem_bytes = val[CGS_SHMEM];
  /* the kernel's file (v2) and cache (v1) counters include shmem */
  out->file_bytes =
      val[CGS_FILE] > val[CGS_SHMEM] ? val[CGS_FILE] - val[CGS_SHMEM] : 0;
  return 0;
}

int mg_cgroup_memstat_read(mg_cgroup *cg, mg_cgroup_memstat *out, char *err,
                           size_t err_len) {
  if (out)
    memset(out, 0, sizeof *out);
  if (!cg || !out)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_memstat_read: group and out are required");
  char path[PATH_MAX];
  if (mg__cg_join(path, sizeof path, mg_cgroup_dir(cg), "memory.stat") < 0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s",
                   mg_cgroup_dir(cg));
  char buf[CGS__STACK_BUF], *heap = NULL;
  const char *text = buf;
  int rc = mg__read_file(path, buf, sizeof buf, NULL);
  if (rc == -EFBIG) { /* many lines (a future kernel): read it all */
    rc = mg__read_file_alloc(path, CGS__MAX_FILE, &heap, NULL);
    text = heap;
  }
  if (rc == -EFBIG)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: larger than %zu bytes", path,
                   (size_t)CGS__MAX_FILE);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  rc = cgs_parse(text, mg_cgroup_get_version(cg) == MG_CGROUP_V1, path, out,
                 err, err_len);
  free(heap);
  if (rc < 0)
    memset(out, 0, sizeof *out);
  else if (err && err_len)
    err[0] = '\0';
  return rc;
}

/* Where the kernel accounts swap: v1 memory.memsw.usage_in_bytes (absent
 * when booted with swapaccount=0), v2 memory.swap.current (absent without
 * swap accounting, CONFIG_MEMCG_SWAP). */
int mg_cgroup_memsw_read(mg_cgroup *cg, uint64_t *bytes, char *err,
                         size_t err_len) {
  if (bytes)
    *bytes = 0;
  if (!cg || !bytes)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_cgroup_memsw_read: group and bytes are required");
  int v1 = mg_cgroup_get_version(cg) == MG_CGROUP_V1;
  const char *dir = mg_cgroup_dir(cg);
  char path[PATH_MAX];
  if (mg__cg_join(path, sizeof path, dir,
                  v1 ? "memory.memsw.usage_in_bytes" : "memory.swap.current") <
      0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s", dir);
  if (access(path, F_OK) != 0)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "this kernel does not account swap for %s (no %s: cgroup "
                   "v1 needs the kernel booted with swapaccount=1, v2 a "
                   "kernel with swap accounting); thresholds on memory "
                   "alone work",
                   dir,
                   v1 ? "memory.memsw.usage_in_bytes" : "memory.swap.current");
  uint64_t swap = 0, mem = 0;
  int rc = mg__cg_read_counter(path, &swap, err, err_len);
  if (rc == 0 && !v1) {
    if (mg__cg_join(path, sizeof path, dir, "memory.current") < 0)
      return mg_errf(err, err_len, -ENAMETOOLONG, "path too long: %s", dir);
    rc = mg__cg_read_counter(path, &mem, err, err_len);
  }
  if (rc < 0)
    return rc;
  *bytes = swap + mem;
  if (err && err_len)
    err[0] = '\0';
  return 0;
}
