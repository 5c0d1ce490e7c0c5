/* test_metrics.c — the metrics registry and its Prometheus text format
 * (mg_metrics, core layer): name rules, escaping, counters that only go
 * up, limits, the exact text rendered. The output is also checked by
 * promtool in tests/e2e/test_metrics.sh. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_metrics.h"
#include "mg_test.h"

static char *render(mg_metrics *m) {
  char *t;
  size_t len;
  if (mg_metrics_render(m, &t, &len) != 0)
    return NULL;
  if (strlen(t) != len) {
    free(t);
    return NULL;
  }
  return t;
}

TEST(names_accepted) {
  static const char *const ok[] = {
      "a", "_", ":", "mgrun_child_memory_bytes", "job:rate5m", "A9_:z", NULL};
  for (int i = 0; ok[i]; i++)
    ASSERT_EQ(mg_metrics_check_name(ok[i], NULL, 0), 0);
  static const char *const lok[] = {"a", "_x", "name", "Le", "a9_", NULL};
  for (int i = 0; lok[i]; i++)
    ASSERT_EQ(mg_metrics_check_label(lok[i], NULL, 0), 0);
  char max[MG_METRICS_NAME_MAX + 1];
  memset(max, 'n', MG_METRICS_NAME_MAX);
  max[MG_METRICS_NAME_MAX] = '\0';
  ASSERT_EQ(mg_metrics_check_name(max, NULL, 0), 0);
}

TEST(names_refused) {
  static const struct {
    const char *name;
    const char *why;
  } bad[] = {
      {"", "an empty name"},        {"9lives", "its first character '9'"},
      {"a-b", "the character '-'"}, {"a b", "the character ' '"},
      {"caf\xc3\xa9", "0xc3"},      {"a.b", "'.'"}};
  char err[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(mg_metrics_check_name(bad[i].name, err, sizeof err), -EINVAL);
    ASSERT_CONTAINS(err, "metric name");
    ASSERT_CONTAINS(err, bad[i].why);
    ASSERT_CONTAINS(err, "accepted: 1 to 128 characters matching");
  }
  ASSERT_EQ(mg_metrics_check_name(NULL, err, sizeof err), -EINVAL);
  char big[MG_METRICS_NAME_MAX + 2];
  memset(big, 'n', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ASSERT_EQ(mg_metrics_check_name(big, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "129 bytes long");
  /* label names: no colon, no "__" */
  ASSERT_EQ(mg_metrics_check_label("a:b", err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "label name 'a:b': the character ':'");
  ASSERT_EQ(mg_metrics_check_label("__name__", err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "reserved for Prometheus");
  ASSERT_EQ(mg_metrics_check_label("1a", err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "its first character '1'");
}

TEST(render_exact) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  char *t = render(m);
  ASSERT_STR_EQ(t, "");
  free(t);
  mg_metric *g, *c, *l;
  const char *labels[] = {"name", "enforce"};
  ASSERT_EQ(mg_metrics_add(m, "up_gauge", MG_METRIC_GAUGE, "Is it up.", NULL, 0,
                           &g, NULL, 0),
            0);
  ASSERT_EQ(mg_metrics_add(m, "things_total", MG_METRIC_COUNTER, "Things seen.",
                           labels, 2, &c, NULL, 0),
            0);
  ASSERT_EQ(mg_metrics_add(m, "unused", MG_METRIC_GAUGE, "No series yet.",
                           labels, 1, &l, NULL, 0),
            0);
  /* a family without labels is there (0) from the start; one with labels
   * only once a series is set */
  t = render(m);
  ASSERT_STR_EQ(t, "# HELP up_gauge Is it up.\n# TYPE up_gauge gauge\n"
                   "up_gauge 0\n");
  free(t);
  const char *a[] = {"llm", "cgroup"}, *b[] = {"tool", "data"};
  ASSERT_EQ(mg_metric_inc(c, a, 2, NULL, 0), 0);
  ASSERT_EQ(mg_metric_inc(c, b, 1, NULL, 0), 0);
  ASSERT_EQ(mg_metric_inc(c, a, 1, NULL, 0), 0);
  ASSERT_EQ(mg_metric_set(g, NULL, 1, NULL, 0), 0);
  t = render(m);
  ASSERT_STR_EQ(t, "# HELP up_gauge Is it up.\n# TYPE up_gauge gauge\n"
                   "up_gauge 1\n"
                   "# HELP things_total Things seen.\n"
                   "# TYPE things_total counter\n"
                   "things_total{name=\"llm\",enforce=\"cgroup\"} 3\n"
                   "things_total{name=\"tool\",enforce=\"data\"} 1\n");
  free(t);
  double v = -1;
  ASSERT_EQ(mg_metric_get(c, a, &v), 0);
  ASSERT_DBL_NEAR(v, 3, 0);
  const char *none[] = {"x", "y"};
  ASSERT_EQ(mg_metric_get(c, none, &v), -ENOENT);
  ASSERT_EQ(mg_metrics_series(m), 3);
  /* remove, reset */
  ASSERT_EQ(mg_metric_remove(c, a), 0);
  ASSERT_EQ(mg_metric_remove(c, a), -ENOENT);
  t = render(m);
  ASSERT(strstr(t, "llm") == NULL);
  ASSERT_CONTAINS(t, "things_total{name=\"tool\",enforce=\"data\"} 1\n");
  free(t);
  mg_metrics_reset(m);
  ASSERT_EQ(mg_metrics_series(m), 1);
  t = render(m);
  ASSERT_STR_EQ(t, "# HELP up_gauge Is it up.\n# TYPE up_gauge gauge\n"
                   "up_gauge 0\n");
  free(t);
  mg_metrics_free(m);
}

TEST(escaping) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  mg_metric *g;
  const char *labels[] = {"v"};
  ASSERT_EQ(mg_metrics_add(m, "esc", MG_METRIC_GAUGE,
                           "a \\ backslash,\na newline and \"quotes\"", labels,
                           1, &g, NULL, 0),
            0);
  const char *val[] = {"C:\\dir \"x\"\nnext \xe2\x82\xac"};
  ASSERT_EQ(mg_metric_set(g, val, 1, NULL, 0), 0);
  char *t = render(m);
  ASSERT_STR_EQ(t, "# HELP esc a \\\\ backslash,\\na newline and \"quotes\"\n"
                   "# TYPE esc gauge\n"
                   "esc{v=\"C:\\\\dir \\\"x\\\"\\nnext \xe2\x82\xac\"} 1\n");
  free(t);
  /* not UTF-8: refused, nothing added */
  char err[512];
  const char *bad[] = {"\xff"}, *overlong[] = {"\xc0\xaf"},
             *surrogate[] = {"\xed\xa0\x80"}, *cut[] = {"\xe2\x82"};
  ASSERT_EQ(mg_metric_set(g, bad, 1, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "metric 'esc': the value of label 'v' is not valid "
                       "UTF-8 (at byte 0)");
  ASSERT_EQ(mg_metric_set(g, overlong, 1, NULL, 0), -EINVAL);
  ASSERT_EQ(mg_metric_set(g, surrogate, 1, NULL, 0), -EINVAL);
  ASSERT_EQ(mg_metric_set(g, cut, 1, NULL, 0), -EINVAL);
  ASSERT_EQ(mg_metrics_add(m, "badhelp", MG_METRIC_GAUGE, "\xff", NULL, 0, NULL,
                           err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "its help is not valid UTF-8");
  char big[MG_METRICS_VALUE_MAX + 2];
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  const char *bigv[] = {big};
  ASSERT_EQ(mg_metric_set(g, bigv, 1, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "1025 bytes long");
  ASSERT_EQ(mg_metrics_series(m), 1);
  mg_metrics_free(m);
}

TEST(numbers) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  mg_metric *g;
  const char *labels[] = {"k"};
  ASSERT_EQ(mg_metrics_add(m, "n", MG_METRIC_GAUGE, "", labels, 1, &g, NULL, 0),
            0);
  static const struct {
    const char *k;
    double v;
    const char *text;
  } cases[] = {{"int", 1073741824.0, "1073741824"},
               {"neg", -3, "-3"},
               {"frac", 0.25, "0.25"},
               {"tenth", 0.1, "0.1"},
               {"third", 1.0 / 3, "0.3333333333333333"},
               {"big", 1e300, "1e+300"},
               {"u64", 18446744073709551615.0, "1.8446744073709552e+19"},
               {"nan", NAN, "NaN"},
               {"inf", INFINITY, "+Inf"},
               {"minf", -INFINITY, "-Inf"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *v[] = {cases[i].k};
    ASSERT_EQ(mg_metric_set(g, v, cases[i].v, NULL, 0), 0);
  }
  char *t = render(m);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char line[128];
    snprintf(line, sizeof line, "n{k=\"%s\"} %s\n", cases[i].k, cases[i].text);
    ASSERT_CONTAINS(t, line);
  }
  free(t);
  mg_metrics_free(m);
}

TEST(counters_only_go_up) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  mg_metric *c;
  char err[512];
  ASSERT_EQ(mg_metrics_add(m, "c_total", MG_METRIC_COUNTER, "c", NULL, 0, &c,
                           NULL, 0),
            0);
  ASSERT_EQ(mg_metric_inc(c, NULL, 5, NULL, 0), 0);
  ASSERT_EQ(mg_metric_inc(c, NULL, -1, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "counter 'c_total': cannot add -1: counters only go up");
  ASSERT_EQ(mg_metric_set(c, NULL, 4, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "cannot go down from 5 to 4");
  ASSERT_EQ(mg_metric_set(c, NULL, 7, NULL, 0), 0); /* up: fine */
  ASSERT_EQ(mg_metric_set(c, NULL, NAN, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "accepted: a finite number");
  ASSERT_EQ(mg_metric_inc(c, NULL, INFINITY, NULL, 0), -EINVAL);
  double v;
  ASSERT_EQ(mg_metric_get(c, NULL, &v), 0);
  ASSERT_DBL_NEAR(v, 7, 0);
  /* a gauge goes both ways */
  mg_metric *g;
  ASSERT_EQ(mg_metrics_add(m, "g", MG_METRIC_GAUGE, "g", NULL, 0, &g, NULL, 0),
            0);
  ASSERT_EQ(mg_metric_inc(g, NULL, -2.5, NULL, 0), 0);
  ASSERT_EQ(mg_metric_get(g, NULL, &v), 0);
  ASSERT_DBL_NEAR(v, -2.5, 0);
  mg_metrics_free(m);
}

TEST(families) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  char err[512];
  mg_metric *a, *b;
  const char *l1[] = {"x"}, *l2[] = {"y"}, *dup[] = {"x", "x"};
  ASSERT_EQ(mg_metrics_add(m, "fam", MG_METRIC_GAUGE, "h", l1, 1, &a, NULL, 0),
            0);
  /* the same definition again: the same family */
  ASSERT_EQ(
      mg_metrics_add(m, "fam", MG_METRIC_GAUGE, "other", l1, 1, &b, NULL, 0),
      0);
  ASSERT(a == b);
  ASSERT(mg_metrics_find(m, "fam") == a);
  ASSERT(mg_metrics_find(m, "nope") == NULL);
  ASSERT_STR_EQ(mg_metric_name(a), "fam");
  ASSERT_EQ(mg_metric_type_of(a), MG_METRIC_GAUGE);
  ASSERT_EQ(mg_metric_label_count(a), 1);
  ASSERT_STR_EQ(mg_metric_label(a, 0), "x");
  ASSERT(mg_metric_label(a, 1) == NULL);
  ASSERT_EQ(mg_metrics_add(m, "fam", MG_METRIC_COUNTER, "h", l1, 1, NULL, err,
                           sizeof err),
            -EEXIST);
  ASSERT_CONTAINS(err, "metric 'fam' exists already as a gauge with 1 label");
  ASSERT_EQ(mg_metrics_add(m, "fam", MG_METRIC_GAUGE, "h", l2, 1, NULL, err,
                           sizeof err),
            -EEXIST);
  ASSERT_EQ(mg_metrics_add(m, "d", MG_METRIC_GAUGE, "h", dup, 2, NULL, err,
                           sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "label name 'x' is given twice");
  const char *badl[] = {"__x"};
  ASSERT_EQ(mg_metrics_add(m, "d", MG_METRIC_GAUGE, "h", badl, 1, NULL, err,
                           sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "metric 'd': label name '__x'");
  ASSERT_EQ(mg_metrics_add(m, "bad-name", MG_METRIC_GAUGE, "h", NULL, 0, NULL,
                           err, sizeof err),
            -EINVAL);
  ASSERT_EQ(mg_metrics_add(m, "t", (mg_metric_type)7, "h", NULL, 0, NULL, err,
                           sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "accepted: gauge (0), counter (1)");
  const char *many[MG_METRICS_LABELS_MAX + 1];
  char names[MG_METRICS_LABELS_MAX + 1][8];
  for (size_t i = 0; i <= MG_METRICS_LABELS_MAX; i++) {
    snprintf(names[i], sizeof names[i], "l%zu", i);
    many[i] = names[i];
  }
  ASSERT_EQ(mg_metrics_add(m, "many", MG_METRIC_GAUGE, "h", many,
                           MG_METRICS_LABELS_MAX + 1, NULL, err, sizeof err),
            -EINVAL);
  ASSERT_CONTAINS(err, "accepted: at most 16");
  ASSERT_EQ(mg_metrics_add(m, "many", MG_METRIC_GAUGE, "h", many,
                           MG_METRICS_LABELS_MAX, NULL, NULL, 0),
            0);
  /* label values: one per label, none NULL */
  ASSERT_EQ(mg_metric_set(a, NULL, 1, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "1 label value(s) needed, none given");
  const char *nullv[] = {NULL};
  ASSERT_EQ(mg_metric_set(a, nullv, 1, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "no value for label 'x'");
  mg_metrics_free(m);
  mg_metrics_free(NULL);
}

TEST(limits) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  char err[512];
  ASSERT_EQ(mg_metrics_set_limits(m, 0, 1 << 20, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "accepted: 1 to 1000000");
  ASSERT_EQ(mg_metrics_set_limits(m, 10, 100, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "accepted: at least 4096");
  ASSERT_EQ(mg_metrics_set_limits(m, 3, 1 << 20, NULL, 0), 0);
  mg_metric *f;
  const char *l[] = {"i"};
  ASSERT_EQ(mg_metrics_add(m, "f", MG_METRIC_GAUGE, "h", l, 1, &f, NULL, 0), 0);
  for (int i = 0; i < 3; i++) {
    char v[8];
    snprintf(v, sizeof v, "%d", i);
    const char *vals[] = {v};
    ASSERT_EQ(mg_metric_set(f, vals, i, NULL, 0), 0);
  }
  const char *more[] = {"3"}, *old[] = {"2"};
  ASSERT_EQ(mg_metric_set(f, more, 1, err, sizeof err), -ENOSPC);
  ASSERT_CONTAINS(err, "too many series (the registry holds 3");
  ASSERT_EQ(mg_metric_set(f, old, 9, NULL, 0), 0); /* an old one: fine */
  ASSERT_EQ(mg_metric_remove(f, old), 0);
  ASSERT_EQ(mg_metric_set(f, more, 1, NULL, 0), 0);
  /* bytes */
  ASSERT_EQ(mg_metrics_set_limits(m, 1000, 4096, NULL, 0), 0);
  char big[1000];
  memset(big, 'b', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  int rc = 0, n = 0;
  while (rc == 0 && n < 100) {
    big[0] = (char)('A' + n++);
    const char *vals[] = {big};
    rc = mg_metric_set(f, vals, 1, err, sizeof err);
  }
  ASSERT_EQ(rc, -ENOSPC);
  ASSERT_CONTAINS(err, "its limit of 4096 bytes");
  ASSERT_LT(n, 6);
  mg_metrics_free(m);
}

/* Updates from threads while another renders: the registry's lock. */
static void *hammer(void *ud) {
  mg_metric *f = ud;
  for (int i = 0; i < 20000; i++) {
    char v[8];
    snprintf(v, sizeof v, "%d", i % 50);
    const char *vals[] = {v};
    if (mg_metric_inc(f, vals, 1, NULL, 0) != 0)
      return (void *)1;
  }
  return NULL;
}

TEST(threads) {
  mg_metrics *m;
  ASSERT_EQ(mg_metrics_new(&m), 0);
  mg_metric *f;
  const char *l[] = {"k"};
  ASSERT_EQ(
      mg_metrics_add(m, "h_total", MG_METRIC_COUNTER, "h", l, 1, &f, NULL, 0),
      0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    ASSERT_EQ(pthread_create(&t[i], NULL, hammer, f), 0);
  for (int i = 0; i < 50; i++)
    free(render(m));
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    ASSERT(r == NULL);
  }
  double sum = 0;
  for (int i = 0; i < 50; i++) {
    char v[8];
    double x;
    snprintf(v, sizeof v, "%d", i);
    const char *vals[] = {v};
    ASSERT_EQ(mg_metric_get(f, vals, &x), 0);
    sum += x;
  }
  ASSERT_DBL_NEAR(sum, 80000, 0);
  mg_metrics_free(m);
}

int main(void) {
  RUN(names_accepted);
  RUN(names_refused);
  RUN(render_exact);
  RUN(escaping);
  RUN(numbers);
  RUN(counters_only_go_up);
  RUN(families);
  RUN(limits);
  RUN(threads);
  return mg_test_report();
}
