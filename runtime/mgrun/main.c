/* main.c — `mgrun`: argument parsing and exit codes over the runtime host
 * (the only place that decides what is fatal; mgrun CLI layer). It
 * includes the host's header and the core's, nothing of the supervisor or
 * the bindings. `mgrun ctl …` is ctl.c's. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "mg/mg_runtime.h"

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
    "       mgrun plot RUN.jsonl -o OUT.svg|OUT.png [--width W] [--height H]\n"
    "                  [--title T]                  draw a run recorded with "
    "--timeline\n"
    "       mgrun ctl [--socket PATH] [--json] COMMAND [ARGS...]\n"
    "                                               talk to a running mgrun "
    "(its\n"
    "                                               --control socket; "
    "'mgrun ctl\n"
    "                                               --help' lists the "
    "commands)\n"
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
    "                          0 = no cap)\n"
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
    "                          bytecode or C modules; it may spawn only the\n"
    "                          programs of --allow-spawn and read or write "
    "only\n"
    "                          in the directories of --allow-dir\n"
    "  --allow-spawn PATH      with --sandbox: a program mg.spawn may run "
    "(by\n"
    "                          this path); repeat for more\n"
    "  --allow-dir DIR         with --sandbox: a directory the policy may "
    "read and\n"
    "                          write in (snapshots, archives, a child's cwd "
    "and\n"
    "                          output files); repeat for more\n"
    "  --cgroup-parent DIR     where child cgroups are created (default: "
    "mgrun's\n"
    "                          own cgroup); checked at start\n"
    "  --check                 load the policy and run its top level; start "
    "no loop\n"
    "                          and no process (mg.spawn only validates)\n"
    "  --limit SIZE            run CMD (after --) under a memory limit with "
    "the\n"
    "                          built-in policy (scripts/mg/default.lua): "
    "CMD in a\n"
    "                          cgroup of its own (every mode), watched by "
    "kernel\n"
    "                          notifications; warns at 80 %, logs OOM kills, "
    "says\n"
    "                          why CMD died (its stderr's tail kept), exits "
    "with\n"
    "                          its status\n"
    "  --enforce MODE          with --limit, what bounds CMD:\n"
    "                            auto    (default) a cgroup where one is "
    "writable,\n"
    "                                    else data, else as\n"
    "                            cgroup  a memory cgroup of its own: "
    "resident and\n"
    "                                    page-cache memory of its whole "
    "tree, swap\n"
    "                                    off; the OOM killer acts at the "
    "limit\n"
    "                            data    RLIMIT_DATA: private writable memory "
    "(heap,\n"
    "                                    anonymous mappings); an allocation "
    "past it\n"
    "                                    fails\n"
    "                            as      RLIMIT_AS: address space, "
    "reservations too\n"
    "                                    (CUDA, JITs and mapped models "
    "reserve a\n"
    "                                    lot); checked against the hard "
    "limit, not\n"
    "                                    RAM\n"
    "                            none    nothing is enforced; the limit is "
    "watched\n"
    "  --probe                 print memory, effective memory, cgroups, "
    "enforced\n"
    "                          rlimits, pressure, what the kernel notifies\n"
    "                          (group events, PSI trigger windows) and the "
    "GPUs\n"
    "                          (NVML, loaded at run time), then exit\n"
    "  --json                  with --probe: one JSON document\n"
    "  --metrics ADDR          serve Prometheus metrics (GET /metrics) on\n"
    "                          127.0.0.1:PORT, [::1]:PORT or unix:/path "
    "(0600);\n"
    "                          PORT 0 picks a free one (logged: "
    "metrics_listening)\n"
    "  --metrics-allow-remote  let --metrics listen on an address that is "
    "not\n"
    "                          loopback\n"
    "  --metrics-file PATH     write the same text to PATH, atomically, "
    "every\n"
    "                          interval (node_exporter's textfile "
    "collector)\n"
    "  --metrics-interval MS   how often --metrics-file is written (default "
    "15000)\n"
    "  --control[=PATH]        a control socket for 'mgrun ctl' (JSON "
    "lines, mode\n"
    "                          0600, this uid and root only); without PATH\n"
    "                          $XDG_RUNTIME_DIR/mgrun/mgrun.sock, else\n"
    "                          /run/mgrun/mgrun.sock (its directory made "
    "0700).\n"
    "                          One path per instance: a second mgrun on a "
    "path\n"
    "                          in use refuses to start, so give each its "
    "own\n"
    "                          --control=PATH (and 'mgrun ctl --socket "
    "PATH')\n"
    "  --timeline PATH         record every sample, event and store figure "
    "as JSON\n"
    "                          lines, each flushed as written (format: "
    "docs/cli.md;\n"
    "                          draw it with 'mgrun plot PATH -o run.svg')\n"
    "  -h, --help              this help\n"
    "  -V, --version           print the version\n"
    "\n"
    "SIZE: a number of bytes or <number>[K|M|G|T][i][B] (powers of 1024, "
    "any case),\n"
    "or <number>% of the effective memory (a container's limit, not the "
    "host's).\n"
    "\n"
    "Exit status: 0 success; 1 runtime failure; 2 usage error, invalid size "
    "or\n"
    "limit, or a policy that fails to load; mg.exit(N) exits N; a SIGINT or\n"
    "SIGTERM that ends mgrun (no policy handler) exits 128+N after a "
    "graceful\n"
    "shutdown (children get SIGTERM, then SIGKILL after their grace period;\n"
    "a second signal kills them at once). With --limit: CMD's own status,\n"
    "128+N if it was killed by signal N, 127 if it cannot be found, 126 if "
    "it\n"
    "cannot be run.\n"
    "With plot: mgrun-plot's status (0 drawn, 1 nothing to plot or a file "
    "that\n"
    "cannot be read or written, 2 usage error); 127 if it is not installed.\n"
    "\n"
    "Docs: man mgrun; docs/cli.md, docs/lua-api.md, docs/processes.md and\n"
    "docs/embedding.md (C, Lua and Python hosts) in the source tree.\n";

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

/* mg_runtime_new's failure: a bad option value (a cgroup parent or an
 * allowed path that does not exist, a --metrics address that is busy or
 * not this machine's…) is a usage error. */
static int start_status(int rc) {
  switch (rc) {
  case -EADDRINUSE:
  case -EADDRNOTAVAIL:
  case -EEXIST:
  case -EISDIR:
  case -ENOENT:
  case -ENOTDIR:
  case -EINVAL:
  case -EACCES:
  case -ELOOP:
  case -ENAMETOOLONG:
    return EXIT_USAGE;
  default:
    return EXIT_RUNTIME;
  }
}

/* ------------------------------------------------------------ plot */

/* `mgrun plot ARGS…`: mgrun-plot draws a --timeline run. It links cairo,
 * which the governor does not, so it is a program of its own: the one
 * beside this mgrun (build tree or bin dir), else the first on PATH. */
static int run_plot(int argc, char **argv) {
  char dir[PATH_MAX], path[PATH_MAX + 16];
  char **av = calloc((size_t)argc, sizeof *av);
  if (!av) {
    fprintf(stderr, "mgrun: out of memory\n");
    return EXIT_RUNTIME;
  }
  av[0] = (char *)"mgrun plot"; /* its messages then say "mgrun plot:" */
  for (int i = 2; i < argc; i++)
    av[i - 1] = argv[i];
  ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
  char *slash = n > 0 ? memrchr(dir, '/', (size_t)n) : NULL;
  path[0] = 0;
  if (slash) {
    *slash = 0;
    snprintf(path, sizeof path, "%s/mgrun-plot", dir);
    execv(path, av);
    if (errno != ENOENT) {
      fprintf(stderr, "mgrun: cannot run %s: %s\n", path, strerror(errno));
      free(av);
      return 126;
    }
  }
  execvp("mgrun-plot", av);
  int e = errno;
  free(av);
  if (e != ENOENT) {
    fprintf(stderr, "mgrun: cannot run mgrun-plot: %s\n", strerror(e));
    return 126;
  }
  fprintf(stderr,
          "mgrun: 'mgrun plot' needs mgrun-plot, which is not installed: "
          "not found %s%s%son PATH (it is built with mgrun where cairo is "
          "found: Debian's libcairo2-dev, and installed beside mgrun)\n",
          path[0] ? "as " : "", path, path[0] ? " nor " : "");
  return 127;
}

/* ------------------------------------------------------------ --probe */

static int run_probe(int as_json, const char *cgroup_parent) {
  mg_probe_opts po = {0};
  void *doc = NULL;
  char err[1024];
  po.cgroup_parent = cgroup_parent;
  int rc = mg_probe_json(&po, &doc, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "mgrun: probe failed: %s\n", err);
    return cgroup_parent ? start_status(rc) : EXIT_RUNTIME;
  }
  rc = mg_probe_print(doc, as_json, stdout);
  mg_probe_free(doc);
  if (rc < 0) {
    fprintf(stderr, "mgrun: cannot print the probe: %s\n", mg_strerror(rc));
    return EXIT_RUNTIME;
  }
  return 0;
}

/* ------------------------------------------------------------ options */

enum {
  OPT_LOG_FORMAT = 256,
  OPT_LOG_LEVEL,
  OPT_LUA_MEM,
  OPT_CB_TIMEOUT,
  OPT_CB_INSN,
  OPT_SETUP_TIMEOUT,
  OPT_SANDBOX,
  OPT_ALLOW_SPAWN,
  OPT_ALLOW_DIR,
  OPT_CGROUP_PARENT,
  OPT_CHECK,
  OPT_PROBE,
  OPT_JSON,
  OPT_LIMIT,
  OPT_ENFORCE,
  OPT_METRICS,
  OPT_METRICS_FILE,
  OPT_METRICS_INTERVAL,
  OPT_METRICS_REMOTE,
  OPT_CONTROL,
  OPT_TIMELINE
};

static const struct option longopts[] = {
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"lua-mem", required_argument, NULL, OPT_LUA_MEM},
    {"cb-timeout", required_argument, NULL, OPT_CB_TIMEOUT},
    {"cb-instructions", required_argument, NULL, OPT_CB_INSN},
    {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
    {"sandbox", no_argument, NULL, OPT_SANDBOX},
    {"allow-spawn", required_argument, NULL, OPT_ALLOW_SPAWN},
    {"allow-dir", required_argument, NULL, OPT_ALLOW_DIR},
    {"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
    {"check", no_argument, NULL, OPT_CHECK},
    {"probe", no_argument, NULL, OPT_PROBE},
    {"json", no_argument, NULL, OPT_JSON},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"enforce", required_argument, NULL, OPT_ENFORCE},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
    {"metrics-interval", required_argument, NULL, OPT_METRICS_INTERVAL},
    {"metrics-allow-remote", no_argument, NULL, OPT_METRICS_REMOTE},
    {"control", optional_argument, NULL, OPT_CONTROL},
    {"timeline", required_argument, NULL, OPT_TIMELINE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0}};

/* The long option whose value getopt found missing (optopt holds its
 * `val`), for the message. */
static const char *option_name(int val, const char *arg) {
  for (const struct option *o = longopts; o->name; o++)
    if (o->val == val)
      return o->name;
  return arg ? arg : "?";
}

typedef struct cli {
  mg_runtime_opts ro;
  mg_log_format log_format;
  mg_log_level log_level;
  int log_level_set, check, probe, as_json;
  const char *limit_arg, *enforce_arg;
  const char **allow_spawn, **allow_dirs;
  size_t n_spawn, n_dirs;
} cli;

static void push_list(const char ***list, size_t *n, const char *v) {
  const char **l = realloc(*list, (*n + 2) * sizeof *l);
  if (!l) {
    fprintf(stderr, "mgrun: out of memory\n");
    exit(EXIT_RUNTIME);
  }
  l[(*n)++] = v;
  l[*n] = NULL;
  *list = l;
}

static void parse_args(cli *a, int argc, char **argv) {
  int c;
  opterr = 0;
  /* '+': stop at the policy; ':': a missing value is reported as such. */
  while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(usage_text, stdout);
      exit(0);
    case 'V':
      printf("mgrun %s\n", MG_VERSION);
      exit(0);
    case OPT_LOG_FORMAT:
      if (mg_log_format_parse(optarg, &a->log_format) < 0)
        usage_error("invalid --log-format '%s' (accepted: text, json)", optarg);
      break;
    case OPT_LOG_LEVEL:
      a->log_level_set = 1;
      if (mg_log_level_parse(optarg, &a->log_level) < 0)
        usage_error("invalid --log-level '%s' (accepted: debug, info, warn, "
                    "error)",
                    optarg);
      break;
    case OPT_LUA_MEM: /* the rules of these are the runtime's */
    case OPT_CB_TIMEOUT:
    case OPT_CB_INSN:
    case OPT_SETUP_TIMEOUT: {
      static const struct {
        int opt;
        const char *key;
      } keys[] = {{OPT_LUA_MEM, "lua_mem"},
                  {OPT_CB_TIMEOUT, "cb_timeout_ms"},
                  {OPT_CB_INSN, "cb_instructions"},
                  {OPT_SETUP_TIMEOUT, "setup_timeout_ms"}};
      char err[1024];
      for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].opt == c &&
            mg_runtime_opts_set(&a->ro, keys[i].key, optarg, err, sizeof err))
          usage_error("--%s: %s", option_name(c, NULL), err);
      break;
    }
    case OPT_SANDBOX:
      a->ro.sandbox = 1;
      break;
    case OPT_ALLOW_SPAWN:
    case OPT_ALLOW_DIR:
      if (!optarg[0])
        usage_error("--%s needs a path, got an empty one",
                    option_name(c, NULL));
      if (c == OPT_ALLOW_SPAWN)
        push_list(&a->allow_spawn, &a->n_spawn, optarg);
      else
        push_list(&a->allow_dirs, &a->n_dirs, optarg);
      break;
    case OPT_CGROUP_PARENT:
      a->ro.cgroup_parent = optarg;
      break;
    case OPT_CHECK:
      a->check = 1;
      break;
    case OPT_PROBE:
      a->probe = 1;
      break;
    case OPT_JSON:
      a->as_json = 1;
      break;
    case OPT_LIMIT:
      /* parsed once, where every limit is: mg.spawn and the supervisor */
      a->limit_arg = optarg;
      break;
    case OPT_ENFORCE:
      a->enforce_arg = optarg;
      break;
    case OPT_METRICS:
    case OPT_METRICS_FILE:
    case OPT_TIMELINE:
      if (!optarg[0])
        usage_error("--%s needs %s, got an empty one", option_name(c, NULL),
                    c == OPT_METRICS ? "an address" : "a path");
      if (c == OPT_METRICS)
        a->ro.metrics_addr = optarg;
      else if (c == OPT_METRICS_FILE)
        a->ro.metrics_file = optarg;
      else
        a->ro.timeline_path = optarg;
      break;
    case OPT_METRICS_INTERVAL: {
      char err[512];
      if (mg_runtime_opts_set(&a->ro, "metrics_interval_ms", optarg, err,
                              sizeof err) < 0)
        usage_error("--metrics-interval: %s", err);
      break;
    }
    case OPT_METRICS_REMOTE:
      a->ro.metrics_remote = 1;
      break;
    case OPT_CONTROL: /* --control (the default path) or --control=PATH */
      if (optarg && !optarg[0])
        usage_error("%s", "--control=PATH needs a path, got an empty one");
      a->ro.control_path = optarg ? optarg : "";
      break;
    case ':':
      if (optopt > 0 && optopt < 256)
        usage_error("option '-%c' needs a value", optopt);
      usage_error("option '--%s' needs a value",
                  option_name(optopt, argv[optind - 1]));
    default:
      if (optopt > 0 && optopt < 256)
        usage_error("unknown option '-%c'", optopt);
      usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "ctl") == 0) /* a policy named ctl: ./ctl */
    return mg_ctl_main(argc - 1, argv + 1);
  /* A client of the control socket (or a reader of stdout) that goes away
   * is an error on that write, not the end of the governor. Children get
   * the default back (the supervisor resets every disposition). */
  signal(SIGPIPE, SIG_IGN);
  cli a;
  char err[8192];
  if (argc > 1 && strcmp(argv[1], "plot") == 0)
    return run_plot(argc, argv);
  memset(&a, 0, sizeof a);
  a.log_format = MG_LOG_TEXT;
  a.log_level = MG_LOG_INFO;
  mg_runtime_opts_init(&a.ro);
  a.ro.handle_signals = 1;
  parse_args(&a, argc, argv);

  if (a.as_json && !a.probe)
    usage_error("%s", "--json goes with --probe");
  if (a.probe) {
    if (optind < argc)
      usage_error("--probe takes no policy (got '%s')", argv[optind]);
    return run_probe(a.as_json, a.ro.cgroup_parent);
  }
  if ((a.n_spawn || a.n_dirs) && !a.ro.sandbox)
    usage_error("%s goes with --sandbox",
                a.n_spawn ? "--allow-spawn" : "--allow-dir");
  if (a.enforce_arg && !a.limit_arg)
    usage_error("%s", "--enforce goes with --limit SIZE -- CMD");
  if (a.limit_arg && optind >= argc)
    usage_error("--limit %s needs a command: mgrun --limit SIZE -- CMD "
                "[ARGS...]",
                a.limit_arg);
  if (optind >= argc)
    usage_error("%s", "no policy given");

  /* --limit: the built-in policy gets (SIZE, MODE, CMD...) as typed. */
  const char *policy = argv[optind];
  char **mod_argv = NULL;
  int mod_argc = 0;
  if (a.limit_arg) {
    mod_argc = argc - optind + 2;
    mod_argv = calloc((size_t)mod_argc + 1, sizeof *mod_argv);
    if (mod_argv == NULL) {
      fprintf(stderr, "mgrun: out of memory\n");
      return EXIT_RUNTIME;
    }
    mod_argv[0] = (char *)a.limit_arg;
    mod_argv[1] = (char *)(a.enforce_arg ? a.enforce_arg : "auto");
    for (int i = optind; i < argc; i++)
      mod_argv[2 + i - optind] = argv[i];
  }
  /* One command under a limit: the built-in policy says why it died; the
   * supervisor's info lines are only wanted when asked for. */
  if (a.limit_arg && !a.log_level_set)
    a.log_level = MG_LOG_WARN;
  mg_logger *logger = mg_logger_new(stderr, a.log_format, a.log_level);
  if (logger == NULL) {
    fprintf(stderr, "mgrun: out of memory\n");
    free(mod_argv);
    return EXIT_RUNTIME;
  }
  a.ro.logger = logger;
  a.ro.check_only = a.check;
  a.ro.allow_spawn = a.allow_spawn;
  a.ro.allow_dirs = a.allow_dirs;
  mg_runtime *rt;
  int status, rc = mg_runtime_new(&a.ro, &rt, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "mgrun: %s\n", err);
    status = start_status(rc);
    goto out;
  }
  if (a.limit_arg)
    rc = mg_runtime_load_module(rt, "mg.default", mod_argc, mod_argv, err,
                                sizeof err);
  else
    rc = mg_runtime_load(rt, policy, argc - optind - 1, argv + optind + 1, err,
                         sizeof err);
  if (rc < 0) {
    fprintf(stderr, "mgrun: %s\n", err);
    status = EXIT_USAGE;
  } else if (a.check) {
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
out:
  mg_logger_free(logger);
  free(mod_argv);
  free(a.allow_spawn);
  free(a.allow_dirs);
  return status;
}
