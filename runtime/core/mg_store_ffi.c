/* mg_store_ffi.c — flat entry points of the store for foreign-function
 * bindings (core layer; mg/mg_ffi.h). Like an auxiliary library, this
 * file uses nothing but the store's public API: every read runs inside
 * mg_store_read, so it sees one consistent store and works from the
 * store's own callbacks as well.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_error.h"
#include "mg/mg_ffi.h"

/* ------------------------------------------------------------ adding */

/* Unpack "k\0v\0…" into meta[]: the number of pairs, or -EINVAL. */
static int unpack_meta(const char *p, size_t len, mg_store_meta *meta,
                       char *why, size_t why_len) {
  size_t n = 0, off = 0;
  while (off < len) {
    const char *k = p + off;
    const char *kz = memchr(k, '\0', len - off);
    if (!kz)
      return mg_errf(why, why_len, -EINVAL,
                     "meta is malformed: key %zu is not NUL-terminated", n);
    off = (size_t)(kz - p) + 1;
    const char *v = p + off;
    const char *vz = off < len ? memchr(v, '\0', len - off) : NULL;
    if (!vz)
      return mg_errf(why, why_len, -EINVAL,
                     "meta is malformed: the value of key %zu is missing or "
                     "not NUL-terminated",
                     n);
    off = (size_t)(vz - p) + 1;
    if (n == MG_STORE_META_MAX)
      return mg_errf(why, why_len, -EINVAL,
                     "meta has more than %u entries; at most %u are accepted",
                     MG_STORE_META_MAX, MG_STORE_META_MAX);
    meta[n].key = k;
    meta[n].value = v;
    n++;
  }
  return (int)n;
}

int64_t mg_store_add_flat(mg_store *s, const char *role, const void *content,
                          size_t content_len, const char *source,
                          const char *group, int pinned, int64_t priority,
                          int64_t tokens, const char *meta, size_t meta_len,
                          mg_store_error *err) {
  mg_store_meta pairs[MG_STORE_META_MAX];
  mg_store_input in;
  memset(&in, 0, sizeof in);
  in.role = role;
  in.content = content;
  in.content_len = content_len;
  in.source = source;
  in.group = group;
  in.pinned = pinned != 0;
  in.priority = priority;
  in.has_tokens = tokens >= 0;
  in.tokens = tokens >= 0 ? (uint64_t)tokens : 0;
  if (meta && meta_len) {
    char why[200];
    int n = unpack_meta(meta, meta_len, pairs, why, sizeof why);
    if (n < 0) {
      if (err) {
        memset(err, 0, sizeof *err);
        err->code = n;
        snprintf(err->message, sizeof err->message, "store '%s': %s",
                 mg_store_name(s), why);
      }
      return n;
    }
    in.meta = pairs;
    in.meta_count = (size_t)n;
  }
  uint64_t id = 0;
  int rc = mg_store_add(s, &in, &id, err);
  return rc ? (int64_t)rc : (int64_t)id;
}

/* ------------------------------------------------------------ copying */

typedef struct copy_req {
  uint64_t key; /* id or position */
  int by_pos;
  mg_store_msg *out;
  char *buf;
  size_t cap, need;
} copy_req;

/* Copy `len` bytes and a NUL to *at; return where they went. */
static const char *put(char **at, const void *p, size_t len) {
  char *d = *at;
  if (len)
    memcpy(d, p, len);
  d[len] = '\0';
  *at = d + len + 1;
  return d;
}

static int copy_fn(void *ud, const mg_store *s) {
  copy_req *r = ud;
  mg_store_msg m;
  int rc = r->by_pos ? mg_store_at(s, r->key, &m) : mg_store_get(s, r->key, &m);
  if (rc)
    return rc;
  r->need = m.role_len + 1 + m.source_len + 1 + m.group_len + 1 +
            m.meta_packed_len + m.content_len + 1;
  if (r->cap < r->need)
    return -ENOBUFS;
  char *at = r->buf;
  *r->out = m;
  r->out->role = put(&at, m.role, m.role_len);
  r->out->source = put(&at, m.source, m.source_len);
  r->out->group = put(&at, m.group, m.group_len);
  if (m.meta_packed_len)
    memcpy(at, m.meta_packed, m.meta_packed_len);
  r->out->meta_packed = at;
  at += m.meta_packed_len;
  r->out->content = (const unsigned char *)put(&at, m.content, m.content_len);
  return 0;
}

static int copy_msg(const mg_store *s, uint64_t key, int by_pos,
                    mg_store_msg *out, void *buf, size_t cap, size_t *need) {
  copy_req r = {key, by_pos, out, buf, cap, 0};
  int rc = mg_store_read(s, copy_fn, &r);
  if (need)
    *need = r.need;
  return rc;
}

int mg_store_copy(const mg_store *s, uint64_t id, mg_store_msg *out, void *buf,
                  size_t cap, size_t *need) {
  return copy_msg(s, id, 0, out, buf, cap, need);
}

int mg_store_copy_at(const mg_store *s, uint64_t position, mg_store_msg *out,
                     void *buf, size_t cap, size_t *need) {
  return copy_msg(s, position, 1, out, buf, cap, need);
}

typedef struct ids_req {
  uint64_t *out;
  size_t cap, count;
} ids_req;

static int ids_fn(void *ud, const mg_store *s) {
  ids_req *r = ud;
  r->count = (size_t)mg_store_len(s);
  if (r->cap < r->count)
    return -ENOBUFS;
  mg_store_iter it;
  mg_store_msg m;
  size_t i = 0;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (i < r->count && mg_store_iter_next(s, &it, &m) == 1)
    r->out[i++] = m.id;
  return 0;
}

int mg_store_ids(const mg_store *s, uint64_t *out, size_t cap, size_t *count) {
  ids_req r = {out, cap, 0};
  int rc = mg_store_read(s, ids_fn, &r);
  if (count)
    *count = r.count;
  return rc;
}

/* ------------------------------------------------------------ units */

typedef struct units_req {
  mg_store_unit *units;
  size_t cap;
  uint64_t *of;
  size_t of_cap;
  size_t n_units;
  uint64_t n_msgs;
} units_req;

static uint32_t hash_bytes(const char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 16777619u;
  }
  return h;
}

static int units_fn(void *ud, const mg_store *s) {
  units_req *r = ud;
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  r->n_msgs = st.message_count;
  r->n_units = 0;
  if (r->cap < st.message_count || (r->of && r->of_cap < st.message_count))
    return -ENOBUFS;
  /* group -> unit index + 1, open addressing over a power of two */
  size_t nb = 16;
  while (nb < 2 * st.group_count + 2)
    nb *= 2;
  size_t *tab = NULL;
  if (st.group_count && !(tab = calloc(nb, sizeof *tab)))
    return -ENOMEM;
  mg_store_iter it;
  mg_store_msg m;
  uint64_t pos = 0;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(s, &it, &m) == 1) {
    mg_store_unit *u = NULL;
    size_t slot = 0;
    if (m.group_len) {
      slot = hash_bytes(m.group, m.group_len) & (nb - 1);
      for (; tab[slot]; slot = (slot + 1) & (nb - 1)) {
        mg_store_unit *c = &r->units[tab[slot] - 1];
        if (c->group_len == m.group_len &&
            memcmp(c->group, m.group, m.group_len) == 0) {
          u = c;
          break;
        }
      }
    }
    if (u) { /* another member of a known group */
      u->count++;
      u->bytes += m.size_bytes;
      u->tokens += m.tokens;
      u->pinned |= m.pinned != 0;
      if (m.priority > u->priority)
        u->priority = m.priority;
      if (m.time > u->time)
        u->time = m.time;
    } else {
      u = &r->units[r->n_units++];
      u->id = m.id;
      u->first = pos;
      u->count = 1;
      u->bytes = m.size_bytes;
      u->tokens = m.tokens;
      u->priority = m.priority;
      u->time = m.time;
      u->pinned = m.pinned != 0;
      u->role = m.role;
      u->role_len = m.role_len;
      u->group = m.group;
      u->group_len = m.group_len;
      if (m.group_len)
        tab[slot] = r->n_units;
    }
    if (r->of)
      r->of[pos] = (uint64_t)(u - r->units);
    pos++;
  }
  free(tab);
  return 0;
}

int mg_store_units(const mg_store *s, mg_store_unit *units, size_t cap,
                   uint64_t *of, size_t of_cap, size_t *n_units,
                   uint64_t *n_messages) {
  units_req r = {units, cap, of, of_cap, 0, 0};
  int rc = mg_store_read(s, units_fn, &r);
  if (n_units)
    *n_units = r.n_units;
  if (n_messages)
    *n_messages = r.n_msgs;
  return rc;
}
