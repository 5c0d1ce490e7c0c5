/* test_store_errors.c — the store's error paths through its C API: a token
 * estimator that fails (for an add, a strategy's replacement, a load) and
 * exactly when it runs, locked or not; store names (the one core rule, in
 * mg_store_new and in snapshots); and what the messages say: counts that
 * read right for 1 and for many, overflow that is not called a limit,
 * load and save errors that name the real problem, reasons that quote
 * their values. Every failed add must leave the store as it was: same
 * dump, same snapshot bytes; only rejected_count moves. */
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
  int repl_has_tokens; /* the replacement gives repl_tokens */
  uint64_t repl_tokens;
  int repl_mode; /* REPL_* */
} est_ctx;

enum { REPL_ONE = 0, REPL_TWO, REPL_OVERSIZED, REPL_NULL };

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
  r.has_tokens = c->repl_has_tokens;
  r.tokens = c->repl_tokens;
  static char big[(1 << 20) + 1];
  if (c->repl_mode == REPL_OVERSIZED) {
    r.content = big;
    r.content_len = sizeof big;
  }
  mg_store_plan_replace(plan, c->repl_mode == REPL_NULL ? NULL : &r);
  if (c->repl_mode == REPL_TWO)
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

/* Write a snapshot with this JSON for its "name" (NULL: none), next_id
 * and messages, and return its path. */
static const char *write_snapshot(const char *file, const char *name_json,
                                  const char *next_id, const char *messages) {
  const char *path = tmp_path(file);
  FILE *f = fopen(path, "w");
  if (!f)
    return NULL;
  fprintf(f,
          "{\"format\":\"mgrun-store\",\"version\":1,%s%s%s\"limits\":{"
          "\"max_messages\":10,\"max_message_size_bytes\":1048576,"
          "\"max_total_size_bytes\":104857600,\"max_tokens\":0,"
          "\"warn_at\":0.8},\"next_id\":%s,\"messages\":[%s]}\n",
          name_json ? "\"name\":" : "", name_json ? name_json : "",
          name_json ? "," : "", next_id, messages);
  fclose(f);
  return path;
}

static const char *snapshot_named(const char *file, const char *name_json) {
  return write_snapshot(file, name_json, "2", "{\"id\":1,\"content\":\"hi\"}");
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

/* ============================================================ messages */

static mg_store *plain_store(const char *name, uint64_t max_msgs,
                             uint64_t max_msg, uint64_t max_total,
                             uint64_t max_tokens, mg_store_on_full on_full) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = name;
  o.limits.max_messages = max_msgs;
  o.limits.max_message_size_bytes = max_msg;
  o.limits.max_total_size_bytes = max_total;
  o.limits.max_tokens = max_tokens;
  o.on_full = on_full;
  mg_store *s = NULL;
  char err[256];
  if (mg_store_new(&o, &s, err, sizeof err) != 0) {
    fprintf(stderr, "mg_store_new: %s\n", err);
    return NULL;
  }
  return s;
}

static uint64_t add_in(mg_store *s, const char *role, const char *content,
                       const char *group, int pinned) {
  mg_store_input in = msg_text(role, content);
  in.group = group;
  in.pinned = pinned;
  uint64_t id = 0;
  mg_store_error e;
  if (mg_store_add(s, &in, &id, &e) != 0)
    fprintf(stderr, "add failed: %s\n", e.message);
  return id;
}

/* Counts in messages read "1 message" and "2 messages" (they said
 * "1 messages" and the like). */
TEST(messages_count_one_and_many) {
  mg_store_error e;
  /* the details of a limit error */
  mg_store *s =
      plain_store("one", 1, 1048576, 104857600, 0, MG_STORE_ON_FULL_ERROR);
  ASSERT(s);
  ASSERT(add_in(s, NULL, "x", NULL, 0));
  mg_store_input in = msg_text(NULL, "y");
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.details, "store 'one': 1 message, 257 bytes, 1 token; adding "
                           "a message of 257 bytes, 1 token");
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  l.max_messages = 2;
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  ASSERT(add_in(s, NULL, "xxxxxxxx", NULL, 0));
  in = msg_text(NULL, "yyyyy");
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.details, "store 'one': 2 messages, 521 bytes, 3 tokens; "
                           "adding a message of 261 bytes, 2 tokens");
  mg_store_free(s);
  /* what "oldest" could free, against what was needed */
  s = plain_store("old", 3, 1048576, 104857600, 0, MG_STORE_ON_FULL_PRUNE);
  ASSERT(s);
  ASSERT(add_in(s, "assistant", "call", "g", 0));
  ASSERT(add_in(s, "tool", "result", "g", 1)); /* pins the group */
  ASSERT(add_in(s, NULL, "x", NULL, 0));
  mg_store_get_limits(s, &l);
  l.max_messages = 2; /* lowered: an add now needs 2 messages freed */
  ASSERT_EQ(mg_store_set_limits(s, &l, NULL, 0), 0);
  in = msg_text(NULL, "new");
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "strategy 'oldest' could free only 1 message, "
                             "257 bytes and 1 token of the 2 messages, 0 "
                             "bytes and 0 tokens needed: the rest is pinned");
  mg_store_free(s);
  /* nothing free at all, against one message needed */
  s = plain_store("old2", 2, 1048576, 104857600, 0, MG_STORE_ON_FULL_PRUNE);
  ASSERT(s);
  ASSERT(add_in(s, "assistant", "call", "g", 0));
  ASSERT(add_in(s, "tool", "result", "g", 1));
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ESTRATEGY);
  ASSERT_CONTAINS(e.message, "strategy 'oldest' could free only 0 messages, "
                             "0 bytes and 0 tokens of the 1 message, 0 bytes "
                             "and 0 tokens needed");
  mg_store_free(s);
}

/* mg_store_check's own messages count right too (white-box corruption). */
TEST(check_messages_count_one_and_many) {
  mg_store *s =
      plain_store("chk", 10, 1048576, 104857600, 0, MG_STORE_ON_FULL_ERROR);
  ASSERT(s);
  ASSERT(add_in(s, NULL, "x", NULL, 0));
  char err[256];
  s->count = 2;
  ASSERT_EQ(mg_store_check(s, err, sizeof err), MG_ECORRUPT);
  ASSERT_STR_EQ(err, "count 2 but 1 message listed");
  s->count = 1;
  s->pinned_count = 1;
  ASSERT_EQ(mg_store_check(s, err, sizeof err), MG_ECORRUPT);
  ASSERT_STR_EQ(err, "accounted pinned 1 message / 0 bytes != sums 0 / 0");
  s->pinned_count = 0;
  check_ok(s);
  mg_store_free(s);
}

/* "Token count X exceeds limit of X" came for a store with no token limit
 * when the total would overflow: an overflow is no limit, and says so. */
TEST(token_overflow_is_not_a_limit) {
  mg_store *s =
      plain_store("ovf", 10, 1048576, 104857600, 0, MG_STORE_ON_FULL_ERROR);
  ASSERT(s);
  mg_store_input in = msg_text("user", "a lot");
  in.has_tokens = 1;
  in.tokens = MG_STORE_LIMIT_MAX - 5;
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  before b = take_before(s);
  in.tokens = 10;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EOVERFLOW);
  ASSERT_EQ(e.code, -EOVERFLOW);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_NONE);
  ASSERT_STR_EQ(e.message,
                "store 'ovf': the token total would overflow: "
                "9223372036854775802 tokens held + 10 in the message is more "
                "than 9223372036854775807 (2^63 - 1), the most a store counts");
  ASSERT(strstr(e.message, "exceeds limit") == NULL);
  ASSERT_U64_EQ(e.current, MG_STORE_LIMIT_MAX + 5);
  ASSERT_U64_EQ(e.limit, MG_STORE_LIMIT_MAX);
  unchanged(s, &b, 1);
  before_free(&b);
  /* up to the last token fits */
  in.tokens = 5;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  in.tokens = 1;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EOVERFLOW);
  ASSERT_CONTAINS(e.message, "9223372036854775807 tokens held + 1 in the "
                             "message");
  in.tokens = 0;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  check_ok(s);
  mg_store_free(s);
  /* with a token limit, the limit is what answers */
  s = plain_store("lim", 10, 1048576, 104857600, 100, MG_STORE_ON_FULL_ERROR);
  ASSERT(s);
  in.tokens = 50;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  in.tokens = MG_STORE_LIMIT_MAX;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_TOKENS);
  ASSERT_STR_EQ(e.message, "Token count 9223372036854775857 exceeds limit of "
                           "100");
  ASSERT_EQ(mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE), 0);
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.message, "Token count 9223372036854775857 exceeds limit of "
                           "100: the message alone has 9223372036854775807 "
                           "tokens, more than max_tokens 100");
  check_ok(s);
  mg_store_free(s);
}

/* A strategy's replacement could carry the token total past 2^63 - 1 (no
 * token limit stopped it): refused, the store unchanged. */
TEST(replacement_token_overflow_refused) {
  est_ctx c = {0};
  c.summary = "summary";
  c.repl_has_tokens = 1;
  c.repl_tokens = MG_STORE_LIMIT_MAX;
  mg_store *s = est_store(&c, "big", 3, 1);
  ASSERT(s);
  ASSERT(add_text(s, "user", "a"));
  ASSERT(add_text(s, "user", "b"));
  ASSERT(add_text(s, "user", "c")); /* 1 token each */
  before b = take_before(s);
  mg_store_input in = msg_text("user", "d");
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EOVERFLOW);
  ASSERT_STR_EQ(e.message,
                "Message count 3 exceeds limit of 3: strategy 'big' gave a "
                "replacement of 9223372036854775807 tokens: the token total "
                "would overflow: 1 token held + 9223372036854775808 in the "
                "replacement and the message is more than 9223372036854775807 "
                "(2^63 - 1), the most a store counts");
  unchanged(s, &b, 1);
  mg_store_need need = {0};
  need.count = 1;
  ASSERT_EQ(mg_store_make_room(s, &need, NULL, &e), -EOVERFLOW);
  ASSERT_CONTAINS(e.message, "store 'big' could not make room: strategy 'big' "
                             "gave a replacement of 9223372036854775807 "
                             "tokens: the token total would overflow: 1 token "
                             "held + 9223372036854775807 in the replacement "
                             "is more than");
  unchanged(s, &b, 1);
  before_free(&b);
  /* exactly up to 2^63 - 1 is fine */
  c.repl_tokens = MG_STORE_LIMIT_MAX - 2;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.total_tokens, MG_STORE_LIMIT_MAX);
  check_ok(s);
  mg_store_free(s);
}

TEST(ids_exhausted_is_said_plainly) {
  const char *p =
      write_snapshot("ids.json", "\"ids\"", "9223372036854775805", "");
  ASSERT(p);
  mg_store *s = NULL;
  char err[512];
  ASSERT_EQ(mg_store_load(p, NULL, &s, err, sizeof err), 0);
  mg_store_input in = msg_text("user", "last");
  uint64_t id = 0;
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, &id, &e), 0);
  ASSERT_U64_EQ(id, MG_STORE_ID_MAX - 2);
  before b = take_before(s);
  ASSERT_EQ(mg_store_add(s, &in, &id, &e), -EOVERFLOW);
  ASSERT_EQ(e.limit_type, MG_STORE_LIMIT_NONE);
  ASSERT_STR_EQ(e.message, "store 'ids': message ids are exhausted: the next "
                           "id would be 9223372036854775806, and a store "
                           "gives out ids up to 9223372036854775805");
  unchanged(s, &b, 1);
  before_free(&b);
  mg_store_free(s);
  unlink(p);
}

/* The reasons after the seed's sentence quote the values they compare. */
TEST(room_reasons_quote_their_values) {
  static char c600[600 - MG_STORE_MSG_OVERHEAD + 1],
      c500[500 - MG_STORE_MSG_OVERHEAD + 1],
      c1100[1100 - MG_STORE_MSG_OVERHEAD + 1];
  memset(c600, 'p', sizeof c600 - 1);
  memset(c500, 'm', sizeof c500 - 1);
  memset(c1100, 'b', sizeof c1100 - 1);
  mg_store *s =
      plain_store("room", 10, 2048, 1024, 100, MG_STORE_ON_FULL_PRUNE);
  ASSERT(s);
  ASSERT(add_in(s, NULL, c600, NULL, 1));
  mg_store_input in = msg_text(NULL, c500);
  mg_store_error e;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.message, "Total size 1100 exceeds limit of 1024: pinned "
                           "messages alone hold 600 bytes of max_total_size "
                           "1024, and the message needs 500 bytes");
  in = msg_text(NULL, c1100);
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.message, "Total size 1700 exceeds limit of 1024: the "
                           "message alone (1100 bytes) is larger than "
                           "max_total_size 1024");
  in = msg_text(NULL, "t");
  in.has_tokens = 1;
  in.tokens = 101; /* the pinned message has ceil(344 / 4) = 86 */
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_STR_EQ(e.message, "Token count 187 exceeds limit of 100: the message "
                           "alone has 101 tokens, more than max_tokens 100");
  check_ok(s);
  mg_store_free(s);
}

/* What a strategy's replacement did wrong, with what is accepted. */
TEST(replacement_errors_say_what_is_accepted) {
  est_ctx c = {0};
  c.summary = "summary";
  mg_store *s = est_store(&c, "rep", 3, 1);
  ASSERT(s);
  ASSERT(add_text(s, "user", "a"));
  ASSERT(add_text(s, "user", "b"));
  ASSERT(add_text(s, "user", "c"));
  before b = take_before(s);
  mg_store_input in = msg_text("user", "d");
  mg_store_error e;
  c.repl_mode = REPL_TWO;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EINVAL);
  ASSERT_CONTAINS(e.message, ": strategy 'rep' gave more than one "
                             "replacement (a plan takes at most one)");
  c.repl_mode = REPL_OVERSIZED;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), MG_ELIMIT);
  ASSERT_CONTAINS(e.message, ": strategy 'rep' gave a replacement whose size "
                             "1048839 exceeds max_message_size 1048576");
  c.repl_mode = REPL_NULL;
  ASSERT_EQ(mg_store_add(s, &in, NULL, &e), -EINVAL);
  ASSERT_CONTAINS(e.message, ": strategy 'rep' gave an invalid replacement: "
                             "no message given (NULL)");
  unchanged(s, &b, 3);
  before_free(&b);
  mg_store_free(s);
}

/* ============================================================ files */

TEST(load_errors_say_what_is_wrong) {
  /* a directory was "truncated or corrupt" */
  load_refused(tmpdir, NULL, -EISDIR, "cannot load store snapshot '");
  load_refused(tmpdir, NULL, -EISDIR,
               "': it is a directory, not a snapshot file");
  /* an empty file is empty */
  const char *p = tmp_path("empty-file.json");
  FILE *f = fopen(p, "w");
  ASSERT(f);
  fclose(f);
  load_refused(p, NULL, MG_ECORRUPT,
               "' is empty (0 bytes): a snapshot is one JSON object");
  unlink(p);
  /* a file that cannot be read says so, with the system's reason */
  f = fopen("/proc/self/mem", "r");
  if (f) {
    fclose(f);
    load_refused("/proc/self/mem", NULL, -EIO,
                 "cannot read store snapshot '/proc/self/mem': Input/output "
                 "error");
  }
  /* the others keep their messages: missing, truncated, corrupt (with
   * line and column), wrong version */
  load_refused(tmp_path("missing.json"), NULL, -ENOENT,
               "cannot open store snapshot '");
  load_refused(mg_fixture("store/truncated.json"), NULL, MG_ECORRUPT,
               "' is truncated or corrupt: ");
  load_refused(mg_fixture("store/corrupt.json"), NULL, MG_ECORRUPT,
               "(line 1, column ");
  load_refused(mg_fixture("store/version2.json"), NULL, MG_EVERSION,
               "' has version 2; this mgrun reads version 1");
  /* a message's "id": what was found, and what is accepted */
  p = write_snapshot("noid.json", "\"x\"", "3", "{\"content\":\"a\"}");
  load_refused(p, NULL, MG_ECORRUPT,
               "': messages[0]: \"id\" is missing: it must be an integer from "
               "1 to next_id - 1 (2)");
  p = write_snapshot("strid.json", "\"x\"", "3",
                     "{\"id\":\"1\",\"content\":\"a\"}");
  load_refused(p, NULL, MG_ECORRUPT,
               "': messages[0]: \"id\" is not an integer: it must be");
  p = write_snapshot("zeroid.json", "\"x\"", "3",
                     "{\"id\":0,\"content\":\"a\"}");
  load_refused(p, NULL, MG_ECORRUPT, "\"id\" 0 is out of range: it must be");
  /* a token total past 2^63 - 1 in a file */
  p = write_snapshot("tokens.json", "\"x\"", "3",
                     "{\"id\":1,\"content\":\"a\",\"tokens\":"
                     "9223372036854775807},{\"id\":2,\"content\":\"b\","
                     "\"tokens\":1}");
  load_refused(p, NULL, MG_ECORRUPT,
               "': messages[1] (id 2): the token total would overflow: "
               "9223372036854775807 tokens held + 1 in this message is more "
               "than 9223372036854775807 (2^63 - 1)");
  const char *files[] = {"noid.json", "strid.json", "zeroid.json",
                         "tokens.json", NULL};
  for (int i = 0; files[i]; i++)
    unlink(tmp_path(files[i]));
}

TEST(save_path_errors_say_which) {
  mg_store *s =
      plain_store("save", 10, 1048576, 104857600, 0, MG_STORE_ON_FULL_ERROR);
  ASSERT(s);
  char err[256];
  ASSERT_EQ(mg_store_save(s, "", err, sizeof err), -EINVAL);
  ASSERT_STR_EQ(err, "cannot save store snapshot: the path is empty");
  ASSERT_EQ(mg_store_save(s, NULL, err, sizeof err), -EINVAL);
  ASSERT_STR_EQ(err, "cannot save store snapshot: the path is empty");
  static char longp[5001];
  memset(longp, 'a', sizeof longp - 1);
  ASSERT_EQ(mg_store_save(s, longp, err, sizeof err), -ENAMETOOLONG);
  ASSERT_STR_EQ(err, "cannot save store snapshot: the path is 5000 bytes "
                     "long, at most 4095 are accepted");
  mg_store_free(s);
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
  RUN(messages_count_one_and_many);
  RUN(check_messages_count_one_and_many);
  RUN(token_overflow_is_not_a_limit);
  RUN(replacement_token_overflow_refused);
  RUN(ids_exhausted_is_said_plainly);
  RUN(room_reasons_quote_their_values);
  RUN(replacement_errors_say_what_is_accepted);
  RUN(load_errors_say_what_is_wrong);
  RUN(save_path_errors_say_which);
  /* every file a test may leave behind, even one that failed midway */
  static const char *const files[] = {
      "before.json", "after.json", "when.json",   "nul.json",
      "slash.json",  "long.json",  "empty.json",  "number.json",
      "none.json",   "good.json",  "ids.json",    "empty-file.json",
      "noid.json",   "strid.json", "zeroid.json", "tokens.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    unlink(tmp_path(files[i]));
  rmdir(tmpdir);
  return mg_test_report();
}
