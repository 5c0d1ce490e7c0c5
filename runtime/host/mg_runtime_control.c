/* mg_runtime_control.c — the control socket (host layer; libuv uv_pipe_t,
 * jansson): a unix socket that `mgrun ctl` and scripts talk JSON lines
 * to, one request → one response (mg_runtime_control_cmd.c), or, after
 * `subscribe`, a stream of events (mg_runtime_control_ev.c).
 *
 * The socket. The path is absolute (a relative one is taken from the
 * working directory) and fits sun_path. An existing socket file that
 * something answers on refuses the start ("another mgrun listens on
 * PATH"); one nothing answers on is stale and removed; any other file is
 * left alone and refuses the start. The default path's directory is made
 * 0700 (an existing one must be ours and writable by us alone). The
 * socket is chmod'ed 0600 after bind and before listen (so no connection
 * can be made before: the umask is process-wide and left alone), and
 * removed at stop if it is still the one we bound.
 *
 * Connections. Each is checked with SO_PEERCRED: the same uid as mgrun,
 * or root; another gets one error line and is closed. At most
 * MG__CTL_CONN_MAX at once. Lines are framed by mg__ctl_framer (at most
 * MG__CTL_LINE_MAX bytes); an oversized line gets an error and is
 * skipped; MG__CTL_BAD_MAX malformed requests in a row, or more than
 * MG__CTL_DISCARD_MAX bytes of one oversized line, close the connection.
 * Back-pressure: while more than MG__CTL_WRITE_MAX bytes of responses
 * wait to be read by the client, it is not read and its buffered
 * requests wait. A subscriber's further input is read and ignored; its
 * queue is bounded (MG__CTL_SUB_MAX: events beyond are dropped and a
 * "dropped" event says how many), and one that reads nothing for
 * MG__CTL_SUB_STUCK_MS with a full queue is disconnected. Every handle is
 * unref'd: the socket never keeps mgrun running on its own.
 *
 * SIGPIPE must be ignored (or blocked) in the process: libuv's writes to a
 * client that went away would raise it. mgrun's main ignores it; another
 * host is refused the socket until it does.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mg__control.h"

/* ------------------------------------------------------------ accepting */

static void on_connection(uv_stream_t *server, int status) {
  struct mg__rt_control *ctl = server->data;
  if (status < 0 || ctl->stopped)
    return;
  mg__ctl_conn *conn = mg__ctl_conn_accept(ctl, server);
  if (!conn)
    return;
  uid_t me = geteuid();
  mg_logger *lg = ctl->rt->opts.logger;
  int uid = conn->uid == (uid_t)-1 ? -1 : (int)conn->uid;
  if (conn->uid != me && conn->uid != 0) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "permission denied: this control socket serves uid %u (mgrun's) "
             "and root, not uid %d",
             (unsigned)me, uid);
    mg_log_field f[] = {MG_LF_INT("uid", uid), MG_LF_INT("pid", conn->pid)};
    mg_log(lg, MG_LOG_WARN, "control_refused", f, 2);
    mg__ctl_conn_refuse(conn, "EACCES", msg);
    return;
  }
  if (ctl->nconns > MG__CTL_CONN_MAX) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "too many connections: at most %d at once; try again later",
             MG__CTL_CONN_MAX);
    mg__ctl_conn_refuse(conn, "EBUSY", msg);
    return;
  }
  mg_log_field f[] = {MG_LF_UINT("conn", conn->id), MG_LF_INT("uid", uid),
                      MG_LF_INT("pid", conn->pid)};
  mg_log(lg, MG_LOG_DEBUG, "control_connection", f, 3);
  mg__ctl_conn_start(conn);
}

/* ------------------------------------------------------------ the path */

int mg_runtime_control_default(char *buf, size_t len) {
  const char *x = getenv("XDG_RUNTIME_DIR");
  int n = x && x[0] == '/' ? snprintf(buf, len, "%s/mgrun/mgrun.sock", x)
                           : snprintf(buf, len, "%s", "/run/mgrun/mgrun.sock");
  return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* The default path's directory: made 0700, or an existing one that is
 * ours alone. */
static int default_dir(const char *path, char *err, size_t err_len) {
  char dir[sizeof((struct sockaddr_un *)0)->sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir)
    return 0;
  *slash = '\0';
  if (mkdir(dir, 0700) == 0)
    return 0;
  if (errno != EEXIST)
    return mg_errf(err, err_len, -errno,
                   "control: cannot create the directory '%s' of the default "
                   "socket: %s (give --control=PATH in a directory of yours)",
                   dir, strerror(errno));
  struct stat st;
  if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 022))
    return mg_errf(err, err_len, -EACCES,
                   "control: '%s' is not a directory of uid %u that only it "
                   "may write to (the default socket's directory is made "
                   "0700); give --control=PATH",
                   dir, (unsigned)geteuid());
  return 0;
}

/* An existing file at the path: a live socket refuses the start, a stale
 * one goes, anything else stays and refuses the start. */
static int clear_path(struct mg__rt_control *ctl, char *err, size_t err_len) {
  const char *path = ctl->path;
  struct stat st;
  if (lstat(path, &st) < 0) {
    if (errno == ENOENT)
      return 0;
    return mg_errf(err, err_len, -errno, "control: cannot use '%s': %s", path,
                   strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode))
    return mg_errf(err, err_len, -EEXIST,
                   "control: '%s' exists and is not a socket (left alone; "
                   "give --control another path)",
                   path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return mg_errf(err, err_len, -errno, "control: socket: %s",
                   strerror(errno));
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path, strlen(path) + 1);
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
    return mg_errf(err, err_len, -EBUSY, /* a runtime failure, not usage */
                   "control: another mgrun listens on %s (two instances need "
                   "two paths: --control=PATH)",
                   path);
  if (e != ECONNREFUSED)
    return mg_errf(err, err_len, -e,
                   "control: cannot tell whether %s is in use: %s", path,
                   strerror(e));
  if (unlink(path) < 0 && errno != ENOENT)
    return mg_errf(err, err_len, -errno,
                   "control: cannot remove the stale socket %s: %s", path,
                   strerror(errno));
  mg_log_field f[] = {MG_LF_STR("path", path)};
  mg_log(ctl->rt->opts.logger, MG_LOG_INFO, "control_stale_socket_removed", f,
         1);
  return 0;
}

/* ------------------------------------------------------------ start/stop */

static void listener_closed(uv_handle_t *h) {
  struct mg__rt_control *ctl = h->data;
  free(h);
  ctl->handles--;
  mg__ctl_maybe_free(ctl);
}

static void ctl_shut(struct mg__rt_control *ctl) {
  mg__ctl_unobserve(ctl);
  mg__ctl_conns_close(ctl);
  ctl->stopped = 1;
  if (ctl->listener) {
    uv_close((uv_handle_t *)ctl->listener, listener_closed);
    ctl->listener = NULL;
  }
  struct stat st;
  if (ctl->bound && lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
      st.st_ino == ctl->ino)
    unlink(ctl->path);
  ctl->bound = 0;
  mg__ctl_maybe_free(ctl);
}

/* A client that goes away while we write to it raises SIGPIPE (libuv
 * writes without MSG_NOSIGNAL): its default action would end the host.
 * The disposition is the process's (mgrun's main ignores it): we only
 * look. */
static int sigpipe_safe(void) {
  struct sigaction sa;
  sigset_t cur;
  if (pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 &&
      sigismember(&cur, SIGPIPE) == 1)
    return 1;
  return sigaction(SIGPIPE, NULL, &sa) == 0 &&
         ((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL);
}

int mg__rt_control_start(mg_runtime *rt, char *err, size_t err_len) {
  const char *given = rt->opts.control_path;
  if (!given)
    return 0;
  if (!sigpipe_safe())
    return mg_errf(err, err_len, -EINVAL,
                   "control: SIGPIPE has its default action in this process, "
                   "so a client that disconnects would end it: ignore SIGPIPE "
                   "(signal(SIGPIPE, SIG_IGN)) before asking for the control "
                   "socket, as mgrun does");
  char path[PATH_MAX];
  int rc;
  if (!given[0]) {
    if (mg_runtime_control_default(path, sizeof path) < 0)
      return mg_errf(err, err_len, -ENAMETOOLONG,
                     "control: $XDG_RUNTIME_DIR is too long for a socket path; "
                     "give --control=PATH");
  } else if (given[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
      return mg_errf(err, err_len, -errno,
                     "control: cannot resolve '%s': getcwd: %s", given,
                     strerror(errno));
    snprintf(path, sizeof path, "%s/%s", cwd, given);
  } else {
    snprintf(path, sizeof path, "%s", given);
  }
  struct mg__rt_control *ctl = calloc(1, sizeof *ctl);
  if (!ctl)
    return mg_errf(err, err_len, -ENOMEM, "control: out of memory");
  if (strlen(path) >= sizeof ctl->path) {
    free(ctl);
    return mg_errf(err, err_len, -ENAMETOOLONG,
                   "control: the socket path '%s' is %zu bytes; a unix socket "
                   "path holds at most %zu",
                   path, strlen(path), sizeof ctl->path - 1);
  }
  snprintf(ctl->path, sizeof ctl->path, "%s", path);
  ctl->rt = rt;
  ctl->t0_ns = uv_hrtime();
  ctl->wall0 = time(NULL);
  if ((!given[0] && (rc = default_dir(ctl->path, err, err_len)) < 0) ||
      (rc = clear_path(ctl, err, err_len)) < 0) {
    free(ctl);
    return rc;
  }
  ctl->listener = malloc(sizeof *ctl->listener);
  if (!ctl->listener) {
    free(ctl);
    return mg_errf(err, err_len, -ENOMEM, "control: out of memory");
  }
  uv_pipe_init(rt->loop, ctl->listener, 0);
  ctl->listener->data = ctl;
  ctl->handles++;
  uv_unref((uv_handle_t *)ctl->listener);
  rc = uv_pipe_bind(ctl->listener, ctl->path);
  if (rc == UV_EADDRINUSE) {
    mg_errf(err, err_len, -EBUSY,
            "control: another mgrun listens on %s (two instances need two "
            "paths: --control=PATH)",
            ctl->path);
    goto fail;
  }
  if (rc < 0) {
    /* libuv reports a missing directory as EACCES (as Windows would) */
    char dir[sizeof ctl->path];
    struct stat ds;
    snprintf(dir, sizeof dir, "%s", ctl->path);
    *strrchr(dir, '/') = '\0';
    if (stat(dir[0] ? dir : "/", &ds) < 0 && errno == ENOENT) {
      rc = -ENOENT;
      mg_errf(err, err_len, rc,
              "control: cannot bind %s: its directory %s does not exist (it "
              "must)",
              ctl->path, dir);
    } else {
      mg_errf(err, err_len, rc, "control: cannot bind %s: %s", ctl->path,
              uv_strerror(rc));
    }
    goto fail;
  }
  struct stat st;
  if (chmod(ctl->path, 0600) < 0 || lstat(ctl->path, &st) < 0) {
    rc = -errno;
    mg_errf(err, err_len, rc, "control: cannot make %s mode 0600: %s",
            ctl->path, strerror(errno));
    unlink(ctl->path);
    goto fail;
  }
  ctl->dev = st.st_dev;
  ctl->ino = st.st_ino;
  ctl->bound = 1;
  rc = uv_listen((uv_stream_t *)ctl->listener, 16, on_connection);
  if (rc < 0) {
    mg_errf(err, err_len, rc, "control: cannot listen on %s: %s", ctl->path,
            uv_strerror(rc));
    goto fail;
  }
  if ((rc = mg__ctl_observe(ctl)) < 0) {
    mg_errf(err, err_len, rc,
            "control: the supervisor has no room for an observer");
    goto fail;
  }
  rt->control = ctl;
  mg_log_field f[] = {MG_LF_STR("path", ctl->path)};
  mg_log(rt->opts.logger, MG_LOG_INFO, "control_listening", f, 1);
  return 0;
fail:
  ctl_shut(ctl);
  return rc;
}

void mg__rt_control_stop(mg_runtime *rt) {
  struct mg__rt_control *ctl = rt->control;
  if (!ctl)
    return;
  rt->control = NULL;
  ctl_shut(ctl);
}
