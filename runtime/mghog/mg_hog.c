/* mg_hog.c — mg-hog, the demo workload: allocates and touches memory at a
 * given rate up to a given size, optionally forks children that do the
 * same, optionally ignores SIGTERM, and prints one status line per second.
 * Linked with nothing but libc (it is the program that runs under the
 * limits, so it carries no sanitizer runtime and no library of ours).
 *
 * Memory comes from private anonymous mmap chunks of --step bytes: what
 * RLIMIT_DATA and RLIMIT_AS count, and (touched) what a cgroup charges.
 *
 * For the reaction benchmark (bench/reaction) the main process can also
 * time the moment its usage passes a size (--mark), keep its usage where
 * a reader finds it after a SIGKILL (--mark-file), kill itself at a size
 * (--kill-self-at) and wait before growing (--start-delay-us).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOG_MAX_FORK 64
#define HOG_STATUS_MS 1000
#define HOG_DEFAULT_STEP (UINT64_C(1) << 20)
#define HOG_DEFAULT_EXIT 3

static const char usage_text[] =
    "usage: mg-hog [options]\n"
    "Allocate and touch memory at a given rate up to a given size (the\n"
    "demo workload of mgrun).\n"
    "\n"
    "  --rate SIZE[/s]   growth per second, e.g. 64M (default: as fast as\n"
    "                    possible)\n"
    "  --max SIZE        stop growing at SIZE and hold it (default: grow\n"
    "                    until an allocation fails)\n"
    "  --step SIZE       allocation chunk (default 1M)\n"
    "  --touch           write every page so RSS really grows (default)\n"
    "  --no-touch        only reserve: RSS stays small, VmData grows\n"
    "  --fork N          start N children (0..64) that grow the same way\n"
    "  --fork-setsid     the children call setsid() (leave the process\n"
    "                    group, as daemons do)\n"
    "  --ignore-term     ignore SIGTERM (this process and its children)\n"
    "  --hold SECONDS    exit 0 after SECONDS at --max (default: forever)\n"
    "  --cycle SECONDS   at --max: hold SECONDS, free everything, rest\n"
    "                    SECONDS, grow again (a saw-tooth)\n"
    "  --cycles N        with --cycle: exit 0 after N cycles\n"
    "  --exit-code N     exit status when an allocation fails (default 3)\n"
    "  --fail-signal N   instead, die of signal N (1..31: 5 SIGTRAP as V8,\n"
    "                    6 SIGABRT as C++'s std::bad_alloc)\n"
    "  --quiet           no status lines\n"
    "  --start-delay-us N  wait N microseconds before the first allocation\n"
    "  --fast-to SIZE    with --rate: grow as fast as possible up to SIZE,\n"
    "                    then at --rate\n"
    "  --mark SIZE       time the moment the usage (see below) passes SIZE\n"
    "  --mark-file PATH  keep pid, usage and mark time in PATH (see below)\n"
    "  --kill-self-at SIZE  SIGKILL itself when the usage passes SIZE\n"
    "  --help            this text\n"
    "\n"
    "SIZE: bytes, or <number>[B|K|KB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB]\n"
    "(powers of 1024, any case; fractions allowed, e.g. 1.5G).\n"
    "\n"
    "Output: once per second (and when the state changes) a line\n"
    "  mg-hog pid=P role=main name=N restarts=R allocated_bytes=B "
    "state=S\n"
    "on stdout, where N and R come from MG_CHILD_NAME and MG_RESTARTS (set\n"
    "by mgrun) and S is growing, holding or resting; the first line of the\n"
    "main process also lists its children (children=P1,P2). A failed\n"
    "allocation prints\n"
    "  mg-hog: allocation of SIZE failed: Cannot allocate memory\n"
    "on stderr and exits with --exit-code.\n"
    "\n"
    "Usage, marks and the mark file (main process only): the usage is the\n"
    "RSS read from /proc/self/statm just before growing starts, plus the\n"
    "bytes allocated since, counted page by page as they are touched (so\n"
    "it follows VmRSS). With --mark, the CLOCK_MONOTONIC time (ns) of the\n"
    "first page that brings it to SIZE or more is recorded: without\n"
    "--mark-file the line\n"
    "  mg-hog mark_ns=T usage_bytes=U\n"
    "goes to stdout at once (also with --quiet). --mark-file PATH creates\n"
    "PATH (truncated), maps it shared and keeps in it, rewritten in place\n"
    "(fixed width, zero-padded decimals; no write(2), no fsync: a reader\n"
    "sees each value as soon as it is stored, also after a SIGKILL):\n"
    "  pid=P\n"
    "  start_ns=S          when growing started (0 until then)\n"
    "  base_bytes=B        RSS before growing (0 until then)\n"
    "  usage_bytes=U       B + bytes touched since (its peak: it only grows\n"
    "                      until --cycle frees)\n"
    "  mark_ns=T           0 until the usage passes --mark\n"
    "  mark_usage_bytes=M  the usage at that moment\n"
    "--kill-self-at SIZE sends SIGKILL to itself right after the page that\n"
    "brings the usage to SIZE (after recording --mark when that is <= SIZE).\n"
    "\n"
    "Environment: MG_HOG_ALLOC_AT_START=SIZE makes main's very first\n"
    "statement allocate and touch SIZE (before arguments are parsed);\n"
    "when that fails it prints the message above and exits 3. Tests use\n"
    "it to prove that limits are in force before the program runs.\n";

typedef struct hog_opts {
  uint64_t rate; /* bytes per second; 0: unthrottled */
  uint64_t max;  /* 0: until failure */
  uint64_t step;
  int touch;
  int nfork;
  int fork_setsid;
  int ignore_term;
  double hold_s;  /* < 0: forever */
  double cycle_s; /* <= 0: no cycling */
  long cycles;    /* <= 0: unlimited */
  int exit_code;
  int quiet;
  long start_delay_us; /* 0: none */
  uint64_t fast_to;    /* with rate: unthrottled below this; 0: never */
  uint64_t mark;       /* 0: no mark */
  const char *mark_file;
  uint64_t kill_self_at; /* 0: never */
} hog_opts;

typedef struct hog_chunk {
  struct hog_chunk *next;
  size_t len;
} hog_chunk;

static hog_chunk *chunks;
static uint64_t allocated;
static pid_t kids[HOG_MAX_FORK];
static int nkids;

/* The main process's usage, mark and mark file (see usage_text). */
enum { F_PID, F_START, F_BASE, F_USAGE, F_MARK, F_MARK_USAGE, F_COUNT };
#define HOG_FIELD_DIGITS 20
static const char *const field_name[F_COUNT] = {
    "pid",         "start_ns", "base_bytes",
    "usage_bytes", "mark_ns",  "mark_usage_bytes"};
static char *field_at[F_COUNT]; /* the digits in the mapped file */
static int watching;            /* main process, growth started */
static uint64_t base_bytes;     /* RSS when growth started */
static uint64_t base_allocated; /* `allocated` then */
static uint64_t mark_at, kill_at;
static int marked;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- helpers */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  if (ms <= 0)
    return;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Parse a size (see usage_text); `allow_rate` also accepts a "/s" tail.
 * Returns 0, or -1 for anything else. */
static int parse_size(const char *s, int allow_rate, uint64_t *out) {
  const char *p = s;
  uint64_t whole = 0;
  double frac = 0, scale = 0.1;
  if (*p < '0' || *p > '9')
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (whole > (UINT64_MAX - 9) / 10)
      return -1;
    whole = whole * 10 + (uint64_t)(*p - '0');
  }
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return -1;
    for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
      frac += (*p - '0') * scale;
  }
  while (*p == ' ')
    p++;
  char unit[8] = {0};
  size_t n = 0;
  while (((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) && n < 7)
    unit[n++] = lower(*p++);
  if (allow_rate && strcmp(p, "/s") == 0)
    p += 2;
  if (*p)
    return -1;
  static const struct {
    const char *w;
    int shift;
  } units[] = {{"", 0},     {"b", 0},   {"k", 10},   {"kb", 10}, {"kib", 10},
               {"m", 20},   {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},
               {"gib", 30}, {"t", 40},  {"tb", 40},  {"tib", 40}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(unit, units[i].w) != 0)
      continue;
    int sh = units[i].shift;
    if (sh > 0 && whole > (UINT64_MAX >> sh) - 1)
      return -1;
    *out = (whole << sh) + (uint64_t)(frac * (double)(UINT64_C(1) << sh));
    return 0;
  }
  return -1;
}

/* "1.50 MiB" into buf. */
static const char *human(uint64_t b, char *buf, size_t len) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf(buf, len, "%llu B", (unsigned long long)b);
  else
    snprintf(buf, len, "%.2f %s", v, u[i]);
  return buf;
}

/* v as HOG_FIELD_DIGITS zero-padded decimal digits at d. */
static void put_dec(char *d, uint64_t v) {
  for (int i = HOG_FIELD_DIGITS - 1; i >= 0; i--, v /= 10)
    d[i] = (char)('0' + v % 10);
}

static void set_field(int f, uint64_t v) {
  if (field_at[f])
    put_dec(field_at[f], v);
}

static uint64_t usage_bytes(void) {
  return base_bytes +
         (allocated > base_allocated ? allocated - base_allocated : 0);
}

/* `allocated` grew by n bytes (touched, with --touch): keep the mark
 * file, the mark and the self-kill up to date. */
static void grew(uint64_t n) {
  allocated += n;
  if (!watching)
    return;
  uint64_t u = usage_bytes();
  set_field(F_USAGE, u);
  if (mark_at && !marked && u >= mark_at) {
    uint64_t ns = mono_ns();
    marked = 1;
    if (field_at[F_MARK]) {
      set_field(F_MARK_USAGE, u);
      set_field(F_MARK, ns);
    } else {
      printf("mg-hog mark_ns=%llu usage_bytes=%llu\n", (unsigned long long)ns,
             (unsigned long long)u);
      fflush(stdout);
    }
  }
  if (kill_at && u >= kill_at)
    kill(getpid(), SIGKILL);
}

/* Map and (optionally) touch `len` bytes: 0, or -errno. The usage grows
 * page by page as the pages are touched. */
static int grab(size_t len, int touch) {
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    return -errno;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  hog_chunk *c = (hog_chunk *)(void *)p;
  c->len = len;
  c->next = chunks;
  chunks = c;
  if (!touch) {
    grew(len);
    return 0;
  }
  grew(len < page ? len : page); /* the first page holds the header */
  for (size_t i = page; i < len; i += page) {
    p[i] = 1;
    grew(len - i < page ? len - i : page);
  }
  return 0;
}

static void release_all(void) {
  while (chunks) {
    hog_chunk *n = chunks->next;
    munmap(chunks, chunks->len);
    chunks = n;
  }
  allocated = 0;
}

static void kill_kids(void) {
  for (int i = 0; i < nkids; i++)
    if (kids[i] > 0) {
      kill(kids[i], SIGKILL);
      while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR) {
      }
      kids[i] = 0;
    }
}

/* Reap children that ended on their own (our own children only). */
static void reap_kids(void) {
  for (int i = 0; i < nkids; i++)
    if (kids[i] > 0 && waitpid(kids[i], NULL, WNOHANG) == kids[i])
      kids[i] = 0;
}

static int fail_signal; /* --fail-signal: die of it on a failed allocation */

static _Noreturn void alloc_failed(uint64_t len, int err, int code) {
  char h[32];
  fprintf(stderr, "mg-hog: allocation of %s failed: %s\n",
          human(len, h, sizeof h), strerror(err));
  fflush(stderr);
  kill_kids();
  if (fail_signal) {
    signal(fail_signal, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, fail_signal);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(fail_signal);
  }
  _exit(code);
}

/* MG_HOG_ALLOC_AT_START=SIZE: allocate before anything else. */
static void alloc_at_start(void) {
  const char *s = getenv("MG_HOG_ALLOC_AT_START");
  uint64_t len;
  if (!s || !*s)
    return;
  if (parse_size(s, 0, &len) < 0 || len == 0) {
    fprintf(stderr, "mg-hog: MG_HOG_ALLOC_AT_START: invalid size \"%s\"\n", s);
    _exit(2);
  }
  int rc = grab((size_t)len, 1);
  if (rc < 0)
    alloc_failed(len, -rc, HOG_DEFAULT_EXIT);
}

static void status(const hog_opts *o, const char *role, const char *state,
                   int with_kids) {
  if (o->quiet)
    return;
  const char *name = getenv("MG_CHILD_NAME");
  const char *restarts = getenv("MG_RESTARTS");
  char h[32];
  printf("mg-hog pid=%ld role=%s name=%s restarts=%s allocated_bytes=%llu "
         "(%s) state=%s",
         (long)getpid(), role, name ? name : "-", restarts ? restarts : "-",
         (unsigned long long)allocated, human(allocated, h, sizeof h), state);
  if (with_kids && nkids > 0) {
    printf(" children=");
    for (int i = 0; i < nkids; i++)
      printf("%s%ld", i ? "," : "", (long)kids[i]);
  }
  putchar('\n');
  fflush(stdout);
}

/* ------------------------------------------------------------- options */

static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mg-hog: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(mg-hog --help lists the options)\n");
  va_end(ap);
  exit(2);
}

static double parse_seconds(const char *opt, const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0) || v > 1e9)
    usage_error("%s needs a number of seconds >= 0", opt);
  return v;
}

static long parse_long(const char *opt, const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    usage_error("%s: bad number", opt);
  return v;
}

static void parse_args(int argc, char **argv, hog_opts *o) {
  *o = (hog_opts){0, 0, HOG_DEFAULT_STEP, 1, 0, 0, 0, -1,
                  0, 0, HOG_DEFAULT_EXIT, 0, 0, 0, 0, NULL,
                  0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = 1;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage_text, stdout);
      exit(0);
    } else if (strcmp(a, "--touch") == 0) {
      o->touch = 1, takes = 0;
    } else if (strcmp(a, "--no-touch") == 0) {
      o->touch = 0, takes = 0;
    } else if (strcmp(a, "--fork-setsid") == 0) {
      o->fork_setsid = 1, takes = 0;
    } else if (strcmp(a, "--ignore-term") == 0) {
      o->ignore_term = 1, takes = 0;
    } else if (strcmp(a, "--quiet") == 0) {
      o->quiet = 1, takes = 0;
    } else if (!v &&
               (strcmp(a, "--rate") == 0 || strcmp(a, "--max") == 0 ||
                strcmp(a, "--step") == 0 || strcmp(a, "--fork") == 0 ||
                strcmp(a, "--hold") == 0 || strcmp(a, "--cycle") == 0 ||
                strcmp(a, "--cycles") == 0 || strcmp(a, "--exit-code") == 0 ||
                strcmp(a, "--fail-signal") == 0 ||
                strcmp(a, "--start-delay-us") == 0 ||
                strcmp(a, "--fast-to") == 0 || strcmp(a, "--mark") == 0 ||
                strcmp(a, "--mark-file") == 0 ||
                strcmp(a, "--kill-self-at") == 0)) {
      usage_error("%s needs a value", a);
    } else if (strcmp(a, "--rate") == 0) {
      if (parse_size(v, 1, &o->rate) < 0)
        usage_error("--rate: invalid size \"%s\" (e.g. 64M or 64M/s)", v);
    } else if (strcmp(a, "--max") == 0) {
      if (parse_size(v, 0, &o->max) < 0)
        usage_error("--max: invalid size \"%s\"", v);
    } else if (strcmp(a, "--step") == 0) {
      if (parse_size(v, 0, &o->step) < 0 || o->step < 4096)
        usage_error("--step: invalid size \"%s\" (at least 4K)", v);
    } else if (strcmp(a, "--fork") == 0) {
      o->nfork = (int)parse_long(a, v, 0, HOG_MAX_FORK);
    } else if (strcmp(a, "--hold") == 0) {
      o->hold_s = parse_seconds(a, v);
    } else if (strcmp(a, "--cycle") == 0) {
      o->cycle_s = parse_seconds(a, v);
    } else if (strcmp(a, "--cycles") == 0) {
      o->cycles = parse_long(a, v, 1, 1000000000L);
    } else if (strcmp(a, "--exit-code") == 0) {
      o->exit_code = (int)parse_long(a, v, 0, 255);
    } else if (strcmp(a, "--fail-signal") == 0) {
      fail_signal = (int)parse_long(a, v, 1, 31);
    } else if (strcmp(a, "--start-delay-us") == 0) {
      o->start_delay_us = parse_long(a, v, 0, 3600L * 1000000L);
    } else if (strcmp(a, "--fast-to") == 0) {
      if (parse_size(v, 0, &o->fast_to) < 0)
        usage_error("--fast-to: invalid size \"%s\"", v);
    } else if (strcmp(a, "--mark") == 0) {
      if (parse_size(v, 0, &o->mark) < 0 || o->mark == 0)
        usage_error("--mark: invalid size \"%s\"", v);
    } else if (strcmp(a, "--mark-file") == 0) {
      if (!*v)
        usage_error("--mark-file needs a path");
      o->mark_file = v;
    } else if (strcmp(a, "--kill-self-at") == 0) {
      if (parse_size(v, 0, &o->kill_self_at) < 0 || o->kill_self_at == 0)
        usage_error("--kill-self-at: invalid size \"%s\"", v);
    } else {
      usage_error("unknown option \"%s\"", a);
    }
    i += takes;
  }
  if (o->cycle_s > 0 && o->max == 0)
    usage_error("%s needs --max", "--cycle");
  if (o->fast_to && !o->rate)
    usage_error("%s needs --rate", "--fast-to");
}

/* ---------------------------------------------------------------- run */

typedef enum { ST_GROWING, ST_HOLDING, ST_RESTING } hog_state;

static const char *state_name(hog_state s) {
  return s == ST_GROWING ? "growing" : s == ST_HOLDING ? "holding" : "resting";
}

/* The grow / hold / rest loop shared by the main process and children.
 * Returns the exit status. */
static int run(const hog_opts *o, const char *role, int is_main) {
  hog_state st = ST_GROWING;
  int64_t t0 = now_ms(), grow_t0 = t0, state_t0 = t0;
  int64_t next_status = t0;
  uint64_t grown = 0;                 /* since grow_t0 */
  int paced = o->rate && !o->fast_to; /* at --rate now (past --fast-to) */
  long cycles_done = 0;
  int first = 1;
  for (;;) {
    int64_t t = now_ms();
    if (is_main)
      reap_kids();
    if (t >= next_status) {
      status(o, role, state_name(st), is_main && first);
      first = 0;
      next_status = t + HOG_STATUS_MS;
    }
    int64_t wake = next_status;
    if (st == ST_GROWING) {
      if (o->max && allocated >= o->max) {
        st = ST_HOLDING;
        state_t0 = t;
        status(o, role, state_name(st), 0);
        continue;
      }
      if (!paced && o->rate && allocated >= o->fast_to) {
        paced = 1; /* --fast-to reached: the rate counts from here */
        grow_t0 = t;
        grown = 0;
      }
      int64_t due =
          paced ? grow_t0 + (int64_t)((double)grown * 1000.0 / (double)o->rate)
                : t;
      if (due <= t) {
        uint64_t len = o->step;
        if (o->max && o->max - allocated < len)
          len = o->max - allocated;
        if (!paced && o->rate && o->fast_to - allocated < len)
          len = o->fast_to - allocated;
        int rc = grab((size_t)len, o->touch);
        if (rc < 0)
          alloc_failed(len, -rc, o->exit_code);
        grown += len;
        continue;
      }
      if (due < wake)
        wake = due;
    } else if (st == ST_HOLDING) {
      double limit_s = o->cycle_s > 0 ? o->cycle_s : o->hold_s;
      if (limit_s >= 0) {
        int64_t end = state_t0 + (int64_t)(limit_s * 1000);
        if (t >= end) {
          if (o->cycle_s <= 0)
            return 0;
          release_all();
          st = ST_RESTING;
          state_t0 = t;
          status(o, role, state_name(st), 0);
          continue;
        }
        if (end < wake)
          wake = end;
      }
    } else { /* resting */
      int64_t end = state_t0 + (int64_t)(o->cycle_s * 1000);
      if (t >= end) {
        if (o->cycles > 0 && ++cycles_done >= o->cycles)
          return 0;
        st = ST_GROWING;
        grow_t0 = state_t0 = t;
        grown = 0;
        paced = o->rate && !o->fast_to;
        status(o, role, state_name(st), 0);
        continue;
      }
      if (end < wake)
        wake = end;
    }
    sleep_ms(wake - t);
  }
}

/* --mark-file: create `path` with every field at 0 and map it shared. */
static void open_mark_file(const char *path) {
  char text[F_COUNT * (HOG_FIELD_DIGITS + 24)];
  size_t off[F_COUNT], n = 0;
  for (int f = 0; f < F_COUNT; f++) {
    n += (size_t)snprintf(text + n, sizeof text - n, "%s=", field_name[f]);
    off[f] = n;
    memset(text + n, '0', HOG_FIELD_DIGITS);
    n += HOG_FIELD_DIGITS;
    text[n++] = '\n';
  }
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ftruncate(fd, (off_t)n) < 0) {
    fprintf(stderr, "mg-hog: --mark-file %s: %s\n", path, strerror(errno));
    exit(2);
  }
  char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    fprintf(stderr, "mg-hog: --mark-file %s: mmap: %s\n", path,
            strerror(errno));
    exit(2);
  }
  close(fd);
  memcpy(m, text, n);
  for (int f = 0; f < F_COUNT; f++)
    field_at[f] = m + off[f];
  set_field(F_PID, (uint64_t)getpid());
}

/* Resident bytes now (/proc/self/statm), 0 if unreadable. */
static uint64_t rss_now(void) {
  unsigned long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2)
    resident = 0;
  fclose(f);
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv) {
  alloc_at_start(); /* first: see MG_HOG_ALLOC_AT_START in --help */
  hog_opts o;
  parse_args(argc, argv, &o);
  if (o.ignore_term)
    signal(SIGTERM, SIG_IGN);
  if (o.mark_file)
    open_mark_file(o.mark_file);
  if (o.start_delay_us > 0) {
    struct timespec ts = {(time_t)(o.start_delay_us / 1000000),
                          (long)(o.start_delay_us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
  }
  for (int i = 0; i < o.nfork; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "mg-hog: fork: %s\n", strerror(errno));
      kill_kids();
      return 1;
    }
    if (pid == 0) {
      if (o.fork_setsid)
        setsid();
      nkids = 0;
      char role[32];
      snprintf(role, sizeof role, "child%d", i + 1);
      _exit(run(&o, role, 0));
    }
    kids[nkids++] = pid;
  }
  /* The main process watches its usage from here (children never do). */
  mark_at = o.mark;
  kill_at = o.kill_self_at;
  base_bytes = rss_now();
  base_allocated = allocated;
  set_field(F_BASE, base_bytes);
  set_field(F_USAGE, base_bytes);
  set_field(F_START, mono_ns());
  watching = 1;
  int rc = run(&o, "main", 1);
  kill_kids();
  return rc;
}
