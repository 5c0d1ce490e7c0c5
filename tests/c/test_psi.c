/* test_psi.c — /proc/pressure/memory parsing. Fixtures are /proc roots
 * under tests/fixtures/psi/<case>/ holding pressure/memory (or not). */
#include "mg/mg_error.h"
#include "mg/mg_psi.h"
#include "mg_test.h"

TEST(normal) {
  mg_psi p;
  char err[512] = "";
  ASSERT_EQ(mg_psi_read(mg_fixture("psi/normal"), &p, err, sizeof err), 0);
  ASSERT_DBL_NEAR(p.some.avg10, 1.51, 1e-9);
  ASSERT_DBL_NEAR(p.some.avg60, 0.69, 1e-9);
  ASSERT_DBL_NEAR(p.some.avg300, 0.72, 1e-9);
  ASSERT_U64_EQ(p.some.total_us, 7325747);
  ASSERT_EQ(p.has_full, 1);
  ASSERT_DBL_NEAR(p.full.avg10, 0.25, 1e-9);
  ASSERT_DBL_NEAR(p.full.avg60, 0.10, 1e-9);
  ASSERT_DBL_NEAR(p.full.avg300, 0.05, 1e-9);
  ASSERT_U64_EQ(p.full.total_us, 123456);
}

TEST(some_only) {
  mg_psi p;
  char err[512] = "";
  ASSERT_EQ(mg_psi_read(mg_fixture("psi/some_only"), &p, err, sizeof err), 0);
  ASSERT_DBL_NEAR(p.some.avg10, 12.5, 1e-9);
  ASSERT_DBL_NEAR(p.some.avg60, 3.0, 1e-9);
  ASSERT_DBL_NEAR(p.some.avg300, 0.99, 1e-9);
  ASSERT_U64_EQ(p.some.total_us, 42);
  ASSERT_EQ(p.has_full, 0);
  ASSERT_U64_EQ(p.full.total_us, 0);
}

TEST(malformed) {
  mg_psi p;
  char err[512] = "";
  ASSERT_EQ(mg_psi_read(mg_fixture("psi/malformed"), &p, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "line 1");
  ASSERT_CONTAINS(err, "avg60=oops");
  ASSERT_CONTAINS(err, "psi/malformed/pressure/memory");
  static const char *const bad[] = {
      "some avg10=1.00 avg60=1.00 avg300=1.00\n",          /* no total */
      "some avg10=1.00 avg60=1.00 avg300=1.00 total=-1\n", /* negative */
      "some avg10=1. avg60=1.00 avg300=1.00 total=1\n",    /* "1." */
      "some avg10=1,5 avg60=1.00 avg300=1.00 total=1\n",   /* comma */
      "some avg10 avg60=1.00 avg300=1.00 total=1\n",       /* no '=' */
      "some avg10=1.00 avg60=1.00 avg300=1.00 total=99999999999999999999\n",
      "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=x\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = mg_psi_parse(bad[i], &p, err, sizeof err);
    if (rc != MG_EPARSE)
      MG__FAIL("case %zu: rc %d", i, rc);
  }
  ASSERT_CONTAINS(err, "line 2"); /* the last case: the full line */
}

TEST(no_some_line) {
  mg_psi p;
  char err[512] = "";
  ASSERT_EQ(mg_psi_read(mg_fixture("psi/no_some"), &p, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "no \"some\" line");
  ASSERT_EQ(mg_psi_parse("", &p, err, sizeof err), MG_EPARSE);
  ASSERT_EQ(mg_psi_parse(NULL, &p, err, sizeof err), MG_EPARSE);
}

TEST(tolerant) {
  /* Key order, extra keys and unknown lines do not matter. */
  mg_psi p;
  char err[512] = "";
  ASSERT_EQ(mg_psi_parse("some total=5 avg300=3.5 avg60=2 avg10=1.25 "
                         "future=7\nmystery line\n",
                         &p, err, sizeof err),
            0);
  ASSERT_DBL_NEAR(p.some.avg10, 1.25, 1e-12);
  ASSERT_DBL_NEAR(p.some.avg60, 2.0, 1e-12);
  ASSERT_DBL_NEAR(p.some.avg300, 3.5, 1e-12);
  ASSERT_U64_EQ(p.some.total_us, 5);
  ASSERT_EQ(p.has_full, 0);
  ASSERT_EQ(mg_psi_parse("some avg10=100.00 avg60=0.00 avg300=0.00 "
                         "total=18446744073709551615",
                         &p, err, sizeof err),
            0);
  ASSERT_DBL_NEAR(p.some.avg10, 100.0, 1e-12);
  ASSERT_U64_EQ(p.some.total_us, UINT64_MAX);
}

TEST(missing_file) {
  mg_psi p;
  char err[512] = "";
  ASSERT_EQ(mg_psi_read(mg_fixture("psi/missing"), &p, err, sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "PSI not available: ");
  ASSERT_CONTAINS(err, "psi/missing/pressure/memory is missing (kernel "
                       "without CONFIG_PSI or booted with psi=0)");
}

TEST(real) {
  mg_psi p;
  char err[512] = "";
  int rc = mg_psi_read(NULL, &p, err, sizeof err);
  if (rc == MG_ENOTSUP) {
    ASSERT_CONTAINS(err, "PSI not available");
    SKIP("%s", err);
  }
  ASSERT_EQ(rc, 0);
  ASSERT(p.some.avg10 >= 0 && p.some.avg10 <= 100);
  ASSERT(p.some.avg300 >= 0 && p.some.avg300 <= 100);
  ASSERT_EQ(p.has_full, 1); /* memory has "full" since 4.20 */
  ASSERT(p.full.total_us <= p.some.total_us);
}

/* Decimals are the nearest doubles (JSON shows 0.75, not 0.75000000000000011).
 */
TEST(exact_decimals) {
  mg_psi p;
  char err[256];
  ASSERT_EQ(mg_psi_parse("some avg10=0.75 avg60=12.34 avg300=99.99 total=5\n",
                         &p, err, sizeof err),
            0);
  ASSERT(p.some.avg10 == 0.75);
  ASSERT(p.some.avg60 == 12.34);
  ASSERT(p.some.avg300 == 99.99);
}

int main(void) {
  RUN(exact_decimals);
  RUN(normal);
  RUN(some_only);
  RUN(malformed);
  RUN(no_some_line);
  RUN(tolerant);
  RUN(missing_file);
  RUN(real);
  return mg_test_report();
}
