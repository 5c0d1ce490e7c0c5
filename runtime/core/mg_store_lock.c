/* mg_store_lock.c — the store's lock (core layer): callbacks run with it
 * held, and a thread inside one of them has a frame here, so reads of
 * that store from the callback skip the lock and changes are refused
 * (MG_EBUSY); a closed store refuses changes (MG_ECLOSED). What a
 * mutation leaves to do — freeing blocks, firing warnings — runs after
 * the lock is released. */
#include "mg__store.h"

#include <stdint.h>
#include <string.h>

#include "mg/mg_error.h"
#include "mg/mg_log.h"

/* ------------------------------------------------------------ locking */

/* Callbacks run with the store locked. A thread inside one of them has a
 * frame here: reads of that store skip the lock, mutations are refused. */
_Thread_local mg__frame *mg__frames;

int mg__held_here(const mg_store *s) {
  for (const mg__frame *f = mg__frames; f; f = f->prev)
    if (f->s == s)
      return 1;
  return 0;
}
void mg__frame_push(mg__frame *f, const mg_store *s) {
  f->s = s;
  f->prev = mg__frames;
  mg__frames = f;
}
void mg__frame_pop(mg__frame *f) {
  mg__frames = f->prev;
}

/* Read lock: returns 1 when taken (unlock after), 0 when this thread
 * already holds it from a callback. */
int mg__rlock(const mg_store *s) {
  if (mg__frames && mg__held_here(s))
    return 0;
  pthread_mutex_lock(&((mg_store *)s)->mu);
  return 1;
}
void mg__runlock(const mg_store *s, int taken) {
  if (taken)
    pthread_mutex_unlock(&((mg_store *)s)->mu);
}

int mg__wlock(mg_store *s) {
  if (mg__frames && mg__held_here(s))
    return MG_EBUSY;
  pthread_mutex_lock(&s->mu);
  if (s->closed) {
    pthread_mutex_unlock(&s->mu);
    return MG_ECLOSED;
  }
  return 0;
}

#define MG__BUSY "store '%s' is busy: no change from inside its own callback"
#define MG__CLOSED "store '%s' is closed"

int mg__wlock_err(mg_store *s, char *err, size_t err_len) {
  int rc = mg__wlock(s);
  return rc ? mg_errf(err, err_len, rc, rc == MG_EBUSY ? MG__BUSY : MG__CLOSED,
                      s->name)
            : 0;
}

int mg__wlock_e(mg_store *s, mg_store_error *e) {
  int rc = mg__wlock(s);
  if (rc)
    mg__lerr(e, rc, MG_STORE_LIMIT_NONE, 0, 0, NULL,
             rc == MG_EBUSY ? MG__BUSY : MG__CLOSED, s->name);
  return rc;
}

void mg__wunlock_slow(mg_store *s, mg__op *op) {
  mg_store_warn_fn warn = s->on_warn;
  void *wud = s->on_warn_ud;
  mg_logger *lg = s->logger;
  unsigned fire = op->fire;
  char name[sizeof s->name];
  if (fire)
    memcpy(name, s->name, sizeof name);
  pthread_mutex_unlock(&s->mu);
  for (mg__msg *m = op->grave, *nx; m; m = nx) {
    nx = m->vnext;
    mg__free_block(s, m);
  }
  op->grave = NULL;
  if (!fire)
    return;
  static const struct {
    unsigned bit;
    mg_store_warn_kind kind;
    const char *event;
  } dims[] = {
      {MG__D_COUNT, MG_STORE_WARN_MESSAGE_COUNT, "approaching_message_limit"},
      {MG__D_TOTAL, MG_STORE_WARN_TOTAL_SIZE, "approaching_size_limit"},
      {MG__D_TOKENS, MG_STORE_WARN_TOKENS, "approaching_token_limit"}};
  const mg_store_stats *st = &op->stats;
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    if (!(fire & dims[i].bit))
      continue;
    if (lg && mg_logger_level(lg) <= MG_LOG_WARN) {
      uint64_t cur = 0, lim = 0;
      double util = 0;
      if (dims[i].bit == MG__D_COUNT) {
        cur = st->message_count, lim = st->max_messages;
        util = st->message_count_utilization;
      } else if (dims[i].bit == MG__D_TOTAL) {
        cur = st->total_size_bytes, lim = st->max_total_size_bytes;
        util = st->total_size_utilization;
      } else {
        cur = st->total_tokens, lim = st->max_tokens;
        util = st->token_utilization;
      }
      mg_log_field f[] = {MG_LF_STR("store", name), MG_LF_UINT("current", cur),
                          MG_LF_UINT("limit", lim),
                          MG_LF_DBL("utilization", util),
                          MG_LF_DBL("warn_at", st->warn_at)};
      mg_log(lg, MG_LOG_WARN, dims[i].event, f, sizeof f / sizeof f[0]);
    }
    if (warn)
      warn(wud, s, dims[i].kind, st);
  }
}

