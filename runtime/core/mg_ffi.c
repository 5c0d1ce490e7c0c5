/* mg_ffi.c — the parts of mg/mg_ffi.h that are not the store's: the probe
 * document as text, freeing what was allocated for the caller, and the
 * library's version and structure sizes, which a binding compares with
 * its own declarations when it loads libmg (core layer). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg.h"

int mg_probe_json_text(const mg_probe_opts *opts, char **out, size_t *len,
                       char *err, size_t err_len) {
  void *doc = NULL;
  *out = NULL;
  int rc = mg_probe_json(opts, &doc, err, err_len);
  if (rc < 0)
    return rc;
  char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
  mg_probe_free(doc);
  if (!text)
    return mg_errf(err, err_len, -ENOMEM,
                   "out of memory writing the probe document");
  *out = text;
  if (len)
    *len = strlen(text);
  return 0;
}

void mg_ffi_free(void *p) {
  free(p); /* jansson's default allocator is malloc */
}

const char *mg_ffi_version(void) {
  return MG_VERSION;
}

size_t mg_ffi_sizeof(const char *type) {
#define MG__T(t)                                                               \
  { #t, sizeof(t) }
  static const struct {
    const char *name;
    size_t size;
  } types[] = {MG__T(mg_store_options), MG__T(mg_store_limits),
               MG__T(mg_store_input),   MG__T(mg_store_meta),
               MG__T(mg_store_msg),     MG__T(mg_store_stats),
               MG__T(mg_store_need),    MG__T(mg_store_error),
               MG__T(mg_store_unit),    MG__T(mg_store_builtin),
               MG__T(mg_meminfo),       MG__T(mg_proc_status),
               MG__T(mg_psi),           MG__T(mg_psi_line),
               MG__T(mg_effmem),        MG__T(mg_paths),
               MG__T(mg_cgroup_info),   MG__T(mg_probe_opts),
               MG__T(mg_validation),    MG__T(mg_limit_item),
               MG__T(mg_rlimit_support)};
#undef MG__T
  if (!type)
    return 0;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(types[i].name, type) == 0)
      return types[i].size;
  return 0;
}
