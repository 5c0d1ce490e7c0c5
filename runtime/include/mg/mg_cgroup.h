/* mg_cgroup.h — cgroup v1 and v2 memory controller: detection, the
 * effective limit of this process, writability, and child groups
 * (core layer). Detection is implemented in mg_cgroup_detect.c, child
 * groups in mg_cgroup.c, the breakdown of a group's charge (memory.stat)
 * in mg_cgroup_stat.c.
 */
#ifndef MG_CGROUP_H
#define MG_CGROUP_H

#include "mg/mg_api.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mg/mg_paths.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_cgroup_version {
  MG_CGROUP_NONE = 0, /* no memory controller mounted */
  MG_CGROUP_V1 = 1,
  MG_CGROUP_V2 = 2
} mg_cgroup_version;

/* Where this process sits in the memory hierarchy. Plain data. */
typedef struct mg_cgroup_info {
  mg_cgroup_version version; /* of the memory controller */
  int v2_mounted;            /* a cgroup2 hierarchy is mounted (also hybrid) */
  char mount[PATH_MAX];      /* mount point of the memory hierarchy */
  char path[PATH_MAX];       /* this process's cgroup, from /proc/self/cgroup */
  char dir[PATH_MAX];        /* absolute directory of that cgroup */
  int has_limit;             /* a finite limit is set here or above */
  uint64_t limit_bytes;      /* the tightest such limit */
  char limit_dir[PATH_MAX];  /* the cgroup directory that sets it */
} mg_cgroup_info;

/* "none" / "v1" / "v2". */
MG_API const char *mg_cgroup_version_name(mg_cgroup_version v);

/* Detect from <proc_root>/self/mountinfo and <proc_root>/self/cgroup, then
 * walk from this cgroup up to the hierarchy root reading
 * memory.limit_in_bytes (v1) or memory.max (v2); "max" and v1's
 * "unlimited" value (>= 2^62) mean no limit. No memory controller is not
 * an error: version = MG_CGROUP_NONE. Malformed files are MG_EPARSE with
 * the file named in err. */
MG_API int mg_cgroup_detect(const mg_paths *paths, mg_cgroup_info *out,
                            char *err, size_t err_len);

/* Group names follow mg_name_check (1..64 bytes of [A-Za-z0-9._-], not
 * "." or "..", so never a "/"). -EINVAL with err ("cgroup name: …")
 * quoting the name and saying what is accepted. */
MG_API int mg_cgroup_validate_name(const char *name, char *err, size_t err_len);

/* Check `dir` as the parent of child groups: it exists (-ENOENT), is a
 * directory (-ENOTDIR) and lies inside the memory hierarchy of `info`
 * (-EINVAL; MG_ENOTSUP when no memory controller is mounted). err starts
 * with `what` (NULL: "cgroup parent") and quotes the path:
 * "cgroup_parent: '/nope' does not exist". */
MG_API int mg_cgroup_check_parent(const mg_cgroup_info *info, const char *what,
                                  const char *dir, char *err, size_t err_len);

/* Can a child group with a memory limit be created under `parent_dir`
 * (NULL → info->dir)? Tries it for real: mkdir "mgrun-probe-<pid>",
 * write a limit, rmdir. Returns 1 writable, 0 not (reason says why), or a
 * negative code. */
MG_API int mg_cgroup_probe_writable(const mg_cgroup_info *info,
                                    const char *parent_dir, char *reason,
                                    size_t reason_len);

/* A child group created by libmg. Opaque. */
typedef struct mg_cgroup mg_cgroup;

/* Counters of a group, in bytes and events. Fields the version lacks are
 * 0 with the matching has_ flag 0. */
typedef struct mg_cgroup_stats {
  uint64_t current_bytes; /* memory.current / memory.usage_in_bytes */
  uint64_t peak_bytes;    /* memory.peak / memory.max_usage_in_bytes */
  int has_peak;
  uint64_t limit_bytes; /* memory.max / memory.limit_in_bytes */
  uint64_t oom_kills;   /* memory.events oom_kill / oom_control oom_kill */
  int has_oom_kill;     /* the kernel reports that counter (Linux >= 4.13;
                           without it, oom_events is the only trace) */
  uint64_t oom_events;  /* memory.events oom / memory.failcnt (v1) */
  uint64_t max_events;  /* memory.events max (v2) */
  uint64_t high_events; /* memory.events high (v2) */
} mg_cgroup_stats;

/* Create `<parent_dir or info->dir>/<name>` (name validated). On success
 * *out owns the handle; free it with mg_cgroup_free (which does not remove
 * the directory). An existing directory is -EEXIST. */
MG_API int mg_cgroup_create(const mg_cgroup_info *info, const char *parent_dir,
                            const char *name, mg_cgroup **out, char *err,
                            size_t err_len);

/* A handle on the existing group directory `dir` of `version` (one libmg
 * did not create: a fixture, a group made by someone else); -ENOENT or
 * -ENOTDIR otherwise. *out is the caller's: mg_cgroup_free. */
MG_API int mg_cgroup_open(mg_cgroup_version version, const char *dir,
                          mg_cgroup **out, char *err, size_t err_len);

/* The group's directory (owned by the handle). */
MG_API const char *mg_cgroup_dir(const mg_cgroup *cg);
MG_API mg_cgroup_version mg_cgroup_get_version(const mg_cgroup *cg);

/* Set the hard memory limit; swap is set to 0 where the kernel allows
 * (v1 memory.memsw.limit_in_bytes, v2 memory.swap.max) so the limit is
 * real. `swap_limited` (may be NULL) reports whether that worked. */
MG_API int mg_cgroup_set_limit(mg_cgroup *cg, uint64_t bytes, int *swap_limited,
                               char *err, size_t err_len);

/* v2 memory.high (throttling tripwire); -ENOTSUP on v1. */
MG_API int mg_cgroup_set_high(mg_cgroup *cg, uint64_t bytes, char *err,
                              size_t err_len);

/* Move `pid` into the group (cgroup.procs). */
MG_API int mg_cgroup_add_pid(mg_cgroup *cg, pid_t pid, char *err,
                             size_t err_len);

MG_API int mg_cgroup_stats_read(mg_cgroup *cg, mg_cgroup_stats *out, char *err,
                                size_t err_len);

/* Only the usage and its peak (two files; what sampling needs, without
 * the limit and event counters of mg_cgroup_stats_read). peak_bytes and
 * has_peak may be NULL. */
MG_API int mg_cgroup_usage_read(mg_cgroup *cg, uint64_t *current_bytes,
                                uint64_t *peak_bytes, int *has_peak, char *err,
                                size_t err_len);

/* What the group's charge is made of, from its memory.stat, in bytes.
 * The three parts mean what RssAnon, RssFile and RssShmem mean for a
 * process (mg_proc_status), so that anon + file + shmem is the charged
 * user memory of both (the group's usage adds kernel memory):
 *   anon:  v1 total_rss (rss), v2 anon — anonymous pages (heap, stacks,
 *          private anonymous mmap);
 *   file:  v1 total_cache (cache), v2 file, minus shmem — page cache of
 *          regular files charged to the group (the kernel's counters
 *          include shmem; it is taken out here);
 *   shmem: v1 total_shmem (shmem), v2 shmem — tmpfs, shared anonymous
 *          and SysV/POSIX shared memory.
 * v1 prefers the hierarchical total_ counters (the group and its
 * descendants, as the usage counts them); a kernel without a shmem line
 * reads as 0. */
typedef struct mg_cgroup_memstat {
  uint64_t anon_bytes;
  uint64_t file_bytes;
  uint64_t shmem_bytes;
} mg_cgroup_memstat;

/* Read <dir>/memory.stat (mg_cgroup_memstat). A file that cannot be read
 * is its negative errno; one without the anon or file line, or with a
 * value that is not a number, is MG_EPARSE with err naming the file (and
 * quoting the line). *out is zeroed on failure. */
MG_API int mg_cgroup_memstat_read(mg_cgroup *cg, mg_cgroup_memstat *out,
                                  char *err, size_t err_len);

/* Memory + swap charged to the group: v1 memory.memsw.usage_in_bytes, v2
 * memory.current + memory.swap.current. MG_ENOTSUP, saying so, where the
 * kernel does not account swap. */
MG_API int mg_cgroup_memsw_read(mg_cgroup *cg, uint64_t *bytes, char *err,
                                size_t err_len);

/* Number of processes in the group (0 when empty). */
MG_API int mg_cgroup_count_pids(mg_cgroup *cg, size_t *count);

/* SIGKILL everything in the group: v2 cgroup.kill when present, else each
 * pid in cgroup.procs, repeated until empty or `timeout_ms`. */
MG_API int mg_cgroup_kill_all(mg_cgroup *cg, int timeout_ms);

/* rmdir the group (retrying briefly while the kernel drains it). */
MG_API int mg_cgroup_remove(mg_cgroup *cg, char *err, size_t err_len);

/* Notifications (mg_cgroup_notify.c): descriptors for the caller's event
 * loop; close them to unregister. Wrong version: MG_ENOTSUP with the why.
 *
 * v1: an eventfd (non-blocking, close-on-exec) the kernel signals each
 * time memory.usage_in_bytes (memsw: memory.memsw.usage_in_bytes) crosses
 * `bytes` (1..2^63-1), in either direction; read it with
 * mg_cgroup_eventfd_drain and read the usage to learn which way. */
MG_API int mg_cgroup_threshold_open(mg_cgroup *cg, int memsw, uint64_t bytes,
                                    int *fd, char *err, size_t err_len);
/* An OOM of the group: v1 an eventfd on memory.oom_control (signalled at
 * each OOM, before the victim is killed), v2 memory.events (poll it for
 * POLLPRI: mg_cgroup_events_open). */
MG_API int mg_cgroup_oom_open(mg_cgroup *cg, int *fd, char *err,
                              size_t err_len);
/* v1 memory.pressure_level: level "low", "medium" or "critical". */
MG_API int mg_cgroup_pressure_level_open(mg_cgroup *cg, const char *level,
                                         int *fd, char *err, size_t err_len);
/* v2 memory.events opened for polling (POLLPRI on each change of a
 * counter: low, high, max, oom, oom_kill). */
MG_API int mg_cgroup_events_open(mg_cgroup *cg, int *fd, char *err,
                                 size_t err_len);
/* Read an eventfd's counter (0 when nothing was pending). */
MG_API int mg_cgroup_eventfd_drain(int fd, uint64_t *count);
/* v2 cgroup.freeze: 1 freezes every process of the group, 0 thaws. */
MG_API int mg_cgroup_freeze(mg_cgroup *cg, int frozen, char *err,
                            size_t err_len);

/* cgroup v2 delegation (mg_cgroup_leaf.c): move this process from its
 * own group info->dir into the leaf `<info->dir>/<prefix>-<pid>-~supervisor`
 * and enable the memory controller for the group's children — what a
 * supervisor in a delegated group must do before it can give children
 * memory limits ("no internal processes"). Only when the group holds this
 * process alone (-EBUSY, naming how many others, otherwise) and has the
 * memory controller (MG_ENOTSUP otherwise). *leaf gets the leaf's
 * directory. Not v2: MG_ENOTSUP. */
MG_API int mg_cgroup_v2_move_to_leaf(const mg_cgroup_info *info,
                                     const char *prefix, char *leaf,
                                     size_t leaf_len, char *err,
                                     size_t err_len);

/* Free the handle. NULL is a no-op. */
MG_API void mg_cgroup_free(mg_cgroup *cg);

/* Remove leftover groups named `<prefix><pid>-*` under `parent_dir` whose
 * pid is no longer alive (stale groups of a dead earlier run). Groups that
 * still hold processes are killed first. *removed (may be NULL) counts. */
MG_API int mg_cgroup_remove_stale(const mg_cgroup_info *info,
                                  const char *parent_dir, const char *prefix,
                                  size_t *removed, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
