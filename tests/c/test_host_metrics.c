/* test_host_metrics.c — the runtime's metrics (host layer): the --metrics
 * address rules, mg_runtime_metrics_text with the built-ins and the
 * policy's own metrics, two runtimes that never share their registries,
 * callbacks counted by how a budget stopped them, the endpoint on port 0
 * and on a unix socket (mode 0600), and the errors of a start. HTTP and
 * promtool: tests/e2e/test_metrics.sh. */
#include <errno.h>
#include <lua.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "host/mg__rt_metrics.h"
#include "mg/mg_runtime.h"
#include "mg_test.h"

TEST(addresses_accepted) {
  static const struct {
    const char *text;
    int remote;
    int is_unix, loopback;
    const char *shown;
  } ok[] = {
      {"127.0.0.1:9100", 0, 0, 1, "127.0.0.1:9100"},
      {"127.0.0.1:0", 0, 0, 1, "127.0.0.1:0"},
      {"127.1.2.3:65535", 0, 0, 1, "127.1.2.3:65535"},
      {"localhost:80", 0, 0, 1, "127.0.0.1:80"},
      {"LocalHost:80", 0, 0, 1, "127.0.0.1:80"},
      {"[::1]:9100", 0, 0, 1, "[::1]:9100"},
      {"[::ffff:127.0.0.1]:1", 0, 0, 1, "[::ffff:127.0.0.1]:1"},
      {"unix:/run/mgrun/metrics.sock", 0, 1, 1, "unix:/run/mgrun/metrics.sock"},
      {"unix:rel.sock", 0, 1, 1, "unix:rel.sock"},
      {"0.0.0.0:9100", 1, 0, 0, "0.0.0.0:9100"},
      {"[::]:9100", 1, 0, 0, "[::]:9100"},
      {"192.168.1.5:9100", 1, 0, 0, "192.168.1.5:9100"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    mg__mx_addr a;
    char err[512] = "";
    int rc = mg__mx_parse_addr(ok[i].text, ok[i].remote, &a, err, sizeof err);
    if (rc != 0)
      fprintf(stderr, "%s: %s\n", ok[i].text, err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(a.is_unix, ok[i].is_unix);
    ASSERT_EQ(a.loopback, ok[i].loopback);
    ASSERT_STR_EQ(a.shown, ok[i].shown);
  }
}

TEST(addresses_refused) {
  static const struct {
    const char *text;
    int remote;
    const char *why;
  } bad[] = {
      {"", 0, "an empty address"},
      {"0.0.0.0:9100", 0, "is not a loopback address"},
      {"10.1.2.3:9100", 0, "unless --metrics-allow-remote is given"},
      {"[::]:9100", 0, "is not a loopback address"},
      {"127.0.0.1", 0, "no port"},
      {"127.0.0.1:", 0, "port '' is not a number"},
      {"127.0.0.1:65536", 0, "port '65536' is not a number from 0 to 65535"},
      {"127.0.0.1:-1", 0, "port '-1'"},
      {"127.0.0.1:9100x", 0, "port '9100x'"},
      {":9100", 0, "no host"},
      {"::1:9100", 0, "needs brackets"},
      {"[::1]9100", 0, "[ADDRESS]:PORT"},
      {"[127.0.0.1]:9100", 0, "is not an IPv6 address"},
      {"example.com:9100", 1, "does not resolve host names"},
      {"127.0.0.256:1", 0, "is not an IPv4 address"},
      {"unix:", 0, "no path after 'unix:'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mg__mx_addr a;
    char err[512] = "";
    ASSERT_EQ(
        mg__mx_parse_addr(bad[i].text, bad[i].remote, &a, err, sizeof err),
        -EINVAL);
    ASSERT_CONTAINS(err, "--metrics");
    ASSERT_CONTAINS(err, bad[i].why);
  }
  char longp[200] = "unix:/";
  memset(longp + 6, 'p', 150);
  longp[156] = '\0';
  mg__mx_addr a;
  char err[512];
  ASSERT_EQ(mg__mx_parse_addr(longp, 0, &a, err, sizeof err), -ENAMETOOLONG);
  ASSERT_CONTAINS(err, "holds at most 107");
}

/* A runtime on a loop of the test's, its log in a memory stream. */
typedef struct fixture {
  uv_loop_t loop;
  char *log;
  size_t log_len;
  FILE *logf;
  mg_logger *lg;
  mg_runtime_opts o;
} fixture;

static void fx_init(fixture *f) {
  memset(f, 0, sizeof *f);
  uv_loop_init(&f->loop);
  f->logf = open_memstream(&f->log, &f->log_len);
  f->lg = mg_logger_new(f->logf, MG_LOG_TEXT, MG_LOG_INFO);
  mg_runtime_opts_init(&f->o);
  f->o.loop = &f->loop;
  f->o.logger = f->lg;
}

static void fx_done(fixture *f, mg_runtime *rt) {
  mg_runtime_free(rt);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_loop_close(&f->loop);
  mg_logger_free(f->lg);
  fclose(f->logf);
  free(f->log);
}

/* Run the loop until the policy's global `done` is true (or 10 s). */
static int run_until_done(fixture *f, mg_runtime *rt) {
  lua_State *L = mg_runtime_lua(rt);
  for (int i = 0; i < 10000; i++) {
    lua_getglobal(L, "done");
    int done = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (done)
      return 1;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  return 0;
}

static char *text_of(mg_runtime *rt) {
  char *t = NULL, err[256];
  size_t len = 0;
  if (mg_runtime_metrics_text(rt, &t, &len, err, sizeof err) < 0) {
    fprintf(stderr, "metrics_text: %s\n", err);
    return NULL;
  }
  return t;
}

TEST(two_runtimes_keep_their_own_metrics) {
  fixture fa, fb;
  fx_init(&fa);
  fx_init(&fb);
  mg_runtime *a, *b;
  char err[512];
  ASSERT_EQ(mg_runtime_new(&fa.o, &a, err, sizeof err), 0);
  ASSERT_EQ(mg_runtime_new(&fb.o, &b, err, sizeof err), 0);
  ASSERT_EQ(mg_runtime_load_string(a,
                                   "local g = mg.metrics.gauge('agent_x', "
                                   "'x', {'who'})\ng:set(1, {who = 'a'})\n",
                                   "=a", err, sizeof err),
            0);
  ASSERT_EQ(mg_runtime_load_string(
                b,
                "local g = mg.metrics.gauge('agent_x', 'x', {'who'})\n"
                "g:set(2, {who = 'b'})\n"
                "mg.metrics.counter('agent_only_b_total', 'b'):inc(5)\n",
                "=b", err, sizeof err),
            0);
  char *ta = text_of(a), *tb = text_of(b);
  ASSERT(ta && tb);
  ASSERT_CONTAINS(ta, "agent_x{who=\"a\"} 1\n");
  ASSERT(strstr(ta, "who=\"b\"") == NULL);
  ASSERT(strstr(ta, "agent_only_b_total") == NULL);
  ASSERT_CONTAINS(tb, "agent_x{who=\"b\"} 2\n");
  ASSERT_CONTAINS(tb, "agent_only_b_total 5\n");
  ASSERT(strstr(tb, "who=\"a\"") == NULL);
  /* the built-ins come first, the policy's after them */
  ASSERT_CONTAINS(ta, "mgrun_build_info{version=\"" MG_VERSION "\"} 1\n");
  ASSERT_CONTAINS(ta, "# TYPE mgrun_lua_memory_bytes gauge\n");
  ASSERT_CONTAINS(ta, "# TYPE mgrun_process_cpu_seconds_total counter\n");
  ASSERT_CONTAINS(ta, "mgrun_node_memory_effective_bytes ");
  ASSERT_LT(strstr(ta, "mgrun_build_info") - ta, strstr(ta, "agent_x") - ta);
  free(ta);
  free(tb);
  fx_done(&fa, a);
  fx_done(&fb, b);
}

TEST(callbacks_counted_by_budget) {
  fixture f;
  fx_init(&f);
  f.o.cb_instructions = 2000000;
  f.o.cb_timeout_ms = 1000;
  f.o.lua_mem_max_bytes = 8u << 20;
  mg_runtime *rt;
  char err[512];
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), 0);
  ASSERT_EQ(mg_runtime_load_string(
                rt,
                "ctx = assert(mg.store{ name = 'ctx', max_messages = 2 })\n"
                "ctx:add{ role = 'u', content = 'a' }\n"
                "ctx:add{ role = 'u', content = 'b' }\n"
                "assert(not ctx:add{ role = 'u', content = 'c' })\n"
                "mg.after(1, function() error('e1') end)\n"
                "mg.after(2, function() while true do end end)\n"
                "mg.after(3, function() os.execute('sleep 1.2')\n"
                "  for i = 1, 100000 do end end)\n"
                "mg.after(4, function() local t = {} while true do\n"
                "  t[#t+1] = ('x'):rep(4096) .. #t end end)\n"
                "mg.after(5, function() end)\n"
                "mg.after(50, function() done = true end)\n",
                "=cb", err, sizeof err),
            0);
  ASSERT(run_until_done(&f, rt));
  char *t = text_of(rt);
  ASSERT(t);
  ASSERT_CONTAINS(t, "mgrun_callbacks_total 6\n");
  ASSERT_CONTAINS(t, "mgrun_callbacks_failed_total 4\n");
  ASSERT_CONTAINS(t,
                  "mgrun_callbacks_stopped_total{kind=\"instructions\"} 1\n");
  ASSERT_CONTAINS(t, "mgrun_callbacks_stopped_total{kind=\"timeout\"} 1\n");
  ASSERT_CONTAINS(t, "mgrun_callbacks_stopped_total{kind=\"memory\"} 1\n");
  ASSERT_CONTAINS(t, "mgrun_lua_memory_limit_bytes 8388608\n");
  ASSERT_CONTAINS(t, "mgrun_store_messages{store=\"ctx\"} 2\n");
  ASSERT_CONTAINS(t, "mgrun_store_max_messages{store=\"ctx\"} 2\n");
  ASSERT_CONTAINS(t, "mgrun_store_rejected_adds_total{store=\"ctx\"} 1\n");
  ASSERT(strstr(t, "mgrun_store_max_tokens") == NULL); /* none set */
  free(t);
  fx_done(&f, rt);
}

TEST(check_only_collects_nothing) {
  fixture f;
  fx_init(&f);
  f.o.check_only = 1;
  f.o.metrics_addr = "127.0.0.1:0"; /* --check starts nothing */
  mg_runtime *rt;
  char err[512], *t = NULL;
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), 0);
  ASSERT_EQ(mg_runtime_metrics_text(rt, &t, NULL, err, sizeof err), MG_ENOTSUP);
  ASSERT(t == NULL);
  ASSERT_CONTAINS(err, "collects none");
  fflush(f.logf);
  ASSERT(strstr(f.log, "metrics_listening") == NULL);
  fx_done(&f, rt);
}

/* The port from "metrics_listening addr=127.0.0.1:PORT". */
static int logged_port(fixture *f) {
  fflush(f->logf);
  const char *at = strstr(f->log, "metrics_listening addr=127.0.0.1:");
  return at ? atoi(at + strlen("metrics_listening addr=127.0.0.1:")) : -1;
}

TEST(port_zero_is_logged_and_a_busy_port_refused) {
  fixture f;
  fx_init(&f);
  f.o.metrics_addr = "127.0.0.1:0";
  mg_runtime *rt;
  char err[512];
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), 0);
  int port = logged_port(&f);
  ASSERT_GT(port, 0);
  /* something listens there */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd);
  /* a second runtime on that port */
  fixture g;
  fx_init(&g);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  g.o.metrics_addr = addr;
  mg_runtime *rt2 = NULL;
  ASSERT_EQ(mg_runtime_new(&g.o, &rt2, err, sizeof err), -EADDRINUSE);
  ASSERT(rt2 == NULL);
  ASSERT_CONTAINS(err, "address already in use");
  ASSERT_CONTAINS(err, "0 for a free one");
  uv_run(&g.loop, UV_RUN_DEFAULT);
  uv_loop_close(&g.loop);
  mg_logger_free(g.lg);
  fclose(g.logf);
  free(g.log);
  fx_done(&f, rt);
}

TEST(unix_socket_is_private_and_removed) {
  fixture f;
  fx_init(&f);
  char path[128], addr[160];
  snprintf(path, sizeof path, "/tmp/mgrun-test-metrics-%d.sock", (int)getpid());
  snprintf(addr, sizeof addr, "unix:%s", path);
  unlink(path);
  f.o.metrics_addr = addr;
  mg_runtime *rt;
  char err[512];
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), 0);
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT(S_ISSOCK(st.st_mode));
  ASSERT_EQ(st.st_mode & 0777, 0600);
  fflush(f.logf);
  ASSERT_CONTAINS(f.log, "metrics_listening addr=unix:");
  fx_done(&f, rt);
  ASSERT_EQ(stat(path, &st), -1); /* removed at stop */
  /* a stale socket (bound, nobody listening: a dead mgrun's) is replaced */
  int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  ASSERT_EQ(bind(sfd, (struct sockaddr *)&sun, sizeof sun), 0);
  close(sfd);
  fx_init(&f);
  f.o.metrics_addr = addr;
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), 0);
  fx_done(&f, rt);
  /* a file that is not a socket is not replaced */
  FILE *fp = fopen(path, "w");
  ASSERT(fp != NULL);
  fclose(fp);
  fx_init(&f);
  f.o.metrics_addr = addr;
  rt = NULL;
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), -EEXIST);
  ASSERT_CONTAINS(err, "exists and is not a socket");
  unlink(path);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  uv_loop_close(&f.loop);
  mg_logger_free(f.lg);
  fclose(f.logf);
  free(f.log);
}

TEST(metrics_file_written_at_start_and_refused_where_it_cannot_be) {
  fixture f;
  fx_init(&f);
  char path[128];
  snprintf(path, sizeof path, "/tmp/mgrun-test-metrics-%d.prom", (int)getpid());
  f.o.metrics_file = path;
  mg_runtime *rt;
  char err[512];
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), 0);
  FILE *fp = fopen(path, "r");
  ASSERT(fp != NULL);
  char buf[256] = "";
  ASSERT(fgets(buf, sizeof buf, fp) != NULL);
  fclose(fp);
  ASSERT_CONTAINS(buf, "# HELP mgrun_build_info");
  fx_done(&f, rt);
  unlink(path);
  fx_init(&f);
  f.o.metrics_file = "/nonexistent-dir-of-mgrun/m.prom";
  rt = NULL;
  ASSERT_EQ(mg_runtime_new(&f.o, &rt, err, sizeof err), -ENOENT);
  ASSERT_CONTAINS(err, "--metrics-file: cannot write "
                       "'/nonexistent-dir-of-mgrun/m.prom.tmp'");
  uv_run(&f.loop, UV_RUN_DEFAULT);
  uv_loop_close(&f.loop);
  mg_logger_free(f.lg);
  fclose(f.logf);
  free(f.log);
}

int main(void) {
  RUN(addresses_accepted);
  RUN(addresses_refused);
  RUN(two_runtimes_keep_their_own_metrics);
  RUN(callbacks_counted_by_budget);
  RUN(check_only_collects_nothing);
  RUN(port_zero_is_logged_and_a_busy_port_refused);
  RUN(unix_socket_is_private_and_removed);
  RUN(metrics_file_written_at_start_and_refused_where_it_cannot_be);
  return mg_test_report();
}
