/* test_cgroup_stat.c — mg_cgroup_memstat_read (core layer): the anon,
 * file and shmem parts of a group's charge from memory.stat, against the
 * fixture groups under tests/fixtures/cgroup/memstat/ (v1 with and
 * without the hierarchical total_ counters, v2, malformed files), then
 * this machine's own memory.stat where a memory controller is mounted;
 * mg_cgroup_memsw_read (memory + swap) against tests/fixtures/cgroup/memsw/
 * (v1, v2, kernels without swap accounting, a malformed counter). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mg/mg_cgroup.h"
#include "mg/mg_error.h"
#include "mg_test.h"

static char err[1024];
static char dir[4096];

/* A handle on fixture group `name` (under tests/fixtures/cgroup/) as
 * `v`, err set to "untouched"; NULL when it cannot be opened. */
static mg_cgroup *open_fixture(const char *name, mg_cgroup_version v) {
  snprintf(dir, sizeof dir, "%s/cgroup/%s", MG_TEST_FIXTURES, name);
  mg_cgroup *cg = NULL;
  if (mg_cgroup_open(v, dir, &cg, err, sizeof err) < 0)
    return NULL;
  strcpy(err, "untouched");
  return cg;
}

/* Read the memory.stat of fixture group `name` as `v`; returns the code. */
static int read_fixture(const char *name, mg_cgroup_version v,
                        mg_cgroup_memstat *st) {
  mg_cgroup *cg = open_fixture(name, v);
  if (!cg)
    return -999;
  memset(st, 0xab, sizeof *st); /* prove every field gets written */
  int rc = mg_cgroup_memstat_read(cg, st, err, sizeof err);
  mg_cgroup_free(cg);
  return rc;
}

/* v1 prefers total_rss / total_cache / total_shmem over the group's own
 * counters, and file is the cache without shmem. */
TEST(v1_hierarchical_totals) {
  mg_cgroup_memstat st;
  ASSERT_EQ(read_fixture("memstat/v1", MG_CGROUP_V1, &st), 0);
  ASSERT_STR_EQ(err, "");
  ASSERT_U64_EQ(st.anon_bytes, 11718656);
  ASSERT_U64_EQ(st.shmem_bytes, 9084928);
  ASSERT_U64_EQ(st.file_bytes, UINT64_C(2072576000) - 9084928);
}

/* An old v1 file: no total_ lines and no shmem line. */
TEST(v1_local_counters_without_shmem) {
  mg_cgroup_memstat st;
  ASSERT_EQ(read_fixture("memstat/v1_local", MG_CGROUP_V1, &st), 0);
  ASSERT_U64_EQ(st.anon_bytes, 2097152);
  ASSERT_U64_EQ(st.file_bytes, 4096000);
  ASSERT_U64_EQ(st.shmem_bytes, 0);
}

/* v2: anon, file − shmem, shmem; anon_thp and file_mapped are other
 * keys, not prefixes of ours. */
TEST(v2_anon_file_shmem) {
  mg_cgroup_memstat st;
  ASSERT_EQ(read_fixture("memstat/v2", MG_CGROUP_V2, &st), 0);
  ASSERT_STR_EQ(err, "");
  ASSERT_U64_EQ(st.anon_bytes, 104857600);
  ASSERT_U64_EQ(st.shmem_bytes, 2097152);
  ASSERT_U64_EQ(st.file_bytes, UINT64_C(2075131904) - 2097152);
}

/* Malformed files are MG_EPARSE naming the file and quoting the line;
 * *out is zeroed. */
TEST(malformed_is_eparse_naming_the_file) {
  static const struct {
    const char *name;
    mg_cgroup_version v;
    const char *says;
  } cases[] = {
      {"memstat/v1_malformed", MG_CGROUP_V1,
       "line 4: \"total_rss 11x718656\" (expected \"total_rss <number of "
       "bytes>\")"},
      {"memstat/v2_malformed", MG_CGROUP_V2,
       "line 2: \"file -5\" (expected \"file <number of bytes>\")"},
      {"memstat/v2_no_anon", MG_CGROUP_V2,
       "no \"anon\" line (is this a cgroup v2 memory.stat?)"},
      {"memstat/v1_no_cache", MG_CGROUP_V1,
       "no \"total_cache\" or \"cache\" line (is this a cgroup v1 "
       "memory.stat?)"},
      {"memstat/empty", MG_CGROUP_V1, "no \"total_rss\" or \"rss\" line"},
      {"memstat/empty", MG_CGROUP_V2, "no \"anon\" line"},
      /* a v2 file read as v1 */
      {"memstat/v2", MG_CGROUP_V1, "no \"total_rss\" or \"rss\" line"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mg_cgroup_memstat st;
    ASSERT_EQ(read_fixture(cases[i].name, cases[i].v, &st), MG_EPARSE);
    char want[4200];
    snprintf(want, sizeof want, "malformed %s/memory.stat: ", dir);
    ASSERT_CONTAINS(err, want);
    ASSERT_CONTAINS(err, cases[i].says);
    ASSERT_U64_EQ(st.anon_bytes, 0);
    ASSERT_U64_EQ(st.file_bytes, 0);
    ASSERT_U64_EQ(st.shmem_bytes, 0);
  }
}

/* No memory.stat: the errno, the file named. Bad arguments: -EINVAL. */
TEST(missing_file_and_bad_arguments) {
  mg_cgroup_memstat st;
  ASSERT_EQ(read_fixture("counters/v1_old_kernel", MG_CGROUP_V1, &st), -ENOENT);
  ASSERT_CONTAINS(err, "cannot read ");
  ASSERT_CONTAINS(err, "counters/v1_old_kernel/memory.stat");
  ASSERT_EQ(mg_cgroup_memstat_read(NULL, &st, err, sizeof err), -EINVAL);
  ASSERT_EQ(mg_cgroup_memstat_read(NULL, NULL, NULL, 0), -EINVAL);
}

/* The kernel's own format: the memory.stat of the group this test runs
 * in parses (nothing to compare it with; it must not be MG_EPARSE). */
TEST(this_machine_parses) {
  mg_cgroup_info info;
  if (mg_cgroup_detect(NULL, &info, err, sizeof err) < 0 ||
      info.version == MG_CGROUP_NONE) {
    fprintf(stderr, "  (no memory controller here: not checked)\n");
    return;
  }
  mg_cgroup *cg = NULL;
  ASSERT_EQ(mg_cgroup_open(info.version, info.dir, &cg, err, sizeof err), 0);
  mg_cgroup_memstat st;
  int rc = mg_cgroup_memstat_read(cg, &st, err, sizeof err);
  mg_cgroup_free(cg);
  if (rc == -ENOENT || rc == -EACCES) /* v2 root group: no memory.stat */
    return;
  if (rc != 0)
    fprintf(stderr, "  %s\n", err);
  ASSERT_EQ(rc, 0);
  ASSERT_GT(st.anon_bytes + st.file_bytes + st.shmem_bytes, 0);
}

static int read_memsw(const char *name, mg_cgroup_version v, uint64_t *b) {
  char rel[128];
  snprintf(rel, sizeof rel, "memsw/%s", name);
  mg_cgroup *cg = open_fixture(rel, v);
  if (!cg)
    return -999;
  *b = 77;
  int rc = mg_cgroup_memsw_read(cg, b, err, sizeof err);
  mg_cgroup_free(cg);
  return rc;
}

/* v1: memory.memsw.usage_in_bytes as it is; v2: memory.current plus
 * memory.swap.current. */
TEST(memsw_v1_and_v2) {
  uint64_t b;
  ASSERT_EQ(read_memsw("v1", MG_CGROUP_V1, &b), 0);
  ASSERT_STR_EQ(err, "");
  ASSERT_U64_EQ(b, 52428800);
  ASSERT_EQ(read_memsw("v2", MG_CGROUP_V2, &b), 0);
  ASSERT_U64_EQ(b, UINT64_C(41943040) + 8388608);
}

/* No swap accounting: MG_ENOTSUP naming the missing file and what to
 * do; a counter that is no number: MG_EPARSE naming the file. */
TEST(memsw_without_swap_accounting_and_malformed) {
  uint64_t b;
  ASSERT_EQ(read_memsw("v1_noswap", MG_CGROUP_V1, &b), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "does not account swap");
  ASSERT_CONTAINS(err, "no memory.memsw.usage_in_bytes");
  ASSERT_CONTAINS(err, "swapaccount=1");
  ASSERT_U64_EQ(b, 0);
  ASSERT_EQ(read_memsw("v2_noswap", MG_CGROUP_V2, &b), MG_ENOTSUP);
  ASSERT_CONTAINS(err, "no memory.swap.current");
  ASSERT_EQ(read_memsw("v1_bad", MG_CGROUP_V1, &b), MG_EPARSE);
  ASSERT_CONTAINS(err, "memsw/v1_bad/memory.memsw.usage_in_bytes");
  ASSERT_EQ(mg_cgroup_memsw_read(NULL, &b, err, sizeof err), -EINVAL);
  ASSERT_EQ(mg_cgroup_memsw_read(NULL, NULL, NULL, 0), -EINVAL);
}

int main(void) {
  RUN(v1_hierarchical_totals);
  RUN(v1_local_counters_without_shmem);
  RUN(v2_anon_file_shmem);
  RUN(malformed_is_eparse_naming_the_file);
  RUN(missing_file_and_bad_arguments);
  RUN(this_machine_parses);
  RUN(memsw_v1_and_v2);
  RUN(memsw_without_swap_accounting_and_malformed);
  return mg_test_report();
}
