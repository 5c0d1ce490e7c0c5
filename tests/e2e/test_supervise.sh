# The supervisor end to end: real children (mg-hog) under real limits —
# RLIMIT_DATA everywhere, a cgroup v1/v2 group where one is writable —
# exit classification, limits before the first instruction, warn
# crossings, restarts with MG_RESTARTS, shutdown without orphans, zombies
# or leftover cgroups, and the clean-up after a SIGKILLed mgrun.
source "$(dirname "$0")/lib.sh"
HOG="$(dirname "$MGRUN")/mg-hog"
[[ -x $HOG ]] || { echo "FAIL: no mg-hog next to $MGRUN"; exit 1; }
export HOG

# alive PID: exists and is not a zombie
alive() {
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}
# wait_for FILE PATTERN [TENTHS]: until grep finds PATTERN in FILE
wait_for() {
  local i
  for ((i = 0; i < ${3:-100}; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# cgroup dirs of the mgrun with pid $1
groups_of() {
  find /sys/fs/cgroup -maxdepth 6 -type d -name "mgrun-$1-*" 2>/dev/null
}
now_ms() { date +%s%3N; }

# ------------------------------------------------------------ RLIMIT_DATA

p=$(policy data <<'LUA'
local hog = os.getenv("HOG")
-- grows past its 64 MiB RLIMIT_DATA: the allocation fails, it exits 3
local a = assert(mg.spawn { name = "greedy", enforce = "data", limit = "64M",
  cmd = { hog, "--quiet", "--rate", "256M", "--step", "1M" }, sample_ms = 25,
  stderr = os.getenv("T") .. "/greedy.err" })
-- its sibling stays under its own limit
local b = assert(mg.spawn { name = "sibling", enforce = "data", limit = "64M",
  cmd = { hog, "--quiet", "--max", "16M", "--rate", "256M" } })
a:on("exit", function(_, e)
  -- peak: the highest sample (an rlimit leaves no kernel record)
  print("greedy", e.reason, e.code, e.signal, e.peak > 32 * 1048576, e.detail)
  print("sibling running", b.running, b.pid ~= nil)
  print("sibling memory", b:memory().data < 64 * 1048576)
  b:stop(0)
end)
b:on("exit", function(_, e) print("sibling", e.reason, e.signame) end)
LUA
)
out=$(T=$T_TMP "$MGRUN" "$p" 2>&1)
check "data: mgrun exits 0" test $? -eq 0
check "data: the greedy hog's allocation failed, exit 3 classified limit" grep -q "^greedy	limit	3	nil	true" <<<"$out"
check "data: the hog said so on stderr" grep -q "allocation of .* failed: Cannot allocate memory" "$T_TMP/greedy.err"
check "data: the sibling was unaffected" grep -q "^sibling running	true	true" <<<"$out"
check "data: the sibling stayed under its limit" grep -q "^sibling memory	true" <<<"$out"
check "data: the sibling was stopped by the policy" grep -q "^sibling	signal	" <<<"$out"
[[ $T_FAIL -gt 0 ]] && echo "$out"

# Limits are in force before the first instruction: mg-hog allocates 128 MiB
# in the first statement of main (MG_HOG_ALLOC_AT_START).
p=$(policy first <<'LUA'
local hog = os.getenv("HOG")
local function run(name, limit)
  local p = assert(mg.spawn { name = name, enforce = limit and "data" or "none",
    limit = limit, cmd = { hog, "--quiet", "--max", "1M", "--hold", "0" },
    env = { MG_HOG_ALLOC_AT_START = "128M" },
    stderr = os.getenv("T") .. "/" .. name .. ".err" })
  p:on("exit", function(_, e) print(name, e.reason, e.code) end)
end
run("limited", "64M")
run("control", nil)
LUA
)
out=$(T=$T_TMP "$MGRUN" "$p" 2>&1)
check "first instruction: 128 MiB at start fails under a 64 MiB RLIMIT_DATA" grep -q "^limited	limit	3" <<<"$out"
check "first instruction: the same without a limit succeeds" grep -q "^control	exit	0" <<<"$out"

# warn: once per upward crossing of warn_at, re-armed below it. A saw-tooth
# to 56 MiB of 64 MiB (warn_at 0.8 = 51.2 MiB), twice.
p=$(policy warn <<'LUA'
local hog = os.getenv("HOG")
local p = assert(mg.spawn { name = "saw", enforce = "data", limit = "64M",
  warn_at = 0.8, sample_ms = 25,
  cmd = { hog, "--quiet", "--rate", "256M", "--max", "56M", "--cycle", "0.6",
          "--cycles", "2" } })
local warns, samples, above = 0, 0, 0
p:on("sample", function(_, s)
  samples = samples + 1
  if s.fraction >= 0.8 then above = above + 1 end
end)
p:on("warn", function(_, s)
  warns = warns + 1
  -- with a group, warn watches the group's charge (a kernel threshold)
  local u = s.cgroup_current or s.used
  print("warn", warns, u >= 0.8 * s.limit, s.limit, u >= 0.8 * s.limit)
end)
p:on("exit", function(_, e)
  print("done", e.reason, e.code, "warns", warns, "samples above", above > 4)
end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "warn: exactly two warnings for two crossings" grep -q "^done	exit	0	warns	2	samples above	true" <<<"$out"
check "warn: the sample is above warn_at" grep -q "^warn	1	true	67108864	true" <<<"$out"
[[ $T_FAIL -gt 0 ]] && echo "$out"

# Restarts: on-failure with backoff 100 ms doubling; MG_RESTARTS 0, 1, 2;
# max_restarts 2 stops it.
p=$(policy restart <<'LUA'
local hog = os.getenv("HOG")
local t0 = mg.now()
local p = assert(mg.spawn { name = "phoenix", enforce = "data", limit = "32M",
  restart = "on-failure", max_restarts = 2, backoff_ms = 100,
  cmd = { hog, "--rate", "1G" }, stdout = os.getenv("T") .. "/phoenix.out",
  stderr = os.getenv("T") .. "/phoenix.err" })
p:on("exit", function(_, e)
  print("exit", e.restarts, e.reason, e.will_restart, e.restart_in_ms)
end)
p:on("restart", function(_, n)
  print("restart", n, ("%d"):format(math.floor(mg.now() - t0)))
end)
LUA
)
out=$(T=$T_TMP "$MGRUN" "$p" 2>&1)
check "restart: mgrun exits 0 when the restarts are spent" test $? -eq 0
check "restart: MG_RESTARTS 0, 1, 2 reached the child" test "$(grep -o 'restarts=[0-9]*' "$T_TMP/phoenix.out" | sort -u | tr '\n' ' ')" = "restarts=0 restarts=1 restarts=2 "
check "restart: three runs, the last one not restarted" test "$(grep -c '^exit	' <<<"$out")" -eq 3
check "restart: backoff 100 ms then 200 ms" grep -q "^exit	0	limit	true	100" <<<"$out"
check "restart: ... doubling" grep -q "^exit	1	limit	true	200" <<<"$out"
check "restart: max_restarts stops it" grep -q "^exit	2	limit	false	nil" <<<"$out"
check "restart: restart events 1 and 2" test "$(grep -c '^restart	' <<<"$out")" -eq 2
[[ $T_FAIL -gt 0 ]] && echo "$out"

# Shutdown by SIGTERM (RLIMIT_DATA: the process group): a child that
# ignores SIGTERM and forked two grandchildren is gone within grace + 1 s.
shutdown_test() { # shutdown_test LABEL ENFORCE [HOG ARGS...]
  local label=$1 enforce=$2 extra="" a
  shift 2
  for a in "$@"; do extra="$extra\"$a\", "; done
  local pol
  pol=$(policy "shut$label" <<LUA
local p = assert(mg.spawn { name = "stubborn", enforce = "$enforce", limit = "64M",
  grace_ms = 500, cmd = { os.getenv("HOG"), "--ignore-term", "--fork", "2",
  "--max", "4M", "--rate", "64M", $extra },
  stdout = os.getenv("T") .. "/shut$label.out" })
print("child", p.pid, p.cgroup)
LUA
)
  T=$T_TMP "$MGRUN" "$pol" >"$T_TMP/shut$label.log" 2>&1 &
  local mpid=$! pids t0 t1 i
  wait_for "$T_TMP/shut$label.out" "children=" 50 || fail "$label: no children line"
  pids="$(sed -nE 's/.*pid=([0-9]+) role=main.*children=([0-9,]+).*/\1 \2/p' "$T_TMP/shut$label.out" | head -1 | tr ',' ' ')"
  check "$label: a child and two grandchildren" test "$(wc -w <<<"$pids")" -eq 3
  t0=$(now_ms)
  kill -TERM "$mpid"
  wait "$mpid"
  local rc=$?
  t1=$(now_ms)
  check "$label: mgrun exits 143 after SIGTERM" test "$rc" -eq 143
  check "$label: done within grace (500 ms) + 1 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 1500
  local left=""
  for i in $pids; do alive "$i" && left="$left $i"; done
  check "$label: no child or grandchild left ($left)" test -z "$left"
  check "$label: no cgroup left" test -z "$(groups_of "$mpid")"
  check "$label: shutdown logged" grep -q "shutdown_done" "$T_TMP/shut$label.log"
  [[ $T_FAIL -gt 0 ]] && cat "$T_TMP/shut$label.log"
}
shutdown_test data data

# A second SIGTERM during a long grace period kills at once.
p=$(policy force <<'LUA'
local p = assert(mg.spawn { name = "slow", grace_ms = 20000,
  cmd = { os.getenv("HOG"), "--ignore-term", "--max", "1M" },
  stdout = os.getenv("T") .. "/force.out" })
LUA
)
T=$T_TMP "$MGRUN" "$p" >"$T_TMP/force.log" 2>&1 &
mpid=$!
wait_for "$T_TMP/force.out" "pid=" 50
kid=$(sed -nE 's/.*pid=([0-9]+) role=main.*/\1/p' "$T_TMP/force.out" | head -1)
t0=$(now_ms)
kill -TERM "$mpid"
sleep 0.3
check "force: still in its 20 s grace period after the first SIGTERM" alive "$kid"
kill -TERM "$mpid"
wait "$mpid"
rc=$?
t1=$(now_ms)
check "force: a second SIGTERM ends it at once ($((t1 - t0)) ms), 143" test $((t1 - t0)) -lt 2000 -a $rc -eq 143
check "force: the child is gone" bash -c "! [[ -e /proc/$kid ]] || grep -q ') Z' /proc/$kid/stat"
check "force: logged" grep -q "shutdown_forced" "$T_TMP/force.log"

# ------------------------------------------------------------ cgroups

writable=$("$MGRUN" --probe --json | jq -r .cgroup.writable)
if [[ $writable != true ]]; then
  echo "$T_PASS passed, $T_FAIL failed (before the cgroup part)"
  ((T_FAIL == 0)) || exit 1
  skip_cgroup "no writable cgroup memory hierarchy: $("$MGRUN" --probe --json | jq -r .cgroup.writable_reason)"
fi

p=$(policy oom <<'LUA'
local hog = os.getenv("HOG")
local a = assert(mg.spawn { name = "greedy", enforce = "cgroup", limit = "64M",
  cmd = { hog, "--quiet", "--rate", "512M" }, sample_ms = 50, stderr = "null" })
local b = assert(mg.spawn { name = "sibling", enforce = "cgroup", limit = "64M",
  cmd = { hog, "--quiet", "--max", "16M", "--rate", "256M" } })
print("dirs", a.cgroup, b.cgroup)
a:on("exit", function(_, e)
  print("greedy", e.reason, e.code, e.signame, e.peak >= 60 * 1048576, e.detail)
  print("sibling running", b.running, b.pid ~= nil)
  local m = b:memory()
  print("sibling memory", m.cgroup_current > 8 * 1048576, m.cgroup_current < 64 * 1048576)
  b:stop(0)
end)
b:on("exit", function(_, e) print("sibling", e.reason, e.signame) end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "cgroup: mgrun exits 0" test $? -eq 0
check "cgroup: the greedy hog was OOM-killed in its group, classified oom" grep -q "^greedy	oom	nil	KILL	true" <<<"$out"
check "cgroup: the sibling was unaffected" grep -q "^sibling running	true	true" <<<"$out"
check "cgroup: the sibling's group charges it" grep -q "^sibling memory	true	true" <<<"$out"
check "cgroup: the sibling was stopped by the policy" grep -q "^sibling	signal	" <<<"$out"
dirs=$(sed -n 's/^dirs	//p' <<<"$out" | tr '\t' ' ')
check "cgroup: both had a group of their own" test "$(wc -w <<<"$dirs")" -eq 2
left=""
for d in $dirs; do [[ -d $d ]] && left="$left $d"; done
check "cgroup: the groups are gone afterwards ($left)" test -z "$left"
[[ $T_FAIL -gt 0 ]] && echo "$out"

p=$(policy cgfirst <<'LUA'
local p = assert(mg.spawn { name = "early", enforce = "cgroup", limit = "64M",
  cmd = { os.getenv("HOG"), "--quiet", "--max", "1M", "--hold", "0" },
  env = { MG_HOG_ALLOC_AT_START = "128M" }, stderr = "null" })
p:on("exit", function(_, e) print("early", e.reason, e.signame) end)
LUA
)
out=$("$MGRUN" "$p" 2>&1)
check "first instruction: 128 MiB at start is OOM-killed in a 64 MiB cgroup" grep -q "^early	oom	KILL" <<<"$out"

# Shutdown with the grandchildren outside the process group (setsid): only
# the cgroup finds them.
shutdown_test cgroup cgroup
shutdown_test setsid cgroup --fork-setsid

# SIGKILL of mgrun: the child dies with it (PR_SET_PDEATHSIG), the group it
# leaves behind is removed (and emptied) by the next start. Under a parent
# group of this test's own, so that no other mgrun (tests run in
# parallel) cleans it up first.
parent="$("$MGRUN" --probe --json | jq -r .cgroup.dir)/e2e-orphan-$$"
mkdir "$parent" || fail "cannot create $parent"
p=$(policy orphan <<'LUA'
local p = assert(mg.spawn { name = "orphan", enforce = "cgroup", limit = "64M",
  cmd = { os.getenv("HOG"), "--fork", "1", "--max", "4M", "--rate", "64M" },
  stdout = os.getenv("T") .. "/orphan.out" })
print("group", p.cgroup)
io.stdout:flush()
LUA
)
T=$T_TMP "$MGRUN" --cgroup-parent "$parent" "$p" >"$T_TMP/orphan.log" 2>&1 &
mpid=$!
wait_for "$T_TMP/orphan.out" "children=" 50
child=$(sed -nE 's/.*pid=([0-9]+) role=main.*/\1/p' "$T_TMP/orphan.out" | head -1)
grand=$(sed -nE 's/.*children=([0-9]+).*/\1/p' "$T_TMP/orphan.out" | head -1)
group=$(sed -n 's/^group	//p' "$T_TMP/orphan.log")
kill -KILL "$mpid"
wait "$mpid" 2>/dev/null
for ((i = 0; i < 20; i++)); do alive "$child" || break; sleep 0.05; done
check "SIGKILL: the child died with mgrun (PDEATHSIG)" bash -c "! [[ -e /proc/$child ]] || grep -q ') Z' /proc/$child/stat"
check "SIGKILL: its group was left behind" test -d "$group"
p2=$(policy next <<'LUA'
local p = assert(mg.spawn { name = "next", cmd = { "true" } })
LUA
)
out=$("$MGRUN" --cgroup-parent "$parent" "$p2" 2>&1)
check "next start: exits 0" test $? -eq 0
check "next start: the stale group is removed" test ! -d "$group"
check "next start: the grandchild that was left in it is gone" bash -c "! [[ -e /proc/$grand ]] || grep -q ') Z' /proc/$grand/stat"
check "next start: logged the removal" grep -q "stale" <<<"$out"
[[ $T_FAIL -gt 0 ]] && { echo "$out"; cat "$T_TMP/orphan.log"; }
# whatever happened, leave nothing behind
for i in $child $grand; do alive "$i" && kill -KILL "$i"; done
[[ -d $group ]] && rmdir "$group" 2>/dev/null
rmdir "$parent" 2>/dev/null
check "the test's parent group is removed" test ! -d "$parent"

finish
