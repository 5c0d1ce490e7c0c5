/* test_plot_model.c — mgrun-plot's model and scales (runtime/mgplot): a
 * timeline's lines read into runs of samples (cut at exits, restarts and
 * new pids), limit and warn steps, events and store series; the reasons
 * for skipped lines; a truncated last line; ticks, their labels and the
 * value-to-pixel map. */
#include "mg_test.h"
#include "mgplot/mgp.h"

#include <math.h>

static int feed(mgp_run *r, const char *line) {
  char why[200] = "";
  return mgp_read_line(r, line, strlen(line), why, sizeof why);
}

/* Feed `line`, expect it skipped with `needle` in the reason. */
static void expect_skip(const char *line, const char *needle) {
  mgp_run r;
  char why[200] = "";
  mgp_run_init(&r);
  int rc = mgp_read_line(&r, line, strlen(line), why, sizeof why);
  size_t nc = r.nc, nst = r.nst;
  mgp_run_free(&r);
  if (rc != -1)
    MG__FAIL("%s: rc %d, want -1 (skipped)", line, rc);
  if (!strstr(why, needle))
    MG__FAIL("%s: reason \"%s\" lacks \"%s\"", line, why, needle);
  if (nc || nst)
    MG__FAIL("%s: a skipped line made a child or a store", line);
}

static mgp_child *child(mgp_run *r, const char *name) {
  for (size_t i = 0; i < r->nc; i++)
    if (strcmp(r->c[i].name, name) == 0)
      return &r->c[i];
  return NULL;
}

TEST(samples_runs_and_restarts) {
  mgp_run r;
  mgp_run_init(&r);
  ASSERT_EQ(feed(&r, "{\"t_ms\":0.1,\"type\":\"start\",\"wall\":\"2026-01-02T"
                     "03:04:05Z\"}"),
            1);
  ASSERT_EQ(feed(&r,
                 "{\"t_ms\":10,\"type\":\"child_started\",\"name\":\"w\","
                 "\"pid\":7,\"restarts\":0,\"limit\":1000,\"warn_at\":0.8}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":100,\"type\":\"sample\",\"name\":\"w\",\"pid\":"
                     "7,\"used\":100,\"limit\":1000}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":200,\"type\":\"sample\",\"name\":\"w\",\"pid\":"
                     "7,\"used\":300,\"limit\":1000}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":250,\"type\":\"oom_kill\",\"name\":\"w\"}"), 1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":260,\"type\":\"child_exited\",\"name\":\"w\","
                     "\"reason\":\"oom\",\"peak\":1000,\"will_restart\":true}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":300,\"type\":\"restart\",\"name\":\"w\","
                     "\"restarts\":1}"),
            1);
  ASSERT_EQ(feed(&r,
                 "{\"t_ms\":310,\"type\":\"child_started\",\"name\":\"w\","
                 "\"pid\":8,\"restarts\":1,\"limit\":1000,\"warn_at\":0.8}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":400,\"type\":\"sample\",\"name\":\"w\",\"pid\":"
                     "8,\"used\":50,\"limit\":2000}"),
            1);
  /* a new pid without an exit line between: a break all the same */
  ASSERT_EQ(feed(&r, "{\"t_ms\":500,\"type\":\"sample\",\"name\":\"w\",\"pid\":"
                     "9,\"used\":60}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":600,\"type\":\"sample\",\"name\":\"w\",\"pid\":"
                     "9,\"used\":70,\"limit\":null}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":700,\"type\":\"end\"}"), 1);
  ASSERT_EQ(r.nc, 1);
  mgp_child *c = child(&r, "w");
  ASSERT(c != NULL);
  ASSERT_EQ(c->ns, 5);
  int starts[] = {1, 0, 1, 1, 0};
  for (size_t i = 0; i < 5; i++)
    if (c->s[i].seg_start != starts[i])
      MG__FAIL("sample %zu: seg_start %d, want %d", i, c->s[i].seg_start,
               starts[i]);
  ASSERT_DBL_NEAR(c->s[0].t, 0.1, 1e-12);
  ASSERT_DBL_NEAR(c->s[1].used, 300, 0);
  ASSERT(isnan(c->s[4].limit));
  /* steps: 1000 (warn 800) from 10 ms, 2000 (warn 1600) from 400 ms, none
   * from 600 ms */
  ASSERT_EQ(c->nsteps, 3);
  ASSERT_DBL_NEAR(c->steps[0].t, 0.010, 1e-12);
  ASSERT_DBL_NEAR(c->steps[0].limit, 1000, 0);
  ASSERT_DBL_NEAR(c->steps[0].warn, 800, 1e-9);
  ASSERT_DBL_NEAR(c->steps[1].limit, 2000, 0);
  ASSERT_DBL_NEAR(c->steps[1].warn, 1600, 1e-9);
  ASSERT(isnan(c->steps[2].limit) && isnan(c->steps[2].warn));
  ASSERT_EQ(c->nev, 3); /* oom_kill, child_exited, restart */
  ASSERT_EQ(c->ev[0].kind, MGP_EV_OOM);
  ASSERT_DBL_NEAR(c->ev[0].value, 1000, 0); /* at the limit */
  ASSERT_EQ(c->ev[1].kind, MGP_EV_EXIT);
  ASSERT_STR_EQ(c->ev[1].label, "oom");
  ASSERT_DBL_NEAR(c->ev[1].value, 300, 0); /* the run's last sample */
  ASSERT(isnan(c->ev[2].value));
  ASSERT_EQ(c->ev[2].kind, MGP_EV_RESTART);
  ASSERT_STR_EQ(c->ev[2].label, "restart 1");
  ASSERT_EQ(c->restarts, 1);
  ASSERT_DBL_NEAR(c->peak, 1000, 0);
  ASSERT_EQ(c->final_exit, 0);
  ASSERT_STR_EQ(r.wall, "2026-01-02T03:04:05Z");
  ASSERT(r.has_end);
  ASSERT_DBL_NEAR(r.t_min, 0.0001, 1e-12);
  ASSERT_DBL_NEAR(r.t_max, 0.7, 1e-12);
  ASSERT(mgp_plottable(&r));
  mgp_run_free(&r);
}

TEST(exit_labels) {
  mgp_run r;
  mgp_run_init(&r);
  feed(&r, "{\"t_ms\":1,\"type\":\"child_exited\",\"name\":\"a\",\"reason\":"
           "\"exit\",\"code\":3,\"signal\":null,\"will_restart\":false}");
  feed(&r, "{\"t_ms\":2,\"type\":\"child_exited\",\"name\":\"a\",\"reason\":"
           "\"signal\",\"code\":null,\"signal\":15}");
  feed(&r, "{\"t_ms\":3,\"type\":\"child_exited\",\"name\":\"a\",\"reason\":"
           "\"limit\"}");
  feed(&r, "{\"t_ms\":4,\"type\":\"kill\",\"name\":\"a\",\"signal\":15,"
           "\"signame\":\"TERM\",\"grace_ms\":10}");
  mgp_child *c = child(&r, "a");
  ASSERT(c != NULL);
  ASSERT_EQ(c->nev, 4);
  ASSERT_STR_EQ(c->ev[0].label, "exit 3");
  ASSERT_STR_EQ(c->ev[1].label, "signal 15");
  ASSERT_STR_EQ(c->ev[2].label, "limit");
  ASSERT_STR_EQ(c->ev[3].label, "TERM");
  ASSERT_EQ(c->final_exit, 1);
  ASSERT(mgp_plottable(&r)); /* a child without samples: its events */
  ASSERT_DBL_NEAR(c->ev[0].value, 0, 0); /* no sample, no peak: at 0 */
  /* a run without samples has its exit marked at its peak */
  feed(&r, "{\"t_ms\":5,\"type\":\"child_started\",\"name\":\"a\"}");
  feed(&r, "{\"t_ms\":6,\"type\":\"child_exited\",\"name\":\"a\",\"reason\":"
           "\"oom\",\"peak\":4096}");
  ASSERT_EQ(c->nev, 5);
  ASSERT_DBL_NEAR(c->ev[4].value, 4096, 0);
  mgp_run_free(&r);
}

/* A kill right after a restart, before the new run's first sample, is not
 * drawn at the memory of the run before. */
TEST(marks_of_a_run_without_samples) {
  mgp_run r;
  mgp_run_init(&r);
  feed(&r, "{\"t_ms\":1,\"type\":\"child_started\",\"name\":\"a\","
           "\"limit\":100}");
  feed(&r, "{\"t_ms\":2,\"type\":\"sample\",\"name\":\"a\",\"used\":80}");
  feed(&r, "{\"t_ms\":3,\"type\":\"kill\",\"name\":\"a\",\"signal\":9}");
  feed(&r, "{\"t_ms\":4,\"type\":\"child_exited\",\"name\":\"a\","
           "\"reason\":\"signal\",\"signal\":9,\"peak\":90,"
           "\"will_restart\":true}");
  feed(&r, "{\"t_ms\":5,\"type\":\"restart\",\"name\":\"a\",\"restarts\":1}");
  feed(&r, "{\"t_ms\":6,\"type\":\"child_started\",\"name\":\"a\","
           "\"limit\":100}");
  feed(&r, "{\"t_ms\":7,\"type\":\"kill\",\"name\":\"a\",\"signal\":15}");
  feed(&r, "{\"t_ms\":8,\"type\":\"child_exited\",\"name\":\"a\","
           "\"reason\":\"signal\",\"signal\":15,\"peak\":10}");
  mgp_child *c = child(&r, "a");
  ASSERT(c != NULL);
  ASSERT_EQ(c->nev, 5);
  ASSERT_STR_EQ(c->ev[0].label, "signal 9");
  ASSERT_DBL_NEAR(c->ev[0].value, 80, 0); /* its run's last sample */
  ASSERT_DBL_NEAR(c->ev[1].value, 80, 0);
  ASSERT_DBL_NEAR(c->ev[3].value, 0, 0);  /* no sample in this run yet */
  ASSERT_DBL_NEAR(c->ev[4].value, 10, 0); /* its exit: at its peak */
  ASSERT_EQ(c->final_exit, 1);
  mgp_run_free(&r);
}

TEST(stores_and_evictions) {
  mgp_run r;
  mgp_run_init(&r);
  ASSERT_EQ(feed(&r, "{\"t_ms\":1000,\"type\":\"store\",\"store\":\"s\","
                     "\"messages\":5,\"bytes\":500,\"max_messages\":10,"
                     "\"max_bytes\":0,\"evicted\":3}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":2000,\"type\":\"store\",\"store\":\"s\","
                     "\"messages\":10,\"bytes\":900,\"max_messages\":10,"
                     "\"max_bytes\":4096,\"evicted\":7}"),
            1);
  ASSERT_EQ(feed(&r, "{\"t_ms\":2000.5,\"type\":\"evict\",\"store\":\"s\","
                     "\"count\":4}"),
            1);
  ASSERT_EQ(r.nst, 1);
  mgp_store *s = &r.st[0];
  ASSERT_EQ(s->np, 2);
  ASSERT_DBL_NEAR(s->p[1].bytes, 900, 0);
  ASSERT_DBL_NEAR(s->p[1].messages, 10, 0);
  ASSERT_DBL_NEAR(s->max_messages, 10, 0);
  ASSERT_DBL_NEAR(s->max_bytes, 4096, 0);
  /* the first line's 3 (evicted before it) and the evict line's 4 */
  ASSERT_EQ(s->nev, 2);
  ASSERT_STR_EQ(s->ev[0].label, "\xe2\x88\x92"
                                "3");
  ASSERT_DBL_NEAR(s->ev[0].value, 500, 0);
  ASSERT_STR_EQ(s->ev[1].label, "\xe2\x88\x92"
                                "4");
  ASSERT_DBL_NEAR(s->ev[1].value, 900, 0);
  ASSERT(mgp_plottable(&r));
  mgp_run_free(&r);
}

TEST(skipped_lines_say_why) {
  expect_skip("not json", "not JSON");
  expect_skip("[1, 2]", "not a JSON object");
  expect_skip("{\"type\":\"sample\"}", "no number \"t_ms\"");
  expect_skip("{\"t_ms\":\"1\",\"type\":\"sample\"}", "no number \"t_ms\"");
  expect_skip("{\"t_ms\":1}", "no string \"type\"");
  expect_skip("{\"t_ms\":1,\"type\":\"sample\",\"used\":5}",
              "without a string \"name\"");
  expect_skip("{\"t_ms\":1,\"type\":\"sample\",\"name\":\"\",\"used\":5}",
              "without a string \"name\"");
  expect_skip("{\"t_ms\":1,\"type\":\"sample\",\"name\":\"a\"}",
              "\"used\" is not a non-negative number (missing)");
  expect_skip("{\"t_ms\":1,\"type\":\"sample\",\"name\":\"a\",\"used\":-1}",
              "\"used\" is not a non-negative number");
  expect_skip("{\"t_ms\":1,\"type\":\"sample\",\"name\":\"a\",\"used\":\"5\"}",
              "(it has another kind)");
  expect_skip("{\"t_ms\":1,\"type\":\"store\",\"store\":\"s\",\"bytes\":1}",
              "\"messages\" is not a non-negative number");
  expect_skip("{\"t_ms\":1,\"type\":\"evict\",\"store\":\"s\"}",
              "\"count\" is not");
  expect_skip("{\"t_ms\":1,\"type\":\"store\",\"messages\":1,\"bytes\":1}",
              "without a string \"store\"");
  /* unknown types are ignored, not skipped */
  mgp_run r;
  mgp_run_init(&r);
  ASSERT_EQ(feed(&r, "{\"t_ms\":1,\"type\":\"from_the_future\",\"x\":1}"), 0);
  ASSERT_EQ(r.nc, 0);
  mgp_run_free(&r);
}

TEST(file_counts_and_truncation) {
  const char text[] =
      "{\"t_ms\":1,\"type\":\"start\",\"wall\":\"w\"}\n"
      "\n"
      "   \n"
      "{\"t_ms\":2,\"type\":\"sample\",\"name\":\"a\",\"used\":10}\r\n"
      "garbage\n"
      "{\"t_ms\":3,\"type\":\"something_else\"}\n"
      "{\"t_ms\":4,\"type\":\"sample\",\"name\":\"a\",\"used\":20}\n"
      "{\"t_ms\":5,\"type\":\"sam";
  FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
  ASSERT(f != NULL);
  mgp_run r;
  char err[256] = "";
  mgp_run_init(&r);
  ASSERT_EQ(mgp_read_file(&r, f, err, sizeof err), 0);
  fclose(f);
  ASSERT_EQ(r.lines, 6); /* blank lines are not counted */
  ASSERT_EQ(r.used, 3);
  ASSERT_EQ(r.ignored, 1);
  ASSERT_EQ(r.skipped, 2);
  ASSERT_CONTAINS(r.skip_note[0], "line 5: not JSON");
  ASSERT_CONTAINS(r.skip_note[1], "line 8: not JSON");
  ASSERT_CONTAINS(r.skip_note[1], "cut short: no newline");
  ASSERT_EQ(child(&r, "a")->ns, 2);
  mgp_run_free(&r);

  /* a last line without its newline that is whole is read */
  const char whole[] =
      "{\"t_ms\":2,\"type\":\"sample\",\"name\":\"a\",\"used\":"
      "10}";
  f = fmemopen((void *)whole, sizeof whole - 1, "r");
  mgp_run_init(&r);
  ASSERT_EQ(mgp_read_file(&r, f, err, sizeof err), 0);
  fclose(f);
  ASSERT_EQ(r.used, 1);
  ASSERT_EQ(r.skipped, 0);
  mgp_run_free(&r);
}

TEST(ticks_and_labels) {
  char buf[64];
  double top;
  ASSERT_DBL_NEAR(mgp_nice_step(10, 5), 2, 0);
  ASSERT_DBL_NEAR(mgp_nice_step(8.15, 10), 1, 0);
  ASSERT_DBL_NEAR(mgp_nice_step(3.7, 10), 0.5, 1e-12);
  ASSERT_DBL_NEAR(mgp_nice_step(0.03, 3), 0.01, 1e-12);

  /* 40 MiB: MiB, a step of 10 MiB, the top at 40 MiB exactly */
  mgp_ticks tk = mgp_bytes_ticks(40.0 * 1048576, 4, &top);
  ASSERT_STR_EQ(tk.uname, "MiB");
  ASSERT_DBL_NEAR(tk.step, 10.0 * 1048576, 0);
  ASSERT_DBL_NEAR(top, 40.0 * 1048576, 0);
  ASSERT_STR_EQ(mgp_fmt_tick(&tk, 30.0 * 1048576, buf, sizeof buf), "30 MiB");
  ASSERT_STR_EQ(mgp_fmt_tick(&tk, 0, buf, sizeof buf), "0");
  /* 33.5 MiB rounds up to 40 */
  tk = mgp_bytes_ticks(33.5 * 1048576, 4, &top);
  ASSERT_DBL_NEAR(top, 40.0 * 1048576, 0);
  /* 1.5 GiB: steps of half a GiB, labels with a decimal */
  tk = mgp_bytes_ticks(1.5 * 1073741824, 4, &top);
  ASSERT_STR_EQ(tk.uname, "GiB");
  ASSERT_STR_EQ(mgp_fmt_tick(&tk, 0.5 * 1073741824, buf, sizeof buf),
                "0.5 GiB");
  ASSERT_DBL_NEAR(top, 1.5 * 1073741824, 0);
  /* a few bytes: whole bytes */
  tk = mgp_bytes_ticks(3, 4, &top);
  ASSERT_STR_EQ(tk.uname, "B");
  ASSERT_DBL_NEAR(tk.step, 1, 0);
  ASSERT_DBL_NEAR(top, 3, 0);
  /* nothing (or nonsense) counts as 1 MiB */
  tk = mgp_bytes_ticks(0, 4, &top);
  ASSERT_DBL_NEAR(top, 1048576, 0);
  tk = mgp_bytes_ticks(NAN, 4, &top);
  ASSERT_DBL_NEAR(top, 1048576, 0);

  tk = mgp_count_ticks(12.6, 4, &top);
  ASSERT_DBL_NEAR(tk.step, 5, 0);
  ASSERT_DBL_NEAR(top, 15, 0);
  ASSERT_STR_EQ(mgp_fmt_tick(&tk, 10, buf, sizeof buf), "10");
  tk = mgp_count_ticks(0.5, 4, &top);
  ASSERT_DBL_NEAR(tk.step, 1, 0); /* never fractions of a message */
  ASSERT_DBL_NEAR(top, 1, 0);

  ASSERT_STR_EQ(mgp_fmt_secs(0.5, 1.5, buf, sizeof buf), "1.5 s");
  ASSERT_STR_EQ(mgp_fmt_secs(1, 2, buf, sizeof buf), "2 s");
  ASSERT_STR_EQ(mgp_fmt_secs(0.25, 0, buf, sizeof buf), "0 s");
  ASSERT_STR_EQ(mgp_fmt_secs(0.25, 0.75, buf, sizeof buf), "0.75 s");
}

TEST(map) {
  mgp_axis x = {0, 10, 100, 1100};
  ASSERT_DBL_NEAR(mgp_map(&x, 0), 100, 0);
  ASSERT_DBL_NEAR(mgp_map(&x, 2.5), 350, 1e-9);
  ASSERT_DBL_NEAR(mgp_map(&x, 10), 1100, 0);
  mgp_axis y = {0, 40, 300, 100}; /* upwards */
  ASSERT_DBL_NEAR(mgp_map(&y, 10), 250, 1e-9);
  ASSERT_DBL_NEAR(mgp_map(&y, 40), 100, 0);
  mgp_axis flat = {5, 5, 7, 9};
  ASSERT_DBL_NEAR(mgp_map(&flat, 123), 7, 0);
}

int main(void) {
  RUN(samples_runs_and_restarts);
  RUN(exit_labels);
  RUN(marks_of_a_run_without_samples);
  RUN(stores_and_evictions);
  RUN(skipped_lines_say_why);
  RUN(file_counts_and_truncation);
  RUN(ticks_and_labels);
  RUN(map);
  return mg_test_report();
}
