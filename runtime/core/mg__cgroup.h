/* mg__cgroup.h — control-file helpers shared by cgroup detection
 * (mg_cgroup_detect.c) and child groups (mg_cgroup.c) (core layer, not
 * public). Errors are negative errno values or MG_EPARSE; the readers of
 * limits and counters explain a failure in `err`, naming the file.
 */
#ifndef MG__CGROUP_H
#define MG__CGROUP_H

#include <stddef.h>
#include <stdint.h>

/* v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on
 * 4 KiB pages); anything this large is no limit in practice. */
#define MG__CG_UNLIMITED_MIN (UINT64_C(1) << 62)

/* "<dir>/<name>" into out; -ENAMETOOLONG when it does not fit. */
int mg__cg_join(char *out, size_t len, const char *dir, const char *name);

/* Copy `s` into out; -ENAMETOOLONG when it does not fit. */
int mg__cg_copy(char *out, size_t len, const char *s);

/* Read a whole file of any size (mountinfo, cgroup.procs) into a new heap
 * buffer (*out, caller frees). */
int mg__cg_slurp(const char *path, char **out);

/* Is `word` an item of `list`, items separated by any char of `seps`? */
int mg__cg_list_has(const char *list, const char *seps, const char *word);

/* Does `path` lie at or under `root` (component-wise)? */
int mg__cg_under(const char *path, const char *root);

/* Strict unsigned decimal: digits only, no sign, no overflow. */
int mg__cg_parse_u64(const char *s, uint64_t *out);

/* Read and parse a limit file: a number of bytes, or "max" (v2); *bytes
 * is UINT64_MAX for no limit (also v1's huge "unlimited" number).
 * MG_EPARSE names the file and quotes it. */
int mg__cg_read_limit(const char *path, uint64_t *bytes, char *err,
                      size_t err_len);

/* Write `text` to a control file in one write(): 0, or -errno (-EIO for
 * a short write). */
int mg__cg_write(const char *path, const char *text);

/* Read a plain counter file (usage, failcnt…). */
int mg__cg_read_counter(const char *path, uint64_t *out, char *err,
                        size_t err_len);

#endif
