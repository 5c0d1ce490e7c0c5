/* mg_probe_text.c — the probe document printed for people or as JSON
 * (core layer; jansson). `mgrun --probe [--json]` prints it. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_probe.h"
#include "mg/mg_size.h"

static const char *jstr(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "?";
}

static const char *jsize(json_t *o, const char *k, char *buf, size_t len) {
  json_t *v = json_object_get(o, k);
  if (!json_is_integer(v))
    return "unknown";
  return mg_size_format((uint64_t)json_integer_value(v), buf, len);
}

static void print_probe_text(json_t *doc, FILE *f) {
  char a[32], b[32], c[32], d[32];
  json_t *m = json_object_get(doc, "memory");
  json_t *cg = json_object_get(doc, "cgroup");
  json_t *rl = json_object_get(doc, "rlimit");
  json_t *pr = json_object_get(doc, "pressure");
  fprintf(f, "mgrun %s on %s %s\n", jstr(doc, "version"), jstr(doc, "arch"),
          jstr(doc, "kernel"));
  fprintf(f, "memory:     total %s, available %s, free %s, swap %s\n",
          jsize(m, "total", a, sizeof a), jsize(m, "available", b, sizeof b),
          jsize(m, "free", c, sizeof c), jsize(m, "swap_total", d, sizeof d));
  fprintf(f, "effective:  total %s, available %s (from %s)\n",
          jsize(m, "effective_total", a, sizeof a),
          jsize(m, "effective_available", b, sizeof b),
          jstr(m, "effective_source"));
  if (cg) {
    fprintf(f, "cgroup:     %s", jstr(cg, "version"));
    if (strcmp(jstr(cg, "version"), "none") != 0)
      fprintf(f, " memory controller at %s, this process in %s",
              jstr(cg, "mount"), jstr(cg, "path"));
    if (json_is_true(json_object_get(cg, "v2_mounted")) &&
        strcmp(jstr(cg, "version"), "v1") == 0)
      fprintf(f, " (cgroup2 mounted too: hybrid)");
    fprintf(f, "\n");
    json_t *lim = json_object_get(cg, "limit");
    if (json_is_integer(lim))
      fprintf(f, "            limit %s set by %s\n",
              jsize(cg, "limit", a, sizeof a), jstr(cg, "limit_dir"));
    json_t *w = json_object_get(cg, "writable");
    const char *why = json_string_value(json_object_get(cg, "writable_reason"));
    if (why)
      fprintf(f, "            %s\n", why);
    else
      fprintf(f, "            writable: %s\n",
              json_is_true(w)    ? "yes"
              : json_is_false(w) ? "no"
                                 : "not probed");
  }
  if (rl) {
    json_t *pref = json_object_get(rl, "preferred");
    fprintf(f, "rlimit:     default %s\n",
            json_is_string(pref) ? json_string_value(pref) : "none enforced");
    static const char *res[2] = {"data", "as"};
    for (int i = 0; i < 2; i++) {
      json_t *r = json_object_get(rl, res[i]);
      if (!r)
        continue;
      fprintf(f, "            %-4s %s\n", res[i], jstr(r, "reason"));
    }
  }
  if (json_is_object(pr)) {
    static const char *kinds[2] = {"some", "full"};
    for (int i = 0; i < 2; i++) {
      json_t *l = json_object_get(pr, kinds[i]);
      if (!l)
        continue;
      fprintf(f,
              "%-12s%s avg10=%.2f avg60=%.2f avg300=%.2f "
              "total=%" JSON_INTEGER_FORMAT "us\n",
              i == 0 ? "pressure:" : "", kinds[i],
              json_number_value(json_object_get(l, "avg10")),
              json_number_value(json_object_get(l, "avg60")),
              json_number_value(json_object_get(l, "avg300")),
              json_integer_value(json_object_get(l, "total")));
    }
  } else {
    fprintf(f, "pressure:   unavailable (%s)\n", jstr(doc, "pressure_reason"));
  }
  json_t *gs = json_object_get(doc, "gpus");
  if (json_is_array(gs)) {
    size_t i;
    json_t *g;
    json_array_foreach(gs, i, g) {
      char t[32], u[32];
      fprintf(f, "%-12s%" JSON_INTEGER_FORMAT " %s (%s): total %s, used %s%s\n",
              i == 0 ? "gpu:" : "",
              json_integer_value(json_object_get(g, "index")),
              json_string_value(json_object_get(g, "name")),
              json_string_value(json_object_get(g, "uuid")),
              mg_size_format(
                  (uint64_t)json_integer_value(json_object_get(g, "total")), t,
                  sizeof t),
              mg_size_format(
                  (uint64_t)json_integer_value(json_object_get(g, "used")), u,
                  sizeof u),
              json_is_true(json_object_get(g, "integrated"))
                  ? ", integrated (shares system memory)"
                  : "");
    }
  } else if (json_object_get(doc, "gpu_reason")) {
    fprintf(f, "gpu:        none (%s)\n", jstr(doc, "gpu_reason"));
  }
  json_t *n = json_object_get(doc, "notify");
  if (!n)
    return;
  json_t *g = json_object_get(n, "groups");
  fprintf(f, "notify:     groups: %s\n",
          json_is_string(g) ? json_string_value(g)
                            : "none (no cgroup: thresholds are sampled)");
  json_t *t = json_object_get(n, "psi_trigger");
  if (json_is_object(t)) {
    json_t *fb = json_object_get(t, "fallback");
    fprintf(f,
            "            PSI triggers: windows of %" JSON_INTEGER_FORMAT
            " ms and up arm%s%s%s\n",
            json_integer_value(json_object_get(t, "window_ms")),
            json_is_string(fb) ? " (" : "",
            json_is_string(fb) ? json_string_value(fb) : "",
            json_is_string(fb) ? ")" : "");
  } else {
    fprintf(f, "            PSI triggers: unavailable (%s)\n",
            jstr(n, "psi_trigger_reason"));
  }
}

int mg_probe_print(const void *doc, int as_json, FILE *f) {
  if (!doc || !f)
    return -EINVAL;
  if (!as_json) {
    print_probe_text((json_t *)doc, f);
    return ferror(f) ? -EIO : 0;
  }
  char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (s == NULL)
    return -ENOMEM;
  fputs(s, f);
  fputc('\n', f);
  free(s);
  return ferror(f) ? -EIO : 0;
}

void mg_probe_free(void *doc) {
  json_decref(doc);
}
