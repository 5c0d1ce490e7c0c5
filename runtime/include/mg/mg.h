/* mg.h — umbrella header of libmg, the core of mgrun (no Lua, no libuv).
 * Link with -lmg (and jansson). Each module has its own header. */
#ifndef MG_H
#define MG_H

#define MG_VERSION "0.1.0"
#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0

#include "mg_cgroup.h"
#include "mg_error.h"
#include "mg_limits.h"
#include "mg_log.h"
#include "mg_meminfo.h"
#include "mg_paths.h"
#include "mg_probe.h"
#include "mg_proc.h"
#include "mg_psi.h"
#include "mg_rlimit.h"
#include "mg_size.h"
#include "mg_store.h"

#endif
