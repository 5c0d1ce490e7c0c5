/* mg_runtime_control_conn.c — the control socket's connections (host
 * layer; libuv, jansson): request lines framed (mg__ctl_framer), handed to
 * mg__ctl_handle one at a time, responses written back; back-pressure;
 * subscribers and their bounded queues. See mg_runtime_control.c for the
 * rules, mg__control.h for the numbers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mg__control.h"

#define DUMP_FLAGS                                                             \
  (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12))

typedef struct wreq {
  uv_write_t req;
  mg__ctl_conn *conn;
  char data[];
} wreq;

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

uint64_t mg__ctl_uptime_ms(const struct mg__rt_control *ctl) {
  return (uv_hrtime() - ctl->t0_ns) / 1000000u;
}

/* ------------------------------------------------------------ framer */

int mg__ctl_framer_init(mg__ctl_framer *f) {
  memset(f, 0, sizeof *f);
  /* one more byte: a last line without its newline is NUL-terminated */
  f->buf = malloc(MG__CTL_LINE_MAX + MG__CTL_READ_CHUNK + 1);
  return f->buf ? 0 : -ENOMEM;
}

void mg__ctl_framer_free(mg__ctl_framer *f) {
  free(f->buf);
  f->buf = NULL;
}

/* Room for the next read: at most one chunk, after what is held (moved
 * to the front first). Once every line has been taken out, what is left
 * is less than a line, so a chunk always fits. */
char *mg__ctl_framer_space(mg__ctl_framer *f, size_t *room) {
  size_t cap = MG__CTL_LINE_MAX + MG__CTL_READ_CHUNK;
  f->off += f->handed; /* the line handed out last is done with */
  f->len -= f->handed;
  f->handed = 0;
  if (f->off) {
    memmove(f->buf, f->buf + f->off, f->len);
    f->off = 0;
  }
  *room = cap - f->len < MG__CTL_READ_CHUNK ? cap - f->len : MG__CTL_READ_CHUNK;
  return f->buf + f->len;
}

void mg__ctl_framer_wrote(mg__ctl_framer *f, size_t n) {
  f->len += n;
}

/* Take n bytes off the front (no copy: the next space() compacts). */
static void consume(mg__ctl_framer *f, size_t n) {
  f->off += n;
  f->len -= n;
  if (f->len == 0)
    f->off = 0;
}

int mg__ctl_framer_next(mg__ctl_framer *f, int eof, const char **line,
                        size_t *len) {
  consume(f, f->handed);
  f->handed = 0;
  for (;;) {
    char *at = f->buf + f->off;
    char *nl = memchr(at, '\n', f->len);
    if (f->discarding) {
      size_t skip = nl ? (size_t)(nl - at) + 1 : f->len;
      f->discarded += skip;
      consume(f, skip);
      if (!nl)
        return MG__CTL_FRAME_MORE;
      f->discarding = 0;
      continue;
    }
    size_t n = nl ? (size_t)(nl - at) : f->len;
    if (n + 1 > MG__CTL_LINE_MAX) { /* the line with its newline */
      f->discarding = 1;
      f->discarded = 0;
      return MG__CTL_FRAME_OVERSIZED;
    }
    if (!nl && !(eof && f->len > 0))
      return MG__CTL_FRAME_MORE;
    size_t take = nl ? n + 1 : n;
    at[n] = '\0'; /* the newline, or within the room past the data */
    size_t l = n;
    if (l && at[l - 1] == '\r')
      l--;
    int blank = 1;
    for (size_t i = 0; i < l && blank; i++)
      blank = at[i] == ' ' || at[i] == '\t';
    if (blank) { /* no request, no response */
      consume(f, take);
      continue;
    }
    *line = at;
    *len = l;
    f->handed = take;
    return MG__CTL_FRAME_LINE;
  }
}

/* ------------------------------------------------------------ lifetime */

void mg__ctl_maybe_free(struct mg__rt_control *ctl) {
  if (ctl->stopped && ctl->handles == 0)
    free(ctl);
}

static void conn_closed(uv_handle_t *h) {
  mg__ctl_conn *conn = (mg__ctl_conn *)h;
  struct mg__rt_control *ctl = conn->ctl;
  mg__ctl_framer_free(&conn->fr);
  free(conn);
  ctl->handles--;
  mg__ctl_maybe_free(ctl);
}

void mg__ctl_conn_close(mg__ctl_conn *conn) {
  struct mg__rt_control *ctl = conn->ctl;
  if (conn->closing)
    return;
  conn->closing = 1;
  if (conn->subscribed)
    ctl->nsubs--;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    ctl->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  ctl->nconns--;
  uv_close((uv_handle_t *)&conn->pipe, conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  mg__ctl_conn *conn = req->data;
  free(req);
  mg__ctl_conn_close(conn);
}

/* Close once what is queued has been written. */
void mg__ctl_conn_finish(mg__ctl_conn *conn) {
  if (conn->closing)
    return;
  uv_read_stop((uv_stream_t *)&conn->pipe);
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req) {
    req->data = conn;
    if (uv_shutdown(req, (uv_stream_t *)&conn->pipe, on_shutdown) == 0)
      return;
    free(req);
  }
  mg__ctl_conn_close(conn);
}

/* ------------------------------------------------------------ writing */

static void drain(mg__ctl_conn *conn);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static size_t queued(mg__ctl_conn *conn) {
  return uv_stream_get_write_queue_size((uv_stream_t *)&conn->pipe);
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  mg__ctl_conn *conn = w->conn;
  free(w);
  if (conn->closing)
    return;
  if (status < 0) { /* the client went away */
    mg__ctl_conn_close(conn);
    return;
  }
  if (conn->subscribed && conn->full_since &&
      queued(conn) < MG__CTL_SUB_MAX / 2) {
    conn->full_since = 0;
    if (conn->dropped) { /* say what it missed */
      json_t *o = json_object();
      json_object_set_new(o, "count", json_integer((json_int_t)conn->dropped));
      conn->dropped = 0;
      json_t *line = json_object();
      json_object_set_new(line, "v", json_integer(MG__CTL_PROTOCOL));
      json_object_set_new(line, "event", json_string("dropped"));
      json_object_set_new(
          line, "t_ms",
          json_real((double)(uv_hrtime() - conn->ctl->t0_ns) / 1e6));
      json_object_update(line, o);
      json_decref(o);
      char *t = json_dumps(line, DUMP_FLAGS);
      json_decref(line);
      size_t n = t ? strlen(t) : 0;
      wreq *d = t ? malloc(sizeof *d + n + 1) : NULL;
      if (d) {
        memcpy(d->data, t, n);
        d->data[n] = '\n';
        d->conn = conn;
        uv_buf_t b = uv_buf_init(d->data, (unsigned)n + 1);
        if (uv_write(&d->req, (uv_stream_t *)&conn->pipe, &b, 1, on_written) <
            0)
          free(d);
      }
      free(t);
    }
  }
  if (conn->paused && queued(conn) <= MG__CTL_WRITE_MAX / 2) {
    conn->paused = 0;
    drain(conn);
    if (!conn->paused && !conn->closing) {
      if (conn->eof && !conn->subscribed)
        mg__ctl_conn_finish(conn);
      else if (!conn->eof)
        uv_read_start((uv_stream_t *)&conn->pipe, NULL, on_read) == 0
            ? (void)0
            : mg__ctl_conn_close(conn);
    }
  }
}

/* Queue `text` (n bytes, a newline added). */
static int write_text(mg__ctl_conn *conn, const char *text, size_t n) {
  wreq *w = malloc(sizeof *w + n + 1);
  if (!w)
    return -ENOMEM;
  memcpy(w->data, text, n);
  w->data[n] = '\n';
  w->conn = conn;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n + 1);
  int rc = uv_write(&w->req, (uv_stream_t *)&conn->pipe, &b, 1, on_written);
  if (rc < 0)
    free(w);
  return rc;
}

/* Send a response (consumed); one too large becomes an error. */
static void send_json(mg__ctl_conn *conn, json_t *o) {
  if (conn->closing) {
    json_decref(o);
    return;
  }
  char *t = o ? json_dumps(o, DUMP_FLAGS) : NULL;
  if (t && strlen(t) > MG__CTL_RESPONSE_MAX) {
    json_t *e = mg__ctl_error(json_object_get(o, "id"), "EMSGSIZE",
                              "the response would be %zu bytes, more than "
                              "%u (a policy command's result too large?)",
                              strlen(t), MG__CTL_RESPONSE_MAX);
    free(t);
    t = e ? json_dumps(e, DUMP_FLAGS) : NULL;
    json_decref(e);
  }
  json_decref(o);
  static const char oom[] = "{\"v\":1,\"id\":null,\"ok\":false,\"error\":"
                            "\"out of memory\",\"code\":\"ENOMEM\"}";
  int rc = t ? write_text(conn, t, strlen(t))
             : write_text(conn, oom, sizeof oom - 1);
  free(t);
  if (rc < 0) {
    mg__ctl_conn_close(conn);
    return;
  }
  if (!conn->subscribed && queued(conn) > MG__CTL_WRITE_MAX && !conn->paused) {
    conn->paused = 1;
    uv_read_stop((uv_stream_t *)&conn->pipe);
  }
}

void mg__ctl_send_subscribers(struct mg__rt_control *ctl, json_t *line,
                              int is_sample) {
  char *t = json_dumps(line, DUMP_FLAGS);
  json_decref(line);
  if (!t)
    return;
  size_t n = strlen(t);
  uint64_t now = now_ms();
  for (mg__ctl_conn *c = ctl->conns, *next; c; c = next) {
    next = c->next;
    if (!c->subscribed || c->closing || (is_sample && !c->samples))
      continue;
    if (queued(c) > MG__CTL_SUB_MAX) { /* a slow reader: drop, count */
      c->dropped++;
      if (!c->full_since) {
        c->full_since = now ? now : 1;
        mg_log_field f[] = {MG_LF_UINT("conn", c->id),
                            MG_LF_INT("pid", c->pid)};
        mg_log(ctl->rt->opts.logger, MG_LOG_WARN, "control_subscriber_behind",
               f, 2);
      } else if (now - c->full_since > MG__CTL_SUB_STUCK_MS) {
        mg_log_field f[] = {MG_LF_UINT("conn", c->id), MG_LF_INT("pid", c->pid),
                            MG_LF_UINT("dropped", c->dropped)};
        mg_log(ctl->rt->opts.logger, MG_LOG_WARN, "control_subscriber_dropped",
               f, 3);
        mg__ctl_conn_close(c);
      }
      continue;
    }
    if (write_text(c, t, n) < 0)
      mg__ctl_conn_close(c);
  }
  free(t);
}

/* ------------------------------------------------------------ reading */

void mg__ctl_conn_refuse(mg__ctl_conn *conn, const char *code,
                         const char *msg) {
  send_json(conn, mg__ctl_error(NULL, code, "%s", msg));
  mg__ctl_conn_finish(conn);
}

/* Handle the complete lines buffered, unless back-pressure holds them. */
static void drain(mg__ctl_conn *conn) {
  struct mg__rt_control *ctl = conn->ctl;
  while (!conn->paused && !conn->closing && !conn->subscribed &&
         !ctl->stopped) {
    const char *line;
    size_t len;
    int r = mg__ctl_framer_next(&conn->fr, conn->eof, &line, &len);
    if (r == MG__CTL_FRAME_MORE)
      break;
    if (r == MG__CTL_FRAME_OVERSIZED) {
      send_json(conn, mg__ctl_error(NULL, "EMSGSIZE",
                                    "request line too long: more than %u "
                                    "bytes (accepted: one JSON object per "
                                    "line, at most %u bytes with its "
                                    "newline); skipped to its end",
                                    MG__CTL_LINE_MAX - 1, MG__CTL_LINE_MAX));
      conn->bad++;
    } else {
      mg__ctl_after after;
      ctl->peer_uid = conn->uid;
      ctl->peer_pid = conn->pid;
      ctl->dispatching = conn;
      json_t *resp = mg__ctl_handle(ctl, line, len, &after);
      ctl->dispatching = NULL;
      if (ctl->stopped) { /* it ended mgrun: this answer, then the end */
        send_json(conn, resp);
        mg__ctl_conn_finish(conn);
        return;
      }
      send_json(conn, resp);
      conn->bad = after.bad ? conn->bad + 1 : 0;
      if (after.subscribe && !conn->closing) {
        conn->subscribed = 1;
        conn->samples = after.samples;
        ctl->nsubs++;
      }
    }
    if (conn->bad >= MG__CTL_BAD_MAX) {
      char msg[160];
      snprintf(msg, sizeof msg,
               "closing the connection: %d malformed requests in a row",
               conn->bad);
      mg__ctl_conn_refuse(conn, "EPROTO", msg);
      return;
    }
  }
  if (!conn->closing && conn->fr.discarding &&
      conn->fr.discarded > MG__CTL_DISCARD_MAX) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "closing the connection: a line of more than %u bytes without "
             "a newline",
             MG__CTL_DISCARD_MAX);
    mg__ctl_conn_refuse(conn, "EMSGSIZE", msg);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  mg__ctl_conn *conn = (mg__ctl_conn *)h;
  size_t room;
  char *at = mg__ctl_framer_space(&conn->fr, &room);
  (void)suggested;
  *buf = uv_buf_init(at, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mg__ctl_conn *conn = (mg__ctl_conn *)s;
  (void)buf;
  if (conn->closing)
    return;
  if (nread > 0) {
    if (conn->subscribed)
      return; /* a subscriber's input is ignored (never kept) */
    mg__ctl_framer_wrote(&conn->fr, (size_t)nread);
    drain(conn);
    return;
  }
  if (nread == 0)
    return;
  if (nread != UV_EOF) {
    mg__ctl_conn_close(conn);
    return;
  }
  conn->eof = 1;
  uv_read_stop(s);
  if (conn->subscribed)
    return;    /* half-closed: events go on until a write fails */
  drain(conn); /* a last line without its newline */
  if (!conn->paused && !conn->closing)
    mg__ctl_conn_finish(conn);
}

/* ------------------------------------------------------------ accepting */

mg__ctl_conn *mg__ctl_conn_accept(struct mg__rt_control *ctl,
                                  uv_stream_t *server) {
  mg__ctl_conn *conn = calloc(1, sizeof *conn);
  if (!conn || mg__ctl_framer_init(&conn->fr) < 0) {
    free(conn);
    return NULL;
  }
  conn->ctl = ctl;
  uv_pipe_init(server->loop, &conn->pipe, 0);
  ctl->handles++;
  conn->next = ctl->conns;
  if (ctl->conns)
    ctl->conns->prev = conn;
  ctl->conns = conn;
  ctl->nconns++;
  conn->id = ++ctl->next_conn_id;
  uv_unref((uv_handle_t *)&conn->pipe);
  if (uv_accept(server, (uv_stream_t *)&conn->pipe) < 0) {
    mg__ctl_conn_close(conn);
    return NULL;
  }
  struct ucred cr;
  socklen_t cl = sizeof cr;
  uv_os_fd_t fd = -1;
  memset(&cr, 0, sizeof cr);
  if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
    cr.uid = (uid_t)-1; /* unknown: refused */
    cr.pid = 0;
  }
  conn->uid = cr.uid;
  conn->pid = cr.pid;
  return conn;
}

void mg__ctl_conn_start(mg__ctl_conn *conn) {
  if (uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read) < 0)
    mg__ctl_conn_close(conn);
}

void mg__ctl_conns_close(struct mg__rt_control *ctl) {
  if (ctl->nsubs) { /* the last line, where it can be written at once */
    char line[128];
    int n = snprintf(
        line, sizeof line, "{\"v\":%d,\"event\":\"shutdown\",\"t_ms\":%.3f}\n",
        MG__CTL_PROTOCOL, (double)(uv_hrtime() - ctl->t0_ns) / 1e6);
    for (mg__ctl_conn *c = ctl->conns; c; c = c->next)
      if (c->subscribed && !c->closing) {
        uv_buf_t b = uv_buf_init(line, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
      }
  }
  /* all but the one whose request stops the server: it gets its answer
   * first (drain finishes it) */
  for (mg__ctl_conn *c = ctl->conns, *next; c; c = next) {
    next = c->next;
    if (c != ctl->dispatching)
      mg__ctl_conn_close(c);
  }
}
