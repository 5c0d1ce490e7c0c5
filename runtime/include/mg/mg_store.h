/* mg_store.h — the bounded context store (core layer: no Lua, no libuv;
 * jansson for the archive and snapshots, pthreads for the lock).
 *
 * A named, in-memory store of messages with exact, incremental size
 * accounting and hard limits (seed 2, DESIGN.md "Bounded context store").
 *
 * Messages. Each message has an `id` (assigned at insert, increasing, never
 * reused), `role`, `content` (bytes, may be binary), `source`, `group`,
 * `pinned`, `priority`, `tokens`, `time` and `meta` (a small flat map of
 * string keys to string values). role, source, group and meta are UTF-8
 * text without NUL bytes; content is any bytes.
 *
 * Size. The size of a message is
 *     content_len + strlen(role) + strlen(source) + strlen(group)
 *     + sum over meta of (strlen(key) + 1 + strlen(value) + 1)
 *     + MG_STORE_MSG_OVERHEAD
 * (meta counts the NUL of each key and value because they are stored).
 * The overhead covers the per-message bookkeeping: the header, the four
 * NULs after role/source/group/content, the allocator's own overhead and
 * the message's share of the id and group indexes. Each message is ONE
 * allocation (header + all strings inline), so the heap that the store
 * holds between calls never exceeds `total_size_bytes` +
 * MG_STORE_HEAP_CONST (tested with a counting allocator). The total is
 * kept incrementally: nothing is recounted per add.
 *
 * max_message_size is compared with this same size (overhead included):
 * a message of 50,000 content bytes is "Message size 50256 exceeds limit
 * of 1024" when it has no role. `tokens` is given by the caller or
 * estimated ONCE at insert (default: ceil(content_len / 4); or the
 * options' estimate_tokens, which may fail: see mg_store_estimate_fn); it
 * is never recomputed, not even during eviction.
 *
 * Order. Iteration is insertion order, oldest first. A strategy's
 * replacement message (e.g. a summary) takes the place of the earliest
 * message it evicts and gets a fresh id, so order is not always id order.
 *
 * Groups. Messages with the same non-empty `group` (a tool call and all
 * its results, parallel calls too) are evicted together, never split, by
 * strategies and by mg_store_prune. mg_store_remove (an explicit request
 * by id) removes only that id.
 *
 * Atomicity. Every mutation is all or nothing: a rejected add, a failed
 * strategy, an archive that cannot be written, an on_evict callback that
 * fails — each leaves the store exactly as it was (same messages, ids,
 * totals and counters — only rejected_count counts the failure — and the
 * next id is not consumed).
 *
 * Threads. Every public function takes the store's mutex. Callbacks
 * (strategy, on_evict, the token estimator of a replacement, mg_store_read's
 * function) run with the lock held: from inside them the read accessors
 * work (on the same thread, without re-locking) and every mutation of the
 * same store returns MG_EBUSY instead of deadlocking. on_warn runs after
 * the change is complete and the lock released, so it may call anything.
 * The token estimator and the clock of an add run before the lock is
 * taken (mg_store_estimate_fn says exactly when the estimator runs).
 * Views (mg_store_msg) point into the store and stay valid until the next
 * mutation of the store by any thread: with several threads, read inside
 * mg_store_read() or copy what you need.
 *
 * Nothing is lost silently: messages removed by a strategy or by
 * mg_store_prune reach the on_evict callback and/or the JSONL archive
 * BEFORE they are freed; when either fails, the operation fails and the
 * store is unchanged. mg_store_remove and mg_store_clear are explicit
 * deletions by the caller and are not archived. Formats: docs/store-format.md.
 */
#ifndef MG_STORE_H
#define MG_STORE_H

#include "mg/mg_api.h"

#include <stddef.h>
#include <stdint.h>

#include "mg/mg_log.h"
#include "mg/mg_name.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ constants */

/* Accounted bytes per message on top of what it holds (see above). */
#define MG_STORE_MSG_OVERHEAD 256u
/* Heap the store may hold beyond total_size_bytes between calls: the store
 * object, the minimum index tables and the copy of the archive path. (The
 * archive's FILE, when one is open, is allocated by libc: not counted.) */
#define MG_STORE_HEAP_CONST 8192u
/* At most this many meta entries per message. */
#define MG_STORE_META_MAX 32u
/* Longest store name, in bytes. Store names follow the one core name rule
 * (mg_name.h): MG_NAME_ACCEPTED. */
#define MG_STORE_NAME_MAX MG_NAME_MAX

#define MG_STORE_DEFAULT_MAX_MESSAGES 1000u
#define MG_STORE_MIN_MAX_MESSAGES 1u
#define MG_STORE_DEFAULT_MAX_MESSAGE_SIZE 1048576u /* 1 MiB */
#define MG_STORE_MIN_MAX_MESSAGE_SIZE 1024u
#define MG_STORE_DEFAULT_MAX_TOTAL_SIZE 104857600u /* 100 MiB */
#define MG_STORE_MIN_MAX_TOTAL_SIZE 1024u
#define MG_STORE_DEFAULT_WARN_AT 0.8
/* Largest value of any limit: 2^63 - 1 (fits a Lua integer). */
#define MG_STORE_LIMIT_MAX ((uint64_t)INT64_MAX)
/* Largest message id (and next_id of a snapshot): ids stay Lua integers. */
#define MG_STORE_ID_MAX ((uint64_t)INT64_MAX)

/* keep_count for mg_store_prune meaning "max_messages / 2" (the seed's
 * default). */
#define MG_STORE_PRUNE_DEFAULT UINT64_MAX

/* ------------------------------------------------------------ types */

typedef struct mg_store mg_store;
typedef struct mg_store_plan mg_store_plan;   /* a strategy's answer */
typedef struct mg_store_batch mg_store_batch; /* messages being evicted */

typedef enum mg_store_on_full {
  MG_STORE_ON_FULL_ERROR = 0, /* reject the add (seed behaviour) */
  MG_STORE_ON_FULL_PRUNE = 1  /* run the strategy, then add; all or nothing */
} mg_store_on_full;

typedef enum mg_store_limit_type {
  MG_STORE_LIMIT_NONE = 0, /* the failure was not a limit */
  MG_STORE_LIMIT_MESSAGE_SIZE = 1,
  MG_STORE_LIMIT_MESSAGE_COUNT = 2,
  MG_STORE_LIMIT_TOTAL_SIZE = 3,
  MG_STORE_LIMIT_TOKENS = 4
} mg_store_limit_type;

typedef enum mg_store_warn_kind {
  MG_STORE_WARN_MESSAGE_COUNT = 0,
  MG_STORE_WARN_TOTAL_SIZE = 1,
  MG_STORE_WARN_TOKENS = 2
} mg_store_warn_kind;

typedef enum mg_store_evict_reason {
  MG_STORE_EVICT_STRATEGY = 0, /* on_full = prune, or mg_store_make_room */
  MG_STORE_EVICT_PRUNE = 1     /* mg_store_prune */
} mg_store_evict_reason;

typedef enum mg_store_order {
  MG_STORE_OLDEST_FIRST = 0,
  MG_STORE_NEWEST_FIRST = 1
} mg_store_order;

/* One meta entry of an input message (borrowed C strings). */
typedef struct mg_store_meta {
  const char *key;
  const char *value;
} mg_store_meta;

/* A message to add. Caller-owned; everything is copied by mg_store_add.
 * Zero-initialise it, then set what you need: NULL strings mean "". */
typedef struct mg_store_input {
  const char *role;
  const void *content; /* may be NULL when content_len is 0 */
  size_t content_len;
  const char *source;
  const char *group; /* NULL or "" = no group */
  int pinned;        /* never evicted by a strategy or prune */
  int64_t priority;
  int has_tokens;  /* 0: estimate once at insert; 1: use `tokens` */
  uint64_t tokens; /* used when has_tokens */
  const mg_store_meta *meta;
  size_t meta_count; /* <= MG_STORE_META_MAX; keys must be distinct */
} mg_store_input;

/* A read-only view of a stored message. Its pointers point into the store
 * and stay valid until the next mutation of the store. Every string is
 * NUL-terminated (content too, after content_len bytes). */
typedef struct mg_store_msg {
  uint64_t id;
  const char *role;
  size_t role_len;
  const unsigned char *content;
  size_t content_len;
  const char *source;
  size_t source_len;
  const char *group; /* "" when the message has no group */
  size_t group_len;
  int pinned;
  int64_t priority;
  uint64_t tokens;
  double time;         /* unix seconds, set at insert */
  uint64_t size_bytes; /* accounted size, overhead included */
  size_t meta_count;
  const char *meta_packed; /* private: "key\0value\0…" */
  size_t meta_packed_len;  /* private */
} mg_store_msg;

/* Iteration cursor (plain data, private fields). */
typedef struct mg_store_iter {
  const void *node_;
  uint64_t epoch_; /* the store's mutation count when the cursor started */
  size_t position; /* of the message returned last (0 = oldest) */
  int order_;
  int started_;
} mg_store_iter;

/* Limits of a store. */
typedef struct mg_store_limits {
  uint64_t max_messages;           /* >= 1, default 1000 */
  uint64_t max_message_size_bytes; /* >= 1024, default 1 MiB */
  uint64_t max_total_size_bytes;   /* >= 1024, default 100 MiB */
  uint64_t max_tokens;             /* 0 = no token limit */
  double warn_at;                  /* 0 < warn_at <= 1, default 0.8 */
} mg_store_limits;

/* Usage statistics: the seed's ten fields first, then ours. Utilisations
 * are plain ratios and may exceed 1.0 after a limit was lowered. near_* is
 * utilisation >= warn_at. */
typedef struct mg_store_stats {
  uint64_t message_count;
  uint64_t total_size_bytes;
  uint64_t largest_message_bytes;
  uint64_t max_messages;
  uint64_t max_message_size_bytes;
  uint64_t max_total_size_bytes;
  double message_count_utilization;
  double total_size_utilization;
  int near_message_limit;
  int near_size_limit;
  /* tokens */
  uint64_t total_tokens;
  uint64_t max_tokens;      /* 0 = none */
  double token_utilization; /* 0 when there is no token limit */
  int near_token_limit;
  /* bytes split: total_size_bytes = payload_bytes + overhead_bytes */
  uint64_t payload_bytes;
  uint64_t overhead_bytes;
  uint64_t pinned_count;
  uint64_t pinned_bytes;
  uint64_t group_count; /* distinct non-empty groups present */
  double warn_at;
  uint64_t next_id;
  /* counters since creation (not saved in snapshots) */
  uint64_t evicted_count; /* removed by a strategy or prune */
  uint64_t evicted_bytes;
  uint64_t archived_count; /* records written to the archive */
  uint64_t removed_count;  /* removed by mg_store_remove / mg_store_clear */
  uint64_t replaced_count; /* replacement messages inserted by strategies */
  uint64_t rejected_count; /* adds that failed */
} mg_store_stats;

/* What a strategy must free. Each field is a minimum; the plan must free
 * at least all three at once (net of its replacement message). */
typedef struct mg_store_need {
  uint64_t bytes;                 /* accounted bytes */
  uint64_t count;                 /* messages */
  uint64_t tokens;                /* tokens */
  mg_store_limit_type limit_type; /* the limit that made room necessary */
  /* When room is made for an add: the group of the message being added
   * (NULL when it has none). That group is never evicted to make room for
   * its own member — a tool call is not archived while its results still
   * arrive — so strategies must not choose it (mg_store_plan_evict
   * refuses it with MG_EPINNED). */
  const char *group;
  size_t group_len;
  int adding;              /* 1: making room for an add (below), 0: make_room */
  uint64_t incoming_bytes; /* accounted size of the message being added */
  uint64_t incoming_tokens; /* its tokens */
} mg_store_need;

/* A structured error from mg_store_add / mg_store_make_room. `message`
 * follows the seed ("Message count 3 exceeds limit of 3"); when the store
 * tried to make room and failed, the reason follows after ": ". A token
 * total or an id that would pass 2^63 - 1 is not a limit: -EOVERFLOW,
 * limit_type NONE, "store 'ctx': the token total would overflow: …". */
typedef struct mg_store_error {
  int code;                       /* = the return value */
  mg_store_limit_type limit_type; /* NONE when no limit was involved */
  uint64_t current; /* a limit's use; for -EOVERFLOW the value that would
                     * be reached; else 0 */
  uint64_t limit;   /* a limit's value; for -EOVERFLOW the most allowed */
  char message[512];
  char details[512];
} mg_store_error;

/* ------------------------------------------------------------ callbacks */

/* A strategy: look at the store through `view` (read accessors only) and
 * fill `plan` with mg_store_plan_evict() / mg_store_plan_replace(). Return
 * 0, or a negative code with a message in err. It runs with the store
 * locked; mutations of the store from inside return MG_EBUSY. C then
 * validates and applies the plan atomically (see mg_store_plan_evict). The
 * plan (owned by the store) is valid only during the call. Callbacks must
 * return normally (a Lua binding catches its errors with pcall). */
typedef int (*mg_store_strategy_fn)(void *ud, const mg_store *view,
                                    const mg_store_need *need,
                                    mg_store_plan *plan, char *err,
                                    size_t err_len);

/* Told about messages BEFORE they are freed (store locked, read-only; the
 * batch and its views are valid only during the call).
 * Return 0, or a negative code with a message in err: then the eviction
 * fails and the store is unchanged. */
typedef int (*mg_store_evict_fn)(void *ud, const mg_store *view,
                                 const mg_store_batch *batch,
                                 mg_store_evict_reason reason, char *err,
                                 size_t err_len);

/* A usage dimension crossed warn_at upwards (once per crossing; re-armed
 * when it falls back below). Runs after the lock was released, so it may
 * call any store function (prune, say) — but must not free the store.
 * `stats` is a snapshot taken when the crossing happened. */
typedef void (*mg_store_warn_fn)(void *ud, mg_store *store,
                                 mg_store_warn_kind kind,
                                 const mg_store_stats *stats);

/* Token estimator: the tokens of a message given without them
 * (has_tokens = 0). Store them in *tokens (at most MG_STORE_LIMIT_MAX) and
 * return 0, or return a negative code with a message in err (err_len bytes,
 * empty on entry). It is called once per such message, never again (not
 * during eviction, not by stats), and at exactly these points:
 *  - mg_store_add: on the caller's thread BEFORE the store is locked
 *    (other threads are not held up; the estimator may even call the
 *    store), after `in` was validated and only when the message is not
 *    larger than max_message_size, so the add may still fail afterwards
 *    for a limit. An add from inside one of the store's callbacks is
 *    MG_EBUSY at once, without calling it.
 *  - mg_store_plan_replace: for a strategy's replacement message without
 *    tokens, on the strategy's thread WITH the store locked, inside the
 *    strategy's call: the read accessors work, mutations of the store
 *    return MG_EBUSY.
 *  - mg_store_load: for a snapshot message without "tokens", before the
 *    new store is returned (no other thread can see it yet).
 * Failure: a negative code is kept; a value above MG_STORE_LIMIT_MAX is
 * -ERANGE ("estimator failed: it gave N tokens, above the maximum M"); a
 * positive return is -EINVAL. An add then fails with that code,
 * limit_type NONE and the message "store '<name>': estimator failed: <its
 * message>" (mg_strerror(code) when it wrote none); the store is unchanged
 * but for rejected_count. A replacement's failure poisons the plan with
 * the same text after "strategy '<name>' gave a replacement whose tokens
 * could not be estimated: ", so the add or make_room fails with that code.
 * A load fails with it, naming the file and the message. */
typedef int (*mg_store_estimate_fn)(void *ud, const mg_store_input *in,
                                    uint64_t *tokens, char *err,
                                    size_t err_len);

/* Clock: unix seconds. */
typedef double (*mg_store_clock_fn)(void *ud);

/* Allocator. `size` / `old_size` are what was asked for that block. */
typedef struct mg_store_alloc {
  void *(*malloc_fn)(void *ud, size_t size);
  void *(*realloc_fn)(void *ud, void *ptr, size_t old_size, size_t new_size);
  void (*free_fn)(void *ud, void *ptr, size_t size);
  void *ud;
} mg_store_alloc;

/* Read-only function for mg_store_read. */
typedef int (*mg_store_read_fn)(void *ud, const mg_store *view);

/* Options of mg_store_new / mg_store_load. Initialise with
 * mg_store_options_init(), then change fields. Strings and the logger are
 * borrowed for the call (the store copies the name and archive path). */
typedef struct mg_store_options {
  const char *name;       /* NULL = "store" (load: the file's name); the
                           * rule of mg_name_check */
  mg_store_limits limits; /* ignored by mg_store_load (the file's win) */
  mg_store_on_full on_full;
  mg_store_strategy_fn strategy; /* NULL = built-in "oldest" (C fast path) */
  void *strategy_ud;
  const char *strategy_name; /* for messages; NULL = "oldest"/"custom" */
  mg_store_evict_fn on_evict;
  void *on_evict_ud;
  mg_store_warn_fn on_warn;
  void *on_warn_ud;
  const char *archive_path; /* append-only JSONL of evicted messages */
  int archive_fsync;        /* 1: fsync the archive after each batch */
  mg_store_estimate_fn estimate_tokens; /* NULL = ceil(content_len / 4) */
  void *estimate_ud;
  mg_store_clock_fn clock; /* NULL = CLOCK_REALTIME_COARSE (~4 ms steps) */
  void *clock_ud;
  const mg_store_alloc *alloc; /* NULL = libc; copied */
  mg_logger *logger; /* borrowed for the store's life; NULL = no logging */
} mg_store_options;

/* ------------------------------------------------------------ lifecycle */

/* Fill `opts` (caller-owned) with the defaults: the seed's limits, warn_at
 * 0.8, on_full error, strategy oldest, no callbacks, libc allocator. */
MG_API void mg_store_options_init(mg_store_options *opts);

/* Validate a set of limits: each below its minimum (or above
 * MG_STORE_LIMIT_MAX) is -EINVAL naming field, value and minimum, e.g.
 * "max_message_size 512 is below the minimum 1024". Nothing is owned. */
MG_API int mg_store_limits_validate(const mg_store_limits *limits, char *err,
                                    size_t err_len);

/* Create a store. On success *out is a new store owned by the caller
 * (free with mg_store_free). Errors: -EINVAL (bad option, message names
 * it; a name outside the rule of mg_name_check is "store name: invalid
 * name '…' (why): 1 to 64 characters from …"), -ENOMEM. */
MG_API int mg_store_new(const mg_store_options *opts, mg_store **out, char *err,
                        size_t err_len);

/* Drop the caller's reference. The last one frees the store and every
 * message (no archive, no callbacks); a store starts with one reference,
 * its creator's. NULL is a no-op; so is a call from inside one of the
 * store's own callbacks. The caller must ensure it no longer uses the
 * store (other holders keep using theirs). */
MG_API void mg_store_free(mg_store *s);

/* Take one more reference to `s` (for another holder: a second thread, a
 * host that shares a policy's store); each is dropped by mg_store_free.
 * Returns `s`. Thread-safe. */
MG_API mg_store *mg_store_retain(mg_store *s);

/* Close the store for every holder: its messages are dropped (no archive,
 * no on_evict), its callbacks detached, and every later change fails with
 * MG_ECLOSED ("store 'ctx' is closed"); reads see an empty store. Memory
 * is freed by the last mg_store_free. Idempotent; MG_EBUSY from inside
 * one of its own callbacks. Thread-safe. */
MG_API int mg_store_close(mg_store *s);

/* 1 once mg_store_close was called, else 0. */
MG_API int mg_store_closed(const mg_store *s);

/* The store's name (owned by the store). */
MG_API const char *mg_store_name(const mg_store *s);

/* ------------------------------------------------------------ mutations */

/* Add a copy of `in` (caller keeps ownership of `in`). On success *out_id
 * (may be NULL) receives the new id. On failure nothing changed and `err`
 * (may be NULL) describes it: MG_ELIMIT with limit_type / current / limit
 * (on_full = error, or the message can never fit), MG_ESTRATEGY /
 * MG_EPINNED when the strategy could not make room, the archive's or
 * on_evict's code, the estimator's code (see mg_store_estimate_fn),
 * -EOVERFLOW when the token total or the ids would pass 2^63 - 1, -EINVAL
 * for a malformed input, -ENOMEM, MG_EBUSY from inside a callback. */
MG_API int mg_store_add(mg_store *s, const mg_store_input *in, uint64_t *out_id,
                        mg_store_error *err);

/* Remove message `id` only (not its group: an explicit request). Not
 * archived. -ENOENT when there is no such id. */
MG_API int mg_store_remove(mg_store *s, uint64_t id, char *err, size_t err_len);

/* Remove every message, pinned ones too. Not archived. *out_removed (may
 * be NULL) receives the number removed. Ids are not reused afterwards. */
MG_API int mg_store_clear(mg_store *s, uint64_t *out_removed);

/* Keep the newest `keep_count` messages (MG_STORE_PRUNE_DEFAULT:
 * max_messages / 2) plus every pinned message plus every whole group that
 * has a member among those kept or a pinned member (a group straddling the
 * boundary is kept whole); evict the rest through on_evict / the archive.
 * *out_removed (may be NULL) receives the true number removed. On failure
 * (archive, on_evict) the store is unchanged. */
MG_API int mg_store_prune(mg_store *s, uint64_t keep_count,
                          uint64_t *out_removed, char *err, size_t err_len);

/* Run the store's strategy to free at least `need` (as on_full = prune
 * does before an add). *out_removed (may be NULL) receives the number of
 * messages evicted (a replacement is not subtracted). All or nothing. */
MG_API int mg_store_make_room(mg_store *s, const mg_store_need *need,
                              uint64_t *out_removed, mg_store_error *err);

/* Change the limits. Lowering below the current use is allowed: nothing is
 * evicted, stats report utilisation above 1.0, later adds must make room
 * first. Warnings are re-evaluated. -EINVAL as mg_store_limits_validate. */
MG_API int mg_store_set_limits(mg_store *s, const mg_store_limits *limits,
                               char *err, size_t err_len);

/* Replace the strategy (NULL = built-in oldest). `name` (may be NULL) is
 * copied. */
MG_API int mg_store_set_strategy(mg_store *s, mg_store_strategy_fn fn, void *ud,
                                 const char *name);

/* Change on_full. */
MG_API int mg_store_set_on_full(mg_store *s, mg_store_on_full on_full);

/* ------------------------------------------------------------ reading */

/* Number of messages. */
MG_API uint64_t mg_store_len(const mg_store *s);

/* The limits now in force (into caller-owned *out). */
MG_API void mg_store_get_limits(const mg_store *s, mg_store_limits *out);

/* Usage statistics (into caller-owned *out). Never fails. */
MG_API void mg_store_get_stats(const mg_store *s, mg_store_stats *out);

/* View of message `id`: 0, or -ENOENT. */
MG_API int mg_store_get(const mg_store *s, uint64_t id, mg_store_msg *out);

/* View of the message at `position` (0 = oldest): 0, or -ENOENT past the
 * end. Sequential positions are O(1) (a cursor is cached); a jump costs
 * O(distance from the nearest of the cursor, the oldest, the newest). */
MG_API int mg_store_at(const mg_store *s, uint64_t position, mg_store_msg *out);

/* Start iterating (oldest first or newest first). */
MG_API void mg_store_iter_init(const mg_store *s, mg_store_iter *it,
                               mg_store_order order);

/* Next message: 1 with *out filled and it->position set, 0 at the end, or
 * -ESTALE when the store was mutated since the iteration started. */
MG_API int mg_store_iter_next(const mg_store *s, mg_store_iter *it,
                              mg_store_msg *out);

/* Meta of a view. Iterate with *cursor = 0 first: returns 1 with *key and
 * *value set (pointing into the store), 0 when done. */
MG_API int mg_store_msg_meta_next(const mg_store_msg *m, size_t *cursor,
                                  const char **key, const char **value);
/* The value of `key`, or NULL. */
MG_API const char *mg_store_msg_meta_get(const mg_store_msg *m,
                                         const char *key);

/* Run `fn` with the store locked (a consistent read from any thread):
 * inside it, the read accessors work and views stay valid; mutations
 * return MG_EBUSY. Returns fn's return value. */
MG_API int mg_store_read(const mg_store *s, mg_store_read_fn fn, void *ud);

/* Verify every invariant: order list, id index, group rings and table,
 * accounted totals (bytes, payload, tokens, pinned) equal to the sums over
 * the messages, largest message, ids below next_id, and the limits: count
 * <= max_messages, total <= max_total_size, tokens <= max_tokens, each
 * message <= max_message_size — except for a dimension whose limit was
 * lowered below its use by mg_store_set_limits (or loaded so) and not yet
 * back within it. 0, or MG_ECORRUPT with a description in err. */
MG_API int mg_store_check(const mg_store *s, char *err, size_t err_len);

/* ------------------------------------------------------------ strategies */

/* Evict message `id` (and its whole group). Errors, which also poison the
 * plan so that it is refused even if the strategy returns 0: -ENOENT
 * unknown id, MG_EPINNED the message or a member of its group is pinned.
 * Listing an id twice is harmless. */
MG_API int mg_store_plan_evict(mg_store_plan *plan, uint64_t id);

/* Insert ONE replacement message (e.g. a summary) in place of the earliest
 * evicted message, with a fresh id; it counts against what the plan frees.
 * `in` is copied. Without tokens, its tokens come from the store's
 * estimator, called here with the store locked (mg_store_estimate_fn).
 * -EINVAL a second call or a malformed input, MG_ELIMIT larger than
 * max_message_size, the estimator's code, -ENOMEM. Errors poison the plan.
 */
MG_API int mg_store_plan_replace(mg_store_plan *plan, const mg_store_input *in);

/* Messages of a batch given to on_evict, oldest first. */
MG_API size_t mg_store_batch_len(const mg_store_batch *b);
/* View of the i-th (0-based): 0, or -ENOENT. Sequential access is O(1). */
MG_API int mg_store_batch_at(const mg_store_batch *b, size_t i,
                             mg_store_msg *out);

/* ------------------------------------------------------------ snapshots */

/* Write a snapshot crash-safely: `<path>.tmp.<pid>`, fflush, fsync,
 * rename over `path`, fsync the directory. On failure `path` is untouched
 * and the temp file removed. Negative errno with the path in err (-EINVAL
 * an empty path, -ENAMETOOLONG one of PATH_MAX bytes or more). */
MG_API int mg_store_save(const mg_store *s, const char *path, char *err,
                         size_t err_len);

/* Load a snapshot into a new store (*out, caller-owned). The file gives
 * the name (unless opts->name is set; the file's must follow the name rule
 * all the same), limits, next id and messages; opts (NULL = defaults)
 * gives everything else (callbacks, allocator, archive, on_full). Errors
 * name the file: -errno (cannot open or read it; -EISDIR a directory),
 * MG_ECORRUPT (empty, truncated, not JSON — with jansson's
 * line/column/position —, not an mgrun store, invalid field or name),
 * MG_EVERSION (a version other than 1), -EINVAL (a bad option in opts),
 * the estimator's code for a message without tokens
 * (mg_store_estimate_fn). */
MG_API int mg_store_load(const char *path, const mg_store_options *opts,
                         mg_store **out, char *err, size_t err_len);

/* ------------------------------------------------------------ names */

/* "message_size", "message_count", "total_size", "tokens" ("none"). */
MG_API const char *mg_store_limit_name(mg_store_limit_type t);
/* "message_count", "total_size", "tokens". */
MG_API const char *mg_store_warn_name(mg_store_warn_kind k);
/* "strategy", "prune". */
MG_API const char *mg_store_evict_reason_name(mg_store_evict_reason r);

#ifdef __cplusplus
}
#endif
#endif
