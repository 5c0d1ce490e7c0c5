/* test_size.c — mg_size_parse / mg_size_from_double / mg_size_format. */
#include "mg/mg_error.h"
#include "mg/mg_size.h"
#include "mg_test.h"

#include <locale.h>

/* Parse `text` and expect `want` bytes. */
static void expect_ok(const char *text, uint64_t base, uint64_t want) {
  char err[512] = "";
  uint64_t v = 12345;
  int rc = mg_size_parse(text, base, &v, err, sizeof err);
  if (rc != 0)
    MG__FAIL("\"%s\": rc %d (%s)", text, rc, err);
  if (v != want)
    MG__FAIL("\"%s\": got %" PRIu64 ", want %" PRIu64, text, v, want);
}

/* Parse `text`, expect error `code` and a message quoting the input, naming
 * what is accepted and containing `needle`. */
static void expect_err(const char *text, uint64_t base, int code,
                       const char *needle) {
  char err[1024] = "";
  uint64_t v = 12345;
  int rc = mg_size_parse(text, base, &v, err, sizeof err);
  if (rc != code)
    MG__FAIL("\"%s\": rc %d (%s), want %d (%s); err: %s", text, rc,
             mg_err_name(rc), code, mg_err_name(code), err);
  if (v != 0)
    MG__FAIL("\"%s\": out not zeroed on error: %" PRIu64, text, v);
  char quoted[256];
  snprintf(quoted, sizeof quoted, "\"%s\"", text);
  if (!strstr(err, quoted))
    MG__FAIL("\"%s\": message does not quote the input: %s", text, err);
  if (!strstr(err, MG_SIZE_ACCEPTED))
    MG__FAIL("\"%s\": message does not say what is accepted: %s", text, err);
  if (needle && !strstr(err, needle))
    MG__FAIL("\"%s\": message lacks \"%s\": %s", text, needle, err);
}

TEST(plain_bytes) {
  expect_ok("0", 0, 0);
  expect_ok("512", 0, 512);
  expect_ok("1048576", 0, 1048576);
  expect_ok("007", 0, 7);
  expect_ok("9223372036854775807", 0, UINT64_C(9223372036854775807));
  expect_ok(" 9223372036854775807 ", 0, MG_SIZE_MAX);
  expect_ok("9223372036854775806", 0, UINT64_C(9223372036854775806));
}

TEST(units_are_powers_of_1024) {
  expect_ok("2 GB", 0, UINT64_C(2147483648));
  expect_ok("2GB", 0, UINT64_C(2147483648));
  expect_ok("2gb", 0, UINT64_C(2147483648));
  expect_ok("2GiB", 0, UINT64_C(2147483648));
  expect_ok("2g", 0, UINT64_C(2147483648));
  expect_ok("1KiB", 0, 1024);
  expect_ok("1kb", 0, 1024);
  expect_ok("1k", 0, 1024);
  expect_ok("1KIB", 0, 1024);
  expect_ok("3M", 0, 3u << 20);
  expect_ok("3mib", 0, 3u << 20);
  expect_ok("1T", 0, UINT64_C(1) << 40);
  expect_ok("1tib", 0, UINT64_C(1) << 40);
  expect_ok("1PiB", 0, UINT64_C(1) << 50);
  expect_ok("7E", 0, UINT64_C(7) << 60);
  expect_ok("100B", 0, 100);
  expect_ok("100 b", 0, 100);
  expect_ok(" 4 M ", 0, 4u << 20);
  expect_ok("\t4M\n", 0, 4u << 20);
  expect_ok("4   M", 0, 4u << 20);
  expect_ok("8388607T", 0, UINT64_C(8388607) << 40);
}

TEST(fractions_round_down) {
  expect_ok("1.5G", 0, UINT64_C(1610612736));
  expect_ok("0.1K", 0, 102); /* 102.4 */
  expect_ok("0.5", 0, 0);    /* half a byte is no byte */
  expect_ok("1.9", 0, 1);
  expect_ok("0.5K", 0, 512);
  expect_ok("2.25 GiB", 0, UINT64_C(2415919104));
  expect_ok("0.999999999999K", 0, 1023);
  expect_ok("1.000000000000000000000000000001K", 0, 1024);
  /* 2^-60 EiB written out exactly is exactly one byte. */
  expect_ok("0.000000000000000000867361737988403547205962240695953369140625E",
            0, 1);
  /* One digit less: just under one byte. */
  expect_ok("0.00000000000000000086736173798840354720596224069595336914062E", 0,
            0);
  /* 7.99999… EiB fits, rounded down to 2^63 - 1 at most. */
  expect_ok("7.9999999999999999999E", 0, UINT64_C(9223372036854775807));
}

TEST(percent_of_base) {
  expect_ok("50%", 1000, 500);
  expect_ok("100%", 1000, 1000);
  expect_ok("0%", 1000, 0);
  expect_ok("12.5%", 1000, 125);
  expect_ok(" 33 % ", 1000, 330);
  expect_ok("33.3333%", 1000, 333);
  expect_ok("100.000%", 1000, 1000);
  expect_ok("100%", MG_SIZE_MAX, MG_SIZE_MAX);
  expect_ok("50%", MG_SIZE_MAX, MG_SIZE_MAX / 2);
  expect_ok("80%", UINT64_C(13) << 30, UINT64_C(11166914969)); /* .6 */
}

TEST(percent_errors) {
  expect_err("50%", 0, MG_EPARSE, "effective memory");
  expect_err("101%", 1000, MG_ERANGE_SIZE, "100%");
  expect_err("100.5%", 1000, MG_ERANGE_SIZE, "100%");
  expect_err("99999999999999999999999%", 1000, MG_ERANGE_SIZE, "100%");
  expect_err("50%%", 1000, MG_EPARSE, NULL);
  expect_err("50%G", 1000, MG_EPARSE, NULL);
  expect_err("-5%", 1000, MG_EPARSE, "negative");
}

TEST(bad_inputs) {
  expect_err("", 0, MG_EPARSE, "empty");
  expect_err("   ", 0, MG_EPARSE, "whitespace");
  expect_err("-1", 0, MG_EPARSE, "negative");
  expect_err("-0.5G", 0, MG_EPARSE, "negative");
  expect_err("-0", 0, MG_EPARSE, "negative");
  expect_err("nan", 0, MG_EPARSE, "NaN");
  expect_err("NaN", 0, MG_EPARSE, "NaN");
  expect_err("inf", 0, MG_EPARSE, "infinity");
  expect_err("infinity", 0, MG_EPARSE, "infinity");
  expect_err("INF", 0, MG_EPARSE, "infinity");
  expect_err("0x10", 0, MG_EPARSE, "hexadecimal");
  expect_err("1e3", 0, MG_EPARSE, "exponent");
  expect_err("1E3", 0, MG_EPARSE, "exponent");
  expect_err("1.5e+3", 0, MG_EPARSE, "exponent");
  expect_err("12Gx", 0, MG_EPARSE, "Gx");
  expect_err("1.2.3", 0, MG_EPARSE, ".3");
  expect_err("5Q", 0, MG_EPARSE, "unknown unit \"Q\"");
  expect_err("5 GB extra", 0, MG_EPARSE, "extra");
  expect_err("1.", 0, MG_EPARSE, "digits after '.'");
  expect_err(".5G", 0, MG_EPARSE, NULL);
  expect_err("+5", 0, MG_EPARSE, NULL);
  expect_err("G", 0, MG_EPARSE, NULL);
  expect_err("1 000", 0, MG_EPARSE, NULL);
  expect_err("1,5G", 0, MG_EPARSE, NULL);
}

TEST(overflow) {
  expect_err("8E", 0, MG_ERANGE_SIZE, "2^63-1");
  expect_err("9223372036854775808", 0, MG_ERANGE_SIZE, "2^63-1");
  expect_err("18446744073709551616", 0, MG_ERANGE_SIZE, NULL);
  expect_err("99999999999999999999999999", 0, MG_ERANGE_SIZE, NULL);
  expect_err("10000000T", 0, MG_ERANGE_SIZE, NULL);
  expect_err("8388608T", 0, MG_ERANGE_SIZE, NULL);
  /* Syntax errors win over range errors. */
  expect_err("99999999999999999999999Q", 0, MG_EPARSE, "unknown unit");
}

TEST(null_and_small_buffers) {
  uint64_t v = 1;
  ASSERT_EQ(mg_size_parse(NULL, 0, &v, NULL, 0), MG_EPARSE);
  ASSERT_EQ(mg_size_parse("12", 0, NULL, NULL, 0), 0);
  char tiny[8];
  ASSERT_EQ(mg_size_parse("bogus", 0, &v, tiny, sizeof tiny), MG_EPARSE);
  ASSERT_EQ(strlen(tiny), sizeof tiny - 1);
}

TEST(locale_does_not_matter) {
  /* A program may set a locale with ',' as decimal point; parsing reads
   * digits itself. Skip silently when no such locale is installed. */
  const char *old = setlocale(LC_NUMERIC, NULL);
  char saved[64];
  snprintf(saved, sizeof saved, "%s", old ? old : "C");
  if (setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
    expect_ok("1.5G", 0, UINT64_C(1610612736));
    expect_err("1,5G", 0, MG_EPARSE, NULL);
  }
  setlocale(LC_NUMERIC, saved);
}

TEST(from_double) {
  uint64_t v = 1;
  char err[256];
  ASSERT_EQ(mg_size_from_double(0.0, &v, err, sizeof err), 0);
  ASSERT_U64_EQ(v, 0);
  ASSERT_EQ(mg_size_from_double(2147483648.0, &v, err, sizeof err), 0);
  ASSERT_U64_EQ(v, UINT64_C(2147483648));
  ASSERT_EQ(mg_size_from_double(9223372036854774784.0, &v, err, sizeof err),
            0); /* largest double below 2^63 */
  ASSERT_U64_EQ(v, UINT64_C(9223372036854774784));
  ASSERT_EQ(mg_size_from_double(NAN, &v, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "nan");
  ASSERT_U64_EQ(v, 0);
  ASSERT_EQ(mg_size_from_double(INFINITY, &v, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "inf");
  ASSERT_EQ(mg_size_from_double(-INFINITY, &v, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "-inf");
  ASSERT_EQ(mg_size_from_double(-1.0, &v, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "negative");
  ASSERT_EQ(mg_size_from_double(1.5, &v, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "whole");
  ASSERT_EQ(mg_size_from_double(9223372036854775808.0, &v, err, sizeof err),
            MG_ERANGE_SIZE);
  ASSERT_EQ(mg_size_from_double(1e30, &v, err, sizeof err), MG_ERANGE_SIZE);
  ASSERT_CONTAINS(err, "9223372036854775807");
}

TEST(format_table) {
  static const struct {
    uint64_t bytes;
    const char *want;
  } rows[] = {
      {0, "0 B"},
      {1, "1 B"},
      {512, "512 B"},
      {1023, "1023 B"},
      {1024, "1.00 KiB"},
      {1536, "1.50 KiB"},
      {1048575, "1.00 MiB"}, /* 1023.999 KiB rounds up a unit */
      {1048576, "1.00 MiB"},
      {UINT64_C(1610612736), "1.50 GiB"},
      {UINT64_C(20) << 30, "20.00 GiB"},
      {UINT64_C(13) << 30, "13.00 GiB"},
      {UINT64_C(1) << 40, "1.00 TiB"},
      {UINT64_C(1) << 50, "1.00 PiB"},
      {UINT64_C(1) << 60, "1.00 EiB"},
      {MG_SIZE_MAX, "7.99 EiB"}, /* 8.00 EiB would not parse back */
      {(UINT64_C(1) << 63) - (UINT64_C(1) << 52), "7.99 EiB"},
      {UINT64_MAX, "16.00 EiB"},
      {UINT64_C(25276026880), "23.54 GiB"},
      {1029, "1.00 KiB"}, /* 1.0049 */
      {1030, "1.01 KiB"}, /* 1.0059 */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char buf[32];
    char *r = mg_size_format(rows[i].bytes, buf, sizeof buf);
    ASSERT(r == buf);
    ASSERT_STR_EQ(buf, rows[i].want);
  }
  char small[5];
  mg_size_format(UINT64_C(20) << 30, small, sizeof small);
  ASSERT_STR_EQ(small, "20.0");
  ASSERT(mg_size_format(1, NULL, 0) == NULL);
}

TEST(format_parses_back) {
  /* Every formatted value parses back to within the rounding step. */
  static const uint64_t vals[] = {0,
                                  1023,
                                  4096,
                                  UINT64_C(1610612736),
                                  UINT64_C(123456789012),
                                  UINT64_C(5) << 50,
                                  UINT64_C(7) << 60};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char buf[32], err[512];
    uint64_t back;
    mg_size_format(vals[i], buf, sizeof buf);
    ASSERT_EQ(mg_size_parse(buf, 0, &back, err, sizeof err), 0);
    double rel = vals[i] ? fabs((double)back - (double)vals[i]) / vals[i] : 0;
    ASSERT(rel < 0.005);
  }
}

/* parse(format(x)) succeeds for every x up to MG_SIZE_MAX and lands
 * within a hundredth of the unit printed: a random sweep plus every
 * power-of-two edge. */
static void check_round_trip(uint64_t x) {
  char buf[32], err[512];
  uint64_t back;
  mg_size_format(x, buf, sizeof buf);
  if (mg_size_parse(buf, 0, &back, err, sizeof err) != 0)
    MG__FAIL("%" PRIu64 " formats as \"%s\", which does not parse: %s", x, buf,
             err);
  uint64_t unit = 1;
  while (unit <= x / 1024 && unit < (UINT64_C(1) << 60))
    unit *= 1024;
  double diff = fabs((double)back - (double)x);
  if (x >= 1024 && diff > (double)unit / 100 + 1)
    MG__FAIL("%" PRIu64 " formats as \"%s\", which reads back as %" PRIu64, x,
             buf, back);
  if (x < 1024 && back != x)
    MG__FAIL("%" PRIu64 " formats as \"%s\"", x, buf);
}

TEST(format_round_trips_everywhere) {
  uint64_t s = UINT64_C(0x9E3779B97F4A7C15);
  for (int i = 0; i < 200000; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    int bits = (int)(s % 64);
    check_round_trip((s >> 1) >> (63 - bits) & MG_SIZE_MAX);
  }
  for (int k = 0; k < 63; k++) {
    uint64_t p = UINT64_C(1) << k;
    check_round_trip(p - 1);
    check_round_trip(p);
    check_round_trip(p + 1);
    check_round_trip(p + p / 200); /* near a rounding step */
  }
  for (uint64_t d = 0; d < 5000; d++)
    check_round_trip(MG_SIZE_MAX - d * (UINT64_C(1) << 40));
  check_round_trip(MG_SIZE_MAX);
}

int main(void) {
  RUN(plain_bytes);
  RUN(units_are_powers_of_1024);
  RUN(fractions_round_down);
  RUN(percent_of_base);
  RUN(percent_errors);
  RUN(bad_inputs);
  RUN(overflow);
  RUN(null_and_small_buffers);
  RUN(locale_does_not_matter);
  RUN(from_double);
  RUN(format_table);
  RUN(format_parses_back);
  RUN(format_round_trips_everywhere);
  return mg_test_report();
}
