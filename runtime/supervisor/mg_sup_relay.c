/* mg_sup_relay.c — the child's stderr through a pipe (supervisor layer):
 * for stderr = inherit the supervisor copies every chunk to its own
 * stderr as it arrives (live, in order), for stderr = null it drops it;
 * either way the last MG_SUP_TAIL_BYTES of the run are kept, for the exit
 * info and for classification (allocation-failure texts). A stderr file
 * is written by the child directly, and its tail is read back at the end.
 * The child's stderr is then a pipe, not a terminal. A reader of mgrun's
 * stderr that stalls for more than 100 ms loses what the child wrote
 * meanwhile (logged at the run's end as stderr_relay_dropped), rather
 * than stalling mgrun's loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg__sup.h"

static void relay__keep(mg_child *c, const char *buf, size_t n) {
  if (n >= MG_SUP_TAIL_BYTES) {
    memcpy(c->tail, buf + n - MG_SUP_TAIL_BYTES, MG_SUP_TAIL_BYTES);
    c->tail_pos = 0;
    c->tail_len = MG_SUP_TAIL_BYTES;
    return;
  }
  for (size_t i = 0; i < n;) {
    size_t room = MG_SUP_TAIL_BYTES - c->tail_pos;
    size_t k = n - i < room ? n - i : room;
    memcpy(c->tail + c->tail_pos, buf + i, k);
    c->tail_pos = (c->tail_pos + k) % MG_SUP_TAIL_BYTES;
    c->tail_len = c->tail_len + k > MG_SUP_TAIL_BYTES ? MG_SUP_TAIL_BYTES
                                                      : c->tail_len + k;
    i += k;
  }
}

/* Copy to our stderr, waiting for it at most RELAY__WAIT_MS per chunk: a
 * reader of mgrun's stderr that stalls must not stall the loop (what
 * cannot be written in time is dropped, counted in *dropped; the tail
 * keeps it). */
#define RELAY__WAIT_MS 100
static void relay__echo(mg_child *c, const char *buf, size_t n) {
  while (n > 0) {
    struct pollfd p = {2, POLLOUT, 0};
    /* once it was stuck, no more waiting until it takes data again */
    int r = poll(&p, 1, c->relay_stuck ? 0 : RELAY__WAIT_MS);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
      c->relay_dropped += n; /* our stderr is stuck or gone */
      c->relay_stuck = 1;
      return;
    }
    c->relay_stuck = 0;
    /* POLLOUT on a pipe promises PIPE_BUF bytes: a larger write to a
     * blocking pipe could still block, a PIPE_BUF one cannot */
    ssize_t w = write(2, buf, n < PIPE_BUF ? n : PIPE_BUF);
    if (w < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (w < 0) {
      c->relay_dropped += n;
      return;
    }
    buf += w;
    n -= (size_t)w;
  }
}

/* Read what is there; 1 at end of file (or an error), 0 otherwise. */
static int relay__read(mg_child *c, int fd) {
  char buf[16384];
  for (int rounds = 0; rounds < 64; rounds++) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno == EAGAIN ? 0 : 1;
    if (n == 0)
      return 1;
    relay__keep(c, buf, (size_t)n);
    if (c->relay_echo)
      relay__echo(c, buf, (size_t)n);
  }
  return 0;
}

static mg__sup_watch *relay__watch(mg_child *c) {
  for (mg__sup_watch *w = c->watches; w; w = w->next)
    if (w->kind == MG__W_RELAY)
      return w;
  return NULL;
}

static void relay__on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  mg__sup_watch *w = h->data;
  if (status < 0 || relay__read(w->c, w->fd))
    mg__sup_watch_close(w); /* every writer is gone */
}

int mg__sup_relay_prepare(mg_child *c, int *child_fd, char *err,
                          size_t err_len) {
  *child_fd = -1;
  c->tail_len = c->tail_pos = 0;
  c->relay_fd = -1;
  c->relay_stuck = 0;
  if (c->stderr_mode == MG_STDIO_FILE)
    return 0;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return mg_errf(err, err_len, -errno, "stderr: pipe: %s", strerror(errno));
  for (int i = 0; i < 2; i++)
    if (p[i] <= 2) { /* keep clear of the standard descriptors */
      int hi = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
      close(p[i]);
      p[i] = hi;
    }
  if (p[0] < 0 || p[1] < 0) {
    int e = errno;
    if (p[0] >= 0)
      close(p[0]);
    if (p[1] >= 0)
      close(p[1]);
    return mg_errf(err, err_len, -e, "stderr: pipe: %s", strerror(e));
  }
  fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
  c->relay_fd = p[0];
  c->relay_echo = c->stderr_mode == MG_STDIO_INHERIT;
  *child_fd = p[1];
  return 0;
}

void mg__sup_relay_started(mg_child *c) {
  if (c->relay_fd < 0)
    return;
  int fd = c->relay_fd;
  c->relay_fd = -1;
  mg__sup_watch_add(c, fd, MG__W_RELAY, UV_READABLE, relay__on_readable);
}

void mg__sup_relay_drain(mg_child *c) {
  mg__sup_watch *w = relay__watch(c);
  if (w) {
    relay__read(c, w->fd); /* what the run wrote before it died */
    mg__sup_watch_close(w);
  }
  if (c->relay_dropped) {
    mg_log_field f[] = {MG_LF_STR("name", c->name),
                        MG_LF_UINT("bytes", c->relay_dropped)};
    mg_log(c->sup->log, MG_LOG_WARN, "stderr_relay_dropped", f, 2);
    c->relay_dropped = 0;
  }
  if (c->relay_fd >= 0) { /* prepared, never started (a failed exec) */
    close(c->relay_fd);
    c->relay_fd = -1;
  }
}

void mg__sup_relay_tail(mg_child *c, mg_child_exit *e) {
  e->stderr_tail_len = 0;
  if (c->stderr_mode == MG_STDIO_FILE) {
    if (!c->stderr_path || c->err_start < 0)
      return;
    int f = open(c->stderr_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (f < 0)
      return;
    if (fstat(f, &st) == 0 && st.st_size > c->err_start) {
      int64_t from = (int64_t)st.st_size - MG_SUP_TAIL_BYTES;
      if (from < c->err_start)
        from = c->err_start;
      ssize_t n =
          pread(f, e->stderr_tail, (size_t)(st.st_size - from), (off_t)from);
      e->stderr_tail_len = n > 0 ? (size_t)n : 0;
    }
    close(f);
    return;
  }
  size_t first = c->tail_len < MG_SUP_TAIL_BYTES ? 0 : c->tail_pos;
  for (size_t i = 0; i < c->tail_len; i++)
    e->stderr_tail[i] = c->tail[(first + i) % MG_SUP_TAIL_BYTES];
  e->stderr_tail_len = c->tail_len;
}
