/* test_meminfo.c — /proc/meminfo parsing, from fixtures and from the real
 * file. Fixtures: tests/fixtures/meminfo/<case>/meminfo, each directory a
 * /proc root for mg_meminfo_read. */
#include "mg/mg_error.h"
#include "mg/mg_meminfo.h"
#include "mg_test.h"

#include <errno.h>
#include <unistd.h>

/* The internal file helpers (readers, line walker) behind every reader
 * here. */
#include "core/mg__fileio.h"

TEST(real_fixture) {
  /* Captured from the development machine (Linux 6.18). */
  mg_meminfo m;
  char err[512] = "";
  ASSERT_EQ(mg_meminfo_read(mg_fixture("meminfo/real"), &m, err, sizeof err),
            0);
  ASSERT_U64_EQ(m.total_bytes, UINT64_C(24683620) * 1024);
  ASSERT(m.free_bytes > 0 && m.free_bytes <= m.total_bytes);
  ASSERT(m.available_bytes > 0 && m.available_bytes <= m.total_bytes);
  ASSERT_EQ(m.available_estimated, 0);
  ASSERT_EQ(m.total_bytes % 1024, 0);
}

TEST(without_mem_available) {
  /* A pre-3.14 kernel: available = free + buffers + (cached - shmem) +
   * sreclaimable = 101000 + 20000 + 250000 + 40000 kB. */
  mg_meminfo m;
  char err[512] = "";
  ASSERT_EQ(
      mg_meminfo_read(mg_fixture("meminfo/no_available"), &m, err, sizeof err),
      0);
  ASSERT_U64_EQ(m.total_bytes, UINT64_C(1016332) * 1024);
  ASSERT_U64_EQ(m.free_bytes, UINT64_C(101000) * 1024);
  ASSERT_U64_EQ(m.buffers_bytes, UINT64_C(20000) * 1024);
  ASSERT_U64_EQ(m.cached_bytes, UINT64_C(300000) * 1024);
  ASSERT_U64_EQ(m.shmem_bytes, UINT64_C(50000) * 1024);
  ASSERT_U64_EQ(m.sreclaimable_bytes, UINT64_C(40000) * 1024);
  ASSERT_U64_EQ(m.swap_total_bytes, UINT64_C(2097148) * 1024);
  ASSERT_U64_EQ(m.swap_free_bytes, UINT64_C(2097148) * 1024);
  ASSERT_EQ(m.available_estimated, 1);
  ASSERT_U64_EQ(m.available_bytes, UINT64_C(411000) * 1024);
}

TEST(estimate_is_capped_at_total) {
  mg_meminfo m;
  ASSERT_EQ(mg_meminfo_parse("MemTotal: 100 kB\nMemFree: 90 kB\n"
                             "Cached: 80 kB\nShmem: 100 kB\n",
                             &m, NULL, 0),
            0);
  ASSERT_U64_EQ(m.available_bytes, UINT64_C(90) * 1024); /* shmem > cached */
  ASSERT_EQ(mg_meminfo_parse("MemTotal: 100 kB\nMemFree: 90 kB\n"
                             "Buffers: 50 kB\n",
                             &m, NULL, 0),
            0);
  ASSERT_U64_EQ(m.available_bytes, UINT64_C(100) * 1024);
}

TEST(missing_total) {
  mg_meminfo m;
  char err[512] = "";
  int rc = mg_meminfo_read(mg_fixture("meminfo/no_total"), &m, err, sizeof err);
  ASSERT_EQ(rc, MG_EPARSE);
  ASSERT_CONTAINS(err, "MemTotal");
  ASSERT_CONTAINS(err, "missing");
  ASSERT_CONTAINS(err, "meminfo/no_total/meminfo"); /* the path */
  ASSERT_U64_EQ(m.total_bytes, 0);
}

TEST(missing_free) {
  char err[512] = "";
  mg_meminfo m;
  ASSERT_EQ(mg_meminfo_parse("MemTotal: 100 kB\n", &m, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "MemFree");
}

TEST(malformed_line) {
  mg_meminfo m;
  char err[512] = "";
  int rc =
      mg_meminfo_read(mg_fixture("meminfo/malformed"), &m, err, sizeof err);
  ASSERT_EQ(rc, MG_EPARSE);
  ASSERT_CONTAINS(err, "line 2");
  ASSERT_CONTAINS(err, "MemFree:         lots kB");
  /* Other malformed shapes of a field we use. */
  static const char *const bad[] = {
      "MemTotal: 100\nMemFree: 1 kB\n",                 /* no unit */
      "MemTotal: 100 MB\nMemFree: 1 kB\n",              /* wrong unit */
      "MemTotal: 100 kB x\nMemFree: 1 kB\n",            /* trailing garbage */
      "MemTotal: -100 kB\nMemFree: 1 kB\n",             /* negative */
      "MemTotal:\nMemFree: 1 kB\n",                     /* no value */
      "MemTotal: 1e3 kB\nMemFree: 1 kB\n",              /* exponent */
      "MemTotal: 9007199254740992 kB\nMemFree: 1 kB\n", /* 2^63 bytes */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    rc = mg_meminfo_parse(bad[i], &m, err, sizeof err);
    if (rc != MG_EPARSE)
      MG__FAIL("case %zu: rc %d for \"%s\"", i, rc, bad[i]);
    ASSERT_CONTAINS(err, "line 1");
    ASSERT_CONTAINS(err, "MemTotal");
  }
  /* The largest value that fits: (2^63 - 1) / 1024 kB. */
  ASSERT_EQ(mg_meminfo_parse("MemTotal: 9007199254740991 kB\nMemFree: 1 kB\n",
                             &m, err, sizeof err),
            0);
  ASSERT_U64_EQ(m.total_bytes, UINT64_C(9007199254740991) * 1024);
}

TEST(unused_lines_are_skipped) {
  mg_meminfo m;
  char err[512] = "";
  ASSERT_EQ(
      mg_meminfo_read(mg_fixture("meminfo/no_unit_lines"), &m, err, sizeof err),
      0);
  ASSERT_U64_EQ(m.total_bytes, 2048 * 1024);
  ASSERT_U64_EQ(m.free_bytes, 1024 * 1024);
  ASSERT_U64_EQ(m.available_bytes, 1536 * 1024);
  ASSERT_EQ(m.available_estimated, 0);
  /* No trailing newline, CRLF, tabs. */
  ASSERT_EQ(mg_meminfo_parse("MemTotal:\t4 kB\r\nMemFree:\t2 kB", &m, err,
                             sizeof err),
            0);
  ASSERT_U64_EQ(m.total_bytes, 4096);
  ASSERT_U64_EQ(m.free_bytes, 2048);
}

TEST(empty_file) {
  mg_meminfo m;
  char err[512] = "";
  ASSERT_EQ(mg_meminfo_read(mg_fixture("meminfo/empty"), &m, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "empty");
  ASSERT_EQ(mg_meminfo_parse("\n\n", &m, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "empty");
  ASSERT_EQ(mg_meminfo_parse(NULL, &m, err, sizeof err), MG_EPARSE);
}

TEST(missing_file) {
  mg_meminfo m;
  char err[512] = "";
  const char *root = mg_fixture("meminfo/does-not-exist");
  ASSERT_EQ(mg_meminfo_read(root, &m, err, sizeof err), -ENOENT);
  ASSERT_CONTAINS(err, "meminfo/does-not-exist/meminfo");
  ASSERT_CONTAINS(err, "No such file");
}

TEST(real_proc_meminfo) {
  mg_meminfo m;
  char err[512] = "";
  int rc = mg_meminfo_read(NULL, &m, err, sizeof err);
  if (rc == -ENOENT)
    SKIP("no /proc/meminfo here: %s", err);
  ASSERT_EQ(rc, 0);
  ASSERT(m.total_bytes > 0);
  ASSERT(m.free_bytes <= m.total_bytes);
  ASSERT(m.available_bytes <= m.total_bytes);
  /* Same through an explicit root, with a trailing slash. */
  mg_meminfo m2;
  ASSERT_EQ(mg_meminfo_read("/proc/", &m2, err, sizeof err), 0);
  ASSERT_U64_EQ(m2.total_bytes, m.total_bytes);
}

TEST(fileio_read_file) {
  const char *path = mg_fixture("meminfo/no_unit_lines/meminfo");
  char buf[4096];
  size_t len = 0;
  ASSERT_EQ(mg__read_file(path, buf, sizeof buf, &len), 0);
  ASSERT_EQ(len, strlen(buf));
  ASSERT_EQ(strncmp(buf, "MemTotal:        2048 kB\n", 25), 0);
  size_t full = len;
  /* Exactly fits (len + NUL), then one byte short. */
  char *exact = malloc(full + 1);
  ASSERT(exact != NULL);
  ASSERT_EQ(mg__read_file(path, exact, full + 1, &len), 0);
  ASSERT_EQ(len, full);
  ASSERT_EQ(mg__read_file(path, exact, full, &len), -EFBIG);
  ASSERT_EQ(len, full - 1);
  ASSERT_EQ(strlen(exact), full - 1);
  free(exact);
  ASSERT_EQ(mg__read_file(mg_fixture("meminfo/nope"), buf, sizeof buf, &len),
            -ENOENT);
  ASSERT_EQ(len, 0);
  ASSERT_STR_EQ(buf, "");
  ASSERT_EQ(mg__read_file(path, buf, 0, NULL), -EINVAL);
  /* An empty file. */
  ASSERT_EQ(
      mg__read_file(mg_fixture("meminfo/empty/meminfo"), buf, sizeof buf, &len),
      0);
  ASSERT_EQ(len, 0);
}

TEST(fileio_read_file_alloc) {
  /* A file larger than the first 4 KiB buffer: it must grow. */
  char path[] = "/tmp/mg_test_fileio_XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  ASSERT(f != NULL);
  for (int i = 0; i < 1000; i++)
    fprintf(f, "line %04d\n", i); /* 10 bytes each */
  fclose(f);
  char *text = NULL;
  size_t len = 0;
  int rc = mg__read_file_alloc(path, 1 << 20, &text, &len);
  if (rc != 0)
    unlink(path);
  ASSERT_EQ(rc, 0);
  ASSERT(text != NULL);
  ASSERT_EQ(len, 10000);
  ASSERT_EQ(len, strlen(text));
  ASSERT_EQ(strncmp(text + 9990, "line 0999\n", 10), 0);
  free(text);
  char *t2 = NULL;
  ASSERT_EQ(mg__read_file_alloc(path, len, &t2, NULL), 0); /* exact max */
  free(t2);
  ASSERT_EQ(mg__read_file_alloc(path, len - 1, &t2, NULL), -EFBIG);
  ASSERT(t2 == NULL);
  ASSERT_EQ(mg__read_file_alloc(path, 100, &t2, NULL), -EFBIG);
  ASSERT(t2 == NULL);
  unlink(path);
  ASSERT_EQ(mg__read_file_alloc(mg_fixture("meminfo/nope"), 100, &t2, NULL),
            -ENOENT);
  ASSERT(t2 == NULL);
  ASSERT_EQ(
      mg__read_file_alloc(mg_fixture("meminfo/empty/meminfo"), 100, &t2, &len),
      0);
  ASSERT_STR_EQ(t2, "");
  ASSERT_EQ(len, 0);
  free(t2);
}

TEST(fileio_path_join) {
  char out[64];
  ASSERT_EQ(mg__path_join(out, sizeof out, NULL, "/proc", "meminfo"), 0);
  ASSERT_STR_EQ(out, "/proc/meminfo");
  ASSERT_EQ(mg__path_join(out, sizeof out, "", "/proc", "meminfo"), 0);
  ASSERT_STR_EQ(out, "/proc/meminfo");
  ASSERT_EQ(mg__path_join(out, sizeof out, "/tmp/root//", "/proc", "/a/b"), 0);
  ASSERT_STR_EQ(out, "/tmp/root/a/b");
  ASSERT_EQ(mg__path_join(out, sizeof out, "/", "/proc", "x"), 0);
  ASSERT_STR_EQ(out, "/x");
  ASSERT_EQ(mg__path_join(out, 8, "/proc", NULL, "meminfo"), -ENAMETOOLONG);
}

TEST(fileio_lines) {
  /* Empty lines count; a final '\n' does not make an empty last line. */
  mg__lines it = mg__lines_start("a: 1\n\nbb\n");
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(it.lineno, 1);
  ASSERT_EQ(it.eol - it.line, 4);
  ASSERT_EQ(strncmp(it.line, "a: 1", 4), 0);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(it.lineno, 2);
  ASSERT(it.eol == it.line);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(it.lineno, 3);
  ASSERT_EQ(it.eol - it.line, 2);
  ASSERT_EQ(*it.eol, '\n');
  ASSERT_EQ(mg__lines_next(&it), 0);
  ASSERT_EQ(mg__lines_next(&it), 0);
  /* Without a final '\n' the last line ends at the NUL. */
  it = mg__lines_start("x\nyz");
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(it.lineno, 2);
  ASSERT_EQ(it.eol - it.line, 2);
  ASSERT_EQ(*it.eol, '\0');
  ASSERT_EQ(mg__lines_next(&it), 0);
  it = mg__lines_start("");
  ASSERT_EQ(mg__lines_next(&it), 0);
  ASSERT_EQ(it.lineno, 0);
  /* Keys: the whole text before the first ':', the value past blanks. */
  it = mg__lines_start("VmRSS: \t 12 kB\nVmRSSx: 1\nVm:RSS: 2\nVmRSS\nPid:");
  const char *v = NULL;
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_key(&it, "VmRSS", &v), 1);
  ASSERT_STR_EQ(v, "12 kB\nVmRSSx: 1\nVm:RSS: 2\nVmRSS\nPid:");
  ASSERT_EQ(mg__lines_key(&it, "VmRS", &v), 0);
  ASSERT_EQ(mg__lines_key(&it, "VmRSS:", &v), 0);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_key(&it, "VmRSS", &v), 0);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_key(&it, "Vm", &v), 1);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_key(&it, "VmRSS", &v), 0); /* no colon */
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_key(&it, "Pid", &v), 1); /* empty value */
  ASSERT(v == it.eol);
  /* Quoting stops at 200 characters. */
  char longline[300];
  memset(longline, 'k', sizeof longline - 1);
  longline[sizeof longline - 1] = '\0';
  it = mg__lines_start(longline);
  ASSERT_EQ(mg__lines_next(&it), 1);
  ASSERT_EQ(mg__lines_quote_len(&it), 200);
}

int main(void) {
  RUN(real_fixture);
  RUN(without_mem_available);
  RUN(estimate_is_capped_at_total);
  RUN(missing_total);
  RUN(missing_free);
  RUN(malformed_line);
  RUN(unused_lines_are_skipped);
  RUN(empty_file);
  RUN(missing_file);
  RUN(real_proc_meminfo);
  RUN(fileio_read_file);
  RUN(fileio_read_file_alloc);
  RUN(fileio_path_join);
  RUN(fileio_lines);
  return mg_test_report();
}
