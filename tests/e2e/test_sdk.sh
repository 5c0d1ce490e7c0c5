# The installed SDK: `cmake --install` into a temporary prefix, then what an
# agent host sees there — shared libraries with a SONAME that export only
# the public API (nm -D against the MG_API declarations of the installed
# headers), the static archives, pkg-config and CMake packages that build
# examples/c/agent_host.c, an installed mgrun that finds its Lua library and
# policies without LUA_PATH, and the man page.
source "$(dirname "$0")/lib.sh"

BUILD=$(cd "$(dirname "$MGRUN")" && pwd)
P="$T_TMP/prefix"
cmake --install "$BUILD" --prefix "$P" >"$T_TMP/install.log" 2>&1
check "cmake --install into a fresh prefix" test $? -eq 0
LIBDIR=$(dirname "$(find "$P" -name 'libmg.so.0' | head -1)")

PLOT_BIN=()
[[ -x $BUILD/mgrun-plot ]] && PLOT_BIN=(bin/mgrun-plot) # unless MG_BUILD_PLOT=OFF
for f in bin/mgrun bin/mg-hog "${PLOT_BIN[@]}" include/mg/mg.h include/mg/mg_store.h \
  include/mg/mg_runtime.h include/mg/mg_sup.h share/mgrun/scripts/mg/default.lua \
  share/mgrun/policies/matrix.lua share/man/man1/mgrun.1; do
  check "installed: $f" test -e "$P/$f"
done
for f in libmg.so libmg.so.0 libmg-runtime.so libmg-runtime.so.0 libmg.a \
  libmg-runtime.a pkgconfig/mg.pc pkgconfig/mg-runtime.pc cmake/mg/mgConfig.cmake \
  cmake/mg/mgConfigVersion.cmake cmake/mg/mgTargets.cmake; do
  check "installed: libdir/$f" test -e "$LIBDIR/$f"
done

soname() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
check "libmg.so has SONAME libmg.so.0" test "$(soname "$LIBDIR/libmg.so")" = libmg.so.0
check "libmg-runtime.so has SONAME libmg-runtime.so.0" \
  test "$(soname "$LIBDIR/libmg-runtime.so")" = libmg-runtime.so.0
check "libmg.so needs neither Lua nor libuv" \
  bash -c '! readelf -d "$1" | grep -qE "NEEDED.*(lua|libuv)"' _ "$LIBDIR/libmg.so"

# What the headers declare MG_API (declarations may span lines).
declared() { # declared HEADER... → function names, one per line
  python3 - "$@" <<'EOF'
import re, sys
for path in sys.argv[1:]:
    text = open(path).read()
    for m in re.finditer(r"\bMG_API\s+[^;{()]*?\b(mg_\w+)\s*\(", text):
        print(m.group(1))
EOF
}
exported() { nm -D --defined-only "$1" | awk '{print $3}' | grep -v '^_' | sort -u; }
core_h=$(ls "$P"/include/mg/*.h | grep -v -e mg_sup.h -e mg_runtime.h)
declared $core_h | sort -u >"$T_TMP/core.decl"
declared "$P/include/mg/mg_sup.h" "$P/include/mg/mg_runtime.h" | sort -u >"$T_TMP/rt.decl"
exported "$LIBDIR/libmg.so" >"$T_TMP/core.exp"
exported "$LIBDIR/libmg-runtime.so" >"$T_TMP/rt.exp"
check "libmg.so exports exactly the core's MG_API functions ($(wc -l <"$T_TMP/core.decl"))" \
  diff "$T_TMP/core.decl" "$T_TMP/core.exp"
check "libmg-runtime.so exports exactly the runtime's MG_API functions ($(wc -l <"$T_TMP/rt.decl"))" \
  diff "$T_TMP/rt.decl" "$T_TMP/rt.exp"
check "no internal symbol (mg__*, lmg_*, mg_lua_*) is exported" \
  bash -c '! grep -qE "^(mg__|lmg_|mg_lua_)" "$1" "$2"' _ "$T_TMP/core.exp" "$T_TMP/rt.exp"

# pkg-config, from the installed .pc files only.
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
check "pkg-config --modversion mg = 0.1.0" test "$(pkg-config --modversion mg)" = 0.1.0
check "pkg-config --cflags mg-runtime names the prefix's include dir and Lua's" \
  bash -c 'f=$(pkg-config --cflags mg-runtime); [[ $f == *"/include"* && $f == *lua5.4* ]]'
check "pkg-config --libs mg is -lmg without Lua or libuv" \
  bash -c 'l=$(pkg-config --libs mg); [[ $l == *-lmg* && $l != *lua* && $l != *-luv* ]]'

# A build with the sanitizers links their runtime first.
SAN=()
# (grep without -q: under pipefail an early exit of grep makes ldd die of SIGPIPE)
if ldd "$LIBDIR/libmg.so" | grep libasan >/dev/null; then
  SAN=(-fsanitize=address,undefined)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
fi

cp -r "$MG_SOURCE_DIR/examples/c" "$T_TMP/example"
(cd "$T_TMP/example" && make -s CFLAGS="-O1 -Wall -Wextra -Werror ${SAN[*]}" \
  LDFLAGS="${SAN[*]}") >"$T_TMP/make.log" 2>&1
check "examples/c builds with make + pkg-config" test -x "$T_TMP/example/agent_host"
(cd "$T_TMP/example" && ./agent_host policy.lua 12) >"$T_TMP/run.out" 2>"$T_TMP/run.err"
check "the C agent host runs its policy and exits 0" test $? -eq 0
check "the host saw 12 turns" grep -q "^turn 12:" "$T_TMP/run.out"
check "the store stayed within its 24 messages" \
  bash -c '! awk "/^turn/ { if (\$3 + 0 > 24) bad = 1 } END { exit !bad }" "$1"' _ "$T_TMP/run.out"
check "the policy's strategy pruned (messages evicted)" \
  bash -c 'tail -1 <(grep "^turn" "$1") | awk "{ exit !(\$(NF-1) + 0 > 0) }"' _ "$T_TMP/run.out"
check "the pinned system prompt was kept" grep -q "system prompt kept: yes; store consistent: yes" "$T_TMP/run.out"
check "the policy logged from the host's loop" grep -q "policy_ready store=conversation" "$T_TMP/run.err"
(cd "$T_TMP/example" && ./agent_host policy.lua 0) >/dev/null 2>"$T_TMP/bad.err"
check "a bad TURNS is a usage error (exit 2)" test $? -eq 2
check "a bad TURNS is named" grep -q "TURNS must be 1 to 1000, got '0'" "$T_TMP/bad.err"

cmake -S "$T_TMP/example" -B "$T_TMP/example-cmake" -DCMAKE_PREFIX_PATH="$P" \
  -DCMAKE_C_FLAGS="${SAN[*]}" -DCMAKE_EXE_LINKER_FLAGS="${SAN[*]}" >"$T_TMP/cmake.log" 2>&1 &&
  cmake --build "$T_TMP/example-cmake" >>"$T_TMP/cmake.log" 2>&1
check "examples/c builds with find_package(mg) and mg::runtime" \
  test -x "$T_TMP/example-cmake/agent_host"
(cd "$T_TMP/example" && "$T_TMP/example-cmake/agent_host" policy.lua 3) >"$T_TMP/run2.out" 2>/dev/null
check "the CMake-built host runs" grep -q "^turn  3:" "$T_TMP/run2.out"

# The core alone: a C program with the store and nothing else.
cat >"$T_TMP/core.c" <<'EOF'
#include <mg/mg.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  mg_store *s;
  char err[256];
  if (mg_store_new(NULL, &s, err, sizeof err) < 0) return 1;
  mg_store_input in = {0};
  in.role = "user"; in.content = "hi"; in.content_len = 2;
  mg_store_error e;
  if (mg_store_add(s, &in, NULL, &e) < 0) return 1;
  uint64_t n;
  if (mg_size_parse("1.5G", 0, &n, err, sizeof err) < 0) return 1;
  printf("%llu %llu\n", (unsigned long long)mg_store_len(s), (unsigned long long)n);
  mg_store_free(s);
  return 0;
}
EOF
cc ${SAN[*]} "$T_TMP/core.c" $(pkg-config --cflags --libs mg) -Wl,-rpath,"$LIBDIR" \
  -o "$T_TMP/core" 2>"$T_TMP/core.log"
check "a core-only program links -lmg alone" test -x "$T_TMP/core"
check "... and runs" test "$("$T_TMP/core")" = "1 1610612736"
static_libs=" $(pkg-config --static --libs mg) "
static_libs=${static_libs// -lmg / $LIBDIR/libmg.a }
cc "$T_TMP/core.c" $(pkg-config --cflags mg) $static_libs \
  -o "$T_TMP/core-static" 2>"$T_TMP/core-static.log" || true
if [[ ${#SAN[@]} -eq 0 ]]; then
  check "the static archive links too (pkg-config --static)" test "$("$T_TMP/core-static")" = "1 1610612736"
  check "... and needs no libmg.so" bash -c '! readelf -d "$1" | grep -q "libmg"' _ "$T_TMP/core-static"
fi

# The installed mgrun: its Lua library and policies from the prefix.
cd "$T_TMP"
env -u LUA_PATH -u LUA_PATH_5_4 "$P/bin/mgrun" --limit 64M -- true
check "installed mgrun runs --limit (finds mg.default without LUA_PATH)" test $? -eq 0
env -u LUA_PATH "$P/bin/mgrun" --check "$P/share/mgrun/policies/matrix.lua" >/dev/null 2>&1
check "an installed policy passes --check" test $? -eq 0
p=$(policy req <<<'print(type(require("mg.strategies").keep_last))')
check "installed mgrun requires the shipped strategies" \
  test "$(env -u LUA_PATH "$P/bin/mgrun" "$p")" = function
if ((${#PLOT_BIN[@]})); then
  printf '%s\n' '{"t_ms":0,"type":"start","wall":"2026-01-01T00:00:00Z"}' \
    '{"t_ms":10,"type":"sample","name":"a","pid":1,"used":1048576,"limit":4194304}' \
    '{"t_ms":20,"type":"sample","name":"a","pid":1,"used":2097152,"limit":4194304}' >"$T_TMP/tl.jsonl"
  PATH=/usr/bin:/bin "$P/bin/mgrun" plot "$T_TMP/tl.jsonl" -o "$T_TMP/tl.svg"
  check "installed mgrun plot finds the mgrun-plot beside it" test $? -eq 0 -a -s "$T_TMP/tl.svg"
fi

check "the man page renders without warnings" \
  bash -c 'out=$(groff -man -Tutf8 -ww -z "$1" 2>&1); [[ -z $out ]]' _ "$P/share/man/man1/mgrun.1"
check "the man page documents every option of --help" bash -c '
  page=$(groff -man -Tutf8 "$2" 2>/dev/null | col -b)
  for o in $("$1" --help | grep -oE -- "--[a-z][a-z-]+" | sort -u); do
    grep -q -- "$o" <<<"$page" || { echo "missing: $o"; exit 1; }
  done' _ "$MGRUN" "$P/share/man/man1/mgrun.1"
finish
