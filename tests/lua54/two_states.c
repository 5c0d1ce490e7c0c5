/* two_states.c — mg.so in two Lua states of one process, as a C host
 * that links Debian's liblua5.4.so would load it: each state gets a module
 * of its own (nothing is process-wide), both loops run interleaved, each
 * state's allocator is wrapped while mg.so is in it, and lua_close gives
 * every byte back through the allocator the state was made with.
 * ctest: lua54.two_states. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct counting {
  size_t live;  /* bytes held */
  size_t calls; /* allocator calls */
} counting;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counting *c = ud;
  size_t old = ptr ? osize : 0;
  c->calls++;
  if (nsize == 0) {
    free(ptr);
    c->live -= old;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p == NULL)
    return NULL;
  c->live = c->live - old + nsize;
  return p;
}

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

/* Each state: a store named after it, filled by a timer of its own. */
static const char chunk[] =
    "local name = ...\n"
    "local mg = require 'mg'\n"
    "mg.configure { log_level = 'error' }\n"
    "ctx = assert(mg.store { name = name, max_messages = 3,\n"
    "                        on_full = 'prune' })\n"
    "ticks = 0\n"
    "mg.every(1, function(t)\n"
    "  ticks = ticks + 1\n"
    "  assert(ctx:add { role = 'user', content = name .. ticks })\n"
    "  if ticks == 10 then t:stop() end\n"
    "end)\n"
    "run = mg.run\n"
    "last = function() local m for x in ctx:messages() do m = x end\n"
    "                  return m.content end\n";

static lua_State *state(counting *c, const char *name) {
  lua_State *L = lua_newstate(count_alloc, c);
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, MG_SO_DIR "/?.so");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  if (luaL_loadstring(L, chunk) != LUA_OK) {
    fprintf(stderr, "FAIL: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "FAIL: %s: %s\n", name, lua_tostring(L, -1));
    exit(1);
  }
  return L;
}

/* run("nowait") in L: whether handles are still active. */
static int run_nowait(lua_State *L) {
  lua_getglobal(L, "run");
  lua_pushliteral(L, "nowait");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "FAIL: run: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  int alive = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return alive;
}

static lua_Integer global_int(lua_State *L, const char *name) {
  lua_getglobal(L, name);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

int main(void) {
  counting c[2] = {{0, 0}, {0, 0}};
  const char *names[2] = {"one", "two"};
  lua_State *L[2];
  for (int i = 0; i < 2; i++) {
    L[i] = state(&c[i], names[i]);
    void *ud;
    CHECK(lua_getallocf(L[i], &ud) != count_alloc,
          "%s: the allocator is not wrapped while mg.so is loaded", names[i]);
  }
  size_t calls_before = c[0].calls;
  int alive[2] = {1, 1}, rounds = 0;
  while ((alive[0] || alive[1]) && rounds < 100000) {
    for (int i = 0; i < 2; i++)
      if (alive[i])
        alive[i] = run_nowait(L[i]);
    rounds++;
  }
  CHECK(!alive[0] && !alive[1], "the loops did not finish");
  CHECK(c[0].calls > calls_before,
        "allocations do not reach the state's own allocator");
  for (int i = 0; i < 2; i++) {
    CHECK(global_int(L[i], "ticks") == 10, "%s: %lld ticks", names[i],
          (long long)global_int(L[i], "ticks"));
    lua_getglobal(L[i], "last");
    lua_call(L[i], 0, 1);
    char want[16];
    snprintf(want, sizeof want, "%s10", names[i]);
    CHECK(strcmp(lua_tostring(L[i], -1), want) == 0, "%s: last is %s", names[i],
          lua_tostring(L[i], -1));
    lua_pop(L[i], 1);
  }
  for (int i = 0; i < 2; i++) {
    lua_close(L[i]);
    CHECK(c[i].live == 0, "%s: %zu bytes not given back to its allocator",
          names[i], c[i].live);
  }
  fprintf(stderr, "%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
