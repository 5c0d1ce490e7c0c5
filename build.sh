#!/usr/bin/env bash
# build.sh — install what mgrun needs on Debian 12, build it, run it.
#
#   bash build.sh demo    install deps, build, run the demo: the seed's matrix
#                         mode (policies/matrix.lua) for 8 seconds, its
#                         timeline in build/demo-timeline.jsonl, drawn as
#                         build/demo.png (mgrun plot)
#   bash build.sh test    install deps, build, run the whole suite, then the
#                         same suite built with ASan + UBSan, then the tests
#                         with threads under TSan
#   bash build.sh bench   install deps, build (release), print the benchmarks
#   bash build.sh deps    only install the Debian packages
#   bash build.sh build   only build (build/)
#
# Dependencies are Debian packages by name; apt-get runs only when one is
# missing (so it needs root only then).
set -euo pipefail
cd "$(dirname "$0")"

DEPS=(gcc libc6-dev make cmake pkg-config liblua5.4-dev libuv1-dev lua-unit
      libjansson-dev jq procps util-linux
      lua5.4 python3 python3-pytest python3-yaml groff-base stress-ng nodejs
      systemd libcairo2-dev libxml2-utils librsvg2-bin prometheus)
# lua5.4, python3 + python3-pytest: the SDK's Lua module and Python package
# are tested from a stock interpreter; groff-base checks the man page;
# stress-ng and nodejs run as real children under limits (e2e);
# systemd (systemd-analyze) and python3-yaml check contrib/; cairo draws
# `mgrun plot`'s pictures (mgrun-plot alone links it), xmllint and
# rsvg-convert check its SVG (e2e); prometheus: promtool checks the metrics
# text and a server of the test's own scrapes mgrun
# (tests/e2e/test_metrics.sh; never the package's service, which deps stops
# and disables again when it installs it).
# The C tests that run threads: built once more under ThreadSanitizer
# (test_sup_cgroup: the supervisor's threshold registrations run in
# libuv's thread pool; it also forks a supervisor of its own after that
# pool has started, hence die_after_fork=0 below).
TSAN_TESTS=(test_host_multi test_host_share test_store_threads test_store_share
            test_metrics test_sup_cgroup)
# The benchmark compares with npm packages (lru-cache, @langchain/core),
# and the reaction benchmark with earlyoom (its own instance, never the
# service: see the bench case below).
BENCH_DEPS=(nodejs npm earlyoom)

deps() { # deps [PACKAGES…]  (default: DEPS)
  local missing=() p
  (($#)) || set -- "${DEPS[@]}"
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
      grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) != 0 ]]; then
    echo "build.sh: missing Debian packages: ${missing[*]}" >&2
    echo "build.sh: run as root (or: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "build.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's prometheus enables (and under systemd starts) a service that
  # scrapes this machine: the tests run their own server, loopback only.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

build() { # build DIR [cmake args…]
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

run_suite() { # run_suite DIR
  (cd "$1" && ctest --output-on-failure -j"$(nproc)" --timeout 300)
}

case "${1:-}" in
deps) deps ;;
build)
  deps
  build build
  ;;
demo)
  deps
  build build
  shift
  # The policy prints a line for every status, warning, death and restart
  # itself: the supervisor's own lines would say each twice. The run's
  # timeline (every sample and event) goes to build/, and is drawn there.
  tl=build/demo-timeline.jsonl
  rc=0
  ./build/mgrun --log-level error --timeline "$tl" policies/matrix.lua "$@" || rc=$?
  if [[ -s $tl ]] && ./build/mgrun plot "$tl" -o build/demo.png; then
    echo "build.sh: the run's timeline is $tl, its picture build/demo.png" >&2
    echo "build.sh: (draw it again: build/mgrun plot $tl -o run.svg)" >&2
  fi
  exit "$rc"
  ;;
test)
  deps
  build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
  run_suite build
  echo "== the same suite under AddressSanitizer + UndefinedBehaviorSanitizer"
  build build-asan -DMG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DMG_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_suite build-asan
  echo "== the tests with threads under ThreadSanitizer"
  cmake -S . -B build-tsan -DMG_TSAN=ON -DCMAKE_BUILD_TYPE=Debug \
    -DMG_BUILD_BENCH=OFF >/dev/null
  cmake --build build-tsan -j"$(nproc)" --target "${TSAN_TESTS[@]}"
  (cd build-tsan &&
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0 \
    ctest --output-on-failure --timeout 300 \
    -R "^c\.($(IFS='|'; echo "${TSAN_TESTS[*]}"))\$")
  ;;
bench)
  deps
  # node and npm may come from elsewhere (nodesource ships npm inside
  # nodejs); install Debian's only when the commands are missing.
  command -v node >/dev/null && command -v npm >/dev/null ||
    deps "${BENCH_DEPS[@]:0:2}" || echo "build.sh: no node/npm: the comparison rows will say skipped" >&2
  # earlyoom: the reaction benchmark starts its own instances. Debian's
  # package enables and (under systemd) starts a service that would watch
  # the same memory: when this install brought it, it is stopped and
  # disabled again.
  if ! command -v earlyoom >/dev/null; then
    if deps earlyoom; then
      systemctl disable --now earlyoom >/dev/null 2>&1 || true
    else
      echo "build.sh: no earlyoom: its reaction rows will say not measured" >&2
    fi
  fi
  build build-release -DCMAKE_BUILD_TYPE=Release -DMG_BUILD_TESTS=OFF
  exec bash bench/run.sh build-release
  ;;
*)
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
