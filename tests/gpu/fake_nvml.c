/* fake_nvml.c — a stand-in for libnvidia-ml.so.1 in the tests (loaded
 * through MG_NVML_LIBRARY): the NVML calls mgrun uses, answering from a
 * fixture file named by $FAKE_NVML_FIXTURE, read again at every call so
 * that a test can change it while mgrun runs. Lines:
 *   init ERR                    nvmlInit_v2 returns ERR (default 0)
 *   device UUID TOTAL USED NAME...   one per device, in index order
 *   proc DEV PID BYTES [graphics]    a process on device DEV
 *   fail CALL ERR               CALL (memory, count, procs, handle) fails
 *   legacy                      only the unversioned process calls exist
 *                               (v1 layout) — see fake_nvml_legacy below
 * Sizes are plain bytes. Unknown lines are ignored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  unsigned long long total, free, used;
} fake_mem;
typedef struct {
  unsigned int pid;
  unsigned long long used;
  unsigned int gi, ci;
} fake_proc2;
typedef struct {
  unsigned int pid;
  unsigned long long used;
} fake_proc1;

/* The NVML entry points this library exports (the prototypes a real
 * nvml.h would give, in the few types declared above). */
int nvmlInit_v2(void);
int nvmlShutdown(void);
const char *nvmlErrorString(int rc);
int nvmlDeviceGetCount_v2(unsigned *n);
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d);
int nvmlDeviceGetName(void *d, char *buf, unsigned len);
int nvmlDeviceGetUUID(void *d, char *buf, unsigned len);
int nvmlDeviceGetMemoryInfo(void *d, fake_mem *m);
int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *c, void *o);
int nvmlDeviceGetGraphicsRunningProcesses_v3(void *d, unsigned *c, void *o);
int nvmlDeviceGetComputeRunningProcesses(void *d, unsigned *c, void *o);
int nvmlDeviceGetGraphicsRunningProcesses(void *d, unsigned *c, void *o);

#define MAXD 16
#define MAXP 256

typedef struct {
  char uuid[96], name[96];
  unsigned long long total, used;
} fdev;
typedef struct {
  unsigned dev, pid;
  unsigned long long bytes;
  int graphics;
} fproc;

typedef struct {
  int init_err;
  int ndev, nproc;
  fdev dev[MAXD];
  fproc proc[MAXP];
  int fail_memory, fail_count, fail_procs, fail_handle;
} fixture;

static void load(fixture *f) {
  memset(f, 0, sizeof *f);
  const char *path = getenv("FAKE_NVML_FIXTURE");
  FILE *fp = path ? fopen(path, "r") : NULL;
  if (!fp)
    return;
  char line[512];
  while (fgets(line, sizeof line, fp)) {
    line[strcspn(line, "\n")] = '\0';
    char call[32];
    int e;
    if (sscanf(line, "init %d", &e) == 1) {
      f->init_err = e;
    } else if (strncmp(line, "device ", 7) == 0 && f->ndev < MAXD) {
      fdev *d = &f->dev[f->ndev];
      int off = 0;
      if (sscanf(line + 7, "%95s %llu %llu %n", d->uuid, &d->total, &d->used,
                 &off) >= 3) {
        snprintf(d->name, sizeof d->name, "%s", line + 7 + off);
        f->ndev++;
      }
    } else if (strncmp(line, "proc ", 5) == 0 && f->nproc < MAXP) {
      fproc *p = &f->proc[f->nproc];
      char kind[16] = "";
      if (sscanf(line + 5, "%u %u %llu %15s", &p->dev, &p->pid, &p->bytes,
                 kind) >= 3) {
        p->graphics = strcmp(kind, "graphics") == 0;
        f->nproc++;
      }
    } else if (sscanf(line, "fail %31s %d", call, &e) == 2) {
      if (!strcmp(call, "memory"))
        f->fail_memory = e;
      else if (!strcmp(call, "count"))
        f->fail_count = e;
      else if (!strcmp(call, "procs"))
        f->fail_procs = e;
      else if (!strcmp(call, "handle"))
        f->fail_handle = e;
    }
  }
  fclose(fp);
}

int nvmlInit_v2(void) {
  fixture f;
  load(&f);
  return f.init_err;
}

int nvmlShutdown(void) {
  return 0;
}

const char *nvmlErrorString(int rc) {
  switch (rc) {
  case 0:
    return "Success";
  case 2:
    return "Invalid Argument";
  case 3:
    return "Not Supported";
  case 9:
    return "Driver Not Loaded";
  case 15:
    return "GPU is lost";
  default:
    return "Unknown Error";
  }
}

int nvmlDeviceGetCount_v2(unsigned *n) {
  fixture f;
  load(&f);
  if (f.fail_count)
    return f.fail_count;
  *n = (unsigned)f.ndev;
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d) {
  fixture f;
  load(&f);
  if (f.fail_handle)
    return f.fail_handle;
  if (i >= (unsigned)f.ndev)
    return 2;
  *d = (void *)(unsigned long)(i + 1); /* index + 1: never NULL */
  return 0;
}

static int index_of(void *d) {
  return (int)((unsigned long)d - 1);
}

int nvmlDeviceGetName(void *d, char *buf, unsigned len) {
  fixture f;
  load(&f);
  int i = index_of(d);
  if (i < 0 || i >= f.ndev)
    return 2;
  snprintf(buf, len, "%s", f.dev[i].name);
  return 0;
}

int nvmlDeviceGetUUID(void *d, char *buf, unsigned len) {
  fixture f;
  load(&f);
  int i = index_of(d);
  if (i < 0 || i >= f.ndev)
    return 2;
  snprintf(buf, len, "%s", f.dev[i].uuid);
  return 0;
}

int nvmlDeviceGetMemoryInfo(void *d, fake_mem *m) {
  fixture f;
  load(&f);
  int i = index_of(d);
  if (f.fail_memory)
    return f.fail_memory;
  if (i < 0 || i >= f.ndev)
    return 2;
  m->total = f.dev[i].total;
  m->used = f.dev[i].used;
  m->free = f.dev[i].total - f.dev[i].used;
  return 0;
}

static int procs(void *d, unsigned *count, void *out, int graphics, int v2) {
  fixture f;
  load(&f);
  if (f.fail_procs)
    return f.fail_procs;
  int i = index_of(d);
  unsigned n = 0, cap = *count;
  for (int k = 0; k < f.nproc; k++) {
    if ((int)f.proc[k].dev != i || f.proc[k].graphics != graphics)
      continue;
    if (n < cap) {
      if (v2) {
        fake_proc2 *p = (fake_proc2 *)out + n;
        p->pid = f.proc[k].pid;
        p->used = f.proc[k].bytes;
        p->gi = p->ci = 0xffffffffu;
      } else {
        fake_proc1 *p = (fake_proc1 *)out + n;
        p->pid = f.proc[k].pid;
        p->used = f.proc[k].bytes;
      }
    }
    n++;
  }
  *count = n;
  return n > cap ? 7 : 0; /* NVML_ERROR_INSUFFICIENT_SIZE */
}

#ifndef FAKE_NVML_LEGACY
int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *c, void *o) {
  return procs(d, c, o, 0, 1);
}

int nvmlDeviceGetGraphicsRunningProcesses_v3(void *d, unsigned *c, void *o) {
  return procs(d, c, o, 1, 1);
}
#else
int nvmlDeviceGetComputeRunningProcesses(void *d, unsigned *c, void *o) {
  return procs(d, c, o, 0, 0);
}

int nvmlDeviceGetGraphicsRunningProcesses(void *d, unsigned *c, void *o) {
  return procs(d, c, o, 1, 0);
}
#endif
