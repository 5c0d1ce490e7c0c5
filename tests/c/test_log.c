/* test_log.c — structured log lines: text and JSON formats, level
 * filtering, quoting, UTF-8 handling, one line per call under threads. */
#include "mg/mg_log.h"
#include "mg_test.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <pthread.h>
#include <regex.h>
#include <time.h>

/* A logger writing into memory; `*buf` is valid after fflush/fclose. */
typedef struct {
  FILE *f;
  char *buf;
  size_t len;
  mg_logger *lg;
} sink;

static void sink_open(sink *s, mg_log_format fmt, mg_log_level lvl) {
  s->buf = NULL;
  s->len = 0;
  s->f = open_memstream(&s->buf, &s->len);
  if (!s->f)
    MG__FAIL("open_memstream failed");
  s->lg = mg_logger_new(s->f, fmt, lvl);
  if (!s->lg)
    MG__FAIL("mg_logger_new failed");
}

static const char *sink_text(sink *s) {
  fflush(s->f);
  return s->buf ? s->buf : "";
}

static void sink_close(sink *s) {
  mg_logger_free(s->lg);
  fclose(s->f);
  free(s->buf);
}

/* Text after the timestamp and the space that follows it. */
static const char *after_time(const char *line) {
  const char *sp = strchr(line, ' ');
  return sp ? sp + 1 : "";
}

/* Check "YYYY-MM-DDTHH:MM:SS.mmmZ" and that it lies within [t0, t1]. */
static void check_time(const char *s, time_t t0, time_t t1) {
  regex_t re;
  ASSERT_EQ(regcomp(&re,
                    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                    "\\.[0-9]{3}Z",
                    REG_EXTENDED | REG_NOSUB),
            0);
  int m = regexec(&re, s, 0, NULL, 0);
  regfree(&re);
  if (m != 0)
    MG__FAIL("bad time in \"%s\"", s);
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  ASSERT(end != NULL && *end == '.');
  time_t t = timegm(&tm);
  ASSERT(t >= t0 && t <= t1);
}

TEST(text_format) {
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_DEBUG);
  time_t t0 = time(NULL);
  mg_log_field f[] = {MG_LF_STR("key", "value"),
                      MG_LF_STR("key2", "quoted value with spaces")};
  mg_log(s.lg, MG_LOG_WARN, "event_name", f, 2);
  time_t t1 = time(NULL);
  const char *out = sink_text(&s);
  check_time(out, t0, t1);
  ASSERT_EQ(out[23], 'Z');
  ASSERT_EQ(out[24], ' ');
  ASSERT_STR_EQ(after_time(out),
                "warn  event_name key=value key2=\"quoted value with "
                "spaces\"\n");
  sink_close(&s);
}

TEST(text_levels_padded) {
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_DEBUG);
  mg_log(s.lg, MG_LOG_DEBUG, "a", NULL, 0);
  mg_log(s.lg, MG_LOG_INFO, "b", NULL, 0);
  mg_log(s.lg, MG_LOG_WARN, "c", NULL, 0);
  mg_log(s.lg, MG_LOG_ERROR, "d", NULL, 0);
  const char *out = sink_text(&s);
  const char *want[] = {"debug a\n", "info  b\n", "warn  c\n", "error d\n"};
  const char *line = out;
  for (int i = 0; i < 4; i++) {
    const char *nl = strchr(line, '\n');
    ASSERT(nl != NULL);
    char one[128];
    snprintf(one, sizeof one, "%.*s", (int)(nl - line + 1), line);
    ASSERT_STR_EQ(after_time(one), want[i]);
    line = nl + 1;
  }
  ASSERT_STR_EQ(line, "");
  sink_close(&s);
}

TEST(text_quoting_and_types) {
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_DEBUG);
  mg_log_field f[] = {
      MG_LF_STR("plain", "abc/def:1.5"),
      MG_LF_STR("empty", ""),
      MG_LF_STR("q", "say \"hi\""),
      MG_LF_STR("eq", "a=b"),
      MG_LF_STR("nl", "two\nlines\ttab"),
      MG_LF_STR("bs", "back\\slash"),
      MG_LF_STR("ctl", "\x01x"),
      MG_LF_STR("utf8", "h\xc3\xa9llo"),
      MG_LF_STR("nul", NULL),
      MG_LF_INT("i", -5),
      MG_LF_UINT("u", UINT64_MAX),
      MG_LF_DBL("d", 0.1),
      MG_LF_DBL("d2", 92.3),
      MG_LF_DBL("big", 1e300),
      MG_LF_DBL("nan", NAN),
      MG_LF_DBL("ninf", -INFINITY),
      MG_LF_BOOL("t", 1),
      MG_LF_BOOL("f", 0),
      MG_LF_STR("bad key=\"x", "v"),
  };
  mg_log(s.lg, MG_LOG_INFO, "types", f, sizeof f / sizeof f[0]);
  ASSERT_STR_EQ(after_time(sink_text(&s)),
                "info  types plain=abc/def:1.5 empty=\"\" q=\"say \\\"hi\\\"\" "
                "eq=\"a=b\" nl=\"two\\nlines\\ttab\" bs=\"back\\\\slash\" "
                "ctl=\"\\x01x\" utf8=h\xc3\xa9llo nul=null i=-5 "
                "u=18446744073709551615 d=0.1 d2=92.3 big=1e+300 nan=nan "
                "ninf=-inf t=true f=false bad_key__x=v\n");
  sink_close(&s);
  /* people read text lines: at most 6 significant digits */
  sink_open(&s, MG_LOG_TEXT, MG_LOG_DEBUG);
  mg_log_field g[] = {MG_LF_DBL("fraction", 0.87159533073929962),
                      MG_LF_DBL("utilization", 0.800203125),
                      MG_LF_DBL("third", 1.0 / 3.0), MG_LF_DBL("two", 2.0),
                      MG_LF_DBL("tiny", 1.5e-9)};
  mg_log(s.lg, MG_LOG_INFO, "short", g, 5);
  ASSERT_STR_EQ(after_time(sink_text(&s)),
                "info  short fraction=0.871595 utilization=0.800203 "
                "third=0.333333 two=2 tiny=1.5e-09\n");
  sink_close(&s);
}

TEST(text_event_quoted_when_needed) {
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_DEBUG);
  mg_log(s.lg, MG_LOG_INFO, "two words", NULL, 0);
  mg_log(s.lg, MG_LOG_INFO, NULL, NULL, 3); /* NULL fields: n ignored */
  const char *out = sink_text(&s);
  const char *second = strchr(out, '\n') + 1;
  char first[128];
  snprintf(first, sizeof first, "%.*s", (int)(second - out), out);
  ASSERT_STR_EQ(after_time(first), "info  \"two words\"\n");
  ASSERT_STR_EQ(after_time(second), "info  -\n");
  sink_close(&s);
}

TEST(level_filtering) {
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_WARN);
  ASSERT_EQ(mg_logger_level(s.lg), MG_LOG_WARN);
  ASSERT_EQ(mg_logger_format(s.lg), MG_LOG_TEXT);
  mg_log(s.lg, MG_LOG_DEBUG, "dropped_debug", NULL, 0);
  mg_log(s.lg, MG_LOG_INFO, "dropped_info", NULL, 0);
  mg_log(s.lg, MG_LOG_WARN, "kept_warn", NULL, 0);
  mg_log(s.lg, MG_LOG_ERROR, "kept_error", NULL, 0);
  mg_logger_set_level(s.lg, MG_LOG_DEBUG);
  ASSERT_EQ(mg_logger_level(s.lg), MG_LOG_DEBUG);
  mg_log(s.lg, MG_LOG_DEBUG, "kept_debug", NULL, 0);
  mg_logger_set_level(s.lg, MG_LOG_ERROR);
  mg_log(s.lg, MG_LOG_WARN, "dropped_warn", NULL, 0);
  const char *out = sink_text(&s);
  ASSERT(strstr(out, "dropped") == NULL);
  ASSERT_CONTAINS(out, "warn  kept_warn\n");
  ASSERT_CONTAINS(out, "error kept_error\n");
  ASSERT_CONTAINS(out, "debug kept_debug\n");
  int lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  ASSERT_EQ(lines, 3);
  sink_close(&s);
}

TEST(format_switched_at_run_time) {
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_INFO);
  mg_log(s.lg, MG_LOG_INFO, "as_text", NULL, 0);
  mg_logger_set_format(s.lg, MG_LOG_JSON);
  ASSERT_EQ(mg_logger_format(s.lg), MG_LOG_JSON);
  mg_log(s.lg, MG_LOG_INFO, "as_json", NULL, 0);
  mg_logger_set_format(s.lg, (mg_log_format)7); /* not a format: text */
  ASSERT_EQ(mg_logger_format(s.lg), MG_LOG_TEXT);
  mg_log(s.lg, MG_LOG_INFO, "text_again", NULL, 0);
  mg_logger_set_format(NULL, MG_LOG_JSON); /* a no-op */
  const char *out = sink_text(&s);
  ASSERT_CONTAINS(out, "info  as_text\n");
  ASSERT_CONTAINS(out, "\"level\":\"info\",\"event\":\"as_json\"}\n");
  ASSERT_CONTAINS(out, "info  text_again\n");
  sink_close(&s);
}

TEST(json_format) {
  sink s;
  sink_open(&s, MG_LOG_JSON, MG_LOG_DEBUG);
  ASSERT_EQ(mg_logger_format(s.lg), MG_LOG_JSON);
  time_t t0 = time(NULL);
  mg_log_field f[] = {
      MG_LF_STR("store", "ctx one"), MG_LF_INT("used", -80),
      MG_LF_UINT("limit", 4096),     MG_LF_UINT("huge", UINT64_MAX),
      MG_LF_DBL("pct", 92.3),        MG_LF_DBL("tenth", 0.1),
      MG_LF_BOOL("pinned", 1),       MG_LF_BOOL("evicted", 0),
      MG_LF_STR("none", NULL),       MG_LF_DBL("nan", NAN),
      MG_LF_DBL("inf", INFINITY),    MG_LF_STR("esc", "q\"\\\n\x01"),
  };
  mg_log(s.lg, MG_LOG_WARN, "approaching_size_limit", f,
         sizeof f / sizeof f[0]);
  time_t t1 = time(NULL);
  const char *out = sink_text(&s);
  size_t len = strlen(out);
  ASSERT(len > 0 && out[len - 1] == '\n');
  ASSERT(strchr(out, '\n') == out + len - 1); /* one line */
  ASSERT_EQ(strncmp(out, "{\"time\":\"", 9), 0);
  json_error_t je;
  json_t *o = json_loads(out, 0, &je);
  if (!o)
    MG__FAIL("invalid JSON (%s): %s", je.text, out);
  /* Keys in order: time, level, event, then the fields. */
  static const char *const order[] = {
      "time",  "level",  "event",   "store", "used", "limit", "huge", "pct",
      "tenth", "pinned", "evicted", "none",  "nan",  "inf",   "esc"};
  size_t k = 0;
  for (void *it = json_object_iter(o); it;
       it = json_object_iter_next(o, it), k++) {
    ASSERT(k < sizeof order / sizeof order[0]);
    ASSERT_STR_EQ(json_object_iter_key(it), order[k]);
  }
  ASSERT_EQ(k, sizeof order / sizeof order[0]);
  check_time(json_string_value(json_object_get(o, "time")), t0, t1);
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "level")), "warn");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "event")),
                "approaching_size_limit");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "store")), "ctx one");
  ASSERT(json_is_integer(json_object_get(o, "used")));
  ASSERT_EQ(json_integer_value(json_object_get(o, "used")), -80);
  ASSERT(json_is_integer(json_object_get(o, "limit")));
  ASSERT_EQ(json_integer_value(json_object_get(o, "limit")), 4096);
  ASSERT(json_is_real(json_object_get(o, "huge")));
  ASSERT_DBL_NEAR(json_real_value(json_object_get(o, "huge")) /
                      18446744073709551615.0,
                  1.0, 1e-14); /* a real: approximate by nature */
  ASSERT(json_is_real(json_object_get(o, "pct")));
  ASSERT(json_real_value(json_object_get(o, "pct")) == 92.3); /* exact */
  ASSERT(json_real_value(json_object_get(o, "tenth")) == 0.1);
  ASSERT(json_is_true(json_object_get(o, "pinned")));
  ASSERT(json_is_false(json_object_get(o, "evicted")));
  ASSERT(json_is_null(json_object_get(o, "none")));
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "nan")), "nan");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "inf")), "inf");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "esc")), "q\"\\\n\x01");
  json_decref(o);
  /* Short reals stay short on the wire... */
  ASSERT_CONTAINS(out, "\"pct\":92.3,");
  ASSERT_CONTAINS(out, "\"tenth\":0.1,");
  sink_close(&s);
  /* ...and a double that needs 17 digits gets them. */
  sink_open(&s, MG_LOG_JSON, MG_LOG_DEBUG);
  double third = 1.0 / 3.0;
  mg_log_field g[] = {MG_LF_DBL("third", third), MG_LF_DBL("half", 0.5)};
  mg_log(s.lg, MG_LOG_INFO, "precise", g, 2);
  o = json_loads(sink_text(&s), 0, &je);
  ASSERT(o != NULL);
  ASSERT(json_real_value(json_object_get(o, "third")) == third);
  ASSERT(json_real_value(json_object_get(o, "half")) == 0.5);
  json_decref(o);
  sink_close(&s);
}

TEST(json_invalid_utf8_is_replaced) {
  sink s;
  sink_open(&s, MG_LOG_JSON, MG_LOG_DEBUG);
  mg_log_field f[] = {
      MG_LF_STR("latin1", "caf\xe9"),
      MG_LF_STR("valid", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
      MG_LF_STR("overlong", "\xc0\xaf"),
      MG_LF_STR("surrogate", "\xed\xa0\x80"),
      MG_LF_STR("truncated", "ab\xe2\x82"),
      MG_LF_STR("k\xff", "v"),
      MG_LF_STR("time", "user field named time"),
  };
  mg_log(s.lg, MG_LOG_INFO, "ev\xfe", f, sizeof f / sizeof f[0]);
  const char *out = sink_text(&s);
  json_error_t je;
  json_t *o = json_loads(out, 0, &je);
  if (!o)
    MG__FAIL("invalid JSON (%s): %s", je.text, out);
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "event")),
                "ev\xef\xbf\xbd");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "latin1")),
                "caf\xef\xbf\xbd");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "valid")),
                "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "overlong")),
                "\xef\xbf\xbd\xef\xbf\xbd");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "surrogate")),
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "truncated")),
                "ab\xef\xbf\xbd\xef\xbf\xbd");
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "k\xef\xbf\xbd")), "v");
  /* The line's own time is not overwritten by a field named "time". */
  ASSERT_EQ(strncmp(json_string_value(json_object_get(o, "time")), "20", 2), 0);
  ASSERT_STR_EQ(json_string_value(json_object_get(o, "field_time")),
                "user field named time");
  json_decref(o);
  sink_close(&s);
}

TEST(numbers_ignore_locale) {
  /* With a ',' decimal locale (when one is installed) numbers keep '.'. */
  const char *cur = setlocale(LC_NUMERIC, NULL);
  char saved[64];
  snprintf(saved, sizeof saved, "%s", cur ? cur : "C");
  int have = setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL ||
             setlocale(LC_NUMERIC, "fr_FR.UTF-8") != NULL;
  sink s;
  sink_open(&s, MG_LOG_TEXT, MG_LOG_DEBUG);
  mg_log_field f[] = {MG_LF_DBL("x", 0.5)};
  mg_log(s.lg, MG_LOG_INFO, "n", f, 1);
  ASSERT_STR_EQ(after_time(sink_text(&s)), "info  n x=0.5\n");
  sink_close(&s);
  setlocale(LC_NUMERIC, saved);
  if (!have)
    fprintf(stderr, "note: no ',' decimal locale installed; checked in C\n");
}

#define THREADS 4
#define LINES 500

static void *writer(void *arg) {
  mg_logger *lg = arg;
  char pad[300];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  for (int i = 0; i < LINES; i++) {
    mg_log_field f[] = {MG_LF_INT("i", i), MG_LF_STR("pad", pad)};
    mg_log(lg, MG_LOG_INFO, "threaded", f, 2);
  }
  return NULL;
}

TEST(threads_one_line_per_call) {
  FILE *f = tmpfile();
  ASSERT(f != NULL);
  setvbuf(f, NULL, _IOFBF, 64); /* small buffer: many partial writes */
  mg_logger *lg = mg_logger_new(f, MG_LOG_JSON, MG_LOG_DEBUG);
  ASSERT(lg != NULL);
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++)
    ASSERT_EQ(pthread_create(&th[i], NULL, writer, lg), 0);
  for (int i = 0; i < THREADS; i++)
    ASSERT_EQ(pthread_join(th[i], NULL), 0);
  mg_logger_free(lg);
  rewind(f);
  char line[4096];
  int n = 0;
  long sum = 0;
  while (fgets(line, sizeof line, f)) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    if (!o)
      MG__FAIL("line %d is not JSON (%s): %s", n + 1, je.text, line);
    sum += (long)json_integer_value(json_object_get(o, "i"));
    json_decref(o);
    n++;
  }
  fclose(f);
  ASSERT_EQ(n, THREADS * LINES);
  ASSERT_EQ(sum, (long)THREADS * (LINES - 1) * LINES / 2);
}

TEST(parse_names) {
  mg_log_level l = MG_LOG_ERROR;
  ASSERT_EQ(mg_log_level_parse("debug", &l), 0);
  ASSERT_EQ(l, MG_LOG_DEBUG);
  ASSERT_EQ(mg_log_level_parse("INFO", &l), 0);
  ASSERT_EQ(l, MG_LOG_INFO);
  ASSERT_EQ(mg_log_level_parse("Warn", &l), 0);
  ASSERT_EQ(l, MG_LOG_WARN);
  l = MG_LOG_DEBUG;
  ASSERT_EQ(mg_log_level_parse("warning", &l), 0);
  ASSERT_EQ(l, MG_LOG_WARN);
  ASSERT_EQ(mg_log_level_parse("ERROR", &l), 0);
  ASSERT_EQ(l, MG_LOG_ERROR);
  ASSERT_EQ(mg_log_level_parse("verbose", &l), -EINVAL);
  ASSERT_EQ(mg_log_level_parse("", &l), -EINVAL);
  ASSERT_EQ(mg_log_level_parse("warnings", &l), -EINVAL);
  ASSERT_EQ(mg_log_level_parse(NULL, &l), -EINVAL);
  ASSERT_EQ(l, MG_LOG_ERROR); /* untouched on failure */
  mg_log_format f = MG_LOG_TEXT;
  ASSERT_EQ(mg_log_format_parse("json", &f), 0);
  ASSERT_EQ(f, MG_LOG_JSON);
  ASSERT_EQ(mg_log_format_parse("Text", &f), 0);
  ASSERT_EQ(f, MG_LOG_TEXT);
  ASSERT_EQ(mg_log_format_parse("xml", &f), -EINVAL);
  ASSERT_EQ(mg_log_format_parse(NULL, &f), -EINVAL);
  ASSERT_STR_EQ(mg_log_level_name(MG_LOG_DEBUG), "debug");
  ASSERT_STR_EQ(mg_log_level_name(MG_LOG_INFO), "info");
  ASSERT_STR_EQ(mg_log_level_name(MG_LOG_WARN), "warn");
  ASSERT_STR_EQ(mg_log_level_name(MG_LOG_ERROR), "error");
  ASSERT_STR_EQ(mg_log_level_name((mg_log_level)42), "?");
}

TEST(null_logger) {
  mg_log(NULL, MG_LOG_ERROR, "nothing", NULL, 0);
  ASSERT(mg_logger_new(NULL, MG_LOG_TEXT, MG_LOG_INFO) == NULL);
  mg_logger_free(NULL);
}

int main(void) {
  RUN(text_format);
  RUN(text_levels_padded);
  RUN(text_quoting_and_types);
  RUN(text_event_quoted_when_needed);
  RUN(level_filtering);
  RUN(format_switched_at_run_time);
  RUN(json_format);
  RUN(json_invalid_utf8_is_replaced);
  RUN(numbers_ignore_locale);
  RUN(threads_one_line_per_call);
  RUN(parse_names);
  RUN(null_logger);
  return mg_test_report();
}
