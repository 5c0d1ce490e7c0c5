/* test_proc.c — /proc/PID/status, smaps_rollup, start times and process
 * trees, from fixtures (a fake /proc root under tests/fixtures/proc) and
 * from this process. */
#include "mg/mg_error.h"
#include "mg/mg_proc.h"
#include "mg_test.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#define KB(x) (UINT64_C(x) * 1024)

TEST(fixture_process) {
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(mg_proc_status_read(mg_fixture("proc"), 1234, &st, err, sizeof err),
            0);
  ASSERT_EQ(st.pid, 1234);
  ASSERT_STR_EQ(st.name, "tmux: server"); /* spaces and ':' in a name */
  ASSERT_U64_EQ(st.rss_bytes, KB(409600));
  ASSERT_U64_EQ(st.hwm_bytes, KB(524288));
  ASSERT_U64_EQ(st.vsize_bytes, KB(2097152));
  ASSERT_U64_EQ(st.data_bytes, KB(1048576));
  ASSERT_U64_EQ(st.anon_bytes, KB(307200));
  ASSERT_U64_EQ(st.file_bytes, KB(100352));
  ASSERT_U64_EQ(st.shmem_bytes, KB(2048));
  ASSERT_U64_EQ(st.swap_bytes, KB(4096));
  ASSERT_EQ(st.is_kernel_thread, 0);
}

TEST(fixture_self_is_pid_0) {
  /* fixtures/proc/self -> 1234; pid 0 reads "self" and takes Pid: from the
   * file. */
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(mg_proc_status_read(mg_fixture("proc"), 0, &st, err, sizeof err),
            0);
  ASSERT_EQ(st.pid, 1234);
  ASSERT_U64_EQ(st.rss_bytes, KB(409600));
}

TEST(kernel_thread) {
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(mg_proc_status_read(mg_fixture("proc"), 2, &st, err, sizeof err),
            0);
  ASSERT_STR_EQ(st.name, "kthreadd");
  ASSERT_EQ(st.is_kernel_thread, 1);
  ASSERT_U64_EQ(st.rss_bytes, 0);
  ASSERT_U64_EQ(st.vsize_bytes, 0);
  ASSERT_U64_EQ(st.data_bytes, 0);
  uint64_t pss = 99;
  ASSERT_EQ(mg_proc_pss_read(mg_fixture("proc"), 2, &pss, err, sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "no \"Pss:\" line");
  ASSERT_U64_EQ(pss, 0);
}

TEST(zombie) {
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(mg_proc_status_read(mg_fixture("proc"), 3000, &st, err, sizeof err),
            0);
  ASSERT_STR_EQ(st.name, "python3");
  ASSERT_EQ(st.is_kernel_thread, 1);
  ASSERT_U64_EQ(st.rss_bytes, 0);
}

TEST(malformed_status) {
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(mg_proc_status_read(mg_fixture("proc"), 5555, &st, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "VmRSS:\t  12x kB");
  ASSERT_CONTAINS(err, "proc/5555/status");
  ASSERT_EQ(mg_proc_status_parse("Pid: 12\n", &st, err, sizeof err), MG_EPARSE);
  ASSERT_CONTAINS(err, "Name");
  ASSERT_EQ(mg_proc_status_parse("Name:\tx\nPid:\tabc\n", &st, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "line 2");
  ASSERT_EQ(
      mg_proc_status_parse("Name:\tx\nVmSize:\t12 MB\n", &st, err, sizeof err),
      MG_EPARSE);
  ASSERT_EQ(mg_proc_status_parse("", &st, err, sizeof err), MG_EPARSE);
}

TEST(parse_long_name_is_cut) {
  mg_proc_status st;
  char text[256];
  snprintf(text, sizeof text, "Name:\t%s\nVmRSS:\t1 kB\n",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "bbbbbbbbbb");
  ASSERT_EQ(mg_proc_status_parse(text, &st, NULL, 0), 0);
  ASSERT_EQ(strlen(st.name), sizeof st.name - 1);
  ASSERT_U64_EQ(st.rss_bytes, 1024);
  ASSERT_EQ(st.is_kernel_thread, 0);
}

TEST(nonexistent_pid) {
  mg_proc_status st;
  char err[512] = "";
  pid_t pid = (1 << 22) + 12345; /* above the largest pid_max */
  ASSERT_EQ(mg_proc_status_read(NULL, pid, &st, err, sizeof err), -ESRCH);
  ASSERT_CONTAINS(err, "no process with pid 4206649");
  uint64_t pss;
  ASSERT_EQ(mg_proc_pss_read(NULL, pid, &pss, err, sizeof err), -ESRCH);
  ASSERT_CONTAINS(err, "no process with pid 4206649");
  /* Also in a fixture root. */
  ASSERT_EQ(mg_proc_status_read(mg_fixture("proc"), 999, &st, err, sizeof err),
            -ESRCH);
  ASSERT_CONTAINS(err, "no process with pid 999");
}

TEST(dead_child_is_esrch) {
  pid_t child = fork();
  ASSERT(child >= 0);
  if (child == 0)
    _exit(0);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(mg_proc_status_read(NULL, child, &st, err, sizeof err), -ESRCH);
  char want[64];
  snprintf(want, sizeof want, "no process with pid %ld", (long)child);
  ASSERT_CONTAINS(err, want);
}

TEST(missing_proc_root) {
  mg_proc_status st;
  char err[512] = "";
  ASSERT_EQ(
      mg_proc_status_read(mg_fixture("no-such-proc"), 1, &st, err, sizeof err),
      -ENOENT);
  ASSERT_CONTAINS(err, "no-such-proc");
  ASSERT_EQ(mg_proc_status_read(NULL, -3, &st, err, sizeof err), -EINVAL);
}

TEST(real_self) {
  mg_proc_status st;
  char err[512] = "";
  /* Touch some memory so RSS is clearly non-zero. */
  size_t n = 8u << 20;
  char *mem = malloc(n);
  ASSERT(mem != NULL);
  memset(mem, 1, n);
  ASSERT_EQ(mg_proc_status_read(NULL, 0, &st, err, sizeof err), 0);
  ASSERT_EQ(st.pid, getpid());
  ASSERT_STR_EQ(st.name, "test_proc");
  ASSERT_EQ(st.is_kernel_thread, 0);
  ASSERT(st.rss_bytes >= n);
  ASSERT(st.hwm_bytes >= st.rss_bytes);
  ASSERT(st.vsize_bytes >= st.rss_bytes);
  ASSERT(st.data_bytes >= n);
  ASSERT_EQ(st.rss_bytes % 1024, 0);
  mg_proc_status st2;
  ASSERT_EQ(mg_proc_status_read(NULL, getpid(), &st2, err, sizeof err), 0);
  ASSERT_EQ(st2.pid, getpid());
  ASSERT_STR_EQ(st2.name, "test_proc");
  free(mem);
}

TEST(pss_fixture) {
  uint64_t pss = 0;
  char err[512] = "";
  ASSERT_EQ(mg_proc_pss_read(mg_fixture("proc"), 1234, &pss, err, sizeof err),
            0);
  ASSERT_U64_EQ(pss, KB(204800));
  /* A process without smaps_rollup: a kernel older than 4.14. */
  ASSERT_EQ(mg_proc_pss_read(mg_fixture("proc"), 4321, &pss, err, sizeof err),
            MG_ENOTSUP);
  ASSERT_CONTAINS(err, "4.14");
  ASSERT_CONTAINS(err, "proc/4321/smaps_rollup");
  ASSERT_EQ(mg_proc_pss_read(mg_fixture("proc"), 6666, &pss, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "Pss:                 4x1 kB");
  ASSERT_EQ(mg_proc_pss_read(mg_fixture("proc"), 999, &pss, err, sizeof err),
            -ESRCH);
}

TEST(pss_self) {
  uint64_t pss = 0;
  char err[512] = "";
  int rc = mg_proc_pss_read(NULL, 0, &pss, err, sizeof err);
  if (rc == MG_ENOTSUP)
    SKIP("%s", err);
  ASSERT_EQ(rc, 0);
  ASSERT(pss > 0);
  mg_proc_status st;
  ASSERT_EQ(mg_proc_status_read(NULL, 0, &st, err, sizeof err), 0);
  ASSERT(pss <= st.rss_bytes + (1u << 20)); /* PSS <= RSS, give or take */
}

TEST(pss_eacces) {
  /* Another user's smaps_rollup needs ptrace access. Only testable when we
   * can become another user (root dropping to nobody). */
  if (geteuid() != 0)
    return;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT(child >= 0);
  if (child == 0) {
    close(fds[1]);
    char c;
    (void)!read(fds[0], &c, 1); /* root-owned, waits for the parent */
    _exit(0);
  }
  close(fds[0]);
  pid_t reader = fork();
  ASSERT(reader >= 0);
  if (reader == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0)
      _exit(3);
    uint64_t pss;
    char err[512];
    int rc = mg_proc_pss_read(NULL, child, &pss, err, sizeof err);
    if (rc == -EACCES && strstr(err, "ptrace"))
      _exit(0);
    fprintf(stderr, "pss_eacces: rc %d: %s\n", rc, err);
    _exit(1);
  }
  int status;
  ASSERT_EQ(waitpid(reader, &status, 0), reader);
  close(fds[1]);
  int cstatus;
  ASSERT_EQ(waitpid(child, &cstatus, 0), child);
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* Start times from stat, past a comm with spaces and parentheses. */
TEST(start_time_fixture) {
  uint64_t t = 1;
  char err[512] = "";
  ASSERT_EQ(mg_proc_start_time(mg_fixture("proc"), 7000, &t, err, sizeof err),
            0);
  ASSERT_U64_EQ(t, 123456);
  ASSERT_EQ(mg_proc_start_time(mg_fixture("proc"), 7001, &t, err, sizeof err),
            0);
  ASSERT_U64_EQ(t, 123500);
  ASSERT_EQ(mg_proc_start_time(mg_fixture("proc"), 7005, &t, err, sizeof err),
            MG_EPARSE);
  ASSERT_CONTAINS(err, "no start time in field 22");
  ASSERT_U64_EQ(t, 0);
  ASSERT_EQ(mg_proc_start_time(mg_fixture("proc"), 7003, &t, err, sizeof err),
            -ESRCH);
  ASSERT_EQ(mg_proc_start_time(mg_fixture("proc"), 0, &t, err, sizeof err),
            -EINVAL);
}

static int has_pid(const pid_t *v, size_t n, pid_t pid) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == pid)
      return 1;
  return 0;
}

/* The tree: the children of every thread, then theirs; a process without
 * a task directory adds nothing; cap cuts it short. */
TEST(tree_fixture) {
  pid_t t[16];
  size_t n = 99;
  ASSERT_EQ(mg_proc_tree(mg_fixture("proc"), 7000, t, 16, &n), 0);
  ASSERT_EQ(n, 5);
  ASSERT_EQ(t[0], 7000);
  for (pid_t p = 7001; p <= 7004; p++)
    ASSERT(has_pid(t, n, p));
  ASSERT_EQ(t[4], 7004); /* a grandchild comes after the children */
  ASSERT_EQ(mg_proc_tree(mg_fixture("proc"), 7000, t, 3, &n), 0);
  ASSERT_EQ(n, 3);
  ASSERT_EQ(mg_proc_tree(mg_fixture("proc"), 7003, t, 16, &n), 0);
  ASSERT_EQ(n, 1); /* no task directory: the root alone */
  ASSERT_EQ(mg_proc_tree(mg_fixture("proc"), 9999, t, 16, &n), 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(t[0], 9999);
  ASSERT_EQ(mg_proc_tree(mg_fixture("proc"), 7000, t, 0, &n), 0);
  ASSERT_EQ(n, 0);
  ASSERT_EQ(mg_proc_tree(mg_fixture("proc"), 0, t, 16, &n), -EINVAL);
}

/* This process: its start time is stable, a forked child is in its tree
 * and starts later. */
TEST(tree_and_start_time_live) {
  uint64_t a = 0, b = 0, c = 0;
  ASSERT_EQ(mg_proc_start_time(NULL, getpid(), &a, NULL, 0), 0);
  ASSERT_GT(a, 0);
  ASSERT_EQ(mg_proc_start_time("/proc", getpid(), &b, NULL, 0), 0);
  ASSERT_U64_EQ(a, b);
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  pid_t kid = fork();
  ASSERT_GE(kid, 0);
  if (kid == 0) {
    char ch;
    close(pfd[1]);
    while (read(pfd[0], &ch, 1) < 0) {
    }
    _exit(0);
  }
  close(pfd[0]);
  pid_t t[64];
  size_t n = 0;
  ASSERT_EQ(mg_proc_tree(NULL, getpid(), t, 64, &n), 0);
  ASSERT_EQ(t[0], getpid());
  ASSERT(has_pid(t, n, kid));
  ASSERT_EQ(mg_proc_start_time(NULL, kid, &c, NULL, 0), 0);
  ASSERT_GE(c, a);
  close(pfd[1]);
  waitpid(kid, NULL, 0);
  ASSERT_EQ(mg_proc_start_time(NULL, kid, &c, NULL, 0), -ESRCH);
}

int main(void) {
  RUN(fixture_process);
  RUN(fixture_self_is_pid_0);
  RUN(kernel_thread);
  RUN(zombie);
  RUN(malformed_status);
  RUN(parse_long_name_is_cut);
  RUN(nonexistent_pid);
  RUN(dead_child_is_esrch);
  RUN(missing_proc_root);
  RUN(real_self);
  RUN(pss_fixture);
  RUN(pss_self);
  RUN(pss_eacces);
  RUN(start_time_fixture);
  RUN(tree_fixture);
  RUN(tree_and_start_time_live);
  return mg_test_report();
}
