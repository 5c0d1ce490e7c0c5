/* mg_runtime_ops.c — the operator's side of a runtime (host layer): starts
 * and stops its three parts together — metrics (mg_runtime_metrics.c),
 * the control socket (mg_runtime_control.c), the timeline
 * (mg_runtime_timeline.c). See mg__runtime.h for their lifetime. */
#include "mg__runtime.h"

int mg__rt_ops_start(mg_runtime *rt, char *err, size_t err_len) {
  int rc = mg__rt_timeline_start(rt, err, err_len);
  if (rc == 0)
    rc = mg__rt_metrics_start(rt, err, err_len);
  if (rc == 0)
    rc = mg__rt_control_start(rt, err, err_len);
  if (rc < 0)
    mg__rt_ops_stop(rt);
  return rc;
}

void mg__rt_ops_stop(mg_runtime *rt) {
  if (rt->ops_stopped)
    return;
  rt->ops_stopped = 1;
  mg__rt_control_stop(rt);
  mg__rt_metrics_stop(rt);
  mg__rt_timeline_stop(rt); /* last: it records the others' final events */
}
