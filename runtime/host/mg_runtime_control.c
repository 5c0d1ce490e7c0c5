/* mg_runtime_control.c — being written (issue 11): refuses to start when
 * asked for, so that nothing looks done before it is. */
#include "mg__runtime.h"

int mg__rt_control_start(mg_runtime *rt, char *err, size_t err_len) {
  if (rt->opts.control_path)
    return mg_errf(err, err_len, MG_ENOTSUP, "control: not built yet");
  return 0;
}

void mg__rt_control_stop(mg_runtime *rt) {
  (void)rt;
}
