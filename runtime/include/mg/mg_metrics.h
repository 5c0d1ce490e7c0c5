/* mg_metrics.h — a registry of metric families (gauges and counters with
 * labels) and its rendering in the Prometheus text exposition format 0.0.4
 * (core layer: no Lua, no libuv). mgrun's host serves its built-in
 * figures and a policy's own (mg.metrics) from two registries; an agent
 * host written in C can keep one of its own.
 *
 *   mg_metrics *m;
 *   mg_metrics_new(&m);
 *   const char *labels[] = {"store"};
 *   mg_metric *f;
 *   mg_metrics_add(m, "agent_turns_total", MG_METRIC_COUNTER,
 *                  "Turns the agent took.", labels, 1, &f, err, sizeof err);
 *   const char *v[] = {"ctx"};
 *   mg_metric_inc(f, v, 1, err, sizeof err);
 *   char *text; size_t len;
 *   mg_metrics_render(m, &text, &len);   // "# HELP agent_turns_total ..."
 *   free(text);
 *   mg_metrics_free(m);
 *
 * Rules (checked by every call; err says what was wrong and what is
 * accepted):
 *   - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, 1..MG_METRICS_NAME_MAX
 *     bytes;
 *   - label names match [a-zA-Z_][a-zA-Z0-9_]*, 1..MG_METRICS_NAME_MAX
 *     bytes, and do not start with "__" (Prometheus reserves those); a
 *     family has at most MG_METRICS_LABELS_MAX of them, all different;
 *   - help texts and label values are UTF-8, at most MG_METRICS_HELP_MAX /
 *     MG_METRICS_VALUE_MAX bytes; on output, help escapes \ and newline,
 *     label values \, " and newline (as the format says);
 *   - a counter is finite and never goes down (mg_metric_inc with a
 *     negative delta, or mg_metric_set below its value, is -EINVAL); a
 *     gauge takes any double (NaN, +Inf and -Inf are written as such).
 *
 * Output. Families in the order they were added, each with its # HELP and
 * # TYPE lines followed by its series in the order they were first set;
 * a family without labels has its one series (0) from the start, a
 * family with labels appears once some series is set. Numbers are
 * written in the shortest form that reads back exactly ("1024", "0.25",
 * "1e+300"). No timestamps.
 *
 * Limits. A registry holds at most MG_METRICS_FAMILIES_MAX families and,
 * by default, MG_METRICS_SERIES_MAX series in all using at most
 * MG_METRICS_BYTES_MAX bytes of names, help and label values
 * (mg_metrics_set_limits): past them, adding is -ENOSPC ("too many
 * series"), so a label fed from unbounded input cannot eat the host.
 *
 * Threads. Every call locks the registry: families may be updated from
 * any thread while another renders. A family belongs to its registry and
 * is freed with it.
 */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include "mg/mg_api.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_METRICS_NAME_MAX 128u   /* a metric or label name, bytes */
#define MG_METRICS_LABELS_MAX 16u  /* label names per family */
#define MG_METRICS_HELP_MAX 1024u  /* help text, bytes */
#define MG_METRICS_VALUE_MAX 1024u /* one label value, bytes */
#define MG_METRICS_FAMILIES_MAX 1024u
#define MG_METRICS_SERIES_MAX 10000u /* default, every family together */
#define MG_METRICS_BYTES_MAX ((size_t)8 << 20) /* default: 8 MiB */

/* What the name rules accept, for messages. */
#define MG_METRICS_NAME_ACCEPTED                                               \
  "1 to 128 characters matching [a-zA-Z_:][a-zA-Z0-9_:]*"
#define MG_METRICS_LABEL_ACCEPTED                                              \
  "1 to 128 characters matching [a-zA-Z_][a-zA-Z0-9_]*, not starting with "    \
  "'__'"

/* The content type of the text format. */
#define MG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum mg_metric_type {
  MG_METRIC_GAUGE = 0, /* a value that goes up and down */
  MG_METRIC_COUNTER    /* a total that only goes up */
} mg_metric_type;

typedef struct mg_metrics mg_metrics;
typedef struct mg_metric mg_metric;

/* "gauge" / "counter". */
MG_API const char *mg_metric_type_name(mg_metric_type t);

/* A new empty registry; *out is the caller's (mg_metrics_free). -ENOMEM. */
MG_API int mg_metrics_new(mg_metrics **out);
/* Free it and every family in it. NULL is a no-op. */
MG_API void mg_metrics_free(mg_metrics *m);

/* Change the limits on series (1..1000000) and bytes (at least 4096);
 * limits below what the registry holds now refuse only what comes next.
 * -EINVAL with err otherwise. */
MG_API int mg_metrics_set_limits(mg_metrics *m, size_t max_series,
                                 size_t max_bytes, char *err, size_t err_len);

/* Check a metric name / a label name against the rules above: 0, or
 * -EINVAL with err quoting it and saying what is accepted. */
MG_API int mg_metrics_check_name(const char *name, char *err, size_t err_len);
MG_API int mg_metrics_check_label(const char *name, char *err, size_t err_len);

/* Add a family (copied: name, help, label names). Adding a name again
 * with the same type and label names gives the family already there
 * (its help stays the first one); with another type or other labels it
 * is -EEXIST. -EINVAL for a bad name, label name or help (NULL help is
 * ""), -ENOSPC past the limits, -ENOMEM. *out (may be NULL) gets the
 * family, valid until mg_metrics_free. */
MG_API int mg_metrics_add(mg_metrics *m, const char *name, mg_metric_type type,
                          const char *help, const char *const *labels,
                          size_t nlabels, mg_metric **out, char *err,
                          size_t err_len);

/* The family named `name`, or NULL. */
MG_API mg_metric *mg_metrics_find(mg_metrics *m, const char *name);

/* The family's name, type, label names. */
MG_API const char *mg_metric_name(const mg_metric *f);
MG_API mg_metric_type mg_metric_type_of(const mg_metric *f);
MG_API size_t mg_metric_label_count(const mg_metric *f);
MG_API const char *mg_metric_label(const mg_metric *f, size_t i);

/* The series of `values` (one per label name, in the family's order;
 * NULL when it has none): set it to `v` / add `delta` to it (created at 0
 * first). -EINVAL for a bad value (see the rules) or label value,
 * -ENOSPC past the limits, -ENOMEM. */
MG_API int mg_metric_set(mg_metric *f, const char *const *values, double v,
                         char *err, size_t err_len);
MG_API int mg_metric_inc(mg_metric *f, const char *const *values, double delta,
                         char *err, size_t err_len);
/* Its value: 0, or -ENOENT when that series was never set. */
MG_API int mg_metric_get(mg_metric *f, const char *const *values, double *out);
/* Drop that series (it is no longer written): 0 or -ENOENT. */
MG_API int mg_metric_remove(mg_metric *f, const char *const *values);

/* Drop every series of every family (families stay; those without labels
 * go back to 0): for a registry refilled before each rendering. */
MG_API void mg_metrics_reset(mg_metrics *m);

/* Series held now, in all. */
MG_API size_t mg_metrics_series(mg_metrics *m);

/* The registry in the text format: *out (NUL-terminated, *len bytes
 * without the NUL) is the caller's to free(). -ENOMEM. */
MG_API int mg_metrics_render(mg_metrics *m, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
