/* test_store.c — the bounded context store through its C API: the seed's
 * eight cases, each seed bug shown fixed, groups and pins, strategies that
 * fail, callbacks, the archive, snapshots, heap vs accounting, warnings. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg_test.h"
#include "test_store_util.h"

/* White-box access for the one test that corrupts a store on purpose. */
#include "core/mg__store.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
  return buf[i];
}

static mg_store *new_store(uint64_t max_messages, uint64_t max_msg,
                           uint64_t max_total) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "test";
  o.limits.max_messages = max_messages;
  o.limits.max_message_size_bytes = max_msg;
  o.limits.max_total_size_bytes = max_total;
  mg_store *s = NULL;
  char err[256];
  if (mg_store_new(&o, &s, err, sizeof err) != 0) {
    fprintf(stderr, "mg_store_new: %s\n", err);
    return NULL;
  }
  return s;
}

static void check_ok(const mg_store *s) {
  char err[512] = "";
  int rc = mg_store_check(s, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "check: %s\n", err);
  ASSERT_EQ(rc, 0);
}

static void ids_are(const mg_store *s, const uint64_t *ids, size_t n) {
  mg_store_iter it;
  mg_store_msg m;
  size_t i = 0;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(s, &it, &m) == 1) {
    ASSERT_LT(i, n);
    ASSERT_U64_EQ(m.id, ids[i]);
    ASSERT_EQ(it.position, i);
    i++;
  }
  ASSERT_EQ(i, n);
}

/* ============================================================ the seed */

TEST(seed_message_counts) {
  mg_store *s = new_store(10, 1048576, 104857600);
  ASSERT(s);
  uint64_t want = 0;
  for (int i = 0; i < 5; i++) {
    char c[32];
    snprintf(c, sizeof c, "message %d", i);
    ASSERT(add_text(s, "user", c));
    want += expect_size("user", strlen(c));
  }
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.message_count, 5);
  ASSERT_U64_EQ(mg_store_len(s), 5);
  ASSERT_U64_EQ(st.total_size_bytes, want);
  ASSERT_U64_EQ(st.largest_message_bytes, expect_size("user", 9));
  ASSERT_U64_EQ(st.max_messages, 10);
  ASSERT_U64_EQ(st.max_message_size_bytes, 1048576);
  ASSERT_U64_EQ(st.max_total_size_bytes, 104857600);
  ASSERT_U64_EQ(st.payload_bytes + st.overhead_bytes, st.total_size_bytes);
  ASSERT_U64_EQ(st.overhead_bytes, 5 * MG_STORE_MSG_OVERHEAD);
  check_ok(s);
  mg_store_free(s);
}

TEST(seed_utilisation_half) {
  mg_store *s = new_store(10, 1048576, 104857600);
  for (int i = 0; i < 5; i++)
    ASSERT(add_text(s, "user", "hello"));
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_DBL_NEAR(st.message_count_utilization, 0.5, 1e-12);
  ASSERT_DBL_NEAR(st.total_size_utilization,
                  (double)st.total_size_bytes / 104857600.0, 1e-12);
  ASSERT_EQ(st.near_message_limit, 0);
  ASSERT_EQ(st.near_size_limit, 0);
  mg_store_free(s);
}

TEST(seed_near_limit_at_8_of_10) {
  mg_store *s = new_store(10, 1048576, 104857600);
  for (int i = 0; i < 7; i++)
    ASSERT(add_text(s, "user", "x"));
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_EQ(st.near_message_limit, 0);
  ASSERT(add_text(s, "user", "x"));
  mg_store_get_stats(s, &st);
  ASSERT_DBL_NEAR(st.message_count_utilization, 0.8, 1e-12);
  ASSERT_EQ(st.near_message_limit, 1);
  mg_store_free(s);
}

TEST(seed_count_error_3_of_3) {
  mg_store *s = new_store(3, 1048576, 104857600);
  for (int i = 0; i < 3; i++)
    ASSERT(add_text(s, "user", "x"));
  mg_store_input in = msg_text("user", "one too many");
  mg_store_error e;
  uint64_t id = 99;
  ASSERT_EQ(mg_store_add(s, &in, &id, &e), MG_ELIMIT);
  ASSERT_EQ(id, 99);
  ASSERT_EQ(e.code, MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_COUNT);
  ASSERT_STR_EQ(mg_store_limit_name(e.limit_type), "message_count");
  ASSERT_U64_EQ(e.current, 3);
  ASSERT_U64_EQ(e.limit, 3);
  ASSERT_STR_EQ(e.message, "Message count 3 exceeds limit of 3");
  ASSERT_CONTAINS(e.details, "store 'test'");
  ASSERT_U64_EQ(mg_store_len(s), 3);
  mg_store_free(s);
}

TEST(seed_size_error_50000_of_1024) {
  mg_store *s = new_store(10, 1024, 104857600);
  char *big = malloc(50000);
  memset(big, 'a', 50000);
  mg_store_input in = {0};
  in.content = big;
  in.content_len = 50000;
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_SIZE);
  ASSERT_STR_EQ(mg_store_limit_name(e.limit_type), "message_size");
  /* size = the bytes held + the documented per-message overhead */
  ASSERT_U64_EQ(e.current, 50000 + MG_STORE_MSG_OVERHEAD);
  ASSERT_U64_EQ(e.limit, 1024);
  char want[128];
  snprintf(want, sizeof want, "Message size %u exceeds limit of 1024",
           50000 + MG_STORE_MSG_OVERHEAD);
  ASSERT_STR_EQ(e.message, want);
  ASSERT_U64_EQ(mg_store_len(s), 0);
  /* the largest message that fits: 1024 - overhead bytes */
  in.content_len = 1024 - MG_STORE_MSG_OVERHEAD;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  in.content_len++;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  free(big);
  mg_store_free(s);
}

TEST(seed_prune_3_of_8) {
  mg_store *s = new_store(10, 1048576, 104857600);
  uint64_t ids[8];
  for (int i = 0; i < 8; i++) {
    char c[16];
    snprintf(c, sizeof c, "m%d", i);
    ids[i] = add_text(s, "user", c);
  }
  uint64_t removed = 0;
  ASSERT_EQ(mg_store_prune(s, 3, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 5);
  /* the seed's messages 5, 6, 7 (0-based) = the newest three */
  ids_are(s, ids + 5, 3);
  mg_store_msg m;
  ASSERT_EQ(mg_store_at(s, 0, &m), 0);
  ASSERT_STR_EQ((const char *)m.content, "m5");
  check_ok(s);
  mg_store_free(s);
}

TEST(seed_prune_default_9_of_10) {
  mg_store *s = new_store(10, 1048576, 104857600);
  for (int i = 0; i < 9; i++)
    ASSERT(add_text(s, "user", "x"));
  uint64_t removed = 0;
  ASSERT_EQ(mg_store_prune(s, MG_STORE_PRUNE_DEFAULT, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 4);
  ASSERT_U64_EQ(mg_store_len(s), 5);
  mg_store_free(s);
}

TEST(seed_custom_limits_kept) {
  mg_store *s = new_store(500, 2097152, 52428800);
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  ASSERT_U64_EQ(l.max_messages, 500);
  ASSERT_U64_EQ(l.max_message_size_bytes, 2097152);
  ASSERT_U64_EQ(l.max_total_size_bytes, 52428800);
  ASSERT_DBL_NEAR(l.warn_at, 0.8, 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.max_messages, 500);
  ASSERT_U64_EQ(st.max_message_size_bytes, 2097152);
  ASSERT_U64_EQ(st.max_total_size_bytes, 52428800);
  mg_store_free(s);
  /* defaults */
  mg_store_options o;
  mg_store_options_init(&o);
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  mg_store_get_limits(s, &l);
  ASSERT_U64_EQ(l.max_messages, 1000);
  ASSERT_U64_EQ(l.max_message_size_bytes, 1048576);
  ASSERT_U64_EQ(l.max_total_size_bytes, 104857600);
  ASSERT_U64_EQ(l.max_tokens, 0);
  ASSERT_STR_EQ(mg_store_name(s), "store");
  mg_store_free(s);
}

TEST(limits_below_minimum) {
  mg_store_options o;
  mg_store *s = NULL;
  char err[256];
  mg_store_options_init(&o);
  o.limits.max_message_size_bytes = 512;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  ASSERT_STR_EQ(err, "max_message_size 512 is below the minimum 1024");
  ASSERT(s == NULL);
  mg_store_options_init(&o);
  o.limits.max_messages = 0;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  ASSERT_STR_EQ(err, "max_messages 0 is below the minimum 1");
  mg_store_options_init(&o);
  o.limits.max_total_size_bytes = 1023;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  ASSERT_STR_EQ(err, "max_total_size 1023 is below the minimum 1024");
  mg_store_options_init(&o);
  o.limits.warn_at = 0;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "warn_at 0");
  o.limits.warn_at = 1.5;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  o.limits.warn_at = NAN;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  mg_store_options_init(&o);
  o.limits.max_messages = UINT64_MAX;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "above the maximum");
  /* minimums themselves are fine, and warn_at 1 */
  mg_store_options_init(&o);
  o.limits.max_messages = 1;
  o.limits.max_message_size_bytes = 1024;
  o.limits.max_total_size_bytes = 1024;
  o.limits.warn_at = 1.0;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), 0);
  /* set_limits validates the same way */
  mg_store_limits l = o.limits;
  l.max_message_size_bytes = 100;
  ASSERT_EQ(mg_store_set_limits(s, &l, err, sizeof err), -EINVAL);
  ASSERT_STR_EQ(err, "max_message_size 100 is below the minimum 1024");
  mg_store_free(s);
  /* a bad name */
  mg_store_options_init(&o);
  o.name = "";
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), -EINVAL);
}

/* ============================================================ seed bugs */

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  sbuf b = {0};
  char chunk[4096];
  size_t n;
  sb_add(&b, "%s", "");
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    for (size_t i = 0; i < n; i++)
      sb_add(&b, "%c", chunk[i] ? chunk[i] : '@');
  fclose(f);
  *len = b.len;
  return b.p;
}

/* The seed appends, then removes: a rejected add must change nothing —
 * not the messages, not the totals, not the next id, not the snapshot. */
static void rejected(mg_store *s, const mg_store_input *in, int want_rc,
                     mg_store_limit_type want_type, const char *want_msg) {
  char *before = store_dump(s);
  const char *p1 = tmp_path("atomic1.json"), *p2 = tmp_path("atomic2.json");
  ASSERT_EQ(mg_store_save(s, p1, NULL, 0), 0);
  mg_store_error e;
  uint64_t id = 12345;
  ASSERT_EQ(mg_store_add(s, in, &id, &e), want_rc);
  ASSERT_U64_EQ(id, 12345);
  ASSERT_EQ(e.code, want_rc);
  ASSERT_EQ(e.limit_type, want_type);
  ASSERT_CONTAINS(e.message, want_msg);
  char *after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  ASSERT_EQ(mg_store_save(s, p2, NULL, 0), 0);
  size_t l1, l2;
  char *f1 = slurp(p1, &l1), *f2 = slurp(p2, &l2);
  ASSERT(f1 && f2);
  ASSERT_EQ(l1, l2);
  ASSERT_STR_EQ(f1, f2);
  free(f1);
  free(f2);
  free(before);
  free(after);
  check_ok(s);
}

TEST(bug_add_is_atomic) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "atomic";
  o.limits.max_messages = 4;
  o.limits.max_message_size_bytes = 2048;
  o.limits.max_total_size_bytes = 4096;
  o.limits.max_tokens = 1000;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  mg_store_input sys = msg_text("system", "be brief");
  sys.pinned = 1;
  ASSERT_EQ(mg_store_add(s, &sys, NULL, NULL), 0);
  uint64_t hello = add_text(s, "user", "hello");
  ASSERT(add_text(s, "assistant", "hi"));
  static char big[1700];
  memset(big, 'b', sizeof big);
  mg_store_input bi = {0};
  bi.content = big;
  bi.content_len = sizeof big;
  bi.has_tokens = 1;
  bi.tokens = 1;
  ASSERT_EQ(mg_store_add(s, &bi, NULL, NULL), 0); /* 4 of 4 */
  rejected(s, &bi, MG_ELIMIT, MG_STORE_LIMIT_MESSAGE_COUNT,
           "Message count 4 exceeds limit of 4");
  ASSERT_EQ(mg_store_remove(s, hello, NULL, 0), 0); /* 3 of 4 */
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  char want[128];
  snprintf(want, sizeof want, "Total size %" PRIu64 " exceeds limit of 4096",
           st.total_size_bytes + sizeof big + MG_STORE_MSG_OVERHEAD);
  rejected(s, &bi, MG_ELIMIT, MG_STORE_LIMIT_TOTAL_SIZE, want);
  mg_store_input tk = msg_text("user", "t");
  tk.has_tokens = 1;
  tk.tokens = 999;
  snprintf(want, sizeof want, "Token count %" PRIu64 " exceeds limit of 1000",
           st.total_tokens + 999);
  rejected(s, &tk, MG_ELIMIT, MG_STORE_LIMIT_TOKENS, want);
  static char huge[3000];
  mg_store_input hi = {0};
  hi.content = huge;
  hi.content_len = sizeof huge;
  rejected(s, &hi, MG_ELIMIT, MG_STORE_LIMIT_MESSAGE_SIZE,
           "Message size 3256 exceeds limit of 2048");
  mg_store_input bad = msg_text("\xff\xfe", "x");
  rejected(s, &bad, -EINVAL, MG_STORE_LIMIT_NONE, "role is not valid UTF-8");
  /* on_full = prune with nothing evictable but pinned: still unchanged */
  ASSERT_EQ(mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE), 0);
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  l.max_total_size_bytes = 1024;
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  mg_store_input one = msg_text("user", "this will not fit next to the pin");
  ASSERT_EQ(mg_store_clear(s, NULL), 0);
  ASSERT_EQ(mg_store_add(s, &sys, NULL, NULL), 0);
  ASSERT_EQ(mg_store_add(s, &sys, NULL, NULL), 0);
  ASSERT_EQ(mg_store_add(s, &sys, NULL, NULL), 0);
  rejected(s, &one, MG_ELIMIT, MG_STORE_LIMIT_TOTAL_SIZE,
           "pinned messages alone hold");
  /* the next id was never consumed by a rejected add */
  mg_store_get_stats(s, &st);
  uint64_t id = 0;
  ASSERT_EQ(mg_store_remove(s, st.next_id - 1, NULL, 0), 0);
  ASSERT_EQ(mg_store_add(s, &one, &id, NULL), 0);
  ASSERT_U64_EQ(id, st.next_id);
  ASSERT_U64_EQ(st.rejected_count, 6);
  check_ok(s);
  mg_store_free(s);
  unlink(tmp_path("atomic1.json"));
  unlink(tmp_path("atomic2.json"));
}

TEST(bug_prune_zero_reports_true_count) {
  mg_store *s = new_store(10, 1048576, 104857600);
  mg_store_input sys = msg_text("system", "rules");
  sys.pinned = 1;
  uint64_t pin1, pin2;
  ASSERT_EQ(mg_store_add(s, &sys, &pin1, NULL), 0);
  for (int i = 0; i < 4; i++)
    ASSERT(add_text(s, "user", "x"));
  ASSERT_EQ(mg_store_add(s, &sys, &pin2, NULL), 0);
  ASSERT_U64_EQ(mg_store_len(s), 6);
  uint64_t removed = 77;
  ASSERT_EQ(mg_store_prune(s, 0, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 4); /* not 6: the pinned ones stay */
  uint64_t want[] = {pin1, pin2};
  ids_are(s, want, 2);
  ASSERT_EQ(mg_store_prune(s, 0, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 0);
  /* keep_count above the count removes nothing */
  ASSERT_EQ(mg_store_prune(s, 100, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.evicted_count, 4);
  check_ok(s);
  mg_store_free(s);
}

TEST(bug_stats_above_100_percent) {
  mg_store *s = new_store(10, 4096, 1048576);
  for (int i = 0; i < 8; i++)
    ASSERT(add_text(s, "user", "twelve bytes"));
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  l.max_messages = 4;
  l.max_total_size_bytes = 1024;
  l.max_message_size_bytes = 1024;
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_DBL_NEAR(st.message_count_utilization, 2.0, 1e-12);
  ASSERT(st.total_size_utilization > 2.0);
  ASSERT_EQ(st.near_message_limit, 1);
  ASSERT_EQ(st.near_size_limit, 1);
  check_ok(s); /* over the lowered limits is not corruption */
  mg_store_error e;
  mg_store_input in = msg_text("user", "x");
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.message, "Message count 8 exceeds limit of 4");
  /* prune mode evicts down to the new limits */
  ASSERT_EQ(mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE), 0);
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  mg_store_get_stats(s, &st);
  ASSERT(st.message_count <= 4);
  ASSERT(st.total_size_bytes <= 1024);
  check_ok(s);
  mg_store_free(s);
}

static uint64_t est_calls;
static int counting_estimator(void *ud, const mg_store_input *in,
                              uint64_t *tokens, char *err, size_t err_len) {
  (void)ud;
  (void)err;
  (void)err_len;
  est_calls++;
  *tokens = in->content_len / 3 + 1;
  return 0;
}

/* The seed recounts every message on every add: ours counts each message
 * once, at insert, and keeps the totals incrementally. */
TEST(bug_no_recount) {
  counting_alloc ca = {0};
  mg_store_alloc al = ca_make(&ca);
  mg_store_options o;
  mg_store_options_init(&o);
  o.alloc = &al;
  o.estimate_tokens = counting_estimator;
  o.limits.max_messages = 100;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  est_calls = 0;
  uint64_t tokens = 0;
  for (int i = 0; i < 100; i++) {
    char c[64];
    snprintf(c, sizeof c, "message number %d", i);
    ASSERT(add_text(s, "user", c));
    tokens += strlen(c) / 3 + 1;
  }
  ASSERT_U64_EQ(est_calls, 100);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.total_tokens, tokens);
  /* steady state at the limit: each add is one allocation and one free,
   * one estimator call, and no table work */
  size_t m0 = ca.mallocs, r0 = ca.reallocs, f0 = ca.frees;
  for (int i = 0; i < 1000; i++)
    ASSERT(add_text(s, "user", "steady"));
  ASSERT_EQ(ca.mallocs - m0, 1000);
  ASSERT_EQ(ca.frees - f0, 1000);
  ASSERT_EQ(ca.reallocs - r0, 0);
  ASSERT_U64_EQ(est_calls, 1100);
  /* eviction, prune, stats, check: no estimator call, no allocation */
  m0 = ca.mallocs;
  ASSERT_EQ(mg_store_prune(s, 10, NULL, NULL, 0), 0);
  mg_store_get_stats(s, &st);
  check_ok(s);
  ASSERT_U64_EQ(est_calls, 1100);
  ASSERT_EQ(ca.mallocs - m0, 0);
  ASSERT_U64_EQ(st.total_size_bytes, sum_sizes(s, NULL));
  /* given tokens are never estimated */
  mg_store_input in = msg_text("user", "abc");
  in.has_tokens = 1;
  in.tokens = 42;
  uint64_t id;
  ASSERT_EQ(mg_store_add(s, &in, &id, NULL), 0);
  ASSERT_U64_EQ(est_calls, 1100);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, id, &m), 0);
  ASSERT_U64_EQ(m.tokens, 42);
  mg_store_free(s);
  ASSERT_EQ(ca.live, 0);
  ASSERT_EQ(ca.blocks, 0);
  ASSERT_EQ(ca.size_mismatch, 0);
}

TEST(default_estimator_ceil_quarter) {
  mg_store *s = new_store(10, 1048576, 104857600);
  const char *c[] = {"", "a", "abcd", "abcde", "abcdefgh"};
  uint64_t want[] = {0, 1, 1, 2, 2};
  for (int i = 0; i < 5; i++) {
    mg_store_input in = msg_text("user", c[i]);
    uint64_t id;
    ASSERT_EQ(mg_store_add(s, &in, &id, NULL), 0);
    mg_store_msg m;
    ASSERT_EQ(mg_store_get(s, id, &m), 0);
    ASSERT_U64_EQ(m.tokens, want[i]);
  }
  mg_store_free(s);
}

/* ============================================================ groups, pins */

static uint64_t add_g(mg_store *s, const char *role, const char *group,
                      int pinned) {
  mg_store_input in = msg_text(role, "payload");
  in.group = group;
  in.pinned = pinned;
  uint64_t id = 0;
  mg_store_error e;
  if (mg_store_add(s, &in, &id, &e) != 0) {
    fprintf(stderr, "add_g: %s\n", e.message);
    return 0;
  }
  return id;
}

static int has_id(const mg_store *s, uint64_t id) {
  mg_store_msg m;
  return mg_store_get(s, id, &m) == 0;
}

TEST(oldest_evicts_whole_groups_skips_pinned) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 6;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  uint64_t sys = add_g(s, "system", NULL, 1);
  uint64_t call = add_g(s, "assistant", "call_1", 0);
  uint64_t u = add_g(s, "user", NULL, 0);
  uint64_t r1 = add_g(s, "tool", "call_1", 0);
  uint64_t r2 = add_g(s, "tool", "call_1", 0);
  uint64_t u2 = add_g(s, "user", NULL, 0);
  ASSERT_U64_EQ(mg_store_len(s), 6);
  /* one more: the oldest unpinned is the call; its results go with it */
  uint64_t n = add_g(s, "user", NULL, 0);
  ASSERT(n);
  ASSERT(has_id(s, sys));
  ASSERT(!has_id(s, call) && !has_id(s, r1) && !has_id(s, r2));
  ASSERT(has_id(s, u) && has_id(s, u2));
  ASSERT_U64_EQ(mg_store_len(s), 4);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.evicted_count, 3);
  ASSERT_U64_EQ(st.group_count, 0);
  check_ok(s);
  mg_store_free(s);
}

TEST(group_with_pinned_member_never_evicted) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 4;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  uint64_t a = add_g(s, "assistant", "g", 0);
  uint64_t b = add_g(s, "tool", "g", 1); /* pinned member */
  uint64_t c = add_g(s, "user", NULL, 0);
  uint64_t d = add_g(s, "user", NULL, 0);
  uint64_t e = add_g(s, "user", NULL, 0);
  ASSERT(e);
  ASSERT(has_id(s, a) && has_id(s, b));
  ASSERT(!has_id(s, c) && has_id(s, d));
  /* prune(0): the group with a pinned member stays whole */
  uint64_t removed;
  ASSERT_EQ(mg_store_prune(s, 0, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 2);
  uint64_t want[] = {a, b};
  ids_are(s, want, 2);
  /* now only the pinned group is left and the store holds 2 of 4: adding
   * three more fails on the fourth... no, on the third: 2 + 2 = 4 */
  ASSERT(add_g(s, "user", NULL, 0));
  ASSERT(add_g(s, "user", NULL, 0));
  ASSERT(add_g(s, "user", NULL, 0)); /* evicts one plain message */
  ASSERT(has_id(s, a) && has_id(s, b));
  check_ok(s);
  mg_store_free(s);
}

TEST(pinned_alone_leave_no_room) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 2;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  ASSERT(add_g(s, "system", NULL, 1));
  ASSERT(add_g(s, "system", NULL, 1));
  char *before = store_dump(s);
  mg_store_input in = msg_text("user", "x");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_COUNT);
  ASSERT_STR_EQ(e.message, "Message count 2 exceeds limit of 2: pinned "
                           "messages alone leave no room (2 pinned)");
  char *after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  free(before);
  free(after);
  /* a group holding a pinned member blocks the strategy, not the check */
  mg_store_free(s);
  mg_store_options_init(&o);
  o.limits.max_messages = 2;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  ASSERT(add_g(s, "assistant", "g", 0));
  ASSERT(add_g(s, "tool", "g", 1));
  before = store_dump(s);
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "Message count 2 exceeds limit of 2: strategy "
                             "'oldest' could free only 0 messages");
  after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  free(before);
  free(after);
  check_ok(s);
  mg_store_free(s);
}

TEST(prune_keeps_group_straddling_boundary) {
  mg_store *s = new_store(20, 1048576, 104857600);
  uint64_t a = add_g(s, "user", NULL, 0);
  uint64_t call = add_g(s, "assistant", "c1", 0);
  uint64_t b = add_g(s, "user", NULL, 0);
  uint64_t par = add_g(s, "assistant", "c2", 0); /* parallel call c2 */
  uint64_t r1 = add_g(s, "tool", "c1", 0);
  uint64_t r2 = add_g(s, "tool", "c2", 0);
  uint64_t r3 = add_g(s, "tool", "c2", 0);
  uint64_t d = add_g(s, "user", NULL, 0);
  /* keep the newest 2 (r3, d): c2 straddles, so par and r2 stay too;
   * c1 lies wholly before the boundary: gone with a and b */
  uint64_t removed;
  ASSERT_EQ(mg_store_prune(s, 2, &removed, NULL, 0), 0);
  ASSERT_U64_EQ(removed, 4);
  uint64_t want[] = {par, r2, r3, d};
  ids_are(s, want, 4);
  ASSERT(!has_id(s, a) && !has_id(s, b) && !has_id(s, call) && !has_id(s, r1));
  check_ok(s);
  mg_store_free(s);
}

TEST(remove_is_one_id_clear_is_all) {
  mg_store *s = new_store(20, 1048576, 104857600);
  uint64_t sys = add_g(s, "system", NULL, 1);
  uint64_t c = add_g(s, "assistant", "g", 0);
  uint64_t r = add_g(s, "tool", "g", 0);
  char err[128];
  ASSERT_EQ(mg_store_remove(s, c, err, sizeof err), 0);
  ASSERT(has_id(s, r)); /* explicit: only that id */
  ASSERT(has_id(s, sys));
  ASSERT_EQ(mg_store_remove(s, c, err, sizeof err), -ENOENT);
  ASSERT_CONTAINS(err, "no message");
  check_ok(s);
  ASSERT_EQ(mg_store_remove(s, sys, NULL, 0), 0); /* pinned: explicit */
  ASSERT(add_g(s, "system", NULL, 1));
  uint64_t removed;
  ASSERT_EQ(mg_store_clear(s, &removed), 0);
  ASSERT_U64_EQ(removed, 2);
  ASSERT_U64_EQ(mg_store_len(s), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.total_size_bytes, 0);
  ASSERT_U64_EQ(st.largest_message_bytes, 0);
  ASSERT_U64_EQ(st.removed_count, 4);
  ASSERT_U64_EQ(st.evicted_count, 0);
  check_ok(s);
  uint64_t id = add_g(s, "user", NULL, 0);
  ASSERT_U64_EQ(id, 5); /* ids are never reused */
  mg_store_free(s);
}

/* ============================================================ strategies */

typedef enum {
  ST_ERROR,
  ST_PINNED,
  ST_UNKNOWN,
  ST_TOO_LITTLE,
  ST_REPL_TOO_BIG,
  ST_REPL_OVER_MAX,
  ST_SUMMARY,
  ST_MUTATE,
  ST_TWO_REPL
} st_mode;

typedef struct st_ctx {
  st_mode mode;
  int calls;
  int busy_seen; /* mutations refused with MG_EBUSY */
  int reads_ok;  /* reads that worked */
  mg_store_need need;
} st_ctx;

static int test_strategy(void *ud, const mg_store *view,
                         const mg_store_need *need, mg_store_plan *plan,
                         char *err, size_t err_len) {
  st_ctx *c = ud;
  c->calls++;
  c->need = *need;
  mg_store_msg m;
  switch (c->mode) {
  case ST_ERROR:
    snprintf(err, err_len, "summarizer is down");
    return MG_ESTRATEGY;
  case ST_PINNED:
    mg_store_at(view, 0, &m); /* the pinned system prompt */
    return mg_store_plan_evict(plan, m.id) == MG_EPINNED ? 0 : -1;
  case ST_UNKNOWN:
    mg_store_plan_evict(plan, 123456); /* ignore the error: still refused */
    return 0;
  case ST_TOO_LITTLE:
    return 0; /* evicts nothing */
  case ST_REPL_TOO_BIG: {
    /* evict one message, replace it with a larger one */
    mg_store_at(view, 1, &m);
    mg_store_plan_evict(plan, m.id);
    static char big[900];
    memset(big, 's', sizeof big);
    mg_store_input r = {0};
    r.role = "summary";
    r.content = big;
    r.content_len = sizeof big;
    return mg_store_plan_replace(plan, &r);
  }
  case ST_REPL_OVER_MAX: {
    mg_store_at(view, 1, &m);
    mg_store_plan_evict(plan, m.id);
    static char huge[(1 << 20) + 1];
    mg_store_input r = {0};
    r.content = huge;
    r.content_len = sizeof huge;
    int rc = mg_store_plan_replace(plan, &r);
    return rc == MG_ELIMIT ? 0 : -1; /* the plan stays poisoned */
  }
  case ST_SUMMARY: {
    /* evict the two oldest unpinned, insert a summary */
    mg_store_iter it;
    mg_store_iter_init(view, &it, MG_STORE_OLDEST_FIRST);
    int n = 0;
    while (n < 2 && mg_store_iter_next(view, &it, &m) == 1)
      if (!m.pinned) {
        mg_store_plan_evict(plan, m.id);
        n++;
      }
    mg_store_input r = msg_text("summary", "s");
    return mg_store_plan_replace(plan, &r);
  }
  case ST_MUTATE: {
    mg_store *s = (mg_store *)view; /* a strategy that tries anyway */
    mg_store_input in = msg_text("user", "sneaky");
    if (mg_store_add(s, &in, NULL, NULL) == MG_EBUSY)
      c->busy_seen++;
    if (mg_store_remove(s, 1, NULL, 0) == MG_EBUSY)
      c->busy_seen++;
    if (mg_store_prune(s, 0, NULL, NULL, 0) == MG_EBUSY)
      c->busy_seen++;
    if (mg_store_clear(s, NULL) == MG_EBUSY)
      c->busy_seen++;
    mg_store_limits l;
    mg_store_get_limits(view, &l);
    if (mg_store_set_limits(s, &l, NULL, 0) == MG_EBUSY)
      c->busy_seen++;
    mg_store_need nd = {1, 1, 0, MG_STORE_LIMIT_NONE};
    if (mg_store_make_room(s, &nd, NULL, NULL) == MG_EBUSY)
      c->busy_seen++;
    mg_store_free(s); /* a no-op from inside */
    /* reads work */
    mg_store_stats st;
    mg_store_get_stats(view, &st);
    if (st.message_count == mg_store_len(view))
      c->reads_ok++;
    if (mg_store_at(view, 1, &m) == 0 && mg_store_get(view, m.id, &m) == 0)
      c->reads_ok++;
    char e[128];
    if (mg_store_check(view, e, sizeof e) == 0)
      c->reads_ok++;
    mg_store_plan_evict(plan, m.id);
    return 0;
  }
  case ST_TWO_REPL: {
    mg_store_at(view, 1, &m);
    mg_store_plan_evict(plan, m.id);
    mg_store_input r = msg_text("s", "1");
    mg_store_plan_replace(plan, &r);
    return mg_store_plan_replace(plan, &r) == -EINVAL ? 0 : -1;
  }
  }
  return -1;
}

static mg_store *strategy_store(st_ctx *c, uint64_t max_messages) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "strat";
  o.limits.max_messages = max_messages;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  o.strategy = test_strategy;
  o.strategy_ud = c;
  o.strategy_name = "test";
  mg_store *s = NULL;
  if (mg_store_new(&o, &s, NULL, 0) != 0)
    return NULL;
  mg_store_input sys = msg_text("system", "rules");
  sys.pinned = 1;
  mg_store_add(s, &sys, NULL, NULL);
  for (uint64_t i = 1; i < max_messages; i++)
    add_text(s, "user", "0123456789");
  return s;
}

static void strategy_fails(st_mode mode, int want_code, const char *want_msg) {
  st_ctx c = {mode, 0, 0, 0, {0}};
  mg_store *s = strategy_store(&c, 4);
  ASSERT(s);
  char *before = store_dump(s);
  mg_store_input in = msg_text("user", "new");
  mg_store_error e;
  int rc = mg_store_add(s, &in, NULL, &e);
  if (rc != want_code)
    fprintf(stderr, "got %d (%s)\n", rc, e.message);
  ASSERT_EQ(rc, want_code);
  ASSERT_EQ(c.calls, 1);
  ASSERT_U64_EQ(c.need.count, 1);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_COUNT);
  ASSERT_CONTAINS(e.message, "Message count 4 exceeds limit of 4: ");
  ASSERT_CONTAINS(e.message, want_msg);
  char *after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  check_ok(s);
  /* still usable: the built-in strategy makes room */
  ASSERT_EQ(mg_store_set_strategy(s, NULL, NULL, NULL), 0);
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  ASSERT_U64_EQ(mg_store_len(s), 4);
  check_ok(s);
  free(before);
  free(after);
  mg_store_free(s);
}

TEST(strategy_error_changes_nothing) {
  strategy_fails(ST_ERROR, MG_ESTRATEGY,
                 "strategy 'test' failed: summarizer is down");
}
TEST(strategy_pinned_id_refused) {
  strategy_fails(ST_PINNED, MG_EPINNED,
                 "strategy 'test' chose message 1, which is pinned");
}
TEST(strategy_unknown_id_refused) {
  strategy_fails(ST_UNKNOWN, MG_ESTRATEGY,
                 "chose message 123456, which is not in the store");
}
TEST(strategy_too_little_refused) {
  strategy_fails(ST_TOO_LITTLE, MG_ESTRATEGY,
                 "strategy 'test' freed too little: 0 messages of the 1 "
                 "needed");
}
TEST(strategy_replacement_counts_against_freed) {
  /* evicting 1 and inserting 1 frees no message at all */
  strategy_fails(ST_REPL_TOO_BIG, MG_ESTRATEGY,
                 "freed too little: 1 message of the 2 needed (its "
                 "replacement included)");
}
TEST(strategy_replacement_over_max_size) {
  strategy_fails(ST_REPL_OVER_MAX, MG_ELIMIT, "gave a replacement whose size");
}
TEST(strategy_two_replacements_refused) {
  strategy_fails(ST_TWO_REPL, -EINVAL, "more than one replacement");
}

TEST(strategy_replacement_takes_earliest_place) {
  st_ctx c = {ST_SUMMARY, 0, 0, 0, {0}};
  mg_store *s = strategy_store(&c, 5); /* ids 1 (pinned) .. 5 */
  ASSERT(s);
  uint64_t id = 0;
  mg_store_input in = msg_text("user", "new");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, &id, &e), 0);
  /* 2 and 3 evicted, the summary (id 6) in their place, new is 7 */
  ASSERT_U64_EQ(id, 7);
  uint64_t want[] = {1, 6, 4, 5, 7};
  ids_are(s, want, 5);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, 6, &m), 0);
  ASSERT_STR_EQ(m.role, "summary");
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.replaced_count, 1);
  ASSERT_U64_EQ(st.evicted_count, 2);
  check_ok(s);
  /* explicit make_room with the same strategy: evicts 2, inserts 1 */
  mg_store_need nd = {0, 1, 0, MG_STORE_LIMIT_NONE};
  uint64_t removed = 0;
  ASSERT_EQ(mg_store_make_room(s, &nd, &removed, &e), 0);
  ASSERT_U64_EQ(removed, 2);
  ASSERT_U64_EQ(mg_store_len(s), 4);
  check_ok(s);
  mg_store_free(s);
}

TEST(mutation_inside_strategy_refused) {
  st_ctx c = {ST_MUTATE, 0, 0, 0, {0}};
  mg_store *s = strategy_store(&c, 4);
  ASSERT(s);
  mg_store_input in = msg_text("user", "new");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  ASSERT_EQ(c.busy_seen, 6);
  ASSERT_EQ(c.reads_ok, 3);
  ASSERT_U64_EQ(mg_store_len(s), 4);
  check_ok(s);
  mg_store_free(s);
}

/* ============================================================ on_evict */

typedef struct ev_ctx {
  int fail;
  int calls;
  uint64_t ids[64];
  size_t n;
  int busy_seen;
  mg_store_evict_reason reason;
} ev_ctx;

static int test_on_evict(void *ud, const mg_store *view,
                         const mg_store_batch *b, mg_store_evict_reason reason,
                         char *err, size_t err_len) {
  ev_ctx *c = ud;
  c->calls++;
  c->reason = reason;
  mg_store *s = (mg_store *)view;
  if (mg_store_remove(s, 1, NULL, 0) == MG_EBUSY)
    c->busy_seen++;
  if (c->fail) {
    snprintf(err, err_len, "sink unavailable");
    return -EIO;
  }
  for (size_t i = 0; i < mg_store_batch_len(b); i++) {
    mg_store_msg m;
    if (mg_store_batch_at(b, i, &m) != 0)
      return -EINVAL;
    /* the message is still readable in the store while being evicted */
    mg_store_msg again;
    if (mg_store_get(view, m.id, &again) != 0)
      return -EINVAL;
    if (c->n < 64)
      c->ids[c->n++] = m.id;
  }
  mg_store_msg m;
  if (mg_store_batch_at(b, mg_store_batch_len(b), &m) != -ENOENT)
    return -EINVAL;
  return 0;
}

TEST(on_evict_gets_batches_and_can_refuse) {
  ev_ctx c = {0};
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 5;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  o.on_evict = test_on_evict;
  o.on_evict_ud = &c;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  add_g(s, "assistant", "g", 0);     /* 1 */
  add_g(s, "user", NULL, 0);         /* 2 */
  add_g(s, "tool", "g", 0);          /* 3 */
  add_g(s, "user", NULL, 0);         /* 4 */
  add_g(s, "user", NULL, 0);         /* 5 */
  ASSERT(add_g(s, "user", NULL, 0)); /* evicts 1 and 3 (group g) */
  ASSERT_EQ(c.calls, 1);
  ASSERT_EQ(c.n, 2);
  ASSERT_U64_EQ(c.ids[0], 1); /* oldest first */
  ASSERT_U64_EQ(c.ids[1], 3);
  ASSERT_EQ(c.reason, MG_STORE_EVICT_STRATEGY);
  ASSERT_EQ(c.busy_seen, 1);
  /* refusal: store unchanged, the add fails with the callback's reason */
  c.fail = 1;
  ASSERT(add_g(s, "user", NULL, 0)); /* 4 messages + 1: fits */
  char *before = store_dump(s);
  mg_store_input in = msg_text("user", "x");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EIO);
  ASSERT_CONTAINS(e.message, "on_evict refused the eviction: sink unavailable");
  char *after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  free(after);
  uint64_t removed = 9;
  char err[256];
  ASSERT_EQ(mg_store_prune(s, 1, &removed, err, sizeof err), -EIO);
  ASSERT_U64_EQ(removed, 9);
  ASSERT_CONTAINS(err, "prune failed");
  after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  c.fail = 0;
  ASSERT_EQ(mg_store_prune(s, 1, &removed, err, sizeof err), 0);
  ASSERT_U64_EQ(removed, 4);
  ASSERT_EQ(c.reason, MG_STORE_EVICT_PRUNE);
  check_ok(s);
  free(before);
  free(after);
  mg_store_free(s);
}

/* ============================================================ archive */

static mg_store *archive_store(const char *path, ev_ctx *c) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "arch";
  o.limits.max_messages = 3;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  o.archive_path = path;
  if (c) {
    o.on_evict = test_on_evict;
    o.on_evict_ud = c;
  }
  mg_store *s = NULL;
  if (mg_store_new(&o, &s, NULL, 0) != 0)
    return NULL;
  return s;
}

static void archive_fails(const char *path, const char *want) {
  mg_store *s = archive_store(path, NULL);
  ASSERT(s);
  for (int i = 0; i < 3; i++)
    ASSERT(add_text(s, "user", "keep me"));
  char *before = store_dump(s);
  mg_store_input in = msg_text("user", "x");
  mg_store_error e;
  int rc = mg_store_add(s, &in, NULL, &e);
  ASSERT(rc < 0 && rc > -4096); /* an errno */
  ASSERT_CONTAINS(e.message, "Message count 3 exceeds limit of 3: ");
  ASSERT_CONTAINS(e.message, want);
  ASSERT_CONTAINS(e.message, path);
  char *after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  char err[256];
  ASSERT(mg_store_prune(s, 0, NULL, err, sizeof err) < 0);
  free(after);
  after = store_dump(s);
  ASSERT_STR_EQ(after, before);
  check_ok(s);
  free(before);
  free(after);
  mg_store_free(s);
}

TEST(archive_in_missing_dir_fails_add) {
  archive_fails("/nonexistent-mgrun-dir/archive.jsonl", "cannot open archive");
}

TEST(archive_on_dev_full_fails_add) {
  if (access("/dev/full", W_OK) != 0) {
    fprintf(stderr, "  (not run: /dev/full is not writable here)\n");
    return;
  }
  archive_fails("/dev/full", "cannot write archive");
}

TEST(archive_records_every_evicted_message) {
  const char *path = tmp_path("archive.jsonl");
  unlink(path);
  ev_ctx c = {0};
  mg_store *s = archive_store(path, &c);
  ASSERT(s);
  unsigned char bin[] = {0x00, 0xff, 0x10, 'a', 0xc3};
  mg_store_input in = {0};
  in.role = "tool";
  in.content = bin;
  in.content_len = sizeof bin;
  in.source = "sensor";
  in.priority = -3;
  mg_store_meta meta[] = {{"k", "v"}, {"tool", "grep"}};
  in.meta = meta;
  in.meta_count = 2;
  ASSERT_EQ(mg_store_add(s, &in, NULL, NULL), 0);  /* 1: binary */
  ASSERT(add_text(s, "user", "héllo \"quoted\"")); /* 2 */
  ASSERT(add_text(s, "user", "three"));            /* 3 */
  ASSERT(add_text(s, "user", "four"));             /* evicts 1 */
  ASSERT(add_text(s, "user", "five"));             /* evicts 2 */
  /* on_evict refuses: the archive is cut back to what it was */
  struct stat st1, st2;
  ASSERT_EQ(stat(path, &st1), 0);
  c.fail = 1;
  mg_store_input x = msg_text("user", "x");
  ASSERT(mg_store_add(s, &x, NULL, NULL) < 0);
  ASSERT_EQ(stat(path, &st2), 0);
  ASSERT_EQ(st1.st_size, st2.st_size);
  c.fail = 0;
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.archived_count, 2);
  ASSERT_EQ(mg_store_prune(s, 0, NULL, NULL, 0), 0); /* 3, 4, 5 */
  mg_store_free(s);
  FILE *f = fopen(path, "r");
  ASSERT(f);
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    json_error_t je;
    json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
    ASSERT(o);
    n++;
    ASSERT_EQ(json_integer_value(json_object_get(o, "id")), n);
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "store")), "arch");
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "reason")),
                  n <= 2 ? "strategy" : "prune");
    ASSERT(json_is_number(json_object_get(o, "evicted_at")));
    ASSERT(json_is_number(json_object_get(o, "time")));
    ASSERT(json_is_integer(json_object_get(o, "tokens")));
    if (n == 1) {
      ASSERT(json_object_get(o, "content") == NULL);
      ASSERT_STR_EQ(json_string_value(json_object_get(o, "content_b64")),
                    "AP8QYcM=");
      ASSERT_STR_EQ(json_string_value(json_object_get(o, "role")), "tool");
      ASSERT_STR_EQ(json_string_value(json_object_get(o, "source")), "sensor");
      ASSERT_EQ(json_integer_value(json_object_get(o, "priority")), -3);
      json_t *m = json_object_get(o, "meta");
      ASSERT_STR_EQ(json_string_value(json_object_get(m, "tool")), "grep");
      ASSERT_EQ(json_object_size(m), 2);
    } else if (n == 2) {
      ASSERT_STR_EQ(json_string_value(json_object_get(o, "content")),
                    "héllo \"quoted\"");
    }
    json_decref(o);
  }
  fclose(f);
  ASSERT_EQ(n, 5); /* each exactly once */
  unlink(path);
}

/* ============================================================ snapshots */

static double fixed_clock(void *ud) {
  return *(double *)ud;
}

TEST(snapshot_round_trip) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "snap";
  o.limits.max_messages = 50;
  o.limits.max_tokens = 10000;
  o.limits.warn_at = 0.1 + 0.2; /* 0.30000000000000004: must come back */
  double now = 1700000000.1234567;
  o.clock = fixed_clock;
  o.clock_ud = &now;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  mg_store_input sys = msg_text("system", "You are helpful.");
  sys.pinned = 1;
  sys.source = "policy";
  ASSERT_EQ(mg_store_add(s, &sys, NULL, NULL), 0);
  now += 1.5;
  unsigned char bin[300];
  for (size_t i = 0; i < sizeof bin; i++)
    bin[i] = (unsigned char)(i * 7);
  mg_store_input b = {0};
  b.role = "tool";
  b.content = bin;
  b.content_len = sizeof bin;
  b.group = "call_9";
  b.priority = INT64_MIN;
  b.has_tokens = 1;
  b.tokens = 77;
  mg_store_meta meta[] = {{"mime", "application/octet-stream"}, {"e", ""}};
  b.meta = meta;
  b.meta_count = 2;
  ASSERT_EQ(mg_store_add(s, &b, NULL, NULL), 0);
  /* valid UTF-8 with a NUL inside stays text */
  mg_store_input z = {0};
  z.role = "user";
  z.content = "a\0b\xc3\xa9";
  z.content_len = 5;
  z.group = "call_9";
  z.priority = 9;
  ASSERT_EQ(mg_store_add(s, &z, NULL, NULL), 0);
  ASSERT(add_text(s, "assistant", ""));
  ASSERT_EQ(mg_store_remove(s, 4, NULL, 0), 0);
  ASSERT(add_text(s, "assistant", "last"));
  char *before = store_dump(s);
  const char *path = tmp_path("snap.json");
  char err[512];
  ASSERT_EQ(mg_store_save(s, path, err, sizeof err), 0);
  /* no temp file left behind */
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  ASSERT(access(tmp, F_OK) != 0);
  mg_store_free(s);
  mg_store *l = NULL;
  ASSERT_EQ(mg_store_load(path, NULL, &l, err, sizeof err), 0);
  ASSERT_STR_EQ(mg_store_name(l), "snap");
  char *after = store_dump(l);
  /* counters (removed) are not part of a snapshot: compare the rest */
  char *b1 = strstr(before, "#0"), *a1 = strstr(after, "#0");
  ASSERT(b1 && a1);
  ASSERT_STR_EQ(a1, b1);
  mg_store_stats st;
  mg_store_get_stats(l, &st);
  ASSERT_U64_EQ(st.next_id, 6);
  ASSERT_U64_EQ(st.max_tokens, 10000);
  ASSERT(st.warn_at == 0.1 + 0.2);
  check_ok(l);
  /* the loaded store works on: the next id continues */
  uint64_t id;
  mg_store_input in = msg_text("user", "more");
  ASSERT_EQ(mg_store_add(l, &in, &id, NULL), 0);
  ASSERT_U64_EQ(id, 6);
  /* a save over an existing file replaces it */
  ASSERT_EQ(mg_store_save(l, path, err, sizeof err), 0);
  mg_store *l2 = NULL;
  ASSERT_EQ(mg_store_load(path, NULL, &l2, err, sizeof err), 0);
  ASSERT_U64_EQ(mg_store_len(l2), 5);
  mg_store_free(l2);
  /* the binary message is stored as base64, the NUL one as text */
  FILE *f = fopen(path, "r");
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  ASSERT_CONTAINS(buf, "\"format\":\"mgrun-store\",\"version\":1");
  ASSERT_CONTAINS(buf, "\"content_b64\":\"AAcOFRwj");
  ASSERT_CONTAINS(buf, "\"content\":\"a\\u0000b\xc3\xa9\"");
  free(before);
  free(after);
  mg_store_free(l);
  unlink(path);
}

TEST(snapshot_save_errors) {
  mg_store *s = new_store(10, 1048576, 104857600);
  char err[512];
  int rc = mg_store_save(s, "/nonexistent-mgrun-dir/x.json", err, sizeof err);
  ASSERT_EQ(rc, -ENOENT);
  ASSERT_CONTAINS(err, "/nonexistent-mgrun-dir/x.json");
  mg_store_free(s);
}

static void load_fails(const char *rel, int want, const char *want_msg) {
  char err[512] = "";
  mg_store *s = (mg_store *)1;
  int rc = mg_store_load(mg_fixture(rel), NULL, &s, err, sizeof err);
  if (rc != want)
    fprintf(stderr, "%s: %d %s\n", rel, rc, err);
  ASSERT_EQ(rc, want);
  ASSERT(s == NULL);
  ASSERT_CONTAINS(err, rel); /* names the file */
  ASSERT_CONTAINS(err, want_msg);
}

TEST(snapshot_bad_files) {
  load_fails("store/truncated.json", MG_ECORRUPT, "is truncated or corrupt: ");
  load_fails("store/truncated.json", MG_ECORRUPT, "position");
  load_fails("store/corrupt.json", MG_ECORRUPT, "line 1");
  load_fails("store/wrong_format.json", MG_ECORRUPT,
             "is not an mgrun store snapshot (\"format\" is \"other\"");
  load_fails("store/no_format.json", MG_ECORRUPT, "\"format\" is missing");
  load_fails("store/version2.json", MG_EVERSION,
             "has version 2; this mgrun reads version 1");
  load_fails("store/bad_b64.json", MG_ECORRUPT,
             "messages[1]: \"content_b64\" is not valid base64");
  load_fails("store/dup_id.json", MG_ECORRUPT, "id 2 appears twice");
  load_fails("store/id_past_next.json", MG_ECORRUPT,
             "messages[0]: \"id\" 5 is out of range: it must be an integer "
             "from 1 to next_id - 1 (3)");
  load_fails("store/bad_pinned.json", MG_ECORRUPT,
             "messages[1]: \"pinned\" must be true or false");
  load_fails("store/bad_priority.json", MG_ECORRUPT,
             "messages[1]: \"priority\" must be an integer");
  /* tokens and time both wrong: tokens, checked first, is named */
  load_fails("store/bad_tokens.json", MG_ECORRUPT,
             "messages[1]: \"tokens\" must be a non-negative integer");
  load_fails("store/bad_time.json", MG_ECORRUPT,
             "messages[1]: \"time\" must be a number");
  load_fails("store/bad_limits.json", MG_ECORRUPT,
             "limits: max_message_size 10 is below the minimum 1024");
  load_fails("store/missing.json", -ENOENT, "cannot open store snapshot");
}

TEST(snapshot_v1_fixture_loads) {
  char err[512];
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_load(mg_fixture("store/v1_small.json"), NULL, &s, err,
                          sizeof err),
            0);
  ASSERT_STR_EQ(mg_store_name(s), "fixture");
  ASSERT_U64_EQ(mg_store_len(s), 3);
  mg_store_msg m;
  ASSERT_EQ(mg_store_at(s, 0, &m), 0);
  ASSERT_U64_EQ(m.id, 1);
  ASSERT(m.pinned);
  ASSERT_STR_EQ(m.role, "system");
  ASSERT_EQ(mg_store_at(s, 1, &m), 0);
  ASSERT_U64_EQ(m.id, 4);
  ASSERT_EQ(m.content_len, 3);
  ASSERT_EQ(memcmp(m.content, "\x00\xff\x01", 3), 0);
  ASSERT_STR_EQ(m.group, "c1");
  ASSERT_STR_EQ(mg_store_msg_meta_get(&m, "tool"), "grep");
  ASSERT(mg_store_msg_meta_get(&m, "nope") == NULL);
  ASSERT_EQ(mg_store_at(s, 2, &m), 0);
  ASSERT_U64_EQ(m.id, 5);
  ASSERT_U64_EQ(m.tokens, 2); /* absent: estimated, ceil(5 / 4) */
  ASSERT_STR_EQ((const char *)m.content, "hello");
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.next_id, 9);
  ASSERT_U64_EQ(st.max_messages, 3);
  check_ok(s);
  mg_store_free(s);
}

TEST(snapshot_over_limits_loads) {
  /* a snapshot saved after limits were lowered below the use */
  mg_store *s = new_store(10, 1048576, 104857600);
  for (int i = 0; i < 6; i++)
    ASSERT(add_text(s, "user", "x"));
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  l.max_messages = 2;
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  const char *path = tmp_path("over.json");
  ASSERT_EQ(mg_store_save(s, path, NULL, 0), 0);
  mg_store_free(s);
  char err[256];
  ASSERT_EQ(mg_store_load(path, NULL, &s, err, sizeof err), 0);
  ASSERT_U64_EQ(mg_store_len(s), 6);
  check_ok(s);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_DBL_NEAR(st.message_count_utilization, 3.0, 1e-12);
  mg_store_free(s);
  unlink(path);
}

/* ============================================================ heap */

TEST(heap_stays_within_accounting) {
  counting_alloc ca = {0};
  mg_store_alloc al = ca_make(&ca);
  mg_store_options o;
  mg_store_options_init(&o);
  o.alloc = &al;
  o.limits.max_messages = 5000;
  o.limits.max_total_size_bytes = 4 << 20;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  o.archive_path = tmp_path("heap-archive.jsonl");
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  unsigned seed = 12345;
  static char buf[20000];
  memset(buf, 'q', sizeof buf);
  mg_store_meta meta[MG_STORE_META_MAX];
  char keys[MG_STORE_META_MAX][4];
  for (unsigned i = 0; i < MG_STORE_META_MAX; i++) {
    snprintf(keys[i], sizeof keys[i], "k%u", i);
    meta[i].key = keys[i];
    meta[i].value = "";
  }
  size_t worst_gap = 0;
  for (int step = 0; step < 30000; step++) {
    unsigned r = rand_r(&seed);
    mg_store_stats st;
    if (r % 100 < 85) {
      mg_store_input in = {0};
      /* tiny messages with full meta are the worst case for overhead */
      in.content = buf;
      in.content_len = r % 7 == 0 ? (rand_r(&seed) % sizeof buf) : r % 3;
      in.meta = meta;
      in.meta_count = r % 5 == 0 ? MG_STORE_META_MAX : 0;
      char g[16];
      if (r % 4 == 0) {
        snprintf(g, sizeof g, "g%u", rand_r(&seed) % 500);
        in.group = g;
      }
      mg_store_add(s, &in, NULL, NULL);
    } else if (r % 100 < 90) {
      mg_store_prune(s, rand_r(&seed) % 3000, NULL, NULL, 0);
    } else if (r % 100 < 95) {
      mg_store_get_stats(s, &st);
      mg_store_remove(s, st.next_id - 1 - rand_r(&seed) % 100, NULL, 0);
    } else if (r % 100 < 96) {
      mg_store_clear(s, NULL);
    } else {
      mg_store_limits l;
      mg_store_get_limits(s, &l);
      l.max_messages = 100 + rand_r(&seed) % 6000;
      mg_store_set_limits(s, &l, NULL, 0);
    }
    mg_store_get_stats(s, &st);
    ASSERT(ca.live <= st.total_size_bytes + MG_STORE_HEAP_CONST);
    if (ca.live > st.total_size_bytes &&
        ca.live - st.total_size_bytes > worst_gap)
      worst_gap = ca.live - st.total_size_bytes;
  }
  fprintf(stderr,
          "  heap: worst real-minus-accounted gap %zu bytes (bound %u)\n",
          worst_gap, MG_STORE_HEAP_CONST);
  check_ok(s);
  mg_store_free(s);
  ASSERT_EQ(ca.live, 0);
  ASSERT_EQ(ca.size_mismatch, 0);
  unlink(tmp_path("heap-archive.jsonl"));
}

TEST(out_of_memory_changes_nothing) {
  counting_alloc ca = {0};
  mg_store_alloc al = ca_make(&ca);
  mg_store_options o;
  mg_store_options_init(&o);
  o.alloc = &al;
  o.limits.max_messages = 100;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  int failures = 0;
  for (int i = 0; i < 300; i++) {
    char *before = store_dump(s);
    ca.fail_in = 1 + i % 3; /* the block, or a table growth */
    mg_store_input in = msg_text("user", "payload");
    char g[8];
    snprintf(g, sizeof g, "g%d", i);
    in.group = g;
    mg_store_error e;
    int rc = mg_store_add(s, &in, NULL, &e);
    ca.fail_in = 0;
    if (rc) {
      ASSERT_EQ(rc, -ENOMEM);
      char *after = store_dump(s);
      ASSERT_STR_EQ(after, before);
      free(after);
      failures++;
    }
    free(before);
    check_ok(s);
  }
  ASSERT(failures > 0);
  mg_store_free(s);
  ASSERT_EQ(ca.live, 0);
}

/* ============================================================ warnings */

typedef struct warn_ctx {
  int fired[3];
  mg_store_stats last;
  int prune_in_cb; /* prune from inside on_warn (allowed: lock released) */
  int prune_rc;
} warn_ctx;

static void test_on_warn(void *ud, mg_store *s, mg_store_warn_kind kind,
                         const mg_store_stats *st) {
  warn_ctx *c = ud;
  c->fired[kind]++;
  c->last = *st;
  if (c->prune_in_cb)
    c->prune_rc = mg_store_prune(s, 1, NULL, NULL, 0);
}

TEST(warnings_fire_once_per_crossing) {
  warn_ctx c = {{0}, {0}, 0, 0};
  char *logbuf = NULL;
  size_t loglen = 0;
  FILE *lf = open_memstream(&logbuf, &loglen);
  mg_logger *lg = mg_logger_new(lf, MG_LOG_TEXT, MG_LOG_DEBUG);
  ASSERT(lg);
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "warned";
  o.limits.max_messages = 10;
  o.limits.max_tokens = 100;
  o.on_warn = test_on_warn;
  o.on_warn_ud = &c;
  o.logger = lg;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  for (int i = 0; i < 7; i++)
    ASSERT(add_text(s, "user", "1234")); /* 1 token each */
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 0);
  ASSERT(add_text(s, "user", "1234")); /* 8 of 10 */
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 1);
  ASSERT_U64_EQ(c.last.message_count, 8);
  ASSERT_EQ(c.last.near_message_limit, 1);
  ASSERT(add_text(s, "user", "1234"));
  ASSERT(add_text(s, "user", "1234"));
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 1); /* once */
  ASSERT_EQ(mg_store_prune(s, 5, NULL, NULL, 0), 0);  /* re-arms */
  for (int i = 0; i < 2; i++)
    ASSERT(add_text(s, "user", "1234"));
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 1);
  ASSERT(add_text(s, "user", "1234")); /* 8 again */
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 2);
  /* tokens: 8 + 80 crosses 80 of 100 */
  ASSERT_EQ(c.fired[MG_STORE_WARN_TOKENS], 0);
  mg_store_input t = msg_text("user", "t");
  t.has_tokens = 1;
  t.tokens = 80;
  ASSERT_EQ(mg_store_prune(s, 7, NULL, NULL, 0), 0);
  ASSERT_EQ(mg_store_add(s, &t, NULL, NULL), 0);
  ASSERT_EQ(c.fired[MG_STORE_WARN_TOKENS], 1);
  /* prune(7) re-armed the count, and this add crossed 8 again */
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 3);
  ASSERT_EQ(c.last.near_token_limit, 1);
  /* total size: lower max_total_size under the use: an upward crossing */
  ASSERT_EQ(c.fired[MG_STORE_WARN_TOTAL_SIZE], 0);
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  l.max_total_size_bytes = 2048;
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  ASSERT_EQ(c.fired[MG_STORE_WARN_TOTAL_SIZE], 1);
  l.max_total_size_bytes = 104857600;
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  /* on_warn runs unlocked: it may prune */
  ASSERT_EQ(mg_store_clear(s, NULL), 0);
  c.prune_in_cb = 1;
  for (int i = 0; i < 8; i++)
    ASSERT(add_text(s, "user", "1234"));
  ASSERT_EQ(c.fired[MG_STORE_WARN_MESSAGE_COUNT], 4);
  ASSERT_EQ(c.prune_rc, 0);
  ASSERT_U64_EQ(mg_store_len(s), 1);
  mg_store_free(s);
  mg_logger_free(lg);
  fclose(lf);
  ASSERT_CONTAINS(logbuf, "approaching_message_limit");
  ASSERT_CONTAINS(logbuf, "approaching_token_limit");
  ASSERT_CONTAINS(logbuf, "approaching_size_limit");
  ASSERT_CONTAINS(logbuf, "messages_pruned");
  ASSERT_CONTAINS(logbuf, "store=warned");
  free(logbuf);
}

TEST(limit_errors_are_logged) {
  char *logbuf = NULL;
  size_t loglen = 0;
  FILE *lf = open_memstream(&logbuf, &loglen);
  mg_logger *lg = mg_logger_new(lf, MG_LOG_JSON, MG_LOG_INFO);
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 1;
  o.limits.max_message_size_bytes = 1024;
  o.limits.max_total_size_bytes = 1024;
  o.logger = lg;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  ASSERT(add_text(s, "user", "x"));
  mg_store_input in = msg_text("user", "y");
  ASSERT_EQ(mg_store_add(s, &in, NULL, NULL), MG_ELIMIT);
  static char big[2000];
  in.content = big;
  in.content_len = sizeof big;
  ASSERT_EQ(mg_store_add(s, &in, NULL, NULL), MG_ELIMIT);
  ASSERT_EQ(mg_store_clear(s, NULL), 0);
  in.content_len = 1024 - MG_STORE_MSG_OVERHEAD - 4;
  ASSERT_EQ(mg_store_add(s, &in, NULL, NULL), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.rejected_count, 2);
  mg_store_free(s);
  mg_logger_free(lg);
  fclose(lf);
  ASSERT_CONTAINS(logbuf, "message_count_exceeded");
  ASSERT_CONTAINS(logbuf, "message_size_exceeded");
  ASSERT_CONTAINS(logbuf, "Message count 1 exceeds limit of 1");
  free(logbuf);
}

/* ============================================================ reading */

TEST(views_positions_iteration) {
  mg_store *s = new_store(100, 1048576, 104857600);
  double now = 42.5;
  (void)now;
  for (int i = 0; i < 50; i++) {
    char c[16];
    snprintf(c, sizeof c, "%d", i);
    ASSERT(add_text(s, "user", c));
  }
  mg_store_msg m;
  /* sequential, backwards and random positions */
  for (uint64_t p = 0; p < 50; p++) {
    ASSERT_EQ(mg_store_at(s, p, &m), 0);
    ASSERT_U64_EQ(m.id, p + 1);
  }
  for (uint64_t p = 50; p-- > 0;) {
    ASSERT_EQ(mg_store_at(s, p, &m), 0);
    ASSERT_U64_EQ(m.id, p + 1);
  }
  uint64_t jumps[] = {25, 3, 48, 26, 0, 49, 30};
  for (size_t i = 0; i < 7; i++) {
    ASSERT_EQ(mg_store_at(s, jumps[i], &m), 0);
    ASSERT_U64_EQ(m.id, jumps[i] + 1);
  }
  ASSERT_EQ(mg_store_at(s, 50, &m), -ENOENT);
  ASSERT_EQ(mg_store_get(s, 999, &m), -ENOENT);
  /* newest first */
  mg_store_iter it;
  mg_store_iter_init(s, &it, MG_STORE_NEWEST_FIRST);
  ASSERT_EQ(mg_store_iter_next(s, &it, &m), 1);
  ASSERT_U64_EQ(m.id, 50);
  ASSERT_EQ(it.position, 49);
  ASSERT_EQ(mg_store_iter_next(s, &it, &m), 1);
  ASSERT_EQ(it.position, 48);
  /* a mutation makes the cursor stale instead of dangling */
  ASSERT_EQ(mg_store_remove(s, 49, NULL, 0), 0);
  ASSERT_EQ(mg_store_iter_next(s, &it, &m), -ESTALE);
  /* the position cache follows mutations */
  ASSERT_EQ(mg_store_at(s, 48, &m), 0);
  ASSERT_U64_EQ(m.id, 50);
  /* empty store */
  mg_store_clear(s, NULL);
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  ASSERT_EQ(mg_store_iter_next(s, &it, &m), 0);
  ASSERT_EQ(mg_store_at(s, 0, &m), -ENOENT);
  mg_store_free(s);
}

TEST(clock_and_fields) {
  double now = 1234.5;
  mg_store_options o;
  mg_store_options_init(&o);
  o.clock = fixed_clock;
  o.clock_ud = &now;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  mg_store_input in = msg_text("user", "hi");
  in.source = "cli";
  in.priority = 7;
  mg_store_meta meta[] = {{"a", "1"}, {"b", "two"}};
  in.meta = meta;
  in.meta_count = 2;
  uint64_t id;
  ASSERT_EQ(mg_store_add(s, &in, &id, NULL), 0);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, id, &m), 0);
  ASSERT_DBL_NEAR(m.time, 1234.5, 0);
  ASSERT_STR_EQ(m.source, "cli");
  ASSERT_EQ(m.priority, 7);
  ASSERT_EQ(m.meta_count, 2);
  /* size counts the meta keys and values with their NULs */
  ASSERT_U64_EQ(m.size_bytes,
                4 + 2 + 3 + (2 + 2) + (2 + 4) + MG_STORE_MSG_OVERHEAD);
  size_t cur = 0;
  const char *k, *v;
  ASSERT_EQ(mg_store_msg_meta_next(&m, &cur, &k, &v), 1);
  ASSERT_STR_EQ(k, "a");
  ASSERT_STR_EQ(v, "1");
  ASSERT_EQ(mg_store_msg_meta_next(&m, &cur, &k, &v), 1);
  ASSERT_STR_EQ(k, "b");
  ASSERT_STR_EQ(v, "two");
  ASSERT_EQ(mg_store_msg_meta_next(&m, &cur, &k, &v), 0);
  /* invalid meta */
  mg_store_meta dup[] = {{"a", "1"}, {"a", "2"}};
  in.meta = dup;
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EINVAL);
  ASSERT_CONTAINS(e.message, "appears twice");
  in.meta_count = MG_STORE_META_MAX + 1;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EINVAL);
  ASSERT_CONTAINS(e.message, "at most 32");
  mg_store_input nul = {0};
  nul.content_len = 3;
  ASSERT_EQ(mg_store_add(s, &nul, NULL, &e), -EINVAL);
  mg_store_free(s);
}

/* check() is real: corrupt a store behind its back and watch it notice. */
TEST(check_finds_corruption) {
  mg_store *s = new_store(10, 1048576, 104857600);
  for (int i = 0; i < 4; i++)
    ASSERT(add_g(s, "user", i % 2 ? "g" : NULL, 0));
  check_ok(s);
  char err[256];
  s->total_bytes += 1;
  ASSERT_EQ(mg_store_check(s, err, sizeof err), MG_ECORRUPT);
  ASSERT_CONTAINS(err, "accounted total");
  s->total_bytes -= 1;
  s->total_tokens += 3;
  ASSERT_EQ(mg_store_check(s, err, sizeof err), MG_ECORRUPT);
  ASSERT_CONTAINS(err, "tokens");
  s->total_tokens -= 3;
  s->lim.max_messages = 3; /* behind set_limits' back: not "lowered" */
  ASSERT_EQ(mg_store_check(s, err, sizeof err), MG_ECORRUPT);
  ASSERT_CONTAINS(err, "exceed max_messages");
  s->lim.max_messages = 10;
  mg__msg *m = s->head->next; /* split a group ring */
  mg__msg *keep = m->gnext;
  m->gnext = m;
  ASSERT_EQ(mg_store_check(s, err, sizeof err), MG_ECORRUPT);
  m->gnext = keep;
  check_ok(s);
  mg_store_free(s);
}

/* ============================================== the incoming message's group
 */

static uint64_t add_grouped(mg_store *s, const char *role, const char *content,
                            const char *group) {
  mg_store_input in = msg_text(role, content);
  in.group = group;
  uint64_t id = 0;
  mg_store_error e;
  if (mg_store_add(s, &in, &id, &e) != 0) {
    fprintf(stderr, "add failed: %s\n", e.message);
    return 0;
  }
  return id;
}

/* A tool call at the oldest end is not evicted to make room for its own
 * result: the group would be split (one part archived, one kept). */
TEST(incoming_group_is_never_evicted_for_its_member) {
  mg_store *s = new_store(3, 1048576, 104857600);
  mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE);
  uint64_t call = add_grouped(s, "assistant", "call tool x", "call-1");
  uint64_t b = add_text(s, "user", "b");
  add_text(s, "user", "c");
  ASSERT(call && b);
  uint64_t res = add_grouped(s, "tool", "result of x", "call-1");
  ASSERT(res);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, call, &m), 0);    /* the call stayed */
  ASSERT_EQ(mg_store_get(s, b, &m), -ENOENT); /* b made room instead */
  check_ok(s);
  /* when only the group itself could make room: a clear error */
  mg_store *t = new_store(2, 1048576, 104857600);
  mg_store_set_on_full(t, MG_STORE_ON_FULL_PRUNE);
  ASSERT(add_grouped(t, "assistant", "call", "g"));
  ASSERT(add_grouped(t, "tool", "r1", "g"));
  mg_store_input in = msg_text("tool", "r2");
  in.group = "g";
  mg_store_error e;
  ASSERT_EQ(mg_store_add(t, &in, NULL, &e), MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "group of the message being added");
  ASSERT_U64_EQ(mg_store_len(t), 2);
  check_ok(t);
  mg_store_free(t);
  mg_store_free(s);
}

static int evict_incoming_group(void *ud, const mg_store *view,
                                const mg_store_need *need, mg_store_plan *plan,
                                char *err, size_t err_len) {
  (void)ud;
  (void)err;
  (void)err_len;
  mg_store_msg m;
  if (!need->group || strcmp(need->group, "call-1") != 0 || !need->adding)
    return -EINVAL;         /* the strategy is told the incoming group */
  mg_store_at(view, 0, &m); /* the tool call of that group */
  return mg_store_plan_evict(plan, m.id) == MG_EPINNED ? 0 : -1;
}

TEST(strategy_cannot_choose_the_incoming_group) {
  mg_store *s = new_store(2, 1048576, 104857600);
  mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE);
  mg_store_set_strategy(s, evict_incoming_group, NULL, "grabby");
  ASSERT(add_grouped(s, "assistant", "call", "call-1"));
  ASSERT(add_text(s, "user", "x"));
  char *before = store_dump(s);
  mg_store_input in = msg_text("tool", "result");
  in.group = "call-1";
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_EPINNED);
  ASSERT_CONTAINS(e.message, "is the group of the message being added");
  char *after = store_dump(s);
  ASSERT_STR_EQ(before, after);
  free(before);
  free(after);
  mg_store_free(s);
}

/* A summary may hold more tokens than what it replaces when no token limit
 * is set, and more bytes when the byte limit still has room: only limits
 * that are set, after the add, must hold. */
static int summarize_oldest(void *ud, const mg_store *view,
                            const mg_store_need *need, mg_store_plan *plan,
                            char *err, size_t err_len) {
  int n = *(int *)ud;
  (void)need;
  (void)err;
  (void)err_len;
  mg_store_msg m;
  for (int i = 0; i < n; i++) {
    mg_store_at(view, (uint64_t)i, &m);
    mg_store_plan_evict(plan, m.id);
  }
  static char text[1000];
  memset(text, 's', sizeof text);
  mg_store_input r = {0};
  r.role = "summary";
  r.content = text;
  r.content_len = sizeof text;
  r.has_tokens = 1;
  r.tokens = 1000;
  return mg_store_plan_replace(plan, &r);
}

TEST(summary_uses_slack_and_unlimited_dimensions) {
  int n = 1;
  mg_store *s = new_store(3, 1048576, 104857600);
  mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE);
  mg_store_set_strategy(s, summarize_oldest, &n, "summarize");
  for (int i = 0; i < 3; i++)
    ASSERT(add_text(s, "user", "m"));
  /* count: 3 - 1 evicted + 1 summary + 1 new = 4 > 3: too little */
  mg_store_input in = msg_text("user", "new");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "freed too little");
  ASSERT_U64_EQ(mg_store_len(s), 3);
  /* two evicted: the count holds; the summary is bigger in bytes (room
   * left) and in tokens (no token limit): accepted */
  n = 2;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.message_count, 3);
  ASSERT_GE(st.total_tokens, 1000);
  check_ok(s);
  mg_store_free(s);
  /* with a token limit the summary's tokens count again */
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 3;
  o.limits.max_tokens = 500;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  char err[256];
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), 0);
  mg_store_set_strategy(s, summarize_oldest, &n, "summarize");
  for (int i = 0; i < 3; i++)
    ASSERT(add_text(s, "user", "m"));
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "tokens");
  check_ok(s);
  mg_store_free(s);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mg_test_store.%ld", (long)getpid());
  mkdir(tmpdir, 0700);
  RUN(seed_message_counts);
  RUN(seed_utilisation_half);
  RUN(seed_near_limit_at_8_of_10);
  RUN(seed_count_error_3_of_3);
  RUN(seed_size_error_50000_of_1024);
  RUN(seed_prune_3_of_8);
  RUN(seed_prune_default_9_of_10);
  RUN(seed_custom_limits_kept);
  RUN(limits_below_minimum);
  RUN(bug_add_is_atomic);
  RUN(bug_prune_zero_reports_true_count);
  RUN(bug_stats_above_100_percent);
  RUN(bug_no_recount);
  RUN(default_estimator_ceil_quarter);
  RUN(oldest_evicts_whole_groups_skips_pinned);
  RUN(group_with_pinned_member_never_evicted);
  RUN(pinned_alone_leave_no_room);
  RUN(prune_keeps_group_straddling_boundary);
  RUN(remove_is_one_id_clear_is_all);
  RUN(strategy_error_changes_nothing);
  RUN(strategy_pinned_id_refused);
  RUN(strategy_unknown_id_refused);
  RUN(strategy_too_little_refused);
  RUN(strategy_replacement_counts_against_freed);
  RUN(strategy_replacement_over_max_size);
  RUN(strategy_two_replacements_refused);
  RUN(strategy_replacement_takes_earliest_place);
  RUN(mutation_inside_strategy_refused);
  RUN(on_evict_gets_batches_and_can_refuse);
  RUN(archive_in_missing_dir_fails_add);
  RUN(archive_on_dev_full_fails_add);
  RUN(archive_records_every_evicted_message);
  RUN(snapshot_round_trip);
  RUN(snapshot_save_errors);
  RUN(snapshot_bad_files);
  RUN(snapshot_v1_fixture_loads);
  RUN(snapshot_over_limits_loads);
  RUN(heap_stays_within_accounting);
  RUN(out_of_memory_changes_nothing);
  RUN(warnings_fire_once_per_crossing);
  RUN(limit_errors_are_logged);
  RUN(views_positions_iteration);
  RUN(clock_and_fields);
  RUN(check_finds_corruption);
  RUN(incoming_group_is_never_evicted_for_its_member);
  RUN(strategy_cannot_choose_the_incoming_group);
  RUN(summary_uses_slack_and_unlimited_dimensions);
  rmdir(tmpdir);
  return mg_test_report();
}
