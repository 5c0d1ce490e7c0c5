/* mg_alloc.c — test helper: allocate and touch memory on demand.
 *
 *   mg_alloc MIB            allocate MIB MiB now
 *   mg_alloc MIB --wait     print "ready <pid>", wait for SIGUSR1, then
 *                           allocate (so a test can set limits first)
 *
 * Exit status: 0 allocated and touched every page; 3 the allocation
 * failed (ENOMEM: a limit was enforced); 2 usage. A process killed by the
 * kernel (OOM in a cgroup) dies of SIGKILL instead. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: mg_alloc MIB [--wait]\n");
    return 2;
  }
  char *end;
  unsigned long mib = strtoul(argv[1], &end, 10);
  if (*end || mib == 0) {
    fprintf(stderr, "mg_alloc: MIB must be a positive integer, got '%s'\n",
            argv[1]);
    return 2;
  }
  if (argc > 2 && strcmp(argv[2], "--wait") == 0) {
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    sigwait(&set, &sig);
  }
  size_t len = (size_t)mib << 20;
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) {
    printf("mmap of %lu MiB failed: %s\n", mib, strerror(errno));
    return 3;
  }
  long page = sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < len; i += (size_t)page)
    p[i] = 1;
  printf("allocated %lu MiB\n", mib);
  return 0;
}
