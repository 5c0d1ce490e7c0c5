/* lmg_sandbox.c — the sandbox boundary of the `mg` API (bindings layer).
 *
 * A sandboxed policy (mgrun --sandbox, or an embedding host's choice) has
 * no io, os.execute or debug library; on top of that, every path the API
 * reads or writes must lie in a directory the host allows (--allow-dir),
 * the only programs it may spawn are those the host lists (--allow-spawn),
 * and it may signal or limit only its own children. Paths are resolved
 * (symlinks and "..") when the call is made; the allowed directories are
 * trusted to be under the host's control (a symlink swapped in afterwards
 * by someone else is outside this boundary — see docs/lua-api.md).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/mg__lua.h"
#include "mg/mg_sup.h"

/* "a, b, c" of a list, or `none`. */
static void join(char *const *v, const char *none, char *out, size_t len) {
  size_t n = 0;
  out[0] = '\0';
  for (size_t i = 0; v && v[i] && n + 1 < len; i++)
    n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", v[i]);
  if (!v || !v[0])
    snprintf(out, len, "%s", none);
}

/* `path` resolved: realpath of the file, or — for a file to be created —
 * realpath of its directory plus its name. */
static int resolve(const char *path, char *out, size_t len) {
  char buf[PATH_MAX];
  if (realpath(path, buf)) {
    snprintf(out, len, "%s", buf);
    return 0;
  }
  if (errno != ENOENT)
    return -errno;
  char d[PATH_MAX], b[PATH_MAX];
  snprintf(d, sizeof d, "%s", path);
  snprintf(b, sizeof b, "%s", path);
  const char *base = basename(b);
  if (!realpath(dirname(d), buf))
    return -errno;
  if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || base[0] == '/')
    return -EINVAL;
  if ((size_t)snprintf(out, len, "%s/%s", strcmp(buf, "/") ? buf : "", base) >=
      len)
    return -ENAMETOOLONG;
  return 0;
}

/* Is `path` `dir` itself or below it? A file to write must lie strictly
 * below (writing "the directory itself" puts the snapshot's temporary file
 * beside it, outside). */
static int under(const char *path, const char *dir, int strictly) {
  size_t n = strlen(dir);
  if (n == 1 && dir[0] == '/')
    return !strictly || path[1] != '\0';
  if (strncmp(path, dir, n) != 0)
    return 0;
  return path[n] == '/' || (path[n] == '\0' && !strictly);
}

int mg_lua_path_allowed(mg_lua_env *env, const char *what, const char *path,
                        int write, char *err, size_t err_len) {
  if (!env->sandbox)
    return 0;
  char dirs[1024], real[PATH_MAX];
  join(env->allow_dirs, "none: the host allows no directory (--allow-dir DIR)",
       dirs, sizeof dirs);
  int rc = resolve(path, real, sizeof real);
  if (rc < 0)
    return mg_errf(err, err_len, -EACCES,
                   "%s: the sandbox cannot resolve '%s' (%s); allowed "
                   "directories: %s",
                   what, path, mg_strerror(rc), dirs);
  for (size_t i = 0; env->allow_dirs && env->allow_dirs[i]; i++)
    if (under(real, env->allow_dirs[i], write))
      return 0;
  return mg_errf(err, err_len, -EACCES,
                 "%s: the sandbox does not allow %s '%s'%s%s%s; allowed "
                 "directories: %s",
                 what, write ? "writing" : "reading", path,
                 strcmp(real, path) ? " (" : "", strcmp(real, path) ? real : "",
                 strcmp(real, path) ? ")" : "", dirs);
}

int mg_lua_program_allowed(mg_lua_env *env, const char *path, char *err,
                           size_t err_len) {
  if (!env->sandbox)
    return 0;
  char progs[1024], real[PATH_MAX];
  join(env->allow_spawn,
       "none: the host allows no program (--allow-spawn PATH)", progs,
       sizeof progs);
  if (path[0] != '/') /* not PATH, and not relative to a cwd option */
    return mg_errf(err, err_len, -EACCES,
                   "cmd: the sandbox runs programs by their absolute path "
                   "('%s' is not one); allowed programs: %s",
                   path, progs);
  if (!realpath(path, real))
    return mg_errf(err, err_len, errno == ENOENT ? -ENOENT : -EACCES,
                   "cmd: program '%s': %s; allowed programs: %s", path,
                   strerror(errno), progs);
  for (size_t i = 0; env->allow_spawn && env->allow_spawn[i]; i++)
    if (strcmp(real, env->allow_spawn[i]) == 0)
      return 0;
  return mg_errf(err, err_len, -EACCES,
                 "cmd: the sandbox does not allow running '%s'; allowed "
                 "programs: %s",
                 path, progs);
}

int mg_lua_pid_allowed(mg_lua_env *env, long pid, char *err, size_t err_len) {
  if (!env->sandbox || pid == 0 || pid == (long)getpid())
    return 0;
  size_t n = env->sup ? mg_sup_children(env->sup, NULL, 0) : 0;
  mg_child **kids = n ? calloc(n, sizeof *kids) : NULL;
  int found = 0;
  if (kids) {
    n = mg_sup_children(env->sup, kids, n);
    for (size_t i = 0; i < n && !found; i++)
      found = mg_child_pid(kids[i]) == (pid_t)pid;
    free(kids);
  }
  if (found)
    return 0;
  return mg_errf(err, err_len, -EPERM,
                 "pid: the sandbox allows only this process and its own "
                 "children, not pid %ld",
                 pid);
}

/* Variables that make a program load or run other code: the dynamic
 * loader's, shells' start-up files and options, and the module paths and
 * options of the usual interpreters. */
static const char *const env_deny_prefix[] = {
    "LD_",  "DYLD_", "PYTHON",    "PERL",  "RUBY",       "NODE_",
    "LUA_", "GIT_",  "JAVA_TOOL", "_JAVA", "BASH_FUNC_", NULL};
static const char *const env_deny[] = {"BASH_ENV",
                                       "ENV",
                                       "SHELLOPTS",
                                       "BASHOPTS",
                                       "PS4",
                                       "PROMPT_COMMAND",
                                       "IFS",
                                       "CDPATH",
                                       "GLOBIGNORE",
                                       "GCONV_PATH",
                                       "HOSTALIASES",
                                       "LOCPATH",
                                       "NLSPATH",
                                       "RESOLV_HOST_CONF",
                                       "MALLOC_CONF",
                                       "CLASSPATH",
                                       "TCLLIBPATH",
                                       "R_PROFILE",
                                       "R_PROFILE_USER",
                                       "R_ENVIRON",
                                       NULL};

int mg_lua_env_allowed(mg_lua_env *env, const char *name, size_t len, char *err,
                       size_t err_len) {
  if (!env->sandbox)
    return 0;
  int bad = 0;
  for (int i = 0; env_deny[i] && !bad; i++)
    bad = strlen(env_deny[i]) == len && memcmp(env_deny[i], name, len) == 0;
  for (int i = 0; env_deny_prefix[i] && !bad; i++) {
    size_t pl = strlen(env_deny_prefix[i]);
    bad = len >= pl && memcmp(env_deny_prefix[i], name, pl) == 0;
  }
  if (!bad)
    return 0;
  return mg_errf(err, err_len, -EACCES,
                 "env: the sandbox does not pass '%.*s' to a program (it "
                 "makes programs load or run other code: LD_*, BASH_ENV, "
                 "ENV, PYTHON*, PERL*, NODE_*, LUA_*, …)",
                 (int)len, name);
}
