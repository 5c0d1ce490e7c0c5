/* mg__metrics.h — the registry's insides, shared by mg_metrics.c (the
 * registry and its series) and mg_metrics_text.c (the name and text rules,
 * the rendering) (core layer; not installed). The registry's mutex guards
 * every field below it. */
#ifndef MG__METRICS_H
#define MG__METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mg/mg_metrics.h"

/* What a series or a family costs beside its strings (for max_bytes). */
#define MX__SERIES_OVERHEAD 64u
#define MX__FAMILY_OVERHEAD 128u

typedef struct mx_series {
  uint64_t hash;
  double v;
  char **values; /* nlabels pointers, then the strings: one block */
  size_t bytes;  /* what it counts against max_bytes */
} mx_series;

struct mg_metric {
  mg_metrics *reg;
  char *name, *help;
  mg_metric_type type;
  size_t nlabels;
  char **labels;
  mx_series *s;
  size_t ns, cap;
  size_t bytes;
};

struct mg_metrics {
  pthread_mutex_t mu;
  mg_metric **fam;
  size_t nfam, capfam;
  size_t series, max_series;
  size_t bytes, max_bytes;
};

/* Check a help text or label value of family `fam`: UTF-8, at most `max`
 * bytes; -EINVAL with err naming `what` otherwise. */
int mg__mx_check_text(const char *what, const char *fam, const char *s,
                      size_t max, char *err, size_t err_len);

#endif
