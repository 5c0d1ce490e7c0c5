/* test_probe.c — effective memory and the probe document, against fixture
 * trees (tests/fixtures/probe/<case>/{proc,fs}) and on the real machine. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg_test.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static char err[2048];
static char proc_root[4096], fs_root[4096];

static mg_paths fixture(const char *name) {
  snprintf(proc_root, sizeof proc_root, "%s/probe/%s/proc", MG_TEST_FIXTURES,
           name);
  snprintf(fs_root, sizeof fs_root, "%s/probe/%s/fs", MG_TEST_FIXTURES, name);
  mg_paths p = {proc_root, fs_root};
  return p;
}

/* fs_root + rel in a static buffer. */
static const char *fs(const char *rel) {
  static char buf[2][4096 + 256];
  static int i;
  i ^= 1;
  snprintf(buf[i], sizeof buf[i], "%s%s", fs_root, rel);
  return buf[i];
}

/* Member at a dotted path ("memory.total"); NULL when absent. */
static json_t *at(json_t *doc, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *cur = doc;
  char *save = NULL;
  for (char *k = strtok_r(buf, ".", &save); k && cur;
       k = strtok_r(NULL, ".", &save)) {
    json_t *next = json_object_get(cur, k);
    cur = next;
  }
  return cur;
}

#define ASSERT_JINT(doc, path, want)                                           \
  do {                                                                         \
    json_t *mg__v = at(doc, path);                                             \
    if (!json_is_integer(mg__v))                                               \
      MG__FAIL("%s is not an integer", path);                                  \
    ASSERT_U64_EQ(json_integer_value(mg__v), want);                            \
  } while (0)

#define ASSERT_JSTR(doc, path, want)                                           \
  do {                                                                         \
    json_t *mg__v = at(doc, path);                                             \
    if (!json_is_string(mg__v))                                                \
      MG__FAIL("%s is not a string", path);                                    \
    ASSERT_STR_EQ(json_string_value(mg__v), want);                             \
  } while (0)

#define ASSERT_JNULL(doc, path)                                                \
  do {                                                                         \
    json_t *mg__v = at(doc, path);                                             \
    if (!json_is_null(mg__v))                                                  \
      MG__FAIL("%s is not null (%s)", path, mg__v ? "a value" : "absent");     \
  } while (0)

#define ASSERT_JBOOL(doc, path, want)                                          \
  do {                                                                         \
    json_t *mg__v = at(doc, path);                                             \
    if (!json_is_boolean(mg__v))                                               \
      MG__FAIL("%s is not a boolean", path);                                   \
    ASSERT_EQ(json_is_true(mg__v), want);                                      \
  } while (0)

#define ASSERT_JREAL(doc, path, want)                                          \
  do {                                                                         \
    json_t *mg__v = at(doc, path);                                             \
    if (!json_is_real(mg__v))                                                  \
      MG__FAIL("%s is not a real", path);                                      \
    ASSERT_DBL_NEAR(json_real_value(mg__v), want, 1e-9);                       \
  } while (0)

/* The object at `path` has exactly the keys in the NULL-terminated list. */
static int keys_are(json_t *doc, const char *path, const char *const *keys) {
  json_t *o = path ? at(doc, path) : doc;
  if (!json_is_object(o))
    return 0;
  size_t n = 0;
  for (; keys[n]; n++)
    if (!json_object_get(o, keys[n])) {
      fprintf(stderr, "  %s: missing key %s\n", path ? path : "doc", keys[n]);
      return 0;
    }
  if (json_object_size(o) != n) {
    char *s = json_dumps(o, JSON_COMPACT);
    fprintf(stderr, "  %s: extra keys in %s\n", path ? path : "doc", s);
    free(s);
    return 0;
  }
  return 1;
}

static const char *const memory_keys[] = {"total",
                                          "available",
                                          "free",
                                          "buffers",
                                          "cached",
                                          "swap_total",
                                          "swap_free",
                                          "cgroup_limit",
                                          "effective_total",
                                          "effective_available",
                                          "effective_source",
                                          NULL};
static const char *const cgroup_keys[] = {
    "version",   "v2_mounted", "mount",           "path", "dir", "limit",
    "limit_dir", "writable",   "writable_reason", NULL};
static const char *const rlimit_keys[] = {"preferred", "data", "as", NULL};
static const char *const rl_one_keys[] = {"enforced", "reason", NULL};
static const char *const psi_keys[] = {"some", "full", NULL};
static const char *const psi_line_keys[] = {"avg10", "avg60", "avg300", "total",
                                            NULL};

static json_t *probe(const mg_paths *p, int skip) {
  mg_probe_opts o = {*p, skip, skip, NULL};
  void *doc = NULL;
  int rc = mg_probe_json(&o, &doc, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "  mg_probe_json: %d %s\n", rc, err);
  return rc == 0 ? doc : NULL;
}

static void check_common(json_t *doc) {
  /* "pressure_reason" without PSI, "gpu_reason" without a GPU */
  const char *keys[16];
  size_t nk = 0;
  const char *base[] = {"version", "memory", "cgroup", "rlimit", "pressure",
                        "notify",  "gpus",   "kernel", "arch"};
  for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
    keys[nk++] = base[i];
  if (json_is_null(at(doc, "pressure")))
    keys[nk++] = "pressure_reason";
  if (json_is_null(at(doc, "gpus")))
    keys[nk++] = "gpu_reason";
  keys[nk] = NULL;
  ASSERT(keys_are(doc, NULL, keys));
  /* notify: what the kernel tells; without PSI the trigger says why */
  json_t *nt = at(doc, "notify");
  ASSERT(json_is_object(nt));
  if (json_is_null(at(doc, "pressure"))) {
    ASSERT(json_is_null(json_object_get(nt, "psi_trigger")));
    ASSERT(json_is_string(json_object_get(nt, "psi_trigger_reason")));
  }
  ASSERT(keys_are(doc, "memory", memory_keys));
  ASSERT(keys_are(doc, "cgroup", cgroup_keys));
  ASSERT(keys_are(doc, "rlimit", rlimit_keys));
  ASSERT(keys_are(doc, "rlimit.data", rl_one_keys));
  ASSERT(keys_are(doc, "rlimit.as", rl_one_keys));
  ASSERT_JSTR(doc, "version", MG_VERSION);
  struct utsname u;
  ASSERT_EQ(uname(&u), 0);
  ASSERT_JSTR(doc, "kernel", u.release);
  ASSERT_JSTR(doc, "arch", u.machine);
}

TEST(fixture_limited_by_cgroup) {
  mg_paths p = fixture("limited");
  json_t *doc = probe(&p, 1);
  ASSERT(doc != NULL);
  char *text = json_dumps(doc, JSON_COMPACT);
  fprintf(stderr, "  %s\n", text);
  free(text);
  check_common(doc);
  /* memory: meminfo in bytes, then the cgroup */
  ASSERT_JINT(doc, "memory.total", 16 * GIB);
  ASSERT_JINT(doc, "memory.available", 12 * GIB);
  ASSERT_JINT(doc, "memory.free", 8 * GIB);
  ASSERT_JINT(doc, "memory.buffers", 256 * MIB);
  ASSERT_JINT(doc, "memory.cached", 2 * GIB);
  ASSERT_JINT(doc, "memory.swap_total", 4 * GIB);
  ASSERT_JINT(doc, "memory.swap_free", 4 * GIB);
  ASSERT_JINT(doc, "memory.cgroup_limit", GIB);
  ASSERT_JINT(doc, "memory.effective_total", GIB);
  ASSERT_JINT(doc, "memory.effective_available", GIB - 256 * MIB);
  char src[4096 + 64];
  snprintf(src, sizeof src, "cgroup v1 %s",
           fs("/sys/fs/cgroup/memory/agents/llm"));
  ASSERT_JSTR(doc, "memory.effective_source", src);
  /* cgroup */
  ASSERT_JSTR(doc, "cgroup.version", "v1");
  ASSERT_JBOOL(doc, "cgroup.v2_mounted", 1);
  ASSERT_JSTR(doc, "cgroup.mount", fs("/sys/fs/cgroup/memory"));
  ASSERT_JSTR(doc, "cgroup.path", "/agents/llm");
  ASSERT_JSTR(doc, "cgroup.dir", fs("/sys/fs/cgroup/memory/agents/llm"));
  ASSERT_JINT(doc, "cgroup.limit", GIB);
  ASSERT_JSTR(doc, "cgroup.limit_dir", fs("/sys/fs/cgroup/memory/agents/llm"));
  ASSERT_JNULL(doc, "cgroup.writable");
  ASSERT_JNULL(doc, "cgroup.writable_reason");
  /* rlimit skipped */
  ASSERT_JNULL(doc, "rlimit.preferred");
  ASSERT_JNULL(doc, "rlimit.data.enforced");
  ASSERT_JNULL(doc, "rlimit.data.reason");
  ASSERT_JNULL(doc, "rlimit.as.enforced");
  ASSERT_JNULL(doc, "rlimit.as.reason");
  /* pressure */
  ASSERT(keys_are(doc, "pressure", psi_keys));
  ASSERT(keys_are(doc, "pressure.some", psi_line_keys));
  ASSERT(keys_are(doc, "pressure.full", psi_line_keys));
  ASSERT_JREAL(doc, "pressure.some.avg10", 1.5);
  ASSERT_JREAL(doc, "pressure.some.avg60", 0.75);
  ASSERT_JREAL(doc, "pressure.some.avg300", 0.25);
  ASSERT_JINT(doc, "pressure.some.total", 123456);
  ASSERT_JREAL(doc, "pressure.full.avg10", 0.5);
  ASSERT_JREAL(doc, "pressure.full.avg60", 0.1);
  ASSERT_JREAL(doc, "pressure.full.avg300", 0.0);
  ASSERT_JINT(doc, "pressure.full.total", 7890);
  ASSERT(at(doc, "pressure_reason") == NULL);
  json_decref(doc);
}

TEST(fixture_limit_above_memtotal) {
  mg_paths p = fixture("high");
  json_t *doc = probe(&p, 1);
  ASSERT(doc != NULL);
  check_common(doc);
  ASSERT_JINT(doc, "memory.total", 16 * GIB);
  ASSERT_JINT(doc, "memory.cgroup_limit", 64 * GIB);
  ASSERT_JINT(doc, "memory.effective_total", 16 * GIB);
  ASSERT_JINT(doc, "memory.effective_available", 12 * GIB);
  ASSERT_JSTR(doc, "memory.effective_source", "meminfo");
  ASSERT_JSTR(doc, "cgroup.version", "v2");
  ASSERT_JBOOL(doc, "cgroup.v2_mounted", 1);
  ASSERT_JSTR(doc, "cgroup.mount", fs("/sys/fs/cgroup"));
  ASSERT_JSTR(doc, "cgroup.path", "/machine.slice/vm.scope");
  ASSERT_JSTR(doc, "cgroup.dir", fs("/sys/fs/cgroup/machine.slice/vm.scope"));
  ASSERT_JINT(doc, "cgroup.limit", 64 * GIB);
  ASSERT_JSTR(doc, "cgroup.limit_dir",
              fs("/sys/fs/cgroup/machine.slice/vm.scope"));
  ASSERT_JNULL(doc, "cgroup.writable");
  ASSERT_JNULL(doc, "pressure");
  json_t *reason = at(doc, "pressure_reason");
  ASSERT(json_is_string(reason));
  ASSERT_CONTAINS(json_string_value(reason), "PSI not available");
  ASSERT_CONTAINS(json_string_value(reason), "pressure/memory");
  json_decref(doc);
}

TEST(fixture_no_cgroup_limit) {
  mg_paths p = fixture("limited");
  mg_meminfo mi;
  ASSERT_EQ(mg_meminfo_read(p.proc_root, &mi, err, sizeof err), 0);
  mg_cgroup_info cg;
  memset(&cg, 0, sizeof cg);
  cg.version = MG_CGROUP_V2; /* a controller, but no limit anywhere */
  mg_effmem e;
  ASSERT_EQ(mg_effective_memory(&p, &mi, &cg, &e, err, sizeof err), 0);
  ASSERT_U64_EQ(e.total_bytes, 16 * GIB);
  ASSERT_U64_EQ(e.available_bytes, 12 * GIB);
  ASSERT_EQ(e.from_cgroup, 0);
  ASSERT_STR_EQ(e.source, "meminfo");
  ASSERT_EQ(mg_effective_memory(&p, &mi, NULL, &e, err, sizeof err), 0);
  ASSERT_STR_EQ(e.source, "meminfo");
}

TEST(effective_available_is_the_smaller) {
  mg_paths p = fixture("limited");
  mg_cgroup_info cg;
  ASSERT_EQ(mg_cgroup_detect(&p, &cg, err, sizeof err), 0);
  mg_meminfo mi;
  ASSERT_EQ(mg_meminfo_read(p.proc_root, &mi, err, sizeof err), 0);
  mg_effmem e;
  mi.available_bytes = 100 * MIB; /* below limit - usage (768 MiB) */
  ASSERT_EQ(mg_effective_memory(&p, &mi, &cg, &e, err, sizeof err), 0);
  ASSERT_U64_EQ(e.total_bytes, GIB);
  ASSERT_U64_EQ(e.available_bytes, 100 * MIB);
  ASSERT_EQ(e.from_cgroup, 1);
  cg.limit_bytes = 128 * MIB; /* usage (256 MiB) above the limit: 0 left */
  ASSERT_EQ(mg_effective_memory(&p, &mi, &cg, &e, err, sizeof err), 0);
  ASSERT_U64_EQ(e.available_bytes, 0);

  ASSERT_EQ(mg_effective_memory_read(&p, &e, err, sizeof err), 0);
  ASSERT_U64_EQ(e.total_bytes, GIB);
  ASSERT_U64_EQ(e.available_bytes, GIB - 256 * MIB);
  ASSERT_EQ(e.from_cgroup, 1);
  ASSERT_CONTAINS(e.source, "cgroup v1 ");
  ASSERT_CONTAINS(e.source, "/sys/fs/cgroup/memory/agents/llm");

  /* a limiting group without a usage file is an error that names it */
  snprintf(cg.limit_dir, sizeof cg.limit_dir, "%s", fs("/sys/fs/cgroup"));
  ASSERT_EQ(mg_effective_memory(&p, &mi, &cg, &e, err, sizeof err), -ENOENT);
  ASSERT_CONTAINS(err, "memory.usage_in_bytes");
}

TEST(missing_proc_is_an_error) {
  mg_paths p = {"/nonexistent/proc", "/nonexistent/fs"};
  mg_probe_opts o = {p, 1, 1, NULL};
  void *doc = (void *)&p;
  ASSERT_EQ(mg_probe_json(&o, &doc, err, sizeof err), -ENOENT);
  ASSERT(doc == NULL);
  ASSERT_CONTAINS(err, "/nonexistent/proc/meminfo");
}

/* MemTotal from the real /proc/meminfo, in bytes. */
static uint64_t real_memtotal(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  unsigned long long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return (uint64_t)kb * 1024;
}

TEST(real_machine) {
  mg_paths p = {NULL, NULL};
  json_t *doc = probe(&p, 0);
  ASSERT(doc != NULL);
  char *text = json_dumps(doc, JSON_INDENT(2));
  fprintf(stderr, "%s\n", text);
  free(text);
  check_common(doc);
  ASSERT_JINT(doc, "memory.total", real_memtotal());
  json_t *eff = at(doc, "memory.effective_total");
  ASSERT(json_is_integer(eff));
  ASSERT((uint64_t)json_integer_value(eff) <= real_memtotal());
  mg_cgroup_info cg;
  ASSERT_EQ(mg_cgroup_detect(NULL, &cg, err, sizeof err), 0);
  ASSERT_JSTR(doc, "cgroup.version", mg_cgroup_version_name(cg.version));
  ASSERT(json_is_boolean(at(doc, "cgroup.writable")));
  ASSERT(json_is_string(at(doc, "cgroup.writable_reason")));
  if (cg.version != MG_CGROUP_NONE) {
    char probe_dir[PATH_MAX + 64];
    struct stat st;
    snprintf(probe_dir, sizeof probe_dir, "%s/mgrun-probe-%ld", cg.dir,
             (long)getpid());
    ASSERT(stat(probe_dir, &st) < 0); /* the writability probe cleaned up */
  }
  ASSERT_JBOOL(doc, "rlimit.data.enforced", 1);
  ASSERT_JSTR(doc, "rlimit.preferred", "data");
  ASSERT(json_is_string(at(doc, "rlimit.data.reason")));
  ASSERT(json_is_boolean(at(doc, "rlimit.as.enforced")));
  ASSERT(json_is_object(at(doc, "pressure")) ||
         json_is_string(at(doc, "pressure_reason")));
  json_decref(doc);
}

TEST(null_arguments) {
  ASSERT_EQ(mg_probe_json(NULL, NULL, err, sizeof err), -EINVAL);
  mg_effmem e;
  ASSERT_EQ(mg_effective_memory(NULL, NULL, NULL, &e, err, sizeof err),
            -EINVAL);
}

int main(void) {
  RUN(fixture_limited_by_cgroup);
  RUN(fixture_limit_above_memtotal);
  RUN(fixture_no_cgroup_limit);
  RUN(effective_available_is_the_smaller);
  RUN(missing_proc_is_an_error);
  RUN(real_machine);
  RUN(null_arguments);
  return mg_test_report();
}
