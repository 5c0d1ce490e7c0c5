/* ctl_print.c — `mgrun ctl`'s output for people: the status table (sizes
 * by mg_size_format), one line per event, a store's figures, the other
 * answers (mgrun CLI layer; jansson, the core's sizes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "mg/mg_size.h"

static const char *str(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static int has_num(const json_t *o, const char *k) {
  return json_is_number(json_object_get(o, k));
}

static uint64_t num(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  double d = json_number_value(v);
  return d > 0 ? (uint64_t)d : 0;
}

/* A size field: "12.00 MiB", or "-" when null. */
static const char *size_of(const json_t *o, const char *k, char *buf,
                           size_t len) {
  if (!has_num(o, k))
    return "-";
  return mg_size_format(num(o, k), buf, len);
}

static void print_duration(uint64_t ms) {
  uint64_t s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;
  if (d)
    printf("%llud %02lluh", (unsigned long long)d,
           (unsigned long long)(h % 24));
  else if (h)
    printf("%lluh %02llum", (unsigned long long)h,
           (unsigned long long)(m % 60));
  else if (m)
    printf("%llum %02llus", (unsigned long long)m,
           (unsigned long long)(s % 60));
  else
    printf("%llu.%01llus", (unsigned long long)s,
           (unsigned long long)(ms % 1000 / 100));
}

static void print_status(const json_t *o) {
  printf("mgrun %s  pid %llu  up ", str(o, "version") ? str(o, "version") : "?",
         (unsigned long long)num(o, "pid"));
  print_duration(num(o, "uptime_ms"));
  if (json_is_true(json_object_get(o, "shutting_down")))
    printf("  (shutting down)");
  printf("\n");
  const json_t *kids = json_object_get(o, "children");
  size_t i, w = 4;
  const json_t *k;
  json_array_foreach(kids, i, k) {
    const char *n = str(k, "name");
    if (n && strlen(n) > w)
      w = strlen(n);
  }
  if (json_array_size(kids) == 0) {
    printf("no children\n");
  } else {
    printf("%-*s  %-10s %-8s %-7s %12s %12s %12s %5s %8s\n", (int)w, "NAME",
           "STATE", "PID", "ENFORCE", "USAGE", "LIMIT", "PEAK", "USE%",
           "RESTARTS");
    json_array_foreach(kids, i, k) {
      char u[32], l[32], p[32], pid[24] = "-", pct[16] = "-";
      if (has_num(k, "pid"))
        snprintf(pid, sizeof pid, "%llu", (unsigned long long)num(k, "pid"));
      if (has_num(k, "fraction"))
        snprintf(pct, sizeof pct, "%.0f",
                 json_number_value(json_object_get(k, "fraction")) * 100);
      printf("%-*s  %-10s %-8s %-7s %12s %12s %12s %5s %8llu\n", (int)w,
             str(k, "name") ? str(k, "name") : "?",
             str(k, "state") ? str(k, "state") : "?", pid,
             str(k, "enforce") ? str(k, "enforce") : "?",
             size_of(k, "usage", u, sizeof u), size_of(k, "limit", l, sizeof l),
             size_of(k, "peak", p, sizeof p), pct,
             (unsigned long long)num(k, "restarts"));
    }
    json_array_foreach(kids, i, k) { /* GPU memory, where NVML reports it */
      char g[32], gl[32];
      if (!has_num(k, "gpu"))
        continue;
      printf("%-*s  gpu %s of %s\n", (int)w,
             str(k, "name") ? str(k, "name") : "?",
             size_of(k, "gpu", g, sizeof g),
             has_num(k, "gpu_limit") ? size_of(k, "gpu_limit", gl, sizeof gl)
                                     : "no gpu_limit");
    }
  }
  const json_t *stores = json_object_get(o, "stores");
  if (json_array_size(stores) == 0)
    return;
  w = 5;
  json_array_foreach(stores, i, k) {
    const char *n = str(k, "name");
    if (n && strlen(n) > w)
      w = strlen(n);
  }
  printf("%-*s  %15s %25s %10s %8s\n", (int)w, "STORE", "MESSAGES", "BYTES",
         "TOKENS", "EVICTED");
  json_array_foreach(stores, i, k) {
    char msgs[48], bytes[80], b[32], m[32];
    snprintf(msgs, sizeof msgs, "%llu / %llu",
             (unsigned long long)num(k, "messages"),
             (unsigned long long)num(k, "max_messages"));
    snprintf(bytes, sizeof bytes, "%s / %s", size_of(k, "bytes", b, sizeof b),
             size_of(k, "max_bytes", m, sizeof m));
    printf("%-*s  %15s %25s %10llu %8llu\n", (int)w,
           str(k, "name") ? str(k, "name") : "?", msgs, bytes,
           (unsigned long long)num(k, "tokens"),
           (unsigned long long)num(k, "evicted"));
  }
}

/* Does a field name a size in bytes? */
static int is_size_key(const char *k) {
  static const char *const keys[] = {"used",      "limit", "previous", "peak",
                                     "rss",       "level", "usage",    "bytes",
                                     "max_bytes", NULL};
  size_t n = strlen(k);
  if (n > 6 && strcmp(k + n - 6, "_bytes") == 0)
    return 1;
  for (int i = 0; keys[i]; i++)
    if (strcmp(keys[i], k) == 0)
      return 1;
  return 0;
}

/* key=value for each field but those listed in `skip`. */
static void print_fields(const json_t *o, const char *const *skip) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    int skipped = 0;
    for (int i = 0; skip[i] && !skipped; i++)
      skipped = strcmp(skip[i], k) == 0;
    if (skipped || json_is_null(v))
      continue;
    char buf[32];
    if (json_is_integer(v) && is_size_key(k))
      printf(" %s=%s", k,
             mg_size_format((uint64_t)json_integer_value(v), buf, sizeof buf));
    else if (json_is_string(v))
      printf(strpbrk(json_string_value(v), " \t\"") ? " %s=\"%s\"" : " %s=%s",
             k, json_string_value(v));
    else {
      char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
                                  JSON_REAL_PRECISION(6));
      printf(" %s=%s", k, t ? t : "?");
      free(t);
    }
  }
}

void mg_ctl_print_event(const json_t *o) {
  static const char *const skip[] = {"v", "event", "t_ms", "name", NULL};
  const char *name = str(o, "name");
  printf("%10.3fs %-9s %s", json_number_value(json_object_get(o, "t_ms")) / 1e3,
         str(o, "event") ? str(o, "event") : "?", name ? name : "-");
  print_fields(o, skip);
  printf("\n");
  fflush(stdout);
}

static void print_stats(const json_t *o) {
  const json_t *st = json_object_get(o, "stats");
  const char *k;
  json_t *v;
  printf("store %s\n", str(o, "store") ? str(o, "store") : "?");
  json_object_foreach((json_t *)st, k, v) {
    if (!strcmp(k, "name"))
      continue;
    char buf[32];
    if (json_is_integer(v) && is_size_key(k))
      printf("  %-26s %s (%lld)\n", k,
             mg_size_format((uint64_t)json_integer_value(v), buf, sizeof buf),
             (long long)json_integer_value(v));
    else {
      char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
      printf("  %-26s %s\n", k, t ? t : "?");
      free(t);
    }
  }
}

static void print_value(const json_t *v) {
  if (json_is_string(v)) {
    printf("%s\n", json_string_value(v));
  } else if (!json_is_null(v)) {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_INDENT(2) |
                                JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    printf("%s\n", t ? t : "?");
    free(t);
  }
}

static void print_list(const char *label, const json_t *a) {
  size_t i;
  const json_t *v;
  printf("%s:", label);
  if (json_array_size(a) == 0)
    printf(" (none)");
  json_array_foreach(a, i, v)
      printf("%s %s", i ? "," : "", json_string_value(v));
  printf("\n");
}

void mg_ctl_print_answer(const char *cmd, const json_t *o) {
  char a[32], b[32];
  const char *name = str(o, "name");
  if (!strcmp(cmd, "status")) {
    print_status(o);
  } else if (!strcmp(cmd, "set-limit")) {
    printf("%s: limit %s (was %s)\n", name, size_of(o, "limit", a, sizeof a),
           size_of(o, "previous", b, sizeof b));
    if (str(o, "warning"))
      printf("warning: %s\n", str(o, "warning"));
  } else if (!strcmp(cmd, "stop")) {
    if (!strcmp(str(o, "state") ? str(o, "state") : "", "stopped"))
      printf("%s: stopped (its pending restart cancelled)\n", name);
    else if (num(o, "grace_ms"))
      printf("%s: stopping (pid %llu: SIGTERM, SIGKILL after %llu ms)\n", name,
             (unsigned long long)num(o, "pid"),
             (unsigned long long)num(o, "grace_ms"));
    else
      printf("%s: stopping (pid %llu: SIGTERM, then SIGKILL at once)\n", name,
             (unsigned long long)num(o, "pid"));
  } else if (!strcmp(cmd, "restart")) {
    printf("%s: restarting (pid %llu: SIG%s, SIGKILL after %llu ms; its "
           "restart policy starts it again)\n",
           name, (unsigned long long)num(o, "pid"),
           str(o, "signal") ? str(o, "signal") : "?",
           (unsigned long long)num(o, "grace_ms"));
  } else if (!strcmp(cmd, "health")) {
    size_t i;
    const json_t *p;
    printf("%s\n", json_is_true(json_object_get(o, "healthy")) ? "healthy"
                                                               : "unhealthy");
    json_array_foreach(json_object_get(o, "problems"), i, p)
        printf("  %s\n", json_string_value(p));
  } else if (!strcmp(cmd, "store-stats")) {
    print_stats(o);
  } else if (!strcmp(cmd, "reload")) {
    printf("reloaded (%llu ms)\n", (unsigned long long)num(o, "took_ms"));
    print_value(json_object_get(o, "result"));
  } else if (!strcmp(cmd, "hello")) {
    printf("mgrun %s, protocol %llu, pid %llu\n",
           str(o, "version") ? str(o, "version") : "?",
           (unsigned long long)num(o, "protocol"),
           (unsigned long long)num(o, "pid"));
    print_list("commands", json_object_get(o, "commands"));
    print_list("policy commands", json_object_get(o, "policy_commands"));
  } else {
    print_value(json_object_get(o, "result"));
    if (json_is_true(json_object_get(o, "exiting")))
      printf("(mgrun is shutting down)\n");
  }
}
