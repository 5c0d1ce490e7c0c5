/* mg_runtime_metrics_file.c — --metrics-file PATH (host layer): the text
 * of a scrape written to PATH.tmp, then renamed over PATH — atomically, as
 * node_exporter's textfile collector wants (it reads *.prom files only, so
 * PATH.tmp is never half-read) — once at start (a path that cannot be
 * written fails the start), every metrics_interval_ms on an unref'd
 * timer, and once at stop. A failed write is logged once
 * (metrics_file_failed path= error=) until one succeeds again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg__rt_metrics.h"

/* Write the text to file_tmp, then rename it over file. 0 or -errno with
 * err. */
static int mx__write_file(struct mg__rt_metrics *m, char *err, size_t err_len) {
  char *text;
  size_t len;
  int rc = mg__mx_text(m, &text, &len);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "out of memory");
  int fd = open(m->file_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = -errno;
    free(text);
    return mg_errf(err, err_len, rc, "cannot write '%s': %s", m->file_tmp,
                   strerror(-rc));
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      rc = w < 0 ? -errno : -EIO;
      break;
    }
    off += (size_t)w;
  }
  free(text);
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(m->file_tmp, m->file) != 0)
    rc = -errno;
  if (rc < 0) {
    unlink(m->file_tmp);
    return mg_errf(err, err_len, rc, "cannot write '%s' (through '%s'): %s",
                   m->file, m->file_tmp, strerror(-rc));
  }
  return 0;
}

void mg__mx_file_write(struct mg__rt_metrics *m) {
  if (!m->file)
    return;
  char err[PATH_MAX * 2 + 128];
  if (mx__write_file(m, err, sizeof err) == 0) {
    m->file_failing = 0;
    return;
  }
  if (!m->file_failing) { /* once per run of failures */
    mg_log_field f[] = {MG_LF_STR("path", m->file), MG_LF_STR("error", err)};
    mg_log(m->rt->opts.logger, MG_LOG_ERROR, "metrics_file_failed", f, 2);
  }
  m->file_failing = 1;
}

static void mx__on_file_timer(uv_timer_t *t) {
  mg__mx_file_write(t->data);
}

static void mx__free_handle(uv_handle_t *h) {
  free(h);
}

int mg__mx_file_start(struct mg__rt_metrics *m, char *err, size_t err_len) {
  const char *path = m->rt->opts.metrics_file;
  if (!path[0])
    return mg_errf(err, err_len, -EINVAL,
                   "--metrics-file: a path is needed, got an empty one");
  m->file = strdup(path);
  m->file_tmp = malloc(strlen(path) + 5);
  if (!m->file || !m->file_tmp)
    return mg_errf(err, err_len, -ENOMEM, "metrics: out of memory");
  sprintf(m->file_tmp, "%s.tmp", path);
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return mg_errf(err, err_len, -EISDIR,
                   "--metrics-file '%s' is a directory; accepted: the path of "
                   "a file to write (its directory must exist and be "
                   "writable)",
                   path);
  char e[PATH_MAX * 2 + 128];
  int rc = mx__write_file(m, e, sizeof e); /* at once: a bad path fails now */
  if (rc < 0)
    return mg_errf(err, err_len, rc,
                   "--metrics-file: %s (accepted: a file in an existing, "
                   "writable directory)",
                   e);
  uint64_t every = m->rt->opts.metrics_interval_ms
                       ? m->rt->opts.metrics_interval_ms
                       : MG_RUNTIME_DEFAULT_METRICS_MS;
  uv_timer_t *t = calloc(1, sizeof *t);
  if (!t)
    return mg_errf(err, err_len, -ENOMEM, "metrics: out of memory");
  uv_timer_init(m->rt->loop, t);
  t->data = m;
  uv_unref((uv_handle_t *)t);
  uv_timer_start(t, mx__on_file_timer, every, every);
  m->file_timer = t;
  mg_log_field f[] = {MG_LF_STR("path", path),
                      MG_LF_UINT("interval_ms", every)};
  mg_log(m->rt->opts.logger, MG_LOG_INFO, "metrics_file", f, 2);
  return 0;
}

void mg__mx_file_stop(struct mg__rt_metrics *m) {
  if (m->file_timer) {
    uv_timer_stop(m->file_timer);
    uv_close((uv_handle_t *)m->file_timer, mx__free_handle);
    m->file_timer = NULL;
  }
  free(m->file);
  free(m->file_tmp);
  m->file = m->file_tmp = NULL;
}
