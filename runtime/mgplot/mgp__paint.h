/* mgp__paint.h — what mgrun-plot's drawing shares (not installed): the
 * colours, the layout's fixed sizes, and the painting primitives and the
 * legend of mgp_paint.c, used by the panels of mgp_draw.c. */
#ifndef MGP__PAINT_H
#define MGP__PAINT_H

#include <cairo.h>
#include <stddef.h>

#include "mgp.h"

typedef struct rgb {
  double r, g, b;
} rgb;

/* The colours (mgp_paint.c), in whole percents: cairo writes them as
 * given. Data lines have colours nothing else strokes. */
extern const rgb C_USED, C_LIMIT, C_WARNLINE, C_THRESHOLD, C_WARN, C_OOM,
    C_KILL, C_EXIT, C_RESTART, C_PRESSURE, C_BYTES, C_MAXBYTES, C_MSGS,
    C_MAXMSGS, C_EVICT, C_TEXT, C_MUTED, C_GRID, C_FRAME, C_WHITE;

#define M_LEFT 84.0
#define M_RIGHT 72.0
#define TITLE_H 34.0
#define LEGEND_ROW 18.0
#define PANEL_H 200
#define PANEL_MIN 110
#define PANEL_HEAD 24.0 /* the panel's header line above its plot */
#define PANEL_FOOT 30.0 /* the time labels below it */
#define BOTTOM 12.0
#define FONT "sans-serif"
#define TICKS_MAX 64

/* Append to buf (len bytes, n used so far); a cut stays within it. */
__attribute__((format(printf, 4, 5))) void
mgp__addf(char *buf, size_t len, size_t *n, const char *fmt, ...);
/* mg_size_format of a size read as a double, within what it takes. */
char *mgp__fmt_size(double v, char *buf, size_t len);
void mgp__color(cairo_t *cr, rgb c);
const char *mgp__utf8(const char *s, char *out, size_t len);
double mgp__text_w(cairo_t *cr, const char *s, double size, int bold);
double mgp__text(cairo_t *cr, double x, double y, const char *s, double size,
                 int bold, int align, rgb c);
void mgp__line(cairo_t *cr, double x0, double y0, double x1, double y1,
               double width, rgb c, int dashed);
void mgp__marker(cairo_t *cr, mgp_ev_kind k, double x, double y);
int mgp__legend(cairo_t *cr, const mgp_run *r, double width, double y0,
                int draw);

#endif
