/* mgp.h — mgrun-plot's model of a recorded run (internal to mgrun-plot and
 * its unit test): the timeline that `mgrun --timeline` writes
 * (runtime/host/mg_runtime_timeline.c documents its lines), read into one
 * series per child and per store (mgp_read.c), the scales that map it onto
 * the picture (mgp_scale.c), and the drawing with cairo (mgp_draw.c: the
 * panels; mgp_paint.c: the primitives and the legend).
 *
 * Times are seconds since the timeline started (a line's t_ms / 1000),
 * sizes bytes, as doubles (JSON numbers). A size that a line gives as null
 * (no limit) is NAN here.
 */
#ifndef MGP_H
#define MGP_H

#include <stddef.h>
#include <stdio.h>

/* ------------------------------------------------------------ the model */

typedef struct mgp_sample {
  double t, used;
  double limit;  /* the sample's limit (NAN: none or not given) */
  int seg_start; /* the first sample of a run of the line: no line is drawn
                    to it from the one before (a restart, a new pid) */
} mgp_sample;

typedef enum mgp_ev_kind {
  MGP_EV_THRESHOLD,
  MGP_EV_WARN,
  MGP_EV_OOM,
  MGP_EV_KILL,
  MGP_EV_EXIT,
  MGP_EV_RESTART,
  MGP_EV_PRESSURE,
  MGP_EV_EVICT, /* a store's */
  MGP_EV_KINDS
} mgp_ev_kind;

typedef struct mgp_event {
  double t;
  mgp_ev_kind kind;
  double value; /* where it is drawn, in bytes: the usage it names, else
                   the limit (an OOM kill), else the last sample of the
                   child's run (or its peak, or 0, for a run without
                   samples); NAN for restarts and pressure */
  char label[48];
} mgp_event;

/* The limit and warn line from time t on (NAN: none). */
typedef struct mgp_step {
  double t, limit, warn;
} mgp_step;

typedef struct mgp_child {
  char *name;
  mgp_sample *s;
  size_t ns, cs;
  mgp_event *ev;
  size_t nev, cev;
  mgp_step *steps;
  size_t nsteps, csteps;
  double limit, warn_at; /* as of now (NAN: none) */
  long long pid;         /* of the last sample (-1: none) */
  size_t run_ns;         /* samples since its last child_started */
  int broken;            /* the next sample starts a new run of the line */
  int final_exit;        /* its last child_exited said will_restart false */
  int restarts;
  double t_first, t_last, peak;
  char enforce[16];
} mgp_child;

typedef struct mgp_store_pt {
  double t, bytes, messages;
} mgp_store_pt;

typedef struct mgp_store {
  char *name;
  mgp_store_pt *p;
  size_t np, cp;
  mgp_event *ev; /* evictions: value = the store's bytes then */
  size_t nev, cev;
  double max_bytes, max_messages; /* the last ones given (NAN: none) */
  double evicted;                 /* the last store line's count */
} mgp_store;

#define MGP_SKIP_NOTES 5

typedef struct mgp_run {
  mgp_child *c;
  size_t nc, cc;
  mgp_store *st;
  size_t nst, cst;
  double t_min, t_max; /* of every line read (t_min > t_max: none) */
  char wall[64];       /* the start line's wall time ("" if none) */
  int has_end;
  size_t lines;   /* non-blank lines read */
  size_t used;    /* lines that went into the model */
  size_t ignored; /* well-formed lines of a type this tool does not draw */
  size_t skipped; /* lines that are not JSON or lack a field */
  char skip_note[MGP_SKIP_NOTES][200]; /* the first reasons, "line N: …" */
} mgp_run;

void mgp_run_init(mgp_run *r);
void mgp_run_free(mgp_run *r);

/* Read one line (without its newline; `len` bytes, not NUL-terminated) into
 * the run. Returns 1 when it went into the model, 0 when it is a
 * well-formed line of a type that is not drawn (ignored), -1 when it was
 * skipped: `why` then says what was wrong with it. */
int mgp_read_line(mgp_run *r, const char *line, size_t len, char *why,
                  size_t why_len);

/* Read a whole timeline. Blank lines are passed over; a line that cannot
 * be read is skipped, counted and (the first MGP_SKIP_NOTES) noted, a last
 * line without its newline named as truncated. Returns 0, or -1 with `err`
 * set when the stream fails or memory runs out. */
int mgp_read_file(mgp_run *r, FILE *f, char *err, size_t err_len);

/* Whether anything can be drawn: a child (its samples, or at least its
 * limit and events: a child that needed no sampling has none) or a store
 * line. */
int mgp_plottable(const mgp_run *r);

/* --------------------------------------------------------------- scales */

/* A linear map of [lo, hi] onto pixels [px_lo, px_hi] (px_hi < px_lo for a
 * y axis: larger values higher up). */
typedef struct mgp_axis {
  double lo, hi, px_lo, px_hi;
} mgp_axis;

double mgp_map(const mgp_axis *a, double v);

/* Tick positions: `step` and the count of ticks lo, lo+step, … ≤ hi. */
typedef struct mgp_ticks {
  double step;
  double unit;       /* bytes: 1, 1024, 1024², … of the labels */
  const char *uname; /* "B", "KiB", "MiB", "GiB", "TiB"; "" otherwise */
} mgp_ticks;

/* A 1-2-5 step for about `want` intervals over `span` (> 0). */
double mgp_nice_step(double span, int want);

/* Ticks over [0, max] bytes in one unit (the largest power of 1024 not above
 * max) with a 1-2-5 step of that unit; *top is the first tick ≥ max (the
 * axis' end). max ≤ 0 counts as 1 MiB. */
mgp_ticks mgp_bytes_ticks(double max, int want, double *top);

/* Ticks over [0, max] of a count (whole steps); *top as above. */
mgp_ticks mgp_count_ticks(double max, int want, double *top);

/* "0", "512 KiB", "1.5 GiB": v in the ticks' unit, with as many decimals as
 * the step needs. */
char *mgp_fmt_tick(const mgp_ticks *tk, double v, char *buf, size_t len);

/* "2 s", "0.5 s", "120 s" for a time tick. */
char *mgp_fmt_secs(double step, double v, char *buf, size_t len);

/* --------------------------------------------------------------- drawing */

typedef enum mgp_format { MGP_SVG, MGP_PNG } mgp_format;

typedef struct mgp_opts {
  int width, height; /* height 0: from the number of panels */
  const char *title; /* NULL: the file's name and the start's wall time */
  const char *source_name;
  FILE *dump; /* --dump-points: the drawn points, one a line (or NULL) */
} mgp_opts;

#define MGP_WIDTH_MIN 320
#define MGP_SIDE_MAX 8192 /* width and height */
#define MGP_WIDTH_DEFAULT 1200

/* The panels: one per child, one per store. */
size_t mgp_panels(const mgp_run *r);

/* Draw the run into `out` as SVG or PNG, `o->width` wide (and
 * `o->height` high, or as high as its panels need when 0). Returns 0, -2
 * with `err` for a height too small for the panels, -1 with `err` for a
 * cairo failure or a failed write. */
int mgp_draw(const mgp_run *r, const mgp_opts *o, mgp_format fmt, FILE *out,
             char *err, size_t err_len);

#endif
