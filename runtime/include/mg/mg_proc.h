/* mg_proc.h — per-process memory from /proc/PID/status and smaps_rollup,
 * a process's start time and its tree of descendants (core layer). Reads
 * only the processes asked for (and, for a tree, their children files);
 * never walks the whole of /proc. Every reader takes the proc root (NULL:
 * "/proc") so tests can feed fixture trees.
 */
#ifndef MG_PROC_H
#define MG_PROC_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_proc_status {
  pid_t pid;
  char name[64];        /* Name: (comm) */
  uint64_t rss_bytes;   /* VmRSS */
  uint64_t hwm_bytes;   /* VmHWM (peak RSS) */
  uint64_t vsize_bytes; /* VmSize */
  uint64_t data_bytes;  /* VmData (what RLIMIT_DATA counts) */
  uint64_t anon_bytes;  /* RssAnon */
  uint64_t file_bytes;  /* RssFile */
  uint64_t shmem_bytes; /* RssShmem */
  uint64_t swap_bytes;  /* VmSwap */
  int is_kernel_thread; /* no Vm* lines: a kernel thread or a zombie */
} mg_proc_status;

/* Parse the text of a status file. */
MG_API int mg_proc_status_parse(const char *text, mg_proc_status *out,
                                char *err, size_t err_len);

/* Read `<proc_root>/<pid>/status` (pid 0 = "self"); proc_root NULL means
 * "/proc". No such process is -ESRCH with err naming the pid. */
MG_API int mg_proc_status_read(const char *proc_root, pid_t pid,
                               mg_proc_status *out, char *err, size_t err_len);

/* Read Pss from `<proc_root>/<pid>/smaps_rollup` (Linux >= 4.14); absent
 * file is MG_ENOTSUP. */
MG_API int mg_proc_pss_read(const char *proc_root, pid_t pid,
                            uint64_t *pss_bytes, char *err, size_t err_len);

/* Start time of `pid` in clock ticks since boot (field 22 of
 * `<proc_root>/<pid>/stat`, after a comm that may hold spaces and
 * parentheses): with the pid, it names a process without the risk of pid
 * reuse. No such process is -ESRCH; a malformed file MG_EPARSE. */
MG_API int mg_proc_start_time(const char *proc_root, pid_t pid, uint64_t *ticks,
                              char *err, size_t err_len);

/* The process tree of `root`: root first, then its descendants, breadth
 * first, found through `<proc_root>/<pid>/task/<tid>/children` (the
 * children of every thread; Linux >= 3.5 with CONFIG_PROC_CHILDREN). At
 * most `cap` pids go to `out`; *count gets how many. A process that is
 * gone (or a root that is) adds no children: the tree of a dead root is
 * the root alone. 0, or -EINVAL for a bad argument. */
MG_API int mg_proc_tree(const char *proc_root, pid_t root, pid_t *out,
                        size_t cap, size_t *count);

/* SIGKILL `pid` through a pidfd and release its memory at once with
 * process_mrelease where the kernel has it (>= 5.15). 1: killed and
 * released, 0: killed (memory freed as it exits), -ESRCH: no such
 * process, another negative errno: not killed. */
MG_API int mg_kill_release(pid_t pid);

#ifdef __cplusplus
}
#endif
#endif
