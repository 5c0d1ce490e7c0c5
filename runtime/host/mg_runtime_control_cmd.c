/* mg_runtime_control_cmd.c — the control socket's requests (host layer;
 * jansson, the supervisor, the bindings through lua/mg_lua.h): one line
 * of JSON in, one response object out. Parsing is strict — one object,
 * known fields of the right types, a protocol version this mgrun speaks —
 * and every refusal says what was wrong and what is accepted. The
 * protocol is docs/operations.md's "Control socket".
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mg__control.h"

#define EXAMPLE "{\"v\":1,\"id\":1,\"cmd\":\"status\"}"

/* ------------------------------------------------------------ responses */

json_t *mg__ctl_ok(const json_t *id, int ok) {
  json_t *r = json_object();
  if (!r)
    return NULL;
  json_object_set_new(r, "v", json_integer(MG__CTL_PROTOCOL));
  json_object_set_new(r, "id", id ? json_deep_copy(id) : json_null());
  json_object_set_new(r, "ok", json_boolean(ok));
  return r;
}

/* Text as a JSON string: a message quoting the request or a policy's
 * error may hold bytes that are not UTF-8; those become '?'. */
json_t *mg__ctl_text(const char *s) {
  json_t *j = json_string(s);
  if (j)
    return j;
  char buf[2048];
  size_t i = 0;
  for (; s[i] && i + 1 < sizeof buf; i++)
    buf[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
  buf[i] = '\0';
  return json_string(buf);
}

json_t *mg__ctl_error(const json_t *id, const char *code, const char *fmt,
                      ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *r = mg__ctl_ok(id, 0);
  if (!r)
    return NULL;
  json_object_set_new(r, "error", mg__ctl_text(msg));
  json_object_set_new(r, "code", mg__ctl_text(code));
  return r;
}

json_t *mg__ctl_u64(uint64_t v) {
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* ------------------------------------------------------------ requests */

typedef struct cmd_def {
  const char *name;
  const char *const *fields; /* accepted besides v, id, cmd */
  json_t *(*run)(struct mg__rt_control *ctl, const mg__ctl_req *r,
                 mg__ctl_after *after);
  const char *usage; /* what it takes, for messages */
  int logged;        /* changes something: logged (control_command) */
} cmd_def;

/* Every field of the request is v, id, cmd or one of `fields`. */
static json_t *check_fields(const mg__ctl_req *r, const cmd_def *d) {
  const char *k;
  json_t *v;
  json_object_foreach(r->o, k, v) {
    if (!strcmp(k, "v") || !strcmp(k, "id") || !strcmp(k, "cmd"))
      continue;
    int known = 0;
    for (int i = 0; d->fields[i] && !known; i++)
      known = strcmp(d->fields[i], k) == 0;
    if (!known)
      return mg__ctl_error(r->id, "EINVAL",
                           "unknown field '%.64s' for %s (accepted: v, id, "
                           "cmd%s%s)",
                           k, d->name, d->usage[0] ? ", " : "", d->usage);
  }
  return NULL;
}

/* A required string field that names something (a child, a store). */
json_t *mg__ctl_want_name(const mg__ctl_req *r, const char *field,
                          const char *what, const char **out) {
  json_t *v = json_object_get(r->o, field);
  if (!v)
    return mg__ctl_error(r->id, "EINVAL", "%s needs \"%s\": the %s's name",
                         r->cmd, field, what);
  if (!json_is_string(v))
    return mg__ctl_error(r->id, "EINVAL",
                         "%s: \"%s\" must be a string (the %s's name)", r->cmd,
                         field, what);
  char err[256];
  if (mg_name_check(what, json_string_value(v), json_string_length(v), err,
                    sizeof err) < 0)
    return mg__ctl_error(r->id, "EINVAL", "%s: %s", r->cmd, err);
  *out = json_string_value(v);
  return NULL;
}

/* An optional integer field within lo..hi; *out untouched when absent. */
json_t *mg__ctl_want_ms(const mg__ctl_req *r, const char *field, int64_t hi,
                        int64_t *out, int *given) {
  json_t *v = json_object_get(r->o, field);
  *given = 0;
  if (!v || json_is_null(v))
    return NULL;
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) > hi)
    return mg__ctl_error(r->id, "EINVAL",
                         "%s: \"%s\" must be an integer from 0 to %lld "
                         "(milliseconds)",
                         r->cmd, field, (long long)hi);
  *out = json_integer_value(v);
  *given = 1;
  return NULL;
}

/* ------------------------------------------------------------ commands */

static void add_cmd_name(const char *name, void *ud) {
  json_array_append_new(ud, json_string(name));
}

static const cmd_def *cmd_table(size_t *n);

static json_t *c_hello(struct mg__rt_control *ctl, const mg__ctl_req *r,
                       mg__ctl_after *after) {
  (void)after;
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "server", json_string("mgrun"));
  json_object_set_new(o, "version", json_string(MG_VERSION));
  json_object_set_new(o, "protocol", json_integer(MG__CTL_PROTOCOL));
  json_object_set_new(o, "pid", json_integer(getpid()));
  json_object_set_new(o, "line_max", json_integer(MG__CTL_LINE_MAX));
  json_t *cmds = json_array(), *pol = json_array();
  size_t n;
  const cmd_def *t = cmd_table(&n);
  for (size_t i = 0; i < n; i++)
    json_array_append_new(cmds, json_string(t[i].name));
  if (ctl->rt->env)
    mg_lua_control_each(ctl->rt->env, add_cmd_name, pol);
  json_object_set_new(o, "commands", cmds);
  json_object_set_new(o, "policy_commands", pol);
  return o;
}

static json_t *policy_result(struct mg__rt_control *ctl, const mg__ctl_req *r,
                             int rc, json_t *result, const char *code,
                             const char *err) {
  if (rc < 0)
    return mg__ctl_error(r->id, code, "%s", err);
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "result", result ? result : json_null());
  if (rc == 1) /* it called mg.exit */
    json_object_set_new(o, "exiting", json_true());
  (void)ctl;
  return o;
}

static json_t *c_reload(struct mg__rt_control *ctl, const mg__ctl_req *r,
                        mg__ctl_after *after) {
  (void)after;
  char code[32] = "EPOLICY", err[1024];
  json_t *result = NULL;
  uint64_t t0 = uv_hrtime();
  int rc = ctl->rt->env ? mg_lua_reload(ctl->rt->env, &result, code,
                                        sizeof code, err, sizeof err)
                        : mg_errf(err, sizeof err, -ENOENT, "no policy runs");
  uint64_t took = (uv_hrtime() - t0) / 1000000;
  json_t *ev = json_object();
  json_object_set_new(ev, "ok", json_boolean(rc >= 0));
  if (rc < 0)
    json_object_set_new(ev, "error", mg__ctl_text(err));
  mg__ctl_broadcast(ctl, "reload", ev);
  json_t *o = policy_result(ctl, r, rc, result, code, err);
  if (rc >= 0) {
    json_object_set_new(o, "reloaded", json_true());
    json_object_set_new(o, "took_ms", mg__ctl_u64(took));
  }
  return o;
}

static json_t *c_subscribe(struct mg__rt_control *ctl, const mg__ctl_req *r,
                           mg__ctl_after *after) {
  json_t *s = json_object_get(r->o, "samples");
  if (s && !json_is_boolean(s))
    return mg__ctl_error(r->id, "EINVAL",
                         "subscribe: \"samples\" must be true or false");
  after->subscribe = 1;
  after->samples = s && json_is_true(s);
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "subscribed", json_true());
  json_object_set_new(o, "samples", json_boolean(after->samples));
  json_object_set_new(o, "queue_max", json_integer(MG__CTL_SUB_MAX));
  (void)ctl;
  return o;
}

static json_t *c_health(struct mg__rt_control *ctl, const mg__ctl_req *r,
                        mg__ctl_after *after) {
  (void)after;
  json_t *problems = json_array();
  int healthy = mg__ctl_health(ctl, problems);
  json_t *o = mg__ctl_ok(r->id, 1);
  json_object_set_new(o, "healthy", json_boolean(healthy));
  json_object_set_new(o, "problems", problems);
  return o;
}

static const char *const f_none[] = {NULL};
static const char *const f_set_limit[] = {"name", "size", NULL};
static const char *const f_stop[] = {"name", "grace_ms", NULL};
static const char *const f_restart[] = {"name", "grace_ms", "signal", NULL};
static const char *const f_store[] = {"store", NULL};
static const char *const f_subscribe[] = {"samples", NULL};
static const char *const f_policy[] = {"args", NULL};

static const cmd_def commands[] = {
    {"hello", f_none, c_hello, "", 0},
    {"status", f_none, mg__ctl_status, "", 0},
    {"set-limit", f_set_limit, mg__ctl_set_limit, "name, size", 1},
    {"stop", f_stop, mg__ctl_stop, "name, grace_ms", 1},
    {"restart", f_restart, mg__ctl_restart, "name, grace_ms, signal", 1},
    {"store-stats", f_store, mg__ctl_store_stats, "store", 0},
    {"reload", f_none, c_reload, "", 1},
    {"subscribe", f_subscribe, c_subscribe, "samples", 0},
    {"health", f_none, c_health, "", 0},
};

static const cmd_def *cmd_table(size_t *n) {
  *n = sizeof commands / sizeof commands[0];
  return commands;
}

/* A command of the policy (mg.on_control): "args" an object or an array
 * (absent: an empty table). */
static json_t *run_policy(struct mg__rt_control *ctl, const mg__ctl_req *r) {
  static const cmd_def d = {"a policy's command", f_policy, NULL, "args", 1};
  json_t *e = check_fields(r, &d);
  if (e)
    return e;
  json_t *args = json_object_get(r->o, "args");
  if (args && !json_is_object(args) && !json_is_array(args))
    return mg__ctl_error(r->id, "EINVAL",
                         "%s: \"args\" must be an object or an array (the "
                         "table its function gets)",
                         r->cmd);
  char code[32] = "EPOLICY", err[1024];
  json_t *result = NULL;
  int rc = mg_lua_control_call(ctl->rt->env, r->cmd, args, &result, code,
                               sizeof code, err, sizeof err);
  return policy_result(ctl, r, rc, result, code, err);
}

/* ------------------------------------------------------------ dispatch */

/* A request that changes something, as it went: who asked, for what. */
static json_t *logged(struct mg__rt_control *ctl, const mg__ctl_req *r,
                      json_t *resp) {
  json_t *name = json_object_get(r->o, "name");
  json_t *ok = json_object_get(resp, "ok");
  json_t *err = json_object_get(resp, "error");
  mg_log_field f[] = {
      MG_LF_STR("cmd", r->cmd),
      MG_LF_STR("name", json_is_string(name) ? json_string_value(name) : ""),
      MG_LF_BOOL("ok", json_is_true(ok)),
      MG_LF_INT("uid", (int64_t)ctl->peer_uid),
      MG_LF_INT("pid", (int64_t)ctl->peer_pid),
      MG_LF_STR("error", json_is_string(err) ? json_string_value(err) : ""),
  };
  mg_log(ctl->rt->opts.logger, json_is_true(ok) ? MG_LOG_INFO : MG_LOG_WARN,
         "control_command", f, json_is_true(ok) ? 5 : 6);
  return resp;
}

static json_t *handle(struct mg__rt_control *ctl, json_t *o,
                      mg__ctl_after *after) {
  mg__ctl_req r = {NULL, NULL, o};
  json_t *id = json_object_get(o, "id");
  if (id && (json_is_object(id) || json_is_array(id)))
    return after->bad = 1,
           mg__ctl_error(NULL, "EINVAL",
                         "\"id\" must be a string, a number or null (it is "
                         "sent back as it came)");
  r.id = id;
  json_t *v = json_object_get(o, "v");
  if (v && !json_is_integer(v))
    return after->bad = 1,
           mg__ctl_error(r.id, "EPROTO",
                         "\"v\" must be the protocol version, an integer "
                         "(this mgrun speaks %d)",
                         MG__CTL_PROTOCOL);
  if (v && json_integer_value(v) != MG__CTL_PROTOCOL)
    return after->bad = 1,
           mg__ctl_error(r.id, "EPROTO",
                         "protocol version %lld is not supported (this "
                         "mgrun speaks %d)",
                         (long long)json_integer_value(v), MG__CTL_PROTOCOL);
  json_t *cmd = json_object_get(o, "cmd");
  if (!cmd || !json_is_string(cmd) || json_string_length(cmd) == 0 ||
      strlen(json_string_value(cmd)) != json_string_length(cmd))
    return after->bad = 1,
           mg__ctl_error(r.id, "EINVAL",
                         "a request needs \"cmd\", a command name (e.g. "
                         "%s); see 'hello' for the commands",
                         EXAMPLE);
  r.cmd = json_string_value(cmd);
  size_t n;
  const cmd_def *t = cmd_table(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(t[i].name, r.cmd) == 0) {
      json_t *e = check_fields(&r, &t[i]);
      if (e)
        return after->bad = 1, e;
      json_t *resp = t[i].run(ctl, &r, after);
      return t[i].logged && resp ? logged(ctl, &r, resp) : resp;
    }
  if (ctl->rt->env && !mg_lua_control_builtin(r.cmd) &&
      mg_lua_control_has(ctl->rt->env, r.cmd)) {
    json_t *resp = run_policy(ctl, &r);
    return resp ? logged(ctl, &r, resp) : resp;
  }
  after->bad = 1;
  return mg__ctl_error(r.id, "ENOENT",
                       "unknown command '%.64s' (built-in: hello, status, "
                       "set-limit, stop, restart, store-stats, reload, "
                       "subscribe, health; the policy's: see 'hello')",
                       r.cmd);
}

json_t *mg__ctl_handle(struct mg__rt_control *ctl, const char *line, size_t len,
                       mg__ctl_after *after) {
  memset(after, 0, sizeof *after);
  json_error_t je;
  json_t *o =
      json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!o) {
    after->bad = 1;
    return mg__ctl_error(NULL, "EPARSE",
                         "malformed request: %s (at byte %d); accepted: one "
                         "JSON object per line, e.g. %s",
                         je.text, je.position, EXAMPLE);
  }
  json_t *resp;
  if (!json_is_object(o)) {
    after->bad = 1;
    resp = mg__ctl_error(NULL, "EINVAL",
                         "a request is a JSON object, got %s (e.g. %s)",
                         json_is_array(o)    ? "an array"
                         : json_is_string(o) ? "a string"
                         : json_is_number(o) ? "a number"
                                             : "a literal",
                         EXAMPLE);
  } else {
    resp = handle(ctl, o, after);
  }
  json_decref(o);
  return resp;
}
