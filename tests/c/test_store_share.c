/* test_store_share.c — a store with several holders: references
 * (mg_store_retain / mg_store_free as release) and closing (mg_store_close)
 * as a host that shares a policy's store with its own threads uses them.
 * Closing drops the messages without an archive line or on_evict, detaches
 * the callbacks and refuses every later change with MG_ECLOSED; memory
 * goes with the last reference (ASan checks both: no leak, no use after
 * free). Also run under TSan (threads that add while one closes). */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg_test.h"

static mg_store *new_store(const char *name) {
  mg_store_options o;
  mg_store *s = NULL;
  char err[256];
  mg_store_options_init(&o);
  o.name = name;
  int rc = mg_store_new(&o, &s, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "mg_store_new: %s\n", err);
  return s;
}

static int add_text(mg_store *s, const char *text, mg_store_error *e) {
  mg_store_input in = {0};
  in.role = "user";
  in.content = text;
  in.content_len = strlen(text);
  return mg_store_add(s, &in, NULL, e);
}

TEST(references_keep_the_store_until_the_last_release) {
  mg_store *s = new_store("shared");
  ASSERT(s != NULL);
  mg_store_error e;
  ASSERT_EQ(add_text(s, "hello", &e), 0);
  ASSERT(mg_store_retain(s) == s);
  mg_store_free(s); /* the creator's reference */
  /* the second holder still has a live store */
  ASSERT_U64_EQ(mg_store_len(s), 1);
  ASSERT_EQ(add_text(s, "again", &e), 0);
  ASSERT_U64_EQ(mg_store_len(s), 2);
  ASSERT_EQ(mg_store_closed(s), 0);
  mg_store_free(s); /* the last: freed (ASan: no leak) */
  ASSERT(mg_store_retain(NULL) == NULL);
  mg_store_free(NULL);
}

static int evicted_calls;
static int warn_calls;
static int evict_cb(void *ud, const mg_store *view, const mg_store_batch *b,
                    mg_store_evict_reason r, char *err, size_t len) {
  (void)ud, (void)view, (void)b, (void)r, (void)err, (void)len;
  evicted_calls++;
  return 0;
}
static void warn_cb(void *ud, mg_store *store, mg_store_warn_kind k,
                    const mg_store_stats *st) {
  (void)ud, (void)store, (void)k, (void)st;
  warn_calls++;
}

TEST(close_drops_messages_and_refuses_changes_for_every_holder) {
  mg_store *s = new_store("ctx");
  ASSERT(s != NULL);
  ASSERT_EQ(mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE), 0);
  mg_store_error e;
  for (int i = 0; i < 5; i++)
    ASSERT_EQ(add_text(s, "a message", &e), 0);
  mg_store *other = mg_store_retain(s);
  ASSERT_EQ(mg_store_close(s), 0);
  ASSERT_EQ(mg_store_closed(other), 1);
  ASSERT_U64_EQ(mg_store_len(other), 0);
  mg_store_stats st;
  mg_store_get_stats(other, &st);
  ASSERT_U64_EQ(st.message_count, 0);
  ASSERT_U64_EQ(st.total_size_bytes, 0);
  char err[256] = "";
  ASSERT_EQ(mg_store_check(other, err, sizeof err), 0);

  ASSERT_EQ(add_text(other, "late", &e), MG_ECLOSED);
  ASSERT_EQ(e.code, MG_ECLOSED);
  ASSERT_STR_EQ(e.message, "store 'ctx' is closed");
  ASSERT_EQ(mg_store_remove(other, 1, err, sizeof err), MG_ECLOSED);
  ASSERT_STR_EQ(err, "store 'ctx' is closed");
  uint64_t n = 99;
  ASSERT_EQ(mg_store_clear(other, &n), MG_ECLOSED);
  ASSERT_EQ(mg_store_prune(other, 1, &n, err, sizeof err), MG_ECLOSED);
  mg_store_limits lim;
  mg_store_get_limits(other, &lim);
  ASSERT_EQ(mg_store_set_limits(other, &lim, err, sizeof err), MG_ECLOSED);
  ASSERT_EQ(mg_store_close(other), 0); /* idempotent */
  ASSERT_STR_EQ(mg_err_name(MG_ECLOSED), "ECLOSED");
  mg_store_free(s);
  mg_store_free(other);
}

TEST(close_runs_no_callback_and_writes_no_archive) {
  char dir[] = "/tmp/mg-test-share-XXXXXX";
  ASSERT(mkdtemp(dir) != NULL);
  char path[256];
  snprintf(path, sizeof path, "%s/archive.jsonl", dir);
  mg_store_options o;
  mg_store *s = NULL;
  char err[256];
  mg_store_options_init(&o);
  o.name = "arch";
  o.archive_path = path;
  o.on_evict = evict_cb;
  o.on_warn = warn_cb;
  o.limits.max_messages = 10;
  o.limits.warn_at = 0.5;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), 0);
  mg_store_error e;
  for (int i = 0; i < 4; i++)
    ASSERT_EQ(add_text(s, "kept until close", &e), 0);
  int warns = warn_calls;
  evicted_calls = 0;
  ASSERT_EQ(mg_store_close(s), 0);
  ASSERT_EQ(evicted_calls, 0);
  ASSERT_EQ(warn_calls, warns);
  ASSERT(access(path, F_OK) != 0); /* nothing was archived */
  mg_store_free(s);
  rmdir(dir);
}

static int close_inside_rc;
static int closing_strategy(void *ud, const mg_store *view,
                            const mg_store_need *need, mg_store_plan *plan,
                            char *err, size_t len) {
  (void)need, (void)plan, (void)err, (void)len;
  close_inside_rc = mg_store_close((mg_store *)ud);
  (void)view;
  return mg_errf(err, len, -EPERM, "this strategy evicts nothing");
}

TEST(close_from_inside_a_callback_is_busy) {
  mg_store_options o;
  mg_store *s = NULL;
  char err[256];
  mg_store_options_init(&o);
  o.limits.max_messages = 1;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), 0);
  ASSERT_EQ(mg_store_set_strategy(s, closing_strategy, s, "closer"), 0);
  mg_store_error e;
  ASSERT_EQ(add_text(s, "one", &e), 0);
  ASSERT(add_text(s, "two", &e) < 0);
  ASSERT_EQ(close_inside_rc, MG_EBUSY);
  ASSERT_EQ(mg_store_closed(s), 0);
  ASSERT_U64_EQ(mg_store_len(s), 1);
  mg_store_free(s);
}

typedef struct adder {
  mg_store *s;
  int ok, closed, other;
} adder;

/* Adds until the store says it is closed (by events, not by time: the
 * main thread closes it once it holds 100 messages), then a few more. */
static void *add_until_closed(void *arg) {
  adder *a = arg;
  mg_store_error e;
  for (long i = 0; a->closed < 10 && i < 100000000L; i++) {
    int rc = add_text(a->s, "from a thread", &e);
    if (rc == 0)
      a->ok++;
    else if (rc == MG_ECLOSED)
      a->closed++;
    else
      a->other++;
  }
  mg_store_free(a->s);
  return NULL;
}

TEST(threads_adding_while_the_store_is_closed) {
  mg_store *s = new_store("busy");
  ASSERT(s != NULL);
  ASSERT_EQ(mg_store_set_on_full(s, MG_STORE_ON_FULL_PRUNE), 0);
  pthread_t t[3];
  adder a[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (adder){mg_store_retain(s), 0, 0, 0};
    ASSERT_EQ(pthread_create(&t[i], NULL, add_until_closed, &a[i]), 0);
  }
  while (mg_store_len(s) < 100)
    usleep(100);
  ASSERT_EQ(mg_store_close(s), 0);
  mg_store_free(s);
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    ASSERT_EQ(a[i].other, 0);
    ASSERT_EQ(a[i].closed, 10); /* every thread saw the close */
  }
}

int main(void) {
  RUN(references_keep_the_store_until_the_last_release);
  RUN(close_drops_messages_and_refuses_changes_for_every_holder);
  RUN(close_runs_no_callback_and_writes_no_archive);
  RUN(close_from_inside_a_callback_is_busy);
  RUN(threads_adding_while_the_store_is_closed);
  return mg_test_report();
}
