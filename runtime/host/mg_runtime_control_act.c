/* mg_runtime_control_act.c — the control socket's commands on children
 * and stores (host layer; the supervisor, the bindings' stores, jansson):
 * status, set-limit, stop, restart, store-stats. Requests reach them
 * parsed and checked (mg_runtime_control_cmd.c); each returns its
 * response.
 *
 * stop NAME [grace_ms]: for good (no restart): SIGTERM to the run, SIGKILL
 * after grace_ms (absent: the child's own grace_ms; 0: SIGKILL 1 ms after
 * the SIGTERM);
 * a child between two runs has its pending restart cancelled. The
 * response comes at once ("state": "stopping"); the exit is an event.
 * restart NAME [grace_ms] [signal]: the run is killed (SIGTERM, or
 * `signal`, then SIGKILL after the grace) and the restart policy brings
 * it back, with its backoff. Refused (ENORESTART) when that policy would
 * not: restart "no", or max_restarts used up; ESRCH between runs (a
 * restart is pending), EBUSY while a stop is under way.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mg__control.h"

static const char *child_state(mg_child *c) {
  if (mg_child_running(c))
    return mg_child_stopping(c) ? "stopping" : "running";
  return "restarting"; /* not closed, not running: its backoff */
}

/* The live child named `name`, or an error response listing them. */
static json_t *find_child(struct mg__rt_control *ctl, const mg__ctl_req *r,
                          const char *name, mg_child **out) {
  mg_sup *sup = ctl->rt->sup;
  size_t n = mg_sup_children(sup, NULL, 0);
  mg_child **kids = calloc(n ? n : 1, sizeof *kids);
  if (!kids)
    return mg__ctl_error(r->id, "ENOMEM", "out of memory");
  n = mg_sup_children(sup, kids, n);
  char list[512] = "";
  size_t used = 0;
  *out = NULL;
  for (size_t i = 0; i < n && !*out; i++) {
    if (strcmp(mg_child_name(kids[i]), name) == 0)
      *out = kids[i];
    else if (used < sizeof list)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                               used ? ", " : "", mg_child_name(kids[i]));
  }
  free(kids);
  if (*out)
    return NULL;
  return mg__ctl_error(r->id, "ENOENT", "%s: no child named '%s' (%s%s)",
                       r->cmd, name, n ? "children: " : "no child runs", list);
}

static json_t *child_json(mg_child *c) {
  json_t *o = json_object();
  uint64_t lim = mg_child_limit(c);
  const char *cg = mg_child_cgroup_dir(c);
  json_object_set_new(o, "name", json_string(mg_child_name(c)));
  json_object_set_new(o, "pid",
                      mg_child_running(c) ? json_integer(mg_child_pid(c))
                                          : json_null());
  json_object_set_new(o, "state", json_string(child_state(c)));
  json_object_set_new(o, "enforce",
                      json_string(mg_enforce_name(mg_child_enforce(c))));
  json_object_set_new(o, "limit", lim ? mg__ctl_u64(lim) : json_null());
  mg_child_sample s;
  if (mg_child_running(c) && mg_child_memory(c, &s, NULL, 0) == 0) {
    json_object_set_new(o, "usage", mg__ctl_u64(s.used_bytes));
    json_object_set_new(o, "rss", mg__ctl_u64(s.rss_bytes));
    /* the peak of what the limit counts where the kernel keeps one (the
     * cgroup's), else the peak RSS */
    int by_cg = mg_child_enforce(c) == MG_ENFORCE_CGROUP && s.has_cgroup &&
                s.cgroup_peak_bytes;
    json_object_set_new(o, "peak",
                        mg__ctl_u64(by_cg ? s.cgroup_peak_bytes : s.hwm_bytes));
    json_object_set_new(o, "fraction",
                        lim ? json_real(s.fraction) : json_null());
    /* GPU memory of its tree, where a GPU session is open (NVML) */
    json_object_set_new(o, "gpu",
                        s.has_gpu ? mg__ctl_u64(s.gpu_bytes) : json_null());
    json_object_set_new(o, "gpu_limit",
                        s.gpu_limit_bytes ? mg__ctl_u64(s.gpu_limit_bytes)
                                          : json_null());
  } else {
    json_object_set_new(o, "usage", json_null());
    json_object_set_new(o, "rss", json_null());
    json_object_set_new(o, "peak", json_null());
    json_object_set_new(o, "fraction", json_null());
    json_object_set_new(o, "gpu", json_null());
    json_object_set_new(o, "gpu_limit", json_null());
  }
  json_object_set_new(o, "restarts", json_integer(mg_child_restarts(c)));
  json_object_set_new(o, "restart",
                      json_string(mg_restart_name(mg_child_restart_policy(c))));
  int mx = mg_child_max_restarts(c);
  json_object_set_new(o, "max_restarts",
                      mx < 0 ? json_null() : json_integer(mx));
  double w = mg_child_warn_at(c);
  json_object_set_new(o, "warn_at", w > 0 && lim ? json_real(w) : json_null());
  json_object_set_new(o, "cgroup", cg ? json_string(cg) : json_null());
  return o;
}

static json_t *store_json(const char *name, const mg_store *s, int full) {
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "messages", mg__ctl_u64(st.message_count));
  json_object_set_new(o, "bytes", mg__ctl_u64(st.total_size_bytes));
  json_object_set_new(o, "tokens", mg__ctl_u64(st.total_tokens));
  json_object_set_new(o, "max_messages", mg__ctl_u64(st.max_messages));
  json_object_set_new(o, "max_bytes", mg__ctl_u64(st.max_total_size_bytes));
  json_object_set_new(o, "max_tokens",
                      st.max_tokens ? mg__ctl_u64(st.max_tokens) : json_null());
  json_object_set_new(o, "evicted", mg__ctl_u64(st.evicted_count));
  json_object_set_new(o, "rejected", mg__ctl_u64(st.rejected_count));
  if (!full)
    return o;
#define F_U(k, m) json_object_set_new(o, k, mg__ctl_u64(st.m))
#define F_D(k, m) json_object_set_new(o, k, json_real(st.m))
#define F_B(k, m) json_object_set_new(o, k, json_boolean(st.m))
  F_U("largest_message_bytes", largest_message_bytes);
  F_U("max_message_size_bytes", max_message_size_bytes);
  F_D("message_count_utilization", message_count_utilization);
  F_D("total_size_utilization", total_size_utilization);
  F_D("token_utilization", token_utilization);
  F_B("near_message_limit", near_message_limit);
  F_B("near_size_limit", near_size_limit);
  F_B("near_token_limit", near_token_limit);
  F_U("payload_bytes", payload_bytes);
  F_U("overhead_bytes", overhead_bytes);
  F_U("pinned_count", pinned_count);
  F_U("pinned_bytes", pinned_bytes);
  F_U("group_count", group_count);
  F_D("warn_at", warn_at);
  F_U("next_id", next_id);
  F_U("evicted_bytes", evicted_bytes);
  F_U("archived_count", archived_count);
  F_U("removed_count", removed_count);
  F_U("replaced_count", replaced_count);
#undef F_U
#undef F_D
#undef F_B
  return o;
}

static void add_store(const char *name, const mg_store *s, void *ud) {
  json_array_append_new(ud, store_json(name, s, 0));
}

json_t *mg__ctl_status(struct mg__rt_control *ctl, const mg__ctl_req *r,
                       mg__ctl_after *after) {
  (void)after;
  mg_runtime *rt = ctl->rt;
  json_t *o = mg__ctl_ok(r->id, 1);
  char wall[40];
  struct tm g;
  gmtime_r(&ctl->wall0, &g);
  strftime(wall, sizeof wall, "%Y-%m-%dT%H:%M:%SZ", &g);
  json_object_set_new(o, "pid", json_integer(getpid()));
  json_object_set_new(o, "version", json_string(MG_VERSION));
  json_object_set_new(o, "started", json_string(wall));
  json_object_set_new(o, "uptime_ms", mg__ctl_u64(mg__ctl_uptime_ms(ctl)));
  json_object_set_new(o, "shutting_down", json_boolean(rt->shut_down));
  size_t n = mg_sup_children(rt->sup, NULL, 0);
  mg_child **kids = calloc(n ? n : 1, sizeof *kids);
  json_t *ch = json_array();
  n = kids ? mg_sup_children(rt->sup, kids, n) : 0;
  for (size_t i = 0; i < n; i++)
    json_array_append_new(ch, child_json(kids[i]));
  free(kids);
  json_object_set_new(o, "children", ch);
  json_t *st = json_array();
  if (rt->env)
    mg_lua_store_each(rt->env, add_store, st);
  json_object_set_new(o, "stores", st);
  json_object_set_new(o, "lua_mem",
                      mg__ctl_u64(rt->env ? mg_lua_mem(rt->env, NULL) : 0));
  json_object_set_new(o, "lua_mem_max",
                      rt->opts.lua_mem_max_bytes
                          ? mg__ctl_u64(rt->opts.lua_mem_max_bytes)
                          : json_null());
  json_object_set_new(
      o, "callback_errors",
      mg__ctl_u64(rt->env ? mg_lua_callback_errors(rt->env) : 0));
  json_object_set_new(o, "subscribers", mg__ctl_u64(ctl->nsubs));
  return o;
}

json_t *mg__ctl_set_limit(struct mg__rt_control *ctl, const mg__ctl_req *r,
                          mg__ctl_after *after) {
  (void)after;
  const char *name;
  mg_child *c;
  json_t *e = mg__ctl_want_name(r, "name", "child", &name);
  if (e || (e = find_child(ctl, r, name, &c)))
    return e;
  json_t *sz = json_object_get(r->o, "size");
  char err[1024];
  uint64_t bytes;
  int rc;
  if (!sz)
    return mg__ctl_error(r->id, "EINVAL",
                         "set-limit needs \"size\": %s, or \"none\" (a "
                         "watched limit removed)",
                         MG_SIZE_ACCEPTED);
  if (json_is_string(sz) && strcmp(json_string_value(sz), "none") == 0) {
    bytes = MG_CHILD_NO_LIMIT;
  } else if (json_is_string(sz)) {
    const char *s = json_string_value(sz);
    uint64_t base = 0;
    if (strlen(s) != json_string_length(sz))
      return mg__ctl_error(r->id, "EPARSE",
                           "set-limit: invalid size (it holds a NUL byte); "
                           "accepted: %s",
                           MG_SIZE_ACCEPTED);
    if (strchr(s, '%')) {
      mg_effmem em;
      if (mg_effective_memory_read(&ctl->rt->opts.paths, &em, NULL, 0) == 0)
        base = em.total_bytes;
    }
    if ((rc = mg_size_parse(s, base, &bytes, err, sizeof err)) < 0)
      return mg__ctl_error(r->id, mg_err_name(rc), "set-limit: %s", err);
  } else if (json_is_integer(sz) && json_integer_value(sz) >= 0) {
    bytes = (uint64_t)json_integer_value(sz);
  } else if (json_is_real(sz)) {
    if ((rc = mg_size_from_double(json_real_value(sz), &bytes, err,
                                  sizeof err)) < 0)
      return mg__ctl_error(r->id, mg_err_name(rc), "set-limit: %s", err);
  } else {
    return mg__ctl_error(r->id, "EINVAL",
                         "set-limit: \"size\" must be a string or a "
                         "non-negative number (accepted: %s, or \"none\")",
                         MG_SIZE_ACCEPTED);
  }
  uint64_t before = mg_child_limit(c);
  if ((rc = mg_child_set_limit(c, bytes, err, sizeof err)) < 0)
    return mg__ctl_error(r->id, mg_err_name(rc), "set-limit %s: %s", name, err);
  uint64_t now = mg_child_limit(c);
  const char *w = mg_child_limit_warning(c);
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "limit", now ? mg__ctl_u64(now) : json_null());
  json_object_set_new(o, "previous",
                      before ? mg__ctl_u64(before) : json_null());
  if (w)
    json_object_set_new(o, "warning", json_string(w));
  json_t *ev = json_object();
  json_object_set_new(ev, "name", json_string(name));
  json_object_set_new(ev, "limit", now ? mg__ctl_u64(now) : json_null());
  json_object_set_new(ev, "previous",
                      before ? mg__ctl_u64(before) : json_null());
  mg__ctl_broadcast(ctl, "limit", ev);
  return o;
}

json_t *mg__ctl_stop(struct mg__rt_control *ctl, const mg__ctl_req *r,
                     mg__ctl_after *after) {
  (void)after;
  const char *name;
  mg_child *c;
  int64_t grace = 0;
  int given;
  json_t *e = mg__ctl_want_name(r, "name", "child", &name);
  if (e || (e = find_child(ctl, r, name, &c)) ||
      (e = mg__ctl_want_ms(r, "grace_ms", MG_SUP_GRACE_MS_MAX, &grace, &given)))
    return e;
  pid_t pid = mg_child_pid(c);
  int running = mg_child_running(c);
  uint64_t g = given ? (uint64_t)grace : mg_child_grace_ms(c);
  /* 0 means "the child's own grace" to mg_child_stop: a grace of 0 asked
   * for here is SIGKILL 1 ms after the SIGTERM. */
  int rc = mg_child_stop(c, g ? g : 1);
  if (rc < 0 && rc != -ESRCH)
    return mg__ctl_error(r->id, mg_err_name(rc), "stop %s: %s", name,
                         mg_strerror(rc));
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "pid", running ? json_integer(pid) : json_null());
  json_object_set_new(o, "grace_ms", mg__ctl_u64(g));
  /* between runs the pending restart is cancelled and the child closed */
  json_object_set_new(o, "state",
                      json_string(running ? "stopping" : "stopped"));
  return o;
}

json_t *mg__ctl_restart(struct mg__rt_control *ctl, const mg__ctl_req *r,
                        mg__ctl_after *after) {
  (void)after;
  const char *name;
  mg_child *c;
  int64_t grace = 0;
  int given, signum = SIGTERM;
  json_t *e = mg__ctl_want_name(r, "name", "child", &name);
  if (e || (e = find_child(ctl, r, name, &c)) ||
      (e = mg__ctl_want_ms(r, "grace_ms", MG_SUP_GRACE_MS_MAX, &grace, &given)))
    return e;
  json_t *sig = json_object_get(r->o, "signal");
  if (sig) {
    char err[512];
    if (!json_is_string(sig) ||
        mg_signal_parse(json_string_value(sig), &signum, err, sizeof err) < 0)
      return mg__ctl_error(r->id, "EINVAL",
                           "restart: \"signal\" must be a signal name "
                           "(accepted: %s)",
                           MG_SIGNAL_ACCEPTED);
  }
  if (!mg_child_running(c))
    return mg__ctl_error(r->id, "ESRCH",
                         "restart %s: it is not running (its restart is "
                         "already pending)",
                         name);
  if (mg_child_stopping(c))
    return mg__ctl_error(r->id, "EBUSY",
                         "restart %s: it is being stopped already", name);
  if (!mg_child_would_restart(c, 1)) {
    mg_restart p = mg_child_restart_policy(c);
    if (p == MG_RESTART_NO)
      return mg__ctl_error(
          r->id, "ENORESTART",
          "restart %s: it would not be restarted: its restart policy is "
          "\"no\" (mg.spawn's restart = \"on-failure\" or \"always\" "
          "restarts it; 'stop' ends it)",
          name);
    return mg__ctl_error(r->id, "ENORESTART",
                         "restart %s: it would not be restarted: its %d "
                         "restarts (max_restarts) are used up ('stop' ends "
                         "it)",
                         name, mg_child_max_restarts(c));
  }
  pid_t pid = mg_child_pid(c);
  uint64_t g = given ? (uint64_t)grace : mg_child_grace_ms(c);
  int rc = mg_child_kill(c, signum, g);
  if (rc < 0)
    return mg__ctl_error(r->id, mg_err_name(rc), "restart %s: %s", name,
                         mg_strerror(rc));
  const char *sn = mg_signal_name(signum);
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "pid", json_integer(pid));
  json_object_set_new(o, "signal", sn ? json_string(sn) : json_integer(signum));
  json_object_set_new(o, "grace_ms", mg__ctl_u64(g));
  json_object_set_new(o, "will_restart", json_true());
  return o;
}

json_t *mg__ctl_store_stats(struct mg__rt_control *ctl, const mg__ctl_req *r,
                            mg__ctl_after *after) {
  (void)after;
  const char *name;
  json_t *e = mg__ctl_want_name(r, "store", "store", &name);
  if (e)
    return e;
  mg_store *s;
  char err[512];
  int rc = ctl->rt->env
               ? mg_lua_store_find(ctl->rt->env, name, &s, err, sizeof err)
               : mg_errf(err, sizeof err, -ENOENT, "no policy runs");
  if (rc < 0)
    return mg__ctl_error(r->id, mg_err_name(rc), "store-stats: %s", err);
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "store", json_string(name));
  json_object_set_new(o, "stats", store_json(name, s, 1));
  mg_store_free(s);
  return o;
}
