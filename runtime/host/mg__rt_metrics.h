/* mg__rt_metrics.h — what the files of the host's metrics share (host
 * layer; not installed):
 *
 *   mg_runtime_metrics.c       the collector (a supervisor observer that
 *                              counts restarts, exits, OOM kills and
 *                              thresholds per child), the built-in
 *                              families, the text of a scrape (built-ins,
 *                              then the policy's mg.metrics), start and
 *                              stop
 *   mg_runtime_metrics_http.c  --metrics ADDR: the address rules and the
 *                              HTTP/1.x endpoint on the loop (TCP or a
 *                              unix socket)
 *   mg_runtime_metrics_file.c  --metrics-file PATH: the atomic writer
 */
#ifndef MG__RT_METRICS_H
#define MG__RT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "mg__runtime.h"

/* The HTTP endpoint's bounds. */
#define MG__MX_REQ_MAX 8192      /* request line + headers, bytes */
#define MG__MX_CONNS_MAX 16      /* connections at once; more are closed */
#define MG__MX_TIMEOUT_MS 5000   /* a request must arrive within this */
#define MG__MX_LINGER_MS 1000    /* after the response: wait for the close */
#define MG__MX_CHILDREN_MAX 1024 /* children whose counters are kept */
#define MG__MX_SAMPLE_MS 1000    /* a child's sample this recent is reused */

/* A --metrics address, parsed. */
typedef struct mg__mx_addr {
  int is_unix;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* is_unix */
  struct sockaddr_storage ss;                             /* TCP */
  int loopback;
  char shown[128]; /* as logged: "127.0.0.1:9100", "[::1]:0", "unix:/p" */
} mg__mx_addr;

/* Parse `text`: "127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT" (=
 * 127.0.0.1), any other IPv4 or [IPv6] literal with a port (only with
 * `remote`: not loopback), or "unix:/path". PORT is 0..65535 (0: a free
 * one). -EINVAL with err saying what was wrong and what is accepted. */
int mg__mx_parse_addr(const char *text, int remote, mg__mx_addr *out, char *err,
                      size_t err_len);

typedef struct mg__mx_http mg__mx_http;
typedef struct mg__mx_child mg__mx_child;

struct mg__rt_metrics {
  mg_runtime *rt;
  int obs;                /* the observer's id; 0: none */
  struct mg_metrics *reg; /* the built-in families, refilled per scrape;
                             made at the first one (NULL until then) */
  struct mg_metric **fam; /* by MX_F_* (mg_runtime_metrics.c) */
  mg__mx_child *children; /* counters per (name, enforce) */
  size_t nchildren, capchildren;
  int cg_ok; /* cg holds this process's cgroup position */
  mg_cgroup_info cg;
  /* --metrics-file */
  char *file, *file_tmp;
  uv_timer_t *file_timer; /* heap-held: freed by its close callback */
  int file_failing;       /* the last write failed (logged once) */
  /* --metrics */
  mg__mx_http *http;
};

/* The text of a scrape: the built-ins, then the policy's metrics. *out
 * is malloc'd (free it). 0 or -ENOMEM. */
int mg__mx_text(struct mg__rt_metrics *m, char **out, size_t *len);

/* Listen on `m->rt->opts.metrics_addr` (unref'd handles on rt->loop) and
 * log metrics_listening addr=...; 0 or a negative code with err naming the
 * option. Stop closes the server and every connection (idempotent). */
int mg__mx_http_start(struct mg__rt_metrics *m, char *err, size_t err_len);
void mg__mx_http_stop(struct mg__rt_metrics *m);

/* --metrics-file (rt->opts.metrics_file): write it once now (a path that
 * cannot be written is an error naming the option), then every interval.
 * _write writes it now (a no-op without a file); _stop closes the timer
 * (idempotent). */
int mg__mx_file_start(struct mg__rt_metrics *m, char *err, size_t err_len);
void mg__mx_file_write(struct mg__rt_metrics *m);
void mg__mx_file_stop(struct mg__rt_metrics *m);

#endif
