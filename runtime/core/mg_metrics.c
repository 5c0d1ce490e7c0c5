/* mg_metrics.c — the metrics registry: families and their series (core
 * layer: no Lua, no libuv). See mg/mg_metrics.h for the rules; the text
 * format and the name rules are mg_metrics_text.c. */
#include "mg__metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_error.h"

/* ------------------------------------------------------------ registry */

int mg_metrics_new(mg_metrics **out) {
  mg_metrics *m = calloc(1, sizeof *m);
  *out = NULL;
  if (!m)
    return -ENOMEM;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    free(m);
    return -ENOMEM;
  }
  m->max_series = MG_METRICS_SERIES_MAX;
  m->max_bytes = MG_METRICS_BYTES_MAX;
  *out = m;
  return 0;
}

static void mx__family_free(mg_metric *f) {
  for (size_t i = 0; i < f->ns; i++)
    free(f->s[i].values);
  free(f->s);
  for (size_t i = 0; i < f->nlabels; i++)
    free(f->labels[i]);
  free(f->labels);
  free(f->name);
  free(f->help);
  free(f);
}

void mg_metrics_free(mg_metrics *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->nfam; i++)
    mx__family_free(m->fam[i]);
  free(m->fam);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

int mg_metrics_set_limits(mg_metrics *m, size_t max_series, size_t max_bytes,
                          char *err, size_t err_len) {
  if (max_series < 1 || max_series > 1000000)
    return mg_errf(err, err_len, -EINVAL,
                   "metrics: max_series %zu; accepted: 1 to 1000000",
                   max_series);
  if (max_bytes < 4096)
    return mg_errf(err, err_len, -EINVAL,
                   "metrics: max_bytes %zu; accepted: at least 4096",
                   max_bytes);
  pthread_mutex_lock(&m->mu);
  m->max_series = max_series;
  m->max_bytes = max_bytes;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

static mg_metric *mx__find(mg_metrics *m, const char *name) {
  for (size_t i = 0; i < m->nfam; i++)
    if (strcmp(m->fam[i]->name, name) == 0)
      return m->fam[i];
  return NULL;
}

mg_metric *mg_metrics_find(mg_metrics *m, const char *name) {
  if (!m || !name)
    return NULL;
  pthread_mutex_lock(&m->mu);
  mg_metric *f = mx__find(m, name);
  pthread_mutex_unlock(&m->mu);
  return f;
}

static int mx__room(mg_metrics *m, const char *fam, size_t series, size_t bytes,
                    char *err, size_t err_len) {
  if (m->series + series > m->max_series)
    return mg_errf(err, err_len, -ENOSPC,
                   "metric '%s': too many series (the registry holds %zu, "
                   "its limit): remove some or use fewer label values",
                   fam, m->series);
  if (m->bytes + bytes > m->max_bytes)
    return mg_errf(err, err_len, -ENOSPC,
                   "metric '%s': the registry's names, help and label values "
                   "would pass its limit of %zu bytes: remove some series or "
                   "use fewer label values",
                   fam, m->max_bytes);
  return 0;
}

/* Same definition as `f`? */
static int mx__same(const mg_metric *f, mg_metric_type type,
                    const char *const *labels, size_t nlabels) {
  if (f->type != type || f->nlabels != nlabels)
    return 0;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], labels[i]) != 0)
      return 0;
  return 1;
}

static int mx__check_family(const char *name, mg_metric_type type,
                            const char *help, const char *const *labels,
                            size_t nlabels, char *err, size_t err_len) {
  int rc = mg_metrics_check_name(name, err, err_len);
  if (rc < 0)
    return rc;
  if (type != MG_METRIC_GAUGE && type != MG_METRIC_COUNTER)
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': type %d; accepted: gauge (%d), counter (%d)",
                   name, (int)type, MG_METRIC_GAUGE, MG_METRIC_COUNTER);
  if ((rc = mg__mx_check_text("its help", name, help, MG_METRICS_HELP_MAX, err,
                              err_len)) < 0)
    return rc;
  if (nlabels > MG_METRICS_LABELS_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': %zu label names; accepted: at most %u", name,
                   nlabels, MG_METRICS_LABELS_MAX);
  if (nlabels && !labels)
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': %zu label names but no list", name, nlabels);
  for (size_t i = 0; i < nlabels; i++) {
    char e[400];
    if ((rc = mg_metrics_check_label(labels[i], e, sizeof e)) < 0)
      return mg_errf(err, err_len, rc, "metric '%s': %s", name, e);
    for (size_t k = 0; k < i; k++)
      if (strcmp(labels[k], labels[i]) == 0)
        return mg_errf(err, err_len, -EINVAL,
                       "metric '%s': label name '%s' is given twice; each "
                       "label name once",
                       name, labels[i]);
  }
  return 0;
}

int mg_metrics_add(mg_metrics *m, const char *name, mg_metric_type type,
                   const char *help, const char *const *labels, size_t nlabels,
                   mg_metric **out, char *err, size_t err_len) {
  if (out)
    *out = NULL;
  if (!m)
    return mg_errf(err, err_len, -EINVAL, "metrics: no registry (NULL)");
  if (!help)
    help = "";
  int rc = mx__check_family(name, type, help, labels, nlabels, err, err_len);
  if (rc < 0)
    return rc;
  pthread_mutex_lock(&m->mu);
  mg_metric *f = mx__find(m, name);
  if (f) {
    if (mx__same(f, type, labels, nlabels)) {
      if (out)
        *out = f;
      rc = 0;
    } else {
      rc = mg_errf(err, err_len, -EEXIST,
                   "metric '%s' exists already as a %s with %zu label(s): a "
                   "name has one type and one set of label names",
                   name, mg_metric_type_name(f->type), f->nlabels);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
  }
  size_t bytes = MX__FAMILY_OVERHEAD + strlen(name) + strlen(help);
  for (size_t i = 0; i < nlabels; i++)
    bytes += strlen(labels[i]) + 1;
  if (m->nfam >= MG_METRICS_FAMILIES_MAX) {
    pthread_mutex_unlock(&m->mu);
    return mg_errf(err, err_len, -ENOSPC,
                   "metric '%s': the registry holds %u families, its limit",
                   name, MG_METRICS_FAMILIES_MAX);
  }
  if ((rc = mx__room(m, name, nlabels ? 0 : 1,
                     bytes + (nlabels ? 0 : MX__SERIES_OVERHEAD), err,
                     err_len)) < 0) {
    pthread_mutex_unlock(&m->mu);
    return rc;
  }
  rc = -ENOMEM;
  f = calloc(1, sizeof *f);
  if (!f)
    goto fail;
  f->reg = m;
  f->type = type;
  f->name = strdup(name);
  f->help = strdup(help);
  f->labels = nlabels ? calloc(nlabels, sizeof *f->labels) : NULL;
  if (!f->name || !f->help || (nlabels && !f->labels))
    goto fail;
  for (size_t i = 0; i < nlabels; i++) {
    f->labels[i] = strdup(labels[i]);
    f->nlabels = i + 1;
    if (!f->labels[i])
      goto fail;
  }
  f->nlabels = nlabels;
  if (nlabels == 0) { /* its one series, 0 from the start */
    f->s = calloc(1, sizeof *f->s);
    if (!f->s)
      goto fail;
    f->cap = f->ns = 1;
    f->s[0].bytes = MX__SERIES_OVERHEAD;
    m->series++;
    bytes += MX__SERIES_OVERHEAD;
  }
  if (m->nfam == m->capfam) {
    size_t cap = m->capfam ? m->capfam * 2 : 16;
    mg_metric **v = realloc(m->fam, cap * sizeof *v);
    if (!v) {
      if (nlabels == 0)
        m->series--;
      goto fail;
    }
    m->fam = v;
    m->capfam = cap;
  }
  f->bytes = bytes;
  m->bytes += bytes;
  m->fam[m->nfam++] = f;
  pthread_mutex_unlock(&m->mu);
  if (out)
    *out = f;
  return 0;
fail:
  pthread_mutex_unlock(&m->mu);
  if (f)
    mx__family_free(f);
  return mg_errf(err, err_len, rc, "metric '%s': out of memory", name);
}

const char *mg_metric_name(const mg_metric *f) {
  return f ? f->name : NULL;
}

mg_metric_type mg_metric_type_of(const mg_metric *f) {
  return f ? f->type : MG_METRIC_GAUGE;
}

size_t mg_metric_label_count(const mg_metric *f) {
  return f ? f->nlabels : 0;
}

const char *mg_metric_label(const mg_metric *f, size_t i) {
  return f && i < f->nlabels ? f->labels[i] : NULL;
}

/* ------------------------------------------------------------ series */

static uint64_t mx__hash(const mg_metric *f, const char *const *values) {
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < f->nlabels; i++) {
    for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
      h = (h ^ *p) * 1099511628211u;
    h = (h ^ 0xff) * 1099511628211u;
  }
  return h;
}

static mx_series *mx__lookup(mg_metric *f, const char *const *values,
                             uint64_t h) {
  if (f->nlabels == 0)
    return f->ns ? &f->s[0] : NULL;
  for (size_t i = 0; i < f->ns; i++) {
    mx_series *s = &f->s[i];
    if (s->hash != h)
      continue;
    size_t k = 0;
    while (k < f->nlabels && strcmp(s->values[k], values[k]) == 0)
      k++;
    if (k == f->nlabels)
      return s;
  }
  return NULL;
}

static int mx__check_values(const mg_metric *f, const char *const *values,
                            char *err, size_t err_len) {
  if (f->nlabels && !values)
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': %zu label value(s) needed, none given",
                   f->name, f->nlabels);
  for (size_t i = 0; i < f->nlabels; i++) {
    char what[MG_METRICS_NAME_MAX + 40];
    if (!values[i])
      return mg_errf(err, err_len, -EINVAL,
                     "metric '%s': no value for label '%s'", f->name,
                     f->labels[i]);
    snprintf(what, sizeof what, "the value of label '%s'", f->labels[i]);
    int rc = mg__mx_check_text(what, f->name, values[i], MG_METRICS_VALUE_MAX,
                               err, err_len);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* The series of `values`, created at 0 if new (locked). */
static int mx__get_or_add(mg_metric *f, const char *const *values,
                          mx_series **out, char *err, size_t err_len) {
  uint64_t h = mx__hash(f, values);
  mx_series *s = mx__lookup(f, values, h);
  if (s) {
    *out = s;
    return 0;
  }
  size_t strs = 0;
  for (size_t i = 0; i < f->nlabels; i++)
    strs += strlen(values[i]) + 1;
  size_t cost = MX__SERIES_OVERHEAD + strs;
  int rc = mx__room(f->reg, f->name, 1, cost, err, err_len);
  if (rc < 0)
    return rc;
  if (f->ns == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    mx_series *v = realloc(f->s, cap * sizeof *v);
    if (!v)
      return mg_errf(err, err_len, -ENOMEM, "metric '%s': out of memory",
                     f->name);
    f->s = v;
    f->cap = cap;
  }
  char **block = malloc(f->nlabels * sizeof(char *) + strs);
  if (!block)
    return mg_errf(err, err_len, -ENOMEM, "metric '%s': out of memory",
                   f->name);
  char *p = (char *)(block + f->nlabels);
  for (size_t i = 0; i < f->nlabels; i++) {
    size_t n = strlen(values[i]) + 1;
    memcpy(p, values[i], n);
    block[i] = p;
    p += n;
  }
  s = &f->s[f->ns++];
  s->hash = h;
  s->v = 0;
  s->values = block;
  s->bytes = cost;
  f->bytes += cost;
  f->reg->series++;
  f->reg->bytes += cost;
  *out = s;
  return 0;
}

static int mx__update(mg_metric *f, const char *const *values, double v,
                      int add, char *err, size_t err_len) {
  if (!f)
    return mg_errf(err, err_len, -EINVAL, "metrics: no metric (NULL)");
  int rc = mx__check_values(f, values, err, err_len);
  if (rc < 0)
    return rc;
  const char *nf = isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
  if (add && !isfinite(v))
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': cannot add %s; accepted: a finite number",
                   f->name, nf);
  if (f->type == MG_METRIC_COUNTER && !isfinite(v))
    return mg_errf(err, err_len, -EINVAL,
                   "counter '%s': cannot be %s; accepted: a finite number of "
                   "at least its value",
                   f->name, nf);
  if (f->type == MG_METRIC_COUNTER && add && v < 0)
    return mg_errf(err, err_len, -EINVAL,
                   "counter '%s': cannot add %.17g: counters only go up "
                   "(use a gauge for a value that goes down)",
                   f->name, v);
  pthread_mutex_lock(&f->reg->mu);
  mx_series *s = NULL;
  rc = mx__get_or_add(f, values, &s, err, err_len);
  if (rc == 0) {
    double nv = add ? s->v + v : v;
    if (f->type == MG_METRIC_COUNTER && nv < s->v)
      rc = mg_errf(err, err_len, -EINVAL,
                   "counter '%s': cannot go down from %.17g to %.17g: "
                   "counters only go up (use a gauge for a value that goes "
                   "down)",
                   f->name, s->v, nv);
    else
      s->v = nv;
  }
  pthread_mutex_unlock(&f->reg->mu);
  return rc;
}

int mg_metric_set(mg_metric *f, const char *const *values, double v, char *err,
                  size_t err_len) {
  return mx__update(f, values, v, 0, err, err_len);
}

int mg_metric_inc(mg_metric *f, const char *const *values, double delta,
                  char *err, size_t err_len) {
  return mx__update(f, values, delta, 1, err, err_len);
}

int mg_metric_get(mg_metric *f, const char *const *values, double *out) {
  if (!f || (f->nlabels && !values))
    return -EINVAL;
  for (size_t i = 0; i < f->nlabels; i++)
    if (!values[i])
      return -EINVAL;
  pthread_mutex_lock(&f->reg->mu);
  mx_series *s = mx__lookup(f, values, mx__hash(f, values));
  if (s)
    *out = s->v;
  pthread_mutex_unlock(&f->reg->mu);
  return s ? 0 : -ENOENT;
}

/* Drop series i of f (locked). */
static void mx__drop(mg_metric *f, size_t i) {
  mx_series *s = &f->s[i];
  f->bytes -= s->bytes;
  f->reg->bytes -= s->bytes;
  f->reg->series--;
  free(s->values);
  memmove(s, s + 1, (f->ns - i - 1) * sizeof *s);
  f->ns--;
}

int mg_metric_remove(mg_metric *f, const char *const *values) {
  if (!f || (f->nlabels && !values))
    return -EINVAL;
  for (size_t i = 0; i < f->nlabels; i++)
    if (!values[i])
      return -EINVAL;
  if (f->nlabels == 0)
    return -ENOENT; /* its one series stays: set it instead */
  pthread_mutex_lock(&f->reg->mu);
  mx_series *s = mx__lookup(f, values, mx__hash(f, values));
  if (s)
    mx__drop(f, (size_t)(s - f->s));
  pthread_mutex_unlock(&f->reg->mu);
  return s ? 0 : -ENOENT;
}

void mg_metrics_reset(mg_metrics *m) {
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->nfam; i++) {
    mg_metric *f = m->fam[i];
    if (f->nlabels == 0) {
      f->s[0].v = 0;
      continue;
    }
    while (f->ns)
      mx__drop(f, f->ns - 1);
  }
  pthread_mutex_unlock(&m->mu);
}

size_t mg_metrics_series(mg_metrics *m) {
  pthread_mutex_lock(&m->mu);
  size_t n = m->series;
  pthread_mutex_unlock(&m->mu);
  return n;
}
