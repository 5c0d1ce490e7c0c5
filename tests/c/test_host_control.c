/* test_host_control.c — the control socket's request handler and line
 * framer (runtime/host/mg__control.h), on a real runtime with a policy, a
 * store and a child: exact answers to valid and invalid requests, the
 * policy's commands and reload handler, what converts to JSON and what
 * does not, budgets; then a fuzz: thousands of random and mutated lines
 * (and a corpus of valid ones) through the handler, and random streams
 * through the framer against a reference splitter — every answer a
 * well-formed response, nothing crashes (the suite runs this under ASan
 * and UBSan too). Also the socket file: mode 0600, a live socket refuses
 * a second runtime, a stale one is replaced, another file is left alone,
 * the default path's directory is made 0700, the socket goes at the end.
 *
 * MG_FUZZ_ITER (default 50000) and MG_FUZZ_SEED change the fuzz. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "host/mg__control.h"
#include "mg/mg_runtime.h"
#include "mg_test.h"

static char tmp[256];
static mg_runtime *rt;
static mg_logger *quiet;

static const char policy[] =
    "reloads = 0\n"
    "mg.on_reload(function() reloads = reloads + 1 return { reloads = "
    "reloads } end)\n"
    "mg.on_control('echo', function(a) return a end)\n"
    "mg.on_control('count', function() return reloads end)\n"
    "mg.on_control('fail', function() error('failed on purpose') end)\n"
    "mg.on_control('decline', function() return nil, 'not now', 'EAGAIN' "
    "end)\n"
    "mg.on_control('fn', function() return { f = print } end)\n"
    "mg.on_control('nan', function() return { x = { 0/0 } } end)\n"
    "mg.on_control('mixed', function() return { 1, x = 2 } end)\n"
    "mg.on_control('holes', function() return { [1] = 1, [3] = 3 } end)\n"
    "mg.on_control('cycle', function() local t = {} t.t = t return t end)\n"
    "mg.on_control('bytes', function() return '\\xff\\xfe' end)\n"
    "mg.on_control('loop', function() while true do end end)\n"
    "mg.on_control('empty', function() return {} end)\n"
    "mg.on_control('nothing', function() end)\n"
    "mg.on_control('gone', function() end)\n"
    "mg.on_control('gone', nil)\n"
    "mg.on_control('again', function() return 1 end)\n"
    "mg.on_control('again', function() return 2 end)\n"
    "ok1, e1 = pcall(mg.on_control, 'status', function() end)\n"
    "ok2, e2 = pcall(mg.on_control, 'bad name', function() end)\n"
    "ok3, e3 = pcall(mg.on_control, 'x', 42)\n"
    "ok4, e4 = pcall(mg.on_reload, 'x')\n"
    "mg.on_control('misuse', function() return { ok1 = ok1, e1 = e1, ok2 = "
    "ok2, e2 = e2, ok3 = ok3, e3 = e3, ok4 = ok4, e4 = e4 } end)\n"
    "ctx = assert(mg.store { name = 'ctx', max_messages = 10 })\n"
    "ctx:add { role = 'user', content = 'hello' }\n"
    "w = assert(mg.spawn { name = 'w', enforce = 'none', restart = "
    "'on-failure', cmd = { 'sleep', '60' } })\n";

static mg_runtime *make(const char *path, int *rc, char *err, size_t len) {
  mg_runtime_opts o;
  mg_runtime *r = NULL;
  mg_runtime_opts_init(&o);
  o.logger = quiet;
  o.control_path = path;
  o.cb_timeout_ms = 2000;
  o.cb_instructions = 2000000;
  *rc = mg_runtime_new(&o, &r, err, len);
  return r;
}

static json_t *ask(const char *line) {
  mg__ctl_after after;
  json_t *r = mg__ctl_handle(rt->control, line, strlen(line), &after);
  return r;
}

/* The answer's field `k` as text ("" when absent). */
static const char *sfield(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : "";
}

/* An error with `code` whose message contains `text`. */
#define ASSERT_ERR(line, code, text)                                           \
  do {                                                                         \
    json_t *r_ = ask(line);                                                    \
    ASSERT(json_is_false(json_object_get(r_, "ok")));                          \
    ASSERT_STR_EQ(sfield(r_, "code"), code);                                   \
    ASSERT_CONTAINS(sfield(r_, "error"), text);                                \
    json_decref(r_);                                                           \
  } while (0)

/* ------------------------------------------------------------ answers */

TEST(hello_status_and_the_envelope) {
  json_t *r = ask("{\"v\":1,\"id\":\"a-1\",\"cmd\":\"hello\"}");
  ASSERT_EQ(json_integer_value(json_object_get(r, "v")), 1);
  ASSERT_STR_EQ(sfield(r, "id"), "a-1");
  ASSERT(json_is_true(json_object_get(r, "ok")));
  ASSERT_EQ(json_integer_value(json_object_get(r, "protocol")), 1);
  ASSERT_EQ(json_integer_value(json_object_get(r, "pid")), getpid());
  json_t *pol = json_object_get(r, "policy_commands");
  ASSERT_GE(json_array_size(pol), 10);
  ASSERT_STR_EQ(json_string_value(json_array_get(pol, 0)), "again");
  json_decref(r);

  r = ask("{\"id\":7,\"cmd\":\"status\"}"); /* v may be left out */
  ASSERT_EQ(json_integer_value(json_object_get(r, "id")), 7);
  json_t *kids = json_object_get(r, "children");
  ASSERT_EQ(json_array_size(kids), 1);
  json_t *k = json_array_get(kids, 0);
  ASSERT_STR_EQ(sfield(k, "name"), "w");
  ASSERT_STR_EQ(sfield(k, "state"), "running");
  ASSERT_STR_EQ(sfield(k, "enforce"), "none");
  ASSERT_STR_EQ(sfield(k, "restart"), "on-failure");
  ASSERT(json_is_integer(json_object_get(k, "pid")));
  ASSERT(json_is_null(json_object_get(k, "limit")));
  ASSERT(json_is_integer(json_object_get(k, "usage")));
  json_t *st = json_array_get(json_object_get(r, "stores"), 0);
  ASSERT_STR_EQ(sfield(st, "name"), "ctx");
  ASSERT_EQ(json_integer_value(json_object_get(st, "messages")), 1);
  ASSERT_EQ(json_integer_value(json_object_get(st, "max_messages")), 10);
  json_decref(r);

  r = ask("{\"cmd\":\"health\"}");
  ASSERT(json_is_true(json_object_get(r, "healthy")));
  ASSERT_EQ(json_array_size(json_object_get(r, "problems")), 0);
  json_decref(r);
}

TEST(malformed_requests_say_what_is_accepted) {
  mg__ctl_after a;
  json_t *r = mg__ctl_handle(rt->control, "{\"cmd\":", 7, &a);
  ASSERT_EQ(a.bad, 1);
  ASSERT_STR_EQ(sfield(r, "code"), "EPARSE");
  ASSERT_CONTAINS(sfield(r, "error"), "malformed request: ");
  ASSERT_CONTAINS(sfield(r, "error"), "one JSON object per line");
  ASSERT(json_is_null(json_object_get(r, "id")));
  json_decref(r);
  ASSERT_ERR("[1,2]", "EINVAL", "a request is a JSON object, got an array");
  ASSERT_ERR("\"status\"", "EINVAL", "got a string");
  ASSERT_ERR("{}", "EINVAL", "a request needs \"cmd\"");
  ASSERT_ERR("{\"cmd\":5}", "EINVAL", "a request needs \"cmd\"");
  ASSERT_ERR("{\"cmd\":\"\"}", "EINVAL", "a request needs \"cmd\"");
  ASSERT_ERR("{\"cmd\":\"st\\u0000atus\"}", "EPARSE", "malformed");
  ASSERT_ERR("{\"v\":2,\"cmd\":\"status\"}", "EPROTO",
             "protocol version 2 is not supported (this mgrun speaks 1)");
  ASSERT_ERR("{\"v\":\"1\",\"cmd\":\"status\"}", "EPROTO", "must be the");
  ASSERT_ERR("{\"id\":[1],\"cmd\":\"status\"}", "EINVAL", "\"id\" must be");
  ASSERT_ERR("{\"cmd\":\"status\",\"cmd\":\"health\"}", "EPARSE", "duplicate");
  ASSERT_ERR("{\"cmd\":\"status\",\"verbose\":true}", "EINVAL",
             "unknown field 'verbose' for status (accepted: v, id, cmd)");
  ASSERT_ERR("{\"cmd\":\"stop\",\"name\":\"w\",\"grace\":1}", "EINVAL",
             "unknown field 'grace' for stop (accepted: v, id, cmd, name, "
             "grace_ms)");
  ASSERT_ERR("{\"cmd\":\"launch\"}", "ENOENT", "unknown command 'launch'");
  ASSERT_ERR("{\"cmd\":\"gone\"}", "ENOENT", "unknown command 'gone'");
  /* an id comes back in errors too, and bytes that are not UTF-8 do not
   * break the answer */
  r = ask("{\"id\":3.5,\"cmd\":\"nope\"}");
  ASSERT_DBL_NEAR(json_real_value(json_object_get(r, "id")), 3.5, 0);
  json_decref(r);
  r = mg__ctl_handle(rt->control, "\xff\xfe{", 3, &a);
  ASSERT_STR_EQ(sfield(r, "code"), "EPARSE");
  char *t = json_dumps(r, 0);
  ASSERT(t != NULL);
  free(t);
  json_decref(r);
}

TEST(children_and_stores) {
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":\"w\"}", "EINVAL",
             "set-limit needs \"size\"");
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"lots\"}",
             "EPARSE", "invalid size \"lots\"");
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":-1}", "EINVAL",
             "non-negative");
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"100T\"}",
             "ELIMIT", "exceeds total system memory");
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":\"zz\",\"size\":\"1G\"}",
             "ENOENT", "no child named 'zz' (children: w)");
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":\"../x\",\"size\":\"1G\"}",
             "EINVAL", "1 to 64 characters");
  ASSERT_ERR("{\"cmd\":\"set-limit\",\"name\":7,\"size\":\"1G\"}", "EINVAL",
             "\"name\" must be a string");
  json_t *r = ask("{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"512M\"}");
  ASSERT(json_is_true(json_object_get(r, "ok")));
  ASSERT_EQ(json_integer_value(json_object_get(r, "limit")), 512 << 20);
  ASSERT(json_is_null(json_object_get(r, "previous")));
  json_decref(r);
  r = ask("{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":1048576}");
  ASSERT_EQ(json_integer_value(json_object_get(r, "previous")), 512 << 20);
  json_decref(r);
  r = ask("{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"none\"}");
  ASSERT(json_is_true(json_object_get(r, "ok")));
  ASSERT(json_is_null(json_object_get(r, "limit"))); /* watched: removed */
  json_decref(r);

  ASSERT_ERR("{\"cmd\":\"stop\",\"name\":\"w\",\"grace_ms\":-5}", "EINVAL",
             "an integer from 0 to 3600000");
  ASSERT_ERR("{\"cmd\":\"restart\",\"name\":\"w\",\"signal\":\"NOPE\"}",
             "EINVAL", "a signal name");

  r = ask("{\"cmd\":\"store-stats\",\"store\":\"ctx\"}");
  json_t *s = json_object_get(r, "stats");
  ASSERT_EQ(json_integer_value(json_object_get(s, "messages")), 1);
  ASSERT(json_is_integer(json_object_get(s, "payload_bytes")));
  json_decref(r);
  ASSERT_ERR("{\"cmd\":\"store-stats\",\"store\":\"nope\"}", "ENOENT", "nope");
  ASSERT_ERR("{\"cmd\":\"store-stats\"}", "EINVAL", "needs \"store\"");
  ASSERT_ERR("{\"cmd\":\"subscribe\",\"samples\":1}", "EINVAL",
             "true or false");
  mg__ctl_after a;
  r = mg__ctl_handle(rt->control, "{\"cmd\":\"subscribe\",\"samples\":true}",
                     34, &a);
  ASSERT(json_is_true(json_object_get(r, "ok")));
  ASSERT_EQ(a.subscribe, 1);
  ASSERT_EQ(a.samples, 1);
  json_decref(r);
}

TEST(the_policys_commands_and_reload) {
  json_t *r = ask("{\"cmd\":\"echo\",\"args\":{\"a\":\"b\",\"n\":[1,2.5,"
                  "true,{\"x\":null}]}}");
  json_t *res = json_object_get(r, "result");
  ASSERT_STR_EQ(sfield(res, "a"), "b");
  json_t *n = json_object_get(res, "n");
  ASSERT_EQ(json_array_size(n), 4);
  ASSERT_DBL_NEAR(json_real_value(json_array_get(n, 1)), 2.5, 0);
  ASSERT(json_is_true(json_array_get(n, 2)));
  ASSERT_EQ(json_object_size(json_array_get(n, 3)), 0); /* null: no key */
  json_decref(r);
  r = ask("{\"cmd\":\"echo\",\"args\":[\"p\",\"q\"]}");
  ASSERT_STR_EQ(
      json_string_value(json_array_get(json_object_get(r, "result"), 1)), "q");
  json_decref(r);
  r = ask("{\"cmd\":\"echo\"}"); /* no args: an empty table */
  ASSERT(json_is_object(json_object_get(r, "result")));
  json_decref(r);
  ASSERT_ERR("{\"cmd\":\"echo\",\"args\":5}", "EINVAL",
             "\"args\" must be an object or an array");
  ASSERT_ERR("{\"cmd\":\"echo\",\"name\":\"x\"}", "EINVAL",
             "unknown field 'name'");
  r = ask("{\"cmd\":\"nothing\"}");
  ASSERT(json_is_true(json_object_get(r, "ok")));
  ASSERT(json_is_null(json_object_get(r, "result")));
  json_decref(r);
  r = ask("{\"cmd\":\"again\"}"); /* a second on_control replaced it */
  ASSERT_EQ(json_integer_value(json_object_get(r, "result")), 2);
  json_decref(r);
  r = ask("{\"cmd\":\"empty\"}");
  ASSERT(json_is_object(json_object_get(r, "result")));
  json_decref(r);

  ASSERT_ERR("{\"cmd\":\"fail\"}", "EPOLICY",
             "control command 'fail' failed: ");
  ASSERT_ERR("{\"cmd\":\"fail\"}", "EPOLICY", "failed on purpose");
  ASSERT_ERR("{\"cmd\":\"decline\"}", "EAGAIN", "not now");
  ASSERT_ERR("{\"cmd\":\"fn\"}", "EPOLICY",
             "result.f: a function cannot be sent as JSON");
  ASSERT_ERR("{\"cmd\":\"nan\"}", "EPOLICY",
             "result.x[1]: NaN and infinities cannot be sent as JSON");
  ASSERT_ERR("{\"cmd\":\"mixed\"}", "EPOLICY", "mixes string and integer");
  ASSERT_ERR("{\"cmd\":\"holes\"}", "EPOLICY", "an array with holes");
  ASSERT_ERR("{\"cmd\":\"cycle\"}", "EPOLICY", "nested too deep for JSON");
  ASSERT_ERR("{\"cmd\":\"bytes\"}", "EPOLICY", "not UTF-8 text");
  ASSERT_ERR("{\"cmd\":\"loop\"}", "EBUDGET", "instruction budget");

  r = ask("{\"cmd\":\"misuse\"}");
  res = json_object_get(r, "result");
  ASSERT(json_is_false(json_object_get(res, "ok1")));
  ASSERT_CONTAINS(sfield(res, "e1"), "'status' is a built-in command");
  ASSERT(json_is_false(json_object_get(res, "ok2")));
  ASSERT_CONTAINS(sfield(res, "e2"), "command name");
  ASSERT(json_is_false(json_object_get(res, "ok3")));
  ASSERT_CONTAINS(sfield(res, "e3"), "function expected");
  ASSERT(json_is_false(json_object_get(res, "ok4")));
  json_decref(r);

  r = ask("{\"cmd\":\"reload\",\"id\":9}");
  ASSERT(json_is_true(json_object_get(r, "ok")));
  ASSERT(json_is_true(json_object_get(r, "reloaded")));
  ASSERT_EQ(json_integer_value(
                json_object_get(json_object_get(r, "result"), "reloads")),
            1);
  json_decref(r);
  r = ask("{\"cmd\":\"count\"}");
  ASSERT_EQ(json_integer_value(json_object_get(r, "result")), 1);
  json_decref(r);
}

/* ------------------------------------------------------------ fuzz */

static uint64_t rng;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static size_t below(size_t n) {
  return n ? (size_t)(next_rand() % n) : 0;
}

static const char *const corpus[] = {
    "{\"v\":1,\"id\":1,\"cmd\":\"hello\"}",
    "{\"v\":1,\"id\":2,\"cmd\":\"status\"}",
    "{\"cmd\":\"health\"}",
    "{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"256M\"}",
    "{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"10%\"}",
    "{\"cmd\":\"set-limit\",\"name\":\"w\",\"size\":\"none\"}",
    "{\"cmd\":\"store-stats\",\"store\":\"ctx\"}",
    "{\"cmd\":\"reload\"}",
    "{\"cmd\":\"subscribe\",\"samples\":false}",
    "{\"cmd\":\"echo\",\"args\":{\"k\":\"v\",\"n\":1}}",
    "{\"cmd\":\"echo\",\"args\":[1,2,3]}",
    "{\"cmd\":\"count\"}",
    "{\"cmd\":\"decline\"}",
    "{\"cmd\":\"fail\"}",
    "{\"cmd\":\"fn\"}",
    "{\"cmd\":\"restart\",\"name\":\"w\",\"grace_ms\":0}",
    "{\"cmd\":\"stop\",\"name\":\"zz\",\"grace_ms\":10}",
    "{\"v\":1,\"id\":\"x\",\"cmd\":\"nope\"}",
};
static const char *const tokens[] = {
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "1e999",
    "-0",
    "\\u0000",
    "\\ud800",
    "\xff",
    "\"cmd\"",
    "\"v\"",
    "\"status\"",
    "\"name\"",
    "\"w\"",
    "\"args\"",
    "\"size\"",
    "2",
    "18446744073709551616",
    "\"restart\"",
    "\"stop\"",
    "\"grace_ms\"",
    " ",
    "\\",
    "\"id\"",
    "\"reload\"",
    "\"echo\"",
};

/* A well-formed response: v 1, ok a boolean, an id, and on failure an
 * error and a code as text. */
static void check_response(json_t *r, const char *line, size_t len) {
  if (!json_is_object(r))
    MG__FAIL("no response object for %.*s", (int)(len > 200 ? 200 : len), line);
  ASSERT_EQ(json_integer_value(json_object_get(r, "v")), 1);
  ASSERT(json_is_boolean(json_object_get(r, "ok")));
  ASSERT(json_object_get(r, "id") != NULL);
  if (json_is_false(json_object_get(r, "ok"))) {
    ASSERT(json_is_string(json_object_get(r, "error")));
    ASSERT(json_is_string(json_object_get(r, "code")));
  }
  char *t = json_dumps(r, JSON_COMPACT);
  ASSERT(t != NULL);
  ASSERT_LT(strlen(t), MG__CTL_RESPONSE_MAX);
  free(t);
}

/* Put n bytes of src at `at` (copied first: src may lie in buf). */
static size_t insert_at(char *buf, size_t len, size_t cap, size_t at,
                        const char *src, size_t n) {
  char piece[64];
  if (n > sizeof piece || len + n >= cap || at > len)
    return len;
  memcpy(piece, src, n);
  memmove(buf + at + n, buf + at, len - at);
  memcpy(buf + at, piece, n);
  return len + n;
}

static size_t mutate(char *buf, size_t len, size_t cap) {
  int rounds = 1 + (int)below(4);
  for (int i = 0; i < rounds; i++) {
    size_t at = below(len + 1);
    switch (below(6)) {
    case 0: /* flip a byte */
      if (len)
        buf[below(len)] = (char)next_rand();
      break;
    case 1: { /* insert a byte */
      char b = (char)next_rand();
      len = insert_at(buf, len, cap, at, &b, 1);
      break;
    }
    case 2: /* delete a run */
      if (at < len) {
        size_t n = 1 + below(8);
        if (n > len - at)
          n = len - at;
        memmove(buf + at, buf + at + n, len - at - n);
        len -= n;
      }
      break;
    case 3: /* truncate */
      len = below(len + 1);
      break;
    case 4: { /* a token */
      const char *t = tokens[below(sizeof tokens / sizeof tokens[0])];
      len = insert_at(buf, len, cap, at, t, strlen(t));
      break;
    }
    default: { /* duplicate a piece */
      size_t from = below(len + 1), n = below(32);
      if (n > len - from)
        n = len - from;
      len = insert_at(buf, len, cap, at, buf + from, n);
    }
    }
  }
  return len;
}

/* A random value of any JSON type, now and then a telling one. */
static json_t *random_value(int depth) {
  static const char *const strs[] = {"w",    "ctx", "zz",   "",     "../x",
                                     "256M", "10%", "none", "lots", "TERM",
                                     "KILL", "-1",  "1e3",  "0x10", "é"};
  switch (below(depth > 2 ? 5 : 7)) {
  case 0:
    return json_string(strs[below(sizeof strs / sizeof strs[0])]);
  case 1: {
    static const json_int_t ints[] = {
        0, 1, -1, 100, 5000, (json_int_t)1 << 40, INT64_MAX, INT64_MIN};
    return json_integer(ints[below(sizeof ints / sizeof ints[0])]);
  }
  case 2: {
    static const double reals[] = {2.5, -0.0, 1e300, 0.1, 4096.0};
    return json_real(reals[below(sizeof reals / sizeof reals[0])]);
  }
  case 3:
    return json_boolean(below(2));
  case 4:
    return json_null();
  case 5: {
    json_t *a = json_array();
    for (size_t i = below(4); i > 0; i--)
      json_array_append_new(a, random_value(depth + 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    static const char *const keys[] = {"a", "who", "n", "x", ""};
    for (size_t i = below(4); i > 0; i--)
      json_object_set_new(o, keys[below(5)], random_value(depth + 1));
    return o;
  }
  }
}

/* A request put together from the protocol's parts, with random values:
 * it reaches the commands past the parser. */
static char *random_request(void) {
  static const char *const cmds[] = {
      "hello",  "status",    "set-limit", "stop",  "restart", "store-stats",
      "reload", "subscribe", "health",    "echo",  "count",   "decline",
      "fail",   "fn",        "nan",       "mixed", "holes",   "cycle",
      "bytes",  "empty",     "nothing",   "again", "nope",    "",
      "stats",  "events"};
  static const char *const fields[] = {"name",  "size",    "grace_ms", "signal",
                                       "store", "samples", "args",     "extra"};
  json_t *o = json_object();
  if (below(4)) {
    static const json_int_t vs[] = {1, 1, 1, 2, 0};
    json_object_set_new(
        o, "v", below(8) ? json_integer(vs[below(5)]) : random_value(2));
  }
  if (below(2))
    json_object_set_new(o, "id", random_value(2));
  json_object_set_new(
      o, "cmd",
      below(16) ? json_string(cmds[below(sizeof cmds / sizeof cmds[0])])
                : random_value(2));
  for (size_t i = below(2) ? 0 : 1 + below(3); i > 0; i--)
    json_object_set_new(o, fields[below(sizeof fields / sizeof fields[0])],
                        random_value(0));
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return t;
}

static long oks, code_n[64];
static char codes[64][32];
static size_t ncodes;
static void count_code(const char *c) {
  for (size_t i = 0; i < ncodes; i++)
    if (!strcmp(codes[i], c)) {
      code_n[i]++;
      return;
    }
  if (ncodes < 64) {
    snprintf(codes[ncodes], sizeof codes[0], "%s", c);
    code_n[ncodes++] = 1;
  }
}

TEST(fuzz_the_request_handler) {
  const char *e = getenv("MG_FUZZ_ITER");
  long iters = e ? atol(e) : 50000;
  size_t cap = 4096;
  char *buf = malloc(cap);
  ASSERT(buf != NULL);
  size_t ncorpus = sizeof corpus / sizeof corpus[0];
  for (size_t i = 0; i < ncorpus; i++) { /* the corpus as it is */
    mg__ctl_after a;
    json_t *r = mg__ctl_handle(rt->control, corpus[i], strlen(corpus[i]), &a);
    check_response(r, corpus[i], strlen(corpus[i]));
    json_decref(r);
  }
  for (long it = 0; it < iters; it++) {
    size_t len;
    int kind = (int)below(10);
    if (kind < 4) { /* put together from the protocol's parts */
      char *t = random_request();
      len = t ? strlen(t) : 0;
      if (len >= cap)
        len = cap - 1;
      memcpy(buf, t ? t : "", len);
      free(t);
    } else if (kind < 7) { /* a mutated valid line */
      const char *c = corpus[below(ncorpus)];
      len = strlen(c);
      memcpy(buf, c, len);
      len = mutate(buf, len, cap);
    } else if (kind < 9) { /* random bytes, printable or not */
      len = below(200);
      for (size_t i = 0; i < len; i++)
        buf[i] = kind == 7 ? (char)(32 + below(95)) : (char)next_rand();
    } else { /* deep nesting */
      size_t d = 1 + below(cap / 2 - 2);
      len = 0;
      for (size_t i = 0; i < d; i++)
        buf[len++] = below(2) ? '[' : '{';
      for (size_t i = 0; i < d && len < cap; i++)
        buf[len++] = ']';
    }
    mg__ctl_after a;
    json_t *r = mg__ctl_handle(rt->control, buf, len, &a);
    check_response(r, buf, len);
    if (json_is_true(json_object_get(r, "ok")))
      oks++;
    else
      count_code(sfield(r, "code"));
    json_decref(r);
    if (it % 200 == 0) /* let the loop reap and restart the child */
      uv_run(mg_runtime_loop(rt), UV_RUN_NOWAIT);
  }
  free(buf);
  /* what the fuzz reached, to see that it goes past the parser */
  fprintf(stderr, "fuzz: %ld lines, %ld answered ok;", iters, oks);
  for (size_t i = 0; i < ncodes; i++)
    fprintf(stderr, " %s %ld", codes[i], code_n[i]);
  fprintf(stderr, "\n");
  ASSERT_GT(oks, iters / 50);
  ASSERT_GE(ncodes, 6);
}

/* The framer against a reference: a stream of lines of random lengths
 * (some far past the limit, some at its edge), fed in random chunks. */
TEST(fuzz_the_framer) {
  mg__ctl_framer f;
  ASSERT_EQ(mg__ctl_framer_init(&f), 0);
  size_t total = 3u << 20;
  char *s = malloc(total);
  ASSERT(s != NULL);
  size_t n = 0;
  /* the expected events: line lengths, -1 for an oversized line */
  long expect[4096];
  size_t ne = 0;
  while (n < total - 300000 && ne < 4000) {
    size_t l;
    switch (below(8)) {
    case 0:
      l = MG__CTL_LINE_MAX - 2 + below(4); /* at the edge */
      break;
    case 1:
      l = below(200000);
      break;
    default:
      l = below(100);
    }
    int cr = below(4) == 0, blank = below(8) == 0;
    for (size_t i = 0; i < l; i++)
      s[n + i] = blank ? ' ' : (char)('a' + below(26));
    size_t seg = l; /* what the framer sees before the newline */
    if (cr && l > 0)
      s[n + l - 1] = '\r';
    n += l;
    s[n++] = '\n';
    if (seg + 1 > MG__CTL_LINE_MAX)
      expect[ne++] = -1;
    else if (l > 0 && !blank) {
      size_t shown = cr ? l - 1 : l;
      int all_blank = shown == 0;
      if (!all_blank)
        expect[ne++] = (long)shown;
    }
  }
  size_t fed = 0, got = 0;
  while (fed < n) {
    size_t room;
    char *at = mg__ctl_framer_space(&f, &room);
    ASSERT_GT(room, 0);
    size_t chunk = 1 + below(below(4) ? 9000 : 70000);
    if (chunk > room)
      chunk = room;
    if (chunk > n - fed)
      chunk = n - fed;
    memcpy(at, s + fed, chunk);
    mg__ctl_framer_wrote(&f, chunk);
    fed += chunk;
    const char *line;
    size_t len;
    int r;
    while ((r = mg__ctl_framer_next(&f, 0, &line, &len)) !=
           MG__CTL_FRAME_MORE) {
      ASSERT_LT(got, ne);
      if (r == MG__CTL_FRAME_OVERSIZED)
        ASSERT_EQ(expect[got], -1);
      else
        ASSERT_EQ((long)len, expect[got]);
      got++;
    }
  }
  ASSERT_EQ(got, ne);
  /* a last line without its newline counts at the end of the stream */
  size_t room;
  char *at = mg__ctl_framer_space(&f, &room);
  memcpy(at, "{\"cmd\":\"status\"}", 16);
  mg__ctl_framer_wrote(&f, 16);
  const char *line;
  size_t len;
  ASSERT_EQ(mg__ctl_framer_next(&f, 0, &line, &len), MG__CTL_FRAME_MORE);
  ASSERT_EQ(mg__ctl_framer_next(&f, 1, &line, &len), MG__CTL_FRAME_LINE);
  ASSERT_EQ(len, 16);
  ASSERT_EQ(mg__ctl_framer_next(&f, 1, &line, &len), MG__CTL_FRAME_MORE);
  free(s);
  mg__ctl_framer_free(&f);
}

/* ------------------------------------------------------------ the file */

TEST(the_socket_file) {
  char path[300], err[1024];
  int rc;
  snprintf(path, sizeof path, "%s/ctl.sock", tmp);
  struct stat st;
  ASSERT_EQ(lstat(path, &st), 0);
  ASSERT(S_ISSOCK(st.st_mode));
  ASSERT_EQ(st.st_mode & 0777, 0600);

  /* a live socket: a second runtime refuses to start */
  mg_runtime *two = make(path, &rc, err, sizeof err);
  ASSERT(two == NULL);
  ASSERT_EQ(rc, -EBUSY);
  ASSERT_CONTAINS(err, "another mgrun listens on");

  /* a stale socket (bound, nobody listening) is replaced */
  char stale[300];
  snprintf(stale, sizeof stale, "%s/stale.sock", tmp);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", stale);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  close(fd);
  two = make(stale, &rc, err, sizeof err);
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(lstat(stale, &st), 0);
  ASSERT_EQ(st.st_mode & 0777, 0600);
  mg_runtime_free(two);
  ASSERT_EQ(lstat(stale, &st), -1); /* removed at the end */

  /* another kind of file stays */
  char file[300];
  snprintf(file, sizeof file, "%s/file", tmp);
  FILE *fp = fopen(file, "w");
  ASSERT(fp != NULL);
  fclose(fp);
  two = make(file, &rc, err, sizeof err);
  ASSERT_EQ(rc, -EEXIST);
  ASSERT_CONTAINS(err, "exists and is not a socket");
  ASSERT_EQ(lstat(file, &st), 0);

  char lng[400];
  snprintf(lng, sizeof lng, "%s/%0150d.sock", tmp, 0);
  two = make(lng, &rc, err, sizeof err);
  ASSERT_EQ(rc, -ENAMETOOLONG);
  ASSERT_CONTAINS(err, "a unix socket path holds at most 107");
  char nodir[300];
  snprintf(nodir, sizeof nodir, "%s/no/such/dir.sock", tmp);
  two = make(nodir, &rc, err, sizeof err);
  ASSERT_EQ(rc, -ENOENT);
  ASSERT_CONTAINS(err, "/no/such does not exist");

  /* the default path: $XDG_RUNTIME_DIR/mgrun/mgrun.sock, its dir 0700 */
  char xdg[300], def[300], want[300];
  snprintf(xdg, sizeof xdg, "%s/xdg", tmp);
  ASSERT_EQ(mkdir(xdg, 0755), 0);
  setenv("XDG_RUNTIME_DIR", xdg, 1);
  ASSERT_EQ(mg_runtime_control_default(def, sizeof def), 0);
  snprintf(want, sizeof want, "%s/mgrun/mgrun.sock", xdg);
  ASSERT_STR_EQ(def, want);
  two = make("", &rc, err, sizeof err);
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(lstat(def, &st), 0);
  snprintf(want, sizeof want, "%s/mgrun", xdg);
  ASSERT_EQ(lstat(want, &st), 0);
  ASSERT_EQ(st.st_mode & 0777, 0700);
  mg_runtime_free(two);
  chmod(want, 0777); /* not ours alone any more: refused */
  two = make("", &rc, err, sizeof err);
  ASSERT_EQ(rc, -EACCES);
  ASSERT_CONTAINS(err, "that only it may write to");
  unsetenv("XDG_RUNTIME_DIR");
  ASSERT_EQ(mg_runtime_control_default(def, sizeof def), 0);
  ASSERT_STR_EQ(def, "/run/mgrun/mgrun.sock");
  rmdir(want);
  rmdir(xdg);
  unlink(file);
}

int main(void) {
  const char *seed = getenv("MG_FUZZ_SEED");
  rng = seed ? strtoull(seed, NULL, 10) : 0x9e3779b97f4a7c15ull;
  if (!rng)
    rng = 1;
  fprintf(stderr, "fuzz seed %llu\n", (unsigned long long)rng);
  snprintf(tmp, sizeof tmp, "/tmp/mg-test-control.XXXXXX");
  if (!mkdtemp(tmp))
    SKIP("no temporary directory: %s", strerror(errno));
  quiet = NULL; /* the policy's failures on purpose would be logged */
  char path[300], err[1024];
  int rc;
  snprintf(path, sizeof path, "%s/ctl.sock", tmp);
  /* SIGPIPE with its default action: refused (a client that goes away
   * would end the process) */
  signal(SIGPIPE, SIG_DFL);
  rt = make(path, &rc, err, sizeof err);
  if (rt || rc != -EINVAL || !strstr(err, "ignore SIGPIPE")) {
    fprintf(stderr, "FAIL: a default SIGPIPE is not refused: %d %s\n", rc, err);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  rt = make(path, &rc, err, sizeof err);
  if (!rt) {
    fprintf(stderr, "FAIL: cannot make the runtime: %s\n", err);
    return 1;
  }
  if (mg_runtime_load_string(rt, policy, "=policy", err, sizeof err) < 0) {
    fprintf(stderr, "FAIL: the policy: %s\n", err);
    return 1;
  }
  RUN(hello_status_and_the_envelope);
  RUN(malformed_requests_say_what_is_accepted);
  RUN(children_and_stores);
  RUN(the_policys_commands_and_reload);
  RUN(fuzz_the_request_handler);
  RUN(fuzz_the_framer);
  RUN(the_socket_file);
  mg_runtime_free(rt);
  struct stat st;
  if (lstat(path, &st) == 0) {
    fprintf(stderr, "FAIL: %s left behind\n", path);
    return 1;
  }
  rmdir(tmp);
  return mg_test_report();
}
