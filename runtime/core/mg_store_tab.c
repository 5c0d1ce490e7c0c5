/* mg_store_tab.c — the bounded context store's structure (core layer):
 * the order list, the id index and the group table, and linking a block
 * into them / unlinking it, with the accounting that goes with it.
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
 */
#include "mg__store.h"

#include <errno.h>
#include <stddef.h>

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

int mg__ensure_slow(mg_store *s, uint64_t extra_msgs, uint64_t extra_groups) {
  int rc =
      mg__tab_grow(s, &s->idx, &s->idx_nb, &s->idx_cap, s->count + extra_msgs,
                   mg__key_id, offsetof(mg__msg, hnext));
  if (rc == 0)
    rc = mg__tab_grow(s, &s->gtab, &s->gtab_nb, &s->gtab_cap,
                      s->ngroups + extra_groups, mg__key_group,
                      offsetof(mg__msg, ghnext));
  return rc;
}

void mg__shrink_slow(mg_store *s) {
  mg__tab_shrink(s, &s->idx, &s->idx_nb, &s->idx_cap, s->count,
                 offsetof(mg__msg, hnext));
  mg__tab_shrink(s, &s->gtab, &s->gtab_nb, &s->gtab_cap, s->ngroups,
                 offsetof(mg__msg, ghnext));
}

/* ------------------------------------------------------------ link/unlink */

void mg__link(mg_store *s, mg__msg *m, mg__msg *before) {
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

void mg__unlink(mg_store *s, mg__msg *m) {
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
