/* test_sup_observe.c — observers (mg_sup_observe): they see every event
 * of every child after its owner (starts, samples, exits, restarts,
 * closes), also of a child that was released and of one spawned before the
 * observer; unobserve stops delivery; the table has a bound. */
#include "test_sup_util.h"

typedef struct obs_rec {
  int starts, samples, exits, restarts, closes;
  char order[64]; /* 'o' owner exit, 'x' observer exit */
} obs_rec;

static rec owner;
static obs_rec seen;

static void o_start(mg_child *c, void *ud) {
  (void)c;
  ((obs_rec *)ud)->starts++;
}
static void o_sample(mg_child *c, const mg_child_sample *s, void *ud) {
  (void)c;
  (void)s;
  ((obs_rec *)ud)->samples++;
}
static void o_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  (void)c;
  (void)e;
  obs_rec *r = ud;
  r->exits++;
  strncat(r->order, "x", sizeof r->order - strlen(r->order) - 1);
}
static void o_restart(mg_child *c, int n, void *ud) {
  (void)c;
  (void)n;
  ((obs_rec *)ud)->restarts++;
}
static void o_close(mg_child *c, void *ud) {
  (void)c;
  ((obs_rec *)ud)->closes++;
}
static void owner_exit(mg_child *c, const mg_child_exit *e, void *ud) {
  rec_exit(c, e, ud);
  strncat(seen.order, "o", sizeof seen.order - strlen(seen.order) - 1);
}

static int two_closed(void *arg) {
  return ((obs_rec *)arg)->closes >= 2;
}

TEST(observers_see_every_child) {
  sup_start();
  mg_child_events oe = {0};
  oe.on_start = o_start;
  oe.on_sample = o_sample;
  oe.on_exit = o_exit;
  oe.on_restart = o_restart;
  oe.on_close = o_close;
  oe.ud = &seen;
  /* one spawned before the observer exists */
  char *const sleep_argv[] = {"sleep", "0.3", NULL};
  mg_child_events ev = rec_events(&owner);
  ev.on_exit = owner_exit;
  mg_child_opts o = child_opts("early", sleep_argv);
  o.sample_ms = 50;
  ASSERT_EQ(mg_child_spawn(sup, &o, &ev, NULL, err, sizeof err), 0);
  int id = mg_sup_observe(sup, &oe);
  ASSERT_GT(id, 0);
  /* one restarted twice, released at once: the observer still sees it */
  char *const false_argv[] = {"false", NULL};
  mg_child_opts f = child_opts("flaky", false_argv);
  f.restart = MG_RESTART_ON_FAILURE;
  f.max_restarts = 2;
  f.backoff_ms = 10;
  mg_child *c;
  ASSERT_EQ(mg_child_spawn(sup, &f, NULL, &c, err, sizeof err), 0);
  mg_child_release(c);
  ASSERT(run_until(two_closed, &seen, 20000));
  ASSERT_EQ(seen.starts, 3); /* flaky's three runs (early started before) */
  ASSERT_EQ(seen.restarts, 2);
  ASSERT_EQ(seen.exits, 4);
  ASSERT_GT(seen.samples, 1);
  ASSERT_EQ(seen.closes, 2);
  ASSERT(strstr(seen.order, "ox") != NULL); /* the owner first */
  /* unobserved: nothing more */
  mg_sup_unobserve(sup, id);
  obs_rec before = seen;
  rec r2 = {0};
  mg_child_events ev2 = rec_events(&r2);
  char *const true_argv[] = {"true", NULL};
  mg_child_opts lo = child_opts("late", true_argv);
  ASSERT_EQ(mg_child_spawn(sup, &lo, &ev2, NULL, err, sizeof err), 0);
  ASSERT(run_until(rec_closed, &r2, 20000));
  ASSERT_EQ(seen.starts, before.starts);
  ASSERT_EQ(seen.exits, before.exits);
  /* a bounded table */
  int ids[MG_SUP_OBSERVERS_MAX];
  for (int i = 0; i < MG_SUP_OBSERVERS_MAX; i++)
    ASSERT_GT(ids[i] = mg_sup_observe(sup, &oe), 0);
  ASSERT_EQ(mg_sup_observe(sup, &oe), -ENOSPC);
  ASSERT_EQ(mg_sup_observe(sup, NULL), -EINVAL);
  for (int i = 0; i < MG_SUP_OBSERVERS_MAX; i++)
    mg_sup_unobserve(sup, ids[i]);
  mg_sup_unobserve(sup, 99); /* unknown ids are ignored */
  sup_finish();
}

int main(void) {
  SUP_RUN(observers_see_every_child);
  return mg_test_report();
}
