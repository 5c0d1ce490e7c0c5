/* mg_paths.h — injectable filesystem roots for every probe (core layer).
 *
 * Production code passes NULL (or a zeroed struct): /proc and the real
 * root. Tests point `proc_root` at a fixture tree holding self/mountinfo,
 * self/cgroup, meminfo, pressure/memory… and `fs_root` at a tree that
 * mirrors the mount points named in that mountinfo (for example
 * <fs_root>/sys/fs/cgroup/memory/...).
 */
#ifndef MG_PATHS_H
#define MG_PATHS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_paths {
  const char *proc_root; /* NULL → "/proc" */
  const char *fs_root;   /* NULL or "" → mount points used as they are */
} mg_paths;

#ifdef __cplusplus
}
#endif
#endif
