/* mgp_paint.c — mgrun-plot's painting primitives (cairo): sizes as
 * text, colours, UTF-8-safe text and its width, lines, the event markers,
 * and the legend above the panels. The panels are mgp_draw.c's. */
#include <cairo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_size.h"
#include "mgp__paint.h"

/* Components in whole percents: cairo writes them as given. */
const rgb C_USED = {0.12, 0.47, 0.71}, C_LIMIT = {0.84, 0.15, 0.16},
          C_WARNLINE = {0.96, 0.50, 0.05}, C_THRESHOLD = {0.80, 0.40, 0.00},
          C_WARN = {0.93, 0.70, 0.00}, C_OOM = {0.84, 0.15, 0.16},
          C_KILL = {0.58, 0.40, 0.74}, C_EXIT = {0.20, 0.20, 0.20},
          C_RESTART = {0.50, 0.50, 0.50}, C_PRESSURE = {0.55, 0.34, 0.29},
          C_BYTES = {0.17, 0.63, 0.17}, C_MAXBYTES = {0.55, 0.80, 0.55},
          C_MSGS = {0.09, 0.66, 0.75}, C_MAXMSGS = {0.55, 0.85, 0.90},
          C_EVICT = {0.30, 0.30, 0.30}, C_TEXT = {0.10, 0.10, 0.10},
          C_MUTED = {0.40, 0.40, 0.40}, C_GRID = {0.90, 0.90, 0.90},
          C_FRAME = {0.60, 0.60, 0.60}, C_WHITE = {1, 1, 1};

/* mg_size_format of a size read as a double, within what it takes. */
char *mgp__fmt_size(double v, char *buf, size_t len) {
  uint64_t b = !(v > 0)                   ? 0
               : v >= (double)MG_SIZE_MAX ? MG_SIZE_MAX
                                          : (uint64_t)v;
  return mg_size_format(b, buf, len);
}

/* Append to buf (len bytes, n used so far); a cut stays within it. */
void mgp__addf(char *buf, size_t len, size_t *n, const char *fmt, ...) {
  if (*n + 1 >= len)
    return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(buf + *n, len - *n, fmt, ap);
  va_end(ap);
  if (w > 0)
    *n = *n + (size_t)w >= len ? len - 1 : *n + (size_t)w;
}

void mgp__color(cairo_t *cr, rgb c) {
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

/* `s` as valid UTF-8 in `out` (cairo draws nothing of an invalid string
 * and fails the whole picture): a byte that starts no whole sequence
 * becomes '?', and a cut falls between characters. */
const char *mgp__utf8(const char *s, char *out, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0;
  while (*p && o + 1 < len) {
    size_t n = *p < 0x80             ? 1
               : (*p & 0xe0) == 0xc0 ? 2
               : (*p & 0xf0) == 0xe0 ? 3
               : (*p & 0xf8) == 0xf0 ? 4
                                     : 0;
    size_t k = 1;
    while (n && k < n && (p[k] & 0xc0) == 0x80)
      k++;
    int ok = n && k == n && !(n == 2 && *p < 0xc2) &&
             !(n == 3 && *p == 0xe0 && p[1] < 0xa0) &&
             !(n == 3 && *p == 0xed && p[1] >= 0xa0) &&
             !(n == 4 && ((*p == 0xf0 && p[1] < 0x90) || *p > 0xf4 ||
                          (*p == 0xf4 && p[1] >= 0x90)));
    if (!ok) {
      out[o++] = '?';
      p++;
      continue;
    }
    if (o + n + 1 > len)
      break;
    memcpy(out + o, p, n);
    o += n;
    p += n;
  }
  out[o] = 0;
  return out;
}

double mgp__text_w(cairo_t *cr, const char *s, double size, int bold) {
  cairo_text_extents_t e;
  char clean[640];
  s = mgp__utf8(s, clean, sizeof clean);
  cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD
                              : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents(cr, s, &e);
  return e.x_advance;
}

/* Text at baseline y: align -1 left of x, 0 centred, 1 right. Returns the
 * x where it ends. */
double mgp__text(cairo_t *cr, double x, double y, const char *s, double size,
                 int bold, int align, rgb c) {
  char clean[640];
  s = mgp__utf8(s, clean, sizeof clean);
  double w = mgp__text_w(cr, s, size, bold);
  double x0 = align < 0 ? x : align == 0 ? x - w / 2 : x - w;
  mgp__color(cr, c);
  cairo_move_to(cr, x0, y);
  cairo_show_text(cr, s);
  cairo_new_path(cr);
  return x0 + w;
}

void mgp__line(cairo_t *cr, double x0, double y0, double x1, double y1,
               double width, rgb c, int dashed) {
  static const double dash[] = {5, 4};
  mgp__color(cr, c);
  cairo_set_line_width(cr, width);
  cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x1, y1);
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
}

/* An event's mark, centred on (x, y), filled (with a white rim) but for
 * the OOM kill's cross. */
void mgp__marker(cairo_t *cr, mgp_ev_kind k, double x, double y) {
  double s = 4.5;
  cairo_new_path(cr);
  switch (k) {
  case MGP_EV_THRESHOLD:
    cairo_move_to(cr, x, y - s - 1);
    cairo_line_to(cr, x + s, y + s - 1);
    cairo_line_to(cr, x - s, y + s - 1);
    cairo_close_path(cr);
    mgp__color(cr, C_THRESHOLD);
    break;
  case MGP_EV_WARN:
    cairo_arc(cr, x, y, s - 0.5, 0, 2 * M_PI);
    mgp__color(cr, C_WARN);
    break;
  case MGP_EV_KILL:
  case MGP_EV_EVICT:
    cairo_move_to(cr, x, y + s + 1);
    cairo_line_to(cr, x + s, y - s + 1);
    cairo_line_to(cr, x - s, y - s + 1);
    cairo_close_path(cr);
    mgp__color(cr, k == MGP_EV_KILL ? C_KILL : C_EVICT);
    break;
  case MGP_EV_EXIT:
    cairo_rectangle(cr, x - s + 0.5, y - s + 0.5, 2 * s - 1, 2 * s - 1);
    mgp__color(cr, C_EXIT);
    break;
  case MGP_EV_OOM:
    mgp__color(cr, C_WHITE);
    cairo_set_line_width(cr, 4);
    cairo_move_to(cr, x - s, y - s);
    cairo_line_to(cr, x + s, y + s);
    cairo_move_to(cr, x + s, y - s);
    cairo_line_to(cr, x - s, y + s);
    cairo_stroke_preserve(cr);
    mgp__color(cr, C_OOM);
    cairo_set_line_width(cr, 2);
    cairo_stroke(cr);
    return;
  default:
    return;
  }
  cairo_fill_preserve(cr);
  mgp__color(cr, C_WHITE);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
}

/* ---------------------------------------------------------------- legend */

typedef enum { LG_LINE, LG_DASH, LG_MARK, LG_VLINE, LG_TICK } lg_kind;

typedef struct lg_item {
  lg_kind kind;
  rgb c;
  mgp_ev_kind mark;
  const char *label;
} lg_item;

#define LG_MAX 20
#define LG_SIZE 11.0

static size_t legend_items(const mgp_run *r, lg_item *it) {
  size_t n = 0;
  int has[MGP_EV_KINDS] = {0}, children = 0;
  for (size_t i = 0; i < r->nc; i++) {
    children = 1;
    for (size_t j = 0; j < r->c[i].nev; j++)
      has[r->c[i].ev[j].kind] = 1;
  }
  if (children) {
    it[n++] = (lg_item){LG_LINE, C_USED, 0, "memory used"};
    it[n++] = (lg_item){LG_LINE, C_LIMIT, 0, "limit"};
    it[n++] = (lg_item){LG_DASH, C_WARNLINE, 0, "warn line"};
  }
  static const struct {
    mgp_ev_kind k;
    const char *label;
  } evs[] = {{MGP_EV_THRESHOLD, "threshold"},
             {MGP_EV_WARN, "warn"},
             {MGP_EV_OOM, "OOM kill"},
             {MGP_EV_KILL, "kill (signal)"},
             {MGP_EV_EXIT, "exit (reason)"}};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (has[evs[i].k])
      it[n++] = (lg_item){LG_MARK, C_TEXT, evs[i].k, evs[i].label};
  if (has[MGP_EV_RESTART])
    it[n++] = (lg_item){LG_VLINE, C_RESTART, 0, "restart"};
  if (has[MGP_EV_PRESSURE])
    it[n++] = (lg_item){LG_TICK, C_PRESSURE, 0, "pressure"};
  if (r->nst) {
    int ev = 0;
    for (size_t i = 0; i < r->nst; i++)
      ev |= r->st[i].nev > 0;
    it[n++] = (lg_item){LG_LINE, C_BYTES, 0, "store bytes (left axis)"};
    it[n++] = (lg_item){LG_LINE, C_MSGS, 0, "store messages (right axis)"};
    if (ev)
      it[n++] = (lg_item){LG_MARK, C_TEXT, MGP_EV_EVICT, "eviction (count)"};
  }
  return n;
}

static double legend_item_w(cairo_t *cr, const lg_item *it) {
  return 24 + mgp__text_w(cr, it->label, LG_SIZE, 0) + 16;
}

/* Rows the legend takes at this width (drawn when `draw`). */
int mgp__legend(cairo_t *cr, const mgp_run *r, double width, double y0,
                int draw) {
  lg_item it[LG_MAX];
  size_t n = legend_items(r, it);
  double x = M_LEFT, xmax = width - 12;
  int rows = n ? 1 : 0;
  for (size_t i = 0; i < n; i++) {
    double w = legend_item_w(cr, &it[i]);
    if (x + w > xmax && x > M_LEFT) {
      rows++;
      x = M_LEFT;
    }
    double y = y0 + (rows - 1) * LEGEND_ROW, cy = y - 4;
    if (draw) {
      switch (it[i].kind) { /* swatches are filled: data lines alone are
                               stroked in their colours */
      case LG_LINE:
        mgp__color(cr, it[i].c);
        cairo_rectangle(cr, x, cy - 1, 18, 2.5);
        cairo_fill(cr);
        break;
      case LG_DASH:
        mgp__color(cr, it[i].c);
        for (int k = 0; k < 3; k++)
          cairo_rectangle(cr, x + k * 7, cy - 1, 4.5, 2);
        cairo_fill(cr);
        break;
      case LG_VLINE:
        mgp__color(cr, it[i].c);
        for (int k = 0; k < 3; k++)
          cairo_rectangle(cr, x + 8, cy - 7 + k * 5, 1.5, 3);
        cairo_fill(cr);
        break;
      case LG_TICK:
        mgp__color(cr, it[i].c);
        cairo_rectangle(cr, x + 7, cy - 5, 3, 10);
        cairo_fill(cr);
        break;
      case LG_MARK:
        mgp__marker(cr, it[i].mark, x + 9, cy);
        break;
      }
      mgp__text(cr, x + 24, y, it[i].label, LG_SIZE, 0, -1, C_TEXT);
    }
    x += legend_item_w(cr, &it[i]);
  }
  return rows;
}
