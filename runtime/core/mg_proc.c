/* mg_proc.c — per-process memory from /proc/PID/status and smaps_rollup,
 * start times from /proc/PID/stat, process trees from the children files
 * (core layer).
 *
 * status: "Name:\t<comm>" and "VmRSS:\t    1234 kB" lines. Kernel threads
 * and zombies have no Vm and Rss lines: the sizes stay 0 and
 * is_kernel_thread is set. Lines we do not use are skipped unread.
 */
#include "mg/mg_proc.h"

#include "mg/mg_error.h"
#include "mg__fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MG__PROC_MAX_FILE (16u << 20) /* a status file is a few KiB */

int mg_proc_status_parse(const char *text, mg_proc_status *out, char *err,
                         size_t err_len) {
  static const struct {
    const char *key;
    size_t off;
  } kb_fields[] = {
      {"VmRSS", offsetof(mg_proc_status, rss_bytes)},
      {"VmHWM", offsetof(mg_proc_status, hwm_bytes)},
      {"VmSize", offsetof(mg_proc_status, vsize_bytes)},
      {"VmData", offsetof(mg_proc_status, data_bytes)},
      {"RssAnon", offsetof(mg_proc_status, anon_bytes)},
      {"RssFile", offsetof(mg_proc_status, file_bytes)},
      {"RssShmem", offsetof(mg_proc_status, shmem_bytes)},
      {"VmSwap", offsetof(mg_proc_status, swap_bytes)},
  };
  mg_proc_status st;
  memset(&st, 0, sizeof st);
  if (out)
    memset(out, 0, sizeof *out);
  if (!text || !out)
    return mg_errf(err, err_len, MG_EPARSE, "status: no text to parse");
  int have_name = 0, have_vm = 0;
  mg__lines it = mg__lines_start(text);
  while (mg__lines_next(&it)) {
    const char *line = it.line, *eol = it.eol, *v;
    if (mg__lines_key(&it, "Name", &v)) {
      size_t n = (size_t)(eol - v);
      if (n >= sizeof st.name)
        n = sizeof st.name - 1;
      memcpy(st.name, v, n);
      st.name[n] = '\0';
      have_name = 1;
    } else if (mg__lines_key(&it, "Pid", &v)) {
      long pidv = 0;
      const char *d = v;
      for (; d < eol && *d >= '0' && *d <= '9' && pidv < 100000000; d++)
        pidv = pidv * 10 + (*d - '0');
      while (d < eol && (*d == ' ' || *d == '\t' || *d == '\r'))
        d++;
      if (v == eol || *v < '0' || *v > '9' || d != eol)
        return mg_errf(err, err_len, MG_EPARSE,
                       "status: malformed line %d: \"%.*s\" (expected "
                       "\"Pid: <number>\")",
                       it.lineno, mg__lines_quote_len(&it), line);
      st.pid = (pid_t)pidv;
    } else {
      for (size_t i = 0; i < sizeof kb_fields / sizeof kb_fields[0]; i++) {
        if (!mg__lines_key(&it, kb_fields[i].key, &v))
          continue;
        uint64_t *dst = (uint64_t *)((char *)&st + kb_fields[i].off);
        if (mg__parse_kb(v, eol, dst) < 0)
          return mg_errf(err, err_len, MG_EPARSE,
                         "status: malformed line %d: \"%.*s\" (expected "
                         "\"%s: <number> kB\")",
                         it.lineno, mg__lines_quote_len(&it), line,
                         kb_fields[i].key);
        have_vm = 1;
        break;
      }
    }
  }
  if (!have_name)
    return mg_errf(err, err_len, MG_EPARSE,
                   "status: no \"Name:\" line (is this a /proc/PID/status "
                   "file?)");
  st.is_kernel_thread = !have_vm;
  *out = st;
  return 0;
}

/* "<root>/<pid>/<file>", pid 0 = "self". */
static int pid_path(char *out, size_t len, const char *proc_root, pid_t pid,
                    const char *file) {
  char rel[64];
  if (pid == 0)
    snprintf(rel, sizeof rel, "self/%s", file);
  else
    snprintf(rel, sizeof rel, "%ld/%s", (long)pid, file);
  return mg__path_join(out, len, proc_root, "/proc", rel);
}

/* A file under <root>/<pid>/ could not be opened with ENOENT: tell a gone
 * process (-ESRCH) from a missing /proc (-ENOENT) and from a missing file
 * in a live process' directory (returns 0). */
static int classify_enoent(const char *proc_root, pid_t pid, char *err,
                           size_t err_len) {
  char dir[4096];
  struct stat sb;
  if (pid_path(dir, sizeof dir, proc_root, pid, "") == 0 && stat(dir, &sb) == 0)
    return 0;
  if (mg__path_join(dir, sizeof dir, proc_root, "/proc", "") == 0 &&
      stat(dir, &sb) != 0)
    return mg_errf(err, err_len, -ENOENT,
                   "cannot read process information: %s does not exist (is "
                   "/proc mounted?)",
                   dir);
  if (pid == 0)
    return mg_errf(err, err_len, -ENOENT,
                   "cannot read process information: %sself is missing", dir);
  return mg_errf(err, err_len, -ESRCH, "no process with pid %ld", (long)pid);
}

/* Read <root>/<pid>/<file> (pid 0 = self) into a new heap buffer *text
 * (the caller frees it), its path into path[4096]. On failure *text is NULL
 * and err says why: -EINVAL for a pid < 0, -ENAMETOOLONG, -ESRCH when the
 * process is gone, -ENOENT when /proc is missing, else the read's error
 * ("cannot read PATH: ..." and `denied_hint` after -EACCES or -EPERM).
 * Returns 1, with err untouched, when the file is missing from a live
 * process' directory: the caller says what that means. */
static int read_pid_file(const char *proc_root, pid_t pid, const char *file,
                         const char *denied_hint, char path[4096], char **text,
                         char *err, size_t err_len) {
  *text = NULL;
  if (pid < 0)
    return mg_errf(err, err_len, -EINVAL,
                   "invalid pid %ld (expected a pid > 0, or 0 for self)",
                   (long)pid);
  if (pid_path(path, 4096, proc_root, pid, file) < 0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "%s: path too long", file);
  int rc = mg__read_file_alloc(path, MG__PROC_MAX_FILE, text, NULL);
  if (rc == -ENOENT) {
    int c = classify_enoent(proc_root, pid, err, err_len);
    return c < 0 ? c : 1;
  }
  if (rc == -ESRCH) /* the process exited between open and read */
    return mg_errf(err, err_len, -ESRCH, "no process with pid %ld", (long)pid);
  if (rc < 0)
    return mg_errf(
        err, err_len, rc, "cannot read %s: %s%s", path, mg_strerror(rc),
        denied_hint && (rc == -EACCES || rc == -EPERM) ? denied_hint : "");
  return 0;
}

int mg_proc_status_read(const char *proc_root, pid_t pid, mg_proc_status *out,
                        char *err, size_t err_len) {
  if (out)
    memset(out, 0, sizeof *out);
  char path[4096], *text;
  int rc =
      read_pid_file(proc_root, pid, "status", NULL, path, &text, err, err_len);
  if (rc == 1)
    return mg_errf(err, err_len, -ENOENT, "cannot read %s: %s", path,
                   mg_strerror(-ENOENT));
  if (rc < 0)
    return rc;
  char perr[512];
  rc = mg_proc_status_parse(text, out, perr, sizeof perr);
  free(text);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "%s: %s", path, perr);
  if (pid != 0)
    out->pid = pid;
  return 0;
}

int mg_proc_pss_read(const char *proc_root, pid_t pid, uint64_t *pss_bytes,
                     char *err, size_t err_len) {
  if (pss_bytes)
    *pss_bytes = 0;
  char path[4096], *text;
  int rc = read_pid_file(proc_root, pid, "smaps_rollup",
                         " (reading another user's memory map needs ptrace "
                         "access: same user or CAP_SYS_PTRACE)",
                         path, &text, err, err_len);
  if (rc == 1)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "PSS not available: %s is missing (needs Linux >= 4.14)",
                   path);
  if (rc < 0)
    return rc;
  mg__lines it = mg__lines_start(text);
  while (mg__lines_next(&it)) {
    const char *value;
    if (mg__lines_key(&it, "Pss", &value)) {
      uint64_t v;
      if (mg__parse_kb(value, it.eol, &v) < 0) {
        rc = mg_errf(err, err_len, MG_EPARSE,
                     "%s: malformed line %d: \"%.*s\" (expected \"Pss: "
                     "<number> kB\")",
                     path, it.lineno, mg__lines_quote_len(&it), it.line);
        free(text);
        return rc;
      }
      free(text);
      if (pss_bytes)
        *pss_bytes = v;
      return 0;
    }
  }
  free(text);
  return mg_errf(err, err_len, MG_ENOTSUP,
                 "PSS not available: %s has no \"Pss:\" line (a kernel "
                 "thread or a zombie has no memory map)",
                 path);
}

int mg_proc_start_time(const char *proc_root, pid_t pid, uint64_t *ticks,
                       char *err, size_t err_len) {
  if (ticks)
    *ticks = 0;
  if (pid <= 0 || !ticks)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_proc_start_time: a pid > 0 and ticks are required");
  char path[4096], buf[1024];
  if (pid_path(path, sizeof path, proc_root, pid, "stat") < 0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "stat: path too long");
  int rc = mg__read_file(path, buf, sizeof buf, NULL);
  if (rc == -ENOENT || rc == -ESRCH)
    return mg_errf(err, err_len, -ESRCH, "no process with pid %ld", (long)pid);
  if (rc < 0 && rc != -EFBIG) /* the fields we need are in the first KiB */
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  const char *p = strrchr(buf, ')'); /* comm may hold spaces and ')' */
  /* from ")": each space starts the next field (state is field 3) */
  for (int field = 2; p && field < 22 && *p; p++)
    if (*p == ' ')
      field++;
  uint64_t v = 0;
  const char *d = p;
  for (; d && *d >= '0' && *d <= '9' && v < UINT64_MAX / 10; d++)
    v = v * 10 + (uint64_t)(*d - '0');
  if (!d || d == p || (*d != ' ' && *d != '\n' && *d != '\0'))
    return mg_errf(err, err_len, MG_EPARSE,
                   "%s: malformed: no start time in field 22 (\"%.80s\")", path,
                   buf);
  *ticks = v;
  return 0;
}

/* Append the pids listed in one children file to out[*n..cap). */
static void tree_add_children(const char *path, pid_t *out, size_t cap,
                              size_t *n) {
  char *text = NULL;
  if (mg__read_file_alloc(path, MG__PROC_MAX_FILE, &text, NULL) < 0)
    return;
  for (char *s = text; *s && *n < cap;) {
    char *end;
    long pid = strtol(s, &end, 10);
    if (end == s)
      break;
    s = end;
    if (pid > 0)
      out[(*n)++] = (pid_t)pid;
  }
  free(text);
}

int mg_proc_tree(const char *proc_root, pid_t root, pid_t *out, size_t cap,
                 size_t *count) {
  if (count)
    *count = 0;
  if (root <= 0 || !out || !count)
    return -EINVAL;
  size_t n = 0;
  if (cap == 0)
    return 0;
  out[n++] = root;
  for (size_t i = 0; i < n && n < cap; i++) {
    char dir[4096];
    if (pid_path(dir, sizeof dir, proc_root, out[i], "task") < 0)
      continue;
    DIR *d = opendir(dir);
    if (!d)
      continue; /* gone, or a fixture without threads */
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && n < cap) {
      if (ent->d_name[0] < '0' || ent->d_name[0] > '9')
        continue;
      char file[4096 + 300];
      snprintf(file, sizeof file, "%s/%s/children", dir, ent->d_name);
      tree_add_children(file, out, cap, &n);
    }
    closedir(d);
  }
  *count = n;
  return 0;
}
