/* mg_metrics_text.c — the rules of names and texts, and the rendering of
 * a registry in the Prometheus text exposition format 0.0.4 (core layer:
 * no Lua, no libuv). See mg/mg_metrics.h. */
#include "mg__metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_error.h"

const char *mg_metric_type_name(mg_metric_type t) {
  return t == MG_METRIC_COUNTER ? "counter" : "gauge";
}

/* ------------------------------------------------------------ checks */

/* Quote up to 60 bytes of `s` for a message, unprintable bytes as '?'. */
static const char *mx__quote(const char *s, char *out, size_t cap) {
  size_t n = 0, i = 0;
  for (; s[i] && n + 4 < cap && i < 60; i++) {
    unsigned char ch = (unsigned char)s[i];
    out[n++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
  }
  if (s[i] && n + 4 < cap) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
  return out;
}

static int mx__name_char(char c, int first, int colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
    return 1;
  if (colon && c == ':')
    return 1;
  return !first && c >= '0' && c <= '9';
}

static int mx__check(const char *what, const char *name, int colon,
                     const char *accepted, char *err, size_t err_len) {
  char q[80];
  if (!name || !name[0])
    return mg_errf(err, err_len, -EINVAL, "%s: an empty name; accepted: %s",
                   what, accepted);
  size_t len = strlen(name);
  if (len > MG_METRICS_NAME_MAX)
    return mg_errf(err, err_len, -EINVAL,
                   "%s '%s': %zu bytes long; accepted: %s", what,
                   mx__quote(name, q, sizeof q), len, accepted);
  for (size_t i = 0; i < len; i++) {
    if (!mx__name_char(name[i], i == 0, colon)) {
      unsigned char ch = (unsigned char)name[i];
      char shown[8];
      if (ch >= 0x20 && ch < 0x7f)
        snprintf(shown, sizeof shown, "'%c'", ch);
      else
        snprintf(shown, sizeof shown, "0x%02x", ch);
      return mg_errf(err, err_len, -EINVAL,
                     "%s '%s': %s %s is not allowed there; accepted: %s", what,
                     mx__quote(name, q, sizeof q),
                     i == 0 ? "its first character" : "the character", shown,
                     accepted);
    }
  }
  return 0;
}

int mg_metrics_check_name(const char *name, char *err, size_t err_len) {
  return mx__check("metric name", name, 1, MG_METRICS_NAME_ACCEPTED, err,
                   err_len);
}

int mg_metrics_check_label(const char *name, char *err, size_t err_len) {
  int rc =
      mx__check("label name", name, 0, MG_METRICS_LABEL_ACCEPTED, err, err_len);
  if (rc == 0 && name[0] == '_' && name[1] == '_') {
    char q[80];
    return mg_errf(err, err_len, -EINVAL,
                   "label name '%s': names starting with '__' are reserved "
                   "for Prometheus; accepted: %s",
                   mx__quote(name, q, sizeof q), MG_METRICS_LABEL_ACCEPTED);
  }
  return rc;
}

/* Well-formed UTF-8 (no overlong forms, no surrogates, up to U+10FFFF). */
static int mx__utf8(const char *s, size_t *bad_at) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (p[i]) {
    unsigned c = p[i];
    size_t n;
    unsigned min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      *bad_at = i;
      return 0;
    }
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xc0) != 0x80) {
        *bad_at = i;
        return 0;
      }
      c = (c << 6) | (p[i + k] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
      *bad_at = i;
      return 0;
    }
    i += n + 1;
  }
  return 1;
}

int mg__mx_check_text(const char *what, const char *fam, const char *s,
                      size_t max, char *err, size_t err_len) {
  size_t len = strlen(s), at;
  if (len > max)
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': %s is %zu bytes long; accepted: UTF-8 text "
                   "of at most %zu bytes",
                   fam, what, len, max);
  if (!mx__utf8(s, &at))
    return mg_errf(err, err_len, -EINVAL,
                   "metric '%s': %s is not valid UTF-8 (at byte %zu); "
                   "accepted: UTF-8 text of at most %zu bytes",
                   fam, what, at, max);
  return 0;
}

/* ------------------------------------------------------------ render */

typedef struct mx_buf {
  char *p;
  size_t len, cap;
  int oom;
} mx_buf;

static void mx__put(mx_buf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void mx__puts(mx_buf *b, const char *s) {
  mx__put(b, s, strlen(s));
}

/* `s` escaped: backslash and newline always, the double quote in label
 * values. */
static void mx__put_escaped(mx_buf *b, const char *s, int quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *rep = NULL;
    if (*s == '\\')
      rep = "\\\\";
    else if (*s == '\n')
      rep = "\\n";
    else if (quote && *s == '"')
      rep = "\\\"";
    if (rep) {
      mx__put(b, run, (size_t)(s - run));
      mx__puts(b, rep);
      run = s + 1;
    }
  }
  mx__put(b, run, (size_t)(s - run));
}

/* The shortest text that reads back as v, as the format writes floats. */
static void mx__number(double v, char *out, size_t cap) {
  if (isnan(v)) {
    snprintf(out, cap, "NaN");
  } else if (isinf(v)) {
    snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
  } else if (v == trunc(v) && fabs(v) < 1e15 && cap >= 24) {
    /* an integer (most values: bytes, counts): no printf */
    char tmp[24];
    size_t n = 0;
    int neg = signbit(v);
    unsigned long long u = (unsigned long long)fabs(v);
    do {
      tmp[n++] = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    size_t k = 0;
    if (neg)
      out[k++] = '-';
    while (n)
      out[k++] = tmp[--n];
    out[k] = '\0';
  } else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, cap, "%.*g", prec, v);
      if (strtod(out, NULL) == v)
        break;
    }
  }
}

static void mx__render_family(mx_buf *b, const mg_metric *f) {
  if (f->ns == 0)
    return;
  mx__puts(b, "# HELP ");
  mx__puts(b, f->name);
  mx__puts(b, " ");
  mx__put_escaped(b, f->help, 0);
  mx__puts(b, "\n# TYPE ");
  mx__puts(b, f->name);
  mx__puts(b, f->type == MG_METRIC_COUNTER ? " counter\n" : " gauge\n");
  for (size_t i = 0; i < f->ns; i++) {
    const mx_series *s = &f->s[i];
    char num[40];
    mx__puts(b, f->name);
    if (f->nlabels) {
      mx__puts(b, "{");
      for (size_t k = 0; k < f->nlabels; k++) {
        if (k)
          mx__puts(b, ",");
        mx__puts(b, f->labels[k]);
        mx__puts(b, "=\"");
        mx__put_escaped(b, s->values[k], 1);
        mx__puts(b, "\"");
      }
      mx__puts(b, "}");
    }
    mx__number(s->v, num, sizeof num);
    mx__puts(b, " ");
    mx__puts(b, num);
    mx__puts(b, "\n");
  }
}

int mg_metrics_render(mg_metrics *m, char **out, size_t *len) {
  mx_buf b = {0};
  *out = NULL;
  if (len)
    *len = 0;
  mx__put(&b, "", 0); /* an empty registry is "" */
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->nfam; i++)
    mx__render_family(&b, m->fam[i]);
  pthread_mutex_unlock(&m->mu);
  if (b.oom) {
    free(b.p);
    return -ENOMEM;
  }
  *out = b.p;
  if (len)
    *len = b.len;
  return 0;
}
