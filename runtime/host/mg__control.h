/* mg__control.h — internals of the control socket shared by its files
 * (host layer; libuv, jansson). Not installed; tests include it to reach
 * the request handler and the line framer.
 *
 *   mg_runtime_control.c      the socket: bind (stale sockets, the default
 *                             directory, mode 0600), connections checked
 *                             with SO_PEERCRED, start and stop
 *   mg_runtime_control_conn.c connections: lines in, responses out,
 *                             back-pressure, subscribers
 *   mg_runtime_control_cmd.c  one request line → one response: parsing,
 *                             dispatch, hello, reload, subscribe, health,
 *                             the policy's commands
 *   mg_runtime_control_act.c  status, set-limit, stop, restart,
 *                             store-stats
 *   mg_runtime_control_ev.c   the supervisor observer: events as JSON for
 *                             subscribers, the restart history of health
 *
 * The protocol is documented in docs/operations.md ("Control socket").
 */
#ifndef MG__CONTROL_H
#define MG__CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "mg__runtime.h"

#define MG__CTL_PROTOCOL 1
/* A request line, its newline included. */
#define MG__CTL_LINE_MAX 65536u
/* What one read may add to a connection's buffer. */
#define MG__CTL_READ_CHUNK 65536u
/* Connections at once (more are answered with an error and closed). */
#define MG__CTL_CONN_MAX 64
/* Responses queued on a connection: above this it is not read (nor its
 * buffered requests handled) until the queue is down to half. */
#define MG__CTL_WRITE_MAX (1u << 20)
/* A subscriber's queue: events beyond it are dropped (and counted: a
 * "dropped" event says how many once the queue is down to half)... */
#define MG__CTL_SUB_MAX (256u << 10)
/* ... and a subscriber that has not read for this long while its queue
 * is full is disconnected. */
#define MG__CTL_SUB_STUCK_MS 30000
/* Malformed requests in a row (or bytes of one oversized line) after
 * which a connection is closed. */
#define MG__CTL_BAD_MAX 16
#define MG__CTL_DISCARD_MAX (1u << 20)
/* A response that would be larger than this is an error instead. */
#define MG__CTL_RESPONSE_MAX (4u << 20)
/* health: restarts of one child within the window that make a loop. */
#define MG__CTL_LOOP_RESTARTS 3
#define MG__CTL_LOOP_WINDOW_MS 60000
/* health: the Lua state's use of its cap that is a problem. */
#define MG__CTL_LUA_MEM_FRACTION 0.9
/* Children whose restart history is kept (the oldest goes first). */
#define MG__CTL_HIST_MAX 128

/* ---- the line framer: bytes in, request lines out */

typedef struct mg__ctl_framer {
  char *buf;        /* MG__CTL_LINE_MAX + MG__CTL_READ_CHUNK + 1 bytes */
  size_t off, len;  /* the bytes held: buf[off .. off + len) */
  size_t handed;    /* bytes of the line handed out last: consumed next */
  int discarding;   /* inside an oversized line: skip to its newline */
  size_t discarded; /* bytes of it skipped so far */
} mg__ctl_framer;

enum {
  MG__CTL_FRAME_MORE = 0,     /* nothing complete: read more */
  MG__CTL_FRAME_LINE = 1,     /* *line, *len: a line without its newline */
  MG__CTL_FRAME_OVERSIZED = 2 /* a line passed MG__CTL_LINE_MAX: its bytes
                                 are being skipped (once per such line) */
};

int mg__ctl_framer_init(mg__ctl_framer *f);
void mg__ctl_framer_free(mg__ctl_framer *f);
/* Where the next read may write and how much (0: the buffer is full,
 * take lines out first). */
char *mg__ctl_framer_space(mg__ctl_framer *f, size_t *room);
/* n bytes were written at the space. */
void mg__ctl_framer_wrote(mg__ctl_framer *f, size_t n);
/* The next event; a line stays valid until the next call. At `eof`, what
 * is left without a newline is a last line. */
int mg__ctl_framer_next(mg__ctl_framer *f, int eof, const char **line,
                        size_t *len);

/* ---- the server */

typedef struct mg__ctl_conn mg__ctl_conn;
struct mg__ctl_conn {
  uv_pipe_t pipe; /* first: handle → conn */
  struct mg__rt_control *ctl;
  mg__ctl_conn *prev, *next;
  uint64_t id;
  uid_t uid; /* SO_PEERCRED ((uid_t)-1: unknown) */
  pid_t pid;
  mg__ctl_framer fr;
  int bad;        /* malformed requests in a row */
  int subscribed; /* a subscriber: input ignored, events out */
  int samples;
  int paused; /* reading stopped for back-pressure */
  int eof;    /* the client finished sending */
  int closing;
  uint64_t dropped;    /* events not sent since the last "dropped" */
  uint64_t full_since; /* ms: when its queue became full (0: not full) */
};

/* What became of one child, for health (mg_runtime_control_ev.c). */
typedef struct mg__ctl_hist {
  char name[MG_NAME_MAX + 1];
  uint64_t restarts_ms[MG__CTL_LOOP_RESTARTS + 1]; /* ring: last restarts */
  unsigned nrestarts;                              /* in all */
  int gave_up;      /* its restarts ran out: not running, never again */
  uint64_t seen_ms; /* last event (which entry goes when the table is full) */
} mg__ctl_hist;

struct mg__rt_control {
  mg_runtime *rt;
  uv_pipe_t *listener; /* heap-held: freed by its close callback */
  char path[108];      /* absolute; sun_path's size */
  dev_t dev;           /* of the socket we bound, for the unlink at stop */
  ino_t ino;
  int bound;
  int obs; /* the supervisor observer's id (> 0) */
  uint64_t t0_ns;
  time_t wall0;
  mg__ctl_conn *conns;
  size_t nconns, nsubs;
  uint64_t next_conn_id;
  size_t handles; /* open uv handles: freed when stopped and none is left */
  int stopped;
  mg__ctl_conn *dispatching; /* whose request is being handled */
  uid_t peer_uid;            /* ... its peer, for the log */
  pid_t peer_pid;
  mg__ctl_hist hist[MG__CTL_HIST_MAX];
  size_t nhist;
};

/* What a request asks of its connection besides the response. */
typedef struct mg__ctl_after {
  int subscribe; /* the connection becomes a subscriber after it */
  int samples;   /* ... with sample events */
  int bad;       /* a malformed request (closes a garbage sender) */
} mg__ctl_after;

/* One request line (without its newline) → its response: a new JSON
 * object, never NULL but out of memory. Never raises, never crashes on
 * any input: the unit of the fuzz test. */
json_t *mg__ctl_handle(struct mg__rt_control *ctl, const char *line, size_t len,
                       mg__ctl_after *after);
/* An error response {"v":1,"id":id,"ok":false,"error":msg,"code":code};
 * id may be NULL (then "id" is null). */
json_t *mg__ctl_error(const json_t *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A request being handled: its id (borrowed, may be NULL), its command
 * and the whole object. */
typedef struct mg__ctl_req {
  const json_t *id;
  const char *cmd;
  json_t *o;
} mg__ctl_req;

/* {"v":1,"id":id,"ok":ok}, to add fields to. */
json_t *mg__ctl_ok(const json_t *id, int ok);
/* A JSON string of text that may hold bytes that are not UTF-8 (those
 * become '?'). */
json_t *mg__ctl_text(const char *s);
json_t *mg__ctl_u64(uint64_t v);
/* Fields of a request: a required name (mg_name_check) in `field`, an
 * optional integer 0..hi (*given says whether it was there); NULL, or
 * the error response. */
json_t *mg__ctl_want_name(const mg__ctl_req *r, const char *field,
                          const char *what, const char **out);
json_t *mg__ctl_want_ms(const mg__ctl_req *r, const char *field, int64_t hi,
                        int64_t *out, int *given);

/* The commands on children and stores (mg_runtime_control_act.c). */
json_t *mg__ctl_status(struct mg__rt_control *ctl, const mg__ctl_req *r,
                       mg__ctl_after *after);
json_t *mg__ctl_set_limit(struct mg__rt_control *ctl, const mg__ctl_req *r,
                          mg__ctl_after *after);
json_t *mg__ctl_stop(struct mg__rt_control *ctl, const mg__ctl_req *r,
                     mg__ctl_after *after);
json_t *mg__ctl_restart(struct mg__rt_control *ctl, const mg__ctl_req *r,
                        mg__ctl_after *after);
json_t *mg__ctl_store_stats(struct mg__rt_control *ctl, const mg__ctl_req *r,
                            mg__ctl_after *after);

/* ms since the server started. */
uint64_t mg__ctl_uptime_ms(const struct mg__rt_control *ctl);
/* The health checks: 1 healthy, 0 not; `problems` (a JSON array) gets a
 * sentence per problem. */
int mg__ctl_health(struct mg__rt_control *ctl, json_t *problems);

/* mg_runtime_control_ev.c: the observer (start: its id or a negative
 * code), events for subscribers (also the host's own: reload, a limit
 * set by a request), the restart history. */
int mg__ctl_observe(struct mg__rt_control *ctl);
void mg__ctl_unobserve(struct mg__rt_control *ctl);
mg__ctl_hist *mg__ctl_hist_find(struct mg__rt_control *ctl, const char *name);
/* Send the event `o` (consumed) to every subscriber: {"v":1,"event":type,
 * "t_ms":…, …o}; `sample` events only to those that asked for them. */
void mg__ctl_broadcast(struct mg__rt_control *ctl, const char *type, json_t *o);

/* mg_runtime_control_conn.c: connections. Accept one (linked, counted,
 * unref'd, its peer's credentials read; NULL when that failed), start
 * reading its requests, refuse it (one error line, then closed), close
 * it (now), close them all (subscribers get a last "shutdown" line where
 * it can be written at once). */
mg__ctl_conn *mg__ctl_conn_accept(struct mg__rt_control *ctl,
                                  uv_stream_t *server);
void mg__ctl_conn_start(mg__ctl_conn *conn);
void mg__ctl_conn_refuse(mg__ctl_conn *conn, const char *code, const char *msg);
void mg__ctl_conn_close(mg__ctl_conn *conn);
/* Close once what is queued has been written. */
void mg__ctl_conn_finish(mg__ctl_conn *conn);
/* All of them, but the one whose request is being handled (a request
 * that ends mgrun gets its answer before its connection closes). */
void mg__ctl_conns_close(struct mg__rt_control *ctl);
/* Free the server once it is stopped and its last handle closed. */
void mg__ctl_maybe_free(struct mg__rt_control *ctl);
/* Write one JSON line (consumed) to every subscriber, with the queue
 * bound. */
void mg__ctl_send_subscribers(struct mg__rt_control *ctl, json_t *line,
                              int is_sample);

#endif
