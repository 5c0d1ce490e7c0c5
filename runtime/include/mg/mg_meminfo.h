/* mg_meminfo.h — system memory from /proc/meminfo (core layer).
 *
 * All fields are bytes (the kernel reports kB = KiB). The /proc root is
 * injectable so tests can feed fixture files.
 */
#ifndef MG_MEMINFO_H
#define MG_MEMINFO_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_meminfo {
  uint64_t total_bytes;        /* MemTotal */
  uint64_t free_bytes;         /* MemFree */
  uint64_t available_bytes;    /* MemAvailable (estimated if absent) */
  uint64_t buffers_bytes;      /* Buffers */
  uint64_t cached_bytes;       /* Cached */
  uint64_t shmem_bytes;        /* Shmem */
  uint64_t sreclaimable_bytes; /* SReclaimable */
  uint64_t swap_total_bytes;   /* SwapTotal */
  uint64_t swap_free_bytes;    /* SwapFree */
  int available_estimated;     /* 1 when MemAvailable was missing (< 3.14) */
} mg_meminfo;

/* Parse the text of a meminfo file. MemTotal and MemFree are required;
 * a missing required field or a malformed line is MG_EPARSE, explained in
 * `err`. */
MG_API int mg_meminfo_parse(const char *text, mg_meminfo *out, char *err,
                            size_t err_len);

/* Read and parse `<proc_root>/meminfo`; proc_root NULL means "/proc". */
MG_API int mg_meminfo_read(const char *proc_root, mg_meminfo *out, char *err,
                           size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
