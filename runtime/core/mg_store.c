/* mg_store.c — the bounded context store: structure, accounting, limits,
 * eviction (core layer). Archive and snapshots live in mg_store_io.c.
 *
 * Layout: messages form a doubly linked list in insertion order; an id
 * index (chained hash, power-of-two buckets, identity hash: ids are
 * sequential) finds them in O(1); messages sharing a group form a circular
 * ring, and one member per group (the leader) sits in a group table keyed
 * by the group string. Both tables keep at most one entry per bucket
 * (doubling past load 1) and shrink in place below load 1/4 (back to load
 * >= 1/2), so each costs at most 4 buckets = 32 bytes per message, inside
 * MG_STORE_MSG_OVERHEAD; chains stay short, so the oldest message's entry
 * is found without walking over newer ones.
 *
 * Every mutation is prepared first (victims marked, tables grown, archive
 * written, on_evict told) and committed only when nothing can fail any
 * more; blocks are freed after the lock is released.
 */
#include "mg__store.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mg/mg_error.h"

/* The overhead must cover: header, 4 NULs, allocator chunk overhead (24),
 * id index (<= 32 bytes per message) and group table (the same). */
_Static_assert(sizeof(mg__msg) + 4 + 24 + 32 + 32 <= MG_STORE_MSG_OVERHEAD,
               "MG_STORE_MSG_OVERHEAD does not cover the bookkeeping");
/* The constant covers the store object, the two minimum tables and the copy
 * of the archive path (< 4096 bytes), each with allocator overhead. */
_Static_assert(sizeof(mg_store) + 2 * MG__TAB_MIN * sizeof(void *) + 4096 +
                       4 * 24 <=
                   MG_STORE_HEAP_CONST,
               "MG_STORE_HEAP_CONST does not cover the store object");

/* ------------------------------------------------------------ helpers */

static void *mg__libc_malloc(void *ud, size_t n) {
  (void)ud;
  return malloc(n);
}
static void *mg__libc_realloc(void *ud, void *p, size_t o, size_t n) {
  (void)ud;
  (void)o;
  return realloc(p, n);
}
static void mg__libc_free(void *ud, void *p, size_t n) {
  (void)ud;
  (void)n;
  free(p);
}

void *mg__store_malloc(const mg_store *s, size_t n) {
  return s->alloc.malloc_fn(s->alloc.ud, n);
}
void mg__store_free_mem(const mg_store *s, void *p, size_t n) {
  if (p)
    s->alloc.free_fn(s->alloc.ud, p, n);
}

static double mg__clock_default(void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double mg__now(const mg_store *s) {
  return s->clock == mg__clock_default ? mg__clock_default(NULL)
                                       : s->clock(s->clock_ud);
}

static void mg__log(const mg_store *s, mg_log_level lvl, const char *event,
                    const mg_log_field *f, size_t n) {
  if (s->logger && mg_logger_level(s->logger) <= lvl)
    mg_log(s->logger, lvl, event, f, n);
}

/* ------------------------------------------------------------ locking */

/* Callbacks run with the store locked. A thread inside one of them has a
 * frame here: reads of that store skip the lock, mutations are refused. */
static _Thread_local mg__frame *mg__frames;

int mg__held_here(const mg_store *s) {
  for (const mg__frame *f = mg__frames; f; f = f->prev)
    if (f->s == s)
      return 1;
  return 0;
}
void mg__frame_push(mg__frame *f, const mg_store *s) {
  f->s = s;
  f->prev = mg__frames;
  mg__frames = f;
}
void mg__frame_pop(mg__frame *f) {
  mg__frames = f->prev;
}

/* Read lock: returns 1 when taken (unlock after), 0 when this thread
 * already holds it from a callback. */
int mg__rlock(const mg_store *s) {
  if (mg__frames && mg__held_here(s))
    return 0;
  pthread_mutex_lock(&((mg_store *)s)->mu);
  return 1;
}
void mg__runlock(const mg_store *s, int taken) {
  if (taken)
    pthread_mutex_unlock(&((mg_store *)s)->mu);
}

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

static int mg__wlock(mg_store *s) {
  if (mg__frames && mg__held_here(s))
    return MG_EBUSY;
  pthread_mutex_lock(&s->mu);
  return 0;
}

static void mg__free_block(const mg_store *s, mg__msg *m) {
  if (s->libc_alloc)
    free(m);
  else
    s->alloc.free_fn(s->alloc.ud, m, mg__msg_block(m));
}

static void mg__wunlock_slow(mg_store *s, mg__op *op);
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

static void mg__wunlock_slow(mg_store *s, mg__op *op) {
  mg_store_warn_fn warn = s->on_warn;
  void *wud = s->on_warn_ud;
  mg_logger *lg = s->logger;
  unsigned fire = op->fire;
  char name[sizeof s->name];
  if (fire)
    memcpy(name, s->name, sizeof name);
  pthread_mutex_unlock(&s->mu);
  for (mg__msg *m = op->grave, *nx; m; m = nx) {
    nx = m->vnext;
    mg__free_block(s, m);
  }
  op->grave = NULL;
  if (!fire)
    return;
  static const struct {
    unsigned bit;
    mg_store_warn_kind kind;
    const char *event;
  } dims[] = {
      {MG__D_COUNT, MG_STORE_WARN_MESSAGE_COUNT, "approaching_message_limit"},
      {MG__D_TOTAL, MG_STORE_WARN_TOTAL_SIZE, "approaching_size_limit"},
      {MG__D_TOKENS, MG_STORE_WARN_TOKENS, "approaching_token_limit"}};
  const mg_store_stats *st = &op->stats;
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    if (!(fire & dims[i].bit))
      continue;
    if (lg && mg_logger_level(lg) <= MG_LOG_WARN) {
      uint64_t cur = 0, lim = 0;
      double util = 0;
      if (dims[i].bit == MG__D_COUNT) {
        cur = st->message_count, lim = st->max_messages;
        util = st->message_count_utilization;
      } else if (dims[i].bit == MG__D_TOTAL) {
        cur = st->total_size_bytes, lim = st->max_total_size_bytes;
        util = st->total_size_utilization;
      } else {
        cur = st->total_tokens, lim = st->max_tokens;
        util = st->token_utilization;
      }
      mg_log_field f[] = {MG_LF_STR("store", name), MG_LF_UINT("current", cur),
                          MG_LF_UINT("limit", lim),
                          MG_LF_DBL("utilization", util),
                          MG_LF_DBL("warn_at", st->warn_at)};
      mg_log(lg, MG_LOG_WARN, dims[i].event, f, sizeof f / sizeof f[0]);
    }
    if (warn)
      warn(wud, s, dims[i].kind, st);
  }
}

/* ------------------------------------------------------------ names */

const char *mg_store_limit_name(mg_store_limit_type t) {
  switch (t) {
  case MG_STORE_LIMIT_MESSAGE_SIZE:
    return "message_size";
  case MG_STORE_LIMIT_MESSAGE_COUNT:
    return "message_count";
  case MG_STORE_LIMIT_TOTAL_SIZE:
    return "total_size";
  case MG_STORE_LIMIT_TOKENS:
    return "tokens";
  default:
    return "none";
  }
}

const char *mg_store_warn_name(mg_store_warn_kind k) {
  switch (k) {
  case MG_STORE_WARN_MESSAGE_COUNT:
    return "message_count";
  case MG_STORE_WARN_TOTAL_SIZE:
    return "total_size";
  default:
    return "tokens";
  }
}

const char *mg_store_evict_reason_name(mg_store_evict_reason r) {
  return r == MG_STORE_EVICT_PRUNE ? "prune" : "strategy";
}

/* ------------------------------------------------------------ UTF-8 */

int mg__utf8_valid(const char *str, size_t n) {
  const unsigned char *p = (const unsigned char *)str, *e = p + n;
  while (p < e) {
    unsigned c = *p;
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07;
    else
      return 0;
    if ((size_t)(e - p) < len)
      return 0;
    for (size_t i = 1; i < len; i++) {
      if ((p[i] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    p += len;
  }
  return 1;
}

/* ------------------------------------------------------------ limits */

void mg_store_options_init(mg_store_options *o) {
  memset(o, 0, sizeof *o);
  o->limits.max_messages = MG_STORE_DEFAULT_MAX_MESSAGES;
  o->limits.max_message_size_bytes = MG_STORE_DEFAULT_MAX_MESSAGE_SIZE;
  o->limits.max_total_size_bytes = MG_STORE_DEFAULT_MAX_TOTAL_SIZE;
  o->limits.max_tokens = 0;
  o->limits.warn_at = MG_STORE_DEFAULT_WARN_AT;
  o->on_full = MG_STORE_ON_FULL_ERROR;
}

int mg_store_limits_validate(const mg_store_limits *l, char *err,
                             size_t err_len) {
  static const struct {
    const char *name;
    size_t off;
    uint64_t min;
  } f[] = {{"max_messages", offsetof(mg_store_limits, max_messages),
            MG_STORE_MIN_MAX_MESSAGES},
           {"max_message_size",
            offsetof(mg_store_limits, max_message_size_bytes),
            MG_STORE_MIN_MAX_MESSAGE_SIZE},
           {"max_total_size", offsetof(mg_store_limits, max_total_size_bytes),
            MG_STORE_MIN_MAX_TOTAL_SIZE},
           {"max_tokens", offsetof(mg_store_limits, max_tokens), 0}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    uint64_t v;
    memcpy(&v, (const char *)l + f[i].off, sizeof v);
    if (v < f[i].min)
      return mg_errf(err, err_len, -EINVAL,
                     "%s %" PRIu64 " is below the minimum %" PRIu64, f[i].name,
                     v, f[i].min);
    if (v > MG_STORE_LIMIT_MAX)
      return mg_errf(err, err_len, -EINVAL,
                     "%s %" PRIu64 " is above the maximum %" PRIu64, f[i].name,
                     v, MG_STORE_LIMIT_MAX);
  }
  if (!(l->warn_at > 0.0 && l->warn_at <= 1.0))
    return mg_errf(err, err_len, -EINVAL,
                   "warn_at %g is out of range: it must be > 0 and <= 1",
                   l->warn_at);
  return 0;
}

/* Smallest usage u with (double)u / max >= warn_at. */
static uint64_t mg__threshold(uint64_t max, double warn_at) {
  if (max == 0)
    return UINT64_MAX;
  double want = ceil(warn_at * (double)max);
  uint64_t c = want >= (double)max ? max : (uint64_t)want;
  while (c > 0 && (double)(c - 1) / (double)max >= warn_at)
    c--;
  while ((double)c / (double)max < warn_at)
    c++;
  return c;
}

static void mg__apply_limits(mg_store *s, const mg_store_limits *l) {
  __atomic_store_n(&s->lim.max_message_size_bytes, l->max_message_size_bytes,
                   __ATOMIC_RELAXED);
  s->lim.max_messages = l->max_messages;
  s->lim.max_total_size_bytes = l->max_total_size_bytes;
  s->lim.max_tokens = l->max_tokens;
  s->lim.warn_at = l->warn_at;
  s->thr_count = mg__threshold(l->max_messages, l->warn_at);
  s->thr_bytes = mg__threshold(l->max_total_size_bytes, l->warn_at);
  s->thr_tokens = mg__threshold(l->max_tokens, l->warn_at);
}

/* ------------------------------------------------------------ tables */

/* Grow `*tab` (nb buckets in use, cap allocated) until load <= 1 for
 * `want` entries. Entries keyed by key(m) & (nb - 1). */
static uint64_t mg__key_id(const mg__msg *m) {
  return m->id;
}
static uint64_t mg__key_group(const mg__msg *m) {
  return m->ghash;
}

static int mg__tab_grow(mg_store *s, mg__msg ***tab, size_t *nb, size_t *cap,
                        uint64_t want, uint64_t (*key)(const mg__msg *),
                        size_t chain_off) {
  while ((uint64_t)*nb < want) {
    size_t old = *nb, nn = old * 2;
    if (nn > *cap) {
      mg__msg **t = s->alloc.realloc_fn(s->alloc.ud, *tab, *cap * sizeof *t,
                                        nn * sizeof *t);
      if (!t)
        return -ENOMEM;
      *tab = t;
      *cap = nn;
    }
    mg__msg **t = *tab;
    for (size_t i = old; i < nn; i++)
      t[i] = NULL;
    for (size_t i = 0; i < old; i++) { /* split chain i into i and i+old */
      mg__msg *m = t[i], **lo = &t[i], **hi = &t[i + old];
      while (m) {
        mg__msg *nx = *(mg__msg **)((char *)m + chain_off);
        if (key(m) & old) {
          *hi = m;
          hi = (mg__msg **)((char *)m + chain_off);
        } else {
          *lo = m;
          lo = (mg__msg **)((char *)m + chain_off);
        }
        m = nx;
      }
      *lo = NULL;
      *hi = NULL;
    }
    *nb = nn;
  }
  return 0;
}

/* Below load 1/4, halve in place until load >= 1/2, then give the memory
 * back (best effort). */
static void mg__tab_shrink(mg_store *s, mg__msg ***tab, size_t *nb, size_t *cap,
                           uint64_t have, size_t chain_off) {
  if (*nb <= MG__TAB_MIN || have * 4 >= *nb)
    return;
  while (*nb > MG__TAB_MIN && have * 2 < *nb) {
    size_t half = *nb / 2;
    mg__msg **t = *tab;
    for (size_t i = 0; i < half; i++) { /* append chain i+half to chain i */
      mg__msg **pp = &t[i];
      while (*pp)
        pp = (mg__msg **)((char *)*pp + chain_off);
      *pp = t[i + half];
    }
    *nb = half;
  }
  mg__msg **t =
      s->alloc.realloc_fn(s->alloc.ud, *tab, *cap * sizeof *t, *nb * sizeof *t);
  if (t) {
    *tab = t;
    *cap = *nb;
  }
}

static int mg__ensure_slow(mg_store *s, uint64_t extra_msgs,
                           uint64_t extra_groups) {
  int rc =
      mg__tab_grow(s, &s->idx, &s->idx_nb, &s->idx_cap, s->count + extra_msgs,
                   mg__key_id, offsetof(mg__msg, hnext));
  if (rc == 0)
    rc = mg__tab_grow(s, &s->gtab, &s->gtab_nb, &s->gtab_cap,
                      s->ngroups + extra_groups, mg__key_group,
                      offsetof(mg__msg, ghnext));
  return rc;
}

static inline int mg__ensure(mg_store *s, uint64_t extra_msgs,
                             uint64_t extra_groups) {
  if ((uint64_t)s->idx_nb >= s->count + extra_msgs &&
      (uint64_t)s->gtab_nb >= s->ngroups + extra_groups)
    return 0;
  return mg__ensure_slow(s, extra_msgs, extra_groups);
}

static void mg__shrink_slow(mg_store *s) {
  mg__tab_shrink(s, &s->idx, &s->idx_nb, &s->idx_cap, s->count,
                 offsetof(mg__msg, hnext));
  mg__tab_shrink(s, &s->gtab, &s->gtab_nb, &s->gtab_cap, s->ngroups,
                 offsetof(mg__msg, ghnext));
}

static inline void mg__shrink(mg_store *s) {
  if ((s->idx_nb > MG__TAB_MIN && s->count * 4 < s->idx_nb) ||
      (s->gtab_nb > MG__TAB_MIN && s->ngroups * 4 < s->gtab_nb))
    mg__shrink_slow(s);
}

/* ------------------------------------------------------------ link/unlink */

static void mg__link(mg_store *s, mg__msg *m, mg__msg *before) {
  /* order: before `before`, or at the tail */
  if (before) {
    m->next = before;
    m->prev = before->prev;
    if (before->prev)
      before->prev->next = m;
    else
      s->head = m;
    before->prev = m;
  } else {
    m->next = NULL;
    m->prev = s->tail;
    if (s->tail)
      s->tail->next = m;
    else
      s->head = m;
    s->tail = m;
  }
  /* id index */
  mg__msg **b = &s->idx[m->id & (s->idx_nb - 1)];
  m->hnext = *b;
  *b = m;
  /* group */
  m->flags &= (uint8_t)~MG__F_LEADER;
  if (m->group_len) {
    mg__msg *l = mg__group_leader(s, mg__msg_group(m), m->group_len, m->ghash);
    if (l) {
      m->gnext = l->gnext;
      l->gnext = m;
    } else {
      m->gnext = m;
      m->flags |= MG__F_LEADER;
      mg__msg **gb = &s->gtab[m->ghash & (s->gtab_nb - 1)];
      m->ghnext = *gb;
      *gb = m;
      s->ngroups++;
    }
  } else {
    m->gnext = m;
  }
  /* accounting */
  uint64_t sz = mg__msg_size(m);
  s->count++;
  s->total_bytes += sz;
  s->payload_bytes += sz - MG_STORE_MSG_OVERHEAD;
  s->total_tokens += m->tokens;
  if (m->pinned) {
    s->pinned_count++;
    s->pinned_bytes += sz;
  }
  if (sz > s->largest) {
    s->largest = sz;
    s->largest_n = 1;
    s->largest_dirty = 0;
  } else if (sz == s->largest) {
    s->largest_n++;
    s->largest_dirty = 0;
  }
  s->mutations++;
}

static void mg__unlink(mg_store *s, mg__msg *m) {
  if (m->prev)
    m->prev->next = m->next;
  else
    s->head = m->next;
  if (m->next)
    m->next->prev = m->prev;
  else
    s->tail = m->prev;
  mg__msg **pp = &s->idx[m->id & (s->idx_nb - 1)];
  while (*pp != m)
    pp = &(*pp)->hnext;
  *pp = m->hnext;
  if (m->group_len) {
    mg__msg **gb = &s->gtab[m->ghash & (s->gtab_nb - 1)];
    if (m->gnext == m) { /* last member: the group goes */
      while (*gb != m)
        gb = &(*gb)->ghnext;
      *gb = m->ghnext;
      s->ngroups--;
    } else {
      mg__msg *p = m->gnext;
      while (p->gnext != m)
        p = p->gnext;
      p->gnext = m->gnext;
      if (m->flags & MG__F_LEADER) { /* hand the table slot to a member */
        mg__msg *nl = m->gnext;
        while (*gb != m)
          gb = &(*gb)->ghnext;
        nl->ghnext = m->ghnext;
        nl->flags |= MG__F_LEADER;
        *gb = nl;
      }
    }
    m->flags &= (uint8_t)~MG__F_LEADER;
  }
  uint64_t sz = mg__msg_size(m);
  s->count--;
  s->total_bytes -= sz;
  s->payload_bytes -= sz - MG_STORE_MSG_OVERHEAD;
  s->total_tokens -= m->tokens;
  if (m->pinned) {
    s->pinned_count--;
    s->pinned_bytes -= sz;
  }
  if (sz == s->largest && !s->largest_dirty && --s->largest_n == 0)
    s->largest_dirty = 1;
  s->mutations++;
}

/* ------------------------------------------------------------ warnings */

/* Re-evaluate warnings and lowered limits after a change (locked). */
static void mg__after_change(mg_store *s, mg__op *op) {
  unsigned near = 0;
  if (s->count >= s->thr_count)
    near |= MG__D_COUNT;
  if (s->total_bytes >= s->thr_bytes)
    near |= MG__D_TOTAL;
  if (s->lim.max_tokens && s->total_tokens >= s->thr_tokens)
    near |= MG__D_TOKENS;
  unsigned up = near & ~s->warned;
  s->warned = near; /* a dimension below warn_at re-arms */
  if (s->lowered) {
    if (s->count <= s->lim.max_messages)
      s->lowered &= ~(unsigned)MG__D_COUNT;
    if (s->total_bytes <= s->lim.max_total_size_bytes)
      s->lowered &= ~(unsigned)MG__D_TOTAL;
    if (!s->lim.max_tokens || s->total_tokens <= s->lim.max_tokens)
      s->lowered &= ~(unsigned)MG__D_TOKENS;
    if (!s->largest_dirty && s->largest <= s->lim.max_message_size_bytes)
      s->lowered &= ~(unsigned)MG__D_MSGSIZE;
  }
  if (up && (s->on_warn || s->logger)) {
    op->fire |= up;
    mg__stats_locked(s, &op->stats);
  }
}

/* ------------------------------------------------------------ create/free */

int mg_store_new(const mg_store_options *opts, mg_store **out, char *err,
                 size_t err_len) {
  *out = NULL;
  mg_store_options dflt;
  if (!opts) {
    mg_store_options_init(&dflt);
    opts = &dflt;
  }
  int rc = mg_store_limits_validate(&opts->limits, err, err_len);
  if (rc)
    return rc;
  const char *name = opts->name ? opts->name : "store";
  size_t nlen = strlen(name);
  if (nlen == 0 || nlen > MG_STORE_NAME_MAX || !mg__utf8_valid(name, nlen))
    return mg_errf(err, err_len, -EINVAL,
                   "store name \"%.80s\" is invalid: it must be 1 to %u bytes "
                   "of UTF-8",
                   name, MG_STORE_NAME_MAX);
  if (opts->on_full != MG_STORE_ON_FULL_ERROR &&
      opts->on_full != MG_STORE_ON_FULL_PRUNE)
    return mg_errf(err, err_len, -EINVAL,
                   "on_full %d is invalid: it must be error or prune",
                   (int)opts->on_full);
  size_t plen = 0;
  if (opts->archive_path) {
    plen = strlen(opts->archive_path);
    if (plen == 0 || plen >= 4096)
      return mg_errf(err, err_len, -EINVAL,
                     "archive path must be 1 to 4095 bytes, got %zu", plen);
  }
  mg_store_alloc a = {mg__libc_malloc, mg__libc_realloc, mg__libc_free, NULL};
  if (opts->alloc) {
    if (!opts->alloc->malloc_fn || !opts->alloc->realloc_fn ||
        !opts->alloc->free_fn)
      return mg_errf(err, err_len, -EINVAL,
                     "allocator must give malloc_fn, realloc_fn and free_fn");
    a = *opts->alloc;
  }
  mg_store *s = a.malloc_fn(a.ud, sizeof *s);
  if (!s)
    return mg_errf(err, err_len, -ENOMEM, "out of memory creating store");
  memset(s, 0, sizeof *s);
  s->alloc = a;
  s->libc_alloc = opts->alloc == NULL;
  s->idx = a.malloc_fn(a.ud, MG__TAB_MIN * sizeof *s->idx);
  s->gtab = a.malloc_fn(a.ud, MG__TAB_MIN * sizeof *s->gtab);
  if (plen) {
    s->archive_path = a.malloc_fn(a.ud, plen + 1);
    s->archive_path_size = plen + 1;
  }
  if (!s->idx || !s->gtab || (plen && !s->archive_path)) {
    mg__store_free_mem(s, s->idx, MG__TAB_MIN * sizeof *s->idx);
    mg__store_free_mem(s, s->gtab, MG__TAB_MIN * sizeof *s->gtab);
    mg__store_free_mem(s, s->archive_path, s->archive_path_size);
    a.free_fn(a.ud, s, sizeof *s);
    return mg_errf(err, err_len, -ENOMEM, "out of memory creating store");
  }
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    mg__store_free_mem(s, s->idx, MG__TAB_MIN * sizeof *s->idx);
    mg__store_free_mem(s, s->gtab, MG__TAB_MIN * sizeof *s->gtab);
    mg__store_free_mem(s, s->archive_path, s->archive_path_size);
    a.free_fn(a.ud, s, sizeof *s);
    return mg_errf(err, err_len, -ENOMEM, "cannot create the store's mutex");
  }
  memset(s->idx, 0, MG__TAB_MIN * sizeof *s->idx);
  memset(s->gtab, 0, MG__TAB_MIN * sizeof *s->gtab);
  s->idx_nb = s->idx_cap = s->gtab_nb = s->gtab_cap = MG__TAB_MIN;
  memcpy(s->name, name, nlen + 1);
  if (plen)
    memcpy(s->archive_path, opts->archive_path, plen + 1);
  s->archive_fsync = opts->archive_fsync;
  s->on_full = opts->on_full;
  s->strategy = opts->strategy;
  s->strategy_ud = opts->strategy_ud;
  snprintf(s->strategy_name, sizeof s->strategy_name, "%s",
           opts->strategy_name ? opts->strategy_name
                               : (opts->strategy ? "custom" : "oldest"));
  s->on_evict = opts->on_evict;
  s->on_evict_ud = opts->on_evict_ud;
  s->on_warn = opts->on_warn;
  s->on_warn_ud = opts->on_warn_ud;
  s->estimate = opts->estimate_tokens;
  s->estimate_ud = opts->estimate_ud;
  s->clock = opts->clock ? opts->clock : mg__clock_default;
  s->clock_ud = opts->clock_ud;
  s->logger = opts->logger;
  s->next_id = 1;
  s->epoch = 1;
  mg__apply_limits(s, &opts->limits);
  *out = s;
  return 0;
}

void mg_store_free(mg_store *s) {
  if (!s || mg__held_here(s))
    return;
  for (mg__msg *m = s->head, *nx; m; m = nx) {
    nx = m->next;
    s->alloc.free_fn(s->alloc.ud, m, mg__msg_block(m));
  }
  mg__store_archive_close(s);
  mg__store_free_mem(s, s->idx, s->idx_cap * sizeof *s->idx);
  mg__store_free_mem(s, s->gtab, s->gtab_cap * sizeof *s->gtab);
  mg__store_free_mem(s, s->archive_path, s->archive_path_size);
  pthread_mutex_destroy(&s->mu);
  mg_store_alloc a = s->alloc;
  a.free_fn(a.ud, s, sizeof *s);
}

const char *mg_store_name(const mg_store *s) {
  return s->name;
}

/* ------------------------------------------------------------ messages */

/* A validated input: lengths and derived values. */
typedef struct mg__prep {
  size_t role_len, source_len, group_len, meta_len;
  uint64_t payload, size;
  uint32_t ghash;
  size_t block;
} mg__prep;

static int mg__text_slow(const char *what, const char *p, size_t n, char *err,
                         size_t err_len) {
  if (n > UINT32_MAX)
    return mg_errf(err, err_len, -EINVAL, "%s is too long (%zu bytes)", what,
                   n);
  if (!mg__utf8_valid(p, n))
    return mg_errf(err, err_len, -EINVAL,
                   "%s is not valid UTF-8 (text fields must be UTF-8; only "
                   "content may hold any bytes)",
                   what);
  return 0;
}

static inline int mg__text(const char *what, const char *p, size_t *len,
                           char *err, size_t err_len) {
  size_t n = 0;
  unsigned char hi = 0;
  if (p) /* short fields: one pass for the length and "is it ASCII" */
    for (; p[n]; n++)
      hi |= (unsigned char)p[n];
  *len = n;
  if (__builtin_expect((hi & 0x80) || n > UINT32_MAX, 0))
    return mg__text_slow(what, p, n, err, err_len);
  return 0;
}

static int mg__prepare(const mg_store_input *in, mg__prep *p, char *err,
                       size_t err_len) {
  int rc;
  if ((rc = mg__text("role", in->role, &p->role_len, err, err_len)) ||
      (rc = mg__text("source", in->source, &p->source_len, err, err_len)) ||
      (rc = mg__text("group", in->group, &p->group_len, err, err_len)))
    return rc;
  if (!in->content && in->content_len)
    return mg_errf(err, err_len, -EINVAL,
                   "content is NULL but content_len is %zu", in->content_len);
  if (in->content_len > (SIZE_MAX >> 2) || in->content_len > MG_STORE_LIMIT_MAX)
    return mg_errf(err, err_len, -EINVAL, "content is too long (%zu bytes)",
                   in->content_len);
  p->meta_len = 0;
  if (in->meta_count) {
    if (in->meta_count > MG_STORE_META_MAX)
      return mg_errf(err, err_len, -EINVAL,
                     "meta has %zu entries; at most %u are accepted",
                     in->meta_count, MG_STORE_META_MAX);
    if (!in->meta)
      return mg_errf(err, err_len, -EINVAL,
                     "meta is NULL but meta_count is %zu", in->meta_count);
    for (size_t i = 0; i < in->meta_count; i++) {
      size_t kl, vl;
      if (!in->meta[i].key)
        return mg_errf(err, err_len, -EINVAL, "meta entry %zu has no key", i);
      if ((rc = mg__text("meta key", in->meta[i].key, &kl, err, err_len)) ||
          (rc = mg__text("meta value", in->meta[i].value, &vl, err, err_len)))
        return rc;
      for (size_t j = 0; j < i; j++)
        if (strcmp(in->meta[j].key, in->meta[i].key) == 0)
          return mg_errf(err, err_len, -EINVAL,
                         "meta key \"%.64s\" appears twice", in->meta[i].key);
      p->meta_len += kl + 1 + vl + 1;
    }
    if (p->meta_len > UINT32_MAX)
      return mg_errf(err, err_len, -EINVAL, "meta is too long (%zu bytes)",
                     p->meta_len);
  }
  if (in->has_tokens && in->tokens > MG_STORE_LIMIT_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "tokens %" PRIu64 " is above the maximum %" PRIu64,
                   in->tokens, MG_STORE_LIMIT_MAX);
  p->payload = (uint64_t)in->content_len + p->role_len + p->source_len +
               p->group_len + p->meta_len;
  p->size = p->payload + MG_STORE_MSG_OVERHEAD;
  p->block = sizeof(mg__msg) + (size_t)p->payload + 4;
  p->ghash = p->group_len ? mg__hash_str(in->group, p->group_len) : 0;
  return 0;
}

static uint64_t mg__estimate(const mg_store *s, const mg_store_input *in) {
  if (in->has_tokens)
    return in->tokens;
  if (s->estimate) {
    uint64_t t = s->estimate(s->estimate_ud, in);
    return t > MG_STORE_LIMIT_MAX ? MG_STORE_LIMIT_MAX : t;
  }
  return (uint64_t)in->content_len / 4 + (in->content_len % 4 != 0);
}

/* Allocate and fill a block (id not yet assigned). */
static mg__msg *mg__build(const mg_store *s, const mg_store_input *in,
                          const mg__prep *p, uint64_t tokens, double now) {
  mg__msg *m = s->libc_alloc ? malloc(p->block)
                             : s->alloc.malloc_fn(s->alloc.ud, p->block);
  if (!m)
    return NULL;
  /* list, index and ring pointers are set by mg__link */
  m->vnext = NULL;
  m->id = 0;
  m->epoch = 0;
  m->flags = 0;
  m->pad_ = 0;
  m->content_len = in->content_len;
  m->tokens = tokens;
  m->priority = in->priority;
  m->time = now;
  m->role_len = (uint32_t)p->role_len;
  m->source_len = (uint32_t)p->source_len;
  m->group_len = (uint32_t)p->group_len;
  m->meta_len = (uint32_t)p->meta_len;
  m->ghash = p->ghash;
  m->meta_count = (uint8_t)in->meta_count;
  m->pinned = in->pinned ? 1 : 0;
  char *d = m->data;
  if (p->role_len)
    memcpy(d, in->role, p->role_len);
  d += p->role_len;
  *d++ = 0;
  if (p->source_len)
    memcpy(d, in->source, p->source_len);
  d += p->source_len;
  *d++ = 0;
  if (p->group_len)
    memcpy(d, in->group, p->group_len);
  d += p->group_len;
  *d++ = 0;
  for (size_t i = 0; i < in->meta_count; i++) {
    size_t kl = strlen(in->meta[i].key) + 1;
    memcpy(d, in->meta[i].key, kl);
    d += kl;
    const char *v = in->meta[i].value ? in->meta[i].value : "";
    size_t vl = strlen(v) + 1;
    memcpy(d, v, vl);
    d += vl;
  }
  if (in->content_len)
    memcpy(d, in->content, in->content_len);
  d[in->content_len] = 0;
  return m;
}

void mg__store_view(const mg__msg *m, mg_store_msg *v) {
  const char *d = m->data;
  v->id = m->id;
  v->role = d;
  v->role_len = m->role_len;
  d += m->role_len + 1;
  v->source = d;
  v->source_len = m->source_len;
  d += m->source_len + 1;
  v->group = d;
  v->group_len = m->group_len;
  d += m->group_len + 1;
  v->meta_packed = d;
  v->meta_packed_len = m->meta_len;
  v->meta_count = m->meta_count;
  d += m->meta_len;
  v->content = (const unsigned char *)d;
  v->content_len = (size_t)m->content_len;
  v->pinned = m->pinned;
  v->priority = m->priority;
  v->tokens = m->tokens;
  v->time = m->time;
  v->size_bytes = mg__msg_size(m);
}

/* ------------------------------------------------------------ eviction */

/* Victims being chosen by one operation. */
typedef struct mg__ev {
  mg__msg *victims; /* unordered chain (vnext), then ordered */
  mg__msg *first;   /* earliest victim in list order, when known */
  size_t n;
  uint64_t bytes, tokens;
  mg__msg *repl; /* replacement block (not linked) */
  size_t repl_block;
} mg__ev;

struct mg_store_plan {
  mg_store *s;
  mg__ev *ev;
  int err;
  char msg[256];
  const mg_store_need *need;
};

/* Is `m` in the group of the message being added (never evicted for it)? */
static int mg__incoming_group(const mg__msg *m, const mg_store_need *need) {
  return need && need->group_len && m->group_len == need->group_len &&
         memcmp(mg__msg_group(m), need->group, need->group_len) == 0;
}

static void mg__victim(mg__ev *ev, mg__msg *m) {
  m->flags |= MG__F_VICTIM;
  m->vnext = ev->victims;
  ev->victims = m;
  ev->n++;
  ev->bytes += mg__msg_size(m);
  ev->tokens += m->tokens;
}

/* Mark m's whole group (or m alone). */
static void mg__victim_group(mg__ev *ev, mg__msg *m) {
  mg__msg *r = m;
  do {
    mg__victim(ev, r);
    r = r->gnext;
  } while (r != m);
}

static int mg__group_has_pinned(const mg__msg *m, const mg__msg **which) {
  const mg__msg *r = m;
  do {
    if (r->pinned) {
      if (which)
        *which = r;
      return 1;
    }
    r = r->gnext;
  } while (r != m);
  return 0;
}

/* Undo the marks (and drop the replacement) of a failed operation. */
static void mg__ev_cancel(mg_store *s, mg__ev *ev) {
  for (mg__msg *m = ev->victims; m; m = m->vnext)
    m->flags &= (uint8_t)~MG__F_VICTIM;
  ev->victims = NULL;
  ev->n = 0;
  if (ev->repl) {
    s->alloc.free_fn(s->alloc.ud, ev->repl, ev->repl_block);
    ev->repl = NULL;
  }
}

static uint32_t mg__next_epoch(mg_store *s) {
  if (++s->epoch == 0) { /* wrapped: clear every old mark */
    for (mg__msg *m = s->head; m; m = m->next)
      m->epoch = 0;
    s->epoch = 1;
  }
  return s->epoch;
}

static int mg__ev_enough(const mg__ev *ev, const mg_store_need *need) {
  return ev->n >= need->count && ev->bytes >= need->bytes &&
         ev->tokens >= need->tokens;
}

/* Built-in "oldest": oldest first, skipping pinned messages and groups with
 * a pinned member, whole groups at a time, until `need` is met. */
static int mg__oldest(mg_store *s, const mg_store_need *need, mg__ev *ev,
                      char *why, size_t why_len) {
  uint32_t e = 0;
  for (mg__msg *m = s->head; m && !mg__ev_enough(ev, need); m = m->next) {
    if (m->flags & MG__F_VICTIM)
      continue;
    if (!m->group_len) {
      if (m->pinned)
        continue;
      if (!ev->first)
        ev->first = m;
      mg__victim(ev, m);
      continue;
    }
    if (!e)
      e = mg__next_epoch(s);
    if (m->epoch == e)
      continue; /* group already found to hold a pinned member */
    if (mg__group_has_pinned(m, NULL) || mg__incoming_group(m, need)) {
      mg__msg *r = m;
      do {
        r->epoch = e;
        r = r->gnext;
      } while (r != m);
      continue;
    }
    if (!ev->first)
      ev->first = m;
    mg__victim_group(ev, m);
  }
  if (mg__ev_enough(ev, need))
    return 0;
  mg_errf(why, why_len, MG_ESTRATEGY,
          "strategy 'oldest' could free only %zu messages / %" PRIu64
          " bytes / %" PRIu64 " tokens of the %" PRIu64 " / %" PRIu64
          " / %" PRIu64 " needed: the rest is pinned, grouped with a pinned "
          "message, or in the group of the message being added",
          ev->n, ev->bytes, ev->tokens, need->count, need->bytes, need->tokens);
  mg__ev_cancel(s, ev);
  return MG_ESTRATEGY;
}

static int mg__plan_fail(mg_store_plan *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mg__plan_fail(mg_store_plan *p, int code, const char *fmt, ...) {
  if (!p->err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    p->err = code;
  }
  return code;
}

int mg_store_plan_evict(mg_store_plan *p, uint64_t id) {
  if (p->err)
    return p->err;
  mg_store *s = p->s;
  mg__msg *m = mg__find(s, id);
  if (!m)
    return mg__plan_fail(p, -ENOENT,
                         "strategy '%s' chose message %" PRIu64
                         ", which is not in the store",
                         s->strategy_name, id);
  if (m->flags & MG__F_VICTIM)
    return 0;
  if (mg__incoming_group(m, p->need))
    return mg__plan_fail(p, MG_EPINNED,
                         "strategy '%s' chose message %" PRIu64
                         ", whose group '%s' is the group of the message "
                         "being added",
                         s->strategy_name, id, mg__msg_group(m));
  const mg__msg *pin = NULL;
  if (mg__group_has_pinned(m, &pin)) {
    if (pin == m)
      return mg__plan_fail(p, MG_EPINNED,
                           "strategy '%s' chose message %" PRIu64
                           ", which is pinned",
                           s->strategy_name, id);
    return mg__plan_fail(p, MG_EPINNED,
                         "strategy '%s' chose message %" PRIu64
                         ", whose group '%s' holds pinned message %" PRIu64,
                         s->strategy_name, id, mg__msg_group(m), pin->id);
  }
  mg__victim_group(p->ev, m);
  return 0;
}

int mg_store_plan_replace(mg_store_plan *p, const mg_store_input *in) {
  if (p->err)
    return p->err;
  mg_store *s = p->s;
  if (p->ev->repl)
    return mg__plan_fail(p, -EINVAL,
                         "strategy '%s' gave more than one replacement",
                         s->strategy_name);
  mg__prep pr;
  char why[200];
  int rc = mg__prepare(in, &pr, why, sizeof why);
  if (rc)
    return mg__plan_fail(p, rc, "strategy '%s' gave an invalid replacement: %s",
                         s->strategy_name, why);
  if (pr.size > s->lim.max_message_size_bytes)
    return mg__plan_fail(p, MG_ELIMIT,
                         "strategy '%s' gave a replacement whose size %" PRIu64
                         " exceeds the limit of %" PRIu64,
                         s->strategy_name, pr.size,
                         s->lim.max_message_size_bytes);
  mg__msg *m = mg__build(s, in, &pr, mg__estimate(s, in), mg__now(s));
  if (!m)
    return mg__plan_fail(p, -ENOMEM, "out of memory building the replacement");
  p->ev->repl = m;
  p->ev->repl_block = pr.block;
  return 0;
}

/* Run the store's strategy. On failure the marks are undone, `why` says
 * what went wrong. */
static int mg__run_strategy(mg_store *s, const mg_store_need *need, mg__ev *ev,
                            char *why, size_t why_len) {
  if (!s->strategy)
    return mg__oldest(s, need, ev, why, why_len);
  mg_store_plan plan = {s, ev, 0, {0}, need};
  char cb_err[256] = "";
  mg__frame fr;
  mg__frame_push(&fr, s);
  int rc = s->strategy(s->strategy_ud, s, need, &plan, cb_err, sizeof cb_err);
  mg__frame_pop(&fr);
  if (rc) {
    mg_errf(why, why_len, MG_ESTRATEGY, "strategy '%s' failed: %s",
            s->strategy_name, cb_err[0] ? cb_err : mg_strerror(rc));
    mg__ev_cancel(s, ev);
    return rc == -ENOMEM ? rc : MG_ESTRATEGY;
  }
  if (plan.err) {
    mg_errf(why, why_len, plan.err, "%s", plan.msg);
    mg__ev_cancel(s, ev);
    return plan.err == -ENOENT ? MG_ESTRATEGY : plan.err;
  }
  uint64_t rsize = ev->repl ? mg__msg_size(ev->repl) : 0;
  uint64_t rtok = ev->repl ? ev->repl->tokens : 0;
  uint64_t rcnt = ev->repl ? 1 : 0;
  const char *dim = NULL;
  uint64_t got = 0, want = 0;
  if (need->adding) {
    /* What must be freed so that the store, less the victims, plus the
     * replacement and the new message, is within every limit that is
     * set: slack left under a limit counts (a summary may use it). */
    const mg_store_limits *l = &s->lim;
    uint64_t wc = s->count + 1 + rcnt,
             wb = s->total_bytes + need->incoming_bytes + rsize;
    uint64_t wt = s->total_tokens + need->incoming_tokens + rtok;
    wc = wc > l->max_messages ? wc - l->max_messages : 0;
    wb = wb > l->max_total_size_bytes ? wb - l->max_total_size_bytes : 0;
    wt = l->max_tokens && wt > l->max_tokens ? wt - l->max_tokens : 0;
    if (ev->n < wc)
      dim = "messages", got = ev->n, want = wc;
    else if (ev->bytes < wb)
      dim = "bytes", got = ev->bytes, want = wb;
    else if (ev->tokens < wt)
      dim = "tokens", got = ev->tokens, want = wt;
  } else if (ev->n < need->count + rcnt) {
    dim = "messages", got = ev->n, want = need->count + rcnt;
  } else if (ev->bytes < need->bytes + rsize) {
    dim = "bytes", got = ev->bytes, want = need->bytes + rsize;
  } else if (s->lim.max_tokens && ev->tokens < need->tokens + rtok) {
    dim = "tokens", got = ev->tokens, want = need->tokens + rtok;
  }
  if (dim) {
    mg_errf(why, why_len, MG_ESTRATEGY,
            "strategy '%s' freed too little: %" PRIu64 " %s of the %" PRIu64
            " needed%s",
            s->strategy_name, got, dim, want,
            ev->repl ? " (its replacement included)" : "");
    mg__ev_cancel(s, ev);
    return MG_ESTRATEGY;
  }
  return 0;
}

/* Order the victims as in the store (oldest first), then archive them,
 * tell on_evict, and commit. All or nothing. */
static int mg__apply(mg_store *s, mg__ev *ev, mg_store_evict_reason reason,
                     mg__op *op, char *why, size_t why_len) {
  /* order */
  mg__msg *first = NULL, **tail = &first;
  size_t left = ev->n;
  for (mg__msg *m = ev->first ? ev->first : s->head; m && left; m = m->next)
    if (m->flags & MG__F_VICTIM) {
      *tail = m;
      tail = &m->vnext;
      left--;
    }
  *tail = NULL;
  ev->victims = first;
  if (left) { /* cannot happen: a marked message is always listed */
    mg__ev_cancel(s, ev);
    return mg_errf(why, why_len, MG_ECORRUPT,
                   "internal error: %zu victims not found in the store", left);
  }
  int64_t off = -1;
  int rc;
  if (s->archive_path) {
    rc = mg__store_archive_write(s, first, ev->n, reason, mg__now(s), &off, why,
                                 why_len);
    if (rc) {
      mg__ev_cancel(s, ev);
      return rc;
    }
  }
  if (s->on_evict) {
    mg_store_batch b = {s, first, ev->n, first, 0};
    char cb_err[256] = "";
    mg__frame fr;
    mg__frame_push(&fr, s);
    rc = s->on_evict(s->on_evict_ud, s, &b, reason, cb_err, sizeof cb_err);
    mg__frame_pop(&fr);
    if (rc) {
      if (off >= 0)
        mg__store_archive_rollback(s, off);
      mg_errf(why, why_len, rc, "on_evict refused the eviction: %s",
              cb_err[0] ? cb_err : mg_strerror(rc));
      mg__ev_cancel(s, ev);
      return rc > 0 ? MG_ESTRATEGY : rc;
    }
  }
  /* commit: nothing below can fail */
  if (s->archive_path)
    s->archived_count += ev->n;
  if (ev->repl) {
    ev->repl->id = s->next_id++;
    mg__link(s, ev->repl, first);
    ev->repl = NULL;
    s->replaced_count++;
  }
  for (mg__msg *m = first, *nx; m; m = nx) {
    nx = m->vnext;
    mg__unlink(s, m);
    m->vnext = op->grave;
    op->grave = m;
  }
  s->evicted_count += ev->n;
  s->evicted_bytes += ev->bytes;
  ev->victims = NULL;
  if (s->head)
    __builtin_prefetch(s->head);
  return 0;
}

/* ------------------------------------------------------------ add */

static void mg__lerr(mg_store_error *e, int code, mg_store_limit_type t,
                     uint64_t cur, uint64_t lim, const char *details,
                     const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void mg__lerr(mg_store_error *e, int code, mg_store_limit_type t,
                     uint64_t cur, uint64_t lim, const char *details,
                     const char *fmt, ...) {
  if (!e)
    return;
  e->code = code;
  e->limit_type = t;
  e->current = cur;
  e->limit = lim;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  snprintf(e->details, sizeof e->details, "%s", details ? details : "");
}

/* The seed's sentence for a limit. */
static void mg__limit_text(char *buf, size_t len, mg_store_limit_type t,
                           uint64_t cur, uint64_t lim) {
  static const char *const what[] = {"", "Message size", "Message count",
                                     "Total size", "Token count"};
  snprintf(buf, len, "%s %" PRIu64 " exceeds limit of %" PRIu64, what[t], cur,
           lim);
}

static const char *mg__limit_event(mg_store_limit_type t) {
  switch (t) {
  case MG_STORE_LIMIT_MESSAGE_SIZE:
    return "message_size_exceeded";
  case MG_STORE_LIMIT_MESSAGE_COUNT:
    return "message_count_exceeded";
  case MG_STORE_LIMIT_TOTAL_SIZE:
    return "total_size_exceeded";
  case MG_STORE_LIMIT_TOKENS:
    return "token_count_exceeded";
  default:
    return "store_add_failed";
  }
}

/* Record and log a failed add (locked). */
static int mg__add_fail(mg_store *s, mg_store_error *e, int code,
                        mg_store_limit_type t, uint64_t cur, uint64_t lim,
                        const char *reason, const char *details) {
  char text[256] = "";
  if (t != MG_STORE_LIMIT_NONE)
    mg__limit_text(text, sizeof text, t, cur, lim);
  if (reason && reason[0])
    mg__lerr(e, code, t, cur, lim, details, "%s%s%s", text, text[0] ? ": " : "",
             reason);
  else
    mg__lerr(e, code, t, cur, lim, details, "%s", text);
  s->rejected_count++;
  if (s->logger) {
    mg_log_field f[] = {MG_LF_STR("store", s->name),
                        MG_LF_STR("limit_type", mg_store_limit_name(t)),
                        MG_LF_UINT("current", cur), MG_LF_UINT("limit", lim),
                        MG_LF_STR("error", e ? e->message : text)};
    mg__log(s, MG_LOG_ERROR, mg__limit_event(t), f, sizeof f / sizeof f[0]);
  }
  return code;
}

/* Compute what must be freed to add a message of `size` / `tokens`. */
static void mg__need(const mg_store *s, uint64_t size, uint64_t tokens,
                     mg_store_need *n) {
  const mg_store_limits *l = &s->lim;
  n->count =
      s->count + 1 > l->max_messages ? s->count + 1 - l->max_messages : 0;
  n->bytes = s->total_bytes + size > l->max_total_size_bytes
                 ? s->total_bytes + size - l->max_total_size_bytes
                 : 0;
  n->tokens = l->max_tokens && s->total_tokens + tokens > l->max_tokens
                  ? s->total_tokens + tokens - l->max_tokens
                  : 0;
  n->limit_type = n->count    ? MG_STORE_LIMIT_MESSAGE_COUNT
                  : n->bytes  ? MG_STORE_LIMIT_TOTAL_SIZE
                  : n->tokens ? MG_STORE_LIMIT_TOKENS
                              : MG_STORE_LIMIT_NONE;
}

static void mg__need_cur(const mg_store *s, mg_store_limit_type t,
                         uint64_t size, uint64_t tokens, uint64_t *cur,
                         uint64_t *lim) {
  switch (t) {
  case MG_STORE_LIMIT_MESSAGE_COUNT:
    *cur = s->count, *lim = s->lim.max_messages;
    break;
  case MG_STORE_LIMIT_TOTAL_SIZE:
    *cur = s->total_bytes + size, *lim = s->lim.max_total_size_bytes;
    break;
  case MG_STORE_LIMIT_TOKENS:
    *cur = s->total_tokens + tokens, *lim = s->lim.max_tokens;
    break;
  default:
    *cur = size, *lim = s->lim.max_message_size_bytes;
  }
}

/* Make room for (size, tokens) if needed; 0 when it fits now. Locked. */
static int mg__room(mg_store *s, uint64_t size, uint64_t tokens,
                    const char *group, size_t group_len, uint64_t extra_groups,
                    mg__op *op, mg_store_error *e) {
  mg_store_need need;
  mg__need(s, size, tokens, &need);
  need.group = group_len ? group : NULL;
  need.group_len = group_len;
  need.adding = 1;
  need.incoming_bytes = size;
  need.incoming_tokens = tokens;
  if (need.limit_type == MG_STORE_LIMIT_NONE) {
    if (mg__ensure(s, 1, extra_groups))
      return mg__add_fail(s, e, -ENOMEM, MG_STORE_LIMIT_NONE, 0, 0,
                          "out of memory growing the store's index", NULL);
    return 0;
  }
  uint64_t cur, lim;
  mg_store_limit_type t = need.limit_type;
  mg__need_cur(s, t, size, tokens, &cur, &lim);
  char det[256];
#define MG__DETAILS()                                                          \
  snprintf(det, sizeof det,                                                    \
           "store '%s': %" PRIu64 " messages, %" PRIu64 " bytes, %" PRIu64     \
           " tokens; adding a message of %" PRIu64 " bytes, %" PRIu64          \
           " tokens",                                                          \
           s->name, s->count, s->total_bytes, s->total_tokens, size, tokens)
  if (s->on_full == MG_STORE_ON_FULL_ERROR) {
    MG__DETAILS();
    return mg__add_fail(s, e, MG_ELIMIT, t, cur, lim, NULL, det);
  }
  /* Can it ever fit? Pinned messages are never evicted. */
  char why[400];
  if (s->pinned_count + 1 > s->lim.max_messages) {
    MG__DETAILS();
    snprintf(why, sizeof why,
             "pinned messages alone leave no room (%" PRIu64 " pinned)",
             s->pinned_count);
    mg__need_cur(s, MG_STORE_LIMIT_MESSAGE_COUNT, size, tokens, &cur, &lim);
    return mg__add_fail(s, e, MG_ELIMIT, MG_STORE_LIMIT_MESSAGE_COUNT, cur, lim,
                        why, det);
  }
  if (s->pinned_bytes + size > s->lim.max_total_size_bytes) {
    MG__DETAILS();
    if (size > s->lim.max_total_size_bytes)
      snprintf(why, sizeof why,
               "the message alone (%" PRIu64 " bytes) is larger than "
               "max_total_size",
               size);
    else
      snprintf(why, sizeof why,
               "pinned messages alone hold %" PRIu64
               " bytes, the message needs %" PRIu64,
               s->pinned_bytes, size);
    mg__need_cur(s, MG_STORE_LIMIT_TOTAL_SIZE, size, tokens, &cur, &lim);
    return mg__add_fail(s, e, MG_ELIMIT, MG_STORE_LIMIT_TOTAL_SIZE, cur, lim,
                        why, det);
  }
  if (s->lim.max_tokens && tokens > s->lim.max_tokens) {
    MG__DETAILS();
    mg__need_cur(s, MG_STORE_LIMIT_TOKENS, size, tokens, &cur, &lim);
    return mg__add_fail(s, e, MG_ELIMIT, MG_STORE_LIMIT_TOKENS, cur, lim,
                        "the message alone has more tokens than max_tokens",
                        det);
  }
  if (mg__ensure(s, 2, extra_groups + 1))
    return mg__add_fail(s, e, -ENOMEM, MG_STORE_LIMIT_NONE, 0, 0,
                        "out of memory growing the store's index", NULL);
  /* Fast path of the built-in strategy, nobody to tell: when the oldest
   * message is plain and frees enough alone, it is exactly what "oldest"
   * would choose. */
  mg__msg *h = s->head;
  if (!s->strategy && !s->archive_path && !s->on_evict && h && !h->pinned &&
      !h->group_len && need.count <= 1 && need.bytes <= mg__msg_size(h) &&
      need.tokens <= h->tokens) {
    uint64_t hs = mg__msg_size(h);
    mg__unlink(s, h);
    h->vnext = op->grave;
    op->grave = h;
    s->evicted_count++;
    s->evicted_bytes += hs;
    if (s->head)
      __builtin_prefetch(s->head); /* the next add's victim */
    return 0;
  }
  mg__ev ev = {0};
  int rc = mg__run_strategy(s, &need, &ev, why, sizeof why);
  if (rc == 0)
    rc = mg__apply(s, &ev, MG_STORE_EVICT_STRATEGY, op, why, sizeof why);
  if (rc) {
    if (s->logger) {
      mg_log_field f[] = {MG_LF_STR("store", s->name),
                          MG_LF_STR("strategy", s->strategy_name),
                          MG_LF_STR("error", why)};
      mg__log(s, MG_LOG_ERROR, "store_eviction_failed", f, 3);
    }
    MG__DETAILS();
    return mg__add_fail(s, e, rc, t, cur, lim, why, det);
  }
#undef MG__DETAILS
  if (s->logger && mg_logger_level(s->logger) <= MG_LOG_DEBUG) {
    mg_log_field f[] = {
        MG_LF_STR("store", s->name), MG_LF_STR("strategy", s->strategy_name),
        MG_LF_UINT("removed", ev.n), MG_LF_UINT("bytes_freed", ev.bytes)};
    mg_log(s->logger, MG_LOG_DEBUG, "messages_evicted", f, 4);
  }
  return 0;
}

int mg_store_add(mg_store *s, const mg_store_input *in, uint64_t *out_id,
                 mg_store_error *e) {
  mg__prep p;
  char why[256];
  int rc = in ? mg__prepare(in, &p, why, sizeof why)
              : mg_errf(why, sizeof why, -EINVAL, "no message given (NULL)");
  mg__op op;
  mg__op_init(&op);
  if (rc) {
    if ((rc = mg__wlock(s)) != 0) {
      mg__lerr(e, rc, MG_STORE_LIMIT_NONE, 0, 0, NULL,
               "store '%s' is busy: no change from inside its own callback",
               s->name);
      return rc;
    }
    rc = mg__add_fail(s, e, -EINVAL, MG_STORE_LIMIT_NONE, 0, 0, why, NULL);
    mg__wunlock(s, &op);
    return rc;
  }
  mg__msg *m = NULL;
  uint64_t tokens = 0;
  for (;;) {
    /* Build the block (estimator and clock included) before taking the
     * lock, unless it is too big anyway; the limit is read again locked. */
    if (!m && p.size <= __atomic_load_n(&s->lim.max_message_size_bytes,
                                        __ATOMIC_RELAXED)) {
      tokens = mg__estimate(s, in);
      m = mg__build(s, in, &p, tokens, mg__now(s));
      if (!m) {
        if (mg__wlock(s) == 0) {
          mg__add_fail(s, e, -ENOMEM, MG_STORE_LIMIT_NONE, 0, 0,
                       "out of memory copying the message", NULL);
          mg__wunlock(s, &op);
        }
        return -ENOMEM;
      }
    }
    if ((rc = mg__wlock(s)) != 0) {
      mg__lerr(e, rc, MG_STORE_LIMIT_NONE, 0, 0, NULL,
               "store '%s' is busy: no change from inside its own callback",
               s->name);
      if (m)
        s->alloc.free_fn(s->alloc.ud, m, p.block);
      return rc;
    }
    if (p.size > s->lim.max_message_size_bytes) {
      char det[160];
      snprintf(det, sizeof det,
               "store '%s': the message holds %" PRIu64
               " bytes plus %u bytes of overhead",
               s->name, p.payload, MG_STORE_MSG_OVERHEAD);
      rc = mg__add_fail(s, e, MG_ELIMIT, MG_STORE_LIMIT_MESSAGE_SIZE, p.size,
                        s->lim.max_message_size_bytes, NULL, det);
      mg__wunlock(s, &op);
      if (m)
        s->alloc.free_fn(s->alloc.ud, m, p.block);
      return rc;
    }
    if (m)
      break;
    mg__wunlock(s, &op); /* the limit was raised meanwhile: build, retry */
  }
  /* Totals and ids stay within 2^63-1 (Lua integers, JSON). */
  if (tokens > MG_STORE_LIMIT_MAX - s->total_tokens ||
      s->next_id > MG_STORE_ID_MAX - 2) {
    int ids = s->next_id > MG_STORE_ID_MAX - 2;
    rc = mg__add_fail(s, e, -EOVERFLOW,
                      ids ? MG_STORE_LIMIT_NONE : MG_STORE_LIMIT_TOKENS,
                      ids ? s->next_id : s->total_tokens,
                      ids ? MG_STORE_ID_MAX : MG_STORE_LIMIT_MAX,
                      ids ? "message ids are exhausted"
                          : "the store's token total would pass 2^63-1",
                      NULL);
    mg__wunlock(s, &op);
    s->alloc.free_fn(s->alloc.ud, m, p.block);
    return rc;
  }
  uint64_t ng =
      p.group_len && !mg__group_leader(s, in->group, p.group_len, p.ghash);
  rc = mg__room(s, p.size, tokens, in->group, p.group_len, ng, &op, e);
  if (rc) {
    mg__wunlock(s, &op);
    s->alloc.free_fn(s->alloc.ud, m, p.block);
    return rc;
  }
  m->id = s->next_id++;
  mg__link(s, m, NULL);
  if (out_id)
    *out_id = m->id;
  mg__shrink(s);
  mg__after_change(s, &op);
  mg__wunlock(s, &op);
  return 0;
}

/* ------------------------------------------------------------ removal */

int mg_store_remove(mg_store *s, uint64_t id, char *err, size_t err_len) {
  int rc = mg__wlock(s);
  if (rc)
    return mg_errf(err, err_len, rc,
                   "store '%s' is busy: no change from inside its own callback",
                   s->name);
  mg__op op;
  mg__op_init(&op);
  mg__msg *m = mg__find(s, id);
  if (!m) {
    rc = mg_errf(err, err_len, -ENOENT, "store '%s' has no message %" PRIu64,
                 s->name, id);
  } else {
    mg__unlink(s, m);
    m->vnext = op.grave;
    op.grave = m;
    s->removed_count++;
    mg__shrink(s);
    mg__after_change(s, &op);
  }
  mg__wunlock(s, &op);
  return rc;
}

int mg_store_clear(mg_store *s, uint64_t *out_removed) {
  int rc = mg__wlock(s);
  if (rc)
    return rc;
  mg__op op;
  mg__op_init(&op);
  uint64_t n = s->count;
  for (mg__msg *m = s->head, *nx; m; m = nx) {
    nx = m->next;
    m->vnext = op.grave;
    op.grave = m;
  }
  s->head = s->tail = NULL;
  s->count = s->ngroups = 0;
  s->total_bytes = s->payload_bytes = s->total_tokens = 0;
  s->pinned_count = s->pinned_bytes = 0;
  s->largest = s->largest_n = 0;
  s->largest_dirty = 0;
  memset(s->idx, 0, s->idx_nb * sizeof *s->idx);
  memset(s->gtab, 0, s->gtab_nb * sizeof *s->gtab);
  s->removed_count += n;
  s->mutations++;
  mg__shrink(s);
  mg__after_change(s, &op);
  mg__wunlock(s, &op);
  if (out_removed)
    *out_removed = n;
  return 0;
}

/* Mark prune's victims: see mg_store_prune. */
static void mg__prune_mark(mg_store *s, uint64_t keep, mg__ev *ev) {
  uint32_t e = mg__next_epoch(s);
  mg__msg *m = s->tail;
  for (uint64_t k = 0; m && k < keep; k++, m = m->prev)
    m->epoch = e;        /* kept: the newest `keep` */
  mg__msg *boundary = m; /* newest candidate; NULL = nothing to prune */
  if (!boundary)
    return;
  for (m = s->head; m; m = m->next) {
    if (m->epoch != e && !(m->flags & MG__F_VICTIM)) {
      if (!m->group_len) {
        if (!m->pinned) {
          if (!ev->first)
            ev->first = m;
          mg__victim(ev, m);
        }
      } else {
        int keep_group = 0;
        mg__msg *r = m;
        do {
          if (r->pinned || r->epoch == e)
            keep_group = 1;
          r = r->gnext;
        } while (r != m && !keep_group);
        if (keep_group) {
          r = m;
          do {
            r->epoch = e;
            r = r->gnext;
          } while (r != m);
        } else {
          if (!ev->first)
            ev->first = m;
          mg__victim_group(ev, m);
        }
      }
    }
    if (m == boundary)
      break;
  }
}

int mg_store_prune(mg_store *s, uint64_t keep_count, uint64_t *out_removed,
                   char *err, size_t err_len) {
  int rc = mg__wlock(s);
  if (rc)
    return mg_errf(err, err_len, rc,
                   "store '%s' is busy: no change from inside its own callback",
                   s->name);
  mg__op op;
  mg__op_init(&op);
  uint64_t keep = keep_count == MG_STORE_PRUNE_DEFAULT ? s->lim.max_messages / 2
                                                       : keep_count;
  mg__ev ev = {0};
  mg__prune_mark(s, keep, &ev);
  size_t n = ev.n;
  uint64_t bytes = ev.bytes;
  if (n) {
    char why[400];
    rc = mg__apply(s, &ev, MG_STORE_EVICT_PRUNE, &op, why, sizeof why);
    if (rc) {
      mg_errf(err, err_len, rc, "store '%s': prune failed: %s", s->name, why);
      if (s->logger) {
        mg_log_field f[] = {MG_LF_STR("store", s->name),
                            MG_LF_STR("error", why)};
        mg__log(s, MG_LOG_ERROR, "store_eviction_failed", f, 2);
      }
      mg__wunlock(s, &op);
      return rc;
    }
    mg__shrink(s);
    mg__after_change(s, &op);
  }
  if (s->logger) {
    mg_log_field f[] = {
        MG_LF_STR("store", s->name),
        MG_LF_UINT("removed", n),
        MG_LF_UINT("kept", s->count),
        MG_LF_UINT("keep_count", keep),
        MG_LF_UINT("bytes_freed", bytes),
        MG_LF_UINT("total_size_bytes", s->total_bytes),
        MG_LF_DBL("message_count_utilization",
                  (double)s->count / (double)s->lim.max_messages)};
    mg__log(s, MG_LOG_INFO, "messages_pruned", f, sizeof f / sizeof f[0]);
  }
  mg__wunlock(s, &op);
  if (out_removed)
    *out_removed = n;
  return 0;
}

int mg_store_make_room(mg_store *s, const mg_store_need *need,
                       uint64_t *out_removed, mg_store_error *e) {
  int rc = mg__wlock(s);
  if (rc) {
    mg__lerr(e, rc, MG_STORE_LIMIT_NONE, 0, 0, NULL,
             "store '%s' is busy: no change from inside its own callback",
             s->name);
    return rc;
  }
  mg__op op;
  mg__op_init(&op);
  mg_store_need nd = *need;
  nd.adding = 0; /* an explicit request: free what it asks, no incoming */
  nd.group = NULL;
  nd.group_len = 0;
  uint64_t removed = 0;
  if (nd.count || nd.bytes || nd.tokens) {
    char why[400];
    mg__ev ev = {0};
    if (mg__ensure(s, 1, 1)) {
      rc = -ENOMEM;
      snprintf(why, sizeof why, "out of memory growing the store's index");
    } else {
      rc = mg__run_strategy(s, &nd, &ev, why, sizeof why);
      if (rc == 0)
        rc = mg__apply(s, &ev, MG_STORE_EVICT_STRATEGY, &op, why, sizeof why);
    }
    if (rc) {
      mg__lerr(e, rc, nd.limit_type, 0, 0, NULL,
               "store '%s' could not make room: %s", s->name, why);
      mg__wunlock(s, &op);
      return rc;
    }
    removed = ev.n;
    mg__shrink(s);
    mg__after_change(s, &op);
  }
  mg__wunlock(s, &op);
  if (out_removed)
    *out_removed = removed;
  return 0;
}

/* ------------------------------------------------------------ settings */

int mg_store_set_limits(mg_store *s, const mg_store_limits *l, char *err,
                        size_t err_len) {
  int rc = mg_store_limits_validate(l, err, err_len);
  if (rc)
    return rc;
  if ((rc = mg__wlock(s)) != 0)
    return mg_errf(err, err_len, rc,
                   "store '%s' is busy: no change from inside its own callback",
                   s->name);
  mg__op op;
  mg__op_init(&op);
  mg__apply_limits(s, l);
  mg__largest_refresh(s);
  if (s->count > l->max_messages)
    s->lowered |= MG__D_COUNT;
  if (s->total_bytes > l->max_total_size_bytes)
    s->lowered |= MG__D_TOTAL;
  if (l->max_tokens && s->total_tokens > l->max_tokens)
    s->lowered |= MG__D_TOKENS;
  if (s->largest > l->max_message_size_bytes)
    s->lowered |= MG__D_MSGSIZE;
  mg__after_change(s, &op);
  mg__wunlock(s, &op);
  return 0;
}

int mg_store_set_strategy(mg_store *s, mg_store_strategy_fn fn, void *ud,
                          const char *name) {
  int rc = mg__wlock(s);
  if (rc)
    return rc;
  mg__op op;
  mg__op_init(&op);
  s->strategy = fn;
  s->strategy_ud = ud;
  snprintf(s->strategy_name, sizeof s->strategy_name, "%s",
           name ? name : (fn ? "custom" : "oldest"));
  mg__wunlock(s, &op);
  return 0;
}

int mg_store_set_on_full(mg_store *s, mg_store_on_full on_full) {
  if (on_full != MG_STORE_ON_FULL_ERROR && on_full != MG_STORE_ON_FULL_PRUNE)
    return -EINVAL;
  int rc = mg__wlock(s);
  if (rc)
    return rc;
  mg__op op;
  mg__op_init(&op);
  s->on_full = on_full;
  mg__wunlock(s, &op);
  return 0;
}

/* ------------------------------------------------------------ load hooks */

int mg__store_insert_raw(mg_store *s, const mg_store_input *in, uint64_t id,
                         double time, char *err, size_t err_len) {
  mg__prep p;
  int rc = mg__prepare(in, &p, err, err_len);
  if (rc)
    return rc;
  if (mg__find(s, id))
    return mg_errf(err, err_len, MG_ECORRUPT, "id %" PRIu64 " appears twice",
                   id);
  uint64_t ng =
      p.group_len && !mg__group_leader(s, in->group, p.group_len, p.ghash);
  if (mg__ensure(s, 1, ng))
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  uint64_t tk = mg__estimate(s, in);
  if (tk > MG_STORE_LIMIT_MAX - s->total_tokens)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "the token total would pass %" PRIu64, MG_STORE_LIMIT_MAX);
  mg__msg *m = mg__build(s, in, &p, tk, time);
  if (!m)
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  m->id = id;
  mg__link(s, m, NULL);
  return 0;
}

void mg__store_after_load(mg_store *s) {
  mg_store_limits l = s->lim;
  mg__largest_refresh(s);
  if (s->count > l.max_messages)
    s->lowered |= MG__D_COUNT;
  if (s->total_bytes > l.max_total_size_bytes)
    s->lowered |= MG__D_TOTAL;
  if (l.max_tokens && s->total_tokens > l.max_tokens)
    s->lowered |= MG__D_TOKENS;
  if (s->largest > l.max_message_size_bytes)
    s->lowered |= MG__D_MSGSIZE;
}

void mg__store_load_warn(mg_store *s) {
  mg__op op;
  mg__op_init(&op);
  pthread_mutex_lock(&s->mu);
  mg__after_change(s, &op);
  mg__wunlock(s, &op);
}
