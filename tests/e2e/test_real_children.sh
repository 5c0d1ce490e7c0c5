# Real programs no one here wrote, under mgrun --limit: stress-ng's workers
# OOM-killed inside the group while stress-ng itself lives on (each kill
# logged, counted), and node (V8) — its SIGTRAP at start under RLIMIT_AS,
# its abort when the cgroup refuses its heap, and its own heap limit
# (--max-old-space-size), which is not mgrun's. Both come from Debian
# (build.sh installs stress-ng and nodejs); skipped only where missing.
source "$(dirname "$0")/lib.sh"
missing=()
command -v stress-ng >/dev/null || missing+=(stress-ng)
command -v node >/dev/null || missing+=(node)
if ((${#missing[@]})); then
  if [[ ${MG_REQUIRE_CGROUP:-} == 1 ]]; then
    echo "FAIL: ${missing[*]} missing (build.sh installs them)"
    exit 1
  fi
  echo "SKIP: ${missing[*]} not installed"
  exit 77
fi

# stress-ng: 2 workers of 400 MiB each in 256 MiB; the kernel kills
# workers, stress-ng restarts them and ends its run normally
"$MGRUN" --limit 256M --enforce cgroup -- stress-ng --vm 2 --vm-bytes 400M \
  --vm-keep --timeout 3s >"$T_TMP/o" 2>"$T_TMP/e"
rc=$?
if grep -q "cgroup not available" "$T_TMP/e"; then
  skip_cgroup "no writable cgroup for stress-ng: $(head -1 "$T_TMP/e")"
fi
n=$(grep -c "child_oom_kill name=stress-ng" "$T_TMP/e")
check "stress-ng: its workers' OOM kills are logged as they happen ($n)" test "$n" -ge 1
check "stress-ng: the main process lives on and exits 0" test "$rc" -eq 0
check "stress-ng: each log line has a running total" grep -q "child_oom_kill name=stress-ng .*count=1 total=$n " "$T_TMP/e"

# node under RLIMIT_AS: V8 cannot reserve its code range and traps
"$MGRUN" --limit 700M --enforce as -- node -e 0 >/dev/null 2>"$T_TMP/e"
rc=$?
check "node/as: its status is 128+SIGTRAP" test "$rc" -eq 133
check "node/as: V8's own words are relayed" grep -q "Fatal process OOM in Failed to reserve virtual memory" "$T_TMP/e"
check "node/as: classified limit" grep -q "^mgrun: node died after an allocation was refused at its RLIMIT_AS (killed by signal 5 (SIGTRAP)" "$T_TMP/e"

# node growing its heap under a cgroup limit: V8 aborts at the limit
"$MGRUN" --limit 300M --enforce cgroup -- node -e \
  'let a = []; for (;;) a.push(new Array(1e6).fill(1))' >/dev/null 2>"$T_TMP/e"
check "node/cgroup: a heap refused by the group is limit (or the OOM killer)" \
  grep -Eq "^mgrun: node (died after an allocation was refused at its cgroup limit|was killed by the OOM killer)" "$T_TMP/e"

# node's own heap limit far below mgrun's: not mgrun's limit
"$MGRUN" --limit 2G --enforce data -- node --max-old-space-size=64 -e \
  'let a = []; for (;;) a.push(new Array(1e6).fill(1))' >/dev/null 2>"$T_TMP/e"
check "node/own heap limit: a signal, not limit" grep -q "^mgrun: node was killed by signal 6 (SIGABRT)" "$T_TMP/e"
check "node/own heap limit: the detail says whose limit" grep -q 'a heap limit of its own' "$T_TMP/e"
finish
