/* mg_log.c — structured log lines (core layer).
 *
 * Text:  2026-11-29T12:00:00.123Z warn  event key=value key2="with spaces"
 * JSON:  {"time":"…","level":"warn","event":"…",<fields in order>}
 *
 * Decisions:
 *   - Time is UTC, ISO-8601 with milliseconds; the level is padded to 5.
 *   - Text values are quoted when empty or when they hold a space, '"',
 *     '=', '\' or a control byte; inside quotes \" \\ \n \t \r are escaped
 *     and other control bytes are written \xHH. Bytes >= 0x80 pass as they
 *     are. Keys are written bare with any such byte replaced by '_'. A
 *     NULL string value is written `null` (JSON null).
 *   - JSON strings (event, keys, values) that are not valid UTF-8 have each
 *     invalid byte replaced by U+FFFD, so jansson never rejects a line.
 *   - Non-finite doubles become the JSON strings "nan", "inf", "-inf"
 *     (JSON has no such numbers); text writes the same words.
 *   - A uint above INT64_MAX is a JSON real (jansson integers are signed).
 *   - A field named "time", "level" or "event" is renamed "field_<name>"
 *     in JSON so it cannot overwrite the line's own keys.
 *   - Numbers are formatted in the C locale (uselocale), whatever locale
 *     the embedding program set.
 *   - Each line is built in memory, then written with one fwrite and one
 *     fflush while the logger's mutex is held.
 */
#include "mg/mg_log.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mg_logger {
  FILE *out;
  int format;    /* an mg_log_format; read and written with __atomic */
  int min_level; /* read and written with __atomic builtins */
  pthread_mutex_t mu;
  locale_t c_locale; /* (locale_t)0 when newlocale failed */
};

/* ------------------------------------------------------------- buffer */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} lbuf;

static void lb_reserve(lbuf *b, size_t extra) {
  if (b->oom || b->len + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *np = realloc(b->p, cap);
  if (!np) {
    b->oom = 1;
    return;
  }
  b->p = np;
  b->cap = cap;
}

static void lb_mem(lbuf *b, const char *s, size_t n) {
  lb_reserve(b, n);
  if (b->oom)
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void lb_str(lbuf *b, const char *s) {
  lb_mem(b, s, strlen(s));
}

static void lb_ch(lbuf *b, char c) {
  lb_mem(b, &c, 1);
}

__attribute__((format(printf, 2, 3))) static void lb_fmt(lbuf *b,
                                                         const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    lb_mem(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ------------------------------------------------------------- helpers */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *mg_log_level_name(mg_log_level level) {
  if ((int)level < 0 || (int)level > MG_LOG_ERROR)
    return "?";
  return level_names[level];
}

/* ASCII case-insensitive equality (no locale: "INFO" in tr_TR is INFO). */
static int ascii_ieq(const char *a, const char *b) {
  for (;; a++, b++) {
    char x = *a, y = *b;
    if (x >= 'A' && x <= 'Z')
      x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = (char)(y - 'A' + 'a');
    if (x != y)
      return 0;
    if (!x)
      return 1;
  }
}

int mg_log_level_parse(const char *name, mg_log_level *out) {
  if (!name)
    return -EINVAL;
  mg_log_level l;
  if (ascii_ieq(name, "debug"))
    l = MG_LOG_DEBUG;
  else if (ascii_ieq(name, "info"))
    l = MG_LOG_INFO;
  else if (ascii_ieq(name, "warn") || ascii_ieq(name, "warning"))
    l = MG_LOG_WARN;
  else if (ascii_ieq(name, "error"))
    l = MG_LOG_ERROR;
  else
    return -EINVAL;
  if (out)
    *out = l;
  return 0;
}

int mg_log_format_parse(const char *name, mg_log_format *out) {
  if (!name)
    return -EINVAL;
  mg_log_format f;
  if (ascii_ieq(name, "text"))
    f = MG_LOG_TEXT;
  else if (ascii_ieq(name, "json"))
    f = MG_LOG_JSON;
  else
    return -EINVAL;
  if (out)
    *out = f;
  return 0;
}

/* "2026-11-29T12:00:00.123Z" into buf (>= 32 bytes). */
static void fmt_time(char *buf, size_t len) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ts.tv_nsec / 1000000));
}

/* A double for people: the shortest form with at most 6 significant
 * digits that reads back as d, else d at 6 significant digits
 * ("0.871595", not "0.87159533073929962"). JSON lines keep every digit. */
static void fmt_double(double d, char *buf, size_t len) {
  if (isnan(d)) {
    snprintf(buf, len, "nan");
    return;
  }
  if (isinf(d)) {
    snprintf(buf, len, "%sinf", d < 0 ? "-" : "");
    return;
  }
  for (int p = 1; p <= 6; p++) {
    snprintf(buf, len, "%.*g", p, d);
    if (strtod(buf, NULL) == d)
      return;
  }
}

/* ------------------------------------------------------------- text */

static int needs_quotes(const char *s) {
  if (!*s)
    return 1;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
      return 1;
  return 0;
}

static void text_value(lbuf *b, const char *s) {
  if (!needs_quotes(s)) {
    lb_str(b, s);
    return;
  }
  lb_ch(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      lb_str(b, "\\\"");
      break;
    case '\\':
      lb_str(b, "\\\\");
      break;
    case '\n':
      lb_str(b, "\\n");
      break;
    case '\t':
      lb_str(b, "\\t");
      break;
    case '\r':
      lb_str(b, "\\r");
      break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        lb_fmt(b, "\\x%02x", *p);
      else
        lb_ch(b, (char)*p);
    }
  }
  lb_ch(b, '"');
}

static void text_key(lbuf *b, const char *k) {
  if (!k || !*k) {
    lb_ch(b, '_');
    return;
  }
  for (const unsigned char *p = (const unsigned char *)k; *p; p++)
    lb_ch(b, (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
                 ? '_'
                 : (char)*p);
}

static void build_text(lbuf *b, const char *when, mg_log_level level,
                       const char *event, const mg_log_field *fields,
                       size_t n) {
  lb_fmt(b, "%s %-5s ", when, mg_log_level_name(level));
  text_value(b, event);
  for (size_t i = 0; i < n; i++) {
    const mg_log_field *f = &fields[i];
    char num[64];
    lb_ch(b, ' ');
    text_key(b, f->key);
    lb_ch(b, '=');
    switch (f->type) {
    case MG_LOG_T_STR:
      if (f->v.s)
        text_value(b, f->v.s);
      else
        lb_str(b, "null");
      break;
    case MG_LOG_T_INT:
      lb_fmt(b, "%lld", (long long)f->v.i);
      break;
    case MG_LOG_T_UINT:
      lb_fmt(b, "%llu", (unsigned long long)f->v.u);
      break;
    case MG_LOG_T_DOUBLE:
      fmt_double(f->v.d, num, sizeof num);
      lb_str(b, num);
      break;
    case MG_LOG_T_BOOL:
      lb_str(b, f->v.b ? "true" : "false");
      break;
    default:
      lb_str(b, "?");
    }
  }
  lb_ch(b, '\n');
}

/* ------------------------------------------------------------- JSON */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p) {
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  size_t n;
  unsigned cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return n;
}

/* A JSON string of s; invalid UTF-8 bytes become U+FFFD. */
static json_t *json_str(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s), i = 0;
  int valid = 1;
  while (i < len) {
    size_t k = utf8_seq(p + i);
    if (!k) {
      valid = 0;
      break;
    }
    i += k;
  }
  if (valid)
    return json_stringn(s, len);
  lbuf b = {0};
  for (i = 0; i < len;) {
    size_t k = utf8_seq(p + i);
    if (k) {
      lb_mem(&b, s + i, k);
      i += k;
    } else {
      lb_str(&b, "\xef\xbf\xbd");
      i++;
    }
  }
  json_t *j = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.len);
  free(b.p);
  return j;
}

/* Key as valid UTF-8 (invalid bytes as U+FFFD), into a heap string. */
static char *json_key(const char *k) {
  json_t *j = json_str(k && *k ? k : "_");
  if (!j)
    return NULL;
  const char *v = json_string_value(j);
  size_t n = strlen(v);
  int reserved = strcmp(v, "time") == 0 || strcmp(v, "level") == 0 ||
                 strcmp(v, "event") == 0;
  char *out = malloc(n + (reserved ? 7 : 0) + 1);
  if (out) {
    if (reserved)
      memcpy(out, "field_", 6);
    memcpy(out + (reserved ? 6 : 0), v, n + 1);
  }
  json_decref(j);
  return out;
}

static json_t *json_field_value(const mg_log_field *f) {
  char num[64];
  switch (f->type) {
  case MG_LOG_T_STR:
    return f->v.s ? json_str(f->v.s) : json_null();
  case MG_LOG_T_INT:
    return json_integer((json_int_t)f->v.i);
  case MG_LOG_T_UINT:
    if (f->v.u > (uint64_t)INT64_MAX)
      return json_real((double)f->v.u);
    return json_integer((json_int_t)f->v.u);
  case MG_LOG_T_DOUBLE:
    if (!isfinite(f->v.d)) {
      fmt_double(f->v.d, num, sizeof num);
      return json_string(num);
    }
    return json_real(f->v.d);
  case MG_LOG_T_BOOL:
    return json_boolean(f->v.b);
  default:
    return json_null();
  }
}

/* Digits (15..17) that %g needs for d to read back exactly. */
static int real_precision(double d) {
  char buf[64];
  for (int p = 15; p < 17; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, d);
    if (strtod(buf, NULL) == d)
      return p;
  }
  return 17;
}

/* Returns 0, or -1 when out of memory. Reals are printed with the fewest
 * digits (15..17) that keep every double of the line exact. */
static int build_json(lbuf *b, const char *when, mg_log_level level,
                      const char *event, const mg_log_field *fields, size_t n) {
  json_t *o = json_object();
  if (!o)
    return -1;
  int rc = 0;
  rc |= json_object_set_new(o, "time", json_string(when));
  rc |= json_object_set_new(o, "level", json_string(mg_log_level_name(level)));
  rc |= json_object_set_new(o, "event", json_str(event));
  int prec = 15;
  for (size_t i = 0; i < n && rc == 0; i++) {
    /* A uint above INT64_MAX is approximate as a real anyway: only
     * doubles decide the precision. */
    double d = fields[i].type == MG_LOG_T_DOUBLE ? fields[i].v.d : 0;
    if (isfinite(d)) {
      int p = real_precision(d);
      prec = p > prec ? p : prec;
    }
    char *k = json_key(fields[i].key);
    if (!k) {
      rc = -1;
      break;
    }
    rc |= json_object_set_new(o, k, json_field_value(&fields[i]));
    free(k);
  }
  char *s = rc == 0 ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                        JSON_REAL_PRECISION(prec))
                    : NULL;
  json_decref(o);
  if (!s)
    return -1;
  lb_str(b, s);
  lb_ch(b, '\n');
  free(s);
  return b->oom ? -1 : 0;
}

/* ------------------------------------------------------------- logger */

mg_logger *mg_logger_new(FILE *out, mg_log_format format,
                         mg_log_level min_level) {
  if (!out)
    return NULL;
  mg_logger *lg = calloc(1, sizeof *lg);
  if (!lg)
    return NULL;
  if (pthread_mutex_init(&lg->mu, NULL) != 0) {
    free(lg);
    return NULL;
  }
  lg->out = out;
  lg->format = format == MG_LOG_JSON ? MG_LOG_JSON : MG_LOG_TEXT;
  lg->min_level = (int)min_level;
  lg->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  return lg;
}

void mg_logger_free(mg_logger *lg) {
  if (!lg)
    return;
  if (lg->c_locale)
    freelocale(lg->c_locale);
  pthread_mutex_destroy(&lg->mu);
  free(lg);
}

void mg_logger_set_level(mg_logger *lg, mg_log_level min_level) {
  if (lg)
    __atomic_store_n(&lg->min_level, (int)min_level, __ATOMIC_RELAXED);
}

mg_log_level mg_logger_level(const mg_logger *lg) {
  if (!lg)
    return MG_LOG_ERROR;
  return (mg_log_level)__atomic_load_n(&lg->min_level, __ATOMIC_RELAXED);
}

void mg_logger_set_format(mg_logger *lg, mg_log_format format) {
  if (lg)
    __atomic_store_n(&lg->format,
                     format == MG_LOG_JSON ? MG_LOG_JSON : MG_LOG_TEXT,
                     __ATOMIC_RELAXED);
}

mg_log_format mg_logger_format(const mg_logger *lg) {
  return lg ? (mg_log_format)__atomic_load_n(&lg->format, __ATOMIC_RELAXED)
            : MG_LOG_TEXT;
}

void mg_log(mg_logger *lg, mg_log_level level, const char *event,
            const mg_log_field *fields, size_t n) {
  if (!lg || (int)level < (int)mg_logger_level(lg))
    return;
  if ((int)level < MG_LOG_DEBUG)
    level = MG_LOG_DEBUG;
  if ((int)level > MG_LOG_ERROR)
    level = MG_LOG_ERROR;
  if (!event || !*event)
    event = "-";
  if (!fields)
    n = 0;
  locale_t old = lg->c_locale ? uselocale(lg->c_locale) : (locale_t)0;
  char when[80];
  fmt_time(when, sizeof when);
  lbuf b = {0};
  if (mg_logger_format(lg) == MG_LOG_JSON) {
    if (build_json(&b, when, level, event, fields, n) < 0) {
      free(b.p);
      b = (lbuf){0};
      lb_fmt(&b,
             "{\"time\":\"%s\",\"level\":\"error\",\"event\":\"log_failed\","
             "\"reason\":\"out of memory\"}\n",
             when);
    }
  } else {
    build_text(&b, when, level, event, fields, n);
  }
  if (old)
    uselocale(old);
  if (b.oom || !b.p) {
    free(b.p);
    return;
  }
  pthread_mutex_lock(&lg->mu);
  fwrite(b.p, 1, b.len, lg->out);
  fflush(lg->out);
  pthread_mutex_unlock(&lg->mu);
  free(b.p);
}
