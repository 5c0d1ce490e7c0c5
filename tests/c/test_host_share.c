/* test_host_share.c — a runtime used by other threads of its host, as the
 * Python package's Runtime does: the policy runs its loop on one thread
 * (timers, a store whose strategy is a Lua function) while four threads
 * add to that store through mg_runtime_store_add and read it directly.
 * The Lua state must never be entered by two threads at once (TSan checks
 * it in build.sh test), nothing may deadlock, every add lands or fails
 * cleanly, the strategy keeps the store bounded, and a shutdown asked from
 * another thread ends the loop with its code. Also: what the host gets for
 * a missing, doubled or closed store, and calls made while no thread owns
 * the runtime. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_runtime.h"
#include "mg_test.h"

static mg_runtime *make(void) {
  mg_runtime_opts o;
  mg_runtime *rt = NULL;
  char err[512];
  mg_runtime_opts_init(&o);
  if (mg_runtime_new(&o, &rt, err, sizeof err) < 0) {
    fprintf(stderr, "mg_runtime_new: %s\n", err);
    return NULL;
  }
  return rt;
}

static int load(mg_runtime *rt, const char *code) {
  char err[1024];
  int rc = mg_runtime_load_string(rt, code, "=share", err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "load: %s\n", err);
  return rc;
}

static mg_store_input text(const char *role, const char *content) {
  mg_store_input in;
  memset(&in, 0, sizeof in);
  in.role = role;
  in.content = content;
  in.content_len = strlen(content);
  return in;
}

/* The policy: a store of 50 messages pruned by a Lua strategy that counts
 * its calls and evicts the oldest unpinned ones; a 1 ms timer that adds
 * too; a pinned system prompt. */
static const char policy[] =
    "strategy_calls = 0\n"
    "local ctx = assert(mg.store { name = 'ctx', max_messages = 50,\n"
    "  on_full = 'prune', strategy = function(view, need)\n"
    "    strategy_calls = strategy_calls + 1\n"
    "    local ids = {}\n"
    "    for m in view:messages() do\n"
    "      if #ids >= need.count then break end\n"
    "      if not m.pinned then ids[#ids + 1] = m.id end\n"
    "    end\n"
    "    return ids\n"
    "  end })\n"
    "ctx:add { role = 'system', content = 'be brief', pinned = true }\n"
    "ticks = 0\n"
    "keep = mg.every(1, function()\n"
    "  ticks = ticks + 1\n"
    "  assert(ctx:add { role = 'tool', content = 'tick ' .. ticks })\n"
    "end)\n";

typedef struct runner {
  mg_runtime *rt;
  int rc;
} runner;

static void *run_loop(void *arg) {
  runner *r = arg;
  r->rc = mg_runtime_run(r->rt);
  return NULL;
}

typedef struct adder {
  mg_runtime *rt;
  int ok, failed;
  uint64_t max_len;
} adder;

static void *add_many(void *arg) {
  adder *a = arg;
  mg_store *s = NULL;
  char err[256];
  if (mg_runtime_store(a->rt, "ctx", &s, err, sizeof err) < 0) {
    fprintf(stderr, "mg_runtime_store: %s\n", err);
    a->failed = -1;
    return NULL;
  }
  for (int i = 0; i < 400; i++) {
    mg_store_input in = text("user", "a message from a host thread");
    mg_store_error e = {0};
    uint64_t id = 0;
    if (mg_runtime_store_add(a->rt, s, &in, &id, &e) == 0 && id > 0)
      a->ok++;
    else
      a->failed++;
    uint64_t n = mg_store_len(s); /* a read, straight from this thread */
    if (n > a->max_len)
      a->max_len = n;
  }
  mg_store_free(s);
  return NULL;
}

TEST(four_threads_add_while_the_policy_runs) {
  mg_runtime *rt = make();
  ASSERT(rt != NULL);
  ASSERT_EQ(load(rt, policy), 0);
  runner r = {rt, -1};
  pthread_t loop;
  ASSERT_EQ(pthread_create(&loop, NULL, run_loop, &r), 0);
  pthread_t t[4];
  adder a[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (adder){rt, 0, 0, 0};
    ASSERT_EQ(pthread_create(&t[i], NULL, add_many, &a[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    ASSERT_EQ(a[i].failed, 0);
    ASSERT_EQ(a[i].ok, 400);
    ASSERT_LE(a[i].max_len, 50);
  }
  /* the policy's own view, read on its own thread */
  mg_store *s = NULL;
  char err[256];
  ASSERT_EQ(mg_runtime_store(rt, "ctx", &s, err, sizeof err), 0);
  mg_store_stats st;
  mg_store_get_stats(s, &st);
  ASSERT_U64_EQ(st.message_count, 50);
  ASSERT_U64_EQ(st.pinned_count, 1);
  ASSERT_GE(st.evicted_count, 1600 - 50);
  ASSERT_EQ(mg_store_check(s, err, sizeof err), 0);
  mg_store_free(s);

  ASSERT_EQ(mg_runtime_request_shutdown(rt, 7), 0);
  pthread_join(loop, NULL);
  ASSERT_EQ(r.rc, 0);
  ASSERT_EQ(mg_runtime_exit_code(rt), 7);
  /* the strategy (Lua) ran for the host's adds too */
  lua_State *L = mg_runtime_lua(rt);
  lua_getglobal(L, "strategy_calls");
  ASSERT_GE(lua_tointeger(L, -1), 1600 - 50);
  lua_pop(L, 1);
  ASSERT_EQ(mg_runtime_callback_errors(rt), 0);
  mg_runtime_free(rt);
}

TEST(missing_doubled_and_closed_stores) {
  mg_runtime *rt = make();
  ASSERT(rt != NULL);
  ASSERT_EQ(load(rt, "a = mg.store { name = 'twin' }\n"
                     "b = mg.store { name = 'twin' }\n"
                     "solo = mg.store { name = 'solo' }\n"),
            0);
  mg_store *s = NULL;
  char err[256] = "";
  ASSERT_EQ(mg_runtime_store(rt, "nope", &s, err, sizeof err), -ENOENT);
  ASSERT_STR_EQ(err, "the policy has no open store named 'nope'");
  ASSERT(s == NULL);
  ASSERT_EQ(mg_runtime_store(rt, "twin", &s, err, sizeof err), -EEXIST);
  ASSERT(strstr(err, "2 open stores named 'twin'") != NULL);
  ASSERT_EQ(mg_runtime_store(rt, NULL, &s, err, sizeof err), -EINVAL);

  /* no thread owns the runtime now: these run on this thread */
  ASSERT_EQ(mg_runtime_store(rt, "solo", &s, err, sizeof err), 0);
  mg_store_input in = text("user", "hello");
  mg_store_error e = {0};
  uint64_t id = 0;
  ASSERT_EQ(mg_runtime_store_add(rt, s, &in, &id, &e), 0);
  ASSERT_U64_EQ(id, 1);
  ASSERT_EQ(mg_runtime_store_add_flat(rt, s, "tool", "{}", 2, NULL, "g1", 0, 5,
                                      -1, "k\0v\0", 4, &e),
            2);
  mg_store_msg m;
  ASSERT_EQ(mg_store_get(s, 2, &m), 0);
  ASSERT_STR_EQ(m.group, "g1");
  ASSERT_STR_EQ(mg_store_msg_meta_get(&m, "k"), "v");
  ASSERT_EQ(load(rt, "solo:close()\n"), 0); /* the policy closes it */
  ASSERT_EQ(mg_store_closed(s), 1);
  ASSERT_EQ(mg_runtime_store_add(rt, s, &in, &id, &e), MG_ECLOSED);
  ASSERT_STR_EQ(e.message, "store 'solo' is closed");
  mg_store *again = NULL;
  ASSERT_EQ(mg_runtime_store(rt, "solo", &again, err, sizeof err), -ENOENT);
  mg_store_free(s);

  /* one twin closed: the other is found */
  ASSERT_EQ(load(rt, "a:close()\n"), 0);
  ASSERT_EQ(mg_runtime_store(rt, "twin", &s, err, sizeof err), 0);
  ASSERT_EQ(mg_runtime_store_clear(rt, s, NULL), 0);
  mg_store_free(s);
  mg_runtime_free(rt);
}

TEST(dropped_store_is_closed_for_the_host) {
  mg_runtime *rt = make();
  ASSERT(rt != NULL);
  ASSERT_EQ(load(rt, "tmp = mg.store { name = 'tmp' }\n"), 0);
  mg_store *s = NULL;
  char err[256];
  ASSERT_EQ(mg_runtime_store(rt, "tmp", &s, err, sizeof err), 0);
  ASSERT_EQ(load(rt, "tmp = nil; collectgarbage(); collectgarbage()\n"), 0);
  ASSERT_EQ(mg_store_closed(s), 1);
  uint64_t n = 0;
  ASSERT_EQ(mg_runtime_store_prune(rt, s, 0, &n, err, sizeof err), MG_ECLOSED);
  mg_store_free(s); /* the last reference: freed (ASan: no leak) */
  mg_runtime_free(rt);
}

/* A host change that makes the Lua strategy fail (an endless loop stopped
 * by its budget): the add fails cleanly, the store is unchanged, and the
 * loop thread goes on. */
TEST(host_add_with_a_failing_strategy) {
  mg_runtime_opts o;
  mg_runtime *rt = NULL;
  char err[512];
  mg_runtime_opts_init(&o);
  o.cb_instructions = 100000;
  ASSERT_EQ(mg_runtime_new(&o, &rt, err, sizeof err), 0);
  ASSERT_EQ(load(rt, "full = mg.store { name = 'full', max_messages = 1,\n"
                     "  on_full = 'prune',\n"
                     "  strategy = function() while true do end end }\n"
                     "full:add { role = 'user', content = 'first' }\n"),
            0);
  mg_store *s = NULL;
  ASSERT_EQ(mg_runtime_store(rt, "full", &s, err, sizeof err), 0);
  mg_store_input in = text("user", "second");
  mg_store_error e = {0};
  uint64_t id = 0;
  ASSERT(mg_runtime_store_add(rt, s, &in, &id, &e) < 0);
  ASSERT(strstr(e.message, "strategy") != NULL);
  ASSERT_U64_EQ(mg_store_len(s), 1);
  ASSERT_EQ(mg_runtime_callback_errors(rt), 1);
  mg_store_free(s);
  mg_runtime_free(rt);
}

int main(void) {
  RUN(four_threads_add_while_the_policy_runs);
  RUN(missing_doubled_and_closed_stores);
  RUN(dropped_store_is_closed_for_the_host);
  RUN(host_add_with_a_failing_strategy);
  return mg_test_report();
}
