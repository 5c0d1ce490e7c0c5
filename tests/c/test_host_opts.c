/* test_host_opts.c — the runtime's options by name (mg_runtime_opts_set),
 * as mgrun's command line and an FFI host (Python's ctypes) use them:
 * each key's accepted values and the message for a bad one, unknown keys,
 * what only an owning object (mg_runtime_opts_new) takes, and a runtime
 * made from such an object. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_runtime.h"
#include "mg_test.h"

static char err[1024];

static int set(mg_runtime_opts *o, const char *k, const char *v) {
  err[0] = '\0';
  return mg_runtime_opts_set(o, k, v, err, sizeof err);
}

TEST(numbers_and_their_rules) {
  mg_runtime_opts o;
  mg_runtime_opts_init(&o);
  ASSERT_EQ(set(&o, "lua_mem", "32M"), 0);
  ASSERT_U64_EQ(o.lua_mem_max_bytes, 32u << 20);
  ASSERT_EQ(set(&o, "lua_mem", "0"), 0);
  ASSERT_U64_EQ(o.lua_mem_max_bytes, 0);
  ASSERT_EQ(set(&o, "lua_mem", "100K"), -EINVAL);
  ASSERT_STR_EQ(err, "invalid lua_mem '100K': at least 1M (or 0 for no cap)");
  ASSERT(set(&o, "lua_mem", "lots") < 0);
  ASSERT(strstr(err, "invalid lua_mem: invalid size \"lots\"") == err);
  ASSERT_EQ(set(&o, "lua_mem", "10%"), 0);
  ASSERT_GT(o.lua_mem_max_bytes, 1u << 20);

  ASSERT_EQ(set(&o, "cb_timeout_ms", "250"), 0);
  ASSERT_U64_EQ(o.cb_timeout_ms, 250);
  ASSERT_EQ(set(&o, "cb_timeout_ms", "604800001"), -EINVAL);
  ASSERT_STR_EQ(err, "invalid value '604800001' for cb_timeout_ms: expected "
                     "an integer from 0 to 604800000");
  for (const char *bad[] = {"", "-1", "+1", " 5", "5ms", "1e3", NULL},
                  **b = bad;
       *b; b++)
    ASSERT_EQ(set(&o, "setup_timeout_ms", *b), -EINVAL);
  ASSERT_EQ(set(&o, "cb_instructions", "18446744073709551615"), 0);
  ASSERT_U64_EQ(o.cb_instructions, UINT64_MAX);
  ASSERT_EQ(set(&o, "cb_instructions", "18446744073709551616"), -EINVAL);

  ASSERT_EQ(set(&o, "sandbox", "true"), 0);
  ASSERT_EQ(o.sandbox, 1);
  ASSERT_EQ(set(&o, "sandbox", "no"), 0);
  ASSERT_EQ(o.sandbox, 0);
  ASSERT_EQ(set(&o, "handle_signals", "maybe"), -EINVAL);
  ASSERT_STR_EQ(err, "invalid value 'maybe' for handle_signals: expected true "
                     "or false (1, 0, yes, no)");
}

TEST(unknown_keys_and_owned_only_keys) {
  mg_runtime_opts o;
  mg_runtime_opts_init(&o);
  ASSERT_EQ(set(&o, "lua_memory", "1G"), -EINVAL);
  ASSERT(
      strstr(err, "unknown runtime option 'lua_memory' (accepted: lua_mem,") ==
      err);
  ASSERT_EQ(set(&o, "cgroup_parent", "/tmp"), -EINVAL);
  ASSERT(strstr(err, "only options made by mg_runtime_opts_new") != NULL);
  ASSERT(o.cgroup_parent == NULL);
  ASSERT_EQ(mg_runtime_opts_set(NULL, "sandbox", "1", err, sizeof err),
            -EINVAL);
  ASSERT_EQ(mg_runtime_opts_set(&o, "sandbox", NULL, err, sizeof err), -EINVAL);
}

TEST(an_owning_object_copies_strings_lists_and_makes_its_logger) {
  mg_runtime_opts *o = mg_runtime_opts_new();
  ASSERT(o != NULL);
  ASSERT(o->logger != NULL); /* logs like mgrun by default */
  ASSERT_EQ(mg_logger_level(o->logger), MG_LOG_INFO);
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp");
  ASSERT_EQ(set(o, "allow_dir", dir), 0);
  ASSERT_EQ(set(o, "allow_dir", "/var/tmp"), 0);
  dir[1] = 'X'; /* the object has its own copy */
  ASSERT_STR_EQ(o->allow_dirs[0], "/tmp");
  ASSERT_STR_EQ(o->allow_dirs[1], "/var/tmp");
  ASSERT(o->allow_dirs[2] == NULL);
  ASSERT_EQ(set(o, "allow_spawn", "/bin/true"), 0);
  ASSERT_STR_EQ(o->allow_spawn[0], "/bin/true");
  ASSERT(o->allow_spawn[1] == NULL);
  ASSERT_EQ(set(o, "allow_spawn", ""), -EINVAL);
  ASSERT_STR_EQ(err, "allow_spawn needs a path, got an empty one");
  ASSERT_EQ(set(o, "log_level", "warn"), 0);
  ASSERT_EQ(mg_logger_level(o->logger), MG_LOG_WARN);
  ASSERT_EQ(set(o, "log_format", "json"), 0);
  ASSERT_EQ(mg_logger_format(o->logger), MG_LOG_JSON);
  ASSERT_EQ(mg_logger_level(o->logger), MG_LOG_WARN);
  ASSERT_EQ(set(o, "log_level", "loud"), -EINVAL);
  ASSERT_STR_EQ(
      err, "invalid log_level 'loud' (accepted: debug, info, warn, error)");
  ASSERT_EQ(set(o, "log_format", "xml"), -EINVAL);

  /* a sandboxed runtime from it: its allowed directories are the copies */
  ASSERT_EQ(set(o, "sandbox", "1"), 0);
  ASSERT_EQ(set(o, "log_level", "error"), 0);
  mg_runtime *rt = NULL;
  ASSERT_EQ(mg_runtime_new(o, &rt, err, sizeof err), 0);
  ASSERT_EQ(mg_runtime_load_string(
                rt,
                "local s = mg.store { name = 's' }\n"
                "assert(s:add { role = 'user', content = 'x' })\n"
                "assert(s:save('/tmp/mgrun-test-opts.snap'))\n"
                "local ok, e = s:save('/etc/mgrun-test-opts.snap')\n"
                "assert(not ok and e:find('does not allow'), e)\n",
                "=opts", err, sizeof err),
            0);
  remove("/tmp/mgrun-test-opts.snap");
  mg_runtime_free(rt);
  mg_runtime_opts_free(o);
  mg_runtime_opts_free(NULL);
}

int main(void) {
  RUN(numbers_and_their_rules);
  RUN(unknown_keys_and_owned_only_keys);
  RUN(an_owning_object_copies_strings_lists_and_makes_its_logger);
  return mg_test_report();
}
