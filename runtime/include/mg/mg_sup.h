/* mg_sup.h — the supervisor layer: run named children under memory limits
 * on a libuv loop, sample them, classify their deaths, restart them, shut
 * them down (supervisor layer: libuv + libmg, no Lua).
 *
 * Model. One mg_sup per loop. mg_child_spawn() starts a child whose limits
 * are in force before its program's first instruction: the child is forked
 * by the supervisor and, between fork and exec, joins its cgroup (writes
 * its pid to cgroup.procs), sets its rlimits, sets PR_SET_PDEATHSIG
 * (SIGKILL) and its own process group; only then does it exec the program.
 * Children are reaped on SIGCHLD (a uv_signal_t) with waitpid on their own
 * pids only — never waitpid(-1), so an embedding host's other children are
 * left alone.
 *
 * Lifetime. A mg_child lives across restarts. It is released by the owner
 * with mg_child_release(); the supervisor frees it after its last run has
 * been reaped and on_close has been called. All callbacks run on the loop
 * thread. mg_sup_shutdown() stops everything (SIGTERM to every child's
 * process group, grace, SIGKILL of the group and of the cgroup, reap,
 * remove the cgroups) and calls `done` when nothing is left; the loop then
 * has no active supervisor handles.
 *
 * Behaviour where the contract leaves room (supervisor layer's choices):
 *   - A run is a process tree. When its main process exits, what is left
 *     of its process group and cgroup is SIGKILLed before the reap (the
 *     zombie keeps the group id reserved), then the cgroup is removed.
 *     Stop/shutdown also SIGKILL the descendants found through
 *     <proc_root>/<pid>/task/<tid>/children while the main process lives, so
 *     grandchildren that left the group (setsid) die even without a
 *     cgroup.
 *   - The child starts with default signal dispositions, an empty signal
 *     mask, every descriptor above 2 close-on-exec, its own process group
 *     and PR_SET_PDEATHSIG=SIGKILL (tied to the spawning thread: spawn
 *     from the loop thread). stdin is inherited. rlimits are set with
 *     soft = hard = limit, so the program cannot raise them.
 *   - Environment: the inherited one, then opts env (it overrides; of two
 *     equal keys the last wins), then MG_RESTARTS and MG_CHILD_NAME (always
 *     the supervisor's).
 *   - argv[0] with a '/' is taken relative to cwd (the option, else ours);
 *     otherwise PATH is searched in the parent (opts env PATH, else ours,
 *     else /usr/local/bin:/usr/bin:/bin) and the absolute path is exec'd.
 *     stdout/stderr files are opened by the supervisor (relative to its
 *     working directory), O_APPEND|O_CREAT, mode 0644, for every run.
 *   - A failure between fork and exec (chdir, joining the cgroup, exec…)
 *     fails mg_child_spawn with the field named; on a restart it becomes
 *     an exit with code 127, pid 0, detail "restart failed: …", which
 *     counts as a run for the restart policy.
 *   - Failure (for on-failure) is any reason but `exit`, or a non-zero
 *     code. max_restarts counts restarts: 2 means at most 3 runs. The
 *     delay starts at backoff_ms, doubles after each restart up to
 *     backoff_max_ms, and goes back to backoff_ms after a run that lasted
 *     backoff_reset_ms (10 s by default).
 *   - `done` is always called from the loop, never inside
 *     mg_sup_shutdown(); on_close may run inside mg_child_stop() or
 *     mg_sup_shutdown() for a child that was waiting for a restart. The
 *     SIGCHLD handle keeps the loop alive only while some child runs.
 *   - Probing only what the mode needs, at the first spawn that needs it
 *     (mg_sup_new probes nothing). `auto` with a limit creates the child's
 *     own group with the limit; when that fails for want of permission or
 *     controller (EACCES, EPERM, EROFS, ENOENT, EBUSY, ENODEV, ENOTSUP)
 *     it falls back to data if RLIMIT_DATA is enforced, else as if
 *     RLIMIT_AS is, else none (watch only; logged at warn level). It logs
 *     enforce_chosen once per child, with the why; explicit modes never
 *     do. What a group attempt learnt is kept for later children. `auto`
 *     without a limit is none. Explicit data / as probe only that
 *     resource (mg_rlimit_probe_one: once per process), none probes
 *     nothing, cgroup needs its group. A child keeps its mode across
 *     restarts.
 *   - A released child gets no more events but is supervised as before
 *     (reaped, restarted per its policy) until it is closed.
 *   - mg_sup_opts.paths apply to everything the supervisor reads: cgroup
 *     detection, the effective memory (meminfo), and the children's
 *     status files, start times and process trees under proc_root (a
 *     fixture proc root hides real children from sampling and from the
 *     tree walk of a stop).
 *   - Log events: enforce_chosen, limit_warning, stale_cgroups_removed,
 *     stale_cgroups_remove_failed, child_started, child_exited,
 *     child_warn, child_restarting, restart_failed,
 *     restart_limit_reached, child_stopping, child_killed,
 *     leftovers_killed, limit_changed, cgroup_created, cgroup_removed,
 *     cgroup_remove_failed, child_closed, shutdown (only when some child
 *     is still running or waiting to restart), shutdown_done.
 *
 * The limit rule (mg_child_spawn, mg_child_validate, mg_child_set_limit),
 * applied once the mode is resolved: a limit is 1..2^63-1 bytes. One that
 * bounds memory (cgroup, data, none) must not exceed the effective memory
 * (mg_effective_memory under paths: MemTotal or this process's cgroup
 * limit); the message is the seed's ("limit: Memory limit validation
 * failed: Requested limit 100.00 TiB exceeds total system memory 23.42
 * GiB"); above 90 % it is valid with a warning, logged (limit_warning)
 * and kept (mg_child_limit_warning). An `as` limit bounds address space,
 * not RAM: it must be within this process's hard RLIMIT_AS, which the
 * child inherits.
 *
 * Errors. Every function returns 0 or a negative code, and err says what
 * was wrong (naming the field) and what is accepted:
 *   -EINVAL          a bad option value (range, unknown mode or policy,
 *                    missing name or cmd, limit 0 or missing with an
 *                    enforcing mode, empty cwd or output path, env entry
 *                    without a name, a name too long for its cgroup), a
 *                    bad cgroup_parent (not in the memory hierarchy) or
 *                    group_prefix, a NULL argument
 *   -ENOENT          program not found; cwd or cgroup_parent does not
 *                    exist
 *   -EACCES          program not executable; cwd or an output file's
 *                    directory not usable (other errno values of the
 *                    file system come through as they are)
 *   -EISDIR          the program or an output file is a directory
 *   -ENOTDIR         cwd or cgroup_parent is not a directory
 *   -EEXIST          a live child has that name
 *   -ECANCELED       the supervisor is shutting down
 *   -ESRCH           the child is not running (memory, signal)
 *   -ENOMEM          out of memory
 *   MG_ELIMIT        the limit is above the effective memory (or, for as,
 *                    above the hard RLIMIT_AS)
 *   MG_ENOTENFORCED  enforce data / as: that rlimit is not enforced here
 *   MG_ENOTSUP       enforce cgroup: no group can be made here (or a
 *                    cgroup_parent without a memory controller)
 *   a failure between fork and exec: the errno of that step (-ENOEXEC for
 *   a file that is no program, …); changing a running child's limit: the
 *   errno of prlimit or of the cgroup file (-EPERM, -EBUSY).
 */
#ifndef MG_SUP_H
#define MG_SUP_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "mg/mg.h"
#include "mg/mg_gpu.h"
#include "mg/mg_psi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_enforce {
  MG_ENFORCE_AUTO = 0, /* cgroup if writable, else data if enforced, else as */
  MG_ENFORCE_CGROUP, /* a cgroup of its own with memory.max / limit_in_bytes */
  MG_ENFORCE_DATA,   /* RLIMIT_DATA */
  MG_ENFORCE_AS,     /* RLIMIT_AS (opt-in: counts reservations) */
  MG_ENFORCE_NONE    /* watch only */
} mg_enforce;

typedef enum mg_restart {
  MG_RESTART_NO = 0,
  MG_RESTART_ON_FAILURE, /* non-zero exit, signal, oom, limit */
  MG_RESTART_ALWAYS
} mg_restart;

typedef enum mg_exit_reason {
  MG_EXIT_EXIT = 0, /* exited with a code */
  MG_EXIT_SIGNAL,   /* killed by a signal (not the OOM killer) */
  MG_EXIT_OOM,      /* killed by the OOM killer inside its own cgroup */
  MG_EXIT_LIMIT,    /* died of an allocation refused at its rlimit */
  MG_EXIT_GPU_LIMIT /* stopped: its GPU memory crossed its gpu_limit */
} mg_exit_reason;
/* oom: the main process died of SIGKILL and its group's oom_kill counter
 * (v2 memory.events, v1 memory.oom_control) grew during the run; on a v1
 * kernel without that counter, memory.failcnt growing stands in.
 * limit (enforce data / as only): the run ended abnormally (code != 0, or
 * SIGABRT, SIGSEGV, SIGBUS) and either its stdout/stderr file output of
 * that run (last 8 KiB) names an allocation failure ("Cannot allocate
 * memory", "bad_alloc", "MemoryError", "out of memory", …) or its highest
 * sampled usage (VmData / VmSize) reached MG_SUP_LIMIT_FRACTION of the
 * limit. The exit's detail says which rule fired. */

typedef enum mg_stdio {
  MG_STDIO_INHERIT = 0,
  MG_STDIO_NULL,
  MG_STDIO_FILE /* appended to, so restarts keep earlier output */
} mg_stdio;

/* Defaults of mg_child_opts_init. */
#define MG_SUP_WARN_AT 0.8
#define MG_SUP_SAMPLE_MS 1000
#define MG_SUP_GRACE_MS 5000
#define MG_SUP_BACKOFF_MS 100
#define MG_SUP_BACKOFF_MAX_MS                                                  \
  10000 /* raised to backoff_ms when that is more                              \
         */
#define MG_SUP_BACKOFF_RESET_MS 10000
/* What the options accept (mg__sup_validate refuses anything else). */
#define MG_SUP_SAMPLE_MS_MIN 10 /* smallest sample_ms other than 0 */
#define MG_SUP_SAMPLE_MS_MAX 86400000
#define MG_SUP_GRACE_MS_MAX 3600000
#define MG_SUP_BACKOFF_MS_MAX 3600000
#define MG_SUP_BACKOFF_CAP_MS_MAX 86400000 /* backoff_max_ms, _reset_ms */
#define MG_SUP_MAX_RESTARTS_MAX 1000000
/* Fixed numbers. */
#define MG_SUP_LIMIT_FRACTION 0.5 /* see MG_EXIT_LIMIT */
/* A death within this margin of the limit is `limit`, whatever the signal
 * or status: max(MG_SUP_LIMIT_MARGIN of the limit, 1 MiB). */
#define MG_SUP_LIMIT_MARGIN 0.02
#define MG_SUP_LIMIT_MARGIN_MIN (UINT64_C(1) << 20)
#define MG_SUP_TAIL_BYTES 4096 /* stderr kept per run */
/* A threshold re-arms this far below its level: max(2 % of the level,
 * 1 MiB). */
#define MG_SUP_THRESHOLD_HYSTERESIS 0.02
#define MG_SUP_THRESHOLD_HYSTERESIS_MIN (UINT64_C(1) << 20)
#define MG_SUP_THRESHOLDS_MAX 64 /* per child, with mg_child_watch's */
/* Sampling interval of watches without a kernel notification when the
 * child's sample_ms is 0. */
#define MG_SUP_WATCH_SAMPLE_MS 250

/* limit_bytes of a child without a limit (the default). */
#define MG_CHILD_NO_LIMIT UINT64_MAX
/* backoff_max_ms not given (the default): MG_SUP_BACKOFF_MAX_MS, or
 * backoff_ms when that is more. */
#define MG_CHILD_BACKOFF_MAX_DEFAULT INT64_MIN

/* "auto" "cgroup" "data" "as" "none"; parse: -EINVAL + err otherwise. */
MG_API const char *mg_enforce_name(mg_enforce e);
MG_API int mg_enforce_parse(const char *s, mg_enforce *out, char *err,
                            size_t len);
/* "no" "on-failure" "always". */
MG_API const char *mg_restart_name(mg_restart r);
MG_API int mg_restart_parse(const char *s, mg_restart *out, char *err,
                            size_t len);
/* "exit" "signal" "oom" "limit" "gpu_limit". */
MG_API const char *mg_exit_reason_name(mg_exit_reason r);

typedef struct mg_sup mg_sup;
typedef struct mg_child mg_child;

typedef struct mg_sup_opts {
  uv_loop_t *loop;           /* required, borrowed */
  mg_logger *logger;         /* borrowed; NULL: no log lines */
  mg_paths paths;            /* probe roots (tests) */
  const char *cgroup_parent; /* NULL: the cgroup this process runs in */
  const char *group_prefix;  /* NULL: "mgrun"; groups are
                                <prefix>-<pid>-<name> */
} mg_sup_opts;

/* Create the supervisor, cheaply: detect cgroups, check cgroup_parent
 * (it exists, is a directory and lies inside the memory hierarchy:
 * "cgroup_parent: '/nope' does not exist"), remove the stale groups
 * <prefix>-<deadpid>-* of dead earlier runs (logged at info level as
 * stale_cgroups_removed removed=N). No probe group, no probe child: each
 * mode probes what it needs at spawn. *out is owned by the caller:
 * mg_sup_free() after mg_sup_shutdown() has called `done` (or before any
 * child was spawned). */
MG_API int mg_sup_new(const mg_sup_opts *o, mg_sup **out, char *err,
                      size_t err_len);

/* What `auto` with a limit resolves to here, and why (a sentence for the
 * log; owned by sup). Runs the full probe the first time (a probe group
 * created and removed, the rlimit probes): for mgrun --check and tests. */
MG_API mg_enforce mg_sup_auto_enforce(mg_sup *sup, const char **why);

/* One memory sample of a child. `used_bytes` is what its limit counts:
 * cgroup current (cgroup), VmData (data), VmSize (as), VmRSS (none).
 * anon/file/shmem split the resident memory of the main process
 * (/proc/PID/status RssAnon, RssFile, RssShmem: rss is their sum); the
 * cgroup_ ones split what the group is charged (its memory.stat, see
 * mg_cgroup_memstat: the same three meanings, for the whole group, and
 * only the pages charged to it — a file already in the page cache when
 * the child mapped it is resident in `file` but charged to whoever read
 * it first). They are set with has_cgroup, 0 when memory.stat could not
 * be read. */
typedef struct mg_child_sample {
  pid_t pid;
  uint64_t rss_bytes, hwm_bytes, vsize_bytes, data_bytes, swap_bytes;
  int has_cgroup;
  uint64_t cgroup_current_bytes, cgroup_peak_bytes;
  uint64_t used_bytes;
  uint64_t limit_bytes; /* 0: none */
  double fraction;      /* used / limit (0 when no limit) */
  uint64_t anon_bytes, file_bytes, shmem_bytes; /* RssAnon/File/Shmem */
  uint64_t cgroup_anon_bytes, cgroup_file_bytes, cgroup_shmem_bytes;
  /* GPU memory of the run's process tree, summed over the devices it may
   * use (NVML; has_gpu 0 when there is no session or NVML failed) */
  int has_gpu;
  uint64_t gpu_bytes;
  uint64_t gpu_limit_bytes; /* 0: none */
} mg_child_sample;

typedef struct mg_child_exit {
  pid_t pid;
  int code;   /* exit code (reason exit / limit); -1 when signalled */
  int signal; /* signal number, 0 when it exited */
  mg_exit_reason reason;
  char detail[256];    /* why this reason: "oom_kill 0 -> 1 in <dir>", … */
  uint64_t peak_bytes; /* cgroup peak, else the highest sampled used */
  uint64_t runtime_ms;
  int restarts;     /* runs before this one */
  int will_restart; /* 1: a restart is scheduled */
  uint64_t restart_in_ms;
  uint64_t oom_kills; /* OOM kills inside the run's group (any process) */
  /* The last MG_SUP_TAIL_BYTES of the run's stderr (relayed through a
   * pipe for inherit and null, read back from the file for a file);
   * stderr_tail_len 0 when none. Not NUL-terminated. */
  size_t stderr_tail_len;
  char stderr_tail[4096];
} mg_child_exit;

/* A threshold on a child's memory: `bytes`, or (bytes 0) `fraction` of
 * its limit (0 < fraction <= 1; resolved again when the limit changes). */
typedef struct mg_threshold {
  uint64_t bytes;
  double fraction;
  int swap; /* 1: compare memory + swap (the group's memsw; needs a group
               and a kernel that accounts swap), 0: memory */
} mg_threshold;

/* One upward crossing of a threshold (thresholds fire on each upward
 * crossing and re-arm once the usage is MG_SUP_THRESHOLD_HYSTERESIS below
 * the level). */
typedef struct mg_threshold_event {
  int id;               /* 1..n: opts.thresholds[id-1]; else mg_child_watch's */
  uint64_t level_bytes; /* the level in bytes */
  double fraction;      /* level / limit (0 without a limit) */
  uint64_t usage_bytes; /* what was measured when it fired */
  int rising;           /* always 1 (downward crossings only re-arm) */
  int by_kernel;        /* 1: a kernel notification, 0: a sample */
  const char *kind;     /* "memory", "memsw" (memory + swap), "gpu" */
  int has_stat;         /* the group's memory.stat when it fired: */
  uint64_t anon_bytes, file_bytes, shmem_bytes;
} mg_threshold_event;

/* OOM kills inside the child's group (of the main process or of any
 * descendant) since the last event. */
typedef struct mg_oom_event {
  uint64_t count;   /* new kills */
  uint64_t total;   /* kills in this run so far */
  pid_t victim_pid; /* 0: not known (the kernel does not say) */
} mg_oom_event;

/* The child's group is under memory pressure (mg_child_pressure). */
typedef struct mg_pressure_event {
  const char *level; /* v1 memory.pressure_level: low, medium, critical;
                        NULL on v2 */
  int full;          /* v2 PSI trigger: 1 full, 0 some */
  uint64_t stall_us, window_us; /* v2: what is armed */
  int has_psi; /* v2: the group's memory.pressure when it fired */
  mg_psi psi;
} mg_pressure_event;

typedef struct mg_child_events {
  void (*on_sample)(mg_child *c, const mg_child_sample *s, void *ud);
  /* Fired once per upward crossing of warn_at; re-armed below it. */
  void (*on_warn)(mg_child *c, const mg_child_sample *s, void *ud);
  /* After every run (restarted or not). */
  void (*on_exit)(mg_child *c, const mg_child_exit *e, void *ud);
  /* Before each new run; `restarts` is the new MG_RESTARTS value. */
  void (*on_restart)(mg_child *c, int restarts, void *ud);
  /* Last: no further run; after it returns the child may be freed once
   * released. */
  void (*on_close)(mg_child *c, void *ud);
  void *ud;
  /* Added after ud (older initialisers stay valid): thresholds
   * (opts.thresholds and mg_child_watch), OOM kills in the group, the
   * group's pressure (mg_child_pressure). */
  void (*on_threshold)(mg_child *c, const mg_threshold_event *t, void *ud);
  void (*on_oom)(mg_child *c, const mg_oom_event *o, void *ud);
  void (*on_pressure)(mg_child *c, const mg_pressure_event *p, void *ud);
  /* A run has been exec'd (the first and every restart; pid known). */
  void (*on_start)(mg_child *c, void *ud);
  /* The supervisor signals the run: a kill or stop (`signum`, and the
   * grace before SIGKILL; 0: none), the SIGKILL at the end of a grace. */
  void (*on_kill)(mg_child *c, int signum, uint64_t grace_ms, void *ud);
  /* The run's GPU memory crossed its gpu_limit: return 1 to handle it
   * (nothing is stopped), 0 for the default (stop, exit gpu_limit). The
   * owner's only; observers see the stop as an on_kill. */
  int (*on_gpu_limit)(mg_child *c, const mg_child_sample *s, void *ud);
} mg_child_events;

/* Options of a child. Start from mg_child_opts_init(): it sets every
 * default, so that 0 means what the Lua API means (grace_ms 0: SIGKILL at
 * once, warn_at 0: no warn events, sample_ms 0: no sampling) and a limit
 * given as 0 is told from no limit. Every value is checked by
 * mg_child_spawn / mg_child_validate; the comment says what is accepted. */
typedef struct mg_child_opts {
  const char *name;     /* required: mg_name_check (1..64 of [A-Za-z0-9._-]) */
  char *const *argv;    /* required: argv[0] looked up in PATH */
  char *const *env;     /* extra "NAME=VALUE" added to the inherited env */
  const char *cwd;      /* NULL: inherited; else an existing directory */
  uint64_t limit_bytes; /* 1..2^63-1, see "The limit rule" above;
                           MG_CHILD_NO_LIMIT (default): none; 0 refused */
  mg_enforce enforce;   /* default auto */
  double warn_at;       /* fraction of the limit, 0..1; 0: no warn events
                           (default 0.8) */
  int64_t sample_ms;    /* 0: no sampling, else 10..86400000 (default 1000) */
  mg_restart restart;   /* default no */
  int64_t max_restarts; /* -1: unlimited (default), else 0..1000000 */
  int64_t backoff_ms;   /* first restart delay, 1..3600000 (default 100);
                           doubles after each restart */
  int64_t backoff_max_ms; /* cap of the doubling, backoff_ms..86400000
                             (default MG_CHILD_BACKOFF_MAX_DEFAULT) */
  mg_stdio stdout_mode, stderr_mode;     /* default inherit */
  const char *stdout_path, *stderr_path; /* with MG_STDIO_FILE: not empty */
  int64_t grace_ms;               /* SIGTERM → SIGKILL delay on stop/shutdown,
                                     0..3600000; 0: SIGKILL at once (default 5000) */
  int64_t backoff_reset_ms;       /* a run at least this long resets the backoff
                                     to backoff_ms, 1..86400000 (default 10000) */
  const mg_threshold *thresholds; /* copied; up to MG_SUP_THRESHOLDS_MAX */
  size_t nthresholds;
  int cgroup; /* a group of its own in every mode: -1 where one can be made
                 (default), 0 never (enforce cgroup needs one: refused),
                 1 required (MG_ENOTSUP where none can be made) */
  int sample_fallback; /* 1: sample (sample_ms) only while some watch has
                          no kernel notification (default 0: always) */
  int pressure_env;    /* 1: MEMORY_PRESSURE_WATCH / _WRITE for the child
                          (systemd's protocol; cgroup v2 groups only) */
  /* GPU memory (NVML, sampled at sample_ms, or every
   * MG_SUP_WATCH_SAMPLE_MS when that is 0): gpu_limit_bytes, or (0)
   * gpu_limit_fraction of the memory of the devices it may use; crossing
   * it stops the run (mg_child_kill TERM, grace_ms) and the exit is
   * gpu_limit, unless on_gpu_limit returns 1. gpus: the devices it may use
   * (CUDA_VISIBLE_DEVICES; NULL: all). gpu_mps: also
   * CUDA_MPS_PINNED_DEVICE_MEM_LIMIT for each of them. A GPU option on a
   * machine without NVML or a GPU: MG_ENOTSUP. */
  uint64_t gpu_limit_bytes;
  double gpu_limit_fraction;
  const unsigned *gpus;
  size_t ngpus;
  int gpu_mps;
} mg_child_opts;

/* Fill `o` with the defaults (see mg_child_opts); name and argv NULL. */
MG_API void mg_child_opts_init(mg_child_opts *o);

/* Validate `o` completely (name, argv, program found in PATH and
 * executable, cwd, every range, limit vs enforce, files) — nothing is
 * started when it fails; err names the field, quotes the value and says
 * what is accepted. Then start the first run. *out is owned by the caller
 * until mg_child_release(). Codes: see "Errors" above. */
MG_API int mg_child_spawn(mg_sup *sup, const mg_child_opts *o,
                          const mg_child_events *ev, mg_child **out, char *err,
                          size_t err_len);

/* Validation only (mgrun --check): everything mg_child_spawn checks, with
 * the probes a mode needs instead of the child's own group (`auto` runs
 * mg_sup_auto_enforce's). *enforce (may be NULL) gets the mode the child
 * would have. Creates and starts nothing. */
MG_API int mg_child_validate(mg_sup *sup, const mg_child_opts *o,
                             mg_enforce *enforce, char *err, size_t err_len);

MG_API const char *mg_child_name(const mg_child *c);
MG_API pid_t mg_child_pid(const mg_child *c); /* 0 when not running */
MG_API int
mg_child_restarts(const mg_child *c); /* MG_RESTARTS of the current run */
MG_API int mg_child_running(const mg_child *c);
MG_API int mg_child_closed(const mg_child *c); /* no further run will happen */
MG_API mg_enforce
mg_child_enforce(const mg_child *c); /* resolved, never AUTO */
MG_API uint64_t mg_child_limit(const mg_child *c);
MG_API double mg_child_warn_at(const mg_child *c); /* 0: no warn events */
MG_API const char *
mg_child_cgroup_dir(const mg_child *c); /* NULL unless cgroup */
/* The warning of the limit in force (above 90 % of the effective memory,
 * also logged as limit_warning), owned by the child; NULL when none. */
MG_API const char *mg_child_limit_warning(const mg_child *c);
/* The restart policy, max_restarts (-1: unlimited) and grace_ms the child
 * was spawned with. */
MG_API mg_restart mg_child_restart_policy(const mg_child *c);
MG_API int mg_child_max_restarts(const mg_child *c);
MG_API uint64_t mg_child_grace_ms(const mg_child *c);
/* 1 while the current run has been told to end (mg_child_stop, or
 * mg_child_kill with a grace) and has not ended yet. */
MG_API int mg_child_stopping(const mg_child *c);
/* Would the current run be restarted if it ended now, with a failure
 * (`failed`: a signal, a non-zero code, oom, limit) or a clean exit 0?
 * The rule the supervisor applies when a run ends: the restart policy,
 * max_restarts against the restarts so far, no stop asked for, no
 * shutdown. 0 for a child that is not running. */
MG_API int mg_child_would_restart(const mg_child *c, int failed);

/* Sample now (also when sampling is off). -ESRCH when not running. */
MG_API int mg_child_memory(mg_child *c, mg_child_sample *out, char *err,
                           size_t err_len);

/* Send `signum` to the child's process group (and to the child itself if
 * it left the group); SIGKILL kills the whole run: the process tree, the
 * group and the cgroup. -ESRCH when not running. */
MG_API int mg_child_signal(mg_child *c, int signum);

/* Stop for good (no restart): SIGTERM to the process group, SIGKILL of
 * the group and cgroup after grace_ms (0: the child's grace_ms). */
MG_API int mg_child_stop(mg_child *c, uint64_t grace_ms);

/* Change the limit of the running child (cgroup or prlimit) and of later
 * runs; the applied value is logged. Nothing changes when the running
 * child's limit cannot be changed (raising a hard rlimit needs
 * CAP_SYS_RESOURCE; a v1 cgroup refuses a limit below its usage). */
MG_API int mg_child_set_limit(mg_child *c, uint64_t bytes, char *err,
                              size_t err_len);

/* One more threshold at run time, armed now (if running) and for every
 * later run; *id gets its id (> the static ones) for the events and for
 * mg_child_unwatch. -EINVAL for a bad level, -ENOSPC beyond
 * MG_SUP_THRESHOLDS_MAX. */
MG_API int mg_child_watch(mg_child *c, const mg_threshold *t, int *id,
                          char *err, size_t err_len);
MG_API int mg_child_unwatch(mg_child *c, int id);

/* How each watch is served now (for --probe and tests): thresholds armed
 * as kernel notifications and sampled, and whether OOM kills are
 * notified. */
typedef struct mg_child_watching {
  int thresholds_kernel, thresholds_sampled;
  int oom_notified;
  int sampling_ms; /* the sample timer's interval; 0: not running */
} mg_child_watching;
MG_API void mg_child_watching_get(const mg_child *c, mg_child_watching *out);

/* Arm the group's pressure notification for this and later runs: v1
 * memory.pressure_level `level` ("low", "medium", "critical"; NULL:
 * "medium"); v2 a PSI trigger on the group's memory.pressure (full or
 * some, stall_us within window_us; refused windows fall back as
 * mg_psi_trigger_arm does). MG_ENOTSUP without a group. */
typedef struct mg_pressure_opts {
  const char *level;
  int full;
  uint64_t stall_us, window_us;
} mg_pressure_opts;
MG_API int mg_child_pressure(mg_child *c, const mg_pressure_opts *o, char *err,
                             size_t err_len);

/* Send `signum` to the whole run (tree, process group); after grace_ms,
 * SIGKILL of everything left (v2 cgroup.kill), with process_mrelease
 * where the kernel has it so the memory comes back at once. grace_ms 0 or
 * signum SIGKILL: at once. The restart policy applies (mg_child_stop is
 * for good). -ESRCH when not running. */
MG_API int mg_child_kill(mg_child *c, int signum, uint64_t grace_ms);

/* v2 memory.high = bytes (the kernel throttles and reclaims above it);
 * UINT64_MAX lifts it. cgroup v1 has no such knob: MG_ENOTSUP saying what
 * can be done instead. Applies to the running child only. */
MG_API int mg_child_throttle(mg_child *c, uint64_t bytes, char *err,
                             size_t err_len);

/* Freeze (1) or thaw (0) every process of the run: v2 cgroup.freeze; v1
 * the freezer hierarchy, where it is mounted. MG_ENOTSUP otherwise. */
MG_API int mg_child_freeze(mg_child *c, int frozen, char *err, size_t err_len);

/* The owner lets go: events are no longer delivered after this returns;
 * the child is freed when it is closed (a running child keeps running
 * until it exits or is stopped). */
MG_API void mg_child_release(mg_child *c);

/* The supervisor's NVML session (mg_gpu.h), opened at the first call
 * (and by the first spawn with a GPU option); a failure is kept and its
 * reason repeated. *out is the supervisor's (closed by mg_sup_free). */
MG_API int mg_sup_gpu(mg_sup *sup, struct mg_gpu **out, char *err,
                      size_t err_len);
/* The session if one is open already (opens nothing): 1 with *out, else
 * 0. For readers that must not load NVML themselves (metrics). */
MG_API int mg_sup_gpu_open(mg_sup *sup, struct mg_gpu **out);

/* Observers see every event of every child of the supervisor, after its
 * owner's handler, on the loop thread (metrics, a timeline, a control
 * socket's subscribers): the callbacks of `ev` that are set. Also
 * children spawned before, and released ones. Returns an id (> 0) for
 * mg_sup_unobserve, or -ENOSPC beyond MG_SUP_OBSERVERS_MAX. An observer
 * must not free the supervisor from a callback. */
#define MG_SUP_OBSERVERS_MAX 8
MG_API int mg_sup_observe(mg_sup *sup, const mg_child_events *ev);
MG_API void mg_sup_unobserve(mg_sup *sup, int id);

/* Children not yet closed, in spawn order (up to cap); returns the number
 * stored (out given) or the number of such children (out NULL). */
MG_API size_t mg_sup_children(mg_sup *sup, mg_child **out, size_t cap);

/* Stop every child as mg_child_stop does, then call done(sup, ud) once all
 * are reaped and their cgroups removed. Idempotent. */
MG_API int mg_sup_shutdown(mg_sup *sup, void (*done)(mg_sup *sup, void *ud),
                           void *ud);

/* Free after shutdown completed (or when nothing was ever spawned); also
 * frees the children never released. Called earlier, it kills and reaps
 * every running child synchronously, removes their cgroups, closes the
 * handles and frees the memory from the last close callback (run the loop
 * once more before uv_loop_close). */
MG_API void mg_sup_free(mg_sup *sup);

#ifdef __cplusplus
}
#endif
#endif
