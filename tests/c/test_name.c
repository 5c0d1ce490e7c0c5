/* test_name.c — the name rule (mg_name) and the signal table (mg_signal). */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "mg/mg_name.h"
#include "mg/mg_signal.h"
#include "mg_test.h"

TEST(name_accepts) {
  static const char *const ok[] = {"a",   "subject", "ctx-1", "a.b_c",
                                   "...", "0",       NULL};
  for (int i = 0; ok[i]; i++)
    ASSERT_EQ(mg_name_check("name", ok[i], strlen(ok[i]), NULL, 0), 0);
  char max[MG_NAME_MAX];
  memset(max, 'n', sizeof max);
  ASSERT_EQ(mg_name_check("name", max, sizeof max, NULL, 0), 0);
}

TEST(name_refuses) {
  static const struct {
    const char *name;
    size_t len;
    const char *why;
  } bad[] = {{"", 0, "required"},
             {".", 1, "are not names"},
             {"..", 2, "are not names"},
             {"a/b", 3, "'/'"},
             {"a b", 3, "outside the alphabet"},
             {"caf\xc3\xa9", 5, "outside the alphabet"},
             {"a\0b", 3, "NUL byte"},
             {NULL, 0, "required"}};
  char err[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    ASSERT_EQ(
        mg_name_check("store name", bad[i].name, bad[i].len, err, sizeof err),
        -EINVAL);
    ASSERT(strstr(err, "store name: ") == err);
    ASSERT(strstr(err, bad[i].why) != NULL);
    ASSERT(strstr(err, "A-Z a-z 0-9") != NULL); /* says what is accepted */
  }
  char longer[MG_NAME_MAX + 1];
  memset(longer, 'n', sizeof longer);
  ASSERT_EQ(mg_name_check(NULL, longer, sizeof longer, err, sizeof err),
            -EINVAL);
  ASSERT(strstr(err, "longer than 64") != NULL);
  ASSERT(strstr(err, "name: ") == err); /* the default `what` */
}

TEST(name_from) {
  char out[MG_NAME_MAX + 1];
  ASSERT_STR_EQ(mg_name_from("/usr/bin/python3", "child", out, sizeof out),
                "python3");
  ASSERT_STR_EQ(mg_name_from("./my tool!", "child", out, sizeof out),
                "my_tool_");
  ASSERT_STR_EQ(mg_name_from("/usr/bin/", "child", out, sizeof out), "child");
  ASSERT_STR_EQ(mg_name_from("..", "cmd", out, sizeof out), "cmd");
  ASSERT_STR_EQ(mg_name_from(NULL, "cmd", out, sizeof out), "cmd");
  char big[200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mg_name_from(big, "child", out, sizeof out);
  ASSERT_EQ(strlen(out), MG_NAME_MAX);
  ASSERT_EQ(mg_name_check("name", out, strlen(out), NULL, 0), 0);
  char small[4];
  ASSERT_STR_EQ(mg_name_from("abcdef", "child", small, sizeof small), "abc");
}

TEST(signals) {
  int s = 0;
  ASSERT_STR_EQ(mg_signal_name(SIGTERM), "TERM");
  ASSERT_STR_EQ(mg_signal_name(SIGKILL), "KILL");
  ASSERT(mg_signal_name(0) == NULL);
  ASSERT(mg_signal_name(SIGRTMIN + 1) == NULL);
  ASSERT_EQ(mg_signal_parse("TERM", &s, NULL, 0), 0);
  ASSERT_EQ(s, SIGTERM);
  ASSERT_EQ(mg_signal_parse("SIGUSR1", &s, NULL, 0), 0);
  ASSERT_EQ(s, SIGUSR1);
  ASSERT_EQ(mg_signal_parse("9", &s, NULL, 0), 0);
  ASSERT_EQ(s, 9);
  ASSERT_EQ(mg_signal_parse("64", &s, NULL, 0), 0);
  char err[512];
  static const char *const bad[] = {"",   "term", "SIG",         "0",
                                    "65", "9x",   "99999999999", "NOPE"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(mg_signal_parse(bad[i], &s, err, sizeof err), -EINVAL);
    ASSERT(strstr(err, "unknown signal") != NULL);
    ASSERT(strstr(err, "accepted: TERM, KILL") != NULL);
  }
  ASSERT_EQ(mg_signal_parse(NULL, &s, err, sizeof err), -EINVAL);
  /* every named signal parses back to itself */
  for (int n = 1; n < 65; n++) {
    const char *name = mg_signal_name(n);
    if (!name)
      continue;
    ASSERT_EQ(mg_signal_parse(name, &s, NULL, 0), 0);
    ASSERT_EQ(s, n);
  }
}

int main(void) {
  RUN(name_accepts);
  RUN(name_refuses);
  RUN(name_from);
  RUN(signals);
  return mg_test_report();
}
