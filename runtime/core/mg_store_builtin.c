/* mg_store_builtin.c — the shipped pruning strategies in C, by name (core
 * layer; mg/mg_store_builtin.h). Each is a line-for-line port of its Lua
 * twin in scripts/mg/strategies.lua over the same units (mg_store_units),
 * so the two choose the same messages; tests/python/test_strategies.py
 * runs both on the same history and compares what is left. Only the
 * store's public API is used.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mg/mg_error.h"
#include "mg/mg_ffi.h"
#include "mg/mg_store_builtin.h"

/* ------------------------------------------------------------ parsing */

static const char *skip_sp(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

static int bad_spec(const char *spec, const char *why, char *err,
                    size_t err_len) {
  return mg_errf(err, err_len, -EINVAL, "strategy '%.80s': %s (accepted: %s)",
                 spec, why, MG_STORE_BUILTIN_ACCEPTED);
}

/* A non-negative integer up to 2^63 - 1 at *p; advances *p. */
static int parse_count(const char **p, uint64_t *out) {
  const char *q = *p;
  uint64_t v = 0;
  if (!isdigit((unsigned char)*q))
    return -1;
  for (; isdigit((unsigned char)*q); q++) {
    unsigned d = (unsigned)(*q - '0');
    if (v > (MG_STORE_LIMIT_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *p = q;
  *out = v;
  return 0;
}

/* A non-negative finite decimal number (no exponent, no sign) at *p. */
static int parse_seconds(const char **p, double *out) {
  const char *q = *p;
  size_t digits = 0;
  while (isdigit((unsigned char)*q))
    q++, digits++;
  if (*q == '.') {
    q++;
    while (isdigit((unsigned char)*q))
      q++, digits++;
  }
  if (!digits || q - *p > 40)
    return -1;
  char buf[48];
  memcpy(buf, *p, (size_t)(q - *p));
  buf[q - *p] = '\0';
  double v = strtod(buf, NULL);
  if (!isfinite(v))
    return -1;
  *p = q;
  *out = v;
  return 0;
}

int mg_store_builtin_parse(const char *spec, mg_store_builtin *out, char *err,
                           size_t err_len) {
  static const struct {
    const char *name;
    mg_store_builtin_kind kind;
    int args; /* 0 none, 1 a count, 2 seconds [, strict] */
  } names[] = {{"oldest", MG_STRATEGY_OLDEST, 0},
               {"keep_last", MG_STRATEGY_KEEP_LAST, 1},
               {"lowest_priority_first", MG_STRATEGY_LOWEST_PRIORITY_FIRST, 0},
               {"older_than", MG_STRATEGY_OLDER_THAN, 2},
               {"token_budget", MG_STRATEGY_TOKEN_BUDGET, 1},
               {"user_turn_start", MG_STRATEGY_USER_TURN_START, 0}};
  if (!spec)
    return bad_spec("(null)", "no strategy given", err, err_len);
  memset(out, 0, sizeof *out);
  const char *p = skip_sp(spec);
  size_t len = 0;
  while (p[len] == '_' || isalnum((unsigned char)p[len]))
    len++;
  size_t i = 0;
  for (; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i].name) == len && memcmp(names[i].name, p, len) == 0)
      break;
  if (i == sizeof names / sizeof names[0])
    return bad_spec(spec, "unknown strategy", err, err_len);
  out->kind = names[i].kind;
  p = skip_sp(p + len);
  if (names[i].args == 0) {
    if (*p)
      return bad_spec(spec, "this strategy takes no arguments", err, err_len);
    snprintf(out->name, sizeof out->name, "%s", names[i].name);
    return 0;
  }
  if (*p != '(')
    return bad_spec(spec,
                    names[i].args == 1 ? "missing (N): a number of messages "
                                         "or tokens"
                                       : "missing (SECONDS)",
                    err, err_len);
  p = skip_sp(p + 1);
  if (names[i].args == 1) {
    if (parse_count(&p, &out->n) < 0)
      return bad_spec(spec, "N must be a non-negative integer up to 2^63-1",
                      err, err_len);
    snprintf(out->name, sizeof out->name, "%s(%" PRIu64 ")", names[i].name,
             out->n);
  } else {
    if (parse_seconds(&p, &out->seconds) < 0)
      return bad_spec(spec, "SECONDS must be a non-negative number", err,
                      err_len);
    p = skip_sp(p);
    if (*p == ',') {
      p = skip_sp(p + 1);
      if (strncmp(p, "strict", 6) != 0)
        return bad_spec(spec, "the second argument can only be 'strict'", err,
                        err_len);
      out->strict = 1;
      p += 6;
    }
    snprintf(out->name, sizeof out->name, "%s(%g)", names[i].name,
             out->seconds);
  }
  p = skip_sp(p);
  if (*p != ')' || *skip_sp(p + 1))
    return bad_spec(spec, "expected ')' at the end", err, err_len);
  return 0;
}

/* ------------------------------------------------------------ helpers */

typedef struct acc {
  uint64_t count, bytes, tokens;
} acc;

static int evictable(const mg_store_unit *u, const mg_store_need *need) {
  if (u->pinned)
    return 0;
  return !need->group || !need->group_len || u->group_len != need->group_len ||
         memcmp(u->group, need->group, need->group_len) != 0;
}

static int enough(const acc *a, const mg_store_need *need) {
  return a->count >= need->count && a->bytes >= need->bytes &&
         a->tokens >= need->tokens;
}

static void take(mg_store_plan *plan, const mg_store_unit *u, acc *a) {
  mg_store_plan_evict(plan, u->id); /* an error poisons the plan */
  a->count += u->count;
  a->bytes += u->bytes;
  a->tokens += u->tokens;
}

static double real_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Ranking for lowest_priority_first: by priority, then store order. */
typedef struct rank {
  int64_t priority;
  size_t k;
} rank;

static int rank_cmp(const void *a, const void *b) {
  const rank *x = a, *y = b;
  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  return x->k < y->k ? -1 : x->k > y->k;
}

/* ------------------------------------------------------------ strategies */

static void s_oldest(const mg_store_unit *u, size_t n,
                     const mg_store_need *need, mg_store_plan *plan) {
  acc a = {0, 0, 0};
  for (size_t k = 0; k < n && !enough(&a, need); k++)
    if (evictable(&u[k], need))
      take(plan, &u[k], &a);
}

static void s_keep_last(const mg_store_builtin *b, const mg_store_unit *u,
                        size_t n, const mg_store_need *need,
                        mg_store_plan *plan) {
  uint64_t unpinned = 0;
  for (size_t k = 0; k < n; k++)
    if (evictable(&u[k], need))
      unpinned += u[k].count;
  acc a = {0, 0, 0};
  for (size_t k = 0; k < n; k++) {
    if (unpinned - a.count <= b->n && enough(&a, need))
      break;
    if (evictable(&u[k], need))
      take(plan, &u[k], &a);
  }
}

static int s_lowest_priority(const mg_store_unit *u, size_t n,
                             const mg_store_need *need, mg_store_plan *plan) {
  rank *r = malloc((n ? n : 1) * sizeof *r);
  if (!r)
    return -ENOMEM;
  size_t m = 0;
  for (size_t k = 0; k < n; k++)
    if (evictable(&u[k], need))
      r[m].priority = u[k].priority, r[m].k = k, m++;
  qsort(r, m, sizeof *r, rank_cmp);
  acc a = {0, 0, 0};
  for (size_t j = 0; j < m && !enough(&a, need); j++)
    take(plan, &u[r[j].k], &a);
  free(r);
  return 0;
}

static int s_older_than(const mg_store_builtin *b, const mg_store_unit *u,
                        size_t n, const mg_store_need *need,
                        mg_store_plan *plan) {
  double cut = (b->now != 0 ? b->now : real_now()) - b->seconds;
  unsigned char *taken = calloc(n ? n : 1, 1);
  if (!taken)
    return -ENOMEM;
  acc a = {0, 0, 0};
  for (size_t k = 0; k < n; k++)
    if (evictable(&u[k], need) && u[k].time < cut) {
      take(plan, &u[k], &a);
      taken[k] = 1;
    }
  if (!b->strict)
    for (size_t k = 0; k < n && !enough(&a, need); k++)
      if (evictable(&u[k], need) && !taken[k])
        take(plan, &u[k], &a);
  free(taken);
  return 0;
}

static void s_token_budget(const mg_store_builtin *b, const mg_store *view,
                           const mg_store_unit *u, size_t n,
                           const mg_store_need *need, mg_store_plan *plan) {
  mg_store_stats st;
  mg_store_get_stats(view, &st);
  acc a = {0, 0, 0};
  for (size_t k = 0; k < n; k++) {
    if (st.total_tokens - a.tokens <= b->n && enough(&a, need))
      break;
    if (evictable(&u[k], need))
      take(plan, &u[k], &a);
  }
}

static void s_user_turn_start(const mg_store_unit *u, size_t n,
                              const mg_store_need *need, mg_store_plan *plan) {
  acc a = {0, 0, 0};
  size_t k = 0;
  for (; k < n && !enough(&a, need); k++)
    if (evictable(&u[k], need))
      take(plan, &u[k], &a);
  for (; k < n; k++)
    if (evictable(&u[k], need)) {
      if (u[k].role_len == 4 && memcmp(u[k].role, "user", 4) == 0)
        break;
      take(plan, &u[k], &a);
    }
}

int mg_store_builtin_strategy(void *ud, const mg_store *view,
                              const mg_store_need *need, mg_store_plan *plan,
                              char *err, size_t err_len) {
  const mg_store_builtin *b = ud;
  uint64_t count = mg_store_len(view);
  if (count > SIZE_MAX / sizeof(mg_store_unit))
    return mg_errf(err, err_len, -ENOMEM, "too many messages to rank");
  mg_store_unit *u = malloc((size_t)(count ? count : 1) * sizeof *u);
  if (!u)
    return mg_errf(err, err_len, -ENOMEM,
                   "out of memory ranking %" PRIu64 " messages", count);
  size_t n = 0;
  int rc = mg_store_units(view, u, (size_t)count, NULL, 0, &n, NULL);
  if (rc == 0) {
    switch (b->kind) {
    case MG_STRATEGY_KEEP_LAST:
      s_keep_last(b, u, n, need, plan);
      break;
    case MG_STRATEGY_LOWEST_PRIORITY_FIRST:
      rc = s_lowest_priority(u, n, need, plan);
      break;
    case MG_STRATEGY_OLDER_THAN:
      rc = s_older_than(b, u, n, need, plan);
      break;
    case MG_STRATEGY_TOKEN_BUDGET:
      s_token_budget(b, view, u, n, need, plan);
      break;
    case MG_STRATEGY_USER_TURN_START:
      s_user_turn_start(u, n, need, plan);
      break;
    default:
      s_oldest(u, n, need, plan);
    }
  }
  free(u);
  if (rc)
    return mg_errf(err, err_len, rc,
                   "out of memory ranking %" PRIu64 " messages", count);
  return 0;
}

void mg_store_builtin_options(const mg_store_builtin *b,
                              mg_store_options *opts) {
  if (b->kind == MG_STRATEGY_OLDEST) {
    opts->strategy = NULL; /* the store's own fast path */
    opts->strategy_ud = NULL;
    opts->strategy_name = "oldest";
    return;
  }
  opts->strategy = mg_store_builtin_strategy;
  opts->strategy_ud = (void *)b;
  opts->strategy_name = b->name;
}

int mg_store_builtin_set(mg_store *s, const mg_store_builtin *b) {
  if (b->kind == MG_STRATEGY_OLDEST)
    return mg_store_set_strategy(s, NULL, NULL, "oldest");
  return mg_store_set_strategy(s, mg_store_builtin_strategy, (void *)b,
                               b->name);
}
