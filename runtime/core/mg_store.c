/* mg_store.c — the bounded context store (core layer): lifecycle,
 * references and closing, options and limits, add / remove / clear /
 * set_*, and the hooks mg_store_load uses to rebuild a store.
 *
 * The rest of the store: mg_store_lock.c (the lock, and the work done
 * after it is released: freeing blocks, firing warnings), mg_store_msg.c (a message's block: validating an
 * input, estimating its tokens, building, viewing), mg_store_tab.c (the id
 * index and the group table, link/unlink), mg_store_evict.c (choosing and
 * applying evictions: strategies, prune, make_room), mg_store_read.c (the
 * read side and mg_store_check), mg_store_io.c (archive and snapshots).
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
#include "mg/mg_name.h"

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

double mg__clock_default(void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

/* ------------------------------------------------------------ warnings */

/* Re-evaluate warnings and lowered limits after a change (locked). */
void mg__after_change(mg_store *s, mg__op *op) {
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
  if ((rc = mg_name_check("store name", name, nlen, err, err_len)) != 0)
    return rc;
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
  s->refs = 1;
  mg__apply_limits(s, &opts->limits);
  *out = s;
  return 0;
}

mg_store *mg_store_retain(mg_store *s) {
  if (s)
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  return s;
}

/* Empty the store in place, without callbacks or archive (the lock is
 * held): the messages go to op->grave. */
static void mg__drop_all(mg_store *s, mg__op *op) {
  for (mg__msg *m = s->head, *nx; m; m = nx) {
    nx = m->next;
    m->vnext = op->grave;
    op->grave = m;
  }
  s->head = s->tail = NULL;
  s->count = s->ngroups = 0;
  s->total_bytes = s->payload_bytes = s->total_tokens = 0;
  s->pinned_count = s->pinned_bytes = 0;
  s->largest = s->largest_n = 0;
  s->largest_dirty = 0;
  memset(s->idx, 0, s->idx_nb * sizeof *s->idx);
  memset(s->gtab, 0, s->gtab_nb * sizeof *s->gtab);
  s->mutations++;
}

int mg_store_close(mg_store *s) {
  if (!s)
    return 0;
  if (mg__held_here(s))
    return MG_EBUSY;
  pthread_mutex_lock(&s->mu);
  if (s->closed) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  mg__op op;
  mg__op_init(&op);
  mg__drop_all(s, &op);
  __atomic_store_n(&s->closed, 1, __ATOMIC_RELEASE);
  s->strategy = NULL;
  s->strategy_ud = NULL;
  s->on_evict = NULL;
  s->on_evict_ud = NULL;
  s->on_warn = NULL;
  s->on_warn_ud = NULL;
  /* The estimator stays: adds run it before taking the lock, after they
   * checked `closed` (below, atomically); it is never called again. */
  s->warned = s->lowered = 0;
  mg__store_archive_close(s);
  mg__shrink(s);
  mg__wunlock(s, &op);
  return 0;
}

int mg_store_closed(const mg_store *s) {
  return __atomic_load_n(&s->closed, __ATOMIC_ACQUIRE);
}

void mg_store_free(mg_store *s) {
  if (!s || mg__held_here(s))
    return;
  if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
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

/* ------------------------------------------------------------ add */

void mg__lerr(mg_store_error *e, int code, mg_store_limit_type t, uint64_t cur,
              uint64_t lim, const char *details, const char *fmt, ...) {
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

int mg__token_overflow(char *err, size_t err_len, uint64_t held, uint64_t more,
                       const char *what) {
  return mg_errf(err, err_len, -EOVERFLOW,
                 "the token total would overflow: %" PRIu64
                 " token%s held + %" PRIu64 " %s is more than %" PRIu64
                 " (2^63 - 1), the most a store counts",
                 held, mg__s(held), more, what, MG_STORE_LIMIT_MAX);
}

/* Record and log a failed add (locked). */
int mg__add_fail(mg_store *s, mg_store_error *e, int code,
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

int mg_store_add(mg_store *s, const mg_store_input *in, uint64_t *out_id,
                 mg_store_error *e) {
  if ((mg__frames && mg__held_here(s)) || /* busy: do not even estimate */
      __atomic_load_n(&s->closed, __ATOMIC_ACQUIRE))
    return mg__wlock_e(s, e);
  mg__prep p;
  char why[400];
  int rc = in ? mg__prepare(in, &p, why, sizeof why)
              : mg_errf(why, sizeof why, -EINVAL, "no message given (NULL)");
  mg__op op;
  mg__op_init(&op);
  mg__msg *m = NULL;
  uint64_t tokens = 0;
  while (rc == 0) {
    /* Build the block (estimator and clock included) before taking the
     * lock, unless it is too big anyway; the limit is read again locked. */
    if (!m && p.size <= __atomic_load_n(&s->lim.max_message_size_bytes,
                                        __ATOMIC_RELAXED)) {
      char est[320];
      if ((rc = mg__estimate(s, in, &tokens, est, sizeof est)) != 0) {
        snprintf(why, sizeof why, "store '%s': %s", s->name, est);
        break;
      }
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
    if ((rc = mg__wlock_e(s, e)) != 0) {
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
      break;             /* locked, with the block */
    mg__wunlock(s, &op); /* the limit was raised meanwhile: build, retry */
  }
  if (rc) { /* refused before the lock: a malformed input, the estimator */
    int busy = mg__wlock_e(s, e);
    if (busy)
      return busy;
    rc = mg__add_fail(s, e, rc, MG_STORE_LIMIT_NONE, 0, 0, why, NULL);
    mg__wunlock(s, &op);
    return rc;
  }
  /* Totals and ids stay within 2^63-1 (Lua integers, JSON). Neither is a
   * limit of the store: with max_tokens set, that limit refuses (or makes
   * room for) too many tokens long before the total could overflow. An
   * add may use two ids (its own, a strategy's replacement). */
  int ids = s->next_id > MG_STORE_ID_MAX - 2;
  if (ids ||
      (!s->lim.max_tokens && tokens > MG_STORE_LIMIT_MAX - s->total_tokens)) {
    char ovf[300];
    if (ids)
      snprintf(ovf, sizeof ovf,
               "message ids are exhausted: the next id would be %" PRIu64
               ", and a store gives out ids up to %" PRIu64,
               s->next_id, MG_STORE_ID_MAX - 2);
    else
      mg__token_overflow(ovf, sizeof ovf, s->total_tokens, tokens,
                         "in the message");
    snprintf(why, sizeof why, "store '%s': %s", s->name, ovf);
    rc =
        mg__add_fail(s, e, -EOVERFLOW, MG_STORE_LIMIT_NONE,
                     ids ? s->next_id : s->total_tokens + tokens,
                     ids ? MG_STORE_ID_MAX - 2 : MG_STORE_LIMIT_MAX, why, NULL);
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
  int rc = mg__wlock_err(s, err, err_len);
  if (rc)
    return rc;
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
  mg__drop_all(s, &op);
  s->removed_count += n;
  mg__shrink(s);
  mg__after_change(s, &op);
  mg__wunlock(s, &op);
  if (out_removed)
    *out_removed = n;
  return 0;
}

/* ------------------------------------------------------------ settings */

int mg_store_set_limits(mg_store *s, const mg_store_limits *l, char *err,
                        size_t err_len) {
  int rc = mg_store_limits_validate(l, err, err_len);
  if (rc)
    return rc;
  if ((rc = mg__wlock_err(s, err, err_len)) != 0)
    return rc;
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
    return MG_ECORRUPT; /* a malformed message in the file */
  if (mg__find(s, id))
    return mg_errf(err, err_len, MG_ECORRUPT, "id %" PRIu64 " appears twice",
                   id);
  uint64_t ng =
      p.group_len && !mg__group_leader(s, in->group, p.group_len, p.ghash);
  if (mg__ensure(s, 1, ng))
    return mg_errf(err, err_len, -ENOMEM, "out of memory");
  uint64_t tk;
  if ((rc = mg__estimate(s, in, &tk, err, err_len)) != 0)
    return rc;
  if (tk > MG_STORE_LIMIT_MAX - s->total_tokens) {
    mg__token_overflow(err, err_len, s->total_tokens, tk, "in this message");
    return MG_ECORRUPT;
  }
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
