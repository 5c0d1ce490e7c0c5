/* test_store_ffi.c — the flat entry points of mg/mg_ffi.h (add from
 * scalars, copies under the lock, ids, units, the probe as text) and the
 * shipped strategies in C of mg/mg_store_builtin.h. */
#include <errno.h>
#include <jansson.h>

#include "mg/mg.h"
#include "mg_test.h"

static mg_store *new_store(uint64_t max_messages, uint64_t max_total,
                           mg_store_on_full on_full,
                           const mg_store_builtin *b) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "ffi";
  o.limits.max_messages = max_messages;
  o.limits.max_total_size_bytes = max_total;
  o.on_full = on_full;
  if (b)
    mg_store_builtin_options(b, &o);
  mg_store *s = NULL;
  char err[256];
  if (mg_store_new(&o, &s, err, sizeof err) != 0) {
    fprintf(stderr, "mg_store_new: %s\n", err);
    return NULL;
  }
  return s;
}

/* add a message with role, group ("" none), pinned, priority, tokens */
static int64_t add(mg_store *s, const char *role, const char *content,
                   const char *group, int pinned, int64_t priority,
                   int64_t tokens) {
  mg_store_error e;
  return mg_store_add_flat(s, role, content, strlen(content), NULL, group,
                           pinned, priority, tokens, NULL, 0, &e);
}

/* The ids left, oldest first, as "1 2 5". */
static const char *ids_text(const mg_store *s) {
  static char buf[1024];
  uint64_t ids[128];
  size_t n = 0, off = 0;
  buf[0] = '\0';
  if (mg_store_ids(s, ids, 128, &n) != 0)
    return "(error)";
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%" PRIu64,
                            i ? " " : "", ids[i]);
  return buf;
}

static void check_ok(const mg_store *s) {
  char err[512] = "";
  int rc = mg_store_check(s, err, sizeof err);
  if (rc)
    fprintf(stderr, "check: %s\n", err);
  ASSERT_EQ(rc, 0);
}

/* ------------------------------------------------------------ add_flat */

TEST(add_flat_fields_and_copy) {
  mg_store *s = new_store(10, 1 << 20, MG_STORE_ON_FULL_ERROR, NULL);
  ASSERT(s);
  static const char content[] = "bin\0ary";
  static const char meta[] = "tool\0search\0call\0c1\0";
  mg_store_error e;
  int64_t id = mg_store_add_flat(s, "tool", content, sizeof content - 1, "web",
                                 "g1", 1, -3, 42, meta, sizeof meta - 1, &e);
  ASSERT_EQ(id, 1);
  ASSERT_EQ(add(s, NULL, "x", NULL, 0, 0, -1), 2); /* estimated: 1 token */

  char small[8];
  char buf[256];
  size_t need = 0;
  mg_store_msg m;
  ASSERT_EQ(mg_store_copy(s, 1, &m, small, sizeof small, &need), -ENOBUFS);
  ASSERT_EQ(need, 5 + 4 + 3 + (sizeof meta - 1) + 8);
  ASSERT_EQ(mg_store_copy(s, 1, &m, buf, sizeof buf, &need), 0);
  ASSERT(m.role >= buf && m.role < buf + sizeof buf);
  ASSERT_STR_EQ(m.role, "tool");
  ASSERT_STR_EQ(m.source, "web");
  ASSERT_STR_EQ(m.group, "g1");
  ASSERT_EQ(m.content_len, 7);
  ASSERT(memcmp(m.content, content, 7) == 0);
  ASSERT_EQ(m.pinned, 1);
  ASSERT_EQ(m.priority, -3);
  ASSERT_U64_EQ(m.tokens, 42);
  ASSERT_EQ(m.meta_count, 2);
  ASSERT_STR_EQ(mg_store_msg_meta_get(&m, "call"), "c1");
  ASSERT_U64_EQ(m.size_bytes,
                7 + 4 + 3 + 2 + (sizeof meta - 1) + MG_STORE_MSG_OVERHEAD);

  ASSERT_EQ(mg_store_copy_at(s, 1, &m, buf, sizeof buf, NULL), 0);
  ASSERT_U64_EQ(m.id, 2);
  ASSERT_U64_EQ(m.tokens, 1);
  ASSERT_STR_EQ(m.role, "");
  ASSERT_EQ(mg_store_copy_at(s, 2, &m, buf, sizeof buf, NULL), -ENOENT);
  ASSERT_EQ(mg_store_copy(s, 99, &m, buf, sizeof buf, NULL), -ENOENT);
  check_ok(s);
  mg_store_free(s);
}

TEST(add_flat_errors_leave_the_store_unchanged) {
  mg_store *s = new_store(2, 1 << 20, MG_STORE_ON_FULL_ERROR, NULL);
  ASSERT(s);
  mg_store_error e;
  static const char unterminated[] = {'k', '\0', 'v'};
  int64_t rc = mg_store_add_flat(s, "user", "x", 1, NULL, NULL, 0, 0, -1,
                                 unterminated, sizeof unterminated, &e);
  ASSERT_EQ(rc, -EINVAL);
  ASSERT_CONTAINS(e.message, "meta is malformed");
  static const char nokey_end[] = {'k'};
  ASSERT_EQ(mg_store_add_flat(s, "user", "x", 1, NULL, NULL, 0, 0, -1,
                              nokey_end, 1, &e),
            -EINVAL);
  ASSERT_CONTAINS(e.message, "not NUL-terminated");
  char many[33 * 4];
  for (int i = 0; i < 33; i++) {
    many[4 * i] = (char)('A' + i);
    many[4 * i + 1] = '\0';
    many[4 * i + 2] = 'v';
    many[4 * i + 3] = '\0';
  }
  ASSERT_EQ(mg_store_add_flat(s, "u", "x", 1, NULL, NULL, 0, 0, -1, many,
                              sizeof many, &e),
            -EINVAL);
  ASSERT_CONTAINS(e.message, "at most 32");
  static const char dup[] = "k\0a\0k\0b\0";
  ASSERT_EQ(mg_store_add_flat(s, "u", "x", 1, NULL, NULL, 0, 0, -1, dup,
                              sizeof dup - 1, &e),
            -EINVAL);
  ASSERT_CONTAINS(e.message, "appears twice");
  ASSERT_EQ(
      mg_store_add_flat(s, "\xff", "x", 1, NULL, NULL, 0, 0, -1, NULL, 0, &e),
      -EINVAL);
  ASSERT_CONTAINS(e.message, "UTF-8");
  ASSERT_EQ(add(s, "u", "a", NULL, 0, 0, -1), 1);
  ASSERT_EQ(add(s, "u", "b", NULL, 0, 0, -1), 2);
  rc = mg_store_add_flat(s, "u", "c", 1, NULL, NULL, 0, 0, -1, NULL, 0, &e);
  ASSERT_EQ(rc, MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_COUNT);
  ASSERT_U64_EQ(e.current, 2);
  ASSERT_U64_EQ(e.limit, 2);
  ASSERT_STR_EQ(e.message, "Message count 2 exceeds limit of 2");
  ASSERT_STR_EQ(ids_text(s), "1 2");
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.next_id, 3);
  check_ok(s);
  /* a NULL error is allowed */
  ASSERT_EQ(
      mg_store_add_flat(s, "u", "c", 1, NULL, NULL, 0, 0, -1, NULL, 0, NULL),
      MG_ELIMIT);
  mg_store_free(s);
}

TEST(ids_and_their_buffer) {
  mg_store *s = new_store(100, 1 << 20, MG_STORE_ON_FULL_ERROR, NULL);
  ASSERT(s);
  for (int i = 0; i < 5; i++)
    ASSERT_GT(add(s, "u", "m", NULL, 0, 0, -1), 0);
  uint64_t ids[5];
  size_t n = 0;
  ASSERT_EQ(mg_store_ids(s, ids, 4, &n), -ENOBUFS);
  ASSERT_EQ(n, 5);
  ASSERT_EQ(mg_store_remove(s, 3, NULL, 0), 0);
  ASSERT_EQ(mg_store_ids(s, ids, 4, &n), 0);
  ASSERT_EQ(n, 4);
  ASSERT_U64_EQ(ids[2], 4);
  mg_store_free(s);
}

/* ------------------------------------------------------------ units */

TEST(units_group_members_and_positions) {
  mg_store *s = new_store(100, 1 << 20, MG_STORE_ON_FULL_ERROR, NULL);
  ASSERT(s);
  ASSERT_EQ(add(s, "system", "sys", NULL, 1, 0, 10), 1);
  ASSERT_EQ(add(s, "assistant", "call", "t1", 0, 2, 5), 2);
  ASSERT_EQ(add(s, "user", "q", NULL, 0, 7, 1), 3);
  ASSERT_EQ(add(s, "tool", "res", "t1", 0, 4, 3), 4);
  ASSERT_EQ(add(s, "tool", "res2", "t2", 1, 0, 2), 5);
  mg_store_unit u[5];
  uint64_t of[5];
  size_t nu = 0;
  uint64_t nm = 0;
  ASSERT_EQ(mg_store_units(s, u, 4, of, 5, &nu, &nm), -ENOBUFS);
  ASSERT_U64_EQ(nm, 5);
  ASSERT_EQ(mg_store_units(s, u, 5, of, 4, &nu, &nm), -ENOBUFS);
  ASSERT_EQ(mg_store_units(s, u, 5, of, 5, &nu, &nm), 0);
  ASSERT_EQ(nu, 4);
  ASSERT_U64_EQ(u[0].id, 1);
  ASSERT_EQ(u[0].pinned, 1);
  ASSERT_EQ(u[0].group_len, 0);
  ASSERT_U64_EQ(u[1].id, 2); /* t1: messages 2 and 4 */
  ASSERT_U64_EQ(u[1].count, 2);
  ASSERT_U64_EQ(u[1].first, 1);
  ASSERT_U64_EQ(u[1].tokens, 8);
  ASSERT_EQ(u[1].priority, 4);
  ASSERT_U64_EQ(u[1].bytes, (9 + 4 + 2 + MG_STORE_MSG_OVERHEAD) +
                                (4 + 3 + 2 + MG_STORE_MSG_OVERHEAD));
  ASSERT_EQ(u[1].role_len, 9);
  ASSERT(memcmp(u[1].role, "assistant", 9) == 0);
  ASSERT_EQ(u[1].pinned, 0);
  ASSERT_U64_EQ(u[2].id, 3);
  ASSERT_U64_EQ(u[3].id, 5);
  ASSERT_EQ(u[3].pinned, 1);
  ASSERT_U64_EQ(of[0], 0);
  ASSERT_U64_EQ(of[1], 1);
  ASSERT_U64_EQ(of[2], 2);
  ASSERT_U64_EQ(of[3], 1);
  ASSERT_U64_EQ(of[4], 3);
  /* of is optional */
  ASSERT_EQ(mg_store_units(s, u, 5, NULL, 0, &nu, NULL), 0);
  ASSERT_EQ(nu, 4);
  mg_store_free(s);
}

/* ------------------------------------------------------------ probe */

TEST(probe_json_text_from_fixtures) {
  mg_probe_opts o = {0};
  o.paths.proc_root = mg_fixture("probe/limited/proc");
  o.paths.fs_root = mg_fixture("probe/limited/fs");
  o.skip_writable = 1;
  o.skip_rlimit = 1;
  char *text = NULL;
  size_t len = 0;
  char err[512];
  ASSERT_EQ(mg_probe_json_text(&o, &text, &len, err, sizeof err), 0);
  ASSERT(text);
  ASSERT_EQ(len, strlen(text));
  json_error_t je;
  json_t *doc = json_loads(text, 0, &je);
  ASSERT(doc);
  json_t *mem = json_object_get(doc, "memory");
  ASSERT(json_is_object(mem));
  ASSERT(json_integer_value(json_object_get(mem, "total")) ==
         16777216LL * 1024);
  json_decref(doc);
  mg_ffi_free(text);
  mg_ffi_free(NULL);
  o.paths.proc_root = "/nonexistent-proc";
  ASSERT_LT(mg_probe_json_text(&o, &text, &len, err, sizeof err), 0);
  ASSERT(text == NULL);
}

TEST(version_and_sizes) {
  ASSERT_STR_EQ(mg_ffi_version(), MG_VERSION);
  ASSERT_EQ(mg_ffi_sizeof("mg_store_msg"), sizeof(mg_store_msg));
  ASSERT_EQ(mg_ffi_sizeof("mg_store_options"), sizeof(mg_store_options));
  ASSERT_EQ(mg_ffi_sizeof("mg_cgroup_info"), sizeof(mg_cgroup_info));
  ASSERT_EQ(mg_ffi_sizeof("mg_rlimit_support"), sizeof(mg_rlimit_support));
  ASSERT_EQ(mg_ffi_sizeof("mg_store"), 0); /* opaque */
  ASSERT_EQ(mg_ffi_sizeof("nope"), 0);
  ASSERT_EQ(mg_ffi_sizeof(NULL), 0);
}

/* ------------------------------------------------------------ builtin */

TEST(builtin_parse) {
  mg_store_builtin b;
  char err[512];
  ASSERT_EQ(mg_store_builtin_parse("oldest", &b, err, sizeof err), 0);
  ASSERT_EQ(b.kind, MG_STRATEGY_OLDEST);
  ASSERT_EQ(mg_store_builtin_parse(" keep_last ( 200 ) ", &b, err, sizeof err),
            0);
  ASSERT_EQ(b.kind, MG_STRATEGY_KEEP_LAST);
  ASSERT_U64_EQ(b.n, 200);
  ASSERT_STR_EQ(b.name, "keep_last(200)");
  ASSERT_EQ(
      mg_store_builtin_parse("older_than(1.5, strict)", &b, err, sizeof err),
      0);
  ASSERT_EQ(b.kind, MG_STRATEGY_OLDER_THAN);
  ASSERT_DBL_NEAR(b.seconds, 1.5, 0);
  ASSERT_EQ(b.strict, 1);
  ASSERT_STR_EQ(b.name, "older_than(1.5)");
  ASSERT_EQ(mg_store_builtin_parse("token_budget(9223372036854775807)", &b, err,
                                   sizeof err),
            0);
  ASSERT_U64_EQ(b.n, MG_STORE_LIMIT_MAX);
  static const char *const bad[][2] = {
      {"", "unknown strategy"},
      {"newest", "unknown strategy"},
      {"keep_last", "missing (N)"},
      {"keep_last(-1)", "non-negative integer"},
      {"keep_last(1.5)", "expected ')'"},
      {"keep_last(9223372036854775808)", "up to 2^63-1"},
      {"keep_last(3", "expected ')'"},
      {"keep_last(3) x", "expected ')'"},
      {"oldest(3)", "takes no arguments"},
      {"older_than(nan)", "non-negative number"},
      {"older_than(5, lax)", "only be 'strict'"},
      {"token_budget()", "non-negative integer"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(mg_store_builtin_parse(bad[i][0], &b, err, sizeof err), -EINVAL);
    ASSERT_CONTAINS(err, bad[i][1]);
    ASSERT_CONTAINS(err, "accepted: oldest, keep_last(N)");
  }
  ASSERT_EQ(mg_store_builtin_parse(NULL, &b, err, sizeof err), -EINVAL);
}

/* A store at its count limit of 6 with a pinned system prompt, a group and
 * varied priorities; then one more add with on_full = prune. */
static mg_store *scenario(const char *spec) {
  static mg_store_builtin b;
  char err[256];
  if (mg_store_builtin_parse(spec, &b, err, sizeof err) != 0)
    return NULL;
  mg_store *s = new_store(6, 1 << 20, MG_STORE_ON_FULL_PRUNE, &b);
  if (!s)
    return NULL;
  add(s, "system", "prompt", NULL, 1, 9, -1);   /* 1 pinned */
  add(s, "assistant", "hello", NULL, 0, 5, -1); /* 2 */
  add(s, "user", "q1", NULL, 0, 1, -1);         /* 3 */
  add(s, "assistant", "call", "t", 0, 0, -1);   /* 4 group t */
  add(s, "tool", "result", "t", 0, 0, -1);      /* 5 group t */
  add(s, "user", "q2", NULL, 0, 3, -1);         /* 6 */
  return s;
}

TEST(builtin_strategies_choose_like_their_lua_twins) {
  static const char *const cases[][2] = {
      /* oldest unit that is not pinned: 2 */
      {"oldest", "1 3 4 5 6 7"},
      /* keep_last(2): 5 unpinned -> down to 2 at once (unit t is 2) */
      {"keep_last(2)", "1 6 7"},
      {"keep_last(10)", "1 3 4 5 6 7"},
      /* lowest priority: group t (0) first */
      {"lowest_priority_first", "1 2 3 6 7"},
      /* user_turn_start: 2 for need, then on to the next user turn (3) */
      {"user_turn_start", "1 3 4 5 6 7"},
      /* token_budget(3): estimated tokens 2 (pinned) + 2 + 1 + (1 + 2) + 1
       * = 9 held: evict until <= 3: 2 (2), 3 (1), t (3) -> 3 left */
      {"token_budget(3)", "1 6 7"},
      /* older_than(1000): nothing old; falls back on oldest */
      {"older_than(1000)", "1 3 4 5 6 7"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mg_store *s = scenario(cases[i][0]);
    ASSERT(s);
    int64_t id = add(s, "user", "q3", NULL, 0, 0, -1);
    if (id != 7)
      fprintf(stderr, "%s: add gave %" PRId64 "\n", cases[i][0], id);
    ASSERT_EQ(id, 7);
    if (strcmp(ids_text(s), cases[i][1]) != 0)
      fprintf(stderr, "%s: left %s, expected %s\n", cases[i][0], ids_text(s),
              cases[i][1]);
    ASSERT_STR_EQ(ids_text(s), cases[i][1]);
    check_ok(s);
    mg_store_free(s);
  }
}

TEST(builtin_older_than_with_a_clock) {
  mg_store_builtin b;
  char err[256];
  ASSERT_EQ(
      mg_store_builtin_parse("older_than(60, strict)", &b, err, sizeof err), 0);
  mg_store *s = new_store(3, 1 << 20, MG_STORE_ON_FULL_PRUNE, &b);
  ASSERT(s);
  add(s, "user", "a", NULL, 0, 0, -1);
  add(s, "user", "b", NULL, 0, 0, -1);
  add(s, "user", "c", NULL, 0, 0, -1);
  /* now: everything is fresh, strict refuses to fall back */
  mg_store_error e;
  int64_t rc =
      mg_store_add_flat(s, "u", "d", 1, NULL, NULL, 0, 0, -1, NULL, 0, &e);
  ASSERT_EQ(rc, MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "strategy 'older_than(60)' freed too little");
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_COUNT);
  ASSERT_STR_EQ(ids_text(s), "1 2 3");
  /* an hour later every message is older than 60 s: all go at once */
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, 3, &m), 0);
  b.now = m.time + 3600;
  ASSERT_EQ(add(s, "u", "d", NULL, 0, 0, -1),
            4); /* the refused add took no id */
  ASSERT_STR_EQ(ids_text(s), "4");
  check_ok(s);
  mg_store_free(s);
}

TEST(builtin_respects_pins_and_the_incoming_group) {
  mg_store_builtin b;
  char err[256];
  ASSERT_EQ(
      mg_store_builtin_parse("lowest_priority_first", &b, err, sizeof err), 0);
  mg_store *s = new_store(3, 1 << 20, MG_STORE_ON_FULL_PRUNE, &b);
  ASSERT(s);
  add(s, "system", "p", NULL, 1, -9, -1);   /* pinned, lowest priority */
  add(s, "assistant", "c", "g", 0, -5, -1); /* the incoming group */
  add(s, "user", "u", NULL, 0, 7, -1);
  ASSERT_EQ(add(s, "tool", "r", "g", 0, 0, -1), 4);
  ASSERT_STR_EQ(ids_text(s), "1 2 4");
  /* only the group is left to evict, and a member of it is arriving */
  mg_store_error e;
  int64_t rc =
      mg_store_add_flat(s, "tool", "r2", 2, NULL, "g", 0, 0, -1, NULL, 0, &e);
  ASSERT_EQ(rc, MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "freed too little");
  ASSERT_STR_EQ(ids_text(s), "1 2 4");
  /* set it on a live store */
  mg_store_builtin old;
  ASSERT_EQ(mg_store_builtin_parse("oldest", &old, err, sizeof err), 0);
  ASSERT_EQ(mg_store_builtin_set(s, &old), 0);
  ASSERT_EQ(add(s, "user", "x", NULL, 0, 0, -1), 5);
  ASSERT_STR_EQ(ids_text(s), "1 5"); /* the whole group went */
  check_ok(s);
  mg_store_free(s);
}

int main(void) {
  RUN(add_flat_fields_and_copy);
  RUN(add_flat_errors_leave_the_store_unchanged);
  RUN(ids_and_their_buffer);
  RUN(units_group_members_and_positions);
  RUN(probe_json_text_from_fixtures);
  RUN(version_and_sizes);
  RUN(builtin_parse);
  RUN(builtin_strategies_choose_like_their_lua_twins);
  RUN(builtin_older_than_with_a_clock);
  RUN(builtin_respects_pins_and_the_incoming_group);
  return mg_test_report();
}
