/* mg_sup_validate.c — validation of a spawn (supervisor layer): every
 * option, the name, argv[0] resolved through PATH in the parent (like
 * execvp), the working directory and the output files, before anything
 * is started; then what can enforce its limit (the mode resolved, with
 * only the probes it needs: `auto` tries the child's own group) and the
 * limit rule. The fork/exec step is in mg_sup_exec.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg__sup.h"

#define SUP__DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

int mg__sup_limit_value(uint64_t bytes, char *err, size_t err_len) {
  if (bytes == 0)
    return mg_errf(err, err_len, -EINVAL,
                   "limit: must be positive (omit it for no limit)");
  if (bytes > MG_SIZE_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "limit: %" PRIu64 " bytes is more than 2^63-1", bytes);
  return 0;
}

/* The one name rule, and unique among the children not yet closed. */
static int sup__check_name(mg_sup *sup, const char *name, char *err,
                           size_t err_len) {
  int rc = mg_name_check("name", name, name ? strlen(name) : 0, err, err_len);
  if (rc < 0)
    return rc;
  for (mg_child *c = sup->head; c; c = c->next)
    if (!c->closed && strcmp(c->name, name) == 0)
      return mg_errf(err, err_len, -EEXIST,
                     "name: a process named '%s' is already running (names "
                     "are unique among live processes)",
                     name);
  return 0;
}

/* An integer option in [min, max]; `accepted` (NULL: "min..max") says
 * what is. */
static int sup__range(const char *field, int64_t v, int64_t min, int64_t max,
                      const char *accepted, char *err, size_t err_len) {
  if (v >= min && v <= max)
    return 0;
  if (accepted)
    return mg_errf(err, err_len, -EINVAL,
                   "%s: %" PRId64 " is out of range (accepted: %s)", field, v,
                   accepted);
  return mg_errf(err, err_len, -EINVAL,
                 "%s: %" PRId64 " is out of range (accepted: %" PRId64
                 "..%" PRId64 ")",
                 field, v, min, max);
}

/* Every value of `o` on its own: no file is looked at, nothing probed. */
static int sup__check_values(const mg_child_opts *o, char *err,
                             size_t err_len) {
  if ((int)o->enforce < MG_ENFORCE_AUTO || o->enforce > MG_ENFORCE_NONE)
    return mg_errf(err, err_len, -EINVAL,
                   "enforce: unknown mode %d (auto, cgroup, data, as, none)",
                   (int)o->enforce);
  if ((int)o->restart < MG_RESTART_NO || o->restart > MG_RESTART_ALWAYS)
    return mg_errf(err, err_len, -EINVAL,
                   "restart: unknown policy %d (no, on-failure, always)",
                   (int)o->restart);
  if (o->limit_bytes != MG_CHILD_NO_LIMIT &&
      mg__sup_limit_value(o->limit_bytes, err, err_len) < 0)
    return -EINVAL;
  if (!(o->warn_at >= 0 && o->warn_at <= 1))
    return mg_errf(err, err_len, -EINVAL,
                   "warn_at: %g is out of range (accepted: a fraction 0 < "
                   "warn_at <= 1, or 0 for no warn events)",
                   o->warn_at);
  int rc = 0;
  char acc[64];
  snprintf(acc, sizeof acc, "0 for no sampling, or %d..%d",
           MG_SUP_SAMPLE_MS_MIN, MG_SUP_SAMPLE_MS_MAX);
  if (o->sample_ms != 0)
    rc = sup__range("sample_ms", o->sample_ms, MG_SUP_SAMPLE_MS_MIN,
                    MG_SUP_SAMPLE_MS_MAX, acc, err, err_len);
  if (rc == 0)
    rc = sup__range("max_restarts", o->max_restarts, -1,
                    MG_SUP_MAX_RESTARTS_MAX, NULL, err, err_len);
  if (rc == 0)
    rc = sup__range("grace_ms", o->grace_ms, 0, MG_SUP_GRACE_MS_MAX, NULL, err,
                    err_len);
  if (rc == 0)
    rc = sup__range("backoff_ms", o->backoff_ms, 1, MG_SUP_BACKOFF_MS_MAX, NULL,
                    err, err_len);
  if (rc == 0 && o->backoff_max_ms != MG_CHILD_BACKOFF_MAX_DEFAULT)
    rc = sup__range("backoff_max_ms", o->backoff_max_ms, 1,
                    MG_SUP_BACKOFF_CAP_MS_MAX, NULL, err, err_len);
  if (rc == 0)
    rc = sup__range("backoff_reset_ms", o->backoff_reset_ms, 1,
                    MG_SUP_BACKOFF_CAP_MS_MAX, NULL, err, err_len);
  if (rc == 0 && o->backoff_max_ms != MG_CHILD_BACKOFF_MAX_DEFAULT &&
      o->backoff_max_ms < o->backoff_ms)
    rc = mg_errf(err, err_len, -EINVAL,
                 "backoff_max_ms: %" PRId64 " is below backoff_ms %" PRId64,
                 o->backoff_max_ms, o->backoff_ms);
  if (rc == 0 && (o->cgroup < -1 || o->cgroup > 1))
    rc = mg_errf(err, err_len, -EINVAL,
                 "cgroup: %d (accepted: -1 where one can be made, 0 never, 1 "
                 "required)",
                 o->cgroup);
  if (rc == 0 && o->cgroup == 0 && o->enforce == MG_ENFORCE_CGROUP)
    rc = mg_errf(err, err_len, -EINVAL,
                 "cgroup: false with enforce=cgroup (that mode is a group of "
                 "its own; use data, as or none without one)");
  if (rc == 0)
    rc = mg__sup_th_init(NULL, o, err, err_len);
  return rc;
}

/* Entries "NAME=VALUE" with a name. */
static int sup__check_env(char *const *env, char *err, size_t err_len) {
  for (size_t i = 0; env && env[i]; i++) {
    const char *eq = strchr(env[i], '=');
    if (!eq)
      return mg_errf(err, err_len, -EINVAL,
                     "env: entry '%.80s' is not KEY=VALUE", env[i]);
    if (eq == env[i])
      return mg_errf(err, err_len, -EINVAL,
                     "env: entry '%.80s' has an empty name", env[i]);
  }
  return 0;
}

/* An existing directory we may enter. */
static int sup__check_cwd(const char *cwd, char *err, size_t err_len) {
  struct stat st;
  if (!cwd)
    return 0;
  if (!*cwd)
    return mg_errf(err, err_len, -EINVAL,
                   "cwd: empty (omit it to inherit the working directory)");
  if (stat(cwd, &st) < 0)
    return mg_errf(err, err_len, -errno, "cwd: '%s': %s", cwd, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return mg_errf(err, err_len, -ENOTDIR, "cwd: '%s' is not a directory", cwd);
  if (access(cwd, X_OK) < 0)
    return mg_errf(err, err_len, -errno, "cwd: cannot enter '%s': %s", cwd,
                   strerror(errno));
  return 0;
}

/* The value of `key` in opts env (last wins), else in environ. */
static const char *sup__env_get(char *const *env, const char *key) {
  size_t kl = strlen(key);
  const char *found = NULL;
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
      found = env[i] + kl + 1;
  return found ? found : getenv(key);
}

/* An absolute path for `p`: as is, or under `base` (cwd option or our
 * working directory). Caller frees. */
static char *sup__absolute(const char *p, const char *base) {
  if (p[0] == '/')
    return strdup(p);
  char here[PATH_MAX];
  if (!base || base[0] != '/') {
    if (!getcwd(here, sizeof here))
      return NULL;
    if (base) { /* a relative cwd option: under our working directory */
      size_t hl = strlen(here);
      if (snprintf(here + hl, sizeof here - hl, "/%s", base) >=
          (int)(sizeof here - hl))
        return NULL;
    }
    base = here;
  }
  size_t len = strlen(base) + strlen(p) + 2;
  char *out = malloc(len);
  if (out)
    snprintf(out, len, "%s/%s", base, p);
  return out;
}

/* Resolve argv[0] like execvp, in the parent: *path gets an absolute path
 * (caller frees). */
static int sup__resolve(const char *prog, char *const *env, const char *cwd,
                        char **path, char *err, size_t err_len) {
  struct stat st;
  *path = NULL;
  if (strchr(prog, '/')) {
    char *p = sup__absolute(prog, cwd);
    if (!p)
      return mg_errf(err, err_len, -ENOMEM, "cmd: path of '%s' too long", prog);
    int rc = 0;
    if (stat(p, &st) < 0)
      rc = mg_errf(err, err_len, -errno, "cmd: program '%s' not found (%s)",
                   prog, strerror(errno));
    else if (S_ISDIR(st.st_mode))
      rc = mg_errf(err, err_len, -EISDIR, "cmd: '%s' is a directory", prog);
    else if (access(p, X_OK) < 0)
      rc = mg_errf(err, err_len, -EACCES,
                   "cmd: program '%s' is not "
                   "executable",
                   prog);
    if (rc < 0) {
      free(p);
      return rc;
    }
    *path = p;
    return 0;
  }
  const char *search = sup__env_get(env, "PATH");
  if (!search || !*search)
    search = SUP__DEFAULT_PATH;
  char *not_exec = NULL;
  for (const char *d = search;;) {
    size_t dl = strcspn(d, ":");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", (int)(dl ? dl : 1), dl ? d : ".");
    char cand[PATH_MAX];
    if (snprintf(cand, sizeof cand, "%s/%s", dir, prog) < (int)sizeof cand &&
        stat(cand, &st) == 0 && !S_ISDIR(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        free(not_exec);
        *path = sup__absolute(cand, NULL);
        if (!*path)
          return mg_errf(err, err_len, -ENOMEM, "cmd: path of '%s' too long",
                         prog);
        return 0;
      }
      if (!not_exec)
        not_exec = strdup(cand);
    }
    if (!d[dl])
      break;
    d += dl + 1;
  }
  int rc;
  if (not_exec)
    rc = mg_errf(err, err_len, -EACCES,
                 "cmd: program '%s' found at %s but it is not executable", prog,
                 not_exec);
  else
    rc = mg_errf(err, err_len, -ENOENT,
                 "cmd: program '%s' not found in PATH (%s)", prog, search);
  free(not_exec);
  return rc;
}

/* Can the supervisor append to `path` (checked without creating it)? */
static int sup__check_out(const char *field, mg_stdio mode, const char *path,
                          char *err, size_t err_len) {
  if (mode == MG_STDIO_INHERIT || mode == MG_STDIO_NULL)
    return 0;
  if (mode != MG_STDIO_FILE)
    return mg_errf(err, err_len, -EINVAL,
                   "%s: unknown mode %d (inherit, null or a file path)", field,
                   (int)mode);
  if (!path)
    return mg_errf(err, err_len, -EINVAL,
                   "%s: a file path is required with MG_STDIO_FILE", field);
  if (!*path)
    return mg_errf(err, err_len, -EINVAL,
                   "%s: empty (accepted: \"inherit\", \"null\" or a file "
                   "path)",
                   field);
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return mg_errf(err, err_len, -EISDIR, "%s: '%s' is a directory", field,
                     path);
    if (access(path, W_OK) < 0)
      return mg_errf(err, err_len, -errno, "%s: cannot write '%s': %s", field,
                     path, strerror(errno));
    return 0;
  }
  if (errno != ENOENT)
    return mg_errf(err, err_len, -errno, "%s: cannot use '%s': %s", field, path,
                   strerror(errno));
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if (access(dir, W_OK | X_OK) < 0)
    return mg_errf(err, err_len, -errno,
                   "%s: cannot create '%s': directory '%s': %s", field, path,
                   dir, strerror(errno));
  return 0;
}

void mg_child_opts_init(mg_child_opts *o) {
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->limit_bytes = MG_CHILD_NO_LIMIT;
  o->enforce = MG_ENFORCE_AUTO;
  o->warn_at = MG_SUP_WARN_AT;
  o->sample_ms = MG_SUP_SAMPLE_MS;
  o->restart = MG_RESTART_NO;
  o->max_restarts = -1;
  o->backoff_ms = MG_SUP_BACKOFF_MS;
  o->backoff_max_ms = MG_CHILD_BACKOFF_MAX_DEFAULT;
  o->backoff_reset_ms = MG_SUP_BACKOFF_RESET_MS;
  o->cgroup = -1;
  o->grace_ms = MG_SUP_GRACE_MS;
  o->stdout_mode = o->stderr_mode = MG_STDIO_INHERIT;
}

int mg__sup_validate(mg_sup *sup, const mg_child_opts *o, char **path,
                     char *err, size_t err_len) {
  if (path)
    *path = NULL;
  if (!sup || !o)
    return mg_errf(err, err_len, -EINVAL,
                   "spawn: supervisor and options are required");
  if (sup->shutting_down || sup->free_requested)
    return mg_errf(err, err_len, -ECANCELED,
                   "spawn: the supervisor is shutting down");
  int rc = sup__check_name(sup, o->name, err, err_len);
  if (rc < 0)
    return rc;
  if (!o->argv || !o->argv[0])
    return mg_errf(err, err_len, -EINVAL,
                   "cmd: required: the program and its arguments");
  if (!o->argv[0][0])
    return mg_errf(err, err_len, -EINVAL, "cmd: the program name is empty");
  rc = sup__check_values(o, err, err_len);
  if (rc == 0)
    rc = sup__check_env(o->env, err, err_len);
  if (rc == 0)
    rc = sup__check_cwd(o->cwd, err, err_len);
  if (rc < 0)
    return rc;
  int has_limit = o->limit_bytes != MG_CHILD_NO_LIMIT;
  if (o->enforce != MG_ENFORCE_AUTO && o->enforce != MG_ENFORCE_NONE &&
      !has_limit)
    return mg_errf(err, err_len, -EINVAL,
                   "limit: required with enforce=%s (set a limit, or use "
                   "enforce=none)",
                   mg_enforce_name(o->enforce));
  int cgroup_wanted = o->enforce == MG_ENFORCE_CGROUP ||
                      (o->enforce == MG_ENFORCE_AUTO && has_limit &&
                       !(sup->cg_known && !sup->cg_usable));
  char group[160];
  if (cgroup_wanted && snprintf(group, sizeof group, "%s-%ld-%s", sup->prefix,
                                (long)sup->self_pid, o->name) > 64)
    return mg_errf(err, err_len, -EINVAL,
                   "name: '%s' makes the cgroup name '%s' longer than 64 "
                   "characters; use a shorter name",
                   o->name, group);
  rc = sup__check_out("stdout", o->stdout_mode, o->stdout_path, err, err_len);
  if (rc == 0)
    rc = sup__check_out("stderr", o->stderr_mode, o->stderr_path, err, err_len);
  if (rc < 0)
    return rc;
  char *p = NULL;
  rc = sup__resolve(o->argv[0], o->env, o->cwd, &p, err, err_len);
  if (rc < 0)
    return rc;
  if (path)
    *path = p;
  else
    free(p);
  if (err && err_len)
    err[0] = '\0';
  return 0;
}

/* ---------------------------------------------------- what can enforce */

/* Errors of a child's own group that mean cgroups cannot be used here
 * (no permission, a read-only tree, a controller not delegated), so
 * `auto` falls back instead of failing. */
static int sup__cg_unusable(int rc) {
  return rc == -EACCES || rc == -EPERM || rc == -EROFS || rc == -ENOENT ||
         rc == -ENOTSUP || rc == MG_ENOTSUP || rc == -EBUSY || rc == -ENODEV;
}

/* Remember whether limited groups can be created here, and why. */
static void sup__cg_learn(mg_sup *sup, int usable, const char *reason) {
  sup->cg_known = 1;
  sup->cg_usable = usable;
  snprintf(sup->cg_reason, sizeof sup->cg_reason, "%s", reason);
}

/* Learn it by the probe (creates a limited group and removes it). */
static void sup__cg_probe(mg_sup *sup) {
  if (sup->cg_known)
    return;
  char reason[sizeof sup->cg_reason];
  int rc =
      mg_cgroup_probe_writable(&sup->cg, sup->parent, reason, sizeof reason);
  if (rc < 0)
    snprintf(reason, sizeof reason, "the writability probe failed: %s",
             mg_strerror(rc));
  sup__cg_learn(sup, rc == 1, reason);
}

/* Without a group: RLIMIT_DATA if enforced, else RLIMIT_AS, else none
 * (each probed only when the one before is not enforced); `why` says so
 * with `cg_why`, why there is no group. */
static mg_enforce sup__fallback(const char *cg_why, char *why, size_t len) {
  int data = 0, as = 0;
  char dr[256], ar[256];
  mg_rlimit_probe_one(MG_RLIMIT_DATA, &data, dr, sizeof dr);
  if (data) {
    snprintf(why, len, "no writable cgroup (%s); RLIMIT_DATA is enforced: %s",
             cg_why, dr);
    return MG_ENFORCE_DATA;
  }
  mg_rlimit_probe_one(MG_RLIMIT_AS, &as, ar, sizeof ar);
  if (as) {
    snprintf(why, len,
             "no writable cgroup (%s); RLIMIT_DATA is not enforced (%s); "
             "RLIMIT_AS is: %s",
             cg_why, dr, ar);
    return MG_ENFORCE_AS;
  }
  snprintf(why, len,
           "nothing can enforce a limit here: no writable cgroup (%s), "
           "RLIMIT_DATA not enforced (%s), RLIMIT_AS not enforced (%s); "
           "limits are watched only",
           cg_why, dr, ar);
  return MG_ENFORCE_NONE;
}

mg_enforce mg_sup_auto_enforce(mg_sup *sup, const char **why) {
  if (!sup) {
    if (why)
      *why = "";
    return MG_ENFORCE_NONE;
  }
  if (!sup->auto_known) {
    sup__cg_probe(sup);
    if (sup->cg_usable) {
      sup->auto_enforce = MG_ENFORCE_CGROUP;
      snprintf(sup->auto_why, sizeof sup->auto_why, "cgroup %s is writable: %s",
               mg_cgroup_version_name(sup->cg.version), sup->cg_reason);
    } else {
      sup->auto_enforce =
          sup__fallback(sup->cg_reason, sup->auto_why, sizeof sup->auto_why);
    }
    sup->auto_known = 1;
  }
  if (why)
    *why = sup->auto_why;
  return sup->auto_enforce;
}

/* data / as: is the resource enforced here (probed once per process)? */
static int sup__rlimit_check(mg_enforce e, char *err, size_t err_len) {
  int enforced = 0;
  char why[256];
  int data = e == MG_ENFORCE_DATA;
  mg_rlimit_probe_one(data ? MG_RLIMIT_DATA : MG_RLIMIT_AS, &enforced, why,
                      sizeof why);
  if (enforced)
    return 0;
  return mg_errf(err, err_len, MG_ENOTENFORCED,
                 "enforce: %s (%s) is not enforced here: %s",
                 data ? "data" : "as", data ? "RLIMIT_DATA" : "RLIMIT_AS", why);
}

static int sup__cg_unavailable(const mg_sup *sup, char *err, size_t err_len) {
  return mg_errf(err, err_len, MG_ENOTSUP,
                 "enforce: cgroup not available here: %s", sup->cg_reason);
}

int mg__sup_mode_check(mg_sup *sup, mg_enforce e, int has_limit,
                       mg_enforce *resolved, char *err, size_t err_len) {
  int rc = 0;
  if (e == MG_ENFORCE_AUTO) {
    e = has_limit ? mg_sup_auto_enforce(sup, NULL) : MG_ENFORCE_NONE;
  } else if (e == MG_ENFORCE_CGROUP) {
    sup__cg_probe(sup);
    if (!sup->cg_usable)
      rc = sup__cg_unavailable(sup, err, err_len);
  } else if (e == MG_ENFORCE_DATA || e == MG_ENFORCE_AS) {
    rc = sup__rlimit_check(e, err, err_len);
  }
  if (resolved)
    *resolved = e;
  return rc;
}

/* The child's own group, made now: 0 with c->cg, or the reason. */
static int sup__own_group(mg_child *c, char *reason, size_t reason_len) {
  mg_sup *sup = c->sup;
  if (sup->cg_known && !sup->cg_usable) /* learnt before: do not retry */
    return mg_errf(reason, reason_len, MG_ENOTSUP, "%s", sup->cg_reason);
  int rc = mg__sup_cgroup_make(c, reason, reason_len);
  if (rc == 0 && !sup->cg_known) {
    char r[sizeof sup->cg_reason];
    snprintf(r, sizeof r,
             "created the cgroup %s group %s with its limit under %s",
             mg_cgroup_version_name(sup->cg.version), mg_cgroup_dir(c->cg),
             sup->parent ? sup->parent : sup->cg.dir);
    sup__cg_learn(sup, 1, r);
  } else if (rc < 0 && sup__cg_unusable(rc)) {
    sup__cg_learn(sup, 0, reason);
  }
  return rc;
}

/* A group without a limit for a child of mode data / as / none, where
 * one can be made (cgroup -1) or must be (cgroup 1). */
static int sup__watch_group(mg_child *c, char *err, size_t err_len) {
  mg_sup *sup = c->sup;
  char reason[sizeof sup->cg_reason];
  if (c->cgroup_opt == 0)
    return 0;
  int rc = sup->cg.version == MG_CGROUP_NONE
               ? mg_errf(reason, sizeof reason, MG_ENOTSUP,
                         "no cgroup memory controller is mounted")
               : sup__own_group(c, reason, sizeof reason);
  if (rc == 0) { /* a directory that is no group (a fixture) cannot be used */
    char procs[PATH_MAX + 32];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", mg_cgroup_dir(c->cg));
    if (access(procs, W_OK) == 0) {
      c->use_group = 1;
      return 0;
    }
    rc = mg_errf(reason, sizeof reason, MG_ENOTSUP,
                 "%s has no writable cgroup.procs", mg_cgroup_dir(c->cg));
    mg__sup_cgroup_drop(c);
  }
  if (c->cgroup_opt == 1)
    return mg_errf(err, err_len, rc == -EEXIST ? rc : MG_ENOTSUP,
                   "cgroup: required, but no group can be made here: %s",
                   reason);
  mg_log_field f[] = {MG_LF_STR("name", c->name), MG_LF_STR("why", reason)};
  mg_log(sup->log, MG_LOG_DEBUG, "no_watch_group", f, 2);
  return 0;
}

int mg__sup_resolve(mg_child *c, mg_enforce e, char *why, size_t why_len,
                    char *err, size_t err_len) {
  mg_sup *sup = c->sup;
  char reason[sizeof sup->cg_reason];
  int rc;
  why[0] = '\0';
  c->enforce = e;
  c->use_group = 0;
  switch (e) {
  case MG_ENFORCE_DATA:
  case MG_ENFORCE_AS:
    rc = sup__rlimit_check(e, err, err_len);
    return rc < 0 ? rc : sup__watch_group(c, err, err_len);
  case MG_ENFORCE_CGROUP:
    rc = sup__own_group(c, reason, sizeof reason);
    if (rc < 0 && sup__cg_unusable(rc))
      return sup__cg_unavailable(sup, err, err_len);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "enforce: %s", reason);
    c->use_group = 1;
    return 0;
  case MG_ENFORCE_AUTO:
    break;
  default:
    c->enforce = MG_ENFORCE_NONE;
    return sup__watch_group(c, err, err_len);
  }
  if (c->limit_bytes == 0) { /* auto without a limit: nothing to enforce */
    c->enforce = MG_ENFORCE_NONE;
    return sup__watch_group(c, err, err_len);
  }
  if (c->cgroup_opt == 0) { /* no group wanted: an rlimit or nothing */
    c->enforce = sup__fallback("the spawn says cgroup = false", why, why_len);
    return 0;
  }
  rc = sup__own_group(c, reason, sizeof reason);
  if (rc == 0) {
    c->use_group = 1;
    c->enforce = MG_ENFORCE_CGROUP;
    snprintf(why, why_len, "its own cgroup %s group %s has the limit",
             mg_cgroup_version_name(sup->cg.version), mg_cgroup_dir(c->cg));
  } else if (sup__cg_unusable(rc)) {
    c->enforce = sup__fallback(sup->cg_reason, why, why_len);
    if (c->cgroup_opt == 1)
      return mg_errf(err, err_len, MG_ENOTSUP,
                     "cgroup: required, but no group can be made here: %s",
                     sup->cg_reason);
  } else {
    return mg_errf(err, err_len, rc, "enforce: %s", reason);
  }
  return 0;
}

/* ------------------------------------------------------- the limit rule */

int mg__sup_limit_rule(mg_sup *sup, const char *name, mg_enforce e,
                       uint64_t bytes, char *warn, size_t warn_len, char *err,
                       size_t err_len) {
  char e1[1024], a[32], b[32];
  if (warn && warn_len)
    warn[0] = '\0';
  if (bytes == 0) /* no limit */
    return 0;
  if (e == MG_ENFORCE_AS) { /* address space, not RAM */
    uint64_t hard = MG_RLIMIT_UNLIMITED;
    int rc = mg_rlimit_get(0, MG_RLIMIT_AS, NULL, &hard, e1, sizeof e1);
    if (rc < 0)
      return mg_errf(err, err_len, rc, "limit: %s", e1);
    if (hard != MG_RLIMIT_UNLIMITED && bytes > hard)
      return mg_errf(err, err_len, MG_ELIMIT,
                     "limit: %s is above the hard RLIMIT_AS of this process, "
                     "%s, which the child inherits (accepted: 1 byte to %s)",
                     mg_size_format(bytes, a, sizeof a),
                     mg_size_format(hard, b, sizeof b), b);
    return 0;
  }
  mg_meminfo mi;
  mg_effmem eff;
  int rc = mg_meminfo_read(sup->paths.proc_root, &mi, e1, sizeof e1);
  if (rc == 0)
    rc = mg_effective_memory(&sup->paths, &mi, &sup->cg, &eff, e1, sizeof e1);
  if (rc < 0)
    return mg_errf(err, err_len, rc,
                   "limit: cannot check it against the effective memory: %s",
                   e1);
  mg_validation v;
  mg_validate_limit((double)bytes, eff.total_bytes, &v);
  if (!v.ok)
    return mg_errf(err, err_len, MG_ELIMIT,
                   "limit: Memory limit validation failed: %s", v.message);
  if (v.warning[0]) {
    mg_log_field f[] = {MG_LF_STR("name", name),
                        MG_LF_STR("enforce", mg_enforce_name(e)),
                        MG_LF_STR("limit", mg_size_format(bytes, a, sizeof a)),
                        MG_LF_STR("warning", v.warning)};
    mg_log(sup->log, MG_LOG_WARN, "limit_warning", f, 4);
    if (warn && warn_len)
      snprintf(warn, warn_len, "%s", v.warning);
  }
  return 0;
}
