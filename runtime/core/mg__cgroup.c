/* mg__cgroup.c — control-file helpers of the cgroup module (core layer). */
#include "mg__cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_error.h"
#include "mg__fileio.h"

int mg__cg_join(char *out, size_t len, const char *dir, const char *name) {
  int n = snprintf(out, len, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= len)
    return -ENAMETOOLONG;
  return 0;
}

int mg__cg_copy(char *out, size_t len, const char *s) {
  size_t n = strlen(s);
  if (n >= len)
    return -ENAMETOOLONG;
  memcpy(out, s, n + 1);
  return 0;
}

int mg__cg_slurp(const char *path, char **out) {
  return mg__read_file_alloc(path, (size_t)64 << 20, out, NULL);
}

int mg__cg_list_has(const char *list, const char *seps, const char *word) {
  size_t wl = strlen(word);
  const char *p = list;
  while (*p) {
    size_t n = strcspn(p, seps);
    if (n == wl && strncmp(p, word, wl) == 0)
      return 1;
    p += n;
    if (*p)
      p++;
  }
  return 0;
}

int mg__cg_under(const char *path, const char *root) {
  if (strcmp(root, "/") == 0)
    return 1;
  size_t rl = strlen(root);
  return strncmp(path, root, rl) == 0 && (path[rl] == '\0' || path[rl] == '/');
}

int mg__cg_parse_u64(const char *s, uint64_t *out) {
  uint64_t v = 0;
  if (!*s)
    return MG_EPARSE;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return MG_EPARSE;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return MG_EPARSE;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* Read a small value file and strip trailing whitespace. */
static int cg__read_value(const char *path, char *buf, size_t cap) {
  int rc = mg__read_file(path, buf, cap, NULL);
  if (rc < 0)
    return rc;
  size_t n = strlen(buf);
  while (n > 0 && isspace((unsigned char)buf[n - 1]))
    buf[--n] = '\0';
  return 0;
}

/* A limit value: a number of bytes, or "max" (v2). */
static int cg__parse_limit(const char *text, uint64_t *bytes) {
  if (strcmp(text, "max") == 0) {
    *bytes = UINT64_MAX;
    return 0;
  }
  uint64_t v;
  if (mg__cg_parse_u64(text, &v) < 0)
    return MG_EPARSE;
  *bytes = v >= MG__CG_UNLIMITED_MIN ? UINT64_MAX : v;
  return 0;
}

int mg__cg_read_limit(const char *path, uint64_t *bytes, char *err,
                      size_t err_len) {
  char buf[128];
  int rc = cg__read_value(path, buf, sizeof buf);
  if (rc == -EFBIG)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.40s...\" (expected a number of bytes "
                   "or \"max\")",
                   path, buf);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (cg__parse_limit(buf, bytes) < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.64s\" (expected a number of bytes or "
                   "\"max\")",
                   path, buf);
  return 0;
}

int mg__cg_read_counter(const char *path, uint64_t *out, char *err,
                        size_t err_len) {
  char buf[128];
  int rc = cg__read_value(path, buf, sizeof buf);
  if (rc < 0 && rc != -EFBIG)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  if (rc < 0 || mg__cg_parse_u64(buf, out) < 0)
    return mg_errf(err, err_len, MG_EPARSE,
                   "malformed %s: \"%.64s\" (expected a number)", path, buf);
  return 0;
}
