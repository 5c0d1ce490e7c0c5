# lib.sh — shared helpers for the end-to-end tests (sourced).
set -uo pipefail
: "${MGRUN:?run through ctest}"
: "${MG_TEST_BINDIR:?run through ctest}"
: "${MG_SOURCE_DIR:?run through ctest}"
T_PASS=0
T_FAIL=0
T_TMP=$(mktemp -d /tmp/mgrun-e2e.XXXXXX)
trap 'rm -rf "$T_TMP"' EXIT

ok() { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...
  local d=$1
  shift
  if "$@"; then ok "$d"; else fail "$d"; fi
}
finish() {
  echo "$T_PASS passed, $T_FAIL failed"
  ((T_FAIL == 0))
  exit $?
}
# Skip for want of a cgroup hierarchy; a failure under MG_REQUIRE_CGROUP=1.
skip_cgroup() {
  if [[ ${MG_REQUIRE_CGROUP:-} == 1 ]]; then
    echo "FAIL: MG_REQUIRE_CGROUP=1 but: $*"
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}
policy() { # policy NAME <<< code  → path
  local p="$T_TMP/$1.lua"
  cat >"$p"
  echo "$p"
}
