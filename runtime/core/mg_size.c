/* mg_size.c — parse and format memory sizes (core layer).
 *
 * The parser reads digits itself: no strtod, so no locale and no rounding.
 * Integers are exact up to 2^63-1; a fraction times a power of 1024 is
 * computed exactly (binary long multiplication on the decimal digits) and
 * rounded down. Decisions beyond the header:
 *   - "P"/"PB"/"PiB" and "E"/"EB"/"EiB" are also accepted (mg_size_format
 *     prints up to EiB, and its output should parse back); "8E" is then
 *     2^63 bytes, one too many: MG_ERANGE_SIZE.
 *   - exponent forms ("1e3"), hex ("0x10"), a leading '+', a bare '.'
 *     (".5", "5.") are MG_EPARSE.
 *   - percentages are accepted from 0% to 100% inclusive; above 100% is
 *     MG_ERANGE_SIZE. Percent fractions use at most 16 decimals.
 */
#include "mg/mg_size.h"

#include "mg/mg_error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MG__SZ_FRAC_DIGITS 64 /* see frac_times_pow2 */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}
static int is_digit(char c) {
  return c >= '0' && c <= '9';
}
static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive compare of the n bytes at s with the NUL-terminated w. */
static int word_eq(const char *s, size_t n, const char *w) {
  if (strlen(w) != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower(s[i]) != w[i])
      return 0;
  return 1;
}

/* Shift (log2 of the multiplier) of a unit word; -1 when unknown. */
static int unit_shift(const char *u, size_t n) {
  static const struct {
    const char *w;
    int shift;
  } units[] = {
      {"", 0},     {"b", 0},    {"k", 10},   {"kb", 10},  {"kib", 10},
      {"m", 20},   {"mb", 20},  {"mib", 20}, {"g", 30},   {"gb", 30},
      {"gib", 30}, {"t", 40},   {"tb", 40},  {"tib", 40}, {"p", 50},
      {"pb", 50},  {"pib", 50}, {"e", 60},   {"eb", 60},  {"eib", 60},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (word_eq(u, n, units[i].w))
      return units[i].shift;
  return -1;
}

/* floor(0.d1d2...dn * 2^shift) exactly. The digits are doubled in decimal
 * `shift` times; each carry out of the first digit is the next bit. Only
 * the first 64 digits matter: a fraction j/2^k (k <= 60) has at most 60
 * decimals, so cutting later digits never crosses a whole number. */
static uint64_t frac_times_pow2(const char *digits, size_t n, int shift) {
  unsigned char f[MG__SZ_FRAC_DIGITS];
  if (n > MG__SZ_FRAC_DIGITS)
    n = MG__SZ_FRAC_DIGITS;
  for (size_t i = 0; i < n; i++)
    f[i] = (unsigned char)(digits[i] - '0');
  uint64_t result = 0;
  for (int bit = 0; bit < shift; bit++) {
    unsigned carry = 0;
    for (size_t i = n; i-- > 0;) {
      unsigned v = f[i] * 2u + carry;
      f[i] = (unsigned char)(v % 10u);
      carry = v / 10u;
    }
    result = (result << 1) | carry;
  }
  return result;
}

/* floor(a * b / c) for c > 0, computed on 128 bits built from two 64-bit
 * halves (portable to 32-bit targets). Returns -1 when the result does not
 * fit in 64 bits. */
static int muldiv_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out) {
  uint64_t al = a & 0xffffffffu, ah = a >> 32;
  uint64_t bl = b & 0xffffffffu, bh = b >> 32;
  uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
  uint64_t lo = (ll & 0xffffffffu) | (mid << 32);
  uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
  if (hi >= c)
    return -1; /* quotient >= 2^64 */
  /* Restoring division of hi:lo by c, one bit at a time. */
  uint64_t rem = hi, q = 0;
  for (int i = 63; i >= 0; i--) {
    int top = (int)(rem >> 63);
    rem = (rem << 1) | ((lo >> i) & 1u);
    q <<= 1;
    if (top || rem >= c) {
      rem -= c;
      q |= 1u;
    }
  }
  *out = q;
  return 0;
}

#define MG__SZ_FAIL(code, ...) mg_errf(err, err_len, (code), __VA_ARGS__)

int mg_size_parse(const char *text, uint64_t percent_base_bytes,
                  uint64_t *out_bytes, char *err, size_t err_len) {
  if (out_bytes)
    *out_bytes = 0;
  if (!text)
    return MG__SZ_FAIL(MG_EPARSE, "invalid size (null): expected %s",
                       MG_SIZE_ACCEPTED);
  const char *p = text;
  while (is_space(*p))
    p++;
  if (*p == '\0')
    return MG__SZ_FAIL(MG_EPARSE, "invalid size \"%s\": %s; expected %s", text,
                       text[0] ? "only whitespace" : "empty", MG_SIZE_ACCEPTED);
  if (*p == '-')
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": negative sizes are not "
                       "accepted; expected %s",
                       text, MG_SIZE_ACCEPTED);
  if (lower(p[0]) == 'n' && lower(p[1]) == 'a' && lower(p[2]) == 'n')
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": not a number (NaN); expected %s",
                       text, MG_SIZE_ACCEPTED);
  if (lower(p[0]) == 'i' && lower(p[1]) == 'n' && lower(p[2]) == 'f')
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": infinity is not a size; "
                       "expected %s",
                       text, MG_SIZE_ACCEPTED);
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": hexadecimal is not accepted; "
                       "expected %s",
                       text, MG_SIZE_ACCEPTED);
  if (!is_digit(*p))
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": expected a number at \"%s\"; "
                       "expected %s",
                       text, p, MG_SIZE_ACCEPTED);

  /* Integer part: exact, overflow remembered until the syntax is known. */
  uint64_t whole = 0;
  int whole_overflow = 0;
  for (; is_digit(*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (whole > (MG_SIZE_MAX - d) / 10)
      whole_overflow = 1;
    else
      whole = whole * 10 + d;
  }
  const char *frac = NULL;
  size_t frac_len = 0;
  if (*p == '.') {
    p++;
    frac = p;
    while (is_digit(*p))
      p++;
    frac_len = (size_t)(p - frac);
    if (frac_len == 0)
      return MG__SZ_FAIL(MG_EPARSE,
                         "invalid size \"%s\": expected digits after '.'; "
                         "expected %s",
                         text, MG_SIZE_ACCEPTED);
  }
  if ((*p == 'e' || *p == 'E') &&
      (is_digit(p[1]) || p[1] == '+' || p[1] == '-'))
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": exponent notation is not "
                       "accepted (write \"1000\" or \"1K\"); expected %s",
                       text, MG_SIZE_ACCEPTED);

  while (is_space(*p))
    p++;
  int percent = 0, shift = 0;
  if (*p == '%') {
    percent = 1;
    p++;
  } else {
    const char *u = p;
    while (is_alpha(*p))
      p++;
    shift = unit_shift(u, (size_t)(p - u));
    if (shift < 0) {
      const char *end = p;
      while (*end && !is_space(*end))
        end++;
      return MG__SZ_FAIL(MG_EPARSE,
                         "invalid size \"%s\": unknown unit \"%.*s\"; "
                         "expected %s",
                         text, (int)(end - u), u, MG_SIZE_ACCEPTED);
    }
  }
  while (is_space(*p))
    p++;
  if (*p != '\0')
    return MG__SZ_FAIL(MG_EPARSE,
                       "invalid size \"%s\": unexpected \"%s\" after the "
                       "number; expected %s",
                       text, p, MG_SIZE_ACCEPTED);

  if (percent) {
    if (percent_base_bytes == 0)
      return MG__SZ_FAIL(MG_EPARSE,
                         "invalid size \"%s\": a percentage needs the "
                         "effective memory, which is not known here; "
                         "expected %s",
                         text, MG_SIZE_ACCEPTED);
    int frac_nonzero = 0;
    for (size_t i = 0; i < frac_len; i++)
      if (frac[i] != '0')
        frac_nonzero = 1;
    if (whole_overflow || whole > 100 || (whole == 100 && frac_nonzero))
      return MG__SZ_FAIL(MG_ERANGE_SIZE,
                         "invalid size \"%s\": a percentage must be between "
                         "0%% and 100%%; expected %s",
                         text, MG_SIZE_ACCEPTED);
    /* base * (whole.frac) / 100 = base * D / 10^(n+2), n <= 16 decimals. */
    size_t n = frac_len > 16 ? 16 : frac_len;
    uint64_t d = whole, den = 100;
    for (size_t i = 0; i < n; i++) {
      d = d * 10 + (uint64_t)(frac[i] - '0');
      den *= 10;
    }
    uint64_t v;
    if (muldiv_u64(percent_base_bytes, d, den, &v) < 0 || v > MG_SIZE_MAX)
      return MG__SZ_FAIL(MG_ERANGE_SIZE,
                         "invalid size \"%s\": more than 2^63-1 bytes; "
                         "expected %s",
                         text, MG_SIZE_ACCEPTED);
    if (out_bytes)
      *out_bytes = v;
    return 0;
  }

  uint64_t v = 0;
  int range = whole_overflow || (whole > (MG_SIZE_MAX >> shift));
  if (!range) {
    v = whole << shift;
    uint64_t f = frac ? frac_times_pow2(frac, frac_len, shift) : 0;
    if (f > MG_SIZE_MAX - v)
      range = 1;
    else
      v += f;
  }
  if (range)
    return MG__SZ_FAIL(MG_ERANGE_SIZE,
                       "invalid size \"%s\": more than 2^63-1 bytes "
                       "(9223372036854775807); expected %s",
                       text, MG_SIZE_ACCEPTED);
  if (out_bytes)
    *out_bytes = v;
  return 0;
}

int mg_size_from_double(double value, uint64_t *out_bytes, char *err,
                        size_t err_len) {
  if (out_bytes)
    *out_bytes = 0;
  const char *want = "expected a finite, non-negative whole number of bytes "
                     "at most 9223372036854775807";
  if (isnan(value))
    return MG__SZ_FAIL(MG_EPARSE, "invalid size nan: %s", want);
  if (isinf(value))
    return MG__SZ_FAIL(MG_EPARSE, "invalid size %sinf: %s",
                       value < 0 ? "-" : "", want);
  if (value < 0)
    return MG__SZ_FAIL(MG_EPARSE, "invalid size %.17g: negative; %s", value,
                       want);
  /* (double)MG_SIZE_MAX rounds up to 2^63, which is already too large. */
  if (value >= 9223372036854775808.0)
    return MG__SZ_FAIL(MG_ERANGE_SIZE, "invalid size %.17g: too large; %s",
                       value, want);
  if (value != (double)(uint64_t)value) /* no floor(): libmg needs no -lm */
    return MG__SZ_FAIL(MG_EPARSE, "invalid size %.17g: not a whole number; %s",
                       value, want);
  if (out_bytes)
    *out_bytes = (uint64_t)value;
  return 0;
}

char *mg_size_format(uint64_t bytes, char *buf, size_t len) {
  static const char *const names[] = {"B",   "KiB", "MiB", "GiB",
                                      "TiB", "PiB", "EiB"};
  if (!buf || len == 0)
    return buf;
  if (bytes < 1024) {
    snprintf(buf, len, "%u B", (unsigned)bytes);
    return buf;
  }
  int u = 1;
  while (u < 6 && (bytes >> (10 * (u + 1))) != 0)
    u++;
  uint64_t whole = bytes >> (10 * u);
  uint64_t unit = UINT64_C(1) << (10 * u);
  uint64_t rem = bytes & (unit - 1);
  /* Hundredths, rounded half up, in integers. rem * 100 fits for u <= 5
   * (rem < 2^50); for EiB drop 10 low bits first (< 0.0001 % of a unit). */
  uint64_t cents;
  if (u < 6)
    cents = (rem * 100 + unit / 2) >> (10 * u);
  else
    cents = ((rem >> 10) * 100 + (unit >> 11)) >> 50;
  if (cents >= 100) {
    whole++;
    cents -= 100;
  }
  if (whole >= 1024 && u < 6) {
    whole = 1; /* 1023.995 KiB rounds to 1024.00 KiB: print 1.00 MiB */
    cents = 0;
    u++;
  }
  if (u == 6 && whole >= 8 && bytes <= MG_SIZE_MAX) { /* 8.00 EiB = 2^63 */
    whole = 7; /* would not parse back: round down at the very top */
    cents = 99;
  }
  snprintf(buf, len, "%u.%02u %s", (unsigned)whole, (unsigned)cents, names[u]);
  return buf;
}
