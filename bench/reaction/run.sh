#!/usr/bin/env bash
# bench/reaction/run.sh BUILD_DIR [--runs N] [--only LIST] — the reaction
# benchmark (issue 10). A hog grows past L = 256 MiB at full speed and at
# 100 MiB/s; for each governor, how far past L it got (overshoot) and how
# long its death took after the crossing. Then the idle footprint of mgrun
# and earlyoom, side by side in the same 10 s. Two markdown tables, ~3
# minutes. Run as root (the kernel-limit row needs a writable cgroup).
# BUILD_DIR holds mgrun, mg-hog and bench/bench_reaction (a Release tree:
# `bash build.sh bench` builds build-release/ and runs this from
# bench/run.sh). earlyoom is Debian's package, run as our own instance
# only; without it its rows say "not measured".
set -euo pipefail
B=${1:?usage: bench/reaction/run.sh BUILD_DIR [--runs N] [--only LIST]}
shift
for f in mgrun mg-hog bench/bench_reaction; do
  if [[ ! -x $B/$f ]]; then
    echo "bench/reaction/run.sh: $B/$f is not built (cmake --build $B)" >&2
    exit 1
  fi
done
EO=$(command -v earlyoom || true)
T=$(mktemp -d /tmp/mgrun-reaction.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT

# Another earlyoom on this machine (a service the package started) would
# watch the same memory: it is not ours to stop, so say so.
if systemctl is-active earlyoom >/dev/null 2>&1; then
  echo "note: the earlyoom service is active (systemctl stop earlyoom for a clean run)"
  echo
fi

"$B/bench/bench_reaction" --earlyoom "$EO" "$@" "$B/mgrun" "$B/mg-hog"

# --- idle footprint, the three side by side over the same 10 s: RSS
# (VmRSS at the end) and CPU as utime + stime from /proc/PID/stat (clock
# ticks) and as the on-CPU time the scheduler counted (/proc/PID/schedstat,
# ns). earlyoom with Debian's own arguments (-r 3600), --dryrun so that it
# can never kill anything on a shared machine (its idle loop is the same).
echo
cat >"$T/timer.lua" <<'LUA'
local n = 0
mg.every(1000, function() n = n + 1 end)
LUA
names=("\`mgrun --limit 1G -- sleep 600\`" "mgrun, a policy with a 1 s \`mg.every\` timer")
"$B/mgrun" --limit 1G -- sleep 600 >/dev/null 2>&1 &
pids+=($!)
"$B/mgrun" "$T/timer.lua" >/dev/null 2>&1 &
pids+=($!)
if [[ -n $EO ]]; then
  eo_ver=$("$EO" -v 2>&1 | sed -n 's/^earlyoom v//p' | head -n 1)
  names+=("earlyoom ${eo_ver:-?} \`-r 3600 --dryrun\`")
  "$EO" -r 3600 --dryrun >/dev/null 2>&1 &
  pids+=($!)
fi
sleep 1
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
oncpu() { awk '{ print $1 }' "/proc/$1/schedstat"; }
declare -A t0 c0
for p in "${pids[@]}"; do
  t0[$p]=$(ticks "$p")
  c0[$p]=$(oncpu "$p")
done
secs=10
sleep "$secs"
hz=$(getconf CLK_TCK)
echo "| idle, the same $secs s | RSS | CPU: utime + stime ($hz Hz ticks) | CPU: on-CPU time (schedstat) | target |"
echo "|---|---|---|---|---|"
eo_rss=0 eo_cpu=0
if [[ -n $EO ]]; then
  eo_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/${pids[2]}/status")
  eo_cpu=$(($(oncpu "${pids[2]}") - ${c0[${pids[2]}]}))
fi
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  dt=$(($(ticks "$p") - ${t0[$p]}))
  dc=$(($(oncpu "$p") - ${c0[$p]}))
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")
  target="—"
  ((i < 2)) && target="CPU ≤ earlyoom's, RSS ≤ 1.2× earlyoom's"
  awk -v name="${names[$i]}" -v rss="$rss" -v dt="$dt" -v dc="$dc" -v hz="$hz" \
    -v s="$secs" -v er="$eo_rss" -v ec="$eo_cpu" -v tg="$target" -v mine=$((i < 2)) 'BEGIN {
      r = sprintf("%.2f MiB", rss / 1024)
      c = sprintf("%.3f %% (%.2f ms", dc / 1e9 / s * 100, dc / 1e6)
      if (mine && er > 0) r = r sprintf(" (%.2f× earlyoom)", rss / er)
      if (mine && ec > 0) c = c sprintf(", %.1f× earlyoom", dc / ec)
      c = c ")"
      printf "| %s | %s | %.2f %% (%d) | %s | %s |\n",
        name, r, dt / hz / s * 100, dt, c, tg
    }'
done
