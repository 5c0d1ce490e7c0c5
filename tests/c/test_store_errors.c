/* test_store_errors.c — the store's error paths through its C API: a token
 * estimator that fails (for an add, a strategy's replacement, a load) and
 * exactly when it runs, locked or not; store names (the one core rule, in
 * mg_store_new and in snapshots). Every failed add must leave the store as
 * it was: same dump, same snapshot bytes; only rejected_count moves. */
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg_test.h"
#include "test_store_util.h"

/* White-box: the estimator tests look at whether the store's mutex is
 * held while it runs. */
#include "core/mg__store.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
  return buf[i];
}

static void check_ok(const mg_store *s) {
  char err[512] = "";
  int rc = mg_store_check(s, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "check: %s\n", err);
  ASSERT_EQ(rc, 0);
}

/* Whole file, or NULL. */
static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  sbuf b = {0};
  sb_add(&b, "%s", "");
  int ch;
  while ((ch = fgetc(f)) != EOF)
    sb_add(&b, "%c", ch ? ch : '@');
  fclose(f);
  *len = b.len;
  return b.p;
}

/* The state of a store before a failure, to compare after it. */
typedef struct before {
  char *dump;
  char *snap;
  size_t snap_len;
  uint64_t rejected;
} before;

static before take_before(const mg_store *s) {
  before b;
  b.dump = store_dump(s);
  const char *p = tmp_path("before.json");
  b.snap = mg_store_save(s, p, NULL, 0) == 0 ? read_all(p, &b.snap_len) : NULL;
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  b.rejected = st.rejected_count;
  return b;
}

/* The store is exactly as in `b`, but for `rejected` more failed adds. */
static void unchanged(const mg_store *s, before *b, uint64_t rejected) {
  char *dump = store_dump(s);
  ASSERT_STR_EQ(dump, b->dump);
  const char *p = tmp_path("after.json");
  ASSERT_EQ(mg_store_save(s, p, NULL, 0), 0);
  size_t len = 0;
  char *snap = read_all(p, &len);
  ASSERT(b->snap && snap);
  ASSERT_EQ(len, b->snap_len);
  ASSERT_STR_EQ(snap, b->snap);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.rejected_count, b->rejected + rejected);
  check_ok(s);
  free(dump);
  free(snap);
}

static void before_free(before *b) {
  free(b->dump);
  free(b->snap);
}

/* ============================================================ estimator */

/* An estimator that counts its calls and says what it saw: tokens =
 * content bytes (so that it differs from the default ceil(n / 4)); the
 * content `fail_on` fails with fail_code / fail_msg, "huge" gives `huge`
 * tokens, "odd" returns 1 (not a valid code). */
typedef struct est_ctx {
  mg_store *s; /* the store, to look at its lock */
  int calls;
  const char *fail_on;
  int fail_code;
  const char *fail_msg; /* NULL: writes nothing */
  uint64_t huge;
  int locked;          /* last call: the store's mutex was held */
  int remove_rc;       /* last call: what a mutation of the store returned */
  uint64_t len_seen;   /* last call: mg_store_len of the store */
  const char *summary; /* content of repl_strategy's replacement */
} est_ctx;

static int test_estimator(void *ud, const mg_store_input *in, uint64_t *tokens,
                          char *err, size_t err_len) {
  est_ctx *c = ud;
  c->calls++;
  if (c->s) {
    int busy = pthread_mutex_trylock(&c->s->mu);
    if (busy == 0)
      pthread_mutex_unlock(&c->s->mu);
    c->locked = busy != 0;
    c->remove_rc = mg_store_remove(c->s, 999999, NULL, 0);
    c->len_seen = mg_store_len(c->s);
  }
  const char *text = in->content ? in->content : "";
  if (c->fail_on && in->content_len == strlen(c->fail_on) &&
      memcmp(text, c->fail_on, in->content_len) == 0) {
    if (c->fail_msg)
      snprintf(err, err_len, "%s", c->fail_msg);
    return c->fail_code;
  }
  if (in->content_len == 4 && memcmp(text, "huge", 4) == 0) {
    *tokens = c->huge;
    return 0;
  }
  if (in->content_len == 3 && memcmp(text, "odd", 3) == 0)
    return 1;
  *tokens = in->content_len;
  return 0;
}

/* Evicts the two oldest messages and replaces them with c->summary (no
 * tokens: the estimator gives them). */
static int repl_strategy(void *ud, const mg_store *view,
                         const mg_store_need *need, mg_store_plan *plan,
                         char *err, size_t err_len) {
  est_ctx *c = ud;
  (void)need;
  (void)err;
  (void)err_len;
  mg_store_msg m;
  for (uint64_t i = 0; i < 2 && mg_store_at(view, i, &m) == 0; i++)
    mg_store_plan_evict(plan, m.id);
  mg_store_input r = msg_text("system", c->summary);
  mg_store_plan_replace(plan, &r);
  return 0;
}

static mg_store *est_store(est_ctx *c, const char *name, uint64_t max_msgs,
                           int with_strategy) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = name;
  o.limits.max_messages = max_msgs;
  o.estimate_tokens = test_estimator;
  o.estimate_ud = c;
  if (with_strategy) {
    o.on_full = MG_STORE_ON_FULL_PRUNE;
    o.strategy = repl_strategy;
    o.strategy_ud = c;
    o.strategy_name = name;
  }
  mg_store *s = NULL;
  char err[256];
  if (mg_store_new(&o, &s, err, sizeof err) != 0) {
    fprintf(stderr, "mg_store_new: %s\n", err);
    return NULL;
  }
  c->s = s;
  return s;
}

/* An add whose estimator fails: its code, limit_type NONE, the message
 * "store '<name>': estimator failed: …", and nothing else changes. */
static void estimator_refuses(mg_store *s, est_ctx *c, const char *content,
                              int want_code, const char *want_msg) {
  before b = take_before(s);
  int calls = c->calls;
  mg_store_input in = msg_text("user", content);
  mg_store_error e;
  uint64_t id = 777;
  ASSERT_EQ(mg_store_add(s, &in, &id, &e), want_code);
  ASSERT_EQ(c->calls, calls + 1);
  ASSERT_U64_EQ(id, 777);
  ASSERT_EQ(e.code, want_code);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_NONE);
  ASSERT_U64_EQ(e.current, 0);
  ASSERT_U64_EQ(e.limit, 0);
  ASSERT_STR_EQ(e.message, want_msg);
  unchanged(s, &b, 1);
  before_free(&b);
}

TEST(estimator_failure_fails_the_add_only) {
  est_ctx c = {0};
  c.fail_on = "boom";
  c.fail_code = -EIO;
  c.fail_msg = "tokenizer offline";
  mg_store *s = est_store(&c, "est", 10, 0);
  ASSERT(s);
  ASSERT(add_text(s, "user", "a"));
  ASSERT(add_text(s, "user", "bb"));
  uint64_t id = add_text(s, "user", "ccc");
  ASSERT(id);
  ASSERT_EQ(c.calls, 3);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, id, &m), 0);
  ASSERT_U64_EQ(m.tokens, 3); /* the estimator's, not ceil(3 / 4) */
  /* it ran before the lock: nothing held the store */
  ASSERT_EQ(c.locked, 0);
  ASSERT_EQ(c.remove_rc, -ENOENT);
  ASSERT_U64_EQ(c.len_seen, 2);
  estimator_refuses(s, &c, "boom", -EIO,
                    "store 'est': estimator failed: tokenizer offline");
  /* no message of its own: the code's description */
  c.fail_msg = NULL;
  estimator_refuses(s, &c, "boom", -EIO,
                    "store 'est': estimator failed: Input/output error");
  /* more than a store can count is an error quoting the value (it was
   * capped silently) */
  c.huge = MG_STORE_LIMIT_MAX + 1;
  estimator_refuses(s, &c, "huge", -ERANGE,
                    "store 'est': estimator failed: it gave "
                    "9223372036854775808 tokens, above the maximum "
                    "9223372036854775807");
  c.huge = UINT64_MAX;
  estimator_refuses(s, &c, "huge", -ERANGE,
                    "store 'est': estimator failed: it gave "
                    "18446744073709551615 tokens, above the maximum "
                    "9223372036854775807");
  /* a positive return is not a valid answer either */
  estimator_refuses(s, &c, "odd", -EINVAL,
                    "store 'est': estimator failed: it returned 1, not 0 or "
                    "a negative error code");
  /* the store is still usable */
  ASSERT(add_text(s, "user", "dddd"));
  ASSERT_U64_EQ(mg_store_len(s), 4);
  check_ok(s);
  mg_store_free(s);
}

static int add_from_inside(void *ud, const mg_store *view) {
  (void)ud;
  mg_store_input in = msg_text("user", "inside");
  mg_store_error e;
  int rc = mg_store_add((mg_store *)view, &in, NULL, &e);
  return rc == MG_EBUSY && e.code == MG_EBUSY ? 0 : -1;
}

TEST(estimator_runs_once_per_message_and_only_when_needed) {
  est_ctx c = {0};
  mg_store *s = est_store(&c, "when", 3, 0);
  ASSERT(s);
  mg_store_error e;
  /* given tokens: never called */
  mg_store_input in = msg_text("user", "given");
  in.has_tokens = 1;
  in.tokens = 9;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  ASSERT_EQ(c.calls, 0);
  /* a malformed input is refused before it */
  in = msg_text("\xff", "bad role");
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EINVAL);
  ASSERT_EQ(c.calls, 0);
  /* a message larger than max_message_size is refused without it */
  static char big[2 * 1048576];
  memset(big, 'x', sizeof big);
  in = msg_text("user", NULL);
  in.content = big;
  in.content_len = sizeof big;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_SIZE);
  ASSERT_EQ(c.calls, 0);
  /* from inside one of the store's callbacks: busy at once */
  ASSERT_EQ(mg_store_read(s, add_from_inside, NULL), 0);
  ASSERT_EQ(c.calls, 0);
  /* once per add, even when the add then fails for a limit */
  ASSERT(add_text(s, "user", "two"));
  ASSERT(add_text(s, "user", "three"));
  ASSERT_EQ(c.calls, 2);
  in = msg_text("user", "four");
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_MESSAGE_COUNT);
  ASSERT_EQ(c.calls, 3);
  /* and never again: not by prune, stats, check or a snapshot */
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.total_tokens, 9 + 3 + 5);
  ASSERT_EQ(mg_store_prune(s, 1, NULL, NULL, 0), 0);
  ASSERT_EQ(mg_store_save(s, tmp_path("when.json"), NULL, 0), 0);
  check_ok(s);
  ASSERT_EQ(c.calls, 3);
  mg_store_free(s);
}

TEST(estimator_runs_locked_for_a_replacement) {
  est_ctx c = {0};
  c.fail_on = "boom";
  c.fail_code = -EIO;
  c.fail_msg = "tokenizer offline";
  c.summary = "summary!";
  mg_store *s = est_store(&c, "sum", 3, 1);
  ASSERT(s);
  ASSERT(add_text(s, "user", "a"));
  ASSERT(add_text(s, "user", "b"));
  ASSERT(add_text(s, "user", "c"));
  ASSERT_EQ(c.calls, 3);
  uint64_t id = add_text(s, "user", "d"); /* a, b -> "summary!" */
  ASSERT(id);
  ASSERT_EQ(c.calls, 5); /* "d" before the lock, the summary inside */
  ASSERT_EQ(c.locked, 1);
  ASSERT_EQ(c.remove_rc, MG_EBUSY); /* mutations refused, */
  ASSERT_U64_EQ(c.len_seen, 3);     /* reads work */
  mg_store_msg m;
  ASSERT_EQ(mg_store_at(s, 0, &m), 0);
  ASSERT_STR_EQ((const char *)m.content, "summary!");
  ASSERT_U64_EQ(m.tokens, 8); /* estimated by the store, once */
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.replaced_count, 1);
  ASSERT_U64_EQ(st.total_tokens, 8 + 1 + 1);
  /* a replacement the estimator fails on poisons the plan: the add fails
   * with the estimator's code and message, and nothing changes */
  c.summary = "boom";
  before b = take_before(s);
  mg_store_input in = msg_text("user", "e");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EIO);
  ASSERT_EQ(e.code, -EIO);
  ASSERT_STR_EQ(e.message, "Message count 3 exceeds limit of 3: strategy "
                           "'sum' gave a replacement whose tokens could not "
                           "be estimated: estimator failed: tokenizer offline");
  unchanged(s, &b, 1);
  /* make_room says the same */
  mg_store_need need = {0};
  need.count = 1;
  uint64_t removed = 99;
  ASSERT_EQ(mg_store_make_room(s, &need, &removed, &e), -EIO);
  ASSERT_U64_EQ(removed, 99);
  ASSERT_STR_EQ(e.message, "store 'sum' could not make room: strategy 'sum' "
                           "gave a replacement whose tokens could not be "
                           "estimated: estimator failed: tokenizer offline");
  unchanged(s, &b, 1); /* make_room is not an add */
  before_free(&b);
  mg_store_free(s);
}

TEST(estimator_failure_fails_a_load) {
  /* v1_small.json's message id 5 ("hello") has no "tokens" */
  est_ctx c = {0};
  c.fail_on = "hello";
  c.fail_code = -EIO;
  c.fail_msg = "tokenizer offline";
  mg_store_options o;
  mg_store_options_init(&o);
  o.estimate_tokens = test_estimator;
  o.estimate_ud = &c;
  mg_store *s = (mg_store *)1;
  char err[512] = "";
  const char *path = mg_fixture("store/v1_small.json");
  ASSERT_EQ(mg_store_load(path, &o, &s, err, sizeof err), -EIO);
  ASSERT(s == NULL);
  ASSERT_EQ(c.calls, 1);
  ASSERT_CONTAINS(err, "store snapshot '");
  ASSERT_CONTAINS(err, "v1_small.json': messages[2] (id 5): estimator "
                       "failed: tokenizer offline");
  /* the same estimator, not failing: the file loads with its tokens */
  c.fail_on = NULL;
  ASSERT_EQ(mg_store_load(path, &o, &s, err, sizeof err), 0);
  ASSERT_EQ(c.calls, 2);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, 5, &m), 0);
  ASSERT_U64_EQ(m.tokens, 5); /* the estimator's, not ceil(5 / 4) */
  check_ok(s);
  mg_store_free(s);
}

/* ============================================================ names */

static int new_named(const char *name, char *err, size_t err_len) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = name;
  mg_store *s = NULL;
  int rc = mg_store_new(&o, &s, err, err_len);
  if (rc == 0) {
    if (strcmp(mg_store_name(s), name ? name : "store") != 0)
      rc = -1000;
    mg_store_free(s);
  } else if (s != NULL) {
    rc = -1001;
  }
  return rc;
}

TEST(store_names_follow_the_core_rule) {
  ASSERT_EQ(MG_STORE_NAME_MAX, MG_NAME_MAX);
  ASSERT_EQ(MG_STORE_NAME_MAX, 64);
  char n64[65], n65[66];
  memset(n64, 'n', 64);
  n64[64] = 0;
  memset(n65, 'n', 65);
  n65[65] = 0;
  const char *ok[] = {"a", "ctx-1", "a.b_c", "...", n64, NULL};
  for (int i = 0; ok[i]; i++)
    ASSERT_EQ(new_named(ok[i], NULL, 0), 0);
  ASSERT_EQ(new_named(NULL, NULL, 0), 0); /* the default, "store" */
  static const struct {
    const char *name, *why;
  } bad[] = {{"", "store name: required: "},
             {".", "store name: invalid name '.' (\".\" and \"..\" are not "
                   "names)"},
             {"..", "(\".\" and \"..\" are not names)"},
             {"a/b", "store name: invalid name 'a/b' (it holds a '/')"},
             {"a b", "invalid name 'a b' (it holds a character outside the "
                     "alphabet)"},
             {"caf\xc3\xa9", "outside the alphabet"}, /* UTF-8 was allowed */
             {NULL, NULL}};
  char err[512];
  for (int i = 0; bad[i].name; i++) {
    err[0] = 0;
    ASSERT_EQ(new_named(bad[i].name, err, sizeof err), -EINVAL);
    ASSERT(strstr(err, "store name: ") == err);
    ASSERT_CONTAINS(err, bad[i].why);
    ASSERT_CONTAINS(err, MG_NAME_ACCEPTED); /* says what is accepted */
  }
  ASSERT_EQ(new_named(n65, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "(it is longer than 64 bytes): 1 to 64 characters");
}

/* Write a snapshot with this JSON for its "name" (NULL: none) and
 * return its path. */
static const char *snapshot_named(const char *file, const char *name_json) {
  const char *path = tmp_path(file);
  FILE *f = fopen(path, "w");
  if (!f)
    return NULL;
  fprintf(f,
          "{\"format\":\"mgrun-store\",\"version\":1,%s%s%s\"limits\":{"
          "\"max_messages\":10,\"max_message_size_bytes\":1048576,"
          "\"max_total_size_bytes\":104857600,\"max_tokens\":0,"
          "\"warn_at\":0.8},\"next_id\":2,\"messages\":[{\"id\":1,"
          "\"content\":\"hi\"}]}\n",
          name_json ? "\"name\":" : "", name_json ? name_json : "",
          name_json ? "," : "");
  fclose(f);
  return path;
}

static void load_refused(const char *path, const mg_store_options *o, int want,
                         const char *want_msg) {
  mg_store *s = (mg_store *)1;
  char err[512] = "";
  int rc = mg_store_load(path, o, &s, err, sizeof err);
  if (rc != want || !strstr(err, want_msg))
    fprintf(stderr, "%s: %d %s\n", path, rc, err);
  ASSERT_EQ(rc, want);
  ASSERT(s == NULL);
  ASSERT_CONTAINS(err, path); /* names the file */
  ASSERT_CONTAINS(err, want_msg);
}

TEST(snapshot_names_follow_the_rule) {
  /* a NUL inside the name is refused, not cut short to "a" */
  const char *p = snapshot_named("nul.json", "\"a\\u0000b\"");
  ASSERT(p);
  load_refused(p, NULL, MG_ECORRUPT,
               "': store name: invalid name 'a?b' (it holds a NUL "
               "byte): " MG_NAME_ACCEPTED);
  p = snapshot_named("slash.json", "\"../etc\"");
  load_refused(p, NULL, MG_ECORRUPT,
               "store name: invalid name '../etc' (it holds a '/')");
  p = snapshot_named(
      "long.json",
      "\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"");
  load_refused(p, NULL, MG_ECORRUPT, "(it is longer than 64 bytes)");
  p = snapshot_named("empty.json", "\"\"");
  load_refused(p, NULL, MG_ECORRUPT, "store name: required: ");
  p = snapshot_named("number.json", "5");
  load_refused(p, NULL, MG_ECORRUPT,
               "': \"name\" is not a string; it must be a store "
               "name: " MG_NAME_ACCEPTED);
  p = snapshot_named("none.json", NULL);
  load_refused(p, NULL, MG_ECORRUPT, "': \"name\" is missing; it must be");
  /* the file's name must be valid even when the options give another */
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "other";
  p = snapshot_named("nul.json", "\"a\\u0000b\"");
  load_refused(p, &o, MG_ECORRUPT, "it holds a NUL byte");
  /* a bad name in the options is the caller's error, not a corrupt file */
  p = snapshot_named("good.json", "\"good\"");
  o.name = "a b";
  load_refused(p, &o, -EINVAL, "cannot load store snapshot '");
  load_refused(p, &o, -EINVAL, "good.json': store name: invalid name 'a b'");
  /* and a good one loads, under the options' name or the file's */
  mg_store *s = NULL;
  char err[512];
  o.name = "other";
  ASSERT_EQ(mg_store_load(p, &o, &s, err, sizeof err), 0);
  ASSERT_STR_EQ(mg_store_name(s), "other");
  mg_store_free(s);
  ASSERT_EQ(mg_store_load(p, NULL, &s, err, sizeof err), 0);
  ASSERT_STR_EQ(mg_store_name(s), "good");
  ASSERT_U64_EQ(mg_store_len(s), 1);
  mg_store_free(s);
  const char *files[] = {"nul.json",    "slash.json", "long.json", "empty.json",
                         "number.json", "none.json",  "good.json", NULL};
  for (int i = 0; files[i]; i++)
    unlink(tmp_path(files[i]));
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mg_test_store_errors.%ld",
           (long)getpid());
  mkdir(tmpdir, 0700);
  RUN(estimator_failure_fails_the_add_only);
  RUN(estimator_runs_once_per_message_and_only_when_needed);
  RUN(estimator_runs_locked_for_a_replacement);
  RUN(estimator_failure_fails_a_load);
  RUN(store_names_follow_the_core_rule);
  RUN(snapshot_names_follow_the_rule);
  unlink(tmp_path("before.json"));
  unlink(tmp_path("after.json"));
  unlink(tmp_path("when.json"));
  rmdir(tmpdir);
  return mg_test_report();
}
