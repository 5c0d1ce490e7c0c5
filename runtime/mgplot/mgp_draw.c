/* mgp_draw.c — mgrun-plot's picture, drawn with cairo onto its SVG or PNG
 * surface: a title and a legend, then one panel per child (memory used
 * over time against its limit and warn line, its events marked, a break in
 * the line and a vertical marker at each restart) and one per store (bytes
 * on the left axis, messages on the right, evictions marked). Every panel
 * shares the time axis, in seconds.
 *
 * Data lines are stroked in colours of their own that nothing else strokes
 * (legend swatches are filled), so a test can find them in the SVG; with
 * --dump-points each point is also written, with its pixel, as it is drawn.
 */
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_size.h"
#include "mgp.h"
#include "mgp__paint.h"

/* ---------------------------------------------------------------- panels */

#define BOXES 256

typedef struct panel {
  double x0, x1, top, bottom; /* the plot area */
  mgp_axis tx, vy;            /* time → x, value → y */
  double box[BOXES][4];       /* what labels must not cover: x0 y0 x1 y1 */
  int nbox;
} panel;

static void keep_box(panel *p, double x0, double y0, double x1, double y1) {
  if (p->nbox < BOXES) {
    double *b = p->box[p->nbox++];
    b[0] = x0, b[1] = y0, b[2] = x1, b[3] = y1;
  }
}

static int box_free(const panel *p, double x0, double y0, double x1,
                    double y1) {
  if (x0 < p->x0 + 1 || x1 > p->x1 - 1 || y0 < p->top + 1 || y1 > p->bottom - 1)
    return 0;
  for (int i = 0; i < p->nbox; i++) {
    const double *b = p->box[i];
    if (x0 < b[2] && x1 > b[0] && y0 < b[3] && y1 > b[1])
      return 0;
  }
  return 1;
}

/* A label beside the point (x, y): to its right, else its left, else a
 * row lower or higher, where it covers no mark and no other label (with
 * `at_top`, below the top of the plot instead: a restart's). */
static void label(cairo_t *cr, panel *p, double x, double y, const char *s,
                  rgb c, int at_top) {
  static const double rows[] = {0, 11, -11, 22, -22, 33};
  double w = mgp__text_w(cr, s, 9.5, 0), bx = 0, by = 0;
  int found = 0;
  if (at_top)
    y = p->top + 8;
  for (size_t r = 0; r < sizeof rows / sizeof rows[0] && !found; r++) {
    double ly = y + 3.5 + (at_top ? fabs(rows[r]) : rows[r]);
    for (int side = 0; side < 2 && !found; side++) {
      double lx = side == 0 ? x + (at_top ? 3 : 7) : x - (at_top ? 3 : 7) - w;
      if (box_free(p, lx - 1, ly - 8.5, lx + w + 1, ly + 2.5)) {
        bx = lx, by = ly, found = 1;
      } else if (r == 0 && side == 0) {
        bx = lx, by = ly; /* where it goes when no place is free */
      }
    }
  }
  if (!found && bx + w > p->x1)
    bx = x - 7 - w;
  keep_box(p, bx - 1, by - 8.5, bx + w + 1, by + 2.5);
  cairo_set_source_rgba(cr, 1, 1, 1, 0.8); /* lines behind it show through */
  cairo_rectangle(cr, bx - 1, by - 8.5, w + 2, 11);
  cairo_fill(cr);
  mgp__text(cr, bx, by, s, 9.5, 0, -1, c);
}

static void dump_panel(FILE *d, const char *kind, const char *name,
                       const mgp_axis *tx, const mgp_axis *vy) {
  if (!d)
    return;
  fprintf(d, "panel\t%s\t", kind);
  for (const char *p = name; *p; p++)
    fputc(*p == '\t' || *p == '\n' ? '?' : *p, d);
  fprintf(d, "\t%.6f\t%.6f\t%.4f\t%.4f\t%.17g\t%.17g\t%.4f\t%.4f\n", tx->lo,
          tx->hi, tx->px_lo, tx->px_hi, vy->lo, vy->hi, vy->px_lo, vy->px_hi);
}

static void dump_point(FILE *d, const char *kind, const char *name, size_t i,
                       double t, double v, double x, double y, int seg) {
  if (!d)
    return;
  fprintf(d, "point\t%s\t", kind);
  for (const char *p = name; *p; p++)
    fputc(*p == '\t' || *p == '\n' ? '?' : *p, d);
  fprintf(d, "\t%zu\t%.3f\t%.17g\t%.4f\t%.4f\t%d\n", i, t * 1000, v, x, y, seg);
}

static const char *ev_names[MGP_EV_KINDS] = {
    "threshold",    "warn",    "oom_kill", "kill",
    "child_exited", "restart", "pressure", "evict"};

static void dump_event(FILE *d, const char *kind, const char *name,
                       const mgp_event *e, double x, double y) {
  if (!d)
    return;
  fprintf(d, "event\t%s\t", kind);
  for (const char *p = name; *p; p++)
    fputc(*p == '\t' || *p == '\n' ? '?' : *p, d);
  fprintf(d, "\t%s\t%.3f\t%.4f\t%.4f\t%s\n", ev_names[e->kind], e->t * 1000, x,
          y, e->label);
}

/* Grid, frame, the time ticks below and the value ticks on one side. */
static void frame(cairo_t *cr, const panel *p, const mgp_ticks *tt,
                  const mgp_ticks *vt, double vtop, int side, rgb tick_c,
                  int grid) {
  char buf[48];
  if (grid) {
    mgp__color(cr, C_WHITE);
    cairo_rectangle(cr, p->x0, p->top, p->x1 - p->x0, p->bottom - p->top);
    cairo_fill(cr);
    double t0 = ceil(p->tx.lo / tt->step - 1e-9) * tt->step;
    for (int k = 0; k < TICKS_MAX; k++) { /* by index: t += step may stall */
      double t = t0 + k * tt->step;
      if (t > p->tx.hi + tt->step * 1e-6)
        break;
      double x = mgp_map(&p->tx, t);
      mgp__line(cr, x, p->top, x, p->bottom, 1, C_GRID, 0);
      mgp__text(cr, x, p->bottom + 14,
                mgp_fmt_secs(tt->step, t, buf, sizeof buf), 10, 0, 0, C_MUTED);
    }
  }
  for (int k = 0; k < TICKS_MAX; k++) {
    double v = k * vt->step;
    if (v > vtop * (1 + 1e-9))
      break;
    double y = mgp_map(&p->vy, v);
    if (grid)
      mgp__line(cr, p->x0, y, p->x1, y, 1, C_GRID, 0);
    mgp_fmt_tick(vt, v, buf, sizeof buf);
    if (side < 0)
      mgp__text(cr, p->x0 - 6, y + 3.5, buf, 10, 0, 1, tick_c);
    else
      mgp__text(cr, p->x1 + 6, y + 3.5, buf, 10, 0, -1, tick_c);
  }
}

static void frame_border(cairo_t *cr, const panel *p) {
  mgp__color(cr, C_FRAME);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, p->x0, p->top, p->x1 - p->x0, p->bottom - p->top);
  cairo_stroke(cr);
}

/* The limit (or warn) line as steps from each change to the next. */
static void steps(cairo_t *cr, const panel *p, const mgp_child *c, double t_end,
                  int warn) {
  static const double dash[] = {6, 4};
  cairo_new_path(cr);
  int open = 0;
  for (size_t i = 0; i < c->nsteps; i++) {
    double v = warn ? c->steps[i].warn : c->steps[i].limit;
    double t1 = i + 1 < c->nsteps ? c->steps[i + 1].t : t_end;
    if (t1 < c->steps[i].t)
      t1 = c->steps[i].t;
    if (isnan(v)) {
      open = 0;
      continue;
    }
    double x0 = mgp_map(&p->tx, c->steps[i].t), x1 = mgp_map(&p->tx, t1),
           y = mgp_map(&p->vy, v);
    if (open)
      cairo_line_to(cr, x0, y);
    else
      cairo_move_to(cr, x0, y);
    cairo_line_to(cr, x1, y);
    open = 1;
  }
  mgp__color(cr, warn ? C_WARNLINE : C_LIMIT);
  cairo_set_line_width(cr, warn ? 1.2 : 1.5);
  cairo_set_dash(cr, dash, warn ? 2 : 0, 0);
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
}

static void child_panel(cairo_t *cr, const mgp_run *r, const mgp_child *c,
                        panel *p, const mgp_ticks *tt, FILE *dump) {
  char lim[32], peak[32], head[256];
  double vmax = c->peak;
  for (size_t i = 0; i < c->ns; i++)
    vmax = fmax(vmax, c->s[i].used);
  for (size_t i = 0; i < c->nsteps; i++) {
    if (!isnan(c->steps[i].limit))
      vmax = fmax(vmax, c->steps[i].limit);
    if (!isnan(c->steps[i].warn))
      vmax = fmax(vmax, c->steps[i].warn);
  }
  for (size_t i = 0; i < c->nev; i++)
    if (!isnan(c->ev[i].value))
      vmax = fmax(vmax, c->ev[i].value);
  double top;
  mgp_ticks vt = mgp_bytes_ticks(vmax * 1.05, 4, &top);
  p->vy = (mgp_axis){0, top, p->bottom, p->top};
  frame(cr, p, tt, &vt, top, -1, C_MUTED, 1);
  dump_panel(dump, "child", c->name, &p->tx, &p->vy);

  /* the header: its name and what it was */
  double x = mgp__text(cr, p->x0, p->top - 8, c->name, 13, 1, -1, C_TEXT);
  size_t n = 0;
  double last_limit = c->nsteps ? c->steps[c->nsteps - 1].limit : NAN;
  if (!isnan(last_limit))
    mgp__addf(head, sizeof head, &n, "limit %s",
              mgp__fmt_size(last_limit, lim, sizeof lim));
  else
    mgp__addf(head, sizeof head, &n, "no limit");
  if (!isnan(c->warn_at) && !isnan(last_limit))
    mgp__addf(head, sizeof head, &n, ", warn at %.0f %%", c->warn_at * 100);
  mgp__addf(head, sizeof head, &n, ", peak %s",
            mgp__fmt_size(c->peak, peak, sizeof peak));
  mgp__addf(head, sizeof head, &n, ", %d restart%s", c->restarts,
            c->restarts == 1 ? "" : "s");
  if (c->enforce[0])
    mgp__addf(head, sizeof head, &n, ", enforce %s", c->enforce);
  if (!c->ns) /* every threshold armed in the kernel */
    mgp__addf(head, sizeof head, &n, "; no samples recorded");
  mgp__text(cr, x + 10, p->top - 8, head, 11, 0, -1, C_MUTED);

  double t_end = c->final_exit ? c->t_last : r->t_max;
  for (size_t i = 0; i < c->nev; i++) { /* restarts: behind the data */
    if (c->ev[i].kind != MGP_EV_RESTART)
      continue;
    double rx = mgp_map(&p->tx, c->ev[i].t);
    mgp__line(cr, rx, p->top, rx, p->bottom, 1, C_RESTART, 1);
    dump_event(dump, "child", c->name, &c->ev[i], rx, p->top);
    label(cr, p, rx, 0, c->ev[i].label, C_RESTART, 1);
  }
  steps(cr, p, c, t_end, 1);
  steps(cr, p, c, t_end, 0);

  /* memory used: one stroke per run of the line */
  mgp__color(cr, C_USED);
  cairo_set_line_width(cr, 1.8);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (size_t i = 0; i < c->ns;) {
    size_t j = i;
    cairo_new_path(cr);
    do {
      double sx = mgp_map(&p->tx, c->s[j].t),
             sy = mgp_map(&p->vy, c->s[j].used);
      if (j == i)
        cairo_move_to(cr, sx, sy);
      else
        cairo_line_to(cr, sx, sy);
      dump_point(dump, "child", c->name, j, c->s[j].t, c->s[j].used, sx, sy,
                 c->s[j].seg_start);
      j++;
    } while (j < c->ns && !c->s[j].seg_start);
    if (j == i + 1) { /* a run of one sample: a dot */
      double sx = mgp_map(&p->tx, c->s[i].t),
             sy = mgp_map(&p->vy, c->s[i].used);
      cairo_line_to(cr, sx, sy);
    }
    cairo_stroke(cr);
    i = j;
  }
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);

  /* the marks, then their labels around them */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < c->nev; i++) {
      const mgp_event *e = &c->ev[i];
      if (e->kind == MGP_EV_RESTART)
        continue;
      double ex = mgp_map(&p->tx, e->t);
      if (e->kind == MGP_EV_PRESSURE) {
        if (pass == 0) {
          mgp__color(cr, C_PRESSURE);
          cairo_rectangle(cr, ex - 1.5, p->bottom - 9, 3, 9);
          cairo_fill(cr);
          dump_event(dump, "child", c->name, e, ex, p->bottom);
        }
        continue;
      }
      double ey = mgp_map(&p->vy, e->value);
      if (pass == 0) {
        mgp__marker(cr, e->kind, ex, ey);
        keep_box(p, ex - 5.5, ey - 5.5, ex + 5.5, ey + 5.5);
        dump_event(dump, "child", c->name, e, ex, ey);
      } else if (e->label[0])
        label(cr, p, ex, ey, e->label, e->kind == MGP_EV_KILL ? C_KILL : C_EXIT,
              0);
    }
  frame_border(cr, p);
}

static void store_panel(cairo_t *cr, const mgp_store *s, panel *p,
                        const mgp_ticks *tt, FILE *dump) {
  char head[320], a[32], b[32];
  double bmax = 0, mmax = 0;
  for (size_t i = 0; i < s->np; i++) {
    bmax = fmax(bmax, s->p[i].bytes);
    mmax = fmax(mmax, s->p[i].messages);
  }
  /* a maximum far above what the store held would flatten its line */
  int show_mb = !isnan(s->max_bytes) && s->max_bytes <= 2 * fmax(bmax, 1);
  int show_mm = !isnan(s->max_messages) && s->max_messages <= 2 * fmax(mmax, 1);
  double btop, mtop;
  mgp_ticks bt = mgp_bytes_ticks(fmax(bmax, show_mb ? s->max_bytes : 0) * 1.05 +
                                     (bmax ? 0 : 1024),
                                 4, &btop);
  mgp_ticks mt = mgp_count_ticks(
      fmax(mmax, show_mm ? s->max_messages : 0) * 1.05, 4, &mtop);
  panel pm = *p;
  p->vy = (mgp_axis){0, btop, p->bottom, p->top};
  pm.vy = (mgp_axis){0, mtop, p->bottom, p->top};
  frame(cr, p, tt, &bt, btop, -1, C_BYTES, 1);
  frame(cr, &pm, tt, &mt, mtop, 1, C_MSGS, 0);
  dump_panel(dump, "store-bytes", s->name, &p->tx, &p->vy);
  dump_panel(dump, "store-messages", s->name, &pm.tx, &pm.vy);

  double x = mgp__text(cr, p->x0, p->top - 8, "store", 13, 0, -1, C_MUTED);
  x = mgp__text(cr, x + 5, p->top - 8, s->name, 13, 1, -1, C_TEXT);
  size_t n = 0;
  if (s->np)
    mgp__addf(head, sizeof head, &n, "at the end %.0f messages, %s",
              s->p[s->np - 1].messages,
              mgp__fmt_size(s->p[s->np - 1].bytes, a, sizeof a));
  if (!isnan(s->max_messages))
    mgp__addf(head, sizeof head, &n, "; max %.0f messages%s", s->max_messages,
              show_mm ? "" : " (off the scale)");
  if (!isnan(s->max_bytes))
    mgp__addf(head, sizeof head, &n, ", max %s%s",
              mgp__fmt_size(s->max_bytes, b, sizeof b),
              show_mb ? "" : " (off the scale)");
  mgp__addf(head, sizeof head, &n, "; %.0f evicted", s->evicted);
  mgp__text(cr, x + 10, p->top - 8, head, 11, 0, -1, C_MUTED);

  double x0 = mgp_map(&p->tx, s->np ? s->p[0].t : 0);
  double x1 = mgp_map(&p->tx, s->np ? s->p[s->np - 1].t : 0);
  if (show_mb)
    mgp__line(cr, x0, mgp_map(&p->vy, s->max_bytes), x1,
              mgp_map(&p->vy, s->max_bytes), 1.2, C_MAXBYTES, 1);
  if (show_mm)
    mgp__line(cr, x0, mgp_map(&pm.vy, s->max_messages), x1,
              mgp_map(&pm.vy, s->max_messages), 1.2, C_MAXMSGS, 1);

  for (int which = 0; which < 2; which++) {
    const panel *q = which ? &pm : p;
    cairo_new_path(cr);
    for (size_t i = 0; i < s->np; i++) {
      double v = which ? s->p[i].messages : s->p[i].bytes;
      double sx = mgp_map(&q->tx, s->p[i].t), sy = mgp_map(&q->vy, v);
      if (i == 0)
        cairo_move_to(cr, sx, sy);
      else
        cairo_line_to(cr, sx, sy);
      dump_point(dump, which ? "store-messages" : "store-bytes", s->name, i,
                 s->p[i].t, v, sx, sy, i == 0);
    }
    if (s->np == 1)
      cairo_line_to(cr, mgp_map(&q->tx, s->p[0].t),
                    mgp_map(&q->vy, which ? s->p[0].messages : s->p[0].bytes));
    mgp__color(cr, which ? C_MSGS : C_BYTES);
    cairo_set_line_width(cr, 1.8);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_stroke(cr);
  }
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);

  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < s->nev; i++) {
      const mgp_event *e = &s->ev[i];
      double v = e->value;
      if (isnan(v)) {
        v = 0;
        for (size_t j = 0; j < s->np && s->p[j].t <= e->t; j++)
          v = s->p[j].bytes;
      }
      double ex = mgp_map(&p->tx, e->t), ey = mgp_map(&p->vy, v);
      if (pass == 0) {
        mgp__marker(cr, MGP_EV_EVICT, ex, ey);
        keep_box(p, ex - 5.5, ey - 5.5, ex + 5.5, ey + 5.5);
        dump_event(dump, "store-bytes", s->name, e, ex, ey);
      } else
        label(cr, p, ex, ey, e->label, C_EVICT, 0);
    }
  frame_border(cr, p);
}

/* --------------------------------------------------------------- picture */

size_t mgp_panels(const mgp_run *r) {
  return r->nc + r->nst;
}

static cairo_status_t write_cb(void *closure, const unsigned char *data,
                               unsigned int len) {
  return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS
                                              : CAIRO_STATUS_WRITE_ERROR;
}

static void default_title(const mgp_opts *o, const mgp_run *r, char *buf,
                          size_t len) {
  const char *name = o->source_name ? o->source_name : "timeline";
  const char *slash = strrchr(name, '/');
  if (slash && slash[1])
    name = slash + 1;
  if (!r->wall[0]) {
    snprintf(buf, len, "%s", name);
    return;
  }
  char wall[64];
  snprintf(wall, sizeof wall, "%s", r->wall);
  char *tp = strchr(wall, 'T'); /* 2026-12-02T01:44:25Z → … 01:44:25 UTC */
  size_t wl = strlen(wall);
  if (tp && wl && wall[wl - 1] == 'Z') {
    *tp = ' ';
    wall[wl - 1] = 0;
    snprintf(buf, len, "%s \xe2\x80\x94 %s UTC", name, wall);
  } else
    snprintf(buf, len, "%s \xe2\x80\x94 %s", name, wall);
}

static void draw(cairo_t *cr, const mgp_run *r, const mgp_opts *o, int w, int h,
                 int rows, double panel_h) {
  char title[512];
  mgp__color(cr, C_WHITE);
  cairo_paint(cr);
  if (o->title)
    snprintf(title, sizeof title, "%s", o->title);
  else
    default_title(o, r, title, sizeof title);
  mgp__text(cr, M_LEFT, 24, title, 16, 1, -1, C_TEXT);
  mgp__legend(cr, r, w, TITLE_H + 12, 1);

  double t_lo = fmin(0, r->t_min), t_hi = r->t_max;
  if (!(t_hi - t_lo >= 0.001))
    t_hi = t_lo + fmax(1, fabs(t_lo) * 1e-6); /* + 1 may change nothing */
  mgp_ticks tt;
  tt.step = mgp_nice_step(t_hi - t_lo, (int)fmax(2, (w - 160) / 110.0));
  tt.unit = 1;
  tt.uname = "s";
  double y = TITLE_H + rows * LEGEND_ROW + 6;
  size_t k = 0;
  for (size_t i = 0; i < r->nc + r->nst; i++, k++) {
    panel p;
    memset(&p, 0, sizeof p);
    p.x0 = M_LEFT;
    p.x1 = w - M_RIGHT;
    p.top = y + k * panel_h + PANEL_HEAD;
    p.bottom = y + (k + 1) * panel_h - PANEL_FOOT;
    p.tx = (mgp_axis){t_lo, t_hi, p.x0, p.x1};
    if (i < r->nc)
      child_panel(cr, r, &r->c[i], &p, &tt, o->dump);
    else
      store_panel(cr, &r->st[i - r->nc], &p, &tt, o->dump);
  }
  mgp__text(cr, w - 12, h - 4, "time since the timeline started", 9.5, 0, 1,
            C_MUTED);
}

int mgp_draw(const mgp_run *r, const mgp_opts *o, mgp_format fmt, FILE *out,
             char *err, size_t err_len) {
  int w = o->width, h = o->height;
  size_t panels = mgp_panels(r);
  /* the legend's rows at this width, measured on a scratch surface */
  cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
  cairo_t *sc = cairo_create(scratch);
  int rows = mgp__legend(sc, r, w, 0, 0);
  cairo_destroy(sc);
  cairo_surface_destroy(scratch);
  double head = TITLE_H + rows * LEGEND_ROW + 6;
  int need = (int)ceil(head + (double)panels * PANEL_MIN + BOTTOM);
  if (h == 0) {
    h = (int)ceil(head + (double)panels * PANEL_H + BOTTOM);
    if (h > MGP_SIDE_MAX)
      h = MGP_SIDE_MAX;
  }
  if (need > MGP_SIDE_MAX) {
    snprintf(err, err_len,
             "%zu panels (%zu child%s, %zu store%s) do not fit in %d pixels: "
             "at most %d do",
             panels, r->nc, r->nc == 1 ? "" : "ren", r->nst,
             r->nst == 1 ? "" : "s", MGP_SIDE_MAX,
             (int)((MGP_SIDE_MAX - head - BOTTOM) / PANEL_MIN));
    return -1;
  }
  if (h < need) {
    snprintf(err, err_len,
             "%zu panel%s (%zu child%s, %zu store%s) need a height of at "
             "least %d pixels at width %d, %d %s; accepted: --height %d to "
             "%d",
             panels, panels == 1 ? "" : "s", r->nc, r->nc == 1 ? "" : "ren",
             r->nst, r->nst == 1 ? "" : "s", need, w, h,
             o->height ? "asked" : "is the most", need, MGP_SIDE_MAX);
    return -2;
  }
  double panel_h = panels ? (h - head - BOTTOM) / (double)panels : 0;

  cairo_surface_t *s =
      fmt == MGP_SVG ? cairo_svg_surface_create_for_stream(write_cb, out, w, h)
                     : cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  if (cairo_surface_status(s)) {
    snprintf(err, err_len, "cannot make a %dx%d %s surface: %s", w, h,
             fmt == MGP_SVG ? "SVG" : "PNG",
             cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_destroy(s);
    return -1;
  }
  if (fmt == MGP_SVG)
    cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
  cairo_t *cr = cairo_create(s);
  draw(cr, r, o, w, h, rows, panel_h);
  cairo_status_t st = cairo_status(cr);
  cairo_destroy(cr);
  if (st == CAIRO_STATUS_SUCCESS) {
    if (fmt == MGP_PNG)
      st = cairo_surface_write_to_png_stream(s, write_cb, out);
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS)
      st = cairo_surface_status(s);
  }
  cairo_surface_destroy(s);
  if (st != CAIRO_STATUS_SUCCESS) {
    snprintf(err, err_len, "drawing failed: %s", cairo_status_to_string(st));
    return -1;
  }
  return 0;
}
