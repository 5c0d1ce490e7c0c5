/* mg_store_read.c — the store's read side (core layer): views, positions,
 * iteration, stats, limits, meta, batches, mg_store_read and
 * mg_store_check. Everything here only reads (the position cache and the
 * lazily recomputed largest size are caches, updated under the lock).
 */
#include "mg__store.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "mg/mg_error.h"

void mg__largest_refresh(const mg_store *cs) {
  mg_store *s = (mg_store *)cs; /* cache, under the lock */
  if (!s->largest_dirty)
    return;
  uint64_t mx = 0, n = 0;
  for (const mg__msg *m = s->head; m; m = m->next) {
    uint64_t sz = mg__msg_size(m);
    if (sz > mx)
      mx = sz, n = 1;
    else if (sz == mx)
      n++;
  }
  s->largest = mx;
  s->largest_n = n;
  s->largest_dirty = 0;
}

/* ------------------------------------------------------------ reading */

uint64_t mg_store_len(const mg_store *s) {
  int t = mg__rlock(s);
  uint64_t n = s->count;
  mg__runlock(s, t);
  return n;
}

void mg_store_get_limits(const mg_store *s, mg_store_limits *out) {
  int t = mg__rlock(s);
  *out = s->lim;
  mg__runlock(s, t);
}

static double mg__ratio(uint64_t a, uint64_t b) {
  return b ? (double)a / (double)b : 0.0;
}

void mg__stats_locked(const mg_store *s, mg_store_stats *o) {
  mg__largest_refresh(s);
  memset(o, 0, sizeof *o);
  o->message_count = s->count;
  o->total_size_bytes = s->total_bytes;
  o->largest_message_bytes = s->count ? s->largest : 0;
  o->max_messages = s->lim.max_messages;
  o->max_message_size_bytes = s->lim.max_message_size_bytes;
  o->max_total_size_bytes = s->lim.max_total_size_bytes;
  o->message_count_utilization = mg__ratio(s->count, s->lim.max_messages);
  o->total_size_utilization =
      mg__ratio(s->total_bytes, s->lim.max_total_size_bytes);
  o->near_message_limit = s->count >= s->thr_count;
  o->near_size_limit = s->total_bytes >= s->thr_bytes;
  o->total_tokens = s->total_tokens;
  o->max_tokens = s->lim.max_tokens;
  o->token_utilization = mg__ratio(s->total_tokens, s->lim.max_tokens);
  o->near_token_limit = s->lim.max_tokens && s->total_tokens >= s->thr_tokens;
  o->payload_bytes = s->payload_bytes;
  o->overhead_bytes = s->total_bytes - s->payload_bytes;
  o->pinned_count = s->pinned_count;
  o->pinned_bytes = s->pinned_bytes;
  o->group_count = s->ngroups;
  o->warn_at = s->lim.warn_at;
  o->next_id = s->next_id;
  o->evicted_count = s->evicted_count;
  o->evicted_bytes = s->evicted_bytes;
  o->archived_count = s->archived_count;
  o->removed_count = s->removed_count;
  o->replaced_count = s->replaced_count;
  o->rejected_count = s->rejected_count;
}

void mg_store_get_stats(const mg_store *s, mg_store_stats *out) {
  int t = mg__rlock(s);
  mg__stats_locked(s, out);
  mg__runlock(s, t);
}

int mg_store_get(const mg_store *s, uint64_t id, mg_store_msg *out) {
  int t = mg__rlock(s);
  const mg__msg *m = mg__find(s, id);
  if (m)
    mg__store_view(m, out);
  mg__runlock(s, t);
  return m ? 0 : -ENOENT;
}

int mg_store_at(const mg_store *cs, uint64_t pos, mg_store_msg *out) {
  int t = mg__rlock(cs);
  mg_store *s = (mg_store *)cs; /* the cursor cache, under the lock */
  int rc = -ENOENT;
  if (pos < s->count) {
    mg__msg *m;
    uint64_t at;
    uint64_t from_tail = s->count - 1 - pos;
    if (pos <= from_tail)
      m = s->head, at = 0;
    else
      m = s->tail, at = s->count - 1;
    if (s->pc_node && s->pc_mut == s->mutations) {
      uint64_t d = s->pc_pos > pos ? s->pc_pos - pos : pos - s->pc_pos;
      if (d < (pos <= from_tail ? pos : from_tail))
        m = s->pc_node, at = s->pc_pos;
    }
    while (at < pos)
      m = m->next, at++;
    while (at > pos)
      m = m->prev, at--;
    s->pc_node = m;
    s->pc_pos = pos;
    s->pc_mut = s->mutations;
    mg__store_view(m, out);
    rc = 0;
  }
  mg__runlock(cs, t);
  return rc;
}

void mg_store_iter_init(const mg_store *s, mg_store_iter *it,
                        mg_store_order order) {
  int t = mg__rlock(s);
  it->node_ = order == MG_STORE_NEWEST_FIRST ? s->tail : s->head;
  it->epoch_ = s->mutations;
  it->position = order == MG_STORE_NEWEST_FIRST ? (size_t)s->count : 0;
  it->order_ = (int)order;
  it->started_ = 0;
  mg__runlock(s, t);
}

int mg_store_iter_next(const mg_store *s, mg_store_iter *it,
                       mg_store_msg *out) {
  int t = mg__rlock(s);
  int rc;
  if (it->epoch_ != s->mutations) {
    rc = -ESTALE;
  } else if (!it->node_) {
    rc = 0;
  } else {
    const mg__msg *m = it->node_;
    mg__store_view(m, out);
    if (it->order_ == MG_STORE_NEWEST_FIRST) {
      it->position--;
      it->node_ = m->prev;
    } else {
      if (it->started_)
        it->position++;
      it->node_ = m->next;
    }
    it->started_ = 1;
    rc = 1;
  }
  mg__runlock(s, t);
  return rc;
}

int mg_store_msg_meta_next(const mg_store_msg *m, size_t *cursor,
                           const char **key, const char **value) {
  if (*cursor >= m->meta_packed_len)
    return 0;
  const char *k = m->meta_packed + *cursor;
  const char *v = k + strlen(k) + 1;
  *cursor = (size_t)(v - m->meta_packed) + strlen(v) + 1;
  *key = k;
  *value = v;
  return 1;
}

const char *mg_store_msg_meta_get(const mg_store_msg *m, const char *key) {
  size_t c = 0;
  const char *k, *v;
  while (mg_store_msg_meta_next(m, &c, &k, &v))
    if (strcmp(k, key) == 0)
      return v;
  return NULL;
}

size_t mg_store_batch_len(const mg_store_batch *b) {
  return b->n;
}

int mg_store_batch_at(const mg_store_batch *cb, size_t i, mg_store_msg *out) {
  mg_store_batch *b = (mg_store_batch *)cb; /* cursor */
  if (i >= b->n)
    return -ENOENT;
  if (i < b->cur_i)
    b->cur = b->first, b->cur_i = 0;
  while (b->cur_i < i)
    b->cur = b->cur->vnext, b->cur_i++;
  mg__store_view(b->cur, out);
  return 0;
}

int mg_store_read(const mg_store *s, mg_store_read_fn fn, void *ud) {
  int t = mg__rlock(s);
  mg__frame fr;
  mg__frame_push(&fr, s);
  int rc = fn(ud, s);
  mg__frame_pop(&fr);
  mg__runlock(s, t);
  return rc;
}

/* ------------------------------------------------------------ check */

static int mg__check_locked(const mg_store *s, char *err, size_t err_len) {
  uint64_t n = 0, total = 0, payload = 0, tokens = 0, pc = 0, pb = 0, mx = 0;
  uint64_t mxn = 0, leaders = 0;
  const mg__msg *prev = NULL;
  for (const mg__msg *m = s->head; m; prev = m, m = m->next) {
    if (m->prev != prev)
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "order list broken at message %" PRIu64, m->id);
    if (++n > s->count)
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "order list holds more than the %" PRIu64
                     " message%s counted",
                     s->count, mg__s(s->count));
    if (m->id == 0 || m->id >= s->next_id)
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "message id %" PRIu64 " is not below next_id %" PRIu64,
                     m->id, s->next_id);
    if (mg__find(s, m->id) != m)
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "id index does not find message %" PRIu64
                     " (or finds another with the same id)",
                     m->id);
    /* victims are marked while on_evict looks at them: legal there */
    if ((m->flags & MG__F_VICTIM) && !mg__held_here(s))
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "message %" PRIu64 " is still marked for eviction", m->id);
    uint64_t sz = mg__msg_size(m);
    total += sz;
    payload += mg__msg_payload(m);
    tokens += m->tokens;
    if (m->pinned)
      pc++, pb += sz;
    if (sz > mx)
      mx = sz, mxn = 1;
    else if (sz == mx)
      mxn++;
    if (!(s->lowered & MG__D_MSGSIZE) && sz > s->lim.max_message_size_bytes)
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "message %" PRIu64 " has size %" PRIu64
                     " above max_message_size %" PRIu64,
                     m->id, sz, s->lim.max_message_size_bytes);
    /* group ring: every member shares the group, exactly one leader, and
     * the leader is what the table finds */
    if (!m->group_len) {
      if (m->gnext != m || (m->flags & MG__F_LEADER))
        return mg_errf(err, err_len, MG_ECORRUPT,
                       "message %" PRIu64 " has no group but is in a ring",
                       m->id);
      continue;
    }
    const char *g = mg__msg_group(m);
    if (m->ghash != mg__hash_str(g, m->group_len))
      return mg_errf(err, err_len, MG_ECORRUPT,
                     "message %" PRIu64 " has a wrong group hash", m->id);
    size_t lead = 0, ring = 0;
    const mg__msg *r = m, *leader = NULL;
    do {
      if (r->group_len != m->group_len ||
          memcmp(mg__msg_group(r), g, m->group_len) != 0)
        return mg_errf(err, err_len, MG_ECORRUPT,
                       "group ring of message %" PRIu64
                       " holds message %" PRIu64 " of another group",
                       m->id, r->id);
      if (r->flags & MG__F_LEADER)
        lead++, leader = r;
      if (++ring > s->count)
        return mg_errf(err, err_len, MG_ECORRUPT,
                       "group ring of message %" PRIu64 " does not close",
                       m->id);
      r = r->gnext;
    } while (r != m);
    if (lead != 1 || mg__group_leader(s, g, m->group_len, m->ghash) != leader)
      return mg_errf(
          err, err_len, MG_ECORRUPT,
          "group '%s' has %zu leader%s or the table does not find it", g, lead,
          mg__s(lead));
    if (m->flags & MG__F_LEADER)
      leaders++;
  }
  if (prev != s->tail)
    return mg_errf(err, err_len, MG_ECORRUPT, "tail pointer is wrong");
  if (n != s->count)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "count %" PRIu64 " but %" PRIu64 " message%s listed",
                   s->count, n, mg__s(n));
  /* every message with a group is in the ring of its group's leader, so
   * comparing member counts finds split rings */
  uint64_t grouped = 0, in_rings = 0;
  for (const mg__msg *m = s->head; m; m = m->next) {
    if (!m->group_len)
      continue;
    grouped++;
    if (m->flags & MG__F_LEADER) {
      const mg__msg *r = m;
      do {
        in_rings++;
        r = r->gnext;
      } while (r != m);
    }
  }
  if (grouped != in_rings)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "%" PRIu64 " grouped message%s but %" PRIu64
                   " in leaders' rings: a group is split",
                   grouped, mg__s(grouped), in_rings);
  uint64_t indexed = 0, tabled = 0;
  for (size_t i = 0; i < s->idx_nb; i++)
    for (const mg__msg *m = s->idx[i]; m; m = m->hnext) {
      if ((m->id & (s->idx_nb - 1)) != i || ++indexed > s->count)
        return mg_errf(err, err_len, MG_ECORRUPT,
                       "id index bucket %zu is inconsistent", i);
    }
  for (size_t i = 0; i < s->gtab_nb; i++)
    for (const mg__msg *m = s->gtab[i]; m; m = m->ghnext) {
      if ((m->ghash & (s->gtab_nb - 1)) != i || !(m->flags & MG__F_LEADER) ||
          ++tabled > s->ngroups)
        return mg_errf(err, err_len, MG_ECORRUPT,
                       "group table bucket %zu is inconsistent", i);
    }
  if (indexed != n)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "id index holds %" PRIu64 " entr%s for %" PRIu64
                   " message%s",
                   indexed, indexed == 1 ? "y" : "ies", n, mg__s(n));
  if (tabled != s->ngroups || leaders != s->ngroups)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "group table holds %" PRIu64 " group%s, %" PRIu64
                   " leader%s listed, %" PRIu64 " counted",
                   tabled, mg__s(tabled), leaders, mg__s(leaders), s->ngroups);
  if (total != s->total_bytes)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "accounted total %" PRIu64 " != sum of sizes %" PRIu64,
                   s->total_bytes, total);
  if (payload != s->payload_bytes)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "accounted payload %" PRIu64 " != sum %" PRIu64,
                   s->payload_bytes, payload);
  if (tokens != s->total_tokens)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "accounted tokens %" PRIu64 " != sum %" PRIu64,
                   s->total_tokens, tokens);
  if (pc != s->pinned_count || pb != s->pinned_bytes)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "accounted pinned %" PRIu64 " message%s / %" PRIu64
                   " bytes != sums %" PRIu64 " / %" PRIu64,
                   s->pinned_count, mg__s(s->pinned_count), s->pinned_bytes, pc,
                   pb);
  if (!s->largest_dirty && n && (s->largest != mx || s->largest_n != mxn))
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "largest message %" PRIu64 " (x%" PRIu64
                   ") != actual %" PRIu64 " (x%" PRIu64 ")",
                   s->largest, s->largest_n, mx, mxn);
  if (s->largest_dirty && s->largest < mx)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "largest message bound %" PRIu64 " < actual %" PRIu64,
                   s->largest, mx);
  if (!(s->lowered & MG__D_COUNT) && n > s->lim.max_messages)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "%" PRIu64 " messages exceed max_messages %" PRIu64, n,
                   s->lim.max_messages);
  if (!(s->lowered & MG__D_TOTAL) && total > s->lim.max_total_size_bytes)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "total %" PRIu64 " exceeds max_total_size %" PRIu64, total,
                   s->lim.max_total_size_bytes);
  if (!(s->lowered & MG__D_TOKENS) && s->lim.max_tokens &&
      tokens > s->lim.max_tokens)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "%" PRIu64 " tokens exceed max_tokens %" PRIu64, tokens,
                   s->lim.max_tokens);
  if (s->idx_nb < MG__TAB_MIN || (s->idx_nb & (s->idx_nb - 1)) ||
      (s->idx_nb > MG__TAB_MIN && (uint64_t)s->idx_nb > 4 * n + 4) ||
      s->idx_nb > s->idx_cap)
    return mg_errf(err, err_len, MG_ECORRUPT,
                   "id index has %zu buckets for %" PRIu64 " message%s",
                   s->idx_nb, n, mg__s(n));
  return 0;
}

int mg_store_check(const mg_store *s, char *err, size_t err_len) {
  int t = mg__rlock(s);
  int rc = mg__check_locked(s, err, err_len);
  mg__runlock(s, t);
  return rc;
}
