/* mg_runtime_metrics_http.c — --metrics ADDR: GET /metrics over HTTP/1.x
 * on the runtime's libuv loop, on TCP (loopback unless metrics_remote) or
 * a unix socket (mode 0600) (host layer).
 *
 * One request per connection, answered with "Connection: close":
 *   GET or HEAD /metrics (a query string is ignored)
 *                     200, Content-Type MG_METRICS_CONTENT_TYPE, the text
 *   another path      404
 *   another method    405 (Allow: GET, HEAD)
 *   a malformed request line or not HTTP/1.x   400
 *   no end of headers within MG__MX_REQ_MAX bytes                 431
 * A connection that has not sent its request within MG__MX_TIMEOUT_MS is
 * closed; past MG__MX_CONNS_MAX connections at once, new ones are closed
 * at once. After the response the write side is shut down and what the
 * client still sends is read and dropped until it closes (at most
 * MG__MX_LINGER_MS), so that the kernel does not reset the connection
 * before the client has the response. Every handle is unref'd: the
 * endpoint never keeps the loop alive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg__rt_metrics.h"

#define MX_ACCEPTED                                                            \
  "accepted: 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:/path (PORT "  \
  "0 to 65535, 0 for a free one), or another IP address with "                 \
  "--metrics-allow-remote"

/* ------------------------------------------------------------ address */

static int mx__port(const char *s, unsigned *out) {
  unsigned v = 0;
  size_t n = 0;
  for (; s[n]; n++) {
    if (s[n] < '0' || s[n] > '9' || n >= 5)
      return -1;
    v = v * 10 + (unsigned)(s[n] - '0');
  }
  if (n == 0 || v > 65535)
    return -1;
  *out = v;
  return 0;
}

static int mx__is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
  if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
    return 1;
  return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
}

static void mx__show(mg__mx_addr *a) {
  char host[INET6_ADDRSTRLEN];
  if (a->ss.ss_family == AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;
    inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
    snprintf(a->shown, sizeof a->shown, "%s:%u", host, ntohs(s->sin_port));
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;
    inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
    snprintf(a->shown, sizeof a->shown, "[%s]:%u", host, ntohs(s->sin6_port));
  }
}

int mg__mx_parse_addr(const char *text, int remote, mg__mx_addr *out, char *err,
                      size_t err_len) {
  memset(out, 0, sizeof *out);
  if (!text || !text[0])
    return mg_errf(err, err_len, -EINVAL, "--metrics: an empty address; %s",
                   MX_ACCEPTED);
  size_t tlen = strlen(text);
  if (tlen > 200)
    return mg_errf(err, err_len, -EINVAL,
                   "--metrics: an address of %zu bytes; %s", tlen, MX_ACCEPTED);
  if (strncmp(text, "unix:", 5) == 0) {
    const char *path = text + 5;
    if (!path[0])
      return mg_errf(err, err_len, -EINVAL,
                     "--metrics '%s': no path after 'unix:'; %s", text,
                     MX_ACCEPTED);
    if (strlen(path) >= sizeof out->path)
      return mg_errf(err, err_len, -ENAMETOOLONG,
                     "--metrics '%s': the path is %zu bytes long; a unix "
                     "socket's path holds at most %zu",
                     text, strlen(path), sizeof out->path - 1);
    out->is_unix = 1;
    out->loopback = 1;
    snprintf(out->path, sizeof out->path, "%s", path);
    snprintf(out->shown, sizeof out->shown, "unix:%s", path);
    return 0;
  }
  char host[256];
  const char *port;
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (!close || close[1] != ':')
      return mg_errf(
          err, err_len, -EINVAL,
          "--metrics '%s': an IPv6 address is written [ADDRESS]:PORT, "
          "e.g. [::1]:9100; %s",
          text, MX_ACCEPTED);
    snprintf(host, sizeof host, "%.*s", (int)(close - text - 1), text + 1);
    port = close + 2;
  } else {
    const char *colon = strrchr(text, ':');
    if (!colon)
      return mg_errf(err, err_len, -EINVAL,
                     "--metrics '%s': no port; write HOST:PORT, e.g. "
                     "127.0.0.1:9100; %s",
                     text, MX_ACCEPTED);
    snprintf(host, sizeof host, "%.*s", (int)(colon - text), text);
    if (strchr(host, ':'))
      return mg_errf(err, err_len, -EINVAL,
                     "--metrics '%s': an IPv6 address needs brackets, e.g. "
                     "[::1]:9100; %s",
                     text, MX_ACCEPTED);
    port = colon + 1;
  }
  unsigned p;
  if (mx__port(port, &p) < 0)
    return mg_errf(err, err_len, -EINVAL,
                   "--metrics '%s': port '%s' is not a number from 0 to 65535 "
                   "(0 picks a free one)",
                   text, port);
  if (!host[0])
    return mg_errf(err, err_len, -EINVAL,
                   "--metrics '%s': no host; give 127.0.0.1:%u (loopback), or "
                   "0.0.0.0:%u (every interface) with --metrics-allow-remote",
                   text, p, p);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
  if (strcasecmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  if (text[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
  } else if (text[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
  } else {
    return mg_errf(
        err, err_len, -EINVAL,
        "--metrics '%s': '%s' is not an IP%s address (mgrun does not "
        "resolve host names; localhost means 127.0.0.1); %s",
        text, host, text[0] == '[' ? "v6" : "v4", MX_ACCEPTED);
  }
  out->loopback = mx__is_loopback(&out->ss);
  mx__show(out);
  if (!out->loopback && !remote)
    return mg_errf(err, err_len, -EINVAL,
                   "--metrics '%s' is not a loopback address: mgrun serves "
                   "metrics on loopback (127.0.0.1, [::1]) or a unix socket "
                   "only, unless --metrics-allow-remote is given "
                   "(metrics_remote for an embedded runtime)",
                   text);
  return 0;
}

/* ------------------------------------------------------------ connections */

typedef union mx_stream {
  uv_handle_t h;
  uv_stream_t s;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} mx_stream;

typedef struct mx_conn mx_conn;
struct mx_conn {
  mx_stream u;
  uv_timer_t timer;
  mg__mx_http *http; /* NULL once the endpoint stopped */
  mx_conn *prev, *next;
  int closing, pending; /* close callbacks still to come */
  int responded;        /* a response is queued: the rest is dropped */
  size_t len;
  char *resp;
  uv_write_t wr;
  uv_shutdown_t sh;
  char req[MG__MX_REQ_MAX];
};

struct mg__mx_http {
  struct mg__rt_metrics *m;
  mg__mx_addr addr;
  mx_stream *server; /* heap-held: freed by its close callback */
  int made_path;     /* the unix socket's file is ours to remove */
  mx_conn *conns;
  size_t nconns;
};

static void mx__conn_freed(uv_handle_t *h) {
  mx_conn *c = h->data;
  if (--c->pending == 0) {
    free(c->resp);
    free(c);
  }
}

static void mx__conn_close(mx_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  mg__mx_http *h = c->http;
  if (h) {
    if (c->prev)
      c->prev->next = c->next;
    else
      h->conns = c->next;
    if (c->next)
      c->next->prev = c->prev;
    h->nconns--;
    c->http = NULL;
  }
  uv_timer_stop(&c->timer);
  uv_close(&c->u.h, mx__conn_freed);
  uv_close((uv_handle_t *)&c->timer, mx__conn_freed);
}

static void mx__on_timeout(uv_timer_t *t) {
  mx__conn_close(t->data);
}

static void mx__on_shutdown(uv_shutdown_t *r, int status) {
  mx_conn *c = r->data;
  if (status < 0 && !c->closing)
    mx__conn_close(c);
}

static void mx__on_written(uv_write_t *r, int status) {
  mx_conn *c = r->data;
  if (c->closing)
    return;
  if (status < 0) {
    mx__conn_close(c);
    return;
  }
  c->sh.data = c;
  if (uv_shutdown(&c->sh, &c->u.s, mx__on_shutdown) < 0) {
    mx__conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, mx__on_timeout, MG__MX_LINGER_MS, 0);
}

/* Queue the response (headers, then `body` unless head_only). */
static void mx__respond(mx_conn *c, const char *status, const char *extra,
                        const char *type, const char *body, size_t blen,
                        int head_only) {
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "%sConnection: close\r\n\r\n",
                   status, type, blen, extra ? extra : "");
  size_t hl = (size_t)n, total = hl + (head_only ? 0 : blen);
  c->responded = 1;
  c->resp = malloc(total);
  if (!c->resp) {
    mx__conn_close(c);
    return;
  }
  memcpy(c->resp, head, hl);
  if (!head_only)
    memcpy(c->resp + hl, body, blen);
  uv_buf_t b = uv_buf_init(c->resp, (unsigned)total);
  c->wr.data = c;
  if (uv_write(&c->wr, &c->u.s, &b, 1, mx__on_written) < 0) {
    mx__conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, mx__on_timeout, MG__MX_TIMEOUT_MS, 0);
}

static void mx__respond_text(mx_conn *c, const char *status, const char *extra,
                             const char *body, int head_only) {
  mx__respond(c, status, extra, "text/plain; charset=utf-8", body, strlen(body),
              head_only);
}

static int mx__token(const char *s, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] >= 0x7f)
      return 0;
  return 1;
}

/* The request line is complete: answer it. */
static void mx__request(mx_conn *c) {
  const char *line = c->req;
  const char *eol = memchr(line, '\n', c->len);
  size_t n = (size_t)(eol - line);
  if (n && line[n - 1] == '\r')
    n--;
  /* METHOD SP TARGET SP HTTP/1.x */
  const char *sp1 = memchr(line, ' ', n);
  const char *sp2 =
      sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
  if (!sp1 || !sp2 || !mx__token(line, (size_t)(sp1 - line)) ||
      !mx__token(sp1 + 1, (size_t)(sp2 - sp1 - 1)) ||
      (size_t)(line + n - sp2 - 1) != 8 ||
      (memcmp(sp2 + 1, "HTTP/1.0", 8) != 0 &&
       memcmp(sp2 + 1, "HTTP/1.1", 8) != 0)) {
    mx__respond_text(c, "400 Bad Request", NULL,
                     "bad request: mgrun serves GET /metrics over HTTP/1.x\n",
                     0);
    return;
  }
  size_t mlen = (size_t)(sp1 - line);
  int get = mlen == 3 && memcmp(line, "GET", 3) == 0;
  int head = mlen == 4 && memcmp(line, "HEAD", 4) == 0;
  const char *target = sp1 + 1;
  size_t tlen = (size_t)(sp2 - target);
  const char *q = memchr(target, '?', tlen);
  if (q)
    tlen = (size_t)(q - target);
  int is_metrics = tlen == 8 && memcmp(target, "/metrics", 8) == 0;
  if (!get && !head) {
    mx__respond_text(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
                     "method not allowed: mgrun serves GET /metrics\n", 0);
    return;
  }
  if (!is_metrics) {
    mx__respond_text(c, "404 Not Found", NULL,
                     "not found: mgrun serves GET /metrics only\n", head);
    return;
  }
  char *text;
  size_t len;
  if (!c->http || mg__mx_text(c->http->m, &text, &len) < 0) {
    mx__respond_text(c, "503 Service Unavailable", NULL,
                     "metrics: out of memory\n", head);
    return;
  }
  mx__respond(c, "200 OK", NULL, MG_METRICS_CONTENT_TYPE, text, len, head);
  free(text);
}

static void mx__on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  mx_conn *c = h->data;
  (void)hint;
  if (c->responded) /* drained: what comes after the request is dropped */
    *buf = uv_buf_init(c->req, sizeof c->req);
  else
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - c->len));
}

static void mx__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mx_conn *c = s->data;
  (void)buf;
  if (c->closing)
    return;
  if (nread < 0) { /* EOF or an error: done */
    mx__conn_close(c);
    return;
  }
  if (c->responded || nread == 0)
    return;
  size_t was = c->len;
  c->len += (size_t)nread;
  /* the end of the headers (a bare LF ends lines too) */
  size_t from = was > 3 ? was - 3 : 0;
  if (memmem(c->req + from, c->len - from, "\r\n\r\n", 4) ||
      memmem(c->req + from, c->len - from, "\n\n", 2)) {
    mx__request(c);
    return;
  }
  if (c->len == sizeof c->req) {
    char body[128];
    snprintf(body, sizeof body,
             "request too large: at most %d bytes of request line and "
             "headers\n",
             MG__MX_REQ_MAX);
    mx__respond_text(c, "431 Request Header Fields Too Large", NULL, body, 0);
  }
}

static void mx__on_connection(uv_stream_t *server, int status) {
  mg__mx_http *h = server->data;
  if (status < 0)
    return;
  mx_conn *c = calloc(1, sizeof *c);
  if (!c) /* out of memory: it waits in the backlog (libuv accepts nothing
             more until it is taken) */
    return;
  uv_loop_t *loop = h->m->rt->loop;
  if (h->addr.is_unix)
    uv_pipe_init(loop, &c->u.pipe, 0);
  else
    uv_tcp_init(loop, &c->u.tcp);
  uv_timer_init(loop, &c->timer);
  c->u.h.data = c;
  c->timer.data = c;
  c->pending = 2;
  c->closing = 0;
  uv_unref(&c->u.h);
  uv_unref((uv_handle_t *)&c->timer);
  if (uv_accept(server, &c->u.s) < 0 || h->nconns >= MG__MX_CONNS_MAX) {
    c->closing = 1; /* never listed */
    uv_close(&c->u.h, mx__conn_freed);
    uv_close((uv_handle_t *)&c->timer, mx__conn_freed);
    return;
  }
  c->http = h;
  c->next = h->conns;
  if (h->conns)
    h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  uv_timer_start(&c->timer, mx__on_timeout, MG__MX_TIMEOUT_MS, 0);
  if (uv_read_start(&c->u.s, mx__on_alloc, mx__on_read) < 0)
    mx__conn_close(c);
}

/* ------------------------------------------------------------ server */

static void mx__server_freed(uv_handle_t *h) {
  free(h);
}

static void mx__http_free(mg__mx_http *h) {
  while (h->conns)
    mx__conn_close(h->conns);
  if (h->server)
    uv_close(&h->server->h, mx__server_freed);
  if (h->made_path)
    unlink(h->addr.path);
  free(h);
}

/* A unix socket path that exists already: a stale socket of a dead
 * process is removed; a live one or another kind of file is an error. */
static int mx__stale_socket(const char *path, char *err, size_t err_len) {
  struct stat st;
  if (lstat(path, &st) < 0)
    return 0;
  if (!S_ISSOCK(st.st_mode))
    return mg_errf(err, err_len, -EEXIST,
                   "--metrics 'unix:%s': the path exists and is not a socket; "
                   "accepted: a path that does not exist (or a stale socket)",
                   path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return mg_errf(err, err_len, -errno, "--metrics 'unix:%s': socket: %s",
                   path, strerror(errno));
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int live = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  int e = errno;
  close(fd);
  if (live)
    return mg_errf(err, err_len, -EADDRINUSE,
                   "--metrics 'unix:%s': another process listens there; "
                   "choose another path",
                   path);
  if (e == ECONNREFUSED && unlink(path) == 0)
    return 0;
  return mg_errf(err, err_len, -EADDRINUSE,
                 "--metrics 'unix:%s': the path is in use (%s)", path,
                 strerror(e));
}

static const char *mx__hint(int rc, int is_unix) {
  switch (rc) {
  case UV_EADDRINUSE:
    return is_unix ? "another socket is there"
                   : "another process listens on that port; choose another, "
                     "or 0 for a free one";
  case UV_EADDRNOTAVAIL:
    return "that address is not one of this machine's";
  case UV_EACCES:
    return is_unix ? "its directory is not writable"
                   : "ports below 1024 need privileges";
  case UV_ENOENT:
    return "its directory does not exist";
  default:
    return "cannot listen there";
  }
}

int mg__mx_http_start(struct mg__rt_metrics *m, char *err, size_t err_len) {
  mg__mx_http *h = calloc(1, sizeof *h);
  if (!h)
    return mg_errf(err, err_len, -ENOMEM, "metrics: out of memory");
  h->m = m;
  int rc =
      mg__mx_parse_addr(m->rt->opts.metrics_addr, m->rt->opts.metrics_remote,
                        &h->addr, err, err_len);
  if (rc < 0) {
    free(h);
    return rc;
  }
  if (h->addr.is_unix &&
      (rc = mx__stale_socket(h->addr.path, err, err_len)) < 0) {
    free(h);
    return rc;
  }
  h->server = calloc(1, sizeof *h->server);
  if (!h->server) {
    free(h);
    return mg_errf(err, err_len, -ENOMEM, "metrics: out of memory");
  }
  uv_loop_t *loop = m->rt->loop;
  if (h->addr.is_unix) {
    uv_pipe_init(loop, &h->server->pipe, 0);
  } else {
    uv_tcp_init(loop, &h->server->tcp);
  }
  h->server->h.data = h;
  uv_unref(&h->server->h);
  if (h->addr.is_unix) {
    rc = uv_pipe_bind(&h->server->pipe, h->addr.path);
    if (rc == 0) {
      h->made_path = 1;
      /* owner only, before listen: nobody can connect in between */
      if (chmod(h->addr.path, 0600) < 0)
        rc = uv_translate_sys_error(errno);
    }
  } else {
    rc = uv_tcp_bind(&h->server->tcp, (const struct sockaddr *)&h->addr.ss,
                     h->addr.ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
  }
  if (rc == 0)
    rc = uv_listen(&h->server->s, 64, mx__on_connection);
  if (rc < 0) {
    mg_errf(err, err_len, rc, "--metrics '%s': %s (%s)",
            m->rt->opts.metrics_addr, uv_strerror(rc),
            mx__hint(rc, h->addr.is_unix));
    mx__http_free(h);
    return rc;
  }
  if (!h->addr.is_unix) { /* the port really bound (0: a free one) */
    int len = sizeof h->addr.ss;
    if (uv_tcp_getsockname(&h->server->tcp, (struct sockaddr *)&h->addr.ss,
                           &len) == 0)
      mx__show(&h->addr);
  }
  m->http = h;
  mg_log_field f[] = {MG_LF_STR("addr", h->addr.shown)};
  mg_log(m->rt->opts.logger, MG_LOG_INFO, "metrics_listening", f, 1);
  return 0;
}

void mg__mx_http_stop(struct mg__rt_metrics *m) {
  mg__mx_http *h = m->http;
  if (!h)
    return;
  m->http = NULL;
  mx__http_free(h);
}
