/* ctl.c — `mgrun ctl`: talk to a running mgrun through its control socket
 * (mgrun CLI layer: POSIX sockets, jansson, the core's sizes and the
 * host's default path; no libuv, no Lua). One request, one response
 * (events: a stream), printed for people, or as it came with --json. The
 * protocol is docs/operations.md's "Control socket".
 */
#include "ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mg/mg_runtime.h"

#define CTL_PROTOCOL 1
#define CTL_TIMEOUT_MS 10000
#define CTL_LINE_MAX (8u << 20) /* a response line (status of many) */

static const char ctl_usage[] =
    "Usage: mgrun ctl [--socket PATH] [--json] [--timeout MS] COMMAND "
    "[ARGS...]\n"
    "\n"
    "Talk to a running mgrun through its control socket (mgrun "
    "--control[=PATH]).\n"
    "\n"
    "Commands:\n"
    "  status                    children (state, pid, usage, limit, peak,\n"
    "                            restarts) and stores\n"
    "  set-limit NAME SIZE       change a child's limit now and for its "
    "later runs\n"
    "                            (SIZE as everywhere, or none: a watched "
    "limit off)\n"
    "  stop NAME [GRACE_MS]      stop a child for good: SIGTERM, SIGKILL "
    "after the\n"
    "                            grace (default the child's; 0: at once)\n"
    "  restart NAME [GRACE_MS]   end the child's run (SIGTERM, SIGKILL "
    "after the\n"
    "                            grace) so that its restart policy starts "
    "it again;\n"
    "                            refused where that policy would not\n"
    "  stats STORE               a store's figures (also: store-stats)\n"
    "  reload                    run the policy's reload handler "
    "(mg.on_reload)\n"
    "  events [--samples]        stream events (starts, exits, kills, "
    "thresholds,\n"
    "                            OOM kills, restarts…) until mgrun ends "
    "(also:\n"
    "                            subscribe); --samples adds every sample\n"
    "  health                    exit 0 when healthy, 1 when not or when "
    "there is\n"
    "                            no answer (node-problem-detector, scripts)\n"
    "  hello                     the protocol version and the commands, "
    "the\n"
    "                            policy's too\n"
    "  CMD [KEY=VALUE...|ARG...] a command of the policy (mg.on_control): "
    "its\n"
    "                            function gets {KEY=VALUE,...} (KEY:=JSON "
    "for a\n"
    "                            JSON value) or {ARG,...}\n"
    "\n"
    "Options:\n"
    "  --socket PATH   the control socket (default: "
    "$XDG_RUNTIME_DIR/mgrun/mgrun.sock,\n"
    "                  else /run/mgrun/mgrun.sock; as mgrun --control)\n"
    "  --json          print mgrun's response (each event) as the JSON line "
    "it sent\n"
    "  --timeout MS    wait at most MS for the answer (default 10000; 0: "
    "for ever)\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 success (health: healthy); 1 mgrun answered with an "
    "error\n"
    "(health: unhealthy, or no answer); 2 usage error; 3 no answer: no "
    "socket,\n"
    "permission denied, nothing listening, a timeout, the connection "
    "closed, or\n"
    "a protocol mismatch.\n";

typedef struct ctl {
  const char *socket;
  char socket_buf[256];
  int as_json, samples, health;
  int64_t timeout_ms;
  int fd;
  char *buf; /* received, not yet a line */
  size_t len, cap;
} ctl;

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mgrun ctl: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'mgrun ctl --help' for more information.\n");
  return MG_CTL_USAGE;
}

/* No answer: the reason on stderr; health's status is 1. */
__attribute__((format(printf, 2, 3))) static int
noanswer(const ctl *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mgrun ctl: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return c->health ? MG_CTL_FAILED : MG_CTL_NOANSWER;
}

/* ------------------------------------------------------------ the wire */

static int ctl_connect(ctl *c) {
  struct sockaddr_un a;
  if (strlen(c->socket) >= sizeof a.sun_path)
    return noanswer(c, "the socket path '%s' is too long (at most %zu bytes)",
                    c->socket, sizeof a.sun_path - 1);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return noanswer(c, "socket: %s", strerror(errno));
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, c->socket, strlen(c->socket) + 1);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0)
    return 0;
  int e = errno;
  close(c->fd);
  c->fd = -1;
  switch (e) {
  case ENOENT:
    return noanswer(c,
                    "no control socket at %s (is mgrun running with "
                    "--control=%s?)",
                    c->socket, c->socket);
  case EACCES:
  case EPERM:
    return noanswer(c,
                    "permission denied on %s (the socket is mode 0600: run "
                    "as the user mgrun runs as, or as root)",
                    c->socket);
  case ECONNREFUSED:
    return noanswer(c,
                    "nothing listens on %s (a stale socket, or not a "
                    "socket: mgrun is not running)",
                    c->socket);
  default:
    return noanswer(c, "cannot connect to %s: %s", c->socket, strerror(e));
  }
}

/* 0; -1: mgrun closed the connection first (it may have said why: read
 * its line); else an exit status. */
static int send_all(ctl *c, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
      return -1;
    if (w < 0)
      return noanswer(c, "cannot send to %s: %s", c->socket, strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next line (without its newline) into *line (malloc'd): 0, or an
 * exit status with the reason printed; 1 at a clean end of the stream
 * (*line NULL). timeout_ms < 0: none. */
static int read_line(ctl *c, int64_t timeout_ms, char **line) {
  int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;
  *line = NULL;
  for (;;) {
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      *line = malloc(n + 1);
      if (!*line)
        return noanswer(c, "out of memory");
      memcpy(*line, c->buf, n);
      (*line)[n] = '\0';
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return 0;
    }
    if (c->len >= CTL_LINE_MAX)
      return noanswer(c,
                      "protocol mismatch: an answer of more than %u bytes "
                      "without a newline (not an mgrun control socket?)",
                      CTL_LINE_MAX);
    if (c->cap - c->len < 65536) {
      size_t cap = c->cap ? c->cap * 2 : 131072;
      char *b = realloc(c->buf, cap);
      if (!b)
        return noanswer(c, "out of memory");
      c->buf = b;
      c->cap = cap;
    }
    int wait = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0)
        return noanswer(c, "no answer from %s within %lld ms (--timeout)",
                        c->socket, (long long)timeout_ms);
      wait = left > 1000000 ? 1000000 : (int)left;
    }
    struct pollfd p = {c->fd, POLLIN, 0};
    int r = poll(&p, 1, wait);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return noanswer(c, "poll: %s", strerror(errno));
    if (r == 0)
      continue; /* the deadline is checked above */
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return noanswer(c, "cannot read from %s: %s", c->socket, strerror(errno));
    if (n == 0)
      return 1;
    c->len += (size_t)n;
  }
}

/* Parse one line of mgrun's; protocol errors are no answer. */
static int parse(ctl *c, const char *line, json_t **out) {
  json_error_t je;
  json_t *o = json_loads(line, 0, &je);
  if (!o || !json_is_object(o)) {
    json_decref(o);
    return noanswer(c,
                    "protocol mismatch: the answer is not a JSON object "
                    "(%s): is %s an mgrun control socket?",
                    o ? "another JSON value" : je.text, c->socket);
  }
  json_t *v = json_object_get(o, "v");
  if (!json_is_integer(v) || json_integer_value(v) != CTL_PROTOCOL) {
    int has = json_is_integer(v);
    long long got = has ? (long long)json_integer_value(v) : 0;
    json_decref(o);
    if (!has)
      return noanswer(c,
                      "protocol mismatch: the answer has no protocol "
                      "version \"v\" (is %s an mgrun control socket?)",
                      c->socket);
    return noanswer(c,
                    "protocol mismatch: mgrun speaks protocol %lld, this "
                    "mgrun ctl speaks %d (use the mgrun ctl of that mgrun)",
                    got, CTL_PROTOCOL);
  }
  *out = o;
  return 0;
}

/* Send `req` (consumed), read and parse the answer: 0 with *resp and *raw
 * (the line as it came), or an exit status. */
static int roundtrip(ctl *c, json_t *req, json_t **resp, char **raw) {
  json_object_set_new(req, "v", json_integer(CTL_PROTOCOL));
  json_object_set_new(req, "id", json_integer(1));
  char *t = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  if (!t)
    return noanswer(c, "out of memory");
  size_t n = strlen(t);
  int rc = ctl_connect(c);
  if (rc == 0)
    rc = send_all(c, t, n);
  if (rc == 0)
    rc = send_all(c, "\n", 1);
  free(t);
  if (rc > 0)
    return rc;
  /* also when mgrun closed first: a refusal (another uid, too many
   * connections) comes as one line before the close */
  rc = read_line(c, c->timeout_ms, raw);
  if (rc == 1)
    return noanswer(c, "%s closed the connection without an answer", c->socket);
  if (rc)
    return rc;
  return parse(c, *raw, resp);
}

/* ------------------------------------------------------------ commands */

static const char *str(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The stream after subscribe: until mgrun says shutdown (0), or the
 * connection ends (3). */
static int stream(ctl *c) {
  for (;;) {
    char *line;
    int rc = read_line(c, -1, &line);
    if (rc == 1)
      return noanswer(c, "%s closed the connection", c->socket);
    if (rc)
      return rc;
    json_t *o;
    if ((rc = parse(c, line, &o)) != 0) {
      free(line);
      return rc;
    }
    if (c->as_json) {
      printf("%s\n", line);
      fflush(stdout);
    } else {
      mg_ctl_print_event(o);
    }
    if (ferror(stdout)) { /* nobody reads any more */
      json_decref(o);
      free(line);
      return MG_CTL_FAILED;
    }
    int end = str(o, "event") && !strcmp(str(o, "event"), "shutdown");
    json_decref(o);
    free(line);
    if (end)
      return MG_CTL_OK;
  }
}

/* A policy command's arguments: KEY=VALUE / KEY:=JSON pairs make an
 * object, plain words an array; the two do not mix. */
static int policy_args(int n, char **v, json_t **out) {
  *out = NULL;
  if (n == 0)
    return 0;
  int pairs = 0;
  for (int i = 0; i < n; i++)
    pairs += strchr(v[i], '=') != NULL;
  if (pairs && pairs != n)
    return usage("a policy command takes KEY=VALUE arguments or plain "
                 "ones, not both (got '%s')",
                 v[0]);
  json_t *a = pairs ? json_object() : json_array();
  for (int i = 0; i < n; i++) {
    if (!pairs) {
      json_t *s = json_string(v[i]);
      if (!s) {
        json_decref(a);
        return usage("argument '%s' is not UTF-8 text", v[i]);
      }
      json_array_append_new(a, s);
      continue;
    }
    char *eq = strchr(v[i], '=');
    int as_json = eq > v[i] && eq[-1] == ':';
    size_t kl = (size_t)(eq - v[i]) - (as_json ? 1 : 0);
    if (kl == 0) {
      json_decref(a);
      return usage("argument '%s' has no KEY before its '='", v[i]);
    }
    json_t *val;
    if (as_json) {
      json_error_t je;
      val = json_loads(eq + 1, JSON_DECODE_ANY, &je);
      if (!val) {
        json_decref(a);
        return usage("argument '%s': the value after ':=' is not JSON (%s)",
                     v[i], je.text);
      }
    } else {
      val = json_string(eq + 1);
    }
    if (!val || json_object_setn_new(a, v[i], kl, val) < 0) {
      json_decref(a);
      return usage("argument '%s' is not UTF-8 text", v[i]);
    }
  }
  *out = a;
  return 0;
}

/* Milliseconds: a non-negative integer. */
static int parse_ms(const char *s, const char *what, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!s[0] || *end || errno || v < 0 || s[0] == '+' || s[0] == ' ')
    return usage("%s must be a number of milliseconds (0 or more), got '%s'",
                 what, s);
  *out = v;
  return 0;
}

/* Build the request for argv (the command and its arguments): 0, or an
 * exit status. *cmd gets the protocol's command name. */
static int build(ctl *c, int n, char **v, json_t **req, const char **cmd) {
  const char *verb = v[0];
  json_t *r = json_object();
  int rc = 0;
  int64_t ms = 0;
  *req = NULL;
#define NARGS(lo, hi, what)                                                    \
  do {                                                                         \
    if (n - 1 < (lo) || n - 1 > (hi)) {                                        \
      json_decref(r);                                                          \
      return usage("usage: mgrun ctl %s", what);                               \
    }                                                                          \
  } while (0)
  if (!strcmp(verb, "status") || !strcmp(verb, "reload") ||
      !strcmp(verb, "health") || !strcmp(verb, "hello")) {
    NARGS(0, 0, verb);
    *cmd = verb;
  } else if (!strcmp(verb, "set-limit")) {
    NARGS(2, 2, "set-limit NAME SIZE");
    *cmd = "set-limit";
    json_object_set_new(r, "name", json_string(v[1]));
    json_object_set_new(r, "size", json_string(v[2]));
  } else if (!strcmp(verb, "stop") || !strcmp(verb, "restart")) {
    NARGS(1, 2,
          !strcmp(verb, "stop") ? "stop NAME [GRACE_MS]"
                                : "restart NAME [GRACE_MS]");
    *cmd = verb;
    json_object_set_new(r, "name", json_string(v[1]));
    if (n == 3) {
      if ((rc = parse_ms(v[2], "GRACE_MS", &ms)) != 0) {
        json_decref(r);
        return rc;
      }
      json_object_set_new(r, "grace_ms", json_integer(ms));
    }
  } else if (!strcmp(verb, "stats") || !strcmp(verb, "store-stats")) {
    NARGS(1, 1, "stats STORE");
    *cmd = "store-stats";
    json_object_set_new(r, "store", json_string(v[1]));
  } else if (!strcmp(verb, "events") || !strcmp(verb, "subscribe")) {
    NARGS(0, 0, "events [--samples]");
    *cmd = "subscribe";
    if (c->samples)
      json_object_set_new(r, "samples", json_true());
  } else {
    json_t *args;
    if ((rc = policy_args(n - 1, v + 1, &args)) != 0) {
      json_decref(r);
      return rc;
    }
    *cmd = verb;
    if (args)
      json_object_set_new(r, "args", args);
  }
#undef NARGS
  if (c->samples && strcmp(*cmd, "subscribe")) {
    json_decref(r);
    return usage("%s", "--samples goes with events");
  }
  json_t *cmdv = json_string(*cmd);
  if (!cmdv) {
    json_decref(r);
    return usage("'%s' is not UTF-8 text", *cmd);
  }
  json_object_set_new(r, "cmd", cmdv);
  *req = r;
  return 0;
}

int mg_ctl_main(int argc, char **argv) {
  ctl c;
  memset(&c, 0, sizeof c);
  c.fd = -1;
  c.timeout_ms = CTL_TIMEOUT_MS;
  char **pos = calloc((size_t)argc + 1, sizeof *pos);
  int npos = 0, opts_done = 0, rc;
  if (!pos) {
    fprintf(stderr, "mgrun ctl: out of memory\n");
    return MG_CTL_NOANSWER;
  }
  /* Options anywhere before "--"; the rest is the command and its
   * arguments. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (opts_done || a[0] != '-' || !a[1]) {
      pos[npos++] = argv[i];
    } else if (!strcmp(a, "--")) {
      opts_done = 1;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(ctl_usage, stdout);
      free(pos);
      return MG_CTL_OK;
    } else if (!strcmp(a, "--json")) {
      c.as_json = 1;
    } else if (!strcmp(a, "--samples")) {
      c.samples = 1;
    } else if (!strcmp(a, "--socket") || !strncmp(a, "--socket=", 9) ||
               !strcmp(a, "--timeout") || !strncmp(a, "--timeout=", 10)) {
      int sock = a[2] == 's';
      const char *val = strchr(a, '=');
      if (val)
        val++;
      else if (i + 1 < argc)
        val = argv[++i];
      else {
        free(pos);
        return usage("option '%s' needs a value", a);
      }
      if (sock && !val[0]) {
        free(pos);
        return usage("%s", "--socket needs a path, got an empty one");
      }
      if (sock)
        c.socket = val;
      else if ((rc = parse_ms(val, "--timeout", &c.timeout_ms)) != 0) {
        free(pos);
        return rc;
      }
    } else {
      free(pos);
      return usage("unknown option '%s' (a policy command's arguments that "
                   "start with '-' go after --)",
                   a);
    }
  }
  if (npos == 0) {
    free(pos);
    return usage("%s", "no command given (status, set-limit, stop, restart, "
                       "stats, reload, events, health, hello, or a policy's)");
  }
  if (!c.socket) {
    if (mg_runtime_control_default(c.socket_buf, sizeof c.socket_buf) < 0) {
      free(pos);
      return usage("%s", "$XDG_RUNTIME_DIR is too long for a socket path: "
                         "give --socket PATH");
    }
    c.socket = c.socket_buf;
  }
  c.health = !strcmp(pos[0], "health");
  json_t *req, *resp = NULL;
  const char *cmd = "";
  char *raw = NULL;
  rc = build(&c, npos, pos, &req, &cmd);
  free(pos);
  if (rc)
    return rc;
  int is_events = !strcmp(cmd, "subscribe"); /* then no timeout */
  rc = roundtrip(&c, req, &resp, &raw);
  if (rc == 0) {
    int ok = json_is_true(json_object_get(resp, "ok"));
    if (c.as_json && (!is_events || !ok))
      printf("%s\n", raw);
    if (!ok) {
      const char *code = str(resp, "code");
      if (!c.as_json)
        fprintf(stderr, "mgrun ctl: %s (%s)\n",
                str(resp, "error") ? str(resp, "error") : "failed",
                code ? code : "?");
      rc = MG_CTL_FAILED;
    } else if (c.health) {
      int healthy = json_is_true(json_object_get(resp, "healthy"));
      if (!c.as_json)
        mg_ctl_print_answer("health", resp);
      rc = healthy ? MG_CTL_OK : MG_CTL_FAILED;
    } else if (is_events) {
      if (c.as_json)
        printf("%s\n", raw), fflush(stdout);
      rc = stream(&c);
    } else if (!c.as_json) {
      mg_ctl_print_answer(cmd, resp);
    }
  }
  json_decref(resp);
  free(raw);
  free(c.buf);
  if (c.fd >= 0)
    close(c.fd);
  if (fflush(stdout) != 0 && rc == 0)
    rc = MG_CTL_FAILED;
  return rc;
}
