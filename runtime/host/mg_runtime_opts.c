/* mg_runtime_opts.c — the runtime's options by name (host layer): one
 * place for each option's rule (what mgrun's command line and an
 * embedding host through an FFI accept), and options objects that own
 * their strings, lists and logger (mg_runtime_opts_new), for hosts that
 * cannot lay out a C struct (Python's ctypes). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_probe.h"
#include "mg/mg_size.h"
#include "mg__runtime.h"

/* What an options object made by mg_runtime_opts_new owns. */
typedef struct owned {
  char *scripts_dir, *cgroup_parent;
  char *metrics_addr, *metrics_file, *control_path, *timeline_path;
  char **allow_spawn, **allow_dirs; /* NULL-terminated */
  size_t n_spawn, n_dirs;
  mg_logger *logger;
  mg_log_format log_format;
  mg_log_level log_level;
} owned;

void mg_runtime_opts_init(mg_runtime_opts *o) {
  memset(o, 0, sizeof *o);
  o->lua_mem_max_bytes = MG_RUNTIME_DEFAULT_LUA_MEM;
  o->cb_timeout_ms = MG_RUNTIME_DEFAULT_CB_TIMEOUT_MS;
  o->cb_instructions = MG_RUNTIME_DEFAULT_CB_INSTRUCTIONS;
}

/* The options object's own logger, remade for a new format or level. */
static int remake_logger(mg_runtime_opts *o, owned *w, char *err,
                         size_t err_len) {
  mg_logger *lg = mg_logger_new(stderr, w->log_format, w->log_level);
  if (!lg)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  mg_logger_free(w->logger);
  w->logger = o->logger = lg;
  return 0;
}

mg_runtime_opts *mg_runtime_opts_new(void) {
  mg_runtime_opts *o = malloc(sizeof *o);
  owned *w = calloc(1, sizeof *w);
  if (!o || !w) {
    free(o);
    free(w);
    return NULL;
  }
  mg_runtime_opts_init(o);
  w->log_format = MG_LOG_TEXT;
  w->log_level = MG_LOG_INFO;
  o->priv = w;
  if (remake_logger(o, w, NULL, 0) < 0) {
    mg_runtime_opts_free(o);
    return NULL;
  }
  return o;
}

static void free_list(char **l, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(l[i]);
  free(l);
}

void mg_runtime_opts_free(mg_runtime_opts *o) {
  if (!o)
    return;
  owned *w = o->priv;
  if (w) {
    free(w->scripts_dir);
    free(w->cgroup_parent);
    free(w->metrics_addr);
    free(w->metrics_file);
    free(w->control_path);
    free(w->timeline_path);
    free_list(w->allow_spawn, w->n_spawn);
    free_list(w->allow_dirs, w->n_dirs);
    mg_logger_free(w->logger);
    free(w);
  }
  free(o);
}

/* ------------------------------------------------------------ values */

static int set_u64(const char *key, const char *v, uint64_t max, uint64_t *out,
                   char *err, size_t err_len) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (v[0] < '0' || v[0] > '9' || errno || *end || x > max)
    return mg_errf(err, err_len, -EINVAL,
                   "invalid value '%s' for %s: expected an integer from 0 to "
                   "%" PRIu64,
                   v, key, max);
  *out = x;
  return 0;
}

static int set_bool(const char *key, const char *v, int *out, char *err,
                    size_t err_len) {
  if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
    *out = 1;
  else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
    *out = 0;
  else
    return mg_errf(err, err_len, -EINVAL,
                   "invalid value '%s' for %s: expected true or false (1, 0, "
                   "yes, no)",
                   v, key);
  return 0;
}

/* SIZE or N% of the effective memory; 0 = no cap, else at least 1 MiB. */
static int set_lua_mem(const char *v, size_t *out, char *err, size_t err_len) {
  char why[512];
  uint64_t bytes, base = 0;
  mg_effmem eff;
  if (strchr(v, '%') && mg_effective_memory_read(NULL, &eff, NULL, 0) == 0)
    base = eff.total_bytes;
  int rc = mg_size_parse(v, base, &bytes, why, sizeof why);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "invalid lua_mem: %s", why);
  if (bytes != 0 && bytes < MG_LUA_MIN_MEM)
    return mg_errf(err, err_len, -EINVAL,
                   "invalid lua_mem '%s': at least 1M (or 0 for no cap)", v);
  if (bytes > SIZE_MAX)
    return mg_errf(err, err_len, MG_ERANGE_SIZE,
                   "invalid lua_mem '%s': more than this machine can address",
                   v);
  *out = (size_t)bytes;
  return 0;
}

static int dup_into(char **slot, const char *v, char *err, size_t err_len) {
  char *c = strdup(v);
  if (!c)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  free(*slot);
  *slot = c;
  return 0;
}

/* Append a copy of v to a NULL-terminated list. */
static int push(char ***list, size_t *n, const char *v, char *err,
                size_t err_len) {
  char **l = realloc(*list, (*n + 2) * sizeof *l);
  if (!l)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  *list = l;
  if (!(l[*n] = strdup(v)))
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  l[++*n] = NULL;
  return 0;
}

#define ACCEPTED                                                               \
  "lua_mem, cb_timeout_ms, cb_instructions, setup_timeout_ms, sandbox, "       \
  "handle_signals, check_only, scripts_dir, cgroup_parent, allow_spawn, "      \
  "allow_dir, log_level, log_format, metrics, metrics_remote, "                \
  "metrics_file, metrics_interval_ms, control, timeline"

int mg_runtime_opts_set(mg_runtime_opts *o, const char *key, const char *value,
                        char *err, size_t err_len) {
  if (!o || !key || !value)
    return mg_errf(err, err_len, -EINVAL,
                   "mg_runtime_opts_set: options, key and value are needed");
  owned *w = o->priv;
  const char *k = key;
  if (!strcmp(k, "lua_mem"))
    return set_lua_mem(value, &o->lua_mem_max_bytes, err, err_len);
  if (!strcmp(k, "cb_timeout_ms"))
    return set_u64(k, value, MG_LUA_MAX_BUDGET_MS, &o->cb_timeout_ms, err,
                   err_len);
  if (!strcmp(k, "setup_timeout_ms"))
    return set_u64(k, value, MG_LUA_MAX_BUDGET_MS, &o->setup_timeout_ms, err,
                   err_len);
  if (!strcmp(k, "cb_instructions"))
    return set_u64(k, value, UINT64_MAX, &o->cb_instructions, err, err_len);
  if (!strcmp(k, "sandbox"))
    return set_bool(k, value, &o->sandbox, err, err_len);
  if (!strcmp(k, "handle_signals"))
    return set_bool(k, value, &o->handle_signals, err, err_len);
  if (!strcmp(k, "check_only"))
    return set_bool(k, value, &o->check_only, err, err_len);
  if (!strcmp(k, "metrics_remote"))
    return set_bool(k, value, &o->metrics_remote, err, err_len);
  if (!strcmp(k, "metrics_interval_ms")) {
    int rc = set_u64(k, value, MG_LUA_MAX_BUDGET_MS, &o->metrics_interval_ms,
                     err, err_len);
    if (rc == 0 && o->metrics_interval_ms < 100)
      return mg_errf(err, err_len, -EINVAL,
                     "invalid value '%s' for %s: at least 100 ms", value, k);
    return rc;
  }
  int is_str = !strcmp(k, "scripts_dir") || !strcmp(k, "cgroup_parent") ||
               !strcmp(k, "allow_spawn") || !strcmp(k, "allow_dir") ||
               !strcmp(k, "log_level") || !strcmp(k, "log_format") ||
               !strcmp(k, "metrics") || !strcmp(k, "metrics_file") ||
               !strcmp(k, "control") || !strcmp(k, "timeline");
  if (!is_str)
    return mg_errf(err, err_len, -EINVAL,
                   "unknown runtime option '%s' (accepted: " ACCEPTED ")", k);
  if (!w)
    return mg_errf(err, err_len, -EINVAL,
                   "%s: only options made by mg_runtime_opts_new own a copy "
                   "(set the field of your mg_runtime_opts instead)",
                   k);
  int rc;
  if ((!strcmp(k, "allow_spawn") || !strcmp(k, "allow_dir") ||
       !strcmp(k, "scripts_dir") || !strcmp(k, "cgroup_parent")) &&
      value[0] == '\0')
    return mg_errf(err, err_len, -EINVAL, "%s needs a path, got an empty one",
                   k);
  if (!strcmp(k, "scripts_dir")) {
    if ((rc = dup_into(&w->scripts_dir, value, err, err_len)) == 0)
      o->scripts_dir = w->scripts_dir;
    return rc;
  }
  if ((!strcmp(k, "metrics") || !strcmp(k, "metrics_file") ||
       !strcmp(k, "timeline")) &&
      value[0] == '\0')
    return mg_errf(err, err_len, -EINVAL, "%s needs %s, got an empty one", k,
                   strcmp(k, "metrics") ? "a path" : "an address");
  struct {
    const char *key;
    char **slot;
    const char **field;
  } strs[] = {{"metrics", &w->metrics_addr, &o->metrics_addr},
              {"metrics_file", &w->metrics_file, &o->metrics_file},
              {"control", &w->control_path, &o->control_path},
              {"timeline", &w->timeline_path, &o->timeline_path}};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (!strcmp(k, strs[i].key)) {
      if ((rc = dup_into(strs[i].slot, value, err, err_len)) == 0)
        *strs[i].field = *strs[i].slot;
      return rc;
    }
  if (!strcmp(k, "cgroup_parent")) {
    if ((rc = dup_into(&w->cgroup_parent, value, err, err_len)) == 0)
      o->cgroup_parent = w->cgroup_parent;
    return rc;
  }
  if (!strcmp(k, "allow_spawn")) {
    if ((rc = push(&w->allow_spawn, &w->n_spawn, value, err, err_len)) == 0)
      o->allow_spawn = (const char *const *)w->allow_spawn;
    return rc;
  }
  if (!strcmp(k, "allow_dir")) {
    if ((rc = push(&w->allow_dirs, &w->n_dirs, value, err, err_len)) == 0)
      o->allow_dirs = (const char *const *)w->allow_dirs;
    return rc;
  }
  if (!strcmp(k, "log_level")) {
    if (mg_log_level_parse(value, &w->log_level) < 0)
      return mg_errf(err, err_len, -EINVAL,
                     "invalid log_level '%s' (accepted: debug, info, warn, "
                     "error)",
                     value);
  } else if (mg_log_format_parse(value, &w->log_format) < 0) {
    return mg_errf(err, err_len, -EINVAL,
                   "invalid log_format '%s' (accepted: text, json)", value);
  }
  return remake_logger(o, w, err, err_len);
}
