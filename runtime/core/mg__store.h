/* mg__store.h — internals of the bounded context store (core layer, not
 * public), shared by its files: mg_store.c (lifecycle, limits, locking,
 * add / remove / clear / set_*), mg_store_msg.c (a message's block),
 * mg_store_tab.c (id index, group table, link/unlink), mg_store_evict.c
 * (strategies, prune, make_room), mg_store_read.c (reads, check) and
 * mg_store_io.c (archive, snapshots, JSON, base64).
 */
#ifndef MG__STORE_H
#define MG__STORE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mg/mg_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One message = ONE allocation: this header, then the strings inline:
 *   role \0 source \0 group \0 meta ("key\0value\0" * meta_count)
 *   content \0
 * role/source/group/meta sit before the content so the small fields share
 * the header's cache lines. */
typedef struct mg__msg mg__msg;
struct mg__msg {
  mg__msg *prev, *next; /* insertion order (prev = older) */
  mg__msg *hnext;       /* id index chain */
  mg__msg *gnext;       /* group ring (circular, singly linked; self alone) */
  mg__msg *ghnext;      /* group table chain (group leaders only) */
  mg__msg *vnext;       /* victim chain during an eviction; graveyard */
  uint64_t id;
  uint64_t content_len;
  uint64_t tokens;
  int64_t priority;
  double time;
  uint32_t role_len, source_len, group_len;
  uint32_t meta_len; /* packed meta bytes, NULs included */
  uint32_t ghash;    /* hash of the group string (0 when none) */
  uint32_t epoch;    /* scratch mark of the operation that set it */
  uint8_t meta_count;
  uint8_t pinned;
  uint8_t flags; /* MG__F_* */
  uint8_t pad_;
  char data[];
};

enum {
  MG__F_VICTIM = 1, /* chosen for eviction by the running operation */
  MG__F_LEADER = 2  /* this member represents its group in the table */
};

/* Accounted payload of a message (what its size counts besides overhead). */
static inline uint64_t mg__msg_payload(const mg__msg *m) {
  return m->content_len + m->role_len + m->source_len + m->group_len +
         m->meta_len;
}
static inline uint64_t mg__msg_size(const mg__msg *m) {
  return mg__msg_payload(m) + MG_STORE_MSG_OVERHEAD;
}
/* Bytes of the block holding `m`. */
static inline size_t mg__msg_block(const mg__msg *m) {
  return sizeof(mg__msg) + (size_t)mg__msg_payload(m) + 4;
}
static inline const char *mg__msg_group(const mg__msg *m) {
  return m->data + m->role_len + 1 + m->source_len + 1;
}
static inline const unsigned char *mg__msg_content(const mg__msg *m) {
  return (const unsigned char *)(m->data + m->role_len + 1 + m->source_len + 1 +
                                 m->group_len + 1 + m->meta_len);
}

/* Dimension bits (warnings fired, limits lowered below use). */
enum { MG__D_COUNT = 1, MG__D_TOTAL = 2, MG__D_TOKENS = 4, MG__D_MSGSIZE = 8 };

struct mg_store {
  pthread_mutex_t mu;
  unsigned refs; /* holders (atomic); the last mg_store_free frees */
  int closed;    /* mg_store_close: no more changes, no callbacks */
  char name[MG_STORE_NAME_MAX + 1];
  mg_store_limits lim;
  mg_store_on_full on_full;
  mg_store_strategy_fn strategy;
  void *strategy_ud;
  char strategy_name[64];
  mg_store_evict_fn on_evict;
  void *on_evict_ud;
  mg_store_warn_fn on_warn;
  void *on_warn_ud;
  char *archive_path; /* NULL = no archive */
  size_t archive_path_size;
  int archive_fsync;
  FILE *archive_f; /* opened on first use */
  mg_store_estimate_fn estimate;
  void *estimate_ud;
  mg_store_clock_fn clock;
  void *clock_ud;
  mg_store_alloc alloc;
  int libc_alloc; /* alloc is the default: call malloc/free directly */
  mg_logger *logger;

  /* messages */
  mg__msg *head, *tail; /* oldest, newest */
  uint64_t count;
  mg__msg **idx; /* id index: buckets, power of two */
  size_t idx_nb, idx_cap;
  mg__msg **gtab; /* group table: buckets, power of two */
  size_t gtab_nb, gtab_cap;
  uint64_t ngroups;
  uint64_t next_id;

  /* accounting, kept incrementally */
  uint64_t total_bytes, payload_bytes, total_tokens;
  uint64_t pinned_count, pinned_bytes;
  uint64_t largest, largest_n; /* largest size and how many have it */
  int largest_dirty;           /* the largest left: recompute lazily */

  /* thresholds: near iff usage >= thr_* (same as utilisation >= warn_at) */
  uint64_t thr_count, thr_bytes, thr_tokens;
  unsigned warned;  /* MG__D_* fired and not yet re-armed */
  unsigned lowered; /* MG__D_* over its limit because the limit was lowered */

  uint32_t epoch;     /* scratch mark generation */
  uint64_t mutations; /* bumped by every change of the message set */
  mg__msg *pc_node;   /* position cache for mg_store_at */
  uint64_t pc_pos, pc_mut;

  /* counters */
  uint64_t evicted_count, evicted_bytes, archived_count, removed_count;
  uint64_t replaced_count, rejected_count;
};

/* Batch given to on_evict: the ordered victim chain. */
struct mg_store_batch {
  const mg_store *s;
  mg__msg *first;
  size_t n;
  mg__msg *cur; /* cursor for O(1) sequential access */
  size_t cur_i;
};

/* ---- helpers shared by every file of the store */

/* Plural ending for a count in a message: "%" PRIu64 " message%s", n,
 * mg__s(n) gives "1 message", "2 messages". */
static inline const char *mg__s(uint64_t n) {
  return n == 1 ? "" : "s";
}

#define MG__TAB_MIN 16u /* smallest table, in buckets */

static inline uint32_t mg__hash_str(const char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 16777619u;
  }
  return h ? h : 1;
}

static inline mg__msg *mg__find(const mg_store *s, uint64_t id) {
  mg__msg *m = s->idx[id & (s->idx_nb - 1)];
  while (m && m->id != id)
    m = m->hnext;
  return m;
}

static inline mg__msg *mg__group_leader(const mg_store *s, const char *g,
                                        size_t len, uint32_t h) {
  for (mg__msg *m = s->gtab[h & (s->gtab_nb - 1)]; m; m = m->ghnext)
    if (m->ghash == h && m->group_len == len &&
        memcmp(mg__msg_group(m), g, len) == 0)
      return m;
  return NULL;
}

/* Callbacks run with the store locked. A thread inside one of them has a
 * frame: reads of that store skip the lock, mutations are refused. */
typedef struct mg__frame {
  const mg_store *s;
  struct mg__frame *prev;
} mg__frame;
/* This thread's frames, innermost first (mg_store_lock.c); NULL outside
 * every callback, which is what the fast paths test. */
extern _Thread_local mg__frame *mg__frames;
/* Is this thread inside one of `s`'s callbacks (strategy, on_evict)? */
int mg__held_here(const mg_store *s);
void mg__frame_push(mg__frame *f, const mg_store *s);
void mg__frame_pop(mg__frame *f);
/* Read lock: returns 1 when taken (unlock after), 0 when this thread
 * already holds it from a callback. */
int mg__rlock(const mg_store *s);
void mg__runlock(const mg_store *s, int taken);
/* Recompute the largest size when it left (locked). */
void mg__largest_refresh(const mg_store *s);
/* Stats of a locked store. */
void mg__stats_locked(const mg_store *s, mg_store_stats *o);

/* ---- mg_store.c: clock, logging, the write lock */

/* The default clock (CLOCK_REALTIME_COARSE, unix seconds). */
double mg__clock_default(void *ud);
static inline double mg__now(const mg_store *s) {
  return s->clock == mg__clock_default ? mg__clock_default(NULL)
                                       : s->clock(s->clock_ud);
}

static inline void mg__log(const mg_store *s, mg_log_level lvl,
                           const char *event, const mg_log_field *f, size_t n) {
  if (s->logger && mg_logger_level(s->logger) <= lvl)
    mg_log(s->logger, lvl, event, f, n);
}

void *mg__store_malloc(const mg_store *s, size_t n);
void mg__store_free_mem(const mg_store *s, void *p, size_t n);

/* Work left for after the unlock of a mutation. */
typedef struct mg__op {
  mg__msg *grave; /* blocks to free (chained by vnext) */
  unsigned fire;  /* MG__D_* warnings to fire */
  mg_store_stats stats;
} mg__op;

/* Only grave and fire need a value: stats is filled when fire is set. */
static inline void mg__op_init(mg__op *op) {
  op->grave = NULL;
  op->fire = 0;
}

/* Take the lock for a mutation: 0, or MG_EBUSY from inside one of the
 * store's own callbacks, or MG_ECLOSED (lock not held) once closed. */
int mg__wlock(mg_store *s);
/* The same, saying so in err / e (either may be NULL). */
int mg__wlock_err(mg_store *s, char *err, size_t err_len);
int mg__wlock_e(mg_store *s, mg_store_error *e);

static inline void mg__free_block(const mg_store *s, mg__msg *m) {
  if (s->libc_alloc)
    free(m);
  else
    s->alloc.free_fn(s->alloc.ud, m, mg__msg_block(m));
}

/* Release the lock, then free the graveyard and fire the warnings. */
void mg__wunlock_slow(mg_store *s, mg__op *op);
static inline void mg__wunlock(mg_store *s, mg__op *op) {
  if (!op->fire && (!op->grave || !op->grave->vnext)) { /* the usual case */
    mg__msg *g = op->grave;
    pthread_mutex_unlock(&s->mu);
    if (g)
      mg__free_block(s, g); /* allocator fields never change */
    return;
  }
  mg__wunlock_slow(s, op);
}

/* Re-evaluate warnings and lowered limits after a change (locked). */
void mg__after_change(mg_store *s, mg__op *op);

/* Fill a structured error (e may be NULL). */
void mg__lerr(mg_store_error *e, int code, mg_store_limit_type t, uint64_t cur,
              uint64_t lim, const char *details, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* "the token total would overflow: …": `held` tokens in the store plus
 * `more` (`what`: "in the message") pass MG_STORE_LIMIT_MAX. Returns
 * -EOVERFLOW. */
int mg__token_overflow(char *err, size_t err_len, uint64_t held, uint64_t more,
                       const char *what);
/* Record and log a failed add (locked): counts it in rejected_count. */
int mg__add_fail(mg_store *s, mg_store_error *e, int code,
                 mg_store_limit_type t, uint64_t cur, uint64_t lim,
                 const char *reason, const char *details);

/* ---- mg_store.c, used by mg_store_io.c */

/* Append a message with a given id and time, bypassing limits (for
 * mg_store_load; tokens as in->has_tokens says). The store must not be
 * shared yet. 0, or with err: MG_ECORRUPT (an invalid message), -ENOMEM,
 * or the estimator's code. */
int mg__store_insert_raw(mg_store *s, const mg_store_input *in, uint64_t id,
                         double time, char *err, size_t err_len);
/* After a load: mark dimensions already over their limits as lowered. */
void mg__store_after_load(mg_store *s);
/* Evaluate the warnings of a freshly loaded store (they fire at once). */
void mg__store_load_warn(mg_store *s);

/* ---- mg_store_msg.c: a message's block */

/* A validated input: lengths and derived values. */
typedef struct mg__prep {
  size_t role_len, source_len, group_len, meta_len;
  uint64_t payload, size;
  uint32_t ghash;
  size_t block;
} mg__prep;

/* Validate `in` and compute its lengths: 0, or -EINVAL with err. */
int mg__prepare(const mg_store_input *in, mg__prep *p, char *err,
                size_t err_len);
/* Call the store's estimator for `in`: 0 with *tokens, or its code (see
 * mg_store_estimate_fn) with "estimator failed: <why>" in err. */
int mg__estimate_call(const mg_store *s, const mg_store_input *in,
                      uint64_t *tokens, char *err, size_t err_len);
/* The tokens of `in`: given, ceil(content_len / 4), or the estimator's. */
static inline int mg__estimate(const mg_store *s, const mg_store_input *in,
                               uint64_t *tokens, char *err, size_t err_len) {
  if (in->has_tokens)
    *tokens = in->tokens;
  else if (!s->estimate)
    *tokens = (uint64_t)in->content_len / 4 + (in->content_len % 4 != 0);
  else
    return mg__estimate_call(s, in, tokens, err, err_len);
  return 0;
}
/* Allocate and fill a block (id not yet assigned); NULL when out of
 * memory. */
mg__msg *mg__build(const mg_store *s, const mg_store_input *in,
                   const mg__prep *p, uint64_t tokens, double now);
/* Fill a view of `m`. */
void mg__store_view(const mg__msg *m, mg_store_msg *v);

/* ---- mg_store_tab.c: tables, link/unlink (locked) */

/* Grow the tables for extra messages / groups: 0, or -ENOMEM. */
int mg__ensure_slow(mg_store *s, uint64_t extra_msgs, uint64_t extra_groups);
static inline int mg__ensure(mg_store *s, uint64_t extra_msgs,
                             uint64_t extra_groups) {
  if ((uint64_t)s->idx_nb >= s->count + extra_msgs &&
      (uint64_t)s->gtab_nb >= s->ngroups + extra_groups)
    return 0;
  return mg__ensure_slow(s, extra_msgs, extra_groups);
}
/* Give table memory back after removals (best effort). */
void mg__shrink_slow(mg_store *s);
static inline void mg__shrink(mg_store *s) {
  if ((s->idx_nb > MG__TAB_MIN && s->count * 4 < s->idx_nb) ||
      (s->gtab_nb > MG__TAB_MIN && s->ngroups * 4 < s->gtab_nb))
    mg__shrink_slow(s);
}
/* Link `m` before `before` (NULL: at the tail) into the list, the id
 * index and its group, and account for it. The tables must have room
 * (mg__ensure). */
void mg__link(mg_store *s, mg__msg *m, mg__msg *before);
/* Unlink `m` from everything and take it out of the totals. */
void mg__unlink(mg_store *s, mg__msg *m);

/* ---- mg_store_evict.c */

/* Make room for a message of `size` / `tokens` in `group` (extra_groups:
 * 1 when its group is new) before an add, as on_full says; 0 when it fits
 * now (the tables then have room for it). Locked. */
int mg__room(mg_store *s, uint64_t size, uint64_t tokens, const char *group,
             size_t group_len, uint64_t extra_groups, mg__op *op,
             mg_store_error *e);

/* ---- mg_store_io.c */

/* Append one JSON line per message of the ordered chain (n messages) to
 * the archive, then fflush (and fsync when asked). *off receives the
 * archive's size before the batch, for mg__store_archive_rollback. On
 * failure the batch is cut off again (best effort) and the file closed. */
int mg__store_archive_write(mg_store *s, mg__msg *first, size_t n,
                            mg_store_evict_reason reason, double now,
                            int64_t *off, char *err, size_t err_len);
/* Cut the archive back to `off` (on_evict refused the batch). */
void mg__store_archive_rollback(mg_store *s, int64_t off);
/* Close the archive (mg_store_free). */
void mg__store_archive_close(mg_store *s);

/* JSON object of a message (new reference; NULL on out-of-memory). */
json_t *mg__store_msg_json(const mg__msg *m);

/* Base64 (RFC 4648, with padding). encode: out needs 4*ceil(n/3)+1 bytes,
 * returns the length written (NUL-terminated). decode: out needs 3*(n/4)
 * bytes; returns the decoded length or -1 when `in` is not valid. */
size_t mg__b64_encode(const unsigned char *in, size_t n, char *out);
long long mg__b64_decode(const char *in, size_t n, unsigned char *out);

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int mg__utf8_valid(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
