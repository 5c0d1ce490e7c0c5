/* main.c — `mgrun-plot` (also `mgrun plot`, which execs it): draw a run
 * that `mgrun --timeline RUN.jsonl` recorded, as SVG or PNG with cairo.
 * A program of its own so that the governor never links cairo. Reads the
 * timeline (mgp_read.c), warns about the lines it had to skip, draws
 * (mgp_draw.c) into a temporary file beside the output and renames it into
 * place, so a failed run leaves no half picture.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "mg/mg.h"
#include "mgp.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2 };

static const char *prog = "mgrun-plot";

static const char usage_fmt[] =
    "Usage: %s RUN.jsonl -o OUT.svg|OUT.png [--width W] [--height H]\n"
    "       %*s [--title T] [--dump-points PATH]\n"
    "\n"
    "Draw a run that 'mgrun --timeline RUN.jsonl' recorded: a panel per "
    "child\n"
    "(memory used over time against its limit and warn line; thresholds, "
    "warns,\n"
    "OOM kills, kills and exits marked, exits with their reason; a break "
    "in the\n"
    "line and a dashed vertical line at each restart) and a panel per store\n"
    "(bytes on the left axis, messages on the right, evictions marked), on "
    "one\n"
    "time axis in seconds. RUN.jsonl '-' reads standard input.\n"
    "\n"
    "Options:\n"
    "  -o, --output PATH   the picture, SVG or PNG by the name's ending (.svg "
    "or\n"
    "                      .png, any case); written whole or not at all\n"
    "  --width W           in pixels, %d to %d (default %d)\n"
    "  --height H          in pixels, up to %d (default: about 200 a panel)\n"
    "  --title T           the title (default: the file's name and the "
    "start\n"
    "                      time of the run, UTC)\n"
    "  --dump-points PATH  also write what is drawn, with its pixels, one "
    "thing a\n"
    "                      line, tab-separated ('-': standard output):\n"
    "                        panel KIND NAME T_LO T_HI X_LO X_HI V_LO V_HI "
    "Y_LO Y_HI\n"
    "                        point KIND NAME INDEX T_MS VALUE X Y "
    "RUN_START\n"
    "                        event KIND NAME TYPE T_MS X Y LABEL\n"
    "                      (KIND: child, store-bytes, store-messages; a "
    "point maps\n"
    "                      T_MS/1000 from T_LO..T_HI onto X_LO..X_HI and "
    "VALUE\n"
    "                      from V_LO..V_HI onto Y_LO..Y_HI)\n"
    "  -h, --help          this help\n"
    "  -V, --version       print the version\n"
    "\n"
    "Lines that are not JSON or lack a field are skipped with a warning (a "
    "count\n"
    "and the first reasons); lines of other types are ignored.\n"
    "\n"
    "Exit status: 0 drawn; 1 the timeline cannot be read or holds nothing to "
    "plot\n"
    "(no child and no store line), or the picture cannot be written; 2 "
    "usage\n"
    "error.\n";

static void usage(FILE *f) {
  fprintf(f, usage_fmt, prog, (int)strlen(prog), "", MGP_WIDTH_MIN,
          MGP_SIDE_MAX, MGP_WIDTH_DEFAULT, MGP_SIDE_MAX);
}

__attribute__((format(printf, 1, 2), noreturn)) static void
usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
  exit(EXIT_USAGE);
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_INPUT;
}

static int pixels(const char *opt, const char *v, int lo, int hi) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!v[0] || *end || errno || n < lo || n > hi)
    usage_error("--%s '%s': accepted: a whole number of pixels, %d to %d", opt,
                v, lo, hi);
  return (int)n;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a > b && strcasecmp(s + a - b, suffix) == 0;
}

enum { OPT_WIDTH = 256, OPT_HEIGHT, OPT_TITLE, OPT_DUMP };

static const struct option longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"width", required_argument, NULL, OPT_WIDTH},
    {"height", required_argument, NULL, OPT_HEIGHT},
    {"title", required_argument, NULL, OPT_TITLE},
    {"dump-points", required_argument, NULL, OPT_DUMP},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0}};

static const char *option_name(int val) {
  for (const struct option *o = longopts; o->name; o++)
    if (o->val == val)
      return o->name;
  return "?";
}

/* Write the picture to a temporary file beside `out`, then rename it. */
static int write_picture(const mgp_run *r, const mgp_opts *o, mgp_format fmt,
                         const char *out) {
  char err[512];
  size_t len = strlen(out) + 16;
  char *tmp = malloc(len);
  if (!tmp)
    return fail("out of memory");
  snprintf(tmp, len, "%s.tmp-XXXXXX", out);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return fail("cannot write '%s': %s", out, strerror(e));
  }
  mode_t um = umask(0);
  umask(um);
  (void)fchmod(fd, 0666 & ~um); /* else it keeps mkstemp's 0600 */
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    int e = errno;
    close(fd);
    unlink(tmp);
    free(tmp);
    return fail("cannot write '%s': %s", out, strerror(e));
  }
  int rc = mgp_draw(r, o, fmt, f, err, sizeof err);
  int e = 0;
  if (fflush(f) != 0 || ferror(f))
    e = errno ? errno : EIO;
  if (fclose(f) != 0 && !e)
    e = errno;
  if (rc == 0 && e == 0 && rename(tmp, out) == 0) {
    free(tmp);
    return 0;
  }
  if (rc == 0 && e == 0)
    e = errno;
  unlink(tmp);
  free(tmp);
  if (rc == -2) { /* --height too small for the panels */
    fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", prog,
            err, prog);
    return EXIT_USAGE;
  }
  if (rc < 0)
    return fail("%s: %s", out, err);
  return fail("cannot write '%s': %s", out, strerror(e));
}

int main(int argc, char **argv) {
  const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
  if (argv[0] && argv[0][0])
    prog = base ? base + 1 : argv[0]; /* "mgrun plot" when mgrun execs us */
  mgp_opts o = {MGP_WIDTH_DEFAULT, 0, NULL, NULL, NULL};
  const char *out = NULL, *dump = NULL;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":o:hV", longopts, NULL)) != -1) {
    switch (c) {
    case 'o':
      out = optarg;
      break;
    case OPT_WIDTH:
      o.width = pixels("width", optarg, MGP_WIDTH_MIN, MGP_SIDE_MAX);
      break;
    case OPT_HEIGHT:
      o.height = pixels("height", optarg, 1, MGP_SIDE_MAX);
      break;
    case OPT_TITLE:
      o.title = optarg;
      break;
    case OPT_DUMP:
      if (!optarg[0])
        usage_error("%s", "--dump-points needs a path ('-': standard output)");
      dump = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("%s %s\n", prog, MG_VERSION);
      return 0;
    case ':':
      if (optopt == 'o')
        usage_error("%s", "option '-o' needs a value: the picture's path, "
                          "ending in .svg or .png");
      usage_error("option '--%s' needs a value", option_name(optopt));
    default:
      if (optopt > 0 && optopt < 256)
        usage_error("unknown option '-%c'", optopt);
      usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc)
    usage_error("%s", "no timeline given: mgrun plot RUN.jsonl -o OUT.svg "
                      "(RUN.jsonl from 'mgrun --timeline RUN.jsonl')");
  if (argc - optind > 1)
    usage_error("one timeline at a time: got '%s' and '%s'", argv[optind],
                argv[optind + 1]);
  const char *in = argv[optind];
  if (!out)
    usage_error("%s", "no output given: -o OUT.svg or -o OUT.png");
  mgp_format fmt;
  if (ends_with(out, ".svg"))
    fmt = MGP_SVG;
  else if (ends_with(out, ".png"))
    fmt = MGP_PNG;
  else
    usage_error("-o '%s': the picture's type comes from its name; accepted: "
                "a name ending in .svg or .png",
                out);

  FILE *f = stdin;
  const char *shown = strcmp(in, "-") == 0 ? "standard input" : in;
  if (strcmp(in, "-") != 0) {
    struct stat st;
    if (stat(in, &st) == 0 && S_ISDIR(st.st_mode))
      return fail("'%s' is a directory, not a timeline (the JSON lines of "
                  "'mgrun --timeline PATH')",
                  in);
    f = fopen(in, "re");
    if (!f)
      return fail("cannot open the timeline '%s': %s", in, strerror(errno));
  }
  mgp_run r;
  char err[512];
  mgp_run_init(&r);
  int rc = mgp_read_file(&r, f, err, sizeof err);
  if (f != stdin)
    fclose(f);
  if (rc < 0) {
    mgp_run_free(&r);
    return fail("%s: %s", shown, err);
  }
  if (r.lines == 0) {
    mgp_run_free(&r);
    return fail("'%s' is empty: nothing to plot (expected the JSON lines "
                "that 'mgrun --timeline PATH' writes)",
                shown);
  }
  if (r.skipped) {
    fprintf(stderr, "%s: warning: %s: skipped %zu of %zu lines:\n", prog, shown,
            r.skipped, r.lines);
    for (size_t i = 0; i < r.skipped && i < MGP_SKIP_NOTES; i++)
      fprintf(stderr, "  %s\n", r.skip_note[i]);
    if (r.skipped > MGP_SKIP_NOTES)
      fprintf(stderr, "  (and %zu more)\n", r.skipped - MGP_SKIP_NOTES);
  }
  if (!mgp_plottable(&r)) {
    fail("%s: nothing to plot: no child and no store line among its %zu "
         "line%s (%zu skipped, %zu of other types); is it a timeline that "
         "'mgrun --timeline PATH' wrote?",
         shown, r.lines, r.lines == 1 ? "" : "s", r.skipped, r.ignored);
    mgp_run_free(&r);
    return EXIT_INPUT;
  }

  FILE *df = NULL;
  if (dump) {
    df = strcmp(dump, "-") == 0 ? stdout : fopen(dump, "we");
    if (!df) {
      rc = fail("cannot write the points to '%s': %s", dump, strerror(errno));
      mgp_run_free(&r);
      return rc;
    }
    fprintf(df,
            "# mgrun-plot points of %s: panel KIND NAME T_LO T_HI X_LO "
            "X_HI V_LO V_HI Y_LO Y_HI | point KIND NAME INDEX T_MS VALUE "
            "X Y RUN_START | event KIND NAME TYPE T_MS X Y LABEL\n",
            shown);
  }
  o.source_name = strcmp(in, "-") == 0 ? "stdin" : in;
  o.dump = df;
  rc = write_picture(&r, &o, fmt, out);
  if (df) {
    int bad = fflush(df) != 0 || ferror(df);
    if ((df != stdout && fclose(df) != 0) || bad) {
      if (rc == 0)
        rc = fail("cannot write the points to '%s'", dump);
    }
  }
  mgp_run_free(&r);
  cairo_debug_reset_static_data(); /* its font caches, then fontconfig's */
  FcFini();
  return rc;
}
