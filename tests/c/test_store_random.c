/* test_store_random.c — a seeded random walk of mixed store operations
 * (add with random sizes / groups / pins / tokens, remove, prune, limit
 * changes, strategy runs — failing ones included —, on_evict refusals,
 * clear, snapshot round trips) against a shadow model, checking after
 * EVERY step:
 *   - mg_store_check() passes;
 *   - count <= max_messages, total <= max_total_size, tokens <= max_tokens,
 *     each message <= max_message_size (unless that limit was lowered below
 *     the use, and then the use never grows);
 *   - the accounted total equals the sum of sizes recounted here;
 *   - the set of live messages equals the shadow's: nothing vanished
 *     without reaching on_evict, nothing appeared uninvited;
 *   - each eviction took whole groups (no member of an evicted group left)
 *     and never a pinned message; each evicted id reached on_evict exactly
 *     once, and the archive holds exactly the same ids in the same order;
 *   - a failed operation changed nothing.
 * MG_TEST_SEED=<n> replays a run; MG_TEST_OPS=<n> changes its length.
 */
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mg/mg.h"
#include "mg_test.h"
#include "test_store_util.h"

static uint64_t seed, rng_state;
static long silent_evictions;
static long cur_step;

static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}
static uint64_t rnd_n(uint64_t n) {
  return n ? rnd() % n : 0;
}
static int chance(unsigned pct) {
  return rnd_n(100) < pct;
}

#define NGROUPS 24
static const char *group_name(int g) {
  static char names[NGROUPS][8];
  snprintf(names[g], sizeof names[g], "g%d", g);
  return names[g];
}
static int group_index(const char *g) {
  if (!g || !*g)
    return -1;
  return atoi(g + 1);
}

/* ------------------------------------------------------------ shadow */

enum { S_NONE = 0, S_LIVE, S_EVICTED, S_REMOVED };

typedef struct shadow_msg {
  uint8_t state;
  int8_t group;
  uint8_t pinned;
  uint32_t pos; /* in live_ids while live */
  uint64_t size;
} shadow_msg;

static shadow_msg *sh;
static size_t sh_cap;
static uint64_t sh_live;
static uint64_t *live_ids; /* ids the shadow holds live, any order */
static size_t live_cap;
/* silent: the store has neither on_evict nor archive (the C fast path);
 * evictions are inferred from what vanished */
static int silent;

static shadow_msg *sh_get(uint64_t id) {
  if (id >= sh_cap) {
    size_t nc = sh_cap ? sh_cap : 1024;
    while (nc <= id)
      nc *= 2;
    shadow_msg *n = realloc(sh, nc * sizeof *sh);
    if (!n)
      abort();
    sh = n;
    memset(sh + sh_cap, 0, (nc - sh_cap) * sizeof *sh);
    sh_cap = nc;
  }
  return &sh[id];
}

static shadow_msg *sh_get(uint64_t id);

static void live_add(uint64_t id) {
  if (sh_live == live_cap) {
    live_cap = live_cap ? live_cap * 2 : 256;
    uint64_t *n = realloc(live_ids, live_cap * sizeof *live_ids);
    if (!n)
      abort();
    live_ids = n;
  }
  sh_get(id)->pos = (uint32_t)sh_live;
  live_ids[sh_live++] = id;
}

static void live_del(uint64_t id, uint8_t new_state) {
  shadow_msg *x = sh_get(id);
  uint64_t last = live_ids[--sh_live];
  live_ids[x->pos] = last;
  sh_get(last)->pos = x->pos;
  x->state = new_state;
}

/* evictions reported by on_evict during the current step */
static uint64_t *ev_ids;
static size_t ev_n, ev_cap;
/* every id ever evicted, in order (compared with the archive) */
static uint64_t *all_ev;
static size_t all_ev_n, all_ev_cap;
static unsigned evict_fail_pct;
static long evict_refusals;

static void push(uint64_t **a, size_t *n, size_t *cap, uint64_t v) {
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 1024;
    uint64_t *grown = realloc(*a, *cap * sizeof **a);
    if (!grown)
      abort();
    *a = grown;
  }
  (*a)[(*n)++] = v;
}

static int on_evict(void *ud, const mg_store *view, const mg_store_batch *b,
                    mg_store_evict_reason reason, char *err, size_t err_len) {
  (void)ud;
  (void)view;
  (void)reason;
  if (evict_fail_pct && chance(evict_fail_pct)) {
    evict_refusals++;
    snprintf(err, err_len, "injected refusal");
    return -EIO;
  }
  size_t n = mg_store_batch_len(b);
  for (size_t i = 0; i < n; i++) {
    mg_store_msg m;
    if (mg_store_batch_at(b, i, &m) != 0)
      return -EINVAL;
    push(&ev_ids, &ev_n, &ev_cap, m.id);
  }
  return 0;
}

/* ------------------------------------------------------------ strategy */

enum { M_RANDOM, M_FAIL, M_PINNED, M_UNKNOWN, M_LITTLE, M_REPLACE, M_NMODES };
static int strat_mode;
static int strat_replaced; /* the last run inserted a replacement */
static long mode_runs[M_NMODES];

static int strategy(void *ud, const mg_store *view, const mg_store_need *need,
                    mg_store_plan *plan, char *err, size_t err_len) {
  (void)ud;
  strat_replaced = 0;
  mode_runs[strat_mode]++;
  mg_store_msg m;
  mg_store_iter it;
  switch (strat_mode) {
  case M_FAIL:
    snprintf(err, err_len, "strategy failed on purpose");
    return MG_ESTRATEGY;
  case M_UNKNOWN:
    mg_store_plan_evict(plan, UINT64_MAX - rnd_n(10));
    return 0;
  case M_PINNED:
    mg_store_iter_init(view, &it, MG_STORE_OLDEST_FIRST);
    while (mg_store_iter_next(view, &it, &m) == 1)
      if (m.pinned) {
        mg_store_plan_evict(plan, m.id);
        return 0;
      }
    break; /* none pinned: behave like random */
  default:
    break;
  }
  /* groups holding a pinned member cannot be chosen */
  int blocked[NGROUPS] = {0};
  uint64_t n = 0;
  mg_store_iter_init(view, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(view, &it, &m) == 1) {
    n++;
    if (m.pinned && m.group_len)
      blocked[group_index(m.group)] = 1;
  }
  uint64_t want_count = need->count, want_bytes = need->bytes,
           want_tokens = need->tokens;
  if (strat_mode == M_REPLACE) {
    /* a one-line summary: it must be paid for as well */
    mg_store_input r = {0};
    r.role = "summary";
    r.content = "summary of evicted turns";
    r.content_len = 24;
    r.has_tokens = 1;
    r.tokens = 3;
    if (mg_store_plan_replace(plan, &r) != 0)
      return 0;
    strat_replaced = 1;
    want_count += 1;
    want_bytes += 24 + 7 + MG_STORE_MSG_OVERHEAD;
    want_tokens += 3;
  }
  if (strat_mode == M_LITTLE && want_count)
    want_count--; /* one short */
  uint64_t got_c = 0, got_b = 0, got_t = 0;
  /* random picks first, then oldest-first to finish */
  for (int pass = 0; pass < 2; pass++) {
    mg_store_iter_init(view, &it, MG_STORE_OLDEST_FIRST);
    while (mg_store_iter_next(view, &it, &m) == 1) {
      if (got_c >= want_count && got_b >= want_bytes && got_t >= want_tokens)
        return 0;
      if (m.pinned || (m.group_len && blocked[group_index(m.group)]))
        continue;
      if (pass == 0 && !chance(30))
        continue;
      if (mg_store_plan_evict(plan, m.id) == 0) {
        /* count only once per message; groups free more than this */
        got_c++;
        got_b += m.size_bytes;
        got_t += m.tokens;
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------ checks */

typedef struct fp {
  uint64_t hash;
  mg_store_stats st;
} fp;

static void fingerprint(const mg_store *s, fp *f) {
  mg_store_get_stats(s, &f->st);
  f->st.rejected_count = 0;
  uint64_t h = 1469598103934665603ULL;
  mg_store_iter it;
  mg_store_msg m;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(s, &it, &m) == 1) {
    uint64_t v[] = {m.id,          m.size_bytes,
                    m.tokens,      (uint64_t)m.pinned,
                    m.content_len, m.content_len ? m.content[0] : 0};
    for (size_t i = 0; i < 6; i++)
      h = (h ^ v[i]) * 1099511628211ULL;
  }
  f->hash = h;
}

static int fp_equal(const fp *a, const fp *b) {
  return a->hash == b->hash && memcmp(&a->st, &b->st, sizeof a->st) == 0;
}

/* limits lowered below the use, per dimension */
static int low_count, low_total, low_tokens, low_size;
static uint64_t low_size_ids_below;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "step %ld (seed %" PRIu64 "): ", cur_step, seed);        \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      ASSERT(cond);                                                            \
    }                                                                          \
  } while (0)

static void verify(const mg_store *s, const fp *before, int ok,
                   uint64_t added_id, uint64_t next_before) {
  char err[512];
  int rc = mg_store_check(s, err, sizeof err);
  CHECK(rc == 0, "check: %s", err);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  /* a failed operation changes nothing */
  if (!ok) {
    fp after;
    fingerprint(s, &after);
    CHECK(fp_equal(&after, before), "a failed operation changed the store");
    CHECK(ev_n == 0, "a failed operation evicted %zu messages", ev_n);
  }
  if (silent && ok) { /* nobody was told: what vanished was evicted */
    mg_store_msg g;
    for (size_t i = 0; i < sh_live; i++)
      if (mg_store_get(s, live_ids[i], &g) != 0)
        push(&ev_ids, &ev_n, &ev_cap, live_ids[i]);
  }
  CHECK(st.evicted_count - before->st.evicted_count == ev_n,
        "evicted_count grew by %" PRIu64 ", %zu evictions seen",
        st.evicted_count - before->st.evicted_count, ev_n);
  /* evictions: live before, never pinned, exactly once */
  for (size_t i = 0; i < ev_n; i++) {
    shadow_msg *x = sh_get(ev_ids[i]);
    CHECK(x->state == S_LIVE, "evicted id %" PRIu64 " was not live (%d)",
          ev_ids[i], x->state);
    CHECK(!x->pinned, "pinned id %" PRIu64 " was evicted", ev_ids[i]);
    live_del(ev_ids[i], S_EVICTED);
    if (!silent)
      push(&all_ev, &all_ev_n, &all_ev_cap, ev_ids[i]);
    else
      silent_evictions++;
  }
  /* walk the store: recount, compare with the shadow */
  uint64_t n = 0, sum = 0, tokens = 0, largest = 0, seen_new = 0;
  int group_live[NGROUPS] = {0};
  mg_store_iter it;
  mg_store_msg m;
  mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
  while (mg_store_iter_next(s, &it, &m) == 1) {
    n++;
    sum += m.size_bytes;
    tokens += m.tokens;
    if (m.size_bytes > largest)
      largest = m.size_bytes;
    shadow_msg *x = sh_get(m.id);
    if (m.id >= next_before) { /* appeared in this step */
      CHECK(ok, "id %" PRIu64 " appeared in a failed step", m.id);
      CHECK(m.id == added_id || (strat_replaced && m.id < added_id) ||
                (strat_replaced && added_id == 0),
            "unexpected new id %" PRIu64, m.id);
      x->state = S_LIVE;
      x->group = (int8_t)group_index(m.group);
      x->pinned = (uint8_t)m.pinned;
      x->size = m.size_bytes;
      live_add(m.id);
      seen_new++;
    }
    CHECK(x->state == S_LIVE, "id %" PRIu64 " in the store is %d in the shadow",
          m.id, x->state);
    CHECK(x->size == m.size_bytes, "id %" PRIu64 " changed size", m.id);
    if (!low_size || m.id >= low_size_ids_below)
      CHECK(m.size_bytes <= st.max_message_size_bytes,
            "message %" PRIu64 " of %" PRIu64 " > max %" PRIu64, m.id,
            m.size_bytes, st.max_message_size_bytes);
    if (m.group_len)
      group_live[group_index(m.group)] = 1;
  }
  CHECK(n == st.message_count, "iterated %" PRIu64 " != count %" PRIu64, n,
        st.message_count);
  CHECK(n == sh_live,
        "store holds %" PRIu64 ", shadow %" PRIu64
        " (a message vanished or appeared)",
        n, sh_live);
  CHECK(sum == st.total_size_bytes, "sum %" PRIu64 " != total %" PRIu64, sum,
        st.total_size_bytes);
  CHECK(tokens == st.total_tokens, "tokens %" PRIu64 " != %" PRIu64, tokens,
        st.total_tokens);
  CHECK(largest == st.largest_message_bytes, "largest %" PRIu64 " != %" PRIu64,
        largest, st.largest_message_bytes);
  /* no group split: an evicted member's group has no live member left that
   * existed before this step */
  for (size_t i = 0; i < ev_n; i++) {
    int g = sh_get(ev_ids[i])->group;
    if (g < 0 || !group_live[g])
      continue;
    mg_store_iter_init(s, &it, MG_STORE_OLDEST_FIRST);
    while (mg_store_iter_next(s, &it, &m) == 1)
      if (m.group_len && group_index(m.group) == g)
        CHECK(m.id >= next_before,
              "group g%d split: %" PRIu64 " evicted, %" PRIu64 " left", g,
              ev_ids[i], m.id);
  }
  /* limits */
  if (low_count && st.message_count <= st.max_messages)
    low_count = 0;
  if (low_total && st.total_size_bytes <= st.max_total_size_bytes)
    low_total = 0;
  if (low_tokens && (!st.max_tokens || st.total_tokens <= st.max_tokens))
    low_tokens = 0;
  if (!low_count)
    CHECK(st.message_count <= st.max_messages, "count %" PRIu64 " > %" PRIu64,
          st.message_count, st.max_messages);
  else
    CHECK(st.message_count <= before->st.message_count,
          "count grew while over a lowered limit");
  if (!low_total)
    CHECK(st.total_size_bytes <= st.max_total_size_bytes,
          "total %" PRIu64 " > %" PRIu64, st.total_size_bytes,
          st.max_total_size_bytes);
  else
    CHECK(st.total_size_bytes <= before->st.total_size_bytes,
          "total grew while over a lowered limit");
  if (!low_tokens && st.max_tokens)
    CHECK(st.total_tokens <= st.max_tokens, "tokens %" PRIu64 " > %" PRIu64,
          st.total_tokens, st.max_tokens);
  ev_n = 0;
}

/* ------------------------------------------------------------ the walk */

static char archive_path[256], snap_path[256];
static long outcomes[8];
enum {
  O_ADD_OK,
  O_ADD_FAIL,
  O_EVICT_FAIL,
  O_PRUNE,
  O_ROOM_OK,
  O_ROOM_FAIL,
  O_LOWERED,
  O_RELOAD
};

static mg_store *make_store(void) {
  mg_store_options o;
  mg_store_options_init(&o);
  o.name = "random";
  o.limits.max_messages = 1 + rnd_n(150);
  o.limits.max_message_size_bytes = 1024 + rnd_n(4096);
  o.limits.max_total_size_bytes = 1024 + rnd_n(120000);
  o.limits.max_tokens = chance(50) ? 0 : 50 + rnd_n(3000);
  o.limits.warn_at = 0.05 + (double)rnd_n(95) / 100.0;
  o.on_full = chance(70) ? MG_STORE_ON_FULL_PRUNE : MG_STORE_ON_FULL_ERROR;
  o.on_evict = on_evict;
  o.archive_path = archive_path;
  mg_store *s = NULL;
  char err[256];
  if (mg_store_new(&o, &s, err, sizeof err) != 0) {
    fprintf(stderr, "mg_store_new: %s\n", err);
    return NULL;
  }
  return s;
}

static void random_limits(mg_store *s) {
  mg_store_limits l;
  mg_store_get_limits(s, &l);
  if (chance(50))
    l.max_messages = 1 + rnd_n(150);
  if (chance(50))
    l.max_message_size_bytes = 1024 + rnd_n(4096);
  if (chance(50))
    l.max_total_size_bytes = 1024 + rnd_n(120000);
  if (chance(30))
    l.max_tokens = chance(50) ? 0 : 50 + rnd_n(3000);
  if (chance(20))
    l.warn_at = 0.05 + (double)rnd_n(95) / 100.0;
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  char err[256];
  int rc = mg_store_set_limits(s, &l, err, sizeof err);
  CHECK(rc == 0, "set_limits: %s", err);
  if (st.message_count > l.max_messages)
    low_count = 1;
  if (st.total_size_bytes > l.max_total_size_bytes)
    low_total = 1;
  if (l.max_tokens && st.total_tokens > l.max_tokens)
    low_tokens = 1;
  if (st.largest_message_bytes > l.max_message_size_bytes) {
    low_size = 1;
    low_size_ids_below = st.next_id;
  }
  if (low_count || low_total || low_tokens)
    outcomes[O_LOWERED]++;
}

static char content_buf[6000];

TEST(random_walk) {
  long ops = 100000;
  const char *e = getenv("MG_TEST_OPS");
  if (e && atol(e) > 0)
    ops = atol(e);
  for (size_t i = 0; i < sizeof content_buf; i++)
    content_buf[i] = (char)('a' + i % 26);
  unlink(archive_path);
  mg_store *s = make_store();
  ASSERT(s);
  mg_store_set_strategy(s, strategy, NULL, "random");
  int custom = 1;
  for (cur_step = 0; cur_step < ops; cur_step++) {
    fp before;
    fingerprint(s, &before);
    uint64_t next_before = before.st.next_id, added = 0;
    int ok = 1;
    strat_replaced = 0;
    strat_mode = (int)rnd_n(M_NMODES);
    if (chance(40))
      strat_mode = M_RANDOM;
    uint64_t r = rnd_n(1000);
    if (r < 560) { /* add */
      mg_store_input in = {0};
      in.role = chance(50) ? "user" : "assistant";
      in.content = content_buf;
      in.content_len = chance(5) ? rnd_n(sizeof content_buf) : rnd_n(400);
      if (chance(35))
        in.group = group_name((int)rnd_n(NGROUPS));
      in.pinned = chance(2);
      if (chance(50)) {
        in.has_tokens = 1;
        in.tokens = rnd_n(60);
      }
      in.priority = (int64_t)rnd_n(10) - 5;
      mg_store_meta meta[2] = {{"k", "v"}, {"trace", "abc"}};
      if (chance(20)) {
        in.meta = meta;
        in.meta_count = 1 + rnd_n(2);
      }
      mg_store_error err;
      int rc = mg_store_add(s, &in, &added, &err);
      if (rc) {
        ok = 0;
        added = 0;
        outcomes[O_ADD_FAIL]++;
        CHECK(err.code == rc && err.message[0], "error not filled");
        if (rc == -EIO)
          outcomes[O_EVICT_FAIL]++;
      } else {
        outcomes[O_ADD_OK]++;
      }
    } else if (r < 660) { /* remove a live or a random id */
      uint64_t id = 1 + rnd_n(next_before + 5);
      int rc = mg_store_remove(s, id, NULL, 0);
      if (rc == 0) {
        shadow_msg *x = sh_get(id);
        CHECK(x->state == S_LIVE, "removed id %" PRIu64 " was not live", id);
        live_del(id, S_REMOVED);
      } else {
        CHECK(rc == -ENOENT, "remove: %d", rc);
        ok = 0;
      }
    } else if (r < 740) { /* prune */
      uint64_t keep = chance(20) ? MG_STORE_PRUNE_DEFAULT : rnd_n(160);
      uint64_t removed = 0;
      int rc = mg_store_prune(s, keep, &removed, NULL, 0);
      if (rc) {
        ok = 0;
        CHECK(rc == -EIO, "prune: %d", rc);
        outcomes[O_EVICT_FAIL]++;
      } else {
        CHECK(silent || removed == ev_n,
              "prune said %" PRIu64 ", on_evict saw %zu", removed, ev_n);
        uint64_t keep_n =
            keep == MG_STORE_PRUNE_DEFAULT ? before.st.max_messages / 2 : keep;
        CHECK(before.st.message_count - removed >=
                  (keep_n < before.st.message_count ? keep_n
                                                    : before.st.message_count),
              "prune kept fewer than keep_count");
        outcomes[O_PRUNE]++;
      }
    } else if (r < 840) { /* make room */
      mg_store_need need = {rnd_n(3000), rnd_n(4), rnd_n(40),
                            MG_STORE_LIMIT_NONE};
      uint64_t removed = 0;
      mg_store_error err;
      int rc = mg_store_make_room(s, &need, &removed, &err);
      if (rc) {
        ok = 0;
        outcomes[O_ROOM_FAIL]++;
      } else {
        CHECK(silent || removed == ev_n,
              "make_room said %" PRIu64 ", on_evict saw %zu", removed, ev_n);
        CHECK(removed >= need.count + (uint64_t)strat_replaced ||
                  !(need.count || need.bytes || need.tokens),
              "make_room freed too few");
        outcomes[O_ROOM_OK]++;
      }
    } else if (r < 880) {
      random_limits(s);
    } else if (r < 920) {
      custom = !custom;
      mg_store_set_strategy(s, custom ? strategy : NULL, NULL,
                            custom ? "random" : NULL);
    } else if (r < 940) {
      mg_store_set_on_full(s, chance(50) ? MG_STORE_ON_FULL_PRUNE
                                         : MG_STORE_ON_FULL_ERROR);
    } else if (r < 970) {
      evict_fail_pct = chance(70) ? 0 : (unsigned)rnd_n(60);
    } else if (r < 973) {
      uint64_t removed = 0;
      mg_store_clear(s, &removed);
      while (sh_live)
        live_del(live_ids[sh_live - 1], S_REMOVED);
      CHECK(removed == before.st.message_count, "clear removed %" PRIu64,
            removed);
    } else if (r < 975) { /* snapshot round trip, then go on with the copy */
      char err[512];
      int rc = mg_store_save(s, snap_path, err, sizeof err);
      CHECK(rc == 0, "save: %s", err);
      mg_store_options o;
      mg_store_options_init(&o);
      silent = chance(40);
      if (!silent) {
        o.on_evict = on_evict;
        o.archive_path = archive_path;
      }
      mg_store_limits l;
      mg_store_get_limits(s, &l);
      mg_store *t = NULL;
      rc = mg_store_load(snap_path, &o, &t, err, sizeof err);
      CHECK(rc == 0, "load: %s", err);
      mg_store_stats a, b;
      mg_store_get_stats(s, &a);
      mg_store_get_stats(t, &b);
      CHECK(a.message_count == b.message_count &&
                a.total_size_bytes == b.total_size_bytes &&
                a.total_tokens == b.total_tokens && a.next_id == b.next_id &&
                a.max_messages == b.max_messages,
            "snapshot lost something");
      char *d1 = store_dump(s), *d2 = store_dump(t);
      CHECK(strcmp(strchr(d1, '\n'), strchr(d2, '\n')) == 0,
            "snapshot messages differ");
      free(d1);
      free(d2);
      mg_store_free(s);
      s = t;
      mg_store_set_on_full(s, chance(70) ? MG_STORE_ON_FULL_PRUNE
                                         : MG_STORE_ON_FULL_ERROR);
      mg_store_set_strategy(s, custom ? strategy : NULL, NULL,
                            custom ? "random" : NULL);
      fingerprint(s, &before);
      outcomes[O_RELOAD]++;
    } else { /* reads */
      mg_store_msg m;
      uint64_t len = mg_store_len(s);
      if (len) {
        uint64_t p = rnd_n(len);
        CHECK(mg_store_at(s, p, &m) == 0, "at(%" PRIu64 ")", p);
        mg_store_msg g;
        CHECK(mg_store_get(s, m.id, &g) == 0 && g.id == m.id, "get");
      }
      ok = 0; /* a read changes nothing */
    }
    verify(s, &before, ok, added, next_before);
  }
  mg_store_free(s);
  /* the archive holds exactly the evicted ids, in order, once each */
  FILE *f = fopen(archive_path, "r");
  size_t n = 0;
  if (f) {
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
      json_error_t je;
      json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
      CHECK(o != NULL, "archive line %zu is not JSON: %s", n + 1, je.text);
      CHECK(n < all_ev_n, "archive has more records than evictions");
      uint64_t id = (uint64_t)json_integer_value(json_object_get(o, "id"));
      CHECK(id == all_ev[n],
            "archive record %zu is id %" PRIu64 ", on_evict saw %" PRIu64, n,
            id, all_ev[n]);
      json_decref(o);
      n++;
    }
    free(line);
    fclose(f);
  }
  CHECK(n == all_ev_n, "archive has %zu records, %zu evictions", n, all_ev_n);
  fprintf(stderr,
          "  %ld ops: adds ok %ld / failed %ld (evict refusals %ld), prunes "
          "%ld, make_room ok %ld / failed %ld, lowered %ld, reloads %ld, "
          "evicted %zu\n",
          ops, outcomes[O_ADD_OK], outcomes[O_ADD_FAIL], evict_refusals,
          outcomes[O_PRUNE], outcomes[O_ROOM_OK], outcomes[O_ROOM_FAIL],
          outcomes[O_LOWERED], outcomes[O_RELOAD], all_ev_n);
  fprintf(stderr,
          "  evictions in silent stores (no on_evict, no archive): "
          "%ld\n",
          silent_evictions);
  fprintf(stderr, "  strategy runs by mode:");
  for (int i = 0; i < M_NMODES; i++)
    fprintf(stderr, " %ld", mode_runs[i]);
  fputc('\n', stderr);
  /* every kind of event happened, so the walk really covered them */
  if (ops >= 100000) {
    ASSERT(outcomes[O_ADD_OK] > 1000 && outcomes[O_ADD_FAIL] > 100);
    ASSERT(evict_refusals > 10 && outcomes[O_PRUNE] > 100);
    ASSERT(outcomes[O_ROOM_OK] > 100 && outcomes[O_ROOM_FAIL] > 100);
    ASSERT(outcomes[O_LOWERED] > 10 && outcomes[O_RELOAD] > 10);
    for (int i = 0; i < M_NMODES; i++)
      ASSERT(mode_runs[i] > 10);
    ASSERT(all_ev_n > 1000 && silent_evictions > 1000);
  }
  unlink(archive_path);
  unlink(snap_path);
}

int main(void) {
  const char *e = getenv("MG_TEST_SEED");
  seed = e && *e ? strtoull(e, NULL, 10)
                 : (uint64_t)time(NULL) ^ (uint64_t)getpid();
  rng_state = seed ? seed : 1;
  fprintf(stderr, "MG_TEST_SEED=%" PRIu64 "\n", seed);
  snprintf(archive_path, sizeof archive_path, "/tmp/mg_store_random.%ld.jsonl",
           (long)getpid());
  snprintf(snap_path, sizeof snap_path, "/tmp/mg_store_random.%ld.json",
           (long)getpid());
  RUN(random_walk);
  if (mg__test_failed_total)
    fprintf(stderr, "replay with MG_TEST_SEED=%" PRIu64 "\n", seed);
  return mg_test_report();
}
