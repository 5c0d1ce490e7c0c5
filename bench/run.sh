#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — run every benchmark and print one markdown
# table (what | figure | target), then the reaction benchmark's two tables
# (bench/reaction/run.sh). `bash build.sh bench` builds a Release tree and
# calls this. Figures depend on the machine: compare within a run.
set -euo pipefail
B=${1:?usage: bench/run.sh BUILD_DIR}
MGRUN="$B/mgrun"
T=$(mktemp -d /tmp/mgrun-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "| what | figure | target |"
echo "|---|---|---|"

# --- host: dispatch and probe costs
"$B/bench/bench_host"

# --- what one sample of a child reads (status, group usage, memory.stat)
"$B/bench/bench_core_sample"
# one GPU sample (NVML at run time): the real driver where there is one,
# else the tests' fake NVML (our side of the cost only)
if ldconfig -p 2>/dev/null | grep libnvidia-ml.so.1 >/dev/null; then
  "$B/bench/bench_core_gpu" 2000
else
  "$B/bench/bench_core_gpu" 2000 "$B/bench/libbench_fake_nvml.so"
fi

# --- start-up: empty policy vs prlimit --data=1G true
echo "" >"$T/empty.lua"
read -r mg_med mg_p90 < <("$B/bench/bench_startup" 200 "$MGRUN" "$T/empty.lua")
read -r pl_med pl_p90 < <("$B/bench/bench_startup" 200 prlimit --data=1073741824 true)
ratio=$(awk -v a="$mg_med" -v b="$pl_med" 'BEGIN { printf "%.2f", a / b }')
echo "| mgrun empty policy, start to exit (median of 200; p90 $mg_p90 ms) | $mg_med ms | ≤ 5 ms |"
echo "| prlimit --data=1G true (median of 200; p90 $pl_p90 ms) | $pl_med ms | — |"
echo "| ratio mgrun / prlimit | ${ratio}× | ≤ 2× |"

# --- start-up of one command under a limit against prlimit (issue 8):
# medians of 200 runs, the two commands in turn
read -r a_med a_p90 p_med p_p90 a_ratio < <("$B/bench/bench_startup" --pair 200 \
  "$MGRUN" --limit 1G -- true --- prlimit --data=1073741824 true)
read -r d_med d_p90 q_med q_p90 d_ratio < <("$B/bench/bench_startup" --pair 200 \
  "$MGRUN" --limit 1G --enforce data -- true --- prlimit --data=1073741824 true)
echo "| \`mgrun --limit 1G -- true\` (auto; median of 200, p90 $a_med/$a_p90 ms) against \`prlimit --data=1G true\` ($p_med ms) | ${a_ratio}× | ≤ 1.5× |"
echo "| \`mgrun --limit 1G --enforce data -- true\` (median of 200, p90 $d_p90 ms: $d_med ms) against \`prlimit\` ($q_med ms) | ${d_ratio}× | ≤ 1.2× |"

# --- idle: a policy with a 1 s timer, RSS and CPU over 10 s
cat >"$T/idle.lua" <<'LUA'
local n = 0
mg.every(1000, function() n = n + 1 end)
LUA
"$MGRUN" "$T/idle.lua" 2>/dev/null &
pid=$!
sleep 1
t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
sleep 10
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
hz=$(getconf CLK_TCK)
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.3f", (b - a) / hz / 10 * 100 }')
rss=$(awk -v k="$rss_kib" 'BEGIN { printf "%.2f", k / 1024 }')
echo "| idle mgrun with a 1 s timer: RSS | $rss MiB | ≤ 4 MiB |"
echo "| idle mgrun with a 1 s timer: CPU over 10 s | $cpu % | < 0.1 % |"

# --- store (C core), when built
if [[ -x $B/bench/bench_store ]]; then
  "$B/bench/bench_store" | grep '^|' | grep -v -e '^| what' -e '^| store benchmark' -e '^|---'
fi

# --- the Python package (ctypes over libmg.so.0): Store.add, prune, strategies
MGRUN_LIB="$B/libmg.so.0" PYTHONPATH="$(dirname "$0")/../bindings/python" /usr/bin/python3 "$(dirname "$0")/python/bench_store.py" || echo "| Python package benchmarks | skipped | /usr/bin/python3 bench/python/bench_store.py failed |"
# --- mgrun.Runtime on an idle Python host: RSS and CPU added; shared-store adds
MGRUN_LIB="$B/libmg.so.0" PYTHONPATH="$(dirname "$0")/../bindings/python" /usr/bin/python3 "$(dirname "$0")/python/bench_runtime.py" || echo "| Python Runtime benchmarks | skipped | /usr/bin/python3 bench/python/bench_runtime.py failed |"

# --- supervisor: spawn latency under limits, sample cost, 50 idle children,
# crossing → death at 100 ms sampling (issue 5)
if [[ -x $B/bench/bench_spawn ]]; then
  "$B/bench/bench_spawn" "$MGRUN" "$B/mg-hog"
fi

# --- context store through Lua (ctx:add, Lua strategies, trims) and the
# same workloads against lru-cache and @langchain/core trimMessages (issue 4)
if [[ -x $B/bench/bench_lstore ]]; then
  "$B/bench/bench_lstore" >"$T/lstore.txt"
  grep '^|' "$T/lstore.txt"
  CMP="$(dirname "$0")/compare"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "| comparison with lru-cache and trimMessages | skipped | node/npm not found (Debian: apt-get install nodejs npm) |"
  elif ! npm install --prefix "$CMP" --no-audit --no-fund >"$T/npm.log" 2>&1; then
    echo "| comparison with lru-cache and trimMessages | skipped | npm install failed: $(tail -n 1 "$T/npm.log") |"
  else
    node "$CMP/compare.js" "$T/lstore.txt"
  fi
fi

# --- serving metrics (issue 11): mgrun's CPU per scrape of GET /metrics
# with 10 children and 5 stores, and the RSS --metrics adds
bash "$(dirname "$0")/metrics/run.sh" "$B" ||
  echo "| cost of serving metrics | skipped | bench/metrics/run.sh failed |"

# --- reaction (issue 10): a hog past L = 256 MiB, overshoot and crossing →
# death for each governor (the hog itself, the kernel limit, mgrun's
# threshold event and sampling, earlyoom), then the idle footprint of mgrun
# beside earlyoom's. Two tables of their own, ~3 minutes.
echo
echo "Reaction (bench/reaction/run.sh):"
echo
bash "$(dirname "$0")/reaction/run.sh" "$B"
