/* mg_limits.c — validation of memory limits against effective memory
 * (core layer).
 *
 * Seed 1's validate_memory_limit / validate_total_allocations with its bugs
 * fixed: NaN and inf are invalid (the seed's `limit <= 0` is false for NaN),
 * every item of a total is validated (the seed only summed them, so -5 and
 * NaN items slipped through), and an empty total is invalid.
 *
 * Decisions beyond the header:
 *   - 0 < bytes < 1 is invalid ("must be at least 1 byte"); larger
 *     fractions are compared as they are (a limit is whole bytes later).
 *   - In a total, items are first checked for being finite and positive
 *     (all of them, every bad one is listed); an item larger than effective
 *     memory on its own is reported by the total's message, which names
 *     every instance, with "(X alone exceeds it)" appended.
 *   - Warnings of a total: each item above 90 % (as mg_validate_limit) and
 *     the sum above 95 %, joined by "; ".
 */
#include "mg/mg_limits.h"

#include "mg/mg_size.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Append formatted text to a fixed buffer; once it is full, the end is
 * marked "..." so a cut message is visibly cut. */
typedef struct {
  char *buf;
  size_t cap, len;
  int full;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_add(sbuf *sb,
                                                         const char *fmt, ...) {
  if (sb->full || sb->cap == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sb->cap - sb->len) {
    sb->full = 1;
    sb->len = sb->cap - 1;
    if (sb->cap >= 4)
      memcpy(sb->buf + sb->cap - 4, "...", 4);
    return;
  }
  sb->len += (size_t)n;
}

/* Format a byte count given as a double: "-5 B", "0 B", "0.5 B",
 * "2.00 GiB", "-2.00 GiB", "1e+30 B", "nan", "inf". */
static const char *fmt_bytes(double v, char *buf, size_t len) {
  if (isnan(v)) {
    snprintf(buf, len, "nan");
  } else if (isinf(v)) {
    snprintf(buf, len, "%sinf", v < 0 ? "-" : "");
  } else {
    double a = fabs(v);
    const char *sign = v < 0 ? "-" : "";
    if (a == 0) {
      snprintf(buf, len, "0 B");
    } else if (a < 1024 && a != (double)(int)a) {
      snprintf(buf, len, "%s%g B", sign, a);
    } else if (a < 9223372036854775808.0) {
      char tmp[32];
      mg_size_format((uint64_t)a, tmp, sizeof tmp);
      snprintf(buf, len, "%s%s", sign, tmp);
    } else {
      snprintf(buf, len, "%s%.3g B", sign, a);
    }
  }
  return buf;
}

/* Check the value alone (finite, positive); writes a message and returns
 * 0 when it is not acceptable. */
static int check_value(double bytes, char *msg, size_t len) {
  char b[64];
  if (isnan(bytes) || isinf(bytes)) {
    snprintf(msg, len, "Memory limit must be a finite number, got %s",
             fmt_bytes(bytes, b, sizeof b));
    return 0;
  }
  if (bytes <= 0) {
    snprintf(msg, len, "Memory limit must be positive, got %s",
             fmt_bytes(bytes, b, sizeof b));
    return 0;
  }
  if (bytes < 1) {
    snprintf(msg, len, "Memory limit must be at least 1 byte, got %s",
             fmt_bytes(bytes, b, sizeof b));
    return 0;
  }
  return 1;
}

/* bytes > effective? Exact for values below 2^63, true above. */
static int exceeds(long double bytes, uint64_t effective) {
  if (bytes >= 9223372036854775808.0L)
    return 1;
  return (uint64_t)bytes > effective ||
         ((uint64_t)bytes == effective && bytes > (long double)effective);
}

/* "A exceeds B", adding exact byte counts when both print the same. */
static void add_exceeds(sbuf *sb, const char *what, long double bytes,
                        uint64_t effective) {
  char a[64], e[32];
  fmt_bytes((double)bytes, a, sizeof a);
  mg_size_format(effective, e, sizeof e);
  sb_add(sb, "%s %s exceeds total system memory %s", what, a, e);
  if (strcmp(a, e) == 0 && bytes < 9223372036854775808.0L)
    sb_add(sb, " (%llu bytes > %llu bytes)", (unsigned long long)bytes,
           (unsigned long long)effective);
}

static void add_unknown(sbuf *sb) {
  sb_add(sb, "Cannot validate memory limit: total system memory is unknown "
             "(effective memory is 0)");
}

static void reset(mg_validation *out) {
  out->ok = 0;
  out->message[0] = '\0';
  out->warning[0] = '\0';
}

int mg_validate_limit(double bytes, uint64_t effective_bytes,
                      mg_validation *out) {
  if (!out)
    return 0;
  reset(out);
  sbuf msg = {out->message, sizeof out->message, 0, 0};
  if (!check_value(bytes, out->message, sizeof out->message))
    return 0;
  if (effective_bytes == 0) {
    add_unknown(&msg);
    return 0;
  }
  if (exceeds(bytes, effective_bytes)) {
    add_exceeds(&msg, "Requested limit", bytes, effective_bytes);
    return 0;
  }
  out->ok = 1;
  double pct = bytes / (double)effective_bytes * 100.0;
  if (pct > MG_LIMIT_WARN_PCT) {
    char a[64], e[32];
    snprintf(out->warning, sizeof out->warning,
             "Requested limit %s is %.1f%% of total system memory %s (above "
             "%.0f%%); leave room for the system",
             fmt_bytes(bytes, a, sizeof a), pct,
             mg_size_format(effective_bytes, e, sizeof e), MG_LIMIT_WARN_PCT);
  }
  return 0;
}

/* Name of item i: its own, or "instance <i+1>". */
static const char *item_name(const mg_limit_item *it, size_t i, char *buf,
                             size_t len) {
  if (it->name && it->name[0])
    return it->name;
  snprintf(buf, len, "instance %zu", i + 1);
  return buf;
}

int mg_validate_total(const mg_limit_item *items, size_t n,
                      uint64_t effective_bytes, mg_validation *out) {
  if (!out)
    return 0;
  reset(out);
  sbuf msg = {out->message, sizeof out->message, 0, 0};
  sbuf warn = {out->warning, sizeof out->warning, 0, 0};
  if (n == 0 || !items) {
    sb_add(&msg, "No allocations given");
    return 0;
  }
  /* Every item on its own: all bad ones are listed. */
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    char one[256], nb[32];
    if (check_value(items[i].bytes, one, sizeof one))
      continue;
    sb_add(&msg, "%s%s: %s", bad ? "; " : "",
           item_name(&items[i], i, nb, sizeof nb), one);
    bad++;
  }
  if (bad)
    return 0;
  if (effective_bytes == 0) {
    add_unknown(&msg);
    return 0;
  }
  long double sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += items[i].bytes;
  if (exceeds(sum, effective_bytes)) {
    add_exceeds(&msg, "Total allocation", sum, effective_bytes);
    for (size_t i = 0; i < n; i++) {
      char nb[32], b[64];
      sb_add(&msg, "%s%s %s", i ? ", " : ": ",
             item_name(&items[i], i, nb, sizeof nb),
             fmt_bytes(items[i].bytes, b, sizeof b));
    }
    int alone = 0;
    for (size_t i = 0; i < n; i++) {
      char nb[32];
      if (!exceeds(items[i].bytes, effective_bytes))
        continue;
      sb_add(&msg, "%s%s", alone ? ", " : " (",
             item_name(&items[i], i, nb, sizeof nb));
      alone++;
    }
    if (alone)
      sb_add(&msg, " alone exceed%s it)", alone == 1 ? "s" : "");
    return 0;
  }
  out->ok = 1;
  char e[32];
  mg_size_format(effective_bytes, e, sizeof e);
  int warned = 0;
  for (size_t i = 0; i < n; i++) {
    double pct = items[i].bytes / (double)effective_bytes * 100.0;
    if (pct <= MG_LIMIT_WARN_PCT)
      continue;
    char nb[32], b[64];
    sb_add(&warn,
           "%s%s: Requested limit %s is %.1f%% of total system memory %s "
           "(above %.0f%%)",
           warned ? "; " : "", item_name(&items[i], i, nb, sizeof nb),
           fmt_bytes(items[i].bytes, b, sizeof b), pct, e, MG_LIMIT_WARN_PCT);
    warned++;
  }
  double pct = (double)(sum / (long double)effective_bytes * 100.0L);
  if (pct > MG_TOTAL_WARN_PCT) {
    char b[64];
    sb_add(&warn,
           "%sTotal allocation %s is %.1f%% of total system memory %s (above "
           "%.0f%%); leave room for the system",
           warned ? "; " : "", fmt_bytes((double)sum, b, sizeof b), pct, e,
           MG_TOTAL_WARN_PCT);
  }
  return 0;
}

int mg_validate_gpu_total(const mg_gpu_budget *items, size_t n,
                          const mg_gpu_capacity *devs, size_t ndevs,
                          mg_validation *out) {
  if (!out)
    return 0;
  reset(out);
  sbuf msg = {out->message, sizeof out->message, 0, 0};
  sbuf warn = {out->warning, sizeof out->warning, 0, 0};
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    char nb[32];
    const char *name =
        items[i].name && items[i].name[0]
            ? items[i].name
            : (snprintf(nb, sizeof nb, "instance %zu", i + 1), nb);
    char one[256];
    if (!check_value(items[i].bytes, one, sizeof one)) {
      sb_add(&msg, "%s%s: GPU memory %s", bad++ ? "; " : "", name,
             strncmp(one, "Memory ", 7) == 0 ? one + 7 : one);
      continue;
    }
    for (size_t k = 0; k < items[i].ngpus; k++)
      if (items[i].gpus[k] >= ndevs) {
        sb_add(&msg, "%s%s: GPU %u does not exist (this machine has %zu)",
               bad++ ? "; " : "", name, items[i].gpus[k], ndevs);
        break;
      }
  }
  if (bad)
    return 0;
  if (ndevs == 0) {
    sb_add(&msg, "Cannot validate GPU memory limits: no GPU here");
    return 0;
  }
  int warned = 0;
  for (size_t d = 0; d < ndevs; d++) {
    if (devs[d].integrated)
      continue;
    long double sum = 0;
    for (size_t i = 0; i < n; i++) {
      size_t k = items[i].ngpus ? items[i].ngpus : ndevs;
      int on = !items[i].ngpus;
      for (size_t j = 0; !on && j < items[i].ngpus; j++)
        on = items[i].gpus[j] == d;
      if (on)
        sum += items[i].bytes / (double)k;
    }
    char a[64], e[32];
    if (exceeds(sum, devs[d].total_bytes)) {
      sb_add(&msg,
             "%sTotal GPU allocation %s on GPU %zu (%s) exceeds its "
             "memory %s",
             msg.len ? "; " : "", fmt_bytes((double)sum, a, sizeof a), d,
             devs[d].name ? devs[d].name : "?",
             mg_size_format(devs[d].total_bytes, e, sizeof e));
      int first = 1;
      for (size_t i = 0; i < n; i++) {
        size_t k = items[i].ngpus ? items[i].ngpus : ndevs;
        int on = !items[i].ngpus;
        for (size_t j = 0; !on && j < items[i].ngpus; j++)
          on = items[i].gpus[j] == d;
        if (!on)
          continue;
        char nb[32], b[64];
        sb_add(&msg, "%s%s %s", first ? ": " : ", ",
               items[i].name && items[i].name[0]
                   ? items[i].name
                   : (snprintf(nb, sizeof nb, "instance %zu", i + 1), nb),
               fmt_bytes(items[i].bytes / (double)k, b, sizeof b));
        first = 0;
      }
      continue;
    }
    double pct = (double)sum / (double)devs[d].total_bytes * 100.0;
    if (pct > MG_TOTAL_WARN_PCT) {
      sb_add(&warn,
             "%sTotal GPU allocation %s is %.1f%% of GPU %zu's memory "
             "%s (above %.0f%%)",
             warned++ ? "; " : "", fmt_bytes((double)sum, a, sizeof a), pct, d,
             mg_size_format(devs[d].total_bytes, e, sizeof e),
             MG_TOTAL_WARN_PCT);
    }
  }
  if (msg.len)
    return 0;
  out->ok = 1;
  return 0;
}
