/* mg_rlimit.h — memory rlimits: probe for enforcement, get and set, on this
 * process or another (prlimit) (core layer).
 *
 * RLIMIT_DATA (Linux >= 4.7 counts private writable mappings) is the default;
 * RLIMIT_AS is opt-in: it counts address-space reservations, and CUDA's
 * cuInit alone reserves ~12 GiB of address space.
 */
#ifndef MG_RLIMIT_H
#define MG_RLIMIT_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "No limit" in mg_rlimit_get / mg_rlimit_set. */
#define MG_RLIMIT_UNLIMITED UINT64_MAX

typedef enum mg_rlimit_resource {
  MG_RLIMIT_DATA = 0, /* RLIMIT_DATA: "data" */
  MG_RLIMIT_AS = 1    /* RLIMIT_AS: "as" */
} mg_rlimit_resource;

/* "data" / "as". */
MG_API const char *mg_rlimit_name(mg_rlimit_resource r);

/* Parse "data" or "as"; anything else is -EINVAL with err saying what is
 * accepted. */
MG_API int mg_rlimit_from_name(const char *name, mg_rlimit_resource *out,
                               char *err, size_t err_len);

/* What the enforcement probe found. Plain data, caller-owned. */
typedef struct mg_rlimit_support {
  int data_enforced;     /* an allocation past RLIMIT_DATA failed */
  int as_enforced;       /* an allocation past RLIMIT_AS failed */
  char data_reason[256]; /* why data was accepted or rejected */
  char as_reason[256];   /* why as was accepted or rejected */
} mg_rlimit_support;

/* Probe one resource in a short-lived forked child: set the limit a little
 * above the child's current use, check that an allocation under it succeeds
 * and one past it fails with ENOMEM (the limit is checked when memory is
 * mapped: no page is touched). The first verdict of each resource is cached
 * for the life of the process (thread-safe); later calls copy the cache.
 * *enforced and `reason` (caller-owned, may be NULL) get the verdict and
 * why. 0, or a negative code when the child could not be run (then the
 * next call tries again). */
MG_API int mg_rlimit_probe_one(mg_rlimit_resource r, int *enforced,
                               char *reason, size_t reason_len);

/* Both resources, as mg_rlimit_probe_one (sharing its cache). */
MG_API int mg_rlimit_probe(mg_rlimit_support *out);

/* Both, never cached (tests). */
MG_API int mg_rlimit_probe_uncached(mg_rlimit_support *out);

/* The preferred enforced resource: data if enforced, else as; -ENOTSUP
 * (MG_ENOTENFORCED) when neither is, with both reasons in err. */
MG_API int mg_rlimit_preferred(const mg_rlimit_support *s,
                               mg_rlimit_resource *out, char *err,
                               size_t err_len);

/* Current soft and hard limit of `pid` (0 = this process);
 * MG_RLIMIT_UNLIMITED for RLIM_INFINITY. Either out-parameter may be NULL. */
MG_API int mg_rlimit_get(pid_t pid, mg_rlimit_resource r, uint64_t *soft,
                         uint64_t *hard, char *err, size_t err_len);

/* Set the soft limit of `pid` (0 = this process) to `bytes`; with
 * `also_hard`, the hard limit too (irreversible without CAP_SYS_RESOURCE).
 * When the hard limit is finite and lower than `bytes` (and not being set),
 * the soft limit is clamped to it and `warn` says so with the value really
 * applied. *applied_bytes (may be NULL) gets the soft limit in force. */
MG_API int mg_rlimit_set(pid_t pid, mg_rlimit_resource r, uint64_t bytes,
                         int also_hard, uint64_t *applied_bytes, char *warn,
                         size_t warn_len, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
