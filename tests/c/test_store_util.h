/* test_store_util.h — helpers shared by the store's C tests: a counting
 * allocator (real heap use: malloc_usable_size + 8 per block, the glibc
 * chunk header) with failure injection, a full textual dump of a store,
 * and small message builders. */
#ifndef TEST_STORE_UTIL_H
#define TEST_STORE_UTIL_H

#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg.h"

/* ------------------------------------------------------------ allocator */

typedef struct counting_alloc {
  size_t live;       /* real heap bytes held now */
  size_t peak;       /* most ever held, counting a realloc's copy */
  size_t blocks;     /* blocks held now */
  size_t mallocs;    /* malloc calls */
  size_t reallocs;   /* realloc calls */
  size_t frees;      /* free calls */
  long fail_in;      /* > 0: the fail_in-th allocation from now fails */
  int size_mismatch; /* a free/realloc gave a size that was never asked */
} counting_alloc;

static inline size_t ca_real(void *p) {
  return malloc_usable_size(p) + 8;
}

static inline int ca_should_fail(counting_alloc *a) {
  if (a->fail_in > 0 && --a->fail_in == 0)
    return 1;
  return 0;
}

static inline void *ca_malloc(void *ud, size_t n) {
  counting_alloc *a = ud;
  a->mallocs++;
  if (ca_should_fail(a))
    return NULL;
  void *p = malloc(n);
  if (!p)
    return NULL;
  a->live += ca_real(p);
  a->blocks++;
  if (a->live > a->peak)
    a->peak = a->live;
  return p;
}

static inline void *ca_realloc(void *ud, void *p, size_t old, size_t n) {
  counting_alloc *a = ud;
  a->reallocs++;
  if (ca_should_fail(a))
    return NULL;
  size_t before = p ? ca_real(p) : 0;
  if (p && malloc_usable_size(p) < old)
    a->size_mismatch = 1;
  /* a moving realloc briefly holds both blocks: count it for the peak */
  if (a->live + n + 8 > a->peak)
    a->peak = a->live + n + 8;
  void *q = realloc(p, n);
  if (!q)
    return NULL;
  a->live = a->live - before + ca_real(q);
  if (!p)
    a->blocks++;
  if (a->live > a->peak)
    a->peak = a->live;
  return q;
}

static inline void ca_free(void *ud, void *p, size_t n) {
  counting_alloc *a = ud;
  if (!p)
    return;
  a->frees++;
  if (malloc_usable_size(p) < n)
    a->size_mismatch = 1;
  a->live -= ca_real(p);
  a->blocks--;
  free(p);
}

static inline mg_store_alloc ca_make(counting_alloc *a) {
  mg_store_alloc al = {ca_malloc, ca_realloc, ca_free, a};
  return al;
}

/* ------------------------------------------------------------ buffers */

typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;

static inline void sb_add(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void sb_add(sbuf *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0,
                      fmt, ap);
    va_end(ap);
    if (n < 0)
      abort();
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
    b->p = realloc(b->p, nc);
    if (!b->p)
      abort();
    b->cap = nc;
  }
}

/* Everything observable about a store except the rejected-add counter:
 * stats, limits, and every message with every field, content in hex. */
static inline char *store_dump(const mg_store *s) {
  sbuf b = {0};
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  sb_add(&b,
         "count=%" PRIu64 " total=%" PRIu64 " largest=%" PRIu64 " max=%" PRIu64
         "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 " tokens=%" PRIu64
         " payload=%" PRIu64 " overhead=%" PRIu64 " pinned=%" PRIu64 "/%" PRIu64
         " groups=%" PRIu64 " next=%" PRIu64 " evicted=%" PRIu64 "/%" PRIu64
         " archived=%" PRIu64 " removed=%" PRIu64 " replaced=%" PRIu64
         " util=%.17g/%.17g/%.17g"
         " near=%d%d%d warn_at=%g\n",
         st.message_count, st.total_size_bytes, st.largest_message_bytes,
         st.max_messages, st.max_message_size_bytes, st.max_total_size_bytes,
         st.max_tokens, st.total_tokens, st.payload_bytes, st.overhead_bytes,
         st.pinned_count, st.pinned_bytes, st.group_count, st.next_id,
         st.evicted_count, st.evicted_bytes, st.archived_count,
         st.removed_count, st.replaced_count, st.message_count_utilization,
         st.total_size_utilization, st.token_utilization, st.near_message_limit,
         st.near_size_limit, st.near_token_limit, st.warn_at);
  mg_store_iter it;
  mg_store_msg m;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(s, &it, &m) == 1) {
    sb_add(&b,
           "#%zu id=%" PRIu64 " role=%s source=%s group=%s pinned=%d "
           "prio=%" PRId64 " tokens=%" PRIu64 " time=%.17g size=%" PRIu64
           " meta=",
           it.position, m.id, m.role, m.source, m.group, m.pinned, m.priority,
           m.tokens, m.time, m.size_bytes);
    size_t c = 0;
    const char *k, *v;
    while (mg_store_msg_meta_next(&m, &c, &k, &v))
      sb_add(&b, "%s=%s;", k, v);
    sb_add(&b, " content=");
    for (size_t i = 0; i < m.content_len; i++)
      sb_add(&b, "%02x", m.content[i]);
    sb_add(&b, "\n");
  }
  return b.p;
}

/* ------------------------------------------------------------ builders */

static inline mg_store_input msg_text(const char *role, const char *content) {
  mg_store_input in = {0};
  in.role = role;
  in.content = content;
  in.content_len = content ? strlen(content) : 0;
  return in;
}

/* Add a text message; returns its id, or 0 (and prints) on failure. */
static inline uint64_t add_text(mg_store *s, const char *role,
                                const char *content) {
  mg_store_input in = msg_text(role, content);
  uint64_t id = 0;
  mg_store_error e;
  if (mg_store_add(s, &in, &id, &e) != 0) {
    fprintf(stderr, "add_text failed: %s\n", e.message);
    return 0;
  }
  return id;
}

/* Sum of sizes by iterating (the test's own recount). */
static inline uint64_t sum_sizes(const mg_store *s, uint64_t *count) {
  mg_store_iter it;
  mg_store_msg m;
  uint64_t sum = 0, n = 0;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(s, &it, &m) == 1) {
    sum += m.size_bytes;
    n++;
  }
  if (count)
    *count = n;
  return sum;
}

/* Size the store accounts for a message with these fields. */
static inline uint64_t expect_size(const char *role, size_t content_len) {
  return (role ? strlen(role) : 0) + content_len + MG_STORE_MSG_OVERHEAD;
}

#endif
