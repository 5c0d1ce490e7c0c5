/* mg_store_msg.c — one message of the bounded context store (core
 * layer): validating an input (UTF-8 text fields, meta, lengths), its
 * tokens (given, or from the store's estimator), building its single block
 * (header + strings inline, see mg__store.h) and viewing a block.
 */
#include "mg__store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_error.h"

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

/* ------------------------------------------------------------ messages */

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

int mg__prepare(const mg_store_input *in, mg__prep *p, char *err,
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

int mg__estimate_call(const mg_store *s, const mg_store_input *in,
                      uint64_t *tokens, char *err, size_t err_len) {
  char why[256] = "";
  uint64_t t = 0;
  int rc = s->estimate(s->estimate_ud, in, &t, why, sizeof why);
  if (rc > 0)
    return mg_errf(err, err_len, -EINVAL,
                   "estimator failed: it returned %d, not 0 or a negative "
                   "error code%s%s",
                   rc, why[0] ? ": " : "", why);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "estimator failed: %s",
                   why[0] ? why : mg_strerror(rc));
  if (t > MG_STORE_LIMIT_MAX)
    return mg_errf(err, err_len, -ERANGE,
                   "estimator failed: it gave %" PRIu64
                   " tokens, above the maximum %" PRIu64,
                   t, MG_STORE_LIMIT_MAX);
  *tokens = t;
  return 0;
}

/* Allocate and fill a block (id not yet assigned). */
mg__msg *mg__build(const mg_store *s, const mg_store_input *in,
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
