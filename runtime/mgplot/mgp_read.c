/* mgp_read.c — read a timeline (`mgrun --timeline`'s JSON lines, format in
 * runtime/host/mg_runtime_timeline.c) into mgrun-plot's model: per child
 * its samples (cut into runs at each exit, restart or new pid), its limit
 * and warn line as steps, its events; per store its bytes and messages and
 * its evictions. Lines are parsed with jansson; a line that is not JSON or
 * lacks a field the drawing needs is skipped with the reason, a line of a
 * type that is not drawn is ignored.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mgp.h"

#define MGP_NAME_MAX 200

enum { READ_USED = 1, READ_IGNORED = 0, READ_SKIP = -1, READ_NOMEM = -2 };

void mgp_run_init(mgp_run *r) {
  memset(r, 0, sizeof *r);
  r->t_min = INFINITY;
  r->t_max = -INFINITY;
}

void mgp_run_free(mgp_run *r) {
  for (size_t i = 0; i < r->nc; i++) {
    free(r->c[i].name);
    free(r->c[i].s);
    free(r->c[i].ev);
    free(r->c[i].steps);
  }
  for (size_t i = 0; i < r->nst; i++) {
    free(r->st[i].name);
    free(r->st[i].p);
    free(r->st[i].ev);
  }
  free(r->c);
  free(r->st);
  mgp_run_init(r);
}

/* Room for one more element of `size` bytes in *arr (n used of *cap). */
static int grow(void *arr, size_t *cap, size_t n, size_t size) {
  void **p = arr;
  if (n < *cap)
    return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  void *q = realloc(*p, nc * size);
  if (!q)
    return -1;
  *p = q;
  *cap = nc;
  return 0;
}

__attribute__((format(printf, 3, 4))) static int skip(char *why, size_t len,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, len, fmt, ap);
  va_end(ap);
  return READ_SKIP;
}

/* A field that names a child or a store: a non-empty string. */
static const char *get_name(json_t *o, const char *key, const char *type,
                            char *why, size_t len) {
  json_t *v = json_object_get(o, key);
  const char *s = json_is_string(v) ? json_string_value(v) : NULL;
  if (!s || !s[0]) {
    skip(why, len, "a %s line without a string \"%s\"", type, key);
    return NULL;
  }
  if (strlen(s) > MGP_NAME_MAX) {
    skip(why, len, "a %s line whose \"%s\" is longer than %d bytes", type, key,
         MGP_NAME_MAX);
    return NULL;
  }
  return s;
}

/* An optional size or count: 1 and *out when a non-negative number, 0 when
 * absent (*out untouched) or null (*out = NAN), -1 when of another kind. */
static int get_size(json_t *o, const char *key, double *out) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return 0;
  if (json_is_null(v)) {
    *out = NAN;
    return 0;
  }
  if (!json_is_number(v) || json_number_value(v) < 0)
    return -1;
  *out = json_number_value(v);
  return 1;
}

/* A size the line must have. */
static int need_size(json_t *o, const char *key, const char *type, double *out,
                     char *why, size_t len) {
  double v = NAN;
  *out = NAN; /* (never read on a skip; said for the optimiser) */
  if (get_size(o, key, &v) != 1)
    return skip(
        why, len, "a %s line whose \"%s\" is not a non-negative number (%s)",
        type, key, json_object_get(o, key) ? "it has another kind" : "missing");
  *out = v;
  return 0;
}

static long long get_int(json_t *o, const char *key, long long dflt) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static int same(double a, double b) {
  return (isnan(a) && isnan(b)) || a == b;
}

static mgp_child *child_of(mgp_run *r, const char *name, int *nomem) {
  for (size_t i = 0; i < r->nc; i++)
    if (strcmp(r->c[i].name, name) == 0)
      return &r->c[i];
  if (grow(&r->c, &r->cc, r->nc, sizeof *r->c) < 0) {
    *nomem = 1;
    return NULL;
  }
  mgp_child *c = &r->c[r->nc];
  memset(c, 0, sizeof *c);
  c->name = strdup(name);
  if (!c->name) {
    *nomem = 1;
    return NULL;
  }
  c->limit = c->warn_at = NAN;
  c->pid = -1;
  c->t_first = INFINITY;
  c->t_last = -INFINITY;
  r->nc++;
  return c;
}

static mgp_store *store_of(mgp_run *r, const char *name, int *nomem) {
  for (size_t i = 0; i < r->nst; i++)
    if (strcmp(r->st[i].name, name) == 0)
      return &r->st[i];
  if (grow(&r->st, &r->cst, r->nst, sizeof *r->st) < 0) {
    *nomem = 1;
    return NULL;
  }
  mgp_store *s = &r->st[r->nst];
  memset(s, 0, sizeof *s);
  s->name = strdup(name);
  if (!s->name) {
    *nomem = 1;
    return NULL;
  }
  s->max_bytes = s->max_messages = NAN;
  r->nst++;
  return s;
}

static int add_event(mgp_event **ev, size_t *n, size_t *cap, double t,
                     mgp_ev_kind kind, double value, const char *label) {
  if (grow(ev, cap, *n, sizeof **ev) < 0)
    return READ_NOMEM;
  mgp_event *e = &(*ev)[(*n)++];
  e->t = t;
  e->kind = kind;
  e->value = value;
  snprintf(e->label, sizeof e->label, "%s", label ? label : "");
  return READ_USED;
}

/* The limit and warn line change at t (or start there). */
static int set_limit(mgp_child *c, double t, double limit, double warn_at) {
  double warn = isnan(limit) || isnan(warn_at) ? NAN : limit * warn_at;
  c->limit = limit;
  c->warn_at = warn_at;
  if (c->nsteps && same(c->steps[c->nsteps - 1].limit, limit) &&
      same(c->steps[c->nsteps - 1].warn, warn))
    return READ_USED;
  if (c->nsteps && c->steps[c->nsteps - 1].t == t)
    c->nsteps--; /* two changes at one moment: the later one holds */
  else if (grow(&c->steps, &c->csteps, c->nsteps, sizeof *c->steps) < 0)
    return READ_NOMEM;
  c->steps[c->nsteps++] = (mgp_step){t, limit, warn};
  return READ_USED;
}

static int read_child_line(mgp_run *r, json_t *o, const char *type, double t,
                           char *why, size_t len) {
  const char *name = get_name(o, "name", type, why, len);
  if (!name)
    return READ_SKIP;
  double used = NAN, v = NAN;
  int nomem = 0;
  /* the fields first: a skipped line adds no child */
  if (strcmp(type, "sample") == 0 &&
      need_size(o, "used", type, &used, why, len) < 0)
    return READ_SKIP;
  mgp_child *c = child_of(r, name, &nomem);
  if (!c)
    return READ_NOMEM;
  if (t < c->t_first)
    c->t_first = t;
  if (t > c->t_last)
    c->t_last = t;

  if (strcmp(type, "sample") == 0) {
    double limit = c->limit;
    get_size(o, "limit", &limit); /* absent: as before; null: none */
    long long pid = get_int(o, "pid", -1);
    if (pid >= 0 && c->pid >= 0 && pid != c->pid)
      c->broken = 1; /* another process: its exit line is missing */
    if (!same(limit, c->limit) && set_limit(c, t, limit, c->warn_at) < 0)
      return READ_NOMEM;
    if (grow(&c->s, &c->cs, c->ns, sizeof *c->s) < 0)
      return READ_NOMEM;
    c->s[c->ns] = (mgp_sample){t, used, limit, c->ns == 0 || c->broken};
    c->ns++;
    c->run_ns++;
    c->broken = 0;
    if (pid >= 0)
      c->pid = pid;
    if (used > c->peak)
      c->peak = used;
    return READ_USED;
  }
  if (strcmp(type, "child_started") == 0) {
    double limit = c->limit, warn_at = c->warn_at;
    get_size(o, "limit", &limit);
    get_size(o, "warn_at", &warn_at);
    if (c->ns)
      c->broken = 1;
    c->final_exit = 0;
    c->run_ns = 0;
    c->pid = get_int(o, "pid", -1);
    long long rs = get_int(o, "restarts", -1);
    if (rs > c->restarts)
      c->restarts = (int)rs;
    json_t *en = json_object_get(o, "enforce");
    if (json_is_string(en))
      snprintf(c->enforce, sizeof c->enforce, "%s", json_string_value(en));
    return set_limit(c, t, limit, warn_at);
  }
  char label[48] = "";
  mgp_ev_kind kind;
  if (strcmp(type, "warn") == 0) {
    kind = MGP_EV_WARN;
    get_size(o, "used", &v);
  } else if (strcmp(type, "threshold") == 0) {
    kind = MGP_EV_THRESHOLD;
    get_size(o, "usage", &v);
  } else if (strcmp(type, "oom_kill") == 0) {
    kind = MGP_EV_OOM;
    v = c->limit; /* the kernel's OOM killer acts at the limit */
  } else if (strcmp(type, "kill") == 0) {
    kind = MGP_EV_KILL;
    json_t *sn = json_object_get(o, "signame");
    long long sig = get_int(o, "signal", -1);
    if (json_is_string(sn))
      snprintf(label, sizeof label, "%s", json_string_value(sn));
    else if (sig >= 0)
      snprintf(label, sizeof label, "signal %lld", sig);
  } else if (strcmp(type, "child_exited") == 0) {
    kind = MGP_EV_EXIT;
    json_t *rs = json_object_get(o, "reason");
    const char *reason = json_is_string(rs) ? json_string_value(rs) : "exit";
    long long code = get_int(o, "code", -1), sig = get_int(o, "signal", -1);
    if (strcmp(reason, "exit") == 0 && code >= 0)
      snprintf(label, sizeof label, "exit %lld", code);
    else if (strcmp(reason, "signal") == 0 && sig > 0)
      snprintf(label, sizeof label, "signal %lld", sig);
    else
      snprintf(label, sizeof label, "%.40s", reason);
    double peak = 0;
    if (get_size(o, "peak", &peak) == 1) {
      if (peak > c->peak)
        c->peak = peak;
      if (!c->run_ns)
        v = peak; /* a run without samples: its mark at its peak */
    }
    c->broken = 1;
    c->final_exit = !json_is_true(json_object_get(o, "will_restart"));
  } else if (strcmp(type, "restart") == 0) {
    kind = MGP_EV_RESTART;
    long long n = get_int(o, "restarts", -1);
    if (n > c->restarts)
      c->restarts = (int)n;
    if (n >= 0)
      snprintf(label, sizeof label, "restart %lld", n);
    else
      snprintf(label, sizeof label, "restart");
    c->broken = 1;
    c->final_exit = 0;
  } else { /* pressure */
    kind = MGP_EV_PRESSURE;
    json_t *k = json_object_get(o, "kind"), *lv = json_object_get(o, "level");
    if (json_is_string(k))
      snprintf(label, sizeof label, "%s", json_string_value(k));
    else if (json_is_string(lv))
      snprintf(label, sizeof label, "%s", json_string_value(lv));
  }
  if (isnan(v) && kind != MGP_EV_RESTART && kind != MGP_EV_PRESSURE)
    /* at the last sample of this run (a kill right after a restart is not
     * at the memory of the run before), else at 0 */
    v = c->run_ns ? c->s[c->ns - 1].used : 0;
  return add_event(&c->ev, &c->nev, &c->cev, t, kind, v, label);
}

static int read_store_line(mgp_run *r, json_t *o, const char *type, double t,
                           char *why, size_t len) {
  const char *name = get_name(o, "store", type, why, len);
  if (!name)
    return READ_SKIP;
  int nomem = 0;
  char label[48];
  if (strcmp(type, "evict") == 0) {
    double count = NAN;
    if (need_size(o, "count", type, &count, why, len) < 0)
      return READ_SKIP;
    mgp_store *s = store_of(r, name, &nomem);
    if (!s)
      return READ_NOMEM;
    snprintf(label, sizeof label, "\xe2\x88\x92%.0f", count); /* −N */
    return add_event(&s->ev, &s->nev, &s->cev, t, MGP_EV_EVICT,
                     s->np ? s->p[s->np - 1].bytes : NAN, label);
  }
  double bytes = NAN, messages = NAN, mb = NAN, mm = NAN, evicted = 0;
  if (need_size(o, "bytes", type, &bytes, why, len) < 0 ||
      need_size(o, "messages", type, &messages, why, len) < 0)
    return READ_SKIP;
  mgp_store *s = store_of(r, name, &nomem);
  if (!s)
    return READ_NOMEM;
  if (get_size(o, "max_bytes", &mb) == 1)
    s->max_bytes = mb > 0 ? mb : NAN; /* 0: no limit */
  if (get_size(o, "max_messages", &mm) == 1)
    s->max_messages = mm > 0 ? mm : NAN;
  get_size(o, "evicted", &evicted);
  if (grow(&s->p, &s->cp, s->np, sizeof *s->p) < 0)
    return READ_NOMEM;
  s->p[s->np++] = (mgp_store_pt){t, bytes, messages};
  /* The recorder writes evict lines from the second store line on: what
   * the first one counts was evicted before it. */
  if (s->np == 1 && evicted > 0) {
    snprintf(label, sizeof label, "\xe2\x88\x92%.0f", evicted);
    if (add_event(&s->ev, &s->nev, &s->cev, t, MGP_EV_EVICT, bytes, label) < 0)
      return READ_NOMEM;
  }
  s->evicted = evicted;
  return READ_USED;
}

int mgp_read_line(mgp_run *r, const char *line, size_t len, char *why,
                  size_t why_len) {
  json_error_t je;
  json_t *o = json_loadb(line, len, 0, &je);
  if (!o)
    return skip(why, why_len, "not JSON (%s, column %d)", je.text, je.column);
  int rc;
  json_t *tv = json_object_get(o, "t_ms"), *ty = json_object_get(o, "type");
  if (!json_is_object(o))
    rc = skip(why, why_len, "not a JSON object");
  else if (!json_is_number(tv))
    rc = skip(why, why_len, "no number \"t_ms\"");
  else if (!json_is_string(ty))
    rc = skip(why, why_len, "no string \"type\"");
  else {
    const char *type = json_string_value(ty);
    double t = json_number_value(tv) / 1000;
    if (strcmp(type, "sample") == 0 || strcmp(type, "child_started") == 0 ||
        strcmp(type, "warn") == 0 || strcmp(type, "threshold") == 0 ||
        strcmp(type, "oom_kill") == 0 || strcmp(type, "kill") == 0 ||
        strcmp(type, "child_exited") == 0 || strcmp(type, "restart") == 0 ||
        strcmp(type, "pressure") == 0)
      rc = read_child_line(r, o, type, t, why, why_len);
    else if (strcmp(type, "store") == 0 || strcmp(type, "evict") == 0)
      rc = read_store_line(r, o, type, t, why, why_len);
    else if (strcmp(type, "start") == 0) {
      json_t *w = json_object_get(o, "wall");
      if (json_is_string(w))
        snprintf(r->wall, sizeof r->wall, "%s", json_string_value(w));
      rc = READ_USED;
    } else if (strcmp(type, "end") == 0) {
      r->has_end = 1;
      rc = READ_USED;
    } else
      rc = READ_IGNORED; /* a type of a later mgrun, or not drawn */
    if (rc == READ_USED) {
      if (t < r->t_min)
        r->t_min = t;
      if (t > r->t_max)
        r->t_max = t;
    }
  }
  json_decref(o);
  return rc;
}

int mgp_read_file(mgp_run *r, FILE *f, char *err, size_t err_len) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long lineno = 0;
  int rc = 0;
  errno = 0;
  while ((n = getline(&line, &cap, f)) >= 0) {
    lineno++;
    int unterminated = n == 0 || line[n - 1] != '\n';
    size_t len = (size_t)n;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                   line[len - 1] == ' ' || line[len - 1] == '\t'))
      len--;
    size_t lead = 0;
    while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
      lead++;
    if (lead == len)
      continue;
    r->lines++;
    char why[160] = "";
    int got = mgp_read_line(r, line + lead, len - lead, why, sizeof why);
    if (got == READ_NOMEM) {
      snprintf(err, err_len, "out of memory at line %ld", lineno);
      rc = -1;
      break;
    }
    if (got == READ_USED)
      r->used++;
    else if (got == READ_IGNORED)
      r->ignored++;
    else {
      if (r->skipped < MGP_SKIP_NOTES)
        snprintf(r->skip_note[r->skipped], sizeof r->skip_note[0],
                 "line %ld: %s%s", lineno, why,
                 unterminated ? " (the last line, cut short: no newline)" : "");
      r->skipped++;
    }
    errno = 0;
  }
  if (rc == 0 && ferror(f)) {
    snprintf(err, err_len, "read failed after line %ld: %s", lineno,
             strerror(errno ? errno : EIO));
    rc = -1;
  }
  free(line);
  return rc;
}

int mgp_plottable(const mgp_run *r) {
  if (r->nc)
    return 1;
  for (size_t i = 0; i < r->nst; i++)
    if (r->st[i].np)
      return 1;
  return 0;
}
