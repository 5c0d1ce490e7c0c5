/* mg.h — umbrella header of libmg, the core of mgrun (no Lua, no libuv).
 * Link with -lmg (and jansson). Each module has its own header. */
#ifndef MG_H
#define MG_H

#define MG_VERSION "0.1.0"
#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0

#include "mg/mg_cgroup.h"
#include "mg/mg_error.h"
#include "mg/mg_ffi.h"
#include "mg/mg_limits.h"
#include "mg/mg_log.h"
#include "mg/mg_meminfo.h"
#include "mg/mg_metrics.h"
#include "mg/mg_name.h"
#include "mg/mg_paths.h"
#include "mg/mg_probe.h"
#include "mg/mg_proc.h"
#include "mg/mg_psi.h"
#include "mg/mg_rlimit.h"
#include "mg/mg_signal.h"
#include "mg/mg_size.h"
#include "mg/mg_store.h"
#include "mg/mg_store_builtin.h"

#endif
