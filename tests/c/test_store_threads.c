/* test_store_threads.c — four threads share one store for about a second:
 * two add (groups, a few pins, prune-on-full evicting through on_evict),
 * one prunes / removes / makes room / changes limits, one reads and checks
 * every invariant under mg_store_read. At the end the books must balance:
 * adds = messages left + evicted + removed, on_evict saw every eviction,
 * and mg_store_check passes. (Also clean under -fsanitize=thread.) */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg_test.h"
#include "test_store_util.h"

static atomic_int stop;
static atomic_ulong evicted_seen;
static atomic_ulong adds_ok, adds_failed, removed_ok, reads_done, checks_done;
static atomic_int failures;
static char failure_text[512];
static pthread_mutex_t failure_mu = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, const char *detail) {
  pthread_mutex_lock(&failure_mu);
  if (!failure_text[0])
    snprintf(failure_text, sizeof failure_text, "%s%s", what, detail);
  pthread_mutex_unlock(&failure_mu);
  atomic_fetch_add(&failures, 1);
}

static int on_evict(void *ud, const mg_store *view, const mg_store_batch *b,
                    mg_store_evict_reason reason, char *err, size_t err_len) {
  (void)ud;
  (void)reason;
  (void)err;
  (void)err_len;
  /* the batch is still in the store, and we are inside its lock */
  for (size_t i = 0; i < mg_store_batch_len(b); i++) {
    mg_store_msg m, g;
    if (mg_store_batch_at(b, i, &m) != 0 || mg_store_get(view, m.id, &g) != 0)
      return -EINVAL;
    if (m.pinned)
      fail("", "a pinned message was evicted");
  }
  atomic_fetch_add(&evicted_seen, mg_store_batch_len(b));
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct worker {
  mg_store *s;
  int id;
  unsigned seed;
} worker;

static void *adder(void *arg) {
  worker *w = arg;
  static const char body[2048] = "x";
  int pins = 0;
  while (!atomic_load(&stop)) {
    unsigned r = rand_r(&w->seed);
    mg_store_input in = {0};
    in.role = "user";
    in.content = body;
    in.content_len = r % 700;
    char g[16];
    if (r % 3 == 0) {
      snprintf(g, sizeof g, "t%d-g%u", w->id, (r >> 4) % 8);
      in.group = g;
    }
    if (pins < 3 && r % 1000 == 0) { /* a system prompt: pinned, no group */
      in.group = NULL;
      in.pinned = 1;
      pins++;
    }
    mg_store_error e;
    if (mg_store_add(w->s, &in, NULL, &e) == 0)
      atomic_fetch_add(&adds_ok, 1);
    else
      atomic_fetch_add(&adds_failed, 1);
  }
  return NULL;
}

static void *pruner(void *arg) {
  worker *w = arg;
  while (!atomic_load(&stop)) {
    unsigned r = rand_r(&w->seed);
    mg_store_stats st;
    switch (r % 6) {
    case 0:
      mg_store_prune(w->s, r % 120, NULL, NULL, 0);
      break;
    case 1:
    case 2:
      mg_store_get_stats(w->s, &st);
      if (mg_store_remove(w->s, st.next_id - 1 - (r >> 3) % 50, NULL, 0) == 0)
        atomic_fetch_add(&removed_ok, 1);
      break;
    case 3: {
      mg_store_need need = {(r >> 3) % 5000, (r >> 5) % 3, 0,
                            MG_STORE_LIMIT_NONE};
      mg_store_make_room(w->s, &need, NULL, NULL);
      break;
    }
    case 4: {
      mg_store_limits l;
      mg_store_get_limits(w->s, &l);
      l.max_messages = 20 + (r >> 4) % 200;
      l.max_total_size_bytes = 8192 + (r >> 6) % 100000;
      char err[128];
      if (mg_store_set_limits(w->s, &l, err, sizeof err) != 0)
        fail("set_limits: ", err);
      break;
    }
    default:
      usleep(50);
    }
  }
  return NULL;
}

/* Runs under the store's lock: the view cannot change while we look. */
static int consistent(void *ud, const mg_store *view) {
  (void)ud;
  char err[256];
  if (mg_store_check(view, err, sizeof err) != 0) {
    fail("check under read lock: ", err);
    return -1;
  }
  mg_store_stats st;
  mg_store_get_stats(view, &st);
  uint64_t n = 0;
  uint64_t sum = sum_sizes(view, &n);
  if (sum != st.total_size_bytes || n != st.message_count ||
      n != mg_store_len(view))
    fail("", "totals moved under the read lock");
  /* a mutation from inside is refused */
  if (mg_store_clear((mg_store *)view, NULL) != MG_EBUSY)
    fail("", "clear inside mg_store_read was not refused");
  return 0;
}

static void *reader(void *arg) {
  worker *w = arg;
  while (!atomic_load(&stop)) {
    unsigned r = rand_r(&w->seed);
    mg_store_stats st;
    mg_store_get_stats(w->s, &st);
    if (st.payload_bytes + st.overhead_bytes != st.total_size_bytes)
      fail("", "stats are torn");
    if (r % 4 == 0) {
      mg_store_read(w->s, consistent, NULL);
      atomic_fetch_add(&checks_done, 1);
    } else {
      mg_store_msg m;
      mg_store_get(w->s, st.next_id - 1, &m);
      mg_store_at(w->s, r % 50, &m);
    }
    atomic_fetch_add(&reads_done, 1);
  }
  return NULL;
}

TEST(four_threads_one_store) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "threads";
  o.limits.max_messages = 150;
  o.limits.max_total_size_bytes = 64 * 1024;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  o.on_evict = on_evict;
  mg_store *s = NULL;
  ASSERT_EQ(mg_store_new(&o, &s, NULL, 0), 0);
  worker w[4] = {{s, 1, 11}, {s, 2, 22}, {s, 3, 33}, {s, 4, 44}};
  pthread_t t[4];
  ASSERT_EQ(pthread_create(&t[0], NULL, adder, &w[0]), 0);
  ASSERT_EQ(pthread_create(&t[1], NULL, adder, &w[1]), 0);
  ASSERT_EQ(pthread_create(&t[2], NULL, pruner, &w[2]), 0);
  ASSERT_EQ(pthread_create(&t[3], NULL, reader, &w[3]), 0);
  double t0 = now_s();
  while (now_s() - t0 < 1.0 && !atomic_load(&failures))
    usleep(10000);
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  if (atomic_load(&failures))
    fprintf(stderr, "  first failure: %s\n", failure_text);
  ASSERT_EQ(atomic_load(&failures), 0);
  char err[256];
  ASSERT_EQ(mg_store_check(s, err, sizeof err), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  fprintf(stderr,
          "  adds %lu ok / %lu failed, evicted %lu, removed %lu, reads %lu, "
          "locked checks %lu, left %" PRIu64 "\n",
          atomic_load(&adds_ok), atomic_load(&adds_failed),
          atomic_load(&evicted_seen), atomic_load(&removed_ok),
          atomic_load(&reads_done), atomic_load(&checks_done),
          st.message_count);
  ASSERT(atomic_load(&adds_ok) > 1000);
  ASSERT(atomic_load(&checks_done) > 10);
  ASSERT_U64_EQ(st.evicted_count, atomic_load(&evicted_seen));
  ASSERT_U64_EQ(st.removed_count, atomic_load(&removed_ok));
  ASSERT_U64_EQ(atomic_load(&adds_ok),
                st.message_count + st.evicted_count + st.removed_count);
  ASSERT_U64_EQ(st.total_size_bytes, sum_sizes(s, NULL));
  mg_store_free(s);
}

/* Two threads saving the same path while a third adds: every save that
 * succeeds leaves a complete snapshot (each call writes its own temp). */
typedef struct saver {
  mg_store *s;
  const char *path;
  int ok, failed, bad_load;
} saver;

static void *save_loop(void *arg) {
  saver *sv = arg;
  char err[512];
  for (int i = 0; i < 100; i++) {
    if (mg_store_save(sv->s, sv->path, err, sizeof err) != 0) {
      sv->failed++;
      continue;
    }
    sv->ok++;
    mg_store *back = NULL;
    if (mg_store_load(sv->path, NULL, &back, err, sizeof err) != 0) {
      fprintf(stderr, "load after save: %s\n", err);
      sv->bad_load++;
    }
    mg_store_free(back);
  }
  return NULL;
}

static atomic_int adder_stop;
static void *add_loop(void *arg) {
  mg_store *s = arg;
  while (!atomic_load(&adder_stop)) {
    mg_store_input in = msg_text("user", "concurrent content");
    mg_store_add(s, &in, NULL, NULL);
  }
  return NULL;
}

TEST(concurrent_saves_of_one_path) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.limits.max_messages = 200;
  o.on_full = MG_STORE_ON_FULL_PRUNE;
  mg_store *s = NULL;
  char err[256], path[] = "/tmp/mgrun-test-saves-XXXXXX";
  ASSERT_EQ(mg_store_new(&o, &s, err, sizeof err), 0);
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  saver a = {s, path, 0, 0, 0}, b = {s, path, 0, 0, 0};
  pthread_t ta, tb, tc;
  atomic_store(&adder_stop, 0);
  pthread_create(&tc, NULL, add_loop, s);
  pthread_create(&ta, NULL, save_loop, &a);
  pthread_create(&tb, NULL, save_loop, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  atomic_store(&adder_stop, 1);
  pthread_join(tc, NULL);
  unlink(path);
  ASSERT_EQ(a.failed + b.failed, 0);
  ASSERT_EQ(a.bad_load + b.bad_load, 0);
  ASSERT_EQ(a.ok + b.ok, 200);
  mg_store_free(s);
}

int main(void) {
  RUN(four_threads_one_store);
  RUN(concurrent_saves_of_one_path);
  return mg_test_report();
}
