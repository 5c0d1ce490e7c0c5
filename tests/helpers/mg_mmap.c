/* mg_mmap.c — test helper: a model-like workload that maps a file and
 * reads every page of it (as llama.cpp does with a GGUF), and/or touches
 * anonymous and shared memory, then holds it.
 *
 *   mg_mmap [--file PATH] [--anon MIB] [--shmem MIB] [--hold SECONDS]
 *
 * --file maps PATH read-only (MAP_PRIVATE) and reads one byte of every
 * page; --anon maps MIB MiB of private anonymous memory and writes every
 * page; --shmem the same with a shared anonymous mapping (shmem). Then it
 * prints one line on stdout,
 *   ready pid=P file_bytes=F anon_bytes=A shmem_bytes=S read_ms=T
 * (T: the time the file's pages took to read), and sleeps --hold seconds
 * (default 30; SIGTERM ends it sooner). Exit status: 0; 3 when a mapping
 * or allocation fails ("mg_mmap: mmap of ... failed: <why>" on stderr,
 * the words mgrun's classification knows); 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Map `len` bytes of anonymous memory (`flags`: MAP_PRIVATE or
 * MAP_SHARED) and write every page. */
static int touch(size_t len, int flags, const char *what, long page) {
  if (len == 0)
    return 0;
  unsigned char *a =
      mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) {
    fprintf(stderr, "mg_mmap: mmap of %zu MiB %s failed: %s\n", len >> 20, what,
            strerror(errno));
    return -1;
  }
  for (size_t off = 0; off < len; off += (size_t)page)
    a[off] = (unsigned char)(off | 1);
  return 0;
}

static int usage(void) {
  fprintf(stderr,
          "usage: mg_mmap [--file PATH] [--anon MIB] [--shmem MIB] [--hold "
          "SECONDS]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  unsigned long anon_mib = 0, shmem_mib = 0, hold = 30;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      return usage();
    char *end = NULL;
    if (strcmp(argv[i], "--file") == 0) {
      path = argv[++i];
    } else if (strcmp(argv[i], "--anon") == 0) {
      anon_mib = strtoul(argv[++i], &end, 10);
      if (*end)
        return usage();
    } else if (strcmp(argv[i], "--shmem") == 0) {
      shmem_mib = strtoul(argv[++i], &end, 10);
      if (*end)
        return usage();
    } else if (strcmp(argv[i], "--hold") == 0) {
      hold = strtoul(argv[++i], &end, 10);
      if (*end)
        return usage();
    } else {
      return usage();
    }
  }
  long page = sysconf(_SC_PAGESIZE);
  size_t file_len = 0;
  double read_ms = 0;
  volatile unsigned char sink = 0;
  if (path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
      fprintf(stderr, "mg_mmap: cannot open %s: %s\n", path, strerror(errno));
      return 2;
    }
    file_len = (size_t)sb.st_size;
    unsigned char *m =
        file_len ? mmap(NULL, file_len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (file_len && m == MAP_FAILED) {
      fprintf(stderr, "mg_mmap: mmap of %s failed: %s\n", path,
              strerror(errno));
      return 3;
    }
    close(fd);
    double t0 = now_ms();
    for (size_t off = 0; off < file_len; off += (size_t)page)
      sink ^= m[off];
    read_ms = now_ms() - t0;
  }
  size_t anon_len = (size_t)anon_mib << 20, shmem_len = (size_t)shmem_mib << 20;
  if (touch(anon_len, MAP_PRIVATE, "anonymous", page) < 0 ||
      touch(shmem_len, MAP_SHARED, "shared anonymous", page) < 0)
    return 3;
  printf("ready pid=%ld file_bytes=%zu anon_bytes=%zu shmem_bytes=%zu "
         "read_ms=%.0f\n",
         (long)getpid(), file_len, anon_len, shmem_len, read_ms);
  fflush(stdout);
  (void)sink;
  for (unsigned long s = 0; s < hold; s++)
    sleep(1);
  return 0;
}
