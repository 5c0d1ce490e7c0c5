/* mg_sup_exec.c — the fork/exec step of each run (supervisor layer).
 *
 * Everything the child needs is prepared in the parent before fork: the
 * program's absolute path (resolved by validation), the environment, the
 * stdio files, the cgroup's cgroup.procs descriptor, the rlimit. Between
 * fork and exec the child makes only async-signal-safe system calls; a
 * failure there is reported as {step, errno} through a close-on-exec pipe
 * (end of file on it means exec succeeded) and the child leaves with
 * _exit(127). Validation is in mg_sup_validate.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>
#include <sched.h>

#include "mg__sup.h"

#define SUP__KILL_WAIT_MS 1000 /* mg_cgroup_kill_all's wait at run end */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* ----------------------------------------------------- the child's side */

enum {
  STEP_SETPGID = 1,
  STEP_PDEATHSIG,
  STEP_CGROUP,
  STEP_STDOUT,
  STEP_STDERR,
  STEP_CHDIR,
  STEP_RLIMIT,
  STEP_EXEC
};

typedef struct sup__report {
  int step;
  int err;
} sup__report;

typedef struct sup__prep {
  const char *path;
  char *const *argv;
  char *const *envp;
  const char *cwd;
  int fd_out, fd_err; /* -1: inherit */
  int fd_procs;       /* the group's cgroup.procs; -1: none */
  int rl_res;         /* RLIMIT_DATA / RLIMIT_AS; -1: none */
  struct rlimit rl;
  int err_w;
  pid_t parent;
} sup__prep;

static _Noreturn void sup__child_fail(const sup__prep *p, int step) {
  sup__report r = {step, errno};
  ssize_t n;
  do {
    n = write(p->err_w, &r, sizeof r);
  } while (n < 0 && errno == EINTR);
  _exit(127);
}

/* Runs in the child: async-signal-safe calls only, and no write to memory
 * but its own stack (it may share the parent's memory: sup__fork). Signals
 * are all blocked on entry (the parent blocked them around the fork). */
static _Noreturn void sup__child(const sup__prep *p) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      sigaction(s, &sa, NULL); /* EINVAL for libc-reserved ones: fine */
  if (setpgid(0, 0) < 0)
    sup__child_fail(p, STEP_SETPGID);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    sup__child_fail(p, STEP_PDEATHSIG);
  if (getppid() != p->parent)
    _exit(127); /* the supervisor died before PDEATHSIG was armed */
  if (p->fd_procs >= 0) {
    char buf[24], *e = buf + sizeof buf;
    unsigned long v = (unsigned long)getpid();
    do {
      *--e = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    ssize_t n;
    do {
      n = write(p->fd_procs, e, (size_t)(buf + sizeof buf - e));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
      sup__child_fail(p, STEP_CGROUP);
  }
  if (p->fd_out >= 0 && dup2(p->fd_out, 1) < 0)
    sup__child_fail(p, STEP_STDOUT);
  if (p->fd_err >= 0 && dup2(p->fd_err, 2) < 0)
    sup__child_fail(p, STEP_STDERR);
#ifdef SYS_close_range
  /* descriptors the embedding program opened without O_CLOEXEC */
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
  if (p->cwd && chdir(p->cwd) < 0)
    sup__child_fail(p, STEP_CHDIR);
  /* Last before exec: with RLIMIT_AS below the forked image's size even a
   * stack page fault would fail. */
  if (p->rl_res >= 0 && setrlimit(p->rl_res, &p->rl) < 0)
    sup__child_fail(p, STEP_RLIMIT);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(p->path, p->argv, p->envp);
  sup__child_fail(p, STEP_EXEC);
}

/* ---------------------------------------------------- the parent's side */

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SUP__SHARE_MEMORY 1
#define SUP__CHILD_STACK (64 * 1024)

static int sup__clone_main(void *arg) {
  sup__child(arg);
}
#endif

/* Start the child. As posix_spawn does, it shares the parent's memory
 * until it execs (clone with CLONE_VM | CLONE_VFORK: no page tables to
 * copy, no copy-on-write faults for the parent afterwards), on a stack of
 * its own, while the calling thread waits; it only makes system calls and
 * reads `p`, and signals stay blocked until it has reset every handler.
 * Sanitizer builds fork instead (their runtimes do not expect a second
 * process in the same memory). Returns the pid, or -1 with errno. */
static pid_t sup__fork(sup__prep *p) {
#ifdef SUP__SHARE_MEMORY
  char *stack = malloc(SUP__CHILD_STACK);
  if (stack) {
    pid_t pid = clone(sup__clone_main, stack + SUP__CHILD_STACK,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, p);
    int e = errno;
    free(stack); /* the child has exec'd or exited: CLONE_VFORK */
    errno = e;
    return pid;
  }
#endif
  pid_t pid = fork();
  if (pid == 0)
    sup__child(p);
  return pid;
}

/* Move `fd` above the standard descriptors (close-on-exec kept). */
static int sup__high_fd(int fd) {
  if (fd < 0 || fd > 2)
    return fd;
  int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  close(fd);
  errno = e;
  return hi;
}

static void sup__close(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* systemd's memory-pressure protocol: the trigger a child should arm on
 * MEMORY_PRESSURE_WATCH, base64 of "some 200000 2000000" (200 ms of
 * stall in a 2 s window, systemd's default). */
#define SUP__PRESSURE_WRITE "c29tZSAyMDAwMDAgMjAwMDAwMA=="

/* Is the key of `kv` (length kl) the key of one of ours? */
static int sup__ours(const char *kv, size_t kl, const char *const *ours,
                     size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strncmp(ours[i], kv, kl) == 0 && ours[i][kl] == '=')
      return 1;
  return 0;
}

/* Inherited environment less the keys we set, opts env, then ours —
 * MG_RESTARTS, MG_CHILD_NAME, with a v2 group `pressure_dir` for
 * pressure_env MEMORY_PRESSURE_WATCH / _WRITE, and the GPU variables
 * (CUDA_VISIBLE_DEVICES, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT): ours win. The
 * array and our strings are in one block the caller frees; the other
 * strings are borrowed. */
static char **sup__build_env(const mg_child *c, const char *pressure_dir) {
  size_t n_env = 0, n_extra = 0;
  while (environ && environ[n_env])
    n_env++;
  while (c->env && c->env[n_extra])
    n_extra++;
  char restarts[48], name[96], watch[PATH_MAX + 64], gpu[1024];
  const char *ours[8];
  size_t no = 0;
  snprintf(restarts, sizeof restarts, "MG_RESTARTS=%d", c->restarts);
  snprintf(name, sizeof name, "MG_CHILD_NAME=%s", c->name);
  ours[no++] = restarts;
  ours[no++] = name;
  if (pressure_dir) {
    snprintf(watch, sizeof watch, "MEMORY_PRESSURE_WATCH=%s/memory.pressure",
             pressure_dir);
    ours[no++] = watch;
    ours[no++] = "MEMORY_PRESSURE_WRITE=" SUP__PRESSURE_WRITE;
  }
  no += mg__sup_gpu_env(c, gpu, sizeof gpu, ours + no, 8 - no);
  size_t bytes = 0;
  for (size_t i = 0; i < no; i++)
    bytes += strlen(ours[i]) + 1;
  size_t slots = n_env + n_extra + no + 1;
  char **out = malloc(slots * sizeof *out + bytes);
  if (!out)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n_env; i++) {
    const char *kv = environ[i];
    size_t kl = strcspn(kv, "=");
    int keep = !sup__ours(kv, kl, ours, no);
    for (size_t j = 0; keep && j < n_extra; j++)
      keep = !(strncmp(c->env[j], kv, kl) == 0 && c->env[j][kl] == '=');
    if (keep)
      out[k++] = environ[i];
  }
  for (size_t j = 0; j < n_extra; j++) {
    const char *kv = c->env[j];
    size_t kl = strcspn(kv, "=");
    int keep = !sup__ours(kv, kl, ours, no);
    for (size_t l = j + 1; keep && l < n_extra; l++) /* last one wins */
      keep = !(strncmp(c->env[l], kv, kl) == 0 && c->env[l][kl] == '=');
    if (keep)
      out[k++] = c->env[j];
  }
  char *strs = (char *)(out + slots);
  for (size_t i = 0; i < no; i++) {
    size_t l = strlen(ours[i]) + 1;
    memcpy(strs, ours[i], l);
    out[k++] = strs;
    strs += l;
  }
  out[k] = NULL;
  return out;
}

/* Open the run's stdout/stderr target; *start gets the file's size (the
 * run's output begins there) or -1. */
static int sup__open_out(const char *field, mg_stdio mode, const char *path,
                         int *fd, int64_t *start, char *err, size_t err_len) {
  *fd = -1;
  *start = -1;
  if (mode == MG_STDIO_INHERIT)
    return 0;
  const char *target = mode == MG_STDIO_NULL ? "/dev/null" : path;
  /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
   * blocking the loop; cleared again below. */
  int flags = O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  if (mode == MG_STDIO_FILE)
    flags |= O_CREAT | O_APPEND;
  int f;
  do {
    f = open(target, flags, 0644);
  } while (f < 0 && errno == EINTR);
  f = sup__high_fd(f);
  if (f < 0)
    return mg_errf(err, err_len, -errno, "%s: cannot open '%s': %s", field,
                   target, strerror(errno));
  int fl = fcntl(f, F_GETFL);
  if (fl >= 0)
    fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
  struct stat st;
  if (mode == MG_STDIO_FILE && fstat(f, &st) == 0)
    *start = (int64_t)st.st_size;
  *fd = f;
  return 0;
}

int mg__sup_cgroup_make(mg_child *c, char *reason, size_t reason_len) {
  mg_sup *sup = c->sup;
  char name[160], e[PATH_MAX + 256];
  if (c->cg_leftover) {
    mg__sup_cgroup_drop(c);
    if (c->cg_leftover)
      return mg_errf(reason, reason_len, -EBUSY,
                     "the cgroup %s of the previous run cannot be removed",
                     mg_cgroup_dir(c->cg_leftover));
  }
  snprintf(name, sizeof name, "%s-%ld-%s", sup->prefix, (long)sup->self_pid,
           c->name);
  mg_cgroup *cg = NULL;
  int rc = mg_cgroup_create(&sup->cg, sup->parent, name, &cg, e, sizeof e);
  if (rc == -EEXIST) {
    /* A leftover of this process (a crashed earlier supervisor in it):
     * empty groups can simply go. */
    char dir[PATH_MAX + 200];
    snprintf(dir, sizeof dir, "%s/%s", sup->parent ? sup->parent : sup->cg.dir,
             name);
    if (rmdir(dir) == 0)
      rc = mg_cgroup_create(&sup->cg, sup->parent, name, &cg, e, sizeof e);
  }
  if (rc == -EBUSY && !sup->parent && !sup->moved_to_leaf &&
      sup->cg.version == MG_CGROUP_V2) {
    /* mgrun alone in a delegated group: into a leaf of it, then again */
    char leaf[PATH_MAX + 96], e2[PATH_MAX + 512];
    int lr = mg_cgroup_v2_move_to_leaf(&sup->cg, sup->prefix, leaf, sizeof leaf,
                                       e2, sizeof e2);
    mg_log_field lf[] = {
        MG_LF_STR("group", sup->cg.dir),
        MG_LF_STR(lr == 0 ? "leaf" : "error", lr == 0 ? leaf : e2)};
    mg_log(sup->log, lr == 0 ? MG_LOG_INFO : MG_LOG_WARN,
           lr == 0 ? "moved_to_leaf" : "move_to_leaf_failed", lf, 2);
    sup->moved_to_leaf = 1;
    if (lr == 0)
      rc = mg_cgroup_create(&sup->cg, sup->parent, name, &cg, e, sizeof e);
  }
  if (rc < 0)
    return mg_errf(reason, reason_len, rc, "%s", e);
  int swap_limited = 0;
  int limited =
      c->enforce == MG_ENFORCE_CGROUP || c->enforce == MG_ENFORCE_AUTO;
  if (limited)
    rc = mg_cgroup_set_limit(cg, c->limit_bytes, &swap_limited, e, sizeof e);
  if (rc < 0) {
    mg_cgroup_remove(cg, NULL, 0);
    mg_cgroup_free(cg);
    return mg_errf(reason, reason_len, rc, "%s", e);
  }
  char lim[32];
  mg_log_field lf[] = {
      MG_LF_STR("name", c->name),
      MG_LF_STR("dir", mg_cgroup_dir(cg)),
      MG_LF_UINT("limit_bytes", limited ? c->limit_bytes : 0),
      MG_LF_STR("limit", limited
                             ? mg_size_format(c->limit_bytes, lim, sizeof lim)
                             : "none (a group to watch)"),
      MG_LF_BOOL("swap_limited", swap_limited),
  };
  mg_log(sup->log, MG_LOG_DEBUG, "cgroup_created", lf, 5);
  c->cg = cg;
  return 0;
}

/* The run's group (made now for a restart; the first run's was made when
 * its mode was resolved) and its cgroup.procs, opened for the child. */
static int sup__cgroup_setup(mg_child *c, int *fd_procs, char *err,
                             size_t err_len) {
  char e[PATH_MAX + 256];
  *fd_procs = -1;
  int rc = c->cg ? 0 : mg__sup_cgroup_make(c, e, sizeof e);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "enforce: %s", e);
  char procs[PATH_MAX + 32];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", mg_cgroup_dir(c->cg));
  int f;
  do {
    f = open(procs, O_WRONLY | O_CLOEXEC);
  } while (f < 0 && errno == EINTR);
  f = sup__high_fd(f);
  if (f < 0)
    return mg_errf(err, err_len, -errno, "enforce: cannot open %s: %s", procs,
                   strerror(errno)); /* the caller drops the group */
  *fd_procs = f;
  return 0;
}

/* The message for a failure the child reported. */
static int sup__child_error(const mg_child *c, const sup__report *r, char *err,
                            size_t err_len) {
  int code = -r->err;
  const char *es = strerror(r->err);
  char lim[32];
  mg_size_format(c->limit_bytes, lim, sizeof lim);
  switch (r->step) {
  case STEP_SETPGID:
    return mg_errf(err, err_len, code, "cmd: setpgid in the child: %s", es);
  case STEP_PDEATHSIG:
    return mg_errf(err, err_len, code,
                   "cmd: prctl(PR_SET_PDEATHSIG) in the child: %s", es);
  case STEP_CGROUP:
    return mg_errf(err, err_len, code,
                   "enforce: the child could not join its cgroup %s: %s",
                   c->cg ? mg_cgroup_dir(c->cg) : "?", es);
  case STEP_STDOUT:
  case STEP_STDERR:
    return mg_errf(err, err_len, code, "%s: dup2 in the child: %s",
                   r->step == STEP_STDOUT ? "stdout" : "stderr", es);
  case STEP_CHDIR:
    return mg_errf(err, err_len, code, "cwd: cannot change to '%s': %s", c->cwd,
                   es);
  case STEP_RLIMIT:
    return mg_errf(err, err_len, code, "limit: setrlimit(%s, %s): %s",
                   c->enforce == MG_ENFORCE_AS ? "RLIMIT_AS" : "RLIMIT_DATA",
                   lim, es);
  default:
    if (r->err == ENOMEM &&
        (c->enforce == MG_ENFORCE_DATA || c->enforce == MG_ENFORCE_AS))
      return mg_errf(err, err_len, code,
                     "cmd: cannot execute '%s': %s (under %s %s: the limit "
                     "is too small to load the program)",
                     c->path, es,
                     c->enforce == MG_ENFORCE_AS ? "RLIMIT_AS" : "RLIMIT_DATA",
                     lim);
    return mg_errf(err, err_len, code, "cmd: cannot execute '%s': %s", c->path,
                   es);
  }
}

int mg__sup_exec(mg_child *c, char *err, size_t err_len) {
  sup__prep p = {c->path, c->argv, NULL,   c->cwd, -1,      -1,
                 -1,      -1,      {0, 0}, -1,     getpid()};
  int pfd[2] = {-1, -1}, rc;
  char **envp = sup__build_env(c, NULL);
  if (!envp)
    return mg_errf(err, err_len, -ENOMEM, "env: out of memory");
  p.envp = envp;
  rc = sup__open_out("stdout", c->stdout_mode, c->stdout_path, &p.fd_out,
                     &c->out_start, err, err_len);
  if (rc == 0)
    rc = mg__sup_relay_prepare(c, &p.fd_err, err, err_len);
  if (rc == 0 && p.fd_err < 0)
    rc = sup__open_out("stderr", c->stderr_mode, c->stderr_path, &p.fd_err,
                       &c->err_start, err, err_len);
  if (rc == 0 && c->use_group)
    rc = sup__cgroup_setup(c, &p.fd_procs, err, err_len);
  if (rc < 0)
    goto fail;
  if (c->pressure_env && c->cg &&
      mg_cgroup_get_version(c->cg) == MG_CGROUP_V2) {
    free(envp);
    envp = sup__build_env(c, mg_cgroup_dir(c->cg));
    if (!envp) {
      rc = mg_errf(err, err_len, -ENOMEM, "env: out of memory");
      goto fail;
    }
    p.envp = envp;
  }
  if (c->enforce == MG_ENFORCE_DATA || c->enforce == MG_ENFORCE_AS) {
    p.rl_res = c->enforce == MG_ENFORCE_DATA ? RLIMIT_DATA : RLIMIT_AS;
    p.rl.rlim_cur = p.rl.rlim_max = (rlim_t)c->limit_bytes;
  }
  if (pipe2(pfd, O_CLOEXEC) < 0 || (pfd[0] = sup__high_fd(pfd[0])) < 0 ||
      (pfd[1] = sup__high_fd(pfd[1])) < 0) {
    rc = mg_errf(err, err_len, -errno, "cmd: pipe: %s", strerror(errno));
    goto fail;
  }
  p.err_w = pfd[1];

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t pid = sup__fork(&p);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  sup__close(&pfd[1]);
  sup__close(&p.fd_out);
  sup__close(&p.fd_err);
  sup__close(&p.fd_procs);
  free(envp);
  envp = NULL;
  if (pid < 0) {
    rc = mg_errf(err, err_len, -fork_errno, "cmd: fork: %s",
                 strerror(fork_errno));
    goto fail;
  }
  sup__report r = {0, 0};
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = read(pfd[0], (char *)&r + got, sizeof r - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  sup__close(&pfd[0]);
  if (got == sizeof r) { /* the child failed before exec */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    rc = sup__child_error(c, &r, err, err_len);
    goto fail;
  }
  c->pid = pid;
  mg__sup_relay_started(c);
  return 0;

fail:
  mg__sup_relay_drain(c);
  sup__close(&pfd[0]);
  sup__close(&pfd[1]);
  sup__close(&p.fd_out);
  sup__close(&p.fd_err);
  sup__close(&p.fd_procs);
  free(envp);
  if (c->cg)
    mg__sup_cgroup_drop(c);
  return rc;
}

/* ------------------------------------------------------------ cgroups */

void mg__sup_cgroup_drop(mg_child *c) {
  mg_cgroup **slot = c->cg ? &c->cg : &c->cg_leftover;
  mg_cgroup *cg = *slot;
  if (!cg)
    return;
  char e[PATH_MAX + 256];
  mg_cgroup_kill_all(cg, SUP__KILL_WAIT_MS);
  int rc = mg_cgroup_remove(cg, e, sizeof e);
  mg_log_field f[] = {MG_LF_STR("name", c->name),
                      MG_LF_STR("dir", mg_cgroup_dir(cg)),
                      MG_LF_STR("error", e)};
  if (rc < 0) {
    mg_log(c->sup->log, MG_LOG_ERROR, "cgroup_remove_failed", f, 3);
    *slot = NULL;
    if (c->cg_leftover && c->cg_leftover != cg)
      mg_cgroup_free(c->cg_leftover);
    c->cg_leftover = cg;
    return;
  }
  mg_log(c->sup->log, MG_LOG_DEBUG, "cgroup_removed", f, 2);
  *slot = NULL;
  mg_cgroup_free(cg);
}
