/* agent_host.c — a small agent host in C on mgrun's SDK.
 *
 * It runs a policy (policy.lua) on its own libuv loop, takes the policy's
 * conversation store and, turn by turn, adds what an agent produces: the
 * user's message, a tool call and its result (one group, evicted whole),
 * the assistant's answer — under a pinned system prompt that is never
 * evicted. The policy's Lua strategy prunes the store when it is full.
 *
 *   cc agent_host.c $(pkg-config --cflags --libs mg-runtime) -o agent_host
 *   ./agent_host policy.lua [TURNS]
 */
#include <mg/mg.h>
#include <mg/mg_runtime.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct host {
  mg_runtime *rt;
  mg_store *conversation; /* the policy's store, our reference */
  uv_timer_t turn_timer;
  int turn, turns;
  int failed;
} host;

static int add(host *h, const char *role, const char *content,
               const char *group, int pinned) {
  mg_store_input in;
  memset(&in, 0, sizeof in);
  in.role = role;
  in.content = content;
  in.content_len = strlen(content);
  in.group = group;
  in.pinned = pinned;
  in.source = "agent_host";
  uint64_t id = 0;
  mg_store_error e = {0};
  /* Through the runtime: the policy's Lua strategy runs if it is full. */
  if (mg_runtime_store_add(h->rt, h->conversation, &in, &id, &e) < 0) {
    fprintf(stderr, "agent_host: add failed (%s): %s\n",
            e.limit_type ? mg_store_limit_name(e.limit_type) : "error",
            e.message);
    h->failed = 1;
    return -1;
  }
  return 0;
}

static void print_stats(host *h) {
  mg_store_stats st;
  mg_store_get_stats(h->conversation, &st);
  printf("turn %2d: %2" PRIu64 " messages, %5" PRIu64 " bytes, %" PRIu64
         " tool-call groups, %3" PRIu64 " evicted\n",
         h->turn, st.message_count, st.total_size_bytes, st.group_count,
         st.evicted_count);
}

static void on_turn(uv_timer_t *t) {
  host *h = t->data;
  char text[256], group[32];
  h->turn++;
  snprintf(group, sizeof group, "call-%d", h->turn);
  snprintf(text, sizeof text, "Question %d: how much memory is free?",
           h->turn);
  add(h, "user", text, NULL, 0);
  snprintf(text, sizeof text,
           "{\"tool\":\"memory\",\"call_id\":\"%s\",\"args\":{}}", group);
  add(h, "assistant", text, group, 0);
  snprintf(text, sizeof text, "{\"call_id\":\"%s\",\"available\":%d}", group,
           1000 + h->turn);
  add(h, "tool", text, group, 0);
  snprintf(text, sizeof text, "About %d MiB are free (turn %d).",
           1000 + h->turn, h->turn);
  add(h, "assistant", text, NULL, 0);
  print_stats(h);
  if (h->turn >= h->turns || h->failed) {
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    mg_runtime_shutdown(h->rt, h->failed ? 1 : 0); /* the policy's timers go */
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s POLICY.lua [TURNS]\n", argv[0]);
    return 2;
  }
  host h;
  memset(&h, 0, sizeof h);
  h.turns = argc > 2 ? atoi(argv[2]) : 12;
  if (h.turns < 1 || h.turns > 1000) {
    fprintf(stderr, "agent_host: TURNS must be 1 to 1000, got '%s'\n",
            argv[2]);
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  mg_logger *log = mg_logger_new(stderr, MG_LOG_TEXT, MG_LOG_INFO);

  char err[1024];
  mg_runtime_opts o;
  mg_runtime_opts_init(&o);
  o.loop = &loop; /* our loop: the policy's timers run on it */
  o.logger = log;
  if (mg_runtime_new(&o, &h.rt, err, sizeof err) < 0) {
    fprintf(stderr, "agent_host: %s\n", err);
    return 1;
  }
  if (mg_runtime_load(h.rt, argv[1], 0, NULL, err, sizeof err) < 0) {
    fprintf(stderr, "agent_host: %s\n", err);
    mg_runtime_free(h.rt);
    return 2;
  }
  if (mg_runtime_store(h.rt, "conversation", &h.conversation, err,
                       sizeof err) < 0) {
    fprintf(stderr, "agent_host: %s\n", err);
    mg_runtime_free(h.rt);
    return 1;
  }
  add(&h, "system", "You are a careful agent. Use tools; answer briefly.",
      NULL, 1);

  uv_timer_init(&loop, &h.turn_timer);
  h.turn_timer.data = &h;
  uv_timer_start(&h.turn_timer, on_turn, 10, 10);
  uv_run(&loop, UV_RUN_DEFAULT); /* until the turns end and the policy stops */

  mg_store_msg first;
  int kept = mg_store_at(h.conversation, 0, &first) == 0 && first.pinned &&
             strcmp(first.role, "system") == 0;
  char err2[256];
  int ok = mg_store_check(h.conversation, err2, sizeof err2) == 0;
  printf("system prompt kept: %s; store consistent: %s\n", kept ? "yes" : "no",
         ok ? "yes" : err2);
  mg_store_free(h.conversation);
  int code = mg_runtime_exit_code(h.rt);
  mg_runtime_free(h.rt);
  uv_run(&loop, UV_RUN_DEFAULT); /* the runtime's last close callbacks */
  uv_loop_close(&loop);
  mg_logger_free(log);
  return h.failed || !kept || !ok ? 1 : code;
}
