/* mg_ffi.h — flat entry points for bindings that call libmg through a
 * foreign-function interface (Python's ctypes or cffi; core layer).
 *
 * Everything here is built on the public API of mg_store.h and
 * mg_probe.h, and adds nothing a C program could not write itself; the
 * functions exist because a foreign call is expensive per argument and per
 * structure, and because a binding that releases its interpreter lock
 * around each call must copy what it reads while the store is locked:
 *
 *  - mg_store_add_flat: an add from scalars (no mg_store_input to build)
 *    that returns the id or the error code in one value;
 *  - mg_store_copy / mg_store_copy_at: a message copied into the caller's
 *    buffer under the store's lock (a view from mg_store_get points into
 *    the store and another thread may free it at once);
 *  - mg_store_ids: every id, oldest first, in one consistent call;
 *  - mg_store_units: the store as eviction units (what a strategy ranks);
 *  - mg_probe_json_text: the probe document as JSON text;
 *  - mg_ffi_version / mg_ffi_sizeof: what a binding checks its own
 *    declarations against when it loads the library.
 *
 * Ownership is the caller's throughout: buffers are caller-allocated,
 * except mg_probe_json_text's result, released with mg_ffi_free.
 */
#ifndef MG_FFI_H
#define MG_FFI_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#include "mg/mg_probe.h"
#include "mg/mg_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ adding */

/* Add a message given as scalars: as mg_store_add with an mg_store_input
 * of these fields. role, source and group are NUL-terminated UTF-8 (NULL
 * = ""); content is content_len bytes (NULL only when 0). tokens < 0
 * means "estimate" (has_tokens = 0). meta is meta_len bytes of packed
 * pairs "key\0value\0key\0value\0…" (NULL / 0: none): at most
 * MG_STORE_META_MAX pairs, each string NUL-terminated; a malformed packing
 * is -EINVAL in err. Returns the new id (> 0), or a negative code with err
 * (may be NULL) filled as mg_store_add does; the store is then unchanged.
 * Everything is copied; the caller keeps its buffers. */
MG_API int64_t mg_store_add_flat(mg_store *s, const char *role,
                                 const void *content, size_t content_len,
                                 const char *source, const char *group,
                                 int pinned, int64_t priority, int64_t tokens,
                                 const char *meta, size_t meta_len,
                                 mg_store_error *err);

/* ------------------------------------------------------------ copying */

/* Copy message `id` under the store's lock into `buf` (cap bytes, the
 * caller's) and fill *out with a view whose strings point into `buf`
 * (each NUL-terminated; meta_packed too). *need (may be NULL) receives the
 * bytes needed. 0; -ENOENT no such message; -ENOBUFS when cap < *need
 * (nothing copied: grow the buffer and call again). Works from inside the
 * store's callbacks too. */
MG_API int mg_store_copy(const mg_store *s, uint64_t id, mg_store_msg *out,
                         void *buf, size_t cap, size_t *need);

/* The same for the message at `position` (0 = oldest). */
MG_API int mg_store_copy_at(const mg_store *s, uint64_t position,
                            mg_store_msg *out, void *buf, size_t cap,
                            size_t *need);

/* The ids of every message, oldest first, read in one locked pass, into
 * `out` (cap entries, the caller's). *count receives the number of
 * messages. 0, or -ENOBUFS when cap < *count (nothing written). */
MG_API int mg_store_ids(const mg_store *s, uint64_t *out, size_t cap,
                        size_t *count);

/* ------------------------------------------------------------ units */

/* An eviction unit: a message without a group, or a whole group (what one
 * mg_store_plan_evict of any member evicts). Strings point into the store
 * and are valid while it is locked (inside a strategy) or until the next
 * mutation. */
typedef struct mg_store_unit {
  uint64_t id;      /* an id of the unit: its oldest member's */
  uint64_t first;   /* position of its oldest member (0 = oldest) */
  uint64_t count;   /* messages in it */
  uint64_t bytes;   /* accounted bytes evicting it frees */
  uint64_t tokens;  /* tokens evicting it frees */
  int64_t priority; /* highest member priority */
  double time;      /* newest member time */
  int pinned;       /* 1: a member is pinned (never evictable) */
  const char *role; /* role of its oldest member */
  size_t role_len;
  const char *group; /* "" when it is a single message without group */
  size_t group_len;
} mg_store_unit;

/* The store as units, in store order (by oldest member), into `units`
 * (cap entries, the caller's). `of` (may be NULL; else of_cap entries)
 * receives, for each message position, the index of its unit. *n_units
 * and *n_messages (either may be NULL) receive the counts. Read in one
 * locked pass (inside a strategy the store is already locked by this
 * thread). 0; -ENOBUFS when cap or of_cap is smaller than the number of
 * messages (nothing written; the counts are set); -ENOMEM. */
MG_API int mg_store_units(const mg_store *s, mg_store_unit *units, size_t cap,
                          uint64_t *of, size_t of_cap, size_t *n_units,
                          uint64_t *n_messages);

/* ------------------------------------------------------------ probe */

/* The document of mg_probe_json as compact JSON text: *out is a new
 * NUL-terminated string owned by the caller (mg_ffi_free), *len (may be
 * NULL) its length. Errors as mg_probe_json, and -ENOMEM. */
MG_API int mg_probe_json_text(const mg_probe_opts *opts, char **out,
                              size_t *len, char *err, size_t err_len);

/* Free what an mg_ffi function allocated for the caller. NULL is a
 * no-op. */
MG_API void mg_ffi_free(void *p);

/* ------------------------------------------------------------ layout */

/* MG_VERSION of the library (a static string). */
MG_API const char *mg_ffi_version(void);

/* sizeof the public structure named `type` ("mg_store_msg", "mg_meminfo",
 * … every struct of mg_store.h, mg_ffi.h, mg_store_builtin.h, mg_meminfo.h,
 * mg_proc.h, mg_psi.h, mg_probe.h, mg_paths.h, mg_cgroup.h's
 * mg_cgroup_info, mg_limits.h and mg_rlimit.h's mg_rlimit_support), or 0
 * for a name it does not know. A binding that declares these structures
 * itself checks its sizes against the library it loaded. */
MG_API size_t mg_ffi_sizeof(const char *type);

#ifdef __cplusplus
}
#endif
#endif
