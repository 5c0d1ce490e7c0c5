/* mg__fileio.c — internal file helpers (core layer). */
#include "mg__fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* open(path, O_RDONLY), retrying on EINTR: a descriptor or -errno. */
static int open_ro(const char *path) {
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

/* Read from fd into buf[*used, cap - 1) until EOF or the buffer is full,
 * retrying on EINTR; *used grows by what was read. Returns 1 at EOF, 0
 * when full (EOF not seen), or a negative errno. */
static int fill(int fd, char *buf, size_t cap, size_t *used) {
  while (*used < cap - 1) {
    ssize_t n = read(fd, buf + *used, cap - 1 - *used);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return 1;
    *used += (size_t)n;
  }
  return 0;
}

int mg__read_file(const char *path, char *buf, size_t cap, size_t *len) {
  if (len)
    *len = 0;
  if (!path || !buf || cap == 0)
    return -EINVAL;
  buf[0] = '\0';
  int fd = open_ro(path);
  if (fd < 0)
    return fd;
  size_t used = 0;
  int rc = fill(fd, buf, cap, &used);
  if (rc == 0) {
    /* Full: probe one more byte (extra holds one and its NUL slot) to
     * tell "exactly fits" from "too big". */
    char extra[2];
    size_t more = 0;
    rc = fill(fd, extra, sizeof extra, &more);
    if (rc == 0)
      rc = -EFBIG;
  }
  close(fd);
  buf[used] = '\0';
  if (len)
    *len = used;
  return rc == 1 ? 0 : rc;
}

int mg__read_file_alloc(const char *path, size_t max_len, char **out,
                        size_t *len) {
  if (len)
    *len = 0;
  if (!out)
    return -EINVAL;
  *out = NULL;
  if (!path || max_len == 0)
    return -EINVAL;
  int fd = open_ro(path);
  if (fd < 0)
    return fd;
  size_t cap = 4096, used = 0;
  char *buf = malloc(cap);
  int rc = buf ? fill(fd, buf, cap, &used) : -ENOMEM;
  while (rc == 0) {
    /* Full and not at EOF: grow, unless max_len is already passed. */
    if (cap - 1 > max_len) {
      rc = -EFBIG;
      break;
    }
    char *nb = realloc(buf, cap * 2);
    if (!nb) {
      rc = -ENOMEM;
      break;
    }
    buf = nb;
    cap *= 2;
    rc = fill(fd, buf, cap, &used);
  }
  close(fd);
  if (rc == 1)
    rc = used > max_len ? -EFBIG : 0;
  if (rc < 0) {
    free(buf);
    return rc;
  }
  buf[used] = '\0';
  *out = buf;
  if (len)
    *len = used;
  return 0;
}

int mg__path_join(char *out, size_t out_len, const char *root, const char *dflt,
                  const char *rel) {
  const char *r = (root && *root) ? root : dflt;
  if (!r)
    r = "";
  size_t rl = strlen(r);
  while (rl > 0 && r[rl - 1] == '/')
    rl--; /* "/" becomes "", so the join gives "/rel" */
  while (rel && *rel == '/')
    rel++;
  int n = snprintf(out, out_len, "%.*s/%s", (int)rl, r, rel ? rel : "");
  if (n < 0 || (size_t)n >= out_len)
    return -ENAMETOOLONG;
  return 0;
}

mg__lines mg__lines_start(const char *text) {
  mg__lines it = {.next = text};
  return it;
}

int mg__lines_next(mg__lines *it) {
  if (!*it->next)
    return 0;
  it->line = it->next;
  it->eol = strchr(it->line, '\n');
  if (!it->eol)
    it->eol = it->line + strlen(it->line);
  it->lineno++;
  it->next = *it->eol ? it->eol + 1 : it->eol;
  return 1;
}

int mg__lines_key(const mg__lines *it, const char *key, const char **value) {
  size_t kl = strlen(key);
  if ((size_t)(it->eol - it->line) <= kl || it->line[kl] != ':' ||
      memcmp(it->line, key, kl) != 0)
    return 0;
  const char *v = it->line + kl + 1;
  while (v < it->eol && (*v == ' ' || *v == '\t'))
    v++;
  *value = v;
  return 1;
}

int mg__lines_quote_len(const mg__lines *it) {
  return (int)(it->eol - it->line > 200 ? 200 : it->eol - it->line);
}

/* Parse " <digits> kB" into bytes (see mg__fileio.h). */
int mg__parse_kb(const char *p, const char *end, uint64_t *out) {
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p == end || *p < '0' || *p > '9')
    return -1;
  uint64_t v = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > ((UINT64_MAX >> 11) - d) / 10)
      return -1; /* kB * 1024 would pass 2^63-1 */
    v = v * 10 + d;
  }
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (end - p < 2 || p[0] != 'k' || p[1] != 'B')
    return -1;
  p += 2;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
    p++;
  if (p != end)
    return -1;
  *out = v * 1024;
  return 0;
}
