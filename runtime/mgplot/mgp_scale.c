/* mgp_scale.c — mgrun-plot's scales: the linear map of values onto pixels,
 * 1-2-5 tick steps, sizes in one power-of-1024 unit per axis ("512 MiB",
 * "1.5 GiB") and times in seconds. No cairo here: the unit test checks it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mgp.h"

double mgp_map(const mgp_axis *a, double v) {
  double span = a->hi - a->lo;
  if (!(span > 0))
    return a->px_lo;
  return a->px_lo + (v - a->lo) / span * (a->px_hi - a->px_lo);
}

double mgp_nice_step(double span, int want) {
  if (!(span > 0) || !isfinite(span))
    return 1;
  if (want < 1)
    want = 1;
  double raw = span / want;
  double mag = pow(10, floor(log10(raw)));
  double f = raw / mag;
  double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return nf * mag;
}

/* The first multiple of step at or above v (v ≥ 0), with a tolerance for
 * a v that is a multiple already. */
static double up_to(double v, double step) {
  double n = ceil(v / step - 1e-9);
  return (n < 1 ? 1 : n) * step;
}

mgp_ticks mgp_bytes_ticks(double max, int want, double *top) {
  static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  mgp_ticks tk;
  if (!(max > 0) || !isfinite(max))
    max = 1048576;
  int u = 0;
  double unit = 1;
  while (u < 6 && max >= unit * 1024) {
    unit *= 1024;
    u++;
  }
  double step = mgp_nice_step(max / unit, want);
  if (u == 0 && step < 1)
    step = 1; /* no fractions of a byte */
  tk.step = step * unit;
  tk.unit = unit;
  tk.uname = names[u];
  *top = up_to(max, tk.step);
  return tk;
}

mgp_ticks mgp_count_ticks(double max, int want, double *top) {
  mgp_ticks tk;
  if (!(max > 0) || !isfinite(max))
    max = 1;
  double step = mgp_nice_step(max, want);
  tk.step = step < 1 ? 1 : step;
  tk.unit = 1;
  tk.uname = "";
  *top = up_to(max, tk.step);
  return tk;
}

/* Decimals that show a multiple of `step` exactly (1-2-5 steps: 0..3). */
static int decimals(double step) {
  int d = 0;
  while (d < 6 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6)
    d++;
  return d;
}

char *mgp_fmt_tick(const mgp_ticks *tk, double v, char *buf, size_t len) {
  double x = v / tk->unit;
  if (fabs(x) < 1e-12)
    x = 0;
  int d = decimals(tk->step / tk->unit);
  if (x == 0)
    snprintf(buf, len, "0");
  else if (tk->uname[0])
    snprintf(buf, len, "%.*f %s", d, x, tk->uname);
  else
    snprintf(buf, len, "%.*f", d, x);
  return buf;
}

char *mgp_fmt_secs(double step, double v, char *buf, size_t len) {
  if (fabs(v) < 1e-12)
    snprintf(buf, len, "0 s");
  else
    snprintf(buf, len, "%.*f s", decimals(step), v);
  return buf;
}
