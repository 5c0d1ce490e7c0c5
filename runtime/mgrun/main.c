/* main.c — `mgrun`: argument parsing and exit codes over the runtime host
 * (the only place that decides what is fatal). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/mg_runtime.h"
#include "sup/mg_sup.h"

enum { EXIT_USAGE = 2, EXIT_RUNTIME = 1 };

static const char usage_text[] =
    "Usage: mgrun [OPTIONS] POLICY.lua [ARGS...]   run a policy\n"
    "       mgrun [OPTIONS] --limit SIZE [--enforce MODE] -- CMD [ARGS...]\n"
    "                                               run one command under "
    "a limit\n"
    "       mgrun --check POLICY.lua                load and validate, start "
    "nothing\n"
    "       mgrun --probe [--json]                  what this machine "
    "offers\n"
    "       mgrun --help | --version\n"
    "\n"
    "mgrun is a Lua-scriptable memory governor: C does the mechanics "
    "(limits,\n"
    "cgroups, probes, the event loop), the policy script decides.\n"
    "\n"
    "Options:\n"
    "  --log-format text|json  format of the log lines on stderr (default "
    "text)\n"
    "  --log-level LEVEL       debug, info, warn or error (default info; warn\n"
    "                          with --limit)\n"
    "  --lua-mem SIZE          memory cap of the policy's Lua state "
    "(default 64M;\n"
    "                          0 = no cap). SIZE: bytes or "
    "<number>[K|M|G|T][i][B],\n"
    "                          powers of 1024, or <number>%% of memory\n"
    "  --cb-timeout MS         wall-clock budget of each callback (default "
    "1000;\n"
    "                          0 = none)\n"
    "  --cb-instructions N     Lua instruction budget of each callback\n"
    "                          (default 1000000000; 0 = none)\n"
    "  --setup-timeout MS      budget of the policy's top-level code "
    "(default 0 =\n"
    "                          none; Ctrl-C always interrupts it)\n"
    "  --sandbox               run the policy without io, os.execute, "
    "debug,\n"
    "                          bytecode or C modules\n"
    "  --cgroup-parent DIR     where child cgroups are created (default: "
    "mgrun's\n"
    "                          own cgroup)\n"
    "  --check                 load the policy and run its top level; start "
    "no loop\n"
    "                          and no process (mg.spawn only validates)\n"
    "  --limit SIZE            run CMD (after --) under a memory limit with "
    "the\n"
    "                          built-in policy (scripts/mg/default.lua): "
    "warns at\n"
    "                          80 %%, says why CMD died, exits with its "
    "status\n"
    "  --enforce MODE          with --limit: auto (default: a cgroup where "
    "one is\n"
    "                          writable, else RLIMIT_DATA, else RLIMIT_AS), "
    "cgroup,\n"
    "                          data, as or none\n"
    "  --probe                 print memory, effective memory, cgroups, "
    "enforced\n"
    "                          rlimits and pressure, then exit\n"
    "  --json                  with --probe: one JSON document\n"
    "  -h, --help              this help\n"
    "  -V, --version           print the version\n"
    "\n"
    "Exit status: 0 success; 1 runtime failure; 2 usage error, invalid size "
    "or\n"
    "limit, or a policy that fails to load; mg.exit(N) exits N; a SIGINT or\n"
    "SIGTERM that ends mgrun (no policy handler) exits 128+N after a "
    "graceful\n"
    "shutdown (children get SIGTERM, then SIGKILL after their grace period;\n"
    "a second signal kills them at once). With --limit: CMD's own status,\n"
    "128+N if it was killed by signal N.\n"
    "\n"
    "Docs: docs/cli.md, docs/lua-api.md, docs/processes.md in the source "
    "tree.\n";

__attribute__((format(printf, 1, 2), noreturn)) static void
usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mgrun: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'mgrun --help' for more information.\n");
  exit(EXIT_USAGE);
}

/* A non-negative integer option up to `max`, or exit 2 saying so. */
static uint64_t parse_u64(const char *opt, const char *v, uint64_t max) {
  char *end;
  if (v[0] < '0' || v[0] > '9')
    goto bad;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end || x > max)
    goto bad;
  return x;
bad:
  fprintf(stderr,
          "mgrun: invalid value '%s' for %s: expected an integer from 0 to "
          "%llu\n"
          "Try 'mgrun --help' for more information.\n",
          v, opt, (unsigned long long)max);
  exit(EXIT_USAGE);
}

/* Budgets in ms: up to a week (larger values would overflow the clock). */
#define MAX_BUDGET_MS (7ull * 24 * 3600 * 1000)

/* ------------------------------------------------------------ --probe */

static const char *jstr(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "?";
}

static const char *jsize(json_t *o, const char *k, char *buf, size_t len) {
  json_t *v = json_object_get(o, k);
  if (!json_is_integer(v))
    return "unknown";
  return mg_size_format((uint64_t)json_integer_value(v), buf, len);
}

static void print_probe_text(json_t *doc) {
  char a[32], b[32], c[32], d[32];
  json_t *m = json_object_get(doc, "memory");
  json_t *cg = json_object_get(doc, "cgroup");
  json_t *rl = json_object_get(doc, "rlimit");
  json_t *pr = json_object_get(doc, "pressure");
  printf("mgrun %s on %s %s\n", jstr(doc, "version"), jstr(doc, "arch"),
         jstr(doc, "kernel"));
  printf("memory:     total %s, available %s, free %s, swap %s\n",
         jsize(m, "total", a, sizeof a), jsize(m, "available", b, sizeof b),
         jsize(m, "free", c, sizeof c), jsize(m, "swap_total", d, sizeof d));
  printf("effective:  total %s, available %s (from %s)\n",
         jsize(m, "effective_total", a, sizeof a),
         jsize(m, "effective_available", b, sizeof b),
         jstr(m, "effective_source"));
  if (cg) {
    printf("cgroup:     %s", jstr(cg, "version"));
    if (strcmp(jstr(cg, "version"), "none") != 0)
      printf(" memory controller at %s, this process in %s", jstr(cg, "mount"),
             jstr(cg, "path"));
    if (json_is_true(json_object_get(cg, "v2_mounted")) &&
        strcmp(jstr(cg, "version"), "v1") == 0)
      printf(" (cgroup2 mounted too: hybrid)");
    printf("\n");
    json_t *lim = json_object_get(cg, "limit");
    if (json_is_integer(lim))
      printf("            limit %s set by %s\n",
             jsize(cg, "limit", a, sizeof a), jstr(cg, "limit_dir"));
    json_t *w = json_object_get(cg, "writable");
    const char *why = json_string_value(json_object_get(cg, "writable_reason"));
    if (why)
      printf("            %s\n", why);
    else
      printf("            writable: %s\n", json_is_true(w)    ? "yes"
                                           : json_is_false(w) ? "no"
                                                              : "not probed");
  }
  if (rl) {
    json_t *pref = json_object_get(rl, "preferred");
    printf("rlimit:     default %s\n",
           json_is_string(pref) ? json_string_value(pref) : "none enforced");
    static const char *res[2] = {"data", "as"};
    for (int i = 0; i < 2; i++) {
      json_t *r = json_object_get(rl, res[i]);
      if (!r)
        continue;
      printf("            %-4s %s\n", res[i], jstr(r, "reason"));
    }
  }
  if (json_is_object(pr)) {
    static const char *kinds[2] = {"some", "full"};
    for (int i = 0; i < 2; i++) {
      json_t *l = json_object_get(pr, kinds[i]);
      if (!l)
        continue;
      printf("%-12s%s avg10=%.2f avg60=%.2f avg300=%.2f "
             "total=%" JSON_INTEGER_FORMAT "us\n",
             i == 0 ? "pressure:" : "", kinds[i],
             json_number_value(json_object_get(l, "avg10")),
             json_number_value(json_object_get(l, "avg60")),
             json_number_value(json_object_get(l, "avg300")),
             json_integer_value(json_object_get(l, "total")));
    }
  } else {
    printf("pressure:   unavailable (%s)\n", jstr(doc, "pressure_reason"));
  }
}

static int run_probe(int as_json, const char *cgroup_parent) {
  mg_probe_opts po = {0};
  void *doc = NULL;
  char err[1024];
  po.cgroup_parent = cgroup_parent;
  if (mg_probe_json(&po, &doc, err, sizeof err) < 0) {
    fprintf(stderr, "mgrun: probe failed: %s\n", err);
    return EXIT_RUNTIME;
  }
  if (as_json) {
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s == NULL) {
      json_decref(doc);
      fprintf(stderr, "mgrun: out of memory\n");
      return EXIT_RUNTIME;
    }
    puts(s);
    free(s);
  } else {
    print_probe_text(doc);
  }
  json_decref(doc);
  return 0;
}

/* ------------------------------------------------------------ main */

enum {
  OPT_LOG_FORMAT = 256,
  OPT_LOG_LEVEL,
  OPT_LUA_MEM,
  OPT_CB_TIMEOUT,
  OPT_CB_INSN,
  OPT_SETUP_TIMEOUT,
  OPT_SANDBOX,
  OPT_CGROUP_PARENT,
  OPT_CHECK,
  OPT_PROBE,
  OPT_JSON,
  OPT_LIMIT,
  OPT_ENFORCE
};

/* A size option (SIZE or N% of effective memory) or exit 2. */
static uint64_t parse_size_opt(const char *opt, const char *v) {
  char err[1024];
  uint64_t bytes, base = 0;
  mg_effmem eff;
  if (strchr(v, '%') && mg_effective_memory_read(NULL, &eff, NULL, 0) == 0)
    base = eff.total_bytes;
  if (mg_size_parse(v, base, &bytes, err, sizeof err) < 0)
    usage_error("invalid %s: %s", opt, err);
  return bytes;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
      {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
      {"lua-mem", required_argument, NULL, OPT_LUA_MEM},
      {"cb-timeout", required_argument, NULL, OPT_CB_TIMEOUT},
      {"cb-instructions", required_argument, NULL, OPT_CB_INSN},
      {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
      {"sandbox", no_argument, NULL, OPT_SANDBOX},
      {"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
      {"check", no_argument, NULL, OPT_CHECK},
      {"probe", no_argument, NULL, OPT_PROBE},
      {"json", no_argument, NULL, OPT_JSON},
      {"limit", required_argument, NULL, OPT_LIMIT},
      {"enforce", required_argument, NULL, OPT_ENFORCE},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  mg_runtime_opts ro;
  mg_log_format log_format = MG_LOG_TEXT;
  mg_log_level log_level = MG_LOG_INFO;
  int log_level_set = 0;
  int check = 0, probe = 0, as_json = 0, c;
  const char *limit_arg = NULL, *enforce_arg = NULL;
  uint64_t limit_bytes = 0;
  char err[8192];

  mg_runtime_opts_init(&ro);
  ro.handle_signals = 1;
  opterr = 0;
  /* '+': stop at the policy; ':': a missing value is reported as such. */
  while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(usage_text, stdout);
      return 0;
    case 'V':
      printf("mgrun %s\n", MG_VERSION);
      return 0;
    case OPT_LOG_FORMAT:
      if (mg_log_format_parse(optarg, &log_format) < 0)
        usage_error("invalid --log-format '%s' (accepted: text, json)", optarg);
      break;
    case OPT_LOG_LEVEL:
      log_level_set = 1;
      if (mg_log_level_parse(optarg, &log_level) < 0)
        usage_error("invalid --log-level '%s' (accepted: debug, info, warn, "
                    "error)",
                    optarg);
      break;
    case OPT_LUA_MEM: {
      uint64_t v = parse_size_opt("--lua-mem", optarg);
      if (v != 0 && v < (1u << 20))
        usage_error("invalid --lua-mem '%s': at least 1M (or 0 for no cap)",
                    optarg);
      ro.lua_mem_max_bytes = (size_t)v;
      break;
    }
    case OPT_CB_TIMEOUT:
      ro.cb_timeout_ms = parse_u64("--cb-timeout", optarg, MAX_BUDGET_MS);
      break;
    case OPT_CB_INSN:
      ro.cb_instructions = parse_u64("--cb-instructions", optarg, UINT64_MAX);
      break;
    case OPT_SETUP_TIMEOUT:
      ro.setup_timeout_ms = parse_u64("--setup-timeout", optarg, MAX_BUDGET_MS);
      break;
    case OPT_SANDBOX:
      ro.sandbox = 1;
      break;
    case OPT_CGROUP_PARENT:
      ro.cgroup_parent = optarg;
      break;
    case OPT_CHECK:
      check = 1;
      break;
    case OPT_PROBE:
      probe = 1;
      break;
    case OPT_JSON:
      as_json = 1;
      break;
    case OPT_LIMIT:
      limit_arg = optarg;
      limit_bytes = parse_size_opt("--limit", optarg);
      if (limit_bytes == 0)
        usage_error("invalid --limit '%s': must be positive", optarg);
      break;
    case OPT_ENFORCE: {
      mg_enforce e;
      if (mg_enforce_parse(optarg, &e, err, sizeof err) < 0)
        usage_error("invalid --enforce: %s", err);
      enforce_arg = optarg;
      break;
    }
    case ':':
      if (optopt)
        usage_error("option '-%c' needs a value", optopt);
      usage_error("option '%s' needs a value", argv[optind - 1]);
      break;
    default:
      if (optopt)
        usage_error("unknown option '-%c'", optopt);
      usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }

  if (as_json && !probe)
    usage_error("%s", "--json goes with --probe");
  if (probe) {
    if (optind < argc)
      usage_error("--probe takes no policy (got '%s')", argv[optind]);
    return run_probe(as_json, ro.cgroup_parent);
  }
  if (enforce_arg && !limit_arg)
    usage_error("%s", "--enforce goes with --limit SIZE -- CMD");
  if (limit_arg && optind >= argc)
    usage_error("--limit %s needs a command: mgrun --limit SIZE -- CMD "
                "[ARGS...]",
                limit_arg);
  if (optind >= argc)
    usage_error("%s", "no policy given");

  /* --limit: the built-in policy gets (limit bytes, enforce, CMD...). */
  const char *policy = argv[optind];
  char limit_buf[32];
  char **mod_argv = NULL;
  int mod_argc = 0;
  if (limit_arg) {
    mod_argc = argc - optind + 2;
    mod_argv = calloc((size_t)mod_argc + 1, sizeof *mod_argv);
    if (mod_argv == NULL) {
      fprintf(stderr, "mgrun: out of memory\n");
      return EXIT_RUNTIME;
    }
    snprintf(limit_buf, sizeof limit_buf, "%" PRIu64, limit_bytes);
    mod_argv[0] = limit_buf;
    mod_argv[1] = (char *)(enforce_arg ? enforce_arg : "auto");
    for (int i = optind; i < argc; i++)
      mod_argv[2 + i - optind] = argv[i];
  }
  /* One command under a limit: the built-in policy says why it died; the
   * supervisor's info lines are only wanted when asked for. */
  if (limit_arg && !log_level_set)
    log_level = MG_LOG_WARN;
  mg_logger *logger = mg_logger_new(stderr, log_format, log_level);
  if (logger == NULL) {
    fprintf(stderr, "mgrun: out of memory\n");
    free(mod_argv);
    return EXIT_RUNTIME;
  }
  ro.logger = logger;
  ro.check_only = check;
  mg_runtime *rt;
  if (mg_runtime_new(&ro, &rt, err, sizeof err) < 0) {
    fprintf(stderr, "mgrun: %s\n", err);
    mg_logger_free(logger);
    free(mod_argv);
    return EXIT_RUNTIME;
  }
  int status, rc;
  if (limit_arg)
    rc = mg_runtime_load_module(rt, "mg.default", mod_argc, mod_argv, err,
                                sizeof err);
  else
    rc = mg_runtime_load(rt, policy, argc - optind - 1, argv + optind + 1, err,
                         sizeof err);
  if (rc < 0) {
    fprintf(stderr, "mgrun: %s\n", err);
    status = EXIT_USAGE;
  } else if (check) {
    if (mg_runtime_exit_requested(rt) && mg_runtime_exit_code(rt) != 0)
      status = mg_runtime_exit_code(rt);
    else {
      printf("%s: OK\n", policy);
      status = 0;
    }
  } else {
    mg_runtime_run(rt);
    status = mg_runtime_exit_code(rt);
  }
  mg_runtime_free(rt);
  mg_logger_free(logger);
  free(mod_argv);
  return status;
}
