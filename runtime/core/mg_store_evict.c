/* mg_store_evict.c — eviction in the bounded context store (core layer):
 * victims and whole groups, the built-in "oldest" strategy and its fast
 * path, strategy plans (mg_store_plan_evict / _replace) and running a
 * strategy, applying an eviction (archive, on_evict, commit), making room
 * for an add, mg_store_prune and mg_store_make_room.
 */
#include "mg__store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "mg/mg_error.h"

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
  char msg[400];
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
          "strategy 'oldest' could free only %zu message%s, %" PRIu64
          " byte%s and %" PRIu64 " token%s of the %" PRIu64
          " message%s, %" PRIu64 " byte%s and %" PRIu64
          " token%s needed: the rest is pinned, grouped "
          "with a pinned message, or in the group of the message being added",
          ev->n, mg__s(ev->n), ev->bytes, mg__s(ev->bytes), ev->tokens,
          mg__s(ev->tokens), need->count, mg__s(need->count), need->bytes,
          mg__s(need->bytes), need->tokens, mg__s(need->tokens));
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
                         "strategy '%s' gave more than one replacement (a "
                         "plan takes at most one)",
                         s->strategy_name);
  mg__prep pr;
  char why[320];
  int rc = in ? mg__prepare(in, &pr, why, sizeof why)
              : mg_errf(why, sizeof why, -EINVAL, "no message given (NULL)");
  if (rc)
    return mg__plan_fail(p, rc, "strategy '%s' gave an invalid replacement: %s",
                         s->strategy_name, why);
  if (pr.size > s->lim.max_message_size_bytes)
    return mg__plan_fail(p, MG_ELIMIT,
                         "strategy '%s' gave a replacement whose size %" PRIu64
                         " exceeds max_message_size %" PRIu64,
                         s->strategy_name, pr.size,
                         s->lim.max_message_size_bytes);
  uint64_t tokens; /* the estimator runs here, locked (mg_store.h) */
  if ((rc = mg__estimate(s, in, &tokens, why, sizeof why)) != 0)
    return mg__plan_fail(p, rc,
                         "strategy '%s' gave a replacement whose tokens could "
                         "not be estimated: %s",
                         s->strategy_name, why);
  mg__msg *m = mg__build(s, in, &pr, tokens, mg__now(s));
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
  /* The token total stays within 2^63 - 1 with the replacement (and the
   * new message) in: without a token limit nothing else would stop it. */
  uint64_t kept = s->total_tokens - ev->tokens;
  uint64_t more = rtok + (need->adding ? need->incoming_tokens : 0);
  if (ev->repl && more > MG_STORE_LIMIT_MAX - kept) {
    char ovf[300];
    mg__token_overflow(ovf, sizeof ovf, kept, more,
                       need->adding ? "in the replacement and the message"
                                    : "in the replacement");
    mg_errf(why, why_len, -EOVERFLOW,
            "strategy '%s' gave a replacement of %" PRIu64 " token%s: %s",
            s->strategy_name, rtok, mg__s(rtok), ovf);
    mg__ev_cancel(s, ev);
    return -EOVERFLOW;
  }
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
      dim = "message", got = ev->n, want = wc;
    else if (ev->bytes < wb)
      dim = "byte", got = ev->bytes, want = wb;
    else if (ev->tokens < wt)
      dim = "token", got = ev->tokens, want = wt;
  } else if (ev->n < need->count + rcnt) {
    dim = "message", got = ev->n, want = need->count + rcnt;
  } else if (ev->bytes < need->bytes + rsize) {
    dim = "byte", got = ev->bytes, want = need->bytes + rsize;
  } else if (s->lim.max_tokens && ev->tokens < need->tokens + rtok) {
    dim = "token", got = ev->tokens, want = need->tokens + rtok;
  }
  if (dim) {
    mg_errf(why, why_len, MG_ESTRATEGY,
            "strategy '%s' freed too little: %" PRIu64 " %s%s of the %" PRIu64
            " needed%s",
            s->strategy_name, got, dim, mg__s(got), want,
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
                   "internal error: %zu victim%s not found in the store", left,
                   mg__s(left));
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

/* ------------------------------------------------------------ room */

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
int mg__room(mg_store *s, uint64_t size, uint64_t tokens, const char *group,
             size_t group_len, uint64_t extra_groups, mg__op *op,
             mg_store_error *e) {
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
           "store '%s': %" PRIu64 " message%s, %" PRIu64 " byte%s, %" PRIu64   \
           " token%s; adding a message of %" PRIu64 " bytes, %" PRIu64         \
           " token%s",                                                         \
           s->name, s->count, mg__s(s->count), s->total_bytes,                 \
           mg__s(s->total_bytes), s->total_tokens, mg__s(s->total_tokens),     \
           size, tokens, mg__s(tokens))
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
               "max_total_size %" PRIu64,
               size, s->lim.max_total_size_bytes);
    else
      snprintf(why, sizeof why,
               "pinned messages alone hold %" PRIu64
               " bytes of max_total_size %" PRIu64
               ", and the message needs %" PRIu64 " bytes",
               s->pinned_bytes, s->lim.max_total_size_bytes, size);
    mg__need_cur(s, MG_STORE_LIMIT_TOTAL_SIZE, size, tokens, &cur, &lim);
    return mg__add_fail(s, e, MG_ELIMIT, MG_STORE_LIMIT_TOTAL_SIZE, cur, lim,
                        why, det);
  }
  if (s->lim.max_tokens && tokens > s->lim.max_tokens) {
    MG__DETAILS();
    snprintf(why, sizeof why,
             "the message alone has %" PRIu64 " tokens, more than max_tokens "
             "%" PRIu64,
             tokens, s->lim.max_tokens);
    mg__need_cur(s, MG_STORE_LIMIT_TOKENS, size, tokens, &cur, &lim);
    return mg__add_fail(s, e, MG_ELIMIT, MG_STORE_LIMIT_TOKENS, cur, lim, why,
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

/* ------------------------------------------------------------ prune */

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
  int rc = mg__wlock_err(s, err, err_len);
  if (rc)
    return rc;
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
  int rc = mg__wlock_e(s, e);
  if (rc)
    return rc;
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
