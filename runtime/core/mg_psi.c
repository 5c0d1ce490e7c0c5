/* mg_psi.c — memory pressure from /proc/pressure/memory (core layer).
 *
 * Format (Linux >= 4.20):
 *   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
 *   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
 * "some" is required, "full" optional. Each line needs all four keys, in
 * any order; unknown key=value tokens and unknown lines are skipped so a
 * newer kernel cannot break the parser. Numbers are read without strtod
 * (no locale dependence).
 */
#include "mg/mg_psi.h"

#include "mg/mg_error.h"
#include "mg__fileio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Parse "<digits>[.<digits>]" at [p, end) into a double: the digits form
 * one integer mantissa divided once by a power of ten, so "0.75" is the
 * double nearest to 0.75 (summing 0.1-steps would drift). */
static int parse_decimal(const char *p, const char *end, double *out) {
  if (p == end || *p < '0' || *p > '9')
    return -1;
  uint64_t mant = 0;
  double div = 1;
  int digits = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
    mant = mant * 10 + (uint64_t)(*p - '0');
  if (p < end && *p == '.') {
    p++;
    if (p == end || *p < '0' || *p > '9')
      return -1;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
      mant = mant * 10 + (uint64_t)(*p - '0');
      div *= 10;
    }
  }
  if (p != end || digits > 15) /* beyond 15 digits mant may not be exact */
    return -1;
  *out = (double)mant / div;
  return 0;
}

/* Parse "<digits>" at [p, end) into a uint64 (no overflow). */
static int parse_u64(const char *p, const char *end, uint64_t *out) {
  if (p == end)
    return -1;
  uint64_t v = 0;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* Parse the key=value tokens after "some"/"full" in [p, eol). */
static int parse_line(const char *p, const char *eol, mg_psi_line *out) {
  int seen = 0; /* bits: avg10, avg60, avg300, total */
  while (p < eol) {
    while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r'))
      p++;
    if (p == eol)
      break;
    const char *tok = p;
    while (p < eol && *p != ' ' && *p != '\t' && *p != '\r')
      p++;
    const char *eq = memchr(tok, '=', (size_t)(p - tok));
    if (!eq)
      return -1;
    size_t klen = (size_t)(eq - tok);
    const char *v = eq + 1;
    int r = 0;
    if (klen == 5 && memcmp(tok, "avg10", 5) == 0) {
      r = parse_decimal(v, p, &out->avg10);
      seen |= 1;
    } else if (klen == 5 && memcmp(tok, "avg60", 5) == 0) {
      r = parse_decimal(v, p, &out->avg60);
      seen |= 2;
    } else if (klen == 6 && memcmp(tok, "avg300", 6) == 0) {
      r = parse_decimal(v, p, &out->avg300);
      seen |= 4;
    } else if (klen == 5 && memcmp(tok, "total", 5) == 0) {
      r = parse_u64(v, p, &out->total_us);
      seen |= 8;
    }
    if (r < 0)
      return -1;
  }
  return seen == 15 ? 0 : -1;
}

int mg_psi_parse(const char *text, mg_psi *out, char *err, size_t err_len) {
  mg_psi psi;
  memset(&psi, 0, sizeof psi);
  if (out)
    memset(out, 0, sizeof *out);
  if (!text || !out)
    return mg_errf(err, err_len, MG_EPARSE, "pressure: no text to parse");
  int have_some = 0;
  mg__lines it = mg__lines_start(text);
  while (mg__lines_next(&it)) {
    const char *line = it.line, *eol = it.eol;
    mg_psi_line *dst = NULL;
    if (eol - line >= 5 && memcmp(line, "some ", 5) == 0) {
      dst = &psi.some;
      have_some = 1;
    } else if (eol - line >= 5 && memcmp(line, "full ", 5) == 0) {
      dst = &psi.full;
      psi.has_full = 1;
    }
    if (dst && parse_line(line + 5, eol, dst) < 0)
      return mg_errf(err, err_len, MG_EPARSE,
                     "pressure: malformed line %d: \"%.*s\" (expected "
                     "\"%.4s avg10=<n> avg60=<n> avg300=<n> total=<n>\")",
                     it.lineno, mg__lines_quote_len(&it), line, line);
  }
  if (!have_some)
    return mg_errf(err, err_len, MG_EPARSE,
                   "pressure: no \"some\" line (expected \"some avg10=<n> "
                   "avg60=<n> avg300=<n> total=<n>\")");
  *out = psi;
  return 0;
}

int mg_psi_read(const char *proc_root, mg_psi *out, char *err, size_t err_len) {
  if (out)
    memset(out, 0, sizeof *out);
  char path[4096];
  if (mg__path_join(path, sizeof path, proc_root, "/proc", "pressure/memory") <
      0)
    return mg_errf(err, err_len, -ENAMETOOLONG, "pressure: path too long");
  char buf[4096];
  int rc = mg__read_file(path, buf, sizeof buf, NULL);
  if (rc == -ENOENT || rc == -ENOTDIR)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "PSI not available: %s is missing (kernel without "
                   "CONFIG_PSI or booted with psi=0)",
                   path);
  if (rc == -EOPNOTSUPP)
    return mg_errf(err, err_len, MG_ENOTSUP,
                   "PSI not available: reading %s fails with \"%s\" (PSI "
                   "disabled, e.g. booted with psi=0)",
                   path, mg_strerror(rc));
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot read %s: %s", path,
                   mg_strerror(rc));
  char perr[512];
  rc = mg_psi_parse(buf, out, perr, sizeof perr);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "%s: %s", path, perr);
  return 0;
}
