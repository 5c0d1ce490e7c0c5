/* mg_test.h — a tiny test harness for the C unit tests (libuv-style
 * typed asserts). Each test file defines TEST(name) functions and a main
 * that RUNs them and returns mg_test_report(). A failed assertion prints
 * file:line and the values, abandons that test and goes on to the next.
 * SKIP(reason) ends the whole executable with status 77 (ctest: skipped),
 * except SKIP_CGROUP under MG_REQUIRE_CGROUP=1, where it is a failure. */
#ifndef MG_TEST_H
#define MG_TEST_H

#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf mg__test_jmp;
static int mg__test_failed_total;
static int mg__test_passed_total;
static int mg__test_cur_failed;
static const char *mg__test_cur_name;

#define MG__FAIL(...)                                                          \
  do {                                                                         \
    fprintf(stderr, "FAIL %s (%s:%d): ", mg__test_cur_name, __FILE__,          \
            __LINE__);                                                         \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    mg__test_cur_failed = 1;                                                   \
    longjmp(mg__test_jmp, 1);                                                  \
  } while (0)

#define ASSERT(cond)                                                           \
  do {                                                                         \
    if (!(cond))                                                               \
      MG__FAIL("assertion failed: %s", #cond);                                 \
  } while (0)

#define ASSERT_INT_OP(a, op, b)                                                \
  do {                                                                         \
    long long mg__a = (long long)(a), mg__b = (long long)(b);                  \
    if (!(mg__a op mg__b))                                                     \
      MG__FAIL("%s %s %s: %lld vs %lld", #a, #op, #b, mg__a, mg__b);           \
  } while (0)
#define ASSERT_EQ(a, b) ASSERT_INT_OP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP(a, >=, b)

#define ASSERT_U64_EQ(a, b)                                                    \
  do {                                                                         \
    uint64_t mg__a = (uint64_t)(a), mg__b = (uint64_t)(b);                     \
    if (mg__a != mg__b)                                                        \
      MG__FAIL("%s == %s: %" PRIu64 " vs %" PRIu64, #a, #b, mg__a, mg__b);     \
  } while (0)

#define ASSERT_DBL_NEAR(a, b, eps)                                             \
  do {                                                                         \
    double mg__a = (a), mg__b = (b);                                           \
    if (!(fabs(mg__a - mg__b) <= (eps)))                                       \
      MG__FAIL("%s ~= %s: %.17g vs %.17g", #a, #b, mg__a, mg__b);              \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                    \
  do {                                                                         \
    const char *mg__a = (a), *mg__b = (b);                                     \
    if (!mg__a || !mg__b || strcmp(mg__a, mg__b) != 0)                         \
      MG__FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, mg__a ? mg__a : "(null)", \
               mg__b ? mg__b : "(null)");                                      \
  } while (0)

#define ASSERT_CONTAINS(hay, needle)                                           \
  do {                                                                         \
    const char *mg__h = (hay), *mg__n = (needle);                              \
    if (!mg__h || !strstr(mg__h, mg__n))                                       \
      MG__FAIL("%s contains \"%s\": got \"%s\"", #hay, mg__n,                  \
               mg__h ? mg__h : "(null)");                                      \
  } while (0)

#define TEST(name) static void name(void)

static inline void mg__test_run(const char *name, void (*fn)(void)) {
  mg__test_cur_name = name;
  mg__test_cur_failed = 0;
  if (setjmp(mg__test_jmp) == 0)
    fn();
  if (mg__test_cur_failed) {
    mg__test_failed_total++;
    fprintf(stderr, "not ok - %s\n", name);
  } else {
    mg__test_passed_total++;
    fprintf(stderr, "ok - %s\n", name);
  }
}
#define RUN(name) mg__test_run(#name, name)

static inline int mg_test_report(void) {
  fprintf(stderr, "%d passed, %d failed\n", mg__test_passed_total,
          mg__test_failed_total);
  return mg__test_failed_total ? 1 : 0;
}

/* End the executable as skipped (77) with a printed reason. */
#define SKIP(...)                                                              \
  do {                                                                         \
    fprintf(stderr, "SKIP: ");                                                 \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    exit(77);                                                                  \
  } while (0)

/* Skip for want of a writable cgroup hierarchy — a failure when
 * MG_REQUIRE_CGROUP=1 (CI). */
#define SKIP_CGROUP(...)                                                       \
  do {                                                                         \
    const char *mg__req = getenv("MG_REQUIRE_CGROUP");                         \
    if (mg__req && strcmp(mg__req, "1") == 0) {                                \
      fprintf(stderr, "FAIL: MG_REQUIRE_CGROUP=1 but: ");                      \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      exit(1);                                                                 \
    }                                                                          \
    SKIP(__VA_ARGS__);                                                         \
  } while (0)

/* Path of a fixture file: MG_TEST_FIXTURES "/" rel, in a static buffer. */
static inline const char *mg_fixture(const char *rel) {
  static char buf[4][4096];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s/%s", MG_TEST_FIXTURES, rel);
  return buf[i];
}

#endif
