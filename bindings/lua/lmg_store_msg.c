/* lmg_store_msg.c — the store's messages between Lua and C: a message
 * table read into an mg_store_input, and messages, stats and add errors
 * pushed as tables (bindings layer). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lua/mg__lstore.h"

static const char *const field_names[MG_LF_COUNT] = {
    "role",   "content",  "source", "group",
    "pinned", "priority", "tokens", "meta"};
#define FIELDS_ACCEPTED                                                        \
  "role, content, source, group, pinned, priority, tokens, meta"

double mg_lstore_unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* An integer-valued number at idx (1.0 counts; 1.5 does not). */
int mg_lstore_get_int(lua_State *L, int idx, lua_Integer *out) {
  int ok = 0;
  *out = lua_tointegerx(L, idx, &ok);
  return ok && lua_type(L, idx) == LUA_TNUMBER;
}

static void setlstr(lua_State *L, const char *k, const char *v, size_t n) {
  lua_pushlstring(L, v, n);
  lua_setfield(L, -2, k);
}

/* A message (copied) as a table: id, role, content, source (nil when
 * empty), group (nil when none), pinned, priority, tokens, time, size,
 * meta (nil when empty). */
void mg_lstore_push_msg(lua_State *L, const mg_store_msg *m) {
  lua_createtable(L, 0, 11);
  mg_lua_setu64(L, "id", m->id);
  setlstr(L, "role", m->role, m->role_len);
  setlstr(L, "content", (const char *)m->content, m->content_len);
  if (m->source_len)
    setlstr(L, "source", m->source, m->source_len);
  if (m->group_len)
    setlstr(L, "group", m->group, m->group_len);
  mg_lua_setbool(L, "pinned", m->pinned);
  mg_lua_setint(L, "priority", (lua_Integer)m->priority);
  mg_lua_setu64(L, "tokens", m->tokens);
  mg_lua_setnum(L, "time", m->time);
  mg_lua_setu64(L, "size", m->size_bytes);
  if (m->meta_count) {
    size_t cur = 0;
    const char *k, *v;
    lua_createtable(L, 0, (int)m->meta_count);
    while (mg_store_msg_meta_next(m, &cur, &k, &v))
      mg_lua_setstr(L, k, v);
    lua_setfield(L, -2, "meta");
  }
}

#define SF(name, type, member) MG_LUA_FIELD(name, type, mg_store_stats, member)
static const mg_lua_field stat_fields[] = {
    /* the seed's ten */
    SF("message_count", U64, message_count),
    SF("total_size_bytes", U64, total_size_bytes),
    SF("largest_message_bytes", U64, largest_message_bytes),
    SF("max_messages", U64, max_messages),
    SF("max_message_size_bytes", U64, max_message_size_bytes),
    SF("max_total_size_bytes", U64, max_total_size_bytes),
    SF("message_count_utilization", DOUBLE, message_count_utilization),
    SF("total_size_utilization", DOUBLE, total_size_utilization),
    SF("near_message_limit", BOOL, near_message_limit),
    SF("near_size_limit", BOOL, near_size_limit),
    /* tokens */
    SF("total_tokens", U64, total_tokens),
    SF("max_tokens", U64_NZ, max_tokens),
    SF("token_utilization", DOUBLE, token_utilization),
    SF("near_token_limit", BOOL, near_token_limit),
    /* bytes split, pins, groups */
    SF("payload_bytes", U64, payload_bytes),
    SF("overhead_bytes", U64, overhead_bytes),
    SF("pinned_count", U64, pinned_count),
    SF("pinned_bytes", U64, pinned_bytes),
    SF("group_count", U64, group_count),
    SF("warn_at", DOUBLE, warn_at),
    SF("next_id", U64, next_id),
    /* counters */
    SF("evicted_count", U64, evicted_count),
    SF("evicted_bytes", U64, evicted_bytes),
    SF("archived_count", U64, archived_count),
    SF("removed_count", U64, removed_count),
    SF("replaced_count", U64, replaced_count),
    SF("rejected_count", U64, rejected_count),
};

void mg_lstore_push_stats(lua_State *L, const mg_store_stats *st) {
  lua_createtable(L, 0, 30);
  mg_lua_set_fields(L, st, stat_fields,
                    sizeof stat_fields / sizeof stat_fields[0]);
}

int mg_lstore_push_add_error(lua_State *L, const mg_store_error *e) {
  if (e->limit_type == MG_STORE_LIMIT_NONE)
    return mg_lua_fail(L, e->code, e->message);
  lua_pushnil(L);
  lua_createtable(L, 0, 6);
  mg_lua_setstr(L, "limit_type", mg_store_limit_name(e->limit_type));
  mg_lua_setu64(L, "current", e->current);
  mg_lua_setu64(L, "limit", e->limit);
  mg_lua_setstr(L, "details", e->details);
  mg_lua_setstr(L, "message", e->message);
  mg_lua_setstr(L, "code", mg_err_name(e->code));
  luaL_setmetatable(L, MG_LSTORE_ERROR_MT);
  lua_pushstring(L, mg_store_limit_name(e->limit_type));
  return 3;
}

int mg_lstore_error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "message");
  if (!lua_isstring(L, -1))
    lua_pushliteral(L, "store error");
  return 1;
}

static int parse_fail(char *err, size_t len, int kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int parse_fail(char *err, size_t len, int kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return kind;
}

/* Keep the string at v alive in m's anchor table (if any). */
static void keep(lua_State *L, mg_lstore_msg *m, int v) {
  if (!m->anchor)
    return;
  lua_pushvalue(L, v);
  lua_rawseti(L, m->anchor, ++m->anchored);
}

static int parse_text(lua_State *L, int v, const char *field, const char **out,
                      char *err, size_t len) {
  size_t n;
  if (lua_type(L, v) != LUA_TSTRING)
    return parse_fail(err, len, MG_LPARSE_MISUSE,
                      "field '%s' must be a string, got %s", field,
                      luaL_typename(L, v));
  const char *s = lua_tolstring(L, v, &n);
  if (memchr(s, 0, n))
    return parse_fail(err, len, MG_LPARSE_INVALID,
                      "field '%s' contains a NUL byte (text fields are UTF-8 "
                      "without NUL; only content may hold any bytes)",
                      field);
  *out = s;
  return MG_LPARSE_OK;
}

static int parse_meta(lua_State *L, int t, mg_lstore_msg *m, char *err,
                      size_t len) {
  if (lua_type(L, t) != LUA_TTABLE)
    return parse_fail(err, len, MG_LPARSE_MISUSE,
                      "field 'meta' must be a table of strings, got %s",
                      luaL_typename(L, t));
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return parse_fail(err, len, MG_LPARSE_MISUSE,
                        "field 'meta' must map strings to strings, got a %s "
                        "key with a %s value",
                        luaL_typename(L, -2), luaL_typename(L, -1));
    if (n == MG_STORE_META_MAX)
      return parse_fail(err, len, MG_LPARSE_INVALID,
                        "meta has more than %u entries; at most %u are "
                        "accepted",
                        MG_STORE_META_MAX, MG_STORE_META_MAX);
    size_t kl, vl;
    const char *k = lua_tolstring(L, -2, &kl);
    const char *v = lua_tolstring(L, -1, &vl);
    if (memchr(k, 0, kl) || memchr(v, 0, vl))
      return parse_fail(err, len, MG_LPARSE_INVALID,
                        "meta entry '%s' contains a NUL byte", k);
    m->meta[n].key = k; /* anchored by the meta table (and m's anchor) */
    m->meta[n].value = v;
    keep(L, m, -2);
    keep(L, m, -1);
    n++;
    lua_pop(L, 1);
  }
  m->in.meta = m->meta;
  m->in.meta_count = n;
  return MG_LPARSE_OK;
}

/* Read the message table at idx into *m (strings are borrowed from the
 * table, which the caller keeps on the stack). Leaves extra values on the
 * stack. Returns MG_LPARSE_OK, MG_LPARSE_MISUSE (wrong types, unknown fields)
 * or MG_LPARSE_INVALID (data the store refuses), with a message in err. */
int mg_lstore_parse_msg(lua_State *L, int idx, const mg_lstore_keys *keys,
                        mg_lstore_msg *m, char *err, size_t len) {
  memset(&m->in, 0, sizeof m->in);
  m->anchored = 0;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE)
    return parse_fail(err, len, MG_LPARSE_MISUSE,
                      "message table expected, got %s", luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kind, f = -1;
    lua_Integer i;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      for (f = 0; f < MG_LF_COUNT && keys->p[f] != k; f++)
        ;
    }
    switch (f) {
    case MG_LF_ROLE:
      if ((kind = parse_text(L, -1, "role", &m->in.role, err, len)))
        return kind;
      keep(L, m, -1);
      break;
    case MG_LF_SOURCE:
      if ((kind = parse_text(L, -1, "source", &m->in.source, err, len)))
        return kind;
      keep(L, m, -1);
      break;
    case MG_LF_GROUP:
      if ((kind = parse_text(L, -1, "group", &m->in.group, err, len)))
        return kind;
      keep(L, m, -1);
      break;
    case MG_LF_CONTENT:
      if (lua_type(L, -1) != LUA_TSTRING)
        return parse_fail(err, len, MG_LPARSE_MISUSE,
                          "field 'content' must be a string, got %s",
                          luaL_typename(L, -1));
      m->in.content = lua_tolstring(L, -1, &m->in.content_len);
      keep(L, m, -1);
      break;
    case MG_LF_PINNED:
      if (lua_type(L, -1) != LUA_TBOOLEAN)
        return parse_fail(err, len, MG_LPARSE_MISUSE,
                          "field 'pinned' must be a boolean, got %s",
                          luaL_typename(L, -1));
      m->in.pinned = lua_toboolean(L, -1);
      break;
    case MG_LF_PRIORITY:
      if (!mg_lstore_get_int(L, -1, &i))
        return parse_fail(err, len, MG_LPARSE_MISUSE,
                          "field 'priority' must be an integer, got %s",
                          luaL_typename(L, -1));
      m->in.priority = (int64_t)i;
      break;
    case MG_LF_TOKENS:
      if (!mg_lstore_get_int(L, -1, &i) || i < 0)
        return parse_fail(err, len, MG_LPARSE_MISUSE,
                          "field 'tokens' must be a non-negative integer, got "
                          "%s",
                          lua_type(L, -1) == LUA_TNUMBER
                              ? lua_pushfstring(L, "%f", lua_tonumber(L, -1))
                              : luaL_typename(L, -1));
      m->in.has_tokens = 1;
      m->in.tokens = (uint64_t)i;
      break;
    case MG_LF_META:
      if ((kind = parse_meta(L, lua_gettop(L), m, err, len)))
        return kind;
      break;
    default:
      if (lua_type(L, -2) == LUA_TSTRING)
        return parse_fail(err, len, MG_LPARSE_MISUSE,
                          "unknown message field '%s' (accepted: %s)",
                          lua_tostring(L, -2), FIELDS_ACCEPTED);
      return parse_fail(err, len, MG_LPARSE_MISUSE,
                        "message field names must be strings, got a %s key",
                        luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
  return MG_LPARSE_OK;
}

static int push_msg_protected(lua_State *L) {
  mg_lstore_push_msg(L, lua_touserdata(L, 1));
  return 1;
}

/* Push a message read outside a callback with the collector stopped: a
 * finalizer must not change the store while its view is being copied. */
void mg_lstore_push_msg_safe(lua_State *L, const mg_store_msg *m) {
  int running = lua_gc(L, LUA_GCISRUNNING);
  if (running)
    lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, push_msg_protected);
  lua_pushlightuserdata(L, (void *)m);
  int st = lua_pcall(L, 1, 1, 0);
  if (running)
    lua_gc(L, LUA_GCRESTART);
  if (st != LUA_OK)
    lua_error(L);
}

const mg_lstore_keys *mg_lstore_open_keys(lua_State *L) {
  mg_lstore_keys *k = lua_newuserdatauv(L, sizeof *k, 1);
  lua_createtable(L, MG_LF_COUNT, 0); /* anchors the interned names */
  for (int i = 0; i < MG_LF_COUNT; i++) {
    lua_pushstring(L, field_names[i]);
    k->p[i] = lua_tostring(L, -1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setiuservalue(L, -2, 1);
  return k;
}
