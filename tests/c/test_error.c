/* test_error.c — error codes, names and messages. */
#include <errno.h>

#include "mg/mg_error.h"
#include "mg_test.h"

TEST(own_codes) {
  ASSERT_STR_EQ(mg_strerror(MG_EPARSE), "malformed input");
  ASSERT_STR_EQ(mg_err_name(MG_EPARSE), "EPARSE");
  ASSERT_STR_EQ(mg_err_name(MG_ECORRUPT), "ECORRUPT");
  ASSERT_STR_EQ(mg_strerror(0), "success");
  ASSERT_STR_EQ(mg_err_name(0), "OK");
}

TEST(errno_codes) {
  ASSERT_STR_EQ(mg_err_name(-ENOENT), "ENOENT");
  ASSERT_STR_EQ(mg_strerror(-ENOENT), "No such file or directory");
  ASSERT_STR_EQ(mg_strerror(12345), "unknown error");
  ASSERT_STR_EQ(mg_err_name(-99999), "EUNKNOWN");
}

TEST(errf) {
  char buf[16];
  ASSERT_EQ(mg_errf(buf, sizeof buf, -EINVAL, "value %d is bad and long", 42),
            -EINVAL);
  ASSERT_STR_EQ(buf, "value 42 is bad"); /* truncated, NUL-terminated */
  ASSERT_EQ(mg_errf(NULL, 0, MG_EPARSE, "ignored"), MG_EPARSE);
}

int main(void) {
  RUN(own_codes);
  RUN(errno_codes);
  RUN(errf);
  return mg_test_report();
}
