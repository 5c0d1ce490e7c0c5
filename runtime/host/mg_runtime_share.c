/* mg_runtime_share.c — a runtime used from other threads of its host
 * (host layer): mg_runtime_call and what is built on it (a policy's store
 * for the host, changes of that store, a shutdown asked from elsewhere).
 *
 * One thread owns a runtime at a time: the one inside mg_runtime_load* or
 * mg_runtime_run. Only it touches the Lua state, libuv and the supervisor.
 * A call from another thread is queued; an async handle wakes the owner's
 * loop, which runs it between two callbacks, and the caller waits for the
 * result. When no thread owns the runtime, the caller runs it itself
 * (under the queue's mutex, so two such callers — or a caller and a
 * thread starting load or run — take turns). So the Lua state is never
 * entered by two threads at once, and nothing waits in a cycle: the owner
 * never waits for a caller.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mg/mg_ffi.h"
#include "mg__runtime.h"

/* Run every queued request (on the owner, or on the last thread out).
 * Called with mu held; releases it while a request runs only when
 * `unlocked_runs` (the loop's async callback), so that more can queue. */
static void drain(mg_runtime *rt, int unlocked_runs) {
  mg__rt_share *sh = &rt->share;
  while (sh->head) {
    mg__rt_req *r = sh->head;
    sh->head = r->next;
    if (!sh->head)
      sh->tail = NULL;
    if (unlocked_runs)
      uv_mutex_unlock(&sh->mu);
    r->rc = r->fn(rt, r->ud);
    if (unlocked_runs)
      uv_mutex_lock(&sh->mu);
    r->done = 1;
  }
  uv_cond_broadcast(&sh->cv);
}

static void free_on_close(uv_handle_t *h) {
  free(h);
}

static void on_async(uv_async_t *a) {
  mg_runtime *rt = a->data;
  uv_mutex_lock(&rt->share.mu);
  drain(rt, 1);
  uv_mutex_unlock(&rt->share.mu);
}

int mg__rt_share_init(mg_runtime *rt, char *err, size_t err_len) {
  mg__rt_share *sh = &rt->share;
  int rc = uv_mutex_init(&sh->mu);
  if (rc < 0)
    return mg_errf(err, err_len, rc, "cannot create a mutex: %s",
                   uv_strerror(rc));
  if ((rc = uv_cond_init(&sh->cv)) < 0) {
    uv_mutex_destroy(&sh->mu);
    return mg_errf(err, err_len, rc, "cannot create a condition: %s",
                   uv_strerror(rc));
  }
  sh->async = malloc(sizeof *sh->async);
  rc = sh->async ? uv_async_init(rt->loop, sh->async, on_async) : UV_ENOMEM;
  if (rc < 0) {
    free(sh->async);
    sh->async = NULL;
    uv_cond_destroy(&sh->cv);
    uv_mutex_destroy(&sh->mu);
    return mg_errf(err, err_len, rc, "cannot create an async handle: %s",
                   uv_strerror(rc));
  }
  sh->async->data = rt;
  uv_unref((uv_handle_t *)sh->async); /* never keeps the loop alive */
  sh->live = 1;
  return 0;
}

void mg__rt_share_enter(mg_runtime *rt, int in_loop) {
  mg__rt_share *sh = &rt->share;
  uv_mutex_lock(&sh->mu);
  sh->active = 1;
  sh->owner = uv_thread_self();
  sh->in_loop = in_loop;
  if (in_loop && sh->head) /* requests queued during the top level first */
    uv_async_send(sh->async);
  uv_mutex_unlock(&sh->mu);
}

void mg__rt_share_leave(mg_runtime *rt) {
  mg__rt_share *sh = &rt->share;
  uv_mutex_lock(&sh->mu);
  sh->active = 0;
  sh->in_loop = 0;
  drain(rt, 0);
  uv_mutex_unlock(&sh->mu);
}

void mg__rt_share_close(mg_runtime *rt) {
  mg__rt_share *sh = &rt->share;
  if (!sh->live)
    return;
  uv_mutex_lock(&sh->mu);
  sh->closed = 1;
  drain(rt, 0);
  uv_mutex_unlock(&sh->mu);
  if (sh->async) {
    uv_close((uv_handle_t *)sh->async, free_on_close);
    sh->async = NULL;
  }
}

void mg__rt_share_destroy(mg_runtime *rt) {
  mg__rt_share *sh = &rt->share;
  if (!sh->live)
    return;
  uv_cond_destroy(&sh->cv);
  uv_mutex_destroy(&sh->mu);
  sh->live = 0;
}

int mg_runtime_call(mg_runtime *rt, int (*fn)(mg_runtime *rt, void *ud),
                    void *ud) {
  mg__rt_share *sh = &rt->share;
  uv_thread_t self = uv_thread_self();
  uv_mutex_lock(&sh->mu);
  if (sh->closed) {
    uv_mutex_unlock(&sh->mu);
    return -ESHUTDOWN;
  }
  if (sh->active && uv_thread_equal(&sh->owner, &self)) {
    uv_mutex_unlock(&sh->mu); /* the owner itself: at once */
    return fn(rt, ud);
  }
  if (!sh->active) { /* nobody owns it: run here, in turn */
    int rc = fn(rt, ud);
    uv_mutex_unlock(&sh->mu);
    return rc;
  }
  mg__rt_req r = {fn, ud, 0, 0, NULL};
  if (sh->tail)
    sh->tail->next = &r;
  else
    sh->head = &r;
  sh->tail = &r;
  if (sh->in_loop)
    uv_async_send(sh->async);
  while (!r.done)
    uv_cond_wait(&sh->cv, &sh->mu);
  uv_mutex_unlock(&sh->mu);
  return r.rc;
}

/* ------------------------------------------------------------ stores */

typedef struct find_req {
  const char *name;
  mg_store **out;
  char *err;
  size_t err_len;
} find_req;

static int find_fn(mg_runtime *rt, void *ud) {
  find_req *q = ud;
  return mg_lua_store_find(rt->env, q->name, q->out, q->err, q->err_len);
}

int mg_runtime_store(mg_runtime *rt, const char *name, mg_store **out,
                     char *err, size_t err_len) {
  find_req q = {name, out, err, err_len};
  *out = NULL;
  int rc = mg_runtime_call(rt, find_fn, &q);
  if (rc == -ESHUTDOWN)
    mg_errf(err, err_len, rc, "the runtime is being freed");
  return rc;
}

/* mg_store_add_flat's arguments (mg/mg_ffi.h). */
typedef struct flat_add {
  const char *role;
  const void *content;
  size_t content_len;
  const char *source, *group;
  int pinned;
  int64_t priority, tokens;
  const char *meta;
  size_t meta_len;
  int64_t id;
} flat_add;

/* One change of a store on the owner: which, and its arguments. */
typedef struct change_req {
  enum { CH_ADD, CH_ADD_FLAT, CH_REMOVE, CH_CLEAR, CH_PRUNE, CH_LIMITS } kind;
  mg_store *s;
  const mg_store_input *in;
  const mg_store_limits *limits;
  uint64_t n;    /* the id to remove, the count to keep */
  uint64_t *out; /* the new id, how many were removed */
  mg_store_error *e;
  char *err;
  size_t err_len;
  flat_add *flat;
} change_req;

static int change_op(mg_store *s, void *ud) {
  change_req *q = ud;
  switch (q->kind) {
  case CH_ADD:
    return mg_store_add(s, q->in, q->out, q->e);
  case CH_ADD_FLAT: {
    flat_add *f = q->flat;
    f->id = mg_store_add_flat(s, f->role, f->content, f->content_len, f->source,
                              f->group, f->pinned, f->priority, f->tokens,
                              f->meta, f->meta_len, q->e);
    return f->id < 0 ? (int)f->id : 0;
  }
  case CH_REMOVE:
    return mg_store_remove(s, q->n, q->err, q->err_len);
  case CH_CLEAR:
    return mg_store_clear(s, q->out);
  case CH_PRUNE:
    return mg_store_prune(s, q->n, q->out, q->err, q->err_len);
  case CH_LIMITS:
    return mg_store_set_limits(s, q->limits, q->err, q->err_len);
  }
  return -EINVAL;
}

static int change_fn(mg_runtime *rt, void *ud) {
  change_req *q = ud;
  return mg_lua_store_call(rt->env, q->s, change_op, q);
}

/* Run a change on the owner; a refused call says why in err or e. */
static int change(mg_runtime *rt, change_req *q) {
  int rc = mg_runtime_call(rt, change_fn, q);
  if (rc == -ESHUTDOWN) {
    if (q->e) {
      memset(q->e, 0, sizeof *q->e);
      q->e->code = rc;
      mg_errf(q->e->message, sizeof q->e->message, rc,
              "the runtime is being freed");
    }
    mg_errf(q->err, q->err_len, rc, "the runtime is being freed");
  }
  return rc;
}

int mg_runtime_store_add(mg_runtime *rt, mg_store *s, const mg_store_input *in,
                         uint64_t *out_id, mg_store_error *e) {
  change_req q = {CH_ADD, s, in, NULL, 0, out_id, e, NULL, 0, NULL};
  return change(rt, &q);
}

int64_t mg_runtime_store_add_flat(mg_runtime *rt, mg_store *s, const char *role,
                                  const void *content, size_t content_len,
                                  const char *source, const char *group,
                                  int pinned, int64_t priority, int64_t tokens,
                                  const char *meta, size_t meta_len,
                                  mg_store_error *e) {
  flat_add f = {role,     content, content_len, source,   group, pinned,
                priority, tokens,  meta,        meta_len, 0};
  change_req q = {CH_ADD_FLAT, s, NULL, NULL, 0, NULL, e, NULL, 0, &f};
  int rc = change(rt, &q);
  return rc < 0 ? rc : f.id;
}

int mg_runtime_store_remove(mg_runtime *rt, mg_store *s, uint64_t id, char *err,
                            size_t err_len) {
  change_req q = {CH_REMOVE, s, NULL, NULL, id, NULL, NULL, err, err_len, NULL};
  return change(rt, &q);
}

int mg_runtime_store_clear(mg_runtime *rt, mg_store *s, uint64_t *out_removed) {
  change_req q = {CH_CLEAR, s, NULL, NULL, 0, out_removed, NULL, NULL, 0, NULL};
  return change(rt, &q);
}

int mg_runtime_store_prune(mg_runtime *rt, mg_store *s, uint64_t keep_count,
                           uint64_t *out_removed, char *err, size_t err_len) {
  change_req q = {CH_PRUNE,    s,    NULL, NULL,   keep_count,
                  out_removed, NULL, err,  err_len};
  return change(rt, &q);
}

int mg_runtime_store_set_limits(mg_runtime *rt, mg_store *s,
                                const mg_store_limits *limits, char *err,
                                size_t err_len) {
  change_req q = {CH_LIMITS, s,    NULL, limits,  0,
                  NULL,      NULL, err,  err_len, NULL};
  return change(rt, &q);
}

/* ------------------------------------------------------------ shutdown */

static int shutdown_fn(mg_runtime *rt, void *ud) {
  mg_runtime_shutdown(rt, *(int *)ud);
  return 0;
}

int mg_runtime_request_shutdown(mg_runtime *rt, int code) {
  return mg_runtime_call(rt, shutdown_fn, &code);
}
