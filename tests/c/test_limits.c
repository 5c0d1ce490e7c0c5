/* test_limits.c — mg_validate_limit / mg_validate_total: seed 1's cases and
 * its bugs shown fixed. */
#include "mg/mg_limits.h"
#include "mg_test.h"

#define GIB(x) ((double)(x)*1073741824.0)
#define GIB_U(x) ((uint64_t)(x) << 30)

TEST(seed_valid_limit) {
  mg_validation v;
  ASSERT_EQ(mg_validate_limit(GIB(2), GIB_U(13), &v), 0);
  ASSERT_EQ(v.ok, 1);
  ASSERT_STR_EQ(v.message, "");
  ASSERT_STR_EQ(v.warning, "");
}

TEST(seed_limit_exceeds) {
  mg_validation v;
  mg_validate_limit(GIB(20), GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message,
                "Requested limit 20.00 GiB exceeds total system memory "
                "13.00 GiB");
  ASSERT_STR_EQ(v.warning, "");
}

TEST(limit_exactly_total_is_valid_with_warning) {
  mg_validation v;
  mg_validate_limit(GIB(13), GIB_U(13), &v);
  ASSERT_EQ(v.ok, 1);
  ASSERT_CONTAINS(v.warning, "100.0%");
  /* One byte more: both print as 13.00 GiB, so the bytes are added. */
  mg_validate_limit(GIB(13) + 1, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message,
                "Requested limit 13.00 GiB exceeds total system memory "
                "13.00 GiB (13958643713 bytes > 13958643712 bytes)");
}

TEST(above_90_percent_warns) {
  mg_validation v;
  mg_validate_limit(GIB(12), GIB_U(13), &v);
  ASSERT_EQ(v.ok, 1);
  ASSERT_STR_EQ(v.message, "");
  ASSERT_STR_EQ(v.warning,
                "Requested limit 12.00 GiB is 92.3% of total system memory "
                "13.00 GiB (above 90%); leave room for the system");
  /* 90 % exactly does not warn; just above does. */
  mg_validate_limit(900, 1000, &v);
  ASSERT_EQ(v.ok, 1);
  ASSERT_STR_EQ(v.warning, "");
  mg_validate_limit(901, 1000, &v);
  ASSERT_EQ(v.ok, 1);
  ASSERT_CONTAINS(v.warning, "90.1%");
}

TEST(seed_bug_nan_and_inf_rejected) {
  mg_validation v;
  mg_validate_limit(NAN, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Memory limit must be a finite number, got nan");
  mg_validate_limit(INFINITY, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Memory limit must be a finite number, got inf");
  mg_validate_limit(-INFINITY, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Memory limit must be a finite number, got -inf");
}

TEST(not_positive) {
  mg_validation v;
  mg_validate_limit(-5, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Memory limit must be positive, got -5 B");
  mg_validate_limit(0, GIB_U(13), &v);
  ASSERT_STR_EQ(v.message, "Memory limit must be positive, got 0 B");
  mg_validate_limit(-0.0, GIB_U(13), &v);
  ASSERT_STR_EQ(v.message, "Memory limit must be positive, got 0 B");
  mg_validate_limit(-GIB(2), GIB_U(13), &v);
  ASSERT_STR_EQ(v.message, "Memory limit must be positive, got -2.00 GiB");
  mg_validate_limit(0.5, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Memory limit must be at least 1 byte, got 0.5 B");
}

TEST(unknown_total_memory) {
  mg_validation v;
  mg_validate_limit(GIB(2), 0, &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_CONTAINS(v.message, "total system memory is unknown");
  /* An invalid value is still reported as such first. */
  mg_validate_limit(NAN, 0, &v);
  ASSERT_CONTAINS(v.message, "finite number");
}

TEST(huge_values) {
  mg_validation v;
  mg_validate_limit(1e30, GIB_U(13), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Requested limit 1e+30 B exceeds total system "
                           "memory 13.00 GiB");
  mg_validate_limit(9223372036854775808.0, UINT64_MAX, &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT(mg_validate_limit(1, 1, NULL) == 0); /* NULL out: no crash */
}

TEST(total_empty) {
  mg_validation v;
  mg_validate_total(NULL, 0, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "No allocations given");
  mg_limit_item one[] = {{"a", GIB(1)}};
  mg_validate_total(one, 0, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "No allocations given");
}

TEST(seed_matrix_too_big) {
  mg_limit_item items[] = {
      {"subject", GIB(2)}, {"observer", GIB(6)}, {"god", GIB(9)}};
  mg_validation v;
  ASSERT_EQ(mg_validate_total(items, 3, GIB_U(8), &v), 0);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message,
                "Total allocation 17.00 GiB exceeds total system memory "
                "8.00 GiB: subject 2.00 GiB, observer 6.00 GiB, god 9.00 GiB "
                "(god alone exceeds it)");
}

TEST(seed_matrix_fits) {
  mg_limit_item items[] = {
      {"subject", GIB(2)}, {"observer", GIB(6)}, {"god", GIB(9)}};
  mg_validation v;
  mg_validate_total(items, 3, GIB_U(32), &v);
  ASSERT_EQ(v.ok, 1);
  ASSERT_STR_EQ(v.message, "");
  ASSERT_STR_EQ(v.warning, "");
}

TEST(total_above_95_warns) {
  mg_limit_item items[] = {{"a", GIB(5)}, {"b", GIB(5)}, {"c", GIB(5.5)}};
  mg_validation v;
  mg_validate_total(items, 3, GIB_U(16), &v); /* 15.5 of 16 = 96.9 % */
  ASSERT_EQ(v.ok, 1);
  ASSERT_STR_EQ(v.warning, "Total allocation 15.50 GiB is 96.9% of total "
                           "system memory 16.00 GiB (above 95%); leave room "
                           "for the system");
  /* 93.75 %: no total warning. */
  mg_limit_item ok[] = {{"a", GIB(5)}, {"b", GIB(10)}};
  mg_validate_total(ok, 2, GIB_U(16), &v);
  ASSERT_EQ(v.ok, 1);
  ASSERT_STR_EQ(v.warning, "");
}

TEST(total_item_above_90_warns) {
  mg_limit_item items[] = {{"big", GIB(14.8)}};
  mg_validation v;
  mg_validate_total(items, 1, GIB_U(16), &v); /* 92.5 % */
  ASSERT_EQ(v.ok, 1);
  ASSERT_CONTAINS(v.warning, "big: Requested limit 14.80 GiB is 92.5%");
  ASSERT(strstr(v.warning, "Total allocation") == NULL);
}

TEST(seed_bug_every_item_checked) {
  /* The sum fits (the seed summed -5 into it and said yes). */
  mg_limit_item items[] = {
      {"subject", GIB(2)}, {"observer", -5}, {"god", GIB(1)}};
  mg_validation v;
  mg_validate_total(items, 3, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "observer: Memory limit must be positive, got -5 B");
  /* NaN item: the seed's sum became NaN and NaN > total is false. */
  mg_limit_item nan_items[] = {{"subject", GIB(2)}, {"god", NAN}};
  mg_validate_total(nan_items, 2, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message,
                "god: Memory limit must be a finite number, got nan");
  /* Every bad item is listed, unnamed ones as "instance N". */
  mg_limit_item many[] = {{NULL, 0}, {"x", GIB(1)}, {NULL, INFINITY}};
  mg_validate_total(many, 3, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message,
                "instance 1: Memory limit must be positive, got 0 B; "
                "instance 3: Memory limit must be a finite number, got inf");
}

TEST(unnamed_items) {
  mg_limit_item items[] = {{NULL, GIB(5)}, {"", GIB(5)}};
  mg_validation v;
  mg_validate_total(items, 2, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_STR_EQ(v.message, "Total allocation 10.00 GiB exceeds total system "
                           "memory 8.00 GiB: instance 1 5.00 GiB, instance 2 "
                           "5.00 GiB");
}

TEST(total_no_overflow) {
  /* Two items near 2^63: the sum must not wrap and look small. */
  mg_limit_item items[] = {{"a", 9.0e18}, {"b", 9.0e18}};
  mg_validation v;
  mg_validate_total(items, 2, UINT64_MAX, &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_CONTAINS(v.message, "Total allocation 1.8e+19 B exceeds");
  mg_validate_total(items, 2, 0, &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_CONTAINS(v.message, "unknown");
}

TEST(long_message_is_cut_visibly) {
  mg_limit_item items[200];
  char names[200][24];
  for (int i = 0; i < 200; i++) {
    snprintf(names[i], sizeof names[i], "worker-%03d", i);
    items[i].name = names[i];
    items[i].bytes = GIB(1);
  }
  mg_validation v;
  mg_validate_total(items, 200, GIB_U(8), &v);
  ASSERT_EQ(v.ok, 0);
  ASSERT_EQ(strlen(v.message), sizeof v.message - 1);
  ASSERT(strcmp(v.message + sizeof v.message - 4, "...") == 0);
  ASSERT_CONTAINS(v.message, "Total allocation 200.00 GiB exceeds total "
                             "system memory 8.00 GiB: worker-000 1.00 GiB");
}

int main(void) {
  RUN(seed_valid_limit);
  RUN(seed_limit_exceeds);
  RUN(limit_exactly_total_is_valid_with_warning);
  RUN(above_90_percent_warns);
  RUN(seed_bug_nan_and_inf_rejected);
  RUN(not_positive);
  RUN(unknown_total_memory);
  RUN(huge_values);
  RUN(total_empty);
  RUN(seed_matrix_too_big);
  RUN(seed_matrix_fits);
  RUN(total_above_95_warns);
  RUN(total_item_above_90_warns);
  RUN(seed_bug_every_item_checked);
  RUN(unnamed_items);
  RUN(total_no_overflow);
  RUN(long_message_is_cut_visibly);
  return mg_test_report();
}
