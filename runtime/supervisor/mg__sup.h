/* mg__sup.h — internals of the supervisor layer shared by its files
 * (mg_sup.c: the supervisor, spawning, the lifetime of children, shutdown;
 * mg_sup_run.c: sampling, reaping, restarts, stop; mg_sup_validate.c:
 * validation of a spawn; mg_sup_exec.c: the fork/exec step;
 * mg_sup_classify.c: why a run ended).
 * Not installed; tests include it to reach mg__sup_classify.
 */
#ifndef MG__SUP_H
#define MG__SUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "mg/mg.h"
#include "mg/mg_gpu.h"
#include "mg/mg_sup.h"

/* A descriptor watched on the loop for one run (mg_sup_watch.c): a
 * kernel notification or the stderr relay. Freed by its close callback. */
enum {
  MG__W_THRESHOLD = 1, /* v1 eventfd on memory.usage_in_bytes */
  MG__W_OOM,           /* v1 eventfd on memory.oom_control */
  MG__W_EVENTS,        /* v2 memory.events, POLLPRI */
  MG__W_PRESSURE,      /* v1 pressure_level eventfd / v2 PSI trigger */
  MG__W_RELAY          /* the read end of the child's stderr pipe */
};
typedef struct mg__sup_watch {
  uv_poll_t poll; /* first: the close callback frees the whole struct */
  mg_child *c;
  struct mg__sup_watch *next;
  int fd;
  int kind;
  int th;    /* MG__W_THRESHOLD: index in c->th */
  int rearm; /* MG__W_THRESHOLD: the re-arm line below the level */
} mg__sup_watch;

/* A threshold of a child: id 0 is the warn line (warn_at), 1..n the
 * spawn's, then mg_child_watch's. */
typedef struct mg__sup_th {
  int id;
  int used; /* slot in use */
  mg_threshold t;
  uint64_t level; /* resolved for the run (0: cannot, no limit) */
  int armed;      /* below the level: the next upward crossing fires */
  int kernel;     /* served by a kernel notification this run */
  int want;       /* a v1 eventfd to register (th__register) */
  int pending;    /* its registration is under way in the thread pool */
} mg__sup_th;

struct mg_sup {
  uv_loop_t *loop;
  mg_logger *log;
  char *proc_root, *fs_root; /* owned copies behind `paths` */
  mg_paths paths;
  char prefix[32]; /* group name prefix, without the trailing '-' */
  char *parent;    /* owned copy of cgroup_parent, or NULL */
  pid_t self_pid;
  mg_cgroup_info cg; /* detection result (version NONE when unusable) */
  /* Learnt only when a mode needs it (nothing is probed at start): can a
   * limited child group be created (the probe of mg_sup_auto_enforce, or
   * a child's own group), and why (not). rlimit verdicts are cached by
   * mg_rlimit_probe_one. */
  int cg_known, cg_usable;
  char cg_reason[768];
  int moved_to_leaf;  /* v2: tried mg_cgroup_v2_move_to_leaf (once) */
  struct mg_gpu *gpu; /* NVML session (mg_sup_gpu); NULL until opened */
  int gpu_tried, gpu_rc;
  char gpu_reason[1024];
  int auto_known; /* mg_sup_auto_enforce has run its full probe */
  mg_enforce auto_enforce;
  char auto_why[1024];

  uv_signal_t sigchld; /* started lazily, at the first spawn */
  int sigchld_init;
  uv_timer_t finish; /* closed at the end of shutdown: defers `done` */
  int finish_init;
  size_t nhandles; /* handles initialised and not yet through uv_close */

  mg_child *head, *tail; /* every child not yet freed, spawn order */
  mg_child_events obs[MG_SUP_OBSERVERS_MAX]; /* mg_sup_observe; ud NULL and
                                                every callback NULL: free */
  int obs_used[MG_SUP_OBSERVERS_MAX];
  unsigned round; /* SIGCHLD scan generation */

  int shutting_down, finishing, done_called, free_requested;
  void (*done)(mg_sup *sup, void *ud);
  void *done_ud;
};

struct mg_child {
  mg_sup *sup;
  mg_child *prev, *next;

  /* Options, deep-copied at spawn. */
  char name[65];
  char **argv;
  char **env;
  char *path; /* argv[0] resolved (absolute) */
  char *cwd;
  char *stdout_path, *stderr_path;
  mg_stdio stdout_mode, stderr_mode;
  mg_enforce enforce; /* resolved: never AUTO */
  uint64_t limit_bytes;
  double warn_at;
  uint64_t sample_ms;
  mg_restart restart;
  int max_restarts;
  uint64_t backoff_ms, backoff_max_ms, backoff_reset_ms, grace_ms;
  char limit_warning[512]; /* of the limit in force; "" when none */
  mg_child_events ev;

  /* State. */
  pid_t pid;                /* of the current run; 0 when none */
  int restarts;             /* MG_RESTARTS of the current (or last) run */
  uint64_t backoff_next_ms; /* delay of the next restart */
  uint64_t start_ms;        /* uv_hrtime of the run's exec, in ms */
  int released, closed, stopping, term_sent, killed_by_us;
  /* The run's process tree as it was when it was told to stop (start
   * times guard against pid reuse): descendants that left its process
   * group (setsid, double forks) are reparented away the moment the main
   * process exits, so they are remembered here to be killed with it. */
  pid_t *stop_tree;
  uint64_t *stop_tree_start;
  size_t stop_tree_n;
  unsigned round;
  int handles_open;
  uv_timer_t sample_timer, backoff_timer, grace_timer, oom_timer;
  uv_timer_t arm_timer; /* once after a run's watches are armed: the
                           levels passed meanwhile (mg_sup_watch.c) */
  unsigned arm_gen;     /* bumped at each run's start and end: a threshold
                           registration of an earlier run is dropped */
  int cgroup_opt;       /* mg_child_opts.cgroup */
  int use_group;        /* every run gets a group (cgroup mode, or a watching
                           group without a limit in the other modes) */
  int sample_fallback, pressure_env;
  mg__sup_th th[MG_SUP_THRESHOLDS_MAX + 1]; /* [0]: warn */
  int next_watch_id;
  int has_pressure;
  char pressure_level[16];
  mg_pressure_opts pressure;
  int sampling_ms;          /* the sample timer's interval this run (0: off) */
  uint64_t gpu_limit_bytes; /* resolved (a fraction of its devices) */
  unsigned gpus[MG_GPU_MAX];
  size_t ngpus; /* 0: all devices */
  int gpu_watch, gpu_mps;
  int gpu_warn_armed, gpu_over, gpu_failed;
  unsigned char gpu_th_armed[MG_SUP_THRESHOLDS_MAX + 1]; /* "N%" thresholds
                                                            on gpu_limit */
  uint64_t gpu_peak_bytes; /* the figure that crossed gpu_limit */

  /* Per run. */
  mg_cgroup *cg;          /* the run's group (cgroup mode) */
  mg_cgroup *cg_leftover; /* a group whose removal failed: retried */
  int warn_armed;
  uint64_t max_used_bytes; /* highest sampled `used_bytes` of the run */
  uint64_t last_hwm_bytes;
  int64_t out_start, err_start; /* file sizes at run start (-1: none) */
  mg__sup_watch *watches;       /* this run's */
  int oom_notified;             /* an OOM watch is armed */
  uint64_t oom_seen;            /* oom_kills reported this run */
  int oom_tries;                /* re-reads left after an OOM notice */
  int relay_fd;                 /* the stderr pipe's read end, -1: none */
  int relay_echo;               /* copy it to our stderr (inherit) */
  uint64_t relay_dropped;       /* bytes our stuck stderr could not take */
  int relay_stuck;              /* it did not take them in time */
  int frozen;                   /* mg_child_freeze(c, 1) in force */
  char freezer_dir[PATH_MAX];   /* v1: the run's freezer group, "" none */
  char tail[MG_SUP_TAIL_BYTES]; /* ring of the last stderr bytes */
  size_t tail_len, tail_pos;
};

/* Deliver an event: to the owner (until released), then to every
 * observer. `cb` is the mg_child_events member. */
#define MG__SUP_EMIT(c, cb, ...)                                               \
  do {                                                                         \
    mg_child *c_ = (c);                                                        \
    if (!c_->released && c_->ev.cb)                                            \
      c_->ev.cb(c_, __VA_ARGS__, c_->ev.ud);                                   \
    for (int i_ = 0; i_ < MG_SUP_OBSERVERS_MAX; i_++)                          \
      if (c_->sup->obs_used[i_] && c_->sup->obs[i_].cb)                        \
        c_->sup->obs[i_].cb(c_, __VA_ARGS__, c_->sup->obs[i_].ud);             \
  } while (0)
#define MG__SUP_EMIT0(c, cb)                                                   \
  do {                                                                         \
    mg_child *c_ = (c);                                                        \
    if (!c_->released && c_->ev.cb)                                            \
      c_->ev.cb(c_, c_->ev.ud);                                                \
    for (int i_ = 0; i_ < MG_SUP_OBSERVERS_MAX; i_++)                          \
      if (c_->sup->obs_used[i_] && c_->sup->obs[i_].cb)                        \
        c_->sup->obs[i_].cb(c_, c_->sup->obs[i_].ud);                          \
  } while (0)

/* Everything mg__sup_classify needs to know about one finished run. */
typedef struct mg__sup_run {
  int status; /* from waitpid; ignored when reaped_elsewhere */
  int reaped_elsewhere;
  mg_enforce enforce; /* resolved */
  uint64_t limit_bytes;
  int has_cgroup;
  const char *cgroup_dir;
  mg_cgroup_version cgroup_version;
  int has_oom_kill;         /* the oom_kill counter exists */
  mg_cgroup_stats cg_start; /* at run start (a new group: all 0) */
  mg_cgroup_stats cg_end;   /* after the run (read before removal) */
  int cg_end_ok;            /* cg_end could be read */
  uint64_t max_used_bytes;  /* highest sample */
  uint64_t last_hwm_bytes;
  uint64_t maxrss_bytes; /* peak RSS from wait4 (0: unknown) */
  int killed_by_us;      /* the supervisor sent SIGKILL (grace) */
  int gpu_over;          /* stopped for crossing gpu_limit */
  uint64_t gpu_peak_bytes, gpu_limit_bytes;
  const char *output_marker; /* allocation-failure text found, or NULL */
  const char *own_limit;     /* a runtime's own heap-limit text, or NULL */
  const char *output_file;   /* where it was found */
} mg__sup_run;

/* mg_sup_run.c: the restart rule for a run of `c` that ends now (failed:
 * any reason but exit, or a non-zero code): policy, max_restarts, no stop,
 * no shutdown. */
int mg__sup_restart_wanted(const mg_child *c, int failed);

/* mg_sup.c: a handle of `c` finished closing (the accounting behind
 * handles_open; frees a released child after its last one). */
void mg__sup_handle_closed(mg_child *c);

/* mg_sup_watch.c: the run's watches — thresholds and warn (kernel
 * eventfds on v1, samples elsewhere), OOM kills, pressure; the sample
 * timer. start: after exec; stop: at the end of the run (closes every
 * watch but the relay's, see mg_sup_relay.c). */
void mg__sup_watch_start(mg_child *c);
void mg__sup_watch_stop(mg_child *c);
/* Copy the static thresholds of a spawn into c->th (validated). */
int mg__sup_th_init(mg_child *c, const mg_child_opts *o, char *err,
                    size_t err_len);
/* After the mode is resolved: every threshold can be served (memory +
 * swap ones need the child's group and swap accounting): MG_ENOTSUP. */
int mg__sup_th_check(mg_child *c, char *err, size_t err_len);
/* Read the group's OOM counter and report new kills (log, on_oom). */
void mg__sup_oom_check(mg_child *c);
/* mg_sup_events.c: the run's OOM and pressure watches (at its start). */
void mg__sup_events_start(mg_child *c);
/* Every threshold against a fresh reading (v2 memory.events changed). */
void mg__sup_th_recheck(mg_child *c);
/* Add a watch on fd for the run (takes the fd; closes it on failure). */
mg__sup_watch *mg__sup_watch_add(mg_child *c, int fd, int kind, int events,
                                 uv_poll_cb cb);
void mg__sup_watch_close(mg__sup_watch *w);
/* The limit changed: re-arm the thresholds given as fractions. */
void mg__sup_th_limit_changed(mg_child *c);

/* MG_ENOTSUP: "WHAT: process 'NAME' has no cgroup of its own …". */
int mg__sup_no_group(const mg_child *c, const char *what, char *err,
                     size_t err_len);

/* mg_sup_act.c: thaw a frozen run (signals reach it only then); at the
 * run's end, remove its v1 freezer group. */
void mg__sup_thaw(mg_child *c);
void mg__sup_act_run_end(mg_child *c);

/* mg_sup_gpu.c: a spawn's GPU options (validated, gpu_limit resolved
 * against its devices' memory); the GPU figure of a sample; the checks on
 * each sample (warn at warn_at × gpu_limit, the limit); the environment
 * (CUDA_VISIBLE_DEVICES, MPS) as NULL-terminated "K=V" strings in buf. */
int mg__sup_gpu_init(mg_child *c, const mg_child_opts *o, char *err,
                     size_t err_len);
void mg__sup_gpu_sample(mg_child *c, mg_child_sample *s);
void mg__sup_gpu_check(mg_child *c, const mg_child_sample *s);
size_t mg__sup_gpu_env(const mg_child *c, char *buf, size_t len,
                       const char **kv, size_t max);

/* mg_sup_relay.c: the stderr relay. prepare: before fork, a pipe for
 * inherit / null (*child_fd: the write end for the child's stderr, or -1);
 * started: after fork (the read end watched); drain: at the run's end,
 * read what is left, then close; tail: the run's last stderr bytes into
 * e (from the ring, or from the stderr file). */
int mg__sup_relay_prepare(mg_child *c, int *child_fd, char *err,
                          size_t err_len);
void mg__sup_relay_started(mg_child *c);
void mg__sup_relay_drain(mg_child *c);
void mg__sup_relay_tail(mg_child *c, mg_child_exit *e);

/* Fill e->code, signal, reason, detail and peak_bytes from `r`. */
void mg__sup_classify(const mg__sup_run *r, mg_child_exit *e);

/* The allocation-failure texts looked for in a run's output, lowercase;
 * and the texts of a runtime's own heap limit (V8, the JVM). */
const char *mg__sup_find_marker(const char *text, size_t len);
const char *mg__sup_find_own_limit(const char *text, size_t len);

/* "SIGKILL"-style name of a signal (mg_signal_name with the prefix), or
 * "signal" for a number without a name; written to buf, returned. */
const char *mg__sup_signame(int sig, char *buf, size_t len);

/* mg_sup_validate.c: check every option of a spawn that needs no probe
 * (nothing is started; *path gets argv[0] resolved, caller frees). */
int mg__sup_validate(mg_sup *sup, const mg_child_opts *o, char **path,
                     char *err, size_t err_len);
/* The mode `e` (possibly auto) of a child with or without a limit, as
 * mg_child_validate sees it: probes what the mode needs (auto: the full
 * probe of mg_sup_auto_enforce), creates nothing. */
int mg__sup_mode_check(mg_sup *sup, mg_enforce e, int has_limit,
                       mg_enforce *resolved, char *err, size_t err_len);
/* The mode of a new child before its first run: auto with a limit tries
 * the child's own group (c->cg) and falls back to RLIMIT_DATA, RLIMIT_AS,
 * none, saying why in `why` (left empty for every other mode); cgroup
 * makes the group; data and as probe their resource. Sets c->enforce. */
int mg__sup_resolve(mg_child *c, mg_enforce e, char *why, size_t why_len,
                    char *err, size_t err_len);
/* Start one run of `c` (fork, set up, exec). 0, or a negative code with a
 * message naming the field in err; nothing is left running on failure. */
int mg__sup_exec(mg_child *c, char *err, size_t err_len);

uint64_t mg__sup_now_ms(void);

/* mg_sup.c: no further run of `c` (close its handles, then on_close);
 * reference the SIGCHLD handle only while some child runs. */
void mg__sup_child_close(mg_child *c);
void mg__sup_update_ref(mg_sup *sup);

/* mg_sup_run.c: sample `c` now (-ESRCH when not running); a run has been
 * exec'd (reset its state, start sampling, log); SIGCHLD arrived; SIGKILL
 * the run's whole tree, process group and cgroup. */
int mg__sup_sample(mg_child *c, mg_child_sample *s, char *err, size_t err_len);
void mg__sup_run_started(mg_child *c);
void mg__sup_on_sigchld(uv_signal_t *h, int signum);
void mg__sup_kill_hard(mg_child *c);

/* A limit value on its own: 1..2^63-1 bytes (-EINVAL otherwise). */
int mg__sup_limit_value(uint64_t bytes, char *err, size_t err_len);
/* The limit rule for mode `e` (resolved), see mg_sup.h; a warning above
 * 90 % of the effective memory is logged (limit_warning, naming the child
 * `name`) and copied to warn (may be NULL). bytes 0: no limit, nothing to
 * check. */
int mg__sup_limit_rule(mg_sup *sup, const char *name, mg_enforce e,
                       uint64_t bytes, char *warn, size_t warn_len, char *err,
                       size_t err_len);

/* mg_sup_exec.c: make the run's group c->cg with c->limit_bytes (a
 * leftover of the previous run is removed first); 0, or a negative code
 * with the bare reason. */
int mg__sup_cgroup_make(mg_child *c, char *reason, size_t reason_len);
/* Kill what is left in the run's group, read nothing, remove it; a group
 * that cannot be removed is kept in c->cg_leftover for a later retry. */
void mg__sup_cgroup_drop(mg_child *c);

#endif
